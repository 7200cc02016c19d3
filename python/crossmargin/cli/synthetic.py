"""Commands on a seeded synthetic exchange: ``demo`` (everything on it, with a report) and
``generate`` (write the book)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from crossmargin.cli.common import (
    DemoUniverseOpt,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    Run,
    ThreadsOpt,
    collateral,
    marks,
    universe_of,
    universe_source,
    write,
)
from crossmargin.cli.outdir import save_summary, start
from crossmargin.exceptions import ConfigError


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
    from crossmargin.engine import Engine
    from crossmargin.risk.stress import PRESETS, presets
    from crossmargin.synth import demo_crash, generate

    run = Run(quiet, as_json)
    u = universe_of(universe, required=False)
    run.note(f"universe: {universe_source(universe)}")
    engine = Engine(u, threads=threads)
    prov = start("demo", out, overwrite, universe, {"accounts": accounts, "seed": seed})
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
    with run.step("cascade: 10 Oct 2025-style crash on a thin book"):
        cr = engine.cascade(book, demo_crash(u))
        cr.check_conservation()
    with run.step("liquidation prices"):
        lp = engine.liquidation_prices(book)
    with run.step(f"writing outputs to {out}"):
        write(m, out / "margin.parquet")
        collateral(u, book).to_parquet(out / "collateral.parquet")
        write(eff.accounts, out / "efficiency.parquet")
        write(st.scenarios, out / "stress.parquet")
        write(cr.events, out / "cascade_events.parquet")
        write(cr.rounds, out / "cascade_rounds.parquet")
        write(lp, out / "liq_prices.parquet")
        margin_summary = m.summary() | {
            "accounts_per_second": len(m) / seconds if seconds else float("inf")
        }
        summary = save_summary(
            out,
            prov,
            margin=margin_summary,
            cascade=cr.summary(),
            marks=marks(u),
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
    u = universe_of(universe, required=False)
    run.note(f"universe: {universe_source(universe)}")
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
