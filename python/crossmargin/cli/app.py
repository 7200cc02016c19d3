"""The ``crossmargin`` console command: batch runs for a back office, no Python needed.

Exit codes (what a scheduler can rely on):

- 0: done.
- 1: a ``--fail-if-*`` threshold was crossed (the outputs are written).
- 2: bad input or usage: an unknown option, a missing argument, a malformed value, a missing
  or unreadable book / universe, an invalid row, an ``--out`` that is not a folder or that
  holds another book's or universe's outputs, a corrupt ``summary.json``, an unreachable
  ``--scheduler``. One line on stderr, ``error: ...``; no traceback unless ``--debug``.
- 3: internal error (a bug in crossmargin): one line, ``internal error: ...``; the traceback
  with ``--debug``.
- 130: interrupted (Ctrl-C).

``--debug`` (before the command: ``crossmargin --debug margin ...``) adds the traceback and
keeps the exit code. With ``--json`` an error is JSON too: stdout gets
``{"error": {"type": "BookError", "message": "...", ...}}`` with the exception's structured
fields that are set (``field``, ``table``, ``row``, ``other_row``, ``column``; ``file`` and
``line`` when the row is in a CSV file), and stderr the same object as one JSON line.

A ``BookError`` row is the 0-based data row of its table; when the table was read from a CSV
file (``.csv`` or ``.csv.gz``) the message adds ``(line N of FILE)``, N = row + 2 (the
header is line 1).

Every command that writes ``summary.json`` records its ``provenance`` there (version,
command, argv, UTC time, universe path and sha256, price overrides, sha256 of each input
file). A folder whose ``summary.json`` came from a different book or universe is an error
(exit 2) unless ``--overwrite`` (which first removes that run's outputs); runs on the same
inputs (``margin`` then ``stress`` into one folder) merge their summaries.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from crossmargin.cli.venue_import import import_venue
from crossmargin.exceptions import BookError, ConfigError, CrossmarginError

app = typer.Typer(
    name="crossmargin",
    help="Cross-collateralized margin, stress and liquidation cascades over millions of accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Run:
    """Console output of one command: rich progress to stderr, `--quiet` silences it,
    `--json` turns it into JSON lines (stderr) and the summary into JSON (stdout)."""

    def __init__(self, quiet: bool, as_json: bool) -> None:
        self.quiet, self.as_json = quiet, as_json
        self.err = Console(stderr=True, quiet=quiet and not as_json)
        self.out = Console()
        _state["json"] = _state["json"] or as_json

    def note(self, text: str) -> None:
        """A line on stderr for a person (not with --quiet or --json)."""
        if not (self.quiet or self.as_json):
            self.err.print(text, highlight=False, markup=False)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.as_json:
            yield
            print(
                json.dumps({"step": what, "seconds": round(time.perf_counter() - t0, 4)}),
                file=sys.stderr,
            )
            return
        with self.err.status(what):
            yield
        self.err.print(f"[green]✓[/] {what} [dim]({time.perf_counter() - t0:.2f} s)[/]")

    def finish(self, summary: dict[str, Any], title: str) -> None:
        if self.as_json:
            print(json.dumps(summary, indent=2, default=float))
            return
        if self.quiet:
            return
        t = RichTable(title=title)
        t.add_column("measure")
        t.add_column("value", justify="right")
        for k, v in _flat(summary):
            t.add_row(
                k.replace("_", " "),
                f"{v:,.2f}"
                if isinstance(v, float)
                else f"{v:,}"
                if isinstance(v, int) and not isinstance(v, bool)
                else str(v),
            )
        self.out.print(t)


def _flat(d: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            if k != "marks":
                yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


# ---- shared options ----------------------------------------------------------------------
DEMO = "demo"
DEMO_TOML = Path(__file__).parent.parent / "data" / "universe.toml"
# Connect timeout to a --scheduler: an unreachable address is an error in seconds, not 30 s.
CONNECT_TIMEOUT = "5s"

UniverseOpt = Annotated[
    str | None,
    typer.Option(
        "--universe",
        "-u",
        help="Universe TOML, or `demo` for the built-in demo universe. Required.",
        show_default=False,
    ),
]
DemoUniverseOpt = Annotated[
    str | None,
    typer.Option(
        "--universe",
        "-u",
        help="Universe TOML, or `demo` (the default: the built-in demo universe).",
        show_default=False,
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Start --out afresh: remove a previous run's outputs and summary.json (without "
        "it, a folder holding another book's or universe's outputs is an error).",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for outputs.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or tables.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="JSON summary on stdout, JSON-lines log on stderr.")
]
ThreadsOpt = Annotated[int | None, typer.Option(help="Worker threads (default: all cores).")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run on this Dask scheduler (tcp://host:port); BOOK must be a partitioned dataset.",
    ),
]
LocalClusterOpt = Annotated[
    int | None,
    typer.Option(
        "--local-cluster",
        help="Run on a local Dask cluster of N worker processes; BOOK must be partitioned.",
    ),
]
BookArg = Annotated[
    Path,
    typer.Argument(
        help="Book: a folder with balances.* and positions.* (Parquet or CSV), or one file."
    ),
]


def _universe(value: str | None, *, required: bool = True) -> Any:
    """The universe of ``--universe``: a TOML path or ``demo``. Commands that read a book
    need it spelled out (a book margined under the wrong universe is silently wrong)."""
    from crossmargin.universe import Universe

    if value is None:
        if required:
            raise ConfigError(
                "--universe is required: pass a universe TOML (--universe FILE.toml) or "
                "--universe demo for the built-in demo universe",
                field="--universe",
            )
        value = DEMO
    if value == DEMO:
        return Universe.demo()
    try:
        return Universe.from_toml(value)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--universe: {value}: cannot read: {e}", field="--universe") from None


def _universe_source(value: str | None) -> str:
    return "built-in demo universe" if value in (None, DEMO) else str(value)


def _moves(items: list[str] | None, option: str, kind: str = "move") -> dict[str, float]:
    """`BTC=-0.3` pairs → {"BTC": -0.3}; ``kind`` ("move" or "price") names the value in
    errors. A symbol given twice is an error, not last-one-wins."""
    example = "BTC=60000" if kind == "price" else "BTC=-0.3"
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"{option}: {item!r} is not SYMBOL={kind.upper()} (e.g. {example})", field=option
            )
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(
                f"{option}: {value.strip()!r} in {item!r} is not a {kind}", field=option
            ) from None
        if key in out:
            raise ConfigError(f"{option}: {key} given twice", field=option)
        out[key] = number
    return out


def _read(book: Path) -> Any:
    from crossmargin import distributed as dist
    from crossmargin.io import read_book

    return dist.read_partitioned(book) if dist.is_partitioned(book) else read_book(book)


def _reachable(scheduler: str) -> None:
    """A TCP scheduler address that nothing listens on fails here at once (Dask would retry
    until its connect timeout)."""
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(scheduler if "://" in scheduler else f"tcp://{scheduler}")
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise ConfigError(
            f"--scheduler: {scheduler!r} is not an address: {e}", field="--scheduler"
        ) from None
    if parts.scheme != "tcp" or not host or port is None:
        return  # tls://, ucx://, inproc://: left to Dask
    try:
        with socket.create_connection((host, port), timeout=float(CONNECT_TIMEOUT[:-1])):
            pass
    except OSError as e:
        raise ConfigError(
            f"--scheduler: cannot connect to {scheduler}: {e}", field="--scheduler"
        ) from None


@contextmanager
def _cluster(scheduler: str | None, local_cluster: int | None) -> Iterator[Any]:
    """``distributed.connect`` with a short connect timeout to a scheduler, and an
    unreachable scheduler as a one-line error."""
    from crossmargin import distributed as dist

    _state["dask"] = True
    if scheduler is not None:
        _reachable(scheduler)
    with ExitStack() as stack:
        settings: Any = ExitStack()
        if scheduler is not None:
            try:
                import dask

                settings = dask.config.set({"distributed.comm.timeouts.connect": CONNECT_TIMEOUT})
            except ImportError:
                pass  # connect() says what to install
        with settings:
            try:
                client = stack.enter_context(dist.connect(scheduler, local_cluster))
            except OSError as e:
                where = (
                    f"--scheduler: cannot connect to {scheduler}"
                    if scheduler is not None
                    else f"--local-cluster: cannot start {local_cluster} workers"
                )
                raise ConfigError(
                    f"{where}: {e}",
                    field="--scheduler" if scheduler is not None else "--local-cluster",
                ) from None
        yield client


def _write(table: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path)
    return path


def _collateral(universe: Any, book: Any) -> Any:
    """USD value held and borrowed per asset, at the universe's prices."""
    import numpy as np
    import pandas as pd

    a_remap, _ = book.remaps(universe)
    idx = (
        a_remap[book.balances["asset"].codes]
        if len(book.balances["qty"])
        else np.array([], dtype=int)
    )
    usd = (
        book.balances["qty"] * np.array([a.price for a in universe.assets])[idx]
        if len(idx)
        else np.array([])
    )
    n = len(universe.assets)
    held = np.bincount(idx, weights=np.maximum(usd, 0), minlength=n)
    owed = np.bincount(idx, weights=np.minimum(usd, 0), minlength=n)
    return pd.DataFrame(
        {
            "asset": [a.symbol for a in universe.assets],
            "usd_positive": held,
            "usd_borrowed": owed,
            "usd": held + owed,
        }
    )


# ---- provenance and the output folder ----------------------------------------------------
SUMMARY = "summary.json"
# What a run writes into --out (and --overwrite removes): never a book's own files, even when
# --out is the book's folder or a partitioned dataset (part-NNNNN/balances.parquet stays).
OUTPUTS = (
    SUMMARY,
    "report.html",
    "margin.parquet",
    "collateral.parquet",
    "efficiency.parquet",
    "stress.parquet",
    "cascade_events.parquet",
    "cascade_rounds.parquet",
    "liq_prices.parquet",
    "venues.parquet",
    "montecarlo.parquet",
    "montecarlo_paths.parquet",
    "montecarlo_risk.parquet",
    "montecarlo_fund.parquet",
    "montecarlo_markets.parquet",
    "cascade_final/balances.parquet",
    "cascade_final/positions.parquet",
    "part-[0-9]*/margin.parquet",
    "part-[0-9]*/stress_matrix.parquet",
    "part-[0-9]*/cascade_final/balances.parquet",
    "part-[0-9]*/cascade_final/positions.parquet",
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version() -> str:
    import crossmargin

    version = getattr(crossmargin, "__version__", None)
    if version:
        return str(version)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("crossmargin")
    except PackageNotFoundError:
        return "unknown"


def _book_inputs(book: Path) -> dict[str, Any]:
    """Path and sha256 of each input file of a book: a folder's balances.* / positions.*, a
    single file, or a partitioned dataset's manifest."""
    from crossmargin import distributed as dist
    from crossmargin.io import book_files

    if dist.is_partitioned(book):
        manifest = book / dist.MANIFEST
        if not manifest.is_file():
            dist.partitions(book)  # a BookError saying what is wrong with the dataset
        files = {"manifest": manifest}
    else:
        files = book_files(book)
    return {
        "path": str(book.resolve()),
        "sha256": {f.name: _sha256(f) for f in files.values()},
    }


def _provenance(
    command: str, universe: str | None, book: dict[str, Any], **inputs: Any
) -> dict[str, Any]:
    source = DEMO_TOML if universe in (None, DEMO) else Path(str(universe))
    return {
        "crossmargin_version": _version(),
        "command": command,
        "argv": _state["argv"],
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "universe": {
            "path": DEMO if universe in (None, DEMO) else str(source.resolve()),
            "sha256": _sha256(source),
        },
        "book": book,
        **inputs,
    }


def _load_summary(folder: Path, option: str = "--out") -> dict[str, Any] | None:
    path = folder / SUMMARY
    if not path.exists():
        return None
    hint = (
        "pass --overwrite to replace it, or use another folder"
        if option == "--out"
        else "rerun the commands into a fresh folder"
    )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: corrupt summary.json ({e}); {hint}", field=option) from None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path}: corrupt summary.json (not a JSON object); {hint}", field=option)
    return summary


def _inputs(p: Mapping[str, Any]) -> tuple[Any, Any]:
    """What makes two runs comparable: the universe's bytes and the book's."""
    book = p.get("book") or {}
    return (
        (p.get("universe") or {}).get("sha256"),
        json.dumps(book.get("sha256", book.get("synthetic")), sort_keys=True),
    )


def _clear_outputs(out: Path) -> None:
    for pattern in OUTPUTS:
        for f in out.glob(pattern):
            if f.is_file() or f.is_symlink():
                f.unlink()
    for d in [out / "cascade_final", *out.glob("part-[0-9]*/cascade_final")]:
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass


def _start(
    command: str,
    out: Path,
    overwrite: bool,
    universe: str | None,
    book: Path | dict[str, Any],
    **inputs: Any,
) -> dict[str, Any]:
    """Checks ``--out`` before any work and returns this run's provenance: ``--out`` must be
    a folder (or not exist yet), and any summary.json there must come from the same book and
    universe (or ``--overwrite`` removes that run's outputs)."""
    if isinstance(book, Path):
        _state["book"] = book
        book_inputs = _book_inputs(book)
    else:
        book_inputs = {"synthetic": book}
    prov = _provenance(command, universe, book_inputs, **inputs)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder", field="--out")
    if overwrite:
        if out.is_dir():
            _clear_outputs(out)
        return prov
    old = _load_summary(out)
    if old is None:
        return prov
    previous = old.get("provenance")
    if not isinstance(previous, dict) or not previous:
        raise ConfigError(
            f"--out: {out / SUMMARY} holds another run's outputs with no provenance recorded; "
            "pass --overwrite to replace them, or use another folder",
            field="--out",
        )
    mine = _inputs(prov)
    for cmd, p in previous.items():
        theirs = _inputs(p) if isinstance(p, Mapping) else (None, None)
        if theirs != mine:
            what = "universe" if theirs[0] != mine[0] else "book"
            recorded = p.get(what, {}) if isinstance(p, Mapping) else {}
            where = recorded.get("path") if isinstance(recorded, Mapping) else None
            raise ConfigError(
                f"--out: {out} holds the outputs of `{cmd}` on a different {what}"
                + (f" ({where})" if where else "")
                + "; pass --overwrite to replace them, or use another folder",
                field="--out",
            )
    return prov


def _save_summary(out: Path, provenance: Mapping[str, Any], **parts: Any) -> dict[str, Any]:
    """Merges this run's parts and provenance into out/summary.json (checked by ``_start``),
    written atomically."""
    path = out / SUMMARY
    summary = _load_summary(out) or {}
    summary.update(parts)
    recorded = summary.get("provenance")
    recorded = dict(recorded) if isinstance(recorded, Mapping) else {}
    recorded[str(provenance["command"])] = dict(provenance)
    summary["provenance"] = recorded
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SUMMARY}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    os.replace(tmp, path)
    return summary


def _marks(universe: Any) -> dict[str, float]:
    return {m.symbol: m.mark for m in universe.markets}


# ---- commands ----------------------------------------------------------------------------
@app.command()
def demo(
    accounts: Annotated[
        int, typer.Option(min=1, help="Accounts in the synthetic exchange.")
    ] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic exchange.")] = 7,
    out: OutOpt = Path("crossmargin-demo"),
    universe: DemoUniverseOpt = None,
    threads: ThreadsOpt = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report.")] = True,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run everything on a seeded synthetic exchange: margin, capital efficiency, stress under
    historical crash days, a 10 Oct 2025-style cascade on a thin book, liquidation prices; write
    Parquet outputs and an HTML report under --out, and print a summary."""
    from crossmargin.cascade import CascadeConfig, DepthCurve
    from crossmargin.engine import Engine
    from crossmargin.risk.stress import PRESETS, presets
    from crossmargin.synth import generate

    run = Run(quiet, as_json)
    u = _universe(universe, required=False)
    run.note(f"universe: {_universe_source(universe)}")
    engine = Engine(u, threads=threads)
    prov = _start("demo", out, overwrite, universe, {"accounts": accounts, "seed": seed})
    with run.step(f"generating {accounts:,} accounts"):
        book = generate(u, n_accounts=accounts, seed=seed)
    with run.step("margin"):
        t0 = time.perf_counter()
        m = engine.evaluate(book)
        seconds = time.perf_counter() - t0
    with run.step("capital efficiency"):
        eff = engine.capital_efficiency(book)
    with run.step(f"stress: {len(PRESETS)} historical days"):
        st = engine.stress(book, presets(u), insurance_fund=50e6)
    crash = PRESETS["2025-10-10"]
    path = [{k: v * f for k, v in crash.items() if k in u.underlyings} for f in (1 / 3, 2 / 3, 1.0)]
    thin = DepthCurve([(0.002, 2e6), (0.02, 2e6), (0.06, 2e8)])
    with run.step("cascade: 10 Oct 2025-style crash on a thin book"):
        cfg = CascadeConfig(
            path=path,
            liquidity=thin,
            insurance_fund=50e6,
            partial_fraction=0.25,
            target_margin_ratio=0.8,
        )
        cr = engine.cascade(book, cfg)
        cr.check_conservation()
    with run.step("liquidation prices"):
        lp = engine.liquidation_prices(book)
    with run.step(f"writing outputs to {out}"):
        _write(m, out / "margin.parquet")
        _collateral(u, book).to_parquet(out / "collateral.parquet")
        _write(eff.accounts, out / "efficiency.parquet")
        _write(st.scenarios, out / "stress.parquet")
        _write(cr.events, out / "cascade_events.parquet")
        _write(cr.rounds, out / "cascade_rounds.parquet")
        _write(lp, out / "liq_prices.parquet")
        margin_summary = m.summary() | {
            "accounts_per_second": len(m) / seconds if seconds else float("inf")
        }
        summary = _save_summary(
            out,
            prov,
            margin=margin_summary,
            cascade=cr.summary(),
            marks=_marks(u),
            threads=engine.threads,
        )
    if report:
        with run.step("report"):
            from crossmargin.report import build

            summary["report"] = str(build(out, "crossmargin demo").resolve())
    shown = {
        "accounts": len(m),
        "liquidatable_now": margin_summary["liquidatable"],
        "total_im_usd": margin_summary["im"],
        "total_mm_usd": margin_summary["mm"],
        "margin_accounts_per_second": margin_summary["accounts_per_second"],
        "cascade_accounts_liquidated": cr.summary()["accounts_liquidated"],
        "cascade_bad_debt_usd": cr.bad_debt,
        "cascade_rounds": len(cr.rounds),
        "outputs": str(out),
    }
    if report:
        shown["report"] = summary["report"]
    run.finish(shown, "crossmargin demo")


@app.command()
def generate(
    out: Annotated[
        Path, typer.Argument(help="Folder to write balances.parquet and positions.parquet into.")
    ],
    accounts: Annotated[int, typer.Option(min=1, help="Accounts.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 7,
    universe: DemoUniverseOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a seeded synthetic book (retail, whales, market makers, borrowers, isolated
    positions) over a universe."""
    from crossmargin.io import write_book
    from crossmargin.synth import generate as synth

    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"--format: {fmt!r} is not parquet or csv", field="--format")
    run = Run(quiet, as_json)
    u = _universe(universe, required=False)
    run.note(f"universe: {_universe_source(universe)}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder", field="out")
    with run.step(f"generating {accounts:,} accounts"):
        book = synth(u, n_accounts=accounts, seed=seed)
    with run.step(f"writing {out}"):
        write_book(book, out, u, fmt)
    run.finish(
        {
            "accounts": book.n_accounts,
            "balances": len(book.balances["qty"]),
            "positions": len(book.positions["qty"]),
            "out": str(out),
        },
        "generate",
    )


@app.command()
def margin(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    price: Annotated[
        list[str] | None, typer.Option("--price", help="Price override SYMBOL=PRICE (repeatable).")
    ] = None,
    fail_if_liquidatable: Annotated[
        int | None, typer.Option(help="Exit 1 when more accounts than this are liquidatable.")
    ] = None,
    threads: ThreadsOpt = None,
    scheduler: SchedulerOpt = None,
    local_cluster: LocalClusterOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Margin of every account: writes margin.parquet, collateral.parquet, summary.json.
    On a Dask cluster (--scheduler / --local-cluster, BOOK a partitioned dataset): one
    margin.parquet per partition (out/part-NNNNN/) and the exactly merged summary."""
    from crossmargin import distributed as dist
    from crossmargin.engine import Engine

    run = Run(quiet, as_json)
    u = _universe(universe)
    prices = _moves(price, "--price", "price")
    prov = _start("margin", out, overwrite, universe, book, prices=prices)
    if scheduler is not None or local_cluster is not None:
        with run.step(f"margin on Dask over {book}"), _cluster(scheduler, local_cluster) as c:
            sm = dist.evaluate(c, book, u, prices=prices or None, out=out)
        s = sm.summary
        _save_summary(out, prov, margin=s, marks=_marks(u))
        run.finish(s, "margin")
        if fail_if_liquidatable is not None and s["liquidatable"] > fail_if_liquidatable:
            raise typer.Exit(1)
        return
    with run.step(f"reading {book}"):
        b = _read(book)
    with run.step("margin"):
        m = Engine(u, threads=threads).evaluate(b, prices=prices or None)
    with run.step(f"writing {out}"):
        _write(m, out / "margin.parquet")
        _collateral(u, b).to_parquet(out / "collateral.parquet")
        s = m.summary()
        _save_summary(out, prov, margin=s, marks=_marks(u))
    run.finish(s, "margin")
    if fail_if_liquidatable is not None and s["liquidatable"] > fail_if_liquidatable:
        raise typer.Exit(1)


@app.command()
def stress(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    preset: Annotated[
        list[str] | None, typer.Option("--preset", help="Historical day (repeatable); default all.")
    ] = None,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="NAME:BTC=-0.3,ETH=-0.35 (repeatable).")
    ] = None,
    insurance_fund: Annotated[float, typer.Option(help="Insurance fund, USD.")] = 0.0,
    fail_if_bad_debt_exceeds_fund: Annotated[
        bool, typer.Option(help="Exit 1 when a scenario's bad debt exceeds the fund.")
    ] = False,
    threads: ThreadsOpt = None,
    scheduler: SchedulerOpt = None,
    local_cluster: LocalClusterOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Every account under every scenario in one pass: writes stress.parquet (on a Dask
    cluster, --scheduler / --local-cluster, also out/part-NNNNN/stress_matrix.parquet)."""
    from crossmargin import distributed as dist
    from crossmargin.engine import Engine
    from crossmargin.risk.stress import PRESETS
    from crossmargin.risk.stress import preset as load_preset

    run = Run(quiet, as_json)
    u = _universe(universe)
    scenarios: dict[str, Any] = {}
    for name in preset or ([] if scenario else list(PRESETS)):
        if name in scenarios:
            raise ConfigError(f"--preset: {name} given twice", field="--preset")
        scenarios[name] = load_preset(name, u)
    for item in scenario or []:
        name, sep, moves = item.partition(":")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(
                f"--scenario: {item!r} is not NAME:SYMBOL=MOVE,...", field="--scenario"
            )
        if name in scenarios:
            raise ConfigError(
                f"--scenario: {name!r} given twice (scenario names must be unique)",
                field="--scenario",
            )
        scenarios[name] = _moves(moves.split(","), f"--scenario {name}", "move")
    prov = _start("stress", out, overwrite, universe, book, scenarios=scenarios)
    if scheduler is not None or local_cluster is not None:
        with (
            run.step(f"stress on Dask: {len(scenarios)} scenarios"),
            _cluster(scheduler, local_cluster) as c,
        ):
            table = dist.stress(c, book, u, scenarios, insurance_fund=insurance_fund, out=out)
    else:
        with run.step(f"reading {book}"):
            b = _read(book)
        with run.step(f"stress: {len(scenarios)} scenarios"):
            st = Engine(u, threads=threads).stress(b, scenarios, insurance_fund=insurance_fund)
        table = st.scenarios
    with run.step(f"writing {out}"):
        _write(table, out / "stress.parquet")
    df = table.to_pandas()
    s = {
        str(r.scenario): {
            "liquidatable": int(r.liquidatable),
            "bad_debt": float(r.bad_debt),
            "shortfall": float(r.shortfall),
        }
        for r in df.itertuples()
    }
    _save_summary(out, prov, stress=s)
    run.finish(s, "stress")
    if fail_if_bad_debt_exceeds_fund and (df.bad_debt > insurance_fund).any():
        raise typer.Exit(1)


@app.command()
def cascade(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    shock: Annotated[
        list[str] | None,
        typer.Option("--shock", help="Move SYMBOL=MOVE (repeatable), e.g. BTC=-0.3."),
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="A historical day as the shock (see `stress`).")
    ] = None,
    insurance_fund: Annotated[float, typer.Option(help="Insurance fund, USD.")] = 0.0,
    fee: Annotated[float, typer.Option(help="Liquidation fee rate.")] = 0.005,
    partial: Annotated[float, typer.Option(help="Share of a position closed per slice.")] = 0.2,
    liquidity: Annotated[
        str,
        typer.Option(help="sqrt (square-root impact), thin (a depth curve with a gap) or none."),
    ] = "sqrt",
    mode: Annotated[str, typer.Option(help="rounds or events.")] = "rounds",
    deleverage: Annotated[str, typer.Option(help="adl, socialized_loss or none.")] = "adl",
    max_rounds: Annotated[int, typer.Option(help="Stop after this many rounds.")] = 100,
    fail_if_bad_debt_exceeds_fund: Annotated[
        bool, typer.Option(help="Exit 1 when bad debt exceeds the fund.")
    ] = False,
    threads: ThreadsOpt = None,
    scheduler: SchedulerOpt = None,
    local_cluster: LocalClusterOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Liquidation cascade after a shock: writes cascade_events.parquet, cascade_rounds.parquet
    and the final book (cascade_final/; on a Dask cluster, --scheduler / --local-cluster,
    one per partition: out/part-NNNNN/cascade_final/). The events are the same either way."""
    from crossmargin import distributed as dist
    from crossmargin.cascade import CascadeConfig, DepthCurve, NoImpact, SqrtImpact
    from crossmargin.engine import Engine
    from crossmargin.io import write_book
    from crossmargin.risk.stress import preset as load_preset

    models: dict[str, Callable[[], Any]] = {
        "sqrt": SqrtImpact,
        "none": NoImpact,
        "thin": lambda: DepthCurve([(0.002, 2e6), (0.02, 2e6), (0.06, 2e8)]),
    }
    if liquidity not in models:
        raise ConfigError(
            f"--liquidity: {liquidity!r} is not one of {', '.join(models)}", field="--liquidity"
        )
    run = Run(quiet, as_json)
    u = _universe(universe)
    moves = load_preset(preset, u) if preset else {}
    shocks = _moves(shock, "--shock", "move")
    for symbol in shocks:
        if symbol in moves:
            raise ConfigError(
                f"--shock: {symbol} is already moved by --preset {preset} "
                f"({moves[symbol]:+g}); give each symbol once",
                field="--shock",
            )
    moves.update(shocks)
    if not moves:
        raise ConfigError("cascade: give --shock SYMBOL=MOVE or --preset NAME", field="--shock")
    cfg = CascadeConfig(
        shock=moves,
        insurance_fund=insurance_fund,
        liquidation_fee=fee,
        partial_fraction=partial,
        liquidity=models[liquidity](),
        mode=mode,  # type: ignore[arg-type]
        deleverage=deleverage,  # type: ignore[arg-type]
        max_rounds=max_rounds,
    )
    prov = _start("cascade", out, overwrite, universe, book, shock=moves)
    on_dask = scheduler is not None or local_cluster is not None
    if on_dask:
        with run.step(f"cascade on Dask over {book}"), _cluster(scheduler, local_cluster) as c:
            r = dist.cascade(c, book, u, cfg, out=out)
            r.check_conservation()
    else:
        with run.step(f"reading {book}"):
            b = _read(book)
        with run.step("cascade"):
            r = Engine(u, threads=threads).cascade(b, cfg)
            r.check_conservation()
    with run.step(f"writing {out}"):
        _write(r.events, out / "cascade_events.parquet")
        _write(r.rounds, out / "cascade_rounds.parquet")
        if not on_dask:
            write_book(r.final_book, out / "cascade_final", u)
        s = r.summary()
        _save_summary(out, prov, cascade=s, marks=_marks(u))
    run.finish(s, "cascade")
    if fail_if_bad_debt_exceeds_fund and r.uncovered_bad_debt > 0:
        raise typer.Exit(1)


@app.command("liq-prices")
def liq_prices(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    move: Annotated[
        str,
        typer.Option(
            help="underlying (everything on it moves) or mark (only the position's mark)."
        ),
    ] = "underlying",
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Liquidation price of every position: writes liq_prices.parquet."""
    import numpy as np

    from crossmargin.engine import Engine

    run = Run(quiet, as_json)
    u = _universe(universe)
    prov = _start("liq-prices", out, overwrite, universe, book)
    with run.step(f"reading {book}"):
        b = _read(book)
    with run.step("liquidation prices"):
        lp = Engine(u, threads=threads).liquidation_prices(b, move=move)  # type: ignore[arg-type]
    with run.step(f"writing {out}"):
        _write(lp, out / "liq_prices.parquet")
        _save_summary(out, prov, marks=_marks(u))
    finite = np.isfinite(lp.liq_price)
    run.finish(
        {"positions": len(lp), "with_liquidation_price": int(finite.sum())}, "liquidation prices"
    )


@app.command()
def explain(
    book: BookArg,
    account: Annotated[int, typer.Argument(help="The account id to explain.")],
    universe: UniverseOpt = None,
    price: Annotated[
        list[str] | None, typer.Option("--price", help="Price override SYMBOL=PRICE (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One account row by row (standard model): each balance's weighted value, each
    position's notional, bracket, requirement and uPnL, and which margin test failed. Prints
    to stdout (JSON with --json); writes nothing."""
    from crossmargin.engine import Engine

    u = _universe(universe)
    b = _read(book)
    e = Engine(u).explain(b, account, prices=_moves(price, "--price", "price") or None)
    if as_json:
        print(json.dumps(e.to_dict(), indent=2, default=float))
    else:
        print(e)


@app.command("compare-venues")
def compare_venues(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    venue: Annotated[
        list[str] | None,
        typer.Option("--venue", help="A preset of crossmargin.venues (repeatable); default all."),
    ] = None,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The same book under each venue's rules (crossmargin.venues presets at the universe's
    prices): writes venues.parquet (venue, accounts, liquidatable, IM, MM, equity, capital
    efficiency). Symbols map by underlying (crossmargin.venues.map_book): stablecoins 1:1,
    positions keep their base exposure; collateral or markets a venue lacks are left out and
    counted in balances_dropped / positions_dropped."""
    from crossmargin.venues import compare

    run = Run(quiet, as_json)
    u = _universe(universe)
    prov = _start("compare-venues", out, overwrite, universe, book, venues=venue or "all")
    with run.step(f"reading {book}"):
        b = _read(book)
    with run.step(f"margin under {len(venue) if venue else 'every'} venue rule set"):
        table = compare(b, u, venue, threads=threads)
    with run.step(f"writing {out}"):
        _write(table, out / "venues.parquet")
    df = table.to_pandas()
    s = {
        str(r.venue): {
            "accounts": int(r.accounts),
            "liquidatable": int(r.liquidatable),
            "im": float(r.im),
            "mm": float(r.mm),
            "capital_efficiency": float(r.capital_efficiency),
        }
        for r in df.itertuples()
    }
    _save_summary(out, prov, venues=s)
    run.finish(s, "venues")


@app.command()
def report(
    folder: Annotated[
        Path, typer.Argument(help="An output folder of margin / stress / cascade / liq-prices.")
    ],
    title: Annotated[str, typer.Option(help="Report title.")] = "crossmargin report",
    quiet: QuietOpt = False,
) -> None:
    """Build report.html (plots inlined, one file) from an output folder."""
    from crossmargin.report import build

    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder", field="folder")
    _load_summary(folder, "folder")
    path = build(folder, title)  # nothing to report on: a ConfigError naming the folder
    if not quiet:
        print(path.resolve())


@app.command()
def bench(
    sizes: Annotated[
        str, typer.Option(help="Comma-separated book sizes.")
    ] = "10000,100000,1000000",
    out: Annotated[Path, typer.Option(help="Folder for the JSON results.")] = Path(
        "benches/results"
    ),
    readme: Annotated[
        Path | None, typer.Option(help="Also write the tables into this markdown file.")
    ] = None,
) -> None:
    """Engine vs NumPy vs pure Python on the same books; writes JSON and prints the table.
    Runs from a checkout of crossmargin (the runner and the NumPy baseline live in benches/,
    beside the benchmarks, not in the installed package)."""
    try:
        from benches.runner import main as bench_main
    except ImportError:
        raise ConfigError(
            "bench: run from a checkout of crossmargin (benches/ holds the runner): "
            "python -m benches.run",
            field="bench",
        ) from None

    args = ["--sizes", sizes, "--out", str(out)]
    code = bench_main(args + (["--readme", str(readme)] if readme else []))
    raise typer.Exit(code or 0)


@app.command()
def montecarlo(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    paths: Annotated[int, typer.Option("--paths", min=1, help="Number of paths.")] = 1000,
    horizon: Annotated[str, typer.Option(help="Horizon: 1d, 24h, 7d, 1w...")] = "1d",
    steps: Annotated[int, typer.Option(min=1, help="Monitored steps over the horizon.")] = 24,
    model: Annotated[
        str, typer.Option(help="normal, t, garch-t, jump, bootstrap or fhs.")
    ] = "normal",
    returns: Annotated[
        Path | None,
        typer.Option(
            help="Returns table (Parquet/CSV; one column per underlying, optional timestamp): "
            "the rows for bootstrap / fhs, the volatilities and correlations for the others."
        ),
    ] = None,
    frequency: Annotated[
        str | None, typer.Option(help="Period of the --returns rows when it has no timestamp.")
    ] = None,
    vol: Annotated[
        list[str] | None,
        typer.Option("--vol", help="Annualised volatility SYMBOL=VOL (repeatable)."),
    ] = None,
    corr: Annotated[
        list[str] | None,
        typer.Option("--corr", help="Correlation A/B=RHO (repeatable; pairs not given: 0)."),
    ] = None,
    df: Annotated[float, typer.Option(help="Degrees of freedom (t, garch-t).")] = 4.0,
    load_paths: Annotated[
        Path | None,
        typer.Option(help="Use a saved path set (.parquet/.npz) instead of simulating."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the paths.")] = 0,
    insurance_fund: Annotated[float, typer.Option(help="Insurance fund, USD.")] = 0.0,
    fee: Annotated[float, typer.Option(help="Liquidation fee rate.")] = 0.005,
    partial: Annotated[float, typer.Option(help="Share of a position closed per slice.")] = 0.2,
    deleverage: Annotated[str, typer.Option(help="adl, socialized_loss or none.")] = "adl",
    max_rounds: Annotated[int, typer.Option(help="Round limit of each step.")] = 100,
    no_screen: Annotated[
        bool, typer.Option("--no-screen", help="Run the cascade on every path.")
    ] = False,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Monte Carlo cascades (docs/MONTECARLO.md): simulated price paths, the full cascade on
    each, and the loss distribution — VaR / ES, P(fund exhausted), fund size, Cover-1/2.
    Writes montecarlo_paths.parquet (the paths), montecarlo.parquet (one row per path),
    montecarlo_risk.parquet, montecarlo_fund.parquet and montecarlo_markets.parquet."""
    import warnings

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from crossmargin import montecarlo as mc
    from crossmargin.cascade import CascadeConfig
    from crossmargin.engine import Engine

    run = Run(quiet, as_json)
    u = _universe(universe)
    if model not in mc.MODEL_NAMES:
        raise ConfigError(
            f"--model: {model!r} is not one of {', '.join(mc.MODEL_NAMES)}", field="--model"
        )
    cfg = CascadeConfig(
        insurance_fund=insurance_fund,
        liquidation_fee=fee,
        partial_fraction=partial,
        deleverage=deleverage,  # type: ignore[arg-type]
        max_rounds=max_rounds,
    )
    inputs: dict[str, Any] = {
        "model": model,
        "paths": paths,
        "horizon": horizon,
        "steps": steps,
        "seed": seed,
    }
    if returns is not None:
        inputs["returns"] = {"path": str(returns.resolve()), "sha256": _sha256(returns)}
    if load_paths is not None:
        inputs["load_paths"] = {"path": str(load_paths.resolve()), "sha256": _sha256(load_paths)}
    prov = _start("montecarlo", out, overwrite, universe, book, **inputs)
    if load_paths is not None:
        with run.step(f"reading {load_paths}"):
            ps = mc.PathSet.load(load_paths)
    else:
        if model in ("bootstrap", "fhs"):
            if returns is None:
                raise ConfigError(f"--model {model} needs --returns FILE", field="--returns")
            spec: Any = mc.MODEL_NAMES[model](str(returns), frequency=frequency)
        else:
            if vol:
                sig = _moves(vol, "--vol", "volatility")
                names = list(sig)
                rho: Any = {k: v for k, v in _moves(corr, "--corr", "correlation").items()}
            elif returns is not None:
                sig, rho = mc.calibrate(str(returns), frequency)
                names = list(sig)
            else:
                raise ConfigError(
                    f"--model {model}: give --vol SYMBOL=VOL (repeatable) or --returns FILE",
                    field="--vol",
                )
            extra = {"df": df} if model in ("t", "garch-t") else {}
            spec = mc.MODEL_NAMES[model]({n: sig[n] for n in names}, rho or None, **extra)
        with run.step(f"simulating {paths:,} paths × {steps} steps ({model})"):
            ps = mc.simulate(spec, n_paths=paths, horizon=horizon, steps=steps, seed=seed)
    with run.step(f"reading {book}"):
        b = _read(book)
    engine = Engine(u, threads=threads)
    show = not (quiet or as_json)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=run.err,
        disable=not show,
    )
    tasks: dict[str, Any] = {}
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if as_json:
            now = time.perf_counter()
            if done == total or now - last[0] > 2.0:
                last[0] = now
                print(json.dumps({"step": stage, "done": done, "total": total}), file=sys.stderr)
            return
        if stage not in tasks:
            tasks[stage] = bar.add_task(f"{stage} ({len(ps):,} paths)", total=total)
        bar.update(tasks[stage], completed=done)

    t0 = time.perf_counter()
    with bar, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = mc.run(engine, b, ps, cfg, screen=not no_screen, threads=threads, progress=progress)
        s = r.summary()
        risk, fund = r.risk_table(), r.fund_size_curve()
        markets = r.tail_attribution(0.99)
    run.note(f"montecarlo: {time.perf_counter() - t0:.2f} s")
    tail = [w for w in caught if issubclass(w.category, mc.TailWarning)]
    notes = sorted({_one_line(w.message) for w in caught if w not in tail})
    notes += [_one_line(w.message) for w in tail if str(w.message).startswith("summary:")]
    if tail and not any(str(w.message).startswith("summary:") for w in tail):
        notes.append(
            f"{len(tail)} quantile estimate(s) rest on fewer than {mc.stats.MIN_TAIL} tail "
            "paths (see montecarlo_risk.parquet / montecarlo_fund.parquet tail_paths)"
        )
    for n in notes:
        run.note(f"warning: {n}")
    with run.step(f"writing {out}"):
        out.mkdir(parents=True, exist_ok=True)
        ps.save(out / "montecarlo_paths.parquet")
        _write(r.paths, out / "montecarlo.parquet")
        _write(risk, out / "montecarlo_risk.parquet")
        _write(fund, out / "montecarlo_fund.parquet")
        _write(markets, out / "montecarlo_markets.parquet")
        s["warnings"] = notes
        s["paths_model"] = ps.meta.get("model")
        _save_summary(out, prov, montecarlo=s)
    run.finish({k: v for k, v in s.items() if not isinstance(v, list | dict)}, "montecarlo")


app.command("import")(import_venue)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option(help="Show tracebacks of errors (the exit code stays the same).")
    ] = False,
) -> None:
    """crossmargin: cross-collateralized margin, stress and liquidation cascades over millions
    of accounts, with a Rust core."""
    _state["debug"] = _state["debug"] or debug


def _fresh_state(argv: list[str] | None = None) -> dict[str, Any]:
    return {"debug": False, "json": False, "argv": argv, "book": None, "dask": False}


_state: dict[str, Any] = _fresh_state()


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _book_location(e: BookError) -> dict[str, Any]:
    """Where a BookError's row is in the file the CLI read: a CSV line (N = row + 2, after
    the header), or a 0-based Parquet row."""
    book = _state["book"]
    if e.row is None or e.table not in ("balances", "positions") or book is None:
        return {}
    from crossmargin.io import is_csv, table_file

    try:
        from crossmargin import distributed as dist

        if dist.is_partitioned(book):
            where = "of one partition" if _state["dask"] else "across the dataset's partitions"
            return {"note": f"(0-based row {where})"}
        f = table_file(book, e.table)
    except Exception:  # locating is best effort: never hide the error itself
        return {}
    if f is None:
        return {}
    if not is_csv(f):
        return {"note": f"(0-based row of {f})", "file": str(f)}
    other = f"; row {e.other_row} is line {e.other_row + 2}" if e.other_row is not None else ""
    return {
        "note": f"(line {e.row + 2} of {f}{other})",
        "file": str(f),
        "line": e.row + 2,
    }


def _report_error(e: BaseException, kind: str, code: int, message: str | None = None) -> int:
    """Prints one error: a line on stderr, or with --json a JSON object on stdout (and as a
    JSON line on stderr); with --debug the traceback first. Returns the exit code."""
    if _state["debug"]:
        import traceback

        traceback.print_exception(e)
    message = _one_line(e) if message is None else message
    details: dict[str, Any] = {}
    if isinstance(e, BookError):
        where = _book_location(e)
        if where:
            message = f"{message} {where.pop('note')}"
            details = where
    if _state["json"]:
        error: dict[str, Any] = {"type": kind, "message": message}
        for name in ("field", "table", "row", "other_row", "column", "needed", "available"):
            value = getattr(e, name, None)
            if value is not None:
                error[name] = value
        error.update(details)
        doc = json.dumps({"error": error}, default=str)
        print(doc, flush=True)
        print(doc, file=sys.stderr, flush=True)
    else:
        prefix = "internal error" if code == 3 else "error"
        print(f"{prefix}: {message}", file=sys.stderr, flush=True)
    return code


def _is_arrow_error(e: BaseException) -> bool:
    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(e, pa.ArrowException)


def _handle(e: BaseException) -> int:
    """The exit code of an exception escaping a command (see the module docstring)."""
    if isinstance(e, typer.Exit):
        return int(e.exit_code)
    if isinstance(e, typer.Abort | KeyboardInterrupt):
        print("aborted", file=sys.stderr, flush=True)
        return 130
    if isinstance(e, typer.TyperException):  # the bundled click's ClickException / UsageError
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `crossmargin`: typer printed help
            return 2
        message = _one_line(e.format_message())
        ctx = getattr(e, "ctx", None)
        if ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        return _report_error(e, "UsageError", 2, message)
    if isinstance(e, CrossmarginError):
        return _report_error(e, type(e).__name__, 2)
    if isinstance(e, OSError | UnicodeDecodeError) or _is_arrow_error(e):
        # files, folders, sockets: missing, unreadable, not writable, unreachable
        return _report_error(e, type(e).__name__, 2)
    message = f"{type(e).__name__}: {_one_line(e)}"
    if not _state["debug"]:
        message += " (crossmargin --debug ... shows the traceback)"
    return _report_error(e, type(e).__name__, 3, message)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``crossmargin`` script: exits with the code of the module
    docstring's contract (0, 1, 2, 3, 130)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _state.clear()
    _state.update(_fresh_state(args))
    # Before the command runs (a usage error), only the words say whether JSON or a
    # traceback was asked for.
    words = args[: args.index("--")] if "--" in args else args
    _state["json"] = "--json" in words
    command = next((i for i, w in enumerate(words) if not w.startswith("-")), len(words))
    _state["debug"] = "--debug" in words[:command]  # a root option: before the command
    try:
        code = app(args=args, standalone_mode=False, prog_name="crossmargin")
    except SystemExit:
        raise
    except BaseException as e:
        code = _handle(e)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
