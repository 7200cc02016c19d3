//! Tiered collateral haircuts (OKX "discount rate" tiers, Bybit "collateral value ratio"
//! tiers): the USD value of a positive balance is cut into slices by tier bounds and each
//! slice counts at its tier's rate. Above the last finite bound a value counts nothing,
//! as a table whose highest tier is a cap.
//!
//! Source: OKX, "Discount rate" of the multi-currency margin mode (per-currency tiers of
//! USD value); Bybit, "Collateral value ratio" of the Unified Trading Account.

use crate::error::{CoreError, Result};

/// One tier: upper bound, rate, and the discounted value accumulated below its lower bound.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slice {
    lower: f64,
    bound: f64,
    rate: f64,
    base: f64,
}

/// All assets' tiers, flattened (CSR by asset). An asset without tiers has an empty
/// range and keeps its full value.
#[derive(Debug, Clone)]
pub struct HaircutTable {
    offsets: Vec<usize>,
    slices: Vec<Slice>,
}

impl Default for HaircutTable {
    fn default() -> Self {
        HaircutTable { offsets: vec![0], slices: vec![] }
    }
}

impl HaircutTable {
    /// Validates and appends one asset's tiers `[(usd_upper_bound, rate), ...]`.
    pub fn push(&mut self, tiers: &[(f64, f64)], field: &str) -> Result<()> {
        let mut lower = 0.0f64;
        let mut base = 0.0f64;
        let mut slices = Vec::with_capacity(tiers.len());
        for (k, &(bound, rate)) in tiers.iter().enumerate() {
            let f = format!("{field}.haircut_tiers[{k}]");
            if bound.is_nan() || bound <= lower || (k > 0 && lower.is_infinite()) {
                return Err(CoreError::config(
                    format!("{f}.bound"),
                    format!("{bound} must be positive and above the previous bound {lower}"),
                ));
            }
            if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
                return Err(CoreError::config(format!("{f}.rate"), format!("{rate} must be in [0, 1]")));
            }
            slices.push(Slice { lower, bound, rate, base });
            base += (bound - lower) * rate;
            lower = bound;
        }
        self.slices.extend(slices);
        self.offsets.push(self.slices.len());
        Ok(())
    }

    pub fn has_tiers(&self, asset: usize) -> bool {
        self.offsets[asset + 1] > self.offsets[asset]
    }

    /// Discounted value of a positive USD `value` of `asset` (before the collateral weight).
    #[inline]
    pub fn discounted(&self, asset: usize, value: f64) -> f64 {
        let slices = &self.slices[self.offsets[asset]..self.offsets[asset + 1]];
        let Some(last) = slices.last() else { return value };
        // Branch-free: the slice is the count of bounds below the value among all slices but
        // the last; beyond the last finite bound the value is cut at it (the excess counts
        // nothing). Bit-identical to finding the first bound ≥ value.
        let k: usize = slices[..slices.len() - 1].iter().map(|s| usize::from(s.bound < value)).sum();
        let s = &slices[k];
        s.base + (value.min(last.bound) - s.lower) * s.rate
    }

    /// The slices of `asset` as (lower, bound, rate, base), for the SIMD kernel's tables.
    pub fn slices_of(&self, asset: usize) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        self.slices[self.offsets[asset]..self.offsets[asset + 1]].iter().map(|s| (s.lower, s.bound, s.rate, s.base))
    }

    /// `(bound, rate)` rows of `asset`.
    pub fn rows(&self, asset: usize) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.slices[self.offsets[asset]..self.offsets[asset + 1]].iter().map(|s| (s.bound, s.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(t: &[(f64, f64)]) -> HaircutTable {
        let mut h = HaircutTable::default();
        h.push(t, "assets[BTC]").unwrap();
        h
    }

    #[test]
    fn slices_count_at_their_own_rate() {
        let h = table(&[(100.0, 1.0), (1000.0, 0.5), (f64::INFINITY, 0.1)]);
        assert_eq!(h.discounted(0, 50.0), 50.0);
        assert_eq!(h.discounted(0, 100.0), 100.0);
        assert_eq!(h.discounted(0, 600.0), 100.0 + 250.0);
        assert_eq!(h.discounted(0, 2000.0), 100.0 + 450.0 + 100.0);
    }

    #[test]
    fn value_above_a_finite_last_bound_counts_nothing() {
        let h = table(&[(100.0, 1.0), (1000.0, 0.5)]);
        assert_eq!(h.discounted(0, 5000.0), 550.0);
    }

    #[test]
    fn discounted_value_is_continuous_at_tier_edges() {
        let h = table(&[(100.0, 0.9), (1000.0, 0.5), (f64::INFINITY, 0.1)]);
        for edge in [100.0f64, 1000.0] {
            let d = h.discounted(0, edge * (1.0 + 1e-12)) - h.discounted(0, edge * (1.0 - 1e-12));
            assert!(d.abs() < 1e-9);
        }
    }

    #[test]
    fn rejects_overlapping_tiers() {
        let mut h = HaircutTable::default();
        let e = h.push(&[(100.0, 1.0), (100.0, 0.5)], "assets[BTC]").unwrap_err();
        assert!(e.to_string().starts_with("assets[BTC].haircut_tiers[1].bound"), "{e}");
        assert!(h.push(&[(100.0, 1.5)], "a").is_err());
    }
}
