"""Same input, same bits: results do not depend on row order, symbol encoding (strings,
universe indices, categoricals), duplicate-row order, thread count — every output column
compared bit for bit (docs/MODEL.md, "Canonical order")."""

from __future__ import annotations

import crossmargin as cm
import numpy as np
import pandas as pd
import pytest
from crossmargin.result import MARGIN_COLUMNS
from crossmargin.synth import generate

# Every per-account number of a MarginResult (the account id is the key, not a number).
FIELDS = tuple(c for c in MARGIN_COLUMNS if c != "account")

DEMO = cm.Universe.demo()


def same_bits(a: cm.MarginResult, b: cm.MarginResult) -> None:
    np.testing.assert_array_equal(a.account, b.account)
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), f
        else:
            assert np.array_equal(x, y), f


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    book = generate(DEMO, n_accounts=3_000, seed=11)
    return book.to_pandas(DEMO)


def encodings(bal: pd.DataFrame, pos: pd.DataFrame) -> dict[str, cm.Book]:
    a_idx = {a.symbol: i for i, a in enumerate(DEMO.assets)}
    m_idx = {m.symbol: i for i, m in enumerate(DEMO.markets)}
    # a categorical whose categories are in neither alphabetical nor universe order
    rev_a = sorted(a_idx, key=lambda s: s[::-1])
    rev_m = sorted(m_idx, key=lambda s: s[::-1])
    return {
        "strings": cm.Book.from_pandas(bal, pos),
        "indices": cm.Book.from_pandas(
            bal.assign(asset=bal.asset.map(a_idx).astype(np.uint32)),
            pos.assign(market=pos.market.map(m_idx).astype(np.int64)),
        ),
        "categorical": cm.Book.from_pandas(
            bal.assign(asset=pd.Categorical(bal.asset, categories=rev_a)),
            pos.assign(market=pd.Categorical(pos.market, categories=rev_m)),
        ),
        "shuffled": cm.Book.from_pandas(
            bal.sample(frac=1.0, random_state=1), pos.sample(frac=1.0, random_state=2)
        ),
    }


def test_every_encoding_and_row_order_gives_the_same_bits(tables) -> None:
    bal, pos = tables
    books = encodings(bal, pos)
    want = cm.Engine(DEMO).evaluate(books["strings"])
    for name, book in books.items():
        for threads in (1, 2):
            got = cm.Engine(DEMO, threads=threads).evaluate(book)
            same_bits(want, got), name


def test_the_risk_methods_do_not_depend_on_the_encoding(tables) -> None:
    bal, pos = tables
    books = encodings(bal, pos)
    eng = cm.Engine(DEMO)
    s = [eng.stress(b, {"crash": {"BTC": -0.3, "ETH": -0.35}}).matrix for b in books.values()]
    lp = [np.sort(eng.liquidation_prices(b).liq_price) for b in books.values()]
    for x in s[1:]:
        assert np.array_equal(x.view(np.int64), s[0].view(np.int64))
    for x in lp[1:]:
        np.testing.assert_array_equal(x, lp[0])


def test_duplicate_balance_rows_merge_to_their_exact_sum_in_any_order() -> None:
    # 0.1 + 0.3 − 0.4 is 5.55e-17 in one float order and −2.78e-17 exactly; in input order
    # the account was safe one way and bankrupt the other.
    orders = [(0.1, 0.3, -0.4), (-0.4, 0.1, 0.3), (0.3, -0.4, 0.1)]
    results = []
    for qty in orders:
        book = cm.Book.from_arrays(
            balances={"account": [1, 1, 1], "asset": ["USDT"] * 3, "qty": list(qty)}
        )
        results.append(cm.Engine(DEMO).evaluate(book))
    for r in results[1:]:
        same_bits(results[0], r)
    assert results[0].equity[0] == -2.7755575615628914e-17  # math.fsum([0.1, 0.3, -0.4])
    assert results[0].bankrupt[0]


def test_grouping_is_cached_per_symbol_list(tables) -> None:
    bal, pos = tables
    book = cm.Book.from_pandas(bal, pos)
    assert book.grouping(DEMO) is book.grouping(cm.Universe.demo())


# ---- prices= on stress, reverse stress and cascades ---------------------------------------
def test_stress_moves_from_the_overridden_prices(tables) -> None:
    book = cm.Book.from_pandas(*tables)
    eng = cm.Engine(DEMO)
    btc = DEMO.reference_price("BTC")
    at_base = eng.stress(book, {"x": {"BTC": 0.0}}, prices={"BTC": btc * 0.8})
    moved = eng.stress(book, {"x": {"BTC": -0.2}})
    np.testing.assert_allclose(at_base.matrix, moved.matrix, rtol=1e-12, atol=1e-9)
    # and a zero move at the override is the override's evaluation
    r = eng.evaluate(book, prices={"BTC": btc * 0.8})
    np.testing.assert_allclose(at_base.matrix[:, 0], r.adj_equity_maint - r.mm, atol=1e-9)


def test_cascade_and_reverse_stress_take_prices(tables) -> None:
    book = cm.Book.from_pandas(*tables)
    eng = cm.Engine(DEMO)
    btc = DEMO.reference_price("BTC")
    cfg = cm.CascadeConfig(shock={"BTC": 0.0}, insurance_fund=1e6)
    low = eng.cascade(book, cfg, prices={"BTC": btc * 0.7})
    assert (
        low.summary()["accounts_liquidated"]
        > eng.cascade(book, cfg).summary()["accounts_liquidated"]
    )
    rs = eng.reverse_stress(book, insurance_fund=1e5, underlyings=["BTC"])
    rs_low = eng.reverse_stress(book, insurance_fund=1e5, underlyings=["BTC"], prices={"BTC": btc})
    assert rs.move == pytest.approx(rs_low.move, abs=2e-4)


def test_reverse_stress_ends_when_the_tolerance_is_below_float_spacing(tables) -> None:
    book = cm.Book.from_pandas(*tables)
    r = cm.Engine(DEMO).reverse_stress(book, insurance_fund=1e5, tol=1e-17)
    assert -1 < r.move < 0


# ---- explain -----------------------------------------------------------------------------
def test_explain_totals_are_evaluates_bits_and_rows_add_up(tables) -> None:
    book = cm.Book.from_pandas(*tables)
    eng = cm.Engine(DEMO)
    r = eng.evaluate(book)
    for i in range(0, len(r), 53):
        e = eng.explain(book, int(r.account[i]))
        for f in FIELDS:
            assert e.margin[f] == getattr(r, f)[i] or (
                np.isnan(e.margin[f]) and np.isnan(getattr(r, f)[i])
            ), f
        adj = e.balances.collateral_maint.sum() + e.positions.collateral_maint.sum()
        assert adj == pytest.approx(r.adj_equity_maint[i], rel=1e-12, abs=1e-9)
        cross = e.positions.isolated_margin == 0
        assert e.positions.mm[cross].sum() == pytest.approx(r.mm[i], rel=1e-12, abs=1e-9)
        assert bool(r.liquidatable[i]) == any(
            c.name == "maintenance" or c.name.startswith("isolated") for c in e.failed
        )


def test_explain_names_the_failed_test_and_the_bracket() -> None:
    book = cm.Book.from_arrays(
        balances={"account": [7], "asset": ["USDT"], "qty": [100.0]},
        positions={
            "account": [7, 7],
            "market": ["BTCUSDT", "ETHUSDT"],
            "qty": [1.0, -10.0],
            "entry_price": [100_000.0, 3_000.0],
            "isolated_margin": [0.0, 50.0],
        },
    )
    e = cm.Engine(DEMO).explain(book, 7)
    names = {c.name for c in e.failed}
    assert "maintenance" in names and "isolated ETHUSDT" in names
    assert list(e.positions.market) == ["BTCUSDT", "ETHUSDT"]
    assert (e.positions.bracket >= 0).all()
    assert "FAIL" in str(e) and e.to_dict()["account"] == 7


def test_explain_rejects_unknown_accounts_and_non_ids() -> None:
    book = cm.Book.from_arrays(balances={"account": [1], "asset": ["USDT"], "qty": [1.0]})
    eng = cm.Engine(DEMO)
    with pytest.raises(cm.BookError, match="account 2 is not in the book"):
        eng.explain(book, 2)
    with pytest.raises(TypeError):
        eng.explain(book, True)  # type: ignore[arg-type]


def test_one_shock_rule_for_stress_cascade_and_solvency() -> None:
    # An option market without a configured mark moves from its model mark under all three
    # (solvency used to refuse it: docs/MODEL.md "Prices of one call").
    import math

    from crossmargin.prices import shocked

    u = cm.Universe(
        assets=[cm.Asset("USDC", 1.0), cm.Asset("BTC", 50_000.0, 0.9, 0.95)],
        markets=[
            cm.Market("BTC-PERP", "perp", "USDC", "BTC", 50_000.0, [(math.inf, 0.02, 0.01)]),
            cm.Market(
                "C55", "option", "USDC", "BTC",
                option_type="call", strike=55_000.0, expiry=0.25, iv=0.6,
            ),
        ],
    )  # fmt: skip
    k = u.market_index["C55"]
    _, marks = shocked(u, {"C55": -0.5}, "stress")
    assert marks[k] == u.reference_marks[k] * 0.5
    book = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["USDC"], "qty": [10_000.0]},
        positions={"account": [1], "market": ["C55"], "qty": [-1.0], "entry_price": [100.0]},
    )
    eng = cm.Engine(u)
    sv = eng.solvency(book, {"USDC": 1e5}, stress={"C55": -0.5}, seed="s")
    st = eng.stress(book, {"x": {"C55": -0.5}})
    r = eng.evaluate(book, prices={"C55": float(marks[k])})
    # stress and solvency both price the option at half its model mark
    assert st.matrix[0, 0] == r.adj_equity_maint[0] - r.mm[0]
    assert sv.total_liabilities_stressed == pytest.approx(float(r.equity[0]), rel=1e-12)
