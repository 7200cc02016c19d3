"""Two builds of crossmargin on the same book, in one run: grouping and ``Engine.evaluate``.

Each build runs in its own process (two compiled ``_core`` modules cannot share one). Both
processes build the same seeded synthetic book (``crossmargin.synth.generate``) once, then
take turns, one timed repetition at a time (old, new, old, new, ...), so that both see the
same machine load; each pair gives a ratio new / old. Reported per stage (grouping a book:
``group`` from converted columns, ``group_arrays`` through ``Book.from_arrays`` from the raw
columns as the README's table times it, ``group_sorted`` the same rows already grouped
(sorted by account and symbol: the fast path), ``group_str`` with string symbols,
``copy_floor`` a copy of every raw column into fresh memory, the floor of one move; one
``evaluate`` into fresh columns, and ``evaluate_out``: one ``evaluate`` with the previous
result reused as ``out=``, the README table's measure; ``liq_underlying`` / ``liq_mark``:
``Engine.liquidation_prices`` with each move; ``cascade``: the demo's crash
(``synth.demo_crash``, as ``benches/cascade_demo.py`` runs it); ``stress``: ``Engine.stress``
under eight scenarios; wall and process CPU time): the best time of each build and the median of the
paired ratios, the robust number on a shared machine, with the 1-minute load average before
and after.

    python benches/compare_builds.py --old /tmp/old/python --new python --accounts 1000000
    python benches/compare_builds.py --old ... --new ... --stages evaluate_out --threads 2
    python benches/compare_builds.py --old python --new python --stages liq_underlying liq_mark \
        --threads 2 --pairs 3 --old-env CROSSMARGIN_LIQ_CLOSED_FORM=0   # closed form vs search

    python benches/compare_builds.py --old /tmp/main/python --new python \
        --stages group_arrays group_sorted group_str copy_floor --threads 2 --pairs 9

benches/compare_builds.book_sides.json holds the run behind the book-sides branch;
benches/compare_builds.kernel2.json one behind the kernel2 branch (``--stages evaluate_out
--threads 2``, main's release build against the branch's, on a machine at load 17–18);
benches/compare_builds.group2.json one behind the group2 branch (``--stages group_arrays
group_sorted group_str copy_floor --threads 2 --pairs 5``, main's release build against the
branch's, at load 13);
benches/compare_builds.liqprice2.json one behind the liqprice2 branch (``--stages liq_underlying
liq_mark --threads 2 --pairs 5``, main's release build against the branch's, load 16–19: only
the CPU ratios mean anything at that load);
benches/compare_builds.liqprice3.json one behind the liqprice3 branch (the same stages,
``--pairs 7``, main's release build against the branch's, load 5.7–7.4; the branch's columns
are main's bit for bit: ``python -m benches.liq_same_bits``).
benches/compare_builds.kernel4.json the two behind the kernel4 branch (``--stages evaluate_out
--threads 2`` and ``--threads 1``, 15 pairs, main's release build against the branch's, load
8.5–10.4: the CPU ratios are the measure).
benches/compare_builds.kernel5.json the two behind the kernel5 branch (the same stages and
threads, 15 pairs, main's release build against the branch's, load 5.8–10.7: CPU ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time
import numpy as np
import crossmargin as cm
from crossmargin.synth import generate
n, threads = int(sys.argv[1]), int(sys.argv[2])
u = cm.Universe.demo()
book = generate(u, n_accounts=n, seed=7)
b, p = dict(book.balances), {k: v for k, v in book.positions.items() if k != "side"}
raw_b = {k: (v.codes if k == "asset" else v) for k, v in b.items()}
raw_p = {k: (v.codes if k == "market" else v) for k, v in p.items()}
names_a = np.array([a.symbol for a in u.assets], dtype=object)
names_m = np.array([m.symbol for m in u.markets], dtype=object)
str_b = {**raw_b, "asset": names_a[raw_b["asset"]]}
str_p = {**raw_p, "market": names_m[raw_p["market"]]}
ob = np.lexsort((raw_b["asset"], raw_b["account"]))
op = np.lexsort((raw_p["market"], raw_p["account"]))
sorted_b = {k: v[ob] for k, v in raw_b.items()}  # already grouped: the fast path
sorted_p = {k: v[op] for k, v in raw_p.items()}
engine = cm.Engine(u, threads=threads)
fresh = cm.Book(b, p)
out = engine.evaluate(fresh)  # binds the book to the universe (cached) and warms up
if "cascade" in sys.argv[3:]:  # the generated book (with sides), its rows grouped once
    from crossmargin.synth import demo_crash
    crash = demo_crash(u)
    engine.cascade(book, crash)
print(json.dumps({"file": cm.__file__}), flush=True)
for line in sys.stdin:
    stage = line.strip()
    t, c = time.perf_counter(), time.process_time()
    if stage == "group":
        cm.Book(b, p)
    elif stage == "group_arrays":  # the README's grouping: raw int64 ids, uint32 symbol indices
        cm.Book.from_arrays(raw_b, raw_p)
    elif stage == "group_sorted":  # the same rows sorted by account and symbol
        cm.Book.from_arrays(sorted_b, sorted_p)
    elif stage == "copy_floor":  # every raw column copied once into fresh memory
        [v.copy() for v in (*raw_b.values(), *raw_p.values())]
    elif stage == "group_str":  # the same with string symbols (their dictionary encoding added)
        cm.Book.from_arrays(str_b, str_p)
    elif stage == "evaluate_out":
        engine.evaluate(fresh, out=out)
    elif stage.startswith("liq_"):  # liq_underlying, liq_mark
        engine.liquidation_prices(fresh, move=stage[4:])
    elif stage == "cascade":  # the demo's crash on the generated book (benches/cascade_demo.py)
        engine.cascade(book, crash)
    elif stage == "stress":  # the four historical presets and four uniform falls
        from crossmargin.risk.stress import presets
        falls = (0.1, 0.2, 0.3, 0.5)
        scen = dict(presets(u)) | {f"-{f}": {x: -f for x in u.underlyings} for f in falls}
        engine.stress(fresh, scen)
    else:
        engine.evaluate(fresh)
    print(json.dumps([time.perf_counter() - t, time.process_time() - c]), flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="PYTHONPATH of the baseline build")
    ap.add_argument("--new", required=True, help="PYTHONPATH of the build under test")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--pairs", type=int, default=15, help="timed pairs per stage")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stages", nargs="+", default=["group", "evaluate", "evaluate_out"])
    ap.add_argument("--simd", default="", help="CROSSMARGIN_SIMD for both builds (default: best)")
    ap.add_argument(
        "--old-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment of the old process only (repeatable), e.g. one build against "
        "itself with CROSSMARGIN_LIQ_CLOSED_FORM=0",
    )
    a = ap.parse_args()
    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    env = {"PATH": "/usr/bin:/bin", "CROSSMARGIN_SIMD": a.simd}
    old_env = dict(kv.split("=", 1) for kv in a.old_env)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, str(a.accounts), str(a.threads), *a.stages],
            env={**env, "PYTHONPATH": path, **(old_env if name == "old" else {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, path in (("old", a.old), ("new", a.new))
    }
    files = {name: json.loads(p.stdout.readline())["file"] for name, p in procs.items()}  # type: ignore[union-attr]

    def once(name: str, stage: str) -> list[float]:
        p = procs[name]
        p.stdin.write(stage + "\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        return json.loads(p.stdout.readline())  # type: ignore[union-attr]

    times: dict[str, dict[str, list[list[float]]]] = {"old": {}, "new": {}}
    for stage in a.stages:
        for i in range(a.pairs):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for name in order:
                times[name].setdefault(stage, []).append(once(name, stage))
    for p in procs.values():
        p.stdin.close()  # type: ignore[union-attr]
        p.wait()
    report: dict[str, object] = {
        "accounts": a.accounts,
        "threads": a.threads,
        "simd": a.simd or "best",
        "files": files,
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    for stage in a.stages:
        for k, clock in enumerate(("wall", "cpu")):
            old = [t[k] for t in times["old"][stage]]
            new = [t[k] for t in times["new"][stage]]
            report[f"{stage}_{clock}"] = {
                "best_old": min(old),
                "best_new": min(new),
                "median_paired_ratio": statistics.median(
                    n / o for n, o in zip(new, old, strict=True)
                ),
                "ratio_of_bests": min(new) / min(old),
            }
    report["wall_seconds"] = time.perf_counter() - start
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
