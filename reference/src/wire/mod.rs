//! Placeholder: filled by the wire work.
