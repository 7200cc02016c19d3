"""Seeded synthetic books that look like an exchange's: many small retail accounts, a few
whales, hedged market makers, some borrowers, a slice of isolated positions.

Shape by default (docs/ARCHITECTURE.md "Performance targets"): about 3 balances and 4 positions per
account, rows shuffled (unsorted input), dense int64 account ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossmargin.book import Book
from crossmargin.cascade import CascadeConfig, DepthCurve
from crossmargin.resources import book_bytes, check_memory
from crossmargin.risk.stress import PRESETS
from crossmargin.universe import Universe


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; every draw comes from one seeded generator."""

    n_accounts: int = 1_000_000
    seed: int = 7
    mean_balances: float = 3.0
    mean_positions: float = 4.0
    median_equity_usd: float = 2_000.0
    whale_fraction: float = 0.002
    market_maker_fraction: float = 0.01
    borrower_fraction: float = 0.08
    isolated_fraction: float = 0.05
    # Share of position draws that land on option markets (when the universe has any; 0
    # leaves option markets out). Options are sized by underlying notional (qty × cs × S).
    options: float = 0.0
    median_leverage: float = 3.0
    max_leverage: float = 20.0
    entry_dispersion: float = 0.02
    first_account_id: int = 10_000_000
    shuffle: bool = True


def _pick_distinct(
    rng: np.random.Generator, n: int, weights: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each of n accounts, counts[a] distinct items drawn by weight (Efraimidis–Spirakis):
    returns (account index, item index) per draw."""
    k = len(weights)
    keys = rng.random((n, k)) ** (1.0 / weights)
    order = np.argsort(-keys, axis=1)
    take = np.arange(k)[None, :] < counts[:, None]
    acct = np.broadcast_to(np.arange(n)[:, None], (n, k))[take]
    return acct, order[take]


def estimated_bytes(n_accounts: int, n_assets: int, n_markets: int, cfg: SynthConfig) -> int:
    """Upper bound of :func:`generate`'s peak memory (measured ~1.35× below it on the demo
    universe): the per-account draw matrices (float keys, int64 argsort, masks: ~25 bytes per
    account × symbol), ~80 bytes per row of working columns, then the book's grouping."""
    rows_b = int(n_accounts * min(max(cfg.mean_balances, 1.0), max(n_assets, 1)))
    rows_p = int(n_accounts * min(max(cfg.mean_positions, 0.0), n_markets))
    per_account = 64 + 25 * (n_assets + n_markets)
    return n_accounts * per_account + (rows_b + rows_p) * 80 + book_bytes(rows_b, rows_p, False)


def generate(universe: Universe, config: SynthConfig | None = None, **overrides: object) -> Book:
    """A synthetic book over ``universe`` (uses its asset prices and marks). Raises
    :class:`~crossmargin.exceptions.ResourceError` before allocating when the book would not
    fit in the available memory."""
    cfg = config or SynthConfig()
    if overrides:
        cfg = SynthConfig(**{**cfg.__dict__, **overrides})  # type: ignore[arg-type]
    n = int(cfg.n_accounts)
    na, nm = len(universe.assets), len(universe.markets)
    check_memory(estimated_bytes(n, na, nm, cfg), f"a synthetic book of {n} accounts")
    rng = np.random.default_rng(cfg.seed)
    prices = np.array([a.price for a in universe.assets])
    marks = np.array(universe.reference_marks, dtype=np.float64)
    cs = np.array([m.contract_size for m in universe.markets])
    inverse = np.array([m.inverse for m in universe.markets])
    settle = np.array([universe.asset_index[m.settle] for m in universe.markets])

    # Who is who: equity scale per account.
    kind = rng.random(n)
    whale = kind < cfg.whale_fraction
    maker = (kind >= cfg.whale_fraction) & (kind < cfg.whale_fraction + cfg.market_maker_fraction)
    equity = rng.lognormal(np.log(cfg.median_equity_usd), 1.3, n)
    equity[whale] *= 2_000.0
    equity[maker] *= 300.0

    # Balances: stablecoins most likely; distinct assets per account.
    asset_w = np.array([4.0 if a.symbol.startswith("USD") else 1.0 for a in universe.assets])
    p_bal = min(max((cfg.mean_balances - 1.0) / max(na - 1, 1), 0.0), 1.0)
    n_bal = 1 + rng.binomial(max(na - 1, 0), p_bal, n)
    b_acct, b_asset = _pick_distinct(rng, n, asset_w, n_bal)
    share = rng.dirichlet(np.ones(3), len(b_acct))[:, 0] * 3.0 / n_bal[b_acct]
    b_usd = equity[b_acct] * share
    b_qty = b_usd / np.where(prices[b_asset] > 0, prices[b_asset], 1.0)
    # Borrowers: one of their balances turns into a loan of up to half their equity.
    borrower = rng.random(n) < cfg.borrower_fraction
    first_row = np.r_[0, np.cumsum(n_bal)[:-1]]
    loan_rows = first_row[borrower & (n_bal > 1)]
    others_usd = (
        np.bincount(b_acct, weights=b_usd, minlength=n)[borrower & (n_bal > 1)] - b_usd[loan_rows]
    )
    loan_usd = others_usd * rng.uniform(0.1, 0.5, len(loan_rows))
    b_qty[loan_rows] = -loan_usd / np.where(
        prices[b_asset[loan_rows]] > 0, prices[b_asset[loan_rows]], 1.0
    )

    # Positions: distinct markets per account, long or short; makers hedge (net ~ flat).
    p_pos = min(cfg.mean_positions / max(nm, 1), 1.0)
    n_pos = rng.binomial(nm, p_pos, n) if nm else np.zeros(n, dtype=np.int64)
    is_option = np.array([m.is_option for m in universe.markets], dtype=bool)
    market_w = np.ones(max(nm, 1))
    if is_option.any():
        n_opt = int(is_option.sum())
        share = min(max(cfg.options, 0.0), 1.0)
        market_w[: len(is_option)] = (
            np.where(is_option, share / n_opt, (1.0 - share) / max(nm - n_opt, 1)) * nm + 1e-12
        )
    p_acct, p_market = _pick_distinct(rng, n, market_w, n_pos)
    lev = np.minimum(rng.lognormal(np.log(cfg.median_leverage), 0.6, n), cfg.max_leverage)
    lev[maker] = rng.uniform(0.5, 2.0, maker.sum())
    notional_usd = (
        equity[p_acct]
        * lev[p_acct]
        / np.maximum(n_pos[p_acct], 1)
        * rng.uniform(0.3, 1.7, len(p_acct))
    )
    side = np.where(rng.random(len(p_acct)) < 0.55, 1.0, -1.0)
    m_mark = marks[p_market]
    settle_px = prices[settle[p_market]]
    # Linear: qty × cs × mark = notional; inverse: qty × cs = notional in USD.
    qty = np.where(
        inverse[p_market],
        notional_usd / cs[p_market],
        notional_usd / (cs[p_market] * m_mark * np.maximum(settle_px, 1e-12)),
    )
    if is_option.any():
        spot = np.array(
            [universe.reference_price(m.underlying) for m in universe.markets], dtype=np.float64
        )
        opt = is_option[p_market]
        qty[opt] = notional_usd[opt] / (cs[p_market][opt] * spot[p_market][opt])
    qty = np.round(side * qty, 3)
    entry = m_mark * np.exp(rng.normal(0.0, cfg.entry_dispersion, len(p_acct)))
    entry = np.maximum(entry, 1e-9)  # an option worth 0 was still bought at a price > 0
    iso = np.zeros(len(p_acct))
    isolated = rng.random(len(p_acct)) < cfg.isolated_fraction
    iso_usd = notional_usd[isolated] / rng.uniform(5.0, 25.0, isolated.sum())
    iso[isolated] = iso_usd / np.maximum(settle_px[isolated], 1e-12)

    ids = np.int64(cfg.first_account_id) + np.arange(n, dtype=np.int64)
    bal_order = rng.permutation(len(b_acct)) if cfg.shuffle else np.arange(len(b_acct))
    pos_order = rng.permutation(len(p_acct)) if cfg.shuffle else np.arange(len(p_acct))
    return Book.from_arrays(
        balances={
            "account": ids[b_acct][bal_order],
            "asset": b_asset.astype(np.uint32)[bal_order],
            "qty": b_qty[bal_order],
        },
        positions={
            "account": ids[p_acct][pos_order],
            "market": p_market.astype(np.uint32)[pos_order],
            "qty": qty[pos_order],
            "entry_price": entry[pos_order],
            "isolated_margin": iso[pos_order],
        },
    )


__all__ = ["SynthConfig", "estimated_bytes", "generate"]


def thin_liquidity() -> DepthCurve:
    """A thin order book with a gap (0.2% deep for 2M USD, nothing more until 2%, then 200M
    by 6%): the demo's cascade and ``cascade --liquidity thin``."""
    return DepthCurve([(0.002, 2e6), (0.02, 2e6), (0.06, 2e8)])


def demo_crash(universe: Universe) -> CascadeConfig:
    """The demo's cascade: the 10 Oct 2025 crash day (``risk.stress.PRESETS``) in three equal
    steps on :func:`thin_liquidity`, a 50M insurance fund, partial liquidation (a quarter,
    back to a margin ratio of 0.8) — what ``crossmargin demo`` runs and the benchmark times.

    >>> cfg = demo_crash(Universe.demo())
    >>> len(cfg.path)
    3
    """
    crash = PRESETS["2025-10-10"]
    path = [
        {k: v * f for k, v in crash.items() if k in universe.underlyings}
        for f in (1 / 3, 2 / 3, 1.0)
    ]
    return CascadeConfig(
        path=path,
        liquidity=thin_liquidity(),
        insurance_fund=50e6,
        partial_fraction=0.25,
        target_margin_ratio=0.8,
    )
