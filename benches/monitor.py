"""``python -m benches.monitor``: the live monitor's done-when numbers in one run
(docs/MODEL.md "Live monitoring"; issue "Live monitoring").

One synthetic book of N accounts (default 1M; the demo universe plus one perp, XYZUSDT, that
10 % of the accounts hold), grouped once. Measured, best of ``--repeat`` (the tick and its
two baselines interleaved, so that all three see the same load):

- **tick**: ``Monitor.on_prices({"XYZUSDT": p})`` (a new mark each time), against
  ``Engine.evaluate`` of a book of those 10 % accounts alone (grouping reused) and against
  ``Engine.evaluate`` of the whole, already grouped book (both with ``out=``: outputs reused);
- **trades**: ``Monitor.apply`` of 1,000 single-account position changes (random accounts
  and markets; each batch drawn beforehand), µs per account updated, the mean over 20
  batches (amortised: first changes of an account copy its rows);
- **replay**: ``Monitor.replay`` of a log of ``--changes`` row changes (default 1M, in
  batches of 1,000, a tick every 100 batches), checked bit for bit against the live monitor.

Writes ``benches/results/monitor.json`` and prints the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import crossmargin as cm
import numpy as np
from crossmargin import synth

TARGETS = {"tick_over_subset": 3.0, "full_over_tick": 4.0, "trade_us_per_account": 20.0}


def best(f: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def universe() -> cm.Universe:
    u = cm.Universe.demo()
    xyz = cm.Market("XYZUSDT", "perp", "USDT", "XYZ", 100.0, [(math.inf, 0.1, 0.05)])
    return dataclasses.replace(u, markets=[*u.markets, xyz])


def book(u: cm.Universe, n: int, seed: int) -> tuple[cm.Book, np.ndarray]:
    base = synth.generate(cm.Universe.demo(), n_accounts=n, seed=seed)
    rng = np.random.default_rng(seed)
    accounts = base.accounts
    holders = np.sort(rng.choice(accounts, size=n // 10, replace=False))
    b, p = base.balances, base.positions
    names = [m.symbol for m in u.markets]
    k = len(holders)
    positions = {
        "account": np.concatenate([p["account"], holders]),
        "market": np.concatenate([p["market"].symbols(names), np.full(k, "XYZUSDT", dtype=object)]),
        "qty": np.concatenate([p["qty"], rng.normal(0.0, 20.0, k)]),
        "entry_price": np.concatenate([p["entry_price"], rng.uniform(90.0, 110.0, k)]),
        "isolated_margin": np.concatenate([p["isolated_margin"], np.zeros(k)]),
    }
    balances = {
        "account": b["account"],
        "asset": b["asset"].symbols([a.symbol for a in u.assets]),
        "qty": b["qty"],
    }
    return cm.Book.from_arrays(balances, positions), holders


def subset(bk: cm.Book, u: cm.Universe, accounts: np.ndarray) -> cm.Book:
    b, p = bk.balances, bk.positions
    keep_b = np.isin(b["account"], accounts)
    keep_p = np.isin(p["account"], accounts)
    return cm.Book.from_arrays(
        {
            "account": b["account"][keep_b],
            "asset": b["asset"].symbols([a.symbol for a in u.assets])[keep_b],
            "qty": b["qty"][keep_b],
        },
        {
            "account": p["account"][keep_p],
            "market": p["market"].symbols([m.symbol for m in u.markets])[keep_p],
            "qty": p["qty"][keep_p],
            "entry_price": p["entry_price"][keep_p],
            "isolated_margin": p["isolated_margin"][keep_p],
        },
    )


def trades(rng: np.random.Generator, accounts: np.ndarray, u: cm.Universe, n: int) -> dict:
    markets = [m.symbol for m in u.markets if not m.is_option]
    picked = rng.choice(accounts, size=n, replace=False)
    return {
        "account": picked,
        "market": np.array(markets, dtype=object)[rng.integers(0, len(markets), n)],
        "qty": np.round(rng.normal(0.0, 1.0, n), 3),
        "entry_price": np.full(n, 100.0),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("benches") / "results" / "monitor.json")
    args = ap.parse_args(argv)

    u = universe()
    t = time.perf_counter()
    bk, holders = book(u, args.accounts, args.seed)
    print(f"book: {bk!r} ({time.perf_counter() - t:.1f} s)", flush=True)
    engine = cm.Engine(u)
    out_full = engine.evaluate(bk)  # groups once (cached on the book)
    sub = subset(bk, u, holders)
    out_sub = engine.evaluate(sub)

    start = cm.Monitor(u, bk)
    marks = iter(100.0 + 0.01 * i for i in range(1, 10_000_000))

    def tick() -> None:
        start.on_prices({"XYZUSDT": next(marks)})

    # Interleaved, best of each: the three see the same machine load (a shared box drifts).
    runs: dict[str, list[float]] = {"tick": [], "subset": [], "full": []}
    for _ in range(args.repeat):
        runs["tick"].append(best(tick, 1))
        runs["subset"].append(
            best(lambda: engine.evaluate(sub, prices={"XYZUSDT": next(marks)}, out=out_sub), 1)
        )
        runs["full"].append(
            best(lambda: engine.evaluate(bk, prices={"XYZUSDT": next(marks)}, out=out_full), 1)
        )
    t_tick, t_subset, t_full = (min(runs[k]) for k in ("tick", "subset", "full"))
    print(f"tick {t_tick * 1e3:.2f} ms; subset {t_subset * 1e3:.2f} ms; full {t_full * 1e3:.2f} ms")

    rng = np.random.default_rng(args.seed)
    batch = 1_000
    mon = cm.Monitor(u, bk)
    batches = [trades(rng, bk.accounts, u, batch) for _ in range(max(args.repeat, 20))]
    t = time.perf_counter()
    for rows in batches:  # each batch touches fresh accounts: the amortised cost
        mon.apply(positions=rows)
    us = (time.perf_counter() - t) / (len(batches) * batch) * 1e6
    print(f"trades: {us:.2f} µs per account (batches of {batch}, mean of {len(batches)})")

    replayed = cm.Monitor(u, bk)
    t = time.perf_counter()
    for i in range(args.changes // batch):
        replayed.apply(positions=trades(rng, bk.accounts, u, batch))
        if i % 100 == 99:
            replayed.on_prices({"BTC": 50_000.0 + i})
    t_live = time.perf_counter() - t
    log = replayed.log()
    t = time.perf_counter()
    again = cm.Monitor.replay(u, bk, log)
    t_replay = time.perf_counter() - t
    same_log = again.same_log(replayed)
    b1, r1 = again.snapshot()
    b2, r2 = replayed.snapshot()
    same_state = all(
        np.asarray(r1[c]).tobytes() == np.asarray(r2[c]).tobytes() for c in r1.columns
    ) and all(
        np.asarray(b1.positions[c]).tobytes() == np.asarray(b2.positions[c]).tobytes()
        for c in ("account", "qty", "entry_price")
    )
    changes = int(np.isin(log.kind, ["balance", "position"]).sum())
    print(
        f"replay of {changes:,} changes ({len(log):,} log rows): {t_replay:.2f} s "
        f"(live {t_live:.2f} s); bit-identical: log {same_log}, state {same_state}"
    )

    out = {
        "accounts": args.accounts,
        "holders": len(holders),
        "threads": engine.threads,
        "tick_s": t_tick,
        "subset_evaluate_s": t_subset,
        "full_evaluate_s": t_full,
        "tick_over_subset": t_tick / t_subset,
        "full_over_tick": t_full / t_tick,
        "trade_us_per_account": us,
        "trade_batch": batch,
        "replay_changes": changes,
        "replay_log_rows": len(log),
        "replay_s": t_replay,
        "live_s": t_live,
        "replay_bit_identical": bool(same_log and same_state),
        "targets": TARGETS,
        "met": {
            "tick_over_subset": t_tick / t_subset <= TARGETS["tick_over_subset"],
            "full_over_tick": t_full / t_tick >= TARGETS["full_over_tick"],
            "trade_us_per_account": us <= TARGETS["trade_us_per_account"],
            "replay": bool(same_log and same_state),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["met"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
