"""Monte Carlo paths on Dask (docs/MONTECARLO.md "On Dask"): on a LocalCluster of two worker
processes, ``mc.run(..., client=)`` gives the local run's table and per-market bad debt bit
for bit for any split of the paths into tasks, with and without a margin rule (one universe
per multiplier vector, each rebuilt on the workers)."""

from __future__ import annotations

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import montecarlo as mc
from crossmargin.cascade import CascadeConfig
from crossmargin.exceptions import ConfigError, ConfigTypeError
from crossmargin.synth import generate

from tests.test_montecarlo import _same, small_book, small_paths


@pytest.mark.parametrize("per_task", [None, 1, 7, 1000])
def test_paths_on_dask_equal_the_local_run_for_any_split(client, per_task) -> None:
    u, book = small_book()
    engine = cm.Engine(u, threads=2)
    paths = small_paths(40)
    cfg = CascadeConfig(insurance_fund=5.0, liquidation_fee=0.01)
    local = mc.run(engine, book, paths, cfg)
    remote = mc.run(engine, book, paths, cfg, client=client, paths_per_task=per_task)
    assert 0 < np.asarray(local.paths.rounds).sum()
    _same(local, remote)


def test_a_synthetic_book_with_a_margin_rule_on_dask(client) -> None:
    # 300 demo accounts (seed 8), 12 normal paths × 6 steps, a vol-scaled margin (several
    # universes): identical to the local run, screen off so every path runs on the cluster.
    u = cm.Universe.demo()
    book = generate(u, n_accounts=300, seed=8)
    engine = cm.Engine(u)
    vols = {x: 0.8 for x in u.underlyings}
    paths = mc.simulate(mc.Normal(vols), n_paths=12, horizon="1d", steps=6, seed=3)
    rule = mc.VolScaledMargin({x: 0.5 for x in u.underlyings})
    cfg = CascadeConfig(insurance_fund=1e4)
    local = mc.run(engine, book, paths, cfg, screen=False, margin=rule)
    remote = mc.run(
        engine, book, paths, cfg, screen=False, margin=rule, client=client, paths_per_task=5
    )
    assert len(set(np.asarray(local.paths.margin_multiplier).tolist())) > 1
    _same(local, remote)


def test_bad_dask_options_are_typed_errors(client) -> None:
    u, book = small_book()
    engine = cm.Engine(u)
    paths = small_paths(4)
    with pytest.raises(ConfigError, match="paths_per_task"):
        mc.run(engine, book, paths, paths_per_task=2)
    with pytest.raises(ConfigError, match="paths_per_task"):
        mc.run(engine, book, paths, client=client, paths_per_task=0)
    with pytest.raises(ConfigTypeError, match="client"):
        mc.run(engine, book, paths, screen=False, client=object())
