//! One account under a portfolio model (docs/MODEL.md "Scenario requirement" and "Delta
//! model"), on the call's code tables ([`super::layout`]): rows are read in the book's
//! order, each through its code's record; each underlying's scenario P&L accumulates in
//! padded slots of the scratch, scanned for the worst loss and cleared in one pass.

use super::layout::{add_scaled, add_scaled_entry, take_worst_loss, CodeTables};
use super::{Model, PortfolioContext, PortfolioParams};
use crate::book::AccountRows;
use crate::imf;
use crate::margin::{position_stake, AccountMargin};

/// One underlying's accumulators of one account.
#[derive(Debug, Clone, Copy, Default)]
struct Exposure {
    /// Net USD delta (positions and the balances that move with the underlying).
    delta: f64,
    /// USD gamma, and the USD change per unit volatility move (delta model only).
    gamma: f64,
    vega_move: f64,
    /// Short-option minimum and option contingency (USD).
    short_min: f64,
    contingency: f64,
    /// USD delta of the long and of the short perps and futures.
    fut_long: f64,
    fut_short: f64,
    /// The model's charge (worst loss, or the delta model's), then less offset credits.
    charge: f64,
}

/// Per-underlying accumulators (reused across the accounts of a chunk).
#[derive(Debug, Clone)]
pub struct Scratch {
    /// Scenario P&L, the padded slots of every configured underlying; all zero between
    /// accounts.
    pnl: Vec<f64>,
    seen: Vec<bool>,
    /// Underlyings in the order the account first touches them (the order of the sum).
    touched: Vec<u32>,
    exposure: Vec<Exposure>,
}

impl Scratch {
    pub fn new(pc: &PortfolioContext<'_>) -> Self {
        let ra = &pc.arrays;
        let nu = ra.scen_offset.len() - 1;
        Scratch {
            pnl: vec![0.0; *ra.scen_offset.last().unwrap_or(&0)],
            seen: vec![false; nu],
            touched: Vec::with_capacity(8),
            exposure: vec![Exposure::default(); nu],
        }
    }

    #[inline]
    fn touch(&mut self, u: u32) -> &mut Exposure {
        if !self.seen[u as usize] {
            self.seen[u as usize] = true;
            self.touched.push(u);
        }
        &mut self.exposure[u as usize]
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

/// Collects an account: standard-model amounts and the per-underlying scenario P&L (not
/// for the delta model, which reads none), delta, gamma (delta model only) and
/// short-option minimum. A position's standard requirement is computed where something
/// reads it: isolated, on an underlying without parameters, or under the hybrid model.
fn gather(rows: AccountRows<'_>, pc: &PortfolioContext<'_>, model: Model, sc: &mut Scratch) -> Pool {
    let ctx = &pc.margin;
    let at = &ctx.universe.assets;
    let (ra, codes): (_, &CodeTables) = (&pc.arrays, &pc.codes);
    let scenarios = model != Model::Delta;
    let mut m = AccountMargin::default();
    let mut standard = [0.0f64; 2];
    let mut unconfigured = [0.0f64; 2];

    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let a = &codes.asset[code as usize];
        let i = a.i as usize;
        let value = qty * a.price;
        m.equity += value;
        if a.underlying != u32::MAX {
            sc.touch(a.underlying).delta += value;
        }
        if a.width > 0 {
            // Moves with a scenario underlying: full value, its risk is in the scenarios.
            if scenarios {
                let (s, r, w) = (a.slots as usize, a.risk as usize, a.width as usize);
                add_scaled(&mut sc.pnl[s..s + w], qty, &ra.asset_value[r..r + w]);
            }
            m.adj_equity[0] += value;
            m.adj_equity[1] += value;
        } else if qty > 0.0 {
            let discounted = at.haircuts.discounted(i, value);
            for (mode, adj) in m.adj_equity.iter_mut().enumerate() {
                let w = at.weight[mode][i];
                let w = if mode == 0 {
                    imf::scaled_initial_weight(w, (at.scale_initial_weight_start[i], at.total_deposits[i]), a.price)
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

    let hybrid = model == Model::Hybrid;
    for j in 0..rows.pos_code.len() {
        let c = &codes.market[rows.pos_code[j] as usize];
        let (qty, entry, isolated) = (rows.pos_qty[j], rows.pos_entry[j], rows.pos_isolated[j]);
        // Selections instead of branches where the row's kind decides (rows of random kinds
        // would mispredict them); each selected value is the expression the branchy code
        // computes (entries are > 0 and quantities finite: the book's checks).
        let recip = 1.0 / entry;
        let wants_requirement = isolated > 0.0 || hybrid || c.width == 0;
        // The standard model's own per-position numbers (margin::position_stake); without
        // the requirement, its equity and uPnL by the same expressions (contract::Contract
        // pnl and value_usd).
        let (contribution, upnl, requirement) = if wants_requirement {
            let p = position_stake(ctx, c.k as usize, qty, entry);
            (p.equity, p.upnl, p.requirement)
        } else {
            let size = qty * c.size;
            let moved = if c.inverse { recip - c.inv_mark } else { c.mark - entry };
            let pnl = if qty == 0.0 && !c.linear { 0.0 } else { size * moved };
            let upnl = pnl * c.settle_price;
            let value = size * c.mark * c.settle_price;
            (if c.option { value } else { upnl }, upnl, [0.0; 2])
        };
        m.upnl += upnl;
        m.equity += contribution;
        if isolated > 0.0 {
            let margin = isolated * c.settle_price;
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
        let x = [0.0, entry, recip][c.term as usize];
        let dd = qty * (c.dollar_delta + x * c.dollar_delta_entry);
        let e = sc.touch(c.underlying);
        e.delta += dd;
        if model == Model::Delta {
            e.gamma += qty * c.gamma;
        }
        if c.width == 0 {
            unconfigured[0] += requirement[0];
            unconfigured[1] += requirement[1];
            continue;
        }
        e.vega_move += qty * c.vega_move;
        // Adding 0 leaves these sums' bits alone: each starts at +0 and only grows (a sum
        // that starts at +0 never becomes −0).
        let short = if qty < 0.0 { qty } else { 0.0 };
        e.short_min -= short * c.short_min;
        e.contingency += qty.abs() * c.contingency; // 0 but for options
        let long = dd > 0.0;
        e.fut_long += if !c.option && long { dd } else { 0.0 };
        e.fut_short -= if !c.option && !long { dd } else { 0.0 };
        if scenarios {
            // pnl += q × (value + x × entry part): for x = 0 (options, whose entry part is
            // 0) the same bits as q × value, up to the sign of a zero product, which adding
            // to a sum that is never −0 cannot show.
            let (s, r, w) = (c.slots as usize, c.risk as usize, c.width as usize);
            add_scaled_entry(&mut sc.pnl[s..s + w], qty, &ra.value[r..r + w], x, &ra.entry[r..r + w]);
        }
    }
    Pool { m, standard, unconfigured }
}

/// Inter-underlying credits, in configured order: for a pair whose net USD deltas have
/// opposite signs, the matched delta min(|δa|, |δb|) earns each leg rate × its remaining
/// charge × matched / |δ leg|; matched delta is used up.
fn apply_offsets(params: &PortfolioParams, sc: &mut Scratch) {
    if params.offsets.is_empty() {
        return;
    }
    let mut free: Vec<f64> = sc.exposure.iter().map(|e| e.delta).collect();
    for &(a, b, rate) in &params.offsets {
        let (a, b) = (a as usize, b as usize);
        let configured = params.underlying[a].is_some() && params.underlying[b].is_some();
        if !(configured && sc.seen[a] && sc.seen[b]) || free[a] * free[b] >= 0.0 {
            continue;
        }
        let matched = free[a].abs().min(free[b].abs());
        let ca = rate * sc.exposure[a].charge * matched / free[a].abs();
        let cb = rate * sc.exposure[b].charge * matched / free[b].abs();
        sc.exposure[a].charge -= ca;
        sc.exposure[b].charge -= cb;
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
    let pool = gather(rows, pc, model, sc);
    let ra = &pc.arrays;
    let mut m = pool.m;
    for t in 0..sc.touched.len() {
        let i = sc.touched[t] as usize;
        let Some(par) = pc.params.underlying[i].as_ref() else { continue };
        sc.exposure[i].charge = match model {
            Model::Delta => {
                let e = &sc.exposure[i];
                let s = pc.margin.underlying_price(i);
                let gamma_rel = e.gamma * s * s;
                e.delta.abs() * par.delta_rate
                    + 0.5 * (-gamma_rel).max(0.0) * ra.price_range[i] * ra.price_range[i]
                    + e.vega_move.abs() * ra.vol_range[i]
            }
            Model::Portfolio | Model::Hybrid => take_worst_loss(&mut sc.pnl[ra.scen_offset[i]..ra.scen_offset[i + 1]]),
        };
    }
    apply_offsets(pc.params, sc);
    let mut mm = pool.unconfigured[1];
    let mut pm = 0.0;
    for &i in &sc.touched {
        let i = i as usize;
        if pc.params.underlying[i].is_some() {
            let e = &sc.exposure[i];
            let offset = ra.futures_offset[i] * e.fut_long.min(e.fut_short);
            pm += e.charge + e.short_min + e.contingency + offset;
        }
    }
    mm += pm;
    let mut im = pool.unconfigured[0] + pc.params.im_factor * pm;
    if model == Model::Hybrid {
        let f = pc.params.hybrid_floor;
        im = im.max(f * pool.standard[0]);
        mm = mm.max(f * pool.standard[1]);
    }
    for &u in &sc.touched {
        sc.seen[u as usize] = false;
        sc.exposure[u as usize] = Exposure::default();
    }
    sc.touched.clear();
    m.requirement = [im, mm];
    m
}
