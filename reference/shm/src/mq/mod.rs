//! The shared-memory message queue `svm_msg_q` (shm spec §4): a queue of 8-byte handles plus
//! rings holding the message bodies, placed in a segment.
//!
//! Owns: the mq memory image (8-byte prefix, 112-byte queue header with a process-shared
//! robust mutex and condvar, handle array, 20-byte ring headers back to back), its validation
//! when attaching, the producer and consumer algorithms of §4.2, and both signalling modes
//! behind [`Signal`]: an eventfd ([`EventFdSignal`]) or the shared mutex/condvar
//! ([`PthreadSignal`]); [`ModelEventFd`] and [`ModelCondvar`] are in-process stand-ins built
//! from [`crate::sync`] primitives, which is how the `loom` models see the signalling.
//!
//! Producer and consumer are separate handle types taking `&mut self`: within a process the
//! type system serialises each side. Across processes, eventfd mode trusts that only one
//! process produces (as VPP does); mutex mode excludes producers with the shared mutex.
//!
//! Must never: index a ring or the handle array with a value read from the segment without
//! checking it against the geometry validated at attach time — a corrupt or hostile peer
//! gets a typed [`MqError`], never an out-of-bounds access.

mod consumer;
mod producer;
mod queue;
mod signal;
mod signal_model;

pub use consumer::{Delivered, MqConsumer};
pub use producer::MqProducer;
pub use queue::{
    CTRL_EVENT_ELSIZE, IO_EVENT_ELSIZE, MAX_RINGS, MqError, MqGeometry, MqSpec, MsgHandle,
    RingSpec, create, init_image,
};
pub use signal::{EventFdSignal, PthreadGuard, PthreadSignal, Signal};
pub use signal_model::{ModelCondvar, ModelEventFd};
