//! Core errors → the exception classes of `crossmargin.exceptions`, with their structured
//! fields; panics → `CrossmarginError`, never a `PanicException`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crossmargin_core::CoreError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn exception(py: Python<'_>, class: &str, message: String, fields: &[(&str, Py<PyAny>)]) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = py.import("crossmargin.exceptions")?.getattr(class)?;
        let kwargs = PyDict::new(py);
        for (k, v) in fields {
            kwargs.set_item(k, v)?;
        }
        Ok(PyErr::from_value(cls.call((message,), Some(&kwargs))?))
    };
    build().unwrap_or_else(|e| e)
}

pub fn to_pyerr(py: Python<'_>, e: CoreError) -> PyErr {
    let message = e.to_string();
    match e {
        CoreError::Config { field, .. } => {
            exception(py, "ConfigError", message, &[("field", field.into_pyobject(py).unwrap().into_any().unbind())])
        }
        CoreError::Price { field, .. } => {
            exception(py, "PriceError", message, &[("field", field.into_pyobject(py).unwrap().into_any().unbind())])
        }
        CoreError::Book { table, row, other_row, column, .. } => exception(
            py,
            "BookError",
            message,
            &[
                ("table", table.name().into_pyobject(py).unwrap().into_any().unbind()),
                ("row", row.into_pyobject(py).unwrap().into_any().unbind()),
                ("other_row", other_row.into_pyobject(py).unwrap().into_any().unbind()),
                ("column", column.into_pyobject(py).unwrap().into_any().unbind()),
            ],
        ),
    }
}

/// Panics inside [`detached`] on purpose: the test suite's proof that a panic in core work
/// reaches Python as `CrossmarginError`, never as pyo3's `PanicException`.
#[pyfunction]
pub fn panic_guard_selftest(py: Python<'_>, message: String) -> PyResult<()> {
    detached(py, || -> Result<(), CoreError> { panic!("{message}") })
}

/// Runs core work without the GIL, turning a core error or a panic into a Python error.
pub fn detached<T: Send>(py: Python<'_>, work: impl FnOnce() -> Result<T, CoreError> + Send) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(work)));
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_pyerr(py, e)),
        Err(panic) => Err(panic_error(py, panic)),
    }
}

/// Runs work that holds the GIL (it reads Python objects), turning a panic into a Python
/// error as [`detached`] does.
pub fn guarded<T>(py: Python<'_>, work: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| Err(panic_error(py, panic)))
}

/// `CrossmarginError` naming a panic's message (never pyo3's `PanicException`).
fn panic_error(py: Python<'_>, panic: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    exception(py, "CrossmarginError", format!("internal error in the engine: {what}"), &[])
}
