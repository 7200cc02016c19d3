//! What every evaluation method shares: one call's prices (a pair of arrays), the core's
//! context built from the engine's universe, a bound book and those prices, and the
//! per-account columns it returns.

use crossmargin_core::{memory, MarginColumns, MarginContext, Prices, Universe};
use numpy::ndarray::{s, Array1};
use numpy::{Element, IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::book::PyBookView;
use crate::errors::to_pyerr;

/// One call's prices: `(asset_prices, marks)` in universe order.
#[derive(FromPyObject)]
pub struct PricesIn<'py>(pub PyReadonlyArray1<'py, f64>, pub PyReadonlyArray1<'py, f64>);

impl PricesIn<'_> {
    pub fn slices(&self) -> PyResult<Prices<'_>> {
        Ok(Prices { asset: self.0.as_slice()?, mark: self.1.as_slice()? })
    }
}

/// Prices per scenario or path step: `(asset_prices, marks)`, rows × assets and rows × markets.
#[derive(FromPyObject)]
pub struct PriceRowsIn<'py>(pub PyReadonlyArray2<'py, f64>, pub PyReadonlyArray2<'py, f64>);

/// The core context of one call.
pub fn margin_context<'a>(
    py: Python<'_>,
    universe: &'a Universe,
    book: &'a PyBookView,
    prices: &'a PricesIn<'_>,
) -> PyResult<MarginContext<'a>> {
    MarginContext::new(universe, book.header(), prices.slices()?, book.remap()).map_err(|e| to_pyerr(py, e))
}

/// The ten result columns of [`margin_columns_dict`] for `n` accounts, zeroed, each starting
/// a cache line: for the kernels that write them (`out=`'s path), so that a fresh result and
/// the `out=` calls that reuse it get whole-line streaming stores (a column 16–48 bytes into a
/// line, as malloc places a large `Vec`, cost ≈ 5 % of a call: ARCHITECTURE "Evaluation kernel").
pub fn fresh_margin_columns(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    let money =
        ["equity", "upnl", "adj_equity_initial", "adj_equity_maint", "im", "mm", "free_collateral", "margin_ratio"];
    for name in money {
        out.set_item(name, line_aligned::<f64>(py, n))?;
    }
    for name in ["liquidatable", "bankrupt"] {
        out.set_item(name, line_aligned::<bool>(py, n))?;
    }
    Ok(out)
}

/// A zeroed numpy column of `n` values whose first value starts a 64-byte line: a view into a
/// slightly longer column, which the array owns (no copy).
fn line_aligned<T: Element + Clone + Default>(py: Python<'_>, n: usize) -> Bound<'_, PyArray1<T>> {
    const LINE: usize = 64;
    let size = std::mem::size_of::<T>();
    let v: Vec<T> = memory::column(n + LINE / size);
    // `v` is aligned to `T`, so the bytes to the next line are a whole number of values.
    let skip = (v.as_ptr() as usize).wrapping_neg() % LINE / size;
    Array1::from_vec(v).slice_move(s![skip..skip + n]).into_pyarray(py)
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
