//! `crossmargin._core`: the customs office between Python and crossmargin-core. One compiled
//! object per universe (`Engine`: the compiled universe and a thread pool) whose methods take
//! a bound book (`BookView`) and prices as one pair of arrays; typed inputs read by attribute;
//! arrays in, arrays out, errors converted, the GIL released around work; no risk logic here.
//! The constants the Python side needs (units, limits, names) are exported from the core.

use crossmargin_core::cascade::ledger::MAX_TOTAL_MINOR;
use crossmargin_core::cascade::policy::EventKind;
use crossmargin_core::{funding as core_funding, limits, liqprice, money, OptionSpec};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

mod args;
mod book;
mod cascade;
mod cascade_step;
mod engine;
mod errors;
mod explain;
mod funding;
mod monitor;
mod names;
mod portfolio;
mod risk;
mod solvency;
mod span;
mod symbols;
mod universe;

/// The module's constants: one home (crossmargin-core, or this crate for names it parses).
fn add_constants(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Money: minor units per asset unit, and the ledgers' bounds.
    m.add("SCALE", money::SCALE)?;
    m.add("MAX_AMOUNT", limits::MAX_AMOUNT)?;
    m.add("MAX_TOTAL_MINOR", MAX_TOTAL_MINOR)?;
    // The numeric domain inputs are checked against (crossmargin_core::limits).
    m.add("MAX_PRICE", limits::MAX_PRICE)?;
    m.add("MIN_PRICE", limits::MIN_PRICE)?;
    m.add("MAX_QTY", limits::MAX_QTY)?;
    m.add("MAX_FACTOR", limits::MAX_FACTOR)?;
    // The liquidation-price search range of the price factor.
    m.add("LIQ_S_MIN", liqprice::S_MIN)?;
    m.add("LIQ_S_MAX", liqprice::S_MAX)?;
    // Funding (Binance): the interest rate per interval, the dampener on I − P, and the
    // tolerance under which open interest counts as balanced.
    m.add("DEFAULT_INTEREST", core_funding::DEFAULT_INTEREST)?;
    m.add("DAMPENER", core_funding::DAMPENER)?;
    m.add("BALANCE_TOLERANCE", core_funding::BALANCE_TOLERANCE)?;
    // Deribit's standard option margin parameters.
    m.add("DERIBIT_IM_BASE", OptionSpec::DERIBIT_IM_BASE)?;
    m.add("DERIBIT_IM_MIN", OptionSpec::DERIBIT_IM_MIN)?;
    m.add("DERIBIT_MM_BASE", OptionSpec::DERIBIT_MM_BASE)?;
    // Names, in the order of their codes.
    m.add("EVENT_KINDS", PyTuple::new(py, EventKind::NAMES)?)?;
    let kinds = universe::MARKET_KINDS.map(universe::kind_name);
    m.add("MARKET_KINDS", PyTuple::new(py, kinds)?)?;
    m.add("REQUIREMENT_SHAPES", PyTuple::new(py, universe::shape_names())?)?;
    m.add("VALUATION_BASES", PyTuple::new(py, universe::basis_names())?)?;
    m.add("DELEVERAGE", PyTuple::new(py, cascade::DELEVERAGE.map(|(name, _)| name))?)?;
    m.add("LIQ_MOVES", PyTuple::new(py, risk::LIQ_MOVES.map(|(name, _)| name))?)?;
    m.add("PORTFOLIO_MODELS", PyTuple::new(py, portfolio::MODEL_NAMES)?)?;
    m.add("POSITION_SIDES", PyTuple::new(py, crossmargin_core::book::SIDE_NAMES)?)?;
    m.add("ORDER_SIDES", PyTuple::new(py, crossmargin_core::book::ORDER_SIDE_NAMES)?)?;
    Ok(())
}

/// Turns the huge-page advice for large fresh columns on or off; returns the previous
/// setting (crossmargin_core::memory::set_huge_pages).
#[pyfunction]
fn set_huge_pages(on: bool) -> bool {
    crossmargin_core::memory::set_huge_pages(on)
}

/// Whether large fresh columns ask for huge pages.
#[pyfunction]
fn huge_pages() -> bool {
    crossmargin_core::memory::huge_pages()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    add_constants(m)?;
    m.add_class::<universe::PyUniverse>()?;
    m.add_class::<book::PyBook>()?;
    m.add_class::<book::PyBookView>()?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<portfolio::PyPortfolio>()?;
    m.add_class::<span::PySpan>()?;
    m.add_class::<solvency::PyTree>()?;
    cascade_step::register(m)?;
    monitor::register(m)?;
    m.add_function(wrap_pyfunction!(engine::simd_levels, m)?)?;
    m.add_function(wrap_pyfunction!(set_huge_pages, m)?)?;
    m.add_function(wrap_pyfunction!(huge_pages, m)?)?;
    m.add_function(wrap_pyfunction!(symbols::encode_arrow_strings, m)?)?;
    m.add_function(wrap_pyfunction!(symbols::encode_str_objects, m)?)?;
    m.add_function(wrap_pyfunction!(portfolio::black76_columns, m)?)?;
    m.add_function(wrap_pyfunction!(portfolio::bsm_columns, m)?)?;
    m.add_function(wrap_pyfunction!(funding::funding_rates, m)?)?;
    m.add_function(wrap_pyfunction!(solvency::verify_inclusion, m)?)?;
    m.add_function(wrap_pyfunction!(solvency::leaf_nonce, m)?)?;
    m.add_function(wrap_pyfunction!(errors::panic_guard_selftest, m)?)?;
    Ok(())
}
