"""Published worked examples (docs/SOURCES.md), reproduced by the engine and the reference.

Each test builds a tiny universe and book around one number an exchange published and
checks that ``Engine.evaluate`` and ``crossmargin.reference.evaluate`` both give it.
Where a number is to be read in a coin (BTC), the coin's price is set to 1 so that the
reporting currency is that coin.
"""

from __future__ import annotations

import math

import crossmargin as cm
import pytest
from crossmargin import reference
from helpers import book, one

INF = math.inf

# Binance USDⓈ-M BTCUSDT, 2021-03-18 table (docs/SOURCES.md §1.2):
# https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6
BTCUSDT_2021 = [
    (50_000.0, 0.008, 0.004),
    (250_000.0, 0.01, 0.005),
    (1_000_000.0, 0.02, 0.01),
    (10_000_000.0, 0.05, 0.025),
    (20_000_000.0, 0.10, 0.05),
    (50_000_000.0, 0.20, 0.10),
    (100_000_000.0, 0.25, 0.125),
    (200_000_000.0, 0.333, 0.15),
    (300_000_000.0, 0.50, 0.25),
    (500_000_000.0, 1.00, 0.50),
]


def both(universe: cm.Universe, b: cm.Book, prices=None) -> list[dict]:
    """The single account's numbers from the engine and from the reference."""
    return [
        one(cm.Engine(universe, threads=1).evaluate(b, prices=prices)),
        one(reference.evaluate(universe, b, prices=prices)),
    ]


def usdm_universe(mark: float) -> cm.Universe:
    return cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", mark, BTCUSDT_2021)],
    )


# ---- Binance USDⓈ-M brackets ---------------------------------------------------------------
def test_binance_maintenance_amount_recurrence_level_3_is_1300_usdt():
    """Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts",
    https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93 :
    "the Maintenance Amount on Level 3 = 250,000 * (1% − 0.5%) + 50 USDT = 1,300 USDT".
    """  # noqa: E501
    rows = usdm_universe(50_000.0).brackets_with_amounts("BTCUSDT")
    assert rows[1][4] == pytest.approx(50.0, rel=1e-12)
    assert rows[2][4] == pytest.approx(250_000 * (0.01 - 0.005) + 50, rel=1e-12)
    assert rows[2][4] == pytest.approx(1_300.0, rel=1e-12)


def test_binance_2021_btcusdt_maintenance_amounts_match_the_published_column():
    """Maintenance amounts of the 2021-03-18 BTCUSDT table (announcement
    https://www.binance.com/tr/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6),
    as reverse-engineered from Binance's JS in
    https://gist.github.com/highfestiva/b71e76f51eed84d56c1be8ebbcc286b5 ."""
    published = [
        0, 50, 1_300, 16_300, 266_300, 1_266_300, 2_516_300, 5_016_300, 25_016_300, 100_016_300,
    ]  # fmt: skip
    rows = usdm_universe(50_000.0).brackets_with_amounts("BTCUSDT")
    assert [r[4] for r in rows] == pytest.approx(published, rel=1e-12, abs=1e-9)


def test_binance_264000_usdt_position_is_in_the_1_percent_tier():
    """Binance FAQ (USDⓈ-M liquidation price), https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93 :
    "if the position size of a USDT-margined BTCUSDT contract is 264,000 USDT, then the
    maintenance margin rate would be 1%" (2021 table): MM = 264,000 × 1% − 1,300 = 1,340."""  # noqa: E501
    u = usdm_universe(66_000.0)
    for r in both(u, book(pos=[(1, "BTCUSDT", 4.0, 66_000.0)])):  # 4 × 66,000 = 264,000
        assert r["mm"] == pytest.approx(264_000 * 0.01 - 1_300, rel=1e-12)
        assert r["mm"] == pytest.approx(1_340.0, rel=1e-12)
        # initial, by the same continuity rule: 50k × 0.8% + 200k × 1% + 14k × 2%
        assert r["im"] == pytest.approx(400 + 2_000 + 280, rel=1e-12)


def test_binance_500000_usdt_position_has_maintenance_3700_usdt():
    """Same FAQ: "if the position size … is 500,000 USDT, then the maintenance amount
    would be 1,300 USDT"; so MM = 500,000 × 1% − 1,300 = 3,700 USDT, the progressive sum
    50,000 × 0.4% + 200,000 × 0.5% + 250,000 × 1% (docs/SOURCES.md §2.1).
    https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93"""
    u = usdm_universe(50_000.0)
    for r in both(u, book(pos=[(1, "BTCUSDT", -10.0, 50_000.0)])):
        assert r["mm"] == pytest.approx(3_700.0, rel=1e-12)


def test_bybit_usdt_maintenance_margin_of_one_btc_at_50x():
    """Bybit "Maintenance Margin (USDT Contract)",
    https://help.bybit.com/hc/en-us/articles/900000182646-Maintenance-Margin-USDT-Contract- :
    long 1 BTC at 10,000 USDT, 50x → IM = 200 USDT, MM = 1 × 10,000 × 0.5% = 50 USDT."""
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 10_000.0, [(INF, 1 / 50, 0.005)])],
    )
    for r in both(u, book(pos=[(1, "BTCUSDT", 1.0, 10_000.0)])):
        assert r["im"] == pytest.approx(200.0, rel=1e-12)
        assert r["mm"] == pytest.approx(50.0, rel=1e-12)


# ---- Binance COIN-M ------------------------------------------------------------------------
def coinm_universe(mark: float, btc_price: float) -> cm.Universe:
    """BTCUSD inverse perpetual, 100 USD contracts, settled in BTC; first published level
    0.8% / 0.4%, then the reconstructed table of docs/SOURCES.md §1.3."""
    return cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", btc_price)],
        [
            cm.Market(
                "BTCUSD_PERP",
                "perp",
                "BTC",
                "BTC",
                mark,
                [
                    (10.0, 0.008, 0.004),
                    (20.0, 0.01, 0.005),
                    (30.0, 0.02, 0.01),
                    (50.0, 0.05, 0.025),
                    (100.0, 0.1, 0.05),
                    (200.0, 0.2, 0.1),
                    (400.0, 0.25, 0.125),
                    (1_000.0, 1 / 3, 0.15),
                    (INF, 0.5, 0.25),
                ],
                contract_size=100.0,
                inverse=True,
            )
        ],
    )


def test_binance_coin_m_maintenance_of_100_contracts_at_25000_is_0_0016_btc():
    """Binance FAQ "How to Calculate Liquidation Price of COIN-M Futures Contracts",
    https://www.binance.com/es-MX/support/faq/how-to-calculate-liquidation-price-of-coin-m-futures-contracts-ceccfcfb4e3a45e3b48b0b1bb1a8ae46 :
    "100 * 100 / 25,000 = 0.4 BTC … Maintenance Margin = 100 * 100 / 25,000 * 0.4% - 0
    = 0.0016 BTC"."""  # noqa: E501
    in_btc = coinm_universe(mark=25_000.0, btc_price=1.0)
    for r in both(in_btc, book(pos=[(1, "BTCUSD_PERP", 100.0, 25_000.0)])):
        assert r["mm"] == pytest.approx(0.0016, rel=1e-12)
        assert r["mm"] == pytest.approx(0.4 * 0.004, rel=1e-12)  # notional 0.4 BTC
    in_usd = coinm_universe(mark=25_000.0, btc_price=25_000.0)
    for r in both(in_usd, book(pos=[(1, "BTCUSD_PERP", 100.0, 25_000.0)])):
        assert r["mm"] == pytest.approx(0.0016 * 25_000, rel=1e-12)


def test_binance_coin_m_300_btc_position_has_maintenance_amount_11_81_btc():
    """Binance FAQ (COIN-M liquidation price, 2021-02-05),
    https://www.binance.com/es/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46 : a 300 BTC
    BTCUSD position has MMR 12.5% and maintenance amount 11.81 BTC, so
    MM = 300 × 12.5% − 11.81 = 25.69 BTC."""
    u = coinm_universe(mark=95_000.0, btc_price=1.0)
    contracts = 300 * 95_000 / 100  # 300 BTC of notional at the mark
    for r in both(u, book(pos=[(1, "BTCUSD_PERP", contracts, 95_000.0)])):
        assert r["mm"] == pytest.approx(300 * 0.125 - 11.81, rel=1e-12)


def test_binance_coin_m_demo_market_reproduces_the_0_0016_btc_example(demo):
    """The shipped BTCUSD_PERP market, mark moved to 25,000 with its settle coin priced at
    1 so the result reads in BTC (same published example as above)."""
    prices = {"BTCUSD_PERP": 25_000.0, "BTC": 1.0}
    b = book(pos=[(1, "BTCUSD_PERP", 100.0, 25_000.0)])
    for r in both(demo, b, prices=prices):
        assert r["mm"] == pytest.approx(0.0016, rel=1e-12)


@pytest.mark.parametrize(
    ("contracts", "entry", "mark", "published_btc"),
    [
        (100.0, 50_000.0, 55_000.0, 0.018182),  # long 10,000 USD
        (-100.0, 50_000.0, 45_000.0, 0.022),  # short 10,000 USD (published to 3 digits)
    ],
)
def test_binance_inverse_upnl_of_10000_usd(contracts, entry, mark, published_btc):
    """Binance "A Beginner's Guide to Futures Trading",
    https://binance.com/en-IN/support/announcement/a-beginner-s-guide-to-futures-trading-360039304272 :
    "Unrealized PNL = position_size * contract_multiplier * Order Direction * (1 / Entry
    Price - 1 / Mark Price)"; long 10,000 USD at 50,000 exiting at 55,000 →
    (1/50,000 − 1/55,000) × 10,000 = 0.018182 BTC; short at 50,000 exiting at 45,000 →
    0.022 BTC (numbers from the FAQ copy at
    https://covesthelp.zendesk.com/hc/en-gu/articles/4406500538137-How-to-Calculate-Profit-and-Loss-for-Futures-Contracts)."""  # noqa: E501
    u = coinm_universe(mark=mark, btc_price=1.0)
    exact = contracts * 100 * (1 / entry - 1 / mark)
    digits = 6 if published_btc == 0.018182 else 3
    for r in both(u, book(pos=[(1, "BTCUSD_PERP", contracts, entry)])):
        assert r["upnl"] == pytest.approx(exact, rel=1e-12)
        assert round(r["upnl"], digits) == published_btc


def test_binance_inverse_upnl_of_0_018182_btc_is_1000_usdt_at_55000():
    """Same source: the 0.018182 BTC gain "= 1,000 USDT at 55,000" — uPnL converted at the
    settle coin's price.
    https://binance.com/en-IN/support/announcement/a-beginner-s-guide-to-futures-trading-360039304272"""
    u = coinm_universe(mark=55_000.0, btc_price=55_000.0)
    for r in both(u, book(pos=[(1, "BTCUSD_PERP", 100.0, 50_000.0)])):
        assert r["upnl"] == pytest.approx(1_000.0, rel=1e-12)


# ---- collateral ------------------------------------------------------------------------------
def test_binance_tiered_collateral_6000_btc_at_20000_is_119_5m_usdt():
    """Binance "Cross Margin Collateral Haircuts", Example 1,
    https://www.binance.com/en-BH/support/faq/binance-cross-margin-collateral-haircuts-4bec9126c021472285b20874f9380dfb :
    6,000 BTC at 20,000 USDT → "Collateral Value (USDT) = (100,000,000) * 100% +
    (120,000,000 - 100,000,000) * 97.5% = 119,500,000 USDT"."""  # noqa: E501
    tiers = [(1e8, 1.0), (1.2e8, 0.975), (1.5e8, 0.95), (1.8e8, 0.90), (2e8, 0.85)]
    u = cm.Universe([cm.Asset("BTC", 20_000.0, haircut_tiers=tiers)])
    for r in both(u, book([(1, "BTC", 6_000.0)])):
        assert r["adj_equity_initial"] == pytest.approx(119_500_000.0, rel=1e-12)
        assert r["adj_equity_maint"] == pytest.approx(119_500_000.0, rel=1e-12)
        assert r["equity"] == 120_000_000.0


def test_binance_tiered_collateral_in_the_demo_universe(demo):
    """The demo BTC carries the same published tiers (and a 0.95 weight): 6,000 BTC at
    20,000 count 119,500,000 × 0.95 (source as above,
    https://www.binance.com/en-BH/support/faq/binance-cross-margin-collateral-haircuts-4bec9126c021472285b20874f9380dfb)."""
    for r in both(demo, book([(1, "BTC", 6_000.0)]), prices={"BTC": 20_000.0}):
        assert r["adj_equity_maint"] == pytest.approx(119_500_000.0 * 0.95, rel=1e-12)


def test_binance_flat_collateral_ratio_3_btc_at_095_is_2_85_btc():
    """Binance Portfolio Margin FAQ, https://www.binance.com/en/support/faq/146ac090710a49f99c4732b00f8c09df :
    "1 BTC in the Margin Wallet, 1 BTC in the USDⓈ-M Wallet, and 1 BTC in the COIN-M
    Wallet, his margin asset value is 3 BTC*0.95 = 2.85 BTC". The three wallets are three
    balance rows of one account (summed); BTC priced at 1 so the result reads in BTC."""  # noqa: E501
    u = cm.Universe([cm.Asset("BTC", 1.0, weight_initial=0.95, weight_maint=0.95)])
    b = book([(1, "BTC", 1.0), (1, "BTC", 1.0), (1, "BTC", 1.0)])
    for r in both(u, b):
        assert r["equity"] == 3.0
        assert r["adj_equity_maint"] == pytest.approx(2.85, rel=1e-12)
        assert r["adj_equity_initial"] == pytest.approx(2.85, rel=1e-12)


def test_binance_multi_assets_bnb_1000_usd_counts_950():
    """Binance Multi-Assets mode FAQ, https://www.binance.com/en-NG/support/faq/29b45c485d664028b9ca1cdf90b24f6f :
    "BNB with a market value of $1000 will be valued at $950"."""  # noqa: E501
    u = cm.Universe([cm.Asset("BNB", 500.0, weight_initial=0.95, weight_maint=0.95)])
    for r in both(u, book([(1, "BNB", 2.0)])):
        assert r["adj_equity_initial"] == pytest.approx(950.0, rel=1e-12)
