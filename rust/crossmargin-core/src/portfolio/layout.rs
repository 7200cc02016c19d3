//! The portfolio kernel's per-call layout: every book code resolved once to one record of
//! what a row of it needs (its universe index, underlying, where its risk rows and its
//! underlying's scenario slots start, its contract, mark, settle price and per-contract
//! sensitivities), so that an account's row reads one record instead of a dozen per-market
//! arrays through the remap; and scenario rows padded to a multiple of [`LANES`] so that
//! the per-row accumulation and the worst-loss scan run in whole chunks (vector adds and
//! maxima, no remainder).

use super::{EntryTerm, RiskArrays};
use crate::contract::{Contract, Payoff};
use crate::margin::MarginContext;
use crate::universe::MarketKind;

/// Scenario rows are padded to a multiple of this (4 f64: one AVX register, two SSE2).
pub(crate) const LANES: usize = 4;

/// `n` scenario slots rounded up to whole chunks of [`LANES`].
#[inline]
pub(crate) fn padded(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// What a position row of one book market code reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MarketRow {
    /// Universe market index.
    pub k: u32,
    pub underlying: u32,
    /// Start of the market's rows in [`RiskArrays::value`] / [`RiskArrays::entry`], start
    /// of its underlying's slots in the scratch P&L, and their padded length (0: the
    /// underlying has no portfolio parameters).
    pub risk: u32,
    pub slots: u32,
    pub width: u32,
    pub option: bool,
    /// Inverse payoff (uPnL by 1 / entry − 1 / mark), and linear payoff (a flat position's
    /// uPnL is its formula's, not 0): `contract::Contract::pnl`'s cases.
    pub inverse: bool,
    pub linear: bool,
    /// The entry term as an index of [0, entry, 1 / entry] (`EntryTerm::factor`).
    pub term: u8,
    /// Contract size (an option's as `options::option_margin` builds its contract).
    pub size: f64,
    pub mark: f64,
    /// 1 / mark, the inverse uPnL's second term.
    pub inv_mark: f64,
    pub settle_price: f64,
    pub dollar_delta: f64,
    pub dollar_delta_entry: f64,
    pub gamma: f64,
    pub vega_move: f64,
    pub short_min: f64,
    pub contingency: f64,
}

/// What a balance row of one book asset code reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AssetRow {
    /// Universe asset index.
    pub i: u32,
    /// Underlying the asset moves with (u32::MAX: none).
    pub underlying: u32,
    /// Start of its rows in [`RiskArrays::asset_value`], of its underlying's slots in the
    /// scratch P&L, and their padded length (0: it does not move in the scenarios).
    pub risk: u32,
    pub slots: u32,
    pub width: u32,
    pub price: f64,
}

/// Every book code's record, built once per call from the context and the risk arrays.
#[derive(Debug, Clone)]
pub(crate) struct CodeTables {
    pub market: Vec<MarketRow>,
    pub asset: Vec<AssetRow>,
}

impl CodeTables {
    pub(crate) fn new(ctx: &MarginContext<'_>, ra: &RiskArrays, market_offset: &[usize]) -> Self {
        let u = ctx.universe;
        let mt = &u.markets;
        let market = ctx
            .remap
            .market
            .iter()
            .map(|&k| {
                let k = k as usize;
                let ui = mt.underlying[k] as usize;
                let option = mt.kind[k] == MarketKind::Option;
                let contract = if option {
                    Contract::new(mt.contract_size[k], mt.inverse[k], true)
                } else {
                    u.market_hot[k].contract
                };
                MarketRow {
                    k: k as u32,
                    underlying: ui as u32,
                    risk: market_offset[k] as u32,
                    slots: ra.scen_offset[ui] as u32,
                    width: ra.width(ui) as u32,
                    option,
                    inverse: contract.payoff == Payoff::Inverse,
                    linear: contract.payoff == Payoff::Linear,
                    term: match ra.entry_term[k] {
                        EntryTerm::None => 0,
                        EntryTerm::Linear => 1,
                        EntryTerm::Inverse => 2,
                    },
                    size: contract.size,
                    mark: ctx.prices.mark[k],
                    inv_mark: 1.0 / ctx.prices.mark[k],
                    settle_price: ctx.prices.asset[mt.settle[k] as usize],
                    dollar_delta: ra.dollar_delta[k],
                    dollar_delta_entry: ra.dollar_delta_entry[k],
                    gamma: ra.gamma[k],
                    vega_move: ra.vega_move[k],
                    short_min: ra.short_min[k],
                    contingency: ra.contingency[k],
                }
            })
            .collect();
        let asset = ctx
            .remap
            .asset
            .iter()
            .map(|&i| {
                let i = i as usize;
                let ui = ra.asset_underlying[i];
                let width = ra.asset_offset[i + 1] - ra.asset_offset[i];
                AssetRow {
                    i: i as u32,
                    underlying: ui,
                    risk: ra.asset_offset[i] as u32,
                    slots: if width > 0 { ra.scen_offset[ui as usize] as u32 } else { 0 },
                    width: width as u32,
                    price: ctx.prices.asset[i],
                }
            })
            .collect();
        CodeTables { market, asset }
    }
}

// The three loops below are written with SSE2 (the x86-64 baseline: no runtime dispatch)
// two f64 to a register, two registers to a chunk; elsewhere as plain per-slot loops. Each
// slot's arithmetic is the same IEEE operation either way (no fused multiply-add), so the
// results are the same bits on every target. Plain loops over chunks were vectorised by
// the compiler across chunks (strided loads), not within them.

/// pnl\[s\] += q × v\[s\] over whole chunks (`pnl` and `v` of one padded length).
#[inline(always)]
pub(crate) fn add_scaled(pnl: &mut [f64], q: f64, v: &[f64]) {
    assert!(v.len() >= pnl.len() && pnl.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86-64; every access is within `pnl` / `v` (asserted above).
    unsafe {
        use std::arch::x86_64::*;
        let (p, v, qq) = (pnl.as_mut_ptr(), v.as_ptr(), _mm_set1_pd(q));
        for c in (0..pnl.len()).step_by(LANES) {
            for h in [c, c + 2] {
                let x = _mm_add_pd(_mm_loadu_pd(p.add(h)), _mm_mul_pd(qq, _mm_loadu_pd(v.add(h))));
                _mm_storeu_pd(p.add(h), x);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (p, v) in pnl.iter_mut().zip(v) {
        *p += q * v;
    }
}

/// pnl\[s\] += q × (v\[s\] + x × e\[s\]) over whole chunks.
#[inline(always)]
pub(crate) fn add_scaled_entry(pnl: &mut [f64], q: f64, v: &[f64], x: f64, e: &[f64]) {
    assert!(v.len() >= pnl.len() && e.len() >= pnl.len() && pnl.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `add_scaled`.
    unsafe {
        use std::arch::x86_64::*;
        let (p, v, e) = (pnl.as_mut_ptr(), v.as_ptr(), e.as_ptr());
        let (qq, xx) = (_mm_set1_pd(q), _mm_set1_pd(x));
        for c in (0..pnl.len()).step_by(LANES) {
            for h in [c, c + 2] {
                let ve = _mm_add_pd(_mm_loadu_pd(v.add(h)), _mm_mul_pd(xx, _mm_loadu_pd(e.add(h))));
                _mm_storeu_pd(p.add(h), _mm_add_pd(_mm_loadu_pd(p.add(h)), _mm_mul_pd(qq, ve)));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for ((p, v), e) in pnl.iter_mut().zip(v).zip(e) {
        *p += q * (v + x * e);
    }
}

/// The worst weighted scenario loss max(0, max −pnl\[s\]) of one underlying's padded slots,
/// which it leaves at zero for the next account. One running maximum per lane, then the
/// lanes': the maximum of the same values as a scan in scenario order (a maximum does not
/// depend on the order; NaN never wins, as with `f64::max`). Padding slots hold ±0 or NaN
/// (q × 0, or ∞ × 0 for an entry term of ∞), neither of which exceeds the start value 0.
#[inline(always)]
pub(crate) fn take_worst_loss(pnl: &mut [f64]) -> f64 {
    assert!(pnl.len().is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `add_scaled`. `_mm_max_pd(a, b)` is a where a > b, else b (b when
    // either is NaN): `if loss > worst { loss } else { worst }` per lane.
    unsafe {
        use std::arch::x86_64::*;
        let p = pnl.as_mut_ptr();
        let (zero, sign) = (_mm_setzero_pd(), _mm_set1_pd(-0.0));
        let (mut w0, mut w1) = (zero, zero);
        for c in (0..pnl.len()).step_by(LANES) {
            w0 = _mm_max_pd(_mm_xor_pd(_mm_loadu_pd(p.add(c)), sign), w0);
            w1 = _mm_max_pd(_mm_xor_pd(_mm_loadu_pd(p.add(c + 2)), sign), w1);
            _mm_storeu_pd(p.add(c), zero);
            _mm_storeu_pd(p.add(c + 2), zero);
        }
        let w = _mm_max_pd(w0, w1);
        let (lo, hi) = (_mm_cvtsd_f64(w), _mm_cvtsd_f64(_mm_unpackhi_pd(w, w)));
        if hi > lo {
            hi
        } else {
            lo
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut worst = 0.0f64;
        for p in pnl.iter_mut() {
            let loss = -*p;
            worst = if loss > worst { loss } else { worst };
            *p = 0.0;
        }
        worst
    }
}
