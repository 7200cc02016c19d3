//! Liquidity models: where a round's aggregated liquidation flow in one market fills, and
//! how far it pushes the mark.
//!
//! - square-root impact (Almgren et al. 2005; Tóth et al. 2011, "Anomalous price impact and
//!   the critical nature of liquidity"): relative impact I = Y·σ·sqrt(Q/V) for Q notional
//!   against daily volume V and daily volatility σ. The flow fills at mark·(1 ∓ I); a fraction
//!   `permanent` of I stays in the mark.
//! - depth curve (a thin book): cumulative notional resting at each relative distance from the
//!   mark, piecewise linear; a flat stretch is a gap. The flow walks the curve: it fills at
//!   the notional-weighted average distance and leaves the mark where the walk stopped.
//! - none: fills at the mark, the mark stays (for monotonicity studies).

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Liquidity {
    None,
    SqrtImpact { y: f64, sigma: f64, daily_volume: f64, permanent: f64 },
    Depth { distance: Vec<f64>, cumulative: Vec<f64> },
}

/// Where a flow filled: average fill price and the mark's new displacement (relative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Execution {
    pub price: f64,
    pub displacement: f64,
}

impl Liquidity {
    pub fn validate(&self, field: &str) -> Result<()> {
        let bad = |what: &str, msg: String| Err(CoreError::config(format!("{field}.{what}"), msg));
        match self {
            Liquidity::None => Ok(()),
            Liquidity::SqrtImpact { y, sigma, daily_volume, permanent } => {
                if !(y.is_finite() && *y >= 0.0) {
                    return bad("y", format!("{y} must be finite and ≥ 0"));
                }
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return bad("sigma", format!("{sigma} must be finite and ≥ 0"));
                }
                if !(daily_volume.is_finite() && *daily_volume > 0.0) {
                    return bad("daily_volume", format!("{daily_volume} must be finite and > 0"));
                }
                if !(0.0..=1.0).contains(permanent) {
                    return bad("permanent", format!("{permanent} must be in [0, 1]"));
                }
                Ok(())
            }
            Liquidity::Depth { distance, cumulative } => {
                if distance.is_empty() || distance.len() != cumulative.len() {
                    return bad("depth", "needs one or more (distance, cumulative notional) points".into());
                }
                let (mut d0, mut c0) = (0.0, 0.0);
                for (k, (&d, &c)) in distance.iter().zip(cumulative).enumerate() {
                    if !(d.is_finite() && d > d0 && d < 1.0) {
                        return bad(&format!("depth[{k}].distance"), format!("{d} must increase and stay in (0, 1)"));
                    }
                    if !(c.is_finite() && c >= c0) {
                        return bad(&format!("depth[{k}].notional"), format!("{c} must be finite and not decrease"));
                    }
                    (d0, c0) = (d, c);
                }
                if c0 <= 0.0 {
                    return bad("depth", "the curve holds no notional at all".into());
                }
                Ok(())
            }
        }
    }

    /// Fills a net flow of `notional` USD (signed: > 0 buys, < 0 sells) at `mark`.
    pub fn execute(&self, mark: f64, notional: f64) -> Execution {
        let side = notional.signum();
        let q = notional.abs();
        if q == 0.0 {
            return Execution { price: mark, displacement: 0.0 };
        }
        match self {
            Liquidity::None => Execution { price: mark, displacement: 0.0 },
            Liquidity::SqrtImpact { y, sigma, daily_volume, permanent } => {
                // Impact beyond 100% of the price is not a price: cap just below it.
                let impact = (y * sigma * (q / daily_volume).sqrt()).min(0.99);
                Execution { price: mark * (1.0 + side * impact), displacement: side * impact * permanent }
            }
            Liquidity::Depth { distance, cumulative } => {
                let (avg, reached) = walk(distance, cumulative, q);
                Execution { price: mark * (1.0 + side * avg), displacement: side * reached }
            }
        }
    }
}

/// Walks the depth curve for `q` notional: (average distance, distance reached). Beyond the
/// last point the curve continues with its average slope (distance per notional).
fn walk(distance: &[f64], cumulative: &[f64], q: f64) -> (f64, f64) {
    let (mut d0, mut c0) = (0.0f64, 0.0f64);
    let mut area = 0.0; // ∫ distance d(notional)
    for (&d1, &c1) in distance.iter().zip(cumulative) {
        let dc = c1 - c0;
        if dc > 0.0 {
            if q <= c1 {
                let d = d0 + (d1 - d0) * (q - c0) / dc;
                area += 0.5 * (d0 + d) * (q - c0);
                return ((area / q).min(0.99), d.min(0.99));
            }
            area += 0.5 * (d0 + d1) * dc;
        }
        (d0, c0) = (d1, c1);
    }
    let slope = d0 / c0;
    let d = d0 + slope * (q - c0);
    area += 0.5 * (d0 + d) * (q - c0);
    ((area / q).min(0.99), d.min(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_root_impact_grows_with_the_root_of_size() {
        let l = Liquidity::SqrtImpact { y: 1.0, sigma: 0.04, daily_volume: 1e9, permanent: 0.5 };
        let a = l.execute(100.0, -1e7); // sqrt(0.01) · 0.04 = 0.4%
        assert!((a.price - 99.6).abs() < 1e-12);
        assert!((a.displacement + 0.002).abs() < 1e-15);
        let b = l.execute(100.0, 4e7);
        assert!((b.price - 100.8).abs() < 1e-12);
    }

    #[test]
    fn a_thin_book_fills_across_the_gap() {
        // 1m within 0.1%, nothing until 2%, then 10m more by 3%.
        let l = Liquidity::Depth { distance: vec![0.001, 0.02, 0.03], cumulative: vec![1e6, 1e6, 11e6] };
        let small = l.execute(100.0, -5e5);
        assert!((small.displacement + 0.0005).abs() < 1e-12);
        assert!((small.price - 100.0 * (1.0 - 0.00025)).abs() < 1e-9);
        // 6m: 1m at avg 0.05%, 5m from 2% to 2.5% (avg 2.25%)
        let big = l.execute(100.0, -6e6);
        assert!((big.displacement + 0.025).abs() < 1e-12);
        let avg = (1e6 * 0.0005 + 5e6 * 0.0225) / 6e6;
        assert!((big.price - 100.0 * (1.0 - avg)).abs() < 1e-9);
    }

    #[test]
    fn beyond_the_curve_the_average_slope_continues() {
        let l = Liquidity::Depth { distance: vec![0.01], cumulative: vec![1e6] };
        let e = l.execute(100.0, 2e6);
        assert!((e.displacement - 0.02).abs() < 1e-12);
    }

    #[test]
    fn bad_curves_are_rejected() {
        let l = Liquidity::Depth { distance: vec![0.02, 0.01], cumulative: vec![1.0, 2.0] };
        assert!(l.validate("liquidity[BTCUSDT]").unwrap_err().to_string().contains("depth[1].distance"));
        let l = Liquidity::SqrtImpact { y: 1.0, sigma: 0.1, daily_volume: 0.0, permanent: 0.5 };
        assert!(l.validate("l").is_err());
    }
}
