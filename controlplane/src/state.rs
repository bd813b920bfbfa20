//! The desired state: every object the API manages, as plain serde data, with the
//! cross-object rules (unique listeners, existing SNAT pools, non-overlapping VIP pools, ...)
//! enforced by the mutation methods.
//!
//! # Versions
//! [`DesiredState::revision`] counts accepted changes of the whole state (one per call, also for
//! a batch). Each object records the revision of its last change as its `resource_version`,
//! and how often it changed as its `generation`. The revision is also the generation of the
//! snapshot compiled from the state ([`crate::compile`]), so "is this object live in the
//! dataplane" is `snapshot.generation() >= object.meta.resource_version`.
//!
//! # Changing the state
//! Every mutation validates before it changes anything: on `Err` the state is exactly as
//! before. The daemon's recipe for a request is: take the state lock, clone the state, apply the
//! change to the clone, compile it, persist it ([`crate::store`]), then swap it in and publish
//! the snapshot; a failure at any step drops the clone and the request fails with nothing
//! changed. Requests that change nothing (`changed == false`) need no compile or persist.

use crate::error::{ApiError, Violations};
use crate::ipam::{Allocation, VipPool, VipPoolSpec};
use crate::limits;
use crate::net::{family_name, same_family, InterfaceAddress, IpCidr, MacAddr};
use core::fmt;
use core::net::IpAddr;
use core::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};

/// IP protocol of a service.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        })
    }
}

/// How a service rewrites packets (see `NatMode` in services.proto).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatMode {
    Dnat,
    FullNat,
}

/// How a service picks a backend for a new connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    Maglev,
    RoundRobin,
    SourceHash,
}

/// Whether a backend takes new connections.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    #[default]
    Active,
    Draining,
    /// Takes its share of new connections and refuses them (the Gateway API's invalid
    /// backendRefs); never contacted, never health-checked.
    Reject,
}

/// One backend of a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BackendSpec {
    pub address: IpAddr,
    pub port: u16,
    /// `0..=limits::MAX_WEIGHT`.
    pub weight: u32,
    #[serde(default)]
    pub state: BackendState,
}

impl BackendSpec {
    /// The backend's identity within its service.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint {
            address: self.address,
            port: self.port,
        }
    }
}

/// An address and port, printed `198.18.1.1:80` or `[2001:db8::1]:80`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(v4) => write!(f, "{v4}:{}", self.port),
            IpAddr::V6(v6) => write!(f, "[{v6}]:{}", self.port),
        }
    }
}

/// What a health check sends and expects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Probe {
    Ping,
    Tcp,
    Udp {
        /// Payload sent.
        request: Vec<u8>,
        /// Prefix a healthy reply starts with; empty: any reply.
        response: Vec<u8>,
    },
    Http(HttpProbe),
    Https(HttpProbe),
}

/// An HTTP(S) GET and the status it must answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpProbe {
    pub path: String,
    /// Host header; `None`: the backend address.
    pub host: Option<String>,
    pub expected_status: u16,
}

/// Health checking of a service's backends, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    #[serde(with = "millis")]
    pub interval: Duration,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Port checked; `None`: each backend's port.
    pub port: Option<u16>,
}

/// Durations as integer milliseconds in the state file.
mod millis {
    use core::time::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// What a service listens on; unique across services.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = Endpoint {
            address: self.vip,
            port: self.port,
        };
        write!(f, "{endpoint}/{}", self.protocol)
    }
}

/// A service as the user declared it (validated, defaults filled in).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub mode: NatMode,
    pub selection: Selection,
    #[serde(default)]
    pub session_persistence: bool,
    /// Name of a SNAT pool; `Some` exactly for full-NAT.
    #[serde(default)]
    pub snat_pool: Option<String>,
    #[serde(default)]
    pub maglev_table_size: Option<u32>,
    pub backends: Vec<BackendSpec>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
}

impl ServiceSpec {
    pub fn listener(&self) -> Listener {
        Listener {
            vip: self.vip,
            port: self.port,
            protocol: self.protocol,
        }
    }

    /// The index of the backend at `endpoint`.
    pub fn backend_index(&self, endpoint: Endpoint) -> Option<usize> {
        self.backends.iter().position(|b| b.endpoint() == endpoint)
    }
}

/// Version bookkeeping of a stored object (see the module docs).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub resource_version: u64,
    pub generation: u64,
}

impl ObjectMeta {
    /// The meta after a change at `revision` of an object whose meta was `previous`.
    fn next(previous: Option<&ObjectMeta>, revision: u64) -> ObjectMeta {
        ObjectMeta {
            resource_version: revision,
            generation: previous.map_or(1, |m| m.generation + 1),
        }
    }
}

/// A stored service: the spec, its versions and its dataplane counter slots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredService {
    /// The dataplane's service id ([`dataplane::snapshot::ServiceConfig::id`]), which is also
    /// the slot of its per-worker counters: assigned at creation (the lowest free slot, so ids
    /// stay below [`limits::MAX_SERVICES`]) and kept for the service's life, across compiles
    /// and restarts.
    pub id: u32,
    /// The counter slot of each backend ([`dataplane::snapshot::Backend::id`]), parallel to
    /// `spec.backends`. A backend keeps its slot while its (address, port) stays in the
    /// service; slots are unique across all services.
    pub backend_ids: Vec<u32>,
    pub spec: ServiceSpec,
    pub meta: ObjectMeta,
}

/// Any other stored object with its versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored<T> {
    pub spec: T,
    pub meta: ObjectMeta,
}

/// Source addresses of full-NAT services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnatPoolSpec {
    pub name: String,
    /// Unique, in the order given.
    pub addresses: Vec<IpAddr>,
}

/// The addresses the appliance owns on one port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    /// The port's name in the daemon's configuration.
    pub port: String,
    pub addresses: Vec<InterfaceAddress>,
}

/// A static route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub prefix: IpCidr,
    /// `None`: on-link.
    pub next_hop: Option<IpAddr>,
    pub port: String,
}

/// A static neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighbourSpec {
    pub address: IpAddr,
    pub mac: MacAddr,
    pub port: String,
}

/// Equality-based label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// Changes to some backends of one service ([`DesiredState::patch_backends`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackendPatch {
    pub remove: Vec<Endpoint>,
    pub upsert: Vec<BackendSpec>,
    pub drain: Vec<Endpoint>,
    pub activate: Vec<Endpoint>,
    /// Skip endpoints of remove/drain/activate that do not exist instead of NOT_FOUND.
    pub allow_missing: bool,
}

/// What [`DesiredState::release_vip`] releases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseTarget {
    Address(IpAddr),
    Owner(String),
}

/// The object as stored after an apply, and whether anything changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<T> {
    pub object: T,
    pub changed: bool,
}

/// The result of [`DesiredState::allocate_vip`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct VipAllocated {
    pub allocation: Allocation,
    /// The pool's resource_version after the call.
    pub resource_version: u64,
}

/// Dense counter-slot numbers: the lowest free slot is handed out, so slots stay below the
/// number of objects ever alive at once and fit the dataplane's preallocated counter arrays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SlotAllocator {
    /// Free slots below `high_water`.
    free: BTreeSet<u32>,
    /// Every slot at or above this is free.
    high_water: u32,
}

impl SlotAllocator {
    /// The allocator for slots `used`; `Err(slot)` for a slot listed twice.
    fn from_used(used: impl IntoIterator<Item = u32>) -> Result<SlotAllocator, u32> {
        let mut in_use = BTreeSet::new();
        for slot in used {
            if !in_use.insert(slot) {
                return Err(slot);
            }
        }
        let high_water = in_use.last().map_or(0, |&max| max + 1);
        let free = (0..high_water).filter(|s| !in_use.contains(s)).collect();
        Ok(SlotAllocator { free, high_water })
    }

    fn allocate(&mut self) -> u32 {
        match self.free.pop_first() {
            Some(slot) => slot,
            None => {
                // The state's limits keep this far below u32::MAX.
                let slot = self.high_water;
                self.high_water += 1;
                slot
            }
        }
    }

    fn release(&mut self, slot: u32) {
        if slot + 1 == self.high_water {
            self.high_water = slot;
            // Fold trailing free slots back into the untouched range.
            while self.high_water > 0 && self.free.remove(&(self.high_water - 1)) {
                self.high_water -= 1;
            }
        } else if slot < self.high_water {
            self.free.insert(slot);
        }
    }

    fn in_use(&self) -> usize {
        self.high_water as usize - self.free.len()
    }
}

/// Everything the API manages. See the module docs for versions and the change recipe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StateData")]
pub struct DesiredState {
    revision: u64,
    selection_seed: u64,
    services: BTreeMap<String, StoredService>,
    vip_pools: BTreeMap<String, Stored<VipPool>>,
    snat_pools: BTreeMap<String, Stored<SnatPoolSpec>>,
    interfaces: BTreeMap<String, Stored<InterfaceSpec>>,
    routes: BTreeMap<IpCidr, Stored<RouteSpec>>,
    /// Port name, then address.
    neighbours: BTreeMap<String, BTreeMap<IpAddr, Stored<NeighbourSpec>>>,
    /// Derived: which service owns each listener (rebuilt on load).
    #[serde(skip)]
    listeners: HashMap<Listener, String>,
    /// Derived: which SNAT pool owns each address (rebuilt on load).
    #[serde(skip)]
    snat_addresses: HashMap<IpAddr, String>,
    /// Derived: service counter slots (rebuilt on load).
    #[serde(skip)]
    service_slots: SlotAllocator,
    /// Derived: backend counter slots (rebuilt on load).
    #[serde(skip)]
    backend_slots: SlotAllocator,
}

/// The persisted fields of [`DesiredState`]; loading rebuilds and checks the derived indexes.
#[derive(Deserialize)]
struct StateData {
    revision: u64,
    selection_seed: u64,
    #[serde(default)]
    services: BTreeMap<String, StoredService>,
    #[serde(default)]
    vip_pools: BTreeMap<String, Stored<VipPool>>,
    #[serde(default)]
    snat_pools: BTreeMap<String, Stored<SnatPoolSpec>>,
    #[serde(default)]
    interfaces: BTreeMap<String, Stored<InterfaceSpec>>,
    #[serde(default)]
    routes: BTreeMap<IpCidr, Stored<RouteSpec>>,
    #[serde(default)]
    neighbours: BTreeMap<String, BTreeMap<IpAddr, Stored<NeighbourSpec>>>,
}

impl TryFrom<StateData> for DesiredState {
    type Error = String;

    fn try_from(data: StateData) -> Result<DesiredState, String> {
        let mut listeners = HashMap::with_capacity(data.services.len());
        for (name, service) in &data.services {
            if *name != service.spec.name {
                return Err(format!(
                    "service stored as {name:?} is named {:?}",
                    service.spec.name
                ));
            }
            if let Some(other) = listeners.insert(service.spec.listener(), name.clone()) {
                return Err(format!(
                    "services {other:?} and {name:?} both listen on {}",
                    service.spec.listener()
                ));
            }
            if service.backend_ids.len() != service.spec.backends.len() {
                return Err(format!(
                    "service {name:?} has {} backends but {} backend ids",
                    service.spec.backends.len(),
                    service.backend_ids.len()
                ));
            }
        }
        let service_slots = SlotAllocator::from_used(data.services.values().map(|s| s.id))
            .map_err(|id| format!("two services have id {id}"))?;
        let backend_slots = SlotAllocator::from_used(
            data.services
                .values()
                .flat_map(|s| s.backend_ids.iter().copied()),
        )
        .map_err(|id| format!("two backends have id {id}"))?;
        let mut snat_addresses = HashMap::new();
        for (name, pool) in &data.snat_pools {
            for address in &pool.spec.addresses {
                if let Some(other) = snat_addresses.insert(*address, name.clone()) {
                    return Err(format!(
                        "SNAT pools {other:?} and {name:?} both have address {address}"
                    ));
                }
            }
        }
        Ok(DesiredState {
            revision: data.revision,
            selection_seed: data.selection_seed,
            services: data.services,
            vip_pools: data.vip_pools,
            snat_pools: data.snat_pools,
            interfaces: data.interfaces,
            routes: data.routes,
            neighbours: data.neighbours,
            listeners,
            snat_addresses,
            service_slots,
            backend_slots,
        })
    }
}

impl Default for DesiredState {
    fn default() -> DesiredState {
        DesiredState::new()
    }
}

/// Checks `expected` (a request's `resource_version`) against the stored object's meta.
fn check_version(
    kind: &'static str,
    name: &str,
    expected: Option<u64>,
    current: Option<&ObjectMeta>,
) -> Result<(), ApiError> {
    let actual = current.map_or(0, |m| m.resource_version);
    match expected {
        // 0 means "must not exist yet", which `actual == 0` expresses too.
        Some(expected) if expected != actual => Err(ApiError::VersionMismatch {
            kind,
            name: name.to_owned(),
            expected,
            actual,
        }),
        _ => Ok(()),
    }
}

/// Lists at most a few names for messages.
fn some_names<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    const SHOWN: usize = 5;
    let names: Vec<&String> = names.into_iter().collect();
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

impl DesiredState {
    /// An empty state with a random selection seed.
    pub fn new() -> DesiredState {
        // RandomState is seeded from the OS's randomness once per process and per instance.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x736c_7569_6365_7364); // "sluicesd"
        DesiredState::with_selection_seed(hasher.finish())
    }

    /// An empty state with a chosen selection seed: load balancers that must pick the same
    /// backends for the same flows (several behind ECMP) need the same seed.
    pub fn with_selection_seed(selection_seed: u64) -> DesiredState {
        DesiredState {
            revision: 0,
            selection_seed,
            services: BTreeMap::new(),
            vip_pools: BTreeMap::new(),
            snat_pools: BTreeMap::new(),
            interfaces: BTreeMap::new(),
            routes: BTreeMap::new(),
            neighbours: BTreeMap::new(),
            listeners: HashMap::new(),
            snat_addresses: HashMap::new(),
            service_slots: SlotAllocator::default(),
            backend_slots: SlotAllocator::default(),
        }
    }

    /// Accepted changes so far; also the generation of the snapshot compiled from this state.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Seed of the dataplane's selection hashes, fixed at the state's creation.
    pub fn selection_seed(&self) -> u64 {
        self.selection_seed
    }

    pub fn services(&self) -> &BTreeMap<String, StoredService> {
        &self.services
    }

    pub fn service(&self, name: &str) -> Option<&StoredService> {
        self.services.get(name)
    }

    /// The service listening on `listener`.
    pub fn service_by_listener(&self, listener: &Listener) -> Option<&StoredService> {
        self.services.get(self.listeners.get(listener)?)
    }

    /// Services whose labels match, by name.
    pub fn services_matching<'a>(
        &'a self,
        selector: &'a LabelSelector,
    ) -> impl Iterator<Item = &'a StoredService> + 'a {
        self.services
            .values()
            .filter(move |s| selector.matches(&s.spec.labels))
    }

    pub fn vip_pools(&self) -> &BTreeMap<String, Stored<VipPool>> {
        &self.vip_pools
    }

    pub fn snat_pools(&self) -> &BTreeMap<String, Stored<SnatPoolSpec>> {
        &self.snat_pools
    }

    /// Names of the services that use SNAT pool `name`.
    pub fn snat_pool_users(&self, name: &str) -> Vec<String> {
        self.services
            .values()
            .filter(|s| s.spec.snat_pool.as_deref() == Some(name))
            .map(|s| s.spec.name.clone())
            .collect()
    }

    pub fn interfaces(&self) -> &BTreeMap<String, Stored<InterfaceSpec>> {
        &self.interfaces
    }

    pub fn routes(&self) -> &BTreeMap<IpCidr, Stored<RouteSpec>> {
        &self.routes
    }

    /// Static neighbours ordered by port, then address.
    pub fn neighbours(&self) -> impl Iterator<Item = &Stored<NeighbourSpec>> {
        self.neighbours
            .values()
            .flat_map(|by_address| by_address.values())
    }

    // ---- services -------------------------------------------------------------------------

    /// Creates or replaces a service. `expected`: the request's resource_version.
    ///
    /// Errors: [`ApiError::Invalid`] (unknown SNAT pool, listener taken, VIP is a SNAT
    /// address), [`ApiError::VersionMismatch`], [`ApiError::ResourceExhausted`].
    pub fn apply_service(
        &mut self,
        spec: ServiceSpec,
        expected: Option<u64>,
    ) -> Result<Applied<StoredService>, ApiError> {
        let revision = self.revision + 1;
        let (applied, _) = self.apply_service_at(spec, expected, revision)?;
        if applied.changed {
            self.revision = revision;
        }
        Ok(applied)
    }

    /// Applies services atomically (all or none) as one revision, in order. Field paths of
    /// errors start with `requests[i]`.
    pub fn apply_services(
        &mut self,
        batch: Vec<(ServiceSpec, Option<u64>)>,
    ) -> Result<Vec<Applied<StoredService>>, ApiError> {
        if batch.len() > limits::MAX_APPLY_BATCH {
            return Err(ApiError::invalid(
                "requests",
                format_args!(
                    "{} entries, at most {}",
                    batch.len(),
                    limits::MAX_APPLY_BATCH
                ),
            ));
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
        let mut duplicates = Violations::new();
        for (i, (spec, _)) in batch.iter().enumerate() {
            if let Some(first) = seen.insert(&spec.name, i) {
                duplicates.push(
                    format!("requests[{i}].service.name"),
                    format_args!("{:?} is also applied by requests[{first}]", spec.name),
                );
            }
        }
        if !duplicates.is_empty() {
            return Err(duplicates.into());
        }

        let revision = self.revision + 1;
        let slots = (self.service_slots.clone(), self.backend_slots.clone());
        let mut undo: Vec<(String, Option<StoredService>)> = Vec::with_capacity(batch.len());
        let mut results = Vec::with_capacity(batch.len());
        for (i, (spec, expected)) in batch.into_iter().enumerate() {
            let name = spec.name.clone();
            match self.apply_service_at(spec, expected, revision) {
                Ok((applied, previous)) => {
                    if applied.changed {
                        undo.push((name, previous));
                    }
                    results.push(applied);
                }
                Err(error) => {
                    for (name, previous) in undo.into_iter().rev() {
                        self.restore_service(&name, previous);
                    }
                    (self.service_slots, self.backend_slots) = slots;
                    return Err(match error {
                        ApiError::Invalid(v) => {
                            ApiError::Invalid(v.prefixed(&format!("requests[{i}]")))
                        }
                        other => other,
                    });
                }
            }
        }
        if results.iter().any(|a| a.changed) {
            self.revision = revision;
        }
        Ok(results)
    }

    /// Applies one service at `revision` without bumping the state's revision; returns the
    /// previous version when something changed (for undo).
    #[allow(clippy::type_complexity)]
    fn apply_service_at(
        &mut self,
        spec: ServiceSpec,
        expected: Option<u64>,
        revision: u64,
    ) -> Result<(Applied<StoredService>, Option<StoredService>), ApiError> {
        let current = self.services.get(&spec.name);
        check_version("service", &spec.name, expected, current.map(|s| &s.meta))?;
        if let Some(current) = current {
            if current.spec == spec {
                let unchanged = Applied {
                    object: current.clone(),
                    changed: false,
                };
                return Ok((unchanged, None));
            }
        } else if self.services.len() >= limits::MAX_SERVICES {
            return Err(ApiError::ResourceExhausted(format!(
                "the state holds the maximum of {} services",
                limits::MAX_SERVICES
            )));
        }
        self.check_service_references(&spec)?;

        let previous = self.services.get(&spec.name).cloned();
        let added_backends = match &previous {
            Some(previous) => spec
                .backends
                .iter()
                .filter(|b| previous.spec.backend_index(b.endpoint()).is_none())
                .count(),
            None => spec.backends.len(),
        };
        let removed_backends = previous.as_ref().map_or(0, |p| {
            p.spec
                .backends
                .iter()
                .filter(|b| spec.backend_index(b.endpoint()).is_none())
                .count()
        });
        let total = self.backend_slots.in_use() + added_backends - removed_backends;
        if added_backends > removed_backends && total > limits::MAX_BACKENDS_TOTAL {
            return Err(ApiError::ResourceExhausted(format!(
                "the state would hold {total} backends, more than the maximum of {}",
                limits::MAX_BACKENDS_TOTAL
            )));
        }
        let (id, backend_ids) = self.assign_slots(previous.as_ref(), &spec);
        let stored = StoredService {
            id,
            backend_ids,
            meta: ObjectMeta::next(previous.as_ref().map(|p| &p.meta), revision),
            spec,
        };
        self.restore_service(&stored.spec.name.clone(), Some(stored.clone()));
        Ok((
            Applied {
                object: stored,
                changed: true,
            },
            previous,
        ))
    }

    /// Sets service `name` to `value` (or removes it), keeping the listener index right. Slots
    /// are the caller's business.
    fn restore_service(&mut self, name: &str, value: Option<StoredService>) {
        if let Some(old) = self.services.remove(name) {
            self.listeners.remove(&old.spec.listener());
        }
        if let Some(new) = value {
            self.listeners.insert(new.spec.listener(), name.to_owned());
            self.services.insert(name.to_owned(), new);
        }
    }

    /// Rules that involve other objects; field paths as in ApplyServiceRequest.
    fn check_service_references(&self, spec: &ServiceSpec) -> Result<(), ApiError> {
        let mut violations = Violations::new();
        if let Some(owner) = self.listeners.get(&spec.listener()) {
            if *owner != spec.name {
                violations.push(
                    "service.vip",
                    format_args!("{} is already used by service {owner:?}", spec.listener()),
                );
            }
        }
        if let Some(pool) = self.snat_addresses.get(&spec.vip) {
            violations.push(
                "service.vip",
                format_args!("{} is an address of SNAT pool {pool:?}", spec.vip),
            );
        }
        if let Some(pool_name) = &spec.snat_pool {
            match self.snat_pools.get(pool_name) {
                None => violations.push(
                    "service.snat_pool",
                    format_args!("no SNAT pool named {pool_name:?}"),
                ),
                Some(pool) => {
                    if !pool
                        .spec
                        .addresses
                        .iter()
                        .any(|a| same_family(a, &spec.vip))
                    {
                        violations.push(
                            "service.snat_pool",
                            format_args!(
                                "SNAT pool {pool_name:?} has no {} address for VIP {}",
                                family_name(&spec.vip),
                                spec.vip
                            ),
                        );
                    }
                }
            }
        }
        violations.into_result(()).map_err(ApiError::from)
    }

    /// The service's slot and its backends' slots for `spec`: kept from `previous` for the
    /// same service and the same backend (address, port), released for removed backends, and
    /// the lowest free ones for the rest.
    fn assign_slots(
        &mut self,
        previous: Option<&StoredService>,
        spec: &ServiceSpec,
    ) -> (u32, Vec<u32>) {
        let id = match previous {
            Some(previous) => previous.id,
            None => self.service_slots.allocate(),
        };
        let mut kept: HashMap<Endpoint, u32> = HashMap::new();
        if let Some(previous) = previous {
            for (backend, &slot) in previous.spec.backends.iter().zip(&previous.backend_ids) {
                if spec.backend_index(backend.endpoint()).is_some() {
                    kept.insert(backend.endpoint(), slot);
                } else {
                    self.backend_slots.release(slot);
                }
            }
        }
        let backend_ids = spec
            .backends
            .iter()
            .map(|b| {
                kept.get(&b.endpoint())
                    .copied()
                    .unwrap_or_else(|| self.backend_slots.allocate())
            })
            .collect();
        (id, backend_ids)
    }

    /// One more than the largest service counter slot in use: the dataplane's service
    /// counters need at least this capacity.
    pub fn service_slot_bound(&self) -> u32 {
        self.service_slots.high_water
    }

    /// One more than the largest backend counter slot in use.
    pub fn backend_slot_bound(&self) -> u32 {
        self.backend_slots.high_water
    }

    /// Deletes a service; `Ok(None)` when it did not exist and `allow_missing` is set.
    pub fn delete_service(
        &mut self,
        name: &str,
        expected: Option<u64>,
        allow_missing: bool,
    ) -> Result<Option<StoredService>, ApiError> {
        let Some(current) = self.services.get(name) else {
            return if allow_missing {
                Ok(None)
            } else {
                Err(ApiError::not_found("service", name))
            };
        };
        check_version("service", name, expected, Some(&current.meta))?;
        let removed = self.services.get(name).cloned();
        if let Some(removed) = &removed {
            self.service_slots.release(removed.id);
            for &slot in &removed.backend_ids {
                self.backend_slots.release(slot);
            }
        }
        self.restore_service(name, None);
        self.revision += 1;
        Ok(removed)
    }

    /// Changes some backends of a service (see `PatchBackends` in services.proto). Field paths
    /// name the patch's lists (`remove[1]`) or, for rules on the result, `service.backends`.
    pub fn patch_backends(
        &mut self,
        name: &str,
        patch: BackendPatch,
        expected: Option<u64>,
    ) -> Result<Applied<StoredService>, ApiError> {
        let current = self
            .services
            .get(name)
            .ok_or_else(|| ApiError::not_found("service", name))?;
        check_version("service", name, expected, Some(&current.meta))?;
        let mut spec = current.spec.clone();
        let missing = |list: &str, i: usize, endpoint: &Endpoint| ApiError::NotFound {
            kind: "backend",
            name: format!("{endpoint} ({list}[{i}]) of service {name:?}"),
        };
        for (i, endpoint) in patch.remove.iter().enumerate() {
            match spec.backend_index(*endpoint) {
                Some(index) => {
                    spec.backends.remove(index);
                }
                None if patch.allow_missing => {}
                None => return Err(missing("remove", i, endpoint)),
            }
        }
        let mut violations = Violations::new();
        for (i, backend) in patch.upsert.iter().enumerate() {
            if !same_family(&backend.address, &spec.vip) {
                violations.push(
                    format!("upsert[{i}].address"),
                    format_args!(
                        "{} backend for {} VIP {} (no NAT64)",
                        family_name(&backend.address),
                        family_name(&spec.vip),
                        spec.vip
                    ),
                );
                continue;
            }
            match spec.backend_index(backend.endpoint()) {
                Some(index) => spec.backends[index] = backend.clone(),
                None => spec.backends.push(backend.clone()),
            }
        }
        if !violations.is_empty() {
            return Err(violations.into());
        }
        for (list, endpoints, state) in [
            ("drain", &patch.drain, BackendState::Draining),
            ("activate", &patch.activate, BackendState::Active),
        ] {
            for (i, endpoint) in endpoints.iter().enumerate() {
                match spec.backend_index(*endpoint) {
                    Some(index) => spec.backends[index].state = state,
                    None if patch.allow_missing => {}
                    None => return Err(missing(list, i, endpoint)),
                }
            }
        }
        crate::validate::check_service(&spec, "service")?;
        self.apply_service(spec, None)
    }

    // ---- VIP pools ------------------------------------------------------------------------

    /// Creates or replaces a VIP pool, keeping its allocations.
    pub fn apply_vip_pool(
        &mut self,
        spec: VipPoolSpec,
        expected: Option<u64>,
    ) -> Result<Applied<Stored<VipPool>>, ApiError> {
        let current = self.vip_pools.get(&spec.name);
        check_version("VIP pool", &spec.name, expected, current.map(|p| &p.meta))?;
        if let Some(current) = current {
            if current.spec.spec == spec {
                return Ok(Applied {
                    object: current.clone(),
                    changed: false,
                });
            }
        } else if self.vip_pools.len() >= limits::MAX_VIP_POOLS {
            return Err(ApiError::ResourceExhausted(format!(
                "the state holds the maximum of {} VIP pools",
                limits::MAX_VIP_POOLS
            )));
        }
        let mut violations = Violations::new();
        for (i, cidr) in spec.cidrs.iter().enumerate() {
            for (other_name, other) in &self.vip_pools {
                if *other_name == spec.name {
                    continue;
                }
                if let Some(theirs) = other.spec.spec.cidrs.iter().find(|c| c.overlaps(cidr)) {
                    violations.push(
                        format!("pool.cidrs[{i}]"),
                        format_args!("{cidr} overlaps {theirs} of VIP pool {other_name:?}"),
                    );
                }
            }
        }
        violations.into_result(()).map_err(ApiError::from)?;
        let mut pool = current
            .map(|c| c.spec.clone())
            .unwrap_or_else(|| VipPool::new(spec.clone()));
        let stranded = pool.stranded_by(&spec);
        if !stranded.is_empty() {
            let addresses: Vec<String> = stranded.iter().map(|a| a.to_string()).collect();
            return Err(ApiError::FailedPrecondition(format!(
                "VIP pool {:?} would no longer contain allocated addresses {}; release them first",
                spec.name,
                some_names(&addresses)
            )));
        }
        pool.spec = spec;
        let revision = self.revision + 1;
        let stored = Stored {
            meta: ObjectMeta::next(current.map(|c| &c.meta), revision),
            spec: pool,
        };
        self.vip_pools
            .insert(stored.spec.spec.name.clone(), stored.clone());
        self.revision = revision;
        Ok(Applied {
            object: stored,
            changed: true,
        })
    }

    /// Deletes a VIP pool that has no allocations.
    pub fn delete_vip_pool(
        &mut self,
        name: &str,
        expected: Option<u64>,
        allow_missing: bool,
    ) -> Result<Option<Stored<VipPool>>, ApiError> {
        let Some(current) = self.vip_pools.get(name) else {
            return if allow_missing {
                Ok(None)
            } else {
                Err(ApiError::not_found("VIP pool", name))
            };
        };
        check_version("VIP pool", name, expected, Some(&current.meta))?;
        if !current.spec.allocations.is_empty() {
            return Err(ApiError::FailedPrecondition(format!(
                "VIP pool {name:?} still has {} allocations; release them first",
                current.spec.allocations.len()
            )));
        }
        self.revision += 1;
        Ok(self.vip_pools.remove(name))
    }

    /// Allocates an address of pool `pool` to `owner` (idempotent per owner, see [`crate::ipam`]).
    pub fn allocate_vip(
        &mut self,
        pool: &str,
        owner: &str,
        requested: Option<IpAddr>,
    ) -> Result<VipAllocated, ApiError> {
        let revision = self.revision + 1;
        let stored = self
            .vip_pools
            .get_mut(pool)
            .ok_or_else(|| ApiError::not_found("VIP pool", pool))?;
        let allocation = stored.spec.allocate(owner, requested)?;
        if allocation.newly_allocated {
            stored.meta = ObjectMeta::next(Some(&stored.meta), revision);
            self.revision = revision;
        }
        Ok(VipAllocated {
            allocation,
            resource_version: stored.meta.resource_version,
        })
    }

    /// Releases allocations of pool `pool`; returns (address, owner) of each released one.
    pub fn release_vip(
        &mut self,
        pool: &str,
        target: &ReleaseTarget,
    ) -> Result<Vec<(IpAddr, String)>, ApiError> {
        let revision = self.revision + 1;
        let stored = self
            .vip_pools
            .get_mut(pool)
            .ok_or_else(|| ApiError::not_found("VIP pool", pool))?;
        let released: Vec<(IpAddr, String)> = match target {
            ReleaseTarget::Address(address) => {
                stored.spec.release_address(address).into_iter().collect()
            }
            ReleaseTarget::Owner(owner) => stored.spec.release_owner(owner),
        };
        if !released.is_empty() {
            stored.meta = ObjectMeta::next(Some(&stored.meta), revision);
            self.revision = revision;
        }
        Ok(released)
    }

    // ---- SNAT pools -----------------------------------------------------------------------

    /// Creates or replaces a SNAT pool.
    pub fn apply_snat_pool(
        &mut self,
        spec: SnatPoolSpec,
        expected: Option<u64>,
    ) -> Result<Applied<Stored<SnatPoolSpec>>, ApiError> {
        let current = self.snat_pools.get(&spec.name);
        check_version("SNAT pool", &spec.name, expected, current.map(|p| &p.meta))?;
        if let Some(current) = current {
            if current.spec == spec {
                return Ok(Applied {
                    object: current.clone(),
                    changed: false,
                });
            }
        } else if self.snat_pools.len() >= limits::MAX_SNAT_POOLS {
            return Err(ApiError::ResourceExhausted(format!(
                "the state holds the maximum of {} SNAT pools",
                limits::MAX_SNAT_POOLS
            )));
        }
        let mut violations = Violations::new();
        for (i, address) in spec.addresses.iter().enumerate() {
            if let Some(other) = self.snat_addresses.get(address) {
                if *other != spec.name {
                    violations.push(
                        format!("pool.addresses[{i}]"),
                        format_args!("{address} is already in SNAT pool {other:?}"),
                    );
                }
            }
            if let Some(service) = self.services.values().find(|s| s.spec.vip == *address) {
                violations.push(
                    format!("pool.addresses[{i}]"),
                    format_args!("{address} is the VIP of service {:?}", service.spec.name),
                );
            }
        }
        violations.into_result(()).map_err(ApiError::from)?;
        let stranded: Vec<&String> = self
            .services
            .values()
            .filter(|s| s.spec.snat_pool.as_deref() == Some(spec.name.as_str()))
            .filter(|s| !spec.addresses.iter().any(|a| same_family(a, &s.spec.vip)))
            .map(|s| &s.spec.name)
            .collect();
        if !stranded.is_empty() {
            return Err(ApiError::FailedPrecondition(format!(
                "services {} use SNAT pool {:?} and would have no address of their VIP's family",
                some_names(stranded),
                spec.name
            )));
        }
        let revision = self.revision + 1;
        let stored = Stored {
            meta: ObjectMeta::next(current.map(|c| &c.meta), revision),
            spec,
        };
        if let Some(old) = self
            .snat_pools
            .insert(stored.spec.name.clone(), stored.clone())
        {
            for address in &old.spec.addresses {
                self.snat_addresses.remove(address);
            }
        }
        for address in &stored.spec.addresses {
            self.snat_addresses
                .insert(*address, stored.spec.name.clone());
        }
        self.revision = revision;
        Ok(Applied {
            object: stored,
            changed: true,
        })
    }

    /// Deletes a SNAT pool no service uses.
    pub fn delete_snat_pool(
        &mut self,
        name: &str,
        expected: Option<u64>,
        allow_missing: bool,
    ) -> Result<Option<Stored<SnatPoolSpec>>, ApiError> {
        let Some(current) = self.snat_pools.get(name) else {
            return if allow_missing {
                Ok(None)
            } else {
                Err(ApiError::not_found("SNAT pool", name))
            };
        };
        check_version("SNAT pool", name, expected, Some(&current.meta))?;
        let users = self.snat_pool_users(name);
        if !users.is_empty() {
            return Err(ApiError::FailedPrecondition(format!(
                "SNAT pool {name:?} is used by services {}",
                some_names(&users)
            )));
        }
        let removed = self.snat_pools.remove(name);
        if let Some(removed) = &removed {
            for address in &removed.spec.addresses {
                self.snat_addresses.remove(address);
            }
        }
        self.revision += 1;
        Ok(removed)
    }

    // ---- network --------------------------------------------------------------------------

    /// Sets the addresses of a port. The port name must have been checked against the
    /// daemon's ports ([`crate::validate::apply_interface_request`] does).
    pub fn apply_interface(
        &mut self,
        spec: InterfaceSpec,
        expected: Option<u64>,
    ) -> Result<Applied<Stored<InterfaceSpec>>, ApiError> {
        let current = self.interfaces.get(&spec.port);
        check_version("interface", &spec.port, expected, current.map(|i| &i.meta))?;
        if let Some(current) = current {
            if current.spec == spec {
                return Ok(Applied {
                    object: current.clone(),
                    changed: false,
                });
            }
        } else if self.interfaces.len() >= limits::MAX_INTERFACES {
            return Err(ApiError::ResourceExhausted(format!(
                "the state holds the maximum of {} interfaces",
                limits::MAX_INTERFACES
            )));
        }
        let mut violations = Violations::new();
        for (i, address) in spec.addresses.iter().enumerate() {
            let elsewhere = self.interfaces.values().find(|other| {
                other.spec.port != spec.port
                    && other
                        .spec
                        .addresses
                        .iter()
                        .any(|a| a.address == address.address)
            });
            if let Some(other) = elsewhere {
                violations.push(
                    format!("interface.addresses[{i}]"),
                    format_args!(
                        "{} is already on port {:?}",
                        address.address, other.spec.port
                    ),
                );
            }
        }
        violations.into_result(()).map_err(ApiError::from)?;
        let revision = self.revision + 1;
        let stored = Stored {
            meta: ObjectMeta::next(current.map(|c| &c.meta), revision),
            spec,
        };
        self.interfaces
            .insert(stored.spec.port.clone(), stored.clone());
        self.revision = revision;
        Ok(Applied {
            object: stored,
            changed: true,
        })
    }

    /// Removes the addresses of a port that no route or neighbour uses.
    pub fn delete_interface(
        &mut self,
        port: &str,
        expected: Option<u64>,
        allow_missing: bool,
    ) -> Result<Option<Stored<InterfaceSpec>>, ApiError> {
        let Some(current) = self.interfaces.get(port) else {
            return if allow_missing {
                Ok(None)
            } else {
                Err(ApiError::not_found("interface", port))
            };
        };
        check_version("interface", port, expected, Some(&current.meta))?;
        let routes: Vec<String> = self
            .routes
            .values()
            .filter(|r| r.spec.port == port)
            .map(|r| r.spec.prefix.to_string())
            .collect();
        let neighbours = self.neighbours.get(port).map_or(0, BTreeMap::len);
        if !routes.is_empty() || neighbours > 0 {
            return Err(ApiError::FailedPrecondition(format!(
                "port {port:?} is used by {} routes ({}) and {neighbours} neighbours; delete them first",
                routes.len(),
                some_names(&routes)
            )));
        }
        self.revision += 1;
        Ok(self.interfaces.remove(port))
    }

    fn check_port_has_interface(&self, field: &str, port: &str) -> Result<(), ApiError> {
        if self.interfaces.contains_key(port) {
            Ok(())
        } else {
            Err(ApiError::invalid(
                field,
                format_args!("no interface for port {port:?}; apply the interface first"),
            ))
        }
    }

    /// Creates or replaces the route of a prefix.
    pub fn apply_route(
        &mut self,
        spec: RouteSpec,
        expected: Option<u64>,
    ) -> Result<Applied<Stored<RouteSpec>>, ApiError> {
        let key = spec.prefix.to_string();
        let current = self.routes.get(&spec.prefix);
        check_version("route", &key, expected, current.map(|r| &r.meta))?;
        if let Some(current) = current {
            if current.spec == spec {
                return Ok(Applied {
                    object: current.clone(),
                    changed: false,
                });
            }
        } else if self.routes.len() >= limits::MAX_ROUTES {
            return Err(ApiError::ResourceExhausted(format!(
                "the state holds the maximum of {} routes",
                limits::MAX_ROUTES
            )));
        }
        self.check_port_has_interface("route.port", &spec.port)?;
        let revision = self.revision + 1;
        let stored = Stored {
            meta: ObjectMeta::next(current.map(|c| &c.meta), revision),
            spec,
        };
        self.routes.insert(stored.spec.prefix, stored.clone());
        self.revision = revision;
        Ok(Applied {
            object: stored,
            changed: true,
        })
    }

    pub fn delete_route(
        &mut self,
        prefix: &IpCidr,
        expected: Option<u64>,
        allow_missing: bool,
    ) -> Result<Option<Stored<RouteSpec>>, ApiError> {
        let key = prefix.to_string();
        let Some(current) = self.routes.get(prefix) else {
            return if allow_missing {
                Ok(None)
            } else {
                Err(ApiError::not_found("route", key))
            };
        };
        check_version("route", &key, expected, Some(&current.meta))?;
        self.revision += 1;
        Ok(self.routes.remove(prefix))
    }

    /// Creates or replaces the static neighbour of (port, address).
    pub fn apply_neighbour(
        &mut self,
        spec: NeighbourSpec,
        expected: Option<u64>,
    ) -> Result<Applied<Stored<NeighbourSpec>>, ApiError> {
        let key = format!("{}%{}", spec.address, spec.port);
        let current = self
            .neighbours
            .get(&spec.port)
            .and_then(|by_address| by_address.get(&spec.address));
        check_version("neighbour", &key, expected, current.map(|n| &n.meta))?;
        if let Some(current) = current {
            if current.spec == spec {
                return Ok(Applied {
                    object: current.clone(),
                    changed: false,
                });
            }
        } else if self.neighbours().count() >= limits::MAX_NEIGHBOURS {
            return Err(ApiError::ResourceExhausted(format!(
                "the state holds the maximum of {} neighbours",
                limits::MAX_NEIGHBOURS
            )));
        }
        self.check_port_has_interface("neighbour.port", &spec.port)?;
        let revision = self.revision + 1;
        let stored = Stored {
            meta: ObjectMeta::next(current.map(|c| &c.meta), revision),
            spec,
        };
        self.neighbours
            .entry(stored.spec.port.clone())
            .or_default()
            .insert(stored.spec.address, stored.clone());
        self.revision = revision;
        Ok(Applied {
            object: stored,
            changed: true,
        })
    }

    pub fn delete_neighbour(
        &mut self,
        port: &str,
        address: &IpAddr,
        expected: Option<u64>,
        allow_missing: bool,
    ) -> Result<Option<Stored<NeighbourSpec>>, ApiError> {
        let key = format!("{address}%{port}");
        let Some(current) = self.neighbours.get(port).and_then(|n| n.get(address)) else {
            return if allow_missing {
                Ok(None)
            } else {
                Err(ApiError::not_found("neighbour", key))
            };
        };
        check_version("neighbour", &key, expected, Some(&current.meta))?;
        let by_address = self.neighbours.get_mut(port);
        let removed = by_address.and_then(|n| n.remove(address));
        if self.neighbours.get(port).is_some_and(BTreeMap::is_empty) {
            self.neighbours.remove(port);
        }
        self.revision += 1;
        Ok(removed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tonic::Code;

    pub(crate) fn backend(host: u8, port: u16) -> BackendSpec {
        BackendSpec {
            address: IpAddr::from([198, 19, 0, host]),
            port,
            weight: 1,
            state: BackendState::Active,
        }
    }

    pub(crate) fn service(name: &str, vip_host: u8) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            labels: BTreeMap::new(),
            vip: IpAddr::from([198, 18, 100, vip_host]),
            port: 80,
            protocol: Protocol::Tcp,
            mode: NatMode::Dnat,
            selection: Selection::Maglev,
            session_persistence: false,
            snat_pool: None,
            maglev_table_size: None,
            backends: vec![backend(1, 8080), backend(2, 8080)],
            health_check: None,
        }
    }

    pub(crate) fn snat_pool(name: &str, host: u8) -> SnatPoolSpec {
        SnatPoolSpec {
            name: name.into(),
            addresses: vec![IpAddr::from([198, 18, 200, host])],
        }
    }

    fn code(error: ApiError) -> Code {
        tonic::Status::from(error).code()
    }

    #[test]
    fn apply_is_idempotent_and_versions_grow() {
        let mut state = DesiredState::with_selection_seed(7);
        let first = state.apply_service(service("web", 10), None).unwrap();
        assert!(first.changed);
        assert_eq!(
            first.object.meta,
            ObjectMeta {
                resource_version: 1,
                generation: 1
            }
        );
        let again = state.apply_service(service("web", 10), None).unwrap();
        assert!(!again.changed);
        assert_eq!(state.revision(), 1, "no-op applies are not changes");

        let mut changed = service("web", 10);
        changed.backends.pop();
        let second = state.apply_service(changed, Some(1)).unwrap();
        assert_eq!(
            second.object.meta,
            ObjectMeta {
                resource_version: 2,
                generation: 2
            }
        );
        assert_eq!(second.object.id, first.object.id, "the id is kept");
    }

    #[test]
    fn optimistic_concurrency_aborts_on_stale_versions() {
        let mut state = DesiredState::with_selection_seed(7);
        state.apply_service(service("web", 10), Some(0)).unwrap();
        // Create-only on an existing service, and a stale version, are both ABORTED.
        let err = state
            .apply_service(service("web", 11), Some(0))
            .unwrap_err();
        assert_eq!(code(err), Code::Aborted);
        let err = state
            .apply_service(service("web", 11), Some(5))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "service \"web\" is at resource_version 1, not 5; read it again and retry"
        );
        assert_eq!(
            state.service("web").unwrap().spec.vip,
            service("web", 10).vip
        );
        assert_eq!(
            code(state.delete_service("web", Some(9), false).unwrap_err()),
            Code::Aborted
        );
    }

    #[test]
    fn listeners_are_unique_and_snat_pools_must_exist() {
        let mut state = DesiredState::with_selection_seed(7);
        state.apply_service(service("web", 10), None).unwrap();
        let err = state.apply_service(service("other", 10), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "service.vip: 198.18.100.10:80/TCP is already used by service \"web\""
        );
        let mut udp = service("dns", 10);
        udp.protocol = Protocol::Udp;
        assert!(
            state.apply_service(udp, None).is_ok(),
            "same VIP and port, other protocol"
        );

        let mut full = service("api", 20);
        full.mode = NatMode::FullNat;
        full.snat_pool = Some("egress".into());
        let err = state.apply_service(full.clone(), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "service.snat_pool: no SNAT pool named \"egress\""
        );
        state.apply_snat_pool(snat_pool("egress", 1), None).unwrap();
        state.apply_service(full, None).unwrap();

        // The pool cannot go away or lose its IPv4 addresses while "api" uses it.
        assert_eq!(
            code(state.delete_snat_pool("egress", None, false).unwrap_err()),
            Code::FailedPrecondition
        );
        let v6_only = SnatPoolSpec {
            name: "egress".into(),
            addresses: vec!["2001:db8::1".parse().unwrap()],
        };
        assert_eq!(
            code(state.apply_snat_pool(v6_only, None).unwrap_err()),
            Code::FailedPrecondition
        );
        // A VIP cannot be a SNAT address and vice versa.
        let clash = SnatPoolSpec {
            name: "other".into(),
            addresses: vec![IpAddr::from([198, 18, 100, 10])],
        };
        assert_eq!(
            state.apply_snat_pool(clash, None).unwrap_err().to_string(),
            "pool.addresses[0]: 198.18.100.10 is the VIP of service \"dns\""
        );
    }

    #[test]
    fn batches_are_atomic() {
        let mut state = DesiredState::with_selection_seed(7);
        state.apply_service(service("web", 10), None).unwrap();
        let before = state.clone();
        let batch = vec![
            (service("a", 1), None),
            (service("b", 2), None),
            (service("c", 10), None), // takes web's listener
        ];
        let err = state.apply_services(batch).unwrap_err();
        assert_eq!(
            err.to_string(),
            "requests[2].service.vip: 198.18.100.10:80/TCP is already used by service \"web\""
        );
        assert_eq!(state, before, "nothing of the batch was applied");

        let batch = vec![(service("a", 1), None), (service("b", 2), None)];
        let applied = state.apply_services(batch).unwrap();
        assert!(applied
            .iter()
            .all(|a| a.changed && a.object.meta.resource_version == 2));
        assert_eq!(state.revision(), 2, "one revision for the whole batch");

        let dup = vec![(service("x", 3), None), (service("x", 4), None)];
        assert_eq!(
            state.apply_services(dup).unwrap_err().to_string(),
            "requests[1].service.name: \"x\" is also applied by requests[0]"
        );
    }

    #[test]
    fn counter_slots_are_dense_stable_and_reused() {
        let mut state = DesiredState::with_selection_seed(7);
        let a = state.apply_service(service("a", 1), None).unwrap().object;
        let b = state.apply_service(service("b", 2), None).unwrap().object;
        assert_eq!((a.id, b.id), (0, 1));
        assert_eq!(a.backend_ids, [0, 1]);
        assert_eq!(b.backend_ids, [2, 3]);

        // Replacing one backend keeps the other's slot and reuses the freed one.
        let mut changed = service("a", 1);
        changed.backends[0] = backend(9, 8080);
        let a2 = state.apply_service(changed, None).unwrap().object;
        // Slot 0 was freed by 198.19.0.1 and taken by 198.19.0.9; 198.19.0.2 keeps slot 1.
        assert_eq!(a2.backend_ids, [0, 1]);
        assert_eq!(a2.spec.backends[1], backend(2, 8080));

        state.delete_service("a", None, false).unwrap();
        let c = state.apply_service(service("c", 3), None).unwrap().object;
        assert_eq!(c.id, 0, "the lowest free slot");
        assert_eq!(state.service_slot_bound(), 2);
        assert_eq!(state.backend_slot_bound(), 4);
    }

    #[test]
    fn delete_reports_missing_unless_allowed() {
        let mut state = DesiredState::with_selection_seed(7);
        assert_eq!(
            code(state.delete_service("web", None, false).unwrap_err()),
            Code::NotFound
        );
        assert_eq!(state.delete_service("web", None, true).unwrap(), None);
        assert_eq!(state.revision(), 0);
        state.apply_service(service("web", 10), None).unwrap();
        assert!(state
            .delete_service("web", Some(1), false)
            .unwrap()
            .is_some());
        assert!(state
            .service_by_listener(&service("web", 10).listener())
            .is_none());
        assert_eq!(state.revision(), 2);
    }

    #[test]
    fn patch_backends_adds_drains_and_removes() {
        let mut state = DesiredState::with_selection_seed(7);
        state.apply_service(service("web", 10), None).unwrap();
        let patch = BackendPatch {
            remove: vec![backend(1, 8080).endpoint()],
            upsert: vec![backend(3, 8080)],
            drain: vec![backend(2, 8080).endpoint()],
            ..BackendPatch::default()
        };
        let applied = state.patch_backends("web", patch, None).unwrap();
        let backends = &applied.object.spec.backends;
        assert_eq!(backends.len(), 2);
        assert_eq!(backends[0].state, BackendState::Draining);
        assert_eq!(backends[1], backend(3, 8080));

        let missing = BackendPatch {
            drain: vec![backend(7, 8080).endpoint()],
            ..BackendPatch::default()
        };
        let err = state
            .patch_backends("web", missing.clone(), None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "backend \"198.19.0.7:8080 (drain[0]) of service \\\"web\\\"\" not found"
        );
        let skipped = BackendPatch {
            allow_missing: true,
            ..missing
        };
        assert!(!state.patch_backends("web", skipped, None).unwrap().changed);

        let v6 = BackendPatch {
            upsert: vec![BackendSpec {
                address: "2001:db8::1".parse().unwrap(),
                ..backend(0, 80)
            }],
            ..BackendPatch::default()
        };
        assert_eq!(
            state
                .patch_backends("web", v6, None)
                .unwrap_err()
                .to_string(),
            "upsert[0].address: IPv6 backend for IPv4 VIP 198.18.100.10 (no NAT64)"
        );
        assert_eq!(
            code(
                state
                    .patch_backends("nope", BackendPatch::default(), None)
                    .unwrap_err()
            ),
            Code::NotFound
        );
    }

    #[test]
    fn vip_pools_allocate_and_refuse_unsafe_changes() {
        let mut state = DesiredState::with_selection_seed(7);
        let spec = VipPoolSpec {
            name: "public".into(),
            cidrs: vec!["198.18.100.0/24".parse().unwrap()],
            excluded: BTreeSet::new(),
        };
        state.apply_vip_pool(spec.clone(), None).unwrap();
        let overlapping = VipPoolSpec {
            name: "other".into(),
            cidrs: vec!["198.18.0.0/16".parse().unwrap()],
            excluded: BTreeSet::new(),
        };
        assert_eq!(
            state
                .apply_vip_pool(overlapping, None)
                .unwrap_err()
                .to_string(),
            "pool.cidrs[0]: 198.18.0.0/16 overlaps 198.18.100.0/24 of VIP pool \"public\""
        );

        let got = state.allocate_vip("public", "gw-a", None).unwrap();
        assert_eq!(got.allocation.address, IpAddr::from([198, 18, 100, 1]));
        let again = state.allocate_vip("public", "gw-a", None).unwrap();
        assert!(!again.allocation.newly_allocated);
        assert_eq!(
            again.resource_version, got.resource_version,
            "retries change nothing"
        );

        let narrower = VipPoolSpec {
            cidrs: vec!["198.18.100.128/25".parse().unwrap()],
            ..spec
        };
        assert_eq!(
            code(state.apply_vip_pool(narrower, None).unwrap_err()),
            Code::FailedPrecondition
        );
        assert_eq!(
            code(state.delete_vip_pool("public", None, false).unwrap_err()),
            Code::FailedPrecondition
        );
        let released = state
            .release_vip("public", &ReleaseTarget::Owner("gw-a".into()))
            .unwrap();
        assert_eq!(released.len(), 1);
        assert!(state
            .release_vip("public", &ReleaseTarget::Owner("gw-a".into()))
            .unwrap()
            .is_empty());
        assert!(state
            .delete_vip_pool("public", None, false)
            .unwrap()
            .is_some());
        assert_eq!(
            code(state.allocate_vip("public", "gw-a", None).unwrap_err()),
            Code::NotFound
        );
    }

    #[test]
    fn routes_and_neighbours_need_an_interface() {
        let mut state = DesiredState::with_selection_seed(7);
        let route = RouteSpec {
            prefix: "198.18.64.0/18".parse().unwrap(),
            next_hop: Some(IpAddr::from([198, 18, 0, 254])),
            port: "port0".into(),
        };
        assert_eq!(
            state
                .apply_route(route.clone(), None)
                .unwrap_err()
                .to_string(),
            "route.port: no interface for port \"port0\"; apply the interface first"
        );
        let interface = InterfaceSpec {
            port: "port0".into(),
            addresses: vec!["198.18.0.1/24".parse().unwrap()],
        };
        state.apply_interface(interface, None).unwrap();
        state.apply_route(route.clone(), None).unwrap();
        let neighbour = NeighbourSpec {
            address: IpAddr::from([198, 18, 0, 254]),
            mac: "02:00:00:00:00:fe".parse().unwrap(),
            port: "port0".into(),
        };
        state.apply_neighbour(neighbour.clone(), None).unwrap();
        assert_eq!(
            code(state.delete_interface("port0", None, false).unwrap_err()),
            Code::FailedPrecondition
        );
        state.delete_route(&route.prefix, None, false).unwrap();
        state
            .delete_neighbour("port0", &neighbour.address, None, false)
            .unwrap();
        assert_eq!(state.neighbours().count(), 0);
        state.delete_interface("port0", None, false).unwrap();
    }

    #[test]
    fn selectors_filter_by_labels() {
        let mut state = DesiredState::with_selection_seed(7);
        let mut web = service("web", 1);
        web.labels.insert("app".into(), "web".into());
        state.apply_service(web, None).unwrap();
        state.apply_service(service("db", 2), None).unwrap();
        let selector = LabelSelector {
            match_labels: [("app".to_owned(), "web".to_owned())].into(),
        };
        let names: Vec<&str> = state
            .services_matching(&selector)
            .map(|s| s.spec.name.as_str())
            .collect();
        assert_eq!(names, ["web"]);
        assert_eq!(
            state.services_matching(&LabelSelector::default()).count(),
            2
        );
    }
}
