"""``crossmargin watch``: replays a tick file through a live monitor (docs/MODEL.md "Live
monitoring"), with a live terminal table of the riskiest accounts, and writes every level
crossing and the monitor's audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from crossmargin.cli.common import (
    BookArg,
    JsonOpt,
    OutOpt,
    OverwriteOpt,
    QuietOpt,
    Run,
    ThreadsOpt,
    UniverseOpt,
    fail_if,
    universe_of,
    write,
)
from crossmargin.cli.outdir import save_summary, start
from crossmargin.exceptions import ConfigError, PriceError

TicksOpt = Annotated[
    Path,
    typer.Option(
        "--ticks",
        help="Tick file (Parquet or CSV): symbol, price (absolute), optional tick (groups rows).",
    ),
]


def _table(title: str, riskiest: Any) -> Any:
    from rich.table import Table as RichTable

    t = RichTable(title=title)
    for c in ("account", "level", "margin ratio", "equity", "adj. equity maint", "mm"):
        t.add_column(c, justify="left" if c == "level" else "right")
    for r in range(len(riskiest)):
        ratio = float(riskiest.margin_ratio[r])
        t.add_row(
            str(int(riskiest.account[r])),
            str(riskiest.level[r]),
            "inf" if ratio == float("inf") else f"{ratio:.4f}",
            f"{float(riskiest.equity[r]):,.2f}",
            f"{float(riskiest.adj_equity_maint[r]):,.2f}",
            f"{float(riskiest.mm[r]):,.2f}",
        )
    return t


def watch(
    book: BookArg,
    ticks: TicksOpt,
    universe: UniverseOpt = None,
    out: OutOpt = Path("crossmargin-out"),
    margin_call: Annotated[
        float, typer.Option(help="Margin-call level: margin ratio (mm / adj. equity) ≥ this.")
    ] = 0.8,
    top: Annotated[int, typer.Option(help="Rows of the live table (riskiest accounts).")] = 10,
    fail_if_liquidatable: Annotated[
        int | None,
        typer.Option(help="Exit 1 when more accounts than this are liquidatable at the end."),
    ] = None,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Replays a tick file through a live monitor: a live table of the riskiest accounts,
    writes crossings.parquet (every level crossing, by tick), monitor_log.parquet (the audit
    log, replayable) and summary.json."""
    from rich.live import Live

    from crossmargin.monitor import LEVELS, Levels, Monitor, read_ticks
    from crossmargin.table import Table

    run = Run(quiet, as_json)
    if top < 0:
        raise ConfigError(f"--top: {top} must be ≥ 0", field="--top")
    u = universe_of(universe)
    prov = start("watch", out, overwrite, universe, book, ticks=str(ticks))
    b = run.read(book)
    with run.step(f"reading {ticks}"):
        tick_list = read_ticks(ticks)
    with run.step("monitor"):
        mon = Monitor(u, b, levels=Levels(margin_call), threads=threads)
    parts: list[dict[str, Any]] = []
    live = None if (quiet or as_json) else Live(console=run.err, refresh_per_second=8)
    if live is not None:
        live.start()
    try:
        for label, prices in tick_list:
            try:
                crossings = mon.on_prices(prices)
            except PriceError as e:
                raise PriceError(f"{ticks} tick {label}: {e}", field=e.field) from None
            if len(crossings):
                n = len(crossings)
                parts.append(
                    {
                        "seq": np.full(n, mon.seq, dtype=np.int64),
                        "tick": np.array([str(label)] * n, dtype=object),
                        **{c: crossings[c] for c in crossings.columns},
                    }
                )
            if live is not None:
                live.update(_table(f"tick {label}: {len(crossings)} crossings", mon.riskiest(top)))
    finally:
        if live is not None:
            live.stop()
            run.err.line()
    names = ("seq", "tick", "account", "previous", "level", "ratio_before", "ratio_after")
    if parts:
        all_crossings = Table({k: np.concatenate([p[k] for p in parts]) for k in names})
    else:
        empty: dict[str, Any] = {
            "seq": np.zeros(0, dtype=np.int64),
            "tick": np.zeros(0, dtype=object),
            "account": np.zeros(0, dtype=np.int64),
            "previous": np.zeros(0, dtype=object),
            "level": np.zeros(0, dtype=object),
            "ratio_before": np.zeros(0),
            "ratio_after": np.zeros(0),
        }
        all_crossings = Table(empty)
    _, result = mon.snapshot()
    levels = [str(x) for x in all_crossings.level]
    s = {
        "ticks": len(tick_list),
        "crossings": len(all_crossings),
        **{f"crossings_to_{name}": levels.count(name) for name in LEVELS},
        "liquidatable": int(result.liquidatable.sum()),
        "bankrupt": int(result.bankrupt.sum()),
    }
    with run.step(f"writing {out}"):
        write(all_crossings, out / "crossings.parquet")
        write(mon.log(), out / "monitor_log.parquet")
        save_summary(out, prov, watch=s)
    run.finish(s, "watch")
    fail_if(fail_if_liquidatable is not None and s["liquidatable"] > fail_if_liquidatable)
