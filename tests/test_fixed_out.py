"""``out=`` under fixed-point arithmetic (docs/MODEL.md "Fixed-point arithmetic", Cost): a
previous result's ten columns and its four int64 raw columns are overwritten in place with the
bits a fresh call returns, and checked like numpy's ``out`` (dtype, writability, contiguity,
the book's accounts), naming the column."""

from __future__ import annotations

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import _core, venues
from crossmargin.exceptions import ConfigError, TableError, TableTypeError
from crossmargin.result import MARGIN_COLUMNS, RAW_COLUMNS

from benches.fixed_point import drift_book, snapshot

FIELDS = (*MARGIN_COLUMNS[1:], *RAW_COLUMNS)
MOVED = {"SOL": 151.25, "BTC-PERP": 59_990.5, "USDC": 1.0001}


def engine(arithmetic: str = "fixed", threads: int = 2) -> cm.Engine:
    spot, perp = snapshot()
    return cm.Engine(venues.drift_universe(spot, perp, arithmetic=arithmetic), threads=threads)


def assert_same_bits(a: cm.MarginResult, b: cm.MarginResult) -> None:
    for f in FIELDS:
        x, y = np.asarray(a[f]), np.asarray(b[f])
        assert x.dtype == y.dtype, f
        bad = np.flatnonzero(x.view(np.uint8 if x.dtype == bool else np.uint64) != y.view(
            np.uint8 if y.dtype == bool else np.uint64))  # fmt: skip
        assert not len(bad), f"{f} differs at rows {bad[:5]}: {x[bad[:5]]} vs {y[bad[:5]]}"


def test_out_holds_the_bits_of_a_fresh_call_raw_columns_included() -> None:
    book = drift_book(5_000, seed=11)
    for threads in (1, 2):
        eng = engine(threads=threads)
        want = eng.evaluate(book, prices=MOVED)
        out = eng.evaluate(book)  # at the snapshot's prices: every column differs somewhere
        assert any(not np.array_equal(out[f], want[f]) for f in RAW_COLUMNS)
        ids = [id(out[f]) for f in FIELDS]
        again = eng.evaluate(book, prices=MOVED, out=out)
        assert again is out and [id(out[f]) for f in FIELDS] == ids
        assert_same_bits(want, again)
        # and back: the same arrays at the snapshot's prices equal a fresh call there
        assert_same_bits(eng.evaluate(book), eng.evaluate(book, out=out))


def test_out_is_checked_like_numpys_out_raw_columns_by_name() -> None:
    eng = engine(threads=1)
    book, other = drift_book(300, seed=1), drift_book(301, seed=2)
    r = eng.evaluate(book)
    with pytest.raises(TableError, match="accounts"):
        eng.evaluate(other, out=r)
    # a float64 result has no raw columns: refused by the first missing one's name
    floats = engine("float64", threads=1).evaluate(book)
    with pytest.raises(TableError, match=r"out\['total_collateral_initial_raw'\]: missing"):
        eng.evaluate(book, out=floats)
    cols = r.to_dict()
    cols["margin_requirement_maint_raw"] = cols["margin_requirement_maint_raw"].astype(np.float64)
    with pytest.raises(
        TableTypeError, match=r"out\['margin_requirement_maint_raw'\]: dtype float64 .* int64"
    ):
        eng.evaluate(book, out=cm.MarginResult(cols))
    cols = r.to_dict()
    cols["total_collateral_maint_raw"] = np.asarray(cols["total_collateral_maint_raw"]).copy()
    cols["total_collateral_maint_raw"].flags.writeable = False
    with pytest.raises(TableError, match=r"out\['total_collateral_maint_raw'\]: not a writable"):
        eng.evaluate(book, out=cm.MarginResult(cols))
    cols = r.to_dict()
    wide = np.zeros(2 * len(book.accounts), dtype=np.int64)
    cols["margin_requirement_initial_raw"] = wide[::2]
    with pytest.raises(
        TableError, match=r"out\['margin_requirement_initial_raw'\]: not a writable contiguous"
    ):
        eng.evaluate(book, out=cm.MarginResult(cols))
    cols = r.to_dict()
    cols["total_collateral_maint_raw"] = cols["total_collateral_initial_raw"]
    with pytest.raises(TableError, match=r"out\['total_collateral_maint_raw'\]: shares memory"):
        eng.evaluate(book, out=cm.MarginResult(cols))
    with pytest.raises(ConfigError, match="out"):
        eng.evaluate(book, unit="USDC", out=r)
    # The portfolio models write no raw columns: out= would leave them stale.
    with pytest.raises(ConfigError, match="writes no \\*_raw columns"):
        eng.evaluate(book, model="portfolio", out=r)


def test_an_account_leaving_the_integer_range_is_named_with_out_too() -> None:
    eng = engine(threads=1)
    ok = cm.Book.from_arrays(balances={"account": [1, 2], "asset": ["USDC", "SOL"],
                                       "qty": [10.0, 1.0]})  # fmt: skip
    big = cm.Book.from_arrays(balances={"account": [1, 2], "asset": ["USDC", "SOL"],
                                        "qty": [10.0, 1e12]})  # fmt: skip
    out = eng.evaluate(ok)
    with pytest.raises(ConfigError, match="account 2: a value leaves the fixed-point range"):
        eng.evaluate(big, out=out)


def test_every_instruction_set_level_gives_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixed-point account loop is compiled for baseline x86-64, v3 and v4 and chosen like
    the float kernel's level (``CROSSMARGIN_SIMD``): integers and correctly rounded
    conversions, so each level this CPU runs gives the same bits, raw columns included."""
    book = drift_book(3_000, seed=5)
    levels, _ = _core.simd_levels()
    monkeypatch.setenv("CROSSMARGIN_SIMD", "scalar")
    want = engine().evaluate(book, prices=MOVED)
    for level in levels:
        monkeypatch.setenv("CROSSMARGIN_SIMD", level)
        assert_same_bits(want, engine().evaluate(book, prices=MOVED))
