//! Route programming benchmark: our batched writes vs `ip -batch` with the same routes, and an
//! idle reconcile. Run as root inside a scratch network namespace: `bench/run.sh` makes one.
//!
//! `fib_bench [runs] [sizes...]`, e.g. `fib_bench 5 10000 100000`; prints a Markdown table.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bgpd_kernel::{Change, Fib, FibConfig, NextHop, NextHops, Prefix, Route, RouteSet};

const DEV: &str = "bench0";
const GATEWAY_V4: &str = "192.168.0.2";
const GATEWAY_V6: &str = "fd00:a::2";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().map_or(Ok(5), |a| a.parse()).context("runs")?;
    let sizes: Vec<usize> = match args.get(1..) {
        Some(rest) if !rest.is_empty() => {
            rest.iter().map(|a| a.parse()).collect::<Result<_, _>>()?
        }
        _ => vec![10_000, 100_000],
    };
    ensure!(runs > 0, "at least one run");
    setup()?;
    let config = FibConfig::default();
    let proto = config.protocol.to_string();
    let mut fib = Fib::open(config)?;

    println!(
        "| routes | family | bgpd-kernel | its CPU (user + sys) | `ip -batch` | its CPU (user + sys) \
         | speed-up (wall) | speed-up (CPU) |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (n, ipv6) in sizes.iter().flat_map(|&n| [(n, false), (n, true)]) {
        let (family, gateway) = if ipv6 {
            ("-6", GATEWAY_V6)
        } else {
            ("-4", GATEWAY_V4)
        };
        let routes = routes(n, ipv6)?;
        // Adds into an empty table, as `ip route add` does.
        let changes: Vec<Change> = routes.iter().cloned().map(Change::Create).collect();
        let batch = std::env::temp_dir().join(format!("fib-bench-{}.txt", std::process::id()));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&batch)?);
        for route in &routes {
            writeln!(
                file,
                "route add {} via {gateway} proto {proto}",
                route.prefix()
            )?;
        }
        file.into_inner()?.sync_all()?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Alternate who goes first, so neither always meets a warmer kernel.
            for turn in [run % 2, 1 - run % 2] {
                if turn == 0 {
                    let (start, cpu) = (Instant::now(), cpu_time(libc::RUSAGE_SELF));
                    let applied = fib.apply(&changes)?;
                    ours.push(start.elapsed());
                    ours_cpu.push(cpu_since(libc::RUSAGE_SELF, cpu));
                    ensure!(
                        applied.failures.is_empty(),
                        "{:?}",
                        applied.failures.first()
                    );
                } else {
                    let (start, cpu) = (Instant::now(), cpu_time(libc::RUSAGE_CHILDREN));
                    ip(&["-batch", batch.to_str().context("path")?])?;
                    theirs.push(start.elapsed());
                    theirs_cpu.push(cpu_since(libc::RUSAGE_CHILDREN, cpu));
                }
                ensure!(count(family, &proto)? == n, "not all {n} routes installed");
                ip(&[family, "route", "flush", "proto", &proto])?;
            }
        }
        let _ = std::fs::remove_file(&batch);
        let (ours, theirs) = (median(&mut ours), median(&mut theirs));
        let (ours_user, ours_sys) = medians(&mut ours_cpu);
        let (theirs_user, theirs_sys) = medians(&mut theirs_cpu);
        println!(
            "| {n} | {} | {} | {} + {} | {} | {} + {} | {:.1}x | {:.1}x |",
            if ipv6 { "IPv6" } else { "IPv4" },
            ms(ours),
            ms(ours_user),
            ms(ours_sys),
            ms(theirs),
            ms(theirs_user),
            ms(theirs_sys),
            theirs.as_secs_f64() / ours.as_secs_f64(),
            (theirs_user + theirs_sys).as_secs_f64() / (ours_user + ours_sys).as_secs_f64()
        );
    }

    println!();
    println!("| idle reconcile (all wanted routes in place) | time | netlink writes |");
    println!("| ---: | ---: | ---: |");
    for &n in &sizes {
        let wanted: RouteSet = routes(n, false)?.into_iter().collect();
        fib.reconcile(&wanted)?;
        let mut times = Vec::new();
        let before = fib.writes();
        for _ in 0..runs {
            let start = Instant::now();
            let done = fib.reconcile(&wanted)?;
            times.push(start.elapsed());
            ensure!(done.in_place == n, "only {} of {n} in place", done.in_place);
        }
        let writes = fib.writes() - before;
        println!("| {n} routes | {} | {writes} |", ms(median(&mut times)));
        ip(&["-4", "route", "flush", "proto", &proto])?;
    }
    Ok(())
}

/// An up link with 192.168.0.1/24 and fd00:a::1/64, so the gateways are on-link.
fn setup() -> Result<()> {
    if ip(&["link", "show", DEV]).is_ok() {
        return Ok(());
    }
    ip(&[
        "link", "add", DEV, "type", "veth", "peer", "name", "bench0p",
    ])?;
    ip(&["addr", "add", "192.168.0.1/24", "dev", DEV])?;
    ip(&["addr", "add", "fd00:a::1/64", "dev", DEV, "nodad"])?;
    ip(&["link", "set", "bench0p", "up"])?;
    ip(&["link", "set", DEV, "up"])?;
    Ok(())
}

/// `n` host routes (in 10.0.0.0/8 or fd00:100::/64) via the gateway, like learned container
/// routes.
fn routes(n: usize, ipv6: bool) -> Result<Vec<Route>> {
    ensure!(n < 1 << 24, "at most 2^24 routes");
    let gateway = if ipv6 { GATEWAY_V6 } else { GATEWAY_V4 };
    let hops = NextHops::new([NextHop::via(gateway.parse()?)])?;
    (0..n)
        .map(|i| {
            let host = i as u32 + 1;
            let addr = if ipv6 {
                IpAddr::V6(Ipv6Addr::from(0xfd00_0100_u128 << 96 | u128::from(host)))
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | host))
            };
            Ok(Route::via(Prefix::host(addr), hops.clone())?)
        })
        .collect()
}

fn count(family: &str, proto: &str) -> Result<usize> {
    Ok(ip(&[family, "route", "show", "proto", proto])?
        .lines()
        .count())
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        bail!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// User and system CPU time of `who` (this process, or its reaped children).
fn cpu_time(who: libc::c_int) -> (Duration, Duration) {
    // SAFETY: getrusage only writes the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

fn cpu_since(who: libc::c_int, (user, sys): (Duration, Duration)) -> (Duration, Duration) {
    let (user_now, sys_now) = cpu_time(who);
    (user_now.saturating_sub(user), sys_now.saturating_sub(sys))
}

/// The medians of user and of system time.
fn medians(times: &mut [(Duration, Duration)]) -> (Duration, Duration) {
    let mut user: Vec<Duration> = times.iter().map(|t| t.0).collect();
    let mut sys: Vec<Duration> = times.iter().map(|t| t.1).collect();
    (median(&mut user), median(&mut sys))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
