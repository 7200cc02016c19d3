//! Portfolio margin (docs/MODEL.md "Portfolio margin"): scenario (SPAN-like), delta
//! and hybrid models, and greeks per account × underlying.
//!
//! Per call, every market gets a risk array once: the USD P&L of one contract in every
//! scenario of its underlying (price move, volatility move, cover weight), split into a
//! part that depends on nothing else and a part proportional to the position's entry price
//! (linear: × entry, inverse: × 1/entry) so that one array serves every account. Assets
//! whose symbol is an underlying move with it. An account's requirement is, per
//! underlying, the worst weighted scenario loss, less inter-underlying credits, plus a
//! short-option minimum; markets on underlyings without parameters keep their standard
//! requirement. The rules are written out in docs/MODEL.md ("Options" and "Portfolio
//! margin") and in `crossmargin.reference.portfolio`.

use rayon::prelude::*;

use crate::book::{AccountRows, GroupedBook};
use crate::contract::Payoff;
use crate::efficiency::{refuse_orders, refuse_two_sided};
use crate::error::{CoreError, Result};
use crate::imf;
use crate::limits::MAX_FACTOR;
use crate::margin::{columns_by_account, position_stake, AccountMargin, MarginColumns, MarginContext};
use crate::options::OptionSpec;
use crate::universe::{MarketKind, Universe};

/// One scenario of an underlying: relative price move, absolute volatility move (vol points
/// as a fraction: 0.05 = +5 vols) and the fraction of its P&L that counts (SPAN's cover
/// fraction for extreme moves, 1 otherwise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub price: f64,
    pub vol: f64,
    pub weight: f64,
}

/// Portfolio parameters of one underlying.
#[derive(Debug, Clone, PartialEq)]
pub struct UnderlyingParams {
    pub scenarios: Vec<Scenario>,
    /// Per short option contract, a fraction of the underlying's value (Deribit's contingency
    /// of 0.01 BTC per short option is 0.01).
    pub short_option_min: f64,
    /// Per option contract, long or short, a fraction of the underlying's value (Deribit's
    /// legacy portfolio margin: a contingency of 1 % of the underlying value of all options).
    pub option_contingency: f64,
    /// A fraction of the offsetting futures: rate × min(long, short) USD delta of the perps
    /// and futures on the underlying (Deribit: 2 % of the underlying value of offsetting
    /// futures).
    pub futures_offset: f64,
    /// Delta model: charge per USD of net delta.
    pub delta_rate: f64,
    /// Volatility moves scale by (30 / days to expiry)^vol_power (Deribit / Paradex term
    /// structure); 0 leaves them as given.
    pub vol_power: f64,
    /// Volatility moves are relative (iv × (1 + move), Paradex / Deribit style) instead of
    /// absolute vol points (iv + move, SPAN's volatility scan range).
    pub vol_relative: bool,
}

/// Portfolio margin configuration, by universe underlying index.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioParams {
    pub underlying: Vec<Option<UnderlyingParams>>,
    /// Inter-underlying credits (underlying a, underlying b, credit rate) in priority order.
    pub offsets: Vec<(u32, u32, f64)>,
    /// Initial requirement = im_factor × maintenance (scenario and delta models).
    pub im_factor: f64,
    /// Hybrid: requirement = max(portfolio, hybrid_floor × standard).
    pub hybrid_floor: f64,
}

/// The per-account margin model (the standard one lives in [`crate::margin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Portfolio,
    Delta,
    Hybrid,
}

impl Model {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "portfolio" => Some(Model::Portfolio),
            "delta" => Some(Model::Delta),
            "hybrid" => Some(Model::Hybrid),
            _ => None,
        }
    }
}

/// x is finite, ≥ lo and at most crate::limits::MAX_FACTOR (a move of +100,000 % or a rate
/// of 1,000 is a typo; beyond it a scenario's prices could leave the numeric domain).
fn finite_at_least(field: String, x: f64, lo: f64) -> Result<()> {
    if !x.is_finite() || x < lo || x > MAX_FACTOR {
        return Err(CoreError::config(field, format!("{x} must be finite, ≥ {lo} and ≤ {MAX_FACTOR}")));
    }
    Ok(())
}

impl PortfolioParams {
    /// Validates the parameters against the universe; `underlying` is by name.
    pub fn new(
        u: &Universe,
        underlying: Vec<(String, UnderlyingParams)>,
        offsets: Vec<(String, String, f64)>,
        im_factor: f64,
        hybrid_floor: f64,
    ) -> Result<Self> {
        let index = |name: &str, field: String| -> Result<u32> {
            u.underlyings
                .iter()
                .position(|x| x == name)
                .map(|i| i as u32)
                .ok_or_else(|| CoreError::config(field, format!("'{name}' is not an underlying of the universe")))
        };
        let mut per: Vec<Option<UnderlyingParams>> = vec![None; u.underlyings.len()];
        for (name, p) in underlying {
            let f = format!("portfolio.underlyings[{name}]");
            let i = index(&name, f.clone())? as usize;
            if per[i].is_some() {
                return Err(CoreError::config(f, "given twice"));
            }
            if p.scenarios.is_empty() {
                return Err(CoreError::config(format!("{f}.scenarios"), "at least one scenario is required"));
            }
            for (s, sc) in p.scenarios.iter().enumerate() {
                let g = format!("{f}.scenarios[{s}]");
                finite_at_least(format!("{g}.price"), sc.price, -1.0)?;
                if !sc.vol.is_finite() || sc.vol.abs() > MAX_FACTOR {
                    return Err(CoreError::config(format!("{g}.vol"), format!("{} must be finite", sc.vol)));
                }
                finite_at_least(format!("{g}.weight"), sc.weight, 0.0)?;
            }
            finite_at_least(format!("{f}.short_option_min"), p.short_option_min, 0.0)?;
            finite_at_least(format!("{f}.option_contingency"), p.option_contingency, 0.0)?;
            finite_at_least(format!("{f}.futures_offset"), p.futures_offset, 0.0)?;
            finite_at_least(format!("{f}.delta_rate"), p.delta_rate, 0.0)?;
            finite_at_least(format!("{f}.vol_power"), p.vol_power, 0.0)?;
            per[i] = Some(p);
        }
        let mut pairs = Vec::with_capacity(offsets.len());
        for (j, (a, b, rate)) in offsets.into_iter().enumerate() {
            let f = format!("portfolio.offsets[{j}]");
            let (ia, ib) = (index(&a, f.clone())?, index(&b, f.clone())?);
            if ia == ib {
                return Err(CoreError::config(f, "an offset pairs two different underlyings"));
            }
            if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
                return Err(CoreError::config(format!("{f}.rate"), format!("{rate} must be in [0, 1]")));
            }
            pairs.push((ia, ib, rate));
        }
        finite_at_least("portfolio.im_factor".into(), im_factor, 0.0)?;
        finite_at_least("portfolio.hybrid_floor".into(), hybrid_floor, 0.0)?;
        Ok(PortfolioParams { underlying: per, offsets: pairs, im_factor, hybrid_floor })
    }
}

/// How a position's entry price enters its risk array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryTerm {
    /// Options: their value does not depend on the entry price.
    None,
    /// Linear: × entry.
    Linear,
    /// Inverse: × 1 / entry.
    Inverse,
}

impl EntryTerm {
    #[inline]
    pub(crate) fn factor(self, entry: f64) -> f64 {
        match self {
            EntryTerm::None => 0.0,
            EntryTerm::Linear => entry,
            EntryTerm::Inverse => 1.0 / entry,
        }
    }
}

/// Per-call risk arrays and per-contract sensitivities, built once from the call's prices.
#[derive(Debug, Clone)]
pub struct RiskArrays {
    /// Scenario slots of underlying u: `scen_offset[u]..scen_offset[u + 1]` (empty when the
    /// underlying has no portfolio parameters).
    pub(crate) scen_offset: Vec<usize>,
    /// Per market, per scenario of its underlying: P&L of one contract (value part and the
    /// part multiplied by the entry term), cover weight included.
    pub(crate) value: Vec<f64>,
    pub(crate) entry: Vec<f64>,
    pub(crate) entry_term: Vec<EntryTerm>,
    /// Per asset: underlying it moves with (u32::MAX: none) and, per scenario of that
    /// underlying, the weighted P&L of one unit.
    pub(crate) asset_underlying: Vec<u32>,
    pub(crate) asset_offset: Vec<usize>,
    pub(crate) asset_value: Vec<f64>,
    /// Per market: USD delta per unit relative move (value and entry parts), USD gamma,
    /// vega and theta per contract, short-option minimum per short contract (USD).
    pub(crate) dollar_delta: Vec<f64>,
    pub(crate) dollar_delta_entry: Vec<f64>,
    pub(crate) gamma: Vec<f64>,
    pub(crate) vega: Vec<f64>,
    pub(crate) theta: Vec<f64>,
    /// Per market: USD rho per contract (Black-76 with the forward fixed: −T·V).
    pub(crate) rho: Vec<f64>,
    pub(crate) short_min: Vec<f64>,
    /// Per market: option contingency per contract, long or short (USD).
    pub(crate) contingency: Vec<f64>,
    /// Per underlying: the futures offset rate.
    pub(crate) futures_offset: Vec<f64>,
    /// Per market: USD change of one contract per unit of its underlying's volatility move
    /// (vega, × iv when moves are relative, × the days-to-expiry scale): the delta model's
    /// vega charge.
    pub(crate) vega_move: Vec<f64>,
    /// Per underlying: largest |price move| among full-weight scenarios and largest |vol move|.
    pub(crate) price_range: Vec<f64>,
    pub(crate) vol_range: Vec<f64>,
}

/// The days-to-expiry scaling of volatility moves: (30 / max(days, 1))^power.
#[inline]
pub fn vol_scale(expiry_years: f64, power: f64) -> f64 {
    if power == 0.0 {
        1.0
    } else {
        (30.0 / (expiry_years * 365.0).max(1.0)).powf(power)
    }
}

/// Option value in settle units per unit of underlying at forward `s` and volatility `iv`.
#[inline]
fn option_value(spec: &OptionSpec, inverse: bool, s: f64, iv: f64) -> f64 {
    let c = spec.black76(s, iv.max(1e-4)).price;
    if inverse {
        c / s
    } else {
        c
    }
}

impl RiskArrays {
    pub fn new(ctx: &MarginContext<'_>, pm: Option<&PortfolioParams>) -> Self {
        let u = ctx.universe;
        let (mt, nu) = (&u.markets, u.underlyings.len());
        let params = |i: usize| pm.and_then(|p| p.underlying[i].as_ref());
        let mut scen_offset = vec![0usize; nu + 1];
        for i in 0..nu {
            scen_offset[i + 1] = scen_offset[i] + params(i).map_or(0, |p| p.scenarios.len());
        }
        let asset_underlying: Vec<u32> = u
            .assets
            .symbol
            .iter()
            .map(|s| u.underlyings.iter().position(|x| x == s).map_or(u32::MAX, |i| i as u32))
            .collect();
        // Does market k's settle asset move with its own underlying?
        let settle_moves: Vec<bool> =
            (0..u.n_markets()).map(|k| asset_underlying[mt.settle[k] as usize] == mt.underlying[k]).collect();

        let mut ra = RiskArrays {
            scen_offset,
            value: vec![],
            entry: vec![],
            entry_term: vec![],
            asset_underlying,
            asset_offset: vec![0],
            asset_value: vec![],
            dollar_delta: vec![],
            dollar_delta_entry: vec![],
            gamma: vec![],
            vega: vec![],
            theta: vec![],
            rho: vec![],
            short_min: vec![],
            contingency: vec![],
            futures_offset: (0..nu).map(|i| params(i).map_or(0.0, |p| p.futures_offset)).collect(),
            vega_move: vec![],
            price_range: vec![0.0; nu],
            vol_range: vec![0.0; nu],
        };
        for i in 0..nu {
            if let Some(p) = params(i) {
                let full: Vec<f64> = p.scenarios.iter().filter(|s| s.weight >= 1.0).map(|s| s.price.abs()).collect();
                let all = p.scenarios.iter().map(|s| s.price.abs());
                ra.price_range[i] =
                    if full.is_empty() { all.fold(0.0, f64::max) } else { full.into_iter().fold(0.0, f64::max) };
                ra.vol_range[i] = p.scenarios.iter().map(|s| s.vol.abs()).fold(0.0, f64::max);
            }
        }

        for (k, &moves) in settle_moves.iter().enumerate() {
            let ui = mt.underlying[k] as usize;
            let s = ctx.underlying_price(ui);
            let cs = mt.contract_size[k];
            let p = ctx.prices.asset[mt.settle[k] as usize];
            let m = ctx.prices.mark[k];
            let g = if moves { 1.0 } else { 0.0 };
            let inverse = mt.inverse[k];
            let is_option = mt.kind[k] == MarketKind::Option;
            let spec = &mt.option[k];
            ra.entry_term.push(match u.contract(k).payoff {
                Payoff::Premium => EntryTerm::None,
                Payoff::Linear => EntryTerm::Linear,
                Payoff::Inverse => EntryTerm::Inverse,
            });
            // Sensitivities (USD) of one contract: d value / d(relative move) and the greeks.
            if is_option {
                let b = spec.black76(s, spec.iv);
                let conv = if inverse { p / s } else { p };
                let dd = if inverse {
                    cs * p * (b.delta - (1.0 - g) * b.price / s)
                } else {
                    cs * p * (b.delta * s + g * b.price)
                };
                ra.dollar_delta.push(dd);
                ra.dollar_delta_entry.push(0.0);
                ra.gamma.push(cs * b.gamma * conv);
                ra.vega.push(cs * b.vega * conv);
                ra.theta.push(cs * b.theta * conv);
                ra.rho.push(-cs * spec.expiry * b.price * conv);
            } else if inverse {
                ra.dollar_delta.push(cs * p * (1.0 - g) / m);
                ra.dollar_delta_entry.push(cs * p * g);
                ra.gamma.push(0.0);
                ra.vega.push(0.0);
                ra.theta.push(0.0);
                ra.rho.push(0.0);
            } else {
                ra.dollar_delta.push(cs * m * p * (1.0 + g));
                ra.dollar_delta_entry.push(-cs * p * g);
                ra.gamma.push(0.0);
                ra.vega.push(0.0);
                ra.theta.push(0.0);
                ra.rho.push(0.0);
            }
            let Some(par) = params(ui) else {
                ra.short_min.push(0.0);
                ra.contingency.push(0.0);
                ra.vega_move.push(0.0);
                continue;
            };
            ra.short_min.push(if is_option { par.short_option_min * cs * s } else { 0.0 });
            ra.contingency.push(if is_option { par.option_contingency * cs * s } else { 0.0 });
            let v0 = if is_option { option_value(spec, inverse, s, spec.iv) } else { 0.0 };
            let dv_scale = if is_option { vol_scale(spec.expiry, par.vol_power) } else { 0.0 };
            let per_move = if par.vol_relative { spec.iv * dv_scale } else { dv_scale };
            ra.vega_move.push(*ra.vega.last().expect("pushed above") * per_move);
            for sc in &par.scenarios {
                let (s1, p1, w) = (s * (1.0 + sc.price), p * (1.0 + g * sc.price), sc.weight);
                let (value, entry) = if is_option {
                    let v1 = option_value(spec, inverse, s1, spec.iv + sc.vol * per_move);
                    (w * cs * (v1 * p1 - v0 * p), 0.0)
                } else if inverse {
                    let m1 = m * (1.0 + sc.price);
                    (-w * cs * (p1 / m1 - p / m), w * cs * (p1 - p))
                } else {
                    let m1 = m * (1.0 + sc.price);
                    (w * cs * (m1 * p1 - m * p), -w * cs * (p1 - p))
                };
                ra.value.push(value);
                ra.entry.push(entry);
            }
        }
        for (i, &ui) in ra.asset_underlying.iter().enumerate() {
            if let Some(par) = (ui != u32::MAX).then(|| params(ui as usize)).flatten() {
                let price = ctx.prices.asset[i];
                ra.asset_value.extend(par.scenarios.iter().map(|sc| sc.weight * price * sc.price));
            }
            ra.asset_offset.push(ra.asset_value.len());
        }
        ra
    }

    #[inline]
    pub(crate) fn n_scenarios(&self, u: usize) -> usize {
        self.scen_offset[u + 1] - self.scen_offset[u]
    }

    fn market_offsets(&self, u: &Universe) -> Vec<usize> {
        let mut off = Vec::with_capacity(u.n_markets() + 1);
        off.push(0);
        for k in 0..u.n_markets() {
            off.push(off[k] + self.n_scenarios(u.markets.underlying[k] as usize));
        }
        off
    }
}

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

/// Everything the portfolio kernels read, built once per call.
#[derive(Debug, Clone)]
pub struct PortfolioContext<'a> {
    pub margin: MarginContext<'a>,
    pub params: &'a PortfolioParams,
    pub arrays: RiskArrays,
    pub(crate) market_offset: Vec<usize>,
}

impl<'a> PortfolioContext<'a> {
    pub fn new(margin: MarginContext<'a>, params: &'a PortfolioParams) -> Result<Self> {
        if params.underlying.len() != margin.universe.underlyings.len() {
            return Err(CoreError::config("portfolio", "parameters were built for another universe"));
        }
        let arrays = RiskArrays::new(&margin, Some(params));
        let market_offset = arrays.market_offsets(margin.universe);
        Ok(PortfolioContext { margin, params, arrays, market_offset })
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
        if ra.n_scenarios(ui) == 0 {
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
        let n = ra.n_scenarios(ui);
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

/// Accounts per parallel task.
const CHUNK: usize = 2048;

/// Every account under `model`, in parallel on the current rayon pool; one scratch per
/// chunk, results independent of the thread count. The scenario pool values each asset at
/// one price and has no rule for open orders or a closing-fee reserve: a book with orders, a
/// two-sided asset or a market with a liquidation fee is a typed error naming it.
pub fn evaluate(book: &GroupedBook, pc: &PortfolioContext<'_>, model: Model) -> Result<MarginColumns> {
    let u = pc.margin.universe;
    refuse_orders(book, "the portfolio model")?;
    refuse_two_sided(u, "the portfolio model")?;
    if let Some(k) = (0..u.n_markets()).find(|&k| u.market_hot[k].liquidation_fee > 0.0) {
        return Err(CoreError::config(
            format!("markets[{}].liquidation_fee", u.markets.symbol[k]),
            "the portfolio model has no closing-fee reserve (margin the market with the standard model)",
        ));
    }
    Ok(columns_by_account(book, || Scratch::new(&pc.arrays), |rows, sc| evaluate_account(rows, pc, model, sc)))
}

/// Greeks per account × underlying (long format, accounts ascending, underlyings by index):
/// delta in units of the underlying (positions and balances of the asset of that symbol),
/// gamma (∂²V/∂S²), vega (USD per 1.00 of volatility), theta (USD per year) and rho (USD
/// per 1.00 of rate, the forward fixed: −T·V) of cross and isolated option positions alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GreekColumns {
    pub account: Vec<u32>,
    pub underlying: Vec<u32>,
    pub delta: Vec<f64>,
    pub gamma: Vec<f64>,
    pub vega: Vec<f64>,
    pub theta: Vec<f64>,
    pub rho: Vec<f64>,
}

pub fn greeks(book: &GroupedBook, ctx: &MarginContext<'_>) -> GreekColumns {
    let ra = RiskArrays::new(ctx, None);
    let n = book.n_accounts();
    let chunks: Vec<GreekColumns> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut sc = Scratch::new(&ra);
            let mut out = GreekColumns::default();
            for a in c * CHUNK..((c + 1) * CHUNK).min(n) {
                account_greeks(book.account(a), ctx, &ra, &mut sc);
                sc.touched.sort_unstable();
                for &i in &sc.touched {
                    let i = i as usize;
                    out.account.push(a as u32);
                    out.underlying.push(i as u32);
                    out.delta.push(sc.delta[i] / ctx.underlying_price(i));
                    out.gamma.push(sc.gamma[i]);
                    out.vega.push(sc.vega[i]);
                    out.theta.push(sc.theta[i]);
                    out.rho.push(sc.rho[i]);
                }
                sc.reset(&ra);
            }
            out
        })
        .collect();
    let mut out = GreekColumns::default();
    for c in chunks {
        out.account.extend(c.account);
        out.underlying.extend(c.underlying);
        out.delta.extend(c.delta);
        out.gamma.extend(c.gamma);
        out.vega.extend(c.vega);
        out.theta.extend(c.theta);
        out.rho.extend(c.rho);
    }
    out
}

fn account_greeks(rows: AccountRows<'_>, ctx: &MarginContext<'_>, ra: &RiskArrays, sc: &mut Scratch) {
    let mt = &ctx.universe.markets;
    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let i = ctx.remap.asset[code as usize] as usize;
        let ui = ra.asset_underlying[i];
        if ui != u32::MAX {
            sc.touch(ui);
            sc.delta[ui as usize] += qty * ctx.prices.asset[i];
        }
    }
    for j in 0..rows.pos_code.len() {
        let k = ctx.remap.market[rows.pos_code[j] as usize] as usize;
        let (qty, entry) = (rows.pos_qty[j], rows.pos_entry[j]);
        if qty == 0.0 {
            continue;
        }
        let ui = mt.underlying[k] as usize;
        sc.touch(ui as u32);
        let x = ra.entry_term[k].factor(entry);
        sc.delta[ui] += qty * (ra.dollar_delta[k] + x * ra.dollar_delta_entry[k]);
        sc.gamma[ui] += qty * ra.gamma[k];
        sc.vega[ui] += qty * ra.vega[k];
        sc.theta[ui] += qty * ra.theta[k];
        sc.rho[ui] += qty * ra.rho[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{Prices, Remap};
    use crate::universe::fixtures::{asset, option, perp};

    fn universe() -> Universe {
        let mut fut = perp("BTC-FUT", "USDC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        fut.kind = MarketKind::Future;
        let call = option("BTC-C", "USDC", "BTC", true, 55_000.0, 1_000.0);
        let put = option("BTC-P", "USDC", "BTC", false, 45_000.0, 800.0);
        Universe::new(&[asset("USDC", 1.0), asset("BTC", 50_000.0)], &[fut, call, put]).unwrap()
    }

    fn params(u: &Universe) -> PortfolioParams {
        let scenarios = [-0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15]
            .iter()
            .flat_map(|&p| [-0.1, 0.0, 0.1].map(|v| Scenario { price: p, vol: v, weight: 1.0 }))
            .chain([
                Scenario { price: -0.45, vol: 0.0, weight: 0.35 },
                Scenario { price: 0.45, vol: 0.0, weight: 0.35 },
            ])
            .collect();
        let p = UnderlyingParams {
            scenarios,
            short_option_min: 0.01,
            option_contingency: 0.0,
            futures_offset: 0.0,
            delta_rate: 0.1,
            vol_power: 0.0,
            vol_relative: false,
        };
        PortfolioParams::new(u, vec![("BTC".into(), p)], vec![], 1.3, 0.5).unwrap()
    }

    fn requirement(u: &Universe, pm: &PortfolioParams, bal: &[(u32, f64)], pos: &[(u32, f64, f64)]) -> AccountMargin {
        let ba = vec![1i64; bal.len()];
        let bc: Vec<u32> = bal.iter().map(|b| b.0).collect();
        let bq: Vec<f64> = bal.iter().map(|b| b.1).collect();
        let pa = vec![1i64; pos.len()];
        let pc: Vec<u32> = pos.iter().map(|p| p.0).collect();
        let pq: Vec<f64> = pos.iter().map(|p| p.1).collect();
        let pe: Vec<f64> = pos.iter().map(|p| p.2).collect();
        let pi = vec![0.0; pos.len()];
        let book = group(
            BalanceInput { account: &ba, code: &bc, qty: &bq },
            PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
            2,
            3,
        )
        .unwrap();
        let marks = [50_000.0, 1_000.0, 800.0];
        let prices = Prices { asset: &[1.0, 50_000.0], mark: &marks };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &[0, 1], market: &[0, 1, 2] }).unwrap();
        let pc = PortfolioContext::new(ctx, pm).unwrap();
        let mut sc = Scratch::new(&pc.arrays);
        evaluate_account(book.account(0), &pc, Model::Portfolio, &mut sc)
    }

    #[test]
    fn a_future_loses_its_largest_weighted_move() {
        let u = universe();
        let pm = params(&u);
        let r = requirement(&u, &pm, &[(0, 10_000.0)], &[(0, 1.0, 50_000.0)]);
        // max(0.15, 0.35 × 0.45 = 0.1575) × 50,000
        assert!((r.requirement[1] - 0.1575 * 50_000.0).abs() < 1e-6);
        assert!((r.requirement[0] - 1.3 * 0.1575 * 50_000.0).abs() < 1e-6);
    }

    #[test]
    fn a_btc_balance_moves_with_btc() {
        let u = universe();
        let pm = params(&u);
        // Long 1 BTC in the wallet, short 1 future: flat.
        let r = requirement(&u, &pm, &[(1, 1.0)], &[(0, -1.0, 50_000.0)]);
        assert!(r.requirement[1].abs() < 1e-9, "{}", r.requirement[1]);
        assert_eq!(r.adj_equity, [50_000.0, 50_000.0]);
    }

    #[test]
    fn a_hedge_needs_less_than_its_legs() {
        let u = universe();
        let pm = params(&u);
        let legs = [(0u32, 1.0, 50_000.0), (1, -1.0, 1_000.0), (2, 1.0, 800.0)];
        let whole = requirement(&u, &pm, &[], &legs).requirement[1];
        let apart: f64 = legs.iter().map(|&l| requirement(&u, &pm, &[], &[l]).requirement[1]).sum();
        assert!(whole <= apart + 1e-9, "{whole} > {apart}");
        // A collar is bounded by the put's protection: below the loss of the future alone.
        assert!(whole < requirement(&u, &pm, &[], &[legs[0]]).requirement[1]);
    }

    #[test]
    fn short_options_pay_the_minimum() {
        let u = universe();
        let pm = params(&u);
        let r = requirement(&u, &pm, &[], &[(1, -2.0, 1_000.0)]);
        assert!(r.requirement[1] >= 2.0 * 0.01 * 50_000.0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Scaling every position towards flat never raises the requirement, and a hedge
        /// never needs more than its legs margined apart (max is subadditive).
        #[test]
        fn reducing_risk_never_raises_portfolio_margin(
            f in -3.0f64..3.0, c in -3.0f64..3.0, p in -3.0f64..3.0, lambda in 0.0f64..1.0,
        ) {
            let u = universe();
            let pm = params(&u);
            let legs = [(0u32, f, 50_000.0), (1, c, 1_000.0), (2, p, 800.0)];
            let scaled: Vec<_> = legs.iter().map(|&(k, q, e)| (k, q * lambda, e)).collect();
            let full = requirement(&u, &pm, &[], &legs).requirement[1];
            proptest::prop_assert!(requirement(&u, &pm, &[], &scaled).requirement[1] <= full * (1.0 + 1e-12) + 1e-9);
            let apart: f64 = legs.iter().map(|&l| requirement(&u, &pm, &[], &[l]).requirement[1]).sum();
            proptest::prop_assert!(full <= apart * (1.0 + 1e-12) + 1e-9);
        }
    }

    #[test]
    fn unknown_underlyings_and_bad_scenarios_are_config_errors() {
        let u = universe();
        let p = UnderlyingParams {
            scenarios: vec![],
            short_option_min: 0.0,
            option_contingency: 0.0,
            futures_offset: 0.0,
            delta_rate: 0.0,
            vol_power: 0.0,
            vol_relative: false,
        };
        let e = PortfolioParams::new(&u, vec![("ETH".into(), p.clone())], vec![], 1.0, 1.0).unwrap_err();
        assert!(e.to_string().starts_with("portfolio.underlyings[ETH]"));
        let e = PortfolioParams::new(&u, vec![("BTC".into(), p)], vec![], 1.0, 1.0).unwrap_err();
        assert_eq!(e.to_string(), "portfolio.underlyings[BTC].scenarios: at least one scenario is required");
    }
}
