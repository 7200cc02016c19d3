"""Binance USDⓈ-M and COIN-M futures from Binance's own payloads: a universe from the public
parameters, book rows from the account payloads (docs/MODEL.md "Venue payloads"). COIN-M
(``/dapi``) payloads have the same layout, with the differences named below (``qtyCap``, sets
per ``pair``, ``isolatedMargin``).

Parameters (``params``, by payload name; fetched by the user):

- ``exchangeInfo`` (``GET /fapi/v1/exchangeInfo``): ``symbols[]`` → market kind
  (``contractType`` PERPETUAL → perp, else future), settle asset (``marginAsset``),
  underlying (``baseAsset``), ``contractSize`` (COIN-M); a market whose margin asset is its
  base asset is inverse (COIN-M).
- ``leverageBracket`` (``GET /fapi/v1/leverageBracket``): ``[{symbol, brackets: [{notionalCap,
  initialLeverage, maintMarginRatio, cum}]}]`` → brackets (cap, 1 / initial leverage, mmr),
  the last cap ∞ (the preset's rule, :func:`~crossmargin.venues.tier_brackets`); ``cum`` is
  Binance's maintenance amount, which the model's recurrence rebuilds (docs/MODEL.md
  "Brackets"). COIN-M (``GET /dapi/v1/leverageBracket`` / ``/dapi/v2/leverageBracket``): caps
  are ``qtyCap`` in the base coin (the margin coin of an inverse contract, so the model's
  settle-asset notional); a set keyed by ``pair`` (v1, per pair) applies to every symbol of that
  pair in ``exchangeInfo``.
- ``assetIndex`` (optional, ``GET /fapi/v1/assetIndex``, Multi-Assets mode): ``[{symbol:
  "BTCUSD", index, bidBuffer}]`` → the asset's USD price (index) and collateral weight
  1 − bidBuffer (Binance: bidRate = index × (1 − bidBuffer)).
- ``premiumIndex`` (optional, ``GET /fapi/v1/premiumIndex``): ``[{symbol, markPrice}]`` →
  marks; ``marks=`` (e.g. :attr:`Imported.marks` of the account payloads) overrides it.

Accounts (``accounts``: account name → payloads): ``account`` (``GET /fapi/v2|v3/account``)
gives the balances, ``positionRisk`` (``GET /fapi/v2|v3/positionRisk``) the positions:

- balance of an asset = ``crossWalletBalance`` (``walletBalance`` when absent): the cross
  wallet; an isolated position's wallet (``isolatedWallet``; COIN-M, which prints only
  ``isolatedMargin`` = wallet + uPnL: ``isolatedMargin`` − ``unRealizedProfit``) is its
  ``isolated_margin`` (isolated: ``marginType`` "isolated", or in v3 a positive wallet);
- ``positionSide`` BOTH → side "both", LONG / SHORT → "long" / "short" (hedge mode);
- reported figures: the account's ``totalMaintMargin``, ``totalInitialMargin``,
  ``totalMarginBalance``, ``totalWalletBalance``, and Σ of the positions' ``maintMargin`` /
  ``initialMargin`` (v3 positionRisk). Binance truncates them to 8 decimals
  (:func:`~crossmargin.venues.data.payload.round_down`).

Initial margin: Binance charges notional / the account's chosen leverage; ``leverage=``
(symbol → leverage) sets each market's initial rate to max(1 / leverage, the bracket's
1 / initialLeverage). Without it the rate is the bracket's (the highest leverage allowed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crossmargin.exceptions import ConfigError
from crossmargin.universe import Asset, Market, Universe
from crossmargin.venues.data.payload import (
    AccountReader,
    Imported,
    Node,
    optional_payload,
    payload,
)

VENUE = "binance"
INF = math.inf
#: The parameter payloads :func:`universe` reads (required first).
PARAMS = ("exchangeInfo", "leverageBracket", "assetIndex", "premiumIndex")
#: The account payloads :func:`accounts` reads.
ACCOUNT_PAYLOADS = ("account", "positionRisk")
REPORTED = (
    "total_maint_margin",
    "total_initial_margin",
    "total_margin_balance",
    "total_wallet_balance",
    "position_maint_margin",
    "position_initial_margin",
)
SIDES = {"BOTH": "both", "LONG": "long", "SHORT": "short"}


def _bracket_sets(node: Node) -> list[Node]:
    """``leverageBracket`` is a list of symbols' sets, or one set (queried by symbol)."""
    return list(node.items()) if isinstance(node.value, list) else [node]


def _set_key(node: Node) -> str:
    """A bracket set's ``symbol``, or its ``pair`` (COIN-M ``GET /dapi/v1/leverageBracket``
    per pair: the set of every symbol of that pair)."""
    return node.text("symbol") if node.has("symbol") or not node.has("pair") else node.text("pair")


def brackets(node: Node, leverage: float | None = None) -> list[tuple[float, float, float]]:
    """One symbol's ``brackets`` → model brackets (cap, imr, mmr), ordered by cap, the last
    cap ∞; imr = max(1 / initialLeverage, 1 / ``leverage``). The cap is ``notionalCap``
    (USDⓈ-M, in the margin asset) or ``qtyCap`` (COIN-M, in the base coin, which is the margin
    coin of an inverse contract: the model's settle-asset notional)."""
    rows = []
    for b in node.list("brackets"):
        cap = (
            b.num("notionalCap") if b.has("notionalCap") or not b.has("qtyCap") else b.num("qtyCap")
        )
        lev = b.num("initialLeverage")
        if lev <= 0:
            raise b.error(f"{lev} must be > 0", "initialLeverage")
        imr = 1.0 / lev if leverage is None else max(1.0 / lev, 1.0 / leverage)
        rows.append((cap, imr, b.num("maintMarginRatio")))
    if not rows:
        raise node.error("no brackets", "brackets")
    rows.sort(key=lambda r: r[0])
    rows[-1] = (INF, rows[-1][1], rows[-1][2])
    return rows


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
    leverage: Mapping[str, float] | None = None,
    prices: Mapping[str, float] | None = None,
) -> Universe:
    """A :class:`~crossmargin.Universe` from Binance's parameter payloads (module docstring).

    ``symbols`` selects markets (default: every symbol of ``leverageBracket`` that has a
    mark); ``marks`` / ``prices`` (asset → USD) override the payloads' prices. An unknown
    symbol, a selected symbol without a mark, or a missing field is a ``ConfigError`` naming
    the payload and the field.

    Example::

        from crossmargin.venues.data import binance, payload
        params = payload.read_params("tests/fixtures/venues/binance/params")
        u = binance.universe(params, marks={"COMPUSDT": 49.72023376})
    """
    info = payload(params, "exchangeInfo", VENUE)
    lb = payload(params, "leverageBracket", VENUE)
    index = optional_payload(params, "assetIndex", VENUE)
    premium = optional_payload(params, "premiumIndex", VENUE)

    specs = {s.text("symbol"): s for s in info.list("symbols")}
    sets = {_set_key(s): s for s in _bracket_sets(lb)}
    for sym, spec in specs.items():  # COIN-M sets per pair apply to each symbol of the pair
        pair = spec.text("pair") if spec.has("pair") else None
        if sym not in sets and pair is not None and pair in sets:
            sets[sym] = sets[pair]
    pairs = {spec.text("pair") for spec in specs.values() if spec.has("pair")}
    for pair in pairs & set(sets) - set(specs):
        del sets[pair]
    mark = {}
    if premium is not None:
        for p in premium.items() if isinstance(premium.value, list) else [premium]:
            mark[p.text("symbol")] = p.num("markPrice")
    mark.update({k: float(v) for k, v in (marks or {}).items()})

    chosen = list(symbols) if symbols is not None else [s for s in sets if s in mark]
    for s in chosen:
        if s not in sets:
            raise lb.error(f"unknown symbol {s!r} (no brackets)", "symbol")
        if s not in specs:
            raise info.error(f"unknown symbol {s!r}", "symbols")
        if s not in mark:
            raise ConfigError(
                f"{VENUE}: no mark for {s!r} (give premiumIndex.json or marks=)",
                field=f"markets[{s}].mark",
            )

    markets = []
    for s in chosen:
        spec = specs[s]
        settle, base = spec.text("marginAsset"), spec.text("baseAsset")
        kind = "perp" if spec.text("contractType") == "PERPETUAL" else "future"
        inverse = settle == base
        lev = None if leverage is None or s not in leverage else float(leverage[s])
        markets.append(
            Market(
                s,
                kind,
                settle,
                base,
                mark[s],
                brackets(sets[s], lev),
                contract_size=spec.opt_num("contractSize", 1.0),
                inverse=inverse,
            )
        )

    # Assets: each market's margin asset, and the Multi-Assets collateral of assetIndex.
    haircut: dict[str, tuple[float, float]] = {}
    if index is not None:
        for row in index.items() if isinstance(index.value, list) else [index]:
            sym = row.text("symbol")
            if sym.endswith("USD"):
                haircut[sym[:-3]] = (row.num("index"), 1.0 - row.opt_num("bidBuffer", 0.0))
    usd = {k: float(v) for k, v in (prices or {}).items()}
    names: list[str] = []
    for m in markets:
        if m.settle not in names:
            names.append(m.settle)
    names += [n for n in haircut if n not in names]
    assets = []
    for a in names:
        px, w = haircut.get(a, (math.nan, 1.0))
        if a in usd:
            px = usd[a]
        elif math.isnan(px):
            # A COIN-M margin coin: its USD price is the mark of its first inverse market;
            # a USDⓈ-M margin asset without an index counts at 1 (amounts in that asset).
            inv = [m for m in markets if m.inverse and m.settle == a]
            px = float(inv[0].mark) if inv else 1.0  # type: ignore[arg-type]
        assets.append(Asset(a, px, weight_initial=w, weight_maint=w))
    return Universe(assets, markets)


def accounts(payloads: Mapping[str, Mapping[str, Any]]) -> Imported:
    """Book rows from Binance account payloads: ``{account name: {"account": ...,
    "positionRisk": ...}}`` (module docstring). An account that lists open positions in
    ``account`` without a ``positionRisk`` (which carries the entry prices) is a
    ``BookError`` naming the payload.

    Example::

        from crossmargin.venues.data import binance, payload
        acc = binance.accounts(payload.read_accounts("tests/fixtures/venues/binance/accounts"))
        acc.positions["side"], acc.reported["position_maint_margin"]
    """
    reader = AccountReader(VENUE, payloads, suffix="/")
    rows, marks = reader.rows, reader.marks
    for acc in reader:
        a, rep = acc.id, acc.reported
        acct, risk = acc.either("account", "positionRisk")
        if acct is not None:
            body = acct.get("result") or acct  # the WebSocket API wraps it in "result"
            for key, col in (
                ("totalMaintMargin", "total_maint_margin"),
                ("totalInitialMargin", "total_initial_margin"),
                ("totalMarginBalance", "total_margin_balance"),
                ("totalWalletBalance", "total_wallet_balance"),
            ):
                if body.has(key):
                    rep[col] = body.num(key)
            for asset in body.list("assets"):
                cross = asset.get("crossWalletBalance")
                qty = cross.num() if cross is not None else asset.num("walletBalance")
                rows.balance(a, asset.text("asset"), qty)
            if risk is None:
                open_ = [
                    q.text("symbol")
                    for q in (body.get("positions") or body.child([], "positions")).items()
                    if q.num("positionAmt") != 0
                ]
                if open_:
                    raise body.error(
                        f"open positions ({', '.join(open_)}) need positionRisk.json for "
                        "their entry prices",
                        "positions",
                    )
        if risk is not None:
            rows_node = risk["result"] if isinstance(risk.value, Mapping) else risk
            mm = im = 0.0
            have_mm = have_im = False
            for q in rows_node.items():
                qty = q.num("positionAmt")
                sym = q.text("symbol")
                if q.has("markPrice") and q.num("markPrice") > 0:  # a flat row may say 0
                    marks[sym] = q.num("markPrice")
                if q.has("maintMargin"):
                    mm += q.num("maintMargin")
                    have_mm = True
                if q.has("initialMargin"):
                    im += q.num("initialMargin")
                    have_im = True
                if qty == 0:
                    continue
                side = q.text("positionSide") if q.has("positionSide") else "BOTH"
                if side not in SIDES:
                    raise q.error(f"{side!r} is not one of BOTH, LONG, SHORT", "positionSide")
                if q.has("isolatedWallet"):
                    wallet = q.num("isolatedWallet")
                else:  # COIN-M: isolatedMargin is the wallet plus the position's uPnL
                    wallet = q.opt_num("isolatedMargin", 0.0) - q.opt_num("unRealizedProfit", 0.0)
                margin_type = q.text("marginType") if q.has("marginType") else None
                isolated = margin_type == "isolated" if margin_type is not None else wallet > 0
                rows.position(
                    a,
                    sym,
                    qty,
                    q.num("entryPrice"),
                    wallet if isolated else 0.0,
                    SIDES[side],
                )
            if have_mm:
                rep["position_maint_margin"] = mm
            if have_im:
                rep["position_initial_margin"] = im
    return reader.imported(REPORTED)


__all__ = ["ACCOUNT_PAYLOADS", "PARAMS", "VENUE", "accounts", "brackets", "universe"]
