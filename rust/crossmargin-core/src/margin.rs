//! The standard cross-margin model (docs/MODEL.md "Standard cross margin"): per account equity, weighted collateral,
//! borrow liabilities, uPnL and bracket requirements of cross positions, isolated
//! positions beside the pool.

use rayon::prelude::*;

use crate::book::{AccountRows, GroupedBook};
use crate::brackets::{BracketTable, Shape};
use crate::contract::Payoff;
use crate::error::{CoreError, Result};
use crate::imf;
use crate::limits::{is_price, MAX_PRICE, MIN_PRICE};
use crate::memory::column;
use crate::mode::PerMode;
use crate::options;
use crate::orders;
use crate::universe::{AssetHot, MarketHot, MarketKind, Universe};

/// Prices for one evaluation, by universe index: asset prices (USD) and market marks.
#[derive(Debug, Clone, Copy)]
pub struct Prices<'a> {
    pub asset: &'a [f64],
    pub mark: &'a [f64],
}

/// Book codes → universe indices, for assets and markets.
#[derive(Debug, Clone, Copy)]
pub struct Remap<'a> {
    pub asset: &'a [u32],
    pub market: &'a [u32],
}

/// Everything a kernel reads, checked once per call.
#[derive(Debug, Clone, Copy)]
pub struct MarginContext<'a> {
    pub universe: &'a Universe,
    pub prices: Prices<'a>,
    pub remap: Remap<'a>,
}

impl<'a> MarginContext<'a> {
    pub fn new(universe: &'a Universe, book: &GroupedBook, prices: Prices<'a>, remap: Remap<'a>) -> Result<Self> {
        let (na, nm) = (universe.n_assets(), universe.n_markets());
        check_prices("asset prices", prices.asset, na, &universe.assets.symbol, true)?;
        check_prices("marks", prices.mark, nm, &universe.markets.symbol, true)?;
        // Options may be worth 0 (far out of the money); every other mark must be > 0.
        let zero = (0..nm).find(|&k| prices.mark[k] == 0.0 && universe.markets.kind[k] != MarketKind::Option);
        if let Some(k) = zero {
            return Err(CoreError::price(format!("marks[{}]", universe.markets.symbol[k]), "0 must be finite and > 0"));
        }
        // The numeric domain (crate::limits): a perp's or future's mark divides.
        let out = (0..nm).find(|&k| {
            let x = prices.mark[k];
            if universe.markets.kind[k] == MarketKind::Option {
                x > MAX_PRICE
            } else {
                !is_price(x, false)
            }
        });
        if let Some(k) = out {
            let x = prices.mark[k];
            return Err(CoreError::price(
                format!("marks[{}]", universe.markets.symbol[k]),
                format!("{x} must lie in [{MIN_PRICE:e}, {MAX_PRICE:e}]"),
            ));
        }
        if let Some(i) = (0..na).find(|&i| prices.asset[i] > MAX_PRICE) {
            return Err(CoreError::price(
                format!("asset prices[{}]", universe.assets.symbol[i]),
                format!("{} must be ≤ {MAX_PRICE:e}", prices.asset[i]),
            ));
        }
        check_remap("asset", remap.asset, book.n_asset_codes, na)?;
        check_remap("market", remap.market, book.n_market_codes, nm)?;
        if book.has_orders() {
            orders::check_markets(book, universe, remap.market)?;
        }
        Ok(MarginContext { universe, prices, remap })
    }

    /// The price of underlying `u` at this call's prices (the forward of its options).
    #[inline]
    pub fn underlying_price(&self, u: usize) -> f64 {
        self.universe.underlying_spot(u, self.prices.asset, self.prices.mark)
    }
}

fn check_prices(what: &str, p: &[f64], n: usize, symbols: &[String], zero_ok: bool) -> Result<()> {
    if p.len() != n {
        return Err(CoreError::price(what, format!("{} values given for {n} symbols", p.len())));
    }
    for (x, s) in p.iter().zip(symbols) {
        if !x.is_finite() || *x < 0.0 || (!zero_ok && *x == 0.0) {
            let need = if zero_ok { "finite and ≥ 0" } else { "finite and > 0" };
            return Err(CoreError::price(format!("{what}[{s}]"), format!("{x} must be {need}")));
        }
    }
    Ok(())
}

fn check_remap(what: &str, remap: &[u32], n_codes: u32, n: usize) -> Result<()> {
    if remap.len() != n_codes as usize {
        return Err(CoreError::config(
            format!("{what} remap"),
            format!("{} entries for {n_codes} book codes", remap.len()),
        ));
    }
    if let Some(bad) = remap.iter().find(|&&i| i as usize >= n) {
        return Err(CoreError::config(format!("{what} remap"), format!("index {bad} is out of range (0..{n})")));
    }
    Ok(())
}

/// One position's numbers in USD at the context's prices.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PositionMargin {
    pub notional: f64,
    pub upnl: f64,
    /// (initial, maintenance) requirement.
    pub requirement: PerMode<f64>,
}

/// [`position_margin_hot`] of market `market` of the universe.
#[inline]
pub fn position_margin(
    u: &Universe,
    market: usize,
    qty: f64,
    entry: f64,
    mark: f64,
    settle_price: f64,
) -> PositionMargin {
    position_margin_hot(&u.markets.brackets, &u.market_hot[market], qty, entry, mark, settle_price)
}

/// A perp's or future's numbers: notional and uPnL by the market's [`Contract`] (settle
/// units, converted to USD at the settle price); requirement: the market's requirement shape
/// on settle-asset notional ([`requirement_of`]), maintenance at the entry price where the
/// market's basis says so (docs/MODEL.md "Valuation basis").
#[inline]
pub fn position_margin_hot(
    brackets: &BracketTable,
    h: &MarketHot,
    qty: f64,
    entry: f64,
    mark: f64,
    settle_price: f64,
) -> PositionMargin {
    let c = &h.contract;
    let (notional, upnl) = (c.notional(qty, mark), c.pnl(qty, entry, mark));
    let mut req = requirement_of(brackets, h, qty, notional);
    if h.entry_basis {
        // Bybit: maintenance = position value at the entry price × MMR.
        let at_entry = if qty == 0.0 { 0.0 } else { c.notional(qty, entry) };
        req[1] = requirement_of(brackets, h, qty, at_entry)[1];
    }
    PositionMargin {
        notional: notional * settle_price,
        upnl: upnl * settle_price,
        requirement: [req[0] * settle_price, req[1] * settle_price],
    }
}

/// [`position_margin_hot`] of a market without venue rules (continuous or step brackets and
/// the size premium): the bulk path of a universe that has none.
#[inline(always)]
fn position_margin_plain(
    brackets: &BracketTable,
    h: &MarketHot,
    qty: f64,
    entry: f64,
    mark: f64,
    settle_price: f64,
) -> PositionMargin {
    let c = &h.contract;
    let (notional, upnl) = (c.notional(qty, mark), c.pnl(qty, entry, mark));
    let mut req = brackets.requirement_in(h.tiers.0 as usize, h.tiers.1 as usize, notional);
    if h.imf_factor > 0.0 {
        let term = imf::premium_term(h.imf_factor, c.size_of(qty));
        for (r, &base) in req.iter_mut().zip(&h.base_rate) {
            *r = r.max(notional * imf::premium(base, term));
        }
    }
    PositionMargin {
        notional: notional * settle_price,
        upnl: upnl * settle_price,
        requirement: [req[0] * settle_price, req[1] * settle_price],
    }
}

/// (initial, maintenance) requirement of `qty` contracts whose notional is `notional`
/// (settle units) by the market's shape per mode (docs/MODEL.md "Requirement shapes"):
/// continuous or step brackets (the table holds cum = 0 for a step mode), the size-scaled
/// rate base + slope × size (size in underlying units: |q·cs| for a linear market, the coin
/// notional for an inverse one), then at least the Drift-style size premium on the first
/// bracket's rate.
#[inline]
pub fn requirement_of(brackets: &BracketTable, h: &MarketHot, qty: f64, notional: f64) -> PerMode<f64> {
    let c = &h.contract;
    let mut req = brackets.requirement_in(h.tiers.0 as usize, h.tiers.1 as usize, notional);
    if h.scaled {
        let size = match c.payoff {
            Payoff::Inverse => notional,
            Payoff::Linear | Payoff::Premium => c.size_of(qty).abs(),
        };
        for ((r, &shape), &slope) in req.iter_mut().zip(&h.shape).zip(&h.rate_slope) {
            if shape == Shape::SizeScaled {
                // Deribit futures: rate = base + slope × size, requirement = N × rate.
                *r += notional * slope * size;
            }
        }
    }
    if h.imf_factor > 0.0 {
        let term = imf::premium_term(h.imf_factor, c.size_of(qty));
        for (r, &base) in req.iter_mut().zip(&h.base_rate) {
            *r = r.max(notional * imf::premium(base, term));
        }
    }
    req
}

/// The closing fee reserved for a position (docs/MODEL.md "Liquidation-fee reserve"), settle
/// units: fee × notional at the position's bankruptcy price B, the price at which `pool`
/// (the value of the position's pool in settle units at `mark`, the position's uPnL in it at
/// full weight) less that fee is 0 with only this mark moving. Linear: B = (S·M − pool) /
/// (S − f·|S|); inverse: |S| / B = (pool + S/M) / (S + f·|S|) (S = qty × contract size).
/// No bankruptcy price (the pool covers every price): 0.
#[inline]
pub fn fee_reserve(h: &MarketHot, qty: f64, mark: f64, pool: f64) -> f64 {
    let x = bankruptcy_price(h, qty, mark, pool);
    if x.is_nan() {
        return 0.0;
    }
    h.liquidation_fee * h.contract.notional(qty, x)
}

/// The bankruptcy price of a position whose pool is worth `pool` settle units at `mark`
/// (see [`fee_reserve`]); NaN where the pool covers every price.
pub fn bankruptcy_price(h: &MarketHot, qty: f64, mark: f64, pool: f64) -> f64 {
    let (f, s) = (h.liquidation_fee, h.contract.size_of(qty));
    let x = match h.contract.payoff {
        Payoff::Inverse => (s + f * s.abs()) / (pool + s / mark),
        Payoff::Linear | Payoff::Premium => (s * mark - pool) / (s - f * s.abs()),
    };
    if s != 0.0 && x.is_finite() && x > 0.0 {
        x
    } else {
        f64::NAN
    }
}

/// One balance row's asset at this call's prices.
#[derive(Debug, Clone, Copy)]
pub struct AssetCall {
    pub index: usize,
    pub price: f64,
    pub hot: AssetHot,
}

/// One position row's market at this call's prices.
#[derive(Debug, Clone, Copy)]
pub struct MarketCall {
    pub index: usize,
    pub mark: f64,
    pub settle_price: f64,
    pub hot: MarketHot,
    /// The settle asset's two-sided valuation (bid / price, ask / price), if it has one.
    pub settle_side: Option<[f64; 2]>,
}

/// Where the kernel finds a row's asset or market (by book code) with this call's prices:
/// through the context's remap and price vectors, or from tables prepared once per call.
pub trait RowLookup {
    fn asset(&self, code: u32) -> AssetCall;
    fn market(&self, code: u32) -> MarketCall;
}

impl RowLookup for MarginContext<'_> {
    #[inline]
    fn asset(&self, code: u32) -> AssetCall {
        let i = self.remap.asset[code as usize] as usize;
        AssetCall { index: i, price: self.prices.asset[i], hot: self.universe.asset_hot[i] }
    }

    #[inline]
    fn market(&self, code: u32) -> MarketCall {
        let k = self.remap.market[code as usize] as usize;
        let hot = self.universe.market_hot[k];
        let a = &self.universe.asset_hot[hot.settle as usize];
        MarketCall {
            index: k,
            mark: self.prices.mark[k],
            settle_price: self.prices.asset[hot.settle as usize],
            hot,
            settle_side: a.two_sided.then_some(a.side_factor),
        }
    }
}

/// Every book code's asset and market at one call's prices, resolved once: the bulk path
/// reads one packed record per row.
#[derive(Debug, Clone)]
pub struct PreparedLookup {
    assets: Vec<AssetCall>,
    markets: Vec<MarketCall>,
}

impl PreparedLookup {
    pub fn new(ctx: &MarginContext<'_>) -> Self {
        PreparedLookup {
            assets: (0..ctx.remap.asset.len() as u32).map(|c| ctx.asset(c)).collect(),
            markets: (0..ctx.remap.market.len() as u32).map(|c| ctx.market(c)).collect(),
        }
    }
}

impl RowLookup for PreparedLookup {
    #[inline]
    fn asset(&self, code: u32) -> AssetCall {
        self.assets[code as usize]
    }

    #[inline]
    fn market(&self, code: u32) -> MarketCall {
        self.markets[code as usize]
    }
}

/// An account's margin (docs/MODEL.md "Standard cross margin"). Requirements are of cross positions only.
/// 64 bytes, aligned to a cache line: a store into an array of them (the live monitor's
/// results, written scattered by a tick) touches one line, not two.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(align(64))]
pub struct AccountMargin {
    pub equity: f64,
    pub upnl: f64,
    pub adj_equity: PerMode<f64>,
    pub requirement: PerMode<f64>,
    pub isolated_liquidatable: bool,
    /// The closing-fee reserves of the cross pool (USD), part of `requirement[1]`.
    pub fee_reserve: f64,
}

impl AccountMargin {
    pub fn free_collateral(&self) -> f64 {
        self.adj_equity[0] - self.requirement[0]
    }

    /// mm / adj_equity_maint; 0 without requirement, +inf when the pool is exhausted.
    pub fn margin_ratio(&self) -> f64 {
        let (adj, mm) = (self.adj_equity[1], self.requirement[1]);
        if mm == 0.0 {
            0.0
        } else if adj <= 0.0 {
            f64::INFINITY
        } else {
            mm / adj
        }
    }

    pub fn liquidatable(&self) -> bool {
        self.adj_equity[1] < self.requirement[1] || self.isolated_liquidatable
    }

    pub fn bankrupt(&self) -> bool {
        self.equity < 0.0
    }
}

/// One account under the standard model; reads like docs/MODEL.md "Standard cross margin".
pub fn evaluate_account(rows: AccountRows<'_>, ctx: &MarginContext<'_>) -> AccountMargin {
    evaluate_rows(rows, ctx, ctx)
}

/// [`evaluate_account`] with rows resolved by `lookup` (the one formula, two ways to find a
/// row's constants and prices).
#[inline]
pub fn evaluate_rows<L: RowLookup>(rows: AccountRows<'_>, ctx: &MarginContext<'_>, lookup: &L) -> AccountMargin {
    evaluate_rows_into(rows, ctx, lookup, &mut ())
}

/// [`evaluate_rows`], handing each row's own numbers to `sink` as they enter the account's
/// totals (an explanation records them; the bulk path's `()` sink compiles away).
#[inline]
pub fn evaluate_rows_into<L: RowLookup, S: RowSink>(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) -> AccountMargin {
    // One formula, two instantiations: a universe without venue rules (two-sided assets,
    // fee reserves, size-scaled rates, entry-basis maintenance, Drift's uPnL size discount /
    // cap and scaled initial weight) runs the plain model with
    // those branches compiled out (docs/ARCHITECTURE.md, "Venue rules").
    if ctx.universe.venue_rules {
        rows_into::<L, S, true>(rows, ctx, lookup, sink)
    } else {
        rows_into::<L, S, false>(rows, ctx, lookup, sink)
    }
}

/// The kernel's running sums after its balance loop (which runs first, from 0): the balance
/// rows' equity and (initial, maintenance) collateral. Where no balance line depends on the
/// account's positions or the marks ([`balances_fixed`]), these are the same floats at every
/// mark for the same rows and asset prices, and [`evaluate_positions_onto`] resumes the
/// evaluation from them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BalanceSums {
    pub equity: f64,
    pub adj_equity: PerMode<f64>,
}

/// [`evaluate_rows_into`]'s balance loop alone (its balance lines to `sink`).
#[inline]
pub fn evaluate_balances_into<L: RowLookup, S: RowSink>(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) -> BalanceSums {
    let mut m = AccountMargin::default();
    if ctx.universe.venue_rules {
        balances_into::<L, S, true>(&mut m, rows, ctx, lookup, sink);
    } else {
        balances_into::<L, S, false>(&mut m, rows, ctx, lookup, sink);
    }
    BalanceSums { equity: m.equity, adj_equity: m.adj_equity }
}

/// The rest of [`evaluate_rows_into`] (its position lines to `sink`), resumed from the
/// balance loop's sums: the same result, bit for bit, when `balances` are what
/// [`evaluate_balances_into`] gives for these rows at these prices.
#[inline]
pub fn evaluate_positions_onto<L: RowLookup, S: RowSink>(
    balances: BalanceSums,
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) -> AccountMargin {
    let mut m = AccountMargin { equity: balances.equity, adj_equity: balances.adj_equity, ..AccountMargin::default() };
    if ctx.universe.venue_rules {
        positions_into::<L, S, true>(&mut m, rows, ctx, lookup, sink);
    } else {
        positions_into::<L, S, false>(&mut m, rows, ctx, lookup, sink);
    }
    m
}

/// Whether the balance lines of an account holding `assets` (universe indices) read nothing
/// but its balance rows and the asset prices: every asset but a two-sided one under venue
/// rules (whose side follows the account's positions and the marks, [`side_of`]).
#[inline]
pub fn balances_fixed(u: &Universe, assets: &[u32]) -> bool {
    !u.two_sided || assets.iter().all(|&i| !u.asset_hot[i as usize].two_sided)
}

#[inline(always)]
fn rows_into<L: RowLookup, S: RowSink, const VENUE: bool>(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) -> AccountMargin {
    let mut m = AccountMargin::default();
    balances_into::<L, S, VENUE>(&mut m, rows, ctx, lookup, sink);
    positions_into::<L, S, VENUE>(&mut m, rows, ctx, lookup, sink);
    m
}

/// The kernel's balance loop: adds each balance row to `m`'s equity and adjusted equity.
#[inline(always)]
fn balances_into<L: RowLookup, S: RowSink, const VENUE: bool>(
    m: &mut AccountMargin,
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) {
    let u = ctx.universe;
    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let AssetCall { index: i, price, hot: a } = lookup.asset(code);
        let value = qty * price;
        m.equity += value;
        // Two-sided valuation: the account's net holding of the asset at the bid or the ask.
        let weighed = if VENUE && a.two_sided { value * a.side_factor[side_of(rows, lookup, i)] } else { value };
        let mut collateral = [0.0; 2];
        if qty > 0.0 {
            let discounted = if a.has_tiers { u.assets.haircuts.discounted(i, weighed) } else { weighed };
            // imf::discounted_weight, with the cap computed once for both modes
            let cap = if a.imf_factor == 0.0 { f64::INFINITY } else { imf::discount_cap(a.imf_factor, qty) };
            let mut weight = a.weight;
            if VENUE && a.scaled_initial {
                let scale = (u.assets.scale_initial_weight_start[i], u.assets.total_deposits[i]);
                weight[0] = imf::scaled_initial_weight(weight[0], scale, price);
            }
            for ((c, adj), &w) in collateral.iter_mut().zip(m.adj_equity.iter_mut()).zip(&weight) {
                *c = discounted * w.min(cap);
                *adj += *c;
            }
        } else if qty < 0.0 {
            for ((c, adj), &w) in collateral.iter_mut().zip(m.adj_equity.iter_mut()).zip(&a.liability_weight) {
                let w = if a.imf_factor == 0.0 { w } else { imf::premium(w, imf::premium_term(a.imf_factor, qty)) };
                *c = weighed * w;
                *adj += *c;
            }
        }
        sink.balance(&BalanceLine { asset: i, qty, price, value, collateral });
    }
}

/// The kernel's position loop and what follows it (fee reserves, open orders), onto `m`.
#[inline(always)]
fn positions_into<L: RowLookup, S: RowSink, const VENUE: bool>(
    m: &mut AccountMargin,
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) {
    let u = ctx.universe;
    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
    for (((&code, &qty), &entry), &isolated) in positions {
        let MarketCall { index: k, mark, settle_price, hot: h, settle_side } = lookup.market(code);
        // Two-sided valuation: amounts with the settle asset's holding, requirements at the ask.
        let (held, owed) = match settle_side {
            Some(f) if VENUE && isolated <= 0.0 => (f[side_of(rows, lookup, h.settle as usize)], f[1]),
            _ => (1.0, 1.0),
        };
        if h.is_option() {
            add_option(m, ctx, k, qty, entry, isolated, settle_price, [held, owed], sink);
            continue;
        }
        let p = if VENUE {
            position_margin_hot(&u.markets.brackets, &h, qty, entry, mark, settle_price)
        } else {
            position_margin_plain(&u.markets.brackets, &h, qty, entry, mark, settle_price)
        };
        m.upnl += p.upnl;
        m.equity += p.upnl;
        let mut line = PositionLine {
            market: k,
            qty,
            entry,
            mark,
            notional: p.notional,
            upnl: p.upnl,
            equity: p.upnl,
            requirement: p.requirement,
            ..PositionLine::default()
        };
        if isolated > 0.0 {
            let margin = isolated * settle_price;
            m.equity += margin;
            line.isolated_margin = margin;
            if VENUE && h.liquidation_fee > 0.0 && settle_price > 0.0 {
                // The position's own pool: its margin and uPnL (docs/MODEL.md "Liquidation-fee reserve").
                line.requirement[1] += fee_reserve(&h, qty, mark, isolated + p.upnl / settle_price) * settle_price;
            }
            line.isolated_below_maintenance = margin + p.upnl < line.requirement[1];
            if line.isolated_below_maintenance {
                m.isolated_liquidatable = true;
            }
        } else {
            for mode in 0..2 {
                let collateral = if VENUE && h.upnl_rule {
                    let (f, cap) = (u.markets.upnl_imf_factor[k], u.markets.upnl_cap_initial[k]);
                    imf::upnl_collateral(p.upnl, settle_price, h.upnl_weight[mode], f, cap, mode)
                } else {
                    p.upnl.min(0.0) + p.upnl.max(0.0) * h.upnl_weight[mode]
                };
                line.collateral[mode] = collateral * held;
                line.requirement[mode] = p.requirement[mode] * owed;
                m.adj_equity[mode] += line.collateral[mode];
                m.requirement[mode] += line.requirement[mode];
            }
        }
        sink.position(&line);
    }
    if VENUE && u.has_fee_reserve {
        add_fee_reserves(rows, u, lookup, m);
    }

    // Open orders lock initial margin only (docs/MODEL.md "Open orders"; crate::orders).
    if !rows.ord_code.is_empty() {
        m.requirement[0] += orders::order_margin(&rows, ctx, lookup, |line| sink.order(line));
    }
}

/// Which of an asset's two prices values this account's holding of it (0: bid, 1: ask): the
/// bid when the account's net amount of the asset — balance plus the uPnL (an option: the
/// value) of its cross positions settled in it — is ≥ 0, else the ask (Binance Multi-Assets:
/// Σ min(asset equity × bid rate, asset equity × ask rate); docs/MODEL.md "Two-sided valuation").
fn side_of<L: RowLookup>(rows: AccountRows<'_>, lookup: &L, asset: usize) -> usize {
    let mut net = 0.0;
    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        if lookup.asset(code).index == asset {
            net += qty;
        }
    }
    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
    for (((&code, &qty), &entry), &isolated) in positions {
        let mc = lookup.market(code);
        if mc.hot.settle as usize == asset && isolated <= 0.0 {
            net += mc.hot.contract.equity(qty, entry, mc.mark);
        }
    }
    usize::from(net < 0.0)
}

/// Adds each cross position's closing-fee reserve ([`fee_reserve`]) to the maintenance
/// requirement: its pool is the account's adjusted maintenance equity with the position's
/// uPnL at full weight (an isolated position's reserve joins its own test in the kernel).
fn add_fee_reserves<L: RowLookup>(rows: AccountRows<'_>, u: &Universe, lookup: &L, m: &mut AccountMargin) {
    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
    for (((&code, &qty), &entry), &isolated) in positions {
        let MarketCall { mark, settle_price, hot: h, settle_side, .. } = lookup.market(code);
        if h.liquidation_fee == 0.0 || h.is_option() || qty == 0.0 {
            continue;
        }
        if isolated > 0.0 {
            continue;
        }
        let p = position_margin_hot(&u.markets.brackets, &h, qty, entry, mark, 1.0);
        let (held, owed) = match settle_side {
            Some(f) => (f[side_of(rows, lookup, h.settle as usize)], f[1]),
            None => (1.0, 1.0),
        };
        let (held_price, owed_price) = (settle_price * held, settle_price * owed);
        if held_price <= 0.0 {
            continue;
        }
        let counted = p.upnl.min(0.0) + p.upnl.max(0.0) * h.upnl_weight[1];
        let pool = m.adj_equity[1] / held_price - counted + p.upnl;
        let reserve = fee_reserve(&h, qty, mark, pool) * owed_price;
        m.requirement[1] += reserve;
        m.fee_reserve += reserve;
    }
}

/// Where an explanation receives the kernel's per-row numbers; `()` ignores them.
pub trait RowSink {
    #[inline]
    fn balance(&mut self, _line: &BalanceLine) {}
    #[inline]
    fn position(&mut self, _line: &PositionLine) {}
    /// One market's open orders (what they add to the initial requirement).
    #[inline]
    fn order(&mut self, _line: &orders::OrderLine) {}
}

impl RowSink for () {}

/// One balance row as it entered its account (USD at the call's prices).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BalanceLine {
    /// Universe index of the asset.
    pub asset: usize,
    pub qty: f64,
    pub price: f64,
    /// qty × price (enters `equity`).
    pub value: f64,
    /// What the row adds to (adj_equity_initial, adj_equity_maint): haircut-tiered value ×
    /// weight for a holding, value × liability weight for a borrow.
    pub collateral: PerMode<f64>,
}

/// One position row as it entered its account (USD at the call's prices).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PositionLine {
    /// Universe index of the market.
    pub market: usize,
    pub qty: f64,
    pub entry: f64,
    pub mark: f64,
    pub notional: f64,
    pub upnl: f64,
    /// What the position adds to `equity` besides an isolated margin: its uPnL, or an
    /// option's value.
    pub equity: f64,
    /// What it adds to (adj_equity_initial, adj_equity_maint); 0 for an isolated position.
    pub collateral: PerMode<f64>,
    /// (initial, maintenance) requirement; in the cross totals unless isolated.
    pub requirement: PerMode<f64>,
    /// The isolated margin in USD (0 for a cross position).
    pub isolated_margin: f64,
    /// Isolated only: margin + equity below its own maintenance requirement.
    pub isolated_below_maintenance: bool,
}

/// An option position (docs/MODEL.md "Option positions", "Option margin"): its value
/// q·cs·mark enters `equity` and, in the cross pool, `adj_equity` unweighted (a long counts
/// at its value, a short as the liability of buying it back); `upnl` reports q·cs·(mark −
/// entry); a short adds Deribit's requirement. Isolated: margin + value against its own mm.
#[inline]
#[allow(clippy::too_many_arguments)]
fn add_option<S: RowSink>(
    m: &mut AccountMargin,
    ctx: &MarginContext<'_>,
    k: usize,
    qty: f64,
    entry: f64,
    isolated: f64,
    settle_price: f64,
    [held, owed]: [f64; 2],
    sink: &mut S,
) {
    let o = option_terms(ctx, k, qty, entry, settle_price);
    m.upnl += o.upnl;
    m.equity += o.value;
    let mut line = PositionLine {
        market: k,
        qty,
        entry,
        mark: ctx.prices.mark[k],
        notional: o.value.abs(),
        upnl: o.upnl,
        equity: o.value,
        requirement: o.requirement,
        ..PositionLine::default()
    };
    if isolated > 0.0 {
        let margin = isolated * settle_price;
        m.equity += margin;
        line.isolated_margin = margin;
        line.isolated_below_maintenance = margin + o.value < o.requirement[1];
        if line.isolated_below_maintenance {
            m.isolated_liquidatable = true;
        }
    } else {
        for mode in 0..2 {
            line.collateral[mode] = o.value * held;
            line.requirement[mode] = o.requirement[mode] * owed;
            m.adj_equity[mode] += line.collateral[mode];
            m.requirement[mode] += line.requirement[mode];
        }
    }
    sink.position(&line);
}

/// Option market `k`'s position numbers at the context's mark and underlying price.
#[inline]
fn option_terms(ctx: &MarginContext<'_>, k: usize, qty: f64, entry: f64, settle_price: f64) -> options::OptionMargin {
    let u = ctx.universe;
    let mt = &u.markets;
    let s = ctx.underlying_price(mt.underlying[k] as usize);
    let cs = mt.contract_size[k];
    options::option_margin(&mt.option[k], mt.inverse[k], qty, cs, entry, ctx.prices.mark[k], settle_price, s)
}

/// What one position contributes to its pool, whatever its kind (USD): the equity it adds
/// (uPnL for a perp or future, its value for an option), the uPnL it reports, its (initial,
/// maintenance) requirement and its notional (an option's: its value's magnitude).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stake {
    pub equity: f64,
    pub upnl: f64,
    pub requirement: PerMode<f64>,
    pub notional: f64,
}

/// The [`Stake`] of `qty` contracts of market `k` at the context's prices: the kernel's own
/// per-position rule (the perp / future path of [`evaluate_rows_into`] and its options path).
pub fn position_stake(ctx: &MarginContext<'_>, k: usize, qty: f64, entry: f64) -> Stake {
    let u = ctx.universe;
    let h = &u.market_hot[k];
    let settle_price = ctx.prices.asset[h.settle as usize];
    if h.is_option() {
        let o = option_terms(ctx, k, qty, entry, settle_price);
        return Stake { equity: o.value, upnl: o.upnl, requirement: o.requirement, notional: o.value.abs() };
    }
    let p = position_margin_hot(&u.markets.brackets, h, qty, entry, ctx.prices.mark[k], settle_price);
    Stake { equity: p.upnl, upnl: p.upnl, requirement: p.requirement, notional: p.notional }
}

/// The equity [`position_stake`] gives (a perp's or future's uPnL, an option's value), without
/// the requirement it does not read: the same float.
#[inline]
pub fn position_equity(ctx: &MarginContext<'_>, k: usize, qty: f64, entry: f64) -> f64 {
    let h = &ctx.universe.market_hot[k];
    let settle_price = ctx.prices.asset[h.settle as usize];
    if h.is_option() {
        return option_terms(ctx, k, qty, entry, settle_price).value;
    }
    h.contract.pnl(qty, entry, ctx.prices.mark[k]) * settle_price
}

/// Per-account results as columns, in dense account order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarginColumns {
    pub equity: Vec<f64>,
    pub upnl: Vec<f64>,
    pub adj_equity_initial: Vec<f64>,
    pub adj_equity_maint: Vec<f64>,
    pub im: Vec<f64>,
    pub mm: Vec<f64>,
    pub free_collateral: Vec<f64>,
    pub margin_ratio: Vec<f64>,
    pub liquidatable: Vec<bool>,
    pub bankrupt: Vec<bool>,
}

/// Accounts per parallel task: large enough to amortise scheduling, small enough to balance
/// (a multiple of 8: the SIMD kernel's groups never straddle two tasks).
pub const CHUNK: usize = 2048;

/// Per-account result columns borrowed from the caller (`out=`: a previous result's arrays
/// written in place, so a repeated evaluation faults in no fresh pages).
#[derive(Debug)]
pub struct MarginColumnsMut<'a> {
    pub equity: &'a mut [f64],
    pub upnl: &'a mut [f64],
    pub adj_equity_initial: &'a mut [f64],
    pub adj_equity_maint: &'a mut [f64],
    pub im: &'a mut [f64],
    pub mm: &'a mut [f64],
    pub free_collateral: &'a mut [f64],
    pub margin_ratio: &'a mut [f64],
    pub liquidatable: &'a mut [bool],
    pub bankrupt: &'a mut [bool],
}

impl MarginColumns {
    /// Fresh columns for `n` accounts (zeroed, on huge pages where the platform has them).
    pub fn zeroed(n: usize) -> Self {
        MarginColumns {
            equity: column(n),
            upnl: column(n),
            adj_equity_initial: column(n),
            adj_equity_maint: column(n),
            im: column(n),
            mm: column(n),
            free_collateral: column(n),
            margin_ratio: column(n),
            liquidatable: column(n),
            bankrupt: column(n),
        }
    }

    /// The columns, borrowed for writing.
    pub fn as_mut(&mut self) -> MarginColumnsMut<'_> {
        MarginColumnsMut {
            equity: &mut self.equity,
            upnl: &mut self.upnl,
            adj_equity_initial: &mut self.adj_equity_initial,
            adj_equity_maint: &mut self.adj_equity_maint,
            im: &mut self.im,
            mm: &mut self.mm,
            free_collateral: &mut self.free_collateral,
            margin_ratio: &mut self.margin_ratio,
            liquidatable: &mut self.liquidatable,
            bankrupt: &mut self.bankrupt,
        }
    }
}

impl<'a> MarginColumnsMut<'a> {
    /// The columns' common length; a `Table` error naming the first column of another length.
    pub fn len_checked(&self, n: usize) -> Result<usize> {
        let lens = [
            ("equity", self.equity.len()),
            ("upnl", self.upnl.len()),
            ("adj_equity_initial", self.adj_equity_initial.len()),
            ("adj_equity_maint", self.adj_equity_maint.len()),
            ("im", self.im.len()),
            ("mm", self.mm.len()),
            ("free_collateral", self.free_collateral.len()),
            ("margin_ratio", self.margin_ratio.len()),
            ("liquidatable", self.liquidatable.len()),
            ("bankrupt", self.bankrupt.len()),
        ];
        match lens.iter().find(|(_, l)| *l != n) {
            None => Ok(n),
            Some((name, l)) => {
                Err(CoreError::config(format!("out[{name}]"), format!("{l} rows where the book has {n} accounts")))
            }
        }
    }

    /// Writes one account's results at row `j`.
    #[inline]
    pub fn set(&mut self, j: usize, r: &AccountMargin) {
        self.equity[j] = r.equity;
        self.upnl[j] = r.upnl;
        self.adj_equity_initial[j] = r.adj_equity[0];
        self.adj_equity_maint[j] = r.adj_equity[1];
        self.im[j] = r.requirement[0];
        self.mm[j] = r.requirement[1];
        self.free_collateral[j] = r.free_collateral();
        self.margin_ratio[j] = r.margin_ratio();
        self.liquidatable[j] = r.liquidatable();
        self.bankrupt[j] = r.bankrupt();
    }

    /// The columns cut into consecutive chunks of `chunk` rows (the last one shorter).
    pub fn into_chunks(self, chunk: usize) -> Vec<MarginColumnsMut<'a>> {
        let mut out = Vec::with_capacity(self.equity.len().div_ceil(chunk));
        let mut rest = self;
        while !rest.equity.is_empty() {
            let k = chunk.min(rest.equity.len());
            let (head, tail) = rest.split_at(k);
            out.push(head);
            rest = tail;
        }
        out
    }

    fn split_at(self, k: usize) -> (MarginColumnsMut<'a>, MarginColumnsMut<'a>) {
        let (e0, e1) = self.equity.split_at_mut(k);
        let (u0, u1) = self.upnl.split_at_mut(k);
        let (ai0, ai1) = self.adj_equity_initial.split_at_mut(k);
        let (am0, am1) = self.adj_equity_maint.split_at_mut(k);
        let (i0, i1) = self.im.split_at_mut(k);
        let (m0, m1) = self.mm.split_at_mut(k);
        let (f0, f1) = self.free_collateral.split_at_mut(k);
        let (r0, r1) = self.margin_ratio.split_at_mut(k);
        let (l0, l1) = self.liquidatable.split_at_mut(k);
        let (b0, b1) = self.bankrupt.split_at_mut(k);
        (
            MarginColumnsMut {
                equity: e0,
                upnl: u0,
                adj_equity_initial: ai0,
                adj_equity_maint: am0,
                im: i0,
                mm: m0,
                free_collateral: f0,
                margin_ratio: r0,
                liquidatable: l0,
                bankrupt: b0,
            },
            MarginColumnsMut {
                equity: e1,
                upnl: u1,
                adj_equity_initial: ai1,
                adj_equity_maint: am1,
                im: i1,
                mm: m1,
                free_collateral: f1,
                margin_ratio: r1,
                liquidatable: l1,
                bankrupt: b1,
            },
        )
    }
}

/// Evaluates every account on the current rayon pool. Each account is computed alone, so
/// the results do not depend on the number of threads.
pub fn evaluate(book: &GroupedBook, ctx: &MarginContext<'_>) -> MarginColumns {
    let mut out = MarginColumns::zeroed(book.n_accounts());
    evaluate_into(book, ctx, out.as_mut()).expect("fresh columns have the book's length");
    out
}

/// [`evaluate`] into the caller's columns (one row per account; a `Config` error naming a
/// column of another length). The scalar kernel; [`crate::kernel`] adds the SIMD one.
pub fn evaluate_into(book: &GroupedBook, ctx: &MarginContext<'_>, out: MarginColumnsMut<'_>) -> Result<()> {
    out.len_checked(book.n_accounts())?;
    let lookup = PreparedLookup::new(ctx);
    columns_by_account_into(book, out, || (), |rows, _| evaluate_rows(rows, ctx, &lookup));
    Ok(())
}

/// Runs `account` on every account of the book in parallel chunks (each chunk with its own
/// scratch from `scratch`) and writes the results as columns. Every model's bulk path.
pub fn columns_by_account<S, F>(book: &GroupedBook, scratch: impl Fn() -> S + Sync, account: F) -> MarginColumns
where
    F: Fn(AccountRows<'_>, &mut S) -> AccountMargin + Sync,
{
    let mut out = MarginColumns::zeroed(book.n_accounts());
    columns_by_account_into(book, out.as_mut(), scratch, account);
    out
}

/// [`columns_by_account`] into the caller's columns (of the book's length).
pub fn columns_by_account_into<S, F>(
    book: &GroupedBook,
    out: MarginColumnsMut<'_>,
    scratch: impl Fn() -> S + Sync,
    account: F,
) where
    F: Fn(AccountRows<'_>, &mut S) -> AccountMargin + Sync,
{
    out.into_chunks(CHUNK).into_par_iter().enumerate().for_each(|(c, mut cols)| {
        let mut sc = scratch();
        for j in 0..cols.equity.len() {
            let r = account(book.account(c * CHUNK + j), &mut sc);
            cols.set(j, &r);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::Basis;

    fn universe() -> Universe {
        let mut btc = asset("BTC", 50_000.0);
        btc.weight = [0.9, 0.95];
        btc.liability_weight = [1.2, 1.1];
        let mut inv = perp("BTCUSD", "BTC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        inv.inverse = true;
        inv.contract_size = 100.0;
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(50_000.0, 0.01, 0.005), (f64::INFINITY, 0.02, 0.01)]);
        Universe::new(&[asset("USDT", 1.0), btc], &[lin, inv]).unwrap()
    }

    fn one_account(u: &Universe, bal: &[(u32, f64)], pos: &[(u32, f64, f64, f64)], marks: &[f64]) -> AccountMargin {
        let ba: Vec<i64> = vec![1; bal.len()];
        let bc: Vec<u32> = bal.iter().map(|b| b.0).collect();
        let bq: Vec<f64> = bal.iter().map(|b| b.1).collect();
        let pa: Vec<i64> = vec![1; pos.len()];
        let pc: Vec<u32> = pos.iter().map(|p| p.0).collect();
        let pq: Vec<f64> = pos.iter().map(|p| p.1).collect();
        let pe: Vec<f64> = pos.iter().map(|p| p.2).collect();
        let pi: Vec<f64> = pos.iter().map(|p| p.3).collect();
        let book = group(
            BalanceInput { account: &ba, code: &bc, qty: &bq },
            PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
            2,
            2,
        )
        .unwrap();
        let prices = Prices { asset: &[1.0, 50_000.0], mark: marks };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &[0, 1], market: &[0, 1] }).unwrap();
        evaluate_account(book.account(0), &ctx)
    }

    #[test]
    fn borrows_count_at_liability_weight_and_collateral_at_weight() {
        let u = universe();
        let m = one_account(&u, &[(0, 10_000.0), (1, -0.2)], &[], &[50_000.0, 50_000.0]);
        assert_eq!(m.equity, 0.0);
        assert_eq!(m.adj_equity, [10_000.0 - 10_000.0 * 1.2, 10_000.0 - 10_000.0 * 1.1]);
        let m = one_account(&u, &[(1, 1.0), (0, -10_000.0)], &[], &[50_000.0, 50_000.0]);
        assert_eq!(m.adj_equity, [50_000.0 * 0.9 - 10_000.0, 50_000.0 * 0.95 - 10_000.0]);
    }

    #[test]
    fn linear_requirement_uses_the_bracket_and_its_amount() {
        let u = universe();
        // 2 BTC at 50,000 = 100,000 notional, second bracket: 100,000 × 1% − 50,000 × 0.5% = 750
        let m = one_account(&u, &[(0, 10_000.0)], &[(0, 2.0, 49_000.0, 0.0)], &[50_000.0, 50_000.0]);
        assert_eq!(m.requirement[1], 750.0);
        assert_eq!(m.requirement[0], 100_000.0 * 0.02 - 50_000.0 * 0.01);
        assert_eq!(m.upnl, 2_000.0);
    }

    #[test]
    fn inverse_pnl_and_requirement_are_in_coin_converted_at_settle_price() {
        let u = universe();
        // long 1,000 × 100 USD from 40,000 to 50,000: 100,000 × (1/40,000 − 1/50,000) = 0.5 BTC
        let m = one_account(&u, &[], &[(1, 1_000.0, 40_000.0, 0.0)], &[50_000.0, 50_000.0]);
        assert!((m.upnl - 0.5 * 50_000.0).abs() < 1e-6);
        // notional 2 BTC × 1% = 0.02 BTC = 1,000 USD
        assert!((m.requirement[1] - 1_000.0).abs() < 1e-9);
    }

    #[test]
    fn isolated_positions_stay_outside_the_pool() {
        let u = universe();
        let m = one_account(&u, &[(0, 100.0)], &[(0, 1.0, 50_000.0, 200.0)], &[40_000.0, 50_000.0]);
        assert_eq!(m.requirement, [0.0, 0.0]);
        assert_eq!(m.adj_equity, [100.0, 100.0]);
        assert_eq!(m.equity, 100.0 + 200.0 - 10_000.0);
        assert!(m.isolated_liquidatable && m.liquidatable() && m.bankrupt());
    }

    #[test]
    fn exactly_at_maintenance_is_not_liquidatable() {
        let u = universe();
        // 1 BTC long at mark = entry: mm = 50,000 × 0.5% = 250; collateral exactly 250.
        let m = one_account(&u, &[(0, 250.0)], &[(0, 1.0, 50_000.0, 0.0)], &[50_000.0, 50_000.0]);
        assert_eq!(m.requirement[1], 250.0);
        assert_eq!(m.adj_equity[1], 250.0);
        assert!(!m.liquidatable());
        assert_eq!(m.margin_ratio(), 1.0);
    }

    #[test]
    fn margin_ratio_is_zero_without_requirement_and_infinite_when_exhausted() {
        let u = universe();
        assert_eq!(one_account(&u, &[(0, 5.0)], &[], &[50_000.0, 50_000.0]).margin_ratio(), 0.0);
        let m = one_account(&u, &[(0, -5.0)], &[(0, 1.0, 50_000.0, 0.0)], &[50_000.0, 50_000.0]);
        assert_eq!(m.margin_ratio(), f64::INFINITY);
    }

    /// One account of `u` at the universe's prices: balances (asset, qty), positions (market,
    /// qty, entry, isolated).
    fn at_reference(u: &Universe, bal: &[(u32, f64)], pos: &[(u32, f64, f64, f64)]) -> AccountMargin {
        let col = |f: fn(&(u32, f64, f64, f64)) -> f64| pos.iter().map(f).collect::<Vec<f64>>();
        let (pq, pe, pi) = (col(|p| p.1), col(|p| p.2), col(|p| p.3));
        let bc: Vec<u32> = bal.iter().map(|b| b.0).collect();
        let bq: Vec<f64> = bal.iter().map(|b| b.1).collect();
        let pc: Vec<u32> = pos.iter().map(|p| p.0).collect();
        let (ba, pa) = (vec![1i64; bal.len()], vec![1i64; pos.len()]);
        let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
        let book = group(
            BalanceInput { account: &ba, code: &bc, qty: &bq },
            PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
            na,
            nm,
        )
        .unwrap();
        let (ar, mr): (Vec<u32>, Vec<u32>) = ((0..na).collect(), (0..nm).collect());
        let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &ar, market: &mr }).unwrap();
        evaluate_account(book.account(0), &ctx)
    }

    #[test]
    fn size_scaled_rate_is_deribits_exactly() {
        // Deribit futures: IM 2 % + 0.5 % per 100 BTC: 25 BTC → 0.53125 BTC, 350 BTC → 13.125.
        let mut m = perp("BTC-PERPETUAL", "BTC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.015)]);
        (m.inverse, m.contract_size) = (true, 10.0);
        m.rules.shape = [Shape::SizeScaled; 2];
        m.rules.rate_slope = [0.00005; 2];
        let u = Universe::new(&[asset("BTC", 50_000.0)], &[m]).unwrap();
        for (btc, im) in [(25.0, 0.53125), (350.0, 13.125)] {
            let r = at_reference(&u, &[(0, 100.0)], &[(0, btc * 5_000.0, 50_000.0, 0.0)]);
            assert!((r.requirement[0] / 50_000.0 / im - 1.0).abs() < 1e-15, "{btc}");
        }
    }

    #[test]
    fn entry_basis_and_fee_reserve_give_bybits_inverse_maintenance() {
        // Bybit inverse cross: 0.5 BTC, long 10,000 × 1 USD at 8,000, MM 0.5 % of Qty/Entry,
        // taker fee 0.075 % at the bankruptcy price 1.00075 × 10,000 / (1.25 + 0.5).
        let mut m = perp("BTCUSD", "BTC", "BTC", 6_000.0, &[(f64::INFINITY, 0.01, 0.005)]);
        m.inverse = true;
        m.rules.maint_basis = Basis::Entry;
        m.rules.liquidation_fee = 0.00075;
        let u = Universe::new(&[asset("BTC", 6_000.0)], &[m]).unwrap();
        let r = at_reference(&u, &[(0, 0.5)], &[(0, 10_000.0, 8_000.0, 0.0)]);
        let bankruptcy = 1.00075 * 10_000.0 / 1.75;
        let want = (10_000.0 / 8_000.0 * 0.005 + 7.5 / bankruptcy) * 6_000.0;
        assert!((r.requirement[1] / want - 1.0).abs() < 1e-12, "{} vs {want}", r.requirement[1]);
        assert!((r.fee_reserve / (7.5 / bankruptcy * 6_000.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn two_sided_assets_hold_at_the_bid_and_owe_at_the_ask() {
        // Binance Multi-Assets: 200 USDT × 0.9801 + 220 USDC; IM 100 USDT × 0.99495 + 240.
        let mut usdt = asset("USDT", 0.99);
        usdt.bid_ask = Some((0.9801, 0.99495));
        let lin = perp("BTCUSDT", "USDT", "BTC", 20_000.0, &[(f64::INFINITY, 0.01, 0.008)]);
        let eth = perp("ETHUSDC", "USDC", "ETH", 600.0, &[(f64::INFINITY, 0.02, 0.01)]);
        let u = Universe::new(&[usdt, asset("USDC", 1.0)], &[lin, eth]).unwrap();
        let r = at_reference(&u, &[(0, 200.0), (1, 220.0)], &[(0, 0.5, 20_000.0, 0.0), (1, 20.0, 600.0, 0.0)]);
        assert!((r.adj_equity[0] - 416.02).abs() < 1e-9);
        assert!((r.free_collateral() - 76.525).abs() < 1e-9);
        assert!((r.requirement[1] - 199.596).abs() < 1e-9);
    }

    #[test]
    fn prices_are_checked_by_symbol() {
        let u = universe();
        let book = GroupedBook { balances: Default::default(), positions: Default::default(), ..Default::default() };
        let bad = Prices { asset: &[1.0, f64::NAN], mark: &[1.0, 1.0] };
        let e = MarginContext::new(&u, &book, bad, Remap { asset: &[], market: &[] }).unwrap_err();
        assert_eq!(e.to_string(), "asset prices[BTC]: NaN must be finite and ≥ 0");
        let bad = Prices { asset: &[1.0, 1.0], mark: &[1.0, 0.0] };
        let e = MarginContext::new(&u, &book, bad, Remap { asset: &[], market: &[] }).unwrap_err();
        assert_eq!(e.to_string(), "marks[BTCUSD]: 0 must be finite and > 0");
    }
}
