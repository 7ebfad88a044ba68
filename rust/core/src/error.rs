//! The one error type of the core. Every variant maps to one Python exception
//! class in `rlhf_diag.exceptions`; the binding crate does that mapping.
//! Non-fatal conditions (separation, no convergence) are *not* errors: they
//! come back as status fields and become warnings in Python.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// Input arrays or values that break a documented contract
    /// (mismatched lengths, out-of-range offsets, non-finite values).
    #[error("{0}")]
    InvalidInput(String),
    /// A fit that has no answer for these data (for example a singular
    /// Hessian that no penalty regularises).
    #[error("{0}")]
    Fit(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

/// Shorthand for an `InvalidInput` error with a formatted message.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::CoreError::InvalidInput(format!($($arg)*)) };
}
