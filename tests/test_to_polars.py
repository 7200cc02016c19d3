"""``to_polars()`` on every result type; polars is optional (the ``test`` extra installs it)."""

from __future__ import annotations

import sys

import crossmargin as cm
import numpy as np
import polars  # noqa: F401  (the test extra installs it: a missing polars fails, not skips)
import pytest
from crossmargin import synth
from crossmargin.bench import compare
from helpers import book


def test_without_polars_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # `import polars` raises ImportError
    with pytest.raises(ImportError, match="pip install polars") as info:
        cm.Table({"x": [1.0]}).to_polars()
    assert isinstance(info.value, cm.OptionalDependencyError)
    assert info.value.package == "polars" and info.value.extra is None


def _same(frame: object, table: cm.Table) -> None:
    import polars as pl  # the test extra installs it: a missing one fails, not skips

    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == table.columns
    assert frame.height == len(table)
    for c in table.columns:
        want = table[c]
        got = frame[c].to_numpy()
        if want.dtype == object:
            assert got.tolist() == want.tolist(), c
        else:
            np.testing.assert_array_equal(got, want, err_msg=c)


def test_every_result_type_converts(small: cm.Universe) -> None:
    b = book(
        bal=[(1, "USDT", 1_000.0), (2, "USDT", -50.0)],
        pos=[(1, "BTCUSDT", 1.0, 40_000.0), (2, "ETHUSDT", -1.0, 1_800.0, 100.0)],
    )
    eng = cm.Engine(small)
    r = eng.evaluate(b)  # MarginResult: a Table
    _same(r.to_polars(), r)
    ce = eng.capital_efficiency(b)
    _same(ce.to_polars(), ce.accounts)
    lp = eng.liquidation_prices(b)  # a Table with a string column
    _same(lp.to_polars(), lp)
    st = eng.stress(b, {"crash": {"BTC": -0.3}})
    _same(st.scenarios.to_polars(), st.scenarios)
    _same(st.to_polars(), st.scenarios)  # the main table (tests/test_results.py: every type)


def test_a_table_with_strings_booleans_and_no_rows() -> None:
    import polars as pl  # the test extra installs it: a missing one fails, not skips

    t = cm.Table(
        {
            "account": np.array([3, 1], dtype=np.int64),
            "market": np.array(["BTCUSDT", "ETHUSDT"], dtype=object),
            "flag": np.array([True, False]),
            "x": np.array([1.5, np.inf]),
        }
    )
    f = t.to_polars()
    assert f.schema == {
        "account": pl.Int64,
        "market": pl.String,
        "flag": pl.Boolean,
        "x": pl.Float64,
    }
    _same(f, t)
    empty = cm.Table({"account": np.zeros(0, dtype=np.int64), "x": np.zeros(0)})
    assert empty.to_polars().shape == (0, 2)


def test_the_compare_disagreements_convert() -> None:
    u = cm.Universe.demo()
    c = compare(lambda v: {"im": -1.0}, synth.generate(u, n_accounts=20, seed=1), u, verbose=False)
    _same(c.disagreements.to_polars(), c.disagreements)
