//! (placeholder: filled in by the bt work)
