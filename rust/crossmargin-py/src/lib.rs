//! `crossmargin._core`: the customs office between Python and crossmargin-core. Arrays in,
//! arrays out, errors converted, the GIL released around work; no risk logic here.

use pyo3::prelude::*;

mod book;
mod engine;
mod errors;
mod universe;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<universe::PyUniverse>()?;
    m.add_class::<book::PyBook>()?;
    m.add_class::<engine::PyPool>()?;
    m.add_function(wrap_pyfunction!(engine::evaluate_standard, m)?)?;
    Ok(())
}
