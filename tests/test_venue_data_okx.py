"""OKX v5 payloads (crossmargin.venues.data.okx): the adapter on OKX's documentation samples,
the engine against the margin figures OKX prints in the same payloads, and the samples'
inconsistencies shown from their own numbers.

Fixtures and their sources: tests/fixtures/venues/okx/README.md (the v5 reference,
https://www.okx.com/docs-v5/en/, as stored on 2025-04-14).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.venues.data import load, okx, payload

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "venues" / "okx"


def params() -> dict:
    return payload.read_params(FIX / "params")


def sample(name: str) -> dict:
    return json.loads((FIX / "samples" / f"{name}.json").read_text())


def btc_swap_universe(mark: float, mmr: float, lever: float) -> cm.Universe:
    """BTC-USDT-SWAP from the instruments payload at ``mark``, one tier (∞, 1 / lever, mmr)."""
    p = params()
    p["position-tiers"] = {
        "data": [
            {"instFamily": "BTC-USDT", "instId": "", "maxSz": "1", "imr": "0", "mmr": str(mmr)}
        ]
    }
    return okx.universe(p, marks={"BTC-USDT-SWAP": mark}, leverage={"BTC-USDT-SWAP": lever})


def evaluate(u: cm.Universe, acc: payload.Imported) -> cm.MarginResult:
    book = acc.book()
    r = cm.Engine(u, threads=1).evaluate(book)
    ref = reference.evaluate(u, book)
    np.testing.assert_allclose(r.mm, ref.mm, rtol=1e-12)
    np.testing.assert_allclose(r.im, ref.im, rtol=1e-12)
    return r


# ---- the grid samples: self-consistent, at a price that is not their markPx -----------------
@pytest.mark.parametrize(
    ("name", "price", "usdt"),
    [("grid-positions", 29_219.8, 0.999), ("grid-positions-push", 29_846.7, 0.99899)],
)
def test_okx_grid_sample_margins_are_reproduced_at_the_price_they_were_computed(
    name: str, price: float, usdt: float
) -> None:
    """OKX "Grid algo order positions" samples (REST and WebSocket push): BTC-USDT-SWAP, net 35
    contracts of 0.01 BTC, cross, lever 5. imr × lever, upl / size + avgPx and mmr / 0.4 % all
    give one price, which is not the sample's markPx; at that price the engine's im, mm and
    uPnL are OKX's figures."""
    raw = sample(name)
    q = raw["data"][0]
    size = float(q["pos"]) * 0.01  # ctVal of BTC-USDT-SWAP in the instruments payload
    assert float(params()["instruments"]["data"][2]["ctVal"]) == 0.01
    implied = float(q["avgPx"]) + float(q["upl"]) / size
    assert round(implied, 6) == price
    assert round(float(q["imr"]) * float(q["lever"]) / size, 6) == price
    assert round(float(q["mmr"]) / 0.004 / size, 6) == price  # one mmr rate in both samples
    assert float(q["markPx"]) != price

    acc = okx.accounts({"grid": {"positions": raw}})
    assert acc.positions["qty"].tolist() == [35.0] and acc.positions["side"].tolist() == ["both"]
    assert okx.leverages({"grid": {"positions": raw}}) == {"BTC-USDT-SWAP": 5.0}
    r = evaluate(btc_swap_universe(price, 0.004, 5.0), acc)
    rep = acc.reported
    assert round(r.im[0], 9) == round(rep["position_imr"][0], 9)
    assert round(r.mm[0], 9) == round(rep["position_mmr"][0], 9)
    assert round(r.upnl[0], 9) == round(rep["position_upl"][0], 9)
    # notionalUsd: the notional at that price in USD (USDT at its index).
    assert round(size * price * usdt, 8) == round(rep["position_notional_usd"][0], 8)
    # At the printed markPx the figures are not OKX's.
    at_mark = evaluate(btc_swap_universe(float(q["markPx"]), 0.004, 5.0), acc)
    assert abs(at_mark.upnl[0] - rep["position_upl"][0]) > 1.0


def test_okx_grid_sample_reproduces_to_the_last_float_digit() -> None:
    """OKX prints its doubles: mmr "40.907720000000005" is 35 × 0.01 × 29,219.8 × 0.004 in
    float64, the engine's value bit for bit."""
    acc = okx.accounts({"grid": {"positions": sample("grid-positions")}})
    r = evaluate(btc_swap_universe(29_219.8, 0.004, 5.0), acc)
    assert r.mm[0] == 40.907720000000005 == acc.reported["position_mmr"][0]


# ---- the signal sample: its figures are those of another contract value ---------------------
def test_okx_signal_sample_figures_use_a_contract_of_0_01_eth_not_the_instruments_0_1() -> None:
    u, acc = load("okx", FIX / "params", FIX / "accounts")
    m = u.markets[u.market_index["ETH-USDT-SWAP"]]
    assert (m.contract_size, m.mark) == (0.1, 1584.33)
    q = json.loads((FIX / "accounts/signal/positions.json").read_text())["data"][0]
    r = evaluate(u, acc)
    rep = acc.reported
    # The engine (ctVal 0.1): ten times the sample's imr and upl.
    assert r.im[0] == pytest.approx(10 * rep["position_imr"][0], rel=1e-12)
    assert r.upnl[0] == pytest.approx(10 * rep["position_upl"][0], rel=1e-12)
    # The sample's own numbers: 15 × 0.01 ETH at markPx, lever 10.
    notional = 15 * 0.01 * float(q["markPx"])
    assert round(notional / float(q["lever"]), 9) == float(q["imr"]) == 23.76495
    upl = 15 * 0.01 * (float(q["markPx"]) - float(q["avgPx"]))
    assert round(upl, 9) == round(float(q["upl"]), 9) == -2.0115
    # ... and a maintenance rate of 0.8 %, twice tier 1 (0.4 %) of the 2021 table.
    assert round(float(q["mmr"]) / notional, 12) == 0.008
    assert u.markets[0].brackets[0][2] == 0.004
    # With a contract of 0.01 ETH and that rate, the engine gives the sample's imr / mmr / upl.
    p = params()
    p["instruments"]["data"][1]["ctVal"] = "0.01"
    for t in p["position-tiers"]["data"]:
        t["mmr"] = str(float(t["mmr"]) * 2)
    u2 = okx.universe(
        p, marks=acc.marks, leverage=okx.leverages(payload.read_accounts(FIX / "accounts"))
    )
    r2 = evaluate(u2, acc)
    for got, key in ((r2.im, "position_imr"), (r2.mm, "position_mmr"), (r2.upnl, "position_upl")):
        assert round(got[0], 9) == round(rep[key][0], 9), key


# ---- universe: tiers in contracts, inverse contracts, discount tiers --------------------------
def test_okx_tiers_in_contracts_become_notional_brackets() -> None:
    u = okx.universe(params(), marks={"ETH-USDT-SWAP": 2_000.0})
    b = u.markets[0].brackets
    # 3,000 contracts × 0.1 ETH × 2,000 = 600,000 USDT; last bound ∞.
    assert b[0] == (600_000.0, 0.008, 0.004) and b[1] == (1_200_000.0, 0.01, 0.005)
    assert math.isinf(b[-1][0]) and len(b) == 10
    # The same as the preset built from the announcement's table.
    from crossmargin.venues import okx_contract_brackets
    from crossmargin.venues.presets import OKX_ETH_TIERS

    preset = okx_contract_brackets(OKX_ETH_TIERS, 0.1, 2_000.0)  # rates summed in floats
    assert [r[0] for r in b] == [r[0] for r in preset]
    np.testing.assert_allclose([r[1:] for r in b], [r[1:] for r in preset], rtol=1e-15)
    # leverage= raises the initial rate to 1 / lever where the tier's is lower.
    u10 = okx.universe(params(), marks={"ETH-USDT-SWAP": 2_000.0}, leverage={"ETH-USDT-SWAP": 10})
    assert [r[1] for r in u10.markets[0].brackets][:2] == [0.1, 0.1]


def test_okx_inverse_swap_is_inverse_with_usd_contracts() -> None:
    p = params()
    p["position-tiers"]["data"].append(
        {"instFamily": "BTC-USD", "instId": "", "maxSz": "1000", "imr": "0.01", "mmr": "0.005"}
    )
    u = okx.universe(p, marks={"BTC-USD-SWAP": 50_000.0})
    m = u.markets[u.market_index["BTC-USD-SWAP"]]
    assert (m.inverse, m.settle, m.underlying, m.contract_size) == (True, "BTC", "BTC", 100.0)
    # 1,000 contracts × 100 USD / 50,000 = 2 BTC.
    assert m.brackets == ((math.inf, 0.01, 0.005),)
    btc = u.assets[u.asset_index["BTC"]]
    assert btc.price == 50_000.0  # the settle coin at its inverse market's mark


def test_okx_discount_rate_sample_tiers_and_its_discounted_equity() -> None:
    raw = sample("discount-rate")
    row = payload.Node(raw["data"][0], "okx discount-rate.json")
    tiers = okx.discount_tiers(row, 60_000.0)
    # 0–20 BTC at 0.98, 20–25 BTC at 0.9775, above: minDiscountRate 0.
    assert tiers == [(1_200_000.0, 0.98), (1_500_000.0, 0.9775), (math.inf, 0.0)]
    p = params()
    p["discount-rate"] = raw
    u = okx.universe(p, marks={"ETH-USDT-SWAP": 2_000.0}, prices={"BTC": 60_000.0})
    btc = u.assets[u.asset_index["BTC"]]
    assert tuple(btc.haircut_tiers) == tuple(tiers)
    book = cm.Book.from_arrays(balances={"account": [1], "asset": ["BTC"], "qty": [25.0]})
    r = cm.Engine(u, threads=1).evaluate(book)
    # Discounted equity of 25 BTC: 20 × 0.98 + 5 × 0.9775 = 24.4875 BTC.
    assert r.adj_equity_maint[0] == pytest.approx(24.4875 * 60_000.0, rel=1e-12)
    # The sample's disCcyEq ("discount equity in currency ... if your equity is the maxAmt")
    # is 1,000 and 2,000 BTC, not those numbers.
    d = raw["data"][0]["details"]
    assert [float(t["disCcyEq"]) for t in d] == [1000.0, 2000.0]
    assert 20 * 0.98 == pytest.approx(19.6) and 19.6 + 5 * 0.9775 == pytest.approx(24.4875)


# ---- accounts: balances, hedge legs, isolated positions, errors -------------------------------
def test_okx_balance_sample_books_cash_and_its_totals_are_not_its_coins() -> None:
    raw = sample("balance")
    acct = raw["data"][0]
    usdt = acct["details"][0]
    with pytest.raises(cm.BookError, match=r"details\[0\]\.upl: a non-zero upl needs positions"):
        okx.accounts({"b": {"balance": raw}})
    acc = okx.accounts({"b": {"balance": raw, "positions": {"data": []}}})
    assert acc.balances["qty"].tolist() == [float(usdt["cashBal"])]
    assert acc.reported["total_eq"][0] == 55837.43556134779
    # totalEq is not the USD value of the only coin, and eq = cashBal + upl + stgyEq.
    assert float(acct["totalEq"]) - float(usdt["eqUsd"]) == pytest.approx(50845.89354805017)
    assert float(usdt["cashBal"]) + float(usdt["upl"]) + float(usdt["stgyEq"]) == pytest.approx(
        float(usdt["eq"]), abs=1e-9
    )
    assert okx.coin_prices({"b": {"balance": raw}}) == {
        "USDT": float(usdt["eqUsd"]) / float(usdt["eq"])
    }


def test_okx_long_short_mode_and_isolated_rows() -> None:
    rows = [
        {"instId": "ETH-USDT-SWAP", "instType": "SWAP", "pos": "10", "posSide": "long",
         "avgPx": "1500", "mgnMode": "cross", "lever": "10"},
        {"instId": "ETH-USDT-SWAP", "instType": "SWAP", "pos": "4", "posSide": "short",
         "avgPx": "1600", "mgnMode": "isolated", "margin": "64", "lever": "10"},
    ]  # fmt: skip
    acc = okx.accounts({"h": {"positions": {"data": rows}}})
    p = acc.positions
    assert acc.hedged and p["side"].tolist() == ["long", "short"]
    assert p["qty"].tolist() == [10.0, -4.0] and p["isolated_margin"].tolist() == [0.0, 64.0]
    rows[1]["lever"] = "20"
    with pytest.raises(cm.BookError, match=r"held at leverage 20.0 here and 10.0"):
        okx.leverages({"h": {"positions": {"data": rows}}})
    rows[0]["posSide"] = "up"
    with pytest.raises(cm.BookError, match=r"okx h positions\.json: data\[0\]\.posSide: 'up'"):
        okx.accounts({"h": {"positions": {"data": rows}}})


def test_okx_margin_loan_position_is_a_typed_error() -> None:
    """The "Get positions" sample is a MARGIN position (an isolated spot loan of 99.9998
    USDT): not a perp or future of the book."""
    raw = sample("positions")
    with pytest.raises(
        cm.BookError, match=r"data\[0\]\.instType: BTC-USDT: instType 'MARGIN'"
    ) as e:
        okx.accounts({"m": {"positions": raw}})
    assert e.value.column == "okx m positions.json: data[0].instType"


def test_okx_unknown_instrument_missing_tiers_and_fields_are_typed_errors() -> None:
    with pytest.raises(cm.ConfigError, match="unknown instrument 'SOL-USDT-SWAP'"):
        okx.universe(params(), marks={"SOL-USDT-SWAP": 1.0}, symbols=["SOL-USDT-SWAP"])
    with pytest.raises(cm.ConfigError, match="no position tiers for 'BTC-USDT-SWAP'") as e:
        okx.universe(params(), marks={"BTC-USDT-SWAP": 1.0}, symbols=["BTC-USDT-SWAP"])
    assert e.value.field == "okx position-tiers.json: data"
    with pytest.raises(cm.ConfigError, match="no mark for 'ETH-USDT-SWAP'"):
        okx.universe(params(), symbols=["ETH-USDT-SWAP"])
    p = params()
    del p["position-tiers"]["data"][1]["mmr"]
    with pytest.raises(cm.ConfigError, match=r"okx position-tiers\.json: data\[1\]\.mmr: missing"):
        okx.universe(p, marks={"ETH-USDT-SWAP": 1.0})
    p = params()
    p["instruments"]["data"][1]["ctVal"] = True
    with pytest.raises(cm.ConfigTypeError, match=r"data\[1\]\.ctVal: expected a number"):
        okx.universe(p, marks={"ETH-USDT-SWAP": 1.0})
    with pytest.raises(cm.ConfigError, match=r"okx instruments\.json: missing payload"):
        okx.universe({"position-tiers": {"data": []}})
    with pytest.raises(cm.BookError, match=r"okx a positions\.json: missing payload"):
        okx.accounts({"a": {}})


def test_okx_payload_parts_and_mark_price_payload() -> None:
    """``instruments.swap.json`` parts and ``mark-price.json`` marks (OKX "Get mark price"
    layout); ``marks=`` wins over the payload's."""
    p = params()
    p["instruments.swap"] = p.pop("instruments")
    row = {"instId": "ETH-USDT-SWAP", "instType": "SWAP", "markPx": "1584.33"}
    p["mark-price"] = {"code": "0", "data": [row]}
    u = okx.universe(p)
    assert u.markets[0].mark == 1584.33 and u.markets[0].brackets[0][0] == 3_000 * 0.1 * 1584.33
    assert okx.universe(p, marks={"ETH-USDT-SWAP": 1600.0}).markets[0].mark == 1600.0
