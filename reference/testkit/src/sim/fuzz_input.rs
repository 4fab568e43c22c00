//! Reading ops from fuzzer bytes through `arbitrary::Unstructured`, and writing them back:
//! hand-written `Arbitrary` impls for ops and picks that never fail, invertible by
//! [`encode_ops`] so simulation runs become fuzz seeds; and the `core_sequence` check.

use arbitrary::{Arbitrary, Unstructured};

use super::Sim;
use super::generate::RESOURCE_ERRORS;
use super::op::{CloseHow, Hostile, Inject, Op, Pick};
use sapi_core::ResourceError;
use sapi_wire::{AttachOptions, Message, OptionIndex, Profile};

/// Readers over [`Unstructured`] that never fail: once the bytes run out every integer reads as
/// zero (as `Unstructured` pads), so every input is a valid program and [`encode_op`] can write
/// the exact bytes that read back as a given op.
pub(super) trait Read<'a> {
    fn u8(&mut self) -> u8;
    fn u16(&mut self) -> u16;
    fn u32(&mut self) -> u32;
    fn u64(&mut self) -> u64;
    fn bool(&mut self) -> bool;
    /// Up to `n` bytes (fewer if the input ends).
    fn take(&mut self, n: usize) -> &'a [u8];
}

impl<'a> Read<'a> for Unstructured<'a> {
    fn u8(&mut self) -> u8 {
        u8::arbitrary(self).unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::arbitrary(self).unwrap_or(0)
    }
    fn u32(&mut self) -> u32 {
        u32::arbitrary(self).unwrap_or(0)
    }
    fn u64(&mut self) -> u64 {
        u64::arbitrary(self).unwrap_or(0)
    }
    fn bool(&mut self) -> bool {
        bool::arbitrary(self).unwrap_or(false)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.len());
        self.bytes(n).unwrap_or_default()
    }
}

impl<'a> Arbitrary<'a> for Pick {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.u8() {
            0xFF => Pick::bogus(u.u32()),
            0xFE => Pick::NEWEST,
            b => Pick(u32::from(b)),
        })
    }
}

pub(super) fn resource_error(u: &mut Unstructured<'_>) -> ResourceError {
    RESOURCE_ERRORS[usize::from(u.u8() % 3)]
}

/// Attach options biased towards values the server treats specially (powers of two, sizes in
/// MiB), or (selector bit 7) every slot raw.
pub(super) fn options(u: &mut Unstructured<'_>) -> AttachOptions {
    let sel = u.u8();
    if sel & 0x80 != 0 {
        return AttachOptions(std::array::from_fn(|_| u.u64()));
    }
    let small = |u: &mut Unstructured<'_>| -> u64 {
        match u.u8() {
            0 => 0,
            b @ 1..=32 => 1 << (b - 1),
            b @ 33..=63 => u64::from(b) << 20,
            0xFF => u.u64(),
            b => u64::from(b),
        }
    };
    let mut o = AttachOptions::default();
    o.set(OptionIndex::Flags, u64::from(u.u16()));
    for index in [
        OptionIndex::EvtQueueSize,
        OptionIndex::SegmentSize,
        OptionIndex::AddSegmentSize,
        OptionIndex::MaxFifoMemory,
        OptionIndex::PreallocFifoPairs,
        OptionIndex::PreallocFifoHdrs,
    ] {
        if sel & (1 << (index as usize % 7)) != 0 {
            o.set(index, small(u));
        }
    }
    o
}

/// Number of op kinds; the tag byte modulo this chooses one (tags 18 and up: the session layer).
pub(super) const OP_KINDS: u8 = 28;

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let pick = |u: &mut Unstructured<'a>| Pick::arbitrary(u).unwrap_or(Pick(0));
        Ok(match u.u8() % OP_KINDS {
            0 => Op::Connect {
                ns: pick(u),
                pid: u.u16().into(),
            },
            1 | 2 => Op::Attach {
                sock: pick(u),
                name: {
                    let n = usize::from(u.u8() % 72);
                    u.take(n).to_vec()
                },
                options: options(u),
            },
            3 => Op::WorkerAdd {
                sock: pick(u),
                app: pick(u),
            },
            4 => Op::WorkerDel {
                sock: pick(u),
                app: pick(u),
                wrk: pick(u),
            },
            5 => Op::CertKeyAdd {
                sock: pick(u),
                cert_len: u.u16(),
                certkey_len: u.u16(),
                data: if u.bool() {
                    Some(u.u16() % 21_000)
                } else {
                    None
                },
            },
            6 => Op::CertKeyDel {
                sock: pick(u),
                index: u32::from(u.u8()),
            },
            7 | 8 => Op::Raw {
                sock: pick(u),
                bytes: {
                    let n = usize::from(u.u16() % 700);
                    u.take(n).to_vec()
                },
                truncated: u.bool(),
                ctrunc: u.bool(),
            },
            9 => Op::Close { sock: pick(u) },
            10 => Op::SendFailed { sock: pick(u) },
            11 => Op::Deadline { sock: pick(u) },
            12 => Op::SegmentAdd {
                app: pick(u),
                wrk: pick(u),
            },
            13 => Op::SegmentDel {
                app: pick(u),
                wrk: pick(u),
                seg: pick(u),
            },
            14 => {
                if u.bool() {
                    Op::NsAdd { id: u.u8() }
                } else {
                    Op::NsDel { id: u.u8() }
                }
            }
            15 => Op::Show,
            16 => Op::Inject(match u.u8() % 6 {
                0 => Inject::WorkerResources(resource_error(u)),
                1 => Inject::Segment(resource_error(u)),
                2 => Inject::Listen,
                3 => Inject::Send,
                4 => Inject::FifoPair,
                _ => Inject::Shadows,
            }),
            // Running out of bytes inside a message is not an error for a program: the op
            // becomes the all-zero ATTACH-less default, a SEND_FDS.
            17 => Op::Request {
                sock: pick(u),
                msg: Message::arbitrary(u).unwrap_or(Message::SendFds),
            },
            18 => Op::Listen {
                wrk: pick(u),
                addr: u.u8(),
                port: u.u8(),
                udp: u.bool(),
            },
            19 => Op::Unlisten {
                wrk: pick(u),
                listener: pick(u),
            },
            20 => Op::Dial {
                wrk: pick(u),
                to: pick(u),
                addr: u.u8(),
                port: u.u8(),
                udp: u.bool(),
            },
            21 => Op::Accept {
                acc: pick(u),
                reject: u.bool(),
            },
            22 => Op::Write {
                sess: pick(u),
                len: u.u16(),
            },
            23 => Op::Read {
                sess: pick(u),
                len: u.u16(),
            },
            24 => Op::Shut {
                sess: pick(u),
                how: CloseHow::ALL[usize::from(u.u8()) % CloseHow::ALL.len()],
            },
            25 => Op::CrashSession { sess: pick(u) },
            26 => Op::Detach { wrk: pick(u) },
            _ => Op::Hostile {
                wrk: pick(u),
                sess: pick(u),
                kind: Hostile::ALL[usize::from(u.u8()) % Hostile::ALL.len()],
            },
        })
    }
}

/// A fuzz input: the profile (bit 0 of byte 0), then up to [`MAX_FUZZ_OPS`] ops.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub profile: Profile,
    pub ops: Vec<Op>,
}

impl<'a> Arbitrary<'a> for Program {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let profile = if u.u8() & 1 == 0 {
            Profile::Head
        } else {
            Profile::Seed
        };
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_FUZZ_OPS {
            ops.push(Op::arbitrary(u)?);
        }
        Ok(Program { profile, ops })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// The bytes [`Op::arbitrary`] reads back as `op` (picks of live objects modulo 254; seeds for the
/// fuzzer's corpus are written with it).
pub fn encode_op(op: &Op, out: &mut Vec<u8>) {
    fn pick(p: Pick, out: &mut Vec<u8>) {
        if p == Pick::NEWEST {
            out.push(0xFE);
        } else if p.0 >= Pick::BOGUS {
            out.push(0xFF);
            out.extend_from_slice(&(p.0 - Pick::BOGUS).to_le_bytes());
        } else {
            out.push((p.0 % 254) as u8);
        }
    }
    match op {
        Op::Connect { ns, pid } => {
            out.push(0);
            pick(*ns, out);
            out.extend_from_slice(&(*pid as u16).to_le_bytes());
        }
        Op::Attach {
            sock,
            name,
            options,
        } => {
            out.push(1);
            pick(*sock, out);
            let name = &name[..name.len().min(71)];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.push(0x80);
            for v in options.0 {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Op::WorkerAdd { sock, app } => {
            out.push(3);
            pick(*sock, out);
            pick(*app, out);
        }
        Op::WorkerDel { sock, app, wrk } => {
            out.push(4);
            pick(*sock, out);
            pick(*app, out);
            pick(*wrk, out);
        }
        Op::CertKeyAdd {
            sock,
            cert_len,
            certkey_len,
            data,
        } => {
            out.push(5);
            pick(*sock, out);
            out.extend_from_slice(&cert_len.to_le_bytes());
            out.extend_from_slice(&certkey_len.to_le_bytes());
            match data {
                Some(n) => {
                    out.push(1);
                    out.extend_from_slice(&n.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        Op::CertKeyDel { sock, index } => {
            out.push(6);
            pick(*sock, out);
            out.push(*index as u8);
        }
        Op::Raw {
            sock,
            bytes,
            truncated,
            ctrunc,
        } => {
            out.push(7);
            pick(*sock, out);
            let bytes = &bytes[..bytes.len().min(699)];
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
            out.push(u8::from(*truncated));
            out.push(u8::from(*ctrunc));
        }
        Op::Close { sock } => {
            out.push(9);
            pick(*sock, out);
        }
        Op::SendFailed { sock } => {
            out.push(10);
            pick(*sock, out);
        }
        Op::Deadline { sock } => {
            out.push(11);
            pick(*sock, out);
        }
        Op::SegmentAdd { app, wrk } => {
            out.push(12);
            pick(*app, out);
            pick(*wrk, out);
        }
        Op::SegmentDel { app, wrk, seg } => {
            out.push(13);
            pick(*app, out);
            pick(*wrk, out);
            pick(*seg, out);
        }
        Op::NsAdd { id } => out.extend_from_slice(&[14, 1, *id]),
        Op::NsDel { id } => out.extend_from_slice(&[14, 0, *id]),
        Op::Show => out.push(15),
        Op::Inject(i) => {
            out.push(16);
            match i {
                Inject::WorkerResources(e) => out.extend_from_slice(&[0, resource_error_byte(*e)]),
                Inject::Segment(e) => out.extend_from_slice(&[1, resource_error_byte(*e)]),
                Inject::Listen => out.push(2),
                Inject::Send => out.push(3),
                Inject::FifoPair => out.push(4),
                Inject::Shadows => out.push(5),
            }
        }
        Op::Listen {
            wrk,
            addr,
            port,
            udp,
        } => {
            out.push(18);
            pick(*wrk, out);
            out.extend_from_slice(&[*addr, *port, u8::from(*udp)]);
        }
        Op::Unlisten { wrk, listener } => {
            out.push(19);
            pick(*wrk, out);
            pick(*listener, out);
        }
        Op::Dial {
            wrk,
            to,
            addr,
            port,
            udp,
        } => {
            out.push(20);
            pick(*wrk, out);
            pick(*to, out);
            out.extend_from_slice(&[*addr, *port, u8::from(*udp)]);
        }
        Op::Accept { acc, reject } => {
            out.push(21);
            pick(*acc, out);
            out.push(u8::from(*reject));
        }
        Op::Write { sess, len } => {
            out.push(22);
            pick(*sess, out);
            out.extend_from_slice(&len.to_le_bytes());
        }
        Op::Read { sess, len } => {
            out.push(23);
            pick(*sess, out);
            out.extend_from_slice(&len.to_le_bytes());
        }
        Op::Shut { sess, how } => {
            out.push(24);
            pick(*sess, out);
            out.push(CloseHow::ALL.iter().position(|h| h == how).unwrap_or(0) as u8);
        }
        Op::CrashSession { sess } => {
            out.push(25);
            pick(*sess, out);
        }
        Op::Detach { wrk } => {
            out.push(26);
            pick(*wrk, out);
        }
        Op::Hostile { wrk, sess, kind } => {
            out.push(27);
            pick(*wrk, out);
            pick(*sess, out);
            out.push(Hostile::ALL.iter().position(|k| k == kind).unwrap_or(0) as u8);
        }
        // The simulation never generates one; written as the datagram of its Head bytes.
        Op::Request { sock, msg } => {
            let bytes = msg.encode(Profile::Head).map(|b| b.to_vec());
            encode_op(
                &Op::Raw {
                    sock: *sock,
                    bytes: bytes.unwrap_or_default(),
                    truncated: false,
                    ctrunc: false,
                },
                out,
            );
        }
    }
}

pub(super) fn resource_error_byte(e: ResourceError) -> u8 {
    RESOURCE_ERRORS.iter().position(|x| *x == e).unwrap_or(0) as u8
}

/// A fuzz input running `ops` in `profile`.
pub fn encode_ops(profile: Profile, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![u8::from(profile == Profile::Seed)];
    for op in ops {
        encode_op(op, &mut out);
    }
    out
}

/// Most ops one fuzz input runs (keeps every exec short).
pub const MAX_FUZZ_OPS: usize = 128;

/// The fuzzer's reading of `data` (see [`Program`]).
pub fn ops_from_bytes(data: &[u8]) -> (Profile, Vec<Op>) {
    match Program::arbitrary_take_rest(Unstructured::new(data)) {
        Ok(p) => (p.profile, p.ops),
        // Every reader above pads with zeros, so this is never taken.
        Err(_) => (Profile::Head, Vec::new()),
    }
}

/// How often the fuzzer runs the full snapshot check (the count-based and per-action checks run
/// after every op); under coverage instrumentation the snapshot dominates an exec.
pub const FUZZ_FULL_CHECK_EVERY: usize = 8;

/// The `core_sequence` check: panics with the violation if any invariant breaks. Regression
/// replays run it with the full check after every op.
pub fn check_core_sequence(data: &[u8]) {
    check_core_sequence_every(data, 1);
}

/// [`check_core_sequence`] with the full check every `every` ops.
pub fn check_core_sequence_every(data: &[u8], every: usize) {
    let (profile, ops) = ops_from_bytes(data);
    check_program(Program { profile, ops }, every);
}

/// Runs `program`, panicking with the violation and the op list if any invariant breaks (the
/// fuzz target's entry point).
pub fn check_program(program: Program, every: usize) {
    let Program { profile, ops } = program;
    if let Err(v) = Sim::run_ops_checking(profile, &ops, every) {
        panic!("{profile}: core invariant broken at {v}\nops: {ops:#?}");
    }
}
