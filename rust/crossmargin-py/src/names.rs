//! Columns of names picked by code (numpy's `names[codes]`) as object arrays: millions of rows
//! referencing a handful of `str` objects (a market's symbol, an event's kind). Parallel tasks
//! store the pointers without the GIL; each name's reference count is then raised once for
//! every row holding it, with the GIL. numpy's own gather counts every row's reference through
//! generic copy code on one thread: 22 ms for 4M rows, most of a liquidation-prices call's
//! serial part.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use rayon::prelude::*;

use crate::engine::PyEngine;

/// Rows per task.
const CHUNK: usize = 1 << 16;

/// `names[codes]` as an object array; a code outside `0..len(names)` gives `missing`, or an
/// IndexError naming its row without one. Runs on the engine's pool.
pub fn take<'py, T>(
    py: Python<'py>,
    e: &PyEngine,
    names: &[Bound<'py, PyAny>],
    codes: &[T],
    missing: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray1<Py<PyAny>>>>
where
    T: Copy + Into<i64> + Send + Sync + std::fmt::Display,
{
    let n = names.len();
    let slot = |code: T| -> usize { usize::try_from(code.into()).ok().filter(|&i| i < n).unwrap_or(n) };
    if missing.is_none() {
        // The first chunk holding a code out of range, then its first such row (a
        // per-row position_first pays a shared check per row).
        let bad = py.detach(|| {
            e.install(|| codes.par_chunks(CHUNK).position_first(|chunk| chunk.iter().any(|&c| slot(c) == n)))
        });
        if let Some(row) = bad.and_then(|c| (c * CHUNK..codes.len()).find(|&i| slot(codes[i]) == n)) {
            return Err(PyIndexError::new_err(format!("codes[{row}] = {} is not an index into {n} names", codes[row])));
        }
    }
    // The pointers, the fallback last; addresses as usize to cross into the pool.
    let table: Vec<usize> = names.iter().chain(missing).map(|x| x.as_ptr() as usize).collect();
    // SAFETY: a new 1-D object array of codes.len() elements; numpy zero-fills the memory of
    // a dtype that needs initialisation (object), so until every slot is written below a
    // release of the array only meets NULL slots, which it skips.
    let out = unsafe { PyArray1::<Py<PyAny>>::new(py, [codes.len()], false) };
    // SAFETY: the array is this function's alone (nothing else has a reference yet), its data
    // contiguous, of codes.len() pointer-sized slots.
    let slots = unsafe { std::slice::from_raw_parts_mut(out.data().cast::<usize>(), codes.len()) };
    let counts = py.detach(|| {
        e.install(|| {
            slots
                .par_chunks_mut(CHUNK)
                .zip(codes.par_chunks(CHUNK))
                .map(|(out, codes)| {
                    let mut counts = vec![0usize; table.len()];
                    for (o, &c) in out.iter_mut().zip(codes) {
                        let i = slot(c);
                        *o = table[i];
                        counts[i] += 1;
                    }
                    counts
                })
                .reduce(|| vec![0; table.len()], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect())
        })
    });
    // Every slot now holds a name: one reference each, counted with the GIL held.
    for (&ptr, &count) in table.iter().zip(&counts) {
        for _ in 0..count {
            // SAFETY: `ptr` is a live object (held by `names` / `missing`), the GIL is held.
            unsafe { ffi::Py_INCREF(ptr as *mut ffi::PyObject) };
        }
    }
    Ok(out)
}

/// [`take`] of a column from Python (`Engine.take_names`): codes in one of the integer dtypes
/// the engine's columns use, contiguous.
pub fn take_in<'py>(
    py: Python<'py>,
    e: &PyEngine,
    names: &[Bound<'py, PyAny>],
    codes: &Bound<'py, PyAny>,
    missing: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray1<Py<PyAny>>>> {
    let wrong = || PyTypeError::new_err("codes: a contiguous 1-D array of uint8, uint32, int32 or int64 is needed");
    macro_rules! try_dtype {
        ($t:ty) => {
            if let Ok(c) = codes.extract::<PyReadonlyArray1<'py, $t>>() {
                return take(py, e, names, c.as_slice().map_err(|_| wrong())?, missing);
            }
        };
    }
    try_dtype!(u8);
    try_dtype!(u32);
    try_dtype!(i32);
    try_dtype!(i64);
    Err(wrong())
}
