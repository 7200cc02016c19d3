"""`crossmargin montecarlo`: outputs, provenance, the saved paths reused, the report section,
and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import crossmargin as cm
import numpy as np
import pandas as pd
import pytest
from crossmargin import montecarlo as mc
from crossmargin.cli import main
from crossmargin.io import write_book
from crossmargin.synth import generate


def _run(args: list[str], code: int = 0) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == code


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mcbook")
    u = cm.Universe.demo()
    write_book(generate(u, n_accounts=150, seed=11), d, u)
    return d


def test_montecarlo_command_writes_its_outputs_and_report(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "montecarlo",
        str(book),
        "-u",
        "demo",
        "--paths",
        "20",
        "--steps",
        "6",
        "--model",
        "t",
        "--vol",
        "BTC=0.5",
        "--vol",
        "ETH=0.7",
        "--vol",
        "SOL=0.9",
        "--corr",
        "BTC/ETH=0.8",
        "--insurance-fund",
        "1000",
        "--seed",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    _run(args)
    for name in (
        "montecarlo.parquet",
        "montecarlo_paths.parquet",
        "montecarlo_risk.parquet",
        "montecarlo_fund.parquet",
        "montecarlo_markets.parquet",
    ):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    s = summary["montecarlo"]
    assert s["paths"] == 20 and s["insurance_fund_usd"] == 1000.0
    assert summary["provenance"]["montecarlo"]["seed"] == 3
    assert any("fewer than 10" in w for w in s["warnings"])  # 20 paths cannot support 99 %
    paths = mc.PathSet.load(out / "montecarlo_paths.parquet")
    again = mc.simulate(
        mc.StudentT({"BTC": 0.5, "ETH": 0.7, "SOL": 0.9}, {"BTC/ETH": 0.8}, df=4.0),
        n_paths=20,
        steps=6,
        seed=3,
    )
    assert np.array_equal(paths.moves, again.moves)
    per_path = pd.read_parquet(out / "montecarlo.parquet")
    # The same paths loaded from the file give the same results.
    out2 = tmp_path / "out2"
    _run(
        [
            "montecarlo",
            str(book),
            "-u",
            "demo",
            "--load-paths",
            str(out / "montecarlo_paths.parquet"),
            "--insurance-fund",
            "1000",
            "--out",
            str(out2),
            "--quiet",
            "--threads",
            "1",
        ]
    )
    pd.testing.assert_frame_equal(per_path, pd.read_parquet(out2 / "montecarlo.parquet"))
    _run(["report", str(out), "--quiet"])
    assert "<h2>Monte Carlo</h2>" in (out / "report.html").read_text()


def test_montecarlo_command_errors(book: Path, tmp_path: Path, capsys) -> None:
    base = ["montecarlo", str(book), "-u", "demo", "--out", str(tmp_path / "o"), "--paths", "2"]
    _run([*base, "--model", "normal"], code=2)
    assert "--vol" in capsys.readouterr().err
    _run([*base, "--model", "bootstrap"], code=2)
    assert "--returns" in capsys.readouterr().err
    _run([*base, "--model", "brownian", "--vol", "BTC=0.5"], code=2)
    assert "--model" in capsys.readouterr().err
    _run([*base, "--vol", "BTC=-0.5"], code=2)
    assert "vol[BTC]" in capsys.readouterr().err
