//! Contract arithmetic: what `qty` contracts of a market are worth, earn and weigh, in the
//! settle asset's units, and in USD at the settle asset's price. The one home of these
//! formulas (docs/MODEL.md, the standard model); every module that needs a notional, a P&L
//! or a position's value calls [`Contract`].
//!
//! With `size` = qty × contract size (signed: a short is negative):
//!
//! | payoff                    | value(price)  | notional(price) | pnl(entry → price)            |
//! |---------------------------|---------------|-----------------|-------------------------------|
//! | linear (USDT-M)           | size · price  | \|size\| · price | size · (price − entry)        |
//! | inverse (COIN-M)          | size / price  | \|size\| / price | size · (1/entry − 1/price)    |
//! | option premium            | size · price  | \|size\| · price | size · (price − entry)        |
//!
//! (Binance COIN-M and Bybit inverse contracts: cs is in the quote currency and the P&L in
//! coin; an option's marks and entry prices are premiums in settle units per unit of
//! underlying, linear or inverse alike, Deribit's quotation.) The P&L of a zero quantity is 0
//! for inverse contracts and options, whatever the entry price says (a flat row may carry
//! entry 0). What a position adds to its account's equity ([`Contract::equity`]) is its P&L,
//! or an option's value (its premium left the balance when it was bought). Amounts convert to
//! USD by the settle asset's price: × settle price ([`Contract::value_usd`],
//! [`Contract::notional_usd`]; the margin kernel converts its requirement the same way).

/// How one contract pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payoff {
    /// `contract_size` units of the underlying, priced in the settle asset.
    Linear,
    /// `contract_size` units of the quote currency, settled in the coin: cs / price coins.
    Inverse,
    /// An option: worth its premium, cs × mark (an inverse option's premium is quoted in
    /// coin, so the arithmetic is the same; only its requirement reads `inverse`).
    Premium,
}

/// A market's contract terms, packed for the kernels (see the module docs for the formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contract {
    /// Contract size (> 0).
    pub size: f64,
    pub payoff: Payoff,
}

impl Contract {
    /// The payoff of a market of kind option / perp-or-future with the `inverse` flag.
    pub fn new(size: f64, inverse: bool, option: bool) -> Self {
        let payoff = match (option, inverse) {
            (true, _) => Payoff::Premium,
            (false, true) => Payoff::Inverse,
            (false, false) => Payoff::Linear,
        };
        Contract { size, payoff }
    }

    #[inline]
    pub fn is_option(&self) -> bool {
        self.payoff == Payoff::Premium
    }

    /// qty × contract size: the position in units of the underlying (linear, option) or of
    /// the quote currency (inverse); signed. The size premium (imf) reads it.
    #[inline]
    pub fn size_of(&self, qty: f64) -> f64 {
        qty * self.size
    }

    /// Signed value of `qty` contracts at `price`, settle units: size · price, or size / price
    /// for an inverse contract.
    #[inline]
    pub fn value(&self, qty: f64, price: f64) -> f64 {
        let size = self.size_of(qty);
        match self.payoff {
            Payoff::Inverse => size / price,
            Payoff::Linear | Payoff::Premium => size * price,
        }
    }

    /// Notional of `qty` contracts at `price`, settle units: |size| · price, or |size| / price
    /// for an inverse contract (= |value|).
    #[inline]
    pub fn notional(&self, qty: f64, price: f64) -> f64 {
        let size = self.size_of(qty);
        match self.payoff {
            Payoff::Inverse => size.abs() / price,
            Payoff::Linear | Payoff::Premium => size.abs() * price,
        }
    }

    /// P&L of `qty` contracts bought at `entry`, at `price`, settle units (uPnL at the mark,
    /// realised P&L at a fill price). 0 for a zero quantity of an inverse contract or option.
    #[inline]
    pub fn pnl(&self, qty: f64, entry: f64, price: f64) -> f64 {
        let size = self.size_of(qty);
        match self.payoff {
            Payoff::Linear => size * (price - entry),
            Payoff::Inverse => {
                if qty == 0.0 {
                    0.0
                } else {
                    size * (1.0 / entry - 1.0 / price)
                }
            }
            Payoff::Premium => {
                if qty == 0.0 {
                    0.0
                } else {
                    size * (price - entry)
                }
            }
        }
    }

    /// What the position adds to its account's equity at `price`, settle units: its P&L, or
    /// an option's value. Also what closing `qty` at `price` pays into the settle balance.
    #[inline]
    pub fn equity(&self, qty: f64, entry: f64, price: f64) -> f64 {
        match self.payoff {
            Payoff::Premium => self.value(qty, price),
            Payoff::Linear | Payoff::Inverse => self.pnl(qty, entry, price),
        }
    }

    /// The factor s by which `price` must move for the notional of `qty` contracts to reach
    /// `bound` (notional(qty, price · s) = bound): bound / (|size| · price), or
    /// |size| / (price · bound) for an inverse contract.
    #[inline]
    pub fn factor_at_notional(&self, qty: f64, price: f64, bound: f64) -> f64 {
        let size = self.size_of(qty).abs();
        match self.payoff {
            Payoff::Inverse => size / (price * bound),
            Payoff::Linear | Payoff::Premium => bound / (size * price),
        }
    }

    /// [`Contract::value`] in USD: × the settle asset's price.
    #[inline]
    pub fn value_usd(&self, qty: f64, price: f64, settle_price: f64) -> f64 {
        self.value(qty, price) * settle_price
    }

    /// [`Contract::notional`] in USD: × the settle asset's price.
    #[inline]
    pub fn notional_usd(&self, qty: f64, price: f64, settle_price: f64) -> f64 {
        self.notional(qty, price) * settle_price
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_inverse_and_option_arithmetic() {
        let lin = Contract::new(0.001, false, false);
        assert_eq!(lin.value(-2_000.0, 50_000.0), -100_000.0);
        assert_eq!(lin.notional(-2_000.0, 50_000.0), 100_000.0);
        assert_eq!(lin.pnl(2_000.0, 40_000.0, 50_000.0), 20_000.0);
        // Binance COIN-M: 1,000 × 100 USD long from 40,000 to 50,000 = 0.5 BTC.
        let inv = Contract::new(100.0, true, false);
        assert_eq!(inv.notional(1_000.0, 50_000.0), 2.0);
        assert!((inv.pnl(1_000.0, 40_000.0, 50_000.0) - 0.5).abs() < 1e-15);
        assert_eq!(inv.pnl(0.0, 0.0, 50_000.0), 0.0);
        // An option is worth its premium, inverse or not; its equity is that value.
        let opt = Contract::new(1.0, true, true);
        assert_eq!(opt.value(-3.0, 0.05), -3.0 * 0.05);
        assert_eq!(opt.equity(-3.0, 0.04, 0.05), -3.0 * 0.05);
        assert_eq!(opt.pnl(0.0, f64::NAN, 0.05), 0.0);
        assert_eq!(lin.equity(2_000.0, 40_000.0, 50_000.0), lin.pnl(2_000.0, 40_000.0, 50_000.0));
    }

    #[test]
    fn the_bracket_factor_inverts_the_notional() {
        for c in [Contract::new(0.01, false, false), Contract::new(100.0, true, false)] {
            let s = c.factor_at_notional(-700.0, 3_000.0, 5_000.0);
            assert!((c.notional(-700.0, 3_000.0 * s) / 5_000.0 - 1.0).abs() < 1e-12);
        }
    }
}
