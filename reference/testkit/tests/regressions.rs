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
