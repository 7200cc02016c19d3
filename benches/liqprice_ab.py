"""Liquidation prices of two builds of crossmargin on the same book, in one run.

Each build runs in its own process (two compiled ``_core`` modules cannot share one). Both
processes build the benchmark's seeded book (``crossmargin.synth.generate(Universe.demo(),
n_accounts, seed=7)``) once, then take turns, one timed call at a time (old, new, new, old,
...), so that both see the same machine load: ``Engine.liquidation_prices(book)``
(``move="underlying"``) and ``move="mark"``. Reported per stage: each build's best time, the
median of the paired ratios new / old, and the load average before and after (docs/MODEL.md
"Search"; issue 18: ≤ 0.5 s for 1M accounts).

    python benches/liqprice_ab.py --old /tmp/main/python --new python --accounts 1000000

``--full-search`` runs the new build a third time with ``CROSSMARGIN_LIQ_CLOSED_FORM=0``
(every root by the full-model search), the same comparison within one build.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import crossmargin as cm
from crossmargin.synth import generate
n, threads = int(sys.argv[1]), int(sys.argv[2])
u = cm.Universe.demo()
book = generate(u, n_accounts=n, seed=7)
engine = cm.Engine(u, threads=threads)
engine.liquidation_prices(book)  # binds the book to the universe and warms up
print(json.dumps({"file": cm.__file__, "positions": len(book.positions["qty"])}), flush=True)
for line in sys.stdin:
    move = line.strip()
    t = time.perf_counter()
    engine.liquidation_prices(book, move=move)
    print(json.dumps(time.perf_counter() - t), flush=True)
"""


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="PYTHONPATH of the baseline build")
    ap.add_argument("--new", required=True, help="PYTHONPATH of the build under test")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per build and stage")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--full-search", action="store_true", help="also the new build without the closed form"
    )
    a = ap.parse_args()
    builds = [("old", a.old, {}), ("new", a.new, {})]
    if a.full_search:
        builds.append(("new_full_search", a.new, {"CROSSMARGIN_LIQ_CLOSED_FORM": "0"}))
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(a.accounts), str(a.threads)],
            env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", **extra},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, path, extra in builds
    }
    info = {name: json.loads(p.stdout.readline()) for name, p in procs.items()}  # type: ignore[union-attr]

    def once(name: str, move: str) -> float:
        p = procs[name]
        p.stdin.write(move + "\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        return float(json.loads(p.stdout.readline()))  # type: ignore[union-attr]

    load_before = _loadavg()
    times: dict[str, dict[str, list[float]]] = {name: {} for name in procs}
    names = list(procs)
    for move in ("underlying", "mark"):
        for i in range(a.repeats):
            order = names if i % 2 == 0 else names[::-1]
            for name in order:
                times[name].setdefault(move, []).append(once(name, move))
    for p in procs.values():
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()
    out = {
        "accounts": a.accounts,
        "threads": a.threads,
        "positions": info["new"]["positions"],
        "builds": {name: info[name]["file"] for name in procs},
        "loadavg": {"before": load_before, "after": _loadavg()},
        "stages": {},
    }
    for move in ("underlying", "mark"):
        stage = {n: {"best_s": min(times[n][move]), "all_s": times[n][move]} for n in procs}
        ratios = [n / o for n, o in zip(times["new"][move], times["old"][move], strict=True)]
        stage["median_ratio_new_over_old"] = statistics.median(ratios)  # type: ignore[assignment]
        out["stages"][move] = stage  # type: ignore[index]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
