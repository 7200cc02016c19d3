"""Reading and writing books: Parquet and CSV through pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossmargin.book import Book
from crossmargin.exceptions import BookError

SUFFIXES = (".parquet", ".pq", ".csv")


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.exists():
        raise BookError(f"{path}: no such file")
    try:
        if path.suffix == ".csv":
            return pcsv.read_csv(path)
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for unreadable files
        raise BookError(f"{path}: cannot read: {e}") from None


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.exists():
            return p
    return None


def read_book(
    path: str | Path | None = None,
    *,
    balances: str | Path | None = None,
    positions: str | Path | None = None,
) -> Book:
    """Reads a book from Parquet or CSV.

    ``path`` is a folder holding ``balances.*`` and/or ``positions.*`` (parquet, pq or csv),
    or one file whose columns say which table it is (``asset`` → balances, ``market`` →
    positions). ``balances=`` / ``positions=`` name the two files directly.
    """
    bal_path = Path(balances) if balances is not None else None
    pos_path = Path(positions) if positions is not None else None
    if path is not None:
        p = Path(path)
        if p.is_dir():
            bal_path, pos_path = _find(p, "balances"), _find(p, "positions")
            if bal_path is None and pos_path is None:
                raise BookError(
                    f"{p}: holds neither balances.* nor positions.* ({', '.join(SUFFIXES)})"
                )
        else:
            t = _read_table(p)
            if "market" in t.column_names:
                return Book.from_arrow(None, t)
            if "asset" in t.column_names:
                return Book.from_arrow(t, None)
            raise BookError(
                f"{p}: a book file needs an 'asset' (balances) or 'market' (positions) column"
            )
    if bal_path is None and pos_path is None:
        raise BookError("read_book: give a path, or balances= and/or positions=")
    return Book.from_arrow(
        None if bal_path is None else _read_table(bal_path),
        None if pos_path is None else _read_table(pos_path),
    )


def write_book(book: Book, folder: str | Path, universe: Any, fmt: str = "parquet") -> Path:
    """Writes ``balances.<fmt>`` and ``positions.<fmt>`` (symbols spelled out) into ``folder``."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt: {fmt!r} is not parquet or csv")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in zip(("balances", "positions"), book.to_pandas(universe), strict=True):
        table = pa.Table.from_pandas(df, preserve_index=False)
        target = out / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, target)
        else:
            pcsv.write_csv(table, target)
    return out


__all__ = ["read_book", "write_book"]
