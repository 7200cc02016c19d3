"""Liquidation prices: published exchange examples, closed forms, and properties against the
pure-Python reference (crossmargin.risk.liqprice.reference_liquidation_prices)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.prices import resolve
from crossmargin.reference.liqprice import _moved, reference_liquidation_prices
from crossmargin.testing import universe_and_book
from helpers import book
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INF = math.inf


def lp(u: cm.Universe, b: cm.Book, move: str = "underlying") -> np.ndarray:
    return cm.Engine(u, threads=1).liquidation_prices(b, move=move).liq_price  # type: ignore[arg-type]


# ---- published examples ------------------------------------------------------------------
def coin_m_universe(brackets: list[tuple[float, float, float]], btc: float = 45_000.0) -> Any:
    return cm.Universe(
        [cm.Asset("BTC", btc)],
        [
            cm.Market(
                "BTCUSD_PERP",
                "perp",
                "BTC",
                "BTC",
                btc,
                brackets,
                contract_size=100.0,
                inverse=True,
            )
        ],
    )


# Binance's current BTCUSD table is not published in full (docs/SOURCES.md §1.3, §6). The
# example's tier is: MMR 12.5 %, maintenance amount 11.605 BTC (published, URL below). This
# table has that tier: a floor of 154.7333 BTC at 5 % below it gives
# 154.7333 × (12.5 % − 5 %) = 11.605 BTC.
COIN_M_BRACKETS = [(11.605 / 0.075, 0.1, 0.05), (INF, 0.25, 0.125)]


@pytest.mark.parametrize("move", ["underlying", "mark"])
@pytest.mark.parametrize("isolated", [False, True])
def test_binance_coin_m_example_reproduces_the_calculator(move: str, isolated: bool) -> None:
    """Binance COIN-M: WB 101 BTC, long 100,000 BTCUSD contracts (100 USD) at 45,000, MMR
    12.5 %; "The Binance Calculator is calculating the Liquidation Price as $33,599.40".
    https://dev.binance.vision/t/coin-margined-futures-liquidation-price-calculation-help-cm-variable/6292
    Maintenance amount 11.605 BTC for that tier:
    https://www.binance.com/es-MX/support/faq/how-to-calculate-liquidation-price-of-coin-m-futures-contracts-ceccfcfb4e3a45e3b48b0b1bb1a8ae46
    Published to the cent, derived 33,599.42 (docs/SOURCES.md §2.3): within 0.05. The BTC
    price cancels out (everything is in coin), so both ``move`` readings agree; isolated
    with 101 BTC of margin gives the same price (Binance: isolated uses TMM = UPNL = 0)."""
    u = coin_m_universe(COIN_M_BRACKETS)
    if isolated:
        b = book(pos=[(1, "BTCUSD_PERP", 100_000.0, 45_000.0, 101.0)])
    else:
        b = book(bal=[(1, "BTC", 101.0)], pos=[(1, "BTCUSD_PERP", 100_000.0, 45_000.0)])
    got = lp(u, b, move)[0]
    assert abs(got - 33_599.40) < 0.05, got
    # Binance's one-way formula with the tier's MMR and amount, to machine precision.
    n, mmr, cum, wb, cm_, ep = 100_000.0, 0.125, 11.605, 101.0, 100.0, 45_000.0
    closed = (n * mmr + n) / ((wb + cum) / cm_ + n / ep)
    assert got == pytest.approx(closed, rel=1e-12)


def test_binance_usdm_formula_with_another_position_and_tier_change() -> None:
    """Binance USDⓈ-M cross, one-way (formula text: OrangeX's copy of Binance's FAQ,
    https://www.orangex.com/support/help/articles/401-how-to-calculate-liquidation-price-of-usdt-margined-perpetual-contracts;
    FAQ https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93):
    LP = (WB − TMM1 + UPNL1 + cumB − Side·Pos·EP) / (Pos·MMR_B − Side·Pos), redone with the
    tier of the notional at LP. Binance publishes no numeric USDⓈ-M example; the 2021
    BTCUSDT table (§1.2) and its published amounts are used, with an ETH position held fixed
    (``move="mark"``)."""
    btc_table = [
        (50_000.0, 0.008, 0.004),
        (250_000.0, 0.01, 0.005),
        (1_000_000.0, 0.02, 0.01),
        (INF, 0.05, 0.025),
    ]
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [
            cm.Market("BTCUSDT", "perp", "USDT", "BTC", 50_000.0, btc_table),
            cm.Market("ETHUSDT", "perp", "USDT", "ETH", 2_000.0, [(INF, 0.02, 0.01)]),
        ],
    )
    amounts = [r[4] for r in u.brackets_with_amounts("BTCUSDT")]
    assert amounts == pytest.approx([0.0, 50.0, 1_300.0, 16_300.0], rel=1e-12)
    wb, pos, ep = 30_000.0, 5.0, 50_000.0  # 250,000 notional: the 0.5 % tier at the mark
    eth_qty, eth_entry = -20.0, 1_900.0  # short 20 ETH: uPnL −2,000, mm 400
    b = book(
        bal=[(1, "USDT", wb)],
        pos=[(1, "BTCUSDT", pos, ep), (1, "ETHUSDT", eth_qty, eth_entry)],
    )
    tmm1, upnl1 = 20 * 2_000 * 0.01, eth_qty * (2_000 - eth_entry)
    # First pass with the tier at the mark (0.5 %, cum 50) lands at a notional < 250,000 …
    lp_b = (wb - tmm1 + upnl1 + 50.0 - pos * ep) / (pos * 0.005 - pos)
    assert pos * lp_b < 250_000
    # … so still the 0.5 % tier here. A long with less margin moves the LP down within it.
    got = lp(u, b, "mark")[0]
    assert got == pytest.approx(lp_b, rel=1e-12)
    # A short that crosses into the 1 % tier: redo with that tier (cum 1,300).
    b = book(
        bal=[(1, "USDT", wb)], pos=[(1, "BTCUSDT", -pos, ep), (1, "ETHUSDT", eth_qty, eth_entry)]
    )
    first = (wb - tmm1 + upnl1 + 50.0 + pos * ep) / (pos * 0.005 + pos)
    assert pos * first > 250_000  # the notional at the first answer is in the next tier
    redo = (wb - tmm1 + upnl1 + 1_300.0 + pos * ep) / (pos * 0.01 + pos)
    assert pos * redo > 250_000
    assert lp(u, b, "mark")[0] == pytest.approx(redo, rel=1e-12)


def linear_universe(mmr: float, imr: float) -> cm.Universe:
    return cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 10_000.0, [(INF, imr, mmr)])],
    )


@pytest.mark.parametrize(
    ("side", "entry", "leverage", "published"),
    [(1.0, 10_000.0, 50.0, 9_850.0), (-1.0, 8_000.0, 40.0, 8_160.0)],
)
def test_bybit_usdt_isolated_examples(
    side: float, entry: float, leverage: float, published: float
) -> None:
    """Bybit USDT perpetual, isolated: "Liquidation Price = Entry Price × (1 − Initial Margin
    Rate + Maintenance Margin Rate)" (short: 1 + IMR − MMR); long 1 BTC at 10,000, 50x, MMR
    0.5 % → 9,850; short 1 BTC at 8,000, 40x → 8,160.
    https://help.bybit.com/hc/en-us/articles/900000181046-Liquidation-Price-USDT-Contract-

    Bybit's maintenance there is a fixed amount (entry value × MMR); ours is on the mark.
    With Bybit's fixed amount taken off the margin and a zero rate, the engine gives Bybit's
    price to the cent; with the rate on the mark it gives the mark-based price, which differs
    by less than 0.01 %."""
    im = entry / leverage
    mm_at_entry = entry * 0.005
    u0 = linear_universe(0.0, 1.0 / leverage)
    b = book(pos=[(1, "BTCUSDT", side, entry, im - mm_at_entry)])
    assert lp(u0, b)[0] == pytest.approx(published, abs=0.005)
    u = linear_universe(0.005, 1.0 / leverage)
    b = book(pos=[(1, "BTCUSDT", side, entry, im)])
    mark_based = (im - side * entry) / (0.005 - side)  # im + side·(x − entry) = 0.005·x
    got = lp(u, b)[0]
    assert got == pytest.approx(mark_based, rel=1e-12)
    assert abs(got / published - 1) < 1e-4


def test_bybit_inverse_cross_example() -> None:
    """Bybit inverse, cross: balance 0.5 BTC, long 10,000 contracts (1 USD) at 8,000, MM
    0.5 %, taker fee 0.075 % charged at the bankruptcy price 5,718.57 → published
    liquidation price 5,739.50.
    https://help.bybit.com/hc/en-us/articles/360039261334-How-to-calculate-Liquidation-Price-Inverse-Contract-
    Bybit's maintenance is a fixed coin amount (Qty/Entry × MM + Qty × 0.075 % / bankruptcy
    price); taken off the balance with a zero rate, the printed equation gives 5,739.08; the
    0.42 gap to the published number is not explained on the page (docs/SOURCES.md §2.4),
    so the published precision checked is 0.5."""
    qty, entry, bal = 10_000.0, 8_000.0, 0.5
    fixed = qty / entry * 0.005 + qty * 0.00075 / 5_718.57
    u = cm.Universe(
        [cm.Asset("BTC", 8_000.0)],
        [cm.Market("BTCUSD", "perp", "BTC", "BTC", 8_000.0, [(INF, 0.01, 0.0)], inverse=True)],
    )
    b = book(bal=[(1, "BTC", bal - fixed)], pos=[(1, "BTCUSD", qty, entry)])
    for move in ("underlying", "mark"):
        got = lp(u, b, move)[0]
        assert got == pytest.approx(qty / (qty / entry + bal - fixed), rel=1e-12)
        assert abs(got - 5_739.50) < 0.5, got


# ---- rules ------------------------------------------------------------------------------
def test_fully_collateralised_long_and_zero_position_have_no_liquidation_price(
    small: cm.Universe,
) -> None:
    b = book(
        bal=[(1, "USDT", 50_000.0), (2, "USDT", 10.0)],
        pos=[(1, "BTCUSDT", 1.0, 50_000.0), (2, "BTCUSDT", 0.0, 50_000.0)],
    )
    assert np.isnan(lp(small, b)).all()


def test_btc_collateral_moves_with_the_btc_perp_under_the_underlying_rule(
    small: cm.Universe,
) -> None:
    """A BTC balance backing a long BTC perp: with the underlying rule the collateral falls
    with the mark, so the account liquidates sooner than with the mark alone."""
    b = book(bal=[(1, "BTC", 0.2)], pos=[(1, "BTCUSDT", 1.0, 50_000.0)])
    und, mark = lp(small, b, "underlying")[0], lp(small, b, "mark")[0]
    assert und > mark
    # Mark only: 0.2·50,000·0.95 + (x − 50,000) = 0.01·x (first bracket).
    assert mark == pytest.approx((50_000.0 - 9_500.0) / 0.99, rel=1e-12)
    # Together: 0.2·x·0.95 + (x − 50,000) = 0.01·x.
    assert und == pytest.approx(50_000.0 / (1.19 - 0.01), rel=1e-12)


def test_rows_follow_the_book_and_name_their_market(small: cm.Universe) -> None:
    b = book(
        bal=[(2, "USDT", 1_000.0), (1, "USDT", 1_000.0)],
        pos=[
            (2, "ETHUSDT", -1.0, 2_000.0),
            (1, "BTCUSDT", 0.1, 50_000.0),
            (2, "BTCUSDT", 0.1, 5e4),
        ],
    )
    t = cm.Engine(small).liquidation_prices(b)
    assert t.columns == ["account", "market", "row", "liq_price", "bankruptcy_price"]
    assert t.account.tolist() == [1, 2, 2]
    assert sorted(zip(t.row.tolist(), t.market.tolist(), strict=True)) == [
        (0, "ETHUSDT"),
        (1, "BTCUSDT"),
        (2, "BTCUSDT"),
    ]
    # Made by the binding: an object column of str (one per symbol, shared by its rows).
    assert t.market.dtype == object
    assert all(type(m) is str for m in t.market)
    with pytest.raises(cm.ConfigError, match="move"):
        cm.Engine(small).liquidation_prices(b, move="index")  # type: ignore[arg-type]


def test_books_without_positions_give_empty_columns(small: cm.Universe) -> None:
    # The columns are written by the parallel tasks, one part per block of accounts: none
    # here (balances only, or nothing at all), and no row left unwritten.
    for bal in ([(1, "USDT", 1_000.0)], []):
        t = cm.Engine(small, threads=2).liquidation_prices(book(bal=bal, pos=[]))
        assert t.columns == ["account", "market", "row", "liq_price", "bankruptcy_price"]
        assert [len(t[c]) for c in t.columns] == [0] * 5


def test_results_do_not_depend_on_thread_count(demo: cm.Universe) -> None:
    from crossmargin import synth

    b = synth.generate(demo, n_accounts=3_000, seed=3)
    one_ = cm.Engine(demo, threads=1).liquidation_prices(b).liq_price
    two = cm.Engine(demo, threads=2).liquidation_prices(b).liq_price
    np.testing.assert_array_equal(one_, two)


# ---- properties --------------------------------------------------------------------------
def _gap(u: cm.Universe, b: cm.Book, row: int, move: str, price: float) -> tuple[float, float]:
    """(g, gross) of the position in input row ``row`` with its market at ``price``: g the
    distance to maintenance (cross pool or isolated position), gross the sum of the absolute
    values of the terms g nets (its rounding is a few ulps of that)."""
    assets, marks = (x.tolist() for x in resolve(u, None))
    account = int(b.positions["account"][row])
    acct = reference.margin.account_rows(u, b)[account]
    rows = [r for r, a in enumerate(b.positions["account"].tolist()) if a == account]
    k, qty, entry, iso = acct.positions[rows.index(row)]
    a, m = _moved(u, assets, marks, k, move, price / marks[k])

    def terms(j: int, q: float, e: float) -> tuple[float, float]:
        """(uPnL, |uPnL| + mm + notional): the notional bounds the slope of g per unit
        relative move, so a root found to ~1e-12 relative is within ~1e-12 × it."""
        mk = u.markets[j]
        settle = a[u.asset_index[mk.settle]]
        upnl, _, mm = reference.position_numbers(mk, q, e, m[j], settle)
        size = abs(q * mk.contract_size)
        if size == 0.0:
            return upnl - mm, abs(upnl) + abs(mm)
        notional = (size / m[j] + size / e if mk.inverse else size * m[j]) * settle
        return upnl - mm, abs(upnl) + abs(mm) + notional

    if iso > 0:
        net, gross = terms(k, qty, entry)
        margin = iso * a[u.asset_index[u.markets[k].settle]]
        return margin + net, abs(margin) + gross
    n = reference.evaluate_account(u, acct, a, m)
    total = sum(abs(q * a[i]) * 3.0 for i, q in acct.balances.items())
    for j, q, e, i in acct.positions:
        if i <= 0:
            total += terms(j, q, e)[1]
    return n.adj_equity_maint - n.mm, total


@settings(max_examples=80)
@given(universe_and_book(max_rows=12))
def test_account_is_at_maintenance_at_the_liquidation_price(ub: Any) -> None:
    u, rb = ub
    b = rb.book(u)
    marks = resolve(u, None)[1]
    for move in ("underlying", "mark"):
        t = cm.Engine(u, threads=1).liquidation_prices(b, move=move)  # type: ignore[arg-type]
        for row, market, x in zip(
            t.row.tolist(), t.market.tolist(), t.liq_price.tolist(), strict=True
        ):
            if math.isnan(x):
                continue
            x0 = marks[u.market_index[market]]
            g, scale = _gap(u, b, row, move, x)
            assert abs(g) <= 1e-8 * scale + 1e-12, (move, row, x, g, scale)
            g0, s0 = _gap(u, b, row, move, x0)
            if g0 > 1e-8 * s0:
                # Healthy now: just inside the liquidation price (towards the mark) is safe.
                inside = x * (1 + 1e-7 * math.copysign(1.0, x0 - x))
                gi, si = _gap(u, b, row, move, inside)
                assert gi >= -1e-8 * si - 1e-12, (move, row, x, gi)


@settings(max_examples=40)
@given(universe_and_book(max_rows=10))
def test_engine_agrees_with_the_reference_bisection(ub: Any) -> None:
    u, rb = ub
    b = rb.book(u)
    for move in ("underlying", "mark"):
        got = cm.Engine(u, threads=1).liquidation_prices(b, move=move)  # type: ignore[arg-type]
        want = reference_liquidation_prices(u, b, move=move)  # type: ignore[arg-type]
        order = np.argsort(got.row)
        np.testing.assert_array_equal(got.row[order], want.row)
        np.testing.assert_array_equal(got.account[order], want.account)
        np.testing.assert_array_equal(got.market[order], want.market)
        g, w = got.liq_price[order], want.liq_price
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=move)
        ok = ~np.isnan(w)
        np.testing.assert_allclose(g[ok], w[ok], rtol=1e-7, err_msg=move)


# ---- the closed form against the full-model search ---------------------------------------
@contextmanager
def full_model_search() -> Iterator[None]:
    """Every root searched with the full model (docs/MODEL.md "Search":
    ``CROSSMARGIN_LIQ_CLOSED_FORM=0``), for comparisons with the closed form."""
    old = os.environ.get("CROSSMARGIN_LIQ_CLOSED_FORM")
    os.environ["CROSSMARGIN_LIQ_CLOSED_FORM"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["CROSSMARGIN_LIQ_CLOSED_FORM"]
        else:
            os.environ["CROSSMARGIN_LIQ_CLOSED_FORM"] = old


def _both_ways(u: cm.Universe, b: cm.Book, move: str) -> tuple[Any, Any]:
    e = cm.Engine(u, threads=1)
    fast = e.liquidation_prices(b, move=move)  # type: ignore[arg-type]
    with full_model_search():
        full = e.liquidation_prices(b, move=move)  # type: ignore[arg-type]
    return fast, full


def _assert_same_roots(fast: Any, full: Any, rtol: float, msg: str) -> None:
    np.testing.assert_array_equal(fast.row, full.row)
    for col in ("liq_price", "bankruptcy_price"):
        a, w = np.asarray(fast[col]), np.asarray(full[col])
        np.testing.assert_array_equal(np.isnan(a), np.isnan(w), err_msg=f"{msg} {col}")
        ok = ~np.isnan(w)
        np.testing.assert_allclose(a[ok], w[ok], rtol=rtol, err_msg=f"{msg} {col}")


def _without_size_premium(u: cm.Universe) -> cm.Universe:
    """The same universe with the markets' size premium off: every perp and future then has
    the piecewise-linear g the closed form solves (docs/MODEL.md "Search")."""
    markets = [m if m.is_option else dataclasses.replace(m, imf_factor=0.0) for m in u.markets]
    return dataclasses.replace(u, markets=markets)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe_and_book(max_rows=14, options=True), st.booleans())
def test_closed_form_finds_the_roots_of_the_full_model_search(ub: Any, plain: bool) -> None:
    """The closed-form roots (piecewise-linear g) equal the full model's false-position roots
    to rounding, and the rows it does not solve (size premium, options...) fall back to that
    search; both readings of the move."""
    u, rb = ub
    if plain:
        u = _without_size_premium(u)
    b = rb.book(u)
    for move in ("underlying", "mark"):
        fast, full = _both_ways(u, b, move)
        _assert_same_roots(fast, full, 1e-9, move)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universe_and_book(max_rows=10, venue_rules=True))
def test_closed_form_agrees_with_the_reference_with_venue_rules(ub: Any) -> None:
    """Entry-basis maintenance (closed form), step and size-scaled shapes and fee reserves
    (full search) side by side in one book: the engine agrees with the oracle."""
    u, rb = ub
    u = _without_size_premium(u)
    b = rb.book(u)
    for move in ("underlying", "mark"):
        got = cm.Engine(u, threads=1).liquidation_prices(b, move=move)  # type: ignore[arg-type]
        want = reference_liquidation_prices(u, b, move=move)  # type: ignore[arg-type]
        order = np.argsort(got.row)
        for col in ("liq_price", "bankruptcy_price"):
            g, w = np.asarray(got[col])[order], np.asarray(want[col])
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{move} {col}")
            ok = ~np.isnan(w)
            np.testing.assert_allclose(g[ok], w[ok], rtol=1e-6, err_msg=f"{move} {col}")


def test_closed_form_on_the_demo_book_equals_the_full_model_search(demo: cm.Universe) -> None:
    """The benchmark's shape (docs/ARCHITECTURE.md "Performance targets": haircut tiers on
    BTC, 12-tier brackets, an inverse perp settled in BTC, isolated positions): same roots."""
    from crossmargin import synth

    b = synth.generate(demo, n_accounts=2_000, seed=11)
    for move in ("underlying", "mark"):
        fast, full = _both_ways(demo, b, move)
        _assert_same_roots(fast, full, 1e-9, move)
