"""`benches.page_faults`: the fresh-memory probe runs and prints one table row per round."""

from __future__ import annotations

import pytest

from benches import page_faults


def test_fault_in_touches_a_fresh_mapping_and_times_it() -> None:
    for huge in (True, False):
        assert page_faults.fault_in(1 << 20, huge) > 0.0


def test_the_probe_prints_a_row_per_round_and_pause(capsys: pytest.CaptureFixture[str]) -> None:
    assert page_faults.main(["--mib", "2", "--pause", "0", "--pause", "0", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "| pause (s) | huge pages (ms per GiB) | small pages (ms per GiB) |",
        "|---:|---:|---:|",
    ]
    rows = [line.split("|")[1:4] for line in lines[2:]]
    assert len(rows) == 4
    for pause, huge, small in rows:
        assert pause.strip() == "0"
        assert float(huge.replace(",", "")) > 0 and float(small.replace(",", "")) > 0
