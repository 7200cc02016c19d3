//! The standard model's bulk kernel (docs/ARCHITECTURE.md "Evaluation kernel"): the
//! per-account formula of [`crate::margin`], run eight accounts at a time on the
//! [`Sliced8`] layout with explicit SIMD chosen at run time (AVX-512, AVX2, or the scalar
//! kernel), bit-identical to the scalar formula at every level and thread count.
//!
//! - Dispatch: the best level the CPU has (`is_x86_feature_detected!`; the library is built
//!   for generic x86-64), or the one the environment variable `CROSSMARGIN_SIMD`
//!   (`avx512`, `avx2`, `scalar`) forces, read at each call.
//! - What the SIMD path computes: balances (haircut tiers, Drift's size discount and premium)
//!   and perp / future positions (linear or inverse, continuous or step brackets, the size
//!   premium, isolated positions) of a universe without venue rules. Per-code constants and
//!   bracket / tier bounds are read with register permutes when the book uses at most 8 codes
//!   (AVX-512), else gathered from small per-call tables (any number of brackets).
//! - What runs the scalar kernel: a universe with venue rules (every account); a group of 8
//!   accounts holding an option position or an open order (that group).
//! - Bit-identity: every lane performs the scalar formula's operations in its order (no
//!   fused multiply-add, no reassociation); padded lanes and rows outside a branch are
//!   masked, never added as zeros.

mod lanes;
mod layout;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use lanes::{LaneLayout, LaneSink};
pub(crate) use layout::stored;
pub use layout::{Code, CodeWidth, Sliced8, GROUP};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::book::GroupedBook;
use crate::error::{CoreError, Result};
use crate::margin::{evaluate_rows, MarginColumnsMut, MarginContext, PreparedLookup, RowLookup, CHUNK};

/// A SIMD level of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Scalar,
    Avx2,
    Avx512,
}

impl Level {
    pub const NAMES: [(&'static str, Level); 3] =
        [("scalar", Level::Scalar), ("avx2", Level::Avx2), ("avx512", Level::Avx512)];

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|&(_, l)| l)
    }

    /// Whether this CPU runs the level.
    pub fn supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best level this CPU runs.
    pub fn detect() -> Level {
        [Level::Avx512, Level::Avx2].into_iter().find(|l| l.supported()).unwrap_or(Level::Scalar)
    }

    /// Every level this CPU runs, best last.
    pub fn available() -> Vec<Level> {
        Self::NAMES.iter().map(|&(_, l)| l).filter(|l| l.supported()).collect()
    }

    /// The level `CROSSMARGIN_SIMD` forces (a `Config` error naming the variable when it is
    /// unknown or this CPU lacks it), else the best detected.
    pub fn from_env() -> Result<Level> {
        match std::env::var("CROSSMARGIN_SIMD") {
            Ok(v) if !v.is_empty() => {
                let field = "CROSSMARGIN_SIMD";
                let level = Level::parse(&v)
                    .ok_or_else(|| CoreError::config(field, format!("{v:?} is not one of avx512, avx2, scalar")))?;
                if !level.supported() {
                    let best = Level::detect().name();
                    return Err(CoreError::config(field, format!("{v} is not supported by this CPU (best: {best})")));
                }
                Ok(level)
            }
            _ => Ok(Level::detect()),
        }
    }
}

/// Per-call tables by book code, padded for the SIMD kernels: per-code vectors have
/// `stride` = max(codes, 8) entries; tier tables are tier-major (`k × stride + code`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tables {
    pub a_stride: usize,
    pub a_price: Vec<f64>,
    pub a_w: [Vec<f64>; 2],
    pub a_lw: [Vec<f64>; 2],
    pub a_imf: Vec<f64>,
    /// The |qty| up to which Drift's size discount and premium leave every weight of the
    /// asset unchanged, bit for bit ([`size_neutral_up_to`]; +inf without imf): a balance
    /// slot takes the square root and division only when a lane's |qty| is above it.
    pub a_neutral: Vec<f64>,
    /// The value up to which the asset's haircut leaves a long balance's value whole, bit
    /// for bit: +inf without tiers; the first slice's bound when that slice counts the value
    /// at rate 1 from 0 (lower 0, rate 1, base 0: `0 + (value − 0)·1` is `value`), else −inf.
    /// A balance slot computes the slices only when a lane's value is above it.
    pub a_whole_upto: Vec<f64>,
    /// Haircut slices: `h_tiers` per code (an asset without tiers: one slice counting the
    /// whole value); bounds of all but the last slice (+inf beyond a code's own).
    pub h_tiers: usize,
    pub h_bound: Vec<f64>,
    pub h_lower: Vec<f64>,
    pub h_rate: Vec<f64>,
    pub h_base: Vec<f64>,
    pub h_last: Vec<f64>,
    pub m_stride: usize,
    pub m_cs: Vec<f64>,
    /// 1 for an inverse market, 0 for a linear one.
    pub m_inverse: Vec<f64>,
    pub m_mark: Vec<f64>,
    /// 1 / mark, as the scalar inverse P&L computes it.
    pub m_inv_mark: Vec<f64>,
    pub m_settle: Vec<f64>,
    pub m_upnl_w: [Vec<f64>; 2],
    pub m_imf: Vec<f64>,
    pub m_base: [Vec<f64>; 2],
    pub b_tiers: usize,
    pub b_bound: Vec<f64>,
    pub b_rate: [Vec<f64>; 2],
    pub b_cum: [Vec<f64>; 2],
    /// Per market code: an option (its group runs the scalar kernel).
    pub m_option: Vec<bool>,
    pub any_option: bool,
    pub any_inverse: bool,
    pub any_market_imf: bool,
    /// Result columns written with streaming stores (a bulk pass over the book), else with
    /// ordinary ones (a block read back at once, e.g. by stress).
    pub stream: bool,
}

impl Tables {
    fn new(ctx: &MarginContext<'_>, lookup: &PreparedLookup) -> Tables {
        let u = ctx.universe;
        let (na, nm) = (ctx.remap.asset.len(), ctx.remap.market.len());
        let (sa, sm) = (na.max(8), nm.max(8));
        let mut t = Tables { a_stride: sa, m_stride: sm, stream: true, ..Default::default() };
        let per = |s: usize, fill: f64| vec![fill; s];
        t.a_price = per(sa, 0.0);
        t.a_w = [per(sa, 0.0), per(sa, 0.0)];
        t.a_lw = [per(sa, 0.0), per(sa, 0.0)];
        t.a_imf = per(sa, 0.0);
        t.a_whole_upto = per(sa, f64::INFINITY);
        t.a_neutral = per(sa, f64::INFINITY);
        t.h_last = per(sa, f64::INFINITY);
        let slices: Vec<Vec<(f64, f64, f64, f64)>> = (0..na)
            .map(|c| {
                let s: Vec<_> = u.assets.haircuts.slices_of(lookup.asset(c as u32).index).collect();
                if s.is_empty() {
                    vec![(0.0, f64::INFINITY, 1.0, 0.0)]
                } else {
                    s
                }
            })
            .collect();
        t.h_tiers = slices.iter().map(|s| s.len()).max().unwrap_or(1);
        let ht = t.h_tiers;
        t.h_bound = per(sa * ht, f64::INFINITY);
        (t.h_lower, t.h_rate, t.h_base) = (per(sa * ht, 0.0), per(sa * ht, 0.0), per(sa * ht, 0.0));
        for (c, s) in slices.iter().enumerate() {
            let a = lookup.asset(c as u32);
            t.a_price[c] = a.price;
            for m in 0..2 {
                t.a_w[m][c] = a.hot.weight[m];
                t.a_lw[m][c] = a.hot.liability_weight[m];
            }
            t.a_imf[c] = a.hot.imf_factor;
            t.a_neutral[c] = size_neutral_up_to(a.hot.imf_factor, a.hot.weight, a.hot.liability_weight);
            t.a_whole_upto[c] = whole_up_to(a.hot.has_tiers, s[0]);
            for (k, &(lower, bound, rate, base)) in s.iter().enumerate() {
                if k + 1 < s.len() {
                    t.h_bound[k * sa + c] = bound;
                }
                t.h_lower[k * sa + c] = lower;
                t.h_rate[k * sa + c] = rate;
                t.h_base[k * sa + c] = base;
            }
            t.h_last[c] = s[s.len() - 1].1;
        }
        t.m_cs = per(sm, 1.0);
        t.m_inverse = per(sm, 0.0);
        t.m_mark = per(sm, 1.0);
        t.m_inv_mark = per(sm, 1.0);
        t.m_settle = per(sm, 0.0);
        t.m_upnl_w = [per(sm, 0.0), per(sm, 0.0)];
        t.m_imf = per(sm, 0.0);
        t.m_base = [per(sm, 0.0), per(sm, 0.0)];
        t.m_option = vec![false; nm];
        type Tier = (f64, [f64; 2], [f64; 2]);
        let tiers: Vec<Vec<Tier>> =
            (0..nm).map(|c| u.markets.brackets.tiers_of(lookup.market(c as u32).index).collect()).collect();
        t.b_tiers = tiers.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
        let bt = t.b_tiers;
        t.b_bound = per(sm * bt, f64::INFINITY);
        t.b_rate = [per(sm * bt, 0.0), per(sm * bt, 0.0)];
        t.b_cum = [per(sm * bt, 0.0), per(sm * bt, 0.0)];
        for (c, s) in tiers.iter().enumerate() {
            let mc = lookup.market(c as u32);
            let h = &mc.hot;
            t.m_cs[c] = h.contract.size;
            t.m_inverse[c] = f64::from(u8::from(h.contract.payoff == crate::contract::Payoff::Inverse));
            t.m_mark[c] = mc.mark;
            t.m_inv_mark[c] = 1.0 / mc.mark;
            t.m_settle[c] = mc.settle_price;
            t.m_imf[c] = h.imf_factor;
            for m in 0..2 {
                t.m_upnl_w[m][c] = h.upnl_weight[m];
                t.m_base[m][c] = h.base_rate[m];
            }
            t.m_option[c] = h.is_option();
            for (k, &(bound, rate, cum)) in s.iter().enumerate() {
                if k + 1 < s.len() {
                    t.b_bound[k * sm + c] = bound;
                }
                for m in 0..2 {
                    t.b_rate[m][k * sm + c] = rate[m];
                    t.b_cum[m][k * sm + c] = cum[m];
                }
            }
        }
        t.any_option = t.m_option.iter().any(|&o| o);
        t.any_inverse = t.m_inverse.iter().any(|&x| x != 0.0);
        t.any_market_imf = t.m_imf.iter().any(|&x| x != 0.0);
        t
    }
}

/// The largest |qty| found (bisection) at which Drift's size discount and premium
/// ([`crate::imf`]) leave the asset's weights `w` and liability weights `lw` unchanged, bit
/// for bit: `min(w, 1.1 / (1 + imf·sqrt|qty|)) = w` and `max(lw, 0.8·lw + imf·sqrt|qty|) = lw`
/// in both modes; +inf when `imf` is 0, −1 (no quantity) when even |qty| = 0 changes one.
///
/// Checked at the quantity itself with the scalar formula's own floating-point operations, so
/// it holds for every smaller |qty| too: each operation is correctly rounded, hence monotone
/// in its operands, so the cap falls and the premium term rises with |qty|.
pub(crate) fn size_neutral_up_to(imf: f64, w: [f64; 2], lw: [f64; 2]) -> f64 {
    use crate::imf::{discount_cap, premium, premium_term};
    if imf == 0.0 {
        return f64::INFINITY;
    }
    let neutral = |q: f64| {
        let (cap, term) = (discount_cap(imf, q), premium_term(imf, q));
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
        w.iter().all(|&w| cap > w || same(cap, w)) && lw.iter().all(|&lw| same(premium(lw, term), lw))
    };
    if !neutral(0.0) {
        return -1.0;
    }
    // The real-number bound (min over the weights of ((1.1/w − 1)/imf)² and (0.2·lw/imf)²),
    // then bisection below it to a quantity the float formula confirms.
    let bound = |x: f64| if x > 0.0 { (x / imf).powi(2) } else { 0.0 };
    let real = w.iter().map(|&w| bound(1.1 / w - 1.0)).chain(lw.iter().map(|&lw| bound(0.2 * lw)));
    let real = real.fold(f64::MAX, f64::min);
    if neutral(real) {
        return real;
    }
    let (mut lo, mut hi) = (0.0, real);
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if neutral(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// [`Tables::a_whole_upto`] of an asset whose first haircut slice is `first` (lower, bound,
/// rate, base): the value up to which [`crate::haircut::HaircutTable::discounted`] returns the
/// value itself. Without tiers every value counts whole (+inf). A first slice from 0 at rate 1
/// with base 0 leaves `0 + (min(value, last) − 0)·1` equal to `value` for every value up to its
/// bound (the slice is then 0, and the last bound is at or above the first); else −inf.
fn whole_up_to(has_tiers: bool, first: (f64, f64, f64, f64)) -> f64 {
    let (lower, bound, rate, base) = first;
    if !has_tiers {
        f64::INFINITY
    } else if lower == 0.0 && rate == 1.0 && base == 0.0 {
        bound
    } else {
        f64::NEG_INFINITY
    }
}

/// Whether the SIMD kernel computes this call (else every account runs the scalar one).
pub fn simd_applies(ctx: &MarginContext<'_>, layout: &Sliced8, book: &GroupedBook) -> bool {
    !ctx.universe.venue_rules && layout.n_accounts() == book.n_accounts()
}

/// What a call prepares once from its prices: the per-code lookup and the SIMD tables.
pub struct Prepared<'c, 'a> {
    ctx: &'c MarginContext<'a>,
    lookup: PreparedLookup,
    tables: Tables,
    /// Whether the SIMD kernel runs at all (else every account runs the scalar one).
    simd: bool,
    level: Level,
}

impl<'c, 'a> Prepared<'c, 'a> {
    /// The tables of `ctx` for evaluating `book` through `layout` at `level`.
    pub fn new(book: &GroupedBook, layout: &Sliced8, ctx: &'c MarginContext<'a>, level: Level) -> Self {
        let lookup = PreparedLookup::new(ctx);
        let simd = level != Level::Scalar && level.supported() && simd_applies(ctx, layout, book);
        let tables = if simd { Tables::new(ctx, &lookup) } else { Tables::default() };
        Prepared { ctx, lookup, tables, simd, level }
    }

    /// For blocks whose results are read back at once (stress): ordinary stores keep them
    /// in cache, where streaming ones would send them to memory and back.
    pub fn cached(mut self) -> Self {
        self.tables.stream = false;
        self
    }
}

/// Bytes of one account's result (eight f64 columns, two flags).
const RESULT_BYTES: usize = 8 * 8 + 2;
/// Results up to this size are written with ordinary stores.
const CACHED_RESULTS: usize = 8 << 20;

/// How [`evaluate_into_with`] runs: the result's stores and the threads.
#[derive(Debug, Clone, Copy)]
pub struct Run<'p> {
    /// Streaming stores (a bulk pass over the book), else ordinary ones.
    pub stream: bool,
    pub threads: Threads<'p>,
}

/// Which threads evaluate the chunks. The chunks are independent, so which thread takes which
/// does not change a bit of the result.
#[derive(Debug, Clone, Copy)]
pub enum Threads<'p> {
    /// One after another on the calling thread, with no rayon call (a one-thread engine, or a
    /// book of one chunk, gains nothing from a pool and pays its hand-off).
    Calling,
    /// In parallel on the current rayon pool.
    Pool,
    /// The calling thread and the pool's other threads, each taking the next chunk until none
    /// is left: the caller works instead of waiting for the pool, and one thread fewer has to
    /// wake (a book of a few chunks is done in about the time a sleeping thread takes to wake).
    Beside(&'p rayon::ThreadPool),
}

impl Run<'_> {
    /// In parallel on the current pool; streaming stores for a result too large to stay in
    /// cache from one call to the next (`out=`), where they would send it to memory each time.
    pub fn for_accounts(n: usize) -> Self {
        Run { stream: n * RESULT_BYTES > CACHED_RESULTS, threads: Threads::Pool }
    }
}

/// [`crate::margin::evaluate_into`] at `level` on `layout` (the layout of `book`): the same
/// columns, bit for bit, at every level and thread count.
pub fn evaluate_into(
    book: &GroupedBook,
    layout: &Sliced8,
    ctx: &MarginContext<'_>,
    out: MarginColumnsMut<'_>,
    level: Level,
) -> Result<()> {
    evaluate_into_with(book, layout, ctx, out, level, Run::for_accounts(book.n_accounts()))
}

/// [`evaluate_into`] run as `run` says, whatever the book's size (the tests hold every way to
/// the same bits).
pub fn evaluate_into_with(
    book: &GroupedBook,
    layout: &Sliced8,
    ctx: &MarginContext<'_>,
    out: MarginColumnsMut<'_>,
    level: Level,
    run: Run,
) -> Result<()> {
    out.len_checked(book.n_accounts())?;
    // Where the SIMD kernel does not apply, every block runs the scalar formula.
    let p = Prepared::new(book, layout, ctx, level);
    let p = if run.stream { p } else { p.cached() };
    let chunks = out.into_chunks(CHUNK);
    match run.threads {
        Threads::Pool if chunks.len() > 1 => {
            chunks.into_par_iter().enumerate().for_each(|(c, mut cols)| {
                evaluate_block(book, layout, &p, c * CHUNK, &mut cols);
            });
        }
        Threads::Beside(pool) if chunks.len() > 1 => {
            let chunks: Vec<Mutex<Option<MarginColumnsMut<'_>>>> =
                chunks.into_iter().map(|c| Mutex::new(Some(c))).collect();
            let next = AtomicUsize::new(0);
            let take = || loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(c) else { break };
                let mut cols = chunk.lock().expect("a chunk's lock").take().expect("each chunk taken once");
                evaluate_block(book, layout, &p, c * CHUNK, &mut cols);
            };
            pool.in_place_scope(|s| {
                for _ in 1..pool.current_num_threads().min(chunks.len()) {
                    s.spawn(|_| take());
                }
                take();
            });
        }
        _ => {
            for (c, mut cols) in chunks.into_iter().enumerate() {
                evaluate_block(book, layout, &p, c * CHUNK, &mut cols);
            }
        }
    }
    Ok(())
}

/// Accounts `base..base + cols.len()` of `book` (`base` a multiple of [`GROUP`]) into
/// `cols`, bit for bit as [`evaluate_into`] writes them: SIMD runs of groups between the
/// groups the scalar kernel runs. Callers that evaluate one block under many prices (stress)
/// keep the block's rows in cache.
pub fn evaluate_block(
    book: &GroupedBook,
    layout: &Sliced8,
    p: &Prepared<'_, '_>,
    base: usize,
    cols: &mut MarginColumnsMut<'_>,
) {
    assert_eq!(base % GROUP, 0, "a block starts at a group");
    let end = base + cols.equity.len();
    if !p.simd {
        for a in base..end {
            cols.set(a - base, &evaluate_rows(book.account(a), p.ctx, &p.lookup));
        }
        return;
    }
    let t = &p.tables;
    let g1 = end.div_ceil(GROUP).min(layout.n_groups());
    let scalar = |g: usize| layout.has_orders[g] || (t.any_option && holds_option(layout, t, g));
    // Runs of SIMD groups, one kernel call each, between the groups the scalar kernel runs.
    let mut g = base / GROUP;
    while g < g1 {
        let run = g..(g..g1).find(|&e| scalar(e)).unwrap_or(g1);
        g = run.end;
        if !run.is_empty() {
            #[cfg(target_arch = "x86_64")]
            x86::groups(p.level, layout, t, run, cols, base);
        }
        if g < g1 {
            for a in g * GROUP..((g + 1) * GROUP).min(end) {
                cols.set(a - base, &evaluate_rows(book.account(a), p.ctx, &p.lookup));
            }
            g += 1;
        }
    }
}

/// Whether a position of group `g` is in an option market.
fn holds_option(layout: &Sliced8, t: &Tables, g: usize) -> bool {
    (layout.pos_slot[g]..layout.pos_slot[g + 1]).any(|s| {
        let mask = layout.pos_mask[s];
        (0..GROUP).any(|l| mask & (1 << l) != 0 && t.m_option[layout.pos_code(s, l) as usize])
    })
}

#[cfg(test)]
mod tests {
    use super::{size_neutral_up_to, whole_up_to};
    use crate::haircut::HaircutTable;
    use crate::imf::{discounted_weight, premium_weight};

    /// Whether |qty| `q` leaves every weight unchanged, bit for bit, by the scalar formulas.
    fn neutral(imf: f64, w: [f64; 2], lw: [f64; 2], q: f64) -> bool {
        w.iter().all(|&w| discounted_weight(w, imf, q).to_bits() == w.to_bits())
            && lw.iter().all(|&lw| premium_weight(lw, imf, q).to_bits() == lw.to_bits())
    }

    #[test]
    fn the_neutral_quantity_holds_below_and_is_tight() {
        for (imf, w, lw) in [
            (0.001, [0.95, 0.95], [1.2, 1.1]),
            (0.001, [0.9, 0.95], [1.2, 1.1]),
            (0.37, [0.5, 0.55], [1.2, 1.1]),
            (1e-9, [0.8, 0.9], [1.3, 1.2]),
            (0.5, [1.0, 1.0], [0.01, 0.02]),
        ] {
            let t = size_neutral_up_to(imf, w, lw);
            assert!(t > 0.0 && t.is_finite(), "{imf} {w:?} {lw:?}: {t}");
            // Every quantity up to it (a sweep and the last ulps) leaves the weights alone...
            let below = (0..=1000).map(|i| t * i as f64 / 1000.0);
            let mut last = t;
            for q in below.chain((0..50).map(|_| {
                last = last.next_down();
                last
            })) {
                assert!(neutral(imf, w, lw, q) && neutral(imf, w, lw, -q), "{imf} {w:?} {lw:?}: {q} ≤ {t}");
            }
            // ...and a quantity a millionth above it changes one (the bound is not loose).
            assert!(!neutral(imf, w, lw, t * (1.0 + 1e-6)), "{imf} {w:?} {lw:?}: {t} is loose");
        }
    }

    #[test]
    fn no_imf_is_neutral_everywhere_and_a_weight_the_cap_binds_at_zero_nowhere() {
        assert_eq!(size_neutral_up_to(0.0, [0.9, 0.9], [1.2, 1.1]), f64::INFINITY);
        // A weight above 1.1 is capped at any size; a NaN weight never compares equal.
        assert_eq!(size_neutral_up_to(0.001, [1.2, 1.0], [1.2, 1.1]), -1.0);
        assert_eq!(size_neutral_up_to(0.001, [f64::NAN, 1.0], [1.2, 1.1]), -1.0);
        // A zero liability weight: the premium binds at any size above zero.
        assert_eq!(size_neutral_up_to(0.001, [0.9, 0.9], [0.0, 1.1]), 0.0);
    }

    #[test]
    fn a_value_up_to_the_whole_bound_is_its_own_discounted_value() {
        // The demo's BTC tiers (python/crossmargin/data/universe.toml: Binance Cross Margin
        // "Collateral Ratio" Example 1, a first slice at rate 1 up to 100M), an illustrative
        // first slice below rate 1, an illustrative single slice.
        let tables: [&[(f64, f64)]; 3] = [
            &[(1e8, 1.0), (1.2e8, 0.975), (1.5e8, 0.95), (1.8e8, 0.9), (f64::INFINITY, 0.85)],
            &[(100.0, 0.9), (f64::INFINITY, 0.5)],
            &[(250.0, 1.0)],
        ];
        for (a, tiers) in tables.iter().enumerate() {
            let mut h = HaircutTable::default();
            h.push(tiers, "assets[X]").unwrap();
            let first = h.slices_of(0).next().unwrap();
            let upto = whole_up_to(true, first);
            assert_eq!(upto, [1e8, f64::NEG_INFINITY, 250.0][a]);
            if upto.is_finite() {
                let values = (0..=2000).map(|i| upto * i as f64 / 2000.0).chain([upto.next_down(), 1e-300, 0.3]);
                for v in values {
                    assert_eq!(h.discounted(0, v).to_bits(), v.to_bits(), "{tiers:?} {v}");
                }
                assert_ne!(h.discounted(0, upto * 1.5).to_bits(), (upto * 1.5).to_bits());
            }
        }
        assert_eq!(whole_up_to(false, (0.0, f64::INFINITY, 1.0, 0.0)), f64::INFINITY);
    }
}
