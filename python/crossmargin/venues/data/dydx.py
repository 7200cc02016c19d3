"""dYdX v4 from its indexer's payloads: a universe from ``perpetualMarkets``, book rows from
``subaccounts`` (docs/MODEL.md "Venue payloads").

Parameters: ``perpetualMarkets`` (``GET /v4/perpetualMarkets``): ``markets[ticker]`` with
``initialMarginFraction`` (the base IMF), ``maintenanceMarginFraction`` (MMF),
``openInterest`` (base units), ``openInterestLowerCap`` / ``openInterestUpperCap`` (USDC) and
``oraclePrice`` (the mark). Each market is one bracket (∞, IMF_eff, MMF) with IMF_eff the
open-interest-scaled fraction at OI × oracle price
(:func:`~crossmargin.venues.dydx_effective_imf`, ``liquidity_tier.go``); collateral USDC at 1.

Accounts: ``subaccount`` payloads (``GET /v4/addresses/{address}/subaccountNumber/{n}``,
``{"subaccount": {...}}``), one per file, named ``address/subaccountNumber``:

- USDC balance: ``assetPositions.USDC.size`` (negative when ``side`` is SHORT) + Σ size ×
  entryPrice of the open positions: dYdX's quote balance has paid for (or been paid for) each
  position at entry and values it at size × oracle price, while the model books the position
  at its entry and adds uPnL = size × (mark − entry); both give equity = USDC + Σ size × mark;
- positions: ``openPerpetualPositions[ticker]``: ``size`` (signed; a SHORT with a positive
  size is negated), ``entryPrice``; marks reported as entryPrice + unrealizedPnl / size;
- reported: ``equity`` and ``free_collateral`` (``freeCollateral``), which the engine's
  equity and free collateral reproduce (dYdX: free collateral = equity − Σ |notional| × IMF).
"""

from __future__ import annotations

import math
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
    payload,
    reported_table,
)
from crossmargin.venues.presets import dydx_effective_imf

VENUE = "dydx"
PARAMS = ("perpetualMarkets",)
ACCOUNT_PAYLOADS = ("subaccount",)
REPORTED = ("equity", "free_collateral")
COLLATERAL = "USDC"
INF = math.inf


def universe(
    params: Mapping[str, Any],
    *,
    marks: Mapping[str, float] | None = None,
    symbols: Sequence[str] | None = None,
) -> Universe:
    """A :class:`~crossmargin.Universe` from ``perpetualMarkets`` (module docstring): every
    market (or those of ``symbols``; an unknown ticker is a ``ConfigError``) at its oracle
    price, ``marks`` overriding.

    Example::

        from crossmargin.venues.data import dydx, payload
        u = dydx.universe(payload.read_params("tests/fixtures/venues/dydx/params"))
    """
    node = payload(params, "perpetualMarkets", VENUE)["markets"]
    specs: dict[str, Node] = dict(node.entries())
    chosen = list(symbols) if symbols is not None else list(specs)
    override = {k: float(v) for k, v in (marks or {}).items()}
    markets = []
    for t in chosen:
        if t not in specs:
            raise node.error(f"unknown market {t!r}")
        m = specs[t]
        price = override[t] if t in override else m.num("oraclePrice")
        if not price > 0:
            raise ConfigError(f"{VENUE}: market {t!r} has no positive price", field=m.where())
        imf = m.num("initialMarginFraction")
        oi_usd = m.opt_num("openInterest", 0.0) * m.num("oraclePrice")
        eff = dydx_effective_imf(
            imf,
            oi_usd,
            m.opt_num("openInterestLowerCap", 0.0),
            m.opt_num("openInterestUpperCap", 0.0),
        )
        base = t.split("-")[0]
        markets.append(
            Market(
                t, "perp", COLLATERAL, base, price, [(INF, eff, m.num("maintenanceMarginFraction"))]
            )
        )
    return Universe([Asset(COLLATERAL, 1.0)], markets)


def accounts(payloads: Mapping[str, Mapping[str, Any]]) -> Imported:
    """Book rows from subaccount payloads (module docstring); the account name is the
    payload's ``address/subaccountNumber`` (the file name when it carries none).

    Example::

        from crossmargin.venues.data import dydx, payload
        acc = dydx.accounts(payload.read_accounts("tests/fixtures/venues/dydx/accounts"))
    """
    ids = AccountIds()
    rows = Rows()
    reported: dict[int, dict[str, float]] = {}
    marks: dict[str, float] = {}
    for file in sorted(payloads):
        p = payloads[file]
        root = (
            Node(p[""], f"{VENUE} {file}.json", ACCOUNTS)
            if "" in p
            else payload(p, "subaccount", f"{VENUE} {file}", ACCOUNTS)
        )
        sub = root["subaccount"] if root.has("subaccount") else root
        name = file
        if sub.has("address"):
            number = sub.integer("subaccountNumber") if sub.has("subaccountNumber") else 0
            name = f"{sub.text('address')}/{number}"
        a = ids(name)
        reported[a] = {"equity": sub.num("equity"), "free_collateral": sub.num("freeCollateral")}
        cost = 0.0
        perps = sub.get("openPerpetualPositions")
        if perps is not None:
            for t, pp in perps.entries():
                size = pp.num("size")
                if pp.has("side") and pp.text("side") == "SHORT" and size > 0:
                    size = -size
                if size == 0:
                    continue
                entry = pp.num("entryPrice")
                if pp.has("unrealizedPnl"):
                    marks[t] = entry + pp.num("unrealizedPnl") / size
                cost += size * entry
                rows.position(a, pp.text("market") if pp.has("market") else t, size, entry)
        # The quote balance, with the positions' entry cost added back (module docstring).
        quote = {COLLATERAL: cost}
        assets = sub.get("assetPositions")
        for sym, ap in [] if assets is None else assets.entries():
            size = ap.num("size")
            if ap.has("side") and ap.text("side") == "SHORT" and size > 0:
                size = -size
            symbol = ap.text("symbol") if ap.has("symbol") else sym
            quote[symbol] = quote.get(symbol, 0.0) + size
        for symbol, qty in quote.items():
            rows.balance(a, symbol, qty)
    balances, positions = rows.tables()
    return Imported(
        VENUE, balances, positions, ids.table(), reported_table(reported, REPORTED), marks
    )


__all__ = ["ACCOUNT_PAYLOADS", "PARAMS", "VENUE", "accounts", "universe"]
