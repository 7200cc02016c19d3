"""Liquidation prices, stress and capital efficiency on the synthetic book (docs/MODEL.md).

    CM_BENCH_ACCOUNTS=1000000 pytest benches/test_bench_risk.py --benchmark-enable

``extra_info["accounts"]`` / ``["positions"]`` record the work of one call.
"""

from __future__ import annotations

import crossmargin as cm
from crossmargin.risk.stress import presets


#: Eight scenarios: the four historical presets and four uniform falls.
def _scenarios(u: cm.Universe) -> dict[str, dict[str, float]]:
    scen: dict[str, dict[str, float]] = dict(presets(u))
    for f in (0.1, 0.2, 0.3, 0.5):
        scen[f"all -{f:.0%}"] = {x: -f for x in u.underlyings}
    return scen


def test_liquidation_prices_underlying(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    benchmark.extra_info["accounts"] = book.n_accounts
    t = benchmark(engine.liquidation_prices, book)
    benchmark.extra_info["positions"] = len(t)


def test_liquidation_prices_mark(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    benchmark.extra_info["accounts"] = book.n_accounts
    t = benchmark(engine.liquidation_prices, book, move="mark")
    benchmark.extra_info["positions"] = len(t)


def test_stress_8_scenarios(benchmark, engine: cm.Engine, book: cm.Book, universe) -> None:
    scen = _scenarios(universe)
    assert len(scen) == 8
    benchmark.extra_info["accounts"] = book.n_accounts
    benchmark.extra_info["scenarios"] = len(scen)
    r = benchmark(engine.stress, book, scen, 1e7)
    assert r.matrix.shape == (book.n_accounts, 8)


def test_reverse_stress(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    benchmark.extra_info["accounts"] = book.n_accounts
    benchmark.pedantic(engine.reverse_stress, args=(book, 1e7), rounds=1, iterations=1)


def test_capital_efficiency(benchmark, engine: cm.Engine, book: cm.Book) -> None:
    benchmark.extra_info["accounts"] = book.n_accounts
    benchmark(engine.capital_efficiency, book)
