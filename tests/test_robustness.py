"""Bad and edge inputs at every entry point: each gives a correct result or a typed
crossmargin error naming the row / field; never a panic, a raw numpy / pyarrow exception or
a silently dropped row. docs/ROBUSTNESS.md is the table of these cases."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import crossmargin as cm
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from crossmargin import _core, reference, resources, synth
from crossmargin.exceptions import (
    BookError,
    ConfigError,
    CrossmarginError,
    PriceError,
    ResourceError,
)
from crossmargin.options import black76
from crossmargin.testing import universe_and_book
from helpers import book, evaluate_both, make_small_universe, one
from hypothesis import given
from hypothesis import strategies as st

USDT = cm.Asset("USDT", 1.0)
LINEAR = [(50_000.0, 0.02, 0.01), (250_000.0, 0.04, 0.02), (math.inf, 0.1, 0.05)]


def perp(**kw: Any) -> cm.Market:
    args: dict[str, Any] = {"mark": 50_000.0, "brackets": LINEAR, **kw}
    return cm.Market("BTCUSDT", "perp", "USDT", "BTC", **args)


# ---- the universe ------------------------------------------------------------------------
@pytest.mark.parametrize("price", [math.nan, math.inf, -1.0, 1e19])
def test_bad_asset_price_is_a_config_error_naming_the_field(price: float) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([cm.Asset("BTC", price)])
    assert e.value.field == "assets[BTC].price"


@pytest.mark.parametrize("size", [0.0, -1.0, math.nan, math.inf, 1e-19, 1e19])
def test_bad_contract_size_is_a_config_error(size: float) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([USDT], [perp(contract_size=size)])
    assert e.value.field == "markets[BTCUSDT].contract_size"


@pytest.mark.parametrize("mark", [0.0, -5.0, math.nan, 1e-19, 1e19])
def test_mark_outside_the_domain_is_a_config_error(mark: float) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([USDT], [perp(mark=mark)])
    assert e.value.field == "markets[BTCUSDT].mark"


@pytest.mark.parametrize(
    ("brackets", "field"),
    [
        ([(100.0, 0.1, 0.05), (50.0, 0.2, 0.1)], "markets[BTCUSDT].brackets[1].bound"),
        ([(100.0, 0.1, 0.05), (100.0, 0.2, 0.1)], "markets[BTCUSDT].brackets[1].bound"),
        ([(math.inf, 0.1, 0.05), (math.inf, 0.2, 0.1)], "markets[BTCUSDT].brackets[1].bound"),
        ([(math.nan, 0.1, 0.05)], "markets[BTCUSDT].brackets[0].bound"),
        ([], "markets[BTCUSDT].brackets"),
    ],
)
def test_unsorted_or_overlapping_brackets_are_config_errors(
    brackets: list[tuple[float, float, float]], field: str
) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([USDT], [perp(brackets=brackets)])
    assert e.value.field == field


@pytest.mark.parametrize(
    "tiers", [[(100.0, 1.0), (50.0, 0.5)], [(100.0, 1.0), (100.0, 0.5)], [(math.nan, 1.0)]]
)
def test_unsorted_or_overlapping_haircut_tiers_are_config_errors(
    tiers: list[tuple[float, float]],
) -> None:
    with pytest.raises(ConfigError, match=r"assets\[BTC\]\.haircut_tiers\[\d\]\.bound"):
        cm.Universe([cm.Asset("BTC", 1.0, haircut_tiers=tiers)])


def test_duplicate_market_symbol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="duplicate market symbol"):
        cm.Universe([USDT], [perp(), perp()])


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"imf_factor": 1e4}, "markets[BTCUSDT].imf_factor"),
        ({"upnl_weight_maint": 1.5}, "markets[BTCUSDT].upnl_weight_maint"),
    ],
)
def test_factors_beyond_their_range_are_config_errors(kw: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([USDT], [perp(**kw)])
    assert e.value.field == field


def test_liability_weight_beyond_the_domain_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([cm.Asset("USDT", 1.0, liability_weight_maint=1e4)])
    assert e.value.field == "assets[USDT].liability_weight_maint"


def option(**kw: Any) -> cm.Market:
    args: dict[str, Any] = {"option_type": "call", "strike": 50_000.0, "expiry": 0.25, "iv": 0.6}
    return cm.Market("C", "option", "USDT", "BTC", None, **{**args, **kw})


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"expiry": math.nan}, "markets[C].expiry"),
        ({"expiry": -1.0}, "markets[C].expiry"),
        ({"iv": -0.5}, "markets[C].iv"),
        ({"strike": math.inf}, "markets[C].strike"),
    ],
)
def test_bad_option_terms_name_the_term_not_the_model_mark(
    kw: dict[str, float], field: str
) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe([USDT, cm.Asset("BTC", 50_000.0)], [option(**kw)])
    assert e.value.field == field


def test_bad_valuation_date_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        cm.Universe(
            [USDT, cm.Asset("BTC", 50_000.0)], [option(expiry="2030-01-01")], valuation_date="x"
        )
    assert e.value.field == "valuation_date"


@pytest.mark.parametrize(
    "build",
    [
        lambda: cm.Universe(None),  # type: ignore[arg-type]
        lambda: cm.Universe(5),  # type: ignore[arg-type]
        lambda: cm.Universe([USDT], "BTCUSDT"),  # type: ignore[arg-type]
        lambda: cm.Universe([USDT], [], [1, 2]),  # type: ignore[arg-type]
        lambda: cm.Universe.from_dict({"assets": 5}),
        lambda: cm.Universe.from_dict([1]),  # type: ignore[arg-type]
        lambda: cm.Universe([5]),  # type: ignore[list-item]
    ],
)
def test_universe_containers_of_the_wrong_type_are_config_errors(build: Any) -> None:
    with pytest.raises(ConfigError):
        build()


# ---- the book ----------------------------------------------------------------------------
def test_unknown_symbols_name_their_row(small_engine: cm.Engine) -> None:
    with pytest.raises(BookError) as e:
        small_engine.evaluate(book([(1, "USDT", 1.0), (2, "DOGE", 1.0)]))
    assert (e.value.table, e.value.row, e.value.column) == ("balances", 1, "asset")
    with pytest.raises(BookError) as e:
        small_engine.evaluate(book(None, [(1, "BTCUSDT", 1.0, 1.0), (1, "X", 1.0, 1.0)]))
    assert (e.value.table, e.value.row, e.value.column) == ("positions", 1, "market")


def test_column_length_mismatch_names_the_column() -> None:
    with pytest.raises(BookError) as e:
        cm.Book.from_arrays(
            None,
            {"account": [1, 2], "market": ["BTCUSDT"] * 2, "qty": [1.0, 2.0], "entry_price": [1.0]},
        )
    assert e.value.column == "entry_price"


@pytest.mark.parametrize(
    "ids",
    [
        [1, 2**63],
        [1, -(2**63) - 1],
        np.array([1, 2**64 - 1], dtype=np.uint64),
        [1.0, 1e20],
        [1, None],
        [1, "7"],
    ],
)
def test_ids_out_of_int64_name_their_row(ids: Any) -> None:
    with pytest.raises(BookError) as e:
        cm.Book.from_arrays({"account": ids, "asset": ["USDT"] * 2, "qty": [1.0, 1.0]})
    assert (e.value.row, e.value.column) in {(1, "account"), (None, "account")}


def test_extreme_int64_ids_are_kept_exactly(small_engine: cm.Engine) -> None:
    ids = [int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max), 0]
    r = small_engine.evaluate(book([(i, "USDT", 1.0) for i in ids]))
    assert r.account.tolist() == sorted(ids)


@pytest.mark.parametrize(
    "account", [5, np.array([[1, 2]]), np.ones((1, 1, 1), dtype=np.int64)], ids=str
)
def test_scalar_or_multi_dimensional_columns_are_book_errors(account: Any) -> None:
    with pytest.raises(BookError, match="account"):
        cm.Book.from_arrays({"account": account, "asset": ["USDT"], "qty": [1.0]})


@pytest.mark.parametrize(
    "qty",
    [
        np.array([1 + 2j]),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.array([True]),
        ["abc"],
    ],
    ids=["complex", "datetime", "bool", "str"],
)
def test_quantities_that_are_not_real_numbers_are_book_errors(qty: Any) -> None:
    with pytest.raises(BookError) as e:
        cm.Book.from_arrays({"account": [1], "asset": ["USDT"], "qty": qty})
    assert e.value.column == "qty"


@pytest.mark.parametrize("qty", [math.nan, math.inf, -math.inf, 1e29, -1e29])
def test_balance_qty_not_finite_or_beyond_the_ledger_names_its_row(qty: float) -> None:
    with pytest.raises(BookError) as e:
        book([(1, "USDT", 1.0), (1, "BTC", qty)])
    assert (e.value.table, e.value.row, e.value.column) == ("balances", 1, "qty")


@pytest.mark.parametrize(
    ("qty", "entry", "iso", "column"),
    [
        (1e19, 1.0, 0.0, "qty"),
        (math.nan, 1.0, 0.0, "qty"),
        (1.0, 1e-19, 0.0, "entry_price"),
        (1.0, 5e-324, 0.0, "entry_price"),
        (1.0, 1e19, 0.0, "entry_price"),
        (1.0, 0.0, 0.0, "entry_price"),
        (1.0, 1.0, -1.0, "isolated_margin"),
        (1.0, 1.0, math.inf, "isolated_margin"),
        (1.0, 1.0, 1e29, "isolated_margin"),
    ],
)
def test_position_rows_outside_the_domain_name_their_row(
    qty: float, entry: float, iso: float, column: str
) -> None:
    with pytest.raises(BookError) as e:
        book(None, [(1, "ETHUSDT", 1.0, 2_000.0), (2, "BTCUSD", qty, entry, iso)])
    assert (e.value.table, e.value.row, e.value.column) == ("positions", 1, column)


def test_a_mixed_symbol_column_names_the_row() -> None:
    with pytest.raises(BookError) as e:
        cm.Book.from_pandas(pd.DataFrame({"account": [1, 2], "asset": ["USDT", None], "qty": 1.0}))
    assert (e.value.row, e.value.column) == (1, "asset")


def test_duplicate_position_names_both_rows() -> None:
    with pytest.raises(BookError) as e:
        book(None, [(1, "BTCUSDT", 1.0, 1.0), (2, "BTCUSDT", 1.0, 1.0), (1, "BTCUSDT", 2.0, 1.0)])
    assert (e.value.row, e.value.other_row) == (2, 0)


def test_every_table_type_is_accepted_by_every_constructor(small_engine: cm.Engine) -> None:
    df = pd.DataFrame({"account": [1], "asset": ["USDT"], "qty": [5.0]})
    for b in (
        cm.Book.from_arrays(df),
        cm.Book.from_pandas(df),
        cm.Book.from_arrow(pa.Table.from_pandas(df)),
        cm.Book.from_pandas({"account": [1], "asset": ["USDT"], "qty": [5.0]}),  # type: ignore[arg-type]
    ):
        assert small_engine.evaluate(b).equity.tolist() == [5.0]
    with pytest.raises(BookError, match="expected a mapping of columns"):
        cm.Book.from_arrays([1, 2, 3])  # type: ignore[arg-type]


ALL_CALLS = {
    "evaluate": lambda e, b: e.evaluate(b),
    "liquidation_prices": lambda e, b: e.liquidation_prices(b),
    "stress": lambda e, b: e.stress(b, {"crash": {"BTC": -0.3}}),
    "reverse_stress": lambda e, b: e.reverse_stress(b, 1.0),
    "capital_efficiency": lambda e, b: e.capital_efficiency(b),
    "cascade": lambda e, b: e.cascade(b, cm.CascadeConfig(shock={"BTC": -0.3})),
    "apply_funding": lambda e, b: e.apply_funding(b, {"BTCUSDT": 0.0001}),
    "solvency": lambda e, b: e.solvency(b),
    "greeks": lambda e, b: e.greeks(b),
}


# Rows of each call's main table (the result protocol) for an empty book: none per account
# or position; one per scenario for stress, one per underlying for reverse stress.
EMPTY_ROWS = {"stress": 1, "reverse_stress": 2}


@pytest.mark.parametrize("call", ALL_CALLS, ids=str)
def test_an_empty_book_gives_an_empty_result_everywhere(small_engine: cm.Engine, call: str) -> None:
    r = ALL_CALLS[call](small_engine, cm.Book.from_arrays())
    main = r.to_arrow()
    assert main.num_rows == EMPTY_ROWS.get(call, 0), main
    for name, table in r.tables.items():
        if name not in ("scenarios", "per_underlying", "markets", "assets", "ledger"):
            assert len(table) == 0, name  # per account, position, event or round: none
    if call == "stress":
        assert main.column("liquidatable").to_pylist() == [0]
        assert main.column("bad_debt").to_pylist() == [0.0]
    if call == "reverse_stress":  # nothing to lose: no move exhausts the fund
        assert math.isnan(r.move) and all(math.isnan(x) for x in main.column("move").to_pylist())


@pytest.mark.parametrize("call", ALL_CALLS, ids=str)
def test_a_non_book_is_a_book_error_everywhere(small_engine: cm.Engine, call: str) -> None:
    with pytest.raises(BookError, match=r"expected crossmargin\.Book"):
        ALL_CALLS[call](small_engine, {"account": [1]})


def test_a_cascade_needs_a_cascade_config(small_engine: cm.Engine) -> None:
    with pytest.raises(ConfigError, match="CascadeConfig"):
        small_engine.cascade(book([(1, "USDT", 1.0)]), {"shock": {"BTC": -0.3}})  # type: ignore[arg-type]


@pytest.mark.parametrize("threads", [0, -1, 10**6, True, 2.0])
def test_threads_out_of_range_is_a_config_error(small: cm.Universe, threads: Any) -> None:
    with pytest.raises(ConfigError) as e:
        cm.Engine(small, threads=threads)
    assert e.value.field == "threads"


def test_an_account_with_only_isolated_positions(small: cm.Universe) -> None:
    b = book(None, [(7, "BTCUSDT", 1.0, 50_000.0, 400.0), (7, "ETHUSDT", -2.0, 1_900.0, 50.0)])
    e, r = evaluate_both(small, b)
    got = one(e)
    assert got == pytest.approx(one(r), rel=1e-12)
    assert got["im"] == got["mm"] == got["adj_equity_maint"] == 0.0
    assert got["equity"] == pytest.approx(400.0 + 50.0 - 200.0)
    # BTC: 400 < mm 500 → liquidatable, though the cross pool holds nothing.
    assert got["liquidatable"] and got["margin_ratio"] == 0.0


def test_an_account_in_only_one_table_appears_once(small_engine: cm.Engine) -> None:
    r = small_engine.evaluate(book([(1, "USDT", 1.0)], [(2, "BTCUSDT", 1.0, 50_000.0)]))
    assert r.account.tolist() == [1, 2]
    assert r.equity.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("qty", [1e15, -1e15, 1e-12, -1e-12, 5e-324])
def test_extreme_and_tiny_quantities_give_finite_results_equal_to_the_reference(
    small: cm.Universe, qty: float
) -> None:
    b = book(
        [(1, "USDT", abs(qty)), (1, "BTC", qty)],
        [(1, "BTCUSDT", qty, 49_000.0), (1, "BTCUSD", -qty, 51_000.0, 1.0)],
    )
    e, r = evaluate_both(small, b)
    got, want = one(e), one(r)
    for k, v in got.items():
        if isinstance(v, float):
            assert math.isfinite(v) or k == "margin_ratio", k
            assert v == pytest.approx(want[k], rel=1e-9, abs=1e-300), k
    assert got["liquidatable"] == want["liquidatable"]


# ---- boundaries: the classic rounding bugs -----------------------------------------------
def test_exactly_at_maintenance_is_not_liquidatable_and_one_ulp_below_is(
    small: cm.Universe,
) -> None:
    # 1 BTC at 50,000 = 50,000 notional, the first bracket's bound: mm = 1 % = 500 exactly.
    for collateral, liquidatable in ((500.0, False), (math.nextafter(500.0, 0.0), True)):
        b = book([(1, "USDT", collateral)], [(1, "BTCUSDT", 1.0, 50_000.0)])
        e, r = evaluate_both(small, b)
        assert one(e)["mm"] == one(r)["mm"] == 500.0
        assert one(e)["liquidatable"] is one(r)["liquidatable"] is liquidatable
        assert one(e)["margin_ratio"] == (1.0 if not liquidatable else 500.0 / collateral)


def test_exactly_at_isolated_maintenance_is_not_liquidatable(small: cm.Universe) -> None:
    for margin, liquidatable in ((500.0, False), (math.nextafter(500.0, 0.0), True)):
        b = book(None, [(1, "BTCUSDT", 1.0, 50_000.0, margin)])
        e, r = evaluate_both(small, b)
        assert one(e)["liquidatable"] is one(r)["liquidatable"] is liquidatable


@pytest.mark.parametrize("edge", [50_000.0, 250_000.0])
def test_maintenance_is_continuous_at_bracket_edges(small: cm.Universe, edge: float) -> None:
    # Notional = qty × 50,000: just below, at and just above each bracket bound.
    mms = []
    for notional in (edge * (1 - 1e-12), edge, edge * (1 + 1e-12)):
        e, r = evaluate_both(small, book(None, [(1, "BTCUSDT", notional / 50_000.0, 50_000.0)]))
        assert one(e)["mm"] == pytest.approx(one(r)["mm"], rel=1e-15)
        mms.append(one(e)["mm"])
    assert mms[0] <= mms[1] <= mms[2]
    assert mms[2] - mms[0] == pytest.approx(0.0, abs=edge * 1e-10)


def test_a_borderline_account_at_a_bracket_edge_is_judged_by_the_lower_bracket(
    small: cm.Universe,
) -> None:
    """At exactly the bound the lower bracket applies (notional ≤ bound); the upper one's
    formula gives the same number up to rounding, which must not flip the verdict."""
    (bound, _, mmr, _, _), (_, _, mmr2, _, cum_m2) = small.brackets_with_amounts("BTCUSDT")[:2]
    assert bound * mmr == 500.0 and bound * mmr2 - cum_m2 == 500.0
    b = book([(1, "USDT", 500.0)], [(1, "BTCUSDT", bound / 50_000.0, 50_000.0)])
    e, r = evaluate_both(small, b)
    assert not one(e)["liquidatable"] and not one(r)["liquidatable"]


@pytest.mark.parametrize("edge", [1_000_000.0, 2_000_000.0])
def test_collateral_is_continuous_at_haircut_tier_edges(small: cm.Universe, edge: float) -> None:
    values = []
    for usd in (edge * (1 - 1e-12), edge, edge * (1 + 1e-12)):
        e, r = evaluate_both(small, book([(1, "BTC", usd / 50_000.0)]))
        assert one(e)["adj_equity_maint"] == pytest.approx(one(r)["adj_equity_maint"], rel=1e-15)
        values.append(one(e)["adj_equity_maint"])
    assert values[0] <= values[1] <= values[2]
    assert values[2] - values[0] == pytest.approx(0.0, abs=edge * 1e-10)


def test_a_borderline_account_at_a_haircut_tier_edge(small: cm.Universe) -> None:
    """20 BTC = 1,000,000 USD, exactly the first tier's bound: counts 1,000,000 × 0.95;
    a debt that leaves the account exactly at maintenance keeps it safe, one ulp more
    liquidates it, in the engine and in the reference alike."""
    collateral = 1_000_000.0 * 0.95
    for debt, liquidatable in (
        (collateral - 500.0, False),
        (math.nextafter(collateral - 500.0, 1e9), True),
    ):
        b = book([(1, "BTC", 20.0), (1, "USDT", -debt)], [(1, "BTCUSDT", 1.0, 50_000.0)])
        e, r = evaluate_both(small, b)
        assert one(e)["adj_equity_maint"] == one(r)["adj_equity_maint"]
        assert one(e)["liquidatable"] is one(r)["liquidatable"] is liquidatable


@pytest.mark.parametrize(
    ("collateral", "ratio"), [(0.0, math.inf), (-100.0, math.inf), (1_000.0, 0.5)]
)
def test_margin_ratio_with_zero_or_negative_equity(
    small: cm.Universe, collateral: float, ratio: float
) -> None:
    b = book([(1, "USDT", collateral)], [(1, "BTCUSDT", 1.0, 50_000.0)])
    e, r = evaluate_both(small, b)
    assert one(e)["margin_ratio"] == one(r)["margin_ratio"] == ratio
    assert one(e)["liquidatable"] is (ratio > 1)


def test_margin_ratio_is_zero_without_requirement_even_when_bankrupt(small: cm.Universe) -> None:
    e, r = evaluate_both(small, book([(1, "USDT", -10.0)]))
    assert one(e)["margin_ratio"] == one(r)["margin_ratio"] == 0.0
    # adj_equity_maint −10 < mm 0: liquidatable (the debt is called), though the ratio says 0.
    assert one(e)["bankrupt"] and one(e)["liquidatable"] and one(r)["liquidatable"]


# ---- prices and other call arguments -----------------------------------------------------
@pytest.mark.parametrize(
    "prices",
    [
        {"BTC": math.nan},
        {"BTCUSDT": 0.0},
        {"BTCUSDT": 1e19},
        {"USDT": -1.0},
        {"DOGE": 1.0},
        {"BTC": "x"},
        ([1.0], [1.0]),
        (["a"] * 4, [1.0] * 3),
        (np.ones((2, 2)), [1.0] * 3),
        ([1.0, 1.0, 1e19, 1.0], [1.0] * 3),
        ([1.0] * 4, [1.0, 1e-19, 1.0]),
        5,
    ],
    ids=str,
)
def test_bad_price_overrides_are_price_errors(small_engine: cm.Engine, prices: Any) -> None:
    b = book([(1, "USDT", 1.0)])
    with pytest.raises(PriceError):
        small_engine.evaluate(b, prices=prices)
    with pytest.raises(PriceError):
        reference.evaluate(small_engine.universe, b, prices=prices)


@pytest.mark.parametrize(
    "call",
    [
        lambda e, b: e.stress(b, {"c": {"BTC": -0.3}}, insurance_fund="x"),
        lambda e, b: e.stress(b, {"c": {"BTC": math.nan}}),
        lambda e, b: e.apply_funding(b, {"BTCUSDT": "x"}),
        lambda e, b: e.apply_funding(b, ["a", "b", "c"]),
        lambda e, b: e.reverse_stress(b, 1.0, tol=math.nan),
        lambda e, b: e.liquidation_prices(b, move="sideways"),
        lambda e, b: e.evaluate(b, model="vibes"),
    ],
)
def test_bad_call_arguments_are_config_errors(small_engine: cm.Engine, call: Any) -> None:
    with pytest.raises(ConfigError):
        call(small_engine, book([(1, "USDT", 1.0)], [(1, "BTCUSDT", 1.0, 50_000.0)]))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((math.nan, 100.0, 1.0, 0.5), "forward[0]"),
        ((-1.0, 100.0, 1.0, 0.5), "forward[0]"),
        (([100.0, 100.0], 100.0, 1.0, -0.5), "vol[0]"),
        ((100.0, [1.0, math.inf], 1.0, 0.5), "strike[1]"),
        ((100.0, 100.0, -1.0, 0.5), "years[0]"),
        (("x", 100.0, 1.0, 0.5), "forward"),
    ],
)
def test_black76_bad_inputs_are_price_errors_naming_the_index(
    args: tuple[Any, ...], field: str
) -> None:
    with pytest.raises(PriceError) as e:
        black76(*args)
    assert e.value.field == field


def test_black76_bad_kind_or_shapes_are_price_errors() -> None:
    with pytest.raises(PriceError, match="straddle"):
        black76(100.0, 100.0, 1.0, 0.5, kind="straddle")
    with pytest.raises(PriceError, match="broadcast"):
        black76([1.0, 2.0], [1.0, 2.0, 3.0], 1.0, 0.5)


def test_black76_edges_give_the_intrinsic_value() -> None:
    t = black76([100.0, 100.0, 100.0], [90.0, 0.0, 90.0], [0.0, 1.0, 1.0], [0.5, 0.5, 0.0])
    assert t["price"].tolist() == [10.0, 100.0, 10.0]


# ---- cascades and the integer ledger -----------------------------------------------------
def test_cascade_insurance_fund_beyond_the_ledger_is_a_config_error(
    small_engine: cm.Engine,
) -> None:
    with pytest.raises(ConfigError, match=r"insurance_fund\[USDT\]"):
        small_engine.cascade(
            book([(1, "USDT", 1.0)]), cm.CascadeConfig(shock={"BTC": -0.3}, insurance_fund=1e300)
        )


def test_cascade_holdings_beyond_the_ledger_are_an_error_not_a_wrapped_total(
    small_engine: cm.Engine,
) -> None:
    rows = [(i, "USDT", 1e28) for i in range(200)]
    with pytest.raises(PriceError, match=r"cascade.holdings\[USDT\]"):
        small_engine.cascade(book(rows), cm.CascadeConfig(shock={"BTC": -0.3}))


def test_cascade_position_too_large_for_the_ledger_names_its_row(small_engine: cm.Engine) -> None:
    # 1e17 BTC bought at 1e17 USD: 1e34 USDT of entry value, beyond 1e26 (1e28 / 100).
    b = book([(1, "USDT", 1.0)], [(1, "ETHUSDT", 1.0, 2_000.0), (2, "BTCUSDT", 1e17, 1e17)])
    with pytest.raises(BookError) as e:
        small_engine.cascade(b, cm.CascadeConfig(shock={"BTC": -0.3}))
    assert (e.value.table, e.value.row) == ("positions", 1)


def test_cascade_of_extreme_and_tiny_books_conserves(small_engine: cm.Engine) -> None:
    b = book(
        [(1, "USDT", 1e15), (2, "USDT", 1e-12), (3, "USDT", 100.0)],
        [
            (1, "BTCUSDT", 1e10, 50_000.0),
            (2, "BTCUSDT", 1e-12, 50_000.0),
            (3, "BTCUSDT", 1.0, 50_000.0),
        ],
    )
    r = small_engine.cascade(b, cm.CascadeConfig(shock={"BTC": -0.5}))
    assert r.check_conservation()
    assert sorted(set(r.final_book.accounts.tolist())) == [1, 2, 3]


# ---- memory ------------------------------------------------------------------------------
def test_available_memory_reads_meminfo_and_cgroup(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    assert resources._meminfo_available(tmp_path / "meminfo") == 2048 * 1024
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    assert resources._cgroup_available(tmp_path) == 600_000
    (tmp_path / "memory.max").write_text("max\n")
    assert resources._cgroup_available(tmp_path) is None
    assert resources.available_memory() is None or resources.available_memory() > 0


def test_a_book_too_large_for_memory_is_a_resource_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda: 1_000)
    with pytest.raises(ResourceError) as e:
        cm.Book.from_arrays(
            {"account": np.arange(100), "asset": np.zeros(100, np.uint32), "qty": np.ones(100)}
        )
    assert isinstance(e.value, CrossmarginError) and isinstance(e.value, MemoryError)
    assert e.value.needed == resources.book_bytes(100, 0) and e.value.available == 1_000
    assert "100 balance and 0 position rows" in str(e.value)


def test_a_synthetic_book_too_large_fails_before_allocating(
    monkeypatch: pytest.MonkeyPatch, small: cm.Universe
) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda: 64 * 2**30)
    with pytest.raises(ResourceError, match="synthetic book of 10000000000 accounts"):
        synth.generate(small, n_accounts=10**10)


def test_the_synthetic_estimate_bounds_the_real_peak(small: cm.Universe) -> None:
    import tracemalloc

    tracemalloc.start()
    b = synth.generate(small, n_accounts=20_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    est = synth.estimated_bytes(20_000, len(small.assets), len(small.markets), synth.SynthConfig())
    assert peak + b.grouped_nbytes <= est


def test_a_stress_matrix_too_large_is_a_resource_error(
    monkeypatch: pytest.MonkeyPatch, small_engine: cm.Engine
) -> None:
    b = book([(i, "USDT", 1.0) for i in range(10)])
    monkeypatch.setattr(resources, "available_memory", lambda: 8 * 10 * 3 - 1)
    with pytest.raises(ResourceError, match="10 accounts × 3 scenarios"):
        small_engine.stress(b, {"a": {"BTC": -0.1}, "b": {"BTC": -0.2}, "c": {"BTC": -0.3}})


def test_unknown_available_memory_skips_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "available_memory", lambda: None)
    assert cm.Book.from_arrays({"account": [1], "asset": ["USDT"], "qty": [1.0]}).n_accounts == 1


# ---- the FFI boundary --------------------------------------------------------------------
def test_a_panic_in_the_core_becomes_a_crossmargin_error_not_a_panic_exception() -> None:
    with pytest.raises(CrossmarginError, match="internal error in the engine: boom") as e:
        _core.panic_guard_selftest("boom")
    assert type(e.value) is CrossmarginError


# ---- the CLI -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("account,asset,qty\n1,USDT,100\n2,DOGE,5\n", "balances row 1: unknown asset 'DOGE'"),
        ("account,asset,qty\n1,USDT,\n", "balances row 0: qty NaN is not finite"),
        ("account,asset,qty\n99999999999999999999,USDT,1\n", "balances row 0: account"),
        ("account,asset,qty\n1,USDT,1e30\n", "ledgers' range"),
    ],
)
def test_cli_bad_book_is_a_one_line_error_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    from crossmargin.cli import main

    (tmp_path / "balances.csv").write_text(content)
    with pytest.raises(SystemExit) as e:
        out = str(tmp_path / "out")
        main(["margin", str(tmp_path / "balances.csv"), "--universe", "demo", "--out", out, "-q"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ---- properties --------------------------------------------------------------------------
GARBAGE = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.none(),
    st.booleans(),
    st.sampled_from(["USDT", "BTC", "BTCUSDT", "ETHUSDT", "BTCUSD", 0, 1, 2, 3, 1e300, -1]),
)


@st.composite
def garbage_columns(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    n = draw(st.integers(0, 6))
    cols: dict[str, Any] = {}
    for c in names:
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing column
        values = draw(st.lists(GARBAGE, min_size=n, max_size=n + draw(st.integers(0, 1))))
        form = draw(st.sampled_from(["list", "numpy", "object", "pandas"]))
        if form == "numpy":
            try:
                cols[c] = np.array(values)
            except (ValueError, OverflowError):
                cols[c] = np.array(values, dtype=object)
        elif form == "object":
            cols[c] = np.array(values, dtype=object)
        elif form == "pandas":
            cols[c] = pd.Series(values, dtype=object)
        else:
            cols[c] = values
    return cols


@given(
    garbage_columns(("account", "asset", "qty")),
    garbage_columns(("account", "market", "qty", "entry_price", "isolated_margin")),
)
def test_garbage_columns_give_a_result_or_a_crossmargin_error(
    bal: dict[str, Any], pos: dict[str, Any]
) -> None:
    u = make_small_universe()
    try:
        b = cm.Book.from_arrays(bal or None, pos or None)
        r = cm.Engine(u, threads=1).evaluate(b)
    except CrossmarginError:
        return
    # Accepted: no account lost, results finite where the model says so.
    ids = set(b.balances["account"].tolist()) | set(b.positions["account"].tolist())
    assert set(r.account.tolist()) == ids
    for c in ("equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm"):
        assert np.isfinite(r[c]).all(), c


@given(universe_and_book())
def test_no_account_goes_missing_and_equity_totals_balance(ub: tuple[cm.Universe, Any]) -> None:
    """Every id of either table is a result row (and only those); Σ equity = Σ balance
    values + Σ uPnL + Σ isolated margin × settle price (docs/MODEL.md "Equity"; no options)."""
    u, rows = ub
    b = rows.book(u)
    r = cm.Engine(u, threads=2).evaluate(b)
    ids = set(b.balances["account"].tolist()) | set(b.positions["account"].tolist())
    assert r.account.tolist() == sorted(ids)
    bal_df, pos_df = b.to_pandas(u)
    prices = {a.symbol: a.price for a in u.assets}
    settle = {m.symbol: prices[m.settle] for m in u.markets}
    bal_value = (bal_df.qty * bal_df.asset.map(prices)).sum()
    iso = np.nan_to_num(pos_df.isolated_margin.to_numpy(dtype=float))
    iso_value = (iso * pos_df.market.map(settle).to_numpy(dtype=float)).sum()
    scale = 1.0 + np.abs(r.equity).sum() + np.abs(r.upnl).sum() + abs(bal_value) + iso_value
    assert r.equity.sum() == pytest.approx(bal_value + r.upnl.sum() + iso_value, abs=1e-9 * scale)


@given(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(
        st.tuples(st.floats(allow_nan=True), st.floats(), st.floats(allow_nan=True)), max_size=3
    ),
)
def test_garbage_universe_values_give_a_universe_or_a_config_error(
    price: float, mark: float, size: float, brackets: list[tuple[float, float, float]]
) -> None:
    try:
        u = cm.Universe(
            [cm.Asset("USDT", 1.0), cm.Asset("BTC", price)],
            [cm.Market("P", "perp", "USDT", "BTC", mark, brackets, contract_size=size)],
        )
    except ConfigError:
        return
    r = cm.Engine(u, threads=1).evaluate(
        book([(1, "BTC", 1.0), (1, "USDT", -5.0)], [(1, "P", 3.0, 1.0)])
    )
    assert np.isfinite(r.equity).all() and np.isfinite(r.mm).all()


@pytest.mark.parametrize(
    ("rows", "config", "error"),
    [
        ([(1, "USDT", 1.0)], {"insurance_fund": 1e300}, ConfigError),
        ([(i, "USDT", 1e28) for i in range(200)], {}, PriceError),
    ],
)
def test_the_reference_cascade_refuses_what_the_engine_refuses(
    small: cm.Universe, rows: list[tuple[int, str, float]], config: dict[str, Any], error: type
) -> None:
    from crossmargin.reference import liquidations as reference_cascade

    cfg = cm.CascadeConfig(shock={"BTC": -0.3}, **config)
    for run in (
        lambda: cm.Engine(small, threads=1).cascade(book(rows), cfg),
        lambda: reference_cascade.cascade(small, book(rows), cfg),
    ):
        with pytest.raises(error):
            run()
    big = book([(1, "USDT", 1.0)], [(2, "BTCUSDT", 1e17, 1e17)])
    with pytest.raises(BookError):
        reference_cascade.cascade(small, big, cm.CascadeConfig(shock={"BTC": -0.3}))
