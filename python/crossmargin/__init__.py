"""crossmargin: cross-collateralized margin over millions of accounts, with a Rust core.

Quick start::

    import crossmargin as cm
    u = cm.Universe.from_toml("examples/universe.toml")
    book = cm.read_book("book/")            # balances.* and positions.*
    r = cm.Engine(u).evaluate(book)         # MarginResult: numpy columns per account
    r.summary(); r.to_arrow()               # every result: to_pandas / to_arrow / to_polars /
                                            # to_numpy / __arrow_c_stream__ (crossmargin.table)

The library needs numpy and pyarrow only; pandas, the command line and the HTML report come
with the ``cli`` extra (``pip install 'crossmargin[cli]'``).
"""

from typing import Any

from crossmargin import exceptions, monitor, options, portfolio, span
from crossmargin._core import __version__
from crossmargin.book import Book
from crossmargin.cascade import CascadeConfig, CascadeResult, DepthCurve, NoImpact, SqrtImpact
from crossmargin.engine import Engine
from crossmargin.exceptions import (
    BookError,
    BookTypeError,
    ConfigError,
    ConfigTypeError,
    ConfigWarning,
    CrossmarginError,
    LedgerError,
    OptionalDependencyError,
    PriceError,
    PriceTypeError,
    TableError,
    UnknownAccountError,
)
from crossmargin.io import read_book, write_book
from crossmargin.monitor import Levels, Monitor
from crossmargin.portfolio import PortfolioConfig, UnderlyingPortfolio
from crossmargin.result import MarginResult
from crossmargin.risk import funding, solvency
from crossmargin.span import SpanConfig, SpanResult
from crossmargin.table import Table
from crossmargin.universe import Asset, FixedPoint, Market, Universe

__all__ = [
    "Asset",
    "Book",
    "BookError",
    "BookTypeError",
    "CascadeConfig",
    "CascadeResult",
    "ConfigError",
    "ConfigTypeError",
    "ConfigWarning",
    "CrossmarginError",
    "DepthCurve",
    "Engine",
    "FixedPoint",
    "LedgerError",
    "Levels",
    "MarginResult",
    "Market",
    "Monitor",
    "NoImpact",
    "OptionalDependencyError",
    "PortfolioConfig",
    "PriceError",
    "PriceTypeError",
    "SpanConfig",
    "SpanResult",
    "SqrtImpact",
    "Table",
    "TableError",
    "UnderlyingPortfolio",
    "Universe",
    "UnknownAccountError",
    "__version__",
    "exceptions",
    "funding",
    "monitor",
    "options",
    "portfolio",
    "read_book",
    "reference",
    "solvency",
    "span",
    "venues",
    "write_book",
]


def __getattr__(name: str) -> Any:
    """``cm.reference`` (the oracle), ``cm.venues`` and ``cm.distributed`` load on first use:
    the engine never imports the oracle, and Dask is optional."""
    if name in ("reference", "venues", "distributed", "montecarlo"):
        import importlib

        return importlib.import_module(f"crossmargin.{name}")
    raise AttributeError(f"module 'crossmargin' has no attribute {name!r}")
