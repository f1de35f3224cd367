//! etcd outages of a fabric: its one etcd stopped (clients are refused; leases keep the time
//! they had, as etcd extends them when it starts again) and started again on its data.

use std::io;
use std::time::Duration;

use super::{Fabric, etcd_url};

impl Fabric {
    /// Stops the fabric's etcd (SIGTERM, SIGKILL after 10 s); its data stays for
    /// [`Fabric::start_etcd`].
    pub fn stop_etcd(&mut self) {
        self.etcd.terminate(Duration::from_secs(10));
    }

    /// Starts the fabric's etcd again on its data and waits until it is healthy.
    pub fn start_etcd(&mut self) -> io::Result<()> {
        self.etcd = super::start_etcd(&self.etcd_ns, &etcd_url(), self.dir.path())?;
        Ok(())
    }
}
