//! Bindings of `rlhf_diag_core::text`: Arrow string buffers in, an `n x 12`
//! `uint32` array out.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rlhf_diag_core::text::{self as core, FEATURE_NAMES, N_FEATURES};

use crate::err::to_py;

/// Twelve counts per text from Arrow large-string `offsets` (int64, n + 1)
/// and `data` (uint8); `n_jobs` threads, or rayon's default pool when None.
#[pyfunction]
#[pyo3(signature = (offsets, data, n_jobs=None))]
#[allow(clippy::needless_pass_by_value)] // PyO3 hands the arrays over by value
fn text_features<'py>(
    py: Python<'py>,
    offsets: PyReadonlyArray1<'py, i64>,
    data: PyReadonlyArray1<'py, u8>,
    n_jobs: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<u32>>> {
    let offsets = offsets.as_slice()?;
    let data = data.as_slice()?;
    let flat = py
        .detach(|| core::text_features_with_threads(offsets, data, n_jobs))
        .map_err(to_py)?;
    let rows = flat.len() / N_FEATURES;
    let out = Array2::from_shape_vec((rows, N_FEATURES), flat)
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(out.into_pyarray(py))
}

/// The twelve column names, in output order.
#[pyfunction]
fn feature_names() -> Vec<&'static str> {
    FEATURE_NAMES.to_vec()
}

/// The phrase lists: `(apologies, refusals)`.
#[pyfunction]
fn phrase_lists() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        core::APOLOGY_PHRASES.to_vec(),
        core::REFUSAL_PHRASES.to_vec(),
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(text_features, m)?)?;
    m.add_function(wrap_pyfunction!(feature_names, m)?)?;
    m.add_function(wrap_pyfunction!(phrase_lists, m)?)?;
    Ok(())
}
