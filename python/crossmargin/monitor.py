"""Live monitoring: a resident book that takes price ticks, row changes and fills, re-margins
only the accounts they reach, and reports the accounts that cross a risk level
(docs/MODEL.md "Live monitoring").

::

    mon = cm.Monitor(universe, book, levels=cm.Levels(margin_call=0.8))
    mon.on_prices({"BTCUSDT": 61_250.0, "BTC": 61_240.0})      # → crossings (a Table)
    mon.apply(positions={"account": [7], "market": ["BTCUSDT"], "qty": [0.0],
                         "entry_price": [0.0]})               # a closed position
    mon.fill(7, "ETHUSDT", "buy", 2.0, 3_050.0)                # size, entry, realised P&L
    book_now, result_now = mon.snapshot()                     # = Engine.evaluate(book_now)
    mon.log().to_parquet("audit.parquet")                     # every change and crossing
    again = cm.Monitor.replay(universe, book, cm.monitor.read_log("audit.parquet"))

Everything the monitor holds (rows, prices, results) equals a batch evaluation of its
snapshot bit for bit. Each call is checked whole before any of it applies: a typed error
(:class:`~crossmargin.exceptions.PriceError`, :class:`~crossmargin.exceptions.BookError`,
...) leaves the monitor as it was. Book-wide parameters of the universe (dYdX's open
interest from the book, Drift's total deposits) stay as the universe states them until
:meth:`Monitor.refresh` is handed a universe rebuilt from the current book.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from crossmargin import _core
from crossmargin._validate import is_number, show
from crossmargin.book import POSITION_SIDES, Book
from crossmargin.engine import MAX_THREADS
from crossmargin.exceptions import (
    BookError,
    BookTypeError,
    ConfigError,
    ConfigTypeError,
    PriceError,
    PriceTypeError,
    TableError,
)
from crossmargin.prices import (
    PriceOverrides,
    check_domain,
    reprice_options,
    resolve,
    underlying_spots,
)
from crossmargin.result import MarginResult
from crossmargin.table import Table
from crossmargin.universe import Universe

#: Risk levels, by code (docs/MODEL.md "Live monitoring").
LEVELS: tuple[str, ...] = tuple(_core.MONITOR_LEVELS)
#: Kinds of audit-log rows, by code.
LOG_KINDS: tuple[str, ...] = tuple(_core.MONITOR_LOG_KINDS)
#: The audit log's columns, in order.
LOG_COLUMNS = (
    "seq",
    "kind",
    "account",
    "symbol",
    "side",
    "qty",
    "price",
    "isolated_margin",
    "reduce_only",
    "pnl",
    "previous",
    "level",
    "ratio_before",
    "ratio_after",
)
_ASSET_KINDS = frozenset({"asset_price", "balance"})
_NO_SYMBOL = frozenset({"refresh", "crossing", "margin_call"})


@dataclasses.dataclass(frozen=True)
class Levels:
    """The monitor's thresholds. ``margin_call``: an account is at the margin-call level when
    its maintenance requirement reaches this fraction of its adjusted maintenance equity
    (margin ratio ≥ ``margin_call``), in (0, 1]; liquidation and bankruptcy are the model's
    own tests (docs/MODEL.md "Live monitoring")."""

    margin_call: float = 0.8

    def __post_init__(self) -> None:
        if not is_number(self.margin_call):
            raise ConfigTypeError(
                f"levels.margin_call: {show(self.margin_call)} is not a number",
                field="levels.margin_call",
            )
        if not 0.0 < float(self.margin_call) <= 1.0:
            raise ConfigError(
                f"levels.margin_call: {self.margin_call} must lie in (0, 1]",
                field="levels.margin_call",
            )


class Crossing(NamedTuple):
    """One account's change of level: operation ``seq``, the levels by name, the margin
    ratio before and after."""

    seq: int
    account: int
    previous: str
    level: str
    ratio_before: float
    ratio_after: float


@dataclasses.dataclass(frozen=True)
class Fill:
    """What :meth:`Monitor.fill` booked: the position's new ``qty``, ``entry_price`` and
    ``isolated_margin``, the ``realised_pnl`` and the ``cash`` paid to the settle balance
    (settle units), and the ``crossings`` it caused."""

    qty: float
    entry_price: float
    realised_pnl: float
    cash: float
    isolated_margin: float
    crossings: Table


class TickReport(NamedTuple):
    """One tick of :meth:`Monitor.stream`: its label, the crossings and the riskiest accounts
    after it."""

    tick: Any
    crossings: Table
    riskiest: Table


def _crossings(cols: Mapping[str, Any]) -> Table:
    names = np.array(LEVELS, dtype=object)
    return Table(
        {
            "account": cols["account"],
            "previous": names[np.asarray(cols["previous"], dtype=np.intp)],
            "level": names[np.asarray(cols["level"], dtype=np.intp)],
            "ratio_before": cols["ratio_before"],
            "ratio_after": cols["ratio_after"],
        }
    )


def _ints(values: Any, table: str, column: str) -> np.ndarray:
    a = np.asarray(values if values is not None else [], dtype=object)
    if a.ndim != 1:
        raise BookError(f"{table}.{column}: expected one column of values", table=table)
    for r, v in enumerate(a):
        if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer):
            raise BookTypeError(
                f"{table} row {r}: {column} {show(v)} is not an integer",
                table=table,
                row=r,
                column=column,
            )
    return a.astype(np.int64) if len(a) else np.zeros(0, dtype=np.int64)


class Monitor:
    """A resident book, its prices and its results (docs/MODEL.md "Live monitoring").

    Parameters:
        universe: the risk configuration (float64 arithmetic).
        book: the starting book.
        levels: the thresholds (:class:`Levels`; default: margin call at 0.8).
        prices: the starting prices, as ``Engine.evaluate``'s ``prices=`` (default: the
            universe's).
        threads: threads of the re-evaluation pool (None: every core); results do not
            depend on it.

    >>> import crossmargin as cm
    >>> u = cm.Universe.demo()
    >>> book = cm.Book.from_arrays(
    ...     {"account": [1], "asset": ["USDT"], "qty": [2_000.0]},
    ...     {"account": [1], "market": ["BTCUSDT"], "qty": [0.5], "entry_price": [60_000.0]})
    >>> mon = cm.Monitor(u, book)
    >>> mon.on_prices({"BTCUSDT": 40_000.0}).level.tolist()
    ['bankruptcy']
    """

    def __init__(
        self,
        universe: Universe,
        book: Book,
        *,
        levels: Levels | None = None,
        prices: PriceOverrides = None,
        threads: int | None = None,
    ) -> None:
        if not isinstance(universe, Universe):
            raise ConfigTypeError(
                f"universe: expected Universe, got {type(universe).__name__}", field="universe"
            )
        if not isinstance(book, Book):
            raise BookError(f"book: expected crossmargin.Book, got {type(book).__name__}")
        levels = Levels() if levels is None else levels
        if not isinstance(levels, Levels):
            raise ConfigTypeError(
                f"levels: expected crossmargin.Levels, got {type(levels).__name__}",
                field="levels",
            )
        self.universe = universe
        self.levels = levels
        self._engine = _core.Engine(universe.compiled, _threads(threads))
        self._resident = _core.Monitor(
            self._engine, book.grouping(universe), resolve(universe, prices), levels.margin_call
        )

    @classmethod
    def replay(
        cls, universe: Universe, book: Book, log: Table, *, threads: int | None = None
    ) -> Monitor:
        """The monitor that ``log`` (:meth:`log`, or :func:`read_log` of its Parquet file)
        describes, rebuilt from its starting ``book``: the starting prices and threshold
        from operation 0, then every change in order. Its rows, prices, results and log
        equal the original's bit for bit.

        Raises:
            ConfigError: the log does not fit the universe (a symbol it does not hold,
                operations out of order), naming the row.
        """
        if not isinstance(book, Book):
            raise BookError(f"book: expected crossmargin.Book, got {type(book).__name__}")
        if not isinstance(universe, Universe):
            raise ConfigTypeError(
                f"universe: expected Universe, got {type(universe).__name__}", field="universe"
            )
        cols = _log_codes(universe, log)
        engine = _core.Engine(universe.compiled, _threads(threads))
        resident = _core.Monitor.replay(engine, book.grouping(universe), cols)
        self = cls.__new__(cls)
        self.universe = universe
        self.levels = Levels(float(resident.margin_call))
        self._engine = engine
        self._resident = resident
        return self

    # ---- changes -------------------------------------------------------------------------
    def on_prices(self, prices: Mapping[str, float] | tuple[Any, Any]) -> Table:
        """New absolute prices: a market's mark, an asset's price, or an underlying's price,
        which moves its perps, futures and asset by the ratio to its current price (as
        ``prices=`` does from the reference); options whose underlying moved are repriced
        (``crossmargin.prices``), an option named keeps the mark given. Or the whole pair
        ``(asset_prices, marks)`` in universe order (as :attr:`prices` returns it).
        Re-evaluates only the accounts that read a price that changed.

        Returns:
            The crossings (``account``, ``previous``, ``level``, ``ratio_before``,
            ``ratio_after``), by account id.

        Raises:
            PriceError: an unknown symbol, a non-finite or non-positive price (the monitor
                unchanged).
        """
        assets, marks = self._tick(prices)
        return _crossings(self._resident.on_prices((assets, marks)))

    def _tick(self, prices: Any) -> tuple[np.ndarray, np.ndarray]:
        u = self.universe
        if isinstance(prices, tuple | list):
            # the whole vectors (asset prices, marks) in universe order, checked as prices=
            return resolve(u, tuple(prices))
        if not isinstance(prices, Mapping):
            raise PriceTypeError(
                f"prices: expected a mapping symbol → price, got {type(prices).__name__}",
                field="prices",
            )
        values: dict[str, float] = {}
        for key, value in prices.items():
            if not isinstance(key, str):
                raise PriceTypeError(f"prices: key {show(key)} is not a symbol", field="prices")
            if key not in u.underlyings and key not in u.asset_index and key not in u.market_index:
                raise PriceError(
                    f"prices[{key}]: not an asset, market or underlying", field=f"prices[{key}]"
                )
            if not is_number(value):
                raise PriceTypeError(
                    f"prices[{key}]: {show(value)} is not a number", field=f"prices[{key}]"
                )
            v = float(value)
            if not math.isfinite(v) or v <= 0:
                raise PriceError(
                    f"prices[{key}]: {v} must be finite and > 0", field=f"prices[{key}]"
                )
            values[key] = v
        assets, marks = (np.array(a, dtype=np.float64) for a in self._resident.prices())
        before = underlying_spots(u, assets, marks)
        for key, v in values.items():
            if key in u.underlyings:
                if not (math.isfinite(before[key]) and before[key] > 0):
                    raise PriceError(
                        f"prices[{key}]: the underlying has no current price to move from "
                        "(no asset or perp of its symbol); price its markets directly",
                        field=f"prices[{key}]",
                    )
                factor = v / before[key]
                for k, m in enumerate(u.markets):
                    if m.underlying == key and not m.is_option:
                        marks[k] = marks[k] * factor
                if key in u.asset_index:
                    i = u.asset_index[key]
                    assets[i] = assets[i] * factor
        for key, v in values.items():
            if key in u.asset_index:
                assets[u.asset_index[key]] = v
        for key, v in values.items():
            if key in u.market_index:
                marks[u.market_index[key]] = v
        after = underlying_spots(u, assets, marks)
        # Options follow a moved underlying; an option named, or on an unmoved underlying,
        # keeps its mark.
        keep = {
            k
            for k, m in enumerate(u.markets)
            if m.is_option and (m.symbol in values or after[m.underlying] == before[m.underlying])
        }
        reprice_options(u, assets, marks, keep)
        # reprice_options leaves an option whose underlying stands at its reference price
        # alone (its reference mark); after a tick that moved it back there, set that mark.
        for k, m in enumerate(u.markets):
            if (
                m.is_option
                and k not in keep
                and after[m.underlying] == u.reference_price(m.underlying)
            ):
                marks[k] = u.reference_marks[k]
        check_domain(u, assets, marks)
        return assets, marks

    def apply(
        self,
        balances: Mapping[str, Any] | None = None,
        positions: Mapping[str, Any] | None = None,
        orders: Mapping[str, Any] | None = None,
        *,
        cancel_orders: Mapping[str, Any] | None = None,
    ) -> Table:
        """Row changes as new states, keyed like the book: a balance by (account, asset), a
        position by (account, market, side), open orders by (account, market) — the orders
        given are that key's whole new set; a zero balance or position removes its row;
        ``cancel_orders`` (``account``, ``market``) empties keys. The columns are those of
        :meth:`Book.from_arrays`, with its checks (typed errors naming the row); a balance
        key given twice is a ``BookError`` naming both rows. Re-evaluates the accounts
        touched.

        Returns:
            The crossings, by account id.

        >>> mon.apply(balances={"account": [1], "asset": ["USDT"], "qty": [5.0]})  # doctest: +SKIP
        """
        u = self.universe
        batch = Book.from_arrays(balances, positions, orders)
        a_map, m_map = batch.remaps(u)
        b, p, o = batch.balances, batch.positions, batch.orders
        cancel_a, cancel_m = _cancels(u, cancel_orders)
        empty_i = np.zeros(0, dtype=np.int64)
        empty_u = np.zeros(0, dtype=np.uint32)
        empty_f = np.zeros(0, dtype=np.float64)
        changes = {
            "bal_account": b["account"],
            "bal_asset": a_map[b["asset"].codes] if len(b["qty"]) else empty_u,
            "bal_qty": b["qty"],
            "pos_account": p["account"],
            "pos_market": m_map[p["market"].codes] if len(p["qty"]) else empty_u,
            "pos_qty": p["qty"],
            "pos_entry_price": p["entry_price"],
            "pos_isolated_margin": p["isolated_margin"],
            "pos_side": np.ascontiguousarray(p["side"], dtype=np.uint8),
            "ord_account": o["account"] if o is not None else empty_i,
            "ord_market": m_map[o["market"].codes] if o is not None and len(o["qty"]) else empty_u,
            "ord_side": o["side"] if o is not None else np.zeros(0, dtype=np.uint8),
            "ord_qty": o["qty"] if o is not None else empty_f,
            "ord_price": o["price"] if o is not None else empty_f,
            "ord_reduce_only": o["reduce_only"] if o is not None else np.zeros(0, dtype=bool),
            "clear_account": cancel_a,
            "clear_market": cancel_m,
        }
        changes = {k: np.ascontiguousarray(v) for k, v in changes.items()}
        return _crossings(self._resident.apply(changes))

    def fill(
        self,
        account: int,
        market: str,
        side: str,
        qty: float,
        price: float,
        *,
        position_side: str = "both",
    ) -> Fill:
        """A fill of ``qty`` (> 0) contracts bought (``side="buy"``) or sold (``"sell"``) at
        ``price`` on the account's position in ``market`` (``position_side``: ``both``, or a
        hedge-mode ``long`` / ``short`` leg), booked as the venue books it (docs/MODEL.md
        "Fills"): the new size, the average entry price, the realised P&L paid to the settle
        balance (an option's premium instead), a closed position's isolated margin returned.

        Returns:
            A :class:`Fill` with the position's new state, the cash and the crossings.

        >>> mon.fill(1, "BTCUSDT", "sell", 0.5, 61_000.0).realised_pnl   # doctest: +SKIP
        500.0
        """
        u = self.universe
        if isinstance(account, bool | np.bool_) or not isinstance(account, int | np.integer):
            raise BookTypeError(
                f"fill: account {show(account)} is not an integer", column="account"
            )
        if not isinstance(market, str) or market not in u.market_index:
            raise BookError(f"fill: market {show(market)} is not in the universe", column="market")
        sides = {"buy": 1.0, "sell": -1.0}
        if not isinstance(side, str) or side.lower() not in sides:
            raise BookError(f"fill: side {show(side)} is not 'buy' or 'sell'", column="side")
        if not isinstance(position_side, str) or position_side.lower() not in POSITION_SIDES:
            raise BookError(
                f"fill: position_side {show(position_side)} is not one of "
                f"{', '.join(POSITION_SIDES)}",
                column="side",
            )
        if not is_number(qty):
            raise BookTypeError(f"fill: qty {show(qty)} is not a number", column="qty")
        if not (math.isfinite(float(qty)) and float(qty) > 0):
            raise BookError(f"fill: qty {qty} must be finite and > 0", column="qty")
        if not is_number(price):
            raise PriceTypeError(f"fill: price {show(price)} is not a number", field="price")
        if not (math.isfinite(float(price)) and float(price) > 0):
            raise PriceError(f"fill: price {price} must be finite and > 0", field="price")
        k, leg = u.market_index[market], POSITION_SIDES.index(position_side.lower())
        signed = sides[side.lower()] * float(qty)
        held = self._resident.position(int(account), k, leg)
        after = (held[0] if held is not None else 0.0) + signed
        if (leg == 1 and after < 0) or (leg == 2 and after > 0):
            raise BookError(
                f"fill: {side} {qty} would take the {position_side} leg of account {account} "
                f"in {market} to {after} (a hedge-mode leg keeps its sign)",
                table="positions",
                column="qty",
            )
        (q, entry, realised, cash, isolated), cols = self._resident.fill(
            int(account), k, leg, signed, float(price)
        )
        return Fill(q, entry, realised, cash, isolated, _crossings(cols))

    def refresh(self, universe: Universe | None = None) -> Table:
        """Re-evaluates every account at the current prices and rebuilds the index exactly.
        ``universe``: a replacement with the same assets and markets in the same order,
        typically rebuilt from :meth:`snapshot`'s book (book-wide parameters: dYdX open
        interest, Drift total deposits); the monitor evaluates with it from now on.

        Returns:
            The crossings."""
        if universe is None:
            return _crossings(self._resident.refresh())
        if not isinstance(universe, Universe):
            raise ConfigTypeError(
                f"universe: expected Universe, got {type(universe).__name__}", field="universe"
            )
        same = [a.symbol for a in universe.assets] == [a.symbol for a in self.universe.assets]
        same = same and [m.symbol for m in universe.markets] == [
            m.symbol for m in self.universe.markets
        ]
        if not same:
            raise ConfigError(
                "universe: a refresh keeps the assets and markets (same symbols, same order)",
                field="universe",
            )
        out = _crossings(self._resident.refresh(universe.compiled))
        self.universe = universe
        return out

    # ---- state ---------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """The number of the last operation (0: none since the start)."""
        return int(self._resident.seq)

    @property
    def prices(self) -> tuple[np.ndarray, np.ndarray]:
        """The current (asset prices, marks), in universe order (copies)."""
        a, m = self._resident.prices()
        return a, m

    def snapshot(self) -> tuple[Book, MarginResult]:
        """The current rows as an ordinary :class:`Book` (symbols as universe indices) and
        its :class:`MarginResult` — what ``Engine(universe).evaluate(book,
        prices=mon.prices)`` returns, bit for bit."""
        b, p, o, r = self._resident.snapshot()
        book = Book.from_arrays(b, p, o if len(o["qty"]) else None)
        r = dict(r)
        del r["level"]
        return book, MarginResult(r)

    def riskiest(self, n: int = 10) -> Table:
        """The ``n`` riskiest accounts: margin ratio descending (+inf first), then level,
        then account id; the margin columns with ``level`` by name."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"n: {show(n)} must be an integer ≥ 0", field="n")
        cols = dict(self._resident.riskiest(n))
        cols["level"] = np.array(LEVELS, dtype=object)[np.asarray(cols["level"], dtype=np.intp)]
        order = ["account", "level", "margin_ratio", "equity", "adj_equity_maint", "mm"]
        rest = [k for k in cols if k not in order]
        return Table({k: cols[k] for k in order + rest})

    def log(self) -> Table:
        """The audit log: every applied change and every crossing, one row each, numbered by
        operation (``seq``; 0 = the starting prices and threshold), symbols and kinds by
        name (docs/MODEL.md "Audit log"). ``to_parquet(path)`` writes it;
        :meth:`replay` reads it back."""
        return _log_table(self.universe, self._resident.log())

    def same_log(self, other: Monitor) -> bool:
        """Whether this monitor's log equals ``other``'s bit for bit."""
        return bool(self._resident.same_log(other._resident))

    def crossings(self, *, since: int = 0) -> Iterator[Crossing]:
        """Every crossing of operations ``since`` and later, in order (a generator over the
        log)."""
        if isinstance(since, bool) or not isinstance(since, int):
            raise ConfigTypeError(f"since: {show(since)} is not an integer", field="since")
        log = self._resident.log()
        rows = np.flatnonzero((log["kind"] == LOG_KINDS.index("crossing")) & (log["seq"] >= since))
        for r in rows:
            yield Crossing(
                int(log["seq"][r]),
                int(log["account"][r]),
                LEVELS[int(log["previous"][r])],
                LEVELS[int(log["level"][r])],
                float(log["ratio_before"][r]),
                float(log["ratio_after"][r]),
            )

    def stream(
        self, ticks: Iterable[tuple[Any, Mapping[str, float]]], *, top: int = 10
    ) -> Iterator[TickReport]:
        """Applies ``(label, prices)`` ticks in order and yields, after each, its crossings
        and the ``top`` riskiest accounts."""
        for label, prices in ticks:
            crossings = self.on_prices(prices)
            yield TickReport(label, crossings, self.riskiest(top))


def _threads(threads: int | None) -> int | None:
    if threads is not None and (
        not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS
    ):
        raise ConfigError(
            f"threads: {threads!r} must be an integer in [1, {MAX_THREADS}] or None",
            field="threads",
        )
    return threads


def _cancels(universe: Universe, cancel: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    if cancel is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)
    if not isinstance(cancel, Mapping) or "account" not in cancel or "market" not in cancel:
        raise BookError("cancel_orders: expected columns 'account' and 'market'", table="orders")
    accounts = _ints(cancel["account"], "cancel_orders", "account")
    markets = list(cancel["market"])
    if len(markets) != len(accounts):
        raise BookError(
            f"cancel_orders: {len(accounts)} accounts for {len(markets)} markets",
            table="orders",
        )
    codes = np.zeros(len(markets), dtype=np.uint32)
    for r, m in enumerate(markets):
        if not isinstance(m, str) or m not in universe.market_index:
            raise BookError(
                f"cancel_orders row {r}: unknown market {show(m)}",
                table="orders",
                row=r,
                column="market",
            )
        codes[r] = universe.market_index[m]
    return accounts, codes


def _log_table(universe: Universe, cols: Mapping[str, Any]) -> Table:
    kinds = np.array(LOG_KINDS, dtype=object)[np.asarray(cols["kind"], dtype=np.intp)]
    assets = np.array([a.symbol for a in universe.assets] + [""], dtype=object)
    markets = np.array([m.symbol for m in universe.markets] + [""], dtype=object)
    code = np.asarray(cols["symbol"], dtype=np.intp)
    is_asset = np.isin(kinds, list(_ASSET_KINDS))
    none = np.isin(kinds, list(_NO_SYMBOL))
    symbol = np.where(
        none,
        "",
        np.where(
            is_asset,
            assets[np.minimum(code, len(assets) - 1)],
            markets[np.minimum(code, len(markets) - 1)],
        ),
    ).astype(object)
    out = {k: cols[k] for k in LOG_COLUMNS}
    out["kind"] = kinds
    out["symbol"] = symbol
    return Table(out)


def _log_codes(universe: Universe, log: Any) -> dict[str, np.ndarray]:
    """A log table (symbols and kinds by name) → the core's columns."""
    if isinstance(log, Table):
        cols = {k: log[k] for k in log.columns}
    elif isinstance(log, Mapping):
        cols = dict(log)
    else:
        raise TableError(f"log: expected a Table of the log's columns, got {type(log).__name__}")
    missing = [c for c in LOG_COLUMNS if c not in cols]
    if missing:
        raise TableError(f"log: missing column {missing[0]!r}", column=missing[0])
    # By distinct value (a log has few kinds and symbols), then scattered back to the rows.
    kind_names, kind_rows = np.unique(np.asarray(cols["kind"]).astype(str), return_inverse=True)
    bad = [str(k) for k in kind_names if k not in LOG_KINDS]
    if bad:
        r = int(np.flatnonzero(kind_names[kind_rows] == bad[0])[0])
        raise ConfigError(f"log row {r}: unknown kind {bad[0]!r}", field=f"log[{r}].kind")
    kinds = np.array([LOG_KINDS.index(k) for k in kind_names], dtype=np.uint8)[kind_rows]
    names = np.asarray(cols["symbol"]).astype(str)
    is_asset = np.isin(kinds, [LOG_KINDS.index(k) for k in _ASSET_KINDS])
    no_symbol = np.isin(kinds, [LOG_KINDS.index(k) for k in _NO_SYMBOL])
    code = np.zeros(len(kinds), dtype=np.uint32)
    for rows, index, what in (
        (is_asset & ~no_symbol, universe.asset_index, "asset"),
        (~is_asset & ~no_symbol, universe.market_index, "market"),
    ):
        distinct, where = np.unique(names[rows], return_inverse=True)
        unknown = [str(s) for s in distinct if s not in index]
        if unknown:
            r = int(np.flatnonzero(rows & (names == unknown[0]))[0])
            raise ConfigError(
                f"log row {r}: unknown {what} {unknown[0]!r}", field=f"log[{r}].symbol"
            )
        code[rows] = np.array([index[s] for s in distinct], dtype=np.uint32)[where]
    out = {
        "seq": np.asarray(cols["seq"], dtype=np.uint64),
        "kind": kinds,
        "account": np.asarray(cols["account"], dtype=np.int64),
        "symbol": code,
        "side": np.asarray(cols["side"], dtype=np.uint8),
        "reduce_only": np.asarray(cols["reduce_only"], dtype=bool),
        "previous": np.asarray(cols["previous"], dtype=np.uint8),
        "level": np.asarray(cols["level"], dtype=np.uint8),
    }
    for c in ("qty", "price", "isolated_margin", "pnl", "ratio_before", "ratio_after"):
        out[c] = np.asarray(cols[c], dtype=np.float64)
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def read_log(path: str | Path) -> Table:
    """An audit log written by ``Monitor.log().to_parquet(path)``."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return Table({c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names})


def read_ticks(path: str | Path) -> list[tuple[Any, dict[str, float]]]:
    """A tick file (Parquet or CSV): columns ``symbol`` and ``price`` (absolute prices, as
    :meth:`Monitor.on_prices` takes them) and optionally ``tick``, a label that groups
    consecutive rows into one tick (without it, each row is a tick). Returns
    ``[(label, {symbol: price}), ...]`` in file order."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    p = Path(path)
    t = pcsv.read_csv(p) if p.suffix.lower() == ".csv" else pq.read_table(p)
    for c in ("symbol", "price"):
        if c not in t.column_names:
            raise TableError(f"{p}: the tick file has no column {c!r}", column=c)
    symbols = t.column("symbol").to_pylist()
    prices = t.column("price").to_pylist()
    labels = t.column("tick").to_pylist() if "tick" in t.column_names else list(range(len(symbols)))
    out: list[tuple[Any, dict[str, float]]] = []
    for r, (label, s, v) in enumerate(zip(labels, symbols, prices, strict=True)):
        if not isinstance(s, str):
            raise PriceTypeError(f"{p} row {r}: symbol {show(s)} is not text", field="symbol")
        if not is_number(v):
            raise PriceTypeError(f"{p} row {r}: price {show(v)} is not a number", field=s)
        if out and out[-1][0] == label:
            out[-1][1][s] = float(v)
        else:
            out.append((label, {s: float(v)}))
    return out


__all__ = [
    "LEVELS",
    "LOG_COLUMNS",
    "LOG_KINDS",
    "Crossing",
    "Fill",
    "Levels",
    "Monitor",
    "TickReport",
    "read_log",
    "read_ticks",
]
