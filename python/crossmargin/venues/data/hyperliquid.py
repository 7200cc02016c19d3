"""Hyperliquid perpetuals from Hyperliquid's info payloads: a universe from ``meta``, book rows
from ``clearinghouseState`` (docs/MODEL.md "Venue payloads").

Parameters: ``meta`` (``POST /info {"type": "meta"}``): ``universe[]`` (name, maxLeverage,
optional marginTableId) and ``marginTables`` (``[[id, {marginTiers: [{lowerBound,
maxLeverage}]}]]``). A coin on a listed table takes its tiers, otherwise one tier at its
``maxLeverage``; tiers become brackets with maintenance rate 1 / (2 × max leverage) and the
deduction recurrence (:func:`~crossmargin.venues.hyperliquid_brackets`, Hyperliquid docs
"Margin tiers"). Marks: ``metaAndAssetCtxs`` (optional: ``[meta, [ctx, ...]]`` with
``markPx``), or ``marks=`` (e.g. :attr:`Imported.marks`: positionValue / |szi| of the
account payloads). Collateral: USDC at 1.

Accounts: one ``clearinghouseState`` per address (a file ``ADDRESS.json``, or a folder with
``clearinghouseState.json``):

- each ``assetPositions[].position``: qty ``szi``, entry ``entryPx``; an isolated one
  (``leverage.type`` "isolated") carries ``marginUsed − unrealizedPnl`` as its isolated margin;
- the USDC balance is ``marginSummary.accountValue`` − Σ cross ``unrealizedPnl`` − Σ isolated
  ``marginUsed``, so that the engine's equity is the account value;
- reported: ``account_value``, ``total_margin_used``, ``total_ntl_pos`` (marginSummary),
  ``cross_maintenance_margin_used`` (when present), ``withdrawable``;
- the accounts' chosen leverage per coin is :func:`leverages` (Hyperliquid's initial margin is
  notional / that leverage; pass it to :func:`universe` as ``leverage=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crossmargin.exceptions import ConfigError
from crossmargin.universe import Asset, Market, Universe
from crossmargin.venues.data.payload import (
    ACCOUNTS,
    AccountIds,
    Imported,
    Node,
    Rows,
    optional_payload,
    payload,
    reported_table,
)
from crossmargin.venues.presets import hyperliquid_brackets

VENUE = "hyperliquid"
PARAMS = ("meta", "metaAndAssetCtxs")
ACCOUNT_PAYLOADS = ("clearinghouseState",)
REPORTED = (
    "account_value",
    "total_margin_used",
    "total_ntl_pos",
    "cross_maintenance_margin_used",
    "withdrawable",
)
COLLATERAL = "USDC"


def _tables(meta: Node) -> dict[int, list[tuple[float, float]]]:
    out: dict[int, list[tuple[float, float]]] = {}
    tables = meta.get("marginTables")
    if tables is None:
        return out
    for entry in tables.items():
        pair = list(entry.items())
        if len(pair) != 2:
            raise entry.error("expected [id, table]")
        tiers = [(t.num("lowerBound"), t.num("maxLeverage")) for t in pair[1].list("marginTiers")]
        if not tiers:
            raise pair[1].error("no tiers", "marginTiers")
        out[pair[0].integer()] = sorted(tiers)
    return out


def brackets(
    tiers: Sequence[tuple[float, float]], leverage: float | None = None
) -> list[tuple[float, float, float]]:
    """Margin tiers (lower bound, max leverage) → brackets; maintenance 1 / (2 × max
    leverage) of the tier; initial max(1 / max leverage, 1 / ``leverage``)."""
    rows = hyperliquid_brackets(tiers)
    if leverage is None:
        return rows
    return [(b, max(i, 1.0 / leverage), m) for b, i, m in rows]


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
    leverage: Mapping[str, float] | None = None,
) -> Universe:
    """A :class:`~crossmargin.Universe` from ``meta`` (module docstring): one perp per coin
    with a mark (``symbols`` selects; an unknown one or one without a mark is a
    ``ConfigError``), USDC collateral. ``leverage`` (coin → chosen leverage) sets the initial
    rate to notional / leverage as Hyperliquid charges it.

    Example::

        from crossmargin.venues.data import hyperliquid, payload
        u = hyperliquid.universe(payload.read_params("tests/fixtures/venues/hyperliquid/params"),
                                 marks={"BTC": 26961.2})
    """
    ctxs = optional_payload(params, "metaAndAssetCtxs", VENUE)
    if "meta" in params or ctxs is None:
        meta = payload(params, "meta", VENUE)
    else:
        meta = next(ctxs.items())
    coins = meta.list("universe")
    mark: dict[str, float] = {}
    if ctxs is not None:
        parts = list(ctxs.items())
        if len(parts) != 2:
            raise ctxs.error("expected [meta, asset contexts]")
        names = [c.text("name") for c in parts[0].list("universe")]
        for name, ctx in zip(names, parts[1].items(), strict=False):
            if ctx.has("markPx"):
                mark[name] = ctx.num("markPx")
    mark.update({k: float(v) for k, v in (marks or {}).items()})
    tables = _tables(meta)
    spec = {c.text("name"): c for c in coins}
    chosen = list(symbols) if symbols is not None else [n for n in spec if n in mark]
    markets = []
    for name in chosen:
        if name not in spec:
            raise meta.error(f"unknown coin {name!r}", "universe")
        if name not in mark:
            raise ConfigError(
                f"{VENUE}: no mark for {name!r} (give metaAndAssetCtxs.json or marks=)",
                field=f"markets[{name}].mark",
            )
        c = spec[name]
        table = c.get("marginTableId")
        tid = None if table is None else table.integer()
        tiers = tables[tid] if tid in tables else [(0.0, c.num("maxLeverage"))]
        lev = None if leverage is None or name not in leverage else float(leverage[name])
        markets.append(Market(name, "perp", COLLATERAL, name, mark[name], brackets(tiers, lev)))
    return Universe([Asset(COLLATERAL, 1.0)], markets)


def _state(p: Mapping[str, Any], where: str) -> Node:
    if "" in p:
        return Node(p[""], f"{where}.json", ACCOUNTS)
    return payload(p, "clearinghouseState", where, ACCOUNTS)


def accounts(payloads: Mapping[str, Mapping[str, Any]]) -> Imported:
    """Book rows from ``clearinghouseState`` payloads, one per address (module docstring).

    Example::

        from crossmargin.venues.data import hyperliquid, payload
        acc = hyperliquid.accounts(
            payload.read_accounts("tests/fixtures/venues/hyperliquid/accounts"))
        acc.book(), acc.reported["account_value"]
    """
    ids = AccountIds()
    rows = Rows()
    reported: dict[int, dict[str, float]] = {}
    marks: dict[str, float] = {}
    for name in sorted(payloads):
        st = _state(payloads[name], f"{VENUE} {name}")
        a = ids(name)
        summary = st["marginSummary"]
        value = summary.num("accountValue")
        rep = reported.setdefault(a, {})
        rep["account_value"] = value
        rep["total_margin_used"] = summary.num("totalMarginUsed")
        rep["total_ntl_pos"] = summary.num("totalNtlPos")
        if st.has("crossMaintenanceMarginUsed"):
            rep["cross_maintenance_margin_used"] = st.num("crossMaintenanceMarginUsed")
        if st.has("withdrawable"):
            rep["withdrawable"] = st.num("withdrawable")
        cash = value
        for ap in st.list("assetPositions"):
            pos = ap["position"]
            coin = pos.text("coin")
            qty = pos.num("szi")
            upnl = pos.num("unrealizedPnl")
            if qty != 0:
                marks[coin] = pos.num("positionValue") / abs(qty)
            isolated = pos["leverage"].text("type") == "isolated"
            margin = pos.num("marginUsed") - upnl if isolated else 0.0
            cash -= pos.num("marginUsed") if isolated else upnl
            if qty != 0:
                rows.position(a, coin, qty, pos.num("entryPx"), margin)
        rows.balance(a, COLLATERAL, cash)
    balances, positions = rows.tables()
    return Imported(
        VENUE, balances, positions, ids.table(), reported_table(reported, REPORTED), marks
    )


def leverages(payloads: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The leverage the accounts chose per coin (``position.leverage.value``); a coin held at
    two leverages is a ``BookError`` (a universe has one initial rate per market)."""
    out: dict[str, tuple[float, str]] = {}
    for name in sorted(payloads):
        st = _state(payloads[name], f"{VENUE} {name}")
        for ap in st.list("assetPositions"):
            pos = ap["position"]
            coin, lev = pos.text("coin"), pos["leverage"].num("value")
            if coin in out and out[coin][0] != lev:
                raise pos.error(
                    f"{coin} is held at leverage {lev} here and {out[coin][0]} in {out[coin][1]}",
                    "leverage.value",
                )
            out[coin] = (lev, name)
    return {k: v[0] for k, v in out.items()}


__all__ = ["ACCOUNT_PAYLOADS", "PARAMS", "VENUE", "accounts", "brackets", "leverages", "universe"]
