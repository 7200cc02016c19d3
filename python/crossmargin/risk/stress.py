"""Scenario stress, reverse stress and historical presets.

A scenario maps symbols to *moves* (fractions: ``-0.3`` is a 30 % fall)::

    {"BTC": -0.5, "ETH": -0.55, "USDC": -0.02, "vol": {"BTC": 0.8}}

- an underlying (``"BTC"``) moves every market on it and the asset of the same symbol;
- an asset (``"USDC"``) moves that asset's price; a market (``"BTCUSDT"``) its mark;
- resolved exactly as the price override ``{symbol: reference × (1 + move)}`` would be
  (:mod:`crossmargin.prices`: in that order, so the more specific key wins; options on a
  moved underlying are repriced there);
- ``"vol"``: moves of implied volatility per underlying (fractions of the vol). They are
  validated and kept on the result; perps and futures do not depend on them.

Every scenario resolves to full price vectors; the Rust kernel
(``rust/crossmargin-core/src/stress.rs``) evaluates each account under all scenarios in one
pass over the book. Shortfall is Σ max(mm − adj_equity_maint, 0) (what liquidations must
recover), bad debt Σ max(−equity, 0) (what the insurance fund must cover).

**Reverse stress** looks for the smallest uniform move (the same fraction on every listed
underlying) at which the loss measure exceeds the insurance fund: a grid of moves in one
pass, then repeated 9-section refinement of the first grid cell where the fund is exceeded.
It assumes the loss grows with the size of the move (true for a book that is net long in the
direction searched). When it does not, the result is still the smallest grid move that
exceeds the fund, refined within its cell; ``monotone`` on the result says whether the grid
losses were non-decreasing, and a crossing narrower than one grid step can be missed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crossmargin import _core
from crossmargin._optional import require
from crossmargin._validate import bounded, number, sequence, show, text
from crossmargin.book import Book
from crossmargin.exceptions import ConfigError, ConfigTypeError, TableError
from crossmargin.prices import shocked
from crossmargin.resources import check_memory
from crossmargin.table import Table, Tabular
from crossmargin.universe import Universe

if TYPE_CHECKING:
    import pandas as pd

Scenario = Mapping[str, Any]
Measure = Literal["bad_debt", "shortfall"]
MEASURES: tuple[str, ...] = ("bad_debt", "shortfall")

# ---- historical presets ------------------------------------------------------------------
# Peak-to-trough moves of the day (or week), rounded to the cited figure. An underlying with
# no figure of its own takes the day's quoted altcoin move, said so next to it. Stablecoins
# are left unmoved. `preset(name, universe)` keeps the keys a universe knows.
PRESETS: dict[str, dict[str, float]] = {
    # 12 Mar 2020 ("Black Thursday"). BTC "from $7,300 to $3,900 ... fell more than 50%"
    # intraday: https://blog.btcmex.com/black-thursday-what-actually-happened-to-bitcoin/
    # ETH "from $200 to $90 (55% down)": https://www.pastorq.com/8162.html
    # SOL (barely listed then): ETH's move.
    "2020-03-12": {"BTC": -0.50, "ETH": -0.55, "SOL": -0.55},
    # 19 May 2021. BTC "from above $40,000 to near $30,000 — a staggering drop of nearly 30%
    # within just 24 hours"; ETH "dropping nearly 46% to around $1,900":
    # https://www.mtwwr.com/2914.html. DOGE "lost 40%": https://www.open-lib.com/1941.html
    # SOL: DOGE's altcoin move.
    "2021-05-19": {"BTC": -0.30, "ETH": -0.46, "DOGE": -0.40, "SOL": -0.40},
    # FTX week, 7–14 Nov 2022. "bitcoin has lost 22.4% in a single week. Ether ... down
    # 24.4%"; Solana "has lost 61.6% of its value in just the last seven days":
    # https://thefinancialtrends.com/2022/11/15/ftx-contagion-begins-to-spread
    "2022-11-ftx": {"BTC": -0.224, "ETH": -0.244, "SOL": -0.616},
    # 10 Oct 2025 (tariff shock, largest liquidation day). BTC "$122,000 to below $107,000 -
    # a gut-wrenching 12% freefall. Ethereum plunged 16%":
    # https://yellow.com/research/trump-100-china-tariff-how-one-announcement-liquidated-dollar19-billion-in-crypto
    # "Solana collapsed 31%. Most altcoins hit between -70% and -90%" (Coinglass, quoted by
    # https://spectropunk.com/?p=179); XRP "fell to $1.25, a 44% decline":
    # https://www.ainvest.com/news/bitcoin-news-today-leverage-fuelled-19b-crypto-crash-altcoins-undergo-structural-reset-2510
    "2025-10-10": {"BTC": -0.12, "ETH": -0.16, "SOL": -0.31, "XRP": -0.44},
}


def preset(name: str, universe: Universe | None = None) -> dict[str, float]:
    """A historical scenario; with a universe, only the symbols it knows."""
    try:
        moves = dict(PRESETS[name])
    except KeyError:
        raise ConfigError(
            f"preset: {name!r} is not one of {', '.join(PRESETS)}", field="preset"
        ) from None
    if universe is not None:
        known = set(universe.underlyings) | set(universe.asset_index) | set(universe.market_index)
        moves = {k: v for k, v in moves.items() if k in known}
    return moves


def presets(universe: Universe | None = None) -> dict[str, dict[str, float]]:
    """Every historical scenario, for ``Engine.stress(book, presets(u))``."""
    return {name: preset(name, universe) for name in PRESETS}


# ---- scenarios → prices ------------------------------------------------------------------
def _move(value: Any, where: str) -> float:
    v = number(value, where)  # a bool or text is not a move: ConfigTypeError
    if not math.isfinite(v) or v <= -1.0:
        raise ConfigError(f"{where}: {v} must be finite and > -1", field=where)
    return v


def scenario_prices(
    universe: Universe, name: str, moves: Scenario
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(asset prices, marks, vol moves) of one scenario."""
    if not isinstance(moves, Mapping):
        raise ConfigError(f"scenarios[{name}]: expected a mapping of moves", field=name)
    vol: dict[str, float] = {}
    price_moves: dict[str, Any] = {}
    for key, value in moves.items():
        where = f"scenarios[{name}][{key}]"
        if key != "vol":
            price_moves[key] = value
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping underlying → vol move", field=where)
        for und, v in value.items():
            if und not in universe.underlyings:
                raise ConfigError(f"{where}[{und}]: not an underlying", field=where)
            vol[und] = _move(v, f"{where}[{und}]")
    # The one shock rule (crossmargin.prices.shocked), options repriced there.
    assets, marks = shocked(universe, price_moves, f"scenarios[{name}]")
    return assets, marks, vol


def _run(
    engine: _core.Engine,
    universe: Universe,
    view: _core.BookView,
    scenarios: Mapping[str, Scenario],
    keep_matrix: bool,
) -> tuple[list[str], dict[str, np.ndarray], dict[str, dict[str, float]]]:
    u = universe
    if not isinstance(scenarios, Mapping):
        raise ConfigError("scenarios: expected a mapping name → moves", field="scenarios")
    names = [str(n) for n in scenarios]
    resolved = [scenario_prices(u, n, m) for n, m in zip(names, scenarios.values(), strict=True)]
    shape_a, shape_m = (len(names), len(u.assets)), (len(names), len(u.markets))
    a = np.array([r[0] for r in resolved], dtype=np.float64).reshape(shape_a)
    m = np.array([r[1] for r in resolved], dtype=np.float64).reshape(shape_m)
    cols = engine.stress(view, (a, m), keep_matrix=keep_matrix)
    return names, cols, {n: r[2] for n, r in zip(names, resolved, strict=True)}


# ---- results -----------------------------------------------------------------------------
@dataclass(frozen=True)
class StressResult(Tabular):
    """Per-scenario totals (``scenarios``: a Table with columns scenario, liquidatable,
    bankrupt, shortfall, bad_debt, insurance_fund, fund_exhausted) and the accounts ×
    scenarios matrix of adj_equity_maint − mm (``matrix``, float64, rows in ``account``
    order, columns in ``names`` order).

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"scenarios"``;
    ``"matrix"``: the matrix as a Table, column ``account`` then one column per scenario.
    """

    scenarios: Table
    matrix: np.ndarray
    account: np.ndarray
    names: tuple[str, ...]
    insurance_fund: float
    vol_moves: dict[str, dict[str, float]] = field(default_factory=dict)

    _TABLES = ("scenarios",)

    @property
    def tables(self) -> dict[str, Table]:
        return {"scenarios": self.scenarios, "matrix": self.matrix_table()}

    def matrix_table(self) -> Table:
        """The matrix as a Table: ``account``, then one column per scenario."""
        if "account" in self.names:
            raise TableError(
                "matrix: a scenario named 'account' clashes with the account column "
                "(read .matrix and .names instead)",
                column="account",
            )
        return Table(
            {"account": self.account, **{n: self.matrix[:, j] for j, n in enumerate(self.names)}}
        )

    def matrix_frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame indexed by account, one column per scenario (pandas is
        optional)."""
        pandas = require("pandas", "matrix_frame()")
        frame: pd.DataFrame = pandas.DataFrame(
            self.matrix, index=self.account, columns=list(self.names)
        )
        return frame

    def __repr__(self) -> str:
        return f"StressResult(accounts={len(self.account)}, scenarios={list(self.names)})"


def stress(
    engine: _core.Engine,
    universe: Universe,
    book: Book,
    view: _core.BookView,
    scenarios: Mapping[str, Scenario],
    insurance_fund: float = 0.0,
) -> StressResult:
    """Every account under every scenario (see the module docstring), from ``universe``'s
    prices (which ``engine`` holds compiled), ``book`` bound to it as ``view``; the
    implementation of :meth:`crossmargin.Engine.stress`."""
    fund = _fund(insurance_fund)
    if isinstance(scenarios, Mapping):  # the matrix is accounts × scenarios float64
        check_memory(
            8 * book.n_accounts * len(scenarios),
            f"the stress matrix of {book.n_accounts} accounts × {len(scenarios)} scenarios",
        )
    names, cols, vol = _run(engine, universe, view, scenarios, keep_matrix=True)
    n_acc = book.n_accounts
    matrix = cols["margin"].reshape(n_acc, len(names))
    table = Table(
        {
            "scenario": np.array(names or [""], dtype=str)[: len(names)],
            "liquidatable": cols["liquidatable"].astype(np.int64),
            "bankrupt": cols["bankrupt"].astype(np.int64),
            "shortfall": cols["shortfall"],
            "bad_debt": cols["bad_debt"],
            "insurance_fund": np.full(len(names), fund),
            "fund_exhausted": cols["bad_debt"] > fund,
        }
    )
    return StressResult(table, matrix, book.accounts, tuple(names), fund, vol)


def _fund(insurance_fund: float) -> float:
    """USD, a number (not a bool, not text), finite and ≥ 0."""
    return bounded(insurance_fund, "insurance_fund", 0.0)


@dataclass(frozen=True)
class ReverseStressResult(Tabular):
    """The smallest uniform move (signed fraction; NaN when the fund survives every move up
    to ``max_move``) and, per underlying, the smallest move of that underlying alone.

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"per_underlying"``
    (underlying, move, the measure, monotone), the only one.
    """

    _TABLES = ("per_underlying",)

    move: float
    loss: float
    measure: str
    insurance_fund: float
    underlyings: tuple[str, ...]
    per_underlying: Table
    monotone: bool
    tolerance: float

    def __repr__(self) -> str:
        return (
            f"ReverseStressResult(move={self.move:.6g}, {self.measure}={self.loss:.6g}, "
            f"insurance_fund={self.insurance_fund:.6g})"
        )


# The loss measure at each of a list of uniform moves of the listed underlyings.
Losses = Callable[[Sequence[str], np.ndarray], np.ndarray]


def _losses(engine: _core.Engine, universe: Universe, view: _core.BookView, measure: str) -> Losses:
    def losses(underlyings: Sequence[str], moves: np.ndarray) -> np.ndarray:
        scen = {f"{i}": {x: float(mv) for x in underlyings} for i, mv in enumerate(moves)}
        _, cols, _ = _run(engine, universe, view, scen, keep_matrix=False)
        return np.asarray(cols[measure], dtype=np.float64)

    return losses


# log9 of (the largest move / the smallest float spacing) is under 400.
_MAX_PASSES = 400


def _smallest_move(
    loss_at: Losses,
    underlyings: Sequence[str],
    fund: float,
    direction: int,
    max_move: float,
    tol: float,
    grid: int = 20,
) -> tuple[float, float, bool]:
    """(|move|, loss at it, grid monotone) for the listed underlyings moving together."""
    sizes = np.linspace(0.0, max_move, grid + 1)
    losses = loss_at(underlyings, direction * sizes)
    scale = max(float(np.abs(losses).max()), 1.0)
    monotone = bool(np.all(np.diff(losses) >= -1e-12 * scale))
    over = np.nonzero(losses > fund)[0]
    if len(over) == 0:
        return math.nan, float(losses[-1]), monotone
    i = int(over[0])
    if i == 0:
        return 0.0, float(losses[0]), monotone
    lo, hi, loss_hi = float(sizes[i - 1]), float(sizes[i]), float(losses[i])
    # Each pass narrows the bracket about 9×; it ends at `tol` or when no float lies inside
    # the bracket any more (a `tol` below float spacing), and the pass count is bounded.
    for _ in range(_MAX_PASSES):
        if hi - lo <= tol:
            break
        pts = np.linspace(lo, hi, 10)[1:-1]
        pts = np.unique(pts[(pts > lo) & (pts < hi)])
        if not len(pts):
            break
        ls = loss_at(underlyings, direction * pts)
        over = np.nonzero(ls > fund)[0]
        if len(over) == 0:
            lo = float(pts[-1])
        else:
            j = int(over[0])
            hi, loss_hi = float(pts[j]), float(ls[j])
            lo = float(pts[j - 1]) if j > 0 else lo
    return hi, loss_hi, monotone


def reverse_stress(
    engine: _core.Engine,
    universe: Universe,
    view: _core.BookView,
    insurance_fund: float,
    *,
    underlyings: Sequence[str] | None = None,
    direction: int = -1,
    measure: Measure = "bad_debt",
    max_move: float | None = None,
    tol: float = 1e-4,
) -> ReverseStressResult:
    """Smallest move exhausting the insurance fund (see the module docstring), from
    ``universe``'s prices (which ``engine`` holds compiled), the book bound to it as
    ``view``; the implementation of :meth:`crossmargin.Engine.reverse_stress`."""
    fund = _fund(insurance_fund)
    u = universe
    if isinstance(direction, bool | np.bool_) or not isinstance(direction, int | np.integer):
        raise ConfigTypeError(
            f"direction: {show(direction)} must be -1 (down) or 1 (up)", field="direction"
        )
    if direction not in (-1, 1):
        raise ConfigError(
            f"direction: {direction!r} must be -1 (down) or 1 (up)", field="direction"
        )
    text(measure, "measure", MEASURES)
    if underlyings is None:
        names = tuple(u.underlyings)
    else:
        names = tuple(sequence(underlyings, "underlyings", "underlying names"))
    for x in names:
        if x not in u.underlyings:
            raise ConfigError(f"underlyings: {x!r} is not an underlying", field="underlyings")
    if max_move is None:
        limit = 0.99 if direction < 0 else 4.0
    else:  # finite, > 0, and < 1 downward (a fall of 100% or more is no price)
        limit = bounded(
            max_move, "max_move", 0.0, 1.0 if direction < 0 else None, lo_open=True, hi_open=True
        )
    tol = bounded(tol, "tol", 0.0, lo_open=True)
    loss_at = _losses(engine, u, view, measure)
    move, loss, monotone = _smallest_move(loss_at, names, fund, direction, limit, tol)
    rows = [_smallest_move(loss_at, [x], fund, direction, limit, tol) for x in names]
    table = Table(
        {
            "underlying": np.array(list(names) or [""], dtype=str)[: len(names)],
            "move": np.array([direction * r[0] for r in rows], dtype=np.float64),
            measure: np.array([r[1] for r in rows], dtype=np.float64),
            "monotone": np.array([r[2] for r in rows], dtype=bool),
        }
    )
    return ReverseStressResult(direction * move, loss, measure, fund, names, table, monotone, tol)


__all__ = [
    "MEASURES",
    "PRESETS",
    "ReverseStressResult",
    "StressResult",
    "preset",
    "presets",
    "reverse_stress",
    "scenario_prices",
    "stress",
]
