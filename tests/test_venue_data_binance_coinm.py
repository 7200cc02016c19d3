"""Binance COIN-M payloads through crossmargin.venues.data.binance: brackets in base-coin
quantity (``qtyCap``) per pair, inverse contracts of 100 USD, and the engine against the figures
of Binance's COIN-M documentation samples.

Fixtures and sources: tests/fixtures/venues/binance_coinm/README.md
(https://developers.binance.com/docs/derivatives/coin-margined-futures/, stored 2025-06-10).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.venues.data import binance, load, payload
from crossmargin.venues.data.payload import round_down

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "venues" / "binance_coinm"


def params() -> dict:
    return payload.read_params(FIX / "params")


def imported() -> payload.Imported:
    return binance.accounts(payload.read_accounts(FIX / "accounts"))


def one_position_book(acc: payload.Imported, wallet: float) -> cm.Book:
    p = acc.positions
    return cm.Book.from_arrays(
        balances={"account": [1], "asset": ["BTC"], "qty": [wallet]},
        positions={
            "account": [1],
            "market": [p["market"][0]],
            "qty": [p["qty"][0]],
            "entry_price": [p["entry_price"][0]],
        },
    )


def test_coinm_universe_is_inverse_with_qty_brackets_per_pair() -> None:
    acc = imported()
    u = binance.universe(params(), marks=acc.marks)
    m = u.markets[u.market_index["BTCUSD_201225"]]
    assert (m.kind, m.settle, m.underlying, m.inverse, m.contract_size) == (
        "future", "BTC", "BTC", True, 100.0
    )  # fmt: skip
    # The pair's one bracket: qtyCap 50 BTC → ∞ (last), 1 / 125, 0.4 %.
    assert m.brackets == ((math.inf, 1 / 125, 0.004),)
    # The margin coin is priced at its inverse market's mark (USD per BTC).
    assert u.assets[u.asset_index["BTC"]].price == acc.marks["BTCUSD_201225"] == 11788.66626667
    # The pair's set also covers the exchangeInfo sample's other BTCUSD symbol.
    u2 = binance.universe(params(), marks={"BTCUSD_200925": 12077.0134375})
    assert set(u2.market_index) == {"BTCUSD_200925"}


def test_coinm_brackets_per_symbol_v2_sample() -> None:
    p = params()
    p["leverageBracket"] = json.loads((FIX / "samples/leverageBracket-symbol.json").read_text())
    p["exchangeInfo"]["symbols"][0]["symbol"] = "BTCUSD_PERP"
    p["exchangeInfo"]["symbols"][0]["contractType"] = "PERPETUAL"
    u = binance.universe(p, marks={"BTCUSD_PERP": 11029.69574559})
    assert u.markets[0].kind == "perp" and u.markets[0].brackets == ((math.inf, 0.008, 0.004),)


def test_coinm_position_sample_upnl_is_reproduced_to_8_decimals() -> None:
    u, acc = load("binance", FIX / "params", FIX / "accounts")
    assert acc.hedged and acc.positions["side"].tolist() == ["long"]
    assert acc.positions["qty"].tolist() == [1.0]  # the flat BOTH / SHORT rows are not booked
    book = one_position_book(acc, 0.00241969)
    r = cm.Engine(u, threads=1).evaluate(book)
    ref = reference.evaluate(u, book)
    np.testing.assert_allclose(r.upnl, ref.upnl, rtol=1e-12)
    btc = u.assets[u.asset_index["BTC"]].price
    row = json.loads((FIX / "accounts/doc/positionRisk.json").read_text())[1]
    # 100 × (1 / 11,707.70000003 − 1 / 11,788.66626667) BTC; the engine reports in USD.
    assert round(r.upnl[0] / btc, 8) == float(row["unRealizedProfit"]) == 0.00005866
    assert round_down(r.upnl[0] / btc, 8) == 0.00005866
    # Maintenance: 0.4 % of the coin notional 100 / mark.
    assert r.mm[0] / btc == pytest.approx(0.004 * 100 / btc, rel=1e-12)


def test_coinm_liquidation_price_needs_a_wallet_the_account_sample_does_not_hold() -> None:
    """positionRisk's liquidationPrice 11,667.63509587 is the engine's for a cross wallet of
    0.0000636 BTC; the account sample's wallet (0.00241969 BTC) gives 9,159.68."""
    u, acc = load("binance", FIX / "params", FIX / "accounts")
    row = json.loads((FIX / "accounts/doc/positionRisk.json").read_text())[1]
    liq, entry = float(row["liquidationPrice"]), float(row["entryPrice"])
    # Binance (COIN-M, cross, one position): wallet + 100 / entry = 100 × (1 + mmr) / liq.
    wallet = 100 * 1.004 / liq - 100 / entry
    assert round(wallet, 10) == 0.0000636127
    e = cm.Engine(u, threads=1)
    for move in ("mark", "underlying"):
        got = e.liquidation_prices(one_position_book(acc, wallet), move=move)["liq_price"][0]
        assert round(got, 8) == liq
    held = acc.balances["qty"][0]
    assert held == 0.00241969
    other = e.liquidation_prices(one_position_book(acc, held), move="mark")["liq_price"][0]
    assert round(other, 2) == 9159.68


def test_coinm_account_sample_holds_no_position_the_position_sample_holds() -> None:
    acct = json.loads((FIX / "accounts/doc/account.json").read_text())
    assert {p["positionAmt"] for p in acct["positions"]} == {"0"}
    assert acct["assets"][0]["maintMargin"] == "0.00000000"
    risk = json.loads((FIX / "accounts/doc/positionRisk.json").read_text())
    assert [r["positionAmt"] for r in risk] == ["0", "1", "0"]
    # ... and that position is dated after its contract's delivery.
    info = {s["symbol"]: s for s in params()["exchangeInfo"]["symbols"]}
    assert risk[1]["updateTime"] > info["BTCUSD_201225"]["deliveryDate"]


def test_coinm_isolated_margin_is_the_wallet_without_upnl() -> None:
    rows = json.loads((FIX / "accounts/doc/positionRisk.json").read_text())
    rows[1]["marginType"] = "isolated"
    rows[1]["isolatedMargin"] = "0.00105866"
    acc = binance.accounts({"i": {"positionRisk": rows}})
    assert acc.positions["isolated_margin"][0] == pytest.approx(0.001, abs=1e-15)


def test_coinm_unknown_symbol_and_missing_cap_are_typed_errors() -> None:
    with pytest.raises(cm.ConfigError, match="unknown symbol 'ETHUSD_PERP'"):
        binance.universe(params(), marks={"ETHUSD_PERP": 1.0}, symbols=["ETHUSD_PERP"])
    p = params()
    del p["leverageBracket"][0]["brackets"][0]["qtyCap"]
    with pytest.raises(
        cm.ConfigError, match=r"binance leverageBracket\.json: \[0\]\.brackets\[0\]\.notionalCap"
    ):
        binance.universe(p, marks={"BTCUSD_201225": 1.0})
