"""Portfolio margin: engine == reference for the portfolio, delta and hybrid models (and
greeks), CME SPAN's published futures rule, the presets, TOML, and the properties a
risk-based margin must have (hedges need no more than their legs, reducing risk never
raises the requirement, collateral moves with its underlying)."""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.portfolio import PortfolioConfig, UnderlyingPortfolio, crypto, span16
from hypothesis import given, settings
from hypothesis import strategies as st

MODELS = ("standard", "portfolio", "delta", "hybrid")
FLOATS = ("equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm", "free_collateral")


def universe(pm: PortfolioConfig | None = None, eth_pm: bool = True) -> cm.Universe:
    if pm is None:
        pm = PortfolioConfig(
            {"BTC": crypto(), **({"ETH": span16(0.1, 0.05)} if eth_pm else {})},
            offsets=[("BTC", "ETH", 0.5)],
            im_factor=1.3,
            hybrid_floor=0.6,
        )
    return cm.Universe(
        assets=[
            cm.Asset("USDC", 1.0, 0.98, 0.99),
            cm.Asset("BTC", 50_000.0, 0.9, 0.95, 1.2, 1.1),
            cm.Asset("ETH", 2_500.0, 0.8, 0.9, 1.3, 1.15),
        ],
        markets=[
            cm.Market(
                "BTC-PERP",
                "perp",
                "USDC",
                "BTC",
                50_100.0,
                [(1e6, 0.02, 0.01), (math.inf, 0.05, 0.025)],
            ),
            cm.Market("BTC-FUT", "future", "USDC", "BTC", 50_500.0, [(math.inf, 0.03, 0.015)]),
            cm.Market(
                "BTCUSD",
                "perp",
                "BTC",
                "BTC",
                50_050.0,
                [(math.inf, 0.02, 0.01)],
                contract_size=100.0,
                inverse=True,
            ),
            cm.Market(
                "BTC-C55",
                "option",
                "USDC",
                "BTC",
                option_type="call",
                strike=55_000.0,
                expiry=0.1,
                iv=0.6,
            ),
            cm.Market(
                "BTC-P45",
                "option",
                "USDC",
                "BTC",
                option_type="put",
                strike=45_000.0,
                expiry=0.1,
                iv=0.65,
            ),
            cm.Market(
                "BTC-C50i",
                "option",
                "BTC",
                "BTC",
                option_type="call",
                strike=50_000.0,
                expiry=0.02,
                iv=0.5,
                inverse=True,
            ),
            cm.Market(
                "BTC-P40i",
                "option",
                "BTC",
                "BTC",
                option_type="put",
                strike=40_000.0,
                expiry=0.5,
                iv=0.8,
                inverse=True,
                mark=0.01,
            ),
            cm.Market("ETH-PERP", "perp", "USDC", "ETH", 2_500.0, [(math.inf, 0.05, 0.025)]),
            cm.Market(
                "ETH-C3000",
                "option",
                "USDC",
                "ETH",
                option_type="call",
                strike=3_000.0,
                expiry=0.3,
                iv=0.7,
                contract_size=0.1,
            ),
            cm.Market("SOL-PERP", "perp", "USDC", "SOL", 150.0, [(math.inf, 0.1, 0.05)]),
        ],
        portfolio=pm,
    )


ENTRY = {"BTC-PERP": 49_000.0, "BTC-FUT": 51_000.0, "BTCUSD": 48_000.0, "BTC-C55": 1_500.0,
         "BTC-P45": 900.0, "BTC-C50i": 0.02, "BTC-P40i": 0.012, "ETH-PERP": 2_600.0,
         "ETH-C3000": 90.0, "SOL-PERP": 140.0}  # fmt: skip
QTY = {"BTCUSD": 500.0, "ETH-PERP": 20.0, "ETH-C3000": 50.0, "SOL-PERP": 100.0}


@st.composite
def books(draw: st.DrawFn, u: cm.Universe) -> cm.Book:
    n_acc = draw(st.integers(1, 5))
    bal, pos = [], []
    for a in range(n_acc):
        for asset in draw(
            st.lists(st.sampled_from(["USDC", "BTC", "ETH"]), max_size=3, unique=True)
        ):
            scale = {"USDC": 50_000.0, "BTC": 1.0, "ETH": 20.0}[asset]
            bal.append((a, asset, draw(st.floats(-0.3, 1.0)) * scale))
        for m in draw(st.lists(st.sampled_from(list(ENTRY)), max_size=6, unique=True)):
            q = draw(st.one_of(st.just(0.0), st.floats(-3.0, 3.0))) * QTY.get(m, 1.0)
            iso = draw(st.sampled_from([0.0, 0.0, 0.0, 20_000.0]))
            iso = iso / 50_000.0 if u.markets[u.market_index[m]].settle == "BTC" else iso
            pos.append((a, m, q, ENTRY[m] * draw(st.floats(0.8, 1.2)), iso))
    return cm.Book.from_arrays(
        balances={k: [r[i] for r in bal] for i, k in enumerate(("account", "asset", "qty"))},
        positions={
            k: [r[i] for r in pos]
            for i, k in enumerate(("account", "market", "qty", "entry_price", "isolated_margin"))
        },
    )


def assert_close(got: cm.Table, want: cm.Table, scale: float = 1e7) -> None:
    np.testing.assert_array_equal(got.account, want.account)
    for c in FLOATS:
        np.testing.assert_allclose(got[c], want[c], rtol=1e-9, atol=1e-9 * scale, err_msg=c)


U = universe()
ENGINE = cm.Engine(U)


@settings(max_examples=80)
@given(st.data())
def test_every_model_matches_the_reference(data):
    b = data.draw(books(U))
    prices = data.draw(
        st.sampled_from([None, {"BTC": 42_000.0}, {"ETH": 3_100.0, "BTC-C55": 2_000.0}])
    )
    for model in MODELS:
        assert_close(
            ENGINE.evaluate(b, prices=prices, model=model),
            reference.evaluate(U, b, prices, model=model),
        )


@settings(max_examples=40)
@given(st.data())
def test_greeks_match_the_reference(data):
    b = data.draw(books(U))
    got, want = ENGINE.greeks(b), reference.greeks(U, b)
    np.testing.assert_array_equal(got.account, want.account)
    np.testing.assert_array_equal(got.underlying, want.underlying)
    for c in ("delta", "gamma", "vega", "theta", "theta_day", "rho"):
        np.testing.assert_allclose(got[c], want[c], rtol=1e-9, atol=1e-6, err_msg=c)


@settings(max_examples=20)
@given(st.data())
def test_results_do_not_depend_on_the_thread_count(data):
    b = data.draw(books(U))
    one, two = cm.Engine(U, threads=1), cm.Engine(U, threads=2)
    for model in MODELS[1:]:
        x, y = one.evaluate(b, model=model), two.evaluate(b, model=model)
        for c in x.columns:
            np.testing.assert_array_equal(x[c], y[c])


@settings(max_examples=20)
@given(st.data())
def test_out_gets_the_bits_of_fresh_columns_under_every_model(data):
    """``out=`` (numpy's convention) under the portfolio models: the previous result's
    arrays are written in place and returned, bit for bit the fresh result, whichever model
    wrote them before and whatever prices moved."""
    b = data.draw(books(U))
    out = ENGINE.evaluate(b)
    arrays = {c: out[c] for c in out.columns}
    for model in data.draw(st.permutations(MODELS)):
        prices = data.draw(st.sampled_from([None, {"BTC": 42_000.0}, {"ETH": 2_500.0}]))
        want = ENGINE.evaluate(b, prices=prices, model=model)
        got = ENGINE.evaluate(b, prices=prices, model=model, out=out)
        assert got is out
        for c in want.columns:
            assert got[c] is arrays[c], c  # written in place, not replaced
            np.testing.assert_array_equal(got[c], want[c], err_msg=f"{model}: {c}")


def book(*positions: tuple[str, float], balances: tuple[tuple[str, float], ...] = ()) -> cm.Book:
    return cm.Book.from_arrays(
        balances={"account": [1] * len(balances), "asset": [a for a, _ in balances],
                  "qty": [q for _, q in balances]},
        positions={"account": [1] * len(positions), "market": [m for m, _ in positions],
                   "qty": [q for _, q in positions],
                   "entry_price": [ENTRY[m] for m, _ in positions]},
    )  # fmt: skip


def pm(b: cm.Book, engine: cm.Engine = ENGINE, model: str = "portfolio") -> float:
    return float(engine.evaluate(b, model=model).mm[0])


def test_cme_span_scan_risk_of_an_outright_future_is_the_price_scan_range():
    # CME SPAN ("Risk Arrays - Standard"): the price scan range equals the maintenance
    # requirement of the combined commodity; a future's worst scenario is the full scan
    # (the extreme move, 2 × scan at 35% cover, is 70% of it).
    u = universe(PortfolioConfig({"BTC": span16(0.08)}))
    e = cm.Engine(u)
    fut = u.markets[u.market_index["BTC-FUT"]]
    assert pm(book(("BTC-FUT", 2.0)), e) == pytest.approx(2 * 0.08 * fut.mark, rel=1e-12)
    assert pm(book(("BTC-FUT", -2.0)), e) == pytest.approx(2 * 0.08 * fut.mark, rel=1e-12)
    assert len(span16(0.08).scenarios) == 16


def test_deribit_grid_and_short_option_contingency():
    p = crypto()
    assert len(p.scenarios) == 27 + 8
    assert len(crypto(buckets=11, extended=()).scenarios) == 33
    weights = {x: w for x, _, w in p.scenarios if w < 1}
    assert weights[-0.66] == pytest.approx(0.16 / 0.66) and weights[5.0] == pytest.approx(0.032)
    # Contingency: 0.01 × underlying per short option on top of the scenario loss.
    u = universe(PortfolioConfig({"BTC": crypto(short_option_min=0.0)}))
    u2 = universe(PortfolioConfig({"BTC": crypto(short_option_min=0.01)}))
    b = book(("BTC-C55", -3.0))
    assert pm(b, cm.Engine(u2)) - pm(b, cm.Engine(u)) == pytest.approx(3 * 0.01 * 50_000.0)


def test_collateral_moves_with_its_underlying():
    # 1 BTC in the wallet hedged by a short future: only the basis is at risk.
    alone = pm(book(("BTC-FUT", -1.0)))
    hedged = pm(book(("BTC-FUT", -1.0), balances=(("BTC", 1.0),)))
    assert hedged < 0.05 * alone
    # A BTC balance alone loses in the down scenarios.
    assert pm(book(balances=(("BTC", 1.0),))) > 0.1 * 50_000.0


@settings(max_examples=60)
@given(
    st.floats(0.1, 5.0),
    st.sampled_from(["BTC-PERP", "BTC-FUT"]),
    st.sampled_from(["BTC-C55", "BTC-C50i"]),
    st.sampled_from(["BTC-P45", "BTC-P40i"]),
)
def test_a_hedged_portfolio_needs_no_more_than_its_legs(q, fut, call, put):
    legs = [(fut, q), (call, -q), (put, q)]
    for model in ("portfolio", "hybrid"):
        whole = pm(book(*legs), model=model)
        apart = sum(pm(book(leg), model=model) for leg in legs)
        assert whole <= apart * (1 + 1e-12) + 1e-9


@settings(max_examples=60)
@given(st.data(), st.floats(0.0, 1.0))
def test_reducing_every_position_never_raises_portfolio_margin(data, alpha):
    legs = data.draw(st.lists(st.tuples(st.sampled_from(list(ENTRY)), st.floats(-3, 3)), min_size=1,
                              max_size=5, unique_by=lambda x: x[0]))  # fmt: skip
    full = book(*legs)
    reduced = book(*[(m, q * (1 - alpha)) for m, q in legs])
    for model in ("portfolio", "delta"):
        assert pm(reduced, model=model) <= pm(full, model=model) * (1 + 1e-12) + 1e-9


def test_a_protective_put_lowers_the_margin_of_a_long_future():
    assert pm(book(("BTC-FUT", 1.0), ("BTC-P45", 1.0))) < pm(book(("BTC-FUT", 1.0)))


def test_opposite_deltas_across_underlyings_earn_the_offset_credit():
    b = book(("BTC-PERP", 1.0), ("ETH-PERP", -20.0))
    no_offsets = universe(PortfolioConfig({"BTC": crypto(), "ETH": span16(0.1, 0.05)}))
    assert pm(b) < pm(b, cm.Engine(no_offsets))
    same_side = book(("BTC-PERP", 1.0), ("ETH-PERP", 20.0))
    assert pm(same_side) == pytest.approx(pm(same_side, cm.Engine(no_offsets)))


def test_underlyings_without_parameters_keep_their_standard_requirement():
    b = book(("SOL-PERP", 100.0))
    assert ENGINE.evaluate(b, model="portfolio").mm[0] == pytest.approx(ENGINE.evaluate(b).mm[0])


def test_hybrid_is_at_least_the_floor_times_standard():
    b = book(("BTC-C55", 1.0), ("BTC-P45", -1.0))
    h, s, p = (ENGINE.evaluate(b, model=m) for m in ("hybrid", "standard", "portfolio"))
    assert h.mm[0] == pytest.approx(max(p.mm[0], 0.6 * s.mm[0]))
    assert h.im[0] == pytest.approx(max(p.im[0], 0.6 * s.im[0]))


def test_greeks_count_linear_positions_and_collateral():
    g = ENGINE.greeks(
        book(("BTC-PERP", 2.0), ("ETH-C3000", 10.0), balances=(("BTC", 0.5), ("USDC", 1.0)))
    )
    rows = {u: i for i, u in enumerate(g.underlying)}
    assert g.delta[rows["BTC"]] == pytest.approx(2.0 * 50_100.0 / 50_000.0 + 0.5)
    eth = cm.options.black76(2_500.0, 3_000.0, 0.3, 0.7, 0.0, "call")
    assert g.delta[rows["ETH"]] == pytest.approx(10 * 0.1 * eth.delta[0])
    assert g.gamma[rows["ETH"]] == pytest.approx(10 * 0.1 * eth.gamma[0])
    assert g.vega[rows["ETH"]] == pytest.approx(10 * 0.1 * eth.vega[0])
    assert g.theta_day[rows["ETH"]] == pytest.approx(10 * 0.1 * eth.theta[0] / 365)
    assert g.rho[rows["ETH"]] == pytest.approx(-0.3 * 10 * 0.1 * eth.price[0])
    cols = ["account", "underlying", "delta", "gamma", "vega", "theta", "theta_day", "rho"]
    assert list(g.columns) == cols


def test_portfolio_config_loads_from_toml(tmp_path):
    path = tmp_path / "u.toml"
    path.write_text(
        """
valuation_date = "2025-12-27"
[[assets]]
symbol = "USDC"
price = 1.0
[[assets]]
symbol = "BTC"
price = 50000.0
[[markets]]
symbol = "BTC-PERP"
kind = "perp"
settle = "USDC"
underlying = "BTC"
mark = 50000.0
brackets = [[1e12, 0.02, 0.01]]
[[markets]]
symbol = "BTC-C"
kind = "option"
settle = "USDC"
underlying = "BTC"
option_type = "call"
strike = 55000.0
expiry = "2026-03-27"
iv = 0.6
[portfolio]
im_factor = 1.3
[portfolio.underlyings.BTC]
preset = "crypto"
buckets = 11
extended = []
[portfolio.default]
scenarios = [[-0.1, 0.0, 1.0], [0.1, 0.0, 1.0]]
"""
    )
    u = cm.Universe.from_toml(path)
    assert len(u.portfolio.for_underlying("BTC").scenarios) == 33
    b = cm.Book.from_arrays(
        positions={"account": [1], "market": ["BTC-PERP"], "qty": [1.0], "entry_price": [50_000.0]}
    )
    r = cm.Engine(u).evaluate(b, model="portfolio")
    # Worst of the 11 moves over ±16%: −16%.
    assert r.mm[0] == pytest.approx(0.16 * 50_000.0)
    assert r.im[0] == pytest.approx(1.3 * 0.16 * 50_000.0)


def test_configuration_errors_name_the_field():
    with pytest.raises(cm.ConfigError, match=r"portfolio.underlyings\[DOGE\]"):
        universe(PortfolioConfig({"DOGE": crypto()}))
    with pytest.raises(cm.ConfigError, match=r"portfolio.offsets\[0\].rate"):
        universe(PortfolioConfig({"BTC": crypto()}, offsets=[("BTC", "ETH", 1.5)]))
    with pytest.raises(cm.ConfigError, match=r"scenarios\[0\].price"):
        universe(PortfolioConfig({"BTC": UnderlyingPortfolio([(-2.0, 0.0, 1.0)])}))
    plain = cm.Universe(U.assets, U.markets)
    with pytest.raises(cm.ConfigError, match="needs Universe"):
        cm.Engine(plain).evaluate(book(("BTC-PERP", 1.0)), model="portfolio")


def test_orders_two_sided_assets_and_fee_reserves_are_refused_by_name():
    """The scenario pool values each asset at one price and has no rule for open orders or a
    closing-fee reserve (docs/MODEL.md "Portfolio margin"): typed errors naming the row or
    field, never silently ignored."""
    from dataclasses import replace

    u = universe()
    bal = {"account": [1], "asset": ["USDC"], "qty": [10_000.0]}
    pos = {"account": [1], "market": ["BTC-PERP"], "qty": [0.1], "entry_price": [50_000.0]}
    orders = {"account": [1], "market": ["BTC-PERP"], "side": ["buy"], "qty": [0.1],
              "price": [49_000.0]}  # fmt: skip
    e = cm.Engine(u)
    with_orders = cm.Book.from_arrays(bal, pos, orders)
    with pytest.raises(cm.ConfigError, match="model: open orders are margined by the standard"):
        e.evaluate(with_orders, model="portfolio")
    assert e.evaluate(with_orders).im[0] > e.evaluate(cm.Book.from_arrays(bal, pos)).im[0]
    assets = [replace(a, bid=0.999, ask=1.001) if a.symbol == "USDC" else a for a in u.assets]
    two = cm.Universe(assets=assets, markets=list(u.markets), portfolio=u.portfolio)
    with pytest.raises(cm.ConfigError, match=r"assets\[USDC\]\.bid: the portfolio model"):
        cm.Engine(two).evaluate(cm.Book.from_arrays(bal, pos), model="delta")
    fee = [replace(m, liquidation_fee=0.00055) if m.symbol == "BTC-PERP" else m for m in u.markets]
    fu = cm.Universe(assets=list(u.assets), markets=fee, portfolio=u.portfolio)
    with pytest.raises(cm.ConfigError, match=r"markets\[BTC-PERP\]\.liquidation_fee"):
        cm.Engine(fu).evaluate(cm.Book.from_arrays(bal, pos), model="hybrid")
    for bad in (two, fu):  # the reference refuses them alike
        with pytest.raises(cm.ConfigError, match=r"\.(bid|liquidation_fee): the portfolio model"):
            reference.evaluate(bad, cm.Book.from_arrays(bal, pos), model="portfolio")
