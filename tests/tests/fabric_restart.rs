//! End to end: bgpd killed with SIGKILL and started again while a container pings a container
//! on another host every 100 ms. Kernel routes stay (keep_routes_on_exit) and the peer keeps
//! the restarting host's routes (graceful restart), so no outage may exceed one second.

use std::thread::sleep;
use std::time::Duration;

use testkit::fabric::Fabric;
use testkit::fabric::ping::ContinuousPing;

const CONVERGE: Duration = Duration::from_secs(60);

#[test]
fn kill_and_restart_loses_no_second_of_pings() {
    let mut fabric = Fabric::new().expect("fabric");
    fabric
        .add_meshed_hosts_with_a_container(2, CONVERGE)
        .expect("two meshed hosts with a container each");
    fabric.wait_converged(0, false, CONVERGE).expect("routes");
    let target = fabric.containers[1].ipv4().expect("IPv4 address");
    let ping = ContinuousPing::start(&fabric.containers[0], target).expect("ping");
    sleep(Duration::from_secs(2));

    // The pinging container's host crashes and comes back, then the pinged one's.
    for victim in [0, 1] {
        let before = fabric.hosts[victim].pid();
        fabric.kill(victim);
        sleep(Duration::from_millis(500));
        fabric.start(victim).expect("restart");
        assert_ne!(before, fabric.hosts[victim].pid(), "a new bgpd process");
        for i in 0..2 {
            fabric
                .wait_established(i, 1, CONVERGE)
                .expect("session after restart");
        }
        fabric
            .wait_converged(0, false, CONVERGE)
            .expect("routes after restart");
        sleep(Duration::from_secs(3));
    }
    let report = ping.finish().expect("ping report");
    eprintln!("pings across two kill -9 restarts: {report:?}");
    assert!(report.received > 50, "too few replies: {report:?}");
    assert!(
        report.longest_gap <= Duration::from_secs(1),
        "pings lost for {:?} across the restarts: {report:?}\n{}",
        report.longest_gap,
        fabric.logs()
    );
}
