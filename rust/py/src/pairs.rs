//! Bindings of `rlhf_diag_core::pairs`.

use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use rlhf_diag_core::pairs;

use crate::err::to_py;

/// Split HH-style transcripts; returns an int64 array (n, 3) of split points:
/// shared prompt end, naive chosen end, naive rejected end, in characters
/// (-1 = no marker).
#[pyfunction]
fn split_dialogues<'py>(
    py: Python<'py>,
    chosen_offsets: PyReadonlyArray1<'py, i64>,
    chosen_data: PyReadonlyArray1<'py, u8>,
    rejected_offsets: PyReadonlyArray1<'py, i64>,
    rejected_data: PyReadonlyArray1<'py, u8>,
    marker: &str,
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let (co, cd) = (chosen_offsets.as_slice()?, chosen_data.as_slice()?);
    let (ro, rd) = (rejected_offsets.as_slice()?, rejected_data.as_slice()?);
    let splits = py
        .detach(|| pairs::split_dialogues(co, cd, ro, rd, marker.as_bytes()))
        .map_err(to_py)?;
    let n = splits.len();
    let flat: Vec<i64> = splits
        .iter()
        .flat_map(|s| [s.prompt_end, s.naive_chosen, s.naive_rejected])
        .collect();
    Ok(flat.into_pyarray(py).reshape([n, 3])?)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(split_dialogues, m)?)
}
