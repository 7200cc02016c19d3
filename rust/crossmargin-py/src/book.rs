//! The grouped (CSR) book as a Python object, and the book bound to a universe's indices
//! (`BookView`), which is how a book crosses into every engine method. Input columns are
//! read in place (readonly numpy views, by column name); grouping runs without the GIL.

use std::sync::{Arc, Mutex, OnceLock};

use crossmargin_core::fixed::{FixedBook, FixedUniverse};
use crossmargin_core::kernel::Sliced8;
use crossmargin_core::{group_with, BalanceInput, GroupedBook, OrderInput, PositionInput, Remap};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::errors::detached;
use crate::universe::PyUniverse;

/// A dictionary-encoded symbol column (`crossmargin.book.SymbolColumn`), read by attribute.
#[derive(FromPyObject)]
struct CodesIn<'py> {
    codes: PyReadonlyArray1<'py, u32>,
    n_codes: u32,
}

/// The balances table (`Book.balances`), read by column name.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct BalancesIn<'py> {
    account: PyReadonlyArray1<'py, i64>,
    asset: CodesIn<'py>,
    qty: PyReadonlyArray1<'py, f64>,
}

/// The positions table (`Book.positions`), read by column name.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct PositionsIn<'py> {
    account: PyReadonlyArray1<'py, i64>,
    market: CodesIn<'py>,
    qty: PyReadonlyArray1<'py, f64>,
    entry_price: PyReadonlyArray1<'py, f64>,
    isolated_margin: PyReadonlyArray1<'py, f64>,
    /// 0 both, 1 long, 2 short (`crossmargin.book.POSITION_SIDES`); empty: all one-way.
    side: PyReadonlyArray1<'py, u8>,
}

/// The open orders (`Book.orders`), read by column name.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct OrdersIn<'py> {
    account: PyReadonlyArray1<'py, i64>,
    market: CodesIn<'py>,
    /// 0 buy, 1 sell.
    side: PyReadonlyArray1<'py, u8>,
    qty: PyReadonlyArray1<'py, f64>,
    price: PyReadonlyArray1<'py, f64>,
    reduce_only: PyReadonlyArray1<'py, bool>,
}

#[pyclass(frozen, module = "crossmargin._core", name = "GroupedBook")]
pub struct PyBook {
    pub inner: GroupedBook,
    /// The SIMD kernel's layout of `inner`, built on first use (`crossmargin_core::kernel`).
    layout: OnceLock<Sliced8>,
}

impl PyBook {
    pub(crate) fn of(inner: GroupedBook) -> Self {
        PyBook { inner, layout: OnceLock::new() }
    }
}

#[pymethods]
impl PyBook {
    /// `balances` / `positions` / `orders`: mappings of columns (`account`, `asset` / `market`
    /// as code columns with `codes` and `n_codes`, `qty`, `entry_price`, `isolated_margin`,
    /// `side`; orders: `side`, `qty`, `price`, `reduce_only`). Positions and orders share
    /// one market encoding.
    #[new]
    #[pyo3(signature = (balances, positions, orders=None))]
    fn new(
        py: Python<'_>,
        balances: BalancesIn<'_>,
        positions: PositionsIn<'_>,
        orders: Option<OrdersIn<'_>>,
    ) -> PyResult<Self> {
        let (b, p) = (&balances, &positions);
        let bal =
            BalanceInput { account: b.account.as_slice()?, code: b.asset.codes.as_slice()?, qty: b.qty.as_slice()? };
        let pos = PositionInput {
            account: p.account.as_slice()?,
            code: p.market.codes.as_slice()?,
            qty: p.qty.as_slice()?,
            entry_price: p.entry_price.as_slice()?,
            isolated_margin: p.isolated_margin.as_slice()?,
        };
        let ord = match &orders {
            None => None,
            Some(o) => Some(OrderInput {
                account: o.account.as_slice()?,
                code: o.market.codes.as_slice()?,
                side: o.side.as_slice()?,
                qty: o.qty.as_slice()?,
                price: o.price.as_slice()?,
                reduce_only: o.reduce_only.as_slice()?,
            }),
        };
        let side = p.side.as_slice()?;
        let na = b.asset.n_codes;
        let nm = p.market.n_codes.max(orders.as_ref().map_or(0, |o| o.market.n_codes));
        let inner = detached(py, || group_with(bal, pos, side, ord, na, nm))?;
        Ok(PyBook::of(inner))
    }

    #[getter]
    fn n_accounts(&self) -> usize {
        self.inner.n_accounts()
    }

    /// Bytes held by the grouped arrays.
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }

    /// This book bound to `universe` through its code → universe index remaps. Each account's
    /// rows are summed in ascending universe index (the canonical order): when the remaps
    /// keep that order the view reads this grouping, otherwise a regrouped copy whose codes
    /// are universe indices (identity remaps).
    fn bind(
        slf: &Bound<'_, Self>,
        universe: &Bound<'_, PyUniverse>,
        asset_remap: PyReadonlyArray1<'_, u32>,
        market_remap: PyReadonlyArray1<'_, u32>,
    ) -> PyResult<PyBookView> {
        let py = slf.py();
        let (a, m) = (asset_remap.as_slice()?, market_remap.as_slice()?);
        let u = &universe.get().inner;
        let this = slf.get();
        if this.inner.is_in_order(a, m) {
            return Ok(PyBookView {
                book: slf.clone().unbind(),
                asset_remap: a.to_vec(),
                market_remap: m.to_vec(),
                fixed_rows: Mutex::default(),
            });
        }
        let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
        let inner = detached(py, || this.inner.in_universe_order(a, m, na, nm))?;
        Ok(PyBookView {
            book: Py::new(py, PyBook::of(inner))?,
            asset_remap: (0..na).collect(),
            market_remap: (0..nm).collect(),
            fixed_rows: Mutex::default(),
        })
    }

    /// Whether any position is a hedge-mode leg (side long or short).
    #[getter]
    fn has_sides(&self) -> bool {
        self.inner.has_sides()
    }

    /// Whether the book holds open orders.
    #[getter]
    fn has_orders(&self) -> bool {
        self.inner.has_orders()
    }

    /// Account ids, ascending (a new array each call).
    fn accounts<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        self.inner.accounts.clone().into_pyarray(py)
    }
}

/// A grouped book bound to one universe's indices: what every engine method reads.
#[pyclass(frozen, module = "crossmargin._core", name = "BookView")]
pub struct PyBookView {
    book: Py<PyBook>,
    asset_remap: Vec<u32>,
    market_remap: Vec<u32>,
    /// The rows in a fixed-point universe's raw units, converted on the first fixed-point
    /// call and kept for the next ones under the same units.
    fixed_rows: Mutex<Option<Arc<FixedBook>>>,
}

impl PyBookView {
    /// The rows in `fx`'s raw units: the kept conversion when it was made in those units.
    pub fn fixed_rows(&self, fx: &FixedUniverse) -> Arc<FixedBook> {
        let mut kept = self.fixed_rows.lock().unwrap_or_else(|e| e.into_inner());
        match &*kept {
            Some(rows) if rows.matches(fx) => Arc::clone(rows),
            _ => {
                let rows = Arc::new(FixedBook::new(self.grouped(), self.remap(), fx));
                *kept = Some(Arc::clone(&rows));
                rows
            }
        }
    }

    pub fn grouped(&self) -> &GroupedBook {
        &self.book.get().inner
    }

    /// The kernel's layout of the grouping (built once, in parallel on the current pool).
    pub fn layout(&self) -> &Sliced8 {
        let b = self.book.get();
        b.layout.get_or_init(|| Sliced8::new(&b.inner))
    }

    pub fn remap(&self) -> Remap<'_> {
        Remap { asset: &self.asset_remap, market: &self.market_remap }
    }
}

#[pymethods]
impl PyBookView {
    /// Bytes held by the grouping the kernels read (the book's own, or its regrouped copy).
    #[getter]
    fn nbytes(&self) -> usize {
        self.grouped().nbytes()
    }

    /// Builds the evaluation kernel's layout of the grouping now (else the first
    /// `Engine.evaluate` builds it); in parallel, without the GIL.
    fn prepare(&self, py: Python<'_>) -> PyResult<()> {
        detached(py, || {
            self.layout();
            Ok(())
        })
    }

    /// Bytes held by the SIMD kernel's layout of the grouping (0 until first built).
    #[getter]
    fn layout_nbytes(&self) -> usize {
        self.book.get().layout.get().map_or(0, Sliced8::nbytes)
    }

    /// Book asset code → universe asset index.
    #[getter]
    fn asset_remap<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        self.asset_remap.clone().into_pyarray(py)
    }

    /// Book market code → universe market index.
    #[getter]
    fn market_remap<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        self.market_remap.clone().into_pyarray(py)
    }

    #[getter]
    fn n_accounts(&self) -> usize {
        self.grouped().n_accounts()
    }
}
