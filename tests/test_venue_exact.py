"""Venue rules that make the presets exact (docs/MODEL.md "Requirement shapes", "Valuation
basis", "Liquidation-fee reserve", "Bankruptcy price", "Two-sided valuation"): each
published worked example reproduced to the venue's rounding, each test citing its page; the
rules that cannot apply are typed errors naming their field; the engine agrees with the
pure-Python reference on random universes that use every rule.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference, venues
from crossmargin.reference.liqprice import reference_liquidation_prices
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INF = math.inf


def book(bal: Any = (), pos: Any = ()) -> cm.Book:
    """(account, asset, qty) balances and (account, market, qty, entry[, isolated]) positions."""
    return cm.Book.from_arrays(
        balances={
            "account": [b[0] for b in bal],
            "asset": [b[1] for b in bal],
            "qty": [b[2] for b in bal],
        }
        if bal
        else None,
        positions={
            "account": [p[0] for p in pos],
            "market": [p[1] for p in pos],
            "qty": [p[2] for p in pos],
            "entry_price": [p[3] for p in pos],
            "isolated_margin": [p[4] if len(p) > 4 else 0.0 for p in pos],
        }
        if pos
        else None,
    )


def prices_of(u: cm.Universe, b: cm.Book, move: str = "mark") -> cm.Table:
    """Liquidation and bankruptcy prices from the engine, checked against the reference."""
    got = cm.Engine(u, threads=1).liquidation_prices(b, move=move)  # type: ignore[arg-type]
    ref = reference_liquidation_prices(u, b, move=move)  # type: ignore[arg-type]
    for col in ("liq_price", "bankruptcy_price"):
        np.testing.assert_allclose(got[col], ref[col], rtol=1e-7, equal_nan=True, err_msg=col)
    return got


def evaluate(u: cm.Universe, b: cm.Book, **kw: Any) -> dict[str, float]:
    """The first account's numbers from the engine, checked against the reference."""
    got = cm.Engine(u, threads=1).evaluate(b, **kw).to_pandas().iloc[0].to_dict()
    ref = reference.evaluate(u, b, **kw).to_pandas().iloc[0].to_dict()
    for k in ("equity", "adj_equity_initial", "adj_equity_maint", "im", "mm", "free_collateral"):
        assert got[k] == pytest.approx(ref[k], rel=1e-12, abs=1e-12), k
    assert got["liquidatable"] == ref["liquidatable"]
    return got


def tick_away(price: float, tick: float, long: bool) -> float:
    """A liquidation price on the venue's price grid, on the safe side of the exact one: up for
    a long (liquidated when the mark falls to it), down for a short."""
    steps = price / tick
    return (math.ceil(steps) if long else math.floor(steps)) * tick


# ---- Bybit ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qty", "entry", "leverage", "published"),
    [
        (1.0, 10_000.0, 50.0, 9_850.0),
        (-1.0, 8_000.0, 40.0, 8_160.0),
        (1.0, 20_000.0, 50.0, 19_700.0),
    ],
)
def test_bybit_usdt_isolated_liquidation_prices_are_the_published_ones(
    qty: float, entry: float, leverage: float, published: float
) -> None:
    """Bybit USDT perpetual, isolated: "Liquidation Price = Entry Price × (1 − Initial Margin
    Rate + Maintenance Margin Rate)" (short: 1 + IMR − MMR), MMR 0.5 %: long 1 BTC at 10,000,
    50x → 9,850; short 1 BTC at 8,000, 40x → "8,000 USDT × (1 + 2.5% − 0.5%) = 8160 USDT";
    long 1 BTC at 20,000, 50x → 19,700 (the same formula; issue #16 lists it with the two).
    https://help.bybit.com/hc/en-us/articles/900000181046-Liquidation-Price-USDT-Contract-
    The preset values maintenance at the entry price (``maint_basis="entry"``), so the
    numbers come out exactly, where a mark-based maintenance gives 9,849.25 / 8,159.20 /
    19,698.49."""
    u = venues.bybit_unified(prices={"BTC": entry}, symbols=["BTCUSDT"])
    assert u.markets[0].maint_basis == "entry"
    b = book(pos=[(1, "BTCUSDT", qty, entry, entry / leverage)])
    got = prices_of(u, b)
    assert got.liq_price[0] == pytest.approx(published, rel=1e-12)
    # Bankruptcy: the isolated margin exhausted, "Bankruptcy price = opening price × (1 −
    # initial margin rate)" (long; short 1 + IMR): "10,000 × (1 − 2%) = 9,800 USDT" (Bybit
    # FAQ "What is Bybit's bankruptcy price", https://mobie.io/faq/what-is-bybits-bankruptcy-price-how-can-i-calculate-it).
    side = 1.0 if qty > 0 else -1.0
    assert got.bankruptcy_price[0] == pytest.approx(entry * (1 - side / leverage), rel=1e-12)
    # Exactly at the published price the position is at maintenance, not below it.
    at = evaluate(u, b, prices={"BTC": published})
    assert not at["liquidatable"]
    beyond = evaluate(u, b, prices={"BTC": published * (1 - side * 1e-9)})
    assert beyond["liquidatable"]


def test_bybit_usdt_reserves_no_fee_to_close_in_its_liquidation_test() -> None:
    """Bybit's USDT (linear) pages state the liquidation test without a fee to close —
    "Liquidation Price = Entry Price × (1 − Initial Margin Rate + Maintenance Margin Rate) −
    Extra Margin Added / Contract Size"
    (https://help.bybit.com/hc/en-us/articles/900000181046-Liquidation-Price-USDT-Contract-),
    maintenance "1 × 10,000 × 0.5% = 50 USDT"
    (https://help.bybit.com/hc/en-us/articles/900000182646-Maintenance-Margin-USDT-Contract-) —
    where the inverse page reserves "Quantity × 0.00075 / Bankruptcy Price". So the preset's
    BTCUSDT has no ``liquidation_fee``, and the published 9,850 comes out only without one: a
    reserve of the inverse taker fee at the bankruptcy price (about 9,800 × 0.075 % = 7.35)
    would move it to 9,857.36."""
    u = venues.bybit_unified(prices={"BTC": 10_000.0}, symbols=["BTCUSDT"])
    assert u.markets[0].liquidation_fee == 0.0
    b = book(pos=[(1, "BTCUSDT", 1.0, 10_000.0, 200.0)])
    assert prices_of(u, b).liq_price[0] == pytest.approx(9_850.0, rel=1e-12)
    fee = cm.Universe(
        assets=list(u.assets), markets=[replace(u.markets[0], liquidation_fee=0.00075)]
    )
    assert prices_of(fee, b).liq_price[0] == pytest.approx(9_857.36, abs=0.005)


def test_bybit_inverse_cross_liquidation_and_bankruptcy_prices() -> None:
    """Bybit inverse, cross: balance 0.5 BTC, long 10,000 contracts (1 USD) at 8,000, MM 0.5 %,
    the taker fee 0.075 % to close reserved at the bankruptcy price:
    Bankruptcy Price = 1.00075 × 10000 / (10000/8000 + 0.5) = 5718.57; 10000 × (1/8000 −
    1/LP) = −(0.5 − 10000/8000 × 0.5% − 10000 × 0.00075 / 5718.57) → Liquidation Price =
    5739.50.
    https://help.bybit.com/hc/en-us/articles/360039261334-How-to-calculate-Liquidation-Price-Inverse-Contract-
    The equation's root is 5,739.08; BTCUSD trades on a 0.5 USD tick (Bybit's
    ``/v2/public/symbols`` for BTCUSD: ``"tick_size": "0.5"``, ``"taker_fee": "0.00075"``),
    and 5,739.08 on the tick at the long's safe side is the published 5,739.50."""
    # The preset's BTCUSD market; the example's inverse account counts its coin in full (the
    # unified account's collateral value ratio on BTC is not part of it).
    preset = venues.bybit_unified(prices={"BTC": 8_000.0}, symbols=["BTCUSD"])
    u = cm.Universe([cm.Asset("BTC", 8_000.0)], preset.markets)
    m = u.markets[0]
    assert (m.liquidation_fee, m.maint_basis, m.inverse) == (0.00075, "entry", True)
    b = book(bal=[(1, "BTC", 0.5)], pos=[(1, "BTCUSD", 10_000.0, 8_000.0)])
    for move in ("mark", "underlying"):
        got = prices_of(u, b, move)
        bankruptcy = 1.00075 * 10_000 / (10_000 / 8_000 + 0.5)
        assert got.bankruptcy_price[0] == pytest.approx(bankruptcy, rel=1e-9)
        assert round(got.bankruptcy_price[0], 2) == 5_718.57
        exact = 10_000 / (10_000 / 8_000 + 0.5 - 10_000 / 8_000 * 0.005 - 7.5 / bankruptcy)
        assert got.liq_price[0] == pytest.approx(exact, rel=1e-9)
        assert tick_away(got.liq_price[0], 0.5, long=True) == 5_739.5
    # The reserve is part of the maintenance requirement at any mark (it is fixed at the
    # bankruptcy price): Qty/Entry × MM + Qty × 0.00075 / Bankruptcy Price, in BTC.
    for mark in (8_000.0, 6_000.0):
        r = evaluate(u, b, prices={"BTC": mark})
        assert r["mm"] / mark == pytest.approx(10_000 / 8_000 * 0.005 + 7.5 / bankruptcy, rel=1e-12)


def test_bybit_maintenance_at_entry_does_not_move_with_the_mark() -> None:
    """Bybit "Maintenance Margin (USDT Contract)": long 1 BTC at 10,000 USDT, 50x → MM = 1 ×
    10,000 × 0.5% = 50 USDT; IM = 200 USDT.
    https://help.bybit.com/hc/en-us/articles/900000182646-Maintenance-Margin-USDT-Contract-"""
    u = venues.bybit_unified(prices={"BTC": 10_000.0}, symbols=["BTCUSDT"])
    b = book(bal=[(1, "USDT", 1_000.0)], pos=[(1, "BTCUSDT", 1.0, 10_000.0)])
    for mark in (10_000.0, 9_000.0, 12_000.0):
        assert evaluate(u, b, prices={"BTC": mark})["mm"] == pytest.approx(50.0, rel=1e-12)


# ---- Binance -----------------------------------------------------------------------------
BINANCE_MULTI_ASSETS = (
    "https://www.binance.com/en/support/faq/"
    "how-to-calculate-margin-in-multi-assets-mode-c983a9268cfa4e70a4916c276bb3b7bc"
)


def binance_multi_assets_universe() -> cm.Universe:
    """The example's two markets and two margin assets: USDTUSD index 0.99, bid buffer 0.01,
    ask buffer 0.005 → bid rate 0.9801, ask rate 0.99495; USDCUSD 1 / 1; BTCUSDT 100x, MMR
    0.8 %; ETHUSDC 50x, MMR 1 % (the Binance page above)."""
    return cm.Universe(
        [
            cm.Asset("USDT", 0.99, bid=0.99 * (1 - 0.01), ask=0.99 * (1 + 0.005)),
            cm.Asset("USDC", 1.0),
        ],
        [
            cm.Market(
                "BTCUSDT", "perp", "USDT", "BTC", 20_000.0, [(INF, 0.01, 0.008)], im_shape="step"
            ),
            cm.Market(
                "ETHUSDC", "perp", "USDC", "ETH", 600.0, [(INF, 0.02, 0.01)], im_shape="step"
            ),
        ],
    )


def test_binance_multi_assets_available_for_order_published_example() -> None:
    """Binance "How to Calculate Margin in Multi-Assets Mode": 200 USDT and 220 USDC.
    No positions: "Account Equity = Σmin(assetEquity×bidRate, assetEquity×askRate) = 200 ×
    0.9801 + 220 × 1 = 416.02", "USDT Available for Order = 416.02 / 0.99495 = 418.13".
    Long 0.5 BTCUSDT at 20,000 and 20 ETHUSDC at 600: "uniAvailableForOrder = 416.02 − (0.5 ×
    20,000 × 0.01 × 0.99495 + 20 × 600 × 0.02 × 1) = 76.525", "USDT Available for Order =
    76.525 / 0.99495 = 76.91", "Margin Ratio = 199.596 / 416.02 = 47.98%"."""
    u = binance_multi_assets_universe()
    bal = [(1, "USDT", 200.0), (1, "USDC", 220.0)]
    flat = evaluate(u, book(bal=bal))
    assert flat["adj_equity_maint"] == pytest.approx(416.02, abs=1e-9)
    assert round(evaluate(u, book(bal=bal), unit="USDT")["free_collateral"], 2) == 418.13
    b = book(bal=bal, pos=[(1, "BTCUSDT", 0.5, 20_000.0), (1, "ETHUSDC", 20.0, 600.0)])
    r = evaluate(u, b)
    assert r["free_collateral"] == pytest.approx(76.525, abs=1e-9)
    assert r["mm"] == pytest.approx(199.596, abs=1e-9)
    assert round(r["margin_ratio"] * 100, 2) == 47.98
    assert round(evaluate(u, b, unit="USDT")["free_collateral"], 2) == 76.91
    assert evaluate(u, b, unit="USDC")["free_collateral"] == pytest.approx(76.525, abs=1e-9)
    # One price per asset (the index) cannot express it: 0.99 × 200 + 220 − (99 + 240).
    one_price = cm.Universe([cm.Asset("USDT", 0.99), cm.Asset("USDC", 1.0)], u.markets)
    assert evaluate(one_price, b)["free_collateral"] == pytest.approx(79.0, abs=1e-9)


def test_two_sided_valuation_takes_the_ask_for_a_net_debt() -> None:
    """Σ min(assetEquity × bidRate, assetEquity × askRate) (the page above): a USDT loss larger
    than the USDT balance is a debt valued at the ask; a price override moves bid and ask."""
    u = binance_multi_assets_universe()
    b = book(bal=[(1, "USDT", 100.0), (1, "USDC", 1_000.0)], pos=[(1, "BTCUSDT", 0.5, 21_000.0)])
    r = evaluate(u, b)  # USDT equity 100 − 500 = −400 → × 0.99495
    assert r["adj_equity_maint"] == pytest.approx(1_000.0 - 400.0 * 0.99495, abs=1e-9)
    moved = evaluate(u, b, prices={"USDT": 1.0})
    assert moved["adj_equity_maint"] == pytest.approx(1_000.0 - 400.0 * 0.99495 / 0.99, abs=1e-9)


def test_binance_initial_margin_is_a_step() -> None:
    """Binance USDⓈ-M: "Initial Margin = Notional Position Value / Leverage" at the leverage of
    the bracket the position is in; maintenance keeps the maintenance amount (Binance,
    "Leverage and Margin of USDⓈ-M Futures",
    https://www.binance.com/en/support/faq/leverage-and-margin-of-usd%E2%93%A2-m-futures-360033162192).
    BTCUSDT 500,000 USDT is in bracket 2 (≤ 800,000, 100x, MMR 0.5 %, amount 300): IM =
    5,000, MM = 500,000 × 0.5 % − 300 = 2,200."""
    u = venues.binance_usdm(prices={"BTC": 50_000.0}, symbols=["BTCUSDT"])
    r = evaluate(u, book(bal=[(1, "USDT", 1e6)], pos=[(1, "BTCUSDT", 10.0, 50_000.0)]))
    assert r["im"] == pytest.approx(5_000.0, rel=1e-12)
    assert r["mm"] == pytest.approx(2_200.0, rel=1e-12)


# ---- OKX, Hyperliquid --------------------------------------------------------------------
def test_okx_both_requirements_are_the_tier_rate_on_the_whole_position() -> None:
    """OKX "Tiered Maintenance Margin Ratio": the contracts of a position are counted together
    for the tier and its maintenance margin ratio, applied to the position value
    (https://tr.okx.com/help/tier); ETH-USDT-SWAP tier 2 = 3,001–6,000 contracts, MMR 0.5 %,
    min IMR 1 % (the preset's announcement). 5,000 contracts × 0.1 ETH at 2,000 = 1,000,000
    USDT → MM 5,000, IM 10,000."""
    u = venues.okx_multi_currency(prices={"ETH": 2_000.0}, symbols=["ETH-USDT-SWAP"])
    r = evaluate(u, book(bal=[(1, "USDT", 1e6)], pos=[(1, "ETH-USDT-SWAP", 5_000.0, 2_000.0)]))
    assert (r["mm"], r["im"]) == pytest.approx((5_000.0, 10_000.0), rel=1e-12)


def test_hyperliquid_initial_margin_is_a_step_maintenance_keeps_its_deduction() -> None:
    """Hyperliquid "Margin tiers": BTC 40x to 150M, 20x above; maintenance = notional × mmr −
    deduction (200M → 200M × 2.5 % − 1,875,000 = 3,125,000); initial margin = position value /
    leverage (Hyperliquid "Margining": "initial_margin = position_size * mark_price /
    leverage") at the tier's 20x → 10,000,000.
    https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers"""
    u = venues.hyperliquid(prices={"BTC": 100_000.0}, symbols=["BTC"])
    r = evaluate(u, book(bal=[(1, "USDC", 1e8)], pos=[(1, "BTC", 2_000.0, 100_000.0)]))
    assert r["mm"] == pytest.approx(3_125_000.0, rel=1e-12)
    assert r["im"] == pytest.approx(10_000_000.0, rel=1e-12)


# ---- Deribit -----------------------------------------------------------------------------
@pytest.mark.parametrize(("size_btc", "im_btc"), [(25.0, 0.53125), (350.0, 13.125)])
def test_deribit_size_scaled_rate_is_exact(size_btc: float, im_btc: float) -> None:
    """Deribit futures: "Initial margin: starting with 2.0%, linearly increasing 0.5% per 100BTC
    increase in position size"; 25 BTC → "2% + 25/100 × 0.5% = 2.125% (= 0.53125 BTC)", 350
    BTC → 3.75 % (= 13.125 BTC); maintenance 1.5 % + 0.5 % per 100 BTC.
    https://test.deribit.com/pages/docs/futures"""
    s = 50_000.0
    u = venues.deribit(prices={"BTC": s}, symbols=["BTC-PERPETUAL"])
    contracts = size_btc * s / 10.0
    r = evaluate(u, book(bal=[(1, "BTC", 100.0)], pos=[(1, "BTC-PERPETUAL", contracts, s)]))
    assert r["im"] / s == pytest.approx(im_btc, rel=4e-16)
    assert r["mm"] / s == pytest.approx(size_btc * (0.015 + 0.00005 * size_btc), rel=4e-16)


def test_deribit_rate_at_size_zero_is_the_base_rate() -> None:
    """The rate is 2 % at size 0 exactly (the chord brackets it replaces gave 2.00125 % on
    their first bound), and grows by exactly 0.005 % per BTC."""
    s = 40_000.0
    u = venues.deribit(prices={"BTC": s}, symbols=["BTC-PERPETUAL"])
    assert u.brackets_with_amounts("BTC-PERPETUAL") == [(INF, 0.02, 0.015, 0.0, 0.0)]
    for size in (1e-6, 0.25, 1.0):
        r = evaluate(u, book(bal=[(1, "BTC", 1.0)], pos=[(1, "BTC-PERPETUAL", size * s / 10, s)]))
        rate = r["im"] / (size * s)
        assert rate - 0.02 == pytest.approx(0.00005 * size, rel=1e-6, abs=1e-15)


# ---- dYdX --------------------------------------------------------------------------------
def test_dydx_open_interest_from_the_book() -> None:
    """dYdX v4 ``liquidity_tier.go``: IMF = base + (OI − lower)/(upper − lower) × (1 − base);
    Small-Cap (10 %, caps 20M / 50M) at 35M of open interest → 0.55
    (https://github.com/dydxprotocol/v4-chain/blob/main/protocol/x/perpetuals/types/liquidity_tier.go).
    ``open_interest="book"`` takes the OI from the book's own longs at the preset's price."""
    price = 150.0
    longs = 35e6 / price
    b = book(
        bal=[(1, "USDC", 1e7), (2, "USDC", 1e7), (3, "USDC", 1e7)],
        pos=[
            (1, "SOL-USD", longs * 0.4, price),
            (2, "SOL-USD", longs * 0.6, price),
            (3, "SOL-USD", -longs, price),
            (3, "BTC-USD", 1.0, 60_000.0),
        ],
    )
    u = venues.dydx_v4(open_interest="book", book=b)
    sol = u.markets[u.market_index["SOL-USD"]]
    assert sol.brackets[0][1] == pytest.approx(0.55, rel=1e-12)
    btc = u.markets[u.market_index["BTC-USD"]]
    assert btc.brackets[0][1] == 0.05  # Large-Cap: caps 0 / 0, no scaling
    assert venues.book_open_interest(b, {"SOL-USD": price}) == pytest.approx({"SOL-USD": 35e6})
    assert u == venues.dydx_v4(open_interest={"SOL-USD": 35e6, "BTC-USD": 60_000.0})
    with pytest.raises(cm.ConfigTypeError, match="book=Book"):
        venues.dydx_v4(open_interest="book")
    with pytest.raises(cm.ConfigError, match="open_interest"):
        venues.dydx_v4(open_interest="chain")
    with pytest.raises(cm.ConfigError) as e:
        venues.dydx_v4(open_interest={"SOL-USD": 1.0}, book=b)
    assert e.value.field == "book"


# ---- rules that cannot apply -------------------------------------------------------------
def perp(**kw: Any) -> cm.Market:
    return cm.Market(
        "X", "perp", "USDT", "BTC", 50_000.0, kw.pop("brackets", [(INF, 0.1, 0.05)]), **kw
    )


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (
            lambda: [perp(), cm.Market("C", "option", "USDT", "BTC", None, option_type="call",
                                       strike=50_000.0, expiry=0.1, iv=0.5, im_shape="step")],
            "markets[C].im_shape",
        ),
        (lambda: [perp(mm_shape="stairs")], "markets[X].mm_shape"),
        (lambda: [perp(maint_basis="index")], "markets[X].maint_basis"),
        (lambda: [perp(rate_slope_initial=0.01)], "markets[X].rate_slope_initial"),
        (
            lambda: [perp(brackets=[(1e6, 0.1, 0.05), (INF, 0.2, 0.1)], mm_shape="size_scaled")],
            "markets[X].mm_shape",
        ),
        (lambda: [perp(liquidation_fee=-0.001)], "markets[X].liquidation_fee"),
    ],
)  # fmt: skip
def test_a_rule_that_cannot_apply_names_its_field(make: Any, field: str) -> None:
    with pytest.raises(cm.ConfigError) as e:
        cm.Universe([cm.Asset("USDT", 1.0)], make())
    assert e.value.field == field


def test_bid_above_ask_names_the_field() -> None:
    with pytest.raises(cm.ConfigError) as e:
        cm.Universe([cm.Asset("USDT", 1.0, bid=1.01, ask=0.99)])
    assert e.value.field == "assets[USDT].bid"
    with pytest.raises(cm.ConfigTypeError) as t:
        cm.Universe([cm.Asset("USDT", 1.0, bid="0.99")])  # type: ignore[arg-type]
    assert t.value.field == "assets[USDT].bid"
    with pytest.raises(cm.ConfigTypeError) as t:
        perp(im_shape=1)
    assert t.value.field == "markets[X].im_shape"
    u = cm.Universe([cm.Asset("USDT", 1.0)])
    with pytest.raises(cm.ConfigError) as e:
        cm.Engine(u).evaluate(book(bal=[(1, "USDT", 1.0)]), unit="EUR")
    assert e.value.field == "unit"


def test_rules_round_trip_through_toml() -> None:
    from crossmargin.venues import to_toml

    for name in ("bybit_unified", "deribit", "okx_multi_currency"):
        u = venues.PRESETS[name]()
        again = cm.Universe.from_dict(__import__("tomllib").loads(to_toml(u)))
        assert again == u, name


# ---- the engine and the reference agree on every rule ----------------------------------
@st.composite
def venue_cases(draw: Any) -> tuple[cm.Universe, cm.Book]:
    spread = draw(st.sampled_from([0.0, 0.002, 0.02]))
    usdt = (
        cm.Asset("USDT", 1.0, bid=1.0 - spread, ask=1.0 + spread / 2)
        if spread
        else cm.Asset("USDT", 1.0)
    )
    btc = cm.Asset("BTC", 50_000.0, weight_initial=0.9, weight_maint=0.95)
    markets = []
    for symbol, settle, inverse, cs in (("L", "USDT", False, 0.01), ("I", "BTC", True, 100.0)):
        shapes = draw(st.tuples(*[st.sampled_from(["continuous", "step", "size_scaled"])] * 2))
        scaled = "size_scaled" in shapes
        brackets = (
            [(INF, 0.02, 0.01)]
            if scaled
            else [(200_000.0 if not inverse else 4.0, 0.02, 0.01), (INF, 0.05, 0.025)]
        )
        markets.append(
            cm.Market(
                symbol,
                "perp",
                settle,
                "BTC",
                50_000.0,
                brackets,
                contract_size=cs,
                inverse=inverse,
                im_shape=shapes[0],
                mm_shape=shapes[1],
                rate_slope_initial=1e-5 if shapes[0] == "size_scaled" else 0.0,
                rate_slope_maint=1e-5 if shapes[1] == "size_scaled" else 0.0,
                maint_basis=draw(st.sampled_from(["mark", "entry"])),
                liquidation_fee=draw(st.sampled_from([0.0, 0.00075, 0.01])),
                upnl_weight_initial=0.9,
                upnl_weight_maint=0.95,
            )
        )
    u = cm.Universe([usdt, btc], markets)
    bal, pos = [], []
    for a in range(1, draw(st.integers(1, 3)) + 1):
        bal.append((a, "USDT", draw(st.floats(-5_000.0, 20_000.0))))
        if draw(st.booleans()):
            bal.append((a, "BTC", draw(st.floats(-0.2, 1.0))))
        for symbol, scale in (("L", 100.0), ("I", 500.0)):
            if draw(st.booleans()):
                qty = draw(st.floats(-1.0, 1.0)) * scale
                entry = draw(st.floats(30_000.0, 70_000.0))
                iso = draw(st.sampled_from([0.0, 0.0, 2_000.0 if symbol == "L" else 0.05]))
                pos.append((a, symbol, qty, entry, iso))
    return u, book(bal, pos)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue_cases(), st.sampled_from([None, {"BTC": 41_000.0}]))
def test_engine_agrees_with_the_reference_on_every_venue_rule(
    case: tuple[cm.Universe, cm.Book], prices: Any
) -> None:
    u, b = case
    got = cm.Engine(u, threads=2).evaluate(b, prices=prices)
    ref = reference.evaluate(u, b, prices=prices)
    for k in ("equity", "adj_equity_initial", "adj_equity_maint", "im", "mm", "free_collateral"):
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-7, err_msg=k)
    assert (got.liquidatable == ref.liquidatable).all()
    in_usdt = cm.Engine(u).evaluate(b, prices=prices, unit="USDT")
    np.testing.assert_allclose(
        in_usdt.free_collateral,
        reference.evaluate(u, b, prices=prices, unit="USDT").free_collateral,
        rtol=1e-9,
        atol=1e-7,
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue_cases(), st.sampled_from(["mark", "underlying"]))
def test_liquidation_and_bankruptcy_prices_agree_with_the_reference(
    case: tuple[cm.Universe, cm.Book], move: str
) -> None:
    u, b = case
    got = cm.Engine(u, threads=1).liquidation_prices(b, move=move)  # type: ignore[arg-type]
    ref = reference_liquidation_prices(u, b, move=move)  # type: ignore[arg-type]
    for col in ("liq_price", "bankruptcy_price"):
        # Both find the nearest crossing; the reference on a 1 % grid, so a second crossing
        # within 1 % may be missed by either (docs/MODEL.md "Search").
        a, r = np.asarray(got[col]), np.asarray(ref[col])
        assert (np.isnan(a) == np.isnan(r)).all(), col
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], r[ok], rtol=1e-6, err_msg=col)


def test_an_explanation_shows_the_fee_reserve() -> None:
    """docs/MODEL.md "Explanations" and "Liquidation-fee reserve": the cross pool's reserve is in
    ``mm`` and named; an isolated position's reserve is in its own ``mm`` line and test."""
    preset = venues.bybit_unified(prices={"BTC": 8_000.0}, symbols=["BTCUSD"])
    u = cm.Universe([cm.Asset("BTC", 8_000.0)], preset.markets)
    eng = cm.Engine(u)
    cross = book(bal=[(1, "BTC", 0.5)], pos=[(1, "BTCUSD", 10_000.0, 8_000.0)])
    x = eng.explain(cross, account=1)
    r = eng.evaluate(cross)
    assert x.margin["mm"] == r.mm[0]
    assert x.margin["fee_reserve"] == pytest.approx(7.5 / (1.00075 * 10_000 / 1.75) * 8_000.0)
    # Isolated, margin 0.5 BTC: the same reserve (its pool is the margin), in its own line.
    iso = book(bal=[(1, "BTC", 0.0)], pos=[(1, "BTCUSD", 10_000.0, 8_000.0, 0.5)])
    x = eng.explain(iso, account=1)
    line_mm = float(x.positions["mm"][0])
    reserve_btc = 7.5 / (1.00075 * 10_000 / 1.75)
    assert line_mm / 8_000.0 == pytest.approx(10_000 / 8_000 * 0.005 + reserve_btc)
    liq = prices_of(u, iso).liq_price[0]
    for mark, below in ((liq * 1.001, False), (liq * 0.999, True)):
        ex = eng.explain(iso, account=1, prices={"BTC": mark})
        assert bool(ex.positions["isolated_below_maintenance"][0]) is below
        assert bool(eng.evaluate(iso, prices={"BTC": mark}).liquidatable[0]) is below
