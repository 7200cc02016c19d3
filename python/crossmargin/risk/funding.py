"""Perpetual funding: the rate from the premium index, and payments that are exactly
zero-sum per market.

Rate, Binance ("Introduction to Binance Futures Funding Rates",
https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031)::

    F = P + clamp(I − P, −0.05%, +0.05%)        then clamped to the market's [floor, cap]

with P the interval's average premium index (time-weighted: sample i of n weighs i) and I
the interest rate per interval (0.01% per 8 hours). When |I − P| ≤ 0.05%, F = I.

Payments: a position of q contracts owes −q·cs·mark·rate (linear, settle asset) or
−q·cs/mark·rate (inverse, settle coin); rate > 0: longs pay shorts. In integer minor units
(10⁻⁸ of the settle asset) every payer pays its own amount rounded half to even, and that
pot is split over the receivers pro rata to notional by the largest-remainder method, so
each market sums to exactly zero. When the book's open interest is unbalanced (a partial
book), an *external counterparty* holds the missing contracts and pays or receives like
any position (``FundingResult.counterparty``). The rules are in docs/MODEL.md "Funding" and
``rust/crossmargin-core/src/funding.rs``; ``crossmargin.reference.solvency`` re-implements
them in plain Python.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crossmargin import _core
from crossmargin._validate import array, mapping, number
from crossmargin.book import Book, SymbolColumn
from crossmargin.exceptions import ConfigError, LedgerError
from crossmargin.prices import PriceOverrides, resolve
from crossmargin.table import Table, Tabular
from crossmargin.universe import Universe

#: Binance's interest rate per 8-hour funding interval (0.03% a day).
DEFAULT_INTEREST: float = _core.DEFAULT_INTEREST
#: Binance's dampener on I − P.
DAMPENER: float = _core.DAMPENER
#: Minor units per asset unit (crossmargin-core ``money::SCALE``).
SCALE: int = _core.SCALE

Rates = Mapping[str, float] | Sequence[float] | np.ndarray


def _per_market(value: Any, n: int, name: str = "interest_rate") -> np.ndarray:
    a = array(value, name)
    try:
        return np.ascontiguousarray(np.broadcast_to(a, (n,)))
    except ValueError:
        raise ConfigError(
            f"{name}: shape {a.shape} does not fit {n} markets (one number, or one per market)",
            field=name,
        ) from None


def funding_rate(
    premium: Any,
    interest_rate: Any = DEFAULT_INTEREST,
    floor: Any = -math.inf,
    cap: Any = math.inf,
) -> Any:
    """Funding rates from premium indices (Binance's formula, module docstring).

    ``premium`` is a number (one market), a 1-D array (one premium per market), a 2-D array
    (markets × samples in time order, averaged with weights 1..n), or a mapping
    ``symbol → number or sequence of samples``. ``interest_rate``, ``floor`` and ``cap`` are
    numbers or per-market arrays (mappings for a mapping ``premium``). Returns the same shape:
    a float, a 1-D array, or a dict ``symbol → rate``.
    """
    terms = {"interest_rate": interest_rate, "floor": floor, "cap": cap}
    if isinstance(premium, Mapping):
        mapping(premium, "premium", "symbol → premium samples")
        for name, v in terms.items():
            if isinstance(v, Mapping):
                mapping(v, name, "symbol → number")
        defaults = {"interest_rate": DEFAULT_INTEREST, "floor": -math.inf, "cap": math.inf}
        out = {}
        for sym, p in premium.items():
            pick = [
                array(v.get(sym, defaults[name]), f"{name}[{sym}]") if isinstance(v, Mapping) else v
                for name, v in terms.items()
            ]
            samples = np.atleast_2d(array(p, f"premium[{sym}]"))
            try:
                out[sym] = float(funding_rate(samples, *pick)[0])
            except ConfigError as e:  # the one-market call names index 0: name the symbol
                field = (e.field or "premium").replace("[0]", f"[{sym}]")
                raise type(e)(str(e).replace(e.field or "", field, 1), field=field) from None
        return out
    p = array(premium, "premium")
    if p.ndim > 2 or (p.ndim == 2 and p.shape[1] == 0):
        raise ConfigError(
            f"premium: expected ≤ 2 dimensions with samples, got shape {p.shape}", field="premium"
        )
    samples = p.reshape(-1, 1) if p.ndim < 2 else p
    n = samples.shape[0]
    rates = _core.funding_rates(
        np.ascontiguousarray(samples.ravel()),
        samples.shape[1],
        *(_per_market(v, n, name) for name, v in terms.items()),
    )
    return float(rates[0]) if p.ndim == 0 else rates


def rate_vector(universe: Universe, rates: Rates) -> np.ndarray:
    """Rates by universe market: a mapping ``symbol → rate`` (others 0) or an array."""
    # Types here (a bool or text is not a rate); the core checks each rate's range.
    if isinstance(rates, Mapping):
        out = np.zeros(len(universe.markets))
        for sym, r in mapping(rates, "rates", "symbol → rate").items():
            if sym not in universe.market_index:
                raise ConfigError(f"rates[{sym}]: unknown market", field=f"rates[{sym}]")
            out[universe.market_index[sym]] = number(r, f"rates[{sym}]")
        return out
    a = np.ascontiguousarray(array(rates, "rates"))
    if a.shape != (len(universe.markets),):
        raise ConfigError(
            f"rates: expected {len(universe.markets)} rates (one per market), got shape {a.shape}",
            field="rates",
        )
    return a


def _exact_sum(a: np.ndarray) -> int:
    """Exact sum of int64 values (no wrap-around): high and low 32-bit halves summed apart."""
    low = (a & 0xFFFFFFFF).sum(dtype=np.int64)
    high = (a >> 32).sum(dtype=np.int64)
    return (int(high) << 32) + int(low)


class FundingResult(Tabular):
    """Funding of one interval.

    - ``payments``: one row per position (ascending account, then market): ``account``,
      ``market``, ``settle``, ``payment`` (settle asset, negative = paid), ``payment_minor``
      (int64, 10⁻⁸ of the settle asset: the exact ledger), ``payment_usd``;
    - ``markets``: per market ``rate``, ``long_qty``, ``short_qty``, ``counterparty_qty`` and
      the minor-unit totals ``longs_minor``, ``shorts_minor``, ``counterparty_minor``,
      ``total_minor`` (always 0);
    - ``counterparty``: the external counterparty's rows (markets with unbalanced open
      interest): ``market``, ``qty``, ``payment``, ``payment_minor``, ``payment_usd``;
    - ``book``: the book after funding (payments added to settle-asset balances).

    Tables (the result protocol, :mod:`crossmargin.table`): **main** ``"payments"``; also
    ``"markets"`` and ``"counterparty"``.
    """

    _TABLES = ("payments", "markets", "counterparty")

    __slots__ = (
        "_book",
        "_market_code",
        "_new_balances",
        "_orders",
        "_positions",
        "counterparty",
        "markets",
        "payments",
    )

    def __init__(
        self,
        payments: Table,
        markets: Table,
        counterparty: Table,
        book: Book | tuple[Mapping[str, Any], ...] | tuple[Any, ...],
        market_code: np.ndarray | None = None,
    ) -> None:
        self.payments = payments
        self.markets = markets
        self.counterparty = counterparty
        self._book: Book | None = None
        self._orders: Mapping[str, Any] | None = None
        if isinstance(book, Book):
            self._book = book
        else:
            # (balances, positions[, orders]): open orders carry over unchanged.
            self._new_balances, self._positions = book[0], book[1]
            self._orders = book[2] if len(book) > 2 else None
        if market_code is None:
            index = {m: k for k, m in enumerate(markets.market.tolist())}
            market_code = np.array([index[m] for m in payments.market.tolist()], dtype=np.int64)
        self._market_code = market_code

    @property
    def book(self) -> Book:
        """The book after funding: payments added to settle-asset balances (asset column as
        universe indices), the positions (with their sides) and open orders unchanged.
        Grouped on first access."""
        if self._book is None:
            self._book = Book(self._new_balances, self._positions, self._orders)
        return self._book

    def check_zero_sum(self) -> bool:
        """True when every market's payments plus its counterparty row add up to exactly 0
        minor units (recomputed from the payment rows); raises
        :class:`~crossmargin.exceptions.LedgerError` otherwise."""
        cp = dict(
            zip(
                self.counterparty.market.tolist(),
                self.counterparty.payment_minor.tolist(),
                strict=True,
            )
        )
        pay = self.payments.payment_minor.astype(np.int64)
        for k, m in enumerate(self.markets.market.tolist()):
            total = _exact_sum(pay[self._market_code == k]) + int(cp.get(m, 0))
            if total != 0 or int(self.markets.total_minor[k]) != 0:
                raise LedgerError(
                    f"funding of {m} is not zero-sum: {total} minor units left",
                    field=f"funding[{m}]",
                )
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "positions": len(self.payments),
            "paid_usd": float(-self.payments.payment_usd[self.payments.payment_usd < 0].sum()),
            "received_usd": float(self.payments.payment_usd[self.payments.payment_usd > 0].sum()),
            "counterparty_usd": float(self.counterparty.payment_usd.sum()),
        }

    def __repr__(self) -> str:
        return (
            f"FundingResult(positions={len(self.payments)}, markets={len(self.markets)}, "
            f"counterparty_rows={len(self.counterparty)})"
        )


def apply_funding(
    engine: _core.Engine,
    universe: Universe,
    book: Book,
    view: _core.BookView,
    rates: Rates,
    prices: PriceOverrides = None,
) -> FundingResult:
    """Funding payments of every position at the marks (``prices`` overrides them): ``book``
    bound to ``universe`` (which ``engine`` holds compiled) as ``view``; the implementation of
    :meth:`crossmargin.Engine.apply_funding`."""
    u = universe
    rate = rate_vector(u, rates)
    asset_prices, marks = resolve(u, prices)
    cols = engine.funding(view, (asset_prices, marks), rate)
    market_names = np.array([m.symbol for m in u.markets], dtype=object)
    settle_index = np.array([u.asset_index[m.settle] for m in u.markets], dtype=np.int64)
    settle_names = np.array([m.settle for m in u.markets], dtype=object)
    settle_price = asset_prices[settle_index] if len(settle_index) else np.zeros(0)

    k = cols["market"].astype(np.int64)
    minor = cols["payment_minor"]
    payment = minor / SCALE
    payments = Table(
        {
            "account": book.accounts[cols["account"]],
            "market": market_names[k] if len(k) else np.array([], dtype=object),
            "settle": settle_names[k] if len(k) else np.array([], dtype=object),
            "payment": payment,
            "payment_minor": minor,
            "payment_usd": payment * settle_price[k] if len(k) else np.zeros(0),
        }
    )
    longs, shorts, cp = cols["longs_minor"], cols["shorts_minor"], cols["counterparty_minor"]
    markets = Table(
        {
            "market": market_names,
            "settle": settle_names,
            "rate": cols["rate"],
            "long_qty": cols["long_qty"],
            "short_qty": cols["short_qty"],
            "counterparty_qty": cols["counterparty_qty"],
            "longs_minor": longs,
            "shorts_minor": shorts,
            "counterparty_minor": cp,
            "total_minor": longs + shorts + cp,
        }
    )
    has_cp = (cols["counterparty_qty"] != 0) & (cols["rate"] != 0)
    cp_pay = cp[has_cp] / SCALE
    counterparty = Table(
        {
            "market": market_names[has_cp],
            "qty": cols["counterparty_qty"][has_cp],
            "payment": cp_pay,
            "payment_minor": cp[has_cp],
            "payment_usd": cp_pay * settle_price[has_cp],
        }
    )
    balances = {
        "account": book.accounts[cols["balance_account"]],
        "asset": SymbolColumn(cols["balance_asset"], None),
        "qty": cols["balance_qty"],
    }
    return FundingResult(
        payments, markets, counterparty, (balances, book.positions, book.orders), k
    )


__all__ = [
    "DAMPENER",
    "DEFAULT_INTEREST",
    "SCALE",
    "FundingResult",
    "apply_funding",
    "funding_rate",
    "rate_vector",
]
