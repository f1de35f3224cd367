//! Policy benchmark: time to apply 1k and 10k rules (ours vs the same rules as an
//! `iptables-restore` linear chain, nft and legacy backends), and iperf3 throughput between
//! two containers with 10k rules vs none. Run by `bench/run.sh`, as root; everything happens in
//! namespaces it creates. Prints a Markdown table.

#[path = "../tests/fabric/mod.rs"]
mod fabric;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bgpd_policy::{Inputs, Nft, PolicyFile, compile};
use fabric::{CA1, CB1, Fabric, pool, remote, workload};
use testkit::netns::Netns;
use testkit::process::ChildGuard;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// How the generated rules name their sources.
#[derive(Clone, Copy, PartialEq)]
enum Sources {
    /// One literal /24 per rule: runs of such rules become one verdict map.
    Literal,
    /// One label selector shared by all rules: each rule stays a plain rule.
    Selector,
}

/// `n` allow rules, each with one source and one destination port, as a policy for
/// role=bench; `tail` is appended (more rules after the generated ones).
fn policy(n: usize, sources: Sources, types: &str, dir: &str, tail: &str) -> String {
    let mut t = format!(
        "[[policy]]\nname = \"bench\"\nselector = 'role == \"bench\"'\ntypes = [\"{types}\"]\n"
    );
    for i in 0..n {
        let source = match sources {
            Sources::Literal => format!("nets = [\"{}\"]", net(i)),
            Sources::Selector => "selector = 'app == \"client\"'".to_string(),
        };
        t.push_str(&format!(
            "[[policy.{dir}]]\naction = \"allow\"\nprotocol = \"tcp\"\nsource = {{ {source} }}\ndestination = {{ ports = [{}] }}\n",
            port(i)
        ));
    }
    t.push_str(tail);
    t
}

fn net(i: usize) -> String {
    format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
}

fn port(i: usize) -> usize {
    1000 + i % 50_000
}

/// The same rules as one linear iptables chain, jumped to for the container's interface.
fn iptables(n: usize) -> String {
    let mut t = String::from("*filter\n:BENCH - [0:0]\n-A FORWARD -o cali-bench -j BENCH\n");
    for i in 0..n {
        t.push_str(&format!(
            "-A BENCH -s {} -p tcp -m tcp --dport {} -m comment --comment \"policy bench ingress rule {i}\" -j ACCEPT\n",
            net(i),
            port(i)
        ));
    }
    t.push_str("-A BENCH -j DROP\nCOMMIT\n");
    t
}

/// CPU time (user + system) used so far by this process and by its waited-for children.
fn cpu() -> Duration {
    let usage = |who| {
        // SAFETY: getrusage(2) fills the zeroed struct we own; no other memory is touched.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

/// Wall and CPU time of `f`.
fn measure<T>(f: impl FnOnce() -> Res<T>) -> Res<(T, f64, f64)> {
    let (wall, cpu0) = (Instant::now(), cpu());
    let out = f()?;
    Ok((out, ms(wall.elapsed()), ms(cpu() - cpu0)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `program` in `ns` with `input` on stdin, to completion.
fn restore(ns: &Netns, program: &str, input: &str) -> Res<()> {
    use std::io::Write;
    let mut child = ns
        .cmd(program)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("{program}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// Medians of wall and CPU milliseconds.
#[derive(Default)]
struct Times {
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

impl Times {
    fn push(&mut self, wall: f64, cpu: f64) {
        self.wall.push(wall);
        self.cpu.push(cpu);
    }
    fn cell(&self) -> String {
        format!(
            "{:.1} / {:.1}",
            median(self.wall.clone()),
            median(self.cpu.clone())
        )
    }
}

struct ApplyRow {
    rules: usize,
    sources: Sources,
    parse: Times,
    compile: Times,
    nft: Times,
    total: Times,
    /// Only for literal sources (selectors would need ipset).
    ipt_nft: Option<Times>,
    ipt_legacy: Option<Times>,
}

fn apply_times(n: usize, sources: Sources, runs: usize) -> Res<ApplyRow> {
    let ns = Netns::new("bench")?;
    let toml = policy(n, sources, "ingress", "ingress", "");
    let clients = [remote("10.244.7.7", &[("app", "client")])];
    let literal = sources == Sources::Literal;
    let workloads = [workload("cali-bench", "10.244.9.9", &[("role", "bench")])];
    let nft = Nft::in_netns(ns.name());
    let ipt = iptables(n);
    let mut row = ApplyRow {
        rules: n,
        sources,
        parse: Times::default(),
        compile: Times::default(),
        nft: Times::default(),
        total: Times::default(),
        ipt_nft: literal.then(Times::default),
        ipt_legacy: literal.then(Times::default),
    };
    for _ in 0..runs {
        let (file, pw, pc) = measure(|| Ok(PolicyFile::parse(&toml, "bench.toml")?))?;
        let (ruleset, cw, cc) = measure(|| {
            Ok(compile(&Inputs {
                file: &file,
                workloads: &workloads,
                remote: &clients,
                pools: &[pool(false)],
            })?)
        })?;
        let ((), nw, nc) = measure(|| Ok(nft.apply(&ruleset)?))?;
        row.parse.push(pw, pc);
        row.compile.push(cw, cc);
        row.nft.push(nw, nc);
        row.total.push(pw + cw + nw, pc + cc + nc);
        if let Some(t) = &mut row.ipt_nft {
            let ((), w, c) = measure(|| restore(&ns, "iptables-nft-restore", &ipt))?;
            t.push(w, c);
        }
        if let Some(t) = &mut row.ipt_legacy {
            let ((), w, c) = measure(|| restore(&ns, "iptables-legacy-restore", &ipt))?;
            t.push(w, c);
        }
    }
    Ok(row)
}

/// Receiver throughput of one iperf3 run from ca1 to cb1, in Gbit/s.
fn iperf(f: &Fabric, secs: u32) -> Res<f64> {
    let out = f
        .ca1
        .cmd("iperf3")
        .args(["-c", CB1, "-t", &secs.to_string(), "-J"])
        .output()?;
    if !out.status.success() {
        return Err(format!("iperf3: {}", String::from_utf8_lossy(&out.stdout)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or("iperf3 JSON without end.sum_received")?;
    Ok(bps / 1e9)
}

fn throughput(n: usize, runs: usize, secs: u32) -> Res<(f64, f64)> {
    let f = Fabric::new();
    let _server = ChildGuard::spawn(
        f.cb1
            .cmd("iperf3")
            .arg("-s")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "iperf3 -s",
    )?;
    std::thread::sleep(Duration::from_millis(300));
    // 10k rules on each side: ca1's egress on host a, cb1's ingress on host b; the rule that
    // lets iperf3 through comes after all of them.
    let egress = policy(
        n,
        Sources::Literal,
        "egress",
        "egress",
        "[[policy.egress]]\naction = \"allow\"\n",
    );
    let ingress = policy(
        n,
        Sources::Literal,
        "ingress",
        "ingress",
        "[[policy.ingress]]\naction = \"allow\"\nprotocol = \"tcp\"\ndestination = { ports = [5201] }\n",
    );
    let a_eps = [workload("cali-a1", CA1, &[("role", "bench")])];
    let b_eps = [workload("cali-b1", CB1, &[("role", "bench")])];
    let peers = [remote(CA1, &[("role", "bench")])];
    let (mut none, mut with) = (vec![], vec![]);
    for _ in 0..runs {
        for h in [&f.a, &f.b] {
            Nft::in_netns(h.name()).remove(&"bgpd".try_into()?)?;
        }
        none.push(iperf(&f, secs)?);
        fabric::apply(&f.a, &egress, &a_eps, &[], &[pool(false)]);
        fabric::apply(&f.b, &ingress, &b_eps, &peers, &[pool(false)]);
        with.push(iperf(&f, secs)?);
    }
    Ok((median(none), median(with)))
}

fn main() -> Res<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let secs: u32 = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let version = |p: &str| -> String {
        Command::new(p)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    println!(
        "{} · {} · kernel {} · load average at start {} · {runs} runs, medians · cells: wall ms / CPU ms (user+sys, children included)",
        version("nft"),
        version("iptables-legacy-restore"),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim(),
        std::fs::read_to_string("/proc/loadavg")?
            .split(' ')
            .next()
            .unwrap_or("?"),
    );
    println!();
    println!(
        "| rules | ours: parse TOML | ours: compile | ours: `nft -f` | **ours: total** | iptables-nft-restore | iptables-legacy-restore |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (n, sources) in [
        (1_000, Sources::Literal),
        (10_000, Sources::Literal),
        (10_000, Sources::Selector),
    ] {
        let r = apply_times(n, sources, runs)?;
        let cell = |t: &Option<Times>| t.as_ref().map_or("n/a (ipset)".to_string(), Times::cell);
        println!(
            "| {} {} | {} | {} | {} | **{}** | {} | {} |",
            r.rules,
            match r.sources {
                Sources::Literal => "literal /24 + port",
                Sources::Selector => "selector + port",
            },
            r.parse.cell(),
            r.compile.cell(),
            r.nft.cell(),
            r.total.cell(),
            cell(&r.ipt_nft),
            cell(&r.ipt_legacy)
        );
    }
    let (none, with) = throughput(10_000, runs, secs)?;
    println!();
    println!("| iperf3 ca1 → cb1 (two hosts) | no policy | 10k rules each side | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| TCP, {secs} s runs | {none:.2} Gbit/s | {with:.2} Gbit/s | **{:.3}x** |",
        with / none
    );
    Ok(())
}
