"""Memory guard: jobs whose size is known up front fail with a clear error, not an OOM kill.

Before a large allocation (grouping a book, generating a synthetic one, the accounts ×
scenarios stress matrix) the caller estimates the bytes it will allocate and calls
:func:`check_memory`, which compares the estimate with :func:`available_memory` and raises
:class:`~crossmargin.exceptions.ResourceError` (a ``MemoryError`` and a
``CrossmarginError``) with both numbers when the job cannot fit. The estimates are upper
bounds of the transient peak, written next to the code they describe; docs/ROBUSTNESS.md
gives the per-row constants.
"""

from __future__ import annotations

import os
from pathlib import Path

from crossmargin import _core
from crossmargin.exceptions import ConfigError, ResourceError

# Bytes per input row of the core's grouping (crossmargin_core::book::group), transient peak:
# the dense account index (4), the scattered row (balances 16, positions 32), the grouped
# columns (balances 12, positions 32) and the id table / sorted ids / offsets (≤ 24).
GROUP_BYTES_PER_BALANCE = 4 + 16 + 12 + 24
GROUP_BYTES_PER_POSITION = 4 + 32 + 32 + 24
# Bytes per row of the Python-side columns when they must be converted (int64 account,
# uint32 code, float64 values): a copy of every column at worst.
COLUMN_BYTES_PER_BALANCE = 8 + 4 + 8
COLUMN_BYTES_PER_POSITION = 8 + 4 + 8 * 3


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """What a cgroup v2 memory limit leaves (containers are OOM-killed at that limit)."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((root / "memory.current").read_text().strip()), 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping or being killed: the smaller
    of /proc/meminfo's MemAvailable and a cgroup v2 limit's headroom; ``os.sysconf``'s
    available physical pages where /proc is missing; None when nothing tells."""
    found = [x for x in (_meminfo_available(), _cgroup_available()) if x is not None]
    if found:
        return min(found)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(needed: int, what: str) -> None:
    """Raises :class:`ResourceError` when ``needed`` bytes exceed the available memory."""
    available = available_memory()
    if available is None or needed <= available:
        return
    raise ResourceError(
        f"{what} needs about {_human(needed)} but only {_human(available)} is available; "
        "split the job (crossmargin.distributed partitions books by account) or free memory",
        needed=int(needed),
        available=int(available),
    )


def book_bytes(n_balances: int, n_positions: int, converted: bool = True) -> int:
    """Estimated peak bytes of building a book of that many rows (columns converted to
    their dtypes when ``converted``, then grouped by the core)."""
    per_b = GROUP_BYTES_PER_BALANCE + (COLUMN_BYTES_PER_BALANCE if converted else 0)
    per_p = GROUP_BYTES_PER_POSITION + (COLUMN_BYTES_PER_POSITION if converted else 0)
    return n_balances * per_b + n_positions * per_p


def use_huge_pages(on: bool) -> bool:
    """Turns the transparent huge-page advice for large fresh columns (a grouping's layout and
    buffers, result columns) on (the default) or off for the process; returns the previous
    setting. Columns already allocated keep their pages.

    Huge pages fault a 2 MiB page at a time, about a third of the small pages' cost where
    the memory has not gone back to a host (measured on a VM, reusing memory freed just
    before). On a virtual machine whose balloon reports freed memory to the host, a huge
    page on reported memory costs several times the small pages instead: there a one-shot
    job (the first grouping in a fresh process) runs faster with them off.
    ``python -m benches.page_faults`` measures a machine (docs/ARCHITECTURE.md, "Settled at
    stop 42").
    """
    if not isinstance(on, bool):
        raise ConfigError(f"huge pages: {on!r} is not True or False", field="huge_pages")
    return _core.set_huge_pages(on)


def huge_pages() -> bool:
    """Whether large fresh columns ask for huge pages (:func:`use_huge_pages`)."""
    return _core.huge_pages()


__all__ = ["available_memory", "book_bytes", "check_memory", "huge_pages", "use_huge_pages"]
