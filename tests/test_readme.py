"""The README's Python examples run as written (from the repository root)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_every_python_block_runs_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    found = blocks()
    assert len(found) >= 3
    scope: dict[str, object] = {}
    for i, block in enumerate(found):
        exec(compile(block, f"README python block {i}", "exec"), scope)
    assert scope["cr"].check_conservation()  # type: ignore[attr-defined]
    assert scope["fr"].check_zero_sum()  # type: ignore[attr-defined]
    assert os.path.exists("examples/universe.toml")
