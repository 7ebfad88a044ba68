//! Maps the core's one error enum to the Python exception classes defined in
//! `rlhf_diag.exceptions`, so that every error has a documented Python type.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rlhf_diag_core::CoreError;

fn exception_class(py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
    Ok(py.import("rlhf_diag.exceptions")?.getattr(name)?.unbind())
}

/// Convert a core error into the matching Python exception.
pub fn to_py(err: CoreError) -> PyErr {
    let (class, msg) = match &err {
        CoreError::InvalidInput(m) => ("InputError", m.clone()),
        CoreError::Fit(m) => ("FitError", m.clone()),
    };
    Python::attach(|py| match exception_class(py, class) {
        Ok(cls) => match cls.bind(py).call1((msg.clone(),)) {
            Ok(inst) => PyErr::from_value(inst),
            Err(e) => e,
        },
        Err(_) => PyRuntimeError::new_err(msg),
    })
}
