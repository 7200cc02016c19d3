"""docs/UNIVERSE_TOML.md: its examples load, and it names every field a universe file can hold."""

from __future__ import annotations

import dataclasses
import inspect
import re
import tomllib
import warnings
from pathlib import Path

import crossmargin as cm
import pytest
from crossmargin import portfolio

DOC = Path(__file__).resolve().parents[1] / "docs" / "UNIVERSE_TOML.md"


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", _text(), flags=re.S)


@pytest.mark.parametrize("k", range(len(_examples())))
def test_every_example_loads(k: int) -> None:
    data = tomllib.loads(_examples()[k])
    if "assets" not in data:  # a fragment (e.g. [underlying_prices]): parse only
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and none of them is a table that warns
        cm.Universe.from_dict(data)


def test_every_field_is_documented() -> None:
    text = _text()
    fields = {f.name for f in dataclasses.fields(cm.Asset)}
    fields |= {f.name for f in dataclasses.fields(cm.Market)}
    fields |= {f.name for f in dataclasses.fields(portfolio.PortfolioConfig)}
    fields |= {f.name for f in dataclasses.fields(portfolio.UnderlyingPortfolio)}
    for preset in portfolio.PRESETS.values():
        fields |= {p for p in inspect.signature(preset).parameters if p != "kw"}
    fields |= {f.name for f in dataclasses.fields(cm.FixedPoint)}
    fields |= {"assets", "markets", "underlying_prices", "valuation_date", "portfolio", "meta"}
    fields |= {"arithmetic"}
    fields |= {"preset", "span16", "crypto"}
    code = " ".join(re.findall(r"`([^`]*)`", text))  # what the doc spells as code
    missing = sorted(f for f in fields if not re.search(rf"\b{f}\b", code))
    assert not missing, f"docs/UNIVERSE_TOML.md does not mention {missing}"


def test_the_haircut_cap_rule_is_stated() -> None:
    assert "counts the value above that bound as zero" in _text()
