//! PyO3 bindings of `rlhf_diag_core`, built by maturin as `rlhf_diag._core`.
//!
//! Each binding converts its inputs, releases the GIL, calls the core, maps
//! the error and wraps the output. Validation, defaults, docs and result
//! objects live in Python.

use pyo3::prelude::*;

/// See the note on the dependency in Cargo.toml.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bt;
mod err;
mod kl;
mod logistic;
mod pairs;
mod style;
mod text;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    text::register(m)?;
    logistic::register(m)?;
    pairs::register(m)?;
    bt::register(m)?;
    kl::register(m)?;
    style::register(m)?;
    Ok(())
}
