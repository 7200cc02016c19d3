//! Arguments every evaluation entry point receives (universe, book, remaps, prices), turned
//! into the core's context once.

use pyo3::prelude::*;

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
