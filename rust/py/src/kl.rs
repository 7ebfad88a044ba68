//! Bindings of `rlhf_diag_core::kl` (placeholder until that work lands).

use pyo3::prelude::*;

pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
