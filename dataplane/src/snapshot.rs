//! The immutable configuration the workers read, its compiler, and its RCU publication.
//!
//! The control plane turns its desired state into a [`SnapshotConfig`] (plain data),
//! [`Snapshot::compile`]s it (validation, Maglev tables, lookup maps) and publishes it through
//! the process's [`SnapshotHandle`]. Each worker holds a [`SnapshotReader`] and calls
//! [`SnapshotReader::current`] once per burst: one relaxed atomic load when nothing changed, no
//! lock, no allocation. An old snapshot is freed when the last reader that still caches it
//! moves on to a newer one.
//!
//! # Maglev table sizes
//! A table of `M` slots costs `2 * M` bytes and O(M log M) to build; its balance error is about
//! one slot per backend, i.e. `backends / M`. The paper's default `M = 65537` is 128 KiB per
//! service, 1.3 GB for 10,000 services, so a service that does not set `table_size` gets the
//! smallest prime of [`TABLE_SIZE_LADDER`] with at least [`DEFAULT_SLOTS_PER_BACKEND`] slots
//! per configured backend: 8 backends get 1021 slots (2 KiB, ~1% balance), 100 get 16381.
//! Sizes come from a fixed ladder, and count configured (not just active) backends, so draining
//! or weight changes never resize a table, and adding backends resizes it only when the count
//! crosses a ladder step (a resize remaps most flows; established ones keep their backend
//! through the connection table). Removing one of `N` backends moves about `1/N` of the hash
//! space plus a few percent of that (see the Maglev tests).

pub use crate::flow::NatMode;
use crate::flow::{Addr, FastBuildHasher, FlowKey, Proto};
use crate::lb::maglev::{self, MaglevBackend, MaglevError, MAX_BACKENDS};
use crate::lb::{backend_key, RoundRobinCursors, Selection, Selector};
use crate::route::Lpm;
use arc_swap::{ArcSwap, Cache};
use core::fmt;
use hashbrown::{HashMap, HashSet};
use std::sync::Arc;

/// Largest backend weight accepted: the Gateway API's limit for `backendRefs[].weight`.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Slots per configured backend that a default-sized Maglev table provides at least.
pub const DEFAULT_SLOTS_PER_BACKEND: u64 = 100;
/// Default Maglev table sizes: primes about a power of two apart (65537 is the paper's).
pub const TABLE_SIZE_LADDER: [u32; 17] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 131_071, 262_139, 524_287, 1_048_573,
    2_097_143, 4_194_301, 8_388_593, 16_777_213,
];

/// What a service listens on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub vip: Addr,
    pub port: u16,
    pub proto: Proto,
}

/// Whether a backend takes new flows.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendState {
    #[default]
    Active,
    /// Keeps its established flows (the connection table has them) but gets no new ones.
    Draining,
    /// Selected like `Active` for new flows, which the pipeline then refuses (TCP reset / ICMP
    /// port unreachable) without creating a connection: the Gateway API's invalid backendRefs.
    /// Its address is never contacted.
    Reject,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Stable counter slot of this backend, assigned by the control plane and kept for the
    /// backend's life (workers index their per-backend counters with it). Must be below the
    /// workers' configured backend-counter capacity.
    pub id: u32,
    pub addr: Addr,
    pub port: u16,
    /// Relative share of new flows, `0..=MAX_WEIGHT`; 0 takes none.
    pub weight: u32,
    pub state: BackendState,
}

impl Backend {
    /// Whether selection may send new flows here (a `Reject` backend takes its share to
    /// refuse it).
    #[inline]
    pub fn takes_new_flows(&self) -> bool {
        matches!(self.state, BackendState::Active | BackendState::Reject) && self.weight > 0
    }
}

/// Source addresses for full-NAT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnatPool {
    pub addrs: Vec<Addr>,
}

/// A static route. `prefix_len` counts bits of the address family: at most 32 for IPv4, 128
/// for IPv6. The snapshot adds a connected route for the subnet of every interface address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Addr,
    pub prefix_len: u8,
    /// `None`: the destination is on the link.
    pub next_hop: Option<Addr>,
    pub port: u16,
}

/// A static neighbour (used instead of ARP/ND; learned ones live in
/// [`crate::neigh::NeighbourCache`]). A static neighbour also makes its address reachable on
/// its port when no route covers it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub addr: Addr,
    pub mac: [u8; 6],
    pub port: u16,
}

/// An address of the appliance itself on one port (answered for ARP; the exception path will
/// carry traffic to it to the host kernel).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LocalAddr {
    pub addr: Addr,
    pub port: u16,
    /// Subnet length (bits of the family): the subnet is directly reachable on `port` (a
    /// connected route). 32 (IPv4) or 128 (IPv6) for a host address only.
    pub prefix_len: u8,
}

/// One service as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    pub id: u32,
    pub name: String,
    pub key: ServiceKey,
    pub mode: NatMode,
    pub selection: Selection,
    /// Keep a client on one backend across connections (hash of the client address only).
    pub persistence: bool,
    pub backends: Vec<Backend>,
    /// Index into [`SnapshotConfig::snat_pools`]; required for full-NAT, absent for DNAT.
    pub snat_pool: Option<usize>,
    /// Maglev slots; `None` picks from [`TABLE_SIZE_LADDER`] (see the module docs).
    pub table_size: Option<u32>,
}

/// Everything a snapshot is compiled from, as plain data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// Must grow with every publication ([`SnapshotHandle::publish`] checks).
    pub generation: u64,
    /// Seed of the selection hashes. Load balancers that must pick the same backends for the
    /// same flows (ECMP in front of several) need the same seed; keep it stable across restarts.
    pub selection_seed: u64,
    pub services: Vec<ServiceConfig>,
    pub snat_pools: Vec<SnatPool>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    /// The appliance's own interface addresses.
    pub local_addrs: Vec<LocalAddr>,
}

/// A compiled service.
#[derive(Clone, Debug)]
pub struct Service {
    pub id: u32,
    pub name: String,
    pub key: ServiceKey,
    pub mode: NatMode,
    pub selection: Selection,
    pub persistence: bool,
    pub backends: Vec<Backend>,
    /// Index into [`Snapshot::snat_pools`].
    pub snat_pool: Option<usize>,
    /// The table size asked for (`None`: default), kept to decide whether tables can be reused.
    pub table_size: Option<u32>,
    /// Dense position in [`Snapshot::services`]: the index of this service's round-robin
    /// cursor in [`RoundRobinCursors`].
    pub slot: usize,
    pub selector: Selector,
}

impl Service {
    /// Picks a backend for a new flow (`flow` as the client sent it), with this worker's
    /// cursors; `None` when no backend takes new flows.
    #[inline]
    pub fn select_backend(
        &self,
        flow: &FlowKey,
        cursors: &mut RoundRobinCursors,
    ) -> Option<(u32, &Backend)> {
        let index = self.selector.select(flow, cursors.for_service(self.slot))?;
        Some((index, self.backends.get(index as usize)?))
    }
}

/// A configuration field that failed validation: `field` is its path in the
/// [`SnapshotConfig`], e.g. `services[3].backends[1].weight`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CompileError {
    pub field: String,
    pub reason: String,
}

impl CompileError {
    fn new(field: impl Into<String>, reason: impl fmt::Display) -> CompileError {
        CompileError {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// The immutable state the workers read. Build it with [`Snapshot::compile`].
#[derive(Debug, Default)]
pub struct Snapshot {
    generation: u64,
    selection_seed: u64,
    services: Vec<Service>,
    by_key: HashMap<ServiceKey, usize, FastBuildHasher>,
    vips: HashSet<Addr, FastBuildHasher>,
    snat_addrs: HashSet<Addr, FastBuildHasher>,
    snat_pools: Vec<SnatPool>,
    routes: Vec<Route>,
    neighbours: Vec<Neighbour>,
    neighbour_by_addr: HashMap<Addr, usize, FastBuildHasher>,
    local_addrs: Vec<LocalAddr>,
    local_set: HashSet<Addr, FastBuildHasher>,
    /// Connected subnets and static routes (statics win over a connected route of the same
    /// prefix).
    lpm: Lpm,
}

impl Snapshot {
    /// Generation 0 with nothing configured: what workers see before the first compile.
    pub fn empty() -> Snapshot {
        Snapshot::default()
    }

    /// Validates `config` and builds the lookup structures. Selectors of services whose
    /// selection inputs (selection, persistence, backends, table size, seed) equal those of
    /// the same service key in `previous` are shared with it instead of rebuilt.
    pub fn compile(
        config: SnapshotConfig,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, CompileError> {
        validate_pools(&config.snat_pools)?;
        validate_routes(&config.routes)?;
        validate_neighbours(&config.neighbours)?;
        validate_local_addrs(&config.local_addrs)?;

        let mut by_key =
            HashMap::with_capacity_and_hasher(config.services.len(), FastBuildHasher::default());
        let mut ids = HashMap::with_capacity(config.services.len());
        let mut vips = HashSet::with_hasher(FastBuildHasher::default());
        let mut services = Vec::with_capacity(config.services.len());
        for (slot, service) in config.services.into_iter().enumerate() {
            let path = format!("services[{slot}]");
            validate_service(&path, &service, &config.snat_pools)?;
            if let Some(first) = ids.insert(service.id, slot) {
                return Err(CompileError::new(
                    format!("{path}.id"),
                    format_args!("{} is already used by services[{first}]", service.id),
                ));
            }
            if let Some(first) = by_key.insert(service.key, slot) {
                return Err(CompileError::new(
                    format!("{path}.key"),
                    format_args!("same VIP, port and protocol as services[{first}]"),
                ));
            }
            vips.insert(service.key.vip);
            let selector = reusable_selector(previous, &service, config.selection_seed)
                .map_or_else(
                    || build_selector(&path, &service, config.selection_seed),
                    Ok,
                )?;
            services.push(Service {
                id: service.id,
                name: service.name,
                key: service.key,
                mode: service.mode,
                selection: service.selection,
                persistence: service.persistence,
                backends: service.backends,
                snat_pool: service.snat_pool,
                table_size: service.table_size,
                slot,
                selector,
            });
        }
        let snat_addrs = config
            .snat_pools
            .iter()
            .flat_map(|pool| pool.addrs.iter().copied())
            .collect();
        Ok(Snapshot {
            generation: config.generation,
            selection_seed: config.selection_seed,
            services,
            by_key,
            vips,
            snat_addrs,
            snat_pools: config.snat_pools,
            neighbour_by_addr: config
                .neighbours
                .iter()
                .enumerate()
                .rev() // the first entry for an address wins
                .map(|(i, n)| (n.addr, i))
                .collect(),
            neighbours: config.neighbours,
            local_set: config.local_addrs.iter().map(|l| l.addr).collect(),
            lpm: Lpm::build(
                &config
                    .local_addrs
                    .iter()
                    .map(connected_route)
                    .chain(config.routes.iter().copied())
                    .collect::<Vec<_>>(),
            ),
            routes: config.routes,
            local_addrs: config.local_addrs,
        })
    }

    /// The service listening on `key`.
    #[inline]
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(*self.by_key.get(key)?)
    }

    /// Whether `addr` is the VIP of some service (a packet to it is client traffic).
    #[inline]
    pub fn is_vip(&self, addr: &Addr) -> bool {
        self.vips.contains(addr)
    }

    /// Whether `addr` belongs to some SNAT pool (a packet to it is a full-NAT reply).
    #[inline]
    pub fn is_snat_addr(&self, addr: &Addr) -> bool {
        self.snat_addrs.contains(addr)
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn selection_seed(&self) -> u64 {
        self.selection_seed
    }

    /// All services; a service's position is its [`Service::slot`].
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn snat_pools(&self) -> &[SnatPool] {
        &self.snat_pools
    }

    pub fn snat_pool(&self, index: usize) -> Option<&SnatPool> {
        self.snat_pools.get(index)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether the appliance owns `addr` on `port`: an interface address there, or a VIP or
    /// SNAT address (those are answered on every port).
    pub fn answers_for(&self, addr: &Addr, port: u16) -> bool {
        self.vips.contains(addr)
            || self.snat_addrs.contains(addr)
            || self
                .local_addrs
                .iter()
                .any(|l| l.port == port && l.addr == *addr)
    }

    pub fn local_addrs(&self) -> &[LocalAddr] {
        &self.local_addrs
    }

    /// Whether `addr` is an interface address of the appliance (on any port).
    #[inline]
    pub fn is_local_addr(&self, addr: &Addr) -> bool {
        self.local_set.contains(addr)
    }

    /// The compiled route table (connected subnets and static routes).
    pub fn lpm(&self) -> &Lpm {
        &self.lpm
    }

    /// Where a packet to `dst` leaves: the port and the next hop whose MAC it needs. The most
    /// specific route wins; without one, a static neighbour entry for `dst` itself makes it
    /// reachable on that neighbour's port; otherwise `None` (not routable).
    #[inline]
    pub fn egress(&self, dst: &Addr) -> Option<(u16, Addr)> {
        if let Some(route) = self.lpm.lookup(dst) {
            return Some((route.port, route.next_hop.unwrap_or(*dst)));
        }
        self.neighbour(dst).map(|n| (n.port, *dst))
    }

    /// Our address to ask for `target` from on `port` (the sender of an ARP request or NS):
    /// an interface address of the port whose subnet covers `target`, else any of the port's
    /// addresses of that family, else the unspecified address.
    pub fn source_for(&self, port: u16, target: &Addr) -> Addr {
        let same_family = || {
            self.local_addrs
                .iter()
                .filter(|l| l.port == port && l.addr.is_v4() == target.is_v4())
        };
        same_family()
            .find(|l| {
                let r = connected_route(l);
                crate::route::lookup_linear(std::slice::from_ref(&r), target).is_some()
            })
            .or_else(|| same_family().next())
            .map_or(Addr::UNSPECIFIED, |l| l.addr)
    }

    /// The VIPs and SNAT addresses (announced on every port).
    pub fn service_addrs(&self) -> impl Iterator<Item = &Addr> {
        self.vips.iter().chain(self.snat_addrs.iter())
    }

    /// The static neighbour entry for `addr`, if any.
    #[inline]
    pub fn neighbour(&self, addr: &Addr) -> Option<&Neighbour> {
        self.neighbours.get(*self.neighbour_by_addr.get(addr)?)
    }

    pub fn neighbours(&self) -> &[Neighbour] {
        &self.neighbours
    }
}

/// The Maglev table size used when a service does not set one: the smallest
/// [`TABLE_SIZE_LADDER`] prime with [`DEFAULT_SLOTS_PER_BACKEND`] slots per backend.
pub fn default_table_size(backends: usize) -> u32 {
    let wanted = backends as u64 * DEFAULT_SLOTS_PER_BACKEND;
    TABLE_SIZE_LADDER
        .iter()
        .copied()
        .find(|&size| u64::from(size) >= wanted)
        .unwrap_or(maglev::MAX_TABLE_SIZE)
}

fn reusable_selector(
    previous: Option<&Snapshot>,
    service: &ServiceConfig,
    seed: u64,
) -> Option<Selector> {
    let previous = previous.filter(|p| p.selection_seed == seed)?;
    let old = previous.service(&service.key)?;
    let same = old.selection == service.selection
        && old.persistence == service.persistence
        && old.table_size == service.table_size
        && old.backends == service.backends;
    same.then(|| old.selector.clone())
}

fn build_selector(
    path: &str,
    service: &ServiceConfig,
    seed: u64,
) -> Result<Selector, CompileError> {
    let candidates: Vec<MaglevBackend> = service
        .backends
        .iter()
        .map(|b| MaglevBackend {
            key: backend_key(&b.addr, b.port),
            weight: if b.takes_new_flows() { b.weight } else { 0 },
        })
        .collect();
    let size = service
        .table_size
        .unwrap_or_else(|| default_table_size(service.backends.len()));
    Selector::build(
        service.selection,
        service.persistence,
        &candidates,
        size,
        seed,
    )
    .map_err(|e| match e {
        MaglevError::DuplicateKey { first, second } => CompileError::new(
            format!("{path}.backends[{second}]"),
            format_args!("hash key collides with backends[{first}]; change its port or address"),
        ),
        MaglevError::TooManyBackends(_) => CompileError::new(format!("{path}.backends"), e),
        _ => CompileError::new(format!("{path}.table_size"), e),
    })
}

fn validate_service(
    path: &str,
    service: &ServiceConfig,
    pools: &[SnatPool],
) -> Result<(), CompileError> {
    if service.name.is_empty() {
        return Err(CompileError::new(
            format!("{path}.name"),
            "must not be empty",
        ));
    }
    let key = &service.key;
    if key.vip == Addr::UNSPECIFIED {
        return Err(CompileError::new(
            format!("{path}.key.vip"),
            "must not be unspecified",
        ));
    }
    let has_ports = matches!(key.proto, Proto::Tcp | Proto::Udp);
    if has_ports && key.port == 0 {
        return Err(CompileError::new(
            format!("{path}.key.port"),
            "must not be 0",
        ));
    }
    if service.backends.len() > MAX_BACKENDS {
        return Err(CompileError::new(
            format!("{path}.backends"),
            format_args!(
                "{} backends, at most {MAX_BACKENDS}",
                service.backends.len()
            ),
        ));
    }
    let mut seen = HashMap::with_capacity(service.backends.len());
    for (j, backend) in service.backends.iter().enumerate() {
        let field = format!("{path}.backends[{j}]");
        if backend.addr == Addr::UNSPECIFIED {
            return Err(CompileError::new(
                format!("{field}.addr"),
                "must not be unspecified",
            ));
        }
        if backend.addr.is_v4() != key.vip.is_v4() {
            return Err(CompileError::new(
                format!("{field}.addr"),
                "address family differs from the VIP's (no NAT64)",
            ));
        }
        if has_ports && backend.port == 0 {
            return Err(CompileError::new(format!("{field}.port"), "must not be 0"));
        }
        if backend.weight > MAX_WEIGHT {
            return Err(CompileError::new(
                format!("{field}.weight"),
                format_args!("must be <= {MAX_WEIGHT}"),
            ));
        }
        if let Some(first) = seen.insert((backend.addr, backend.port), j) {
            return Err(CompileError::new(
                field,
                format_args!("same address and port as backends[{first}]"),
            ));
        }
    }
    match (service.mode, service.snat_pool) {
        (NatMode::Dnat, Some(_)) => Err(CompileError::new(
            format!("{path}.snat_pool"),
            "DNAT services do not use a SNAT pool",
        )),
        (NatMode::FullNat, None) => Err(CompileError::new(
            format!("{path}.snat_pool"),
            "required for full-NAT",
        )),
        (NatMode::FullNat, Some(index)) => match pools.get(index) {
            None => Err(CompileError::new(
                format!("{path}.snat_pool"),
                format_args!("no snat_pools[{index}] ({} pools)", pools.len()),
            )),
            Some(pool) if !pool.addrs.iter().any(|a| a.is_v4() == key.vip.is_v4()) => {
                Err(CompileError::new(
                    format!("{path}.snat_pool"),
                    format_args!("snat_pools[{index}] has no address of the VIP's family"),
                ))
            }
            Some(_) => Ok(()),
        },
        (NatMode::Dnat, None) => Ok(()),
    }?;
    if let Some(size) = service.table_size {
        maglev::validate(&[], size)
            .map_err(|e| CompileError::new(format!("{path}.table_size"), e))?;
        let min = service.backends.len() as u64 * u64::from(maglev::MIN_SLOTS_PER_BACKEND);
        if u64::from(size) < min {
            return Err(CompileError::new(
                format!("{path}.table_size"),
                format_args!(
                    "{size} is too small for {} backends (needs a prime >= {min})",
                    service.backends.len()
                ),
            ));
        }
    }
    Ok(())
}

fn validate_pools(pools: &[SnatPool]) -> Result<(), CompileError> {
    let mut seen: HashMap<Addr, (usize, usize)> = HashMap::new();
    for (i, pool) in pools.iter().enumerate() {
        if pool.addrs.is_empty() {
            return Err(CompileError::new(
                format!("snat_pools[{i}].addrs"),
                "must not be empty",
            ));
        }
        for (j, addr) in pool.addrs.iter().enumerate() {
            let field = format!("snat_pools[{i}].addrs[{j}]");
            if *addr == Addr::UNSPECIFIED {
                return Err(CompileError::new(field, "must not be unspecified"));
            }
            // Pools partition SNAT ports per address; sharing an address would share ports.
            if let Some((pi, pj)) = seen.insert(*addr, (i, j)) {
                return Err(CompileError::new(
                    field,
                    format_args!("{addr} is already snat_pools[{pi}].addrs[{pj}]"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_routes(routes: &[Route]) -> Result<(), CompileError> {
    for (i, route) in routes.iter().enumerate() {
        let max = if route.prefix.is_v4() { 32 } else { 128 };
        if route.prefix_len > max {
            return Err(CompileError::new(
                format!("routes[{i}].prefix_len"),
                format_args!("must be <= {max} for {}", route.prefix),
            ));
        }
        if let Some(hop) = route.next_hop {
            if hop.is_v4() != route.prefix.is_v4() {
                return Err(CompileError::new(
                    format!("routes[{i}].next_hop"),
                    "address family differs from the prefix's",
                ));
            }
        }
    }
    Ok(())
}

/// The connected route of an interface address: its subnet, on its port.
fn connected_route(local: &LocalAddr) -> Route {
    let width: u8 = if local.addr.is_v4() { 32 } else { 128 };
    let len = local.prefix_len.min(width);
    let host_bits = u32::from(width - len);
    let mask = if host_bits >= 128 {
        0
    } else {
        u128::MAX << host_bits
    };
    // For IPv4 the mask keeps the IPv4-mapped prefix (host_bits <= 32).
    Route {
        prefix: Addr((u128::from_be_bytes(local.addr.0) & mask).to_be_bytes()),
        prefix_len: len,
        next_hop: None,
        port: local.port,
    }
}

fn validate_local_addrs(locals: &[LocalAddr]) -> Result<(), CompileError> {
    for (i, local) in locals.iter().enumerate() {
        let max = if local.addr.is_v4() { 32 } else { 128 };
        if local.prefix_len > max {
            return Err(CompileError::new(
                format!("local_addrs[{i}].prefix_len"),
                format_args!("must be <= {max} for {}", local.addr),
            ));
        }
    }
    Ok(())
}

fn validate_neighbours(neighbours: &[Neighbour]) -> Result<(), CompileError> {
    let mut seen = HashMap::with_capacity(neighbours.len());
    for (i, neighbour) in neighbours.iter().enumerate() {
        if let Some(first) = seen.insert((neighbour.addr, neighbour.port), i) {
            return Err(CompileError::new(
                format!("neighbours[{i}]"),
                format_args!("same address and port as neighbours[{first}]"),
            ));
        }
    }
    Ok(())
}

/// Why a snapshot was not published.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("generation {offered} is not newer than the published generation {current}")]
    StaleGeneration { current: u64, offered: u64 },
}

/// The publisher side of the current snapshot; one per process.
#[derive(Debug)]
pub struct SnapshotHandle {
    shared: Arc<ArcSwap<Snapshot>>,
}

impl SnapshotHandle {
    pub fn new(initial: Snapshot) -> SnapshotHandle {
        SnapshotHandle {
            shared: Arc::new(ArcSwap::from_pointee(initial)),
        }
    }

    /// Makes `snapshot` current for every reader's next [`SnapshotReader::current`]. Refuses a
    /// generation that is not newer than the current one, so a slow compile cannot roll back a
    /// newer publication.
    pub fn publish(&self, snapshot: Snapshot) -> Result<(), PublishError> {
        let offered = Arc::new(snapshot);
        loop {
            let current = self.shared.load();
            if offered.generation <= current.generation {
                return Err(PublishError::StaleGeneration {
                    current: current.generation,
                    offered: offered.generation,
                });
            }
            let replaced = self.shared.compare_and_swap(&current, Arc::clone(&offered));
            if Arc::ptr_eq(&replaced, &current) {
                return Ok(());
            }
        }
    }

    /// The current snapshot (control-plane side, e.g. as `previous` for the next compile).
    pub fn load(&self) -> Arc<Snapshot> {
        self.shared.load_full()
    }

    /// A reader for one worker.
    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader {
            cache: Cache::new(Arc::clone(&self.shared)),
        }
    }
}

/// A worker's view of the current snapshot. It caches an `Arc` of the snapshot it last saw,
/// which keeps that snapshot alive until the worker's next [`current`](Self::current).
pub struct SnapshotReader {
    cache: Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>,
}

impl SnapshotReader {
    /// The current snapshot, valid until the next call. When nothing was published since the
    /// last call this is one relaxed atomic load and a pointer compare.
    #[inline]
    pub fn current(&mut self) -> &Snapshot {
        self.cache.load()
    }
}

impl fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotReader").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::disruption;
    use std::sync::Weak;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Addr {
        Addr::from_v4([a, b, c, d])
    }

    fn backend(host: u8, weight: u32) -> Backend {
        Backend {
            id: u32::from(host),
            addr: v4(198, 19, 0, host),
            port: 8080,
            weight,
            state: BackendState::Active,
        }
    }

    fn service(id: u32, backends: Vec<Backend>) -> ServiceConfig {
        ServiceConfig {
            id,
            name: format!("svc-{id}"),
            key: ServiceKey {
                vip: v4(198, 18, (id >> 8) as u8, id as u8),
                port: 80,
                proto: Proto::Tcp,
            },
            mode: NatMode::Dnat,
            selection: Selection::Maglev,
            persistence: false,
            backends,
            snat_pool: None,
            table_size: None,
        }
    }

    fn config(generation: u64, services: Vec<ServiceConfig>) -> SnapshotConfig {
        SnapshotConfig {
            generation,
            selection_seed: 42,
            services,
            snat_pools: vec![SnatPool {
                addrs: vec![v4(198, 18, 200, 1), v4(198, 18, 200, 2)],
            }],
            ..SnapshotConfig::default()
        }
    }

    fn client_flow(vip: Addr, port: u16) -> FlowKey {
        FlowKey {
            src: v4(198, 18, 50, 7),
            dst: vip,
            src_port: port,
            dst_port: 80,
            proto: Proto::Tcp,
        }
    }

    fn compile_err(config: SnapshotConfig) -> String {
        Snapshot::compile(config, None).unwrap_err().to_string()
    }

    #[test]
    fn ladder_sizes_are_prime_and_growing() {
        assert!(TABLE_SIZE_LADDER.iter().all(|&s| maglev::is_prime(s)));
        assert!(TABLE_SIZE_LADDER.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(default_table_size(0), 251);
        assert_eq!(default_table_size(8), 1021);
        assert_eq!(default_table_size(100), 16381);
        assert_eq!(default_table_size(600), 65537);
        assert_eq!(default_table_size(MAX_BACKENDS), 8_388_593);
    }

    #[test]
    fn lookups_and_address_classes() {
        let mut full = service(2, vec![backend(3, 1)]);
        full.mode = NatMode::FullNat;
        full.snat_pool = Some(0);
        let snap = Snapshot::compile(
            config(
                1,
                vec![service(1, vec![backend(1, 1), backend(2, 1)]), full],
            ),
            None,
        )
        .unwrap();
        let key = snap.services()[1].key;
        let found = snap.service(&key).unwrap();
        assert_eq!((found.id, found.slot), (2, 1));
        assert!(snap.service(&ServiceKey { port: 81, ..key }).is_none());
        assert!(snap.is_vip(&key.vip) && !snap.is_vip(&v4(198, 18, 200, 1)));
        assert!(snap.is_snat_addr(&v4(198, 18, 200, 2)) && !snap.is_snat_addr(&key.vip));
        assert_eq!(snap.generation(), 1);
        assert_eq!(snap.snat_pool(0).unwrap().addrs.len(), 2);
    }

    #[test]
    fn selection_skips_draining_backends() {
        let mut backends = vec![backend(1, 1), backend(2, 1), backend(3, 1)];
        backends[1].state = BackendState::Draining;
        for selection in [
            Selection::Maglev,
            Selection::RoundRobin,
            Selection::SourceHash,
        ] {
            let mut svc = service(1, backends.clone());
            svc.selection = selection;
            let snap = Snapshot::compile(config(1, vec![svc]), None).unwrap();
            let svc = &snap.services()[0];
            let mut cursors = RoundRobinCursors::new(0);
            cursors.fit(snap.services().len());
            for port in 1000..1300 {
                let (index, chosen) = svc
                    .select_backend(&client_flow(svc.key.vip, port), &mut cursors)
                    .unwrap();
                assert_ne!(index, 1);
                assert_eq!(chosen.state, BackendState::Active);
            }
        }
        let drained = service(1, vec![backend(1, 0)]);
        let snap = Snapshot::compile(config(1, vec![drained]), None).unwrap();
        let svc = &snap.services()[0];
        let mut cursors = RoundRobinCursors::new(0);
        assert!(svc
            .select_backend(&client_flow(svc.key.vip, 1), &mut cursors)
            .is_none());
    }

    #[test]
    fn errors_name_the_offending_field() {
        let mut c = config(1, vec![service(1, vec![backend(1, 1)]); 4]);
        for (i, s) in c.services.iter_mut().enumerate() {
            s.id = i as u32;
            s.key.port = 80 + i as u16;
        }
        c.services[3].backends.push(backend(2, MAX_WEIGHT + 1));
        assert_eq!(
            compile_err(c.clone()),
            "services[3].backends[1].weight: must be <= 1000000"
        );
        c.services[3].backends[1] = backend(1, 5);
        assert_eq!(
            compile_err(c.clone()),
            "services[3].backends[1]: same address and port as backends[0]"
        );
        c.services[3].backends.pop();
        c.services[2].key = c.services[0].key;
        assert_eq!(
            compile_err(c.clone()),
            "services[2].key: same VIP, port and protocol as services[0]"
        );
        c.services[2].key.port = 9;
        c.services[2].id = 1;
        assert_eq!(
            compile_err(c.clone()),
            "services[2].id: 1 is already used by services[1]"
        );
        c.services[2].id = 2;
        c.services[1].table_size = Some(1000);
        assert_eq!(
            compile_err(c.clone()),
            "services[1].table_size: table size 1000 is not prime"
        );
        c.services[1].table_size = Some(7);
        assert!(compile_err(c.clone()).starts_with("services[1].table_size: 7 is too small"));
        c.services[1].table_size = Some(13);
        c.services[0].mode = NatMode::FullNat;
        assert_eq!(
            compile_err(c.clone()),
            "services[0].snat_pool: required for full-NAT"
        );
        c.services[0].snat_pool = Some(3);
        assert_eq!(
            compile_err(c.clone()),
            "services[0].snat_pool: no snat_pools[3] (1 pools)"
        );
        c.services[0].snat_pool = Some(0);
        c.services[0].backends[0].addr =
            Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert!(compile_err(c.clone()).starts_with("services[0].backends[0].addr: address family"));
        c.services[0].backends[0] = backend(1, 1);
        c.snat_pools.push(SnatPool {
            addrs: vec![v4(198, 18, 200, 2)],
        });
        assert_eq!(
            compile_err(c.clone()),
            "snat_pools[1].addrs[0]: 198.18.200.2 is already snat_pools[0].addrs[1]"
        );
        c.snat_pools.pop();
        c.routes.push(Route {
            prefix: v4(198, 18, 0, 0),
            prefix_len: 33,
            next_hop: None,
            port: 0,
        });
        assert_eq!(
            compile_err(c.clone()),
            "routes[0].prefix_len: must be <= 32 for 198.18.0.0"
        );
        c.routes[0].prefix_len = 15;
        c.services[1].key.port = 0;
        assert_eq!(
            compile_err(c.clone()),
            "services[1].key.port: must not be 0"
        );
        c.services[1].key.port = 81;
        assert!(Snapshot::compile(c, None).is_ok());
    }

    #[test]
    fn unchanged_services_reuse_tables() {
        let services: Vec<_> = (0..20)
            .map(|i| service(i, (1..=8).map(|h| backend(h, 1)).collect()))
            .collect();
        let first = Snapshot::compile(config(1, services.clone()), None).unwrap();
        let mut changed = services.clone();
        changed[5].backends.pop();
        changed[6].name = "renamed".into();
        let second = Snapshot::compile(config(2, changed), Some(&first)).unwrap();
        for (i, (a, b)) in first.services().iter().zip(second.services()).enumerate() {
            assert_eq!(
                a.selector.shares_tables_with(&b.selector),
                i != 5,
                "service {i}"
            );
        }
        // One of eight backends removed: about 1/8 of the hash space moves.
        let moved = disruption(
            first.services()[5].selector.maglev_table().unwrap(),
            second.services()[5].selector.maglev_table().unwrap(),
        );
        assert!((0.12..0.2).contains(&moved), "moved {moved}");
        // A different seed invalidates every table.
        let mut reseeded = config(3, services);
        reseeded.selection_seed = 7;
        let third = Snapshot::compile(reseeded, Some(&second)).unwrap();
        assert!(third
            .services()
            .iter()
            .zip(second.services())
            .all(|(a, b)| !a.selector.shares_tables_with(&b.selector)));
    }

    /// 10,000 services x 8 backends, all default-sized tables.
    #[test]
    fn compiles_ten_thousand_services_quickly() {
        let services: Vec<_> = (0..10_000u32)
            .map(|i| {
                let mut s = service(i, (1..=8).map(|h| backend(h, h as u32)).collect());
                s.key.vip = v4(198, 18, (i >> 8) as u8, i as u8);
                s.key.port = 80 + (i >> 16) as u16;
                s
            })
            .collect();
        let start = std::time::Instant::now();
        let snap = Snapshot::compile(config(1, services.clone()), None).unwrap();
        let cold = start.elapsed();
        let start = std::time::Instant::now();
        let again = Snapshot::compile(config(2, services), Some(&snap)).unwrap();
        let warm = start.elapsed();
        eprintln!("compile 10k x 8: cold {cold:?}, reusing tables {warm:?}");
        assert_eq!(again.services().len(), 10_000);
        // Unoptimised builds are slow; release is ~10x faster.
        assert!(cold < std::time::Duration::from_secs(20), "{cold:?}");
    }

    #[test]
    fn publish_refuses_older_generations() {
        let handle = SnapshotHandle::new(Snapshot::empty());
        handle
            .publish(Snapshot::compile(config(2, vec![]), None).unwrap())
            .unwrap();
        assert_eq!(
            handle.publish(Snapshot::compile(config(2, vec![]), None).unwrap()),
            Err(PublishError::StaleGeneration {
                current: 2,
                offered: 2
            })
        );
        assert_eq!(handle.load().generation(), 2);
    }

    #[test]
    fn old_snapshot_is_freed_only_after_every_reader_moved_on() {
        let handle = SnapshotHandle::new(Snapshot::compile(config(1, vec![]), None).unwrap());
        let mut worker_a = handle.reader();
        let mut worker_b = handle.reader();
        assert_eq!(worker_a.current().generation(), 1);
        assert_eq!(worker_b.current().generation(), 1);
        let first: Weak<Snapshot> = Arc::downgrade(&handle.load());

        handle
            .publish(Snapshot::compile(config(2, vec![]), None).unwrap())
            .unwrap();
        assert!(
            first.upgrade().is_some(),
            "both workers still cache generation 1"
        );
        assert_eq!(worker_a.current().generation(), 2);
        assert!(
            first.upgrade().is_some(),
            "worker b still caches generation 1"
        );
        assert_eq!(worker_b.current().generation(), 2);
        assert!(
            first.upgrade().is_none(),
            "no reader can see generation 1 any more"
        );

        // A reader created later never holds old generations.
        let mut late = handle.reader();
        assert_eq!(late.current().generation(), 2);
    }

    #[test]
    fn readers_on_threads_see_generations_in_order() {
        let handle = SnapshotHandle::new(Snapshot::empty());
        let last = 200u64;
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let mut reader = handle.reader();
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while seen < last {
                        let generation = reader.current().generation();
                        assert!(generation >= seen, "went back from {seen} to {generation}");
                        seen = generation;
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        for generation in 1..=last {
            let services = vec![service(generation as u32, vec![backend(1, 1)])];
            handle
                .publish(Snapshot::compile(config(generation, services), None).unwrap())
                .unwrap();
        }
        for worker in workers {
            worker.join().unwrap();
        }
    }
}
