"""`crossmargin.bench.compare`: the harness for a user's own pure-Python engine."""

from __future__ import annotations

import crossmargin as cm
from crossmargin import reference, synth
from crossmargin.bench import AccountView, account_views, compare

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
