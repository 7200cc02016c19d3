"""Liquidation cascades: how a shock on a thin book propagates through a cross-margined pool.

A shock (or a path of moves) hits the prices; accounts below maintenance are liquidated in
priority order (riskiest first, ties by account id), in slices; each round's liquidation flow
is netted per market and filled against a liquidity model, which moves the marks and drags the
next accounts under. Fees go to the insurance fund, bad debt comes out of it, and past zero
the other side is auto-deleveraged (or takes a socialised loss). Every amount moves through an
integer ledger (1e-8 units), so ``check_conservation()`` holds exactly.

Rules in full: docs/MODEL.md, "Liquidation cascades".
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from crossmargin import _core
from crossmargin._validate import bounded, integer, mapping, sequence, show, text
from crossmargin.book import POSITION_SIDES, Book, SymbolColumn
from crossmargin.exceptions import (
    ConfigError,
    ConfigTypeError,
    LedgerError,
    TruncatedWarning,
)
from crossmargin.prices import shocked
from crossmargin.table import Table, Tabular
from crossmargin.universe import Universe

#: Event kinds, in the order of the core's codes (``cascade::policy::EventKind``).
EVENT_KINDS: tuple[str, ...] = _core.EVENT_KINDS


@dataclass(frozen=True)
class SqrtImpact:
    """Square-root impact I = y·σ·sqrt(Q/V) on net flow Q (USD) against daily volume V and
    daily volatility σ (Tóth et al. 2011); a fraction ``permanent`` of it stays in the mark."""

    daily_volume: float = 1e9
    sigma: float = 0.05
    y: float = 1.0
    permanent: float = 0.5

    def __post_init__(self) -> None:
        # The same domains as the core's check (cascade/impact.rs), at construction.
        checks = {
            "daily_volume": bounded(
                self.daily_volume, "SqrtImpact.daily_volume", 0.0, lo_open=True
            ),
            "sigma": bounded(self.sigma, "SqrtImpact.sigma", 0.0),
            "y": bounded(self.y, "SqrtImpact.y", 0.0),
            "permanent": bounded(self.permanent, "SqrtImpact.permanent", 0.0, 1.0),
        }
        for name, value in checks.items():
            object.__setattr__(self, name, value)

    def _core(self) -> tuple[str, list[float]]:
        return "sqrt", [self.y, self.sigma, self.daily_volume, self.permanent]


@dataclass(frozen=True)
class DepthCurve:
    """A thin book: ``points`` = ``[(relative distance from mark, cumulative USD notional)]``,
    piecewise linear; a flat stretch is a gap with no depth. Beyond the last point the curve
    keeps its average slope."""

    points: Sequence[tuple[float, float]]

    def __post_init__(self) -> None:
        # The same rules as the core's check (cascade/impact.rs), at construction: distances
        # increase within (0, 1), cumulative notional finite and not decreasing, some depth.
        f = "DepthCurve.depth"
        pts = sequence(self.points, f, "(distance, cumulative notional) points")
        if not len(pts):
            raise ConfigError(
                f"{f}: needs one or more (distance, cumulative notional) points", field=f
            )
        out: list[tuple[float, float]] = []
        d0 = c0 = 0.0
        for k, p in enumerate(pts):
            sequence(p, f"{f}[{k}]", "2 numbers (distance, cumulative notional)")
            if len(p) != 2:
                raise ConfigError(f"{f}[{k}]: expected 2 numbers, got {len(p)}", field=f"{f}[{k}]")
            d = bounded(p[0], f"{f}[{k}].distance", 0.0, 1.0, lo_open=True, hi_open=True)
            c = bounded(p[1], f"{f}[{k}].notional", 0.0)
            if d <= d0:
                raise ConfigError(
                    f"{f}[{k}].distance: {d} must increase (previous {d0})",
                    field=f"{f}[{k}].distance",
                )
            if c < c0:
                raise ConfigError(
                    f"{f}[{k}].notional: {c} must not decrease (previous {c0})",
                    field=f"{f}[{k}].notional",
                )
            out.append((d, c))
            d0, c0 = d, c
        if c0 <= 0:
            raise ConfigError(f"{f}: the curve holds no notional at all", field=f)
        object.__setattr__(self, "points", tuple(out))

    def _core(self) -> tuple[str, list[float]]:
        return "depth", [float(x) for p in self.points for x in p]


@dataclass(frozen=True)
class NoImpact:
    """Fills at the mark and leaves it (monotonicity and what-if studies)."""

    def _core(self) -> tuple[str, list[float]]:
        return "none", []


Liquidity = SqrtImpact | DepthCurve | NoImpact
LIQUIDITY_MODELS = (SqrtImpact, DepthCurve, NoImpact)
CASCADE_MODES = ("rounds", "events")
DELEVERAGE: tuple[str, ...] = _core.DELEVERAGE
# Rounds are numbered in u32 columns; a count above that means "no limit" anyway.
MAX_COUNT = 2**32 - 1


@dataclass(frozen=True)
class CascadeConfig:
    """How a cascade runs.

    ``shock``: fractional moves applied at once, keyed by underlying (moves its markets and
    the asset of that symbol), asset or market, e.g. ``{"BTC": -0.30}``. ``path``: a list of
    such moves, each cumulative from today's prices; the cascade settles at each step before
    the next. ``insurance_fund``: USD (held in the quote asset, the asset most markets settle
    in) or ``{asset: quantity}``. ``liquidity``: one model for all markets, or per market
    symbol (default :class:`SqrtImpact` with its defaults). ``mode="events"`` liquidates one
    account per round (exact sequencing; small books). A liquidation closes
    ``partial_fraction`` of a position, or more when ``target_margin_ratio`` (requirement /
    equity after the slice, e.g. 0.8) asks for more, or all of it when it or its remainder would
    be below ``min_notional`` USD.

    Every field is checked at construction: a wrong type raises
    :class:`~crossmargin.exceptions.ConfigTypeError`, a value out of its domain (an insurance
    fund < 0, a fee outside [0, 1], a move at or below −100%...) a ``ConfigError``, naming
    the field (``cascade.insurance_fund``, ``cascade.path[1][BTC]``).
    """

    shock: Mapping[str, float] | None = None
    path: Sequence[Mapping[str, float]] | None = None
    insurance_fund: float | Mapping[str, float] = 0.0
    liquidation_fee: float = 0.005
    partial_fraction: float = 0.2
    target_margin_ratio: float | None = None
    min_notional: float = 10.0
    max_rounds: int = 100
    mode: Literal["rounds", "events"] = "rounds"
    liquidity: Liquidity | Mapping[str, Liquidity] | None = None
    decay: float = 0.5
    deleverage: Literal["adl", "socialized_loss", "none"] = "adl"
    max_liquidations_per_round: int = 0

    def __post_init__(self) -> None:
        """Every field's type and domain, at construction; an error names the field, e.g.
        ``cascade.insurance_fund: -5.0 must be finite and ≥ 0``. (Which symbols exist is
        checked against the universe when the cascade runs.)"""
        if self.shock is not None and self.path is not None:
            raise ConfigError("cascade: give shock or path, not both", field="cascade.shock")
        if self.shock is not None:
            _check_moves(self.shock, "cascade.shock")
        if self.path is not None:
            steps = sequence(self.path, "cascade.path", "mappings of moves")
            if not len(steps):
                raise ConfigError("cascade.path: needs one or more steps", field="cascade.path")
            for t, step in enumerate(steps):
                _check_moves(step, f"cascade.path[{t}]")
        f = "cascade.insurance_fund"
        if isinstance(self.insurance_fund, Mapping):
            for sym, qty in mapping(self.insurance_fund, f, "asset → quantity").items():
                bounded(qty, f"{f}[{sym}]", 0.0)
        else:
            bounded(self.insurance_fund, f, 0.0)
        bounded(self.liquidation_fee, "cascade.liquidation_fee", 0.0, 1.0)
        bounded(self.partial_fraction, "cascade.partial_fraction", 0.0, 1.0, lo_open=True)
        if self.target_margin_ratio is not None:
            f = "cascade.target_margin_ratio"
            bounded(self.target_margin_ratio, f, 0.0, 1.0, hi_open=True)
        bounded(self.min_notional, "cascade.min_notional", 0.0)
        integer(self.max_rounds, "cascade.max_rounds", 1, MAX_COUNT)
        text(self.mode, "cascade.mode", CASCADE_MODES)
        _check_liquidity(self.liquidity)
        bounded(self.decay, "cascade.decay", 0.0, 1.0)
        text(self.deleverage, "cascade.deleverage", DELEVERAGE)
        f = "cascade.max_liquidations_per_round"
        integer(self.max_liquidations_per_round, f, 0, MAX_COUNT)


def _check_moves(moves: Any, field: str) -> None:
    """A mapping symbol → fractional move, each finite and above −100%."""
    for key, move in mapping(moves, field, "symbol → move").items():
        bounded(move, f"{field}[{key}]", -1.0, lo_open=True)


def _check_liquidity(spec: Any) -> None:
    """None, one liquidity model, or a mapping market symbol → model."""
    f = "cascade.liquidity"
    what = "a liquidity model (SqrtImpact, DepthCurve or NoImpact)"
    if spec is None or isinstance(spec, LIQUIDITY_MODELS):
        return
    if not isinstance(spec, Mapping):
        raise ConfigTypeError(f"{f}: {show(spec)} is not {what}", field=f)
    for sym, model in mapping(spec, f, "market → liquidity model").items():
        if not isinstance(model, LIQUIDITY_MODELS):
            raise ConfigTypeError(f"{f}[{sym}]: {show(model)} is not {what}", field=f"{f}[{sym}]")


@dataclass(frozen=True)
class CascadeResult(Tabular):
    """Event log, per-round table, final book and totals of one cascade.

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"events"`` (the
    event log, one row per liquidation, bankruptcy, ADL or socialised-loss event); also
    ``"rounds"`` (one row per round) and ``"ledger"`` (per asset totals before and after).
    """

    _TABLES = ("events", "rounds", "ledger")

    events: Table
    rounds: Table
    final_book: Book
    bad_debt: float
    fees: float
    insurance_fund: float
    uncovered_bad_debt: float
    truncated: bool
    """True when ``max_rounds`` (a per-step limit) cut a step short (see ``truncated_steps``)."""
    truncated_steps: tuple[int, ...]
    """The path steps cut short by ``max_rounds`` with accounts still liquidatable; the
    cascade went on with the next step."""
    ledger: Table
    _totals: tuple[list[int], list[int]] = field(repr=False)

    def check_conservation(self) -> bool:
        """True when every asset's total (balances + isolated margins + insurance fund +
        external counterparty) is exactly what it was; raises :class:`LedgerError` otherwise."""
        before, after = self._totals
        for sym, b, a in zip(self.ledger["asset"], before, after, strict=True):
            if b != a:
                raise LedgerError(
                    f"ledger[{sym}]: {b} minor units before, {a} after", field=f"ledger[{sym}]"
                )
        return True

    def summary(self) -> dict[str, Any]:
        liquidated = np.unique(
            self.events.account[np.isin(self.events.kind, ["liquidation", "isolated"])]
        )
        return {
            "rounds": len(self.rounds),
            "events": len(self.events),
            "accounts_liquidated": len(liquidated),
            "liquidated_notional_usd": float(self.rounds.liquidated_notional_usd.sum())
            if len(self.rounds)
            else 0.0,
            "fees_usd": self.fees,
            "bad_debt_usd": self.bad_debt,
            "insurance_fund_usd": self.insurance_fund,
            "uncovered_bad_debt_usd": self.uncovered_bad_debt,
            "adl_events": int((self.events.kind == "adl").sum()),
            "truncated": self.truncated,
            "truncated_steps": list(self.truncated_steps),
        }


def quote_asset(universe: Universe) -> str:
    """The asset most markets settle in (ties: first in the universe)."""
    if not universe.markets:
        return universe.assets[0].symbol
    counts: dict[str, int] = {}
    for m in universe.markets:
        counts[m.settle] = counts.get(m.settle, 0) + 1
    return max(universe.assets, key=lambda a: counts.get(a.symbol, 0)).symbol


def moved_prices(universe: Universe, moves: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """One step of a cascade's path: (asset prices, marks) after fractional ``moves``
    (crossmargin.prices.shocked, the one shock rule)."""
    return shocked(universe, moves, "cascade.shock")


def insurance_by_asset(universe: Universe, fund: float | Mapping[str, float]) -> list[float]:
    """The insurance fund as a quantity per asset: ``{asset: qty}`` as given, a number as USD
    in the quote asset (:func:`quote_asset`)."""
    out = [0.0] * len(universe.assets)
    if isinstance(fund, Mapping):
        for sym, qty in fund.items():
            if sym not in universe.asset_index:
                raise ConfigError(
                    f"cascade.insurance_fund[{sym}]: unknown asset",
                    field=f"cascade.insurance_fund[{sym}]",
                )
            out[universe.asset_index[sym]] = float(qty)
        return out
    quote = universe.asset_index[quote_asset(universe)]
    price = universe.assets[quote].price
    if price <= 0:
        raise ConfigError("cascade.insurance_fund: the quote asset has no price; give {asset: qty}")
    out[quote] = float(fund) / price
    return out


def _liquidity(
    universe: Universe, spec: Liquidity | Mapping[str, Liquidity] | None
) -> list[tuple[str, list[float]]]:
    models: list[tuple[str, list[float]]] = []
    for m in universe.markets:
        model = (
            spec.get(m.symbol, SqrtImpact())
            if isinstance(spec, Mapping)
            else (spec or SqrtImpact())
        )
        if not isinstance(model, SqrtImpact | DepthCurve | NoImpact):
            raise ConfigError(f"cascade.liquidity[{m.symbol}]: {model!r} is not a liquidity model")
        models.append(model._core())
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in universe.market_index]
        if unknown:
            raise ConfigError(
                f"cascade.liquidity[{unknown[0]}]: unknown market",
                field=f"cascade.liquidity[{unknown[0]}]",
            )
    return models


def path_prices(universe: Universe, config: CascadeConfig) -> tuple[np.ndarray, np.ndarray]:
    """(asset prices, marks) per path step, as 2-D arrays (steps × assets, steps × markets)."""
    steps = list(config.path) if config.path is not None else [config.shock or {}]
    if not steps:
        raise ConfigError("cascade.path: needs one or more steps", field="cascade.path")
    moved = [moved_prices(universe, s) for s in steps]
    assets = np.array([a for a, _ in moved], dtype=np.float64).reshape(
        len(steps), len(universe.assets)
    )
    marks = np.array([m for _, m in moved], dtype=np.float64).reshape(
        len(steps), len(universe.markets)
    )
    return assets, marks


@dataclass(frozen=True, eq=False)
class CascadeRules:
    """A :class:`CascadeConfig` resolved against one universe: what the core's cascade reads
    (by attribute) — the path's prices (steps × assets, steps × markets), one liquidity model
    per market as ``(kind, parameters)``, the insurance fund per asset, and the numbers of
    the configuration. Built by :meth:`of`; picklable (the sharded cascade ships it)."""

    step_asset_prices: np.ndarray
    step_marks: np.ndarray
    liquidity: list[tuple[str, list[float]]]
    decay: float
    liquidation_fee: float
    partial_fraction: float
    target_margin_ratio: float
    min_notional: float
    max_rounds: int
    max_liquidations_per_round: int
    deleverage: str
    insurance_fund: list[float]

    @classmethod
    def of(cls, universe: Universe, config: CascadeConfig) -> CascadeRules:
        step_assets, step_marks = path_prices(universe, config)
        return cls(
            step_asset_prices=np.ascontiguousarray(step_assets),
            step_marks=np.ascontiguousarray(step_marks),
            liquidity=_liquidity(universe, config.liquidity),
            decay=float(config.decay),
            liquidation_fee=float(config.liquidation_fee),
            partial_fraction=float(config.partial_fraction),
            target_margin_ratio=float(config.target_margin_ratio or 0.0),
            min_notional=float(config.min_notional),
            max_rounds=int(config.max_rounds),
            max_liquidations_per_round=1
            if config.mode == "events"
            else int(config.max_liquidations_per_round),
            deleverage=config.deleverage,
            insurance_fund=insurance_by_asset(universe, config.insurance_fund),
        )


def assemble(
    universe: Universe,
    out: Mapping[str, Any],
    totals: tuple[list[int], list[int]],
    final_book: Book,
    engine: _core.Engine,
) -> CascadeResult:
    """A :class:`CascadeResult` from the core's outputs (events, rounds, pools, totals);
    ``engine`` picks the events' names by code (``Engine.take_names``, on its pool)."""
    u = universe
    ev = out["events"]
    names = engine.take_names
    events = Table(
        {
            "round": ev["round"],
            "step": ev["step"],
            "account": ev["account"],
            "market": names([m.symbol for m in u.markets], ev["market"], ""),  # -1: account-level
            "qty": ev["qty"],
            "price": ev["price"],
            "notional_usd": ev["notional_usd"],
            "fee_usd": ev["fee_usd"],
            "bad_debt_usd": ev["bad_debt_usd"],
            "kind": names(list(EVENT_KINDS), ev["kind"]),
            # The position's side (a hedge leg is liquidated as its own position); "" for an
            # account-level event (core code 255).
            "side": names(list(POSITION_SIDES), ev["side"], ""),
        }
    )
    r = dict(out["rounds"])
    marks = r.pop("marks")
    rounds = Table({**r, **{f"mark_{m.symbol}": marks[:, k] for k, m in enumerate(u.markets)}})
    insurance, external = list(out["insurance_minor"]), list(out["external_minor"])
    prices = out["final_asset_prices"]
    scale = float(_core.SCALE)  # minor units per asset unit
    fund = sum(q / scale * p for q, p in zip(insurance, prices, strict=True))
    ledger = Table(
        {
            "asset": np.array([a.symbol for a in u.assets], dtype=object),
            "total_before": np.array([t / scale for t in totals[0]]),
            "total_after": np.array([t / scale for t in totals[1]]),
            "insurance_fund": np.array([t / scale for t in insurance]),
            "external": np.array([t / scale for t in external]),
        }
    )
    if out["truncated_steps"]:
        warnings.warn(
            TruncatedWarning(
                "cascade: max_rounds (a per-step limit) cut path step(s) "
                f"{', '.join(str(x) for x in out['truncated_steps'])} short with accounts still "
                "liquidatable; bad debt and liquidations are understated (raise max_rounds)"
            ),
            stacklevel=4,  # the caller of Engine.cascade
        )
    return CascadeResult(
        events=events,
        rounds=rounds,
        final_book=final_book,
        bad_debt=float(out["bad_debt_usd"]),
        fees=float(out["fees_usd"]),
        insurance_fund=float(fund),
        uncovered_bad_debt=max(-float(fund), 0.0),
        truncated=bool(out["truncated_steps"]),
        truncated_steps=tuple(int(x) for x in out["truncated_steps"]),
        ledger=ledger,
        _totals=(list(totals[0]), list(totals[1])),
    )


def run_cascade(
    engine: _core.Engine, universe: Universe, book: _core.BookView, config: CascadeConfig
) -> CascadeResult:
    """Runs ``config`` on ``book`` (bound to ``universe``, which ``engine`` holds compiled);
    the implementation of :meth:`crossmargin.Engine.cascade`."""
    out = engine.cascade(book, CascadeRules.of(universe, config))
    # The core hands the final book over grouped: its columns (universe indices) and their
    # grouping, made from the rows the cascade held grouped — nothing is regrouped here.
    b, p = out["balances"], out["positions"]
    final_book = Book(
        {"account": b["account"], "asset": SymbolColumn(b["asset"], None), "qty": b["qty"]},
        {**p, "market": SymbolColumn(p["market"], None)},
        grouped=out["grouped"],
    )
    return assemble(universe, out, (out["totals_before"], out["totals_after"]), final_book, engine)


__all__ = [
    "EVENT_KINDS",
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
