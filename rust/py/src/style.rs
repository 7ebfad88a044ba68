//! Binding of `rlhf_diag_core::bt::style`: the battle-by-battle Newton of
//! style-controlled Bradley-Terry.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rlhf_diag_core::bt::style::{fit_style, StyleData, StyleOptions};
use rlhf_diag_core::CoreError;

use crate::err::to_py;

/// Fit `logit P(a wins) = theta_a - theta_b + gamma . z` (reference model's
/// theta at 0, L2 prior `alpha` on theta); returns a dict (see
/// `rlhf_diag.leaderboard.fit_style_controlled`).
#[pyfunction]
#[pyo3(signature = (a, b, z, y, w, k, reference, alpha, tol, max_iter))]
#[allow(clippy::too_many_arguments)]
fn bt_style_newton<'py>(
    py: Python<'py>,
    a: PyReadonlyArray1<'py, u32>,
    b: PyReadonlyArray1<'py, u32>,
    z: PyReadonlyArray2<'py, f64>,
    y: PyReadonlyArray1<'py, f64>,
    w: PyReadonlyArray1<'py, f64>,
    k: usize,
    reference: usize,
    alpha: f64,
    tol: f64,
    max_iter: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let p = z.shape()[1];
    let data = StyleData {
        a: a.as_slice()?,
        b: b.as_slice()?,
        z: z.as_slice()?,
        p,
        y: y.as_slice()?,
        w: w.as_slice()?,
    };
    let opts = StyleOptions {
        k,
        reference,
        alpha,
        tol,
        max_iter,
    };
    let fit = py.detach(|| fit_style(&data, &opts)).map_err(to_py)?;
    let n = fit.coef.len();
    let d = PyDict::new(py);
    d.set_item("coef", fit.coef.into_pyarray(py))?;
    let cov = fit
        .cov
        .map(|c| Array2::from_shape_vec((n, n), c).map(|m| m.into_pyarray(py)));
    let cov = cov
        .transpose()
        .map_err(|e| to_py(CoreError::Fit(e.to_string())))?;
    d.set_item("cov", cov)?;
    d.set_item("iterations", fit.iterations)?;
    d.set_item("grad_norm", fit.grad_norm)?;
    d.set_item("status", fit.status.as_str())?;
    d.set_item("separated", fit.separated)?;
    d.set_item("objective", fit.objective)?;
    d.set_item("total_weight", fit.total_weight)?;
    d.set_item("ridge_steps", fit.ridge_steps)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bt_style_newton, m)?)?;
    Ok(())
}
