"""Liquidation cascades (rules in docs/MODEL.md, "Liquidation cascades"):
a hand-computed cascade, the exact ledger, determinism, monotonicity, fund exhaustion and
deleveraging, a scenario modelled on 10 Oct 2025, and the configuration errors."""

from __future__ import annotations

import math
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import synth
from crossmargin.cascade import CascadeConfig, DepthCurve, NoImpact, SqrtImpact
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INF = math.inf


def btc_universe() -> cm.Universe:
    """USDT and one linear BTC perp at 100 with one bracket: 10% initial, 5% maintenance."""
    return cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", 100.0, 0.9, 0.95, 1.2, 1.1)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 100.0, [(INF, 0.10, 0.05)])],
    )


def longs(cash: list[float], qty: float = 10.0, entry: float = 100.0) -> cm.Book:
    n = len(cash)
    return cm.Book.from_arrays(
        balances={"account": np.arange(1, n + 1), "asset": ["USDT"] * n, "qty": cash},
        positions={
            "account": np.arange(1, n + 1),
            "market": ["BTCUSDT"] * n,
            "qty": [qty] * n,
            "entry_price": [entry] * n,
        },
    )


# A linear book: 1,000 USD of depth per 10% of price, no replenishment.
LINEAR_DEPTH = DepthCurve([(0.1, 1000.0)])


def test_three_account_cascade_by_hand() -> None:
    """One liquidation moves the mark and drags the next account under, twice.

    Three accounts, each long 10 BTC from 100, holding 100, 150 and 200 USDT. An account is
    liquidatable when cash + 10·(m − 100) < 0.05·10·m, i.e. below m = 94.74, 89.47, 84.21.
    The book holds 1,000 USD per 10% of price (distance = notional / 10,000); decay 0; no fee;
    full liquidation.

    - Shock −6%: mark 94. Account 1 only. It sells 10 BTC = 940 USD: the walk reaches 9.4%
      and fills at the average, 4.7%: 94·0.953 = 89.582. Realised 10·(89.582 − 100) = −104.18;
      cash −4.18: bankrupt, the fund takes the −4.18. Mark → 94·0.906 = 85.164.
    - Round 1 at 85.164 (< 89.47): account 2 sells 851.64 USD, reaching 8.5164%, filling at
      85.164·(1 − 0.042582). Mark → 85.164·(1 − 0.085164) = 77.911.
    - Round 2 at 77.911 (< 84.21): account 3, the same way. Then no account is left.
    """
    u = btc_universe()
    cfg = CascadeConfig(
        shock={"BTC": -0.06},
        liquidity=LINEAR_DEPTH,
        decay=0.0,
        liquidation_fee=0.0,
        partial_fraction=1.0,
        insurance_fund={"USDT": 1000.0},
    )
    r = cm.Engine(u).cascade(longs([100.0, 150.0, 200.0]), cfg)

    marks, fills, cash = [94.0], [], [100.0, 150.0, 200.0]
    for _ in range(3):
        m = marks[-1]
        reach = 10 * m / 10_000
        fills.append(m * (1 - reach / 2))
        marks.append(m * (1 - reach))
    debts = [-(c + 10 * (f - 100.0)) for c, f in zip(cash, fills, strict=True)]
    assert debts[0] == pytest.approx(4.18, abs=1e-9)

    assert list(r.rounds.round) == [0, 1, 2]
    assert list(r.rounds.accounts_liquidated) == [1, 1, 1]
    np.testing.assert_allclose(r.rounds.mark_BTCUSDT, marks[:3], rtol=1e-12)
    closes = r.events.to_pandas().query("kind == 'liquidation'")
    assert list(closes.account) == [1, 2, 3]
    np.testing.assert_allclose(closes.price, fills, rtol=1e-12)
    np.testing.assert_allclose(closes.qty, [-10.0] * 3)
    bankrupt = r.events.to_pandas().query("kind == 'bankruptcy'")
    assert list(bankrupt.account) == [1, 2, 3]
    np.testing.assert_allclose(bankrupt.bad_debt_usd, debts, rtol=1e-9)
    assert r.bad_debt == pytest.approx(sum(debts), rel=1e-9)
    assert r.insurance_fund == pytest.approx(1000.0 - sum(debts), abs=1e-8)
    assert len(r.final_book.positions["qty"]) == 0
    assert r.check_conservation()


def test_fund_exhaustion_then_adl_covers_the_rest() -> None:
    """With a 1 USDT fund, the bankrupt long's deficit beyond it is taken from the profitable
    short on the other side (ranked first: the only one), at its entry price."""
    u = btc_universe()
    book = cm.Book.from_arrays(
        balances={"account": [1, 2, 3], "asset": ["USDT"] * 3, "qty": [100.0, 1000.0, 1000.0]},
        positions={
            "account": [1, 2, 3],
            "market": ["BTCUSDT"] * 3,
            "qty": [10.0, -5.0, -5.0],
            "entry_price": [100.0, 100.0, 110.0],
        },
    )
    cfg = CascadeConfig(
        shock={"BTC": -0.20},
        liquidity=NoImpact(),
        liquidation_fee=0.0,
        partial_fraction=1.0,
        insurance_fund={"USDT": 1.0},
    )
    r = cm.Engine(u).cascade(book, cfg)
    ev = r.events.to_pandas()
    # Long closes at 80: −200 realised on 100 cash → 100 of bad debt; fund pays 1.
    assert ev.query("kind == 'bankruptcy'").bad_debt_usd.sum() == pytest.approx(100.0)
    adl = ev.query("kind == 'adl'")
    # Both shorts profit; account 3 (entry 110: profit 30/550 = 5.45% vs 4%, same leverage
    # order) ranks first and covers 99 of its 150 profit: 99/150 of its 5 contracts.
    assert list(adl.account) == [3]
    assert adl.bad_debt_usd.sum() == pytest.approx(99.0, abs=1e-8)
    assert adl.qty.iloc[0] == pytest.approx(5.0 * 99.0 / 150.0)
    assert adl.price.iloc[0] == 110.0
    assert r.insurance_fund == pytest.approx(0.0, abs=1e-8)
    assert r.uncovered_bad_debt == pytest.approx(0.0, abs=1e-8)
    assert r.check_conservation()


def test_socialized_loss_spreads_the_deficit_pro_rata_to_profit() -> None:
    u = btc_universe()
    book = cm.Book.from_arrays(
        balances={"account": [1, 2, 3], "asset": ["USDT"] * 3, "qty": [100.0, 1000.0, 1000.0]},
        positions={
            "account": [1, 2, 3],
            "market": ["BTCUSDT"] * 3,
            "qty": [10.0, -5.0, -10.0],
            "entry_price": [100.0, 100.0, 100.0],
        },
    )
    cfg = CascadeConfig(
        shock={"BTC": -0.20},
        liquidity=NoImpact(),
        liquidation_fee=0.0,
        partial_fraction=1.0,
        deleverage="socialized_loss",
    )
    r = cm.Engine(u).cascade(book, cfg)
    loss = r.events.to_pandas().query("kind == 'socialized_loss'").set_index("account").bad_debt_usd
    # 100 of deficit over profits of 100 and 200.
    assert loss[2] == pytest.approx(100.0 / 3, abs=1e-8)
    assert loss[3] == pytest.approx(200.0 / 3, abs=1e-8)
    # Positions stay; balances pay.
    assert sorted(r.final_book.positions["qty"]) == [-10.0, -5.0]
    assert r.check_conservation()


def test_without_deleveraging_the_fund_goes_negative() -> None:
    u = btc_universe()
    cfg = CascadeConfig(
        shock={"BTC": -0.20},
        liquidity=NoImpact(),
        liquidation_fee=0.0,
        partial_fraction=1.0,
        deleverage="none",
    )
    r = cm.Engine(u).cascade(longs([100.0]), cfg)
    assert r.uncovered_bad_debt == pytest.approx(100.0)
    assert r.insurance_fund == pytest.approx(-100.0)
    assert r.check_conservation()


def test_fees_go_to_the_fund_but_never_create_bad_debt() -> None:
    u = btc_universe()
    cfg = CascadeConfig(
        shock={"BTC": -0.055},
        liquidity=NoImpact(),
        liquidation_fee=0.01,
        partial_fraction=1.0,
    )
    # Cash 100, long 10 from 100, mark 94.5: equity 45 < mm 47.25; fee 1% of 945 = 9.45.
    r = cm.Engine(u).cascade(longs([100.0]), cfg)
    assert r.fees == pytest.approx(9.45)
    assert r.bad_debt == 0.0
    np.testing.assert_allclose(r.final_book.balances["qty"], [45.0 - 9.45])
    # Cash 55: equity after the close is 0; the fee takes nothing and leaves no debt.
    r = cm.Engine(u).cascade(longs([55.0]), cfg)
    assert r.fees == 0.0 and r.bad_debt == 0.0


def test_partial_liquidation_closes_slices_until_safe() -> None:
    u = btc_universe()
    cfg = CascadeConfig(
        shock={"BTC": -0.06},
        liquidity=NoImpact(),
        liquidation_fee=0.0,
        partial_fraction=0.2,
    )
    # Cash 100, long 10 at mark 94: equity 40 < mm 47. One 20% slice: mm 37.6 < 40.
    r = cm.Engine(u).cascade(longs([100.0]), cfg)
    closes = r.events.to_pandas()
    assert list(closes.kind) == ["liquidation"]
    assert closes.qty.iloc[0] == pytest.approx(-2.0)
    np.testing.assert_allclose(r.final_book.positions["qty"], [8.0])
    after = cm.Engine(u).evaluate(r.final_book, prices={"BTC": 94.0})
    assert not after.liquidatable.any()


def test_isolated_positions_are_liquidated_on_their_own_margin() -> None:
    u = btc_universe()
    book = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["USDT"], "qty": [10_000.0]},
        positions={
            "account": [1],
            "market": ["BTCUSDT"],
            "qty": [10.0],
            "entry_price": [100.0],
            "isolated_margin": [80.0],
        },
    )
    cfg = CascadeConfig(shock={"BTC": -0.10}, liquidity=NoImpact(), liquidation_fee=0.0)
    r = cm.Engine(u).cascade(book, cfg)
    ev = r.events.to_pandas()
    # Margin 80 − loss 100: its own equity is gone, it closes whole; the fund pays 20 and
    # the wallet's 10,000 is untouched.
    assert list(ev.kind) == ["isolated", "bankruptcy"]
    assert ev.bad_debt_usd.iloc[1] == pytest.approx(20.0)
    np.testing.assert_allclose(r.final_book.balances["qty"], [10_000.0])
    assert r.check_conservation()


def test_a_path_settles_each_step_before_the_next() -> None:
    u = btc_universe()
    cfg = CascadeConfig(
        path=[{"BTC": -0.06}, {"BTC": -0.12}],
        liquidity=NoImpact(),
        liquidation_fee=0.0,
        partial_fraction=1.0,
    )
    r = cm.Engine(u).cascade(longs([100.0, 150.0, 200.0]), cfg)
    closes = r.events.to_pandas().query("kind == 'liquidation'")
    assert list(zip(closes.step, closes.account, strict=True)) == [(0, 1), (1, 2)]


def test_round_limit_truncates_and_says_so() -> None:
    u = btc_universe()
    cfg = CascadeConfig(
        shock={"BTC": -0.06}, liquidity=LINEAR_DEPTH, decay=0.0, partial_fraction=1.0, max_rounds=1
    )
    with pytest.warns(cm.exceptions.TruncatedWarning, match="step"):
        r = cm.Engine(u).cascade(longs([100.0, 150.0, 200.0]), cfg)
    assert r.truncated and len(r.rounds) == 1 and r.truncated_steps == (0,)
    assert r.summary()["truncated_steps"] == [0]
    assert r.check_conservation()


def test_round_limit_is_per_step_and_later_steps_still_run() -> None:
    # One round per step: the first step is cut short (accounts still liquidatable), and
    # the second step's prices still apply — a long tail in step 0 does not swallow step 1.
    u = btc_universe()
    cfg = CascadeConfig(
        path=[{"BTC": -0.06}, {"BTC": -0.5}],
        liquidity=LINEAR_DEPTH,
        decay=0.0,
        partial_fraction=1.0,
        max_rounds=1,
    )
    with pytest.warns(cm.exceptions.TruncatedWarning):
        r = cm.Engine(u).cascade(longs([100.0, 150.0, 200.0]), cfg)
    steps = r.rounds.to_pandas().step.tolist()
    assert steps == [0, 1] and r.truncated_steps[0] == 0
    uncut = cm.Engine(u).cascade(
        longs([100.0, 150.0, 200.0]), CascadeConfig(**{**cfg.__dict__, "max_rounds": 100})
    )
    assert not uncut.truncated

    def liquidated(res: Any) -> set[int]:
        ev = res.events.to_pandas()
        return set(ev[ev.kind == "liquidation"].account)

    # the old rule (max_rounds over the whole path, the rest skipped) left accounts standing
    assert liquidated(r) == liquidated(uncut) and len(liquidated(r)) == 3


# ---- properties on synthetic exchanges -------------------------------------------------------
DEMO = cm.Universe.demo()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    move=st.floats(-0.5, 0.3),
    fee=st.floats(0.0, 0.02),
    fraction=st.floats(0.05, 1.0),
    deleverage=st.sampled_from(["adl", "socialized_loss", "none"]),
    fund=st.floats(0.0, 1e6),
    liquidity=st.sampled_from(
        [SqrtImpact(), NoImpact(), DepthCurve([(0.001, 1e5), (0.02, 1e5), (0.05, 5e6)])]
    ),
)
def test_cascade_conserves_ledger_exactly(
    seed: int,
    move: float,
    fee: float,
    fraction: float,
    deleverage: str,
    fund: float,
    liquidity: object,
) -> None:
    book = synth.generate(DEMO, n_accounts=300, seed=seed)
    cfg = CascadeConfig(
        shock={"BTC": move, "ETH": move * 1.2, "SOL": move * 1.5},
        insurance_fund=fund,
        liquidation_fee=fee,
        partial_fraction=fraction,
        deleverage=deleverage,  # type: ignore[arg-type]
        liquidity=liquidity,  # type: ignore[arg-type]
        max_rounds=30,
    )
    r = cm.Engine(DEMO).cascade(book, cfg)
    assert r.check_conservation()
    assert (r.ledger.total_before == r.ledger.total_after).all()


def test_event_logs_do_not_depend_on_thread_count() -> None:
    book = synth.generate(DEMO, n_accounts=20_000, seed=11)
    cfg = CascadeConfig(shock={"BTC": -0.3, "ETH": -0.35, "SOL": -0.4}, insurance_fund=1e5)
    one = cm.Engine(DEMO, threads=1).cascade(book, cfg)
    two = cm.Engine(DEMO, threads=2).cascade(book, cfg)
    four = cm.Engine(DEMO, threads=4).cascade(book, cfg)
    for other in (two, four):
        for c in one.events.columns:
            np.testing.assert_array_equal(one.events[c], other.events[c])
        for c in one.rounds.columns:
            np.testing.assert_array_equal(one.rounds[c], other.rounds[c])
        assert one.bad_debt == other.bad_debt and one.insurance_fund == other.insurance_fund


def test_the_final_book_handed_over_grouped_is_the_book_its_columns_make() -> None:
    # The core hands the final book over with its grouping (not regrouped in Python): it
    # evaluates as the book built from its own columns does, bit for bit.
    book = synth.generate(DEMO, n_accounts=5_000, seed=5)
    engine = cm.Engine(DEMO)
    r = engine.cascade(book, synth.demo_crash(DEMO))
    assert len(r.events) > 0
    final = r.final_book
    again = cm.Book.from_arrays(dict(final.balances), dict(final.positions))
    assert final.has_sides == again.has_sides and not final.has_orders
    got, want = engine.evaluate(final), engine.evaluate(again)
    for c in want.columns:
        np.testing.assert_array_equal(np.asarray(got[c]), np.asarray(want[c]), err_msg=c)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), a=st.floats(0.0, 0.6), b=st.floats(0.0, 0.6))
def test_a_larger_shock_never_liquidates_fewer_accounts(seed: int, a: float, b: float) -> None:
    """Without impact feedback, on a long-only book (a fall only hurts), a deeper fall never
    liquidates fewer accounts."""
    small, large = sorted((a, b))
    book = synth.generate(DEMO, n_accounts=400, seed=seed)
    p = book.positions
    book = cm.Book.from_arrays(
        {k: v if k != "asset" else v.codes for k, v in book.balances.items()}
        | {"qty": np.abs(book.balances["qty"])},
        {k: v if k != "market" else v.codes for k, v in p.items()} | {"qty": np.abs(p["qty"])},
    )

    def liquidated(move: float) -> int:
        cfg = CascadeConfig(
            shock={u: -move for u in DEMO.underlyings}, liquidity=NoImpact(), insurance_fund=1e9
        )
        r = cm.Engine(DEMO).cascade(book, cfg)
        return len(np.unique(r.events.account[np.isin(r.events.kind, ["liquidation", "isolated"])]))

    assert liquidated(large) >= liquidated(small)


def test_october_2025_style_crash_on_a_thin_book() -> None:
    """A crash modelled on 10 Oct 2025, when a tariff headline set off the largest liquidation
    event on record (Coinglass: $19.38 bn liquidated in 24 h, ~$16.9 bn of it longs, ~1.6 m
    accounts). Within about 45 minutes BTC fell ~12% (122k → 107k), ETH ~16%, SOL ~31%
    (figures as reported from Coinglass by yellow.com/research/trump-100-china-tariff-how-one-
    announcement-liquidated-dollar19-billion-in-crypto and coinfeather.com's report of the
    same day). Modelled as a three-step path (a third, two thirds, all of the fall) on a book
    with little depth near the mark and a gap before deeper bids, as market makers pulled
    liquidity that night."""
    book = synth.generate(DEMO, n_accounts=20_000, seed=2025)
    moves = {"BTC": -0.12, "ETH": -0.16, "SOL": -0.31}
    path = [{k: v * f for k, v in moves.items()} for f in (1 / 3, 2 / 3, 1.0)]
    thin = DepthCurve([(0.002, 2e5), (0.03, 2e5), (0.08, 2e7)])
    cfg = CascadeConfig(path=path, liquidity=thin, insurance_fund=2e6, partial_fraction=0.25)
    r = cm.Engine(DEMO).cascade(book, cfg)
    s = r.summary()
    assert r.check_conservation()
    assert s["accounts_liquidated"] > 0 and not s["truncated"]
    assert set(r.events.step) == {0, 1, 2}
    # Liquidation flow pushes marks below the path: the cascade deepens the crash.
    assert r.rounds.mark_SOLUSDT.min() < 140.0 * (1 - 0.31)
    # Longs dominate the liquidations, as on the day.
    closes = r.events.to_pandas().query("kind in ['liquidation', 'isolated']")
    assert (closes.qty < 0).sum() > (closes.qty > 0).sum()


# ---- configuration errors ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shock": {"DOGE": -0.1}}, "cascade.shock[DOGE]"),
        ({"shock": {"BTC": -1.5}}, "cascade.shock[BTC]"),
        ({"insurance_fund": {"XXX": 1.0}}, "cascade.insurance_fund[XXX]"),
        ({"liquidity": {"XXXUSDT": NoImpact()}}, "cascade.liquidity[XXXUSDT]"),
    ],
)
def test_bad_cascade_configs_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(cm.ConfigError) as e:
        cm.Engine(btc_universe()).cascade(longs([100.0]), CascadeConfig(**kwargs))
    assert e.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"partial_fraction": 0.0}, "cascade.partial_fraction"),
        ({"decay": 1.5}, "cascade.decay"),
        ({"liquidation_fee": -0.1}, "cascade.liquidation_fee"),
        # liquidity models check themselves when built
        (lambda: {"liquidity": DepthCurve([(0.02, 1.0), (0.01, 2.0)])}, "depth[1].distance"),
        (lambda: {"liquidity": SqrtImpact(daily_volume=0.0)}, "daily_volume"),
        ({"deleverage": "pray"}, "cascade.deleverage"),
    ],
)
def test_bad_cascade_parameters_are_config_errors(kwargs: Any, text: str) -> None:
    with pytest.raises(cm.ConfigError, match=text.replace("[", r"\[").replace("]", r"\]")):
        given = kwargs() if callable(kwargs) else kwargs
        cm.Engine(btc_universe()).cascade(longs([100.0]), CascadeConfig(**given))


def test_shock_and_path_are_exclusive() -> None:
    with pytest.raises(cm.ConfigError):
        CascadeConfig(shock={"BTC": -0.1}, path=[{"BTC": -0.1}])
