//! Every key under a prefix at one revision, read in pages: one gRPC reply is capped (4 MiB by
//! default in the client), which a prefix of a few thousand records of a KiB each passes.

use etcd_client::{Client, GetOptions, KeyValue};

/// Keys asked per page: about 0.5 MiB at the 1 KiB a record usually takes. A page that still
/// does not fit one reply (larger values) is asked again with half as many keys.
const PAGE_KEYS: i64 = 512;

/// Every key under a prefix, all read at `revision`.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The keys with their values, in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision every page was read at: watch from `revision + 1` to miss nothing.
    pub revision: i64,
}

/// Lists every key under `prefix` in pages of at most [`PAGE_KEYS`] keys, every page at the
/// first page's revision, so the result is one consistent snapshot however long it is. Fails
/// with etcd's "compacted" error if that revision is compacted away between pages (the caller
/// starts over, as after any failed list).
pub async fn list_prefix(client: &Client, prefix: &str) -> Result<Listing, etcd_client::Error> {
    list_at(client, prefix, 0, false).await
}

/// [`list_prefix`] at `revision` (0: the newest, as the first page finds it), with keys only
/// when `keys_only`.
pub(super) async fn list_at(
    client: &Client,
    prefix: &str,
    revision: i64,
    keys_only: bool,
) -> Result<Listing, etcd_client::Error> {
    let mut kv = client.kv_client();
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    let mut listing = Listing {
        kvs: Vec::new(),
        revision,
    };
    let mut page = PAGE_KEYS;
    loop {
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(page)
            .with_revision(listing.revision);
        let options = if keys_only {
            options.with_keys_only()
        } else {
            options
        };
        let mut reply = match kv.get(from.clone(), Some(options)).await {
            Ok(reply) => reply,
            Err(e) if page > 1 && reply_too_large(&e) => {
                page /= 2;
                continue;
            }
            Err(e) => return Err(e),
        };
        if listing.revision == 0 {
            listing.revision = reply.header().map_or(0, |h| h.revision());
        }
        let more = reply.more();
        let kvs = reply.take_kvs();
        // The next page starts just after the last key ("\0" is the least byte to append).
        match kvs.last() {
            Some(last) if more => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => {
                listing.kvs.extend(kvs);
                return Ok(listing);
            }
        }
        listing.kvs.extend(kvs);
    }
}

/// Whether the client refused a reply for its size (tonic's decoder says OUT_OF_RANGE, which
/// etcd also uses for "compacted": the message tells them apart).
pub(super) fn reply_too_large(e: &etcd_client::Error) -> bool {
    const OUT_OF_RANGE: i32 = 11;
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() as i32 == OUT_OF_RANGE && s.message().contains("length too large"))
}

/// The first key after every key that starts with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and the rest cut; "\0" (to the end of
/// the keyspace) when every byte is 0xff.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

#[cfg(test)]
mod tests {
    use super::{list_prefix, prefix_end};
    use etcd_client::Client;
    use testkit::etcd::Etcd;

    /// Ten values of 1 MiB: a page of [`PAGE_KEYS`](super::PAGE_KEYS) keys does not fit one
    /// reply, so pages shrink until they do; every key comes back, at the first revision.
    #[tokio::test]
    async fn pages_of_large_values_shrink_until_they_fit() {
        let etcd = Etcd::single().unwrap();
        let client = Client::connect(etcd.endpoints(), None).await.unwrap();
        let mut kv = client.kv_client();
        for i in 0..10 {
            kv.put(format!("/t/large/{i}"), vec![b'v'; 1 << 20], None)
                .await
                .unwrap();
        }
        kv.put("/t/large0", "neighbour", None).await.unwrap();
        let listing = list_prefix(&client, "/t/large/").await.unwrap();
        let keys: Vec<_> = listing.kvs.iter().map(|kv| kv.key().to_vec()).collect();
        let expected: Vec<_> = (0..10)
            .map(|i| format!("/t/large/{i}").into_bytes())
            .collect();
        assert_eq!(keys, expected);
        assert!(listing.kvs.iter().all(|kv| kv.value().len() == 1 << 20));
        let now = kv.get("/t/large0", None).await.unwrap();
        assert_eq!(Some(listing.revision), now.header().map(|h| h.revision()));
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"/fabric/v1/policies/"), b"/fabric/v1/policies0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }
}
