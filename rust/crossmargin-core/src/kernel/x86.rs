//! The x86-64 SIMD kernels: one body ([`group_body!`]) instantiated over AVX-512 (8 lanes,
//! one register per group) and AVX2 (4 lanes, a group in two halves). Each lane performs
//! the scalar formula of [`crate::margin`] (plain model) in its order: the same operations
//! on the same operands, so the results are bit-identical.

use super::{Level, Sliced8, Tables, GROUP};
use crate::margin::MarginColumnsMut;

/// Group `g` of `layout` into `cols` rows `local..local + lanes`.
pub(super) fn group(
    level: Level,
    layout: &Sliced8,
    t: &Tables,
    g: usize,
    cols: &mut MarginColumnsMut<'_>,
    local: usize,
    lanes: usize,
) {
    if lanes == GROUP {
        // A whole group: the kernel stores straight into the columns.
        let out = Out {
            equity: cols.equity[local..local + GROUP].as_mut_ptr(),
            upnl: cols.upnl[local..local + GROUP].as_mut_ptr(),
            adj: [
                cols.adj_equity_initial[local..local + GROUP].as_mut_ptr(),
                cols.adj_equity_maint[local..local + GROUP].as_mut_ptr(),
            ],
            req: [cols.im[local..local + GROUP].as_mut_ptr(), cols.mm[local..local + GROUP].as_mut_ptr()],
            free: cols.free_collateral[local..local + GROUP].as_mut_ptr(),
            ratio: cols.margin_ratio[local..local + GROUP].as_mut_ptr(),
            liquidatable: cols.liquidatable[local..local + GROUP].as_mut_ptr(),
            bankrupt: cols.bankrupt[local..local + GROUP].as_mut_ptr(),
        };
        run(level, layout, t, g, &out);
        return;
    }
    // The last, partial group: through a buffer of 8 lanes.
    let mut r = Lanes::default();
    let out = Out {
        equity: r.equity.as_mut_ptr(),
        upnl: r.upnl.as_mut_ptr(),
        adj: [r.adj[0].as_mut_ptr(), r.adj[1].as_mut_ptr()],
        req: [r.req[0].as_mut_ptr(), r.req[1].as_mut_ptr()],
        free: r.free.as_mut_ptr(),
        ratio: r.ratio.as_mut_ptr(),
        liquidatable: r.liquidatable.as_mut_ptr(),
        bankrupt: r.bankrupt.as_mut_ptr(),
    };
    run(level, layout, t, g, &out);
    for l in 0..lanes {
        let j = local + l;
        cols.equity[j] = r.equity[l];
        cols.upnl[j] = r.upnl[l];
        cols.adj_equity_initial[j] = r.adj[0][l];
        cols.adj_equity_maint[j] = r.adj[1][l];
        cols.im[j] = r.req[0][l];
        cols.mm[j] = r.req[1][l];
        cols.free_collateral[j] = r.free[l];
        cols.margin_ratio[j] = r.ratio[l];
        cols.liquidatable[j] = r.liquidatable[l];
        cols.bankrupt[j] = r.bankrupt[l];
    }
}

fn run(level: Level, layout: &Sliced8, t: &Tables, g: usize, out: &Out) {
    match level {
        // SAFETY: the level was checked as supported by this CPU (`Level::supported`), and
        // every pointer of `out` addresses 8 writable values.
        Level::Avx512 => unsafe { avx512::group(layout, t, g, out) },
        Level::Avx2 => unsafe { avx2::group(layout, t, g, out) },
        Level::Scalar => unreachable!("the scalar level runs crate::margin"),
    }
}

/// Where a group's 8 results go: 8 consecutive values of each column.
struct Out {
    equity: *mut f64,
    upnl: *mut f64,
    adj: [*mut f64; 2],
    req: [*mut f64; 2],
    free: *mut f64,
    ratio: *mut f64,
    liquidatable: *mut bool,
    bankrupt: *mut bool,
}

/// One partial group's results, by lane.
#[derive(Debug, Default)]
struct Lanes {
    equity: [f64; GROUP],
    upnl: [f64; GROUP],
    adj: [[f64; GROUP]; 2],
    req: [[f64; GROUP]; 2],
    free: [f64; GROUP],
    ratio: [f64; GROUP],
    liquidatable: [bool; GROUP],
    bankrupt: [bool; GROUP],
}

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

/// The kernel of one group over `L` lanes; the module that invokes it defines the vector
/// operations (`F` a vector of f64, `M` a lane mask, `Codes` a vector of codes).
macro_rules! group_body {
    ($feature:literal) => {
        #[target_feature(enable = $feature)]
        pub(super) unsafe fn group(s: &Sliced8, t: &Tables, g: usize, out: &Out) {
            let one = splat(1.0);
            let zero = splat(0.0);
            let inf = splat(f64::INFINITY);
            let small_a = t.a_stride == 8;
            let small_m = t.m_stride == 8;
            let (sa, sm) = (splat(t.a_stride as f64), splat(t.m_stride as f64));
            for half in 0..GROUP / L {
                let lane0 = half * L;
                let mut equity = zero;
                let mut upnl = zero;
                let mut adj = [zero, zero];
                let mut req = [zero, zero];
                let mut iso_liq = no_lanes();
                for slot in s.bal_slot[g]..s.bal_slot[g + 1] {
                    let bits = (s.bal_mask[slot] >> lane0) & LANE_BITS;
                    if bits == 0 {
                        continue;
                    }
                    let valid = lanes_of(bits);
                    let at = slot * GROUP + lane0;
                    let c = codes(s.bal_code.as_ptr().add(at));
                    let qty = load(s.bal_qty.as_ptr().add(at));
                    let price = get(small_a, t.a_price.as_ptr(), &c);
                    let value = mul(qty, price);
                    equity = add_where(valid, equity, value);
                    let long = and(valid, lt(zero, qty));
                    let short = and(valid, lt(qty, zero));
                    if any(long) {
                        // Haircut tiers (only where a lane's asset has them; without, the
                        // value counts whole): the slice is the count of bounds below the value.
                        let tiered = and(long, lt(zero, get(small_a, t.a_tiered.as_ptr(), &c)));
                        let mut discounted = value;
                        if any(tiered) {
                            let mut k_at = zero;
                            for k in 0..t.h_tiers - 1 {
                                let b = get(small_a, t.h_bound.as_ptr().add(k * t.a_stride), &c);
                                let below = lt(b, value);
                                // Bounds increase: once no lane is above a bound, none is above
                                // the next ones (the count is final).
                                if !any(below) {
                                    break;
                                }
                                k_at = add_where(below, k_at, sa);
                            }
                            let ix = index(k_at, &c);
                            let lower = gather(t.h_lower.as_ptr(), ix);
                            let rate = gather(t.h_rate.as_ptr(), ix);
                            let base = gather(t.h_base.as_ptr(), ix);
                            let last = get(small_a, t.h_last.as_ptr(), &c);
                            discounted = add(base, mul(sub(min(value, last), lower), rate));
                        }
                        // Drift's size discount: weight ≤ 1.1 / (1 + imf·sqrt(|qty|)).
                        let imf = get(small_a, t.a_imf.as_ptr(), &c);
                        let plain = eq(imf, zero);
                        let mut cap = inf;
                        if any(and_not(plain, long)) {
                            cap = select(plain, div(splat(1.1), add(one, mul(imf, sqrt(abs(qty))))), inf);
                        }
                        for m in 0..2 {
                            let w = get(small_a, t.a_w[m].as_ptr(), &c);
                            adj[m] = add_where(long, adj[m], mul(discounted, min(w, cap)));
                        }
                    }
                    if any(short) {
                        // Drift's size premium: max(w, 0.8·w + imf·sqrt(|qty|)).
                        let imf = get(small_a, t.a_imf.as_ptr(), &c);
                        let plain = eq(imf, zero);
                        let premium = any(and_not(plain, short));
                        let term = if premium { mul(imf, sqrt(abs(qty))) } else { zero };
                        for m in 0..2 {
                            let w = get(small_a, t.a_lw[m].as_ptr(), &c);
                            let w = if premium { select(plain, max(w, add(mul(splat(0.8), w), term)), w) } else { w };
                            adj[m] = add_where(short, adj[m], mul(value, w));
                        }
                    }
                }
                for slot in s.pos_slot[g]..s.pos_slot[g + 1] {
                    let bits = (s.pos_mask[slot] >> lane0) & LANE_BITS;
                    if bits == 0 {
                        continue;
                    }
                    let valid = lanes_of(bits);
                    let at = slot * GROUP + lane0;
                    let c = codes(s.pos_code.as_ptr().add(at));
                    let qty = load(s.pos_qty.as_ptr().add(at));
                    let entry = load(s.pos_entry.as_ptr().add(at));
                    let isolated = load(s.pos_iso.as_ptr().add(at));
                    let cs = get(small_m, t.m_cs.as_ptr(), &c);
                    let mark = get(small_m, t.m_mark.as_ptr(), &c);
                    let settle = get(small_m, t.m_settle.as_ptr(), &c);
                    // crate::contract: linear |size|·mark, size·(mark − entry); inverse
                    // |size| / mark, size·(1/entry − 1/mark) (0 for a zero quantity).
                    let size = mul(qty, cs);
                    let mut notional = mul(abs(size), mark);
                    let mut pnl = mul(size, sub(mark, entry));
                    if t.any_inverse {
                        let inverse = and(valid, lt(zero, get(small_m, t.m_inverse.as_ptr(), &c)));
                        if any(inverse) {
                            let inv_mark = get(small_m, t.m_inv_mark.as_ptr(), &c);
                            let inv_pnl = mul(size, sub(div(one, entry), inv_mark));
                            let inv_pnl = select(eq(qty, zero), inv_pnl, zero);
                            notional = select(inverse, notional, div(abs(size), mark));
                            pnl = select(inverse, pnl, inv_pnl);
                        }
                    }
                    // Brackets: the tier is the count of bounds below the notional.
                    let mut k_at = zero;
                    for k in 0..t.b_tiers - 1 {
                        let b = get(small_m, t.b_bound.as_ptr().add(k * t.m_stride), &c);
                        let below = lt(b, notional);
                        if !any(below) {
                            break;
                        }
                        k_at = add_where(below, k_at, sm);
                    }
                    let ix = index(k_at, &c);
                    let mut r = [zero, zero];
                    for m in 0..2 {
                        let rate = gather(t.b_rate[m].as_ptr(), ix);
                        let cum = gather(t.b_cum[m].as_ptr(), ix);
                        r[m] = sub(mul(notional, rate), cum);
                    }
                    if t.any_market_imf {
                        let imf = get(small_m, t.m_imf.as_ptr(), &c);
                        let premium = and(valid, lt(zero, imf));
                        if any(premium) {
                            let term = mul(imf, sqrt(abs(size)));
                            for m in 0..2 {
                                let base = get(small_m, t.m_base[m].as_ptr(), &c);
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
                    if any(iso) {
                        let margin = mul(isolated, settle);
                        equity = add_where(iso, equity, margin);
                        iso_liq = or(iso_liq, and(iso, lt(add(margin, pnl), r[1])));
                    }
                    for m in 0..2 {
                        let w = get(small_m, t.m_upnl_w[m].as_ptr(), &c);
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
                store(out.equity.add(lane0), equity);
                store(out.upnl.add(lane0), upnl);
                for m in 0..2 {
                    store(out.adj[m].add(lane0), adj[m]);
                    store(out.req[m].add(lane0), req[m]);
                }
                store(out.free.add(lane0), free);
                store(out.ratio.add(lane0), ratio);
                write_flags(out.liquidatable.add(lane0), bits_of(liquidatable), L);
                write_flags(out.bankrupt.add(lane0), bits_of(lt(equity, zero)), L);
            }
        }
    };
}

mod avx512 {
    use std::arch::x86_64::*;

    use super::{write_flags, Out, Sliced8, Tables, GROUP};

    const L: usize = 8;
    const LANE_BITS: u8 = 0xff;
    type F = __m512d;
    type M = __mmask8;

    /// A slot's 8 codes: as 32-bit gather offsets and as 64-bit permute indices.
    struct Codes {
        c32: __m256i,
        c64: __m512i,
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn codes(p: *const u32) -> Codes {
        let c32 = _mm256_loadu_si256(p as *const __m256i);
        Codes { c32, c64: _mm512_cvtepu32_epi64(c32) }
    }

    /// Entry `code` of a per-code table: a permute of its 8 entries held in a register
    /// when the book uses at most 8 codes, else a gather.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn get(small: bool, table: *const f64, c: &Codes) -> F {
        if small {
            _mm512_permutexvar_pd(c.c64, _mm512_loadu_pd(table))
        } else {
            _mm512_i32gather_pd::<8>(c.c32, table as *const _)
        }
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
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f64, x: F) {
        _mm512_storeu_pd(p, x)
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

    use super::{write_flags, Out, Sliced8, Tables, GROUP};

    const L: usize = 4;
    const LANE_BITS: u8 = 0x0f;
    type F = __m256d;
    /// A lane mask: all bits set in a selected lane.
    type M = __m256d;

    struct Codes {
        c32: __m128i,
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn codes(p: *const u32) -> Codes {
        Codes { c32: _mm_loadu_si128(p as *const __m128i) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn get(_small: bool, table: *const f64, c: &Codes) -> F {
        _mm256_i32gather_pd::<8>(table, c.c32)
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
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(p: *mut f64, x: F) {
        _mm256_storeu_pd(p, x)
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
        let b = bits as i64;
        _mm256_castsi256_pd(_mm256_set_epi64x(-(b >> 3 & 1), -(b >> 2 & 1), -(b >> 1 & 1), -(b & 1)))
    }
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn bits_of(m: M) -> u8 {
        _mm256_movemask_pd(m) as u8
    }

    group_body!("avx2");
}
