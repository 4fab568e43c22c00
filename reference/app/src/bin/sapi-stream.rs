//! `sapi-stream`: two apps streaming bytes to each other through a running SAPI server (the
//! reference, or VPP with local scope), over `sapi-app`.
//!
//! ```text
//! sapi-stream server [--port 5000] [--sessions N]                      # serves what each client asks
//! sapi-stream client [--port 5000] --bytes 64M [--mode duplex|echo|sink] [--sessions K]
//! ```
//!
//! Each client session starts with a 32-byte header (magic, mode, seed, length) and then streams
//! `--bytes` bytes of a generated sequence (splitmix64 of the seed and the position) that the
//! server checks byte for byte. The server sinks it (`sink`), sends it back (`echo`, checked by
//! the client), or sends a stream of its own as long at the same time (`duplex`, checked by the
//! client). Both ends print a 64-bit checksum (FNV-1a over 8-byte words) of everything they
//! sent and received, so the two outputs can be compared line by line; then the client closes,
//! the server answers the close, and each waits (bounded) until the ct segments its sessions
//! used are deleted (DEL_SEGMENT) before it detaches.
//!
//! One process drives all of its sessions from one loop: non-blocking reads and writes, and a
//! wait in `App::poll` when none of them can move (`sapi_app`'s crate documentation).
//!
//! Output lines (stdout, one event per line, `key=value` fields): `ATTACHED`, `LISTENING`,
//! `SESSION <n> ACCEPTED|CONNECTED`, `CONNECTED-ALL` (with `--wait-go`: then one line on stdin
//! starts the streams), `PROGRESS`, `SESSION <n> DONE`, `SESSION <n> PEER-CLOSED|PEER-RESET`,
//! `SEGMENTS-RELEASED`, `HOLDING` (with `--hold`: one line on stdin, or its end, lets it
//! detach), `SUMMARY`, `DETACHED`. Exit status: 0 when every session completed, 3 when a peer
//! went away mid-stream (closed or reset), 1 on any other error, 2 on a usage error.
//!
//! Must never: exit 0 unless every session completed and every byte it checked matched (a wrong
//! byte is an error, exit 1), or wait without a bound (`--idle-timeout`): it is what scripts and
//! the real-process tests judge a server by.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sapi_app::{App, AppError, AppOptions, Listener, Proto, Session};

const USAGE: &str = "\
usage: sapi-stream server [options] [--sessions N]
       sapi-stream client [options] --bytes SIZE [--mode duplex|echo|sink] [--sessions K]
                          [--seed S] [--wait-go] [--no-check]
options:
  --socket PATH        namespace socket (default /tmp/sapi/app_ns_sockets/default)
  --ip ADDR            address to listen on or connect to (default 127.0.0.1)
  --port P[,P...]      port (default 5000); a client spreads its sessions over the ports given
  --name NAME          application name (default sapi-stream-<role>-<pid>)
  --fifo-size SIZE     rx and tx fifo size asked at attach (default 1M; the server's sizes count)
  --segment-size SIZE  first segment size (default 16M)
  --progress SIZE      print PROGRESS each time this many more bytes moved (default off)
  --idle-timeout SECS  fail when nothing happens for this long (default 30)
  --hold               before detaching, print HOLDING and wait for a line on stdin
  --quiet              no SESSION lines
server: --sessions N   exit after N sessions (default 0: serve until killed)
client: --sessions K   concurrent sessions (default 1); --bytes SIZE each way per session;
        --mode         duplex (default), echo or sink; --seed S (default: the pid)
        --wait-go      connect every session, print CONNECTED-ALL, wait for a line on stdin
        --no-check     send one generated chunk over and over; neither end checks or sums
                       (what the data path itself costs)
SIZE takes K, M, G, T suffixes (powers of 1024).";

const MAGIC: &[u8; 8] = b"SAPISTRM";
const HEADER_LEN: usize = 32;
/// The server's stream in duplex mode is the client's seed with these bits flipped.
const DUPLEX_SEED_XOR: u64 = 0x5a5a_5a5a_5a5a_5a5a;
const CHUNK: usize = 256 << 10;
/// Bytes one session may move in one direction before the loop turns to the next session.
const TURN: usize = 4 << 20;
/// How many bytes an echo server holds that its client has not taken back yet.
const ECHO_BACKLOG: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sink,
    Echo,
    Duplex,
}

impl Mode {
    fn number(self) -> u32 {
        match self {
            Mode::Sink => 0,
            Mode::Echo => 1,
            Mode::Duplex => 2,
        }
    }
    fn from_number(n: u32) -> Option<Mode> {
        match n {
            0 => Some(Mode::Sink),
            1 => Some(Mode::Echo),
            2 => Some(Mode::Duplex),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mode::Sink => "sink",
            Mode::Echo => "echo",
            Mode::Duplex => "duplex",
        }
    }
}

#[derive(Debug, Clone)]
struct Opts {
    server: bool,
    socket: PathBuf,
    ip: IpAddr,
    ports: Vec<u16>,
    name: Option<String>,
    fifo_size: u64,
    segment_size: u64,
    progress: u64,
    idle: Duration,
    hold: bool,
    quiet: bool,
    sessions: usize,
    bytes: u64,
    mode: Mode,
    seed: u64,
    wait_go: bool,
    check: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        Some((i, 't' | 'T')) => (&s[..i], 40),
        _ => (s, 0),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut it = args.iter();
    let server = match it.next().map(String::as_str) {
        Some("server") => true,
        Some("client") => false,
        Some(other) => return Err(format!("unknown role {other:?}")),
        None => return Err("a role is needed: server or client".into()),
    };
    let mut o = Opts {
        server,
        socket: PathBuf::from("/tmp/sapi/app_ns_sockets/default"),
        ip: IpAddr::from([127, 0, 0, 1]),
        ports: vec![5000],
        name: None,
        fifo_size: 1 << 20,
        segment_size: 16 << 20,
        progress: 0,
        idle: Duration::from_secs(30),
        hold: false,
        quiet: false,
        sessions: if server { 0 } else { 1 },
        bytes: 0,
        mode: Mode::Duplex,
        seed: u64::from(std::process::id()),
        wait_go: false,
        check: true,
    };
    let mut bytes_given = false;
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--socket" => o.socket = PathBuf::from(value()?),
            "--ip" => o.ip = value()?.parse().map_err(|e| format!("--ip: {e}"))?,
            "--port" => {
                o.ports = value()?
                    .split(',')
                    .map(|p| p.parse().map_err(|e| format!("--port {p:?}: {e}")))
                    .collect::<Result<_, _>>()?;
                if o.ports.is_empty() || (server && o.ports.len() != 1) {
                    return Err("--port: a server takes one port".into());
                }
            }
            "--name" => o.name = Some(value()?),
            "--fifo-size" => o.fifo_size = parse_size(&value()?)?,
            "--segment-size" => o.segment_size = parse_size(&value()?)?,
            "--progress" => o.progress = parse_size(&value()?)?,
            "--idle-timeout" => {
                let secs: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--idle-timeout: {e}"))?;
                o.idle = Duration::from_secs(secs);
            }
            "--hold" => o.hold = true,
            "--quiet" => o.quiet = true,
            "--sessions" => {
                o.sessions = value()?.parse().map_err(|e| format!("--sessions: {e}"))?
            }
            "--bytes" if !server => {
                o.bytes = parse_size(&value()?)?;
                bytes_given = true;
            }
            "--mode" if !server => {
                o.mode = match value()?.as_str() {
                    "sink" => Mode::Sink,
                    "echo" => Mode::Echo,
                    "duplex" => Mode::Duplex,
                    m => return Err(format!("--mode: unknown mode {m:?}")),
                }
            }
            "--seed" if !server => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--wait-go" if !server => o.wait_go = true,
            "--no-check" if !server => o.check = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if !server && !bytes_given {
        return Err("a client needs --bytes".into());
    }
    if !server && o.sessions == 0 {
        return Err("--sessions: at least 1".into());
    }
    let fifo = u32::try_from(o.fifo_size).map_err(|_| "--fifo-size: at most 4G-1".to_string())?;
    if fifo < 4096 {
        return Err("--fifo-size: at least 4K".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The byte stream and its checksum.

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes at `offset..` of the stream of `seed`: word i of the stream is
/// splitmix64 of the seed and i, little-endian.
fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut p = offset;
    let mut out = buf;
    while !out.is_empty() {
        let w = splitmix64(seed.wrapping_add((p / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let b = w.to_le_bytes();
        let s = (p % 8) as usize;
        let n = (8 - s).min(out.len());
        let (head, rest) = out.split_at_mut(n);
        head.copy_from_slice(&b[s..s + n]);
        out = rest;
        p += n as u64;
    }
}

/// FNV-1a over the stream's 8-byte words (the last, partial one zero-padded), then the length.
#[derive(Debug, Clone, Copy)]
struct Checksum {
    h: u64,
    pend: [u8; 8],
    npend: usize,
    len: u64,
}

impl Checksum {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Checksum {
            h: 0xcbf2_9ce4_8422_2325,
            pend: [0; 8],
            npend: 0,
            len: 0,
        }
    }

    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(Self::PRIME);
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.npend > 0 {
            let n = (8 - self.npend).min(data.len());
            self.pend[self.npend..self.npend + n].copy_from_slice(&data[..n]);
            self.npend += n;
            data = &data[n..];
            if self.npend < 8 {
                return;
            }
            self.word(u64::from_le_bytes(self.pend));
            self.npend = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.word(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        self.pend[..rest.len()].copy_from_slice(rest);
        self.npend = rest.len();
    }

    fn finish(&self) -> u64 {
        let mut c = *self;
        if c.npend > 0 {
            let mut b = [0u8; 8];
            b[..c.npend].copy_from_slice(&c.pend[..c.npend]);
            c.word(u64::from_le_bytes(b));
        }
        c.word(c.len);
        c.h
    }
}

// ---------------------------------------------------------------------------------------------
// One session's transfer.

/// What a session writes: the header (a client's, not counted as stream data), then `total`
/// bytes of `seed`'s stream, or (an echo server) what it read.
struct Sender {
    header: Vec<u8>,
    seed: u64,
    total: u64,
    made: u64,
    chunk: Vec<u8>,
    at: usize,
    echo: VecDeque<u8>,
    sent: u64,
    sum: Checksum,
    /// False with `--no-check`: one chunk generated once and sent again and again, no checksum.
    check: bool,
}

/// What a session expects to read: `total` bytes of `seed`'s stream, checked as they come.
struct Receiver {
    seed: u64,
    total: u64,
    got: u64,
    sum: Checksum,
    expect: Vec<u8>,
    /// False with `--no-check`: bytes are only counted.
    check: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Running,
    Done,
    PeerClosed,
    PeerReset,
}

struct Transfer {
    n: usize,
    session: Option<Session>,
    ct_segment: u64,
    mode: Option<Mode>,
    /// A server reads the header first.
    header_in: Vec<u8>,
    tx: Sender,
    rx: Receiver,
    eof: bool,
    outcome: Outcome,
    started: Instant,
}

#[derive(Debug)]
enum StreamError {
    App(AppError),
    Data(String),
}

impl From<AppError> for StreamError {
    fn from(e: AppError) -> Self {
        StreamError::App(e)
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::App(e) => write!(f, "{e}"),
            StreamError::Data(s) => f.write_str(s),
        }
    }
}

impl Sender {
    fn new(header: Vec<u8>, seed: u64, total: u64, check: bool) -> Self {
        Sender {
            header,
            seed,
            total,
            made: 0,
            chunk: Vec::new(),
            at: 0,
            echo: VecDeque::new(),
            sent: 0,
            sum: Checksum::new(),
            check,
        }
    }

    fn finished(&self, echoing: bool) -> bool {
        self.header.is_empty()
            && self.at >= self.chunk.len()
            && (if echoing {
                self.echo.is_empty()
            } else {
                self.made >= self.total
            })
    }

    /// The next bytes to write: the header, the rest of the current chunk, a new chunk; `None`
    /// when there is nothing to write now.
    fn next(&mut self, echoing: bool) -> Option<&[u8]> {
        if !self.header.is_empty() {
            return Some(&self.header);
        }
        if self.at >= self.chunk.len() {
            self.at = 0;
            if echoing {
                let n = self.echo.len().min(CHUNK);
                self.chunk.clear();
                self.chunk.extend(self.echo.drain(..n));
            } else {
                let n = (self.total - self.made).min(CHUNK as u64) as usize;
                if self.check || self.chunk.len() < n {
                    self.chunk.resize(n, 0);
                    fill(self.seed, self.made, &mut self.chunk);
                }
                self.chunk.truncate(n);
                self.made += n as u64;
            }
            if self.chunk.is_empty() {
                return None;
            }
        }
        self.chunk.get(self.at..)
    }

    /// `n` bytes of what [`Sender::next`] returned were written.
    fn advance(&mut self, n: usize) {
        if !self.header.is_empty() {
            self.header.drain(..n.min(self.header.len()));
            return;
        }
        if self.check
            && let Some(written) = self.chunk.get(self.at..self.at + n)
        {
            self.sum.update(written);
        }
        self.at += n;
        self.sent += n as u64;
    }
}

impl Receiver {
    fn new(seed: u64, total: u64, check: bool) -> Self {
        Receiver {
            seed,
            total,
            got: 0,
            sum: Checksum::new(),
            expect: Vec::new(),
            check,
        }
    }

    fn take(&mut self, data: &[u8]) -> Result<(), String> {
        if self.got + data.len() as u64 > self.total {
            return Err(format!(
                "{} bytes more than the {} expected",
                self.got + data.len() as u64 - self.total,
                self.total
            ));
        }
        if !self.check {
            self.got += data.len() as u64;
            return Ok(());
        }
        self.expect.resize(data.len(), 0);
        fill(self.seed, self.got, &mut self.expect);
        if self.expect != data {
            let at = data
                .iter()
                .zip(&self.expect)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "byte {} of the stream is {:#04x}, expected {:#04x}",
                self.got + at as u64,
                data.get(at).copied().unwrap_or(0),
                self.expect.get(at).copied().unwrap_or(0)
            ));
        }
        self.sum.update(data);
        self.got += data.len() as u64;
        Ok(())
    }
}

/// `flags` bit 0 of the header: `--no-check`.
const NO_CHECK: u32 = 1;

fn header(mode: Mode, check: bool, seed: u64, bytes: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&mode.number().to_le_bytes());
    let flags = if check { 0 } else { NO_CHECK };
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&seed.to_le_bytes());
    h[24..32].copy_from_slice(&bytes.to_le_bytes());
    h
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b.get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(a)
}

impl Transfer {
    fn client(n: usize, session: Session, mode: Mode, check: bool, seed: u64, bytes: u64) -> Self {
        let back = match mode {
            Mode::Sink => 0,
            Mode::Echo | Mode::Duplex => bytes,
        };
        let back_seed = match mode {
            Mode::Duplex => seed ^ DUPLEX_SEED_XOR,
            _ => seed,
        };
        Transfer {
            n,
            ct_segment: session.ct_segment(),
            session: Some(session),
            mode: Some(mode),
            header_in: Vec::new(),
            tx: Sender::new(
                header(mode, check, seed, bytes).to_vec(),
                seed,
                bytes,
                check,
            ),
            rx: Receiver::new(back_seed, back, check),
            eof: false,
            outcome: Outcome::Running,
            started: Instant::now(),
        }
    }

    fn server(n: usize, session: Session) -> Self {
        Transfer {
            n,
            ct_segment: session.ct_segment(),
            session: Some(session),
            mode: None,
            header_in: Vec::new(),
            tx: Sender::new(Vec::new(), 0, 0, true),
            rx: Receiver::new(0, 0, true),
            eof: false,
            outcome: Outcome::Running,
            started: Instant::now(),
        }
    }

    /// The server's reading of the client's header: the mode, what to expect, what to send.
    fn take_header(h: &[u8]) -> Result<(Mode, Receiver, Sender), String> {
        if h.get(..8) != Some(MAGIC.as_slice()) {
            return Err(format!("not a sapi-stream header: {h:02x?}"));
        }
        let word = le_u64(&h[8..16]);
        let mode_n = (word & 0xffff_ffff) as u32;
        let check = (word >> 32) as u32 & NO_CHECK == 0;
        let mode = Mode::from_number(mode_n).ok_or(format!("unknown mode {mode_n}"))?;
        let (seed, bytes) = (le_u64(&h[16..24]), le_u64(&h[24..32]));
        let tx = match mode {
            Mode::Sink | Mode::Echo => Sender::new(Vec::new(), seed, 0, check),
            Mode::Duplex => Sender::new(Vec::new(), seed ^ DUPLEX_SEED_XOR, bytes, check),
        };
        Ok((mode, Receiver::new(seed, bytes, check), tx))
    }

    /// Moves what can be moved now; true if anything moved.
    fn step(&mut self, server: bool, buf: &mut [u8]) -> Result<bool, StreamError> {
        let Some(s) = self.session.as_mut() else {
            return Ok(false);
        };
        let mut moved = false;
        // Write.
        let echoing = server && self.mode == Some(Mode::Echo);
        let mut budget = TURN;
        while budget > 0 && self.outcome == Outcome::Running {
            let Some(data) = self.tx.next(echoing) else {
                break;
            };
            match s.try_write(data) {
                Ok(n) => {
                    self.tx.advance(n);
                    budget = budget.saturating_sub(n);
                    moved = true;
                }
                Err(AppError::WouldBlock) => break,
                Err(AppError::PeerClosed { .. }) => self.outcome = Outcome::PeerClosed,
                Err(AppError::PeerReset { .. }) => self.outcome = Outcome::PeerReset,
                Err(e) => return Err(e.into()),
            }
        }
        // Read.
        let mut budget = TURN;
        while budget > 0 && !self.eof && self.outcome != Outcome::PeerReset {
            let echoing = server && self.mode == Some(Mode::Echo);
            if echoing && self.tx.echo.len() >= ECHO_BACKLOG {
                break;
            }
            let want = if server && self.mode.is_none() {
                HEADER_LEN - self.header_in.len()
            } else {
                buf.len()
            };
            let Some(b) = buf.get_mut(..want) else {
                break;
            };
            match s.try_read(b) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    moved = true;
                    budget = budget.saturating_sub(n);
                    let data = b.get(..n).unwrap_or_default();
                    if server && self.mode.is_none() {
                        self.header_in.extend_from_slice(data);
                        if self.header_in.len() == HEADER_LEN {
                            let (mode, rx, tx) =
                                Self::take_header(&self.header_in).map_err(StreamError::Data)?;
                            (self.mode, self.rx, self.tx) = (Some(mode), rx, tx);
                        }
                        continue;
                    }
                    self.rx.take(data).map_err(StreamError::Data)?;
                    if echoing {
                        self.tx.echo.extend(data);
                    }
                }
                Err(AppError::WouldBlock) => break,
                Err(AppError::PeerReset { .. }) => self.outcome = Outcome::PeerReset,
                Err(e) => return Err(e.into()),
            }
        }
        if self.eof && self.outcome == Outcome::Running {
            let echoing = server && self.mode == Some(Mode::Echo);
            let complete =
                self.mode.is_some() && self.rx.got == self.rx.total && self.tx.finished(echoing);
            if !complete {
                self.outcome = Outcome::PeerClosed;
            }
        }
        Ok(moved)
    }

    /// Whether this side has nothing left to do but close: a client once it sent and received
    /// everything, a server once it also saw the client's close.
    fn ready_to_close(&self, server: bool) -> bool {
        if self.outcome != Outcome::Running {
            return true;
        }
        let Some(mode) = self.mode else {
            return false;
        };
        let echoing = server && mode == Mode::Echo;
        let all = self.rx.got == self.rx.total && self.tx.finished(echoing);
        all && (!server || self.eof)
    }
}

// ---------------------------------------------------------------------------------------------
// The loop.

struct Run {
    opts: Opts,
    app: App,
    listener: Option<Listener>,
    transfers: Vec<Transfer>,
    finished: Vec<Transfer>,
    accepted: usize,
    moved: u64,
    next_progress: u64,
    failures: usize,
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn wait_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn gbit(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64().max(1e-9) / 1e9
}

impl Run {
    fn session_line(&self, t: &Transfer, what: &str) {
        if self.opts.quiet {
            return;
        }
        let mode = t.mode.map_or("?", Mode::name);
        let secs = t.started.elapsed().as_secs_f64();
        say(format_args!(
            "SESSION {} {what} mode={mode} sent={} sent_sum={:016x} received={} received_sum={:016x} seconds={secs:.3}",
            t.n,
            t.tx.sent,
            t.tx.sum.finish(),
            t.rx.got,
            t.rx.sum.finish(),
        ));
    }

    /// Closes the transfers that are finished (or whose peer went away) and reports them.
    fn settle(&mut self) -> Result<(), StreamError> {
        let server = self.opts.server;
        let mut i = 0;
        while i < self.transfers.len() {
            if !self.transfers[i].ready_to_close(server) {
                i += 1;
                continue;
            }
            let mut t = self.transfers.swap_remove(i);
            if let Some(s) = t.session.take() {
                s.close()?;
            }
            match t.outcome {
                Outcome::Running => {
                    t.outcome = Outcome::Done;
                    let what = if t.rx.check {
                        "DONE verified"
                    } else {
                        "DONE unchecked"
                    };
                    self.session_line(&t, what);
                }
                Outcome::PeerClosed => {
                    self.failures += 1;
                    self.session_line(&t, "PEER-CLOSED (DISCONNECTED)");
                }
                Outcome::PeerReset => {
                    self.failures += 1;
                    self.session_line(&t, "PEER-RESET (RESET)");
                }
                Outcome::Done => {}
            }
            self.finished.push(t);
        }
        Ok(())
    }

    fn all_done(&self) -> bool {
        if self.opts.server {
            self.opts.sessions > 0 && self.finished.len() >= self.opts.sessions
        } else {
            self.transfers.is_empty()
        }
    }

    fn progress(&mut self, before: u64) {
        if self.opts.progress == 0 {
            return;
        }
        if self.moved >= self.next_progress && self.moved > before {
            say(format_args!("PROGRESS bytes={}", self.moved));
            while self.next_progress <= self.moved {
                self.next_progress += self.opts.progress;
            }
        }
    }

    fn pump(&mut self) -> Result<(), StreamError> {
        let server = self.opts.server;
        let mut buf = vec![0u8; CHUNK];
        let mut idle_since = Instant::now();
        loop {
            let mut moved = false;
            if let Some(l) = &self.listener {
                let want = self.opts.sessions;
                while want == 0 || self.accepted < want {
                    let Some(s) = l.try_accept()? else { break };
                    let t = Transfer::server(self.accepted, s);
                    if !self.opts.quiet {
                        say(format_args!(
                            "SESSION {} ACCEPTED handle={:#x} ct_segment={:#x}",
                            t.n,
                            t.session.as_ref().map_or(0, Session::handle),
                            t.ct_segment
                        ));
                    }
                    self.accepted += 1;
                    self.transfers.push(t);
                    moved = true;
                }
            }
            let before = self.moved;
            for t in &mut self.transfers {
                let (s0, r0) = (t.tx.sent, t.rx.got);
                moved |= t.step(server, &mut buf)?;
                self.moved += (t.tx.sent - s0) + (t.rx.got - r0);
            }
            self.progress(before);
            self.settle()?;
            if self.all_done() {
                return Ok(());
            }
            if moved {
                idle_since = Instant::now();
                continue;
            }
            // Nothing could move: every session armed the event that ends its wait (an RX, a TX,
            // a close), and a new connection brings an ACCEPTED.
            if server && self.opts.sessions == 0 && self.transfers.is_empty() {
                self.app.poll(None)?;
                idle_since = Instant::now();
                continue;
            }
            let left = self.opts.idle.saturating_sub(idle_since.elapsed());
            if !left.is_zero() && self.app.poll(Some(left))? > 0 {
                continue;
            }
            // No event for the whole bound. Look once more: if something can move now, its
            // event was lost (a bug in the event protocol on one side or the other), which is
            // reported as such rather than papered over by the look itself.
            let mut late = false;
            for t in &mut self.transfers {
                late |= t.step(server, &mut buf)?;
            }
            return Err(StreamError::Data(if late {
                format!(
                    "a lost wake-up: sessions could move after {:?} without any event",
                    self.opts.idle
                )
            } else {
                format!(
                    "nothing happened for {:?} ({} sessions open, {} finished)",
                    self.opts.idle,
                    self.transfers.len(),
                    self.finished.len()
                )
            }));
        }
    }
}

fn run(opts: Opts) -> Result<ExitCode, StreamError> {
    let role = if opts.server { "server" } else { "client" };
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| format!("sapi-stream-{role}-{}", std::process::id()));
    let fifo = u32::try_from(opts.fifo_size).unwrap_or(u32::MAX);
    let app = App::attach(
        &opts.socket,
        &name,
        AppOptions {
            rx_fifo_size: fifo,
            tx_fifo_size: fifo,
            segment_size: opts.segment_size,
            ..AppOptions::default()
        },
    )?;
    say(format_args!(
        "ATTACHED name={name} app_index={} pid={}",
        app.app_index(),
        std::process::id()
    ));
    let started = Instant::now();
    let mut run = Run {
        opts: opts.clone(),
        app,
        listener: None,
        transfers: Vec::new(),
        finished: Vec::new(),
        accepted: 0,
        moved: 0,
        next_progress: opts.progress,
        failures: 0,
    };
    if opts.server {
        let port = opts.ports.first().copied().unwrap_or(5000);
        let l = run.app.listen(SocketAddr::new(opts.ip, port), Proto::Tcp)?;
        say(format_args!(
            "LISTENING {}:{port} handle={:#x}",
            opts.ip,
            l.handle()
        ));
        run.listener = Some(l);
    } else {
        for n in 0..opts.sessions {
            let port = opts.ports[n % opts.ports.len()];
            let s = run
                .app
                .connect(SocketAddr::new(opts.ip, port), Proto::Tcp)?;
            if !opts.quiet {
                say(format_args!(
                    "SESSION {n} CONNECTED port={port} handle={:#x} ct_segment={:#x}",
                    s.handle(),
                    s.ct_segment()
                ));
            }
            let seed = opts.seed.wrapping_mul(1000).wrapping_add(n as u64);
            run.transfers.push(Transfer::client(
                n, s, opts.mode, opts.check, seed, opts.bytes,
            ));
        }
        if opts.wait_go {
            say(format_args!("CONNECTED-ALL sessions={}", opts.sessions));
            wait_line();
        }
        let now = Instant::now();
        for t in &mut run.transfers {
            t.started = now;
        }
    }
    run.pump()?;
    // From the first session's start: a server's wait for its first client does not count.
    let elapsed = run
        .finished
        .iter()
        .map(|t| t.started)
        .min()
        .map_or(Duration::ZERO, |t| t.elapsed());
    // The ct segments go once both sides of their pairs are cleaned up (DEL_SEGMENT, §9.6).
    let segments: Vec<u64> = run.finished.iter().map(|t| t.ct_segment).collect();
    let released = run
        .app
        .poll_until("DEL_SEGMENT for every ct segment used", opts.idle, |app| {
            segments.iter().all(|h| !app.is_mapped(*h))
        });
    if let Err(e) = released {
        let left: Vec<String> = segments
            .iter()
            .filter(|h| run.app.is_mapped(**h))
            .map(|h| format!("{h:#x}"))
            .collect();
        return Err(StreamError::Data(format!("{e}: still mapped {left:?}")));
    }
    let mut distinct = segments.clone();
    distinct.sort_unstable();
    distinct.dedup();
    say(format_args!("SEGMENTS-RELEASED ct={}", distinct.len()));
    let (sent, received) = run
        .finished
        .iter()
        .fold((0, 0), |(s, r), t| (s + t.tx.sent, r + t.rx.got));
    let st = run.app.stats();
    say(format_args!(
        "SUMMARY sessions={} sent={sent} received={received} seconds={:.3} gbit_s={:.2} rx_events={} tx_events={} tx_posted={} deq_ntf_posted={} disconnected={} reset={} add_segment={} del_segment={}",
        run.finished.len(),
        elapsed.as_secs_f64(),
        gbit(sent + received, elapsed),
        st.rx_events,
        st.tx_events,
        st.tx_posted,
        st.deq_ntf_posted,
        st.disconnected,
        st.reset,
        st.add_segment,
        st.del_segment,
    ));
    if opts.hold {
        say(format_args!("HOLDING"));
        wait_line();
    }
    if let Some(l) = run.listener.take() {
        l.close()?;
    }
    let failures = run.failures;
    run.app.detach()?;
    say(format_args!(
        "DETACHED seconds={:.3}",
        started.elapsed().as_secs_f64()
    ));
    Ok(if failures > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("sapi-stream: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sapi-stream: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_does_not_depend_on_how_the_stream_was_cut() {
        let mut all = vec![0u8; 1000];
        fill(7, 0, &mut all);
        let mut whole = Checksum::new();
        whole.update(&all);
        for cut in [1, 3, 8, 13, 999] {
            let mut pieces = Checksum::new();
            for c in all.chunks(cut) {
                pieces.update(c);
            }
            assert_eq!(pieces.finish(), whole.finish(), "cut {cut}");
        }
        // One byte changed, or one byte fewer, changes it.
        let mut other = all.clone();
        other[500] ^= 1;
        let mut changed = Checksum::new();
        changed.update(&other);
        assert_ne!(changed.finish(), whole.finish());
        let mut shorter = Checksum::new();
        shorter.update(&all[..999]);
        assert_ne!(shorter.finish(), whole.finish());
    }

    #[test]
    fn the_stream_is_the_same_from_any_offset() {
        let mut all = vec![0u8; 100];
        fill(42, 0, &mut all);
        for at in [0, 1, 7, 8, 9, 63] {
            let mut part = vec![0u8; 100 - at];
            fill(42, at as u64, &mut part);
            assert_eq!(part, all[at..], "offset {at}");
        }
        let mut receiver = Receiver::new(42, 100, true);
        assert!(receiver.take(&all[..37]).is_ok());
        let mut wrong = all[37..].to_vec();
        wrong[5] ^= 0x80;
        let err = receiver.take(&wrong).expect_err("a changed byte is caught");
        assert!(err.contains("byte 42 "), "{err}");
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
