//! The operator's CLI for bgpd and the fabric: `routectl`.
//!
//! [`cli`] declares the commands; [`settings`] finds the daemon, etcd and policy file;
//! [`daemon`] holds the commands the local bgpd answers, [`cluster`] those etcd answers,
//! [`policy`] the nftables policy commands; [`render`] prints tables and JSON; [`failure`]
//! maps errors to exit codes.

pub mod cli;
pub mod cluster;
pub mod daemon;
pub mod failure;
pub mod policy;
pub mod render;
pub mod settings;

use clap::CommandFactory;

pub use cli::Cli;
pub use failure::Failure;

use cli::{Command, IpamCommand, NodeCommand};
use settings::Settings;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let output = cli.global.output;
    if let Command::Completion { shell } = cli.command {
        // Completions need no daemon, etcd or config file.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "routectl", &mut script);
        return render::write_stdout(&script);
    }
    let settings = Settings::resolve(&cli.global)?;
    let daemon = settings.daemon();
    match cli.command {
        Command::Status => daemon::status(&daemon, output).await,
        Command::Peers => daemon::peers(&daemon, output).await,
        Command::Peer { address } => daemon::peer(&daemon, address, output).await,
        Command::Routes { prefix } => daemon::routes(&daemon, prefix, output).await,
        Command::Nodes => cluster::nodes(&settings, output).await,
        Command::Node(NodeCommand::Delete { name, force }) => {
            cluster::delete_node(&settings, &name, force, output).await
        }
        Command::Ipam(IpamCommand::Show) => daemon::ipam_show(&daemon, output).await,
        Command::Ipam(IpamCommand::Check { repair }) => {
            cluster::check(&settings, repair, output).await
        }
        Command::Ipam(IpamCommand::Release { target }) => {
            cluster::release(&settings, &target, output).await
        }
        Command::Ipam(IpamCommand::Pools { action }) => {
            cluster::pools(&settings, action, output).await
        }
        Command::Endpoint(c) => daemon::endpoint(&daemon, c, output).await,
        Command::Policy(c) => policy::run(&settings, c, output).await,
        Command::Completion { .. } => Ok(()),
    }
}
