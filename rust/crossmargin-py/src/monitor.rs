//! `_core.Monitor`: the core's resident monitor behind a lock (docs/MODEL.md "Live
//! monitoring"). Changes cross as flat columns with universe indices, prices as one pair of
//! arrays; work runs on the engine's pool without the GIL. The core checks a change whole
//! before applying any of it, so a raised error leaves the monitor as it was.

use std::sync::Mutex;

use crossmargin_core::book::{BalanceInput, GroupedBook, OrderInput, PositionInput};
use crossmargin_core::monitor::{Changes, Crossing, Levels, Log, Monitor};
use crossmargin_core::{AccountMargin, CoreError, MarginColumns};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{margin_columns_dict, PricesIn};
use crate::book::PyBookView;
use crate::engine::PyEngine;
use crate::errors::{detached, to_pyerr};
use crate::universe::PyUniverse;

type Dict<'py> = PyResult<Bound<'py, PyDict>>;

/// A fill's outcome (qty, entry, realised, cash, isolated) and its crossings.
type Filled<'py> = PyResult<((f64, f64, f64, f64, f64), Bound<'py, PyDict>)>;

/// One change's rows (`crossmargin.monitor`): universe indices, read by column name.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ChangesIn<'py> {
    bal_account: PyReadonlyArray1<'py, i64>,
    bal_asset: PyReadonlyArray1<'py, u32>,
    bal_qty: PyReadonlyArray1<'py, f64>,
    pos_account: PyReadonlyArray1<'py, i64>,
    pos_market: PyReadonlyArray1<'py, u32>,
    pos_qty: PyReadonlyArray1<'py, f64>,
    pos_entry_price: PyReadonlyArray1<'py, f64>,
    pos_isolated_margin: PyReadonlyArray1<'py, f64>,
    pos_side: PyReadonlyArray1<'py, u8>,
    ord_account: PyReadonlyArray1<'py, i64>,
    ord_market: PyReadonlyArray1<'py, u32>,
    ord_side: PyReadonlyArray1<'py, u8>,
    ord_qty: PyReadonlyArray1<'py, f64>,
    ord_price: PyReadonlyArray1<'py, f64>,
    ord_reduce_only: PyReadonlyArray1<'py, bool>,
    clear_account: PyReadonlyArray1<'py, i64>,
    clear_market: PyReadonlyArray1<'py, u32>,
}

/// The log's columns, read by name.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct LogIn<'py> {
    seq: PyReadonlyArray1<'py, u64>,
    kind: PyReadonlyArray1<'py, u8>,
    account: PyReadonlyArray1<'py, i64>,
    symbol: PyReadonlyArray1<'py, u32>,
    side: PyReadonlyArray1<'py, u8>,
    qty: PyReadonlyArray1<'py, f64>,
    price: PyReadonlyArray1<'py, f64>,
    isolated_margin: PyReadonlyArray1<'py, f64>,
    reduce_only: PyReadonlyArray1<'py, bool>,
    pnl: PyReadonlyArray1<'py, f64>,
    previous: PyReadonlyArray1<'py, u8>,
    level: PyReadonlyArray1<'py, u8>,
    ratio_before: PyReadonlyArray1<'py, f64>,
    ratio_after: PyReadonlyArray1<'py, f64>,
}

impl LogIn<'_> {
    fn to_log(&self) -> PyResult<Log> {
        Ok(Log {
            seq: self.seq.as_slice()?.to_vec(),
            kind: self.kind.as_slice()?.to_vec(),
            account: self.account.as_slice()?.to_vec(),
            symbol: self.symbol.as_slice()?.to_vec(),
            side: self.side.as_slice()?.to_vec(),
            qty: self.qty.as_slice()?.to_vec(),
            price: self.price.as_slice()?.to_vec(),
            isolated_margin: self.isolated_margin.as_slice()?.to_vec(),
            reduce_only: self.reduce_only.as_slice()?.to_vec(),
            pnl: self.pnl.as_slice()?.to_vec(),
            previous: self.previous.as_slice()?.to_vec(),
            level: self.level.as_slice()?.to_vec(),
            ratio_before: self.ratio_before.as_slice()?.to_vec(),
            ratio_after: self.ratio_after.as_slice()?.to_vec(),
        })
    }
}

#[pyclass(frozen, module = "crossmargin._core", name = "Monitor")]
pub struct PyMonitor {
    engine: Py<PyEngine>,
    universe: Mutex<Py<PyUniverse>>,
    inner: Mutex<Monitor>,
}

/// The book's grouping coded by universe index, in the canonical order.
fn universe_coded(py: Python<'_>, engine: &PyEngine, book: &PyBookView) -> PyResult<GroupedBook> {
    let u = engine.universe();
    let g = book.rows(py)?;
    let r = book.remap();
    let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
    let identity = |m: &[u32], n: u32| m.len() == n as usize && m.iter().enumerate().all(|(i, &x)| x as usize == i);
    if identity(r.asset, na) && identity(r.market, nm) && g.n_asset_codes == na && g.n_market_codes == nm {
        return Ok(g.clone());
    }
    detached(py, || g.in_universe_order(r.asset, r.market, na, nm))
}

fn fixed_point_refused(py: Python<'_>, u: &PyUniverse) -> PyResult<()> {
    if u.fixed.is_some() {
        return Err(to_pyerr(
            py,
            CoreError::config(
                "arithmetic",
                "the monitor evaluates in float64; a fixed-point universe is evaluated by Engine.evaluate",
            ),
        ));
    }
    Ok(())
}

fn crossings_dict<'py>(py: Python<'py>, c: &[Crossing]) -> Dict<'py> {
    let out = PyDict::new(py);
    out.set_item("account", c.iter().map(|x| x.account).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item("previous", c.iter().map(|x| x.previous).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item("level", c.iter().map(|x| x.level).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item("ratio_before", c.iter().map(|x| x.ratio_before).collect::<Vec<_>>().into_pyarray(py))?;
    out.set_item("ratio_after", c.iter().map(|x| x.ratio_after).collect::<Vec<_>>().into_pyarray(py))?;
    Ok(out)
}

fn log_dict<'py>(py: Python<'py>, log: Log) -> Dict<'py> {
    let out = PyDict::new(py);
    out.set_item("seq", log.seq.into_pyarray(py))?;
    out.set_item("kind", log.kind.into_pyarray(py))?;
    out.set_item("account", log.account.into_pyarray(py))?;
    out.set_item("symbol", log.symbol.into_pyarray(py))?;
    out.set_item("side", log.side.into_pyarray(py))?;
    out.set_item("qty", log.qty.into_pyarray(py))?;
    out.set_item("price", log.price.into_pyarray(py))?;
    out.set_item("isolated_margin", log.isolated_margin.into_pyarray(py))?;
    out.set_item("reduce_only", log.reduce_only.into_pyarray(py))?;
    out.set_item("pnl", log.pnl.into_pyarray(py))?;
    out.set_item("previous", log.previous.into_pyarray(py))?;
    out.set_item("level", log.level.into_pyarray(py))?;
    out.set_item("ratio_before", log.ratio_before.into_pyarray(py))?;
    out.set_item("ratio_after", log.ratio_after.into_pyarray(py))?;
    Ok(out)
}

/// Margins, levels and ids of dense accounts `dense`.
type Results = (Vec<(AccountMargin, u8)>, Vec<i64>);

fn results_of(m: &Monitor, dense: &[usize]) -> Results {
    (dense.iter().map(|&a| m.result(a)).collect(), dense.iter().map(|&a| m.store().id(a)).collect())
}

/// Margin columns, `level` and `account` of [`results_of`].
fn results_dict<'py>(py: Python<'py>, (rows, ids): Results) -> Dict<'py> {
    let col = |f: &dyn Fn(&AccountMargin) -> f64| rows.iter().map(|(r, _)| f(r)).collect::<Vec<f64>>();
    let cols = MarginColumns {
        equity: col(&|r| r.equity),
        upnl: col(&|r| r.upnl),
        adj_equity_initial: col(&|r| r.adj_equity[0]),
        adj_equity_maint: col(&|r| r.adj_equity[1]),
        im: col(&|r| r.requirement[0]),
        mm: col(&|r| r.requirement[1]),
        free_collateral: col(&|r| r.free_collateral()),
        margin_ratio: col(&|r| r.margin_ratio()),
        liquidatable: rows.iter().map(|(r, _)| r.liquidatable()).collect(),
        bankrupt: rows.iter().map(|(r, _)| r.bankrupt()).collect(),
    };
    let out = margin_columns_dict(py, cols)?;
    out.set_item("account", ids.into_pyarray(py))?;
    out.set_item("level", rows.iter().map(|(_, l)| *l).collect::<Vec<u8>>().into_pyarray(py))?;
    Ok(out)
}

impl PyMonitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Monitor> {
        // A panic inside core work is caught before it can poison the lock; recover anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn universe(&self, py: Python<'_>) -> Py<PyUniverse> {
        self.universe.lock().unwrap_or_else(|e| e.into_inner()).clone_ref(py)
    }

    /// Runs `work` on the monitor without the GIL, on the engine's pool.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut Monitor, &crossmargin_core::Universe) -> Result<T, CoreError> + Send,
    ) -> PyResult<T> {
        let engine = self.engine.get();
        // The locks are taken and released without the GIL: a thread waiting for them never
        // holds the GIL the holder needs back. The universe is read under the monitor's lock
        // (as `refresh` swaps it), so rows and universe always belong together.
        detached(py, || {
            let mut m = self.lock();
            let mon: &mut Monitor = &mut m;
            let u = self.universe.lock().unwrap_or_else(|e| e.into_inner());
            let uref = &u.get().inner;
            engine.install(|| work(mon, uref))
        })
    }
}

#[pymethods]
impl PyMonitor {
    /// A monitor over `book` at `prices` (asset prices, marks), with the margin-call
    /// threshold `margin_call` (a fraction of maintenance, in (0, 1]).
    #[new]
    #[pyo3(signature = (engine, book, prices, margin_call))]
    fn new(
        py: Python<'_>,
        engine: Py<PyEngine>,
        book: &Bound<'_, PyBookView>,
        prices: PricesIn<'_>,
        margin_call: f64,
    ) -> PyResult<Self> {
        let e = engine.get();
        let universe = e.compiled_universe_ref(py);
        fixed_point_refused(py, universe.get())?;
        let grouped = universe_coded(py, e, book.get())?;
        let (a, m) = (prices.0.as_slice()?.to_vec(), prices.1.as_slice()?.to_vec());
        let u = &universe.get().inner;
        let inner = detached(py, || {
            let levels = Levels::new(margin_call)?;
            e.install(|| Monitor::new(u, grouped, a, m, levels))
        })?;
        Ok(PyMonitor { engine, universe: Mutex::new(universe), inner: Mutex::new(inner) })
    }

    /// Rebuilds a monitor from its starting book and its log (columns as `log()` returns).
    #[staticmethod]
    fn replay(py: Python<'_>, engine: Py<PyEngine>, book: &Bound<'_, PyBookView>, log: LogIn<'_>) -> PyResult<Self> {
        let e = engine.get();
        let universe = e.compiled_universe_ref(py);
        fixed_point_refused(py, universe.get())?;
        let grouped = universe_coded(py, e, book.get())?;
        let log = log.to_log()?;
        let u = &universe.get().inner;
        let inner = detached(py, || e.install(|| Monitor::replay(u, grouped, &log)))?;
        Ok(PyMonitor { engine, universe: Mutex::new(universe), inner: Mutex::new(inner) })
    }

    /// New absolute prices (whole vectors); returns the crossings (columns).
    fn on_prices<'py>(&self, py: Python<'py>, prices: PricesIn<'py>) -> Dict<'py> {
        let (a, m) = (prices.0.as_slice()?.to_vec(), prices.1.as_slice()?.to_vec());
        let c = self.run(py, |mon, u| mon.on_prices(u, a, m))?;
        crossings_dict(py, &c)
    }

    /// Row changes (new states); returns the crossings.
    fn apply<'py>(&self, py: Python<'py>, changes: ChangesIn<'py>) -> Dict<'py> {
        let c = &changes;
        let orders = OrderInput {
            account: c.ord_account.as_slice()?,
            code: c.ord_market.as_slice()?,
            side: c.ord_side.as_slice()?,
            qty: c.ord_qty.as_slice()?,
            price: c.ord_price.as_slice()?,
            reduce_only: c.ord_reduce_only.as_slice()?,
        };
        let ch = Changes {
            balances: BalanceInput {
                account: c.bal_account.as_slice()?,
                code: c.bal_asset.as_slice()?,
                qty: c.bal_qty.as_slice()?,
            },
            positions: PositionInput {
                account: c.pos_account.as_slice()?,
                code: c.pos_market.as_slice()?,
                qty: c.pos_qty.as_slice()?,
                entry_price: c.pos_entry_price.as_slice()?,
                isolated_margin: c.pos_isolated_margin.as_slice()?,
            },
            side: c.pos_side.as_slice()?,
            orders: (!orders.account.is_empty()).then_some(orders),
            clear_account: c.clear_account.as_slice()?,
            clear_market: c.clear_market.as_slice()?,
        };
        let out = self.run(py, |mon, u| mon.apply(u, ch))?;
        crossings_dict(py, &out)
    }

    /// A fill of `qty` (signed, > 0 buys) at `price` on (account, market index, side code);
    /// returns (qty, entry, realised, cash, isolated) and the crossings.
    fn fill<'py>(&self, py: Python<'py>, account: i64, market: u32, side: u8, qty: f64, price: f64) -> Filled<'py> {
        let (f, c) = self.run(py, |mon, u| mon.fill(u, account, market, side, qty, price))?;
        Ok(((f.qty, f.entry, f.realised, f.cash, f.isolated), crossings_dict(py, &c)?))
    }

    /// Re-evaluates every account (under `universe`, a replacement with the same symbols, when
    /// given); returns the crossings.
    #[pyo3(signature = (universe=None))]
    fn refresh<'py>(&self, py: Python<'py>, universe: Option<Py<PyUniverse>>) -> Dict<'py> {
        if let Some(new) = universe {
            fixed_point_refused(py, new.get())?;
            let engine = self.engine.get();
            // The universe is swapped under the monitor's lock, so no other call sees the new
            // rows with the old universe; the old handle is dropped after the GIL is back.
            let (c, _old) = detached(py, || {
                let mut m = self.lock();
                let mon: &mut Monitor = &mut m;
                let c = engine.install(|| mon.refresh(&new.get().inner))?;
                let old = std::mem::replace(&mut *self.universe.lock().unwrap_or_else(|e| e.into_inner()), new);
                Ok((c, old))
            })?;
            return crossings_dict(py, &c);
        }
        let c = self.run(py, |mon, u| mon.refresh(u))?;
        crossings_dict(py, &c)
    }

    /// The `n` riskiest accounts: results columns with `level`.
    fn riskiest<'py>(&self, py: Python<'py>, n: usize) -> Dict<'py> {
        let r = py.detach(|| {
            let m = self.lock();
            results_of(&m, &m.riskiest(n))
        });
        results_dict(py, r)
    }

    /// (balances, positions, orders, results) as columns, accounts ascending.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        let (s, r) = py.detach(|| {
            let m = self.lock();
            let s = m.snapshot();
            let r = results_of(&m, &s.dense);
            (s, r)
        });
        let b = PyDict::new(py);
        b.set_item("account", s.bal_account.into_pyarray(py))?;
        b.set_item("asset", s.bal_code.into_pyarray(py))?;
        b.set_item("qty", s.bal_qty.into_pyarray(py))?;
        let p = PyDict::new(py);
        p.set_item("account", s.pos_account.into_pyarray(py))?;
        p.set_item("market", s.pos_code.into_pyarray(py))?;
        p.set_item("qty", s.pos_qty.into_pyarray(py))?;
        p.set_item("entry_price", s.pos_entry.into_pyarray(py))?;
        p.set_item("isolated_margin", s.pos_isolated.into_pyarray(py))?;
        p.set_item("side", s.pos_side.into_pyarray(py))?;
        let o = PyDict::new(py);
        o.set_item("account", s.ord_account.into_pyarray(py))?;
        o.set_item("market", s.ord_code.into_pyarray(py))?;
        o.set_item("side", s.ord_side.into_pyarray(py))?;
        o.set_item("qty", s.ord_qty.into_pyarray(py))?;
        o.set_item("price", s.ord_price.into_pyarray(py))?;
        o.set_item("reduce_only", s.ord_reduce_only.into_pyarray(py))?;
        let r = results_dict(py, r)?;
        pyo3::types::PyTuple::new(py, [b, p, o, r])
    }

    /// The log's rows from `start` on, as columns.
    #[pyo3(signature = (start=0))]
    fn log<'py>(&self, py: Python<'py>, start: usize) -> Dict<'py> {
        let l = py.detach(|| {
            let m = self.lock();
            if start == 0 {
                m.log().clone()
            } else {
                m.log().since(start)
            }
        });
        log_dict(py, l)
    }

    /// Whether this monitor's log equals `other`'s bit for bit.
    fn same_log(&self, py: Python<'_>, other: &Bound<'_, PyMonitor>) -> bool {
        let o = other.get();
        if std::ptr::eq(self, o) {
            return true;
        }
        py.detach(|| {
            let theirs = o.lock().log().clone();
            self.lock().log().same(&theirs)
        })
    }

    /// Rows in the log.
    #[getter]
    fn log_len(&self, py: Python<'_>) -> usize {
        py.detach(|| self.lock().log().len())
    }

    /// The number of the last operation (0: none since the start).
    #[getter]
    fn seq(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.lock().seq())
    }

    #[getter]
    fn margin_call(&self, py: Python<'_>) -> f64 {
        py.detach(|| self.lock().levels().margin_call)
    }

    /// Accounts the monitor has seen (with or without rows now).
    #[getter]
    fn n_accounts(&self, py: Python<'_>) -> usize {
        py.detach(|| self.lock().store().n_accounts())
    }

    /// The current (asset prices, marks), copies.
    fn prices<'py>(&self, py: Python<'py>) -> (Bound<'py, numpy::PyArray1<f64>>, Bound<'py, numpy::PyArray1<f64>>) {
        let (a, k) = py.detach(|| {
            let m = self.lock();
            let (a, k) = m.prices();
            (a.to_vec(), k.to_vec())
        });
        (a.into_pyarray(py), k.into_pyarray(py))
    }

    /// The position (qty, entry, isolated margin) of `account` in market index `market` on
    /// side code `side`, or None.
    fn position(&self, py: Python<'_>, account: i64, market: u32, side: u8) -> Option<(f64, f64, f64)> {
        py.detach(|| self.lock().store().position(account, market, side))
    }

    /// The compiled universe the monitor evaluates with.
    #[getter(universe)]
    fn compiled_universe(&self, py: Python<'_>) -> Py<PyUniverse> {
        self.universe(py)
    }
}

/// Names the Python side maps codes with.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyMonitor>()?;
    m.add("MONITOR_LEVELS", pyo3::types::PyTuple::new(py, crossmargin_core::monitor::LEVEL_NAMES)?)?;
    m.add("MONITOR_LOG_KINDS", pyo3::types::PyTuple::new(py, crossmargin_core::monitor::KIND_NAMES)?)?;
    Ok(())
}
