//! The grouped (CSR) book as a Python object. Input columns are read in place
//! (readonly numpy views); grouping runs without the GIL.

use crossmargin_core::{group, BalanceInput, GroupedBook, PositionInput};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::errors::detached;

#[pyclass(frozen, module = "crossmargin._core", name = "GroupedBook")]
pub struct PyBook {
    pub inner: GroupedBook,
}

#[pymethods]
impl PyBook {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bal_account: PyReadonlyArray1<'_, i64>,
        bal_code: PyReadonlyArray1<'_, u32>,
        bal_qty: PyReadonlyArray1<'_, f64>,
        pos_account: PyReadonlyArray1<'_, i64>,
        pos_code: PyReadonlyArray1<'_, u32>,
        pos_qty: PyReadonlyArray1<'_, f64>,
        pos_entry: PyReadonlyArray1<'_, f64>,
        pos_isolated: PyReadonlyArray1<'_, f64>,
        n_asset_codes: u32,
        n_market_codes: u32,
    ) -> PyResult<Self> {
        let bal =
            BalanceInput { account: bal_account.as_slice()?, code: bal_code.as_slice()?, qty: bal_qty.as_slice()? };
        let pos = PositionInput {
            account: pos_account.as_slice()?,
            code: pos_code.as_slice()?,
            qty: pos_qty.as_slice()?,
            entry_price: pos_entry.as_slice()?,
            isolated_margin: pos_isolated.as_slice()?,
        };
        let inner = detached(py, || group(bal, pos, n_asset_codes, n_market_codes))?;
        Ok(PyBook { inner })
    }

    #[getter]
    fn n_accounts(&self) -> usize {
        self.inner.n_accounts()
    }

    /// Bytes held by the grouped arrays.
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }

    /// The book with codes as universe indices and each account's rows in universe order
    /// (the canonical summation order), or None when the remaps already keep that order.
    fn in_universe_order(
        &self,
        py: Python<'_>,
        asset_remap: PyReadonlyArray1<'_, u32>,
        market_remap: PyReadonlyArray1<'_, u32>,
        n_assets: u32,
        n_markets: u32,
    ) -> PyResult<Option<PyBook>> {
        let (a, m) = (asset_remap.as_slice()?, market_remap.as_slice()?);
        if self.inner.is_in_order(a, m) {
            return Ok(None);
        }
        let inner = detached(py, || self.inner.in_universe_order(a, m, n_assets, n_markets))?;
        Ok(Some(PyBook { inner }))
    }

    /// Account ids, ascending (a new array each call).
    fn accounts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.accounts.clone().into_pyarray(py)
    }
}
