//! Dictionary encoding of symbol columns (crossmargin_core::symbols): an Arrow string array's
//! buffers without the GIL and in parallel, a numpy object column of str with it.

use crossmargin_core::symbols::{encode_strings, join, Dictionary, Encoded, LocalCodes, NotSymbols, Offset};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{detached, guarded};

/// A tuple (codes: uint32, one per row; the sorted labels), or an int: the first null row.
/// None in its place: the column is not what this encoder reads (bytes that are not UTF-8,
/// a cell that is not a str), and the caller's general path decides.
#[derive(IntoPyObject)]
pub enum Outcome<'py> {
    Encoded(Bound<'py, PyArray1<u32>>, Vec<String>),
    Missing(usize),
}

fn outcome(py: Python<'_>, r: Result<Encoded, NotSymbols>) -> Option<Outcome<'_>> {
    match r {
        Ok(e) => Some(Outcome::Encoded(e.codes.into_pyarray(py), e.labels)),
        Err(NotSymbols::Missing(row)) => Some(Outcome::Missing(row)),
        Err(NotSymbols::NotUtf8(_)) => None,
    }
}

/// An Arrow `string` / `large_string` array from its buffers: `offsets` (int32 or int64,
/// len + 1 of them, from the array's offset on), `data`, and the validity bitmap with the
/// array's offset in bits (None: no nulls).
#[pyfunction]
#[pyo3(signature = (offsets, data, validity, bit_offset))]
pub fn encode_arrow_strings<'py>(
    py: Python<'py>,
    offsets: &Bound<'py, PyAny>,
    data: PyReadonlyArray1<'py, u8>,
    validity: Option<PyReadonlyArray1<'py, u8>>,
    bit_offset: usize,
) -> PyResult<Option<Outcome<'py>>> {
    let data = data.as_slice()?;
    let bits = validity.as_ref().map(|v| v.as_slice()).transpose()?;
    let r = if let Ok(o) = offsets.extract::<PyReadonlyArray1<'py, i64>>() {
        encode_with(py, o.as_slice()?, data, bits, bit_offset)?
    } else {
        encode_with(py, offsets.extract::<PyReadonlyArray1<'py, i32>>()?.as_slice()?, data, bits, bit_offset)?
    };
    Ok(r.and_then(|r| outcome(py, r)))
}

/// [`encode_strings`] without the GIL, once the buffers are checked to hold every row the
/// offsets name (None otherwise).
fn encode_with<O: Offset + Into<i64>>(
    py: Python<'_>,
    offsets: &[O],
    data: &[u8],
    bits: Option<&[u8]>,
    bit_offset: usize,
) -> PyResult<Option<Result<Encoded, NotSymbols>>> {
    let rows = offsets.len().saturating_sub(1);
    let held = offsets.last().is_none_or(|&x| x.into() <= data.len() as i64)
        && offsets.windows(2).all(|w| 0 <= w[0].into() && w[0].into() <= w[1].into())
        && bits.is_none_or(|b| (rows + bit_offset).div_ceil(8) <= b.len());
    if !held {
        return Ok(None);
    }
    let valid = bits.map(|b| (b, bit_offset));
    Ok(Some(detached(py, || Ok(encode_strings(offsets, data, valid)))?))
}

/// A numpy object column of str. A cell that repeats the previous object at its place in a
/// small pointer cache (a column gathered from a list of symbols holds a handful of objects)
/// takes its code without reading the text.
#[pyfunction]
pub fn encode_str_objects<'py>(
    py: Python<'py>,
    cells: PyReadonlyArray1<'py, Py<PyAny>>,
) -> PyResult<Option<Outcome<'py>>> {
    let cells = cells.as_slice()?;
    // With the GIL held throughout: the text read is borrowed from the column's objects.
    guarded(py, || encode_objects(py, cells))
}

fn encode_objects<'py>(py: Python<'py>, cells: &[Py<PyAny>]) -> PyResult<Option<Outcome<'py>>> {
    let mut local = LocalCodes::new(cells.len());
    let mut dictionary = Dictionary::default();
    let mut seen = [(std::ptr::null_mut(), 0u32); 256];
    for c in cells {
        let p = c.as_ptr();
        let at = (p as usize >> 4) & 255;
        if seen[at].0 == p {
            local.codes.push(seen[at].1);
            continue;
        }
        let Ok(s) = c.cast_bound::<PyString>(py) else { return Ok(None) };
        let Ok(text) = s.to_str() else { return Ok(None) };
        seen[at] = (p, local.push(&mut dictionary, text.as_bytes()));
    }
    Ok(outcome(py, join(vec![local])))
}
