//! Whether etcd answers, as the last request saw it (for `/v1/status` and metrics).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcome of the daemon's most recent etcd request, and a count of failures.
#[derive(Debug, Default)]
pub struct EtcdHealth {
    last_error: Mutex<Option<String>>,
    errors: AtomicU64,
}

impl EtcdHealth {
    /// The last request succeeded.
    pub fn ok(&self) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
    }

    /// A request failed with `error`.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error.to_string());
        }
    }

    /// The last error, `None` while etcd answers.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Failed requests since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
