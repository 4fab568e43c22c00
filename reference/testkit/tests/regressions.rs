//! Replays every fuzz finding kept in `corpus/regressions/<target>/` through the same check the
//! fuzz target runs, so a plain `cargo test` guards them without cargo-fuzz; and pins the
//! simulation's findings as named scenarios.
//!
//! Targets replayed here: `wire_decode`, `core_sequence` and `shm_ops`, through the checks in
//! `sapi_testkit`, which the fuzz targets call too. The seed corpora in `corpus/fuzz/<target>/` are replayed
//! as well: they must pass from the first commit on.

use sapi_core::ResourceError;
use sapi_testkit::checks::shm_ops;
use sapi_testkit::checks::wire_decode;
use sapi_testkit::corpus::replay;
use sapi_testkit::sim::{Inject, Op, Pick, Sim, check_core_sequence};
use sapi_wire::{AttachOptions, OptionIndex, Profile};

#[test]
fn wire_decode_regressions_and_seeds() {
    let n = replay("regressions", "wire_decode", wire_decode::check)
        + replay("fuzz", "wire_decode", wire_decode::check);
    assert!(n > 0, "no wire_decode seeds found");
}

#[test]
fn core_sequence_regressions_and_seeds() {
    let n = replay("regressions", "core_sequence", check_core_sequence)
        + replay("fuzz", "core_sequence", check_core_sequence);
    assert!(n > 0, "no core_sequence seeds found");
}

#[test]
fn shm_ops_regressions_and_seeds() {
    let n = replay("regressions", "shm_ops", shm_ops::check)
        + replay("fuzz", "shm_ops", shm_ops::check);
    assert!(n > 0, "no shm_ops seeds found");
}

fn app_with_extra_segments() -> Op {
    Op::Attach {
        sock: Pick::NEWEST,
        name: b"seg-app".to_vec(),
        options: AttachOptions::default()
            .with(OptionIndex::SegmentSize, 1 << 20)
            .with(OptionIndex::AddSegmentSize, 1 << 20),
    }
}

/// Finding F1 (fixed in e8f16e4 by reporting send failures after the batch): an admin segment
/// add sends SEND_FDS and then posts APP_ADD_SEGMENT into the worker's mq. When the shell fed
/// `SendFailed` from inside that send, the core detached the app first and the shell then reached
/// the PostCtrlEvent for a worker it had already freed. With the failure reported after the
/// batch, the event goes to a live mq, then the app is detached (HEAD: the whole app, its segment
/// fd never arrived) and everything it held is freed.
#[test]
fn f1_segment_add_whose_send_fails_posts_to_a_live_worker_then_detaches() {
    for profile in Profile::ALL {
        let ops = [
            Op::Connect {
                ns: Pick(0),
                pid: 1,
            },
            app_with_extra_segments(),
            Op::Inject(Inject::Send),
            Op::SegmentAdd {
                app: Pick(0),
                wrk: Pick(0),
            },
        ];
        let stats = Sim::run_ops(profile, &ops).unwrap_or_else(|v| panic!("{profile}: {v}"));
        assert_eq!(stats.segments_added, 1, "{profile}: {stats:?}");
        assert_eq!(stats.crashes, 0, "{profile}: {stats:?}");
    }
}

/// Every resource failure during ATTACH leaves nothing behind and answers the app.
#[test]
fn attach_resource_failures_leave_nothing() {
    for profile in Profile::ALL {
        for e in [
            ResourceError::SegmentCreate,
            ResourceError::HugePages,
            ResourceError::EventfdAlloc,
        ] {
            let ops = [
                Op::Connect {
                    ns: Pick(0),
                    pid: 1,
                },
                Op::Inject(Inject::WorkerResources(e)),
                Op::Attach {
                    sock: Pick::NEWEST,
                    name: b"a".to_vec(),
                    options: AttachOptions::default().with(OptionIndex::Flags, 1 << 7),
                },
                Op::Attach {
                    sock: Pick::NEWEST,
                    name: b"a".to_vec(),
                    options: AttachOptions::default(),
                },
            ];
            let stats =
                Sim::run_ops(profile, &ops).unwrap_or_else(|v| panic!("{profile} {e:?}: {v}"));
            assert_eq!(stats.attaches_ok, 1, "{profile} {e:?}: the retry attaches");
        }
    }
}

/// Found by the session simulation (head seed 16): a worker paired twice with itself in one ct
/// segment detaches; one pair ends at once, the other after its unread probe, and the probe's
/// answer deleted the segment ahead of the first pair's queued FreeFifoPair: the shell unmapped
/// a segment with a fifo pair still in it. Fixed by unmapping ct segments after the batch.
#[test]
fn a_ct_segment_is_unmapped_after_every_fifo_pair_in_it_is_freed() {
    use sapi_testkit::sim::CloseHow::*;
    let ops: Vec<Op> = vec![
        Op::Connect {
            ns: Pick(0),
            pid: 517412,
        },
        Op::Attach {
            sock: Pick::NEWEST,
            name: vec![97],
            options: AttachOptions([
                65, 0, 0, 4194304, 0, 65536, 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
        },
        Op::Connect {
            ns: Pick(0),
            pid: 41449,
        },
        Op::Attach {
            sock: Pick::NEWEST,
            name: vec![
                108, 119, 120, 101, 99, 122, 116, 119, 101, 100, 99, 113, 105, 119, 113, 115, 104,
                118, 115, 107, 106, 109,
            ],
            options: AttachOptions([
                325, 128, 67108864, 0, 0, 65536, 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
        },
        Op::WorkerAdd {
            sock: Pick(225057650),
            app: Pick(199774872),
        },
        Op::Connect {
            ns: Pick(178391473),
            pid: 267419,
        },
        Op::Attach {
            sock: Pick::NEWEST,
            name: vec![97, 106],
            options: AttachOptions([
                65, 128, 0, 4194304, 0, 65536, 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
        },
        Op::Connect {
            ns: Pick(0),
            pid: 439610,
        },
        Op::Listen {
            wrk: Pick(143557097),
            addr: 202,
            port: 212,
            udp: true,
        },
        Op::WorkerAdd {
            sock: Pick(123179940),
            app: Pick(241000740),
        },
        Op::Attach {
            sock: Pick::NEWEST,
            name: vec![
                106, 120, 111, 119, 99, 121, 105, 116, 106, 119, 99, 114, 108, 104, 111, 112, 116,
                118, 122, 118, 115, 117, 104, 112, 100, 107, 101, 103, 111, 99, 116, 97, 108, 110,
                115, 121, 111, 104, 97, 108, 110, 97, 116, 108, 103, 115, 110, 117, 105, 102, 104,
                103,
            ],
            options: AttachOptions([
                65, 16, 0, 4194304, 0, 65536, 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
        },
        Op::Dial {
            wrk: Pick(226563721),
            to: Pick(105558954),
            addr: 0,
            port: 166,
            udp: false,
        },
        Op::Dial {
            wrk: Pick(87192758),
            to: Pick(151292622),
            addr: 45,
            port: 57,
            udp: true,
        },
        Op::WorkerAdd {
            sock: Pick::NEWEST,
            app: Pick(257820379),
        },
        Op::Connect {
            ns: Pick(74339742),
            pid: 93364,
        },
        Op::Accept {
            acc: Pick(250215391),
            reject: false,
        },
        Op::Dial {
            wrk: Pick(99098280),
            to: Pick(11336685),
            addr: 0,
            port: 47,
            udp: false,
        },
        Op::Attach {
            sock: Pick::NEWEST,
            name: vec![
                112, 97, 100, 120, 121, 118, 113, 121, 120, 116, 121, 99, 105, 105, 109, 118, 108,
                97, 105, 120, 105, 115, 120, 101, 114, 115, 106, 112, 97, 112, 97, 110, 115, 114,
                106, 104, 113, 107, 99, 116, 103,
            ],
            options: AttachOptions([
                193, 0, 67108864, 0, 0, 65536, 65536, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]),
        },
        Op::Dial {
            wrk: Pick(184400527),
            to: Pick(94576196),
            addr: 0,
            port: 41,
            udp: true,
        },
        Op::Dial {
            wrk: Pick(198693926),
            to: Pick(210320318),
            addr: 0,
            port: 238,
            udp: false,
        },
        Op::Accept {
            acc: Pick(60338550),
            reject: false,
        },
        Op::Shut {
            sess: Pick(168771370),
            how: Reply,
        },
    ];
    Sim::run_ops(Profile::Head, &ops).expect("no violation");
}
