//! Every kind of mistake is reported at its file, line, column and key, saying what is expected.

use std::path::Path;

use bgpd_config::{Config, ConfigError};

/// Checks each (file, line, column, key, a phrase the message must contain); lists every miss.
fn assert_cases(cases: &[(&str, usize, usize, &str, &str)]) {
    let mut wrong = Vec::new();
    for &(text, line, column, key, phrase) in cases {
        let got = match Config::parse(text, Path::new("/etc/bgpd/bgpd.toml")) {
            Err(ConfigError::Invalid {
                line,
                column,
                key,
                message,
                ..
            }) => (line, column, key, message),
            other => {
                wrong.push(format!(
                    "{text:?}\n  want {line}:{column} {key} ~{phrase:?}\n  got  {other:?}"
                ));
                continue;
            }
        };
        if (got.0, got.1, got.2.as_str()) != (line, column, key) || !got.3.contains(phrase) {
            wrong.push(format!(
                "{text:?}\n  want {line}:{column} {key} ~{phrase:?}\n  got  {}:{} {} {:?}",
                got.0, got.1, got.2, got.3
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn errors_point_at_the_line_and_key() {
    // (the file, line, column, key, a phrase the message must contain)
    let cases: &[(&str, usize, usize, &str, &str)] = &[
        // syntax
        (
            "[node]\nasn = 64512\nname = \"a\n",
            3,
            10,
            "node.name",
            "string",
        ),
        ("[node\n", 1, 6, "node", "unclosed table"),
        // unknown keys, at every depth
        (
            "[node]\nasn = 64512\ncolour = \"red\"\n",
            3,
            1,
            "node.colour",
            "unknown field",
        ),
        (
            "[node]\nasn = 1\n[frobnicate]\nx = 1\n",
            3,
            2,
            "frobnicate",
            "unknown field",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nmultihoop = 2\n",
            6,
            1,
            "bgp.peers[0].multihoop",
            "unknown field",
        ),
        // values of the wrong type or range
        (
            "[node]\nasn = 0\n",
            2,
            7,
            "node.asn",
            "expected an AS number",
        ),
        ("[node]\nasn = 23456\n", 2, 7, "node.asn", "AS_TRANS"),
        (
            "[node]\nasn = 1\n[ipam]\ndead_host_delay = 0\n",
            4,
            19,
            "ipam.dead_host_delay",
            "expected a delay from 1",
        ),
        (
            "[node]\nasn = \"sixty\"\n",
            2,
            7,
            "node.asn",
            "expected an AS number",
        ),
        (
            "[node]\nasn = 1\nrouter_id = \"0.0.0.0\"\n",
            3,
            13,
            "node.router_id",
            "router id",
        ),
        (
            "[node]\nasn = 1\nname = \"Host_A\"\n",
            3,
            8,
            "node.name",
            "DNS name",
        ),
        (
            "[node]\nasn = 1\naddress = { interface = \"eth[\" }\n",
            3,
            11,
            "node.address",
            "regular expression",
        ),
        (
            "[node]\nasn = 1\naddress = { nearby = \"x\" }\n",
            3,
            13,
            "node.address.nearby",
            "unknown variant",
        ),
        (
            "[node]\nasn = 1\n[bgp]\nhold_time = 2\n",
            4,
            13,
            "bgp.hold_time",
            "hold time of 0 or 3",
        ),
        (
            "[node]\nasn = 1\n[bgp]\nsend_hold_time = 0\n",
            4,
            18,
            "bgp.send_hold_time",
            "send hold time from 1",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nsend_hold_time = -5\n",
            6,
            18,
            "bgp.peers[0].send_hold_time",
            "send hold time from 1",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nmax_prefixes_restart = 0\n",
            6,
            24,
            "bgp.peers[0].max_prefixes_restart",
            "restart interval from 1",
        ),
        (
            "[node]\nasn = 1\n[bgp]\ngraceful_restart = { restart_time = 5000 }\n",
            4,
            37,
            "bgp.graceful_restart.restart_time",
            "4095",
        ),
        (
            "[node]\nasn = 1\n[kernel]\nproto = 12\n",
            4,
            9,
            "kernel.proto",
            "not used by",
        ),
        (
            "[node]\nasn = 1\n[kernel]\nproto = 196\n",
            4,
            9,
            "kernel.proto",
            "186-197",
        ),
        (
            "[node]\nasn = 1\n[kernel]\ntable = 255\n",
            4,
            9,
            "kernel.table",
            "local",
        ),
        (
            "[node]\nasn = 1\n[etcd]\nendpoints = [\"127.0.0.1:2379\"]\n",
            4,
            13,
            "etcd.endpoints",
            "etcd URL",
        ),
        (
            "[node]\nasn = 1\n[log]\nlevel = \"loud\"\n",
            4,
            9,
            "log.level",
            "unknown variant",
        ),
        // a required key missing
        (
            "[node]\nname = \"a\"\n",
            1,
            1,
            "node",
            "missing field `asn`",
        ),
        // rules across keys
        (
            "[node]\nasn = 1\n[bgp]\ncluster_id = \"1.2.3.4\"\n",
            4,
            14,
            "bgp.cluster_id",
            "route_reflector = true",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 1\nroute_reflector_client = true\n",
            6,
            26,
            "bgp.peers[0].route_reflector_client",
            "bgp.route_reflector = true",
        ),
        (
            "[node]\nasn = 1\n[bgp]\nroute_reflector = true\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nroute_reflector_client = true\n",
            8,
            26,
            "bgp.peers[0].route_reflector_client",
            "iBGP",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 3\n",
            7,
            11,
            "bgp.peers[1].address",
            "already bgp.peers[0]",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\npassword = \"\"\n",
            6,
            12,
            "bgp.peers[0].password",
            "1 to 80 bytes",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nlocal_address = \"2001:db8::1\"\n",
            6,
            17,
            "bgp.peers[0].local_address",
            "same family",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"10.0.0.1/16\"\n",
            5,
            8,
            "ipam.pools[0].cidr",
            "zero host bits",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"10.0.0.0/28\"\n",
            5,
            8,
            "ipam.pools[0].cidr",
            "block size /26",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"10.0.0.0/16\"\nblock_size = 33\n",
            6,
            14,
            "ipam.pools[0].block_size",
            "between",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"a\"\ncidr = \"10.0.0.0/16\"\n[[ipam.pools]]\nname = \"b\"\ncidr = \"10.0.128.0/17\"\n",
            8,
            8,
            "ipam.pools[1].cidr",
            "overlaps ipam.pools[0]",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"10.0.0.0/16\"\nnode_selector = \"rack = 'r1'\"\n",
            6,
            17,
            "ipam.pools[0].node_selector",
            "selector \"rack = 'r1'\": at column 6: expected `==`, `!=`, `in`",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"10.0.0.0/16\"\nnode_selector = 'has(rack) &&'\n",
            6,
            17,
            "ipam.pools[0].node_selector",
            "at column 13: expected a label key",
        ),
        (
            "[node]\nasn = 1\n[etcd]\nendpoints = [\"https://e:2379\"]\n",
            4,
            14,
            "etcd.endpoints[0]",
            "[etcd.tls]",
        ),
        (
            "[node]\nasn = 1\n[etcd]\nendpoints = [\"https://e:2379\", \"http://f:2379\"]\n[etcd.tls]\nca_file = \"/ca.pem\"\n",
            4,
            32,
            "etcd.endpoints[1]",
            "must be https://",
        ),
        // BGP filters and advertised communities
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\n[[bgp.peers.export]]\naction = \"deny\"\n",
            7,
            10,
            "bgp.peers[0].export[0].action",
            "unknown variant `deny`, expected `accept` or `reject`",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\n[[bgp.peers.import]]\naction = \"accept\"\ncidr = \"10.244.0.0/16\"\nprefix_length = { min = 8 }\n",
            9,
            17,
            "bgp.peers[0].import[0].prefix_length",
            "expected min from 16 to 32 for 10.244.0.0/16, not 8",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\n[[bgp.peers.import]]\naction = \"accept\"\ncidr = \"10.244.0.1/16\"\n",
            8,
            8,
            "bgp.peers[0].import[0].cidr",
            "zero host bits, like 10.244.0.0/16",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\n[[bgp.peers.export]]\naction = \"reject\"\nlocal_pref = 10\n",
            8,
            14,
            "bgp.peers[0].export[0].local_pref",
            "only an accepted route is changed",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nfilters = [\"tor-in\"]\n[[bgp.filters]]\nname = \"tor-out\"\n",
            6,
            12,
            "bgp.peers[0].filters[0]",
            "no [[bgp.filters]] is named \"tor-in\"; expected one of: tor-out",
        ),
        (
            "[node]\nasn = 1\n[bgp]\nroute_reflector = true\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nexport_learned = true\n",
            8,
            18,
            "bgp.peers[0].export_learned",
            "export_learned is for hosts",
        ),
        (
            "[node]\nasn = 1\n[bgp]\nmesh_filters = [\"x\"]\n",
            4,
            17,
            "bgp.mesh_filters[0]",
            "(none defined)",
        ),
        (
            "[node]\nasn = 1\n[[bgp.filters]]\nname = \"f\"\n[[bgp.filters.export]]\naction = \"accept\"\nmatch = \"in\"\n[[bgp.filters]]\nname = \"g\"\n",
            7,
            9,
            "bgp.filters[0].export[0].match",
            "a match operator needs cidr",
        ),
        (
            "[node]\nasn = 1\n[[bgp.filters]]\nname = \"f\"\n[[bgp.filters]]\nname = \"f\"\n",
            6,
            8,
            "bgp.filters[1].name",
            "already used by bgp.filters[0]",
        ),
        (
            "[node]\nasn = 1\n[[bgp.filters]]\nname = \"f\"\n[[bgp.filters.import]]\naction = \"accept\"\ncommunity = \"1:2:3\"\n",
            7,
            13,
            "bgp.filters[0].import[0].community",
            "large communities are only added",
        ),
        (
            "[node]\nasn = 1\n[[bgp.filters]]\nname = \"f\"\n[[bgp.filters.import]]\naction = \"accept\"\nsource = \"RemotePeers\"\n",
            7,
            1,
            "bgp.filters[0].import[0].source",
            "unknown field `source`",
        ),
        (
            "[node]\nasn = 1\n[[bgp.communities]]\nname = \"dc\"\nvalue = \"65000:70000\"\n",
            5,
            9,
            "bgp.communities[0].value",
            "expected a community like",
        ),
        (
            "[node]\nasn = 1\n[[bgp.communities]]\nname = \"dc\"\nvalue = \"65000:7\"\n[[bgp.prefix_advertisements]]\ncidr = \"10.244.0.0/16\"\ncommunities = [\"dc\", \"rack\"]\n",
            8,
            22,
            "bgp.prefix_advertisements[0].communities[1]",
            "or a name from [[bgp.communities]], not \"rack\"",
        ),
        (
            "[node]\nasn = 1\n[state]\ndir = \"var/lib/bgpd\"\n",
            4,
            7,
            "state.dir",
            "expected an absolute path",
        ),
        (
            "[node]\nasn = 1\n[state]\npath = \"/x\"\n",
            4,
            1,
            "state.path",
            "unknown field",
        ),
    ];
    assert_cases(cases);
}

/// IPAM makes blocks of /20 to /32 (IPv4) and /116 to /128 (IPv6): `--check` says so, rather
/// than bgpd failing to create the pool at start.
#[test]
fn ipam_block_sizes_are_those_ipam_accepts() {
    assert_cases(&[
        // IPAM's block sizes: /20 to /32 and /116 to /128 (at most 4096 addresses a block)
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"10.0.0.0/16\"\nblock_size = 18\n",
            6,
            14,
            "ipam.pools[0].block_size",
            "expected an IPv4 block size from /20 to /32, not /18",
        ),
        (
            "[node]\nasn = 1\n[[ipam.pools]]\nname = \"p\"\ncidr = \"fd00::/48\"\nblock_size = 112\n",
            6,
            14,
            "ipam.pools[0].block_size",
            "expected an IPv6 block size from /116 to /128, not /112",
        ),
    ]);
}

/// A duplicate key is reported at the key, named by its full path.
#[test]
fn a_key_given_twice_is_named() {
    assert_cases(&[
        // a key given twice is named, also inside a table
        (
            "[node]\nasn = 1\nname = \"a\"\nasn = 2\n",
            4,
            1,
            "node.asn",
            "duplicate key",
        ),
        (
            "[node]\nasn = 1\n[[bgp.peers]]\naddress = \"192.0.2.1\"\nasn = 2\nasn = 3\n",
            6,
            1,
            "bgp.peers[0].asn",
            "duplicate key",
        ),
        (
            "[node]\nasn = 1\nlabels.rack = \"a\"\nlabels.rack = \"b\"\n",
            4,
            8,
            "node.labels.rack",
            "duplicate key",
        ),
        (
            "[node]\nasn = 1\n[etcd]\n[node]\n",
            4,
            2,
            "node",
            "duplicate key",
        ),
    ]);
}

/// Node labels follow the same rules as endpoint labels, so a selector can name each one.
#[test]
fn node_labels_follow_the_endpoint_label_rules() {
    assert_cases(&[
        // node labels follow the same rules as endpoint labels (Kubernetes' syntax)
        (
            "[node]\nasn = 1\n[node.labels]\nrack = \"r1\"\n\"bad key!\" = \"r1\"\n",
            5,
            14,
            "node.labels.\"bad key!\"",
            "' ' is not allowed",
        ),
        (
            "[node]\nasn = 1\nlabels = { rack = \"r 1\" }\n",
            3,
            19,
            "node.labels.rack",
            "value \"r 1\"",
        ),
    ]);
}

#[test]
fn the_display_form_is_file_line_column_key_message() {
    let err = Config::parse("[node]\nasn = 0\n", Path::new("/etc/bgpd/bgpd.toml")).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with("/etc/bgpd/bgpd.toml:2:7: node.asn: expected an AS number"),
        "{shown}"
    );
}

#[test]
fn defaults_fill_everything_but_the_as_number() {
    let c = Config::parse("[node]\nasn = 64512\n", Path::new("x.toml")).unwrap();
    assert_eq!(c.bgp.listen_port.get(), 179);
    assert_eq!(c.bgp.hold_time.get(), 90);
    assert_eq!(c.bgp.send_hold_time, None);
    assert!(c.bgp.mesh && !c.bgp.route_reflector && c.bgp.graceful_restart.enabled);
    assert_eq!(c.kernel.table.get(), 254);
    assert!(c.kernel.keep_routes_on_exit);
    assert_eq!(c.etcd.endpoints[0].as_str(), "http://127.0.0.1:2379");
    assert!(c.metrics.address.is_none());
    assert_eq!(c.state.dir, Path::new("/var/lib/bgpd"));
}

#[test]
fn no_input_panics() {
    // Truncations of a valid file and odd unicode all give errors, not panics.
    let valid = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/tor-host.toml"
    ))
    .unwrap();
    for cut in 0..valid.len() {
        if valid.is_char_boundary(cut) {
            let _ = Config::parse(&valid[..cut], Path::new("x"));
        }
    }
    for text in [
        "\u{feff}[node]\nasn=1",
        "[node]\nasn = 1\nname = \"é\u{301}\"",
        "a=1\n\n\n\u{10ffff}",
        "\0",
    ] {
        let _ = Config::parse(text, Path::new("x"));
    }
}
