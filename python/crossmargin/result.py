"""Per-account margin results."""

from __future__ import annotations

from typing import Any

import numpy as np

from crossmargin.table import Table

MARGIN_COLUMNS = (
    "account",
    "equity",
    "upnl",
    "adj_equity_initial",
    "adj_equity_maint",
    "im",
    "mm",
    "free_collateral",
    "margin_ratio",
    "liquidatable",
    "bankrupt",
)

#: The raw totals beside MARGIN_COLUMNS under fixed-point arithmetic: int64 counts of the
#: value unit (docs/MODEL.md "Fixed-point arithmetic").
RAW_COLUMNS = (
    "total_collateral_initial_raw",
    "total_collateral_maint_raw",
    "margin_requirement_initial_raw",
    "margin_requirement_maint_raw",
)

#: The columns of a MarginResult that are amounts of money (what ``unit=`` restates).
MONEY_COLUMNS = (
    "equity",
    "upnl",
    "adj_equity_initial",
    "adj_equity_maint",
    "im",
    "mm",
    "free_collateral",
)


def in_units(cols: dict[str, Any], price: float) -> dict[str, Any]:
    """The money columns of ``cols`` (USD) divided by ``price`` (USD per unit of an asset);
    ratios and flags unchanged."""
    return {k: v / price if k in MONEY_COLUMNS else v for k, v in cols.items()}


class MarginResult(Table):
    """One row per account (ascending id): docs/MODEL.md "Standard cross margin" as numpy arrays. A
    Table: ``to_pandas()``, ``to_arrow()``, ``to_polars()``, ``to_numpy()``,
    ``__arrow_c_stream__`` and ``to_parquet(path)`` convert this table (the result
    protocol, :mod:`crossmargin.table`)."""

    __slots__ = ()

    account: np.ndarray
    equity: np.ndarray
    upnl: np.ndarray
    adj_equity_initial: np.ndarray
    adj_equity_maint: np.ndarray
    im: np.ndarray
    mm: np.ndarray
    free_collateral: np.ndarray
    margin_ratio: np.ndarray
    liquidatable: np.ndarray
    bankrupt: np.ndarray

    def summary(self) -> dict[str, Any]:
        """Book-level totals: counts, sums, and the maintenance shortfall of the accounts
        below maintenance (what the liquidation engine must recover)."""
        shortfall = np.maximum(self.mm - self.adj_equity_maint, 0.0)
        finite = self.margin_ratio[np.isfinite(self.margin_ratio)]
        return {
            "accounts": len(self),
            "liquidatable": int(self.liquidatable.sum()),
            "bankrupt": int(self.bankrupt.sum()),
            "equity": float(self.equity.sum()),
            "upnl": float(self.upnl.sum()),
            "adj_equity_maint": float(self.adj_equity_maint.sum()),
            "im": float(self.im.sum()),
            "mm": float(self.mm.sum()),
            "free_collateral": float(self.free_collateral.sum()),
            "maint_shortfall": float(shortfall.sum()),
            "max_margin_ratio": float(finite.max()) if len(finite) else 0.0,
            "accounts_exhausted": int(np.isinf(self.margin_ratio).sum()),
        }


__all__ = ["MARGIN_COLUMNS", "RAW_COLUMNS", "MarginResult"]
