//! Snapshots of the field-by-field dump of every `corpus/wire/ctrl` vector, of one message of
//! each type the corpus has no vector for, of a UDP datagram header, and of the error messages a
//! decoder gives: the byte layouts and the wording a reader of a report will see.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use sapi_wire::ctrl::{
    AppWrkRpc, CtrlDecodeError, CtrlEncodeError, CtrlMessage, DgramDecodeError, DgramHeader,
    IoDecodeError, IoEvent, Ip46, ReqWorkerUpdate, SessionEventType, SessionHandleMsg,
    SessionHandleReply, TransportAttr, TransportAttrReply, TransportEndptAttr, Unlisten,
    UnlistenReply, WorkerUpdate, WorkerUpdateReply,
};
use sapi_wire::{Direction, Profile};

const DIRS: [Direction; 2] = [Direction::AppToServer, Direction::ServerToApp];

#[test]
fn every_ctrl_vector_dumps_field_by_field() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/wire/ctrl");
    let mut seen = 0;
    for profile in Profile::ALL {
        let mut files: Vec<_> = std::fs::read_dir(root.join(profile.as_str()))
            .expect("corpus dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).expect("vector");
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
            let ctrl = DIRS
                .iter()
                .find_map(|&d| CtrlMessage::decode(&bytes, profile, d).ok());
            let dump = match ctrl {
                Some(message) => message.dump(profile),
                None => DIRS
                    .iter()
                    .find_map(|&d| IoEvent::decode(&bytes, profile, d).ok())
                    .expect("an io event")
                    .dump(),
            };
            insta::assert_snapshot!(format!("{profile}__{stem}"), dump);
            seen += 1;
        }
    }
    assert!(seen >= 20, "only {seen} vectors found");
}

/// One message of each type without a golden vector (illustrative values, not from the spec).
#[test]
fn the_types_without_a_vector_dump_field_by_field() {
    let handle = 0x0000_0001_0000_0007;
    let attr = TransportEndptAttr {
        attr_type: 2,
        value: {
            let mut v = [0u8; 32];
            v[..4].copy_from_slice(&1460u32.to_le_bytes());
            v
        },
    };
    let mut data = [0u8; 64];
    data[..5].copy_from_slice(b"hello");
    let messages = [
        CtrlMessage::Unlisten(Unlisten {
            client_index: 1,
            context: 0,
            wrk_index: 0,
            handle: 1,
        }),
        CtrlMessage::UnlistenReply(UnlistenReply {
            context: 0,
            handle: 1,
            retval: -11,
        }),
        CtrlMessage::Reset(SessionHandleMsg {
            client_index: 0,
            context: 1,
            handle,
        }),
        CtrlMessage::ResetReply(SessionHandleReply {
            context: 1,
            retval: 0,
            handle,
        }),
        CtrlMessage::Shutdown(SessionHandleMsg {
            client_index: 2,
            context: 0,
            handle,
        }),
        CtrlMessage::Terminate(SessionHandleMsg {
            client_index: 2,
            context: 0,
            handle,
        }),
        CtrlMessage::TransportAttr(TransportAttr {
            client_index: 2,
            handle,
            attr,
            is_get: true,
        }),
        CtrlMessage::TransportAttrReply(TransportAttrReply {
            retval: -1,
            handle,
            attr,
            is_get: true,
        }),
        CtrlMessage::WorkerUpdate(WorkerUpdate {
            client_index: 0x0001_0002,
            wrk_index: 1,
            req_wrk_index: 0,
            handle,
        }),
        CtrlMessage::ReqWorkerUpdate(ReqWorkerUpdate {
            session_handle: handle,
        }),
        CtrlMessage::WorkerUpdateReply(WorkerUpdateReply {
            handle,
            rx_fifo: 0x1880,
            tx_fifo: 0x17c0,
            segment_handle: 0x3_0000_0000,
        }),
        CtrlMessage::AppWrkRpc(AppWrkRpc {
            client_index: 2,
            wrk_index: 1,
            data,
        }),
    ];
    for message in messages {
        let name = message.event_type().name().to_lowercase();
        for profile in Profile::ALL {
            insta::assert_snapshot!(format!("{profile}__{name}"), message.dump(profile));
        }
    }
}

#[test]
fn a_udp_datagram_header_dumps_field_by_field() {
    let header = DgramHeader {
        data_length: 1024,
        data_offset: 0,
        rmt_ip: Ip46::from_ipv6(Ipv6Addr::LOCALHOST),
        lcl_ip: Ip46::from_ipv6(Ipv6Addr::LOCALHOST),
        rmt_port: 1235,
        lcl_port: 40001,
        is_ip4: false,
        gso_size: 0,
    };
    insta::assert_snapshot!(header.dump());
    let v4 = Ip46::from_ipv4(Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(v4.to_string(), "10.0.0.1 / ::a00:1");
}

#[test]
fn error_messages_name_the_offending_value() {
    use SessionEventType as T;
    let errors: Vec<String> = vec![
        CtrlDecodeError::NoHeader { len: 1 }.to_string(),
        CtrlDecodeError::UnknownType {
            type_byte: 31,
            profile: Profile::Seed,
        }
        .to_string(),
        CtrlDecodeError::IoEvent {
            event_type: T::IoTx,
            type_byte: 1,
        }
        .to_string(),
        CtrlDecodeError::Unsupported {
            event_type: T::Rpc,
            type_byte: 5,
        }
        .to_string(),
        CtrlDecodeError::WrongDirection {
            event_type: T::Accepted,
            type_byte: 11,
            dir: Direction::AppToServer,
        }
        .to_string(),
        CtrlDecodeError::Truncated {
            event_type: T::Connect,
            len: 40,
            needed: 79,
        }
        .to_string(),
        CtrlDecodeError::UnterminatedName.to_string(),
        CtrlEncodeError::NotInProfile {
            event_type: T::Terminate,
            profile: Profile::Seed,
        }
        .to_string(),
        CtrlEncodeError::SegmentNameTooLong { len: 128 }.to_string(),
        CtrlEncodeError::SegmentNameContainsNul { at: 3 }.to_string(),
        CtrlEncodeError::BufferTooShort {
            len: 17,
            needed: 18,
        }
        .to_string(),
        IoDecodeError::Truncated { len: 3, needed: 6 }.to_string(),
        IoDecodeError::UnknownType {
            type_byte: 200,
            profile: Profile::Head,
        }
        .to_string(),
        IoDecodeError::NotIoEvent {
            event_type: T::Disconnect,
            type_byte: 21,
        }
        .to_string(),
        IoDecodeError::Unsupported {
            event_type: T::IoTxMain,
            type_byte: 4,
        }
        .to_string(),
        IoDecodeError::WrongDirection {
            event_type: T::IoTxFlush,
            type_byte: 2,
            dir: Direction::ServerToApp,
        }
        .to_string(),
        DgramDecodeError { len: 46 }.to_string(),
    ];
    insta::assert_snapshot!(errors.join("\n"));
}
