"""Position sides (hedge mode) and open orders (docs/MODEL.md "Book", "Open orders").

A position row carries a side — ``both`` (one-way, the default), ``long`` or ``short`` (a
hedge-mode leg) — and (account, market, side) is the key; each leg is margined on its own
notional in its own bracket. Open orders lock initial margin only: never maintenance,
liquidation, liquidation prices or cascades. The engine agrees with the pure-Python
reference on random hedged books with orders, and the venues' published worked examples
reproduce to their rounding.
"""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.exceptions import BookError, BookTypeError, ConfigError
from crossmargin.synth import generate
from crossmargin.testing import (
    assert_results_close,
    assert_results_identical,
    gross_scale,
    universe_and_book,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def _universe(imr: float = 0.05, mark: float = 20_000.0, **rule: object) -> cm.Universe:
    """USDT and one BTCUSDT perp with one bracket (imr, mmr = imr / 2) and an order rule."""
    m = cm.Market("BTCUSDT", "perp", "USDT", "BTC", mark, [(math.inf, imr, imr / 2)], **rule)  # type: ignore[arg-type]
    return cm.Universe([cm.Asset("USDT", 1.0)], [m])


def _book(positions: dict | None = None, orders: dict | None = None, cash: float = 1e6) -> cm.Book:
    return cm.Book.from_arrays(
        {"account": [1], "asset": ["USDT"], "qty": [cash]}, positions, orders
    )


def _orders(**cols: list) -> dict:
    n = len(cols["qty"])
    return {"account": [1] * n, "market": ["BTCUSDT"] * n, **cols}


# ---- the book ----------------------------------------------------------------------------
def test_old_books_load_unchanged_and_evaluate_bit_identically():
    u = cm.Universe.demo()
    b = generate(u, n_accounts=2_000, seed=7)
    with_side = cm.Book.from_arrays(
        b.balances, {**b.positions, "side": ["BOTH"] * len(b.positions["qty"])}
    )
    assert not b.has_sides and not b.has_orders
    e = cm.Engine(u)
    assert_results_identical(e.evaluate(b), e.evaluate(with_side))
    _, pos = b.columns(u)
    assert "side" not in pos  # a one-way book writes as it was read


def test_sides_accept_names_in_any_case_and_codes():
    u = _universe()
    base = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": [1.0, -1.0],
        "entry_price": [2e4] * 2,
    }
    spelled = [
        ["long", "short"],
        ["LONG", "SHORT"],
        ["Long", "sHoRt"],
        [1, 2],
        np.array([1, 2], np.uint8),
    ]
    results = [cm.Engine(u).evaluate(_book({**base, "side": s})) for s in spelled]
    for r in results[1:]:
        assert_results_identical(results[0], r)


@pytest.mark.parametrize(
    ("rows", "error", "message"),
    [
        (
            ([1.0, 2.0], ["long", "long"]),
            BookError,
            "positions row 1 (and row 0): duplicate long leg",
        ),
        (
            ([1.0, -2.0], ["both", "short"]),
            BookError,
            "positions row 1 (and row 0): account 1 holds a one-way",
        ),
        (
            ([-1.0, 0.0], ["long", "short"]),
            BookError,
            "positions row 0: qty -1 of a long leg must be ≥ 0",
        ),
        (
            ([1.0, 2.0], ["both", "both"]),
            BookError,
            "positions row 1 (and row 0): duplicate position",
        ),
        (
            ([1.0, 2.0], ["long", "sideways"]),
            BookError,
            "positions row 1: side 'sideways' is not one of",
        ),
        (([1.0, 2.0], [1, 5]), BookError, "positions row 1: side code 5 is not one of"),
        (([1.0, 2.0], ["long", 2.5]), BookTypeError, "positions row 1: side 2.5 is not one of"),
    ],
)
def test_bad_legs_are_named_by_row(rows, error, message):
    qty, side = rows
    pos = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": qty,
        "entry_price": [2e4] * 2,
        "side": side,
    }
    with pytest.raises(error) as e:
        cm.Engine(_universe()).evaluate(_book(pos))
    assert str(e.value).startswith(message), str(e.value)
    assert e.value.table == "positions"


def test_each_hedge_leg_is_margined_in_its_own_bracket():
    # Binance hedge mode: "Long-Side Margin Requirement + Short-Side Margin Requirement",
    # each leg's notional in the brackets (docs/MODEL.md "Book"): two legs of 60,000
    # notional sit in the first bracket; their net (0) would require nothing and their sum
    # (120,000) would reach the second.
    m = cm.Market(
        "BTCUSDT", "perp", "USDT", "BTC", 20_000.0, [(100_000.0, 0.02, 0.01), (math.inf, 0.1, 0.05)]
    )
    u = cm.Universe([cm.Asset("USDT", 1.0)], [m])
    pos = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": [3.0, -3.0],
        "entry_price": [2e4] * 2,
        "side": ["long", "short"],
    }
    r = cm.Engine(u).evaluate(_book(pos))
    assert r["mm"][0] == 2 * 60_000.0 * 0.01
    assert r["im"][0] == 2 * 60_000.0 * 0.02
    assert r["upnl"][0] == 0.0


def test_each_leg_has_its_own_liquidation_price_and_is_liquidated_as_its_own_position():
    u = _universe(imr=0.1)
    pos = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": [2.0, -1.0],
        "entry_price": [2e4] * 2,
        "side": ["long", "short"],
        "isolated_margin": [0.0, 2_000.0],
    }
    b = _book(pos, cash=3_000.0)
    e = cm.Engine(u)
    liq = e.liquidation_prices(b)
    assert list(liq["side"]) == ["long", "short"]
    ref = reference.liquidation_prices(u, b)
    np.testing.assert_allclose(liq["liq_price"], ref["liq_price"], rtol=1e-9)
    # the isolated short leg: 2,000 + (20,000 − p) = 0.05 p → p = 22,000 / 1.05
    assert liq["liq_price"][1] == pytest.approx(22_000.0 / 1.05, rel=1e-12)
    r = e.cascade(b, cm.CascadeConfig(shock={"BTC": -0.2}))
    final = r.final_book.positions
    assert set(np.asarray(final["side"]).tolist()) <= {1, 2}


def test_cascade_events_name_the_leg_they_close():
    # Two accounts, each long and short BTCUSDT in hedge mode; a 30 % fall liquidates the
    # long legs (and the account-level bankruptcy, if any, has no side).
    u = _universe(imr=0.1)
    pos = {
        "account": [1, 1, 2, 2],
        "market": ["BTCUSDT"] * 4,
        "qty": [3.0, -1.0, 2.0, -0.5],
        "entry_price": [2e4] * 4,
        "side": ["long", "short", "long", "short"],
        "isolated_margin": [0.0, 0.0, 3_000.0, 0.0],
    }
    bal = {"account": [1, 2], "asset": ["USDT"] * 2, "qty": [8_000.0, 1_000.0]}
    b = cm.Book.from_arrays(bal, pos)
    cfg = cm.CascadeConfig(shock={"BTC": -0.3}, insurance_fund=1e5)
    r = cm.Engine(u).cascade(b, cfg)
    want = reference.cascade(u, b, cfg)
    ev = r.events
    assert len(ev) > 0
    assert set(ev["side"][ev["market"] != ""].tolist()) <= {"long", "short"}
    assert set(ev["side"][ev["market"] == ""].tolist()) <= {""}
    closes = ev["qty"] != 0.0
    # a long leg is closed by selling
    assert ((ev["side"][closes] == "long") == (ev["qty"][closes] < 0)).all()
    np.testing.assert_array_equal(ev["side"], want.events["side"])
    np.testing.assert_array_equal(ev["account"], want.events["account"])


# ---- open orders -------------------------------------------------------------------------
def test_binance_margin_requirement_of_a_position_and_its_open_orders():
    # Binance FAQ "How to Calculate the Margin Requirement on Binance Futures Trading"
    # (binance.com/en/support/faq/4f83b65d83654b5e933f85ef12bf769d): long 0.5 BTCUSDT at
    # mark 20,000, open long limit 0.1 @ 19,000 and short limit 0.1 @ 22,000, 2x leverage:
    # max(abs(10,000 + 1,900), abs(10,000 − 2,200)) / 2 = 5,950 USDT.
    u = _universe(imr=0.5)
    pos = {"account": [1], "market": ["BTCUSDT"], "qty": [0.5], "entry_price": [20_000.0]}
    o = _orders(side=["BUY", "SELL"], qty=[0.1, 0.1], price=[19_000.0, 22_000.0])
    r = cm.Engine(u).evaluate(_book(pos, o))
    assert r["im"][0] == 5_950.0
    assert r["mm"][0] == cm.Engine(u).evaluate(_book(pos))["mm"][0]


def test_binance_cost_to_open_adds_the_open_loss():
    # Binance FAQ "How to Calculate the Cost Required to Open a Position in Perpetual Futures
    # Contracts" (binance.com/en/support/faq/87fa7ee33b574f7084d42bd2ce2e463b, 2020
    # version): 1 BTC at 9,253.30, mark 9,259.84, 20x: initial margin 462.66; open loss of
    # the long 0, of the short 1 × |min(0, −1 × (9,259.84 − 9,253.30))| = 6.54.
    u = _universe(imr=0.05, mark=9_259.84, order_open_loss=True)
    e = cm.Engine(u)
    long = e.evaluate(_book(None, _orders(side=["buy"], qty=[1.0], price=[9_253.30])))["im"][0]
    short = e.evaluate(_book(None, _orders(side=["sell"], qty=[1.0], price=[9_253.30])))["im"][0]
    assert math.floor(long * 100) / 100 == 462.66
    assert round(short - long, 2) == 6.54
    assert math.floor(short * 100) / 100 == 469.20


@pytest.mark.parametrize(
    ("price", "imr", "fee", "cost"),
    [
        # Bybit "Order Cost (USDT Contract)" (help.bybit.com/hc/en-us/articles/900000169703):
        # long 1 BTC at 50,000 USDT, 10x, taker 0.06%: 5,000 + 30 + 27 = 5,057 USDT;
        (50_000.0, 0.1, 0.0006, 5_057.0),
        # the same page's earlier example: long 1 BTC at 8,000, 50x, taker 0.075%:
        # 160 + 6 + 5.88 = 171.88 USDT.
        (8_000.0, 0.02, 0.00075, 171.88),
    ],
)
def test_bybit_order_cost_is_margin_and_the_fee_to_open_and_to_close(price, imr, fee, cost):
    u = _universe(imr=imr, mark=price, order_fee_rate=fee)
    r = cm.Engine(u).evaluate(_book(None, _orders(side=["buy"], qty=[1.0], price=[price])))
    assert r["im"][0] == pytest.approx(cost, abs=1e-9)


def test_drift_worst_case_base_at_the_oracle_plus_a_cent_per_order():
    # protocol-v2 PerpPosition::worst_case_base_asset_amount: max(|base + open_bids|,
    # |base + open_asks|) at the oracle, margined at the initial ratio;
    # OPEN_ORDER_MARGIN_REQUIREMENT = QUOTE_PRECISION / 100 (0.01 USDC) per open order.
    u = _universe(imr=0.1, mark=100.0, order_value="mark", order_margin_per_order=0.01)
    pos = {"account": [1], "market": ["BTCUSDT"], "qty": [1.0], "entry_price": [100.0]}
    o = _orders(
        side=["buy", "sell", "sell"],
        qty=[2.0, 5.0, 1.0],
        price=[90.0, 110.0, 120.0],
        reduce_only=[False, False, True],
    )
    r = cm.Engine(u).evaluate(_book(pos, o))
    assert r["im"][0] == pytest.approx(4 * 100 * 0.1 + 3 * 0.01, abs=1e-12)


def test_hedged_orders_open_their_own_leg():
    # Binance hedge mode: buys are margined with the LONG leg, sells with the SHORT leg.
    u = _universe(imr=0.5)
    pos = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": [0.5, -0.2],
        "entry_price": [2e4] * 2,
        "side": ["long", "short"],
    }
    o = _orders(side=["buy", "sell"], qty=[0.1, 0.1], price=[19_000.0, 22_000.0])
    r = cm.Engine(u).evaluate(_book(pos, o))
    assert r["im"][0] == (11_900.0 + 6_200.0) * 0.5


def test_orders_never_change_maintenance_liquidation_or_liquidation_prices():
    u = _universe(imr=0.1, order_open_loss=True, order_fee_rate=0.0006)
    pos = {"account": [1], "market": ["BTCUSDT"], "qty": [1.0], "entry_price": [20_000.0]}
    o = _orders(side=["buy", "sell"], qty=[30.0, 4.0], price=[25_000.0, 15_000.0])
    e = cm.Engine(u)
    with_orders, without = _book(pos, o, cash=1_500.0), _book(pos, cash=1_500.0)
    a, b = e.evaluate(with_orders), e.evaluate(without)
    for col in ("equity", "adj_equity_maint", "mm", "margin_ratio", "liquidatable", "bankrupt"):
        assert a[col][0] == b[col][0], col
    assert a["im"][0] > b["im"][0] and a["free_collateral"][0] < b["free_collateral"][0]
    assert_results_identical(e.liquidation_prices(with_orders), e.liquidation_prices(without))
    ex = e.explain(with_orders, 1)
    assert ex.orders["im"][0] == pytest.approx(a["im"][0] - b["im"][0], rel=1e-12)


@pytest.mark.parametrize(
    ("orders", "error", "message"),
    [
        ({"market": ["ETHUSDT"]}, BookError, "orders row 0: unknown market 'ETHUSDT'"),
        ({"qty": [0.0]}, BookError, "orders row 0: qty 0 must be finite, > 0"),
        ({"qty": [-1.0]}, BookError, "orders row 0: qty -1 must be finite, > 0"),
        ({"price": [0.0]}, BookError, "orders row 0: price 0 must be finite and > 0"),
        ({"side": ["hold"]}, BookError, "orders row 0: side 'hold' is not one of buy, sell"),
        ({"reduce_only": ["maybe"]}, BookTypeError, "orders row 0: reduce_only 'maybe'"),
    ],
)
def test_bad_orders_are_typed_errors_naming_the_row(orders, error, message):
    o = {**_orders(side=["buy"], qty=[1.0], price=[20_000.0]), **orders}
    with pytest.raises(error) as e:
        cm.Engine(_universe()).evaluate(_book(None, o))
    assert str(e.value).startswith(message), str(e.value)
    assert e.value.table == "orders"


def test_orders_on_an_option_market_or_under_a_portfolio_model_are_refused():
    perp = cm.Market("BTCUSDT", "perp", "USDT", "BTC", 20_000.0, [(math.inf, 0.02, 0.01)])
    call = cm.Market(
        "BTC-C", "option", "USDT", "BTC", option_type="call", strike=2e4, expiry=0.25, iv=0.6
    )
    u = cm.Universe([cm.Asset("USDT", 1.0), cm.Asset("BTC", 20_000.0)], [perp, call])
    option = "BTC-C"
    o = {"account": [1], "market": [option], "side": ["buy"], "qty": [1.0], "price": [100.0]}
    with pytest.raises(BookError, match=r"orders row 0: market '.*' is an option"):
        cm.Engine(u).evaluate(cm.Book.from_arrays(None, None, o))
    perp = u.markets[0].symbol
    b = cm.Book.from_arrays(None, None, {**o, "market": [perp]})
    with pytest.raises(ConfigError, match="open orders are margined by the standard model only"):
        cm.Engine(u).evaluate(b, model="portfolio")


def test_a_book_with_orders_round_trips_through_parquet_and_csv(tmp_path):
    u = _universe(order_open_loss=True)
    pos = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": [0.5, -0.2],
        "entry_price": [2e4] * 2,
        "side": ["long", "short"],
    }
    o = _orders(
        side=["buy", "sell"], qty=[0.1, 0.3], price=[19_000.0, 22_000.0], reduce_only=[False, True]
    )
    b = _book(pos, o)
    want = cm.Engine(u).evaluate(b)
    for fmt in ("parquet", "csv"):
        folder = cm.write_book(b, tmp_path / fmt, u, fmt=fmt)
        assert (folder / f"orders.{fmt}").exists()
        back = cm.read_book(folder)
        assert back.has_sides and back.has_orders
        assert_results_identical(cm.Engine(u).evaluate(back), want)
        # one file of each table, named directly
        single = cm.read_book(orders=folder / f"orders.{fmt}")
        assert single.has_orders and len(single.orders["qty"]) == 2


# ---- engine == reference -----------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(universe_and_book(hedged=True, orders=True, venue_rules=True))
def test_engine_matches_reference_on_hedged_books_with_orders(case):
    # markets with requirement shapes, valuation basis and fee reserve too: a hedge leg and
    # an order's worst case get the market's shape like any position
    u, rb = case
    b = rb.book(u)
    got = cm.Engine(u, threads=2).evaluate(b)
    want = reference.evaluate(u, b)
    assert_results_close(got, want, gross_scale(u, b))


@settings(max_examples=100, deadline=None)
@given(universe_and_book(hedged=True, orders=True), st.randoms(use_true_random=False))
def test_hedged_results_do_not_depend_on_row_order_or_threads(case, rnd):
    u, rb = case
    n_b, n_p = len(rb.balances["qty"]), len(rb.positions["qty"])
    order = (
        np.array(rnd.sample(range(n_b), n_b), dtype=np.intp),
        np.array(rnd.sample(range(n_p), n_p), dtype=np.intp),
    )
    a = cm.Engine(u, threads=1).evaluate(rb.book(u))
    b = cm.Engine(u, threads=3).evaluate(rb.book(u, order))
    assert_results_identical(a, b)


# ---- presets, venues, datasets -----------------------------------------------------------
def test_presets_set_each_venues_open_order_rule():
    from crossmargin.venues import presets

    def rules(u: cm.Universe) -> set[tuple[object, ...]]:
        return {
            (m.order_value, m.order_open_loss, m.order_fee_rate, m.order_margin_per_order)
            for m in u.markets
            if not m.is_option
        }

    assert rules(presets.binance_usdm()) == {("limit", True, 0.0, 0.0)}
    # BTCUSDT at the order-cost page's 0.06 %; the inverse BTCUSD at its own taker fee (the
    # rate its liquidation-fee reserve uses).
    assert rules(presets.bybit_unified()) == {
        ("limit", False, 0.0006, 0.0),
        ("limit", False, presets.BYBIT_TAKER_FEE, 0.0),
    }
    assert rules(presets.drift_v2()) == {("mark", False, 0.0, 0.01)}
    assert rules(presets.dydx_v4()) == {("mark", True, 0.0, 0.0)}


def test_map_book_keeps_hedge_legs_and_refuses_orders():
    from crossmargin.venues import presets

    src = cm.Universe.demo()
    pos = {
        "account": [1, 1],
        "market": ["BTCUSDT"] * 2,
        "qty": [0.5, -0.2],
        "entry_price": [9e4] * 2,
        "side": ["long", "short"],
    }
    b = cm.Book.from_arrays({"account": [1], "asset": ["USDT"], "qty": [1e5]}, pos)
    mapped, dropped = presets.map_book(b, src, presets.binance_usdm())
    assert mapped.has_sides and dropped["positions_dropped"] == 0
    assert sorted(np.asarray(mapped.positions["side"]).tolist()) == [1, 2]
    o = {"account": [1], "market": ["BTCUSDT"], "side": ["buy"], "qty": [0.1], "price": [9e4]}
    with_orders = cm.Book.from_arrays(b.balances, b.positions, o)
    with pytest.raises(ConfigError, match="open orders are not carried over"):
        presets.map_book(with_orders, src, presets.binance_usdm())


def test_a_partitioned_dataset_keeps_legs_and_refuses_orders(tmp_path):
    from crossmargin.distributed import sharded

    u = _universe()
    pos = {
        "account": [1, 1, 2, 3, 3],
        "market": ["BTCUSDT"] * 5,
        "qty": [0.5, -0.2, 1.0, 0.0, -3.0],
        "entry_price": [2e4] * 5,
        "side": ["long", "short", "both", "long", "short"],
    }
    b = cm.Book.from_arrays({"account": [1, 2, 3], "asset": ["USDT"] * 3, "qty": [1e4] * 3}, pos)
    folder = sharded.write_partitioned(b, u, tmp_path / "ds", 2)
    back = sharded.read_partitioned(folder)
    assert back.has_sides
    assert_results_identical(cm.Engine(u).evaluate(back), cm.Engine(u).evaluate(b))
    o = _orders(side=["buy"], qty=[0.1], price=[19_000.0])
    with pytest.raises(BookError, match="has open orders"):
        sharded.write_partitioned(_book(None, o), u, tmp_path / "ds2", 2)


def test_hedge_legs_pay_funding_each_and_keep_their_orders_and_stress_and_solvency_run():
    # Binance: Funding Amount = Mark Price × Size × Funding Rate, per position: a hedged
    # account's long leg pays and its short leg receives (its net only is exposed).
    u = _universe(imr=0.1, mark=50_000.0)
    pos = {
        "account": [1, 1, 2],
        "market": ["BTCUSDT"] * 3,
        "qty": [2.0, -1.5, -0.5],
        "entry_price": [5e4] * 3,
        "side": ["long", "short", "both"],
    }
    o = _orders(side=["buy"], qty=[0.1], price=[49_000.0])
    b = cm.Book.from_arrays({"account": [1, 2], "asset": ["USDT"] * 2, "qty": [1e4, 1e4]}, pos, o)
    e = cm.Engine(u)
    fr = e.apply_funding(b, {"BTCUSDT": 0.0001})
    assert fr.payments.payment.tolist() == [-10.0, 7.5, 2.5]
    assert fr.check_zero_sum()
    assert fr.book.has_sides and fr.book.has_orders
    assert fr.book.positions["side"].tolist() == b.positions["side"].tolist()
    st = e.stress(b, {"crash": {"BTC": -0.5}})
    ref = reference.evaluate(u, b, prices={"BTC": 25_000.0})
    # the stress matrix holds adj_equity_maint − mm per scenario: orders never enter it
    want = np.asarray(ref["adj_equity_maint"]) - np.asarray(ref["mm"])
    np.testing.assert_allclose(st.matrix[:, 0], want, rtol=1e-12)
    assert len(e.solvency(b).accounts) == 2
