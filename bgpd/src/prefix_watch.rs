//! A live view of every key under one etcd prefix: list it (in pages, at one revision), then
//! watch from the next revision, folding each change into a value that is published after every
//! change. Starts over with a fresh list when the watch breaks (etcd restarted, compacted, unreachable).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
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
    // In pages at one revision: one reply is capped at 4 MiB, which a few thousand records
    // pass, and a follower that cannot list would never see anything.
    let listed = ipam::store::list_prefix(client, prefix).await?;
    let revision = listed.revision;
    let mut view = T::default();
    for kv in &listed.kvs {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use etcd_client::{Client, Txn, TxnOp};
    use testkit::etcd::Etcd;
    use tokio::sync::watch;

    use super::*;

    /// Keys and value lengths, as a follower folds them.
    type Lengths = BTreeMap<String, usize>;

    fn fold(view: &mut Lengths, key: &str, value: Option<&[u8]>) {
        match value {
            Some(v) => view.insert(key.to_string(), v.len()),
            None => view.remove(key),
        };
    }

    /// More than one 4 MiB reply holds: 5,000 values of 1 KiB (about 5.5 MB with keys).
    #[tokio::test]
    async fn a_prefix_larger_than_one_reply_is_listed_then_followed() {
        let etcd = Etcd::single().unwrap();
        let client = Client::connect(etcd.endpoints(), None).await.unwrap();
        let mut kv = client.kv_client();
        let value = vec![b'x'; 1024];
        for batch in 0..50 {
            let puts: Vec<TxnOp> = (0..100)
                .map(|i| {
                    TxnOp::put(
                        format!("/t/big/{:05}", batch * 100 + i),
                        value.clone(),
                        None,
                    )
                })
                .collect();
            kv.txn(Txn::new().and_then(puts)).await.unwrap();
        }
        // Neighbours of the prefix stay out of the view.
        kv.put("/t/big0", "out", None).await.unwrap();
        kv.put("/t/bif/z", "out", None).await.unwrap();
        let whole = kv
            .get(
                "/t/big/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await;
        assert!(
            whole.is_err(),
            "one unpaged reply must be too large for this test"
        );

        let (tx, mut rx) = watch::channel(Lengths::new());
        let health = Arc::new(EtcdHealth::default());
        let task = tokio::spawn(follow(
            client.clone(),
            "/t/big/".to_string(),
            tx,
            health,
            "test records",
            fold,
        ));
        tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|v| v.len() == 5000))
            .await
            .expect("the whole prefix is listed")
            .unwrap();
        {
            let view = rx.borrow();
            assert_eq!(view.keys().next().map(String::as_str), Some("00000"));
            assert_eq!(view.keys().last().map(String::as_str), Some("04999"));
            assert!(view.values().all(|&len| len == 1024));
        }

        // The watch starts right after the listed revision: a change after it is seen.
        kv.put("/t/big/05000", "new", None).await.unwrap();
        kv.delete("/t/big/00000", None).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|v| v.get("05000") == Some(&3) && !v.contains_key("00000")),
        )
        .await
        .expect("changes after the list are followed")
        .unwrap();
        task.abort();
    }
}
