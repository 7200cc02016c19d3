"""Liquidation prices: the mark of each position's market at which its account (cross) or the
position itself (isolated) reaches maintenance, everything else fixed.

The engine's version runs in Rust (``rust/crossmargin-core/src/liqprice.rs``, the rules and
the solver are described there and in docs/MODEL.md, "Liquidation prices", "Which root" and
"Search"). :func:`crossmargin.reference.liquidation_prices` is the deliberately slow oracle.

``move`` chooses what "everything else fixed" means:

- ``"underlying"`` (default): every perp and future on the position's underlying and the
  asset of the same symbol (a BTC balance backing a BTC perp) move together by one factor;
- ``"mark"``: only the position's own mark moves.

Rows: one per position, accounts ascending and, within an account, in the book's order of
market codes (``row`` gives each position's row in the input positions table, for joins).
A hedged book (docs/MODEL.md "Book") adds ``side``: each leg has a liquidation price of its
own (a cross leg's is its account's, at its market's mark; an isolated leg's its own).
NaN where no price within a million-fold move reaches maintenance, for zero positions and
for option positions.

``bankruptcy_price`` is found the same way for the price at which the pool (the account's
adjusted maintenance equity, or the isolated margin and uPnL) is worth nothing net of its
closing-fee reserves (docs/MODEL.md "Bankruptcy price").
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from crossmargin import _core
from crossmargin.exceptions import ConfigError
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.table import Table
from crossmargin.universe import Universe

LiqMove = Literal["underlying", "mark"]
LIQ_MOVES: tuple[str, ...] = _core.LIQ_MOVES

#: The search range of the price factor (the Rust core's ``liqprice::S_MIN`` / ``S_MAX``).
S_MIN: float = _core.LIQ_S_MIN
S_MAX: float = _core.LIQ_S_MAX


def check_move(move: str) -> None:
    if move not in LIQ_MOVES:
        raise ConfigError(f"move: {move!r} is not one of {', '.join(LIQ_MOVES)}", field="move")


def liquidation_prices(
    engine: _core.Engine,
    universe: Universe,
    book: _core.BookView,
    prices: PriceOverrides = None,
    move: LiqMove = "underlying",
) -> Table:
    """Table(account, market, row, [side,] liq_price, bankruptcy_price) of ``book`` (bound to
    ``universe``, which ``engine`` holds compiled): see the module docstring; the
    implementation of :meth:`crossmargin.Engine.liquidation_prices`."""
    check_move(move)
    u = universe
    cols = engine.liquidation_prices(book, resolve(u, prices), move)
    # market: object strings made by the binding (one str per symbol, referenced per row; a
    # fixed-width unicode column of millions of rows costs more than the search itself)
    out = {
        "account": cols["account"],
        "market": cols["market"],
        "row": cols["row"],
    }
    side = np.asarray(cols["side"])
    if side.any():
        out["side"] = np.array(_core.POSITION_SIDES, dtype=object)[side.astype(np.intp)]
    return Table(
        {**out, "liq_price": cols["liq_price"], "bankruptcy_price": cols["bankruptcy_price"]}
    )


__all__ = ["LIQ_MOVES", "S_MAX", "S_MIN", "LiqMove", "check_move", "liquidation_prices"]
