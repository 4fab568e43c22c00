//! Snapshots of the field-by-field dump of every golden vector, and of the error messages a
//! decoder gives: the byte layout and the wording a reader of a report will see.

use std::path::PathBuf;

use sapi_wire::{DecodeError, Direction, EncodeError, Message, MsgType, NameError, Profile};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/wire")
}

#[test]
fn every_golden_vector_dumps_field_by_field() {
    let mut seen = 0;
    for profile in Profile::ALL {
        let dir = corpus_dir().join(profile.as_str());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("corpus dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for path in files {
            let bytes = std::fs::read(&path).expect("vector");
            let msg_type = MsgType::from_u8(bytes[0]).expect("known type");
            let dir = msg_type.direction().expect("real type");
            let message = Message::decode(&bytes, profile, dir).expect("decodes");
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
            insta::assert_snapshot!(format!("{profile}__{stem}"), message.dump(profile));
            seen += 1;
        }
    }
    assert!(seen >= 12, "only {seen} vectors found");
}

#[test]
fn error_messages_name_the_offending_value() {
    let errors: Vec<String> = [
        DecodeError::Truncated { len: 0 }.to_string(),
        DecodeError::Truncated { len: 208 }.to_string(),
        DecodeError::Oversized { len: 500 }.to_string(),
        DecodeError::NoneType.to_string(),
        DecodeError::UnknownType { type_byte: 99 }.to_string(),
        DecodeError::WrongDirection {
            msg_type: MsgType::AttachReply,
            dir: Direction::AppToServer,
        }
        .to_string(),
        DecodeError::WrongDirection {
            msg_type: MsgType::Attach,
            dir: Direction::ServerToApp,
        }
        .to_string(),
        EncodeError::NotInProfile {
            msg_type: MsgType::AddDelCertKeyReply,
            profile: Profile::Seed,
        }
        .to_string(),
        NameError::TooLong { len: 64 }.to_string(),
        NameError::ContainsNul { at: 3 }.to_string(),
        "x".parse::<Profile>()
            .map(|_| ())
            .expect_err("not a profile")
            .to_string(),
    ]
    .into();
    insta::assert_snapshot!(errors.join("\n"));
}
