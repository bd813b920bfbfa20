//! The `sluice.v1.L7` gRPC service, with gRPC health and server reflection, on a Unix socket
//! (protected by its file mode) and/or TCP.

use crate::control::Control;
use sluice_proto::v1::l7_server::{L7Server, L7};
use sluice_proto::v1::{
    ApplyRouteTableRequest, ApplyRouteTableResponse, GetRouteTableRequest, GetRouteTableResponse,
};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

/// Route tables with many certificates are large; validation bounds them, not the transport.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct L7Api {
    pub control: Arc<Control>,
}

#[tonic::async_trait]
impl L7 for L7Api {
    async fn apply_route_table(
        &self,
        request: Request<ApplyRouteTableRequest>,
    ) -> Result<Response<ApplyRouteTableResponse>, Status> {
        let request = request.into_inner();
        let Some(table) = request.table else {
            return Err(crate::violations::Violations::one("table", "required").to_status());
        };
        let (version, changed) = self
            .control
            .apply(table, request.expected_version)
            .await
            .map_err(|e| {
                tracing::info!(error = %e, "route table refused");
                Status::from(e)
            })?;
        Ok(Response::new(ApplyRouteTableResponse { version, changed }))
    }

    async fn get_route_table(
        &self,
        _request: Request<GetRouteTableRequest>,
    ) -> Result<Response<GetRouteTableResponse>, Status> {
        let (table, version) = self.control.get().await;
        Ok(Response::new(GetRouteTableResponse {
            table: Some(table),
            version,
        }))
    }
}

/// Where the API listens (bound by the caller, so bind errors surface at start).
#[derive(Debug, Default)]
pub struct ApiListeners {
    pub unix: Option<tokio::net::UnixListener>,
    pub tcp: Option<tokio::net::TcpListener>,
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    control: Arc<Control>,
    listeners: ApiListeners,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("sluice.v1.L7", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sluice_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let l7 = L7Server::new(L7Api { control }).max_decoding_message_size(MAX_REQUEST_BYTES);
    let router = || {
        Server::builder()
            .add_service(health.clone())
            .add_service(reflection.clone())
            .add_service(l7.clone())
    };
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(unix) = listeners.unix {
        let r = router();
        let signal = wait(shutdown.clone());
        tasks.spawn(async move {
            r.serve_with_incoming_shutdown(UnixListenerStream::new(unix), signal)
                .await
        });
    }
    if let Some(tcp) = listeners.tcp {
        let r = router();
        let signal = wait(shutdown.clone());
        tasks.spawn(async move {
            r.serve_with_incoming_shutdown(TcpListenerStream::new(tcp), signal)
                .await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}
