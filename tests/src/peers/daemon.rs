//! The part every launcher shares: a daemon process inside a namespace, the [`PeerConfig`] it
//! runs, and its own temp dir holding config file, control socket, pid file and log; starting
//! it and waiting until it answers.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::{PeerConfig, PeerError, Result, STARTUP};
use crate::netns::Netns;
use crate::process::{ChildGuard, run, wait_until};

/// A daemon running in a namespace; killed on drop, its dir removed with it.
///
/// It keeps the namespace's name, not a borrow, so tests can keep namespaces and peers side by
/// side in one struct; dropping the namespace first kills the daemon with it.
#[derive(Debug)]
pub struct Daemon {
    what: &'static str,
    config: PeerConfig,
    netns: String,
    dir: TempDir,
    child: Option<ChildGuard>,
}

/// How a launcher runs its daemon and tells that it is up.
pub(crate) struct Launch<'a> {
    /// The executable.
    pub program: &'a str,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables it reads its settings from.
    pub env: Vec<(&'a str, String)>,
    /// The control socket in the temp dir, removed first: one a killed instance left behind
    /// would stop the next from listening.
    pub socket: Option<&'a str>,
    /// What being up means, for the timeout message.
    pub ready: &'a str,
    /// Whether it is up yet.
    pub probe: fn(&Daemon) -> bool,
}

impl Daemon {
    /// A not yet started `what` (e.g. `"bird"`) running `config` in `netns`, with a fresh
    /// temp dir.
    pub(crate) fn new(what: &'static str, netns: &Netns, config: PeerConfig) -> io::Result<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("testkit-{what}-"))
            .tempdir()?;
        Ok(Daemon {
            what,
            config,
            netns: netns.name().to_string(),
            dir,
            child: None,
        })
    }

    /// Which daemon it is (`"bird"`, `"frr"` …).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The config it runs, with the routes changed at run time.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The config, for a launcher that changes it at run time.
    pub(crate) fn config_mut(&mut self) -> &mut PeerConfig {
        &mut self.config
    }

    /// Starts the daemon as `launch` says (killing an earlier instance) and waits until its
    /// probe answers; fails at once if it exits (a config error, say).
    pub(crate) fn launch(&mut self, launch: Launch) -> Result<()> {
        if let Some(socket) = launch.socket {
            self.remove_stale_socket(socket)?;
        }
        self.start(launch.program, &launch.args, &launch.env)?;
        let mut exited = false;
        let up = wait_until(STARTUP, || {
            exited = !self.is_running();
            exited || (launch.probe)(self)
        });
        if up && !exited {
            return Ok(());
        }
        Err(PeerError::Timeout {
            daemon: self.what,
            what: if exited {
                format!("{} (the daemon exited)", launch.ready)
            } else {
                launch.ready.to_string()
            },
            after: STARTUP,
            logs: self.logs(),
        })
    }

    /// The daemon's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The name of the namespace it runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// `program` to be run inside the namespace.
    fn in_netns(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, program]);
        cmd
    }

    /// Writes `contents` to `name` in the temp dir.
    pub(crate) fn write(&self, name: &str, contents: &str) -> io::Result<()> {
        fs::write(self.path(name), contents)
    }

    /// Removes a unix socket a killed instance left behind.
    fn remove_stale_socket(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Starts `program args…` with `env` in the namespace, stdout and stderr appended to
    /// `<what>.out`; kills an earlier instance first.
    fn start(&mut self, program: &str, args: &[String], env: &[(&str, String)]) -> io::Result<()> {
        self.kill();
        let out = self.output_file()?;
        let mut cmd = self.in_netns(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        self.child = Some(ChildGuard::spawn(&mut cmd, self.what)?);
        Ok(())
    }

    fn output_file(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("{}.out", self.what)))
    }

    /// Runs a command in the root namespace (for tools that only need a unix socket).
    pub(crate) fn control_here(&self, program: &str, args: &[&str]) -> io::Result<String> {
        run(Command::new(program).args(args))
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid())
    }

    /// Whether the process is alive (a frozen one counts as alive).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| !c.has_exited())
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        match &self.child {
            Some(child) => child.signal(signal),
            None => Err(io::Error::other(format!("{} is not running", self.what))),
        }
    }

    /// SIGKILL, as a crash: no NOTIFICATION, no cleanup. Config and dir stay for a restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// What the daemon wrote to its log files and stdout, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = fs::read_dir(self.dir()) {
            let mut names: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log" || x == "out"))
                .collect();
            names.sort();
            for path in names {
                if let Ok(text) = fs::read_to_string(&path) {
                    all.push_str(&format!("--- {}\n{text}", path.display()));
                }
            }
        }
        all
    }
}
