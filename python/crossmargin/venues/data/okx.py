"""OKX v5 (trading account: single-currency / multi-currency cross margin) from OKX's own
payloads: a universe from the public instrument and tier payloads, book rows from the account
payloads (docs/MODEL.md "Venue payloads").

Parameters (each a v5 response ``{"code", "data": [...]}``, or its ``data`` list; each may come
in parts, one file per instrument type: ``instruments.swap.json``, ``instruments.futures.json``,
:func:`~crossmargin.venues.data.payload.payload_parts`):

- ``instruments`` (``GET /api/v5/public/instruments``): ``data[]`` → kind (``instType`` SWAP →
  perp, FUTURES → future), settle (``settleCcy``), underlying (``ctValCcy`` of a linear
  contract, the base of ``instFamily`` / ``uly`` of an inverse one), contract size ``ctVal`` ×
  ``ctMult`` (coins a contract of a linear market, USD of an inverse one), inverse when
  ``ctType`` is "inverse". Other instrument types (SPOT, MARGIN, OPTION) are not markets here.
- ``position-tiers`` (``GET /api/v5/public/position-tiers``, instType SWAP / FUTURES):
  ``data[]`` of tiers per instrument family (``instFamily``, else ``uly``; or per ``instId``) →
  brackets: OKX's tiers are in contracts (``maxSz``), so a tier's notional bound is ``maxSz`` ×
  contract size × mark (linear) or ``maxSz`` × contract size / mark (inverse, settle coins), with
  ``imr`` and ``mmr`` as the rates; the last bound is ∞ (the presets' rule,
  :func:`~crossmargin.venues.okx_contract_brackets`).
- ``discount-rate`` (optional, ``GET /api/v5/public/discount-rate-interest-free-quota``):
  ``data[]`` of ``{ccy, details: [{minAmt, maxAmt, discountRate}], minDiscountRate}`` (older
  responses: ``discountInfo``), amounts in the coin, ``maxAmt`` "" = ∞ → the coin's collateral
  tiers: ``haircut_tiers`` (maxAmt × the coin's USD price, discountRate), then
  ``minDiscountRate`` above the last finite bound; one unbounded tier is a flat weight.
- ``mark-price`` (optional, ``GET /api/v5/public/mark-price``): ``data[]`` ``{instId, markPx}``
  → marks; ``marks=`` (e.g. :attr:`Imported.marks`, the positions' ``markPx``) wins.

Asset prices (USD): ``prices=``, else the account payloads' (``eqUsd`` / ``eq`` of each
balance coin: ``prices=coin_prices(account payloads)``), else an inverse market's settle coin
at that market's mark, else 1.

Accounts (``accounts``: account name → payloads):

- ``balance`` (``GET /api/v5/account/balance``): each ``details[]`` coin's ``cashBal`` is its
  balance (``eq`` = ``cashBal`` + the positions' ``upl``, which the engine adds back);
  reported: ``totalEq``, ``adjEq``, ``imr``, ``mmr``, ``mgnRatio``, ``notionalUsd`` (USD);
- ``positions`` (``GET /api/v5/account/positions``; the grid / signal bots' position payloads
  have the same fields): qty ``pos`` contracts — signed in net mode (``posSide`` "net" →
  side "both"), positive with ``posSide`` "long" / "short" in long/short mode (qty +pos /
  −pos, side "long" / "short"); entry ``avgPx``; ``mgnMode`` "isolated" → isolated margin
  ``margin``; mark ``markPx``. Reported per account: Σ ``imr``, Σ ``mmr`` (settle coin), Σ
  ``upl``, Σ ``notionalUsd``. A spot-margin position (``instType`` MARGIN, a loan) or an
  option is a ``BookError`` naming the row: they are not book positions of this model.

Initial margin: OKX charges notional / the leverage ``lever`` of each cross position;
:func:`leverages` collects them and ``universe(..., leverage=)`` sets each market's initial
rate to max(1 / lever, the tier's ``imr``).
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

VENUE = "okx"
INF = math.inf
#: The parameter payloads :func:`universe` reads (required first).
PARAMS = ("instruments", "position-tiers", "discount-rate", "mark-price")
#: The account payloads :func:`accounts` reads.
ACCOUNT_PAYLOADS = ("balance", "positions")
REPORTED = (
    "total_eq",
    "adj_eq",
    "imr",
    "mmr",
    "mgn_ratio",
    "notional_usd",
    "position_imr",
    "position_mmr",
    "position_upl",
    "position_notional_usd",
)
KINDS = {"SWAP": "perp", "FUTURES": "future"}
SIDES = {"net": "both", "long": "long", "short": "short"}


def _rows(node: Node) -> list[Node]:
    """A v5 response's ``data`` (or a bare list)."""
    if isinstance(node.value, list):
        return list(node.items())
    return node.list("data")


def _family(row: Node) -> str:
    """The instrument family of a tier or instrument row (``instFamily``, else ``uly``)."""
    for key in ("instFamily", "uly"):
        if row.has(key) and row.text(key):
            return row.text(key)
    return ""


def contract_brackets(
    tiers: Sequence[Node], contract_size: float, mark: float, inverse: bool
) -> list[tuple[float, float, float]]:
    """One instrument's tiers (``maxSz`` contracts, ``imr``, ``mmr``) → model brackets on
    settle-asset notional at ``mark``, ordered, the last bound ∞."""
    rows = []
    for t in tiers:
        size = t.num("maxSz")
        cap = size * contract_size / mark if inverse else size * contract_size * mark
        rows.append((cap, t.num("imr"), t.num("mmr")))
    rows.sort(key=lambda r: r[0])
    rows[-1] = (INF, rows[-1][1], rows[-1][2])
    return rows


def discount_tiers(row: Node, price: float) -> list[tuple[float, float]]:
    """One coin's discount-rate row → ``haircut_tiers`` (USD value bound, rate): each tier's
    ``maxAmt`` (coins; "" = ∞) × ``price``, then ``minDiscountRate`` above a finite last
    bound (OKX: "minimum discount rate when it exceeds the maximum amount of the last tier")."""
    key = "details" if row.has("details") else "discountInfo"
    tiers = []
    for t in row.list(key):
        top = t.get("maxAmt")
        bound = INF if top is None or top.value == "" else top.num() * price
        tiers.append((bound, t.num("discountRate")))
    if not tiers:
        raise row.error("no discount tiers", key)
    tiers.sort(key=lambda r: r[0])
    if math.isfinite(tiers[-1][0]):
        tiers.append((INF, row.opt_num("minDiscountRate", 0.0)))
    return tiers


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
    leverage: Mapping[str, float] | None = None,
    prices: Mapping[str, float] | None = None,
) -> Universe:
    """A :class:`~crossmargin.Universe` from OKX's parameter payloads (module docstring).

    ``symbols`` selects instruments (default: every SWAP / FUTURES instrument with tiers and a
    mark); ``leverage`` (instId → lever) sets initial rates to max(1 / lever, tier imr). An
    unknown instrument, one without tiers or a mark, or a missing field is a ``ConfigError``
    naming the payload and the field.

    Example::

        from crossmargin.venues.data import okx, payload
        params = payload.read_params("tests/fixtures/venues/okx/params")
        u = okx.universe(params, marks={"ETH-USDT-SWAP": 1584.33})
    """
    infos = payload_parts(params, "instruments", VENUE)
    tier_parts = payload_parts(params, "position-tiers", VENUE)
    discount = optional_payload(params, "discount-rate", VENUE)
    specs: dict[str, Node] = {}
    for part in infos:
        for row in _rows(part):
            if row.text("instType") in KINDS:
                specs[row.text("instId")] = row
    by_family: dict[str, list[Node]] = {}
    by_inst: dict[str, list[Node]] = {}
    for part in tier_parts:
        for t in _rows(part):
            inst = t.text("instId") if t.has("instId") else ""
            if inst:
                by_inst.setdefault(inst, []).append(t)
            else:
                fam = _family(t)
                if not fam:
                    raise t.error("a tier names no instFamily, uly or instId", "instFamily")
                by_family.setdefault(fam, []).append(t)

    def tiers_of(inst: str) -> list[Node] | None:
        if inst in by_inst:
            return by_inst[inst]
        spec = specs.get(inst)
        return None if spec is None else by_family.get(_family(spec))

    mark: dict[str, float] = {}
    for part in payload_parts(params, "mark-price", VENUE, required=False):
        for row in _rows(part):
            mark[row.text("instId")] = row.num("markPx")
    mark.update({k: float(v) for k, v in (marks or {}).items()})
    chosen = (
        list(symbols)
        if symbols is not None
        else [s for s in specs if s in mark and tiers_of(s) is not None]
    )
    markets = []
    for s in chosen:
        if s not in specs:
            raise infos[0].error(f"unknown instrument {s!r} (no SWAP / FUTURES row)", "data")
        tiers = tiers_of(s)
        if not tiers:
            raise tier_parts[0].error(f"no position tiers for {s!r}", "data")
        if s not in mark:
            raise ConfigError(
                f"{VENUE}: no mark for {s!r} (give mark-price.json or marks=)",
                field=f"markets[{s}].mark",
            )
        spec = specs[s]
        ct_type = spec.text("ctType")
        if ct_type not in ("linear", "inverse"):
            raise spec.error(f"{ct_type!r} is not linear or inverse", "ctType")
        inverse = ct_type == "inverse"
        size = spec.num("ctVal") * spec.opt_num("ctMult", 1.0)
        if inverse:
            underlying = _family(spec).split("-")[0]
            if not underlying:
                raise spec.error("an inverse instrument names no instFamily or uly", "instFamily")
        else:
            underlying = spec.text("ctValCcy")
        rows = contract_brackets(tiers, size, mark[s], inverse)
        if leverage is not None and s in leverage:
            lev = float(leverage[s])
            if not lev > 0:
                raise ConfigError(f"leverage[{s}]: {lev} must be > 0", field=f"leverage[{s}]")
            rows = [(cap, max(imr, 1.0 / lev), mmr) for cap, imr, mmr in rows]
        markets.append(
            Market(
                s,
                KINDS[spec.text("instType")],
                spec.text("settleCcy"),
                underlying,
                mark[s],
                rows,
                contract_size=size,
                inverse=inverse,
            )
        )

    usd = {k: float(v) for k, v in (prices or {}).items()}
    discounts: dict[str, Node] = {}
    if discount is not None:
        for c in _rows(discount):
            discounts[c.text("ccy")] = c
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
        if a not in discounts:
            assets.append(Asset(a, px))
            continue
        slices = discount_tiers(discounts[a], px)
        if len(slices) == 1:
            w = slices[0][1]
            assets.append(Asset(a, px, weight_initial=w, weight_maint=w))
        else:
            assets.append(Asset(a, px, haircut_tiers=slices))
    return Universe(assets, markets)


def accounts(payloads: Mapping[str, Mapping[str, Any]]) -> Imported:
    """Book rows from OKX account payloads: ``{account name: {"balance": ..., "positions":
    ...}}`` (module docstring).

    Example::

        from crossmargin.venues.data import okx, payload
        acc = okx.accounts(payload.read_accounts("tests/fixtures/venues/okx/accounts"))
        acc.positions["qty"], acc.reported["position_mmr"]
    """
    reader = AccountReader(VENUE, payloads)
    rows, marks = reader.rows, reader.marks
    for acc in reader:
        a, rep = acc.id, acc.reported
        bal, pos = acc.either("balance", "positions")
        if bal is not None:
            for acct in _rows(bal):
                for key, col in (
                    ("totalEq", "total_eq"),
                    ("adjEq", "adj_eq"),
                    ("imr", "imr"),
                    ("mmr", "mmr"),
                    ("mgnRatio", "mgn_ratio"),
                    ("notionalUsd", "notional_usd"),
                ):
                    if acct.has(key) and acct[key].value != "":
                        rep[col] = acct.num(key)
                for c in acct.list("details"):
                    rows.balance(a, c.text("ccy"), c.num("cashBal"))
                    if pos is None and c.opt_num("upl", 0.0) != 0:
                        raise c.error(
                            "a non-zero upl needs positions.json (the positions it comes from)",
                            "upl",
                        )
        if pos is not None:
            sums = {"position_imr": 0.0, "position_mmr": 0.0, "position_upl": 0.0}
            usd = 0.0
            for q in _rows(pos):
                inst = q.text("instId")
                kind = q.text("instType")
                if kind not in KINDS:
                    raise q.error(
                        f"{inst}: instType {kind!r} is not read (SWAP and FUTURES positions are "
                        "book positions; a MARGIN position is a spot loan, an OPTION is not a "
                        "perp or future)",
                        "instType",
                    )
                if q.has("markPx") and q["markPx"].value != "":
                    marks[inst] = q.num("markPx")
                sums["position_imr"] += q.opt_num("imr", 0.0)
                sums["position_mmr"] += q.opt_num("mmr", 0.0)
                sums["position_upl"] += q.opt_num("upl", 0.0)
                usd += q.opt_num("notionalUsd", 0.0)
                size = q.num("pos")
                if size == 0:
                    continue
                side = q.text("posSide") if q.has("posSide") else "net"
                if side not in SIDES:
                    raise q.error(f"{side!r} is not net, long or short", "posSide")
                if side != "net" and size < 0:
                    raise q.error(f"{size} must be > 0 for posSide {side!r}", "pos")
                qty = -size if side == "short" else size
                isolated = q.has("mgnMode") and q.text("mgnMode") == "isolated"
                rows.position(
                    a,
                    inst,
                    qty,
                    q.num("avgPx"),
                    q.num("margin") if isolated else 0.0,
                    SIDES[side],
                )
            rep.update(sums)
            rep["position_notional_usd"] = usd
    return reader.imported(REPORTED)


def leverages(payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The leverage (``lever``) the accounts' positions use, per instrument; an instrument
    held at two leverages is a ``BookError`` (a universe has one initial rate per market)."""
    out: dict[str, tuple[float, str]] = {}
    for name in sorted(payloads):
        pos = optional_payload(payloads[name], "positions", f"{VENUE} {name}", ACCOUNTS)
        for q in [] if pos is None else _rows(pos):
            if not q.has("lever") or q["lever"].value == "":
                continue
            inst, lev = q.text("instId"), q.num("lever")
            if inst in out and out[inst][0] != lev:
                raise q.error(
                    f"{inst} is held at leverage {lev} here and {out[inst][0]} in {out[inst][1]}",
                    "lever",
                )
            out[inst] = (lev, name)
    return {k: v[0] for k, v in out.items()}


def coin_prices(payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """USD prices of the balance coins the account payloads value (``eqUsd`` / ``eq``, coins
    with a non-zero ``eq``), for :func:`universe`'s ``prices=``."""
    out: dict[str, float] = {}
    for name in sorted(payloads):
        bal = optional_payload(payloads[name], "balance", f"{VENUE} {name}", ACCOUNTS)
        for acct in [] if bal is None else _rows(bal):
            for c in acct.list("details"):
                eq = c.opt_num("eq", 0.0)
                if eq != 0 and c.has("eqUsd") and c["eqUsd"].value != "":
                    out[c.text("ccy")] = c.num("eqUsd") / eq
    return out


__all__ = [
    "ACCOUNT_PAYLOADS",
    "PARAMS",
    "VENUE",
    "accounts",
    "coin_prices",
    "contract_brackets",
    "discount_tiers",
    "leverages",
    "universe",
]
