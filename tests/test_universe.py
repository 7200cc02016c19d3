"""The universe (docs/MODEL.md "Universe"): validated once on construction; every bad value raises
``ConfigError`` whose ``field`` names it like ``markets[BTCUSDT].brackets[2].mmr``."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import crossmargin as cm
import pytest

REPO = Path(__file__).resolve().parents[1]
INF = math.inf
GOOD_BRACKETS = [(50_000.0, 0.02, 0.01), (INF, 0.1, 0.05)]


def asset(symbol: str = "BTC", **kw) -> cm.Asset:
    return cm.Asset(symbol, kw.pop("price", 100.0), **kw)


def market(symbol: str = "X", **kw) -> cm.Market:
    args = {
        "kind": "perp",
        "settle": "USDT",
        "underlying": "BTC",
        "mark": 100.0,
        "brackets": GOOD_BRACKETS,
    }
    args.update(kw)
    return cm.Market(symbol, **args)


def universe(assets=None, markets=()) -> cm.Universe:
    return cm.Universe(assets if assets is not None else [asset("USDT", price=1.0)], markets)


def config_error(build) -> cm.ConfigError:
    with pytest.raises(cm.ConfigError) as info:
        build()
    err = info.value
    assert isinstance(err, cm.CrossmarginError)
    assert isinstance(err, ValueError)
    assert err.field is not None
    assert str(err).startswith(err.field), f"message {str(err)!r} does not lead with its field"
    return err


# ---- assets ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["weight_initial", "weight_maint"])
@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, INF])
def test_collateral_weights_must_lie_in_zero_one(name, value):
    err = config_error(lambda: universe([asset("BTC", **{name: value})]))
    assert err.field == f"assets[BTC].{name}"


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_collateral_weights_zero_and_one_are_allowed(value):
    universe([asset("BTC", weight_initial=value, weight_maint=value)])


@pytest.mark.parametrize("name", ["liability_weight_initial", "liability_weight_maint"])
@pytest.mark.parametrize("value", [0.99, 0.0, -1.0, math.nan, INF])
def test_liability_weights_must_be_at_least_one(name, value):
    err = config_error(lambda: universe([asset("BTC", **{name: value})]))
    assert err.field == f"assets[BTC].{name}"


@pytest.mark.parametrize("value", [-1.0, -1e-300, math.nan, INF, -INF])
def test_asset_price_must_be_finite_and_not_negative(value):
    err = config_error(lambda: universe([asset("BTC", price=value)]))
    assert err.field == "assets[BTC].price"


def test_asset_price_zero_is_allowed():
    universe([asset("DELISTED", price=0.0)])


@pytest.mark.parametrize("value", [-0.001, math.nan])
def test_asset_imf_factor_must_not_be_negative(value):
    err = config_error(lambda: universe([asset("BTC", imf_factor=value)]))
    assert err.field == "assets[BTC].imf_factor"


def test_asset_fields_must_be_numbers():
    err = config_error(lambda: asset("BTC", price="lots"))
    assert err.field == "assets[BTC].price"
    assert "not a number" in str(err)


def test_asset_symbol_must_be_a_non_empty_string():
    assert config_error(lambda: cm.Asset("", 1.0)).field == "assets[].symbol"
    config_error(lambda: cm.Asset(None, 1.0))


def test_duplicate_asset_symbols_are_rejected():
    err = config_error(lambda: universe([asset("BTC"), asset("BTC")]))
    assert err.field == "assets[BTC].symbol"
    assert "duplicate" in str(err)


@pytest.mark.parametrize(
    ("tiers", "field"),
    [
        ([(100.0, 1.0), (50.0, 0.5)], "assets[BTC].haircut_tiers[1].bound"),  # unsorted
        ([(100.0, 1.0), (100.0, 0.5)], "assets[BTC].haircut_tiers[1].bound"),  # overlapping
        ([(INF, 1.0), (1e9, 0.5)], "assets[BTC].haircut_tiers[1].bound"),  # after inf
        ([(0.0, 1.0)], "assets[BTC].haircut_tiers[0].bound"),
        ([(-5.0, 1.0)], "assets[BTC].haircut_tiers[0].bound"),
        ([(math.nan, 1.0)], "assets[BTC].haircut_tiers[0].bound"),
        ([(100.0, 1.5)], "assets[BTC].haircut_tiers[0].rate"),
        ([(100.0, 1.0), (200.0, -0.1)], "assets[BTC].haircut_tiers[1].rate"),
        ([(100.0, math.nan)], "assets[BTC].haircut_tiers[0].rate"),
    ],
)
def test_haircut_tiers_must_be_sorted_non_overlapping_with_rates_in_zero_one(tiers, field):
    err = config_error(lambda: universe([asset("BTC", haircut_tiers=tiers)]))
    assert err.field == field


def test_haircut_tiers_must_be_pairs():
    err = config_error(lambda: asset("BTC", haircut_tiers=[(100.0, 1.0, 2.0)]))
    assert err.field == "assets[BTC].haircut_tiers[0]"


# ---- markets ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("brackets", "field"),
    [
        ([(100.0, 0.1, 0.05), (50.0, 0.2, 0.1)], "markets[X].brackets[1].bound"),  # unsorted
        ([(100.0, 0.1, 0.05), (100.0, 0.2, 0.1)], "markets[X].brackets[1].bound"),  # overlap
        ([(INF, 0.1, 0.05), (1e9, 0.2, 0.1)], "markets[X].brackets[1].bound"),  # after inf
        ([(0.0, 0.1, 0.05)], "markets[X].brackets[0].bound"),
        ([(math.nan, 0.1, 0.05)], "markets[X].brackets[0].bound"),
        ([(100.0, 0.1, 0.2)], "markets[X].brackets[0].mmr"),  # mmr > imr
        ([(100.0, 0.1, 0.05), (INF, 0.2, 0.3)], "markets[X].brackets[1].mmr"),
        ([(100.0, 1.5, 0.05)], "markets[X].brackets[0].imr"),
        ([(100.0, 0.1, -0.05)], "markets[X].brackets[0].mmr"),
        ([(100.0, math.nan, 0.05)], "markets[X].brackets[0].imr"),
        ([(100.0, 0.1, 0.05), (INF, 0.05, 0.05)], "markets[X].brackets[1]"),  # imr decreases
        ([(100.0, 0.1, 0.05), (INF, 0.1, 0.04)], "markets[X].brackets[1]"),  # mmr decreases
        ([], "markets[X].brackets"),
    ],
)
def test_brackets_must_be_sorted_with_mmr_at_most_imr_and_rates_not_decreasing(brackets, field):
    err = config_error(lambda: universe(markets=[market("X", brackets=brackets)]))
    assert err.field == field


def test_decreasing_rates_are_reported_as_such():
    bad = [(100.0, 0.1, 0.05), (INF, 0.05, 0.05)]
    err = config_error(lambda: universe(markets=[market("X", brackets=bad)]))
    assert "must not decrease" in str(err)


def test_mmr_above_imr_is_reported_as_such():
    err = config_error(lambda: universe(markets=[market("X", brackets=[(INF, 0.1, 0.2)])]))
    assert "exceeds initial" in str(err)


def test_bracket_rows_must_be_triples():
    err = config_error(lambda: market("X", brackets=[(100.0, 0.1)]))
    assert err.field == "markets[X].brackets[0]"
    err = config_error(lambda: market("X", brackets=5))
    assert err.field == "markets[X].brackets"


def test_settle_asset_must_exist():
    err = config_error(lambda: universe(markets=[market("X", settle="USDC")]))
    assert err.field == "markets[X].settle"
    assert "USDC" in str(err)


def test_duplicate_market_symbols_are_rejected():
    err = config_error(lambda: universe(markets=[market("X"), market("X")]))
    assert err.field == "markets[X].symbol"
    assert "duplicate" in str(err)


@pytest.mark.parametrize("kind", ["swap", "", "PERP", None])
def test_market_kind_must_be_perp_or_future(kind):
    err = config_error(lambda: market("X", kind=kind))
    assert err.field == "markets[X].kind"


@pytest.mark.parametrize("kind", ["perp", "future"])
def test_market_kinds_perp_and_future_are_accepted(kind):
    universe(markets=[market("X", kind=kind)])


@pytest.mark.parametrize("name", ["mark", "contract_size"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, INF])
def test_mark_and_contract_size_must_be_finite_and_positive(name, value):
    err = config_error(lambda: universe(markets=[market("X", **{name: value})]))
    assert err.field == f"markets[X].{name}"


@pytest.mark.parametrize("name", ["upnl_weight_initial", "upnl_weight_maint"])
@pytest.mark.parametrize("value", [-0.1, 1.1, math.nan])
def test_upnl_weights_must_lie_in_zero_one(name, value):
    err = config_error(lambda: universe(markets=[market("X", **{name: value})]))
    assert err.field == f"markets[X].{name}"


def test_market_imf_factor_must_not_be_negative():
    err = config_error(lambda: universe(markets=[market("X", imf_factor=-1.0)]))
    assert err.field == "markets[X].imf_factor"


def test_inverse_must_be_a_bool():
    err = config_error(lambda: market("X", inverse="yes"))
    assert err.field == "markets[X].inverse"


@pytest.mark.parametrize("name", ["settle", "underlying"])
def test_settle_and_underlying_must_be_non_empty(name):
    err = config_error(lambda: market("X", **{name: ""}))
    assert err.field == f"markets[X].{name}"


def test_universe_items_must_be_assets_and_markets():
    assert config_error(lambda: cm.Universe([{"symbol": "BTC"}])).field == "assets[0]"
    assert config_error(lambda: cm.Universe([asset("USDT")], [asset("BTC")])).field == "markets[0]"


@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ({"DOGE": 1.0}, "underlying_prices[DOGE]"),
        ({"BTC": 0.0}, "underlying_prices[BTC]"),
        ({"BTC": -5.0}, "underlying_prices[BTC]"),
        ({"BTC": math.nan}, "underlying_prices[BTC]"),
        ({"BTC": INF}, "underlying_prices[BTC]"),
    ],
)
def test_underlying_prices_must_name_an_underlying_and_be_positive(prices, field):
    assets = [asset("USDT", price=1.0)]
    err = config_error(lambda: cm.Universe(assets, [market("X")], prices))
    assert err.field == field


def test_universe_is_frozen(small):
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.assets = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.assets[0].price = 2.0


def test_underlyings_are_distinct_in_order_of_first_appearance(demo):
    assert demo.underlyings == ("BTC", "ETH", "SOL")


def test_reference_price_of_an_underlying(demo):
    assert demo.reference_price("BTC") == 95_000.0
    u = cm.Universe(
        [asset("USDT", price=1.0)],
        [market("X", underlying="IDX", mark=7.0), market("Y", underlying="IDX", mark=8.0)],
    )
    assert u.reference_price("IDX") == 7.0  # the first market's mark when no asset
    u = cm.Universe([asset("USDT", price=1.0)], [market("X", underlying="IDX")], {"IDX": 9.0})
    assert u.reference_price("IDX") == 9.0


# ---- TOML ------------------------------------------------------------------------------
def test_examples_universe_toml_loads_and_equals_the_demo():
    u = cm.Universe.from_toml(REPO / "examples" / "universe.toml")
    assert [a.symbol for a in u.assets] == ["USDT", "USDC", "BTC", "ETH", "SOL"]
    assert [m.symbol for m in u.markets] == [
        "BTCUSDT",
        "ETHUSDT",
        "SOLUSDT",
        "BTCUSDT_260925",
        "BTCUSD_PERP",
    ]
    assert u == cm.Universe.demo()
    inverse = u.markets[u.market_index["BTCUSD_PERP"]]
    assert inverse.inverse and inverse.settle == "BTC" and inverse.contract_size == 100.0
    assert u.markets[0].brackets[-1][0] == INF


def test_from_toml_accepts_a_str_path():
    cm.Universe.from_toml(str(REPO / "examples" / "universe.toml"))


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "u.toml"
    p.write_text(text, encoding="utf-8")
    return p


MINIMAL = """
[[assets]]
symbol = "USDT"
price = 1.0

[[markets]]
symbol = "BTCUSDT"
kind = "perp"
settle = "USDT"
underlying = "BTC"
mark = 100.0
brackets = [[1000.0, 0.1, 0.05], [inf, 0.2, 0.1]]
"""


def test_from_toml_minimal_file_uses_defaults(tmp_path):
    u = cm.Universe.from_toml(_toml(tmp_path, MINIMAL))
    a, m = u.assets[0], u.markets[0]
    assert (a.weight_initial, a.weight_maint, a.liability_weight_maint) == (1.0, 1.0, 1.0)
    assert a.haircut_tiers is None and a.imf_factor == 0.0
    assert (m.contract_size, m.inverse, m.imf_factor, m.upnl_weight_maint) == (1.0, False, 0.0, 1.0)


def test_from_toml_accepts_meta_and_underlying_prices(tmp_path):
    text = '[meta]\nname = "x"\n[underlying_prices]\nBTC = 101.0\n' + MINIMAL
    u = cm.Universe.from_toml(_toml(tmp_path, text))
    assert u.reference_price("BTC") == 101.0


def test_unknown_top_level_toml_key_is_rejected(tmp_path):
    err = config_error(lambda: cm.Universe.from_toml(_toml(tmp_path, "colour = 1\n" + MINIMAL)))
    assert err.field == "colour"


def test_unknown_asset_field_in_toml_is_rejected(tmp_path):
    text = MINIMAL.replace("price = 1.0", "price = 1.0\nhaircut = 0.1")
    err = config_error(lambda: cm.Universe.from_toml(_toml(tmp_path, text)))
    assert err.field == "assets[USDT].haircut"


def test_unknown_market_field_in_toml_is_rejected(tmp_path):
    text = MINIMAL.replace("mark = 100.0", "mark = 100.0\nleverage = 20")
    err = config_error(lambda: cm.Universe.from_toml(_toml(tmp_path, text)))
    assert err.field == "markets[BTCUSDT].leverage"


def test_missing_required_toml_field_names_the_item(tmp_path):
    text = MINIMAL.replace("mark = 100.0\n", "")
    err = config_error(lambda: cm.Universe.from_toml(_toml(tmp_path, text)))
    assert err.field == "markets[BTCUSDT]"
    assert "mark" in str(err)


def test_toml_items_must_be_tables():
    err = config_error(lambda: cm.Universe.from_dict({"assets": [5]}))
    assert err.field == "assets[0]"


def test_bad_value_in_toml_names_its_field(tmp_path):
    text = MINIMAL.replace("[inf, 0.2, 0.1]", "[inf, 0.2, 0.3]")
    err = config_error(lambda: cm.Universe.from_toml(_toml(tmp_path, text)))
    assert err.field == "markets[BTCUSDT].brackets[1].mmr"


def test_missing_toml_file_is_a_config_error(tmp_path):
    err = config_error(lambda: cm.Universe.from_toml(tmp_path / "nope.toml"))
    assert "no such file" in str(err)


def test_invalid_toml_is_a_config_error(tmp_path):
    err = config_error(lambda: cm.Universe.from_toml(_toml(tmp_path, "[[assets]\nsymbol = ")))
    assert "invalid TOML" in str(err)


# ---- bracket amounts ----------------------------------------------------------------------
def test_brackets_with_amounts_reproduce_binance_btcusdt_maintenance_amounts(demo):
    """Binance USDⓈ-M BTCUSDT perpetual leverage brackets as served by
    ``GET /fapi/v1/leverageBracket`` and snapshotted in freqtrade 2026.9
    (freqtrade/freqtrade, freqtrade/exchange/binance_leverage_tiers.json; docs/SOURCES.md
    §1.1); the recurrence is Binance's FAQ "How to Calculate Liquidation Price of USDⓈ-M
    Futures Contracts",
    https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93
    """
    published_cum = [
        0, 300, 1_500, 12_000, 132_000, 482_000, 2_982_000,
        14_482_000, 26_482_000, 41_482_000, 121_482_000, 421_482_000,
    ]  # fmt: skip
    published_mmr = [
        0.004, 0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.1, 0.125, 0.15, 0.25, 0.5,
    ]  # fmt: skip
    rows = demo.brackets_with_amounts("BTCUSDT")
    assert [r[2] for r in rows] == published_mmr
    assert [r[4] for r in rows] == pytest.approx(published_cum, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize(
    ("symbol", "published_cum"),
    [
        (
            "ETHUSDT",
            [0, 300, 1_500, 12_000, 132_000, 382_000, 2_007_000, 9_507_000,
             17_507_000, 27_507_000, 80_507_000, 280_507_000],
        ),
        (
            "SOLUSDT",
            [0, 75, 1_475, 11_475, 31_475, 231_475, 2_231_475, 4_231_475,
             16_731_475, 66_731_475],
        ),
        (
            "BTCUSDT_260925",
            [0, 500, 11_750, 111_750, 211_750, 461_750, 2_461_750, 12_461_750],
        ),
    ],
)  # fmt: skip
def test_brackets_with_amounts_reproduce_binance_maintenance_amounts(demo, symbol, published_cum):
    """Binance ``cum`` columns of docs/SOURCES.md §1.1 (freqtrade 2026.9 snapshot of
    ``GET /fapi/v1/leverageBracket``,
    https://github.com/freqtrade/freqtrade/blob/develop/freqtrade/exchange/binance_leverage_tiers.json)."""
    rows = demo.brackets_with_amounts(symbol)
    assert [r[4] for r in rows] == pytest.approx(published_cum, rel=1e-12, abs=1e-9)


def test_brackets_with_amounts_reproduce_the_published_coin_m_anchors(demo):
    """Binance FAQ "How to Calculate Liquidation Price of COIN-M Futures Contracts",
    https://www.binance.com/es/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46 : the BTCUSD
    maintenance amount on level 5 is 50 BTC × (5% − 2.5%) + 0.56 BTC = 1.81 BTC, and a
    300 BTC position has MMR 12.5% and maintenance amount 11.81 BTC."""
    rows = demo.brackets_with_amounts("BTCUSD_PERP")
    assert rows[3][4] == pytest.approx(0.56, rel=1e-12)
    assert rows[4][4] == pytest.approx(1.81, rel=1e-12)
    tier_of_300 = next(r for r in rows if 300.0 <= r[0])
    assert tier_of_300[2] == 0.125
    assert tier_of_300[4] == pytest.approx(11.81, rel=1e-12)


def test_bracket_amounts_make_requirements_continuous(small):
    """cum_k = floor_k × (rate_k − rate_{k−1}) + cum_{k−1}, for both rates."""
    rows = small.brackets_with_amounts("BTCUSDT")
    assert rows[0][3:] == (0.0, 0.0)
    for prev, cur in itertools.pairwise(rows):
        floor = prev[0]
        assert floor * prev[1] - prev[3] == pytest.approx(floor * cur[1] - cur[3], rel=1e-12)
        assert floor * prev[2] - prev[4] == pytest.approx(floor * cur[2] - cur[4], rel=1e-12)


def test_brackets_with_amounts_of_an_unknown_market_is_a_config_error(small):
    with pytest.raises(cm.ConfigError, match=r"markets\[NOPE\]: unknown market"):
        small.brackets_with_amounts("NOPE")
