//! Options and portfolio margin bindings: the vectorised Black-76 pricer, the compiled
//! portfolio configuration, the portfolio / delta / hybrid evaluations and greeks.

use crossmargin_core::portfolio::{self, Model, PortfolioContext};
use crossmargin_core::{black76, CoreError, MarginContext, PortfolioParams, Prices, Remap, Scenario, UnderlyingParams};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::margin_columns_dict;
use crate::book::PyBook;
use crate::engine::PyPool;
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

/// (underlying, [(price_move, vol_move, weight), ...], short_option_min, delta_rate, vol_power,
///  vol_relative)
type UnderlyingTuple = (String, Vec<(f64, f64, f64)>, f64, f64, f64, bool);

/// Portfolio parameters validated against one compiled universe.
#[pyclass(frozen, module = "crossmargin._core", name = "CompiledPortfolio")]
pub struct PyPortfolio {
    inner: PortfolioParams,
}

#[pymethods]
impl PyPortfolio {
    #[new]
    fn new(
        py: Python<'_>,
        universe: &Bound<'_, PyUniverse>,
        underlyings: Vec<UnderlyingTuple>,
        offsets: Vec<(String, String, f64)>,
        im_factor: f64,
        hybrid_floor: f64,
    ) -> PyResult<Self> {
        let per = underlyings
            .into_iter()
            .map(|(name, scenarios, short_option_min, delta_rate, vol_power, vol_relative)| {
                let scenarios =
                    scenarios.into_iter().map(|(price, vol, weight)| Scenario { price, vol, weight }).collect();
                (name, UnderlyingParams { scenarios, short_option_min, delta_rate, vol_power, vol_relative })
            })
            .collect();
        PortfolioParams::new(&universe.get().inner, per, offsets, im_factor, hybrid_floor)
            .map(|inner| PyPortfolio { inner })
            .map_err(|e| to_pyerr(py, e))
    }
}

/// Black-76 over equal-length arrays: a dict of price, delta, gamma, vega, theta.
#[pyfunction]
pub fn black76_columns<'py>(
    py: Python<'py>,
    forward: PyReadonlyArray1<'py, f64>,
    strike: PyReadonlyArray1<'py, f64>,
    years: PyReadonlyArray1<'py, f64>,
    vol: PyReadonlyArray1<'py, f64>,
    rate: PyReadonlyArray1<'py, f64>,
    call: PyReadonlyArray1<'py, bool>,
) -> PyResult<Bound<'py, PyDict>> {
    let (f, k, t, v, r, c) = (
        forward.as_slice()?,
        strike.as_slice()?,
        years.as_slice()?,
        vol.as_slice()?,
        rate.as_slice()?,
        call.as_slice()?,
    );
    let n = f.len();
    if [k.len(), t.len(), v.len(), r.len(), c.len()].iter().any(|&m| m != n) {
        return Err(pyo3::exceptions::PyValueError::new_err("black76: inputs must have equal lengths"));
    }
    let out = detached(py, || {
        let mut cols = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        for i in 0..n {
            let g = black76(f[i], k[i], t[i], v[i], r[i], c[i]);
            for (col, x) in cols.iter_mut().zip([g.price, g.delta, g.gamma, g.vega, g.theta]) {
                col[i] = x;
            }
        }
        Ok::<_, CoreError>(cols)
    })?;
    let d = PyDict::new(py);
    for (name, col) in ["price", "delta", "gamma", "vega", "theta"].into_iter().zip(out) {
        d.set_item(name, col.into_pyarray(py))?;
    }
    Ok(d)
}

fn context<'a>(
    universe: &'a PyUniverse,
    book: &'a PyBook,
    remap: (&'a [u32], &'a [u32]),
    prices: (&'a [f64], &'a [f64]),
) -> Result<MarginContext<'a>, CoreError> {
    MarginContext::new(
        &universe.inner,
        &book.inner,
        Prices { asset: prices.0, mark: prices.1 },
        Remap { asset: remap.0, market: remap.1 },
    )
}

/// Portfolio, delta or hybrid evaluation of every account: the MarginResult columns.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn evaluate_portfolio<'py>(
    py: Python<'py>,
    pool: &Bound<'py, PyPool>,
    universe: &Bound<'py, PyUniverse>,
    portfolio: &Bound<'py, PyPortfolio>,
    book: &Bound<'py, PyBook>,
    asset_remap: PyReadonlyArray1<'py, u32>,
    market_remap: PyReadonlyArray1<'py, u32>,
    asset_prices: PyReadonlyArray1<'py, f64>,
    marks: PyReadonlyArray1<'py, f64>,
    model: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let model = Model::parse(model).ok_or_else(|| {
        to_pyerr(py, CoreError::config("model", format!("'{model}' is not one of portfolio, delta, hybrid")))
    })?;
    let (u, b, params) = (universe.get(), book.get(), &portfolio.get().inner);
    let remap = (asset_remap.as_slice()?, market_remap.as_slice()?);
    let prices = (asset_prices.as_slice()?, marks.as_slice()?);
    let pool = &pool.get().pool;
    let cols = detached(py, || {
        let ctx = context(u, b, remap, prices)?;
        let pc = PortfolioContext::new(ctx, params)?;
        Ok(pool.install(|| portfolio::evaluate(&b.inner, &pc, model)))
    })?;
    margin_columns_dict(py, cols)
}

/// Greeks per account × underlying: dense account index, underlying index and the greeks.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn greeks_columns<'py>(
    py: Python<'py>,
    pool: &Bound<'py, PyPool>,
    universe: &Bound<'py, PyUniverse>,
    book: &Bound<'py, PyBook>,
    asset_remap: PyReadonlyArray1<'py, u32>,
    market_remap: PyReadonlyArray1<'py, u32>,
    asset_prices: PyReadonlyArray1<'py, f64>,
    marks: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let (u, b) = (universe.get(), book.get());
    let remap = (asset_remap.as_slice()?, market_remap.as_slice()?);
    let prices = (asset_prices.as_slice()?, marks.as_slice()?);
    let pool = &pool.get().pool;
    let cols = detached(py, || {
        let ctx = context(u, b, remap, prices)?;
        Ok(pool.install(|| portfolio::greeks(&b.inner, &ctx)))
    })?;
    let out = PyDict::new(py);
    out.set_item("account_index", cols.account.into_pyarray(py))?;
    out.set_item("underlying_index", cols.underlying.into_pyarray(py))?;
    out.set_item("delta", cols.delta.into_pyarray(py))?;
    out.set_item("gamma", cols.gamma.into_pyarray(py))?;
    out.set_item("vega", cols.vega.into_pyarray(py))?;
    out.set_item("theta", cols.theta.into_pyarray(py))?;
    Ok(out)
}
