//! One account's margin, row by row: the standard model's own per-row numbers (the kernel
//! runs with a recording sink, so an explanation cannot drift from the evaluation), plus the
//! bracket each position falls in.

use crate::book::GroupedBook;
use crate::margin::{evaluate_rows_into, AccountMargin, BalanceLine, MarginContext, PositionLine, RowSink};
use crate::orders::OrderLine;

/// One position row with where it came from and which bracket applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionDetail {
    pub line: PositionLine,
    /// The row in the input positions table.
    pub row: u32,
    /// The position's side (`crate::book::SIDE_BOTH`, ...).
    pub side: u8,
    /// The market's bracket (0-based) holding the position's notional; None for options.
    pub bracket: Option<usize>,
}

/// An account's totals and the rows that make them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    pub margin: AccountMargin,
    pub balances: Vec<BalanceLine>,
    pub positions: Vec<PositionDetail>,
    /// What each market's open orders add to the initial requirement.
    pub orders: Vec<OrderLine>,
}

#[derive(Default)]
struct Recorder {
    balances: Vec<BalanceLine>,
    positions: Vec<PositionLine>,
    orders: Vec<OrderLine>,
}

impl RowSink for Recorder {
    fn balance(&mut self, line: &BalanceLine) {
        self.balances.push(*line);
    }
    fn position(&mut self, line: &PositionLine) {
        self.positions.push(*line);
    }
    fn order(&mut self, line: &OrderLine) {
        self.orders.push(*line);
    }
}

/// The explanation of dense account `a` (its totals equal [`crate::margin::evaluate`]'s, bit
/// for bit: the same function computes them).
pub fn explain_account(book: &GroupedBook, a: usize, ctx: &MarginContext<'_>) -> Explanation {
    let mut rec = Recorder::default();
    let margin = evaluate_rows_into(book.account(a), ctx, ctx, &mut rec);
    let span = book.positions.offsets[a]..book.positions.offsets[a + 1];
    let (rows, sides) = (&book.positions.row[span.clone()], &book.positions.side[span]);
    let u = ctx.universe;
    let positions = rec
        .positions
        .into_iter()
        .zip(rows.iter().zip(sides))
        .map(|(line, (&row, &side))| {
            let c = u.contract(line.market);
            let bracket =
                (!c.is_option()).then(|| u.markets.brackets.bracket_of(line.market, c.notional(line.qty, line.mark)));
            PositionDetail { line, row, side, bracket }
        })
        .collect();
    Explanation { margin, balances: rec.balances, positions, orders: rec.orders }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{evaluate, Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::Universe;

    #[test]
    fn rows_add_up_to_the_evaluation_and_name_their_bracket() {
        let mut btc = asset("BTC", 50_000.0);
        btc.weight = [0.9, 0.95];
        btc.liability_weight = [1.2, 1.1];
        let lin = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(50_000.0, 0.01, 0.005), (f64::INFINITY, 0.02, 0.01)]);
        let u = Universe::new(&[asset("USDT", 1.0), btc], &[lin]).unwrap();
        let book = group(
            BalanceInput { account: &[7, 7, 9], code: &[0, 1, 0], qty: &[1_000.0, -0.01, 5.0] },
            PositionInput {
                account: &[9, 7],
                code: &[0, 0],
                qty: &[0.1, 2.0],
                entry_price: &[49_000.0, 51_000.0],
                isolated_margin: &[0.0, f64::NAN],
            },
            2,
            1,
        )
        .unwrap();
        let prices = Prices { asset: &[1.0, 50_000.0], mark: &[50_000.0] };
        let ctx = MarginContext::new(&u, &book, prices, Remap { asset: &[0, 1], market: &[0] }).unwrap();
        let all = evaluate(&book, &ctx);
        let e = explain_account(&book, 0, &ctx);
        assert_eq!(e.margin.requirement[1].to_bits(), all.mm[0].to_bits());
        assert_eq!(e.margin.adj_equity[1].to_bits(), all.adj_equity_maint[0].to_bits());
        let adj: f64 =
            e.balances.iter().map(|b| b.collateral[1]).chain(e.positions.iter().map(|p| p.line.collateral[1])).sum();
        assert!((adj - e.margin.adj_equity[1]).abs() < 1e-9);
        // 2 BTC at 50,000 = 100,000 notional: the second bracket
        assert_eq!(e.positions[0].bracket, Some(1));
        assert_eq!(e.positions[0].row, 1);
        assert_eq!(e.balances[1].collateral, [-0.01 * 50_000.0 * 1.2, -0.01 * 50_000.0 * 1.1]);
        assert_eq!(explain_account(&book, 1, &ctx).positions[0].bracket, Some(0));
    }
}
