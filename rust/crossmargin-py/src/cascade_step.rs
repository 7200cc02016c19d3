//! The sharded cascade's two halves (crossmargin_core::cascade::step) as Python objects:
//! `CascadeShard` (one partition's accounts, lives on a worker) and `CascadeDriver` (the
//! global state, lives with the client). Messages between them are dicts of numpy arrays
//! (amounts of money as lists of Python ints), so any transport that pickles can carry them.

use crossmargin_core::cascade::policy::Slicing;
use crossmargin_core::cascade::step::{
    Candidates, Closes, Counterparties, Driver, Plan, Settlement, Shard, TaggedEvents,
};
use crossmargin_core::cascade::Events;
use crossmargin_core::Universe;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::book::PyBook;
use crate::cascade::{book_dicts, cascade_config, deleverage_mode, events_into, rounds_dict};
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

// ---- message conversion -------------------------------------------------------------------
fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?.ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(format!("message lacks '{key}'")))
}

fn vec_of<T: numpy::Element + Copy>(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<T>> {
    let a: PyReadonlyArray1<'_, T> = item(d, key)?.extract()?;
    Ok(a.as_array().to_vec())
}

fn ints(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<i128>> {
    item(d, key)?.extract()
}

fn events_from(d: &Bound<'_, PyDict>) -> PyResult<Events> {
    Ok(Events {
        round: vec_of(d, "round")?,
        step: vec_of(d, "step")?,
        account: vec_of(d, "account")?,
        market: vec_of(d, "market")?,
        qty: vec_of(d, "qty")?,
        price: vec_of(d, "price")?,
        notional_usd: vec_of(d, "notional_usd")?,
        fee_usd: vec_of(d, "fee_usd")?,
        bad_debt_usd: vec_of(d, "bad_debt_usd")?,
        kind: vec_of(d, "kind")?,
    })
}

fn tagged_into<'py>(py: Python<'py>, t: TaggedEvents) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("item", t.item.into_pyarray(py))?;
    events_into(py, &d, t.events)?;
    Ok(d)
}

fn tagged_from(d: &Bound<'_, PyDict>) -> PyResult<TaggedEvents> {
    Ok(TaggedEvents { item: vec_of(d, "item")?, events: events_from(d)? })
}

fn dicts<'py>(list: &Bound<'py, PyList>) -> PyResult<Vec<Bound<'py, PyDict>>> {
    list.iter().map(|x| x.cast_into::<PyDict>().map_err(PyErr::from)).collect()
}

// ---- the shard ----------------------------------------------------------------------------
/// One partition's accounts and ledger during a sharded cascade.
#[pyclass(module = "crossmargin._core", name = "CascadeShard")]
pub struct PyShard {
    u: Universe,
    inner: Shard,
}

#[pymethods]
impl PyShard {
    #[new]
    fn new(
        py: Python<'_>,
        universe: &Bound<'_, PyUniverse>,
        book: &Bound<'_, PyBook>,
        asset_remap: PyReadonlyArray1<'_, u32>,
        market_remap: PyReadonlyArray1<'_, u32>,
    ) -> PyResult<Self> {
        let (u, b) = (&universe.get().inner, &book.get().inner);
        let inner = Shard::new(b, u, asset_remap.as_slice()?, market_remap.as_slice()?).map_err(|e| to_pyerr(py, e))?;
        Ok(PyShard { u: u.clone(), inner })
    }

    #[getter]
    fn n_accounts(&self) -> usize {
        self.inner.state.n_accounts()
    }

    /// Balances + isolated margins per asset, minor units.
    fn holdings(&self) -> Vec<i128> {
        self.inner.holdings(&self.u)
    }

    /// Σ |balances and isolated margins| per asset, minor units.
    fn gross_holdings(&self) -> Vec<i128> {
        self.inner.gross_holdings(&self.u)
    }

    fn select<'py>(
        &mut self,
        py: Python<'py>,
        assets: PyReadonlyArray1<'py, f64>,
        marks: PyReadonlyArray1<'py, f64>,
        partial_fraction: f64,
        target_margin_ratio: f64,
        min_notional: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (a, m) = (assets.as_slice()?, marks.as_slice()?);
        let slicing = Slicing { fraction: partial_fraction, target_ratio: target_margin_ratio, min_notional };
        let (u, shard) = (&self.u, &mut self.inner);
        let c = detached(py, || shard.select(u, a, m, &slicing))?;
        let d = PyDict::new(py);
        d.set_item("account", c.account.into_pyarray(py))?;
        d.set_item("risk", c.risk.into_pyarray(py))?;
        d.set_item("order_offsets", c.order_offsets.into_pyarray(py))?;
        d.set_item("order_market", c.order_market.into_pyarray(py))?;
        d.set_item("order_flow", c.order_flow.into_pyarray(py))?;
        Ok(d)
    }

    fn settle<'py>(
        &mut self,
        py: Python<'py>,
        assets: PyReadonlyArray1<'py, f64>,
        marks: PyReadonlyArray1<'py, f64>,
        chosen: PyReadonlyArray1<'py, u32>,
        fill_price: PyReadonlyArray1<'py, f64>,
        fee_rate: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (a, m, c, p) = (assets.as_slice()?, marks.as_slice()?, chosen.as_slice()?, fill_price.as_slice()?);
        let (u, shard) = (&self.u, &mut self.inner);
        let s = detached(py, || shard.settle(u, a, m, c, p, fee_rate))?;
        let d = tagged_into(py, s.events)?;
        d.set_item("piece_item", s.piece_item.into_pyarray(py))?;
        d.set_item("piece_market", s.piece_market.into_pyarray(py))?;
        d.set_item("piece_side", s.piece_side.into_pyarray(py))?;
        d.set_item("piece_usd", s.piece_usd.into_pyarray(py))?;
        d.set_item("insurance", s.insurance)?;
        d.set_item("external", s.external)?;
        Ok(d)
    }

    fn counterparties<'py>(
        &self,
        py: Python<'py>,
        assets: PyReadonlyArray1<'py, f64>,
        marks: PyReadonlyArray1<'py, f64>,
        market: u32,
        side: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (a, m) = (assets.as_slice()?, marks.as_slice()?);
        let (u, shard) = (&self.u, &self.inner);
        let c = detached(py, || shard.counterparties(u, a, m, market, side))?;
        let d = PyDict::new(py);
        d.set_item("account", c.account.into_pyarray(py))?;
        d.set_item("local_account", c.local_account.into_pyarray(py))?;
        d.set_item("pos", c.pos.into_pyarray(py))?;
        d.set_item("upnl", c.upnl.into_pyarray(py))?;
        d.set_item("score", c.score.into_pyarray(py))?;
        Ok(d)
    }

    fn deleverage<'py>(
        &mut self,
        py: Python<'py>,
        assets: PyReadonlyArray1<'py, f64>,
        marks: PyReadonlyArray1<'py, f64>,
        how: &str,
        market: u32,
        closes: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let how = deleverage_mode(how).map_err(|e| to_pyerr(py, e))?;
        let closes = Closes {
            local_account: vec_of(closes, "local_account")?,
            pos: vec_of(closes, "pos")?,
            share: vec_of(closes, "share")?,
            minor: ints(closes, "minor")?,
        };
        let (a, m) = (assets.as_slice()?, marks.as_slice()?);
        let (u, shard) = (&self.u, &mut self.inner);
        let t = detached(py, || shard.deleverage(u, a, m, how, market, &closes))?;
        tagged_into(py, t)
    }

    /// The shard's book now: (balances, positions) columns, universe indices, open positions
    /// only, balances as units (from the ledger).
    fn final_book<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        book_dicts(py, &self.inner.state)
    }
}

// ---- the driver ---------------------------------------------------------------------------
/// The global side of a sharded cascade (prices, priority, liquidity, fund, deleveraging).
#[pyclass(module = "crossmargin._core", name = "CascadeDriver")]
pub struct PyDriver {
    inner: Option<Driver>,
}

impl PyDriver {
    fn driver(&mut self) -> PyResult<&mut Driver> {
        self.inner.as_mut().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the cascade driver has finished"))
    }
}

/// A price vector handed to Python.
type Prices<'py> = Bound<'py, numpy::PyArray1<f64>>;

#[pymethods]
impl PyDriver {
    /// Same arguments as `run_cascade`, without the pool, the book and its remaps.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        universe: &Bound<'_, PyUniverse>,
        step_asset_prices: PyReadonlyArray2<'_, f64>,
        step_marks: PyReadonlyArray2<'_, f64>,
        liquidity_models: Vec<(String, Vec<f64>)>,
        decay: f64,
        liquidation_fee: f64,
        partial_fraction: f64,
        target_margin_ratio: f64,
        min_notional: f64,
        max_rounds: usize,
        max_liquidations_per_round: usize,
        deleverage: &str,
        insurance_fund: Vec<f64>,
    ) -> PyResult<Self> {
        let u = &universe.get().inner;
        let cfg = cascade_config(
            py,
            u,
            &step_asset_prices,
            &step_marks,
            &liquidity_models,
            (decay, liquidation_fee),
            Slicing { fraction: partial_fraction, target_ratio: target_margin_ratio, min_notional },
            (max_rounds, max_liquidations_per_round),
            deleverage,
            insurance_fund,
        )?;
        let d = Driver::new(u, cfg).map_err(|e| to_pyerr(py, e))?;
        Ok(PyDriver { inner: Some(d) })
    }

    /// (asset prices, marks) of the round about to run.
    fn round_prices<'py>(&mut self, py: Python<'py>) -> PyResult<(Prices<'py>, Prices<'py>)> {
        let (a, m) = self.driver()?.round_prices();
        Ok((a.into_pyarray(py), m.into_pyarray(py)))
    }

    /// Candidates of every shard → ("next_step" | "done", None, None) or
    /// ("settle", [chosen per shard], fill prices).
    #[allow(clippy::type_complexity)]
    fn plan<'py>(
        &mut self,
        py: Python<'py>,
        candidates: &Bound<'py, PyList>,
    ) -> PyResult<(&'static str, Option<Vec<Bound<'py, numpy::PyArray1<u32>>>>, Option<Bound<'py, numpy::PyArray1<f64>>>)>
    {
        let mut shards = Vec::new();
        for d in dicts(candidates)? {
            shards.push(Candidates {
                account: vec_of(&d, "account")?,
                risk: vec_of(&d, "risk")?,
                order_offsets: vec_of(&d, "order_offsets")?,
                order_market: vec_of(&d, "order_market")?,
                order_flow: vec_of(&d, "order_flow")?,
            });
        }
        let driver = self.driver()?;
        match detached(py, || driver.plan(&shards))? {
            Plan::NextStep => Ok(("next_step", None, None)),
            Plan::Done => Ok(("done", None, None)),
            Plan::Settle { chosen, fill_price } => Ok((
                "settle",
                Some(chosen.into_iter().map(|c| c.into_pyarray(py)).collect()),
                Some(fill_price.into_pyarray(py)),
            )),
        }
    }

    fn settled(&mut self, py: Python<'_>, settlements: &Bound<'_, PyList>) -> PyResult<()> {
        let mut all = Vec::new();
        for d in dicts(settlements)? {
            all.push(Settlement {
                events: tagged_from(&d)?,
                piece_item: vec_of(&d, "piece_item")?,
                piece_market: vec_of(&d, "piece_market")?,
                piece_side: vec_of(&d, "piece_side")?,
                piece_usd: vec_of(&d, "piece_usd")?,
                insurance: ints(&d, "insurance")?,
                external: ints(&d, "external")?,
            });
        }
        let driver = self.driver()?;
        detached(py, || driver.settled(&all))
    }

    /// (insurance fund, external counterparty) per asset now, minor units.
    fn pools(&mut self) -> PyResult<(Vec<i128>, Vec<i128>)> {
        let p = self.driver()?.pools();
        Ok((p.insurance.clone(), p.external.clone()))
    }

    /// The next deficit to cover: (market, side of the counterparties), or None.
    fn deficit(&mut self) -> PyResult<Option<(u32, f64)>> {
        Ok(self.driver()?.deficit())
    }

    fn plan_deleverage<'py>(
        &mut self,
        py: Python<'py>,
        counterparties: &Bound<'py, PyList>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let mut all = Vec::new();
        for d in dicts(counterparties)? {
            all.push(Counterparties {
                account: vec_of(&d, "account")?,
                local_account: vec_of(&d, "local_account")?,
                pos: vec_of(&d, "pos")?,
                upnl: vec_of(&d, "upnl")?,
                score: vec_of(&d, "score")?,
            });
        }
        let driver = self.driver()?;
        let closes = detached(py, || driver.plan_deleverage(&all))?;
        closes
            .into_iter()
            .map(|c| {
                let d = PyDict::new(py);
                d.set_item("local_account", c.local_account.into_pyarray(py))?;
                d.set_item("pos", c.pos.into_pyarray(py))?;
                d.set_item("share", c.share.into_pyarray(py))?;
                d.set_item("minor", c.minor)?;
                Ok(d)
            })
            .collect()
    }

    fn deleveraged(&mut self, py: Python<'_>, results: &Bound<'_, PyList>) -> PyResult<()> {
        let all = dicts(results)?.iter().map(tagged_from).collect::<PyResult<Vec<_>>>()?;
        let driver = self.driver()?;
        detached(py, || driver.deleveraged(&all))
    }

    fn end_round(&mut self, py: Python<'_>) -> PyResult<()> {
        let driver = self.driver()?;
        detached(py, || {
            driver.end_round();
            Ok(())
        })
    }

    /// The event log, round table, pools and totals (the driver cannot be used after).
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out =
            self.inner.take().ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("finished twice"))?.finish();
        let d = PyDict::new(py);
        let events = PyDict::new(py);
        events_into(py, &events, out.events)?;
        d.set_item("events", events)?;
        d.set_item("rounds", rounds_dict(py, out.rounds, out.final_marks.len())?)?;
        d.set_item("insurance_minor", out.pools.insurance)?;
        d.set_item("external_minor", out.pools.external)?;
        d.set_item("final_asset_prices", out.final_asset_prices.into_pyarray(py))?;
        d.set_item("final_marks", out.final_marks.into_pyarray(py))?;
        d.set_item("bad_debt_usd", out.bad_debt_usd)?;
        d.set_item("fees_usd", out.fees_usd)?;
        d.set_item("truncated_steps", out.truncated_steps)?;
        Ok(d)
    }
}

/// Adds the two classes to `crossmargin._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShard>()?;
    m.add_class::<PyDriver>()
}
