//! An in-memory `sluice.v1.Services` server on a temporary Unix socket: enough of sluiced
//! (apply, batch apply, list with label selectors, delete, counting every write) to watch what
//! the controller programs. Restarting it loses the state, like a sluiced without persistence.

use sluice_proto::v1;
use sluice_proto::v1::services_server::{Services, ServicesServer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

#[derive(Default)]
pub struct Inner {
    pub services: BTreeMap<String, v1::Service>,
    pub revision: u64,
    pub writes: u64,
}

#[derive(Clone, Default)]
pub struct FakeSluiced {
    pub inner: Arc<Mutex<Inner>>,
}

impl FakeSluiced {
    pub fn services(&self) -> BTreeMap<String, v1::Service> {
        self.inner.lock().unwrap().services.clone()
    }

    pub fn writes(&self) -> u64 {
        self.inner.lock().unwrap().writes
    }

    /// Serves on `dir/sluiced.sock`; returns the socket path.
    pub async fn start(&self, dir: &Path) -> PathBuf {
        let path = dir.join("sluiced.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = ServicesServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
                .unwrap();
        });
        path
    }

    fn apply(&self, service: v1::Service) -> Result<v1::Service, Status> {
        if service.name.is_empty() || service.vip.is_empty() || service.port == 0 {
            return Err(Status::invalid_argument("service.name/vip/port: required"));
        }
        let mut inner = self.inner.lock().unwrap();
        if let Some(other) = inner.services.values().find(|s| {
            s.name != service.name
                && s.vip == service.vip
                && s.port == service.port
                && s.protocol == service.protocol
        }) {
            return Err(Status::invalid_argument(format!(
                "service.vip: {}:{} is used by {}",
                service.vip, service.port, other.name
            )));
        }
        inner.revision += 1;
        inner.writes += 1;
        let mut stored = service;
        stored.meta = Some(v1::ObjectMeta {
            resource_version: inner.revision,
            generation: 1,
        });
        inner.services.insert(stored.name.clone(), stored.clone());
        Ok(stored)
    }
}

#[tonic::async_trait]
impl Services for FakeSluiced {
    async fn apply_service(
        &self,
        r: Request<v1::ApplyServiceRequest>,
    ) -> Result<Response<v1::ApplyServiceResponse>, Status> {
        let service = self.apply(r.into_inner().service.unwrap_or_default())?;
        Ok(Response::new(v1::ApplyServiceResponse {
            service: Some(service),
            changed: true,
        }))
    }

    async fn apply_services(
        &self,
        r: Request<v1::ApplyServicesRequest>,
    ) -> Result<Response<v1::ApplyServicesResponse>, Status> {
        let mut responses = Vec::new();
        for req in r.into_inner().requests {
            responses.push(v1::ApplyServiceResponse {
                service: Some(self.apply(req.service.unwrap_or_default())?),
                changed: true,
            });
        }
        Ok(Response::new(v1::ApplyServicesResponse { responses }))
    }

    async fn delete_service(
        &self,
        r: Request<v1::DeleteServiceRequest>,
    ) -> Result<Response<v1::DeleteServiceResponse>, Status> {
        let mut inner = self.inner.lock().unwrap();
        let deleted = inner.services.remove(&r.into_inner().name).is_some();
        if deleted {
            inner.writes += 1;
        }
        Ok(Response::new(v1::DeleteServiceResponse { deleted }))
    }

    async fn get_service(
        &self,
        r: Request<v1::GetServiceRequest>,
    ) -> Result<Response<v1::Service>, Status> {
        self.services()
            .get(&r.into_inner().name)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found("service"))
    }

    async fn list_services(
        &self,
        r: Request<v1::ListServicesRequest>,
    ) -> Result<Response<v1::ListServicesResponse>, Status> {
        let selector = r.into_inner().selector.unwrap_or_default().match_labels;
        let inner = self.inner.lock().unwrap();
        let services = inner
            .services
            .values()
            .filter(|s| selector.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .cloned()
            .collect();
        Ok(Response::new(v1::ListServicesResponse {
            services,
            resource_version: inner.revision,
        }))
    }

    type WatchServicesStream = tokio_stream::Empty<Result<v1::WatchServicesResponse, Status>>;

    async fn watch_services(
        &self,
        _: Request<v1::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn patch_backends(
        &self,
        _: Request<v1::PatchBackendsRequest>,
    ) -> Result<Response<v1::PatchBackendsResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}
