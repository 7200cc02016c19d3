"""What fresh memory costs on this machine: faulting in a fresh anonymous mapping page by page,
with and without the transparent huge-page advice that crossmargin's large columns take
(``memory::reserve_more``), right after the previous mapping was freed and after a pause.

    python -m benches.page_faults              # 1 GiB, pauses of 0 and 4 s, 3 rounds each
    python -m benches.page_faults --mib 256 --pause 0 --pause 10

A machine whose freed memory goes back to a hypervisor (a virtio balloon with free page
reporting: the guest reports free 2 MiB blocks after about two seconds) backs a huge page
on such a block anew on its first write, and that can cost several times the small pages'
price; memory reused within the pause is cheap either way. docs/ARCHITECTURE.md "Open: 10M
accounts got slower" has this machine's numbers and what they mean for the grouping.
"""

from __future__ import annotations

import argparse
import mmap
import time
from collections.abc import Sequence

import numpy as np

PAGE = 4096


def fault_in(nbytes: int, huge: bool) -> float:
    """Seconds to write one byte of every 4 KiB page of a fresh mapping of `nbytes`."""
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = getattr(mmap, "MADV_HUGEPAGE" if huge else "MADV_NOHUGEPAGE", None)
    if advice is not None:
        m.madvise(advice)
    view = np.frombuffer(m, dtype=np.uint8)
    t = time.perf_counter()
    view[::PAGE] = 1
    dt = time.perf_counter() - t
    del view
    m.close()
    return dt


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="mapping size in MiB (default 1024)")
    ap.add_argument(
        "--pause", type=float, action="append", help="seconds between rounds (default 0 and 4)"
    )
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    nbytes = args.mib << 20
    print("| pause (s) | huge pages (ms per GiB) | small pages (ms per GiB) |")
    print("|---:|---:|---:|")
    per_gib = (1 << 30) / nbytes * 1e3
    for pause in args.pause or [0.0, 4.0]:
        for _ in range(args.rounds):
            huge = fault_in(nbytes, True)
            time.sleep(pause)
            small = fault_in(nbytes, False)
            time.sleep(pause)
            print(f"| {pause:g} | {huge * per_gib:,.0f} | {small * per_gib:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
