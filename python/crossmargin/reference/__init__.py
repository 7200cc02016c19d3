"""The pure-Python reference engine: the same rules as the Rust core, written to be read.

The test oracle (differential tests demand agreement to 1e-9 relative) and the pure-Python
baseline of the benchmarks; production code never imports it. :mod:`.margin` holds the
standard model, :mod:`.portfolio` options and portfolio margin, :mod:`.liquidations`
the liquidation cascade, :mod:`.solvency` funding, liabilities and the Merkle-sum tree,
:mod:`.liqprice` liquidation prices, :mod:`.monitor` risk levels and fills, :mod:`.prices`
price overrides and shocks (its own resolver: the reference never imports
:mod:`crossmargin.prices`).
"""

from crossmargin.reference import (
    liqprice,
    liquidations,
    margin,
    monitor,
    portfolio,
    prices,
    solvency,
)
from crossmargin.reference.liqprice import liquidation_prices
from crossmargin.reference.margin import (
    bracket_requirement,
    evaluate,
    evaluate_account,
    greeks,
    margin_ratio,
    position_numbers,
    size_discounted_weight,
    size_premium_weight,
    tiered_value,
)

cascade = liquidations.cascade

__all__ = [
    "bracket_requirement",
    "cascade",
    "evaluate",
    "evaluate_account",
    "greeks",
    "liqprice",
    "liquidation_prices",
    "liquidations",
    "margin",
    "margin_ratio",
    "monitor",
    "portfolio",
    "position_numbers",
    "prices",
    "size_discounted_weight",
    "size_premium_weight",
    "solvency",
    "tiered_value",
]
