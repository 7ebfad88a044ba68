//! Bindings of `rlhf_diag_core::bt`: the leaderboard engine.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rlhf_diag_core::bt::{self, Battles, BootOptions, FitOptions, Ties};

use crate::err::to_py;

fn shape_err(e: impl std::fmt::Display) -> PyErr {
    to_py(rlhf_diag_core::CoreError::InvalidInput(e.to_string()))
}

/// Collapse battles, fit Bradley-Terry and optionally bootstrap it; returns a
/// dict of arrays (see `rlhf_diag.leaderboard` for the meaning of each key).
#[pyfunction]
#[pyo3(signature = (a, b, outcome, weight, n_models, ties, alpha, anchor, tol, max_iter,
                    covariance, rounds, seed, level, n_threads))]
#[allow(clippy::too_many_arguments)]
fn bt_leaderboard<'py>(
    py: Python<'py>,
    a: PyReadonlyArray1<'py, u32>,
    b: PyReadonlyArray1<'py, u32>,
    outcome: PyReadonlyArray1<'py, u8>,
    weight: Option<PyReadonlyArray1<'py, f64>>,
    n_models: usize,
    ties: &str,
    alpha: f64,
    anchor: Option<usize>,
    tol: f64,
    max_iter: usize,
    covariance: bool,
    rounds: usize,
    seed: u64,
    level: f64,
    n_threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let (a, b, o) = (a.as_slice()?, b.as_slice()?, outcome.as_slice()?);
    let w = match &weight {
        Some(w) => Some(w.as_slice()?),
        None => None,
    };
    let opts = FitOptions {
        ties: Ties::parse(ties).map_err(to_py)?,
        alpha,
        anchor,
        tol,
        max_iter,
        covariance,
    };
    let boot = BootOptions {
        rounds,
        seed,
        level,
        n_threads,
    };
    let battles = Battles {
        a,
        b,
        outcome: o,
        weight: w,
    };
    let lb = py
        .detach(|| bt::leaderboard(n_models, &battles, &opts, Some(&boot)))
        .map_err(to_py)?;
    let d = PyDict::new(py);
    let f = lb.fit;
    let dim = f.cov_factor_dim();
    d.set_item("theta", f.theta.into_pyarray(py))?;
    d.set_item(
        "standing",
        f.standing
            .iter()
            .map(|s| *s as u8)
            .collect::<Vec<u8>>()
            .into_pyarray(py),
    )?;
    d.set_item("component", f.component.into_pyarray(py))?;
    d.set_item("block", f.block.into_pyarray(py))?;
    d.set_item("never_win", f.never_win.into_pyarray(py))?;
    d.set_item("never_lose", f.never_lose.into_pyarray(py))?;
    d.set_item("strongly_connected", f.strongly_connected)?;
    d.set_item("tie_param", f.tie_param)?;
    d.set_item("tie_param_se", f.tie_param_se)?;
    d.set_item("tie_param_at_boundary", f.tie_param_at_boundary)?;
    d.set_item("iterations", f.iterations)?;
    d.set_item("grad_norm", f.grad_norm)?;
    d.set_item("converged", f.converged)?;
    let factor = f
        .cov_factor
        .map(|c| Array2::from_shape_vec((dim, dim), c).map(|m| m.into_pyarray(py)));
    d.set_item("cov_factor", factor.transpose().map_err(shape_err)?)?;
    d.set_item("var", f.var.map(|v| v.into_pyarray(py)))?;
    d.set_item("battles", lb.totals.battles.into_pyarray(py))?;
    d.set_item("wins", lb.totals.wins.into_pyarray(py))?;
    d.set_item("losses", lb.totals.losses.into_pyarray(py))?;
    d.set_item("ties", lb.totals.ties.into_pyarray(py))?;
    d.set_item("n_cells", lb.n_cells)?;
    if let Some(bs) = lb.bootstrap {
        let shape = (bs.rounds, bs.n_models);
        d.set_item(
            "boot_draws",
            Array2::from_shape_vec(shape, bs.draws)
                .map_err(shape_err)?
                .into_pyarray(py),
        )?;
        d.set_item(
            "boot_defined",
            Array2::from_shape_vec(shape, bs.defined)
                .map_err(shape_err)?
                .into_pyarray(py),
        )?;
        d.set_item("ci_low", bs.ci_low.into_pyarray(py))?;
        d.set_item("ci_high", bs.ci_high.into_pyarray(py))?;
        d.set_item("n_defined", bs.n_defined.into_pyarray(py))?;
        d.set_item("n_degenerate", bs.n_degenerate.into_pyarray(py))?;
        d.set_item("tie_draws", bs.tie_draws.into_pyarray(py))?;
        d.set_item("tie_ci", bs.tie_ci)?;
        d.set_item("n_failed", bs.n_failed)?;
        d.set_item("n_unconverged", bs.n_unconverged)?;
    }
    Ok(d)
}

/// `(max_a, max_b, n_self, max_outcome)` of the battle arrays in one
/// parallel pass; the maxima are None for empty arrays.
#[pyfunction]
fn bt_scan(
    py: Python<'_>,
    a: PyReadonlyArray1<'_, u32>,
    b: PyReadonlyArray1<'_, u32>,
    outcome: PyReadonlyArray1<'_, u8>,
) -> PyResult<(Option<u32>, Option<u32>, u64, Option<u8>)> {
    let (a, b, o) = (a.as_slice()?, b.as_slice()?, outcome.as_slice()?);
    let s = py.detach(|| bt::scan(a, b, o)).map_err(to_py)?;
    Ok((s.max_a, s.max_b, s.n_self, s.max_outcome))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bt_leaderboard, m)?)?;
    m.add_function(wrap_pyfunction!(bt_scan, m)?)?;
    Ok(())
}
