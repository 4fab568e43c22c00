//! The seeded simulation's generator: a weighted, phase-dependent stream of ops from a seed.

use super::op::{CloseHow, Hostile, Inject, Op, Pick};
use sapi_core::ResourceError;
use sapi_wire::{AppOptionFlags, AttachOptions, MSG_LEN, OptionIndex};

/// splitmix64: tiny, fast, and good enough to drive a simulation reproducibly.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(super) fn pick(&mut self) -> Pick {
        if self.chance(4) {
            Pick(Pick::BOGUS + (self.next_u64() as u32 & 0x0FFF_FFFF))
        } else {
            Pick(self.next_u64() as u32 & 0x0FFF_FFFF)
        }
    }

    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

pub(super) const RESOURCE_ERRORS: [ResourceError; 3] = [
    ResourceError::SegmentCreate,
    ResourceError::HugePages,
    ResourceError::EventfdAlloc,
];

/// Attach options a simulated app would send: mostly valid, sometimes each kind of refusal.
pub(super) fn sim_options(rng: &mut Rng) -> AttachOptions {
    let mut flags = AppOptionFlags::ACCEPT_REDIRECT;
    if rng.chance(60) {
        flags |= AppOptionFlags::EVT_MQ_USE_EVENTFD;
    }
    if rng.chance(10) {
        flags |= AppOptionFlags::USE_HUGE_PAGE;
    }
    // Only apps with local scope listen and connect (`docs/sessions.md` §6.1, §7.1).
    if rng.chance(75) {
        flags |= AppOptionFlags::USE_LOCAL_SCOPE;
    }
    let mut o = AttachOptions::default()
        .with(
            OptionIndex::SegmentSize,
            [0, 1 << 20, 16 << 20, 64 << 20][rng.below(4) as usize],
        )
        .with(
            OptionIndex::AddSegmentSize,
            [0, 0, 4 << 20][rng.below(3) as usize],
        )
        .with(
            OptionIndex::EvtQueueSize,
            [0, 16, 128, 1024][rng.below(4) as usize],
        )
        .with(OptionIndex::RxFifoSize, 1 << 16)
        .with(OptionIndex::TxFifoSize, 1 << 16);
    match rng.below(20) {
        0 => flags |= AppOptionFlags::IS_BUILTIN,
        1 => flags |= AppOptionFlags::IS_BUILTIN | AppOptionFlags::MEMFD_FOR_BUILTIN,
        2 => {
            o.set(OptionIndex::PreallocFifoPairs, 4);
            o.set(OptionIndex::PreallocFifoHdrs, 4);
        }
        3 => o.set(OptionIndex::SegmentSize, u64::MAX),
        4 => o.set(OptionIndex::EvtQueueSize, u64::from(u32::MAX) + 1),
        5 => {
            o.set(OptionIndex::SegmentSize, 0);
            o.set(OptionIndex::MaxFifoMemory, 1 << 20);
        }
        6 => o.set(OptionIndex::Namespace, rng.next_u64()),
        7 => o = AttachOptions(std::array::from_fn(|_| rng.next_u64())),
        _ => {}
    }
    o.with_flags(flags)
}

/// A junk datagram: short, long, or 209 bytes of random body under any type byte.
pub(super) fn sim_junk(rng: &mut Rng) -> Vec<u8> {
    match rng.below(5) {
        0 => {
            let n = rng.below(MSG_LEN as u64) as usize;
            rng.bytes(n)
        }
        1 => {
            let n = MSG_LEN + 1 + rng.below(600) as usize;
            let mut b = rng.bytes(n);
            b[0] = rng.below(8) as u8;
            b
        }
        2 => rng.bytes(MSG_LEN),
        _ => {
            let mut b = vec![0; MSG_LEN];
            b[0] = rng.below(9) as u8;
            let body = rng.below(32) as usize;
            for x in &mut b[1..=body] {
                *x = rng.next_u64() as u8;
            }
            b
        }
    }
}

/// How often each kind of op comes, per phase of a run: growth (apps pile up, listen, connect and
/// accept), churn (crashes, worker and segment turnover, sessions moving data and closing at a
/// steady population), teardown (closes, crashes and namespace deletes).
/// Columns: connect, attach, worker add, worker del, cert-key add, cert-key del, junk, close,
/// send failed, deadline, segment add, segment del, ns add, ns del, show, inject; then the
/// session layer: listen, unlisten, dial, accept, write, read, shut, crash mid-session, detach,
/// hostile.
pub(super) const WEIGHTS: [[u64; 26]; 3] = [
    [
        300, 300, 60, 15, 10, 5, 20, 15, 2, 10, 40, 10, 10, 1, 2, 20, //
        60, 3, 120, 110, 90, 90, 25, 3, 2, 15,
    ],
    [
        120, 130, 80, 50, 25, 10, 70, 110, 15, 20, 70, 40, 15, 5, 5, 40, //
        40, 10, 110, 100, 110, 110, 60, 15, 6, 25,
    ],
    [
        40, 40, 40, 40, 10, 5, 60, 200, 20, 20, 40, 40, 10, 20, 5, 40, //
        10, 15, 30, 40, 60, 60, 120, 30, 15, 20,
    ],
];

/// A write or read length: a byte, a little, a page, a fifo's worth or anything.
fn io_len(rng: &mut Rng) -> u16 {
    match rng.below(5) {
        0 => 1,
        1 => 100,
        2 => 4096,
        3 => u16::MAX,
        _ => rng.next_u64() as u16,
    }
}

/// One random op for a step in `phase` (0..3). Stateless: picks resolve when it runs.
pub fn sim_op(rng: &mut Rng, phase: usize) -> Op {
    let weights = &WEIGHTS[phase.min(2)];
    let mut r = rng.below(weights.iter().sum());
    let mut kind = 0;
    while r >= weights[kind] {
        r -= weights[kind];
        kind += 1;
    }
    let sock = |rng: &mut Rng| {
        if rng.chance(50) {
            Pick::NEWEST
        } else {
            rng.pick()
        }
    };
    match kind {
        0 => Op::Connect {
            ns: if rng.chance(50) { Pick(0) } else { rng.pick() },
            pid: rng.below(1 << 20) as i32,
        },
        1 => Op::Attach {
            sock: sock(rng),
            name: {
                let n = rng.below(70) as usize;
                (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
            },
            options: sim_options(rng),
        },
        2 => Op::WorkerAdd {
            sock: sock(rng),
            app: rng.pick(),
        },
        3 => Op::WorkerDel {
            sock: rng.pick(),
            app: rng.pick(),
            wrk: rng.pick(),
        },
        4 => {
            let certkey_len = [0, 10, 300, 15_000, 20_000, 20_001, u16::MAX][rng.below(7) as usize];
            let cert_len = match rng.below(4) {
                0 => certkey_len / 2,
                1 => certkey_len.saturating_add(1),
                2 => 10_001,
                _ => rng.next_u64() as u16,
            };
            let data = match rng.below(4) {
                0 => None,
                1 => Some(rng.next_u64() as u16 % 400),
                _ => Some(certkey_len),
            };
            Op::CertKeyAdd {
                sock: rng.pick(),
                cert_len,
                certkey_len,
                data,
            }
        }
        5 => Op::CertKeyDel {
            sock: rng.pick(),
            index: rng.below(6) as u32,
        },
        6 => Op::Raw {
            sock: rng.pick(),
            bytes: sim_junk(rng),
            truncated: rng.chance(5),
            ctrunc: rng.chance(5),
        },
        7 => Op::Close { sock: rng.pick() },
        8 => Op::SendFailed { sock: rng.pick() },
        9 => Op::Deadline { sock: rng.pick() },
        10 => Op::SegmentAdd {
            app: rng.pick(),
            wrk: rng.pick(),
        },
        11 => Op::SegmentDel {
            app: rng.pick(),
            wrk: rng.pick(),
            seg: rng.pick(),
        },
        12 => Op::NsAdd {
            id: [1, 2, 3, 4, 5, 6, 0, 255][rng.below(8) as usize],
        },
        13 => Op::NsDel {
            id: [1, 2, 3, 4, 5, 6, 0, 9][rng.below(8) as usize],
        },
        14 => Op::Show,
        15 => Op::Inject(match rng.below(6) {
            0 => Inject::WorkerResources(RESOURCE_ERRORS[rng.below(3) as usize]),
            1 => Inject::Segment(RESOURCE_ERRORS[rng.below(3) as usize]),
            2 => Inject::Listen,
            3 => Inject::Send,
            4 => Inject::FifoPair,
            _ => Inject::Shadows,
        }),
        16 => Op::Listen {
            wrk: rng.pick(),
            addr: rng.below(256) as u8,
            port: rng.below(256) as u8,
            udp: rng.chance(30),
        },
        17 => Op::Unlisten {
            wrk: rng.pick(),
            listener: rng.pick(),
        },
        18 => Op::Dial {
            wrk: rng.pick(),
            // Mostly to a listener, at its own address or by the loopback fallback.
            to: if rng.chance(85) {
                Pick(rng.next_u64() as u32 & 0x0FFF_FFFF)
            } else {
                Pick::bogus(rng.next_u64() as u32)
            },
            addr: if rng.chance(60) {
                0
            } else {
                rng.below(256) as u8
            },
            port: rng.below(256) as u8,
            udp: rng.chance(30),
        },
        19 => Op::Accept {
            acc: rng.pick(),
            reject: rng.chance(12),
        },
        20 => Op::Write {
            sess: rng.pick(),
            len: io_len(rng),
        },
        21 => Op::Read {
            sess: rng.pick(),
            len: io_len(rng),
        },
        22 => Op::Shut {
            sess: rng.pick(),
            how: CloseHow::ALL[rng.below(4) as usize],
        },
        23 => Op::CrashSession { sess: rng.pick() },
        24 => Op::Detach { wrk: rng.pick() },
        _ => Op::Hostile {
            wrk: rng.pick(),
            sess: rng.pick(),
            kind: Hostile::ALL[rng.below(Hostile::ALL.len() as u64) as usize],
        },
    }
}

/// The op list of a seed: the first 40 % of steps grow, the next 40 % churn, the rest tear down.
pub fn ops_from_seed(seed: u64, steps: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    (0..steps)
        .map(|i| {
            let phase = match i * 10 / steps.max(1) {
                0..=3 => 0,
                4..=7 => 1,
                _ => 2,
            };
            sim_op(&mut rng, phase)
        })
        .collect()
}
