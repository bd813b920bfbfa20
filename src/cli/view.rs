//! Serializable mirrors of the `sluice.v1` responses for `-o json|yaml` (prost messages do not
//! derive serde). Field names follow the protobuf JSON mapping (lowerCamelCase), enums use
//! the short names of [`manifest`](super::manifest), durations are text (`1m30s`) and
//! timestamps RFC 3339. Services use [`ServiceManifest`], so `get` output applies again.

use super::duration::{format_duration, from_proto};
use super::manifest::{short_enum_name, MetaView, ProtocolName, ServiceManifest};
use serde::Serialize;
use sluice_proto::v1;
use std::collections::BTreeMap;

/// `ApplyServiceResponse` and `PatchBackendsResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChange {
    /// The service as stored.
    pub service: Option<ServiceManifest>,
    /// False when nothing changed.
    pub changed: bool,
}

impl ServiceChange {
    /// From the parts of either response.
    pub fn new(service: Option<&v1::Service>, changed: bool) -> ServiceChange {
        ServiceChange {
            service: service.map(ServiceManifest::from_proto),
            changed,
        }
    }
}

/// `ApplyServicesResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceChanges {
    /// One per applied service, in request order.
    pub responses: Vec<ServiceChange>,
}

/// `ListServicesResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceList {
    /// Ordered by name.
    pub services: Vec<ServiceManifest>,
    /// The state revision the list reflects.
    pub resource_version: u64,
}

/// The `deleted` flag of every Delete* response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// False only with `--ignore-not-found` when there was nothing to delete.
    pub deleted: bool,
}

/// `VipAllocation`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VipAllocationView {
    /// The address.
    pub address: String,
    /// Who holds it.
    pub owner: String,
}

impl VipAllocationView {
    /// From the proto message.
    pub fn from_proto(allocation: &v1::VipAllocation) -> VipAllocationView {
        VipAllocationView {
            address: allocation.address.clone(),
            owner: allocation.owner.clone(),
        }
    }
}

/// `VipPool`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VipPoolView {
    /// The key.
    pub name: String,
    /// Prefixes allocated from, in order.
    pub cidrs: Vec<String>,
    /// Addresses never allocated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded_addresses: Vec<String>,
    /// Current allocations, by address.
    pub allocations: Vec<VipAllocationView>,
    /// Addresses the CIDRs hold minus exclusions.
    pub capacity: u64,
    /// Versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaView>,
}

impl VipPoolView {
    /// From the proto message.
    pub fn from_proto(pool: &v1::VipPool) -> VipPoolView {
        VipPoolView {
            name: pool.name.clone(),
            cidrs: pool.cidrs.clone(),
            excluded_addresses: pool.excluded_addresses.clone(),
            allocations: pool
                .allocations
                .iter()
                .map(VipAllocationView::from_proto)
                .collect(),
            capacity: pool.capacity,
            meta: pool.meta.as_ref().map(MetaView::from_proto),
        }
    }
}

/// `ApplyVipPoolResponse` / `ApplySnatPoolResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolChange<P> {
    /// The pool as stored.
    pub pool: Option<P>,
    /// False when nothing changed.
    pub changed: bool,
}

/// `ListVipPoolsResponse` / `ListSnatPoolsResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolList<P> {
    /// Ordered by name.
    pub pools: Vec<P>,
}

/// `AllocateVipResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocatedVip {
    /// The owner's address.
    pub address: String,
    /// False when the owner already held it.
    pub newly_allocated: bool,
    /// The pool's resource version after the call.
    pub resource_version: u64,
}

/// `ReleaseVipResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedVips {
    /// What was released.
    pub released: Vec<VipAllocationView>,
}

/// `SnatPool`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnatPoolView {
    /// The key.
    pub name: String,
    /// Source addresses.
    pub addresses: Vec<String>,
    /// Versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaView>,
    /// Services using the pool.
    pub used_by: Vec<String>,
}

impl SnatPoolView {
    /// From the proto message.
    pub fn from_proto(pool: &v1::SnatPool) -> SnatPoolView {
        SnatPoolView {
            name: pool.name.clone(),
            addresses: pool.addresses.clone(),
            meta: pool.meta.as_ref().map(MetaView::from_proto),
            used_by: pool.used_by.clone(),
        }
    }
}

/// `Connection`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub service: String,
    pub protocol: ProtocolName,
    pub client_address: String,
    pub client_port: u32,
    pub vip: String,
    pub vip_port: u32,
    pub backend_address: String,
    pub backend_port: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub snat_address: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub snat_port: u32,
    /// `syn-sent`, `established`, `closing`, `closed`, `udp`.
    pub state: String,
    pub worker: u32,
    /// Time since the first packet.
    pub age: Option<String>,
    /// Time since the last packet.
    pub idle: Option<String>,
    pub packets_to_backend: u64,
    pub bytes_to_backend: u64,
    pub packets_from_backend: u64,
    pub bytes_from_backend: u64,
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn duration_text(duration: Option<&prost_types::Duration>) -> Option<String> {
    duration.map(|d| format_duration(from_proto(d)))
}

/// The short name of a connection state.
pub fn connection_state_name(raw: i32) -> String {
    short_enum_name(
        v1::ConnectionState::try_from(raw)
            .ok()
            .map(|s| s.as_str_name()),
        "CONNECTION_STATE_",
        raw,
    )
}

impl ConnectionView {
    /// From the proto message.
    pub fn from_proto(connection: &v1::Connection) -> ConnectionView {
        ConnectionView {
            service: connection.service.clone(),
            protocol: ProtocolName::from_proto(connection.protocol),
            client_address: connection.client_address.clone(),
            client_port: connection.client_port,
            vip: connection.vip.clone(),
            vip_port: connection.vip_port,
            backend_address: connection.backend_address.clone(),
            backend_port: connection.backend_port,
            snat_address: connection.snat_address.clone(),
            snat_port: connection.snat_port,
            state: connection_state_name(connection.state),
            worker: connection.worker,
            age: duration_text(connection.age.as_ref()),
            idle: duration_text(connection.idle.as_ref()),
            packets_to_backend: connection.packets_to_backend,
            bytes_to_backend: connection.bytes_to_backend,
            packets_from_backend: connection.packets_from_backend,
            bytes_from_backend: connection.bytes_from_backend,
        }
    }
}

/// All batches of a `ListConnections` stream.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

fn sorted(map: &std::collections::HashMap<String, u64>) -> BTreeMap<String, u64> {
    map.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

/// `PortStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortStatsView {
    pub name: String,
    pub port_id: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

/// `WorkerStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatsView {
    pub worker: u32,
    pub lcore: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped_packets: u64,
    pub drops_by_reason: BTreeMap<String, u64>,
    pub handoffs_sent: u64,
    pub handoffs_received: u64,
    pub active_connections: u64,
    pub total_connections: u64,
    pub busy_ratio: f64,
    pub to_host_packets: u64,
    pub from_host_packets: u64,
    pub expired_under_pressure: u64,
}

impl WorkerStatsView {
    /// From the proto message.
    pub fn from_proto(worker: &v1::WorkerStats) -> WorkerStatsView {
        WorkerStatsView {
            worker: worker.worker,
            lcore: worker.lcore,
            rx_packets: worker.rx_packets,
            tx_packets: worker.tx_packets,
            dropped_packets: worker.dropped_packets,
            drops_by_reason: sorted(&worker.drops_by_reason),
            handoffs_sent: worker.handoffs_sent,
            handoffs_received: worker.handoffs_received,
            active_connections: worker.active_connections,
            total_connections: worker.total_connections,
            busy_ratio: worker.busy_ratio,
            to_host_packets: worker.to_host_packets,
            from_host_packets: worker.from_host_packets,
            expired_under_pressure: worker.expired_under_pressure,
        }
    }
}

/// `BackendStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatsView {
    pub address: String,
    pub port: u32,
    pub packets_to_backend: u64,
    pub bytes_to_backend: u64,
    pub packets_from_backend: u64,
    pub bytes_from_backend: u64,
    pub active_connections: u64,
    pub total_connections: u64,
    /// `unknown`, `up` or `down`.
    pub health: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub health_message: String,
}

/// `ServiceStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatsView {
    pub name: String,
    pub vip: String,
    pub port: u32,
    pub protocol: ProtocolName,
    pub packets: u64,
    pub bytes: u64,
    pub active_connections: u64,
    pub total_connections: u64,
    pub no_backend_drops: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendStatsView>,
}

/// `GetStatsResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsView {
    pub snapshot_generation: u64,
    /// RFC 3339.
    pub collected_at: Option<String>,
    pub ports: Vec<PortStatsView>,
    pub workers: Vec<WorkerStatsView>,
    pub services: Vec<ServiceStatsView>,
    pub drops_by_reason: BTreeMap<String, u64>,
}

impl StatsView {
    /// From the proto message.
    pub fn from_proto(stats: &v1::GetStatsResponse) -> StatsView {
        StatsView {
            snapshot_generation: stats.snapshot_generation,
            collected_at: stats.collected_at.as_ref().map(ToString::to_string),
            ports: stats
                .ports
                .iter()
                .map(|port| PortStatsView {
                    name: port.name.clone(),
                    port_id: port.port_id,
                    rx_packets: port.rx_packets,
                    tx_packets: port.tx_packets,
                    rx_bytes: port.rx_bytes,
                    tx_bytes: port.tx_bytes,
                    rx_missed: port.rx_missed,
                    rx_errors: port.rx_errors,
                    tx_errors: port.tx_errors,
                    rx_nombuf: port.rx_nombuf,
                })
                .collect(),
            workers: stats
                .workers
                .iter()
                .map(WorkerStatsView::from_proto)
                .collect(),
            services: stats
                .services
                .iter()
                .map(|service| ServiceStatsView {
                    name: service.name.clone(),
                    vip: service.vip.clone(),
                    port: service.port,
                    protocol: ProtocolName::from_proto(service.protocol),
                    packets: service.packets,
                    bytes: service.bytes,
                    active_connections: service.active_connections,
                    total_connections: service.total_connections,
                    no_backend_drops: service.no_backend_drops,
                    backends: service
                        .backends
                        .iter()
                        .map(|backend| BackendStatsView {
                            address: backend.address.clone(),
                            port: backend.port,
                            packets_to_backend: backend.packets_to_backend,
                            bytes_to_backend: backend.bytes_to_backend,
                            packets_from_backend: backend.packets_from_backend,
                            bytes_from_backend: backend.bytes_from_backend,
                            active_connections: backend.active_connections,
                            total_connections: backend.total_connections,
                            health: super::manifest::health_name(backend.health),
                            health_message: backend.health_message.clone(),
                        })
                        .collect(),
                })
                .collect(),
            drops_by_reason: sorted(&stats.drops_by_reason),
        }
    }
}

/// `PortStatus`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortStatusView {
    pub name: String,
    pub port_id: u32,
    pub driver: String,
    pub mac: String,
    pub link_up: bool,
    pub link_speed_mbps: u32,
    pub full_duplex: bool,
    pub rx_queues: u32,
    pub tx_queues: u32,
    pub numa_socket: i32,
}

/// `WorkerStatus`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatusView {
    pub worker: u32,
    pub lcore: u32,
    pub numa_socket: u32,
    pub rx_queues: Vec<String>,
    pub snapshot_generation: u64,
    pub running: bool,
    pub stats: Option<WorkerStatsView>,
}

/// `GetStatusResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub version: String,
    pub git_revision: String,
    pub dpdk_version: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    pub uptime: Option<String>,
    pub snapshot_generation: u64,
    pub state_resource_version: u64,
    pub ports: Vec<PortStatusView>,
    pub workers: Vec<WorkerStatusView>,
}

impl StatusView {
    /// From the proto message.
    pub fn from_proto(status: &v1::GetStatusResponse) -> StatusView {
        StatusView {
            version: status.version.clone(),
            git_revision: status.git_revision.clone(),
            dpdk_version: status.dpdk_version.clone(),
            started_at: status.started_at.as_ref().map(ToString::to_string),
            uptime: duration_text(status.uptime.as_ref()),
            snapshot_generation: status.snapshot_generation,
            state_resource_version: status.state_resource_version,
            ports: status
                .ports
                .iter()
                .map(|port| PortStatusView {
                    name: port.name.clone(),
                    port_id: port.port_id,
                    driver: port.driver.clone(),
                    mac: port.mac.clone(),
                    link_up: port.link_up,
                    link_speed_mbps: port.link_speed_mbps,
                    full_duplex: port.full_duplex,
                    rx_queues: port.rx_queues,
                    tx_queues: port.tx_queues,
                    numa_socket: port.numa_socket,
                })
                .collect(),
            workers: status
                .workers
                .iter()
                .map(|worker| WorkerStatusView {
                    worker: worker.worker,
                    lcore: worker.lcore,
                    numa_socket: worker.numa_socket,
                    rx_queues: worker.rx_queues.clone(),
                    snapshot_generation: worker.snapshot_generation,
                    running: worker.running,
                    stats: worker.stats.as_ref().map(WorkerStatsView::from_proto),
                })
                .collect(),
        }
    }
}
