"""Standard-model evaluation (docs/ARCHITECTURE.md "Performance targets"): the engine with
its grouping reused, on one and on all threads; the grouping itself; the vectorised NumPy
baseline; the pure-Python reference on a 5,000-account sample of the same book.

    CM_BENCH_ACCOUNTS=1000000 pytest benches --benchmark-enable

``extra_info["accounts"]`` records how many accounts one call evaluates, so accounts/s is
``accounts / mean`` in the saved JSON. ``python -m benches.run`` measures the same things as
ratios in one run.
"""

from __future__ import annotations

import crossmargin as cm
import numpy as np
from crossmargin import reference

from benches.numpy_engine import NumpyEngine, PreparedBook


def _accounts(benchmark, n: int) -> None:
    benchmark.extra_info["accounts"] = n


def test_engine_evaluate(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    _accounts(benchmark, book.n_accounts)
    r = benchmark(engine.evaluate, book)
    assert len(r) == book.n_accounts


def test_engine_evaluate_1thread(benchmark, engine_1thread: cm.Engine, book: cm.Book) -> None:
    _accounts(benchmark, book.n_accounts)
    r = benchmark(engine_1thread.evaluate, book)
    assert len(r) == book.n_accounts


def test_book_grouping(benchmark, raw, book: cm.Book) -> None:
    """Book.from_arrays on the raw unsorted columns (integer symbol codes)."""
    balances, positions = raw
    _accounts(benchmark, book.n_accounts)
    b = benchmark(cm.Book.from_arrays, balances=balances, positions=positions)
    assert b.n_accounts == book.n_accounts


def test_numpy_evaluate(benchmark, numpy_engine: NumpyEngine, book: cm.Book) -> None:
    """From the long columns: the id mapping is part of the work, as for a NumPy engine."""
    _accounts(benchmark, book.n_accounts)
    r = benchmark(numpy_engine.evaluate, book)
    assert len(r["account"]) == book.n_accounts


def test_numpy_evaluate_prepared(
    benchmark, numpy_engine: NumpyEngine, prepared: PreparedBook, book: cm.Book
) -> None:
    """With the NumPy side's own mapping reused (its analogue of the engine's grouping)."""
    _accounts(benchmark, book.n_accounts)
    r = benchmark(numpy_engine.evaluate_prepared, prepared)
    assert len(r["account"]) == book.n_accounts


def test_reference_evaluate_sample(
    benchmark, universe: cm.Universe, reference_book: cm.Book
) -> None:
    _accounts(benchmark, reference_book.n_accounts)
    r = benchmark.pedantic(
        reference.evaluate, args=(universe, reference_book), rounds=3, iterations=1
    )
    assert len(r) == reference_book.n_accounts


def test_engine_agrees_with_numpy_at_bench_size(
    engine: cm.Engine, numpy_engine: NumpyEngine, book: cm.Book
) -> None:
    """Not timed: the numbers benchmarked are the same numbers."""
    got, want = engine.evaluate(book), numpy_engine.evaluate(book)
    np.testing.assert_array_equal(got.account, want["account"])
    for k in ("equity", "adj_equity_maint", "im", "mm"):
        scale = np.maximum(np.abs(want[k]), np.abs(want["equity"])) + 1.0
        assert (np.abs(got[k] - want[k]) <= 1e-9 * scale).all(), k
    assert (got.liquidatable == want["liquidatable"]).mean() > 0.9999
