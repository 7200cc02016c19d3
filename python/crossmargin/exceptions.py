"""Every error crossmargin raises derives from :class:`CrossmarginError`.

The engine's Rust core raises these same classes (never a panic), with structured fields
so that a batch job can point at the offending row, symbol or field.
"""

from __future__ import annotations


class CrossmarginError(Exception):
    """Base of every error crossmargin raises."""


class ConfigError(CrossmarginError, ValueError):
    """The universe (risk configuration) is invalid. ``field`` reads like
    ``markets[BTCUSDT].brackets[2].mmr``."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BookError(CrossmarginError, ValueError):
    """A row of the book is invalid: ``table`` ("balances" or "positions"), ``row`` (0-based
    input row), ``other_row`` for duplicates, ``column``."""

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        row: int | None = None,
        other_row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.row = row
        self.other_row = other_row
        self.column = column


class PriceError(CrossmarginError, ValueError):
    """A price given for one call is unusable (unknown symbol, non-finite, non-positive)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ResourceError(CrossmarginError, MemoryError):
    """A job would need more memory than the machine has available. Raised before the
    allocation, from an estimate made when the size is known up front (see
    :mod:`crossmargin.resources`): ``needed`` and ``available`` are bytes."""

    def __init__(self, message: str, *, needed: int, available: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


__all__ = ["BookError", "ConfigError", "CrossmarginError", "PriceError", "ResourceError"]
