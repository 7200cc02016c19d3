"""One result protocol: every result type converts with ``to_pandas()``, ``to_arrow()``,
``to_polars()``, ``to_numpy()`` and ``__arrow_c_stream__``, all meaning its main table (named
in its docstring and by ``main_table``); every table is reachable by name in ``tables``."""

from __future__ import annotations

import math
from typing import Any

import crossmargin as cm
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from crossmargin import distributed, reference, synth
from crossmargin.bench import compare
from crossmargin.table import Tabular
from helpers import book

# (result type, the name of its main table)
MAIN = {
    "Table": "table",
    "MarginResult": "table",
    "StressResult": "scenarios",
    "ReverseStressResult": "per_underlying",
    "CascadeResult": "events",
    "ReferenceCascadeResult": "events",
    "FundingResult": "payments",
    "SolvencyResult": "accounts",
    "CapitalEfficiency": "accounts",
    "Explanation": "positions",
    "ShardedMargin": "top",
    "Comparison": "disagreements",
}


def a_book() -> cm.Book:
    return book(
        bal=[(1, "USDT", 1_000.0), (2, "USDT", 300.0), (2, "BTC", 0.01), (3, "ETH", -0.5)],
        pos=[
            (1, "BTCUSDT", 0.5, 49_000.0),
            (2, "ETHUSDT", -2.0, 1_900.0, 100.0),
            (3, "BTCUSDT", -0.1, 50_500.0),
            (3, "BTCUSD", 20.0, 51_000.0),
        ],
    )


def every_result(u: cm.Universe) -> dict[str, Any]:
    """One result of each type, from the small universe."""
    eng = cm.Engine(u, threads=1)
    b = a_book()
    cfg = cm.CascadeConfig(shock={"BTC": -0.3}, insurance_fund=100.0)
    margin = eng.evaluate(b)
    demo = cm.Universe.demo()
    return {
        "Table": eng.greeks(b),
        "MarginResult": margin,
        "StressResult": eng.stress(b, scenarios={"crash": {"BTC": -0.3}, "rally": {"BTC": 0.2}}),
        "ReverseStressResult": eng.reverse_stress(b, insurance_fund=10.0),
        "CascadeResult": eng.cascade(b, config=cfg),
        "ReferenceCascadeResult": reference.cascade(u, b, cfg),
        "FundingResult": eng.apply_funding(b, rates={"BTCUSDT": 0.0003, "ETHUSDT": -0.0001}),
        "SolvencyResult": eng.solvency(b, exchange_assets={"USDT": 900.0}, stress={"BTC": -0.3}),
        "CapitalEfficiency": eng.capital_efficiency(b),
        "Explanation": eng.explain(b, account=3),
        "ShardedMargin": distributed.summarize(margin, top_k=2),
        "Comparison": compare(
            lambda v: {"im": 1.0}, synth.generate(demo, n_accounts=5, seed=1), demo, verbose=False
        ),
    }


@pytest.fixture(scope="module")
def results(small: cm.Universe) -> dict[str, Any]:
    return every_result(small)


def same_values(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype == object or got.dtype == object:
        assert got.tolist() == want.tolist(), what
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("kind", list(MAIN))
def test_every_result_converts_its_main_table(results: dict[str, Any], kind: str) -> None:
    r = results[kind]
    assert type(r).__name__ == kind
    assert r.main_table == MAIN[kind]
    tables = r.tables
    assert next(iter(tables)) == MAIN[kind]  # the main table first
    assert all(isinstance(t, cm.Table) for t in tables.values())
    main = tables[MAIN[kind]]
    if isinstance(r, cm.Table):
        assert main is r
    else:
        assert isinstance(r, Tabular) or kind == "ShardedMargin"  # adopted (distributed)
        assert main is getattr(r, MAIN[kind])
        # The docstring says which table is the main one.
        docs = " ".join(" ".join((c.__doc__ or "").split()) for c in type(r).__mro__)
        assert f'**main** ``"{MAIN[kind]}"``' in docs
    assert len(main.columns) > 0

    frame = r.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == main.columns and len(frame) == len(main)
    arrow = r.to_arrow()
    assert isinstance(arrow, pa.Table)
    assert arrow.column_names == main.columns and arrow.num_rows == len(main)
    numpy = r.to_numpy()
    assert isinstance(numpy, np.ndarray) and numpy.shape == (len(main),)
    assert list(numpy.dtype.names or ()) == main.columns
    stream = pa.table(r)  # through __arrow_c_stream__
    assert stream.equals(arrow)
    for c in main.columns:
        same_values(frame[c].to_numpy(), main[c], f"{kind}.to_pandas()[{c}]")
        same_values(arrow.column(c).to_numpy(zero_copy_only=False), main[c], f"{kind} arrow {c}")
        same_values(numpy[c], main[c], f"{kind}.to_numpy()[{c}]")
        assert numpy.dtype[c] == main[c].dtype, c


@pytest.mark.parametrize("kind", list(MAIN))
def test_every_result_converts_to_polars_the_same_way(results: dict[str, Any], kind: str) -> None:
    import polars as pl  # the test extra installs it: a missing one fails, not skips

    r = results[kind]
    main = r.tables[MAIN[kind]]
    frame = r.to_polars()
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == main.columns and frame.height == len(main)
    assert pl.DataFrame(r).equals(frame)  # polars reads the Arrow stream too


def test_the_other_tables_are_there_by_name(results: dict[str, Any]) -> None:
    names = {kind: list(r.tables) for kind, r in results.items()}
    assert names["StressResult"] == ["scenarios", "matrix"]
    assert names["CascadeResult"] == ["events", "rounds", "ledger"]
    assert names["FundingResult"] == ["payments", "markets", "counterparty"]
    assert names["SolvencyResult"] == ["accounts", "assets", "assets_stressed"]
    assert names["Explanation"] == ["positions", "balances", "orders", "checks"]
    assert names["ShardedMargin"] == ["top", "histogram"]
    st = results["StressResult"]
    matrix = st.tables["matrix"]
    assert matrix.columns == ["account", "crash", "rally"]
    np.testing.assert_array_equal(matrix.account, st.account)
    np.testing.assert_array_equal(matrix.crash, st.matrix[:, 0])
    pd.testing.assert_frame_equal(
        matrix.to_pandas().set_index("account").rename_axis(None),
        st.matrix_frame(),
        check_names=False,
    )
    e = results["Explanation"]
    checks = e.tables["checks"]
    assert checks.name.tolist() == [c.name for c in e.checks]
    assert checks.passed.tolist() == [c.passed for c in e.checks]


def test_a_result_without_stress_has_no_stressed_table(small: cm.Universe) -> None:
    sv = cm.Engine(small).solvency(a_book())
    assert list(sv.tables) == ["accounts", "assets"]


def test_the_matrix_table_refuses_a_scenario_named_account(small: cm.Universe) -> None:
    r = cm.Engine(small).stress(a_book(), scenarios={"account": {"BTC": -0.1}})
    assert len(r.to_arrow()) == 1  # the main table is unaffected
    with pytest.raises(cm.TableError, match="clashes with the account column"):
        r.tables  # noqa: B018


def test_a_table_as_numpy_keeps_every_dtype() -> None:
    t = cm.Table(
        {
            "account": np.array([3, 1], dtype=np.int64),
            "market": np.array(["BTCUSDT", "ETHUSDT"], dtype=object),
            "flag": np.array([True, False]),
            "x": np.array([1.5, math.inf]),
        }
    )
    a = t.to_numpy()
    assert a.dtype.names == ("account", "market", "flag", "x")
    assert [a.dtype[c] for c in t.columns] == [t[c].dtype for c in t.columns]
    assert a[1].tolist() == (1, "ETHUSDT", False, math.inf)
    assert cm.Table({}).to_numpy().shape == (0,)
    assert pa.table(t).column("market").type == pa.string()
