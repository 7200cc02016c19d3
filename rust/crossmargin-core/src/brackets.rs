//! Leverage brackets (Binance USDⓈ-M style): tiers of notional with an initial and a
//! maintenance rate. The requirement in a tier is `notional × rate_k − cum_k`, with
//! `cum_k` chosen so the requirement is continuous in notional.
//!
//! Source: Binance, "Leverage and Margin of USDⓈ-M Futures": maintenance margin =
//! position notional × maintenance margin rate − maintenance amount, where the maintenance
//! amount of bracket k is `floor_k × (mmr_k − mmr_{k−1}) + amount_{k−1}`.
//!
//! A mode's requirement has a [`Shape`] (docs/MODEL.md "Requirement shapes"): `Continuous`
//! (the deduction above), `Step` (the whole notional at its tier's rate, no deduction: the
//! initial margin of Binance, Bybit, OKX and Hyperliquid, OKX's maintenance) or
//! `SizeScaled` (rate = base + slope × size, Deribit futures; the kernel adds the slope term,
//! the table holds the base rate with no deduction).

use crate::error::{CoreError, Result};
use crate::mode::{Mode, PerMode};

/// How a mode's requirement grows with notional (docs/MODEL.md "Requirement shapes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// notional × rate_k − cum_k, continuous in notional (Binance's maintenance amount).
    #[default]
    Continuous,
    /// notional × rate_k: the whole position at the rate of the tier it is in.
    Step,
    /// notional × (rate_1 + slope × size): one tier, the rate growing linearly with size.
    SizeScaled,
}

impl Shape {
    /// The names of the shapes, in declaration order (the Python side's choices).
    pub const NAMES: [(&'static str, Shape); 3] =
        [("continuous", Shape::Continuous), ("step", Shape::Step), ("size_scaled", Shape::SizeScaled)];

    pub fn parse(s: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|&(_, x)| x)
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::Continuous => "continuous",
            Shape::Step => "step",
            Shape::SizeScaled => "size_scaled",
        }
    }
}

/// One bracket as configured: notional upper bound (settle-asset units), initial and
/// maintenance margin rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracket {
    pub bound: f64,
    pub imr: f64,
    pub mmr: f64,
}

/// One tier as the kernel reads it: bound, rates and continuity amounts side by side.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tier {
    bound: f64,
    rate: PerMode<f64>,
    cum: PerMode<f64>,
}

/// All markets' brackets, flattened (CSR by market) with the continuity amounts
/// precomputed once.
#[derive(Debug, Clone, Default)]
pub struct BracketTable {
    offsets: Vec<usize>,
    tiers: Vec<Tier>,
    /// Each tier's bound, contiguous: the tier search counts bounds below a notional a
    /// vector at a time instead of one 40-byte tier at a time.
    bounds: Vec<f64>,
}

impl BracketTable {
    pub fn new() -> Self {
        BracketTable { offsets: vec![0], ..Default::default() }
    }

    /// Validates and appends one market's brackets with continuous requirements in both
    /// modes; `field` prefixes error messages.
    pub fn push(&mut self, brackets: &[Bracket], field: &str) -> Result<()> {
        self.push_shaped(brackets, [Shape::Continuous; 2], field)
    }

    /// [`push`](Self::push) with a requirement shape per mode: a `Step` or `SizeScaled` mode
    /// keeps no deduction (cum = 0), and `SizeScaled` needs exactly one bracket.
    pub fn push_shaped(&mut self, brackets: &[Bracket], shape: PerMode<Shape>, field: &str) -> Result<()> {
        if brackets.is_empty() {
            return Err(CoreError::config(format!("{field}.brackets"), "at least one bracket is required"));
        }
        if brackets.len() > 1 {
            if let Some(m) = shape.iter().position(|&x| x == Shape::SizeScaled) {
                let name = ["im_shape", "mm_shape"][m];
                return Err(CoreError::config(
                    format!("{field}.{name}"),
                    format!("size_scaled takes one bracket (the base rate), {} given", brackets.len()),
                ));
            }
        }
        let mut prev: Option<Bracket> = None;
        let mut cum = [0.0f64; 2];
        let mut tiers = Vec::with_capacity(brackets.len());
        for (k, b) in brackets.iter().enumerate() {
            let f = format!("{field}.brackets[{k}]");
            if b.bound.is_nan() || b.bound <= 0.0 {
                return Err(CoreError::config(
                    format!("{f}.bound"),
                    format!("{} must be a positive number (inf allowed)", b.bound),
                ));
            }
            for (name, r) in [("imr", b.imr), ("mmr", b.mmr)] {
                if !r.is_finite() || !(0.0..=1.0).contains(&r) {
                    return Err(CoreError::config(format!("{f}.{name}"), format!("{r} must be in [0, 1]")));
                }
            }
            if b.mmr > b.imr {
                return Err(CoreError::config(
                    format!("{f}.mmr"),
                    format!("maintenance rate {} exceeds initial rate {}", b.mmr, b.imr),
                ));
            }
            if let Some(p) = prev {
                if b.bound <= p.bound || p.bound.is_infinite() {
                    return Err(CoreError::config(
                        format!("{f}.bound"),
                        format!("bounds must increase strictly: {} after {}", b.bound, p.bound),
                    ));
                }
                if b.imr < p.imr || b.mmr < p.mmr {
                    return Err(CoreError::config(f, "rates must not decrease from one bracket to the next"));
                }
                if shape[0] == Shape::Continuous {
                    cum[0] += p.bound * (b.imr - p.imr);
                }
                if shape[1] == Shape::Continuous {
                    cum[1] += p.bound * (b.mmr - p.mmr);
                }
            }
            tiers.push(Tier { bound: b.bound, rate: [b.imr, b.mmr], cum });
            prev = Some(*b);
        }
        self.bounds.extend(tiers.iter().map(|t| t.bound));
        self.tiers.extend(tiers);
        self.offsets.push(self.tiers.len());
        Ok(())
    }

    /// Global tier range of `market`.
    #[inline]
    pub fn range(&self, market: usize) -> (usize, usize) {
        (self.offsets[market], self.offsets[market + 1])
    }

    /// (initial, maintenance) requirement of `notional` in the tiers `lo..hi` (a market's
    /// [`range`](Self::range)): the first tier whose bound is ≥ notional; beyond the last
    /// bound the last tier applies.
    #[inline]
    pub fn requirement_in(&self, lo: usize, hi: usize, notional: f64) -> PerMode<f64> {
        let t = &self.tiers[lo + Self::tier_in(&self.bounds[lo..hi], notional)];
        [notional * t.rate[0] - t.cum[0], notional * t.rate[1] - t.cum[1]]
    }

    /// Which of a market's brackets (0-based) applies to `notional`: the first whose bound is
    /// ≥ notional, the last beyond every bound.
    /// Branch-free: bounds increase strictly, so the first bound ≥ notional is preceded by
    /// exactly the bounds below it, and counting those among all tiers but the last gives
    /// the tier (the last one beyond every bound) without a data-dependent branch.
    #[inline]
    fn tier_in(bounds: &[f64], notional: f64) -> usize {
        bounds[..bounds.len() - 1].iter().map(|&b| usize::from(b < notional)).sum()
    }

    /// Rows of the bracket tables for the SIMD kernel ([`crate::kernel`]): per tier of
    /// `market`, (bound, imr, mmr, cum_initial, cum_maint) in order.
    pub fn tiers_of(&self, market: usize) -> impl Iterator<Item = (f64, [f64; 2], [f64; 2])> + '_ {
        self.tiers[self.offsets[market]..self.offsets[market + 1]].iter().map(|t| (t.bound, t.rate, t.cum))
    }

    /// The bracket of `market` (0-based) that applies to `notional` (settle-asset units).
    pub fn bracket_of(&self, market: usize, notional: f64) -> usize {
        let (lo, hi) = self.range(market);
        Self::tier_in(&self.bounds[lo..hi], notional)
    }

    /// (initial, maintenance) requirement of a position of `notional` in `market`.
    #[inline]
    pub fn requirement(&self, market: usize, notional: f64) -> PerMode<f64> {
        let (lo, hi) = self.range(market);
        self.requirement_in(lo, hi, notional)
    }

    /// The rate of the first bracket (the base rate a size premium scales from).
    pub fn base_rate(&self, market: usize, mode: Mode) -> f64 {
        self.tiers[self.offsets[market]].rate[mode.index()]
    }

    /// The configured brackets of `market` with their continuity amounts
    /// `(bound, imr, mmr, cum_initial, cum_maint)`.
    pub fn rows(&self, market: usize) -> impl Iterator<Item = (f64, f64, f64, f64, f64)> + '_ {
        self.tiers[self.offsets[market]..self.offsets[market + 1]]
            .iter()
            .map(|t| (t.bound, t.rate[0], t.rate[1], t.cum[0], t.cum[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(b: &[(f64, f64, f64)]) -> BracketTable {
        let mut t = BracketTable::new();
        let v: Vec<Bracket> = b.iter().map(|&(bound, imr, mmr)| Bracket { bound, imr, mmr }).collect();
        t.push(&v, "markets[X]").unwrap();
        t
    }

    #[test]
    fn maintenance_amount_follows_binance_rule() {
        // cum_k = floor_k × (mmr_k − mmr_{k−1}) + cum_{k−1}
        let t = table(&[(50_000.0, 0.008, 0.004), (250_000.0, 0.01, 0.005), (f64::INFINITY, 0.02, 0.01)]);
        let cums: Vec<f64> = t.rows(0).map(|r| r.4).collect();
        assert_eq!(cums, vec![0.0, 50.0, 50.0 + 250_000.0 * 0.005]);
    }

    #[test]
    fn requirement_is_continuous_at_bracket_edges() {
        let t = table(&[(50_000.0, 0.008, 0.004), (250_000.0, 0.01, 0.005), (f64::INFINITY, 0.02, 0.01)]);
        for edge in [50_000.0, 250_000.0] {
            let below = t.requirement(0, edge * (1.0 - 1e-12));
            let above = t.requirement(0, edge * (1.0 + 1e-12));
            for m in 0..2 {
                assert!((below[m] - above[m]).abs() < 1e-6, "edge {edge} mode {m}");
            }
        }
    }

    #[test]
    fn a_step_mode_has_no_deduction_and_the_other_keeps_it() {
        let mut t = BracketTable::new();
        let v = [
            Bracket { bound: 50_000.0, imr: 0.01, mmr: 0.005 },
            Bracket { bound: f64::INFINITY, imr: 0.02, mmr: 0.01 },
        ];
        t.push_shaped(&v, [Shape::Step, Shape::Continuous], "m").unwrap();
        // 100,000 in the second tier: IM = 100,000 × 2 % (whole position), MM = 1,000 − 250.
        assert_eq!(t.requirement(0, 100_000.0), [2_000.0, 750.0]);
        let e = t.push_shaped(&v, [Shape::SizeScaled, Shape::Continuous], "markets[X]").unwrap_err();
        assert!(e.to_string().starts_with("markets[X].im_shape"), "{e}");
        for (n, s) in Shape::NAMES {
            assert_eq!(Shape::parse(n), Some(s));
            assert_eq!(s.name(), n);
        }
    }

    #[test]
    fn rejects_unsorted_bounds_and_decreasing_rates() {
        let mut t = BracketTable::new();
        let bad = [Bracket { bound: 10.0, imr: 0.1, mmr: 0.05 }, Bracket { bound: 5.0, imr: 0.2, mmr: 0.1 }];
        let e = t.push(&bad, "markets[X]").unwrap_err();
        assert!(e.to_string().contains("markets[X].brackets[1].bound"), "{e}");
        let bad = [Bracket { bound: 10.0, imr: 0.1, mmr: 0.05 }, Bracket { bound: 50.0, imr: 0.05, mmr: 0.05 }];
        assert!(t.push(&bad, "m").is_err());
        let bad = [Bracket { bound: 10.0, imr: 0.1, mmr: 0.2 }];
        assert!(t.push(&bad, "m").unwrap_err().to_string().contains("exceeds initial"));
    }
}
