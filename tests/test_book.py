"""The book (docs/MODEL.md "Book"): two long columnar tables, grouped by account once.

Every bad row raises ``BookError`` naming the table, the 0-based input row and the
column; a duplicate position names both rows. Symbols are checked against a universe
when a book is first evaluated with it.
"""

from __future__ import annotations

import math

import crossmargin as cm
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from crossmargin import _core, book, reference
from crossmargin.testing import INT64_MAX, INT64_MIN
from helpers import balances, positions
from hypothesis import given, settings
from hypothesis import strategies as st


def book_error(build, table: str, row: int | None, column: str | None) -> cm.BookError:
    with pytest.raises(cm.BookError) as info:
        build()
    err = info.value
    assert isinstance(err, cm.CrossmarginError) and isinstance(err, ValueError)
    assert (err.table, err.row, err.column) == (table, row, column), str(err)
    if row is not None:
        assert str(err).startswith(f"{table} row {row}"), str(err)
    return err


def bal_book(**overrides) -> cm.Book:
    cols = balances((1, "USDT", 10.0), (2, "BTC", 1.0), (3, "ETH", 2.0), (4, "USDC", 5.0))
    cols.update(overrides)
    return cm.Book.from_arrays(cols)


def pos_book(**overrides) -> cm.Book:
    cols = positions(
        (1, "BTCUSDT", 1.0, 50_000.0, 0.0),
        (2, "ETHUSDT", -3.0, 2_000.0, math.nan),
        (3, "BTCUSD", 10.0, 48_000.0, 0.5),
        (4, "BTCUSDT", 0.5, 51_000.0, 0.0),
    )
    cols.update(overrides)
    return cm.Book.from_arrays(positions=cols)


# ---- symbols ------------------------------------------------------------------------------
def test_unknown_asset_symbol_names_its_row(small_engine):
    b = bal_book(asset=["USDT", "BTC", "DOGE", "USDC"])
    err = book_error(lambda: small_engine.evaluate(b), "balances", 2, "asset")
    assert "DOGE" in str(err)


def test_unknown_market_symbol_names_its_row(small_engine):
    b = pos_book(market=["BTCUSDT", "ETHUSDT", "BTCUSDT", "SOLUSDT"])
    err = book_error(lambda: small_engine.evaluate(b), "positions", 3, "market")
    assert "SOLUSDT" in str(err)


def test_unknown_symbol_names_the_first_row_holding_any_unknown_symbol(small_engine):
    b = bal_book(asset=["USDT", "ZZZ", "AAA", "ZZZ"])
    book_error(lambda: small_engine.evaluate(b), "balances", 1, "asset")


def test_the_reference_reports_unknown_symbols_the_same_way(small):
    b = bal_book(asset=["USDT", "BTC", "DOGE", "USDC"])
    book_error(lambda: reference.evaluate(small, b), "balances", 2, "asset")


@pytest.mark.parametrize("index", [4, 100])
def test_out_of_range_asset_index_names_its_row(small_engine, index):
    b = bal_book(asset=[0, 1, index, 3])
    err = book_error(lambda: small_engine.evaluate(b), "balances", 2, "asset")
    assert str(index) in str(err)


def test_out_of_range_market_index_names_its_row(small_engine):
    b = pos_book(market=[0, 1, 2, 3])
    book_error(lambda: small_engine.evaluate(b), "positions", 3, "market")


def test_negative_index_names_its_row():
    book_error(lambda: bal_book(asset=[0, 1, -1, 3]), "balances", 2, "asset")


def test_fractional_index_names_its_row():
    book_error(lambda: bal_book(asset=[0.0, 1.0, 2.5, 3.0]), "balances", 2, "asset")


def test_missing_symbol_names_its_row():
    book_error(lambda: bal_book(asset=["USDT", None, "ETH", "USDC"]), "balances", 1, "asset")


def test_long_str_symbol_columns_encode_as_pyarrow_does_and_name_their_bad_rows():
    # An object column of str is encoded by the core from its objects; the codes and labels
    # are the Arrow array's, and a missing or non-str cell still names its row (the pyarrow
    # path then runs).
    rng = np.random.default_rng(5)
    names = np.array(["USDT", "BTC", "ETH", "USDC", "SOL", "é"], dtype=object)
    n = 70_000
    cols = {"account": rng.integers(0, 9_000, n), "qty": rng.random(n)}
    asset = names[rng.integers(0, len(names), n)]
    hashed = cm.Book.from_arrays(balances={**cols, "asset": asset})
    arrow = cm.Book.from_arrays(balances={**cols, "asset": pa.array(asset.tolist())})
    assert hashed.balances["asset"].labels == arrow.balances["asset"].labels
    np.testing.assert_array_equal(hashed.balances["asset"].codes, arrow.balances["asset"].codes)
    np.testing.assert_array_equal(hashed.accounts, arrow.accounts)
    for bad in (None, float("nan"), 7):
        a = asset.copy()
        a[61_234] = bad
        book_error(
            lambda a=a: cm.Book.from_arrays(balances={**cols, "asset": a}),
            "balances",
            61_234,
            "asset",
        )


@pytest.mark.parametrize("n", [5, 70_000])
@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "arrow-string", "arrow-large"])
def test_arrow_backed_pandas_symbols_encode_by_arrow_as_object_columns_do(monkeypatch, n, dtype):
    # pandas 3 stores str columns as Arrow arrays: their symbols are encoded by Arrow from the
    # array as it is, never converted to a numpy array of str objects (one per row), and the
    # book is the object column's.
    rng = np.random.default_rng(11)
    names = np.array(["USDT", "BTC", "ETH", "USDC", "SOL", "é"], dtype=object)
    asset = names[rng.integers(0, len(names), n)]
    account = rng.integers(0, max(n // 8, 2), n)
    qty = rng.random(n)
    dtypes = {
        "arrow-string": pd.ArrowDtype(pa.string()),
        "arrow-large": pd.ArrowDtype(pa.large_string()),
    }
    df = pd.DataFrame({"account": account, "asset": asset, "qty": qty})
    df = df.astype({"asset": dtypes.get(dtype, dtype)})
    assert book._arrow_backed(df["asset"])
    converted: list[str] = []
    numpy_of = book._numpy

    def numpy_recording(values, table, column):
        converted.append(column)
        return numpy_of(values, table, column)

    monkeypatch.setattr(book, "_numpy", numpy_recording)
    got = cm.Book.from_pandas(df)
    assert "asset" not in converted and "qty" in converted
    want = cm.Book.from_arrays(balances={"account": account, "asset": asset, "qty": qty})
    assert got.balances["asset"].labels == want.balances["asset"].labels
    np.testing.assert_array_equal(got.balances["asset"].codes, want.balances["asset"].codes)
    np.testing.assert_array_equal(got.accounts, want.accounts)


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", pd.ArrowDtype(pa.string())])
def test_a_missing_symbol_in_an_arrow_backed_pandas_column_names_its_row(dtype):
    df = pd.DataFrame(
        {"account": [1, 2, 3], "asset": ["USDT", None, "BTC"], "qty": [1.0, 2.0, 3.0]}
    ).astype({"asset": dtype})
    book_error(lambda: cm.Book.from_pandas(df), "balances", 1, "asset")


_SYMBOL_KINDS = {
    "list": list,
    "object": lambda s: np.array(s, dtype=object),
    "object-fresh": lambda s: np.array(["".join(x) for x in s], dtype=object),  # no shared str
    "object-strided": lambda s: np.array([x for x in s for _ in (0, 1)], dtype=object)[::2],
    "numpy-str": lambda s: np.array(s, dtype=str),
    "arrow": lambda s: pa.array(s, type=pa.string()),
    "arrow-large": lambda s: pa.array(s, type=pa.large_string()),
    "arrow-sliced": lambda s: pa.array(["x", "yy", *s], type=pa.string()).slice(2),
    "arrow-chunked": lambda s: pa.chunked_array([s[: len(s) // 2], s[len(s) // 2 :]], pa.string()),
    "pandas-str": lambda s: pd.Series(s, dtype="str"),
    "pandas-object": lambda s: pd.Series(s, dtype=object),
}


@pytest.mark.parametrize("kind", sorted(_SYMBOL_KINDS))
@settings(max_examples=40, deadline=None)
@given(
    symbols=st.lists(
        st.sampled_from(["USDT", "BTC", "BTC2", "é", "", "A", "A\x00", "ETHUSDT2", "X" * 30])
        | st.text(
            st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
        ),
        min_size=1,
        max_size=300,
    )
)
def test_symbol_codes_number_the_sorted_symbols_whatever_the_column_kind(kind, symbols):
    # Python's own sort is the oracle: the labels are the distinct symbols sorted, and each
    # row's code is its symbol's place among them.
    col = book._symbols(_SYMBOL_KINDS[kind](symbols), "balances", "asset")
    if kind == "numpy-str":  # numpy's fixed-width str drops trailing NULs itself
        symbols = [str(x) for x in np.array(symbols, dtype=str)]
    assert col.labels == tuple(sorted(set(symbols)))
    assert col.codes.dtype == np.uint32
    assert [col.labels[c] for c in col.codes] == symbols


@pytest.mark.parametrize("sliced", [False, True])
def test_a_null_in_an_arrow_symbol_column_names_its_row(sliced):
    cells = ["USDT"] * 70_000 + [None] + ["BTC"] * 10
    arr = pa.array(["x", None, "z", *cells]).slice(3) if sliced else pa.array(cells)
    book_error(
        lambda: cm.Book.from_arrays(
            balances={"account": np.arange(len(cells)), "asset": arr, "qty": np.ones(len(cells))}
        ),
        "balances",
        70_000,
        "asset",
    )


def test_symbols_as_str_or_integer_indices_mean_the_same(small_engine):
    by_name = bal_book()
    by_index = bal_book(asset=np.array([0, 2, 3, 1], dtype=np.uint8))
    a, b = small_engine.evaluate(by_name), small_engine.evaluate(by_index)
    np.testing.assert_array_equal(a.equity, b.equity)
    np.testing.assert_array_equal(a.adj_equity_maint, b.adj_equity_maint)


def test_pandas_categorical_symbols_are_accepted(small_engine):
    cols = balances((1, "USDT", 10.0), (2, "BTC", 1.0), (3, "ETH", 2.0), (4, "USDC", 5.0))
    df = pd.DataFrame(cols).astype({"asset": "category"})
    r = small_engine.evaluate(cm.Book.from_pandas(df))
    np.testing.assert_array_equal(r.equity, [10.0, 50_000.0, 4_000.0, 5.0])


def test_unused_categories_that_are_not_in_the_universe_are_ignored(small_engine):
    df = pd.DataFrame(
        {
            "account": [1, 2],
            "asset": pd.Categorical(["USDT", "BTC"], categories=["USDT", "BTC", "DELISTED"]),
            "qty": [1.0, 2.0],
        }
    )
    r = small_engine.evaluate(cm.Book.from_pandas(df))
    np.testing.assert_array_equal(r.equity, [1.0, 100_000.0])


# ---- numbers ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_balance_qty_names_its_row(bad):
    book_error(lambda: bal_book(qty=[1.0, 2.0, bad, 3.0]), "balances", 2, "qty")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_position_qty_names_its_row(bad):
    book_error(lambda: pos_book(qty=[1.0, bad, 2.0, 3.0]), "positions", 1, "qty")


@pytest.mark.parametrize(
    ("qty", "entry"), [(1.0, 0.0), (1.0, -5.0), (0.0, -5.0), (1.0, math.nan), (0.0, math.inf)]
)
def test_entry_price_must_be_positive_for_an_open_position(qty, entry):
    book_error(
        lambda: pos_book(qty=[1.0, 1.0, 1.0, qty], entry_price=[1.0, 1.0, 1.0, entry]),
        "positions",
        3,
        "entry_price",
    )


def test_a_flat_position_may_have_entry_price_zero(small_engine):
    b = pos_book(qty=[0.0, 0.0, 0.0, 0.0], entry_price=[0.0, 0.0, 0.0, 0.0])
    r = small_engine.evaluate(b)
    np.testing.assert_array_equal(r.upnl, 0.0)
    np.testing.assert_array_equal(r.mm, 0.0)


@pytest.mark.parametrize("bad", [-1.0, -1e-12, math.inf, -math.inf])
def test_isolated_margin_must_be_finite_and_not_negative(bad):
    book_error(
        lambda: pos_book(isolated_margin=[0.0, bad, 0.0, 0.0]), "positions", 1, "isolated_margin"
    )


def test_non_numeric_column_is_a_book_error():
    with pytest.raises(cm.BookError) as info:
        bal_book(qty=["a", "b", "c", "d"])
    assert (info.value.table, info.value.column) == ("balances", "qty")


# ---- shape ---------------------------------------------------------------------------
def test_column_length_mismatch_is_a_book_error():
    err = book_error(lambda: bal_book(qty=[1.0, 2.0, 3.0]), "balances", 3, "qty")
    assert "3 rows" in str(err) and "4" in str(err)
    book_error(lambda: pos_book(entry_price=[1.0] * 5), "positions", 4, "entry_price")


@pytest.mark.parametrize("column", ["account", "asset", "qty"])
def test_missing_balance_column_is_named(column):
    cols = balances((1, "USDT", 1.0))
    del cols[column]
    err = book_error(lambda: cm.Book.from_arrays(cols), "balances", None, column)
    assert column in str(err)


@pytest.mark.parametrize("column", ["account", "market", "qty", "entry_price"])
def test_missing_position_column_is_named(column):
    cols = positions((1, "BTCUSDT", 1.0, 1.0))
    del cols[column]
    book_error(lambda: cm.Book.from_arrays(positions=cols), "positions", None, column)


def test_isolated_margin_may_be_omitted_meaning_all_cross(small_engine):
    cols = positions((1, "BTCUSDT", 1.0, 49_000.0), (2, "BTCUSDT", 1.0, 49_000.0))
    del cols["isolated_margin"]
    r = small_engine.evaluate(cm.Book.from_arrays(positions=cols))
    np.testing.assert_array_equal(r.mm, [500.0, 500.0])  # in the pool


# ---- duplicates ----------------------------------------------------------------------------
def test_duplicate_position_names_both_rows():
    cols = positions(
        (7, "BTCUSDT", 1.0, 1.0),
        (5, "BTCUSDT", 1.0, 1.0),
        (7, "ETHUSDT", 1.0, 1.0),
        (7, "BTCUSDT", -1.0, 1.0),
    )
    err = book_error(lambda: cm.Book.from_arrays(positions=cols), "positions", 3, "market")
    assert err.other_row == 0
    assert "row 3" in str(err) and "row 0" in str(err) and "7" in str(err)


def test_duplicate_position_given_by_index_names_both_rows():
    cols = positions((7, 1, 1.0, 1.0), (7, 1, 1.0, 1.0))
    err = book_error(lambda: cm.Book.from_arrays(positions=cols), "positions", 1, "market")
    assert err.other_row == 0


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, np.float64])
def test_symbol_indices_count_their_codes_and_name_a_row_out_of_range(small_engine, dtype):
    """Integer symbol indices: the reader's max is the column's count of codes (kept, not
    read again by the grouping or each binding); a negative or too large index names its
    row at once, one past the universe's markets when the book is first evaluated."""
    n = len(small_engine.universe.markets)
    cols = positions((1, 0, 1.0, 1.0), (2, n - 1, 1.0, 1.0), (3, 1, 1.0, 1.0))
    cols["market"] = np.asarray(cols["market"], dtype=dtype)
    b = cm.Book.from_arrays(positions=cols)
    assert b.positions["market"].n_codes == n
    assert b.positions["market"] == book.SymbolColumn(b.positions["market"].codes, None)
    small_engine.evaluate(b)
    past = dict(cols, market=np.asarray([0, n, 1], dtype=dtype))
    past_book = cm.Book.from_arrays(positions=past)
    book_error(lambda: small_engine.evaluate(past_book), "positions", 1, "market")
    if dtype != np.uint32:
        bad = dict(cols, market=np.asarray([0, 1, -1], dtype=dtype))
        err = book_error(lambda: cm.Book.from_arrays(positions=bad), "positions", 2, "market")
        assert "index -1" in str(err) and "out of range" in str(err)
    big = dict(cols, market=np.asarray([0, 2**32 - 1, 1], dtype=np.int64))
    book_error(lambda: cm.Book.from_arrays(positions=big), "positions", 1, "market")


def test_same_market_in_two_accounts_is_not_a_duplicate():
    cm.Book.from_arrays(positions=positions((1, "BTCUSDT", 1.0, 1.0), (2, "BTCUSDT", 1.0, 1.0)))


def test_duplicate_balance_rows_are_summed(small_engine):
    b = cm.Book.from_arrays(
        balances((1, "BTC", 1.0), (2, "USDT", 5.0), (1, "BTC", 0.5), (1, "BTC", -2.0))
    )
    r = small_engine.evaluate(b)
    # 1 + 0.5 − 2 = −0.5 BTC: a borrow of 25,000 USD at liability weights 1.2 / 1.1.
    assert r.equity.tolist() == [-25_000.0, 5.0]
    assert r.adj_equity_initial[0] == pytest.approx(-30_000.0)
    assert r.adj_equity_maint[0] == pytest.approx(-27_500.0)


def test_duplicate_balance_rows_summing_to_zero_leave_nothing(small_engine):
    b = cm.Book.from_arrays(balances((1, "BTC", 1.0), (1, "BTC", -1.0)))
    r = small_engine.evaluate(b)
    assert (r.equity[0], r.adj_equity_initial[0], r.adj_equity_maint[0]) == (0.0, 0.0, 0.0)


# ---- account ids ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [1.5, math.nan, math.inf])
def test_non_integer_account_id_names_its_row(bad):
    book_error(lambda: bal_book(account=np.array([1.0, 2.0, bad, 4.0])), "balances", 2, "account")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_float_account_ids_beyond_int64_name_their_row():
    book_error(
        lambda: bal_book(account=np.array([1.0, 1e19, -1e19, 4.0])), "balances", 1, "account"
    )


def test_integral_float_account_ids_are_accepted():
    assert bal_book(account=np.array([1.0, 2.0, 3.0, -4.0])).accounts.tolist() == [-4, 1, 2, 3]


def test_string_account_ids_are_rejected():
    book_error(lambda: bal_book(account=["a", "b", "c", "d"]), "balances", None, "account")


def test_unsigned_account_id_beyond_int64_names_its_row():
    ids = np.array([1, 2, 2**63, 4], dtype=np.uint64)
    book_error(lambda: bal_book(account=ids), "balances", 2, "account")


def test_accounts_are_the_ascending_union_of_both_tables(small_engine):
    b = cm.Book.from_arrays(
        balances((30, "USDT", 1.0), (10, "USDT", 1.0), (30, "BTC", 1.0), (-5, "USDT", 1.0)),
        positions((20, "BTCUSDT", 1.0, 50_000.0), (10, "ETHUSDT", 1.0, 2_000.0)),
    )
    assert b.accounts.tolist() == [-5, 10, 20, 30]
    assert len(b) == b.n_accounts == 4
    r = small_engine.evaluate(b)
    assert r.account.tolist() == [-5, 10, 20, 30]
    assert r.account.dtype == np.int64


def test_extreme_int64_account_ids_are_kept_exactly(small_engine):
    ids = [INT64_MAX, 0, INT64_MIN, -1, INT64_MAX - 1, INT64_MIN + 1]
    b = cm.Book.from_arrays(balances(*[(i, "USDT", float(k)) for k, i in enumerate(ids)]))
    r = small_engine.evaluate(b)
    assert r.account.tolist() == sorted(ids)
    by_id = dict(zip(r.account.tolist(), r.equity.tolist(), strict=True))
    assert by_id == {i: float(k) for k, i in enumerate(ids)}


def test_sparse_and_dense_ids_group_the_same(small_engine):
    rows = [(1, "USDT", 1.0), (2, "BTC", 0.1), (1, "ETH", 3.0), (3, "USDC", 4.0)]
    dense = small_engine.evaluate(cm.Book.from_arrays(balances(*rows)))
    far = [(a * 10**15, s, q) for a, s, q in rows]
    sparse = small_engine.evaluate(cm.Book.from_arrays(balances(*far)))
    assert sparse.account.tolist() == [10**15, 2 * 10**15, 3 * 10**15]
    np.testing.assert_array_equal(dense.equity, sparse.equity)
    np.testing.assert_array_equal(dense.adj_equity_initial, sparse.adj_equity_initial)


def test_result_has_one_row_per_account(small_engine):
    b = cm.Book.from_arrays(
        balances(*[(a % 7, "USDT", 1.0) for a in range(50)]),
        positions(*[(a, "BTCUSDT", 1.0, 50_000.0) for a in range(5, 12)]),
    )
    r = small_engine.evaluate(b)
    assert len(r) == 12
    assert r.account.tolist() == list(range(12))
    assert r.equity.tolist() == [8.0] + [7.0] * 6 + [0.0] * 5


def test_symbols_are_resolved_against_each_universe_separately(small, demo):
    """One book, two universes with different symbol orders: each evaluation maps the
    book's symbols to its own universe."""
    b = cm.Book.from_arrays(balances((1, "BTC", 1.0), (1, "USDC", 10.0)))
    assert cm.Engine(small).evaluate(b).equity[0] == 50_010.0
    assert cm.Engine(demo).evaluate(b).equity[0] == 95_010.0
    assert cm.Engine(small).evaluate(b).equity[0] == 50_010.0


def test_book_accounts_are_read_only():
    b = bal_book()
    with pytest.raises(ValueError):
        b.accounts[0] = 99


def test_a_book_is_immutable_so_its_grouping_never_goes_stale(small):
    """The tables cannot be reassigned or edited, nor their columns written into (a stale
    grouping would silently give the old numbers); the caller's arrays are shared, not
    copied, and stay writable."""
    qty = np.array([1_000.0, 2.0])
    entry = np.array([50_000.0])
    b = cm.Book.from_arrays(
        {"account": np.array([1, 2]), "asset": ["USDT", "BTC"], "qty": qty},
        {"account": [1], "market": ["BTCUSDT"], "qty": [0.5], "entry_price": entry},
    )
    before = cm.Engine(small).evaluate(b).equity.tolist()
    with pytest.raises(AttributeError, match="immutable"):
        b.balances = {"account": [], "asset": [], "qty": []}  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        b.positions = b.balances  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        setattr(b, "_" + "grouped", None)  # even the grouping cannot be swapped
    with pytest.raises(AttributeError, match="immutable"):
        del b.balances
    with pytest.raises(TypeError):
        b.balances["qty"] = np.zeros(2)  # type: ignore[index]
    with pytest.raises(TypeError):
        del b.positions["entry_price"]  # type: ignore[attr-defined]
    for table in (b.balances, b.positions):
        for name, column in table.items():
            array = getattr(column, "codes", column)
            assert not array.flags.writeable, name
            with pytest.raises(ValueError, match="read-only"):
                array[0] = array[0]
    # Shared with the caller's arrays (nothing copied), which stay the caller's to write.
    assert np.shares_memory(b.balances["qty"], qty) and qty.flags.writeable
    assert np.shares_memory(b.positions["entry_price"], entry) and entry.flags.writeable
    assert cm.Engine(small).evaluate(b).equity.tolist() == before
    # A changed book is a new book.
    b2 = cm.Book.from_arrays({**b.balances, "qty": np.array([1_000.0, 3.0])}, b.positions)
    assert cm.Engine(small).evaluate(b2).equity[1] == before[1] + 50_000.0


def test_a_shared_column_written_before_the_rows_are_rebuilt_is_a_typed_error(small):
    """A book grouped into the kernel's layout rebuilds its per-account rows from the
    shared columns on the first call that reads them (liquidation prices here); a caller who
    broke the rule above by writing an invalid value into a shared array meanwhile gets the
    BookError naming the row and column, never a panic."""
    pqty = np.array([0.5, -1.0])
    b = cm.Book.from_arrays(  # symbols in the universe's order: the book itself is bound
        {"account": np.array([1, 2]), "asset": ["BTC", "ETH"], "qty": np.array([1.0, 20.0])},
        {"account": [1, 2], "market": ["BTCUSDT"] * 2, "qty": pqty, "entry_price": [5e4] * 2},
    )
    engine = cm.Engine(small)
    engine.evaluate(b)  # the layout alone: no per-account rows built yet
    assert b.grouping(small).layout_nbytes > 0
    pqty[1] = np.nan
    with pytest.raises(cm.exceptions.BookError, match="row 1") as err:
        engine.liquidation_prices(b)
    assert (err.value.table, err.value.row, err.value.column) == ("positions", 1, "qty")


# ---- empty and omitted tables --------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda: cm.Book.from_arrays(),
        lambda: cm.Book.from_arrays({}, {}),
        lambda: cm.Book.from_arrays(balances(), positions()),
        lambda: cm.Book.from_pandas(pd.DataFrame(balances()), pd.DataFrame(positions())),
        lambda: cm.Book.from_arrow(
            pa.table({"account": pa.array([], pa.int64()), "asset": pa.array([], pa.string()),
                      "qty": pa.array([], pa.float64())})
        ),
    ],
    ids=["omitted", "empty-dicts", "empty-columns", "empty-pandas", "empty-arrow"],
)  # fmt: skip
def test_an_empty_book_gives_an_empty_result(small, make):
    b = make()
    assert b.n_accounts == 0 and b.accounts.tolist() == []
    for r in (cm.Engine(small).evaluate(b), reference.evaluate(small, b)):
        assert len(r) == 0
        assert r.account.dtype == np.int64 and r.equity.dtype == np.float64
        assert r.liquidatable.dtype == np.bool_
        assert r.summary()["accounts"] == 0


def test_a_book_with_only_balances(small_engine):
    r = small_engine.evaluate(cm.Book.from_arrays(balances((1, "USDT", 3.0))))
    assert (r.equity[0], r.im[0], r.mm[0], r.margin_ratio[0]) == (3.0, 0.0, 0.0, 0.0)


def test_a_book_with_only_positions(small_engine):
    b = cm.Book.from_arrays(positions=positions((1, "BTCUSDT", 1.0, 49_000.0)))
    r = small_engine.evaluate(b)
    assert (r.equity[0], r.upnl[0], r.mm[0]) == (1_000.0, 1_000.0, 500.0)


def test_book_to_pandas_spells_out_symbols(small):
    b = cm.Book.from_arrays(balances((1, 2, 1.0)), positions((1, 0, 1.0, 2.0)))
    bal, pos = b.to_pandas(small)
    assert bal["asset"].tolist() == ["BTC"]
    assert pos["market"].tolist() == ["BTCUSDT"]
    assert list(pos.columns) == ["account", "market", "qty", "entry_price", "isolated_margin"]


def test_threads_binding_one_fresh_book_at_once_never_deadlock() -> None:
    # Binding computes the layout's used codes once per book, in parallel and without the GIL;
    # a thread that waited for that computation while holding the GIL deadlocked the two (the
    # first needs the GIL back to return). Run in a subprocess: a deadlock holds the GIL, so
    # only a parent process can see it and fail the test instead of hanging the suite.
    import subprocess
    import sys

    script = """
import threading
import crossmargin as cm
from crossmargin.synth import generate
u = cm.Universe.demo()
b = generate(u, n_accounts=200_000, seed=3)
cols = ({k: (v.codes if k == "asset" else v) for k, v in b.balances.items()},
        {k: (v.codes if k == "market" else v) for k, v in b.positions.items() if k != "side"})
for _ in range(6):
    book = cm.Book.from_arrays(*cols)
    start = threading.Barrier(6)
    def bind():
        start.wait()
        book.grouping(u)
    threads = [threading.Thread(target=bind) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print("ok")
"""
    run = [sys.executable, "-c", script]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("offsets", "bits", "bit_offset"),
    [
        (np.array([0, 3, 10], np.int64), None, 0),  # past the data
        (np.array([0, 3, 2], np.int32), None, 0),  # decreasing
        (np.array([-1, 3], np.int32), None, 0),  # negative
        (np.array([0, 3, 6], np.int32), np.array([3], np.uint8), 7),  # bitmap too short
    ],
)
def test_arrow_buffers_that_do_not_hold_their_rows_are_left_to_arrow(offsets, bits, bit_offset):
    # The core reads the buffers only once they hold every row the offsets name; else the
    # caller's general path decides (no out-of-bounds read, no panic).
    data = np.frombuffer(b"BTCETHUSD", np.uint8)
    assert _core.encode_arrow_strings(offsets, data, bits, bit_offset) is None
    assert _core.encode_arrow_strings(np.array([0, 3, 9], np.int32), data, None, 0) is not None
