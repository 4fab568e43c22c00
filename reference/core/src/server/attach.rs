//! ATTACH: validating the options, allocating the app, its first worker and segment, and
//! answering once the shell has created them (`docs/protocol.md` §3.1, §3.2, §6.1).
//!
//! Must never: send a successful reply, or bind a worker to its socket, before the shell has
//! reported its resources created; nor leave anything of a failed ATTACH or worker add behind (its
//! segment and eventfd are freed with it), except under the injected `keep-failed-attach` fault.

use std::collections::BTreeMap;

use sapi_wire::{
    AddDelWorkerReply, AppOptionFlags, Attach, AttachOptions, AttachReply, FdFlags, Message,
    OptionIndex, Profile, SapiError,
};
use tracing::{info, warn};

use crate::action::{Action, FdRef, SegmentSpec, WorkerResources};
use crate::config::{
    DEFAULT_EVT_QUEUE_SIZE, MAX_EVT_QUEUE_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE,
};
use crate::fault::InjectedFault;
use crate::ids::{AppIndex, SegmentId, SocketId, WorkerKey, segment_handle};
use crate::input::{ResourceError, WorkerResourcesReady};

use super::{App, PendingReply, Server, Worker, WorkerSegment};

impl Server {
    pub(super) fn attach_error(&mut self, sock: SocketId, err: SapiError) {
        let retval = self.retval(err);
        self.send(
            sock,
            Message::AttachReply(AttachReply {
                retval,
                ..AttachReply::default()
            }),
            Vec::new(),
        );
    }

    pub(super) fn validate_attach(&self, options: &AttachOptions) -> Result<(), SapiError> {
        let flags = options.flags();
        if flags.contains(AppOptionFlags::IS_BUILTIN)
            && !flags.contains(AppOptionFlags::MEMFD_FOR_BUILTIN)
        {
            return Err(SapiError::NoSupport);
        }
        if options.get(OptionIndex::PreallocFifoPairs) != 0
            && options.get(OptionIndex::PreallocFifoHdrs) != 0
        {
            return Err(SapiError::NoSupport);
        }
        if self.cfg.profile == Profile::Head
            && options.get(OptionIndex::MaxFifoMemory) != 0
            && options.get(OptionIndex::SegmentSize) == 0
        {
            return Err(SapiError::Invalid);
        }
        if options.get(OptionIndex::SegmentSize) > MAX_SEGMENT_SIZE
            || options.get(OptionIndex::AddSegmentSize) > MAX_SEGMENT_SIZE
            || options.get(OptionIndex::EvtQueueSize) > MAX_EVT_QUEUE_SIZE
        {
            return Err(SapiError::Invalid);
        }
        Ok(())
    }

    pub(super) fn on_attach(&mut self, sock: SocketId, mut req: Attach) {
        let Some(s) = self.socket(sock) else { return };
        if !s.workers.is_empty() {
            let err = if self.cfg.faults.has(InjectedFault::WrongRetval) {
                SapiError::NoApp
            } else {
                SapiError::AppAttached
            };
            return self.attach_error(sock, err);
        }
        if self.cfg.enforce_ns_secret {
            let secret = self
                .namespaces
                .get(usize::from(sock.ns.0))
                .and_then(Option::as_ref)
                .map_or(0, |n| n.secret);
            if req.options.get(OptionIndex::NamespaceSecret) != secret {
                info!(%sock, "attach refused: wrong namespace secret");
                return self.attach_error(sock, SapiError::WrongNsSecret);
            }
        }
        // The namespace is the socket's, whatever the app wrote; VPP never checks the secret.
        req.options
            .set(OptionIndex::Namespace, u64::from(sock.ns.0));
        if self.cfg.faults.has(InjectedFault::CrashOnMaxFifoMemory)
            && req.options.get(OptionIndex::MaxFifoMemory) != 0
            && req.options.get(OptionIndex::SegmentSize) == 0
        {
            self.out.push(Action::Abort(
                "injected crash-on-max-fifo-memory: ATTACH with MAX_FIFO_MEMORY and SEGMENT_SIZE 0",
            ));
            return;
        }
        let refused = self.validate_attach(&req.options).err();
        if let Some(e) = refused
            && !self.cfg.faults.has(InjectedFault::KeepFailedAttach)
        {
            info!(%sock, error = ?e, "attach refused");
            return self.attach_error(sock, e);
        }
        let Some(app_index) = self.alloc_app_index() else {
            return self.attach_error(sock, SapiError::Alloc);
        };
        info!(%sock, app = app_index.0, name = %req.name, "attach");
        self.apps.insert(
            app_index,
            App {
                name: req.name,
                ns: sock.ns,
                options: req.options,
                workers: BTreeMap::new(),
            },
        );
        let pending = match refused {
            // The fault: build the app anyway, refuse it once it holds its segment, and never
            // bind it to the socket, so nothing will ever free it.
            Some(e) => PendingReply::RefusedAttach(e),
            None => PendingReply::Attach,
        };
        self.create_worker(app_index, 0, sock, pending);
    }

    pub(super) fn alloc_app_index(&mut self) -> Option<AppIndex> {
        if let Some(i) = self.freed_apps.pop() {
            return Some(AppIndex(i));
        }
        // Monotonic (wrapping past u32::MAX - 1, skipping live ones) so a crashed app's index is
        // not handed to the next app while clients may still probe it.
        for _ in 0..=self.apps.len() {
            let candidate = AppIndex(self.next_app);
            self.next_app = match self.next_app.checked_add(1) {
                Some(n) if n != u32::MAX => n,
                _ => 1,
            };
            if !self.apps.contains_key(&candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// A segment manager index: a new one, or under injected `reuse-indices` the last freed.
    pub(super) fn alloc_segment_manager(&mut self) -> u32 {
        match self.freed_segment_managers.pop() {
            Some(m) => m,
            None => {
                let m = self.next_segment_manager;
                self.next_segment_manager = self.next_segment_manager.wrapping_add(1).max(1);
                m
            }
        }
    }

    pub(super) fn new_segment_spec(
        &mut self,
        app: AppIndex,
        wrk: u32,
        index: u32,
        size: u64,
    ) -> SegmentSpec {
        let id = SegmentId(self.next_segment_id);
        self.next_segment_id += 1;
        let (huge_pages, pct_first_alloc) = self.apps.get(&app).map_or((false, 0), |a| {
            (
                a.options.flags().contains(AppOptionFlags::USE_HUGE_PAGE),
                self.pct_first_alloc(a),
            )
        });
        SegmentSpec {
            id,
            name: format!("seg-{}-{wrk}-{index}", app.0),
            requested_size: size.max(MIN_SEGMENT_SIZE),
            huge_pages,
            pct_first_alloc,
        }
    }

    /// An app's PCT_FIRST_ALLOC option as the segment header holds it. VPP stores the option's
    /// low byte unchecked; above 100 its first chunk would outgrow the fifo, so the reference
    /// stops at 100 (a whole fifo up front).
    pub(super) fn pct_first_alloc(&self, app: &App) -> u8 {
        if self.cfg.faults.has(InjectedFault::IgnorePctFirstAlloc) {
            return 0;
        }
        app.options.get(OptionIndex::PctFirstAlloc).min(100) as u8
    }

    /// Starts creating a worker; the reply is sent once its resources exist.
    pub(super) fn create_worker(
        &mut self,
        app: AppIndex,
        wrk: u32,
        sock: SocketId,
        pending: PendingReply,
    ) {
        let Some(a) = self.apps.get(&app) else { return };
        let size = a.options.get(OptionIndex::SegmentSize);
        let evt_queue_size = match a.options.get(OptionIndex::EvtQueueSize) {
            0 => DEFAULT_EVT_QUEUE_SIZE,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        let eventfd = a
            .options
            .flags()
            .contains(AppOptionFlags::EVT_MQ_USE_EVENTFD);
        let segment = self.new_segment_spec(app, wrk, 0, size);
        let segment_manager = self.alloc_segment_manager();
        let worker = Worker {
            socket: sock,
            segment_manager,
            segments: vec![WorkerSegment {
                id: segment.id,
                handle: segment_handle(segment_manager, 0),
                name: segment.name.clone(),
                ssvm_size: 0,
            }],
            next_segment_index: 1,
            eventfd,
            mq_offset: 0,
            pending: Some(pending),
        };
        if let Some(a) = self.apps.get_mut(&app) {
            a.workers.insert(wrk, worker);
        }
        self.out.push(Action::CreateWorkerResources {
            worker: WorkerKey { app, wrk },
            spec: WorkerResources {
                segment,
                evt_queue_size,
                eventfd,
            },
        });
    }

    pub(super) fn on_worker_resources(
        &mut self,
        key: WorkerKey,
        result: Result<WorkerResourcesReady, ResourceError>,
    ) {
        let Some(app) = self.apps.get_mut(&key.app) else {
            return;
        };
        let Some(worker) = app.workers.get_mut(&key.wrk) else {
            return;
        };
        let Some(pending) = worker.pending.take() else {
            return;
        };
        let sock = worker.socket;
        let ready = match result {
            Ok(r) => r,
            Err(e) => {
                warn!(worker = %key, error = %e, "worker resources failed");
                let err = match e {
                    ResourceError::SegmentCreate | ResourceError::NoRoom => SapiError::SegCreate,
                    // VPP 26.10 answered −1 when huge pages were missing.
                    ResourceError::HugePages => SapiError::Unknown,
                    ResourceError::EventfdAlloc => SapiError::EventfdAlloc,
                };
                // Nothing half-built stays behind: the segment the shell may have made is freed.
                let segments: Vec<SegmentId> = worker.segments.iter().map(|s| s.id).collect();
                app.workers.remove(&key.wrk);
                for id in segments {
                    self.out.push(Action::FreeSegment(id));
                }
                self.out.push(Action::FreeWorker(key));
                if self
                    .apps
                    .get(&key.app)
                    .is_some_and(|a| a.workers.is_empty())
                {
                    self.apps.remove(&key.app);
                }
                let retval = self.retval(err);
                let msg = match pending {
                    PendingReply::Attach | PendingReply::RefusedAttach(_) => {
                        Message::AttachReply(AttachReply {
                            retval,
                            ..AttachReply::default()
                        })
                    }
                    PendingReply::WorkerAdd => Message::AddDelWorkerReply(AddDelWorkerReply {
                        retval,
                        wrk_index: key.wrk,
                        api_client_handle: sock.api_client_handle(),
                        is_add: true,
                        ..AddDelWorkerReply::default()
                    }),
                };
                self.send(sock, msg, Vec::new());
                return;
            }
        };
        if let PendingReply::RefusedAttach(e) = pending {
            warn!(worker = %key, "injected keep-failed-attach: refusing a built app, keeping it");
            worker.mq_offset = ready.mq_offset;
            let retval = self.retval(e);
            let msg = Message::AttachReply(AttachReply {
                retval,
                ..AttachReply::default()
            });
            self.send(sock, msg, Vec::new());
            return;
        }
        worker.mq_offset = ready.mq_offset;
        if let Some(first) = worker.segments.first_mut() {
            first.ssvm_size = ready.ssvm_size;
        }
        let segment_id = worker.segments.first().map(|s| s.id);
        let seg_handle = worker.segments.first().map_or(0, |s| s.handle);
        let eventfd = worker.eventfd;
        if let Some(s) = self.socket_mut(sock) {
            s.workers.push(key);
        }
        let mut flags = FdFlags::MEMFD_SEGMENT;
        let mut fds = Vec::with_capacity(3);
        if let Some(id) = segment_id {
            fds.push(FdRef::Segment(id));
        }
        if eventfd {
            flags |= FdFlags::MQ_EVENTFD;
            if !(self.cfg.faults.has(InjectedFault::MissingEventfd)
                && matches!(pending, PendingReply::Attach))
            {
                fds.push(FdRef::WorkerEventfd(key));
            }
        }
        let msg = match pending {
            PendingReply::Attach | PendingReply::RefusedAttach(_) => {
                flags |= FdFlags::VPP_MQ_SEGMENT;
                if self.cfg.faults.has(InjectedFault::WrongFdOrder) {
                    fds.insert(1, FdRef::VppMqsSegment);
                } else {
                    fds.insert(0, FdRef::VppMqsSegment);
                }
                Message::AttachReply(AttachReply {
                    retval: 0,
                    app_index: key.app.0,
                    app_mq: ready.mq_offset,
                    vpp_ctrl_mq: self
                        .cfg
                        .vpp_mq_offset(usize::from(self.cfg.vpp_ctrl_mq_thread())),
                    segment_handle: seg_handle,
                    api_client_handle: sock.api_client_handle(),
                    vpp_ctrl_mq_thread: self.cfg.vpp_ctrl_mq_thread(),
                    n_fds: flags.bits().count_ones() as u8,
                    fd_flags: flags,
                })
            }
            PendingReply::WorkerAdd => Message::AddDelWorkerReply(AddDelWorkerReply {
                retval: 0,
                wrk_index: key.wrk,
                app_event_queue_address: ready.mq_offset,
                segment_handle: seg_handle,
                api_client_handle: sock.api_client_handle(),
                n_fds: flags.bits().count_ones() as u8,
                fd_flags: flags,
                is_add: true,
            }),
        };
        info!(worker = %key, %sock, "worker ready");
        self.send(sock, msg, fds);
    }
}
