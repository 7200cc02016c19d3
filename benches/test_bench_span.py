"""SPAN against the scenario ("portfolio") model on the same book (docs/MODEL.md "SPAN").

    CM_BENCH_ACCOUNTS=1000000 pytest benches/test_bench_span.py --benchmark-enable

The universe: BTC and ETH, each with a perp, a future and 12 options (linear and inverse),
priced on CME's 16 scenarios in both models (the span16 preset; SPAN computes the same arrays
from its commodities' scan ranges), SPAN adding a calendar spread between perp and future, a
spot-month charge, an inter-commodity spread and a short-option minimum.

``python benches/test_bench_span.py`` prints both times and their ratio from one process
(best of 3). Measured 2026-12-03, release build, 1,000,000 accounts, 2 cores shared with other
jobs (load 7–14, so single runs are noisy): the ratio over six runs of the final code was 1.08,
1.15, 1.21, 1.48, 0.85, 0.87 (SPAN 0.87–1.48 s, portfolio 0.72–1.30 s).
"""

from __future__ import annotations

import math
import time

import crossmargin as cm
import pytest
from crossmargin import synth
from crossmargin.portfolio import PortfolioConfig, span16
from crossmargin.span import CombinedCommodity, Contract, InterSpread, IntraSpread, SpanConfig

from benches.conftest import bench_accounts
from benches.portfolio import options_markets


def span_universe() -> cm.Universe:
    markets = options_markets()
    return cm.Universe(
        [
            cm.Asset("USDC", 1.0),
            cm.Asset("BTC", 50_000.0, 0.9, 0.95),
            cm.Asset("ETH", 2_500.0, 0.8, 0.9),
        ],
        markets,
        portfolio=PortfolioConfig(default=span16(0.08, 0.05), im_factor=1.1),
    )


def span_config(u: cm.Universe) -> SpanConfig:
    commodities = [
        CombinedCommodity(name, price_scan=0.08, vol_scan=0.05, som_rate=som, im_ratio=1.1,
                          spot_tier=1, spot_spread_rate=10.0, spot_outright_rate=20.0)
        for name, som in (("BTC", 500.0), ("ETH", 25.0))
    ]  # fmt: skip
    contracts = [Contract(m.symbol, m.underlying, 1 if m.kind == "perp" else 2) for m in u.markets]
    intra = [IntraSpread(name, 50.0, [(1, 1, "A"), (2, 1, "B")]) for name in ("BTC", "ETH")]
    inter = [InterSpread(0.5, [("BTC", 1, "A"), ("ETH", 20, "B")])]
    return SpanConfig(commodities, contracts, intra, inter)


@pytest.fixture(scope="module")
def span_setup():
    u = span_universe()
    book = synth.generate(u, n_accounts=bench_accounts(), options=0.5)
    book.grouping(u)
    return cm.Engine(u), book, span_config(u)


def test_engine_span_16_scenarios(benchmark, span_setup) -> None:
    engine, b, cfg = span_setup
    r = benchmark(engine.span, b, cfg, detail=False)
    assert len(r.accounts) == b.n_accounts


def test_engine_portfolio_16_scenarios(benchmark, span_setup) -> None:
    engine, b, _ = span_setup
    r = benchmark(engine.evaluate, b, model="portfolio")
    assert len(r) == b.n_accounts


def ratio(repeats: int = 3) -> tuple[float, float, float]:
    """(span seconds, portfolio seconds, ratio), best of ``repeats``, in one process."""
    u = span_universe()
    engine, cfg = cm.Engine(u), span_config(u)
    b = synth.generate(u, n_accounts=bench_accounts(), options=0.5)
    b.grouping(u)
    engine.span(b, cfg, detail=False)
    engine.evaluate(b, model="portfolio")

    def best(f) -> float:  # type: ignore[no-untyped-def]
        out = math.inf
        for _ in range(repeats):
            t = time.perf_counter()
            f()
            out = min(out, time.perf_counter() - t)
        return out

    s = best(lambda: engine.span(b, cfg, detail=False))
    p = best(lambda: engine.evaluate(b, model="portfolio"))
    return s, p, s / p


if __name__ == "__main__":
    s, p, r = ratio()
    print(f"accounts={bench_accounts()} span={s:.3f}s portfolio={p:.3f}s ratio={r:.2f}")
