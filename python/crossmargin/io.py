"""Reading and writing books: Parquet and CSV through pyarrow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossmargin.book import Book
from crossmargin.exceptions import BookError, ConfigError

SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")


def is_csv(path: str | Path) -> bool:
    """A CSV file (``.csv``, or gzip-compressed ``.csv.gz``), by name; anything else is read
    as Parquet."""
    name = Path(path).name.lower()
    return name.endswith((".csv", ".csv.gz"))


def _read_table(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.exists():
        raise BookError(f"{path}: no such file")
    if path.is_dir():
        raise BookError(f"{path}: a folder, not a book file")
    try:
        if path.name.lower().endswith(".csv.gz"):
            with pa.input_stream(path, compression="gzip") as stream:
                return pcsv.read_csv(stream)
        if is_csv(path):
            return pcsv.read_csv(path)
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for unreadable files
        kind = "CSV" if is_csv(path) else "Parquet"
        raise BookError(f"{path}: cannot read as {kind}: {e}") from None


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        p = folder / f"{stem}{suffix}"
        if p.exists():
            return p
    return None


def book_files(path: str | Path) -> dict[str, Path]:
    """The files :func:`read_book` reads for ``path``: ``{"balances": ..., "positions": ...,
    "orders": ...}`` for a folder (the tables it holds), ``{"book": path}`` for a single file.
    Raises :class:`BookError` as ``read_book`` would when there is nothing to read."""
    p = Path(path)
    if p.is_dir():
        found = {stem: _find(p, stem) for stem in ("balances", "positions", "orders")}
        files = {k: v for k, v in found.items() if v is not None}
        if not files:
            raise BookError(
                f"{p}: holds neither balances.* nor positions.* ({', '.join(SUFFIXES)})"
            )
        return files
    if not p.exists():
        raise BookError(f"{p}: no such file or folder")
    return {"book": p}


def table_file(path: str | Path, table: str) -> Path | None:
    """The file a table (``"balances"``, ``"positions"`` or ``"orders"``) of the book at
    ``path`` was read from: a folder's ``balances.*`` / ``positions.*`` / ``orders.*``, or
    the single file itself; ``None``
    when there is none (so that a ``BookError``'s row can be located in its file)."""
    p = Path(path)
    if p.is_dir():
        return _find(p, table)
    return p if p.exists() else None


def read_book(
    path: str | Path | None = None,
    *,
    balances: str | Path | None = None,
    positions: str | Path | None = None,
    orders: str | Path | None = None,
) -> Book:
    """Reads a book from Parquet or CSV.

    ``path`` is a folder holding ``balances.*`` and/or ``positions.*`` and optionally
    ``orders.*`` (parquet, pq, csv or gzip-compressed csv.gz), or one file whose columns say
    which table it is (``asset`` → balances, ``market`` with ``entry_price`` → positions,
    ``market`` with ``price`` → orders). ``balances=`` / ``positions=`` / ``orders=`` name
    the files directly. A positions table may carry ``side`` (both / long / short; docs/
    MODEL.md "Book"). An unreadable file is a :class:`BookError` naming it.

    Example::

        book = read_book("book/")   # balances.parquet, positions.parquet, orders.parquet
    """
    bal_path = Path(balances) if balances is not None else None
    pos_path = Path(positions) if positions is not None else None
    ord_path = Path(orders) if orders is not None else None
    if path is not None:
        p = Path(path)
        if p.is_dir():
            files = book_files(p)
            bal_path, pos_path = files.get("balances"), files.get("positions")
            ord_path = files.get("orders")
        else:
            t = _read_table(p)
            names = t.column_names
            if "market" in names and "price" in names and "entry_price" not in names:
                return Book.from_arrow(None, None, t)
            if "market" in names:
                return Book.from_arrow(None, t)
            if "asset" in t.column_names:
                return Book.from_arrow(t, None)
            raise BookError(
                f"{p}: a book file needs an 'asset' (balances) or 'market' (positions) column"
            )
    if bal_path is None and pos_path is None and ord_path is None:
        raise BookError("read_book: give a path, or balances= and/or positions= (orders=)")
    return Book.from_arrow(
        None if bal_path is None else _read_table(bal_path),
        None if pos_path is None else _read_table(pos_path),
        None if ord_path is None else _read_table(ord_path),
    )


def write_book(book: Book, folder: str | Path, universe: Any, fmt: str = "parquet") -> Path:
    """Writes ``balances.<fmt>`` and ``positions.<fmt>`` (symbols spelled out; ``side`` when
    the book holds hedge legs) and, when the book has open orders, ``orders.<fmt>`` into
    ``folder``."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if fmt not in ("parquet", "csv"):
        raise ConfigError(f"fmt: {fmt!r} is not parquet or csv", field="fmt")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tables = dict(zip(("balances", "positions"), book.to_arrow(universe), strict=True))
    orders = book.orders_to_arrow(universe)
    if orders is not None:
        tables["orders"] = orders
    for name, table in tables.items():
        target = out / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, target)
        else:
            pcsv.write_csv(table, target)
    return out


__all__ = ["book_files", "is_csv", "read_book", "table_file", "write_book"]
