//! The initial margin open orders lock (docs/MODEL.md "Open orders"): one market rule, set per
//! market, that every venue preset fills in. Orders never enter maintenance, liquidation,
//! liquidation prices or cascades; they raise an account's initial requirement only.
//!
//! Per (account, market, leg) with position qty P (0 without a position), the non-reduce-only
//! buys B and sells A, and each order valued at its limit price (Binance, Bybit) or at the mark
//! (Drift, dYdX):
//!
//! - worst case: the initial requirement of max(|P·mark + ΣB|, |P·mark − ΣA|) replaces that
//!   of the position alone (Binance, "How to Calculate the Margin Requirement on Binance
//!   Futures Trading": max(abs(position notional + bid order value), abs(position notional −
//!   ask order value)) / leverage; Drift protocol-v2 `worst_case_base_asset_amount`:
//!   max(|base + open_bids|, |base + open_asks|) margined at the market's ratio);
//! - open loss (Binance, "How to Calculate the Cost Required to Open a Position"): Σ qty ×
//!   |min(0, dir × (mark − price))| over the non-reduce-only orders;
//! - two-way fee (Bybit, "Order Cost (USDT Contract)"): Σ fee × (value at the order price +
//!   value at the order's bankruptcy price price × (1 − dir × rate), or price / (1 + dir ×
//!   rate) for an inverse contract, 0 when that price is not positive), rate = the order's
//!   own initial rate;
//! - every initial requirement here is the market's initial requirement shape (continuous /
//!   step brackets, size-scaled rate, size premium: [`crate::margin::requirement_of`]),
//!   valued like a position's (at the settle asset's ask under two-sided valuation);
//! - per order (Drift `OPEN_ORDER_MARGIN_REQUIREMENT`): a fixed amount per open order.
//!
//! Hedge legs: a non-reduce-only buy opens (adds to) the long leg, a sell the short leg, so
//! an account hedged in a market margins its buys with its long leg and its sells with its
//! short leg (Binance: "Long-Side Margin Requirement + Short-Side Margin Requirement").

use crate::book::{AccountRows, GroupedBook, SIDE_BOTH, SIDE_LONG, SIDE_SHORT};
use crate::brackets::BracketTable;
use crate::contract::Payoff;
use crate::error::{CoreError, Result, Table};
use crate::limits::MAX_AMOUNT;
use crate::margin::{requirement_of, MarginContext, MarketCall, RowLookup};
use crate::universe::{MarketHot, MarketKind, Universe};

/// How a market's open orders lock initial margin (docs/MODEL.md "Open orders").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRule {
    /// Orders valued at the mark (Drift, dYdX: base amounts at the oracle) instead of at their
    /// limit price (Binance, Bybit).
    pub at_mark: bool,
    /// Add each order's open loss qty × |min(0, dir × (mark − price))| (Binance).
    pub open_loss: bool,
    /// Reserve the taker fee to open and to close each order (Bybit's order cost); 0 = none.
    pub fee_rate: f64,
    /// A fixed amount per open order, reduce-only ones included (Drift: 0.01 USDC), in the
    /// settle asset.
    pub per_order: f64,
}

impl Default for OrderRule {
    fn default() -> Self {
        OrderRule { at_mark: false, open_loss: false, fee_rate: 0.0, per_order: 0.0 }
    }
}

impl OrderRule {
    /// Checks the rule's numbers; `f` names the market (`markets[BTCUSDT]`).
    pub fn check(&self, f: &str) -> Result<()> {
        if !(self.fee_rate.is_finite() && (0.0..=0.1).contains(&self.fee_rate)) {
            return Err(CoreError::config(
                format!("{f}.order_fee_rate"),
                format!("{} must be in [0, 0.1]", self.fee_rate),
            ));
        }
        if !(self.per_order.is_finite() && (0.0..=MAX_AMOUNT).contains(&self.per_order)) {
            return Err(CoreError::config(
                format!("{f}.order_margin_per_order"),
                format!("{} must be finite and ≥ 0", self.per_order),
            ));
        }
        Ok(())
    }
}

/// Orders on an option market are refused (the rule covers perps and futures): a `Book`
/// error naming the first such order row.
pub fn check_markets(book: &GroupedBook, u: &Universe, market_remap: &[u32]) -> Result<()> {
    let o = &book.orders;
    let bad = (0..o.code.len())
        .filter(|&i| u.markets.kind[market_remap[o.code[i] as usize] as usize] == MarketKind::Option)
        .min_by_key(|&i| o.row[i]);
    match bad {
        None => Ok(()),
        Some(i) => {
            let k = market_remap[o.code[i] as usize] as usize;
            Err(CoreError::book(
                Table::Orders,
                o.row[i] as usize,
                "market",
                format!("market '{}' is an option: open-order margin covers perps and futures", u.markets.symbol[k]),
            ))
        }
    }
}

/// The initial requirement (settle units) of `qty` contracts whose notional is `notional`:
/// the market's initial requirement shape (continuous / step brackets, size-scaled rate) and
/// the size premium — the initial half of [`crate::margin::requirement_of`].
#[inline]
fn initial_requirement(brackets: &BracketTable, h: &MarketHot, notional: f64, qty: f64) -> f64 {
    requirement_of(brackets, h, qty, notional)[0]
}

/// One market's order margin, as an explanation reports it (settle units converted to USD).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OrderLine {
    /// Universe index of the market.
    pub market: usize,
    /// Number of order rows, reduce-only ones included.
    pub orders: usize,
    /// Σ qty of the non-reduce-only buys and sells (contracts).
    pub bid_qty: f64,
    pub ask_qty: f64,
    /// Initial requirement of the worst case above that of the positions alone (USD).
    pub worst_case: f64,
    /// Open loss, two-way fees and per-order amounts (USD).
    pub open_loss: f64,
    pub fees: f64,
    pub per_order: f64,
    /// Everything the market's orders add to the initial requirement (USD).
    pub requirement: f64,
}

/// The orders of one leg: position qty and entry, Σ bid / ask quantities and values.
#[derive(Debug, Clone, Copy, Default)]
struct Leg {
    qty: f64,
    bid_qty: f64,
    ask_qty: f64,
    bid_value: f64,
    ask_value: f64,
}

/// What the orders of `rows` add to the account's initial requirement (USD), each market's
/// numbers handed to `each` as they are summed. Orders are summed in (market, input row)
/// order; a market's total enters the sum in ascending market code. Kept out of line (and
/// cold): the standard kernel's loop over a book without orders stays as it was.
#[cold]
#[inline(never)]
pub fn order_margin<L: RowLookup>(
    rows: &AccountRows<'_>,
    ctx: &MarginContext<'_>,
    lookup: &L,
    mut each: impl FnMut(&OrderLine),
) -> f64 {
    let u = ctx.universe;
    let mut total = 0.0;
    let (n, mut i, mut p) = (rows.ord_code.len(), 0, 0);
    while i < n {
        let code = rows.ord_code[i];
        let j = i + rows.ord_code[i..].iter().take_while(|&&c| c == code).count();
        let MarketCall { index: k, mark, settle_price, hot: h, settle_side } = lookup.market(code);
        // Two-sided valuation: a requirement is valued at the settle asset's ask, as a position's.
        let usd = settle_price * settle_side.map_or(1.0, |f| f[1]);
        let rule = &u.markets.order_rule[k];
        let c = &h.contract;
        // This market's position rows (sorted by code, then side: both, long, short).
        while p < rows.pos_code.len() && rows.pos_code[p] < code {
            p += 1;
        }
        let mut legs = [Leg::default(); 3];
        let mut q = p;
        while q < rows.pos_code.len() && rows.pos_code[q] == code {
            legs[rows.side(q) as usize].qty = rows.pos_qty[q];
            q += 1;
        }
        let hedged = (p..q).any(|x| rows.side(x) != SIDE_BOTH);
        let mut line = OrderLine { market: k, orders: j - i, ..OrderLine::default() };
        for o in i..j {
            if rows.ord_reduce_only[o] {
                continue;
            }
            let (qty, price) = (rows.ord_qty[o], rows.ord_price[o]);
            let buy = qty > 0.0;
            let leg = &mut legs[match (hedged, buy) {
                (false, _) => SIDE_BOTH,
                (true, true) => SIDE_LONG,
                (true, false) => SIDE_SHORT,
            } as usize];
            let value = c.notional(qty, if rule.at_mark { mark } else { price });
            if buy {
                leg.bid_qty += qty;
                leg.bid_value += value;
                line.bid_qty += qty;
            } else {
                leg.ask_qty -= qty;
                leg.ask_value += value;
                line.ask_qty -= qty;
            }
            if rule.open_loss {
                // The loss of filling at `price` marked at `mark`, if any.
                line.open_loss += (-c.pnl(qty, price, mark)).max(0.0);
            }
            if rule.fee_rate > 0.0 {
                let open = c.notional(qty, price);
                let rate = initial_requirement(&u.markets.brackets, &h, open, qty) / open;
                let dir = qty.signum();
                // The value at the bankruptcy price p·(1 − dir·rate), inverse p / (1 + dir·rate);
                // 0 where that price is not positive / not finite (a rate of 100 % or more).
                let close = if c.payoff == Payoff::Inverse {
                    c.notional(qty, price) * (1.0 + dir * rate).max(0.0)
                } else {
                    c.notional(qty, price) * (1.0 - dir * rate).max(0.0)
                };
                line.fees += rule.fee_rate * (open + close);
            }
        }
        for leg in legs.iter().filter(|l| l.bid_qty > 0.0 || l.ask_qty > 0.0) {
            // Signed position value at the mark; the worst case of all bids or all asks filling.
            let position = c.value(leg.qty, mark);
            let worst = (position + leg.bid_value).abs().max((position - leg.ask_value).abs());
            let worst_qty = (leg.qty + leg.bid_qty).abs().max((leg.qty - leg.ask_qty).abs());
            let own = initial_requirement(&u.markets.brackets, &h, position.abs(), leg.qty);
            let with_orders = initial_requirement(&u.markets.brackets, &h, worst, worst_qty);
            line.worst_case += (with_orders - own).max(0.0);
        }
        line.per_order = rule.per_order * (j - i) as f64;
        let settle = line.worst_case + line.open_loss + line.fees + line.per_order;
        line.worst_case *= usd;
        line.open_loss *= usd;
        line.fees *= usd;
        line.per_order *= usd;
        line.requirement = settle * usd;
        total += line.requirement;
        each(&line);
        i = j;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group_with, BalanceInput, OrderInput, PositionInput};
    use crate::margin::{evaluate_account, Prices, Remap};
    use crate::universe::fixtures::{asset, perp};

    /// One account: positions (qty, side) in market 0 and orders (side, qty, price, reduce-only).
    fn im(rule: OrderRule, imr: f64, mark: f64, pos: &[(f64, u8)], ord: &[(u8, f64, f64, bool)]) -> (f64, f64) {
        let mut m = perp("BTCUSDT", "USDT", "BTC", mark, &[(f64::INFINITY, imr, imr / 2.0)]);
        m.orders = rule;
        let u = Universe::new(&[asset("USDT", 1.0)], &[m]).unwrap();
        let n = pos.len();
        let (pa, pc, pe, pi) = (vec![1; n], vec![0; n], vec![mark; n], vec![0.0; n]);
        let pq: Vec<f64> = pos.iter().map(|p| p.0).collect();
        let ps: Vec<u8> = pos.iter().map(|p| p.1).collect();
        let k = ord.len();
        let (oa, oc) = (vec![1; k], vec![0; k]);
        let os: Vec<u8> = ord.iter().map(|o| o.0).collect();
        let oq: Vec<f64> = ord.iter().map(|o| o.1).collect();
        let op: Vec<f64> = ord.iter().map(|o| o.2).collect();
        let or: Vec<bool> = ord.iter().map(|o| o.3).collect();
        let book = group_with(
            BalanceInput { account: &[1], code: &[0], qty: &[1e6] },
            PositionInput { account: &pa, code: &pc, qty: &pq, entry_price: &pe, isolated_margin: &pi },
            &ps,
            Some(OrderInput { account: &oa, code: &oc, side: &os, qty: &oq, price: &op, reduce_only: &or }),
            1,
            1,
        )
        .unwrap();
        let marks = [mark];
        let prices = Prices { asset: &[1.0], mark: &marks };
        let ctx = MarginContext::new(&u, &book, prices, Remap { asset: &[0], market: &[0] }).unwrap();
        let with = evaluate_account(book.account(0), &ctx);
        let without = evaluate_account(book.account(0).without_orders(), &ctx);
        assert_eq!(with.requirement[1], without.requirement[1], "orders never change maintenance");
        (with.requirement[0], without.requirement[0])
    }

    #[test]
    fn binance_worst_case_of_position_and_orders() {
        // Binance, "How to Calculate the Margin Requirement on Binance Futures Trading": long
        // 0.5 BTC at mark 20,000, bid 0.1 @ 19,000, ask 0.1 @ 22,000, 2x:
        // max(|10,000 + 1,900|, |10,000 − 2,200|) / 2 = 5,950 USDT.
        let (with, without) = im(
            OrderRule::default(),
            0.5,
            20_000.0,
            &[(0.5, SIDE_BOTH)],
            &[(0, 0.1, 19_000.0, false), (1, 0.1, 22_000.0, false)],
        );
        assert_eq!((with, without), (5_950.0, 5_000.0));
        // reduce-only orders lock nothing
        let (with, _) = im(OrderRule::default(), 0.5, 20_000.0, &[(0.5, SIDE_BOTH)], &[(1, 0.4, 22_000.0, true)]);
        assert_eq!(with, 5_000.0);
    }

    #[test]
    fn hedge_legs_take_buys_on_the_long_leg_and_sells_on_the_short_leg() {
        // Binance hedge mode: long-side + short-side requirement, each its own worst case.
        let pos = [(0.5, SIDE_LONG), (-0.2, SIDE_SHORT)];
        let ord = [(0, 0.1, 19_000.0, false), (1, 0.1, 22_000.0, false)];
        let (with, without) = im(OrderRule::default(), 0.5, 20_000.0, &pos, &ord);
        assert_eq!(without, (10_000.0 + 4_000.0) * 0.5);
        assert_eq!(with, (11_900.0 + 6_200.0) * 0.5);
    }

    #[test]
    fn binance_open_loss_is_added_to_a_short_order_below_the_mark() {
        // Binance, "How to Calculate the Cost Required to Open a Position": 1 BTC at 9,253.30,
        // mark 9,259.84, 20x: IM 462.66 (truncated to the cent), open loss of the short 6.54.
        let rule = OrderRule { open_loss: true, ..OrderRule::default() };
        let (long, _) = im(rule, 0.05, 9_259.84, &[], &[(0, 1.0, 9_253.30, false)]);
        let (short, _) = im(rule, 0.05, 9_259.84, &[], &[(1, 1.0, 9_253.30, false)]);
        assert_eq!((long * 100.0).floor() / 100.0, 462.66);
        assert_eq!(((short - long) * 100.0).round() / 100.0, 6.54);
        assert_eq!((short * 100.0).floor() / 100.0, 469.20);
    }

    #[test]
    fn bybit_order_cost_reserves_the_fee_to_open_and_to_close() {
        // Bybit, "Order Cost (USDT Contract)": long 1 BTC at 50,000, 10x, taker 0.06%:
        // 5,000 + 30 + 27 = 5,057 USDT; and long 1 BTC at 8,000, 50x, 0.075%: 171.88 USDT.
        let rule = OrderRule { fee_rate: 0.0006, ..OrderRule::default() };
        let (cost, _) = im(rule, 0.1, 50_000.0, &[], &[(0, 1.0, 50_000.0, false)]);
        assert!((cost - 5_057.0).abs() < 1e-9, "{cost}");
        let rule = OrderRule { fee_rate: 0.00075, ..OrderRule::default() };
        let (cost, _) = im(rule, 0.02, 8_000.0, &[], &[(0, 1.0, 8_000.0, false)]);
        assert!((cost - 171.88).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn drift_worst_case_base_at_the_oracle_and_a_fixed_amount_per_order() {
        // protocol-v2: worst_case_base_asset_amount = max(|base + bids|, |base + asks|) at the
        // oracle price; OPEN_ORDER_MARGIN_REQUIREMENT = QUOTE_PRECISION / 100 per open order.
        let rule = OrderRule { at_mark: true, per_order: 0.01, ..OrderRule::default() };
        let ord = [(0, 2.0, 90.0, false), (1, 5.0, 110.0, false), (1, 1.0, 120.0, true)];
        let (with, without) = im(rule, 0.1, 100.0, &[(1.0, SIDE_BOTH)], &ord);
        assert_eq!(without, 10.0);
        // bids: |1 + 2| = 3; asks: |1 − 5| = 4 → 4 × 100 × 0.1 = 40, plus 3 orders × 0.01
        assert!((with - (40.0 + 0.03)).abs() < 1e-12, "{with}");
    }
}
