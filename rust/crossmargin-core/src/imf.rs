//! Size discount / premium by the square root of size (Drift protocol v2, "imf factor";
//! programs/drift/src/math/margin.rs: `calculate_size_discount_asset_weight`,
//! `calculate_size_premium_liability_weight`). In floating point, with `size` in base
//! units (asset quantity, or |contracts × contract_size| for a market):
//!
//! - asset weight:      w' = min(w, 1.1 / (1 + imf·sqrt(size)))
//! - liability weight:  w' = max(w, 0.8·w + imf·sqrt(size))
//! - margin rate:       r' = max(r, 0.8·r + imf·sqrt(size))
//!
//! With `imf = 0` every function returns its input unchanged.

/// Size-discounted collateral weight.
#[inline]
pub fn discounted_weight(weight: f64, imf: f64, size: f64) -> f64 {
    if imf == 0.0 {
        return weight;
    }
    weight.min(discount_cap(imf, size))
}

/// Size-premium liability weight or margin rate.
#[inline]
pub fn premium_weight(weight: f64, imf: f64, size: f64) -> f64 {
    if imf == 0.0 {
        return weight;
    }
    premium(weight, premium_term(imf, size))
}

/// 1.1 / (1 + imf·sqrt(size)): the cap a discounted weight may not exceed (computed once per
/// balance and applied to both modes' weights).
#[inline]
pub fn discount_cap(imf: f64, size: f64) -> f64 {
    1.1 / (1.0 + imf * size.abs().sqrt())
}

/// imf·sqrt(size): the premium term, computed once per row.
#[inline]
pub fn premium_term(imf: f64, size: f64) -> f64 {
    imf * size.abs().sqrt()
}

/// max(w, 0.8·w + term).
#[inline]
pub fn premium(weight: f64, term: f64) -> f64 {
    weight.max(0.8 * weight + term)
}

/// Drift's scaled initial asset weight (state/spot_market.rs
/// `get_scaled_initial_asset_weight`): with the venue's total deposits worth `deposits ×
/// price` at or above `start` (USD), the initial weight is `weight × start / (deposits ×
/// price)`; `start = 0` turns the rule off.
#[inline]
pub fn scaled_initial_weight(weight: f64, (start, deposits): (f64, f64), price: f64) -> f64 {
    if start > 0.0 && deposits * price >= start {
        weight * start / (deposits * price)
    } else {
        weight
    }
}

/// What a position's uPnL (USD) adds to adjusted equity in `mode` (0 initial, 1
/// maintenance): a loss in full; a profit × its uPnL weight, at initial margin
/// size-discounted by the profit itself in settle units (uPnL / `settle_price`; Drift
/// `unrealized_pnl_imf_factor`) and capped at `cap` (Drift
/// `MAX_POSITIVE_UPNL_FOR_INITIAL_MARGIN`) — state/perp_market.rs
/// `get_unrealized_asset_weight`, math/margin.rs `calculate_perp_position_value_and_pnl`.
#[inline]
pub fn upnl_collateral(upnl: f64, settle_price: f64, weight: f64, upnl_imf: f64, cap: f64, mode: usize) -> f64 {
    // Branch-free in the sign of the uPnL (random across rows); the branches below are on the
    // mode and the market's parameters.
    let profit = upnl.max(0.0);
    let (w, cap) = if mode != 0 {
        (weight, f64::INFINITY)
    } else if upnl_imf == 0.0 {
        (weight, cap)
    } else {
        (discounted_weight(weight, upnl_imf, profit / settle_price), cap)
    };
    upnl.min(0.0) + (profit * w).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_factor_is_identity() {
        assert_eq!(discounted_weight(0.8, 0.0, 1e12), 0.8);
        assert_eq!(premium_weight(1.2, 0.0, 1e12), 1.2);
    }

    #[test]
    fn small_sizes_keep_the_configured_weight_and_large_ones_move_it() {
        assert_eq!(discounted_weight(0.8, 0.001, 1.0), 0.8);
        // 1.1 / (1 + 0.001·sqrt(1e6)) = 1.1 / 2 = 0.55
        assert!((discounted_weight(0.8, 0.001, 1e6) - 0.55).abs() < 1e-15);
        // 0.8·0.05 + 0.001·sqrt(1e4) = 0.04 + 0.1 = 0.14
        assert!((premium_weight(0.05, 0.001, 1e4) - 0.14).abs() < 1e-15);
        assert_eq!(premium_weight(0.05, 0.001, 1.0), 0.05);
    }

    #[test]
    fn scaled_initial_weight_falls_with_total_deposits() {
        assert_eq!(scaled_initial_weight(0.8, (0.0, 1e9), 100.0), 0.8);
        assert_eq!(scaled_initial_weight(0.8, (1e6, 5_000.0), 100.0), 0.8);
        assert!((scaled_initial_weight(0.8, (1e6, 20_000.0), 100.0) - 0.4).abs() < 1e-15);
    }

    #[test]
    fn upnl_profit_is_discounted_and_capped_at_initial_only() {
        assert_eq!(upnl_collateral(-5.0, 1.0, 0.5, 0.01, 1.0, 0), -5.0);
        assert_eq!(upnl_collateral(1e6, 1.0, 0.8, 0.01, f64::INFINITY, 1), 0.8e6);
        // 1.1 / (1 + 0.01·1000) = 0.1
        assert!((upnl_collateral(1e6, 1.0, 0.8, 0.01, f64::INFINITY, 0) - 1e5).abs() < 1e-6);
        // the size is in settle units: 2e6 USD at 2 USD per unit is 1e6 units
        assert!((upnl_collateral(2e6, 2.0, 0.8, 0.01, f64::INFINITY, 0) - 2e5).abs() < 1e-6);
        assert_eq!(upnl_collateral(1e6, 1.0, 0.8, 0.0, 100.0, 0), 100.0);
    }
}
