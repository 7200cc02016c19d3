"""`crossmargin.resources.use_huge_pages`: the huge-page advice for large fresh columns, on by
default, off on request; the numbers never depend on it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import crossmargin as cm
import pytest
from crossmargin.exceptions import ConfigError
from crossmargin.resources import huge_pages, use_huge_pages
from crossmargin.synth import generate

U = cm.Universe.demo()


@pytest.fixture
def restore() -> Iterator[None]:
    before = huge_pages()
    yield
    use_huge_pages(before)


def test_the_setting_is_on_by_default_and_round_trips(restore: None) -> None:
    assert huge_pages() is True
    assert use_huge_pages(False) is True
    assert huge_pages() is False
    assert use_huge_pages(True) is False
    assert huge_pages() is True


@pytest.mark.parametrize("bad", [0, 1, "off", None, 1.0])
def test_anything_but_a_bool_is_a_config_error(restore: None, bad: object) -> None:
    with pytest.raises(ConfigError, match="huge pages") as e:
        use_huge_pages(bad)  # type: ignore[arg-type]
    assert e.value.field == "huge_pages"
    assert huge_pages() is True


def test_margins_are_the_same_bits_either_way(restore: None) -> None:
    book = generate(U, n_accounts=3_000, seed=11)
    b, p = dict(book.balances), {k: v for k, v in book.positions.items() if k != "side"}
    engine = cm.Engine(U, threads=2)
    results = []
    for on in (True, False):
        use_huge_pages(on)
        results.append(engine.evaluate(cm.Book(b, p)).to_pandas())
    for column in results[0].columns:
        a, z = results[0][column].to_numpy(), results[1][column].to_numpy()
        assert a.dtype == z.dtype and a.tobytes() == z.tobytes(), column


def _anon_huge_kib() -> int:
    text = Path("/proc/self/smaps_rollup").read_text()
    found = re.search(r"^AnonHugePages:\s+(\d+) kB", text, re.M)
    assert found is not None
    return int(found.group(1))


THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


@pytest.mark.skipif(
    not THP.exists() or "[madvise]" not in THP.read_text(),
    reason="huge pages follow the advice only in the kernel's madvise mode",
)
def test_off_a_grouping_takes_no_huge_pages_and_on_it_does(restore: None) -> None:
    # 300k accounts: the layout's columns are tens of MB (about 30 MiB of huge pages when on).
    book = generate(U, n_accounts=300_000, seed=3)
    b, p = dict(book.balances), {k: v for k, v in book.positions.items() if k != "side"}
    held = [cm.Book(b, p)]  # a first grouping: whatever it frees of earlier work, not counted
    grew = {}
    for on in (False, True):
        use_huge_pages(on)
        before = _anon_huge_kib()
        held.append(cm.Book(b, p))  # kept alive: its layout stays mapped
        grew[on] = _anon_huge_kib() - before
    # Off: none of its own (a 2 MiB page of slack for the kernel's background collapsing of
    # other memory); on: its layout's.
    assert grew[False] <= 2048 and grew[True] >= 8192, grew
    assert len({g.n_accounts for g in held}) == 1
