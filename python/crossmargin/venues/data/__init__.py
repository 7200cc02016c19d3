"""Real venue data in: universes from venues' published parameter payloads, books from their
account payloads (already fetched JSON; no network call). One module per venue, each with
``universe(params, ...)`` → :class:`~crossmargin.Universe` and ``accounts(payloads)`` →
:class:`~crossmargin.venues.data.payload.Imported`; the shared parsing toolkit is
:mod:`crossmargin.venues.data.payload`. docs/MODEL.md "Venue payloads" has the mapping of
each venue's fields onto the model.

(The package is ``venues.data`` because ``crossmargin.venues.hyperliquid`` and
``crossmargin.venues.deribit`` already name the presets.)

Example::

    from crossmargin.venues.data import VENUES, payload
    v = VENUES["binance"]
    acc = v.accounts(payload.read_accounts("tests/fixtures/venues/binance/accounts"))
    u = v.universe(payload.read_params("tests/fixtures/venues/binance/params"), marks=acc.marks)
"""

from crossmargin.venues.data import (
    binance,
    bybit,
    deribit,
    drift,
    dydx,
    hyperliquid,
    okx,
    payload,
)
from crossmargin.venues.data.load import VENUES, load
from crossmargin.venues.data.payload import AccountIds, Imported, Node, account_id

__all__ = [
    "VENUES",
    "AccountIds",
    "Imported",
    "Node",
    "account_id",
    "binance",
    "bybit",
    "deribit",
    "drift",
    "dydx",
    "hyperliquid",
    "load",
    "okx",
    "payload",
]
