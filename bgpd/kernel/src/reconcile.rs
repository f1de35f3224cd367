//! The reconcile loop: an async task that keeps our routes in the kernel at the wanted set.
//!
//! ```text
//!   daemon ──WantedUpdate──▶ ┌──────────────┐ ──batched writes──▶ kernel FIB
//!                            │ reconcile    │ ◀──dump (startup, link change, repair, timer)
//!   routectl ◀──FibStatus─── │ task         │ ◀──route/link notifications (FibMonitor)
//!                            └──────────────┘
//! ```
//! Updates are written through at once (only what changed); notifications are judged against
//! the wanted set, and anything that disagrees (our route deleted or altered, a link change,
//! lost notifications) schedules a full reconcile shortly after. Blocking netlink work runs on
//! tokio's blocking pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{FibConfig, default_metric};
use crate::diff::{Change, Stale, plan};
use crate::error::{Error, Refusal, RouteFailure};
use crate::fib::{Applied, Fib};
use crate::monitor::{FibEvent, FibMonitor};
use crate::route::{KernelRoute, Prefix, Route, RouteSet};

/// A change to the wanted set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WantedUpdate {
    /// The whole wanted set changes (then the kernel is listed and reconciled).
    Replace(RouteSet),
    /// Add or change the route to its prefix.
    Upsert(Route),
    /// Stop wanting the route to this prefix.
    Withdraw(Prefix),
}

/// How the kernel compares with the wanted set, for `routectl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FibStatus {
    /// Every wanted route is in the kernel as wanted and the last operation succeeded.
    pub in_sync: bool,
    /// Routes wanted.
    pub wanted: usize,
    /// Wanted routes in the kernel.
    pub installed: usize,
    /// Wanted routes the kernel refused, each with its reason (a down link is retried when links
    /// change).
    pub failures: Vec<RouteFailure>,
    /// Wanted routes held back because another protocol's route holds their slot.
    pub conflicts: Vec<Route>,
    /// The last whole-operation error (socket, privileges), cleared by a clean reconcile.
    pub last_error: Option<String>,
    /// Full reconciles done.
    pub reconciles: u64,
    /// When the last full reconcile finished.
    pub last_reconcile: Option<SystemTime>,
    /// Route messages written since start.
    pub writes: u64,
}

/// Timing of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Full reconcile this often even without events (covers lost notifications).
    pub resync_interval: Duration,
    /// Wait this long after a disagreeing event before reconciling (bursts coalesce).
    pub debounce: Duration,
    /// Wait this long before retrying after a whole-operation error.
    pub retry: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> ReconcileOptions {
        ReconcileOptions {
            resync_interval: Duration::from_secs(60),
            debounce: Duration::from_millis(50),
            retry: Duration::from_secs(1),
        }
    }
}

/// The daemon's end of the reconcile task.
#[derive(Debug, Clone)]
pub struct FibHandle {
    updates: mpsc::Sender<WantedUpdate>,
    status: watch::Receiver<FibStatus>,
}

impl FibHandle {
    /// Hands `update` to the task.
    pub async fn update(&self, update: WantedUpdate) -> Result<(), Error> {
        self.updates.send(update).await.map_err(|_| Error::Stopped)
    }

    /// The latest status.
    pub fn status(&self) -> FibStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every new status.
    pub fn watch(&self) -> watch::Receiver<FibStatus> {
        self.status.clone()
    }
}

/// Starts the task: it reconciles the kernel toward `initial` at once (routes already right are
/// not written, so a restart leaves the FIB untouched), then follows updates and events. It ends
/// when every [`FibHandle`] is dropped, leaving the routes in place for the next start.
pub fn spawn(
    fib: Fib,
    monitor: FibMonitor,
    initial: RouteSet,
    options: ReconcileOptions,
) -> (FibHandle, JoinHandle<()>) {
    let (updates_tx, updates_rx) = mpsc::channel(1024);
    let (status_tx, status_rx) = watch::channel(FibStatus::default());
    let task = Reconciler {
        config: *fib.config(),
        fib: Some(fib),
        wanted: Arc::new(initial),
        occupied: HashSet::new(),
        failures: BTreeMap::new(),
        conflicts: Vec::new(),
        links_up: HashMap::new(),
        last_error: None,
        reconciles: 0,
        last_reconcile: None,
        dirty_at: None,
        options,
        status: status_tx,
    };
    let join = tokio::spawn(task.run(monitor, updates_rx));
    (
        FibHandle {
            updates: updates_tx,
            status: status_rx,
        },
        join,
    )
}

/// Most updates taken from the channel into one batch of writes.
const MAX_UPDATES_PER_BATCH: usize = 65_536;

struct Reconciler {
    config: FibConfig,
    /// `None` only while lent to the blocking pool.
    fib: Option<Fib>,
    wanted: Arc<RouteSet>,
    /// Prefixes of our table where another protocol's route sits at our metric.
    occupied: HashSet<Prefix>,
    failures: BTreeMap<Prefix, RouteFailure>,
    conflicts: Vec<Route>,
    /// Last seen administrative state of links, to tell real changes from repeats.
    links_up: HashMap<u32, bool>,
    last_error: Option<String>,
    reconciles: u64,
    last_reconcile: Option<SystemTime>,
    /// When a full reconcile is due, if one is.
    dirty_at: Option<Instant>,
    options: ReconcileOptions,
    status: watch::Sender<FibStatus>,
}

impl Reconciler {
    async fn run(mut self, mut monitor: FibMonitor, mut updates: mpsc::Receiver<WantedUpdate>) {
        self.reconcile().await;
        let mut resync = tokio::time::interval(self.options.resync_interval);
        // A busy loop that missed ticks does one resync, not a burst of them.
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        while self.fib.is_some() {
            let due = self.dirty_at;
            tokio::select! {
                update = updates.recv() => {
                    let Some(update) = update else { break };
                    let mut batch = vec![update];
                    while batch.len() < MAX_UPDATES_PER_BATCH {
                        match updates.try_recv() {
                            Ok(update) => batch.push(update),
                            Err(_) => break,
                        }
                    }
                    self.take_updates(batch).await;
                }
                events = monitor.next() => match events {
                    Ok(events) => events.into_iter().for_each(|e| self.judge(e)),
                    Err(e) => {
                        tracing::warn!(error = %e, "route monitor");
                        self.last_error = Some(format!("route monitor: {e}"));
                        tokio::time::sleep(self.options.retry).await;
                        self.mark_dirty(self.options.retry);
                    }
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.reconcile().await;
                }
                _ = resync.tick() => self.reconcile().await,
            }
        }
    }

    /// Lists the kernel, diffs, writes the difference.
    async fn reconcile(&mut self) {
        self.dirty_at = None;
        let wanted = Arc::clone(&self.wanted);
        let config = self.config;
        let outcome = self
            .with_fib(move |fib| {
                let kernel = fib.dump()?;
                let plan = plan(&kernel, &wanted, &config);
                let applied = fib.apply(&plan.changes)?;
                Ok((occupied_slots(&kernel, &config), plan.conflicts, applied))
            })
            .await;
        self.reconciles += 1;
        self.last_reconcile = Some(SystemTime::now());
        match outcome {
            Some(Ok((occupied, conflicts, applied))) => {
                self.occupied = occupied;
                self.conflicts = conflicts;
                self.failures.clear();
                self.record(applied);
                self.last_error = None;
            }
            Some(Err(e)) => self.fail(e),
            None => {}
        }
        self.publish();
    }

    /// Applies updates to the wanted set and writes what they change.
    async fn take_updates(&mut self, batch: Vec<WantedUpdate>) {
        let mut writes: BTreeMap<Prefix, Change> = BTreeMap::new();
        let mut full = false;
        let wanted = Arc::make_mut(&mut self.wanted);
        for update in batch {
            match update {
                WantedUpdate::Replace(set) => {
                    *wanted = set;
                    full = true;
                }
                WantedUpdate::Upsert(route) => {
                    let prefix = route.prefix();
                    let old = wanted.insert(route.clone());
                    if old.as_ref() == Some(route.kind()) {
                        continue;
                    }
                    // A prefix new to us is added exclusively, so nothing that appeared there
                    // is overwritten; one we already hold (or are about to remove) is replaced.
                    let change = match (writes.get(&prefix), old) {
                        (Some(Change::Remove(_)), _) => Change::Replace(route),
                        (Some(Change::Create(_)), _) | (None, None) => Change::Create(route),
                        _ => Change::Replace(route),
                    };
                    writes.insert(prefix, change);
                }
                WantedUpdate::Withdraw(prefix) => {
                    if wanted.remove(&prefix).is_some() {
                        let metric = default_metric(prefix.is_ipv6());
                        writes.insert(prefix, Change::Remove(Stale { prefix, metric }));
                    }
                }
            }
        }
        if full {
            return self.reconcile().await;
        }
        // Withdrawn or changed routes are no longer failing or conflicting as they were.
        for prefix in writes.keys() {
            self.failures.remove(prefix);
        }
        self.conflicts.retain(|r| !writes.contains_key(&r.prefix()));
        // Never overwrite another protocol's route: a wanted route in its slot waits.
        let (held, changes): (Vec<Change>, Vec<Change>) =
            writes.into_values().partition(|c| match c {
                Change::Create(r) | Change::Replace(r) => self.occupied.contains(&r.prefix()),
                Change::Remove(_) => false,
            });
        self.conflicts
            .extend(held.into_iter().filter_map(|c| match c {
                Change::Create(route) | Change::Replace(route) => Some(route),
                Change::Remove(_) => None,
            }));
        if !changes.is_empty() {
            match self.with_fib(move |fib| fib.apply(&changes)).await {
                Some(Ok(applied)) => self.record(applied),
                Some(Err(e)) => self.fail(e),
                None => {}
            }
        }
        self.publish();
    }

    /// Decides whether a notification disagrees with what we want.
    fn judge(&mut self, event: FibEvent) {
        match event {
            FibEvent::Route { route, deleted } => {
                if route.table != self.config.table.get() {
                    return;
                }
                let at_our_metric = route.metric == default_metric(route.prefix.is_ipv6());
                let wanted = self.wanted.get(&route.prefix);
                if route.protocol != self.config.protocol.get() {
                    if at_our_metric {
                        if deleted {
                            self.occupied.remove(&route.prefix);
                        } else {
                            self.occupied.insert(route.prefix);
                        }
                    }
                    if wanted.is_some() {
                        self.mark_dirty(self.options.debounce);
                    }
                    return;
                }
                let agrees = match (deleted, wanted) {
                    (true, wanted) => wanted.is_none(),
                    (false, Some(kind)) => at_our_metric && matches_kind(kind, &route),
                    (false, None) => false,
                };
                if !agrees {
                    self.mark_dirty(self.options.debounce);
                }
            }
            FibEvent::Link {
                ifindex,
                up,
                deleted,
            } => {
                let was_up = if deleted {
                    self.links_up.remove(&ifindex)
                } else {
                    self.links_up.insert(ifindex, up)
                };
                // The kernel drops the routes of a link going down or away without notifying
                // each; a link coming up may let refused routes in. Repeats change nothing.
                let went_down = (deleted || !up) && was_up != Some(false);
                let came_up = up && was_up != Some(true) && !self.failures.is_empty();
                if went_down || came_up {
                    self.mark_dirty(self.options.debounce);
                }
            }
            FibEvent::Overrun => self.mark_dirty(self.options.debounce),
        }
    }

    fn mark_dirty(&mut self, after: Duration) {
        let at = Instant::now() + after;
        self.dirty_at = Some(self.dirty_at.map_or(at, |due| due.min(at)));
    }

    fn record(&mut self, applied: Applied) {
        for failure in applied.failures {
            if failure.cause == Refusal::Occupied {
                // An add that found its slot taken: often our own identical route, installed
                // by the endpoint plumbing before its wanted update arrived. The full look
                // this schedules tells that from a foreign route (a conflict), so it is not
                // a failure yet.
                tracing::debug!(%failure, "slot taken; looking again");
                self.mark_dirty(self.options.debounce);
                continue;
            }
            match &failure.change {
                Change::Create(route) | Change::Replace(route) => {
                    tracing::warn!(%failure, "route not installed");
                    self.failures.insert(route.prefix(), failure);
                }
                // A stale route we could not delete does not make a wanted one missing.
                Change::Remove(_) => tracing::warn!(%failure, "stale route not removed"),
            }
        }
    }

    fn fail(&mut self, error: Error) {
        tracing::warn!(%error, "reconcile");
        self.last_error = Some(error.to_string());
        self.mark_dirty(self.options.retry);
    }

    fn publish(&self) {
        let wanted = self.wanted.len();
        let missing = self.failures.len() + self.conflicts.len();
        let status = FibStatus {
            in_sync: missing == 0 && self.last_error.is_none(),
            wanted,
            installed: wanted.saturating_sub(missing),
            failures: self.failures.values().cloned().collect(),
            conflicts: self.conflicts.clone(),
            last_error: self.last_error.clone(),
            reconciles: self.reconciles,
            last_reconcile: self.last_reconcile,
            writes: self.fib.as_ref().map_or(0, Fib::writes),
        };
        self.status.send_replace(status);
    }

    /// Runs `work` on the blocking pool with the socket lent to it.
    async fn with_fib<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut Fib) -> T + Send + 'static,
    ) -> Option<T> {
        let mut fib = self.fib.take()?;
        match tokio::task::spawn_blocking(move || {
            let out = work(&mut fib);
            (fib, out)
        })
        .await
        {
            Ok((fib, out)) => {
                self.fib = Some(fib);
                Some(out)
            }
            Err(e) => {
                self.last_error = Some(format!("kernel worker failed: {e}"));
                self.publish();
                None
            }
        }
    }
}

fn matches_kind(wanted: &crate::route::RouteKind, route: &KernelRoute) -> bool {
    route
        .kind
        .as_ref()
        .is_some_and(|kind| wanted.is_satisfied_by(kind))
}

/// Prefixes where another protocol's route sits at the metric ours would take.
fn occupied_slots(kernel: &[KernelRoute], config: &FibConfig) -> HashSet<Prefix> {
    kernel
        .iter()
        .filter(|r| {
            r.table == config.table.get()
                && r.protocol != config.protocol.get()
                && r.metric == default_metric(r.prefix.is_ipv6())
        })
        .map(|r| r.prefix)
        .collect()
}
