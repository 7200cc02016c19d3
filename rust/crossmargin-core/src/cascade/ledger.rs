//! The cascade's ledger: every amount of money is an integer number of minor units (1e-8 of
//! its asset) and moves only by transfers between two holders, so the per-asset total of
//! account balances + isolated margins + insurance fund + external counterparty is constant
//! exactly, whatever the cascade does.

/// Minor units per asset unit.
pub const SCALE: f64 = 1e8;

/// Amount → minor units, rounded half away from zero (`f64::round`); saturates at the i128
/// range, far beyond any real balance.
#[inline]
pub fn to_minor(amount: f64) -> i128 {
    (amount * SCALE).round() as i128
}

#[inline]
pub fn to_units(minor: i128) -> f64 {
    minor as f64 / SCALE
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
}

/// Σ of every holder per asset: what conservation compares before and after.
pub fn totals(n_assets: usize, bal_asset: &[u32], bal_minor: &[i128], iso: &[(u32, i128)], pools: &Pools) -> Vec<i128> {
    let mut t = vec![0i128; n_assets];
    for (&a, &m) in bal_asset.iter().zip(bal_minor) {
        t[a as usize] += m;
    }
    for &(a, m) in iso {
        t[a as usize] += m;
    }
    for ((t, i), e) in t.iter_mut().zip(&pools.insurance).zip(&pools.external) {
        *t += i + e;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_round_half_away_from_zero() {
        assert_eq!(to_minor(1.000000005), 100_000_001);
        assert_eq!(to_minor(-1.000000005), -100_000_001);
        assert_eq!(to_minor(0.1) + to_minor(0.2), to_minor(0.3));
        assert_eq!(to_units(150_000_000), 1.5);
    }
}
