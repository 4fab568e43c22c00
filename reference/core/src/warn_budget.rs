//! How many log lines one peer may cause.
//!
//! A hostile client can send hundreds of thousands of bad datagrams a minute (850,000 in 45 s
//! were measured), and a hostile app can post an io event over a corrupt fifo header as often;
//! one warning line each made the server write 199 MB of log. A [`WarnBudget`] belongs to one
//! peer (a socket, a worker): its first [`WarnBudget::FREE`] warnings are logged, then only the
//! ones whose number is a power of two, each saying how many were left out since the last
//! line, so a million warnings cost about 30 lines. The owner logs [`WarnBudget::suppressed`]
//! once more when the peer goes.
//!
//! Counting, not timing: the core reads no clock, and a count is deterministic in the
//! simulation. It must never decide anything but whether a line is written.

/// The warnings of one peer: how many there were and how many were written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WarnBudget {
    seen: u64,
    /// The number of the last warning written.
    last_written: u64,
}

impl WarnBudget {
    /// Warnings always written before thinning starts.
    pub const FREE: u64 = 10;

    /// Counts one warning. `Some(n)` when it is to be written, `n` being how many were left
    /// out since the previous written one.
    pub fn admit(&mut self) -> Option<u64> {
        self.seen = self.seen.saturating_add(1);
        if self.seen > Self::FREE && !self.seen.is_power_of_two() {
            return None;
        }
        // Those counted since the last written line, not this one.
        let left_out = self.seen - 1 - self.last_written;
        self.last_written = self.seen;
        Some(left_out)
    }

    /// Warnings counted but not written since the last written one.
    pub fn suppressed(&self) -> u64 {
        self.seen - self.last_written
    }

    /// Warnings counted in all.
    pub fn seen(&self) -> u64 {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::WarnBudget;

    #[test]
    fn the_first_ten_then_powers_of_two() {
        let mut b = WarnBudget::default();
        let written: Vec<(u64, u64)> = (1..=100_000u64)
            .filter_map(|n| b.admit().map(|left_out| (n, left_out)))
            .collect();
        let numbers: Vec<u64> = written.iter().map(|(n, _)| *n).collect();
        let mut expected: Vec<u64> = (1..=10).collect();
        expected.extend((4..=16).map(|k| 1u64 << k));
        assert_eq!(numbers, expected);
        // Each written line accounts for those left out since the previous one.
        assert_eq!(written[10], (16, 5));
        assert_eq!(written[11], (32, 15));
        let accounted: u64 = written.iter().map(|(_, l)| l + 1).sum::<u64>() + b.suppressed();
        assert_eq!(accounted, 100_000);
        assert_eq!(b.suppressed(), 100_000 - 65_536);
        assert_eq!(b.seen(), 100_000);
    }
}
