//! Evaluation entry points: numpy prices and remaps in, numpy columns out (moved, not
//! copied), all work on the engine's own rayon pool without the GIL.

use crossmargin_core::{evaluate, CoreError};
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{margin_columns_dict, margin_context};
use crate::book::PyBook;
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

/// A rayon pool of a fixed size; results never depend on it.
#[pyclass(frozen, module = "crossmargin._core", name = "ThreadPool")]
pub struct PyPool {
    pub(crate) pool: rayon::ThreadPool,
}

#[pymethods]
impl PyPool {
    /// `threads=None` or 0 uses every core.
    #[new]
    #[pyo3(signature = (threads=None))]
    fn new(py: Python<'_>, threads: Option<usize>) -> PyResult<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.unwrap_or(0))
            .thread_name(|i| format!("crossmargin-{i}"))
            .build()
            .map_err(|e| to_pyerr(py, CoreError::config("threads", format!("cannot start the thread pool: {e}"))))?;
        Ok(PyPool { pool })
    }

    #[getter]
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

/// Standard-model evaluation of every account: a dict of numpy columns.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_standard<'py>(
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
    let cols = detached(py, || Ok(pool.install(|| evaluate(b, &ctx))))?;
    margin_columns_dict(py, cols)
}
