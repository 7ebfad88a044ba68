//! Bindings of `rlhf_diag_core::kl`: convert, release the GIL, call, map
//! the error, wrap the output.

use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rlhf_diag_core::kl::{self, Clamp, Estimator, Selection, Tokens};

use crate::err::to_py;

type F64s<'py> = PyReadonlyArray1<'py, f64>;
type I64s<'py> = PyReadonlyArray1<'py, i64>;
type U8s<'py> = PyReadonlyArray1<'py, u8>;

fn clamp_of(bounds: Option<(f64, f64)>) -> rlhf_diag_core::Result<Option<Clamp>> {
    bounds.map(|(lo, hi)| Clamp::new(lo, hi)).transpose()
}

/// Sum k1, k2, k3, abs and mse over the selected tokens of each sequence.
#[pyfunction]
#[pyo3(signature = (policy, reference, offsets, mask=None, lengths=None, clamp=None))]
fn kl_reduce<'py>(
    py: Python<'py>,
    policy: F64s<'py>,
    reference: F64s<'py>,
    offsets: I64s<'py>,
    mask: Option<U8s<'py>>,
    lengths: Option<I64s<'py>>,
    clamp: Option<(f64, f64)>,
) -> PyResult<Bound<'py, PyDict>> {
    let (p, q, o) = (
        policy.as_slice()?,
        reference.as_slice()?,
        offsets.as_slice()?,
    );
    let m = mask.as_ref().map(PyReadonlyArray1::as_slice).transpose()?;
    let l = lengths
        .as_ref()
        .map(PyReadonlyArray1::as_slice)
        .transpose()?;
    let r = py
        .detach(|| {
            let tokens = Tokens::new(o, Selection::from_options(m, l)?, p.len())?;
            kl::reduce(p, q, &tokens, clamp_of(clamp)?)
        })
        .map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("n_tokens", r.n_tokens.into_pyarray(py))?;
    out.set_item("sum_policy", r.sum_policy.into_pyarray(py))?;
    out.set_item("sum_ref", r.sum_ref.into_pyarray(py))?;
    out.set_item("last", r.last.into_pyarray(py))?;
    let [k1, k2, k3, abs, mse] = r.sums;
    for (name, v) in [
        ("k1", k1),
        ("k2", k2),
        ("k3", k3),
        ("abs", abs),
        ("mse", mse),
    ] {
        out.set_item(name, v.into_pyarray(py))?;
    }
    out.set_item("clamped", r.clamped.to_vec())?;
    Ok(out)
}

/// Per-token values of one estimator, aligned with the input (0 outside
/// the selection), and the number of tokens the clamp touched.
#[pyfunction]
#[pyo3(signature = (policy, reference, offsets, estimator, mask=None, lengths=None, clamp=None))]
#[allow(clippy::too_many_arguments)]
fn kl_token_values<'py>(
    py: Python<'py>,
    policy: F64s<'py>,
    reference: F64s<'py>,
    offsets: I64s<'py>,
    estimator: &str,
    mask: Option<U8s<'py>>,
    lengths: Option<I64s<'py>>,
    clamp: Option<(f64, f64)>,
) -> PyResult<(Bound<'py, numpy::PyArray1<f64>>, u64)> {
    let (p, q, o) = (
        policy.as_slice()?,
        reference.as_slice()?,
        offsets.as_slice()?,
    );
    let m = mask.as_ref().map(PyReadonlyArray1::as_slice).transpose()?;
    let l = lengths
        .as_ref()
        .map(PyReadonlyArray1::as_slice)
        .transpose()?;
    let (values, n) = py
        .detach(|| {
            let tokens = Tokens::new(o, Selection::from_options(m, l)?, p.len())?;
            let est = Estimator::from_name(estimator)?;
            kl::token_values(p, q, &tokens, est, clamp_of(clamp)?)
        })
        .map_err(to_py)?;
    Ok((values.into_pyarray(py), n))
}

/// Exact KL summed per sequence from row-major (rows × vocab) logits.
#[pyfunction]
#[pyo3(signature = (policy, reference, vocab, offsets, mask=None, lengths=None))]
#[allow(clippy::type_complexity)]
fn kl_full<'py>(
    py: Python<'py>,
    policy: F64s<'py>,
    reference: F64s<'py>,
    vocab: usize,
    offsets: I64s<'py>,
    mask: Option<U8s<'py>>,
    lengths: Option<I64s<'py>>,
) -> PyResult<(
    Bound<'py, numpy::PyArray1<f64>>,
    Bound<'py, numpy::PyArray1<i64>>,
)> {
    let (p, q, o) = (
        policy.as_slice()?,
        reference.as_slice()?,
        offsets.as_slice()?,
    );
    let m = mask.as_ref().map(PyReadonlyArray1::as_slice).transpose()?;
    let l = lengths
        .as_ref()
        .map(PyReadonlyArray1::as_slice)
        .transpose()?;
    let r = py
        .detach(|| {
            let n_rows = p.len().checked_div(vocab).unwrap_or(0);
            let tokens = Tokens::new(o, Selection::from_options(m, l)?, n_rows)?;
            kl::full_kl(p, q, vocab, &tokens)
        })
        .map_err(to_py)?;
    Ok((r.sums.into_pyarray(py), r.n_tokens.into_pyarray(py)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(kl_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(kl_token_values, m)?)?;
    m.add_function(wrap_pyfunction!(kl_full, m)?)?;
    m.add("KL_LOGPROB_TOL", kl::LOGPROB_TOL)?;
    Ok(())
}
