//! A fill turned into the position's new state as venues book it (docs/MODEL.md "Live
//! monitoring", "Fills"). With the position q at average entry e and a fill of signed
//! quantity d at price p (d > 0 buys):
//!
//! - increase (q = 0 or d has q's sign): q' = q + d; the average entry is the size-weighted
//!   mean of the prices — linear e' = (|q|·e + |d|·p) / (|q| + |d|), inverse (coin-margined)
//!   e' = (|q| + |d|) / (|q|/e + |d|/p) (Bybit, "How to Calculate Average Entry Price");
//!   nothing is realised;
//! - reduce (d against q): the closed part c = sign(q)·min(|d|, |q|) realises its P&L at the
//!   fill price, pnl(c, e, p) (the contract's P&L rule, settle units: moving-average cost),
//!   the rest keeps e; when d flips the position, the remainder opens at p.
//!
//! A perp's or future's realised P&L is paid to the settle balance. An option's premium
//! moves instead: the settle balance changes by −value(d, p) (a buyer pays, a seller
//! receives), the position averages its entry the linear way. A position closed to zero
//! returns its isolated margin to the settle balance.

use crate::contract::Contract;

/// The outcome of one fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filled {
    pub qty: f64,
    pub entry: f64,
    /// Realised P&L, settle units (0 for an option; its premium is `cash`).
    pub realised: f64,
    /// What the settle balance receives (settle units): realised P&L, an option's premium,
    /// and a closed isolated position's margin.
    pub cash: f64,
    /// The isolated margin after the fill (0 when the position closed).
    pub isolated: f64,
}

/// The position (`qty`, `entry`, `isolated`) after a fill of `d` contracts at `price`.
pub fn fill(c: &Contract, qty: f64, entry: f64, isolated: f64, d: f64, price: f64) -> Filled {
    let new_qty = qty + d;
    let inverse = c.payoff == crate::contract::Payoff::Inverse;
    let (new_entry, realised) = if qty == 0.0 || (qty > 0.0) == (d > 0.0) {
        let (a, b) = (qty.abs(), d.abs());
        let e = if qty == 0.0 {
            price
        } else if inverse {
            (a + b) / (a / entry + b / price)
        } else {
            (a * entry + b * price) / (a + b)
        };
        (e, 0.0)
    } else {
        let closed = qty.signum() * d.abs().min(qty.abs());
        let pnl = if c.is_option() { 0.0 } else { c.pnl(closed, entry, price) };
        let e = if new_qty == 0.0 {
            0.0
        } else if new_qty.signum() == qty.signum() {
            entry
        } else {
            price
        };
        (e, pnl)
    };
    let premium = if c.is_option() { -c.value(d, price) } else { 0.0 };
    let (cash_back, isolated) = if new_qty == 0.0 { (isolated, 0.0) } else { (0.0, isolated) };
    Filled { qty: new_qty, entry: new_entry, realised, cash: realised + premium + cash_back, isolated }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bybit help center, "How to Calculate Average Entry Price" (article 000001113):
    // BTCUSDT 1 at 10,000 then 2 at 13,000 → 12,000; BTCUSD 50 at 10,000 then 50 at 15,000
    // → 12,000.
    #[test]
    fn average_entry_reproduces_bybit_examples() {
        let lin = Contract::new(1.0, false, false);
        let f = fill(&lin, 1.0, 10_000.0, 0.0, 2.0, 13_000.0);
        assert_eq!((f.qty, f.entry, f.cash), (3.0, 12_000.0, 0.0));
        let inv = Contract::new(1.0, true, false);
        let f = fill(&inv, 50.0, 10_000.0, 0.0, 50.0, 15_000.0);
        assert!((f.entry - 12_000.0).abs() < 1e-9, "{}", f.entry);
    }

    #[test]
    fn reducing_realises_at_the_average_entry_and_flipping_reopens_at_the_price() {
        let lin = Contract::new(1.0, false, false);
        let f = fill(&lin, 2.0, 100.0, 0.0, -0.5, 120.0);
        assert_eq!((f.qty, f.entry, f.realised), (1.5, 100.0, 10.0));
        let f = fill(&lin, 2.0, 100.0, 0.0, -3.0, 90.0);
        assert_eq!((f.qty, f.entry, f.realised), (-1.0, 90.0, -20.0));
        let f = fill(&lin, -1.0, 100.0, 7.0, 1.0, 90.0);
        assert_eq!((f.qty, f.realised, f.cash, f.isolated), (0.0, 10.0, 17.0, 0.0));
        let opt = Contract::new(1.0, false, true);
        let f = fill(&opt, 0.0, 0.0, 0.0, 2.0, 5.0);
        assert_eq!((f.qty, f.entry, f.cash), (2.0, 5.0, -10.0));
    }
}
