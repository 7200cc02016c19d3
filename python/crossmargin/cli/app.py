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

The package: this module makes the typer app and registers the commands (``COMMANDS``);
each command group is a module of its own beside it (``synthetic``, ``accounts``,
``scenarios``, ``montecarlo``, ``tools``, ``watch``), sharing ``common`` (the run's state,
the console, options declared once, reading inputs), ``outdir`` (``--out`` and
``summary.json``) and ``errors`` (how errors print, the exit codes). A new command: a
function in a new module (or in its group's), and one line in ``COMMANDS``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from crossmargin.cli import accounts, montecarlo, scenarios, synthetic, tools, watch
from crossmargin.cli.common import STATE, fresh_state
from crossmargin.cli.errors import handle
from crossmargin.cli.venue_import import import_venue
from crossmargin.resources import use_huge_pages

app = typer.Typer(
    name="crossmargin",
    help="Cross-collateralized margin, stress and liquidation cascades over millions of accounts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The commands, in the order `crossmargin --help` lists them: (name, function). The
# function's signature is the command's options (typer), its docstring the help.
COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("demo", synthetic.demo),
    ("generate", synthetic.generate),
    ("margin", accounts.margin),
    ("stress", scenarios.stress),
    ("cascade", scenarios.cascade),
    ("liq-prices", accounts.liq_prices),
    ("explain", accounts.explain),
    ("compare-venues", accounts.compare_venues),
    ("report", tools.report),
    ("bench", tools.bench),
    ("montecarlo", montecarlo.montecarlo),
    ("import", import_venue),
    ("watch", watch.watch),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option(help="Show tracebacks of errors (the exit code stays the same).")
    ] = False,
    huge_pages: Annotated[
        bool,
        typer.Option(
            help="Back large fresh columns with transparent huge pages. Off is faster on a "
            "virtual machine whose balloon reports freed memory to the host "
            "(python -m benches.page_faults measures it)."
        ),
    ] = True,
) -> None:
    """crossmargin: cross-collateralized margin, stress and liquidation cascades over millions
    of accounts, with a Rust core."""
    STATE["debug"] = STATE["debug"] or debug
    use_huge_pages(huge_pages)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``crossmargin`` script: exits with the code of the module
    docstring's contract (0, 1, 2, 3, 130)."""
    args = list(sys.argv[1:] if argv is None else argv)
    STATE.clear()
    STATE.update(fresh_state(args))
    # Before the command runs (a usage error), only the words say whether JSON or a
    # traceback was asked for.
    words = args[: args.index("--")] if "--" in args else args
    STATE["json"] = "--json" in words
    command = next((i for i, w in enumerate(words) if not w.startswith("-")), len(words))
    STATE["debug"] = "--debug" in words[:command]  # a root option: before the command
    try:
        code = app(args=args, standalone_mode=False, prog_name="crossmargin")
    except SystemExit:
        raise
    except BaseException as e:
        code = handle(e)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
