//! Makes each sluiced (and each sluice-proxy) match the programme, idempotently.
//!
//! Only services labelled `sluice.io/managed-by=<instance>` are ours: they are listed with
//! that selector, changed ones are applied in one atomic batch, and the ones no longer in
//! the programme are deleted. Services of other owners are never touched.

use crate::translate::LABEL_MANAGED_BY;
use hyper_util::rt::TokioIo;
use sluice_proto::v1;
use sluice_proto::v1::l7_client::L7Client;
use sluice_proto::v1::services_client::ServicesClient;
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// TLS settings of an `https://` target (PEM).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates that verify the server; `None`: the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// A gRPC endpoint: `unix:///path`, a socket path, `http://host:port` or `https://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Unix(std::path::PathBuf),
    Http(String),
    Https(String, ClientTls),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "`{text}`: a unix:// address needs an absolute path"
                ));
            }
            return Ok(Target::Unix(path.into()));
        }
        if text.starts_with('/') {
            return Ok(Target::Unix(text.into()));
        }
        let (tls, authority) = match text.strip_prefix("https://") {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix("http://").unwrap_or(text)),
        };
        let authority = authority.trim_end_matches('/');
        let uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|_| format!("`{text}`: expected unix:///PATH or http://HOST:PORT"))?;
        if uri.port_u16().is_none() || authority.contains('/') {
            return Err(format!(
                "`{text}`: expected unix:///PATH or http://HOST:PORT"
            ));
        }
        Ok(if tls {
            Target::Https(format!("https://{authority}"), ClientTls::default())
        } else {
            Target::Http(format!("http://{authority}"))
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Unix(p) => format!("unix://{}", p.display()),
            Target::Http(u) | Target::Https(u, _) => u.clone(),
        }
    }
}

/// Adds `authorization: Bearer <token>` when a token is configured.
#[derive(Clone, Debug, Default)]
pub struct Bearer(pub Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

pub type Conn = InterceptedService<Channel, Bearer>;

/// Connects (lazily: the first RPC dials, so an absent daemon is an RPC error, retried at
/// the next reconcile).
pub fn connect(target: &Target, token: &Bearer) -> Result<Conn, String> {
    let timeout = Duration::from_secs(10);
    let channel = match target {
        Target::Unix(path) => {
            let path = path.clone();
            Endpoint::from_static("http://localhost")
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(&path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
        }
        Target::Http(uri) => Endpoint::from_shared(uri.clone())
            .map_err(|e| format!("{uri}: {e}"))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy(),
        Target::Https(uri, tls) => {
            let mut config = ClientTlsConfig::new();
            config = match &tls.ca_pem {
                Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            Endpoint::from_shared(uri.clone())
                .map_err(|e| format!("{uri}: {e}"))?
                .tls_config(config)
                .map_err(|e| format!("{uri}: TLS settings: {e}"))?
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect_lazy()
        }
    };
    Ok(InterceptedService::new(channel, token.clone()))
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub applied: Vec<String>,
    pub deleted: Vec<String>,
    pub unchanged: usize,
    /// Services sluiced refused, with its reason (the others were applied).
    pub refused: Vec<(String, String)>,
}

/// The comparable part of a service (output-only fields and defaults the daemon fills in
/// are ignored, so a stored service equals the one we would send).
fn normalized(service: &v1::Service) -> v1::Service {
    let mut s = service.clone();
    s.meta = None;
    s.status = None;
    for b in &mut s.backends {
        b.status = None;
        if b.weight.is_none() {
            b.weight = Some(1);
        }
        if b.state == v1::BackendState::Unspecified as i32 {
            b.state = v1::BackendState::Active as i32;
        }
    }
    s.backends
        .sort_by(|a, b| (&a.address, a.port).cmp(&(&b.address, b.port)));
    s.health_check = s.health_check.map(|h| v1::HealthCheck {
        r#type: h.r#type,
        ..Default::default()
    });
    s
}

/// Makes one sluiced hold exactly `desired` among the services labelled as ours.
pub async fn sync_services(
    conn: Conn,
    instance: &str,
    desired: &BTreeMap<String, v1::Service>,
) -> Result<SyncReport, tonic::Status> {
    let mut client = ServicesClient::new(conn);
    let selector = v1::LabelSelector {
        match_labels: [(LABEL_MANAGED_BY.to_owned(), instance.to_owned())].into(),
    };
    let current = client
        .list_services(v1::ListServicesRequest {
            selector: Some(selector),
        })
        .await?
        .into_inner()
        .services;
    let current: BTreeMap<String, v1::Service> =
        current.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut report = SyncReport::default();
    let mut batch = Vec::new();
    for (name, service) in desired {
        match current.get(name) {
            Some(existing) if normalized(existing) == normalized(service) => report.unchanged += 1,
            _ => {
                report.applied.push(name.clone());
                batch.push(v1::ApplyServiceRequest {
                    service: Some(service.clone()),
                    resource_version: None,
                });
            }
        }
    }
    // Deletions first: a route that moved listeners frees its VIP:port before the new
    // service claims it (sluiced rejects two services on one VIP:port:protocol).
    for name in current.keys().filter(|n| !desired.contains_key(*n)) {
        client
            .delete_service(v1::DeleteServiceRequest {
                name: name.clone(),
                resource_version: None,
                allow_missing: true,
            })
            .await?;
        report.deleted.push(name.clone());
    }
    for chunk in batch.chunks(10_000) {
        let result = client
            .apply_services(v1::ApplyServicesRequest {
                requests: chunk.to_vec(),
            })
            .await;
        match result {
            Ok(_) => {}
            // The batch is atomic: one service sluiced refuses (say, its VIP:port is taken by
            // a service of another owner) would hold back all the others. Apply them one by
            // one so everything valid converges, and report the refused ones.
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                for request in chunk {
                    let name = request
                        .service
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    if let Err(e) = client.apply_service(request.clone()).await {
                        report.applied.retain(|n| *n != name);
                        report.refused.push((name, e.message().to_owned()));
                    }
                }
            }
            Err(status) => return Err(status),
        }
    }
    Ok(report)
}

/// Sends the route table to one proxy; returns whether it changed.
pub async fn sync_route_table(conn: Conn, table: &v1::RouteTable) -> Result<bool, tonic::Status> {
    let mut client = L7Client::new(conn);
    let current = client
        .get_route_table(v1::GetRouteTableRequest {})
        .await
        .map(|r| r.into_inner().table)
        .ok()
        .flatten();
    if current.as_ref() == Some(table) {
        return Ok(false);
    }
    let response = client
        .apply_route_table(v1::ApplyRouteTableRequest {
            table: Some(table.clone()),
            expected_version: None,
        })
        .await?;
    Ok(response.into_inner().changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("unix:///run/s.sock").unwrap(),
            Target::Unix("/run/s.sock".into())
        );
        assert_eq!(
            Target::parse("127.0.0.1:50051").unwrap(),
            Target::Http("http://127.0.0.1:50051".into())
        );
        assert!(Target::parse("unix://rel").is_err());
        assert!(Target::parse("http://host").is_err());
        assert_eq!(
            Target::parse("https://lb.example:50051").unwrap(),
            Target::Https("https://lb.example:50051".into(), ClientTls::default())
        );
    }
}
