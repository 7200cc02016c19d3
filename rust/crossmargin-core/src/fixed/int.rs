//! Integer helpers of the fixed-point path: division by a divisor fixed once per universe or
//! call (Möller & Granlund, "Improved division by invariant integers", IEEE Trans. Computers
//! 60(2), 2011, Algorithm 4: one 64×64→128 multiply per 128÷64 step instead of a hardware
//! or library division), the integer square root, and Drift v2's size discount and premium
//! in integers (drift-labs/protocol-v2 programs/drift/src/math/margin.rs
//! `calculate_size_discount_asset_weight`, `calculate_size_premium_liability_weight`).

/// A positive divisor below 2^64 with its precomputed reciprocal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divisor {
    d: u64,
    /// `d` shifted left until its top bit is set.
    norm: u64,
    shift: u32,
    /// floor((2^128 − 1) / norm) − 2^64.
    v: u64,
    /// Of a 64-bit dividend (Granlund & Montgomery 1994, fig. 4.1): ceil(log2 d) and
    /// floor(2^64·(2^l − d) / d) + 1; n ÷ d = (t + (n − t) / 2) >> (l − 1), t = mulhi(m, n).
    l: u32,
    m: u64,
    /// Of a dividend below 2^63 (ibid., Theorem 4.2 with one bit of the dividend to spare):
    /// ceil(2^(63 + l) / d) < 2^64, and n ÷ d = mulhi(m63, n) >> (l − 1).
    m63: u64,
    /// d·2^63: a dividend below this has a quotient below 2^63.
    limit63: u128,
}

impl Divisor {
    /// `d` must be ≥ 1.
    pub fn new(d: u64) -> Self {
        assert!(d > 0, "a divisor is positive");
        let shift = d.leading_zeros();
        let norm = d << shift;
        let v = (u128::MAX / norm as u128 - (1u128 << 64)) as u64;
        let l = 64 - (d - 1).leading_zeros();
        let m = if d == 1 { 0 } else { (((1u128 << 64) * ((1u128 << l) - d as u128)) / d as u128 + 1) as u64 };
        // e = m63·d − 2^(63+l) < d ≤ 2^l, so n·e < 2^(63+l) for n < 2^63: the floor is exact
        let m63 = if d == 1 { 0 } else { (1u128 << (63 + l)).div_ceil(d as u128) as u64 };
        Divisor { d, norm, shift, v, l, m, m63, limit63: (d as u128) << 63 }
    }

    /// 10^`exp` (exp ≤ 19).
    pub fn pow10(exp: u32) -> Self {
        Divisor::new(10u64.pow(exp))
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.d
    }

    /// One step: (u1·2^64 + u0) ÷ norm with u1 < norm → (quotient, remainder).
    #[inline(always)]
    fn step(&self, u1: u64, u0: u64) -> (u64, u64) {
        let p = (self.v as u128) * (u1 as u128);
        let p = p.wrapping_add(((u1 as u128) << 64) | u0 as u128);
        let (mut q1, q0) = (((p >> 64) as u64).wrapping_add(1), p as u64);
        let mut r = u0.wrapping_sub(q1.wrapping_mul(self.norm));
        if r > q0 {
            q1 = q1.wrapping_sub(1);
            r = r.wrapping_add(self.norm);
        }
        if r >= self.norm {
            q1 += 1;
            r -= self.norm;
        }
        (q1, r)
    }

    /// (n ÷ d, n mod d).
    #[inline(always)]
    pub fn div_rem(&self, n: u128) -> (u128, u64) {
        if n >> 64 == 0 {
            let n = n as u64;
            if self.d == 1 {
                return (n as u128, 0);
            }
            let t = ((self.m as u128 * n as u128) >> 64) as u64;
            let q = (t + ((n - t) >> 1)) >> (self.l - 1);
            return (q as u128, n - q * self.d);
        }
        let s = self.shift;
        let (n2, n1, n0) = if s == 0 {
            (0u64, (n >> 64) as u64, n as u64)
        } else {
            ((n >> (128 - s)) as u64, ((n << s) >> 64) as u64, (n << s) as u64)
        };
        let (hi, r1) = if n2 == 0 && n1 < self.norm { (0, n1) } else { self.step(n2, n1) };
        let (lo, r) = self.step(r1, n0);
        (((hi as u128) << 64) | lo as u128, r >> s)
    }

    /// n ÷ d of an n below 2^63: one multiply-high and a shift.
    #[inline(always)]
    fn div63(&self, n: u64) -> u64 {
        debug_assert!(n < 1 << 63);
        if self.d == 1 {
            return n;
        }
        (((self.m63 as u128 * n as u128) >> 64) as u64) >> (self.l - 1)
    }

    /// n ÷ d rounded toward zero, of an i64 n (i64::MIN excluded): [`Divisor::trunc`]
    /// without 128-bit arithmetic.
    #[inline(always)]
    pub fn trunc64(&self, n: i64) -> i64 {
        self.round64(n, false)
    }

    /// n ÷ d rounded toward −∞, of an i64 n (i64::MIN excluded).
    #[inline(always)]
    pub fn floor64(&self, n: i64) -> i64 {
        self.round64(n, true)
    }

    /// n ÷ d rounded toward −∞ when `floor`, else toward zero, of an i64 n (i64::MIN
    /// excluded), without a branch: the signs are data, and a branch on them mispredicts.
    #[inline(always)]
    pub fn round64(&self, n: i64, floor: bool) -> i64 {
        debug_assert!(n != i64::MIN);
        let m = n.unsigned_abs();
        let q = self.div63(m);
        // s: all ones when n < 0; a negative quotient with a remainder, floored, is one further
        let s = n >> 63;
        let q = (q + (s as u64 & (floor & (q * self.d != m)) as u64)) as i64;
        (q ^ s) - s
    }

    /// n ÷ d rounded toward −∞ when `floor`, else toward zero, of a 128-bit n; None when the
    /// quotient leaves 63 bits (|q| ≥ 2^63). Such a quotient takes one normalised step of
    /// [`Divisor::div_rem`] (the dividend's high word is below the divisor), its corrections
    /// selected rather than branched on (the first one goes either way on random dividends).
    #[inline(always)]
    pub fn round_wide(&self, n: i128, floor: bool) -> Option<i64> {
        let m = n.unsigned_abs();
        if m >= self.limit63 {
            return None;
        }
        // m < d·2^63, so m·2^shift < norm·2^63: no bit is lost and the high word is < norm
        let nn = m << self.shift;
        let (u1, u0) = ((nn >> 64) as u64, nn as u64);
        let p = ((self.v as u128) * (u1 as u128)).wrapping_add(nn);
        let (q1, q0) = (((p >> 64) as u64).wrapping_add(1), p as u64);
        let r = u0.wrapping_sub(q1.wrapping_mul(self.norm));
        let back = (r > q0) as u64;
        let (q1, r) = (q1.wrapping_sub(back), r.wrapping_add(self.norm & back.wrapping_neg()));
        let on = (r >= self.norm) as u64;
        let (q, r) = (q1.wrapping_add(on), r.wrapping_sub(self.norm & on.wrapping_neg()));
        // the remainder is r >> shift: nonzero exactly when r is
        let neg = n < 0;
        let q = q + (neg & floor & (r != 0)) as u64;
        if q >> 63 != 0 {
            return None;
        }
        Some(if neg { -(q as i64) } else { q as i64 })
    }

    /// n ÷ d rounded toward zero (Rust's `/` on integers).
    #[inline(always)]
    pub fn trunc(&self, n: i128) -> i128 {
        let q = self.div_rem(n.unsigned_abs()).0 as i128;
        if n < 0 {
            -q
        } else {
            q
        }
    }

    /// n ÷ d rounded toward −∞.
    #[inline(always)]
    pub fn floor(&self, n: i128) -> i128 {
        let (q, r) = self.div_rem(n.unsigned_abs());
        let q = q as i128;
        if n < 0 {
            -q - (r != 0) as i128
        } else {
            q
        }
    }
}

/// floor(sqrt(x)).
#[inline]
pub fn isqrt(x: u128) -> u128 {
    if x < 1 << 64 {
        return isqrt64(x as u64) as u128;
    }
    let mut s = (x as f64).sqrt() as u128;
    while s.checked_mul(s).is_none_or(|sq| sq > x) {
        s -= 1;
    }
    while (s + 1).checked_mul(s + 1).is_some_and(|sq| sq <= x) {
        s += 1;
    }
    s
}

/// floor(sqrt(x)) of a 64-bit x: the float root, corrected by at most one.
#[inline]
fn isqrt64(x: u64) -> u64 {
    let s = (x as f64).sqrt() as u64;
    let sq = |s: u64| (s as u128) * (s as u128);
    if sq(s) > x as u128 {
        s - 1
    } else if sq(s + 1) <= x as u128 {
        s + 1
    } else {
        s
    }
}

/// floor(n / d) of 64-bit n and d (d > 0) through the float quotient, corrected by one.
#[inline]
fn div64(n: u64, d: u64) -> u64 {
    if n >= 1 << 52 || d >= 1 << 52 {
        return n / d;
    }
    let q = (n as f64 / d as f64) as u64;
    if q * d > n {
        q - 1
    } else if (q + 1) * d <= n {
        q + 1
    } else {
        q
    }
}

/// The units of Drift's size terms: sizes in 10^-`size_decimals` of the base unit, imf
/// factors in 10^-`imf_decimals`, weights and ratios in 10^-`weight_decimals`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeTerms {
    /// 10^imf_decimals.
    pub imf_one: u64,
    /// 1.1 × 10^imf_decimals × 10^weight_decimals: the discount's numerator.
    discount_num: u64,
    /// sqrt(size × 10^k + 1) is in 10^-root_decimals of sqrt(base unit): 10 for Drift's 1e9 sizes.
    size_scale: u128,
    /// 10^root_decimals (Drift: 100_000).
    root_one: Divisor,
    /// root_one × 10^imf_decimals / 10^weight_decimals (Drift: 1e7).
    premium_den: Divisor,
}

impl SizeTerms {
    /// Sizes in 10^-`size_decimals`: the root of size·10^k (k = 0 or 1, making the exponent
    /// even) is in 10^-((size_decimals + k) / 2).
    pub fn new(size_decimals: u32, imf_decimals: u32, weight_decimals: u32) -> Self {
        let k = size_decimals % 2;
        let imf_one = 10u64.pow(imf_decimals);
        let root_one = 10u64.pow((size_decimals + k) / 2);
        SizeTerms {
            imf_one,
            discount_num: (imf_one + imf_one / 10) * 10u64.pow(weight_decimals),
            size_scale: 10u128.pow(k),
            root_one: Divisor::new(root_one),
            premium_den: Divisor::new((root_one as u128 * imf_one as u128 / 10u128.pow(weight_decimals)).max(1) as u64),
        }
    }

    /// isqrt(size·10^k + 1): Drift's `((size * 10) + 1).nth_root(2)`.
    #[inline]
    pub fn root(&self, size: u128) -> u128 {
        isqrt(size.saturating_mul(self.size_scale).saturating_add(1))
    }

    /// The size-discounted weight before the min with a configured weight:
    /// floor(1.1·one_w·one_imf / (one_imf + floor(root·imf / root_one))); u64::MAX when imf = 0.
    #[inline]
    pub fn discount_cap(&self, root: u128, imf: u64) -> u64 {
        if imf == 0 {
            return u64::MAX;
        }
        let term = self.root_one.div_rem(root.saturating_mul(imf as u128)).0;
        let den = (self.imf_one as u128).saturating_add(term).min(u64::MAX as u128) as u64;
        div64(self.discount_num, den)
    }

    /// The premium's size term floor(root·imf / (root_one·one_imf / one_w)).
    #[inline]
    pub fn premium_term(&self, root: u128, imf: u64) -> u64 {
        if imf == 0 {
            return 0;
        }
        self.premium_den.div_rem(root.saturating_mul(imf as u128)).0.min(u64::MAX as u128 / 2) as u64
    }

    /// min(weight, discount cap).
    #[inline]
    pub fn discount(&self, root: u128, imf: u64, weight: u64) -> u64 {
        weight.min(self.discount_cap(root, imf))
    }

    /// max(weight, weight − floor(weight / 5) + premium term); the weight itself when imf = 0.
    #[inline]
    pub fn premium(&self, root: u128, imf: u64, weight: u64) -> u64 {
        premium_with(weight, imf, self.premium_term(root, imf))
    }
}

/// max(weight, weight − floor(weight / 5) + term), or the weight when imf = 0.
#[inline]
pub fn premium_with(weight: u64, imf: u64, term: u64) -> u64 {
    if imf == 0 {
        return weight;
    }
    weight.max((weight - weight / 5).saturating_add(term))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn divisor_matches_integer_division(n in any::<u128>(), d in 1u64..) {
            let q = Divisor::new(d).div_rem(n);
            prop_assert_eq!(q, (n / d as u128, (n % d as u128) as u64));
        }

        #[test]
        fn divisor_matches_integer_division_of_64_bit_dividends(n in any::<u64>(), k in 0u32..64, d in 1u64..) {
            for d in [d, (d >> k).max(1), 10u64.pow(k % 20)] {
                let div = Divisor::new(d);
                for n in [n, n >> k, u64::MAX, d - 1, d, d.saturating_mul(3)] {
                    prop_assert_eq!(div.div_rem(n as u128), ((n / d) as u128, n % d));
                }
            }
        }

        #[test]
        fn the_63_bit_division_is_exact_up_to_its_bound(n in 0u64..1 << 63, k in 0u32..64, d in 1u64..) {
            for d in [d, (d >> k).max(1), 10u64.pow(k % 20), (1u64 << k) + 1, (1 << (k % 63 + 1)) - 1] {
                let div = Divisor::new(d);
                for n in [n, n >> k, (1 << 63) - 1, (d - 1).min((1 << 63) - 1), d.min(1 << 62) * 2 - 1] {
                    prop_assert_eq!(div.div63(n), n / d, "{} / {}", n, d);
                }
            }
        }

        #[test]
        fn signed_rounding_matches_the_definitions(n in any::<i64>(), m in any::<i64>(), d in 1u64..1u64 << 40) {
            let x = n as i128 * m as i128;
            let div = Divisor::new(d);
            prop_assert_eq!(div.trunc(x), x / d as i128);
            prop_assert_eq!(div.floor(x), x.div_euclid(d as i128));
        }

        #[test]
        fn the_one_step_wide_rounding_matches_the_two_step_one(a in any::<i64>(), b in any::<i64>(), k in 0u32..64, d in 1u64..) {
            for d in [d, (d >> k).max(1), 10u64.pow(k % 20), (1u64 << k) + 1, 1, u64::MAX] {
                let div = Divisor::new(d);
                for n in [a as i128 * b as i128, (a >> k) as i128 * b as i128, a as i128, -(d as i128) << 63, (d as i128) << 63, ((d as i128) << 63) - 1, -((d as i128) << 63) + 1] {
                    for floor in [false, true] {
                        let q = if floor { div.floor(n) } else { div.trunc(n) };
                        let want = if q.unsigned_abs() < 1 << 63 { Some(q as i64) } else { None };
                        prop_assert_eq!(div.round_wide(n, floor), want, "{} / {} floor {}", n, d, floor);
                    }
                }
            }
        }

        #[test]
        fn sixty_four_bit_rounding_matches_the_128_bit_one(n in (i64::MIN + 1).., d in 1u64..) {
            for d in [d, d >> 40 | 1, 1, 10, 10_000, 1_000_000_000] {
                let div = Divisor::new(d);
                prop_assert_eq!(div.trunc64(n) as i128, div.trunc(n as i128));
                prop_assert_eq!(div.floor64(n) as i128, div.floor(n as i128));
            }
        }

        #[test]
        fn isqrt_is_the_floor_root(x in any::<u128>(), y in any::<u64>()) {
            for x in [x, y as u128, (y as u128) * (y as u128), ((y as u128) * (y as u128)).saturating_sub(1)] {
                let s = isqrt(x);
                prop_assert!(s * s <= x);
                prop_assert!((s + 1).checked_mul(s + 1).is_none_or(|sq| sq > x));
            }
        }

        #[test]
        fn float_division_is_corrected_to_the_floor(n in any::<u64>(), d in 1u64..) {
            prop_assert_eq!(div64(n, d), n / d);
            prop_assert_eq!(div64(n >> 12, d >> 12 | 1), (n >> 12) / (d >> 12 | 1));
        }
    }

    #[test]
    fn small_divisors_and_powers_of_ten() {
        for d in [1u64, 2, 3, 10, 10_000, 1_000_000, 1_000_000_000, u64::MAX] {
            let div = Divisor::new(d);
            for n in [0u128, 1, 9, 10, 99_999, u64::MAX as u128, u128::MAX] {
                assert_eq!(div.div_rem(n).0, n / d as u128, "{n} / {d}");
            }
        }
        assert_eq!(Divisor::pow10(4).floor(-1), -1);
        assert_eq!(Divisor::pow10(4).trunc(-1), 0);
    }

    #[test]
    fn drift_protocol_test_vectors() {
        // drift-labs/protocol-v2 programs/drift/src/math/margin/tests.rs
        // (test size_adjusted_asset_weight / liability weight): imf 10_000 (0.01), sizes in
        // 1e9, weights in 1e4: 1,000 tokens at asset weight 9_000 → 8_357; liability
        // weight 11_000 → 11_962 (margin.rs `calculate_size_*`).
        let t = SizeTerms::new(9, 6, 4);
        let root = t.root(1_000 * 1_000_000_000);
        assert_eq!(t.discount(root, 10_000, 9_000), 8_357);
        assert_eq!(t.premium(root, 10_000, 11_000), 11_962);
        assert_eq!(t.root(0), 1);
        assert_eq!(t.discount(root, 0, 9_000), 9_000);
    }
}
