"""``crossmargin.bench.compare``: a user's own engine (per-account or vectorised) against
crossmargin on the same accounts, like for like. The benchmark runner that writes the
README's tables lives beside the benchmarks in a checkout (``python -m benches.run``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import crossmargin as cm
from crossmargin.exceptions import (
    BookError,
    ConfigError,
    InternalError,
    TableError,
    TableTypeError,
)
from crossmargin.result import MARGIN_COLUMNS
from crossmargin.table import Tabular


def best_time(fn: Callable[[], Any], repeat: int = 5, min_sample: float = 0.02) -> float:
    """Seconds per call: the minimum over ``repeat`` samples, each looping the call enough
    times to last ``min_sample`` (after one warm-up call that also calibrates)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    number = max(1, int(min_sample / once) + 1) if once < min_sample else 1
    best = once
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


# ---- compare: a user's own engine against crossmargin -----------------------------------
@dataclass(frozen=True)
class AccountView:
    """One account as plain Python, the way a hand-written engine sees it."""

    account: int
    balances: list[tuple[str, float]]
    positions: list[tuple[str, float, float, float]]  # market, qty, entry_price, isolated_margin


@dataclass(frozen=True)
class Comparison(Tabular):
    """What :func:`compare` found. Both rates are measured on the same ``accounts`` accounts
    (nothing is extrapolated); ``speedup`` = ``our_accounts_per_second`` /
    ``their_accounts_per_second``.

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"disagreements"``
    (account, field, theirs, ours, rel_error), the only one.
    """

    _TABLES = ("disagreements",)

    accounts: int
    their_accounts_per_second: float
    our_accounts_per_second: float
    speedup: float
    max_rel_error: dict[str, float]
    disagreements: cm.Table
    mode: str = "per-account"  # or "vectorised"
    book_accounts: int = 0  # accounts in the whole book (``accounts`` is the timed sample)
    their_seconds: float = 0.0  # one pass of yours over the accounts (best of ``repeat``)
    our_seconds: float = 0.0  # one pass of crossmargin over the same accounts
    threads: int = 1  # crossmargin's threads
    repeat: int = 1
    ignored_fields: tuple[str, ...] = ()  # keys you returned that are not result fields

    def __str__(self) -> str:
        sample = (
            f"a random sample of {self.accounts:,} of the book's {self.book_accounts:,} accounts"
            if self.book_accounts > self.accounts
            else f"all {self.accounts:,} accounts of the book"
        )
        if self.mode == "vectorised":
            yours = "your vectorised engine on these accounts' tables"
            ours = "Book.from_arrays + Engine.evaluate on the same tables (grouping included)"
        else:
            yours = "your function, one call per account (AccountView prepared beforehand)"
            ours = "Engine.evaluate on a book of the same accounts (grouped beforehand)"
        ratio = (
            f"crossmargin is {self.speedup:,.1f}× faster"
            if self.speedup >= 1
            else f"crossmargin is {1 / self.speedup:,.1f}× slower"
            if self.speedup > 0
            else "no ratio"
        )
        lines = [
            f"timed on the same accounts: {sample}, best of {self.repeat}",
            f"  yours:       {self.their_accounts_per_second:>14,.0f} accounts/s "
            f"({self.their_seconds * 1e3:,.3f} ms) — {yours}",
            f"  crossmargin: {self.our_accounts_per_second:>14,.0f} accounts/s "
            f"({self.our_seconds * 1e3:,.3f} ms, {self.threads} thread(s)) — {ours}",
            f"  {ratio} on these accounts",
            "max relative difference: "
            + (", ".join(f"{k} {v:.2e}" for k, v in self.max_rel_error.items()) or "-"),
            f"{len(self.disagreements)} disagreement(s)",
        ]
        if self.ignored_fields:
            lines.append(
                "ignored (not MarginResult fields, not checked): " + ", ".join(self.ignored_fields)
            )
        if len(self.disagreements):
            lines.append(_text(self.disagreements, 20))
        return "\n".join(lines)


def _text(table: cm.Table, rows: int) -> str:
    """The first ``rows`` rows of a table as right-aligned text (no pandas needed)."""

    def cell(x: Any) -> str:
        return f"{x:.6g}" if isinstance(x, float | np.floating) else str(x)

    cols = [[c, *(cell(x) for x in table[c][:rows].tolist())] for c in table.columns]
    widths = [max(len(s) for s in col) for col in cols]
    return "\n".join(
        " ".join(col[i].rjust(w) for col, w in zip(cols, widths, strict=True))
        for i in range(len(cols[0]))
    )


def account_views(
    universe: cm.Universe, book: cm.Book, accounts: Sequence[int] | None = None
) -> list[AccountView]:
    """The book's accounts (all, or the given ids) as :class:`AccountView` objects: the rows
    of :func:`account_tables`, grouped by account (rows in input order)."""
    ids = sorted(set(int(a) for a in (accounts if accounts is not None else book.accounts)))
    views: dict[int, AccountView] = {a: AccountView(a, [], []) for a in ids}
    bal, pos = account_tables(universe, book, None if accounts is None else ids)
    for acct, asset, qty in zip(
        *(bal[k].tolist() for k in ("account", "asset", "qty")), strict=True
    ):
        views[acct].balances.append((asset, qty))
    columns = ("account", "market", "qty", "entry_price", "isolated_margin")
    for acct, market, qty, entry, iso in zip(*(pos[k].tolist() for k in columns), strict=True):
        views[acct].positions.append((market, qty, entry, iso))
    return list(views.values())


def account_tables(
    universe: cm.Universe, book: cm.Book, accounts: Sequence[int] | np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The rows of the given accounts (all by default) as the two tables a vectorised engine
    takes: ``balances`` (account, asset, qty) and ``positions`` (account, market, qty,
    entry_price, isolated_margin), numpy columns with symbols spelled out (object arrays) —
    the columns :meth:`crossmargin.Book.from_arrays` takes."""
    a_names = [a.symbol for a in universe.assets]
    m_names = [m.symbol for m in universe.markets]
    b, p = book.balances, book.positions
    kb: slice | np.ndarray
    kp: slice | np.ndarray
    if accounts is None:
        kb, kp = slice(None), slice(None)
    else:
        ids = np.asarray(accounts, dtype=np.int64)
        kb, kp = np.isin(b["account"], ids), np.isin(p["account"], ids)
    book.remaps(universe)  # an unknown symbol raises BookError here, naming its row
    bal = {
        "account": np.asarray(b["account"][kb], dtype=np.int64),
        "asset": b["asset"].symbols(a_names)[kb],
        "qty": np.asarray(b["qty"][kb], dtype=np.float64),
    }
    pos = {
        "account": np.asarray(p["account"][kp], dtype=np.int64),
        "market": p["market"].symbols(m_names)[kp],
        **{
            k: np.asarray(p[k][kp], dtype=np.float64)
            for k in ("qty", "entry_price", "isolated_margin")
        },
    }
    return bal, pos


def _result_columns(result: Any) -> dict[str, np.ndarray]:
    """A vectorised engine's result — a mapping of columns, a crossmargin Table, a pandas or
    polars DataFrame or a pyarrow Table — as numpy columns."""
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if hasattr(result, "column_names") and hasattr(result, "column"):  # pyarrow.Table
        return {n: np.asarray(result.column(n)) for n in result.column_names}
    if hasattr(result, "columns") and hasattr(result, "__getitem__"):  # DataFrame, Table
        return {str(c): np.asarray(result[c]) for c in result.columns}
    raise TableTypeError(
        "compare(vectorised=True): the engine must return a mapping of per-account columns "
        f"(a dict, DataFrame, Arrow table or crossmargin Table), got {type(result).__name__}"
    )


def _align(cols: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised output → rows in ``ids`` order (by its ``account`` column when it has one,
    else rows must already be one per account in ascending id order)."""
    n = len(ids)
    for k, v in cols.items():
        if v.ndim != 1 or len(v) != n:
            raise TableError(
                f"compare(vectorised=True): column {k!r} has shape {v.shape}; expected one row "
                f"per account ({n})",
                column=k,
            )
    if "account" not in cols:
        return cols
    got = cols["account"].astype(np.int64)
    order = np.argsort(got, kind="stable")
    if not np.array_equal(got[order], ids):
        missing = np.setdiff1d(ids, got)[:10].tolist()
        extra = np.setdiff1d(got, ids)[:10].tolist()
        raise TableError(
            "compare(vectorised=True): the engine's account column is not one row per account "
            f"given (missing {missing}, unexpected {extra}, or duplicates)",
            column="account",
        )
    return {k: v[order] for k, v in cols.items()}


def compare(
    fn: Callable[..., Any],
    book: cm.Book,
    universe: cm.Universe,
    *,
    vectorised: bool = False,
    sample: int | None = 10_000,
    repeat: int = 3,
    threads: int | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-6,
    seed: int = 0,
    verbose: bool = True,
) -> Comparison:
    """Times your engine and crossmargin on the same accounts and checks your numbers.

    ``fn`` is either

    - a per-account function (default): one :class:`AccountView` in, a dict of any
      :class:`~crossmargin.MarginResult` fields out (e.g. ``{"im": ..., "mm": ...}``),
      called once per account; or
    - with ``vectorised=True``, an engine over whole tables: ``fn(balances, positions)``,
      the two tables of :func:`account_tables` (numpy columns, symbols spelled out — what
      :meth:`crossmargin.Book.from_arrays` takes), returning per-account columns (a dict of
      arrays, a pandas/polars DataFrame, an Arrow table or a crossmargin Table) with an
      ``account`` column, or with rows one per account in ascending id order.

    The accounts: a random sample of ``sample`` accounts of ``book`` (``sample=None``: all).
    Both sides run on exactly those accounts, so the two rates and their ratio are
    like-for-like; nothing is extrapolated. A per-account function gets its
    :class:`AccountView` objects built beforehand, and crossmargin a book of the same
    accounts already grouped (``Engine.evaluate`` is timed); a vectorised engine gets the
    raw tables, and crossmargin is timed from the same tables (``Book.from_arrays`` — the
    grouping — plus ``Engine.evaluate``). Each side: the best of ``repeat`` passes (short
    passes looped to last 20 ms) after a warm-up pass; crossmargin on ``threads`` threads
    (every core by default: pass ``threads=1`` to compare one core with one core).

    Every field you return that is a MarginResult field is checked against crossmargin's:
    ``disagreements`` lists each (account, field) differing by more than ``rtol`` relative
    plus ``atol`` (a missing or NaN value is a disagreement); other keys are listed in
    ``ignored_fields``; returning no MarginResult field at all is an error.

    Example (a vectorised engine; here crossmargin's own NumPy baseline plays yours)::

        import crossmargin as cm
        from crossmargin.bench import compare
        from benches.numpy_engine import NumpyEngine

        npe = NumpyEngine(universe)
        c = compare(lambda b, p: npe.evaluate(cm.Book.from_arrays(b, p)), book, universe,
                    vectorised=True, sample=None)
        c.our_accounts_per_second, c.their_accounts_per_second, c.speedup

    and a per-account one: ``compare(lambda v: {"im": my_im(v)}, book, universe)``.
    """
    if not isinstance(repeat, int) or repeat < 1:
        raise ConfigError(f"repeat: {repeat!r} must be an integer ≥ 1", field="repeat")
    engine = cm.Engine(universe, threads=threads)
    ids = book.accounts
    if not len(ids):
        raise BookError("compare: the book has no accounts")
    if sample is not None and sample < len(ids):
        if sample < 1:
            raise ConfigError(f"sample: {sample!r} must be ≥ 1 or None", field="sample")
        ids = np.sort(np.random.default_rng(seed).choice(ids, sample, replace=False))
    ids = np.asarray(ids, dtype=np.int64)
    whole = len(ids) == book.n_accounts
    tables = account_tables(universe, book, None if whole else ids) if vectorised else None
    if tables is not None:
        sub = cm.Book.from_arrays(*tables)
    else:
        sub = book if whole else cm.Book.from_arrays(*account_tables(universe, book, ids))
    if not np.array_equal(sub.accounts, ids):  # cannot happen: every id has a row
        raise InternalError("compare: the sample's book has other accounts")

    out: list[Any] = [None]
    if tables is not None:
        b, p = tables

        def theirs_pass() -> None:
            out[0] = fn(b, p)

        def ours_pass() -> None:
            engine.evaluate(cm.Book.from_arrays(b, p))
    else:
        views = account_views(universe, book, ids.tolist())

        def theirs_pass() -> None:
            out[0] = [fn(v) for v in views]

        def ours_pass() -> None:
            engine.evaluate(sub)

    their_s = best_time(theirs_pass, repeat - 1)
    our_s = best_time(ours_pass, repeat - 1)
    ours = engine.evaluate(sub)
    n = len(ids)
    their_rate = n / max(their_s, 1e-12)
    our_rate = n / max(our_s, 1e-12)

    if vectorised:
        cols = _align(_result_columns(out[0]), ids)
        returned = set(cols)
    else:
        rows: list[Mapping[str, Any]] = out[0]
        returned = {k for t in rows for k in t}
        cols = {
            f: np.array([t.get(f, np.nan) for t in rows], dtype=np.float64)
            for f in returned
            if f in MARGIN_COLUMNS and f != "account"
        }
    fields = sorted(f for f in returned if f in MARGIN_COLUMNS and f != "account")
    ignored = tuple(sorted(f for f in returned if f not in MARGIN_COLUMNS))
    if not fields:
        raise TableError(
            f"compare: your engine returned none of the fields it can be checked on "
            f"({', '.join(c for c in MARGIN_COLUMNS if c != 'account')}); "
            f"it returned {sorted(returned)}"
        )
    bad: dict[str, list[Any]] = {
        "account": [],
        "field": [],
        "theirs": [],
        "ours": [],
        "rel_error": [],
    }
    worst: dict[str, float] = {}
    for f in fields:
        got = np.asarray(cols[f], dtype=np.float64)
        want = np.asarray(ours[f], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            diff = np.abs(got - want)
            both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
            diff[both_inf] = 0.0
            rel = diff / np.maximum(np.abs(want), 1e-300)
        rel[np.isnan(rel)] = np.inf  # a missing / NaN value, or inf against a finite one
        off = (~(diff <= rtol * np.abs(want) + atol) | np.isinf(got) | np.isinf(want)) & ~both_inf
        rel[both_inf] = 0.0
        worst[f] = float(rel.max()) if len(rel) else 0.0
        for i in np.flatnonzero(off):
            bad["account"].append(int(ids[i]))
            bad["field"].append(f)
            bad["theirs"].append(float(got[i]))
            bad["ours"].append(float(want[i]))
            bad["rel_error"].append(float(rel[i]))
    result = Comparison(
        accounts=n,
        their_accounts_per_second=their_rate,
        our_accounts_per_second=our_rate,
        speedup=our_rate / their_rate,
        max_rel_error=worst,
        disagreements=cm.Table(
            {
                "account": np.array(bad["account"], dtype=np.int64),
                "field": np.array(bad["field"], dtype=object),
                "theirs": np.array(bad["theirs"]),
                "ours": np.array(bad["ours"]),
                "rel_error": np.array(bad["rel_error"]),
            }
        ),
        mode="vectorised" if vectorised else "per-account",
        book_accounts=book.n_accounts,
        their_seconds=their_s,
        our_seconds=our_s,
        threads=engine.threads,
        repeat=repeat,
        ignored_fields=ignored,
    )
    if verbose:
        print(result)
    return result
