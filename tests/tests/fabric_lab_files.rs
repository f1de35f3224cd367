//! The containerlab topologies in `labs/` describe the same fabric as the namespace runner:
//! their bgpd configs are what `testkit::fabric` renders, at the addresses the runner uses.

use std::path::PathBuf;

use testkit::fabric::lab_configs;

fn labs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../labs")
}

#[test]
fn lab_configs_are_the_runners() {
    for config in lab_configs() {
        let path = labs().join("configs").join(format!("{}.toml", config.name));
        let on_disk =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            on_disk,
            config.render(),
            "{} is stale: regenerate with `bash labs/run.sh configs`",
            path.display()
        );
        // And bgpd accepts it.
        bgpd_config_parses(&path);
    }
}

fn bgpd_config_parses(path: &std::path::Path) {
    let bins = testkit::fabric::Binaries::locate().expect("binaries");
    let out = std::process::Command::new(&bins.bgpd)
        .arg("--check")
        .arg("--config")
        .arg(path)
        .output()
        .expect("run bgpd --check");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn clab_topologies_mount_the_configs_at_their_addresses() {
    for (file, nodes) in [
        ("mesh3.clab.yml", &["host-1", "host-2", "host-3"][..]),
        ("rr.clab.yml", &["rr-1", "host-1", "host-2", "host-3"]),
    ] {
        let text = std::fs::read_to_string(labs().join(file)).expect("clab file");
        for config in lab_configs()
            .iter()
            .filter(|c| nodes.contains(&c.name.as_str()))
        {
            let node = format!(
                "    {}:\n      cmd: fabric-node bgpd {}/24",
                config.name, config.address
            );
            assert!(text.contains(&node), "{file}: no `{node}`");
            let bind = format!("- configs/{}.toml:/etc/bgpd/bgpd.toml:ro", config.name);
            assert!(text.contains(&bind), "{file}: no `{bind}`");
            let link = format!("\"{}:eth1\"]", config.name);
            assert!(
                text.contains(&link),
                "{file}: {} is not on the switch",
                config.name
            );
        }
        assert!(
            text.contains("cmd: fabric-node etcd 10.99.0.2/24"),
            "{file}: etcd"
        );
        let ports = text.matches("\"sw:eth").count();
        assert!(
            text.contains(&format!("cmd: fabric-node switch {ports}")),
            "{file}: the switch bridges {ports} links"
        );
    }
}
