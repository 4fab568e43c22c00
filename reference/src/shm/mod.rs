//! Placeholder: filled by the shm work.
