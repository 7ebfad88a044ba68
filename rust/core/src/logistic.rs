//! (placeholder: filled in by the logistic work)
