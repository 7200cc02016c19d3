//! Correctly rounded summation: the float nearest to the exact sum of its inputs, whatever
//! their order.
//!
//! Duplicate balance rows of one (account, asset) are merged with it, so that a book's
//! numbers do not depend on its row order (0.1 + 0.3 − 0.4 and −0.4 + 0.1 + 0.3 differ in
//! float64; their exact sum does not). Shewchuk's non-overlapping partials ("Adaptive
//! Precision Floating-Point Arithmetic", 1997) with the half-even correction of CPython's
//! `math.fsum`. Inputs are finite and bounded (the book's limits), so no partial overflows.

/// The correctly rounded (half to even) sum of `values`; independent of their order.
pub fn exact_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for mut x in values {
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    // Sum the partials from the largest down; stop at the first inexact step and correct
    // a tie that the next partial breaks (CPython's math.fsum).
    let Some(mut hi) = partials.pop() else { return 0.0 };
    let mut lo = 0.0;
    while let Some(x) = partials.pop() {
        let y = x;
        let sum = hi + y;
        let yr = sum - hi;
        lo = y - yr;
        hi = sum;
        if lo != 0.0 {
            break;
        }
    }
    if let Some(&next) = partials.last() {
        if (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::exact_sum;

    #[test]
    fn order_does_not_change_the_sum() {
        let a = exact_sum([0.1, 0.3, -0.4]);
        assert_eq!(a, exact_sum([-0.4, 0.1, 0.3]));
        assert_eq!(a, exact_sum([0.3, -0.4, 0.1]));
        // the exact sum of the three doubles (as Python's math.fsum gives it)
        assert_eq!(a, -2.7755575615628914e-17);
    }

    #[test]
    fn cancellation_and_ties_round_like_fsum() {
        assert_eq!(exact_sum([1e100, 1.0, -1e100, 1e-100]), 1.0);
        assert_eq!(exact_sum([1.0, 1e-16, 1e-16]), 1.0000000000000002);
        assert_eq!(exact_sum([]), 0.0);
        assert_eq!(exact_sum([2.5]), 2.5);
        // half-way case broken by a later partial (CPython's test_math fsum cases)
        assert_eq!(exact_sum([1.0, 2f64.powi(-53), 2f64.powi(-106)]), 1.0000000000000002);
        assert_eq!(exact_sum([1.0, 2f64.powi(-53)]), 1.0);
    }
}
