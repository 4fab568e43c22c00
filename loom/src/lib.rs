//! `sapi-loom`: `loom` models of the reference's shared-memory message queue, fifo and io-event relay.
//!
//! The models live in `tests/` and only exist under `--cfg loom`:
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" cargo test -p sapi-loom --release -- --nocapture
//! ```
//!
//! `SAPI_LOOM_PREEMPTIONS` bounds the preemptions loom explores per execution (default 5 for
//! the full run; CI uses 2). Each model prints how many interleavings it explored.
//!
//! They run the shipping algorithms (`sapi_shm::{mq, fifo, alloc, relay}`) over
//! `HeapMemory`, whose atomics and data cells are loom's under `--cfg loom`; signalling is
//! modelled by `ModelEventFd` / `ModelCondvar`. Without `--cfg loom` this crate is empty.
