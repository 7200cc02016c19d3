//! Liquidation prices (docs/MODEL.md "Liquidation prices"): for every position, the mark of its market at which its
//! account's cross pool (adj_equity_maint = mm) or, for an isolated position, the position
//! itself (margin + uPnL = its mm) reaches maintenance, everything else fixed.
//!
//! "Everything else fixed" has two readings ([`LiqMove`]):
//! - [`LiqMove::Underlying`] (the default): the position's *underlying* moves. Every perp and
//!   future mark on that underlying, the asset of the same symbol (a BTC balance backing a
//!   BTC perp) and with them the underlying's price (options' forward) scale by one factor `s`; the
//!   price reported is the position's mark × s. All positions of an account on one
//!   underlying therefore liquidate at the same move.
//! - [`LiqMove::Mark`]: only the position's own mark moves (Binance's and Bybit's formulas,
//!   which hold the wallet's coin price fixed).
//!
//! Solving. Let g(s) = adj_equity_maint − mm of the account (or margin + uPnL − mm of the
//! isolated position) at the moved prices, computed by [`evaluate_account`] /
//! [`position_margin`], the one source of each formula. Where every moving row's
//! contribution is linear in s (or 1/s) between breakpoints — linear perps and futures,
//! inverse ones, balances of the moving asset with haircut tiers, entry-basis maintenance —
//! [`piecewise`] walks the breakpoints with one piece index per row and solves the segment's
//! root in closed form, checked by the model's per-row formulas at the root (the rows that do
//! not move are the constant, from one evaluation of the account at s = 1); elsewhere
//! (conditions in [`piecewise`]) the full-model search below runs. g is smooth between breakpoints:
//! bracket bounds (the rate changes with notional), haircut tier bounds of the moving asset,
//! entry prices (positive uPnL has its own weight). Within a segment g is linear in `s` for
//! linear contracts (and for inverse contracts settled in the moving coin); for an inverse
//! contract whose settle price stays fixed it is linear in 1/s, so monotone. The search walks
//! the breakpoints outward from s = 1, in both directions, until g changes sign; inside that
//! segment it solves by false position (Illinois), which lands on the exact root in one step
//! where g is linear and otherwise converges to 1e-12 relative, with bisection as a guard.
//! Where g can turn inside a segment (a linear contract settled in the moving coin, whose USD
//! uPnL is quadratic in s; an inverse contract whose coin stays put; options), a geometric
//! grid of ratio 1.01 is added to the breakpoints, so the sign change found is the nearest
//! to within 1 % (two crossings closer together than that can be missed).
//!
//! The liquidation price is the sign change nearest the current mark (in log distance, so a
//! halving and a doubling are equally far), at most a million-fold move either way
//! ([`S_MIN`], [`S_MAX`]); NaN when none exists (a fully collateralised long), for a zero
//! position, and for option positions (an option's mark is not the price an account's
//! liquidation is stated in; options still move with their underlying inside g). For a
//! position already below maintenance the same rule gives the nearest price at which it is
//! back at maintenance, the number the exchanges' closed-form formulas also give.

mod base;
mod piecewise;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::book::{AccountRows, GroupedBook};
use crate::margin::{evaluate_account, fee_reserve, position_margin, AccountMargin, MarginContext, Prices};
use crate::universe::{MarketKind, Universe};

/// The smallest and largest price factor searched: a million-fold move either way.
pub const S_MIN: f64 = 1e-6;
pub const S_MAX: f64 = 1e6;
/// Convergence: |g| ≤ REL_TOL × (|adj_equity_maint| + |mm|), or the bracket of the root
/// narrower than REL_TOL × s.
const REL_TOL: f64 = 1e-12;
const MAX_ITER: usize = 200;
/// Accounts per parallel task.
const CHUNK: usize = 512;

/// Which prices move when a position's liquidation price is sought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiqMove {
    /// Everything on the position's underlying moves together, proportionally.
    Underlying,
    /// Only the position's own mark moves.
    Mark,
}

/// One row per position, in the grouped book's order (accounts ascending; within an account
/// by market code, then input row).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiqColumns {
    pub account: Vec<i64>,
    /// Universe index of the market.
    pub market: Vec<u32>,
    /// The position's row in the input positions table (int64, the public column's type).
    pub row: Vec<i64>,
    /// Position side per row (a hedge leg has a liquidation price of its own).
    pub side: Vec<u8>,
    pub liq_price: Vec<f64>,
    /// The price at which the pool is worth nothing net of its closing-fee reserves.
    pub bankruptcy_price: Vec<f64>,
}

/// Which boundary a search looks for: maintenance (the liquidation price) or zero value net
/// of the closing-fee reserves (the bankruptcy price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boundary {
    Maintenance = 0,
    Bankruptcy = 1,
}

/// What one search moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    Market(usize),
    Underlying(usize),
}

/// Per-universe lookups, built once per call.
struct Moves {
    /// Perp and future markets of each underlying.
    markets_of: Vec<Vec<usize>>,
    /// The asset whose symbol is the underlying's name, if any.
    asset_of: Vec<Option<usize>>,
}

impl Moves {
    fn new(u: &Universe) -> Self {
        let n = u.underlyings.len();
        let mut markets_of = vec![vec![]; n];
        for k in 0..u.n_markets() {
            if u.markets.kind[k] != MarketKind::Option {
                markets_of[u.markets.underlying[k] as usize].push(k);
            }
        }
        let asset_of = u.underlyings.iter().map(|name| u.assets.symbol.iter().position(|s| s == name)).collect();
        Moves { markets_of, asset_of }
    }
}

/// Thread-local price vectors, moved in place and restored after each search.
struct Scratch {
    asset: Vec<f64>,
    mark: Vec<f64>,
    breaks: Vec<f64>,
    /// The current search's account evaluations by factor ([`cross_gap`]).
    memo: Vec<(u64, AccountMargin)>,
    /// The moving terms of the current closed-form search ([`piecewise`]).
    terms: piecewise::Terms,
    /// The current account's rows at s = 1 ([`base`]).
    base: base::Base,
}

impl Scratch {
    fn new(ctx: &MarginContext<'_>) -> Self {
        Scratch {
            asset: ctx.prices.asset.to_vec(),
            mark: ctx.prices.mark.to_vec(),
            breaks: Vec::with_capacity(64),
            memo: Vec::with_capacity(64),
            terms: piecewise::Terms::default(),
            base: base::Base::default(),
        }
    }

    /// Sets the prices a driver moves to base × s (s = 1 restores them exactly).
    fn set(&mut self, ctx: &MarginContext<'_>, moves: &Moves, d: Driver, s: f64) {
        match d {
            Driver::Market(k) => self.mark[k] = ctx.prices.mark[k] * s,
            Driver::Underlying(u) => {
                for &k in &moves.markets_of[u] {
                    self.mark[k] = ctx.prices.mark[k] * s;
                }
                if let Some(i) = moves.asset_of[u] {
                    self.asset[i] = ctx.prices.asset[i] * s;
                }
            }
        }
    }

    fn context<'s>(&'s self, ctx: &MarginContext<'s>) -> MarginContext<'s> {
        MarginContext { prices: Prices { asset: &self.asset, mark: &self.mark }, ..*ctx }
    }
}

fn moves_market(u: &Universe, moves: &Moves, d: Driver, k: usize) -> bool {
    match d {
        Driver::Market(m) => m == k,
        Driver::Underlying(x) => u.markets.underlying[k] as usize == x && moves.markets_of[x].contains(&k),
    }
}

/// Factors s at which a position's requirement or uPnL weight changes: its bracket bounds
/// (settle-asset notional, [`crate::contract::Contract::factor_at_notional`]) and its entry price.
fn position_breaks(u: &Universe, k: usize, qty: f64, entry: f64, mark: f64, out: &mut Vec<f64>) {
    let c = u.contract(k);
    if c.size_of(qty) == 0.0 {
        return;
    }
    out.push(entry / mark);
    for (bound, ..) in u.markets.brackets.rows(k) {
        if bound.is_finite() {
            out.push(c.factor_at_notional(qty, mark, bound));
        }
    }
}

/// Factors at which the moving asset's haircut tier changes (value = qty × price × s).
fn asset_breaks(u: &Universe, i: usize, qty: f64, price: f64, out: &mut Vec<f64>) {
    if qty > 0.0 && price > 0.0 {
        for (bound, _) in u.assets.haircuts.rows(i) {
            if bound.is_finite() {
                out.push(bound / (qty * price));
            }
        }
    }
}

/// The geometric grid 1.01^±k (k = 1, 2, …) over [S_MIN, S_MAX]: extra breakpoints where g
/// may be non-monotone inside a segment, so the first sign change found is the nearest one
/// to within 1 %.
pub const GRID_RATIO: f64 = 1.01;

fn grid_breaks(out: &mut Vec<f64>) {
    let mut up = GRID_RATIO;
    while up < S_MAX {
        out.push(up);
        out.push(1.0 / up);
        up *= GRID_RATIO;
    }
}

/// Whether g can turn inside a segment when `d` moves: a linear contract settled in the
/// moving coin (uPnL × price: quadratic in s), an inverse contract on a moving market whose
/// settle price stays put under the underlying rule (terms in s and 1/s), or an option on the
/// moving underlying. Elsewhere g is linear in s, or in 1/s, between breakpoints.
fn may_turn(u: &Universe, moves: &Moves, d: Driver, k: usize) -> bool {
    let mt = &u.markets;
    let und = mt.underlying[k] as usize;
    // A size-scaled requirement is quadratic in the notional; a fee reserve moves with the pool.
    let h = &u.market_hot[k];
    if (h.scaled || h.liquidation_fee > 0.0) && moves_market(u, moves, d, k) {
        return true;
    }
    match d {
        Driver::Market(m) => mt.kind[k] == MarketKind::Option && und == mt.underlying[m] as usize,
        Driver::Underlying(x) => {
            if und != x {
                return false;
            }
            if mt.kind[k] == MarketKind::Option {
                return true;
            }
            let settle_moves = moves.asset_of[x] == Some(mt.settle[k] as usize);
            mt.inverse[k] != settle_moves
        }
    }
}

/// g of an account's cross pool at factor s: (adj_equity_maint − mm, scale). The account's
/// evaluation at each s is kept in `memo` (factor bits → numbers), so the bankruptcy search
/// reuses the points the maintenance search walked (the same numbers: one formula, the same
/// prices).
#[allow(clippy::too_many_arguments)]
fn cross_gap(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    moves: &Moves,
    d: Driver,
    scr: &mut Scratch,
    memo: &mut Vec<(u64, AccountMargin)>,
    b: Boundary,
    s: f64,
) -> (f64, f64) {
    let key = s.to_bits();
    let m = match memo.iter().find(|x| x.0 == key) {
        Some(&(_, m)) => m,
        None => {
            scr.set(ctx, moves, d, s);
            let m = evaluate_account(rows, &scr.context(ctx));
            memo.push((key, m));
            m
        }
    };
    let req = match b {
        Boundary::Maintenance => m.requirement[1],
        Boundary::Bankruptcy => m.fee_reserve,
    };
    (m.adj_equity[1] - req, m.adj_equity[1].abs() + req.abs())
}

/// g of one isolated position at factor s: (margin + uPnL − mm, scale).
#[allow(clippy::too_many_arguments)]
fn isolated_gap(
    ctx: &MarginContext<'_>,
    moves: &Moves,
    d: Driver,
    scr: &mut Scratch,
    k: usize,
    qty: f64,
    entry: f64,
    margin: f64,
    b: Boundary,
    s: f64,
) -> (f64, f64) {
    scr.set(ctx, moves, d, s);
    let settle = scr.asset[ctx.universe.markets.settle[k] as usize];
    isolated_gaps(ctx.universe, k, qty, entry, margin, scr.mark[k], settle)[b as usize]
}

/// [`isolated_gap`] of both boundaries (maintenance, bankruptcy) at a mark and settle price.
#[inline]
fn isolated_gaps(u: &Universe, k: usize, qty: f64, entry: f64, margin: f64, mark: f64, settle: f64) -> [(f64, f64); 2] {
    let p = position_margin(u, k, qty, entry, mark, 1.0);
    let reserve = fee_reserve(&u.market_hot[k], qty, mark, margin + p.upnl);
    [p.requirement[1] + reserve, reserve]
        .map(|req| ((margin + p.upnl - req) * settle, (margin.abs() + p.upnl.abs() + req.abs()) * settle))
}

/// The factor nearest 1 (log distance) in [S_MIN, S_MAX] at which g changes sign, walking the
/// breakpoints outward in both directions; NaN if g keeps its sign.
pub fn nearest_crossing(breaks: &mut Vec<f64>, mut g: impl FnMut(f64) -> (f64, f64)) -> f64 {
    breaks.retain(|&b| b.is_finite() && b > S_MIN && b < S_MAX && b != 1.0);
    breaks.sort_unstable_by(f64::total_cmp);
    breaks.dedup();
    let (g1, sc1) = g(1.0);
    if g1.is_nan() {
        return f64::NAN;
    }
    if g1 >= 0.0 && g1 <= REL_TOL * sc1 {
        // Exactly at maintenance: the current mark is the liquidation price.
        let (gd, _) = g(1.0 - 1e-9);
        let (gu, _) = g(1.0 + 1e-9);
        if gd < 0.0 || gu < 0.0 {
            return 1.0;
        }
    }
    let safe = g1 >= 0.0;
    let split = breaks.partition_point(|&b| b < 1.0);
    let mut best = f64::NAN;
    let (mut a, mut ga) = (1.0, g1);
    for &p in breaks[..split].iter().rev().chain(std::iter::once(&S_MIN)) {
        let (gp, _) = g(p);
        if (gp >= 0.0) != safe {
            best = solve(&mut g, p, gp, a, ga);
            break;
        }
        (a, ga) = (p, gp);
    }
    // Upward, no farther than the root found downward.
    let limit = if best.is_nan() { S_MAX } else { 1.0 / best };
    let (mut a, mut ga) = (1.0, g1);
    for &p in breaks[split..].iter().take_while(|&&b| b < limit).chain(std::iter::once(&limit)) {
        let (gp, _) = g(p);
        if (gp >= 0.0) != safe {
            let r = solve(&mut g, a, ga, p, gp);
            if best.is_nan() || r.ln() < -best.ln() {
                best = r;
            }
            break;
        }
        (a, ga) = (p, gp);
    }
    best
}

/// The root of g between a and b (g(a), g(b) on different sides of 0) by false position with
/// the Illinois modification, bisecting when the bracket stops shrinking. Returns the point
/// where |g| ≤ REL_TOL × scale, else the bracket end on the g ≥ 0 (safe) side.
fn solve(g: &mut impl FnMut(f64) -> (f64, f64), a: f64, ga: f64, b: f64, gb: f64) -> f64 {
    let (mut a, mut ga, mut b, gb) = if a < b { (a, ga, b, gb) } else { (b, gb, a, ga) };
    let (mut fa, mut fb) = (ga, gb); // the (possibly halved) values false position uses
    let mut last_side = 0i8;
    let mut width = b - a;
    let mut stalls = 0;
    for _ in 0..MAX_ITER {
        let mut t = (a * fb - b * fa) / (fb - fa);
        if stalls >= 3 || !(t > a && t < b) {
            // Bisect, geometrically when the bracket spans orders of magnitude.
            t = if b > 4.0 * a && a > 0.0 { (a * b).sqrt() } else { 0.5 * (a + b) };
            stalls = 0;
        }
        let (gt, sc) = g(t);
        if gt.abs() <= REL_TOL * sc {
            return t;
        }
        if (gt >= 0.0) == (ga >= 0.0) {
            (a, ga, fa) = (t, gt, gt);
            if last_side == -1 {
                fb *= 0.5;
            }
            last_side = -1;
        } else {
            (b, fb) = (t, gt);
            if last_side == 1 {
                fa *= 0.5;
            }
            last_side = 1;
        }
        if b - a <= REL_TOL * b {
            break;
        }
        if b - a > 0.5 * width {
            stalls += 1;
        } else {
            width = b - a;
            stalls = 0;
        }
    }
    if ga >= 0.0 {
        a
    } else {
        b
    }
}

/// g and its scale for boundary `b` from an account's evaluation ([`cross_gap`]'s numbers).
#[inline]
fn pool_gap(m: &AccountMargin, b: Boundary) -> (f64, f64) {
    let req = match b {
        Boundary::Maintenance => m.requirement[1],
        Boundary::Bankruptcy => m.fee_reserve,
    };
    (m.adj_equity[1] - req, m.adj_equity[1].abs() + req.abs())
}

/// Whether g is 0 to the search's tolerance: |g| ≤ REL_TOL × scale.
#[inline]
fn confirmed((g, scale): (f64, f64)) -> bool {
    g.abs() <= REL_TOL * scale
}

/// The closed-form roots (maintenance, bankruptcy) of g = `g1` + (moving rows at s − at 1),
/// `g1` the full model's numbers at s = 1 per boundary. Each root is checked by the model's
/// own per-row formulas at it ([`piecewise::Terms::exact`]): g there is 0 to REL_TOL of the
/// gross of the terms it nets (rounding is a few ulps of that; at the bankruptcy price the pool
/// is itself 0, so its own size is no scale). `None` where g(1) is at a boundary (the "exactly
/// at maintenance" rule), the walk cannot place a root or a root is not confirmed: the
/// full-model search runs instead.
fn closed_form_roots(
    terms: &mut piecewise::Terms,
    u: &Universe,
    tables: &piecewise::Tables,
    basis: piecewise::Basis,
    g1: [(f64, f64); 2],
) -> Option<(f64, f64)> {
    let open = |x: (f64, f64)| !x.0.is_nan() && !confirmed(x);
    if !open(g1[0]) {
        return None;
    }
    // Both gaps from one sweep each way; the bankruptcy gap's g(1) is checked only where its
    // root is needed.
    let [maint, bank] = terms.nearest(tables, basis, [g1[0].0, g1[1].0], [true, open(g1[1])]);
    let maint = maint?;
    let bank = if g1[0].0 >= 0.0 && maint.0.is_nan() {
        // Safe at maintenance everywhere: the pool (g at bankruptcy ≥ g at maintenance,
        // requirements being ≥ 0 and no fee reserve here) never reaches 0 either.
        (f64::NAN, 0.0)
    } else {
        bank?
    };
    let both = [maint, bank];
    if both.iter().all(|x| x.0.is_nan()) {
        return Some((f64::NAN, f64::NAN));
    }
    // The constant part is g(1) less the moving rows at 1, by the same formulas. The gross:
    // the line's terms (a uPnL nets size·M·s against size·e), the rows' values at s and at 1.
    let at1 = terms.exact_at_one(u, tables);
    for i in 0..2 {
        let (s, line) = both[i];
        if !s.is_nan() {
            let (at1, gross1) = at1[i];
            let c = g1[i].0 - at1;
            let (at, gross) = terms.exact(u, tables, s, i == 0);
            if (c + at).abs() > REL_TOL * (c.abs() + line.max(gross).max(gross1)) {
                return None;
            }
        }
    }
    Some((both[0].0, both[1].0))
}

/// The closed-form search of a cross pool ([`piecewise`]) under driver `d`, `base` the
/// account at the call's prices (its rows at s = 1 in `scr.base` when `rows_at_one`); `None`:
/// search with the full model.
#[allow(clippy::too_many_arguments)]
fn cross_closed_form(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    moves: &Moves,
    tables: &piecewise::Tables,
    d: Driver,
    scr: &mut Scratch,
    base: &AccountMargin,
    rows_at_one: bool,
) -> Option<(f64, f64)> {
    let g1 = [pool_gap(base, Boundary::Maintenance), pool_gap(base, Boundary::Bankruptcy)];
    // Borrowed field by field (taking the terms out of the scratch and back is two copies of
    // the struct, each a call to memcpy).
    let (terms, at_one) = (&mut scr.terms, rows_at_one.then_some(&scr.base));
    piecewise::cross_terms(rows, ctx, moves, tables, d, at_one, terms)
        .and_then(|basis| closed_form_roots(terms, ctx.universe, tables, basis, g1))
}

/// The closed-form search of an isolated position (see [`cross_closed_form`]).
#[allow(clippy::too_many_arguments)]
fn isolated_closed_form(
    ctx: &MarginContext<'_>,
    moves: &Moves,
    tables: &piecewise::Tables,
    d: Driver,
    scr: &mut Scratch,
    k: usize,
    qty: f64,
    entry: f64,
    margin: f64,
) -> Option<(f64, f64)> {
    let terms = &mut scr.terms;
    piecewise::isolated_terms(ctx, moves, tables, d, k, qty, entry, margin, terms).and_then(|basis| {
        // g at s = 1 is at the call's own prices (the scratch's, moved by 1, are the same bits).
        let u = ctx.universe;
        let settle = ctx.prices.asset[u.markets.settle[k] as usize];
        let g1 = isolated_gaps(u, k, qty, entry, margin, ctx.prices.mark[k], settle);
        closed_form_roots(terms, u, tables, basis, g1)
    })
}

/// Liquidation and bankruptcy prices of one account's positions, written to `liq` and `bank`
/// (one each per position; every row is written).
fn account_prices(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    moves: &Moves,
    tables: Option<&piecewise::Tables>,
    how: LiqMove,
    scr: &mut Scratch,
    (liq, bank): (&mut [MaybeUninit<f64>], &mut [MaybeUninit<f64>]),
) {
    let u = ctx.universe;
    // The account at the call's prices: g(1) of every cross search, and whether its rows'
    // numbers at s = 1 are in `scr.base`.
    let mut base: Option<(AccountMargin, bool)> = None;
    // Cross roots already found for a driver of this account (all positions on one
    // underlying share one root under LiqMove::Underlying).
    let mut solved: [(Option<Driver>, (f64, f64)); 4] = [(None, (f64::NAN, f64::NAN)); 4];
    let mut n_solved = 0;
    for j in 0..liq.len() {
        let k = ctx.remap.market[rows.pos_code[j] as usize] as usize;
        let (qty, entry, iso) = (rows.pos_qty[j], rows.pos_entry[j], rows.pos_isolated[j]);
        if qty == 0.0 || u.markets.kind[k] == MarketKind::Option {
            liq[j].write(f64::NAN);
            bank[j].write(f64::NAN);
            continue;
        }
        let d = match how {
            LiqMove::Mark => Driver::Market(k),
            LiqMove::Underlying => Driver::Underlying(u.markets.underlying[k] as usize),
        };
        let s = if iso > 0.0 {
            let closed = tables.and_then(|t| isolated_closed_form(ctx, moves, t, d, scr, k, qty, entry, iso));
            closed.unwrap_or_else(|| {
                let s = isolated_search(ctx, moves, d, scr, k, qty, entry, iso);
                scr.set(ctx, moves, d, 1.0);
                s
            })
        } else if let Some(&(_, s)) = solved[..n_solved].iter().find(|x| x.0 == Some(d)) {
            s
        } else {
            let closed = tables.and_then(|t| {
                let (m, rows_at_one) = *base.get_or_insert_with(|| account_base(rows, ctx, t, &mut scr.base));
                cross_closed_form(rows, ctx, moves, t, d, scr, &m, rows_at_one)
            });
            let s = closed.unwrap_or_else(|| cross_search(rows, ctx, moves, d, scr));
            if n_solved < solved.len() {
                solved[n_solved] = (Some(d), s);
                n_solved += 1;
            }
            s
        };
        // (The searches leave the scratch prices as they found them.)
        let mark = ctx.prices.mark[k];
        liq[j].write(mark * s.0);
        bank[j].write(mark * s.1);
    }
}

/// The account at the call's prices as [`evaluate_account`] gives it (the maintenance numbers
/// [`pool_gap`] reads): from its rows at s = 1 ([`base::Base`], then also kept for the
/// searches: true) where they apply, else by `evaluate_account` (false).
fn account_base(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    tables: &piecewise::Tables,
    base: &mut base::Base,
) -> (AccountMargin, bool) {
    if base.fill(rows, ctx, tables) {
        let m = AccountMargin { adj_equity: [0.0, base.adj], requirement: [0.0, base.req], ..AccountMargin::default() };
        (m, true)
    } else {
        (evaluate_account(rows, ctx), false)
    }
}

/// The search with the full model of an isolated position (breakpoints, false position).
#[allow(clippy::too_many_arguments)]
fn isolated_search(
    ctx: &MarginContext<'_>,
    moves: &Moves,
    d: Driver,
    scr: &mut Scratch,
    k: usize,
    qty: f64,
    entry: f64,
    iso: f64,
) -> (f64, f64) {
    let u = ctx.universe;
    let mut breaks = std::mem::take(&mut scr.breaks);
    breaks.clear();
    position_breaks(u, k, qty, entry, ctx.prices.mark[k], &mut breaks);
    if may_turn(u, moves, d, k) {
        grid_breaks(&mut breaks);
    }
    let mut both = [f64::NAN; 2];
    for (x, b) in both.iter_mut().zip([Boundary::Maintenance, Boundary::Bankruptcy]) {
        let mut bk = breaks.clone();
        *x = nearest_crossing(&mut bk, |s| isolated_gap(ctx, moves, d, scr, k, qty, entry, iso, b, s));
    }
    scr.breaks = breaks;
    (both[0], both[1])
}

/// The search with the full model of an account's cross pool under driver `d`: breakpoints
/// walked outward, false position in the segment where g changes sign.
fn cross_search(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    moves: &Moves,
    d: Driver,
    scr: &mut Scratch,
) -> (f64, f64) {
    let u = ctx.universe;
    let mut breaks = std::mem::take(&mut scr.breaks);
    breaks.clear();
    let mut turns = false;
    for i in 0..rows.pos_code.len() {
        let m = ctx.remap.market[rows.pos_code[i] as usize] as usize;
        if rows.pos_isolated[i] <= 0.0 && rows.pos_qty[i] != 0.0 {
            if moves_market(u, moves, d, m) {
                position_breaks(u, m, rows.pos_qty[i], rows.pos_entry[i], ctx.prices.mark[m], &mut breaks);
            }
            turns |= may_turn(u, moves, d, m);
        }
    }
    if turns {
        grid_breaks(&mut breaks);
    }
    if let Driver::Underlying(x) = d {
        if let Some(a) = moves.asset_of[x] {
            for (&code, &q) in rows.bal_code.iter().zip(rows.bal_qty) {
                if ctx.remap.asset[code as usize] as usize == a {
                    asset_breaks(u, a, q, ctx.prices.asset[a], &mut breaks);
                }
            }
        }
    }
    let mut both = [f64::NAN; 2];
    let mut memo = std::mem::take(&mut scr.memo);
    memo.clear();
    for (x, b) in both.iter_mut().zip([Boundary::Maintenance, Boundary::Bankruptcy]) {
        let mut bk = breaks.clone();
        *x = nearest_crossing(&mut bk, |s| cross_gap(rows, ctx, moves, d, scr, &mut memo, b, s));
    }
    scr.memo = memo;
    scr.breaks = breaks;
    scr.set(ctx, moves, d, 1.0);
    (both[0], both[1])
}

/// Liquidation prices of every position, in parallel over accounts. Each account is solved
/// alone, so results do not depend on the number of threads.
pub fn liquidation_prices(book: &GroupedBook, ctx: &MarginContext<'_>, how: LiqMove) -> LiqColumns {
    let n = book.n_accounts();
    let offsets = &book.positions.offsets;
    let n_pos = book.positions.code.len();
    let moves = Moves::new(ctx.universe);
    // `CROSSMARGIN_LIQ_CLOSED_FORM=0` searches every root with the full model (for
    // comparisons with the closed form; docs/MODEL.md "Search").
    let closed_form = std::env::var("CROSSMARGIN_LIQ_CLOSED_FORM").map_or(true, |v| v != "0");
    let tables = closed_form.then(|| piecewise::Tables::new(ctx.universe));
    // The columns are left uninitialised and each task writes its own rows, in parallel:
    // zeroed ones cost a serial memset of ~36 bytes a position where the allocator reuses
    // memory (or the kernel's page clearing where it maps fresh), all of it overwritten.
    let mut account: Vec<i64> = Vec::with_capacity(n_pos);
    let mut market: Vec<u32> = Vec::with_capacity(n_pos);
    let mut row: Vec<i64> = Vec::with_capacity(n_pos);
    let mut liq_price: Vec<f64> = Vec::with_capacity(n_pos);
    let mut bankruptcy_price: Vec<f64> = Vec::with_capacity(n_pos);
    let bounds: Vec<usize> = (0..n).step_by(CHUNK).chain(std::iter::once(n)).collect();
    // The parts tile the rows 0..n_pos: the first account's rows start at 0, the last's end
    // at n_pos (the columns' lengths are set below on this).
    assert!(offsets[0] == 0 && offsets[n] == n_pos);
    let lens = || bounds.windows(2).map(|w| offsets[w[1]] - offsets[w[0]]);
    let parts = bounds
        .windows(2)
        .zip(split_by(&mut account.spare_capacity_mut()[..n_pos], lens()))
        .zip(split_by(&mut market.spare_capacity_mut()[..n_pos], lens()))
        .zip(split_by(&mut row.spare_capacity_mut()[..n_pos], lens()))
        .zip(split_by(&mut liq_price.spare_capacity_mut()[..n_pos], lens()))
        .zip(split_by(&mut bankruptcy_price.spare_capacity_mut()[..n_pos], lens()))
        .map(|(((((w, acc), mkt), rw), liq), bank)| (w[0], w[1], acc, mkt, rw, liq, bank))
        .collect::<Vec<_>>();
    parts.into_par_iter().for_each_init(
        || Scratch::new(ctx),
        |scr, (a0, a1, acc, mkt, rw, liq, bank)| {
            let base = offsets[a0];
            for (c, &code) in mkt.iter_mut().zip(&book.positions.code[base..base + liq.len()]) {
                c.write(ctx.remap.market[code as usize]);
            }
            for (r, &x) in rw.iter_mut().zip(&book.positions.row[base..base + liq.len()]) {
                r.write(i64::from(x));
            }
            for a in a0..a1 {
                let (lo, hi) = (offsets[a] - base, offsets[a + 1] - base);
                for x in &mut acc[lo..hi] {
                    x.write(book.accounts[a]);
                }
                let out = (&mut liq[lo..hi], &mut bank[lo..hi]);
                account_prices(book.account(a), ctx, &moves, tables.as_ref(), how, scr, out);
            }
        },
    );
    // SAFETY: every row below n_pos was written: the parts tile 0..n_pos (asserted above),
    // each task writes every row of its part in each column (account_prices both prices of
    // every position), and a task that panics never gets here.
    unsafe {
        account.set_len(n_pos);
        market.set_len(n_pos);
        row.set_len(n_pos);
        liq_price.set_len(n_pos);
        bankruptcy_price.set_len(n_pos);
    }
    LiqColumns { account, market, row, side: book.positions.side.clone(), liq_price, bankruptcy_price }
}

/// `v` cut into consecutive pieces of the given lengths.
fn split_by<T>(mut v: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    lens.map(|len| {
        let (head, tail) = std::mem::take(&mut v).split_at_mut(len);
        v = tail;
        head
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::margin::Remap;
    use crate::universe::fixtures::{asset, perp};

    /// One account's grouped book from (asset code, qty) balances and (market code, qty,
    /// entry, isolated) positions, with the identity code remaps.
    fn one_account(
        u: &Universe,
        bal: &[(u32, f64)],
        pos: &[(u32, f64, f64, f64)],
    ) -> (GroupedBook, Vec<u32>, Vec<u32>) {
        let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
        let book = crate::book::one_account(bal, pos, na, nm);
        let ar: Vec<u32> = (0..na).collect();
        let mr: Vec<u32> = (0..nm).collect();
        (book, ar, mr)
    }

    /// (asset code, qty) balances and (market code, qty, entry, isolated) positions of one account.
    fn run(u: &Universe, bal: &[(u32, f64)], pos: &[(u32, f64, f64, f64)], how: LiqMove) -> Vec<f64> {
        let (book, ar, mr) = one_account(u, bal, pos);
        let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &ar, market: &mr }).unwrap();
        liquidation_prices(&book, &ctx, how).liq_price
    }

    /// The closed-form search of the first position's cross pool (None: not piecewise
    /// linear, the full-model search applies), as (liquidation, bankruptcy) prices.
    fn closed(u: &Universe, bal: &[(u32, f64)], pos: &[(u32, f64, f64, f64)], how: LiqMove) -> Option<(f64, f64)> {
        let (book, ar, mr) = one_account(u, bal, pos);
        let prices = Prices { asset: &u.assets.price, mark: &u.markets.mark };
        let ctx = MarginContext::new(u, &book, prices, Remap { asset: &ar, market: &mr }).unwrap();
        let (moves, tables, mut scr) = (Moves::new(u), piecewise::Tables::new(u), Scratch::new(&ctx));
        let rows = book.account(0);
        let k = pos[0].0 as usize;
        let d = match how {
            LiqMove::Mark => Driver::Market(k),
            LiqMove::Underlying => Driver::Underlying(u.markets.underlying[k] as usize),
        };
        let mark = u.markets.mark[k];
        let s = if pos[0].3 > 0.0 {
            isolated_closed_form(&ctx, &moves, &tables, d, &mut scr, k, pos[0].1, pos[0].2, pos[0].3)
        } else {
            let base = evaluate_account(rows, &ctx);
            cross_closed_form(rows, &ctx, &moves, &tables, d, &mut scr, &base, false)
        }?;
        // The scratch prices are restored after every search.
        assert_eq!(scr.mark, u.markets.mark);
        assert_eq!(scr.asset, u.assets.price);
        Some((mark * s.0, mark * s.1))
    }

    #[test]
    fn closed_form_solves_linear_inverse_and_moving_collateral() {
        let u = universe();
        // Linear long backed by BTC that falls with it: 0.1·x + (x − 50,000) = 0.005·x.
        let (liq, bank) = closed(&u, &[(1, 0.1)], &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Underlying).unwrap();
        assert!((liq / (50_000.0 / 1.095) - 1.0).abs() < 1e-14, "{liq}");
        // Bankrupt where the pool is worth nothing: 0.1·x + x − 50,000 = 0.
        assert!((bank / (50_000.0 / 1.1) - 1.0).abs() < 1e-14, "{bank}");
        // A short crossing into the second bracket, mark only: 10,000 − (x − 50,000) = 0.01·x − 250.
        let (liq, _) = closed(&u, &[(0, 10_000.0)], &[(0, -1.0, 50_000.0, 0.0)], LiqMove::Mark).unwrap();
        assert!((liq / (60_250.0 / 1.01) - 1.0).abs() < 1e-14, "{liq}");
        // Inverse, its coin moving with it (linear in s) and held (linear in 1/s): Binance
        // COIN-M closed form (N·MMR + N) / (WB/CM + N/EP) either way.
        let want = (1_000.0 * 0.01 + 1_000.0) / (1.0 / 100.0 + 1_000.0 / 50_000.0);
        for how in [LiqMove::Underlying, LiqMove::Mark] {
            let (liq, _) = closed(&u, &[(1, 1.0)], &[(1, 1_000.0, 50_000.0, 0.0)], how).unwrap();
            assert!((liq / want - 1.0).abs() < 1e-13, "{how:?} {liq} vs {want}");
        }
        // Isolated: 2,000 + x − 50,000 = 0.005·x.
        let (liq, _) = closed(&u, &[(0, 1e6)], &[(0, 1.0, 50_000.0, 2_000.0)], LiqMove::Mark).unwrap();
        assert!((liq / (48_000.0 / 0.995) - 1.0).abs() < 1e-14, "{liq}");
        // A fully collateralised long: no root, found without the full search.
        let (liq, bank) = closed(&u, &[(0, 60_000.0)], &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Mark).unwrap();
        assert!(liq.is_nan() && bank.is_nan());
    }

    #[test]
    fn closed_form_walks_haircut_tiers_of_the_moving_collateral() {
        // 4 BTC at 50,000 = 200,000 USD, tiers 100 % to 100,000 then 50 %: with a short BTC
        // perp of 20 BTC the pool gains as BTC falls. Root below 100,000 USD of collateral
        // (x < 25,000): 4·x − 20·(x − 50,000)... solved in the first tier after crossing.
        let mut btc = asset("BTC", 50_000.0);
        btc.haircut_tiers = vec![(100_000.0, 1.0), (f64::INFINITY, 0.5)];
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.01, 0.005)]);
        let u = Universe::new(&[asset("USDT", 1.0), btc], &[lin]).unwrap();
        // Long 6 BTC perp at 50,000 with 4 BTC: value above 100,000 USD counts half.
        // Above x = 25,000: 100,000 + 0.5·(4x − 100,000) + 6·(x − 50,000) = 0.005·6·x
        // → 8x − 250,000 = 0.03x → x = 250,000 / 7.97 (> 25,000: second tier).
        let (liq, _) = closed(&u, &[(1, 4.0)], &[(0, 6.0, 50_000.0, 0.0)], LiqMove::Underlying).unwrap();
        assert!((liq / (250_000.0 / 7.97) - 1.0).abs() < 1e-13, "{liq}");
        // Long 2 BTC perp: 4x (first tier, x < 25,000) + 2·(x − 50,000) = 0.01·x
        // → x = 100,000 / 5.99 < 25,000: the walk crosses the tier bound.
        let (liq, _) = closed(&u, &[(1, 4.0)], &[(0, 2.0, 50_000.0, 0.0)], LiqMove::Underlying).unwrap();
        assert!((liq / (100_000.0 / 5.99) - 1.0).abs() < 1e-13, "{liq}");
    }

    #[test]
    fn closed_form_declines_what_is_not_piecewise_linear() {
        // A size premium on the moving market, a linear contract settled in the moving coin,
        // an option on the moving underlying: the full-model search applies.
        let mut prem = perp("P", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        prem.imf_factor = 0.001;
        let in_coin = perp("C", "BTC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        let opt = crate::universe::fixtures::option("O", "USDT", "BTC", true, 50_000.0, 1_000.0);
        let u = Universe::new(&[asset("USDT", 1.0), asset("BTC", 50_000.0)], &[prem, in_coin, opt]).unwrap();
        let bal = [(0, 10_000.0)];
        assert!(closed(&u, &bal, &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Mark).is_none());
        assert!(closed(&u, &bal, &[(1, 1.0, 50_000.0, 0.0)], LiqMove::Underlying).is_none());
        assert!(closed(&u, &bal, &[(1, 1.0, 50_000.0, 0.0)], LiqMove::Mark).is_some());
        assert!(closed(&u, &bal, &[(1, 1.0, 50_000.0, 0.0), (2, -1.0, 1_000.0, 0.0)], LiqMove::Mark).is_none());
        // ... and they still agree with the closed form where it applies.
        let full = run(&u, &bal, &[(1, 1.0, 50_000.0, 0.0)], LiqMove::Mark)[0];
        let (liq, _) = closed(&u, &bal, &[(1, 1.0, 50_000.0, 0.0)], LiqMove::Mark).unwrap();
        assert!((liq / full - 1.0).abs() < 1e-12, "{liq} vs {full}");
    }

    fn universe() -> Universe {
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(50_000.0, 0.01, 0.005), (f64::INFINITY, 0.02, 0.01)]);
        let mut inv = perp("BTCUSD", "BTC", "BTC", 50_000.0, &[(f64::INFINITY, 0.02, 0.01)]);
        inv.inverse = true;
        inv.contract_size = 100.0;
        Universe::new(&[asset("USDT", 1.0), asset("BTC", 50_000.0)], &[lin, inv]).unwrap()
    }

    #[test]
    fn linear_long_matches_the_closed_form_in_its_bracket() {
        // 1 BTC long at 50,000 with 5,000 USDT: 5,000 + (x − 50,000) = 0.005·x
        // (notional ≤ 50,000 below the mark, first bracket) → x = 45,000 / 0.995.
        let u = universe();
        let lp = run(&u, &[(0, 5_000.0)], &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Mark);
        assert!((lp[0] - 45_000.0 / 0.995).abs() < 1e-9, "{}", lp[0]);
    }

    #[test]
    fn short_crosses_into_the_next_bracket() {
        // Short 1 BTC at 50,000 with 10,000 USDT: above 50,000 notional the second bracket
        // (2 % − 250) applies: 10,000 − (x − 50,000) = 0.01·x − 250 → x = 60,250 / 1.01.
        let u = universe();
        let lp = run(&u, &[(0, 10_000.0)], &[(0, -1.0, 50_000.0, 0.0)], LiqMove::Mark);
        assert!((lp[0] - 60_250.0 / 1.01).abs() < 1e-9, "{}", lp[0]);
    }

    #[test]
    fn fully_collateralised_long_has_no_liquidation_price() {
        let u = universe();
        let lp = run(&u, &[(0, 50_000.0)], &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Mark);
        assert!(lp[0].is_nan());
        assert!(run(&u, &[(0, 1.0)], &[(0, 0.0, 50_000.0, 0.0)], LiqMove::Mark)[0].is_nan());
    }

    #[test]
    fn isolated_position_uses_only_its_own_margin() {
        // 1 BTC long at 50,000, isolated 2,000; the wallet's 1e6 USDT does not help:
        // 2,000 + x − 50,000 = 0.005·x → x = 48,000 / 0.995.
        let u = universe();
        let lp = run(&u, &[(0, 1e6)], &[(0, 1.0, 50_000.0, 2_000.0)], LiqMove::Mark);
        assert!((lp[0] - 48_000.0 / 0.995).abs() < 1e-9, "{}", lp[0]);
    }

    #[test]
    fn inverse_cross_matches_binance_coin_m_closed_form() {
        // Binance COIN-M one-way formula (docs/SOURCES.md §2.3) with one bracket, cum = 0:
        // LP = (N·MMR + N) / (WB/CM + N/EP), N in contracts, CM = contract size.
        let u = universe();
        let (wb, n, ep) = (1.0, 1_000.0, 50_000.0);
        let lp = run(&u, &[(1, wb)], &[(1, n, ep, 0.0)], LiqMove::Mark);
        let want = (n * 0.01 + n) / (wb / 100.0 + n / ep);
        assert!((lp[0] / want - 1.0).abs() < 1e-12, "{} vs {want}", lp[0]);
        // The coin's USD price cancels out: moving it with the mark gives the same price.
        let lp2 = run(&u, &[(1, wb)], &[(1, n, ep, 0.0)], LiqMove::Underlying);
        assert!((lp2[0] / want - 1.0).abs() < 1e-9, "{} vs {want}", lp2[0]);
    }

    #[test]
    fn collateral_in_the_same_underlying_moves_with_it() {
        // Long 1 BTC perp backed by 0.1 BTC: both fall together under LiqMove::Underlying.
        // 0.1·x + (x − 50,000) = 0.005·x → x = 50,000 / 1.095; with the BTC price held: 5,000
        // + x − 50,000 = 0.005·x → x = 45,000 / 0.995.
        let u = universe();
        let und = run(&u, &[(1, 0.1)], &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Underlying);
        let mark = run(&u, &[(1, 0.1)], &[(0, 1.0, 50_000.0, 0.0)], LiqMove::Mark);
        assert!((und[0] - 50_000.0 / 1.095).abs() < 1e-9, "{}", und[0]);
        assert!((mark[0] - 45_000.0 / 0.995).abs() < 1e-9, "{}", mark[0]);
    }

    #[test]
    fn nearest_crossing_picks_the_closer_side_and_respects_bounds() {
        // g(s) = (s − 0.5)(2 − s): roots at 0.5 and 2, equally far in log distance → the
        // downward root wins ties; shift to favour the upper one.
        let r = nearest_crossing(&mut vec![], |s| ((s - 0.5) * (2.0 - s), 1.0));
        assert!((r - 0.5).abs() < 1e-12, "{r}");
        let r = nearest_crossing(&mut vec![], |s| ((s - 0.4) * (1.5 - s), 1.0));
        assert!((r - 1.5).abs() < 1e-12, "{r}");
        assert!(nearest_crossing(&mut vec![], |s| (s + 1.0, 1.0)).is_nan());
        assert!(nearest_crossing(&mut vec![], |s| (s - 1e-7, 1.0)).is_nan());
    }
}
