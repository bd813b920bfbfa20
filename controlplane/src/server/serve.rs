//! Serving the API: the four `sluice.v1` services, gRPC health (`grpc.health.v1`) and server
//! reflection (`grpc.reflection.v1`) on a Unix socket and/or a TCP listener.
//!
//! Security: the Unix socket is protected by its file mode (the daemon creates it 0660); the
//! TCP listener can require TLS (with client certificates when a client CA is given) and/or a
//! bearer token (`authorization: Bearer <token>`; UNAUTHENTICATED otherwise). The health
//! service answers without a token, so probes (grpc_health_probe, systemd, Kubernetes) work.

use super::controller::Controller;
use super::network::NetworkApi;
use super::observability::ObservabilityApi;
use super::pools::PoolsApi;
use super::services::ServicesApi;
use sluice_proto::v1::network_server::NetworkServer;
use sluice_proto::v1::observability_server::ObservabilityServer;
use sluice_proto::v1::pools_server::PoolsServer;
use sluice_proto::v1::services_server::ServicesServer;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};
use tonic_health::ServingStatus;

/// Largest request the server decodes: an `ApplyServices` of 10,000 services with 8 backends
/// is about 2.5 MB; larger batches are refused by validation, not by the transport.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// Certificate files of the TCP listener (PEM).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// Authentication of the TCP listener.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    pub tls: Option<TlsFiles>,
    /// Required as `authorization: Bearer <token>` on every call but health checks.
    pub bearer_token: Option<String>,
}

/// Where the API listens (already bound, so the caller knows the addresses).
#[derive(Debug, Default)]
pub struct ApiListeners {
    pub unix: Option<tokio::net::UnixListener>,
    pub tcp: Option<tokio::net::TcpListener>,
}

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    #[error("serving the API on {listener}: {source}")]
    Serve {
        listener: &'static str,
        source: tonic::transport::Error,
    },
}

/// Checks the bearer token of a call; passes everything when no token is configured.
#[derive(Clone, Debug, Default)]
struct BearerAuth {
    token: Option<Arc<str>>,
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            });
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("invalid bearer token")),
            None => Err(Status::unauthenticated(
                "missing \"authorization: Bearer <token>\" metadata",
            )),
        }
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadFile {
        path: path.clone(),
        source,
    })
}

fn router(
    controller: &Controller,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    tls: Option<ServerTlsConfig>,
    auth: BearerAuth,
) -> Result<Router, ServeError> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(sluice_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(ServeError::Tls)?;
    }
    let services = ServicesServer::new(ServicesApi {
        controller: controller.clone(),
    })
    .max_decoding_message_size(MAX_REQUEST_BYTES);
    let pools = PoolsServer::new(PoolsApi {
        controller: controller.clone(),
    });
    let network = NetworkServer::new(NetworkApi {
        controller: controller.clone(),
    });
    let observability = ObservabilityServer::new(ObservabilityApi {
        controller: controller.clone(),
    });
    Ok(builder
        .add_service(health)
        .add_service(InterceptedService::new(reflection, auth.clone()))
        .add_service(InterceptedService::new(services, auth.clone()))
        .add_service(InterceptedService::new(pools, auth.clone()))
        .add_service(InterceptedService::new(network, auth.clone()))
        .add_service(InterceptedService::new(observability, auth)))
}

/// Serves the API on `listeners` until `shutdown` turns true; then reports NOT_SERVING, ends
/// open watch streams and lets in-flight calls finish.
pub async fn serve(
    controller: Controller,
    listeners: ApiListeners,
    auth: AuthConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    for name in sluice_proto::SERVICE_NAMES {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let tls = match &auth.tls {
        None => None,
        Some(files) => {
            let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
            let mut config = ServerTlsConfig::new().identity(identity);
            if let Some(ca) = &files.client_ca {
                config = config.client_ca_root(Certificate::from_pem(read(ca)?));
            }
            Some(config)
        }
    };
    let token = BearerAuth {
        token: auth.bearer_token.as_deref().map(Arc::from),
    };

    let mut tasks = tokio::task::JoinSet::new();
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    if let Some(listener) = listeners.unix {
        // The socket's file mode protects it: no TLS, no token.
        let router = router(&controller, health.clone(), None, BearerAuth::default())?;
        let signal = wait(shutdown.clone());
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal)
                .await
                .map_err(|source| ServeError::Serve {
                    listener: "unix socket",
                    source,
                })
        });
    }
    if let Some(listener) = listeners.tcp {
        let router = router(&controller, health.clone(), tls, token)?;
        let signal = wait(shutdown.clone());
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                .await
                .map_err(|source| ServeError::Serve {
                    listener: "TCP",
                    source,
                })
        });
    }
    let stopper = {
        let controller = controller.clone();
        async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
            reporter
                .set_service_status("", ServingStatus::NotServing)
                .await;
            for name in sluice_proto::SERVICE_NAMES {
                reporter
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            controller.shut_down();
        }
    };
    tasks.spawn(async move {
        stopper.await;
        Ok(())
    });
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "API server failed");
                if result.is_ok() {
                    result = Err(e);
                }
            }
            Err(e) => tracing::error!(error = %e, "API server task failed"),
        }
    }
    result
}
