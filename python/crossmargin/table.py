"""One small table type for every tabular output (named numpy columns of equal length), and
the one result protocol every result type follows.

**The result protocol.** Every result — a :class:`Table` (``MarginResult``, greeks,
liquidation prices...) and every multi-table result (``StressResult``, ``CascadeResult``,
``FundingResult``, ``SolvencyResult``, ``CapitalEfficiency``, ``Explanation``,
``ReverseStressResult``, ``ShardedMargin``, ``bench.Comparison``) — offers

- ``to_pandas()``: a pandas DataFrame (pandas is optional: ``pip install 'crossmargin[cli]'``);
- ``to_arrow()``: a pyarrow Table;
- ``to_polars()``: a polars DataFrame (polars is optional);
- ``to_numpy()``: a numpy structured array, one field per column (``a["equity"]``), one
  record per row;
- ``__arrow_c_stream__``: the Arrow PyCapsule stream interface, so ``pyarrow.table(r)``,
  ``polars.DataFrame(r)``, DuckDB and others read it without a copy through pandas;

all with the same meaning: **the result's main table**. A multi-table result says in its
docstring which table is the main one (``main_table`` holds its name) and exposes every
table by name in ``tables`` (main first), each a :class:`Table` with the same protocol::

    r = engine.stress(book, scenarios)
    r.to_pandas()                      # the main table: one row per scenario
    r.tables["matrix"].to_pandas()     # another one, by name
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from crossmargin._optional import require
from crossmargin.exceptions import TableError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa


def import_polars() -> Any:
    """The polars module, or an ImportError that says how to get it (polars is optional)."""
    return require("polars", "to_polars()")


class Table:
    """Named numpy columns; ``t.equity`` and ``t["equity"]`` are the same array. A table is
    its own main table in the result protocol (module docstring)."""

    __slots__ = ("_columns",)
    _columns: dict[str, np.ndarray]
    main_table: ClassVar[str] = "table"

    def __init__(self, columns: Mapping[str, Any]) -> None:
        cols = {k: np.asarray(v) for k, v in columns.items()}
        for k, v in cols.items():
            if v.ndim != 1:
                raise TableError(
                    f"column {k!r}: expected 1 dimension, got shape {v.shape}", column=k
                )
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            first = next(k for k, v in cols.items() if len(v) != len(next(iter(cols.values()))))
            raise TableError(
                f"columns of unequal length: { {k: len(v) for k, v in cols.items()} }",
                column=first,
            )
        object.__setattr__(self, "_columns", cols)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self._columns[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def tables(self) -> dict[str, Table]:
        """``{"table": self}``: a table is its own (only) table."""
        return {"table": self}

    def to_dict(self) -> dict[str, np.ndarray]:
        return dict(self._columns)

    # ---- the result protocol -----------------------------------------------------------
    def to_pandas(self) -> pd.DataFrame:
        """The table as a pandas DataFrame (needs pandas: ``pip install 'crossmargin[cli]'``)."""
        frame: pd.DataFrame = require("pandas", "to_pandas()").DataFrame(self._columns)
        return frame

    def to_arrow(self) -> pa.Table:
        """The table as a pyarrow Table (text columns as strings)."""
        import pyarrow as pa

        return pa.table({k: pa.array(v) for k, v in self._columns.items()})

    def to_polars(self) -> pl.DataFrame:
        """The table as a polars DataFrame, through Arrow (needs ``pip install polars``)."""
        frame: pl.DataFrame = import_polars().from_arrow(self.to_arrow())
        return frame

    def to_numpy(self) -> np.ndarray:
        """The table as a numpy structured array: one field per column with the column's
        dtype (text stays ``object``), one record per row."""
        dtype = np.dtype([(k, v.dtype) for k, v in self._columns.items()])
        out = np.empty(len(self), dtype=dtype)
        for k, v in self._columns.items():
            out[k] = v
        return out

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of :meth:`to_arrow`."""
        return self.to_arrow().__arrow_c_stream__(requested_schema)

    def to_parquet(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), str(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rows={len(self)}, columns={self.columns})"


class Tabular:
    """The result protocol (module docstring) for a result made of several tables: the
    conversions all read the main table, ``tables[main_table]``.

    A class lists its tables' attribute names in ``_TABLES``, main first (an attribute that
    is None is left out of :attr:`tables`); a table that is not an attribute as such (built
    from other fields) comes from an override of :attr:`tables`.
    """

    __slots__ = ()
    _TABLES: ClassVar[tuple[str, ...]] = ()

    @property
    def main_table(self) -> str:
        """The name of the main table: what the conversions return."""
        return self._TABLES[0]

    @property
    def tables(self) -> dict[str, Table]:
        """Every table of the result by name, the main one first."""
        out = {}
        for name in self._TABLES:
            t = getattr(self, name)
            if t is not None:
                out[name] = t
        return out

    def table(self) -> Table:
        """The main table."""
        main: Table = getattr(self, self.main_table)
        return main

    def to_pandas(self) -> pd.DataFrame:
        """The main table as a pandas DataFrame (pandas is optional)."""
        return self.table().to_pandas()

    def to_arrow(self) -> pa.Table:
        """The main table as a pyarrow Table."""
        return self.table().to_arrow()

    def to_polars(self) -> pl.DataFrame:
        """The main table as a polars DataFrame (polars is optional)."""
        return self.table().to_polars()

    def to_numpy(self) -> np.ndarray:
        """The main table as a numpy structured array (one field per column)."""
        return self.table().to_numpy()

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of the main table."""
        return self.table().__arrow_c_stream__(requested_schema)


def adopt_protocol(cls: type, tables: tuple[str, ...]) -> None:
    """Gives ``cls`` (a result class that cannot derive from :class:`Tabular`) the result
    protocol over its ``tables`` attributes, main first, and says so in its docstring."""
    cls._TABLES = tables  # type: ignore[attr-defined]
    others = ", ".join(f'``"{t}"``' for t in tables[1:])
    main = f'**main** ``"{tables[0]}"``'
    cls.__doc__ = (cls.__doc__ or "").rstrip() + (
        f"\n\n    Tables (the result protocol, :mod:`crossmargin.table`): {main}"
        + (f"; also {others}." if others else ", the only one.")
    )
    for name in ("main_table", "tables", "table", "to_pandas", "to_arrow", "to_polars",
                 "to_numpy", "__arrow_c_stream__"):  # fmt: skip
        setattr(cls, name, Tabular.__dict__[name])


__all__ = ["Table", "Tabular", "adopt_protocol", "import_polars"]
