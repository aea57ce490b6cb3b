//! The proxy injection transformation.
