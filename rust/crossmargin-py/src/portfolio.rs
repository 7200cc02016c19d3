//! Options and portfolio margin bindings: the vectorised Black-76 pricer, the compiled
//! portfolio configuration, and the conversions of the engine's portfolio / delta / hybrid
//! evaluation and greeks.

use crossmargin_core::portfolio::{self, Model, PortfolioContext};
use crossmargin_core::{black76, bsm, CoreError, PortfolioParams, Scenario, UnderlyingParams};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{fresh_margin_columns, margin_context, PricesIn};
use crate::book::PyBookView;
use crate::engine::{MarginColumnsOut, PyEngine};
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

/// The names `Model::parse` reads (exported as `_core.PORTFOLIO_MODELS`).
pub const MODEL_NAMES: [&str; 3] = ["portfolio", "delta", "hybrid"];

/// One underlying's parameters (`crossmargin.portfolio.UnderlyingPortfolio`), by attribute.
#[derive(FromPyObject)]
struct UnderlyingIn {
    scenarios: Vec<(f64, f64, f64)>,
    short_option_min: f64,
    option_contingency: f64,
    futures_offset: f64,
    delta_rate: f64,
    vol_power: f64,
    vol_relative: bool,
}

impl From<UnderlyingIn> for UnderlyingParams {
    fn from(p: UnderlyingIn) -> Self {
        UnderlyingParams {
            scenarios: p.scenarios.into_iter().map(|(price, vol, weight)| Scenario { price, vol, weight }).collect(),
            short_option_min: p.short_option_min,
            option_contingency: p.option_contingency,
            futures_offset: p.futures_offset,
            delta_rate: p.delta_rate,
            vol_power: p.vol_power,
            vol_relative: p.vol_relative,
        }
    }
}

/// The book-wide parameters (`crossmargin.portfolio.PortfolioConfig`), by attribute.
#[derive(FromPyObject)]
struct ConfigIn {
    offsets: Vec<(String, String, f64)>,
    im_factor: f64,
    hybrid_floor: f64,
}

/// Portfolio parameters validated against one compiled universe.
#[pyclass(frozen, module = "crossmargin._core", name = "CompiledPortfolio")]
pub struct PyPortfolio {
    inner: PortfolioParams,
}

#[pymethods]
impl PyPortfolio {
    /// `config`: offsets, im_factor, hybrid_floor; `underlyings`: `(name, parameters)` of
    /// each underlying that has parameters.
    #[new]
    fn new(
        py: Python<'_>,
        universe: &Bound<'_, PyUniverse>,
        config: ConfigIn,
        underlyings: Vec<(String, UnderlyingIn)>,
    ) -> PyResult<Self> {
        let per = underlyings.into_iter().map(|(name, p)| (name, UnderlyingParams::from(p))).collect();
        PortfolioParams::new(&universe.get().inner, per, config.offsets, config.im_factor, config.hybrid_floor)
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

/// The columns of [`bsm_columns`], in order.
pub const BSM_COLUMNS: [&str; 10] =
    ["price", "delta", "gamma", "vega", "theta", "rho", "carry_rho", "delta_forward", "gamma_forward", "rho_forward"];

/// The inputs of [`bsm_columns`], one tuple of equal-length arrays: spot, strike, years,
/// vol, rate, carry, call.
#[derive(FromPyObject)]
pub struct BsmIn<'py>(
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, bool>,
);

/// Generalised Black-Scholes-Merton over equal-length arrays: a dict of [`BSM_COLUMNS`].
#[pyfunction]
pub fn bsm_columns<'py>(py: Python<'py>, inputs: BsmIn<'py>) -> PyResult<Bound<'py, PyDict>> {
    let BsmIn(spot, strike, years, vol, rate, carry, call) = &inputs;
    let (s, k, t, v, r, b, c) = (
        spot.as_slice()?,
        strike.as_slice()?,
        years.as_slice()?,
        vol.as_slice()?,
        rate.as_slice()?,
        carry.as_slice()?,
        call.as_slice()?,
    );
    let n = s.len();
    if [k.len(), t.len(), v.len(), r.len(), b.len(), c.len()].iter().any(|&m| m != n) {
        return Err(pyo3::exceptions::PyValueError::new_err("bsm: inputs must have equal lengths"));
    }
    let out = detached(py, || {
        let mut cols: Vec<Vec<f64>> = vec![vec![0.0; n]; BSM_COLUMNS.len()];
        for i in 0..n {
            let g = bsm(s[i], k[i], t[i], v[i], r[i], b[i], c[i]);
            let row = [
                g.price,
                g.delta,
                g.gamma,
                g.vega,
                g.theta,
                g.rho,
                g.carry_rho,
                g.delta_forward,
                g.gamma_forward,
                g.rho_forward,
            ];
            for (col, x) in cols.iter_mut().zip(row) {
                col[i] = x;
            }
        }
        Ok::<_, CoreError>(cols)
    })?;
    let d = PyDict::new(py);
    for (name, col) in BSM_COLUMNS.into_iter().zip(out) {
        d.set_item(name, col.into_pyarray(py))?;
    }
    Ok(d)
}

/// Portfolio, delta or hybrid evaluation of every account: the MarginResult columns.
pub fn evaluate<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
    portfolio: &PyPortfolio,
    model: &str,
    out: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let Some(model) = Model::parse(model) else {
        let msg = format!("'{model}' is not one of {}", MODEL_NAMES.join(", "));
        return Err(to_pyerr(py, CoreError::config("model", msg)));
    };
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let params = &portfolio.inner;
    let rows = b.rows(py)?;
    let dict = match out {
        Some(dict) => dict,
        None => fresh_margin_columns(py, rows.n_accounts())?,
    };
    {
        let mut margin = MarginColumnsOut::of(&dict)?;
        let cols = margin.as_mut()?;
        detached(py, || {
            let pc = PortfolioContext::new(ctx, params)?;
            e.install(|| portfolio::evaluate_into(rows, &pc, model, cols))
        })?;
    }
    Ok(dict)
}

/// Greeks per account × underlying: dense account index, underlying index and the greeks.
pub fn greeks<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
) -> PyResult<Bound<'py, PyDict>> {
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let rows = b.rows(py)?;
    let cols = detached(py, || Ok(e.install(|| portfolio::greeks(rows, &ctx))))?;
    let out = PyDict::new(py);
    out.set_item("account_index", cols.account.into_pyarray(py))?;
    out.set_item("underlying_index", cols.underlying.into_pyarray(py))?;
    out.set_item("delta", cols.delta.into_pyarray(py))?;
    out.set_item("gamma", cols.gamma.into_pyarray(py))?;
    out.set_item("vega", cols.vega.into_pyarray(py))?;
    out.set_item("theta", cols.theta.into_pyarray(py))?;
    out.set_item("rho", cols.rho.into_pyarray(py))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_name_parses() {
        for name in MODEL_NAMES {
            assert!(Model::parse(name).is_some(), "{name}");
        }
    }
}
