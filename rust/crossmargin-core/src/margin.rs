//! The standard cross-margin model (docs/MODEL.md "Standard cross margin"): per account equity, weighted collateral,
//! borrow liabilities, uPnL and bracket requirements of cross positions, isolated
//! positions beside the pool.

use rayon::prelude::*;

use crate::book::{AccountRows, GroupedBook};
use crate::brackets::BracketTable;
use crate::error::{CoreError, Result};
use crate::imf;
use crate::limits::{is_price, MAX_PRICE, MIN_PRICE};
use crate::memory::column;
use crate::mode::PerMode;
use crate::options;
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

/// A perp's or future's numbers: notional and uPnL by the market's [`Contract`] (settle
/// units, converted to USD at the settle price); requirement: the bracket requirement on
/// settle-asset notional, at least the Drift-style size premium on the first bracket's rate.
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

/// [`position_margin`] on a market's packed constants.
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
        MarketCall { index: k, mark: self.prices.mark[k], settle_price: self.prices.asset[hot.settle as usize], hot }
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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AccountMargin {
    pub equity: f64,
    pub upnl: f64,
    pub adj_equity: PerMode<f64>,
    pub requirement: PerMode<f64>,
    pub isolated_liquidatable: bool,
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
    let u = ctx.universe;
    let mut m = AccountMargin::default();

    for (&code, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        let AssetCall { index: i, price, hot: a } = lookup.asset(code);
        let value = qty * price;
        m.equity += value;
        let mut collateral = [0.0; 2];
        if qty > 0.0 {
            let discounted = if a.has_tiers { u.assets.haircuts.discounted(i, value) } else { value };
            // imf::discounted_weight, with the cap computed once for both modes
            let cap = if a.imf_factor == 0.0 { f64::INFINITY } else { imf::discount_cap(a.imf_factor, qty) };
            let mut weight = a.weight;
            if a.scaled_initial {
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
                *c = value * w;
                *adj += *c;
            }
        }
        sink.balance(&BalanceLine { asset: i, qty, price, value, collateral });
    }

    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
    for (((&code, &qty), &entry), &isolated) in positions {
        let MarketCall { index: k, mark, settle_price, hot: h } = lookup.market(code);
        if h.is_option() {
            add_option(&mut m, ctx, k, qty, entry, isolated, settle_price, sink);
            continue;
        }
        let p = position_margin_hot(&u.markets.brackets, &h, qty, entry, mark, settle_price);
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
            line.isolated_below_maintenance = margin + p.upnl < p.requirement[1];
            if line.isolated_below_maintenance {
                m.isolated_liquidatable = true;
            }
        } else {
            for mode in 0..2 {
                line.collateral[mode] = if h.upnl_rule {
                    let (f, cap) = (u.markets.upnl_imf_factor[k], u.markets.upnl_cap_initial[k]);
                    imf::upnl_collateral(p.upnl, settle_price, h.upnl_weight[mode], f, cap, mode)
                } else {
                    p.upnl.min(0.0) + p.upnl.max(0.0) * h.upnl_weight[mode]
                };
                m.adj_equity[mode] += line.collateral[mode];
                m.requirement[mode] += p.requirement[mode];
            }
        }
        sink.position(&line);
    }
    m
}

/// Where an explanation receives the kernel's per-row numbers; `()` ignores them.
pub trait RowSink {
    #[inline]
    fn balance(&mut self, _line: &BalanceLine) {}
    #[inline]
    fn position(&mut self, _line: &PositionLine) {}
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
            line.collateral[mode] = o.value;
            m.adj_equity[mode] += o.value;
            m.requirement[mode] += o.requirement[mode];
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

/// Accounts per parallel task: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 2048;

/// Evaluates every account on the current rayon pool. Each account is computed alone, so
/// the results do not depend on the number of threads.
pub fn evaluate(book: &GroupedBook, ctx: &MarginContext<'_>) -> MarginColumns {
    let lookup = PreparedLookup::new(ctx);
    columns_by_account(book, || (), |rows, _| evaluate_rows(rows, ctx, &lookup))
}

/// Runs `account` on every account of the book in parallel chunks (each chunk with its own
/// scratch from `scratch`) and writes the results as columns. Every model's bulk path.
pub fn columns_by_account<S, F>(book: &GroupedBook, scratch: impl Fn() -> S + Sync, account: F) -> MarginColumns
where
    F: Fn(AccountRows<'_>, &mut S) -> AccountMargin + Sync,
{
    let n = book.n_accounts();
    let mut out = MarginColumns {
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
    };
    (
        out.equity.par_chunks_mut(CHUNK),
        out.upnl.par_chunks_mut(CHUNK),
        out.adj_equity_initial.par_chunks_mut(CHUNK),
        out.adj_equity_maint.par_chunks_mut(CHUNK),
        out.im.par_chunks_mut(CHUNK),
        out.mm.par_chunks_mut(CHUNK),
        out.free_collateral.par_chunks_mut(CHUNK),
        out.margin_ratio.par_chunks_mut(CHUNK),
        out.liquidatable.par_chunks_mut(CHUNK),
        out.bankrupt.par_chunks_mut(CHUNK),
    )
        .into_par_iter()
        .enumerate()
        .for_each(|(c, (eq, up, adj_i, adj_m, im, mm, free, ratio, liq, bankrupt))| {
            let mut sc = scratch();
            for j in 0..eq.len() {
                let r = account(book.account(c * CHUNK + j), &mut sc);
                eq[j] = r.equity;
                up[j] = r.upnl;
                adj_i[j] = r.adj_equity[0];
                adj_m[j] = r.adj_equity[1];
                im[j] = r.requirement[0];
                mm[j] = r.requirement[1];
                free[j] = r.free_collateral();
                ratio[j] = r.margin_ratio();
                liq[j] = r.liquidatable();
                bankrupt[j] = r.bankrupt();
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::universe::fixtures::{asset, perp};

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
