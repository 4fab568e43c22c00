//! `sapi-conformance`: scenarios that drive any implementation of VPP's application socket API
//! (SAPI) through its socket and say, with evidence, where it deviates from
//! `docs/`.
//!
//! Rooms, data flowing one way — `client` → `wire`/`shm` decoders → a scenario's verdict →
//! `report`:
//!
//! * [`wire`] — the suite's own offset-based reading and writing of the 209-byte datagrams.
//! * [`shm`] — the suite's own bounds-checked readers of segments and message queues.
//! * [`fds`] — what an fd is (memfd, eventfd, …) and what a process holds, asked of `/proc`.
//! * [`sockdiag`] — which server-side socket is the peer of a socket of ours, asked of
//!   `NETLINK_SOCK_DIAG`.
//! * [`client`] — a SAPI client over real `SOCK_SEQPACKET` sockets with `SCM_RIGHTS`.
//! * [`session`] — the session client: server mqs, the app mq, fifos and messages of
//!   `docs/sessions.md`, in raw shared memory, with the suite's own code.
//! * [`target`] — the server under test: the embedded reference (a child process), a socket
//!   path or an abstract name; its pid, triggers and restart.
//! * [`scenarios`] — the checks, one module per area, each with a stable name and spec section.
//! * [`runner`] — filtering, expect-fail, parallelism, liveness after every scenario.
//! * [`report`] — human summary, JSON and JUnit.
//!
//! The suite never shares code with what it checks: it may start the reference only as a target
//! (`sapi_reference::cli::run`, behind the `embedded-reference` feature).

pub mod client;
pub mod debug_client;
pub mod fds;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod session;
pub mod shm;
pub mod sockdiag;
pub mod target;
pub mod wire;
