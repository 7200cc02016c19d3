"""Liquidation prices of two builds on the benchmark's 1M-account book, column by column, bit
for bit: each build runs in its own process (two compiled ``_core`` modules cannot share one),
computes ``Engine.liquidation_prices`` for both moves and saves every column; the parent then
compares them with ``np.array_equal(..., equal_nan=True)`` (dtypes too).

    python -m benches.liq_same_bits --old /tmp/main/python --new python
    python -m benches.liq_same_bits --old python --new python --old-threads 1   # thread count
    python -m benches.liq_same_bits --old /tmp/main/python --new python --old-cache /tmp/main.npz

Exits 1 and names the columns that differ (with the first differing row) when any does.
With ``--rtol`` (a change that moves roots by rounding, e.g. a different summation order) the
price columns may differ by at most that relative amount, NaN where the old build has NaN;
the rows that differ and the largest relative difference are reported.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

CHILD = r"""
import sys
import numpy as np
import crossmargin as cm
from crossmargin.synth import generate
n, threads, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
u = cm.Universe.demo()
book = generate(u, n_accounts=n, seed=7)
engine = cm.Engine(u, threads=threads)
cols = {}
for move in ("underlying", "mark"):
    t = engine.liquidation_prices(book, move=move)
    for name in t.columns:
        cols[f"{move}.{name}"] = np.asarray(t[name])
np.savez(path, build=np.array(cm.__file__), **cols)
"""


def run(python_path: str, accounts: int, threads: int, out: str) -> dict[str, np.ndarray]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": python_path}
    args = [sys.executable, "-c", CHILD, str(accounts), str(threads), out]
    subprocess.run(args, env=env, check=True)
    with np.load(out, allow_pickle=True) as z:  # object columns (market, side)
        return {k: z[k] for k in z.files}


def differences(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray], rtol: float | None = None
) -> tuple[list[str], list[str]]:
    """One line per column that is missing on one side or differs (dtype, length or bits;
    float columns beyond `rtol` when it is given), and one per float column within it."""
    out, within = [], []
    for name in sorted((set(old) | set(new)) - {"build"}):
        if name not in old or name not in new:
            out.append(f"{name}: only in {'new' if name in new else 'old'}")
            continue
        a, b = old[name], new[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{name}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
            continue
        floats = a.dtype.kind == "f"
        if floats:  # the same bits, any NaN equal to any NaN
            same = (a.view(np.uint64) == b.view(np.uint64)) | (np.isnan(a) & np.isnan(b))
        else:
            same = a == b
        if floats and rtol is not None and not np.all(same):
            nan_same = np.array_equal(np.isnan(a), np.isnan(b))
            ok = ~np.isnan(a)
            rel = np.abs(b[ok] - a[ok]) / np.maximum(np.abs(a[ok]), np.finfo(float).tiny)
            worst = float(rel.max(initial=0.0))
            n_diff = int((~same).sum())
            line = f"{name}: {n_diff} rows differ, largest relative difference {worst:.3g}"
            (within if nan_same and worst <= rtol else out).append(
                line + ("" if nan_same else ", NaN rows differ")
            )
            continue
        if not np.all(same):
            first = int(np.argmin(same))
            n_diff = int((~same).sum())
            was, now = a[first].item(), b[first].item()
            out.append(f"{name}: {n_diff} rows differ, first {first}: {was!r} vs {now!r}")
        elif floats:
            assert np.array_equal(a, b, equal_nan=True)
    return out, within


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True, help="PYTHONPATH of the baseline build")
    ap.add_argument("--new", required=True, help="PYTHONPATH of the build under test")
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--old-threads", type=int, default=None, help="default: --threads")
    ap.add_argument(
        "--old-cache", help="an .npz of the old build's columns: read if it exists, else written"
    )
    ap.add_argument("--rtol", type=float, help="float columns may differ by this relative amount")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.old_cache and os.path.exists(a.old_cache):
            with np.load(a.old_cache, allow_pickle=True) as z:
                old = {k: z[k] for k in z.files}
        else:
            old_path = a.old_cache or os.path.join(tmp, "old.npz")
            old = run(a.old, a.accounts, a.old_threads or a.threads, old_path)
        new = run(a.new, a.accounts, a.threads, os.path.join(tmp, "new.npz"))
    print(f"old: {old['build']}\nnew: {new['build']}")
    diff, within = differences(old, new, a.rtol)
    n_cols = len(set(old) - {"build"})
    if diff:
        print("\n".join(diff))
        sys.exit(1)
    if within:
        print(f"within rtol {a.rtol}:\n" + "\n".join(within))
    n_same = n_cols - len(within)
    print(f"{n_same} of {n_cols} columns bit-identical ({a.accounts} accounts)")


if __name__ == "__main__":
    main()
