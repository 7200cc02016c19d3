//! The compiled universe as a Python object, built from plain tuples that
//! `crossmargin.universe` assembles from its dataclasses.

use crossmargin_core::brackets::Bracket;
use crossmargin_core::{AssetSpec, CoreError, MarketKind, MarketSpec, OptionSpec, Universe};
use pyo3::prelude::*;

use crate::errors::to_pyerr;

/// (symbol, price, weight_initial, weight_maint, liability_weight_initial,
///  liability_weight_maint, haircut_tiers, imf_factor)
type AssetTuple = (String, f64, f64, f64, f64, f64, Vec<(f64, f64)>, f64);
/// (symbol, kind, settle, underlying, mark, contract_size, inverse, brackets, imf_factor,
///  upnl_weight_initial, upnl_weight_maint[, option])
type MarketTuple =
    (String, String, String, String, f64, f64, bool, Vec<(f64, f64, f64)>, f64, f64, f64, Option<OptionTuple>);
/// (is_call, strike, expiry_years, iv, rate, im_base, im_min, mm_base)
type OptionTuple = (bool, f64, f64, f64, f64, f64, f64, f64);

/// (bound, imr, mmr, cum_initial, cum_maint)
type BracketRow = (f64, f64, f64, f64, f64);

#[pyclass(frozen, module = "crossmargin._core", name = "CompiledUniverse")]
pub struct PyUniverse {
    pub inner: Universe,
}

#[pymethods]
impl PyUniverse {
    #[new]
    #[pyo3(signature = (assets, markets, underlying_prices=None))]
    fn new(
        py: Python<'_>,
        assets: Vec<AssetTuple>,
        markets: Vec<MarketTuple>,
        underlying_prices: Option<Vec<(String, f64)>>,
    ) -> PyResult<Self> {
        let assets: Vec<AssetSpec> = assets
            .into_iter()
            .map(|(symbol, price, wi, wm, lwi, lwm, tiers, imf)| AssetSpec {
                symbol,
                price,
                weight: [wi, wm],
                liability_weight: [lwi, lwm],
                haircut_tiers: tiers,
                imf_factor: imf,
            })
            .collect();
        let mut specs = Vec::with_capacity(markets.len());
        for (symbol, kind, settle, underlying, mark, cs, inverse, brackets, imf, uwi, uwm, option) in markets {
            let kind = MarketKind::parse(&kind).ok_or_else(|| {
                to_pyerr(
                    py,
                    CoreError::config(
                        format!("markets[{symbol}].kind"),
                        format!("'{kind}' is not one of perp, future, option"),
                    ),
                )
            })?;
            specs.push(MarketSpec {
                symbol,
                kind,
                settle,
                underlying,
                mark,
                contract_size: cs,
                inverse,
                brackets: brackets.into_iter().map(|(bound, imr, mmr)| Bracket { bound, imr, mmr }).collect(),
                imf_factor: imf,
                upnl_weight: [uwi, uwm],
                option: option.map(|(call, strike, expiry, iv, rate, im_base, im_min, mm_base)| OptionSpec {
                    call,
                    strike,
                    expiry,
                    iv,
                    rate,
                    im_base,
                    im_min,
                    mm_base,
                }),
            });
        }
        let mut inner = Universe::new(&assets, &specs).map_err(|e| to_pyerr(py, e))?;
        if let Some(given) = underlying_prices.filter(|g| !g.is_empty()) {
            let mut prices = inner.underlying_price.clone();
            for (name, p) in given {
                let Some(u) = inner.underlyings.iter().position(|x| *x == name) else {
                    let field = format!("underlying_prices[{name}]");
                    return Err(to_pyerr(py, CoreError::config(field, "no market has this underlying")));
                };
                prices[u] = p;
            }
            inner = inner.with_underlying_prices(prices).map_err(|e| to_pyerr(py, e))?;
        }
        Ok(PyUniverse { inner })
    }

    #[getter]
    fn n_assets(&self) -> usize {
        self.inner.n_assets()
    }

    #[getter]
    fn n_markets(&self) -> usize {
        self.inner.n_markets()
    }

    #[getter]
    fn underlyings(&self) -> Vec<String> {
        self.inner.underlyings.clone()
    }

    /// Reference price of each underlying (USD), in `underlyings` order.
    #[getter]
    fn underlying_prices(&self) -> Vec<f64> {
        self.inner.underlying_price.clone()
    }

    /// Market index → underlying index.
    #[getter]
    fn market_underlying(&self) -> Vec<u32> {
        self.inner.markets.underlying.clone()
    }

    /// Brackets of one market with their continuity amounts:
    /// `[(bound, imr, mmr, cum_initial, cum_maint), ...]`.
    fn brackets(&self, market: usize) -> PyResult<Vec<BracketRow>> {
        if market >= self.inner.n_markets() {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!("market index {market} out of range")));
        }
        Ok(self.inner.markets.brackets.rows(market).collect())
    }
}
