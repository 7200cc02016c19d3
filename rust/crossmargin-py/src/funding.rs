//! Funding: rates from premium samples, and zero-sum payments over a book. Conversion only.

use crossmargin_core::funding::{apply_funding as core_apply_funding, balances_after, funding_rates as core_rates};
use crossmargin_core::money::Minor;
use crossmargin_core::CoreError;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{margin_context, PricesIn};
use crate::book::PyBookView;
use crate::engine::PyEngine;
use crate::errors::{detached, to_pyerr};

fn to_i64(m: Minor, what: &str) -> Result<i64, CoreError> {
    i64::try_from(m.0).map_err(|_| CoreError::config(what, format!("{} minor units do not fit in int64", m.0)))
}

/// Rates of `interest.len()` markets from row-major premium samples (`n_samples` each).
#[pyfunction]
pub fn funding_rates<'py>(
    py: Python<'py>,
    premium: PyReadonlyArray1<'py, f64>,
    n_samples: usize,
    interest: PyReadonlyArray1<'py, f64>,
    floor: PyReadonlyArray1<'py, f64>,
    cap: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let out = core_rates(premium.as_slice()?, n_samples, interest.as_slice()?, floor.as_slice()?, cap.as_slice()?)
        .map_err(|e| to_pyerr(py, e))?;
    Ok(out.into_pyarray(py))
}

/// Payments per position (grouped order), totals per market, and the balance rows after:
/// the conversions of `Engine.funding`.
pub fn apply<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
    rates: &PyReadonlyArray1<'_, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let rates = rates.as_slice()?;
    let book = b.rows(py)?;
    let (f, bal, pay, totals) = detached(py, || {
        e.install(|| {
            let f = core_apply_funding(book, &ctx, rates)?;
            let bal = balances_after(book, &ctx, &f);
            let pay = f.payment.iter().map(|&m| to_i64(m, "payment")).collect::<Result<Vec<i64>, _>>()?;
            let mut totals: [Vec<i64>; 3] = Default::default();
            for m in &f.markets {
                totals[0].push(to_i64(m.longs, "longs")?);
                totals[1].push(to_i64(m.shorts, "shorts")?);
                totals[2].push(to_i64(m.counterparty, "counterparty")?);
            }
            Ok((f, bal, pay, totals))
        })
    })?;
    let [longs, shorts, cp] = totals;
    let out = PyDict::new(py);
    out.set_item("account", f.account.into_pyarray(py))?;
    out.set_item("market", f.market.into_pyarray(py))?;
    out.set_item("payment_minor", pay.into_pyarray(py))?;
    out.set_item("rate", f.markets.iter().map(|m| m.rate).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item("long_qty", f.markets.iter().map(|m| m.long_qty).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item("short_qty", f.markets.iter().map(|m| m.short_qty).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item(
        "counterparty_qty",
        f.markets.iter().map(|m| m.counterparty_qty).collect::<Vec<_>>().into_pyarray(py),
    )?;
    out.set_item("longs_minor", longs.into_pyarray(py))?;
    out.set_item("shorts_minor", shorts.into_pyarray(py))?;
    out.set_item("counterparty_minor", cp.into_pyarray(py))?;
    out.set_item("balance_account", bal.account.into_pyarray(py))?;
    out.set_item("balance_asset", bal.asset.into_pyarray(py))?;
    out.set_item("balance_qty", bal.qty.into_pyarray(py))?;
    Ok(out)
}
