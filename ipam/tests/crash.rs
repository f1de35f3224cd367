//! A daemon killed (SIGKILL) in the middle of assigning: nothing half-written, nothing leaked
//! or given twice. The daemon is this test binary re-run as a child in "worker" mode.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use testkit::etcd::Etcd;
use testkit::process::ChildGuard;

const ENDPOINT_VAR: &str = "IPAM_CRASH_ENDPOINT";
const RUN_VAR: &str = "IPAM_CRASH_RUN";

/// The child: assigns and releases addresses as fast as it can until it is killed.
#[tokio::test]
#[ignore = "run by crash_mid_assignment as a child process"]
async fn worker() {
    let Ok(endpoint) = std::env::var(ENDPOINT_VAR) else {
        return;
    };
    let run = std::env::var(RUN_VAR).unwrap_or_default();
    let ipam = ipam::Ipam::connect(&[endpoint], opts()).await.unwrap();
    for c in 0.. {
        ipam.assign(&req(&format!("r{run}-c{c}"), "h1", 1, 1))
            .await
            .unwrap();
        if c % 3 == 0 {
            ipam.release(&handle(&format!("r{run}-c{}", c / 2)))
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_assignment() {
    let etcd = Etcd::single().unwrap();
    let ipam = client(&etcd, opts()).await;
    // Small blocks, so the worker also claims blocks (multi-key txns) while it is killed.
    pool(&ipam, "v4", "10.0.0.0/20", 28).await;
    pool(&ipam, "v6", "fd00::/112", 124).await;
    nodes(&ipam, &["h1"]).await;

    for (run, delay_ms) in [150, 400, 700].into_iter().enumerate() {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        cmd.args(["worker", "--exact", "--ignored", "--nocapture"])
            .env(ENDPOINT_VAR, etcd.endpoint())
            .env(RUN_VAR, run.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn(&mut cmd, "ipam worker").unwrap();
        // The kill lands `delay_ms` into the worker's stream of assignments, counted from its
        // first one: its start-up (exec, runtime, connect) takes as long as the machine's load
        // makes it.
        let this_run = format!("r{run}-");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                !child.has_exited(),
                "the worker stopped before it was killed"
            );
            let all = ipam.handles_of(&host("h1")).await.unwrap();
            if all.iter().any(|a| a.handle.as_str().starts_with(&this_run)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "worker {run} assigned nothing within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        assert!(
            !child.has_exited(),
            "the worker stopped before it was killed"
        );
        child.kill();

        let report = assert_clean(&ipam).await;
        // Every handle holds distinct addresses, and asking again gives the same ones.
        let all = ipam.handles_of(&host("h1")).await.unwrap();
        let mut seen = BTreeSet::new();
        for a in &all {
            for i in &a.ips {
                assert!(seen.insert(i.ip), "{} twice", i.ip);
            }
            let again = ipam
                .assign(&req(a.handle.as_str(), "h1", 1, 1))
                .await
                .unwrap();
            assert_eq!(&again, a);
        }
        assert_eq!(seen.len(), report.assigned);
    }
}
