//! Reachability between containers, proven with real ICMP echoes.

use std::io;
use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::process::ChildGuard;

use super::{Container, Fabric};

/// One cell of the ping matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The pinging container's id.
    pub from: String,
    /// The pinged container's id.
    pub to: String,
    /// The address pinged.
    pub address: IpAddr,
    /// Whether an echo came back (up to three tries, a second each).
    pub ok: bool,
}

/// Pings from `from`'s namespace to `to`: three tries, one second each.
fn reaches(from: &Container, to: IpAddr) -> bool {
    (0..3).any(|_| from.ns.ping(&to.to_string()))
}

impl Fabric {
    /// Every container pings every other container, on each address family `family` picks
    /// (`Container::ipv4` or `Container::ipv6`).
    pub fn ping_matrix(&self, family: fn(&Container) -> Option<IpAddr>) -> Vec<Reach> {
        let mut cells = Vec::new();
        for from in &self.containers {
            for to in &self.containers {
                if from.id == to.id {
                    continue;
                }
                if let Some(address) = family(to) {
                    cells.push(Reach {
                        from: from.id.clone(),
                        to: to.id.clone(),
                        address,
                        ok: reaches(from, address),
                    });
                }
            }
        }
        cells
    }

    /// A table of the matrix for people: rows ping, columns are pinged.
    pub fn matrix_table(&self, cells: &[Reach]) -> String {
        let ids: Vec<&str> = self.containers.iter().map(|c| c.id.as_str()).collect();
        let width = ids.iter().map(|i| i.len()).max().unwrap_or(4) + 2;
        let mut out = format!("{:width$}", "from \\ to");
        for id in &ids {
            out.push_str(&format!("{id:>width$}"));
        }
        out.push('\n');
        for from in &ids {
            out.push_str(&format!("{from:width$}"));
            for to in &ids {
                let mark = if from == to {
                    "-"
                } else {
                    match cells.iter().find(|c| c.from == *from && c.to == *to) {
                        Some(c) if c.ok => "ok",
                        Some(_) => "FAIL",
                        None => "n/a",
                    }
                };
                out.push_str(&format!("{mark:>width$}"));
            }
            out.push('\n');
        }
        out
    }
}

/// A `ping -i 0.1` running in a container's namespace, for measuring outages.
#[derive(Debug)]
pub struct ContinuousPing {
    child: ChildGuard,
    out: tempfile::NamedTempFile,
    interval: Duration,
}

/// Echo requests every 100 ms.
const INTERVAL: Duration = Duration::from_millis(100);

impl ContinuousPing {
    /// Starts pinging `to` from `from` every 100 ms, each echo waited for up to 1 s.
    pub fn start(from: &Container, to: IpAddr) -> io::Result<ContinuousPing> {
        let out = tempfile::NamedTempFile::new()?;
        let mut cmd = from.ns.cmd("ping");
        cmd.args(["-n", "-i", "0.1", "-W", "1", &to.to_string()])
            .stdout(out.reopen()?)
            .stderr(Stdio::null());
        Ok(ContinuousPing {
            child: ChildGuard::spawn(&mut cmd, "ping")?,
            out,
            interval: INTERVAL,
        })
    }

    /// Stops pinging (SIGINT, so ping prints everything) and reports.
    pub fn finish(mut self) -> io::Result<PingReport> {
        let _ = self.child.signal(libc::SIGINT);
        crate::process::wait_until(Duration::from_secs(3), || self.child.has_exited());
        let text = std::fs::read_to_string(self.out.path())?;
        Ok(PingReport::parse(&text, self.interval))
    }
}

/// What a continuous ping saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingReport {
    /// Echo replies received.
    pub received: usize,
    /// The highest sequence number answered.
    pub last_seq: u64,
    /// Echo requests sent (ping's summary line; 0 if it printed none).
    pub transmitted: u64,
    /// The longest run of unanswered sequence numbers — before the first reply, between
    /// replies, or after the last (less the one request that may still be in flight when
    /// ping stops) — times the interval.
    pub longest_gap: Duration,
}

impl PingReport {
    /// Reads `icmp_seq=N` of every reply line and the `N packets transmitted` summary.
    pub fn parse(text: &str, interval: Duration) -> PingReport {
        let transmitted = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0u64);
        let mut seqs: Vec<u64> = text
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.split("icmp_seq=").nth(1))
            .filter_map(|s| s.split_whitespace().next()?.parse().ok())
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut longest = 0u64;
        let mut previous = 0u64; // sequence numbers start at 1
        for &s in &seqs {
            longest = longest.max(s.saturating_sub(previous + 1));
            previous = s;
        }
        longest = longest.max(transmitted.saturating_sub(previous + 1));
        let gap = u32::try_from(longest).unwrap_or(u32::MAX);
        PingReport {
            received: seqs.len(),
            last_seq: previous,
            transmitted,
            longest_gap: interval * gap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_counts_missing_sequence_numbers() {
        let text = "PING 10.244.0.1 (10.244.0.1) 56(84) bytes of data.\n\
            64 bytes from 10.244.0.1: icmp_seq=1 ttl=62 time=0.1 ms\n\
            64 bytes from 10.244.0.1: icmp_seq=2 ttl=62 time=0.1 ms\n\
            64 bytes from 10.244.0.1: icmp_seq=7 ttl=62 time=0.1 ms\n\
            64 bytes from 10.244.0.1: icmp_seq=8 ttl=62 time=0.1 ms\n\
            \n--- 10.244.0.1 ping statistics ---\n\
            9 packets transmitted, 4 received, 55.5556% packet loss, time 800ms\n";
        let r = PingReport::parse(text, INTERVAL);
        assert_eq!(r.received, 4);
        assert_eq!(r.last_seq, 8);
        assert_eq!(r.transmitted, 9);
        assert_eq!(r.longest_gap, Duration::from_millis(400));
    }

    #[test]
    fn replies_that_stop_count_as_a_gap_at_the_end() {
        let text = "64 bytes from 10.244.0.1: icmp_seq=1 ttl=62 time=0.1 ms\n\
            64 bytes from 10.244.0.1: icmp_seq=2 ttl=62 time=0.1 ms\n\
            30 packets transmitted, 2 received, 93.3333% packet loss, time 2900ms\n";
        let r = PingReport::parse(text, INTERVAL);
        assert_eq!(r.longest_gap, Duration::from_millis(2700));
    }
}
