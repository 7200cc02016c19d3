"""The risk configuration: collateral assets, derivative markets, and the rules between.

Frozen dataclasses, validated once: the Rust core compiles them into flat tables on
construction and every bad value raises :class:`~crossmargin.exceptions.ConfigError`
naming its field, e.g. ``markets[BTCUSDT].brackets[2].mmr``. Types are checked here: a bool,
text or None where a number belongs is a :class:`~crossmargin.exceptions.ConfigTypeError`
(also a ``TypeError``). Each value's range, then the rules that relate two values (initial
margin at least as strict as maintenance), are checked by the core (docs/MODEL.md "Universe").
"""

from __future__ import annotations

import math
import tomllib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin._validate import mapping, number
from crossmargin.exceptions import ConfigError, ConfigTypeError, ConfigWarning
from crossmargin.options import black76
from crossmargin.portfolio import PortfolioConfig

#: The market kinds the core knows ("perp", "future", "option").
MARKET_KINDS: tuple[str, ...] = _core.MARKET_KINDS
# How open orders are valued (docs/MODEL.md "Open orders").
ORDER_VALUES: tuple[str, ...] = ("limit", "mark")
#: Requirement shapes ("continuous", "step", "size_scaled"), docs/MODEL.md "Requirement shapes".
REQUIREMENT_SHAPES: tuple[str, ...] = _core.REQUIREMENT_SHAPES
#: What a maintenance requirement is valued at ("mark", "entry").
VALUATION_BASES: tuple[str, ...] = _core.VALUATION_BASES

# Deribit's standard margin for short options (docs/MODEL.md "Option margin"):
# IM = max(im_base − OTM/S, im_min)·S + mark, MM = mm_base·S + mark.
DERIBIT_IM_BASE: float = _core.DERIBIT_IM_BASE
DERIBIT_IM_MIN: float = _core.DERIBIT_IM_MIN
DERIBIT_MM_BASE: float = _core.DERIBIT_MM_BASE


def _years(expiry: Any, valuation: Any, name: str) -> float:
    """Years to expiry: a number as given, or an ISO date / datetime (UTC) against the
    universe's ``valuation_date`` on ACT/365."""
    if not isinstance(expiry, str | date):
        return _float(expiry, name)
    if valuation is None:
        raise ConfigError(f"{name}: a date expiry needs Universe(valuation_date=...)", field=name)
    try:
        start = _instant(valuation)
    except (TypeError, ValueError):
        f = "valuation_date"
        raise ConfigError(f"{f}: {valuation!r} is not an ISO date", field=f) from None
    try:
        end = _instant(expiry)
    except ValueError:
        raise ConfigError(f"{name}: {expiry!r} is not an ISO date", field=name) from None
    return (end - start).total_seconds() / (365.0 * 86_400.0)


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        d = value
    elif isinstance(value, date):
        d = datetime(value.year, value.month, value.day)
    else:
        d = datetime.fromisoformat(str(value))
    return d.replace(tzinfo=None) if d.tzinfo is None else d.astimezone(UTC).replace(tzinfo=None)


def _float(value: Any, name: str) -> float:
    """A real number (not a bool, not text): ConfigTypeError otherwise, naming the field."""
    return number(value, name)


def _rows(value: Any, columns: tuple[str, ...], name: str) -> tuple[tuple[float, ...], ...]:
    """A table of rows of numbers, e.g. brackets ``(bound, imr, mmr)``; a cell is named like
    ``markets[BTCUSDT].brackets[2].mmr``."""
    width = len(columns)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ConfigTypeError(
            f"{name}: expected a list of {width}-tuples, got {type(value).__name__}", field=name
        )
    rows = []
    for k, r in enumerate(value):
        f = f"{name}[{k}]"
        if isinstance(r, str | bytes | Mapping) or not isinstance(r, Iterable):
            raise ConfigTypeError(f"{f}: expected {width} numbers, got {type(r).__name__}", field=f)
        r = tuple(r)
        if len(r) != width:
            raise ConfigError(f"{f}: expected {width} numbers, got {len(r)}", field=f)
        rows.append(tuple(_float(x, f"{f}.{c}") for x, c in zip(r, columns, strict=True)))
    return tuple(rows)


def _symbol(value: Any, name: str) -> None:
    """A non-empty string (ConfigTypeError when not a string at all)."""
    if not isinstance(value, str):
        raise ConfigTypeError(
            f"{name}: {value!r} is not a string ({type(value).__name__})", field=name
        )
    if not value:
        raise ConfigError(f"{name}: must be a non-empty string", field=name)


@dataclass(frozen=True)
class Asset:
    """A collateral asset; every balance is in one.

    ``weight_*`` is 1 − haircut for positive balances, ``liability_weight_*`` (≥ 1) applies
    to borrows; at initial margin a weight is at most (a liability weight at least) its
    maintenance one. ``haircut_tiers`` are ``(usd_value_upper_bound, rate)`` slices (OKX/Bybit
    style); above a finite last bound a value counts nothing (building such a universe warns,
    :class:`~crossmargin.exceptions.ConfigWarning`: end the table with ``inf``).
    ``imf_factor`` is Drift v2's size discount of the weight by sqrt(quantity)
    (docs/MODEL.md "Size discount and premium"). ``scale_initial_weight_start`` (USD, 0 =
    off) with ``total_deposits`` (asset units, the venue's total) scales the initial weight
    by start / (total_deposits × price) once that value reaches start (Drift's
    ``scale_initial_asset_weight_start``, docs/MODEL.md "Scaled initial weight").
    ``bid`` / ``ask`` (USD, optional; a missing side is ``price``) value the asset
    two-sidedly (docs/MODEL.md "Two-sided valuation"): an account's net holding at the bid,
    a net debt and requirements settled in the asset at the ask (Binance Multi-Assets bid and
    ask rates); a price override moves both with the price.
    A bid above the ask is a :class:`~crossmargin.exceptions.ConfigError` naming ``bid``.

    Example: ``Asset("USDT", 0.99, bid=0.9801, ask=0.99495)``.
    """

    symbol: str
    price: float
    weight_initial: float = 1.0
    weight_maint: float = 1.0
    liability_weight_initial: float = 1.0
    liability_weight_maint: float = 1.0
    haircut_tiers: Sequence[tuple[float, float]] | None = None
    imf_factor: float = 0.0
    scale_initial_weight_start: float = 0.0
    total_deposits: float = 0.0
    bid: float | None = None
    ask: float | None = None

    def __post_init__(self) -> None:
        f = f"assets[{self.symbol}]"
        _symbol(self.symbol, f"{f}.symbol")
        for name in ("bid", "ask"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _float(getattr(self, name), f"{f}.{name}"))
        for name in (
            "price",
            "weight_initial",
            "weight_maint",
            "liability_weight_initial",
            "liability_weight_maint",
            "imf_factor",
            "scale_initial_weight_start",
            "total_deposits",
        ):
            object.__setattr__(self, name, _float(getattr(self, name), f"{f}.{name}"))
        given = () if self.haircut_tiers is None else self.haircut_tiers
        tiers = _rows(given, ("bound", "rate"), f"{f}.haircut_tiers")
        object.__setattr__(self, "haircut_tiers", tiers or None)


@dataclass(frozen=True)
class Market:
    """A perpetual or dated future, linear or inverse, settled in ``settle`` (an asset).

    ``brackets`` are Binance-style leverage tiers ``(notional_upper_bound, imr, mmr)`` on
    settle-asset notional. For an inverse market ``contract_size`` is in quote units (e.g.
    100 USD). ``upnl_weight_*`` weigh a positive uPnL; at initial margin
    ``upnl_imf_factor`` discounts that weight by sqrt(uPnL in settle units) and at most
    ``upnl_cap_initial`` (USD) of weighted profit counts per position (Drift's
    ``unrealized_pnl_imf_factor`` and ``MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN``, docs/MODEL.md
    "uPnL size discount"). Venue rules of perps and futures (docs/MODEL.md "Requirement
    shapes", "Valuation basis", "Liquidation-fee reserve"):

    - ``im_shape`` / ``mm_shape``: ``"continuous"`` (``notional × rate − cum``, ``cum`` making
      it continuous; the default), ``"step"`` (the whole notional at its tier's rate) or
      ``"size_scaled"`` (one bracket; rate = its rate + ``rate_slope_*`` × size, size in units
      of the underlying: contracts × size, or the coin notional of an inverse market);
    - ``maint_basis``: ``"mark"`` (default) or ``"entry"``: the maintenance requirement on
      the notional at the entry price (Bybit);
    - ``liquidation_fee``: a taker fee rate reserved in the maintenance requirement on the
      notional at the position's bankruptcy price (Bybit's fee to close).

    Example: Deribit's BTC perpetual, ``Market("BTC-PERPETUAL", "perp", "BTC", "BTC", 60_000,
    [(inf, 0.02, 0.015)], contract_size=10, inverse=True, im_shape="size_scaled",
    mm_shape="size_scaled", rate_slope_initial=5e-5, rate_slope_maint=5e-5)``.
    """

    symbol: str
    kind: str
    settle: str
    underlying: str
    mark: float | None = None
    brackets: Sequence[tuple[float, float, float]] = ()
    contract_size: float = 1.0
    inverse: bool = False
    imf_factor: float = 0.0
    upnl_weight_initial: float = 1.0
    upnl_weight_maint: float = 1.0
    upnl_imf_factor: float = 0.0
    upnl_cap_initial: float = math.inf
    # Options (kind="option"): European, Black-76 on the underlying's price when mark is None.
    # Inverse options (Deribit BTC): contract_size in underlying units, mark / entry / margin
    # in the settle coin per unit of underlying.
    option_type: str | None = None
    strike: float | None = None
    expiry: float | str | None = None
    iv: float | None = None
    rate: float = 0.0
    im_base: float = DERIBIT_IM_BASE
    im_min: float = DERIBIT_IM_MIN
    mm_base: float = DERIBIT_MM_BASE
    im_shape: str = "continuous"
    mm_shape: str = "continuous"
    rate_slope_initial: float = 0.0
    rate_slope_maint: float = 0.0
    maint_basis: str = "mark"
    liquidation_fee: float = 0.0
    # Open orders (docs/MODEL.md "Open orders"): the initial margin they lock. Orders are
    # valued at their limit price ("limit": Binance, Bybit) or the mark ("mark": Drift,
    # dYdX); Binance adds each order's open loss, Bybit reserves the taker fee to open and
    # close, Drift charges a fixed amount per open order (settle-asset units).
    order_value: str = "limit"
    order_open_loss: bool = False
    order_fee_rate: float = 0.0
    order_margin_per_order: float = 0.0

    def __post_init__(self) -> None:
        f = f"markets[{self.symbol}]"
        _symbol(self.symbol, f"{f}.symbol")
        if not isinstance(self.kind, str):
            raise ConfigTypeError(
                f"{f}.kind: {self.kind!r} is not a string (one of {', '.join(MARKET_KINDS)})",
                field=f"{f}.kind",
            )
        if self.kind not in MARKET_KINDS:
            raise ConfigError(
                f"{f}.kind: {self.kind!r} is not one of {', '.join(MARKET_KINDS)}",
                field=f"{f}.kind",
            )
        for name in ("settle", "underlying"):
            _symbol(getattr(self, name), f"{f}.{name}")
        if self.kind == "option":
            self._check_option(f)
        else:
            for name in ("option_type", "strike", "expiry", "iv"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"{f}.{name}: only option markets have option terms", field=f"{f}.{name}"
                    )
            if self.mark is None:
                raise ConfigError(f"{f}: missing mark (a perp or future needs one)", field=f)
        if self.mark is not None:
            object.__setattr__(self, "mark", _float(self.mark, f"{f}.mark"))
        for name in (
            "contract_size",
            "imf_factor",
            "upnl_weight_initial",
            "upnl_weight_maint",
            "upnl_imf_factor",
            "upnl_cap_initial",
            "rate",
            "im_base",
            "im_min",
            "mm_base",
            "rate_slope_initial",
            "rate_slope_maint",
            "liquidation_fee",
            "order_fee_rate",
            "order_margin_per_order",
        ):
            object.__setattr__(self, name, _float(getattr(self, name), f"{f}.{name}"))
        for name, choices in (
            ("im_shape", REQUIREMENT_SHAPES),
            ("mm_shape", REQUIREMENT_SHAPES),
            ("maint_basis", VALUATION_BASES),
        ):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigTypeError(
                    f"{f}.{name}: {value!r} is not a string (one of {', '.join(choices)})",
                    field=f"{f}.{name}",
                )
        for name in ("inverse", "order_open_loss"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ConfigTypeError(
                    f"{f}.{name}: {value!r} must be true or false", field=f"{f}.{name}"
                )
            object.__setattr__(self, name, bool(value))
        if self.order_value not in ORDER_VALUES:
            raise ConfigError(
                f"{f}.order_value: {self.order_value!r} is not one of {', '.join(ORDER_VALUES)}",
                field=f"{f}.order_value",
            )
        brackets = _rows(self.brackets, ("bound", "imr", "mmr"), f"{f}.brackets")
        object.__setattr__(self, "brackets", brackets)

    def _check_option(self, f: str) -> None:
        if self.option_type is not None and not isinstance(self.option_type, str):
            raise ConfigTypeError(
                f"{f}.option_type: {self.option_type!r} is not a string (call or put)",
                field=f"{f}.option_type",
            )
        if self.option_type not in ("call", "put"):
            raise ConfigError(
                f"{f}.option_type: {self.option_type!r} is not one of call, put",
                field=f"{f}.option_type",
            )
        for name in ("strike", "expiry", "iv"):
            if getattr(self, name) is None:
                raise ConfigError(f"{f}.{name}: an option needs it", field=f"{f}.{name}")
        for name in ("strike", "iv"):
            x = _float(getattr(self, name), f"{f}.{name}")
            # Checked here as well as in the core: the model mark (Black-76) needs them.
            if not (math.isfinite(x) and x > 0):
                raise ConfigError(f"{f}.{name}: {x} must be finite and > 0", field=f"{f}.{name}")
            object.__setattr__(self, name, x)

    @property
    def is_option(self) -> bool:
        return self.kind == "option"


BORROW_ROUNDINGS = ("up", "down")


@dataclass(frozen=True)
class FixedPoint:
    """A universe's fixed-point arithmetic (docs/MODEL.md "Fixed-point arithmetic"): the
    unit of each quantity as a number of decimals, and how a borrow's value rounds.

    ``Engine.evaluate`` then computes the standard model in integers — values in
    10^-``value_decimals`` of the reporting currency floored at each step in Drift v2's
    order, weights and margin ratios in 10^-``weight_decimals`` (size premium floored),
    prices in 10^-``price_decimals`` (each call's prices rounded to it), perp sizes and imf
    sizes in 10^-``size_decimals``, imf factors in 10^-``imf_decimals``, each asset's
    balances in 10^-``asset_decimals[symbol]`` — and the liquidation test is
    ``total_collateral < maintenance requirement``. Results keep the standard columns (exact
    multiples of the value unit) and add the raw int64 totals. Weights, ratios and imf
    factors must be whole numbers of their units (a ``ConfigError`` names the field).

    >>> FixedPoint.drift({"USDC": 6, "SOL": 9}).value_decimals
    6
    """

    value_decimals: int = 6
    price_decimals: int = 6
    weight_decimals: int = 4
    size_decimals: int = 9
    imf_decimals: int = 6
    asset_decimals: Mapping[str, int] = field(default_factory=dict)
    borrow_rounding: str = "up"

    def __post_init__(self) -> None:
        for name in ("value_decimals", "price_decimals", "weight_decimals", "size_decimals",
                     "imf_decimals"):  # fmt: skip
            _decimals(getattr(self, name), f"arithmetic.{name}")
        mapping(self.asset_decimals, "arithmetic.asset_decimals", "asset → decimals")
        for k, v in self.asset_decimals.items():
            _decimals(v, f"arithmetic.asset_decimals[{k}]")
        object.__setattr__(self, "asset_decimals", dict(self.asset_decimals))
        if self.borrow_rounding not in BORROW_ROUNDINGS:
            f = "arithmetic.borrow_rounding"
            raise ConfigError(
                f"{f}: {self.borrow_rounding!r} is not one of {', '.join(BORROW_ROUNDINGS)}",
                field=f,
            )

    @classmethod
    def drift(cls, asset_decimals: Mapping[str, int]) -> FixedPoint:
        """Drift protocol v2's units (programs/drift/src/math/constants.rs): values and
        prices 1e-6 (QUOTE_PRECISION, PRICE_PRECISION), weights and margin ratios 1e-4
        (SPOT_WEIGHT_PRECISION, MARGIN_PRECISION), sizes 1e-9 (AMM_RESERVE_PRECISION), imf
        1e-6 (SPOT_IMF_PRECISION); borrows valued rounding up (spot_balance.rs
        ``get_strict_token_value``). ``asset_decimals``: each spot market's ``decimals``."""
        return cls(asset_decimals=asset_decimals)


def _decimals(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigTypeError(f"{name}: {value!r} is not an integer", field=name)
    if not 0 <= int(value) <= 18:
        raise ConfigError(f"{name}: {value} must be in [0, 18]", field=name)


def _arithmetic(value: Any) -> FixedPoint | None:
    if value is None or value == "float64":
        return None
    if isinstance(value, FixedPoint):
        return value
    if isinstance(value, Mapping):
        mapping(value, "arithmetic", "(a table of FixedPoint fields)")
        return _build_one(FixedPoint, "arithmetic", value)
    raise ConfigTypeError(
        f"arithmetic: expected 'float64' or FixedPoint, got {type(value).__name__}",
        field="arithmetic",
    )


@dataclass(frozen=True)
class Universe:
    """Assets and markets, validated and compiled once.

    ``underlying_prices`` gives each index a reference price; by default it is the price of
    the asset of the same symbol, else the mark of the first perp or future on it. A price
    override on an underlying (``prices={"BTC": 60_000}``) moves every market on it and every
    asset of that symbol by the same factor.
    """

    assets: Sequence[Asset]
    markets: Sequence[Market] = ()
    underlying_prices: Mapping[str, float] = field(default_factory=dict)
    # Options: the date ISO expiries count from; portfolio-margin parameters (see
    # crossmargin.portfolio.PortfolioConfig) used by the portfolio, delta and hybrid models.
    valuation_date: str | date | None = None
    portfolio: Any = None
    # float64 (None, the default) or a FixedPoint declaration (docs/MODEL.md "Fixed-point
    # arithmetic"): Engine.evaluate then computes in the venue's integers.
    arithmetic: FixedPoint | None = None
    _compiled: _core.CompiledUniverse = field(init=False, repr=False, compare=False)
    _option_years: dict[int, float] = field(init=False, repr=False, compare=False)
    _compiled_portfolio: _core.CompiledPortfolio | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in ("assets", "markets"):
            value = getattr(self, name)
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
                raise ConfigTypeError(
                    f"{name}: expected a list of {name}, got {type(value).__name__}", field=name
                )
            object.__setattr__(self, name, tuple(value))
        mapping(self.underlying_prices, "underlying_prices", "underlying → price")
        _check_valuation_date(self.valuation_date)
        for kind, items, cls in (("assets", self.assets, Asset), ("markets", self.markets, Market)):
            for i, x in enumerate(items):
                if not isinstance(x, cls):
                    raise ConfigTypeError(
                        f"{kind}[{i}]: expected {cls.__name__}, got {type(x).__name__}",
                        field=f"{kind}[{i}]",
                    )
        years = {
            k: _years(m.expiry, self.valuation_date, f"markets[{m.symbol}].expiry")
            for k, m in enumerate(self.markets)
            if m.is_option
        }
        for k, y in years.items():
            if not (math.isfinite(y) and y >= 0):
                f = f"markets[{self.markets[k].symbol}].expiry"
                raise ConfigError(f"{f}: {y} must be finite and ≥ 0", field=f)
        object.__setattr__(self, "_option_years", years)
        object.__setattr__(self, "arithmetic", _arithmetic(self.arithmetic))
        model_marks = self._model_marks()
        # The core reads each Asset's and Market's fields by name; the mark (an option
        # without one: its model value) and the years to expiry come alongside.
        compiled = _core.CompiledUniverse(
            self.assets,
            self.markets,
            [model_marks[k] if m.mark is None else m.mark for k, m in enumerate(self.markets)],
            [years.get(k) for k in range(len(self.markets))],
            {k: _float(v, f"underlying_prices[{k}]") for k, v in self.underlying_prices.items()},
            self.arithmetic,
        )
        object.__setattr__(self, "_compiled", compiled)
        # After the core's checks of each value's range: the rules between two values.
        _warn_capped_haircuts(self.assets)
        compiled_pm = None
        if self.portfolio is not None:
            if not isinstance(self.portfolio, PortfolioConfig):
                raise ConfigTypeError(
                    f"portfolio: expected PortfolioConfig, got {type(self.portfolio).__name__}",
                    field="portfolio",
                )
            compiled_pm = self.portfolio.compile(compiled)
        object.__setattr__(self, "_compiled_portfolio", compiled_pm)
        refs = dict(self.underlying_prices)
        for name, p in refs.items():
            f = f"underlying_prices[{name}]"
            if name not in self.underlyings:
                raise ConfigError(f"{f}: no market has this underlying", field=f)
            if not (math.isfinite(_float(p, f)) and float(p) > 0):
                raise ConfigError(f"{f}: {p} must be finite and > 0", field=f)
        object.__setattr__(self, "underlying_prices", refs)

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Universe:
        """Builds from the TOML layout: ``assets`` and ``markets`` lists of tables, optional
        ``underlying_prices`` table."""
        if not isinstance(data, Mapping):
            raise ConfigTypeError(
                f"universe: expected a table, got {type(data).__name__}", field="universe"
            )
        known = {"assets", "markets", "underlying_prices", "meta", "valuation_date", "portfolio",
                 "arithmetic"}  # fmt: skip
        # SPAN tables live beside the universe: crossmargin.span.SpanConfig.from_toml reads them.
        known.add("span")
        for key in data:
            if key not in known:
                raise ConfigError(f"{key}: unknown top-level key", field=str(key))
        for key in ("assets", "markets"):
            if not isinstance(data.get(key, []), list | tuple):
                raise ConfigTypeError(
                    f"{key}: expected a list of tables, got {type(data[key]).__name__}", field=key
                )
        mapping(data.get("underlying_prices", {}), "underlying_prices", "underlying → price")
        assets = [_build(Asset, "assets", i, a) for i, a in enumerate(data.get("assets", []))]
        markets = [_build(Market, "markets", i, m) for i, m in enumerate(data.get("markets", []))]
        portfolio = None
        if "portfolio" in data:
            mapping(data["portfolio"], "portfolio", "(a table of portfolio-margin settings)")
            portfolio = PortfolioConfig.from_dict(data["portfolio"])
        return cls(
            assets,
            markets,
            dict(data.get("underlying_prices", {})),
            valuation_date=data.get("valuation_date"),
            portfolio=portfolio,
            arithmetic=_arithmetic(data.get("arithmetic")),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> Universe:
        """Loads a universe file (see ``examples/universe.toml``)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such file", field=str(p)) from None
        except OSError as e:  # a directory, no permission...
            raise ConfigError(f"{p}: cannot be read: {e.strerror or e}", field=str(p)) from None
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"{p}: not UTF-8 text (byte {e.start}: {e.object[e.start : e.start + 1]!r})",
                field=str(p),
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: invalid TOML: {e}", field=str(p)) from None
        return cls.from_dict(data)

    @classmethod
    def demo(cls) -> Universe:
        """The universe shipped with the package (the same as ``examples/universe.toml``)."""
        return cls.from_toml(Path(__file__).parent / "data" / "universe.toml")

    # ---- the compiled form ---------------------------------------------------------------
    @property
    def compiled(self) -> _core.CompiledUniverse:
        """The universe compiled into the core's flat tables (what ``_core.Engine`` holds)."""
        return self._compiled

    @property
    def compiled_portfolio(self) -> _core.CompiledPortfolio | None:
        """The ``portfolio`` parameters validated against this universe (None without)."""
        return self._compiled_portfolio

    # ---- lookups -----------------------------------------------------------------------
    @cached_property
    def asset_index(self) -> dict[str, int]:
        return {a.symbol: i for i, a in enumerate(self.assets)}

    @cached_property
    def market_index(self) -> dict[str, int]:
        return {m.symbol: i for i, m in enumerate(self.markets)}

    @cached_property
    def underlyings(self) -> tuple[str, ...]:
        """Distinct index names of the markets, in order of first appearance."""
        return tuple(self._compiled.underlyings)

    def reference_price(self, underlying: str) -> float:
        if underlying in self.underlying_prices:
            return float(self.underlying_prices[underlying])
        source = self.underlying_source(underlying)
        if source is None:
            raise ConfigError(
                f"underlying_prices[{underlying}]: no asset or perp/future gives a price",
                field=f"underlying_prices[{underlying}]",
            )
        kind, i = source
        return self.assets[i].price if kind == "asset" else float(self.markets[i].mark)  # type: ignore[arg-type]

    def underlying_source(self, underlying: str) -> tuple[str, int] | None:
        """Where an underlying's price is read at each call: ``("asset", i)`` for the asset of
        the same symbol, else ``("market", k)`` for its first perp or future."""
        if underlying in self.asset_index:
            return ("asset", self.asset_index[underlying])
        for k, m in enumerate(self.markets):
            if m.underlying == underlying and not m.is_option:
                return ("market", k)
        return None

    @cached_property
    def reference_marks(self) -> tuple[float, ...]:
        """Marks at reference prices: as configured, Black-76 for options without a mark."""
        model = self._model_marks()
        return tuple(float(model.get(k, m.mark)) for k, m in enumerate(self.markets))  # type: ignore[arg-type]

    def option_years(self, market: str) -> float:
        """Years to expiry of an option market (ISO expiries resolved on ``valuation_date``)."""
        return float(self._option_years[self.market_index[market]])

    def _model_marks(self) -> dict[int, float]:
        """Black-76 marks of the options given without a mark, at reference prices."""
        todo = [k for k, m in enumerate(self.markets) if m.is_option and m.mark is None]
        if not todo:
            return {}
        spots = [self.reference_price(self.markets[k].underlying) for k in todo]
        return dict(zip(todo, option_marks(self, todo, spots, black76), strict=True))

    def ask_price(self, symbol: str, asset_prices: Any = None) -> float:
        """The ask of asset ``symbol`` (USD) at ``asset_prices`` (by universe index; default
        the universe's): its price × ask / price (the price itself without an ask). What a
        result stated in that asset's units divides by (docs/MODEL.md "Two-sided valuation")."""
        if not isinstance(symbol, str):
            raise ConfigTypeError(f"unit: {symbol!r} is not an asset symbol", field="unit")
        if symbol not in self.asset_index:
            known = ", ".join(self.asset_index)
            raise ConfigError(f"unit: {symbol!r} is not an asset ({known})", field="unit")
        i = self.asset_index[symbol]
        a = self.assets[i]
        price = a.price if asset_prices is None else float(asset_prices[i])
        factor = 1.0 if a.ask is None else a.ask / a.price
        out = price * factor
        if not (math.isfinite(out) and out > 0):
            raise ConfigError(f"unit: {symbol} is worth {out}, nothing to state in", field="unit")
        return out

    def brackets_with_amounts(self, market: str) -> list[tuple[float, float, float, float, float]]:
        """``(bound, imr, mmr, cum_initial, cum_maint)`` rows of a market, as the engine
        uses them (``cum_maint`` is Binance's "maintenance amount")."""
        try:
            k = self.market_index[market]
        except KeyError:
            raise ConfigError(f"markets[{market}]: unknown market", field=market) from None
        return list(self._compiled.brackets(k))


def _check_valuation_date(value: Any) -> None:
    f = "valuation_date"
    if value is None:
        return
    if not isinstance(value, str | date):
        raise ConfigTypeError(
            f"{f}: {value!r} is not an ISO date ({type(value).__name__})", field=f
        )
    try:
        _instant(value)
    except ValueError:
        raise ConfigError(f"{f}: {value!r} is not an ISO date", field=f) from None


def _warn_capped_haircuts(assets: Sequence[Asset]) -> None:
    """A haircut table whose last bound is finite counts collateral above it as zero (the
    documented rule, kept); usually the table was meant to end with ``inf``."""
    for a in assets:
        if a.haircut_tiers and math.isfinite(a.haircut_tiers[-1][0]):
            bound, rate = a.haircut_tiers[-1]
            warnings.warn(
                f"assets[{a.symbol}].haircut_tiers: the last bound is {bound:g}, so collateral "
                f"above {bound:g} USD counts as zero; end the table with [inf, {rate:g}] to "
                "keep counting it at the last rate",
                ConfigWarning,
                stacklevel=4,
            )


def option_marks(universe: Universe, markets: list[int], spots: list[float], pricer: Any) -> Any:
    """Black-76 value of option markets at the given underlying prices (forward = spot), in
    settle units per unit of underlying: USD for linear options, coin (÷ spot) for inverse."""
    ms = [universe.markets[k] for k in markets]
    s = np.array(spots, dtype=np.float64)
    t = pricer(
        s,
        [m.strike for m in ms],
        [universe._option_years[k] for k in markets],
        [m.iv for m in ms],
        [m.rate for m in ms],
        [m.option_type == "call" for m in ms],
    )
    inverse = np.array([m.inverse for m in ms], dtype=bool)
    return np.where(inverse, t.price / s, t.price)


def _build_one(cls: type[Any], label: str, row: Mapping[str, Any]) -> Any:
    for key in row:
        if key not in cls.__dataclass_fields__:
            raise ConfigError(f"{label}.{key}: unknown field", field=f"{label}.{key}")
    try:
        return cls(**row)
    except ConfigError:
        raise
    except TypeError as e:
        raise ConfigError(f"{label}: {e}", field=label) from None


def _build(cls: type[Any], kind: str, i: int, row: Any) -> Any:
    if not isinstance(row, Mapping):
        raise ConfigTypeError(
            f"{kind}[{i}]: expected a table, got {type(row).__name__}", field=f"{kind}[{i}]"
        )
    label = row.get("symbol", i)
    names = set(cls.__dataclass_fields__) - {"_compiled"}
    for key in row:
        if key not in names:
            raise ConfigError(
                f"{kind}[{label}].{key}: unknown field", field=f"{kind}[{label}].{key}"
            )
    try:
        return cls(**row)
    except ConfigError:  # names its field already (ConfigTypeError is a TypeError too)
        raise
    except TypeError as e:  # a missing required field
        raise ConfigError(f"{kind}[{label}]: {e}", field=f"{kind}[{label}]") from None


__all__ = [
    "MARKET_KINDS",
    "ORDER_VALUES",
    "REQUIREMENT_SHAPES",
    "VALUATION_BASES",
    "Asset",
    "FixedPoint",
    "Market",
    "Universe",
]
