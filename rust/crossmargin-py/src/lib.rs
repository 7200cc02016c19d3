//! `crossmargin._core`: the customs office between Python and crossmargin-core. Arrays in,
//! arrays out, errors converted, the GIL released around work; no risk logic here.

use pyo3::prelude::*;

mod args;
mod book;
mod cascade;
mod cascade_step;
mod engine;
mod errors;
mod explain;
mod funding;
mod portfolio;
mod risk;
mod solvency;
mod universe;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<universe::PyUniverse>()?;
    m.add_class::<book::PyBook>()?;
    m.add_class::<engine::PyPool>()?;
    m.add_function(wrap_pyfunction!(engine::evaluate_standard, m)?)?;
    m.add_function(wrap_pyfunction!(explain::explain_account, m)?)?;
    m.add_function(wrap_pyfunction!(risk::liquidation_price_columns, m)?)?;
    m.add_function(wrap_pyfunction!(risk::stress_columns, m)?)?;
    m.add_function(wrap_pyfunction!(risk::efficiency_columns, m)?)?;
    m.add_function(wrap_pyfunction!(funding::funding_rates, m)?)?;
    m.add_function(wrap_pyfunction!(funding::apply_funding, m)?)?;
    m.add_class::<solvency::PyTree>()?;
    m.add_function(wrap_pyfunction!(solvency::solvency, m)?)?;
    m.add_function(wrap_pyfunction!(solvency::verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(solvency::leaf_nonce, m)?)?;
    m.add_function(wrap_pyfunction!(cascade::run_cascade, m)?)?;
    cascade_step::register(m)?;
    m.add_class::<portfolio::PyPortfolio>()?;
    m.add_function(wrap_pyfunction!(portfolio::black76_columns, m)?)?;
    m.add_function(wrap_pyfunction!(portfolio::evaluate_portfolio, m)?)?;
    m.add_function(wrap_pyfunction!(portfolio::greeks_columns, m)?)?;
    m.add_function(wrap_pyfunction!(errors::panic_guard_selftest, m)?)?;
    Ok(())
}
