//! Cascades: the rules object read by attribute (path prices as 2-D numpy arrays), and
//! `Engine.cascade`'s event log, round table, final book and ledger totals out.

use crossmargin_core::cascade::adl::Deleverage;
use crossmargin_core::cascade::impact::Liquidity;
use crossmargin_core::cascade::policy::Slicing;
use crossmargin_core::cascade::state::BookColumns;
use crossmargin_core::cascade::step::DriverOutput;
use crossmargin_core::cascade::{run, CascadeConfig, Events, Rounds};
use crossmargin_core::{CoreError, Universe};
use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::book::{PyBook, PyBookView};
use crate::engine::PyEngine;
use crate::errors::{detached, to_pyerr};

pub(crate) fn liquidity(kind: &str, params: &[f64], market: &str) -> Result<Liquidity, CoreError> {
    let wrong = || CoreError::config(format!("cascade.liquidity[{market}]"), format!("bad parameters for '{kind}'"));
    match kind {
        "none" => Ok(Liquidity::None),
        "sqrt" => match params {
            &[y, sigma, daily_volume, permanent] => Ok(Liquidity::SqrtImpact { y, sigma, daily_volume, permanent }),
            _ => Err(wrong()),
        },
        "depth" if params.len().is_multiple_of(2) && !params.is_empty() => Ok(Liquidity::Depth {
            distance: params.iter().step_by(2).copied().collect(),
            cumulative: params.iter().skip(1).step_by(2).copied().collect(),
        }),
        _ => Err(wrong()),
    }
}

/// The deleveraging modes by name (exported as `_core.DELEVERAGE`).
pub const DELEVERAGE: [(&str, Deleverage); 3] =
    [("adl", Deleverage::Adl), ("socialized_loss", Deleverage::SocializedLoss), ("none", Deleverage::None)];

pub(crate) fn deleverage_mode(how: &str) -> Result<Deleverage, CoreError> {
    DELEVERAGE.iter().find(|(name, _)| *name == how).map(|&(_, mode)| mode).ok_or_else(|| {
        let names: Vec<&str> = DELEVERAGE.iter().map(|(n, _)| *n).collect();
        CoreError::config("cascade.deleverage", format!("'{how}' is not one of {}", names.join(", ")))
    })
}

/// The event log's columns into `d`.
pub(crate) fn events_into(py: Python<'_>, d: &Bound<'_, PyDict>, e: Events) -> PyResult<()> {
    d.set_item("round", e.round.into_pyarray(py))?;
    d.set_item("step", e.step.into_pyarray(py))?;
    d.set_item("account", e.account.into_pyarray(py))?;
    d.set_item("market", e.market.into_pyarray(py))?;
    d.set_item("side", e.side.into_pyarray(py))?;
    d.set_item("qty", e.qty.into_pyarray(py))?;
    d.set_item("price", e.price.into_pyarray(py))?;
    d.set_item("notional_usd", e.notional_usd.into_pyarray(py))?;
    d.set_item("fee_usd", e.fee_usd.into_pyarray(py))?;
    d.set_item("bad_debt_usd", e.bad_debt_usd.into_pyarray(py))?;
    d.set_item("kind", e.kind.into_pyarray(py))?;
    Ok(())
}

/// What a cascade's driver recorded: the event log, the round table, the pools (minor units),
/// the final prices, bad debt and fees, the truncated steps.
pub(crate) fn outcome_dict<'py>(py: Python<'py>, out: DriverOutput) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let events = PyDict::new(py);
    events_into(py, &events, out.events)?;
    d.set_item("events", events)?;
    d.set_item("rounds", rounds_dict(py, out.rounds, out.final_marks.len())?)?;
    d.set_item("insurance_minor", out.pools.insurance)?;
    d.set_item("external_minor", out.pools.external)?;
    d.set_item("final_asset_prices", out.final_asset_prices.into_pyarray(py))?;
    d.set_item("final_marks", out.final_marks.into_pyarray(py))?;
    d.set_item("bad_debt_usd", out.bad_debt_usd)?;
    d.set_item("fees_usd", out.fees_usd)?;
    d.set_item("truncated_steps", out.truncated_steps)?;
    Ok(d)
}

/// The round table as a dict (marks as a rounds × markets array).
pub(crate) fn rounds_dict<'py>(py: Python<'py>, r: Rounds, n_markets: usize) -> PyResult<Bound<'py, PyDict>> {
    let n_rounds = r.round.len();
    let rounds = PyDict::new(py);
    rounds.set_item("round", r.round.into_pyarray(py))?;
    rounds.set_item("step", r.step.into_pyarray(py))?;
    rounds.set_item("accounts_liquidated", r.accounts_liquidated.into_pyarray(py))?;
    rounds.set_item("liquidated_notional_usd", r.liquidated_notional_usd.into_pyarray(py))?;
    rounds.set_item("fees_usd", r.fees_usd.into_pyarray(py))?;
    rounds.set_item("bad_debt_usd", r.bad_debt_usd.into_pyarray(py))?;
    rounds.set_item("cumulative_bad_debt_usd", r.cumulative_bad_debt_usd.into_pyarray(py))?;
    rounds.set_item("insurance_fund_usd", r.insurance_fund_usd.into_pyarray(py))?;
    rounds.set_item("marks", r.marks.into_pyarray(py).reshape([n_rounds, n_markets])?)?;
    Ok(rounds)
}

/// A cascade state's book as (balances, positions) columns in universe indices: balances as
/// units (from the ledger), open positions only, each with its side (a hedge leg stays a leg).
/// The columns ([`State::columns`](crossmargin_core::cascade::state::State::columns)) move
/// into numpy (no copy).
pub(crate) fn book_dicts(py: Python<'_>, c: BookColumns) -> PyResult<(Bound<'_, PyDict>, Bound<'_, PyDict>)> {
    let balances = PyDict::new(py);
    balances.set_item("account", c.bal_account.into_pyarray(py))?;
    balances.set_item("asset", c.bal_asset.into_pyarray(py))?;
    balances.set_item("qty", c.bal_qty.into_pyarray(py))?;
    let positions = PyDict::new(py);
    positions.set_item("account", c.pos_account.into_pyarray(py))?;
    positions.set_item("market", c.pos_market.into_pyarray(py))?;
    positions.set_item("qty", c.pos_qty.into_pyarray(py))?;
    positions.set_item("entry_price", c.pos_entry.into_pyarray(py))?;
    positions.set_item("isolated_margin", c.pos_isolated.into_pyarray(py))?;
    positions.set_item("side", c.pos_side.into_pyarray(py))?;
    Ok((balances, positions))
}

fn rows(a: &PyReadonlyArray2<'_, f64>) -> Vec<Vec<f64>> {
    a.as_array().outer_iter().map(|r| r.to_vec()).collect()
}

/// A cascade's rules (`crossmargin.cascade.CascadeRules`), read by attribute: the path's
/// prices (steps × assets, steps × markets), one liquidity model per market as
/// `(kind, parameters)`, and the rest of the configuration resolved against the universe.
#[derive(FromPyObject)]
pub struct RulesIn<'py> {
    step_asset_prices: PyReadonlyArray2<'py, f64>,
    step_marks: PyReadonlyArray2<'py, f64>,
    liquidity: Vec<(String, Vec<f64>)>,
    decay: f64,
    liquidation_fee: f64,
    partial_fraction: f64,
    target_margin_ratio: f64,
    min_notional: f64,
    max_rounds: usize,
    max_liquidations_per_round: usize,
    deleverage: String,
    insurance_fund: Vec<f64>,
}

impl RulesIn<'_> {
    pub fn slicing(&self) -> Slicing {
        Slicing {
            fraction: self.partial_fraction,
            target_ratio: self.target_margin_ratio,
            min_notional: self.min_notional,
        }
    }

    pub fn fee(&self) -> f64 {
        self.liquidation_fee
    }

    pub fn deleverage(&self) -> Result<Deleverage, CoreError> {
        deleverage_mode(&self.deleverage)
    }

    /// The core's configuration, liquidity models named by market in errors.
    pub fn config(&self, u: &Universe) -> Result<CascadeConfig, CoreError> {
        let deleverage = self.deleverage()?;
        let mut models = Vec::with_capacity(self.liquidity.len());
        for (k, (kind, params)) in self.liquidity.iter().enumerate() {
            let name = u.markets.symbol.get(k).map(String::as_str).unwrap_or("?");
            models.push(liquidity(kind, params, name)?);
        }
        Ok(CascadeConfig {
            step_asset_prices: rows(&self.step_asset_prices),
            step_marks: rows(&self.step_marks),
            liquidity: models,
            decay: self.decay,
            liquidation_fee: self.liquidation_fee,
            slicing: self.slicing(),
            max_rounds: self.max_rounds,
            max_liquidations_per_round: self.max_liquidations_per_round,
            deleverage,
            insurance_fund: self.insurance_fund.clone(),
        })
    }
}

/// Runs a cascade (`Engine.cascade`); see `crossmargin.cascade` for the meaning of every rule.
pub fn run_cascade<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    rules: &RulesIn<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let u = e.universe();
    let cfg = rules.config(u).map_err(|err| to_pyerr(py, err))?;
    let remap = b.remap();
    let rows = b.rows(py)?;
    let (out, columns, grouped) = detached(py, || {
        e.install(|| {
            let out = run(u, rows, remap.asset, remap.market, &cfg)?;
            let columns = out.state.columns();
            let grouped = columns.grouped();
            Ok((out, columns, grouped))
        })
    })?;

    let d = outcome_dict(py, out.outcome)?;
    // The final book handed over grouped: `book::group_with` of these columns, made from the
    // state's grouping (`BookColumns::grouped`), so Python does not group it again.
    d.set_item("grouped", Py::new(py, PyBook::of(grouped))?)?;
    let (balances, positions) = book_dicts(py, columns)?;
    d.set_item("balances", balances)?;
    d.set_item("positions", positions)?;
    d.set_item("totals_before", out.totals_before)?;
    d.set_item("totals_after", out.totals_after)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deleverage_mode_is_named_once() {
        for mode in [Deleverage::Adl, Deleverage::SocializedLoss, Deleverage::None] {
            assert_eq!(DELEVERAGE.iter().filter(|(_, m)| *m == mode).count(), 1);
        }
    }
}
