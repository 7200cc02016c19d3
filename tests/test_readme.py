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


def test_the_quick_start_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    quick_start, cascades = blocks()[0], blocks()[1]
    scope: dict[str, object] = {}
    exec(compile(quick_start, "README quick start", "exec"), scope)
    exec(compile(cascades, "README cascades", "exec"), scope)
    assert scope["cr"].check_conservation()  # type: ignore[attr-defined]
    assert os.path.exists("examples/universe.toml")
