"""Errors as the command line reports them, and the exit codes (the contract of
:mod:`crossmargin.cli.app`): a one-line ``error: ...`` on stderr, or with ``--json`` a JSON
object on stdout and the same object as a JSON line on stderr; the traceback first with
``--debug``."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from crossmargin.cli.common import STATE, one_line
from crossmargin.exceptions import BookError, CrossmarginError


def _book_location(e: BookError) -> dict[str, Any]:
    """Where a BookError's row is in the file the CLI read: a CSV line (N = row + 2, after
    the header), or a 0-based Parquet row."""
    book = STATE["book"]
    if e.row is None or e.table not in ("balances", "positions") or book is None:
        return {}
    from crossmargin.io import is_csv, table_file

    try:
        from crossmargin import distributed as dist

        if dist.is_partitioned(book):
            where = "of one partition" if STATE["dask"] else "across the dataset's partitions"
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
    if STATE["debug"]:
        import traceback

        traceback.print_exception(e)
    message = one_line(e) if message is None else message
    details: dict[str, Any] = {}
    if isinstance(e, BookError):
        where = _book_location(e)
        if where:
            message = f"{message} {where.pop('note')}"
            details = where
    if STATE["json"]:
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


def handle(e: BaseException) -> int:
    """The exit code of an exception escaping a command (see the module docstring)."""
    if isinstance(e, typer.Exit):
        return int(e.exit_code)
    if isinstance(e, typer.Abort | KeyboardInterrupt):
        print("aborted", file=sys.stderr, flush=True)
        return 130
    if isinstance(e, typer.TyperException):  # the bundled click's ClickException / UsageError
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `crossmargin`: typer printed help
            return 2
        message = one_line(e.format_message())
        ctx = getattr(e, "ctx", None)
        if ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        return _report_error(e, "UsageError", 2, message)
    if isinstance(e, CrossmarginError):
        return _report_error(e, type(e).__name__, 2)
    if isinstance(e, OSError | UnicodeDecodeError) or _is_arrow_error(e):
        # files, folders, sockets: missing, unreadable, not writable, unreachable
        return _report_error(e, type(e).__name__, 2)
    message = f"{type(e).__name__}: {one_line(e)}"
    if not STATE["debug"]:
        message += " (crossmargin --debug ... shows the traceback)"
    return _report_error(e, type(e).__name__, 3, message)
