"""``python -m benches.cascade_demo``: the ``crossmargin demo`` cascade on its 1M-account book
(docs/MODEL.md "Liquidation cascades"; issue "1M-account cascade ≤ 2 s").

The book is ``synth.generate(Universe.demo(), n_accounts=N, seed=7)`` (the demo's defaults)
and the cascade the demo's (``synth.demo_crash``): the 10 Oct 2025 crash in three steps
(×1/3, ×2/3, ×1), the thin depth curve, a 50M USD insurance fund, 25 % slices, target margin
ratio 0.8. The book is
built and bound once; the cascade is timed best of ``--repeat`` and the seconds, rounds,
events, accounts evaluated and the load average are printed.

``--save out.npz`` writes every output (events, rounds, final book, ledger totals, bad debt,
fees) column by column; ``--compare ref.npz`` checks them bit for bit against a saved run
(exit status 1 on any difference), so a faster build can be held to an earlier one's output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import crossmargin as cm
import numpy as np
from crossmargin import synth
from crossmargin.book import SymbolColumn
from crossmargin.cascade import CascadeResult


def outputs(r: CascadeResult) -> dict[str, np.ndarray]:
    """Every output of a cascade as named arrays (strings as unicode arrays)."""
    out: dict[str, np.ndarray] = {}
    for prefix, table in (("events", r.events), ("rounds", r.rounds), ("ledger", r.ledger)):
        for name in table.columns:
            out[f"{prefix}.{name}"] = _plain(table[name])
    book = r.final_book
    for prefix, frame in (("balances", book.balances), ("positions", book.positions)):
        for name, col in frame.items():
            out[f"{prefix}.{name}"] = _plain(col)
    out["totals"] = np.array([str(t) for t in (*r._totals[0], *r._totals[1])])
    out["scalars"] = np.array([r.bad_debt, r.fees, r.insurance_fund, r.uncovered_bad_debt])
    return out


def _plain(col: Any) -> np.ndarray:
    """A column as a plain array: a dictionary-encoded one as its codes (the final book's
    are universe indices), objects as text."""
    a = np.asarray(col.codes if isinstance(col, SymbolColumn) else col)
    return a.astype(str) if a.dtype == object else a


def differences(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
    """The names whose arrays differ (bit for bit: floats compared by their bytes)."""
    bad = sorted(set(a) ^ set(b))
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        same = x.shape == y.shape and x.dtype == y.dtype
        if same and x.dtype.kind == "f":
            same = x.tobytes() == y.tobytes()
        elif same:
            same = bool(np.array_equal(x, y))
        if not same:
            bad.append(name)
    return bad


def load() -> str:
    """The 1, 5 and 15 minute load averages (Linux), or "?"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--save", type=Path, default=None, help="write the outputs (.npz)")
    ap.add_argument("--compare", type=Path, default=None, help="check against saved outputs")
    args = ap.parse_args(argv)

    u = cm.Universe.demo()
    engine = cm.Engine(u, threads=args.threads)
    t = time.perf_counter()
    book = synth.generate(u, n_accounts=args.accounts, seed=args.seed)
    engine.evaluate(book)  # binds (groups) the book once
    print(f"book: {args.accounts:,} accounts, built in {time.perf_counter() - t:.1f} s")
    cfg = synth.demo_crash(u)
    times: list[float] = []
    result: Any = None
    for _ in range(args.repeat):
        t = time.perf_counter()
        result = engine.cascade(book, cfg)
        times.append(time.perf_counter() - t)
    assert result is not None
    result.check_conservation()
    print(
        f"cascade: best {min(times):.3f} s of {args.repeat} "
        f"({', '.join(f'{x:.3f}' for x in times)}); threads {engine.threads}; "
        f"rounds {len(result.rounds)}, events {len(result.events)}, "
        f"bad debt {result.bad_debt:,.2f} USD; load {load()}"
    )
    got = outputs(result)
    if args.save:
        np.savez(args.save, **got)
        print(f"saved {len(got)} arrays to {args.save}")
    if args.compare:
        ref = dict(np.load(args.compare))
        bad = differences(ref, got)
        if bad:
            print(f"DIFFERENT from {args.compare}: {', '.join(bad)}")
            return 1
        print(f"bit-identical to {args.compare} ({len(ref)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
