"""Price overrides, the oracle: the rules of :mod:`crossmargin.prices` written out again in
plain Python, so that the differential tests cover price overrides (and cascade shocks)
independently of the engine's resolver. Nothing here imports :mod:`crossmargin.prices`.

``prices`` is a mapping of symbols to prices, or a pair ``(asset_prices, marks)`` in
universe order. The rules of a mapping, in order:

1. an underlying key (``"BTC"``) moves every perp and future on it and the asset of the
   same symbol by ``new / reference`` (the underlying's reference price);
2. an asset key sets that asset's USD price;
3. a market key sets that market's mark (so it wins over its underlying's move);
4. every option not named by a key whose underlying's price moved is repriced with Black-76
   (:func:`crossmargin.reference.portfolio.black76`, forward = the underlying's price); an
   option configured with a mark keeps its premium over the model multiplicatively,
   mark × B76(S') / B76(S).

The underlying's price is read from the asset of its symbol, else from its first perp or
future: source price × reference / source reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from crossmargin._validate import array, is_number, show
from crossmargin.exceptions import ConfigError, PriceError, PriceTypeError
from crossmargin.reference.portfolio import black76
from crossmargin.universe import Universe

PriceOverrides = Mapping[str, float] | tuple[Any, Any] | None

# The numeric domain of crossmargin_core::limits (docs/ROBUSTNESS.md).
MAX_PRICE = 1e18
MIN_PRICE = 1e-18


def base_prices(universe: Universe) -> tuple[list[float], list[float]]:
    """The universe's own asset prices and marks (options without a mark: their model mark
    at reference prices, as the universe computes it)."""
    return [float(a.price) for a in universe.assets], [float(x) for x in universe.reference_marks]


def resolve(universe: Universe, prices: PriceOverrides) -> tuple[list[float], list[float]]:
    """(asset prices, marks) for one call, by the rules of the module docstring."""
    if prices is None:
        return base_prices(universe)
    if isinstance(prices, tuple | list):
        if len(prices) != 2:
            raise PriceError(
                "prices: expected a mapping or a pair (asset_prices, marks), "
                f"got {len(prices)} items",
                field="prices",
            )
        assets = _vector(prices[0], "asset prices", len(universe.assets))
        marks = _vector(prices[1], "marks", len(universe.markets))
        check_domain(universe, assets, marks)
        return assets, marks
    if not isinstance(prices, Mapping):
        raise PriceTypeError(
            f"prices: expected a mapping or a pair of arrays, got {type(prices).__name__}",
            field="prices",
        )
    values = _checked(universe, prices)
    assets, marks = base_prices(universe)
    # 1. Underlyings: their perps, futures and same-symbol asset move by new / reference.
    for key, value in values.items():
        if key not in universe.underlyings:
            continue
        reference = universe.reference_price(key)
        if reference <= 0:
            raise PriceError(
                f"prices[{key}]: the underlying's reference price is {reference}; "
                "give underlying_prices or price its markets and asset directly",
                field=key,
            )
        factor = value / reference
        for k, market in enumerate(universe.markets):
            if market.underlying == key and not market.is_option and market.mark is not None:
                marks[k] = market.mark * factor
        if key in universe.asset_index:
            i = universe.asset_index[key]
            assets[i] = universe.assets[i].price * factor
    # 2. Assets, 3. markets.
    for key, value in values.items():
        if key in universe.asset_index:
            assets[universe.asset_index[key]] = value
    named = set()
    for key, value in values.items():
        if key in universe.market_index:
            marks[universe.market_index[key]] = value
            named.add(universe.market_index[key])
    # 4. Options on an underlying that moved.
    spots = underlying_spots(universe, assets, marks)
    for k, market in enumerate(universe.markets):
        if not market.is_option or k in named:
            continue
        before = universe.reference_price(market.underlying)
        after = spots[market.underlying]
        if after == before:
            continue
        model_after = option_mark(universe, k, after)
        if market.mark is None:
            marks[k] = model_after
        else:
            model_before = option_mark(universe, k, before)
            if model_before > 0:
                marks[k] = market.mark * model_after / model_before
    check_domain(universe, assets, marks)
    return assets, marks


def option_mark(universe: Universe, k: int, spot: float) -> float:
    """Black-76 value of option market ``k`` at the underlying price ``spot`` (forward =
    spot), in settle units per unit of underlying: USD when linear, coin (÷ spot) when
    inverse. The configured volatility as it is (no floor)."""
    m = universe.markets[k]
    price = black76(
        spot,
        float(m.strike),  # type: ignore[arg-type]
        universe.option_years(m.symbol),
        float(m.iv),  # type: ignore[arg-type]
        m.rate,
        m.option_type == "call",
    )[0]
    return price / spot if m.inverse else price


def underlying_spots(
    universe: Universe, assets: list[float], marks: list[float]
) -> dict[str, float]:
    """Each underlying's price at these prices: its source's price (the asset of its
    symbol, else its first perp or future) × reference / source reference; NaN without a
    source."""
    base_assets, base_marks = base_prices(universe)
    out = {}
    for name in universe.underlyings:
        if name in universe.asset_index:
            i = universe.asset_index[name]
            now, ref = assets[i], base_assets[i]
        else:
            k = next(
                (
                    k
                    for k, m in enumerate(universe.markets)
                    if m.underlying == name and not m.is_option
                ),
                None,
            )
            if k is None:
                out[name] = math.nan
                continue
            now, ref = marks[k], base_marks[k]
        out[name] = float(now) * (universe.reference_price(name) / ref) if ref > 0 else float(now)
    return out


def moved_prices(
    universe: Universe, moves: Mapping[str, float], where: str = "cascade.shock"
) -> tuple[list[float], list[float]]:
    """A cascade shock (or one path step): fractional moves by underlying, asset or market
    (``{"BTC": -0.3}``), each from the universe's own price, resolved as the override
    ``{key: reference × (1 + move)}``."""
    overrides: dict[str, float] = {}
    for key, move in moves.items():
        m = float(move)
        if not math.isfinite(m) or m <= -1.0:
            raise ConfigError(
                f"{where}[{key}]: {move} must be a finite move above -100%",
                field=f"{where}[{key}]",
            )
        if key in universe.underlyings:
            overrides[key] = universe.reference_price(key) * (1.0 + m)
        elif key in universe.asset_index:
            overrides[key] = universe.assets[universe.asset_index[key]].price * (1.0 + m)
        elif key in universe.market_index:
            k = universe.market_index[key]
            overrides[key] = universe.reference_marks[k] * (1.0 + m)
        else:
            raise ConfigError(
                f"{where}[{key}]: not an underlying, asset or market", field=f"{where}[{key}]"
            )
    return resolve(universe, overrides)


def check_domain(universe: Universe, assets: list[float], marks: list[float]) -> None:
    """Asset prices finite in [0, 1e18]; marks finite in [1e-18, 1e18] (options: [0, 1e18])."""
    for i, x in enumerate(assets):
        if not (math.isfinite(x) and 0.0 <= x <= MAX_PRICE):
            f = f"asset prices[{universe.assets[i].symbol}]"
            raise PriceError(f"{f}: {x} must be finite, ≥ 0 and ≤ {MAX_PRICE:g}", field=f)
    for k, x in enumerate(marks):
        low = 0.0 if universe.markets[k].is_option else MIN_PRICE
        if not (math.isfinite(x) and low <= x <= MAX_PRICE):
            f = f"marks[{universe.markets[k].symbol}]"
            raise PriceError(f"{f}: {x} must lie in [{low:g}, {MAX_PRICE:g}]", field=f)


def _checked(universe: Universe, prices: Mapping[Any, Any]) -> dict[str, float]:
    """The overrides as floats: keys symbols the universe knows, values finite numbers > 0."""
    for key in prices:
        if not isinstance(key, str):
            raise PriceTypeError(f"prices: key {show(key)} is not a symbol (str)", field="prices")
    for key in prices:
        known = (
            key in universe.underlyings
            or key in universe.asset_index
            or key in universe.market_index
        )
        if not known:
            raise PriceError(f"prices[{key}]: not an asset, market or underlying", field=key)
    out = {}
    for key, value in prices.items():
        if not is_number(value):  # a bool is not a price, nor is text
            raise PriceTypeError(f"prices[{key}]: {show(value)} is not a number", field=key)
        try:
            v = float(value)
        except OverflowError:
            raise PriceError(
                f"prices[{key}]: {show(value)} is beyond the float range", field=key
            ) from None
        if not math.isfinite(v) or v <= 0:
            raise PriceError(f"prices[{key}]: {v} must be finite and > 0", field=key)
        out[key] = v
    return out


def _vector(values: Any, what: str, n: int) -> list[float]:
    a = array(values, what, PriceError)  # numbers only: bools, text and None refused
    if a.shape != (n,):
        raise PriceError(f"{what}: {a.size} values given for {n} symbols", field=what)
    return [float(x) for x in a.tolist()]


__all__ = [
    "PriceOverrides",
    "base_prices",
    "check_domain",
    "moved_prices",
    "option_mark",
    "resolve",
    "underlying_spots",
]
