//! [`Store`] over etcd v3 with etcd-client.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, TxnOp,
    TxnOpResponse,
};

use super::listing::{list_at, list_prefix, reply_too_large};
use super::tls::{EtcdTls, TlsError, secure};
use super::{Entry, Guard, Outcome, Read, Store, StoreError, Txn, Write};

/// etcd's default limit of operations in one transaction.
const MAX_TXN_OPS: usize = 128;

/// How the client talks to etcd. The defaults fail over between members within a few seconds:
/// a killed member's connection is reset at once, a stuck one times out per request.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Deadline of one request; a stuck member is abandoned after this.
    pub request_timeout: Duration,
    /// Deadline to open a connection to one member.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive interval while a stream (watch, lease keep-alive) is open; a dead
    /// member is noticed after interval + `request_timeout`. etcd answers pings more frequent
    /// than its `--grpc-keepalive-min-time` (5 s by default), or any ping on an idle
    /// connection, with GOAWAY "too_many_pings", so this stays at 5 s or more.
    pub keep_alive: Duration,
    /// TLS to every member (all endpoints `https://`); plain TCP when absent.
    pub tls: Option<EtcdTls>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            keep_alive: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// etcd, reached through every given endpoint (etcd-client balances and fails over).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// TLS without a client certificate: a server that wants one (`--client-cert-auth`)
    /// mostly just closes the connection, so failures get a hint.
    anonymous_tls: bool,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EtcdStore")
    }
}

/// gRPC codes that mean the request itself is wrong (etcd's "too many operations in txn
/// request" is INVALID_ARGUMENT): INVALID_ARGUMENT, PERMISSION_DENIED, FAILED_PRECONDITION,
/// OUT_OF_RANGE, UNIMPLEMENTED, UNAUTHENTICATED. Everything else may pass with time.
const REFUSAL_CODES: [i32; 6] = [3, 7, 9, 11, 12, 16];

fn failure(e: etcd_client::Error) -> StoreError {
    if let Some(tls) = tls_failure(&e) {
        // A certificate or protocol failure does not pass with time: say so at once.
        return StoreError::Tls(TlsError::Handshake(explain(tls)));
    }
    match &e {
        etcd_client::Error::GRpcStatus(s) if REFUSAL_CODES.contains(&(s.code() as i32)) => {
            StoreError::Refused(e.to_string())
        }
        etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => {
            StoreError::Refused(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// What a person should check for a failed handshake.
fn explain(e: &rustls::Error) -> String {
    use rustls::CertificateError as Cert;
    match e {
        rustls::Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => {
            format!("etcd's certificate does not verify with the CA file given: {e}")
        }
        rustls::Error::InvalidCertificate(
            Cert::NotValidForName | Cert::NotValidForNameContext { .. },
        ) => format!(
            "etcd's certificate does not name the host connected to: {e} (a server name override?)"
        ),
        rustls::Error::InvalidCertificate(_) => format!("etcd's certificate was rejected: {e}"),
        rustls::Error::AlertReceived(_) => format!(
            "etcd refused this client: {e} (no client certificate, or one its CA did not sign?)"
        ),
        _ => e.to_string(),
    }
}

/// The TLS error under a failed request, if that is why it failed: the server's certificate
/// did not verify, the server refused ours (an alert), or the peer does not speak TLS.
fn tls_failure(e: &etcd_client::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match e {
        etcd_client::Error::GRpcStatus(s) => Some(s),
        etcd_client::Error::TransportError(t) => Some(t),
        etcd_client::Error::IoError(io) => Some(io),
        _ => None,
    };
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error carries rustls' error inside without exposing it as its source.
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        cause = c.source();
    }
    None
}

impl EtcdStore {
    /// Connects lazily to `endpoints` (`http://host:port`, or `https://` with `opts.tls`);
    /// fails only on bad arguments, so a TLS handshake failure shows on the first request.
    pub async fn connect(endpoints: &[String], opts: &StoreOptions) -> Result<Self, StoreError> {
        let options = ConnectOptions::new()
            .with_timeout(opts.request_timeout)
            .with_connect_timeout(opts.connect_timeout)
            .with_keep_alive(opts.keep_alive, opts.request_timeout)
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        let options = secure(options, endpoints, opts.tls.as_ref())?;
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(failure)?;
        Ok(EtcdStore {
            client,
            anonymous_tls: opts
                .tls
                .as_ref()
                .is_some_and(|t| !t.has_client_certificate()),
        })
    }

    fn failure(&self, e: etcd_client::Error) -> StoreError {
        match failure(e) {
            StoreError::Unavailable(msg) if self.anonymous_tls => StoreError::Unavailable(format!(
                "{msg} (no client certificate is configured: does etcd require one?)"
            )),
            other => other,
        }
    }

    /// Every key under `prefix` at one revision, however many (read in pages, see
    /// [`list_prefix`]); returns the entries in key order and that revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Entry>, i64), StoreError> {
        let listing = list_prefix(&self.client, prefix)
            .await
            .map_err(|e| self.failure(e))?;
        Ok((listing.kvs.iter().map(entry).collect(), listing.revision))
    }

    /// The underlying client, for what IPAM does not wrap (leases, watches).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn read_op(r: &Read) -> TxnOp {
    match r {
        Read::Key(k) => TxnOp::get(k.as_str(), None),
        Read::Prefix(p) => TxnOp::get(p.as_str(), Some(GetOptions::new().with_prefix())),
        Read::PrefixKeys(p) => TxnOp::get(
            p.as_str(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ),
    }
}

fn entry(kv: &KeyValue) -> Entry {
    Entry {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    }
}

fn entries(responses: Vec<TxnOpResponse>) -> Vec<Vec<Entry>> {
    responses
        .into_iter()
        .map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().iter().map(entry).collect(),
            _ => Vec::new(),
        })
        .collect()
}

impl EtcdStore {
    /// The reads in transactions: etcd refuses transactions of more than 128 operations
    /// (`--max-txn-ops`), so longer read lists go in chunks: the first 128 reads share one
    /// revision, which is what the callers that need one (the world view, snapshots) rely on;
    /// the rest are per-key reads.
    async fn read_in_txns(
        &self,
        reads: &[Read],
    ) -> Result<(Vec<Vec<Entry>>, i64), etcd_client::Error> {
        let mut out = Vec::with_capacity(reads.len());
        let mut first_rev = None;
        for chunk in reads.chunks(MAX_TXN_OPS) {
            let ops: Vec<TxnOp> = chunk.iter().map(read_op).collect();
            let resp = self
                .client
                .kv_client()
                .txn(etcd_client::Txn::new().and_then(ops))
                .await?;
            first_rev.get_or_insert(resp.header().map(|h| h.revision()).unwrap_or(0));
            out.extend(entries(resp.op_responses()));
        }
        Ok((out, first_rev.unwrap_or(0)))
    }

    /// The reads one by one, prefixes in pages, all at the first read's revision: for reads
    /// whose answers pass the 4 MiB of one reply together.
    async fn read_in_pages(
        &self,
        reads: &[Read],
    ) -> Result<(Vec<Vec<Entry>>, i64), etcd_client::Error> {
        let mut out = Vec::with_capacity(reads.len());
        let mut revision = 0;
        for read in reads {
            let (kvs, at) = match read {
                Read::Key(k) => {
                    let mut reply = self
                        .client
                        .kv_client()
                        .get(k.as_str(), Some(GetOptions::new().with_revision(revision)))
                        .await?;
                    let at = reply.header().map_or(0, |h| h.revision());
                    (reply.take_kvs(), at)
                }
                Read::Prefix(p) | Read::PrefixKeys(p) => {
                    let keys_only = matches!(read, Read::PrefixKeys(_));
                    let listing = list_at(&self.client, p, revision, keys_only).await?;
                    (listing.kvs, listing.revision)
                }
            };
            if revision == 0 {
                revision = at;
            }
            out.push(kvs.iter().map(entry).collect());
        }
        Ok((out, revision))
    }
}

impl Store for EtcdStore {
    /// In transactions (one round trip for up to 128 reads); when the answers do not fit one
    /// reply, again one by one in pages, at one revision all the same.
    async fn read(&self, reads: Vec<Read>) -> Result<(Vec<Vec<Entry>>, i64), StoreError> {
        match self.read_in_txns(&reads).await {
            Err(e) if reply_too_large(&e) => self.read_in_pages(&reads).await,
            done => done,
        }
        .map_err(|e| self.failure(e))
    }

    async fn txn(&self, txn: Txn) -> Result<Outcome, StoreError> {
        let compares: Vec<Compare> = txn
            .guards
            .iter()
            .map(|g| match g {
                Guard::Revision(k, 0) => Compare::create_revision(k.as_str(), CompareOp::Equal, 0),
                Guard::Revision(k, rev) => {
                    Compare::mod_revision(k.as_str(), CompareOp::Equal, *rev)
                }
                Guard::PrefixUnchangedSince(p, rev) => {
                    Compare::mod_revision(p.as_str(), CompareOp::Less, rev + 1).with_prefix()
                }
            })
            .collect();
        let writes: Vec<TxnOp> = txn
            .writes
            .iter()
            .map(|w| match w {
                Write::Put(k, v) => TxnOp::put(k.as_str(), v.clone(), None),
                Write::Delete(k) => TxnOp::delete(k.as_str(), None),
            })
            .collect();
        let reject: Vec<TxnOp> = txn.on_reject.iter().map(read_op).collect();
        let resp = self
            .client
            .kv_client()
            .txn(
                etcd_client::Txn::new()
                    .when(compares)
                    .and_then(writes)
                    .or_else(reject),
            )
            .await
            .map_err(|e| self.failure(e))?;
        if resp.succeeded() {
            Ok(Outcome::Applied(
                resp.header().map(|h| h.revision()).unwrap_or(0),
            ))
        } else {
            Ok(Outcome::Rejected(entries(resp.op_responses())))
        }
    }

    async fn put_with_lease(
        &self,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<(), StoreError> {
        let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        self.client
            .kv_client()
            .put(key, value, opts)
            .await
            .map(|_| ())
            .map_err(|e| self.failure(e))
    }
}
