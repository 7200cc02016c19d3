"""The `crossmargin` command: every subcommand through the CLI runner, outputs and exit codes,
and bad input as a one-line error."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import crossmargin as cm
import pandas as pd
import pytest
from crossmargin.cli import app, main
from crossmargin.io import read_book, write_book
from crossmargin.synth import generate
from typer.testing import CliRunner

runner = CliRunner()
DEMO = ["--universe", "demo"]
CRASH = ["--price", "BTC=40000", "--price", "ETH=1000", "--price", "SOL=40"]
DEMO_TOML = Path(cm.__file__).parent / "data" / "universe.toml"


def _fails(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    """Runs the script's entry point expecting ``code``; returns the one error line."""
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error: " in line]
    assert len(lines) == 1, err
    assert err.strip().splitlines()[-1] == lines[0], err
    return lines[0]


def _runs(args: list[str], code: int = 0) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == code


@pytest.fixture(scope="module")
def small_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("small")
    u = cm.Universe.demo()
    write_book(generate(u, n_accounts=200, seed=11), d, u)
    return d


@pytest.fixture(scope="module")
def other_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("other")
    u = cm.Universe.demo()
    write_book(generate(u, n_accounts=200, seed=12), d, u)
    return d


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("book")
    r = runner.invoke(app, ["generate", str(d), "--accounts", "3000", "--seed", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    return d


def test_generate_writes_both_tables(book_dir: Path) -> None:
    b = pd.read_parquet(book_dir / "balances.parquet")
    p = pd.read_parquet(book_dir / "positions.parquet")
    assert {"account", "asset", "qty"} <= set(b.columns)
    assert {"account", "market", "qty", "entry_price", "isolated_margin"} <= set(p.columns)
    assert b.account.nunique() == 3000


def test_generate_csv(tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["generate", str(tmp_path), "--accounts", "50", "--format", "csv", "--quiet"]
    )
    assert r.exit_code == 0
    assert (tmp_path / "balances.csv").exists() and (tmp_path / "positions.csv").exists()


def test_margin_writes_results_and_summary(book_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["margin", str(book_dir), *DEMO, "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    m = pd.read_parquet(tmp_path / "margin.parquet")
    assert len(m) == summary["accounts"] == 3000
    assert int(m.liquidatable.sum()) == summary["liquidatable"]
    assert json.loads((tmp_path / "summary.json").read_text())["margin"]["accounts"] == 3000


def test_margin_exit_code_flags_liquidatable_accounts(book_dir: Path, tmp_path: Path) -> None:
    crashed = ["--price", "BTC=40000", "--price", "ETH=1000", "--price", "SOL=40"]
    r = runner.invoke(
        app,
        [
            "margin",
            str(book_dir),
            *DEMO,
            "--out",
            str(tmp_path),
            "--quiet",
            *crashed,
            "--fail-if-liquidatable",
            "0",
        ],
    )
    assert r.exit_code == 1
    r = runner.invoke(
        app,
        [
            "margin",
            str(book_dir),
            *DEMO,
            "--out",
            str(tmp_path),
            "--quiet",
            "--fail-if-liquidatable",
            "100000",
        ],
    )
    assert r.exit_code == 0


def test_stress_presets_and_custom_scenarios(book_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "stress",
            str(book_dir),
            *DEMO,
            "--out",
            str(tmp_path),
            "--preset",
            "2020-03-12",
            "--scenario",
            "mild:BTC=-0.05,ETH=-0.05",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    s = pd.read_parquet(tmp_path / "stress.parquet")
    assert list(s.scenario) == ["2020-03-12", "mild"]
    assert s.bad_debt.iloc[0] >= s.bad_debt.iloc[1]


def test_cascade_writes_events_rounds_and_final_book(book_dir: Path, tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            "cascade",
            str(book_dir),
            *DEMO,
            "--out",
            str(tmp_path),
            "--shock",
            "BTC=-0.3",
            "--shock",
            "ETH=-0.3",
            "--insurance-fund",
            "1e6",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rounds"] >= 1
    assert len(pd.read_parquet(tmp_path / "cascade_events.parquet")) > 0
    assert (tmp_path / "cascade_final" / "balances.parquet").exists()


def test_liq_prices_and_report(book_dir: Path, tmp_path: Path) -> None:
    assert (
        runner.invoke(
            app, ["margin", str(book_dir), *DEMO, "--out", str(tmp_path), "--quiet"]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["liq-prices", str(book_dir), *DEMO, "--out", str(tmp_path), "--quiet"]
        ).exit_code
        == 0
    )
    lp = pd.read_parquet(tmp_path / "liq_prices.parquet")
    assert {"account", "market", "liq_price"} <= set(lp.columns)
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "report.html").read_text()
    assert "Margin-ratio distribution" in html and "data:image/png;base64," in html


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    r = runner.invoke(app, ["demo", "--accounts", "2000", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["accounts"] == 2000
    for name in (
        "margin",
        "stress",
        "cascade_rounds",
        "cascade_events",
        "liq_prices",
        "efficiency",
        "collateral",
    ):
        assert (tmp_path / f"{name}.parquet").exists(), name
    html = Path(summary["report"]).read_text()
    assert html.count("data:image/png;base64,") >= 5


def test_every_command_explains_itself() -> None:
    for cmd in ("demo", "generate", "margin", "stress", "cascade", "liq-prices", "report", "bench"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, cmd


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["margin", "/nonexistent/book", *DEMO], "no such file"),
        (["margin", "{book}", "--universe", "/nonexistent.toml"], "no such file"),
        (["margin", "{book}", *DEMO, "--price", "BTC=nan"], "prices[BTC]"),
        (["margin", "{book}", *DEMO, "--price", "BTC"], "--price"),
        (["cascade", "{book}", *DEMO], "--shock"),
        (
            ["cascade", "{book}", *DEMO, "--shock", "BTC=-0.3", "--liquidity", "deep"],
            "--liquidity",
        ),
        (["stress", "{book}", *DEMO, "--preset", "1929-10-29"], "preset"),
        (["report", "/nonexistent/folder"], "no such folder"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(
    args: list[str],
    message: str,
    book_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [a.replace("{book}", str(book_dir)) for a in args]
    if args[0] != "report":
        args += ["--out", str(tmp_path / "out")]
    err = _fails(args, capsys)
    assert message in err


def test_wrong_columns_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"account": [1], "asset": ["USDT"], "amount": [1.0]}).to_parquet(
        tmp_path / "balances.parquet"
    )
    with pytest.raises(SystemExit) as e:
        main(["margin", str(tmp_path), *DEMO, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "missing column 'qty'" in capsys.readouterr().err


def test_unknown_symbols_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"account": [1, 2], "asset": ["USDT", "DOGE"], "qty": [1.0, 2.0]}).to_parquet(
        tmp_path / "balances.parquet"
    )
    with pytest.raises(SystemExit) as e:
        main(["margin", str(tmp_path), *DEMO, "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "balances row 1: unknown asset 'DOGE' (0-based row of " in capsys.readouterr().err


# ---- exit codes through the script's entry point (main) ---------------------------------
def test_fail_if_thresholds_exit_1_through_the_entry_point(
    small_book: Path, tmp_path: Path
) -> None:
    book = str(small_book)
    out = ["--out", str(tmp_path), "-q"]
    _runs(["margin", book, *DEMO, *out, *CRASH, "--fail-if-liquidatable", "0"], 1)
    _runs(["margin", book, *DEMO, *out, "--fail-if-liquidatable", "1000000"], 0)
    stress = ["stress", book, *DEMO, *out, "--preset", "2020-03-12"]
    _runs([*stress, "--fail-if-bad-debt-exceeds-fund"], 1)
    _runs([*stress, "--insurance-fund", "1e12", "--fail-if-bad-debt-exceeds-fund"], 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["margin", "{book}", "--bogus"], "No such option: --bogus"),
        (["margin"], "Missing argument"),
        (["margin", "{book}", *DEMO, "--threads", "abc"], "'--threads'"),
        (["nosuchcommand"], "No such command"),
        (["demo", "--accounts", "-5"], "'--accounts'"),
        (["demo", "--accounts", "0"], "'--accounts'"),
        (["generate", "{out}", "--accounts", "0"], "'--accounts'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    args: list[str],
    message: str,
    small_book: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [a.replace("{book}", str(small_book)).replace("{out}", str(tmp_path)) for a in args]
    line = _fails(args, capsys)
    assert line.startswith("error: ") and message in line


def test_bare_command_shows_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([])
    captured = capsys.readouterr()
    assert e.value.code == 2 and "Usage" in captured.out and "Traceback" not in captured.err
    _runs(["--help"], 0)


def test_an_unexpected_exception_is_an_internal_error_exit_3(
    small_book: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cm.Engine, "evaluate", boom)
    args = ["margin", str(small_book), *DEMO, "-o", str(tmp_path), "-q"]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 3
    assert err.startswith("internal error: ZeroDivisionError: boom") and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["--debug", *args])
    err = capsys.readouterr().err
    assert e.value.code == 3 and "Traceback" in err and "ZeroDivisionError: boom" in err


@pytest.mark.parametrize("command", ["margin", "stress", "cascade", "liq-prices", "compare-venues"])
def test_commands_on_a_book_need_a_universe(
    command: str, small_book: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [command, str(small_book), "-o", str(tmp_path), "-q"]
    if command == "cascade":
        args += ["--shock", "BTC=-0.3"]
    line = _fails(args, capsys)
    assert "--universe is required" in line and "--universe demo" in line
    assert not (tmp_path / "summary.json").exists()


def test_demo_and_generate_say_which_universe_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _runs(["generate", str(tmp_path / "a"), "--accounts", "20"])
    assert "universe: built-in demo universe" in capsys.readouterr().err
    toml = tmp_path / "u.toml"
    toml.write_bytes(DEMO_TOML.read_bytes())
    _runs(["generate", str(tmp_path / "b"), "--accounts", "20", "-u", str(toml)])
    assert f"universe: {toml}" in capsys.readouterr().err
    _runs(["generate", str(tmp_path / "c"), "--accounts", "20", "-q"])
    assert capsys.readouterr().err == ""


# ---- file system and I/O -----------------------------------------------------------------
def test_file_system_failures_are_one_line_exit_2(
    small_book: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = str(small_book)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    line = _fails(["margin", book, *DEMO, "--out", str(a_file), "-q"], capsys)
    assert "exists and is not a folder" in line
    line = _fails(["generate", str(a_file), "--accounts", "5", "-q"], capsys)
    assert "exists and is not a folder" in line

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "balances.parquet").write_bytes(b"PAR1 not really parquet")
    line = _fails(["margin", str(corrupt), *DEMO, "-o", str(tmp_path / "o1"), "-q"], capsys)
    assert "balances.parquet: cannot read as Parquet" in line

    out = tmp_path / "o2"
    out.mkdir()
    (out / "summary.json").write_text('{"margin": ')
    line = _fails(["margin", book, *DEMO, "-o", str(out), "-q"], capsys)
    assert "summary.json: corrupt summary.json" in line and "--overwrite" in line
    (out / "margin.parquet").write_bytes((small_book / "balances.parquet").read_bytes())
    line = _fails(["report", str(out)], capsys)
    assert "corrupt summary.json" in line

    line = _fails(["margin", str(tmp_path / "missing"), *DEMO, "-o", str(out), "-q"], capsys)
    assert "missing: no such file" in line
    line = _fails(["margin", book, "-u", str(tmp_path), "-o", str(tmp_path / "o3")], capsys)
    assert str(tmp_path) in line  # a folder as the universe file


# ---- --price, --shock, --scenario --------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["margin", "--price", "BTC=abc"], "--price: 'abc' in 'BTC=abc' is not a price"),
        (["margin", "--price", "=5"], "--price: '=5' is not SYMBOL=PRICE"),
        (["margin", "--price", "BTC=1", "--price", "BTC=2"], "--price: BTC given twice"),
        (["stress", "--scenario", "a:BTC=x"], "--scenario a: 'x' in 'BTC=x' is not a move"),
        (
            ["stress", "--scenario", "a:BTC=-0.1", "--scenario", "a:ETH=-0.1"],
            "--scenario: 'a' given twice",
        ),
        (["stress", "--scenario", "a:BTC=-0.1,BTC=-0.2"], "--scenario a: BTC given twice"),
        (
            ["stress", "--preset", "2020-03-12", "--scenario", "2020-03-12:BTC=-0.1"],
            "'2020-03-12' given twice",
        ),
        (["stress", "--preset", "2020-03-12", "--preset", "2020-03-12"], "2020-03-12 given twice"),
        (["cascade", "--shock", "BTC=down"], "--shock: 'down' in 'BTC=down' is not a move"),
        (["cascade", "--shock", "BTC=-0.1", "--shock", "BTC=-0.2"], "--shock: BTC given twice"),
        (
            ["cascade", "--preset", "2020-03-12", "--shock", "BTC=-0.1"],
            "--shock: BTC is already moved by --preset 2020-03-12",
        ),
    ],
)
def test_malformed_or_repeated_moves_are_errors(
    args: list[str],
    message: str,
    small_book: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _fails([args[0], str(small_book), *DEMO, "-o", str(tmp_path), *args[1:]], capsys)
    assert message in line
    assert not (tmp_path / "summary.json").exists()


# ---- provenance and the output folder ----------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_provenance_is_recorded_and_same_input_runs_merge(small_book: Path, tmp_path: Path) -> None:
    book = str(small_book)
    _runs(["margin", book, *DEMO, "-o", str(tmp_path), "-q", "--price", "BTC=60000"])
    _runs(["stress", book, *DEMO, "-o", str(tmp_path), "-q", "--preset", "2020-03-12"])
    _runs(["liq-prices", book, *DEMO, "-o", str(tmp_path), "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"margin", "stress", "marks", "provenance"} <= set(summary)
    prov = summary["provenance"]
    assert set(prov) == {"margin", "stress", "liq-prices"}
    m = prov["margin"]
    assert m["crossmargin_version"] == cm.__version__
    assert m["command"] == "margin"
    assert m["argv"][:2] == ["margin", book] and "--price" in m["argv"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["utc"])
    assert m["universe"] == {"path": "demo", "sha256": _sha(DEMO_TOML)}
    assert m["book"]["path"] == str(small_book.resolve())
    assert m["book"]["sha256"] == {
        "balances.parquet": _sha(small_book / "balances.parquet"),
        "positions.parquet": _sha(small_book / "positions.parquet"),
    }
    assert m["prices"] == {"BTC": 60000.0}
    assert prov["stress"]["scenarios"]["2020-03-12"]["BTC"] == -0.5
    _runs(["report", str(tmp_path), "-q"])
    html = (tmp_path / "report.html").read_text()
    assert "<h2>Provenance</h2>" in html and _sha(small_book / "balances.parquet") in html


def test_demo_records_its_provenance(tmp_path: Path) -> None:
    _runs(["demo", "--accounts", "300", "--out", str(tmp_path), "-q", "--no-report"])
    prov = json.loads((tmp_path / "summary.json").read_text())["provenance"]["demo"]
    assert prov["book"] == {"synthetic": {"accounts": 300, "seed": 7}}
    assert prov["universe"]["path"] == "demo"


def test_another_book_or_universe_is_refused_unless_overwrite(
    small_book: Path,
    other_book: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = ["-o", str(tmp_path), "-q"]
    _runs(["margin", str(small_book), *DEMO, *out])
    _runs(["stress", str(small_book), *DEMO, *out, "--preset", "2020-03-12"])
    before = (tmp_path / "summary.json").read_text()

    line = _fails(["margin", str(other_book), *DEMO, *out], capsys)
    assert "different book" in line and str(small_book.resolve()) in line
    assert "--overwrite" in line
    toml = tmp_path.parent / f"{tmp_path.name}-universe.toml"
    toml.write_text(DEMO_TOML.read_text() + "\n# the same, but another file\n")
    line = _fails(["margin", str(small_book), "-u", str(toml), *out], capsys)
    assert "different universe" in line
    assert (tmp_path / "summary.json").read_text() == before  # nothing merged

    _runs(["margin", str(other_book), *DEMO, *out, "--overwrite"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["provenance"]) == {"margin"} and "stress" not in summary
    assert summary["provenance"]["margin"]["book"]["path"] == str(other_book.resolve())
    assert not (tmp_path / "stress.parquet").exists()  # the other run's outputs are gone
    assert (tmp_path / "margin.parquet").exists()

    (tmp_path / "summary.json").write_text(json.dumps({"margin": {"accounts": 1}}))
    line = _fails(["margin", str(other_book), *DEMO, *out], capsys)
    assert "no provenance" in line


# ---- --json errors and row numbers -------------------------------------------------------
def test_json_errors_are_json_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "balances.csv").write_text("account,asset,qty\n1,USDT,100\n2,DOGE,5\n")
    with pytest.raises(SystemExit) as e:
        main(["margin", str(book), *DEMO, "-o", str(tmp_path / "o"), "--json"])
    captured = capsys.readouterr()
    assert e.value.code == 2
    error = json.loads(captured.out)["error"]
    assert error["type"] == "BookError"
    assert error["message"].startswith("balances row 1: unknown asset 'DOGE' (line 3 of ")
    assert error["table"] == "balances" and error["row"] == 1 and error["column"] == "asset"
    assert error["line"] == 3 and error["file"] == str(book / "balances.csv")
    assert "other_row" not in error and "Traceback" not in captured.err

    with pytest.raises(SystemExit) as e:
        main(["margin", str(book), "--bogus", "--json"])
    assert e.value.code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "UsageError" and "--bogus" in error["message"]

    with pytest.raises(SystemExit) as e:
        main(["margin", str(book), *DEMO, "--price", "BTC=1", "--price", "BTC=2", "--json"])
    assert e.value.code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error == {
        "type": "ConfigError",
        "message": "--price: BTC given twice",
        "field": "--price",
    }


def test_csv_rows_are_located_by_file_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "positions.csv").write_text(
        "account,market,qty,entry_price\n1,BTCUSDT,1,90000\n2,ETHUSDT,1,3000\n1,BTCUSDT,2,91000\n"
    )
    line = _fails(["margin", str(book), *DEMO, "-o", str(tmp_path / "o"), "-q"], capsys)
    assert line.endswith(f"(line 4 of {book / 'positions.csv'}; row 0 is line 2)")

    gz = tmp_path / "b.csv.gz"
    gz.write_bytes(gzip.compress(b"account,asset,qty\n1,USDT,100\n2,DOGE,5\n"))
    line = _fails(["margin", str(gz), *DEMO, "-o", str(tmp_path / "o"), "-q"], capsys)
    assert line.endswith(f"unknown asset 'DOGE' (line 3 of {gz})")


# ---- reading books -----------------------------------------------------------------------
def test_read_book_reads_gzipped_csv(small_book: Path, tmp_path: Path) -> None:
    u = cm.Universe.demo()
    want = read_book(small_book)
    gz = tmp_path / "gz"
    gz.mkdir()
    csv = tmp_path / "csv"
    write_book(want, csv, u, "csv")
    for name in ("balances", "positions"):
        (gz / f"{name}.csv.gz").write_bytes(gzip.compress((csv / f"{name}.csv").read_bytes()))
    got = read_book(gz)
    assert got.n_accounts == want.n_accounts == 200
    a = cm.Engine(u).evaluate(got).to_pandas()
    b = cm.Engine(u).evaluate(want).to_pandas()
    pd.testing.assert_frame_equal(a, b)
    single = read_book(gz / "positions.csv.gz")
    assert len(single.positions["qty"]) == len(want.positions["qty"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("balances.parquet", b"PAR1garbagePAR1", "cannot read as Parquet"),
        ("balances.csv.gz", b"not gzip at all", "cannot read as CSV"),
        ("balances.csv", b'account,asset,qty\n1,"USDT\n', "cannot read as CSV"),
    ],
)
def test_corrupt_book_files_are_book_errors_naming_the_file(
    name: str, content: bytes, message: str, tmp_path: Path
) -> None:
    (tmp_path / name).write_bytes(content)
    for path in (tmp_path, tmp_path / name):
        with pytest.raises(cm.BookError, match=re.escape(f"{tmp_path / name}: {message}")):
            read_book(path)
