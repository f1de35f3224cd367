//! Entering a container's network namespace without disturbing the rest of the process.
//!
//! A network namespace belongs to a thread, not a process: `setns(CLONE_NEWNET)` moves only the
//! calling thread. So work inside a container runs on a fresh OS thread that enters the namespace,
//! does its job and exits; no other thread ever changes namespace, and none is reused (a pooled
//! thread such as tokio's `spawn_blocking` would carry the namespace into unrelated work).
//! Netlink sockets and `/proc/sys/net` opened on that thread belong to the container's namespace.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs, statfs};

use crate::error::{Error, Result};
use crate::spec::{InvalidSpec, NetnsRef};

/// The namespace of the calling thread, to tell the host's own namespace apart.
const SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// An open network namespace file; holding it keeps the namespace alive.
#[derive(Debug)]
pub struct NetnsFile {
    file: File,
    path: PathBuf,
}

impl NetnsFile {
    /// Opens the namespace `ns` refers to, checking that it is a network namespace and not the
    /// caller's own.
    pub fn open(ns: &NetnsRef) -> Result<NetnsFile> {
        let path = ns.path();
        let not_a_namespace = || Error::NotANamespace { path: path.clone() };
        // Namespace files live on nsfs (bind mounts, /proc/<pid>/ns/net); anything else (a
        // regular file, a directory) is a mistake. Checked before opening: opening a FIFO
        // would block and a device could act.
        let fs = statfs(&path).map_err(|e| match e {
            Errno::ENOENT => Error::NamespaceNotFound { path: path.clone() },
            e => Error::io("statfs", &path, e.into()),
        })?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(not_a_namespace());
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NamespaceNotFound { path: path.clone() },
                _ => Error::io("open", &path, e),
            })?;
        // The path may have changed between the two calls; what counts is the file we hold.
        let fs = fstatfs(&file).map_err(|_| not_a_namespace())?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(not_a_namespace());
        }
        let ns = NetnsFile { file, path };
        if ns.is_same_as(Path::new(SELF_NETNS))? {
            return Err(InvalidSpec::HostNamespace(ns.path).into());
        }
        Ok(ns)
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a new thread inside this namespace and returns what it returns.
    ///
    /// Awaiting does not block the caller's executor; `work` may build its own runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let fd = self
            .file
            .try_clone()
            .map_err(|e| Error::io("duplicate", &self.path, e))?;
        let path = self.path.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("netns-worker".into())
            .spawn(move || {
                let result = setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| match e {
                        // Another kind of namespace (mnt, pid, …): nsfs, but not ours to enter.
                        Errno::EINVAL => Error::NotANamespace { path: path.clone() },
                        e => Error::io("setns", &path, e.into()),
                    })
                    .and_then(|()| work());
                // The receiver is gone only if the caller stopped waiting; nothing to tell then.
                let _ = tx.send(result);
            })
            .map_err(|e| Error::Worker(format!("spawn: {e}")))?;
        rx.await
            .map_err(|_| Error::Worker("the namespace worker died before answering".into()))?
    }

    /// Whether this namespace is the one `other` (a namespace file) refers to.
    fn is_same_as(&self, other: &Path) -> Result<bool> {
        let mine = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?;
        let theirs = std::fs::metadata(other).map_err(|e| Error::io("stat", other, e))?;
        Ok(mine.dev() == theirs.dev() && mine.ino() == theirs.ino())
    }

    /// The descriptor number, for IFLA_NET_NS_FD; valid while `self` lives.
    pub(crate) fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}
