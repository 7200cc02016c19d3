//! Money as integers: exact ledgers in minor units.
//!
//! Every amount that must conserve (funding payments, liabilities, cascade ledgers) is an
//! integer number of *minor units* of its asset, one minor unit = 10⁻⁸ of the asset unit
//! ([`SCALE`], Bitcoin's satoshi; the same scale for every asset, so that a stablecoin, BTC
//! and USD amounts all carry eight decimals). The API is small on purpose:
//!
//! - [`Minor`]: an `i128` amount; `+`, `-`, `Sum` are exact (i128 holds ±1.7·10³⁰ asset
//!   units at this scale, so they cannot overflow on any real book);
//! - [`Minor::from_f64`]: round x·10⁸ **half to even** (banker's rounding, IEEE 754
//!   `roundTiesToEven`; Python's `round` does the same, so the reference agrees bit for bit);
//!   the product x·10⁸ is the f64 product; non-finite or out-of-range inputs are errors
//!   (funding payments, solvency claims and liabilities: an amount that cannot be held is
//!   the caller's to fix);
//! - [`Minor::saturating_from_f64`]: the same rounding, saturating at i128's range (NaN → 0)
//!   instead of failing (the cascade's ledger, [`crate::cascade::ledger`]: its inputs are
//!   bounded before the run starts, and a run never stops half-applied);
//! - [`Minor::to_f64`] / [`Minor::to_usd`] back to asset units / USD at a price, and
//!   [`Minor::saturating_from_usd`] from USD;
//! - [`allocate`]: the *conserving split* of an integer total across weights by the
//!   largest-remainder method; the parts always add up to the total exactly.
//!
//! Ledgers that cross the bindings (the cascade's state, pools and messages) hold these
//! amounts as bare `i128` columns, a [`Minor`]'s field; every conversion goes through here.

use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use crate::error::{CoreError, Result};

/// Minor units per asset unit.
pub const SCALE: i128 = 100_000_000;
/// [`SCALE`] as f64 (exact).
pub const SCALE_F64: f64 = 100_000_000.0;
/// Largest |x| (asset units) that [`Minor::from_f64`] accepts: 10²⁸, well inside i128.
pub const MAX_UNITS: f64 = 1e28;
/// [`MAX_UNITS`] in minor units (10³⁶, 1/170 of what i128 holds).
pub const MAX_MINOR: i128 = 1_000_000_000_000_000_000_000_000_000_000_000_000;

/// An amount in minor units (10⁻⁸) of some asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor(pub i128);

impl Minor {
    pub const ZERO: Minor = Minor(0);

    /// x asset units → minor units, x·10⁸ rounded half to even. `what` names the value in
    /// the error for a non-finite or out-of-range x.
    pub fn from_f64(x: f64, what: &str) -> Result<Minor> {
        if !x.is_finite() || x.abs() > MAX_UNITS {
            return Err(CoreError::price(what, format!("{x} cannot be an amount (finite, |x| ≤ 1e28)")));
        }
        Ok(Minor::saturating_from_f64(x))
    }

    /// x asset units → minor units with [`Minor::from_f64`]'s rounding, never failing: beyond
    /// i128's range the result saturates at its bounds, NaN gives 0 (Rust's float → integer
    /// conversion). For amounts bounded before they get here (the cascade's ledger).
    #[inline]
    pub fn saturating_from_f64(x: f64) -> Minor {
        Minor(f64_to_i128(round_ties_even(x * SCALE_F64)))
    }

    /// `usd` in minor units of an asset priced at `price` USD: usd / price, saturating; 0 when
    /// the price is 0 (an asset worth nothing cannot pay).
    #[inline]
    pub fn saturating_from_usd(usd: f64, price: f64) -> Minor {
        if price > 0.0 {
            Minor::saturating_from_f64(usd / price)
        } else {
            Minor::ZERO
        }
    }

    /// Asset units as f64 (rounded to the nearest f64 when beyond 2⁵³ minor units).
    #[inline]
    pub fn to_f64(self) -> f64 {
        i128_to_f64(self.0) / SCALE_F64
    }

    /// The amount's value in USD with the asset at `price`.
    #[inline]
    pub fn to_usd(self, price: f64) -> f64 {
        self.to_f64() * price
    }

    pub fn abs(self) -> Minor {
        Minor(self.0.abs())
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Add for Minor {
    type Output = Minor;
    fn add(self, rhs: Minor) -> Minor {
        Minor(self.0 + rhs.0)
    }
}

impl Sub for Minor {
    type Output = Minor;
    fn sub(self, rhs: Minor) -> Minor {
        Minor(self.0 - rhs.0)
    }
}

impl Neg for Minor {
    type Output = Minor;
    fn neg(self) -> Minor {
        Minor(-self.0)
    }
}

impl AddAssign for Minor {
    fn add_assign(&mut self, rhs: Minor) {
        self.0 += rhs.0;
    }
}

impl SubAssign for Minor {
    fn sub_assign(&mut self, rhs: Minor) {
        self.0 -= rhs.0;
    }
}

impl Sum for Minor {
    fn sum<I: Iterator<Item = Minor>>(iter: I) -> Minor {
        iter.fold(Minor::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Minor> for Minor {
    fn sum<I: Iterator<Item = &'a Minor>>(iter: I) -> Minor {
        iter.fold(Minor::ZERO, |a, b| a + *b)
    }
}

/// Bits b of the integer weights of [`allocate`] for `n` parts: 52 (an f64 mantissa) up to
/// 2²³ parts, then 75 − ⌈log₂ n⌉, so that U·2^b ≤ n·2^2b ≤ 2¹²⁷ and every product fits in u128.
pub fn weight_bits(n: usize) -> u32 {
    let log_n = usize::BITS - n.max(1).saturating_sub(1).leading_zeros();
    52u32.min(75u32.saturating_sub(log_n))
}

/// Splits `total` into `weights.len()` parts that add up to `total` exactly, pro rata to
/// the weights, by the largest-remainder (Hamilton) method.
///
/// 1. Weights (finite, ≥ 0, not all 0 unless `total` is 0) become integers
///    u_i = round_half_even(w_i / w_max · 2^b), b = [`weight_bits`]`(n)`; U = Σ u_i.
/// 2. Each part gets ⌊|T|·u_i / U⌋ (exact integer arithmetic).
/// 3. The |T| − Σ⌊…⌋ < n units left go one each to the parts with the largest remainders
///    (|T|·u_i mod U), ties to the lower index.
/// 4. A negative total is split as |T| and negated.
pub fn allocate(total: Minor, weights: &[f64]) -> Result<Vec<Minor>> {
    let n = weights.len();
    if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !w.is_finite() || **w < 0.0) {
        return Err(CoreError::config(format!("weights[{i}]"), format!("{w} must be finite and ≥ 0")));
    }
    if total.is_zero() {
        return Ok(vec![Minor::ZERO; n]);
    }
    let w_max = weights.iter().copied().fold(0.0f64, f64::max);
    if w_max == 0.0 {
        return Err(CoreError::config("weights", format!("cannot split {} minor units over zero weights", total.0)));
    }
    let scale = (1u64 << weight_bits(n)) as f64;
    let units: Vec<u128> = weights.iter().map(|w| (w / w_max * scale).round_ties_even() as u128).collect();
    let sum_units: u128 = units.iter().sum();
    let t = total.0.unsigned_abs();
    // T·u/U = q·u + r·u/U with T = q·U + r; r·u < U·2^b ≤ 2^127 fits in u128.
    let (q, r) = (t / sum_units, t % sum_units);
    let mut parts: Vec<u128> = Vec::with_capacity(n);
    let mut rems: Vec<u128> = Vec::with_capacity(n);
    for &u in &units {
        let ru = r * u;
        parts.push(q * u + ru / sum_units);
        rems.push(ru % sum_units);
    }
    let given: u128 = parts.iter().sum();
    let left = (t - given) as usize;
    if left > 0 {
        let mut order: Vec<usize> = (0..n).collect();
        let by_remainder = |a: &usize, b: &usize| rems[*b].cmp(&rems[*a]).then(a.cmp(b));
        if left < n {
            order.select_nth_unstable_by(left - 1, by_remainder);
        }
        for &i in &order[..left] {
            parts[i] += 1;
        }
    }
    let sign = total.0.signum();
    Ok(parts.into_iter().map(|p| Minor(sign * p as i128)).collect())
}

/// `y.round_ties_even()` without the library call (`rint`) a generic x86-64 build makes for
/// it (no SSE4.1 `roundsd`): below 2⁵² in magnitude, adding and taking away 2⁵² rounds to an
/// integer by the float addition's own rounding (to nearest, ties to even); from 2⁵² on
/// every float is an integer already. NaN stays NaN, −0.0 stays −0.0.
#[inline]
fn round_ties_even(y: f64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let a = y.abs();
    if a < TWO_52 {
        ((a + TWO_52) - TWO_52).copysign(y)
    } else {
        y
    }
}

/// `x as f64`: a ledger amount nearly always fits in i64, whose conversion is one
/// instruction where i128's is a library call (both round to nearest, ties to even: the same
/// float).
#[inline]
fn i128_to_f64(x: i128) -> f64 {
    match i64::try_from(x) {
        Ok(x) => x as f64,
        Err(_) => wide_to_f64(x),
    }
}

/// Out of line, so that the compiler does not fold the two paths back into the library call.
#[cold]
#[inline(never)]
fn wide_to_f64(x: i128) -> f64 {
    x as f64
}

/// `y as i128` for an integral (or non-finite) `y`: through i64 where it fits (one
/// instruction, exact), else i128's saturating library conversion (NaN → 0, ±∞ → the bounds).
#[inline]
fn f64_to_i128(y: f64) -> i128 {
    // 2⁶³: every integral float below it in magnitude is an i64.
    if y.abs() < 9_223_372_036_854_775_808.0 {
        i128::from(y as i64)
    } else {
        y as i128
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fast conversions are Rust's `as` conversions, bit for bit, at and around every
    /// boundary (2⁵³, 2⁶³, the i64 and i128 bounds) and over random bit patterns.
    #[test]
    fn fast_conversions_are_the_as_conversions() {
        let mut ints: Vec<i128> = vec![0, 1, -1, i128::MAX, i128::MIN, i128::MAX - 1, i128::MIN + 1];
        for e in [52u32, 53, 54, 62, 63, 64, 100, 126] {
            for d in -3i128..=3 {
                ints.push((1i128 << e) + d);
                ints.push(-(1i128 << e) + d);
            }
        }
        ints.extend([i64::MAX as i128, i64::MIN as i128, i64::MAX as i128 + 1, i64::MIN as i128 - 1]);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let wide = (i128::from(x) << 64 | i128::from(x.rotate_left(17))) >> (x % 127);
            ints.push(wide);
            ints.push(x as i64 as i128);
        }
        for &v in &ints {
            assert_eq!(i128_to_f64(v).to_bits(), (v as f64).to_bits(), "{v}");
        }
        let mut floats: Vec<f64> = vec![0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MAX, f64::MIN];
        for v in [9_223_372_036_854_775_808.0f64, 4_503_599_627_370_496.0, 1e19, 1e28, 1.7e38, 1.8e38] {
            floats.extend([v, -v, v.next_up(), v.next_down(), -v.next_up(), -v.next_down()]);
        }
        floats.extend(ints.iter().map(|&v| v as f64));
        for &y in &floats {
            let y = y.round_ties_even();
            assert_eq!(f64_to_i128(y), y as i128, "{y}");
        }
    }

    /// The rounding is the library's `round_ties_even`, bit for bit: halves at every scale up
    /// to 2⁵², the neighbours of 2⁵² and 2⁵³, zeros, infinities, NaN, subnormals and random
    /// bit patterns.
    #[test]
    fn the_rounding_is_the_librarys() {
        let mut ys: Vec<f64> = vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE, 5e-324, f64::MAX];
        for e in 0..=53 {
            let v = (1u64 << e) as f64;
            ys.extend([v + 0.5, v - 0.5, v + 1.5, v - 1.5, v.next_up(), v.next_down(), v]);
        }
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ys.push(f64::from_bits(x));
            // Amounts of a ledger's scale: x·10⁸ of values with a few decimals.
            ys.push((x % 10_000_000_000) as f64 * 0.125 * SCALE_F64 / 1e6);
        }
        for &y in ys.iter().flat_map(|y| [*y, -*y]).collect::<Vec<_>>().iter() {
            let (got, want) = (round_ties_even(y), y.round_ties_even());
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{y:e}: {got:e} {want:e}");
        }
        assert!(round_ties_even(f64::NAN).is_nan());
    }

    #[test]
    fn from_f64_rounds_half_to_even() {
        assert_eq!(Minor::from_f64(1.0, "x").unwrap(), Minor(100_000_000));
        assert_eq!(Minor::from_f64(0.000_000_025, "x").unwrap(), Minor(2)); // 2.5 → 2
        assert_eq!(Minor::from_f64(0.000_000_035, "x").unwrap(), Minor(4)); // 3.5 → 4
        assert_eq!(Minor::from_f64(-0.000_000_025, "x").unwrap(), Minor(-2));
        assert_eq!(Minor::from_f64(0.1, "x").unwrap(), Minor(10_000_000));
        assert!(Minor::from_f64(f64::NAN, "x").is_err());
        assert!(Minor::from_f64(1e29, "x").is_err());
    }

    #[test]
    fn the_saturating_constructor_rounds_alike_and_never_fails() {
        for x in [0.000_000_025, -0.000_000_035, 0.1, 1e28, -123.456_789_015] {
            assert_eq!(Minor::saturating_from_f64(x), Minor::from_f64(x, "x").unwrap());
        }
        assert_eq!(Minor::saturating_from_f64(1e40), Minor(i128::MAX));
        assert_eq!(Minor::saturating_from_f64(f64::NEG_INFINITY), Minor(i128::MIN));
        assert_eq!(Minor::saturating_from_f64(f64::NAN), Minor::ZERO);
        assert_eq!(Minor::saturating_from_usd(150.0, 50.0), Minor(300_000_000));
        assert_eq!(Minor::saturating_from_usd(150.0, 0.0), Minor::ZERO);
        assert_eq!(Minor(300_000_000).to_usd(50.0), 150.0);
        assert_eq!(MAX_MINOR, 10i128.pow(MAX_UNITS.log10() as u32) * SCALE);
    }

    #[test]
    fn allocate_uses_largest_remainders_and_breaks_ties_by_index() {
        let parts = allocate(Minor(10), &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(parts, vec![Minor(4), Minor(3), Minor(3)]);
        let parts = allocate(Minor(-10), &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(parts, vec![Minor(-4), Minor(-3), Minor(-3)]);
        // 7 over 1:2 = 2.33 / 4.67: the second has the larger remainder.
        assert_eq!(allocate(Minor(7), &[1.0, 2.0]).unwrap(), vec![Minor(2), Minor(5)]);
        assert_eq!(allocate(Minor(5), &[0.0, 3.0]).unwrap(), vec![Minor(0), Minor(5)]);
        assert_eq!(allocate(Minor(0), &[]).unwrap(), vec![]);
        assert!(allocate(Minor(1), &[0.0]).is_err());
        assert!(allocate(Minor(1), &[]).is_err());
        assert!(allocate(Minor(1), &[-1.0]).is_err());
    }

    #[test]
    fn allocate_handles_totals_near_the_i128_range() {
        let t = Minor(i128::MAX / 2);
        let parts = allocate(t, &[1e-300, 1.0, 3.0, f64::MAX]).unwrap();
        assert_eq!(parts.iter().sum::<Minor>(), t);
    }

    #[test]
    fn weight_bits_shrink_only_beyond_eight_million_parts() {
        assert_eq!(weight_bits(0), 52);
        assert_eq!(weight_bits(1), 52);
        assert_eq!(weight_bits(1 << 23), 52);
        assert_eq!(weight_bits((1 << 23) + 1), 51);
    }

    proptest! {
        #[test]
        fn allocate_conserves_the_total_exactly(
            total in -(1i128 << 100)..(1i128 << 100),
            weights in prop::collection::vec(prop_oneof![Just(0.0), 0.0f64..1e12], 1..40),
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0.0));
            let parts = allocate(Minor(total), &weights).unwrap();
            prop_assert_eq!(parts.iter().sum::<Minor>(), Minor(total));
            // Each part has the sign of the total and is within one unit of its quota, up to
            // the quantisation of the weights (2^-52 of the largest).
            let w_sum: f64 = weights.iter().sum();
            for (p, w) in parts.iter().zip(&weights) {
                prop_assert!(p.0 == 0 || p.0.signum() == total.signum());
                let quota = total as f64 * w / w_sum;
                prop_assert!((p.0 as f64 - quota).abs() <= 1.0 + (total as f64).abs() * 1e-14);
            }
        }
    }
}
