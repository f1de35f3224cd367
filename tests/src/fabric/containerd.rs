//! A real container runtime for CNI tests: Debian's containerd started by hand with its own
//! root, state and socket in a temporary directory, `ctr`, a busybox image assembled locally
//! (no registry), and our CNI plugin installed where `ctr run --cni` looks.
//!
//! `ctr run --cni` (containerd 1.6, `cmd/ctr/commands/run/run.go`) calls go-cni with nothing but
//! `WithDefaultConf`, so it reads the first config in `/etc/cni/net.d` and runs plugins from
//! `/opt/cni/bin`, go-cni's defaults; containerd's own `cni` settings apply only to its CRI
//! plugin. Hence [`CniInstall`] writes into those two directories and removes what it wrote.
//! `ctr` runs the plugin itself (ADD after the task is created, DEL when `ctr run` sees the
//! task exit), with the container id `<namespace>-<id>` (`default-<id>`).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{ChildGuard, run, wait_until};

/// Where `ctr run --cni` finds plugins.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// Where `ctr run --cni` finds network configs.
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// The test image's name.
pub const BUSYBOX_IMAGE: &str = "docker.io/fabric-test/busybox:1";
/// Debian's static busybox (package `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// containerd on its own socket; every container it runs is removed on drop.
#[derive(Debug)]
pub struct Containerd {
    containers: Vec<String>,
    daemon: ChildGuard,
    dir: TempDir,
}

impl Containerd {
    /// Starts containerd (CRI plugin off: `ctr` needs none of it) and waits until it serves.
    pub fn start() -> io::Result<Containerd> {
        let dir = tempfile::Builder::new().prefix("containerd-").tempdir()?;
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
        )?;
        let log = std::fs::File::create(dir.path().join("containerd.log"))?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .arg("--address")
            .arg(dir.path().join("containerd.sock"))
            .stdout(Stdio::null())
            .stderr(log);
        let daemon = ChildGuard::spawn(&mut cmd, "containerd")?;
        let containerd = Containerd {
            containers: Vec::new(),
            daemon,
            dir,
        };
        if !wait_until(Duration::from_secs(20), || {
            containerd.ctr(&["version"]).is_ok()
        }) {
            return Err(io::Error::other(format!(
                "containerd did not serve: {}",
                std::fs::read_to_string(containerd.dir.path().join("containerd.log"))
                    .unwrap_or_default()
            )));
        }
        Ok(containerd)
    }

    /// A `ctr` command against this containerd.
    pub fn ctr_cmd(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("containerd.sock"));
        cmd
    }

    /// Runs `ctr args…`; stdout.
    pub fn ctr(&self, args: &[&str]) -> io::Result<String> {
        run(self.ctr_cmd().args(args))
    }

    /// Builds the busybox image tarball and imports it as [`BUSYBOX_IMAGE`].
    pub fn import_busybox(&self) -> io::Result<()> {
        let tar = busybox_image(self.dir.path())?;
        self.ctr(&["images", "import", &tar.to_string_lossy()])?;
        let images = self.ctr(&["images", "ls", "-q"])?;
        if images.lines().any(|l| l == BUSYBOX_IMAGE) {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{BUSYBOX_IMAGE} not imported: {images}"
            )))
        }
    }

    /// `ctr run --rm --cni <image> <id> args…` in the foreground (so ctr runs CNI DEL when the
    /// task exits); returns the `ctr` process.
    pub fn run_with_cni(&mut self, id: &str, args: &[&str]) -> io::Result<ChildGuard> {
        let log = std::fs::File::create(self.dir.path().join(format!("ctr-run-{id}.log")))?;
        let mut cmd = self.ctr_cmd();
        cmd.args(["run", "--rm", "--cni", BUSYBOX_IMAGE, id])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = ChildGuard::spawn(&mut cmd, "ctr run")?;
        self.containers.push(id.to_string());
        Ok(child)
    }

    /// What `ctr run` for `id` printed.
    pub fn run_log(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("ctr-run-{id}.log")))
            .unwrap_or_default()
    }

    /// The pid of `id`'s task once it runs.
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        let out = self.ctr(&["tasks", "ls"]).ok()?;
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.first() == Some(&id) && f.get(2) == Some(&"RUNNING"))
            .and_then(|f| f.get(1)?.parse().ok())
    }

    /// Runs `args…` inside `id`'s running task; stdout, or an error with stderr.
    pub fn exec(&self, id: &str, exec_id: &str, args: &[&str]) -> io::Result<String> {
        self.ctr(&[&["tasks", "exec", "--exec-id", exec_id, id][..], args].concat())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
            let _ = self.ctr(&["tasks", "rm", "--force", id]);
            let _ = self.ctr(&["containers", "rm", id]);
        }
        self.daemon.terminate(Duration::from_secs(5));
    }
}

/// Assembles a docker-archive image (`manifest.json`, config, one layer) holding Debian's
/// static busybox and its applets `sh`, `sleep`, `ping`, `ip`, `cat`; returns the tarball.
pub fn busybox_image(dir: &Path) -> io::Result<PathBuf> {
    if !Path::new(BUSYBOX).is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{BUSYBOX} is missing: apt-get install busybox-static"),
        ));
    }
    let image = dir.join("image");
    let rootfs = image.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(BUSYBOX, bin.join("busybox"))?;
    for applet in ["sh", "sleep", "ping", "ip", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    let layer = image.join("layer.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."))?;
    let digest = run(Command::new("sha256sum").arg(&layer))?;
    let digest = digest.split_whitespace().next().unwrap_or_default();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{digest}")] },
    });
    std::fs::write(image.join("config.json"), config.to_string())?;
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [BUSYBOX_IMAGE.trim_start_matches("docker.io/")],
        "Layers": ["layer.tar"],
    }]);
    std::fs::write(image.join("manifest.json"), manifest.to_string())?;
    let tar = dir.join("busybox-image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&image)
        .arg("-cf")
        .arg(&tar)
        .args(["manifest.json", "config.json", "layer.tar"]))?;
    Ok(tar)
}

/// Our plugin and a network config installed where `ctr run --cni` looks, removed on drop
/// (with the directories, if this made them).
#[derive(Debug)]
pub struct CniInstall {
    files: Vec<PathBuf>,
    made_dirs: Vec<PathBuf>,
}

impl CniInstall {
    /// Installs `plugin` as `/opt/cni/bin/<its file name>` and `conflist` as
    /// `/etc/cni/net.d/10-bgpd.conflist`. Refuses when the conf dir holds other configs: the
    /// first one would win, and they are not ours to move.
    pub fn new(plugin: &Path, conflist: &str) -> io::Result<CniInstall> {
        let mut install = CniInstall {
            files: Vec::new(),
            made_dirs: Vec::new(),
        };
        for dir in [CNI_CONF_DIR, CNI_BIN_DIR] {
            install.make_dirs(Path::new(dir))?;
        }
        if let Some(other) = std::fs::read_dir(CNI_CONF_DIR)?.flatten().next() {
            return Err(io::Error::other(format!(
                "{CNI_CONF_DIR} already holds {}: not overriding someone's CNI config",
                other.path().display()
            )));
        }
        let name = plugin
            .file_name()
            .ok_or_else(|| io::Error::other("plugin path has no file name"))?;
        let target = Path::new(CNI_BIN_DIR).join(name);
        if target.exists() {
            return Err(io::Error::other(format!(
                "{} exists: not overwriting it",
                target.display()
            )));
        }
        std::fs::copy(plugin, &target)?;
        install.files.push(target);
        let conf = Path::new(CNI_CONF_DIR).join("10-bgpd.conflist");
        std::fs::write(&conf, conflist)?;
        install.files.push(conf);
        Ok(install)
    }

    /// Creates `dir` and missing parents, remembering which it made (innermost last).
    fn make_dirs(&mut self, dir: &Path) -> io::Result<()> {
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .filter(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        for d in missing {
            std::fs::create_dir(&d)?;
            self.made_dirs.push(d);
        }
        Ok(())
    }
}

impl Drop for CniInstall {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for d in self.made_dirs.iter().rev() {
            // Only empty directories go: anything else put there meanwhile stays.
            let _ = std::fs::remove_dir(d);
        }
    }
}
