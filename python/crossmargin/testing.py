"""Hypothesis strategies and assertions for testing code built on crossmargin, in the manner
of ``polars.testing``: the random universes, books, price overrides and cascade
configurations crossmargin's own test suite is built on, and the tolerant comparison of two
margin results that its differential tests use.

This module imports `hypothesis <https://hypothesis.readthedocs.io>`_, which crossmargin
does not depend on: it is needed only when you import ``crossmargin.testing``
(``pip install hypothesis``; the ``test`` extra installs it).

Strategies
----------
- :func:`universes` — random *valid* universes: 1–4 assets ``A0``…, 0–4 perps or futures
  ``M0``… (linear or inverse, settled in a random asset, on an asset's symbol or an index
  ``IX0``/``IX1``, tiers, brackets, imf factors, uPnL weights below 1), sometimes a
  configured underlying price; ``options=True`` adds European options ``O0``… (calls and
  puts, linear or inverse, model-marked or with a mark); ``order_rules=True`` draws each
  market's open-order rule (limit or mark valuation, open loss, two-way fee, per-order
  amount);
- :func:`random_books` — a :class:`RandomBook` for one universe (arbitrary int64 ids,
  duplicate balance rows, borrows, zero-size and isolated positions, symbols as str or as
  integer indices, unsorted rows; ``hedged=True``: hedge-mode long / short legs beside
  one-way positions; ``orders=True``: open orders, reduce-only ones among them);
  :func:`books` — the same as a :class:`~crossmargin.Book`;
  :func:`universe_and_book` — both;
- :func:`price_overrides` — a ``prices=`` mapping keyed by underlyings, assets and markets;
- :func:`cascade_universes`, :func:`cascade_books`, :func:`liquidity_models`,
  :func:`cascade_configs` — small universes, leveraged books and every kind of
  :class:`~crossmargin.cascade.CascadeConfig` for liquidation cascades.

Assertions
----------
:func:`assert_results_close` (two margin results agree to a relative tolerance, with an
absolute tolerance scaled per account by :func:`gross_scale`) and
:func:`assert_results_identical` (bit for bit).

Example::

    from hypothesis import given
    from crossmargin.testing import universe_and_book, assert_results_close, gross_scale

    @given(universe_and_book())
    def test_my_engine(case):
        u, rb = case
        book = rb.book(u)
        assert_results_close(my_engine(u, book), cm.Engine(u).evaluate(book), gross_scale(u, book))
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from crossmargin._optional import require

require("hypothesis", "crossmargin.testing")

from hypothesis import assume  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import crossmargin as cm  # noqa: E402
from crossmargin.cascade import (  # noqa: E402
    CascadeConfig,
    DepthCurve,
    NoImpact,
    SqrtImpact,
)
from crossmargin.prices import resolve, underlying_spots  # noqa: E402
from crossmargin.result import MARGIN_COLUMNS  # noqa: E402

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)

#: The float columns of a MarginResult, its booleans, and every column in order
#: (result.MARGIN_COLUMNS).
BOOL_COLUMNS = ("liquidatable", "bankrupt")
FLOAT_COLUMNS = tuple(
    c for c in MARGIN_COLUMNS if c not in ("account", "margin_ratio", *BOOL_COLUMNS)
)
ALL_COLUMNS = MARGIN_COLUMNS


# ---- comparing results -------------------------------------------------------------------
def gross_scale(universe: cm.Universe, book: cm.Book, prices: Any = None) -> np.ndarray:
    """Per account (ascending id): 1 + the sum of the absolute values of every term that
    enters its sums (balance values times the largest weight, |uPnL|, requirements, option
    values, isolated margin). Rounding differences between two summation orders are a few
    ulps of this, so it scales the absolute tolerance of :func:`assert_results_close`."""
    from crossmargin import reference

    asset_array, mark_array = resolve(universe, prices)
    spots = underlying_spots(universe, asset_array, mark_array)
    asset_prices, marks = asset_array.tolist(), mark_array.tolist()
    accounts = book.accounts
    where = {int(a): i for i, a in enumerate(accounts.tolist())}
    scale = np.ones(len(accounts))
    a_remap, m_remap = (x.tolist() for x in book.remaps(universe))
    bal = book.balances
    for acct, code, qty in zip(
        bal["account"].tolist(), bal["asset"].codes.tolist(), bal["qty"].tolist(), strict=True
    ):
        i = a_remap[code]
        asset = universe.assets[i]
        w = max(
            1.0,
            reference.size_premium_weight(asset.liability_weight_initial, asset.imf_factor, qty),
            reference.size_premium_weight(asset.liability_weight_maint, asset.imf_factor, qty),
        )
        scale[where[acct]] += abs(qty * asset_prices[i]) * w
    pos = book.positions
    for acct, code, qty, entry, iso in zip(
        pos["account"].tolist(),
        pos["market"].codes.tolist(),
        pos["qty"].tolist(),
        pos["entry_price"].tolist(),
        pos["isolated_margin"].tolist(),
        strict=True,
    ):
        k = m_remap[code]
        market = universe.markets[k]
        settle_price = asset_prices[universe.asset_index[market.settle]]
        if market.is_option:
            terms: tuple[float, ...] = reference.portfolio.option_numbers(
                market, qty, entry, marks[k], settle_price, spots[market.underlying]
            )
        else:
            terms = reference.position_numbers(market, qty, entry, marks[k], settle_price)
        iso_usd = 0.0 if math.isnan(iso) else iso * settle_price
        scale[where[acct]] += sum(abs(x) for x in terms) + iso_usd
    orders = book.orders
    if orders is not None:
        # An order's terms are requirements on notionals at its price and at the mark.
        for acct, code, qty, price in zip(
            orders["account"].tolist(),
            orders["market"].codes.tolist(),
            orders["qty"].tolist(),
            orders["price"].tolist(),
            strict=True,
        ):
            k = m_remap[code]
            market = universe.markets[k]
            settle_price = asset_prices[universe.asset_index[market.settle]]
            size = qty * market.contract_size
            at = [size / p if market.inverse else size * p for p in (price, marks[k])]
            scale[where[acct]] += 2.0 * sum(at) * settle_price
    return scale


def assert_results_close(
    got: cm.MarginResult,
    want: cm.MarginResult,
    scale: np.ndarray,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> None:
    """``got`` agrees with ``want`` to ``rtol`` relative, with an absolute tolerance of
    ``atol × scale`` per account (``scale`` from :func:`gross_scale`).

    Accounts ids are compared exactly. Floats: |got − want| ≤ atol·scale + rtol·|want|.
    The margin ratio is compared where adj_equity_maint is well away from 0 (elsewhere it
    is mm divided by a rounding residue) and must be 0 where both mm are 0. Booleans are
    compared exactly wherever the quantity they threshold is not within the absolute
    tolerance of its threshold (two summation orders may legitimately put a value that is
    0 up to rounding on either side).
    """
    assert got.columns == want.columns
    np.testing.assert_array_equal(got.account, want.account, strict=True)
    tol = atol * scale
    for c in FLOAT_COLUMNS:
        assert got[c].dtype == np.float64, c
        np.testing.assert_allclose(got[c] / scale, want[c] / scale, rtol=rtol, atol=atol, err_msg=c)

    adj = want.adj_equity_maint
    clear = np.abs(adj) > 1e-4 * scale
    np.testing.assert_allclose(
        got.margin_ratio[clear], want.margin_ratio[clear], rtol=rtol, err_msg="margin_ratio"
    )
    no_mm = (got.mm == 0) & (want.mm == 0)
    np.testing.assert_array_equal(got.margin_ratio[no_mm], 0.0, err_msg="margin_ratio, mm = 0")

    for c in BOOL_COLUMNS:
        assert got[c].dtype == np.bool_, c
    decided = np.abs(want.adj_equity_maint - want.mm) > 8 * tol
    # An isolated position alone can make an account liquidatable; that test involves no
    # sum over rows, so a disagreement there is never a rounding artefact: where both
    # engines say "liquidatable" the cross-margin side does not matter.
    both = got.liquidatable & want.liquidatable
    np.testing.assert_array_equal(
        got.liquidatable[decided | both], want.liquidatable[decided | both], err_msg="liquidatable"
    )
    decided = np.abs(want.equity) > 8 * tol
    np.testing.assert_array_equal(got.bankrupt[decided], want.bankrupt[decided], err_msg="bankrupt")


def assert_results_identical(a: cm.Table, b: cm.Table) -> None:
    """Bit-identical columns, dtypes included (NaN and inf compared as values)."""
    assert a.columns == b.columns
    for c in a.columns:
        np.testing.assert_array_equal(a[c], b[c], err_msg=c, strict=True)


# ---- universes ---------------------------------------------------------------------------
positive_price = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
imf_factors = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.01, allow_nan=False))
upnl_weights = st.one_of(st.just(1.0), unit)
upnl_caps = st.one_of(st.just(math.inf), st.floats(min_value=0.0, max_value=1e4))
# Drift's scaled initial weight: off, or a start value against the venue's total deposits.
scaled_initial_weights: st.SearchStrategy[dict[str, float]] = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {
            "scale_initial_weight_start": st.floats(min_value=1.0, max_value=1e7),
            "total_deposits": st.floats(min_value=0.0, max_value=1e6),
        }
    ),
)


@st.composite
def upnl_weight_pairs(draw: st.DrawFn) -> dict[str, float]:
    """``upnl_weight_initial`` ≤ ``upnl_weight_maint`` (initial margin is the stricter; the
    universe rejects the other order)."""
    wi = draw(upnl_weights)
    wm = draw(st.one_of(st.just(1.0), st.floats(min_value=wi, max_value=1.0)))
    return {"upnl_weight_initial": wi, "upnl_weight_maint": wm}


@st.composite
def haircut_tiers(draw: st.DrawFn) -> list[tuple[float, float]] | None:
    """None, or 1–4 tiers with strictly increasing bounds (the last sometimes inf)."""
    n = draw(st.integers(0, 4))
    if n == 0:
        return None
    steps = draw(
        st.lists(st.floats(min_value=1.0, max_value=1e7, allow_nan=False), min_size=n, max_size=n)
    )
    bounds = list(np.cumsum(steps).tolist())
    if draw(st.booleans()):
        bounds[-1] = math.inf
    rates = draw(st.lists(unit, min_size=n, max_size=n))
    # Strictly increasing after rounding (cumsum of steps ≥ 1 is strictly increasing).
    return list(zip(bounds, rates, strict=True))


@st.composite
def assets_strategy(draw: st.DrawFn, symbol: str) -> cm.Asset:
    """A valid asset named ``symbol``: weights, liability weights, tiers, imf factor."""
    # Initial margin is the stricter (the universe rejects the other order): collateral
    # weight at initial ≤ at maintenance, liability weight at initial ≥ at maintenance.
    wi = draw(unit)
    lm = draw(st.floats(min_value=1.0, max_value=3.0))
    return cm.Asset(
        symbol,
        draw(positive_price),
        weight_initial=wi,
        weight_maint=draw(st.one_of(st.just(wi), st.floats(min_value=wi, max_value=1.0))),
        liability_weight_initial=draw(st.floats(min_value=lm, max_value=3.0)),
        liability_weight_maint=lm,
        haircut_tiers=draw(haircut_tiers()),
        imf_factor=draw(imf_factors),
        **draw(scaled_initial_weights),
    )


@st.composite
def brackets_strategy(draw: st.DrawFn, scale: float) -> list[tuple[float, float, float]]:
    """Valid brackets: strictly increasing bounds (last may be inf), non-decreasing
    rates, mmr ≤ imr ≤ 1 in every bracket; bounds in units of ``scale``."""
    n = draw(st.integers(1, 4))
    steps = draw(st.lists(st.floats(min_value=0.01, max_value=10.0), min_size=n, max_size=n))
    bounds = (np.cumsum(steps) * scale).tolist()
    if draw(st.booleans()):
        bounds[-1] = math.inf
    d_mmr = draw(st.lists(st.floats(min_value=0.0, max_value=0.1), min_size=n, max_size=n))
    d_extra = draw(st.lists(st.floats(min_value=0.0, max_value=0.1), min_size=n, max_size=n))
    mmr = np.minimum(np.cumsum(d_mmr), 1.0)
    imr = np.minimum(mmr + np.cumsum(d_extra), 1.0)
    out = list(zip(bounds, imr.tolist(), mmr.tolist(), strict=True))
    # Guard against rounding making a bound equal to its predecessor.
    for k in range(1, len(out)):
        if not out[k][0] > out[k - 1][0]:
            out[k] = (out[k - 1][0] * 2.0, out[k][1], out[k][2])
    return out


@st.composite
def option_markets(
    draw: st.DrawFn, assets: list[cm.Asset], markets: list[cm.Market], n: int
) -> list[cm.Market]:
    """``n`` European options ``O0``… on underlyings that have a price (an asset of that
    symbol, or a perp or future): calls and puts, strikes 0.5–2× the reference price,
    0.01–2 years, volatility 5–150 %; linear (settled in a random asset) or, on an asset's
    symbol, inverse (settled in that coin); model-marked or with a mark."""
    prices = {a.symbol: a.price for a in assets}
    for m in markets:
        prices.setdefault(m.underlying, float(m.mark))  # type: ignore[arg-type]
    out = []
    for k in range(n):
        underlying = draw(st.sampled_from(sorted(prices)))
        inverse = underlying in {a.symbol for a in assets} and draw(st.booleans())
        settle = underlying if inverse else draw(st.sampled_from([a.symbol for a in assets]))
        spot = prices[underlying]
        marked = draw(st.booleans())
        premium = draw(st.floats(min_value=0.001, max_value=0.3)) * (1.0 if inverse else spot)
        out.append(
            cm.Market(
                f"O{k}",
                "option",
                settle,
                underlying,
                premium if marked else None,
                option_type=draw(st.sampled_from(["call", "put"])),
                strike=spot * draw(st.floats(min_value=0.5, max_value=2.0)),
                expiry=draw(st.floats(min_value=0.01, max_value=2.0)),
                iv=draw(st.floats(min_value=0.05, max_value=1.5)),
                contract_size=draw(st.sampled_from([0.01, 0.1, 1.0])),
                inverse=inverse,
            )
        )
    return out


@st.composite
def order_rules(draw: st.DrawFn) -> dict[str, Any]:
    """A market's open-order rule (docs/MODEL.md "Open orders"): Market keyword arguments."""
    return {
        "order_value": draw(st.sampled_from(cm.universe.ORDER_VALUES)),
        "order_open_loss": draw(st.booleans()),
        "order_fee_rate": draw(st.sampled_from([0.0, 0.0006, 0.00075])),
        "order_margin_per_order": draw(st.sampled_from([0.0, 0.01])),
    }


_order_rules = order_rules

requirement_shapes = st.sampled_from(cm.universe.REQUIREMENT_SHAPES)


@st.composite
def venue_rules(draw: st.DrawFn, brackets: list[tuple[float, float, float]]) -> dict[str, Any]:
    """A perp's or future's venue rules (docs/MODEL.md "Requirement shapes", "Valuation
    basis", "Liquidation-fee reserve") over ``brackets``: Market keyword arguments, the
    brackets included (a ``size_scaled`` mode keeps one bracket, the first one's rates)."""
    shapes = (draw(requirement_shapes), draw(requirement_shapes))
    slope = draw(st.sampled_from([1e-7, 1e-6, 1e-5]))
    if "size_scaled" in shapes:
        brackets = [(math.inf, brackets[0][1], brackets[0][2])]
    return {
        "brackets": brackets,
        "im_shape": shapes[0],
        "mm_shape": shapes[1],
        "rate_slope_initial": slope if shapes[0] == "size_scaled" else 0.0,
        "rate_slope_maint": slope if shapes[1] == "size_scaled" else 0.0,
        "maint_basis": draw(st.sampled_from(cm.universe.VALUATION_BASES)),
        "liquidation_fee": draw(st.sampled_from([0.0, 0.00075, 0.01])),
    }


_venue_rules = venue_rules


@st.composite
def universes(
    draw: st.DrawFn, options: bool = False, order_rules: bool = False, venue_rules: bool = False
) -> cm.Universe:
    """A random valid universe: 1–4 assets ``A0``…, 0–4 markets ``M0``… (perp or future,
    linear or inverse, settled in a random asset, on an underlying that is an asset's
    symbol or an index ``IX0``/``IX1``), sometimes with a configured underlying price.
    ``options=True``: also 0–3 option markets ``O0``… (:func:`option_markets`);
    ``order_rules=True``: each perp's or future's open-order rule drawn too;
    ``venue_rules=True``: its requirement shapes, valuation basis and fee reserve too
    (:func:`venue_rules`)."""
    n_assets = draw(st.integers(1, 4))
    assets = [draw(assets_strategy(f"A{i}")) for i in range(n_assets)]
    markets = []
    for k in range(draw(st.integers(0, 4))):
        inverse = draw(st.booleans())
        mark = draw(positive_price)
        contract_size = draw(st.floats(min_value=1e-3, max_value=100.0))
        # Bracket bounds in settle-asset notional of a "typical" position.
        typical = contract_size / mark if inverse else contract_size * mark
        # drawn in this order so that venue_rules=False draws what it always drew
        kind = draw(st.sampled_from(["perp", "future"]))
        settle = draw(st.sampled_from([a.symbol for a in assets]))
        underlying = draw(st.sampled_from([a.symbol for a in assets] + ["IX0", "IX1"]))
        brackets = draw(brackets_strategy(typical * 10.0))
        rules = draw(_venue_rules(brackets)) if venue_rules else {"brackets": brackets}
        markets.append(
            cm.Market(
                f"M{k}",
                kind,
                settle,
                underlying,
                mark,
                contract_size=contract_size,
                inverse=inverse,
                imf_factor=draw(imf_factors),
                **rules,
                **draw(upnl_weight_pairs()),  # type: ignore[arg-type]
                **(draw(_order_rules()) if order_rules else {}),
                upnl_imf_factor=draw(imf_factors),
                upnl_cap_initial=draw(upnl_caps),
            )
        )
    if options:
        markets += draw(option_markets(assets, markets, draw(st.integers(0, 3))))
    u = cm.Universe(assets, markets)
    if len(u.underlyings) > 0 and draw(st.booleans()):
        # An index price distinct from the same-symbol asset / first mark: overrides on
        # this underlying then move its markets relative to it.
        name = draw(st.sampled_from(u.underlyings))
        factor = draw(st.floats(min_value=0.5, max_value=2.0))
        u = cm.Universe(assets, markets, {name: u.reference_price(name) * factor})
    return u


# ---- books -------------------------------------------------------------------------------
account_ids = st.one_of(
    st.integers(-3, 10),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1]),
)
balance_qty = st.one_of(
    st.just(0.0),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
position_qty = st.one_of(
    st.just(0.0),
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
)
isolated = st.one_of(
    st.just(0.0),
    st.just(math.nan),
    st.floats(min_value=1e-6, max_value=1e6, allow_nan=False),
)


@dataclass
class RandomBook:
    """A random book and the rows it was built from (symbols as universe indices)."""

    balances: dict[str, np.ndarray]  # account, asset (int index), qty
    positions: dict[str, np.ndarray]  # account, market (int index), qty, entry, isolated[, side]
    as_str: tuple[bool, bool]  # symbol columns given as str (balances, positions)
    orders: dict[str, np.ndarray] | None = None  # account, market (int index), side, ...

    def columns(
        self, universe: cm.Universe, order: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(balance columns, position columns) as handed to Book.from_arrays, rows in
        ``order`` (default: as drawn)."""
        bo, po = order or (None, None)
        bal = {k: (v if bo is None else v[bo]) for k, v in self.balances.items()}
        pos = {k: (v if po is None else v[po]) for k, v in self.positions.items()}
        if self.as_str[0]:
            names = np.array([a.symbol for a in universe.assets], dtype=object)
            bal["asset"] = names[bal["asset"]] if len(bal["asset"]) else np.array([], dtype=object)
        if self.as_str[1]:
            names = np.array([m.symbol for m in universe.markets], dtype=object)
            pos["market"] = (
                names[pos["market"]] if len(pos["market"]) else np.array([], dtype=object)
            )
        return bal, pos

    def order_columns(self, universe: cm.Universe) -> dict[str, np.ndarray] | None:
        """The order columns as handed to Book.from_arrays (markets spelled like the
        positions'), or None."""
        if self.orders is None:
            return None
        o = dict(self.orders)
        if self.as_str[1]:
            names = np.array([m.symbol for m in universe.markets], dtype=object)
            o["market"] = names[o["market"]] if len(o["market"]) else np.array([], dtype=object)
        return o

    def book(
        self, universe: cm.Universe, order: tuple[np.ndarray, np.ndarray] | None = None
    ) -> cm.Book:
        return cm.Book.from_arrays(*self.columns(universe, order), self.order_columns(universe))

    @property
    def has_duplicate_balances(self) -> bool:
        pairs = list(
            zip(self.balances["account"].tolist(), self.balances["asset"].tolist(), strict=True)
        )
        return len(pairs) != len(set(pairs))


@st.composite
def random_books(
    draw: st.DrawFn,
    universe: cm.Universe,
    max_rows: int = 24,
    hedged: bool = False,
    orders: bool = False,
) -> RandomBook:
    """Rows over a handful of account ids (so accounts have several rows and duplicate
    balance rows occur), unsorted; entry prices 0.2–5× the reference mark (at least 1e-9).
    ``hedged``: some (account, market) pairs hold a long and / or a short leg instead of a
    one-way position (a ``side`` column, spelled in any case or as codes); ``orders``: open
    orders on perps and futures (buys and sells around the mark, some reduce-only)."""
    ids = draw(st.lists(account_ids, min_size=1, max_size=6, unique=True))
    na, nm = len(universe.assets), len(universe.markets)
    bal_rows = draw(
        st.lists(
            st.tuples(st.sampled_from(ids), st.integers(0, na - 1), balance_qty),
            max_size=max_rows,
        )
    )
    pos_rows = []
    if nm:
        keys = draw(
            st.lists(
                st.tuples(st.sampled_from(ids), st.integers(0, nm - 1)),
                max_size=max_rows,
                unique=True,
            )
        )
        for acct, k in keys:
            legs = [0]
            if hedged and draw(st.booleans()):
                legs = draw(st.sampled_from([[1], [2], [1, 2]]))
            for side in legs:
                qty = draw(position_qty)
                if side:
                    qty = abs(qty) if side == 1 else -abs(qty)
                if qty == 0.0 and draw(st.booleans()):
                    entry = 0.0  # no position: any entry, even 0, is fine
                else:
                    # An option far out of the money may be worth ~0: its entry stays a price.
                    mark = max(universe.reference_marks[k], 1e-9)
                    entry = mark * draw(st.floats(min_value=0.2, max_value=5.0))
                pos_rows.append((acct, k, qty, entry, draw(isolated), side))
        pos_rows = draw(st.permutations(pos_rows)) if hedged else pos_rows
    bal = {
        "account": np.array([r[0] for r in bal_rows], dtype=np.int64),
        "asset": np.array([r[1] for r in bal_rows], dtype=np.int64),
        "qty": np.array([r[2] for r in bal_rows], dtype=np.float64),
    }
    pos = {
        "account": np.array([r[0] for r in pos_rows], dtype=np.int64),
        "market": np.array([r[1] for r in pos_rows], dtype=np.int64),
        "qty": np.array([r[2] for r in pos_rows], dtype=np.float64),
        "entry_price": np.array([r[3] for r in pos_rows], dtype=np.float64),
        "isolated_margin": np.array([r[4] for r in pos_rows], dtype=np.float64),
    }
    if hedged:
        spellings = draw(st.sampled_from(["codes", "lower", "venue"]))
        codes = np.array([r[5] for r in pos_rows], dtype=np.int64)
        if spellings == "codes":
            pos["side"] = codes
        else:
            names = ["both", "long", "short"]
            if spellings == "venue":
                names = [n.upper() for n in names]
            pos["side"] = np.array([names[c] for c in codes], dtype=object)
    order_cols = None
    tradable = [k for k, m in enumerate(universe.markets) if not m.is_option]
    if orders and tradable:
        rows = []
        for _ in range(draw(st.integers(0, max_rows))):
            k = draw(st.sampled_from(tradable))
            mark = universe.reference_marks[k]
            rows.append(
                (
                    draw(st.sampled_from(ids)),
                    k,
                    draw(st.integers(0, 1)),
                    draw(st.floats(min_value=1e-3, max_value=1e4)),
                    mark * draw(st.floats(min_value=0.5, max_value=2.0)),
                    draw(st.booleans()) and draw(st.booleans()),
                )
            )
        order_cols = {
            "account": np.array([r[0] for r in rows], dtype=np.int64),
            "market": np.array([r[1] for r in rows], dtype=np.int64),
            "side": np.array([("buy", "SELL")[r[2]] for r in rows], dtype=object),
            "qty": np.array([r[3] for r in rows], dtype=np.float64),
            "price": np.array([r[4] for r in rows], dtype=np.float64),
            "reduce_only": np.array([r[5] for r in rows], dtype=bool),
        }
    return RandomBook(bal, pos, (draw(st.booleans()), draw(st.booleans())), order_cols)


def books(universe: cm.Universe, max_rows: int = 24) -> st.SearchStrategy[cm.Book]:
    """Random books of ``universe`` (:func:`random_books`), as :class:`~crossmargin.Book`."""
    return random_books(universe, max_rows=max_rows).map(lambda rb: rb.book(universe))


@st.composite
def universe_and_book(
    draw: st.DrawFn,
    max_rows: int = 24,
    options: bool = False,
    hedged: bool = False,
    orders: bool = False,
    venue_rules: bool = False,
) -> tuple[cm.Universe, RandomBook]:
    """A universe (:func:`universes`) and a random book of it (:func:`random_books`);
    ``hedged`` / ``orders`` as there (``orders`` also draws the markets' order rules;
    ``venue_rules`` the markets' shapes, valuation basis and fee reserve)."""
    u = draw(universes(options=options, order_rules=orders, venue_rules=venue_rules))
    return u, draw(random_books(u, max_rows=max_rows, hedged=hedged, orders=orders))


@st.composite
def price_overrides(draw: st.DrawFn, universe: cm.Universe) -> dict[str, float]:
    """A ``prices=`` mapping of up to 4 keys — underlyings, assets and markets of
    ``universe`` (those with a price > 0) — each 0.1–3× its reference price."""

    def base(key: str) -> float:
        if key in universe.underlyings:
            return universe.reference_price(key)
        if key in universe.asset_index:
            return universe.assets[universe.asset_index[key]].price
        return universe.reference_marks[universe.market_index[key]]

    keys = (
        list(universe.underlyings)
        + [a.symbol for a in universe.assets]
        + [m.symbol for m in universe.markets]
    )
    keys = [k for k in keys if base(k) > 0]  # a deep out-of-the-money option may be worth 0
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=4)) if keys else []
    return {key: base(key) * draw(st.floats(min_value=0.1, max_value=3.0)) for key in chosen}


# ---- cascades ----------------------------------------------------------------------------
@st.composite
def cascade_universes(draw: st.DrawFn) -> cm.Universe:
    """USD (the quote), BTC and ETH with random weights, tiers and imf factors; markets:
    a linear BTC perp in USD, an inverse BTC perp settled in BTC, a linear ETH perp (one
    of the first two alone, or the first two or three)."""
    usd = replace(draw(assets_strategy("USD")), price=1.0)
    btc = replace(
        draw(assets_strategy("BTC")), price=draw(st.floats(min_value=10.0, max_value=1e5))
    )
    eth = replace(draw(assets_strategy("ETH")), price=draw(st.floats(min_value=0.1, max_value=5e3)))
    n_markets = draw(st.integers(1, 3))
    kinds = ["linear", "inverse", "eth"][:n_markets]
    if n_markets == 1:
        kinds = [draw(st.sampled_from(["linear", "inverse"]))]
    markets = []
    for k, kind in enumerate(kinds):
        if kind == "inverse":
            mark, settle, underlying, inverse = btc.price, "BTC", "BTC", True
            cs = draw(st.sampled_from([1.0, 10.0, 100.0]))
            typical = cs / mark
        else:
            asset = btc if kind == "linear" else eth
            mark, settle, underlying, inverse = asset.price, "USD", asset.symbol, False
            cs = draw(st.sampled_from([0.001, 0.1, 1.0]))
            typical = cs * mark
        markets.append(
            cm.Market(
                f"M{k}",
                "perp",
                settle,
                underlying,
                mark * draw(st.sampled_from([1.0, 1.0, 0.99, 1.01])),
                draw(brackets_strategy(typical * 1000.0)),
                contract_size=cs,
                inverse=inverse,
                imf_factor=draw(st.one_of(st.just(0.0), imf_factors)),
                **draw(upnl_weight_pairs()),  # type: ignore[arg-type]
            )
        )
    return cm.Universe([usd, btc, eth], markets)


@st.composite
def cascade_books(draw: st.DrawFn, u: cm.Universe) -> cm.Book:
    """≤ 30 accounts, each with collateral (sometimes a borrow) and 1–3 leveraged positions,
    longs and shorts, some isolated; ids arbitrary (negative ones too), rows unsorted. For
    a universe of :func:`cascade_universes` (assets USD, BTC, ETH)."""
    n = draw(st.integers(1, 30))
    ids = draw(st.lists(st.integers(-20, 10**6), min_size=n, max_size=n, unique=True))
    prices = {a.symbol: a.price for a in u.assets}
    bal: list[tuple[int, str, float]] = []
    pos: list[tuple[int, str, float, float, float]] = []
    for acct in ids:
        equity_usd = draw(st.floats(min_value=10.0, max_value=1e5))
        coin = draw(st.sampled_from(["USD", "USD", "BTC", "ETH"]))
        bal.append((acct, coin, equity_usd / prices[coin]))
        if draw(st.integers(0, 3)) == 0:  # a borrow
            debt = draw(st.sampled_from(["USD", "BTC", "ETH"]))
            bal.append((acct, debt, -equity_usd * draw(st.floats(0.05, 0.6)) / prices[debt]))
        chosen = draw(
            st.lists(st.sampled_from(range(len(u.markets))), min_size=1, max_size=3, unique=True)
        )
        for k in chosen:
            m = u.markets[k]
            mark = float(m.mark)  # type: ignore[arg-type]
            sp = prices[m.settle]
            leverage = draw(st.floats(min_value=0.2, max_value=40.0))
            notional_usd = equity_usd * leverage / len(chosen)
            per_contract = (m.contract_size / mark if m.inverse else m.contract_size * mark) * sp
            qty = notional_usd / per_contract * draw(st.sampled_from([1.0, -1.0]))
            if draw(st.integers(0, 15)) == 0:
                qty = 0.0
            entry = mark * draw(st.floats(min_value=0.8, max_value=1.2))
            iso = 0.0
            if draw(st.integers(0, 3)) == 0:
                iso_lev = draw(st.floats(min_value=1.0, max_value=50.0))
                iso = notional_usd / iso_lev / sp
            pos.append((acct, m.symbol, qty, entry, iso))
    bal = draw(st.permutations(bal))
    pos = draw(st.permutations(pos))
    return cm.Book.from_arrays(
        {"account": [r[0] for r in bal], "asset": [r[1] for r in bal], "qty": [r[2] for r in bal]},
        {
            "account": [r[0] for r in pos],
            "market": [r[1] for r in pos],
            "qty": [r[2] for r in pos],
            "entry_price": [r[3] for r in pos],
            "isolated_margin": [r[4] for r in pos],
        },
    )


@st.composite
def liquidity_models(draw: st.DrawFn) -> Any:
    """:class:`NoImpact`, a :class:`SqrtImpact` or a thin :class:`DepthCurve` (gaps
    included)."""
    kind = draw(st.sampled_from(["none", "sqrt", "depth"]))
    if kind == "none":
        return NoImpact()
    if kind == "sqrt":
        return SqrtImpact(
            daily_volume=draw(st.floats(min_value=1e3, max_value=1e8)),
            sigma=draw(st.floats(min_value=0.0, max_value=0.2)),
            y=draw(st.floats(min_value=0.0, max_value=2.0)),
            permanent=draw(st.floats(min_value=0.0, max_value=1.0)),
        )
    n = draw(st.integers(1, 4))
    steps = draw(st.lists(st.floats(min_value=1e-3, max_value=0.2), min_size=n, max_size=n))
    distances = np.cumsum(steps) / max(1.0, float(np.sum(steps)) / 0.9)
    depth = draw(
        st.lists(
            st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=1e6)),
            min_size=n,
            max_size=n,
        )
    )
    cumulative = np.cumsum(depth)
    if cumulative[-1] <= 0.0:
        cumulative[-1] = 1e4
    points = list(zip(distances.tolist(), cumulative.tolist(), strict=True))
    assume(all(b[0] > a[0] for a, b in itertools.pairwise(points)))
    return DepthCurve(points)


cascade_moves = st.floats(min_value=-0.45, max_value=0.45)


@st.composite
def cascade_configs(draw: st.DrawFn, u: cm.Universe) -> CascadeConfig:
    """A shock or a 2–3 step path on BTC / ETH (moves within ±45 %), one liquidity model or
    one per market, an insurance fund (none, USD or BTC), fees, partial fractions, target
    ratios, min notionals, small max_rounds (truncation), every mode and deleverage rule."""
    keys = ["BTC", "ETH"]
    if draw(st.booleans()):
        shock: dict[str, float] | None = {
            k: draw(cascade_moves) for k in keys if draw(st.booleans())
        }
        path = None
    else:
        shock = None
        path = [{k: draw(cascade_moves) for k in keys} for _ in range(draw(st.integers(2, 3)))]
    if draw(st.booleans()):
        liquidity: Any = draw(liquidity_models())
    else:
        liquidity = {m.symbol: draw(liquidity_models()) for m in u.markets}
    fund: Any = draw(
        st.one_of(
            st.just(0.0),
            st.floats(min_value=0.0, max_value=1e4),
            st.fixed_dictionaries({"BTC": st.floats(min_value=0.0, max_value=0.1)}),
        )
    )
    mode: Any = draw(st.sampled_from(["rounds", "rounds", "events"]))
    return CascadeConfig(
        shock=shock,
        path=path,
        insurance_fund=fund,
        liquidation_fee=draw(st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.01))),
        partial_fraction=draw(st.one_of(st.just(1.0), st.floats(min_value=0.01, max_value=1.0))),
        target_margin_ratio=draw(
            st.one_of(st.none(), st.just(0.0), st.floats(min_value=0.0, max_value=0.99))
        ),
        min_notional=draw(
            st.one_of(st.just(10.0), st.just(0.0), st.floats(min_value=0.0, max_value=1e4))
        ),
        max_rounds=draw(st.sampled_from([1, 2, 3, 5, 100])),
        mode=mode,
        liquidity=liquidity,
        decay=draw(st.floats(min_value=0.0, max_value=1.0)),
        deleverage=draw(st.sampled_from(["adl", "socialized_loss", "none"])),
        max_liquidations_per_round=draw(st.sampled_from([0, 0, 1, 2, 3])),
    )


__all__ = [
    "ALL_COLUMNS",
    "BOOL_COLUMNS",
    "FLOAT_COLUMNS",
    "INT64_MAX",
    "INT64_MIN",
    "RandomBook",
    "account_ids",
    "assert_results_close",
    "assert_results_identical",
    "assets_strategy",
    "balance_qty",
    "books",
    "brackets_strategy",
    "cascade_books",
    "cascade_configs",
    "cascade_moves",
    "cascade_universes",
    "gross_scale",
    "haircut_tiers",
    "imf_factors",
    "isolated",
    "liquidity_models",
    "option_markets",
    "order_rules",
    "position_qty",
    "positive_price",
    "price_overrides",
    "random_books",
    "unit",
    "universe_and_book",
    "universes",
    "upnl_weight_pairs",
    "upnl_weights",
]
