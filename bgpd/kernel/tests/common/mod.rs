//! Helpers for the kernel tests: run code inside a namespace, watch `ip monitor`, read
//! `ip -j route`.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::netns::Netns;
use testkit::process::{ChildGuard, wait_until};

/// Runs `body` on a fresh thread that has entered `ns`: netlink sockets it opens (and children
/// it forks) live in the namespace. The thread ends with `body`, so no other thread ever
/// changes namespace.
pub fn in_netns<T: Send>(ns: &Netns, body: impl FnOnce() -> T + Send) -> T {
    testkit::traffic::in_ns(ns, body).expect("setns into the test namespace")
}

/// Runs the async `body` on a current-thread tokio runtime inside `ns` (see [`in_netns`]).
pub fn block_on_in_netns<F: Future>(ns: &Netns, body: impl FnOnce() -> F + Send) -> F::Output
where
    F::Output: Send,
{
    in_netns(ns, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(body())
    })
}

/// `ip -j [-6] route show <args>` in `ns`, parsed.
pub fn ip_routes(ns: &Netns, ipv6: bool, args: &[&str]) -> Vec<Value> {
    let family = if ipv6 { "-6" } else { "-4" };
    let mut all = vec!["-j", family, "route", "show"];
    all.extend_from_slice(args);
    let out = ns.ip(&all).expect("ip -j route show");
    match serde_json::from_str(&out).expect("ip -j prints JSON") {
        Value::Array(routes) => routes,
        other => panic!("ip -j route show printed {other}"),
    }
}

/// The route to exactly `prefix` in `ns`'s main table as `ip -j` shows it, if there is one.
pub fn ip_route(ns: &Netns, prefix: &str) -> Option<Value> {
    let ipv6 = prefix.contains(':');
    ip_routes(ns, ipv6, &["exact", prefix]).into_iter().next()
}

/// A documentation-range route (TEST-NET-2) in a table of its own, used to mark points in the
/// `ip monitor` stream; it carries no traffic.
const MARK_TABLE: &str = "77";

/// `ip monitor route` running in a namespace, its output in a file.
pub struct IpMonitor<'a> {
    ns: &'a Netns,
    _child: ChildGuard,
    out: PathBuf,
    _dir: tempfile::TempDir,
    marks: u32,
}

impl<'a> IpMonitor<'a> {
    /// Starts the monitor and waits until it sees events.
    pub fn start(ns: &'a Netns) -> IpMonitor<'a> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("monitor.txt");
        let file = File::create(&out).expect("monitor file");
        let child = ChildGuard::spawn(
            Command::new("ip")
                .args(["-n", ns.name(), "monitor", "route"])
                .stdout(Stdio::from(file))
                .stderr(Stdio::null()),
            "ip monitor",
        )
        .expect("spawn ip monitor");
        let mut monitor = IpMonitor {
            ns,
            _child: child,
            out,
            _dir: dir,
            marks: 0,
        };
        monitor.mark();
        monitor
    }

    /// Adds a marker route and waits until the monitor printed it: everything before it has
    /// been printed too. Returns the marker's text.
    pub fn mark(&mut self) -> String {
        self.marks += 1;
        let marker = format!("198.51.100.{}", self.marks);
        // The monitor may not be listening yet: repeat the marker until it shows up.
        let seen = wait_until(Duration::from_secs(20), || {
            let _ = self.ns.ip(&["route", "del", &marker, "table", MARK_TABLE]);
            let _ = self
                .ns
                .ip(&["route", "add", "blackhole", &marker, "table", MARK_TABLE]);
            std::thread::sleep(Duration::from_millis(20));
            self.text().contains(&format!("{marker} "))
        });
        assert!(seen, "ip monitor did not print the marker");
        marker
    }

    /// Lines printed between the last two calls of [`IpMonitor::mark`] made around the caller's
    /// action: call `mark()` before the action, then `since(marker)` after it.
    pub fn since(&mut self, marker: &str) -> Vec<String> {
        let end = self.mark();
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        // A trailing space keeps 198.51.100.1 from matching 198.51.100.12.
        let (start, end) = (format!("{marker} "), format!("{end} "));
        let first = lines
            .iter()
            .rposition(|l| l.contains(&start))
            .map_or(0, |i| i + 1);
        lines[first..]
            .iter()
            .take_while(|l| !l.contains(&end))
            .filter(|l| !l.contains("198.51.100.") && !l.trim().is_empty())
            .map(|l| l.to_string())
            .collect()
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

/// Runs `ip <words of cmd>` in `ns`; panics with ip's error if it fails.
pub fn ip_run(ns: &Netns, cmd: &str) -> String {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    ns.ip(&args).unwrap_or_else(|e| panic!("ip {cmd}: {e}"))
}
