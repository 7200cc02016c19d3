"""Portfolio-margin parameters: per-underlying scenario grids (SPAN-like), short-option
minimum, delta-model rate, inter-underlying offsets and the hybrid floor.

Attach to a universe with ``Universe(..., portfolio=PortfolioConfig(...))`` or a
``[portfolio]`` table in its TOML file; the Rust core validates them against the universe
(unknown underlyings, non-finite moves, negative rates → ConfigError). The rules the
parameters feed are in docs/MODEL.md, "Portfolio margin".

Presets:

- :func:`span16`: CME SPAN's 16 risk scenarios (price unchanged, ±1/3, ±2/3, ±3/3 of the price
  scan range, each with volatility up and down by the volatility scan range; two extreme
  moves of ``extreme_multiple`` × the scan range (CME: double), volatility unchanged, at a
  cover fraction of 35%). Source: CME Group, "CME SPAN Methodology Overview" and
  "Risk Arrays - Standard"
  (https://www.cmegroup.com/clearing/risk-management/span-overview.html).
- :func:`crypto`: Deribit's segregated portfolio margin grid: price moves of ±16% in 9 evenly
  spaced buckets, each with volatility up / unchanged / down, plus an extended table of large
  moves (−66%, −33%, +50%, +100%, +200%, +300%, +400%, +500%) with volatility up, each
  counted at range / |move| (the "dampener"; these weights are Paradex's published table).
  Sources:
  https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin and
  https://docs.paradex.trade/risk/portfolio-margin (vol shocks +40% / −22% relative,
  scaled by (30 / days to expiry)^0.30).
- :func:`deribit`: Deribit's legacy portfolio margin as published
  (https://www.deribit.com/docs/category/uncategorized/, "Portfolio margin"): price moves up to
  ±12.5 %, implied volatility moves of ±40 % × √(30 / days to expiry), a contingency of 1 % of
  the underlying value of all options (long and short) and of 2 % of offsetting futures. Its
  25 % contingency on vega offset across expiries is not modelled.
- :func:`okx`: OKX portfolio margin's scenario part max(MR1, MR6): the published spot shocks per
  underlying (BTC, ETH: 0, ±4 %, ±8 %, ±12 %) with volatility up / unchanged / down, and the
  extreme move (BTC, ETH: ±24 %) counted at one half; initial = 1.3 × maintenance
  (:data:`OKX_IM_FACTOR`). MR2-MR5, MR7 and MR9 are not modelled (a lower bound of OKX's MMR).
- :func:`bybit`: Bybit portfolio margin's maximum loss: 11 price moves over ±10 % (BTC, ETH) with
  implied volatility up / unchanged / down; initial = 1.2 × maintenance
  (:data:`BYBIT_IM_FACTOR`). The contingency components are not modelled (a lower bound).

Sources of both, and what does not fit, in the presets' docstrings and docs/MODEL.md
"Portfolio presets".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossmargin import _core
from crossmargin.exceptions import ConfigError

Scenario = tuple[float, float, float]


@dataclass(frozen=True)
class UnderlyingPortfolio:
    """Scenarios of one underlying, each ``(price_move, vol_move, weight)``: relative price
    move, volatility move (absolute vol points, or relative when ``vol_relative``), and the
    fraction of the scenario's P&L that counts (1, or a cover fraction for extreme moves).

    ``short_option_min``: per short option contract, a fraction of the underlying's value
    (Deribit: 0.01 BTC per short option). ``option_contingency``: per option contract, long
    or short, a fraction of the underlying's value. ``futures_offset``: a fraction of the
    offsetting perps and futures, min(long, short) USD delta. ``delta_rate``: the delta
    model's charge per USD of net delta (default: the largest full-weight price move).
    ``vol_power``: volatility moves scale by (30 / days to expiry)^vol_power.
    """

    scenarios: Sequence[Scenario]
    short_option_min: float = 0.0
    delta_rate: float | None = None
    option_contingency: float = 0.0
    futures_offset: float = 0.0
    vol_power: float = 0.0
    vol_relative: bool = False

    def __post_init__(self) -> None:
        try:
            rows = tuple((float(p), float(v), float(w)) for p, v, w in self.scenarios)
        except (TypeError, ValueError):
            raise ConfigError(
                "portfolio scenarios: expected (price_move, vol_move, weight) triples",
                field="scenarios",
            ) from None
        object.__setattr__(self, "scenarios", rows)
        if self.delta_rate is None:
            full = [abs(p) for p, _, w in rows if w >= 1.0] or [abs(p) for p, _, _ in rows]
            object.__setattr__(self, "delta_rate", max(full, default=0.0))
        # The types the core reads these fields as.
        for name in (
            "short_option_min",
            "delta_rate",
            "vol_power",
            "option_contingency",
            "futures_offset",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "vol_relative", bool(self.vol_relative))

    @classmethod
    def grid(
        cls,
        price_moves: Sequence[float],
        vol_moves: Sequence[float] = (0.0,),
        extreme_moves: Sequence[float] = (),
        extreme_vol: float = 0.0,
        extreme_weights: Sequence[float] | float = 0.35,
        **kw: Any,
    ) -> UnderlyingPortfolio:
        """Every price move with every vol move at weight 1, then the extreme moves at
        ``extreme_vol`` with their weights (one number for all, or one per move)."""
        ws = (
            [float(extreme_weights)] * len(extreme_moves)
            if isinstance(extreme_weights, int | float)
            else list(extreme_weights)
        )
        if len(ws) != len(extreme_moves):
            raise ConfigError(
                "extreme_weights: one weight per extreme move", field="extreme_weights"
            )
        rows = [(p, v, 1.0) for p in price_moves for v in vol_moves]
        rows += [(p, extreme_vol, w) for p, w in zip(extreme_moves, ws, strict=True)]
        return cls(rows, **kw)


def span16(
    price_scan: float,
    vol_scan: float = 0.04,
    extreme_multiple: float = 2.0,
    cover: float = 0.35,
    **kw: Any,
) -> UnderlyingPortfolio:
    """CME SPAN's 16 scenarios for a price scan range (relative, e.g. 0.08) and a volatility
    scan range (absolute vol points)."""
    scenarios: list[Scenario] = []
    for frac in (0.0, 1 / 3, -1 / 3, 2 / 3, -2 / 3, 1.0, -1.0):
        scenarios += [(frac * price_scan, vol_scan, 1.0), (frac * price_scan, -vol_scan, 1.0)]
    scenarios += [
        (extreme_multiple * price_scan, 0.0, cover),
        (-extreme_multiple * price_scan, 0.0, cover),
    ]
    return UnderlyingPortfolio(scenarios, **kw)


DERIBIT_EXTENDED = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


def crypto(
    price_range: float = 0.16,
    buckets: int = 9,
    vol_up: float = 0.40,
    vol_down: float = -0.22,
    extended: Sequence[float] = DERIBIT_EXTENDED,
    short_option_min: float = 0.01,
    vol_power: float = 0.30,
    **kw: Any,
) -> UnderlyingPortfolio:
    """Deribit-style crypto grid: ``buckets`` price moves evenly over ±price_range, each with
    relative vol up / unchanged / down, plus the extended moves at vol up weighted
    price_range / |move|. The defaults give 27 + 8 = 35 scenarios; ``buckets=11,
    extended=()`` gives the 33-scenario grid of the benchmark."""
    if buckets < 2:
        raise ConfigError("crypto.buckets: at least 2", field="crypto.buckets")
    moves = [-price_range + 2 * price_range * i / (buckets - 1) for i in range(buckets)]
    return UnderlyingPortfolio.grid(
        moves,
        (vol_up, 0.0, vol_down),
        extreme_moves=tuple(extended),
        extreme_vol=vol_up,
        extreme_weights=[min(1.0, price_range / abs(m)) for m in extended],
        short_option_min=short_option_min,
        vol_power=vol_power,
        vol_relative=True,
        **kw,
    )


def deribit(
    price_range: float = 0.125,
    buckets: int = 11,
    vol_move: float = 0.40,
    option_contingency: float = 0.01,
    futures_offset: float = 0.02,
    **kw: Any,
) -> UnderlyingPortfolio:
    """Deribit's legacy portfolio margin (https://www.deribit.com/docs/category/uncategorized/,
    "Portfolio margin"): ``buckets`` price moves over ±price_range (12.5 %), each with implied
    volatility up / unchanged / down by ``vol_move`` (40 %, relative) × √(30 / days to
    expiry); a contingency of ``option_contingency`` (1 %) of the underlying value of every
    option, long or short, and of ``futures_offset`` (2 %) of offsetting futures (long
    100 BTC in one future and short 100 BTC in another: 2 BTC)."""
    if buckets < 2:
        raise ConfigError("deribit.buckets: at least 2", field="deribit.buckets")
    moves = [-price_range + 2 * price_range * i / (buckets - 1) for i in range(buckets)]
    return UnderlyingPortfolio.grid(
        moves,
        (vol_move, 0.0, -vol_move),
        vol_power=0.5,
        vol_relative=True,
        option_contingency=option_contingency,
        futures_offset=futures_offset,
        **kw,
    )


# OKX portfolio margin, BTC-USDT-style risk units. MR1 ("spot shock") price moves and MR6
# ("extreme move") moves per underlying as adjusted on 6 January 2025: OKX, "OKX will further
# adjust portfolio margin parameters" (2 January 2025,
# https://www.okx.com/help/okx-will-further-adjust-portfolio-margin-parameters, read as stored at
# https://okx-api.aperture.finance/help/okx-will-further-adjust-portfolio-margin-parameters).
OKX_SPOT_SHOCKS: dict[str, tuple[float, ...]] = {
    **dict.fromkeys(("BTC", "ETH"), (0.04, 0.08, 0.12)),
    **dict.fromkeys(
        ("LTC", "BCH", "EOS", "OKB", "DOT", "BSV", "LINK", "FIL", "ADA", "TRX", "UNI", "XRP"),
        (0.06, 0.12, 0.18),
    ),
}
OKX_SPOT_SHOCKS_OTHER = (0.08, 0.16, 0.25)
OKX_EXTREME_MOVES: dict[str, float] = {
    **dict.fromkeys(("BTC", "ETH"), 0.24),
    **dict.fromkeys(
        ("SOL", "DOGE", "PEPE", "XRP", "BNB", "SHIB", "LTC", "ORDI", "WLD", "BCH", "ADA"), 0.36
    ),
}
OKX_EXTREME_MOVE_OTHER = 0.50
# MR6 = half the loss at the extreme move, and IMR = 1.3 × MMR: both read off the worked
# example of OKX's v5 API reference, POST /api/v5/account/position-builder (BTC risk unit:
# mr6 1164.4109244720003 for an MR6 P&L of -2328.8218489440005 at +24 %; imr
# 1538.9669514070802 = 1.3 × mmr 1183.8207318516002; LTC alike), https://www.okx.com/docs-v5/en/
# as stored by openxapi/openxapi (samples/okx/rest/, commit e2791e42).
OKX_EXTREME_WEIGHT = 0.5
OKX_IM_FACTOR = 1.3
# Bybit portfolio margin: price moves over ±10 % for the BTC and ETH risk units since
# 10 January 2025 (±15 % before): Bybit Learn, "Bybit Portfolio Margin Model: Risk Parameter
# Adjustment in 2025"
# (https://learn.bybitglobal.com/en/trading/bybit-portfolio-margin-risk-parameter-adjustment); 11
# price scales -0.1, -0.08, ..., 0.1, each with three IV shocks, and assetIM = 1.2 × assetMM in
# the example of "Get Portfolio Margin Info" (GET /v5/asset/portfolio-margin,
# https://bybit-exchange.github.io/docs/v5/asset/portfolio-margin, bybit-exchange/docs
# docs/v5/asset/portfolio-margin.mdx, commit 0cc4a180).
BYBIT_PRICE_RANGES: dict[str, float] = {"BTC": 0.10, "ETH": 0.10}
BYBIT_IM_FACTOR = 1.2


def _vol_moves(vol_up: float, vol_down: float) -> tuple[float, ...]:
    """Volatility up / unchanged / down, each once (no duplicate scenarios when a shock is 0)."""
    return tuple(dict.fromkeys((float(vol_up), 0.0, float(vol_down))))


def okx(
    underlying: str = "BTC",
    spot_shocks: Sequence[float] | None = None,
    extreme_move: float | None = None,
    extreme_weight: float = OKX_EXTREME_WEIGHT,
    vol_up: float = 0.0,
    vol_down: float = 0.0,
    vol_relative: bool = True,
    **kw: Any,
) -> UnderlyingPortfolio:
    """OKX portfolio margin's scenario part, max(MR1, MR6), for ``underlying``.

    MR1 ("spot shock"): price unchanged and ± each of ``spot_shocks`` (default: OKX's table for
    the underlying, :data:`OKX_SPOT_SHOCKS`; BTC and ETH: ±4 %, ±8 %, ±12 %), each with
    volatility up by ``vol_up``, unchanged and down by ``vol_down`` (negative). MR6 ("extreme
    move"): ±``extreme_move`` (default :data:`OKX_EXTREME_MOVES`; BTC and ETH: ±24 %) at
    volatility unchanged, counted at ``extreme_weight`` (½). Use with
    ``PortfolioConfig(im_factor=OKX_IM_FACTOR)`` (1.3).

    Not modelled (OKX's MMR = max[max(MR1, MR2, MR6) + MR3 + MR4 + MR5, MR7]): MR2 (time
    value), MR3 (volatility term structure), MR4 (basis), MR5 (interest rate), MR7 (minimum
    charge), MR9 (stablecoin hedge). Each is ≥ 0 and enters by max or sum, so this preset's
    requirement is a lower bound of OKX's MMR at the same prices and volatility shocks; the gap
    is MR3 + MR4 + MR5, plus MR2 or MR7 where they bind. OKX publishes the MR1 volatility
    shocks' sizes in none of the sources found: both default to 0 (options then keep their
    volatility); pass the venue's values.

    >>> okx("LTC").scenarios[:3]
    ((0.0, 0.0, 1.0), (0.06, 0.0, 1.0), (-0.06, 0.0, 1.0))
    """
    shocks = tuple(spot_shocks) if spot_shocks is not None else None
    if shocks is None:
        shocks = OKX_SPOT_SHOCKS.get(underlying, OKX_SPOT_SHOCKS_OTHER)
    if extreme_move is None:
        extreme_move = OKX_EXTREME_MOVES.get(underlying, OKX_EXTREME_MOVE_OTHER)
    moves = [0.0]
    for m in shocks:
        moves += [float(m), -float(m)]
    return UnderlyingPortfolio.grid(
        moves,
        _vol_moves(vol_up, vol_down),
        extreme_moves=(extreme_move, -extreme_move),
        extreme_vol=0.0,
        extreme_weights=extreme_weight,
        vol_relative=vol_relative,
        **kw,
    )


def bybit(
    price_range: float = 0.10,
    buckets: int = 11,
    vol_up: float = 0.0,
    vol_down: float = 0.0,
    vol_relative: bool = True,
    **kw: Any,
) -> UnderlyingPortfolio:
    """Bybit portfolio margin's "maximum loss": ``buckets`` price moves evenly over
    ±``price_range`` (BTC and ETH: 11 moves over ±10 %, :data:`BYBIT_PRICE_RANGES`), each with
    implied volatility up by ``vol_up``, unchanged and down by ``vol_down`` (negative). Use with
    ``PortfolioConfig(im_factor=BYBIT_IM_FACTOR)`` (1.2).

    Not modelled (Bybit: maintenance margin = maximum loss + contingency components): the
    option contingency (net short options), the futures contingency (Σ |contract qty| × risk
    factor × index), the futures delta (calendar/basis) contingency, the option vega
    contingency and the USDT-USDC contingency. Each is ≥ 0 and added, so this preset's
    requirement is a lower bound of Bybit's at the same prices and shocks; the gap is their
    sum. Bybit's published example shows a worst IV shock of -0.2, but neither the up shock nor
    whether shocks are relative or in vol points is published in the sources found: both
    default to 0 (options then keep their volatility); pass the venue's values.

    >>> [round(p, 2) for p, _, _ in bybit().scenarios][:3]
    [-0.1, -0.08, -0.06]
    """
    if buckets < 2:
        raise ConfigError("bybit.buckets: at least 2", field="bybit.buckets")
    moves = [-price_range + 2 * price_range * i / (buckets - 1) for i in range(buckets)]
    return UnderlyingPortfolio.grid(
        moves, _vol_moves(vol_up, vol_down), vol_relative=vol_relative, **kw
    )


PRESETS = {"span16": span16, "crypto": crypto, "deribit": deribit, "okx": okx, "bybit": bybit}


@dataclass(frozen=True)
class PortfolioConfig:
    """Portfolio-margin parameters of a universe.

    ``underlyings`` maps underlying names to their parameters; ``default`` applies to every
    other underlying (None: markets on those keep their standard requirement). ``offsets``
    are ``(underlying_a, underlying_b, credit_rate)`` pairs, applied in order. Initial
    requirement = ``im_factor`` × maintenance; the hybrid model's requirement is
    max(portfolio, ``hybrid_floor`` × standard).
    """

    underlyings: Mapping[str, UnderlyingPortfolio] = field(default_factory=dict)
    default: UnderlyingPortfolio | None = None
    offsets: Sequence[tuple[str, str, float]] = ()
    im_factor: float = 1.0
    hybrid_floor: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "underlyings", dict(self.underlyings))
        object.__setattr__(
            self, "offsets", tuple((str(a), str(b), float(r)) for a, b, r in self.offsets)
        )
        for name in ("im_factor", "hybrid_floor"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"portfolio.{name}: {v!r} must be a finite number")
            object.__setattr__(self, name, float(v))

    def for_underlying(self, name: str) -> UnderlyingPortfolio | None:
        return self.underlyings.get(name, self.default)

    def compile(self, universe: _core.CompiledUniverse) -> _core.CompiledPortfolio:
        """These parameters validated against a compiled universe (``Universe.compiled``; a
        universe with ``portfolio=`` compiles them itself): the core reads ``offsets``,
        ``im_factor``, ``hybrid_floor`` and each underlying's parameters by name."""
        for name in self.underlyings:
            if name not in universe.underlyings:
                f = f"portfolio.underlyings[{name}]"
                raise ConfigError(f"{f}: '{name}' is not an underlying of the universe", field=f)
        per = [
            (name, p)
            for name in universe.underlyings
            if (p := self.for_underlying(name)) is not None
        ]
        return _core.CompiledPortfolio(universe, self, per)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PortfolioConfig:
        """The TOML layout: ``im_factor``, ``hybrid_floor``, ``offsets = [[a, b, rate], ...]``,
        ``[portfolio.default]`` and ``[portfolio.underlyings.NAME]`` tables, each either
        ``preset = "span16" | "crypto" | "deribit" | "okx" | "bybit"`` with the preset's
        arguments, or ``scenarios = [[price, vol, weight], ...]`` with the UnderlyingPortfolio
        fields."""
        known = {"underlyings", "default", "offsets", "im_factor", "hybrid_floor"}
        for key in data:
            if key not in known:
                raise ConfigError(f"portfolio.{key}: unknown field", field=f"portfolio.{key}")
        under = {
            str(k): _underlying(v, f"portfolio.underlyings[{k}]")
            for k, v in data.get("underlyings", {}).items()
        }
        default = data.get("default")
        return cls(
            under,
            _underlying(default, "portfolio.default") if default is not None else None,
            [tuple(x) for x in data.get("offsets", ())],
            data.get("im_factor", 1.0),
            data.get("hybrid_floor", 0.5),
        )


def _underlying(table: Any, f: str) -> UnderlyingPortfolio:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{f}: expected a table", field=f)
    args = dict(table)
    preset = args.pop("preset", None)
    try:
        if preset is None:
            return UnderlyingPortfolio(**args)
        if preset not in PRESETS:
            raise ConfigError(
                f"{f}.preset: {preset!r} is not one of {', '.join(PRESETS)}", field=f"{f}.preset"
            )
        return PRESETS[preset](**args)  # type: ignore[operator, no-any-return]
    except TypeError as e:
        raise ConfigError(f"{f}: {e}", field=f) from None


__all__ = [
    "BYBIT_IM_FACTOR",
    "BYBIT_PRICE_RANGES",
    "DERIBIT_EXTENDED",
    "OKX_EXTREME_MOVES",
    "OKX_EXTREME_MOVE_OTHER",
    "OKX_EXTREME_WEIGHT",
    "OKX_IM_FACTOR",
    "OKX_SPOT_SHOCKS",
    "OKX_SPOT_SHOCKS_OTHER",
    "PRESETS",
    "PortfolioConfig",
    "Scenario",
    "UnderlyingPortfolio",
    "bybit",
    "crypto",
    "deribit",
    "okx",
    "span16",
]
