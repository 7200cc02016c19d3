"""One venue's payload folders → a universe and book rows (what ``crossmargin import`` runs)."""

from __future__ import annotations

from pathlib import Path

from crossmargin.exceptions import ConfigError
from crossmargin.universe import Universe
from crossmargin.venues.data import binance, bybit, deribit, drift, dydx, hyperliquid, okx
from crossmargin.venues.data.payload import Imported, read_accounts, read_params

#: Venue name → its adapter module (``universe``, ``accounts``, ``PARAMS``, ``VENUE``).
VENUES = {
    "binance": binance,
    "bybit": bybit,
    "hyperliquid": hyperliquid,
    "dydx": dydx,
    "okx": okx,
    "deribit": deribit,
    "drift": drift,
}


def load(venue: str, params: str | Path, accounts: str | Path) -> tuple[Universe, Imported]:
    """Reads ``accounts`` (a folder of account payloads,
    :func:`~crossmargin.venues.data.payload.read_accounts`) and ``params`` (a folder of
    parameter payloads, :func:`~crossmargin.venues.data.payload.read_params`) of ``venue``,
    and builds the universe at the marks the account payloads report (a venue whose
    parameters carry prices, such as dYdX's oracle prices, uses those for the markets no
    account reports).

    Returns ``(universe, imported)``; ``imported.book()`` is the book. An unknown venue is a
    ``ConfigError`` listing the known ones.

    Example::

        from crossmargin.venues.data.load import load
        u, acc = load("dydx", "tests/fixtures/venues/dydx/params",
                      "tests/fixtures/venues/dydx/accounts")
    """
    if venue not in VENUES:
        raise ConfigError(f"venue: {venue!r} is not one of {', '.join(VENUES)}", field="venue")
    module = VENUES[venue]
    raw = read_accounts(accounts)
    if module is drift:  # Drift's balances are scaled by the spot markets' interest indices
        imported = drift.accounts(raw, read_params(params))
    else:
        imported = module.accounts(raw)
    if module is bybit:  # Bybit's wallet payload values each coin in USD
        universe = bybit.universe(
            read_params(params), marks=imported.marks, prices=bybit.coin_prices(raw)
        )
    elif module is okx:  # OKX's balance payload values each coin in USD; positions carry lever
        universe = okx.universe(
            read_params(params),
            marks=imported.marks,
            leverage=okx.leverages(raw),
            prices=okx.coin_prices(raw),
        )
    else:
        universe = module.universe(read_params(params), marks=imported.marks)
    return universe, imported


__all__ = ["VENUES", "load"]
