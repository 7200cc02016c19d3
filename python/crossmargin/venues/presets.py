"""Venue rule sets as presets: the same model (docs/MODEL.md) configured with the published
parameters of Binance USDⓈ-M, OKX multi-currency, Bybit unified, Deribit, Drift v2, dYdX v4
and Hyperliquid.

Each preset returns a :class:`~crossmargin.Universe`; ``prices=`` sets asset and underlying
prices (USD, keys like ``"BTC"``), ``symbols=`` keeps only some markets (the assets stay).
Every parameter below cites its source; ``examples/venues/<venue>.toml`` holds the same
universes at the default prices (``write_examples`` regenerates them).

How each venue's rules map onto the model, and the rules the model cannot express, are in
docs/MODEL.md "Venue presets". In short:

- leverage tiers with a deduction (Binance, Bybit, Hyperliquid) are brackets; the deduction is
  the bracket amount (:func:`tier_brackets`, :func:`hyperliquid_brackets`); their initial
  margin, and OKX's both requirements, are ``"step"`` shapes (the whole position at its
  tier's rate); Bybit values maintenance at the entry price (``maint_basis="entry"``) and
  reserves the fee to close at the bankruptcy price on its inverse contract;
- dYdX's open-interest-scaled initial margin fraction is a market-wide number at a given open
  interest (:func:`dydx_effective_imf`), so a preset takes ``open_interest=`` (a mapping, or
  ``"book"`` with ``book=`` to take it from the book's own positions);
- Deribit's rate growing linearly with size is the ``"size_scaled"`` shape, exact;
- Drift's borrows on the requirement side are the same liquidation test as the standard
  model; :func:`requirement_side` reports Drift's total collateral, margin requirement and
  health from two standard evaluations;
- tiers published in contracts or coin quantity are converted to USD at the preset's prices.

:func:`map_book` carries a book written for one universe over to a venue's (how unmatched
symbols are handled is documented there); ``crossmargin compare-venues`` uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin.book import Book
from crossmargin.engine import Engine
from crossmargin.exceptions import ConfigError, ConfigTypeError
from crossmargin.table import Table
from crossmargin.universe import Asset, Market, Universe

INF = math.inf

# Reference prices (USD) used when ``prices=`` does not name a symbol. Round numbers: a
# preset is a rule set, the prices of a run come from the caller.
DEFAULT_PRICES: dict[str, float] = {
    "USDT": 1.0,
    "USDC": 1.0,
    "BTC": 60_000.0,
    "ETH": 3_000.0,
    "SOL": 150.0,
    "BNB": 600.0,
    "BETH": 3_000.0,
    "ADA": 0.5,
}

STABLES = ("USDC", "USDT", "USD")

PriceMap = Mapping[str, float] | None


# ---- general helpers -------------------------------------------------------------------------
def _px(prices: PriceMap) -> dict[str, float]:
    out = dict(DEFAULT_PRICES)
    for k, v in (prices or {}).items():
        out[str(k)] = float(v)
    return out


def _select(markets: list[Market], symbols: Sequence[str] | None) -> list[Market]:
    if symbols is None:
        return markets
    have = {m.symbol for m in markets}
    unknown = [s for s in symbols if s not in have]
    if unknown:
        raise ConfigError(
            f"symbols: {unknown[0]!r} is not a market of this venue ({', '.join(sorted(have))})",
            field="symbols",
        )
    keep = set(symbols)
    return [m for m in markets if m.symbol in keep]


def tier_brackets(
    rows: Sequence[tuple[float, float, float]],
) -> list[tuple[float, float, float]]:
    """``(notional_cap, max_leverage, mmr)`` rows (Binance, Bybit) → brackets ``(bound, imr,
    mmr)`` with imr = 1 / max leverage; the last cap becomes ``inf`` (the cap is a trading
    limit, docs/MODEL.md "Brackets")."""
    out = [(float(cap), 1.0 / float(lev), float(mmr)) for cap, lev, mmr in rows]
    out[-1] = (INF, out[-1][1], out[-1][2])
    return out


def hyperliquid_brackets(tiers: Sequence[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """Hyperliquid margin tiers ``(notional_lower_bound, max_leverage)`` → brackets.

    Hyperliquid, "Margin tiers": maintenance_margin_rate(n) = (initial margin rate at max
    leverage of tier n) / 2, deduction(n) = deduction(n−1) + lower_bound(n)·(mmr(n) −
    mmr(n−1)) — the bracket amount of the model, so maintenance is exact."""
    out = []
    for k, (_lower, lev) in enumerate(tiers):
        upper = tiers[k + 1][0] if k + 1 < len(tiers) else INF
        out.append((float(upper), 1.0 / float(lev), 0.5 / float(lev)))
    return out


def maintenance_deductions(brackets: Sequence[tuple[float, float, float]]) -> list[float]:
    """Binance's "maintenance amount" / Hyperliquid's and Bybit's "maintenance deduction" of
    each bracket: cum_k = cum_{k−1} + bound_{k−1}·(mmr_k − mmr_{k−1})."""
    cum, out = 0.0, []
    for k, (_b, _i, mmr) in enumerate(brackets):
        if k:
            cum += brackets[k - 1][0] * (mmr - brackets[k - 1][2])
        out.append(cum)
    return out


def dydx_effective_imf(
    base_imf: float, open_interest: float, lower_cap: float, upper_cap: float
) -> float:
    """dYdX v4 open-interest margin fraction (``LiquidityTier.GetInitialMarginQuoteQuantums``):
    scale = (OI − lower) / (upper − lower), IMF = min(base + max(scale, 0)·(1 − base), 1);
    ``upper_cap = 0`` disables the scaling; OI ≥ upper (non-zero) gives 1. OI in USD notional."""
    if upper_cap == 0.0 or open_interest <= lower_cap:
        return base_imf
    if open_interest >= upper_cap:
        return 1.0
    scale = (open_interest - lower_cap) / (upper_cap - lower_cap)
    return min(base_imf + scale * (1.0 - base_imf), 1.0)


def linear_rate_brackets(
    im_base: float, mm_base: float, slope: float, bounds: Sequence[float]
) -> list[tuple[float, float, float]]:
    """Brackets for a rate that grows linearly with size (Deribit futures: rate(N) = base +
    slope·N, requirement = N·rate(N) = base·N + slope·N²).

    Each bracket's marginal rate is the chord of the parabola over the bracket, base +
    slope·(B_{k−1} + B_k), so the continuous bracket requirement equals base·N + slope·N² at
    every bound and exceeds it by at most slope·(B_k − B_{k−1})²/4 between bounds; beyond
    the last bound the last marginal rate continues."""
    out, lo = [], 0.0
    for k, hi in enumerate(bounds):
        chord = slope * (lo + hi)
        bound = INF if k == len(bounds) - 1 else float(hi)
        out.append((bound, min(im_base + chord, 1.0), min(mm_base + chord, 1.0)))
        lo = hi
    return out


def usd_tiers(tiers: Sequence[tuple[float, float]], unit_price: float) -> list[tuple[float, float]]:
    """Collateral tiers published in coin quantity (or contracts × size) → USD bounds at
    ``unit_price`` (the model's haircut tiers are on USD value)."""
    return [(b * unit_price if math.isfinite(b) else INF, r) for b, r in tiers]


# ---- Binance USDⓈ-M ---------------------------------------------------------------------------
# docs/SOURCES.md §1.1: GET /fapi/v1/leverageBracket as shipped in freqtrade 2026.9
# (freqtrade/exchange/binance_leverage_tiers.json): (notional cap, max leverage, mmr).
BINANCE_BTCUSDT = [
    (300_000, 150, 0.004), (800_000, 100, 0.005), (3_000_000, 75, 0.0065),
    (12_000_000, 50, 0.01), (70_000_000, 25, 0.02), (100_000_000, 20, 0.025),
    (230_000_000, 10, 0.05), (480_000_000, 5, 0.1), (600_000_000, 4, 0.125),
    (800_000_000, 3, 0.15), (1_200_000_000, 2, 0.25), (1_800_000_000, 1, 0.5),
]  # fmt: skip
BINANCE_ETHUSDT = [
    (300_000, 150, 0.004), (800_000, 100, 0.005), (3_000_000, 75, 0.0065),
    (12_000_000, 50, 0.01), (50_000_000, 25, 0.02), (65_000_000, 20, 0.025),
    (150_000_000, 10, 0.05), (320_000_000, 5, 0.1), (400_000_000, 4, 0.125),
    (530_000_000, 3, 0.15), (800_000_000, 2, 0.25), (1_200_000_000, 1, 0.5),
]  # fmt: skip
BINANCE_SOLUSDT = [
    (50_000, 100, 0.005), (400_000, 75, 0.0065), (1_000_000, 50, 0.01),
    (4_000_000, 25, 0.02), (8_000_000, 20, 0.025), (40_000_000, 10, 0.05),
    (80_000_000, 5, 0.1), (100_000_000, 4, 0.125), (200_000_000, 2, 0.25),
    (400_000_000, 1, 0.5),
]  # fmt: skip
BINANCE_BTCUSDT_QUARTERLY = [
    (50_000, 50, 0.01), (375_000, 25, 0.02), (2_000_000, 10, 0.05), (4_000_000, 5, 0.1),
    (10_000_000, 4, 0.125), (20_000_000, 3, 0.15), (40_000_000, 2, 0.25),
    (120_000_000, 1, 0.5),
]  # fmt: skip
# docs/SOURCES.md §1.3 [reconstructed]: BTCUSD COIN-M, notional in BTC; IMR from the FAQ
# https://www.binance.com/en/support/faq/be2c7d9d95b04a7e8044ed02dd7dfe5c, MMR = IMR / 2,
# checked against the published amounts 0.56 / 1.81 / 11.81 BTC.
BINANCE_BTCUSD_COINM = [
    (10.0, 0.008, 0.004), (20.0, 0.01, 0.005), (30.0, 0.02, 0.01), (50.0, 0.05, 0.025),
    (100.0, 0.10, 0.05), (200.0, 0.20, 0.10), (400.0, 0.25, 0.125), (1_000.0, 1 / 3, 0.15),
    (INF, 0.5, 0.25),
]  # fmt: skip
# Multi-Assets mode collateral value ratios, Binance FAQ 2021-05-28
# https://www.binance.com/en-NG/support/faq/29b45c485d664028b9ca1cdf90b24f6f (docs/SOURCES.md §3.3).
BINANCE_COLLATERAL = {
    "USDT": 0.9999, "USDC": 0.9999, "BTC": 0.95, "ETH": 0.95, "BNB": 0.95, "SOL": 0.90,
}  # fmt: skip


# Open orders (docs/MODEL.md "Open orders"). Binance: max(|position notional + bid order
# value|, |position notional − ask order value|) / leverage ("How to Calculate the Margin
# Requirement on Binance Futures Trading",
# binance.com/en/support/faq/4f83b65d83654b5e933f85ef12bf769d) plus the open loss ("How to
# Calculate the Cost Required to Open a Position in Perpetual Futures Contracts",
# binance.com/en/support/faq/87fa7ee33b574f7084d42bd2ce2e463b).
BINANCE_ORDERS: dict[str, Any] = {"order_open_loss": True}
# Bybit order cost = initial margin + fee to open + fee to close ("Order Cost (USDT
# Contract)", help.bybit.com/hc/en-us/articles/900000169703), at the taker rate the page's
# example uses (0.06 %).
BYBIT_ORDERS: dict[str, Any] = {"order_fee_rate": 0.0006}
# Drift: worst_case_base_asset_amount = max(|base + open_bids|, |base + open_asks|) at the
# oracle (protocol-v2 programs/drift/src/state/user.rs) and OPEN_ORDER_MARGIN_REQUIREMENT =
# QUOTE_PRECISION / 100 = 0.01 USDC per open order (math/constants.rs).
DRIFT_ORDERS: dict[str, Any] = {"order_value": "mark", "order_margin_per_order": 0.01}
# dYdX v4: an order is checked as if it filled at its price — the position after the fill
# margined at the oracle, the fill's quote change (the open loss) in the collateral
# (x/clob/keeper/orders.go AddOrderToOrderbookSubaccountUpdatesCheck).
DYDX_ORDERS: dict[str, Any] = {"order_value": "mark", "order_open_loss": True}


def binance_usdm(prices: PriceMap = None, symbols: Sequence[str] | None = None) -> Universe:
    """Binance USDⓈ-M futures, Multi-Assets mode, with the COIN-M BTCUSD perpetual."""
    p = _px(prices)
    assets = [
        Asset(s, p[s], weight_initial=w, weight_maint=w) for s, w in BINANCE_COLLATERAL.items()
    ]
    # Initial margin = notional / leverage of the bracket the whole position is in (Binance
    # "Leverage and Margin of USDⓈ-M Futures": "Initial Margin = Notional Position Value /
    # Leverage"): a step; maintenance keeps the maintenance amount (continuous). Open orders
    # by Binance's rule (BINANCE_ORDERS).
    rules: dict[str, Any] = {"im_shape": "step", **BINANCE_ORDERS}
    markets = [
        Market("BTCUSDT", "perp", "USDT", "BTC", p["BTC"], tier_brackets(BINANCE_BTCUSDT), **rules),
        Market("ETHUSDT", "perp", "USDT", "ETH", p["ETH"], tier_brackets(BINANCE_ETHUSDT), **rules),
        Market("SOLUSDT", "perp", "USDT", "SOL", p["SOL"], tier_brackets(BINANCE_SOLUSDT), **rules),
        Market(
            "BTCUSDT_260925",
            "future",
            "USDT",
            "BTC",
            p["BTC"],
            tier_brackets(BINANCE_BTCUSDT_QUARTERLY),
            **rules,
        ),
        # COIN-M: 100 USD a contract ("Each BTC futures contract represents 100 USD",
        # https://dev.binance.vision/t/how-to-get-binance-futures-usd-m-pnl-and-roe/11463).
        Market(
            "BTCUSD_PERP",
            "perp",
            "BTC",
            "BTC",
            p["BTC"],
            BINANCE_BTCUSD_COINM,
            contract_size=100.0,
            inverse=True,
            **rules,
        ),
    ]
    return Universe(assets, _select(markets, symbols))


# ---- OKX multi-currency margin -------------------------------------------------------------
# Position tiers in contracts: (max contracts, mmr, min imr). ETH-USDT-SWAP, OKX announcement
# "OKEx position tiers to be adjusted" (2021-06-11),
# https://support.okexcn.com/hc/en-us/articles/4402607424781-OKEx-position-tiers-to-be-adjusted
# : 3,000 / 6,000 / 12,000 contracts at 0.4/0.8 %, 0.5/1 %, 1/1.5 %, then + 12,000 contracts
# and + 0.5 % per tier.
OKX_ETH_TIERS = [(3_000, 0.004, 0.008), (6_000, 0.005, 0.010), (12_000, 0.010, 0.015)] + [
    (12_000 * (k + 1), 0.010 + 0.005 * k, 0.015 + 0.005 * k) for k in range(1, 8)
]
# ADA-USDT-SWAP, "OKX Perpetual Swap Maintenance Margin to be adjusted" (2022-06-09),
# http://www.okxwebsite.com/en/latest-announcements/item/511.html : 500 / 1,000 / 6,000 /
# 12,000 contracts at 1/1.3 %, 1.5/2 %, 2/5 %, 2.5/5.5 %, then + 6,000 contracts, + 0.5 %.
OKX_ADA_TIERS = [(500, 0.010, 0.013), (1_000, 0.015, 0.020), (6_000, 0.020, 0.050)] + [
    (6_000 * (k + 1), 0.020 + 0.005 * k, 0.050 + 0.005 * k) for k in range(1, 8)
]
# Contract values: ETH-USDT-SWAP 0.1 ETH, ADA-USDT-SWAP 100 ADA (OKX instrument ctVal).
OKX_CT_VAL = {"ETH-USDT-SWAP": 0.1, "ADA-USDT-SWAP": 100.0}
# BETH discount tiers in USD, effective 2024-07-18,
# https://www.globenewswire.com/news-release/2024/07/18/2915393/0/en/OKX-Adjusts-Discount-Rates-for-BETH.html
OKX_BETH_TIERS = [(2e6, 0.95), (4e6, 0.85), (8e6, 0.5), (INF, 0.0)]


# OKX applies the rates of the tier the whole position is in, both of them ("Position tiers":
# maintenance margin = position value × MMR of the tier, initial margin = position value ×
# IMR of the tier; no deduction): step shapes.
OKX_STEP: dict[str, Any] = {"im_shape": "step", "mm_shape": "step"}


def okx_contract_brackets(
    tiers: Sequence[tuple[float, float, float]], ct_val: float, price: float
) -> list[tuple[float, float, float]]:
    """OKX position tiers in contracts → notional brackets at ``price`` (bound = contracts ×
    ct_val × price); the last tier's bound becomes ``inf``."""
    out = [(c * ct_val * price, imr, mmr) for c, mmr, imr in tiers]
    out[-1] = (INF, out[-1][1], out[-1][2])
    return out


def okx_multi_currency(prices: PriceMap = None, symbols: Sequence[str] | None = None) -> Universe:
    """OKX multi-currency margin mode: USD-valued discount tiers on collateral, position tiers
    on swaps (converted to notional at ``prices``)."""
    p = _px(prices)
    assets = [
        Asset("USDT", p["USDT"]),
        Asset("USDC", p["USDC"]),
        # BTC / ETH / SOL tiers are published only on OKX's live discount-rate page
        # (docs/SOURCES.md §3.4, §6): counted at their first tier's rate 1.0, no cap.
        Asset("BTC", p["BTC"]),
        Asset("ETH", p["ETH"]),
        Asset("SOL", p["SOL"]),
        Asset("BETH", p["BETH"], haircut_tiers=OKX_BETH_TIERS),
    ]
    markets = [
        Market(
            "ETH-USDT-SWAP",
            "perp",
            "USDT",
            "ETH",
            p["ETH"],
            okx_contract_brackets(OKX_ETH_TIERS, OKX_CT_VAL["ETH-USDT-SWAP"], p["ETH"]),
            contract_size=OKX_CT_VAL["ETH-USDT-SWAP"],
            **OKX_STEP,
        ),
        Market(
            "ADA-USDT-SWAP",
            "perp",
            "USDT",
            "ADA",
            p["ADA"],
            okx_contract_brackets(OKX_ADA_TIERS, OKX_CT_VAL["ADA-USDT-SWAP"], p["ADA"]),
            contract_size=OKX_CT_VAL["ADA-USDT-SWAP"],
            **OKX_STEP,
        ),
    ]
    return Universe(assets, _select(markets, symbols))


# ---- Bybit unified trading account -------------------------------------------------------------
# BTCUSDT risk limits, Bybit "Margin Parameters"
# https://www.bybit.com/en/announcement-info/margin-parameters (copy:
# https://bybitx.global/pt-PT/announcement-info/margin-parameters): (risk limit, max leverage,
# mmr); "Initial Margin = Position Value ÷ Leverage"; the published deductions (0, 1,200,
# 3,020, 4,300, ...) are Binance's recurrence, tests/test_venues.py checks each.
BYBIT_BTCUSDT = [
    (2_000_000, 100, 0.005), (2_600_000, 90, 0.0056), (3_200_000, 80, 0.0063),
    (3_800_000, 75, 0.0067), (4_400_000, 70, 0.0071), (5_000_000, 65, 0.0077),
    (5_600_000, 55, 0.0091), (8_500_000, 50, 0.01), (10_000_000, 45, 0.013),
    (14_000_000, 40, 0.015), (20_000_000, 35, 0.016), (28_000_000, 30, 0.02),
    (38_000_000, 25, 0.025), (50_000_000, 20, 0.029), (55_000_000, 19, 0.03),
    (60_000_000, 18, 0.035), (65_000_000, 17, 0.036), (70_000_000, 16, 0.038),
    (75_000_000, 15, 0.04), (80_000_000, 14, 0.045),
]  # fmt: skip
BYBIT_BTCUSDT_DEDUCTIONS = [
    0, 1_200, 3_020, 4_300, 5_820, 8_460, 15_460, 20_500, 46_000, 66_000, 80_000, 160_000,
    300_000, 452_000, 502_000, 777_000, 837_000, 967_000, 1_107_000, 1_482_000,
]  # fmt: skip
# Collateral value ratio tiers in BTC quantity, Bybit UTA help page (illustrative "Assume…"
# tiers, the only ones published; docs/SOURCES.md §3.5):
# https://testnet.bytick.com/en/help-center/article/Assets-Collateral-Value-Ratio-List-UTA
BYBIT_BTC_QTY_TIERS = [(10, 0.98), (20, 0.95), (30, 0.9), (40, 0.85), (50, 0.8), (INF, 0.0)]


# Inverse BTCUSD: "The minimum maintenance margin rate for perpetual contracts on Bybit is 0.5%
# for BTC", up to 100x; liquidation reserves the taker fee to close, 0.075 %, at the
# bankruptcy price: "Quantity × 0.00075 / Bankruptcy Price" (Bybit, "How to calculate
# Liquidation Price (Inverse Contract)",
# https://help.bybit.com/hc/en-us/articles/360039261334-How-to-calculate-Liquidation-Price-Inverse-Contract-).
BYBIT_BTCUSD = [(INF, 0.01, 0.005)]
BYBIT_TAKER_FEE = 0.00075


def bybit_unified(prices: PriceMap = None, symbols: Sequence[str] | None = None) -> Universe:
    """Bybit unified trading account: collateral value ratios by quantity (converted to USD at
    ``prices``), BTCUSDT risk limits, the BTCUSD inverse perpetual."""
    p = _px(prices)
    assets = [
        Asset("USDT", p["USDT"]),
        Asset("USDC", p["USDC"]),
        Asset("BTC", p["BTC"], haircut_tiers=usd_tiers(BYBIT_BTC_QTY_TIERS, p["BTC"])),
    ]
    # "Initial Margin = Position Value ÷ Leverage" at the risk limit's leverage (a step);
    # maintenance on the position value at the entry price ("Liquidation Price = Entry Price ×
    # (1 − Initial Margin Rate + Maintenance Margin Rate)",
    # https://help.bybit.com/hc/en-us/articles/900000181046-Liquidation-Price-USDT-Contract-).
    rules: dict[str, Any] = {"im_shape": "step", "maint_basis": "entry"}
    markets = [
        Market(
            "BTCUSDT",
            "perp",
            "USDT",
            "BTC",
            p["BTC"],
            tier_brackets(BYBIT_BTCUSDT),
            **rules,
            **BYBIT_ORDERS,
        ),
        Market(
            "BTCUSD",
            "perp",
            "BTC",
            "BTC",
            p["BTC"],
            BYBIT_BTCUSD,
            inverse=True,
            liquidation_fee=BYBIT_TAKER_FEE,
            order_fee_rate=BYBIT_TAKER_FEE,
            **rules,
        ),
    ]
    return Universe(assets, _select(markets, symbols))


# ---- Deribit ---------------------------------------------------------------------------------
# BTC futures: "Initial margin: starting with 2.0%, linearly increasing 0.5% per 100BTC
# increase in position size"; "Maintenance margin: starting with 1.5%, linearly increasing
# with 0.5% per 100BTC" (https://test.deribit.com/pages/docs/futures); contract size 10 USD.
DERIBIT_IM_BASE, DERIBIT_MM_BASE, DERIBIT_SLOPE = 0.02, 0.015, 0.005 / 100.0


def deribit(prices: PriceMap = None, symbols: Sequence[str] | None = None) -> Universe:
    """Deribit: BTC inverse perpetual (the size-scaled rate, exact) and BTC inverse options
    with Deribit's standard margin (the model's option rule, docs/MODEL.md "Option margin"),
    coin collateral at full value."""
    p = _px(prices)
    assets = [Asset("BTC", p["BTC"]), Asset("ETH", p["ETH"]), Asset("USDC", p["USDC"])]
    s = p["BTC"]
    markets = [
        # Size in BTC = the coin notional of the inverse contract (docs/MODEL.md
        # "Requirement shapes").
        Market(
            "BTC-PERPETUAL",
            "perp",
            "BTC",
            "BTC",
            s,
            [(INF, DERIBIT_IM_BASE, DERIBIT_MM_BASE)],
            contract_size=10.0,
            inverse=True,
            im_shape="size_scaled",
            mm_shape="size_scaled",
            rate_slope_initial=DERIBIT_SLOPE,
            rate_slope_maint=DERIBIT_SLOPE,
        ),
    ]
    # Options: 1 BTC a contract, premium in BTC; 30 days, strikes ±10 % (rounded to 1,000).
    for kind, k in (("call", 1.1), ("put", 0.9)):
        strike = round(s * k / 1_000.0) * 1_000.0
        markets.append(
            Market(
                f"BTC-30D-{int(strike)}-{kind[0].upper()}",
                "option",
                "BTC",
                "BTC",
                None,
                contract_size=1.0,
                inverse=True,
                option_type=kind,
                strike=strike,
                expiry=30.0 / 365.0,
                iv=0.55,
            )
        )
    return Universe(assets, _select(markets, symbols))


# ---- Drift protocol v2 ---------------------------------------------------------------------------
# Spot (cross-collateral) parameters: (initial asset, maint asset, initial liability, maint
# liability, imf factor), Drift docs "Cross-collateral deposits"
# https://drift-docs-v2.vercel.app/getting-started/cross-collateral-deposits
DRIFT_SPOT = {
    "USDC": (1.0, 1.0, 1.0, 1.0, 0.0),
    "SOL": (0.8, 0.9, 1.2, 1.1, 0.003),
    "BTC": (0.8, 0.9, 1.2, 1.1, 0.105),  # wBTC (portal)
    "ETH": (0.8, 0.9, 1.2, 1.1, 0.025),  # wETH (portal)
    "USDT": (0.9, 0.95, 1.1, 1.05, 0.0004),
}
# Perps: margin_ratio_initial 0.1, margin_ratio_maintenance 0.05, imf_factor 0.001 — the values
# of Drift's own tests (drift-labs/protocol-v2 programs/drift/src/math/margin/tests.rs,
# docs/SOURCES.md §4.5–4.6); the live table is fetched from Drift's API at page load
# (drift-labs/drift-protocol-v2-docs components/data/MarginTables.tsx).
DRIFT_PERP = (0.1, 0.05, 0.001)


def drift_v2(prices: PriceMap = None, symbols: Sequence[str] | None = None) -> Universe:
    """Drift v2: spot deposits with size-discounted weights, borrows with size-premium
    liability weights, perps with size-premium margin ratios (the model's ``imf_factor``,
    docs/MODEL.md "Size discount and premium")."""
    p = _px(prices)
    assets = [
        Asset(s, p[s], wi, wm, li, lm, imf_factor=imf)
        for s, (wi, wm, li, lm, imf) in DRIFT_SPOT.items()
    ]
    imr, mmr, imf = DRIFT_PERP
    markets = [
        Market(
            f"{u}-PERP", "perp", "USDC", u, p[u], [(INF, imr, mmr)], imf_factor=imf, **DRIFT_ORDERS
        )
        for u in ("SOL", "BTC", "ETH")
    ]
    return Universe(assets, _select(markets, symbols))


def requirement_side(engine: Engine, book: Book, prices: Any = None) -> Table:
    """Drift's presentation of the standard model: borrows on the requirement side.

    Drift (programs/drift/src/math/margin.rs, ``calculate_margin_requirement_and_total_collateral``)
    adds liability value × liability weight to the *margin requirement* where the standard
    model subtracts it from adjusted equity; with L_m the weighted borrows of an account,
    ``total_collateral_m = adj_equity_m + L_m`` and ``margin_requirement_m = requirement_m +
    L_m``. The liquidation test (total collateral < maintenance requirement) and free
    collateral are unchanged; ``health`` = 100·(1 − mm / total collateral) clamped to
    [0, 100] (driftpy ``DriftUser.get_health``, unrounded). L_m is the (negated) adjusted
    equity of the borrows alone, so every rule of the core applies to it. Under fixed-point
    arithmetic (e.g. :func:`drift_universe`) the numbers are the engine's raw totals, exact to
    the value unit."""
    full = engine.evaluate(book, prices=prices)
    if "total_collateral_maint_raw" in full.columns:
        return _requirement_side_raw(engine, full)
    b = book.balances
    neg = b["qty"] < 0
    asset_names = [a.symbol for a in engine.universe.assets]
    borrows = Book.from_arrays(
        balances={
            "account": b["account"][neg],
            "asset": b["asset"].symbols(asset_names)[neg],
            "qty": b["qty"][neg],
        }
    )
    weighted = {"initial": np.zeros(len(full)), "maint": np.zeros(len(full))}
    if borrows.n_accounts:
        rb = engine.evaluate(borrows, prices=prices)
        at = np.searchsorted(full.account, rb.account)
        weighted["initial"][at] = -rb.adj_equity_initial
        weighted["maint"][at] = -rb.adj_equity_maint
    tc_i = full.adj_equity_initial + weighted["initial"]
    tc_m = full.adj_equity_maint + weighted["maint"]
    req_i = full.im + weighted["initial"]
    req_m = full.mm + weighted["maint"]
    health = np.where(
        (req_m == 0) & (tc_m >= 0),
        100.0,
        np.where(
            tc_m <= 0,
            0.0,
            np.clip((1.0 - req_m / np.where(tc_m > 0, tc_m, 1.0)) * 100.0, 0.0, 100.0),
        ),
    )
    return Table(
        {
            "account": full.account,
            "total_collateral_initial": tc_i,
            "total_collateral_maint": tc_m,
            "margin_requirement_initial": req_i,
            "margin_requirement_maint": req_m,
            "free_collateral": tc_i - req_i,
            "health": health,
            "liquidatable": full.liquidatable,
        }
    )


def _requirement_side_raw(engine: Engine, full: Any) -> Table:
    """:func:`requirement_side` from a fixed-point result's raw columns."""
    fp = engine.universe.arithmetic
    one = 10.0 ** (fp.value_decimals if fp is not None else 6)
    tc_i, tc_m = full.total_collateral_initial_raw, full.total_collateral_maint_raw
    req_i, req_m = full.margin_requirement_initial_raw, full.margin_requirement_maint_raw
    safe = np.where(tc_m > 0, tc_m, 1)
    health = np.where(
        (req_m == 0) & (tc_m >= 0),
        100.0,
        np.where(tc_m <= 0, 0.0, np.clip((1.0 - req_m / safe) * 100.0, 0.0, 100.0)),
    )
    return Table(
        {
            "account": full.account,
            "total_collateral_initial": tc_i / one,
            "total_collateral_maint": tc_m / one,
            "margin_requirement_initial": req_i / one,
            "margin_requirement_maint": req_m / one,
            "free_collateral": (tc_i - req_i) / one,
            "health": health,
            "liquidatable": full.liquidatable,
        }
    )


# ---- dYdX v4 ------------------------------------------------------------------------------
# Liquidity tiers: (initial margin fraction, maintenance fraction, OI lower cap, OI upper cap in
# USD). dydxprotocol/v4-chain protocol/testing/genesis.sh (Large-Cap 5 % / 60 %, tier 1 10 % /
# 50 %; BTC-USD and ETH-USD in tier 0, SOL-USD in tier 1) and the sample genesis with open
# interest caps (tier 0 caps 0 / 0 = no scaling; tier 1 "Small-Cap" 20M / 50M USDC),
# https://github.com/dydxprotocol/v4-chain/blob/main/protocol/testing/genesis.sh
DYDX_TIERS = {
    "Large-Cap": (0.05, 0.6, 0.0, 0.0),
    "Small-Cap": (0.10, 0.5, 20e6, 50e6),
    "Long-Tail": (0.20, 0.5, 5e6, 10e6),
}
DYDX_MARKETS = {"BTC-USD": ("BTC", "Large-Cap"), "ETH-USD": ("ETH", "Large-Cap"),
                "SOL-USD": ("SOL", "Small-Cap")}  # fmt: skip


def book_open_interest(book: Book, marks: Mapping[str, float]) -> dict[str, float]:
    """Open interest of each market of ``book`` in USD notional: the sum of its long positions
    (qty > 0, one contract = one unit of the underlying) × the market's mark in ``marks``;
    markets without a mark are left out. dYdX's open interest is the total long size
    (``x/perpetuals`` ``OpenInterest``, base quantums), valued at the oracle price."""
    pos = book.positions
    col = pos["market"]
    if col.labels is None:
        raise ConfigError(
            "book: open_interest='book' needs market symbols in the book (not universe codes)",
            field="book",
        )
    qty = np.asarray(pos["qty"], dtype=np.float64)
    codes = np.asarray(col.codes)
    # Exact sums (math.fsum): the open interest does not depend on the rows' order.
    return {
        s: math.fsum(qty[(codes == k) & (qty > 0)].tolist()) * float(marks[s])
        for k, s in enumerate(col.labels)
        if s in marks
    }


def dydx_v4(
    prices: PriceMap = None,
    symbols: Sequence[str] | None = None,
    open_interest: Mapping[str, float] | str | None = None,
    book: Book | None = None,
) -> Universe:
    """dYdX v4: USDC collateral, one margin fraction per market. Maintenance = base IMF ×
    maintenance fraction (``GetMaintenanceMarginPpm``); initial = the open-interest-scaled IMF
    at ``open_interest`` — USD notional per market symbol (default 0), or ``"book"``: the
    open interest of ``book``'s own positions at the preset's prices
    (:func:`book_open_interest`) — a market-wide number, fixed for the universe.

    >>> u = dydx_v4(open_interest="book", book=book)   # doctest: +SKIP
    """
    p = _px(prices)
    if isinstance(open_interest, str):
        if open_interest != "book":
            raise ConfigError(
                f"open_interest: {open_interest!r} is not 'book' or a mapping of market → USD",
                field="open_interest",
            )
        if not isinstance(book, Book):
            raise ConfigTypeError("book: open_interest='book' needs book=Book(...)", field="book")
        marks = {sym: p[u] for sym, (u, _) in DYDX_MARKETS.items()}
        oi = book_open_interest(book, marks)
    else:
        if book is not None:
            raise ConfigError("book: only read with open_interest='book'", field="book")
        oi = dict(open_interest or {})
    markets = []
    for sym, (u, tier) in DYDX_MARKETS.items():
        imf, mf, lo, hi = DYDX_TIERS[tier]
        eff = dydx_effective_imf(imf, float(oi.get(sym, 0.0)), lo, hi)
        markets.append(Market(sym, "perp", "USDC", u, p[u], [(INF, eff, imf * mf)], **DYDX_ORDERS))
    return Universe([Asset("USDC", p["USDC"])], _select(markets, symbols))


# ---- Hyperliquid --------------------------------------------------------------------------
# Mainnet margin tiers (notional lower bound USDC, max leverage), Hyperliquid docs "Margin
# tiers": https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers
HYPERLIQUID_TIERS = {
    "BTC": [(0.0, 40), (150e6, 20)],
    "ETH": [(0.0, 25), (100e6, 15)],
    "SOL": [(0.0, 20), (70e6, 10)],
}


def hyperliquid(prices: PriceMap = None, symbols: Sequence[str] | None = None) -> Universe:
    """Hyperliquid perps: USDC collateral, margin tiers with maintenance = notional × mmr −
    deduction, initial = notional / max leverage of the tier (a step); cross positions share
    the account value, isolated ones carry their own margin (the model's isolated_margin)."""
    p = _px(prices)
    markets = [
        Market(u, "perp", "USDC", u, p[u], hyperliquid_brackets(t), im_shape="step")
        for u, t in HYPERLIQUID_TIERS.items()
    ]
    return Universe([Asset("USDC", p["USDC"])], _select(markets, symbols))


PRESETS: dict[str, Callable[..., Universe]] = {
    "binance_usdm": binance_usdm,
    "okx_multi_currency": okx_multi_currency,
    "bybit_unified": bybit_unified,
    "deribit": deribit,
    "drift_v2": drift_v2,
    "dydx_v4": dydx_v4,
    "hyperliquid": hyperliquid,
}


# ---- TOML -----------------------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        f = float(v)
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigTypeError(f"cannot write {type(v).__name__} to TOML", field="toml")


_ALWAYS = {"symbol", "price", "kind", "settle", "underlying", "mark"}


def to_toml(universe: Universe, header: str = "") -> str:
    """The universe in the layout of :meth:`Universe.from_toml` (fields at their defaults are
    left out); ``header`` becomes leading comment lines."""
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    fp = universe.arithmetic
    if fp is not None:  # the fixed-point declaration, every field written out
        decimals = ", ".join(f"{_toml_value(k)} = {v}" for k, v in fp.asset_decimals.items())
        lines += ["", "[arithmetic]"]
        for name in ("value_decimals", "price_decimals", "weight_decimals", "size_decimals",
                     "imf_decimals"):  # fmt: skip
            lines.append(f"{name} = {getattr(fp, name)}")
        lines += [f"asset_decimals = {{ {decimals} }}",
                  f"borrow_rounding = {_toml_value(fp.borrow_rounding)}"]  # fmt: skip
    groups = (("assets", universe.assets, Asset), ("markets", universe.markets, Market))
    for kind, items, cls in groups:
        for x in items:
            lines += ["", f"[[{kind}]]"]
            for name, f in cls.__dataclass_fields__.items():
                v = getattr(x, name)
                if v is None or v == () or (name not in _ALWAYS and v == f.default):
                    continue
                lines.append(f"{name} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def write_examples(folder: str | Path = "examples/venues") -> list[Path]:
    """Writes ``<venue>.toml`` for every preset at the default prices."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, preset in PRESETS.items():
        doc = (preset.__doc__ or "").strip().splitlines()[0]
        header = (
            f"{name}: {doc}\nGenerated by crossmargin.venues.write_examples(); parameters and "
            f"sources: python/crossmargin/venues/presets.py\nand docs/MODEL.md, 'Venue presets'."
        )
        path = out / f"{name}.toml"
        path.write_text(to_toml(preset(), header), encoding="utf-8")
        paths.append(path)
    return paths


# ---- carrying a book over to a venue ----------------------------------------------------------
def _market_target(src: Market, venue: Universe) -> int:
    """The venue market for a source market: options by (underlying, type, strike, expiry);
    perps and futures by underlying, preferring the same kind and linear/inverse; -1 if none."""
    if src.is_option:
        for k, m in enumerate(venue.markets):
            if (
                m.is_option
                and m.underlying == src.underlying
                and m.option_type == src.option_type
                and m.strike == src.strike
                and m.expiry == src.expiry
            ):
                return k
        return -1
    best, score = -1, -1
    for k, m in enumerate(venue.markets):
        if m.is_option or m.underlying != src.underlying:
            continue
        s = 2 * (m.kind == src.kind) + (m.inverse == src.inverse)
        if s > score:
            best, score = k, s
    return best


def _asset_target(symbol: str, venue: Universe) -> int:
    if symbol in venue.asset_index:
        return venue.asset_index[symbol]
    if symbol in STABLES:
        for s in STABLES:
            if s in venue.asset_index:
                return venue.asset_index[s]
    return -1


def _net_positions(
    venue: Universe,
    account: np.ndarray,
    market: np.ndarray,
    qty: np.ndarray,
    entry: np.ndarray,
    isolated: np.ndarray,
    side: np.ndarray,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One net position per (account, venue market, side) — a hedge leg stays a leg
    (docs/MODEL.md "Book") — keeping uPnL at every mark: linear
    entry = Σ q·e / Σ q, inverse 1/entry = Σ (q/e) / Σ q; a net of zero books its locked-in
    P&L (−Σ q·e linear, Σ q·cs/e inverse, settle units) as a balance of the settle asset.
    Isolated margins add up; the net position is isolated when any part was. Groups are in
    order of first appearance, each summed in row order."""
    inv = np.array([m.inverse for m in venue.markets], dtype=bool)
    market = np.asarray(market, dtype=np.int64)
    weighted = np.where(inv[market], qty / np.where(entry > 0, entry, 1.0), qty * entry)
    keys = np.stack(
        [np.asarray(account, dtype=np.int64), market, np.asarray(side, dtype=np.int64)], axis=1
    )
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # groups in order of first appearance
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    group = rank[np.asarray(inverse).reshape(-1)]
    n = len(order)

    def total(x: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=np.asarray(x, dtype=np.float64), minlength=n)

    acc, mk = keys[first[order], 0], keys[first[order], 1]
    q, w, iso = total(qty), total(weighted), total(isolated)
    inv_g = inv[mk]
    cs = np.array([m.contract_size for m in venue.markets])[mk]
    mark = np.array(venue.reference_marks)[mk]
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(inv_g, q / w, w / q)
    # A net whose entry is not a positive price (offsetting legs) is re-based at the venue's
    # mark M, its difference booked: linear cs·(Q·M − Σq·e), inverse cs·(Σq/e − Q/M).
    bad = (q != 0) & ~(np.isfinite(e) & (e > 0))
    e = np.where(bad, mark, e)
    locked = np.where(q == 0, np.where(inv_g, w * cs, -w * cs), 0.0)
    locked = np.where(bad, np.where(inv_g, cs * (w - q / mark), cs * (q * mark - w)), locked)
    keep = q != 0
    positions = {
        "account": acc[keep],
        "market": np.array([m.symbol for m in venue.markets], dtype=object)[mk[keep]],
        "qty": q[keep],
        "entry_price": e[keep],
        "isolated_margin": iso[keep],
        "side": keys[first[order], 2][keep].astype(np.uint8),
    }
    booked = locked != 0
    extra = {
        "account": acc[booked],
        "asset": np.array([m.settle for m in venue.markets], dtype=object)[mk[booked]],
        "qty": locked[booked],
    }
    return positions, extra


def map_book(book: Book, source: Universe, venue: Universe) -> tuple[Book, dict[str, int]]:
    """The book, written for ``source``, as the same exposures on ``venue``.

    - Balances keep their quantity in an asset of the same symbol; a stablecoin the venue
      does not list (USDC, USDT, USD) moves 1:1 to the first of those it does. Any other
      asset the venue does not take as collateral is left out (it would count nothing).
    - A position moves to the venue's market on the same underlying (same kind and
      linear/inverse preferred; options need the same type, strike and expiry), keeping its
      exposure in base units at the source's reference marks: base = qty × contract size
      (linear) or qty × contract size / mark (inverse), then qty' = base / contract size'
      (linear) or base × mark' / contract size' (inverse); entry prices are kept; isolated
      margin keeps its USD value. A position without a venue market is left out.
    - Accounts whose rows are all left out disappear from the venue's results.

    - Hedge legs stay legs (one net leg per account, venue market and side). Open orders are
      not carried over: a book with orders is a :class:`ConfigError` (evaluate it without).

    Returns the new book and counts ``{"balances_dropped", "positions_dropped"}``."""
    if book.has_orders:
        raise ConfigError(
            "book: open orders are not carried over to another venue (map a book without "
            "orders: Book.from_arrays(book.balances, book.positions))",
            field="book",
        )
    b, pos = book.balances, book.positions
    src_assets = [a.symbol for a in source.assets]
    src_markets = [m.symbol for m in source.markets]
    a_labels = b["asset"].labels if b["asset"].labels is not None else tuple(src_assets)
    m_labels = pos["market"].labels if pos["market"].labels is not None else tuple(src_markets)

    a_lut = np.array([_asset_target(s, venue) for s in a_labels] or [0], dtype=np.int64)
    a_tgt = a_lut[b["asset"].codes] if len(b["qty"]) else np.zeros(0, dtype=np.int64)
    keep_b = a_tgt >= 0
    venue_assets = np.array([a.symbol for a in venue.assets], dtype=object)

    # Per source-market label: (target market, qty factor, isolated-margin factor).
    lut: list[tuple[int, float, float]] = []
    for s in m_labels:
        k_src = source.market_index.get(s)
        k = -1 if k_src is None else _market_target(source.markets[k_src], venue)
        if k_src is None or k < 0:
            lut.append((-1, 0.0, 0.0))
            continue
        m, v = source.markets[k_src], venue.markets[k]
        mark_s, mark_v = source.reference_marks[k_src], venue.reference_marks[k]
        base = m.contract_size / mark_s if (m.inverse and not m.is_option) else m.contract_size
        per = mark_v / v.contract_size if (v.inverse and not v.is_option) else 1.0 / v.contract_size
        settle_s = source.assets[source.asset_index[m.settle]].price
        settle_v = venue.assets[venue.asset_index[v.settle]].price
        lut.append((k, base * per, settle_s / settle_v if settle_v > 0 else 0.0))
    tgt = [t[0] for t in lut]
    qty_f = [t[1] for t in lut]
    iso_f = [t[2] for t in lut]
    m_lut = np.array(tgt or [0], dtype=np.int64)
    qf, isf = np.array(qty_f or [0.0]), np.array(iso_f or [0.0])
    codes = pos["market"].codes
    m_tgt = m_lut[codes] if len(codes) else np.zeros(0, dtype=np.int64)
    keep_p = m_tgt >= 0
    iso = pos["isolated_margin"]
    positions, extra = _net_positions(
        venue,
        pos["account"][keep_p],
        m_tgt[keep_p],
        pos["qty"][keep_p] * qf[codes[keep_p]],
        pos["entry_price"][keep_p],
        np.where(np.isnan(iso), 0.0, iso)[keep_p] * isf[codes[keep_p]],
        pos["side"][keep_p],
    )
    mapped = Book.from_arrays(
        balances={
            "account": np.concatenate([b["account"][keep_b], extra["account"]]),
            "asset": np.concatenate([venue_assets[a_tgt[keep_b]], extra["asset"]]),
            "qty": np.concatenate([b["qty"][keep_b], extra["qty"]]),
        },
        positions=positions,
    )
    dropped = {
        "balances_dropped": int((~keep_b).sum()),
        "positions_dropped": int((~keep_p).sum()),
    }
    return mapped, dropped


def compare(
    book: Book,
    source: Universe,
    venues: Sequence[str] | None = None,
    threads: int | None = None,
) -> Table:
    """The same book under each venue's rules: one row per venue with accounts, liquidatable,
    total IM / MM, equity, capital efficiency (Σ notional / Σ IM: exposure carried per USD of
    initial margin) and the rows :func:`map_book` left out."""
    names = list(venues or PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise ConfigError(
            f"venues: {unknown[0]!r} is not one of {', '.join(PRESETS)}", field="venues"
        )
    prices = {a.symbol: a.price for a in source.assets}
    prices.update({u: source.reference_price(u) for u in source.underlyings})
    rows: dict[str, list[Any]] = {
        k: []
        for k in (
            "venue", "accounts", "liquidatable", "im", "mm", "equity", "notional",
            "capital_efficiency", "balances_dropped", "positions_dropped",
        )
    }  # fmt: skip
    for name in names:
        venue = PRESETS[name](prices=prices)
        mapped, dropped = map_book(book, source, venue)
        eng = Engine(venue, threads=threads)
        r = eng.evaluate(mapped)
        eff = eng.capital_efficiency(mapped).aggregate if len(r) else {"notional": 0.0}
        im, notional = float(r.im.sum()), float(eff["notional"])
        rows["venue"].append(name)
        rows["accounts"].append(len(r))
        rows["liquidatable"].append(int(r.liquidatable.sum()))
        rows["im"].append(im)
        rows["mm"].append(float(r.mm.sum()))
        rows["equity"].append(float(r.equity.sum()))
        rows["notional"].append(notional)
        rows["capital_efficiency"].append(notional / im if im > 0 else 0.0)
        rows["balances_dropped"].append(dropped["balances_dropped"])
        rows["positions_dropped"].append(dropped["positions_dropped"])
    return Table({k: np.array(v, dtype=object if k == "venue" else None) for k, v in rows.items()})


__all__ = [
    "DEFAULT_PRICES",
    "PRESETS",
    "binance_usdm",
    "book_open_interest",
    "bybit_unified",
    "compare",
    "deribit",
    "drift_v2",
    "dydx_effective_imf",
    "dydx_v4",
    "hyperliquid",
    "hyperliquid_brackets",
    "linear_rate_brackets",
    "maintenance_deductions",
    "map_book",
    "okx_contract_brackets",
    "okx_multi_currency",
    "requirement_side",
    "tier_brackets",
    "to_toml",
    "usd_tiers",
    "write_examples",
]
