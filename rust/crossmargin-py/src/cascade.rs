//! Cascade entry point: path prices as 2-D numpy arrays in, event log, round table, final
//! book and ledger totals out.

use crossmargin_core::cascade::adl::Deleverage;
use crossmargin_core::cascade::impact::Liquidity;
use crossmargin_core::cascade::ledger::to_units;
use crossmargin_core::cascade::policy::Slicing;
use crossmargin_core::cascade::state::State;
use crossmargin_core::cascade::{run, CascadeConfig, Events, Rounds};
use crossmargin_core::{CoreError, Universe};
use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::book::PyBook;
use crate::engine::PyPool;
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

pub(crate) fn liquidity(kind: &str, params: &[f64], market: &str) -> Result<Liquidity, CoreError> {
    let wrong = || CoreError::config(format!("cascade.liquidity[{market}]"), format!("bad parameters for '{kind}'"));
    match kind {
        "none" => Ok(Liquidity::None),
        "sqrt" => match params {
            &[y, sigma, daily_volume, permanent] => Ok(Liquidity::SqrtImpact { y, sigma, daily_volume, permanent }),
            _ => Err(wrong()),
        },
        "depth" if params.len() % 2 == 0 && !params.is_empty() => Ok(Liquidity::Depth {
            distance: params.iter().step_by(2).copied().collect(),
            cumulative: params.iter().skip(1).step_by(2).copied().collect(),
        }),
        _ => Err(wrong()),
    }
}

pub(crate) fn deleverage_mode(how: &str) -> Result<Deleverage, CoreError> {
    match how {
        "adl" => Ok(Deleverage::Adl),
        "socialized_loss" => Ok(Deleverage::SocializedLoss),
        "none" => Ok(Deleverage::None),
        other => {
            Err(CoreError::config("cascade.deleverage", format!("'{other}' is not one of adl, socialized_loss, none")))
        }
    }
}

/// The event log's columns into `d`.
pub(crate) fn events_into(py: Python<'_>, d: &Bound<'_, PyDict>, e: Events) -> PyResult<()> {
    d.set_item("round", e.round.into_pyarray(py))?;
    d.set_item("step", e.step.into_pyarray(py))?;
    d.set_item("account", e.account.into_pyarray(py))?;
    d.set_item("market", e.market.into_pyarray(py))?;
    d.set_item("qty", e.qty.into_pyarray(py))?;
    d.set_item("price", e.price.into_pyarray(py))?;
    d.set_item("notional_usd", e.notional_usd.into_pyarray(py))?;
    d.set_item("fee_usd", e.fee_usd.into_pyarray(py))?;
    d.set_item("bad_debt_usd", e.bad_debt_usd.into_pyarray(py))?;
    d.set_item("kind", e.kind.into_pyarray(py))?;
    Ok(())
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
/// units (from the ledger), open positions only.
pub(crate) fn book_dicts<'py>(py: Python<'py>, s: &State) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    let n = s.n_accounts();
    let (mut ba, mut bq) = (Vec::new(), Vec::new());
    for a in 0..n {
        for r in s.bal_offsets[a]..s.bal_offsets[a + 1] {
            ba.push(s.accounts[a]);
            bq.push(to_units(s.bal_minor[r]));
        }
    }
    let (mut pa, mut pm, mut pq, mut pe, mut pi) = (vec![], vec![], vec![], vec![], vec![]);
    for a in 0..n {
        for p in s.pos_offsets[a]..s.pos_offsets[a + 1] {
            if s.pos_qty[p] != 0.0 {
                pa.push(s.accounts[a]);
                pm.push(s.pos_market[p]);
                pq.push(s.pos_qty[p]);
                pe.push(s.pos_entry[p]);
                pi.push(if s.pos_isolated[p] { to_units(s.iso_minor[p]) } else { 0.0 });
            }
        }
    }
    let balances = PyDict::new(py);
    balances.set_item("account", ba.into_pyarray(py))?;
    balances.set_item("asset", s.bal_asset.clone().into_pyarray(py))?;
    balances.set_item("qty", bq.into_pyarray(py))?;
    let positions = PyDict::new(py);
    positions.set_item("account", pa.into_pyarray(py))?;
    positions.set_item("market", pm.into_pyarray(py))?;
    positions.set_item("qty", pq.into_pyarray(py))?;
    positions.set_item("entry_price", pe.into_pyarray(py))?;
    positions.set_item("isolated_margin", pi.into_pyarray(py))?;
    Ok((balances, positions))
}

fn rows(a: &PyReadonlyArray2<'_, f64>) -> PyResult<Vec<Vec<f64>>> {
    let v = a.as_array();
    Ok(v.outer_iter().map(|r| r.to_vec()).collect())
}

/// The rule arguments both cascade entry points take (`run_cascade`, `CascadeDriver`), as the
/// core's configuration.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cascade_config(
    py: Python<'_>,
    u: &Universe,
    step_asset_prices: &PyReadonlyArray2<'_, f64>,
    step_marks: &PyReadonlyArray2<'_, f64>,
    liquidity_models: &[(String, Vec<f64>)],
    (decay, liquidation_fee): (f64, f64),
    slicing: Slicing,
    (max_rounds, max_liquidations_per_round): (usize, usize),
    deleverage: &str,
    insurance_fund: Vec<f64>,
) -> PyResult<CascadeConfig> {
    let deleverage = deleverage_mode(deleverage).map_err(|e| to_pyerr(py, e))?;
    let mut models = Vec::with_capacity(liquidity_models.len());
    for (k, (kind, params)) in liquidity_models.iter().enumerate() {
        let name = u.markets.symbol.get(k).map(String::as_str).unwrap_or("?");
        models.push(liquidity(kind, params, name).map_err(|e| to_pyerr(py, e))?);
    }
    Ok(CascadeConfig {
        step_asset_prices: rows(step_asset_prices)?,
        step_marks: rows(step_marks)?,
        liquidity: models,
        decay,
        liquidation_fee,
        slicing,
        max_rounds,
        max_liquidations_per_round,
        deleverage,
        insurance_fund,
    })
}

/// Runs a cascade; see `crossmargin.cascade` for the meaning of every argument.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn run_cascade<'py>(
    py: Python<'py>,
    pool: &Bound<'py, PyPool>,
    universe: &Bound<'py, PyUniverse>,
    book: &Bound<'py, PyBook>,
    asset_remap: PyReadonlyArray1<'py, u32>,
    market_remap: PyReadonlyArray1<'py, u32>,
    step_asset_prices: PyReadonlyArray2<'py, f64>,
    step_marks: PyReadonlyArray2<'py, f64>,
    liquidity_models: Vec<(String, Vec<f64>)>,
    decay: f64,
    liquidation_fee: f64,
    partial_fraction: f64,
    target_margin_ratio: f64,
    min_notional: f64,
    max_rounds: usize,
    max_liquidations_per_round: usize,
    deleverage: &str,
    insurance_fund: Vec<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (u, b) = (&universe.get().inner, &book.get().inner);
    let cfg = cascade_config(
        py,
        u,
        &step_asset_prices,
        &step_marks,
        &liquidity_models,
        (decay, liquidation_fee),
        Slicing { fraction: partial_fraction, target_ratio: target_margin_ratio, min_notional },
        (max_rounds, max_liquidations_per_round),
        deleverage,
        insurance_fund,
    )?;
    let (ar, mr) = (asset_remap.as_slice()?, market_remap.as_slice()?);
    let pool = &pool.get().pool;
    let out = detached(py, || pool.install(|| run(u, b, ar, mr, &cfg)))?;

    let d = PyDict::new(py);
    let events = PyDict::new(py);
    events_into(py, &events, out.events)?;
    d.set_item("events", events)?;
    d.set_item("rounds", rounds_dict(py, out.rounds, u.n_markets())?)?;
    let (balances, positions) = book_dicts(py, &out.state)?;
    d.set_item("balances", balances)?;
    d.set_item("positions", positions)?;
    d.set_item("totals_before", out.totals_before)?;
    d.set_item("totals_after", out.totals_after)?;
    d.set_item("insurance_minor", out.pools.insurance)?;
    d.set_item("external_minor", out.pools.external)?;
    d.set_item("final_asset_prices", out.final_asset_prices.into_pyarray(py))?;
    d.set_item("final_marks", out.final_marks.into_pyarray(py))?;
    d.set_item("bad_debt_usd", out.bad_debt_usd)?;
    d.set_item("fees_usd", out.fees_usd)?;
    d.set_item("truncated_steps", out.truncated_steps)?;
    Ok(d)
}
