"""``CROSSMARGIN_CASCADE_PHASES=1``: a cascade prints where its time went, phase by phase, to
stderr when it ends (docs/ARCHITECTURE.md "Where the demo cascade's time goes"). The table is
read here from a subprocess, as a user profiling a run would see it; its counts are checked
against the cascade's own rounds and events, never its speed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PHASES = [
    "setup",
    "select",
    "plan",
    "settle",
    "settled",
    "counterparties",
    "plan_deleverage",
    "deleverage",
    "deleveraged",
    "finish",
]

SCRIPT = """
import dataclasses, sys, time
import numpy as np
import crossmargin as cm
from crossmargin import synth
u = cm.Universe.demo()
book = synth.generate(u, n_accounts=5000, seed=7)
crash = dataclasses.replace(synth.demo_crash(u), insurance_fund=0.0)
t = time.perf_counter()
r = cm.Engine(u).cascade(book, crash)
wall = time.perf_counter() - t
kinds = np.asarray(r.events["kind"])
print(len(r.rounds), int((kinds == "adl").sum()), wall * 1e3)
"""


def _run(env_value: str | None) -> tuple[str, str]:
    env = dict(os.environ)
    env.pop("CROSSMARGIN_CASCADE_PHASES", None)
    if env_value is not None:
        env["CROSSMARGIN_CASCADE_PHASES"] = env_value
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    return p.stdout, p.stderr


def test_the_phase_table_accounts_for_the_cascade() -> None:
    out, err = _run("1")
    rounds, adl_events, wall_ms = out.split()
    lines = err.strip().splitlines()
    assert lines[0] == "crossmargin cascade phases: wall ms, cpu ms, calls"
    table = {}
    for line in lines[1:-1]:
        name, wall, cpu, calls = line.split()
        table[name] = (float(wall), float(cpu), int(calls))
    assert list(table) == PHASES
    assert all(w >= 0 and c >= 0 for w, c, _ in table.values())
    # One setup and one finish; a settlement per round of the result; a selection per
    # round plus one per path step that needed no action; the four deleveraging steps once
    # per deficit, and there were deficits (ADL events).
    assert table["setup"][2] == table["finish"][2] == 1
    assert table["settle"][2] == table["settled"][2] == int(rounds)
    assert table["select"][2] == table["plan"][2] >= int(rounds)
    deficits = {
        table[p][2] for p in ("counterparties", "plan_deleverage", "deleverage", "deleveraged")
    }
    assert len(deficits) == 1 and deficits.pop() > 0 and int(adl_events) > 0
    # The phases are disjoint parts of the call: their sum is within it (each printed to
    # 0.1 ms), and the total line is that sum.
    total = lines[-1].split()
    assert total[0] == "total"
    assert float(total[1]) == pytest.approx(sum(w for w, _, _ in table.values()), abs=0.6)
    assert float(total[1]) <= float(wall_ms) + 1.0


@pytest.mark.parametrize("value", [None, "0"])
def test_no_table_unless_asked(value: str | None) -> None:
    _, err = _run(value)
    assert "cascade phases" not in err
