"""Scenario commands on a book: ``stress`` (every account under every scenario) and
``cascade`` (liquidations after a shock)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from crossmargin.cli.common import (
    BookArg,
    DeleverageOpt,
    FeeOpt,
    InsuranceFundOpt,
    JsonOpt,
    LocalClusterOpt,
    OutOpt,
    OverwriteOpt,
    PartialOpt,
    QuietOpt,
    Run,
    SchedulerOpt,
    ThreadsOpt,
    UniverseOpt,
    cascade_config,
    cluster,
    fail_if,
    marks,
    on_dask,
    pairs,
    rows_summary,
    universe_of,
    write,
)
from crossmargin.cli.outdir import save_summary, start
from crossmargin.exceptions import ConfigError


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
    insurance_fund: InsuranceFundOpt = 0.0,
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
    u = universe_of(universe)
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
        scenarios[name] = pairs(moves.split(","), f"--scenario {name}", "move")
    prov = start("stress", out, overwrite, universe, book, scenarios=scenarios)
    if on_dask(scheduler, local_cluster):
        with (
            run.step(f"stress on Dask: {len(scenarios)} scenarios"),
            cluster(scheduler, local_cluster) as c,
        ):
            table = dist.stress(c, book, u, scenarios, insurance_fund=insurance_fund, out=out)
    else:
        b = run.read(book)
        with run.step(f"stress: {len(scenarios)} scenarios"):
            st = Engine(u, threads=threads).stress(b, scenarios, insurance_fund=insurance_fund)
        table = st.scenarios
    with run.step(f"writing {out}"):
        write(table, out / "stress.parquet")
    fields = {"liquidatable": int, "bad_debt": float, "shortfall": float}
    s = rows_summary(table, "scenario", fields)
    save_summary(out, prov, stress=s)
    run.finish(s, "stress")
    fail_if(
        fail_if_bad_debt_exceeds_fund and any(v["bad_debt"] > insurance_fund for v in s.values())
    )


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
    insurance_fund: InsuranceFundOpt = 0.0,
    fee: FeeOpt = 0.005,
    partial: PartialOpt = 0.2,
    liquidity: Annotated[
        str,
        typer.Option(help="sqrt (square-root impact), thin (a depth curve with a gap) or none."),
    ] = "sqrt",
    mode: Annotated[str, typer.Option(help="rounds or events.")] = "rounds",
    deleverage: DeleverageOpt = "adl",
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
    from crossmargin import synth
    from crossmargin.cascade import NoImpact, SqrtImpact
    from crossmargin.engine import Engine
    from crossmargin.io import write_book
    from crossmargin.risk.stress import preset as load_preset

    models: dict[str, Callable[[], Any]] = {
        "sqrt": SqrtImpact,
        "none": NoImpact,
        "thin": synth.thin_liquidity,
    }
    if liquidity not in models:
        raise ConfigError(
            f"--liquidity: {liquidity!r} is not one of {', '.join(models)}", field="--liquidity"
        )
    run = Run(quiet, as_json)
    u = universe_of(universe)
    moves = load_preset(preset, u) if preset else {}
    shocks = pairs(shock, "--shock", "move")
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
    cfg = cascade_config(
        insurance_fund=insurance_fund,
        fee=fee,
        partial=partial,
        deleverage=deleverage,
        shock=moves,
        liquidity=models[liquidity](),
        mode=mode,
        max_rounds=max_rounds,
    )
    prov = start("cascade", out, overwrite, universe, book, shock=moves)
    dask = on_dask(scheduler, local_cluster)
    if dask:
        with run.step(f"cascade on Dask over {book}"), cluster(scheduler, local_cluster) as c:
            r = dist.cascade(c, book, u, cfg, out=out)
            r.check_conservation()
    else:
        b = run.read(book)
        with run.step("cascade"):
            r = Engine(u, threads=threads).cascade(b, cfg)
            r.check_conservation()
    with run.step(f"writing {out}"):
        write(r.events, out / "cascade_events.parquet")
        write(r.rounds, out / "cascade_rounds.parquet")
        if not dask:
            write_book(r.final_book, out / "cascade_final", u)
        s = r.summary()
        save_summary(out, prov, cascade=s, marks=marks(u))
    run.finish(s, "cascade")
    fail_if(fail_if_bad_debt_exceeds_fund and r.uncovered_bad_debt > 0)
