//! Resource use of a process from /proc: peak resident set size and CPU time, for the reflector
//! under test (by pid) and for the tester itself (to show it is not the bottleneck).

use std::fs;
use std::io;

/// A process's CPU time and peak memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User plus system CPU seconds since the process started (all threads).
    pub cpu_seconds: f64,
    /// Peak resident set size (VmHWM) in KiB.
    pub peak_rss_kib: u64,
}

impl Usage {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn of(pid: u32) -> io::Result<Usage> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        parse(&stat, &status).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot parse /proc/{pid}/stat or status"),
            )
        })
    }

    /// The calling process.
    pub fn own() -> io::Result<Usage> {
        Usage::of(std::process::id())
    }
}

fn parse(stat: &str, status: &str) -> Option<Usage> {
    // The command name (field 2) may hold spaces and parentheses: fields restart after the
    // last ')'; utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Usage {
        cpu_seconds: (utime + stime) as f64 / clock_ticks(),
        peak_rss_kib,
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects; a failure (-1) falls back to the usual 100.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parentheses_in_the_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 77 0 0";
        let status = "Name:\tbird\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        let u = parse(stat, status).expect("parses");
        assert_eq!(u.peak_rss_kib, 1234);
        assert!((u.cpu_seconds - 300.0 / clock_ticks()).abs() < 1e-9);
    }

    #[test]
    fn reads_its_own_process() {
        let u = Usage::own().expect("own /proc entry");
        assert!(u.peak_rss_kib > 0);
    }

    #[test]
    fn rejects_truncated_input() {
        assert_eq!(parse("1 (x) S 1", "VmHWM: 1 kB"), None);
        assert_eq!(
            parse("42 (x) S 1 42 42 0 -1 0 0 0 0 0 1 2 0", "VmRSS: 1 kB"),
            None
        );
    }
}
