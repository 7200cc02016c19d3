"""Liquidation cascades: how a shock on a thin book propagates through a cross-margined pool
(configuration, liquidity models, results and the run; docs/MODEL.md "Liquidation
cascades")."""

from crossmargin.cascade.model import (
    CASCADE_MODES,
    DELEVERAGE,
    EVENT_KINDS,
    LIQUIDITY_MODELS,
    CascadeConfig,
    CascadeResult,
    CascadeRules,
    DepthCurve,
    LedgerError,
    Liquidity,
    NoImpact,
    SqrtImpact,
    assemble,
    insurance_by_asset,
    moved_prices,
    path_prices,
    quote_asset,
    run_cascade,
)

__all__ = [
    "CASCADE_MODES",
    "DELEVERAGE",
    "EVENT_KINDS",
    "LIQUIDITY_MODELS",
    "CascadeConfig",
    "CascadeResult",
    "CascadeRules",
    "DepthCurve",
    "LedgerError",
    "Liquidity",
    "NoImpact",
    "SqrtImpact",
    "assemble",
    "insurance_by_asset",
    "moved_prices",
    "path_prices",
    "quote_asset",
    "run_cascade",
]
