//! rlhf_diag_core: the loops that touch every row or every token.
//!
//! One module per domain, mirroring the Python package:
//! - [`text`]: one pass over response texts (lengths, markdown, phrases);
//! - [`logistic`]: Bradley-Terry / logistic regression on feature differences;
//! - [`bt`]: item-level Bradley-Terry on collapsed battle counts;
//! - [`pairs`]: splitting whole dialogues into prompt and responses;
//! - [`kl`]: token reductions over log-prob arrays (KL estimators, DPO).
//!
//! Nothing here knows about Python; the `rlhf_diag_py` crate only converts.

pub mod bt;
pub mod error;
pub mod kl;
pub mod logistic;
pub mod pairs;
pub mod text;

pub use error::{CoreError, Result};
