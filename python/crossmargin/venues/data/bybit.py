"""Bybit v5 (unified trading account) from Bybit's own payloads: a universe from the market
parameters, book rows from the account payloads (docs/MODEL.md "Venue payloads").

Parameters (each the ``result`` of a v5 response, or the whole response):

Each may come in parts, one file per category: ``instruments-info.linear.json``,
``instruments-info.inverse.json`` (:func:`~crossmargin.venues.data.payload.payload_parts`).

- ``instruments-info`` (``GET /v5/market/instruments-info``): ``list[]`` → kind
  (``contractType`` …Perpetual → perp, …Futures → future), settle (``settleCoin``), underlying
  (``baseCoin``), inverse for Inverse… contracts (contract size 1 USD, Bybit's inverse unit).
- ``risk-limit`` (``GET /v5/market/risk-limit``): ``list[]`` of tiers per symbol →
  brackets (``riskLimitValue``, ``initialMargin``, ``maintenanceMargin``) ordered by value, the
  last ∞; the rates are fractions (the API's unit); ``mmDeduction`` is the model's bracket
  amount, rebuilt by the recurrence.
- ``collateral-info`` (optional, ``GET /v5/account/collateral-info``): ``list[]`` → a coin's
  collateral weight ``collateralRatio`` (0 when ``marginCollateral`` or ``collateralSwitch`` is
  false), for the coins that have a price.
- ``tickers`` (optional, ``GET /v5/market/tickers``): marks (``markPrice``); ``marks=`` wins.

Asset prices (USD): ``prices=``, else the account payloads' (``usdValue`` / ``equity`` of each
wallet coin: ``prices=coin_prices(account payloads)``),
else an inverse market's settle coin at that market's mark, else 1 for a linear settle coin.

Accounts: ``wallet-balance`` → balances (each coin's ``walletBalance``); ``position-list`` →
positions: qty = ``size`` × (+1 Buy, −1 Sell), entry ``avgPrice``, ``positionIdx`` 0 → side
"both", 1 / 2 → "long" / "short" (hedge mode), ``tradeMode`` 1 (isolated) → isolated margin
``positionBalance``. Reported: ``totalEquity``, ``totalMarginBalance``,
``totalInitialMargin``, ``totalMaintenanceMargin`` (USD) and Σ ``positionIM`` / ``positionMM``
(settle coin). A wallet coin with a non-zero ``unrealisedPnl`` and no ``position-list`` is a
``BookError`` (its positions would be missing from the book).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crossmargin.exceptions import ConfigError
from crossmargin.universe import Asset, Market, Universe
from crossmargin.venues.data.payload import (
    ACCOUNTS,
    AccountReader,
    Imported,
    Node,
    optional_payload,
    payload_parts,
)

VENUE = "bybit"
INF = math.inf
PARAMS = ("instruments-info", "risk-limit", "collateral-info", "tickers")
ACCOUNT_PAYLOADS = ("wallet-balance", "position-list")
REPORTED = (
    "total_equity",
    "total_margin_balance",
    "total_initial_margin",
    "total_maintenance_margin",
    "position_im",
    "position_mm",
)
SIDES = {0: "both", 1: "long", 2: "short"}


def _rows(node: Node) -> list[Node]:
    """A v5 response's ``result.list`` (or ``list`` of a bare result, or a bare list)."""
    if isinstance(node.value, list):
        return list(node.items())
    body = node["result"] if node.has("result") else node
    return body.list("list")


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
    prices: Mapping[str, float] | None = None,
) -> Universe:
    """A :class:`~crossmargin.Universe` from Bybit's parameter payloads (module docstring).

    ``symbols`` selects markets (default: every symbol with risk limits and a mark); an
    unknown symbol or one without a mark is a ``ConfigError`` naming the payload.

    Example::

        from crossmargin.venues.data import bybit, payload
        u = bybit.universe(payload.read_params("tests/fixtures/venues/bybit/params"),
                           marks={"BTCUSDT": 60_000.0})
    """
    infos = payload_parts(params, "instruments-info", VENUE)
    limits = payload_parts(params, "risk-limit", VENUE)
    collateral = optional_payload(params, "collateral-info", VENUE)
    specs = {s.text("symbol"): s for part in infos for s in _rows(part)}
    tiers: dict[str, list[Node]] = {}
    for part in limits:
        for t in _rows(part):
            tiers.setdefault(t.text("symbol"), []).append(t)
    mark: dict[str, float] = {}
    for part in payload_parts(params, "tickers", VENUE, required=False):
        for t in _rows(part):
            if t.has("markPrice"):
                mark[t.text("symbol")] = t.num("markPrice")
    mark.update({k: float(v) for k, v in (marks or {}).items()})
    chosen = list(symbols) if symbols is not None else [s for s in tiers if s in mark]
    markets = []
    for s in chosen:
        if s not in tiers:
            raise limits[0].error(f"unknown symbol {s!r} (no risk limits)", "list")
        if s not in specs:
            raise infos[0].error(f"unknown symbol {s!r}", "list")
        if s not in mark:
            raise ConfigError(
                f"{VENUE}: no mark for {s!r} (give tickers.json or marks=)",
                field=f"markets[{s}].mark",
            )
        spec = specs[s]
        ctype = spec.text("contractType")
        rows = sorted(
            (t.num("riskLimitValue"), t.num("initialMargin"), t.num("maintenanceMargin"))
            for t in tiers[s]
        )
        rows[-1] = (INF, rows[-1][1], rows[-1][2])
        markets.append(
            Market(
                s,
                "future" if ctype.endswith("Futures") else "perp",
                spec.text("settleCoin"),
                spec.text("baseCoin"),
                mark[s],
                rows,
                inverse=ctype.startswith("Inverse"),
            )
        )
    usd = {k: float(v) for k, v in (prices or {}).items()}
    weight: dict[str, float] = {}
    if collateral is not None:
        for c in _rows(collateral):
            on = c.flag("marginCollateral", True) and c.flag("collateralSwitch", True)
            weight[c.text("currency")] = c.opt_num("collateralRatio", 1.0) if on else 0.0
    names: list[str] = []
    for m in markets:
        if m.settle not in names:
            names.append(m.settle)
    names += [c for c in usd if c not in names]
    assets = []
    for a in names:
        if a in usd:
            px = usd[a]
        else:
            inv = [m for m in markets if m.inverse and m.settle == a]
            px = float(inv[0].mark) if inv else 1.0  # type: ignore[arg-type]
        w = weight.get(a, 1.0)
        assets.append(Asset(a, px, weight_initial=w, weight_maint=w))
    return Universe(assets, markets)


def accounts(payloads: Mapping[str, Mapping[str, Any]]) -> Imported:
    """Book rows from Bybit account payloads: ``{account name: {"wallet-balance": ...,
    "position-list": ...}}`` (module docstring).

    Example::

        from crossmargin.venues.data import bybit, payload
        acc = bybit.accounts(payload.read_accounts("tests/fixtures/venues/bybit/accounts"))
    """
    reader = AccountReader(VENUE, payloads)
    rows, marks = reader.rows, reader.marks
    for acc in reader:
        a, rep = acc.id, acc.reported
        wallet, plist = acc.either("wallet-balance", "position-list")
        if wallet is not None:
            for acct in _rows(wallet):
                for key, col in (
                    ("totalEquity", "total_equity"),
                    ("totalMarginBalance", "total_margin_balance"),
                    ("totalInitialMargin", "total_initial_margin"),
                    ("totalMaintenanceMargin", "total_maintenance_margin"),
                ):
                    if acct.has(key) and acct[key].value != "":
                        rep[col] = rep.get(col, 0.0) + acct.num(key)
                for c in acct.list("coin"):
                    rows.balance(a, c.text("coin"), c.num("walletBalance"))
                    if plist is None and c.opt_num("unrealisedPnl", 0.0) != 0:
                        raise c.error(
                            "a non-zero unrealisedPnl needs position-list.json (the "
                            "positions it comes from)",
                            "unrealisedPnl",
                        )
        if plist is not None:
            im = mm = 0.0
            for q in _rows(plist):
                sym = q.text("symbol")
                if q.has("markPrice") and q["markPrice"].value != "":
                    marks[sym] = q.num("markPrice")
                im += q.opt_num("positionIM", 0.0)
                mm += q.opt_num("positionMM", 0.0)
                size = q.num("size")
                if size == 0:
                    continue
                side = q.text("side")
                if side not in ("Buy", "Sell"):
                    raise q.error(f"{side!r} is not Buy or Sell", "side")
                idx = q.integer("positionIdx") if q.has("positionIdx") else 0
                if idx not in SIDES:
                    raise q.error(f"{idx} is not 0, 1 or 2", "positionIdx")
                isolated = q.has("tradeMode") and q.integer("tradeMode") == 1
                rows.position(
                    a,
                    sym,
                    size if side == "Buy" else -size,
                    q.num("avgPrice"),
                    q.opt_num("positionBalance", 0.0) if isolated else 0.0,
                    SIDES[idx],
                )
            rep["position_im"] = im
            rep["position_mm"] = mm
    return reader.imported(REPORTED)


def coin_prices(payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """USD prices of the wallet coins the account payloads value (``usdValue`` /
    ``equity``, coins with a non-zero equity), for :func:`universe`'s ``prices=``."""
    out: dict[str, float] = {}
    for name in sorted(payloads):
        wallet = optional_payload(payloads[name], "wallet-balance", f"{VENUE} {name}", ACCOUNTS)
        for acct in [] if wallet is None else _rows(wallet):
            for c in acct.list("coin"):
                eq = c.opt_num("equity", 0.0)
                if eq != 0 and c.has("usdValue"):
                    out[c.text("coin")] = c.num("usdValue") / eq
    return out


__all__ = ["ACCOUNT_PAYLOADS", "PARAMS", "VENUE", "accounts", "coin_prices", "universe"]
