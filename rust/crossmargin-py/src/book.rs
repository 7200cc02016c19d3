//! The grouped book as a Python object, and the book bound to a universe's indices
//! (`BookView`), which is how a book crosses into every engine method. Input columns are
//! read in place (readonly numpy views, by column name); grouping runs without the GIL.
//!
//! One copy of the rows (docs/ARCHITECTURE.md "Grouping"): a book without open orders is
//! grouped straight into the evaluation kernel's layout and keeps no grouped (CSR) copy;
//! the CSR that the account-by-account models read is rebuilt from the input columns (kept
//! alive by the book, shared, never copied) on the first call that needs it.

use std::sync::{Arc, Mutex, OnceLock};

use crossmargin_core::fixed::{FixedBook, FixedUniverse};
use crossmargin_core::kernel::{Level, Sliced8};
use crossmargin_core::universe::Universe;
use crossmargin_core::{
    group_into_layout, group_with, BalanceInput, CoreError, GroupedBook, LaidOutBook, OrderInput, PositionInput, Remap,
};
use numpy::ndarray::ArrayView1;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

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

/// A column of the caller's, read without the GIL after construction.
struct Raw<T> {
    ptr: *const T,
    len: usize,
}

// SAFETY: `Raw` points into a numpy array that its `Source` keeps alive (a reference to the
// array object); numpy neither frees nor moves the data of a referenced array, and the book
// only reads it (docs: the caller must not write to a book's columns while it is in use).
unsafe impl<T: Sync> Send for Raw<T> {}
unsafe impl<T: Sync> Sync for Raw<T> {}

impl<T> Raw<T> {
    fn of(a: &PyReadonlyArray1<'_, T>, keep: &mut Vec<Py<PyAny>>) -> PyResult<Self>
    where
        T: numpy::Element,
    {
        let s = a.as_slice()?;
        keep.push(a.as_any().clone().unbind());
        Ok(Raw { ptr: s.as_ptr(), len: s.len() })
    }

    fn get(&self) -> &[T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: see the `Send` impl: the array is alive and unmoved while `self` is.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The input columns a book was grouped into the layout from: its CSR grouping is rebuilt
/// from them on first use.
struct Source {
    _keep: Vec<Py<PyAny>>,
    b_account: Raw<i64>,
    b_code: Raw<u32>,
    b_qty: Raw<f64>,
    p_account: Raw<i64>,
    p_code: Raw<u32>,
    p_qty: Raw<f64>,
    p_entry: Raw<f64>,
    p_isolated: Raw<f64>,
    p_side: Raw<u8>,
}

impl Source {
    fn inputs(&self) -> (BalanceInput<'_>, PositionInput<'_>, &[u8]) {
        (
            BalanceInput { account: self.b_account.get(), code: self.b_code.get(), qty: self.b_qty.get() },
            PositionInput {
                account: self.p_account.get(),
                code: self.p_code.get(),
                qty: self.p_qty.get(),
                entry_price: self.p_entry.get(),
                isolated_margin: self.p_isolated.get(),
            },
            self.p_side.get(),
        )
    }
}

#[pyclass(frozen, module = "crossmargin._core", name = "GroupedBook")]
pub struct PyBook {
    /// The CSR grouping: given (a cascade's final book, a regrouped view, a book with open
    /// orders), or rebuilt from `source` on first use.
    csr: OnceLock<GroupedBook>,
    /// A book grouped into the layout: its account ids over no rows (what the kernel reads
    /// when every group of a call runs SIMD), and the input columns.
    laid_out: Option<(GroupedBook, Source)>,
    /// The SIMD kernel's layout, built by the grouping or on first use (`crossmargin_core::kernel`).
    layout: OnceLock<Sliced8>,
    has_sides: bool,
    /// Codes some row uses, (assets, markets), for `bind`.
    used: OnceLock<(Vec<bool>, Vec<bool>)>,
}

impl PyBook {
    pub(crate) fn of(inner: GroupedBook) -> Self {
        let has_sides = inner.has_sides();
        PyBook { csr: OnceLock::from(inner), laid_out: None, layout: OnceLock::new(), has_sides, used: OnceLock::new() }
    }

    /// The CSR grouping (rebuilt from the input columns on first use for a book grouped
    /// into the layout: its cost is the calling model's, once).
    pub fn grouped(&self) -> Result<&GroupedBook, CoreError> {
        if let Some(csr) = self.csr.get() {
            return Ok(csr);
        }
        let Some((shell, source)) = self.laid_out.as_ref() else {
            unreachable!("a book holds its CSR or its input columns")
        };
        let (b, p, side) = source.inputs();
        // The columns were checked when the book was built; a failure here means the caller
        // wrote into a column the book shares (docs/MODEL.md "Book": a book's columns must
        // not be written while it is in use) — a typed error naming the row, never a panic.
        let csr = group_with(b, p, side, None, shell.n_asset_codes, shell.n_market_codes)?;
        Ok(self.csr.get_or_init(|| csr))
    }

    /// The rows the kernel reads beside the layout in a call at `level` under `universe`: the
    /// account ids alone when every group runs SIMD (no venue rules, no options, a SIMD
    /// level; a book grouped into the layout holds no open orders), else the CSR grouping.
    pub fn kernel_rows(&self, universe: &Universe, level: Level) -> Result<&GroupedBook, CoreError> {
        Ok(match (&self.laid_out, self.csr.get()) {
            (_, Some(csr)) => csr,
            (Some((shell, _)), None) if Self::ids_serve(universe, level) => shell,
            _ => self.grouped()?,
        })
    }

    /// Whether the account ids alone serve the kernel (every group runs SIMD).
    fn ids_serve(universe: &Universe, level: Level) -> bool {
        level != Level::Scalar
            && level.supported()
            && !universe.venue_rules
            && !universe.market_hot.iter().any(|h| h.is_option())
    }

    /// Whether a call at `level` under `universe` finds the kernel's rows and layout built
    /// ([`Self::kernel_rows`], [`Self::layout`]): it then runs no parallel step before the
    /// kernel.
    pub fn kernel_ready(&self, universe: &Universe, level: Level) -> bool {
        self.layout.get().is_some()
            && (self.csr.get().is_some() || (self.laid_out.is_some() && Self::ids_serve(universe, level)))
    }

    /// The CSR of a book not grouped into the layout (it always holds one).
    fn held(&self) -> &GroupedBook {
        self.csr.get().unwrap_or_else(|| unreachable!("a book not grouped into the layout holds its CSR"))
    }

    fn n_accounts(&self) -> usize {
        match (&self.laid_out, self.csr.get()) {
            (Some((shell, _)), _) => shell.n_accounts(),
            (None, Some(csr)) => csr.n_accounts(),
            (None, None) => unreachable!("a book holds its CSR or its input columns"),
        }
    }

    fn accounts_slice(&self) -> &[i64] {
        match &self.laid_out {
            Some((shell, _)) => &shell.accounts,
            None => &self.held().accounts,
        }
    }

    fn layout(&self) -> &Sliced8 {
        self.layout.get_or_init(|| Sliced8::new(self.held()))
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
        if ord.is_some() {
            let inner = detached(py, || group_with(bal, pos, side, ord, na, nm))?;
            return Ok(PyBook::of(inner));
        }
        let mut keep = vec![];
        let source = Source {
            b_account: Raw::of(&b.account, &mut keep)?,
            b_code: Raw::of(&b.asset.codes, &mut keep)?,
            b_qty: Raw::of(&b.qty, &mut keep)?,
            p_account: Raw::of(&p.account, &mut keep)?,
            p_code: Raw::of(&p.market.codes, &mut keep)?,
            p_qty: Raw::of(&p.qty, &mut keep)?,
            p_entry: Raw::of(&p.entry_price, &mut keep)?,
            p_isolated: Raw::of(&p.isolated_margin, &mut keep)?,
            p_side: Raw::of(&p.side, &mut keep)?,
            _keep: keep,
        };
        let laid: LaidOutBook = detached(py, || group_into_layout(bal, pos, side, na, nm))?;
        let shell = GroupedBook {
            accounts: laid.accounts,
            n_asset_codes: laid.n_asset_codes,
            n_market_codes: laid.n_market_codes,
            ..GroupedBook::default()
        };
        Ok(PyBook {
            csr: OnceLock::new(),
            laid_out: Some((shell, source)),
            layout: OnceLock::from(laid.layout),
            has_sides: laid.has_sides,
            used: OnceLock::new(),
        })
    }

    #[getter(n_accounts)]
    fn py_n_accounts(&self) -> usize {
        self.n_accounts()
    }

    /// Bytes held by the grouping: the kernel's layout when the book was grouped into it,
    /// its account ids, and the CSR grouping once built.
    #[getter]
    fn nbytes(&self) -> usize {
        let ids = self.laid_out.as_ref().map_or(0, |(shell, _)| shell.accounts.len() * 8);
        let layout = if self.laid_out.is_some() { self.layout.get().map_or(0, Sliced8::nbytes) } else { 0 };
        ids + layout + self.csr.get().map_or(0, GroupedBook::nbytes)
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
        let in_order = match (&this.laid_out, this.csr.get()) {
            (Some((shell, _)), None) => {
                let (na, nm) = (shell.n_asset_codes as usize, shell.n_market_codes as usize);
                // A pass over every slot of the layout, in parallel and without the GIL —
                // outside the OnceLock: a thread blocked in its initialisation would hold the
                // GIL that this one needs back (two threads may both compute; the first keeps).
                let used = match this.used.get() {
                    Some(used) => used,
                    None => {
                        let computed = py.detach(|| this.layout().used_codes(na, nm));
                        this.used.get_or_init(|| computed)
                    }
                };
                let (ua, um) = used;
                crossmargin_core::book::keeps_order(ua, a) && crossmargin_core::book::keeps_order(um, m)
            }
            _ => this.held().is_in_order(a, m),
        };
        if in_order {
            return Ok(PyBookView {
                book: slf.clone().unbind(),
                asset_remap: a.to_vec(),
                market_remap: m.to_vec(),
                fixed_rows: Mutex::default(),
            });
        }
        let (na, nm) = (u.n_assets() as u32, u.n_markets() as u32);
        let inner = detached(py, || this.grouped()?.in_universe_order(a, m, na, nm))?;
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
        self.has_sides
    }

    /// Whether the book holds open orders.
    #[getter]
    fn has_orders(&self) -> bool {
        self.laid_out.is_none() && self.held().has_orders()
    }

    /// Account ids, ascending: a read-only view of the book's own ids (no copy).
    fn accounts<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let ids = ArrayView1::from(slf.get().accounts_slice());
        // SAFETY: the ids live as long as the book (frozen: never replaced or moved), which the
        // array keeps alive as its base.
        let a = unsafe { PyArray1::borrow_from_array(&ids, slf.clone().into_any()) };
        let kwargs = PyDict::new(slf.py());
        kwargs.set_item("write", false)?;
        a.call_method("setflags", (), Some(&kwargs))?;
        Ok(a)
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
    pub fn fixed_rows(&self, fx: &FixedUniverse) -> Result<Arc<FixedBook>, CoreError> {
        let mut kept = self.fixed_rows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(match &*kept {
            Some(rows) if rows.matches(fx) => Arc::clone(rows),
            _ => {
                let rows = Arc::new(FixedBook::new(self.grouped()?, self.remap(), fx));
                *kept = Some(Arc::clone(&rows));
                rows
            }
        })
    }

    /// The CSR grouping (for a book grouped into the layout, rebuilt from its input columns
    /// on the first call that reads accounts' rows; that call bears its cost).
    pub fn grouped(&self) -> Result<&GroupedBook, CoreError> {
        self.book.get().grouped()
    }

    /// [`Self::grouped`] for a binding call: the rebuild runs without the GIL, its error
    /// becomes the typed Python error.
    pub fn rows(&self, py: Python<'_>) -> PyResult<&GroupedBook> {
        match self.book.get().csr.get() {
            Some(csr) => Ok(csr),
            None => detached(py, || self.grouped()),
        }
    }

    /// What the evaluation kernel reads beside the layout at `level` under `universe`
    /// ([`PyBook::kernel_rows`]): the account ids alone when every group runs SIMD.
    pub fn kernel_rows(&self, universe: &Universe, level: Level) -> Result<&GroupedBook, CoreError> {
        self.book.get().kernel_rows(universe, level)
    }

    /// The kernel's layout of the grouping (built once, in parallel on the current pool).
    pub fn layout(&self) -> &Sliced8 {
        self.book.get().layout()
    }

    /// [`PyBook::kernel_ready`].
    pub fn kernel_ready(&self, universe: &Universe, level: Level) -> bool {
        self.book.get().kernel_ready(universe, level)
    }

    /// The grouping's account ids, code counts and open orders, with or without its rows
    /// (what a call's checks read: no CSR is built for them).
    pub fn header(&self) -> &GroupedBook {
        let b = self.book.get();
        match (&b.laid_out, b.csr.get()) {
            (Some((shell, _)), None) => shell,
            _ => b.held(),
        }
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
        self.book.get().nbytes()
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
        self.book.get().n_accounts()
    }
}
