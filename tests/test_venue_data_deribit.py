"""Deribit payloads (crossmargin.venues.data.deribit): inverse futures from get_instruments with
the preset's margin rule, books from get_positions / get_account_summary, and the figures of
Deribit's documentation samples reproduced from their own numbers.

Fixtures and sources: tests/fixtures/venues/deribit/README.md (https://docs.deribit.com/).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.venues.data import deribit, load, payload

FIX = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "venues" / "deribit"


def params() -> dict:
    return payload.read_params(FIX / "params")


def position() -> dict:
    return json.loads((FIX / "accounts/doc/positions.json").read_text())["result"][0]


def test_deribit_position_sample_pnl_is_the_inverse_upnl_of_9_decimal_legs() -> None:
    u, acc = load("deribit", FIX / "params", FIX / "accounts")
    m = u.markets[u.market_index["BTC-PERPETUAL"]]
    assert (m.kind, m.settle, m.inverse, m.contract_size, m.mark) == (
        "perp", "BTC", True, 1.0, 7476.65
    )  # fmt: skip
    assert acc.positions["qty"].tolist() == [50.0]  # USD
    book = acc.book()
    r = cm.Engine(u, threads=1).evaluate(book)
    ref = reference.evaluate(u, book)
    np.testing.assert_allclose(r.upnl, ref.upnl, rtol=1e-12)
    btc = u.assets[u.asset_index["BTC"]].price
    q = position()
    upnl = r.upnl[0] / btc  # BTC
    assert upnl == pytest.approx(50 * (1 / 7440.18 - 1 / 7476.65), rel=1e-12)
    # Deribit: each leg at 9 decimals, then the difference.
    legs = round(50 / q["average_price"], 9) - round(50 / q["mark_price"], 9)
    assert round(legs, 9) == q["total_profit_loss"] == 0.000032781
    assert abs(upnl - q["total_profit_loss"]) < 1e-9 and round(upnl, 9) != q["total_profit_loss"]
    assert round(50 / q["mark_price"], 9) == q["size_currency"] == q["delta"]


def test_deribit_position_sample_margins_follow_another_rule_than_todays() -> None:
    u, acc = load("deribit", FIX / "params", FIX / "accounts")
    q = position()
    n = q["size_currency"]
    assert round(q["initial_margin"] / n, 4) == 0.0295
    assert round(q["maintenance_margin"] / n, 4) == 0.0215
    r = cm.Engine(u, threads=1).evaluate(acc.book())
    btc = u.assets[u.asset_index["BTC"]].price
    # The preset's rule at N = 0.0067 BTC, exact: 2 % + 0.005 %·N and 1.5 % + 0.005 %·N.
    notional = 50 / q["mark_price"]
    assert r.im[0] / btc == pytest.approx(notional * (0.02 + 0.00005 * notional), rel=1e-12)
    assert r.mm[0] / btc == pytest.approx(notional * (0.015 + 0.00005 * notional), rel=1e-12)
    assert acc.reported["position_initial_margin_BTC"][0] == q["initial_margin"]
    # With the sample's rates as the rule's base, the engine gives its figures (9 decimals).
    u2 = deribit.universe(params(), marks=acc.marks, im_base=0.0295, mm_base=0.0215, slope=0.0)
    r2 = cm.Engine(u2, threads=1).evaluate(acc.book())
    assert abs(r2.im[0] / btc - q["initial_margin"]) < 5e-9
    assert abs(r2.mm[0] / btc - q["maintenance_margin"]) < 5e-9


def test_deribit_account_summary_identities_and_balances() -> None:
    raw = json.loads((FIX / "samples/account_summaries.json").read_text())
    s = next(x for x in raw["result"]["summaries"] if x["currency"] == "BTC")
    assert s["balance"] + s["futures_session_upl"] + s["futures_session_rpl"] + s[
        "options_value"
    ] == pytest.approx(s["equity"], abs=1.5e-8)  # 8-decimal figures: one unit of rounding
    assert s["futures_session_upl"] + s["options_session_upl"] == pytest.approx(
        s["session_upl"], abs=1e-12
    )
    assert s["equity"] - s["options_value"] == pytest.approx(s["margin_balance"], abs=1e-12)
    acc = deribit.accounts({"user": {"account_summaries": raw}})
    ccys = [x["currency"] for x in raw["result"]["summaries"]]
    assert acc.balances["asset"].tolist() == ccys
    assert acc.reported["equity_BTC"][0] == s["equity"]
    assert acc.reported["maintenance_margin_BTC"][0] == s["maintenance_margin"] == 0.8857841


def test_deribit_universe_reads_inverse_futures_and_refuses_others() -> None:
    u = deribit.universe(params(), marks={"BTC-PERPETUAL": 60_000.0, "BTC-27DEC24": 61_000.0})
    assert [(m.symbol, m.kind) for m in u.markets] == [
        ("BTC-PERPETUAL", "perp"),
        ("BTC-27DEC24", "future"),
    ]
    assert math.isinf(u.markets[0].brackets[-1][0])
    with pytest.raises(cm.ConfigError, match=r"BTC-27DEC24-100000-C: kind 'option' is not read"):
        deribit.universe(params(), marks={"BTC-27DEC24-100000-C": 0.01},
                         symbols=["BTC-27DEC24-100000-C"])  # fmt: skip
    with pytest.raises(cm.ConfigError, match="unknown instrument 'ETH-PERPETUAL'"):
        deribit.universe(params(), marks={"ETH-PERPETUAL": 1.0}, symbols=["ETH-PERPETUAL"])
    with pytest.raises(cm.ConfigError, match="no mark for 'BTC-PERPETUAL'"):
        deribit.universe(params(), symbols=["BTC-PERPETUAL"])
    p = params()
    del p["instruments"]["result"][0]["settlement_currency"]
    with pytest.raises(
        cm.ConfigError,
        match=r"deribit instruments\.json: result\[0\]\.settlement_currency: missing",
    ):
        deribit.universe(p, marks={"BTC-PERPETUAL": 1.0})


def test_deribit_short_and_option_positions() -> None:
    q = position()
    q = {**q, "direction": "sell", "size": -50}
    acc = deribit.accounts({"s": {"positions": {"result": [q]}}})
    assert acc.positions["qty"].tolist() == [-50.0]
    opt = {**q, "kind": "option", "instrument_name": "BTC-27DEC24-100000-C"}
    with pytest.raises(cm.BookError, match=r"result\[0\]\.kind: BTC-27DEC24-100000-C") as e:
        deribit.accounts({"o": {"positions": {"result": [opt]}}})
    assert e.value.column == "deribit o positions.json: result[0].kind"
    with pytest.raises(cm.BookError, match=r"deribit x positions\.json: missing payload"):
        deribit.accounts({"x": {}})


def test_deribit_ticker_marks_and_rule_parameters() -> None:
    p = params()
    p["ticker"] = {"jsonrpc": "2.0", "result": {"instrument_name": "BTC-PERPETUAL",
                                                "mark_price": 7476.65}}  # fmt: skip
    u = deribit.universe(p)
    assert [m.symbol for m in u.markets] == ["BTC-PERPETUAL"] and u.markets[0].mark == 7476.65
    # 25 BTC at 2 % + 0.5 % per 100 BTC: 25 × 2.125 % = 0.53125 BTC (Deribit's example,
    # docs/MODEL.md "Venue presets").
    book = cm.Book.from_arrays(
        positions={"account": [1], "market": ["BTC-PERPETUAL"], "qty": [25 * 7476.65],
                   "entry_price": [7476.65]}
    )  # fmt: skip
    r = cm.Engine(u, threads=1).evaluate(book)
    assert r.im[0] / 7476.65 == pytest.approx(0.53125, rel=1e-12)
