"""The benchmark runner's kernel-at-scale rows (`crossmargin bench --kernel-sizes`): what it
records for each SIMD level and how the README table shows it. Plumbing only: speed is
measured by the runner itself, never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import crossmargin as cm

from benches import runner


def test_kernel_sizes_record_every_level_and_reach_the_table(tmp_path: Path) -> None:
    u = cm.Universe.demo()
    r = runner.measure_kernel_size(u, 2_000, repeat=1, threads=2, seed=3, log=lambda _: None)
    levels, default = cm._core.simd_levels()
    assert r["accounts"] == 2_000 and r["simd_default"] == default
    assert list(r["simd_levels"]) == list(levels)
    assert r["threads_identical"] is True
    for v in r["simd_levels"].values():
        assert 0 < v["engine_s"] <= v["engine_median_s"]
        assert 0 < v["engine_1thread_s"] <= v["engine_1thread_median_s"]
    assert r["engine_accounts_per_s"] == 2_000 / r["simd_levels"][default]["engine_s"]
    table = runner.markdown([], {"machine": "x", "cpu_count": 2, "engine_threads": 2,
                                 "crossmargin": "0", "numpy": "0", "python": "3"}, [r])  # fmt: skip
    rows = [line for line in table.splitlines() if line.startswith("| 2,000 |")]
    assert len(rows) == len(levels)
    assert sum("(default)" in row for row in rows) == 1
    # Saved results render the same table (--from-results).
    saved = tmp_path / "r.json"
    info = {"machine": "x", "cpu_count": 2, "engine_threads": 2, "crossmargin": "0",
            "numpy": "0", "python": "3"}  # fmt: skip
    saved.write_text(json.dumps({"results": [], "machine": info, "kernel_results": [r]}))
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{runner.README_START}\nold\n{runner.README_END}\nb\n")
    assert runner.main(["--from-results", str(saved), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "**Kernel at scale**" in text and "old" not in text and text.endswith("b\n")
