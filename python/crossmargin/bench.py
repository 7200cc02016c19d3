"""One benchmark run: every DESIGN §8 standard-model number, as ratios, on the same books.

    crossmargin bench [--sizes 10000,100000,1000000] [--out benches/results]
    python -m benches.run [--accounts 1000000] [--sizes ...] [--out ...] [--repeat 5]

For each size, on ONE synthetic book (demo universe, ~3 balances and ~4 positions an
account, unsorted rows): the engine's evaluate (grouping reused) on all threads and on one,
the grouping (``Book.from_arrays`` on the raw columns), the NumPy baseline from the raw
columns and with its own mapping reused, the pure-Python reference on a sample of the same
book, and the memory-bandwidth floor (streaming every input column once, with numpy sums,
on one thread and on as many threads as the engine). Times are the best of ``--repeat``
samples (short calls are looped so a sample lasts ≥ 20 ms). Memory: the peak RSS increase
during grouping and during evaluate (Linux VmHWM reset through /proc/self/clear_refs, or a
/proc/self/statm sampler thread where that is not allowed) against ``book.nbytes``.
The engine's numbers are checked against the NumPy baseline and the reference.

Writes ``<out>/<UTC timestamp>.json`` and ``<out>/latest.json`` and prints markdown tables,
ratios first. ``main(argv)`` is the entry point a CLI can call.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import crossmargin as cm
from crossmargin import reference, synth
from crossmargin.numpy_engine import NumpyEngine
from crossmargin.result import MARGIN_COLUMNS

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = Path("benches") / "results"
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# DESIGN §8 targets (2 cores).
TARGETS = {
    "engine_accounts_per_s": 50e6,
    "engine_vs_numpy": 40.0,
    "engine_vs_reference": 500.0,
    "engine_over_floor": 3.0,
    "grouping_ms_per_1m": 50.0,
    "peak_over_book": 2.0,
}


# ---- timing ----------------------------------------------------------------------------
def best_time(fn: Callable[[], Any], repeat: int = 5, min_sample: float = 0.02) -> float:
    """Seconds per call: the minimum over ``repeat`` samples, each looping the call enough
    times to last ``min_sample`` (after one warm-up call that also calibrates)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    number = max(1, int(min_sample / once) + 1) if once < min_sample else 1
    best = once
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def stream_floor(columns: Sequence[np.ndarray], threads: int, repeat: int) -> float:
    """Seconds to read every column once (numpy sums; split over ``threads`` threads)."""
    if threads <= 1:
        return best_time(lambda: [np.add.reduce(c) for c in columns], repeat)
    chunks = [part for c in columns for part in np.array_split(c, threads)]
    with ThreadPoolExecutor(threads) as pool:

        def run() -> None:
            list(pool.map(np.add.reduce, chunks))

        return best_time(run, repeat)


# ---- memory ----------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM")


def _trim() -> None:
    """Hands freed heap memory back to the OS, so RSS deltas see new allocations."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_delta(fn: Callable[[], Any]) -> tuple[int, int, Any, str]:
    """(peak RSS increase during fn, resident increase after it, fn's result, method)."""
    _trim()
    before = _rss()
    if _reset_hwm():
        out = fn()
        peak, method = _hwm(), "VmHWM"
    else:  # sample /proc/self/statm while fn runs (the engine releases the GIL)
        stop, samples = threading.Event(), [before]

        def sample() -> None:
            while not stop.is_set():
                samples.append(_rss())
                time.sleep(0.0005)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            out = fn()
        finally:
            stop.set()
            t.join()
        peak, method = max(*samples, _rss()), "statm sampler"
    return max(peak - before, 0), _rss() - before, out, method


# ---- agreement -------------------------------------------------------------------------
FLOATS = ("equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm", "free_collateral")


def agreement(got: Any, want: Any, rtol: float = 1e-9) -> dict[str, Any]:
    """Largest difference relative to the account's size (its largest amount), and whether
    every column is within ``rtol`` of it (booleans: equal except on ties)."""
    if not np.array_equal(np.asarray(got["account"]), np.asarray(want["account"])):
        return {"ok": False, "max_rel_err": float("inf"), "reason": "account ids differ"}
    w = {k: np.asarray(want[k]) for k in MARGIN_COLUMNS}
    g = {k: np.asarray(got[k]) for k in MARGIN_COLUMNS}
    if not len(w["account"]):
        return {"ok": True, "max_rel_err": 0.0}
    scale = np.maximum(np.max(np.abs(np.stack([w[k] for k in FLOATS])), axis=0), 1e-300)
    err = max(float(np.max(np.abs(g[k] - w[k]) / scale)) for k in FLOATS)
    ties = (np.abs(w["adj_equity_maint"] - w["mm"]) <= 2 * rtol * scale) | (
        np.abs(w["equity"]) <= 2 * rtol * scale
    )
    flags = ((g["liquidatable"] != w["liquidatable"]) | (g["bankrupt"] != w["bankrupt"])) & ~ties
    inf_same = np.array_equal(np.isinf(g["margin_ratio"]), np.isinf(w["margin_ratio"]))
    return {
        "ok": bool(err <= rtol and not flags.any() and inf_same),
        "max_rel_err": err,
        "flag_mismatches": int(flags.sum()),
    }


def _time_prepared(npe: NumpyEngine, book: cm.Book, repeat: int) -> float:
    prepared = npe.prepare(book)
    return best_time(lambda: npe.evaluate_prepared(prepared), repeat)


# ---- one size --------------------------------------------------------------------------
def raw_columns(book: cm.Book) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    b = {k: (v.codes if k == "asset" else v) for k, v in book.balances.items()}
    p = {k: (v.codes if k == "market" else v) for k, v in book.positions.items()}
    return b, p


def sample_book(book: cm.Book, n: int) -> cm.Book:
    if n >= book.n_accounts:
        return book
    cutoff = book.accounts[n - 1]
    b, p = raw_columns(book)
    kb, kp = b["account"] <= cutoff, p["account"] <= cutoff
    return cm.Book.from_arrays(
        balances={k: v[kb] for k, v in b.items()}, positions={k: v[kp] for k, v in p.items()}
    )


def measure_size(
    universe: cm.Universe,
    n: int,
    *,
    repeat: int,
    reference_sample: int,
    threads: int | None,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    log(f"[{n:,} accounts] generating the book")
    book = synth.generate(universe, n_accounts=n, seed=seed)
    b, p = raw_columns(book)
    columns = [*b.values(), *p.values()]
    engine = cm.Engine(universe, threads=threads)
    engine1 = cm.Engine(universe, threads=1)
    npe = NumpyEngine(universe)
    heavy = max(2, min(repeat, 3)) if n >= 500_000 else repeat  # slow baselines at scale
    r: dict[str, Any] = {
        "accounts": book.n_accounts,
        "balance_rows": len(b["qty"]),
        "position_rows": len(p["qty"]),
        "book_bytes": book.nbytes,
        "book_bytes_per_account": book.nbytes / book.n_accounts,
        "engine_threads": engine.threads,
    }

    log(f"[{n:,}] engine")
    t_eng = best_time(lambda: engine.evaluate(book), repeat)
    t_eng1 = best_time(lambda: engine1.evaluate(book), repeat)
    # CPU seconds per wall second while the N-thread engine runs: ≈ threads when it scales,
    # ≈ 1 when it runs serially or other load leaves it one core (see loadavg).
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(max(1, int(0.2 / t_eng))):
        engine.evaluate(book)
    cpu_per_wall = (time.process_time() - c0) / (time.perf_counter() - w0)
    log(f"[{n:,}] grouping")
    t_group = best_time(lambda: cm.Book.from_arrays(balances=b, positions=p), repeat)
    log(f"[{n:,}] numpy")
    t_np = best_time(lambda: npe.evaluate(book), heavy)
    t_np_prep = _time_prepared(npe, book, heavy)
    log(f"[{n:,}] reference on {min(reference_sample, n):,} accounts")
    sample = sample_book(book, reference_sample)
    t_ref = best_time(lambda: reference.evaluate(universe, sample), max(1, min(repeat, 3)), 0.0)
    log(f"[{n:,}] bandwidth floor")
    t_floor1 = stream_floor(columns, 1, repeat)
    t_floor_n = stream_floor(columns, engine.threads, repeat)
    t_floor = min(t_floor1, t_floor_n)  # the fastest way found to read the bytes once

    log(f"[{n:,}] memory and agreement")
    g_peak, g_resident, grouped, method = peak_rss_delta(
        lambda: cm.Book.from_arrays(balances=b, positions=p)
    )
    del grouped
    e_peak, _e_res, res, _ = peak_rss_delta(lambda: engine.evaluate(book))
    result_bytes = sum(v.nbytes for v in res.to_dict().values())
    vs_numpy = agreement(res, npe.evaluate(book))
    vs_reference = agreement(engine.evaluate(sample), reference.evaluate(universe, sample))
    threads_agree = all(
        np.array_equal(res[k], v, equal_nan=True)
        for k, v in engine1.evaluate(book).to_dict().items()
    )
    del res

    na, ns = book.n_accounts, sample.n_accounts
    r.update(
        {
            "engine_s": t_eng,
            "engine_1thread_s": t_eng1,
            "engine_cpu_per_wall": cpu_per_wall,
            "grouped_bytes": int(book._grouped.nbytes),  # the engine's CSR copy
            "grouping_s": t_group,
            "numpy_s": t_np,
            "numpy_prepared_s": t_np_prep,
            "reference_sample_accounts": ns,
            "reference_sample_s": t_ref,
            "floor_1thread_s": t_floor1,
            "floor_nthreads_s": t_floor_n,
            "floor_s": t_floor,
            "engine_accounts_per_s": na / t_eng,
            "engine_1thread_accounts_per_s": na / t_eng1,
            "numpy_accounts_per_s": na / t_np,
            "numpy_prepared_accounts_per_s": na / t_np_prep,
            "reference_accounts_per_s": ns / t_ref,
            "grouping_ms_per_1m_accounts": t_group * 1e3 * 1e6 / na,
            "floor_ns_per_account": t_floor * 1e9 / na,
            "floor_bytes_per_s": book.nbytes / t_floor,
            "memory_method": method,
            "grouping_peak_rss_delta": g_peak,
            "grouping_resident_delta": g_resident,
            "evaluate_peak_rss_delta": e_peak,
            "result_bytes": result_bytes,
            "agree_numpy": vs_numpy,
            "agree_reference": vs_reference,
            "threads_identical": threads_agree,
        }
    )
    # Ratios: how much faster the engine is than each baseline (higher is better), how far
    # it is above the bandwidth floor (lower is better).
    r["ratios"] = {
        "engine_vs_numpy": t_np / t_eng,
        "engine_vs_numpy_prepared": t_np_prep / t_eng,
        "engine_vs_reference": (t_ref / ns) / (t_eng / na),
        "engine_over_floor": t_eng / t_floor,
        "threads_speedup": t_eng1 / t_eng,
        # Book bytes + its grouping + one evaluate, against the book's bytes.
        "peak_over_book": (book.nbytes + g_resident + e_peak) / book.nbytes,
        "grouping_over_engine": t_group / t_eng,
    }
    return r


# ---- report ----------------------------------------------------------------------------
def machine_info(threads: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "engine_threads": threads,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "crossmargin": cm.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None
            )
        with open("/proc/meminfo") as f:
            info["mem_total_bytes"] = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    try:
        root = HERE.parent
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        info["git_dirty"] = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def _x(value: float, key: str, fmt: str = ".1f", unit: str = "×", scale: float = 1.0) -> str:
    """``value / scale`` with ✗ when ``value`` misses its DESIGN §8 target."""
    target = TARGETS[key]
    ok = value <= target if key in LOWER_IS_BETTER else value >= target
    return f"{value / scale:{fmt}}{unit}" + ("" if ok else " ✗")


LOWER_IS_BETTER = {"engine_over_floor", "grouping_ms_per_1m", "peak_over_book"}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    cpu = info.get("cpu_model") or info["machine"]
    load = info.get("loadavg_at_start")
    lines = [
        f"crossmargin {info['crossmargin']} · {cpu} · {info['cpu_count']} cpus · "
        f"{info['engine_threads']} engine threads · numpy {info['numpy']} · "
        f"python {info['python']}" + (f" · load average at start {load[0]:.2f}" if load else ""),
        "",
        "**Ratios** (engine = `Engine.evaluate`, grouping reused; ✗ = misses DESIGN §8)",
        "",
        _row(
            [
                "accounts",
                "engine/NumPy (≥40×)",
                "engine/NumPy prepared",
                "engine/reference (≥500×)",
                "engine ÷ floor (≤3×)",
                "N/1 threads (CPU/wall)",
                "peak/book (≤2×)",
            ]
        ),
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        q = r["ratios"]
        lines.append(
            _row(
                [
                    f"{r['accounts']:,}",
                    _x(q["engine_vs_numpy"], "engine_vs_numpy"),
                    f"{q['engine_vs_numpy_prepared']:.1f}×",
                    _x(q["engine_vs_reference"], "engine_vs_reference", ",.0f"),
                    _x(q["engine_over_floor"], "engine_over_floor"),
                    f"{q['threads_speedup']:.2f}× ({r['engine_cpu_per_wall']:.2f})",
                    _x(q["peak_over_book"], "peak_over_book", ".2f"),
                ]
            )
        )
    lines += [
        "",
        "**Throughput** (M accounts/s, best of repeats; floor = stream the input columns once)",
        "",
        _row(
            [
                "accounts",
                "engine N thr (≥50)",
                "engine 1 thr",
                "NumPy",
                "NumPy prepared",
                "reference (sample)",
                "grouping ms (per 1M, ≤50)",
                "floor ms (N thr / 1 thr)",
                "book B/acct",
                "agrees (max err)",
            ]
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--|",
    ]
    for r in results:
        ok = r["agree_numpy"]["ok"] and r["agree_reference"]["ok"] and r["threads_identical"]
        err = max(r["agree_numpy"]["max_rel_err"], r["agree_reference"]["max_rel_err"])
        lines.append(
            _row(
                [
                    f"{r['accounts']:,}",
                    _x(r["engine_accounts_per_s"], "engine_accounts_per_s", unit="", scale=1e6),
                    f"{r['engine_1thread_accounts_per_s'] / 1e6:.1f}",
                    f"{r['numpy_accounts_per_s'] / 1e6:.2f}",
                    f"{r['numpy_prepared_accounts_per_s'] / 1e6:.2f}",
                    f"{r['reference_accounts_per_s'] / 1e6:.3f} "
                    f"({r['reference_sample_accounts']:,})",
                    f"{r['grouping_s'] * 1e3:.1f} ("
                    + _x(r["grouping_ms_per_1m_accounts"], "grouping_ms_per_1m", ".0f", "")
                    + ")",
                    f"{r['floor_nthreads_s'] * 1e3:.2f} / {r['floor_1thread_s'] * 1e3:.2f}",
                    f"{r['book_bytes_per_account']:.0f}",
                    f"{'yes' if ok else 'NO'} ({err:.1e})",
                ]
            )
        )
    method = results[0]["memory_method"] if results else ""
    lines += [
        "",
        f"**Memory** (MB; peak RSS increase, {method})",
        "",
        "| accounts | book | engine CSR copy | grouping peak / resident | evaluate peak "
        "| result columns |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    mb = 1e6
    for r in results:
        lines.append(
            _row(
                [
                    f"{r['accounts']:,}",
                    f"{r['book_bytes'] / mb:.1f}",
                    f"{r['grouped_bytes'] / mb:.1f}",
                    f"{r['grouping_peak_rss_delta'] / mb:.1f} / "
                    f"{r['grouping_resident_delta'] / mb:.1f}",
                    f"{r['evaluate_peak_rss_delta'] / mb:.1f}",
                    f"{r['result_bytes'] / mb:.1f}",
                ]
            )
        )
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s.replace("_", ""))) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--sizes: {text!r} is not a comma-separated list of integers"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--sizes: need positive account counts")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="crossmargin bench", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--accounts",
        type=lambda s: int(float(s.replace("_", ""))),
        default=1_000_000,
        help="book size when --sizes is not given (default 1,000,000)",
    )
    ap.add_argument("--sizes", type=_sizes, default=None, help="comma-separated book sizes")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    ap.add_argument("--repeat", type=int, default=5, help="samples per measurement (best is kept)")
    ap.add_argument(
        "--reference-sample",
        type=int,
        default=5_000,
        help="accounts the pure-Python reference evaluates (default 5,000)",
    )
    ap.add_argument("--threads", type=int, default=None, help="engine threads (default: all cores)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="also write the tables into this markdown file, between the "
        f"'{README_START}' and '{README_END}' lines",
    )
    ap.add_argument(
        "--from-results",
        type=Path,
        default=None,
        help="measure nothing: print (and --readme) the tables of this results JSON",
    )
    return ap.parse_args(argv)


README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def update_readme(path: Path, table: str, source: str) -> None:
    """Replaces the lines between the bench markers of ``path`` with ``table``."""
    text = path.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path}: no '{README_START}' ... '{README_END}' section to fill")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    note = f"_Generated by `crossmargin bench --readme README.md` from `{source}`._"
    body = f"{README_START}\n{note}\n\n{table}\n{README_END}"
    path.write_text(head + body + tail, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_results is not None:
        saved = json.loads(args.from_results.read_text(encoding="utf-8"))
        table = markdown(saved["results"], saved["machine"])
        print(table)
        if args.readme is not None:
            update_readme(args.readme, table, str(args.from_results))
        return 0
    sizes = args.sizes or [args.accounts]

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    universe = cm.Universe.demo()
    threads = cm.Engine(universe, threads=args.threads).threads
    info = machine_info(threads)
    started = dt.datetime.now(dt.UTC)
    results = [
        measure_size(
            universe,
            n,
            repeat=args.repeat,
            reference_sample=args.reference_sample,
            threads=args.threads,
            seed=args.seed,
            log=log,
        )
        for n in sizes
    ]
    report = {
        "started_utc": started.isoformat(),
        "finished_utc": dt.datetime.now(dt.UTC).isoformat(),
        "argv": list(argv) if argv is not None else sys.argv[1:],
        "model": "standard",
        "universe": "demo",
        "machine": info,
        "targets": TARGETS,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "results": results,
    }
    table = markdown(results, info)
    print(table)
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nprocess max RSS {max_rss / 1e6:.0f} MB (includes book generation)")
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(report, indent=2, allow_nan=True)
        (args.out / f"{stamp}.json").write_text(text + "\n", encoding="utf-8")
        (args.out / "latest.json").write_text(text + "\n", encoding="utf-8")
        log(f"wrote {args.out / (stamp + '.json')} and latest.json")
        if args.readme is not None:
            update_readme(args.readme, table, str(args.out / (stamp + ".json")))
    ok = all(
        r["agree_numpy"]["ok"] and r["agree_reference"]["ok"] and r["threads_identical"]
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())


# ---- compare: a user's own engine against crossmargin -----------------------------------
@dataclass(frozen=True)
class AccountView:
    """One account as plain Python, the way a hand-written engine sees it."""

    account: int
    balances: list[tuple[str, float]]
    positions: list[tuple[str, float, float, float]]  # market, qty, entry_price, isolated_margin


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare` found. Both rates are measured on the same ``accounts`` accounts
    (nothing is extrapolated); ``speedup`` = ``our_accounts_per_second`` /
    ``their_accounts_per_second``."""

    accounts: int
    their_accounts_per_second: float
    our_accounts_per_second: float
    speedup: float
    max_rel_error: dict[str, float]
    disagreements: cm.Table
    mode: str = "per-account"  # or "vectorised"
    book_accounts: int = 0  # accounts in the whole book (``accounts`` is the timed sample)
    their_seconds: float = 0.0  # one pass of yours over the accounts (best of ``repeat``)
    our_seconds: float = 0.0  # one pass of crossmargin over the same accounts
    threads: int = 1  # crossmargin's threads
    repeat: int = 1
    ignored_fields: tuple[str, ...] = ()  # keys you returned that are not result fields

    def __str__(self) -> str:
        sample = (
            f"a random sample of {self.accounts:,} of the book's {self.book_accounts:,} accounts"
            if self.book_accounts > self.accounts
            else f"all {self.accounts:,} accounts of the book"
        )
        if self.mode == "vectorised":
            yours = "your vectorised engine on these accounts' tables"
            ours = "Book.from_arrays + Engine.evaluate on the same tables (grouping included)"
        else:
            yours = "your function, one call per account (AccountView prepared beforehand)"
            ours = "Engine.evaluate on a book of the same accounts (grouped beforehand)"
        ratio = (
            f"crossmargin is {self.speedup:,.1f}× faster"
            if self.speedup >= 1
            else f"crossmargin is {1 / self.speedup:,.1f}× slower"
            if self.speedup > 0
            else "no ratio"
        )
        lines = [
            f"timed on the same accounts: {sample}, best of {self.repeat}",
            f"  yours:       {self.their_accounts_per_second:>14,.0f} accounts/s "
            f"({self.their_seconds * 1e3:,.3f} ms) — {yours}",
            f"  crossmargin: {self.our_accounts_per_second:>14,.0f} accounts/s "
            f"({self.our_seconds * 1e3:,.3f} ms, {self.threads} thread(s)) — {ours}",
            f"  {ratio} on these accounts",
            "max relative difference: "
            + (", ".join(f"{k} {v:.2e}" for k, v in self.max_rel_error.items()) or "-"),
            f"{len(self.disagreements)} disagreement(s)",
        ]
        if self.ignored_fields:
            lines.append(
                "ignored (not MarginResult fields, not checked): " + ", ".join(self.ignored_fields)
            )
        if len(self.disagreements):
            lines.append(self.disagreements.to_pandas().head(20).to_string(index=False))
        return "\n".join(lines)


def account_views(
    universe: cm.Universe, book: cm.Book, accounts: Sequence[int] | None = None
) -> list[AccountView]:
    """The book's accounts (all, or the given ids) as :class:`AccountView` objects."""
    a_names = [a.symbol for a in universe.assets]
    m_names = [m.symbol for m in universe.markets]
    a_remap, m_remap = book.remaps(universe)
    wanted = set(int(a) for a in (accounts if accounts is not None else book.accounts))
    views: dict[int, AccountView] = {a: AccountView(a, [], []) for a in sorted(wanted)}
    b = book.balances
    for acct, code, qty in zip(
        b["account"].tolist(), b["asset"].codes.tolist(), b["qty"].tolist(), strict=True
    ):
        if acct in views:
            views[acct].balances.append((a_names[a_remap[code]], qty))
    p = book.positions
    for acct, code, qty, entry, iso in zip(
        p["account"].tolist(),
        p["market"].codes.tolist(),
        p["qty"].tolist(),
        p["entry_price"].tolist(),
        p["isolated_margin"].tolist(),
        strict=True,
    ):
        if acct in views:
            views[acct].positions.append((m_names[m_remap[code]], qty, entry, iso))
    return list(views.values())


def account_tables(
    universe: cm.Universe, book: cm.Book, accounts: Sequence[int] | np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The rows of the given accounts (all by default) as the two tables a vectorised engine
    takes: ``balances`` (account, asset, qty) and ``positions`` (account, market, qty,
    entry_price, isolated_margin), numpy columns with symbols spelled out (object arrays) —
    the columns :meth:`crossmargin.Book.from_arrays` takes."""
    a_names = [a.symbol for a in universe.assets]
    m_names = [m.symbol for m in universe.markets]
    b, p = book.balances, book.positions
    kb: slice | np.ndarray
    kp: slice | np.ndarray
    if accounts is None:
        kb, kp = slice(None), slice(None)
    else:
        ids = np.asarray(accounts, dtype=np.int64)
        kb, kp = np.isin(b["account"], ids), np.isin(p["account"], ids)
    book.remaps(universe)  # an unknown symbol raises BookError here, naming its row
    bal = {
        "account": np.asarray(b["account"][kb], dtype=np.int64),
        "asset": b["asset"].symbols(a_names)[kb],
        "qty": np.asarray(b["qty"][kb], dtype=np.float64),
    }
    pos = {
        "account": np.asarray(p["account"][kp], dtype=np.int64),
        "market": p["market"].symbols(m_names)[kp],
        **{
            k: np.asarray(p[k][kp], dtype=np.float64)
            for k in ("qty", "entry_price", "isolated_margin")
        },
    }
    return bal, pos


def _result_columns(result: Any) -> dict[str, np.ndarray]:
    """A vectorised engine's result — a mapping of columns, a crossmargin Table, a pandas or
    polars DataFrame or a pyarrow Table — as numpy columns."""
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if hasattr(result, "column_names") and hasattr(result, "column"):  # pyarrow.Table
        return {n: np.asarray(result.column(n)) for n in result.column_names}
    if hasattr(result, "columns") and hasattr(result, "__getitem__"):  # DataFrame, Table
        return {str(c): np.asarray(result[c]) for c in result.columns}
    raise TypeError(
        "compare(vectorised=True): the engine must return a mapping of per-account columns "
        f"(a dict, DataFrame, Arrow table or crossmargin Table), got {type(result).__name__}"
    )


def _align(cols: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised output → rows in ``ids`` order (by its ``account`` column when it has one,
    else rows must already be one per account in ascending id order)."""
    n = len(ids)
    for k, v in cols.items():
        if v.ndim != 1 or len(v) != n:
            raise ValueError(
                f"compare(vectorised=True): column {k!r} has shape {v.shape}; expected one row "
                f"per account ({n})"
            )
    if "account" not in cols:
        return cols
    got = cols["account"].astype(np.int64)
    order = np.argsort(got, kind="stable")
    if not np.array_equal(got[order], ids):
        missing = np.setdiff1d(ids, got)[:10].tolist()
        extra = np.setdiff1d(got, ids)[:10].tolist()
        raise ValueError(
            "compare(vectorised=True): the engine's account column is not one row per account "
            f"given (missing {missing}, unexpected {extra}, or duplicates)"
        )
    return {k: v[order] for k, v in cols.items()}


def compare(
    fn: Callable[..., Any],
    book: cm.Book,
    universe: cm.Universe,
    *,
    vectorised: bool = False,
    sample: int | None = 10_000,
    repeat: int = 3,
    threads: int | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-6,
    seed: int = 0,
    verbose: bool = True,
) -> Comparison:
    """Times your engine and crossmargin on the same accounts and checks your numbers.

    ``fn`` is either

    - a per-account function (default): one :class:`AccountView` in, a dict of any
      :class:`~crossmargin.MarginResult` fields out (e.g. ``{"im": ..., "mm": ...}``),
      called once per account; or
    - with ``vectorised=True``, an engine over whole tables: ``fn(balances, positions)``,
      the two tables of :func:`account_tables` (numpy columns, symbols spelled out — what
      :meth:`crossmargin.Book.from_arrays` takes), returning per-account columns (a dict of
      arrays, a pandas/polars DataFrame, an Arrow table or a crossmargin Table) with an
      ``account`` column, or with rows one per account in ascending id order.

    The accounts: a random sample of ``sample`` accounts of ``book`` (``sample=None``: all).
    Both sides run on exactly those accounts, so the two rates and their ratio are
    like-for-like; nothing is extrapolated. A per-account function gets its
    :class:`AccountView` objects built beforehand, and crossmargin a book of the same
    accounts already grouped (``Engine.evaluate`` is timed); a vectorised engine gets the
    raw tables, and crossmargin is timed from the same tables (``Book.from_arrays`` — the
    grouping — plus ``Engine.evaluate``). Each side: the best of ``repeat`` passes (short
    passes looped to last 20 ms) after a warm-up pass; crossmargin on ``threads`` threads
    (every core by default: pass ``threads=1`` to compare one core with one core).

    Every field you return that is a MarginResult field is checked against crossmargin's:
    ``disagreements`` lists each (account, field) differing by more than ``rtol`` relative
    plus ``atol`` (a missing or NaN value is a disagreement); other keys are listed in
    ``ignored_fields``; returning no MarginResult field at all is an error.

    Example (a vectorised engine; here crossmargin's own NumPy baseline plays yours)::

        import crossmargin as cm
        from crossmargin.bench import compare
        from crossmargin.numpy_engine import NumpyEngine

        npe = NumpyEngine(universe)
        c = compare(lambda b, p: npe.evaluate(cm.Book.from_arrays(b, p)), book, universe,
                    vectorised=True, sample=None)
        c.our_accounts_per_second, c.their_accounts_per_second, c.speedup

    and a per-account one: ``compare(lambda v: {"im": my_im(v)}, book, universe)``.
    """
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat: {repeat!r} must be an integer ≥ 1")
    engine = cm.Engine(universe, threads=threads)
    ids = book.accounts
    if not len(ids):
        raise ValueError("compare: the book has no accounts")
    if sample is not None and sample < len(ids):
        if sample < 1:
            raise ValueError(f"sample: {sample!r} must be ≥ 1 or None")
        ids = np.sort(np.random.default_rng(seed).choice(ids, sample, replace=False))
    ids = np.asarray(ids, dtype=np.int64)
    whole = len(ids) == book.n_accounts
    tables = account_tables(universe, book, None if whole else ids) if vectorised else None
    if tables is not None:
        sub = cm.Book.from_arrays(*tables)
    else:
        sub = book if whole else cm.Book.from_arrays(*account_tables(universe, book, ids))
    if not np.array_equal(sub.accounts, ids):  # cannot happen: every id has a row
        raise AssertionError("compare: the sample's book has other accounts")

    out: list[Any] = [None]
    if tables is not None:
        b, p = tables

        def theirs_pass() -> None:
            out[0] = fn(b, p)

        def ours_pass() -> None:
            engine.evaluate(cm.Book.from_arrays(b, p))
    else:
        views = account_views(universe, book, ids.tolist())

        def theirs_pass() -> None:
            out[0] = [fn(v) for v in views]

        def ours_pass() -> None:
            engine.evaluate(sub)

    their_s = best_time(theirs_pass, repeat - 1)
    our_s = best_time(ours_pass, repeat - 1)
    ours = engine.evaluate(sub)
    n = len(ids)
    their_rate = n / max(their_s, 1e-12)
    our_rate = n / max(our_s, 1e-12)

    if vectorised:
        cols = _align(_result_columns(out[0]), ids)
        returned = set(cols)
    else:
        rows: list[Mapping[str, Any]] = out[0]
        returned = {k for t in rows for k in t}
        cols = {
            f: np.array([t.get(f, np.nan) for t in rows], dtype=np.float64)
            for f in returned
            if f in MARGIN_COLUMNS and f != "account"
        }
    fields = sorted(f for f in returned if f in MARGIN_COLUMNS and f != "account")
    ignored = tuple(sorted(f for f in returned if f not in MARGIN_COLUMNS))
    if not fields:
        raise ValueError(
            f"compare: your engine returned none of the fields it can be checked on "
            f"({', '.join(c for c in MARGIN_COLUMNS if c != 'account')}); "
            f"it returned {sorted(returned)}"
        )
    bad: dict[str, list[Any]] = {
        "account": [],
        "field": [],
        "theirs": [],
        "ours": [],
        "rel_error": [],
    }
    worst: dict[str, float] = {}
    for f in fields:
        got = np.asarray(cols[f], dtype=np.float64)
        want = np.asarray(ours[f], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            diff = np.abs(got - want)
            both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
            diff[both_inf] = 0.0
            rel = diff / np.maximum(np.abs(want), 1e-300)
        rel[np.isnan(rel)] = np.inf  # a missing / NaN value, or inf against a finite one
        off = (~(diff <= rtol * np.abs(want) + atol) | np.isinf(got) | np.isinf(want)) & ~both_inf
        rel[both_inf] = 0.0
        worst[f] = float(rel.max()) if len(rel) else 0.0
        for i in np.flatnonzero(off):
            bad["account"].append(int(ids[i]))
            bad["field"].append(f)
            bad["theirs"].append(float(got[i]))
            bad["ours"].append(float(want[i]))
            bad["rel_error"].append(float(rel[i]))
    result = Comparison(
        accounts=n,
        their_accounts_per_second=their_rate,
        our_accounts_per_second=our_rate,
        speedup=our_rate / their_rate,
        max_rel_error=worst,
        disagreements=cm.Table(
            {
                "account": np.array(bad["account"], dtype=np.int64),
                "field": np.array(bad["field"], dtype=object),
                "theirs": np.array(bad["theirs"]),
                "ours": np.array(bad["ours"]),
                "rel_error": np.array(bad["rel_error"]),
            }
        ),
        mode="vectorised" if vectorised else "per-account",
        book_accounts=book.n_accounts,
        their_seconds=their_s,
        our_seconds=our_s,
        threads=engine.threads,
        repeat=repeat,
        ignored_fields=ignored,
    )
    if verbose:
        print(result)
    return result
