"""Live monitoring, plainly (docs/MODEL.md "Live monitoring", "Fills"): an account's level,
and a fill turned into the position's new state. The test oracle of
:class:`crossmargin.Monitor`."""

from __future__ import annotations

import math
from dataclasses import dataclass

LEVELS = ("ok", "margin_call", "liquidation", "bankruptcy")


def level(
    equity: float, adj_equity_maint: float, mm: float, liquidatable: bool, margin_call: float
) -> str:
    """The highest level whose test the account meets."""
    if equity < 0:
        return "bankruptcy"
    if liquidatable:
        return "liquidation"
    if mm > 0:
        ratio = math.inf if adj_equity_maint <= 0 else mm / adj_equity_maint
        if ratio >= margin_call:
            return "margin_call"
    return "ok"


@dataclass(frozen=True)
class Filled:
    qty: float
    entry: float
    realised: float
    cash: float
    isolated: float


def fill(
    qty: float,
    entry: float,
    isolated: float,
    trade: float,
    price: float,
    contract_size: float,
    inverse: bool,
    option: bool,
) -> Filled:
    """Position ``qty`` at average ``entry`` after a fill of ``trade`` contracts (signed,
    > 0 buys) at ``price``."""
    new_qty = qty + trade
    size = contract_size
    if qty == 0 or (qty > 0) == (trade > 0):
        # Increase: average entry weighted by size (inverse: by coin value, Bybit).
        if qty == 0:
            new_entry = price
        elif inverse and not option:
            new_entry = (abs(qty) + abs(trade)) / (abs(qty) / entry + abs(trade) / price)
        else:
            new_entry = (abs(qty) * entry + abs(trade) * price) / (abs(qty) + abs(trade))
        realised = 0.0
    else:
        # Reduce: the closed part realises its P&L at the fill price (moving-average cost).
        closed = math.copysign(min(abs(trade), abs(qty)), qty)
        if option:
            realised = 0.0
        elif inverse:
            realised = closed * size * (1.0 / entry - 1.0 / price)
        else:
            realised = closed * size * (price - entry)
        if new_qty == 0:
            new_entry = 0.0
        elif (new_qty > 0) == (qty > 0):
            new_entry = entry
        else:
            new_entry = price
    premium = -(trade * size * price) if option else 0.0
    back = isolated if new_qty == 0 else 0.0
    return Filled(
        new_qty, new_entry, realised, realised + premium + back, 0.0 if new_qty == 0 else isolated
    )
