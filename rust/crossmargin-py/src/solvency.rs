//! Solvency: liabilities, reserves and the Merkle-sum tree as Python objects. Conversion only.

use crossmargin_core::solvency::{
    leaf_nonce as core_leaf_nonce, leaves, liabilities, reserves_value, verify, InclusionProof, MerkleSumTree, Node,
};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::args::{margin_context, PricesIn};
use crate::book::PyBookView;
use crate::engine::PyEngine;
use crate::errors::detached;

/// The built tree (all levels), serving inclusion proofs by leaf index.
#[pyclass(frozen, module = "crossmargin._core", name = "MerkleSumTree")]
pub struct PyTree {
    inner: MerkleSumTree,
}

#[pymethods]
impl PyTree {
    #[getter]
    fn root_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.root().hash)
    }

    #[getter]
    fn total(&self) -> u128 {
        self.inner.root().sum
    }

    #[getter]
    fn n_leaves(&self) -> usize {
        self.inner.n_leaves()
    }

    /// (leaf hash, leaf sum) of one leaf.
    fn leaf<'py>(&self, py: Python<'py>, index: usize) -> PyResult<(Bound<'py, PyBytes>, u128)> {
        let n = self.inner.levels[0].get(index).ok_or_else(|| out_of_range(index))?;
        Ok((PyBytes::new(py, &n.hash), n.sum))
    }

    /// Siblings (hash, sum) from the leaf up to the root's children.
    fn proof<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Vec<(Bound<'py, PyBytes>, u128)>> {
        let path = self.inner.proof(index).ok_or_else(|| out_of_range(index))?;
        Ok(path.iter().map(|n| (PyBytes::new(py, &n.hash), n.sum)).collect())
    }
}

fn out_of_range(index: usize) -> PyErr {
    pyo3::exceptions::PyIndexError::new_err(format!("leaf index {index} is out of range"))
}

/// Liabilities and reserves at one set of prices; with `seed`, also the tree: the
/// conversions of `Engine.solvency`.
pub fn solvency<'py>(
    py: Python<'py>,
    e: &PyEngine,
    b: &PyBookView,
    prices: &PricesIn<'_>,
    reserves: &PyReadonlyArray1<'_, f64>,
    seed: Option<Vec<u8>>,
) -> PyResult<(Bound<'py, PyDict>, Option<PyTree>)> {
    let ctx = margin_context(py, e.universe(), b, prices)?;
    let reserves = reserves.as_slice()?;
    let book = b.rows(py)?;
    let (l, total, minor, value, tree) = detached(py, || {
        e.install(|| {
            let value = reserves_value(&ctx, reserves)?;
            let l = liabilities(book, &ctx)?;
            let total = l.total()?;
            // uint64 when every liability fits (any real book), else Python ints.
            let minor = l.liability.iter().map(|&x| u64::try_from(x)).collect::<Result<Vec<u64>, _>>().ok();
            let tree = match &seed {
                Some(s) => Some(MerkleSumTree::build(leaves(&book.accounts, &l.liability, s))?),
                None => None,
            };
            Ok((l, total, minor, value, tree))
        })
    })?;
    let out = PyDict::new(py);
    out.set_item("equity", l.equity.into_pyarray(py))?;
    match minor {
        Some(m) => out.set_item("liability_minor", m.into_pyarray(py))?,
        None => out.set_item("liability_minor", &l.liability)?,
    }
    out.set_item("total_minor", total)?;
    out.set_item("claims_minor", l.claims.iter().map(|m| m.0).collect::<Vec<i128>>())?;
    out.set_item("debts_minor", l.debts.iter().map(|m| m.0).collect::<Vec<i128>>())?;
    out.set_item("negative_accounts", l.negative_accounts)?;
    out.set_item("deficit_minor", l.deficit.0)?;
    out.set_item("reserves_usd", value.iter().map(|v| v.0).collect::<Vec<f64>>().into_pyarray(py))?;
    out.set_item("weighted_reserves_usd", value.iter().map(|v| v.1).collect::<Vec<f64>>().into_pyarray(py))?;
    Ok((out, tree.map(|inner| PyTree { inner })))
}

fn hash32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

/// Recomputes the root from a leaf and its path; False on any mismatch or malformed input.
#[pyfunction]
pub fn verify_inclusion(
    account: i64,
    liability: u128,
    nonce: Vec<u8>,
    index: u128,
    path: Vec<(Vec<u8>, u128)>,
    root_hash: Vec<u8>,
    total: u128,
) -> bool {
    let (Some(nonce), Some(root)) = (hash32(&nonce), hash32(&root_hash)) else {
        return false;
    };
    let mut steps = Vec::with_capacity(path.len());
    for (h, sum) in &path {
        match hash32(h) {
            Some(hash) => steps.push(Node { hash, sum: *sum }),
            None => return false,
        }
    }
    verify(&InclusionProof { account, liability, nonce, index, path: steps }, &root, total)
}

/// The per-account salt derived from the secret seed.
#[pyfunction]
pub fn leaf_nonce<'py>(py: Python<'py>, seed: Vec<u8>, account: i64) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &core_leaf_nonce(&seed, account))
}
