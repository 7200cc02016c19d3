//! What covers bad debt once the insurance fund is exhausted.
//!
//! - auto-deleveraging (Binance "Auto-Deleveraging (ADL)", Bybit "Auto-Deleveraging"):
//!   profitable positions on the other side of the bankrupt one, in the same market, are
//!   ranked by profit % × effective leverage (profit % = uPnL / entry notional; effective
//!   leverage = the account's total notional / its equity), ties by account id, and closed
//!   in that order. A deleveraged position closes at its entry price: the profit it had
//!   accrued on the closed part goes to the insurance fund instead of the account, until the
//!   deficit is covered.
//! - socialised loss: the deficit is split over the same profitable positions pro rata to
//!   their uPnL (never more than it) and taken from their settle balances; positions stay.

use rayon::prelude::*;

use crate::cascade::ledger::Pools;
use crate::cascade::policy::cross_equity;
use crate::cascade::state::State;
use crate::margin::{position_stake, MarginContext};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleverage {
    /// Bad debt beyond the fund stays uncovered (the fund goes negative).
    None,
    Adl,
    SocializedLoss,
}

/// A profitable position that can cover a deficit.
#[derive(Debug, Clone, Copy)]
pub struct Counterparty {
    pub account: usize,
    pub pos: usize,
    /// uPnL in USD at the round's prices (> 0).
    pub upnl: f64,
    pub score: f64,
}

/// Profitable positions in `market` on `side` (sign of qty), best-ranked first.
pub fn counterparties(state: &State, ctx: &MarginContext<'_>, market: u32, side: f64) -> Vec<Counterparty> {
    let u = ctx.universe;
    let k = market as usize;
    let sp = ctx.prices.asset[u.markets.settle[k] as usize];
    let contract = u.contract(k);
    let mut c: Vec<Counterparty> = (0..state.n_accounts())
        .into_par_iter()
        .flat_map_iter(|a| {
            let range = state.pos_offsets[a]..state.pos_offsets[a + 1];
            // Options are not deleveraged: an option's premium is not a profit on a price.
            let held = range
                .filter(|&p| state.pos_market[p] == market && state.pos_qty[p] * side > 0.0 && !contract.is_option());
            let mut found = Vec::new();
            for p in held {
                let pm = position_stake(ctx, k, state.pos_qty[p], state.pos_entry[p]);
                if pm.equity <= 0.0 {
                    continue;
                }
                let (equity, _) = cross_equity(state, a, ctx);
                let notional: f64 = (state.pos_offsets[a]..state.pos_offsets[a + 1])
                    .map(|q| {
                        position_stake(ctx, state.pos_market[q] as usize, state.pos_qty[q], state.pos_entry[q]).notional
                    })
                    .sum();
                let entry_notional = contract.notional_usd(state.pos_qty[p], state.pos_entry[p], sp);
                let leverage = if equity > 0.0 { notional / equity } else { f64::INFINITY };
                found.push(Counterparty {
                    account: a,
                    pos: p,
                    upnl: pm.equity,
                    score: pm.equity / entry_notional * leverage,
                });
            }
            found
        })
        .collect();
    c.sort_by(|x, y| y.score.total_cmp(&x.score).then(state.accounts[x.account].cmp(&state.accounts[y.account])));
    c
}

/// Moves `minor` units of `asset` from the external counterparty to the insurance fund.
pub fn to_fund_from_external(pools: &mut Pools, asset: usize, minor: i128) {
    pools.external[asset] -= minor;
    pools.insurance[asset] += minor;
}
