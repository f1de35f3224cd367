//! End to end: bgpd restarted while etcd is down resumes BGP and the kernel from its state
//! file (graceful restart: the peer gets our routes back before its restart timer ends), serves
//! no endpoint changes until etcd answers, then registers, confirms its blocks and leaves
//! degraded mode. Without a usable state file it waits for etcd, saying why.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use testkit::fabric::ping::ContinuousPing;
use testkit::fabric::{Binaries, Fabric, Role, api};
use testkit::process::{ChildGuard, wait_until};

const CONVERGE: Duration = Duration::from_secs(60);
/// Graceful restart's restart time in these fabrics: short, so a BGP that did not come back
/// shows as lost pings within the test.
const RESTART_TIME: u16 = 20;
/// A block no host holds in IPAM, put into host-1's state file as if IPAM had taken it away
/// while host-1 was down.
const STALE_BLOCK: &str = "10.244.250.0/26";

/// Host `i`'s state file.
fn state_file(fabric: &Fabric, i: usize) -> PathBuf {
    fabric.hosts[i]
        .config
        .state_dir
        .clone()
        .expect("fabric hosts have a state dir")
        .join("state.json")
}

/// Waits until host `i`'s state file holds its block and `peer`'s node record.
fn wait_state_file(fabric: &Fabric, i: usize, peer: &str) {
    let path = state_file(fabric, i);
    let block = fabric.blocks(i).expect("blocks")[0].clone();
    let written = wait_until(CONVERGE, || {
        std::fs::read_to_string(&path)
            .is_ok_and(|t| t.contains(&block) && t.contains(&format!("\"{peer}\"")))
    });
    assert!(written, "{} never held {block} and {peer}", path.display());
}

/// Host `i`'s `status.etcd.degraded` (None when not degraded or not answering).
fn degraded(fabric: &Fabric, i: usize) -> Option<String> {
    let status = fabric.routectl_json(i, &["status"]).ok()?;
    status["etcd"]["degraded"].as_str().map(str::to_string)
}

fn two_hosts_with_a_container(fabric: &mut Fabric) {
    for _ in 0..2 {
        let mut config = fabric.next_host_config(Role::Host);
        config.graceful_restart = Some(RESTART_TIME);
        fabric.add_host_with(config).expect("host");
    }
    for i in 0..2 {
        fabric.wait_established(i, 1, CONVERGE).expect("mesh");
        fabric.add_container(i).expect("container");
    }
    fabric.wait_converged(0, false, CONVERGE).expect("routes");
}

#[test]
fn a_restart_during_an_etcd_outage_resumes_bgp_from_the_state_file() {
    let mut fabric = Fabric::new().expect("fabric");
    two_hosts_with_a_container(&mut fabric);
    wait_state_file(&fabric, 0, "host-2");
    let target = fabric.containers[0].ipv4().expect("IPv4 address");
    let ping = ContinuousPing::start(&fabric.containers[1], target).expect("ping");
    assert!(
        wait_until(CONVERGE, || fabric.containers[1]
            .ns
            .ping(&target.to_string())),
        "no ping before the outage"
    );

    // etcd down for everyone; host-1's bgpd crashes and starts again meanwhile, from a state
    // file that also holds a block IPAM no longer gives it.
    fabric.stop_etcd();
    fabric.kill(0);
    let killed = Instant::now();
    let path = state_file(&fabric, 0);
    let mut cached: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("state file")).expect("JSON");
    cached["blocks"]
        .as_array_mut()
        .expect("blocks")
        .push(STALE_BLOCK.into());
    std::fs::write(&path, cached.to_string()).expect("write the state file");
    fabric
        .start(0)
        .expect("bgpd answers on its control socket while etcd is down");
    let why = degraded(&fabric, 0).expect("status says degraded");
    assert!(why.contains("state.json"), "{why}");
    let text = fabric.routectl(0, &["status"]).expect("routectl status");
    assert!(text.contains("DEGRADED"), "{text}");
    fabric
        .wait_established(1, 1, CONVERGE)
        .expect("host-2 peers with host-1 again: peers from the state file");
    assert!(
        wait_until(CONVERGE, || fabric.routes_via(1, STALE_BLOCK, 0)),
        "host-1 does not originate its cached blocks\n{}",
        fabric.logs()
    );
    // Attaching needs IPAM: refused as unavailable, nothing assigned from the cache.
    let refused = fabric.add_container(0).expect_err("attach while degraded");
    assert!(
        refused.to_string().contains("etcd unreachable"),
        "{refused}"
    );

    // Past host-2's restart timer: it would have flushed host-1's routes had BGP not come back.
    let past_restart_time = Duration::from_secs(u64::from(RESTART_TIME) + 5);
    let held = wait_until(past_restart_time + CONVERGE, || {
        killed.elapsed() > past_restart_time
    });
    assert!(held);
    let report = ping.finish().expect("ping report");
    eprintln!("pings host-2 -> host-1's container across the restart without etcd: {report:?}");
    assert!(report.received > 100, "too few replies: {report:?}");
    assert!(
        report.longest_gap <= Duration::from_secs(1),
        "pings lost for {:?}: {report:?}\n{}",
        report.longest_gap,
        fabric.logs()
    );
    assert!(
        !fabric.log(1).contains("flushing stale routes"),
        "host-2 flushed host-1's routes\n{}",
        fabric.logs()
    );
    assert!(
        degraded(&fabric, 0).is_some(),
        "still degraded without etcd"
    );

    // etcd back: host-1 registers, confirms its blocks, leaves degraded mode, attaches again.
    fabric.start_etcd().expect("etcd starts again");
    let left = wait_until(Duration::from_secs(180), || {
        degraded(&fabric, 0).is_none() && fabric.log(0).contains("left degraded mode")
    });
    assert!(left, "host-1 stayed degraded\n{}", fabric.logs());
    // IPAM says the stale block is not host-1's: withdrawn, host-2 drops it.
    let withdrawn = wait_until(CONVERGE, || fabric.kernel_route(1, STALE_BLOCK).is_empty());
    assert!(
        withdrawn,
        "host-2 still routes {STALE_BLOCK}\n{}",
        fabric.logs()
    );
    assert!(
        fabric
            .log(0)
            .contains("is no longer ours in IPAM: withdrawing it"),
        "{}",
        fabric.log_tail(0)
    );
    // Registered once at the first start and once more now (the log spans both processes).
    let registrations = fabric.log(0).matches("node registered").count();
    assert_eq!(registrations, 2, "{}", fabric.log_tail(0));
    let c = fabric.add_container(0).expect("attach once etcd answers");
    let new = fabric.containers[c]
        .ipv4()
        .expect("IPv4 address")
        .to_string();
    let reached = wait_until(CONVERGE, || fabric.containers[1].ns.ping(&new));
    assert!(
        reached,
        "host-2's container cannot reach {new}\n{}",
        fabric.logs()
    );
}

/// Starts host `i`'s bgpd outside the fabric's bookkeeping (its start waits for the control
/// socket, which a bgpd waiting for etcd does not open), logging to `log`.
fn spawn_bgpd(fabric: &Fabric, i: usize, log: &std::path::Path) -> ChildGuard {
    let bins = Binaries::locate().expect("binaries");
    let out = std::fs::File::create(log).expect("log file");
    let mut cmd = fabric.hosts[i].ns.cmd(&bins.bgpd.to_string_lossy());
    cmd.arg("--config")
        .arg(&fabric.hosts[i].config_path)
        .stdout(out.try_clone().expect("log file"))
        .stderr(out);
    ChildGuard::spawn(&mut cmd, "bgpd").expect("bgpd")
}

/// With a state file that is garbage, then with none: bgpd says why, waits for etcd (no
/// control socket, no panic), and starts normally once etcd answers, writing a good file.
#[test]
fn without_a_usable_state_file_bgpd_waits_for_etcd() {
    let mut fabric = Fabric::new().expect("fabric");
    let h = fabric.add_host(Role::Host).expect("host");
    let path = state_file(&fabric, h);
    assert!(
        wait_until(CONVERGE, || std::fs::read_to_string(&path)
            .is_ok_and(|t| t.contains("\"host-1\""))),
        "no state file at {}",
        path.display()
    );
    let socket = fabric.hosts[h].config.control_socket();
    let cases: [(&str, Option<&[u8]>, &str); 2] = [
        (
            "corrupt",
            Some(b"{\"version\":1,\"host\":"),
            "not a bgpd state file",
        ),
        ("missing", None, "no state file (first start)"),
    ];
    for (case, content, says) in cases {
        fabric.kill(h);
        match content {
            Some(bytes) => std::fs::write(&path, bytes).expect("corrupt the state file"),
            None => std::fs::remove_file(&path).expect("remove the state file"),
        }
        fabric.stop_etcd();
        let log = fabric.dir().join(format!("bgpd-{case}.log"));
        let mut bgpd = spawn_bgpd(&fabric, h, &log);
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let waiting = wait_until(CONVERGE, || {
            let text = read(&log);
            text.contains(says) && text.contains("BGP starts once etcd answers")
        });
        assert!(waiting, "{case}: no clear log line:\n{}", read(&log));
        assert!(!bgpd.has_exited(), "{case}: bgpd exited:\n{}", read(&log));
        assert!(
            api::get(&socket, "/v1/status").is_none(),
            "{case}: bgpd started without etcd and without a state file"
        );

        fabric.start_etcd().expect("etcd starts again");
        let up = wait_until(Duration::from_secs(120), || {
            api::get(&socket, "/v1/status").is_some()
        });
        assert!(
            up,
            "{case}: bgpd did not start once etcd answered:\n{}",
            read(&log)
        );
        let text = read(&log);
        assert!(!text.contains("panicked"), "{case}:\n{text}");
        assert!(
            !text.contains("degraded"),
            "{case}: no degraded start without a file"
        );
        let rewritten = wait_until(CONVERGE, || {
            read(&path).starts_with('{') && read(&path).contains("\"host-1\"")
        });
        assert!(rewritten, "{case}: the state file was not written again");
        bgpd.kill();
    }
}
