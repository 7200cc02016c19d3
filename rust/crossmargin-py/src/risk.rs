//! Liquidation prices, scenario stress and capital efficiency: the conversions of the
//! engine's methods. The rules live in crossmargin-core (`liqprice`, `stress`, `efficiency`).

use crossmargin_core::efficiency::capital_efficiency;
use crossmargin_core::kernel::Level;
use crossmargin_core::liqprice::{liquidation_prices as core_liquidation_prices, LiqMove};
use crossmargin_core::stress::{stress_on, ScenarioPrices};
use crossmargin_core::{CoreError, MarginContext, Prices};
use numpy::{IntoPyArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::args::{margin_context, PriceRowsIn, PricesIn};
use crate::book::PyBookView;
use crate::engine::PyEngine;
use crate::errors::{detached, to_pyerr};
use crate::names;

/// What a liquidation price moves, by name (exported as `_core.LIQ_MOVES`).
pub const LIQ_MOVES: [(&str, LiqMove); 2] = [("underlying", LiqMove::Underlying), ("mark", LiqMove::Mark)];

/// `{account, market, row, side, liq_price, bankruptcy_price}` in the grouped book's order;
/// `market` holds the markets' symbols (object array of str).
pub fn liquidation_prices<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
    move_: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let Some(&(_, how)) = LIQ_MOVES.iter().find(|(name, _)| *name == move_) else {
        let names: Vec<&str> = LIQ_MOVES.iter().map(|(n, _)| *n).collect();
        let msg = format!("'{move_}' is not one of {}", names.join(", "));
        return Err(to_pyerr(py, CoreError::config("move", msg)));
    };
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let rows = b.rows(py)?;
    let cols = detached(py, || Ok(e.install(|| core_liquidation_prices(rows, &ctx, how))))?;
    let out = PyDict::new(py);
    out.set_item("account", cols.account.into_pyarray(py))?;
    // One str per market symbol, referenced by every row.
    let symbols: Vec<Bound<'py, PyAny>> =
        e.universe().markets.symbol.iter().map(|s| PyString::new(py, s).into_any()).collect();
    out.set_item("market", names::take(py, e, &symbols, &cols.market, None)?)?;
    out.set_item("row", cols.row.into_pyarray(py))?;
    out.set_item("side", cols.side.into_pyarray(py))?;
    out.set_item("liq_price", cols.liq_price.into_pyarray(py))?;
    out.set_item("bankruptcy_price", cols.bankruptcy_price.into_pyarray(py))?;
    Ok(out)
}

/// Per-scenario totals and, with `keep_matrix`, the flat accounts × scenarios matrix of
/// adj_equity_maint − mm. Scenario prices are rows (scenarios × assets, scenarios × markets).
pub fn stress<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    scenarios: &PriceRowsIn<'_>,
    keep_matrix: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let u = e.universe();
    let (n, n_marks) = (scenarios.0.shape()[0], scenarios.1.shape()[0]);
    if n != n_marks {
        let msg = format!("{n} rows of asset prices, {n_marks} rows of marks");
        return Err(to_pyerr(py, CoreError::price("scenario prices", msg)));
    }
    let base = Prices { asset: &u.assets.price, mark: &u.markets.mark };
    let ctx = MarginContext::new(u, b.header(), base, b.remap()).map_err(|err| to_pyerr(py, err))?;
    let sc = ScenarioPrices { n, asset: scenarios.0.as_slice()?, mark: scenarios.1.as_slice()? };
    let level = Level::from_env().map_err(|err| to_pyerr(py, err))?;
    // The kernel's rows: a book grouped into the layout builds no per-account rows when
    // every group runs SIMD (the blocks read the layout alone).
    let cols = detached(py, || {
        e.install(|| stress_on(b.kernel_rows(u, level)?, Some((b.layout(), level)), &ctx, sc, keep_matrix))
    })?;
    let out = PyDict::new(py);
    out.set_item("margin", cols.margin.into_pyarray(py))?;
    out.set_item("liquidatable", cols.liquidatable.into_pyarray(py))?;
    out.set_item("bankrupt", cols.bankrupt.into_pyarray(py))?;
    out.set_item("shortfall", cols.shortfall.into_pyarray(py))?;
    out.set_item("bad_debt", cols.bad_debt.into_pyarray(py))?;
    Ok(out)
}

/// Per-account isolated vs cross requirement (crossmargin_core::efficiency).
pub fn efficiency<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let rows = b.rows(py)?;
    let cols = detached(py, || e.install(|| capital_efficiency(rows, &ctx)))?;
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
