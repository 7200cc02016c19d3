//! `_core.Engine`: a compiled universe and a rayon pool, built once; every computation over a
//! book is a method. A book crosses as one `BookView` (grouped rows + remaps), prices as one
//! pair of arrays; numpy columns come back by move, and all work runs without the GIL on the
//! engine's pool (a standard evaluation of a built book: with one thread's work on the calling
//! thread alone, with a few chunks' on the calling thread beside the pool's; the feature
//! modules hold each method's conversions).

use std::sync::Arc;

use crossmargin_core::kernel::{self, Level, Threads};
use crossmargin_core::margin::{MarginColumnsMut, CHUNK};
use crossmargin_core::{fixed, CoreError, MarginColumns, Universe};
use numpy::{IntoPyArray, PyArray1};
use numpy::{PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::args::{fresh_margin_columns, margin_columns_dict, margin_context, PriceRowsIn, PricesIn};
use crate::book::PyBookView;
use crate::cascade::RulesIn;
use crate::cascade_step::{PyDriver, PyShard};
use crate::errors::{detached, to_pyerr};
use crate::names;
use crate::portfolio::PyPortfolio;
use crate::solvency::PyTree;
use crate::span::PySpan;
use crate::universe::PyUniverse;
use crate::{cascade, cascade_step, explain, funding, portfolio, risk, solvency, span};

/// Columns by name, as returned to Python.
type Columns<'py> = PyResult<Bound<'py, PyDict>>;

/// Books of this many chunks, their rows and layout built, are evaluated by the calling thread
/// beside the pool's (`kernel::Threads::Beside`): a call saves a thread's wake-up (single
/// calls from Python took 0.77–1.00 of their time at 10k accounts, 0.91–0.94 at 30k and
/// 100k). Two or three chunks gained as much in single calls but took 1.3× as long in a
/// tight loop, where the pool's threads are still awake; larger books are split in halves by
/// the pool (docs/ARCHITECTURE.md, "Calls").
const BESIDE_CHUNKS: std::ops::RangeInclusive<usize> = 4..=64;

#[pyclass(frozen, module = "crossmargin._core", name = "Engine")]
pub struct PyEngine {
    pool: Arc<rayon::ThreadPool>,
    universe: Py<PyUniverse>,
}

impl PyEngine {
    pub fn universe(&self) -> &Universe {
        &self.universe.get().inner
    }

    /// The compiled universe (a new reference).
    pub fn compiled_universe_ref(&self, py: Python<'_>) -> Py<PyUniverse> {
        self.universe.clone_ref(py)
    }

    /// Runs `work` on the engine's pool (results never depend on its size).
    pub fn install<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        self.pool.install(work)
    }
}

#[pymethods]
impl PyEngine {
    /// `threads=None` or 0 uses every core.
    #[new]
    #[pyo3(signature = (universe, threads=None))]
    fn new(py: Python<'_>, universe: Py<PyUniverse>, threads: Option<usize>) -> PyResult<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.unwrap_or(0))
            .thread_name(|i| format!("crossmargin-{i}"))
            .build()
            .map_err(|e| to_pyerr(py, CoreError::config("threads", format!("cannot start the thread pool: {e}"))))?;
        Ok(PyEngine { pool: Arc::new(pool), universe })
    }

    /// The same pool over another compiled universe (e.g. one repriced for a call).
    fn with_universe(&self, universe: Py<PyUniverse>) -> PyEngine {
        PyEngine { pool: Arc::clone(&self.pool), universe }
    }

    #[getter(universe)]
    fn compiled_universe(&self, py: Python<'_>) -> Py<PyUniverse> {
        self.universe.clone_ref(py)
    }

    #[getter]
    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Standard-model margin of every account; in the universe's fixed-point arithmetic
    /// when it declares one (then with the raw columns `total_collateral_{initial,maint}_raw`,
    /// `margin_requirement_{initial,maint}_raw`, int64 in value units). With `out` (the ten
    /// result columns of a previous call, by name, writable, one row per account; the four
    /// raw columns too in fixed point) the results are written into those arrays and `out`
    /// is returned.
    #[pyo3(signature = (book, prices, out=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        out: Option<Bound<'py, PyDict>>,
    ) -> Columns<'py> {
        let b = book.get();
        let ctx = margin_context(py, self.universe(), b, &prices)?;
        if let Some(fx) = &self.universe.get().fixed {
            let level = Level::from_env().map_err(|e| to_pyerr(py, e))?;
            let book_rows = b.rows(py)?;
            let rows = b.fixed_rows(fx).map_err(|e| to_pyerr(py, e))?;
            let Some(dict) = out else {
                let n = book_rows.n_accounts();
                let (cols, raw) = detached(py, || {
                    self.install(|| {
                        let (mut cols, mut raw) = (MarginColumns::zeroed(n), fixed::FixedColumns::zeroed(n));
                        fixed::evaluate_rows_into(book_rows, &rows, &ctx, fx, cols.as_mut(), raw.as_mut(), level)?;
                        Ok((cols, raw))
                    })
                })?;
                let out = margin_columns_dict(py, cols)?;
                out.set_item(RAW_COLUMNS[0], raw.total_collateral_initial.into_pyarray(py))?;
                out.set_item(RAW_COLUMNS[1], raw.total_collateral_maint.into_pyarray(py))?;
                out.set_item(RAW_COLUMNS[2], raw.requirement_initial.into_pyarray(py))?;
                out.set_item(RAW_COLUMNS[3], raw.requirement_maint.into_pyarray(py))?;
                return Ok(out);
            };
            {
                let mut margin = MarginColumnsOut::of(&dict)?;
                let r = |name: &str| -> PyResult<PyReadwriteArray1<'py, i64>> { column_of(&dict, name) };
                let (mut tci, mut tcm) = (r(RAW_COLUMNS[0])?, r(RAW_COLUMNS[1])?);
                let (mut rqi, mut rqm) = (r(RAW_COLUMNS[2])?, r(RAW_COLUMNS[3])?);
                let raw = fixed::FixedColumnsMut {
                    total_collateral_initial: tci.as_slice_mut()?,
                    total_collateral_maint: tcm.as_slice_mut()?,
                    requirement_initial: rqi.as_slice_mut()?,
                    requirement_maint: rqm.as_slice_mut()?,
                };
                let cols = margin.as_mut()?;
                detached(py, || {
                    self.install(|| fixed::evaluate_rows_into(book_rows, &rows, &ctx, fx, cols, raw, level))
                })?;
            }
            return Ok(dict);
        }
        let level = Level::from_env().map_err(|e| to_pyerr(py, e))?;
        let dict = match out {
            Some(dict) => dict,
            None => fresh_margin_columns(py, b.layout().n_accounts())?,
        };
        {
            let mut margin = MarginColumnsOut::of(&dict)?;
            let cols = margin.as_mut()?;
            detached(py, || {
                // Once the book's rows and layout are built, this thread evaluates: alone for a
                // one-thread engine or a book of one chunk (no rayon call), beside the pool's
                // other threads for a book of a few chunks. Handing the whole call to the pool
                // costs tens of µs in context switches, a small book's time. The first call
                // builds in the pool, and other books run there.
                let (n, ready) = (b.header().n_accounts(), b.kernel_ready(ctx.universe, level));
                let threads = if ready && (n <= CHUNK || self.pool.current_num_threads() == 1) {
                    Threads::Calling
                } else if ready && BESIDE_CHUNKS.contains(&n.div_ceil(CHUNK)) {
                    Threads::Beside(&self.pool)
                } else {
                    Threads::Pool
                };
                let evaluate = || {
                    let rows = b.kernel_rows(ctx.universe, level)?;
                    let run = kernel::Run { threads, ..kernel::Run::for_accounts(rows.n_accounts()) };
                    kernel::evaluate_into_with(rows, b.layout(), &ctx, cols, level, run)
                };
                match threads {
                    Threads::Pool => self.install(evaluate),
                    _ => evaluate(),
                }
            })?;
        }
        Ok(dict)
    }

    /// Portfolio, delta or hybrid margin of every account (the same columns as `evaluate`;
    /// into `out`'s ten arrays when given, which is returned).
    #[pyo3(signature = (book, prices, portfolio, model, out=None))]
    fn evaluate_portfolio<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        portfolio: &Bound<'py, PyPortfolio>,
        model: &str,
        out: Option<Bound<'py, PyDict>>,
    ) -> Columns<'py> {
        portfolio::evaluate(py, self, book.get(), &prices, portfolio.get(), model, out)
    }

    /// SPAN margin of every account (the `evaluate` columns) and, with `detail`, the
    /// per-commodity rows (`commodity_*` keys).
    #[pyo3(signature = (book, prices, span, *, detail))]
    fn evaluate_span<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        span: &Bound<'py, PySpan>,
        detail: bool,
    ) -> Columns<'py> {
        span::evaluate(py, self, book.get(), &prices, span.get(), detail)
    }

    /// Greeks per account × underlying.
    fn greeks<'py>(&self, py: Python<'py>, book: &Bound<'py, PyBookView>, prices: PricesIn<'py>) -> Columns<'py> {
        portfolio::greeks(py, self, book.get(), &prices)
    }

    /// One account's totals and rows as the standard-model kernel computes them.
    fn explain<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        account_index: usize,
    ) -> Columns<'py> {
        explain::explain(py, self, book.get(), &prices, account_index)
    }

    /// Liquidation price of every position; `move_` is "underlying" or "mark".
    fn liquidation_prices<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        move_: &str,
    ) -> Columns<'py> {
        risk::liquidation_prices(py, self, book.get(), &prices, move_)
    }

    /// Every account under every scenario (rows of `scenario_prices`), from the universe's
    /// own prices; with `keep_matrix`, the accounts × scenarios matrix too.
    #[pyo3(signature = (book, scenario_prices, *, keep_matrix))]
    fn stress<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        scenario_prices: PriceRowsIn<'py>,
        keep_matrix: bool,
    ) -> Columns<'py> {
        risk::stress(py, self, book.get(), &scenario_prices, keep_matrix)
    }

    /// Isolated vs cross requirement per account.
    fn efficiency<'py>(&self, py: Python<'py>, book: &Bound<'py, PyBookView>, prices: PricesIn<'py>) -> Columns<'py> {
        risk::efficiency(py, self, book.get(), &prices)
    }

    /// Funding payments at `rates` (one per market): per position, per market, balances after.
    fn funding<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        rates: PyReadonlyArray1<'py, f64>,
    ) -> Columns<'py> {
        funding::apply(py, self, book.get(), &prices, &rates)
    }

    /// Liabilities and reserves at these prices; with `seed`, also the Merkle-sum tree.
    #[pyo3(signature = (book, prices, reserves, seed=None))]
    fn solvency<'py>(
        &self,
        py: Python<'py>,
        book: &Bound<'py, PyBookView>,
        prices: PricesIn<'py>,
        reserves: PyReadonlyArray1<'py, f64>,
        seed: Option<Vec<u8>>,
    ) -> PyResult<(Bound<'py, PyDict>, Option<PyTree>)> {
        solvency::solvency(py, self, book.get(), &prices, &reserves, seed)
    }

    /// `names[codes]` as an object array on the engine's pool; a code outside the names gives
    /// `missing`, or an IndexError naming its row.
    #[pyo3(signature = (names, codes, missing=None))]
    fn take_names<'py>(
        &self,
        py: Python<'py>,
        names: Vec<Bound<'py, PyAny>>,
        codes: Bound<'py, PyAny>,
        missing: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArray1<Py<PyAny>>>> {
        names::take_in(py, self, &names, &codes, missing.as_ref())
    }

    /// Runs a cascade of `rules` (a `crossmargin.cascade.CascadeRules`) on the book.
    fn cascade<'py>(&self, py: Python<'py>, book: &Bound<'py, PyBookView>, rules: RulesIn<'py>) -> Columns<'py> {
        cascade::run_cascade(py, self, book.get(), &rules)
    }

    /// One partition's half of a sharded cascade of `rules`.
    fn cascade_shard(&self, py: Python<'_>, book: &Bound<'_, PyBookView>, rules: RulesIn<'_>) -> PyResult<PyShard> {
        cascade_step::shard(py, &self.universe, book.get(), &rules)
    }

    /// The global half of a sharded cascade of `rules`.
    fn cascade_driver(&self, py: Python<'_>, rules: RulesIn<'_>) -> PyResult<PyDriver> {
        cascade_step::driver(py, self.universe(), &rules)
    }
}

/// Column `name` of an `out=` mapping as a writable 1-d array of `T` (numpy checks the dtype,
/// the dimension and that no other view holds it for writing).
fn column_of<'py, T: numpy::Element>(dict: &Bound<'py, PyDict>, name: &str) -> PyResult<PyReadwriteArray1<'py, T>> {
    let item = dict.get_item(name)?.ok_or_else(|| {
        to_pyerr(dict.py(), CoreError::config(format!("out[{name}]"), "missing: pass a previous result's columns"))
    })?;
    item.extract::<PyReadwriteArray1<'py, T>>().map_err(|e| {
        to_pyerr(
            dict.py(),
            CoreError::config(format!("out[{name}]"), format!("not a writable 1-d array of the result's dtype: {e}")),
        )
    })
}

/// The raw columns of a fixed-point result, by name (int64, value units).
const RAW_COLUMNS: [&str; 4] = [
    "total_collateral_initial_raw",
    "total_collateral_maint_raw",
    "margin_requirement_initial_raw",
    "margin_requirement_maint_raw",
];

/// The ten standard columns of an `out=` mapping, borrowed for writing.
pub(crate) struct MarginColumnsOut<'py> {
    money: [PyReadwriteArray1<'py, f64>; 8],
    flags: [PyReadwriteArray1<'py, bool>; 2],
}

impl<'py> MarginColumnsOut<'py> {
    pub(crate) fn of(dict: &Bound<'py, PyDict>) -> PyResult<Self> {
        let f = |name: &str| -> PyResult<PyReadwriteArray1<'py, f64>> { column_of(dict, name) };
        Ok(MarginColumnsOut {
            money: [
                f("equity")?,
                f("upnl")?,
                f("adj_equity_initial")?,
                f("adj_equity_maint")?,
                f("im")?,
                f("mm")?,
                f("free_collateral")?,
                f("margin_ratio")?,
            ],
            flags: [column_of(dict, "liquidatable")?, column_of(dict, "bankrupt")?],
        })
    }

    pub(crate) fn as_mut(&mut self) -> PyResult<MarginColumnsMut<'_>> {
        let [eq, up, ai, am, im, mm, fc, mr] = &mut self.money;
        let [lq, bk] = &mut self.flags;
        Ok(MarginColumnsMut {
            equity: eq.as_slice_mut()?,
            upnl: up.as_slice_mut()?,
            adj_equity_initial: ai.as_slice_mut()?,
            adj_equity_maint: am.as_slice_mut()?,
            im: im.as_slice_mut()?,
            mm: mm.as_slice_mut()?,
            free_collateral: fc.as_slice_mut()?,
            margin_ratio: mr.as_slice_mut()?,
            liquidatable: lq.as_slice_mut()?,
            bankrupt: bk.as_slice_mut()?,
        })
    }
}

/// The SIMD levels this CPU runs (best last) and the one `CROSSMARGIN_SIMD` selects.
#[pyfunction]
pub fn simd_levels(py: Python<'_>) -> PyResult<(Vec<&'static str>, &'static str)> {
    let level = Level::from_env().map_err(|e| to_pyerr(py, e))?;
    Ok((Level::available().into_iter().map(Level::name).collect(), level.name()))
}
