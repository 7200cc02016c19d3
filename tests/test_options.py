"""Options: Black-76 and generalised Black-Scholes-Merton against published values and
put–call parity, greeks against finite differences, option markets in the universe, Deribit's
standard margin, price overrides that reprice options, and engine == reference under the
standard model."""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.options import black76, bsm
from crossmargin.reference.portfolio import black76 as ref_black76
from crossmargin.reference.portfolio import bsm as ref_bsm
from hypothesis import given, settings
from hypothesis import strategies as st


def test_black76_matches_haugs_example():
    # Haug, "The Complete Guide to Option Pricing Formulas" (2007), §1.1.4 (Black-76):
    # F = 19, K = 19, T = 0.75, r = 10%, σ = 28% → call = put = 1.7011.
    t = black76(19.0, 19.0, 0.75, 0.28, 0.10, ["call", "put"])
    np.testing.assert_allclose(t.price, [1.7011, 1.7011], atol=5e-5)


def test_black76_matches_hulls_crude_oil_put():
    # Hull, "Options, Futures, and Other Derivatives", futures-option example: crude oil
    # futures put, F = K = 20, T = 4 months, r = 9%, σ = 25% → 1.12.
    t = black76(20.0, 20.0, 4 / 12, 0.25, 0.09, "put")
    assert t.price[0] == pytest.approx(1.12, abs=5e-3)


@settings(max_examples=200)
@given(
    st.floats(1.0, 1e5),
    st.floats(0.2, 5.0),
    st.floats(1e-3, 3.0),
    st.floats(0.01, 3.0),
    st.floats(-0.05, 0.2),
)
def test_put_call_parity_holds(forward, moneyness, years, vol, rate):
    strike = forward * moneyness
    t = black76(forward, strike, years, vol, rate, ["call", "put"])
    df = math.exp(-rate * years)
    assert t.price[0] - t.price[1] == pytest.approx(df * (forward - strike), abs=1e-9 * forward)
    assert t.delta[0] - t.delta[1] == pytest.approx(df, abs=1e-12)
    assert t.gamma[0] == pytest.approx(t.gamma[1], rel=1e-12, abs=1e-300)
    assert t.vega[0] == pytest.approx(t.vega[1], rel=1e-12, abs=1e-300)


@settings(max_examples=100)
@given(st.floats(1.0, 1e5), st.floats(0.5, 2.0), st.floats(0.01, 2.0), st.floats(0.05, 2.0))
def test_engine_pricer_matches_the_reference_pricer(forward, moneyness, years, vol):
    for kind in ("call", "put"):
        got = black76(forward, forward * moneyness, years, vol, 0.01, kind)
        want = ref_black76(forward, forward * moneyness, years, vol, 0.01, kind == "call")
        for name, w in zip(("price", "delta", "gamma", "vega", "theta"), want, strict=True):
            assert got[name][0] == pytest.approx(w, rel=1e-9, abs=1e-12 * forward), name


def test_greeks_are_the_derivatives_of_the_price():
    f, k, t, v, r, h = 100.0, 105.0, 0.4, 0.25, 0.03, 1e-4
    g = black76(f, k, t, v, r, "put")

    def p(**kw: float) -> float:
        args = {"forward": f, "strike": k, "years": t, "vol": v, "rate": r, **kw}
        return float(black76(**args, kind="put").price[0])

    assert g.delta[0] == pytest.approx((p(forward=f + h) - p(forward=f - h)) / (2 * h), abs=1e-7)
    assert g.gamma[0] == pytest.approx(
        (p(forward=f + h) - 2 * g.price[0] + p(forward=f - h)) / h**2, abs=1e-4
    )
    assert g.vega[0] == pytest.approx((p(vol=v + h) - p(vol=v - h)) / (2 * h), abs=1e-6)
    assert g.theta[0] == pytest.approx(-(p(years=t + h) - p(years=t - h)) / (2 * h), abs=1e-5)


def test_black76_broadcasts_and_rejects_unknown_kinds():
    t = black76([90.0, 100.0, 110.0], 100.0, 0.5, 0.3, 0.0, "call")
    assert len(t) == 3 and np.all(np.diff(t.price) > 0)
    with pytest.raises(ValueError, match="not one of call, put"):
        black76(100.0, 100.0, 0.5, 0.3, 0.0, "straddle")


# ---- option markets ---------------------------------------------------------------------
def options_universe(**kw) -> cm.Universe:
    return cm.Universe(
        assets=[cm.Asset("USDC", 1.0), cm.Asset("BTC", 50_000.0, 0.9, 0.95)],
        markets=[
            cm.Market("BTC-PERP", "perp", "USDC", "BTC", 50_000.0, [(math.inf, 0.02, 0.01)]),
            cm.Market(
                "C55",
                "option",
                "USDC",
                "BTC",
                option_type="call",
                strike=55_000.0,
                expiry=0.25,
                iv=0.6,
            ),
            cm.Market(
                "P45",
                "option",
                "BTC",
                "BTC",
                option_type="put",
                strike=45_000.0,
                expiry="2026-03-27T08:00:00",
                iv=0.7,
                inverse=True,
            ),
            cm.Market(
                "C60M",
                "option",
                "USDC",
                "BTC",
                option_type="call",
                strike=60_000.0,
                expiry=0.25,
                iv=0.6,
                mark=900.0,
            ),
        ],
        valuation_date="2025-12-27T08:00:00",
        **kw,
    )


def test_option_marks_come_from_black76_on_the_underlying():
    u = options_universe()
    assert u.option_years("P45") == pytest.approx(90 / 365)
    c = black76(50_000.0, 55_000.0, 0.25, 0.6, 0.0, "call").price[0]
    p = black76(50_000.0, 45_000.0, 90 / 365, 0.7, 0.0, "put").price[0]
    assert u.reference_marks[1] == pytest.approx(c, rel=1e-12)
    # Inverse (Deribit): quoted in the settle coin per 1 BTC.
    assert u.reference_marks[2] == pytest.approx(p / 50_000.0, rel=1e-12)
    assert u.reference_marks[3] == 900.0


def test_an_underlying_override_reprices_options_instead_of_scaling_them():
    u = options_universe()
    _, marks = cm.prices.resolve(u, {"BTC": 40_000.0})
    c = black76(40_000.0, 55_000.0, 0.25, 0.6, 0.0, "call").price[0]
    assert marks[1] == pytest.approx(c, rel=1e-12)
    assert marks[1] != pytest.approx(u.reference_marks[1] * 0.8, rel=1e-3)
    # An explicit mark keeps its premium over the model multiplicatively.
    m0 = black76(50_000.0, 60_000.0, 0.25, 0.6, 0.0, "call").price[0]
    m1 = black76(40_000.0, 60_000.0, 0.25, 0.6, 0.0, "call").price[0]
    assert marks[3] == pytest.approx(900.0 * m1 / m0, rel=1e-12)
    # A market key wins.
    _, marks = cm.prices.resolve(u, {"BTC": 40_000.0, "C55": 123.0})
    assert marks[1] == 123.0


def test_a_long_option_counts_at_its_value_and_needs_nothing():
    u = options_universe()
    mark = u.reference_marks[1]
    b = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["USDC"], "qty": [1_000.0]},
        positions={"account": [1], "market": ["C55"], "qty": [2.0], "entry_price": [1_000.0]},
    )
    r = cm.Engine(u).evaluate(b)
    assert r.equity[0] == pytest.approx(1_000.0 + 2 * mark)
    assert r.upnl[0] == pytest.approx(2 * (mark - 1_000.0))
    assert r.adj_equity_maint[0] == pytest.approx(1_000.0 + 2 * mark)
    assert r.im[0] == 0.0 and r.mm[0] == 0.0


def test_a_short_inverse_put_pays_deribits_standard_margin():
    # Deribit: IM = max(0.15 − OTM/S, 0.1) + mark, MM = 0.075 + mark (BTC per contract).
    u = options_universe()
    mark = u.reference_marks[2]
    b = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["BTC"], "qty": [1.0]},
        positions={"account": [1], "market": ["P45"], "qty": [-3.0], "entry_price": [0.02]},
    )
    r = cm.Engine(u).evaluate(b)
    otm = (50_000.0 - 45_000.0) / 50_000.0
    assert r.im[0] == pytest.approx(3 * (max(0.15 - otm, 0.10) + mark) * 50_000.0)
    assert r.mm[0] == pytest.approx(3 * (0.075 + mark) * 50_000.0)
    assert r.equity[0] == pytest.approx(50_000.0 - 3 * mark * 50_000.0)
    assert r.adj_equity_maint[0] == pytest.approx(0.95 * 50_000.0 - 3 * mark * 50_000.0)


def test_option_terms_are_validated():
    with pytest.raises(cm.ConfigError, match="option_type"):
        cm.Market("X", "option", "USDC", "BTC", strike=1.0, expiry=1.0, iv=0.5)
    with pytest.raises(cm.ConfigError, match="only option markets"):
        cm.Market("X", "perp", "USDC", "BTC", 1.0, [(math.inf, 0.1, 0.05)], strike=1.0)
    with pytest.raises(cm.ConfigError, match="valuation_date"):
        cm.Universe(
            [cm.Asset("USDC", 1.0), cm.Asset("BTC", 1.0)],
            [cm.Market("X", "option", "USDC", "BTC", option_type="call", strike=1.0,
                       expiry="2026-01-01", iv=0.5)],
        )  # fmt: skip
    with pytest.raises(cm.ConfigError, match=r"markets\[X\].strike"):
        cm.Universe(
            [cm.Asset("USDC", 1.0), cm.Asset("BTC", 1.0)],
            [cm.Market("X", "option", "USDC", "BTC", option_type="call", strike=-1.0,
                       expiry=1.0, iv=0.5)],
        )  # fmt: skip
    with pytest.raises(cm.ConfigError, match="need an asset of that symbol"):
        cm.Universe(
            [cm.Asset("USDC", 1.0)],
            [cm.Market("X", "option", "USDC", "SOL", option_type="call", strike=1.0,
                       expiry=1.0, iv=0.5, mark=0.1)],
        )  # fmt: skip


@settings(max_examples=60)
@given(st.data())
def test_standard_model_with_options_matches_the_reference(data):
    u = options_universe()
    n = data.draw(st.integers(1, 12))
    markets = data.draw(
        st.lists(st.sampled_from(["BTC-PERP", "C55", "P45", "C60M"]), min_size=n, max_size=n)
    )
    accounts = data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    seen = set()
    rows = [
        (a, m)
        for a, m in zip(accounts, markets, strict=True)
        if not ((a, m) in seen or seen.add((a, m)))
    ]
    qty = data.draw(st.lists(st.floats(-5, 5), min_size=len(rows), max_size=len(rows)))
    iso = data.draw(
        st.lists(st.sampled_from([0.0, 0.0, 5_000.0]), min_size=len(rows), max_size=len(rows))
    )
    entry = [50_000.0 if m == "BTC-PERP" else (0.02 if m == "P45" else 1_000.0) for _, m in rows]
    b = cm.Book.from_arrays(
        balances={"account": list(range(5)), "asset": ["USDC", "BTC", "USDC", "BTC", "USDC"],
                  "qty": [10_000.0, 0.5, -100.0, 2.0, 0.0]},
        positions={"account": [a for a, _ in rows], "market": [m for _, m in rows], "qty": qty,
                   "entry_price": entry, "isolated_margin": iso},
    )  # fmt: skip
    prices = data.draw(st.sampled_from([None, {"BTC": 41_000.0}, {"BTC": 61_000.0, "C55": 10.0}]))
    got = cm.Engine(u).evaluate(b, prices=prices)
    want = reference.evaluate(u, b, prices)
    scale = 1e6
    for c in ("equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm"):
        np.testing.assert_allclose(got[c], want[c], rtol=1e-9, atol=1e-9 * scale, err_msg=c)


# ---- generalised Black-Scholes-Merton ----------------------------------------------------
# Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed. (McGraw-Hill, 2007): the
# worked examples of §1.1.1 (Black-Scholes, b = r), §1.1.2 (Merton, b = r − q), §1.1.3
# (Black-76, b = 0), §1.1.5 (Garman-Kohlhagen, b = r − r_f), §1.1.6 (generalised) and §2.1
# (greeks); printed to 4 decimals. The same values, with the 1st edition's pages (1998,
# pp. 2–8 and 11–16), are tabulated in QuantLib's test-suite/europeanoption.cpp.
HAUG_PRICES = [
    # (case, kind, S, K, T, r, b, σ, printed value)
    ("stock §1.1.1", "call", 60.0, 65.0, 0.25, 0.08, 0.08, 0.30, 2.1334),
    ("index §1.1.2", "put", 100.0, 95.0, 0.5, 0.10, 0.10 - 0.05, 0.20, 2.4648),
    ("futures §1.1.3", "call", 19.0, 19.0, 0.75, 0.10, 0.0, 0.28, 1.7011),
    ("futures §1.1.3", "put", 19.0, 19.0, 0.75, 0.10, 0.0, 0.28, 1.7011),
    ("FX §1.1.5", "call", 1.56, 1.60, 0.5, 0.06, 0.06 - 0.08, 0.12, 0.0291),
    ("generalised §1.1.6", "put", 75.0, 70.0, 0.5, 0.10, 0.10 - 0.05, 0.35, 4.0870),
]

HAUG_GREEKS = [
    # (greek, kind, S, K, T, r, b, σ, printed value) — Haug §2.1
    ("delta", "call", 105.0, 100.0, 0.5, 0.10, 0.0, 0.36, 0.5946),  # futures option
    ("delta", "put", 105.0, 100.0, 0.5, 0.10, 0.0, 0.36, -0.3566),
    ("gamma", "call", 55.0, 60.0, 0.75, 0.10, 0.10, 0.30, 0.0278),  # stock option
    ("gamma", "put", 55.0, 60.0, 0.75, 0.10, 0.10, 0.30, 0.0278),
    ("vega", "call", 55.0, 60.0, 0.75, 0.10, 0.10, 0.30, 18.9358),
    ("vega", "put", 55.0, 60.0, 0.75, 0.10, 0.10, 0.30, 18.9358),
    ("theta", "put", 430.0, 405.0, 1 / 12, 0.07, 0.07 - 0.05, 0.20, -31.1924),  # index
    ("theta_day", "put", 430.0, 405.0, 1 / 12, 0.07, 0.07 - 0.05, 0.20, -0.0855),
    ("rho", "call", 72.0, 75.0, 1.0, 0.09, 0.09, 0.19, 38.7325),  # stock option
    ("carry_rho", "put", 500.0, 490.0, 0.25, 0.08, 0.08 - 0.05, 0.15, -42.2254),  # index
    ("dividend_rho", "put", 500.0, 490.0, 0.25, 0.08, 0.08 - 0.05, 0.15, 42.2254),
]


@pytest.mark.parametrize(("case", "kind", "s", "k", "t", "r", "b", "v", "want"), HAUG_PRICES)
def test_bsm_prices_match_haugs_printed_values(case, kind, s, k, t, r, b, v, want):
    got = bsm(s, k, t, v, r, b, kind).price[0]
    assert round(float(got), 4) == want, case


@pytest.mark.parametrize(("greek", "kind", "s", "k", "t", "r", "b", "v", "want"), HAUG_GREEKS)
def test_bsm_greeks_match_haugs_printed_values(greek, kind, s, k, t, r, b, v, want):
    got = bsm(s, k, t, v, r, b, kind)[greek][0]
    assert round(float(got), 4) == want, greek


def test_bsm_with_zero_carry_is_black76_and_rho_forward_is_minus_t_v():
    f, k, t, v, r = 42.0, 40.0, 0.75, 0.35, 0.08
    a, b = bsm(f, k, t, v, r, 0.0, ["call", "put"]), black76(f, k, t, v, r, ["call", "put"])
    for c in ("price", "delta", "gamma", "vega", "theta"):
        np.testing.assert_allclose(a[c], b[c], rtol=1e-12, err_msg=c)
    np.testing.assert_allclose(a.delta_forward, a.delta, rtol=1e-15)
    np.testing.assert_allclose(a.rho_forward, -t * a.price, rtol=1e-15)


def test_bsm_default_carry_is_the_rate_and_bad_inputs_name_the_argument():
    assert (
        bsm(60.0, 65.0, 0.25, 0.3, 0.08).price[0] == bsm(60.0, 65.0, 0.25, 0.3, 0.08, 0.08).price[0]
    )
    with pytest.raises(cm.exceptions.PriceError, match=r"spot\[1\]"):
        bsm([1.0, -1.0], 1.0, 1.0, 0.2)
    with pytest.raises(cm.exceptions.PriceError, match=r"carry\[0\]"):
        bsm(1.0, 1.0, 1.0, 0.2, 0.0, float("nan"))


@settings(max_examples=150)
@given(
    st.floats(1.0, 1e5),
    st.floats(0.3, 3.0),
    st.floats(0.0, 3.0),
    st.floats(0.0, 2.0),
    st.floats(-0.05, 0.2),
    st.floats(-0.2, 0.2),
    st.booleans(),
)
def test_bsm_matches_the_reference_and_put_call_parity(s, moneyness, t, v, r, b, call):
    k = s * moneyness
    got = bsm(s, k, t, v, r, b, call)
    want = ref_bsm(s, k, t, v, r, b, call)
    for name, w in want.items():
        assert got[name][0] == pytest.approx(w, rel=1e-9, abs=1e-9 * s), name
    both = bsm(s, k, t, v, r, b, ["call", "put"])
    parity = s * math.exp((b - r) * t) - k * math.exp(-r * t)
    if v * math.sqrt(t) > 0:
        assert both.price[0] - both.price[1] == pytest.approx(parity, abs=1e-9 * s)
