"""Nothing nonsense accepted: every public entry point checks types and domains and raises a
typed error naming the field or row. A wrong *type* raises a class that is a TypeError and a
CrossmarginError (ConfigTypeError, BookTypeError, PriceTypeError); a wrong *value* one that
is a ValueError. docs/ROBUSTNESS.md, rows 56–74, ties each case to its test here."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import crossmargin as cm
import numpy as np
import pandas as pd
import pytest
from crossmargin import funding
from crossmargin.cascade import CascadeConfig, DepthCurve, NoImpact, SqrtImpact
from crossmargin.exceptions import (
    BookError,
    BookTypeError,
    ConfigError,
    ConfigTypeError,
    ConfigWarning,
    CrossmarginError,
    PriceError,
    PriceTypeError,
)
from helpers import book

HUGE = 10**400  # float(HUGE) raises OverflowError
LINEAR = [(50_000.0, 0.02, 0.01), (math.inf, 0.1, 0.05)]


def raises(cls: type[Exception], call: Any, field: str | None = None) -> Exception:
    """``call()`` raises ``cls`` (and so a CrossmarginError), whose message leads with the
    field when there is one."""
    with pytest.raises(cls) as info:
        call()
    err = info.value
    assert isinstance(err, CrossmarginError)
    if field is not None:
        assert err.field == field, str(err)  # type: ignore[attr-defined]
        assert str(err).startswith(field), str(err)
    return err


def a_book() -> cm.Book:
    return book(
        [(1, "USDT", 1_000.0), (2, "USDT", 10.0)],
        [(1, "BTCUSDT", 0.1, 50_000.0), (2, "BTCUSDT", -0.1, 50_000.0)],
    )


# ---- 1. the exception classes ------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "base"),
    [(ConfigTypeError, ConfigError), (BookTypeError, BookError), (PriceTypeError, PriceError)],
)
def test_type_errors_are_typeerrors_and_crossmargin_errors(cls: Any, base: Any) -> None:
    assert issubclass(cls, base) and issubclass(cls, TypeError)
    assert issubclass(cls, CrossmarginError) and issubclass(base, ValueError)
    assert getattr(cm, cls.__name__) is cls
    assert cls.__name__ in cm.exceptions.__all__ and cls.__name__ in cm.__all__


def test_type_errors_keep_the_structured_fields() -> None:
    assert ConfigTypeError("m", field="f").field == "f"
    assert PriceTypeError("m", field="p").field == "p"
    e = BookTypeError("m", table="balances", row=3, other_row=None, column="qty")
    assert (e.table, e.row, e.column) == ("balances", 3, "qty")
    assert issubclass(ConfigWarning, UserWarning) and cm.ConfigWarning is ConfigWarning


# ---- 2. CascadeConfig and the liquidity models -------------------------------------------
@pytest.mark.parametrize("fund", [-5.0, -1e-9, math.nan, math.inf, HUGE])
def test_a_negative_or_non_finite_insurance_fund_is_refused(fund: Any) -> None:
    # A negative fund used to run, then auto-deleverage healthy accounts to fill it.
    err = raises(ConfigError, lambda: CascadeConfig(insurance_fund=fund), "cascade.insurance_fund")
    assert not isinstance(err, TypeError)


def test_the_insurance_fund_message_says_what_is_wrong() -> None:
    with pytest.raises(
        ConfigError, match=r"^cascade\.insurance_fund: -5\.0 must be finite and ≥ 0$"
    ):
        CascadeConfig(insurance_fund=-5.0)


@pytest.mark.parametrize(
    ("kwargs", "cls", "field"),
    [
        ({"insurance_fund": True}, ConfigTypeError, "cascade.insurance_fund"),
        ({"insurance_fund": "1e6"}, ConfigTypeError, "cascade.insurance_fund"),
        ({"insurance_fund": None}, ConfigTypeError, "cascade.insurance_fund"),
        ({"insurance_fund": {"USDT": -1.0}}, ConfigError, "cascade.insurance_fund[USDT]"),
        (
            {"insurance_fund": {"USDT": np.bool_(True)}},
            ConfigTypeError,
            "cascade.insurance_fund[USDT]",
        ),
        ({"insurance_fund": {5: 1.0}}, ConfigTypeError, "cascade.insurance_fund[5]"),
        ({"liquidation_fee": -0.01}, ConfigError, "cascade.liquidation_fee"),
        ({"liquidation_fee": 1.5}, ConfigError, "cascade.liquidation_fee"),
        ({"liquidation_fee": "x"}, ConfigTypeError, "cascade.liquidation_fee"),
        ({"partial_fraction": 0.0}, ConfigError, "cascade.partial_fraction"),
        ({"partial_fraction": True}, ConfigTypeError, "cascade.partial_fraction"),
        ({"partial_fraction": HUGE}, ConfigError, "cascade.partial_fraction"),
        ({"target_margin_ratio": 1.0}, ConfigError, "cascade.target_margin_ratio"),
        ({"target_margin_ratio": [0.5]}, ConfigTypeError, "cascade.target_margin_ratio"),
        ({"min_notional": -1.0}, ConfigError, "cascade.min_notional"),
        ({"min_notional": math.nan}, ConfigError, "cascade.min_notional"),
        ({"max_rounds": 0}, ConfigError, "cascade.max_rounds"),
        ({"max_rounds": True}, ConfigTypeError, "cascade.max_rounds"),
        ({"max_rounds": 10.0}, ConfigTypeError, "cascade.max_rounds"),
        ({"max_rounds": HUGE}, ConfigError, "cascade.max_rounds"),
        ({"max_liquidations_per_round": -1}, ConfigError, "cascade.max_liquidations_per_round"),
        (
            {"max_liquidations_per_round": math.inf},
            ConfigTypeError,
            "cascade.max_liquidations_per_round",
        ),
        ({"mode": "batch"}, ConfigError, "cascade.mode"),
        ({"mode": 1}, ConfigTypeError, "cascade.mode"),
        ({"deleverage": None}, ConfigTypeError, "cascade.deleverage"),
        ({"decay": 1.5}, ConfigError, "cascade.decay"),
        ({"decay": "half"}, ConfigTypeError, "cascade.decay"),
        ({"liquidity": "sqrt"}, ConfigTypeError, "cascade.liquidity"),
        ({"liquidity": {"BTCUSDT": 5}}, ConfigTypeError, "cascade.liquidity[BTCUSDT]"),
        ({"shock": "BTC"}, ConfigTypeError, "cascade.shock"),
        ({"shock": {"BTC": True}}, ConfigTypeError, "cascade.shock[BTC]"),
        ({"shock": {"BTC": "-0.3"}}, ConfigTypeError, "cascade.shock[BTC]"),
        ({"shock": {"BTC": math.nan}}, ConfigError, "cascade.shock[BTC]"),
        ({"shock": {"BTC": -1.0}}, ConfigError, "cascade.shock[BTC]"),
        ({"shock": {"BTC": HUGE}}, ConfigError, "cascade.shock[BTC]"),
        ({"path": {"BTC": -0.1}}, ConfigTypeError, "cascade.path"),
        ({"path": []}, ConfigError, "cascade.path"),
        ({"path": [{"BTC": -0.1}, 5]}, ConfigTypeError, "cascade.path[1]"),
        ({"path": [{"BTC": -0.1}, {"ETH": None}]}, ConfigTypeError, "cascade.path[1][ETH]"),
    ],
    ids=str,
)
def test_every_cascade_field_is_checked_at_construction(kwargs: dict, cls: Any, field: str) -> None:
    err = raises(cls, lambda: CascadeConfig(**kwargs), field)
    assert isinstance(err, TypeError) == (cls is ConfigTypeError)


def test_cascade_config_has_no_unread_fields() -> None:
    """``extra`` was accepted and never read: it is gone, and an unknown field is refused."""
    import dataclasses

    assert "extra" not in {f.name for f in dataclasses.fields(CascadeConfig)}
    with pytest.raises(TypeError, match="extra"):
        CascadeConfig(extra={"anything": 1})  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("build", "cls", "field"),
    [
        (lambda: SqrtImpact(daily_volume=0.0), ConfigError, "SqrtImpact.daily_volume"),
        (lambda: SqrtImpact(daily_volume=HUGE), ConfigError, "SqrtImpact.daily_volume"),
        (lambda: SqrtImpact(sigma=-0.1), ConfigError, "SqrtImpact.sigma"),
        (lambda: SqrtImpact(sigma=math.inf), ConfigError, "SqrtImpact.sigma"),
        (lambda: SqrtImpact(y="1"), ConfigTypeError, "SqrtImpact.y"),
        (lambda: SqrtImpact(permanent=1.5), ConfigError, "SqrtImpact.permanent"),
        (lambda: SqrtImpact(permanent=True), ConfigTypeError, "SqrtImpact.permanent"),
        (lambda: DepthCurve(5), ConfigTypeError, "DepthCurve.depth"),
        (lambda: DepthCurve("0.01,1e6"), ConfigTypeError, "DepthCurve.depth"),
        (lambda: DepthCurve([]), ConfigError, "DepthCurve.depth"),
        (lambda: DepthCurve([(0.01, 1e6, 3.0)]), ConfigError, "DepthCurve.depth[0]"),
        (lambda: DepthCurve([0.01]), ConfigTypeError, "DepthCurve.depth[0]"),
        (
            lambda: DepthCurve([(0.02, 1.0), (0.01, 2.0)]),
            ConfigError,
            "DepthCurve.depth[1].distance",
        ),
        (
            lambda: DepthCurve([(0.01, 1.0), (0.01, 2.0)]),
            ConfigError,
            "DepthCurve.depth[1].distance",
        ),
        (lambda: DepthCurve([(1.0, 1e6)]), ConfigError, "DepthCurve.depth[0].distance"),
        (
            lambda: DepthCurve([(0.01, 2e6), (0.02, 1e6)]),
            ConfigError,
            "DepthCurve.depth[1].notional",
        ),
        (lambda: DepthCurve([(0.01, math.nan)]), ConfigError, "DepthCurve.depth[0].notional"),
        (lambda: DepthCurve([(0.01, None)]), ConfigTypeError, "DepthCurve.depth[0].notional"),
        (lambda: DepthCurve([(0.01, 0.0)]), ConfigError, "DepthCurve.depth"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_liquidity_model_parameters_are_checked_at_construction(
    build: Any, cls: Any, field: str
) -> None:
    raises(cls, build, field)


def test_valid_liquidity_models_and_configs_still_build() -> None:
    assert DepthCurve([(0.002, 2e5), (0.03, 2e5), (0.08, 2e7)]).points[1] == (0.03, 2e5)
    assert SqrtImpact(daily_volume=10**9, sigma=np.float64(0.05)).daily_volume == 1e9
    CascadeConfig(
        path=[{"BTC": -0.1}, {"BTC": -0.2}],
        insurance_fund={"USDT": 1e6, "BTC": 0},
        liquidity={"BTCUSDT": NoImpact()},
        target_margin_ratio=0.8,
        max_rounds=np.int64(10),
    )


# ---- 3. the universe: types, initial vs maintenance, malformed TOML ----------------------
@pytest.mark.parametrize(
    ("asset", "field"),
    [
        (dict(weight_initial=0.96, weight_maint=0.95), "assets[BTC].weight_initial"),
        (dict(liability_weight_initial=1.05, liability_weight_maint=1.1),
         "assets[BTC].liability_weight_initial"),
    ],
)  # fmt: skip
def test_an_initial_asset_weight_looser_than_maintenance_is_refused(
    asset: dict, field: str
) -> None:
    err = raises(ConfigError, lambda: cm.Universe([cm.Asset("BTC", 1.0, **asset)]), field)
    assert "initial margin is the stricter" in str(err)


def test_an_initial_upnl_weight_looser_than_maintenance_is_refused() -> None:
    m = cm.Market("BTCUSDT", "perp", "USDT", "BTC", 1.0, LINEAR,
                  upnl_weight_initial=0.9, upnl_weight_maint=0.8)  # fmt: skip
    raises(ConfigError, lambda: cm.Universe([cm.Asset("USDT", 1.0)], [m]),
           "markets[BTCUSDT].upnl_weight_initial")  # fmt: skip


def test_an_option_initial_floor_below_its_maintenance_rate_is_refused() -> None:
    m = cm.Market("C", "option", "USDT", "BTC", option_type="call", strike=100.0, expiry=0.5,
                  iv=0.5, im_min=0.05, mm_base=0.075)  # fmt: skip
    u = [cm.Asset("USDT", 1.0), cm.Asset("BTC", 100.0)]
    raises(ConfigError, lambda: cm.Universe(u, [m]), "markets[C].im_min")


def test_equal_initial_and_maintenance_weights_are_allowed() -> None:
    cm.Universe([cm.Asset("BTC", 1.0, weight_initial=0.9, weight_maint=0.9,
                          liability_weight_initial=1.1, liability_weight_maint=1.1)])  # fmt: skip


def test_a_weight_out_of_range_is_named_by_the_core_before_the_order_rule() -> None:
    # weight_maint = -0.01 with weight_initial = 1: the range rule (core) speaks first.
    raises(ConfigError, lambda: cm.Universe([cm.Asset("BTC", 1.0, weight_maint=-0.01)]),
           "assets[BTC].weight_maint")  # fmt: skip


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: cm.Asset("BTC", True), "assets[BTC].price"),
        (lambda: cm.Asset("BTC", "95000"), "assets[BTC].price"),
        (lambda: cm.Asset("BTC", 1.0, weight_maint=np.bool_(True)), "assets[BTC].weight_maint"),
        (lambda: cm.Asset(5, 1.0), "assets[5].symbol"),
        (lambda: cm.Asset("BTC", 1.0, haircut_tiers="100,1"), "assets[BTC].haircut_tiers"),
        (lambda: cm.Asset("BTC", 1.0, haircut_tiers={"a": 1}), "assets[BTC].haircut_tiers"),
        (lambda: cm.Asset("BTC", 1.0, haircut_tiers=[(100.0, "x")]),
         "assets[BTC].haircut_tiers[0].rate"),
        (lambda: cm.Market("X", "perp", "USDT", "BTC", False, LINEAR), "markets[X].mark"),
        (lambda: cm.Market("X", 1, "USDT", "BTC", 1.0, LINEAR), "markets[X].kind"),
        (lambda: cm.Market("X", "perp", None, "BTC", 1.0, LINEAR), "markets[X].settle"),
        (lambda: cm.Market("X", "perp", "USDT", "BTC", 1.0, LINEAR, inverse="yes"),
         "markets[X].inverse"),
        (lambda: cm.Market("X", "perp", "USDT", "BTC", 1.0, [(math.inf, "0.1", 0.05)]),
         "markets[X].brackets[0].imr"),
        (lambda: cm.Market("X", "perp", "USDT", "BTC", 1.0, [(math.inf, 0.1, True)]),
         "markets[X].brackets[0].mmr"),
        (lambda: cm.Market("X", "perp", "USDT", "BTC", 1.0, [5.0]), "markets[X].brackets[0]"),
        (lambda: cm.Universe([cm.Asset("USDT", 1.0)], valuation_date=20260101), "valuation_date"),
        (lambda: cm.Universe([cm.Asset("USDT", 1.0)], (), {1: 2.0}), "underlying_prices[1]"),
        (lambda: cm.Universe(5), "assets"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)  # fmt: skip
def test_a_wrong_type_in_the_universe_is_a_config_type_error(build: Any, field: str) -> None:
    raises(ConfigTypeError, build, field)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: cm.Asset("BTC", HUGE), "assets[BTC].price"),
        (lambda: cm.Asset("BTC", 1.0, haircut_tiers=[(HUGE, 1.0)]),
         "assets[BTC].haircut_tiers[0].bound"),
        (lambda: cm.Universe([cm.Asset("USDT", 1.0)], valuation_date="someday"), "valuation_date"),
    ],
)  # fmt: skip
def test_a_value_beyond_floats_or_an_unparsable_date_is_a_config_error(
    build: Any, field: str
) -> None:
    err = raises(ConfigError, build, field)
    assert not isinstance(err, TypeError)


MINIMAL = """\
[[assets]]
symbol = "USDT"
price = 1.0

[[assets]]
symbol = "BTC"
price = 100.0

[[markets]]
symbol = "BTCUSDT"
kind = "perp"
settle = "USDT"
underlying = "BTC"
mark = 100.0
brackets = [[1000.0, 0.1, 0.05], [inf, 0.2, 0.1]]
"""


def _toml(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "u.toml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("old", "new", "cls", "field"),
    [
        ('price = 100.0', 'price = "abc"', ConfigTypeError, "assets[BTC].price"),
        ('price = 100.0', 'price = true', ConfigTypeError, "assets[BTC].price"),
        ('mark = 100.0', 'mark = [100.0]', ConfigTypeError, "markets[BTCUSDT].mark"),
        ('brackets = [[1000.0, 0.1, 0.05], [inf, 0.2, 0.1]]', 'brackets = {bound = 1.0}',
         ConfigTypeError, "markets[BTCUSDT].brackets"),
        ('brackets = [[1000.0, 0.1, 0.05], [inf, 0.2, 0.1]]', 'brackets = [1.0, 2.0]',
         ConfigTypeError, "markets[BTCUSDT].brackets[0]"),
        ('brackets = [[1000.0, 0.1, 0.05], [inf, 0.2, 0.1]]',
         'brackets = [[1000.0, 0.1, 0.05], [inf, "0.2", 0.1]]',
         ConfigTypeError, "markets[BTCUSDT].brackets[1].imr"),
        ('kind = "perp"', 'kind = 1', ConfigTypeError, "markets[BTCUSDT].kind"),
        ('symbol = "BTC"\n', 'symbol = "BTC"\nweight_initial = 1.0\nweight_maint = 0.9\n',
         ConfigError, "assets[BTC].weight_initial"),
        ('symbol = "BTC"\n', 'symbol = "BTC"\ncolour = "orange"\n', ConfigError,
         "assets[BTC].colour"),
    ],
)  # fmt: skip
def test_malformed_universe_toml_names_the_field(
    tmp_path: Path, old: str, new: str, cls: Any, field: str
) -> None:
    text = MINIMAL.replace(old, new, 1)
    assert text != MINIMAL
    raises(cls, lambda: cm.Universe.from_toml(_toml(tmp_path, text)), field)


@pytest.mark.parametrize(
    ("text", "cls", "field"),
    [
        ("assets = {symbol = 'USDT', price = 1.0}\n", ConfigTypeError, "assets"),
        ("assets = ['USDT']\n", ConfigTypeError, "assets[0]"),
        ("underlying_prices = [1.0]\n", ConfigTypeError, "underlying_prices"),
        ("[[assets]]\nsymbol = 'USDT'\nprice = 1.0\n[assets.x]\n", ConfigError, "assets[USDT].x"),
        ("valuation_date = 2026\n[[assets]]\nsymbol = 'USDT'\nprice = 1.0\n", ConfigTypeError,
         "valuation_date"),
        ("portfolio = 5\n[[assets]]\nsymbol = 'USDT'\nprice = 1.0\n", ConfigTypeError,
         "portfolio"),
    ],
)  # fmt: skip
def test_a_table_where_a_list_belongs_and_back_is_named(
    tmp_path: Path, text: str, cls: Any, field: str
) -> None:
    raises(cls, lambda: cm.Universe.from_toml(_toml(tmp_path, text)), field)


def test_a_toml_date_is_an_option_expiry(tmp_path: Path) -> None:
    """TOML dates are dates: ``expiry = 2026-07-02`` (a datetime.date) counts from
    ``valuation_date`` like the ISO string (it was refused as "not a number")."""
    text = (
        "valuation_date = 2026-01-01\n"
        + MINIMAL
        + (
            '\n[[markets]]\nsymbol = "C"\nkind = "option"\nsettle = "USDT"\nunderlying = "BTC"\n'
            'option_type = "call"\nstrike = 100.0\nexpiry = 2026-07-02\niv = 0.5\n'
        )
    )
    u = cm.Universe.from_toml(_toml(tmp_path, text))
    assert u.option_years("C") == pytest.approx(182 / 365)


def test_universe_toml_that_is_not_utf8_or_not_a_file_is_a_config_error(tmp_path: Path) -> None:
    raises(ConfigError, lambda: cm.Universe.from_toml(_toml(tmp_path, b"\xff\xfe[[assets]]")))
    raises(ConfigError, lambda: cm.Universe.from_toml(tmp_path))  # a directory
    raises(ConfigError, lambda: cm.Universe.from_toml(_toml(tmp_path, "price = = 1")))


# ---- 4. a haircut table with a finite last bound ---------------------------------------------
def test_a_finite_last_haircut_bound_warns_naming_the_asset() -> None:
    tiers = [(1e8, 1.0), (2e8, 0.85)]
    with pytest.warns(ConfigWarning, match=r"assets\[BTC\]\.haircut_tiers.*counts as zero"):
        u = cm.Universe([cm.Asset("BTC", 1.0, haircut_tiers=tiers)])
    # The documented rule itself is kept: above the last bound collateral counts nothing.
    r = cm.Engine(u).evaluate(book([(1, "BTC", 3e8)]))
    assert r.adj_equity_maint[0] == pytest.approx(1e8 + 1e8 * 0.85)


def test_a_haircut_table_ending_in_inf_does_not_warn_and_the_demo_is_clean() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        cm.Universe([cm.Asset("BTC", 1.0, haircut_tiers=[(1e8, 1.0), (math.inf, 0.85)])])
        demo = cm.Universe.demo()
    assert math.isinf(demo.assets[demo.asset_index["BTC"]].haircut_tiers[-1][0])  # type: ignore[index]


def test_the_demo_counts_btc_above_its_last_published_tier_at_85_percent(demo: cm.Universe) -> None:
    """10,000 BTC at 95,000 (950M USD): Binance's slices to 180M, then 85% of the other
    770M (the published table's 180M–200M rate, now open-ended), at the 0.95 weight. With
    the old 200M cap everything above 200M counted nothing (at most 192M × 0.95)."""
    r = cm.Engine(demo).evaluate(book([(1, "BTC", 10_000.0)]))
    expected = (100e6 + 20e6 * 0.975 + 30e6 * 0.95 + 30e6 * 0.9 + 770e6 * 0.85) * 0.95
    assert r.adj_equity_maint[0] == pytest.approx(expected, rel=1e-12)


# ---- 5. prices ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prices", "cls"),
    [
        ({"BTC": True}, PriceTypeError),
        ({"BTC": np.bool_(True)}, PriceTypeError),
        ({"BTC": "60000"}, PriceTypeError),
        ({"BTC": None}, PriceTypeError),
        ({"BTC": [60_000.0]}, PriceTypeError),
        ({"BTC": HUGE}, PriceError),
        ({"BTC": -HUGE}, PriceError),
        ({5: 1.0}, PriceTypeError),
        (([1.0, True, 1.0, 1.0], [1.0] * 3), PriceTypeError),
        ((np.ones(4, dtype=bool), [1.0] * 3), PriceTypeError),
        (([1.0, None, 1.0, 1.0], [1.0] * 3), PriceTypeError),
        (([1.0, HUGE, 1.0, 1.0], [1.0] * 3), PriceError),
        ("BTC=1", PriceTypeError),
    ],
    ids=str,
)
def test_bools_and_text_are_not_prices(small_engine: cm.Engine, prices: Any, cls: Any) -> None:
    b = book([(1, "USDT", 1.0)])
    with pytest.raises(cls) as info:
        small_engine.evaluate(b, prices=prices)
    assert isinstance(info.value, TypeError) == (cls is PriceTypeError)
    with pytest.raises(cls):
        cm.reference.evaluate(small_engine.universe, b, prices=prices)


def test_a_bool_price_names_its_key(small_engine: cm.Engine) -> None:
    with pytest.raises(PriceTypeError, match=r"^prices\[BTC\]: True is not a number$") as e:
        small_engine.evaluate(book([(1, "USDT", 1.0)]), prices={"BTC": True})
    assert e.value.field == "BTC"


# ---- 6. funding and solvency inputs ------------------------------------------------------
@pytest.mark.parametrize(
    ("rates", "cls", "field"),
    [
        ({"BTCUSDT": True}, ConfigTypeError, "rates[BTCUSDT]"),
        ({"BTCUSDT": "0.0001"}, ConfigTypeError, "rates[BTCUSDT]"),
        ({"BTCUSDT": None}, ConfigTypeError, "rates[BTCUSDT]"),
        ({"BTCUSDT": HUGE}, ConfigError, "rates[BTCUSDT]"),
        ({1: 0.0001}, ConfigTypeError, "rates[1]"),
        ([True, False, False], ConfigTypeError, "rates[0]"),
        (np.array([True, False, False]), ConfigTypeError, "rates"),
        ([HUGE, 0.0, 0.0], ConfigError, "rates"),
        ("0.0001", ConfigTypeError, "rates"),
        (None, ConfigTypeError, "rates"),
    ],
    ids=str,
)
def test_funding_rates_are_numbers(
    small_engine: cm.Engine, rates: Any, cls: Any, field: str
) -> None:
    err = raises(cls, lambda: small_engine.apply_funding(a_book(), rates), field)
    assert isinstance(err, TypeError) == (cls is ConfigTypeError)


@pytest.mark.parametrize(
    ("call", "cls", "field"),
    [
        (lambda: funding.funding_rate(True), ConfigTypeError, "premium"),
        (lambda: funding.funding_rate("0.001"), ConfigTypeError, "premium"),
        (lambda: funding.funding_rate(HUGE), ConfigError, "premium"),
        (lambda: funding.funding_rate([0.001, None]), ConfigTypeError, "premium[1]"),
        (lambda: funding.funding_rate(0.001, interest_rate="x"), ConfigTypeError, "interest_rate"),
        (lambda: funding.funding_rate(0.001, floor=True), ConfigTypeError, "floor"),
        (lambda: funding.funding_rate(0.001, cap={"a": 1}), ConfigTypeError, "cap"),
        (lambda: funding.funding_rate([0.0, 0.0], interest_rate=[1e-4] * 3), ConfigError,
         "interest_rate"),
        (lambda: funding.funding_rate({"BTCUSDT": "x"}), ConfigTypeError, "premium[BTCUSDT]"),
        (lambda: funding.funding_rate({"BTCUSDT": math.nan}), ConfigError, "premium[BTCUSDT]"),
        (lambda: funding.funding_rate({"BTCUSDT": 0.0}, cap={"BTCUSDT": True}),
         ConfigTypeError, "cap[BTCUSDT]"),
        (lambda: funding.funding_rate({"BTCUSDT": 0.0}, floor={"BTCUSDT": 0.1},
                                      cap={"BTCUSDT": -0.1}), ConfigError, "cap[BTCUSDT]"),
        (lambda: funding.funding_rate({1: 0.0}), ConfigTypeError, "premium[1]"),
    ],
)  # fmt: skip
def test_funding_rate_inputs_are_typed_and_named(call: Any, cls: Any, field: str) -> None:
    err = raises(cls, call, field)
    assert isinstance(err, TypeError) == (cls is ConfigTypeError)


@pytest.mark.parametrize(
    ("kwargs", "cls", "field"),
    [
        ({"exchange_assets": 5.0}, ConfigTypeError, "exchange_assets"),
        ({"exchange_assets": [("USDT", 1.0)]}, ConfigTypeError, "exchange_assets"),
        ({"exchange_assets": {"USDT": True}}, ConfigTypeError, "exchange_assets[USDT]"),
        ({"exchange_assets": {"USDT": "1e6"}}, ConfigTypeError, "exchange_assets[USDT]"),
        ({"exchange_assets": {"USDT": HUGE}}, ConfigError, "exchange_assets[USDT]"),
        ({"stress": -0.3}, PriceTypeError, "stress"),
        ({"stress": {"BTC": True}}, PriceTypeError, "stress[BTC]"),
        ({"stress": {"BTC": None}}, PriceTypeError, "stress[BTC]"),
        ({"stress": {"BTC": HUGE}}, PriceError, "stress[BTC]"),
        ({"seed": 42}, ConfigTypeError, "seed"),
    ],
    ids=str,
)
def test_solvency_inputs_are_typed_and_named(
    small_engine: cm.Engine, kwargs: dict, cls: Any, field: str
) -> None:
    args = {"exchange_assets": {"USDT": 1.0}, "seed": b"s", **kwargs}
    err = raises(cls, lambda: small_engine.solvency(a_book(), **args), field)
    assert isinstance(err, TypeError) == cls.__name__.endswith("TypeError")


# ---- 7. book cells -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("qty", "row", "shown"),
    [
        (["1.0", 2.0, 3.0, "abc"], 3, "'abc'"),
        ([1.0, True, 3.0, 4.0], 1, "True"),
        (pd.Series([1.0, 2.0, 3.0, "abc"], dtype=object), 3, "'abc'"),
        (pd.Series([1.0, None, 3.0, "abc"], dtype=object), 3, "'abc'"),
        (pd.Series([1.0, 2.0, [3.0], 4.0], dtype=object), 2, "[3.0]"),
        (np.array(["1", "2", "x", "4"]), 2, "'x'"),
    ],
    ids=["list", "bool", "pandas-object", "pandas-with-none", "pandas-list", "numpy-text"],
)
def test_a_bad_cell_in_a_numeric_column_names_its_row(qty: Any, row: int, shown: str) -> None:
    cols = {"account": [1, 2, 3, 4], "asset": ["USDT"] * 4, "qty": qty}
    with pytest.raises(BookTypeError) as info:
        cm.Book.from_arrays(cols)
    e = info.value
    assert (e.table, e.row, e.column) == ("balances", row, "qty")
    assert str(e) == f"balances row {row}: qty {shown} is not a number"


def test_a_bad_cell_in_a_dataframe_names_its_row() -> None:
    df = pd.DataFrame({"account": [1, 2, 3, 4], "asset": ["USDT"] * 4,
                       "qty": [1.0, 2.0, 3.0, "abc"]})  # fmt: skip
    with pytest.raises(BookTypeError, match=r"^balances row 3: qty 'abc' is not a number$"):
        cm.Book.from_pandas(df)
    entry = pd.Series([50_000.0, "n/a"], dtype=object)
    pos = pd.DataFrame({"account": [1, 2], "market": ["BTCUSDT"] * 2, "qty": [1.0, 1.0],
                        "entry_price": entry})  # fmt: skip
    with pytest.raises(BookTypeError) as info:
        cm.Book.from_pandas(None, pos)
    assert (info.value.table, info.value.row, info.value.column) == ("positions", 1, "entry_price")


def test_a_missing_cell_is_nan_so_the_core_names_its_row_or_reads_cross() -> None:
    """None / pandas NA in an object column is a missing value (NaN), as numpy and Arrow
    read it: a missing quantity is refused naming its row; a missing isolated margin means
    cross (the documented NaN rule)."""
    for missing in (None, pd.NA):
        qty = pd.Series([1.0, 2.0, missing, "abc"], dtype=object)[:3]
        with pytest.raises(BookError, match=r"^balances row 2: qty NaN") as info:
            cm.Book.from_arrays({"account": [1, 2, 3], "asset": ["USDT"] * 3, "qty": qty})
        assert (info.value.row, info.value.column) == (2, "qty")
    iso = pd.Series([None, 100.0], dtype=object)
    b = cm.Book.from_arrays(
        None,
        {"account": [1, 2], "market": ["BTCUSDT"] * 2, "qty": [1.0, 1.0],
         "entry_price": [50_000.0] * 2, "isolated_margin": iso},
    )  # fmt: skip
    assert math.isnan(b.positions["isolated_margin"][0])


def test_numeric_text_in_a_numeric_column_is_still_read() -> None:
    b = cm.Book.from_arrays({"account": [1, 2], "asset": ["USDT"] * 2, "qty": ["5", 2.5]})
    assert b.balances["qty"].tolist() == [5.0, 2.5]


def test_an_integer_beyond_floats_in_a_cell_names_its_row() -> None:
    cols = {"account": [1, 2], "asset": ["USDT"] * 2, "qty": np.array([1, HUGE], dtype=object)}
    with pytest.raises(BookError) as info:
        cm.Book.from_arrays(cols)
    assert not isinstance(info.value, TypeError)
    assert (info.value.row, info.value.column) == (1, "qty")


@pytest.mark.parametrize(
    ("account", "row"),
    [([1, True], 1), ([1, "7"], 1), ([1, None], 1), ([1, 2.5], None)],
)
def test_account_ids_of_the_wrong_type_name_their_row(account: list, row: int | None) -> None:
    cols = {"account": account, "asset": ["USDT"] * 2, "qty": [1.0, 1.0]}
    with pytest.raises(BookError) as info:
        cm.Book.from_arrays(cols)
    assert (info.value.table, info.value.column) == ("balances", "account")
    if row is not None:
        assert info.value.row == row and isinstance(info.value, BookTypeError)


def test_a_ragged_column_is_a_book_type_error() -> None:
    cols = {"account": [1, 2], "asset": ["USDT"] * 2, "qty": [[1.0, 2.0], [3.0]]}
    with pytest.raises(BookTypeError) as info:
        cm.Book.from_arrays(cols)
    assert info.value.column == "qty"


# ---- 8. stress and reverse stress arguments ----------------------------------------------
@pytest.mark.parametrize(
    ("call", "cls", "field"),
    [
        (lambda e, b: e.stress(b, {"s": {"BTC": -0.1}}, insurance_fund=True), ConfigTypeError,
         "insurance_fund"),
        (lambda e, b: e.stress(b, {"s": {"BTC": -0.1}}, insurance_fund="1e6"), ConfigTypeError,
         "insurance_fund"),
        (lambda e, b: e.stress(b, {"s": {"BTC": -0.1}}, insurance_fund=HUGE), ConfigError,
         "insurance_fund"),
        (lambda e, b: e.stress(b, {"s": {"BTC": -0.1}}, insurance_fund=-1.0), ConfigError,
         "insurance_fund"),
        (lambda e, b: e.stress(b, {"s": {"BTC": True}}), ConfigTypeError, "scenarios[s][BTC]"),
        (lambda e, b: e.stress(b, {"s": {"BTC": HUGE}}), ConfigError, "scenarios[s][BTC]"),
        (lambda e, b: e.reverse_stress(b, True), ConfigTypeError, "insurance_fund"),
        (lambda e, b: e.reverse_stress(b, math.nan), ConfigError, "insurance_fund"),
        (lambda e, b: e.reverse_stress(b, HUGE), ConfigError, "insurance_fund"),
        (lambda e, b: e.reverse_stress(b, 1.0, direction=True), ConfigTypeError, "direction"),
        (lambda e, b: e.reverse_stress(b, 1.0, direction=-1.0), ConfigTypeError, "direction"),
        (lambda e, b: e.reverse_stress(b, 1.0, underlyings="BTC"), ConfigTypeError,
         "underlyings"),
        (lambda e, b: e.reverse_stress(b, 1.0, measure=None), ConfigTypeError, "measure"),
        (lambda e, b: e.reverse_stress(b, 1.0, max_move="0.5"), ConfigTypeError, "max_move"),
        (lambda e, b: e.reverse_stress(b, 1.0, max_move=HUGE), ConfigError, "max_move"),
        (lambda e, b: e.reverse_stress(b, 1.0, max_move=1.0), ConfigError, "max_move"),
        (lambda e, b: e.reverse_stress(b, 1.0, tol=True), ConfigTypeError, "tol"),
        (lambda e, b: e.reverse_stress(b, 1.0, tol="x"), ConfigTypeError, "tol"),
        (lambda e, b: e.reverse_stress(b, 1.0, tol=math.inf), ConfigError, "tol"),
        (lambda e, b: e.reverse_stress(b, 1.0, tol=0.0), ConfigError, "tol"),
    ],
)  # fmt: skip
def test_stress_and_reverse_stress_arguments_are_typed_and_in_domain(
    small_engine: cm.Engine, call: Any, cls: Any, field: str
) -> None:
    err = raises(cls, lambda: call(small_engine, a_book()), field)
    assert isinstance(err, TypeError) == (cls is ConfigTypeError)


# ---- the sweep: no raw exception from any entry point ------------------------------------
BAD_VALUES = {
    "text": "x",
    "numeric text": "5",
    "bool": True,
    "numpy bool": np.bool_(True),
    "None": None,
    "nan": math.nan,
    "inf": math.inf,
    "negative": -5.0,
    "huge int": HUGE,
    "list": [1.0],
    "dict": {"a": 1},
    "complex": 1j,
}

ENTRY_POINTS: dict[str, Any] = {
    "cascade fund": lambda e, b, v: e.cascade(b, CascadeConfig(shock={"BTC": -0.1},
                                                                insurance_fund=v)),
    "cascade fee": lambda e, b, v: CascadeConfig(liquidation_fee=v),
    "cascade rounds": lambda e, b, v: CascadeConfig(max_liquidations_per_round=v),
    "cascade shock": lambda e, b, v: CascadeConfig(shock={"BTC": v}),
    "cascade shock map": lambda e, b, v: CascadeConfig(shock=v),
    "cascade path": lambda e, b, v: CascadeConfig(path=v),
    "cascade deleverage": lambda e, b, v: CascadeConfig(deleverage=v),
    "sqrt impact": lambda e, b, v: SqrtImpact(sigma=v),
    "depth curve": lambda e, b, v: DepthCurve(v),
    "depth point": lambda e, b, v: DepthCurve([(0.01, v)]),
    "funding rates": lambda e, b, v: e.apply_funding(b, {"BTCUSDT": v}),
    "funding array": lambda e, b, v: e.apply_funding(b, [v, 0.0, 0.0]),
    "funding_rate": lambda e, b, v: funding.funding_rate(0.001, v),
    "reserves": lambda e, b, v: e.solvency(b, {"USDT": v}, seed=b"s"),
    "reserves map": lambda e, b, v: e.solvency(b, v, seed=b"s"),
    "solvency stress": lambda e, b, v: e.solvency(b, {"USDT": 1.0}, stress=v, seed=b"s"),
    "stress fund": lambda e, b, v: e.stress(b, {"s": {"BTC": -0.1}}, insurance_fund=v),
    "reverse fund": lambda e, b, v: e.reverse_stress(b, v),
    "reverse max_move": lambda e, b, v: e.reverse_stress(b, 1.0, max_move=v),
    "reverse tol": lambda e, b, v: e.reverse_stress(b, 1.0, tol=v),
    "reverse underlyings": lambda e, b, v: e.reverse_stress(b, 1.0, underlyings=v),
    "price": lambda e, b, v: e.evaluate(b, prices={"BTC": v}),
    "price pair": lambda e, b, v: e.evaluate(b, prices=([v, 1.0, 1.0, 1.0], [1.0] * 3)),
    "book qty": lambda e, b, v: cm.Book.from_arrays(
        {"account": [1, 2], "asset": ["USDT"] * 2, "qty": np.array([1.0, v], dtype=object)}
    ),
    "asset price": lambda e, b, v: cm.Universe([cm.Asset("BTC", v)]),
    "market mark": lambda e, b, v: cm.Universe(
        [cm.Asset("USDT", 1.0)], [cm.Market("X", "perp", "USDT", "BTC", v, LINEAR)]
    ),
    "brackets": lambda e, b, v: cm.Market("X", "perp", "USDT", "BTC", 1.0, v),
}  # fmt: skip


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_no_bad_value_escapes_as_a_raw_exception(small_engine: cm.Engine, entry: str) -> None:
    """Each entry point × each bad value: a result (the value made sense there, e.g. a
    negative funding rate) or a CrossmarginError; never a raw TypeError / ValueError /
    OverflowError / AttributeError. Bools and numeric text are never accepted as numbers."""
    b = a_book()
    for name, value in BAD_VALUES.items():
        try:
            ENTRY_POINTS[entry](small_engine, b, value)
        except CrossmarginError:
            continue
        except Exception as e:
            pytest.fail(f"{entry} with {name}: raw {type(e).__name__}: {e}")
        never = {"bool", "numpy bool", "huge int", "text", "complex"}
        if entry != "book qty":  # numeric text in a book column is parsed (a leniency)
            never.add("numeric text")
        assert name not in never, f"{entry} accepted {name}"
