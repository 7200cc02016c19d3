"""The ``crossmargin`` console command: batch runs for a back office, no Python needed.

Exit codes: 0 done; 1 a ``--fail-if-*`` threshold was crossed; 2 bad input or usage (a
one-line error, no traceback unless ``--debug``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from crossmargin.exceptions import ConfigError, CrossmarginError

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
UniverseOpt = Annotated[
    Path | None,
    typer.Option("--universe", "-u", help="Universe TOML (default: the built-in demo universe)."),
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


def _universe(path: Path | None) -> Any:
    from crossmargin.universe import Universe

    return Universe.demo() if path is None else Universe.from_toml(path)


def _moves(items: list[str] | None, option: str) -> dict[str, float]:
    """`BTC=-0.3` pairs → {"BTC": -0.3}."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(
                f"{option}: {item!r} is not SYMBOL=MOVE (e.g. BTC=-0.3)", field=option
            ) from None
    return out


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


def _save_summary(out: Path, **parts: Any) -> dict[str, Any]:
    path = out / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary.update(parts)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=float))
    return summary


def _marks(universe: Any) -> dict[str, float]:
    return {m.symbol: m.mark for m in universe.markets}


# ---- commands ----------------------------------------------------------------------------
@app.command()
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts in the synthetic exchange.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic exchange.")] = 7,
    out: OutOpt = Path("crossmargin-demo"),
    universe: UniverseOpt = None,
    threads: ThreadsOpt = None,
    report: Annotated[bool, typer.Option(help="Write the HTML report.")] = True,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run everything on a seeded synthetic exchange: margin, capital efficiency, stress under
    historical crash days, a 10 Oct 2025-style cascade on a thin book, liquidation prices; write
    Parquet outputs and an HTML report under --out, and print a summary."""
    from crossmargin.cascade import CascadeConfig, DepthCurve
    from crossmargin.engine import Engine
    from crossmargin.stress import PRESETS, presets
    from crossmargin.synth import generate

    run = Run(quiet, as_json)
    u = _universe(universe)
    engine = Engine(u, threads=threads)
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
    accounts: Annotated[int, typer.Option(help="Accounts.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed.")] = 7,
    universe: UniverseOpt = None,
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
    u = _universe(universe)
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
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Margin of every account: writes margin.parquet, collateral.parquet, summary.json.
    On a Dask cluster (--scheduler / --local-cluster, BOOK a partitioned dataset): one
    margin.parquet per partition (out/part-NNNNN/) and the exactly merged summary."""
    from crossmargin import distributed as dist
    from crossmargin.engine import Engine
    from crossmargin.io import read_book

    run = Run(quiet, as_json)
    u = _universe(universe)
    if scheduler is not None or local_cluster is not None:
        with run.step(f"margin on Dask over {book}"), dist.connect(scheduler, local_cluster) as c:
            sm = dist.evaluate(c, book, u, prices=_moves(price, "--price") or None, out=out)
        s = sm.summary
        _save_summary(out, margin=s, marks=_marks(u))
        run.finish(s, "margin")
        if fail_if_liquidatable is not None and s["liquidatable"] > fail_if_liquidatable:
            raise typer.Exit(1)
        return
    with run.step(f"reading {book}"):
        b = dist.read_partitioned(book) if dist.is_partitioned(book) else read_book(book)
    with run.step("margin"):
        m = Engine(u, threads=threads).evaluate(b, prices=_moves(price, "--price") or None)
    with run.step(f"writing {out}"):
        _write(m, out / "margin.parquet")
        _collateral(u, b).to_parquet(out / "collateral.parquet")
        s = m.summary()
        _save_summary(out, margin=s, marks=_marks(u))
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
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Every account under every scenario in one pass: writes stress.parquet (on a Dask
    cluster, --scheduler / --local-cluster, also out/part-NNNNN/stress_matrix.parquet)."""
    from crossmargin import distributed as dist
    from crossmargin.engine import Engine
    from crossmargin.io import read_book
    from crossmargin.stress import PRESETS
    from crossmargin.stress import preset as load_preset

    run = Run(quiet, as_json)
    u = _universe(universe)
    scenarios: dict[str, Any] = {}
    for name in preset or ([] if scenario else list(PRESETS)):
        scenarios[name] = load_preset(name, u)
    for item in scenario or []:
        name, sep, moves = item.partition(":")
        if not sep:
            raise ConfigError(
                f"--scenario: {item!r} is not NAME:SYMBOL=MOVE,...", field="--scenario"
            )
        scenarios[name] = _moves(moves.split(","), "--scenario")
    if scheduler is not None or local_cluster is not None:
        with (
            run.step(f"stress on Dask: {len(scenarios)} scenarios"),
            dist.connect(scheduler, local_cluster) as c,
        ):
            table = dist.stress(c, book, u, scenarios, insurance_fund=insurance_fund, out=out)
    else:
        with run.step(f"reading {book}"):
            b = dist.read_partitioned(book) if dist.is_partitioned(book) else read_book(book)
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
    _save_summary(out, stress=s)
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
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Liquidation cascade after a shock: writes cascade_events.parquet, cascade_rounds.parquet
    and the final book (cascade_final/; on a Dask cluster, --scheduler / --local-cluster,
    one per partition: out/part-NNNNN/cascade_final/). The events are the same either way."""
    from crossmargin import distributed as dist
    from crossmargin.cascade import CascadeConfig, DepthCurve, NoImpact, SqrtImpact
    from crossmargin.engine import Engine
    from crossmargin.io import read_book, write_book
    from crossmargin.stress import preset as load_preset

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
    moves.update(_moves(shock, "--shock"))
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
    on_dask = scheduler is not None or local_cluster is not None
    if on_dask:
        with run.step(f"cascade on Dask over {book}"), dist.connect(scheduler, local_cluster) as c:
            r = dist.cascade(c, book, u, cfg, out=out)
            r.check_conservation()
    else:
        with run.step(f"reading {book}"):
            b = dist.read_partitioned(book) if dist.is_partitioned(book) else read_book(book)
        with run.step("cascade"):
            r = Engine(u, threads=threads).cascade(b, cfg)
            r.check_conservation()
    with run.step(f"writing {out}"):
        _write(r.events, out / "cascade_events.parquet")
        _write(r.rounds, out / "cascade_rounds.parquet")
        if not on_dask:
            write_book(r.final_book, out / "cascade_final", u)
        s = r.summary()
        _save_summary(out, cascade=s, marks=_marks(u))
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
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Liquidation price of every position: writes liq_prices.parquet."""
    import numpy as np

    from crossmargin.engine import Engine
    from crossmargin.io import read_book

    run = Run(quiet, as_json)
    u = _universe(universe)
    with run.step(f"reading {book}"):
        b = read_book(book)
    with run.step("liquidation prices"):
        lp = Engine(u, threads=threads).liquidation_prices(b, move=move)  # type: ignore[arg-type]
    with run.step(f"writing {out}"):
        _write(lp, out / "liq_prices.parquet")
        _save_summary(out, marks=_marks(u))
    finite = np.isfinite(lp.liq_price)
    run.finish(
        {"positions": len(lp), "with_liquidation_price": int(finite.sum())}, "liquidation prices"
    )


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
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The same book under each venue's rules (crossmargin.venues presets at the universe's
    prices): writes venues.parquet (venue, accounts, liquidatable, IM, MM, equity, capital
    efficiency). Symbols map by underlying (crossmargin.venues.map_book): stablecoins 1:1,
    positions keep their base exposure; collateral or markets a venue lacks are left out and
    counted in balances_dropped / positions_dropped."""
    from crossmargin.io import read_book
    from crossmargin.venues import compare

    run = Run(quiet, as_json)
    u = _universe(universe)
    with run.step(f"reading {book}"):
        b = read_book(book)
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
    _save_summary(out, venues=s)
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
    try:
        path = build(folder, title)
    except FileNotFoundError as e:
        raise ConfigError(str(e), field="folder") from None
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
    """Engine vs NumPy vs pure Python on the same books; writes JSON and prints the table."""
    from crossmargin.bench import main as bench_main

    args = ["--sizes", sizes, "--out", str(out)]
    code = bench_main(args + (["--readme", str(readme)] if readme else []))
    raise typer.Exit(code or 0)


@app.callback()
def _root(debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False) -> None:
    """crossmargin: cross-collateralized margin, stress and liquidation cascades over millions
    of accounts, with a Rust core."""
    _state["debug"] = debug


_state: dict[str, bool] = {"debug": False}


def main(argv: list[str] | None = None) -> None:
    """Entry point: a one-line error and exit code 2 for bad input."""
    try:
        app(args=argv, standalone_mode=False)
    except CrossmarginError as e:
        if _state["debug"]:
            raise
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise


__all__ = ["app", "main"]
