"""The boundary between Python and the compiled core (``crossmargin._core``): one compiled
object per universe, a book crossing as one bound view, prices as one pair, constants with
one home, and the public Engine's calling conventions."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import _core, cascade, prices, universe
from crossmargin.risk import funding, liqprice, solvency

ROOT = Path(__file__).resolve().parents[1]
BINDINGS = ROOT / "rust" / "crossmargin-py" / "src"


def test_constants_come_from_the_core() -> None:
    assert _core.SCALE == 100_000_000 and isinstance(_core.SCALE, int)
    assert funding.SCALE == solvency.SCALE == _core.SCALE
    assert (_core.MIN_PRICE, _core.MAX_PRICE) == (1e-18, 1e18)
    assert (prices.MIN_PRICE, prices.MAX_PRICE) == (_core.MIN_PRICE, _core.MAX_PRICE)
    assert _core.MAX_AMOUNT == 1e28 and _core.MAX_TOTAL_MINOR == 10**36
    assert (liqprice.S_MIN, liqprice.S_MAX) == (_core.LIQ_S_MIN, _core.LIQ_S_MAX) == (1e-6, 1e6)
    assert (funding.DEFAULT_INTEREST, funding.DAMPENER) == (0.0001, 0.0005)
    assert (
        cascade.EVENT_KINDS
        == _core.EVENT_KINDS
        == (
            "liquidation",
            "isolated",
            "bankruptcy",
            "adl",
            "socialized_loss",
        )
    )
    assert universe.MARKET_KINDS == _core.MARKET_KINDS == ("perp", "future", "option")
    assert cascade.DELEVERAGE == _core.DELEVERAGE == ("adl", "socialized_loss", "none")
    assert liqprice.LIQ_MOVES == _core.LIQ_MOVES == ("underlying", "mark")
    assert set(_core.PORTFOLIO_MODELS) == set(cm.engine.MODELS) - {"standard"}
    option = cm.Market("X", "option", "USDT", "BTC", option_type="call", strike=1, expiry=1, iv=1)
    assert (option.im_base, option.im_min, option.mm_base) == (
        _core.DERIBIT_IM_BASE,
        _core.DERIBIT_IM_MIN,
        _core.DERIBIT_MM_BASE,
    )


def test_every_named_mode_is_accepted_by_the_engine(small: cm.Universe) -> None:
    eng = cm.Engine(small)
    b = cm.Book.from_arrays(
        {"account": [1], "asset": ["USDT"], "qty": [1_000.0]},
        {"account": [1], "market": ["BTCUSDT"], "qty": [0.1], "entry_price": [50_000.0]},
    )
    for move in _core.LIQ_MOVES:
        assert len(eng.liquidation_prices(b, move=move)) == 1  # type: ignore[arg-type]
    for how in _core.DELEVERAGE:
        cfg = cm.CascadeConfig(shock={"BTC": -0.5}, deleverage=how)  # type: ignore[arg-type]
        assert eng.cascade(b, cfg).check_conservation()


def test_no_free_function_takes_a_book() -> None:
    functions = {n for n, f in vars(_core).items() if inspect.isbuiltin(f)}
    assert functions == {
        "black76_columns",
        "bsm_columns",
        "encode_arrow_strings",
        "encode_str_objects",
        "funding_rates",
        "huge_pages",
        "leaf_nonce",
        "panic_guard_selftest",
        "set_huge_pages",
        "simd_levels",
        "verify_inclusion",
    }


def test_no_binding_takes_too_many_arguments() -> None:
    for path in sorted(BINDINGS.glob("*.rs")):
        assert "too_many_arguments" not in path.read_text(encoding="utf-8"), path.name


def test_a_book_crosses_bound_to_its_universe(small: cm.Universe) -> None:
    b = cm.Book.from_arrays(
        {"account": [3, 1], "asset": ["BTC", "USDT"], "qty": [0.5, 100.0]},
        {"account": [1], "market": ["BTCUSDT"], "qty": [0.1], "entry_price": [50_000.0]},
    )
    view = b.grouping(small)
    assert isinstance(view, _core.BookView)
    assert view.n_accounts == 2 and view.nbytes > 0
    # Symbols sorted (BTC, USDT) do not follow the universe's order (USDT first): the view
    # reads a copy regrouped in universe order, codes = universe indices.
    np.testing.assert_array_equal(view.asset_remap, np.arange(len(small.assets)))
    np.testing.assert_array_equal(view.market_remap, np.arange(len(small.markets)))
    in_order = cm.Book.from_arrays({"account": [1, 1], "asset": [0, 2], "qty": [1.0, 2.0]})
    v = in_order.grouping(small)
    np.testing.assert_array_equal(v.asset_remap, [0, 1, 2])  # the book's own codes
    assert v.nbytes == in_order.grouped_nbytes
    native = _core.Engine(small.compiled, 1)
    cols = native.evaluate(view, prices.resolve(small, None))
    np.testing.assert_array_equal(cols["equity"], cm.Engine(small).evaluate(b).equity)
    assert native.with_universe(small.compiled).threads == 1
    assert native.universe is small.compiled


def test_the_core_checks_what_crosses(small: cm.Universe) -> None:
    b = cm.Book.from_arrays({"account": [1], "asset": ["USDT"], "qty": [1.0]})
    native = _core.Engine(small.compiled, 1)
    a, m = prices.resolve(small, None)
    with pytest.raises(cm.PriceError, match="asset prices"):
        native.evaluate(b.grouping(small), (a[:1], m))
    with pytest.raises(TypeError):
        native.evaluate(b, (a, m))  # type: ignore[arg-type]  # a Book, not a BookView


def test_engine_options_are_keyword_only_and_documented() -> None:
    data = {"self", "book", "scenarios", "insurance_fund", "config", "account", "rates"}
    data |= {"exchange_assets"}
    for name, method in inspect.getmembers(cm.Engine, inspect.isfunction):
        if name.startswith("_"):
            continue
        params = inspect.signature(method).parameters.values()
        for p in params:
            if p.name not in data:
                assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"Engine.{name}({p.name})"
        doc = inspect.getdoc(method) or ""
        assert "Parameters:" in doc and "Returns:" in doc and ">>>" in doc, name
        for p in params:
            if p.name != "self":
                assert re.search(rf"^\s+{p.name}:", doc, re.M), f"Engine.{name}: {p.name}"
