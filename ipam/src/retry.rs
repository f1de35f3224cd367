//! Retries with jittered exponential backoff, within a budget of conflicts and of outage time.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::{IpamError, Result};
use crate::store::StoreError;

/// How hard an operation tries before it reports failure.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Rejected transactions (lost races) before `ConflictBudgetExceeded`.
    pub max_conflicts: u32,
    /// How long an unreachable etcd is retried before `DatastoreUnavailable`.
    pub unavailable_budget: Duration,
    /// First backoff cap; it doubles per retry.
    pub backoff_base: Duration,
    /// Largest backoff cap.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_conflicts: 40,
            unavailable_budget: Duration::from_secs(10),
            backoff_base: Duration::from_millis(2),
            backoff_max: Duration::from_millis(200),
        }
    }
}

/// The retry state of one operation.
#[derive(Debug)]
pub(crate) struct Retry<'a> {
    policy: &'a RetryPolicy,
    what: &'static str,
    conflicts: u32,
    outage_since: Option<Instant>,
    outages: u32,
    waits: u32,
}

impl<'a> Retry<'a> {
    /// Fresh state for the operation `what`.
    pub fn new(policy: &'a RetryPolicy, what: &'static str) -> Retry<'a> {
        Retry {
            policy,
            what,
            conflicts: 0,
            outage_since: None,
            outages: 0,
            waits: 0,
        }
    }

    /// A transaction lost a race: back off, or give up when the budget is spent.
    pub async fn conflict(&mut self) -> Result<()> {
        self.conflicts += 1;
        if self.conflicts > self.policy.max_conflicts {
            return Err(IpamError::ConflictBudgetExceeded {
                what: self.what,
                attempts: self.conflicts,
            });
        }
        // The first retry after a stale cache needs no wait: the rejection carried fresh data.
        if self.conflicts > 1 {
            self.sleep().await;
        }
        Ok(())
    }

    /// etcd did not answer: back off, or give up when the outage outlasts the budget.
    pub async fn unavailable(&mut self, e: StoreError) -> Result<()> {
        let e = match e {
            StoreError::Refused(msg) => {
                return Err(IpamError::DatastoreRefused(format!("{}: {msg}", self.what)));
            }
            StoreError::Tls(e) => return Err(IpamError::Tls(e)),
            StoreError::Unavailable(msg) => msg,
        };
        self.outages += 1;
        let since = *self.outage_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.policy.unavailable_budget {
            return Err(IpamError::DatastoreUnavailable(format!(
                "{} gave up after {:?}: {e}",
                self.what, self.policy.unavailable_budget
            )));
        }
        self.sleep().await;
        Ok(())
    }

    /// How many times etcd did not answer so far. A write sent across an outage may have
    /// applied even though its reply was lost.
    pub fn outages(&self) -> u32 {
        self.outages
    }

    async fn sleep(&mut self) {
        self.waits += 1;
        let d = jitter(self.policy, self.waits);
        tokio::time::sleep(d).await;
    }
}

/// A uniformly random wait up to `base · 2^(n-1)`, capped: spreads retrying writers apart.
fn jitter(p: &RetryPolicy, n: u32) -> Duration {
    let cap = p
        .backoff_base
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
        .min(p.backoff_max);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_its_cap() {
        let p = RetryPolicy::default();
        for n in 1..40 {
            assert!(jitter(&p, n) <= p.backoff_max);
        }
        assert!(jitter(&p, 1) <= p.backoff_base);
    }

    #[tokio::test]
    async fn conflict_budget_is_enforced() {
        let p = RetryPolicy {
            max_conflicts: 3,
            backoff_base: Duration::from_micros(10),
            ..RetryPolicy::default()
        };
        let mut r = Retry::new(&p, "t");
        for _ in 0..3 {
            r.conflict().await.unwrap();
        }
        assert!(matches!(
            r.conflict().await,
            Err(IpamError::ConflictBudgetExceeded { attempts: 4, .. })
        ));
    }
}
