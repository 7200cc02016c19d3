"""One benchmark run: every standard-model performance target, as ratios, on the same books.

    python -m benches.run [--accounts 1000000] [--sizes ...] [--out ...] [--repeat 5]

For each size, on ONE synthetic book (demo universe, ~3 balances and ~4 positions an
account, unsorted rows): the engine's evaluate (grouping reused, the previous result reused
as ``out=``) on all threads and on one, at every SIMD level this CPU runs
(``CROSSMARGIN_SIMD``), and without ``out=`` (fresh columns); the grouping
(``Book.from_arrays`` on the raw columns: integer symbol indices, and apart the same with
string symbols, whose dictionary encoding is the difference), the kernel's layout build,
the NumPy baseline from the raw columns and with its own mapping reused, the pure-Python
reference on a sample of the same book, and the memory-bandwidth floor (streaming every
input column once, with numpy sums,
on one thread and on as many threads as the engine). Times are the best of ``--repeat``
samples (short calls are looped so a sample lasts ≥ 20 ms), except the engine's evaluate
with ``out=`` and the floor: the best of max(15, 3 × ``--repeat``) single calls (the
medians are kept in the JSON as ``engine_median_s`` per level). Memory: the peak RSS increase
during grouping and during evaluate (Linux VmHWM reset through /proc/self/clear_refs, or a
/proc/self/statm sampler thread where that is not allowed) against ``book.nbytes``.
The engine's numbers are checked against the NumPy baseline and the reference.

Writes ``<out>/<UTC timestamp>.json`` and ``<out>/latest.json`` and prints markdown tables,
ratios first. Run from a checkout: ``python -m benches.run``.
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
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import crossmargin as cm
import numpy as np
from crossmargin import reference, synth
from crossmargin.bench import best_time
from crossmargin.result import MARGIN_COLUMNS

from benches.numpy_engine import NumpyEngine

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = Path("benches") / "results"
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# docs/ARCHITECTURE.md "Performance targets" (2 cores).
TARGETS = {
    "engine_accounts_per_s": 100e6,
    "engine_1thread_accounts_per_s": 60e6,
    "engine_vs_numpy": 40.0,
    "engine_vs_reference": 600.0,
    "engine_over_floor": 2.0,
    "grouping_ms_per_1m": 50.0,
    # the book + what building and evaluating add (≤ 1× the book)
    "peak_over_book": 2.0,
    # every position's liquidation and bankruptcy price (move="underlying"), per 1M accounts
    "liq_prices_s_per_1m": 0.5,
    # the demo's cascade (synth.demo_crash: the 10 Oct 2025 crash in three steps on a thin
    # book), per 1M accounts
    "cascade_s_per_1m": 2.0,
}


# ---- timing ----------------------------------------------------------------------------
def call_times(fn: Callable[[], Any], samples: int) -> list[float]:
    """Seconds of each of ``samples`` single calls of ``fn``, after one warm-up call.

    The kernel's and the floor's calls last 10–30 ms at 1M accounts: they are timed one call
    at a time, as a user's repeated ``evaluate(book, out=...)`` runs, not as the mean of a
    loop of calls (``best_time``), whose best of five two-call means sits above the best
    single call on a machine whose speed varies from one call to the next."""
    fn()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def call_samples(repeat: int) -> int:
    """Single calls timed per kernel or floor measurement (at least 15)."""
    return max(15, 3 * repeat)


def time_levels(
    engine: cm.Engine,
    engine1: cm.Engine,
    book: cm.Book,
    out_n: cm.MarginResult,
    out_1: cm.MarginResult,
    repeat: int,
) -> tuple[dict[str, dict[str, float]], str]:
    """``evaluate(book, out=)`` on N threads and on 1 at every SIMD level this CPU runs (best
    and median of single calls, the load when measured), and the default level."""
    levels, default_level = cm._core.simd_levels()
    by_level: dict[str, dict[str, float]] = {}
    saved = os.environ.get("CROSSMARGIN_SIMD")
    try:
        for level in levels:
            os.environ["CROSSMARGIN_SIMD"] = level
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            t_n = call_times(lambda: engine.evaluate(book, out=out_n), call_samples(repeat))
            t_1 = call_times(lambda: engine1.evaluate(book, out=out_1), call_samples(repeat))
            by_level[level] = {
                "engine_s": min(t_n),
                "engine_1thread_s": min(t_1),
                "engine_median_s": statistics.median(t_n),
                "engine_1thread_median_s": statistics.median(t_1),
                "loadavg_1min": load,
            }
    finally:
        if saved is None:
            os.environ.pop("CROSSMARGIN_SIMD", None)
        else:
            os.environ["CROSSMARGIN_SIMD"] = saved
    return by_level, default_level


def stream_floor(columns: Sequence[np.ndarray], threads: int, repeat: int) -> float:
    """Seconds to read every column once (numpy sums; split over ``threads`` threads): the
    best of single calls, as the engine's."""
    if threads <= 1:
        return min(call_times(lambda: [np.add.reduce(c) for c in columns], call_samples(repeat)))
    chunks = [part for c in columns for part in np.array_split(c, threads)]
    with ThreadPoolExecutor(threads) as pool:

        def run() -> None:
            list(pool.map(np.add.reduce, chunks))

        return min(call_times(run, call_samples(repeat)))


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


def _first_rows_call(engine: cm.Engine, b: Any, p: Any) -> tuple[int, int]:
    """(peak, resident) RSS increase of the first liquidation-prices call on a fresh book:
    the CSR grouping that account-by-account models build on first use, and the call."""
    fresh = cm.Book.from_arrays(balances=b, positions=p)
    peak, resident, _, _ = peak_rss_delta(lambda: engine.liquidation_prices(fresh))
    return peak, resident


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


def string_columns(
    universe: cm.Universe, b: dict[str, np.ndarray], p: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw columns with symbols spelled out (object arrays of str)."""
    assets = np.array([a.symbol for a in universe.assets], dtype=object)
    markets = np.array([m.symbol for m in universe.markets], dtype=object)
    return {**b, "asset": assets[b["asset"]]}, {**p, "market": markets[p["market"]]}


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
    view = book.grouping(universe)
    t0 = time.perf_counter()
    view.prepare()
    t_layout = time.perf_counter() - t0
    out_n, out_1 = engine.evaluate(book), engine1.evaluate(book)
    by_level, default_level = time_levels(engine, engine1, book, out_n, out_1, repeat)
    t_eng = by_level[default_level]["engine_s"]
    t_eng1 = by_level[default_level]["engine_1thread_s"]
    t_fresh = best_time(lambda: engine.evaluate(book), repeat)
    # CPU seconds per wall second while the N-thread engine runs: ≈ threads when it scales,
    # ≈ 1 when it runs serially or other load leaves it one core (see loadavg).
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(max(1, int(0.2 / t_eng))):
        engine.evaluate(book, out=out_n)
    cpu_per_wall = (time.process_time() - c0) / (time.perf_counter() - w0)
    log(f"[{n:,}] grouping")
    t_group = best_time(lambda: cm.Book.from_arrays(balances=b, positions=p), repeat)
    sb, sp = string_columns(universe, b, p)
    t_group_str = best_time(lambda: cm.Book.from_arrays(balances=sb, positions=sp), repeat)
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
    # The first evaluate of a fresh grouping: binding, the kernel's layout if the grouping
    # did not build it, the result.
    e_peak, _e_res, res, _ = peak_rss_delta(lambda: engine.evaluate(grouped))
    layout_bytes = grouped.grouping(universe).layout_nbytes
    held_bytes = int(grouped.grouped_nbytes)  # what the grouping keeps (before any CSR)
    # New result memory (the account column is the book's own ids, shared).
    result_bytes = sum(
        v.nbytes for v in res.to_dict().values() if not np.shares_memory(v, grouped.accounts)
    )
    vs_numpy = agreement(res, npe.evaluate(book))
    vs_reference = agreement(engine.evaluate(sample), reference.evaluate(universe, sample))
    threads_agree = all(
        np.array_equal(res[k], v, equal_nan=True)
        for k, v in engine1.evaluate(book).to_dict().items()
    )
    del res

    log(f"[{n:,}] liquidation prices and the demo cascade")
    t_liq = best_time(lambda: engine.liquidation_prices(book), heavy)
    # The CSR grouping the account-by-account models read, built on their first call.
    csr_peak, csr_resident = _first_rows_call(engine, b, p)
    crash = synth.demo_crash(universe)
    last: list[cm.CascadeResult] = []

    def run_cascade() -> None:  # keeps the last result for its rounds and events
        last[:] = [engine.cascade(book, crash)]

    t_cascade = best_time(run_cascade, heavy)
    cascade = last[0]

    na, ns = book.n_accounts, sample.n_accounts
    r.update(
        {
            "engine_s": t_eng,
            "engine_1thread_s": t_eng1,
            "engine_fresh_columns_s": t_fresh,
            "simd_levels": by_level,
            "simd_default": default_level,
            "layout_build_s": t_layout,
            "layout_bytes": layout_bytes,
            "grouping_string_symbols_s": t_group_str,
            "engine_cpu_per_wall": cpu_per_wall,
            "grouped_bytes": held_bytes,  # what the grouping holds: layout and account ids
            # the first liquidation-prices call on a fresh grouping: builds the CSR
            "csr_first_use_peak_rss_delta": csr_peak,
            "csr_first_use_resident_delta": csr_resident,
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
            "engine_fresh_columns_accounts_per_s": na / t_fresh,
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
            "liq_prices_s": t_liq,
            "liq_prices_s_per_1m": t_liq * 1e6 / na,
            "cascade_s": t_cascade,
            "cascade_s_per_1m": t_cascade * 1e6 / na,
            "cascade_rounds": len(cascade.rounds),
            "cascade_events": len(cascade.events),
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
        # The peak of building and evaluating in a process holding only the input columns:
        # the book, then the larger of the grouping's own peak and what it keeps plus the
        # first evaluate's peak, against the book's bytes.
        "peak_over_book": (book.nbytes + max(g_peak, g_resident + e_peak)) / book.nbytes,
        "grouping_over_engine": t_group / t_eng,
    }
    return r


# ---- report ----------------------------------------------------------------------------
def measure_kernel_size(
    universe: cm.Universe,
    n: int,
    *,
    repeat: int,
    threads: int | None,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The kernel alone on a book too large for the baselines (issue #18: "10M the same or
    better"): grouping, ``evaluate(out=)`` on N threads and on 1 at each SIMD level, and the
    stream-once floor, timed as in :func:`measure_size`; no NumPy, reference or risk stages,
    which would take many minutes at this size."""
    log(f"[{n:,} accounts, kernel only] generating the book")
    book = synth.generate(universe, n_accounts=n, seed=seed)
    b, p = raw_columns(book)
    engine = cm.Engine(universe, threads=threads)
    engine1 = cm.Engine(universe, threads=1)
    log(f"[{n:,}] grouping")
    t_group = best_time(
        lambda: cm.Book.from_arrays(balances=b, positions=p), max(1, min(repeat, 3))
    )
    log(f"[{n:,}] engine")
    book.grouping(universe).prepare()
    out_n, out_1 = engine.evaluate(book), engine1.evaluate(book)
    threads_agree = all(np.array_equal(out_n[k], out_1[k], equal_nan=True) for k in out_n.columns)
    by_level, default_level = time_levels(engine, engine1, book, out_n, out_1, repeat)
    log(f"[{n:,}] bandwidth floor")
    columns = [*b.values(), *p.values()]
    t_floor1 = stream_floor(columns, 1, repeat)
    t_floor_n = stream_floor(columns, engine.threads, repeat)
    best = by_level[default_level]
    return {
        "accounts": book.n_accounts,
        "book_bytes": book.nbytes,
        "engine_threads": engine.threads,
        "simd_default": default_level,
        "simd_levels": by_level,
        "threads_identical": threads_agree,
        "engine_accounts_per_s": n / best["engine_s"],
        "engine_1thread_accounts_per_s": n / best["engine_1thread_s"],
        "engine_over_floor": best["engine_s"] / min(t_floor1, t_floor_n),
        "floor_nthreads_s": t_floor_n,
        "floor_1thread_s": t_floor1,
        "grouping_s": t_group,
        "grouping_ms_per_1m_accounts": t_group * 1e3 * 1e6 / n,
    }


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
    """``value / scale`` with ✗ when ``value`` misses its target (``TARGETS``)."""
    target = TARGETS[key]
    ok = value <= target if key in LOWER_IS_BETTER else value >= target
    return f"{value / scale:{fmt}}{unit}" + ("" if ok else " ✗")


LOWER_IS_BETTER = {
    "engine_over_floor",
    "grouping_ms_per_1m",
    "peak_over_book",
    "liq_prices_s_per_1m",
    "cascade_s_per_1m",
}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(
    results: list[dict[str, Any]],
    info: dict[str, Any],
    kernel_results: Sequence[dict[str, Any]] = (),
) -> str:
    cpu = info.get("cpu_model") or info["machine"]
    load = info.get("loadavg_at_start")
    lines = [
        f"crossmargin {info['crossmargin']} · {cpu} · {info['cpu_count']} cpus · "
        f"{info['engine_threads']} engine threads · numpy {info['numpy']} · "
        f"python {info['python']}" + (f" · load average at start {load[0]:.2f}" if load else ""),
        "",
        "**Ratios** (engine = `Engine.evaluate` at the best SIMD level, grouping reused, the "
        "previous result reused as `out=`; ✗ = misses a target of docs/ARCHITECTURE.md, "
        "Performance targets)",
        "",
        _row(
            [
                "accounts",
                "engine/NumPy (≥40×)",
                "engine/NumPy prepared",
                "engine/reference (≥600×)",
                "engine ÷ floor (≤2×)",
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
                "engine N thr (≥100)",
                "engine 1 thr (≥60)",
                "fresh columns N thr",
                "NumPy",
                "NumPy prepared",
                "reference (sample)",
                "grouping ms (per 1M, ≤50)",
                "floor ms (N thr / 1 thr)",
                "book B/acct",
                "agrees (max err)",
            ]
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:--|",
    ]
    for r in results:
        ok = r["agree_numpy"]["ok"] and r["agree_reference"]["ok"] and r["threads_identical"]
        err = max(r["agree_numpy"]["max_rel_err"], r["agree_reference"]["max_rel_err"])
        lines.append(
            _row(
                [
                    f"{r['accounts']:,}",
                    _x(r["engine_accounts_per_s"], "engine_accounts_per_s", unit="", scale=1e6),
                    _x(
                        r["engine_1thread_accounts_per_s"],
                        "engine_1thread_accounts_per_s",
                        unit="",
                        scale=1e6,
                    ),
                    f"{r['engine_fresh_columns_accounts_per_s'] / 1e6:.1f}",
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
    lines += [
        "",
        "**SIMD levels** (`CROSSMARGIN_SIMD`; M accounts/s with `out=`, best of repeats; "
        "1-min load average when measured) and the grouping",
        "",
        "| accounts | level | N threads | 1 thread | load | grouping: int symbols / str "
        "symbols / kernel layout (ms) |",
        "|---:|:--|---:|---:|---:|---:|",
    ]
    for r in results:
        for level, v in r.get("simd_levels", {}).items():
            mark = " (default)" if level == r.get("simd_default") else ""
            lines.append(
                _row(
                    [
                        f"{r['accounts']:,}",
                        level + mark,
                        f"{r['accounts'] / v['engine_s'] / 1e6:.1f}",
                        f"{r['accounts'] / v['engine_1thread_s'] / 1e6:.1f}",
                        f"{v['loadavg_1min']:.2f}",
                        f"{r['grouping_s'] * 1e3:.0f} / {r['grouping_string_symbols_s'] * 1e3:.0f}"
                        f" / {r['layout_build_s'] * 1e3:.0f}",
                    ]
                )
            )
    lines += [
        "",
        "**Risk** (s, best of repeats; per 1M accounts in brackets against the target)",
        "",
        "| accounts | liquidation + bankruptcy prices (≤0.5 s per 1M) "
        "| demo cascade (≤2 s per 1M) | cascade rounds / events |",
        "|---:|---:|---:|---:|",
    ]
    for r in results:
        if "liq_prices_s" not in r:  # results written before these rows existed
            continue
        lines.append(
            _row(
                [
                    f"{r['accounts']:,}",
                    f"{r['liq_prices_s']:.2f} ("
                    + _x(r["liq_prices_s_per_1m"], "liq_prices_s_per_1m", ".2f", "")
                    + ")",
                    f"{r['cascade_s']:.2f} ("
                    + _x(r["cascade_s_per_1m"], "cascade_s_per_1m", ".2f", "")
                    + ")",
                    f"{r['cascade_rounds']} / {r['cascade_events']:,}",
                ]
            )
        )
    if kernel_results:
        lines += [
            "",
            "**Kernel at scale** (`--kernel-sizes`: `Engine.evaluate` with `out=` alone, best "
            "of single calls, and the grouping; no baselines at this size)",
            "",
            "| accounts | level | N threads (≥100) | 1 thread (≥60) | engine ÷ floor (≤2×) "
            "| floor ms (N thr / 1 thr) | grouping ms (per 1M, ≤50) | threads agree | load |",
            "|---:|:--|---:|---:|---:|---:|---:|:--|---:|",
        ]
    for r in kernel_results:
        for level, v in r["simd_levels"].items():
            default = level == r["simd_default"]
            n_rate, one_rate = r["accounts"] / v["engine_s"], r["accounts"] / v["engine_1thread_s"]
            lines.append(
                _row(
                    [
                        f"{r['accounts']:,}",
                        level + (" (default)" if default else ""),
                        _x(n_rate, "engine_accounts_per_s", unit="", scale=1e6)
                        if default
                        else f"{n_rate / 1e6:.1f}",
                        _x(one_rate, "engine_1thread_accounts_per_s", unit="", scale=1e6)
                        if default
                        else f"{one_rate / 1e6:.1f}",
                        _x(r["engine_over_floor"], "engine_over_floor") if default else "",
                        f"{r['floor_nthreads_s'] * 1e3:.1f} / {r['floor_1thread_s'] * 1e3:.1f}",
                        f"{r['grouping_s'] * 1e3:.0f} ("
                        + _x(r["grouping_ms_per_1m_accounts"], "grouping_ms_per_1m", ".0f", "")
                        + ")",
                        "yes" if r["threads_identical"] else "NO",
                        f"{v['loadavg_1min']:.2f}",
                    ]
                )
            )
    method = results[0]["memory_method"] if results else ""
    lines += [
        "",
        f"**Memory** (MB; peak RSS increase, {method}; peak/book = (book + max(grouping "
        "peak, grouping resident + first evaluate peak)) / book; the CSR copy is built by "
        "the first call of a model that reads accounts' rows, e.g. liquidation prices)",
        "",
        "| accounts | book | grouping held (layout + ids) | kernel layout "
        "| grouping peak / resident | first evaluate peak | result columns "
        "| first liquidation prices (builds the CSR): peak / resident |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mb = 1e6
    for r in results:
        lines.append(
            _row(
                [
                    f"{r['accounts']:,}",
                    f"{r['book_bytes'] / mb:.1f}",
                    f"{r['grouped_bytes'] / mb:.1f}",
                    f"{r.get('layout_bytes', 0) / mb:.1f}",
                    f"{r['grouping_peak_rss_delta'] / mb:.1f} / "
                    f"{r['grouping_resident_delta'] / mb:.1f}",
                    f"{r['evaluate_peak_rss_delta'] / mb:.1f}",
                    f"{r['result_bytes'] / mb:.1f}",
                    f"{r.get('csr_first_use_peak_rss_delta', 0) / mb:.1f} / "
                    f"{r.get('csr_first_use_resident_delta', 0) / mb:.1f}",
                ]
            )
        )
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(s.replace("_", ""))) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("need positive account counts")
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
    ap.add_argument(
        "--kernel-sizes",
        type=_sizes,
        default=[],
        help="comma-separated book sizes measured for the kernel and grouping alone "
        "(e.g. 10000000)",
    )
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


def update_readme(path: Path, table: str, source: str, command: str = "crossmargin bench") -> None:
    """Replaces the lines between the bench markers of ``path`` with ``table``."""
    text = path.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise SystemExit(f"{path}: no '{README_START}' ... '{README_END}' section to fill")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    note = f"_Generated by `{command} --readme README.md` from `{source}`._"
    body = f"{README_START}\n{note}\n\n{table}\n{README_END}"
    path.write_text(head + body + tail, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_results is not None:
        saved = json.loads(args.from_results.read_text(encoding="utf-8"))
        table = markdown(saved["results"], saved["machine"], saved.get("kernel_results", []))
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
    kernel_results = [
        measure_kernel_size(
            universe, n, repeat=args.repeat, threads=args.threads, seed=args.seed, log=log
        )
        for n in args.kernel_sizes
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
        "kernel_results": kernel_results,
    }
    table = markdown(results, info, kernel_results)
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
            command = "crossmargin bench" + (
                f" --kernel-sizes {','.join(map(str, args.kernel_sizes))}"
                if args.kernel_sizes
                else ""
            )
            update_readme(args.readme, table, str(args.out / (stamp + ".json")), command)
    ok = all(
        r["agree_numpy"]["ok"] and r["agree_reference"]["ok"] and r["threads_identical"]
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
