//! Liquidation policy: who is liquidated first and what is closed.
//!
//! Priority: riskiest first — the highest ratio of maintenance requirement to the equity
//! securing it (cross pool or isolated position), +inf when that equity is gone; ties by
//! account id. What: every isolated position below its maintenance (fully when its own
//! equity is gone, else a slice); in the cross pool, a slice of the position with the largest
//! maintenance requirement, or every cross position when the pool's equity is gone.

use crate::book::AccountRows;
use crate::cascade::state::State;
use crate::margin::{evaluate_rows_into, position_equity, position_stake, MarginContext, RowLookup, RowSink};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum EventKind {
    Liquidation = 0,
    Isolated = 1,
    Bankruptcy = 2,
    Adl = 3,
    SocializedLoss = 4,
}

impl EventKind {
    pub const NAMES: [&'static str; 5] = ["liquidation", "isolated", "bankruptcy", "adl", "socialized_loss"];
    const ALL: [EventKind; 5] =
        [EventKind::Liquidation, EventKind::Isolated, EventKind::Bankruptcy, EventKind::Adl, EventKind::SocializedLoss];

    /// The kind of a `u8` code (`kind as u8`), None for a code no kind has.
    pub fn from_code(code: u8) -> Option<EventKind> {
        EventKind::ALL.get(code as usize).copied()
    }
}

/// How much of a position a liquidation closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slicing {
    /// Share of the position closed per slice (at least).
    pub fraction: f64,
    /// When > 0: a slice is at least what brings the requirement/equity ratio down to this
    /// target, at the round's marks (so one slice usually restores the account).
    pub target_ratio: f64,
    /// A position whose notional (USD), or whose remainder after the slice, would be below this
    /// closes whole: no dust left to liquidate round after round.
    pub min_notional: f64,
}

impl Slicing {
    /// The fraction to close of a position of `notional` carrying `mm` of requirement, in a pool
    /// with `requirement` against `equity`.
    pub fn fraction(&self, notional: f64, mm: f64, requirement: f64, equity: f64) -> f64 {
        let mut f = self.fraction;
        if self.target_ratio > 0.0 && mm > 0.0 {
            // requirement − f·mm ≤ target·equity (closing at the mark leaves equity as it is)
            f = f.max((requirement - self.target_ratio * equity) / mm);
        }
        if notional < self.min_notional || notional * (1.0 - f) < self.min_notional {
            f = 1.0;
        }
        f.clamp(self.fraction, 1.0)
    }
}

/// Close `fraction` of position row `pos`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    pub pos: usize,
    pub fraction: f64,
    pub kind: EventKind,
}

/// An account that needs action this round.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub account: usize,
    pub risk: f64,
    /// Its orders: this range of the order list the selection appended them to (one list
    /// for many candidates, not an allocation each).
    pub orders: std::ops::Range<usize>,
}

/// The account's cross-pool equity: everything but its isolated positions (USD). The
/// subtraction leaves rounding residue where the two are equal (an emptied wallet beside an
/// isolated position): within 1e-10 relative of zero counts as zero.
pub fn cross_equity(state: &State, a: usize, ctx: &MarginContext<'_>) -> (f64, crate::margin::AccountMargin) {
    cross_equity_with(state, a, ctx, ctx)
}

/// [`cross_equity`] with rows resolved by `lookup` (a [`PreparedLookup`](crate::margin::PreparedLookup)
/// on the per-round hot path).
pub fn cross_equity_with<L: RowLookup>(
    state: &State,
    a: usize,
    ctx: &MarginContext<'_>,
    lookup: &L,
) -> (f64, crate::margin::AccountMargin) {
    let p = state.pos_offsets[a]..state.pos_offsets[a + 1];
    cross_equity_of(state.account(a), &state.pos_isolated[p], ctx, lookup)
}

/// [`cross_equity_with`] of an account's `rows`, `isolated` flagging its isolated positions.
pub fn cross_equity_of<L: RowLookup>(
    rows: AccountRows<'_>,
    isolated: &[bool],
    ctx: &MarginContext<'_>,
    lookup: &L,
) -> (f64, crate::margin::AccountMargin) {
    cross_equity_into(rows, isolated, ctx, lookup, &mut ())
}

/// [`cross_equity_with`] of account `a`, handing the kernel's row lines to `sink`
/// ([`evaluate_rows_into`]): the whole evaluation the selection's kept balance totals are
/// tested against (the selection itself runs [`View::evaluate`](super::screen::View::evaluate)).
#[cfg(test)]
pub fn cross_equity_with_into<L: RowLookup, S: RowSink>(
    state: &State,
    a: usize,
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) -> (f64, crate::margin::AccountMargin) {
    let p = state.pos_offsets[a]..state.pos_offsets[a + 1];
    cross_equity_into(state.account(a), &state.pos_isolated[p], ctx, lookup, sink)
}

#[inline]
fn cross_equity_into<L: RowLookup, S: RowSink>(
    rows: AccountRows<'_>,
    isolated: &[bool],
    ctx: &MarginContext<'_>,
    lookup: &L,
    sink: &mut S,
) -> (f64, crate::margin::AccountMargin) {
    let m = evaluate_rows_into(rows, ctx, lookup, sink);
    (cross_equity_of_margin(rows, isolated, ctx, &m), m)
}

/// The cross equity of an account whose evaluation at the context's prices is `m`: its
/// equity less its isolated positions' margin + uPnL (an option's value), `isolated` flagging
/// those.
#[inline]
pub fn cross_equity_of_margin(
    rows: AccountRows<'_>,
    isolated: &[bool],
    ctx: &MarginContext<'_>,
    m: &crate::margin::AccountMargin,
) -> f64 {
    let u = ctx.universe;
    let mut iso = 0.0;
    for (p, _) in isolated.iter().enumerate().filter(|(_, &i)| i) {
        let k = rows.pos_code[p] as usize;
        let sp = ctx.prices.asset[u.markets.settle[k] as usize];
        iso += rows.pos_isolated[p] * sp + position_equity(ctx, k, rows.pos_qty[p], rows.pos_entry[p]);
    }
    let eq = m.equity - iso;
    if eq.abs() <= 1e-10 * (m.equity.abs() + iso.abs()) {
        0.0
    } else {
        eq
    }
}

/// The account's cross equity (the number [`cross_equity_of`] gives) and its positions' total
/// notional (Σ of their [`position_stake`] notionals), from the kernel's equity terms alone:
/// balances' value, each position's uPnL (an option's value) and isolated margin, summed in
/// the kernel's order, without the collateral and requirement terms neither number reads
/// (`adl::tests::rank_numbers_are_the_kernels` holds them to the kernel bit for bit). `rows`
/// are in universe indices (the cascade's state).
pub fn cross_equity_and_notional(rows: AccountRows<'_>, isolated: &[bool], ctx: &MarginContext<'_>) -> (f64, f64) {
    let u = ctx.universe;
    let mut equity = 0.0f64;
    for (&i, &qty) in rows.bal_code.iter().zip(rows.bal_qty) {
        equity += qty * ctx.prices.asset[i as usize];
    }
    let (mut iso, mut notional) = (0.0f64, 0.0f64);
    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated).zip(isolated);
    for ((((&k, &qty), &entry), &margin), &is_isolated) in positions {
        let k = k as usize;
        let h = &u.market_hot[k];
        let sp = ctx.prices.asset[h.settle as usize];
        let (stake_equity, stake_notional) = if h.is_option() {
            let s = position_stake(ctx, k, qty, entry);
            (s.equity, s.notional)
        } else {
            let (c, mark) = (&h.contract, ctx.prices.mark[k]);
            (c.pnl(qty, entry, mark) * sp, c.notional(qty, mark) * sp)
        };
        equity += stake_equity;
        if margin > 0.0 {
            equity += margin * sp;
        }
        if is_isolated {
            iso += margin * sp + stake_equity;
        }
        notional += stake_notional;
    }
    let eq = equity - iso;
    let eq = if eq.abs() <= 1e-10 * (equity.abs() + iso.abs()) { 0.0 } else { eq };
    (eq, notional)
}

/// Σ of the account's positions' [`position_stake`] notionals (USD), in row order: the
/// notional [`cross_equity_and_notional`] sums, bit for bit (the same terms in the same order).
pub fn positions_notional(rows: AccountRows<'_>, ctx: &MarginContext<'_>) -> f64 {
    let u = ctx.universe;
    let mut notional = 0.0f64;
    for ((&k, &qty), &entry) in rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry) {
        let k = k as usize;
        let h = &u.market_hot[k];
        notional += if h.is_option() {
            position_stake(ctx, k, qty, entry).notional
        } else {
            h.contract.notional(qty, ctx.prices.mark[k]) * ctx.prices.asset[h.settle as usize]
        };
    }
    notional
}

fn ratio(requirement: f64, equity: f64) -> f64 {
    if requirement <= 0.0 {
        0.0
    } else if equity <= 0.0 {
        f64::INFINITY
    } else {
        requirement / equity
    }
}

/// What to do with account `a` at the context's prices, if anything.
pub fn select<L: RowLookup>(
    state: &State,
    a: usize,
    ctx: &MarginContext<'_>,
    lookup: &L,
    slicing: &Slicing,
    orders: &mut Vec<Order>,
) -> Option<Candidate> {
    let (cross_eq, m) = cross_equity_with(state, a, ctx, lookup);
    select_evaluated(state, a, ctx, slicing, cross_eq, &m, orders)
}

/// [`select`] of an account already evaluated: `cross_eq` and `m` are what
/// [`cross_equity_with`] gives for it at the context's prices.
pub fn select_evaluated(
    state: &State,
    a: usize,
    ctx: &MarginContext<'_>,
    slicing: &Slicing,
    cross_eq: f64,
    m: &crate::margin::AccountMargin,
    orders: &mut Vec<Order>,
) -> Option<Candidate> {
    if !m.liquidatable() && cross_eq >= 0.0 {
        return None;
    }
    let u = ctx.universe;
    let first = orders.len();
    let mut risk = 0.0f64;
    let mut largest: Option<(f64, usize, f64)> = None;
    let mut open_cross = 0usize;
    let rows = state.pos_offsets[a]..state.pos_offsets[a + 1];
    for p in rows.clone() {
        if state.pos_qty[p] == 0.0 {
            continue;
        }
        let k = state.pos_market[p] as usize;
        let sp = ctx.prices.asset[u.markets.settle[k] as usize];
        let pm = position_stake(ctx, k, state.pos_qty[p], state.pos_entry[p]);
        if state.pos_isolated[p] {
            let eq = state.iso_qty[p] * sp + pm.equity;
            if eq < pm.requirement[1] {
                let fraction = if eq <= 0.0 {
                    1.0
                } else {
                    slicing.fraction(pm.notional, pm.requirement[1], pm.requirement[1], eq)
                };
                orders.push(Order { pos: p, fraction, kind: EventKind::Isolated });
                risk = risk.max(ratio(pm.requirement[1], eq));
            }
        } else {
            open_cross += 1;
            if largest.is_none_or(|(mm, _, _)| pm.requirement[1] > mm) {
                largest = Some((pm.requirement[1], p, pm.notional));
            }
        }
    }
    let (adj, mm) = (m.adj_equity[1], m.requirement[1]);
    let gone = adj <= 0.0 || cross_eq <= 0.0;
    if adj < mm || cross_eq < 0.0 {
        risk = risk.max(if gone { f64::INFINITY } else { ratio(mm, adj) });
        if gone {
            // Every open cross position, in row order.
            let open = rows.filter(|&p| state.pos_qty[p] != 0.0 && !state.pos_isolated[p]);
            orders.extend(open.map(|p| Order { pos: p, fraction: 1.0, kind: EventKind::Liquidation }));
        } else if let Some((pmm, p, notional)) = largest {
            let fraction = slicing.fraction(notional, pmm, mm, adj);
            orders.push(Order { pos: p, fraction, kind: EventKind::Liquidation });
        }
    }
    // An insolvent pool with nothing left to close still needs its bankruptcy settled.
    let needs_closeout = cross_eq < 0.0 && open_cross == 0;
    if orders.len() == first && !needs_closeout {
        return None;
    }
    Some(Candidate { account: a, risk, orders: first..orders.len() })
}
