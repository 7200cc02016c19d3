"""The evaluation kernel's dispatch levels and ``out=`` (docs/ARCHITECTURE.md "Evaluation
kernel"): every level this CPU runs (``CROSSMARGIN_SIMD=avx512|avx2|scalar``) gives the same
bits as the scalar formula on random universes and books (sides, orders, options, venue
rules, isolated positions, inverse markets, haircut tiers, size discounts), at 1 and 2
threads; ``out=`` writes the same bits into a previous result and checks its columns like
numpy's ``out``."""

from __future__ import annotations

from collections.abc import Iterator

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import _core, testing
from crossmargin.exceptions import ConfigError, TableError, TableTypeError
from crossmargin.result import MARGIN_COLUMNS
from crossmargin.synth import generate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = tuple(c for c in MARGIN_COLUMNS if c != "account")
LEVELS, BEST = _core.simd_levels()


def bits(r: cm.MarginResult) -> dict[str, np.ndarray]:
    return {f: r[f].view(np.uint8 if r[f].dtype == bool else np.uint64).copy() for f in FIELDS}


def assert_same_bits(a: cm.MarginResult, b: cm.MarginResult, what: str) -> None:
    np.testing.assert_array_equal(a.account, b.account)
    x, y = bits(a), bits(b)
    for f in FIELDS:
        bad = np.flatnonzero(x[f] != y[f])
        assert not len(bad), (
            f"{what}: {f} differs at rows {bad[:5]}: {a[f][bad[:5]]} vs {b[f][bad[:5]]}"
        )


@pytest.fixture
def level(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Sets CROSSMARGIN_SIMD for the test (restored after)."""

    def set_level(name: str) -> None:
        monkeypatch.setenv("CROSSMARGIN_SIMD", name)

    yield set_level


def test_the_best_level_is_the_default_and_scalar_is_always_there() -> None:
    assert LEVELS[0] == "scalar"
    assert BEST == LEVELS[-1] or BEST in LEVELS


def test_an_unknown_level_is_a_config_error_naming_the_variable(level) -> None:  # type: ignore[no-untyped-def]
    level("sse9")
    u = cm.Universe.demo()
    with pytest.raises(ConfigError, match="CROSSMARGIN_SIMD"):
        cm.Engine(u).evaluate(generate(u, n_accounts=10, seed=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.booleans().flatmap(
        lambda venue: testing.universe_and_book(
            max_rows=40, options=True, hedged=True, orders=True, venue_rules=venue
        )
    )
)
def test_every_level_gives_the_scalar_bits_on_random_books(case) -> None:  # type: ignore[no-untyped-def]
    import os

    u, rb = case
    book = rb.book(u)
    results = {}
    try:
        for name in LEVELS:
            os.environ["CROSSMARGIN_SIMD"] = name
            for threads in (1, 2):
                results[name, threads] = cm.Engine(u, threads=threads).evaluate(book)
    except cm.exceptions.CrossmarginError:
        # refused input (e.g. an order in an option market) is refused at every level alike
        for name in LEVELS:
            os.environ["CROSSMARGIN_SIMD"] = name
            with pytest.raises(cm.exceptions.CrossmarginError):
                cm.Engine(u).evaluate(book)
        return
    finally:
        os.environ.pop("CROSSMARGIN_SIMD", None)
    want = results["scalar", 1]
    for key, got in results.items():
        assert_same_bits(want, got, f"{key}")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 2_048, 2_049, 3 * 2_048 + 1, 20_011, 64 * 2_048 + 1])
def test_demo_books_of_every_size_match_across_levels_and_out(level, n: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    """A call whose rows and layout are built runs on the calling thread for a one-thread
    engine or a book of one chunk (2,048 accounts), chunk after chunk; on the calling thread
    beside the pool's for a book of 4 to 64 chunks; otherwise on the engine's pool, as the
    first call does: the same bits every way."""
    u = cm.Universe.demo()
    book = generate(u, n_accounts=n, seed=n)
    level("scalar")
    want = cm.Engine(u, threads=2).evaluate(book, prices={"BTC": 71_000.0})
    for name in LEVELS:
        level(name)
        engine = cm.Engine(u, threads=threads)
        fresh = engine.evaluate(book, prices={"BTC": 71_000.0})
        assert_same_bits(want, fresh, name)
        # out=: a result at other prices, overwritten in place with these prices' bits
        out = engine.evaluate(book)
        ids = [id(out[f]) for f in FIELDS]
        again = engine.evaluate(book, prices={"BTC": 71_000.0}, out=out)
        assert again is out and [id(out[f]) for f in FIELDS] == ids
        assert_same_bits(want, again, f"{name} out=")


def test_out_is_checked_like_numpys_out() -> None:
    u = cm.Universe.demo()
    engine = cm.Engine(u, threads=1)
    book = generate(u, n_accounts=50, seed=3)
    other = generate(u, n_accounts=60, seed=4)
    r = engine.evaluate(book)
    with pytest.raises(TableTypeError, match="MarginResult"):
        engine.evaluate(book, out=r.to_dict())  # type: ignore[arg-type]
    with pytest.raises(TableError, match="accounts"):
        engine.evaluate(other, out=r)
    cols = r.to_dict()
    cols["im"] = cols["im"].astype(np.float32)
    with pytest.raises(TableTypeError, match="out\\['im'\\]: dtype float32"):
        engine.evaluate(book, out=cm.MarginResult(cols))
    cols = r.to_dict()
    cols["mm"] = np.asarray(cols["mm"]).copy()
    cols["mm"].flags.writeable = False
    with pytest.raises(TableError, match="out\\['mm'\\]: not a writable"):
        engine.evaluate(book, out=cm.MarginResult(cols))
    cols = r.to_dict()
    cols["upnl"] = cols["equity"]
    with pytest.raises(TableError, match="out\\['upnl'\\]: shares memory"):
        engine.evaluate(book, out=cm.MarginResult(cols))
    cols = r.to_dict()
    cols["upnl"] = cols["equity"][:]  # another array object over the same memory
    with pytest.raises(TableError, match="out\\['upnl'\\]: shares memory"):
        engine.evaluate(book, out=cm.MarginResult(cols))
    # Columns carved from one buffer: accepted while disjoint, refused once two overlap (the
    # later one named), whatever the owner of their memory.
    n = book.n_accounts
    for step, clash in ((n, None), (n - 1, "upnl")):
        buf = np.zeros(10 * n)
        cols = r.to_dict()
        for k, f in enumerate(("equity", "upnl", "adj_equity_initial")):
            cols[f] = buf[k * step : k * step + n]
        if clash is None:
            engine.evaluate(book, out=cm.MarginResult(cols))
            assert_same_bits(r, cm.MarginResult(cols), "carved from one buffer")
        else:
            with pytest.raises(TableError, match=f"out\\['{clash}'\\]: shares memory"):
                engine.evaluate(book, out=cm.MarginResult(cols))
    with pytest.raises(ConfigError, match="out"):
        engine.evaluate(book, unit="USDT", out=r)


@pytest.mark.parametrize("offset", range(8))
def test_out_columns_at_any_offset_from_a_cache_line_get_the_same_bits(offset: int) -> None:
    # The kernel streams whole aligned 64-byte lines and writes the ends around them with
    # ordinary stores: columns that start anywhere in a line, with sentinels around them.
    u = cm.Universe.demo()
    n = 131_075  # more than 8 MiB of results: streaming stores (smaller ones are ordinary)
    book = generate(u, n_accounts=n, seed=11)
    for name in LEVELS:
        engine = cm.Engine(u, threads=2)
        want = engine.evaluate(book)
        bufs, cols = {}, want.to_dict()
        for f in FIELDS:
            buf = np.full(n + 16, True if cols[f].dtype == bool else -7.0, dtype=cols[f].dtype)
            bufs[f] = buf
            cols[f] = buf[offset : offset + n]
        out = cm.MarginResult(cols)
        import os

        os.environ["CROSSMARGIN_SIMD"] = name
        try:
            engine.evaluate(book, out=out)
        finally:
            os.environ.pop("CROSSMARGIN_SIMD", None)
        assert_same_bits(want, out, f"{name} at offset {offset}")
        for f, buf in bufs.items():
            fill = True if buf.dtype == bool else -7.0
            assert (buf[:offset] == fill).all() and (buf[offset + n :] == fill).all(), f


@pytest.mark.parametrize("n", [0, 1, 9, 30_001])
def test_fresh_result_columns_start_on_a_cache_line(n: int) -> None:
    # so that the first call and every out= call reusing its result stream whole lines (an
    # empty column has no line to start)
    u = cm.Universe.demo()
    book = generate(u, n_accounts=n, seed=5) if n else cm.Book.from_arrays()
    engine = cm.Engine(u, threads=2)
    for model in ("standard", "portfolio"):
        r = engine.evaluate(book, model=model)
        for f in FIELDS:
            assert not n or r[f].ctypes.data % 64 == 0, (model, f, r[f].ctypes.data % 64)
            assert len(r[f]) == n and r[f].flags.c_contiguous and r[f].flags.writeable, (model, f)
        if n:
            again = engine.evaluate(book, model=model)
            assert_same_bits(again, r, f"{model}: fresh aligned columns")


def test_a_universe_of_more_than_256_markets_gives_the_same_bits_at_every_level(level) -> None:  # type: ignore[no-untyped-def]
    # Past 256 codes the kernel's layout stores codes as u16 (rust tests/kernel_levels.rs
    # covers u8 / u16 / u32 alike); isolated positions in some lanes of a group, not others.
    import dataclasses

    demo = cm.Universe.demo()
    perp = demo.markets[demo.market_index["BTCUSDT"]]
    markets = [dataclasses.replace(perp, symbol=f"BTC-{i}") for i in range(300)]
    u = cm.Universe(list(demo.assets), markets, dict(demo.underlying_prices))
    rng = np.random.default_rng(5)
    n = 3_000
    account = np.repeat(np.arange(n), 3)
    code = (account * 7 + np.tile([0, 100, 200], n)) % 300  # 3 markets an account, all 300 used
    positions = {
        "account": account,
        "market": np.array([f"BTC-{i}" for i in code]),
        "qty": rng.normal(0, 2, 3 * n),
        "entry_price": rng.uniform(60_000, 80_000, 3 * n),
        "isolated_margin": np.where(rng.random(3 * n) < 0.3, rng.uniform(10, 5_000, 3 * n), 0.0),
    }
    balances = {
        "account": np.arange(n),
        "asset": np.array(["USDT"] * n),
        "qty": rng.uniform(-1_000, 50_000, n),
    }
    book = cm.Book.from_arrays(balances=balances, positions=positions)
    level("scalar")
    want = cm.Engine(u, threads=2).evaluate(book)
    for name in LEVELS:
        level(name)
        assert_same_bits(want, cm.Engine(u, threads=2).evaluate(book), name)
