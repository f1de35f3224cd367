//! The part every launcher shares: a daemon process inside a namespace, and its own temp dir
//! holding config, control socket, pid file and log.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::netns::Netns;
use crate::process::{ChildGuard, run};

/// A daemon running in a namespace; killed on drop, its dir removed with it.
///
/// It keeps the namespace's name, not a borrow, so tests can keep namespaces and peers side by
/// side in one struct; dropping the namespace first kills the daemon with it.
#[derive(Debug)]
pub struct Daemon {
    what: &'static str,
    netns: String,
    dir: TempDir,
    child: Option<ChildGuard>,
}

impl Daemon {
    /// A not yet started `what` (e.g. `"bird"`) in `netns` with a fresh temp dir.
    pub(crate) fn new(what: &'static str, netns: &Netns) -> io::Result<Daemon> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("testkit-{what}-"))
            .tempdir()?;
        Ok(Daemon {
            what,
            netns: netns.name().to_string(),
            dir,
            child: None,
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

    /// Removes a unix socket a killed instance left behind, which would stop the next one
    /// from listening.
    pub(crate) fn remove_stale_socket(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Starts `program args…` in the namespace with stdout and stderr appended to
    /// `<what>.out`; kills an earlier instance first.
    pub(crate) fn start(&mut self, program: &str, args: &[String]) -> io::Result<()> {
        self.start_with_env(program, args, &[])
    }

    /// Like [`start`](Self::start) with environment variables set.
    pub(crate) fn start_with_env(
        &mut self,
        program: &str,
        args: &[String],
        env: &[(&str, String)],
    ) -> io::Result<()> {
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
