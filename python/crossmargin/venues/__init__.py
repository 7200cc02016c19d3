"""Venue rule sets as universes (Binance, OKX, Bybit, Deribit, Drift v2, dYdX v4,
Hyperliquid) with their published parameters, and the same book under each venue's rules
(:func:`map_book`, :func:`compare`); Drift v2 exactly, from a market snapshot, in Drift's
fixed-point arithmetic (:func:`drift_universe`)."""

from crossmargin.venues.drift import drift_universe
from crossmargin.venues.presets import (
    DEFAULT_PRICES,
    PRESETS,
    binance_usdm,
    bybit_unified,
    compare,
    deribit,
    drift_v2,
    dydx_effective_imf,
    dydx_v4,
    hyperliquid,
    hyperliquid_brackets,
    linear_rate_brackets,
    maintenance_deductions,
    map_book,
    okx_contract_brackets,
    okx_multi_currency,
    requirement_side,
    tier_brackets,
    to_toml,
    usd_tiers,
    write_examples,
)

__all__ = [
    "DEFAULT_PRICES",
    "PRESETS",
    "binance_usdm",
    "bybit_unified",
    "compare",
    "deribit",
    "drift_universe",
    "drift_v2",
    "dydx_effective_imf",
    "dydx_v4",
    "hyperliquid",
    "hyperliquid_brackets",
    "linear_rate_brackets",
    "maintenance_deductions",
    "map_book",
    "okx_contract_brackets",
    "okx_multi_currency",
    "requirement_side",
    "tier_brackets",
    "to_toml",
    "usd_tiers",
    "write_examples",
]
