"""What every command shares: the run's state, the console (:class:`Run`), the options
declared once (``--universe``, ``--out``, ``--json``, ...) and the reading of their values
(universe, ``SYMBOL=VALUE`` lists, books, Dask clusters), and the writing of tables."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from crossmargin.exceptions import ConfigError


def fresh_state(argv: list[str] | None = None) -> dict[str, Any]:
    """The state of one invocation: ``--debug`` / ``--json`` asked for, the argv (for the
    provenance), the book read (to locate a bad row in its file), Dask in use."""
    return {"debug": False, "json": False, "argv": argv, "book": None, "dask": False}


STATE: dict[str, Any] = fresh_state()


def one_line(text: object) -> str:
    return " ".join(str(text).split()) or "(no message)"


class Run:
    """Console output of one command: rich progress to stderr, `--quiet` silences it,
    `--json` turns it into JSON lines (stderr) and the summary into JSON (stdout)."""

    def __init__(self, quiet: bool, as_json: bool) -> None:
        self.quiet, self.as_json = quiet, as_json
        self.err = Console(stderr=True, quiet=quiet and not as_json)
        self.out = Console()
        STATE["json"] = STATE["json"] or as_json

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

    def read(self, book: Path) -> Any:
        """The book at ``book`` (a folder, a file or a partitioned dataset), as a step."""
        with self.step(f"reading {book}"):
            return read_book_arg(book)

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


def fail_if(crossed: bool) -> None:
    """Exit 1 (outputs already written) when a ``--fail-if-*`` threshold was crossed."""
    if crossed:
        raise typer.Exit(1)


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
PriceOpt = Annotated[
    list[str] | None, typer.Option("--price", help="Price override SYMBOL=PRICE (repeatable).")
]
# The cascade's rules, shared by `cascade` and `montecarlo`.
InsuranceFundOpt = Annotated[float, typer.Option(help="Insurance fund, USD.")]
FeeOpt = Annotated[float, typer.Option(help="Liquidation fee rate.")]
PartialOpt = Annotated[float, typer.Option(help="Share of a position closed per slice.")]
DeleverageOpt = Annotated[str, typer.Option(help="adl, socialized_loss or none.")]


def universe_of(value: str | None, *, required: bool = True) -> Any:
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


def universe_source(value: str | None) -> str:
    return "built-in demo universe" if value in (None, DEMO) else str(value)


def pairs(items: list[str] | None, option: str, kind: str = "move") -> dict[str, float]:
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


def read_book_arg(book: Path) -> Any:
    """A book folder or file, or a partitioned dataset read whole."""
    from crossmargin import distributed as dist
    from crossmargin.io import read_book

    return dist.read_partitioned(book) if dist.is_partitioned(book) else read_book(book)


def on_dask(scheduler: str | None, local_cluster: int | None) -> bool:
    return scheduler is not None or local_cluster is not None


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
def cluster(scheduler: str | None, local_cluster: int | None) -> Iterator[Any]:
    """``distributed.connect`` with a short connect timeout to a scheduler, and an
    unreachable scheduler as a one-line error."""
    from crossmargin import distributed as dist

    STATE["dask"] = True
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


# ---- outputs -----------------------------------------------------------------------------
def write(table: Any, path: Path) -> Path:
    """A result table to Parquet, its folder made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path)
    return path


def rows_summary(table: Any, key: str, fields: dict[str, type]) -> dict[str, dict[str, Any]]:
    """One summary entry per row of ``table``, keyed by its ``key`` column: ``fields`` with
    their Python types (``int`` / ``float``)."""
    return {
        str(getattr(r, key)): {name: cast(getattr(r, name)) for name, cast in fields.items()}
        for r in table.to_pandas().itertuples()
    }


def marks(universe: Any) -> dict[str, float]:
    return {m.symbol: m.mark for m in universe.markets}


def collateral(universe: Any, book: Any) -> Any:
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


def cascade_config(
    *, insurance_fund: float, fee: float, partial: float, deleverage: str, **rules: Any
) -> Any:
    """The cascade's rules from the options ``cascade`` and ``montecarlo`` share, plus
    ``rules`` (shock, liquidity, mode, max_rounds, ...)."""
    from crossmargin.cascade import CascadeConfig

    return CascadeConfig(
        insurance_fund=insurance_fund,
        liquidation_fee=fee,
        partial_fraction=partial,
        deleverage=deleverage,  # type: ignore[arg-type]
        **rules,
    )
