//! The portfolio kernel as first written, kept as the tests' oracle: per row, every
//! per-market number read through the remap from its own array, the standard requirement of
//! every position, the scenario P&L accumulated and scanned slot by slot with `f64::max`.
//! `tests::the_kernel_matches_the_plain_formula_bit_for_bit` holds [`super::account`] to it.

use super::{Model, PortfolioContext, PortfolioParams, RiskArrays};
use crate::book::AccountRows;
use crate::imf;
use crate::margin::{position_stake, AccountMargin};
use crate::universe::MarketKind;

/// Per-underlying accumulators of one account (reused across accounts of a chunk).
#[derive(Debug, Clone)]
pub struct Scratch {
    pnl: Vec<f64>,
    seen: Vec<bool>,
    touched: Vec<u32>,
    delta: Vec<f64>,
    gamma: Vec<f64>,
    vega: Vec<f64>,
    theta: Vec<f64>,
    rho: Vec<f64>,
    short_min: Vec<f64>,
    /// Option contingency, and the USD delta of long and of short perps and futures.
    contingency: Vec<f64>,
    fut_long: Vec<f64>,
    fut_short: Vec<f64>,
    vega_move: Vec<f64>,
    charge: Vec<f64>,
}

impl Scratch {
    pub fn new(ra: &RiskArrays) -> Self {
        let nu = ra.scen_offset.len() - 1;
        Scratch {
            pnl: vec![0.0; *ra.scen_offset.last().unwrap_or(&0)],
            seen: vec![false; nu],
            touched: Vec::with_capacity(8),
            delta: vec![0.0; nu],
            gamma: vec![0.0; nu],
            vega: vec![0.0; nu],
            theta: vec![0.0; nu],
            rho: vec![0.0; nu],
            short_min: vec![0.0; nu],
            contingency: vec![0.0; nu],
            fut_long: vec![0.0; nu],
            fut_short: vec![0.0; nu],
            vega_move: vec![0.0; nu],
            charge: vec![0.0; nu],
        }
    }

    #[inline]
    fn touch(&mut self, u: u32) {
        if !self.seen[u as usize] {
            self.seen[u as usize] = true;
            self.touched.push(u);
        }
    }

    fn reset(&mut self, ra: &RiskArrays) {
        for &u in &self.touched {
            let u = u as usize;
            self.pnl[ra.scen_offset[u]..ra.scen_offset[u + 1]].fill(0.0);
            self.seen[u] = false;
            self.delta[u] = 0.0;
            self.gamma[u] = 0.0;
            self.vega[u] = 0.0;
            self.theta[u] = 0.0;
            self.rho[u] = 0.0;
            self.short_min[u] = 0.0;
            self.contingency[u] = 0.0;
            self.fut_long[u] = 0.0;
            self.fut_short[u] = 0.0;
            self.vega_move[u] = 0.0;
            self.charge[u] = 0.0;
        }
        self.touched.clear();
    }
}

/// One account's pool: equity, upnl, isolated positions, the unweighted-adjusted equity
/// and the standard requirement of its cross positions; per-underlying exposure in `sc`.
struct Pool {
    m: AccountMargin,
    /// Standard requirement of all cross positions (hybrid floor).
    standard: [f64; 2],
    /// Standard requirement of cross positions on underlyings without parameters.
    unconfigured: [f64; 2],
}

/// Collects an account: standard-model amounts and the per-underlying scenario P&L,
/// delta, greeks and short-option minimum. Greeks are gathered for every underlying;
/// scenario P&L only where the underlying has parameters.
fn gather(rows: AccountRows<'_>, pc: &PortfolioContext<'_>, sc: &mut Scratch) -> Pool {
    let ctx = &pc.margin;
    let u = ctx.universe;
    let (at, mt, ra) = (&u.assets, &u.markets, &pc.arrays);
    let mut m = AccountMargin::default();
    let mut standard = [0.0f64; 2];
    let mut unconfigured = [0.0f64; 2];

    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let i = ctx.remap.asset[code as usize] as usize;
        let value = qty * ctx.prices.asset[i];
        m.equity += value;
        let ui = ra.asset_underlying[i];
        if ui != u32::MAX {
            sc.touch(ui);
            sc.delta[ui as usize] += value;
        }
        let risk = &ra.asset_value[ra.asset_offset[i]..ra.asset_offset[i + 1]];
        if !risk.is_empty() {
            // Moves with a scenario underlying: full value, its risk is in the scenarios.
            let base = ra.scen_offset[ui as usize];
            for (x, r) in sc.pnl[base..base + risk.len()].iter_mut().zip(risk) {
                *x += qty * r;
            }
            m.adj_equity[0] += value;
            m.adj_equity[1] += value;
        } else if qty > 0.0 {
            let discounted = at.haircuts.discounted(i, value);
            for (mode, adj) in m.adj_equity.iter_mut().enumerate() {
                let w = at.weight[mode][i];
                let w = if mode == 0 {
                    imf::scaled_initial_weight(
                        w,
                        (at.scale_initial_weight_start[i], at.total_deposits[i]),
                        ctx.prices.asset[i],
                    )
                } else {
                    w
                };
                *adj += discounted * imf::discounted_weight(w, at.imf_factor[i], qty);
            }
        } else if qty < 0.0 {
            for (mode, adj) in m.adj_equity.iter_mut().enumerate() {
                *adj += value * imf::premium_weight(at.liability_weight[mode][i], at.imf_factor[i], qty);
            }
        }
    }

    for j in 0..rows.pos_code.len() {
        let k = ctx.remap.market[rows.pos_code[j] as usize] as usize;
        let (qty, entry, isolated) = (rows.pos_qty[j], rows.pos_entry[j], rows.pos_isolated[j]);
        let settle_price = ctx.prices.asset[mt.settle[k] as usize];
        let ui = mt.underlying[k] as usize;
        // The standard model's own per-position numbers (margin::position_stake).
        let p = position_stake(ctx, k, qty, entry);
        let (contribution, upnl, requirement) = (p.equity, p.upnl, p.requirement);
        m.upnl += upnl;
        m.equity += contribution;
        if isolated > 0.0 {
            let margin = isolated * settle_price;
            m.equity += margin;
            if margin + contribution < requirement[1] {
                m.isolated_liquidatable = true;
            }
            continue;
        }
        m.adj_equity[0] += contribution;
        m.adj_equity[1] += contribution;
        standard[0] += requirement[0];
        standard[1] += requirement[1];
        if qty == 0.0 {
            continue;
        }
        sc.touch(ui as u32);
        let x = ra.entry_term[k].factor(entry);
        let dd = qty * (ra.dollar_delta[k] + x * ra.dollar_delta_entry[k]);
        sc.delta[ui] += dd;
        sc.gamma[ui] += qty * ra.gamma[k];
        sc.vega[ui] += qty * ra.vega[k];
        sc.theta[ui] += qty * ra.theta[k];
        if ra.width(ui) == 0 {
            unconfigured[0] += requirement[0];
            unconfigured[1] += requirement[1];
            continue;
        }
        sc.vega_move[ui] += qty * ra.vega_move[k];
        if qty < 0.0 {
            sc.short_min[ui] -= qty * ra.short_min[k];
        }
        if mt.kind[k] == MarketKind::Option {
            sc.contingency[ui] += qty.abs() * ra.contingency[k];
        } else if dd > 0.0 {
            sc.fut_long[ui] += dd;
        } else {
            sc.fut_short[ui] -= dd;
        }
        let (base, off) = (ra.scen_offset[ui], pc.market_offset[k]);
        let n = ra.width(ui);
        let (value, entry_part) = (&ra.value[off..off + n], &ra.entry[off..off + n]);
        if x == 0.0 {
            for (p, v) in sc.pnl[base..base + n].iter_mut().zip(value) {
                *p += qty * v;
            }
        } else {
            for ((p, v), e) in sc.pnl[base..base + n].iter_mut().zip(value).zip(entry_part) {
                *p += qty * (v + x * e);
            }
        }
    }
    Pool { m, standard, unconfigured }
}

/// Worst weighted scenario loss of an underlying (≥ 0).
#[inline]
fn scan_loss(pnl: &[f64]) -> f64 {
    pnl.iter().fold(0.0f64, |worst, &p| worst.max(-p))
}

/// Inter-underlying credits, in configured order: for a pair whose net USD deltas have
/// opposite signs, the matched delta min(|δa|, |δb|) earns each leg rate × its remaining
/// charge × matched / |δ leg|; matched delta is used up.
fn apply_offsets(params: &PortfolioParams, sc: &mut Scratch) {
    if params.offsets.is_empty() {
        return;
    }
    let mut free = sc.delta.clone();
    for &(a, b, rate) in &params.offsets {
        let (a, b) = (a as usize, b as usize);
        let configured = params.underlying[a].is_some() && params.underlying[b].is_some();
        if !(configured && sc.seen[a] && sc.seen[b]) || free[a] * free[b] >= 0.0 {
            continue;
        }
        let matched = free[a].abs().min(free[b].abs());
        let ca = rate * sc.charge[a] * matched / free[a].abs();
        let cb = rate * sc.charge[b] * matched / free[b].abs();
        sc.charge[a] -= ca;
        sc.charge[b] -= cb;
        free[a] -= matched * free[a].signum();
        free[b] -= matched * free[b].signum();
    }
}

/// One account under a portfolio model. `adj_equity` is the pool at full value for
/// assets that move in the scenarios and uPnL / option values, standard weights for
/// other collateral; requirement per docs/MODEL.md "Scenario requirement" and "Delta model".
pub fn evaluate_account(
    rows: AccountRows<'_>,
    pc: &PortfolioContext<'_>,
    model: Model,
    sc: &mut Scratch,
) -> AccountMargin {
    let pool = gather(rows, pc, sc);
    let ra = &pc.arrays;
    let mut m = pool.m;
    for t in 0..sc.touched.len() {
        let i = sc.touched[t] as usize;
        let Some(par) = pc.params.underlying[i].as_ref() else { continue };
        sc.charge[i] = match model {
            Model::Delta => {
                let s = pc.margin.underlying_price(i);
                let gamma_rel = sc.gamma[i] * s * s;
                sc.delta[i].abs() * par.delta_rate
                    + 0.5 * (-gamma_rel).max(0.0) * ra.price_range[i] * ra.price_range[i]
                    + sc.vega_move[i].abs() * ra.vol_range[i]
            }
            Model::Portfolio | Model::Hybrid => scan_loss(&sc.pnl[ra.scen_offset[i]..ra.scen_offset[i + 1]]),
        };
    }
    apply_offsets(pc.params, sc);
    let mut mm = pool.unconfigured[1];
    let mut pm = 0.0;
    for &i in &sc.touched {
        let i = i as usize;
        if pc.params.underlying[i].is_some() {
            let offset = ra.futures_offset[i] * sc.fut_long[i].min(sc.fut_short[i]);
            pm += sc.charge[i] + sc.short_min[i] + sc.contingency[i] + offset;
        }
    }
    mm += pm;
    let mut im = pool.unconfigured[0] + pc.params.im_factor * pm;
    if model == Model::Hybrid {
        let f = pc.params.hybrid_floor;
        im = im.max(f * pool.standard[0]);
        mm = mm.max(f * pool.standard[1]);
    }
    sc.reset(ra);
    m.requirement = [im, mm];
    m
}
