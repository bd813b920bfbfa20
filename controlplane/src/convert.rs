//! Domain types to `sluice.v1` messages, for responses, watch events and clients that show
//! the state. Output-only live fields (`Service.status`, `Backend.status`) are left unset: the
//! daemon fills them from the dataplane's counters and the health checker.
//!
//! The conversions are the inverse of [`crate::validate`] for every stored value:
//! `validate(convert(x)) == x` (defaults come back filled in).

use crate::ipam::VipPool;
use crate::state::{
    BackendSpec, BackendState, HealthCheck, InterfaceSpec, NatMode, NeighbourSpec, ObjectMeta,
    Probe, Protocol, RouteSpec, Selection, ServiceSpec, SnatPoolSpec, Stored, StoredService,
};
use sluice_proto::v1;

pub fn meta_to_proto(meta: &ObjectMeta) -> v1::ObjectMeta {
    v1::ObjectMeta {
        resource_version: meta.resource_version,
        generation: meta.generation,
    }
}

pub fn protocol_to_proto(protocol: Protocol) -> v1::Protocol {
    match protocol {
        Protocol::Tcp => v1::Protocol::Tcp,
        Protocol::Udp => v1::Protocol::Udp,
    }
}

pub fn nat_mode_to_proto(mode: NatMode) -> v1::NatMode {
    match mode {
        NatMode::Dnat => v1::NatMode::Dnat,
        NatMode::FullNat => v1::NatMode::FullNat,
    }
}

pub fn selection_to_proto(selection: Selection) -> v1::Selection {
    match selection {
        Selection::Maglev => v1::Selection::Maglev,
        Selection::RoundRobin => v1::Selection::RoundRobin,
        Selection::SourceHash => v1::Selection::SourceHash,
    }
}

pub fn backend_state_to_proto(state: BackendState) -> v1::BackendState {
    match state {
        BackendState::Active => v1::BackendState::Active,
        BackendState::Draining => v1::BackendState::Draining,
        BackendState::Reject => v1::BackendState::Reject,
    }
}

pub fn backend_to_proto(backend: &BackendSpec) -> v1::Backend {
    v1::Backend {
        address: backend.address.to_string(),
        port: u32::from(backend.port),
        weight: Some(backend.weight),
        state: backend_state_to_proto(backend.state).into(),
        status: None,
    }
}

fn duration_to_proto(duration: core::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        // Always below 1e9, so it fits.
        nanos: duration.subsec_nanos() as i32,
    }
}

pub fn health_check_to_proto(check: &HealthCheck) -> v1::HealthCheck {
    let mut proto = v1::HealthCheck {
        r#type: v1::HealthCheckType::None.into(),
        interval: Some(duration_to_proto(check.interval)),
        timeout: Some(duration_to_proto(check.timeout)),
        rise: Some(check.rise),
        fall: Some(check.fall),
        port: check.port.map(u32::from),
        ..v1::HealthCheck::default()
    };
    let kind = match &check.probe {
        Probe::Ping => v1::HealthCheckType::Ping,
        Probe::Tcp => v1::HealthCheckType::Tcp,
        Probe::Udp { request, response } => {
            proto.udp_request.clone_from(request);
            proto.udp_response.clone_from(response);
            v1::HealthCheckType::Udp
        }
        Probe::Http(http) | Probe::Https(http) => {
            proto.http_path.clone_from(&http.path);
            proto.http_host = http.host.clone().unwrap_or_default();
            proto.http_expected_status = Some(u32::from(http.expected_status));
            if matches!(check.probe, Probe::Http(_)) {
                v1::HealthCheckType::Http
            } else {
                v1::HealthCheckType::Https
            }
        }
    };
    proto.r#type = kind.into();
    proto
}

/// A service spec as a `Service` message without meta or status.
pub fn service_spec_to_proto(spec: &ServiceSpec) -> v1::Service {
    v1::Service {
        name: spec.name.clone(),
        labels: spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        vip: spec.vip.to_string(),
        port: u32::from(spec.port),
        protocol: protocol_to_proto(spec.protocol).into(),
        mode: nat_mode_to_proto(spec.mode).into(),
        selection: selection_to_proto(spec.selection).into(),
        session_persistence: spec.session_persistence,
        snat_pool: spec.snat_pool.clone().unwrap_or_default(),
        maglev_table_size: spec.maglev_table_size,
        backends: spec.backends.iter().map(backend_to_proto).collect(),
        health_check: spec.health_check.as_ref().map(health_check_to_proto),
        meta: None,
        status: None,
    }
}

/// A stored service with its meta (status unset).
pub fn service_to_proto(service: &StoredService) -> v1::Service {
    v1::Service {
        meta: Some(meta_to_proto(&service.meta)),
        ..service_spec_to_proto(&service.spec)
    }
}

/// A VIP pool with its allocations and capacity.
pub fn vip_pool_to_proto(pool: &Stored<VipPool>) -> v1::VipPool {
    let spec = &pool.spec.spec;
    v1::VipPool {
        name: spec.name.clone(),
        cidrs: spec.cidrs.iter().map(ToString::to_string).collect(),
        excluded_addresses: spec.excluded.iter().map(ToString::to_string).collect(),
        allocations: pool
            .spec
            .allocations
            .iter()
            .map(|(address, owner)| v1::VipAllocation {
                address: address.to_string(),
                owner: owner.clone(),
            })
            .collect(),
        capacity: u64::try_from(spec.capacity()).unwrap_or(u64::MAX),
        meta: Some(meta_to_proto(&pool.meta)),
    }
}

/// A SNAT pool; `used_by` from [`DesiredState::snat_pool_users`](crate::state::DesiredState::snat_pool_users).
pub fn snat_pool_to_proto(pool: &Stored<SnatPoolSpec>, used_by: Vec<String>) -> v1::SnatPool {
    v1::SnatPool {
        name: pool.spec.name.clone(),
        addresses: pool
            .spec
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        meta: Some(meta_to_proto(&pool.meta)),
        used_by,
    }
}

pub fn interface_to_proto(interface: &Stored<InterfaceSpec>) -> v1::Interface {
    v1::Interface {
        port: interface.spec.port.clone(),
        addresses: interface
            .spec
            .addresses
            .iter()
            .map(ToString::to_string)
            .collect(),
        meta: Some(meta_to_proto(&interface.meta)),
    }
}

pub fn route_to_proto(route: &Stored<RouteSpec>) -> v1::Route {
    v1::Route {
        prefix: route.spec.prefix.to_string(),
        next_hop: route
            .spec
            .next_hop
            .map(|hop| hop.to_string())
            .unwrap_or_default(),
        port: route.spec.port.clone(),
        meta: Some(meta_to_proto(&route.meta)),
    }
}

pub fn neighbour_to_proto(neighbour: &Stored<NeighbourSpec>) -> v1::Neighbour {
    v1::Neighbour {
        address: neighbour.spec.address.to_string(),
        mac: neighbour.spec.mac.to_string(),
        port: neighbour.spec.port.clone(),
        learned: false,
        meta: Some(meta_to_proto(&neighbour.meta)),
    }
}
