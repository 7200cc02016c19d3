//! The numeric domain on which every kernel's results are finite.
//!
//! Inputs are checked against these bounds where they are validated (book rows in
//! [`crate::book::group`], the universe in [`crate::universe::Universe::new`], one call's
//! prices in [`crate::margin::MarginContext::new`]), so that no product or quotient of a
//! kernel can overflow f64 (≈ 1.8e308): the largest term is a position notional or uPnL,
//! at most qty × contract size × price ÷ smallest divisor × settle price ≤ 1e18⁴ = 1e72,
//! and sums of them over any realistic number of rows stay far below the f64 range.
//! Money amounts are bounded by what the integer ledgers hold ([`crate::money::MAX_UNITS`]).
//! docs/MODEL.md "Numeric domain" lists what each bound rejects.

/// Largest asset price, mark, entry price, contract size, strike, reference price.
pub const MAX_PRICE: f64 = 1e18;
/// Smallest non-zero divisor: marks of perps and futures, entry prices of open positions,
/// contract sizes (1 / MIN_PRICE ≤ 1e18).
pub const MIN_PRICE: f64 = 1e-18;
/// Largest |qty| of a position (contracts).
pub const MAX_QTY: f64 = 1e18;
/// Largest multiplier a universe may configure: liability weights, imf (size premium)
/// factors, option margin parameters. A size premium imf·√|size| ≤ 1e3·1e18 keeps every
/// requirement below 1e72 × 1e21.
pub const MAX_FACTOR: f64 = 1e3;
/// Largest |amount| of money: a balance, an isolated margin, an insurance fund (asset units).
pub const MAX_AMOUNT: f64 = crate::money::MAX_UNITS;

/// `x` is finite and |x| ≤ `max`.
#[inline]
pub fn within(x: f64, max: f64) -> bool {
    x.is_finite() && x.abs() <= max
}

/// `x` is a usable price: 0 only when `zero_ok`, else within [MIN_PRICE, MAX_PRICE].
#[inline]
pub fn is_price(x: f64, zero_ok: bool) -> bool {
    (zero_ok && x == 0.0) || (x.is_finite() && (MIN_PRICE..=MAX_PRICE).contains(&x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_term_stays_finite() {
        let notional = MAX_QTY * MAX_PRICE * MAX_PRICE * MAX_PRICE;
        let inverse = MAX_QTY * MAX_PRICE / MIN_PRICE * MAX_PRICE;
        assert!(notional.is_finite() && inverse.is_finite());
        assert!((notional * 1e12).is_finite(), "a trillion such rows still sum to a finite value");
    }

    #[test]
    fn prices_are_bounded_both_ways() {
        assert!(is_price(1.0, false) && is_price(0.0, true) && !is_price(0.0, false));
        assert!(!is_price(1e-19, false) && !is_price(2e18, true) && !is_price(f64::NAN, true));
        assert!(within(-1e18, MAX_QTY) && !within(f64::INFINITY, MAX_QTY));
    }
}
