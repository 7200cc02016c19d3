"""Per-account commands on a book: ``margin``, ``liq-prices``, ``explain`` and
``compare-venues``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from crossmargin.cli.common import (
    BookArg,
    JsonOpt,
    LocalClusterOpt,
    OutOpt,
    OverwriteOpt,
    PriceOpt,
    QuietOpt,
    Run,
    SchedulerOpt,
    ThreadsOpt,
    UniverseOpt,
    cluster,
    collateral,
    fail_if,
    marks,
    on_dask,
    pairs,
    read_book_arg,
    rows_summary,
    universe_of,
    write,
)
from crossmargin.cli.outdir import save_summary, start


def margin(
    book: BookArg,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    price: PriceOpt = None,
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
    u = universe_of(universe)
    prices = pairs(price, "--price", "price")
    prov = start("margin", out, overwrite, universe, book, prices=prices)
    if on_dask(scheduler, local_cluster):
        with run.step(f"margin on Dask over {book}"), cluster(scheduler, local_cluster) as c:
            s = dist.evaluate(c, book, u, prices=prices or None, out=out).summary
        save_summary(out, prov, margin=s, marks=marks(u))
    else:
        b = run.read(book)
        with run.step("margin"):
            m = Engine(u, threads=threads).evaluate(b, prices=prices or None)
        with run.step(f"writing {out}"):
            write(m, out / "margin.parquet")
            collateral(u, b).to_parquet(out / "collateral.parquet")
            s = m.summary()
            save_summary(out, prov, margin=s, marks=marks(u))
    run.finish(s, "margin")
    fail_if(fail_if_liquidatable is not None and s["liquidatable"] > fail_if_liquidatable)


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
    u = universe_of(universe)
    prov = start("liq-prices", out, overwrite, universe, book)
    b = run.read(book)
    with run.step("liquidation prices"):
        lp = Engine(u, threads=threads).liquidation_prices(b, move=move)  # type: ignore[arg-type]
    with run.step(f"writing {out}"):
        write(lp, out / "liq_prices.parquet")
        save_summary(out, prov, marks=marks(u))
    finite = np.isfinite(lp.liq_price)
    run.finish(
        {"positions": len(lp), "with_liquidation_price": int(finite.sum())}, "liquidation prices"
    )


def explain(
    book: BookArg,
    account: Annotated[int, typer.Argument(help="The account id to explain.")],
    universe: UniverseOpt = None,
    price: PriceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One account row by row (standard model): each balance's weighted value, each
    position's notional, bracket, requirement and uPnL, and which margin test failed. Prints
    to stdout (JSON with --json); writes nothing."""
    from crossmargin.engine import Engine

    u = universe_of(universe)
    b = read_book_arg(book)
    e = Engine(u).explain(b, account, prices=pairs(price, "--price", "price") or None)
    if as_json:
        print(json.dumps(e.to_dict(), indent=2, default=float))
    else:
        print(e)


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
    u = universe_of(universe)
    prov = start("compare-venues", out, overwrite, universe, book, venues=venue or "all")
    b = run.read(book)
    with run.step(f"margin under {len(venue) if venue else 'every'} venue rule set"):
        table = compare(b, u, venue, threads=threads)
    with run.step(f"writing {out}"):
        write(table, out / "venues.parquet")
    fields = {"accounts": int, "liquidatable": int, "im": float, "mm": float}
    s = rows_summary(table, "venue", fields | {"capital_efficiency": float})
    save_summary(out, prov, venues=s)
    run.finish(s, "venues")
