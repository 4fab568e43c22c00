//! Load (`docs/vpp-26.10.md` §5): N apps (256 × `--scale`) connect, all send ATTACH, every reply is
//! collected with one `poll` loop; attach latency p50/p99 is reported as evidence (measured, never
//! asserted), distinct app indices are checked, then all close.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Check, Ctx, Scenario, ScenarioError};
use crate::client::{Conn, Recv, recvmsg_fds};
use crate::wire::{AttachReply, AttachRequest};

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario::new(
"load.attach_concurrent",
"protocol §1 (one request at a time per socket), §8.1",
"256 × scale apps attach concurrently: all succeed with distinct indices; p50/p99 reported",
attach_concurrent,
).exclusive()]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn attach_concurrent(ctx: &Ctx, c: &mut Check) -> Result<(), ScenarioError> {
    let n = ctx.scaled(256);
    let conns: Vec<Conn> = (0..n).map(|_| ctx.connect()).collect::<Result<_, _>>()?;
    let req = AttachRequest::probe(&ctx.app_name(), true).encode();
    let mut sent = Vec::with_capacity(n);
    for conn in &conns {
        sent.push(Instant::now());
        conn.send(&req)?;
    }
    let mut latency: Vec<Option<Duration>> = vec![None; n];
    let mut apps = HashSet::new();
    let mut failures = 0usize;
    let deadline = Instant::now() + ctx.timeout.max(Duration::from_secs(1)) * 2;
    while latency.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let pending: Vec<usize> = (0..n).filter(|i| latency[*i].is_none()).collect();
        let mut pfds: Vec<PollFd> = pending
            .iter()
            .map(|i| PollFd::new(conns[*i].as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(left.as_millis().min(10_000)).unwrap_or(10_000);
        match poll(&mut pfds, PollTimeout::from(ms)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(ScenarioError::Setup(format!("poll: {errno}"))),
        }
        let ready: Vec<usize> = pending
            .iter()
            .zip(&pfds)
            .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| *i)
            .collect();
        drop(pfds);
        for i in ready {
            let at = Instant::now();
            match recvmsg_fds(conns[i].as_fd(), crate::client::DEFAULT_MAX_FDS)? {
                Recv::Msg(m) => {
                    latency[i] = Some(at - sent[i]);
                    match AttachReply::parse(&m.bytes) {
                        Ok(r) if r.retval == 0 && m.fds.len() == 3 => {
                            if !apps.insert(r.app_index) {
                                c.fail(format!(
                                    "app_index {} handed to two concurrent apps",
                                    r.app_index
                                ));
                            }
                        }
                        Ok(r) => {
                            failures += 1;
                            if failures <= 3 {
                                c.fail(format!(
                                    "app #{i}: retval {}, {} fds",
                                    ctx.profile.retval_name(r.retval),
                                    m.fds.len()
                                ));
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if failures <= 3 {
                                c.fail(format!("app #{i}: {e}"));
                            }
                        }
                    }
                }
                Recv::Eof => {
                    latency[i] = Some(at - sent[i]);
                    failures += 1;
                    if failures <= 3 {
                        c.fail(format!("app #{i}: socket closed before the reply"));
                    }
                }
                Recv::Timeout => {}
            }
        }
    }
    let missing = latency.iter().filter(|l| l.is_none()).count();
    c.eq("apps without a reply", 0, missing);
    c.eq("failed attaches", 0, failures);
    let mut got: Vec<Duration> = latency.into_iter().flatten().collect();
    got.sort();
    c.note(format!(
        "{n} concurrent attaches: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&got, 0.50),
        percentile(&got, 0.99),
        got.last().copied().unwrap_or_default()
    ));
    drop(conns);
    Ok(())
}
