"""Monte Carlo stress and insurance-fund sizing (docs/MONTECARLO.md).

import crossmargin as cm
from crossmargin import montecarlo as mc

paths = mc.simulate(mc.GarchT({"BTC": 0.6, "ETH": 0.8}, corr=[[1, 0.8], [0.8, 1]]),
                    n_paths=2000, horizon="1d", steps=24, seed=7)
r = mc.run(cm.Engine(u), book, paths, cm.CascadeConfig(insurance_fund=5e6))
r.summary(); r.var(0.99); r.es(0.99); r.fund_size(0.01); r.cover(2)
mc.compare_policies(engine, book, paths, {"base": {}, "adl-off": {"deleverage": "none"}})
"""

from crossmargin.montecarlo.margin import VolScaledMargin, scale_universe
from crossmargin.montecarlo.paths import (
    Bootstrap,
    FilteredHistorical,
    GarchFit,
    GarchT,
    MertonJump,
    Normal,
    PathSet,
    StudentT,
    calibrate,
    duration_years,
    fit_garch,
    read_returns,
    simulate,
)
from crossmargin.montecarlo.policies import Policy, compare_policies
from crossmargin.montecarlo.run import (
    MonteCarloResult,
    fund_draw,
    market_bad_debt,
    minor_unit_book,
    run,
    screen,
)
from crossmargin.montecarlo.stats import Estimate, TailWarning

MODEL_NAMES = {
    "normal": Normal,
    "t": StudentT,
    "garch-t": GarchT,
    "jump": MertonJump,
    "bootstrap": Bootstrap,
    "fhs": FilteredHistorical,
}

__all__ = [
    "MODEL_NAMES",
    "Bootstrap",
    "Estimate",
    "FilteredHistorical",
    "GarchFit",
    "GarchT",
    "MertonJump",
    "MonteCarloResult",
    "Normal",
    "PathSet",
    "Policy",
    "StudentT",
    "TailWarning",
    "VolScaledMargin",
    "calibrate",
    "compare_policies",
    "duration_years",
    "fit_garch",
    "fund_draw",
    "market_bad_debt",
    "minor_unit_book",
    "read_returns",
    "run",
    "scale_universe",
    "screen",
    "simulate",
]
