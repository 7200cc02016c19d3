"""Funding and solvency (issue 6): zero-sum funding payments over every position, and the
liabilities pass plus the Merkle-sum tree (SHA-256, built level by level in parallel).

    CM_BENCH_ACCOUNTS=1000000 pytest benches/test_bench_solvency.py --benchmark-enable

``extra_info["accounts"]`` records the accounts of one call (accounts/s = accounts / mean).
"""

from __future__ import annotations

import crossmargin as cm
import numpy as np

SEED = b"bench seed"


def _perp_rates(universe: cm.Universe) -> dict[str, float]:
    return {m.symbol: 0.0001 for m in universe.markets if m.kind == "perp"}


def test_apply_funding(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    benchmark.extra_info["accounts"] = book.n_accounts
    fr = benchmark(engine.apply_funding, book, _perp_rates(engine.universe))
    assert fr.check_zero_sum()


def test_solvency_with_merkle_tree(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    benchmark.extra_info["accounts"] = book.n_accounts
    sv = benchmark(engine.solvency, book, {"USDT": 1e9, "BTC": 1e4}, seed=SEED)
    assert len(sv.accounts) == book.n_accounts
    a = int(sv.accounts.account[len(sv.accounts) // 2])
    assert cm.solvency.verify(sv.proof(a), sv.root_hash, sv.total_liabilities_minor)


def test_inclusion_proofs(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    """1,000 proofs served and verified."""
    sv = engine.solvency(book, seed=SEED)
    ids = sv.accounts.account[np.linspace(0, len(sv.accounts) - 1, 1_000).astype(np.int64)]

    def prove_all() -> int:
        ok = 0
        for a in ids.tolist():
            ok += cm.solvency.verify(sv.proof(a), sv.root_hash, sv.total_liabilities_minor)
        return ok

    benchmark.extra_info["proofs"] = len(ids)
    assert benchmark(prove_all) == len(ids)
