"""The engine: a universe compiled once, a thread pool, and the evaluations over books.

:class:`Engine` owns the compiled core object (``crossmargin._core.Engine``: the compiled
universe and the rayon pool). Each method binds the book to the universe once
(:meth:`crossmargin.Book.grouping`), resolves the call's prices, and hands those to the
feature module that shapes the result (``crossmargin.risk``, ``crossmargin.cascade``); the
feature modules never see this class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from crossmargin import _core
from crossmargin.book import Book
from crossmargin.cascade import CascadeConfig, CascadeResult, run_cascade
from crossmargin.exceptions import (
    BookError,
    ConfigError,
    ConfigTypeError,
    TableError,
    TableTypeError,
)
from crossmargin.options import DAYS_PER_YEAR
from crossmargin.prices import PriceOverrides, repriced, resolve
from crossmargin.result import MARGIN_COLUMNS, RAW_COLUMNS, MarginResult, in_units
from crossmargin.risk import efficiency, funding, liqprice, solvency
from crossmargin.risk import explain as explain_module
from crossmargin.risk import stress as stress_module
from crossmargin.risk.efficiency import CapitalEfficiency
from crossmargin.risk.explain import Explanation
from crossmargin.risk.funding import FundingResult, Rates
from crossmargin.risk.liqprice import LiqMove
from crossmargin.risk.solvency import SolvencyResult
from crossmargin.risk.stress import Measure, ReverseStressResult, Scenario, StressResult
from crossmargin.span import SpanConfig, SpanResult
from crossmargin.span import result as span_result
from crossmargin.table import Table
from crossmargin.universe import Universe

Model = Literal["standard", "portfolio", "hybrid", "delta"]
MODELS: tuple[str, ...] = ("standard", "portfolio", "hybrid", "delta")
# More threads than this is a typo, not a machine: each one is an OS thread with its stack.
MAX_THREADS = 1024


_FLAGS = ("liquidatable", "bankrupt")
_BOOL, _INT64, _FLOAT64 = np.dtype(np.bool_), np.dtype(np.int64), np.dtype(np.float64)


def _out_columns(out: object, book: Book, *, raw: bool = False) -> dict[str, np.ndarray]:
    """The result columns of ``out=`` (a MarginResult of ``book``), checked like numpy's
    ``out``: one row per account, the result's dtype, writable and contiguous; with ``raw``
    (a fixed-point universe) its four int64 raw columns too."""
    if not isinstance(out, MarginResult):
        raise TableTypeError(
            f"out: expected a MarginResult of an earlier evaluate, got {type(out).__name__}"
        )
    if out.account is not book.accounts and not np.array_equal(out.account, book.accounts):
        raise TableError("out: its accounts are not this book's accounts", column="account")
    cols: dict[str, np.ndarray] = {}
    for name in MARGIN_COLUMNS[1:] + (RAW_COLUMNS if raw else ()):
        if name not in out:
            raise TableError(
                f"out[{name!r}]: missing (pass a result of this engine's arithmetic)",
                column=name,
            )
        a = out[name]
        dtype = _BOOL if name in _FLAGS else _INT64 if name in RAW_COLUMNS else _FLOAT64
        if a.dtype != dtype:
            raise TableTypeError(f"out[{name!r}]: dtype {a.dtype} where the result is {dtype}")
        flags = a.flags
        if not (flags.c_contiguous and flags.writeable):
            raise TableError(f"out[{name!r}]: not a writable contiguous array", column=name)
        cols[name] = a
    if _may_share_memory(cols):
        # Name the first column, in order, that shares memory with an earlier one.
        earlier: list[np.ndarray] = []
        for name, a in cols.items():
            if any(a is b or np.shares_memory(a, b) for b in earlier):
                raise TableError(f"out[{name!r}]: shares memory with another column", column=name)
            earlier.append(a)
    return cols


def _may_share_memory(cols: dict[str, np.ndarray]) -> bool:
    """Whether two of ``cols`` may share memory. Columns that own their memory (``base`` is
    None) or are the engine's own (a numpy-crate ``PySliceContainer`` base) share none unless
    they have the same owner; anything else (a view of another array, a buffer) is checked
    pair by pair — forty-five ``np.shares_memory`` calls took longer than evaluating a book
    of a thousand accounts."""
    owners: set[int] = set()
    for a in cols.values():
        base = a.base
        if base is None:
            owner = id(a)
        elif type(base).__name__ == "PySliceContainer":
            owner = id(base)
        else:
            return True
        if owner in owners:
            return True
        owners.add(owner)
    return False


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

    Every method takes the data first (the book, then what the computation needs) and its
    options as keywords; ``prices`` (keyword) overrides the universe's prices for one call: a
    mapping of symbols to prices (an underlying moves its markets and asset together) or a
    pair of arrays ``(asset_prices, marks)`` in universe order (:mod:`crossmargin.prices`).

    >>> import crossmargin as cm
    >>> engine = cm.Engine(cm.Universe.demo(), threads=2)
    >>> engine.threads
    2
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
        self._native = _core.Engine(universe.compiled, threads)

    @property
    def threads(self) -> int:
        """Threads of the engine's pool."""
        return int(self._native.threads)

    def evaluate(
        self,
        book: Book,
        *,
        prices: PriceOverrides = None,
        model: Model = "standard",
        unit: str | None = None,
        out: MarginResult | None = None,
    ) -> MarginResult:
        """Margin of every account (docs/MODEL.md "Standard cross margin").

        Parameters:
            book: the balances and positions (hedge legs margined each on its own, open
                orders adding to the initial requirement: docs/MODEL.md "Book", "Open
                orders").
            prices: overrides of the universe's prices for this call (see the class).
            model: ``"standard"`` (docs/MODEL.md "Standard cross margin"), or
                ``"portfolio"`` (scenario, SPAN-like), ``"delta"`` or ``"hybrid"`` with the
                universe's ``portfolio`` parameters
                (docs/MODEL.md "Portfolio margin").
            unit: an asset symbol: the money columns (equity, upnl, adjusted equities, im,
                mm, free collateral) in units of that asset, USD ÷ its ask at this call's
                prices (Binance Multi-Assets "available for order" in USDT; docs/MODEL.md
                "Two-sided valuation"); None: USD.
            out: a previous :class:`MarginResult` of this book (numpy's ``out=``): every
                model writes its columns in place and returns it, so a repeated evaluation
                allocates nothing and faults in no fresh pages. Its columns must have one
                row per account, float64 (bool for the flags), writable and contiguous
                (:class:`~crossmargin.exceptions.TableError` / ``TableTypeError``
                otherwise, naming the column); under fixed-point arithmetic (the standard
                model only) also the four int64 ``*_raw`` columns (a result of a
                fixed-point universe). Not with ``unit``. If the call raises, the columns
                hold no result.

        Returns:
            A :class:`MarginResult`, one row per account (ascending id), the same fields for
            every model (``out`` itself when given).

        >>> r = engine.evaluate(book, prices={"BTC": 60_000})   # doctest: +SKIP
        >>> r.summary()["liquidatable"]                         # doctest: +SKIP
        >>> r = engine.evaluate(book, prices={"BTC": 59_000}, out=r)  # doctest: +SKIP
        """
        if model not in MODELS:
            raise ConfigError(f"model: {model!r} is not one of {', '.join(MODELS)}", field="model")
        view = _book(book).grouping(self.universe)
        px = resolve(self.universe, prices)
        fixed = self.universe.compiled.is_fixed_point
        if out is not None:
            if unit is not None:
                raise ConfigError(
                    "out: the columns are written in USD (not with unit=)", field="out"
                )
            if model != "standard" and fixed:
                raise ConfigError(
                    f"out: the {model!r} model writes no *_raw columns; under fixed-point "
                    "arithmetic only the standard model writes into a previous result",
                    field="out",
                )
            arrays = _out_columns(out, book, raw=fixed and model == "standard")
        else:
            arrays = None
        if model == "standard":
            cols = self._native.evaluate(view, px, arrays)
        else:
            if book.has_orders:
                raise ConfigError(
                    f"model: open orders are margined by the standard model only, not "
                    f"{model!r} (evaluate a book without orders)",
                    field="model",
                )
            pm = self.universe.compiled_portfolio
            if pm is None:
                raise ConfigError(
                    f"model: {model!r} needs Universe(portfolio=PortfolioConfig(...))",
                    field="portfolio",
                )
            cols = self._native.evaluate_portfolio(view, px, pm, model, arrays)
        if out is not None:
            return out
        if unit is not None:
            cols = in_units(cols, self.universe.ask_price(unit, px[0]))
        return MarginResult({"account": book.accounts, **cols})

    def span(
        self,
        book: Book,
        config: SpanConfig,
        *,
        prices: PriceOverrides = None,
        detail: bool = True,
    ) -> SpanResult:
        """CME SPAN margin of every account (docs/MODEL.md "SPAN").

        Parameters:
            book: the balances and positions.
            config: the SPAN tables (:class:`crossmargin.span.SpanConfig`): combined
                commodities, contracts (published risk arrays or engine-computed ones),
                intra- and inter-commodity spreads.
            prices: overrides of the universe's prices (engine-computed arrays and option
                values follow them; published arrays are used as given).
            detail: also return one row per account × combined commodity.

        Returns:
            A :class:`~crossmargin.span.SpanResult`: ``accounts`` (a MarginResult; positions
            outside SPAN keep their standard requirement) and ``commodities`` (scan, intra,
            spot, inter, som, risk, initial, nov, total per account × combined commodity).

        Raises:
            ConfigError: the tables do not fit the universe, naming the row and field.

        >>> res = engine.span(book, cm.span.SpanConfig.from_toml("span.toml"))  # doctest: +SKIP
        >>> res.commodities.to_pandas()                                          # doctest: +SKIP
        """
        if not isinstance(config, SpanConfig):
            raise ConfigTypeError(
                f"config: expected SpanConfig, got {type(config).__name__}", field="config"
            )
        book = _book(book)
        view = book.grouping(self.universe)
        compiled = config.compile(self.universe.compiled)
        cols = self._native.evaluate_span(
            view, resolve(self.universe, prices), compiled, detail=bool(detail)
        )
        return span_result(book.accounts, compiled.commodities, cols)

    def apply_funding(
        self, book: Book, rates: Rates, *, prices: PriceOverrides = None
    ) -> FundingResult:
        """Funding payments of one interval, exactly zero-sum per market
        (:mod:`crossmargin.risk.funding`).

        Parameters:
            book: the balances and positions.
            rates: the interval's funding rate per perpetual: a mapping ``symbol → rate``
                (others 0), or an array by market in universe order.
            prices: overrides of the marks the payments are computed at.

        Returns:
            A :class:`~crossmargin.risk.funding.FundingResult` (payments, per-market totals,
            the external counterparty, the book after funding).

        >>> f = engine.apply_funding(book, {"BTCUSDT": 0.0001})   # doctest: +SKIP
        >>> f.check_zero_sum()                                     # doctest: +SKIP
        True
        """
        book = _book(book)
        return funding.apply_funding(
            self._native, self.universe, book, book.grouping(self.universe), rates, prices
        )

    def solvency(
        self,
        book: Book,
        exchange_assets: Mapping[str, float] | None = None,
        *,
        stress: Mapping[str, float] | None = None,
        prices: PriceOverrides = None,
        seed: bytes | str | None = None,
    ) -> SolvencyResult:
        """Reserves vs customer liabilities and the Merkle-sum proof of liabilities
        (:mod:`crossmargin.risk.solvency`).

        Parameters:
            book: the customers' balances and positions.
            exchange_assets: the exchange's reserves, ``asset → quantity``.
            stress: fractional moves (``{"BTC": -0.3}``) for the stressed coverage.
            prices: overrides of the universe's prices.
            seed: the secret the leaf nonces derive from (bytes, or str as UTF-8); None
                draws 32 random bytes.

        Returns:
            A :class:`~crossmargin.risk.solvency.SolvencyResult` (coverage, per-asset and
            per-account tables, root hash, proofs).

        >>> s = engine.solvency(book, {"USDT": 5e7}, seed=b"secret")   # doctest: +SKIP
        >>> s.coverage, s.proof(42).to_json()                           # doctest: +SKIP
        """
        book = _book(book)
        return solvency.solvency(
            self._native,
            self.universe,
            book,
            book.grouping(self.universe),
            exchange_assets,
            stress,
            prices,
            seed,
        )

    def liquidation_prices(
        self, book: Book, *, prices: PriceOverrides = None, move: LiqMove = "underlying"
    ) -> Table:
        """Per position: the mark at which its account (cross) or the position (isolated)
        reaches maintenance, and the bankruptcy price at which it is worth nothing net of its
        closing-fee reserves; NaN where none exists (:mod:`crossmargin.risk.liqprice`).

        Parameters:
            book: the balances and positions.
            prices: overrides of the universe's prices (the starting point).
            move: ``"underlying"`` moves everything on the position's underlying together
                (its asset too), ``"mark"`` only the position's own mark.

        Returns:
            A Table (account, market, row, liq_price, bankruptcy_price), one row per position.

        >>> engine.liquidation_prices(book, move="mark").to_pandas()   # doctest: +SKIP
        """
        book = _book(book)
        liqprice.check_move(move)
        return liqprice.liquidation_prices(
            self._native, self.universe, book.grouping(self.universe), prices, move
        )

    def stress(
        self,
        book: Book,
        scenarios: Mapping[str, Scenario],
        insurance_fund: float = 0.0,
        *,
        prices: PriceOverrides = None,
    ) -> StressResult:
        """Every account under every scenario in one pass (:mod:`crossmargin.risk.stress`).

        Parameters:
            book: the balances and positions.
            scenarios: names → fractional moves, e.g. ``{"crash": {"BTC": -0.3}}``.
            insurance_fund: USD, compared with each scenario's bad debt.
            prices: the prices the moves apply to (default: the universe's).

        Returns:
            A :class:`~crossmargin.risk.stress.StressResult` (per-scenario totals and the
            accounts × scenarios matrix).

        >>> engine.stress(book, {"crash": {"BTC": -0.3}}, 5e7).scenarios   # doctest: +SKIP
        """
        at = self._at(prices)
        book = _book(book)
        return stress_module.stress(
            at._native, at.universe, book, book.grouping(at.universe), scenarios, insurance_fund
        )

    def reverse_stress(
        self,
        book: Book,
        insurance_fund: float,
        *,
        underlyings: Sequence[str] | None = None,
        direction: int = -1,
        measure: Measure = "bad_debt",
        max_move: float | None = None,
        tol: float = 1e-4,
        prices: PriceOverrides = None,
    ) -> ReverseStressResult:
        """The smallest uniform (and per-underlying) move at which ``measure`` exceeds the
        insurance fund (:mod:`crossmargin.risk.stress`).

        Parameters:
            book: the balances and positions.
            insurance_fund: USD.
            underlyings: the underlyings that move together (default: all).
            direction: -1 (down) or 1 (up).
            measure: ``"bad_debt"`` or ``"shortfall"``.
            max_move: the largest move searched (default 0.99 down, 4.0 up).
            tol: the width the move is refined to.
            prices: the prices the moves apply to (default: the universe's).

        Returns:
            A :class:`~crossmargin.risk.stress.ReverseStressResult`.

        >>> engine.reverse_stress(book, 5e7, underlyings=["BTC"]).move   # doctest: +SKIP
        """
        at = self._at(prices)
        book = _book(book)
        return stress_module.reverse_stress(
            at._native,
            at.universe,
            book.grouping(at.universe),
            insurance_fund,
            underlyings=underlyings,
            direction=direction,
            measure=measure,
            max_move=max_move,
            tol=tol,
        )

    def capital_efficiency(self, book: Book, *, prices: PriceOverrides = None) -> CapitalEfficiency:
        """Isolated vs cross (vs portfolio) requirement, utilisation and leverage per account
        and in aggregate (:mod:`crossmargin.risk.efficiency`).

        Parameters:
            book: the balances and positions.
            prices: overrides of the universe's prices.

        Returns:
            A :class:`~crossmargin.risk.efficiency.CapitalEfficiency` (per-account table and
            aggregate); ``required_portfolio`` when the universe has portfolio parameters.

        >>> engine.capital_efficiency(book).aggregate["savings"]   # doctest: +SKIP
        """
        book = _book(book)
        view, px = book.grouping(self.universe), resolve(self.universe, prices)
        portfolio = None
        if "portfolio" in MODELS and self.universe.portfolio is not None:
            portfolio = self.evaluate(efficiency.all_cross(book), prices=prices, model="portfolio")
        return efficiency.capital_efficiency(self._native, book, view, px, portfolio)

    def cascade(
        self, book: Book, config: CascadeConfig, *, prices: PriceOverrides = None
    ) -> CascadeResult:
        """Liquidation sequencing after a shock or along a price path
        (:mod:`crossmargin.cascade`).

        Parameters:
            book: the balances and positions.
            config: the shock or path, insurance fund, liquidity and liquidation rules.
            prices: the prices the shock moves from (default: the universe's).

        Returns:
            A :class:`~crossmargin.cascade.CascadeResult`: event log, per-round table, final
            book, insurance fund and bad debt.

        >>> cfg = cm.CascadeConfig(shock={"BTC": -0.3}, insurance_fund=1e6)   # doctest: +SKIP
        >>> engine.cascade(book, cfg).summary()                               # doctest: +SKIP
        """
        if not isinstance(config, CascadeConfig):
            raise ConfigTypeError(
                f"config: expected CascadeConfig, got {type(config).__name__}", field="config"
            )
        at = self._at(prices)
        book = _book(book)
        return run_cascade(at._native, at.universe, book.grouping(at.universe), config)

    def greeks(self, book: Book, *, prices: PriceOverrides = None) -> Table:
        """Greeks per account × underlying.

        Rows where the account holds a position on the underlying or a balance of the asset
        of that symbol; accounts ascending, then underlyings in universe order. ``delta`` is
        in units of the underlying and counts perps, futures, options and that collateral;
        ``gamma`` (∂²V/∂S², per USD), ``vega`` (USD per 1.00 of volatility), ``theta`` (USD
        per year), ``theta_day`` (USD per day, theta / 365, as venues such as Deribit show
        it) and ``rho`` (USD per 1.00 of rate, the forward held fixed: −T·V) come from
        options.

        Parameters:
            book: the balances and positions.
            prices: overrides of the universe's prices.

        Returns:
            A Table (account, underlying, delta, gamma, vega, theta, theta_day, rho).

        >>> engine.greeks(book).to_pandas()   # doctest: +SKIP
        """
        book = _book(book)
        view = book.grouping(self.universe)
        cols = self._native.greeks(view, resolve(self.universe, prices))
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
                "theta_day": cols["theta"] / DAYS_PER_YEAR,
                "rho": cols["rho"],
            }
        )

    def explain(self, book: Book, account: int, *, prices: PriceOverrides = None) -> Explanation:
        """One account row by row under the standard model (:mod:`crossmargin.risk.explain`):
        each balance's weighted value, each position's notional, bracket, requirement and
        uPnL, and which margin test failed; the totals are :meth:`evaluate`'s, bit for bit.

        Parameters:
            book: the balances and positions.
            account: the account id.
            prices: overrides of the universe's prices.

        Returns:
            An :class:`~crossmargin.risk.explain.Explanation`.

        >>> e = engine.explain(book, 42)      # doctest: +SKIP
        >>> print(e); e.failed; e.to_dict()   # doctest: +SKIP
        """
        book = _book(book)
        return explain_module.explain(
            self._native, self.universe, book, book.grouping(self.universe), account, prices
        )

    def _at(self, prices: PriceOverrides) -> Engine:
        """This engine (same pool) on the universe repriced by ``prices``: the base that
        scenario and shock moves apply to."""
        if prices is None:
            return self
        other = object.__new__(Engine)
        other.universe = repriced(self.universe, prices)
        other._native = self._native.with_universe(other.universe.compiled)
        return other

    def __repr__(self) -> str:
        u = self.universe
        return f"Engine(assets={len(u.assets)}, markets={len(u.markets)}, threads={self.threads})"


__all__ = ["MODELS", "Engine"]
