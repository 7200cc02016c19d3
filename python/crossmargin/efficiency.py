"""Capital efficiency: the collateral the same positions need under isolated, cross and (when
the engine has it) portfolio margin, with utilisation and leverage.

Definitions (the kernel is ``rust/crossmargin-core/src/efficiency.rs``). Every position j is
taken as cross whatever its flag in the book, and margined alone: IM_j its initial
requirement, c_j its contribution to the initial pool (min(uPnL, 0) + w·max(uPnL, 0)).

- ``required_isolated`` = Σ_j max(IM_j − c_j, 0): each position carries its own margin; the
  profit of one funds nothing else;
- ``required_cross`` = max(Σ_j IM_j − Σ_j c_j, 0): one pool (the standard model);
- ``required_portfolio`` (only when ``"portfolio"`` is in ``crossmargin.engine.MODELS``):
  max(im − (adj_equity_initial − collateral), 0) of the portfolio model on the book as given;
- ``savings`` = required_isolated − required_cross (≥ 0); ``savings_fraction`` = savings /
  required_isolated (0 when nothing is required);
- ``utilisation`` = im / equity and ``leverage`` = Σ |notional| / equity, with ``im`` the
  initial requirement of all positions; both are 0 without positions and +inf when
  equity ≤ 0 with positions.

Amounts in USD. Rows: one per account, ascending id (as ``Engine.evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.table import Table

if TYPE_CHECKING:
    from crossmargin.engine import Engine


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den; 0 where num = 0, +inf where num > 0 and den ≤ 0."""
    out = np.zeros(len(num))
    pos = den > 0
    np.divide(num, den, out=out, where=pos)
    out[~pos & (num > 0)] = np.inf
    return out


@dataclass(frozen=True)
class CapitalEfficiency:
    """``accounts``: a Table, one row per account; ``aggregate``: book-level totals."""

    accounts: Table
    aggregate: dict[str, Any]

    def to_pandas(self) -> Any:
        return self.accounts.to_pandas()

    def __repr__(self) -> str:
        return f"CapitalEfficiency(accounts={len(self.accounts)}, aggregate={self.aggregate})"


def capital_efficiency(
    engine: Engine, book: Book, prices: PriceOverrides = None
) -> CapitalEfficiency:
    """Isolated vs cross (vs portfolio) requirement per account and in aggregate."""
    from crossmargin import engine as engine_module

    u = engine.universe
    asset_remap, market_remap = book.remaps(u)
    asset_prices, marks = resolve(u, prices)
    c = _core.efficiency_columns(
        engine._pool,
        u._compiled,
        book._grouped,
        asset_remap,
        market_remap,
        asset_prices,
        marks,
    )
    savings = c["required_isolated"] - c["required_cross"]
    cols: dict[str, np.ndarray] = {
        "account": book.accounts,
        "equity": c["equity"],
        "collateral": c["collateral"],
        "notional": c["notional"],
        "im": c["im"],
        "required_isolated": c["required_isolated"],
        "required_cross": c["required_cross"],
    }
    has_pm = "portfolio" in engine_module.MODELS and u.portfolio is not None
    if has_pm:
        pm = engine.evaluate(book, prices=prices, model="portfolio")  # type: ignore[arg-type]
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
        "im": float(c["im"].sum()),
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


__all__ = ["CapitalEfficiency", "capital_efficiency"]
