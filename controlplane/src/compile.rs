//! The desired state to the dataplane's [`SnapshotConfig`], and on to a [`Snapshot`].
//!
//! - Snapshot generation = [`DesiredState::revision`], so it grows with every accepted change.
//!   A state that was never changed (revision 0) compiles to the equivalent of
//!   [`Snapshot::empty`], which the daemon need not publish.
//! - Service and backend ids are the stored counter slots
//!   ([`StoredService::id`](crate::state::StoredService::id) and `backend_ids`): stable across
//!   compiles and restarts, dense (lowest free slot), so the workers' preallocated counters
//!   need capacity [`DesiredState::service_slot_bound`] and
//!   [`DesiredState::backend_slot_bound`]. A slot freed by a deletion is reused by a later
//!   creation; the daemon records the slot's counters as the new object's baseline. Services, SNAT pools, routes and neighbours are
//!   emitted in the state's order (by name, prefix, port and address), so compiling the same
//!   state twice gives the same config.
//! - The selection seed is the state's, fixed at its creation.
//! - Ports are named in the state and numbered in the dataplane: `ports[i]` is the name of
//!   DPDK port `i` in the daemon's configuration.
//! - Interface addresses become the snapshot's local addresses with their prefix length:
//!   the dataplane answers ARP/ND and pings for them and derives a connected route for each
//!   subnet (static routes of the same prefix win).
//!
//! Errors name the object by its key (`services["web"].backends[1]`), not by its position.

use crate::health::HealthTable;
use crate::state::{self, DesiredState};
use dataplane::flow::{Addr, Proto};
use dataplane::lb::Selection;
use dataplane::snapshot::{
    Backend, BackendState, LocalAddr, NatMode, Neighbour, Route, ServiceConfig, ServiceKey,
    Snapshot, SnapshotConfig, SnatPool,
};
use std::collections::HashMap;

/// Why the state did not compile. The state's own rules make this rare: it happens when the
/// daemon's ports changed since the state was written, or when a rule of the dataplane is
/// stricter than the control plane's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("{field}: no port named {port:?} in the daemon's configuration")]
    UnknownPort { field: String, port: String },
    #[error("{field}: no SNAT pool named {pool:?}")]
    UnknownSnatPool { field: String, pool: String },
    /// The dataplane refused the config; `field` names the object by its key.
    #[error("{field}: {reason}")]
    Dataplane { field: String, reason: String },
}

/// The keys of the objects in a [`SnapshotConfig`], by position, for error messages.
#[derive(Clone, Debug, Default)]
struct ConfigKeys {
    services: Vec<String>,
    snat_pools: Vec<String>,
    routes: Vec<String>,
    neighbours: Vec<String>,
}

impl ConfigKeys {
    /// `services[3].backends[1]` → `services["web"].backends[1]`.
    fn rename(&self, field: &str) -> String {
        for (list, keys) in [
            ("services", &self.services),
            ("snat_pools", &self.snat_pools),
            ("routes", &self.routes),
            ("neighbours", &self.neighbours),
        ] {
            let Some(rest) = field
                .strip_prefix(list)
                .and_then(|rest| rest.strip_prefix('['))
            else {
                continue;
            };
            let Some((index, tail)) = rest.split_once(']') else {
                continue;
            };
            if let Some(key) = index.parse::<usize>().ok().and_then(|i| keys.get(i)) {
                return format!("{list}[{key:?}]{tail}");
            }
        }
        field.to_owned()
    }
}

fn port_index<S: AsRef<str>>(ports: &[S], name: &str, field: String) -> Result<u16, CompileError> {
    ports
        .iter()
        .position(|p| p.as_ref() == name)
        .and_then(|i| u16::try_from(i).ok())
        .ok_or_else(|| CompileError::UnknownPort {
            field,
            port: name.to_owned(),
        })
}

fn proto(protocol: state::Protocol) -> Proto {
    match protocol {
        state::Protocol::Tcp => Proto::Tcp,
        state::Protocol::Udp => Proto::Udp,
    }
}

fn service_config(
    stored: &state::StoredService,
    snat_pool_index: &HashMap<&str, usize>,
) -> Result<ServiceConfig, CompileError> {
    let spec = &stored.spec;
    let snat_pool = match &spec.snat_pool {
        None => None,
        Some(pool) => Some(*snat_pool_index.get(pool.as_str()).ok_or_else(|| {
            CompileError::UnknownSnatPool {
                field: format!("services[{:?}].snat_pool", spec.name),
                pool: pool.clone(),
            }
        })?),
    };
    Ok(ServiceConfig {
        id: stored.id,
        name: spec.name.clone(),
        key: ServiceKey {
            vip: Addr::from(spec.vip),
            port: spec.port,
            proto: proto(spec.protocol),
        },
        mode: match spec.mode {
            state::NatMode::Dnat => NatMode::Dnat,
            state::NatMode::FullNat => NatMode::FullNat,
        },
        selection: match spec.selection {
            state::Selection::Maglev => Selection::Maglev,
            state::Selection::RoundRobin => Selection::RoundRobin,
            state::Selection::SourceHash => Selection::SourceHash,
        },
        persistence: spec.session_persistence,
        backends: spec
            .backends
            .iter()
            .zip(&stored.backend_ids)
            .map(|(b, &id)| Backend {
                id,
                addr: Addr::from(b.address),
                port: b.port,
                weight: b.weight,
                state: match b.state {
                    state::BackendState::Active => BackendState::Active,
                    state::BackendState::Draining => BackendState::Draining,
                    state::BackendState::Reject => BackendState::Reject,
                },
            })
            .collect(),
        snat_pool,
        table_size: spec.maglev_table_size,
    })
}

/// The dataplane config of `state`. `ports[i]` names DPDK port `i`.
pub fn snapshot_config<S: AsRef<str>>(
    state: &DesiredState,
    ports: &[S],
) -> Result<SnapshotConfig, CompileError> {
    snapshot_config_with_keys(state, ports).map(|(config, _)| config)
}

fn snapshot_config_with_keys<S: AsRef<str>>(
    state: &DesiredState,
    ports: &[S],
) -> Result<(SnapshotConfig, ConfigKeys), CompileError> {
    let mut keys = ConfigKeys::default();
    let mut snat_pool_index = HashMap::with_capacity(state.snat_pools().len());
    let mut snat_pools = Vec::with_capacity(state.snat_pools().len());
    for (i, (name, pool)) in state.snat_pools().iter().enumerate() {
        snat_pool_index.insert(name.as_str(), i);
        keys.snat_pools.push(name.clone());
        snat_pools.push(SnatPool {
            addrs: pool.spec.addresses.iter().map(|&a| Addr::from(a)).collect(),
        });
    }

    let mut services = Vec::with_capacity(state.services().len());
    for (name, stored) in state.services() {
        keys.services.push(name.clone());
        services.push(service_config(stored, &snat_pool_index)?);
    }

    let mut routes = Vec::with_capacity(state.routes().len());
    for (prefix, route) in state.routes() {
        let key = prefix.to_string();
        let port = port_index(ports, &route.spec.port, format!("routes[{key:?}].port"))?;
        keys.routes.push(key);
        routes.push(Route {
            prefix: Addr::from(prefix.network()),
            prefix_len: prefix.prefix_len(),
            next_hop: route.spec.next_hop.map(Addr::from),
            port,
        });
    }

    let mut neighbours = Vec::new();
    for neighbour in state.neighbours() {
        let spec = &neighbour.spec;
        let key = format!("{}%{}", spec.address, spec.port);
        let port = port_index(ports, &spec.port, format!("neighbours[{key:?}].port"))?;
        keys.neighbours.push(key);
        neighbours.push(Neighbour {
            addr: Addr::from(spec.address),
            mac: spec.mac.0,
            port,
        });
    }

    let mut local_addrs = Vec::new();
    for (name, interface) in state.interfaces() {
        let port = port_index(
            ports,
            &interface.spec.port,
            format!("interfaces[{name:?}].port"),
        )?;
        for address in &interface.spec.addresses {
            local_addrs.push(LocalAddr {
                addr: Addr::from(address.address),
                port,
                prefix_len: address.prefix_len,
            });
        }
    }

    let config = SnapshotConfig {
        generation: state.revision(),
        selection_seed: state.selection_seed(),
        services,
        snat_pools,
        routes,
        neighbours,
        local_addrs,
    };
    Ok((config, keys))
}

/// Compiles `state` into a snapshot, reusing the Maglev tables of unchanged services from
/// `previous` (pass the currently published snapshot).
pub fn compile<S: AsRef<str>>(
    state: &DesiredState,
    ports: &[S],
    previous: Option<&Snapshot>,
) -> Result<Snapshot, CompileError> {
    let (config, keys) = snapshot_config_with_keys(state, ports)?;
    Snapshot::compile(config, previous).map_err(|e| CompileError::Dataplane {
        field: keys.rename(&e.field),
        reason: e.reason,
    })
}

/// Compiles `state` like [`compile`], with backend health: backends the checker reports DOWN
/// take no new flows (they are compiled as draining, so their established connections drain).
/// The generation is the state's revision, or one more than `previous`'s when that is not
/// lower (a health change republishes the same revision): generations only grow, and a
/// snapshot's generation is never below the revision it was compiled from.
pub fn compile_with_health<S: AsRef<str>>(
    state: &DesiredState,
    ports: &[S],
    previous: Option<&Snapshot>,
    health: &HealthTable,
) -> Result<Snapshot, CompileError> {
    let (mut config, keys) = snapshot_config_with_keys(state, ports)?;
    // `config.services` follows `state.services()` order (see `snapshot_config_with_keys`).
    for (service, (name, stored)) in config.services.iter_mut().zip(state.services()) {
        for (backend, spec) in service.backends.iter_mut().zip(&stored.spec.backends) {
            // REJECT backends are never probed; keep them refusing their share.
            if spec.state != state::BackendState::Reject && health.is_down(name, spec.endpoint()) {
                backend.state = BackendState::Draining;
            }
        }
    }
    if let Some(previous) = previous {
        if previous.generation() >= config.generation {
            config.generation = previous.generation() + 1;
        }
    }
    Snapshot::compile(config, previous).map_err(|e| CompileError::Dataplane {
        field: keys.rename(&e.field),
        reason: e.reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{backend, service, snat_pool};
    use crate::state::{InterfaceSpec, NeighbourSpec, RouteSpec};
    use core::net::IpAddr;

    const PORTS: [&str; 2] = ["port0", "port1"];

    fn key(spec: &state::ServiceSpec) -> ServiceKey {
        ServiceKey {
            vip: Addr::from(spec.vip),
            port: spec.port,
            proto: proto(spec.protocol),
        }
    }

    #[test]
    fn dnat_and_full_nat_services_compile_and_are_found() {
        let mut state = DesiredState::with_selection_seed(42);
        state.apply_snat_pool(snat_pool("egress", 1), None).unwrap();
        let dnat = service("web", 10);
        let mut full = service("api", 20);
        full.mode = state::NatMode::FullNat;
        full.snat_pool = Some("egress".into());
        full.backends[1].state = state::BackendState::Draining;
        state.apply_service(dnat.clone(), None).unwrap();
        state.apply_service(full.clone(), None).unwrap();
        state
            .apply_interface(
                InterfaceSpec {
                    port: "port1".into(),
                    addresses: vec!["198.18.0.1/24".parse().unwrap()],
                },
                None,
            )
            .unwrap();
        state
            .apply_route(
                RouteSpec {
                    prefix: "198.19.0.0/16".parse().unwrap(),
                    next_hop: Some(IpAddr::from([198, 18, 0, 254])),
                    port: "port1".into(),
                },
                None,
            )
            .unwrap();
        state
            .apply_neighbour(
                NeighbourSpec {
                    address: IpAddr::from([198, 18, 0, 254]),
                    mac: "02:00:00:00:00:fe".parse().unwrap(),
                    port: "port1".into(),
                },
                None,
            )
            .unwrap();

        let snapshot = compile(&state, &PORTS, None).unwrap();
        assert_eq!(snapshot.generation(), state.revision());
        assert_eq!(snapshot.selection_seed(), 42);
        let web = snapshot.service(&key(&dnat)).expect("DNAT service");
        assert_eq!((web.name.as_str(), web.mode), ("web", NatMode::Dnat));
        assert_eq!(web.id, state.service("web").unwrap().id);
        let api = snapshot.service(&key(&full)).expect("full-NAT service");
        assert_eq!(api.mode, NatMode::FullNat);
        let pool = snapshot.snat_pool(api.snat_pool.unwrap()).unwrap();
        assert_eq!(pool.addrs, [Addr::from(IpAddr::from([198, 18, 200, 1]))]);
        assert_eq!(api.backends[1].state, BackendState::Draining);
        assert_eq!(
            api.backends.iter().map(|b| b.id).collect::<Vec<_>>(),
            state.service("api").unwrap().backend_ids
        );
        assert!(snapshot.is_snat_addr(&Addr::from(IpAddr::from([198, 18, 200, 1]))));
        assert_eq!(snapshot.routes()[0].port, 1);
        assert_eq!(snapshot.routes()[0].prefix_len, 16);
        assert_eq!(snapshot.neighbours()[0].mac, [2, 0, 0, 0, 0, 0xfe]);

        // Recompiling an unchanged state reuses the tables and gives the same config.
        let again = compile(&state, &PORTS, Some(&snapshot)).unwrap();
        assert!(again.services()[0]
            .selector
            .shares_tables_with(&snapshot.services()[0].selector));
        assert_eq!(
            snapshot_config(&state, &PORTS).unwrap(),
            snapshot_config(&state, &PORTS).unwrap()
        );
    }

    #[test]
    fn unknown_ports_are_named() {
        let mut state = DesiredState::with_selection_seed(42);
        state
            .apply_interface(
                InterfaceSpec {
                    port: "uplink".into(),
                    addresses: vec![],
                },
                None,
            )
            .unwrap();
        state
            .apply_route(
                RouteSpec {
                    prefix: "0.0.0.0/0".parse().unwrap(),
                    next_hop: Some(IpAddr::from([198, 18, 0, 254])),
                    port: "uplink".into(),
                },
                None,
            )
            .unwrap();
        assert_eq!(
            compile(&state, &PORTS, None).unwrap_err().to_string(),
            "routes[\"0.0.0.0/0\"].port: no port named \"uplink\" in the daemon's configuration"
        );
    }

    #[test]
    fn dataplane_errors_name_the_service() {
        let keys = ConfigKeys {
            services: vec!["api".into(), "web".into()],
            ..ConfigKeys::default()
        };
        assert_eq!(
            keys.rename("services[1].backends[0].weight"),
            "services[\"web\"].backends[0].weight"
        );
        assert_eq!(keys.rename("services[7].key"), "services[7].key");
        assert_eq!(keys.rename("routes[0]"), "routes[0]");
    }

    #[test]
    fn down_backends_compile_as_draining_and_generations_grow() {
        use crate::health::{BackendKey, HealthTable};
        let mut state = DesiredState::with_selection_seed(42);
        let web = service("web", 10);
        state.apply_service(web.clone(), None).unwrap();
        let health = HealthTable::new();
        let first = compile_with_health(&state, &PORTS, None, &health).unwrap();
        assert_eq!(first.generation(), state.revision());
        let down = web.backends[0].endpoint();
        let key = BackendKey {
            service: "web".into(),
            endpoint: down,
        };
        health.track(key.clone(), 1, 1);
        health.record(&key, Err("connect: connection refused".into()));
        // Same revision, republished: the next generation, the backend out of selection.
        let second = compile_with_health(&state, &PORTS, Some(&first), &health).unwrap();
        assert_eq!(second.generation(), first.generation() + 1);
        let compiled = second.service(&key_of(&web)).unwrap();
        assert_eq!(compiled.backends[0].state, BackendState::Draining);
        assert!(!compiled.backends[0].takes_new_flows());
        assert!(compiled.backends[1..].iter().all(|b| b.takes_new_flows()));
        // A later state change keeps both the exclusion and growing generations.
        let mut other = service("api", 20);
        other.port = 8443;
        state.apply_service(other, None).unwrap();
        let third = compile_with_health(&state, &PORTS, Some(&second), &health).unwrap();
        assert!(third.generation() > second.generation());
        assert!(third.generation() >= state.revision());
        assert_eq!(
            third.service(&key_of(&web)).unwrap().backends[0].state,
            BackendState::Draining
        );
        // Healthy again: back in selection.
        health.record(&key, Ok(()));
        let fourth = compile_with_health(&state, &PORTS, Some(&third), &health).unwrap();
        assert!(fourth.service(&key_of(&web)).unwrap().backends[0].takes_new_flows());
    }

    #[test]
    fn reject_backends_reach_the_snapshot_and_stay_selectable() {
        use crate::health::{BackendKey, HealthTable};
        let mut state = DesiredState::with_selection_seed(42);
        let mut web = service("web", 10);
        web.backends[1].state = state::BackendState::Reject;
        state.apply_service(web.clone(), None).unwrap();
        let health = HealthTable::new();
        // Even a (never expected) DOWN record must not turn a REJECT backend into draining.
        let key = BackendKey {
            service: "web".into(),
            endpoint: web.backends[1].endpoint(),
        };
        health.track(key.clone(), 1, 1);
        health.record(&key, Err("connect: connection refused".into()));
        let snapshot = compile_with_health(&state, &PORTS, None, &health).unwrap();
        let compiled = snapshot.service(&key_of(&web)).unwrap();
        assert_eq!(compiled.backends[1].state, BackendState::Reject);
        assert!(compiled.backends[1].takes_new_flows());
        assert_eq!(compiled.backends[0].state, BackendState::Active);
    }

    fn key_of(spec: &state::ServiceSpec) -> ServiceKey {
        key(spec)
    }

    /// 10,000 services x 8 backends through the state and the compiler (run with
    /// `--nocapture` to see the times; release builds are about 10x faster).
    #[test]
    fn ten_thousand_services_compile() {
        let mut state = DesiredState::with_selection_seed(42);
        let batch: Vec<_> = (0..10_000u32)
            .map(|i| {
                let mut spec = service(&format!("svc-{i}"), 0);
                let [_, _, hi, lo] = i.to_be_bytes();
                spec.vip = IpAddr::from([198, 18, hi, lo]);
                spec.backends = (1..=8).map(|h| backend(h, 8080)).collect();
                (spec, None)
            })
            .collect();
        let start = std::time::Instant::now();
        state.apply_services(batch).unwrap();
        let applied = start.elapsed();
        let start = std::time::Instant::now();
        let snapshot = compile(&state, &PORTS, None).unwrap();
        let cold = start.elapsed();
        let start = std::time::Instant::now();
        let warm = compile(&state, &PORTS, Some(&snapshot)).unwrap();
        let warm_time = start.elapsed();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::StateStore::open(dir.path()).unwrap();
        let start = std::time::Instant::now();
        store.save(&state).unwrap();
        let saved = start.elapsed();
        let size = std::fs::metadata(store.path()).unwrap().len();
        eprintln!(
            "10,000 services x 8 backends: apply batch {applied:?}, compile {cold:?}, \
             recompile reusing tables {warm_time:?}, save {saved:?} ({size} bytes)"
        );
        assert_eq!(warm.services().len(), 10_000);
        let last = state.service("svc-9999").unwrap();
        assert_eq!(snapshot.service(&key(&last.spec)).unwrap().id, last.id);
        assert_eq!(state.service_slot_bound(), 10_000);
        assert_eq!(state.backend_slot_bound(), 80_000);
    }
}
