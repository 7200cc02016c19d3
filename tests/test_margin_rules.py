"""The rules of docs/MODEL.md "Standard cross margin", pinned on small hand-computed accounts.

Every test runs against both the Rust engine and the pure-Python reference (the
``margin`` fixture). Universe ``small`` (see conftest): USDT 1, USDC 1 (weights 0.98 /
0.99), BTC 50,000 (weights 0.9 / 0.95, liabilities 1.2 / 1.1, tiers 100% to 1M USD, 80% to
2M, 50% above), ETH 2,000 (0.8 / 0.9, liabilities 1.3 / 1.15); BTCUSDT (50k: 2% / 1%,
250k: 4% / 2%, then 10% / 5%), ETHUSDT (10k: 5% / 2.5%, then 10% / 5%; uPnL weights 0.5 /
0.8), BTCUSD inverse, 100 USD contracts, settled in BTC (10 BTC: 1% / 0.5%, then 2% / 1%).
"""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from helpers import book, one
from hypothesis import given
from hypothesis import strategies as st

INF = math.inf


@pytest.fixture(params=["engine", "reference"])
def margin(request, small):
    """``margin(bal_rows, pos_rows, prices=None, universe=small)`` → the single account's
    numbers as a dict, from the engine or from the reference."""

    def run(bal=None, pos=None, prices=None, universe=None):
        u = universe or small
        b = book(bal, pos)
        if request.param == "engine":
            return one(cm.Engine(u, threads=1).evaluate(b, prices=prices))
        return one(reference.evaluate(u, b, prices=prices))

    return run


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-9)


# ---- equity and uPnL ---------------------------------------------------------------------
def test_equity_is_balances_plus_upnl_plus_isolated_margin_unweighted(margin):
    r = margin(
        [(1, "USDT", 1_000.0), (1, "BTC", 0.5), (1, "ETH", -2.0)],
        [
            (1, "BTCUSDT", 0.1, 48_000.0),  # uPnL 0.1 × 2,000 = 200
            (1, "ETHUSDT", -1.0, 2_100.0, 300.0),  # isolated: uPnL 100, margin 300
        ],
    )
    assert r["equity"] == approx(1_000 + 25_000 - 4_000 + 200 + 100 + 300)
    assert r["upnl"] == approx(300.0)


@pytest.mark.parametrize(
    ("qty", "entry", "upnl"),
    [(2.0, 45_000.0, 10_000.0), (-2.0, 45_000.0, -10_000.0), (0.5, 52_000.0, -1_000.0)],
)
def test_linear_upnl_is_qty_times_contract_size_times_mark_minus_entry(margin, qty, entry, upnl):
    assert margin(pos=[(1, "BTCUSDT", qty, entry)])["upnl"] == approx(upnl)


def test_linear_upnl_scales_with_contract_size(margin):
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [
            cm.Market(
                "BTC-C", "future", "USDT", "BTC", 50_000.0, [(INF, 0.1, 0.05)], contract_size=0.01
            )
        ],
    )
    r = margin(pos=[(1, "BTC-C", 300.0, 49_000.0)], universe=u)
    assert r["upnl"] == approx(300 * 0.01 * 1_000)
    assert r["mm"] == approx(300 * 0.01 * 50_000 * 0.05)


def test_inverse_upnl_is_in_the_coin_converted_at_the_settle_price(margin):
    # 100 contracts × 100 USD long from 40,000 to 50,000:
    # 10,000 × (1/40,000 − 1/50,000) = 0.05 BTC = 2,500 USD at 50,000.
    r = margin(pos=[(1, "BTCUSD", 100.0, 40_000.0)])
    assert r["upnl"] == approx(2_500.0)
    # The same position with the settle coin priced at 60,000 and the mark kept at 50,000.
    r = margin(pos=[(1, "BTCUSD", 100.0, 40_000.0)], prices={"BTC": 60_000.0, "BTCUSD": 50_000.0})
    assert r["upnl"] == approx(0.05 * 60_000)


def test_inverse_short_profits_when_the_mark_falls(margin):
    # Short 100 × 100 USD from 50,000 at mark 40,000: −10,000 × (1/50,000 − 1/40,000) = 0.05 BTC.
    r = margin(pos=[(1, "BTCUSD", -100.0, 50_000.0)], prices={"BTCUSD": 40_000.0})
    assert r["upnl"] == approx(0.05 * 50_000)


def test_inverse_requirement_is_on_coin_notional_converted_at_the_settle_price(margin):
    # 100 contracts × 100 USD / 50,000 = 0.2 BTC notional, first bracket: 1% / 0.5%.
    r = margin(pos=[(1, "BTCUSD", 100.0, 50_000.0)])
    assert r["im"] == approx(0.2 * 0.01 * 50_000)
    assert r["mm"] == approx(0.2 * 0.005 * 50_000)


def test_a_flat_position_has_no_upnl_and_no_requirement(margin):
    r = margin(pos=[(1, "BTCUSDT", 0.0, 0.0), (1, "BTCUSD", 0.0, 0.0)])
    assert (r["upnl"], r["im"], r["mm"], r["equity"]) == (0.0, 0.0, 0.0, 0.0)


# ---- collateral ---------------------------------------------------------------------------
def test_positive_balances_count_at_their_collateral_weight(margin):
    r = margin([(1, "USDC", 1_000.0), (1, "ETH", 1.0)])
    assert r["adj_equity_initial"] == approx(1_000 * 0.98 + 2_000 * 0.8)
    assert r["adj_equity_maint"] == approx(1_000 * 0.99 + 2_000 * 0.9)
    assert r["equity"] == approx(3_000.0)


@pytest.mark.parametrize(
    ("btc", "tiered_usd"),
    [
        (10.0, 500_000.0),  # inside the first tier
        (20.0, 1_000_000.0),  # exactly at the first bound
        (30.0, 1_000_000.0 + 500_000.0 * 0.8),
        (40.0, 1_000_000.0 + 1_000_000.0 * 0.8),  # exactly at the second bound
        (50.0, 1_000_000.0 + 1_000_000.0 * 0.8 + 500_000.0 * 0.5),
    ],
)
def test_haircut_tiers_apply_slice_by_slice_then_the_weight(margin, btc, tiered_usd):
    r = margin([(1, "BTC", btc)])
    assert r["adj_equity_initial"] == approx(tiered_usd * 0.9)
    assert r["adj_equity_maint"] == approx(tiered_usd * 0.95)
    assert r["equity"] == approx(btc * 50_000)


def test_value_above_a_finite_last_tier_counts_nothing(margin):
    u = cm.Universe([cm.Asset("X", 1.0, haircut_tiers=[(100.0, 1.0), (1_000.0, 0.5)])])
    r = margin([(1, "X", 5_000.0)], universe=u)
    assert r["adj_equity_maint"] == approx(100 + 900 * 0.5)
    assert r["equity"] == 5_000.0


@given(st.floats(min_value=0.0, max_value=3e6), st.floats(min_value=0.0, max_value=3e6))
def test_tiered_collateral_value_is_non_decreasing_and_continuous(a, b):
    tiers = ((1_000_000.0, 1.0), (2_000_000.0, 0.8), (INF, 0.5))
    lo, hi = sorted((a, b))
    assert reference.tiered_value(tiers, lo) <= reference.tiered_value(tiers, hi)
    # Lipschitz with constant max(rate) = 1: no jumps at the tier edges.
    assert (
        reference.tiered_value(tiers, hi) - reference.tiered_value(tiers, lo)
        <= (hi - lo) * (1 + 1e-12) + 1e-6
    )


def test_borrows_count_at_their_liability_weight_without_tiers(margin):
    r = margin([(1, "USDT", 100_000.0), (1, "BTC", -50.0)])  # 2.5M USD borrowed
    assert r["equity"] == approx(100_000 - 2_500_000)
    assert r["adj_equity_initial"] == approx(100_000 - 2_500_000 * 1.2)
    assert r["adj_equity_maint"] == approx(100_000 - 2_500_000 * 1.1)


def test_a_zero_balance_counts_nothing(margin):
    r = margin([(1, "BTC", 0.0), (1, "ETH", -0.0)])
    assert (r["equity"], r["adj_equity_initial"], r["adj_equity_maint"]) == (0.0, 0.0, 0.0)


def test_upnl_weights_apply_to_positive_upnl_only(margin):
    gain = margin(pos=[(1, "ETHUSDT", 10.0, 1_900.0)])  # uPnL +1,000
    assert gain["equity"] == approx(1_000.0)
    assert gain["adj_equity_initial"] == approx(500.0)
    assert gain["adj_equity_maint"] == approx(800.0)
    loss = margin(pos=[(1, "ETHUSDT", -10.0, 1_900.0)])  # uPnL −1,000
    assert loss["adj_equity_initial"] == approx(-1_000.0)
    assert loss["adj_equity_maint"] == approx(-1_000.0)


def test_upnl_weights_apply_per_position_not_to_the_net(margin):
    # +1,000 on ETHUSDT (weight 0.5 / 0.8) and −1,000 on BTCUSDT: net uPnL 0.
    r = margin(pos=[(1, "ETHUSDT", 10.0, 1_900.0), (1, "BTCUSDT", 1.0, 51_000.0)])
    assert r["upnl"] == approx(0.0)
    assert r["adj_equity_initial"] == approx(500.0 - 1_000.0)
    assert r["adj_equity_maint"] == approx(800.0 - 1_000.0)


# ---- requirements ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("btc", "im", "mm"),
    [
        (0.5, 25_000 * 0.02, 25_000 * 0.01),
        (1.0, 50_000 * 0.02, 50_000 * 0.01),  # exactly at the first bound
        # 100k: progressive 50k × 2% + 50k × 4% = 3,000; 50k × 1% + 50k × 2% = 1,500
        (2.0, 3_000.0, 1_500.0),
        # 500k: 50k × 2% + 200k × 4% + 250k × 10%; 50k × 1% + 200k × 2% + 250k × 5%
        (10.0, 1_000 + 8_000 + 25_000, 500 + 4_000 + 12_500),
    ],
)
def test_requirements_follow_the_brackets_progressively(margin, btc, im, mm):
    r = margin(pos=[(1, "BTCUSDT", btc, 50_000.0)])
    assert (r["im"], r["mm"]) == (approx(im), approx(mm))
    short = margin(pos=[(1, "BTCUSDT", -btc, 50_000.0)])
    assert (short["im"], short["mm"]) == (approx(im), approx(mm))


def test_requirement_is_notional_times_rate_minus_the_maintenance_amount(small):
    brackets = small.markets[0].brackets
    cums = [row[3:] for row in small.brackets_with_amounts("BTCUSDT")]
    for notional in (10_000.0, 120_000.0, 400_000.0):
        k = next(i for i, b in enumerate(brackets) if notional <= b[0])
        im, mm = reference.bracket_requirement(brackets, notional)
        assert im == approx(notional * brackets[k][1] - cums[k][0])
        assert mm == approx(notional * brackets[k][2] - cums[k][1])


@given(
    edge=st.sampled_from([50_000.0, 250_000.0]),
    side=st.sampled_from([-1.0, 1.0]),
    eps=st.floats(min_value=1e-12, max_value=1e-6),
)
def test_maintenance_is_continuous_at_bracket_edges(small, edge, side, eps):
    eng = cm.Engine(small, threads=1)
    at_edge = eng.evaluate(book(pos=[(1, "BTCUSDT", edge / 50_000, 50_000.0)]))
    near = eng.evaluate(book(pos=[(1, "BTCUSDT", edge * (1 + side * eps) / 50_000, 50_000.0)]))
    # Within the largest rate (10%) times the notional step.
    step = edge * eps
    assert abs(near.mm[0] - at_edge.mm[0]) <= 0.05 * step * (1 + 1e-9) + 1e-9
    assert abs(near.im[0] - at_edge.im[0]) <= 0.10 * step * (1 + 1e-9) + 1e-9


@given(st.floats(min_value=0.0, max_value=1e6), st.floats(min_value=0.0, max_value=1e6))
def test_requirements_are_non_decreasing_in_notional(a, b):
    brackets = ((50_000.0, 0.02, 0.01), (250_000.0, 0.04, 0.02), (INF, 0.1, 0.05))
    lo, hi = sorted((a, b))
    im_lo, mm_lo = reference.bracket_requirement(brackets, lo)
    im_hi, mm_hi = reference.bracket_requirement(brackets, hi)
    assert im_lo <= im_hi + 1e-9 and mm_lo <= mm_hi + 1e-9


def test_beyond_a_finite_last_bound_the_last_bracket_applies(margin):
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("X", "perp", "USDT", "X", 1.0, [(100.0, 0.1, 0.05), (1_000.0, 0.2, 0.1)])],
    )
    r = margin(pos=[(1, "X", 5_000.0, 1.0)], universe=u)
    assert r["mm"] == approx(5_000 * 0.1 - 100 * 0.05)
    assert r["im"] == approx(5_000 * 0.2 - 100 * 0.1)


def test_requirements_add_up_over_cross_positions(margin):
    r = margin(pos=[(1, "BTCUSDT", 1.0, 50_000.0), (1, "ETHUSDT", -5.0, 2_000.0)])
    assert r["im"] == approx(1_000 + 500)
    assert r["mm"] == approx(500 + 250)


# ---- isolated positions ---------------------------------------------------------------------
def test_isolated_position_stays_outside_the_cross_pool(margin):
    r = margin([(1, "USDT", 1_000.0)], [(1, "BTCUSDT", 1.0, 49_000.0, 600.0)])
    assert r["equity"] == approx(1_000 + 1_000 + 600)  # uPnL and its margin are owned
    assert r["upnl"] == approx(1_000.0)
    assert r["adj_equity_initial"] == approx(1_000.0)  # ... but not in the pool
    assert r["adj_equity_maint"] == approx(1_000.0)
    assert (r["im"], r["mm"], r["margin_ratio"]) == (0.0, 0.0, 0.0)
    assert r["free_collateral"] == approx(1_000.0)
    assert not r["liquidatable"]


def test_isolated_position_is_liquidatable_by_its_own_margin_alone(margin):
    # Its maintenance is 500; 400 of margin and no uPnL: below, whatever the wallet holds.
    r = margin([(1, "USDT", 1_000_000.0)], [(1, "BTCUSDT", 1.0, 50_000.0, 400.0)])
    assert r["liquidatable"]
    assert r["mm"] == 0.0 and r["margin_ratio"] == 0.0
    assert not r["bankrupt"]


def test_isolated_position_counts_its_own_upnl(margin):
    # 400 of margin + 1,000 of uPnL ≥ 500 of maintenance.
    assert not margin(pos=[(1, "BTCUSDT", 1.0, 49_000.0, 400.0)])["liquidatable"]
    # 400 of margin − 1,000 of uPnL < 500.
    assert margin(pos=[(1, "BTCUSDT", 1.0, 51_000.0, 400.0)])["liquidatable"]


def test_isolated_position_exactly_at_maintenance_is_not_liquidatable(margin):
    assert not margin(pos=[(1, "BTCUSDT", 1.0, 50_000.0, 500.0)])["liquidatable"]
    assert margin(pos=[(1, "BTCUSDT", 1.0, 50_000.0, 499.5)])["liquidatable"]


def test_isolated_margin_is_in_the_settle_asset(margin):
    # 0.01 BTC of isolated margin on the inverse market = 500 USD.
    r = margin(pos=[(1, "BTCUSD", 100.0, 50_000.0, 0.01)])
    assert r["equity"] == approx(500.0)
    # Its maintenance: 0.2 BTC × 0.5% = 0.001 BTC ≤ 0.01 BTC.
    assert not r["liquidatable"]


@pytest.mark.parametrize("cross", [0.0, math.nan])
def test_isolated_margin_zero_or_nan_means_cross(margin, cross):
    r = margin([(1, "USDT", 1_000.0)], [(1, "BTCUSDT", 1.0, 50_000.0, cross)])
    assert (r["im"], r["mm"]) == (approx(1_000.0), approx(500.0))
    assert r["equity"] == approx(1_000.0)


def test_isolated_liquidation_does_not_hide_a_healthy_cross_pool(margin):
    r = margin(
        [(1, "USDT", 10_000.0)],
        [(1, "BTCUSDT", 1.0, 50_000.0, 100.0), (1, "ETHUSDT", 1.0, 2_000.0)],
    )
    assert r["adj_equity_maint"] > r["mm"]
    assert r["liquidatable"]


# ---- ratio, liquidation, bankruptcy, free collateral ------------------------------------------
def test_margin_ratio_is_zero_without_requirement_even_when_exhausted(margin):
    r = margin([(1, "BTC", -1.0)])
    assert r["adj_equity_maint"] < 0
    assert r["margin_ratio"] == 0.0


def test_a_borrower_below_zero_adjusted_equity_is_liquidatable_without_positions(margin):
    """liquidatable = adj_equity_maint < mm, with mm = 0: an uncovered borrow is
    liquidatable although its margin ratio reads 0 (docs/MODEL.md "Margin tests")."""
    r = margin([(1, "BTC", -1.0), (1, "USDT", 50_000.0)])
    assert r["adj_equity_maint"] == approx(50_000 - 55_000)
    assert (r["mm"], r["margin_ratio"]) == (0.0, 0.0)
    assert r["liquidatable"]
    covered = margin([(1, "BTC", -1.0), (1, "USDT", 55_001.0)])
    assert covered["adj_equity_maint"] == approx(1.0)
    assert not covered["liquidatable"]


def test_margin_ratio_is_infinite_when_the_pool_is_exhausted(margin):
    zero = margin(pos=[(1, "BTCUSDT", 1.0, 50_000.0)])  # adj exactly 0, mm 500
    assert zero["adj_equity_maint"] == 0.0
    assert zero["margin_ratio"] == INF
    negative = margin([(1, "USDT", -10.0)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert negative["margin_ratio"] == INF


def test_margin_ratio_is_maintenance_over_adjusted_equity(margin):
    r = margin([(1, "USDT", 2_000.0)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert r["margin_ratio"] == approx(500 / 2_000)


def test_an_account_exactly_at_maintenance_is_not_liquidatable(margin):
    r = margin([(1, "USDT", 500.0)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert r["adj_equity_maint"] == r["mm"] == 500.0
    assert r["margin_ratio"] == 1.0
    assert not r["liquidatable"]


def test_an_account_below_maintenance_is_liquidatable(margin):
    r = margin([(1, "USDT", 499.99)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert r["margin_ratio"] > 1.0
    assert r["liquidatable"]


def test_liquidation_uses_maintenance_weights(margin):
    # USDC 505: initial weight 0.98 → 494.9, maintenance weight 0.99 → 499.95; mm 500.
    r = margin([(1, "USDC", 505.0)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert r["adj_equity_maint"] == approx(499.95)
    assert r["liquidatable"]
    r = margin([(1, "USDC", 506.0)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert not r["liquidatable"]


def test_bankrupt_means_equity_below_zero(margin):
    assert not margin([(1, "USDT", -50_000.0), (1, "BTC", 1.0)])["bankrupt"]  # exactly 0
    assert margin([(1, "USDT", -50_000.01), (1, "BTC", 1.0)])["bankrupt"]
    # Isolated margin is owned: it keeps the account solvent.
    assert not margin([(1, "USDT", -100.0)], [(1, "BTCUSDT", 1.0, 50_000.0, 100.0)])["bankrupt"]


def test_free_collateral_is_initial_adjusted_equity_minus_initial_margin(margin):
    r = margin([(1, "USDT", 10_000.0), (1, "ETH", 1.0)], [(1, "BTCUSDT", 2.0, 50_000.0)])
    assert r["adj_equity_initial"] == approx(10_000 + 2_000 * 0.8)
    assert r["im"] == approx(3_000.0)
    assert r["free_collateral"] == approx(10_000 + 1_600 - 3_000)


def test_free_collateral_can_be_negative(margin):
    r = margin([(1, "USDT", 100.0)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    assert r["free_collateral"] == approx(100.0 - 1_000.0)


# ---- size premium / discount (imf) ------------------------------------------------------------
def test_market_imf_raises_the_rate_by_sqrt_of_size(margin):
    """Drift v2 size premium, float form (docs/SOURCES.md §4.4, §4.6): r0 = 0.1,
    imf = 0.001, 1,000 base units → max(0.1, 0.08 + 0.001·√1000) = 0.111623."""
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("X", "perp", "USDT", "X", 1.0, [(INF, 0.1, 0.1)], imf_factor=0.001)],
    )
    r = margin(pos=[(1, "X", 1_000.0, 1.0)], universe=u)
    rate = 0.08 + 0.001 * math.sqrt(1_000)
    assert rate == pytest.approx(0.11162, abs=1e-5)
    assert r["im"] == approx(1_000 * rate)
    assert r["mm"] == approx(1_000 * rate)
    small_pos = margin(pos=[(1, "X", 10.0, 1.0)], universe=u)  # 0.08 + 0.00316 < 0.1
    assert small_pos["mm"] == approx(10 * 0.1)


def test_asset_imf_discounts_large_deposits_and_penalises_large_borrows(margin):
    """Drift v2 size discount / premium (docs/SOURCES.md §4.6): imf 0.0005, 1,000,000
    units, w0 = 0.8 → 1.1 / 1.5 = 0.7333; liability w0 = 1.2 → 0.96 + 0.5 = 1.46."""
    u = cm.Universe(
        [
            cm.Asset("X", 1.0, weight_initial=0.8, weight_maint=0.8,
                     liability_weight_initial=1.2, liability_weight_maint=1.2, imf_factor=0.0005),
        ]
    )  # fmt: skip
    deposit = margin([(1, "X", 1_000_000.0)], universe=u)
    assert deposit["adj_equity_initial"] == approx(1_000_000 * 1.1 / 1.5)
    borrow = margin([(1, "X", -1_000_000.0)], universe=u)
    assert borrow["adj_equity_maint"] == approx(-1_000_000 * 1.46)
    modest = margin([(1, "X", 1_000.0)], universe=u)
    assert modest["adj_equity_initial"] == approx(800.0)


# ---- prices= overrides --------------------------------------------------------------------------
def test_underlying_override_moves_its_markets_and_the_same_symbol_asset(margin):
    r = margin([(1, "BTC", 1.0)], [(1, "BTCUSDT", 1.0, 50_000.0)], prices={"BTC": 40_000.0})
    assert r["equity"] == approx(40_000 - 10_000)
    assert r["upnl"] == approx(-10_000.0)
    # The inverse market on BTC moves too: mark 40,000, settle price 40,000.
    r = margin(pos=[(1, "BTCUSD", 100.0, 50_000.0)], prices={"BTC": 40_000.0})
    assert r["upnl"] == approx(10_000 * (1 / 50_000 - 1 / 40_000) * 40_000)


def test_underlying_override_keeps_the_basis_between_markets(margin):
    u = cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", 50_000.0)],
        [
            cm.Market("PERP", "perp", "USDT", "BTC", 50_000.0, [(INF, 0.1, 0.05)]),
            cm.Market("FUT", "future", "USDT", "BTC", 51_000.0, [(INF, 0.1, 0.05)]),
        ],
    )
    r = margin(pos=[(1, "FUT", 1.0, 51_000.0)], prices={"BTC": 25_000.0}, universe=u)
    assert r["upnl"] == approx(25_500 - 51_000)


def test_underlying_override_of_an_index_without_an_asset(margin):
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("SPX", "perp", "USDT", "SPX-IDX", 5_000.0, [(INF, 0.1, 0.05)])],
    )
    r = margin(pos=[(1, "SPX", 1.0, 5_000.0)], prices={"SPX-IDX": 4_000.0}, universe=u)
    assert r["upnl"] == approx(-1_000.0)


def test_underlying_override_is_relative_to_the_configured_underlying_price(margin):
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("P", "perp", "USDT", "IDX", 102.0, [(INF, 0.1, 0.05)])],
        underlying_prices={"IDX": 100.0},
    )
    r = margin(pos=[(1, "P", 1.0, 102.0)], prices={"IDX": 50.0}, universe=u)
    assert r["upnl"] == approx(51.0 - 102.0)


def test_explicit_market_price_wins_over_its_underlying(margin):
    r = margin(
        [(1, "BTC", 1.0)],
        [(1, "BTCUSDT", 1.0, 50_000.0)],
        prices={"BTC": 40_000.0, "BTCUSDT": 45_000.0},
    )
    assert r["upnl"] == approx(-5_000.0)
    assert r["equity"] == approx(40_000 - 5_000)


def test_asset_override_changes_only_that_asset(margin):
    r = margin([(1, "USDC", 1_000.0)], [(1, "BTCUSDT", 1.0, 50_000.0)], prices={"USDC": 0.5})
    assert r["equity"] == approx(500.0)
    assert r["mm"] == approx(500.0)  # BTCUSDT untouched


def test_overrides_apply_to_one_call_only(small):
    eng = cm.Engine(small)
    b = book([(1, "BTC", 1.0)])
    assert eng.evaluate(b, prices={"BTC": 1.0}).equity[0] == 1.0
    assert eng.evaluate(b).equity[0] == 50_000.0
    assert small.assets[2].price == 50_000.0


@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ({"DOGE": 1.0}, "DOGE"),
        ({"BTC": math.nan}, "BTC"),
        ({"BTCUSDT": math.inf}, "BTCUSDT"),
        ({"USDC": 0.0}, "USDC"),
        ({"ETH": -1.0}, "ETH"),
        ({"ETH": "cheap"}, "ETH"),
    ],
)
def test_bad_price_overrides_are_price_errors_naming_the_key(small, prices, field):
    b = book([(1, "BTC", 1.0)])
    for evaluate in (
        cm.Engine(small).evaluate,
        lambda b, prices: reference.evaluate(small, b, prices),
    ):
        with pytest.raises(cm.PriceError) as info:
            evaluate(b, prices=prices)
        assert info.value.field == field
        assert isinstance(info.value, cm.CrossmarginError)


@pytest.mark.parametrize(
    "prices",
    [
        ([1.0, 1.0, 50_000.0], [50_000.0, 2_000.0, 50_000.0]),  # an asset price missing
        ([1.0, 1.0, 50_000.0, 2_000.0], [50_000.0, 2_000.0]),  # a mark missing
        ([1.0, 1.0, math.nan, 2_000.0], [50_000.0, 2_000.0, 50_000.0]),
        ([1.0, 1.0, 50_000.0, 2_000.0], [50_000.0, 0.0, 50_000.0]),
        ([1.0, 1.0, 50_000.0, 2_000.0],),
        "BTC=1",
    ],
)
def test_bad_price_arrays_are_price_errors(small, prices):
    if isinstance(prices, list):
        prices = tuple(prices)
    with pytest.raises(cm.PriceError):
        cm.Engine(small).evaluate(book([(1, "BTC", 1.0)]), prices=prices)


def test_underlying_override_when_the_same_symbol_asset_is_priced_zero_is_a_price_error():
    """LUNA's reference price is its asset's, 0: no factor new / reference exists, so an
    override of the underlying is a PriceError naming it (not a crash, not a silent 0 or
    inf); pricing the market directly works."""
    u = cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("LUNA", 0.0)],
        [cm.Market("LUNAUSDT", "perp", "USDT", "LUNA", 0.5, [(INF, 0.1, 0.05)])],
    )
    b = book([(1, "USDT", 1.0), (1, "LUNA", 10.0)], [(1, "LUNAUSDT", 2.0, 0.25)])
    for evaluate in (
        cm.Engine(u).evaluate,
        lambda b, prices: reference.evaluate(u, b, prices),
    ):
        with pytest.raises(cm.PriceError, match="reference price is 0") as info:
            evaluate(b, prices={"LUNA": 1.0})
        assert info.value.field == "LUNA"
        r = one(evaluate(b, prices={"LUNAUSDT": 1.0}))
        assert r["equity"] == 1.0 + 10.0 * 0.0 + 2.0 * (1.0 - 0.25)


def test_unknown_model_is_a_config_error(small):
    with pytest.raises(cm.ConfigError, match="model"):
        cm.Engine(small).evaluate(book([(1, "USDT", 1.0)]), model="magic")


def test_summary_totals_the_book(small):
    b = book(
        [(1, "USDT", 499.0), (2, "USDT", 10_000.0), (3, "USDT", -10.0)],
        [(1, "BTCUSDT", 1.0, 50_000.0), (3, "BTCUSDT", 1.0, 50_000.0)],
    )
    s = cm.Engine(small).evaluate(b).summary()
    assert s["accounts"] == 3
    assert s["liquidatable"] == 2
    assert s["bankrupt"] == 1
    assert s["mm"] == approx(1_000.0)
    assert s["maint_shortfall"] == approx(1 + 510)
    assert s["accounts_exhausted"] == 1
    assert s["max_margin_ratio"] == approx(500 / 499)
    assert np.isfinite(s["free_collateral"])
