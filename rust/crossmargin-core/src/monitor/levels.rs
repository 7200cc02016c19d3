//! Risk levels and their crossings (docs/MODEL.md "Live monitoring"). An account stands at the
//! highest level whose test it meets:
//!
//! | level | code | test |
//! |---|---|---|
//! | ok | 0 | none below |
//! | margin call | 1 | mm > 0 and mm ≥ `margin_call` × adj_equity_maint (margin ratio ≥ the fraction) |
//! | liquidation | 2 | liquidatable (adj_equity_maint < mm, or an isolated position below its own) |
//! | bankruptcy | 3 | equity < 0 |
//!
//! A crossing is a change of level between two states of the monitor, either way.

use crate::error::{CoreError, Result};
use crate::margin::AccountMargin;

/// The levels' names, by code.
pub const LEVEL_NAMES: [&str; 4] = ["ok", "margin_call", "liquidation", "bankruptcy"];

/// The monitor's thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// Margin-call threshold on the margin ratio mm / adj_equity_maint, in (0, 1].
    pub margin_call: f64,
}

impl Levels {
    pub fn new(margin_call: f64) -> Result<Self> {
        if !(margin_call > 0.0 && margin_call <= 1.0) {
            return Err(CoreError::config(
                "levels.margin_call",
                format!("{margin_call} must lie in (0, 1] (a fraction of maintenance)"),
            ));
        }
        Ok(Levels { margin_call })
    }

    /// The level of an account's margin.
    #[inline]
    pub fn level(&self, m: &AccountMargin) -> u8 {
        if m.bankrupt() {
            3
        } else if m.liquidatable() {
            2
        } else if m.requirement[1] > 0.0 && m.margin_ratio() >= self.margin_call {
            1
        } else {
            0
        }
    }
}

/// One account's change of level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    pub account: i64,
    pub previous: u8,
    pub level: u8,
    pub ratio_before: f64,
    pub ratio_after: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn margin(equity: f64, adj: f64, mm: f64) -> AccountMargin {
        AccountMargin { equity, adj_equity: [adj, adj], requirement: [mm, mm], ..AccountMargin::default() }
    }

    #[test]
    fn each_level_starts_at_its_threshold() {
        let l = Levels::new(0.8).unwrap();
        assert_eq!(l.level(&margin(100.0, 100.0, 79.0)), 0);
        assert_eq!(l.level(&margin(100.0, 100.0, 80.0)), 1);
        assert_eq!(l.level(&margin(100.0, 100.0, 100.0)), 1);
        assert_eq!(l.level(&margin(100.0, 99.0, 100.0)), 2);
        assert_eq!(l.level(&margin(-1.0, -1.0, 100.0)), 3);
        assert_eq!(l.level(&margin(0.0, 0.0, 0.0)), 0);
        assert!(Levels::new(0.0).is_err() && Levels::new(f64::NAN).is_err() && Levels::new(1.5).is_err());
    }
}
