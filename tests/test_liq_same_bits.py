"""`benches/liq_same_bits.py`: the bit-for-bit comparison of two builds' liquidation-price
columns names every column that differs (a last-bit change, a dtype, a missing column) and
accepts NaN against NaN."""

from __future__ import annotations

import numpy as np

from benches.liq_same_bits import differences


def columns() -> dict[str, np.ndarray]:
    return {
        "build": np.array("x"),
        "mark.liq_price": np.array([1.5, np.nan, 3.0]),
        "mark.row": np.array([0, 1, 2], dtype=np.int64),
        "mark.market": np.array(["A", "B", "A"], dtype=object),
    }


def test_identical_columns_with_nans_pass() -> None:
    assert differences(columns(), columns()) == ([], [])


def test_a_last_bit_a_dtype_and_a_missing_column_are_named() -> None:
    new = columns()
    new["mark.liq_price"] = new["mark.liq_price"].copy()
    new["mark.liq_price"][2] = np.nextafter(3.0, 4.0)
    new["mark.row"] = new["mark.row"].astype(np.uint32)
    del new["mark.market"]
    diff, within = differences(columns(), new)
    assert within == []
    assert len(diff) == 3, diff
    assert any(d.startswith("mark.liq_price: 1 rows differ, first 2") for d in diff)
    assert any(d.startswith("mark.row: int64") for d in diff)
    assert "mark.market: only in old" in diff


def test_a_nan_against_a_number_differs() -> None:
    new = columns()
    new["mark.liq_price"] = np.array([1.5, 2.0, 3.0])
    want = ["mark.liq_price: 1 rows differ, first 1: nan vs 2.0"]
    assert differences(columns(), new) == (want, [])


def test_a_tolerance_accepts_rounding_and_names_what_it_accepted() -> None:
    new = columns()
    new["mark.liq_price"] = np.array([1.5, np.nan, 3.0 * (1 + 2e-12)])
    diff, within = differences(columns(), new, rtol=1e-11)
    assert diff == []
    assert len(within) == 1 and within[0].startswith("mark.liq_price: 1 rows differ, largest")
    # Beyond the tolerance, or a NaN against a number: still a difference.
    assert differences(columns(), new, rtol=1e-12)[0] != []
    new["mark.liq_price"] = np.array([1.5, 2.0, 3.0])
    diff, within = differences(columns(), new, rtol=1.0)
    assert within == [] and diff[0].endswith("NaN rows differ")
