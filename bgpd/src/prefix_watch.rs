//! A live view of every key under one etcd prefix: list it, then watch from the next revision,
//! folding each change into a value that is published after every change. Starts over with a
//! fresh list when the watch breaks (etcd restarted, compacted, unreachable).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::watch;

use crate::health::EtcdHealth;
use crate::node::Backoff;

/// Folds one key's change into the view: `key` is the part after the prefix, `value` the new
/// value (`None`: deleted). It must not panic on any bytes (etcd holds what anyone wrote).
pub trait Fold<T>: Fn(&mut T, &str, Option<&[u8]>) + Send + Sync {}
impl<T, F: Fn(&mut T, &str, Option<&[u8]>) + Send + Sync> Fold<T> for F {}

/// Follows `prefix` forever, publishing the folded view on `out`; `what` names it in logs.
/// Runs as a task.
pub async fn follow<T: Default + Clone>(
    mut client: Client,
    prefix: String,
    out: watch::Sender<T>,
    health: Arc<EtcdHealth>,
    what: &'static str,
    fold: impl Fold<T>,
) {
    let mut backoff = Backoff::new();
    loop {
        let began = std::time::Instant::now();
        match follow_once(&mut client, &prefix, &out, &health, &fold).await {
            Ok(()) => backoff = Backoff::new(),
            Err(e) => {
                // A watch that ran a while broke on its own: retry soon, not after a long wait.
                if began.elapsed() > Duration::from_secs(10) {
                    backoff = Backoff::new();
                }
                health.failed(&e);
                tracing::warn!(
                    "watching {what} failed: {e}; retrying in {}s",
                    backoff.next().as_secs()
                );
                backoff.wait().await;
            }
        }
    }
}

async fn follow_once<T: Default + Clone>(
    client: &mut Client,
    prefix: &str,
    out: &watch::Sender<T>,
    health: &EtcdHealth,
    fold: &impl Fold<T>,
) -> Result<(), etcd_client::Error> {
    let listed = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listed.header().map_or(0, |h| h.revision());
    let mut view = T::default();
    for kv in listed.kvs() {
        if let Some(key) = suffix(prefix, kv.key()) {
            fold(&mut view, key, Some(kv.value()));
        }
    }
    out.send_replace(view.clone());
    health.ok();
    let mut stream = client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    while let Some(reply) = stream.message().await? {
        if reply.canceled() {
            return Err(etcd_client::Error::WatchError(format!(
                "watch canceled: {}",
                reply.cancel_reason()
            )));
        }
        for event in reply.events() {
            let Some(kv) = event.kv() else { continue };
            let Some(key) = suffix(prefix, kv.key()) else {
                continue;
            };
            match event.event_type() {
                EventType::Put => fold(&mut view, key, Some(kv.value())),
                EventType::Delete => fold(&mut view, key, None),
            }
        }
        out.send_replace(view.clone());
    }
    Err(etcd_client::Error::WatchError("watch stream ended".into()))
}

/// The key without the prefix, if it is UTF-8 and non-empty.
fn suffix<'a>(prefix: &str, key: &'a [u8]) -> Option<&'a str> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    (!rest.is_empty()).then_some(rest)
}
