//! The sharded cascade's two halves (crossmargin_core::cascade::step) as Python objects,
//! made by `Engine.cascade_shard` / `Engine.cascade_driver` from the same rules object as
//! `Engine.cascade`: `CascadeShard` (one partition's accounts, lives on a worker) and
//! `CascadeDriver` (the global state, lives with the client). Messages between them are dicts of numpy arrays
//! (amounts of money as lists of Python ints), so any transport that pickles can carry them.

use crossmargin_core::cascade::adl::Deleverage;
use crossmargin_core::cascade::policy::Slicing;
use crossmargin_core::cascade::step::{
    Candidates, Closes, Counterparties, Driver, Plan, Settlement, Shard, TaggedEvents,
};
use crossmargin_core::cascade::Events;
use crossmargin_core::Universe;
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::args::PricesIn;
use crate::book::PyBookView;
use crate::cascade::{book_dicts, events_into, outcome_dict, RulesIn};
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
        side: vec_of(d, "side")?,
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
/// One partition's accounts and ledger during a sharded cascade, with the rules each step
/// applies (slicing, fee, deleveraging mode).
#[pyclass(module = "crossmargin._core", name = "CascadeShard")]
pub struct PyShard {
    universe: Py<PyUniverse>,
    inner: Shard,
    slicing: Slicing,
    fee: f64,
    deleverage: Deleverage,
}

/// `Engine.cascade_shard`: the book's partition in the cascade's ledger.
pub fn shard(py: Python<'_>, universe: &Py<PyUniverse>, b: &PyBookView, rules: &RulesIn<'_>) -> PyResult<PyShard> {
    let u = &universe.get().inner;
    let remap = b.remap();
    let inner = Shard::new(b.rows(py)?, u, remap.asset, remap.market).map_err(|e| to_pyerr(py, e))?;
    let deleverage = rules.deleverage().map_err(|e| to_pyerr(py, e))?;
    Ok(PyShard { universe: universe.clone_ref(py), inner, slicing: rules.slicing(), fee: rules.fee(), deleverage })
}

impl PyShard {
    fn parts(&mut self) -> (&Universe, &mut Shard) {
        (&self.universe.get().inner, &mut self.inner)
    }
}

#[pymethods]
impl PyShard {
    #[getter]
    fn n_accounts(&self) -> usize {
        self.inner.state.n_accounts()
    }

    /// Balances + isolated margins per asset, minor units.
    fn holdings(&self) -> Vec<i128> {
        self.inner.holdings(&self.universe.get().inner)
    }

    /// Σ |balances and isolated margins| per asset, minor units.
    fn gross_holdings(&self) -> Vec<i128> {
        self.inner.gross_holdings(&self.universe.get().inner)
    }

    /// This round's liquidation candidates at `prices` (asset prices, marks).
    fn select<'py>(&mut self, py: Python<'py>, prices: PricesIn<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = prices.slices()?;
        let slicing = self.slicing;
        let (u, shard) = self.parts();
        let c = detached(py, || shard.select(u, p.asset, p.mark, &slicing))?;
        let d = PyDict::new(py);
        d.set_item("account", c.account.into_pyarray(py))?;
        d.set_item("risk", c.risk.into_pyarray(py))?;
        d.set_item("order_offsets", c.order_offsets.into_pyarray(py))?;
        d.set_item("order_market", c.order_market.into_pyarray(py))?;
        d.set_item("order_flow", c.order_flow.into_pyarray(py))?;
        Ok(d)
    }

    /// Settles the chosen candidates at the driver's fill prices.
    fn settle<'py>(
        &mut self,
        py: Python<'py>,
        prices: PricesIn<'py>,
        chosen: PyReadonlyArray1<'py, u32>,
        fill_price: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (px, c, p) = (prices.slices()?, chosen.as_slice()?, fill_price.as_slice()?);
        let fee = self.fee;
        let (u, shard) = self.parts();
        let s = detached(py, || shard.settle(u, px.asset, px.mark, c, p, fee))?;
        let d = tagged_into(py, s.events)?;
        d.set_item("piece_item", s.piece_item.into_pyarray(py))?;
        d.set_item("piece_market", s.piece_market.into_pyarray(py))?;
        d.set_item("piece_side", s.piece_side.into_pyarray(py))?;
        d.set_item("piece_usd", s.piece_usd.into_pyarray(py))?;
        d.set_item("insurance", s.insurance)?;
        d.set_item("external", s.external)?;
        Ok(d)
    }

    /// This shard's deleveraging counterparties on `market` (holders of `side`), as far as a
    /// deficit of `cover` USD reaches (`CascadeDriver.deficit()`).
    fn counterparties<'py>(
        &mut self,
        py: Python<'py>,
        prices: PricesIn<'py>,
        market: u32,
        side: f64,
        cover: f64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let p = prices.slices()?;
        let (u, shard) = self.parts();
        let c = detached(py, || shard.counterparties(u, p.asset, p.mark, market, side, cover))?;
        let d = PyDict::new(py);
        d.set_item("account", c.account.into_pyarray(py))?;
        d.set_item("local_account", c.local_account.into_pyarray(py))?;
        d.set_item("pos", c.pos.into_pyarray(py))?;
        d.set_item("upnl", c.upnl.into_pyarray(py))?;
        d.set_item("score", c.score.into_pyarray(py))?;
        Ok(d)
    }

    /// Closes the driver's share of this shard's counterparties on `market`.
    fn deleverage<'py>(
        &mut self,
        py: Python<'py>,
        prices: PricesIn<'py>,
        market: u32,
        closes: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let how = self.deleverage;
        let closes = Closes {
            local_account: vec_of(closes, "local_account")?,
            pos: vec_of(closes, "pos")?,
            share: vec_of(closes, "share")?,
            minor: ints(closes, "minor")?,
        };
        let p = prices.slices()?;
        let (u, shard) = self.parts();
        let t = detached(py, || shard.deleverage(u, p.asset, p.mark, how, market, &closes))?;
        tagged_into(py, t)
    }

    /// The shard's book now: (balances, positions) columns, universe indices, open positions
    /// only, balances as units (from the ledger).
    fn final_book<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
        let state = &self.inner.state;
        let columns = detached(py, || Ok(state.columns()))?;
        book_dicts(py, columns)
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

/// `Engine.cascade_driver`: the global state of a sharded cascade of `rules`.
pub fn driver(py: Python<'_>, u: &Universe, rules: &RulesIn<'_>) -> PyResult<PyDriver> {
    let cfg = rules.config(u).map_err(|e| to_pyerr(py, e))?;
    let d = Driver::new(u, cfg).map_err(|e| to_pyerr(py, e))?;
    Ok(PyDriver { inner: Some(d) })
}

#[pymethods]
impl PyDriver {
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

    /// Refuses to start when, for some asset, Σ |balances + isolated margins| over the shards
    /// (each shard's `gross_holdings()`) + |insurance fund| exceeds the ledger's range.
    fn check_capacity(&mut self, py: Python<'_>, gross: Vec<Vec<i128>>) -> PyResult<()> {
        let driver = self.driver()?;
        detached(py, || driver.check_capacity(&gross))
    }

    /// Σ of every holder per asset now, minor units: the shards' `holdings()`, the insurance
    /// fund and the external counterparty.
    fn totals(&mut self, py: Python<'_>, holdings: Vec<Vec<i128>>) -> PyResult<Vec<i128>> {
        let driver = self.driver()?;
        detached(py, || driver.totals(&holdings))
    }

    /// The next deficit to cover: (market, side of the counterparties, how far their ranking
    /// must reach in USD), or None.
    fn deficit(&mut self) -> PyResult<Option<(u32, f64, f64)>> {
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
        outcome_dict(py, out)
    }
}

/// Adds the two classes to `crossmargin._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyShard>()?;
    m.add_class::<PyDriver>()
}
