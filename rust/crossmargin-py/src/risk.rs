//! Liquidation prices, scenario stress and capital efficiency: numpy in, numpy out, the work
//! on the engine's pool without the GIL. The rules live in crossmargin-core (`liqprice`,
//! `stress`, `efficiency`).

use crossmargin_core::efficiency::capital_efficiency;
use crossmargin_core::liqprice::{liquidation_prices, LiqMove};
use crossmargin_core::stress::{stress, ScenarioPrices};
use crossmargin_core::{CoreError, MarginContext, Prices, Remap};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::margin_context;
use crate::book::PyBook;
use crate::engine::PyPool;
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

/// Liquidation price of every position: `{account, market, row, liq_price}` in the grouped
/// book's order. `move_` is `"underlying"` or `"mark"`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (pool, universe, book, asset_remap, market_remap, asset_prices, marks, move_))]
pub fn liquidation_price_columns<'py>(
    py: Python<'py>,
    pool: &Bound<'py, PyPool>,
    universe: &Bound<'py, PyUniverse>,
    book: &Bound<'py, PyBook>,
    asset_remap: PyReadonlyArray1<'py, u32>,
    market_remap: PyReadonlyArray1<'py, u32>,
    asset_prices: PyReadonlyArray1<'py, f64>,
    marks: PyReadonlyArray1<'py, f64>,
    move_: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let how = match move_ {
        "underlying" => LiqMove::Underlying,
        "mark" => LiqMove::Mark,
        other => {
            return Err(to_pyerr(py, CoreError::config("move", format!("'{other}' is not one of underlying, mark"))))
        }
    };
    let (u, b) = (&universe.get().inner, &book.get().inner);
    let ctx = margin_context(py, u, b, &asset_remap, &market_remap, &asset_prices, &marks)?;
    let pool = &pool.get().pool;
    let cols = detached(py, || Ok(pool.install(|| liquidation_prices(b, &ctx, how))))?;
    let out = PyDict::new(py);
    out.set_item("account", cols.account.into_pyarray(py))?;
    out.set_item("market", cols.market.into_pyarray(py))?;
    out.set_item("row", cols.row.into_pyarray(py))?;
    out.set_item("liq_price", cols.liq_price.into_pyarray(py))?;
    Ok(out)
}

/// Every account under every scenario. Scenario prices are row-major flat arrays
/// (`n_scenarios × n_assets`, `n_scenarios × n_markets`). Returns the per-scenario totals and,
/// with `keep_matrix`, the flat accounts × scenarios matrix of adj_equity_maint − mm.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn stress_columns<'py>(
    py: Python<'py>,
    pool: &Bound<'py, PyPool>,
    universe: &Bound<'py, PyUniverse>,
    book: &Bound<'py, PyBook>,
    asset_remap: PyReadonlyArray1<'py, u32>,
    market_remap: PyReadonlyArray1<'py, u32>,
    n_scenarios: usize,
    scenario_asset_prices: PyReadonlyArray1<'py, f64>,
    scenario_marks: PyReadonlyArray1<'py, f64>,
    keep_matrix: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let (u, b) = (&universe.get().inner, &book.get().inner);
    let remap = Remap { asset: asset_remap.as_slice()?, market: market_remap.as_slice()? };
    let base = Prices { asset: &u.assets.price, mark: &u.markets.mark };
    let ctx = MarginContext::new(u, b, base, remap).map_err(|e| to_pyerr(py, e))?;
    let sc =
        ScenarioPrices { n: n_scenarios, asset: scenario_asset_prices.as_slice()?, mark: scenario_marks.as_slice()? };
    let pool = &pool.get().pool;
    let cols = detached(py, || pool.install(|| stress(b, &ctx, sc, keep_matrix)))?;
    let out = PyDict::new(py);
    out.set_item("margin", cols.margin.into_pyarray(py))?;
    out.set_item("liquidatable", cols.liquidatable.into_pyarray(py))?;
    out.set_item("bankrupt", cols.bankrupt.into_pyarray(py))?;
    out.set_item("shortfall", cols.shortfall.into_pyarray(py))?;
    out.set_item("bad_debt", cols.bad_debt.into_pyarray(py))?;
    Ok(out)
}

/// Per-account isolated vs cross requirement (crossmargin_core::efficiency).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn efficiency_columns<'py>(
    py: Python<'py>,
    pool: &Bound<'py, PyPool>,
    universe: &Bound<'py, PyUniverse>,
    book: &Bound<'py, PyBook>,
    asset_remap: PyReadonlyArray1<'py, u32>,
    market_remap: PyReadonlyArray1<'py, u32>,
    asset_prices: PyReadonlyArray1<'py, f64>,
    marks: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (u, b) = (&universe.get().inner, &book.get().inner);
    let ctx = margin_context(py, u, b, &asset_remap, &market_remap, &asset_prices, &marks)?;
    let pool = &pool.get().pool;
    let cols = detached(py, || Ok(pool.install(|| capital_efficiency(b, &ctx))))?;
    let out = PyDict::new(py);
    out.set_item("equity", cols.equity.into_pyarray(py))?;
    out.set_item("collateral", cols.collateral.into_pyarray(py))?;
    out.set_item("notional", cols.notional.into_pyarray(py))?;
    out.set_item("im", cols.im.into_pyarray(py))?;
    out.set_item("position_value", cols.position_value.into_pyarray(py))?;
    out.set_item("required_isolated", cols.required_isolated.into_pyarray(py))?;
    out.set_item("required_cross", cols.required_cross.into_pyarray(py))?;
    Ok(out)
}
