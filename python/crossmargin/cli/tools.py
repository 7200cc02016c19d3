"""Commands on outputs and on crossmargin itself: ``report`` (report.html from an output
folder) and ``bench`` (the README's benchmark tables, from a checkout)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crossmargin.cli.common import QuietOpt
from crossmargin.cli.outdir import load_summary
from crossmargin.exceptions import ConfigError


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
    load_summary(folder, "folder")
    path = build(folder, title)  # nothing to report on: a ConfigError naming the folder
    if not quiet:
        print(path.resolve())


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
    kernel_sizes: Annotated[
        str,
        typer.Option(
            help="Comma-separated book sizes measured for the kernel and grouping alone "
            "(e.g. 10000000; no baselines at that size)."
        ),
    ] = "",
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
    if kernel_sizes:
        args += ["--kernel-sizes", kernel_sizes]
    code = bench_main(args + (["--readme", str(readme)] if readme else []))
    raise typer.Exit(code or 0)
