//! Capital efficiency (docs/MODEL.md "Capital efficiency"): what the same positions need under isolated and under
//! cross margin.
//!
//! For every position j (treated as cross whatever its flag in the book), margined alone by
//! [`evaluate_account`]: IM_j its initial requirement (bracket, size premium, option rule)
//! and c_j its contribution to the initial pool (min(uPnL, 0) + w·max(uPnL, 0); an option's
//! value). The collateral each regime needs on top of the positions, in USD at weight:
//!
//! - isolated: Σ_j max(IM_j − c_j, 0): each position funds its own margin; the profit of
//!   one position funds nothing else;
//! - cross:    max(Σ_j IM_j − Σ_j c_j, 0): one pool, profits offset losses.
//!
//! Cross never needs more (Σ max(x, 0) ≥ max(Σ x, 0)); the difference is the saving.
//!
//! Only initial margin enters, so a closing-fee reserve (a maintenance rule) has no part in
//! it. Two rules have no meaning for a position margined alone and are refused rather than
//! ignored: open orders (which position would an order's lock belong to?) and two-sided
//! valuation (the bid or the ask follows the sign of the whole account's holding).

use rayon::prelude::*;

use crate::book::{AccountRows, GroupedBook};
use crate::error::{CoreError, Result, Table};
use crate::margin::{evaluate_account, position_margin, MarginContext};
use crate::universe::{MarketKind, Universe};

/// A book with open orders is a typed error naming its first order row: `what` has no rule
/// for the initial margin orders lock.
pub fn refuse_orders(book: &GroupedBook, what: &str) -> Result<()> {
    match book.orders.row.iter().min() {
        Some(&row) => Err(CoreError::book(
            Table::Orders,
            row as usize,
            "qty",
            format!("open orders are not margined by {what} (evaluate the book without its orders)"),
        )),
        None => Ok(()),
    }
}

/// A universe with a two-sided asset is a typed error naming the first one's bid: `what`
/// values every asset at one price.
pub fn refuse_two_sided(u: &Universe, what: &str) -> Result<()> {
    match u.assets.side_factor.iter().position(|f| *f != [1.0, 1.0]) {
        Some(i) => Err(CoreError::config(
            format!("assets[{}].bid", u.assets.symbol[i]),
            format!("{what} has no two-sided valuation (give the asset one price)"),
        )),
        None => Ok(()),
    }
}

const CHUNK: usize = 2048;

/// Per-account columns, in dense account order. Amounts in USD.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EfficiencyColumns {
    /// Equity of the standard model (everything the account owns).
    pub equity: Vec<f64>,
    /// Weighted (initial) value of the balances alone.
    pub collateral: Vec<f64>,
    /// Σ |notional| of the perp and future positions.
    pub notional: Vec<f64>,
    /// Σ_j IM_j: the initial requirement of every position as cross.
    pub im: Vec<f64>,
    /// Σ_j c_j: the positions' contribution to the initial pool.
    pub position_value: Vec<f64>,
    pub required_isolated: Vec<f64>,
    pub required_cross: Vec<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Row {
    equity: f64,
    collateral: f64,
    notional: f64,
    im: f64,
    position_value: f64,
    required_isolated: f64,
}

fn account(rows: AccountRows<'_>, ctx: &MarginContext<'_>) -> Row {
    let u = ctx.universe;
    let full = evaluate_account(rows, ctx);
    let balances_only = AccountRows { pos_code: &[], pos_qty: &[], pos_entry: &[], pos_isolated: &[], ..rows };
    let collateral = evaluate_account(balances_only, ctx).adj_equity[0];
    let mut r = Row { equity: full.equity, collateral, ..Row::default() };
    for j in 0..rows.pos_code.len() {
        let alone = AccountRows {
            bal_code: &[],
            bal_qty: &[],
            pos_code: &rows.pos_code[j..j + 1],
            pos_qty: &rows.pos_qty[j..j + 1],
            pos_entry: &rows.pos_entry[j..j + 1],
            pos_isolated: &[0.0],
            pos_side: &[],
            ord_code: &[],
            ord_qty: &[],
            ord_price: &[],
            ord_reduce_only: &[],
        };
        let m = evaluate_account(alone, ctx);
        let (im, c) = (m.requirement[0], m.adj_equity[0]);
        r.im += im;
        r.position_value += c;
        r.required_isolated += (im - c).max(0.0);
        let k = ctx.remap.market[rows.pos_code[j] as usize] as usize;
        if u.markets.kind[k] != MarketKind::Option {
            let settle = ctx.prices.asset[u.markets.settle[k] as usize];
            r.notional +=
                position_margin(u, k, rows.pos_qty[j], rows.pos_entry[j], ctx.prices.mark[k], settle).notional;
        }
    }
    r
}

/// Capital efficiency of every account, in parallel. A book with open orders or a universe
/// with two-sided valuation is a typed error (module docs).
pub fn capital_efficiency(book: &GroupedBook, ctx: &MarginContext<'_>) -> Result<EfficiencyColumns> {
    refuse_orders(book, "capital efficiency")?;
    refuse_two_sided(ctx.universe, "capital efficiency")?;
    let n = book.n_accounts();
    let rows: Vec<Row> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .flat_map_iter(|c| (c * CHUNK..(c * CHUNK + CHUNK).min(n)).map(|a| account(book.account(a), ctx)))
        .collect();
    let col = |f: fn(&Row) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    Ok(EfficiencyColumns {
        equity: col(|r| r.equity),
        collateral: col(|r| r.collateral),
        notional: col(|r| r.notional),
        im: col(|r| r.im),
        position_value: col(|r| r.position_value),
        required_isolated: col(|r| r.required_isolated),
        required_cross: col(|r| (r.im - r.position_value).max(0.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{group, BalanceInput, PositionInput};
    use crate::margin::{Prices, Remap};
    use crate::universe::fixtures::{asset, perp};
    use crate::universe::Universe;

    #[test]
    fn cross_nets_a_winning_and_a_losing_position() {
        let btc = perp("BTCUSDT", "USDT", "BTC", 50_000.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let eth = perp("ETHUSDT", "USDT", "ETH", 2_000.0, &[(f64::INFINITY, 0.1, 0.05)]);
        let u = Universe::new(&[asset("USDT", 1.0)], &[btc, eth]).unwrap();
        // Long 1 BTC from 40,000 (+10,000); short 10 ETH from 1,800 (−2,000); 1,000 USDT.
        let book = group(
            BalanceInput { account: &[7], code: &[0], qty: &[1_000.0] },
            PositionInput {
                account: &[7, 7],
                code: &[0, 1],
                qty: &[1.0, -10.0],
                entry_price: &[40_000.0, 1_800.0],
                isolated_margin: &[0.0, 300.0],
            },
            1,
            2,
        )
        .unwrap();
        let ctx = MarginContext::new(
            &u,
            &book,
            Prices { asset: &u.assets.price, mark: &u.markets.mark },
            Remap { asset: &[0], market: &[0, 1] },
        )
        .unwrap();
        let e = capital_efficiency(&book, &ctx).unwrap();
        // IM 5,000 + 2,000. Isolated: max(5,000 − 10,000, 0) + max(2,000 + 2,000, 0) = 4,000;
        // cross: max(7,000 − (10,000 − 2,000), 0) = 0: the BTC profit carries the ETH short.
        assert_eq!(e.im, vec![7_000.0]);
        assert_eq!(e.position_value, vec![8_000.0]);
        assert_eq!(e.required_isolated, vec![4_000.0]);
        assert_eq!(e.required_cross, vec![0.0]);
        assert_eq!(e.collateral, vec![1_000.0]);
        assert_eq!(e.notional, vec![70_000.0]);
        assert_eq!(e.equity, vec![1_000.0 + 300.0 + 8_000.0]);
    }
}
