"""Capital efficiency: the collateral the same positions need under isolated, cross and (when
the engine has it) portfolio margin, with utilisation and leverage.

Definitions (the kernel is ``rust/crossmargin-core/src/efficiency.rs``). Every position j is
taken as cross whatever its flag in the book, and margined alone: IM_j its initial
requirement, c_j its contribution to the initial pool (min(uPnL, 0) + w·max(uPnL, 0)).

- ``required_isolated`` = Σ_j max(IM_j − c_j, 0): each position carries its own margin; the
  profit of one funds nothing else;
- ``required_cross`` = max(Σ_j IM_j − Σ_j c_j, 0): one pool (the standard model);
- ``required_portfolio`` (only when the engine has the portfolio model and the universe its
  parameters): max(im − (adj_equity_initial − collateral), 0) of the portfolio model on the
  book with every position cross (:func:`all_cross`), like the two columns above (isolated
  margins left out);
- ``savings`` = required_isolated − required_cross (≥ 0); ``savings_fraction`` = savings /
  required_isolated (0 when nothing is required);
- ``im_as_cross`` = Σ_j IM_j: the initial requirement of every position, isolated ones
  included, each taken as cross — what both hypothetical regimes are built from. It is
  **not** ``Engine.evaluate``'s ``im``, which counts cross positions only (an isolated
  position's requirement is met by its own margin, outside the pool): the two agree for an
  account without isolated positions, and for every account once the book's positions are
  all cross; otherwise ``im_as_cross`` = evaluate's ``im`` + the isolated positions' IM;
- ``utilisation`` = im_as_cross / equity and ``leverage`` = Σ |notional| / equity (equity
  includes the isolated margins, notional every perp and future); both are 0 without
  positions and +inf when equity ≤ 0 with positions.

Amounts in USD. Rows: one per account, ascending id (as ``Engine.evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.result import MarginResult
from crossmargin.table import Table, Tabular


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den; 0 where num = 0, +inf where num > 0 and den ≤ 0."""
    out = np.zeros(len(num))
    pos = den > 0
    np.divide(num, den, out=out, where=pos)
    out[~pos & (num > 0)] = np.inf
    return out


def all_cross(book: Book) -> Book:
    """The book with every position cross and no isolated margin (the positions both
    hypothetical regimes compare); the book itself when no position is isolated."""
    iso = np.asarray(book.positions["isolated_margin"], dtype=np.float64)
    if not (iso > 0).any():  # 0 or NaN: cross
        return book
    return Book(book.balances, {**book.positions, "isolated_margin": np.zeros(len(iso))})


@dataclass(frozen=True)
class CapitalEfficiency(Tabular):
    """``accounts``: a Table, one row per account; ``aggregate``: book-level totals.

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"accounts"``, the
    only one.
    """

    _TABLES = ("accounts",)

    accounts: Table
    aggregate: dict[str, Any]

    def __repr__(self) -> str:
        return f"CapitalEfficiency(accounts={len(self.accounts)}, aggregate={self.aggregate})"


def capital_efficiency(
    engine: _core.Engine,
    book: Book,
    view: _core.BookView,
    prices: tuple[np.ndarray, np.ndarray],
    portfolio: MarginResult | None = None,
) -> CapitalEfficiency:
    """Isolated vs cross (vs portfolio) requirement per account and in aggregate: ``book``
    bound to the engine's universe as ``view``, at ``prices`` (asset prices, marks);
    ``portfolio``: the portfolio model's result on :func:`all_cross` of the book, when there
    is one. The implementation of :meth:`crossmargin.Engine.capital_efficiency`."""
    c = engine.efficiency(view, prices)
    savings = c["required_isolated"] - c["required_cross"]
    cols: dict[str, np.ndarray] = {
        "account": book.accounts,
        "equity": c["equity"],
        "collateral": c["collateral"],
        "notional": c["notional"],
        "im_as_cross": c["im"],
        "required_isolated": c["required_isolated"],
        "required_cross": c["required_cross"],
    }
    has_pm = portfolio is not None
    if portfolio is not None:
        pm = portfolio
        cols["required_portfolio"] = np.maximum(
            pm.im - (pm.adj_equity_initial - c["collateral"]), 0.0
        )
    cols["savings"] = savings
    cols["savings_fraction"] = _ratio(savings, c["required_isolated"])
    cols["utilisation"] = _ratio(c["im"], c["equity"])
    cols["leverage"] = _ratio(c["notional"], c["equity"])
    table = Table(cols)

    iso, cross = float(c["required_isolated"].sum()), float(c["required_cross"].sum())
    equity_pos = float(c["equity"][c["equity"] > 0].sum())
    with_positions = (c["notional"] > 0) & (c["equity"] > 0)
    agg: dict[str, Any] = {
        "accounts": len(table),
        "equity": float(c["equity"].sum()),
        "notional": float(c["notional"].sum()),
        "im_as_cross": float(c["im"].sum()),
        "required_isolated": iso,
        "required_cross": cross,
        "savings": iso - cross,
        "savings_fraction": (iso - cross) / iso if iso > 0 else 0.0,
        "utilisation": float(c["im"].sum()) / equity_pos if equity_pos > 0 else float("inf"),
        "leverage": float(c["notional"].sum()) / equity_pos if equity_pos > 0 else float("inf"),
        "median_leverage": float(np.median(cols["leverage"][with_positions]))
        if with_positions.any()
        else 0.0,
    }
    if has_pm:
        pm_total = float(cols["required_portfolio"].sum())
        agg["required_portfolio"] = pm_total
        agg["savings_portfolio_vs_cross"] = cross - pm_total
    return CapitalEfficiency(table, agg)


__all__ = ["CapitalEfficiency", "all_cross", "capital_efficiency"]
