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

use crate::book::AccountRows;
use crate::cascade::state::State;
use crate::margin::{evaluate_rows_into, position_margin, BalanceLine, MarginContext, RowSink};
use crate::universe::Universe;

/// Band half-widths tried, narrowest first: an account that is not safe over the narrowest
/// band is not certified; otherwise the widest band it is safe over is kept.
pub const DELTAS: [f64; 3] = [0.005, 0.02, 0.08];
/// Relative margin a certificate keeps over the rounding of the kernel's sums.
pub const HEADROOM: f64 = 1e-9;
const NONE: u32 = u32::MAX;

/// Σ |value| + |maintenance collateral| of the balance rows the kernel visits.
struct Magnitudes(f64);

impl RowSink for Magnitudes {
    fn balance(&mut self, line: &BalanceLine) {
        self.0 += line.value.abs() + line.collateral[1].abs();
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
    /// Per account: index into `centres`, NONE when uncertified.
    at: Vec<u32>,
    /// Per account: index into [`DELTAS`].
    width: Vec<u8>,
    market_ok: Vec<bool>,
    asset_ok: Vec<bool>,
}

/// Whether the environment switches the incremental selection off
/// (`CROSSMARGIN_CASCADE_INCREMENTAL=0`), for comparisons with the full evaluation.
pub fn enabled_by_env() -> bool {
    std::env::var("CROSSMARGIN_CASCADE_INCREMENTAL").map_or(true, |v| v != "0")
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
                    // The kernel's plain path reads neither (see margin::position_margin_plain).
                    !h.scaled && !h.entry_basis
                };
                plain && !h.is_option() && h.upnl_weight[1] >= 0.0
            })
            .collect();
        Certificates {
            enabled: enabled_by_env(),
            key: Vec::new(),
            centres: Vec::new(),
            at: vec![NONE; n_accounts],
            width: vec![0; n_accounts],
            market_ok,
            asset_ok,
        }
    }

    /// Starts a selection at these prices: clears every certificate when the asset prices
    /// changed; returns the index this round's certificates will be centred on.
    pub fn begin(&mut self, assets: &[f64], marks: &[f64]) -> u32 {
        let key: Vec<u64> = assets.iter().map(|x| x.to_bits()).collect();
        if key != self.key || self.centres.len() >= NONE as usize - 1 {
            self.key = key;
            self.centres.clear();
            self.at.fill(NONE);
        }
        if self.centres.last().is_none_or(|c| c.as_slice() != marks) {
            self.centres.push(marks.to_vec());
        }
        (self.centres.len() - 1) as u32
    }

    /// Whether account `a` is certified safe at `marks`.
    #[inline]
    pub fn holds(&self, state: &State, a: usize, marks: &[f64]) -> bool {
        let at = self.at[a];
        if !self.enabled || at == NONE {
            return false;
        }
        let (centre, d) = (&self.centres[at as usize], DELTAS[self.width[a] as usize]);
        (state.pos_offsets[a]..state.pos_offsets[a + 1]).all(|p| {
            let k = state.pos_market[p] as usize;
            let (lo, hi) = band(centre[k], d);
            marks[k] >= lo && marks[k] <= hi
        })
    }

    /// Account `a`'s rows changed.
    pub fn invalidate(&mut self, a: usize) {
        if let Some(x) = self.at.get_mut(a) {
            *x = NONE;
        }
    }

    /// The certificate of account `a` at this round's prices (`centre` from
    /// [`Certificates::begin`]): the widest band index it is safe over, if any.
    pub fn certify(&self, state: &State, a: usize, ctx: &MarginContext<'_>) -> Option<u8> {
        if !self.enabled {
            return None;
        }
        let rows = state.account(a);
        if rows.bal_code.iter().any(|&i| !self.asset_ok[i as usize])
            || rows.pos_code.iter().any(|&k| !self.market_ok[k as usize])
        {
            return None;
        }
        // The balances' part, by the kernel itself (positions left out: they are bounded below).
        let only_balances =
            AccountRows { pos_code: &[], pos_qty: &[], pos_entry: &[], pos_isolated: &[], pos_side: &[], ..rows };
        let mut mags = Magnitudes(0.0);
        let m = evaluate_rows_into(only_balances, ctx, ctx, &mut mags);
        let mut best = None;
        for (i, &d) in DELTAS.iter().enumerate() {
            if !safe_over(state, a, ctx, d, m.equity, m.adj_equity[1], mags.0) {
                break;
            }
            best = Some(i as u8);
        }
        best
    }

    /// Records the certificates found at centre `at` (`(account, width)` pairs).
    pub fn record(&mut self, at: u32, found: impl IntoIterator<Item = (usize, u8)>) {
        for (a, w) in found {
            self.at[a] = at;
            self.width[a] = w;
        }
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
        let (x, y) = (position_margin(u, k, q, e, lo, sp), position_margin(u, k, q, e, hi, sp));
        let upnl = x.upnl.min(y.upnl);
        let req = x.requirement[1].max(y.requirement[1]);
        let terms = x.upnl.abs() + y.upnl.abs() + req.abs();
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
