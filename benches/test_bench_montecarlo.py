"""Monte Carlo stress on the synthetic book (docs/MONTECARLO.md, "Cost").

    CM_BENCH_ACCOUNTS=100000 CM_BENCH_MC_PATHS=8 pytest benches/test_bench_montecarlo.py \
        --benchmark-enable

Each benchmark records ``extra_info["account_paths"]`` (accounts × paths of one call), so
account-paths/s is ``account_paths / mean``. The one-off measurement of the issue (a
100,000-account book × 1,000 one-day paths of 24 steps, or a stated fraction of it, beside
the single-scenario cascade on the same book)::

    python -m benches.test_bench_montecarlo --accounts 100000 --paths 1000 \
        --screen-paths 100 --cascade-paths 4
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import montecarlo as mc
from crossmargin import synth
from crossmargin.exceptions import TruncatedWarning

VOL = {"BTC": 0.5, "ETH": 0.7, "SOL": 0.9}
CORR = [[1.0, 0.8, 0.7], [0.8, 1.0, 0.75], [0.7, 0.75, 1.0]]


def bench_paths() -> int:
    return int(os.environ.get("CM_BENCH_MC_PATHS", 8))


def settled(engine: cm.Engine, book: cm.Book) -> cm.Book:
    """The book after today's liquidations (a cascade with no move): Monte Carlo starts
    from a book with nothing left to liquidate at today's prices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        return engine.cascade(book, cm.CascadeConfig(shock={})).final_book


def paths(n: int, seed: int = 7) -> mc.PathSet:
    return mc.simulate(mc.Normal(VOL, CORR), n_paths=n, horizon="1d", steps=24, seed=seed)


@pytest.fixture(scope="module")
def mc_book(engine: cm.Engine, book: cm.Book) -> cm.Book:
    return settled(engine, book)


def test_simulate_paths(benchmark) -> None:
    n = 1000
    benchmark.extra_info["paths"] = n
    ps = benchmark(paths, n)
    assert len(ps) == n


def test_montecarlo_run(benchmark, engine: cm.Engine, mc_book: cm.Book) -> None:
    ps = paths(bench_paths())
    benchmark.extra_info["account_paths"] = mc_book.n_accounts * len(ps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        r = benchmark.pedantic(mc.run, (engine, mc_book, ps, cm.CascadeConfig()), rounds=1)
    benchmark.extra_info["skip_rate"] = r.meta["screen"]["skip_rate"]
    assert len(r) == len(ps)


def test_single_scenario_cascade(benchmark, engine: cm.Engine, mc_book: cm.Book) -> None:
    benchmark.extra_info["account_paths"] = mc_book.n_accounts
    cfg = cm.CascadeConfig(shock={"BTC": -0.05, "ETH": -0.06, "SOL": -0.08})
    r = benchmark.pedantic(engine.cascade, (mc_book, cfg), rounds=1)
    assert r.check_conservation()


# ---- the one-off measurement -------------------------------------------------------------
def measure(accounts: int, n_paths: int, screen_paths: int, cascade_paths: int) -> dict[str, Any]:
    """Times each part on a fraction of the paths and projects the full run linearly (the
    cost per path of each part does not depend on the number of paths)."""
    u = cm.Universe.demo()
    engine = cm.Engine(u)
    out: dict[str, Any] = {
        "accounts": accounts,
        "paths": n_paths,
        "steps": 24,
        "threads": engine.threads,
    }
    t = time.perf_counter()
    raw = synth.generate(u, n_accounts=accounts, seed=7)
    book = settled(engine, raw)
    out["book_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    ps = paths(n_paths)
    out["simulate_seconds"] = time.perf_counter() - t
    cfg = cm.CascadeConfig(shock={"BTC": -0.05, "ETH": -0.06, "SOL": -0.08})
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        one = engine.cascade(book, cfg)
    out["single_scenario_cascade_seconds"] = time.perf_counter() - t
    out["single_scenario_cascade_rounds"] = len(one.rounds)
    # The screen alone on screen_paths paths (mc.screen: no cascade).
    t = time.perf_counter()
    sc = mc.screen(engine, book, ps.subset(slice(0, screen_paths)))
    screen_s = time.perf_counter() - t
    out["screen_paths_measured"] = screen_paths
    out["screen_seconds_per_path"] = screen_s / screen_paths
    out["screen_skip_rate"] = float(np.asarray(sc.clear).mean())
    # Full runs (screen + cascades) on cascade_paths paths.
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedWarning)
        r = mc.run(engine, book, ps.subset(slice(0, cascade_paths)), cm.CascadeConfig())
    run_s = time.perf_counter() - t
    out["cascade_paths_measured"] = cascade_paths
    out["run_seconds_per_path"] = run_s / cascade_paths
    out["run_rounds_per_path"] = float(np.asarray(r.paths.rounds).mean())
    out["run_truncated_paths"] = int(np.asarray(r.paths.truncated).sum())
    out["run_skip_rate"] = float(r.meta["screen"]["skip_rate"])
    out["load_average"] = os.getloadavg()
    out["account_paths_per_second"] = accounts * cascade_paths / run_s
    # The same first path with the incremental rounds off (every account every round), for
    # the incremental selection's gain (docs/MODEL.md "Incremental rounds").
    os.environ["CROSSMARGIN_CASCADE_INCREMENTAL"] = "0"
    try:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedWarning)
            full = mc.run(engine, book, ps.subset(slice(0, 1)), cm.CascadeConfig())
        out["run_seconds_first_path_full_evaluation"] = time.perf_counter() - t
        out["run_seconds_first_path"] = float(r.meta["seconds"]) if cascade_paths == 1 else None
        assert np.array_equal(np.asarray(full.paths.rounds), np.asarray(r.paths.rounds)[:1])
    finally:
        del os.environ["CROSSMARGIN_CASCADE_INCREMENTAL"]
    out["projected_full_run_seconds"] = out["run_seconds_per_path"] * n_paths
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--screen-paths", type=int, default=100)
    ap.add_argument("--cascade-paths", type=int, default=4)
    a = ap.parse_args()
    print(json.dumps(measure(a.accounts, a.paths, a.screen_paths, a.cascade_paths), indent=2))


if __name__ == "__main__":
    main()
