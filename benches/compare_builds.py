"""Two builds of crossmargin on the same book, in one run: grouping and ``Engine.evaluate``.

Each build runs in its own process (two compiled ``_core`` modules cannot share one); the
builds alternate ``--rounds`` times, each child timing ``--reps`` groupings and three
evaluations after each, and the best time per build and stage (wall and process CPU) is
reported with the ratio new / old. The book is the seeded
synthetic one (``crossmargin.synth.generate``), identical in both builds.

    python benches/compare_builds.py --old /tmp/old/python --new python --accounts 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import crossmargin as cm
from crossmargin.synth import generate
n, reps, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
u = cm.Universe.demo()
book = generate(u, n_accounts=n, seed=7)
b, p = dict(book.balances), {k: v for k, v in book.positions.items() if k != "side"}
engine = cm.Engine(u, threads=threads)
out = {"group": [], "evaluate": [], "group_cpu": [], "evaluate_cpu": []}
for _ in range(reps):
    t, c = time.perf_counter(), time.process_time()
    fresh = cm.Book(b, p)
    out["group"].append(time.perf_counter() - t)
    out["group_cpu"].append(time.process_time() - c)
    engine.evaluate(fresh)  # binds the book to the universe (cached) and warms up
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        engine.evaluate(fresh)
        out["evaluate"].append(time.perf_counter() - t)
        out["evaluate_cpu"].append(time.process_time() - c)
print(json.dumps({"file": cm.__file__, **out}))
"""


# Wall time and process CPU time (all threads; less sensitive to a loaded machine).
STAGES = ("group", "evaluate", "group_cpu", "evaluate_cpu")


def run(path: str, n: int, reps: int, threads: int) -> dict[str, list[float]]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(reps), str(threads)],
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="PYTHONPATH of the baseline build")
    ap.add_argument("--new", required=True, help="PYTHONPATH of the build under test")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    files = {}
    start = time.perf_counter()
    for _ in range(a.rounds):
        for name, path in (("old", a.old), ("new", a.new)):
            r = run(path, a.accounts, a.reps, a.threads)
            files[name] = r["file"]
            for stage in STAGES:
                best[name][stage] = min(best[name].get(stage, float("inf")), *r[stage])
    report = {
        "accounts": a.accounts,
        "threads": a.threads,
        "files": files,
        "best_seconds": best,
        "ratio_new_over_old": {s: best["new"][s] / best["old"][s] for s in STAGES},
        "wall_seconds": time.perf_counter() - start,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
