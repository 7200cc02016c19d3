"""Differential and invariance properties of ``Engine.evaluate`` (docs/MODEL.md "Canonical order").

The Rust engine and the pure-Python reference (``crossmargin.reference``) implement the
same rules independently of each other's code paths; on every valid universe and book
they agree to 1e-9 relative. The engine's results do not depend on the thread count, on
the order of the input rows, or on the constructor / file format the book came through.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import crossmargin as cm
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from crossmargin import reference
from crossmargin.options import black76
from crossmargin.synth import generate
from crossmargin.testing import (
    ALL_COLUMNS,
    assert_results_close,
    assert_results_identical,
    gross_scale,
    price_overrides,
    random_books,
    universe_and_book,
    universes,
)
from crossmargin.universe import option_marks
from hypothesis import given, settings
from hypothesis import strategies as st


# ---- engine == reference ---------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(universe_and_book())
def test_engine_matches_reference_on_random_books(case):
    u, rb = case
    b = rb.book(u)
    got = cm.Engine(u, threads=2).evaluate(b)
    want = reference.evaluate(u, b)
    assert list(got.columns) == list(ALL_COLUMNS)
    assert_results_close(got, want, gross_scale(u, b))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_engine_matches_reference_under_price_overrides(data):
    u = data.draw(universes())
    rb = data.draw(random_books(u))
    prices = data.draw(price_overrides(u))
    b = rb.book(u)
    got = cm.Engine(u, threads=2).evaluate(b, prices=prices)
    want = reference.evaluate(u, b, prices=prices)
    assert_results_close(got, want, gross_scale(u, b, prices))


def _tail_depths(u: cm.Universe, assets: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """Per market: how deep in a tail its Black-76 values lie, ln(spot / value) summed over the
    reference and the overridden underlying price (0 for a perp or future). A value deep in a
    tail is about exp(-d²/2) of the spot, and two implementations' roundings differ by about
    d²/2 ≈ ln(spot / value) ulps; a repriced explicit mark is the ratio of two such values
    (prices.reprice_options), so both depths count. Seen: a call at d ≈ -20 (value 2e-94)
    repriced at d ≈ -9 gave a mark of 2e15 whose two computations differ by 3.4e-12."""
    spots = cm.prices.underlying_spots(u, assets, marks)
    depth = np.zeros(len(u.markets))
    for k, m in enumerate(u.markets):
        if not m.is_option:
            continue
        for s in {u.reference_price(m.underlying), spots[m.underlying]}:
            v = float(option_marks(u, [k], [s], black76)[0]) * (s if m.inverse else 1.0)
            if s > 0:
                depth[k] += math.log(s / v) if v > 0 else 745.0  # 745: ln of the least double
    return np.maximum(depth, 0.0)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_price_overrides_with_options_match_the_references_own_resolver(data):
    """Random overrides (underlyings, assets, markets) on universes with options: the
    engine's resolver (crossmargin.prices) and the reference's own plain-Python one
    (crossmargin.reference.prices, Black-76 of reference.portfolio) give the same prices,
    and ``Engine.evaluate(book, prices=...)`` equals ``reference.evaluate(u, book,
    prices=...)``."""
    u = data.draw(universes(options=True), label="universe")
    rb = data.draw(random_books(u), label="book")
    prices = data.draw(price_overrides(u), label="prices")
    # An override can push a repriced option past the accepted mark range (an inverse put
    # at an underlying near 0): both resolvers then refuse it with the same typed error.
    try:
        want_assets, want_marks = reference.prices.resolve(u, prices)
    except cm.PriceError:
        with pytest.raises(cm.PriceError):
            cm.prices.resolve(u, prices)
        return
    got_assets, got_marks = cm.prices.resolve(u, prices)
    np.testing.assert_array_equal(got_assets, want_assets)
    # Perps and futures: the same arithmetic, bit for bit. Option marks come from two
    # Black-76 implementations: equal to rounding, relative to the underlyings' prices.
    option = np.array([m.is_option for m in u.markets], dtype=bool)
    np.testing.assert_array_equal(got_marks[~option], np.array(want_marks)[~option])
    atol = 1e-11 * max([1.0, *(3.0 * u.reference_price(x) for x in u.underlyings)])
    rtol = 1e-12 * (1.0 + _tail_depths(u, got_assets, got_marks))
    bad = np.abs(got_marks - np.array(want_marks)) > atol + rtol * np.abs(want_marks)
    assert not bad.any(), (got_marks, want_marks, rtol)
    b = rb.book(u)
    got = cm.Engine(u, threads=2).evaluate(b, prices=prices)
    want = reference.evaluate(u, b, prices=prices)
    assert_results_close(got, want, gross_scale(u, b, prices))


def test_the_reference_resolves_prices_without_crossmargin_prices(monkeypatch, small):
    """The reference never imports crossmargin.prices: with the engine's resolver broken,
    the reference still evaluates under overrides (and gives the engine's answer)."""
    import ast

    import crossmargin.prices
    from crossmargin.reference import margin as reference_margin

    folder = Path(reference_margin.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "crossmargin.prices", path.name
                assert not (
                    node.module == "crossmargin" and any(a.name == "prices" for a in node.names)
                ), path.name
            if isinstance(node, ast.Import):
                assert all(a.name != "crossmargin.prices" for a in node.names), path.name
    b = cm.Book.from_arrays(
        {"account": [1, 2], "asset": ["USDT", "BTC"], "qty": [1_000.0, 1.0]},
        {"account": [1], "market": ["BTCUSDT"], "qty": [0.5], "entry_price": [50_000.0]},
    )
    prices = {"BTC": 40_000.0, "ETHUSDT": 1_500.0}
    want = cm.Engine(small).evaluate(b, prices=prices)
    scale = gross_scale(small, b, prices)

    def broken(*args, **kwargs):
        raise AssertionError("the reference called crossmargin.prices")

    for name in ("resolve", "underlying_spots", "reprice_options", "base_prices", "check_domain"):
        monkeypatch.setattr(crossmargin.prices, name, broken)
    got = reference.evaluate(small, b, prices=prices)
    assert_results_close(got, want, scale)
    assert got.equity[1] == 40_000.0  # the BTC asset moved with its underlying
    reference.liquidation_prices(small, b, prices=prices)
    reference.cascade(small, b, cm.CascadeConfig(shock={"BTC": -0.3}))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_engine_matches_reference_under_price_arrays(data):
    """``prices=(asset_prices, marks)`` in universe order, the array form of overrides."""
    u = data.draw(universes())
    rb = data.draw(random_books(u))
    factors = st.floats(min_value=0.1, max_value=3.0)
    asset_prices = np.array([a.price * data.draw(factors) for a in u.assets])
    marks = np.array([m.mark * data.draw(factors) for m in u.markets])
    b = rb.book(u)
    got = cm.Engine(u).evaluate(b, prices=(asset_prices, marks))
    want = reference.evaluate(u, b, prices=(asset_prices, marks))
    assert_results_close(got, want, gross_scale(u, b, (asset_prices, marks)))


@settings(max_examples=100, deadline=None)
@given(universe_and_book())
def test_engine_is_bit_identical_to_reference_when_rows_are_in_canonical_order(case):
    """With integer symbol indices and rows sorted by (account, index), both engines add
    the same terms in the same order, so every column is bit-identical, booleans and
    infinities included."""
    u, rb = case
    rb.as_str = (False, False)
    order = (
        np.lexsort((rb.balances["asset"], rb.balances["account"])),
        np.lexsort((rb.positions["market"], rb.positions["account"])),
    )
    b = rb.book(u, order)
    assert_results_identical(cm.Engine(u).evaluate(b), reference.evaluate(u, b))


def test_both_engines_merge_duplicate_balances_into_their_exact_sum():
    """docs/MODEL.md: duplicate balance rows are merged into their exact sum (math.fsum);
    1 + 127.2 + 1.2 added left to right is 129.39999999999998, exactly it is 129.4 (the
    case hypothesis found against the reference's former running sum)."""
    import math

    from crossmargin.reference import solvency as reference_solvency

    u = cm.Universe([cm.Asset("A0", 1.0)])
    rows = [1.0, 127.2, 1.2]
    b = cm.Book.from_arrays({"account": [0, 0, 0], "asset": [0, 0, 0], "qty": rows})
    exact = math.fsum(rows)
    assert exact == 129.4 != (1.0 + 127.2) + 1.2
    assert cm.Engine(u).evaluate(b).equity.tolist() == [exact]
    assert reference.evaluate(u, b).equity.tolist() == [exact]
    assert reference_solvency.liabilities(u, b)[0] == {0: exact}


def test_engine_matches_reference_on_a_synthetic_exchange_book(demo):
    b = generate(demo, n_accounts=3_000, seed=11)
    assert_results_close(
        cm.Engine(demo).evaluate(b), reference.evaluate(demo, b), gross_scale(demo, b)
    )


def test_engine_matches_reference_on_a_synthetic_book_after_a_crash(demo):
    b = generate(demo, n_accounts=2_000, seed=5)
    crash = {"BTC": 95_000 * 0.7, "ETH": 3_300 * 0.65, "SOL": 140 * 0.6}
    assert_results_close(
        cm.Engine(demo).evaluate(b, prices=crash),
        reference.evaluate(demo, b, prices=crash),
        gross_scale(demo, b, crash),
    )


# ---- thread count ------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(universe_and_book())
def test_results_do_not_depend_on_the_thread_count(case):
    u, rb = case
    b = rb.book(u)
    one = cm.Engine(u, threads=1).evaluate(b)
    assert_results_identical(one, cm.Engine(u, threads=2).evaluate(b))
    assert_results_identical(one, cm.Engine(u, threads=None).evaluate(b))


@pytest.mark.parametrize("threads", [2, None])
def test_results_on_many_chunks_do_not_depend_on_the_thread_count(demo, threads):
    """Enough accounts for several parallel chunks (the engine splits by 2048)."""
    b = generate(demo, n_accounts=20_000, seed=3)
    crash = {"BTC": 60_000.0}
    assert_results_identical(
        cm.Engine(demo, threads=1).evaluate(b, prices=crash),
        cm.Engine(demo, threads=threads).evaluate(b, prices=crash),
    )


def test_engine_threads_reports_the_pool_size(demo):
    assert cm.Engine(demo, threads=1).threads == 1
    assert cm.Engine(demo, threads=2).threads == 2
    assert cm.Engine(demo).threads >= 1


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_engine_rejects_a_bad_thread_count(demo, threads):
    with pytest.raises(cm.ConfigError, match="threads"):
        cm.Engine(demo, threads=threads)


def test_engine_is_reusable_across_books_and_prices(small):
    eng = cm.Engine(small)
    b1 = cm.Book.from_arrays({"account": [1], "asset": ["BTC"], "qty": [1.0]})
    b2 = cm.Book.from_arrays({"account": [2], "asset": ["USDT"], "qty": [5.0]})
    first = eng.evaluate(b1)
    eng.evaluate(b2)
    eng.evaluate(b1, prices={"BTC": 1.0})
    assert_results_identical(first, eng.evaluate(b1))


# ---- row order -----------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(st.data())
def test_shuffling_rows_does_not_change_results(data):
    """Integer symbol indices, no duplicate balance rows: bit-identical. Otherwise (sums of
    duplicate rows, or symbols whose dictionary codes follow first appearance) the terms
    may be added in another order: equal to rounding."""
    u, rb = data.draw(universe_and_book())
    perm = (
        np.array(data.draw(st.permutations(range(len(rb.balances["qty"])))), dtype=np.int64),
        np.array(data.draw(st.permutations(range(len(rb.positions["qty"])))), dtype=np.int64),
    )
    b = rb.book(u)
    shuffled = rb.book(u, perm)
    r0, r1 = cm.Engine(u).evaluate(b), cm.Engine(u).evaluate(shuffled)
    if rb.as_str == (False, False) and not rb.has_duplicate_balances:
        assert_results_identical(r0, r1)
    else:
        assert_results_close(r1, r0, gross_scale(u, b))


def test_an_accounts_result_does_not_depend_on_row_order_with_symbol_names():
    u = cm.Universe([cm.Asset("A", 1.0), cm.Asset("B", 1.0), cm.Asset("C", 1.0)])
    eng = cm.Engine(u)
    forward = cm.Book.from_arrays(
        {"account": [1, 1, 1], "asset": ["A", "B", "C"], "qty": [0.1, 0.2, 0.3]}
    )
    backward = cm.Book.from_arrays(
        {"account": [1, 1, 1], "asset": ["C", "B", "A"], "qty": [0.3, 0.2, 0.1]}
    )
    assert eng.evaluate(forward).equity[0] == eng.evaluate(backward).equity[0]


def test_an_accounts_result_does_not_depend_on_row_order_with_integer_indices():
    u = cm.Universe([cm.Asset("A", 1.0), cm.Asset("B", 1.0), cm.Asset("C", 1.0)])
    eng = cm.Engine(u)
    forward = cm.Book.from_arrays(
        {"account": [1, 1, 1], "asset": [0, 1, 2], "qty": [0.1, 0.2, 0.3]}
    )
    backward = cm.Book.from_arrays(
        {"account": [1, 1, 1], "asset": [2, 1, 0], "qty": [0.3, 0.2, 0.1]}
    )
    assert eng.evaluate(forward).equity[0] == eng.evaluate(backward).equity[0]


# ---- constructors and files ------------------------------------------------------------
def _all_constructions(u: cm.Universe, bal: dict, pos: dict, folder: Path) -> dict[str, cm.Book]:
    bal_df, pos_df = pd.DataFrame(bal), pd.DataFrame(pos)
    books = {
        "from_arrays": cm.Book.from_arrays(bal, pos),
        "from_pandas": cm.Book.from_pandas(bal_df, pos_df),
        "from_arrow": cm.Book.from_arrow(
            pa.Table.from_pandas(bal_df, preserve_index=False),
            pa.Table.from_pandas(pos_df, preserve_index=False),
        ),
    }
    for fmt in ("parquet", "csv"):
        cm.write_book(books["from_arrays"], folder / fmt, u, fmt=fmt)
        books[f"read_book({fmt} folder)"] = cm.read_book(folder / fmt)
        books[f"read_book({fmt} files)"] = cm.read_book(
            balances=folder / fmt / f"balances.{fmt}", positions=folder / fmt / f"positions.{fmt}"
        )
    return books


@settings(max_examples=25, deadline=None)
@given(universe_and_book(max_rows=12))
def test_every_constructor_and_file_format_gives_the_same_results(case):
    u, rb = case
    rb.as_str = (True, True)
    bal, pos = rb.columns(u)
    with tempfile.TemporaryDirectory() as tmp:
        books = _all_constructions(u, bal, pos, Path(tmp))
        eng = cm.Engine(u)
        want = eng.evaluate(books["from_arrays"])
        for name, b in books.items():
            r = eng.evaluate(b)
            for c in want.columns:
                np.testing.assert_array_equal(r[c], want[c], err_msg=f"{name}: {c}", strict=True)


def test_constructors_agree_on_a_synthetic_book(demo, tmp_path):
    b = generate(demo, n_accounts=500, seed=2)
    bal_df, pos_df = b.to_pandas(demo)
    books = _all_constructions(
        demo,
        {c: bal_df[c].to_numpy() for c in bal_df.columns},
        {c: pos_df[c].to_numpy() for c in pos_df.columns},
        tmp_path,
    )
    eng = cm.Engine(demo)
    want = eng.evaluate(books["from_arrays"])
    assert_results_close(eng.evaluate(b), want, gross_scale(demo, b))
    for name, other in books.items():
        r = eng.evaluate(other)
        for c in want.columns:
            np.testing.assert_array_equal(r[c], want[c], err_msg=f"{name}: {c}", strict=True)


def test_read_book_reads_one_file_by_its_columns(small, tmp_path):
    bal = {"account": [1, 2], "asset": ["USDT", "BTC"], "qty": [10.0, 0.5]}
    pos = {"account": [2], "market": ["BTCUSDT"], "qty": [1.0], "entry_price": [49_000.0]}
    full = cm.Book.from_arrays(bal, pos)
    cm.write_book(full, tmp_path, small, fmt="parquet")
    only_bal = cm.read_book(tmp_path / "balances.parquet")
    only_pos = cm.read_book(tmp_path / "positions.parquet")
    eng = cm.Engine(small)
    np.testing.assert_array_equal(
        eng.evaluate(only_bal).equity, eng.evaluate(cm.Book.from_arrays(bal)).equity
    )
    np.testing.assert_array_equal(
        eng.evaluate(only_pos).upnl, eng.evaluate(cm.Book.from_arrays(positions=pos)).upnl
    )


def test_read_book_errors_are_book_errors(tmp_path):
    with pytest.raises(cm.BookError, match="no such file"):
        cm.read_book(tmp_path / "missing.parquet")
    with pytest.raises(cm.BookError, match="neither balances"):
        cm.read_book(tmp_path)
    with pytest.raises(cm.BookError):
        cm.read_book()
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(cm.BookError, match="cannot read"):
        cm.read_book(tmp_path / "junk.parquet")


def test_results_convert_to_pandas_and_arrow(small):
    b = cm.Book.from_arrays({"account": [3, 1], "asset": ["USDT", "BTC"], "qty": [5.0, 1.0]})
    r = cm.Engine(small).evaluate(b)
    df = r.to_pandas()
    assert list(df.columns) == list(ALL_COLUMNS)
    assert df["account"].tolist() == [1, 3]
    t = r.to_arrow()
    assert t.column_names == list(ALL_COLUMNS)
    assert t.column("equity").to_pylist() == r.equity.tolist()
    summary = r.summary()
    assert summary["accounts"] == 2
    assert summary["equity"] == pytest.approx(50_005.0)


def test_a_deep_tail_option_mark_matches_the_references_to_its_rounding():
    """The example hypothesis found (CI, 2026-12-04): a call with an explicit mark whose
    Black-76 value at the reference price is 2e-94 (d ≈ -20), repriced at twice the price,
    is the ratio of two tail values, 2.2e15; the two resolvers differ by 3.4e-12 relative,
    within the tail's rounding (`_tail_depths`) and far outside 1e-12."""

    def asset(s: str) -> cm.Asset:
        return cm.Asset(symbol=s, price=1.0, weight_initial=0.0, weight_maint=0.0)

    def perp(s: str, underlying: str) -> cm.Market:
        return cm.Market(
            symbol=s, kind="perp", settle="A0", underlying=underlying, mark=1.0,
            brackets=((10.0, 0.0, 0.0),),
        )  # fmt: skip

    call = cm.Market(
        symbol="O0", kind="option", settle="A0", underlying="A2", mark=0.25, brackets=(),
        contract_size=0.01, option_type="call", strike=2.0, expiry=1.0, iv=0.0625,
    )  # fmt: skip
    u = cm.Universe(
        assets=(asset("A0"), asset("A1"), asset("A2")),
        markets=(perp("M0", "A2"), perp("M1", "A0"), call),
        underlying_prices={"A2": 0.5625},
    )
    got_assets, got = cm.prices.resolve(u, {"A2": 1.125})
    want = np.array(reference.prices.resolve(u, {"A2": 1.125})[1])
    rtol = 1e-12 * (1.0 + _tail_depths(u, got_assets, got))
    assert got[2] > 1e15 and rtol[2] > 1e-10 and rtol[0] == 1e-12
    assert np.all(np.abs(got - want) <= rtol * np.abs(want))
