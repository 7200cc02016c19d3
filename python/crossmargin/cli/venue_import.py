"""``crossmargin import VENUE --params DIR --accounts DIR --out BOOK``: a venue's own payloads
(already fetched JSON) → a universe TOML and a book folder every other command reads.

``BOOK`` receives ``balances.parquet`` and ``positions.parquet`` (the book; positions carry a
``side`` column: "both", or "long" / "short" for hedge-mode legs), ``universe.toml`` (the
venue's markets at the marks its account payloads report), ``accounts.csv`` (the venue's
account names ↔ the book's int64 ids) and ``reported.parquet`` (the venue's own margin
figures per account, to compare with ``crossmargin margin``). Then, e.g.::

    crossmargin margin BOOK -u BOOK/universe.toml -o OUT

A one-way book is checked against the universe before it is written (an unknown symbol is
an error); hedge-mode legs are written with their ``side`` for a book layer that reads it.

Errors (an unknown venue, a missing payload or field, an unknown symbol) are one line naming
the payload and the field, exit code 2, as every command reports them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from crossmargin.exceptions import ConfigError

OUTPUTS = (
    "balances.parquet",
    "positions.parquet",
    "universe.toml",
    "accounts.csv",
    "reported.parquet",
)


def import_venue(
    venue: Annotated[
        str,
        typer.Argument(
            help="binance, bybit, hyperliquid, dydx, okx, deribit or drift "
            "(crossmargin.venues.data)."
        ),
    ],
    params: Annotated[
        Path, typer.Option("--params", help="Folder of the venue's parameter payloads (*.json).")
    ],
    accounts: Annotated[
        Path,
        typer.Option(
            "--accounts",
            help="Folder of account payloads: ACCOUNT.json, or ACCOUNT/ folders of PAYLOAD.json.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Book folder to write.")],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the outputs of an earlier import in OUT.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The summary as JSON on stdout.")] = False,
) -> None:
    """Imports a venue's parameter and account payloads as a universe TOML and a book."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crossmargin.venues.data import load
    from crossmargin.venues.presets import to_toml

    taken = [n for n in OUTPUTS if (out / n).exists()]
    if taken and not overwrite:
        raise ConfigError(
            f"--out: {out} already holds {', '.join(taken)} (pass --overwrite to replace)",
            field="--out",
        )
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is not a folder", field="--out")
    universe, imported = load(venue, params, accounts)
    if not imported.hedged:
        imported.book().remaps(universe)  # every symbol is in the universe (else BookError)
    out.mkdir(parents=True, exist_ok=True)
    b, p = imported.balances, imported.positions
    pq.write_table(
        pa.table(
            {
                "account": pa.array(b["account"], pa.int64()),
                "asset": pa.array(list(b["asset"]), pa.string()),
                "qty": pa.array(b["qty"], pa.float64()),
            }
        ),
        out / "balances.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "account": pa.array(p["account"], pa.int64()),
                "market": pa.array(list(p["market"]), pa.string()),
                "qty": pa.array(p["qty"], pa.float64()),
                "entry_price": pa.array(p["entry_price"], pa.float64()),
                "isolated_margin": pa.array(p["isolated_margin"], pa.float64()),
                "side": pa.array(list(p["side"]), pa.string()),
            }
        ),
        out / "positions.parquet",
    )
    header = (
        f"{venue}: imported by `crossmargin import` from {params} (parameters)\n"
        f"and {accounts} (accounts: marks as those payloads report them)."
    )
    (out / "universe.toml").write_text(to_toml(universe, header), encoding="utf-8")
    ids = imported.accounts
    with (out / "accounts.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["account", "name"])
        w.writerows(zip(ids["account"].tolist(), ids["name"].tolist(), strict=True))
    imported.reported.to_parquet(out / "reported.parquet")
    summary: dict[str, Any] = {
        "venue": venue,
        "accounts": len(ids),
        "balances": len(b),
        "positions": len(p),
        "hedged": imported.hedged,
        "markets": len(universe.markets),
        "assets": len(universe.assets),
        "out": str(out),
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    elif not quiet:
        for k, v in summary.items():
            typer.echo(f"{k}: {v}")


__all__ = ["OUTPUTS", "import_venue"]
