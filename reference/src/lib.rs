//! `sapi-reference`: a reference implementation of VPP's session-layer application socket API.
//!
//! Rooms, each owning one concept, data flowing one way:
//!
//! * [`wire`] — the eight 209-byte socket messages, both protocol profiles, options, flags and
//!   error numbers. Pure bytes in, typed values out; never panics on peer input.
//! * [`shm`] — what an application maps after attaching: memfd segments, the message queue and the
//!   byte fifo, over atomics that switch to `loom` under `cfg(loom)`.
//! * [`core`] — the sans-IO server: namespaces, apps, workers, sockets-as-handles, segments.
//!   Decoded inputs in, actions out; no syscalls, no clock.
//! * [`io`] — the thin shell on `nix`: listeners, `recvmsg`/`sendmsg` with `SCM_RIGHTS`, one epoll
//!   loop, the admin socket; turns syscalls into core inputs and core actions into syscalls.
//!
//! Every layout assumes x86_64 Linux, glibc, LP64, little-endian, 64-byte cache lines — the
//! platform the VPP layouts in `shared/spec/` were computed for.

pub mod cli;
pub mod core;
pub mod io;
pub mod shm;
pub mod wire;
