"""API conventions: one home for every error (crossmargin.exceptions), and a library that
needs numpy and pyarrow only (pandas, typer, rich and matplotlib come with the ``cli``
extra)."""

from __future__ import annotations

import ast
import builtins
import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import exceptions
from crossmargin.bench import compare
from crossmargin.risk import funding
from helpers import book

PACKAGE = Path(cm.__file__).resolve().parent

# Raised by protocol: attribute lookup (__getattr__, read-only objects).
ALLOWED_BUILTINS = {"AttributeError"}


# ---- one error module --------------------------------------------------------------------
def _raised_names(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                out.append((node.lineno, exc.id))
    return out


def test_every_error_raised_is_a_crossmargin_error_subclass() -> None:
    """No module of the package raises a built-in exception class (ValueError, TypeError,
    KeyError, ...) or the bare base class: each raise names a CrossmarginError subclass of
    crossmargin.exceptions (also a ValueError / TypeError / KeyError where that fits)."""
    builtin_errors = {
        n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, Exception)
    }
    ours = {n for n in exceptions.__all__ if issubclass(getattr(exceptions, n), Exception)}
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, name in _raised_names(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(PACKAGE)}:{line} raises {name}"
            if name in ALLOWED_BUILTINS:
                continue
            if name in builtin_errors or name == "CrossmarginError":
                bad.append(where)
            elif name[:1].isupper() and name.endswith("Error") and name not in ours:
                bad.append(where + " (not in crossmargin.exceptions)")
    assert not bad, "\n".join(bad)


def test_every_error_class_lives_in_exceptions_and_derives_from_the_base() -> None:
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if issubclass(cls, Warning):
            continue
        assert issubclass(cls, cm.CrossmarginError), name
        assert cls.__module__ == "crossmargin.exceptions", name
    for cls in (exceptions.ConfigTypeError, exceptions.BookTypeError, exceptions.PriceTypeError,
                exceptions.TableTypeError):  # fmt: skip
        assert issubclass(cls, TypeError) and issubclass(cls, ValueError), cls
    for cls in (exceptions.ConfigError, exceptions.BookError, exceptions.PriceError,
                exceptions.TableError):  # fmt: skip
        assert issubclass(cls, ValueError), cls
    assert issubclass(exceptions.UnknownAccountError, KeyError)
    assert issubclass(exceptions.OptionalDependencyError, ImportError)
    assert issubclass(exceptions.LedgerError, exceptions.InternalError)


def test_ledger_error_moved_to_exceptions_and_is_still_found_where_it_was(small) -> None:
    from crossmargin import cascade
    from crossmargin.cascade import model

    assert cascade.LedgerError is model.LedgerError is exceptions.LedgerError is cm.LedgerError
    r = cm.Engine(small).cascade(
        book([(1, "USDT", 100.0)], [(1, "BTCUSDT", 1.0, 50_000.0)]),
        config=cm.CascadeConfig(shock={"BTC": -0.3}),
    )
    assert r.check_conservation()
    before, after = r._totals
    broken = dataclasses.replace(r, _totals=(before, [after[0] + 1, *after[1:]]))
    with pytest.raises(cm.LedgerError, match=r"ledger\[USDT\]") as info:
        broken.check_conservation()
    assert info.value.field == "ledger[USDT]"


def test_funding_that_is_not_zero_sum_is_a_ledger_error(small) -> None:
    b = book(pos=[(1, "BTCUSDT", 2.0, 50_000.0), (2, "BTCUSDT", -0.5, 50_000.0)])
    fr = cm.Engine(small).apply_funding(b, rates={"BTCUSDT": 0.0001})
    cols = fr.payments.to_dict()
    cols["payment_minor"] = cols["payment_minor"] + np.array([0, 1])
    bad = funding.FundingResult(cm.Table(cols), fr.markets, fr.counterparty, fr.book)
    with pytest.raises(cm.LedgerError, match="not zero-sum") as info:
        bad.check_zero_sum()
    assert info.value.field == "funding[BTCUSDT]"


def test_write_book_with_an_unknown_format_is_a_config_error(small, tmp_path) -> None:
    with pytest.raises(cm.ConfigError, match="fmt") as info:
        cm.write_book(book([(1, "USDT", 1.0)]), tmp_path, small, fmt="xlsx")
    assert isinstance(info.value, ValueError) and info.value.field == "fmt"


def test_a_malformed_table_is_a_table_error() -> None:
    with pytest.raises(cm.TableError, match="unequal length") as info:
        cm.Table({"a": [1, 2], "b": [1]})
    assert isinstance(info.value, ValueError) and info.value.column == "b"
    with pytest.raises(cm.TableError, match="1 dimension") as info:
        cm.Table({"a": np.zeros((2, 2))})
    assert info.value.column == "a"


def test_an_unknown_account_is_a_book_error_and_a_key_error(small) -> None:
    b = book([(1, "USDT", 1.0)])
    eng = cm.Engine(small)
    for call in (lambda: eng.solvency(b).proof(2), lambda: eng.explain(b, account=2)):
        with pytest.raises(cm.UnknownAccountError) as info:
            call()
        e = info.value
        assert isinstance(e, KeyError) and isinstance(e, cm.BookError) and e.column == "account"
        assert str(e) == "account 2 is not in the book"  # not quoted as a KeyError would be


def test_bench_compare_argument_errors_are_crossmargin_errors() -> None:
    from crossmargin import synth

    u = cm.Universe.demo()
    b = synth.generate(u, n_accounts=5, seed=1)
    with pytest.raises(cm.ConfigError, match="repeat"):
        compare(lambda v: {"im": 1.0}, b, u, repeat=0, verbose=False)
    with pytest.raises(cm.BookError, match="no accounts"):
        compare(lambda v: {"im": 1.0}, cm.Book.from_arrays(), u, verbose=False)
    with pytest.raises(cm.TableError, match="none of the fields"):
        compare(lambda v: {"nothing": 1.0}, b, u, verbose=False)
    with pytest.raises(exceptions.TableTypeError, match="mapping of per-account columns"):
        compare(lambda b, p: 42, b, u, vectorised=True, verbose=False)


# ---- numpy and pyarrow only --------------------------------------------------------------
BLOCKED = ("pandas", "typer", "rich", "matplotlib")

BLOCKER = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Refuse())
for name in list(sys.modules):
    assert name.partition(".")[0] not in {blocked!r}, name
"""


def _run_blocked(code: str, blocked: tuple[str, ...] = BLOCKED) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where the ``blocked`` packages cannot be imported."""
    env = dict(os.environ)
    root = str(PACKAGE.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=blocked) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_library_works_with_pandas_typer_rich_and_matplotlib_missing(tmp_path) -> None:
    """A subprocess in which pandas, typer, rich and matplotlib cannot be imported: the
    library imports, evaluates a small book, converts results through Arrow and numpy,
    writes and reads a book, maps it to a venue; to_pandas() says which extra it needs."""
    r = _run_blocked(
        f"""
        import math, sys
        import crossmargin as cm
        from crossmargin import reference, venues
        from crossmargin.exceptions import OptionalDependencyError

        u = cm.Universe.demo()
        b = cm.Book.from_arrays(
            {{"account": [1, 1, 2], "asset": ["USDT", "BTC", "USDT"], "qty": [5e3, 0.1, 800.0]}},
            {{"account": [1, 1, 2], "market": ["BTCUSDT", "BTCUSD_PERP", "ETHUSDT"],
              "qty": [0.5, 100.0, -3.0], "entry_price": [94_000.0, 95_000.0, 3_250.0]}},
        )
        eng = cm.Engine(u, threads=1)
        r = eng.evaluate(b)
        assert r.account.tolist() == [1, 2] and all(math.isfinite(x) for x in r.im)
        assert r.to_arrow().num_rows == 2 and r.to_numpy()["mm"].tolist() == r.mm.tolist()
        want = reference.evaluate(u, b)
        assert max(abs(x - y) for x, y in zip(r.equity, want.equity)) < 1e-6
        st = eng.stress(b, scenarios={{"crash": {{"BTC": -0.3}}}})
        assert st.to_arrow().num_rows == 1 and st.tables["matrix"].to_numpy().shape == (2,)
        eng.cascade(b, config=cm.CascadeConfig(shock={{"BTC": -0.3}})).check_conservation()
        cm.write_book(b, {str(tmp_path)!r}, u)
        assert cm.Engine(u).evaluate(cm.read_book({str(tmp_path)!r})).mm.tolist() == r.mm.tolist()
        mapped, _ = venues.map_book(b, u, venues.drift_v2())
        assert len(cm.Engine(venues.drift_v2()).evaluate(mapped)) == 2
        try:
            r.to_pandas()
        except OptionalDependencyError as e:
            assert isinstance(e, ImportError) and "pip install 'crossmargin[cli]'" in str(e), e
        else:
            raise AssertionError("to_pandas() worked without pandas")
        for name in {BLOCKED!r}:
            assert name not in sys.modules, name
        print("ok")
        """
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_crossmargin_testing_without_hypothesis_says_how_to_get_it() -> None:
    r = _run_blocked(
        """
        import crossmargin as cm
        try:
            import crossmargin.testing
        except ImportError as e:
            assert isinstance(e, cm.OptionalDependencyError), type(e)
            print(e)
        """,
        blocked=("hypothesis",),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        "crossmargin.testing needs hypothesis, an optional dependency: pip install hypothesis"
    )


def test_the_command_line_without_its_extra_says_so_in_one_line() -> None:
    r = _run_blocked(
        """
        from crossmargin.cli import main
        main(["demo"])
        """
    )
    assert r.returncode == 2, r.stderr
    assert (
        r.stderr == "crossmargin's command line needs its extra: pip install 'crossmargin[cli]'\n"
    )
    assert r.stdout == ""
