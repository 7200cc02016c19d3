//! SPAN bindings: the compiled SPAN tables (`crossmargin.span.SpanConfig`, read by
//! attribute) and the conversion of the engine's SPAN evaluation.

use crossmargin_core::span::{
    self, CommodityInput, ContractInput, InterInput, InterMethod, IntraInput, LegInput, SpanContext,
};
use crossmargin_core::{CoreError, SpanParams};
use numpy::IntoPyArray;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{margin_columns_dict, margin_context, PricesIn};
use crate::book::PyBookView;
use crate::engine::PyEngine;
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

/// `crossmargin.span.CombinedCommodity`, by attribute.
#[derive(FromPyObject)]
struct CommodityIn {
    name: String,
    price_scan: f64,
    vol_scan: f64,
    extreme_multiple: f64,
    cover: f64,
    som_rate: f64,
    im_ratio: f64,
    spot_tier: Option<u32>,
    spot_spread_rate: f64,
    spot_outright_rate: f64,
}

/// `crossmargin.span.Contract`, by attribute.
#[derive(FromPyObject)]
struct ContractIn {
    market: String,
    combined_commodity: String,
    tier: u32,
    risk_array: Option<Vec<f64>>,
    delta: Option<f64>,
}

/// `crossmargin.span.IntraSpread`, by attribute; legs are `(tier, ratio, side_a)`.
#[derive(FromPyObject)]
struct IntraIn {
    combined_commodity: String,
    rate: f64,
    legs: Vec<(u32, f64, bool)>,
}

/// `crossmargin.span.InterSpread`, by attribute; legs are `(combined_commodity, ratio,
/// side_a)`, method "wpr" or "scan".
#[derive(FromPyObject)]
struct InterIn {
    rate: f64,
    legs: Vec<(String, f64, bool)>,
    method: String,
}

/// SPAN tables validated against one compiled universe.
#[pyclass(frozen, module = "crossmargin._core", name = "CompiledSpan")]
pub struct PySpan {
    inner: SpanParams,
}

#[pymethods]
impl PySpan {
    #[new]
    fn new(
        py: Python<'_>,
        universe: &Bound<'_, PyUniverse>,
        commodities: Vec<CommodityIn>,
        contracts: Vec<ContractIn>,
        intra: Vec<IntraIn>,
        inter: Vec<InterIn>,
    ) -> PyResult<Self> {
        let commodities = commodities
            .into_iter()
            .map(|c| CommodityInput {
                name: c.name,
                price_scan: c.price_scan,
                vol_scan: c.vol_scan,
                extreme_multiple: c.extreme_multiple,
                cover: c.cover,
                som_rate: c.som_rate,
                im_ratio: c.im_ratio,
                spot_tier: c.spot_tier,
                spot_spread_rate: c.spot_spread_rate,
                spot_outright_rate: c.spot_outright_rate,
            })
            .collect();
        let contracts = contracts
            .into_iter()
            .map(|c| ContractInput {
                market: c.market,
                commodity: c.combined_commodity,
                tier: c.tier,
                risk_array: c.risk_array,
                delta: c.delta,
            })
            .collect();
        let leg = |(on, ratio, side_a)| LegInput { on, ratio, side_a };
        let intra = intra
            .into_iter()
            .map(|s| IntraInput {
                commodity: s.combined_commodity,
                rate: s.rate,
                legs: s.legs.into_iter().map(leg).collect(),
            })
            .collect();
        let mut inter_in = Vec::with_capacity(inter.len());
        for (row, s) in inter.into_iter().enumerate() {
            let Some(method) = InterMethod::parse(&s.method) else {
                let msg = format!("'{}' is not one of {}", s.method, InterMethod::NAMES.join(", "));
                return Err(to_pyerr(py, CoreError::config(format!("span.inter[{row}].method"), msg)));
            };
            inter_in.push(InterInput {
                rate: s.rate,
                legs: s.legs.into_iter().map(|(on, ratio, side_a)| LegInput { on, ratio, side_a }).collect(),
                method,
            });
        }
        let inter = inter_in;
        SpanParams::new(&universe.get().inner, commodities, contracts, intra, inter)
            .map(|inner| PySpan { inner })
            .map_err(|e| to_pyerr(py, e))
    }

    /// The combined commodities' names, in index order.
    #[getter]
    fn commodities(&self) -> Vec<String> {
        self.inner.commodities.iter().map(|c| c.name.clone()).collect()
    }
}

/// SPAN of every account: the MarginResult columns and, with `detail`, the per-commodity
/// rows under `commodity_*` keys.
pub fn evaluate<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
    params: &PySpan,
    detail: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let params = &params.inner;
    let book_rows = b.rows(py)?;
    let (cols, rows) = detached(py, || {
        let sc = SpanContext::new(ctx, params)?;
        Ok(e.install(|| span::evaluate(book_rows, &sc, detail)))
    })?;
    let out = margin_columns_dict(py, cols)?;
    out.set_item("commodity_account_index", rows.account.into_pyarray(py))?;
    out.set_item("commodity_index", rows.commodity.into_pyarray(py))?;
    for (name, col) in [
        ("scan", rows.scan),
        ("intra", rows.intra),
        ("spot", rows.spot),
        ("inter", rows.inter),
        ("som", rows.som),
        ("risk", rows.risk),
        ("initial", rows.initial),
        ("nov", rows.nov),
    ] {
        out.set_item(format!("commodity_{name}"), col.into_pyarray(py))?;
    }
    Ok(out)
}
