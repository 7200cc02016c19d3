"""Incremental cascade rounds (docs/MODEL.md "Liquidation cascades", "Incremental rounds"): a
round re-evaluates only accounts that are not certified safe over a band of marks; the
results are the ones of evaluating every account every round, bit for bit.

``CROSSMARGIN_CASCADE_INCREMENTAL=0`` switches the certificates off (read when a cascade
starts), so each test runs the same cascade both ways.
"""

from __future__ import annotations

from typing import Any

import crossmargin as cm
import numpy as np
import pytest
from crossmargin.cascade import CascadeConfig, DepthCurve
from crossmargin.risk.stress import PRESETS
from crossmargin.synth import generate


def _both(monkeypatch: pytest.MonkeyPatch, run: Any) -> tuple[Any, Any]:
    monkeypatch.setenv("CROSSMARGIN_CASCADE_INCREMENTAL", "0")
    full = run()
    monkeypatch.setenv("CROSSMARGIN_CASCADE_INCREMENTAL", "1")
    return full, run()


def _identical(u: cm.Universe, a: Any, b: Any) -> None:
    assert a.events.columns == b.events.columns
    for c in a.events.columns:
        np.testing.assert_array_equal(a.events[c], b.events[c], err_msg=f"events.{c}")
    assert a.rounds.columns == b.rounds.columns
    for c in a.rounds.columns:
        np.testing.assert_array_equal(a.rounds[c], b.rounds[c], err_msg=f"rounds.{c}")
    assert a._totals == b._totals
    for c in a.ledger.columns:
        np.testing.assert_array_equal(a.ledger[c], b.ledger[c], err_msg=f"ledger.{c}")
    assert a.bad_debt == b.bad_debt and a.fees == b.fees
    for x, y in zip(a.final_book.to_pandas(u), b.final_book.to_pandas(u), strict=True):
        for c in x.columns:
            np.testing.assert_array_equal(x[c].to_numpy(), y[c].to_numpy(), err_msg=c)


def _demo_crash(u: cm.Universe) -> CascadeConfig:
    """The demo's cascade (``crossmargin demo``): the 10 Oct 2025 preset in three steps on a
    thin book with a gap."""
    crash = PRESETS["2025-10-10"]
    path = [{k: v * f for k, v in crash.items() if k in u.underlyings} for f in (1 / 3, 2 / 3, 1)]
    return CascadeConfig(
        path=path,
        liquidity=DepthCurve([(0.002, 2e6), (0.02, 2e6), (0.06, 2e8)]),
        insurance_fund=5e4,
        partial_fraction=0.25,
        target_margin_ratio=0.8,
    )


def test_incremental_rounds_equal_full_rounds_on_the_demo_cascade(monkeypatch):
    u = cm.Universe.demo()
    book = generate(u, n_accounts=20_000, seed=7)
    e = cm.Engine(u)
    full, inc = _both(monkeypatch, lambda: e.cascade(book, _demo_crash(u)))
    assert len(full.rounds) > 3 and len(full.events) > 100
    assert (full.events["kind"] == "adl").any()  # deleveraging ran (the fund is small)
    _identical(u, full, inc)


@pytest.mark.parametrize("deleverage", ["adl", "socialized_loss"])
def test_incremental_rounds_equal_full_rounds_on_a_slow_bleed(monkeypatch, deleverage):
    # A 24-step path that drifts down 1 % a step with impact that fades: many rounds, marks
    # moving a little each round — where certificates hold longest.
    u = cm.Universe.demo()
    book = generate(u, n_accounts=5_000, seed=3)
    path = [{x: -0.01 * (t + 1) for x in u.underlyings} for t in range(24)]
    cfg = CascadeConfig(
        path=path,
        liquidity=DepthCurve([(0.01, 5e5), (0.05, 5e6)]),
        insurance_fund=1e4,
        partial_fraction=0.2,
        decay=0.5,
        deleverage=deleverage,  # type: ignore[arg-type]
    )
    e = cm.Engine(u, threads=2)
    full, inc = _both(monkeypatch, lambda: e.cascade(book, cfg))
    assert len(full.rounds) > 24
    _identical(u, full, inc)
