"""Deribit's legacy portfolio margin on the scenario machinery (docs/MODEL.md "Portfolio
presets"): the published contingencies reproduced, the volatility shock scaled by
√(30 / days), and engine == reference with the preset (hypothesis).

Source: Deribit, "Portfolio margin" (https://www.deribit.com/docs/category/uncategorized/):
"maximum price move of +/- 12.5 %", "maximum implied volatility change of SQRT(30/days to
expiration)*40% (options expiring in 15 days: SQRT(30/15)*40% = 56.6 %)", "Contingency
component of 1 % of underlying value of all options in portfolio (200 options, long and short:
1 % of 200 BTC = 2 BTC)", "Contingency component of 2 % of underlying value is added for
offsetting futures (long 100 BTC in Future A, short 100 BTC in Future B: 2 BTC)".
"""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.options import black76
from crossmargin.portfolio import PortfolioConfig, UnderlyingPortfolio, deribit
from hypothesis import given, settings
from hypothesis import strategies as st

S = 50_000.0


def universe(pm: UnderlyingPortfolio) -> cm.Universe:
    return cm.Universe(
        assets=[cm.Asset("USDC", 1.0), cm.Asset("BTC", S, 0.9, 0.95)],
        markets=[
            cm.Market("BTC-F1", "future", "USDC", "BTC", S, [(math.inf, 0.03, 0.015)]),
            cm.Market("BTC-F2", "future", "USDC", "BTC", S, [(math.inf, 0.03, 0.015)]),
            cm.Market(
                "BTC-PERP",
                "perp",
                "BTC",
                "BTC",
                S,
                [(math.inf, 0.02, 0.01)],
                contract_size=10.0,
                inverse=True,
            ),
            cm.Market(
                "BTC-C60",
                "option",
                "USDC",
                "BTC",
                option_type="call",
                strike=60_000.0,
                expiry=15 / 365,
                iv=0.5,
            ),
            cm.Market(
                "BTC-P40",
                "option",
                "BTC",
                "BTC",
                option_type="put",
                strike=40_000.0,
                expiry=0.2,
                iv=0.7,
                inverse=True,
            ),
        ],
        portfolio=PortfolioConfig(default=pm),
    )


def book(*rows: tuple[str, float, float]) -> cm.Book:
    return cm.Book.from_arrays(
        positions={
            "account": [1] * len(rows),
            "market": [r[0] for r in rows],
            "qty": [r[1] for r in rows],
            "entry_price": [r[2] for r in rows],
        }
    )


def test_offsetting_futures_pay_two_percent():
    # Deribit: long 100 BTC in Future A, short 100 BTC in Future B → 2 BTC.
    eng = cm.Engine(universe(deribit()))
    r = eng.evaluate(book(("BTC-F1", 100.0, S), ("BTC-F2", -100.0, S)), model="portfolio")
    assert r.mm[0] == pytest.approx(2.0 * S, rel=1e-12)


def test_every_option_long_or_short_pays_one_percent():
    # Deribit: 200 options, long and short → 1 % of 200 BTC = 2 BTC on top of the scan.
    rows = (("BTC-C60", 100.0, 300.0), ("BTC-P40", -100.0, 0.01))
    with_c = cm.Engine(universe(deribit())).evaluate(book(*rows), model="portfolio").mm[0]
    without = cm.Engine(universe(deribit(option_contingency=0.0)))
    assert with_c - without.evaluate(book(*rows), model="portfolio").mm[0] == pytest.approx(
        2.0 * S, rel=1e-9
    )


def test_the_volatility_shock_scales_by_the_square_root_of_30_over_days():
    # 15 days: +40 % × √(30/15) = +56.6 % of the implied volatility.
    pm = UnderlyingPortfolio([(0.0, 0.40, 1.0)], vol_power=0.5, vol_relative=True)
    r = cm.Engine(universe(pm)).evaluate(book(("BTC-C60", -1.0, 300.0)), model="portfolio")
    shocked = 0.5 * (1 + 0.40 * math.sqrt(30 / 15))
    assert shocked == pytest.approx(0.5 * 1.566, abs=1e-3)
    loss = black76(S, 60_000.0, 15 / 365, [shocked, 0.5], 0.0, "call").price @ [1.0, -1.0]
    assert r.mm[0] == pytest.approx(loss, rel=1e-12)


def test_the_deribit_grid():
    g = deribit()
    assert len(g.scenarios) == 33
    assert max(p for p, _, _ in g.scenarios) == pytest.approx(0.125)
    assert {v for _, v, _ in g.scenarios} == {0.4, 0.0, -0.4}
    assert (g.vol_power, g.vol_relative, g.option_contingency, g.futures_offset) == (
        0.5,
        True,
        0.01,
        0.02,
    )


U = universe(deribit())
ENGINE = cm.Engine(U)
ENTRY = {"BTC-F1": S, "BTC-F2": S * 1.01, "BTC-PERP": S * 0.99, "BTC-C60": 300.0, "BTC-P40": 0.01}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(ENTRY)), st.floats(-50, 50), st.floats(0.8, 1.2)),
        max_size=5,
        unique_by=lambda r: r[0],
    ),
    st.sampled_from([None, {"BTC": 45_000.0}]),
)
def test_deribit_preset_matches_the_reference(rows, prices):
    b = book(*[(m, q, ENTRY[m] * e) for m, q, e in rows]) if rows else book(("BTC-F1", 0.0, S))
    for model in ("portfolio", "delta", "hybrid"):
        got = ENGINE.evaluate(b, prices=prices, model=model)
        want = reference.evaluate(U, b, prices, model=model)
        for c in ("im", "mm", "adj_equity_maint", "equity"):
            np.testing.assert_allclose(got[c], want[c], rtol=1e-9, atol=1e-6, err_msg=c)
