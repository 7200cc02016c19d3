"""`crossmargin.bench.compare`: the harness for a user's own engine (per-account or vectorised),
timed like-for-like against crossmargin on the same accounts."""

from __future__ import annotations

import itertools
import types
from collections.abc import Callable
from typing import Any

import crossmargin as cm
import numpy as np
import pandas as pd
import pytest
from crossmargin import reference, synth
from crossmargin.bench import AccountView, account_views, compare
from crossmargin.result import MARGIN_COLUMNS

from benches.numpy_engine import NumpyEngine

U = cm.Universe.demo()


def mine(view: AccountView) -> dict[str, float]:
    """A user's engine: the readable reference, one account at a time."""
    book = cm.Book.from_arrays(
        balances={
            "account": [view.account] * len(view.balances),
            "asset": [a for a, _ in view.balances],
            "qty": [q for _, q in view.balances],
        },
        positions={
            "account": [view.account] * len(view.positions),
            "market": [p[0] for p in view.positions],
            "qty": [p[1] for p in view.positions],
            "entry_price": [p[2] for p in view.positions],
            "isolated_margin": [p[3] for p in view.positions],
        },
    )
    r = reference.evaluate(U, book)
    return {"equity": float(r.equity[0]), "im": float(r.im[0]), "mm": float(r.mm[0])}


def test_an_engine_that_agrees_shows_no_disagreement() -> None:
    book = synth.generate(U, n_accounts=400, seed=5)
    c = compare(mine, book, U, sample=100, verbose=False)
    assert c.accounts == 100
    assert len(c.disagreements) == 0
    assert set(c.max_rel_error) == {"equity", "im", "mm"}
    assert c.speedup > 0


def test_an_engine_with_a_bug_is_caught_account_by_account() -> None:
    book = synth.generate(U, n_accounts=300, seed=6)

    def buggy(view: AccountView) -> dict[str, float]:
        out = mine(view)
        out["mm"] *= 1.01  # a 1% maintenance error
        return out

    c = compare(buggy, book, U, sample=None, verbose=False)
    assert c.accounts == 300
    flagged = c.disagreements.to_pandas()
    assert set(flagged.field) == {"mm"}
    nonzero = sum(1 for v in account_views(U, book) if mine(v)["mm"] > 0)
    assert len(flagged) == nonzero
    assert "disagreement" in str(c)


# ---- like-for-like timing ----------------------------------------------------------------
def _spy_on_evaluate(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Records the accounts of every book crossmargin evaluates."""
    seen: list[np.ndarray] = []
    real = cm.Engine.evaluate

    def spy(self: cm.Engine, book: cm.Book, *args: Any, **kwargs: Any) -> cm.MarginResult:
        seen.append(np.array(book.accounts))
        return real(self, book, *args, **kwargs)

    monkeypatch.setattr(cm.Engine, "evaluate", spy)
    return seen


def test_crossmargin_is_timed_on_the_sampled_accounts_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book = synth.generate(U, n_accounts=400, seed=7)
    seen = _spy_on_evaluate(monkeypatch)
    # A clock a millisecond further at each reading: the rates below are arithmetic on the
    # sample size, never a measured speed.
    ticks = itertools.count(0.0, 1e-3)
    clock = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr("crossmargin.bench.time", clock)
    c = compare(mine, book, U, sample=50, verbose=False)
    assert c.accounts == 50 and c.book_accounts == 400
    assert seen, "crossmargin was never run"
    sample = seen[0]
    assert len(sample) == 50 and set(sample.tolist()) <= set(book.accounts.tolist())
    for accounts in seen:  # never the whole book: both sides on the same 50 accounts
        np.testing.assert_array_equal(accounts, sample)
    assert c.speedup == pytest.approx(c.our_accounts_per_second / c.their_accounts_per_second)
    assert c.our_accounts_per_second == pytest.approx(50 / c.our_seconds)
    assert c.their_accounts_per_second == pytest.approx(50 / c.their_seconds)
    text = str(c)
    assert "same accounts" in text and "50 of the book's 400" in text
    assert text.count("accounts/s") == 2


def _numpy_engine() -> Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], Any]:
    npe = NumpyEngine(U)
    return lambda b, p: npe.evaluate(cm.Book.from_arrays(b, p))


def test_a_vectorised_engine_is_timed_on_the_same_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    book = synth.generate(U, n_accounts=300, seed=8)
    calls: list[tuple[int, int]] = []
    inner = _numpy_engine()

    def theirs(b: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> Any:
        assert set(b) == {"account", "asset", "qty"}
        assert set(p) == {"account", "market", "qty", "entry_price", "isolated_margin"}
        assert isinstance(b["asset"][0], str) and isinstance(p["market"][0], str)
        calls.append((len(np.unique(np.concatenate([b["account"], p["account"]]))), len(b["qty"])))
        return inner(b, p)

    seen = _spy_on_evaluate(monkeypatch)
    c = compare(theirs, book, U, vectorised=True, sample=120, verbose=False)
    assert c.mode == "vectorised" and c.accounts == 120
    assert {n for n, _ in calls} == {120}
    assert all(len(a) == 120 for a in seen)
    assert len(c.disagreements) == 0
    assert set(c.max_rel_error) == set(MARGIN_COLUMNS) - {"account"}
    assert max(c.max_rel_error.values()) < 1e-9
    assert "vectorised" in str(c)


def test_a_vectorised_engine_may_return_rows_in_any_order_or_without_ids() -> None:
    book = synth.generate(U, n_accounts=200, seed=9)
    inner = _numpy_engine()

    def shuffled(b: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> pd.DataFrame:
        df = pd.DataFrame(inner(b, p))[["account", "im", "mm"]]
        return df.sample(frac=1.0, random_state=0)

    def bare(b: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        r = inner(b, p)
        return {"im": r["im"], "mm": r["mm"] * 1.01}  # ascending account order, a 1% bug

    ok = compare(shuffled, book, U, vectorised=True, sample=None, verbose=False)
    assert len(ok.disagreements) == 0 and set(ok.max_rel_error) == {"im", "mm"}
    buggy = compare(bare, book, U, vectorised=True, sample=None, verbose=False)
    flagged = buggy.disagreements.to_pandas()
    assert set(flagged.field) == {"mm"}
    ours = cm.Engine(U).evaluate(book)
    assert len(flagged) == int((ours.mm > 1e-4).sum())


def test_a_vectorised_engine_must_answer_for_the_accounts_it_was_given() -> None:
    book = synth.generate(U, n_accounts=100, seed=10)
    inner = _numpy_engine()

    def drops_one(b: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> dict[str, Any]:
        r = inner(b, p)
        return {"account": r["account"][1:], "im": r["im"][1:]}

    with pytest.raises(ValueError, match="one row per account"):
        compare(drops_one, book, U, vectorised=True, sample=None, verbose=False)


def test_fields_it_cannot_check_are_reported_not_silently_passed() -> None:
    book = synth.generate(U, n_accounts=50, seed=11)
    with pytest.raises(ValueError, match="none of the fields"):
        compare(lambda v: {"initial_margin": 1.0}, book, U, verbose=False)
    c = compare(lambda v: {"initial_margin": 1.0, **mine(v)}, book, U, verbose=False)
    assert c.ignored_fields == ("initial_margin",)
    assert "initial_margin" in str(c)


def test_a_finite_answer_where_crossmargin_has_inf_is_a_disagreement() -> None:
    m, mark = U.markets[0].symbol, float(U.markets[0].mark or 0.0)
    book = cm.Book.from_arrays(
        balances={"account": [1, 2], "asset": ["USDT", "USDT"], "qty": [-100.0, 1000.0]},
        positions={
            "account": [1, 2],
            "market": [m, m],
            "qty": [1.0, 1.0],
            "entry_price": [mark, mark],
        },
    )
    ours = cm.Engine(U).evaluate(book)
    assert np.isinf(ours.margin_ratio[0]) and np.isfinite(ours.margin_ratio[1])

    def finite(view: AccountView) -> dict[str, float]:
        return {"margin_ratio": float(ours.margin_ratio[1]) if view.account == 2 else 1e300}

    c = compare(finite, book, U, verbose=False)
    assert c.disagreements.account.tolist() == [1]
    assert c.max_rel_error["margin_ratio"] == float("inf")
