//! Every malformed input of `corpus/malformed/` (spec §9) sent to a real server on a real
//! socket: the documented reaction happens, and a second app attached beforehand is unaffected.
//!
//! "No reply" is proven without waiting: a request that always gets an answer (a worker ADD for
//! an app that does not exist) follows on the same socket, and the server answers one socket's
//! datagrams in order, so the first answer read must be that one.

mod support;

use std::path::PathBuf;

use rstest::rstest;
use sapi_wire::{AddDelWorker, Message};
use support::*;

#[derive(Debug, Clone, Copy)]
enum Reaction {
    /// Nothing is sent, the socket stays open.
    NoReply,
    /// ATTACH_REPLY with this retval (fds iff 0).
    Attach(i32),
    /// ADD_DEL_WORKER_REPLY with this retval.
    Worker(i32),
    /// ADD_DEL_CERT_KEY_REPLY with this retval, after `data` bytes of cert-key data.
    CertKey { retval: i32, data: usize },
    /// ADD_DEL_CERT_KEY_REPLY with this retval once the data timeout passed (no barrier:
    /// the next datagram would be taken as the missing data).
    CertKeyAfterTimeout(i32),
}
use Reaction::*;

fn corpus(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../corpus/malformed")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const GHOST_APP: u32 = 0x00ab_cdef;

fn barrier() -> Message {
    Message::AddDelWorker(AddDelWorker {
        app_index: GHOST_APP,
        wrk_index: 77,
        is_add: true,
    })
}

fn is_barrier_reply(m: &Message) -> bool {
    matches!(m, Message::AddDelWorkerReply(r) if r.retval == -19 && r.wrk_index == 77)
}

/// The bystander still works: a worker added to its app gets a reply with fds. Returns the
/// worker's socket (closing it would delete the worker).
#[must_use]
fn assert_bystander_works(server: &Server, app: u32) -> Client {
    let c = Client::connect(&server.socket_path());
    c.send(&Message::AddDelWorker(AddDelWorker {
        app_index: app,
        wrk_index: 0,
        is_add: true,
    }));
    let r = c.recv();
    assert!(
        matches!(r.msg, Message::AddDelWorkerReply(w) if w.retval == 0),
        "bystander app {app} broken: {:?}",
        r.msg
    );
    assert_eq!(r.fds.len(), 2);
    c
}

#[rstest]
#[case::short_0("short_0.bin", NoReply)]
#[case::short_1("short_1.bin", NoReply)]
#[case::short_208("short_208.bin", NoReply)]
#[case::long_210("long_210.bin", Attach(0))]
#[case::long_500("long_500_attach.bin", Attach(0))]
#[case::type_0("type_0.bin", NoReply)]
#[case::type_2("type_2_reply.bin", NoReply)]
#[case::type_4("type_4_reply.bin", NoReply)]
#[case::type_5("type_5_send_fds.bin", NoReply)]
#[case::type_7("type_7.bin", NoReply)]
#[case::type_8("type_8.bin", NoReply)]
#[case::type_99("type_99.bin", NoReply)]
#[case::type_255("type_255.bin", NoReply)]
#[case::name_unterminated("attach_name_unterminated_64.bin", Attach(0))]
#[case::name_empty("attach_name_empty.bin", Attach(0))]
#[case::builtin_alone("attach_is_builtin_alone.bin", Attach(-10))]
#[case::builtin_eventfd("attach_builtin_with_eventfd.bin", Attach(-10))]
#[case::prealloc_both("attach_prealloc_pairs_and_hdrs.bin", Attach(-10))]
#[case::max_fifo_memory("attach_max_fifo_memory_no_segment_size.bin", Attach(-19))]
#[case::proxy_tcp("attach_proxy_tcp.bin", Attach(0))]
#[case::all_ff("attach_all_ff.bin", Attach(-10))]
#[case::worker_add_bad_app("worker_add_bad_app.bin", Worker(-19))]
#[case::worker_add_is_add_2("worker_add_is_add_2.bin", Worker(-19))]
#[case::worker_add_junk_tail("worker_add_junk_tail.bin", Worker(-19))]
#[case::worker_del_bad_app("worker_del_bad_app.bin", NoReply)]
#[case::worker_del_unknown("worker_del_unknown.bin", NoReply)]
#[case::certkey_oversize("certkey_add_oversize.bin", CertKey { retval: -19, data: 0 })]
#[case::certkey_zero("certkey_add_zero_len.bin", CertKey { retval: -19, data: 0 })]
#[case::certkey_no_data("certkey_add_no_data.bin", CertKeyAfterTimeout(-19))]
#[case::certkey_cert_longer("certkey_add_cert_longer_than_total.bin", CertKey { retval: -19, data: 200 })]
#[case::certkey_cert_big("certkey_add_cert_over_10000.bin", CertKey { retval: -19, data: 10002 })]
#[case::certkey_key_big("certkey_add_key_over_10000.bin", CertKey { retval: -19, data: 10101 })]
#[case::certkey_del_unknown("certkey_del_unknown.bin", CertKey { retval: -19, data: 0 })]
#[case::certkey_del_zero("certkey_del_zero.bin", CertKey { retval: -19, data: 0 })]
fn malformed_input_gets_its_documented_reaction(#[case] file: &str, #[case] reaction: Reaction) {
    let server = Server::start("malformed", &[]);
    // The bystander is app 1, so `worker_del_unknown.bin` (app 1, worker 1000) aims at it.
    let bystander = Client::connect(&server.socket_path());
    bystander.send(&attach_msg("bystander"));
    let Message::AttachReply(b) = bystander.recv().msg else {
        panic!("bystander did not attach")
    };
    assert_eq!(b.app_index, 1);

    let c = Client::connect(&server.socket_path());
    c.send_bytes(&corpus(file));
    match reaction {
        NoReply => {
            c.send(&barrier());
            let r = c.recv();
            assert!(is_barrier_reply(&r.msg), "{file}: got {:?}", r.msg);
        }
        Attach(retval) => {
            let r = c.recv();
            let Message::AttachReply(a) = r.msg else {
                panic!("{file}: {:?}", r.msg)
            };
            assert_eq!(a.retval, retval, "{file}");
            assert_eq!(usize::from(a.n_fds), r.fds.len(), "{file}");
            assert_eq!(r.fds.is_empty(), retval != 0, "{file}: fds iff success");
        }
        Worker(retval) => {
            let r = c.recv();
            let Message::AddDelWorkerReply(w) = r.msg else {
                panic!("{file}: {:?}", r.msg)
            };
            assert_eq!(
                (w.retval, w.api_client_handle),
                (retval, u32::MAX),
                "{file}"
            );
            assert!(r.fds.is_empty());
        }
        CertKey { retval, data } => {
            if data > 0 {
                c.send_bytes(&vec![0x5a; data]);
            }
            let r = c.recv();
            let Message::AddDelCertKeyReply(k) = r.msg else {
                panic!("{file}: {:?}", r.msg)
            };
            assert_eq!((k.context, k.retval, k.index), (1, retval, 0), "{file}");
        }
        CertKeyAfterTimeout(retval) => {
            let r = c.recv();
            assert!(
                matches!(r.msg, Message::AddDelCertKeyReply(k) if k.retval == retval),
                "{file}: {:?}",
                r.msg
            );
        }
    }
    // The socket is still served, and so is the bystander.
    c.send(&barrier());
    assert!(
        is_barrier_reply(&c.recv().msg),
        "{file}: socket no longer served"
    );
    let _worker = assert_bystander_works(&server, b.app_index);
    assert_eq!(
        server.show()["apps"][0]["workers"].as_array().map(Vec::len),
        Some(2),
        "{file}: bystander's workers (0 and the one just added)"
    );
}

#[rstest]
#[case::short_0("short_0.bin")]
#[case::short_1("short_1.bin")]
#[case::short_208("short_208.bin")]
fn short_datagram_on_an_attached_socket_is_a_crash_detach(#[case] file: &str) {
    let server = Server::start("malformed-bound", &[]);
    let bystander = Client::connect(&server.socket_path());
    bystander.send(&attach_msg("bystander"));
    let Message::AttachReply(b) = bystander.recv().msg else {
        panic!()
    };
    let _ = server.show(); // a barrier: the bystander's attach is complete
    let with_bystander = server.fd_count();
    let c = Client::connect(&server.socket_path());
    c.send(&attach_msg("victim"));
    let r = c.recv();
    assert!(matches!(r.msg, Message::AttachReply(a) if a.retval == 0));
    drop(r.fds);
    c.send_bytes(&corpus(file));
    assert!(
        c.recv_raw().is_none(),
        "{file}: the server closed the socket"
    );
    assert_eq!(server.show()["apps"].as_array().map(Vec::len), Some(1));
    assert_eq!(server.await_fd_count(with_bystander), with_bystander);
    let _worker = assert_bystander_works(&server, b.app_index);
}
