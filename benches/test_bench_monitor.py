"""Live monitoring (docs/MODEL.md "Live monitoring"): a tick on one market and a batch of
1,000 single-account trades on the session's book. The done-when ratios against batch
evaluation, at 1M accounts, are ``python -m benches.monitor`` (results/monitor.json).

    CM_BENCH_ACCOUNTS=1000000 pytest benches/test_bench_monitor.py --benchmark-enable
"""

from __future__ import annotations

import itertools

import crossmargin as cm
import numpy as np


def test_tick_on_one_market(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    mon = cm.Monitor(engine.universe, book)
    base = engine.universe.reference_marks[engine.universe.market_index["SOLUSDT"]]
    moves = itertools.count(1)
    benchmark.extra_info["accounts"] = book.n_accounts
    benchmark(lambda: mon.on_prices({"SOLUSDT": base * (1 + 1e-6 * next(moves))}))
    b, r = mon.snapshot()
    again = engine.evaluate(b, prices=mon.prices)
    assert np.array_equal(r.equity.view(np.int64), again.equity.view(np.int64))


def test_batch_of_1000_trades(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    mon = cm.Monitor(engine.universe, book)
    rng = np.random.default_rng(3)
    batches = (
        {
            "account": rng.choice(book.accounts, size=1_000, replace=False),
            "market": np.full(1_000, "ETHUSDT", dtype=object),
            "qty": rng.normal(0.0, 1.0, 1_000),
            "entry_price": np.full(1_000, 3_000.0),
        }
        for _ in itertools.count()
    )
    benchmark.extra_info["accounts"] = 1_000
    benchmark(lambda: mon.apply(positions=next(batches)))
    assert mon.seq > 0
