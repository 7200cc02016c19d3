"""Shared fixtures and hypothesis strategies for the crossmargin test suite.

Fixtures
--------
``small`` is a hand-written universe whose numbers are easy to check by hand:

===========  =======  ===========================================================
asset        price    weights (initial / maint), liabilities, tiers
===========  =======  ===========================================================
USDT         1        1 / 1, liabilities 1 / 1
USDC         1        0.98 / 0.99, liabilities 1 / 1
BTC          50,000   0.9 / 0.95, liabilities 1.2 / 1.1,
                      haircut tiers: 100% to 1M USD, 80% to 2M, 50% above
ETH          2,000    0.8 / 0.9, liabilities 1.3 / 1.15
===========  =======  ===========================================================

=========  =======  ======  =================================================
market     settle   mark    brackets (bound, imr, mmr), other
=========  =======  ======  =================================================
BTCUSDT    USDT     50,000  (50k, 2%, 1%), (250k, 4%, 2%), (inf, 10%, 5%)
ETHUSDT    USDT     2,000   (10k, 5%, 2.5%), (inf, 10%, 5%);
                            upnl weights 0.5 / 0.8
BTCUSD     BTC      50,000  inverse, contract 100 USD;
                            (10 BTC, 1%, 0.5%), (inf, 2%, 1%)
=========  =======  ======  =================================================

Strategies
----------
``universes()`` builds random *valid* universes (linear and inverse markets, tiers,
brackets, imf factors, upnl weights below 1); ``books(universe)`` builds random books
for one of them (arbitrary int64 ids, duplicate balance rows, borrows, zero-size and
isolated positions, symbols as str or as integer indices, unsorted rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.prices import resolve
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "crossmargin",
    deadline=None,
    max_examples=60,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("crossmargin")

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)

FLOAT_COLUMNS = (
    "equity",
    "upnl",
    "adj_equity_initial",
    "adj_equity_maint",
    "im",
    "mm",
    "free_collateral",
)
BOOL_COLUMNS = ("liquidatable", "bankrupt")
ALL_COLUMNS = ("account", *FLOAT_COLUMNS, "margin_ratio", *BOOL_COLUMNS)


# ---- the hand-written universe -------------------------------------------------------
def make_small_universe() -> cm.Universe:
    return cm.Universe(
        assets=[
            cm.Asset("USDT", 1.0),
            cm.Asset("USDC", 1.0, weight_initial=0.98, weight_maint=0.99),
            cm.Asset(
                "BTC",
                50_000.0,
                weight_initial=0.9,
                weight_maint=0.95,
                liability_weight_initial=1.2,
                liability_weight_maint=1.1,
                haircut_tiers=[(1_000_000.0, 1.0), (2_000_000.0, 0.8), (math.inf, 0.5)],
            ),
            cm.Asset(
                "ETH",
                2_000.0,
                weight_initial=0.8,
                weight_maint=0.9,
                liability_weight_initial=1.3,
                liability_weight_maint=1.15,
            ),
        ],
        markets=[
            cm.Market(
                "BTCUSDT",
                "perp",
                "USDT",
                "BTC",
                50_000.0,
                [(50_000.0, 0.02, 0.01), (250_000.0, 0.04, 0.02), (math.inf, 0.1, 0.05)],
            ),
            cm.Market(
                "ETHUSDT",
                "perp",
                "USDT",
                "ETH",
                2_000.0,
                [(10_000.0, 0.05, 0.025), (math.inf, 0.1, 0.05)],
                upnl_weight_initial=0.5,
                upnl_weight_maint=0.8,
            ),
            cm.Market(
                "BTCUSD",
                "perp",
                "BTC",
                "BTC",
                50_000.0,
                [(10.0, 0.01, 0.005), (math.inf, 0.02, 0.01)],
                contract_size=100.0,
                inverse=True,
            ),
        ],
    )


@pytest.fixture(scope="session")
def small() -> cm.Universe:
    return make_small_universe()


@pytest.fixture(scope="session")
def demo() -> cm.Universe:
    return cm.Universe.demo()


@pytest.fixture(scope="session")
def small_engine(small: cm.Universe) -> cm.Engine:
    return cm.Engine(small, threads=1)


# ---- helpers -------------------------------------------------------------------------
def balances(*rows: tuple[int, Any, float]) -> dict[str, list[Any]]:
    """Balance columns from ``(account, asset, qty)`` rows."""
    return {
        "account": [r[0] for r in rows],
        "asset": [r[1] for r in rows],
        "qty": [r[2] for r in rows],
    }


def positions(*rows: tuple[Any, ...]) -> dict[str, list[Any]]:
    """Position columns from ``(account, market, qty, entry_price[, isolated_margin])``."""
    return {
        "account": [r[0] for r in rows],
        "market": [r[1] for r in rows],
        "qty": [r[2] for r in rows],
        "entry_price": [r[3] for r in rows],
        "isolated_margin": [r[4] if len(r) > 4 else 0.0 for r in rows],
    }


def book(
    bal: list[tuple[Any, ...]] | None = None, pos: list[tuple[Any, ...]] | None = None
) -> cm.Book:
    return cm.Book.from_arrays(balances(*bal) if bal else None, positions(*pos) if pos else None)


def evaluate_both(
    universe: cm.Universe, b: cm.Book, prices: Any = None
) -> tuple[cm.MarginResult, cm.MarginResult]:
    """(engine result, reference result) of one book."""
    return cm.Engine(universe, threads=1).evaluate(b, prices=prices), reference.evaluate(
        universe, b, prices=prices
    )


def one(result: cm.MarginResult) -> dict[str, Any]:
    """The single row of a one-account result as a dict of Python scalars."""
    assert len(result) == 1, f"expected one account, got {len(result)}"
    return {c: result[c][0].item() for c in result.columns}


def assert_results_identical(a: cm.MarginResult, b: cm.MarginResult) -> None:
    """Bit-identical columns (NaN/inf compared as values)."""
    assert a.columns == b.columns
    for c in a.columns:
        np.testing.assert_array_equal(a[c], b[c], err_msg=c, strict=True)


def gross_scale(universe: cm.Universe, b: cm.Book, prices: Any = None) -> np.ndarray:
    """Per account (ascending id): 1 + the sum of the absolute values of every term
    that enters its sums (balance values times the largest weight, |uPnL|, requirements,
    isolated margin). Rounding differences between two summation orders are a few ulps
    of this, so it scales the absolute tolerance of the differential tests."""
    asset_prices, marks = (x.tolist() for x in resolve(universe, prices))
    accounts = b.accounts
    where = {int(a): i for i, a in enumerate(accounts.tolist())}
    scale = np.ones(len(accounts))
    a_remap, m_remap = (x.tolist() for x in b.remaps(universe))
    bal = b.balances
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
    pos = b.positions
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
        upnl, im, mm = reference.position_numbers(market, qty, entry, marks[k], settle_price)
        iso_usd = 0.0 if math.isnan(iso) else iso * settle_price
        scale[where[acct]] += abs(upnl) + abs(im) + abs(mm) + iso_usd
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
    is mm divided by a rounding residue) and must agree on being infinite where
    adj_equity_maint is clearly ≤ 0. Booleans are compared exactly wherever the quantity
    they threshold is not within the absolute tolerance of its threshold (two summation
    orders may legitimately put a value that is 0 up to rounding on either side).
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


# ---- hypothesis strategies: universes ------------------------------------------------
positive_price = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
imf_factors = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.01, allow_nan=False))
upnl_weights = st.one_of(st.just(1.0), unit)


@st.composite
def upnl_weight_pairs(draw: st.DrawFn) -> dict[str, float]:
    """``upnl_weight_initial`` ≤ ``upnl_weight_maint`` (initial margin is the stricter; the
    universe rejects the other order)."""
    wi = draw(upnl_weights)
    wm = draw(st.one_of(st.just(1.0), st.floats(min_value=wi, max_value=1.0)))
    return {"upnl_weight_initial": wi, "upnl_weight_maint": wm}


@st.composite
def haircut_tiers(draw: st.DrawFn) -> list[tuple[float, float]] | None:
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
    )


@st.composite
def brackets_strategy(draw: st.DrawFn, scale: float) -> list[tuple[float, float, float]]:
    """Valid brackets: strictly increasing bounds (last may be inf), non-decreasing
    rates, mmr ≤ imr ≤ 1 in every bracket."""
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
def universes(draw: st.DrawFn) -> cm.Universe:
    """A random valid universe: 1–4 assets ``A0``…, 0–4 markets ``M0``… (perp or future,
    linear or inverse, settled in a random asset, on an underlying that is an asset's
    symbol or an index ``IX0``/``IX1``), sometimes with a configured underlying price."""
    n_assets = draw(st.integers(1, 4))
    assets = [draw(assets_strategy(f"A{i}")) for i in range(n_assets)]
    markets = []
    for k in range(draw(st.integers(0, 4))):
        inverse = draw(st.booleans())
        mark = draw(positive_price)
        contract_size = draw(st.floats(min_value=1e-3, max_value=100.0))
        # Bracket bounds in settle-asset notional of a "typical" position.
        typical = contract_size / mark if inverse else contract_size * mark
        markets.append(
            cm.Market(
                f"M{k}",
                draw(st.sampled_from(["perp", "future"])),
                draw(st.sampled_from([a.symbol for a in assets])),
                draw(st.sampled_from([a.symbol for a in assets] + ["IX0", "IX1"])),
                mark,
                draw(brackets_strategy(typical * 10.0)),
                contract_size=contract_size,
                inverse=inverse,
                imf_factor=draw(imf_factors),
                **draw(upnl_weight_pairs()),
            )
        )
    u = cm.Universe(assets, markets)
    if u.underlyings and draw(st.booleans()):
        # An index price distinct from the same-symbol asset / first mark: overrides on
        # this underlying then move its markets relative to it.
        name = draw(st.sampled_from(u.underlyings))
        factor = draw(st.floats(min_value=0.5, max_value=2.0))
        u = cm.Universe(assets, markets, {name: u.reference_price(name) * factor})
    return u


# ---- hypothesis strategies: books ----------------------------------------------------
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
    positions: dict[str, np.ndarray]  # account, market (int index), qty, entry, isolated
    as_str: tuple[bool, bool]  # symbol columns given as str (balances, positions)

    def columns(self, universe: cm.Universe, order: tuple[np.ndarray, np.ndarray] | None = None):
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

    def book(self, universe: cm.Universe, order=None) -> cm.Book:
        return cm.Book.from_arrays(*self.columns(universe, order))

    @property
    def has_duplicate_balances(self) -> bool:
        pairs = list(
            zip(self.balances["account"].tolist(), self.balances["asset"].tolist(), strict=True)
        )
        return len(pairs) != len(set(pairs))


@st.composite
def random_books(draw: st.DrawFn, universe: cm.Universe, max_rows: int = 24) -> RandomBook:
    """Rows over a handful of account ids (so accounts have several rows and duplicate
    balance rows occur), unsorted."""
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
            market = universe.markets[k]
            qty = draw(position_qty)
            if qty == 0.0 and draw(st.booleans()):
                entry = 0.0  # no position: any entry, even 0, is fine
            else:
                entry = market.mark * draw(st.floats(min_value=0.2, max_value=5.0))
            pos_rows.append((acct, k, qty, entry, draw(isolated)))
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
    return RandomBook(bal, pos, (draw(st.booleans()), draw(st.booleans())))


@st.composite
def universe_and_book(draw: st.DrawFn, max_rows: int = 24) -> tuple[cm.Universe, RandomBook]:
    u = draw(universes())
    return u, draw(random_books(u, max_rows=max_rows))


@st.composite
def price_overrides(draw: st.DrawFn, universe: cm.Universe) -> dict[str, float]:
    """A ``prices=`` mapping keyed by underlyings, assets and markets of ``universe``."""
    keys = (
        list(universe.underlyings)
        + [a.symbol for a in universe.assets]
        + [m.symbol for m in universe.markets]
    )
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=4))
    out = {}
    for key in chosen:
        base = (
            universe.reference_price(key)
            if key in universe.underlyings
            else universe.assets[universe.asset_index[key]].price
            if key in universe.asset_index
            else universe.markets[universe.market_index[key]].mark
        )
        out[key] = base * draw(st.floats(min_value=0.1, max_value=3.0))
    return out
