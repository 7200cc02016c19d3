"""Liquidation prices, the oracle: a geometric walk outward from the current price and a
bisection, on the reference's own account evaluation (no Rust)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from crossmargin.book import Book
from crossmargin.reference import margin as reference
from crossmargin.reference.prices import PriceOverrides, resolve
from crossmargin.risk.liqprice import S_MAX, S_MIN, LiqMove, check_move
from crossmargin.table import Table
from crossmargin.universe import Universe


# ---- the reference -----------------------------------------------------------------------
def _moved(
    universe: Universe,
    assets: list[float],
    marks: list[float],
    k: int,
    move: str,
    s: float,
) -> tuple[list[float], list[float]]:
    """Prices with market k's mark (``"mark"``) or its whole underlying (``"underlying"``)
    scaled by s."""
    a, m = list(assets), list(marks)
    if move == "mark":
        m[k] = marks[k] * s
        return a, m
    name = universe.markets[k].underlying
    for i, market in enumerate(universe.markets):
        if market.underlying == name and market.kind != "option":
            m[i] = marks[i] * s
    if name in universe.asset_index:
        i = universe.asset_index[name]
        a[i] = assets[i] * s
    return a, m


def _nearest_crossing(g: Callable[[float], float], step: float = 1.01) -> float:
    """The factor nearest 1 (log distance; ties downward) at which g changes sign, by a
    geometric walk outward in both directions and a bisection; NaN if none in range."""
    safe = g(1.0) >= 0.0
    lo_prev = hi_prev = 1.0
    while lo_prev > S_MIN or hi_prev < S_MAX:
        for side in (-1, 1):
            prev = lo_prev if side < 0 else hi_prev
            nxt = max(prev / step, S_MIN) if side < 0 else min(prev * step, S_MAX)
            if nxt == prev:
                continue
            if (g(nxt) >= 0.0) != safe:
                # Bisection between the last point on the starting side and the first beyond.
                p, q = prev, nxt
                for _ in range(200):
                    mid = 0.5 * (p + q)
                    if mid in (p, q):
                        break
                    if (g(mid) >= 0.0) == safe:
                        p = mid
                    else:
                        q = mid
                return p if g(p) >= 0.0 else q
            if side < 0:
                lo_prev = nxt
            else:
                hi_prev = nxt
    return math.nan


def reference_liquidation_prices(
    universe: Universe, book: Book, prices: PriceOverrides = None, move: LiqMove = "underlying"
) -> Table:
    """Liquidation and bankruptcy prices by plain loops: Table(account, market, row,
    liq_price, bankruptcy_price), rows in input order. Slow (hundreds of account evaluations
    per position); a test oracle."""
    check_move(move)
    assets, marks = resolve(universe, prices)
    accounts = reference.account_rows(universe, book)
    # Input rows of each account's positions, in the order account_rows appended them.
    rows_of: dict[int, list[int]] = {}
    for r, acct in enumerate(book.positions["account"].tolist()):
        rows_of.setdefault(acct, []).append(r)
    out: dict[int, tuple[int, str, float, float]] = {}
    for account_id, acct in accounts.items():
        for row, (k, qty, entry, isolated) in zip(
            rows_of.get(account_id, []), acct.positions, strict=True
        ):
            market = universe.markets[k]
            if qty == 0.0 or market.kind == "option":
                out[row] = (account_id, market.symbol, math.nan, math.nan)
                continue

            def g(
                s: float,
                bankruptcy: bool,
                k: int = k,
                qty: float = qty,
                entry: float = entry,
                isolated: float = isolated,
                acct: reference.AccountRows = acct,
            ) -> float:
                a, m = _moved(universe, assets, marks, k, move, s)
                if isolated > 0:
                    mk = universe.markets[k]
                    settle = a[universe.asset_index[mk.settle]]
                    upnl, _, mm = reference.position_numbers(mk, qty, entry, m[k], 1.0)
                    reserve = reference.fee_reserve(mk, qty, m[k], isolated + upnl)
                    required = reserve if bankruptcy else mm + reserve
                    return (isolated + upnl - required) * settle
                n = reference.evaluate_account(universe, acct, a, m)
                return n.adj_equity_maint - (n.fee_reserve if bankruptcy else n.mm)

            s_liq = _nearest_crossing(functools.partial(g, bankruptcy=False))
            s_bank = _nearest_crossing(functools.partial(g, bankruptcy=True))
            out[row] = (account_id, market.symbol, marks[k] * s_liq, marks[k] * s_bank)
    order = sorted(out)
    return Table(
        {
            "account": np.array([out[r][0] for r in order], dtype=np.int64),
            "market": np.array([out[r][1] for r in order] or [""], dtype=str)[: len(order)],
            "row": np.array(order, dtype=np.int64),
            "liq_price": np.array([out[r][2] for r in order], dtype=np.float64),
            "bankruptcy_price": np.array([out[r][3] for r in order], dtype=np.float64),
        }
    )


__all__ = ["liquidation_prices", "reference_liquidation_prices"]
liquidation_prices = reference_liquidation_prices
