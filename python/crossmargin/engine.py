"""The engine: a universe compiled once, a thread pool, and the evaluations over books."""

from __future__ import annotations

from typing import Literal

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.exceptions import ConfigError
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.result import MarginResult
from crossmargin.universe import Universe

Model = Literal["standard"]
MODELS: tuple[str, ...] = ("standard",)


class Engine:
    """Reusable: build once per universe, evaluate many books and price sets.

    ``threads=None`` uses every core; results are identical for any thread count.
    """

    def __init__(self, universe: Universe, threads: int | None = None) -> None:
        if not isinstance(universe, Universe):
            raise ConfigError(f"universe: expected Universe, got {type(universe).__name__}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads: {threads!r} must be a positive integer or None")
        self.universe = universe
        self._pool = _core.ThreadPool(threads)

    @property
    def threads(self) -> int:
        return int(self._pool.threads)

    def evaluate(
        self, book: Book, prices: PriceOverrides = None, model: Model = "standard"
    ) -> MarginResult:
        """Margin of every account (DESIGN §4), at the universe's prices or ``prices``."""
        if model not in MODELS:
            raise ConfigError(f"model: {model!r} is not one of {', '.join(MODELS)}", field="model")
        asset_remap, market_remap = book.remaps(self.universe)
        asset_prices, marks = resolve(self.universe, prices)
        cols = _core.evaluate_standard(
            self._pool,
            self.universe._compiled,
            book._grouped,
            asset_remap,
            market_remap,
            asset_prices,
            marks,
        )
        return MarginResult({"account": book.accounts, **cols})

    def __repr__(self) -> str:
        u = self.universe
        return f"Engine(assets={len(u.assets)}, markets={len(u.markets)}, threads={self.threads})"


__all__ = ["MODELS", "Engine"]
