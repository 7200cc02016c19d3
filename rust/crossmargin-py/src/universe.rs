//! The compiled universe as a Python object. Specs are read by attribute from the frozen
//! dataclasses of `crossmargin.universe` (`Asset`, `Market`); the values the dataclasses do
//! not hold as numbers (each market's reference mark, an option's expiry in years) come
//! alongside, one per market.

use std::collections::HashMap;

use crossmargin_core::brackets::{Bracket, Shape};
use crossmargin_core::fixed::{BorrowRounding, FixedSpec, FixedUniverse};
use crossmargin_core::orders::OrderRule;
use crossmargin_core::{AssetSpec, Basis, CoreError, MarketKind, MarketRules, MarketSpec, OptionSpec, Universe};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_pyerr;

/// The market kinds the core knows, in the order of `MarketKind` (exported as
/// `_core.MARKET_KINDS`).
pub const MARKET_KINDS: [MarketKind; 3] = [MarketKind::Perp, MarketKind::Future, MarketKind::Option];

/// A market kind's name (the inverse of `MarketKind::parse`); exhaustive, so a new kind
/// does not compile until it has a name here.
pub fn kind_name(kind: MarketKind) -> &'static str {
    match kind {
        MarketKind::Perp => "perp",
        MarketKind::Future => "future",
        MarketKind::Option => "option",
    }
}

/// A collateral asset, read by attribute (`crossmargin.universe.Asset`).
#[derive(FromPyObject)]
struct AssetIn {
    symbol: String,
    price: f64,
    weight_initial: f64,
    weight_maint: f64,
    liability_weight_initial: f64,
    liability_weight_maint: f64,
    haircut_tiers: Option<Vec<(f64, f64)>>,
    imf_factor: f64,
    scale_initial_weight_start: f64,
    total_deposits: f64,
    bid: Option<f64>,
    ask: Option<f64>,
}

impl From<AssetIn> for AssetSpec {
    fn from(a: AssetIn) -> Self {
        // One side given: the other is the price.
        let bid_ask =
            (a.bid.is_some() || a.ask.is_some()).then(|| (a.bid.unwrap_or(a.price), a.ask.unwrap_or(a.price)));
        AssetSpec {
            symbol: a.symbol,
            price: a.price,
            weight: [a.weight_initial, a.weight_maint],
            liability_weight: [a.liability_weight_initial, a.liability_weight_maint],
            haircut_tiers: a.haircut_tiers.unwrap_or_default(),
            imf_factor: a.imf_factor,
            scale_initial_weight_start: a.scale_initial_weight_start,
            total_deposits: a.total_deposits,
            bid_ask,
        }
    }
}

/// The requirement shapes by name (exported as `_core.REQUIREMENT_SHAPES`).
pub fn shape_names() -> Vec<&'static str> {
    Shape::NAMES.iter().map(|(n, _)| *n).collect()
}

/// The valuation bases by name (exported as `_core.VALUATION_BASES`).
pub fn basis_names() -> Vec<&'static str> {
    Basis::NAMES.iter().map(|(n, _)| *n).collect()
}

fn parse_named<T>(
    value: &str,
    field: String,
    parse: impl Fn(&str) -> Option<T>,
    names: &[&str],
) -> Result<T, CoreError> {
    parse(value).ok_or_else(|| CoreError::config(field, format!("'{value}' is not one of {}", names.join(", "))))
}

/// A market, read by attribute (`crossmargin.universe.Market`); its mark and an option's
/// expiry come separately (see [`PyUniverse::new`]).
#[derive(FromPyObject)]
struct MarketIn {
    symbol: String,
    kind: String,
    settle: String,
    underlying: String,
    contract_size: f64,
    inverse: bool,
    brackets: Vec<(f64, f64, f64)>,
    imf_factor: f64,
    upnl_weight_initial: f64,
    upnl_weight_maint: f64,
    upnl_imf_factor: f64,
    upnl_cap_initial: f64,
    option_type: Option<String>,
    strike: Option<f64>,
    iv: Option<f64>,
    rate: f64,
    im_base: f64,
    im_min: f64,
    mm_base: f64,
    order_value: String,
    order_open_loss: bool,
    order_fee_rate: f64,
    order_margin_per_order: f64,
    im_shape: String,
    mm_shape: String,
    rate_slope_initial: f64,
    rate_slope_maint: f64,
    maint_basis: String,
    liquidation_fee: f64,
}

impl MarketIn {
    fn spec(self, mark: f64, expiry_years: Option<f64>) -> Result<MarketSpec, CoreError> {
        let kind = MarketKind::parse(&self.kind).ok_or_else(|| {
            let names: Vec<&str> = MARKET_KINDS.iter().map(|&k| kind_name(k)).collect();
            CoreError::config(
                format!("markets[{}].kind", self.symbol),
                format!("'{}' is not one of {}", self.kind, names.join(", ")),
            )
        })?;
        let at_mark = match self.order_value.as_str() {
            "limit" => false,
            "mark" => true,
            other => {
                return Err(CoreError::config(
                    format!("markets[{}].order_value", self.symbol),
                    format!("'{other}' is not one of limit, mark"),
                ))
            }
        };
        let orders = OrderRule {
            at_mark,
            open_loss: self.order_open_loss,
            fee_rate: self.order_fee_rate,
            per_order: self.order_margin_per_order,
        };
        let f = format!("markets[{}]", self.symbol);
        let shapes = shape_names();
        let shape = [
            parse_named(&self.im_shape, format!("{f}.im_shape"), Shape::parse, &shapes)?,
            parse_named(&self.mm_shape, format!("{f}.mm_shape"), Shape::parse, &shapes)?,
        ];
        let maint_basis = parse_named(&self.maint_basis, format!("{f}.maint_basis"), Basis::parse, &basis_names())?;
        let rules = MarketRules {
            shape,
            rate_slope: [self.rate_slope_initial, self.rate_slope_maint],
            maint_basis,
            liquidation_fee: self.liquidation_fee,
        };
        // Missing option terms become NaN: the core names the field.
        let option = (kind == MarketKind::Option).then(|| OptionSpec {
            call: self.option_type.as_deref() == Some("call"),
            strike: self.strike.unwrap_or(f64::NAN),
            expiry: expiry_years.unwrap_or(f64::NAN),
            iv: self.iv.unwrap_or(f64::NAN),
            rate: self.rate,
            im_base: self.im_base,
            im_min: self.im_min,
            mm_base: self.mm_base,
        });
        Ok(MarketSpec {
            symbol: self.symbol,
            kind,
            settle: self.settle,
            underlying: self.underlying,
            mark,
            contract_size: self.contract_size,
            inverse: self.inverse,
            brackets: self.brackets.into_iter().map(|(bound, imr, mmr)| Bracket { bound, imr, mmr }).collect(),
            imf_factor: self.imf_factor,
            upnl_weight: [self.upnl_weight_initial, self.upnl_weight_maint],
            upnl_imf_factor: self.upnl_imf_factor,
            upnl_cap_initial: self.upnl_cap_initial,
            option,
            orders,
            rules,
        })
    }
}

/// A fixed-point declaration, read by attribute (`crossmargin.universe.FixedPoint`).
#[derive(FromPyObject)]
struct FixedIn {
    value_decimals: u32,
    price_decimals: u32,
    weight_decimals: u32,
    size_decimals: u32,
    imf_decimals: u32,
    asset_decimals: HashMap<String, u32>,
    borrow_rounding: String,
}

impl FixedIn {
    fn spec(self, u: &Universe) -> Result<FixedSpec, CoreError> {
        let borrow_rounding = match self.borrow_rounding.as_str() {
            "up" => BorrowRounding::Up,
            "down" => BorrowRounding::Down,
            other => {
                return Err(CoreError::config(
                    "arithmetic.borrow_rounding",
                    format!("'{other}' is not one of up, down"),
                ))
            }
        };
        if let Some(s) = self.asset_decimals.keys().find(|s| !u.assets.symbol.contains(s)) {
            return Err(CoreError::config(format!("arithmetic.asset_decimals[{s}]"), "unknown asset"));
        }
        let asset_decimals = u
            .assets
            .symbol
            .iter()
            .map(|s| {
                self.asset_decimals.get(s).copied().ok_or_else(|| {
                    CoreError::config(
                        format!("arithmetic.asset_decimals[{s}]"),
                        "missing: every asset needs its token unit",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FixedSpec {
            value_decimals: self.value_decimals,
            price_decimals: self.price_decimals,
            weight_decimals: self.weight_decimals,
            size_decimals: self.size_decimals,
            imf_decimals: self.imf_decimals,
            asset_decimals,
            borrow_rounding,
        })
    }
}

/// (bound, imr, mmr, cum_initial, cum_maint)
type BracketRow = (f64, f64, f64, f64, f64);

#[pyclass(frozen, module = "crossmargin._core", name = "CompiledUniverse")]
pub struct PyUniverse {
    pub inner: Universe,
    /// The fixed-point form when the universe declares fixed-point arithmetic.
    pub fixed: Option<FixedUniverse>,
}

#[pymethods]
impl PyUniverse {
    /// `assets` / `markets`: objects with the fields of `crossmargin.Asset` / `Market`;
    /// `marks`: each market's reference mark (an option without a mark: its model value);
    /// `expiry_years`: each market's years to expiry (None for perps and futures);
    /// `underlying_prices`: reference prices of underlyings, by name; `arithmetic`: an object
    /// with the fields of `crossmargin.FixedPoint`, or None for float64.
    #[new]
    #[pyo3(signature = (assets, markets, marks, expiry_years, underlying_prices=None, arithmetic=None))]
    fn new(
        py: Python<'_>,
        assets: Vec<AssetIn>,
        markets: Vec<MarketIn>,
        marks: Vec<f64>,
        expiry_years: Vec<Option<f64>>,
        underlying_prices: Option<&Bound<'_, PyDict>>,
        arithmetic: Option<FixedIn>,
    ) -> PyResult<Self> {
        let n = markets.len();
        if marks.len() != n || expiry_years.len() != n {
            let e = CoreError::config(
                "markets",
                format!("{} marks and {} expiries given for {n} markets", marks.len(), expiry_years.len()),
            );
            return Err(to_pyerr(py, e));
        }
        let assets: Vec<AssetSpec> = assets.into_iter().map(AssetSpec::from).collect();
        let specs = markets
            .into_iter()
            .zip(marks)
            .zip(expiry_years)
            .map(|((m, mark), years)| m.spec(mark, years))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| to_pyerr(py, e))?;
        let mut inner = Universe::new(&assets, &specs).map_err(|e| to_pyerr(py, e))?;
        if let Some(given) = underlying_prices.filter(|g| !g.is_empty()) {
            let mut prices = inner.underlying_price.clone();
            for (name, p) in given.iter() {
                let (name, p): (String, f64) = (name.extract()?, p.extract()?);
                let Some(u) = inner.underlyings.iter().position(|x| *x == name) else {
                    let field = format!("underlying_prices[{name}]");
                    return Err(to_pyerr(py, CoreError::config(field, "no market has this underlying")));
                };
                prices[u] = p;
            }
            inner = inner.with_underlying_prices(prices).map_err(|e| to_pyerr(py, e))?;
        }
        let fixed = match arithmetic {
            Some(a) => {
                Some(a.spec(&inner).and_then(|spec| FixedUniverse::new(&inner, spec)).map_err(|e| to_pyerr(py, e))?)
            }
            None => None,
        };
        Ok(PyUniverse { inner, fixed })
    }

    /// Whether the universe evaluates in fixed-point arithmetic.
    #[getter]
    fn is_fixed_point(&self) -> bool {
        self.fixed.is_some()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_name_parses_back() {
        for k in MARKET_KINDS {
            assert_eq!(MarketKind::parse(kind_name(k)), Some(k));
        }
    }
}
