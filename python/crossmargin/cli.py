"""The ``crossmargin`` console command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from crossmargin.exceptions import CrossmarginError

app = typer.Typer(
    name="crossmargin",
    help="Cross-collateralized margin over millions of accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """crossmargin: cross-collateralized margin, liquidation cascades and stress over
    millions of accounts, with a Rust core."""


def _universe(path: Path | None) -> Any:
    from crossmargin.universe import Universe

    return Universe.demo() if path is None else Universe.from_toml(path)


def _money(x: float) -> str:
    return f"{x:,.0f}"


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(help="Accounts in the synthetic book.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic book.")] = 7,
    threads: Annotated[
        int | None, typer.Option(help="Worker threads (default: all cores).")
    ] = None,
    universe: Annotated[
        Path | None, typer.Option(help="Universe TOML (default: the built-in demo universe).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Generate a seeded synthetic exchange book, evaluate its margin, print a summary.

    Needs no input: the universe is the built-in one modelled on Binance's published
    brackets and collateral ratios (see examples/universe.toml).
    """
    from crossmargin.engine import Engine
    from crossmargin.synth import generate

    console = Console(stderr=as_json)
    u = _universe(universe)
    t0 = time.perf_counter()
    with console.status(f"generating {accounts:,} accounts"):
        book = generate(u, n_accounts=accounts, seed=seed)
    t1 = time.perf_counter()
    engine = Engine(u, threads=threads)
    engine.evaluate(book)  # first call warms the pool and page-faults the outputs
    t2 = time.perf_counter()
    result = engine.evaluate(book)
    t3 = time.perf_counter()
    s = result.summary()
    s.update(
        generate_seconds=t1 - t0,
        evaluate_seconds=t3 - t2,
        accounts_per_second=len(result) / (t3 - t2) if t3 > t2 else float("inf"),
        threads=engine.threads,
    )
    if as_json:
        print(json.dumps(s, indent=2))
        return
    t = RichTable(title="crossmargin demo — standard cross margin", show_header=True)
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("accounts", f"{s['accounts']:,}")
    t.add_row(
        "balance rows / position rows",
        f"{len(book.balances['qty']):,} / {len(book.positions['qty']):,}",
    )
    t.add_row("liquidatable accounts", f"{s['liquidatable']:,}")
    t.add_row("bankrupt accounts", f"{s['bankrupt']:,}")
    t.add_row("total equity (USD)", _money(s["equity"]))
    t.add_row("total initial margin (USD)", _money(s["im"]))
    t.add_row("total maintenance margin (USD)", _money(s["mm"]))
    t.add_row("maintenance shortfall (USD)", _money(s["maint_shortfall"]))
    t.add_row("threads", str(s["threads"]))
    t.add_row("evaluate time", f"{s['evaluate_seconds'] * 1e3:.1f} ms")
    t.add_row("accounts/s", f"{s['accounts_per_second']:,.0f}")
    console.print(t)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors for bad input, no traceback."""
    try:
        app(args=argv, standalone_mode=True)
    except CrossmarginError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]
