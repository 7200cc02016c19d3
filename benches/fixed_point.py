"""``python -m benches.fixed_point``: the fixed-point path against the float64 path, as a
ratio in one run (docs/MODEL.md "Fixed-point arithmetic").

One Drift market snapshot (tests/test_drift_exact.py's) as two universes — the same parameters
in float64 and in Drift's fixed point — and one book of N accounts (default 1M; about three
balances and two perp positions each, imf terms on most rows, borrows and P&L of both signs),
grouped once. Each path's ``Engine.evaluate`` is timed in alternation (best of ``--repeat``),
in wall time and in the process's CPU time (every thread; on a shared machine the CPU time
is the steadier measure of the work); the result (accounts/s of each, fixed ÷ float time,
the load average) is printed and written as JSON.

Both paths write into their previous result (``Engine.evaluate(book, out=previous)``, as a
caller re-evaluating one book at new prices does): the timed work is the margin arithmetic,
not the kernel's page faults on 66 MB (float) and 98 MB (fixed: four int64 raw columns more)
of fresh result columns. The same ratio with fresh results each call (``out`` not given) is
reported beside it as ``fresh_*``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import crossmargin as cm
import numpy as np
from crossmargin import venues

SPOT = [
    ("USDC", 6, 999_900, 10_000, 10_000, 10_000, 10_000, 0),
    ("SOL", 9, 150_123_456, 8_000, 9_000, 12_000, 11_000, 3_000),
    ("BTC", 8, 60_000_500_000, 8_000, 9_000, 12_000, 11_000, 105_000),
    ("ETH", 8, 3_000_250_001, 8_000, 9_000, 12_000, 11_000, 25_000),
]
PERP = [
    ("SOL-PERP", 150_100_000, 5_000),
    ("BTC-PERP", 60_010_250_000, 0),
    ("ETH-PERP", 3_001_000_000, 100_000),
]
KEYS = ("symbol", "decimals", "oracle_price", "initial_asset_weight", "maintenance_asset_weight",
        "initial_liability_weight", "maintenance_liability_weight", "imf_factor")  # fmt: skip


def snapshot() -> tuple[list[dict], list[dict]]:
    spot = [dict(zip(KEYS, row, strict=True)) for row in SPOT]
    perp = [
        dict(symbol=s, oracle_price=p, margin_ratio_initial=1_000, margin_ratio_maintenance=500,
             imf_factor=1_000, unrealized_pnl_initial_asset_weight=9_000,
             unrealized_pnl_maintenance_asset_weight=10_000, unrealized_pnl_imf_factor=f)
        for s, p, f in PERP
    ]  # fmt: skip
    return spot, perp


def drift_book(n: int, seed: int = 7) -> cm.Book:
    """n accounts: a USDC balance, two other balances (30 % borrowed), two perp positions."""
    rng = np.random.default_rng(seed)
    syms = np.array([s[0] for s in SPOT])
    price = np.array([s[2] / 1e6 for s in SPOT])
    decimals = np.array([s[1] for s in SPOT])
    acct = np.repeat(np.arange(n), 3)
    asset = np.column_stack(
        [np.zeros(n, int), rng.integers(1, 3, n), np.full(n, 3)]
    ).ravel()  # fmt: skip
    usd = rng.lognormal(8, 2, 3 * n) * np.where(rng.random(3 * n) < 0.7, 1, -1)
    qty = np.round(usd / price[asset] * 10.0 ** decimals[asset]) / 10.0 ** decimals[asset]
    pacct = np.repeat(np.arange(n), 2)
    market = np.column_stack([np.zeros(n, int), rng.integers(1, 3, n)]).ravel()
    mark = np.array([p[1] / 1e6 for p in PERP])[market]
    base = np.round(rng.lognormal(7, 2, 2 * n) / mark * 1e9) / 1e9
    base *= np.where(rng.random(2 * n) < 0.5, 1, -1)
    entry = np.round(mark * rng.uniform(0.7, 1.3, 2 * n), 6)
    order = rng.permutation(3 * n)
    return cm.Book.from_arrays(
        balances={"account": acct[order], "asset": syms[asset][order], "qty": qty[order]},
        positions={"account": pacct, "market": np.array([p[0] for p in PERP])[market],
                   "qty": base, "entry_price": entry},
    )  # fmt: skip


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benches.fixed_point", description=__doc__)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--threads", type=int, default=0, help="0: every core")
    ap.add_argument("--out", type=Path, default=Path("benches/results/fixed_point.json"))
    args = ap.parse_args(argv)
    spot, perp = snapshot()
    engines = {
        a: cm.Engine(venues.drift_universe(spot, perp, arithmetic=a), threads=args.threads or None)
        for a in ("float64", "fixed")
    }
    book = drift_book(args.accounts)
    results = {}
    for a, eng in engines.items():
        book.grouping(eng.universe)  # grouped once, reused by every call
        results[a] = eng.evaluate(book)  # warm; the arrays every timed out= call writes into
    load = os.getloadavg()[0]
    timed = {}
    for fresh in (False, True):
        best = {a: float("inf") for a in engines}
        cpu = {a: float("inf") for a in engines}
        for _ in range(args.repeat):
            for a, eng in engines.items():
                t, c = time.perf_counter(), time.process_time()
                if fresh:
                    eng.evaluate(book)
                else:
                    eng.evaluate(book, out=results[a])
                best[a] = min(best[a], time.perf_counter() - t)
                cpu[a] = min(cpu[a], time.process_time() - c)
        timed[fresh] = best, cpu
    (best, cpu), (best_fresh, cpu_fresh) = timed[False], timed[True]
    out = {
        "accounts": args.accounts,
        "threads": engines["fixed"].threads,
        "repeat": args.repeat,
        "out": "each path writes into its previous result (out=)",
        "float64_s": best["float64"],
        "fixed_s": best["fixed"],
        "float64_accounts_per_s": args.accounts / best["float64"],
        "fixed_accounts_per_s": args.accounts / best["fixed"],
        "fixed_over_float": best["fixed"] / best["float64"],
        "float64_cpu_s": cpu["float64"],
        "fixed_cpu_s": cpu["fixed"],
        "fixed_over_float_cpu": cpu["fixed"] / cpu["float64"],
        "fresh_float64_s": best_fresh["float64"],
        "fresh_fixed_s": best_fresh["fixed"],
        "fresh_fixed_over_float": best_fresh["fixed"] / best_fresh["float64"],
        "fresh_float64_cpu_s": cpu_fresh["float64"],
        "fresh_fixed_cpu_s": cpu_fresh["fixed"],
        "fresh_fixed_over_float_cpu": cpu_fresh["fixed"] / cpu_fresh["float64"],
        "load_average": [load, os.getloadavg()[0]],
    }
    print(json.dumps(out, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
