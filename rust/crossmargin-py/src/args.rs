//! What every evaluation entry point shares: its arguments (universe, book, remaps, prices)
//! turned into the core's context once, and the per-account columns it returns.

use crossmargin_core::MarginColumns;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_pyerr;

/// The core context from an entry point's numpy arguments.
pub fn margin_context<'a>(
    py: Python<'_>,
    universe: &'a crossmargin_core::Universe,
    book: &crossmargin_core::GroupedBook,
    asset_remap: &'a numpy::PyReadonlyArray1<'_, u32>,
    market_remap: &'a numpy::PyReadonlyArray1<'_, u32>,
    asset_prices: &'a numpy::PyReadonlyArray1<'_, f64>,
    marks: &'a numpy::PyReadonlyArray1<'_, f64>,
) -> PyResult<crossmargin_core::MarginContext<'a>> {
    let prices = crossmargin_core::Prices { asset: asset_prices.as_slice()?, mark: marks.as_slice()? };
    let remap = crossmargin_core::Remap { asset: asset_remap.as_slice()?, market: market_remap.as_slice()? };
    crossmargin_core::MarginContext::new(universe, book, prices, remap).map_err(|e| to_pyerr(py, e))
}

/// Per-account margin columns as a dict of numpy arrays (moved, not copied).
pub fn margin_columns_dict<'py>(py: Python<'py>, cols: MarginColumns) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("equity", cols.equity.into_pyarray(py))?;
    out.set_item("upnl", cols.upnl.into_pyarray(py))?;
    out.set_item("adj_equity_initial", cols.adj_equity_initial.into_pyarray(py))?;
    out.set_item("adj_equity_maint", cols.adj_equity_maint.into_pyarray(py))?;
    out.set_item("im", cols.im.into_pyarray(py))?;
    out.set_item("mm", cols.mm.into_pyarray(py))?;
    out.set_item("free_collateral", cols.free_collateral.into_pyarray(py))?;
    out.set_item("margin_ratio", cols.margin_ratio.into_pyarray(py))?;
    out.set_item("liquidatable", cols.liquidatable.into_pyarray(py))?;
    out.set_item("bankrupt", cols.bankrupt.into_pyarray(py))?;
    Ok(out)
}
