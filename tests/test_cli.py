"""The `crossmargin` command: every subcommand through the CLI runner, outputs and exit codes,
and bad input as a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from crossmargin.cli import app, main
from typer.testing import CliRunner

runner = CliRunner()


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
    r = runner.invoke(app, ["margin", str(book_dir), "--out", str(tmp_path), "--json"])
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
        runner.invoke(app, ["margin", str(book_dir), "--out", str(tmp_path), "--quiet"]).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["liq-prices", str(book_dir), "--out", str(tmp_path), "--quiet"]
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
        (["margin", "/nonexistent/book"], "no such file"),
        (["margin", "{book}", "--universe", "/nonexistent.toml"], "no such file"),
        (["margin", "{book}", "--price", "BTC=nan"], "prices[BTC]"),
        (["margin", "{book}", "--price", "BTC"], "--price"),
        (["cascade", "{book}"], "--shock"),
        (["cascade", "{book}", "--shock", "BTC=-0.3", "--liquidity", "deep"], "--liquidity"),
        (["stress", "{book}", "--preset", "1929-10-29"], "preset"),
        (["report", "/nonexistent/folder"], "no such folder"),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(
    args: list[str], message: str, book_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        main([a.replace("{book}", str(book_dir)) for a in args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_wrong_columns_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"account": [1], "asset": ["USDT"], "amount": [1.0]}).to_parquet(
        tmp_path / "balances.parquet"
    )
    with pytest.raises(SystemExit) as e:
        main(["margin", str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "missing column 'qty'" in capsys.readouterr().err


def test_unknown_symbols_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pd.DataFrame({"account": [1, 2], "asset": ["USDT", "DOGE"], "qty": [1.0, 2.0]}).to_parquet(
        tmp_path / "balances.parquet"
    )
    with pytest.raises(SystemExit) as e:
        main(["margin", str(tmp_path), "--out", str(tmp_path / "o")])
    assert e.value.code == 2
    assert "balances row 1: unknown asset 'DOGE'" in capsys.readouterr().err
