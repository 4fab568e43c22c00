//! Placeholder: the sans-IO server core.
