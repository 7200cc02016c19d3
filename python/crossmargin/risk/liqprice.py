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
NaN where no price within a million-fold move reaches maintenance, for zero positions and
for option positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.exceptions import ConfigError
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.table import Table

if TYPE_CHECKING:
    from crossmargin.engine import Engine

LiqMove = Literal["underlying", "mark"]
LIQ_MOVES: tuple[str, ...] = ("underlying", "mark")

#: The search range of the price factor, as in the Rust core.
S_MIN, S_MAX = 1e-6, 1e6


def check_move(move: str) -> None:
    if move not in LIQ_MOVES:
        raise ConfigError(f"move: {move!r} is not one of {', '.join(LIQ_MOVES)}", field="move")


def liquidation_prices(
    engine: Engine, book: Book, prices: PriceOverrides = None, move: LiqMove = "underlying"
) -> Table:
    """Table(account, market, row, liq_price): see the module docstring."""
    check_move(move)
    u = engine.universe
    grouped, asset_remap, market_remap = book.grouping(u)
    asset_prices, marks = resolve(u, prices)
    cols = _core.liquidation_price_columns(
        engine._pool,
        u._compiled,
        grouped,
        asset_remap,
        market_remap,
        asset_prices,
        marks,
        move,
    )
    symbols = np.array([m.symbol for m in u.markets] or [""], dtype=str)
    return Table(
        {
            "account": cols["account"],
            "market": symbols[cols["market"]],
            "row": cols["row"].astype(np.int64),
            "liq_price": cols["liq_price"],
        }
    )


__all__ = ["LIQ_MOVES", "S_MAX", "S_MIN", "LiqMove", "check_move", "liquidation_prices"]
