"""Monte Carlo stress and insurance-fund sizing (docs/MONTECARLO.md): liquidation frequency
against closed forms, the generators against their inputs, the estimators against their
definitions, determinism (seeds, threads, the screen), the exact ledger per path, and the
typed errors. Every statistical test has a fixed seed, a stated path count and a tolerance
in standard errors."""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import crossmargin as cm
import numpy as np
import pandas as pd
import pytest
from crossmargin import montecarlo as mc
from crossmargin.cascade import CascadeConfig, NoImpact
from crossmargin.exceptions import ConfigError, ConfigTypeError
from crossmargin.montecarlo import stats

INF = math.inf
N01 = NormalDist()


# ---- a one-account book under GBM --------------------------------------------------------
def one_account(cash: float = 10.0) -> tuple[cm.Universe, cm.Book]:
    """USDT and a linear BTC perp at 100 (10% initial, 5% maintenance); one account long 1
    BTC from 100 with ``cash`` USDT. It is liquidatable when cash + (S − 100) < 0.05·S,
    i.e. S < L = (100 − cash) / 0.95."""
    u = cm.Universe(
        [cm.Asset("USDT", 1.0)],
        [cm.Market("BTCUSDT", "perp", "USDT", "BTC", 100.0, [(INF, 0.10, 0.05)])],
    )
    book = cm.Book.from_arrays(
        balances={"account": [1], "asset": ["USDT"], "qty": [cash]},
        positions={"account": [1], "market": ["BTCUSDT"], "qty": [1.0], "entry_price": [100.0]},
    )
    return u, book


def discrete_barrier(b: float, m: float, s: float, n: int, grid: int = 2500) -> float:
    """P(min_{k≤n} X_k < b) for the Gaussian random walk X_0 = 0, X_k = X_{k−1} + N(m, s²):
    the density of surviving walks propagated step by step on a grid above the barrier
    (trapezoid rule), independent of the simulator."""
    hi = max(0.0, b) + abs(m) * n + 10 * s * math.sqrt(n)
    x = np.linspace(b, hi, grid)
    h = x[1] - x[0]
    w = np.full(grid, h)
    w[0] = w[-1] = h / 2
    kernel = np.exp(-0.5 * ((x[:, None] - x[None, :] - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    f = np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    for _ in range(n - 1):
        f = kernel @ (w * f)
    return 1.0 - float((w * f).sum())


def bgk(b: float, mu: float, sigma: float, horizon: float, n: int) -> float:
    """Broadie, Glasserman & Kou (1997): the discrete barrier ≈ the continuous one moved
    away by exp(−0.5826·σ√Δt); first-passage probability of a Brownian motion with drift."""
    bb = b - 0.5826 * sigma * math.sqrt(horizon / n)
    st = sigma * math.sqrt(horizon)
    return N01.cdf((bb - mu * horizon) / st) + math.exp(2 * mu * bb / sigma**2) * N01.cdf(
        (bb + mu * horizon) / st
    )


SIGMA, HORIZON = 0.8, 1.0 / 365.0


@pytest.mark.parametrize("steps", [1, 24])
def test_liquidation_frequency_matches_the_barrier_probability(steps: int) -> None:
    """2,000 GBM paths (σ = 80 %, one day, seed 11): the share of paths on which the account
    is liquidated is P(S_T < L) for one monitored step (closed form) and the discrete-barrier
    probability for 24 (numerical integration of the Gaussian random walk, itself checked
    against the Broadie–Glasserman–Kou correction to 0.005), within 3 standard errors."""
    u, book = one_account()
    barrier = math.log((100.0 - 10.0) / 0.95 / 100.0)
    dt = HORIZON / steps
    m, s = -(SIGMA**2) * dt / 2, SIGMA * math.sqrt(dt)
    if steps == 1:
        expected = N01.cdf((barrier + SIGMA**2 * HORIZON / 2) / (SIGMA * math.sqrt(HORIZON)))
        assert discrete_barrier(barrier, m, s, 1) == pytest.approx(expected, abs=1e-5)
    else:
        expected = discrete_barrier(barrier, m, s, steps)
        assert expected == pytest.approx(
            bgk(barrier, -(SIGMA**2) / 2, SIGMA, HORIZON, steps), abs=0.005
        )
    n = 2000
    paths = mc.simulate(mc.Normal({"BTC": SIGMA}), n_paths=n, horizon="1d", steps=steps, seed=11)
    r = mc.run(cm.Engine(u, threads=2), book, paths, CascadeConfig(liquidity=NoImpact()))
    freq = float((r.paths.accounts_liquidated > 0).mean())
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(freq - expected) < 3 * se, (freq, expected, se)
    # The screen skipped every path without a liquidation, and only those.
    assert np.array_equal(r.paths.skipped, r.paths.accounts_liquidated == 0)
    # Directly from the paths: the account is liquidated iff some step's price is below L.
    hit = (paths.moves[:, :, 0] * 100.0 + 100.0 < (100.0 - 10.0) / 0.95).any(axis=1)
    assert np.array_equal(hit, r.paths.accounts_liquidated > 0)


# ---- the generators ----------------------------------------------------------------------
VOL = {"BTC": 0.6, "ETH": 0.8, "SOL": 1.0}
CORR = [[1.0, 0.8, 0.6], [0.8, 1.0, 0.7], [0.6, 0.7, 1.0]]


@pytest.mark.parametrize(
    ("model", "var_per_year"),
    [
        (mc.Normal(VOL, CORR), None),
        (mc.StudentT(VOL, CORR, df=5.0), None),
        (mc.MertonJump(VOL, CORR, intensity=20.0, jump_mean=-0.02, jump_vol=0.03), 20.0 * 13e-4),
        (mc.GarchT(VOL, CORR, alpha=0.05, beta=0.9, df=8.0), None),
    ],
    ids=["normal", "t", "jump", "garch-t"],
)
def test_paths_reproduce_volatility_and_correlation(model, var_per_year) -> None:
    """2,000 paths × 24 hourly steps (seed 5): annualised volatility of the log-returns within
    4 % of the input (√(σ² + λ(μ_J² + δ_J²)) for jumps) and correlations within 0.03 (normal:
    SE of vol ≈ 0.3 %, of ρ ≈ 0.002; heavier tails widen both)."""
    paths = mc.simulate(model, n_paths=2000, horizon="1d", steps=24, seed=5)
    r = paths.log_returns().reshape(-1, 3)
    dt = HORIZON / 24
    vol = r.std(axis=0) / math.sqrt(dt)
    expected = np.array(list(VOL.values()))
    if var_per_year is not None:
        expected = np.sqrt(expected**2 + var_per_year)
    np.testing.assert_allclose(vol, expected, rtol=0.04)
    corr = np.corrcoef(r.T)
    if var_per_year is None:
        np.testing.assert_allclose(corr, CORR, atol=0.03)
    else:  # common jumps add co-movement: ρ = (ρσ_iσ_j + λ(μ_J² + ρδ_J²)) / (vol_i vol_j)
        cov = np.array(CORR) * np.outer(list(VOL.values()), list(VOL.values()))
        cov += 20.0 * (0.02**2 + np.array(CORR) * 0.03**2)
        d = np.sqrt(np.diag(cov))
        np.testing.assert_allclose(corr, cov / np.outer(d, d), atol=0.03)


def test_garch_paths_reproduce_their_persistence() -> None:
    """One GARCH-t path of 20,000 steps (α 0.08, β 0.90, ν 8, seed 3): the QMLE fit recovers
    the persistence α + β = 0.98 within 0.02 and α within 0.03 (the fit's SEs are about
    0.005 and 0.01 at this length), and the long-run volatility within 5 %."""
    model = mc.GarchT({"BTC": 0.6}, alpha=0.08, beta=0.90, df=8.0)
    paths = mc.simulate(model, n_paths=1, horizon="20000h", steps=20000, seed=3)
    r = paths.log_returns()[0, :, 0]
    fit = mc.fit_garch(r)
    assert fit.persistence == pytest.approx(0.98, abs=0.02)
    assert fit.alpha == pytest.approx(0.08, abs=0.03)
    assert r.std() * math.sqrt(365 * 24) == pytest.approx(0.6, rel=0.05)
    # Persistence also shows in the data without a fit: squared returns are autocorrelated.
    r2 = r**2 - (r**2).mean()
    assert float((r2[1:] * r2[:-1]).mean() / (r2**2).mean()) > 0.1


def test_bootstrap_and_fhs_reproduce_the_table() -> None:
    """A 5,000-row hourly table from a GARCH-t (seed 9), 1,000 paths × 24 steps: the
    bootstrap's volatility and correlation are the table's (within 4 % and 0.03); FHS
    recovers the table's GARCH persistence within 0.03 and its paths' volatility is within
    15 % of the table's (it starts from today's conditional variance, not the average)."""
    gen = mc.simulate(
        mc.GarchT({"BTC": 0.6, "ETH": 0.8}, [[1, 0.7], [0.7, 1]], alpha=0.06, beta=0.92),
        n_paths=1,
        horizon="5000h",
        steps=5000,
        seed=9,
    )
    table = gen.log_returns()[0]
    returns = {"BTC": table[:, 0], "ETH": table[:, 1]}
    boot = mc.simulate(mc.Bootstrap(returns, frequency="1h"), n_paths=1000, steps=24, seed=2)
    r = boot.log_returns().reshape(-1, 2)
    np.testing.assert_allclose(r.std(axis=0), table.std(axis=0), rtol=0.04)
    assert np.corrcoef(r.T)[0, 1] == pytest.approx(np.corrcoef(table.T)[0, 1], abs=0.03)
    fhs = mc.FilteredHistorical(returns, frequency="1h")
    fits = [mc.fit_garch(table[:, j]) for j in range(2)]
    for f in fits:
        assert f.persistence == pytest.approx(0.98, abs=0.03)
    paths = mc.simulate(fhs, n_paths=1000, steps=24, seed=2)
    np.testing.assert_allclose(
        paths.log_returns().reshape(-1, 2).std(axis=0), table.std(axis=0), rtol=0.15
    )
    # Daily rows under hourly steps: 24 sub-steps of one day, each √(1/24) of a drawn row.
    daily = mc.simulate(mc.Bootstrap(returns, frequency="1d"), n_paths=1000, steps=24, seed=2)
    per_day = daily.log_returns().reshape(-1, 2).std(axis=0) * math.sqrt(24)
    np.testing.assert_allclose(per_day, table.std(axis=0), rtol=0.04)


def test_paths_are_deterministic_per_seed_and_path() -> None:
    model = mc.StudentT(VOL, CORR, df=4.0)
    a = mc.simulate(model, n_paths=50, steps=12, seed=42)
    b = mc.simulate(model, n_paths=20, steps=12, seed=42)
    c = mc.simulate(model, n_paths=10, steps=12, seed=42, first_path=30)
    assert np.array_equal(a.moves[:20], b.moves)
    assert np.array_equal(a.moves[30:40], c.moves)
    assert list(c.path_ids) == list(range(30, 40))
    assert not np.array_equal(a.moves, mc.simulate(model, n_paths=50, steps=12, seed=43).moves)
    path = a.path(3)
    assert len(path) == 12 and set(path[0]) == set(VOL)
    assert path[-1]["BTC"] == a.moves[3, -1, 0]


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_pathset_save_load_roundtrip(tmp_path, suffix: str) -> None:
    paths = mc.simulate(mc.MertonJump(VOL, CORR), n_paths=30, steps=6, seed=1)
    p = paths.save(tmp_path / f"paths{suffix}")
    back = mc.PathSet.load(p)
    assert np.array_equal(back.moves, paths.moves)
    assert np.array_equal(back.times, paths.times)
    assert back.underlyings == paths.underlyings
    assert back.meta["seed"] == 1 and back.meta["model"]["model"] == "jump"
    assert np.array_equal(back.subset([2, 5]).path_ids, [2, 5])


# ---- the estimators ----------------------------------------------------------------------
def test_var_and_es_follow_their_definitions() -> None:
    x = np.arange(1.0, 101.0)  # 1..100 shuffled: order must not matter
    rng = np.random.default_rng(0)
    rng.shuffle(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.TailWarning)
        assert stats.var(x, 0.95).value == 95.0  # the ⌈nα⌉-th smallest
        assert stats.var(x, 0.951).value == 96.0
        assert stats.es(x, 0.95).value == pytest.approx(98.0)  # mean of 96..100
        # n(1 − α) = 2.5: (100 + 99 + 0.5·98) / 2.5
        assert stats.es(x, 0.975).value == pytest.approx(99.2)


def test_var_and_es_on_the_normal_distribution() -> None:
    """N(0, 1) (seed 1): 20,000 draws give VaR and ES at 99 % within their 95 % CIs of the
    true 2.3263 and φ(z)/(1 − α) = 2.6652; over 300 samples of 2,000 the CIs cover the truth
    between 90 % and 99.5 % of the time (nominal 95 %; binomial SE 1.3 %)."""
    level = 0.99
    z = N01.inv_cdf(level)
    true_es = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / (1 - level)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(20_000)
    v, e = stats.var(x, level), stats.es(x, level)
    assert v.lower <= z <= v.upper and abs(v.value - z) < 0.06
    assert e.lower <= true_es <= e.upper and abs(e.value - true_es) < 0.08
    eb = stats.es(x, level, method="bootstrap", n_boot=300, seed=3)
    assert eb.lower <= true_es <= eb.upper
    cover_v = cover_e = 0
    for _ in range(300):
        s = rng.standard_normal(2000)
        v, e = stats.var(s, level), stats.es(s, level)
        cover_v += v.lower <= z <= v.upper
        cover_e += e.lower <= true_es <= e.upper
    assert 0.90 <= cover_v / 300 <= 0.995
    assert 0.88 <= cover_e / 300 <= 0.995


def test_tail_warning_below_ten_tail_observations() -> None:
    x = np.random.default_rng(0).standard_normal(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", stats.TailWarning)
        stats.var(x, 0.99)  # 10 tail observations: fine
    with pytest.warns(stats.TailWarning, match="simulate at least 10000 paths"):
        stats.var(x, 0.999)
    with pytest.warns(stats.TailWarning):
        stats.es(x, 0.995)
    assert issubclass(stats.TailWarning, UserWarning)


def test_exceedance_wilson_interval() -> None:
    e = stats.exceedance(np.zeros(100), 0.0)
    assert e.value == 0.0 and e.lower == 0.0 and 0.02 < e.upper < 0.05  # 3.7 % (Wilson)
    lo, hi = stats.wilson(10, 100)
    assert lo == pytest.approx(0.0552, abs=1e-3) and hi == pytest.approx(0.1744, abs=1e-3)


# ---- the run on a small book ---------------------------------------------------------------
def small_book() -> tuple[cm.Universe, cm.Book]:
    """Two underlyings, accounts of different leverage long and short (ADL counterparties)."""
    u = cm.Universe(
        [cm.Asset("USDT", 1.0), cm.Asset("BTC", 100.0, 0.9, 0.95, 1.2, 1.1)],
        [
            cm.Market("BTCUSDT", "perp", "USDT", "BTC", 100.0, [(INF, 0.10, 0.05)]),
            cm.Market("ETHUSDT", "perp", "USDT", "ETH", 10.0, [(INF, 0.10, 0.05)]),
        ],
    )
    accounts = np.arange(1, 9)
    cash = np.array([12.0, 15.0, 20.0, 30.0, 60.0, 200.0, 14.0, 25.0])
    pos_acc = np.array([1, 2, 3, 4, 5, 6, 7, 7, 8])
    market = ["BTCUSDT"] * 4 + ["BTCUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT", "ETHUSDT"]
    qty = np.array([1.0, 1.0, 1.0, 1.0, -3.0, -1.0, 5.0, 0.5, -10.0])
    entry = np.array([100.0] * 6 + [10.0, 100.0, 10.0])
    book = cm.Book.from_arrays(
        balances={"account": accounts, "asset": ["USDT"] * 8, "qty": cash},
        positions={"account": pos_acc, "market": market, "qty": qty, "entry_price": entry},
    )
    return u, book


def small_paths(n: int = 60) -> mc.PathSet:
    return mc.simulate(
        mc.MertonJump({"BTC": 0.9, "ETH": 1.1}, [[1, 0.8], [0.8, 1]], intensity=40.0),
        n_paths=n,
        horizon="1d",
        steps=8,
        seed=21,
    )


def _same(a: mc.MonteCarloResult, b: mc.MonteCarloResult, skip: tuple[str, ...] = ()) -> None:
    assert a.paths.columns == b.paths.columns
    for c in a.paths.columns:
        if c not in skip:
            assert np.array_equal(a.paths[c], b.paths[c]), c
    assert np.array_equal(a.market_bad_debt, b.market_bad_debt)


def test_screen_on_and_off_and_thread_counts_give_identical_results() -> None:
    """60 jump paths × 8 steps on an 8-account book (seed 21): the screen skips some paths,
    and every column (bad debt, fund draw, liquidations, rounds, events...) is the same with
    the screen off; 1 and 2 threads agree bit for bit."""
    u, book = small_book()
    engine = cm.Engine(u, threads=2)
    paths = small_paths()
    cfg = CascadeConfig(insurance_fund=5.0, liquidation_fee=0.01)
    on = mc.run(engine, book, paths, cfg, threads=2)
    off = mc.run(engine, book, paths, cfg, screen=False, threads=1)
    skipped = np.asarray(on.paths.skipped)
    assert 0 < skipped.sum() < len(paths)
    assert not np.asarray(off.paths.skipped).any()
    _same(on, off, skip=("skipped",))
    # a skipped path is what the cascade gives: nothing
    assert (np.asarray(on.paths.rounds)[skipped] == 0).all()
    assert (np.asarray(on.paths.insurance_fund_usd)[skipped] == 5.0).all()
    _same(on, mc.run(engine, book, paths, cfg, threads=1))


def test_screen_is_exact_on_a_synthetic_book() -> None:
    """A 400-account synthetic book (demo universe, seed 5) after today's liquidations —
    it keeps borrow-heavy pools beside isolated positions, which the stress kernel counts as
    liquidatable at every price but the cascade cannot act on — and 60 quiet paths (σ 15–25 %,
    12 steps, seed 2): the screen skips some paths, the results equal the unscreened run's,
    and every path it keeps has a liquidation (it is tight on this book)."""
    from crossmargin import synth

    u = cm.Universe.demo()
    engine = cm.Engine(u, threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cm.exceptions.TruncatedWarning)
        settled = engine.cascade(
            synth.generate(u, n_accounts=400, seed=5), CascadeConfig(shock={})
        ).final_book
    bal, pos = settled.to_pandas(u)
    # An inert account (as found in larger synthetic books): borrows beside an isolated short.
    inert = pd.DataFrame(
        {
            "account": 1,
            "asset": ["USDT", "USDC", "BTC", "ETH"],
            "qty": [-105.07652, 146.84539, -0.0027455, 0.0711344],
        }
    )
    short = pd.DataFrame(
        {
            "account": [1],
            "market": ["SOLUSDT"],
            "qty": [-35.817],
            "entry_price": [136.431],
            "isolated_margin": [558.6],
        }
    )
    book = cm.Book.from_pandas(pd.concat([bal, inert]), pd.concat([pos, short]))
    m = engine.evaluate(book)
    assert m.liquidatable.sum() == 1 and m.liquidatable[0]  # and so at every price
    paths = mc.simulate(
        mc.Normal({"BTC": 0.15, "ETH": 0.2, "SOL": 0.25}), n_paths=60, steps=12, seed=2
    )
    cfg = CascadeConfig(insurance_fund=1e3)
    on = mc.run(engine, book, paths, cfg)
    off = mc.run(engine, book, paths, cfg, screen=False)
    skipped = np.asarray(on.paths.skipped)
    assert 0 < skipped.sum() < len(paths)
    _same(on, off, skip=("skipped",))
    assert (np.asarray(off.paths.events)[skipped] == 0).all()
    assert (np.asarray(off.paths.events)[~skipped] > 0).all()
    alone = mc.screen(engine, book, paths)
    assert np.array_equal(alone.clear, skipped)
    assert np.array_equal(alone.cover1_usd, on.paths.cover1_usd)


def test_each_path_is_its_cascade_with_an_exact_ledger() -> None:
    """Per path: the run's row is Engine.cascade's on that path, whose ledger balances
    exactly (check_conservation, in integer minor units)."""
    u, book = small_book()
    engine = cm.Engine(u, threads=1)
    paths = small_paths(20)
    cfg = CascadeConfig(insurance_fund=5.0, deleverage="none")
    r = mc.run(engine, book, paths, cfg, check=True)
    for p in range(len(paths)):
        c = engine.cascade(
            book, CascadeConfig(insurance_fund=5.0, deleverage="none", path=paths.path(p))
        )
        assert c.check_conservation()
        assert r.paths.bad_debt_usd[p] == c.bad_debt
        assert r.paths.rounds[p] == len(c.rounds)
        assert r.paths.uncovered_bad_debt_usd[p] == c.uncovered_bad_debt
        assert r.market_bad_debt[p].sum() == pytest.approx(c.bad_debt, abs=1e-9)
        # the fund is exhausted exactly when the draw exceeds it
        assert bool(r.paths.fund_exhausted[p]) == (c.uncovered_bad_debt > 0)


def test_cover_one_and_two() -> None:
    """Cover-1 / Cover-2 on a path: the largest and the two largest stress shortfalls
    (max over steps of max(mm − adj_equity_maint, 0)), per account or per group."""
    u, book = small_book()
    engine = cm.Engine(u)
    paths = small_paths(10)
    groups = {1: "A", 2: "A", 3: "B"}
    r = mc.run(engine, book, paths, CascadeConfig())
    rg = mc.run(engine, book, paths, CascadeConfig(), groups=groups)
    for p in range(len(paths)):
        scen = {f"{t}": step for t, step in enumerate(paths.path(p))}
        short = np.maximum(-engine.stress(book, scen).matrix, 0.0)  # accounts × steps
        per = short.max(axis=1)
        top = np.sort(per)[::-1]
        assert r.paths.cover1_usd[p] == pytest.approx(top[0], rel=1e-12, abs=1e-9)
        assert r.paths.cover2_usd[p] == pytest.approx(top[0] + top[1], rel=1e-12, abs=1e-9)
        ga = (short[0] + short[1]).max()  # accounts 1 and 2 default together
        grouped = np.sort([ga, *per[2:]])[::-1]
        assert rg.paths.cover1_usd[p] == pytest.approx(grouped[0], rel=1e-12, abs=1e-9)
        assert rg.paths.cover2_usd[p] == pytest.approx(grouped[0] + grouped[1], abs=1e-9)


def test_fund_sizing_and_tail_attribution() -> None:
    u, book = small_book()
    engine = cm.Engine(u)
    paths = small_paths(60)
    r = mc.run(engine, book, paths, CascadeConfig(insurance_fund=1.0, deleverage="none"))
    draw = np.sort(np.asarray(r.paths.fund_draw_usd))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.TailWarning)
        f = r.fund_size(0.1)
        assert f.value == draw[math.ceil(60 * 0.9) - 1]
        assert r.exhaustion_probability(f.value).value <= 0.1
        ex = r.exhaustion_probability()
        assert ex.value == np.mean(np.asarray(r.paths.uncovered_bad_debt_usd) > 0)
        att = r.tail_attribution(0.8)
        rows = r.tail_paths(0.8)
        assert att.bad_debt_usd.sum() == pytest.approx(r.paths.bad_debt_usd[rows].sum())
        if att.bad_debt_usd.sum() > 0:
            assert att.share.sum() == pytest.approx(1.0)
        s = r.summary(levels=(0.9,))
    assert s["paths"] == 60 and "es_90_usd" in s and "cover2_90_usd" in s
    with pytest.warns(stats.TailWarning, match="fewer than 10 tail observations"):
        r.summary()


def test_compare_policies_on_common_paths() -> None:
    u, book = small_book()
    engine = cm.Engine(u)
    paths = small_paths(40)
    policies = {
        "base": {},
        "fee 2%": {"liquidation_fee": 0.02},
        "full close": mc.Policy(partial_fraction=1.0),
        "socialised": {"deleverage": "socialized_loss"},
        "big fund": {"insurance_fund": 1e6},
        "vol margin": mc.Policy(margin=mc.VolScaledMargin({"BTC": 0.3, "ETH": 0.3})),
    }
    results: dict[str, mc.MonteCarloResult] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.TailWarning)
        t = mc.compare_policies(
            engine, book, paths, policies, base=CascadeConfig(insurance_fund=1.0), results=results
        )
    assert list(t.policy) == list(policies)
    row = dict(zip(t.policy, range(len(t)), strict=True))
    assert t.p_fund_exhausted[row["big fund"]] <= t.p_fund_exhausted[row["base"]]
    assert t.liquidation_fee[row["fee 2%"]] == 0.02
    assert t.mean_margin_multiplier[row["vol margin"]] > 1.0
    assert (np.asarray(results["vol margin"].paths.margin_multiplier) >= 1.0).all()
    # the same paths: the base row is a plain run
    base = mc.run(engine, book, paths, CascadeConfig(insurance_fund=1.0))
    _same(base, results["base"])


def test_vol_scaled_margin_scales_the_rates() -> None:
    u, _ = small_book()
    scaled = mc.scale_universe(u, {"BTC": 2.0})
    assert scaled.markets[0].brackets[0][1:] == (0.2, 0.1)
    assert scaled.markets[1].brackets == u.markets[1].brackets
    rule = mc.VolScaledMargin(0.5, cap=2.0, step=0.25)
    paths = mc.PathSet.from_moves(
        [[{"BTC": 0.0}, {"BTC": 0.0}], [{"BTC": -0.05}, {"BTC": 0.05}]], horizon="1d"
    )
    k = rule.multipliers(paths)[:, 0]
    assert k[0] == 1.0 and k[1] == 2.0  # realised ≈ 0.05·√2·√365 ≈ 1.35 → capped at 2


# ---- typed errors --------------------------------------------------------------------------
def test_bad_parameters_are_typed_errors_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="not positive definite") as e:
        mc.simulate(
            mc.Normal(
                {"A": 0.5, "B": 0.5, "C": 0.5}, [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]
            ),
            n_paths=1,
        )
    assert e.value.field == "corr"
    with pytest.raises(ConfigError) as e:
        mc.simulate(mc.Normal({"BTC": -0.5}), n_paths=1)
    assert e.value.field == "vol[BTC]"
    with pytest.raises(ConfigTypeError) as e:
        mc.simulate(mc.Normal({"BTC": "high"}), n_paths=1)
    assert e.value.field == "vol[BTC]"
    with pytest.raises(ConfigError) as e:
        mc.simulate(mc.Bootstrap({"BTC": np.array([])}, frequency="1h"), n_paths=1)
    assert e.value.field == "returns"
    with pytest.raises(ConfigError) as e:
        mc.PathSet.from_moves([[{"BTC": 0.1}, {"BTC": 0.2}], [{"BTC": 0.1}]])
    assert e.value.field == "paths[1]"
    with pytest.raises(ConfigError) as e:
        mc.simulate(mc.StudentT({"BTC": 0.5}, df=2.0), n_paths=1)
    assert e.value.field == "df"
    with pytest.raises(ConfigError) as e:
        mc.simulate(mc.GarchT({"BTC": 0.5}, alpha=0.2, beta=0.85), n_paths=1)
    assert e.value.field == "beta"
    with pytest.raises(ConfigError) as e:
        mc.simulate(mc.Normal({"BTC": 0.5}), n_paths=1, horizon="1 fortnight")
    assert e.value.field == "horizon"
    with pytest.raises(ConfigError) as e:
        mc.simulate(mc.Bootstrap({"BTC": np.zeros(100)}, frequency="7m"), n_paths=1, steps=24)
    assert e.value.field == "steps"
    u, book = small_book()
    paths = small_paths(2)
    with pytest.raises(ConfigError) as e:
        mc.run(cm.Engine(u), book, paths, CascadeConfig(shock={"BTC": -0.1}))
    assert e.value.field == "cascade.path"
    other = mc.simulate(mc.Normal({"DOGE": 1.0}), n_paths=1)
    with pytest.raises(ConfigError) as e:
        mc.run(cm.Engine(u), book, other)
    assert e.value.field == "paths.underlyings[0]"
    with pytest.raises(ConfigError) as e:
        mc.compare_policies(cm.Engine(u), book, paths, {"x": {"fee": 0.1}})
    assert e.value.field == "policies[x].fee"
    with pytest.raises(ConfigError) as e:
        mc.compare_policies(cm.Engine(u), book, paths, {"x": {"liquidation_fee": 2.0}})
    assert e.value.field == "cascade.liquidation_fee"


def test_unequal_paths_in_a_parquet_file(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"path": [0, 0, 1], "step": [0, 1, 0], "BTC": [0.1, 0.2, 0.1]}),
        tmp_path / "p.parquet",
    )
    with pytest.raises(ConfigError) as e:
        mc.PathSet.load(tmp_path / "p.parquet")
    assert e.value.field == "paths[1]"


def test_returns_from_csv_and_parquet(tmp_path) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=200, freq="h"),
            "BTC": rng.normal(0, 0.01, 200),
            "ETH": rng.normal(0, 0.012, 200),
        }
    )
    df.to_csv(tmp_path / "r.csv", index=False)
    df.to_parquet(tmp_path / "r.parquet")
    for src in (tmp_path / "r.csv", tmp_path / "r.parquet", df):
        names, x, freq = mc.read_returns(src)
        assert names == ["BTC", "ETH"] and x.shape == (200, 2)
        assert freq == pytest.approx(1 / (365 * 24))
    paths = mc.simulate(mc.Bootstrap(str(tmp_path / "r.csv")), n_paths=5, steps=24, seed=1)
    assert paths.moves.shape == (5, 24, 2)
    with pytest.raises(ConfigError) as e:
        mc.read_returns(pd.DataFrame({"BTC": [0.1, np.nan]}))
    assert e.value.field == "returns[BTC]"


def test_stationary_bootstrap_keeps_the_autocorrelation_iid_draws_destroy() -> None:
    """An AR(1) hourly table (φ = 0.8, 20,000 rows, seed 4), 400 paths × 48 steps: the lag-1
    autocorrelation of the stationary bootstrap's returns (mean block 50 rows) is the table's
    shrunk by the block breaks, φ·(1 − 1/50) ≈ 0.78 (within 0.06); the i.i.d. bootstrap's is
    0 (within 0.03, ~4 standard errors of 19,000 pairs). Both keep the volatility."""
    rng = np.random.default_rng(4)
    x = np.empty(20_000)
    x[0] = 0.0
    for t in range(1, len(x)):
        x[t] = 0.8 * x[t - 1] + 0.002 * rng.standard_normal()
    table = {"BTC": x}

    def lag1(paths: mc.PathSet) -> float:
        r = paths.log_returns()[:, :, 0]
        a, b = r[:, :-1].ravel(), r[:, 1:].ravel()
        return float(np.corrcoef(a, b)[0, 1])

    iid = mc.simulate(
        mc.Bootstrap(table, frequency="1h"), n_paths=400, steps=48, horizon="48h", seed=5
    )
    blocks = mc.simulate(
        mc.Bootstrap(table, frequency="1h", block=50), n_paths=400, steps=48, horizon="48h", seed=5
    )
    assert abs(lag1(iid)) < 0.03
    assert lag1(blocks) == pytest.approx(0.8 * (1 - 1 / 50), abs=0.06)
    for p in (iid, blocks):
        assert p.log_returns().std() == pytest.approx(x.std(), rel=0.1)
    assert mc.Bootstrap(table, frequency="1h", block=50).describe()["block"] == 50.0


@pytest.mark.parametrize("block", [0.5, -3, float("nan"), float("inf")])
def test_bad_block_lengths_are_typed_errors(block: float) -> None:
    with pytest.raises(ConfigError, match="block"):
        mc.Bootstrap({"BTC": np.zeros(10)}, frequency="1h", block=block)


def test_a_block_length_that_is_not_a_number_is_a_type_error() -> None:
    with pytest.raises(ConfigTypeError, match="block"):
        mc.Bootstrap({"BTC": np.zeros(10)}, frequency="1h", block="long")  # type: ignore[arg-type]
