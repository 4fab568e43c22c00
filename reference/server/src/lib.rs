//! `sapi-reference`: the reference server of VPP's session-layer application socket API.
//!
//! The server is four crates, each one layer, data flowing one way:
//!
//! * `sapi-wire` — the eight 209-byte socket messages, both protocol profiles, options, flags and
//!   error numbers, and the messages carried in mq elements. Pure bytes in, typed values out;
//!   never panics on peer input.
//! * `sapi-shm` — what an application maps after attaching: memfd segments, the message queue and
//!   the byte fifo, over atomics that switch to `loom` under `cfg(loom)`.
//! * `sapi-core` — the sans-IO server: namespaces, apps, workers, sockets-as-handles, segments.
//!   Decoded inputs in, actions out; no syscalls, no clock.
//! * this crate — the thin shell on `nix` ([`shell`]): listeners, `recvmsg`/`sendmsg` with
//!   `SCM_RIGHTS`, one epoll loop, the admin socket; turns syscalls into core inputs and core
//!   actions into syscalls; and the command line ([`cli`]).
//!
//! Every layout assumes x86_64 Linux, glibc, LP64, little-endian, 64-byte cache lines — the
//! platform the VPP layouts in `docs/` were computed for.

pub mod cli;
pub mod shell;
