//! `sluice.v1.Observability`: counters, connections and status.

use super::controller::Controller;
use super::stats::{ConnectionQuery, ConnectionRecord, PortView, WorkerView};
use crate::error::Violations;
use crate::net::parse_ip;
use crate::state::{Protocol, StoredService};
use crate::validate;
use core::net::IpAddr;
use dataplane::conntrack::ConnState;
use dataplane::flow::Proto;
use dataplane::pipeline::DropReason;
use sluice_proto::v1;
use sluice_proto::v1::observability_server::Observability;
use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Connections per `ListConnectionsResponse`.
const CONNECTION_BATCH: usize = 1024;
/// `ListConnectionsRequest.limit` when 0, and its maximum.
const DEFAULT_CONNECTION_LIMIT: usize = 10_000;
const MAX_CONNECTION_LIMIT: usize = 1_000_000;

/// The `Observability` gRPC service.
#[derive(Clone, Debug)]
pub(crate) struct ObservabilityApi {
    pub controller: Controller,
}

/// Drops by reason name, non-zero reasons only.
pub(crate) fn drops_by_reason<'a>(
    workers: impl IntoIterator<Item = &'a WorkerView>,
) -> HashMap<String, u64> {
    let mut drops = HashMap::new();
    for worker in workers {
        for reason in DropReason::all() {
            let n = worker.counters.drops(reason);
            if n > 0 {
                *drops.entry(reason.as_str().to_owned()).or_insert(0) += n;
            }
        }
    }
    drops
}

pub(crate) fn worker_stats(worker: &WorkerView) -> v1::WorkerStats {
    let c = &worker.counters;
    v1::WorkerStats {
        worker: worker.index,
        lcore: worker.lcore,
        rx_packets: c.rx_packets.get(),
        tx_packets: c.tx_packets.get(),
        dropped_packets: c.total_drops(),
        drops_by_reason: drops_by_reason([worker]),
        handoffs_sent: c.handoff_out.get(),
        handoffs_received: c.handoff_in.get(),
        active_connections: c.active_connections.get(),
        total_connections: c.new_connections.get(),
        busy_ratio: worker.busy_ratio,
        to_host_packets: c.to_host.get(),
        from_host_packets: c.from_host.get(),
        expired_under_pressure: c.expired_under_pressure.get(),
    }
}

fn port_stats(port: &PortView) -> v1::PortStats {
    let c = port.counters.unwrap_or_default();
    v1::PortStats {
        name: port.name.clone(),
        port_id: u32::from(port.port_id),
        rx_packets: c.rx_packets,
        tx_packets: c.tx_packets,
        rx_bytes: c.rx_bytes,
        tx_bytes: c.tx_bytes,
        rx_missed: c.rx_missed,
        rx_errors: c.rx_errors,
        tx_errors: c.tx_errors,
        rx_nombuf: c.rx_nombuf,
    }
}

pub(crate) fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

impl ObservabilityApi {
    fn service_stats(
        &self,
        stored: &StoredService,
        workers: &[WorkerView],
        include_backends: bool,
    ) -> v1::ServiceStats {
        let sums = self.controller.service_counters(workers, stored.id);
        let mut active = 0;
        let mut backends = Vec::new();
        for (spec, &slot) in stored.spec.backends.iter().zip(&stored.backend_ids) {
            let b = self.controller.backend_counters(workers, slot);
            active += b.active();
            if include_backends {
                backends.push(v1::BackendStats {
                    address: spec.address.to_string(),
                    port: u32::from(spec.port),
                    packets_to_backend: b.packets.saturating_sub(b.packets_from),
                    bytes_to_backend: b.bytes.saturating_sub(b.bytes_from),
                    packets_from_backend: b.packets_from,
                    bytes_from_backend: b.bytes_from,
                    active_connections: b.active(),
                    total_connections: b.new_connections,
                    ..backend_health(&self.controller, &stored.spec.name, spec.endpoint())
                });
            }
        }
        v1::ServiceStats {
            name: stored.spec.name.clone(),
            vip: stored.spec.vip.to_string(),
            port: u32::from(stored.spec.port),
            protocol: crate::convert::protocol_to_proto(stored.spec.protocol).into(),
            packets: sums.packets,
            bytes: sums.bytes,
            active_connections: active,
            total_connections: sums.new_connections,
            no_backend_drops: sums.rejected,
            backends,
        }
    }
}

/// Parses `ListConnectionsRequest.backend`: "address", "address:port" or "[v6]:port".
fn parse_backend_filter(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = parse_ip(text) {
        return Some((ip, None));
    }
    let addr: std::net::SocketAddr = text.parse().ok()?;
    (addr.port() != 0).then(|| (addr.ip(), Some(addr.port())))
}

fn connection_state(state: ConnState) -> v1::ConnectionState {
    match state {
        ConnState::SynSent | ConnState::SynReceived => v1::ConnectionState::SynSent,
        ConnState::Established => v1::ConnectionState::Established,
        ConnState::FinWait | ConnState::Closing => v1::ConnectionState::Closing,
        ConnState::TimeWait | ConnState::Closed => v1::ConnectionState::Closed,
        ConnState::Unreplied | ConnState::Replied => v1::ConnectionState::Udp,
    }
}

fn connection(record: &ConnectionRecord, names: &HashMap<u32, &str>) -> v1::Connection {
    let protocol = match record.original.proto {
        Proto::Tcp => v1::Protocol::Tcp,
        Proto::Udp => v1::Protocol::Udp,
        Proto::Icmp | Proto::Icmpv6 => v1::Protocol::Unspecified,
    };
    let (snat_address, snat_port) = if record.full_nat {
        (
            record.reply.dst.to_ip().to_string(),
            u32::from(record.reply.dst_port),
        )
    } else {
        (String::new(), 0)
    };
    v1::Connection {
        service: names
            .get(&record.service)
            .map(|n| (*n).to_owned())
            .unwrap_or_default(),
        protocol: protocol.into(),
        client_address: record.original.src.to_ip().to_string(),
        client_port: u32::from(record.original.src_port),
        vip: record.original.dst.to_ip().to_string(),
        vip_port: u32::from(record.original.dst_port),
        backend_address: record.reply.src.to_ip().to_string(),
        backend_port: u32::from(record.reply.src_port),
        snat_address,
        snat_port,
        state: connection_state(record.state).into(),
        worker: record.worker,
        age: Some(duration(Duration::from_millis(u64::from(record.age_ms)))),
        idle: Some(duration(Duration::from_millis(u64::from(record.idle_ms)))),
        // The dataplane counts both directions of a connection together.
        packets_to_backend: record.packets,
        bytes_to_backend: record.bytes,
        packets_from_backend: 0,
        bytes_from_backend: 0,
    }
}

#[tonic::async_trait]
impl Observability for ObservabilityApi {
    async fn get_stats(
        &self,
        request: Request<v1::GetStatsRequest>,
    ) -> Result<Response<v1::GetStatsResponse>, Status> {
        let request = request.into_inner();
        let mut violations = Violations::new();
        let mut names = Vec::with_capacity(request.services.len());
        for (i, name) in request.services.iter().enumerate() {
            match validate::object_name(name, &format!("services[{i}]")) {
                Ok(name) => names.push(name),
                Err(v) => violations.extend(v),
            }
        }
        if !violations.is_empty() {
            return Err(violations.to_status());
        }
        let state = self.controller.state();
        let selected: Vec<&StoredService> = if names.is_empty() {
            state.services().values().collect()
        } else {
            names.sort();
            names.dedup();
            names
                .iter()
                .map(|name| {
                    state
                        .service(name)
                        .ok_or_else(|| Status::not_found(format!("service {name:?} not found")))
                })
                .collect::<Result<_, _>>()?
        };
        let source = self.controller.stats_source();
        let workers = source.workers();
        let ports = source.ports();
        Ok(Response::new(v1::GetStatsResponse {
            snapshot_generation: self.controller.snapshot_generation(),
            collected_at: Some(timestamp(SystemTime::now())),
            ports: ports.iter().map(port_stats).collect(),
            workers: workers.iter().map(worker_stats).collect(),
            services: selected
                .into_iter()
                .map(|s| self.service_stats(s, &workers, request.include_backends))
                .collect(),
            drops_by_reason: drops_by_reason(&workers),
        }))
    }

    type ListConnectionsStream = Pin<
        Box<dyn tokio_stream::Stream<Item = Result<v1::ListConnectionsResponse, Status>> + Send>,
    >;

    async fn list_connections(
        &self,
        request: Request<v1::ListConnectionsRequest>,
    ) -> Result<Response<Self::ListConnectionsStream>, Status> {
        let request = request.into_inner();
        let state = self.controller.state();
        let mut violations = Violations::new();
        let limit = match request.limit as usize {
            0 => DEFAULT_CONNECTION_LIMIT,
            n if n > MAX_CONNECTION_LIMIT => {
                violations.push(
                    "limit",
                    format_args!("{n} is more than {MAX_CONNECTION_LIMIT}"),
                );
                0
            }
            n => n,
        };
        let backend = if request.backend.is_empty() {
            None
        } else {
            let parsed = parse_backend_filter(&request.backend);
            if parsed.is_none() {
                violations.push(
                    "backend",
                    format_args!(
                        "{:?} is not \"address\", \"address:port\" or \"[v6]:port\"",
                        request.backend
                    ),
                );
            }
            parsed
        };
        let address = if request.address.is_empty() {
            None
        } else {
            match parse_ip(&request.address) {
                Ok(ip) => Some(ip),
                Err(e) => {
                    violations.push("address", e);
                    None
                }
            }
        };
        let service = if request.service.is_empty() {
            None
        } else {
            match validate::object_name(&request.service, "service") {
                Ok(name) => Some(name),
                Err(v) => {
                    violations.extend(v);
                    None
                }
            }
        };
        if !violations.is_empty() {
            return Err(violations.to_status());
        }
        let service = match service {
            Some(name) => Some(
                state
                    .service(&name)
                    .ok_or_else(|| Status::not_found(format!("service {name:?} not found")))?
                    .id,
            ),
            None => None,
        };
        let query = ConnectionQuery {
            service,
            backend,
            address,
            limit,
        };
        let source = std::sync::Arc::clone(self.controller.stats_source());
        let records = tokio::task::spawn_blocking(move || source.list_connections(&query))
            .await
            .map_err(|e| Status::internal(format!("reading connections failed: {e}")))??;
        let names: HashMap<u32, &str> = state
            .services()
            .values()
            .map(|s| (s.id, s.spec.name.as_str()))
            .collect();
        let batches: Vec<v1::ListConnectionsResponse> = records
            .chunks(CONNECTION_BATCH)
            .map(|chunk| v1::ListConnectionsResponse {
                connections: chunk.iter().map(|r| connection(r, &names)).collect(),
            })
            .collect();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            for batch in batches {
                if tx.send(Ok(batch)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_status(
        &self,
        _request: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::GetStatusResponse>, Status> {
        let controller = &self.controller;
        let source = controller.stats_source();
        let workers = source.workers();
        let ports = source.ports();
        let build = &controller.config().build;
        Ok(Response::new(v1::GetStatusResponse {
            version: build.version.clone(),
            git_revision: build.git_revision.clone(),
            dpdk_version: build.dpdk_version.clone(),
            started_at: Some(timestamp(controller.started_at())),
            uptime: Some(duration(controller.inner.started.elapsed())),
            snapshot_generation: controller.snapshot_generation(),
            state_resource_version: controller.state().revision(),
            ports: ports
                .iter()
                .map(|p| {
                    let link = p.link.unwrap_or_default();
                    v1::PortStatus {
                        name: p.name.clone(),
                        port_id: u32::from(p.port_id),
                        driver: p.driver.clone(),
                        mac: mac_string(&p.mac),
                        link_up: link.up,
                        link_speed_mbps: if link.up { link.speed_mbps } else { 0 },
                        full_duplex: link.full_duplex,
                        rx_queues: u32::from(p.rx_queues),
                        tx_queues: u32::from(p.tx_queues),
                        numa_socket: p.numa_socket,
                    }
                })
                .collect(),
            workers: workers
                .iter()
                .map(|w| v1::WorkerStatus {
                    worker: w.index,
                    lcore: w.lcore,
                    numa_socket: w.numa_socket,
                    rx_queues: w.rx_queues.clone(),
                    snapshot_generation: w.counters.snapshot_generation.get(),
                    running: w.running,
                    stats: Some(worker_stats(w)),
                })
                .collect(),
        }))
    }
}

/// Protocol of a stored service as a label value.
pub(crate) fn protocol_label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// The health fields of a backend's stats (defaults when it is not checked).
fn backend_health(
    controller: &Controller,
    service: &str,
    endpoint: crate::state::Endpoint,
) -> v1::BackendStats {
    use crate::health::Health;
    let Some(h) = controller.health().get(service, endpoint) else {
        return v1::BackendStats::default();
    };
    let health = match h.health {
        Health::Unknown => v1::BackendHealth::Unknown,
        Health::Up => v1::BackendHealth::Up,
        Health::Down => v1::BackendHealth::Down,
    };
    v1::BackendStats {
        health: health.into(),
        health_message: h.message,
        ..v1::BackendStats::default()
    }
}
