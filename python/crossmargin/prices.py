"""Price overrides for one call, resolved into the engine's two price vectors.

``prices`` is either a mapping of symbols to prices or a pair of arrays
``(asset_prices, marks)`` in universe order. In a mapping a key may name:

- an underlying index (``"BTC"``): every market on it and the asset of that symbol move by
  the factor ``price / reference price``, so a basis between perp and future is kept;
- an asset (``"USDC"``): that asset's USD price;
- a market (``"BTCUSDT"``): that market's mark.

Keys are applied in that order, so an explicit mark wins over its underlying's move.

Options are not scaled: once the keys are applied, every option whose underlying's price
moved (the underlying's price is read from the asset of its symbol, else its first perp or
future) is repriced with Black-76 at the new price. An option configured with an explicit
mark keeps its premium over the model multiplicatively: mark × B76(S') / B76(S). An option
named by a key keeps that mark.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin._validate import array, is_number, number, show, type_error
from crossmargin.exceptions import ConfigError, PriceError, PriceTypeError
from crossmargin.options import black76
from crossmargin.universe import Universe, option_marks

PriceOverrides = Mapping[str, float] | tuple[Any, Any] | None


def base_prices(universe: Universe) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.array([a.price for a in universe.assets], dtype=np.float64),
        np.array(universe.reference_marks, dtype=np.float64),
    )


def resolve(universe: Universe, prices: PriceOverrides) -> tuple[np.ndarray, np.ndarray]:
    """(asset_prices, marks) for one call."""
    if prices is None:
        return base_prices(universe)
    if isinstance(prices, tuple | list):
        if len(prices) != 2:
            raise PriceError(
                "prices: expected a mapping or a pair (asset_prices, marks), "
                f"got {len(prices)} items",
                field="prices",
            )
        a = _vector(prices[0], "asset prices", len(universe.assets))
        m = _vector(prices[1], "marks", len(universe.markets))
        check_domain(universe, a, m)
        return a, m
    if not isinstance(prices, Mapping):
        raise PriceTypeError(
            f"prices: expected a mapping or a pair of arrays, got {type(prices).__name__}",
            field="prices",
        )
    for key in prices:
        if not isinstance(key, str):
            raise PriceTypeError(f"prices: key {show(key)} is not a symbol (str)", field="prices")
    assets, marks = base_prices(universe)
    unknown = [
        k
        for k in prices
        if k not in universe.underlyings
        and k not in universe.asset_index
        and k not in universe.market_index
    ]
    if unknown:
        raise PriceError(
            f"prices[{unknown[0]}]: not an asset, market or underlying", field=unknown[0]
        )
    for key, value in prices.items():
        # A bool is not a price (True would price at 1), nor is text.
        if not is_number(value):
            raise PriceTypeError(f"prices[{key}]: {show(value)} is not a number", field=key)
        try:
            v = float(value)
        except OverflowError:
            raise PriceError(
                f"prices[{key}]: {show(value)} is beyond the float range", field=key
            ) from None
        if not math.isfinite(v) or v <= 0:
            raise PriceError(f"prices[{key}]: {v} must be finite and > 0", field=key)
    for key, value in prices.items():
        if key in universe.underlyings:
            ref = universe.reference_price(key)
            if ref <= 0:
                raise PriceError(
                    f"prices[{key}]: the underlying's reference price is {ref}; "
                    "give underlying_prices or price its markets and asset directly",
                    field=key,
                )
            factor = float(value) / ref
            for k, market in enumerate(universe.markets):
                if market.underlying == key and market.mark is not None and not market.is_option:
                    marks[k] = market.mark * factor
            if key in universe.asset_index:
                i = universe.asset_index[key]
                assets[i] = universe.assets[i].price * factor
    for key, value in prices.items():
        if key in universe.asset_index:
            assets[universe.asset_index[key]] = float(value)
    for key, value in prices.items():
        if key in universe.market_index:
            marks[universe.market_index[key]] = float(value)
    fixed = {universe.market_index[k] for k in prices if k in universe.market_index}
    reprice_options(universe, assets, marks, fixed)
    check_domain(universe, assets, marks)
    return assets, marks


# The numeric domain of crossmargin_core::limits (docs/MODEL.md "Numeric domain"), exported
# by the core: it checks every call's prices the same way; checking here too keeps the
# reference engine in step.
MAX_PRICE: float = _core.MAX_PRICE
MIN_PRICE: float = _core.MIN_PRICE


def _vector(values: Any, what: str, n: int) -> np.ndarray:
    # Numbers only: bools, text and None are PriceTypeError naming the first bad element.
    a = np.ascontiguousarray(array(values, what, PriceError))
    if a.shape != (n,):
        raise PriceError(f"{what}: {a.size} values given for {n} symbols", field=what)
    return a


def check_domain(universe: Universe, assets: np.ndarray, marks: np.ndarray) -> None:
    """Asset prices finite in [0, 1e18]; marks finite in [1e-18, 1e18] (options: [0, 1e18])."""
    bad = ~np.isfinite(assets) | (assets < 0) | (assets > MAX_PRICE)
    if bad.any():
        i = int(np.argmax(bad))
        f = f"asset prices[{universe.assets[i].symbol}]"
        raise PriceError(f"{f}: {assets[i]} must be finite, ≥ 0 and ≤ {MAX_PRICE:g}", field=f)
    option = np.array([m.is_option for m in universe.markets], dtype=bool)
    low = np.where(option, 0.0, MIN_PRICE)
    bad = ~np.isfinite(marks) | (marks < low) | (marks > MAX_PRICE) | (~option & (marks == 0))
    if bad.any():
        k = int(np.argmax(bad))
        f = f"marks[{universe.markets[k].symbol}]"
        raise PriceError(f"{f}: {marks[k]} must lie in [{low[k]:g}, {MAX_PRICE:g}]", field=f)


def underlying_spots(universe: Universe, assets: np.ndarray, marks: np.ndarray) -> dict[str, float]:
    """Each underlying's price at these prices: its source's price × reference / source
    reference (the rule the Rust core applies)."""
    base_assets, base_marks = base_prices(universe)
    out = {}
    for name in universe.underlyings:
        source = universe.underlying_source(name)
        if source is None:
            out[name] = math.nan
            continue
        kind, i = source
        now, ref = (assets[i], base_assets[i]) if kind == "asset" else (marks[i], base_marks[i])
        out[name] = float(now) * (universe.reference_price(name) / ref) if ref > 0 else float(now)
    return out


def reprice_options(
    universe: Universe, assets: np.ndarray, marks: np.ndarray, fixed: set[int]
) -> None:
    """Reprices, in place, the options whose underlying moved (see the module docstring)."""
    spots = underlying_spots(universe, assets, marks)
    todo = [
        k
        for k, m in enumerate(universe.markets)
        if m.is_option
        and k not in fixed
        and spots[m.underlying] != universe.reference_price(m.underlying)
    ]
    if not todo:
        return
    new = option_marks(
        universe, todo, [spots[universe.markets[k].underlying] for k in todo], black76
    )
    given = [k for k in todo if universe.markets[k].mark is not None]
    old = dict(
        zip(
            given,
            option_marks(
                universe,
                given,
                [universe.reference_price(universe.markets[k].underlying) for k in given],
                black76,
            ),
            strict=True,
        )
    )
    for k, v in zip(todo, new, strict=True):
        mark = universe.markets[k].mark
        if mark is None:
            marks[k] = v
        elif old[k] > 0:
            marks[k] = mark * v / old[k]


def shocked(
    universe: Universe,
    moves: Mapping[str, Any],
    field: str,
    error: type[ConfigError] | type[PriceError] = ConfigError,
) -> tuple[np.ndarray, np.ndarray]:
    """(asset prices, marks) after fractional ``moves`` (``{"BTC": -0.3}``: −30 %) from the
    universe's own prices: the one rule behind stress scenarios, cascade shocks and path
    steps, and solvency stress (docs/MODEL.md "Prices of one call"). A key names an
    underlying (its reference price moves), an asset (its price) or a market (its reference
    mark — for an option without a configured mark, its model mark); the moved prices are
    then resolved as ``prices=`` overrides, options repriced. A move is a real number,
    finite and > −1; errors are ``error`` (its type-error flavour for a wrong type) naming
    ``field[key]``."""
    if not isinstance(moves, Mapping):
        raise type_error(error)(f"{field}: expected a mapping symbol → move", field=field)
    if not moves:
        return base_prices(universe)
    overrides: dict[str, float] = {}
    for key, value in moves.items():
        where = f"{field}[{key}]"
        m = number(value, where, error)
        if not math.isfinite(m) or m <= -1.0:
            raise error(
                f"{where}: {show(value)} must be finite and > -1 (a move above -100%)", field=where
            )
        if key in universe.underlyings:
            base = universe.reference_price(key)
        elif key in universe.asset_index:
            base = universe.assets[universe.asset_index[key]].price
        elif key in universe.market_index:
            base = universe.reference_marks[universe.market_index[key]]
        else:
            raise error(f"{where}: not an underlying, asset or market", field=where)
        overrides[key] = base * (1.0 + m)
    return resolve(universe, overrides)


def repriced(universe: Universe, prices: PriceOverrides) -> Universe:
    """The universe with ``prices`` (resolved as above) as its own prices: the base from which
    stress scenarios, reverse stress and cascade shocks move. Assets take their new prices,
    perps and futures their new marks, options keep a model mark (``mark=None``) unless they
    had an explicit one or a key named them; every underlying's reference price becomes its
    price at the override. Without overrides, the universe itself."""
    if prices is None:
        return universe
    assets, marks = resolve(universe, prices)
    named = (
        {universe.market_index[k] for k in prices if k in universe.market_index}
        if isinstance(prices, Mapping)
        else set(range(len(universe.markets)))
    )
    spots = underlying_spots(universe, assets, marks)
    return dataclasses.replace(
        universe,
        assets=[
            dataclasses.replace(a, price=float(p))
            for a, p in zip(universe.assets, assets, strict=True)
        ],
        markets=[
            m
            if m.is_option and m.mark is None and k not in named
            else dataclasses.replace(m, mark=float(marks[k]))
            for k, m in enumerate(universe.markets)
        ],
        underlying_prices={
            name: spots[name] if math.isfinite(spots.get(name, math.nan)) else float(ref)
            for name, ref in universe.underlying_prices.items()
        },
    )


__all__ = [
    "PriceOverrides",
    "base_prices",
    "reprice_options",
    "repriced",
    "resolve",
    "shocked",
    "underlying_spots",
]
