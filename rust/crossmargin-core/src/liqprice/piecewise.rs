//! Closed-form roots of g where it is piecewise linear (docs/MODEL.md "Search").
//!
//! g(s) of one account and one driver is a constant (every row the move does not touch) plus
//! the moving rows' contributions. For the common rows each contribution is linear in
//! x = φ(s) between breakpoints, φ(s) = s or 1/s for the whole search:
//!
//! | moving row | piece | x |
//! |---|---|---|
//! | balance of the moving asset (> 0) | w·(base_k + rate_k·(q·p·s − lower_k)), haircut slice k; w·(total) above a finite last bound | s |
//! | borrow of the moving asset | q·p·s·liability weight (size premium on q: constant) | s |
//! | linear perp / future, mark moves, settle fixed | uPnL·P = size·P·(M·s − e) (× the uPnL weight above the entry); (N·rate_k − cum_k)·P, N = \|size\|·M·s | s |
//! | inverse, mark moves, settle fixed | size·P·(1/e − 1/(M·s)); (N·rate_k − cum_k)·P, N = \|size\|/(M·s) | 1/s |
//! | inverse, mark and its coin move (underlying rule) | size·P·(s/e − 1/M); (\|size\|/M·rate_k − cum_k·s)·P | s |
//! | a position that does not move, settled in the moving asset | its collateral and requirement at s = 1, × s | s |
//! | maintenance on the entry basis | constant in its settle units (× s when the coin moves) | — |
//!
//! The constant is g(1) of the full model less the moving rows at s = 1 (their numbers at
//! s = 1 from the account's [`Base`] where it has them: [`Terms::exact_at_one`]). Each term's piece
//! at s = 1, its coefficients and its first breakpoint either way are set up once per account
//! and driver ([`Term::new`]); a term without a breakpoint (a flat amount, a uPnL at weight 1,
//! a balance without haircut tiers) is summed into a line per gap instead, once. One sweep
//! downward and one upward ([`Terms::sweep`]) answer the
//! maintenance and the bankruptcy gap together, keeping one piece index per term and crossing
//! breakpoints one at a time (O(1) per crossing); the segment's root is solved in closed form,
//! and the caller checks it with the model's own per-row formulas ([`Terms::exact`]). Every
//! term is concave in x (bracket rates never fall, uPnL weights ≤ 1) unless a haircut rate
//! rises: for concave g safe at s = 1 whose first segment does not change sign, g ≥ 0 at the
//! walk's far end means no sign change on that side, and for concave g below 0 at s = 1, g not
//! rising from s = 1 in the walk's direction means none either (the walk then stops at once).
//! [`cross_terms`] / [`isolated_terms`] return `None` where g is not of this form
//! (the caller then searches as before): a fee reserve (its pool moves with g), a size-scaled
//! or size-premium requirement, a step maintenance shape, a linear contract settled in the
//! moving coin, an option on the moving underlying or settled in the moving asset, two-sided
//! valuation, or terms in s and in 1/s in one search.

use crate::book::AccountRows;
use crate::brackets::Shape;
use crate::contract::Payoff;
use crate::imf;
use crate::margin::{position_margin_hot, MarginContext};
use crate::universe::{MarketHot, Universe};

use super::base::Base;
use super::{Driver, Moves, S_MAX, S_MIN};

/// One haircut slice: (lower, bound, rate, discounted value below `lower`).
#[derive(Debug, Clone, Copy)]
struct Slice {
    lower: f64,
    bound: f64,
    rate: f64,
    base: f64,
}

/// One maintenance tier: (bound, rate, continuity amount).
#[derive(Debug, Clone, Copy)]
struct Tier {
    bound: f64,
    rate: f64,
    cum: f64,
}

/// The universe's haircut slices and maintenance tiers, by index, built once per call.
pub(super) struct Tables {
    slices: Vec<Vec<Slice>>,
    tiers: Vec<Vec<Tier>>,
    /// Per asset: whether its haircut rates never rise from one tier to the next (its
    /// collateral value is then concave in its price).
    falling: Vec<bool>,
}

impl Tables {
    pub(super) fn new(u: &Universe) -> Self {
        let slices = (0..u.n_assets())
            .map(|i| {
                u.assets
                    .haircuts
                    .slices_of(i)
                    .map(|(lower, bound, rate, base)| Slice { lower, bound, rate, base })
                    .collect()
            })
            .collect();
        let tiers = (0..u.n_markets())
            .map(|k| u.markets.brackets.rows(k).map(|(bound, _, rate, _, cum)| Tier { bound, rate, cum }).collect())
            .collect();
        let falling = (0..u.n_assets())
            .map(|i| {
                let rates: Vec<f64> = u.assets.haircuts.rows(i).map(|(_, rate)| rate).collect();
                rates.windows(2).all(|w| w[1] <= w[0])
            })
            .collect();
        Tables { slices, tiers, falling }
    }

    /// [`position_margin_hot`]'s (uPnL, maintenance requirement) of market `k` at `mark`, USD
    /// at settle price `p`, bit for bit: the same contract arithmetic and bracket formula, the
    /// tier found by a scan that stops at the first bound ≥ the notional (most notionals lie
    /// below a market's first bound) where the kernel counts every bound below it (bounds
    /// increase strictly: the same tier, NaN included). A plain scan, not [`leading`]: with it
    /// (its binary search past the first bound) one paired run measured 1.10 / 1.14× the
    /// liquidation prices' CPU (5 pairs, load 1.2–1.4). Maintenance only, and without the
    /// call: the base and the root checks need nothing else. Markets with a size-scaled rate,
    /// a size premium or the entry basis take `position_margin_hot` itself.
    #[inline(always)]
    pub(super) fn maintenance(&self, u: &Universe, k: usize, qty: f64, entry: f64, mark: f64, p: f64) -> [f64; 2] {
        let h = &u.market_hot[k];
        if h.scaled || h.imf_factor > 0.0 || h.entry_basis {
            let pm = position_margin_hot(&u.markets.brackets, h, qty, entry, mark, p);
            return [pm.upnl, pm.requirement[1]];
        }
        let c = &h.contract;
        let (notional, upnl) = (c.notional(qty, mark), c.pnl(qty, entry, mark));
        let tiers = &self.tiers[k];
        let last = tiers.len() - 1;
        let mut i = 0;
        while i < last && tiers[i].bound < notional {
            i += 1;
        }
        let tier = tiers[i];
        [upnl * p, (notional * tier.rate - tier.cum) * p]
    }
}

/// The variable g is linear in within a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Basis {
    S,
    InvS,
}

impl Basis {
    #[inline]
    fn phi(self, s: f64) -> f64 {
        match self {
            Basis::S => s,
            Basis::InvS => 1.0 / s,
        }
    }

    #[inline]
    fn inverse(self, x: f64) -> f64 {
        self.phi(x)
    }
}

/// a < b; never when either is NaN (a breakpoint that is NaN lies below no factor).
#[inline]
fn below(a: f64, b: f64) -> bool {
    a < b
}

/// The number of leading elements of `xs` (bounds that increase) for which `pred` holds:
/// [`slice::partition_point`], settled by the first element alone where it fails (most
/// notionals lie below a market's first bound). Forced inline: left to itself the compiler
/// calls it, a call per term for one comparison.
#[inline(always)]
fn leading<T>(xs: &[T], pred: impl Fn(&T) -> bool) -> usize {
    match xs.first() {
        Some(x) if pred(x) => xs.partition_point(pred),
        _ => 0,
    }
}

/// One moving contribution to g: piecewise c0 + c1·x, pieces separated by `n` breakpoints
/// (increasing in s); `j` the current piece.
#[derive(Debug, Clone, Copy)]
struct Term {
    kind: Kind,
    /// A requirement (subtracted from g at maintenance, absent from the bankruptcy gap) or
    /// collateral (added).
    req: bool,
    n: u32,
    /// The current piece.
    j: u32,
    /// The piece just below s = 1 (the downward walk's first); the upward walk starts one
    /// piece higher when a breakpoint lies exactly at 1.
    j_down: u32,
    j_up: u32,
    /// The next breakpoint in the current walk's direction (±∞ past the last).
    next: f64,
    /// (c0, c1) of the current piece.
    k: [f64; 2],
    /// The first breakpoint of each walk, downward and upward.
    start: [f64; 2],
    /// (c0, c1) of piece `j_down` (also `j_up`'s unless a breakpoint lies at s = 1). The term
    /// fits 128 bytes, which it is copied in without a call.
    k_down: [f64; 2],
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// c0 + c1·x throughout.
    Flat([f64; 2]),
    /// w × tiered(qp·s) of a positive balance of asset `asset` (basis s).
    Tiered { asset: u32, qp: f64, w: f64 },
    /// uPnL u0 + u1·x, a loss in full and a profit at weight `w`; its sign changes at s = `at`
    /// (the entry price), a loss below it when `loss_below`.
    Pnl { u: [f64; 2], w: f64, at: f64, loss_below: bool },
    /// Bracket requirement of market `market` on notional N = nq·s (`inverse` false) or nq/s
    /// (true), × `p` USD; `settle_moves`: an inverse contract whose coin moves (× s).
    Brackets { market: u32, nq: f64, p: f64, inverse: bool, settle_moves: bool },
}

impl Term {
    /// Inlined into each caller, whose `kind` is then known: its matches fold away.
    #[inline(always)]
    fn new(kind: Kind, req: bool, t: &Tables) -> Self {
        let n = kind.breakpoints(t);
        let start = [f64::NEG_INFINITY, f64::INFINITY];
        let (k, k_down) = ([0.0; 2], [0.0; 2]);
        let mut term = Term { kind, req, n: n as u32, j: 0, j_down: 0, j_up: 0, next: f64::INFINITY, k, start, k_down };
        // The pieces around s = 1: j_down = the number of breakpoints below 1. Counted by
        // comparing bounds with the notional (no division), a count that can only be too high
        // by the breakpoints whose quotient rounds to 1: those are taken back.
        let mut j = term.maybe_below_one(t);
        while j > 0 {
            let b = term.brk(t, j - 1);
            if below(b, 1.0) {
                // The first breakpoint of the downward walk.
                term.start[0] = b;
                break;
            }
            j -= 1;
        }
        term.j_down = j;
        term.k_down = term.coef(t, j);
        term.j_up = j;
        if j < term.n {
            let b = term.brk(t, j);
            if b == 1.0 {
                term.j_up = j + 1;
                if j + 1 < term.n {
                    term.start[1] = term.brk(t, j + 1);
                }
            } else {
                term.start[1] = b;
            }
        }
        term
    }

    /// The number of breakpoints that may lie below s = 1: every one whose [`Term::brk`] is
    /// < 1 (a bound below the notional, or the quantity's value), and also those where that
    /// quotient rounds to 1 (a bound an ulp below the notional).
    #[inline(always)]
    fn maybe_below_one(&self, t: &Tables) -> u32 {
        let n = self.n as usize;
        let count = match self.kind {
            Kind::Flat(_) => 0,
            Kind::Tiered { asset, qp, .. } => leading(&t.slices[asset as usize][..n], |x| x.bound < qp),
            Kind::Pnl { at, .. } => usize::from(n > 0 && at < 1.0),
            // Breakpoint j of an inverse contract is bound n − 1 − j: those above the notional.
            Kind::Brackets { market, nq, inverse: true, .. } => {
                n - leading(&t.tiers[market as usize][..n], |x| !below(nq, x.bound))
            }
            Kind::Brackets { market, nq, .. } => leading(&t.tiers[market as usize][..n], |x| x.bound < nq),
        };
        count as u32
    }

    /// The number of breakpoints below `limit`, counted from the current piece outward (the
    /// breakpoints increase; the limit lies beyond s = 1 in the walk's direction, most often
    /// within a piece or two).
    #[inline]
    fn piece_toward(&self, t: &Tables, limit: f64, up: bool) -> u32 {
        let mut j = self.j;
        // The breakpoints never decrease in j (a bound over a positive number, or a positive
        // number over a falling bound: rounding keeps the order), so the last one below the
        // limit (or the first not below it) settles the count without the walk; most end
        // checks look past every breakpoint (s = 1e6 or 1e-6).
        if up {
            if j < self.n && self.brk(t, self.n - 1) < limit {
                return self.n;
            }
            while j < self.n && self.brk(t, j) < limit {
                j += 1;
            }
        } else {
            if j > 0 && !below(self.brk(t, 0), limit) {
                return 0;
            }
            while j > 0 && !below(self.brk(t, j - 1), limit) {
                j -= 1;
            }
        }
        j
    }

    /// The breakpoint that ends the current piece in the walk's direction (±∞: none).
    #[inline]
    fn next_break(&self, t: &Tables, up: bool) -> f64 {
        if up {
            if self.j < self.n {
                self.brk(t, self.j)
            } else {
                f64::INFINITY
            }
        } else if self.j > 0 {
            self.brk(t, self.j - 1)
        } else {
            f64::NEG_INFINITY
        }
    }

    /// The factor s of breakpoint `j` (< n), increasing in j. Forced inline, as `coef` and
    /// `maybe_below_one` (left to itself the compiler calls them: 6 % more instructions).
    #[inline(always)]
    fn brk(&self, t: &Tables, j: u32) -> f64 {
        let j = j as usize;
        match self.kind {
            Kind::Flat(_) => f64::INFINITY,
            Kind::Tiered { asset, qp, .. } => t.slices[asset as usize][j].bound / qp,
            Kind::Pnl { at, .. } => at,
            Kind::Brackets { market, nq, inverse, .. } => {
                let tiers = &t.tiers[market as usize];
                // Contract::factor_at_notional: bound / (|size|·M), or |size| / (M·bound).
                if inverse {
                    nq / tiers[tiers.len() - 2 - j].bound
                } else {
                    tiers[j].bound / nq
                }
            }
        }
    }

    /// (c0, c1) of piece `j`.
    #[inline(always)]
    fn coef(&self, t: &Tables, j: u32) -> [f64; 2] {
        self.kind.coef(t, j)
    }
}

impl Kind {
    /// The number of breakpoints (the term has one piece more).
    #[inline(always)]
    fn breakpoints(&self, t: &Tables) -> usize {
        match *self {
            Kind::Flat(_) => 0,
            Kind::Tiered { asset, .. } => {
                let sl = &t.slices[asset as usize];
                match sl.last() {
                    None => 0,
                    Some(last) if last.bound.is_finite() => sl.len(),
                    Some(_) => sl.len() - 1,
                }
            }
            Kind::Pnl { w, at, .. } => usize::from(w != 1.0 && at.is_finite() && at > 0.0),
            Kind::Brackets { market, .. } => t.tiers[market as usize].len() - 1,
        }
    }

    /// (c0, c1) of piece `j`.
    #[inline(always)]
    fn coef(&self, t: &Tables, j: u32) -> [f64; 2] {
        let j = j as usize;
        match *self {
            Kind::Flat(c) => c,
            Kind::Tiered { asset, qp, w } => {
                let sl = &t.slices[asset as usize];
                match sl.get(j) {
                    None if sl.is_empty() => [0.0, w * qp],
                    // Above a finite last bound the value counts nothing more.
                    None => {
                        let l = sl[sl.len() - 1];
                        [w * (l.base + (l.bound - l.lower) * l.rate), 0.0]
                    }
                    Some(x) => [w * (x.base - x.lower * x.rate), w * x.rate * qp],
                }
            }
            Kind::Pnl { u, w, loss_below, .. } => {
                // Piece 0 lies below the entry, piece 1 above (one piece when w = 1).
                let weight = if (j == 0) == loss_below { 1.0 } else { w };
                [u[0] * weight, u[1] * weight]
            }
            Kind::Brackets { market, nq, p, inverse, settle_moves } => {
                let tiers = &t.tiers[market as usize];
                let tier = tiers[if inverse { tiers.len() - 1 - j } else { j }];
                if settle_moves {
                    // (|size|/(M·s)·rate − cum)·P·s
                    [nq * tier.rate * p, -tier.cum * p]
                } else {
                    [-tier.cum * p, nq * tier.rate * p]
                }
            }
        }
    }
}

/// A moving row as the model computes it (the check of a closed-form root): its
/// contribution to g at a factor s by the margin module's own per-row functions.
#[derive(Debug, Clone, Copy)]
enum Row {
    /// A perp or future whose mark moves ([`position_margin_hot`] at mark·s, settle p·σ):
    /// its uPnL (a profit at weight `w`) less its maintenance requirement.
    Position { market: u32, qty: f64, entry: f64, mark: f64, p: f64, w: f64, settle_moves: bool },
    /// Amounts fixed in the moving coin, × s: (collateral, requirement) at s = 1.
    Scaled { adj: f64, req: f64 },
    /// A positive balance of the moving asset: its haircut-tiered value × weight.
    Holding { asset: u32, qp: f64, w: f64 },
}

/// The moving terms of one search and the basis they share.
pub(super) struct Terms {
    /// The terms with a breakpoint, walked by the sweeps.
    terms: Vec<Term>,
    /// The terms without one (one piece throughout: flat amounts, a uPnL at weight 1, a
    /// balance without haircut tiers), summed once: (c0, c1) of the maintenance gap (their
    /// requirements subtracted) and of the bankruptcy gap (requirements left out).
    fixed: [[f64; 2]; 2],
    /// Σ |c0| and Σ |c1| of the terms in `fixed`, per gap (their share of the gross).
    fixed_abs: [[f64; 2]; 2],
    rows: Vec<Row>,
    /// Each row's (collateral, requirement) at s = 1 where the account's [`Base`] gave them
    /// (the same numbers as [`Terms::exact`] at s = 1: one formula, the same prices); empty
    /// otherwise.
    at1: Vec<[f64; 2]>,
    basis: Option<Basis>,
    mixed: bool,
    /// Whether g is concave in x (every term but haircut tiers whose rate rises is).
    concave: bool,
}

impl Default for Terms {
    fn default() -> Self {
        Terms::new()
    }
}

impl Terms {
    pub(super) fn new() -> Self {
        Terms {
            terms: Vec::new(),
            fixed: [[0.0; 2]; 2],
            fixed_abs: [[0.0; 2]; 2],
            rows: Vec::new(),
            at1: Vec::new(),
            basis: None,
            mixed: false,
            concave: true,
        }
    }

    fn clear(&mut self) {
        self.terms.clear();
        self.fixed = [[0.0; 2]; 2];
        self.fixed_abs = [[0.0; 2]; 2];
        self.rows.clear();
        self.at1.clear();
        self.basis = None;
        self.mixed = false;
        self.concave = true;
    }

    /// Σ of the moving rows' contributions to one gap at factor s by the model's per-row
    /// formulas, and the sum of their magnitudes: the maintenance gap (`maint`) or the
    /// bankruptcy gap, which leaves the requirements out (a position's uPnL then by
    /// [`Contract::pnl`](crate::contract::Contract::pnl) × the settle price, the number
    /// [`position_margin_hot`] gives, without its bracket lookup).
    pub(super) fn exact(&self, u: &Universe, t: &Tables, s: f64, maint: bool) -> (f64, f64) {
        let (mut g, mut gross) = (0.0, 0.0);
        for row in &self.rows {
            let (adj, req) = match *row {
                Row::Position { market, qty, entry, mark, p, w, settle_moves } => {
                    let h = &u.market_hot[market as usize];
                    let p = if settle_moves { p * s } else { p };
                    let [upnl, req] = if maint {
                        t.maintenance(u, market as usize, qty, entry, mark * s, p)
                    } else {
                        [h.contract.pnl(qty, entry, mark * s) * p, 0.0]
                    };
                    (upnl.min(0.0) + upnl.max(0.0) * w, req)
                }
                Row::Scaled { adj, req } => (adj * s, if maint { req * s } else { 0.0 }),
                Row::Holding { asset, qp, w } => (u.assets.haircuts.discounted(asset as usize, qp * s) * w, 0.0),
            };
            g += adj - req;
            gross += adj.abs() + req.abs();
        }
        (g, gross)
    }

    /// [`Terms::exact`] at s = 1, from the rows' numbers at s = 1 where the account's [`Base`]
    /// gave them (summed as `exact` sums: the same bits).
    pub(super) fn exact_at_one(&self, u: &Universe, t: &Tables) -> [(f64, f64); 2] {
        if self.at1.len() != self.rows.len() {
            return [self.exact(u, t, 1.0, true), self.exact(u, t, 1.0, false)];
        }
        let mut out = [(0.0, 0.0); 2];
        for &[adj, req] in &self.at1 {
            for ((g, gross), req) in out.iter_mut().zip([req, 0.0]) {
                *g += adj - req;
                *gross += adj.abs() + req.abs();
            }
        }
        out
    }

    #[inline(always)]
    fn push(&mut self, t: &Tables, kind: Kind, req: bool, basis: Option<Basis>) {
        if let Some(b) = basis {
            match self.basis {
                None => self.basis = Some(b),
                Some(x) if x != b => self.mixed = true,
                Some(_) => {}
            }
        }
        if kind.breakpoints(t) > 0 {
            self.terms.push(Term::new(kind, req, t));
            return;
        }
        // One piece: no sweep ever crosses it.
        let k = kind.coef(t, 0);
        let sign = if req { -1.0 } else { 1.0 };
        let gaps = if req { 1 } else { 2 };
        for (line, abs) in self.fixed.iter_mut().zip(&mut self.fixed_abs).take(gaps) {
            for ((l, a), k) in line.iter_mut().zip(abs).zip(k) {
                *l += sign * k;
                *a += k.abs();
            }
        }
    }

    /// The basis of the search: s unless every moving term is in 1/s; `None` when they mix.
    fn basis(&self) -> Option<Basis> {
        if self.mixed {
            None
        } else {
            Some(self.basis.unwrap_or(Basis::S))
        }
    }
}

/// Whether a moving market's maintenance is a bracket requirement the walk can follow: no
/// size-scaled rate, no size premium, a continuous shape, no fee reserve.
#[inline]
fn plain(h: &MarketHot) -> bool {
    !h.scaled && h.imf_factor == 0.0 && h.shape[1] == Shape::Continuous && h.liquidation_fee == 0.0
}

/// The terms of one perp or future whose mark moves: its uPnL (`weight` on a profit) and its
/// maintenance requirement, USD at settle price `p`, the coin moving too when
/// `settle_moves`. `None` for a linear contract settled in the moving coin (quadratic in s).
#[allow(clippy::too_many_arguments)]
fn push_moving(
    out: &mut Terms,
    t: &Tables,
    u: &Universe,
    k: usize,
    qty: f64,
    entry: f64,
    mark: f64,
    p: f64,
    weight: f64,
    settle_moves: bool,
) -> Option<()> {
    let h = &u.market_hot[k];
    if !plain(h) {
        return None;
    }
    let size = h.contract.size_of(qty);
    let inverse = match h.contract.payoff {
        Payoff::Inverse => true,
        Payoff::Linear => false,
        Payoff::Premium => return None,
    };
    if settle_moves && !inverse {
        return None;
    }
    out.rows.push(Row::Position { market: k as u32, qty, entry, mark, p, w: weight, settle_moves });
    let at = entry / mark;
    let loss_below = size > 0.0;
    let (u_coef, basis) = match (inverse, settle_moves) {
        // size·(M·s − e)·P
        (false, _) => ([-size * entry * p, size * mark * p], Basis::S),
        // size·(1/e − 1/(M·s))·P
        (true, false) => ([size / entry * p, -size / mark * p], Basis::InvS),
        // size·(s/e − 1/M)·P
        (true, true) => ([-size / mark * p, size / entry * p], Basis::S),
    };
    out.push(t, Kind::Pnl { u: u_coef, w: weight, at, loss_below }, false, Some(basis));
    if h.entry_basis {
        // Maintenance on the notional at entry: constant in settle units.
        let at_entry = h.contract.notional(qty, entry);
        let r = u.markets.brackets.requirement_in(h.tiers.0 as usize, h.tiers.1 as usize, at_entry)[1] * p;
        let c = if settle_moves { [0.0, r] } else { [r, 0.0] };
        out.push(t, Kind::Flat(c), true, settle_moves.then_some(Basis::S));
    } else {
        let nq = if inverse { size.abs() / mark } else { size.abs() * mark };
        let kind = Kind::Brackets { market: k as u32, nq, p, inverse, settle_moves };
        let basis = if inverse && !settle_moves { Basis::InvS } else { Basis::S };
        out.push(t, kind, true, Some(basis));
    }
    Some(())
}

/// The moving terms of an account's cross pool under driver `d`; `None` where g is not
/// piecewise linear in one basis (see the module docs).
pub(super) fn cross_terms(
    rows: AccountRows<'_>,
    ctx: &MarginContext<'_>,
    moves: &Moves,
    t: &Tables,
    d: Driver,
    base: Option<&Base>,
    out: &mut Terms,
) -> Option<Basis> {
    let u = ctx.universe;
    if u.two_sided {
        return None;
    }
    out.clear();
    let (und, asset) = match d {
        Driver::Market(m) => (u.markets.underlying[m] as usize, None),
        Driver::Underlying(x) => (x, moves.asset_of[x]),
    };
    let positions = rows.pos_code.iter().zip(rows.pos_qty).zip(rows.pos_entry).zip(rows.pos_isolated);
    for (i, (((&code, &qty), &entry), &iso)) in positions.enumerate() {
        if iso > 0.0 || qty == 0.0 {
            continue;
        }
        let k = ctx.remap.market[code as usize] as usize;
        let h = &u.market_hot[k];
        if h.liquidation_fee > 0.0 {
            return None;
        }
        let settle_moves = asset == Some(h.settle as usize);
        if h.is_option() {
            if u.markets.underlying[k] as usize == und || settle_moves {
                return None;
            }
            continue;
        }
        let moving = match d {
            Driver::Market(m) => m == k,
            Driver::Underlying(x) => u.markets.underlying[k] as usize == x,
        };
        // The prices only where the row enters g (most rows of a search do not).
        let prices = || (ctx.prices.mark[k], ctx.prices.asset[h.settle as usize]);
        if moving {
            let (mark, p) = prices();
            push_moving(out, t, u, k, qty, entry, mark, p, h.upnl_weight[1], settle_moves)?;
            if let Some(b) = base {
                out.at1.push(b.pos[i]);
            }
        } else if settle_moves {
            // Amounts in the moving coin: their USD value scales with s.
            let [collateral, req] = match base {
                Some(b) => b.pos[i],
                None => {
                    let (mark, p) = prices();
                    let [upnl, req] = t.maintenance(u, k, qty, entry, mark, p);
                    [upnl.min(0.0) + upnl.max(0.0) * h.upnl_weight[1], req]
                }
            };
            out.push(t, Kind::Flat([0.0, collateral]), false, Some(Basis::S));
            out.push(t, Kind::Flat([0.0, req]), true, Some(Basis::S));
            out.rows.push(Row::Scaled { adj: collateral, req });
            if base.is_some() {
                out.at1.push([collateral, req]);
            }
        }
    }
    if let Some(a) = asset {
        let hot = &u.asset_hot[a];
        let price = ctx.prices.asset[a];
        for (i, (&code, &qty)) in rows.bal_code.iter().zip(rows.bal_qty).enumerate() {
            if ctx.remap.asset[code as usize] as usize != a || qty == 0.0 {
                continue;
            }
            // The row's weight: as the account's base computed it, else by the same formula.
            let w = match base {
                Some(b) => {
                    out.at1.push([b.bal[i], 0.0]);
                    b.bal_w[i]
                }
                None if qty > 0.0 => {
                    let cap =
                        if hot.imf_factor == 0.0 { f64::INFINITY } else { imf::discount_cap(hot.imf_factor, qty) };
                    hot.weight[1].min(cap)
                }
                None => {
                    let w = hot.liability_weight[1];
                    if hot.imf_factor == 0.0 {
                        w
                    } else {
                        imf::premium(w, imf::premium_term(hot.imf_factor, qty))
                    }
                }
            };
            let qp = qty * price;
            if qty > 0.0 {
                out.concave &= t.falling[a];
                out.push(t, Kind::Tiered { asset: a as u32, qp, w }, false, Some(Basis::S));
                out.rows.push(Row::Holding { asset: a as u32, qp, w });
            } else {
                out.push(t, Kind::Flat([0.0, qp * w]), false, Some(Basis::S));
                out.rows.push(Row::Scaled { adj: qp * w, req: 0.0 });
            }
        }
    }
    out.basis()
}

/// The moving terms of an isolated position (margin + uPnL − its maintenance, USD; the uPnL
/// at full weight); `None` where it is not piecewise linear.
#[allow(clippy::too_many_arguments)]
pub(super) fn isolated_terms(
    ctx: &MarginContext<'_>,
    moves: &Moves,
    t: &Tables,
    d: Driver,
    k: usize,
    qty: f64,
    entry: f64,
    margin: f64,
    out: &mut Terms,
) -> Option<Basis> {
    let u = ctx.universe;
    out.clear();
    let h = &u.market_hot[k];
    let asset = match d {
        Driver::Market(_) => None,
        Driver::Underlying(x) => moves.asset_of[x],
    };
    let settle_moves = asset == Some(h.settle as usize);
    let (mark, p) = (ctx.prices.mark[k], ctx.prices.asset[h.settle as usize]);
    push_moving(out, t, u, k, qty, entry, mark, p, 1.0, settle_moves)?;
    if settle_moves {
        out.push(t, Kind::Flat([0.0, margin * p]), false, Some(Basis::S));
        out.rows.push(Row::Scaled { adj: margin * p, req: 0.0 });
    }
    out.basis()
}

/// What a walk found for one gap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Walk {
    /// The factor of the nearest sign change, and the gross of g there (the sum of the
    /// magnitudes of the terms it nets: its rounding is a few ulps of that).
    Root(f64, f64),
    /// No sign change in [S_MIN, S_MAX].
    None,
    /// The model and g(1) disagree: search with the full model instead.
    Fail,
}

/// One gap's state in a sweep: maintenance (every term) or bankruptcy (requirements left out).
#[derive(Debug, Clone, Copy)]
struct Gap {
    maint: bool,
    safe: bool,
    /// The constant part: g(1) less the moving terms at s = 1.
    c: f64,
    /// The current segment's line c0 + c1·x, updated at each crossing of one of its terms.
    g: [f64; 2],
    /// Whether `g` was summed afresh since the last crossing of one of its terms.
    fresh: bool,
    /// Where the gap's current segment starts: 1 or the last breakpoint of one of its terms.
    near: f64,
    /// The farthest factor searched.
    limit: f64,
    /// Whether the end check of a concave gap is done (or does not apply).
    checked: bool,
    found: Option<Walk>,
}

impl Terms {
    /// Σ of the terms' current pieces and the one-piece terms (requirements subtracted at
    /// maintenance, left out of the bankruptcy gap) plus `c`.
    #[inline]
    fn sum(&self, maint: bool, c: f64) -> [f64; 2] {
        let f = self.fixed[usize::from(!maint)];
        let mut g = [c + f[0], f[1]];
        for term in &self.terms {
            if term.req && !maint {
                continue;
            }
            let x = term.k;
            let sign = if term.req { -1.0 } else { 1.0 };
            g[0] += sign * x[0];
            g[1] += sign * x[1];
        }
        g
    }

    /// [`Terms::sum`] with c = 0 of the maintenance and the bankruptcy gap, in one pass.
    #[inline]
    fn sum_both(&self) -> [[f64; 2]; 2] {
        let mut g = self.fixed;
        for term in &self.terms {
            let x = term.k;
            let sign = if term.req { -1.0 } else { 1.0 };
            g[0][0] += sign * x[0];
            g[0][1] += sign * x[1];
            if !term.req {
                g[1][0] += sign * x[0];
                g[1][1] += sign * x[1];
            }
        }
        g
    }

    /// |c| + Σ |term| at factor s (the current pieces, the one-piece terms): the gross of g.
    fn gross(&self, basis: Basis, maint: bool, c: f64, s: f64) -> f64 {
        let x = basis.phi(s);
        let f = self.fixed_abs[usize::from(!maint)];
        let mut sum = c.abs() + f[0] + f[1] * x;
        for term in self.terms.iter().filter(|term| maint || !term.req) {
            let k = term.k;
            sum += k[0].abs() + (k[1] * x).abs();
        }
        sum
    }

    /// g of a gap at the walk's limit, each term on its piece there (called before the first
    /// crossing: every term on its piece at s = 1), the one-piece terms with them.
    fn at_limit(&self, t: &Tables, basis: Basis, maint: bool, c: f64, limit: f64, up: bool) -> f64 {
        let x = basis.phi(limit);
        let f = self.fixed[usize::from(!maint)];
        let mut at = c + f[0] + f[1] * x;
        for term in self.terms.iter().filter(|term| maint || !term.req) {
            let j = term.piece_toward(t, limit, up);
            let k = if j == term.j { term.k } else { term.coef(t, j) };
            at += if term.req { -(k[0] + k[1] * x) } else { k[0] + k[1] * x };
        }
        at
    }

    /// The nearest sign change of the maintenance and the bankruptcy gap (g(1) = `g1`, from
    /// the full model) in one direction, each no farther than its `limit` (factors: < 1
    /// downward, > 1 upward), in one pass over the breakpoints of every term; gaps not `run`
    /// are left out. The lines' coefficients are updated as each breakpoint is crossed (O(1)
    /// per crossing; the bankruptcy line only at its own terms' breakpoints) and summed afresh
    /// in the segment that changes sign, whose root is then solved in closed form. `UP` the
    /// direction, a constant: each direction compiled apart, without its `if up` branches.
    fn sweep<const UP: bool>(
        &mut self,
        t: &Tables,
        basis: Basis,
        g1: [f64; 2],
        limit: [f64; 2],
        run: [bool; 2],
    ) -> [Walk; 2] {
        let up = UP;
        for term in &mut self.terms {
            term.j = if up { term.j_up } else { term.j_down };
            term.next = term.start[usize::from(up)];
            term.k = if term.j == term.j_down { term.k_down } else { term.coef(t, term.j) };
        }
        let concave = self.concave;
        let at1 = self.sum_both();
        let mut gaps = [true, false].map(|maint| {
            let i = usize::from(!maint);
            let safe = g1[i] >= 0.0;
            let at1 = at1[i];
            let c = g1[i] - (at1[0] + at1[1] * basis.phi(1.0));
            let g = [at1[0] + c, at1[1]];
            let mut found = (!run[i]).then_some(Walk::None);
            if !safe && concave {
                // Below the boundary and concave: where g does not rise in the walk's direction
                // from s = 1 it never rises farther out (its slope in x only falls), so it
                // stays below 0 on this side.
                let rising = g[1] * if (basis == Basis::S) == up { 1.0 } else { -1.0 };
                if rising <= 0.0 {
                    found = Some(Walk::None);
                }
            }
            let checked = !(safe && concave);
            Gap { maint, safe, c, g, fresh: true, near: 1.0, limit: limit[i], checked, found }
        });
        let at = |g: [f64; 2], s: f64| g[0] + g[1] * basis.phi(s);
        loop {
            // The far end of the segment: the next breakpoint of any term in the walk's
            // direction, or the farthest limit of a gap still walking.
            let mut far = f64::NAN;
            for gap in gaps.iter().filter(|g| g.found.is_none()) {
                far = if up { gap.limit.max(far) } else { gap.limit.min(far) };
            }
            if far.is_nan() {
                break;
            }
            // `far` is a number here (a gap's limit) and a NaN breakpoint is nearer than
            // nothing: plain comparisons give f64::min / max's result without their NaN
            // handling.
            for term in &self.terms {
                if (up && term.next < far) || (!up && term.next > far) {
                    far = term.next;
                }
            }
            for gap in gaps.iter_mut().filter(|g| g.found.is_none()) {
                let nearer = if up { gap.limit < far } else { gap.limit > far };
                let end = if nearer { gap.limit } else { far };
                let (mut at_near, mut at_far);
                loop {
                    at_near = (at(gap.g, gap.near) >= 0.0) != gap.safe;
                    at_far = (at(gap.g, end) >= 0.0) != gap.safe;
                    if (at_near || at_far) && !gap.fresh {
                        // Updated coefficients carry the rounding of every crossing: sum afresh.
                        gap.g = self.sum(gap.maint, gap.c);
                        gap.fresh = true;
                        continue;
                    }
                    break;
                }
                gap.found = if at_near {
                    // A sign change at the breakpoint itself (to rounding).
                    Some(Walk::Root(gap.near, self.gross(basis, gap.maint, gap.c, gap.near)))
                } else if at_far {
                    let s = basis.inverse(-gap.g[0] / gap.g[1]);
                    Some(if !s.is_finite() {
                        Walk::Fail
                    } else {
                        let s = if up { s.clamp(gap.near, end) } else { s.clamp(end, gap.near) };
                        Walk::Root(s, self.gross(basis, gap.maint, gap.c, s))
                    })
                } else if end == gap.limit {
                    Some(Walk::None)
                } else if !gap.checked {
                    // Concave g (brackets' rates never fall, weights ≤ 1) safe at s = 1 and
                    // not crossing in the first segment: its minimum over the rest of the
                    // side is at the limit, so g ≥ 0 there means no sign change on this side.
                    gap.checked = true;
                    (self.at_limit(t, basis, gap.maint, gap.c, gap.limit, up) >= 0.0).then_some(Walk::None)
                } else {
                    None
                };
            }
            if gaps.iter().all(|g| g.found.is_some()) {
                break;
            }
            // Cross the breakpoints at `far`: each term there moves to its next piece.
            let [m, b] = &mut gaps;
            for term in &mut self.terms {
                if term.next != far {
                    continue;
                }
                let old = term.k;
                while term.next == far {
                    term.j = if up { term.j + 1 } else { term.j - 1 };
                    term.next = term.next_break(t, up);
                }
                let new = term.coef(t, term.j);
                term.k = new;
                let sign = if term.req { -1.0 } else { 1.0 };
                m.g[0] += sign * (new[0] - old[0]);
                m.g[1] += sign * (new[1] - old[1]);
                m.fresh = false;
                if !term.req {
                    b.g[0] += sign * (new[0] - old[0]);
                    b.g[1] += sign * (new[1] - old[1]);
                    b.fresh = false;
                    b.near = far;
                }
            }
            m.near = far;
        }
        gaps.map(|g| g.found.unwrap_or(Walk::None))
    }

    /// The factors nearest 1 (log distance, ties downward) in [S_MIN, S_MAX] at which the
    /// maintenance and the bankruptcy gap (g(1) = `g1`) change sign (NaN if none), and the gross
    /// of g there, from one sweep downward and one upward; `None` for a gap the walk cannot
    /// place or that is not `run`.
    pub(super) fn nearest(
        &mut self,
        t: &Tables,
        basis: Basis,
        g1: [f64; 2],
        run: [bool; 2],
    ) -> [Option<(f64, f64)>; 2] {
        let mut best = [(f64::NAN, 0.0); 2];
        let mut ok = run;
        let down = self.sweep::<false>(t, basis, g1, [S_MIN; 2], ok);
        for i in 0..2 {
            match down[i] {
                Walk::Root(s, gross) => best[i] = (s, gross),
                Walk::None => {}
                Walk::Fail => ok[i] = false,
            }
        }
        // Upward, no farther than the root found downward.
        let limit = best.map(|b| if b.0.is_nan() { S_MAX } else { 1.0 / b.0 });
        let up = self.sweep::<true>(t, basis, g1, limit, ok);
        for i in 0..2 {
            match up[i] {
                Walk::Root(r, gross) if best[i].0.is_nan() || r.ln() < -best[i].0.ln() => best[i] = (r, gross),
                Walk::Fail => ok[i] = false,
                _ => {}
            }
        }
        [0, 1].map(|i| ok[i].then_some(best[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::universe::fixtures::{asset, perp};

    /// Bracket bounds 1,000 / 5,000 / 20,000 (+∞) and haircut bounds 2,000 / 9,000 (+∞).
    fn tables() -> Tables {
        let mut btc = asset("BTC", 50_000.0);
        btc.haircut_tiers = vec![(2_000.0, 1.0), (9_000.0, 0.9), (f64::INFINITY, 0.5)];
        let lin = perp(
            "L",
            "USDT",
            "BTC",
            50_000.0,
            &[(1_000.0, 0.01, 0.005), (5_000.0, 0.02, 0.01), (20_000.0, 0.04, 0.02), (f64::INFINITY, 0.1, 0.05)],
        );
        Tables::new(&Universe::new(&[asset("USDT", 1.0), btc], &[lin]).unwrap())
    }

    /// The term's breakpoints below `s`, counted one by one with [`Term::brk`].
    fn count_below(term: &Term, t: &Tables, s: f64) -> u32 {
        (0..term.n).filter(|&j| term.brk(t, j) < s).count() as u32
    }

    /// Notionals at, an ulp either side of and between every bound.
    fn notionals() -> Vec<f64> {
        let mut out = vec![1.0, 700.0, 1e5, 1e9];
        for b in [1_000.0f64, 2_000.0, 5_000.0, 9_000.0, 20_000.0] {
            out.extend([
                b,
                b.next_up(),
                b.next_down(),
                b * (1.0 + 1e-16),
                b * (1.0 - 1e-16),
                b * 3.0 / 7.0 * 7.0 / 3.0,
            ]);
        }
        out
    }

    #[test]
    fn pieces_at_one_are_the_breakpoints_below_one_by_division() {
        // The count by comparing bounds with the notional, taken back where a quotient rounds
        // to 1, equals the count of breakpoints < 1 by division, also an ulp off a bound.
        let t = tables();
        for nq in notionals() {
            for inverse in [false, true] {
                let kind = Kind::Brackets { market: 0, nq, p: 1.0, inverse, settle_moves: false };
                let term = Term::new(kind, true, &t);
                assert_eq!(term.j_down, count_below(&term, &t, 1.0), "{nq} inverse {inverse}");
                assert_eq!(term.j_up, count_below(&term, &t, 1f64.next_up()), "{nq} inverse {inverse}");
            }
            let term = Term::new(Kind::Tiered { asset: 1, qp: nq, w: 1.0 }, false, &t);
            assert_eq!(term.j_down, count_below(&term, &t, 1.0), "{nq} tiered");
        }
    }

    #[test]
    fn maintenance_is_position_margin_hot_bit_for_bit() {
        // Linear and inverse, marks at, an ulp either side of and between every bound (and a
        // NaN), both signs, losses and profits.
        let lin = perp(
            "L",
            "USDT",
            "BTC",
            50_000.0,
            &[(1_000.0, 0.01, 0.005), (5_000.0, 0.02, 0.01), (f64::INFINITY, 0.1, 0.05)],
        );
        let mut inv =
            perp("I", "BTC", "BTC", 50_000.0, &[(0.02, 0.02, 0.01), (0.1, 0.04, 0.03), (f64::INFINITY, 0.1, 0.05)]);
        inv.inverse = true;
        let u = Universe::new(&[asset("USDT", 1.0), asset("BTC", 50_000.0)], &[lin, inv]).unwrap();
        let t = Tables::new(&u);
        let mut marks = vec![f64::NAN, 1e-3, 7.0, 1e9];
        for nq in notionals() {
            marks.extend([nq, nq / 0.3, 1.0 / nq, 0.3 / nq]);
        }
        for k in 0..2 {
            let h = &u.market_hot[k];
            for &mark in &marks {
                for qty in [1.0, -0.3, 2.5e-4, 0.0] {
                    let pm = position_margin_hot(&u.markets.brackets, h, qty, 900.0, mark, 1.7);
                    let [upnl, req] = t.maintenance(&u, k, qty, 900.0, mark, 1.7);
                    assert_eq!(upnl.to_bits(), pm.upnl.to_bits(), "{k} {mark} {qty}");
                    assert_eq!(req.to_bits(), pm.requirement[1].to_bits(), "{k} {mark} {qty}");
                }
            }
        }
    }

    #[test]
    fn a_term_fits_128_bytes() {
        // Larger, it is copied into the terms by a call to memcpy (a tenth of the search's time).
        assert!(std::mem::size_of::<Term>() <= 128, "{}", std::mem::size_of::<Term>());
    }

    #[test]
    fn pieces_toward_a_limit_count_the_breakpoints_below_it() {
        let t = tables();
        for nq in notionals() {
            for inverse in [false, true] {
                let kind = Kind::Brackets { market: 0, nq, p: 1.0, inverse, settle_moves: false };
                let mut term = Term::new(kind, true, &t);
                for (up, limits) in [(false, [1e-6, 0.5, 0.999_999]), (true, [1.000_001, 2.0, 1e6])] {
                    term.j = if up { term.j_up } else { term.j_down };
                    for limit in limits {
                        let want = count_below(&term, &t, limit);
                        assert_eq!(term.piece_toward(&t, limit, up), want, "{nq} {inverse} {limit}");
                    }
                }
            }
        }
    }
}
