"""The installed `crossmargin` script as a scheduler runs it: a separate process, judged by
its exit code, stdout and stderr only (exit codes 0 / 1 / 2, a one-line error, no traceback).

Each process start costs about a second, so there are few of these, on tiny books; the
in-process tests of tests/test_cli.py cover the cases in breadth."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import crossmargin as cm
import pandas as pd
import pytest
from crossmargin.io import write_book
from crossmargin.synth import generate
from helpers import run

CRASH = ["--price", "BTC=40000", "--price", "ETH=1000", "--price", "SOL=40"]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("book")
    u = cm.Universe.demo()
    write_book(generate(u, n_accounts=200, seed=5), d, u)
    return d


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_a_crossed_threshold_exits_1(script: str, book: Path, tmp_path: Path) -> None:
    p = run(
        script,
        "margin",
        str(book),
        "--universe",
        "demo",
        "-o",
        "out",
        "-q",
        *CRASH,
        "--fail-if-liquidatable",
        "0",
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr
    assert p.stderr == "" and (tmp_path / "out" / "margin.parquet").exists()
    p = run(
        script,
        "stress",
        str(book),
        "--universe",
        "demo",
        "-o",
        "out",
        "-q",
        "--preset",
        "2020-03-12",
        "--fail-if-bad-debt-exceeds-fund",
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["provenance"]) == {"margin", "stress"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["margin", "{book}", "--universe", "demo", "--bogus"], "No such option: --bogus"),
        (["margin", "{book}", "--universe", "demo", "--threads", "abc"], "'--threads'"),
        (["margin", "{book}"], "--universe is required"),
        (["demo", "--accounts", "-5"], "'--accounts'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    script: str, book: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    p = run(script, *[a.replace("{book}", str(book)) for a in args], cwd=tmp_path)
    assert p.returncode == 2
    assert message in one_line_error(p)
    assert list(tmp_path.iterdir()) == []  # nothing ran


def test_a_bad_row_with_json_is_a_json_error(script: str, tmp_path: Path) -> None:
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "balances.csv").write_text("account,asset,qty\n1,USDT,1\n7,DOGE,5\n")
    p = run(script, "margin", "book", "--universe", "demo", "--json", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    error = json.loads(p.stdout)["error"]
    assert error["type"] == "BookError"
    assert error["message"] == (
        "balances row 1: unknown asset 'DOGE' (line 3 of book/balances.csv)"
    )
    assert (error["table"], error["row"], error["column"], error["line"]) == (
        "balances",
        1,
        "asset",
        3,
    )


def test_an_unreachable_scheduler_fails_fast(script: str, book: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    p = run(
        script,
        "margin",
        str(book),
        "--universe",
        "demo",
        "--scheduler",
        "tcp://127.0.0.1:1",
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 2
    assert "cannot connect to tcp://127.0.0.1:1" in one_line_error(p)
    assert time.monotonic() - t0 < 20


def test_no_huge_pages_is_a_root_option_that_changes_no_number(
    script: str, book: Path, tmp_path: Path
) -> None:
    tables = []
    for option in ("--huge-pages", "--no-huge-pages"):
        out = tmp_path / option.strip("-")
        p = run(
            script,
            option,
            "margin",
            str(book),
            "--universe",
            "demo",
            "-o",
            str(out),
            "-q",
            cwd=tmp_path,
        )
        assert p.returncode == 0 and p.stderr == "", p.stderr
        tables.append(pd.read_parquet(out / "margin.parquet"))
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
