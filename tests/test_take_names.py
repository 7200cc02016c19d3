"""``Engine.take_names``: the object columns of names (an event's market, kind and side, a
liquidation price's market) built by the core — ``names[codes]`` as numpy has it, for every
code dtype the engine emits, at any thread count, with every reference counted."""

from __future__ import annotations

import sys
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import _core
from hypothesis import given, settings
from hypothesis import strategies as st

NAMES = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
DTYPES = [np.uint8, np.uint32, np.int32, np.int64]


@pytest.fixture(scope="module")
def engines() -> list[_core.Engine]:
    u = cm.Universe.demo()
    return [_core.Engine(u.compiled, t) for t in (1, 2, 3)]


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.integers(-2, 4), max_size=300),
    repeat=st.sampled_from([1, 1000]),
    dtype=st.sampled_from(DTYPES),
)
def test_names_are_numpys_gather_with_the_fallback_beyond_the_names(
    engines: list[_core.Engine], codes: list[int], repeat: int, dtype: type
) -> None:
    if np.dtype(dtype).kind == "u":
        codes = [c % 256 for c in codes]
    c: np.ndarray = np.array(codes * repeat, dtype=dtype)  # long enough for several parallel chunks
    table = np.array([*NAMES, ""], dtype=object)
    expected = table[np.where((c >= 0) & (c < len(NAMES)), c, len(NAMES))]
    for e in engines:
        got = e.take_names(NAMES, c, "")
        assert got.dtype == object and got.shape == c.shape
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_code_outside_the_names_without_a_fallback_names_its_row(
    engines: list[_core.Engine], dtype: type
) -> None:
    c: np.ndarray = np.zeros(200_000, dtype=dtype)
    c[150_001] = 3
    c[170_000] = 7
    for e in engines:
        with pytest.raises(IndexError, match=r"codes\[150001\] = 3 is not an index into 3 names"):
            e.take_names(NAMES, c)


@pytest.mark.parametrize(
    "codes",
    [np.array([0.0]), np.arange(10, dtype=np.int64)[::2], [0, 1], np.zeros((2, 2), np.uint8)],
    ids=["float", "strided", "list", "2-d"],
)
def test_codes_of_another_kind_are_refused(engines: list[_core.Engine], codes: Any) -> None:
    with pytest.raises(TypeError, match="contiguous 1-D array of uint8, uint32, int32 or int64"):
        engines[0].take_names(NAMES, codes)


def test_every_row_holds_one_reference_released_with_the_array(engines: list[_core.Engine]) -> None:
    # Fresh (not interned) strings, so no other holder moves their counts meanwhile.
    names = ["".join(["name", str(i)]) for i in range(3)]
    missing = "".join(["miss", "ing"])
    before = [sys.getrefcount(x) for x in [*names, missing]]
    c = np.array([0, 1, 1, 2, 2, 2, 9, 9] * 50_000, dtype=np.int32)
    out = engines[1].take_names(names, c, missing)
    after = [sys.getrefcount(x) for x in [*names, missing]]
    held = [a - b for a, b in zip(after, before, strict=True)]
    assert held == [50_000, 100_000, 150_000, 100_000]
    del out
    assert [sys.getrefcount(x) for x in [*names, missing]] == before


def test_no_rows_give_an_empty_object_array(engines: list[_core.Engine]) -> None:
    out = engines[0].take_names(NAMES, np.zeros(0, dtype=np.uint32))
    assert out.dtype == object and out.shape == (0,)
