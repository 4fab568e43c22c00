//! Placeholder: the IO shell.
