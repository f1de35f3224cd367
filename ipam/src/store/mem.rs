//! An in-memory [`Store`] with etcd's revision semantics, for property tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Entry, Guard, Outcome, Read, Store, StoreError, Txn, Write};

#[derive(Debug, Default)]
struct State {
    revision: i64,
    // key → (value, mod_revision)
    kv: BTreeMap<String, (Vec<u8>, i64)>,
}

impl State {
    fn read(&self, r: &Read) -> Vec<Entry> {
        let entry = |(k, (v, rev)): (&String, &(Vec<u8>, i64)), with_value: bool| Entry {
            key: k.clone(),
            value: if with_value { v.clone() } else { Vec::new() },
            mod_revision: *rev,
        };
        match r {
            Read::Key(k) => self
                .kv
                .get_key_value(k)
                .map(|kv| entry(kv, true))
                .into_iter()
                .collect(),
            Read::Prefix(p) | Read::PrefixKeys(p) => self
                .kv
                .range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(p.as_str()))
                .map(|kv| entry(kv, matches!(r, Read::Prefix(_))))
                .collect(),
        }
    }

    fn holds(&self, g: &Guard) -> bool {
        match g {
            Guard::Revision(k, rev) => self.kv.get(k).map_or(0, |(_, r)| *r) == *rev,
            Guard::PrefixUnchangedSince(p, rev) => self
                .kv
                .range(p.clone()..)
                .take_while(|(k, _)| k.starts_with(p.as_str()))
                .all(|(_, (_, r))| *r <= *rev),
        }
    }
}

/// A map with a revision counter behind a mutex; every call is atomic, like an etcd txn.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<State>,
}

impl MemStore {
    /// An empty store at revision 0.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))?;
        Ok(f(&mut s))
    }
}

impl Store for MemStore {
    async fn read(&self, reads: Vec<Read>) -> Result<(Vec<Vec<Entry>>, i64), StoreError> {
        self.with(|s| (reads.iter().map(|r| s.read(r)).collect(), s.revision))
    }

    async fn txn(&self, txn: Txn) -> Result<Outcome, StoreError> {
        self.with(|s| {
            if !txn.guards.iter().all(|g| s.holds(g)) {
                return Outcome::Rejected(txn.on_reject.iter().map(|r| s.read(r)).collect());
            }
            if !txn.writes.is_empty() {
                s.revision += 1;
            }
            let rev = s.revision;
            for w in txn.writes {
                match w {
                    Write::Put(k, v) => {
                        s.kv.insert(k, (v, rev));
                    }
                    Write::Delete(k) => {
                        s.kv.remove(&k);
                    }
                }
            }
            Outcome::Applied(rev)
        })
    }

    async fn put_with_lease(
        &self,
        key: String,
        value: Vec<u8>,
        _lease: i64,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.revision += 1;
            let rev = s.revision;
            s.kv.insert(key, (value, rev));
        })
    }
}
