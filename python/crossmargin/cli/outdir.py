"""The output folder (``--out``) and its ``summary.json``: the provenance every run records
(version, command, argv, UTC time, universe path and sha256, inputs, sha256 of each input
file), the check that a folder holds outputs of the same book and universe (or
``--overwrite`` removes them), and the summary merged and written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crossmargin.cli.common import DEMO, DEMO_TOML, STATE
from crossmargin.exceptions import ConfigError

SUMMARY = "summary.json"
# What a run writes into --out (and --overwrite removes): never a book's own files, even when
# --out is the book's folder or a partitioned dataset (part-NNNNN/balances.parquet stays).
OUTPUTS = (
    SUMMARY,
    "report.html",
    "margin.parquet",
    "collateral.parquet",
    "efficiency.parquet",
    "stress.parquet",
    "cascade_events.parquet",
    "cascade_rounds.parquet",
    "liq_prices.parquet",
    "venues.parquet",
    "montecarlo.parquet",
    "montecarlo_paths.parquet",
    "montecarlo_risk.parquet",
    "montecarlo_fund.parquet",
    "montecarlo_markets.parquet",
    "crossings.parquet",
    "monitor_log.parquet",
    "cascade_final/balances.parquet",
    "cascade_final/positions.parquet",
    "part-[0-9]*/margin.parquet",
    "part-[0-9]*/stress_matrix.parquet",
    "part-[0-9]*/cascade_final/balances.parquet",
    "part-[0-9]*/cascade_final/positions.parquet",
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version() -> str:
    import crossmargin

    version = getattr(crossmargin, "__version__", None)
    if version:
        return str(version)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("crossmargin")
    except PackageNotFoundError:
        return "unknown"


def _book_inputs(book: Path) -> dict[str, Any]:
    """Path and sha256 of each input file of a book: a folder's balances.* / positions.*, a
    single file, or a partitioned dataset's manifest."""
    from crossmargin import distributed as dist
    from crossmargin.io import book_files

    if dist.is_partitioned(book):
        manifest = book / dist.MANIFEST
        if not manifest.is_file():
            dist.partitions(book)  # a BookError saying what is wrong with the dataset
        files = {"manifest": manifest}
    else:
        files = book_files(book)
    return {
        "path": str(book.resolve()),
        "sha256": {f.name: sha256(f) for f in files.values()},
    }


def _provenance(
    command: str, universe: str | None, book: dict[str, Any], **inputs: Any
) -> dict[str, Any]:
    source = DEMO_TOML if universe in (None, DEMO) else Path(str(universe))
    return {
        "crossmargin_version": _version(),
        "command": command,
        "argv": STATE["argv"],
        "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "universe": {
            "path": DEMO if universe in (None, DEMO) else str(source.resolve()),
            "sha256": sha256(source),
        },
        "book": book,
        **inputs,
    }


def load_summary(folder: Path, option: str = "--out") -> dict[str, Any] | None:
    path = folder / SUMMARY
    if not path.exists():
        return None
    hint = (
        "pass --overwrite to replace it, or use another folder"
        if option == "--out"
        else "rerun the commands into a fresh folder"
    )
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: corrupt summary.json ({e}); {hint}", field=option) from None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path}: corrupt summary.json (not a JSON object); {hint}", field=option)
    return summary


def _inputs(p: Mapping[str, Any]) -> tuple[Any, Any]:
    """What makes two runs comparable: the universe's bytes and the book's."""
    book = p.get("book") or {}
    return (
        (p.get("universe") or {}).get("sha256"),
        json.dumps(book.get("sha256", book.get("synthetic")), sort_keys=True),
    )


def _clear_outputs(out: Path) -> None:
    for pattern in OUTPUTS:
        for f in out.glob(pattern):
            if f.is_file() or f.is_symlink():
                f.unlink()
    for d in [out / "cascade_final", *out.glob("part-[0-9]*/cascade_final")]:
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass


def start(
    command: str,
    out: Path,
    overwrite: bool,
    universe: str | None,
    book: Path | dict[str, Any],
    **inputs: Any,
) -> dict[str, Any]:
    """Checks ``--out`` before any work and returns this run's provenance: ``--out`` must be
    a folder (or not exist yet), and any summary.json there must come from the same book and
    universe (or ``--overwrite`` removes that run's outputs)."""
    if isinstance(book, Path):
        STATE["book"] = book
        book_inputs = _book_inputs(book)
    else:
        book_inputs = {"synthetic": book}
    prov = _provenance(command, universe, book_inputs, **inputs)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a folder", field="--out")
    if overwrite:
        if out.is_dir():
            _clear_outputs(out)
        return prov
    old = load_summary(out)
    if old is None:
        return prov
    previous = old.get("provenance")
    if not isinstance(previous, dict) or not previous:
        raise ConfigError(
            f"--out: {out / SUMMARY} holds another run's outputs with no provenance recorded; "
            "pass --overwrite to replace them, or use another folder",
            field="--out",
        )
    mine = _inputs(prov)
    for cmd, p in previous.items():
        theirs = _inputs(p) if isinstance(p, Mapping) else (None, None)
        if theirs != mine:
            what = "universe" if theirs[0] != mine[0] else "book"
            recorded = p.get(what, {}) if isinstance(p, Mapping) else {}
            where = recorded.get("path") if isinstance(recorded, Mapping) else None
            raise ConfigError(
                f"--out: {out} holds the outputs of `{cmd}` on a different {what}"
                + (f" ({where})" if where else "")
                + "; pass --overwrite to replace them, or use another folder",
                field="--out",
            )
    return prov


def save_summary(out: Path, provenance: Mapping[str, Any], **parts: Any) -> dict[str, Any]:
    """Merges this run's parts and provenance into out/summary.json (checked by ``start``),
    written atomically."""
    path = out / SUMMARY
    summary = load_summary(out) or {}
    summary.update(parts)
    recorded = summary.get("provenance")
    recorded = dict(recorded) if isinstance(recorded, Mapping) else {}
    recorded[str(provenance["command"])] = dict(provenance)
    summary["provenance"] = recorded
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SUMMARY}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    os.replace(tmp, path)
    return summary
