//! The cascade's ledger: every amount of money is an integer number of minor units (1e-8 of
//! its asset, [`crate::money::Minor`]) and moves only by transfers between two holders, so
//! the per-asset total of account balances + isolated margins + insurance fund + external
//! counterparty is constant exactly, whatever the cascade does.
//!
//! Amounts enter the ledger by [`Minor::saturating_from_f64`], never failing: a run must not
//! stop with half a round applied, and what it converts is bounded before it starts — the
//! book's balances and isolated margins (|x| ≤ 1e28 units, [`crate::book::group`]), the
//! insurance fund (the same bound, `cascade::check`), every position's value at its entry and
//! along the path (1e26, `cascade::check_position_sizes`), and Σ |holdings| per asset
//! ([`MAX_TOTAL_MINOR`], `step::Driver::check_capacity`). The columns hold bare `i128` (the bindings and
//! the sharded messages carry them as integers).

use crate::money::{Minor, MAX_MINOR};

/// Amount → minor units: [`Minor::saturating_from_f64`] (x·10⁸ rounded half to even).
#[inline]
pub fn to_minor(amount: f64) -> i128 {
    Minor::saturating_from_f64(amount).0
}

/// Minor units → asset units: [`Minor::to_f64`].
#[inline]
pub fn to_units(minor: i128) -> f64 {
    Minor(minor).to_f64()
}

/// Per-asset holders outside the accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools {
    /// The insurance fund (liquidation fees in, bad debt out); may go negative when exhausted.
    pub insurance: Vec<i128>,
    /// Everyone outside the book: the order book that takes liquidation flow, and the
    /// counterparties whose P&L realises when a position closes.
    pub external: Vec<i128>,
}

impl Pools {
    pub fn new(insurance: Vec<i128>) -> Self {
        let n = insurance.len();
        Pools { insurance, external: vec![0; n] }
    }

    /// Adds another holder's per-asset amounts (integer sums: any order gives the same).
    pub fn add(&mut self, insurance: &[i128], external: &[i128]) {
        self.insurance.iter_mut().zip(insurance).for_each(|(x, y)| *x += y);
        self.external.iter_mut().zip(external).for_each(|(x, y)| *x += y);
    }
}

/// Largest Σ |holdings| of one asset a cascade starts from (minor units): 10²⁸ asset units
/// ([`crate::money::MAX_MINOR`]), 1/170 of what i128 holds, so transfers between holders
/// cannot overflow the ledger.
pub const MAX_TOTAL_MINOR: i128 = MAX_MINOR;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_round_like_money() {
        assert_eq!(to_minor(0.000_000_025), 2);
        assert_eq!(to_minor(-0.000_000_035), -4);
        assert_eq!(to_minor(0.1) + to_minor(0.2), to_minor(0.3));
        assert_eq!(to_units(150_000_000), 1.5);
    }
}
