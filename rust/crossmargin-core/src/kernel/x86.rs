//! The x86-64 SIMD kernels: one body ([`group_body!`]) instantiated over AVX-512 (8 lanes,
//! one register per group) and AVX2 (4 lanes, a group in two halves). Each lane performs
//! the scalar formula of [`crate::margin`] (plain model) in its order: the same operations
//! on the same operands, so the results are bit-identical.
//!
//! Where the time goes, and what the body does about it (docs/ARCHITECTURE.md "Evaluation
//! kernel"):
//! - One call per run of groups (not per group): the tables' addresses are read once.
//! - Per-code constants and bracket / haircut tier values are register permutes when the book
//!   uses at most 8 codes (AVX-512: one permute; AVX2: two and a blend): the tier search and
//!   the lookup are one pass, each tier a masked permute of the lanes above its lower bound;
//!   gathers otherwise.

use std::ops::Range;

use super::layout::{Code, Codes, SlotCodes};
use super::{Level, Sliced8, Tables, GROUP};
use crate::margin::MarginColumnsMut;
use crate::memory::prefetch;

/// Groups `groups` of `layout` into `cols`, the columns of the accounts from `base` on (the
/// groups' accounts lie in them).
pub(super) fn groups(
    level: Level,
    layout: &Sliced8,
    t: &Tables,
    groups: Range<usize>,
    cols: &mut MarginColumnsMut<'_>,
    base: usize,
) {
    match level {
        // SAFETY: the level was checked as supported by this CPU (`Level::supported`); the
        // groups' accounts lie in `cols` (rows `g·8 - base ..`).
        Level::Avx512 => unsafe { avx512::groups(layout, t, groups, cols, base) },
        Level::Avx2 => unsafe { avx2::groups(layout, t, groups, cols, base) },
        Level::Scalar => unreachable!("the scalar level runs crate::margin"),
    }
}

/// Where a run's results go: the eight f64 columns, each through a [`Stream`] of the
/// module's width, and the two flag columns.
struct Sink<S> {
    f64s: [S; 8],
    liquidatable: *mut bool,
    bankrupt: *mut bool,
}

/// The f64 columns of a [`Sink`], in this order.
const EQUITY: usize = 0;
const UPNL: usize = 1;
const ADJ: [usize; 2] = [2, 3];
const REQ: [usize; 2] = [4, 5];
const FREE: usize = 6;
const RATIO: usize = 7;

/// The f64 columns of `cols` as base pointers.
fn f64_columns(cols: &mut MarginColumnsMut<'_>) -> [*mut f64; 8] {
    [
        cols.equity.as_mut_ptr(),
        cols.upnl.as_mut_ptr(),
        cols.adj_equity_initial.as_mut_ptr(),
        cols.adj_equity_maint.as_mut_ptr(),
        cols.im.as_mut_ptr(),
        cols.mm.as_mut_ptr(),
        cols.free_collateral.as_mut_ptr(),
        cols.margin_ratio.as_mut_ptr(),
    ]
}

/// One partial group's results, by lane.
#[derive(Debug, Default)]
struct Lanes {
    f64s: [[f64; GROUP]; 8],
    liquidatable: [bool; GROUP],
    bankrupt: [bool; GROUP],
}

impl Lanes {
    /// The first `lanes` results into rows `local..` of `cols`.
    fn copy_to(&self, cols: &mut MarginColumnsMut<'_>, local: usize, lanes: usize) {
        for l in 0..lanes {
            let j = local + l;
            cols.equity[j] = self.f64s[EQUITY][l];
            cols.upnl[j] = self.f64s[UPNL][l];
            cols.adj_equity_initial[j] = self.f64s[ADJ[0]][l];
            cols.adj_equity_maint[j] = self.f64s[ADJ[1]][l];
            cols.im[j] = self.f64s[REQ[0]][l];
            cols.mm[j] = self.f64s[REQ[1]][l];
            cols.free_collateral[j] = self.f64s[FREE][l];
            cols.margin_ratio[j] = self.f64s[RATIO][l];
            cols.liquidatable[j] = self.liquidatable[l];
            cols.bankrupt[j] = self.bankrupt[l];
        }
    }
}

/// Slots ahead of the current one whose quantities (and entry prices) are prefetched: the
/// loads of a slot's first quantities were the kernel's hottest stalls at 1M accounts
/// (cache misses on the layout's streams the hardware prefetcher had not brought in).
const AHEAD: usize = 16;

/// Byte l of entry b is bit l of b: 8 lane flags as 8 bools in one store.
const SPREAD: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut l = 0;
        while l < 8 {
            t[b] |= (((b >> l) & 1) as u64) << (8 * l);
            l += 1;
        }
        b += 1;
    }
    t
};

/// Writes lane flags `bits` (lane l: bit l) as `n` (4 or 8) bools.
#[inline(always)]
unsafe fn write_flags(p: *mut bool, bits: u8, n: usize) {
    let bytes = SPREAD[bits as usize];
    if n == 8 {
        std::ptr::write_unaligned(p as *mut u64, bytes);
    } else {
        std::ptr::write_unaligned(p as *mut u32, bytes as u32);
    }
}

/// The per-code tables that the permute kernels read in every slot, copied to the stack of a
/// run's call: with at most 8 codes of a kind each is one 64-byte line, addressed from the
/// stack pointer (`vpermq off(%rsp)`), where the tables' own addresses, one register each, did
/// not fit the registers and were reloaded from spill slots in the slot loop. The first 8
/// entries of each table (of the bracket tables: tier 0), read only when the kind's stride is
/// 8 ([`pick`]); with more codes the kernel gathers from [`Tables`] itself.
#[repr(C, align(64))]
struct Hot {
    a_price: [f64; GROUP],
    a_neutral: [f64; GROUP],
    a_whole_upto: [f64; GROUP],
    a_imf: [f64; GROUP],
    a_w: [[f64; GROUP]; 2],
    a_lw: [[f64; GROUP]; 2],
    h_last: [f64; GROUP],
    m_cs: [f64; GROUP],
    m_mark: [f64; GROUP],
    m_settle: [f64; GROUP],
    m_inverse: [f64; GROUP],
    m_inv_mark: [f64; GROUP],
    m_imf: [f64; GROUP],
    m_base: [[f64; GROUP]; 2],
    m_upnl_w: [[f64; GROUP]; 2],
    b_bound: [f64; GROUP],
    b_rate: [[f64; GROUP]; 2],
    b_cum: [[f64; GROUP]; 2],
}

impl Hot {
    fn new(t: &Tables) -> Hot {
        // Every table has a stride of at least 8 entries.
        let e = |v: &[f64]| -> [f64; GROUP] { std::array::from_fn(|i| v[i]) };
        Hot {
            a_price: e(&t.a_price),
            a_neutral: e(&t.a_neutral),
            a_whole_upto: e(&t.a_whole_upto),
            a_imf: e(&t.a_imf),
            a_w: [e(&t.a_w[0]), e(&t.a_w[1])],
            a_lw: [e(&t.a_lw[0]), e(&t.a_lw[1])],
            h_last: e(&t.h_last),
            m_cs: e(&t.m_cs),
            m_mark: e(&t.m_mark),
            m_settle: e(&t.m_settle),
            m_inverse: e(&t.m_inverse),
            m_inv_mark: e(&t.m_inv_mark),
            m_imf: e(&t.m_imf),
            m_base: [e(&t.m_base[0]), e(&t.m_base[1])],
            m_upnl_w: [e(&t.m_upnl_w[0]), e(&t.m_upnl_w[1])],
            b_bound: e(&t.b_bound),
            b_rate: [e(&t.b_rate[0]), e(&t.b_rate[1])],
            b_cum: [e(&t.b_cum[0]), e(&t.b_cum[1])],
        }
    }
}

/// A per-code table's address: its copy in [`Hot`] when the kernel permutes (`SMALL`: at most
/// 8 codes), else the table itself (gathers).
#[inline(always)]
fn pick<const SMALL: bool>(hot: &[f64; GROUP], table: &[f64]) -> *const f64 {
    if SMALL {
        hot.as_ptr()
    } else {
        table.as_ptr()
    }
}

/// The kernel over `L` lanes; the module that invokes it defines the vector operations (`F`
/// a vector of f64, `M` a lane mask, `Codes` a vector of codes) and `PERMUTES` (whether
/// tables of at most 8 codes are read with register permutes).
macro_rules! group_body {
    ($feature:literal) => {
        /// See [`super::groups`].
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn groups(
            s: &Sliced8,
            t: &Tables,
            groups: Range<usize>,
            cols: &mut MarginColumnsMut<'_>,
            base: usize,
        ) {
            match &s.codes {
                CodeCols::U8(c) => groups_by::<u8>(s, c, t, groups, cols, base),
                CodeCols::U16(c) => groups_by::<u16>(s, c, t, groups, cols, base),
                CodeCols::U32(c) => groups_by::<u32>(s, c, t, groups, cols, base),
            }
        }

        /// [`groups`] with codes `c` of width `C`.
        #[target_feature(enable = $feature)]
        unsafe fn groups_by<C: Code>(
            s: &Sliced8,
            c: &SlotCodes<C>,
            t: &Tables,
            groups: Range<usize>,
            cols: &mut MarginColumnsMut<'_>,
            base: usize,
        ) {
            match (PERMUTES && t.a_stride == 8, PERMUTES && t.m_stride == 8) {
                (true, true) => groups_of::<true, true, C>(s, c, t, groups, cols, base),
                (true, false) => groups_of::<true, false, C>(s, c, t, groups, cols, base),
                (false, true) => groups_of::<false, true, C>(s, c, t, groups, cols, base),
                (false, false) => groups_of::<false, false, C>(s, c, t, groups, cols, base),
            }
        }

        /// [`groups`] with assets (`SA`) and markets (`SM`) read by permutes or gathers (the
        /// group's body inline in the loop: the tables' addresses are read once per run).
        /// Whole groups go through streaming stores ([`Stream`]) unless the tables ask for
        /// ordinary ones; the last, partial group
        /// of the book through a buffer of 8 lanes.
        #[target_feature(enable = $feature)]
        unsafe fn groups_of<const SA: bool, const SM: bool, C: Code>(
            s: &Sliced8,
            codes: &SlotCodes<C>,
            t: &Tables,
            groups: Range<usize>,
            cols: &mut MarginColumnsMut<'_>,
            base: usize,
        ) {
            let n = cols.equity.len();
            // The 8-code tables on this function's stack (see Hot).
            let hot = Hot::new(t);
            let mut partial = None;
            {
                let mut sink = Sink {
                    f64s: f64_columns(cols).map(|p| if t.stream { Stream::new(p) } else { Stream::plain(p) }),
                    liquidatable: cols.liquidatable.as_mut_ptr(),
                    bankrupt: cols.bankrupt.as_mut_ptr(),
                };
                for g in groups {
                    let local = g * GROUP - base;
                    if local + GROUP > n {
                        partial = Some(g);
                        break;
                    }
                    group!(s, codes, t, hot, g, sink, local);
                }
                for c in &mut sink.f64s {
                    c.finish();
                }
                // The streaming stores are weakly ordered: fence them before the task ends.
                _mm_sfence();
            }
            if let Some(g) = partial {
                let local = g * GROUP - base;
                let mut lanes = Lanes::default();
                let mut sink = Sink {
                    f64s: lanes.f64s.each_mut().map(|c| Stream::plain(c.as_mut_ptr())),
                    liquidatable: lanes.liquidatable.as_mut_ptr(),
                    bankrupt: lanes.bankrupt.as_mut_ptr(),
                };
                group!(s, codes, t, hot, g, sink, 0);
                lanes.copy_to(cols, local, n - local);
            }
        }
    };
}

/// The formula of group `g` of `s` into `out` (the module's vector operations, generic
/// `SA` / `SM` in scope).
macro_rules! group {
    ($s:ident, $codes:ident, $t:ident, $hot:ident, $g:ident, $out:ident, $at:expr) => {{
        let (s, t, hot, g, out, at0): (&Sliced8, &Tables, &Hot, usize, &mut Sink<Stream>, usize) =
            ($s, $t, &$hot, $g, &mut $out, $at);
        let (bal_code, pos_code) = ($codes.bal.as_ptr(), $codes.pos.as_ptr());
        let one = splat(1.0);
        let zero = splat(0.0);
        let inf = splat(f64::INFINITY);
        let (sa, sm) = (splat(t.a_stride as f64), splat(t.m_stride as f64));
        for half in 0..GROUP / L {
            let lane0 = half * L;
            let mut equity = zero;
            let mut upnl = zero;
            let mut adj = [zero, zero];
            let mut req = [zero, zero];
            let mut iso_liq = no_lanes();
            for slot in s.bal_slot[g]..s.bal_slot[g + 1] {
                prefetch(s.bal_qty.as_ptr().wrapping_add((slot + AHEAD) * GROUP));
                let bits = (s.bal_mask[slot] >> lane0) & LANE_BITS;
                if bits == 0 {
                    continue;
                }
                let valid = lanes_of(bits);
                let at = slot * GROUP + lane0;
                let c = codes(bal_code.add(at));
                let qty = load(s.bal_qty.as_ptr().add(at));
                let price = get::<SA>(pick::<SA>(&hot.a_price, &t.a_price), &c);
                let value = mul(qty, price);
                equity = add_where(valid, equity, value);
                let long = and(valid, lt(zero, qty));
                let short = and(valid, lt(qty, zero));
                // Drift's size discount / premium change a weight only above the asset's
                // neutral |qty| (+inf without imf, Tables::a_neutral): the term
                // imf·sqrt(|qty|) and the cap 1.1 / (1 + term) are computed, once for both
                // sides, only for a slot with a lane above it.
                let exact = any(and_not(
                    le(abs(qty), get::<SA>(pick::<SA>(&hot.a_neutral, &t.a_neutral), &c)),
                    or(long, short),
                ));
                let (sized, term, cap) = if exact {
                    let imf = get::<SA>(pick::<SA>(&hot.a_imf, &t.a_imf), &c);
                    let sized = and_not(eq(imf, zero), or(long, short));
                    let term = mul(imf, sqrt(abs(qty)));
                    (sized, term, select(sized, inf, div(splat(1.1), add(one, term))))
                } else {
                    (no_lanes(), zero, inf)
                };
                if any(long) {
                    // Haircut tiers (only where a lane's value is above the part its
                    // asset counts whole, Tables::a_whole_upto: no tiers, or the first
                    // slice at rate 1): the slice is the count of bounds below the value.
                    let tiered = and(long, lt(get::<SA>(pick::<SA>(&hot.a_whole_upto, &t.a_whole_upto), &c), value));
                    let mut discounted = value;
                    if any(tiered) {
                        let (lower, rate, base) = if SA {
                            // Tier by tier: the lanes above a bound take the next slice's
                            // values (bounds increase: once no lane is above one, none is
                            // above the next ones).
                            let mut v = (
                                get::<true>(t.h_lower.as_ptr(), &c),
                                get::<true>(t.h_rate.as_ptr(), &c),
                                get::<true>(t.h_base.as_ptr(), &c),
                            );
                            for k in 0..t.h_tiers - 1 {
                                let below = lt(get::<true>(t.h_bound.as_ptr().add(k * 8), &c), value);
                                if !any(below) {
                                    break;
                                }
                                let next = (k + 1) * 8;
                                v.0 = get_where(below, v.0, t.h_lower.as_ptr().add(next), &c);
                                v.1 = get_where(below, v.1, t.h_rate.as_ptr().add(next), &c);
                                v.2 = get_where(below, v.2, t.h_base.as_ptr().add(next), &c);
                            }
                            v
                        } else {
                            let mut k_at = zero;
                            for k in 0..t.h_tiers - 1 {
                                let b = get::<false>(t.h_bound.as_ptr().add(k * t.a_stride), &c);
                                let below = lt(b, value);
                                if !any(below) {
                                    break;
                                }
                                k_at = add_where(below, k_at, sa);
                            }
                            let ix = index(k_at, &c);
                            (
                                gather(t.h_lower.as_ptr(), ix),
                                gather(t.h_rate.as_ptr(), ix),
                                gather(t.h_base.as_ptr(), ix),
                            )
                        };
                        let last = get::<SA>(pick::<SA>(&hot.h_last, &t.h_last), &c);
                        discounted = add(base, mul(sub(min(value, last), lower), rate));
                    }
                    // Drift's size discount: weight ≤ 1.1 / (1 + imf·sqrt(|qty|)).
                    for m in 0..2 {
                        let w = get::<SA>(pick::<SA>(&hot.a_w[m], &t.a_w[m]), &c);
                        let w = if exact { min(w, cap) } else { w };
                        adj[m] = add_where(long, adj[m], mul(discounted, w));
                    }
                }
                if any(short) {
                    // Drift's size premium: max(w, 0.8·w + imf·sqrt(|qty|)).
                    for m in 0..2 {
                        let w = get::<SA>(pick::<SA>(&hot.a_lw[m], &t.a_lw[m]), &c);
                        let w = if exact { select(sized, w, max(w, add(mul(splat(0.8), w), term))) } else { w };
                        adj[m] = add_where(short, adj[m], mul(value, w));
                    }
                }
            }
            let mut iso_at = s.iso_at[g];
            for slot in s.pos_slot[g]..s.pos_slot[g + 1] {
                prefetch(s.pos_qty.as_ptr().wrapping_add((slot + AHEAD) * GROUP));
                prefetch(s.pos_entry.as_ptr().wrapping_add((slot + AHEAD) * GROUP));
                // The slot's stored isolated margins start at `iso_here`.
                let (iso_here, iso_mask) = (iso_at, s.iso_mask[slot]);
                iso_at += iso_mask.count_ones() as usize;
                let bits = (s.pos_mask[slot] >> lane0) & LANE_BITS;
                if bits == 0 {
                    continue;
                }
                let valid = lanes_of(bits);
                let at = slot * GROUP + lane0;
                let c = codes(pos_code.add(at));
                let qty = load(s.pos_qty.as_ptr().add(at));
                let entry = load(s.pos_entry.as_ptr().add(at));
                let isolated = expand(s.iso.as_ptr().add(iso_here), iso_mask, lane0);
                let cs = get::<SM>(pick::<SM>(&hot.m_cs, &t.m_cs), &c);
                let mark = get::<SM>(pick::<SM>(&hot.m_mark, &t.m_mark), &c);
                let settle = get::<SM>(pick::<SM>(&hot.m_settle, &t.m_settle), &c);
                // crate::contract: linear |size|·mark, size·(mark − entry); inverse
                // |size| / mark, size·(1/entry − 1/mark) (0 for a zero quantity).
                let size = mul(qty, cs);
                let mut notional = mul(abs(size), mark);
                let mut pnl = mul(size, sub(mark, entry));
                // Branch-free when the book has an inverse market: about half the slots hold
                // one (the benchmark book: 55 %), a branch on them was mispredicted about as
                // often; the divisions of the other slots overlap with the rest of the slot.
                // Lanes not inverse (a padded lane's 1 / 0 included) are selected away.
                if t.any_inverse {
                    let inverse = and(valid, lt(zero, get::<SM>(pick::<SM>(&hot.m_inverse, &t.m_inverse), &c)));
                    let inv_mark = get::<SM>(pick::<SM>(&hot.m_inv_mark, &t.m_inv_mark), &c);
                    let (inv_notional, inv_entry) = (div(abs(size), mark), div(one, entry));
                    let inv_pnl = mul(size, sub(inv_entry, inv_mark));
                    let inv_pnl = select(eq(qty, zero), inv_pnl, zero);
                    notional = select(inverse, notional, inv_notional);
                    pnl = select(inverse, pnl, inv_pnl);
                }
                // Brackets: the tier is the count of bounds below the notional.
                let (rate, cum) = if SM {
                    // Tier by tier, as the haircut slices above.
                    let mut rate = [get::<true>(hot.b_rate[0].as_ptr(), &c), get::<true>(hot.b_rate[1].as_ptr(), &c)];
                    let mut cum = [get::<true>(hot.b_cum[0].as_ptr(), &c), get::<true>(hot.b_cum[1].as_ptr(), &c)];
                    for k in 0..t.b_tiers - 1 {
                        let bound = if k == 0 { hot.b_bound.as_ptr() } else { t.b_bound.as_ptr().add(k * 8) };
                        let below = lt(get::<true>(bound, &c), notional);
                        if !any(below) {
                            break;
                        }
                        let next = (k + 1) * 8;
                        for m in 0..2 {
                            rate[m] = get_where(below, rate[m], t.b_rate[m].as_ptr().add(next), &c);
                            cum[m] = get_where(below, cum[m], t.b_cum[m].as_ptr().add(next), &c);
                        }
                    }
                    (rate, cum)
                } else {
                    let mut k_at = zero;
                    for k in 0..t.b_tiers - 1 {
                        let b = get::<false>(t.b_bound.as_ptr().add(k * t.m_stride), &c);
                        let below = lt(b, notional);
                        if !any(below) {
                            break;
                        }
                        k_at = add_where(below, k_at, sm);
                    }
                    let ix = index(k_at, &c);
                    (
                        [gather(t.b_rate[0].as_ptr(), ix), gather(t.b_rate[1].as_ptr(), ix)],
                        [gather(t.b_cum[0].as_ptr(), ix), gather(t.b_cum[1].as_ptr(), ix)],
                    )
                };
                let mut r = [sub(mul(notional, rate[0]), cum[0]), sub(mul(notional, rate[1]), cum[1])];
                if t.any_market_imf {
                    let imf = get::<SM>(pick::<SM>(&hot.m_imf, &t.m_imf), &c);
                    let premium = and(valid, lt(zero, imf));
                    if any(premium) {
                        let term = mul(imf, sqrt(abs(size)));
                        for m in 0..2 {
                            let base = get::<SM>(pick::<SM>(&hot.m_base[m], &t.m_base[m]), &c);
                            let p = max(base, add(mul(splat(0.8), base), term));
                            r[m] = select(premium, r[m], max(r[m], mul(notional, p)));
                        }
                    }
                }
                let pnl = mul(pnl, settle);
                let r = [mul(r[0], settle), mul(r[1], settle)];
                upnl = add_where(valid, upnl, pnl);
                equity = add_where(valid, equity, pnl);
                let iso = and(valid, lt(zero, isolated));
                let cross = and_not(iso, valid);
                // Branch-free (a slot holds an isolated row about as often as not).
                let margin = mul(isolated, settle);
                equity = add_where(iso, equity, margin);
                iso_liq = or(iso_liq, and(iso, lt(add(margin, pnl), r[1])));
                for m in 0..2 {
                    let w = get::<SM>(pick::<SM>(&hot.m_upnl_w[m], &t.m_upnl_w[m]), &c);
                    let collateral = add(min(pnl, zero), mul(max(pnl, zero), w));
                    adj[m] = add_where(cross, adj[m], collateral);
                    req[m] = add_where(cross, req[m], r[m]);
                }
            }
            // AccountMargin::{free_collateral, margin_ratio, liquidatable, bankrupt}
            let free = sub(adj[0], req[0]);
            let ratio = select(le(adj[1], zero), div(req[1], adj[1]), inf);
            let ratio = select(eq(req[1], zero), ratio, zero);
            let liquidatable = or(lt(adj[1], req[1]), iso_liq);
            let at = at0 + lane0;
            out.f64s[EQUITY].put(at, equity);
            out.f64s[UPNL].put(at, upnl);
            for m in 0..2 {
                out.f64s[ADJ[m]].put(at, adj[m]);
                out.f64s[REQ[m]].put(at, req[m]);
            }
            out.f64s[FREE].put(at, free);
            out.f64s[RATIO].put(at, ratio);
            write_flags(out.liquidatable.add(at), bits_of(liquidatable), L);
            write_flags(out.bankrupt.add(at), bits_of(lt(equity, zero)), L);
        }
    }};
}

mod avx512 {
    use std::arch::x86_64::*;

    use super::{
        f64_columns, pick, prefetch, write_flags, Code, Codes as CodeCols, Hot, Lanes, MarginColumnsMut, Range, Sink,
        Sliced8, SlotCodes, Tables, ADJ, AHEAD, EQUITY, FREE, GROUP, RATIO, REQ, UPNL,
    };

    const L: usize = 8;
    const LANE_BITS: u8 = 0xff;
    const PERMUTES: bool = true;
    type F = __m512d;
    type M = __mmask8;

    /// A slot's 8 codes: as 32-bit gather offsets and as 64-bit permute indices.
    struct Codes {
        c32: __m256i,
        c64: __m512i,
    }

    /// A slot's 8 codes of width `C`, widened.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn codes<C: Code>(p: *const C) -> Codes {
        let c32 = match C::BYTES {
            1 => _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i)),
            2 => _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
            _ => _mm256_loadu_si256(p as *const __m256i),
        };
        Codes { c32, c64: _mm512_cvtepu32_epi64(c32) }
    }

    /// A slot's isolated margins: the stored values from `p` into the lanes of `mask`
    /// (lane order), +0.0 in the others.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn expand(p: *const f64, mask: u8, _lane0: usize) -> F {
        _mm512_maskz_expandloadu_pd(mask, p)
    }

    /// Entry `code` of a per-code table: a permute of its 8 entries held in a register
    /// when the book uses at most 8 codes (`SMALL`), else a gather.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn get<const SMALL: bool>(table: *const f64, c: &Codes) -> F {
        if SMALL {
            _mm512_permutexvar_pd(c.c64, _mm512_loadu_pd(table))
        } else {
            _mm512_i32gather_pd::<8>(c.c32, table as *const _)
        }
    }

    /// `m ? table[code] : src` per lane, from a table of 8 codes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn get_where(m: M, src: F, table: *const f64, c: &Codes) -> F {
        _mm512_mask_permutexvar_pd(src, m, c.c64, _mm512_loadu_pd(table))
    }

    /// Offsets `k_at` (a tier × the table's stride, as f64) + code.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn index(k_at: F, c: &Codes) -> __m256i {
        _mm256_add_epi32(_mm512_cvtpd_epi32(k_at), c.c32)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gather(table: *const f64, ix: __m256i) -> F {
        _mm512_i32gather_pd::<8>(ix, table as *const _)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn splat(x: f64) -> F {
        _mm512_set1_pd(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f64) -> F {
        _mm512_loadu_pd(p)
    }

    /// One result column written a group (8 values, 64 bytes) at a time with streaming
    /// (non-temporal) stores of whole aligned 64-byte lines: no read for ownership, the
    /// results do not evict the layout from cache. A column `k` values past a line boundary
    /// writes its first group's first `8 - k` values with an ordinary masked store, then at
    /// each group the line made of the previous group's last `k` values and this group's
    /// first `8 - k` (one two-register permute), and at [`Stream::finish`] the last group's
    /// last `k` values (ordinary). Consecutive `put`s are at consecutive groups.
    pub(super) struct Stream {
        p: *mut f64,
        /// Values from the last line boundary to the column's start (0–7), or [`PLAIN`].
        k: usize,
        /// Lane i of a line: lane `i + 8 - k` of (previous group, this group).
        idx: __m512i,
        prev: F,
        prev_at: usize,
        pending: bool,
    }

    /// A [`Stream`] of ordinary unaligned stores (a buffer on the stack).
    const PLAIN: usize = usize::MAX;

    impl Stream {
        pub(super) fn new(p: *mut f64) -> Stream {
            let k = (p as usize / 8) % 8;
            Stream::with(p, k)
        }

        pub(super) fn plain(p: *mut f64) -> Stream {
            Stream::with(p, PLAIN)
        }

        fn with(p: *mut f64, k: usize) -> Stream {
            let lanes: [i64; 8] = std::array::from_fn(|i| (i + 8 - k.min(8)) as i64);
            // SAFETY: plain integer and float vectors (no pointer is read).
            let (idx, prev) = unsafe { (std::mem::transmute::<[i64; 8], __m512i>(lanes), std::mem::zeroed()) };
            Stream { p, k, idx, prev, prev_at: 0, pending: false }
        }

        /// Values `at..at + 8` of the column.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn put(&mut self, at: usize, x: F) {
            let p = self.p.add(at);
            match self.k {
                0 => _mm512_stream_pd(p, x),
                PLAIN => _mm512_storeu_pd(p, x),
                k => {
                    if self.pending {
                        _mm512_stream_pd(p.sub(k), _mm512_permutex2var_pd(self.prev, self.idx, x));
                    } else {
                        _mm512_mask_storeu_pd(p, (1u8 << (8 - k)) - 1, x);
                    }
                    (self.prev, self.prev_at, self.pending) = (x, at, true);
                }
            }
        }

        /// The last group's values not yet written.
        #[inline]
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn finish(&mut self) {
            if self.pending {
                let head = (1u8 << (8 - self.k)) - 1;
                _mm512_mask_storeu_pd(self.p.add(self.prev_at), !head, self.prev);
                self.pending = false;
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn add(a: F, b: F) -> F {
        _mm512_add_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sub(a: F, b: F) -> F {
        _mm512_sub_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul(a: F, b: F) -> F {
        _mm512_mul_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn div(a: F, b: F) -> F {
        _mm512_div_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn sqrt(a: F) -> F {
        _mm512_sqrt_pd(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn abs(a: F) -> F {
        _mm512_abs_pd(a)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn min(a: F, b: F) -> F {
        _mm512_min_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn max(a: F, b: F) -> F {
        _mm512_max_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn lt(a: F, b: F) -> M {
        _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn le(a: F, b: F) -> M {
        _mm512_cmp_pd_mask::<_CMP_LE_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn eq(a: F, b: F) -> M {
        _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(a, b)
    }
    /// `m ? b : a` per lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn select(m: M, a: F, b: F) -> F {
        _mm512_mask_blend_pd(m, a, b)
    }
    /// `m ? acc + x : acc` per lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn add_where(m: M, acc: F, x: F) -> F {
        _mm512_mask_add_pd(acc, m, acc, x)
    }
    #[inline]
    fn and(a: M, b: M) -> M {
        a & b
    }
    #[inline]
    fn or(a: M, b: M) -> M {
        a | b
    }
    /// `b` without `a`.
    #[inline]
    fn and_not(a: M, b: M) -> M {
        !a & b
    }
    #[inline]
    fn any(m: M) -> bool {
        m != 0
    }
    #[inline]
    fn no_lanes() -> M {
        0
    }
    #[inline]
    fn lanes_of(bits: u8) -> M {
        bits
    }
    #[inline]
    fn bits_of(m: M) -> u8 {
        m
    }

    group_body!("avx512f");
}

mod avx2 {
    use std::arch::x86_64::*;

    use super::{
        f64_columns, pick, prefetch, write_flags, Code, Codes as CodeCols, Hot, Lanes, MarginColumnsMut, Range, Sink,
        Sliced8, SlotCodes, Tables, ADJ, AHEAD, EQUITY, FREE, GROUP, RATIO, REQ, UPNL,
    };

    const L: usize = 4;
    const LANE_BITS: u8 = 0x0f;
    /// A table of 8 codes is two registers of 4 f64, read with two cross-lane permutes and a
    /// blend (a gather costs several times that, most on AMD cores).
    const PERMUTES: bool = true;
    type F = __m256d;
    /// A lane mask: all bits set in a selected lane.
    type M = __m256d;

    /// A half slot's 4 codes: as 32-bit gather offsets, and for the permutes the 32-bit
    /// element pair of `code mod 4` in a register of 4 f64 (`pair`) and whether the code is
    /// in the table's upper half (`upper`, bit 2 of the code in each lane's sign bit).
    struct Codes {
        c32: __m128i,
        pair: __m256i,
        upper: __m256d,
    }

    /// A half slot's 4 codes of width `C`, widened.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn codes<C: Code>(p: *const C) -> Codes {
        let c32 = match C::BYTES {
            1 => _mm_cvtepu8_epi32(_mm_cvtsi32_si128(std::ptr::read_unaligned(p as *const i32))),
            2 => _mm_cvtepu16_epi32(_mm_loadl_epi64(p as *const __m128i)),
            _ => _mm_loadu_si128(p as *const __m128i),
        };
        let c64 = _mm256_cvtepu32_epi64(c32);
        // Element 2·(c mod 4) in the low half of each 64-bit lane, the next one in its high
        // half; the low 3 bits of a code pick its entry, as AVX-512's permute does.
        let even = _mm256_slli_epi64::<1>(_mm256_and_si256(c64, _mm256_set1_epi64x(3)));
        let pair = _mm256_or_si256(even, _mm256_slli_epi64::<32>(_mm256_add_epi64(even, _mm256_set1_epi64x(1))));
        Codes { c32, pair, upper: _mm256_castsi256_pd(_mm256_slli_epi64::<61>(c64)) }
    }

    /// Per 4-lane mask: the 32-bit halves of the packed values each lane takes (lane i of the
    /// mask takes value `popcount(mask below i)`; a lane outside it is cleared after).
    const EXPAND: [[i32; 8]; 16] = {
        let mut t = [[0i32; 8]; 16];
        let mut m = 0;
        while m < 16 {
            let mut rank = 0;
            let mut i = 0;
            while i < 4 {
                if m >> i & 1 != 0 {
                    t[m][2 * i] = 2 * rank;
                    t[m][2 * i + 1] = 2 * rank + 1;
                    rank += 1;
                }
                i += 1;
            }
            m += 1;
        }
        t
    };

    /// Lanes `lane0..lane0 + 4` of a slot's isolated margins: the stored values from `p`
    /// (those of the lanes of `mask` below `lane0` first) into the half's lanes of `mask`,
    /// +0.0 in the others. Reads 4 values (the layout pads the packed values).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn expand(p: *const f64, mask: u8, lane0: usize) -> F {
        let below = (u32::from(mask) & ((1 << lane0) - 1)).count_ones() as usize;
        let half = (mask >> lane0) & LANE_BITS;
        let v = _mm256_loadu_pd(p.add(below));
        let ix = _mm256_loadu_si256(EXPAND[half as usize].as_ptr() as *const __m256i);
        let v = _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), ix));
        _mm256_and_pd(v, lanes_of(half))
    }

    /// Entry `code` of a per-code table: permutes of its 8 entries when the book uses at
    /// most 8 codes (`SMALL`), else a gather.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn get<const SMALL: bool>(table: *const f64, c: &Codes) -> F {
        if SMALL {
            let lower = _mm256_permutevar8x32_ps(_mm256_castpd_ps(_mm256_loadu_pd(table)), c.pair);
            let upper = _mm256_permutevar8x32_ps(_mm256_castpd_ps(_mm256_loadu_pd(table.add(4))), c.pair);
            _mm256_blendv_pd(_mm256_castps_pd(lower), _mm256_castps_pd(upper), c.upper)
        } else {
            _mm256_i32gather_pd::<8>(table, c.c32)
        }
    }

    /// `m ? table[code] : src` per lane, from a table of 8 codes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn get_where(m: M, src: F, table: *const f64, c: &Codes) -> F {
        _mm256_blendv_pd(src, get::<true>(table, c), m)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn index(k_at: F, c: &Codes) -> __m128i {
        _mm_add_epi32(_mm256_cvtpd_epi32(k_at), c.c32)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn gather(table: *const f64, ix: __m128i) -> F {
        _mm256_i32gather_pd::<8>(table, ix)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn splat(x: f64) -> F {
        _mm256_set1_pd(x)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(p: *const f64) -> F {
        _mm256_loadu_pd(p)
    }

    /// One result column written 4 values (32 bytes) at a time, streaming as the AVX-512
    /// [`Stream`](super::avx512) does when the column starts on a 32-byte boundary or 16
    /// bytes past one (two 128-bit halves swapped between registers); ordinary stores at
    /// other offsets.
    pub(super) struct Stream {
        p: *mut f64,
        /// 0, 2, or [`PLAIN`].
        k: usize,
        prev: F,
        prev_at: usize,
        pending: bool,
    }

    const PLAIN: usize = usize::MAX;

    impl Stream {
        pub(super) fn new(p: *mut f64) -> Stream {
            let k = (p as usize / 8) % 4;
            Stream::with(p, if k.is_multiple_of(2) { k } else { PLAIN })
        }

        pub(super) fn plain(p: *mut f64) -> Stream {
            Stream::with(p, PLAIN)
        }

        fn with(p: *mut f64, k: usize) -> Stream {
            // SAFETY: a plain float vector.
            Stream { p, k, prev: unsafe { std::mem::zeroed() }, prev_at: 0, pending: false }
        }

        /// Values `at..at + 4` of the column.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn put(&mut self, at: usize, x: F) {
            let p = self.p.add(at);
            match self.k {
                0 => _mm256_stream_pd(p, x),
                PLAIN => _mm256_storeu_pd(p, x),
                _ => {
                    if self.pending {
                        _mm256_stream_pd(p.sub(2), _mm256_permute2f128_pd::<0x21>(self.prev, x));
                    } else {
                        _mm_storeu_pd(p, _mm256_castpd256_pd128(x));
                    }
                    (self.prev, self.prev_at, self.pending) = (x, at, true);
                }
            }
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) unsafe fn finish(&mut self) {
            if self.pending {
                _mm_storeu_pd(self.p.add(self.prev_at + 2), _mm256_extractf128_pd::<1>(self.prev));
                self.pending = false;
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn add(a: F, b: F) -> F {
        _mm256_add_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sub(a: F, b: F) -> F {
        _mm256_sub_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn mul(a: F, b: F) -> F {
        _mm256_mul_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn div(a: F, b: F) -> F {
        _mm256_div_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sqrt(a: F) -> F {
        _mm256_sqrt_pd(a)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn abs(a: F) -> F {
        _mm256_andnot_pd(_mm256_set1_pd(-0.0), a)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn min(a: F, b: F) -> F {
        _mm256_min_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn max(a: F, b: F) -> F {
        _mm256_max_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lt(a: F, b: F) -> M {
        _mm256_cmp_pd::<_CMP_LT_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn le(a: F, b: F) -> M {
        _mm256_cmp_pd::<_CMP_LE_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn eq(a: F, b: F) -> M {
        _mm256_cmp_pd::<_CMP_EQ_OQ>(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn select(m: M, a: F, b: F) -> F {
        _mm256_blendv_pd(a, b, m)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn add_where(m: M, acc: F, x: F) -> F {
        _mm256_blendv_pd(acc, _mm256_add_pd(acc, x), m)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn and(a: M, b: M) -> M {
        _mm256_and_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn or(a: M, b: M) -> M {
        _mm256_or_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn and_not(a: M, b: M) -> M {
        _mm256_andnot_pd(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn any(m: M) -> bool {
        _mm256_movemask_pd(m) != 0
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn no_lanes() -> M {
        _mm256_setzero_pd()
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lanes_of(bits: u8) -> M {
        // One load from a 512-byte table (building the mask from the bits took ~8 µops).
        _mm256_loadu_pd(LANE_MASKS[(bits & LANE_BITS) as usize].as_ptr() as *const f64)
    }

    /// The lane mask of each 4-bit lane set.
    static LANE_MASKS: [[i64; 4]; 16] = {
        let mut t = [[0i64; 4]; 16];
        let mut b = 0;
        while b < 16 {
            let mut i = 0;
            while i < 4 {
                t[b][i] = -((b as i64 >> i) & 1);
                i += 1;
            }
            b += 1;
        }
        t
    };
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn bits_of(m: M) -> u8 {
        _mm256_movemask_pd(m) as u8
    }

    group_body!("avx2");
}
