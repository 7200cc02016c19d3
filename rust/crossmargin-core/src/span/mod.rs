//! CME SPAN (docs/MODEL.md "SPAN"), per account and per combined commodity.
//!
//! Source: CME Group, "CME SPAN Methodology Overview"
//! (https://www.cmegroup.com/clearing/risk-management/span-overview.html) and the PC-SPAN
//! report definitions (Risk Arrays, Intra Spreads, Inter Spreads). For each combined
//! commodity of an account:
//! - scanning risk: the largest loss over the 16 scenarios of the summed risk arrays
//!   (qty × array per contract; the extreme scenarios carry the cover fraction), ≥ 0;
//! - intra-commodity spread charge: tier deltas are spread in table order, each spread
//!   charging its rate per spread formed;
//! - spot-month charge: spread rate × spot-tier delta used in spreads + outright rate ×
//!   spot-tier delta left;
//! - inter-commodity credit: spreads between commodities in priority order on the deltas
//!   left after intra spreading; each leg earns rate × spreads × ratio × its weighted
//!   price risk (price risk / |net delta|; price risk = scan − time − volatility risk,
//!   within [0, scan]); or, for a scanning-based spread, the legs' shares f_c = spreads ×
//!   ratio / |net delta| are scanned together (per scenario Σ max(f·L, 0) + rate × Σ min(f·L,
//!   0)) and that charge replaces the shares' own scans, split in proportion to them;
//! - short-option minimum: som_rate × max(short calls, short puts);
//! - risk (maintenance) = max(scan + intra + spot − inter, SOM); initial = im_ratio × risk;
//!   net option value (long − short option value) is reported beside it: CME's total
//!   requirement is risk − NOV, and an account's equity here already holds the options'
//!   value, so the account requirement is the risk.
//!
//! Positions on markets outside every combined commodity keep their standard requirement.

pub mod params;

use rayon::prelude::*;

pub use params::{
    span16, CommodityInput, ContractInput, InterInput, InterMethod, IntraInput, LegInput, SpanParams, NONE, N_SCENARIOS,
};

use crate::book::{AccountRows, GroupedBook};
use crate::error::Result;
use crate::margin::{
    columns_by_account, evaluate_rows_into, AccountMargin, MarginColumns, MarginContext, PositionLine, RowSink,
};
use crate::portfolio::PortfolioContext;
use crate::universe::MarketKind;

/// Everything the SPAN kernel reads, built once per call.
pub struct SpanContext<'a> {
    pub margin: MarginContext<'a>,
    pub params: &'a SpanParams,
    /// Engine-computed risk arrays (P&L per contract in the scan scenarios), when some
    /// contract has no published array.
    engine: Option<PortfolioContext<'a>>,
    /// Per market: engine-computed composite delta (units of the underlying per contract)
    /// and the part multiplied by the entry term.
    delta_value: Vec<f64>,
    delta_entry: Vec<f64>,
}

impl<'a> SpanContext<'a> {
    pub fn new(margin: MarginContext<'a>, params: &'a SpanParams) -> Result<Self> {
        let u = margin.universe;
        if params.market_commodity.len() != u.n_markets() {
            return Err(crate::error::CoreError::config("span", "parameters were built for another universe"));
        }
        let engine = match &params.scenarios {
            Some(p) => Some(PortfolioContext::new(margin, p)?),
            None => None,
        };
        let nm = u.n_markets();
        let (mut delta_value, mut delta_entry) = (vec![0.0; nm], vec![0.0; nm]);
        if let Some(pc) = &engine {
            for k in 0..nm {
                let s = margin.underlying_price(u.markets.underlying[k] as usize);
                if s > 0.0 {
                    delta_value[k] = pc.arrays.dollar_delta[k] / s;
                    delta_entry[k] = pc.arrays.dollar_delta_entry[k] / s;
                }
            }
        }
        Ok(SpanContext { margin, params, engine, delta_value, delta_entry })
    }
}

/// One combined commodity's SPAN numbers for one account (USD).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommodityMargin {
    pub scan: f64,
    pub intra: f64,
    pub spot: f64,
    pub inter: f64,
    pub som: f64,
    /// max(scan + intra + spot − inter, som): the maintenance requirement.
    pub risk: f64,
    pub initial: f64,
    pub nov: f64,
}

/// Per-account accumulators, reused across the accounts of a chunk.
#[derive(Debug, Clone)]
pub struct Scratch {
    loss: Vec<f64>,
    delta: Vec<f64>,
    spread_delta: Vec<f64>,
    short_calls: Vec<f64>,
    short_puts: Vec<f64>,
    nov: Vec<f64>,
    seen: Vec<bool>,
    touched: Vec<u32>,
    net: Vec<f64>,
    /// |net delta| of each commodity before inter-commodity spreading.
    net0: Vec<f64>,
    wfpr: Vec<f64>,
    out: Vec<CommodityMargin>,
    outside: [f64; 2],
}

impl Scratch {
    pub fn new(p: &SpanParams) -> Self {
        let nc = p.n_commodities();
        Scratch {
            loss: vec![0.0; nc * N_SCENARIOS],
            delta: vec![0.0; p.n_slots],
            spread_delta: vec![0.0; p.n_slots],
            short_calls: vec![0.0; nc],
            short_puts: vec![0.0; nc],
            nov: vec![0.0; nc],
            seen: vec![false; nc],
            touched: Vec::with_capacity(4),
            net: vec![0.0; nc],
            net0: vec![0.0; nc],
            wfpr: vec![0.0; nc],
            out: vec![CommodityMargin::default(); nc],
            outside: [0.0; 2],
        }
    }

    fn reset(&mut self, p: &SpanParams) {
        for &c in &self.touched {
            let c = c as usize;
            self.loss[c * N_SCENARIOS..(c + 1) * N_SCENARIOS].fill(0.0);
            let cc = &p.commodities[c];
            let slots = cc.tier_offset..cc.tier_offset + cc.tiers.len();
            self.delta[slots.clone()].fill(0.0);
            self.spread_delta[slots].fill(0.0);
            self.short_calls[c] = 0.0;
            self.short_puts[c] = 0.0;
            self.nov[c] = 0.0;
            self.seen[c] = false;
            self.net[c] = 0.0;
            self.net0[c] = 0.0;
            self.wfpr[c] = 0.0;
            self.out[c] = CommodityMargin::default();
        }
        self.touched.clear();
        self.outside = [0.0; 2];
    }
}

/// Receives each position row from the standard kernel and files it under its commodity.
struct Collect<'s, 'c, 'a> {
    sc: &'s mut Scratch,
    ctx: &'c SpanContext<'a>,
}

impl RowSink for Collect<'_, '_, '_> {
    #[inline]
    fn position(&mut self, line: &PositionLine) {
        if line.isolated_margin > 0.0 {
            return;
        }
        let (ctx, sc, k) = (self.ctx, &mut *self.sc, line.market);
        let p = ctx.params;
        let c = p.market_commodity[k];
        if c == NONE {
            sc.outside[0] += line.requirement[0];
            sc.outside[1] += line.requirement[1];
            return;
        }
        let c = c as usize;
        if !sc.seen[c] {
            sc.seen[c] = true;
            sc.touched.push(c as u32);
        }
        let qty = line.qty;
        if qty == 0.0 {
            return;
        }
        let mt = &ctx.margin.universe.markets;
        let loss = &mut sc.loss[c * N_SCENARIOS..(c + 1) * N_SCENARIOS];
        let g = p.market_given[k];
        let delta = if g != NONE {
            let a = &p.given[g as usize];
            for (l, v) in loss.iter_mut().zip(a) {
                *l += qty * v;
            }
            qty * p.given_delta[g as usize]
        } else {
            let pc = ctx.engine.as_ref().expect("engine arrays exist for markets without a published one");
            let ra = &pc.arrays;
            let x = ra.entry_term[k].factor(line.entry);
            let off = pc.market_offset[k];
            let value = &ra.value[off..off + N_SCENARIOS];
            if x == 0.0 {
                for (l, v) in loss.iter_mut().zip(value) {
                    *l -= qty * v;
                }
            } else {
                for ((l, v), e) in loss.iter_mut().zip(value).zip(&ra.entry[off..off + N_SCENARIOS]) {
                    *l -= qty * (v + x * e);
                }
            }
            qty * (ctx.delta_value[k] + x * ctx.delta_entry[k])
        };
        sc.delta[p.market_slot[k] as usize] += delta;
        if mt.kind[k] == MarketKind::Option {
            sc.nov[c] += line.equity;
            if qty < 0.0 {
                if mt.option[k].call {
                    sc.short_calls[c] -= qty;
                } else {
                    sc.short_puts[c] -= qty;
                }
            }
        }
    }
}

/// Spreads `legs` on `delta` while every leg holds delta of the sign its side asks for;
/// returns the number of spreads formed and takes their delta out of each leg.
#[inline]
fn form_spreads(legs: &[(usize, f64, bool)], delta: &mut [f64], used: Option<&mut [f64]>) -> f64 {
    let (first, _, first_a) = legs[0];
    let sign = delta[first].signum();
    if delta[first] == 0.0 {
        return 0.0;
    }
    let mut n = f64::INFINITY;
    for &(s, ratio, side_a) in legs {
        let want = if side_a == first_a { sign } else { -sign };
        if delta[s] == 0.0 || delta[s].signum() != want {
            return 0.0;
        }
        n = n.min(delta[s].abs() / ratio);
    }
    for &(s, ratio, _) in legs {
        let take = n * ratio;
        // The leg that limits n ends at exactly 0.
        delta[s] = if delta[s].abs() / ratio == n { 0.0 } else { delta[s] - delta[s].signum() * take };
    }
    if let Some(used) = used {
        for &(s, ratio, _) in legs {
            used[s] += n * ratio;
        }
    }
    n
}

/// Scan risk and price risk of one commodity's summed array (CME: time risk = mean of
/// scenarios 1 and 2; volatility risk = half the gap between the worst scenario and its
/// pair with the other volatility move; price risk = scan − time − volatility risk).
#[inline]
fn scan_and_price_risk(loss: &[f64]) -> (f64, f64) {
    let (mut worst, mut at) = (loss[0], 0);
    for (s, &l) in loss.iter().enumerate().skip(1) {
        if l > worst {
            worst = l;
            at = s;
        }
    }
    let scan = worst.max(0.0);
    if scan == 0.0 {
        return (0.0, 0.0);
    }
    let pair = if at < 14 { at ^ 1 } else { at };
    let time = 0.5 * (loss[0] + loss[1]);
    let vol = 0.5 * (worst - loss[pair]);
    (scan, (scan - time - vol).clamp(0.0, scan))
}

/// A scanning-based spread of `n` spreads: each leg's share f_c = n·ratio/|Δ_c| of its
/// commodity's array is scanned with the others (per scenario, losses less `rate` × gains);
/// the shares' own scans (f_c × scan_c) give way to that charge, split in proportion to them.
fn scanned_credit(s: &params::Spread, n: f64, sc: &mut Scratch) {
    let mut worst = 0.0f64;
    for scenario in 0..N_SCENARIOS {
        let (mut loss, mut gain) = (0.0, 0.0);
        for &(c, ratio, _) in &s.legs {
            let x = n * ratio / sc.net0[c] * sc.loss[c * N_SCENARIOS + scenario];
            if x > 0.0 {
                loss += x;
            } else {
                gain += x;
            }
        }
        worst = worst.max(loss + s.rate * gain);
    }
    let shares: f64 = s.legs.iter().map(|&(c, ratio, _)| n * ratio / sc.net0[c] * sc.out[c].scan).sum();
    for &(c, ratio, _) in &s.legs {
        let share = n * ratio / sc.net0[c] * sc.out[c].scan;
        let part = if shares > 0.0 { worst * share / shares } else { 0.0 };
        sc.out[c].inter += share - part;
    }
}

/// One account under SPAN: its margin numbers (requirement = Σ commodity risk + standard
/// requirement of positions outside SPAN) with each touched commodity's numbers left in
/// `sc.out` / `sc.touched` (ascending commodity index) for the caller.
pub fn evaluate_account(rows: AccountRows<'_>, ctx: &SpanContext<'_>, sc: &mut Scratch) -> AccountMargin {
    let p = ctx.params;
    sc.reset(p);
    let mut m = evaluate_rows_into(rows, &ctx.margin, &ctx.margin, &mut Collect { sc: &mut *sc, ctx });
    sc.touched.sort_unstable();
    for t in 0..sc.touched.len() {
        let c = sc.touched[t] as usize;
        let cc = &p.commodities[c];
        let (scan, price_risk) = scan_and_price_risk(&sc.loss[c * N_SCENARIOS..(c + 1) * N_SCENARIOS]);
        let mut intra = 0.0;
        for s in &p.intra[cc.intra_range.0..cc.intra_range.1] {
            intra += s.rate * form_spreads(&s.legs, &mut sc.delta, Some(&mut sc.spread_delta));
        }
        let spot = cc
            .spot
            .map_or(0.0, |(slot, spread, outright)| spread * sc.spread_delta[slot] + outright * sc.delta[slot].abs());
        let net: f64 = sc.delta[cc.tier_offset..cc.tier_offset + cc.tiers.len()].iter().sum();
        sc.net[c] = net;
        sc.wfpr[c] = if net == 0.0 { 0.0 } else { price_risk / net.abs() };
        sc.out[c] = CommodityMargin {
            scan,
            intra,
            spot,
            som: cc.som_rate * sc.short_calls[c].max(sc.short_puts[c]),
            nov: sc.nov[c],
            ..CommodityMargin::default()
        };
    }
    if sc.touched.len() > 1 {
        for &c in &sc.touched {
            sc.net0[c as usize] = sc.net[c as usize].abs();
        }
        for s in &p.inter {
            if s.legs.iter().any(|&(c, _, _)| !sc.seen[c]) {
                continue;
            }
            let n = form_spreads(&s.legs, &mut sc.net, None);
            if n == 0.0 {
                continue;
            }
            if s.scanned {
                scanned_credit(s, n, sc);
            } else {
                for &(c, ratio, _) in &s.legs {
                    sc.out[c].inter += s.rate * n * ratio * sc.wfpr[c];
                }
            }
        }
    }
    let mut req = sc.outside;
    for &c in &sc.touched {
        let c = c as usize;
        let o = &mut sc.out[c];
        o.risk = (o.scan + o.intra + o.spot - o.inter).max(o.som);
        o.initial = p.commodities[c].im_ratio * o.risk;
        req[0] += o.initial;
        req[1] += o.risk;
    }
    m.requirement = req;
    m
}

/// Per account × combined commodity numbers (long format: accounts ascending, then
/// commodities by index), for every commodity an account holds a position in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommodityColumns {
    pub account: Vec<u32>,
    pub commodity: Vec<u32>,
    pub scan: Vec<f64>,
    pub intra: Vec<f64>,
    pub spot: Vec<f64>,
    pub inter: Vec<f64>,
    pub som: Vec<f64>,
    pub risk: Vec<f64>,
    pub initial: Vec<f64>,
    pub nov: Vec<f64>,
}

impl CommodityColumns {
    fn push(&mut self, a: u32, c: u32, o: &CommodityMargin) {
        self.account.push(a);
        self.commodity.push(c);
        self.scan.push(o.scan);
        self.intra.push(o.intra);
        self.spot.push(o.spot);
        self.inter.push(o.inter);
        self.som.push(o.som);
        self.risk.push(o.risk);
        self.initial.push(o.initial);
        self.nov.push(o.nov);
    }

    fn append(&mut self, o: CommodityColumns) {
        self.account.extend(o.account);
        self.commodity.extend(o.commodity);
        self.scan.extend(o.scan);
        self.intra.extend(o.intra);
        self.spot.extend(o.spot);
        self.inter.extend(o.inter);
        self.som.extend(o.som);
        self.risk.extend(o.risk);
        self.initial.extend(o.initial);
        self.nov.extend(o.nov);
    }
}

/// Accounts per parallel task.
const CHUNK: usize = 2048;

/// Every account under SPAN on the current rayon pool: the account columns and, with
/// `detail`, the per-commodity rows. Results do not depend on the thread count.
pub fn evaluate(book: &GroupedBook, ctx: &SpanContext<'_>, detail: bool) -> (MarginColumns, CommodityColumns) {
    if !detail {
        let cols = columns_by_account(book, || Scratch::new(ctx.params), |rows, sc| evaluate_account(rows, ctx, sc));
        return (cols, CommodityColumns::default());
    }
    let n = book.n_accounts();
    let chunks: Vec<(Vec<AccountMargin>, CommodityColumns)> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut sc = Scratch::new(ctx.params);
            let mut acc = Vec::with_capacity(CHUNK);
            let mut rows = CommodityColumns::default();
            for a in c * CHUNK..((c + 1) * CHUNK).min(n) {
                acc.push(evaluate_account(book.account(a), ctx, &mut sc));
                for &cc in &sc.touched {
                    rows.push(a as u32, cc, &sc.out[cc as usize]);
                }
            }
            (acc, rows)
        })
        .collect();
    let mut cols = MarginColumns::default();
    let mut detail_rows = CommodityColumns::default();
    for (acc, rows) in chunks {
        for r in &acc {
            cols.equity.push(r.equity);
            cols.upnl.push(r.upnl);
            cols.adj_equity_initial.push(r.adj_equity[0]);
            cols.adj_equity_maint.push(r.adj_equity[1]);
            cols.im.push(r.requirement[0]);
            cols.mm.push(r.requirement[1]);
            cols.free_collateral.push(r.free_collateral());
            cols.margin_ratio.push(r.margin_ratio());
            cols.liquidatable.push(r.liquidatable());
            cols.bankrupt.push(r.bankrupt());
        }
        detail_rows.append(rows);
    }
    (cols, detail_rows)
}

#[cfg(test)]
mod tests;
