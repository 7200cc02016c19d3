"""The book: balances and positions as two long columnar tables, and open orders as an
optional third.

A position row has a ``side``: ``both`` (one-way mode, the net position; the default),
``long`` or ``short`` (a hedge-mode leg); (account, market, side) is the key
(docs/MODEL.md "Book"). Open orders (account, market, side buy/sell, qty, price,
reduce_only) lock initial margin only (docs/MODEL.md "Open orders").

Rows need not be sorted and account ids are arbitrary int64. Symbols are dictionary-encoded
here; the Rust core groups the rows by account once, on construction, and every later call
reuses that grouping: a book without open orders is grouped straight into the evaluation
kernel's layout (one copy of the rows), and the per-account (CSR) grouping that liquidation
prices, the cascade and the other account-by-account models read is built from the columns
on the first such call (docs/ARCHITECTURE.md "One copy of the rows"). Columns are kept as
given (no copy when they already have the right dtype), so the book can be handed on,
written out or checked by the pure-Python reference.

A book is immutable, so that its grouping never goes stale: ``balances`` and ``positions``
are read-only mappings that cannot be reassigned, and their numpy columns are read-only
views (writing into one raises ``ValueError``). A column taken over from the caller without
conversion shares its memory (nothing large is copied): the caller's own array stays
writable, and must not be written to while the book is in use. To change a book, build a
new one (``Book.from_arrays({**book.balances, "qty": new_qty}, book.positions)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from crossmargin import _core
from crossmargin._optional import require
from crossmargin._validate import is_number, show
from crossmargin.exceptions import BookError, BookTypeError
from crossmargin.resources import book_bytes, check_memory

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from crossmargin.universe import Universe

BALANCE_COLUMNS = ("account", "asset", "qty")
POSITION_COLUMNS = ("account", "market", "qty", "entry_price", "isolated_margin", "side")
ORDER_COLUMNS = ("account", "market", "side", "qty", "price", "reduce_only")
#: Position sides by code (0 both, 1 long, 2 short); venue spellings (BOTH / LONG / SHORT)
#: are read case-insensitively.
POSITION_SIDES: tuple[str, ...] = _core.POSITION_SIDES
#: Order sides by code (0 buy, 1 sell).
ORDER_SIDES: tuple[str, ...] = _core.ORDER_SIDES


@dataclass(frozen=True)
class SymbolColumn:
    """A dictionary-encoded column: ``codes`` index ``labels``; with ``labels=None`` the codes
    are already indices into the universe's list."""

    codes: np.ndarray
    labels: tuple[str, ...] | None
    # Indices: the largest + 1, where the reader found it checking the column (the grouping
    # and each binding would otherwise pass over the codes again for it).
    known_n: int | None = field(default=None, compare=False, repr=False)

    @property
    def n_codes(self) -> int:
        if self.labels is not None:
            return len(self.labels)
        if self.known_n is not None:
            return self.known_n
        return int(self.codes.max()) + 1 if len(self.codes) else 0

    def remap(self, index: Mapping[str, int], n: int, table: str, column: str) -> np.ndarray:
        """Book codes → universe indices; an unknown symbol names its first row."""
        if self.labels is None:
            # max first: no boolean temporary the size of the column unless one is bad
            if self.n_codes > n:
                r = int(np.flatnonzero(self.codes >= n)[0])
                raise BookError(
                    f"{table} row {r}: {column} index {int(self.codes[r])} is out of range "
                    f"(the universe has {n})",
                    table=table,
                    row=r,
                    column=column,
                )
            return np.arange(self.n_codes, dtype=np.uint32)
        used = np.bincount(self.codes, minlength=len(self.labels)) > 0
        unknown = [k for k, s in enumerate(self.labels) if used[k] and s not in index]
        if unknown:
            rows = {k: int(np.argmax(self.codes == k)) for k in unknown}
            k = min(rows, key=rows.__getitem__)
            r = rows[k]
            raise BookError(
                f"{table} row {r}: unknown {column} '{self.labels[k]}'",
                table=table,
                row=r,
                column=column,
            )
        # An unused label maps anywhere: no row reads it.
        return np.array([index.get(s, 0) for s in self.labels], dtype=np.uint32)

    def symbols(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """The column as symbols (object array)."""
        table = np.array(self.labels if self.labels is not None else names, dtype=object)
        return table[self.codes] if len(self.codes) else np.array([], dtype=object)


_NO_SIDES = np.zeros(0, dtype=np.uint8)


def _read_only(value: Any) -> Any:
    """A read-only view of a column (the data is shared, not copied)."""
    if isinstance(value, SymbolColumn):
        return SymbolColumn(_read_only(value.codes), value.labels, value.known_n)
    view = np.asarray(value).view()
    view.setflags(write=False)
    return view


class Book:
    """Balances, positions (each with its side) and optional open orders, grouped by account
    once. Immutable (module docstring): ``balances``, ``positions`` and ``orders`` are
    read-only mappings of read-only columns.

    Build with :meth:`from_arrays`, :meth:`from_pandas`, :meth:`from_arrow`,
    :meth:`from_polars` or :func:`crossmargin.read_book`.
    """

    __slots__ = (
        "_accounts",
        "_balances",
        "_grouped",
        "_groupings",
        "_orders",
        "_positions",
        "_remaps",
    )

    _balances: Mapping[str, Any]
    _positions: Mapping[str, Any]
    _orders: Mapping[str, Any] | None

    def __init__(
        self,
        balances: Mapping[str, Any],
        positions: Mapping[str, Any],
        orders: Mapping[str, Any] | None = None,
        *,
        grouped: _core.GroupedBook | None = None,
    ) -> None:
        """Converted columns (as :meth:`from_arrays` makes them); a positions table without
        ``side`` is all one-way. ``orders``: converted order columns sharing the positions'
        market encoding, or None. ``grouped``: the core's grouping of exactly these columns,
        when the core made both from rows it already held grouped (a cascade's final book);
        the book is then not grouped again."""
        positions = dict(positions)
        one_way = "side" not in positions
        if one_way:
            positions["side"] = np.zeros(len(positions["qty"]), dtype=np.uint8)
        self._balances = MappingProxyType({k: _read_only(v) for k, v in balances.items()})
        self._positions = MappingProxyType({k: _read_only(v) for k, v in positions.items()})
        self._orders = (
            None
            if orders is None
            else MappingProxyType({k: _read_only(v) for k, v in orders.items()})
        )
        b, p = self._balances, self._positions
        check_memory(book_bytes(len(b["qty"]), len(p["qty"]), converted=False), "grouping the book")
        # The core reads the columns by name (asset / market: a SymbolColumn's codes); a
        # book without hedge legs hands it no sides (all one-way: nothing to check or read).
        core_p = {**p, "side": _NO_SIDES} if one_way or not p["side"].any() else p
        if grouped is None:
            grouped = _core.GroupedBook(b, core_p, self._orders)
        self._grouped = grouped
        self._accounts: np.ndarray | None = None
        self._remaps: dict[tuple[tuple[str, ...], ...], tuple[np.ndarray, np.ndarray]] = {}
        self._groupings: dict[tuple[tuple[str, ...], ...], _core.BookView] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        # Private slots are filled once (in __init__, or a cache on first use): never reassigned.
        if name.startswith("_") and getattr(self, name, None) is None:
            object.__setattr__(self, name, value)
            return
        raise AttributeError(
            f"Book is immutable: cannot set {name!r} (build a new book, e.g. Book.from_arrays)"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Book is immutable: cannot delete {name!r}")

    @property
    def balances(self) -> Mapping[str, Any]:
        """The balance columns (read-only): ``account`` (int64), ``asset``
        (:class:`SymbolColumn`), ``qty`` (float64)."""
        return self._balances

    @property
    def positions(self) -> Mapping[str, Any]:
        """The position columns (read-only): ``account``, ``market`` (:class:`SymbolColumn`),
        ``qty``, ``entry_price``, ``isolated_margin``, ``side`` (uint8 codes into
        :data:`POSITION_SIDES`: 0 both, 1 long, 2 short)."""
        return self._positions

    @property
    def orders(self) -> Mapping[str, Any] | None:
        """The open-order columns (read-only), or None: ``account``, ``market``
        (:class:`SymbolColumn`, the positions' encoding), ``side`` (uint8: 0 buy, 1 sell),
        ``qty``, ``price``, ``reduce_only`` (bool)."""
        return self._orders

    @property
    def has_sides(self) -> bool:
        """Whether any position is a hedge-mode leg (side long or short)."""
        return bool(self._grouped.has_sides)

    @property
    def has_orders(self) -> bool:
        """Whether the book holds open orders."""
        return bool(self._grouped.has_orders)

    # ---- constructors ------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        balances: Mapping[str, Any] | None = None,
        positions: Mapping[str, Any] | None = None,
        orders: Mapping[str, Any] | None = None,
    ) -> Book:
        """Columns as numpy arrays (or anything array-like). ``asset`` / ``market`` hold
        symbols (str) or integer indices into the universe's lists; ``isolated_margin`` may
        be omitted (all cross), and so may ``side`` (all ``both``: one-way mode; else
        ``both`` / ``long`` / ``short``, any case, or the codes 0 / 1 / 2); any table may be
        omitted. ``orders`` (optional): ``account``, ``market``, ``side`` (``buy`` / ``sell``,
        any case, or 0 / 1), ``qty`` (> 0), ``price`` (> 0), ``reduce_only`` (optional,
        false by default).

        Fast path: int64 ``account`` ids, integer symbol indices (uint32) and float64 values
        are taken without a copy, and rows already grouped (sorted by account, each account's
        symbols in ascending order, as a previous book's columns are) are detected and skip
        the moves of grouping (docs/ARCHITECTURE.md "Grouping"); string symbols add their
        dictionary encoding (Arrow arrays and pandas' Arrow-backed str columns, pandas 3's
        default, read from the array as it is, in parallel; object columns of str from
        their objects).
        The grouping runs on all cores, without the GIL.

        Returns the immutable, grouped :class:`Book`; a bad row raises
        :class:`~crossmargin.exceptions.BookError` (or ``BookTypeError``) naming its table,
        row and column.

        Example::

            book = Book.from_arrays(
                {"account": [1], "asset": ["USDT"], "qty": [10_000.0]},
                {"account": [1, 1], "market": ["BTCUSDT"] * 2, "qty": [0.5, -0.2],
                 "entry_price": [20_000.0] * 2, "side": ["LONG", "SHORT"]},
                {"account": [1], "market": ["BTCUSDT"], "side": ["buy"], "qty": [0.1],
                 "price": [19_000.0]},
            )
        """
        bal = _table(balances, "balances")
        pos = _table(positions, "positions")
        n_b = _length(bal, BALANCE_COLUMNS, "balances")
        n_p = _length(pos, POSITION_COLUMNS[:4], "positions")
        check_memory(book_bytes(n_b, n_p), f"a book of {n_b} balance and {n_p} position rows")
        p = _positions(pos)
        o = None if orders is None else _orders(_table(orders, "orders"))
        if o is not None:
            p["market"], o["market"] = _shared_markets(p["market"], o["market"])
        return cls(_balances(bal), p, o)

    @classmethod
    def from_pandas(
        cls,
        balances: pd.DataFrame | None = None,
        positions: pd.DataFrame | None = None,
        orders: pd.DataFrame | None = None,
    ) -> Book:
        return cls.from_arrays(balances, positions, orders)

    @classmethod
    def from_arrow(
        cls,
        balances: pa.Table | None = None,
        positions: pa.Table | None = None,
        orders: pa.Table | None = None,
    ) -> Book:
        return cls.from_arrays(balances, positions, orders)

    @classmethod
    def from_polars(cls, balances: Any = None, positions: Any = None, orders: Any = None) -> Book:
        return cls.from_arrow(
            None if balances is None else balances.to_arrow(),
            None if positions is None else positions.to_arrow(),
            None if orders is None else orders.to_arrow(),
        )

    # ---- facts -------------------------------------------------------------------------
    @property
    def accounts(self) -> np.ndarray:
        """Account ids that appear in either table, ascending (the results' row order)."""
        if self._accounts is None:
            self._accounts = self._grouped.accounts()
            self._accounts.setflags(write=False)
        return self._accounts

    @property
    def n_accounts(self) -> int:
        return int(self._grouped.n_accounts)

    @property
    def grouped_nbytes(self) -> int:
        """Bytes the engine's grouping holds: the kernel's layout and the account ids (a
        book without open orders), plus the CSR copy once a model reading accounts' rows
        (liquidation prices, the cascade, ...) has built it."""
        return int(self._grouped.nbytes)

    @property
    def nbytes(self) -> int:
        """Bytes of the input columns (the size a benchmark compares memory against)."""
        total = 0
        for t in (self.balances, self.positions, self.orders or {}):
            for v in t.values():
                total += v.codes.nbytes if isinstance(v, SymbolColumn) else v.nbytes
        return total

    def __len__(self) -> int:
        return self.n_accounts

    def __repr__(self) -> str:
        orders = "" if self.orders is None else f", orders={len(self.orders['qty'])}"
        return (
            f"Book(accounts={self.n_accounts}, balances={len(self.balances['qty'])}, "
            f"positions={len(self.positions['qty'])}{orders})"
        )

    def remaps(self, universe: Universe) -> tuple[np.ndarray, np.ndarray]:
        """(asset, market) code → universe index tables; cached per list of symbols (a universe
        repriced for one call shares them)."""
        key = _symbols_key(universe)
        hit = self._remaps.get(key)
        if hit is not None:
            return hit
        a = self.balances["asset"].remap(
            universe.asset_index, len(universe.assets), "balances", "asset"
        )
        m = self.positions["market"].remap(
            universe.market_index, len(universe.markets), "positions", "market"
        )
        if self.orders is not None:
            # Shared labels: the orders' remap names an unknown market an order uses.
            om = self.orders["market"].remap(
                universe.market_index, len(universe.markets), "orders", "market"
            )
            if len(om) > len(m):  # integer indices: the codes either table uses
                m = om
            elif self.positions["market"].labels is not None:
                used = np.zeros(len(m), dtype=bool)
                used[self.orders["market"].codes] = True
                m = np.where(used, om, m).astype(np.uint32)
        self._remaps[key] = (a, m)
        return a, m

    def grouping(self, universe: Universe) -> _core.BookView:
        """The book bound to ``universe``: the grouped rows the kernels read with their code →
        universe index remaps, as the engine's methods take it; cached per list of symbols.
        Each account's rows are summed in ascending universe index (the canonical order,
        docs/MODEL.md "Canonical order"): when the book's codes (sorted symbols, or indices)
        already follow that order the view reads the book's own grouping, otherwise a
        regrouped copy whose codes are universe indices (identity remaps)."""
        key = _symbols_key(universe)
        hit = self._groupings.get(key)
        if hit is not None:
            return hit
        a, m = self.remaps(universe)
        view = self._grouped.bind(universe.compiled, a, m)
        self._groupings[key] = view
        return view

    def columns(self, universe: Universe) -> tuple[dict[str, Any], dict[str, Any]]:
        """(balances, positions) as numpy columns with symbols spelled out (object arrays of
        str, via ``universe`` where the book holds universe indices); ``side`` as names
        (both / long / short) when the book holds hedge legs (a one-way book's columns are
        those it was read with)."""
        a_names = [a.symbol for a in universe.assets]
        m_names = [m.symbol for m in universe.markets]
        b = {k: (v.symbols(a_names) if k == "asset" else v) for k, v in self.balances.items()}
        p = {k: (v.symbols(m_names) if k == "market" else v) for k, v in self.positions.items()}
        if self.has_sides:
            names = np.array(POSITION_SIDES, dtype=object)
            p["side"] = names[np.asarray(p["side"], dtype=np.intp)]
        else:
            del p["side"]
        return b, p

    def order_columns(self, universe: Universe) -> dict[str, Any] | None:
        """The open orders as numpy columns, market symbols and sides (buy / sell) spelled
        out; None without orders."""
        if self.orders is None:
            return None
        m_names = [m.symbol for m in universe.markets]
        o = {k: (v.symbols(m_names) if k == "market" else v) for k, v in self.orders.items()}
        o["side"] = np.array(ORDER_SIDES, dtype=object)[np.asarray(o["side"], dtype=np.intp)]
        return o

    def to_arrow(self, universe: Universe) -> tuple[pa.Table, pa.Table]:
        """The two tables as pyarrow Tables, symbols spelled out (string columns; ``side`` as
        in :meth:`columns`). The orders: :meth:`orders_to_arrow`."""
        b, p = self.columns(universe)
        return _arrow(b, ("asset",)), _arrow(p, ("market", "side"))

    def orders_to_arrow(self, universe: Universe) -> pa.Table | None:
        """The open orders as a pyarrow Table (symbols and sides spelled out), or None."""
        o = self.order_columns(universe)
        return None if o is None else _arrow(o, ("market", "side"))

    def to_pandas(self, universe: Universe) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The two tables as pandas DataFrames, symbols spelled out (pandas is optional:
        ``pip install 'crossmargin[cli]'``)."""
        pd = require("pandas", "Book.to_pandas()")
        b, p = self.columns(universe)
        return pd.DataFrame(b), pd.DataFrame(p)


def _arrow(cols: dict[str, Any], text: tuple[str, ...]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {k: pa.array(v, type=pa.string()) if k in text else pa.array(v) for k, v in cols.items()}
    )


def _symbols_key(universe: Universe) -> tuple[tuple[str, ...], ...]:
    """What a remap depends on: the universe's asset and market symbols, in order."""
    return (tuple(universe.asset_index), tuple(universe.market_index))


# ---- column conversion -----------------------------------------------------------------
def _table(cols: Any, table: str) -> Mapping[str, Any]:
    """A table as a mapping of columns: a mapping, a pandas DataFrame or a pyarrow Table."""
    if cols is None:
        return {}
    if isinstance(cols, Mapping):
        return cols
    if hasattr(cols, "column_names") and hasattr(cols, "column"):  # pyarrow.Table
        return {n: cols.column(n) for n in cols.column_names}
    if hasattr(cols, "columns") and hasattr(cols, "__getitem__"):  # pandas.DataFrame
        return {c: cols[c] for c in cols.columns}
    raise BookError(
        f"{table}: expected a mapping of columns, a DataFrame or an Arrow table, "
        f"got {type(cols).__name__}",
        table=table,
    )


def _balances(cols: Mapping[str, Any]) -> dict[str, Any]:
    n = _length(cols, BALANCE_COLUMNS, "balances")
    return {
        "account": _accounts(cols.get("account", ()), "balances", n),
        "asset": _symbols(cols.get("asset", ()), "balances", "asset"),
        "qty": _floats(cols.get("qty", ()), "balances", "qty"),
    }


def _positions(cols: Mapping[str, Any]) -> dict[str, Any]:
    n = _length(cols, POSITION_COLUMNS[:4], "positions")
    iso = cols.get("isolated_margin")
    side = cols.get("side")
    return {
        "account": _accounts(cols.get("account", ()), "positions", n),
        "market": _symbols(cols.get("market", ()), "positions", "market"),
        "qty": _floats(cols.get("qty", ()), "positions", "qty"),
        "entry_price": _floats(cols.get("entry_price", ()), "positions", "entry_price"),
        "isolated_margin": np.zeros(n)
        if iso is None
        else _floats(iso, "positions", "isolated_margin"),
        "side": np.zeros(n, dtype=np.uint8)
        if side is None
        else _sides(side, POSITION_SIDES, "positions", n),
    }


def _orders(cols: Mapping[str, Any]) -> dict[str, Any]:
    n = _length(cols, ORDER_COLUMNS[:5], "orders") if cols else 0
    ro = cols.get("reduce_only")
    return {
        "account": _accounts(cols.get("account", ()), "orders", n),
        "market": _symbols(cols.get("market", ()), "orders", "market"),
        "side": _sides(cols.get("side", ()), ORDER_SIDES, "orders", n),
        "qty": _floats(cols.get("qty", ()), "orders", "qty"),
        "price": _floats(cols.get("price", ()), "orders", "price"),
        "reduce_only": np.zeros(n, dtype=bool) if ro is None else _flags(ro, "orders", n),
    }


def _sides(values: Any, names: tuple[str, ...], table: str, n: int) -> np.ndarray:
    """A side column as codes into ``names``: names in any case (the venues spell them
    BOTH / LONG / SHORT, BUY / SELL) or integer codes; anything else names its row."""
    if isinstance(values, list | tuple):  # numpy would turn [1, "long"] into text
        values = (
            np.array(values, dtype=object) if any(isinstance(x, str) for x in values) else values
        )
    a = _numpy(values, table, "side")
    if len(a) != n:
        raise BookError(
            f"{table}: column 'side' has {len(a)} rows, 'account' has {n}",
            table=table,
            column="side",
        )
    if a.dtype.kind in "iu":
        if len(a) and (a.min() < 0 or a.max() >= len(names)):
            r = int(np.argmax((a < 0) | (a >= len(names))))
            raise BookError(
                f"{table} row {r}: side code {a[r]} is not one of "
                + ", ".join(f"{i} ({s})" for i, s in enumerate(names)),
                table=table,
                row=r,
                column="side",
            )
        return np.ascontiguousarray(a, dtype=np.uint8)
    lookup = {s: i for i, s in enumerate(names)}
    out = np.empty(n, dtype=np.uint8)
    seen: dict[Any, int] = {}  # a long column holds a handful of spellings
    for r, x in enumerate(a.tolist()):
        code = seen.get(x) if isinstance(x, str) else None
        if code is None:
            code = lookup.get(x.lower()) if isinstance(x, str) else None
            if code is None:
                error = BookError if isinstance(x, str) else BookTypeError
                raise error(
                    f"{table} row {r}: side {show(x)} is not one of {', '.join(names)}",
                    table=table,
                    row=r,
                    column="side",
                )
            seen[x] = code
        out[r] = code
    return out


def _flags(values: Any, table: str, n: int) -> np.ndarray:
    """A boolean column (``reduce_only``): bools, 0 / 1, or true / false text."""
    a = _numpy(values, table, "reduce_only")
    if a.dtype.kind == "b":
        return np.ascontiguousarray(a)
    if a.dtype.kind in "iu" and ((a == 0) | (a == 1)).all():
        return a.astype(bool)
    out = np.empty(len(a), dtype=bool)
    for r, x in enumerate(a.tolist()):
        if isinstance(x, bool) or (isinstance(x, int) and x in (0, 1)):
            out[r] = bool(x)
        elif isinstance(x, str) and x.lower() in ("true", "false"):
            out[r] = x.lower() == "true"
        else:
            raise BookTypeError(
                f"{table} row {r}: reduce_only {show(x)} is not true or false",
                table=table,
                row=r,
                column="reduce_only",
            )
    return out


def _shared_markets(p: SymbolColumn, o: SymbolColumn) -> tuple[SymbolColumn, SymbolColumn]:
    """Positions and orders on one market encoding (one remap serves both): the union of
    their labels, sorted; integer indices stay as they are."""
    if p.labels is None and o.labels is None:
        return p, o
    if not len(p.codes) and p.labels is None:
        p = SymbolColumn(p.codes, ())
    if not len(o.codes) and o.labels is None:
        o = SymbolColumn(o.codes, ())
    if p.labels is None or o.labels is None:
        raise BookError(
            "orders: column 'market' must be spelled like the positions' (symbols in both, "
            "or universe indices in both)",
            table="orders",
            column="market",
        )
    labels = tuple(sorted(set(p.labels) | set(o.labels)))
    where = {s: i for i, s in enumerate(labels)}

    def recode(c: SymbolColumn) -> SymbolColumn:
        table = np.array([where[s] for s in c.labels or ()], dtype=np.uint32)
        codes = table[c.codes] if len(c.codes) else c.codes
        return SymbolColumn(np.ascontiguousarray(codes, dtype=np.uint32), labels)

    return recode(p), recode(o)


def _length(cols: Mapping[str, Any], required: tuple[str, ...], table: str) -> int:
    if not cols:
        return 0
    missing = [c for c in required if c not in cols]
    if missing:
        raise BookError(
            f"{table}: missing column '{missing[0]}' (needs {', '.join(required)})",
            table=table,
            column=missing[0],
        )
    try:
        return len(cols["account"])
    except TypeError:
        raise BookError(
            f"{table}: column 'account' must be a 1-d column, got {type(cols['account']).__name__}",
            table=table,
            column="account",
        ) from None


def _numpy(values: Any, table: str, column: str) -> np.ndarray:
    try:
        if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
            try:
                a = np.asarray(values.to_numpy(zero_copy_only=False))
            except TypeError:
                a = np.asarray(values.to_numpy())
        else:
            a = np.asarray(values)
    except (TypeError, ValueError):  # ragged nesting, an object numpy cannot hold
        raise BookTypeError(
            f"{table}: column '{column}' must be a 1-d column of values, "
            f"got {type(values).__name__}",
            table=table,
            column=column,
        ) from None
    if a.ndim != 1:
        raise BookError(
            f"{table}: column '{column}' must be 1-d, got {a.ndim} dimensions",
            table=table,
            column=column,
        )
    return a


def _accounts(values: Any, table: str, n: int) -> np.ndarray:
    a = _numpy(values, table, "account")
    if isinstance(values, list | tuple) and any(
        isinstance(x, bool | np.bool_) or (a.dtype.kind in "US" and not isinstance(x, str))
        for x in values
    ):  # numpy made 1 of True and text of [1, "7"]: check the cells as given
        a = np.asarray(values, dtype=object)
    if a.dtype.kind == "u" and len(a) and a.max() > np.iinfo(np.int64).max:
        r = int(np.argmax(a > np.iinfo(np.int64).max))
        raise BookError(
            f"{table} row {r}: account {a[r]} does not fit in int64",
            table=table,
            row=r,
            column="account",
        )
    if a.dtype.kind == "f" and len(a):
        bad = ~np.isfinite(a) | (a != np.round(a)) | (np.abs(a) >= 2.0**63)
        if bad.any():
            r = int(np.argmax(bad))
            raise BookError(
                f"{table} row {r}: account {a[r]} is not an integer id in the int64 range",
                table=table,
                row=r,
                column="account",
            )
    elif a.dtype.kind == "O" and len(a):
        # Python ints (e.g. beyond int64) or mixed objects: name the first row that is not
        # an integer id in the int64 range (not an int at all: BookTypeError).
        lo, hi = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
        for r, x in enumerate(a):
            is_int = isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)
            if not is_int or not lo <= x <= hi:
                raise (BookError if is_int else BookTypeError)(
                    f"{table} row {r}: account {show(x)} is not an integer id in the int64 range",
                    table=table,
                    row=r,
                    column="account",
                )
    elif a.dtype.kind not in "iu" and len(a):  # bool, text, dates...: every row is wrong
        raise BookTypeError(
            f"{table}: column 'account' must hold integer ids, got {a.dtype}",
            table=table,
            column="account",
        )
    return np.ascontiguousarray(a, dtype=np.int64)


def _floats(values: Any, table: str, column: str) -> np.ndarray:
    if isinstance(values, list | tuple):  # numpy would turn a bool among floats into 1.0
        for r, x in enumerate(values):
            if isinstance(x, bool | np.bool_):
                raise _bad_cell(table, r, column, x)
    a = _numpy(values, table, column)
    if a.dtype.kind in "cmMb":  # complex, timedelta, datetime, bool: not quantities
        raise BookTypeError(
            f"{table}: column '{column}' must be real numbers, got {a.dtype}",
            table=table,
            column=column,
        )
    if a.dtype.kind == "O":
        return _object_floats(a, table, column)
    try:
        return np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError):  # text that is not a number: name its row
        for r, x in enumerate(a):
            try:
                float(x)
            except (TypeError, ValueError):
                raise _bad_cell(table, r, column, x) from None
        raise BookTypeError(
            f"{table}: column '{column}' must be numeric, got {a.dtype}",
            table=table,
            column=column,
        ) from None


def _object_floats(a: np.ndarray, table: str, column: str) -> np.ndarray:
    """Cell by cell: a number (not a bool), numeric text, or missing (None, pandas NA, read
    as NaN, which the core refuses in a row it names, or takes as cross in
    ``isolated_margin``); anything else names its row."""
    out = np.empty(len(a), dtype=np.float64)
    for r, x in enumerate(a):
        if x is None or type(x).__name__ == "NAType":
            out[r] = np.nan
            continue
        if not (is_number(x) or isinstance(x, str | bytes)):
            raise _bad_cell(table, r, column, x)
        try:
            out[r] = float(x)
        except (TypeError, ValueError):
            raise _bad_cell(table, r, column, x) from None
        except OverflowError:
            raise BookError(
                f"{table} row {r}: {column} {show(x)} is beyond the float range",
                table=table,
                row=r,
                column=column,
            ) from None
    return out


def _bad_cell(table: str, row: int, column: str, value: Any) -> BookTypeError:
    return BookTypeError(
        f"{table} row {row}: {column} {show(value)} is not a number",
        table=table,
        row=row,
        column=column,
    )


def _symbols(values: Any, table: str, column: str) -> SymbolColumn:
    """Dictionary-encodes a symbol column (by the core: an Arrow string array from its
    buffers, an object column of str from its objects; anything else through pyarrow) or
    takes integer indices (or a book's own encoded column, as it is)."""
    import pyarrow as pa

    if isinstance(values, SymbolColumn):
        return values
    if hasattr(values, "cat") and hasattr(values.cat, "codes"):  # pandas categorical
        codes = np.asarray(values.cat.codes)
        labels = tuple(str(x) for x in values.cat.categories)
        return _coded(codes, labels, table, column)
    if _arrow_backed(values):
        # pandas' default str columns (pandas 3) and ArrowDtype columns: their Arrow array as
        # it is, rather than a fresh Python str object per row.
        values = pa.array(values)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and pa.types.is_dictionary(values.type):
        codes = values.indices.to_numpy(zero_copy_only=False)
        codes = np.where(values.is_null().to_numpy(zero_copy_only=False), -1, codes)
        return _coded(codes, tuple(str(x) for x in values.dictionary.to_pylist()), table, column)
    if isinstance(values, pa.Array) and (
        pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    ):
        values = values.to_numpy(zero_copy_only=False)
    a = values if isinstance(values, pa.Array) else _numpy(values, table, column)
    if isinstance(a, np.ndarray) and a.dtype.kind == "U" and isinstance(values, list | tuple):
        # numpy's fixed-width str would drop a symbol's trailing NULs: keep the str objects.
        a = np.array(values, dtype=object)
    if isinstance(a, np.ndarray) and a.dtype.kind in "iuf":
        if a.dtype.kind == "f" and len(a) and (~np.isfinite(a) | (a != np.round(a))).any():
            r = int(np.argmax(~np.isfinite(a) | (a != np.round(a))))
            raise BookError(
                f"{table} row {r}: {column} {a[r]} is neither a symbol nor an index",
                table=table,
                row=r,
                column=column,
            )
        # min / max first (no temporaries; no min of unsigned indices); the rows only when one
        # is out. The max is the column's number of codes.
        hi = a.max() if len(a) else -1
        if len(a) and ((a.dtype.kind != "u" and a.min() < 0) or hi >= 2**32 - 1):
            r = int(np.argmax((a < 0) | (a >= 2**32 - 1)))
            raise BookError(
                f"{table} row {r}: {column} index {a[r]} is out of range",
                table=table,
                row=r,
                column=column,
            )
        return SymbolColumn(np.ascontiguousarray(a, dtype=np.uint32), None, int(hi) + 1)
    if isinstance(a, np.ndarray) and a.dtype == object:
        encoded = _core.encode_str_objects(np.ascontiguousarray(a))
        if isinstance(encoded, tuple):
            return SymbolColumn(encoded[0], tuple(encoded[1]))
    try:
        arr = a if isinstance(a, pa.Array) else pa.array(a, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        kinds = [isinstance(x, str) for x in a] if isinstance(a, np.ndarray) else []
        bad_row = kinds.index(False) if False in kinds and True in kinds else None
        where = f" row {bad_row}" if bad_row is not None else ""
        raise BookError(
            f"{table}{where}: column '{column}' must hold symbols (str) or integer indices"
            + (f", got {a[bad_row]!r}" if bad_row is not None else ""),
            table=table,
            row=bad_row,
            column=column,
        ) from None
    encoded = _arrow_strings(arr)
    if isinstance(encoded, tuple):
        return SymbolColumn(encoded[0], tuple(encoded[1]))
    if isinstance(encoded, int):
        raise _missing(table, encoded, column)
    enc = arr.dictionary_encode()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    if enc.null_count:
        codes = np.where(enc.is_null().to_numpy(zero_copy_only=False), -1, codes)
    return _coded(codes, tuple(enc.dictionary.to_pylist()), table, column)


def _arrow_backed(values: Any) -> bool:
    """A pandas column stored as an Arrow array: ``StringDtype("pyarrow")`` (pandas 3's
    default for str) or any ``ArrowDtype``."""
    if isinstance(values, np.ndarray):
        return False
    dtype = getattr(values, "dtype", None)
    return getattr(dtype, "storage", None) == "pyarrow" or hasattr(dtype, "pyarrow_dtype")


def _arrow_strings(arr: Any) -> tuple[np.ndarray, list[str]] | int | None:
    """Codes over sorted labels of an Arrow ``string`` / ``large_string`` array, read from its
    buffers by the core (in parallel, without the GIL); an int: its first null row; None:
    another type (or bytes that are not UTF-8), left to Arrow's dictionary encoding."""
    import pyarrow as pa

    large = pa.types.is_large_string(arr.type)
    if not (large or pa.types.is_string(arr.type)) or len(arr) == 0:
        return None
    validity, offsets, data = arr.buffers()
    rows = slice(arr.offset, arr.offset + len(arr) + 1)
    if large:
        offsets = np.frombuffer(offsets, dtype=np.int64)[rows]
    else:
        offsets = np.frombuffer(offsets, dtype=np.int32)[rows]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    bits = None
    if validity is not None and arr.null_count:
        bits = np.frombuffer(validity, dtype=np.uint8)
    return _core.encode_arrow_strings(offsets, data, bits, arr.offset)


def _missing(table: str, row: int, column: str) -> BookError:
    return BookError(f"{table} row {row}: {column} is missing", table=table, row=row, column=column)


def _coded(codes: np.ndarray, labels: tuple[str, ...], table: str, column: str) -> SymbolColumn:
    """Codes over sorted labels: the code of a symbol, and so the order in which an account's
    rows are summed, does not depend on which rows a book (or a shard of it) holds."""
    if len(codes) and (codes < 0).any():
        r = int(np.argmax(codes < 0))
        raise _missing(table, r, column)
    order = sorted(range(len(labels)), key=labels.__getitem__)
    rank = np.empty(len(labels), dtype=np.uint32)
    rank[order] = np.arange(len(labels), dtype=np.uint32)
    codes = rank[codes] if len(codes) else np.asarray(codes, dtype=np.uint32)
    return SymbolColumn(
        np.ascontiguousarray(codes, dtype=np.uint32), tuple(labels[i] for i in order)
    )


__all__ = [
    "BALANCE_COLUMNS",
    "ORDER_COLUMNS",
    "ORDER_SIDES",
    "POSITION_COLUMNS",
    "POSITION_SIDES",
    "Book",
    "SymbolColumn",
]
