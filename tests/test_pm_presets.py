"""OKX and Bybit portfolio-margin presets on the scenario machinery (docs/MODEL.md "Portfolio
presets"): the venues' published worked examples reproduced in the parts the presets model,
a small portfolio derived by hand from the published rules, and engine == reference
(hypothesis).

Sources (docs/SOURCES.md §9):

- OKX v5 API reference, POST /api/v5/account/position-builder, response example
  (https://www.okx.com/docs-v5/en/, as stored by openxapi/openxapi, samples/okx/rest/, commit
  e2791e42; ts 1736936801642 = 15 January 2025): a BTC risk unit short 10 BTC-USDT-SWAP and an
  LTC risk unit long 10 LTC-USDT-SWAP, with every MR1 scenario's P&L, MR1, MR4, MR6, mmr, imr.
- OKX, "OKX will further adjust portfolio margin parameters" (2 January 2025): MR1 spot shocks
  BTC/ETH ±0/4/8/12 %, LTC… ±0/6/12/18 %; MR6 extreme moves BTC/ETH ±24 %, LTC… ±36 %.
- OKX, "OKX to enhance new features in portfolio margin mode" (31 May 2024,
  https://aws.okx.com/it/help/okx-to-enhance-new-features-in-portfolio-margin-mode): MMR =
  Max[Max(MR1, MR2, MR6) + MR3 + MR4 + MR5, MR7]; 10 BTC spot against -1,000 BTCUSDT perpetual
  contracts: MR1 … MR6 = 0, MMR = MR7 = 3,020.87 USDT.
- Bybit v5 API reference, GET /v5/asset/portfolio-margin ("Get Portfolio Margin Info"),
  response example (bybit-exchange/docs docs/v5/asset/portfolio-margin.mdx, commit 0cc4a180):
  a long 0.038 BTCUSDT perpetual's P&L at price scales -0.1 … 0.1; assetIM 1274.8190514137673,
  assetMM 1062.3492095114727; contingencyComponents 57.69544638.
- Bybit Learn, "Bybit Portfolio Margin Model: Risk Parameter Adjustment in 2025": BTC and ETH
  price stress range ±10 % since 10 January 2025.
"""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.options import black76
from crossmargin.portfolio import (
    BYBIT_IM_FACTOR,
    OKX_EXTREME_WEIGHT,
    OKX_IM_FACTOR,
    PortfolioConfig,
    UnderlyingPortfolio,
    bybit,
    okx,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# --- OKX position-builder example (values copied from the response) -----------------------

OKX_BTC_MR1_VOLSAME = {
    "0": "0",
    "0.08": "-776.2739496480004",
    "-0.08": "776.2739496480004",
    "0.04": "-388.1369748240002",
    "0.12": "-1164.4109244719994",
    "-0.12": "1164.4109244719994",
    "-0.04": "388.1369748240002",
}
OKX_BTC = {
    "mr1": 1164.4109244719994,
    "mr4": 19.4098073796,
    "mr6": 1164.4109244720003,
    "mr6_pnl": -2328.8218489440005,
    "mr6_shock": 0.24,
    "mmr": 1183.8207318516002,
    "imr": 1538.9669514070802,
}
OKX_LTC_MR1_VOLSAME = {
    "0": "0",
    "-0.06": "-61.168909352399936",
    "0.06": "61.168909352399936",
    "-0.18": "-183.50672805719995",
    "0.18": "183.50672805719995",
    "0.12": "122.33781870480001",
    "-0.12": "-122.33781870480001",
}
OKX_LTC = {
    "mr1": 183.50672805719995,
    "mr4": 8.1562464,
    "mr6": 183.5067280572,
    "mr6_pnl": -367.0134561144,
    "mr6_shock": -0.36,
    "mmr": 191.6629744572,
    "imr": 249.16186679436,
}
OKX_DERIV_MMR = 1375.4837063088003


def okx_universe(btc_mark: float, ltc_mark: float, **pm_kw) -> cm.Universe:
    # BTC-USDT-SWAP: 0.01 BTC a contract (OKX instruments, tests/fixtures/venues/okx); the
    # LTC position is 10 LTC (delta 1019.53 USD at 102 USDT in the example): 1 LTC a contract.
    return cm.Universe(
        assets=[cm.Asset("USDT", 1.0), cm.Asset("BTC", btc_mark), cm.Asset("LTC", ltc_mark)],
        markets=[
            cm.Market(
                "BTC-USDT-SWAP",
                "perp",
                "USDT",
                "BTC",
                btc_mark,
                [(math.inf, 0.01, 0.004)],
                contract_size=0.01,
            ),
            cm.Market("LTC-USDT-SWAP", "perp", "USDT", "LTC", ltc_mark, [(math.inf, 0.02, 0.01)]),
        ],
        portfolio=PortfolioConfig(
            {"BTC": okx("BTC", **pm_kw), "LTC": okx("LTC", **pm_kw)}, im_factor=OKX_IM_FACTOR
        ),
    )


def book(*rows: tuple[str, float, float], balances: tuple[tuple[str, float], ...] = ()) -> cm.Book:
    return cm.Book.from_arrays(
        balances={
            "account": [1] * len(balances),
            "asset": [a for a, _ in balances],
            "qty": [q for _, q in balances],
        },
        positions={
            "account": [1] * len(rows),
            "market": [r[0] for r in rows],
            "qty": [r[1] for r in rows],
            "entry_price": [r[2] for r in rows],
        },
    )


def okx_marks() -> tuple[float, float]:
    # [derived] The USD value the scenarios move: the published P&L of the +4 % (BTC, short
    # 0.1 BTC) and +6 % (LTC, long 10 LTC) scenarios over the move and the size.
    btc = -float(OKX_BTC_MR1_VOLSAME["0.04"]) / 0.04 / 0.1
    ltc = float(OKX_LTC_MR1_VOLSAME["0.06"]) / 0.06 / 10.0
    return btc, ltc


def test_okx_grid_is_the_published_mr1_and_mr6_moves():
    # The example's MR1 scenario keys and MR6 worst-case spot shocks.
    for name, keys, extreme in (
        ("BTC", OKX_BTC_MR1_VOLSAME, OKX_BTC["mr6_shock"]),
        ("LTC", OKX_LTC_MR1_VOLSAME, OKX_LTC["mr6_shock"]),
    ):
        g = okx(name)
        full = sorted(p for p, _, w in g.scenarios if w == 1.0)
        assert full == pytest.approx(sorted(float(k) for k in keys), abs=1e-15)
        ext = sorted(p for p, _, w in g.scenarios if w < 1.0)
        assert ext == pytest.approx([-abs(extreme), abs(extreme)], abs=1e-15)


def test_okx_mr6_is_half_the_extreme_loss():
    # Published: mr6 = 1164.4109244720003 for an MR6 P&L of -2328.8218489440005 (BTC),
    # 183.5067280572 for -367.0134561144 (LTC).
    for unit in (OKX_BTC, OKX_LTC):
        assert unit["mr6"] == pytest.approx(-unit["mr6_pnl"] * OKX_EXTREME_WEIGHT, rel=1e-14)
    # The preset's extreme scenarios alone reproduce both units' mr6.
    btc, ltc = okx_marks()
    only_extreme = {"spot_shocks": ()}
    u = okx_universe(btc, ltc, **only_extreme)
    r = cm.Engine(u).evaluate(book(("BTC-USDT-SWAP", -10.0, 100_000.0)), model="portfolio")
    assert r.mm[0] == pytest.approx(OKX_BTC["mr6"], rel=1e-12)
    r = cm.Engine(u).evaluate(book(("LTC-USDT-SWAP", 10.0, 8000.0)), model="portfolio")
    assert r.mm[0] == pytest.approx(OKX_LTC["mr6"], rel=1e-12)


def test_okx_position_builder_example():
    btc, ltc = okx_marks()
    eng = cm.Engine(okx_universe(btc, ltc))
    b = book(("BTC-USDT-SWAP", -10.0, 100_000.0), ("LTC-USDT-SWAP", 10.0, 8000.0))
    r = eng.evaluate(b, model="portfolio")
    # Scenario part per unit = max(MR1, MR6); both units: MR1 (equal to MR6 for a perp).
    scan = max(OKX_BTC["mr1"], OKX_BTC["mr6"]) + max(OKX_LTC["mr1"], OKX_LTC["mr6"])
    assert r.mm[0] == pytest.approx(scan, rel=1e-12)
    # OKX's MMR adds MR4 (basis, not modelled; MR2, MR3, MR5 = 0 here): the gap is exactly
    # the two units' MR4, and derivMmr is their sum.
    for unit in (OKX_BTC, OKX_LTC):
        assert unit["mmr"] == pytest.approx(max(unit["mr1"], unit["mr6"]) + unit["mr4"], rel=1e-14)
    assert OKX_DERIV_MMR - r.mm[0] == pytest.approx(OKX_BTC["mr4"] + OKX_LTC["mr4"], rel=1e-9)
    # imr = 1.3 × mmr in both units; the engine's initial = im_factor × its maintenance.
    for unit in (OKX_BTC, OKX_LTC):
        assert unit["imr"] == pytest.approx(OKX_IM_FACTOR * unit["mmr"], rel=1e-14)
    assert r.im[0] == pytest.approx(OKX_IM_FACTOR * r.mm[0], rel=1e-12)


def test_okx_spot_hedged_perpetual_has_no_scenario_charge():
    # OKX (31 May 2024): BTC spot 10 BTC, BTCUSDT perpetual -1,000 contracts (0.01 BTC each):
    # MR1 … MR6 = 0, MMR = MR7 = 3,020.87 USDT (the minimum charge, not modelled).
    s = 60_000.0
    u = okx_universe(s, 100.0)
    r = cm.Engine(u).evaluate(
        book(("BTC-USDT-SWAP", -1000.0, s), balances=(("BTC", 10.0),)), model="portfolio"
    )
    assert r.mm[0] == pytest.approx(0.0, abs=1e-6)


# --- Bybit "Get Portfolio Margin Info" example ---------------------------------------------

BYBIT_PERP_PNL = {
    "-0.1": "-972.14482880",
    "-0.08": "-777.71586304",
    "-0.06": "-583.28689728",
    "-0.04": "-388.85793152",
    "-0.02": "-194.42896576",
    "0.0": "0.00000000",
    "0.02": "194.42896576",
    "0.04": "388.85793152",
    "0.06": "583.28689728",
    "0.08": "777.71586304",
    "0.1": "972.14482880",
}
BYBIT_ASSET_IM = 1274.8190514137673
BYBIT_ASSET_MM = 1062.3492095114727


def bybit_universe(s: float, pm: UnderlyingPortfolio) -> cm.Universe:
    return cm.Universe(
        assets=[cm.Asset("USDT", 1.0), cm.Asset("BTC", s)],
        markets=[
            cm.Market("BTCUSDT", "perp", "USDT", "BTC", s, [(math.inf, 0.01, 0.005)]),
            cm.Market(
                "BTC-C",
                "option",
                "USDT",
                "BTC",
                option_type="call",
                strike=s * 1.05,
                expiry=30 / 365,
                iv=0.6,
            ),
        ],
        portfolio=PortfolioConfig({"BTC": pm}, im_factor=BYBIT_IM_FACTOR),
    )


def test_bybit_grid_is_the_published_price_scales():
    moves = sorted({p for p, _, _ in bybit().scenarios})
    assert moves == pytest.approx(sorted(float(k) for k in BYBIT_PERP_PNL), abs=1e-15)
    assert {v for _, v, _ in bybit(vol_up=0.3, vol_down=-0.2).scenarios} == {0.3, 0.0, -0.2}


def test_bybit_perpetual_maximum_loss_and_im_factor():
    # [derived] the mark from the +2 % point: 194.42896576 / (0.02 × 0.038).
    s = float(BYBIT_PERP_PNL["0.02"]) / 0.02 / 0.038
    r = cm.Engine(bybit_universe(s, bybit())).evaluate(
        book(("BTCUSDT", 0.038, 75_995.4295)), model="portfolio"
    )
    # Maximum loss of the published range: -972.14482880 at -10 %, to Bybit's 8 decimals.
    worst = -min(float(v) for v in BYBIT_PERP_PNL.values())
    assert r.mm[0] == pytest.approx(worst, abs=5e-9)
    # assetIM = 1.2 × assetMM in the example; the engine's initial = 1.2 × maintenance.
    assert BYBIT_ASSET_IM == pytest.approx(BYBIT_IM_FACTOR * BYBIT_ASSET_MM, rel=1e-14)
    assert r.im[0] == pytest.approx(BYBIT_IM_FACTOR * r.mm[0], rel=1e-12)


# --- A small portfolio derived by hand from the published rules ---------------------------

S = 50_000.0
K = S * 1.05
T = 30 / 365
IV = 0.6


def by_hand(moves, vols, extremes, weight, q_perp, q_call):
    """max(0, worst weighted loss): perp P&L q·S·dp; call revalued with Black-76 at
    S(1 + dp) and IV·(1 + dv) (relative shocks, no expiry scaling)."""
    v0 = black76(S, K, T, IV, 0.0, "call").price
    losses = []
    for dp in moves:
        for dv in vols:
            v1 = black76(S * (1 + dp), K, T, IV * (1 + dv), 0.0, "call").price
            losses.append(-(q_perp * S * dp + q_call * (v1 - v0)))
    for dp in extremes:
        v1 = black76(S * (1 + dp), K, T, IV, 0.0, "call").price
        losses.append(-weight * (q_perp * S * dp + q_call * (v1 - v0)))
    return max(0.0, max(losses))


def test_okx_small_portfolio_by_hand():
    # Short 2 calls, long 1 BTC perp; vol shocks +30 % / -20 % (relative) for the test.
    moves = (0.0, 0.04, -0.04, 0.08, -0.08, 0.12, -0.12)
    want = by_hand(moves, (0.3, 0.0, -0.2), (0.24, -0.24), 0.5, 1.0, -2.0)
    u = bybit_universe(S, okx("BTC", vol_up=0.3, vol_down=-0.2))
    r = cm.Engine(u).evaluate(book(("BTCUSDT", 1.0, S), ("BTC-C", -2.0, 1000.0)), model="portfolio")
    assert want > 0
    assert r.mm[0] == pytest.approx(want, rel=1e-9)


def test_bybit_small_portfolio_by_hand():
    moves = [-0.1 + 0.02 * i for i in range(11)]
    want = by_hand(moves, (0.3, 0.0, -0.2), (), 1.0, -1.0, 3.0)
    u = bybit_universe(S, bybit(vol_up=0.3, vol_down=-0.2))
    r = cm.Engine(u).evaluate(book(("BTCUSDT", -1.0, S), ("BTC-C", 3.0, 1000.0)), model="portfolio")
    assert want > 0
    assert r.mm[0] == pytest.approx(want, rel=1e-9)


def test_presets_from_toml_tables():
    c = PortfolioConfig.from_dict(
        {
            "im_factor": OKX_IM_FACTOR,
            "underlyings": {"BTC": {"preset": "okx", "underlying": "BTC", "vol_up": 0.3}},
            "default": {"preset": "bybit", "price_range": 0.15},
        }
    )
    assert c.underlyings["BTC"] == okx("BTC", vol_up=0.3)
    assert c.default == bybit(price_range=0.15)
    with pytest.raises(cm.exceptions.ConfigError, match=r"bybit\.buckets"):
        bybit(buckets=1)


# --- engine == reference with the presets ---------------------------------------------------

U_OKX = bybit_universe(S, okx("BTC", vol_up=0.3, vol_down=-0.2))
U_BYBIT = bybit_universe(S, bybit(vol_up=0.3, vol_down=-0.2))
ENGINES = {id(u): cm.Engine(u) for u in (U_OKX, U_BYBIT)}
ENTRY = {"BTCUSDT": S, "BTC-C": 1000.0}


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([U_OKX, U_BYBIT]),
    st.lists(
        st.tuples(st.sampled_from(list(ENTRY)), st.floats(-20, 20), st.floats(0.8, 1.2)),
        min_size=1,
        max_size=2,
        unique_by=lambda r: r[0],
    ),
    st.sampled_from([None, {"BTC": 44_000.0}]),
)
def test_pm_presets_match_the_reference(u, rows, prices):
    b = book(*[(m, q, ENTRY[m] * e) for m, q, e in rows])
    for model in ("portfolio", "delta", "hybrid"):
        got = ENGINES[id(u)].evaluate(b, prices=prices, model=model)
        want = reference.evaluate(u, b, prices, model=model)
        for c in ("im", "mm", "adj_equity_maint", "equity"):
            np.testing.assert_allclose(got[c], want[c], rtol=1e-9, atol=1e-6, err_msg=c)
