"""Real venue data in (crossmargin.venues.data): each adapter on its fixture payloads, the
engine against the margin figures the venue returns in the same payloads, and the typed
errors of the parsing toolkit.

Fixtures are under tests/fixtures/venues/<venue>/, each folder's README cites its page or
recorded source, date and rule version. Where a documentation sample is internally
inconsistent, the test shows the inconsistency from the payload's own numbers.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference
from crossmargin.venues.data import VENUES, binance, bybit, dydx, hyperliquid, load, payload
from crossmargin.venues.data.payload import Node, account_id, round_down
from helpers import run
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "venues"


def params(venue: str) -> dict:
    return payload.read_params(FIX / venue / "params")


def accounts(venue: str) -> dict:
    return payload.read_accounts(FIX / venue / "accounts")


def per_position(u: cm.Universe, acc: payload.Imported) -> cm.MarginResult:
    """Each position as its own account (ids 0..n-1 in row order), no balances: the
    engine's im / mm of each position alone."""
    p = acc.positions
    book = cm.Book.from_arrays(
        positions={
            "account": np.arange(len(p)),
            "market": p["market"],
            "qty": p["qty"],
            "entry_price": p["entry_price"],
            "isolated_margin": p["isolated_margin"],
        }
    )
    r = cm.Engine(u, threads=1).evaluate(book)
    ref = reference.evaluate(u, book)
    np.testing.assert_allclose(r.mm, ref.mm, rtol=1e-12)
    np.testing.assert_allclose(r.im, ref.im, rtol=1e-12)
    return r


# ---- the toolkit ---------------------------------------------------------------------------
def test_decimal_strings_are_correctly_rounded_and_fixed_point_is_exact() -> None:
    n = Node({"a": "0.1", "b": 3, "c": "1e-3", "d": " 2.50 "}, "t.json")
    assert n.num("a") == 0.1 and n.num("b") == 3.0 and n.num("c") == 0.001 and n.num("d") == 2.5
    # Just above the tie between two floats: one correctly rounded step goes up.
    with localcontext() as ctx:
        ctx.prec = 200
        lo, hi = Decimal.from_float(0.1), Decimal.from_float(math.nextafter(0.1, 1))
        tie = lo + (hi - lo) / 2
        above, below = str(tie + Decimal("1e-60")), str(tie - Decimal("1e-60"))
    assert Node(above, "t").num() == math.nextafter(0.1, 1)
    assert Node(below, "t").num() == 0.1
    assert Node("99.206819554", "t").fixed(9) == 99_206_819_554
    assert Node("0.00000001", "t").fixed(8) == 1
    with pytest.raises(cm.ConfigError, match=r"t: \(top level\): '0.123' has more than 2 decimals"):
        Node("0.123", "t").fixed(2)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({"x": "abc"}, cm.ConfigError, "p.json: x: 'abc' is not a decimal number"),
        ({"x": "NaN"}, cm.ConfigError, "p.json: x: 'NaN' is not a finite number"),
        ({"x": "1e400"}, cm.ConfigError, "p.json: x: '1e400' is out of the float64 range"),
        ({"x": True}, cm.ConfigTypeError, "p.json: x: expected a number, got a boolean"),
        ({"x": None}, cm.ConfigError, "p.json: x: missing"),
        ({}, cm.ConfigError, "p.json: x: missing"),
        ([1], cm.ConfigTypeError, r"p.json: \(top level\): expected an object, got a list"),
    ],
)
def test_bad_values_are_typed_errors_naming_payload_and_field(value, error, message) -> None:
    with pytest.raises(error, match=message) as e:
        Node(value, "p.json").num("x")
    assert e.value.field is not None and e.value.field.startswith("p.json")


def test_account_payload_errors_are_book_errors_naming_the_field() -> None:
    n = Node({"positions": [{"qty": "1"}, {"qty": []}]}, "v a.json", payload.ACCOUNTS)
    with pytest.raises(cm.BookTypeError, match=r"v a.json: positions\[1\].qty: expected a number"):
        [q.num("qty") for q in n.list("positions")]
    with pytest.raises(cm.BookError) as e:
        n["positions"].items().__next__()["entryPrice"]
    assert e.value.column == "v a.json: positions[0].entryPrice"


def test_string_account_ids_map_to_stable_int64_ids() -> None:
    assert account_id("12345") == 12345
    a = account_id("0x5e9ee1089755c3435139848e47e6635505d5a13a")
    assert 0 <= a < 2**63 and a == account_id("0x5e9ee1089755c3435139848e47e6635505d5a13a")
    ids = payload.AccountIds()
    assert ids("bob") == account_id("bob") and ids("7") == 7
    t = ids.table()
    assert sorted(t["name"].tolist()) == ["7", "bob"]
    assert dict(zip(t["name"], t["account"], strict=True)) == {"7": 7, "bob": account_id("bob")}


def test_truncation_to_the_venues_decimals() -> None:
    assert round_down(0.4972023376, 8) == 0.49720233  # Binance truncates, never rounds up
    assert round_down(2.486011688, 8) == 2.48601168
    assert round_down(-0.00029413, 8) == -0.00029413


# ---- Binance USDⓈ-M ----------------------------------------------------------------------------
# Fixture: tests/fixtures/venues/binance/README.md ("Position Information V3" samples,
# https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Position-Information-V3,
# brackets as captured 2024-07-11).
def test_binance_one_way_payload_loads_into_a_book() -> None:
    acc = binance.accounts({"oneway": accounts("binance")["oneway"]})
    assert not acc.hedged
    assert acc.positions["side"].tolist() == ["both"]
    book = acc.book()
    assert book.n_accounts == 1 and book.positions["qty"].tolist() == [30.0]
    assert acc.marks == {"ADAUSDT": 0.4104759}


def test_binance_hedge_mode_payload_gives_sides() -> None:
    acc = binance.accounts({"hedge": accounts("binance")["hedge"]})
    p = acc.positions
    assert acc.hedged
    assert list(zip(p["market"], p["qty"], p["side"], strict=True)) == [
        ("ADAUSDT", 30.0, "long"),
        ("COMPUSDT", -1.0, "short"),
    ]


def test_binance_brackets_rebuild_the_published_maintenance_amounts() -> None:
    u = binance.universe(params("binance"), marks={"ADAUSDT": 1.0, "COMPUSDT": 1.0})
    raw = {s["symbol"]: s["brackets"] for s in params("binance")["leverageBracket"]}
    for sym, rows in raw.items():
        got = [r[4] for r in u.brackets_with_amounts(sym)]
        assert got == pytest.approx([b["cum"] for b in rows], abs=1e-9), sym


def test_binance_engine_reproduces_comp_margins_truncated_to_8_decimals() -> None:
    acc = binance.accounts(accounts("binance"))
    p = acc.positions
    # The v3 payload carries no leverage field: the sample's leverage is notional / IM.
    comp = json.loads((FIX / "binance/accounts/hedge/positionRisk.json").read_text())[1]
    lev = round(abs(float(comp["notional"])) / float(comp["initialMargin"]))
    assert lev == 20
    u = binance.universe(
        params("binance"), marks=acc.marks, leverage={"COMPUSDT": 20, "ADAUSDT": 20}
    )
    r = per_position(u, acc)
    k = int(np.flatnonzero(p["market"] == "COMPUSDT")[0])
    assert round_down(r.mm[k], 8) == float(comp["maintMargin"]) == 0.49720233
    assert round_down(r.im[k], 8) == float(comp["initialMargin"]) == 2.48601168
    assert round_down(r.upnl[k], 8) == float(comp["unRealizedProfit"])
    ada = [k for k in range(len(p)) if p["market"][k] == "ADAUSDT"]
    for k in ada:  # IM = 12.314277 / 20, exact
        assert round_down(r.im[k], 8) == 0.61571385
        assert round_down(r.upnl[k], 8) == 0.764277


def test_binance_ada_sample_maintenance_rate_is_not_the_bracket_of_its_day() -> None:
    """The sample's ADAUSDT maintMargin / notional is 0.65 %; the bracket Binance served that
    day for a 12.31 USDT notional (≤ 5,000) is 0.5 %, which the engine applies."""
    ada = json.loads((FIX / "binance/accounts/oneway/positionRisk.json").read_text())[0]
    notional, mm = float(ada["notional"]), float(ada["maintMargin"])
    assert mm / notional == pytest.approx(0.0065, abs=1e-9)
    first = params("binance")["leverageBracket"][0]["brackets"][0]
    assert (first["notionalCap"], first["maintMarginRatio"]) == (5000, 0.005)
    acc = binance.accounts({"oneway": accounts("binance")["oneway"]})
    r = per_position(binance.universe(params("binance"), marks=acc.marks), acc)
    assert round_down(r.mm[0], 8) == 0.06157138  # 12.314277 × 0.005, not 0.08004280
    assert round_down(r.mm[0], 8) != mm


def test_binance_account_sample_is_inconsistent_in_its_own_numbers() -> None:
    """ "Account Information V2" single-asset sample: BTCUSDT holds 1.000 contract with a
    notional of 0 and no maintenance margin, and the "only USDT" totals are the USDC wallet's."""
    s = json.loads((FIX / "binance/samples/account_v2_single_asset.json").read_text())
    pos = s["positions"][0]
    assert float(pos["positionAmt"]) == 1.0 and float(pos["notional"]) == 0.0
    assert float(pos["maintMargin"]) == 0.0  # |1 × mark| × mmr > 0 for any mark
    usdt = next(a for a in s["assets"] if a["asset"] == "USDT")
    assert float(s["totalWalletBalance"]) - float(usdt["walletBalance"]) == pytest.approx(
        79.39876472
    )
    usdc = next(a for a in s["assets"] if a["asset"] == "USDC")
    assert s["totalWalletBalance"] == usdc["walletBalance"]
    # And the adapter will not book that position without an entry price.
    with pytest.raises(cm.BookError, match=r"open positions \(BTCUSDT\) need positionRisk\.json"):
        binance.accounts({"sample": {"account": s}})


def test_binance_unknown_symbol_and_missing_field_are_typed_errors() -> None:
    with pytest.raises(cm.ConfigError, match="unknown symbol 'BTCUSDT'") as e:
        binance.universe(params("binance"), marks={"BTCUSDT": 1.0}, symbols=["BTCUSDT"])
    assert e.value.field == "binance leverageBracket.json: symbol"
    with pytest.raises(cm.ConfigError, match="no mark for 'ADAUSDT'"):
        binance.universe(params("binance"), symbols=["ADAUSDT"])
    broken = params("binance")
    del broken["leverageBracket"][1]["brackets"][2]["maintMarginRatio"]
    with pytest.raises(
        cm.ConfigError,
        match=r"binance leverageBracket.json: \[1\].brackets\[2\].maintMarginRatio: missing",
    ):
        binance.universe(broken, marks={"COMPUSDT": 1.0})
    with pytest.raises(cm.ConfigError, match=r"binance exchangeInfo\.json: missing payload"):
        binance.universe({"leverageBracket": []})
    bad = {"x": {"positionRisk": [{"symbol": "ADAUSDT", "positionAmt": "1", "positionSide": "UP"}]}}
    with pytest.raises(cm.BookError, match=r"positionRisk.json: \[0\].positionSide: 'UP'"):
        binance.accounts(bad)


def test_binance_multi_assets_collateral_from_the_asset_index() -> None:
    """Multi-Assets mode: an asset counts at index × (1 − bidBuffer), the sample's bidRate."""
    p = params("binance")
    p["assetIndex"] = json.loads((FIX / "binance/samples/assetIndex.json").read_text())
    u = binance.universe(p, marks={"COMPUSDT": 49.72023376})
    ada = u.assets[u.asset_index["ADA"]]
    assert (ada.price, ada.weight_initial, ada.weight_maint) == (1.9295737, 0.9, 0.9)
    book = cm.Book.from_arrays(balances={"account": [1], "asset": ["ADA"], "qty": [1.0]})
    r = cm.Engine(u, threads=1).evaluate(book)
    assert round_down(r.adj_equity_maint[0], 8) == 1.73661633  # bidRate


def test_binance_unknown_fields_are_ignored() -> None:
    p = params("binance")
    for s in p["leverageBracket"]:
        s["somethingNew"] = {"nested": [1, 2]}
        for b in s["brackets"]:
            b["newField"] = "x"
    marks = {"ADAUSDT": 0.4104759, "COMPUSDT": 49.72023376}
    assert binance.universe(p, marks=marks) == binance.universe(params("binance"), marks=marks)


# ---- Hyperliquid -------------------------------------------------------------------------
# Fixtures: responses recorded by hyperliquid-dex/hyperliquid-python-sdk's test cassettes
# (tests/fixtures/venues/hyperliquid/README.md).
def test_hyperliquid_engine_reproduces_account_value_margin_used_and_withdrawable() -> None:
    raw = accounts("hyperliquid")
    acc = hyperliquid.accounts(raw)
    lev = hyperliquid.leverages(raw)
    assert set(lev.values()) == {20.0}
    u = hyperliquid.universe(params("hyperliquid"), marks=acc.marks, leverage=lev)
    r = cm.Engine(u, threads=1).evaluate(acc.book())
    rep = acc.reported
    # USDC at 6 decimals: the engine's figures rounded there are the payload's.
    assert round(r.equity[0], 6) == rep["account_value"][0] == 1182.312496
    assert round(r.free_collateral[0], 5) == rep["withdrawable"][0] == 1010.57173
    state = next(iter(raw.values()))[""]
    total = sum(abs(float(a["position"]["szi"])) * acc.marks[a["position"]["coin"]]
                for a in state["assetPositions"])  # fmt: skip
    assert round(total, 6) == rep["total_ntl_pos"][0]
    # Each position's margin used is its notional / 20, truncated to 6 decimals; the total is
    # their sum (so it is below the engine's unrounded IM by less than 12 × 1e-6).
    rp = per_position(u, acc)
    used = [float(a["position"]["marginUsed"]) for a in state["assetPositions"]]
    assert [round_down(x, 6) for x in rp.im] == used
    assert sum(Decimal(a["position"]["marginUsed"]) for a in state["assetPositions"]) == Decimal(
        state["marginSummary"]["totalMarginUsed"]
    )
    assert 0 < r.im[0] - rep["total_margin_used"][0] < 12e-6


def test_hyperliquid_maintenance_is_half_the_initial_rate_at_max_leverage() -> None:
    acc = hyperliquid.accounts(accounts("hyperliquid"))
    u = hyperliquid.universe(params("hyperliquid"), marks=acc.marks)
    r = cm.Engine(u, threads=1).evaluate(acc.book())
    assert r.mm[0] == pytest.approx(3434.815334 / 100, rel=1e-9)  # maxLeverage 50 → 1 %
    assert r.im[0] == pytest.approx(3434.815334 / 50, rel=1e-9)


def test_hyperliquid_margin_tables_of_the_docs_sample() -> None:
    meta = json.loads((FIX / "hyperliquid/samples/meta_docs.json").read_text())
    meta["universe"][1]["marginTableId"] = 51  # ETH on the "tiered 10x" table
    u = hyperliquid.universe({"meta": meta}, marks={"BTC": 60_000.0, "ETH": 3_000.0, "HPOS": 1.0})
    assert u.market_index == {"BTC": 0, "ETH": 1, "HPOS": 2}
    assert u.markets[0].brackets == ((math.inf, 0.02, 0.01),)
    assert u.markets[1].brackets == ((3e6, 0.1, 0.05), (math.inf, 0.2, 0.1))
    # Hyperliquid "Margin tiers": deduction = 3M × (0.1 − 0.05) = 150,000 at the second tier.
    assert u.brackets_with_amounts("ETH")[1][4] == pytest.approx(150_000.0)
    with pytest.raises(cm.ConfigError, match="unknown coin 'DOGE'"):
        hyperliquid.universe({"meta": meta}, marks={"DOGE": 1.0}, symbols=["DOGE"])


def test_hyperliquid_isolated_position_keeps_account_value() -> None:
    state = json.loads(next((FIX / "hyperliquid/accounts").glob("*.json")).read_text())
    pos = state["assetPositions"][0]["position"]  # BTC short, made isolated
    pos["leverage"] = {"type": "isolated", "value": 20, "rawUsd": "222.0"}
    acc = hyperliquid.accounts({"a": {"": state}})
    k = int(np.flatnonzero(acc.positions["market"] == "BTC")[0])
    assert acc.positions["isolated_margin"][k] == pytest.approx(10.582271 + 0.08007)
    u = hyperliquid.universe(params("hyperliquid"), marks=acc.marks)
    r = cm.Engine(u, threads=1).evaluate(acc.book())
    assert r.equity[0] == pytest.approx(1182.312496, abs=1e-9)


# ---- dYdX v4 --------------------------------------------------------------------------------
# Fixtures: indexer responses recorded in NautilusTrader's test data
# (tests/fixtures/venues/dydx/README.md).
def test_dydx_engine_reproduces_equity_and_free_collateral() -> None:
    acc = dydx.accounts(accounts("dydx"))
    u = dydx.universe(params("dydx"), marks=acc.marks)
    r = cm.Engine(u, threads=1).evaluate(acc.book())
    ref = reference.evaluate(u, acc.book())
    assert r.equity[0] == pytest.approx(ref.equity[0], rel=1e-12)
    # The indexer prints equity at 9 decimals and free collateral at 10.
    assert round(r.equity[0], 9) == acc.reported["equity"][0] == 99.206819554
    assert round(r.free_collateral[0], 10) == acc.reported["free_collateral"][0] == 98.7695751763
    assert acc.accounts["name"].tolist() == ["dydx1kzsvkf2ghjqlysuffdkhcdctknl4rsvcx5hkm5/0"]


def test_dydx_open_interest_scaling_from_the_markets_payload() -> None:
    u = dydx.universe(params("dydx"))
    # COMP-USD: IMF 0.2, OI 3,302.5 × 51.54 ≈ 170k USD, caps 5M / 10M → base IMF.
    assert u.markets[u.market_index["COMP-USD"]].brackets == ((math.inf, 0.2, 0.1),)
    p = params("dydx")
    p["perpetualMarkets"]["markets"]["COMP-USD"]["openInterest"] = str(7.5e6 / 51.54015403)
    u = dydx.universe(p)
    imr = u.markets[u.market_index["COMP-USD"]].brackets[0][1]
    assert imr == pytest.approx(0.2 + 0.5 * 0.8)  # halfway between the caps
    with pytest.raises(cm.ConfigError, match="unknown market 'XYZ-USD'"):
        dydx.universe(p, symbols=["XYZ-USD"])


# ---- every venue ---------------------------------------------------------------------------
@pytest.mark.parametrize("venue", list(VENUES))
def test_each_venue_fixture_imports_into_a_universe_and_book(venue: str) -> None:
    u, acc = load(venue, FIX / venue / "params", FIX / venue / "accounts")
    assert len(acc.accounts) >= 1 and len(acc.reported) == len(acc.accounts)
    # hedge-mode payloads (Binance's "hedge" sample) load too: the book reads ``side``
    book = acc.book()
    r = cm.Engine(u, threads=1).evaluate(book)
    assert np.isfinite(r.equity).all()
    assert set(r.account) == set(acc.accounts["account"])
    assert bool(np.any(book.positions["side"] != 0)) == acc.hedged
    # The universe round-trips through TOML (what `crossmargin import` writes).
    from crossmargin.venues import to_toml

    text = to_toml(u)
    import tomllib

    assert cm.Universe.from_dict(tomllib.loads(text)) == u


def test_results_do_not_depend_on_payload_order() -> None:
    raw = accounts("binance")
    a = binance.accounts(raw)
    b = binance.accounts(dict(reversed(list(raw.items()))))
    for t in ("balances", "positions", "accounts", "reported"):
        x, y = getattr(a, t), getattr(b, t)
        assert x.columns == y.columns
        for c in x.columns:
            np.testing.assert_array_equal(x[c], y[c])


# ---- the command line ----------------------------------------------------------------------
def test_cli_import_writes_a_book_every_command_reads(script: str, tmp_path: Path) -> None:
    v = FIX / "dydx"
    p = run(script, "import", "dydx", "--params", str(v / "params"), "--accounts",
            str(v / "accounts"), "--out", "book", "--json", cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert (summary["accounts"], summary["positions"], summary["markets"]) == (1, 1, 4)
    names = sorted(x.name for x in (tmp_path / "book").iterdir())
    assert names == sorted(
        [
            "accounts.csv",
            "balances.parquet",
            "positions.parquet",
            "reported.parquet",
            "universe.toml",
        ]
    )
    p = run(script, "margin", "book", "-u", "book/universe.toml", "-o", "out", "-q", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    import pandas as pd

    m = pd.read_parquet(tmp_path / "out" / "margin.parquet")
    assert round(float(m["free_collateral"][0]), 10) == 98.7695751763
    # An unknown venue, and a second import into the same folder: one-line errors, exit 2.
    p = run(script, "import", "nowhere", "--params", ".", "--accounts", ".", "--out", "x",
            cwd=tmp_path)  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"error: venue: 'nowhere' is not one of {', '.join(VENUES)}"
    ]
    p = run(script, "import", "dydx", "--params", str(v / "params"), "--accounts",
            str(v / "accounts"), "--out", "book", cwd=tmp_path)  # fmt: skip
    assert p.returncode == 2 and "already holds" in p.stderr and "Traceback" not in p.stderr


# ---- Bybit v5 ------------------------------------------------------------------------------
# Fixtures: the v5 documentation samples (tests/fixtures/venues/bybit/README.md).
def test_bybit_inverse_position_sample_upnl_is_reproduced() -> None:
    u, acc = load("bybit", FIX / "bybit" / "params", FIX / "bybit" / "accounts")
    assert list(zip(acc.positions["market"], acc.positions["qty"], strict=True)) == [
        ("BTCUSD", -300.0)
    ]
    m = u.markets[0]
    assert (m.inverse, m.settle, m.contract_size) == (True, "BTC", 1.0)
    r = cm.Engine(u, threads=1).evaluate(acc.book())
    btc = u.assets[u.asset_index["BTC"]].price  # the mark: BTC valued at 28,224.50
    sample = json.loads((FIX / "bybit/accounts/doc-inverse/position-list.json").read_text())
    pos = sample["result"]["list"][0]
    # 300 × (1/28224.50 − 1/27464.50441675) BTC, Bybit's 8 decimals.
    assert round(r.upnl[0] / btc, 8) == float(pos["unrealisedPnl"]) == -0.00029413
    # positionValue is the notional at entry: 300 / avgPrice.
    assert round(300 / float(pos["avgPrice"]), 8) == float(pos["positionValue"])


def test_bybit_risk_limit_sample_rates_are_percents() -> None:
    """The risk-limit sample gives initialMargin "1" and maintenanceMargin "0.5" with
    maxLeverage "100.00": 1 / 100 = 0.01 is the sample's rate in percent, and the position
    sample's positionIM is positionValue × 0.01. Read as the API's fractions the tier asks
    100 % / 50 %, so the engine finds that account bankrupt under it."""
    tier = params("bybit")["risk-limit.inverse"]["result"]["list"][0]
    assert float(tier["initialMargin"]) * float(tier["maxLeverage"]) == 100.0
    pos = json.loads((FIX / "bybit/accounts/doc-inverse/position-list.json").read_text())
    pos = pos["result"]["list"][0]
    assert float(pos["positionIM"]) == round_down(float(pos["positionValue"]) * 0.01, 8)
    assert float(pos["positionIM"]) != round_down(float(pos["positionValue"]) * 1.0, 8)
    # positionMM is not positionValue × any tier rate of the sample (0.5 % or 50 %).
    ratio = float(pos["positionMM"]) / float(pos["positionValue"])
    assert ratio == pytest.approx(1.373e-4, rel=1e-3)
    u, acc = load("bybit", FIX / "bybit" / "params", FIX / "bybit" / "accounts")
    assert u.markets[0].brackets == ((math.inf, 1.0, 0.5),)
    assert cm.Engine(u, threads=1).evaluate(acc.book()).liquidatable[0]


def test_bybit_wallet_sample_totals_are_not_its_coins() -> None:
    s = json.loads((FIX / "bybit/samples/wallet-balance.json").read_text())
    acct = s["result"]["list"][0]
    coins = acct["coin"]
    assert [c["coin"] for c in coins] == ["BTC"]
    assert sum(float(c["usdValue"]) for c in coins) == 0.0
    assert float(acct["totalEquity"]) == 3.31216591  # ... yet the total equity is not 0
    assert float(acct["totalWalletBalance"]) == 3.00326056
    acc = bybit.accounts({"sample": {"wallet-balance": s}})
    assert acc.reported["total_equity"][0] == 3.31216591
    assert acc.balances["qty"].tolist() == [0.0]


def test_bybit_hedge_mode_and_isolated_rows() -> None:
    rows = [
        {"symbol": "BTCUSD", "side": "Buy", "size": "100", "avgPrice": "30000",
         "positionIdx": 1, "tradeMode": 0},
        {"symbol": "BTCUSD", "side": "Sell", "size": "50", "avgPrice": "31000",
         "positionIdx": 2, "tradeMode": 1, "positionBalance": "0.001"},
    ]  # fmt: skip
    acc = bybit.accounts({"h": {"position-list": {"result": {"list": rows}}}})
    p = acc.positions
    assert p["side"].tolist() == ["long", "short"] and p["qty"].tolist() == [100.0, -50.0]
    assert p["isolated_margin"].tolist() == [0.0, 0.001]
    rows[0]["side"] = "Up"
    with pytest.raises(cm.BookError, match=r"position-list\.json: result\.list\[0\]\.side"):
        bybit.accounts({"h": {"position-list": {"result": {"list": rows}}}})
    wallet = {"result": {"list": [{"coin": [{"coin": "USDT", "walletBalance": "5",
                                              "unrealisedPnl": "-1"}]}]}}  # fmt: skip
    with pytest.raises(cm.BookError, match=r"needs position-list\.json"):
        bybit.accounts({"w": {"wallet-balance": wallet}})


def test_bybit_hedge_mode_payload_is_margined_leg_by_leg() -> None:
    # Both legs of BTCUSD in one account (positionIdx 1 / 2, cross): the book keeps them
    # apart and the engine margins each leg on its own (docs/MODEL.md "Book"), with the
    # market's step shape, entry-basis maintenance and fee reserve like any position.
    rows = [
        {"symbol": "BTCUSD", "side": "Buy", "size": "3000", "avgPrice": "30000",
         "positionIdx": 1, "tradeMode": 0},
        {"symbol": "BTCUSD", "side": "Sell", "size": "1000", "avgPrice": "31000",
         "positionIdx": 2, "tradeMode": 0},
    ]  # fmt: skip
    wallet = {"result": {"list": [{"coin": [{"coin": "BTC", "walletBalance": "1",
                                              "unrealisedPnl": "0"}]}]}}  # fmt: skip
    acc = bybit.accounts(
        {"h": {"position-list": {"result": {"list": rows}}, "wallet-balance": wallet}}
    )
    assert acc.hedged
    u = bybit.universe(params("bybit"), marks={"BTCUSD": 30_500.0, "BTCUSDT": 30_500.0})
    book = acc.book()
    assert book.positions["side"].tolist() == [1, 2]  # long, short (_core.POSITION_SIDES)
    engine = cm.Engine(u, threads=1)
    r = engine.evaluate(book)
    legs = per_position(u, acc)
    assert r.im[0] == pytest.approx(legs.im.sum(), rel=1e-12)
    assert r.mm[0] == pytest.approx(legs.mm.sum(), rel=1e-12)
    ref = reference.evaluate(u, book)
    np.testing.assert_allclose(r.mm, ref.mm, rtol=1e-9)
    np.testing.assert_allclose(r.im, ref.im, rtol=1e-9)
    # The net position (long 2,000) alone asks less than the two legs.
    net = cm.Book.from_arrays(
        acc.balances.to_dict(),
        {"account": [r.account[0]], "market": ["BTCUSD"], "qty": [2_000.0],
         "entry_price": [30_000.0]},
    )  # fmt: skip
    assert engine.evaluate(net).mm[0] < r.mm[0]
    liq = engine.liquidation_prices(book, move="mark")
    assert liq["side"].tolist() == ["long", "short"]
    assert "bankruptcy_price" in liq


def test_bybit_collateral_ratio_is_the_assets_weight() -> None:
    u = bybit.universe(params("bybit"), marks={"BTCUSD": 28_224.5, "BTCUSDT": 28_000.0})
    btc = u.assets[u.asset_index["BTC"]]
    assert (btc.weight_initial, btc.weight_maint) == (0.95, 0.95)
    # Only BTCUSD has risk limits in the fixtures: BTCUSDT has a mark but no tiers.
    assert set(u.market_index) == {"BTCUSD"}
    with pytest.raises(
        cm.ConfigError, match=r"bybit risk-limit\.inverse\.json: list: unknown symbol 'BTCUSDT'"
    ):
        bybit.universe(params("bybit"), marks={"BTCUSDT": 28_000.0}, symbols=["BTCUSDT"])


# ---- properties of the toolkit -------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    digits=st.integers(min_value=0, max_value=10**30),
    scale=st.integers(min_value=0, max_value=40),
    sign=st.sampled_from(["", "-"]),
)
def test_decimal_strings_round_to_the_nearest_float(digits: int, scale: int, sign: str) -> None:
    whole = str(digits).rjust(scale + 1, "0")
    text = f"{sign}{whole[: len(whole) - scale]}" + (
        f".{whole[len(whole) - scale :]}" if scale else ""
    )
    exact = Fraction(text)
    f = Node(text, "p").num()
    # No float is nearer to the decimal than the one returned.
    for g in (math.nextafter(f, math.inf), math.nextafter(f, -math.inf)):
        assert abs(Fraction(f) - exact) <= abs(Fraction(g) - exact)
    # Exact in the fixed-point unit of its own scale, and refused one digit shorter.
    assert Node(text, "p").fixed(scale) == int(exact * 10**scale)
    if digits % 10 and scale > 0:
        with pytest.raises(cm.ConfigError, match="decimals"):
            Node(text, "p").fixed(scale - 1)


@settings(max_examples=50, deadline=None)
@given(st.permutations(["hedge", "oneway"]), st.randoms(use_true_random=False))
def test_adapters_do_not_depend_on_payload_order(order: list[str], rnd) -> None:
    raw = accounts("binance")
    base = binance.accounts(raw)
    shuffled = {k: raw[k] for k in order}
    for name in shuffled:  # reorder the rows inside each payload too
        rows = list(shuffled[name]["positionRisk"])
        rnd.shuffle(rows)
        shuffled[name] = {"positionRisk": rows}
    got = binance.accounts(shuffled)

    def rows(t):
        return sorted(
            zip(t["account"].tolist(), t["market"].tolist(), t["qty"].tolist(), strict=True)
        )

    assert rows(got.positions) == rows(base.positions)
    np.testing.assert_array_equal(
        got.reported["position_maint_margin"], base.reported["position_maint_margin"]
    )
