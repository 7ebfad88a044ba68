//! (placeholder: filled in by the kl work)
