"""Capital efficiency: isolated vs cross requirement, utilisation and leverage."""

from __future__ import annotations

import math
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import engine as engine_module
from crossmargin import reference, synth
from crossmargin.testing import universe_and_book
from helpers import book
from hypothesis import given, settings


def test_cross_nets_profit_against_loss(small: cm.Universe) -> None:
    """Long 1 BTC from 40,000 (+10,000, IM 1,000 at 2 %); short 10 ETH from 1,800 (−2,000,
    IM 1,000 at 5 %) — one cross, one isolated in the book; both treated alike here."""
    b = book(
        bal=[(7, "USDT", 1_000.0)],
        pos=[(7, "BTCUSDT", 1.0, 40_000.0), (7, "ETHUSDT", -10.0, 1_800.0, 300.0)],
    )
    ce = cm.Engine(small).capital_efficiency(b)
    row = {c: ce.accounts[c][0].item() for c in ce.accounts.columns}
    # IM: 50,000 × 2 % − 0 (first bracket to 50,000) = 1,000; ETH 20,000 × 10 % − 500 = 1,500.
    assert row["im_as_cross"] == pytest.approx(2_500.0)
    # Pool contributions: BTC +10,000 (upnl weight 1); ETH −2,000.
    assert row["required_isolated"] == pytest.approx(0.0 + 1_500.0 + 2_000.0)
    assert row["required_cross"] == pytest.approx(0.0)
    assert row["savings"] == pytest.approx(3_500.0)
    assert row["savings_fraction"] == pytest.approx(1.0)
    equity = 1_000.0 + 300.0 + 10_000.0 - 2_000.0
    assert row["equity"] == pytest.approx(equity)
    assert row["utilisation"] == pytest.approx(2_500.0 / equity)
    assert row["leverage"] == pytest.approx(70_000.0 / equity)
    agg = ce.aggregate
    assert agg["savings"] == pytest.approx(3_500.0) and agg["accounts"] == 1


def test_no_positions_and_negative_equity(small: cm.Universe) -> None:
    b = book(
        bal=[(1, "USDT", 100.0), (2, "USDT", -10_000.0)],
        pos=[(2, "BTCUSDT", 0.1, 50_000.0)],
    )
    a = cm.Engine(small).capital_efficiency(b).accounts
    assert a.utilisation.tolist()[0] == 0.0 and a.leverage.tolist()[0] == 0.0
    assert math.isinf(a.utilisation[1]) and math.isinf(a.leverage[1])


def test_portfolio_column_follows_the_engine_models(demo: cm.Universe) -> None:
    b = synth.generate(demo, n_accounts=500, seed=1)
    ce = cm.Engine(demo).capital_efficiency(b)
    has = "portfolio" in engine_module.MODELS
    assert ("required_portfolio" in ce.accounts) == has
    assert ("required_portfolio" in ce.aggregate) == has
    assert (ce.accounts.savings >= -1e-9 * (1 + ce.accounts.required_isolated)).all()
    np.testing.assert_array_equal(ce.accounts.account, cm.Engine(demo).evaluate(b).account)


def _reference(u: cm.Universe, b: cm.Book) -> dict[int, tuple[float, float, float]]:
    """(im_as_cross, required_isolated, required_cross) per account by plain loops."""
    assets, marks = u.assets, u.markets
    out = {}
    for acct_id, acct in reference.margin.account_rows(u, b).items():
        ims, cs = [], []
        for k, qty, entry, _iso in acct.positions:
            m = marks[k]
            settle = assets[u.asset_index[m.settle]].price
            upnl, im, _ = reference.position_numbers(m, qty, entry, m.mark, settle)
            ims.append(im)
            in_settle = upnl / settle if settle > 0 else 0.0
            cs.append(reference.margin.upnl_collateral(m, upnl, in_settle, initial=True))
        iso = sum(max(i - c, 0.0) for i, c in zip(ims, cs, strict=True))
        out[acct_id] = (sum(ims), iso, max(sum(ims) - sum(cs), 0.0))
    return out


@settings(max_examples=60)
@given(universe_and_book(max_rows=16))
def test_agrees_with_plain_loops(ub: Any) -> None:
    u, rb = ub  # perps and futures only (universe_and_book() draws no options)
    b = rb.book(u)
    got = cm.Engine(u, threads=1).capital_efficiency(b).accounts
    want = _reference(u, b)
    for i, acct in enumerate(got.account.tolist()):
        w = want[acct]
        for col, x in zip(("im_as_cross", "required_isolated", "required_cross"), w, strict=True):
            assert got[col][i] == pytest.approx(x, rel=1e-9, abs=1e-9 * (1 + abs(w[0]))), col


# ---- im_as_cross vs Engine.evaluate's im -------------------------------------------------
def _all_cross(b: cm.Book) -> cm.Book:
    """The same book with every position cross (isolated margins dropped)."""
    p = b.positions
    return cm.Book(b.balances, {**p, "isolated_margin": np.zeros(len(p["qty"]))})


def test_im_as_cross_counts_isolated_positions_that_evaluates_im_leaves_out(
    small: cm.Universe,
) -> None:
    """Account 7 has the ETH short isolated: evaluate's im is the cross BTC position's 1,000,
    capital efficiency's im_as_cross is 1,000 + the ETH position's 1,500. Account 8, all
    cross, has the same number in both."""
    b = book(
        bal=[(7, "USDT", 1_000.0), (8, "USDT", 1_000.0)],
        pos=[
            (7, "BTCUSDT", 1.0, 40_000.0),
            (7, "ETHUSDT", -10.0, 1_800.0, 300.0),
            (8, "BTCUSDT", 1.0, 40_000.0),
            (8, "ETHUSDT", -10.0, 1_800.0),
        ],
    )
    eng = cm.Engine(small)
    ce = eng.capital_efficiency(b)
    r = eng.evaluate(b)
    assert "im" not in ce.accounts and "im" not in ce.aggregate  # no column that looks like r.im
    assert r.im.tolist() == pytest.approx([1_000.0, 2_500.0])
    assert ce.accounts.im_as_cross.tolist() == pytest.approx([2_500.0, 2_500.0])
    assert ce.aggregate["im_as_cross"] == pytest.approx(5_000.0)
    np.testing.assert_allclose(ce.accounts.im_as_cross, eng.evaluate(_all_cross(b)).im, rtol=1e-15)


def test_im_as_cross_is_evaluates_im_of_the_all_cross_book(demo: cm.Universe) -> None:
    b = synth.generate(demo, n_accounts=2_000, seed=4)
    eng = cm.Engine(demo)
    got = eng.capital_efficiency(b).accounts.im_as_cross
    r = eng.evaluate(b)
    p = b.positions
    isolated = np.isin(r.account, p["account"][p["isolated_margin"] > 0])
    assert isolated.any() and (~isolated).any()
    np.testing.assert_array_equal(got[~isolated], r.im[~isolated])
    assert (got[isolated] >= r.im[isolated]).all() and (got[isolated] > r.im[isolated]).any()
    np.testing.assert_allclose(got, eng.evaluate(_all_cross(b)).im, rtol=1e-12)


def test_every_requirement_column_ignores_the_isolated_flags(demo: cm.Universe) -> None:
    """Both regimes (and portfolio) are hypothetical: flagging positions isolated in the book
    changes equity (their margins), not what the positions require."""
    b = synth.generate(demo, n_accounts=1_000, seed=6)
    eng = cm.Engine(demo)
    got = eng.capital_efficiency(b).accounts
    want = eng.capital_efficiency(_all_cross(b)).accounts
    cols = ["im_as_cross", "required_isolated", "required_cross", "savings", "collateral"]
    if "portfolio" in engine_module.MODELS:
        cols.append("required_portfolio")
    for col in cols:
        np.testing.assert_allclose(got[col], want[col], rtol=1e-12, atol=1e-6, err_msg=col)


# ---- #16's mechanisms (docs/MODEL.md "Capital efficiency") ---------------------------------
def test_open_orders_and_two_sided_assets_are_refused_by_name(small: cm.Universe) -> None:
    """A position margined alone has no share of an order's lock, and the bid or the ask
    follows the whole account's holding: both are typed errors, never silently dropped."""
    from dataclasses import replace

    pos = {"account": [7], "market": ["BTCUSDT"], "qty": [1.0], "entry_price": [40_000.0]}
    bal = {"account": [7], "asset": ["USDT"], "qty": [1_000.0]}
    orders = {"account": [7, 7], "market": ["BTCUSDT"] * 2, "side": ["buy", "sell"],
              "qty": [0.5, 0.25], "price": [39_000.0, 52_000.0]}  # fmt: skip
    e = cm.Engine(small)
    with pytest.raises(cm.BookError, match=r"orders.*open orders are not margined by capital"):
        e.capital_efficiency(cm.Book.from_arrays(bal, pos, orders))
    assets = [replace(a, bid=0.99, ask=1.01) if a.symbol == "USDT" else a for a in small.assets]
    two_sided = cm.Universe(assets=assets, markets=list(small.markets))
    with pytest.raises(cm.ConfigError, match=r"assets\[USDT\]\.bid: capital efficiency has no"):
        cm.Engine(two_sided).capital_efficiency(cm.Book.from_arrays(bal, pos))
    # the same book without orders, one price per asset: the numbers of the first test
    assert e.capital_efficiency(cm.Book.from_arrays(bal, pos)).accounts["im_as_cross"][0] > 0


def test_a_closing_fee_reserve_leaves_capital_efficiency_unchanged(small: cm.Universe) -> None:
    """The reserve is a maintenance rule; capital efficiency compares initial margin only."""
    from dataclasses import replace

    fee = [replace(m, liquidation_fee=0.00055) for m in small.markets]
    with_fee = cm.Universe(assets=list(small.assets), markets=fee)
    b = book(bal=[(7, "USDT", 1_000.0)], pos=[(7, "BTCUSDT", 1.0, 40_000.0)])
    a = cm.Engine(small).capital_efficiency(b).accounts
    f = cm.Engine(with_fee).capital_efficiency(b).accounts
    for c in a.columns:
        np.testing.assert_array_equal(a[c], f[c])
    # while maintenance does move with it
    assert cm.Engine(with_fee).evaluate(b).mm[0] > cm.Engine(small).evaluate(b).mm[0]
