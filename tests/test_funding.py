"""Funding (``apply_funding``; docs/MODEL.md "Funding" and "Money").

Rates follow Binance's published formula ("Introduction to Binance Futures Funding Rates",
https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031):
F = P + clamp(I − P, −0.05%, 0.05%), I = 0.01% per 8 hours, "if (I − P) is within ±0.05%
then F = P + (I − P) = I", and Funding Amount = Nominal Value of Positions × Funding Rate,
Nominal Value = Mark Price × Size. Payments are integer minor units, exactly zero-sum per
market, equal to the plain-Python reference.
"""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import funding
from crossmargin.reference import solvency as ref
from crossmargin.testing import universe_and_book
from helpers import book
from hypothesis import given, settings
from hypothesis import strategies as st


# ---- the rate ------------------------------------------------------------------------
def test_rate_equals_the_interest_rate_inside_the_dampener():
    # Binance: with I = 0.01% and |I − P| ≤ 0.05%, F = I exactly.
    for p in (0.0, 0.0001, 0.0003, 0.0006, -0.0004):
        assert funding.funding_rate(p) == 0.0001
        assert ref.funding_rate(p) == 0.0001


def test_rate_follows_the_premium_beyond_the_dampener():
    # P = 0.1%: I − P = −0.09% clamps to −0.05% → F = 0.05%.
    assert funding.funding_rate(0.001) == pytest.approx(0.0005, abs=1e-18)
    # P = −0.2%: I − P = 0.21% clamps to +0.05% → F = −0.15%.
    assert funding.funding_rate(-0.002) == pytest.approx(-0.0015, abs=1e-18)
    # Binance caps F per market (a share of the maintenance margin rate): cap/floor.
    assert funding.funding_rate(0.01, cap=0.003) == 0.003
    assert funding.funding_rate(-0.01, floor=-0.003) == -0.003
    # No interest (Binance's BNB contracts): F = P + clamp(−P, ±0.05%).
    assert funding.funding_rate(0.0002, interest_rate=0.0) == 0.0


def test_rate_is_vectorised_over_markets_and_time_series():
    premium = np.array([0.0002, 0.002, -0.003])
    got = funding.funding_rate(premium, floor=[-1, -1, -0.002], cap=[1, 0.001, 1])
    assert got.tolist() == [0.0001, 0.001, -0.002]
    # A time series per market: Binance's time-weighted average premium, weights 1..n.
    samples = np.array([[0.001, 0.002, 0.003], [0.0, 0.0, 0.0]])
    got = funding.funding_rate(samples)
    p = (1 * 0.001 + 2 * 0.002 + 3 * 0.003) / 6
    assert got[0] == pytest.approx(p - 0.0005, abs=1e-18)
    assert got[1] == 0.0001
    assert ref.average_premium([0.001, 0.002, 0.003]) == pytest.approx(p, abs=1e-18)
    by_symbol = funding.funding_rate(
        {"BTCUSDT": [0.001, 0.002, 0.003], "ETHUSDT": 0.0}, cap={"BTCUSDT": 0.001}
    )
    assert by_symbol == {"BTCUSDT": pytest.approx(0.001), "ETHUSDT": 0.0001}


@given(
    st.lists(st.floats(min_value=-0.05, max_value=0.05), min_size=1, max_size=20),
    st.floats(min_value=-0.001, max_value=0.001),
)
def test_rate_matches_the_reference(samples, interest):
    got = funding.funding_rate(np.array([samples]), interest_rate=interest)[0]
    want = ref.funding_rate(ref.average_premium(samples), interest)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-18)


def test_bad_rate_inputs_raise_config_errors():
    with pytest.raises(cm.ConfigError):
        funding.funding_rate(math.nan)
    with pytest.raises(cm.ConfigError):
        funding.funding_rate(0.001, floor=0.01, cap=0.0)


# ---- payments --------------------------------------------------------------------------
def test_binance_funding_amount_is_nominal_value_times_rate(small):
    # Funding Amount = Mark Price × Size × Funding Rate: 2 BTC at 50,000 × 0.01% = 10 USDT;
    # the long pays, the two shorts receive pro rata (1.5 and 0.5 BTC).
    b = book(
        pos=[
            (1, "BTCUSDT", 2.0, 48_000.0),
            (2, "BTCUSDT", -1.5, 52_000.0),
            (3, "BTCUSDT", -0.5, 50_000.0),
        ]
    )
    fr = cm.Engine(small).apply_funding(b, {"BTCUSDT": 0.0001})
    assert fr.payments.payment.tolist() == [-10.0, 7.5, 2.5]
    assert fr.payments.payment_minor.tolist() == [-1_000_000_000, 750_000_000, 250_000_000]
    assert len(fr.counterparty) == 0
    assert fr.check_zero_sum()
    # Negative rate: shorts pay longs.
    fr = cm.Engine(small).apply_funding(b, {"BTCUSDT": -0.0001})
    assert fr.payments.payment.tolist() == [10.0, -7.5, -2.5]


def test_inverse_payments_are_in_the_settle_coin(small):
    # 1,000 contracts × 100 USD / 50,000 = 2 BTC notional × 0.01% = 0.0002 BTC = 10 USD.
    b = book(pos=[(1, "BTCUSD", 1_000.0, 50_000.0), (2, "BTCUSD", -1_000.0, 50_000.0)])
    fr = cm.Engine(small).apply_funding(b, {"BTCUSD": 0.0001})
    assert fr.payments.settle.tolist() == ["BTC", "BTC"]
    assert fr.payments.payment_minor.tolist() == [-20_000, 20_000]
    assert fr.payments.payment_usd.tolist() == pytest.approx([-10.0, 10.0])


def test_unbalanced_open_interest_is_paid_to_the_external_counterparty(small):
    b = book(pos=[(1, "BTCUSDT", 2.0, 50_000.0), (2, "BTCUSDT", -0.5, 50_000.0)])
    fr = cm.Engine(small).apply_funding(b, {"BTCUSDT": 0.0001})
    assert fr.payments.payment.tolist() == [-10.0, 2.5]
    cp = fr.counterparty
    assert cp.market.tolist() == ["BTCUSDT"] and cp.qty.tolist() == [-1.5]
    assert cp.payment.tolist() == [7.5]
    m = fr.markets.to_pandas().set_index("market").loc["BTCUSDT"]
    assert (m.longs_minor, m.shorts_minor, m.counterparty_minor, m.total_minor) == (
        -1_000_000_000,
        250_000_000,
        750_000_000,
        0,
    )
    assert fr.check_zero_sum()


def test_the_pot_is_split_exactly_with_ties_to_the_lower_account(small):
    # The long pays 4e-8 × 50,000 × 0.01% = 2e-7 USDT = 20 minor units; three equal shorts
    # get 6.67 each: 6 each plus the 2 units left to the largest remainders, all equal, so
    # to the lowest accounts.
    b = book(
        pos=[
            (9, "BTCUSDT", 4e-8, 50_000.0),
            (3, "BTCUSDT", -4e-8 / 3, 50_000.0),
            (1, "BTCUSDT", -4e-8 / 3, 50_000.0),
            (2, "BTCUSDT", -4e-8 / 3, 50_000.0),
        ]
    )
    fr = cm.Engine(small).apply_funding(b, {"BTCUSDT": 0.0001})
    pays = dict(zip(fr.payments.account.tolist(), fr.payments.payment_minor.tolist(), strict=True))
    assert pays == {1: 7, 2: 7, 3: 6, 9: -20}
    assert ref.allocate(10, [1.0, 1.0, 1.0]) == [4, 3, 3]
    assert ref.allocate(-10, [1.0, 1.0, 1.0]) == [-4, -3, -3]
    assert ref.allocate(7, [1.0, 2.0]) == [2, 5]


def test_payments_land_on_settle_balances_of_the_new_book(small):
    b = book(
        bal=[(1, "USDT", 100.0), (2, "BTC", 1.0)],
        pos=[
            (1, "BTCUSDT", 1.0, 50_000.0),
            (2, "BTCUSDT", -1.0, 50_000.0),
            (2, "BTCUSD", 10.0, 5e4),
        ],
    )
    fr = cm.Engine(small).apply_funding(b, {"BTCUSDT": 0.0001, "BTCUSD": 0.0001})
    after = cm.reference.evaluate(small, fr.book)
    before = cm.reference.evaluate(small, b)
    moved = after.equity - before.equity
    assert moved.tolist() == pytest.approx(
        fr.payments.to_pandas().groupby("account").payment_usd.sum().tolist()
    )
    bal, _ = fr.book.to_pandas(small)
    rows = sorted(zip(bal.account.tolist(), bal.asset.tolist(), bal.qty.tolist(), strict=True))
    assert rows == [(1, "USDT", 95.0), (2, "BTC", 1.0 - 0.000002), (2, "USDT", 5.0)]


def test_rates_are_checked(small):
    eng = cm.Engine(small)
    b = book(pos=[(1, "BTCUSDT", 1.0, 50_000.0)])
    with pytest.raises(cm.ConfigError, match="unknown market"):
        eng.apply_funding(b, {"XBT": 0.0001})
    with pytest.raises(cm.ConfigError, match="one per market"):
        eng.apply_funding(b, [0.0001])
    with pytest.raises(cm.ConfigError, match="finite"):
        eng.apply_funding(b, {"BTCUSDT": math.nan})


def test_dated_futures_do_not_fund(demo):
    b = book(pos=[(1, "BTCUSDT_260925", 1.0, 95_000.0)])
    with pytest.raises(cm.ConfigError, match="perpetuals only"):
        cm.Engine(demo).apply_funding(b, {"BTCUSDT_260925": 0.0001})


def _perp_rates(u: cm.Universe, draw_rate) -> np.ndarray:
    return np.array([draw_rate() if m.kind == "perp" else 0.0 for m in u.markets])


@settings(max_examples=120, deadline=None)
@given(universe_and_book(), st.data())
def test_funding_is_exactly_zero_sum_and_equals_the_reference(case, data):
    u, rb = case
    b = rb.book(u)
    rate = st.one_of(st.just(0.0), st.floats(min_value=-0.01, max_value=0.01))
    rates = _perp_rates(u, lambda: data.draw(rate))
    fr = cm.Engine(u, threads=2).apply_funding(b, rates)
    assert fr.check_zero_sum()
    assert (fr.markets.total_minor == 0).all()
    got = dict(
        zip(
            zip(fr.payments.account.tolist(), fr.payments.market.tolist(), strict=True),
            fr.payments.payment_minor.tolist(),
            strict=True,
        )
    )
    want, want_cp = ref.apply_funding(u, b, rates.tolist())
    assert got == want
    got_cp = dict(
        zip(fr.counterparty.market.tolist(), fr.counterparty.payment_minor.tolist(), strict=True)
    )
    assert {k: v for k, v in got_cp.items() if v} == want_cp
    # Payers never receive and receivers never pay.
    qty = dict(
        zip(
            zip(
                rb.positions["account"].tolist(),
                [u.markets[k].symbol for k in rb.positions["market"].tolist()],
                strict=True,
            ),
            rb.positions["qty"].tolist(),
            strict=True,
        )
    )
    r = dict(zip([m.symbol for m in u.markets], rates.tolist(), strict=True))
    for (a, m), p in got.items():
        assert p == 0 or (p < 0) == (qty[(a, m)] * r[m] > 0)


@settings(max_examples=30, deadline=None)
@given(universe_and_book())
def test_funding_does_not_depend_on_threads_or_row_order(case):
    u, rb = case
    rates = _perp_rates(u, lambda: 0.0003)
    one = cm.Engine(u, threads=1).apply_funding(rb.book(u), rates)
    order = (np.arange(len(rb.balances["qty"]))[::-1], np.arange(len(rb.positions["qty"]))[::-1])
    two = cm.Engine(u, threads=2).apply_funding(rb.book(u, order), rates)
    for c in one.payments.columns:
        np.testing.assert_array_equal(one.payments[c], two.payments[c])


def test_check_zero_sum_raises_when_a_payment_is_changed(small):
    b = book(pos=[(1, "BTCUSDT", 2.0, 50_000.0), (2, "BTCUSDT", -0.5, 50_000.0)])
    fr = cm.Engine(small).apply_funding(b, {"BTCUSDT": 0.0001})
    cols = fr.payments.to_dict()
    cols["payment_minor"] = cols["payment_minor"] + np.array([0, 1])
    bad = funding.FundingResult(cm.Table(cols), fr.markets, fr.counterparty, fr.book)
    with pytest.raises(cm.LedgerError, match="BTCUSDT is not zero-sum: 1 minor units"):
        bad.check_zero_sum()


def test_a_payment_beyond_the_ledger_names_the_market() -> None:
    u = cm.Universe.demo()
    b = cm.Book.from_arrays(
        positions={
            "account": [5, 6],
            "market": ["BTCUSDT", "BTCUSDT"],
            "qty": [1e15, -1e15],
            "entry_price": [1e5, 1e5],
        }
    )
    with pytest.raises(cm.PriceError, match=r"funding\[BTCUSDT\]"):
        cm.Engine(u).apply_funding(b, {"BTCUSDT": 0.5}, prices={"BTCUSDT": 1e17})
