"""Venue presets (crossmargin.venues) against their venues' published numbers and formulas.

Each test cites the page or code its number comes from; docs/MODEL.md "Venue presets"
has the formulas. The Drift differential test runs driftpy's own math in driftpy's own
interpreter (.ci/test makes its virtualenv and requires it); nothing here touches the network.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import crossmargin as cm
import numpy as np
import pandas as pd
import pytest
from crossmargin import reference, venues
from crossmargin.cli import app
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
INF = math.inf


def evaluate_one(u: cm.Universe, balances=(), positions=(), prices=None) -> dict:
    """The single account's numbers from the engine, checked against the reference."""
    b = cm.Book.from_arrays(
        balances={
            "account": [1] * len(balances),
            "asset": [x[0] for x in balances],
            "qty": [x[1] for x in balances],
        }
        if balances
        else None,
        positions={
            "account": [1] * len(positions),
            "market": [x[0] for x in positions],
            "qty": [x[1] for x in positions],
            "entry_price": [x[2] for x in positions],
            "isolated_margin": [x[3] if len(x) > 3 else 0.0 for x in positions],
        }
        if positions
        else None,
    )
    eng = cm.Engine(u, threads=1).evaluate(b, prices=prices).to_pandas().iloc[0].to_dict()
    ref = reference.evaluate(u, b, prices=prices).to_pandas().iloc[0].to_dict()
    for k in ("equity", "adj_equity_initial", "adj_equity_maint", "im", "mm"):
        assert eng[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-9), k
    return eng


# ---- every preset ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(venues.PRESETS))
def test_each_example_toml_loads_as_its_preset(name: str) -> None:
    u = cm.Universe.from_toml(ROOT / "examples" / "venues" / f"{name}.toml")
    assert u == venues.PRESETS[name]()


@pytest.mark.parametrize("name", list(venues.PRESETS))
def test_presets_take_prices_and_a_symbol_subset(name: str) -> None:
    preset = venues.PRESETS[name]
    u = preset(prices={"BTC": 50_000.0, "ETH": 2_500.0})
    first = u.markets[0].symbol
    assert [m.symbol for m in preset(symbols=[first]).markets] == [first]
    with pytest.raises(cm.ConfigError, match="not a market of this venue"):
        preset(symbols=["NOPE"])


# ---- Binance USDⓈ-M ------------------------------------------------------------------------
def test_binance_maintenance_amount_recurrence_published_example() -> None:
    # "the Maintenance Amount on Level 3 = 250,000 * (1% − 0.5%) + 50 USDT = 1,300 USDT"
    # https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93
    table = [(50_000.0, 0.008, 0.004), (250_000.0, 0.01, 0.005), (1_000_000.0, 0.02, 0.01)]
    assert venues.maintenance_deductions(table)[2] == pytest.approx(1_300.0)  # the helper
    # The engine, which never calls that helper: a level-3 position (5 BTC at 60,000 =
    # 300,000 USDT) needs 300,000 × 1% − 1,300 = 1,700 USDT of maintenance margin …
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 60_000.0, table)],
    )
    wb, pos, ep = 10_000.0, 5.0, 60_000.0
    r = evaluate_one(u, balances=[("USDT", wb)], positions=[("BTCUSDT", pos, ep)])
    assert r["mm"] == pytest.approx(300_000 * 0.01 - 1_300.0, rel=1e-12)
    assert r["mm"] == pytest.approx(1_700.0, rel=1e-12)
    # … and liquidates at the FAQ's one-way formula with level 3's rate and amount,
    # LP = (WB + cum − Pos·EP) / (Pos·MMR − Pos) = 58,323.23 (notional 291,616: level 3).
    b = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["USDT"], "qty": [wb]},
        positions={"account": [1], "market": ["BTCUSDT"], "qty": [pos], "entry_price": [ep]},
    )
    lp = float(cm.Engine(u, threads=1).liquidation_prices(b, move="mark").liq_price[0])
    assert lp == pytest.approx((wb + 1_300.0 - pos * ep) / (pos * 0.01 - pos), rel=1e-12)
    assert 250_000 < pos * lp < 1_000_000 and round(lp, 2) == 58_323.23


def test_binance_btcusdt_amounts_equal_the_published_cum_column() -> None:
    # GET /fapi/v1/leverageBracket "cum", as shipped in freqtrade 2026.9
    # (freqtrade/exchange/binance_leverage_tiers.json; docs/SOURCES.md §1.1)
    published = [0, 300, 1_500, 12_000, 132_000, 482_000, 2_982_000, 14_482_000, 26_482_000,
                 41_482_000, 121_482_000, 421_482_000]  # fmt: skip
    rows = venues.binance_usdm().brackets_with_amounts("BTCUSDT")
    assert [r[4] for r in rows] == pytest.approx(published)
    assert rows[0][1] == pytest.approx(1 / 150)  # "Initial Margin Rate = 1 / Leverage"


def test_binance_coin_m_maintenance_published_example() -> None:
    # "Maintenance Margin = 100 * 100 / 25,000 * 0.4% - 0 = 0.0016 BTC"
    # https://www.binance.com/es-MX/support/faq/how-to-calculate-liquidation-price-of-coin-m-futures-contracts-ceccfcfb4e3a45e3b48b0b1bb1a8ae46
    u = venues.binance_usdm(prices={"BTC": 25_000.0})
    r = evaluate_one(u, positions=[("BTCUSD_PERP", 100.0, 25_000.0)])
    assert r["mm"] / 25_000.0 == pytest.approx(0.0016)


def test_binance_multi_assets_collateral_ratio_published_example() -> None:
    # "BNB with a market value of $1000 will be valued at $950"
    # https://www.binance.com/en-NG/support/faq/29b45c485d664028b9ca1cdf90b24f6f
    u = venues.binance_usdm(prices={"BNB": 500.0})
    r = evaluate_one(u, balances=[("BNB", 2.0)])
    assert r["adj_equity_initial"] == pytest.approx(950.0)
    assert r["adj_equity_maint"] == pytest.approx(950.0)


# ---- OKX -------------------------------------------------------------------------------------
def test_okx_beth_discount_tiers_count_slice_by_slice() -> None:
    # BETH: 0–2M 0.95, 2M–4M 0.85, 4M–8M 0.5, > 8M 0 (USD), effective 2024-07-18,
    # https://www.globenewswire.com/news-release/2024/07/18/2915393/0/en/OKX-Adjusts-Discount-Rates-for-BETH.html
    u = venues.okx_multi_currency(prices={"BETH": 1_000.0})
    r = evaluate_one(u, balances=[("BETH", 3_000.0)])
    assert r["adj_equity_maint"] == pytest.approx(2e6 * 0.95 + 1e6 * 0.85)
    r = evaluate_one(u, balances=[("BETH", 10_000.0)])
    assert r["adj_equity_maint"] == pytest.approx(2e6 * 0.95 + 2e6 * 0.85 + 4e6 * 0.5)


def test_okx_contract_tiers_become_notional_at_the_preset_price() -> None:
    # ETH-USDT-SWAP tier 1: up to 3,000 contracts at MMR 0.4 %, min IMR 0.8 %; tier 2 up to
    # 6,000 at 0.5 % / 1 %; https://support.okexcn.com/hc/en-us/articles/4402607424781-OKEx-position-tiers-to-be-adjusted
    u = venues.okx_multi_currency(prices={"ETH": 2_000.0})
    rows = u.brackets_with_amounts("ETH-USDT-SWAP")
    assert rows[0][:3] == pytest.approx((3_000 * 0.1 * 2_000.0, 0.008, 0.004))
    assert rows[1][:3] == pytest.approx((6_000 * 0.1 * 2_000.0, 0.010, 0.005))
    r = evaluate_one(u, balances=[("USDT", 1e4)], positions=[("ETH-USDT-SWAP", 1_000.0, 2_000.0)])
    assert r["mm"] == pytest.approx(1_000 * 0.1 * 2_000.0 * 0.004)


# ---- Bybit -----------------------------------------------------------------------------------
def test_bybit_deductions_equal_the_published_column() -> None:
    # "Maintenance Margin Deduction = Risk Limit at tier (N−1) × (MMR_N − MMR_{N−1}) +
    # deduction at tier (N−1)", BTCUSDT table, https://www.bybit.com/en/announcement-info/margin-parameters
    rows = venues.bybit_unified().brackets_with_amounts("BTCUSDT")
    assert [r[4] for r in rows] == pytest.approx(venues.presets.BYBIT_BTCUSDT_DEDUCTIONS, abs=1e-6)


def test_bybit_maintenance_margin_published_example() -> None:
    # "long 1 BTC at 10,000 USDT … MM = 1 × 10,000 × 0.5% = 50 USDT"
    # https://help.bybit.com/hc/en-us/articles/900000182646-Maintenance-Margin-USDT-Contract-
    u = venues.bybit_unified(prices={"BTC": 10_000.0})
    r = evaluate_one(u, balances=[("USDT", 1_000.0)], positions=[("BTCUSDT", 1.0, 10_000.0)])
    assert r["mm"] == pytest.approx(50.0)


def test_bybit_btc_collateral_tiers_in_quantity() -> None:
    # BTC quantity tiers 0–10 → 0.98, 10–20 → 0.95, … (illustrative table of the UTA page)
    # https://testnet.bytick.com/en/help-center/article/Assets-Collateral-Value-Ratio-List-UTA
    u = venues.bybit_unified(prices={"BTC": 20_000.0})
    r = evaluate_one(u, balances=[("BTC", 15.0)])
    assert r["adj_equity_maint"] == pytest.approx(20_000.0 * (10 * 0.98 + 5 * 0.95))


# ---- Deribit ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("size_btc", "im_btc"), [(25.0, 0.53125), (350.0, 13.125)])
def test_deribit_futures_initial_margin_published_examples(size_btc: float, im_btc: float) -> None:
    # "Your position is 25 BTC in size: initial margin is 2% + 25/100 *0.5% = 2.125%
    # (= 0.53125 BTC)"; 350 BTC: 3.75 % (= 13.125 BTC). https://test.deribit.com/pages/docs/futures
    s = 50_000.0
    u = venues.deribit(prices={"BTC": s}, symbols=["BTC-PERPETUAL"])
    contracts = size_btc * s / 10.0
    r = evaluate_one(u, balances=[("BTC", 100.0)], positions=[("BTC-PERPETUAL", contracts, s)])
    assert r["im"] / s == pytest.approx(im_btc, rel=1e-12)
    # Maintenance: 1.5 % + 0.5 % per 100 BTC (same page).
    assert r["mm"] / s == pytest.approx(size_btc * (0.015 + 0.00005 * size_btc), rel=1e-12)


def test_chord_brackets_stay_within_a_quarter_step_squared() -> None:
    # linear_rate_brackets (a size-scaled rate as brackets, for a universe that cannot use the
    # size_scaled shape): between bounds the chord exceeds base·N + slope·N² by at most
    # slope·h²/4. The Deribit preset itself is exact (tests/test_venue_exact.py).
    bounds = [5.0 * k for k in range(1, 21)] + [100.0 * k for k in range(2, 51)]
    br = venues.linear_rate_brackets(0.02, 0.015, 5e-5, bounds)
    for n in np.linspace(0.01, 4_999.0, 997):
        im, _ = reference.bracket_requirement(tuple(br), float(n))
        exact = 0.02 * n + 5e-5 * n * n
        assert exact - 1e-12 <= im <= exact + 5e-5 * 100.0**2 / 4 + 1e-9


def test_deribit_short_option_standard_margin() -> None:
    # Short option: IM = max(0.15 − OTM/S, 0.10)·S + mark (docs/MODEL.md "Option margin";
    # https://doc.tslab.pro/tslab/eng/data-providers/connection-to-broker/deribit-cryptocurrency-exchange/deribit-margin-requirements-calculation)
    s = 60_000.0
    u = venues.deribit(prices={"BTC": s})
    call = next(m for m in u.markets if m.option_type == "call")
    mark = u.reference_marks[u.market_index[call.symbol]]
    r = evaluate_one(u, balances=[("BTC", 1.0)], positions=[(call.symbol, -1.0, mark)])
    otm = (float(call.strike or 0.0) - s) / s
    assert r["im"] / s == pytest.approx(max(0.15 - otm, 0.10) + mark, rel=1e-9)


# ---- Drift v2 ------------------------------------------------------------------------------------
def test_drift_docs_worked_size_discount() -> None:
    # "Initial Asset Weight on 2000 SOL … weight = min(.80, 1.1 / [1 + (0.003 * sqrt(2000)])
    # = min(.80, ~.96987) = .80", https://drift-docs-v2.vercel.app/getting-started/cross-collateral-deposits
    u = venues.drift_v2()
    r = evaluate_one(u, balances=[("SOL", 2_000.0)])
    assert r["adj_equity_initial"] == pytest.approx(2_000 * 150.0 * 0.8)
    # The ~.96987 itself, through the engine: the same SOL (imf 0.003) with a configured
    # weight above it, so that the size discount is what binds.
    sol = u.assets[u.asset_index["SOL"]]
    assert sol.imf_factor == 0.003
    heavy = dataclasses.replace(
        u,
        assets=[
            dataclasses.replace(a, weight_initial=1.0, weight_maint=1.0) if a is sol else a
            for a in u.assets
        ],
    )
    r = evaluate_one(heavy, balances=[("SOL", 2_000.0)])
    for k in ("adj_equity_initial", "adj_equity_maint"):
        assert r[k] / (2_000 * 150.0) == pytest.approx(0.96987, abs=1e-5), k


def test_drift_btc_deposit_is_size_discounted() -> None:
    # wBTC imf 0.105 (same page): 100 BTC → min(0.8, 1.1 / (1 + 0.105·10)) = 0.536585…
    r = evaluate_one(venues.drift_v2(), balances=[("BTC", 100.0)])
    assert r["adj_equity_initial"] == pytest.approx(100 * 60_000.0 * 1.1 / 2.05)
    assert r["adj_equity_maint"] == pytest.approx(100 * 60_000.0 * 1.1 / 2.05)


def test_drift_protocol_test_vectors_float_form() -> None:
    # drift-labs/protocol-v2 programs/drift/src/math/margin/tests.rs (docs/SOURCES.md §4.5):
    # imf 10000 (0.01), weights 0.9 / 1.1, 1,000 tokens → 8357 and 11962 (1e-4 units).
    assert reference.size_discounted_weight(0.9, 0.01, 1_000.0) == pytest.approx(0.8357, abs=1e-4)
    assert reference.size_premium_weight(1.1, 0.01, 1_000.0) == pytest.approx(1.1962, abs=1e-4)
    # The same vectors through the engine: 1,000 tokens priced 1 held, then borrowed.
    u = cm.Universe(
        [cm.Asset("USDC", 1.0), cm.Asset("TKN", 1.0, 0.9, 0.9, 1.1, 1.1, imf_factor=0.01)]
    )
    held = evaluate_one(u, balances=[("TKN", 1_000.0)])
    assert held["adj_equity_maint"] / 1_000.0 == pytest.approx(0.8357, abs=1e-4)
    borrowed = evaluate_one(u, balances=[("USDC", 5_000.0), ("TKN", -1_000.0)])
    assert (5_000.0 - borrowed["adj_equity_maint"]) / 1_000.0 == pytest.approx(1.1962, abs=1e-4)


def test_drift_borrows_on_the_requirement_side() -> None:
    # Drift adds liability value × liability weight to the margin requirement
    # (programs/drift/src/math/margin.rs calculate_margin_requirement_and_total_collateral).
    u = venues.drift_v2()
    b = cm.Book.from_arrays(
        balances={"account": [1, 1, 2], "asset": ["USDC", "SOL", "USDC"], "qty": [1e4, -1.0, 5.0]},
        positions={"account": [2], "market": ["SOL-PERP"], "qty": [1.0], "entry_price": [150.0]},
    )
    eng = cm.Engine(u, threads=1)
    t = venues.requirement_side(eng, b).to_pandas().set_index("account")
    assert t.loc[1, "total_collateral_initial"] == pytest.approx(1e4)
    assert t.loc[1, "margin_requirement_initial"] == pytest.approx(150.0 * 1.2)
    assert t.loc[1, "margin_requirement_maint"] == pytest.approx(150.0 * 1.1)
    assert t.loc[1, "health"] == pytest.approx(100 * (1 - 165.0 / 1e4))
    # No borrows: the standard numbers; 1 SOL-PERP needs 150 × 0.05 maintenance.
    assert t.loc[2, "margin_requirement_maint"] == pytest.approx(7.5)
    r = eng.evaluate(b)
    assert np.array_equal(t.liquidatable.to_numpy(), r.liquidatable)
    assert t.free_collateral.to_numpy() == pytest.approx(r.free_collateral)


# ---- dYdX v4 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("oi", "imf"), [(0.0, 0.10), (20e6, 0.10), (35e6, 0.10 + 0.5 * 0.9), (50e6, 1.0), (9e9, 1.0)]
)
def test_dydx_open_interest_scaled_imf(oi: float, imf: float) -> None:
    # "Scaling Factor = (Open Notional - Lower Cap) / (Upper Cap - Lower Cap)", "IMF Increase =
    # Scaling Factor * (1 - Base IMF)", "Effective IMF = Min(Base IMF + Max(IMF Increase, 0), 1.0)"
    # https://github.com/dydxprotocol/v4-chain/blob/main/protocol/x/perpetuals/types/liquidity_tier.go
    u = venues.dydx_v4(open_interest={"SOL-USD": oi}, symbols=["SOL-USD"])
    assert u.markets[0].brackets[0][1] == pytest.approx(imf)
    # Maintenance = base IMF × maintenance fraction, not scaled (GetMaintenanceMarginPpm).
    assert u.markets[0].brackets[0][2] == pytest.approx(0.10 * 0.5)


def test_dydx_net_collateral_against_maintenance() -> None:
    # Large-Cap: initial_margin_ppm 50000, maintenance_fraction_ppm 600000 ("60% of IM"),
    # https://github.com/dydxprotocol/v4-chain/blob/main/protocol/testing/genesis.sh
    u = venues.dydx_v4()
    r = evaluate_one(u, balances=[("USDC", 2_000.0)], positions=[("BTC-USD", 1.0, 60_000.0)])
    assert (r["im"], r["mm"]) == pytest.approx((3_000.0, 1_800.0))
    assert not r["liquidatable"]
    r = evaluate_one(u, balances=[("USDC", 1_700.0)], positions=[("BTC-USD", 1.0, 60_000.0)])
    assert r["liquidatable"]  # net collateral 1,700 < maintenance 1,800


# ---- Hyperliquid ---------------------------------------------------------------------------------
def test_hyperliquid_tiers_and_deduction() -> None:
    # "maintenance_margin_rate(tier = n) = (Initial Margin Rate at Maximum leverage at tier n) / 2.
    # For example, at 20x max leverage, maintenance_margin_rate = 2.5%"; deduction(n) =
    # deduction(n−1) + lower_bound(n)·(mmr(n) − mmr(n−1)); BTC 40x to 150M, 20x above.
    # https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers
    u = venues.hyperliquid()
    assert u.brackets_with_amounts("SOL")[0][2] == pytest.approx(0.025)
    btc = u.brackets_with_amounts("BTC")
    assert btc[1][4] == pytest.approx(150e6 * (0.025 - 0.0125))
    u = venues.hyperliquid(prices={"BTC": 100_000.0})
    r = evaluate_one(u, balances=[("USDC", 1e8)], positions=[("BTC", 2_000.0, 100_000.0)])
    assert r["mm"] == pytest.approx(200e6 * 0.025 - 1_875_000.0)


def test_hyperliquid_isolated_position_uses_its_own_margin() -> None:
    # "Isolated positions are liquidated when the isolated margin value (including unrealized
    # pnl) is less than the maintenance margin" (Hyperliquid "Margining"); cross collateral
    # does not help it.
    u = venues.hyperliquid(prices={"ETH": 3_000.0})
    mm = 10 * 3_000.0 * 0.02
    ok = evaluate_one(u, balances=[("USDC", 1e6)], positions=[("ETH", 10.0, 3_000.0, mm + 1)])
    bad = evaluate_one(u, balances=[("USDC", 1e6)], positions=[("ETH", 10.0, 3_000.0, mm - 1)])
    assert not ok["liquidatable"] and bad["liquidatable"]
    assert ok["mm"] == 0.0  # isolated requirement stays outside the cross pool


# ---- carrying a book over ----------------------------------------------------------------
def test_map_book_keeps_base_exposure_and_nets_positions() -> None:
    src = cm.Universe.demo()
    b = cm.Book.from_arrays(
        balances={"account": [7, 7], "asset": ["USDT", "SOL"], "qty": [1e4, 3.0]},
        positions={
            "account": [7, 7],
            "market": ["BTCUSDT", "BTCUSD_PERP"],
            "qty": [0.5, 600.0],  # 0.5 BTC linear + 600 × 100 USD inverse
            "entry_price": [50_000.0, 50_000.0],
        },
    )
    mark = src.reference_marks[src.market_index["BTCUSD_PERP"]]
    dy = venues.dydx_v4(prices={"BTC": mark})
    mapped, dropped = venues.map_book(b, src, dy)
    df = mapped.to_pandas(dy)[1]
    assert df.market.tolist() == ["BTC-USD"]
    assert df.qty.iloc[0] == pytest.approx(0.5 + 600 * 100.0 / mark)
    assert dropped == {"balances_dropped": 1, "positions_dropped": 0}  # SOL: not collateral
    de = venues.deribit(prices={"BTC": mark})
    mapped, _ = venues.map_book(b, src, de)
    df = mapped.to_pandas(de)[1]
    assert df.qty.iloc[0] == pytest.approx(((0.5 * mark) + 600 * 100.0) / 10.0)


def test_map_book_books_a_zero_net_as_locked_pnl() -> None:
    # Long 1 at 50,000 and short 1 at 60,000 of the same underlying land in one market: the
    # net is flat and its 10,000 USD of locked profit becomes a settle balance.
    src = cm.Universe.demo()
    b = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["USDT"], "qty": [1e4]},
        positions={
            "account": [1, 1],
            "market": ["BTCUSDT", "BTCUSDT_260925"],
            "qty": [1.0, -1.0],
            "entry_price": [50_000.0, 60_000.0],
        },
    )
    hl = venues.hyperliquid()
    mapped, _ = venues.map_book(b, src, hl)
    bal, pos = mapped.to_pandas(hl)
    assert pos.empty and bal.qty.sum() == pytest.approx(2e4)


# ---- CLI and report ----------------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("venues_book")
    r = runner.invoke(app, ["generate", str(d), "--accounts", "400", "--seed", "5", "--quiet"])
    assert r.exit_code == 0, r.output
    return d


def test_compare_venues_writes_one_row_per_venue(book_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["compare-venues", str(book_dir), "-u", "demo", "--out", str(tmp_path), "--quiet"]
    )
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(tmp_path / "venues.parquet")
    assert df.venue.tolist() == list(venues.PRESETS)
    for col in ("accounts", "liquidatable", "im", "mm", "equity", "capital_efficiency"):
        assert col in df.columns
    assert (df.im >= df.mm).all() and (df.accounts > 0).all()
    from crossmargin.report import build

    assert "<h2>Venues</h2>" in build(tmp_path).read_text()


def test_compare_venues_json_and_venue_choice(book_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        ["compare-venues", str(book_dir), "-u", "demo", "--out", str(tmp_path), "--json",
         "--venue", "hyperliquid", "--venue", "dydx_v4"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{") :])
    assert set(summary) == {"hyperliquid", "dydx_v4"}
    bad = runner.invoke(app, ["compare-venues", str(book_dir), "-u", "demo", "--out", str(tmp_path),
                              "--venue", "nasdaq", "--quiet"])  # fmt: skip
    assert bad.exit_code != 0


# The Drift differential against driftpy's DriftUser: tests/test_drift_exact.py.
