"""The engine: a universe compiled once, a thread pool, and the evaluations over books."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.cascade import CascadeConfig, CascadeResult, run_cascade
from crossmargin.exceptions import BookError, ConfigError, ConfigTypeError
from crossmargin.prices import PriceOverrides, repriced, resolve
from crossmargin.result import MarginResult
from crossmargin.risk import efficiency, funding, liqprice, solvency
from crossmargin.risk import explain as explain_module
from crossmargin.risk import stress as stress_module
from crossmargin.risk.efficiency import CapitalEfficiency
from crossmargin.risk.explain import Explanation
from crossmargin.risk.funding import FundingResult, Rates
from crossmargin.risk.solvency import SolvencyResult
from crossmargin.risk.stress import Measure, ReverseStressResult, Scenario, StressResult
from crossmargin.table import Table
from crossmargin.universe import Universe

Model = Literal["standard", "portfolio", "hybrid", "delta"]
MODELS: tuple[str, ...] = ("standard", "portfolio", "hybrid", "delta")
# More threads than this is a typo, not a machine: each one is an OS thread with its stack.
MAX_THREADS = 1024


def _book(book: object) -> Book:
    if not isinstance(book, Book):
        raise BookError(
            f"book: expected crossmargin.Book (Book.from_arrays, read_book, ...), "
            f"got {type(book).__name__}"
        )
    return book


class Engine:
    """Reusable: build once per universe, evaluate many books and price sets.

    ``threads=None`` uses every core; results are identical for any thread count.
    """

    def __init__(self, universe: Universe, threads: int | None = None) -> None:
        if not isinstance(universe, Universe):
            raise ConfigError(f"universe: expected Universe, got {type(universe).__name__}")
        if threads is not None and (
            not isinstance(threads, int)
            or isinstance(threads, bool)
            or not 1 <= threads <= MAX_THREADS
        ):
            raise ConfigError(
                f"threads: {threads!r} must be an integer in [1, {MAX_THREADS}] or None",
                field="threads",
            )
        self.universe = universe
        self._pool = _core.ThreadPool(threads)

    @property
    def threads(self) -> int:
        return int(self._pool.threads)

    def evaluate(
        self, book: Book, prices: PriceOverrides = None, model: Model = "standard"
    ) -> MarginResult:
        """Margin of every account, at the universe's prices or ``prices``.

        ``model``: "standard" (docs/MODEL.md "Standard cross margin"), or "portfolio"
        (scenario, SPAN-like), "delta" or "hybrid" with the universe's ``portfolio``
        parameters (docs/MODEL.md "Portfolio margin"); the same result fields for every model.
        """
        if model not in MODELS:
            raise ConfigError(f"model: {model!r} is not one of {', '.join(MODELS)}", field="model")
        grouped, asset_remap, market_remap = _book(book).grouping(self.universe)
        asset_prices, marks = resolve(self.universe, prices)
        if model != "standard":
            pm = self.universe._compiled_portfolio
            if pm is None:
                raise ConfigError(
                    f"model: {model!r} needs Universe(portfolio=PortfolioConfig(...))",
                    field="portfolio",
                )
            cols = _core.evaluate_portfolio(
                self._pool,
                self.universe._compiled,
                pm,
                grouped,
                asset_remap,
                market_remap,
                asset_prices,
                marks,
                model,
            )
            return MarginResult({"account": book.accounts, **cols})
        cols = _core.evaluate_standard(
            self._pool,
            self.universe._compiled,
            grouped,
            asset_remap,
            market_remap,
            asset_prices,
            marks,
        )
        return MarginResult({"account": book.accounts, **cols})

    def apply_funding(
        self, book: Book, rates: Rates, prices: PriceOverrides = None
    ) -> FundingResult:
        """Funding payments, exactly zero-sum per market (crossmargin.risk.funding); ``rates``
        maps perpetual symbols to the interval's rate, or is an array by market."""
        return funding.apply_funding(self, _book(book), rates, prices)

    def solvency(
        self,
        book: Book,
        exchange_assets: Mapping[str, float] | None = None,
        stress: Mapping[str, float] | None = None,
        prices: PriceOverrides = None,
        seed: bytes | str | None = None,
    ) -> SolvencyResult:
        """Reserves vs customer liabilities and the Merkle-sum proof of liabilities
        (crossmargin.risk.solvency); ``stress`` holds fractional moves, e.g. ``{"BTC": -0.3}``."""
        return solvency.solvency(self, _book(book), exchange_assets, stress, prices, seed)

    def liquidation_prices(
        self, book: Book, prices: PriceOverrides = None, move: liqprice.LiqMove = "underlying"
    ) -> Table:
        """Per position: the mark at which its account (cross) or the position (isolated)
        reaches maintenance; NaN where none exists (crossmargin.risk.liqprice). ``move`` =
        ``"underlying"`` moves everything on the position's underlying together (its asset
        too), ``"mark"`` only the position's own mark."""
        return liqprice.liquidation_prices(self, _book(book), prices, move)

    def stress(
        self,
        book: Book,
        scenarios: Mapping[str, Scenario],
        insurance_fund: float = 0.0,
        *,
        prices: PriceOverrides = None,
    ) -> StressResult:
        """Every account under every scenario in one pass (crossmargin.risk.stress); scenarios map
        names to fractional moves, e.g. ``{"crash": {"BTC": -0.3, "ETH": -0.35}}``, from the
        universe's prices or from ``prices`` (the same overrides as :meth:`evaluate`)."""
        return stress_module.stress(self._at(prices), _book(book), scenarios, insurance_fund)

    def reverse_stress(
        self,
        book: Book,
        insurance_fund: float,
        underlyings: Sequence[str] | None = None,
        direction: int = -1,
        measure: Measure = "bad_debt",
        max_move: float | None = None,
        tol: float = 1e-4,
        *,
        prices: PriceOverrides = None,
    ) -> ReverseStressResult:
        """The smallest uniform (and per-underlying) move at which ``measure`` exceeds the
        insurance fund (crossmargin.risk.stress), moving from the universe's prices or from
        ``prices`` (the same overrides as :meth:`evaluate`)."""
        return stress_module.reverse_stress(
            self._at(prices),
            _book(book),
            insurance_fund,
            underlyings,
            direction,
            measure,
            max_move,
            tol,
        )

    def capital_efficiency(self, book: Book, prices: PriceOverrides = None) -> CapitalEfficiency:
        """Isolated vs cross (vs portfolio) requirement, utilisation and leverage per account
        and in aggregate (crossmargin.risk.efficiency)."""
        return efficiency.capital_efficiency(self, _book(book), prices)

    def cascade(
        self, book: Book, config: CascadeConfig, *, prices: PriceOverrides = None
    ) -> CascadeResult:
        """Liquidation sequencing after a shock or along a price path (crossmargin.cascade):
        event log, per-round table, final book, insurance fund and bad debt. The shock moves
        from the universe's prices or from ``prices`` (the same overrides as
        :meth:`evaluate`)."""
        if not isinstance(config, CascadeConfig):
            raise ConfigTypeError(
                f"config: expected CascadeConfig, got {type(config).__name__}", field="config"
            )
        return run_cascade(self._at(prices), _book(book), config)

    def greeks(self, book: Book, prices: PriceOverrides = None) -> Table:
        """Greeks per account × underlying (rows where the account holds a position on the
        underlying or a balance of the asset of that symbol; accounts ascending, then
        underlyings in universe order). ``delta`` is in units of the underlying and counts
        perps, futures, options and that collateral; ``gamma`` (∂²V/∂S², per USD), ``vega``
        (USD per 1.00 of volatility) and ``theta`` (USD per year) come from options."""
        grouped, asset_remap, market_remap = _book(book).grouping(self.universe)
        asset_prices, marks = resolve(self.universe, prices)
        cols = _core.greeks_columns(
            self._pool,
            self.universe._compiled,
            grouped,
            asset_remap,
            market_remap,
            asset_prices,
            marks,
        )
        names = np.array(self.universe.underlyings, dtype=object)
        return Table(
            {
                "account": book.accounts[cols["account_index"]],
                "underlying": names[cols["underlying_index"]]
                if len(names)
                else np.array([], dtype=object),
                "delta": cols["delta"],
                "gamma": cols["gamma"],
                "vega": cols["vega"],
                "theta": cols["theta"],
            }
        )

    def explain(self, book: Book, account: int, *, prices: PriceOverrides = None) -> Explanation:
        """One account row by row under the standard model (crossmargin.risk.explain): each
        balance's weighted value, each position's notional, bracket, requirement and uPnL,
        and which margin test failed; the totals are :meth:`evaluate`'s, bit for bit.

        >>> e = engine.explain(book, 42)      # doctest: +SKIP
        >>> print(e); e.failed; e.to_dict()   # doctest: +SKIP
        """
        return explain_module.explain(self, _book(book), account, prices)

    def _at(self, prices: PriceOverrides) -> Engine:
        """This engine (same pool) on the universe repriced by ``prices``: the base that
        scenario and shock moves apply to."""
        if prices is None:
            return self
        other = object.__new__(Engine)
        other.universe = repriced(self.universe, prices)
        other._pool = self._pool
        return other

    def __repr__(self) -> str:
        u = self.universe
        return f"Engine(assets={len(u.assets)}, markets={len(u.markets)}, threads={self.threads})"


__all__ = ["MODELS", "Engine"]
