"""Scenario stress and reverse stress: the one-pass kernel equals one evaluation per
scenario; presets are well-formed; reverse stress finds the smallest exhausting move."""

from __future__ import annotations

import math
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import _core, reference, synth
from crossmargin.risk import stress
from crossmargin.risk.stress import PRESETS, preset, presets, scenario_prices
from crossmargin.testing import universe_and_book
from helpers import book
from hypothesis import given, settings
from hypothesis import strategies as st


def test_matrix_and_totals_equal_one_evaluation_per_scenario(demo: cm.Universe) -> None:
    b = synth.generate(demo, n_accounts=2_000, seed=5)
    eng = cm.Engine(demo)
    scen = {"flat": {}, "crash": {"BTC": -0.3, "ETH": -0.35, "SOL": -0.4}, "pump": {"BTC": 0.25}}
    st_ = eng.stress(b, scen, insurance_fund=1e6)
    assert st_.matrix.shape == (b.n_accounts, 3) and st_.matrix.dtype == np.float64
    assert list(st_.names) == list(scen)
    for j, (name, moves) in enumerate(scen.items()):
        a, m, _ = scenario_prices(demo, name, moves)
        r = eng.evaluate(b, prices=(a, m))
        gap = r.adj_equity_maint - r.mm
        np.testing.assert_array_equal(st_.matrix[:, j], gap)
        row = {k: st_.scenarios[k][j] for k in st_.scenarios.columns}
        assert row["liquidatable"] == r.liquidatable.sum()
        assert row["bankrupt"] == r.bankrupt.sum()
        assert row["shortfall"] == pytest.approx(np.maximum(-gap, 0).sum(), rel=1e-12)
        assert row["bad_debt"] == pytest.approx(np.maximum(-r.equity, 0).sum(), rel=1e-12)
        assert row["fund_exhausted"] == (row["bad_debt"] > 1e6)
    assert st_.matrix_frame().shape == (b.n_accounts, 3)


def test_a_book_grouped_into_the_layout_is_stressed_without_rebuilding_its_rows(
    demo: cm.Universe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where every group runs SIMD, stress reads the kernel's layout alone: the book's
    per-account rows (what liquidation prices build) are not rebuilt for it, and the
    result is bit for bit the one computed with them, at every SIMD level."""
    scen = {"crash": {"BTC": -0.3, "ETH": -0.35}, "pump": {"SOL": 0.4}}
    eng = cm.Engine(demo)
    results = {}
    for level in _core.simd_levels()[0]:
        monkeypatch.setenv("CROSSMARGIN_SIMD", level)
        b = synth.generate(demo, n_accounts=3_000, seed=11)
        held = b.grouped_nbytes
        first = eng.stress(b, scen, insurance_fund=1e6)
        if level != "scalar":  # the scalar level reads the rows, which it builds
            assert b.grouped_nbytes == held
        eng.liquidation_prices(b)  # builds the rows
        assert b.grouped_nbytes > held
        again = eng.stress(b, scen, insurance_fund=1e6)
        np.testing.assert_array_equal(first.matrix, again.matrix)
        for k in first.scenarios.columns:
            np.testing.assert_array_equal(first.scenarios[k], again.scenarios[k])
        results[level] = first.matrix
    for m in results.values():
        np.testing.assert_array_equal(m, results["scalar"])


def test_an_underlying_move_equals_the_same_price_override(small: cm.Universe) -> None:
    """{"BTC": -0.2} moves BTC markets and the BTC asset like prices={"BTC": 40,000}."""
    b = book(
        bal=[(1, "BTC", 1.0), (1, "USDT", -20_000.0), (2, "USDT", 5_000.0)],
        pos=[
            (1, "BTCUSDT", 0.5, 50_000.0),
            (2, "BTCUSD", -100.0, 50_000.0),
            (2, "ETHUSDT", 2.0, 2e3),
        ],
    )
    eng = cm.Engine(small)
    got = eng.stress(b, {"s": {"BTC": -0.2, "ETHUSDT": 0.1}}).matrix[:, 0]
    r = eng.evaluate(b, prices={"BTC": 40_000.0, "ETHUSDT": 2_200.0})
    np.testing.assert_allclose(got, r.adj_equity_maint - r.mm, rtol=1e-12)


def test_results_do_not_depend_on_thread_count(demo: cm.Universe) -> None:
    b = synth.generate(demo, n_accounts=5_000, seed=2)
    scen = presets(demo)
    one = cm.Engine(demo, threads=1).stress(b, scen)
    two = cm.Engine(demo, threads=2).stress(b, scen)
    np.testing.assert_array_equal(one.matrix, two.matrix)
    for c in one.scenarios.columns:
        np.testing.assert_array_equal(one.scenarios[c], two.scenarios[c])


def test_presets_cite_four_black_swan_days_and_fit_any_universe(demo: cm.Universe) -> None:
    assert set(PRESETS) == {"2020-03-12", "2021-05-19", "2022-11-ftx", "2025-10-10"}
    for name, moves in PRESETS.items():
        assert moves["BTC"] < 0 and all(-1 < v < 0 for v in moves.values()), name
    # Symbols the universe lacks (DOGE, XRP) are dropped; the rest kept.
    assert set(preset("2021-05-19", demo)) == {"BTC", "ETH", "SOL"}
    assert preset("2020-03-12")["BTC"] == -0.50
    with pytest.raises(cm.ConfigError, match="preset"):
        preset("1987-10-19")


def test_bad_scenarios_name_the_key(small: cm.Universe) -> None:
    eng = cm.Engine(small)
    b = book(bal=[(1, "USDT", 1.0)])
    with pytest.raises(cm.ConfigError, match=r"scenarios\[x\]\[DOGE\]"):
        eng.stress(b, {"x": {"DOGE": -0.1}})
    with pytest.raises(cm.ConfigError, match="> -1"):
        eng.stress(b, {"x": {"BTC": -1.0}})
    with pytest.raises(cm.ConfigError, match=r"vol\]\[XRP"):
        eng.stress(b, {"x": {"vol": {"XRP": 0.5}}})
    r = eng.stress(b, {"x": {"BTC": -0.1, "vol": {"BTC": 0.5}}})
    assert r.vol_moves == {"x": {"BTC": 0.5}}
    with pytest.raises(cm.ConfigError, match="insurance_fund"):
        eng.stress(b, {}, insurance_fund=-1.0)
    empty = eng.stress(b, {})
    assert empty.matrix.shape == (1, 0) and len(empty.scenarios) == 0


@settings(max_examples=40)
@given(universe_and_book(max_rows=16), st.lists(st.floats(-0.9, 2.0), min_size=1, max_size=4))
def test_stress_agrees_with_the_reference(ub: Any, moves: list[float]) -> None:
    u, rb = ub
    b = rb.book(u)
    scen = {f"s{i}": {x: mv for x in u.underlyings} for i, mv in enumerate(moves)}
    got = cm.Engine(u, threads=1).stress(b, scen)
    for j, (name, mv) in enumerate(scen.items()):
        a, m, _ = scenario_prices(u, name, mv)
        want = reference.evaluate(u, b, prices=(a, m))
        gap = want.adj_equity_maint - want.mm
        scale = 1.0 + np.abs(want.adj_equity_maint) + np.abs(want.mm) + np.abs(want.equity)
        np.testing.assert_allclose(got.matrix[:, j] / scale, gap / scale, rtol=0, atol=1e-9)


# ---- reverse stress ----------------------------------------------------------------------
def long_book() -> tuple[cm.Universe, cm.Book]:
    """Four accounts long 1 BTC at 50,000 with 10,000·(1 + i) USDT: account i is bankrupt
    once BTC falls by more than 20 %·(1 + i)."""
    u = cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", 50_000.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 50_000.0, [(math.inf, 0.02, 0.01)])],
    )
    b = book(
        bal=[(i, "USDT", 10_000.0 * (1 + i)) for i in range(4)],
        pos=[(i, "BTCUSDT", 1.0, 50_000.0) for i in range(4)],
    )
    return u, b


def test_reverse_stress_finds_the_move_where_bad_debt_exceeds_the_fund() -> None:
    u, b = long_book()
    eng = cm.Engine(u)
    # Bad debt at a fall f: Σ_i max(50,000·f − 10,000·(1 + i), 0). A fund of 5,000 is
    # exhausted just past f = 0.3 (account 0 owes 50,000·0.3 − 10,000 = 5,000).
    rs = eng.reverse_stress(b, insurance_fund=5_000.0, tol=1e-7)
    assert rs.move == pytest.approx(-0.3, abs=1e-6)
    assert rs.loss > 5_000.0 and rs.monotone
    assert rs.per_underlying.underlying.tolist() == ["BTC"]
    assert rs.per_underlying.move[0] == pytest.approx(-0.3, abs=1e-6)
    # Shortfall is exceeded sooner than bad debt.
    rs2 = eng.reverse_stress(b, insurance_fund=5_000.0, measure="shortfall", tol=1e-7)
    assert -0.3 < rs2.move < 0
    # Nothing exhausts a fund of 1e9 within a 99 % fall; upward a long book never loses.
    assert math.isnan(eng.reverse_stress(b, insurance_fund=1e9).move)
    assert math.isnan(eng.reverse_stress(b, insurance_fund=0.0, direction=1).move)
    # A book already in bad debt exhausts an empty fund at no move.
    under = book(bal=[(9, "USDT", -1.0)])
    assert eng.reverse_stress(under, insurance_fund=0.0).move == 0.0


def test_reverse_stress_at_the_result_exceeds_and_just_before_does_not() -> None:
    u, b = long_book()
    eng = cm.Engine(u)
    rs = eng.reverse_stress(b, insurance_fund=12_345.0, tol=1e-6)
    at = eng.stress(b, {"at": {"BTC": rs.move}, "before": {"BTC": rs.move + 2e-6}}, 12_345.0)
    assert at.scenarios.fund_exhausted.tolist() == [True, False]


def test_reverse_stress_checks_its_arguments(small: cm.Universe) -> None:
    eng = cm.Engine(small)
    b = book(bal=[(1, "USDT", 1.0)])
    with pytest.raises(cm.ConfigError, match="direction"):
        eng.reverse_stress(b, 1.0, direction=0)
    with pytest.raises(cm.ConfigError, match="underlyings"):
        eng.reverse_stress(b, 1.0, underlyings=["DOGE"])
    with pytest.raises(cm.ConfigError, match="measure"):
        eng.reverse_stress(b, 1.0, measure="loss")  # type: ignore[arg-type]
    with pytest.raises(cm.ConfigError, match="max_move"):
        eng.reverse_stress(b, 1.0, max_move=1.5)


def test_module_exports() -> None:
    assert callable(stress.stress) and callable(stress.reverse_stress)
