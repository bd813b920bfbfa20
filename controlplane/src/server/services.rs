//! `sluice.v1.Services`: declarative services, backend patches and the watch stream.

use super::controller::{Controller, WatchBatch};
use super::stats::WorkerView;
use crate::convert;
use crate::health::Health;
use crate::state::{BackendState, LabelSelector, StoredService};
use crate::validate;
use sluice_proto::v1;
use sluice_proto::v1::services_server::Services;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Events buffered per watch stream between the watcher task and the connection.
const WATCH_STREAM_BUFFER: usize = 256;

/// The `Services` gRPC service.
#[derive(Clone, Debug)]
pub(crate) struct ServicesApi {
    pub controller: Controller,
}

/// A service with its live status (backend counters and eligibility).
pub(crate) fn service_with_status(
    controller: &Controller,
    stored: &StoredService,
    workers: &[WorkerView],
    generation: u64,
) -> v1::Service {
    let mut service = convert::service_to_proto(stored);
    let mut eligible = 0u32;
    let mut active = 0u64;
    for ((proto, spec), &slot) in service
        .backends
        .iter_mut()
        .zip(&stored.spec.backends)
        .zip(&stored.backend_ids)
    {
        let sums = controller.backend_counters(workers, slot);
        let health = controller.health().get(&stored.spec.name, spec.endpoint());
        let down = health.as_ref().is_some_and(|h| h.health == Health::Down);
        if spec.state == BackendState::Active && spec.weight > 0 && !down {
            eligible += 1;
        }
        active += sums.active();
        let (health, health_message) = match health {
            None => (v1::BackendHealth::Unknown, String::new()),
            Some(h) => (
                match h.health {
                    Health::Unknown => v1::BackendHealth::Unknown,
                    Health::Up => v1::BackendHealth::Up,
                    Health::Down => v1::BackendHealth::Down,
                },
                h.message,
            ),
        };
        proto.status = Some(v1::BackendStatus {
            health: health.into(),
            health_message,
            active_connections: sums.active(),
            total_connections: sums.new_connections,
            packets_to_backend: sums.packets.saturating_sub(sums.packets_from),
            bytes_to_backend: sums.bytes.saturating_sub(sums.bytes_from),
            packets_from_backend: sums.packets_from,
            bytes_from_backend: sums.bytes_from,
        });
    }
    service.status = Some(v1::ServiceStatus {
        eligible_backends: eligible,
        active_connections: active,
        snapshot_generation: if generation >= stored.meta.resource_version {
            generation
        } else {
            0
        },
    });
    service
}

#[tonic::async_trait]
impl Services for ServicesApi {
    async fn apply_service(
        &self,
        request: Request<v1::ApplyServiceRequest>,
    ) -> Result<Response<v1::ApplyServiceResponse>, Status> {
        let (spec, expected) =
            validate::apply_service_request(request.get_ref()).map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("ApplyService", move |state| {
                state.apply_service(spec, expected)
            })
            .await?;
        Ok(Response::new(v1::ApplyServiceResponse {
            service: Some(convert::service_to_proto(&applied.object)),
            changed: applied.changed,
        }))
    }

    async fn apply_services(
        &self,
        request: Request<v1::ApplyServicesRequest>,
    ) -> Result<Response<v1::ApplyServicesResponse>, Status> {
        let batch =
            validate::apply_services_request(request.get_ref()).map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("ApplyServices", move |state| state.apply_services(batch))
            .await?;
        Ok(Response::new(v1::ApplyServicesResponse {
            responses: applied
                .iter()
                .map(|a| v1::ApplyServiceResponse {
                    service: Some(convert::service_to_proto(&a.object)),
                    changed: a.changed,
                })
                .collect(),
        }))
    }

    async fn delete_service(
        &self,
        request: Request<v1::DeleteServiceRequest>,
    ) -> Result<Response<v1::DeleteServiceResponse>, Status> {
        let request = request.into_inner();
        let name = validate::object_name(&request.name, "name").map_err(|v| v.to_status())?;
        let expected = request.resource_version;
        let allow_missing = request.allow_missing;
        let removed = self
            .controller
            .mutate("DeleteService", move |state| {
                state.delete_service(&name, expected, allow_missing)
            })
            .await?;
        Ok(Response::new(v1::DeleteServiceResponse {
            deleted: removed.is_some(),
        }))
    }

    async fn get_service(
        &self,
        request: Request<v1::GetServiceRequest>,
    ) -> Result<Response<v1::Service>, Status> {
        let name =
            validate::object_name(&request.get_ref().name, "name").map_err(|v| v.to_status())?;
        let state = self.controller.state();
        let stored = state
            .service(&name)
            .ok_or_else(|| Status::not_found(format!("service {name:?} not found")))?;
        let workers = self.controller.stats_source().workers();
        let generation = self.controller.snapshot_generation();
        Ok(Response::new(service_with_status(
            &self.controller,
            stored,
            &workers,
            generation,
        )))
    }

    async fn list_services(
        &self,
        request: Request<v1::ListServicesRequest>,
    ) -> Result<Response<v1::ListServicesResponse>, Status> {
        let selector = validate::label_selector(request.get_ref().selector.as_ref(), "selector")
            .map_err(|v| v.to_status())?;
        let state = self.controller.state();
        let workers = self.controller.stats_source().workers();
        let generation = self.controller.snapshot_generation();
        let services = state
            .services_matching(&selector)
            .map(|s| service_with_status(&self.controller, s, &workers, generation))
            .collect();
        Ok(Response::new(v1::ListServicesResponse {
            services,
            resource_version: state.revision(),
        }))
    }

    type WatchServicesStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::WatchServicesResponse, Status>> + Send>>;

    async fn watch_services(
        &self,
        request: Request<v1::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        let selector = validate::label_selector(request.get_ref().selector.as_ref(), "selector")
            .map_err(|v| v.to_status())?;
        let (state, events) = self.controller.subscribe().await;
        let (tx, rx) = mpsc::channel(WATCH_STREAM_BUFFER);
        let shutdown = self.controller.shutdown_signal();
        tokio::spawn(async move {
            let initial: Vec<v1::WatchServicesResponse> = state
                .services_matching(&selector)
                .map(|s| event(v1::WatchEventType::Added, Some(s), state.revision()))
                .chain(std::iter::once(event(
                    v1::WatchEventType::Synced,
                    None,
                    state.revision(),
                )))
                .collect();
            drop(state);
            for message in initial {
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
            forward_events(selector, events, shutdown, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn patch_backends(
        &self,
        request: Request<v1::PatchBackendsRequest>,
    ) -> Result<Response<v1::PatchBackendsResponse>, Status> {
        let patch =
            validate::patch_backends_request(request.get_ref()).map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("PatchBackends", move |state| {
                state.patch_backends(&patch.service, patch.patch, patch.expected_version)
            })
            .await?;
        Ok(Response::new(v1::PatchBackendsResponse {
            service: Some(convert::service_to_proto(&applied.object)),
            changed: applied.changed,
        }))
    }
}

fn event(
    kind: v1::WatchEventType,
    service: Option<&StoredService>,
    revision: u64,
) -> v1::WatchServicesResponse {
    v1::WatchServicesResponse {
        r#type: kind.into(),
        service: service.map(convert::service_to_proto),
        resource_version: revision,
    }
}

/// What a watcher with `selector` sees of one change.
fn event_for(
    selector: &LabelSelector,
    before: Option<&StoredService>,
    after: Option<&StoredService>,
    revision: u64,
) -> Option<v1::WatchServicesResponse> {
    let matches = |s: &&StoredService| selector.matches(&s.spec.labels);
    match (before.filter(matches), after.filter(matches)) {
        (None, None) => None,
        (None, Some(after)) => Some(event(v1::WatchEventType::Added, Some(after), revision)),
        (Some(_), Some(after)) => Some(event(v1::WatchEventType::Modified, Some(after), revision)),
        // Deleted, or its labels stopped matching: report its latest version.
        (Some(before), None) => Some(event(
            v1::WatchEventType::Deleted,
            Some(after.unwrap_or(before)),
            revision,
        )),
    }
}

async fn forward_events(
    selector: LabelSelector,
    mut events: broadcast::Receiver<Arc<WatchBatch>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    tx: mpsc::Sender<Result<v1::WatchServicesResponse, Status>>,
) {
    let stopping = async move {
        // The guard `wait_for` returns is not Send: drop it inside this future.
        let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
    };
    tokio::pin!(stopping);
    loop {
        let batch = tokio::select! {
            batch = events.recv() => batch,
            () = &mut stopping => {
                let _ = tx
                    .send(Err(Status::unavailable("sluiced is shutting down; watch again")))
                    .await;
                return;
            }
            () = tx.closed() => return,
        };
        match batch {
            Ok(batch) => {
                for (before, after) in &batch.changes {
                    if let Some(message) =
                        event_for(&selector, before.as_ref(), after.as_ref(), batch.revision)
                    {
                        if tx.send(Ok(message)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "a watcher fell behind and is disconnected");
                let _ = tx
                    .send(Err(Status::resource_exhausted(format!(
                        "the watch fell {missed} changes behind; watch again for a fresh snapshot"
                    ))))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
