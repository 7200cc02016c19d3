"""Monte Carlo cascades: the full cascade on every path, a conservative screen, and the
distribution of what it costs (docs/MONTECARLO.md).

:func:`run` takes a book, a :class:`~crossmargin.montecarlo.paths.PathSet` and the cascade's
rules (a :class:`~crossmargin.cascade.CascadeConfig` without shock or path) and, per path,

1. **screens** it: the book is evaluated at every step's prices by ``Engine.stress``, all
   paths × steps as scenarios (in chunks of paths), on a copy whose balances and isolated
   margins are rounded to the cascade's 1e-8 minor units, as the cascade holds them, and
   split by what can move the cascade (:func:`screen_books`). A path is skipped only when at
   every step no account has an isolated position below its maintenance, every account
   with an open cross position is above maintenance by more than ``screen_tolerance`` USD,
   and every account without one has non-negative equity — then the cascade's first round
   of every step would find nobody to act on, and a skipped path's result is what the
   cascade gives: no events, no rounds, zero bad debt and fees, the fund untouched (the
   tests run with and without the screen and compare every column; the argument in
   docs/MONTECARLO.md, "The run and the screen"). The same pass gives each path's Cover-1 /
   Cover-2 exposure;
2. runs ``Engine.cascade`` on every path left, in a thread pool (the Rust core releases the
   GIL), checks its ledger (``check_conservation``) and keeps per-path totals. Results are
   gathered in path order, so they are identical for any thread count.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crossmargin._validate import bounded, integer
from crossmargin.book import Book, SymbolColumn
from crossmargin.cascade import CascadeConfig, CascadeResult
from crossmargin.exceptions import ConfigError, ConfigTypeError, TruncatedWarning
from crossmargin.montecarlo import stats
from crossmargin.montecarlo.margin import VolScaledMargin, scale_universe
from crossmargin.montecarlo.paths import PathSet
from crossmargin.prices import resolve
from crossmargin.table import Table

if TYPE_CHECKING:
    import pandas as pd

    from crossmargin.engine import Engine
    from crossmargin.prices import PriceOverrides

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stage is ``"screen"`` or ``"cascade"``."""

# Accounts × scenarios float64 entries per stress call of the screen (256 MB).
SCREEN_BUDGET = 32_000_000
NO_MARKET = ""
METRICS = (
    "bad_debt_usd",
    "fund_draw_usd",
    "uncovered_bad_debt_usd",
    "liquidated_notional_usd",
    "fees_usd",
    "accounts_liquidated",
    "rounds",
    "cover1_usd",
    "cover2_usd",
)


# ---- the screen --------------------------------------------------------------------------
def minor_unit_book(book: Book) -> Book:
    """The book as the cascade holds it: each (account, asset) balance merged to its exact
    sum and rounded half to even to 1e-8 of the asset; isolated margins likewise (a positive
    margin that rounds to 0 stays isolated, as in the cascade's state)."""
    b, p = book.balances, book.positions
    acc, codes, qty = b["account"], b["asset"].codes, b["qty"]
    if len(qty):
        order = np.lexsort((codes, acc))
        a_s, c_s, q_s = acc[order], codes[order], qty[order]
        first = np.ones(len(a_s), dtype=bool)
        first[1:] = (a_s[1:] != a_s[:-1]) | (c_s[1:] != c_s[:-1])
        starts = np.flatnonzero(first)
        merged = q_s[starts].astype(np.float64)
        dup = np.flatnonzero(np.diff(np.append(starts, len(a_s))) > 1)
        for g in dup:  # exact sums of duplicate rows (rare)
            lo = starts[g]
            hi = starts[g + 1] if g + 1 < len(starts) else len(a_s)
            merged[g] = math.fsum(q_s[lo:hi].tolist())
        balances = {
            "account": a_s[starts],
            "asset": SymbolColumn(c_s[starts], b["asset"].labels),
            "qty": np.round(merged * 1e8) / 1e8,
        }
    else:
        balances = dict(b)
    iso = p["isolated_margin"]
    rounded = np.round(iso * 1e8) / 1e8
    rounded = np.where((iso > 0) & (rounded <= 0), np.finfo(np.float64).tiny, rounded)
    positions = {**p, "isolated_margin": rounded}
    return Book(balances, positions)


@dataclass
class _Screen:
    clear: np.ndarray
    max_liquidatable: np.ndarray
    cover1: np.ndarray
    cover2: np.ndarray
    cover1_group: np.ndarray


def _groups(
    book: Book, groups: Mapping[int, Any] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(account order sorted by group, group starts, group labels) or None (one account, one
    group)."""
    if groups is None:
        return None
    if not isinstance(groups, Mapping):
        raise ConfigTypeError(
            f"groups: expected a mapping account → group, got {type(groups).__name__}",
            field="groups",
        )
    accounts = book.accounts
    labels = np.array(
        [str(groups.get(int(a), f"account:{int(a)}")) for a in accounts], dtype=object
    )
    uniq, inverse = np.unique(labels.astype(str), return_inverse=True)
    perm = np.argsort(inverse, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inverse[perm]) != 0])
    return perm, starts, uniq


@dataclass(frozen=True)
class ScreenBooks:
    """The screen's books, from the minor-unit book (:func:`screen_books`): ``main`` holds
    every position and the balances of the accounts with an open cross position; ``pools``
    the balances of the others (no open cross position: the cascade acts on them only for an
    isolated position below its maintenance — counted in ``main`` — or a negative cross
    equity, whose sign ``pools`` gives); ``cross`` flags ``main``'s accounts with an open
    cross position, in its row order; ``accounts`` every account (the book's order)."""

    main: Book
    pools: Book | None
    cross: np.ndarray
    accounts: np.ndarray


def _rows(table: Mapping[str, Any], keep: np.ndarray, column: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        out[k] = SymbolColumn(v.codes[keep], v.labels) if k == column else v[keep]
    return out


def screen_books(book: Book) -> ScreenBooks:
    """Splits the minor-unit copy of ``book`` for the screen (see :class:`ScreenBooks`)."""
    sbook = minor_unit_book(book)
    b, p = sbook.balances, sbook.positions
    open_cross = (p["isolated_margin"] <= 0) & (p["qty"] != 0)
    cross_accounts = np.unique(p["account"][open_cross])
    in_cross = np.isin(b["account"], cross_accounts)
    if in_cross.all():
        main, pools = sbook, None
    else:
        main = Book(_rows(b, in_cross, "asset"), p)
        pools = Book(
            _rows(b, ~in_cross, "asset"), _rows(p, np.zeros(len(p["qty"]), bool), "market")
        )
    return ScreenBooks(main, pools, np.isin(main.accounts, cross_accounts), sbook.accounts)


def _screen(
    engine: Engine,
    books: ScreenBooks,
    paths: PathSet,
    which: np.ndarray,
    prices: PriceOverrides,
    grouping: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    tolerance: float,
    progress: Progress | None,
    done: list[int],
    total: int,
) -> _Screen:
    """Per path of ``which``: clear (module docstring), the most accounts needing action at
    one step, Cover-1/2 and the Cover-1 group."""
    n_acc, s = len(books.accounts), paths.n_steps
    per_chunk = max(1, SCREEN_BUDGET // max(1, n_acc * s))
    out = _Screen(
        clear=np.zeros(len(which), dtype=bool),
        max_liquidatable=np.zeros(len(which), dtype=np.int64),
        cover1=np.zeros(len(which)),
        cover2=np.zeros(len(which)),
        cover1_group=np.full(len(which), "", dtype=object),
    )
    unds = paths.underlyings
    labels = grouping[2] if grouping is not None else books.accounts.astype(str).astype(object)
    main_rows = np.searchsorted(books.accounts, books.main.accounts)
    pool_rows = (
        np.searchsorted(books.accounts, books.pools.accounts) if books.pools is not None else None
    )
    for c0 in range(0, len(which), per_chunk):
        chunk = which[c0 : c0 + per_chunk]
        n_sc = len(chunk) * s
        scen = {
            f"{int(p)}.{t}": dict(zip(unds, map(float, paths.moves[p, t]), strict=True))
            for p in chunk
            for t in range(s)
        }
        sl = slice(c0, c0 + len(chunk))
        short = np.zeros((n_acc, n_sc))
        st = engine.stress(books.main, scen, prices=prices)
        need = np.asarray(st.scenarios.liquidatable, dtype=np.int64)
        gap = st.matrix
        ok = need == 0
        if books.cross.any():
            ok &= gap[books.cross].min(axis=0) > tolerance
        short[main_rows] += np.maximum(-gap, 0.0)
        if books.pools is not None and pool_rows is not None:
            sp = engine.stress(books.pools, scen, prices=prices)
            bankrupt = np.asarray(sp.scenarios.bankrupt, dtype=np.int64)
            need = need + bankrupt
            ok &= bankrupt == 0
            short[pool_rows] += np.maximum(-sp.matrix, 0.0)
        out.max_liquidatable[sl] = need.reshape(len(chunk), s).max(axis=1)
        out.clear[sl] = ok.reshape(len(chunk), s).all(axis=1)
        if n_acc:
            if grouping is not None:
                short = np.add.reduceat(short[grouping[0]], grouping[1], axis=0)
            worst = short.reshape(short.shape[0], len(chunk), s).max(axis=2)  # groups × paths
            top = np.argmax(worst, axis=0)
            c1 = worst[top, np.arange(len(chunk))]
            if worst.shape[0] > 1:
                c2 = (-np.partition(-worst, 1, axis=0)[:2]).sum(axis=0)
            else:
                c2 = c1
            out.cover1[sl], out.cover2[sl] = c1, c2
            out.cover1_group[sl] = np.where(c1 > 0, labels[top], "")
        done[0] += len(chunk)
        if progress is not None:
            progress("screen", done[0], total)
    return out


def screen(
    engine: Engine,
    book: Book,
    paths: PathSet,
    *,
    prices: PriceOverrides = None,
    groups: Mapping[int, Any] | None = None,
    screen_tolerance: float = 1e-6,
) -> Table:
    """The screen alone (no cascade): per path, ``clear`` (the cascade would do nothing on
    it), ``max_liquidatable`` (the most accounts needing action at one step), Cover-1/2."""
    from crossmargin.engine import Engine as EngineClass

    if not isinstance(engine, EngineClass):
        raise ConfigTypeError(
            f"engine: expected crossmargin.Engine, got {type(engine).__name__}", field="engine"
        )
    _check_inputs(engine, book, paths, CascadeConfig())
    tol = bounded(screen_tolerance, "screen_tolerance", 0.0)
    which = np.arange(len(paths))
    sc = _screen(
        engine,
        screen_books(book),
        paths,
        which,
        prices,
        _groups(book, groups),
        tol,
        None,
        [0],
        len(paths),
    )
    return Table(
        {
            "path": paths.path_ids.astype(np.int64),
            "clear": sc.clear,
            "max_liquidatable": sc.max_liquidatable,
            "cover1_usd": sc.cover1,
            "cover2_usd": sc.cover2,
            "cover1_group": sc.cover1_group.astype(str).astype(object),
        }
    )


# ---- one path ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PathOutcome:
    """What is kept of one path's cascade."""

    bad_debt: float = 0.0
    fees: float = 0.0
    fund_draw: float = 0.0
    fund_end: float = math.nan
    uncovered: float = 0.0
    liquidated_notional: float = 0.0
    accounts_liquidated: int = 0
    rounds: int = 0
    events: int = 0
    deleveraged: int = 0
    truncated: bool = False
    market_bad_debt: np.ndarray | None = None


def fund_draw(rounds: Table) -> float:
    """The largest net outflow from the fund over the cascade: max over rounds of the
    cumulative (bad debt − fees), at least 0 — the smallest fund that never goes negative
    on this trajectory."""
    if not len(rounds):
        return 0.0
    net = np.cumsum(np.asarray(rounds.bad_debt_usd) - np.asarray(rounds.fees_usd))
    return max(float(net.max()), 0.0)


def market_bad_debt(events: Table, markets: Sequence[str]) -> np.ndarray:
    """Bad debt per market (``markets`` then ``""`` for none): an isolated bankruptcy in its
    market; an account's pool bankruptcy split over the markets it closed in that round
    pro rata to closed notional (as the cascade attributes it for deleveraging), or to
    ``""`` when it closed nothing."""
    out = np.zeros(len(markets) + 1)
    if not len(events):
        return out
    index = {m: i for i, m in enumerate(markets)}
    kind = np.asarray(events.kind)
    bk = np.flatnonzero((kind == "bankruptcy") & (np.asarray(events.bad_debt_usd) > 0))
    if not len(bk):
        return out
    fills = np.isin(kind, ["liquidation", "isolated"])
    acc, rnd = np.asarray(events.account), np.asarray(events["round"])
    mkt, notional = np.asarray(events.market), np.asarray(events.notional_usd)
    debt = np.asarray(events.bad_debt_usd)
    for i in bk:
        if mkt[i] != NO_MARKET:
            out[index[mkt[i]]] += debt[i]
            continue
        sel = fills & (acc == acc[i]) & (rnd == rnd[i])
        total = float(notional[sel].sum())
        if total <= 0:
            out[-1] += debt[i]
            continue
        for m, x in zip(mkt[sel], notional[sel], strict=True):
            out[index[m]] += debt[i] * float(x) / total
    return out


def _outcome(r: CascadeResult, markets: Sequence[str], check: bool) -> PathOutcome:
    if check:
        r.check_conservation()
    ev = r.events
    kind = np.asarray(ev.kind)
    fills = np.isin(kind, ["liquidation", "isolated"])
    return PathOutcome(
        bad_debt=float(r.bad_debt),
        fees=float(r.fees),
        fund_draw=fund_draw(r.rounds),
        fund_end=float(r.insurance_fund),
        uncovered=float(r.uncovered_bad_debt),
        liquidated_notional=float(np.asarray(r.rounds.liquidated_notional_usd).sum())
        if len(r.rounds)
        else 0.0,
        accounts_liquidated=len(np.unique(np.asarray(ev.account)[fills])),
        rounds=len(r.rounds),
        events=len(ev),
        deleveraged=int(np.isin(kind, ["adl", "socialized_loss"]).sum()),
        truncated=bool(r.truncated),
        market_bad_debt=market_bad_debt(ev, markets),
    )


# ---- the result --------------------------------------------------------------------------
@dataclass(frozen=True)
class MonteCarloResult:
    """Per-path outcomes of a Monte Carlo cascade run and the estimators over them.

    ``paths``: one row per path (columns: path, skipped, max_liquidatable, bad_debt_usd,
    fees_usd, fund_draw_usd, fund_exhausted, insurance_fund_usd (at the end),
    uncovered_bad_debt_usd, liquidated_notional_usd, accounts_liquidated, rounds, events,
    deleverage_events, truncated, cover1_usd, cover2_usd, cover1_group, margin_multiplier).
    ``market_bad_debt``: paths × (markets + [""]) bad debt by market (:func:`market_bad_debt`).
    ``insurance_fund``: the fund at the start, USD."""

    paths: Table
    market_bad_debt: np.ndarray
    markets: tuple[str, ...]
    insurance_fund: float
    config: CascadeConfig
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def _metric(self, metric: str) -> np.ndarray:
        if metric not in self.paths or metric in ("path", "cover1_group"):
            raise ConfigError(
                f"metric: {metric!r} is not one of {', '.join(METRICS)}", field="metric"
            )
        return np.asarray(self.paths[metric], dtype=np.float64)

    # ---- estimators --------------------------------------------------------------------
    def var(
        self, level: float = 0.99, metric: str = "bad_debt_usd", confidence: float = 0.95
    ) -> stats.Estimate:
        """VaR of ``metric`` at ``level`` with its order-statistic CI (stats.var)."""
        return stats.var(
            self._metric(metric), level, confidence, what=f"VaR({metric})", stacklevel=3
        )

    def es(
        self,
        level: float = 0.99,
        metric: str = "bad_debt_usd",
        confidence: float = 0.95,
        method: Literal["asymptotic", "bootstrap"] = "asymptotic",
    ) -> stats.Estimate:
        """Expected shortfall of ``metric`` at ``level`` with its CI (stats.es)."""
        return stats.es(
            self._metric(metric),
            level,
            confidence,
            method=method,
            what=f"ES({metric})",
            stacklevel=3,
        )

    def exhaustion_probability(
        self, fund: float | None = None, confidence: float = 0.95
    ) -> stats.Estimate:
        """P(fund draw > ``fund``) (default: the run's fund) with a Wilson interval. Exact for
        any fund ≤ the run's, and for any fund when the run used ``deleverage="none"`` (the
        trajectory up to the fund's exhaustion does not depend on its size)."""
        f = self.insurance_fund if fund is None else bounded(fund, "fund", 0.0)
        return stats.exceedance(self._metric("fund_draw_usd"), f, confidence)

    def fund_size(self, target: float = 0.01, confidence: float = 0.95) -> stats.Estimate:
        """The smallest fund F with P̂(fund draw > F) ≤ ``target``: the empirical
        (1 − target)-quantile of the fund draw, with its order-statistic CI."""
        t = bounded(target, "target", 0.0, 1.0, lo_open=True, hi_open=True)
        return stats.var(
            self._metric("fund_draw_usd"), 1.0 - t, confidence, what="fund size", stacklevel=3
        )

    def cover(self, n: int = 1, level: float = 0.99, confidence: float = 0.95) -> stats.Estimate:
        """Cover-``n`` (1 or 2): the ``level``-quantile over paths of the loss left by the
        default of the n accounts (or groups) with the largest stress shortfall on each path
        (docs/MONTECARLO.md, "Cover-1 and Cover-2")."""
        if n not in (1, 2):
            raise ConfigError(f"n: {n!r} must be 1 or 2", field="n")
        return stats.var(
            self._metric(f"cover{n}_usd"), level, confidence, what=f"Cover-{n}", stacklevel=3
        )

    def tail_paths(self, level: float = 0.99, metric: str = "bad_debt_usd") -> np.ndarray:
        """Row indices of the paths at or beyond the ``level``-VaR of ``metric`` (and > 0)."""
        x = self._metric(metric)
        q = float(np.sort(x)[stats.quantile_rank(len(x), level) - 1])
        return np.flatnonzero((x >= q) & (x > 0))

    def tail_attribution(self, level: float = 0.99, metric: str = "bad_debt_usd") -> Table:
        """Bad debt by market summed over the tail paths (:meth:`tail_paths`), with each
        market's share; market ``""`` is bad debt no market closed (a borrow-only account)."""
        rows = self.tail_paths(level, metric)
        debt = (
            self.market_bad_debt[rows].sum(axis=0) if len(rows) else np.zeros(len(self.markets) + 1)
        )
        total = float(debt.sum())
        return Table(
            {
                "market": np.array([*self.markets, NO_MARKET], dtype=object),
                "bad_debt_usd": debt,
                "share": debt / total if total > 0 else np.zeros_like(debt),
                "tail_paths": np.full(len(debt), len(rows), dtype=np.int64),
            }
        )

    def exceedance_curve(self, metric: str = "bad_debt_usd", points: int = 200) -> Table:
        """P̂(metric > threshold) at up to ``points`` thresholds (for plots)."""
        t, p = stats.exceedance_curve(self._metric(metric), points)
        return Table({"threshold": t, "probability": p})

    def fund_size_curve(
        self,
        targets: Sequence[float] = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001),
        confidence: float = 0.95,
    ) -> Table:
        """The fund size (with CI) for each target exhaustion probability. Targets with fewer
        than 10 tail paths are reported with a TailWarning."""
        rows = [self.fund_size(t, confidence) for t in targets]
        return Table(
            {
                "target": np.array(targets, dtype=np.float64),
                "fund_usd": np.array([r.value for r in rows]),
                "lower": np.array([r.lower for r in rows]),
                "upper": np.array([r.upper for r in rows]),
                "tail_paths": np.array([r.tail for r in rows]),
            }
        )

    def risk_table(
        self,
        levels: Sequence[float] = (0.99, 0.999),
        metric: str = "bad_debt_usd",
        confidence: float = 0.95,
    ) -> Table:
        """VaR and ES of ``metric`` at each level, with CIs."""
        rows: list[tuple[str, float, stats.Estimate]] = []
        for lv in levels:
            rows.append(("VaR", lv, self.var(lv, metric, confidence)))
            rows.append(("ES", lv, self.es(lv, metric, confidence)))
        return Table(
            {
                "measure": np.array([r[0] for r in rows], dtype=object),
                "level": np.array([r[1] for r in rows]),
                "value": np.array([r[2].value for r in rows]),
                "lower": np.array([r[2].lower for r in rows]),
                "upper": np.array([r[2].upper for r in rows]),
                "tail_paths": np.array([r[2].tail for r in rows]),
            }
        )

    def summary(
        self, levels: Sequence[float] = (0.99, 0.999), confidence: float = 0.95
    ) -> dict[str, Any]:
        """Headline numbers (JSON-able). Quantiles the path count cannot support warn
        (TailWarning) and are still reported."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", stats.TailWarning)
            out = self._summary(levels, confidence)
        thin = sorted({lv for lv in levels if len(self) * (1.0 - lv) < stats.MIN_TAIL})
        for w in caught:
            if not issubclass(w.category, stats.TailWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if thin:
            warnings.warn(
                stats.TailWarning(
                    f"summary: {len(self)} paths leave fewer than {stats.MIN_TAIL} tail "
                    f"observations at level(s) {', '.join(f'{x:g}' for x in thin)}; VaR, ES, "
                    "fund size and Cover there are unreliable (simulate at least "
                    f"{math.ceil(stats.MIN_TAIL / (1.0 - max(thin)))} paths)"
                ),
                stacklevel=2,
            )
        return out

    def _summary(self, levels: Sequence[float], confidence: float) -> dict[str, Any]:
        x = self._metric("bad_debt_usd")
        ex = self.exhaustion_probability(confidence=confidence)
        out: dict[str, Any] = {
            "paths": len(self),
            "paths_skipped_by_screen": int(np.asarray(self.paths.skipped).sum()),
            "paths_with_liquidations": int((np.asarray(self.paths.accounts_liquidated) > 0).sum()),
            "paths_with_bad_debt": int((x > 0).sum()),
            "paths_truncated": int(np.asarray(self.paths.truncated).sum()),
            "insurance_fund_usd": self.insurance_fund,
            "mean_bad_debt_usd": float(x.mean()),
            "mean_liquidated_notional_usd": float(self._metric("liquidated_notional_usd").mean()),
            "p_fund_exhausted": ex.value,
            "p_fund_exhausted_ci": [ex.lower, ex.upper],
        }
        for lv in levels:
            tag = f"{lv * 100:g}".replace(".", "_")
            v, e = self.var(lv, confidence=confidence), self.es(lv, confidence=confidence)
            out[f"var_{tag}_usd"] = v.value
            out[f"var_{tag}_ci"] = [v.lower, v.upper]
            out[f"es_{tag}_usd"] = e.value
            out[f"es_{tag}_ci"] = [e.lower, e.upper]
            f = self.fund_size(1.0 - lv, confidence)
            out[f"fund_size_{tag}_usd"] = f.value
            out[f"fund_size_{tag}_ci"] = [f.lower, f.upper]
            for n in (1, 2):
                c = self.cover(n, lv, confidence)
                out[f"cover{n}_{tag}_usd"] = c.value
        out["confidence"] = confidence
        out.update({k: v for k, v in self.meta.items() if k in ("seconds", "threads", "screen")})
        return out

    def to_pandas(self) -> pd.DataFrame:
        """The per-path table."""
        return self.paths.to_pandas()

    def __repr__(self) -> str:
        return (
            f"MonteCarloResult(paths={len(self)}, "
            f"skipped={int(np.asarray(self.paths.skipped).sum())}, "
            f"mean_bad_debt_usd={float(np.asarray(self.paths.bad_debt_usd).mean()):.6g})"
        )


# ---- the run -----------------------------------------------------------------------------
def _fund_usd(engine: Engine, config: CascadeConfig, prices: PriceOverrides) -> float:
    fund = config.insurance_fund
    if not isinstance(fund, Mapping):
        return float(fund)
    u = engine.universe
    asset_prices, _ = resolve(u, prices)
    total = 0.0
    for sym, qty in fund.items():
        if sym not in u.asset_index:
            f = f"cascade.insurance_fund[{sym}]"
            raise ConfigError(f"{f}: unknown asset", field=f)
        total += float(qty) * float(asset_prices[u.asset_index[sym]])
    return total


def _check_inputs(engine: Engine, book: Book, paths: PathSet, config: CascadeConfig) -> None:
    from crossmargin.engine import Engine as EngineClass

    if not isinstance(engine, EngineClass):
        raise ConfigTypeError(
            f"engine: expected crossmargin.Engine, got {type(engine).__name__}", field="engine"
        )
    if not isinstance(book, Book):
        raise ConfigTypeError(
            f"book: expected crossmargin.Book, got {type(book).__name__}", field="book"
        )
    if not isinstance(paths, PathSet):
        raise ConfigTypeError(
            f"paths: expected a PathSet (montecarlo.simulate, PathSet.load), got "
            f"{type(paths).__name__}",
            field="paths",
        )
    if not isinstance(config, CascadeConfig):
        raise ConfigTypeError(
            f"config: expected CascadeConfig, got {type(config).__name__}", field="config"
        )
    if config.shock is not None or config.path is not None:
        raise ConfigError(
            "config: leave shock and path unset; the paths come from the PathSet",
            field="cascade.path",
        )
    u = engine.universe
    known = set(u.underlyings) | set(u.asset_index) | set(u.market_index)
    for j, name in enumerate(paths.underlyings):
        if name not in known:
            f = f"paths.underlyings[{j}]"
            raise ConfigError(
                f"{f}: {name!r} is not an underlying, asset or market of the universe", field=f
            )


def run(
    engine: Engine,
    book: Book,
    paths: PathSet,
    config: CascadeConfig | None = None,
    *,
    screen: bool = True,
    threads: int | None = None,
    prices: PriceOverrides = None,
    groups: Mapping[int, Any] | None = None,
    margin: VolScaledMargin | None = None,
    screen_tolerance: float = 1e-6,
    check: bool = True,
    progress: Progress | None = None,
    client: Any = None,
    paths_per_task: int | None = None,
) -> MonteCarloResult:
    """The cascade of ``config`` on ``book`` along every path of ``paths`` (module docstring).

    ``threads``: paths run at once (default: the engine's thread count); ``prices``: today's
    prices (the same overrides as ``Engine.evaluate``), from which the moves apply;
    ``groups``: account → group label (affiliates) for Cover-1/2; ``margin``: a
    :class:`VolScaledMargin` rule; ``check``: verify each cascade's ledger.

    ``client``: a Dask ``distributed.Client``: the screen runs here, the paths' cascades run
    on the cluster as tasks of ``paths_per_task`` paths (default: the kept paths spread over
    four tasks per worker), each worker rebuilding the universe and the book once. Each path's
    cascade is the same computation wherever it runs, so the result is the local run's, bit
    for bit, for any cluster and any split (docs/MONTECARLO.md "On Dask")."""
    config = CascadeConfig() if config is None else config
    _check_inputs(engine, book, paths, config)
    if not isinstance(screen, bool):
        raise ConfigTypeError(f"screen: {screen!r} must be true or false", field="screen")
    if margin is not None and not isinstance(margin, VolScaledMargin):
        raise ConfigTypeError(
            f"margin: expected VolScaledMargin, got {type(margin).__name__}", field="margin"
        )
    workers = engine.threads if threads is None else integer(threads, "threads", 1, 1024)
    tolerance = bounded(screen_tolerance, "screen_tolerance", 0.0)
    if paths_per_task is not None:
        paths_per_task = integer(paths_per_task, "paths_per_task", 1, 2**31)
        if client is None:
            raise ConfigError("paths_per_task: only with client=", field="paths_per_task")
    t0 = time.perf_counter()
    n, s = len(paths), paths.n_steps
    fund0 = _fund_usd(engine, config, prices)
    grouping = _groups(book, groups)
    sbook = screen_books(book)

    # Engines per margin multiplier (one for all paths without a margin rule).
    if margin is None:
        keys = np.zeros((n, 0))
        multiplier = np.ones(n)
    else:
        keys = margin.multipliers(paths)
        multiplier = keys.max(axis=1) if keys.shape[1] else np.ones(n)
    engines: dict[tuple[float, ...], Engine] = {}
    path_key: list[tuple[float, ...]] = [tuple(float(x) for x in keys[p]) for p in range(n)]
    from crossmargin.engine import Engine as EngineClass

    for key in dict.fromkeys(path_key):
        if not key or all(k == 1.0 for k in key):
            engines[key] = engine
        else:
            factors = dict(zip(paths.underlyings, key, strict=True))
            engines[key] = EngineClass(
                scale_universe(engine.universe, factors), threads=engine.threads
            )

    # 1. The screen (and Cover-1/2), one stress pass per engine over its paths.
    sc = _Screen(
        clear=np.zeros(n, dtype=bool),
        max_liquidatable=np.zeros(n, dtype=np.int64),
        cover1=np.zeros(n),
        cover2=np.zeros(n),
        cover1_group=np.full(n, "", dtype=object),
    )
    done = [0]
    for key, eng in engines.items():
        which = np.array([p for p in range(n) if path_key[p] == key], dtype=np.int64)
        part = _screen(eng, sbook, paths, which, prices, grouping, tolerance, progress, done, n)
        sc.clear[which] = part.clear
        sc.max_liquidatable[which] = part.max_liquidatable
        sc.cover1[which], sc.cover2[which] = part.cover1, part.cover2
        sc.cover1_group[which] = part.cover1_group
    t_screen = time.perf_counter() - t0
    skipped = sc.clear if screen else np.zeros(n, dtype=bool)
    todo = np.flatnonzero(~skipped)

    # 2. The cascades, in a thread pool, gathered in path order.
    markets = tuple(m.symbol for m in engine.universe.markets)
    outcomes: list[PathOutcome | None] = [None] * n
    counter = [0]

    def one(p: int) -> PathOutcome:
        cfg = replace(config, path=paths.path(int(p)))
        r = engines[path_key[p]].cascade(book, cfg, prices=prices)
        return _outcome(r, markets, check)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        if client is not None:
            for p, out in _on_dask(
                client, engines, path_key, book, config, paths, todo, prices, check, paths_per_task
            ):
                outcomes[p] = out
                counter[0] += 1
                if progress is not None:
                    progress("cascade", counter[0], len(todo))
        elif workers == 1 or len(todo) <= 1:
            for p in todo:
                outcomes[p] = one(int(p))
                counter[0] += 1
                if progress is not None:
                    progress("cascade", counter[0], len(todo))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for p, out in zip(todo, pool.map(one, todo), strict=True):
                    outcomes[p] = out
                    counter[0] += 1
                    if progress is not None:
                        progress("cascade", counter[0], len(todo))
    empty = PathOutcome(fund_end=fund0, market_bad_debt=np.zeros(len(markets) + 1))
    res = [o if o is not None else empty for o in outcomes]
    draw = np.array([o.fund_draw for o in res])
    table = Table(
        {
            "path": paths.path_ids.astype(np.int64),
            "skipped": skipped,
            "max_liquidatable": sc.max_liquidatable,
            "bad_debt_usd": np.array([o.bad_debt for o in res]),
            "fees_usd": np.array([o.fees for o in res]),
            "fund_draw_usd": draw,
            "fund_exhausted": draw > fund0,
            "insurance_fund_usd": np.array([o.fund_end for o in res]),
            "uncovered_bad_debt_usd": np.array([o.uncovered for o in res]),
            "liquidated_notional_usd": np.array([o.liquidated_notional for o in res]),
            "accounts_liquidated": np.array([o.accounts_liquidated for o in res], dtype=np.int64),
            "rounds": np.array([o.rounds for o in res], dtype=np.int64),
            "events": np.array([o.events for o in res], dtype=np.int64),
            "deleverage_events": np.array([o.deleveraged for o in res], dtype=np.int64),
            "truncated": np.array([o.truncated for o in res], dtype=bool),
            "cover1_usd": sc.cover1,
            "cover2_usd": sc.cover2,
            "cover1_group": sc.cover1_group.astype(str).astype(object),
            "margin_multiplier": multiplier,
        }
    )
    n_trunc = int(np.asarray(table.truncated).sum())
    if n_trunc:
        warnings.warn(
            TruncatedWarning(
                f"montecarlo: max_rounds cut a step short on {n_trunc} of {n} paths; their bad "
                "debt and liquidations are understated (raise max_rounds)"
            ),
            stacklevel=2,
        )
    mbd = (
        np.vstack([np.asarray(o.market_bad_debt) for o in res])
        if n
        else np.zeros((0, len(markets) + 1))
    )
    meta = {
        "seconds": time.perf_counter() - t0,
        "screen_seconds": t_screen,
        "threads": workers,
        "screen": {
            "enabled": screen,
            "skipped": int(skipped.sum()),
            "skip_rate": float(skipped.mean()) if n else 0.0,
        },
        "paths": paths.meta,
        "margin": margin.describe() if margin is not None else None,
        "steps": s,
        "accounts": book.n_accounts,
    }
    return MonteCarloResult(table, mbd, markets, fund0, config, meta)


# ---- on Dask -------------------------------------------------------------------------------
def _paths_task(
    spec: Any,
    balances: Any,
    positions: Any,
    jobs: list[tuple[int, CascadeConfig]],
    prices: PriceOverrides,
    check: bool,
) -> list[tuple[int, PathOutcome]]:
    """On a worker: the cascades of ``jobs`` ((path, config) pairs) on the book rebuilt from
    its columns, with the universe of ``spec`` (cached per worker)."""
    from crossmargin.engine import Engine as EngineClass

    u = spec.build()
    engine = EngineClass(u, threads=1)
    # Fresh aligned copies: buffers arriving over the wire may be misaligned.
    book = Book.from_arrays(
        {c: np.array(v, copy=True) for c, v in balances.items()},
        {c: np.array(v, copy=True) for c, v in positions.items()},
    )
    markets = tuple(m.symbol for m in u.markets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        return [
            (p, _outcome(engine.cascade(book, cfg, prices=prices), markets, check))
            for p, cfg in jobs
        ]


def _on_dask(
    client: Any,
    engines: Mapping[tuple[float, ...], Engine],
    path_key: Sequence[tuple[float, ...]],
    book: Book,
    config: CascadeConfig,
    paths: PathSet,
    todo: np.ndarray,
    prices: PriceOverrides,
    check: bool,
    per_task: int | None,
) -> Any:
    """Yields (path, outcome) for the paths of ``todo`` as the cluster's tasks finish."""
    from distributed import as_completed

    from crossmargin.distributed import UniverseSpec

    if not hasattr(client, "submit") or not hasattr(client, "scatter"):
        raise ConfigTypeError(
            f"client: expected a distributed.Client, got {type(client).__name__}", field="client"
        )
    u0 = next(iter(engines.values())).universe
    bal, pos = ({c: df[c].to_numpy() for c in df.columns} for df in book.to_pandas(u0))
    bal_f, pos_f = client.scatter([bal, pos], broadcast=True)
    specs = {
        k: client.scatter(UniverseSpec.of(e.universe), broadcast=True) for k, e in engines.items()
    }
    n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
    size = per_task or max(1, math.ceil(len(todo) / (4 * n_workers)))
    futures = []
    for key in specs:
        mine = [int(p) for p in todo if path_key[p] == key]
        for i in range(0, len(mine), size):
            jobs = [(p, replace(config, path=paths.path(p))) for p in mine[i : i + size]]
            futures.append(
                client.submit(
                    _paths_task, specs[key], bal_f, pos_f, jobs, prices, check, pure=False
                )
            )
    for f in as_completed(futures):
        yield from f.result()


__all__ = [
    "METRICS",
    "MonteCarloResult",
    "PathOutcome",
    "fund_draw",
    "market_bad_debt",
    "minor_unit_book",
    "run",
    "screen",
    "screen_books",
]
