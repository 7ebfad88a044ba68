//! Bindings of `rlhf_diag_core::logistic`: conversions only. The feature
//! matrix may be float64 or float32; either is read in place.

use numpy::{
    IntoPyArray, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rlhf_diag_core::logistic::{self, FitOptions, LogisticFit, Solver};

use crate::err::to_py;

/// A C-contiguous 2-D feature matrix of either precision.
enum Matrix<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
}

fn matrix<'py>(x: &Bound<'py, PyAny>) -> PyResult<Matrix<'py>> {
    if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f64>>() {
        return Ok(Matrix::F64(a));
    }
    if let Ok(a) = x.extract::<PyReadonlyArray2<'py, f32>>() {
        return Ok(Matrix::F32(a));
    }
    Err(PyTypeError::new_err(
        "x must be a 2-D float64 or float32 numpy array",
    ))
}

/// The matrix as (row-major slice, rows, columns).
fn parts<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray2<'_, T>,
) -> PyResult<(&'a [T], usize, usize)> {
    let shape = a.shape();
    Ok((a.as_slice()?, shape[0], shape[1]))
}

/// Evaluate `$body` with the GIL released and `$s, $n, $p` bound to the
/// matrix's row-major slice and shape, in whichever precision it came.
macro_rules! on_matrix {
    ($py:expr, $x:expr, |$s:ident, $n:ident, $p:ident| $body:expr) => {
        match &$x {
            Matrix::F64(a) => {
                let ($s, $n, $p) = parts(a)?;
                $py.detach(|| $body)
            }
            Matrix::F32(a) => {
                let ($s, $n, $p) = parts(a)?;
                $py.detach(|| $body)
            }
        }
    };
}

/// Solver settings passed as one dict-free tuple: (l1, solver, history,
/// covariance).
type Extra<'a> = (f64, &'a str, usize, bool);

fn options(
    l2: f64,
    unpenalized: Option<Vec<bool>>,
    tol: f64,
    max_iter: usize,
    extra: Extra,
) -> PyResult<FitOptions> {
    let (l1, solver, history, covariance) = extra;
    Ok(FitOptions {
        l2,
        l1,
        unpenalized,
        tol,
        max_iter,
        solver: Solver::parse(solver).map_err(to_py)?,
        history,
        covariance,
    })
}

/// Fit the logistic model; returns a dict of arrays and status fields.
#[pyfunction]
#[pyo3(signature = (x, y, w=None, l2=0.0, unpenalized=None, tol=1e-8, max_iter=100, l1=0.0, solver="auto", history=10, covariance=true))]
#[allow(clippy::too_many_arguments)]
fn fit_logistic<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: PyReadonlyArray1<'py, f64>,
    w: Option<PyReadonlyArray1<'py, f64>>,
    l2: f64,
    unpenalized: Option<Vec<bool>>,
    tol: f64,
    max_iter: usize,
    l1: f64,
    solver: &str,
    history: usize,
    covariance: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let x = matrix(x)?;
    let (y, w) = (y.as_slice()?, w.as_ref().map(|a| a.as_slice()).transpose()?);
    let opts = options(
        l2,
        unpenalized,
        tol,
        max_iter,
        (l1, solver, history, covariance),
    )?;
    let fitted = on_matrix!(py, x, |s, n, p| logistic::fit(s, n, p, y, w, &opts)).map_err(to_py)?;
    fit_dict(py, fitted)
}

fn fit_dict(py: Python<'_>, f: LogisticFit) -> PyResult<Bound<'_, PyDict>> {
    let p = f.coef.len();
    let d = PyDict::new(py);
    d.set_item("coef", f.coef.into_pyarray(py))?;
    d.set_item("se", f.se.map(|v| v.into_pyarray(py)))?;
    let cov = f
        .cov
        .map(|c| c.into_pyarray(py).reshape([p, p]))
        .transpose()?;
    d.set_item("cov", cov)?;
    d.set_item("n_iter", f.n_iter)?;
    d.set_item("grad_norm", f.grad_norm)?;
    d.set_item("converged", f.converged)?;
    d.set_item("status", f.status.as_str())?;
    d.set_item("nll", f.nll)?;
    d.set_item("penalty", f.penalty)?;
    d.set_item("separated_features", f.separated_features)?;
    d.set_item(
        "separating_direction",
        f.separating_direction.map(|v| v.into_pyarray(py)),
    )?;
    d.set_item("ridge_steps", f.ridge_steps)?;
    d.set_item("solver", f.solver.as_str())?;
    d.set_item("n_obs", f.n_obs)?;
    d.set_item("total_weight", f.total_weight)?;
    Ok(d)
}

/// k-fold cross-validation of the logistic fit; returns a dict.
#[pyfunction]
#[pyo3(signature = (x, y, w=None, k=5, seed=0, l2=0.0, unpenalized=None, tol=1e-8, max_iter=100, l1=0.0, solver="auto", history=10, covariance=true))]
#[allow(clippy::too_many_arguments)]
fn kfold_logistic<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: PyReadonlyArray1<'py, f64>,
    w: Option<PyReadonlyArray1<'py, f64>>,
    k: usize,
    seed: u64,
    l2: f64,
    unpenalized: Option<Vec<bool>>,
    tol: f64,
    max_iter: usize,
    l1: f64,
    solver: &str,
    history: usize,
    covariance: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let x = matrix(x)?;
    let (y, w) = (y.as_slice()?, w.as_ref().map(|a| a.as_slice()).transpose()?);
    let opts = options(
        l2,
        unpenalized,
        tol,
        max_iter,
        (l1, solver, history, covariance),
    )?;
    let r = on_matrix!(py, x, |s, n, p| logistic::kfold(
        s, n, p, y, w, k, seed, &opts
    ))
    .map_err(to_py)?;
    let d = PyDict::new(py);
    let folds: Vec<i64> = r.fold_of_row.iter().map(|&f| f as i64).collect();
    d.set_item("fold_of_row", folds.into_pyarray(py))?;
    d.set_item("accuracy", r.accuracy)?;
    d.set_item("log_loss", r.log_loss)?;
    d.set_item("fold_accuracy", r.fold_accuracy)?;
    d.set_item("fold_log_loss", r.fold_log_loss)?;
    d.set_item("fold_n", r.fold_n)?;
    d.set_item("fold_weight", r.fold_weight)?;
    let status: Vec<&str> = r.fold_status.iter().map(|s| s.as_str()).collect();
    d.set_item("fold_status", status)?;
    d.set_item("fold_separated", r.fold_separated)?;
    d.set_item("held_out_prob", r.held_out_prob.map(|v| v.into_pyarray(py)))?;
    Ok(d)
}

/// One logistic fit per group of rows (`indices[offsets[g]..offsets[g+1]]`),
/// in parallel; returns a list of dicts as `fit_logistic`.
#[pyfunction]
#[pyo3(signature = (x, y, offsets, indices, w=None, l2=0.0, unpenalized=None, tol=1e-8, max_iter=100, l1=0.0, solver="auto", history=10, covariance=true))]
#[allow(clippy::too_many_arguments)]
fn fit_logistic_groups<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    y: PyReadonlyArray1<'py, f64>,
    offsets: PyReadonlyArray1<'py, u64>,
    indices: PyReadonlyArray1<'py, u64>,
    w: Option<PyReadonlyArray1<'py, f64>>,
    l2: f64,
    unpenalized: Option<Vec<bool>>,
    tol: f64,
    max_iter: usize,
    l1: f64,
    solver: &str,
    history: usize,
    covariance: bool,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let x = matrix(x)?;
    let (y, w) = (y.as_slice()?, w.as_ref().map(|a| a.as_slice()).transpose()?);
    let offsets = usizes(offsets.as_slice()?);
    let indices = usizes(indices.as_slice()?);
    let opts = options(
        l2,
        unpenalized,
        tol,
        max_iter,
        (l1, solver, history, covariance),
    )?;
    let fits = on_matrix!(py, x, |s, n, p| logistic::fit_groups(
        s, n, p, y, w, &offsets, &indices, &opts
    ))
    .map_err(to_py)?;
    fits.into_iter().map(|f| fit_dict(py, f)).collect()
}

fn usizes(v: &[u64]) -> Vec<usize> {
    v.iter()
        .map(|&i| usize::try_from(i).unwrap_or(usize::MAX))
        .collect()
}

/// The two-way logistic model (per-group coefficients on `z`, one ridge-
/// penalised effect per item); returns a dict.
#[pyfunction]
#[pyo3(signature = (z, group, item, y, n_groups, n_items, w=None, l2=0.1, tol=1e-10, max_iter=100))]
#[allow(clippy::too_many_arguments)]
fn fit_two_way<'py>(
    py: Python<'py>,
    z: PyReadonlyArray2<'py, f64>,
    group: PyReadonlyArray1<'py, u64>,
    item: PyReadonlyArray1<'py, u64>,
    y: PyReadonlyArray1<'py, f64>,
    n_groups: usize,
    n_items: usize,
    w: Option<PyReadonlyArray1<'py, f64>>,
    l2: f64,
    tol: f64,
    max_iter: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (zs, _, q) = parts(&z)?;
    let (group, item) = (usizes(group.as_slice()?), usizes(item.as_slice()?));
    let (y, w) = (y.as_slice()?, w.as_ref().map(|a| a.as_slice()).transpose()?);
    let data = logistic::TwoWayData {
        z: zs,
        q,
        group: &group,
        item: &item,
        y,
        w,
        n_groups,
        n_items,
    };
    let f = py
        .detach(|| logistic::fit_two_way(&data, l2, tol, max_iter))
        .map_err(to_py)?;
    let d = PyDict::new(py);
    let beta = f.beta.into_pyarray(py).reshape([n_groups, q])?;
    d.set_item("beta", beta)?;
    d.set_item("g", f.g.into_pyarray(py))?;
    d.set_item("n_iter", f.n_iter)?;
    d.set_item("grad_norm", f.grad_norm)?;
    d.set_item("status", f.status.as_str())?;
    d.set_item("objective", f.objective)?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit_logistic, m)?)?;
    m.add_function(wrap_pyfunction!(fit_logistic_groups, m)?)?;
    m.add_function(wrap_pyfunction!(fit_two_way, m)?)?;
    m.add_function(wrap_pyfunction!(kfold_logistic, m)?)
}
