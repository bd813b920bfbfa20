//! One reconcile pass: translate the world, program every sluiced and proxy, write statuses.

use crate::apply::{self, Bearer, Conn, Target};
use crate::config::Settings;
use crate::kube_source;
use crate::model::World;
use crate::translate::{self, Outcome};

/// The programmed components and where statuses go.
#[derive(Clone)]
pub struct Controller {
    pub settings: Settings,
    /// Services sluiced refused in the last pass (name -> reason), fed back into statuses.
    refused: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, String>>>,
    pub sluiced: Vec<(Target, Conn)>,
    pub proxies: Vec<(Target, Conn)>,
    pub kube: Option<kube::Client>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("settings", &self.settings)
            .field(
                "sluiced",
                &self
                    .sluiced
                    .iter()
                    .map(|t| t.0.describe())
                    .collect::<Vec<_>>(),
            )
            .field(
                "proxies",
                &self
                    .proxies
                    .iter()
                    .map(|t| t.0.describe())
                    .collect::<Vec<_>>(),
            )
            .field("kube", &self.kube.is_some())
            .finish()
    }
}

/// What one pass did; `errors` empty means everything converged.
#[derive(Debug, Default)]
pub struct PassReport {
    pub outcome: Outcome,
    pub errors: Vec<String>,
    pub statuses_written: usize,
}

/// Current time as RFC 3339 with seconds (Kubernetes `metav1.Time`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Controller {
    pub fn new(
        settings: Settings,
        sluiced: &[Target],
        proxies: &[Target],
        token: Bearer,
        kube: Option<kube::Client>,
    ) -> Result<Controller, String> {
        let connect = |targets: &[Target]| -> Result<Vec<(Target, Conn)>, String> {
            targets
                .iter()
                .map(|t| apply::connect(t, &token).map(|c| (t.clone(), c)))
                .collect()
        };
        Ok(Controller {
            sluiced: connect(sluiced)?,
            proxies: connect(proxies)?,
            settings,
            kube,
            refused: Default::default(),
        })
    }

    pub async fn reconcile(&self, world: &World) -> PassReport {
        let now = now_rfc3339();
        let previously_refused = self.refused.lock().map(|r| r.clone()).unwrap_or_default();
        let mut outcome =
            translate::translate_with(world, &self.settings, &now, &previously_refused);
        let mut report = PassReport::default();
        let mut refused = std::collections::BTreeMap::new();
        for (target, conn) in &self.sluiced {
            match apply::sync_services(conn.clone(), &self.settings.instance, &outcome.services)
                .await
            {
                Ok(r) => {
                    for (name, reason) in &r.refused {
                        refused.insert(name.clone(), reason.clone());
                        report.errors.push(format!(
                            "sluiced {} refused service {name}: {reason}",
                            target.describe()
                        ));
                    }
                    if !r.applied.is_empty() || !r.deleted.is_empty() {
                        tracing::info!(sluiced = %target.describe(), applied = ?r.applied, deleted = ?r.deleted, unchanged = r.unchanged, "programmed sluiced");
                    }
                }
                Err(e) => report.errors.push(format!(
                    "sluiced {}: {} ({:?})",
                    target.describe(),
                    e.message(),
                    e.code()
                )),
            }
        }
        // Statuses reflect what sluiced accepted in this very pass (services do not depend
        // on the feedback, only the listener conditions do).
        if refused != previously_refused {
            outcome.statuses =
                translate::translate_with(world, &self.settings, &now, &refused).statuses;
        }
        if let Ok(mut r) = self.refused.lock() {
            *r = refused;
        }
        for (target, conn) in &self.proxies {
            match apply::sync_route_table(conn.clone(), &outcome.route_table).await {
                Ok(true) => tracing::info!(proxy = %target.describe(), "route table applied"),
                Ok(false) => {}
                Err(e) => report.errors.push(format!(
                    "sluice-proxy {}: {} ({:?})",
                    target.describe(),
                    e.message(),
                    e.code()
                )),
            }
        }
        if let Some(client) = &self.kube {
            let manager = &self.settings.controller_name;
            for service in &outcome.created_services {
                if let Err(e) = kube_source::apply_service(client, manager, service).await {
                    report.errors.push(format!(
                        "creating Service {}: {e}",
                        service["metadata"]["name"]
                    ));
                }
            }
            for (namespace, name) in &outcome.stale_services {
                match kube_source::delete_service(client, namespace, name).await {
                    Ok(()) => {
                        tracing::info!(%namespace, %name, "deleted the Service created for a loxilb route")
                    }
                    Err(e) => report
                        .errors
                        .push(format!("deleting Service {namespace}/{name}: {e}")),
                }
            }
            for update in outcome.statuses.iter().filter(|s| s.changed) {
                match kube_source::write_status(client, manager, update).await {
                    Ok(()) => report.statuses_written += 1,
                    Err(e) => report.errors.push(format!(
                        "status of {} {}/{}: {e}",
                        update.kind, update.namespace, update.name
                    )),
                }
            }
        }
        for e in &report.errors {
            tracing::warn!(error = %e, "reconcile incomplete (retried)");
        }
        report.outcome = outcome;
        report
    }
}

/// Kubernetes mode: reflectors feed the caches; every change (debounced) and every resync
/// period runs one pass over the whole cache. Failed passes retry after 2 s. Never returns.
pub async fn run_kube(controller: Controller, client: kube::Client, resync: std::time::Duration) {
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let stores = kube_source::start(client, notify.clone()).await;
    tracing::info!(?stores, "watching");
    stores.wait_ready().await;
    loop {
        // Debounce bursts of events into one pass.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (world, errors) = World::from_objects(&stores.objects());
        for e in &errors {
            tracing::warn!(error = %e, "object skipped");
        }
        let report = controller.reconcile(&world).await;
        let wait = if report.errors.is_empty() {
            resync
        } else {
            std::time::Duration::from_secs(2)
        };
        let _ = tokio::time::timeout(wait, notify.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_shape() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'));
    }
}
