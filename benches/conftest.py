"""Fixtures of the benchmark suites: one synthetic book per session.

Size from the environment: ``CM_BENCH_ACCOUNTS`` (default 200_000). Run with
``pytest benches --benchmark-enable`` (the project's pytest options disable benchmarks
and collect only tests/ by default).
"""

from __future__ import annotations

import os
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import synth

from benches.numpy_engine import NumpyEngine, PreparedBook

DEFAULT_ACCOUNTS = 200_000
REFERENCE_SAMPLE = 5_000


def bench_accounts() -> int:
    return int(os.environ.get("CM_BENCH_ACCOUNTS", DEFAULT_ACCOUNTS))


def raw_columns(book: cm.Book) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The book's long columns with symbols as integer codes: what a back office hands over."""
    b = {k: (v.codes if k == "asset" else v) for k, v in book.balances.items()}
    p = {k: (v.codes if k == "market" else v) for k, v in book.positions.items()}
    return b, p


def sample_book(book: cm.Book, n: int) -> cm.Book:
    """The rows of the book's first ``n`` accounts (by id), as a new book."""
    if n >= book.n_accounts:
        return book
    cutoff = book.accounts[n - 1]
    b, p = raw_columns(book)
    keep_b = b["account"] <= cutoff
    keep_p = p["account"] <= cutoff
    return cm.Book.from_arrays(
        balances={k: v[keep_b] for k, v in b.items()},
        positions={k: v[keep_p] for k, v in p.items()},
    )


@pytest.fixture(scope="session")
def universe() -> cm.Universe:
    return cm.Universe.demo()


@pytest.fixture(scope="session")
def n_accounts() -> int:
    return bench_accounts()


@pytest.fixture(scope="session")
def book(universe: cm.Universe, n_accounts: int) -> cm.Book:
    return synth.generate(universe, n_accounts=n_accounts, seed=7)


@pytest.fixture(scope="session")
def raw(book: cm.Book) -> tuple[dict[str, Any], dict[str, Any]]:
    return raw_columns(book)


@pytest.fixture(scope="session")
def reference_book(book: cm.Book) -> cm.Book:
    return sample_book(book, REFERENCE_SAMPLE)


@pytest.fixture(scope="session")
def engine(universe: cm.Universe) -> cm.Engine:
    return cm.Engine(universe)


@pytest.fixture(scope="session")
def engine_1thread(universe: cm.Universe) -> cm.Engine:
    return cm.Engine(universe, threads=1)


@pytest.fixture(scope="session")
def numpy_engine(universe: cm.Universe) -> NumpyEngine:
    return NumpyEngine(universe)


@pytest.fixture(scope="session")
def prepared(numpy_engine: NumpyEngine, book: cm.Book) -> PreparedBook:
    return numpy_engine.prepare(book)
