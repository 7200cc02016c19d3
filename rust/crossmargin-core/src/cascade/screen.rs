//! Incremental selection (docs/MODEL.md "Liquidation cascades", "Incremental rounds"): a
//! round re-evaluates only the accounts that might need action. An account that
//! [`Shard::select`](super::step::Shard::select) found safe gets a *certificate*: a band
//! [c·(1 − δ), c·(1 + δ)] around each of its markets' marks c at that round, within which it
//! provably stays safe. Later rounds skip it while every one of its marks stays inside its
//! band, its rows are untouched (settled, deleveraged: [`Certificates::invalidate`]) and the
//! asset prices are those of the certificate (a new path step clears every certificate).
//!
//! Why skipping changes nothing. Within a step only marks move. For a perp or future, with
//! the asset prices fixed, each position's uPnL is monotone in its mark (linear: S·(m − e);
//! inverse: S·(1/e − 1/m)), its counted uPnL min(u, 0) + w·max(u, 0) is monotone in the
//! uPnL (w ≥ 0), its notional is monotone in the mark and its requirement is non-decreasing
//! in the notional (bracket rates never decrease, slopes and the size premium are ≥ 0,
//! entry-basis maintenance is constant). So over the band each term is bounded below by its
//! value at one of the two ends — counted uPnL at the end with the lower uPnL, requirement
//! at the end with the larger one — and balances do not move. The account is certified when,
//! with both ends' worst terms,
//!   - the cross pool's adjusted maintenance equity minus its requirement,
//!   - the cross equity (balances + cross uPnL), and
//!   - every isolated position's margin + uPnL minus its requirement
//!
//! each exceed [`HEADROOM`] × the sum of the magnitudes of the terms — far above the rounding
//! of the kernel's sums (a few ulps per row), so the kernel's own numbers at any mark in the
//! band keep the account out of [`policy::select`](super::policy::select). Accounts holding
//! what this argument does not cover — options (they move with their underlying's forward),
//! venue rules whose terms couple the positions (two-sided valuation, closing-fee reserves,
//! Drift's uPnL size discount) — are never certified: they are evaluated every round.
//!
//! Slack certificates ([`View::anchor`], docs/MODEL.md "Incremental rounds"). Every
//! evaluation that finds an account safe also gives it a tolerance τ from numbers it already
//! has: a position's uPnL and notional move by at most N·ρ when its mark moves by r from the
//! anchor (ρ = r / (1 − r): exact for linear, the bound for inverse), and a continuous-bracket
//! requirement by at most its bracket's rate times that; so each trigger's room divided by
//! Σ N × (max(1, w) + rate) bounds the ρ it survives. A later round skips the account while the
//! largest relative move since the anchor of a mark it holds keeps ρ < τ — not counting a move
//! of ρ ≤ 1 that all of its positions in that market gain from (a fall for a linear short, a
//! rise for an inverse long, either for a closed position: [`View::anchor`]). An account
//! whose positions are all closed (quantity 0) has the same lines at any finite marks: τ = +∞.
//! No attempt, no band: the crash's first step, where marks move 4–21 % a round and band certificates are not tried,
//! skips the accounts whose room is larger than the move. A band is tried only where an
//! evaluation gave no slack certificate (on the 1M demo bands beside them spared 3 of 7.7M
//! evaluations).
//!
//! Kept balance totals. For the same reason (only marks move within a step) an evaluated
//! account's balance part — the kernel's running sums after its balance loop — is the same
//! floats every round of the step until its rows change, wherever no balance line reads the
//! positions or the marks (two-sided valuation under venue rules does:
//! [`balances_fixed`](crate::margin::balances_fixed)). The first evaluation in the step keeps
//! them and later ones resume the kernel from them ([`View::evaluate`]); a new step and
//! [`Certificates::invalidate`] drop them with the certificates.

use crate::brackets::Shape;
use crate::cascade::policy;
use crate::cascade::state::State;
use crate::contract::Payoff;
use crate::margin::{
    balances_fixed, evaluate_balances_into, evaluate_positions_onto, position_margin, AccountMargin, BalanceLine,
    BalanceSums, MarginContext, PositionLine, RowLookup, RowSink,
};
use crate::memory::column;
use crate::universe::Universe;

/// Band half-widths (relative to the mark) a certificate can have. Each account keeps a hint
/// of the width it last held: a certification tries the hint, then one step wider (after a
/// pass) or narrower (after a failure), so it costs one to two bound evaluations.
pub const DELTAS: [f64; 4] = [0.01, 0.05, 0.15, 0.4];
/// Relative margin a certificate keeps over the rounding of the kernel's sums.
pub const HEADROOM: f64 = 1e-9;
/// After a failed certification, how many of the account's evaluations pass before the next
/// attempt (the account is evaluated exactly meanwhile; only the attempt is saved).
const WAIT: u8 = 2;
/// Certificates are made from this selection at one set of asset prices on (the step's third
/// round): a step that settles in a round or two never pays for certificates it cannot use.
const FROM_CALL: u32 = 2;
/// A market whose mark has moved by more than this share from one selection to the next
/// within the current path step is volatile for the rest of the step (impact and its decay
/// swing a mark back and forth, so a calm round says little about the next): an account
/// holding it is evaluated every round without a certification attempt. On the 1M demo
/// (`python -m benches.cascade_demo`) the marks move 4–21 % a round through the crash's first
/// step and 0.2–2 % in its last; certifying everywhere cost ≈ 20 % of the cascade's CPU, most
/// of it in the first step, where the certificates broke before they were used. The width
/// ladder's second rung
/// ([`DELTAS`]\[1\], where a certification starts) is the scale.
pub const CALM: f64 = DELTAS[1];
const NONE: u32 = u32::MAX;
/// Universes with at most this many markets give slack certificates per-market masks
/// ([`Cert::markets`]); larger ones compare every mark's move.
const MASKED: usize = 32;

/// The balance rows' part of an account's evaluation: the kernel's running sums after its
/// balance loop ([`BalanceSums`]) and Σ |value| + |maintenance collateral| of its lines,
/// gathered as the kernel evaluates them. A certification reads these instead of evaluating
/// the balances a second time, and a later round of the step resumes the kernel from them
/// ([`View::evaluate`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct BalanceTotals {
    /// Set by whoever runs the balance loop ([`View::evaluate`] from the kernel's return
    /// value), not by the sink, which adds only the magnitude.
    pub sums: BalanceSums,
    magnitude: f64,
}

impl RowSink for BalanceTotals {
    #[inline]
    fn balance(&mut self, line: &BalanceLine) {
        self.magnitude += line.value.abs() + line.collateral[1].abs();
    }
}

/// What a selection gathers from an account's evaluation as the kernel runs it: the balance
/// totals a certification reads, and the positions' total notional the deleveraging ranking
/// caches — the kernel's own line notionals summed in row order from 0, the terms and order
/// of [`policy::positions_notional`](super::policy::positions_notional), so the same float
/// without a second pass over the positions.
///
/// It also gathers what a slack certificate ([`View::anchor`]) reads: the cross positions'
/// notional, Σ |term| of the position lines, and the least room of the isolated positions.
#[derive(Debug, Clone, Copy)]
pub struct Gathered<'r> {
    pub balances: BalanceTotals,
    pub notional: f64,
    /// Per market, its [`SlackRate`] at the step's asset prices (empty: no slack certificate).
    rates: &'r [SlackRate],
    /// Σ |notional| × rate ([`SlackRate::of`]) of the cross positions (USD).
    cross_notional: f64,
    /// Σ |uPnL| + |counted uPnL| + |maintenance requirement| + |isolated margin| of the lines.
    magnitude: f64,
    /// The least (margin + uPnL − requirement − 2·[`HEADROOM`]·Σ |those|) / notional of the
    /// isolated positions (+∞ without any, 0 where one has no room).
    iso_room: f64,
}

impl Default for Gathered<'_> {
    fn default() -> Self {
        Gathered {
            balances: BalanceTotals::default(),
            notional: 0.0,
            rates: &[],
            cross_notional: 0.0,
            magnitude: 0.0,
            iso_room: f64::INFINITY,
        }
    }
}

impl<'r> Gathered<'r> {
    /// Empty, gathering the slack certificate's numbers at `view`'s rates.
    pub fn new(view: &View<'r>) -> Self {
        Gathered { rates: view.rates, ..Default::default() }
    }
}

impl RowSink for Gathered<'_> {
    #[inline]
    fn balance(&mut self, line: &BalanceLine) {
        self.balances.balance(line);
    }

    #[inline]
    fn position(&mut self, line: &PositionLine) {
        self.notional += line.notional;
        let req = line.requirement[1];
        let own = line.upnl.abs() + req.abs() + line.isolated_margin.abs();
        self.magnitude += own + line.collateral[1].abs();
        let n = line.notional.abs();
        let per_unit = n * self.rates.get(line.market).map_or(f64::INFINITY, |r| r.of(n));
        if line.isolated_margin > 0.0 {
            let room = room(line.isolated_margin + line.upnl - req, own, per_unit);
            self.iso_room = self.iso_room.min(room);
        } else {
            self.cross_notional += per_unit;
        }
    }
}

/// How fast a market's positions can lower a trigger the selection reads, per USD of
/// notional and unit of relative mark move ρ ≤ 1 (see [`slack_factor`]): max(1, w) for the
/// uPnL counted at weight w, plus the slope of the maintenance requirement, which for
/// continuous brackets is the rate of the bracket the notional is in — at most the first
/// bracket's while the notional stays within its bound, at most the largest rate beyond.
#[derive(Debug, Clone, Copy)]
pub struct SlackRate {
    /// The first bracket's bound in USD at the step's settle price.
    first_bound: f64,
    /// The factor while the notional stays within it, and beyond (+∞: not covered).
    first: f64,
    top: f64,
}

impl SlackRate {
    /// Whether a slack certificate covers the market.
    #[inline]
    fn covered(&self) -> bool {
        self.top.is_finite()
    }

    /// The factor of a position of `notional` USD: a move of ρ ≤ 1 takes its notional to at
    /// most (1 + ρ) × it ≤ twice it.
    #[inline]
    fn of(&self, notional: f64) -> f64 {
        if 2.0 * notional <= self.first_bound {
            self.first
        } else {
            self.top
        }
    }
}

/// How far (in the relative units of [`View::anchor`]) a quantity at `slack` above its
/// trigger, computed from terms of Σ |term| = `magnitude`, can fall at `per_unit` a unit
/// before it comes within [`HEADROOM`] of the trigger: 0 when it is already there (or NaN),
/// +∞ when nothing moves it.
#[inline]
fn room(slack: f64, magnitude: f64, per_unit: f64) -> f64 {
    let s = slack - 2.0 * HEADROOM * magnitude;
    let r = s / per_unit;
    if s > 0.0 && r >= 0.0 {
        r
    } else {
        0.0
    }
}

/// One account's certificate.
#[derive(Debug, Clone, Copy)]
pub struct Cert {
    /// Index into the centres, NONE when uncertified.
    at: u32,
    /// Index into [`DELTAS`] of the certificate, and of the next attempt.
    width: u8,
    /// Evaluations to let pass before the next attempt.
    wait: u8,
    /// Whether the account's [`BalanceTotals`] at the step's asset prices are kept.
    held: bool,
    /// The centre of the account's slack certificate ([`View::anchor`]), NONE without one.
    slack_at: u32,
    /// The slack certificate's tolerance: the account stays safe while every mark's move ρ
    /// from that centre stays below it — every mark of a market it holds, not counting a
    /// market whose mark moved the way that only adds room ([`View::anchor`]).
    tolerance: f32,
    /// The markets it holds (bit k: market k; read only where the universe has at most
    /// [`MASKED`] markets), and those where every one of its positions gains room as the
    /// mark falls (linear shorts) or as it rises (inverse longs), or is closed (qty 0).
    markets: u32,
    gains_on_fall: u32,
    gains_on_rise: u32,
}

impl Cert {
    /// The account's rows changed: no certificate and no kept balance totals.
    #[inline]
    pub fn invalidate(&mut self) {
        (self.at, self.held, self.slack_at) = (NONE, false, NONE);
    }
}

#[cfg(test)]
impl Cert {
    /// A certificate holding kept balance totals (a test's starting point).
    pub fn kept_for_test() -> Cert {
        Cert { held: true, ..Cert::default() }
    }

    pub fn is_held(&self) -> bool {
        self.held
    }
}

impl Default for Cert {
    fn default() -> Self {
        Cert {
            at: NONE,
            width: 1,
            wait: 0,
            held: false,
            slack_at: NONE,
            tolerance: 0.0,
            markets: 0,
            gains_on_fall: 0,
            gains_on_rise: 0,
        }
    }
}

/// The shard's certificates (see the module documentation).
#[derive(Debug, Clone)]
pub struct Certificates {
    /// Off: every account is evaluated every round (the reference the tests compare with).
    pub enabled: bool,
    /// Asset prices (bits) the certificates hold at.
    key: Vec<u64>,
    /// The marks of each round that certified accounts (band centres).
    centres: Vec<Vec<f64>>,
    /// Selections since the asset prices last changed.
    calls: u32,
    /// The marks of the previous selection at these asset prices (empty at a new step), and
    /// per market whether it has moved by more than [`CALM`] between two selections of this
    /// step.
    last_marks: Vec<f64>,
    moving: Vec<bool>,
    /// Per account.
    pub certs: Vec<Cert>,
    /// Per account, the balance totals of its first evaluation in the step, kept while its
    /// balance rows are untouched (valid where its [`Cert::held`] is set).
    held: Vec<BalanceTotals>,
    market_ok: Vec<bool>,
    asset_ok: Vec<bool>,
    /// Per market, its [`slack_factor`] where a slack certificate covers it.
    slack: Vec<Option<(f64, f64, f64)>>,
    all_slack_ok: bool,
    /// Per market, its [`SlackRate`] at the step's asset prices (from `slack`).
    rates: Vec<SlackRate>,
    /// Per centre, the move ρ of the current marks from it ([`rho`]), where the universe has
    /// more than [`MASKED`] markets (else `market_rho` has it market by market).
    rho: Vec<f64>,
    /// Per market, whether it is inverse (where a rise, not a fall, only adds room).
    inverse: Vec<bool>,
    /// Per centre and market (centre-major), the move ρ of its mark from the centre; per
    /// centre, the markets whose mark fell (rose) from it by ρ ≤ 1. Empty where the universe
    /// has more than [`MASKED`] markets.
    market_rho: Vec<f64>,
    fell: Vec<u32>,
    rose: Vec<u32>,
}

/// Whether the environment leaves the incremental selection on
/// (`CROSSMARGIN_CASCADE_INCREMENTAL=0` switches it off, for comparisons with the full
/// evaluation).
pub fn enabled_by_env() -> bool {
    std::env::var("CROSSMARGIN_CASCADE_INCREMENTAL").map_or(true, |v| v != "0")
}

/// What the selection reads: the universe's certifiable markets and assets and the centres.
#[derive(Debug, Clone, Copy)]
pub struct View<'c> {
    enabled: bool,
    certify_now: bool,
    centres: &'c [Vec<f64>],
    centre: u32,
    market_ok: &'c [bool],
    moving: &'c [bool],
    asset_ok: &'c [bool],
    all_slack_ok: bool,
    rates: &'c [SlackRate],
    rho: &'c [f64],
    inverse: &'c [bool],
    market_rho: &'c [f64],
    fell: &'c [u32],
    rose: &'c [u32],
}

impl Certificates {
    pub fn new(u: &Universe, n_accounts: usize) -> Certificates {
        let venue = u.venue_rules;
        let asset_ok: Vec<bool> = u.asset_hot.iter().map(|a| !(venue && a.two_sided)).collect();
        let market_ok = u
            .market_hot
            .iter()
            .map(|h| {
                let plain = if venue {
                    !h.upnl_rule && h.liquidation_fee == 0.0 && asset_ok[h.settle as usize]
                } else {
                    // The kernel's plain path reads neither (margin::position_margin_plain).
                    !h.scaled && !h.entry_basis
                };
                plain && !h.is_option() && h.upnl_weight[1] >= 0.0
            })
            .collect::<Vec<bool>>();
        let slack: Vec<_> = (0..u.n_markets()).map(|k| slack_factor(u, k).filter(|_| market_ok[k])).collect();
        Certificates {
            all_slack_ok: slack.iter().all(Option::is_some),
            slack,
            rates: Vec::new(),
            rho: Vec::new(),
            inverse: u.market_hot.iter().map(|h| h.contract.payoff == Payoff::Inverse).collect(),
            market_rho: Vec::new(),
            fell: Vec::new(),
            rose: Vec::new(),
            enabled: enabled_by_env(),
            key: Vec::new(),
            centres: Vec::new(),
            calls: 0,
            last_marks: Vec::new(),
            moving: vec![false; u.n_markets()],
            certs: vec![Cert::default(); n_accounts],
            held: column(n_accounts),
            market_ok,
            asset_ok,
        }
    }

    /// Starts a selection at these prices: clears every certificate and kept balance totals
    /// when the asset prices changed; returns the view the selection reads, centred on these
    /// marks, with the per-account certificates and balance totals.
    pub fn begin(
        &mut self,
        u: &Universe,
        assets: &[f64],
        marks: &[f64],
    ) -> (View<'_>, &mut [Cert], &mut [BalanceTotals]) {
        let key: Vec<u64> = assets.iter().map(|x| x.to_bits()).collect();
        if key != self.key || self.centres.len() >= NONE as usize - 1 {
            self.key = key;
            self.rates.clear();
            self.rates.extend(self.slack.iter().enumerate().map(|(k, f)| match *f {
                Some((first_bound, first, top)) => {
                    SlackRate { first_bound: first_bound * assets[u.market_hot[k].settle as usize], first, top }
                }
                None => SlackRate { first_bound: 0.0, first: f64::INFINITY, top: f64::INFINITY },
            }));
            self.centres.clear();
            self.calls = 0;
            self.last_marks.clear();
            self.moving.iter_mut().for_each(|m| *m = false);
            self.certs.iter_mut().for_each(Cert::invalidate);
        } else {
            self.calls = self.calls.saturating_add(1);
        }
        // Which markets have moved fast in this step (none at its first selection).
        for ((moving, &m), &last) in self.moving.iter_mut().zip(marks).zip(&self.last_marks) {
            *moving |= (m - last).abs() > CALM * last.abs();
        }
        self.last_marks.clear();
        self.last_marks.extend_from_slice(marks);
        if self.centres.last().is_none_or(|c| c.as_slice() != marks) {
            self.centres.push(marks.to_vec());
        }
        self.rho.clear();
        self.market_rho.clear();
        self.fell.clear();
        self.rose.clear();
        if marks.len() > MASKED {
            self.rho.extend(self.centres.iter().map(|c| rho(c, marks)));
        } else {
            for c in &self.centres {
                let (mut fell, mut rose) = (0u32, 0u32);
                for (k, (&c, &m)) in c.iter().zip(marks).enumerate() {
                    let r = rho(&[c], &[m]);
                    self.market_rho.push(r);
                    if r <= 1.0 {
                        fell |= u32::from(m < c) << k;
                        rose |= u32::from(m > c) << k;
                    }
                }
                self.fell.push(fell);
                self.rose.push(rose);
            }
        }
        let view = View {
            enabled: self.enabled,
            certify_now: self.calls >= FROM_CALL,
            centres: &self.centres,
            centre: (self.centres.len() - 1) as u32,
            market_ok: &self.market_ok,
            moving: &self.moving,
            asset_ok: &self.asset_ok,
            all_slack_ok: self.all_slack_ok,
            rates: &self.rates,
            rho: &self.rho,
            inverse: &self.inverse,
            market_rho: &self.market_rho,
            fell: &self.fell,
            rose: &self.rose,
        };
        (view, &mut self.certs, &mut self.held)
    }

    /// Account `a`'s rows changed.
    pub fn invalidate(&mut self, a: usize) {
        if let Some(c) = self.certs.get_mut(a) {
            c.invalidate();
        }
    }
}

impl View<'_> {
    /// Account `a`'s cross equity and evaluation at the context's prices — what
    /// [`policy::cross_equity_with_into`] gives, bit for bit — gathering its lines into `g`.
    /// Within a step only the marks move, so an account whose balance lines read nothing else
    /// ([`balances_fixed`]) has the same balance sums every round until its rows change: the
    /// first evaluation keeps them in `held` (`c` records it) and later ones resume the kernel
    /// from them, skipping the balance rows. Off ([`Certificates::enabled`]), nothing is kept:
    /// the balance rows are evaluated every time.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate<L: RowLookup>(
        &self,
        c: &mut Cert,
        held: &mut BalanceTotals,
        state: &State,
        a: usize,
        ctx: &MarginContext<'_>,
        lookup: &L,
        g: &mut Gathered,
    ) -> (f64, AccountMargin) {
        let rows = state.account(a);
        if self.enabled && c.held {
            g.balances = *held;
        } else {
            g.balances.sums = evaluate_balances_into(rows, ctx, lookup, &mut g.balances);
            if self.enabled && balances_fixed(ctx.universe, rows.bal_code) {
                *held = g.balances;
                c.held = true;
            }
        }
        let m = evaluate_positions_onto(g.balances.sums, rows, ctx, lookup, g);
        let isolated = &state.pos_isolated[state.pos_offsets[a]..state.pos_offsets[a + 1]];
        (policy::cross_equity_of_margin(rows, isolated, ctx, &m), m)
    }

    /// Whether account `a` (certificate `c`) is certified safe at `marks`.
    #[inline]
    pub fn holds(&self, c: &Cert, state: &State, a: usize, marks: &[f64]) -> bool {
        if !self.enabled {
            return false;
        }
        if c.slack_at != NONE && self.slack_rho(c) < f64::from(c.tolerance) {
            return true;
        }
        if c.at == NONE {
            return false;
        }
        let (centre, d) = (&self.centres[c.at as usize], DELTAS[c.width as usize]);
        (state.pos_offsets[a]..state.pos_offsets[a + 1]).all(|p| {
            let k = state.pos_market[p] as usize;
            let (lo, hi) = band(centre[k], d);
            marks[k] >= lo && marks[k] <= hi
        })
    }

    /// The move ρ that counts against `c`'s slack certificate: the largest of its markets'
    /// moves from the certificate's centre, leaving out a market whose mark moved by ρ ≤ 1 in
    /// the direction all of the account's positions there gain from (its uPnL rises and its
    /// notional, so its requirement, does not); without per-market masks, every mark's.
    #[inline]
    fn slack_rho(&self, c: &Cert) -> f64 {
        let s = c.slack_at as usize;
        if self.fell.is_empty() {
            return self.rho[s];
        }
        let gains = (c.gains_on_fall & self.fell[s]) | (c.gains_on_rise & self.rose[s]);
        let n = self.market_rho.len() / self.fell.len();
        let moves = &self.market_rho[s * n..(s + 1) * n];
        let (mut against, mut r) = (c.markets & !gains, 0.0f64);
        while against != 0 {
            r = r.max(moves[against.trailing_zeros() as usize]);
            against &= against - 1;
        }
        r
    }

    /// Account `a`, just evaluated (`cross_eq`, `m`, its lines gathered in `g`) and found in no
    /// need of action at the view's centre: gives it a slack certificate when every market it
    /// holds is covered ([`slack_factor`]), its balance lines are fixed within the step (its
    /// totals are kept: [`Cert::held`]) and each isolated position holds margin. Its tolerance
    /// is the least room of the three triggers [`policy::select_evaluated`] reads (the cross
    /// pool's maintenance shortfall and negative cross equity at `factor` × the cross
    /// notional, each isolated position's shortfall at `factor` × its notional).
    /// Returns whether it gave one.
    pub fn anchor(
        &self,
        c: &mut Cert,
        state: &State,
        a: usize,
        cross_eq: f64,
        m: &AccountMargin,
        g: &Gathered,
    ) -> bool {
        c.slack_at = NONE;
        if !self.enabled || !c.held {
            return false;
        }
        let p = state.pos_offsets[a]..state.pos_offsets[a + 1];
        if !self.all_slack_ok && state.pos_market[p.clone()].iter().any(|&k| !self.rates[k as usize].covered()) {
            return false;
        }
        // An isolated position whose margin is gone is out of the kernel's isolated lines but
        // still in the selection's isolated trigger.
        let gone = |(&iso, &q): (&bool, &f64)| iso && (q <= 0.0 || q.is_nan());
        if state.pos_isolated[p.clone()].iter().zip(&state.iso_qty[p.clone()]).any(gone) {
            return false;
        }
        // An account whose every position has quantity 0 (closed, its rows kept) has the same
        // lines at any finite marks — each uPnL is 0 × a finite difference, each notional 0 —,
        // so no move of a finite mark changes its verdict: an unbounded tolerance (ρ is +∞
        // only where a mark it holds is not finite or has moved by 100 % or more). On the 1M
        // demo these are the accounts liquidated whole: ≈ 238k a round, evaluated every round
        // before, as their zero room gave no tolerance.
        let flat = state.pos_qty[p.clone()].iter().all(|&q| q == 0.0);
        let tolerance = if flat {
            f64::INFINITY
        } else {
            // The terms' magnitudes at the marks the certificate admits: a move that only adds
            // room is not bounded by the tolerance, but by ρ ≤ 1, which changes a position's
            // uPnL by at most its notional (and lowers its notional and requirement).
            let magnitude =
                g.balances.magnitude + g.magnitude + m.equity.abs() + cross_eq.abs() + 2.0 * g.notional.abs();
            let per_unit = g.cross_notional;
            // At most 1: the first bracket's rate holds only while ρ ≤ 1 ([`SlackRate::of`]).
            room(m.adj_equity[1] - m.requirement[1], magnitude, per_unit)
                .min(room(cross_eq, magnitude, per_unit))
                .min(g.iso_room)
                .min(1.0)
                / (1.0 + 8.0 * HEADROOM)
        };
        if tolerance > 0.0 {
            // Rounded down: the test compares an f64 ρ with it.
            let t = tolerance as f32;
            c.tolerance = if f64::from(t) > tolerance { t.next_down() } else { t };
            c.slack_at = self.centre;
            if !self.fell.is_empty() {
                // A linear short gains as its mark falls, an inverse long as it rises (its
                // notional in the settle asset is |qty| × size / mark); a closed position (qty
                // 0) is the same at any finite mark.
                let (mut markets, mut not_on_fall, mut not_on_rise) = (0u32, 0u32, 0u32);
                for (&k, &q) in state.pos_market[p.clone()].iter().zip(&state.pos_qty[p]) {
                    let bit = 1u32 << k;
                    markets |= bit;
                    let inverse = self.inverse[k as usize];
                    if !(q < 0.0 && !inverse || q == 0.0) {
                        not_on_fall |= bit;
                    }
                    if !(q > 0.0 && inverse || q == 0.0) {
                        not_on_rise |= bit;
                    }
                }
                (c.markets, c.gains_on_fall, c.gains_on_rise) =
                    (markets, markets & !not_on_fall, markets & !not_on_rise);
            }
        }
        c.slack_at != NONE
    }

    /// Account `a`, just found in no need of action at the context's prices (the view's
    /// centre): certifies it if it is safe over a band, updating `c`. `balances` are the
    /// balance totals its evaluation gathered ([`BalanceTotals`]).
    pub fn certify(&self, c: &mut Cert, state: &State, a: usize, ctx: &MarginContext<'_>, balances: &BalanceTotals) {
        c.at = NONE;
        if !self.enabled || !self.certify_now {
            return;
        }
        if c.wait > 0 {
            c.wait -= 1;
            return;
        }
        let rows = state.account(a);
        if rows.bal_code.iter().any(|&i| !self.asset_ok[i as usize])
            || rows.pos_code.iter().any(|&k| !self.market_ok[k as usize])
        {
            c.wait = u8::MAX;
            return;
        }
        // A volatile market would most likely carry the account out of any band by the next
        // round: no attempt (the account is evaluated exactly every round instead).
        if rows.pos_code.iter().any(|&k| self.moving[k as usize]) {
            return;
        }
        // The balances' part, by the kernel itself (positions are bounded below): no asset
        // here has two-sided valuation, so a balance row's line does not depend on the
        // account's positions.
        let b = balances;
        let (equity, collateral) = (b.sums.equity, b.sums.adj_equity[1]);
        let safe = |w: u8| safe_over(state, a, ctx, DELTAS[w as usize], equity, collateral, b.magnitude);
        let w = c.width.min(DELTAS.len() as u8 - 1);
        let top = DELTAS.len() as u8 - 1;
        let got = if safe(w) {
            Some(if w < top && safe(w + 1) { w + 1 } else { w })
        } else if w > 0 && safe(w - 1) {
            Some(w - 1)
        } else {
            None
        };
        match got {
            Some(w) => {
                c.at = self.centre;
                c.width = w;
            }
            None => {
                c.width = w.saturating_sub(1);
                c.wait = WAIT;
            }
        }
    }
}

/// Per unit of relative mark move, how fast a position of 1 USD notional in market `k` can
/// lower any trigger the selection reads, when that rate is bounded: max(1, w) for its uPnL
/// counted at weight w (its raw uPnL moves at 1), plus the market's largest maintenance rate
/// for its requirement — continuous brackets are Lipschitz in the notional with that rate.
/// None where the requirement can jump or curve (step brackets, a size-scaled rate, a size
/// premium): those markets keep to band certificates.
/// Returns the first bracket's bound (settle units) and the factor within it and beyond.
fn slack_factor(u: &Universe, k: usize) -> Option<(f64, f64, f64)> {
    let h = &u.market_hot[k];
    let continuous = h.shape[1] == Shape::Continuous && h.imf_factor == 0.0;
    if !continuous || h.is_option() {
        return None;
    }
    let w = h.upnl_weight[1].max(1.0);
    let mut tiers = u.markets.brackets.tiers_of(k);
    let (bound, rate, _) = tiers.next()?;
    let top = tiers.map(|(_, rate, _)| rate[1].abs()).fold(rate[1].abs(), f64::max);
    let (first, top) = (w + rate[1].abs(), w + top);
    (first.is_finite() && top.is_finite()).then_some((bound, first, top))
}

/// How far `marks` are from `centre`: ρ = r / (1 − r) for r the largest relative move of a
/// mark (+∞ from r ≥ 1 or a NaN on). A position of notional N at the centre moves its uPnL,
/// its notional and so its requirement's argument by at most N·ρ (linear: N·r; inverse,
/// the mark in the denominator: N·r·c/m ≤ N·r / (1 − r)).
fn rho(centre: &[f64], marks: &[f64]) -> f64 {
    let r = centre.iter().zip(marks).map(|(&c, &m)| ((m - c) / c).abs()).fold(0.0, |r: f64, x| {
        if x.is_nan() {
            f64::INFINITY
        } else {
            r.max(x)
        }
    });
    if r < 1.0 {
        r / (1.0 - r)
    } else {
        f64::INFINITY
    }
}

/// The band of half-width `d` around `centre` (the same floats for the bound and the test).
#[inline]
fn band(centre: f64, d: f64) -> (f64, f64) {
    (centre * (1.0 - d), centre * (1.0 + d))
}

/// Whether account `a` is safe at every mark within the bands of half-width `d` around the
/// context's marks, given its balances' equity, maintenance collateral and magnitudes.
fn safe_over(
    state: &State,
    a: usize,
    ctx: &MarginContext<'_>,
    d: f64,
    bal_equity: f64,
    bal_coll: f64,
    bal_mag: f64,
) -> bool {
    let u = ctx.universe;
    let (mut cross, mut equity, mut mag) = (bal_coll, bal_equity, bal_mag);
    for p in state.pos_offsets[a]..state.pos_offsets[a + 1] {
        let (q, e) = (state.pos_qty[p], state.pos_entry[p]);
        if q == 0.0 {
            continue;
        }
        let k = state.pos_market[p] as usize;
        let h = &u.market_hot[k];
        let sp = ctx.prices.asset[h.settle as usize];
        let (lo, hi) = band(ctx.prices.mark[k], d);
        // The requirement rises with the notional (see the module documentation): the larger
        // is the one at the end with the larger notional, so one requirement is computed, at
        // that end, and the other end adds only its uPnL (the kernel's formula).
        let c = &h.contract;
        let (at, other) = if c.notional(q, hi) >= c.notional(q, lo) { (hi, lo) } else { (lo, hi) };
        let x = position_margin(u, k, q, e, at, sp);
        let y = c.pnl(q, e, other) * sp;
        let upnl = x.upnl.min(y);
        let req = x.requirement[1];
        let terms = x.upnl.abs() + y.abs() + req.abs();
        if state.iso_qty[p] > 0.0 {
            let margin = state.iso_qty[p] * sp;
            let own = terms + margin.abs();
            // NaN fails the test too.
            let safe = margin + upnl - req > HEADROOM * own;
            if !safe {
                return false;
            }
            mag += own;
        } else {
            cross += upnl.min(0.0) + upnl.max(0.0) * h.upnl_weight[1] - req;
            equity += upnl;
            mag += terms;
        }
    }
    let need = HEADROOM * mag;
    cross > need && equity > need
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::GroupedBook;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::cascade::ledger::to_minor;
    use crate::margin::{PreparedLookup, Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::MarketSpec;
    use proptest::prelude::*;

    /// Assets whose balance lines use every rule the kernel has for them (haircut tiers, size
    /// discount and premium, the scaled initial weight; USDC two-sided when asked, which turns
    /// the venue rules on), a linear perp with a closing-fee reserve (it reads the pool's
    /// adjusted equity after the positions) and one settled in USDC.
    fn rich_universe(two_sided: bool) -> Universe {
        let mut btc = asset("BTC", 100.0);
        btc.weight = [0.9, 0.95];
        btc.liability_weight = [1.2, 1.1];
        btc.haircut_tiers = vec![(300.0, 1.0), (f64::INFINITY, 0.8)];
        btc.imf_factor = 0.01;
        (btc.scale_initial_weight_start, btc.total_deposits) = (1e4, 120.0);
        let mut usdc = asset("USDC", 1.0);
        if two_sided {
            usdc.bid_ask = Some((0.99, 1.01));
        }
        let mut lin = perp("BTCUSDT", "USDT", "BTC", 100.0, &[(1e3, 0.1, 0.05), (f64::INFINITY, 0.2, 0.1)]);
        lin.rules.liquidation_fee = 0.001;
        let eth = perp("ETHUSDC", "USDC", "ETH", 10.0, &[(f64::INFINITY, 0.1, 0.05)]);
        Universe::new(&[asset("USDT", 1.0), btc, usdc], &[lin, eth]).unwrap()
    }

    /// Every number of one account's evaluation, as bits.
    fn bits(eq: f64, m: &AccountMargin, g: &Gathered) -> Vec<u64> {
        let b = &g.balances;
        let mut x = vec![eq, m.equity, m.upnl, m.fee_reserve, g.notional, b.sums.equity, b.magnitude];
        x.extend(m.adj_equity.iter().chain(&m.requirement).chain(&b.sums.adj_equity));
        x.push(f64::from(u8::from(m.isolated_liquidatable)));
        x.iter().map(|v| v.to_bits()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Round after round of a step's moving marks, across new steps (new asset prices) and
        /// accounts whose balances change between rounds (invalidated, as settlement does), an
        /// evaluation that resumes the kernel from kept balance totals gives the full kernel's
        /// numbers bit for bit — and keeps them for every account whose balance lines are fixed.
        #[test]
        fn kept_balance_totals_resume_the_kernel_bit_for_bit(
            bal in prop::collection::vec((-50.0f64..500.0, -2.0f64..8.0, -300.0f64..300.0), 1..16),
            pos in prop::collection::vec((-20.0f64..20.0, -100.0f64..100.0, prop::bool::ANY), 16),
            rounds in prop::collection::vec((0.7f64..1.3, 0.7f64..1.3, prop::bool::ANY, 0usize..16, -50.0f64..50.0), 1..8),
            two_sided in prop::bool::ANY,
        ) {
            let u = rich_universe(two_sided);
            let n = bal.len();
            let (mut ba, mut bc, mut bq) = (vec![], vec![], vec![]);
            let (mut pa, mut pc, mut pq, mut pe, mut pi) = (vec![], vec![], vec![], vec![], vec![]);
            for a in 0..n {
                let (usdt, btc, usdc) = bal[a];
                for (code, q) in [(0u32, usdt), (1, btc), (2, usdc)] {
                    ba.push(a as i64);
                    bc.push(code);
                    bq.push(q);
                }
                let (lin, eth, iso) = pos[a];
                for (code, q, entry) in [(0u32, lin, 100.0), (1, eth, 10.0)] {
                    pa.push(a as i64);
                    pc.push(code);
                    pq.push(q);
                    pe.push(entry);
                    pi.push(if iso && code == 1 { q.abs() * entry * 0.1 } else { 0.0 });
                }
            }
            let book = group(
                BalanceInput { account: &ba, code: &bc, qty: &bq },
                PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
                3,
                2,
            )
            .unwrap();
            let mut state = State::new(&book, &u, &[0, 1, 2], &[0, 1]);
            let mut certs = certificates(&u, n, true);
            let (ida, idm) = ([0u32, 1, 2], [0u32, 1]);
            let (mut assets, mut marks) = (vec![1.0, 100.0, 1.0], vec![100.0, 10.0]);
            for (f, g, new_step, touched, delta) in rounds {
                if new_step {
                    (assets[1], assets[2]) = (assets[1] * f, assets[2] * (0.5 + 0.5 * g));
                }
                (marks[0], marks[1]) = (marks[0] * f, marks[1] * g);
                let ctx = MarginContext {
                    universe: &u,
                    prices: Prices { asset: &assets, mark: &marks },
                    remap: Remap { asset: &ida, market: &idm },
                };
                let lookup = PreparedLookup::new(&ctx);
                let (view, cs, held) = certs.begin(&u, &assets, &marks);
                for a in 0..n {
                    let mut kept = Gathered::default();
                    let (eq, m) = view.evaluate(&mut cs[a], &mut held[a], &state, a, &ctx, &lookup, &mut kept);
                    let mut full = Gathered::default();
                    let (want_eq, want) = policy::cross_equity_with_into(&state, a, &ctx, &lookup, &mut full);
                    full.balances.sums = evaluate_balances_into(state.account(a), &ctx, &lookup, &mut ());
                    prop_assert_eq!(bits(eq, &m, &kept), bits(want_eq, &want, &full), "account {}", a);
                    prop_assert_eq!(cs[a].held, balances_fixed(&u, state.account(a).bal_code));
                }
                // A balance changed, as a fill or a socialised charge changes it.
                let a = touched % n;
                let row = state.bal_offsets[a] + touched % (state.bal_offsets[a + 1] - state.bal_offsets[a]);
                state.bal_minor[row] += to_minor(delta);
                state.refresh(a);
                certs.invalidate(a);
            }
        }
    }

    /// Linear perps with a small first bracket and steep ones beyond it (so positions sit on
    /// both sides of [`SlackRate`]'s threshold), one with profits counted at half weight,
    /// and an inverse perp settled in BTC.
    fn slack_universe() -> Universe {
        let mut btc = asset("BTC", 100.0);
        btc.weight = [0.9, 0.95];
        btc.haircut_tiers = vec![(300.0, 1.0), (f64::INFINITY, 0.8)];
        let mut eth = perp("ETHUSDT", "USDT", "ETH", 10.0, &[(50.0, 0.02, 0.01), (f64::INFINITY, 0.5, 0.3)]);
        eth.upnl_weight = [0.4, 0.5];
        let inverse = MarketSpec {
            inverse: true,
            contract_size: 100.0,
            ..perp("BTCUSD", "BTC", "BTC", 100.0, &[(2.0, 0.02, 0.01), (f64::INFINITY, 0.4, 0.25)])
        };
        let lin = perp("BTCUSDT", "USDT", "BTC", 100.0, &[(500.0, 0.02, 0.01), (f64::INFINITY, 0.5, 0.4)]);
        Universe::new(&[asset("USDT", 1.0), btc], &[lin, eth, inverse]).unwrap()
    }

    /// Selects account `a` at `marks` (asset prices `assets`) with `certs`, as
    /// [`Shard::select`](super::super::step::Shard::select) does: Some(skipped) when it is in
    /// no need of action, None when it is a candidate.
    fn screen(
        certs: &mut Certificates,
        u: &Universe,
        state: &State,
        a: usize,
        assets: &[f64],
        marks: &[f64],
    ) -> Option<bool> {
        let ida: Vec<u32> = (0..assets.len() as u32).collect();
        let idm: Vec<u32> = (0..marks.len() as u32).collect();
        let ctx = MarginContext {
            universe: u,
            prices: Prices { asset: assets, mark: marks },
            remap: Remap { asset: &ida, market: &idm },
        };
        let lookup = PreparedLookup::new(&ctx);
        let (view, cs, held) = certs.begin(u, assets, marks);
        if view.holds(&cs[a], state, a, marks) {
            return Some(true);
        }
        let mut g = Gathered::new(&view);
        let (cross_eq, m) = view.evaluate(&mut cs[a], &mut held[a], state, a, &ctx, &lookup, &mut g);
        let slicing = policy::Slicing { fraction: 0.25, target_ratio: 0.0, min_notional: 0.0 };
        match policy::select_evaluated(state, a, &ctx, &slicing, cross_eq, &m, &mut Vec::new()) {
            Some(_) => None,
            None => {
                view.anchor(&mut cs[a], state, a, cross_eq, &m, &g);
                Some(false)
            }
        }
    }

    fn slack_book(bal: &[(f64, f64)], pos: &[(f64, f64, f64, f64, f64)]) -> GroupedBook {
        let (mut ba, mut bc, mut bq) = (vec![], vec![], vec![]);
        let (mut pa, mut pc, mut pq, mut pe, mut pi) = (vec![], vec![], vec![], vec![], vec![]);
        for (a, (&(usdt, btc), &(lin, eth, inv, lev, iso))) in bal.iter().zip(pos).enumerate() {
            for (code, q) in [(0u32, usdt), (1, btc)] {
                ba.push(a as i64);
                bc.push(code);
                bq.push(q);
            }
            // Entries off the centre marks by `lev`, so that positions start in profit or loss.
            for (code, q, entry) in [(0u32, lin, 100.0 * lev), (1, eth, 10.0 / lev), (2, inv, 100.0 * lev)] {
                pa.push(a as i64);
                pc.push(code);
                pq.push(q);
                pe.push(entry);
                // Isolated margin on the ETH position when asked: a share of its notional.
                pi.push(if code == 1 && iso > 0.0 { iso * q.abs() * entry } else { 0.0 });
            }
        }
        group(
            BalanceInput { account: &ba, code: &bc, qty: &bq },
            PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
            2,
            3,
        )
        .unwrap()
    }

    /// Certificates for `n` accounts, on or off whatever the environment says.
    fn certificates(u: &Universe, n: usize, enabled: bool) -> Certificates {
        Certificates { enabled, ..Certificates::new(u, n) }
    }

    /// A position quantity within ±`max`, 0 one time in four.
    fn qty(max: f64) -> impl Strategy<Value = f64> {
        prop_oneof![1 => Just(0.0), 3 => -max..max]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A slack certificate skips an account only where the full evaluation finds it in no
        /// need of action: after its anchoring selection, the marks move (each sign pattern,
        /// market k by the relative r × its share, the shares often all 1) as far as the
        /// certificate still skips it — found by bisection, so the test probes the edge of
        /// what the implementation admits, not what its formula says — and the kernel's own
        /// verdict at those marks must be "no action". Quantities are often 0, so accounts
        /// hold fewer markets, and some none with a nonzero quantity (unbounded tolerance).
        #[test]
        fn a_slack_certificate_skips_only_safe_accounts(
            bal in prop::collection::vec((-200.0f64..2000.0, -2.0f64..20.0), 1..6),
            pos in prop::collection::vec((qty(20.0), qty(200.0), qty(5.0), 0.6f64..1.6, prop_oneof![Just(0.0), 0.02f64..0.5]), 6),
            centre in (50.0f64..150.0, 5.0f64..15.0, 50.0f64..150.0),
            share in prop_oneof![Just([1.0; 3]), prop::array::uniform3(0.0f64..1.0)],
            btc in 50.0f64..150.0,
        ) {
            let u = slack_universe();
            let book = slack_book(&bal, &pos[..bal.len()]);
            let state = State::new(&book, &u, &[0, 1], &[0, 1, 2]);
            let assets = [1.0, btc];
            let centre = [centre.0, centre.1, centre.2];
            let n = bal.len();
            for a in 0..n {
                for pattern in 0..8usize {
                    let marks = |r: f64| {
                        let mut m = centre;
                        for (k, m) in m.iter_mut().enumerate() {
                            *m *= if pattern >> k & 1 == 0 { 1.0 - r * share[k] } else { 1.0 + r * share[k] };
                        }
                        m
                    };
                    // Some(true) where a certificate anchored at the centre skips the account.
                    let skipped_at = |r: f64| {
                        let mut certs = certificates(&u, n, true);
                        let anchored = screen(&mut certs, &u, &state, a, &assets, &centre);
                        anchored.and(screen(&mut certs, &u, &state, a, &assets, &marks(r)))
                    };
                    if skipped_at(0.0) != Some(true) {
                        break;
                    }
                    let (mut lo, mut hi) = (0.0f64, 1.0f64);
                    for _ in 0..40 {
                        let mid = 0.5 * (lo + hi);
                        if skipped_at(mid) == Some(true) { lo = mid } else { hi = mid }
                    }
                    let mut exact = certificates(&u, n, false);
                    prop_assert_eq!(
                        screen(&mut exact, &u, &state, a, &assets, &marks(lo)),
                        Some(false),
                        "account {} skipped at a move of {} (pattern {}) but in need of action", a, lo, pattern
                    );
                }
            }
        }
    }

    /// The first bracket's rate bounds a position's requirement only while a move of ρ ≤ 1
    /// keeps its notional within that bracket, i.e. from half the bound down. A long inverse
    /// position of 1.5 BTC notional (bound 2 BTC, 1 % then 25 %) has its notional and loss both
    /// grow by exactly ρ as the mark falls: at its tolerance it is still safe; at ρ = 0.79, which
    /// the first rate alone would admit, it is in need of action and must not be skipped.
    #[test]
    fn the_first_brackets_rate_counts_only_below_half_its_bound() {
        let u = slack_universe();
        let book = slack_book(&[(122.7, 0.0)], &[(0.0, 0.0, 1.5, 1.0, 0.0)]);
        let state = State::new(&book, &u, &[0, 1], &[0, 1, 2]);
        let (assets, centre) = ([1.0, 100.0], [100.0, 10.0, 100.0]);
        let at = |rho: f64| [centre[0], centre[1], centre[2] / (1.0 + rho)];
        let fresh = || certificates(&u, 1, true);
        let mut certs = fresh();
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &centre), Some(false));
        let t = f64::from(certs.certs[0].tolerance);
        // (122.7 − 1.5) / (150 × (1 + 0.25)): the steep rate, not (1 + 0.01).
        assert!((t - 121.2 / 187.5).abs() < 1e-6, "tolerance {t}");
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(0.999 * t)), Some(true));
        let mut exact = fresh();
        exact.enabled = false;
        assert_eq!(screen(&mut exact, &u, &state, 0, &assets, &at(0.999 * t)), Some(false));
        assert_eq!(screen(&mut exact, &u, &state, 0, &assets, &at(0.79)), None);
        let mut certs = fresh();
        screen(&mut certs, &u, &state, 0, &assets, &centre);
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(0.79)), None);
    }

    /// A well-funded account gets a slack certificate at its first selection and is skipped
    /// while the marks move less than its tolerance; a larger move, a change to its rows or
    /// new asset prices send it back to the kernel.
    #[test]
    fn a_slack_certificate_lasts_while_the_marks_stay_within_its_tolerance() {
        let u = slack_universe();
        let book = slack_book(&[(5000.0, 1.0)], &[(2.0, -10.0, 1.0, 1.0, 0.0)]);
        let mut state = State::new(&book, &u, &[0, 1], &[0, 1, 2]);
        let mut certs = certificates(&u, 1, true);
        let (assets, centre) = ([1.0, 100.0], [100.0, 10.0, 100.0]);
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &centre), Some(false));
        let t = f64::from(certs.certs[0].tolerance);
        assert!(t > 0.2 && t <= 1.0, "tolerance {t}");
        let at = |r: f64| centre.map(|c| c * (1.0 - r));
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(0.9 * t / (1.0 + t))), Some(true));
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(0.02)), Some(true));
        // Beyond it: evaluated (and anchored afresh).
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(1.1 * t / (1.0 + t))), Some(false));
        // Rows changed: evaluated.
        state.bal_minor[0] += to_minor(-1.0);
        state.refresh(0);
        certs.invalidate(0);
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(1.1 * t / (1.0 + t))), Some(false));
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &at(1.1 * t / (1.0 + t))), Some(true));
        // New asset prices: evaluated.
        assert_eq!(screen(&mut certs, &u, &state, 0, &[1.0, 99.0], &at(1.1 * t / (1.0 + t))), Some(false));
    }

    /// A slack certificate counts only the markets the account holds, and not a move of ρ ≤ 1
    /// that every position there gains from: a linear short (tolerance ≈ 0.29 on 60 USDT;
    /// its ETH and inverse rows closed) is skipped while its mark falls by ρ = 0.8 and ETH's
    /// rises by half, evaluated when its mark falls by ρ = 1.5 or rises past its tolerance,
    /// or ETH's mark doubles (ρ = +∞).
    #[test]
    fn a_slack_certificate_leaves_out_moves_the_account_gains_from() {
        let u = slack_universe();
        let book = slack_book(&[(60.0, 0.0)], &[(-2.0, 0.0, 0.0, 1.0, 0.0)]);
        let state = State::new(&book, &u, &[0, 1], &[0, 1, 2]);
        let (assets, centre) = ([1.0, 100.0], [100.0, 10.0, 100.0]);
        // Anchored at the centre, then selected at `marks`.
        let at = |marks: [f64; 3]| {
            let mut certs = certificates(&u, 1, true);
            assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &centre), Some(false));
            (screen(&mut certs, &u, &state, 0, &assets, &marks), f64::from(certs.certs[0].tolerance))
        };
        let t = at(centre).1;
        assert!(t > 0.25 && t < 0.3, "tolerance {t}");
        // ρ = r / (1 − r) for a move by the share r.
        let fall = |rho: f64| 100.0 * (1.0 - rho / (1.0 + rho));
        let rise = |rho: f64| 100.0 * (1.0 + rho / (1.0 + rho));
        let at = |marks| at(marks).0;
        assert_eq!(at([fall(0.8), 15.0, 100.0]), Some(true));
        assert_eq!(at([fall(0.8), 20.0, 100.0]), Some(false));
        assert_eq!(at([fall(1.5), 10.0, 100.0]), Some(false));
        assert_eq!(at([rise(0.9 * t), 10.0, 100.0]), Some(true));
        assert_eq!(at([rise(1.1 * t), 10.0, 100.0]), Some(false));
    }

    /// An inverse long gains as its mark rises (uPnL up, notional in BTC down), an inverse
    /// short loses: anchored at the centre on 0.3 BTC, the long is skipped at a rise of ρ = 0.8,
    /// far past its tolerance, the short is selected there.
    #[test]
    fn an_inverse_long_gains_as_its_mark_rises() {
        let u = slack_universe();
        let (assets, centre) = ([1.0, 100.0], [100.0, 10.0, 100.0]);
        let rise = [100.0, 10.0, 100.0 * (1.0 + 0.8 / 1.8)];
        for (qty, then) in [(2.0, Some(true)), (-2.0, None)] {
            let book = slack_book(&[(0.0, 0.3)], &[(0.0, 0.0, qty, 1.0, 0.0)]);
            let state = State::new(&book, &u, &[0, 1], &[0, 1, 2]);
            let mut certs = certificates(&u, 1, true);
            assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &centre), Some(false));
            let t = f64::from(certs.certs[0].tolerance);
            assert!(t > 0.0 && t < 0.5, "tolerance {t}");
            assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &rise), then, "qty {qty}");
        }
    }

    /// An account whose positions all have quantity 0 (liquidated whole, its rows kept) has
    /// no bound on its tolerance: skipped at any finite move of its marks, evaluated once one
    /// of them is NaN.
    #[test]
    fn an_account_without_open_positions_is_skipped_at_any_finite_marks() {
        let u = slack_universe();
        let book = slack_book(&[(100.0, 0.0)], &[(0.0, 0.0, 0.0, 1.0, 0.0)]);
        let state = State::new(&book, &u, &[0, 1], &[0, 1, 2]);
        let (assets, centre) = ([1.0, 100.0], [100.0, 10.0, 100.0]);
        let mut certs = certificates(&u, 1, true);
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &centre), Some(false));
        assert_eq!(f64::from(certs.certs[0].tolerance), f64::INFINITY);
        assert_eq!(screen(&mut certs, &u, &state, 0, &assets, &[5.0, 0.5, 195.0]), Some(true));
        assert_ne!(screen(&mut certs, &u, &state, 0, &assets, &[100.0, 10.0, f64::NAN]), Some(true));
    }

    /// Beyond [`MASKED`] markets a slack certificate compares every mark's move: an account
    /// holding only market 0 of 33 is skipped while market 32 moves less than its tolerance
    /// and evaluated once it moves more (with masks, a market it does not hold never counts).
    #[test]
    fn beyond_the_masked_markets_every_mark_counts() {
        let brackets = [(f64::INFINITY, 0.1, 0.05)];
        let markets: Vec<_> = (0..=MASKED).map(|k| perp(&format!("M{k}"), "USDT", "BTC", 100.0, &brackets)).collect();
        let u = Universe::new(&[asset("USDT", 1.0)], &markets).unwrap();
        let book = group(
            BalanceInput { account: &[0], code: &[0], qty: &[500.0] },
            PositionInput { account: &[0], code: &[0], qty: &[-10.0], entry_price: &[100.0], isolated_margin: &[0.0] },
            1,
            1,
        )
        .unwrap();
        let state = State::new(&book, &u, &[0], &(0..=MASKED as u32).collect::<Vec<_>>());
        let centre = vec![100.0; MASKED + 1];
        let at = |move_last: f64| {
            let mut certs = certificates(&u, 1, true);
            assert_eq!(screen(&mut certs, &u, &state, 0, &[1.0], &centre), Some(false));
            let t = f64::from(certs.certs[0].tolerance);
            assert!(t > 0.1 && t < 0.5, "tolerance {t}");
            let mut marks = centre.clone();
            marks[MASKED] *= 1.0 + move_last * t / (1.0 + t);
            screen(&mut certs, &u, &state, 0, &[1.0], &marks)
        };
        assert_eq!(at(0.9), Some(true));
        assert_eq!(at(1.1), Some(false));
    }

    /// A market is volatile from the selection whose mark moved by more than [`CALM`] from the
    /// previous one, for the rest of the step, however calm it is after; a new step (new asset
    /// prices) starts with every market calm.
    #[test]
    fn a_market_that_jumped_stays_volatile_until_the_step_ends() {
        let u = Universe::new(
            &[asset("USDT", 1.0)],
            &[
                perp("BTCUSDT", "USDT", "BTC", 100.0, &[(f64::INFINITY, 0.1, 0.05)]),
                perp("ETHUSDT", "USDT", "ETH", 10.0, &[(f64::INFINITY, 0.1, 0.05)]),
            ],
        )
        .unwrap();
        let mut certs = Certificates::new(&u, 1);
        let mut moving = |assets: &[f64], marks: &[f64]| {
            certs.begin(&u, assets, marks);
            certs.moving.clone()
        };
        assert_eq!(moving(&[1.0], &[100.0, 10.0]), [false, false]);
        // 4 % is calm, 5.05 % is not (BTC), 4 % is (ETH).
        assert_eq!(moving(&[1.0], &[104.0, 10.0]), [false, false]);
        assert_eq!(moving(&[1.0], &[109.26, 10.4]), [true, false]);
        assert_eq!(moving(&[1.0], &[109.26, 10.4]), [true, false]);
        assert_eq!(moving(&[1.0], &[110.0, 9.9]), [true, false]);
        assert_eq!(moving(&[1.0], &[110.0, 9.0]), [true, true]);
        assert_eq!(moving(&[2.0], &[50.0, 9.0]), [false, false]);
    }
}
