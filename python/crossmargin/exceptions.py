"""Every error crossmargin raises derives from :class:`CrossmarginError`; this module is
the one home of them all.

A wrong *value* raises a class that is also a ``ValueError`` (:class:`ConfigError`,
:class:`BookError`, :class:`PriceError`, :class:`TableError`); a wrong *type* its
``*TypeError`` subclass, which is also a ``TypeError``: ``except TypeError``,
``except ValueError`` and ``except CrossmarginError`` all work. An account id the book does
not hold is an :class:`UnknownAccountError` (a ``BookError`` that is also a ``KeyError``).
A broken invariant of crossmargin itself (a bug) is an :class:`InternalError`, e.g. a
:class:`LedgerError` when a ledger does not balance.

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


class TableError(CrossmarginError, ValueError):
    """A table of columns is malformed: columns of unequal length, a column that is not 1-d
    or is missing (``column`` names it). Raised by :class:`crossmargin.Table` and where a
    table is read from the caller, e.g. the per-account columns of ``bench.compare``."""

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class UnknownAccountError(BookError, KeyError):
    """An account id that the book does not hold (``Engine.explain``,
    ``SolvencyResult.proof``): a :class:`BookError` (``column="account"``) that is also a
    ``KeyError``."""

    __str__ = BookError.__str__  # the message as given (KeyError would quote it)


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value or call argument of the wrong type (a string or a bool where a
    number belongs, a list where a table belongs...): a :class:`ConfigError` that is also a
    ``TypeError``, with the same ``field``."""


class BookTypeError(BookError, TypeError):
    """A book column or cell of the wrong type (text, None or a bool where a number belongs):
    a :class:`BookError` that is also a ``TypeError``, with the same ``table``, ``row``,
    ``column``."""


class PriceTypeError(PriceError, TypeError):
    """A price of the wrong type (a string or a bool where a number belongs): a
    :class:`PriceError` that is also a ``TypeError``, with the same ``field``."""


class TableTypeError(TableError, TypeError):
    """Something given where a table of columns belongs that is no table (a number, a
    list of rows...): a :class:`TableError` that is also a ``TypeError``."""


class InternalError(CrossmarginError, RuntimeError):
    """crossmargin broke one of its own invariants: a bug. Please report it, with the input
    that caused it."""


class LedgerError(InternalError):
    """A ledger does not balance: a cascade's asset totals
    (:meth:`CascadeResult.check_conservation <crossmargin.cascade.CascadeResult>`) or a
    market's funding payments (:meth:`FundingResult.check_zero_sum
    <crossmargin.risk.funding.FundingResult>`). ``field`` names the asset or market, e.g.
    ``ledger[BTC]`` or ``funding[BTCUSDT]``."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OptionalDependencyError(CrossmarginError, ImportError):
    """A feature needs a package that is not installed (crossmargin itself needs numpy and
    pyarrow only): ``package`` names it, ``extra`` the crossmargin extra that installs it
    (``pip install 'crossmargin[cli]'``), or None. An ``ImportError``."""

    def __init__(self, message: str, *, package: str, extra: str | None = None) -> None:
        super().__init__(message, name=package)
        self.package = package
        self.extra = extra


class ConfigWarning(UserWarning):
    """A configuration that is valid but probably not what was meant, e.g. a haircut table
    whose last bound is finite (collateral above it counts as zero)."""


class TruncatedWarning(RuntimeWarning):
    """A search or simulation stopped at its configured limit before its natural end, e.g. a
    cascade step cut short by ``max_rounds`` with accounts still liquidatable."""


class ResourceError(CrossmarginError, MemoryError):
    """A job would need more memory than the machine has available. Raised before the
    allocation, from an estimate made when the size is known up front (see
    :mod:`crossmargin.resources`): ``needed`` and ``available`` are bytes."""

    def __init__(self, message: str, *, needed: int, available: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


__all__ = [
    "BookError",
    "BookTypeError",
    "ConfigError",
    "ConfigTypeError",
    "ConfigWarning",
    "CrossmarginError",
    "InternalError",
    "LedgerError",
    "OptionalDependencyError",
    "PriceError",
    "PriceTypeError",
    "ResourceError",
    "TableError",
    "TableTypeError",
    "TruncatedWarning",
    "UnknownAccountError",
]
