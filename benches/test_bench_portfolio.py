"""Portfolio margin with options (docs/ARCHITECTURE.md "Performance targets"): the engine
with its grouping reused against a vectorised NumPy implementation of the same scenario
requirement.

    CM_BENCH_ACCOUNTS=1000000 pytest benches/test_bench_portfolio.py --benchmark-enable

The universe (``benches.portfolio.options_universe``): BTC and ETH, each with a perp, a
future and 12 options (linear and inverse), on Deribit's grid of 11 price moves × 3
volatility moves = 33 scenarios; synthetic book with half of the position draws on options.
Two builds against each other, bit for bit: ``python -m benches.portfolio`` (benches/portfolio.py).
"""

from __future__ import annotations

import crossmargin as cm
import numpy as np
import pytest
from crossmargin import synth
from crossmargin.options import black76

from benches.conftest import bench_accounts
from benches.portfolio import options_universe


class NumpyPortfolio:
    """The scenario maintenance requirement, vectorised: per-market risk arrays (value part
    and entry part), P&L per (account, underlying, scenario) by bincount, worst loss per
    (account, underlying), plus the short-option minimum, summed per account."""

    def __init__(self, u: cm.Universe) -> None:
        self.u = u
        self.nu = len(u.underlyings)
        pm = u.portfolio
        sc = np.array(pm.default.scenarios)
        self.short_min = pm.default.short_option_min
        self.power = pm.default.vol_power
        dp, dv, w = sc[:, 0], sc[:, 1], sc[:, 2]
        ms = u.markets
        marks = np.array(u.reference_marks)
        s = np.array([u.reference_price(m.underlying) for m in ms])
        p = np.array([u.assets[u.asset_index[m.settle]].price for m in ms])
        g = np.array([m.settle == m.underlying for m in ms], dtype=float)[:, None]
        cs = np.array([m.contract_size for m in ms])[:, None]
        inv = np.array([m.inverse for m in ms])
        opt = np.array([m.is_option for m in ms])
        s1, p1 = s[:, None] * (1 + dp), p[:, None] * (1 + g * dp)
        m1 = marks[:, None] * (1 + dp)
        value = np.where(
            inv[:, None],
            -w * cs * (p1 / m1 - (p / marks)[:, None]),
            w * cs * (m1 * p1 - (marks * p)[:, None]),
        )
        entry = np.where(inv[:, None], w * cs * (p1 - p[:, None]), -w * cs * (p1 - p[:, None]))
        ko = np.flatnonzero(opt)
        if len(ko):
            om = [ms[k] for k in ko]
            years = np.array([u._option_years[k] for k in ko])
            iv = np.array([m.iv for m in om])
            call = np.array([m.option_type == "call" for m in om])
            scale = (30.0 / np.maximum(years * 365.0, 1.0)) ** self.power
            iv1 = np.maximum(iv[:, None] * (1 + dv * scale[:, None]), 1e-4)
            strike = np.array([m.strike for m in om])
            b1 = black76(s1[ko], strike[:, None], years[:, None], iv1, 0.0, call[:, None]).price
            b0 = black76(s[ko], strike, years, np.maximum(iv, 1e-4), 0.0, call).price
            b1 = b1.reshape(len(ko), -1)
            v1 = np.where(inv[ko, None], b1 / s1[ko], b1)
            v0 = np.where(inv[ko], b0 / s[ko], b0)
            value[ko] = w * cs[ko] * (v1 * p1[ko] - (v0 * p[ko])[:, None])
            entry[ko] = 0.0
        self.value, self.entry, self.inv, self.opt, self.cs, self.s = (
            value,
            entry,
            inv,
            opt,
            cs[:, 0],
            s,
        )
        self.m_under = np.array([u.underlyings.index(m.underlying) for m in ms])
        self.a_under = np.array(
            [u.underlyings.index(a.symbol) if a.symbol in u.underlyings else -1 for a in u.assets]
        )
        self.a_price = np.array([a.price for a in u.assets])
        self.w_dp = w * dp

    def maintenance(self, book: cm.Book) -> np.ndarray:
        n_acc = book.n_accounts
        a_remap, m_remap = book.remaps(self.u)
        nu, ns = self.nu, self.value.shape[1]
        pnl = np.zeros((n_acc * nu, ns))
        b = book.balances
        ba = np.searchsorted(book.accounts, b["account"])
        bi = a_remap[b["asset"].codes]
        keep = self.a_under[bi] >= 0
        key = ba[keep] * nu + self.a_under[bi][keep]
        bv = b["qty"][keep] * self.a_price[bi][keep]
        for j in range(ns):
            pnl[:, j] += np.bincount(key, weights=bv * self.w_dp[j], minlength=n_acc * nu)
        p = book.positions
        cross = ~(p["isolated_margin"] > 0)
        pa = np.searchsorted(book.accounts, p["account"][cross])
        k = m_remap[p["market"].codes][cross]
        q = p["qty"][cross]
        e = p["entry_price"][cross]
        x = np.where(self.opt[k], 0.0, np.where(self.inv[k], 1.0 / np.where(q == 0, 1.0, e), e))
        key = pa * nu + self.m_under[k]
        for j in range(ns):
            contrib = q * (self.value[k, j] + x * self.entry[k, j])
            pnl[:, j] += np.bincount(key, weights=contrib, minlength=n_acc * nu)
        loss = np.maximum((-pnl).max(axis=1), 0.0)
        short = np.where(self.opt[k] & (q < 0), -q * self.cs[k] * self.s[k] * self.short_min, 0.0)
        per_acc = loss.reshape(n_acc, nu).sum(axis=1)
        return per_acc + np.bincount(pa, weights=short, minlength=n_acc)


@pytest.fixture(scope="module")
def pm_setup():
    u = options_universe()
    b = synth.generate(u, n_accounts=bench_accounts(), options=0.5)
    return u, b, cm.Engine(u), NumpyPortfolio(u)


def test_numpy_portfolio_matches_the_engine(pm_setup) -> None:
    u, _, engine, numpy_pm = pm_setup
    small = synth.generate(u, n_accounts=2_000, options=0.5, seed=3)
    got = numpy_pm.maintenance(small)
    want = engine.evaluate(small, model="portfolio").mm
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def test_engine_portfolio_33_scenarios(benchmark, pm_setup) -> None:
    _, b, engine, _ = pm_setup
    benchmark.extra_info["accounts"] = b.n_accounts
    r = benchmark(engine.evaluate, b, model="portfolio")
    assert len(r) == b.n_accounts


def test_numpy_portfolio_33_scenarios(benchmark, pm_setup) -> None:
    _, b, _, numpy_pm = pm_setup
    benchmark.extra_info["accounts"] = b.n_accounts
    mm = benchmark(numpy_pm.maintenance, b)
    assert len(mm) == b.n_accounts
