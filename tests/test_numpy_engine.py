"""The NumPy benchmark baseline (benches/numpy_engine.py) computes the same numbers as the
pure-Python reference and the Rust engine to 1e-9 (docs/MODEL.md "Standard cross margin")."""

from __future__ import annotations

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import reference, synth
from crossmargin.result import MARGIN_COLUMNS

from benches import numpy_engine as ne

RTOL = 1e-9
FLOATS = ("equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm", "free_collateral")


def assert_agree(got: dict[str, np.ndarray], want, label: str = "") -> None:
    """Every column equal to 1e-9 relative. Sums of terms of both signs may cancel, so the
    tolerance of a row is relative to the account's size (its largest magnitude among the
    amounts), the way a 1e-9 relative error of the terms shows in their sum."""
    assert tuple(got) == MARGIN_COLUMNS
    np.testing.assert_array_equal(got["account"], want["account"], err_msg=label)
    w = {k: np.asarray(want[k]) for k in MARGIN_COLUMNS}
    scale = np.max(np.abs(np.stack([w[k] for k in FLOATS])), axis=0) if len(w["account"]) else 0
    atol = RTOL * scale
    for k in FLOATS:
        assert got[k].dtype == np.float64, k
        bad = np.abs(got[k] - w[k]) > RTOL * np.abs(w[k]) + atol
        assert not bad.any(), (
            f"{label} {k}: rows {np.flatnonzero(bad)[:5]} {got[k][bad][:5]} != {w[k][bad][:5]}"
        )
    # margin_ratio = mm / adj: inf and 0 exactly, else relative to the inputs' tolerance.
    g, r = got["margin_ratio"], w["margin_ratio"]
    np.testing.assert_array_equal(np.isinf(g), np.isinf(r), err_msg=f"{label} margin_ratio inf")
    np.testing.assert_array_equal(g == 0.0, r == 0.0, err_msg=f"{label} margin_ratio zero")
    fin = np.isfinite(r) & (r != 0.0)
    adj = np.abs(w["adj_equity_maint"][fin])
    rel = RTOL * (1.0 + scale[fin] / adj) if fin.any() else 0.0
    bad = np.abs(g[fin] - r[fin]) > 4 * rel * np.abs(r[fin])
    assert not bad.any(), f"{label} margin_ratio: {g[fin][bad][:5]} != {r[fin][bad][:5]}"
    # Booleans: equal except on a tie within the tolerance.
    for k, gap in (
        ("liquidatable", w["adj_equity_maint"] - w["mm"]),
        ("bankrupt", w["equity"]),
    ):
        assert got[k].dtype == np.bool_, k
        differ = got[k] != w[k]
        assert not (differ & (np.abs(gap) > 2 * atol)).any(), f"{label} {k}"


def check(universe: cm.Universe, book: cm.Book, prices=None) -> None:
    got = ne.evaluate(universe, book, prices)
    assert_agree(got, reference.evaluate(universe, book, prices), "vs reference")
    assert_agree(got, cm.Engine(universe).evaluate(book, prices=prices), "vs engine")


# ---- a small universe with every rule switched on ----------------------------------------
def handmade_universe() -> cm.Universe:
    inf = float("inf")
    return cm.Universe(
        assets=[
            cm.Asset("USD", 1.0),
            cm.Asset(
                "USDC",
                0.999,
                weight_initial=0.98,
                weight_maint=0.99,
                haircut_tiers=[(100_000.0, 1.0), (500_000.0, 0.9)],  # finite cap
            ),
            cm.Asset(
                "BTC",
                60_000.0,
                0.9,
                0.95,
                1.3,
                1.15,
                haircut_tiers=[(1e6, 1.0), (5e6, 0.95), (2e7, 0.8), (inf, 0.5)],
                imf_factor=0.002,
            ),
            cm.Asset("ETH", 3_000.0, 0.85, 0.9, 1.25, 1.1, imf_factor=0.01),
            cm.Asset("XYZ", 2.5, 0.5, 0.6, 1.5, 1.4),
        ],
        markets=[
            cm.Market(
                "BTCUSD",
                "perp",
                "USD",
                "BTC",
                60_100.0,
                [(100_000.0, 0.01, 0.005), (1e6, 0.02, 0.01), (1e7, 0.05, 0.025), (inf, 0.2, 0.1)],
                imf_factor=0.0005,
            ),
            cm.Market(
                "BTCINV",
                "perp",
                "BTC",
                "BTC",
                59_900.0,
                [(5.0, 0.01, 0.005), (50.0, 0.05, 0.02), (inf, 0.25, 0.125)],
                contract_size=100.0,
                inverse=True,
                imf_factor=0.001,
            ),
            cm.Market(
                "ETHINV",
                "future",
                "ETH",
                "ETH",
                3_010.0,
                [(100.0, 0.02, 0.01), (inf, 0.1, 0.05)],
                contract_size=10.0,
                inverse=True,
            ),
            cm.Market(
                "ETHUSDC",
                "perp",
                "USDC",
                "ETH",
                2_995.0,
                [(50_000.0, 0.02, 0.01), (250_000.0, 0.05, 0.02), (inf, 0.1, 0.05)],
                contract_size=0.1,
                upnl_weight_initial=0.5,
                upnl_weight_maint=0.8,
            ),
            cm.Market("XYZUSD", "future", "USD", "XYZ", 2.5, [(inf, 0.1, 0.05)]),
        ],
    )


def handmade_book(u: cm.Universe, n: int, seed: int, sparse_ids: bool = False) -> cm.Book:
    """Random rows over every rule: borrows, zero balances, duplicate balances, isolated
    (positive, 0 and NaN margins), zero positions (entry 0), notionals on bracket bounds."""
    rng = np.random.default_rng(seed)
    na, nm = len(u.assets), len(u.markets)
    if sparse_ids:
        ids = np.unique(rng.integers(-(2**62), 2**62, n))
    else:
        ids = 1_000 + np.arange(n, dtype=np.int64) * rng.integers(1, 3)
    prices = np.array([a.price for a in u.assets])
    marks = np.array([m.mark for m in u.markets])

    nb = int(n * 2.5)
    b_acct = rng.choice(ids, nb)
    b_asset = rng.integers(0, na, nb)
    usd = np.exp(rng.normal(np.log(20_000.0), 2.5, nb))
    b_qty = usd / prices[b_asset] * np.where(rng.random(nb) < 0.2, -0.4, 1.0)
    b_qty[rng.random(nb) < 0.02] = 0.0
    # Whales beyond the haircut caps.
    whale = rng.random(nb) < 0.01
    b_qty[whale] = 1e9 / prices[b_asset[whale]]

    # Positions: distinct markets per account.
    keys = rng.random((n, nm))
    k_pos = rng.integers(0, nm + 1, n)
    take = np.argsort(keys, axis=1).argsort(axis=1) < k_pos[:, None]
    p_acct = np.broadcast_to(ids[:, None], (n, nm))[take]
    p_market = np.broadcast_to(np.arange(nm)[None, :], (n, nm))[take]
    npos = len(p_acct)
    cs = np.array([m.contract_size for m in u.markets])
    inverse = np.array([m.inverse for m in u.markets])
    notional_usd = np.exp(rng.normal(np.log(50_000.0), 2.5, npos))
    qty = np.where(
        inverse[p_market],
        notional_usd / cs[p_market],
        notional_usd / (cs[p_market] * marks[p_market]),
    )
    qty = np.round(qty * np.where(rng.random(npos) < 0.5, 1.0, -1.0), 4)
    entry = marks[p_market] * np.exp(rng.normal(0.0, 0.1, npos))
    # Exactly on a bracket bound: BTCUSD (cs 1, mark 60_100 → qty so notional hits 1e6 closely)
    # and XYZUSD single bracket; ETHINV inverse bound 100 coin = qty·10/3010.
    on_bound = rng.random(npos) < 0.03
    qty[on_bound & (p_market == 2)] = 100.0 * 3010.0 / 10.0
    zero = rng.random(npos) < 0.03
    qty[zero] = 0.0
    entry[zero & (rng.random(npos) < 0.5)] = 0.0
    iso = np.zeros(npos)
    r = rng.random(npos)
    iso[r < 0.1] = np.abs(qty[r < 0.1]) * 0.05 * rng.uniform(0.2, 2.0, (r < 0.1).sum())
    iso[(r >= 0.1) & (r < 0.15)] = np.nan
    iso[(r >= 0.15) & (r < 0.17)] = 0.0

    bo, po = rng.permutation(nb), rng.permutation(npos)
    return cm.Book.from_arrays(
        balances={
            "account": b_acct[bo],
            "asset": np.array([a.symbol for a in u.assets], dtype=object)[b_asset[bo]],
            "qty": b_qty[bo],
        },
        positions={
            "account": p_acct[po],
            "market": p_market[po],
            "qty": qty[po],
            "entry_price": entry[po],
            "isolated_margin": iso[po],
        },
    )


# ---- agreement -----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_synth_book(seed: int) -> None:
    u = cm.Universe.demo()
    check(u, synth.generate(u, n_accounts=3_000, seed=seed))


def test_demo_synth_book_with_price_moves() -> None:
    u = cm.Universe.demo()
    book = synth.generate(
        u, n_accounts=2_000, seed=11, isolated_fraction=0.3, borrower_fraction=0.5
    )
    check(u, book, {"BTC": 60_000.0, "ETH": 2_000.0})
    check(u, book, {"BTC": 150_000.0, "SOL": 40.0, "USDC": 0.97})


@pytest.mark.parametrize(("seed", "sparse"), [(1, False), (2, False), (3, True), (4, True)])
def test_handmade_universe(seed: int, sparse: bool) -> None:
    u = handmade_universe()
    book = handmade_book(u, 1_500, seed, sparse)
    check(u, book)
    check(u, book, {"BTC": 30_000.0, "ETH": 4_500.0, "XYZ": 0.5})


def test_handmade_book_exercises_every_rule() -> None:
    """Guards the generator: the rules under test really occur in the book."""
    u = handmade_universe()
    book = handmade_book(u, 1_500, 1)
    r = reference.evaluate(u, book)
    p, b = book.positions, book.balances
    assert (b["qty"] < 0).any() and (p["isolated_margin"] > 0).any()
    assert np.isnan(p["isolated_margin"]).any() and (p["qty"] == 0).any()
    assert r.liquidatable.any() and (~r.liquidatable).any() and r.bankrupt.any()
    assert np.isinf(r.margin_ratio).any()
    key = b["account"] * 10 + b["asset"].codes
    assert len(np.unique(key)) < len(key), "duplicate balances"


def test_duplicate_balances_are_summed_in_both_paths() -> None:
    u = handmade_universe()
    # Dense slot table path (few accounts).
    book = cm.Book.from_arrays(
        balances={
            "account": [7, 7, 9, 7, 9],
            "asset": ["BTC", "USD", "ETH", "BTC", "ETH"],
            "qty": [1.0, 100.0, 2.0, -3.0, 1.5],
        }
    )
    check(u, book)
    # np.unique path: many accounts (positions only) and few balance rows.
    n = 20_000
    book = cm.Book.from_arrays(
        balances={"account": [5, 5, 6], "asset": [2, 2, 0], "qty": [1.0, 2.0, -10.0]},
        positions={
            "account": np.arange(n) + 10,
            "market": np.zeros(n, dtype=np.int64),
            "qty": np.linspace(-3, 3, n),
            "entry_price": np.full(n, 59_000.0),
        },
    )
    check(u, book)


def test_one_sided_and_empty_books() -> None:
    u = handmade_universe()
    check(u, cm.Book.from_arrays(balances={"account": [3, 1], "asset": [0, 1], "qty": [1.0, -2.0]}))
    check(
        u,
        cm.Book.from_arrays(
            positions={
                "account": [4, 2],
                "market": ["BTCINV", "XYZUSD"],
                "qty": [5.0, -1.0],
                "entry_price": [61_000.0, 3.0],
            }
        ),
    )
    got = ne.evaluate(u, cm.Book.from_arrays())
    assert tuple(got) == MARGIN_COLUMNS and all(len(v) == 0 for v in got.values())


def test_prepared_book_is_reusable() -> None:
    u = handmade_universe()
    book = handmade_book(u, 500, 5)
    eng = ne.NumpyEngine(u)
    bk = eng.prepare(book)
    for prices in (None, {"BTC": 45_000.0}, {"ETH": 5_000.0, "USDC": 1.01}):
        assert_agree(eng.evaluate_prepared(bk, prices), reference.evaluate(u, book, prices))


# ---- building blocks -----------------------------------------------------------------------
def test_segmented_bounds_match_per_group_searchsorted() -> None:
    rng = np.random.default_rng(0)
    groups = [
        np.sort(rng.choice(np.arange(1, 60), k, replace=False)).astype(float) for k in (1, 3, 7, 2)
    ]
    groups[2][-1] = np.inf
    seg = ne.SegmentedBounds(groups)
    g = rng.integers(0, len(groups), 5_000)
    x = rng.integers(0, 70, 5_000).astype(float)  # integers: many exact hits on a bound
    x[:10] = np.nan
    x[10:20] = np.inf
    want = np.array(
        [np.searchsorted(groups[gi], xi, side="left") for gi, xi in zip(g, x, strict=True)]
    )
    np.testing.assert_array_equal(seg.rank(g, x), want)
    clipped = np.minimum(want, seg.lengths[g] - 1) + seg.offsets[g]
    np.testing.assert_array_equal(seg.locate(g, x), clipped)


def test_bracket_amounts_match_the_engine() -> None:
    for u in (cm.Universe.demo(), handmade_universe()):
        t = ne.CompiledUniverse(u)
        for k, m in enumerate(u.markets):
            rows = np.array(u.brackets_with_amounts(m.symbol))
            sl = slice(t.brackets.offsets[k], t.brackets.offsets[k + 1])
            np.testing.assert_array_equal(t.bracket_cum[0][sl], rows[:, 3])
            np.testing.assert_array_equal(t.bracket_cum[1][sl], rows[:, 4])


def test_dense_accounts_both_paths() -> None:
    for cols in (
        (np.array([5, 3, 5, 9]), np.array([9, 4])),
        (np.array([2**62, -(2**62), 0]), np.array([0, 2**62])),
        (np.array([], dtype=np.int64), np.array([1, 1])),
    ):
        accounts, dense = ne.dense_accounts(*cols)
        want = np.unique(np.concatenate(cols))
        np.testing.assert_array_equal(accounts, want)
        for c, d in zip(cols, dense, strict=True):
            np.testing.assert_array_equal(accounts[d], c)
