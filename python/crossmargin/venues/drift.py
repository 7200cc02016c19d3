"""Drift protocol v2 from a market snapshot: the universe of Drift's own spot and perp market
accounts, in Drift's fixed-point arithmetic (docs/MODEL.md "Fixed-point arithmetic").

A snapshot gives each market's fields as Drift stores them (drift-labs/protocol-v2
programs/drift/src/state/spot_market.rs ``SpotMarket``, state/perp_market.rs ``PerpMarket``;
driftpy's ``SpotMarketAccount`` / ``PerpMarketAccount`` carry the same names), raw integers in
Drift's units: weights and margin ratios in 1e-4 (``SPOT_WEIGHT_PRECISION``,
``MARGIN_PRECISION``), imf factors in 1e-6 (``SPOT_IMF_PRECISION``), oracle prices and USD
values in 1e-6 (``PRICE_PRECISION``, ``QUOTE_PRECISION``), token amounts in 10^-decimals.
:func:`drift_universe` turns it into a :class:`~crossmargin.Universe` whose
``Engine.evaluate`` returns Drift's total collateral and margin requirement to the
micro-dollar (the ``*_raw`` columns) and Drift's liquidation test, total collateral <
maintenance requirement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from crossmargin.exceptions import ConfigError, ConfigTypeError
from crossmargin.universe import Asset, FixedPoint, Market, Universe

# programs/drift/src/math/constants.rs
PRICE_PRECISION = 10**6
QUOTE_PRECISION = 10**6
SPOT_WEIGHT_PRECISION = 10**4
MARGIN_PRECISION = 10**4
SPOT_IMF_PRECISION = 10**6
# MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN = 100 * QUOTE_PRECISION: at initial margin a perp
# position's weighted positive P&L counts at most 100 USD (math/margin.rs
# calculate_perp_position_value_and_pnl, "safety guard for dangerously configured perp market").
MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN = 100.0

SPOT_FIELDS = (
    "symbol",
    "decimals",
    "oracle_price",
    "initial_asset_weight",
    "maintenance_asset_weight",
    "initial_liability_weight",
    "maintenance_liability_weight",
    "imf_factor",
)
PERP_FIELDS = (
    "symbol",
    "oracle_price",
    "margin_ratio_initial",
    "margin_ratio_maintenance",
    "imf_factor",
    "unrealized_pnl_initial_asset_weight",
    "unrealized_pnl_maintenance_asset_weight",
    "unrealized_pnl_imf_factor",
)


def _field(row: Any, name: str, where: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        value = row.get(name, default)
    else:
        value = getattr(row, name, default)
    if value is None:
        raise ConfigError(f"{where}.{name}: missing", field=f"{where}.{name}")
    return value


def _raw(row: Any, name: str, where: str, default: Any = None) -> int:
    value = _field(row, name, where, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigTypeError(
            f"{where}.{name}: {value!r} is not a raw integer ≥ 0 (Drift's fixed-point unit)",
            field=f"{where}.{name}",
        )
    return value


def drift_universe(
    spot_markets: Sequence[Any],
    perp_markets: Sequence[Any] = (),
    *,
    quote: str | None = None,
    arithmetic: str = "fixed",
) -> Universe:
    """A universe from a Drift v2 market snapshot.

    Parameters:
        spot_markets: one mapping (or object with these attributes) per spot market, first
            the quote market (Drift's market index 0, USDC): ``symbol``, ``decimals``,
            ``oracle_price`` (1e-6 USD), ``initial_asset_weight``,
            ``maintenance_asset_weight``, ``initial_liability_weight``,
            ``maintenance_liability_weight`` (1e-4), ``imf_factor`` (1e-6), optionally
            ``scale_initial_asset_weight_start`` (1e-6 USD) with ``deposits`` (the market's
            total deposits, in 10^-decimals tokens).
        perp_markets: per perp market: ``symbol``, ``oracle_price`` (1e-6),
            ``margin_ratio_initial``, ``margin_ratio_maintenance`` (1e-4), ``imf_factor`` (1e-6),
            ``unrealized_pnl_initial_asset_weight``, ``unrealized_pnl_maintenance_asset_weight``
            (1e-4), ``unrealized_pnl_imf_factor`` (1e-6), optionally ``underlying`` (an
            index name; default: the symbol without ``-PERP``).
        quote: the settle asset of every perp (default: the first spot market).
        arithmetic: ``"fixed"`` (Drift's integers, :meth:`FixedPoint.drift`) or
            ``"float64"`` (the same parameters in the float model).

    Returns:
        A :class:`~crossmargin.Universe`: each spot market an :class:`~crossmargin.Asset`
        priced at its oracle, each perp a one-bracket :class:`~crossmargin.Market` (the
        margin ratios) with the imf size premium, uPnL weights, the uPnL size discount and
        Drift's 100 USD cap on weighted profit at initial margin.

    >>> u = drift_universe(
    ...     [{"symbol": "USDC", "decimals": 6, "oracle_price": 999_900,
    ...       "initial_asset_weight": 10_000, "maintenance_asset_weight": 10_000,
    ...       "initial_liability_weight": 10_000, "maintenance_liability_weight": 10_000,
    ...       "imf_factor": 0}],
    ...     [{"symbol": "SOL-PERP", "oracle_price": 150_000_000, "margin_ratio_initial": 1_000,
    ...       "margin_ratio_maintenance": 500, "imf_factor": 1_000,
    ...       "unrealized_pnl_initial_asset_weight": 10_000,
    ...       "unrealized_pnl_maintenance_asset_weight": 10_000,
    ...       "unrealized_pnl_imf_factor": 0}])
    >>> u.assets[0].price, u.markets[0].brackets[0][1:]
    (0.9999, (0.1, 0.05))
    """
    if arithmetic not in ("fixed", "float64"):
        raise ConfigError(
            f"arithmetic: {arithmetic!r} is not one of fixed, float64", field="arithmetic"
        )
    if not spot_markets:
        raise ConfigError("spot_markets: at least the quote market is needed", field="spot_markets")
    assets, decimals = [], {}
    for i, row in enumerate(spot_markets):
        where = f"spot_markets[{i}]"
        symbol = str(_field(row, "symbol", where))
        where = f"spot_markets[{symbol}]"
        d = _raw(row, "decimals", where)
        start = _raw(row, "scale_initial_asset_weight_start", where, 0)
        deposits = _raw(row, "deposits", where, 0)
        decimals[symbol] = d
        assets.append(
            Asset(
                symbol,
                _raw(row, "oracle_price", where) / PRICE_PRECISION,
                _raw(row, "initial_asset_weight", where) / SPOT_WEIGHT_PRECISION,
                _raw(row, "maintenance_asset_weight", where) / SPOT_WEIGHT_PRECISION,
                _raw(row, "initial_liability_weight", where) / SPOT_WEIGHT_PRECISION,
                _raw(row, "maintenance_liability_weight", where) / SPOT_WEIGHT_PRECISION,
                imf_factor=_raw(row, "imf_factor", where) / SPOT_IMF_PRECISION,
                scale_initial_weight_start=start / QUOTE_PRECISION,
                total_deposits=deposits / 10**d,
            )
        )
    settle = quote if quote is not None else assets[0].symbol
    markets = []
    for i, row in enumerate(perp_markets):
        where = f"perp_markets[{i}]"
        symbol = str(_field(row, "symbol", where))
        where = f"perp_markets[{symbol}]"
        underlying = _field(row, "underlying", where, symbol.removesuffix("-PERP"))
        imr = _raw(row, "margin_ratio_initial", where) / MARGIN_PRECISION
        mmr = _raw(row, "margin_ratio_maintenance", where) / MARGIN_PRECISION
        markets.append(
            Market(
                symbol,
                "perp",
                settle,
                str(underlying),
                _raw(row, "oracle_price", where) / PRICE_PRECISION,
                [(math.inf, imr, mmr)],
                imf_factor=_raw(row, "imf_factor", where) / SPOT_IMF_PRECISION,
                upnl_weight_initial=_raw(row, "unrealized_pnl_initial_asset_weight", where)
                / SPOT_WEIGHT_PRECISION,
                upnl_weight_maint=_raw(row, "unrealized_pnl_maintenance_asset_weight", where)
                / SPOT_WEIGHT_PRECISION,
                upnl_imf_factor=_raw(row, "unrealized_pnl_imf_factor", where) / SPOT_IMF_PRECISION,
                upnl_cap_initial=MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN,
            )
        )
    fixed = FixedPoint.drift(decimals) if arithmetic == "fixed" else None
    return Universe(assets, markets, arithmetic=fixed)


__all__ = ["MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN", "drift_universe"]
