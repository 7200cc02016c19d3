"""What the README's "The model in brief" states about result columns holds."""

from __future__ import annotations

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import synth

U = cm.Universe.demo()
BOOK = synth.generate(U, n_accounts=3_000, seed=2)
CRASH = {"BTC": -0.5, "ETH": -0.5, "SOL": -0.5}


@pytest.mark.parametrize("deleverage", ["adl", "socialized_loss", "none"])
def test_bad_debt_usd_by_event_kind(deleverage: str) -> None:
    cfg = cm.CascadeConfig(shock=CRASH, insurance_fund=1_000.0, deleverage=deleverage)  # type: ignore[arg-type]
    cr = cm.Engine(U).cascade(BOOK, cfg)
    ev = cr.events.to_pandas()
    by_kind = ev.groupby("kind").bad_debt_usd.sum().to_dict()
    assert by_kind.get("liquidation", 0.0) == 0.0 and by_kind.get("isolated", 0.0) == 0.0
    created = by_kind["bankruptcy"]
    assert created > 0
    # Bad debt is what the bankruptcy rows hold, the total and the rounds' column alike.
    assert cr.bad_debt == pytest.approx(created, rel=1e-12)
    assert float(cr.rounds.bad_debt_usd.sum()) == pytest.approx(created, rel=1e-12)
    covered = by_kind.get(deleverage, 0.0)  # the adl / socialized_loss rows, named alike
    if deleverage == "none":
        assert set(ev.kind) <= {"liquidation", "isolated", "bankruptcy"}
        assert cr.uncovered_bad_debt > 0
    else:
        assert covered > 0  # this crash exhausts the fund: counterparties cover the rest
        # ... so the column summed over every event counts that covered debt twice.
        assert float(ev.bad_debt_usd.sum()) == pytest.approx(created + covered, rel=1e-12)
        assert covered <= created * (1 + 1e-9)
    bankrupt = ev[ev.kind == "bankruptcy"]
    account_level = bankrupt.market == ""
    assert account_level.any()
    assert np.all(bankrupt.qty == 0.0)
