//! The command line: every command, flag and environment variable (clap derive).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnetwork::IpNetwork;

/// routectl: look at and steer bgpd and the fabric.
///
/// Commands about this host ask the local bgpd over its control socket; `nodes`, `node delete`
/// and `ipam check|release|pools` read etcd directly; `policy` compiles with bgpd-policy and runs nft.
///
/// Exit codes: 0 success, 1 the command failed, 2 usage error, 3 bgpd unreachable,
/// 4 etcd unreachable, 5 `ipam check` found problems.
#[derive(Debug, Parser)]
#[command(name = "routectl", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: Global,
}

/// Flags every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// bgpd's configuration file, read for the socket path, etcd endpoints and policy file
    /// when present.
    #[arg(
        long,
        global = true,
        env = "BGPD_CONFIG",
        default_value = "/etc/bgpd/bgpd.toml"
    )]
    pub config: PathBuf,
    /// bgpd's control socket [default: the config's api.socket, else /run/bgpd/bgpd.sock].
    #[arg(long, global = true, env = "BGPD_SOCKET")]
    pub socket: Option<PathBuf>,
    /// etcd client URLs, comma-separated [default: the config's etcd.endpoints, else
    /// http://127.0.0.1:2379].
    #[arg(long, global = true, env = "ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// CA bundle to verify etcd's certificates with; needed for https:// endpoints [default:
    /// the config's etcd.tls.ca_file].
    #[arg(long, global = true, env = "ETCD_CA_CERT_FILE", value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd's client-certificate auth, with --etcd-key [default: the
    /// config's etcd.tls.cert_file].
    #[arg(long, global = true, env = "ETCD_CERT_FILE", value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key, with --etcd-cert [default: the config's etcd.tls.key_file].
    #[arg(long, global = true, env = "ETCD_KEY_FILE", value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// Name to verify etcd's certificates against instead of each endpoint's host
    /// [default: the config's etcd.tls.server_name].
    #[arg(long, global = true, env = "ETCD_SERVER_NAME", value_name = "NAME")]
    pub etcd_server_name: Option<String>,
    /// Key root of the fabric's records in etcd.
    #[arg(
        long,
        global = true,
        env = "BGPD_ETCD_ROOT",
        default_value = "/fabric/v1"
    )]
    pub etcd_root: String,
    /// Output format: aligned tables for people, JSON for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables.
    Table,
    /// The API's JSON, one document.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One screen about this host: node, AS, blocks, peers, kernel sync, etcd.
    Status,
    /// BGP sessions: state, uptime, prefixes.
    Peers,
    /// One BGP session in detail: capabilities, message counters, last NOTIFICATIONs.
    Peer {
        /// The peer's address.
        address: IpAddr,
    },
    /// The RIB (every candidate path, with best/multipath/stale markers) and the kernel FIB.
    Routes {
        /// Only routes inside (or equal to) this prefix.
        prefix: Option<IpNetwork>,
    },
    /// Every node registered in etcd, with its address, AS, blocks and whether its bgpd runs.
    Nodes,
    /// One node of the fabric.
    #[command(subcommand)]
    Node(NodeCommand),
    /// IP address management.
    #[command(subcommand)]
    Ipam(IpamCommand),
    /// Container endpoints on this host.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Host-firewall policy (nftables).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Prints a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `routectl node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Decommissions a host for good (as `calicoctl delete node`): deletes its node record,
    /// so every other host drops its BGP session at once and IPAM's garbage collection
    /// reclaims its addresses and blocks after the dead-host delay. Refused while the host's
    /// bgpd runs and reaches etcd, unless --force.
    Delete {
        /// The node's name.
        name: String,
        /// Delete although its bgpd looks alive (a running bgpd writes its record back within
        /// 30 s: stop it first).
        #[arg(long)]
        force: bool,
    },
}

/// `routectl ipam …`.
#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// This host's blocks and assigned addresses (from bgpd).
    Show,
    /// Checks the datastore for leaks, dangling handles, overlaps, gone hosts (from etcd).
    Check {
        /// Fix what can be fixed safely (gone hosts are left to GC, corrupt values to you).
        #[arg(long)]
        repair: bool,
    },
    /// Releases an address, or every address of a handle (`<container id>.<ifname>`).
    Release {
        /// An IP address or a handle id.
        target: String,
    },
    /// IP pools: list, add, delete.
    Pools {
        /// What to do with pools; lists them when absent.
        #[command(subcommand)]
        action: Option<PoolAction>,
    },
}

/// `routectl ipam pools …`.
#[derive(Debug, Subcommand)]
pub enum PoolAction {
    /// Adds a pool.
    Add {
        /// The pool's name (lowercase letters, digits, '-', '.').
        name: String,
        /// Its network, e.g. 10.244.0.0/16 or fd00:244::/48.
        cidr: IpNetwork,
        /// Prefix length of the blocks hosts claim [default: 26 for IPv4, 122 for IPv6].
        #[arg(long)]
        block_size: Option<u8>,
        /// Masquerade traffic from this pool to destinations outside every pool.
        #[arg(long)]
        nat_outgoing: bool,
        /// Add it disabled (no new blocks from it).
        #[arg(long)]
        disabled: bool,
        /// Which hosts may use it, e.g. `zone == 'a'` [default: all()].
        #[arg(long)]
        node_selector: Option<String>,
    },
    /// Deletes a pool (refused while addresses in it are assigned, unless --force).
    Delete {
        /// The pool's name.
        name: String,
        /// Delete even though addresses are assigned: their blocks go too.
        #[arg(long)]
        force: bool,
    },
}

/// `routectl endpoint …`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Wires a container's network namespace to this host with addresses from IPAM.
    Add {
        /// The container id.
        container_id: String,
        /// Its network namespace: a path (/proc/<pid>/ns/net, /run/netns/x) or a name under
        /// /run/netns.
        #[arg(long)]
        netns: String,
        /// Interface name inside the container.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// The exact address wanted; at most one (bgpd assigns one requested address) [default:
        /// one per family with a pool].
        #[arg(long = "ip", action = clap::ArgAction::Set)]
        ips: Vec<IpAddr>,
        /// MTU of both veth ends [default: 1500].
        #[arg(long)]
        mtu: Option<u32>,
        /// A label for policy selectors, `key=value` (repeatable; Kubernetes label syntax).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Replaces a running container's labels (all of them; none given removes them all) and
    /// re-applies the host firewall.
    Label {
        /// The container id.
        container_id: String,
        /// Interface name inside the container.
        #[arg(long, default_value = "eth0")]
        ifname: String,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Removes a container's interface and releases its addresses (idempotent).
    Del {
        /// The container id.
        container_id: String,
        /// Interface name inside the container.
        #[arg(long, default_value = "eth0")]
        ifname: String,
    },
    /// Lists the endpoints on this host.
    List,
}

/// `key=value`, checked by the daemon's rules, so a bad label is a usage error (exit 2).
fn parse_label(text: &str) -> Result<(String, String), bgpd_api::LabelError> {
    bgpd_api::parse_label(text)
}

/// `routectl policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Which policies (the file's and the cluster's) govern which local endpoint, in
    /// evaluation order; with --cluster, the cluster-wide policies stored in etcd.
    Show {
        /// Where the policy comes from.
        #[command(flatten)]
        source: PolicySource,
        /// List the cluster-wide policies in etcd, with any value bgpd would refuse.
        #[arg(long, conflicts_with = "file")]
        cluster: bool,
    },
    /// Compiles the policy file and the cluster policies and prints the nftables ruleset,
    /// applying nothing.
    DryRun(PolicySource),
    /// Compiles and checks the policy, then has bgpd reload it; with --file, applies that file
    /// directly in one nft transaction; with --cluster, writes the file's policies to etcd as
    /// cluster-wide policies, which every bgpd applies.
    Apply {
        /// Where the policy comes from.
        #[command(flatten)]
        source: PolicySource,
        /// Apply with --file inside this named network namespace (`ip netns exec`), e.g. a
        /// lab host.
        #[arg(long, requires = "file")]
        netns: Option<String>,
        /// Write every `[[policy]]` of this file to etcd in one transaction (refused whole on
        /// any error).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["file", "netns"])]
        cluster: Option<PathBuf>,
    },
    /// Deletes a cluster-wide policy from etcd.
    Delete {
        /// The policy's name.
        #[arg(long, value_name = "NAME")]
        cluster: String,
    },
    /// Packet and byte counters per policy rule and default deny, read from nftables.
    Counters {
        /// The nft table (family inet) holding our ruleset.
        #[arg(long, default_value = "bgpd")]
        table: String,
        /// Read them inside this named network namespace (`ip netns exec`).
        #[arg(long)]
        netns: Option<String>,
    },
}

/// Where a policy command reads its policy.
#[derive(Debug, Args)]
pub struct PolicySource {
    /// The policy file [default: the config's policy.file].
    #[arg(long)]
    pub file: Option<PathBuf>,
}
