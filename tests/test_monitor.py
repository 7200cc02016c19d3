"""Live monitoring (docs/MODEL.md "Live monitoring"): after any sequence of ticks, row
changes and fills the monitor equals a batch evaluation of its snapshot bit for bit; a
replay of its audit log rebuilds it bit for bit; typed errors leave it unchanged; fills
book size, average entry and realised P&L as the venues publish."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import _core
from crossmargin.result import MARGIN_COLUMNS
from crossmargin.synth import generate
from crossmargin.testing import random_books, universes
from hypothesis import given
from hypothesis import strategies as st

DEMO = cm.Universe.demo()
# The evaluation kernel's levels this CPU runs (CROSSMARGIN_SIMD); a tick or refresh that
# reaches many accounts goes through the kernel at the level the variable selects.
LEVELS, BEST = _core.simd_levels()


@pytest.fixture
def simd(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Sets CROSSMARGIN_SIMD for the test (restored after)."""

    def set_level(name: str) -> None:
        monkeypatch.setenv("CROSSMARGIN_SIMD", name)

    yield set_level


def assert_same_bits(a: cm.Table, b: cm.Table) -> None:
    for c in MARGIN_COLUMNS:
        x, y = np.asarray(a[c]), np.asarray(b[c])
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), c


def assert_matches_batch(mon: cm.Monitor) -> None:
    """The monitor's results = Engine.evaluate of its snapshot at its prices, bit for bit."""
    book, result = mon.snapshot()
    batch = cm.Engine(mon.universe, threads=1).evaluate(book, prices=mon.prices)
    assert_same_bits(result, batch)


def state(mon: cm.Monitor) -> tuple[Any, ...]:
    book, result = mon.snapshot()
    cols = [
        np.asarray(v).tobytes()
        for t in (book.balances, book.positions)
        for v in t.values()
        if isinstance(v, np.ndarray)
    ]
    prices = tuple(p.tobytes() for p in mon.prices)
    return (
        mon.seq,
        tuple(cols),
        tuple(np.asarray(result[c]).tobytes() for c in MARGIN_COLUMNS),
        prices,
        len(mon.log()),
    )


# ---- the property of item 6 --------------------------------------------------------------
@st.composite
def operations(draw: st.DrawFn, u: cm.Universe, ids: list[int]) -> list[tuple[str, Any]]:
    accounts = st.sampled_from([*ids, 77, 78])
    tradable = [m.symbol for m in u.markets if not m.is_option]
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["tick", "balances", "positions", "orders", "fill"]))
        if kind == "tick":
            keys = draw(
                st.lists(
                    st.sampled_from([*u.underlyings, *u.asset_index, *u.market_index]),
                    min_size=1,
                    max_size=3,
                    unique=True,
                )
            )
            ops.append((kind, {k: draw(st.floats(0.5, 2.0)) for k in keys}))
        elif kind == "balances":
            rows = draw(
                st.lists(
                    st.tuples(accounts, st.sampled_from(list(u.asset_index))),
                    min_size=1,
                    max_size=4,
                    unique=True,
                )
            )
            qty = [draw(st.one_of(st.just(0.0), st.floats(-1e5, 1e6))) for _ in rows]
            ops.append(
                (kind, {"account": [r[0] for r in rows], "asset": [r[1] for r in rows], "qty": qty})
            )
        elif kind == "positions" and u.markets:
            rows = draw(
                st.lists(
                    st.tuples(accounts, st.sampled_from(list(u.market_index)), st.integers(0, 2)),
                    min_size=1,
                    max_size=4,
                    unique=True,
                )
            )
            cols: dict[str, list[Any]] = {
                "account": [],
                "market": [],
                "qty": [],
                "entry_price": [],
                "isolated_margin": [],
                "side": [],
            }
            for a, m, side in rows:
                q = draw(st.one_of(st.just(0.0), st.floats(-100.0, 100.0)))
                q = abs(q) if side == 1 else -abs(q) if side == 2 else q
                ref = max(u.reference_marks[u.market_index[m]], 1e-6)
                cols["account"].append(a)
                cols["market"].append(m)
                cols["qty"].append(q)
                cols["entry_price"].append(ref * draw(st.floats(0.5, 2.0)))
                cols["isolated_margin"].append(draw(st.sampled_from([0.0, math.nan, 50.0])))
                cols["side"].append(side)
            ops.append((kind, cols))
        elif kind == "orders" and tradable:
            a, m = draw(accounts), draw(st.sampled_from(tradable))
            n = draw(st.integers(0, 2))
            ref = u.reference_marks[u.market_index[m]]
            if n == 0:
                ops.append(("cancel", {"account": [a], "market": [m]}))
            else:
                ops.append(
                    (
                        kind,
                        {
                            "account": [a] * n,
                            "market": [m] * n,
                            "side": [draw(st.sampled_from(["buy", "sell"])) for _ in range(n)],
                            "qty": [draw(st.floats(0.01, 10.0)) for _ in range(n)],
                            "price": [ref * draw(st.floats(0.5, 2.0)) for _ in range(n)],
                        },
                    )
                )
        elif kind == "fill" and u.markets:
            m = draw(st.sampled_from(list(u.market_index)))
            ref = max(u.reference_marks[u.market_index[m]], 1e-6)
            ops.append(
                (
                    kind,
                    (
                        draw(accounts),
                        m,
                        draw(st.sampled_from(["buy", "sell"])),
                        draw(st.floats(0.01, 50.0)),
                        ref * draw(st.floats(0.5, 2.0)),
                    ),
                )
            )
    return ops


def current(mon: cm.Monitor, key: str) -> float:
    u = mon.universe
    assets, marks = mon.prices
    if key in u.underlyings:
        return cm.prices.underlying_spots(u, assets, marks)[key]
    if key in u.asset_index:
        return float(assets[u.asset_index[key]])
    return float(marks[u.market_index[key]])


def run(mon: cm.Monitor, op: tuple[str, Any]) -> None:
    kind, arg = op
    if kind == "tick":
        tick = {k: current(mon, k) * f for k, f in arg.items()}
        tick = {k: v for k, v in tick.items() if math.isfinite(v) and v > 0}
        try:
            mon.on_prices(tick)
        except cm.PriceError:
            # a move out of the numeric domain (e.g. a model option mark of 0) is refused
            return
    elif kind == "balances":
        mon.apply(balances=arg)
    elif kind == "positions":
        before = state(mon)
        try:
            mon.apply(positions=arg)
        except cm.BookError:
            # one-way and hedge legs in one market of one account: refused, nothing changed
            assert state(mon) == before
    elif kind == "orders":
        mon.apply(orders=arg)
    elif kind == "cancel":
        mon.apply(cancel_orders=arg)
    else:
        before = state(mon)
        try:
            mon.fill(*arg)
        except cm.BookError:
            # a one-way fill in a market the account holds hedge legs in: refused
            assert state(mon) == before


@pytest.mark.parametrize("level", LEVELS)
@given(data=st.data())
def test_monitor_equals_a_full_evaluation_after_any_sequence(
    level: str, data: st.DataObject
) -> None:
    os.environ["CROSSMARGIN_SIMD"] = level
    try:
        monitor_equals_a_full_evaluation(data)
    finally:
        os.environ.pop("CROSSMARGIN_SIMD", None)


def monitor_equals_a_full_evaluation(data: st.DataObject) -> None:
    u = data.draw(universes(options=True, order_rules=True, venue_rules=True))
    rb = data.draw(random_books(u, max_rows=12, hedged=True, orders=True))
    book = rb.book(u)
    mon = cm.Monitor(u, book, levels=cm.Levels(data.draw(st.sampled_from([0.5, 0.8, 1.0]))))
    assert_matches_batch(mon)
    ids = [int(a) for a in book.accounts] or [1]
    for op in data.draw(operations(u, ids)):
        run(mon, op)
        assert_matches_batch(mon)
    again = cm.Monitor.replay(u, book, mon.log())
    assert again.same_log(mon)
    assert state(again) == state(mon)


@pytest.mark.parametrize("level", LEVELS)
def test_ticks_reaching_thousands_of_accounts_equal_a_full_evaluation(simd, level: str) -> None:  # type: ignore[no-untyped-def]
    # 6,000 demo accounts: a BTC tick moves several thousand of them, above the count from
    # which the monitor gathers their rows for the evaluation kernel (kept between ticks
    # on the same key until a change); a refresh re-evaluates all of them the same way.
    simd(level)
    book = generate(DEMO, n_accounts=6_000, seed=11)
    mon = cm.Monitor(DEMO, book, levels=cm.Levels(0.6))
    spot = current(mon, "BTC")
    moved = 0
    for f in (0.7, 0.55, 1.3):
        crossings = mon.on_prices({"BTC": spot * f})
        moved += len(crossings)
        assert_matches_batch(mon)
    assert moved > 0
    a = int(book.accounts[10])
    mon.fill(a, "BTCUSDT", "buy", 2.0, spot)
    mon.apply(balances={"account": [int(book.accounts[20])], "asset": ["USDT"], "qty": [5.0]})
    mon.on_prices({"BTC": spot * 0.8})
    assert_matches_batch(mon)
    mon.on_prices({"BTC": spot * 0.75, "ETHUSDT": 1_500.0})
    assert_matches_batch(mon)
    mon.refresh()
    assert_matches_batch(mon)
    again = cm.Monitor.replay(DEMO, book, mon.log())
    assert state(again) == state(mon)


def test_an_unknown_simd_level_is_a_config_error_and_changes_nothing(simd) -> None:  # type: ignore[no-untyped-def]
    book = generate(DEMO, n_accounts=300, seed=2)
    mon = cm.Monitor(DEMO, book)
    before = state(mon)
    simd("sse9")
    with pytest.raises(cm.ConfigError, match="CROSSMARGIN_SIMD"):
        mon.on_prices({"BTC": 30_000.0})
    with pytest.raises(cm.ConfigError, match="CROSSMARGIN_SIMD"):
        mon.refresh()
    assert state(mon) == before


# ---- replay ------------------------------------------------------------------------------
def test_replay_of_a_parquet_log_is_bit_identical(tmp_path: Path) -> None:
    book = generate(DEMO, n_accounts=3_000, seed=5)
    mon = cm.Monitor(DEMO, book, levels=cm.Levels(0.7))
    mon.on_prices({"BTC": 52_000.0})
    mon.fill(int(book.accounts[3]), "ETHUSDT", "sell", 1.5, 3_100.0)
    mon.apply(
        balances={
            "account": [int(book.accounts[0]), 123],
            "asset": ["USDT", "BTC"],
            "qty": [0.0, 2.0],
        },
        orders={
            "account": [123],
            "market": ["BTCUSDT"],
            "side": ["buy"],
            "qty": [0.1],
            "price": [50_000.0],
        },
    )
    mon.on_prices({"ETHUSDT": 2_500.0, "USDC": 0.999})
    mon.refresh()
    path = tmp_path / "audit.parquet"
    mon.log().to_parquet(path)
    again = cm.Monitor.replay(DEMO, book, cm.monitor.read_log(path))
    assert again.same_log(mon)
    assert state(again) == state(mon)
    assert list(again.crossings()) == list(mon.crossings())
    assert again.levels == cm.Levels(0.7)


# ---- crossings ---------------------------------------------------------------------------
def one_account() -> tuple[cm.Universe, cm.Book]:
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 50_000.0, [(math.inf, 0.1, 0.05)])],
    )
    book = cm.Book.from_arrays(
        {"account": [1], "asset": ["USDT"], "qty": [5_000.0]},
        {"account": [1], "market": ["BTCUSDT"], "qty": [1.0], "entry_price": [50_000.0]},
    )
    return u, book


def test_levels_are_crossed_both_ways_and_streamed_in_order() -> None:
    u, book = one_account()
    mon = cm.Monitor(u, book, levels=cm.Levels(margin_call=0.8))
    # equity = 5,000 + (m − 50,000), mm = 0.05 m: margin call (mm ≥ 0.8 equity) below
    # 48,000, liquidation below 47,368.42, bankruptcy below 45,000.
    assert len(mon.on_prices({"BTCUSDT": 48_100.0})) == 0
    assert mon.on_prices({"BTCUSDT": 48_000.0}).level.tolist() == ["margin_call"]
    assert mon.on_prices({"BTCUSDT": 47_000.0}).level.tolist() == ["liquidation"]
    assert mon.on_prices({"BTCUSDT": 44_000.0}).level.tolist() == ["bankruptcy"]
    back = mon.on_prices({"BTCUSDT": 60_000.0})
    assert back.previous.tolist() == ["bankruptcy"] and back.level.tolist() == ["ok"]
    assert len(mon.on_prices({"BTCUSDT": 60_001.0})) == 0
    seen = [(c.seq, c.previous, c.level) for c in mon.crossings()]
    assert seen == [
        (2, "ok", "margin_call"),
        (3, "margin_call", "liquidation"),
        (4, "liquidation", "bankruptcy"),
        (5, "bankruptcy", "ok"),
    ]
    assert [c.seq for c in mon.crossings(since=4)] == [4, 5]
    top = mon.riskiest(1)
    assert top.account.tolist() == [1] and top.level.tolist() == ["ok"]


def test_a_tick_reaches_only_the_accounts_holding_what_moved() -> None:
    book = generate(DEMO, n_accounts=5_000, seed=3)
    mon = cm.Monitor(DEMO, book)
    before = mon.snapshot()[1]
    mon.on_prices({"SOLUSDT": DEMO.reference_marks[DEMO.market_index["SOLUSDT"]] * 0.5})
    after = mon.snapshot()[1]
    pos = book.positions
    sol = DEMO.market_index["SOLUSDT"]
    holders = set(
        pos["account"][
            pos["market"].symbols([m.symbol for m in DEMO.markets]) == "SOLUSDT"
        ].tolist()
    )
    changed = set(after.account[after.equity != before.equity].tolist())
    assert changed and changed <= holders, sol
    assert_matches_batch(mon)


def test_a_tick_from_the_reference_equals_the_prices_override() -> None:
    book = generate(DEMO, n_accounts=2_000, seed=8)
    mon = cm.Monitor(DEMO, book)
    tick = {"BTC": 41_000.0, "ETHUSDT": 2_000.0, "USDC": 0.99}
    mon.on_prices(tick)
    assert_same_bits(mon.snapshot()[1], cm.Engine(DEMO).evaluate(book, prices=tick))


# ---- fills -------------------------------------------------------------------------------
def fills_universe() -> cm.Universe:
    return cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", 10_000.0)],
        [
            cm.Market("BTCUSDT", "perp", "USDT", "BTC", 10_000.0, [(math.inf, 0.01, 0.005)]),
            cm.Market(
                "BTCUSD", "perp", "BTC", "BTC", 10_000.0, [(math.inf, 0.01, 0.005)], inverse=True
            ),
        ],
    )


def test_fill_average_entry_reproduces_bybit_examples() -> None:
    # Bybit help center, "How to Calculate Average Entry Price"
    # (https://testnet.bybit.com/en/help-center/article?id=000001113): BTCUSDT, 1 at 10,000
    # then 2 at 13,000 → 12,000 USDT; BTCUSD (inverse), 50 at 10,000 then 50 at 15,000
    # → 12,000 USD.
    u = fills_universe()
    book = cm.Book.from_arrays({"account": [1], "asset": ["USDT"], "qty": [100_000.0]})
    mon = cm.Monitor(u, book)
    mon.fill(1, "BTCUSDT", "buy", 1.0, 10_000.0)
    f = mon.fill(1, "BTCUSDT", "buy", 2.0, 13_000.0)
    assert (f.qty, f.entry_price, f.realised_pnl) == (3.0, 12_000.0, 0.0)
    mon.fill(1, "BTCUSD", "buy", 50.0, 10_000.0)
    f = mon.fill(1, "BTCUSD", "buy", 50.0, 15_000.0)
    assert f.entry_price == pytest.approx(12_000.0, rel=1e-12)


def test_fill_realises_pnl_to_the_settle_balance() -> None:
    u = fills_universe()
    book = cm.Book.from_arrays(
        {"account": [1], "asset": ["USDT"], "qty": [2_000.0]},
        {"account": [1], "market": ["BTCUSDT"], "qty": [2.0], "entry_price": [10_000.0]},
    )
    mon = cm.Monitor(u, book)
    f = mon.fill(1, "BTCUSDT", "sell", 0.5, 11_000.0)
    # moving-average cost: (11,000 − 10,000) × 0.5 realised, the rest keeps its entry
    assert (f.qty, f.entry_price, f.realised_pnl, f.cash) == (1.5, 10_000.0, 500.0, 500.0)
    f = mon.fill(1, "BTCUSDT", "sell", 2.5, 9_000.0)  # closes 1.5 at a loss, opens 1 short
    assert (f.qty, f.entry_price, f.realised_pnl) == (-1.0, 9_000.0, -1_500.0)
    b, _ = mon.snapshot()
    assert b.balances["qty"].tolist() == [2_000.0 + 500.0 - 1_500.0]
    assert b.positions["qty"].tolist() == [-1.0]
    assert_matches_batch(mon)


# ---- typed errors leave the state unchanged ------------------------------------------------
BAD_CALLS = [
    ("on_prices", ({"NOPE": 1.0},), cm.PriceError),
    ("on_prices", ({"BTC": math.nan},), cm.PriceError),
    ("on_prices", ({"BTCUSDT": -5.0},), cm.PriceError),
    ("on_prices", ({"ETHUSDT": 0.0},), cm.PriceError),
    ("on_prices", ({"BTC": "high"},), cm.PriceTypeError),
    ("apply", ({"account": [1], "asset": ["NOPE"], "qty": [1.0]},), cm.BookError),
    ("apply", ({"account": [1, 1], "asset": ["USDT", "USDT"], "qty": [1.0, 2.0]},), cm.BookError),
    ("apply", ({"account": [1], "asset": ["USDT"], "qty": [math.inf]},), cm.BookError),
    (
        "apply",
        (None, {"account": [1], "market": ["BTCUSDT"], "qty": [math.nan], "entry_price": [1.0]}),
        cm.BookError,
    ),
    (
        "apply",
        (
            None,
            {
                "account": [1, 1],
                "market": ["BTCUSDT"] * 2,
                "qty": [1.0, 2.0],
                "entry_price": [1.0, 1.0],
            },
        ),
        cm.BookError,
    ),
    ("fill", (1, "NOPE", "buy", 1.0, 1.0), cm.BookError),
    ("fill", (1, "BTCUSDT", "hold", 1.0, 1.0), cm.BookError),
    ("fill", (1, "BTCUSDT", "buy", -1.0, 1.0), cm.BookError),
    ("fill", (1, "BTCUSDT", "buy", 1.0, math.inf), cm.PriceError),
    ("fill", (1, "BTCUSDT", "sell", 1.0, 50_000.0), cm.BookError, {"position_side": "long"}),
]


@pytest.mark.parametrize("call", BAD_CALLS, ids=lambda c: f"{c[0]}-{c[2].__name__}")
def test_bad_input_is_a_typed_error_and_leaves_the_monitor_unchanged(call: tuple[Any, ...]) -> None:
    book = generate(DEMO, n_accounts=500, seed=2)
    mon = cm.Monitor(DEMO, book)
    mon.on_prices({"BTC": 55_000.0})
    before = state(mon)
    name, args, error = call[:3]
    kwargs = call[3] if len(call) > 3 else {}
    with pytest.raises(error):
        getattr(mon, name)(*args, **kwargs)
    assert state(mon) == before


def test_levels_and_arguments_are_checked() -> None:
    u, book = one_account()
    with pytest.raises(cm.ConfigError):
        cm.Levels(margin_call=0.0)
    with pytest.raises(cm.ConfigTypeError):
        cm.Levels(margin_call="0.8")  # type: ignore[arg-type]
    with pytest.raises(cm.ConfigError):
        cm.Monitor(u, book).refresh(DEMO)


def test_refresh_takes_a_rebuilt_universe() -> None:
    u, book = one_account()
    mon = cm.Monitor(u, book)
    tighter = cm.Universe(
        u.assets,
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 50_000.0, [(math.inf, 0.5, 0.4)])],
    )
    crossings = mon.refresh(tighter)
    assert crossings.level.tolist() == ["liquidation"]
    assert mon.universe is tighter
    assert_matches_batch(mon)


# ---- differential: engine vs the pure-Python reference ------------------------------------
@given(
    qty=st.one_of(st.just(0.0), st.floats(-50.0, 50.0)),
    entry=st.floats(100.0, 1e5),
    trade=st.floats(0.01, 80.0),
    buy=st.booleans(),
    price=st.floats(100.0, 1e5),
    isolated=st.sampled_from([0.0, 25.0]),
    market=st.sampled_from(["LIN", "INV", "OPT"]),
)
def test_fill_matches_the_reference(
    qty: float, entry: float, trade: float, buy: bool, price: float, isolated: float, market: str
) -> None:
    u = cm.Universe(
        [cm.Asset("USD", 1.0)],
        [
            cm.Market("LIN", "perp", "USD", "X", 1e4, [(math.inf, 0.1, 0.05)], contract_size=0.5),
            cm.Market(
                "INV",
                "perp",
                "USD",
                "X",
                1e4,
                [(math.inf, 0.1, 0.05)],
                inverse=True,
                contract_size=10.0,
            ),
            cm.Market(
                "OPT",
                "option",
                "USD",
                "X",
                100.0,
                [],
                option_type="call",
                strike=1e4,
                expiry=0.5,
                iv=0.5,
            ),
        ],
    )
    m = u.markets[u.market_index[market]]
    held = cm.Book.from_arrays(
        {"account": [1], "asset": ["USD"], "qty": [1e6]},
        {
            "account": [1],
            "market": [market],
            "qty": [qty],
            "entry_price": [entry],
            "isolated_margin": [isolated],
        },
    )
    mon = cm.Monitor(u, held)
    signed = trade if buy else -trade
    got = mon.fill(1, market, "buy" if buy else "sell", trade, price)
    want = cm.reference.monitor.fill(
        qty,
        entry if qty else 0.0,
        isolated if qty else 0.0,
        signed,
        price,
        m.contract_size,
        m.inverse,
        m.is_option,
    )
    assert got.qty == want.qty
    assert got.entry_price == pytest.approx(want.entry, rel=1e-12)
    assert got.realised_pnl == pytest.approx(want.realised, rel=1e-12, abs=1e-9)
    assert got.cash == pytest.approx(want.cash, rel=1e-12, abs=1e-9)
    assert_matches_batch(mon)


@given(data=st.data())
def test_levels_match_the_reference(data: st.DataObject) -> None:
    u = data.draw(universes())
    rb = data.draw(random_books(u, max_rows=12))
    book = rb.book(u)
    call = data.draw(st.floats(0.05, 1.0))
    mon = cm.Monitor(u, book, levels=cm.Levels(call))
    top = mon.riskiest(len(book.accounts))
    r = cm.reference.evaluate(u, book)
    want = {
        int(a): cm.reference.monitor.level(e, adj, mm, bool(liq), call)
        for a, e, adj, mm, liq in zip(
            r.account, r.equity, r.adj_equity_maint, r.mm, r.liquidatable, strict=True
        )
    }
    got = dict(zip(top.account.tolist(), top.level.tolist(), strict=True))
    assert set(got) == set(want)

    def decided(e: float, adj: float, mm: float) -> bool:
        # away from every threshold by more than the engines' 1e-9 agreement
        tol = 1e-9 * max(1.0, abs(e), abs(adj), abs(mm))
        ratio_clear = mm == 0 or adj <= 0 or abs(mm / adj - call) > 1e-9
        return abs(e) > tol and abs(adj - mm) > tol and ratio_clear

    clear = [
        int(a)
        for a, e, adj, mm in zip(r.account, r.equity, r.adj_equity_maint, r.mm, strict=True)
        if decided(float(e), float(adj), float(mm))
    ]
    assert {a: got[a] for a in clear} == {a: want[a] for a in clear}


def test_an_option_follows_its_underlying_there_and_back() -> None:
    u = cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", 50_000.0)],
        [
            cm.Market("BTCUSDT", "perp", "USDT", "BTC", 50_000.0, [(math.inf, 0.1, 0.05)]),
            cm.Market(
                "BTC-C",
                "option",
                "USDT",
                "BTC",
                None,
                [],
                option_type="call",
                strike=55_000.0,
                expiry=0.25,
                iv=0.6,
            ),
        ],
    )
    book = cm.Book.from_arrays(
        {"account": [1], "asset": ["USDT"], "qty": [10_000.0]},
        {"account": [1], "market": ["BTC-C"], "qty": [-1.0], "entry_price": [1_000.0]},
    )
    mon = cm.Monitor(u, book)
    start = mon.prices[1].copy()
    mon.on_prices({"BTC": 40_000.0})
    assert mon.prices[1][1] < start[1]
    mon.on_prices({"BTC": 50_000.0})
    assert mon.prices[1].tobytes() == start.tobytes()
    assert_same_bits(mon.snapshot()[1], cm.Engine(u).evaluate(book))


def test_a_log_that_does_not_fit_is_a_config_error_naming_the_row() -> None:
    u, book = one_account()
    mon = cm.Monitor(u, book)
    mon.on_prices({"BTCUSDT": 49_000.0})
    mon.apply(balances={"account": [1], "asset": ["USDT"], "qty": [4_000.0]})
    cols = {c: np.array(mon.log()[c]) for c in cm.monitor.LOG_COLUMNS}
    unknown = {**cols, "symbol": np.where(cols["kind"] == "balance", "DOGE", cols["symbol"])}
    with pytest.raises(cm.ConfigError, match="unknown asset 'DOGE'"):
        cm.Monitor.replay(u, book, cm.Table(unknown))
    backwards = {**cols, "seq": cols["seq"][::-1].copy()}
    with pytest.raises(cm.ConfigError, match="must be in order"):
        cm.Monitor.replay(u, book, cm.Table(backwards))
    kinds = {**cols, "kind": np.where(cols["kind"] == "mark", "tick", cols["kind"])}
    with pytest.raises(cm.ConfigError, match="unknown kind 'tick'"):
        cm.Monitor.replay(u, book, cm.Table(kinds))


def test_a_tick_may_give_the_whole_price_vectors() -> None:
    u, book = one_account()
    mon, other = cm.Monitor(u, book), cm.Monitor(u, book)
    mon.on_prices({"BTCUSDT": 47_000.0})
    assets, marks = mon.prices
    assert other.on_prices((assets, marks)).level.tolist() == ["liquidation"]
    assert state(other)[1:4] == state(mon)[1:4]
    with pytest.raises(cm.PriceError):
        other.on_prices((assets, marks[:0]))
