"""crossmargin.distributed on a LocalCluster (2 worker processes): sharded margin, stress and
cascades equal the unsharded engine for any number of partitions."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from fractions import Fraction
from pathlib import Path

import crossmargin as cm
import distributed  # noqa: F401  (the test extra installs it: a missing one fails, not skips)
import numpy as np
import pyarrow.parquet as pq
import pytest
from crossmargin import distributed as cmd
from crossmargin.cli import main
from crossmargin.risk.stress import scenario_prices
from crossmargin.synth import generate
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_partitions import damage

PARTS = (1, 2, 3, 7)


@pytest.fixture(scope="module")
def universe() -> cm.Universe:
    return cm.Universe.demo()


@pytest.fixture(scope="module")
def book(universe: cm.Universe) -> cm.Book:
    return generate(universe, n_accounts=3_000, seed=11)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, book, universe) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("parts")
    return {n: cmd.write_partitioned(book, universe, root / f"n{n}", n) for n in PARTS}


def _columns_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype, k
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k


# ---- partitioning ------------------------------------------------------------------------
def test_every_account_lands_in_exactly_one_partition(datasets, book):
    folder = datasets[7]
    seen: dict[int, int] = {}
    total = 0
    for i, p in enumerate(cmd.partitions(folder)):
        part = cmd.read_partition(p)
        total += part.n_accounts
        for a in part.accounts.tolist():
            assert a not in seen
            seen[a] = i
        assert set(cmd.partition_of(part.accounts, 7).tolist()) <= {i}
    assert total == book.n_accounts
    assert json.loads((folder / cmd.MANIFEST).read_text())["accounts"] == book.n_accounts


def test_partitions_keep_the_books_encoding_and_row_order(datasets, book):
    whole = cmd.read_partitioned(datasets[3])
    assert whole.balances["asset"].labels is None  # universe indices stay indices
    assert whole.n_accounts == book.n_accounts


def test_the_universe_ships_as_its_fields_and_rebuilds_equal(universe):
    import pickle

    spec = pickle.loads(pickle.dumps(cmd.UniverseSpec.of(universe)))
    assert spec.build() == universe
    assert spec.build() is spec.build()


# ---- exact sums --------------------------------------------------------------------------
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(st.lists(floats, max_size=60), st.integers(1, 7))
def test_exact_sums_merge_to_fsum_for_any_split(values, n):
    x = np.array(values, dtype=np.float64)
    chunks = np.array_split(x, n)
    merged = sum((cmd.ExactSum.of(c) for c in chunks), cmd.ExactSum())
    # The exact sum, correctly rounded (beyond float64: test_an_exact_sum_beyond_float64_...).
    exact = sum(map(Fraction, values), Fraction(0))
    try:
        expected = float(exact)
    except OverflowError:
        assume(False)
    assert float(merged) == expected
    with contextlib.suppress(OverflowError):  # fsum agrees wherever it has an answer
        assert math.fsum(values) == expected


def test_an_exact_sum_beyond_float64_is_infinite() -> None:
    top = np.finfo(np.float64).max
    assert float(cmd.ExactSum.of([top, top])) == math.inf
    assert float(cmd.ExactSum.of([-top, -top])) == -math.inf


def test_exact_sums_handle_subnormals_and_infinities():
    tiny = np.array([5e-324, 5e-324, -1e-320, 1e300, -1e300])
    assert float(cmd.ExactSum.of(tiny)) == math.fsum(tiny.tolist())
    assert float(cmd.ExactSum.of([1.0, math.inf])) == math.inf


# ---- margin ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", PARTS)
def test_sharded_margin_equals_unsharded(client, datasets, universe, book, tmp_path, n):
    r = cm.Engine(universe).evaluate(book)
    got = cmd.evaluate(client, datasets[n], universe, out=tmp_path)
    want = cmd.summarize(r)
    assert got.summary == want.summary
    assert got.partitions == n
    _columns_equal(got.histogram.to_dict(), want.histogram.to_dict())
    _columns_equal(got.top.to_dict(), want.top.to_dict())
    # The exact sums are math.fsum of the unsharded columns; counts are summary()'s.
    plain = r.summary()
    for k in ("equity", "upnl", "adj_equity_maint", "im", "mm", "free_collateral"):
        assert got.summary[k] == math.fsum(r[k].tolist())
        assert got.summary[k] == pytest.approx(plain[k], rel=1e-12, abs=1e-6)
    for k in ("accounts", "liquidatable", "bankrupt", "accounts_exhausted", "max_margin_ratio"):
        assert got.summary[k] == plain[k]
    # Per-partition outputs hold every account's row, bit for bit.
    parts = [pq.read_table(p / "margin.parquet") for p in sorted(tmp_path.glob("part-*"))]
    cols = {k: np.concatenate([t.column(k).to_numpy() for t in parts]) for k in r.columns}
    order = np.argsort(cols["account"])
    _columns_equal({k: v[order] for k, v in cols.items()}, r.to_dict())


def test_sharded_margin_takes_price_overrides(client, datasets, universe, book):
    moves = {"BTC": 45_000.0, "ETH": 2_000.0}
    r = cm.Engine(universe).evaluate(book, prices=moves)
    assert cmd.evaluate(client, datasets[3], universe, prices=moves).summary == (
        cmd.summarize(r).summary
    )


# ---- stress ------------------------------------------------------------------------------
SCENARIOS = {"crash": {"BTC": -0.3, "ETH": -0.35}, "rally": {"BTC": 0.25}, "flat": {}}


@pytest.mark.parametrize("n", (1, 3, 7))
def test_sharded_stress_equals_unsharded(client, datasets, universe, book, tmp_path, n):
    eng = cm.Engine(universe)
    want = eng.stress(book, SCENARIOS, insurance_fund=1e6).scenarios
    got = cmd.stress(client, datasets[n], universe, SCENARIOS, insurance_fund=1e6, out=tmp_path)
    for k in ("scenario", "liquidatable", "bankrupt", "insurance_fund", "fund_exhausted"):
        assert np.array_equal(got[k], want[k]), k
    np.testing.assert_allclose(got.shortfall, want.shortfall, rtol=1e-12)
    np.testing.assert_allclose(got.bad_debt, want.bad_debt, rtol=1e-12)
    # Exactly the correctly rounded sums of the unsharded per-account numbers.
    for s, moves in enumerate(SCENARIOS.values()):
        a, m, _ = scenario_prices(universe, "x", moves)
        r = eng.evaluate(book, prices=(a, m))
        assert got.shortfall[s] == math.fsum(np.maximum(r.mm - r.adj_equity_maint, 0).tolist())
        assert got.bad_debt[s] == math.fsum(np.maximum(-r.equity, 0).tolist())
    assert len(list(tmp_path.glob("part-*/stress_matrix.parquet"))) == n


# ---- cascades ----------------------------------------------------------------------------
def _same_cascade(a: cm.CascadeResult, b: cm.CascadeResult) -> None:
    _columns_equal(a.events.to_dict(), b.events.to_dict())
    _columns_equal(a.rounds.to_dict(), b.rounds.to_dict())
    _columns_equal(a.ledger.to_dict(), b.ledger.to_dict())
    assert (a.bad_debt, a.fees, a.insurance_fund, a.truncated) == (
        b.bad_debt,
        b.fees,
        b.insurance_fund,
        b.truncated,
    )
    assert a._totals == b._totals
    for t in ("balances", "positions"):
        x, y = getattr(a.final_book, t), getattr(b.final_book, t)
        assert x.keys() == y.keys()
        for k in x:
            xv = x[k].codes if hasattr(x[k], "codes") else x[k]
            yv = y[k].codes if hasattr(y[k], "codes") else y[k]
            assert np.array_equal(xv, yv), (t, k)


CONFIGS = {
    "adl": cm.CascadeConfig(
        shock={"BTC": -0.35, "ETH": -0.4, "SOL": -0.45},
        insurance_fund=2_000.0,
        liquidity=cm.DepthCurve([(0.002, 2e5), (0.02, 2e5), (0.06, 2e7)]),
        deleverage="adl",
        max_rounds=30,
    ),
    "socialized": cm.CascadeConfig(
        path=[{"BTC": -0.2}, {"BTC": -0.4, "ETH": -0.45}],
        insurance_fund=0.0,
        liquidity=cm.SqrtImpact(daily_volume=5e6, sigma=0.05),
        deleverage="socialized_loss",
        target_margin_ratio=0.8,
        max_rounds=30,
    ),
    "events": cm.CascadeConfig(
        shock={"BTC": -0.3, "SOL": -0.4},
        mode="events",
        max_rounds=40,
        insurance_fund=500.0,
        liquidity=cm.SqrtImpact(daily_volume=2e6),
    ),
}


@pytest.fixture(scope="module")
def small(universe, tmp_path_factory):
    b = generate(universe, n_accounts=600, seed=5, median_leverage=8.0)
    root = tmp_path_factory.mktemp("cascade")
    return b, {n: cmd.write_partitioned(b, universe, root / f"n{n}", n) for n in (1, 2, 5)}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_sharded_cascade_equals_engine_cascade(client, universe, small, name):
    b, folders = small
    cfg = CONFIGS[name]
    want = cm.Engine(universe).cascade(b, cfg)
    assert len(want.events) > 0
    if name == "adl":
        assert (want.events.kind == "adl").any()
    if name == "socialized":
        assert (want.events.kind == "socialized_loss").any()
    for n, folder in folders.items():
        got = cmd.cascade(client, folder, universe, cfg)
        assert got.check_conservation()
        _same_cascade(got, want)
        assert n >= 1


def test_sharded_cascade_writes_final_books_per_partition(client, universe, small, tmp_path):
    b, folders = small
    cfg = CONFIGS["adl"]
    want = cm.Engine(universe).cascade(b, cfg)
    got = cmd.cascade(client, folders[5], universe, cfg, out=tmp_path)
    assert got.final_book.n_accounts == 0
    parts = sorted(tmp_path.glob("part-*/cascade_final"))
    assert len(parts) == 5
    assert sum(cm.read_book(p).n_accounts for p in parts) == want.final_book.n_accounts


def test_sharded_cascade_refuses_holdings_beyond_the_ledger_like_engine_cascade(
    client, universe, tmp_path
):
    """Each shard holds 6e27 USDT, under the ledger's 1e28 units; together they do not: the
    sharded run refuses the book as Engine.cascade does."""
    big = cm.Book.from_arrays({"account": [1, 2], "asset": ["USDT", "USDT"], "qty": [6e27, 6e27]})
    folder = cmd.write_partitioned(big, universe, tmp_path / "big", 2)
    cfg = cm.CascadeConfig(shock={"BTC": -0.1})
    with pytest.raises(cm.PriceError, match="ledger's range") as engine_error:
        cm.Engine(universe).cascade(big, cfg)
    with pytest.raises(cm.PriceError, match="ledger's range") as sharded_error:
        cmd.cascade(client, folder, universe, cfg)
    assert sharded_error.value.field == engine_error.value.field == "cascade.holdings[USDT]"


# ---- verification: the driver schedules the manifest's partitions, workers verify theirs --
@pytest.mark.parametrize(
    "how",
    (
        "partition deleted",  # the driver's check
        "stray partition",
        "count edited",
        "manifest corrupt",
        "partition truncated",  # the workers' checks: only they read the files
        "file altered",
        "accounts edited",
    ),
)
def test_sharded_margin_refuses_a_damaged_dataset(client, datasets, universe, tmp_path, how):
    folder = Path(shutil.copytree(datasets[3], tmp_path / "book"))
    pattern = damage(folder, how)
    with pytest.raises(cm.BookError, match=pattern):
        cmd.evaluate(client, folder, universe)


def test_sharded_stress_and_cascade_refuse_a_truncated_partition(
    client, datasets, universe, tmp_path
):
    folder = Path(shutil.copytree(datasets[3], tmp_path / "book"))
    pattern = damage(folder, "partition truncated")
    with pytest.raises(cm.BookError, match=pattern):
        cmd.stress(client, folder, universe, SCENARIOS)
    with pytest.raises(cm.BookError, match=pattern):  # raised where the shard actor reads it
        cmd.cascade(client, folder, universe, CONFIGS["adl"])


# ---- CLI ---------------------------------------------------------------------------------
def _cli(args: list[str]) -> None:
    """``crossmargin ARGS`` in process; success may return or exit 0."""
    try:
        main(args)
    except SystemExit as e:
        assert e.code in (0, None), e.code


def test_cli_runs_margin_stress_and_cascade_on_a_scheduler(
    client, datasets, universe, book, tmp_path, capsys
):
    address = client.scheduler.address
    folder = str(datasets[3])
    _cli(
        [
            "margin",
            folder,
            "-u",
            "demo",
            "--scheduler",
            address,
            "-o",
            str(tmp_path / "m"),
            "--json",
            "-q",
        ]
    )
    s = json.loads(capsys.readouterr().out)
    assert s == json.loads(json.dumps(cmd.summarize(cm.Engine(universe).evaluate(book)).summary))
    assert len(list((tmp_path / "m").glob("part-*/margin.parquet"))) == 3
    _cli(
        [
            "stress",
            folder,
            "-u",
            "demo",
            "--scheduler",
            address,
            "--scenario",
            "c:BTC=-0.3",
            "-o",
            str(tmp_path / "s"),
            "--json",
            "-q",
        ]
    )
    s = json.loads(capsys.readouterr().out)
    want = cm.Engine(universe).stress(book, {"c": {"BTC": -0.3}}).scenarios
    assert s["c"]["liquidatable"] == int(want.liquidatable[0])
    _cli(
        [
            "cascade",
            folder,
            "-u",
            "demo",
            "--scheduler",
            address,
            "--shock",
            "BTC=-0.3",
            "-o",
            str(tmp_path / "c"),
            "--json",
            "-q",
        ]
    )
    s = json.loads(capsys.readouterr().out)
    cfg = cm.CascadeConfig(shock={"BTC": -0.3})
    assert s["events"] == len(cm.Engine(universe).cascade(book, cfg).events)


def test_cli_reads_a_partitioned_folder_without_a_cluster(
    datasets, universe, book, tmp_path, capsys
):
    _cli(["margin", str(datasets[2]), "-u", "demo", "-o", str(tmp_path), "--json", "-q"])
    s = json.loads(capsys.readouterr().out)
    assert s["accounts"] == book.n_accounts
    assert s["liquidatable"] == cm.Engine(universe).evaluate(book).summary()["liquidatable"]
