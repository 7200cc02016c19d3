"""``python -m benches.portfolio``: portfolio margin with options over 33 scenarios
(docs/ARCHITECTURE.md "Performance targets": ≥ 5M accounts/s on 2 cores), two builds
alternated in one run, every result column compared bit for bit.

The universe (:func:`options_universe`, also benches/test_bench_portfolio.py's): BTC and ETH,
each with a perp, a future and 12 options (linear and inverse, six strikes, calls and puts),
on Deribit's grid of 11 price moves × 3 volatility moves = 33 scenarios, BTC and ETH
balances moving with their underlying; a seeded synthetic book (``crossmargin.synth.generate``,
half of the position draws on options: about 3 balances and 4 positions an account, 5 % of
positions isolated). Each build runs in its own process (two compiled ``_core`` modules
cannot share one), builds the same book, evaluates it once (warm-up, and a SHA-256 of every
result column, compared between the builds), then the two take turns, one timed
``Engine.evaluate(book, model=...)`` at a time (old, new, new, old, ...), so that both see the
same machine load. Reported: accounts/s of each build (best of the pairs), the median paired
ratio new / old in wall and process CPU time, and the 1-minute load average before and after.

    python -m benches.portfolio --old /tmp/s27/mainpy --new python --threads 2
    python -m benches.portfolio --old /tmp/s27/mainpy --new python --threads 1 --pairs 5
    python -m benches.portfolio --old python --new python --models portfolio delta hybrid

Run from the repository root with ``PYTHONPATH=$PWD`` (the ``benches`` package); each child
puts its build first on its own path. The JSON report goes to stdout.

benches/portfolio.portfolio2.json holds the runs behind the portfolio2 branch (main's release
build against the branch's, 2 threads and 1 thread, load 10–11: only the ratios mean anything
at that load).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import crossmargin as cm


def options_markets() -> list[cm.Market]:
    """A perp, a future and 12 options (calls and puts at six strikes, every other one
    inverse) on BTC and on ETH: the options book of the portfolio and SPAN benchmarks."""
    import crossmargin as cm

    markets = []
    for u, s in (("BTC", 50_000.0), ("ETH", 2_500.0)):
        perp_brackets = [(1e6, 0.02, 0.01), (math.inf, 0.05, 0.025)]
        markets += [
            cm.Market(f"{u}-PERP", "perp", "USDC", u, s, perp_brackets),
            cm.Market(f"{u}-FUT", "future", "USDC", u, s * 1.01, [(math.inf, 0.03, 0.015)]),
        ]
        for j, k in enumerate((0.8, 0.9, 1.0, 1.1, 1.2, 1.3)):
            for t in ("call", "put"):
                markets.append(
                    cm.Market(f"{u}-{t[0]}{k}", "option", u if j % 2 else "USDC", u,
                              option_type=t, strike=s * k, expiry=0.05 + 0.1 * j, iv=0.5 + 0.05 * j,
                              inverse=bool(j % 2))
                )  # fmt: skip
    return markets


def options_universe() -> cm.Universe:
    """BTC and ETH: a perp, a future and 12 options each on 33 scenarios (see the module);
    imported in the children, each with its own build first on the path."""
    import crossmargin as cm
    from crossmargin.portfolio import PortfolioConfig, crypto

    markets = options_markets()
    grid = crypto(buckets=11, extended=())
    assert len(grid.scenarios) == 33
    return cm.Universe(
        [
            cm.Asset("USDC", 1.0),
            cm.Asset("BTC", 50_000.0, 0.9, 0.95),
            cm.Asset("ETH", 2_500.0, 0.8, 0.9),
        ],
        markets,
        portfolio=PortfolioConfig(default=grid, im_factor=1.3),
    )  # fmt: skip


CHILD = r"""
import hashlib, json, sys, time
import numpy as np
import crossmargin as cm
from crossmargin import synth
from benches.portfolio import options_universe
n, threads, models = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
u = options_universe()
book = synth.generate(u, n_accounts=n, options=0.5)
engine = cm.Engine(u, threads=threads)
digests = {}
for model in models:
    r = engine.evaluate(book, model=model)  # warm-up: binds the book to the universe
    h = hashlib.sha256()
    for name in r:
        h.update(name.encode())
        h.update(np.ascontiguousarray(r[name]).tobytes())
    digests[model] = h.hexdigest()
print(json.dumps({"file": cm.__file__, "accounts": book.n_accounts, "sha256": digests}), flush=True)
for line in sys.stdin:
    model = line.strip()
    t, c = time.perf_counter(), time.process_time()
    engine.evaluate(book, model=model)
    print(json.dumps([time.perf_counter() - t, time.process_time() - c]), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="PYTHONPATH of the baseline build")
    ap.add_argument("--new", required=True, help="PYTHONPATH of the build under test")
    ap.add_argument("--accounts", type=int, default=300_000)
    ap.add_argument("--pairs", type=int, default=9, help="timed pairs per model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["portfolio"], help="portfolio, delta, hybrid")
    a = ap.parse_args()
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    root = str(Path(__file__).resolve().parent.parent)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(a.accounts), str(a.threads), ",".join(a.models)],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{path}:{root}"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, path in (("old", a.old), ("new", a.new))
    }
    heads = {name: json.loads(p.stdout.readline()) for name, p in procs.items()}  # type: ignore[union-attr]

    def once(name: str, model: str) -> list[float]:
        p = procs[name]
        p.stdin.write(model + "\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        return json.loads(p.stdout.readline())  # type: ignore[union-attr]

    times: dict[str, dict[str, list[list[float]]]] = {"old": {}, "new": {}}
    for model in a.models:
        for i in range(a.pairs):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for name in order:
                times[name].setdefault(model, []).append(once(name, model))
    for p in procs.values():
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()
    n = heads["new"]["accounts"]
    report: dict[str, object] = {
        "accounts": n,
        "threads": a.threads,
        "files": {name: h["file"] for name, h in heads.items()},
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    for model in a.models:
        same = heads["old"]["sha256"][model] == heads["new"]["sha256"][model]
        row: dict[str, object] = {"bit_identical": same}
        for k, clock in enumerate(("wall", "cpu")):
            old = [t[k] for t in times["old"][model]]
            new = [t[k] for t in times["new"][model]]
            row[clock] = {
                "best_old_s": min(old),
                "best_new_s": min(new),
                "accounts_per_s_old": n / min(old),
                "accounts_per_s_new": n / min(new),
                "median_paired_ratio": statistics.median(
                    nw / o for nw, o in zip(new, old, strict=True)
                ),
            }
        report[model] = row
    report["wall_seconds"] = time.perf_counter() - start
    print(json.dumps(report, indent=2))
    if not all(report[m]["bit_identical"] for m in a.models):  # type: ignore[index]
        sys.exit("the two builds' results differ")


if __name__ == "__main__":
    main()
