"""One small table type for every tabular output: named numpy columns of equal length."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa


def import_polars() -> Any:
    """The polars module, or an ImportError that says how to get it (polars is optional)."""
    try:
        import polars
    except ImportError as e:
        raise ImportError(
            "to_polars() needs polars, an optional dependency: pip install polars"
        ) from e
    return polars


class Table:
    """Named numpy columns; ``t.equity`` and ``t["equity"]`` are the same array."""

    __slots__ = ("_columns",)
    _columns: dict[str, np.ndarray]

    def __init__(self, columns: Mapping[str, Any]) -> None:
        cols = {k: np.asarray(v) for k, v in columns.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of unequal length: { {k: len(v) for k, v in cols.items()} }")
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

    def to_dict(self) -> dict[str, np.ndarray]:
        return dict(self._columns)

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self._columns)

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        return pa.table({k: pa.array(v) for k, v in self._columns.items()})

    def to_polars(self) -> pl.DataFrame:
        """The table as a polars DataFrame, through Arrow (needs ``pip install polars``)."""
        frame: pl.DataFrame = import_polars().from_arrow(self.to_arrow())
        return frame

    def to_parquet(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), str(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rows={len(self)}, columns={self.columns})"


__all__ = ["Table", "import_polars"]
