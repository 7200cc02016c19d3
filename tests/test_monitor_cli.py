"""`crossmargin watch` as a scheduler runs it: a separate process replaying a tick file
through a live monitor, judged by its exit code, its outputs and stderr (docs/MODEL.md
"Live monitoring")."""

from __future__ import annotations

import json
from pathlib import Path

import crossmargin as cm
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from crossmargin.io import write_book
from crossmargin.synth import generate
from helpers import run

DEMO = cm.Universe.demo()


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("book")
    write_book(generate(DEMO, n_accounts=300, seed=9), d, DEMO)
    return d


def ticks_file(folder: Path, rows: list[tuple[int, str, float]]) -> Path:
    path = folder / "ticks.parquet"
    pq.write_table(
        pa.table(
            {
                "tick": [r[0] for r in rows],
                "symbol": [r[1] for r in rows],
                "price": [r[2] for r in rows],
            }
        ),
        path,
    )
    return path


def test_watch_writes_the_crossings_and_a_replayable_log(
    script: str, book: Path, tmp_path: Path
) -> None:
    crash = [(1, "BTC", 45_000.0), (1, "ETH", 2_000.0), (2, "BTC", 35_000.0), (3, "BTC", 60_000.0)]
    ticks = ticks_file(tmp_path, crash)
    out = tmp_path / "out"
    p = run(
        script,
        "watch",
        str(book),
        "--universe",
        "demo",
        "--ticks",
        str(ticks),
        "--out",
        str(out),
        "--json",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["ticks"] == 3
    crossings = pq.read_table(out / "crossings.parquet").to_pydict()
    assert summary["crossings"] == len(crossings["account"]) > 0
    assert set(crossings["tick"]) <= {"1", "2", "3"}
    # The same ticks through the library: the same crossings, and the log replays.
    b = cm.read_book(book)
    mon = cm.Monitor(DEMO, b)
    want = []
    for t, prices in cm.monitor.read_ticks(ticks):
        c = mon.on_prices(prices)
        want += [(str(t), int(a), str(lv)) for a, lv in zip(c.account, c.level, strict=True)]
    got = list(zip(crossings["tick"], crossings["account"], crossings["level"], strict=True))
    assert got == want
    again = cm.Monitor.replay(DEMO, b, cm.monitor.read_log(out / "monitor_log.parquet"))
    assert again.same_log(mon)
    on_file = json.loads((out / "summary.json").read_text())
    assert on_file["watch"]["liquidatable"] == summary["liquidatable"]


def test_watch_threshold_exits_1_and_a_bad_tick_exits_2(
    script: str, book: Path, tmp_path: Path
) -> None:
    ticks = ticks_file(tmp_path, [(1, "BTC", 30_000.0)])
    p = run(
        script,
        "watch",
        str(book),
        "--universe",
        "demo",
        "--ticks",
        str(ticks),
        "--out",
        str(tmp_path / "a"),
        "--fail-if-liquidatable",
        "0",
        cwd=tmp_path,
    )
    assert p.returncode == 1, p.stderr
    assert "tick 1:" in p.stderr and "margin ratio" in p.stderr  # the live table
    bad = ticks_file(tmp_path, [(1, "BTC", 50_000.0), (2, "NOPE", 1.0)])
    p = run(
        script,
        "watch",
        str(book),
        "--universe",
        "demo",
        "--ticks",
        str(bad),
        "--out",
        str(tmp_path / "b"),
        "--quiet",
        cwd=tmp_path,
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "tick 2" in line and "NOPE" in line, p.stderr
