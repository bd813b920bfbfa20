//! The shared state behind every gRPC service: the desired state, its store, the published
//! snapshot, the stats source and the watch channel. See the module docs of
//! [`crate::server`] for the change recipe.

use super::stats::{BackendSums, Baselines, ServiceSums, StatsSource, WorkerView};
use crate::compile::{compile_with_health, CompileError};
use crate::error::{ApiError, Violations};
use crate::health::HealthTable;
use crate::state::{DesiredState, StoredService};
use crate::store::StateStore;
use arc_swap::ArcSwap;
use dataplane::snapshot::SnapshotHandle;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::{broadcast, watch};
use tonic::Status;

/// Versions the daemon reports in `GetStatus` and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct BuildInfo {
    pub version: String,
    pub git_revision: String,
    pub dpdk_version: String,
}

/// How the controller is set up.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Port names; `ports[i]` is DPDK port index `i` in the snapshot.
    pub ports: Vec<String>,
    /// Capacity of the workers' per-service counter arrays.
    pub service_counter_slots: u32,
    /// Capacity of the workers' per-backend counter arrays.
    pub backend_counter_slots: u32,
    pub build: BuildInfo,
    /// Watch batches buffered per watcher before a slow one is disconnected.
    pub watch_buffer: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            ports: Vec::new(),
            service_counter_slots: crate::limits::MAX_SERVICES as u32,
            backend_counter_slots: crate::limits::MAX_BACKENDS_TOTAL as u32,
            build: BuildInfo::default(),
            watch_buffer: 1024,
        }
    }
}

/// Services that changed in one accepted revision: `(before, after)`, by name.
#[derive(Debug)]
pub(crate) struct WatchBatch {
    pub revision: u64,
    pub changes: Vec<(Option<StoredService>, Option<StoredService>)>,
}

/// The control plane of one daemon. Cheap to clone (shared).
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("revision", &self.inner.published.load().revision())
            .field("ports", &self.inner.config.ports)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    /// The writers' lock; holds the current state.
    state: tokio::sync::Mutex<Arc<DesiredState>>,
    /// The current state for readers (swapped under `state`'s lock).
    published: ArcSwap<DesiredState>,
    store: Arc<StateStore>,
    snapshots: Arc<SnapshotHandle>,
    pub(crate) stats: Arc<dyn StatsSource>,
    baselines: Mutex<Baselines>,
    events: broadcast::Sender<Arc<WatchBatch>>,
    shutdown: watch::Sender<bool>,
    pub(crate) config: ControllerConfig,
    pub(crate) started_at: SystemTime,
    pub(crate) started: Instant,
    /// Backend health from the checker: DOWN backends are compiled out of selection.
    health: Arc<HealthTable>,
}

impl Controller {
    /// A controller over `state` (as loaded from `store`), whose compiled snapshot `snapshots`
    /// already publishes.
    pub fn new(
        store: StateStore,
        state: DesiredState,
        snapshots: Arc<SnapshotHandle>,
        stats: Arc<dyn StatsSource>,
        config: ControllerConfig,
    ) -> Controller {
        let state = Arc::new(state);
        let (events, _) = broadcast::channel(config.watch_buffer.max(1));
        let (shutdown, _) = watch::channel(false);
        Controller {
            inner: Arc::new(Inner {
                state: tokio::sync::Mutex::new(Arc::clone(&state)),
                published: ArcSwap::new(state),
                store: Arc::new(store),
                snapshots,
                stats,
                baselines: Mutex::new(Baselines::default()),
                events,
                shutdown,
                config,
                started_at: SystemTime::now(),
                started: Instant::now(),
                health: Arc::new(HealthTable::new()),
            }),
        }
    }

    /// The current desired state (a consistent, immutable view).
    pub fn state(&self) -> Arc<DesiredState> {
        self.inner.published.load_full()
    }

    /// The generation of the snapshot the workers run.
    pub fn snapshot_generation(&self) -> u64 {
        self.inner.snapshots.load().generation()
    }

    /// Backend health as the checker ([`crate::health::checker`]) reports it.
    pub fn health(&self) -> &Arc<HealthTable> {
        &self.inner.health
    }

    /// Recompiles the current state with the current backend health and publishes it (the
    /// same revision, the next generation): called after health transitions.
    pub async fn republish_health(&self) -> Result<u64, Status> {
        let guard = self.inner.state.lock().await;
        let state = Arc::clone(&guard);
        let inner = Arc::clone(&self.inner);
        let snapshot = tokio::task::spawn_blocking(move || {
            let previous = inner.snapshots.load();
            compile_with_health(&state, &inner.config.ports, Some(&previous), &inner.health)
                .map_err(compile_status)
        })
        .await
        .map_err(|e| Status::internal(format!("health republish: worker thread failed: {e}")))??;
        let generation = snapshot.generation();
        self.inner
            .snapshots
            .publish(snapshot)
            .map_err(|e| Status::internal(format!("publishing the snapshot: {e}")))?;
        // The state lock is held until here, so no change publishes in between.
        drop(guard);
        Ok(generation)
    }

    pub fn stats_source(&self) -> &Arc<dyn StatsSource> {
        &self.inner.stats
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.inner.config
    }

    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    /// Ends open streams (watches): called when the daemon stops serving.
    pub fn shut_down(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// The current state and a receiver of every later change, consistently (no change is
    /// missed or seen twice).
    pub(crate) async fn subscribe(
        &self,
    ) -> (Arc<DesiredState>, broadcast::Receiver<Arc<WatchBatch>>) {
        let guard = self.inner.state.lock().await;
        (Arc::clone(&guard), self.inner.events.subscribe())
    }

    pub(crate) fn service_counters(&self, workers: &[WorkerView], slot: u32) -> ServiceSums {
        self.baselines().service(workers, slot)
    }

    pub(crate) fn backend_counters(&self, workers: &[WorkerView], slot: u32) -> BackendSums {
        self.baselines().backend(workers, slot)
    }

    fn baselines(&self) -> std::sync::MutexGuard<'_, Baselines> {
        self.inner
            .baselines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` following the recipe (clone, change, compile, persist, swap, publish,
    /// notify). `change` runs on a blocking thread with the state lock held; on `Err` nothing
    /// changed.
    pub(crate) async fn mutate<T, F>(&self, what: &'static str, change: F) -> Result<T, Status>
    where
        F: FnOnce(&mut DesiredState) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let mut guard = self.inner.state.lock().await;
        let before = Arc::clone(&guard);
        let inner = Arc::clone(&self.inner);
        let base = Arc::clone(&before);
        let outcome = tokio::task::spawn_blocking(move || -> Result<_, Status> {
            let mut next = (*base).clone();
            let value = change(&mut next)?;
            if next.revision() == base.revision() {
                return Ok((value, None));
            }
            inner.check_capacity(&next)?;
            let previous = inner.snapshots.load();
            let snapshot =
                compile_with_health(&next, &inner.config.ports, Some(&previous), &inner.health)
                    .map_err(compile_status)?;
            inner.store.save(&next).map_err(|e| {
                tracing::error!(error = %e, "persisting the desired state failed");
                Status::internal(format!("the change was not applied: {e}"))
            })?;
            Ok((value, Some((next, snapshot))))
        })
        .await
        .map_err(|e| Status::internal(format!("{what}: worker thread failed: {e}")))??;

        let (value, next) = outcome;
        let Some((next, snapshot)) = next else {
            return Ok(value);
        };
        let next = Arc::new(next);
        *guard = Arc::clone(&next);
        self.inner.published.store(Arc::clone(&next));
        let generation = snapshot.generation();
        if let Err(e) = self.inner.snapshots.publish(snapshot) {
            // Writers are serialised by the state lock and revisions only grow, so this means
            // something else published: keep the state (it is persisted) and say so loudly.
            tracing::error!(error = %e, "publishing the snapshot failed");
        }
        let changes = diff_services(before.services(), next.services());
        self.reset_baselines(&changes);
        tracing::info!(
            request = what,
            revision = next.revision(),
            generation,
            services_changed = changes.len(),
            "change applied"
        );
        if !changes.is_empty() {
            // No receivers is fine.
            let _ = self.inner.events.send(Arc::new(WatchBatch {
                revision: next.revision(),
                changes,
            }));
        }
        Ok(value)
    }

    /// Records baselines for the counter slots `changes` hand to new objects.
    fn reset_baselines(&self, changes: &[(Option<StoredService>, Option<StoredService>)]) {
        let mut fresh_services = Vec::new();
        let mut fresh_backends = Vec::new();
        for (before, after) in changes {
            let Some(after) = after else { continue };
            if before.as_ref().map(|b| b.id) != Some(after.id) {
                fresh_services.push(after.id);
            }
            let old: HashSet<u32> = before
                .iter()
                .flat_map(|b| b.backend_ids.iter().copied())
                .collect();
            fresh_backends.extend(after.backend_ids.iter().filter(|id| !old.contains(id)));
        }
        if fresh_services.is_empty() && fresh_backends.is_empty() {
            return;
        }
        let workers = self.inner.stats.workers();
        let mut baselines = self.baselines();
        for slot in fresh_services {
            baselines.reset_service(&workers, slot);
        }
        for slot in fresh_backends {
            baselines.reset_backend(&workers, slot);
        }
    }
}

impl Inner {
    fn check_capacity(&self, state: &DesiredState) -> Result<(), Status> {
        if state.service_slot_bound() > self.config.service_counter_slots {
            return Err(ApiError::ResourceExhausted(format!(
                "the dataplane has counter slots for {} services (sluiced setting \
                 dataplane.service_counter_slots)",
                self.config.service_counter_slots
            ))
            .into());
        }
        if state.backend_slot_bound() > self.config.backend_counter_slots {
            return Err(ApiError::ResourceExhausted(format!(
                "the dataplane has counter slots for {} backends in all (sluiced setting \
                 dataplane.backend_counter_slots)",
                self.config.backend_counter_slots
            ))
            .into());
        }
        Ok(())
    }
}

fn compile_status(error: CompileError) -> Status {
    match &error {
        CompileError::UnknownPort { field, port } => ApiError::Invalid(Violations::one(
            field.clone(),
            format_args!("no port named {port:?} in the daemon's configuration"),
        ))
        .into(),
        CompileError::UnknownSnatPool { .. } => Status::failed_precondition(error.to_string()),
        CompileError::Dataplane { .. } => ApiError::Invalid(Violations::one(
            "dataplane",
            format_args!("the dataplane refused the change: {error}"),
        ))
        .into(),
    }
}

/// Services whose resource_version differs between `before` and `after`, by name.
pub(crate) fn diff_services(
    before: &BTreeMap<String, StoredService>,
    after: &BTreeMap<String, StoredService>,
) -> Vec<(Option<StoredService>, Option<StoredService>)> {
    let mut changes = Vec::new();
    let mut old = before.iter().peekable();
    let mut new = after.iter().peekable();
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some((_, o)), None) => {
                changes.push((Some((*o).clone()), None));
                old.next();
            }
            (None, Some((_, n))) => {
                changes.push((None, Some((*n).clone())));
                new.next();
            }
            (Some((old_name, o)), Some((new_name, n))) => match old_name.cmp(new_name) {
                std::cmp::Ordering::Less => {
                    changes.push((Some((*o).clone()), None));
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    changes.push((None, Some((*n).clone())));
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if o.meta != n.meta {
                        changes.push((Some((*o).clone()), Some((*n).clone())));
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    changes
}
