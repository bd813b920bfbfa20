//! The checker: one probe task per checked backend, kept in line with the desired state, and
//! a republisher that recompiles the snapshot when a backend's health changes.
//!
//! The checker looks at the controller's state twice a second (one pointer compare when
//! nothing changed). New backends and services get probes; removed ones lose theirs; a backend
//! whose check settings (or address, port) changed restarts its probe (UNKNOWN again). Probes
//! of unchanged backends keep running, with their state.

use super::{probe, BackendKey, Health, HealthTable};
use crate::server::Controller;
use crate::state::{BackendState, DesiredState, HealthCheck};
use core::net::IpAddr;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// How often the checker looks for changed services.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

/// What one probe task checks.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    check: HealthCheck,
    address: IpAddr,
    port: u16,
}

struct Running {
    target: Target,
    task: JoinHandle<()>,
}

/// The probes the state asks for: every backend of every service with a health check, except
/// REJECT backends (their address is a placeholder that is never contacted).
fn wanted(state: &DesiredState) -> HashMap<BackendKey, Target> {
    let mut wanted = HashMap::new();
    for (name, stored) in state.services() {
        let Some(check) = &stored.spec.health_check else {
            continue;
        };
        for backend in &stored.spec.backends {
            if backend.state == BackendState::Reject {
                continue;
            }
            wanted.insert(
                BackendKey {
                    service: name.clone(),
                    endpoint: backend.endpoint(),
                },
                Target {
                    check: check.clone(),
                    address: backend.address,
                    port: backend.port,
                },
            );
        }
    }
    wanted
}

/// Runs the checker until `shutdown` turns true.
pub async fn run(controller: Controller, mut shutdown: watch::Receiver<bool>) {
    let table = Arc::clone(controller.health());
    let changed = Arc::new(Notify::new());
    let republisher = tokio::spawn(republish(controller.clone(), Arc::clone(&changed)));
    let mut running: HashMap<BackendKey, Running> = HashMap::new();
    let mut seen: Option<Arc<DesiredState>> = None;
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        let state = controller.state();
        if seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &state)) {
            continue;
        }
        if reconcile(&state, &mut running, &table, &changed) {
            changed.notify_one();
        }
        seen = Some(state);
    }
    for (_, probe) in running {
        probe.task.abort();
    }
    republisher.abort();
}

/// Starts and stops probes so they match `state`. Returns whether a DOWN backend stopped being
/// checked (it must come back into the snapshot).
fn reconcile(
    state: &DesiredState,
    running: &mut HashMap<BackendKey, Running>,
    table: &Arc<HealthTable>,
    changed: &Arc<Notify>,
) -> bool {
    let mut wanted = wanted(state);
    let mut released_down = false;
    running.retain(|key, probe| {
        if wanted.get(key) == Some(&probe.target) {
            wanted.remove(key);
            return true;
        }
        probe.task.abort();
        if table.untrack(key) == Some(Health::Down) {
            released_down = true;
        }
        tracing::info!(service = %key.service, backend = %key.endpoint, "health check stopped");
        false
    });
    for (key, target) in wanted {
        if table.track(key.clone(), target.check.rise, target.check.fall) == Some(Health::Down) {
            released_down = true;
        }
        tracing::info!(
            service = %key.service,
            backend = %key.endpoint,
            probe = ?target.check.probe,
            interval_ms = target.check.interval.as_millis() as u64,
            timeout_ms = target.check.timeout.as_millis() as u64,
            rise = target.check.rise,
            fall = target.check.fall,
            "health check started"
        );
        let task = tokio::spawn(probe_loop(
            key.clone(),
            target.clone(),
            Arc::clone(table),
            Arc::clone(changed),
        ));
        running.insert(key, Running { target, task });
    }
    released_down
}

/// Checks one backend every interval, forever (aborted when no longer wanted).
async fn probe_loop(
    key: BackendKey,
    target: Target,
    table: Arc<HealthTable>,
    changed: Arc<Notify>,
) {
    // Spread the first checks of many backends randomly over up to a second, so a large
    // apply does not send every probe at once.
    let spread = target.check.interval.min(Duration::from_secs(1));
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(key.service.as_bytes());
    hasher.write_u16(key.endpoint.port);
    let offset = hasher.finish() % (spread.as_millis() as u64).max(1);
    tokio::time::sleep(Duration::from_millis(offset)).await;
    let mut ticker = tokio::time::interval(target.check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = probe::check(&target.check, target.address, target.port).await;
        if let Err(reason) = &result {
            tracing::debug!(service = %key.service, backend = %key.endpoint, reason, "health check failed");
        }
        let reason = result.as_ref().err().cloned().unwrap_or_default();
        let Some((old, new)) = table.record(&key, result) else {
            continue;
        };
        match new {
            Health::Down => tracing::warn!(
                service = %key.service,
                backend = %key.endpoint,
                from = old.as_str(),
                reason,
                "backend DOWN: no new connections"
            ),
            _ => tracing::info!(
                service = %key.service,
                backend = %key.endpoint,
                from = old.as_str(),
                "backend UP"
            ),
        }
        // UNKNOWN <-> UP changes nothing in the snapshot (both take new flows).
        if old == Health::Down || new == Health::Down {
            changed.notify_one();
        }
    }
}

/// Republishes the snapshot after health transitions (several close together coalesce into
/// one compile).
async fn republish(controller: Controller, changed: Arc<Notify>) {
    loop {
        changed.notified().await;
        match controller.republish_health().await {
            Ok(generation) => tracing::info!(generation, "snapshot republished for backend health"),
            Err(e) => {
                tracing::error!(error = %e, "republishing the snapshot for backend health failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::compile;
    use crate::server::{ControllerConfig, PortView, StatsSource, WorkerView};
    use crate::state::tests::service;
    use crate::state::{BackendSpec, BackendState, Endpoint, Probe};
    use crate::store::StateStore;
    use dataplane::flow::{Addr, Proto};
    use dataplane::snapshot::{self, ServiceKey, SnapshotHandle};
    use std::time::Instant;

    struct NoStats;

    impl StatsSource for NoStats {
        fn workers(&self) -> Vec<WorkerView> {
            Vec::new()
        }
        fn ports(&self) -> Vec<PortView> {
            Vec::new()
        }
    }

    fn backend(address: [u8; 4]) -> BackendSpec {
        BackendSpec {
            address: IpAddr::from(address),
            port: 80,
            weight: 1,
            state: BackendState::Active,
        }
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: not within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        start.elapsed()
    }

    #[test]
    fn reject_backends_are_never_probed() {
        let mut state = DesiredState::with_selection_seed(1);
        let mut spec = service("web", 10);
        let mut reject = backend([127, 0, 0, 9]);
        reject.state = BackendState::Reject;
        spec.backends = vec![backend([127, 0, 0, 1]), reject];
        spec.health_check = Some(HealthCheck {
            probe: Probe::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            rise: 1,
            fall: 1,
            port: None,
        });
        state.apply_service(spec, None).unwrap();
        let wanted = wanted(&state);
        let endpoints: Vec<_> = wanted.keys().map(|k| k.endpoint).collect();
        assert_eq!(endpoints, [backend([127, 0, 0, 1]).endpoint()]);
    }

    /// The checker against real sockets on loopback: 127.0.0.1 listens on the check port,
    /// 127.0.0.2 refuses. The refusing backend goes DOWN, the snapshot is republished with it
    /// out of selection, the metrics show both states; removing the check brings it back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checker_takes_a_failing_backend_out_of_the_snapshot_and_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let check_port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let state = store.load().unwrap();
        let ports = ["port0", "port1"];
        let snapshots = Arc::new(SnapshotHandle::new(compile(&state, &ports, None).unwrap()));
        let controller = Controller::new(
            store,
            state,
            Arc::clone(&snapshots),
            Arc::new(NoStats),
            ControllerConfig {
                ports: ports.map(String::from).to_vec(),
                ..ControllerConfig::default()
            },
        );
        let mut spec = service("web", 10);
        spec.backends = vec![backend([127, 0, 0, 1]), backend([127, 0, 0, 2])];
        spec.health_check = Some(HealthCheck {
            probe: Probe::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(300),
            rise: 1,
            fall: 1,
            port: Some(check_port),
        });
        let key = ServiceKey {
            vip: Addr::from(spec.vip),
            port: spec.port,
            proto: Proto::Tcp,
        };
        let applied = spec.clone();
        controller
            .mutate("test", move |s| s.apply_service(applied, None))
            .await
            .unwrap();
        let revision = controller.state().revision();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let checker = tokio::spawn(run(controller.clone(), shutdown));

        let health = Arc::clone(controller.health());
        let endpoint = |host: u8| Endpoint {
            address: IpAddr::from([127, 0, 0, host]),
            port: 80,
        };
        wait_until("127.0.0.2 DOWN and 127.0.0.1 UP", || {
            health.is_down("web", endpoint(2))
                && health.get("web", endpoint(1)).map(|h| h.health) == Some(Health::Up)
        })
        .await;
        assert_eq!(
            health.get("web", endpoint(2)).unwrap().message,
            "connect: connection refused"
        );
        let states = || -> Vec<snapshot::BackendState> {
            snapshots
                .load()
                .service(&key)
                .unwrap()
                .backends
                .iter()
                .map(|b| b.state)
                .collect()
        };
        wait_until("the snapshot excludes 127.0.0.2", || {
            states()
                == [
                    snapshot::BackendState::Active,
                    snapshot::BackendState::Draining,
                ]
        })
        .await;
        // Same revision, a newer generation.
        assert_eq!(controller.state().revision(), revision);
        assert!(snapshots.load().generation() > revision);
        let metrics = crate::server::metrics::render(&controller, true);
        assert!(
            metrics.contains("sluice_backend_health{service=\"web\",backend=\"127.0.0.2:80\"} 2\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("sluice_backend_health{service=\"web\",backend=\"127.0.0.1:80\"} 1\n")
        );

        // Without the check, both take new flows again and nothing is tracked.
        spec.health_check = None;
        controller
            .mutate("test", move |s| s.apply_service(spec, None))
            .await
            .unwrap();
        wait_until("127.0.0.2 back in the snapshot", || {
            states() == [snapshot::BackendState::Active; 2]
                && health.get("web", endpoint(2)).is_none()
        })
        .await;
        shutdown_tx.send_replace(true);
        checker.await.unwrap();
        drop(listener);
    }
}
