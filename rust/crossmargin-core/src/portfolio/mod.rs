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
//!
//! The kernel reads the book through a per-call layout (`layout.rs`: one record a book code,
//! scenario rows padded to whole vector chunks) in `account.rs`; `plain.rs` keeps the formula
//! as first written, row by row, which the tests hold it to bit for bit.

mod account;
mod layout;
#[cfg(test)]
mod plain;

use rayon::prelude::*;

pub use account::{evaluate_account, Scratch};
use layout::{padded, CodeTables};

use crate::book::{AccountRows, GroupedBook};
use crate::contract::Payoff;
use crate::efficiency::{refuse_orders, refuse_two_sided};
use crate::error::{CoreError, Result};
use crate::limits::MAX_FACTOR;
use crate::margin::{columns_by_account_into, MarginColumns, MarginColumnsMut, MarginContext};
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
    /// Scenario slots of underlying u: `scen_offset[u]..scen_offset[u + 1]`, its scenarios
    /// padded with zero rows to whole chunks of `layout::LANES` (empty when the underlying
    /// has no portfolio parameters).
    pub(crate) scen_offset: Vec<usize>,
    /// Per market, per scenario slot of its underlying: P&L of one contract (value part and
    /// the part multiplied by the entry term), cover weight included; 0 in padding slots.
    pub(crate) value: Vec<f64>,
    pub(crate) entry: Vec<f64>,
    pub(crate) entry_term: Vec<EntryTerm>,
    /// Per asset: underlying it moves with (u32::MAX: none) and, per scenario slot of that
    /// underlying, the weighted P&L of one unit (0 in padding slots).
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
            scen_offset[i + 1] = scen_offset[i] + padded(params(i).map_or(0, |p| p.scenarios.len()));
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
            let pad = padded(par.scenarios.len()) - par.scenarios.len();
            ra.value.extend(std::iter::repeat_n(0.0, pad));
            ra.entry.extend(std::iter::repeat_n(0.0, pad));
        }
        for (i, &ui) in ra.asset_underlying.iter().enumerate() {
            if let Some(par) = (ui != u32::MAX).then(|| params(ui as usize)).flatten() {
                let price = ctx.prices.asset[i];
                ra.asset_value.extend(par.scenarios.iter().map(|sc| sc.weight * price * sc.price));
                let pad = padded(par.scenarios.len()) - par.scenarios.len();
                ra.asset_value.extend(std::iter::repeat_n(0.0, pad));
            }
            ra.asset_offset.push(ra.asset_value.len());
        }
        ra
    }

    #[inline]
    /// Scenario slots of underlying `u` (its scenarios padded to whole chunks).
    pub(crate) fn width(&self, u: usize) -> usize {
        self.scen_offset[u + 1] - self.scen_offset[u]
    }

    fn market_offsets(&self, u: &Universe) -> Vec<usize> {
        let mut off = Vec::with_capacity(u.n_markets() + 1);
        off.push(0);
        for k in 0..u.n_markets() {
            off.push(off[k] + self.width(u.markets.underlying[k] as usize));
        }
        off
    }
}

/// Everything the portfolio kernels read, built once per call.
#[derive(Debug, Clone)]
pub struct PortfolioContext<'a> {
    pub margin: MarginContext<'a>,
    pub params: &'a PortfolioParams,
    pub arrays: RiskArrays,
    pub(crate) market_offset: Vec<usize>,
    /// Every book code's record ([`layout`]).
    pub(crate) codes: CodeTables,
}

impl<'a> PortfolioContext<'a> {
    pub fn new(margin: MarginContext<'a>, params: &'a PortfolioParams) -> Result<Self> {
        if params.underlying.len() != margin.universe.underlyings.len() {
            return Err(CoreError::config("portfolio", "parameters were built for another universe"));
        }
        let arrays = RiskArrays::new(&margin, Some(params));
        let market_offset = arrays.market_offsets(margin.universe);
        let codes = CodeTables::new(&margin, &arrays, &market_offset);
        Ok(PortfolioContext { margin, params, arrays, market_offset, codes })
    }
}

/// Accounts per parallel task.
const CHUNK: usize = 2048;

/// Every account under `model`, in parallel on the current rayon pool; one scratch per
/// chunk, results independent of the thread count. The scenario pool values each asset at
/// one price and has no rule for open orders or a closing-fee reserve: a book with orders, a
/// two-sided asset or a market with a liquidation fee is a typed error naming it.
pub fn evaluate(book: &GroupedBook, pc: &PortfolioContext<'_>, model: Model) -> Result<MarginColumns> {
    let mut out = MarginColumns::zeroed(book.n_accounts());
    evaluate_into(book, pc, model, out.as_mut())?;
    Ok(out)
}

/// [`evaluate`] into the caller's columns (a previous result's, one row per account): the
/// same values, no fresh pages faulted in per call.
pub fn evaluate_into(
    book: &GroupedBook,
    pc: &PortfolioContext<'_>,
    model: Model,
    out: MarginColumnsMut<'_>,
) -> Result<()> {
    out.len_checked(book.n_accounts())?;
    let u = pc.margin.universe;
    refuse_orders(book, "the portfolio model")?;
    refuse_two_sided(u, "the portfolio model")?;
    if let Some(k) = (0..u.n_markets()).find(|&k| u.market_hot[k].liquidation_fee > 0.0) {
        return Err(CoreError::config(
            format!("markets[{}].liquidation_fee", u.markets.symbol[k]),
            "the portfolio model has no closing-fee reserve (margin the market with the standard model)",
        ));
    }
    columns_by_account_into(book, out, || Scratch::new(pc), |rows, sc| evaluate_account(rows, pc, model, sc));
    Ok(())
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

/// One account's greeks per underlying: delta (USD), gamma, vega, theta, rho.
struct GreekScratch {
    seen: Vec<bool>,
    touched: Vec<u32>,
    sums: Vec<[f64; 5]>,
}

impl GreekScratch {
    #[inline]
    fn touch(&mut self, u: u32) -> &mut [f64; 5] {
        if !self.seen[u as usize] {
            self.seen[u as usize] = true;
            self.touched.push(u);
        }
        &mut self.sums[u as usize]
    }
}

pub fn greeks(book: &GroupedBook, ctx: &MarginContext<'_>) -> GreekColumns {
    let ra = RiskArrays::new(ctx, None);
    let (n, nu) = (book.n_accounts(), ctx.universe.underlyings.len());
    let chunks: Vec<GreekColumns> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut sc =
                GreekScratch { seen: vec![false; nu], touched: Vec::with_capacity(8), sums: vec![[0.0; 5]; nu] };
            let mut out = GreekColumns::default();
            for a in c * CHUNK..((c + 1) * CHUNK).min(n) {
                account_greeks(book.account(a), ctx, &ra, &mut sc);
                sc.touched.sort_unstable();
                for &i in &sc.touched {
                    let i = i as usize;
                    let [delta, gamma, vega, theta, rho] = sc.sums[i];
                    out.account.push(a as u32);
                    out.underlying.push(i as u32);
                    out.delta.push(delta / ctx.underlying_price(i));
                    out.gamma.push(gamma);
                    out.vega.push(vega);
                    out.theta.push(theta);
                    out.rho.push(rho);
                    sc.seen[i] = false;
                    sc.sums[i] = [0.0; 5];
                }
                sc.touched.clear();
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

fn account_greeks(rows: AccountRows<'_>, ctx: &MarginContext<'_>, ra: &RiskArrays, sc: &mut GreekScratch) {
    let mt = &ctx.universe.markets;
    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let i = ctx.remap.asset[code as usize] as usize;
        let ui = ra.asset_underlying[i];
        if ui != u32::MAX {
            sc.touch(ui)[0] += qty * ctx.prices.asset[i];
        }
    }
    for j in 0..rows.pos_code.len() {
        let k = ctx.remap.market[rows.pos_code[j] as usize] as usize;
        let (qty, entry) = (rows.pos_qty[j], rows.pos_entry[j]);
        if qty == 0.0 {
            continue;
        }
        let g = sc.touch(mt.underlying[k]);
        let x = ra.entry_term[k].factor(entry);
        g[0] += qty * (ra.dollar_delta[k] + x * ra.dollar_delta_entry[k]);
        g[1] += qty * ra.gamma[k];
        g[2] += qty * ra.vega[k];
        g[3] += qty * ra.theta[k];
        g[4] += qty * ra.rho[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{AccountMargin, Prices, Remap};
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
        let pos: Vec<_> = pos.iter().map(|&(c, q, e)| (c, q, e, 0.0)).collect();
        let book = crate::book::one_account(bal, &pos, 2, 3);
        let marks = [50_000.0, 1_000.0, 800.0];
        let prices = Prices { asset: &[1.0, 50_000.0], mark: &marks };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &[0, 1], market: &[0, 1, 2] }).unwrap();
        let pc = PortfolioContext::new(ctx, pm).unwrap();
        let mut sc = Scratch::new(&pc);
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

    /// BTC (21 scenarios with an extreme pair: padded to 24) and ETH (5 scenarios, padded
    /// to 8) with parameters, SOL without; linear and inverse futures, options settled in
    /// USDC and in BTC; an offset between BTC and ETH.
    fn wide_universe() -> (Universe, PortfolioParams) {
        let mut fut = perp("BTC-FUT", "USDC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        fut.kind = MarketKind::Future;
        let mut inv = perp("ETHUSD", "ETH", "ETH", 2_500.0, &[(1e6, 0.02, 0.01), (f64::INFINITY, 0.05, 0.025)]);
        inv.inverse = true;
        inv.contract_size = 10.0;
        let mut put = option("BTC-P", "BTC", "BTC", false, 45_000.0, 0.016);
        put.inverse = true;
        let markets = [
            fut,
            option("BTC-C", "USDC", "BTC", true, 55_000.0, 1_000.0),
            put,
            inv,
            perp("SOL-PERP", "USDC", "SOL", 150.0, &[(f64::INFINITY, 0.05, 0.025)]),
        ];
        let assets = [asset("USDC", 1.0), asset("BTC", 50_000.0), asset("ETH", 2_500.0), asset("SOL", 150.0)];
        let u = Universe::new(&assets, &markets).unwrap();
        let mut btc = params(&u).underlying[0].clone().unwrap();
        (btc.option_contingency, btc.futures_offset) = (0.01, 0.02);
        let eth = UnderlyingParams {
            scenarios: [-0.2, -0.1, 0.0, 0.1, 0.2].map(|p| Scenario { price: p, vol: 0.05, weight: 1.0 }).to_vec(),
            short_option_min: 0.0,
            option_contingency: 0.01,
            futures_offset: 0.02,
            delta_rate: 0.05,
            vol_power: 0.5,
            vol_relative: true,
        };
        let offsets = vec![("BTC".into(), "ETH".into(), 0.5)];
        let pm = PortfolioParams::new(&u, vec![("BTC".into(), btc), ("ETH".into(), eth)], offsets, 1.3, 0.5).unwrap();
        (u, pm)
    }

    /// Bit patterns of everything an account's result holds.
    fn bits(m: &AccountMargin) -> [u64; 8] {
        [
            m.equity.to_bits(),
            m.upnl.to_bits(),
            m.adj_equity[0].to_bits(),
            m.adj_equity[1].to_bits(),
            m.requirement[0].to_bits(),
            m.requirement[1].to_bits(),
            m.isolated_liquidatable as u64,
            m.fee_reserve.to_bits(),
        ]
    }

    type Bal = (u32, f64);
    type Pos = (u32, f64, f64, f64);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The kernel on its code tables (padded slots, lane maxima, requirements only where
        /// read) gives every account exactly the bits of the plain per-row formula, under
        /// every model, with rows in any code order (a shuffled remap).
        #[test]
        fn the_kernel_matches_the_plain_formula_bit_for_bit(
            accounts in proptest::collection::vec((
                proptest::collection::vec((0u32..4, -3.0f64..3.0), 0..4),
                proptest::collection::vec(
                    (0u32..5, proptest::prop_oneof![-4.0f64..4.0, proptest::strategy::Just(0.0)],
                     0.5f64..1.5, proptest::prop_oneof![3 => proptest::strategy::Just(0.0), 1 => 0.0f64..5_000.0]),
                    0..6,
                ),
            ), 1..40),
        ) {
            let (u, pm) = wide_universe();
            let entry_scale = [50_000.0, 1_000.0, 0.016, 2_500.0, 150.0];
            // Book codes in another order than the universe's: code c is market remap[c].
            let (asset_remap, market_remap) = ([2u32, 0, 3, 1], [3u32, 1, 4, 0, 2]);
            let (mut ba, mut bc, mut bq) = (vec![], vec![], vec![]);
            let (mut pa, mut pcode, mut pq, mut pe, mut pi) = (vec![], vec![], vec![], vec![], vec![]);
            for (id, (bals, poss)) in accounts.iter().enumerate() {
                let bals: &Vec<Bal> = bals;
                let poss: &Vec<Pos> = poss;
                let mut seen_a = [false; 4];
                for &(c, q) in bals {
                    if !std::mem::replace(&mut seen_a[c as usize], true) {
                        ba.push(id as i64);
                        bc.push(c);
                        bq.push(q * [1_000.0, 0.2, 3.0, 40.0][asset_remap[c as usize] as usize]);
                    }
                }
                let mut seen_m = [false; 5];
                for &(c, q, e, iso) in poss {
                    if !std::mem::replace(&mut seen_m[c as usize], true) {
                        pa.push(id as i64);
                        pcode.push(c);
                        pq.push(q);
                        pe.push(e * entry_scale[market_remap[c as usize] as usize]);
                        pi.push(iso);
                    }
                }
            }
            let book = group(
                BalanceInput { account: &ba, code: &bc, qty: &bq },
                PositionInput { account: &pa, code: &pcode, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                4,
                5,
            )
            .unwrap();
            let marks = [50_500.0, 1_000.0, 0.016, 2_480.0, 151.0];
            let prices = Prices { asset: &[1.0, 50_000.0, 2_500.0, 150.0], mark: &marks };
            let remap = Remap { asset: &asset_remap, market: &market_remap };
            let ctx = MarginContext::new(&u, &book, prices, remap).unwrap();
            let pc = PortfolioContext::new(ctx, &pm).unwrap();
            let (mut fast, mut slow) = (Scratch::new(&pc), plain::Scratch::new(&pc.arrays));
            for model in [Model::Portfolio, Model::Delta, Model::Hybrid] {
                for a in 0..book.n_accounts() {
                    let want = plain::evaluate_account(book.account(a), &pc, model, &mut slow);
                    let got = evaluate_account(book.account(a), &pc, model, &mut fast);
                    proptest::prop_assert_eq!(bits(&got), bits(&want), "account {} {:?}", a, model);
                }
            }
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
