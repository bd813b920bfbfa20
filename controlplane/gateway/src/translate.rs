//! The pure translation: world -> (programme for sluiced and the proxies, statuses).
//!
//! Everything here is a function of its inputs (the cached objects, the settings and the
//! current time used for new condition transitions), so a restart of the controller computes
//! the same programme and the same statuses again.

use crate::config::{NatMode, Settings, LOXILB_CONTROLLER, REJECT_SENTINEL, REJECT_SENTINEL_V6};
use crate::ipam::{self, IpamError};
use crate::l7;
use crate::model::{Key, L4Kind, Meta, Obj, RouteKind, World, GATEWAY_GROUP};
use gateway_api::apis::experimental::tcproutes::TcpRouteSpec;
use gateway_api::apis::standard::gateways::{
    GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom, GatewaySpec,
};
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Value};
use sluice_proto::v1;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Label on every sluiced service the controller owns (value: `Settings::instance`).
pub const LABEL_MANAGED_BY: &str = "sluice.io/managed-by";
pub const LABEL_GATEWAY_NS: &str = "sluice.io/gateway-namespace";
pub const LABEL_GATEWAY: &str = "sluice.io/gateway";
pub const LABEL_LISTENER: &str = "sluice.io/listener";
pub const LABEL_ROUTE_KIND: &str = "sluice.io/route-kind";
pub const LABEL_ROUTE_NS: &str = "sluice.io/route-namespace";
pub const LABEL_ROUTE: &str = "sluice.io/route";

/// A status to write: the whole `status` of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
    pub status: Value,
    /// Whether it differs from the object's current status (only those need writing).
    pub changed: bool,
}

/// What the controller should make true.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// sluiced services by name (every appliance gets all of them).
    pub services: BTreeMap<String, v1::Service>,
    /// The route table for every sluice-proxy.
    pub route_table: v1::RouteTable,
    pub statuses: Vec<StatusUpdate>,
    /// Kubernetes Services to create (loxilb compat `serviceBehaviour: create`), as objects.
    pub created_services: Vec<Value>,
    /// Services this controller created that nothing needs any more (namespace, name).
    pub stale_services: Vec<Key>,
    /// The address of each programmed Gateway.
    pub addresses: BTreeMap<Key, IpAddr>,
}

impl Outcome {
    pub fn status_of(&self, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.statuses
            .iter()
            .find(|s| s.kind == kind && s.namespace == namespace && s.name == name)
            .map(|s| &s.status)
    }
}

/// A condition, keeping the previous lastTransitionTime when status did not change.
pub fn condition(
    previous: &Value,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: i64,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .as_array()
        .and_then(|conds| {
            conds
                .iter()
                .find(|c| c["type"] == type_ && c["status"] == status)
                .and_then(|c| c["lastTransitionTime"].as_str())
        })
        .unwrap_or(now);
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    })
}

/// Status equality ignoring lastTransitionTime (so an unchanged status is not rewritten).
fn same_status(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "lastTransitionTime")
                    .map(|(k, v)| (k.clone(), strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            other => other.clone(),
        }
    }
    strip(a) == strip(b)
}

fn push_status<S>(out: &mut Outcome, obj: &Obj<S>, kind: &str, status: Value) {
    let changed = !same_status(&obj.status, &status);
    out.statuses.push(StatusUpdate {
        api_version: obj.api_version.clone(),
        kind: kind.to_owned(),
        namespace: obj.meta.namespace.clone(),
        name: obj.meta.name.clone(),
        status,
        changed,
    });
}

/// Whether a GatewayClass belongs to this controller.
pub fn class_is_ours(settings: &Settings, controller_name: &str) -> bool {
    controller_name == settings.controller_name
        || (settings.loxilb_compat && controller_name == LOXILB_CONTROLLER)
}

// ---------------------------------------------------------------------------------------
// Listeners

/// What the translation decided about one listener.
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub port: u16,
    pub protocol: String,
    pub hostname: Option<String>,
    /// Route kinds it accepts (after allowedRoutes.kinds).
    pub kinds: Vec<RouteKind>,
    pub accepted: bool,
    pub conflicted: bool,
    pub resolved_refs: bool,
    /// Certificate names (namespace/name) for HTTPS.
    pub certificates: Vec<String>,
    pub spec: GatewayListeners,
}

impl ListenerInfo {
    fn usable(&self) -> bool {
        self.accepted && !self.conflicted
    }
}

fn default_kinds(protocol: &str) -> Option<Vec<RouteKind>> {
    match protocol {
        "TCP" => Some(vec![RouteKind::Tcp]),
        "UDP" => Some(vec![RouteKind::Udp]),
        "HTTP" | "HTTPS" => Some(vec![RouteKind::Http]),
        _ => None,
    }
}

/// L4 protocol family of a listener protocol (for port conflicts).
fn transport(protocol: &str) -> &'static str {
    if protocol == "UDP" {
        "udp"
    } else {
        "tcp"
    }
}

/// Whether a ReferenceGrant in `to_ns` allows `from` -> `to`.
#[allow(clippy::too_many_arguments)]
pub fn reference_granted(
    world: &World,
    from_group: &str,
    from_kind: &str,
    from_ns: &str,
    to_group: &str,
    to_kind: &str,
    to_ns: &str,
    to_name: &str,
) -> bool {
    world
        .reference_grants
        .values()
        .filter(|g| g.meta.namespace == to_ns)
        .any(|g| {
            g.spec
                .from
                .iter()
                .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_ns)
                && g.spec.to.iter().any(|t| {
                    t.group == to_group
                        && t.kind == to_kind
                        && t.name.as_deref().is_none_or(|n| n == to_name)
                })
        })
}

struct CertOutcome {
    ok: bool,
    reason: &'static str,
    message: String,
    certificates: Vec<String>,
}

fn resolve_certificates(world: &World, gateway: &Meta, listener: &GatewayListeners) -> CertOutcome {
    let mut out = CertOutcome {
        ok: true,
        reason: "ResolvedRefs",
        message: String::new(),
        certificates: Vec::new(),
    };
    let refs = listener
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.clone())
        .unwrap_or_default();
    if listener.protocol == "HTTPS" && refs.is_empty() {
        out.ok = false;
        out.reason = "InvalidCertificateRef";
        out.message = "an HTTPS listener needs tls.certificateRefs".into();
        return out;
    }
    for (i, r) in refs.iter().enumerate() {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        let ns = r
            .namespace
            .clone()
            .unwrap_or_else(|| gateway.namespace.clone());
        let fail = |out: &mut CertOutcome, reason: &'static str, message: String| {
            if out.ok {
                out.ok = false;
                out.reason = reason;
                out.message = message;
            }
        };
        if !group.is_empty() || kind != "Secret" {
            fail(
                &mut out,
                "InvalidCertificateRef",
                format!(
                    "tls.certificateRefs[{i}]: only core Secrets are supported, not {group}/{kind}"
                ),
            );
            continue;
        }
        if ns != gateway.namespace
            && !reference_granted(
                world,
                GATEWAY_GROUP,
                "Gateway",
                &gateway.namespace,
                "",
                "Secret",
                &ns,
                &r.name,
            )
        {
            fail(
                &mut out,
                "RefNotPermitted",
                format!("tls.certificateRefs[{i}]: Secret {ns}/{} is in another namespace and no ReferenceGrant allows it", r.name),
            );
            continue;
        }
        let secret = world.secrets.get(&(ns.clone(), r.name.clone()));
        let valid = secret.is_some_and(|s| {
            let data = s.data.clone().unwrap_or_default();
            ["tls.crt", "tls.key"]
                .iter()
                .all(|k| data.get(*k).is_some_and(|b| !b.0.is_empty()))
        });
        if !valid {
            fail(
                &mut out,
                "InvalidCertificateRef",
                format!("tls.certificateRefs[{i}]: Secret {ns}/{} does not exist or has no tls.crt/tls.key", r.name),
            );
            continue;
        }
        out.certificates.push(format!("{ns}/{}", r.name));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Route attachment

/// Hostname intersection of a listener hostname and a route's hostnames (spec rules):
/// returns the hostnames the route serves on that listener, `Some(vec![])` meaning "any".
pub fn intersect_hostnames(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let Some(listener) = listener.filter(|l| !l.is_empty()) else {
        return Some(route.to_vec());
    };
    if route.is_empty() {
        return Some(vec![listener.to_owned()]);
    }
    fn wildcard_covers(wild: &str, host: &str) -> bool {
        // "*.example.com" matches "a.example.com" and "a.b.example.com", not "example.com".
        wild.strip_prefix('*')
            .is_some_and(|suffix| host.ends_with(suffix) && host.len() > suffix.len())
    }
    let mut out = Vec::new();
    for h in route {
        let matched = if h == listener
            || (listener.starts_with("*.") && !h.starts_with("*.") && wildcard_covers(listener, h))
        {
            Some(h.clone())
        } else if h.starts_with("*.") && !listener.starts_with("*.") && wildcard_covers(h, listener)
        {
            Some(listener.to_owned())
        } else if h.starts_with("*.") && listener.starts_with("*.") {
            if wildcard_covers(listener, &h[1..]) || h == listener {
                Some(h.clone())
            } else if wildcard_covers(h, &listener[1..]) {
                Some(listener.to_owned())
            } else {
                None
            }
        } else {
            None
        };
        if let Some(m) = matched {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

fn namespace_labels(world: &World, ns: &str) -> BTreeMap<String, String> {
    let mut labels = world.namespaces.get(ns).cloned().unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), ns.to_owned());
    labels
}

fn selector_matches(
    labels: &BTreeMap<String, String>,
    match_labels: Option<&BTreeMap<String, String>>,
    expressions: &[(String, String, Vec<String>)],
) -> bool {
    match_labels.is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
        && expressions
            .iter()
            .all(|(key, op, values)| match op.as_str() {
                "In" => labels.get(key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(key),
                "DoesNotExist" => !labels.contains_key(key),
                _ => false,
            })
}

fn namespace_allowed(
    world: &World,
    gateway: &Meta,
    listener: &GatewayListeners,
    route_ns: &str,
) -> bool {
    let namespaces = listener
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let from = namespaces
        .and_then(|n| n.from.clone())
        .unwrap_or(GatewayListenersAllowedRoutesNamespacesFrom::Same);
    match from {
        GatewayListenersAllowedRoutesNamespacesFrom::All => true,
        GatewayListenersAllowedRoutesNamespacesFrom::Same => route_ns == gateway.namespace,
        GatewayListenersAllowedRoutesNamespacesFrom::Selector => {
            let Some(selector) = namespaces.and_then(|n| n.selector.as_ref()) else {
                return false;
            };
            let expressions: Vec<(String, String, Vec<String>)> = selector
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.operator.clone(),
                        e.values.clone().unwrap_or_default(),
                    )
                })
                .collect();
            selector_matches(
                &namespace_labels(world, route_ns),
                selector.match_labels.as_ref(),
                &expressions,
            )
        }
    }
}

/// A parentRef, normalised.
#[derive(Clone, Debug)]
pub struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

impl ParentRef {
    fn echo(&self) -> Value {
        let mut v = json!({"group": self.group.clone().unwrap_or_else(|| GATEWAY_GROUP.into()),
            "kind": self.kind.clone().unwrap_or_else(|| "Gateway".into()),
            "name": self.name});
        if let Some(ns) = &self.namespace {
            v["namespace"] = json!(ns);
        }
        if let Some(s) = &self.section_name {
            v["sectionName"] = json!(s);
        }
        if let Some(p) = self.port {
            v["port"] = json!(p);
        }
        v
    }
}

/// The result of attaching one parentRef.
#[derive(Clone, Debug)]
enum Attach {
    /// Not a Gateway of ours: no status entry.
    NotOurs,
    Rejected(&'static str, String),
    /// Attached to these listeners (indexes) with these effective hostnames per listener.
    Accepted(Vec<(usize, Vec<String>)>),
}

struct GatewayState {
    obj: Obj<GatewaySpec>,
    listeners: Vec<ListenerInfo>,
    address: Option<IpAddr>,
    /// attachedRoutes per listener.
    attached: Vec<i32>,
}

fn attach(
    world: &World,
    gateways: &BTreeMap<Key, GatewayState>,
    kind: RouteKind,
    route: &Meta,
    hostnames: &[String],
    parent: &ParentRef,
) -> Attach {
    let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
    let pkind = parent.kind.as_deref().unwrap_or("Gateway");
    if group != GATEWAY_GROUP || pkind != "Gateway" {
        return Attach::NotOurs;
    }
    let ns = parent
        .namespace
        .clone()
        .unwrap_or_else(|| route.namespace.clone());
    let Some(gw) = gateways.get(&(ns, parent.name.clone())) else {
        return Attach::NotOurs;
    };
    let candidates: Vec<usize> = gw
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| p == i32::from(l.port)))
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return Attach::Rejected(
            "NoMatchingParent",
            "no listener matches the parentRef's sectionName/port".into(),
        );
    }
    let allowed: Vec<usize> = candidates
        .into_iter()
        .filter(|i| {
            let l = &gw.listeners[*i];
            l.kinds.contains(&kind)
                && namespace_allowed(world, &gw.obj.meta, &l.spec, &route.namespace)
        })
        .collect();
    if allowed.is_empty() {
        return Attach::Rejected(
            "NotAllowedByListeners",
            format!(
                "the listeners' allowedRoutes do not admit a {} from namespace {}",
                kind.kind(),
                route.namespace
            ),
        );
    }
    if kind != RouteKind::Http {
        return Attach::Accepted(allowed.into_iter().map(|i| (i, Vec::new())).collect());
    }
    let matched: Vec<(usize, Vec<String>)> = allowed
        .into_iter()
        .filter_map(|i| {
            intersect_hostnames(gw.listeners[i].hostname.as_deref(), hostnames).map(|h| (i, h))
        })
        .collect();
    if matched.is_empty() {
        return Attach::Rejected(
            "NoMatchingListenerHostname",
            "no listener hostname intersects the route's hostnames".into(),
        );
    }
    Attach::Accepted(matched)
}

// ---------------------------------------------------------------------------------------
// Backends

/// A backendRef, normalised.
#[derive(Clone, Debug)]
pub struct BackendRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub port: Option<i32>,
    pub weight: Option<i32>,
}

/// A resolved backendRef: weight and endpoints, or why it is invalid.
#[derive(Clone, Debug)]
pub struct ResolvedBackend {
    pub display: String,
    pub weight: u32,
    pub endpoints: Result<Vec<(IpAddr, u16)>, (&'static str, String)>,
}

fn service_port_matches(p: &ServicePort, port: i32, transport: &str) -> bool {
    p.port == port
        && p.protocol
            .as_deref()
            .unwrap_or("TCP")
            .eq_ignore_ascii_case(transport)
}

/// Ready endpoints of `service` for its port `port`, from the EndpointSlices.
pub fn endpoints_of(world: &World, service: &Service, port: &ServicePort) -> Vec<(IpAddr, u16)> {
    let ns = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut out = BTreeSet::new();
    for slice in world.endpoint_slices.values() {
        if slice.metadata.namespace.as_deref() != Some(ns.as_str())
            || slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
                != Some(&name)
        {
            continue;
        }
        // The slice's port with the Service port's name carries the resolved targetPort
        // (by number or by container port name).
        let wanted = port.name.clone().unwrap_or_default();
        let slice_port = match &slice.ports {
            Some(ports) if !ports.is_empty() => ports
                .iter()
                .find(|p| p.name.clone().unwrap_or_default() == wanted)
                .and_then(|p| p.port),
            _ => match &port.target_port {
                Some(IntOrString::Int(n)) => Some(*n),
                None => Some(port.port),
                Some(IntOrString::String(_)) => None,
            },
        };
        let Some(target) = slice_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.insert((ip, target));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Synthesised Services of loxilb's `serviceBehaviour: create` (route namespace/name ->
/// Service), when compat mode is on and the route asks for it.
fn compat_service(
    settings: &Settings,
    route: &Meta,
    backend: &BackendRef,
    transport: &str,
) -> Option<Service> {
    if !settings.loxilb_compat
        || route.labels.get("serviceBehaviour").map(String::as_str) != Some("create")
    {
        return None;
    }
    let key = route.labels.get("selectorkey")?;
    let value = route.labels.get("selectorvalue")?;
    let port = backend.port?;
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": backend.name,
            "namespace": route.namespace,
            "labels": {LABEL_MANAGED_BY: settings.instance},
        },
        "spec": {
            "selector": {key: value},
            "ports": [{"port": port, "targetPort": port, "protocol": transport.to_ascii_uppercase()}],
        }
    });
    serde_json::from_value(svc).ok()
}

fn resolve_backend(
    world: &World,
    settings: &Settings,
    route_kind: RouteKind,
    route: &Meta,
    backend: &BackendRef,
    transport: &str,
    created: &mut BTreeMap<Key, Service>,
) -> ResolvedBackend {
    let ns = backend
        .namespace
        .clone()
        .unwrap_or_else(|| route.namespace.clone());
    let display = format!("{ns}/{}:{}", backend.name, backend.port.unwrap_or(0));
    let weight = u32::try_from(backend.weight.unwrap_or(1).clamp(0, 1_000_000)).unwrap_or(1);
    let invalid = |reason: &'static str, message: String| ResolvedBackend {
        display: display.clone(),
        weight,
        endpoints: Err((reason, message)),
    };
    let group = backend.group.as_deref().unwrap_or("");
    let kind = backend.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return invalid(
            "InvalidKind",
            format!("backendRef {display}: only core Services are supported, not {group}/{kind}"),
        );
    }
    if ns != route.namespace
        && !reference_granted(
            world,
            GATEWAY_GROUP,
            route_kind.kind(),
            &route.namespace,
            "",
            "Service",
            &ns,
            &backend.name,
        )
    {
        return invalid(
            "RefNotPermitted",
            format!("backendRef {display}: Service in namespace {ns} needs a ReferenceGrant there"),
        );
    }
    let Some(port) = backend.port else {
        return invalid(
            "BackendNotFound",
            format!(
                "backendRef {}: port is required for a Service",
                backend.name
            ),
        );
    };
    let key = (ns.clone(), backend.name.clone());
    // loxilb's `serviceBehaviour: create`: the Service is wanted (created when missing, and
    // kept while some route asks for it).
    let synthesized = if ns == route.namespace {
        compat_service(settings, route, backend, transport)
    } else {
        None
    };
    if let Some(s) = &synthesized {
        created.insert(key.clone(), s.clone());
    }
    let Some(service) = world.services.get(&key).cloned().or(synthesized) else {
        return invalid(
            "BackendNotFound",
            format!("backendRef {display}: Service not found"),
        );
    };
    let Some(service_port) = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| service_port_matches(p, port, transport))
                .cloned()
        })
    else {
        return invalid(
            "BackendNotFound",
            format!(
                "backendRef {display}: the Service has no {} port {port}",
                transport.to_ascii_uppercase()
            ),
        );
    };
    ResolvedBackend {
        display,
        weight,
        endpoints: Ok(endpoints_of(world, &service, &service_port)),
    }
}

/// Turns weighted backendRefs into sluiced backends: each ref's weight is shared among its
/// endpoints (scaled by 1000 so small weights divide evenly enough); invalid refs become one
/// REJECT sentinel backend with their total share when `reject_sentinel` is on and some ref is
/// valid (with none valid the service has no backends, and sluiced refuses every connection).
pub fn weighted_backends(
    refs: &[ResolvedBackend],
    vip_v4: bool,
    sentinel: bool,
) -> Vec<v1::Backend> {
    let mut merged: BTreeMap<(IpAddr, u16), u64> = BTreeMap::new();
    let mut invalid_share: u64 = 0;
    let mut any_valid = false;
    for r in refs {
        match &r.endpoints {
            Ok(endpoints) => {
                let endpoints: Vec<_> = endpoints
                    .iter()
                    .filter(|(ip, _)| ip.is_ipv4() == vip_v4)
                    .collect();
                if endpoints.is_empty() {
                    continue;
                }
                any_valid = true;
                let count = endpoints.len() as u64;
                let each = if r.weight == 0 {
                    0
                } else {
                    (u64::from(r.weight) * 1000 / count).max(1)
                };
                for e in endpoints {
                    *merged.entry(*e).or_default() += each;
                }
            }
            Err(_) => invalid_share += u64::from(r.weight) * 1000,
        }
    }
    // sluiced caps weights at 1,000,000: scale everything down together if needed.
    let max = merged
        .values()
        .copied()
        .chain([invalid_share])
        .max()
        .unwrap_or(0);
    let scale = |w: u64| -> u32 {
        let w = if max > 1_000_000 {
            (w * 1_000_000 / max).max(u64::from(w > 0))
        } else {
            w
        };
        u32::try_from(w).unwrap_or(1_000_000)
    };
    let mut out: Vec<v1::Backend> = merged
        .into_iter()
        .map(|((ip, port), w)| v1::Backend {
            address: ip.to_string(),
            port: u32::from(port),
            weight: Some(scale(w)),
            ..Default::default()
        })
        .collect();
    if sentinel && any_valid && invalid_share > 0 {
        let (address, port) = if vip_v4 {
            REJECT_SENTINEL
        } else {
            REJECT_SENTINEL_V6
        };
        out.push(v1::Backend {
            address: address.into(),
            port,
            weight: Some(scale(invalid_share)),
            state: v1::BackendState::Reject.into(),
            ..Default::default()
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// The whole translation

fn label_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

/// Name of the sluiced service of a listener: `gw.<namespace>.<gateway>.<listener>`.
pub fn service_name(gateway: &Key, listener: &str) -> String {
    let name = format!("gw.{}.{}.{}", gateway.0, gateway.1, listener).to_ascii_lowercase();
    name.chars()
        .take(253)
        .collect::<String>()
        .trim_end_matches(['.', '-'])
        .to_owned()
}

struct L4Attached {
    route: Key,
    kind: L4Kind,
    backends: Vec<ResolvedBackend>,
    mode: Result<NatMode, String>,
    health: Option<v1::HealthCheck>,
}

fn route_mode(settings: &Settings, meta: &Meta) -> Result<NatMode, String> {
    let annotation = meta.annotations.get("sluice.io/nat-mode").or_else(|| {
        settings
            .loxilb_compat
            .then(|| meta.annotations.get("loxilb.io/lbmode"))
            .flatten()
    });
    let mode = match annotation {
        None => settings.default_mode,
        Some(text) => NatMode::parse(text)
            .ok_or_else(|| format!("NAT mode annotation `{text}`: expected dnat or fullnat"))?,
    };
    if mode == NatMode::FullNat && settings.snat_pool.is_none() {
        return Err("full-NAT needs an SNAT pool: start sluice-gateway with --snat-pool".into());
    }
    Ok(mode)
}

fn route_health(settings: &Settings, meta: &Meta, kind: L4Kind) -> Option<v1::HealthCheck> {
    let wanted = meta
        .annotations
        .get("sluice.io/health-check")
        .map(|s| s.to_ascii_lowercase())
        .or_else(|| {
            (settings.loxilb_compat
                && meta
                    .annotations
                    .get("loxilb.io/liveness")
                    .map(String::as_str)
                    == Some("yes"))
            .then(|| "default".to_owned())
        })?;
    let type_ = match (wanted.as_str(), kind) {
        ("tcp", _) | ("default", L4Kind::Tcp) => v1::HealthCheckType::Tcp,
        ("ping", _) | ("default", L4Kind::Udp) => v1::HealthCheckType::Ping,
        ("udp", _) => v1::HealthCheckType::Udp,
        _ => return None,
    };
    Some(v1::HealthCheck {
        r#type: type_ as i32,
        ..Default::default()
    })
}

/// The translation. `now` is the RFC 3339 time stamped on conditions that change.
pub fn translate(world: &World, settings: &Settings, now: &str) -> Outcome {
    translate_with(world, settings, now, &BTreeMap::new())
}

/// [`translate`] with feedback from the appliances: `refused` maps sluiced service names to
/// the reason sluiced refused them in the last pass; their listeners are reported
/// `Programmed=False/Pending` with that reason.
pub fn translate_with(
    world: &World,
    settings: &Settings,
    now: &str,
    refused: &BTreeMap<String, String>,
) -> Outcome {
    let mut out = Outcome::default();

    // GatewayClasses.
    let mut our_classes = BTreeSet::new();
    for class in world.gateway_classes.values() {
        if !class_is_ours(settings, &class.spec.controller_name) {
            continue;
        }
        our_classes.insert(class.meta.name.clone());
        let prev = &class.status["conditions"];
        let generation = class.meta.generation;
        let mut status = class.status.as_object().cloned().unwrap_or_default();
        status.insert(
            "conditions".into(),
            json!([
                condition(
                    prev,
                    "Accepted",
                    true,
                    "Accepted",
                    "handled by sluice-gateway",
                    generation,
                    now
                ),
                condition(
                    prev,
                    "SupportedVersion",
                    true,
                    "SupportedVersion",
                    "the installed Gateway API version is supported",
                    generation,
                    now
                ),
            ]),
        );
        push_status(&mut out, class, "GatewayClass", Value::Object(status));
    }

    // Gateways: addresses and listeners.
    let ours: Vec<&Obj<GatewaySpec>> = world
        .gateways
        .values()
        .filter(|g| our_classes.contains(&g.spec.gateway_class_name))
        .collect();
    let mut static_addresses: BTreeMap<Key, Result<IpAddr, String>> = BTreeMap::new();
    let mut requests = Vec::new();
    for gw in &ours {
        match gw.spec.addresses.as_deref() {
            Some(addrs) if !addrs.is_empty() => {
                let first = &addrs[0];
                let result = match first.r#type.as_deref().unwrap_or("IPAddress") {
                    "IPAddress" => first
                        .value
                        .as_deref()
                        .unwrap_or("")
                        .parse::<IpAddr>()
                        .map_err(|_| {
                            format!(
                                "spec.addresses[0].value: `{}` is not an IP address",
                                first.value.clone().unwrap_or_default()
                            )
                        }),
                    other => Err(format!(
                        "spec.addresses[0].type: {other} is not supported (IPAddress only)"
                    )),
                };
                static_addresses.insert(gw.meta.key(), result);
            }
            _ => requests.push(ipam::Request {
                gateway: gw.meta.key(),
                pool: gw.meta.annotations.get("sluice.io/address-pool").cloned(),
                current: gw.status["addresses"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v["value"].as_str()?.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        }
    }
    let taken: BTreeSet<IpAddr> = static_addresses
        .values()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    let assigned = ipam::assign(&settings.pools, &requests, &taken);

    let mut gateways: BTreeMap<Key, GatewayState> = BTreeMap::new();
    let mut address_errors: BTreeMap<Key, (&'static str, String)> = BTreeMap::new();
    for gw in &ours {
        let key = gw.meta.key();
        let address = match (static_addresses.get(&key), assigned.get(&key)) {
            (Some(Ok(a)), _) => Some(*a),
            (Some(Err(e)), _) => {
                address_errors.insert(key.clone(), ("UnsupportedAddress", e.clone()));
                None
            }
            (None, Some(Ok(a))) => Some(*a),
            (None, Some(Err(e))) => {
                address_errors.insert(key.clone(), ("AddressNotAssigned", e.to_string()));
                None
            }
            (None, None) => {
                address_errors.insert(
                    key.clone(),
                    ("AddressNotAssigned", IpamError::NoPools.to_string()),
                );
                None
            }
        };
        let mut listeners: Vec<ListenerInfo> = gw
            .spec
            .listeners
            .iter()
            .map(|l| {
                let supported = default_kinds(&l.protocol);
                let requested = l.allowed_routes.as_ref().and_then(|a| a.kinds.clone());
                let (kinds, resolved) = match (&supported, requested) {
                    (None, _) => (Vec::new(), true),
                    (Some(s), None) => (s.clone(), true),
                    (Some(s), Some(req)) => {
                        let mut kinds = Vec::new();
                        let mut all_ok = true;
                        for k in req {
                            let group_ok =
                                k.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP;
                            match s.iter().find(|sk| sk.kind() == k.kind) {
                                Some(sk) if group_ok => {
                                    if !kinds.contains(sk) {
                                        kinds.push(*sk)
                                    }
                                }
                                _ => all_ok = false,
                            }
                        }
                        (kinds, all_ok)
                    }
                };
                let passthrough = l.tls.as_ref().and_then(|t| t.mode.clone())
                    == Some(
                        gateway_api::apis::standard::gateways::GatewayListenersTlsMode::Passthrough,
                    );
                ListenerInfo {
                    name: l.name.clone(),
                    port: u16::try_from(l.port).unwrap_or(0),
                    protocol: l.protocol.clone(),
                    hostname: l.hostname.clone(),
                    kinds,
                    accepted: supported.is_some() && !passthrough && l.port > 0 && l.port <= 65535,
                    conflicted: false,
                    resolved_refs: resolved,
                    certificates: Vec::new(),
                    spec: l.clone(),
                }
            })
            .collect();
        // Conflicts: one (transport, port) may carry several HTTP(S) listeners with distinct
        // hostnames of one protocol, or exactly one TCP/UDP listener.
        for i in 0..listeners.len() {
            for j in 0..listeners.len() {
                if i == j {
                    continue;
                }
                let (a, b) = (&listeners[i], &listeners[j]);
                if a.port != b.port || transport(&a.protocol) != transport(&b.protocol) {
                    continue;
                }
                let http_pair =
                    matches!(a.protocol.as_str(), "HTTP" | "HTTPS") && a.protocol == b.protocol;
                let conflict = !http_pair
                    || a.hostname.clone().unwrap_or_default()
                        == b.hostname.clone().unwrap_or_default();
                if conflict {
                    listeners[i].conflicted = true;
                }
            }
        }
        gateways.insert(
            key,
            GatewayState {
                attached: vec![0; listeners.len()],
                listeners,
                address,
                obj: (*gw).clone(),
            },
        );
    }

    // Certificates of HTTPS listeners.
    let mut cert_results: BTreeMap<(Key, usize), CertOutcome> = BTreeMap::new();
    for (key, gw) in &mut gateways {
        for (i, l) in gw.listeners.iter_mut().enumerate() {
            if l.protocol == "HTTPS" && l.accepted {
                let c = resolve_certificates(world, &gw.obj.meta, &l.spec);
                l.certificates = c.certificates.clone();
                cert_results.insert((key.clone(), i), c);
            }
        }
    }

    // L4 routes.
    let mut created: BTreeMap<Key, Service> = BTreeMap::new();
    let mut l4_per_listener: BTreeMap<(Key, usize), Vec<L4Attached>> = BTreeMap::new();
    for ((l4kind, _, _), route) in &world.l4_routes {
        let kind = match l4kind {
            L4Kind::Tcp => RouteKind::Tcp,
            L4Kind::Udp => RouteKind::Udp,
        };
        let transport = if *l4kind == L4Kind::Udp { "udp" } else { "tcp" };
        let (entries, accepted) = route_parents(
            world,
            &gateways,
            kind,
            &route.meta,
            &[],
            &parent_refs_of(&route.spec),
        );
        let backends: Vec<ResolvedBackend> = route
            .spec
            .rules
            .iter()
            .flat_map(|r| r.backend_refs.iter())
            .map(|b| {
                let b = BackendRef {
                    group: b.group.clone(),
                    kind: b.kind.clone(),
                    namespace: b.namespace.clone(),
                    name: b.name.clone(),
                    port: b.port,
                    weight: b.weight,
                };
                resolve_backend(
                    world,
                    settings,
                    kind,
                    &route.meta,
                    &b,
                    transport,
                    &mut created,
                )
            })
            .collect();
        let mode = route_mode(settings, &route.meta);
        let status = route_status(
            settings,
            route,
            &entries,
            &backends,
            mode.as_ref().err(),
            now,
        );
        if route_status_is_ours(settings, &route.status, entries.len()) {
            push_status(&mut out, route, l4kind.kind(), status);
        }
        if mode.is_err() {
            continue;
        }
        for (gw_key, listeners) in accepted {
            for (i, _) in listeners {
                l4_per_listener
                    .entry((gw_key.clone(), i))
                    .or_default()
                    .push(L4Attached {
                        route: route.meta.key(),
                        kind: *l4kind,
                        backends: backends.clone(),
                        mode: mode.clone(),
                        health: route_health(settings, &route.meta, *l4kind),
                    });
            }
        }
    }

    // HTTP routes.
    let mut http_attached: Vec<HttpAttached> = Vec::new();
    for route in world.http_routes.values() {
        let hostnames = route.spec.hostnames.clone().unwrap_or_default();
        let parents: Vec<ParentRef> = route
            .spec
            .parent_refs
            .iter()
            .flatten()
            .map(|p| ParentRef {
                group: p.group.clone(),
                kind: p.kind.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                section_name: p.section_name.clone(),
                port: p.port,
            })
            .collect();
        let (entries, accepted) = route_parents(
            world,
            &gateways,
            RouteKind::Http,
            &route.meta,
            &hostnames,
            &parents,
        );
        let rules_backends: Vec<Vec<ResolvedBackend>> = route
            .spec
            .rules
            .iter()
            .flatten()
            .map(|rule| {
                rule.backend_refs
                    .iter()
                    .flatten()
                    .map(|b| {
                        let b = BackendRef {
                            group: b.group.clone(),
                            kind: b.kind.clone(),
                            namespace: b.namespace.clone(),
                            name: b.name.clone(),
                            port: b.port,
                            weight: b.weight,
                        };
                        resolve_backend(
                            world,
                            settings,
                            RouteKind::Http,
                            &route.meta,
                            &b,
                            "tcp",
                            &mut created,
                        )
                    })
                    .collect()
            })
            .collect();
        let all: Vec<ResolvedBackend> = rules_backends.iter().flatten().cloned().collect();
        let status = route_status(settings, route, &entries, &all, None, now);
        if route_status_is_ours(settings, &route.status, entries.len()) {
            push_status(&mut out, route, "HTTPRoute", status);
        }
        let flat: Vec<(Key, usize, Vec<String>)> = accepted
            .into_iter()
            .flat_map(|(gw, ls)| ls.into_iter().map(move |(i, h)| (gw.clone(), i, h)))
            .collect();
        if !flat.is_empty() {
            http_attached.push((route.meta.key(), flat, rules_backends));
        }
    }

    // attachedRoutes counts.
    for ((gw_key, i), routes) in &l4_per_listener {
        if let Some(gw) = gateways.get_mut(gw_key) {
            gw.attached[*i] += i32::try_from(routes.len()).unwrap_or(i32::MAX);
        }
    }
    for (_, flat, _) in &http_attached {
        for (gw_key, i, _) in flat {
            if let Some(gw) = gateways.get_mut(gw_key) {
                gw.attached[*i] += 1;
            }
        }
    }

    // sluiced services for L4 listeners.
    for ((gw_key, i), routes) in &l4_per_listener {
        let gw = &gateways[gw_key];
        let listener = &gw.listeners[*i];
        let Some(vip) = gw.address else { continue };
        if !listener.usable() {
            continue;
        }
        // Several routes on one listener: their backends are merged, each ref keeping its
        // weight; the mode and health check of the oldest route (by name order) apply.
        let first = &routes[0];
        let refs: Vec<ResolvedBackend> = routes.iter().flat_map(|r| r.backends.clone()).collect();
        let mode = first.mode.clone().unwrap_or(NatMode::Dnat);
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_MANAGED_BY.to_owned(), settings.instance.clone());
        labels.insert(LABEL_GATEWAY_NS.to_owned(), label_value(&gw_key.0));
        labels.insert(LABEL_GATEWAY.to_owned(), label_value(&gw_key.1));
        labels.insert(LABEL_LISTENER.to_owned(), label_value(&listener.name));
        labels.insert(LABEL_ROUTE_KIND.to_owned(), first.kind.kind().to_owned());
        labels.insert(LABEL_ROUTE_NS.to_owned(), label_value(&first.route.0));
        labels.insert(LABEL_ROUTE.to_owned(), label_value(&first.route.1));
        let name = service_name(gw_key, &listener.name);
        out.services.insert(
            name.clone(),
            v1::Service {
                name,
                labels: labels.into_iter().collect(),
                vip: vip.to_string(),
                port: u32::from(listener.port),
                protocol: (if first.kind == L4Kind::Udp {
                    v1::Protocol::Udp
                } else {
                    v1::Protocol::Tcp
                }) as i32,
                mode: match mode {
                    NatMode::Dnat => v1::NatMode::Dnat,
                    NatMode::FullNat => v1::NatMode::FullNat,
                } as i32,
                selection: v1::Selection::Maglev as i32,
                snat_pool: if mode == NatMode::FullNat {
                    settings.snat_pool.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                backends: weighted_backends(&refs, vip.is_ipv4(), settings.reject_sentinel),
                health_check: first.health.clone(),
                ..Default::default()
            },
        );
    }

    // HTTP/HTTPS: L4 services in front of the proxies, and the route table.
    let proxy_endpoints: Option<Vec<IpAddr>> = settings.proxy_service.as_ref().map(|r| {
        let mut addrs = BTreeSet::new();
        for slice in world.endpoint_slices.values() {
            if slice.metadata.namespace.as_deref() == Some(r.namespace.as_str())
                && slice
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    == Some(&r.name)
            {
                for e in &slice.endpoints {
                    if e.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                        continue;
                    }
                    addrs.extend(e.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
                }
            }
        }
        addrs.into_iter().collect()
    });
    let mut l7_input = l7::Input::default();
    for (gw_key, gw) in &gateways {
        let mut ports_done = BTreeSet::new();
        for listener in gw
            .listeners
            .iter()
            .filter(|l| l.kinds.contains(&RouteKind::Http) && l.usable())
        {
            let cert_ok = cert_results
                .get(&(
                    gw_key.clone(),
                    gw.listeners
                        .iter()
                        .position(|x| x.name == listener.name)
                        .unwrap_or(0),
                ))
                .is_none_or(|c| c.ok);
            if !cert_ok {
                continue;
            }
            l7_input.listeners.push(l7::ListenerIn {
                name: format!("{}/{}/{}", gw_key.0, gw_key.1, listener.name),
                port: listener.port,
                https: listener.protocol == "HTTPS",
                hostname: listener.hostname.clone(),
                certificates: listener.certificates.clone(),
            });
            let (Some(vip), Some(proxies)) = (gw.address, proxy_endpoints.as_ref()) else {
                continue;
            };
            if !ports_done.insert(listener.port) {
                continue;
            }
            let name = service_name(gw_key, &format!("http-{}", listener.port));
            let mut labels = BTreeMap::new();
            labels.insert(LABEL_MANAGED_BY.to_owned(), settings.instance.clone());
            labels.insert(LABEL_GATEWAY_NS.to_owned(), label_value(&gw_key.0));
            labels.insert(LABEL_GATEWAY.to_owned(), label_value(&gw_key.1));
            labels.insert(LABEL_LISTENER.to_owned(), label_value(&listener.name));
            labels.insert(LABEL_ROUTE_KIND.to_owned(), "HTTPRoute".to_owned());
            let mode = settings.default_mode;
            out.services.insert(
                name.clone(),
                v1::Service {
                    name,
                    labels: labels.into_iter().collect(),
                    vip: vip.to_string(),
                    port: u32::from(listener.port),
                    protocol: v1::Protocol::Tcp as i32,
                    mode: match mode {
                        NatMode::Dnat => v1::NatMode::Dnat,
                        NatMode::FullNat => v1::NatMode::FullNat,
                    } as i32,
                    selection: v1::Selection::Maglev as i32,
                    snat_pool: if mode == NatMode::FullNat {
                        settings.snat_pool.clone().unwrap_or_default()
                    } else {
                        String::new()
                    },
                    backends: proxies
                        .iter()
                        .filter(|a| a.is_ipv4() == vip.is_ipv4())
                        .map(|a| v1::Backend {
                            address: a.to_string(),
                            port: u32::from(listener.port),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            );
        }
    }
    for (route_key, flat, rules_backends) in &http_attached {
        let route = &world.http_routes[route_key];
        let listener_names: Vec<String> = flat
            .iter()
            .filter(|(gw, i, _)| gateways[gw].listeners[*i].usable())
            .map(|(gw, i, _)| format!("{}/{}/{}", gw.0, gw.1, gateways[gw].listeners[*i].name))
            .collect();
        if listener_names.is_empty() {
            continue;
        }
        l7_input.routes.push(l7::RouteIn {
            route: route.clone(),
            listener_names,
            backends: rules_backends.clone(),
        });
    }
    for ((ns, name), secret) in &world.secrets {
        let full = format!("{ns}/{name}");
        if l7_input
            .listeners
            .iter()
            .any(|l| l.certificates.contains(&full))
        {
            let data = secret.data.clone().unwrap_or_default();
            l7_input.certificates.push(v1::Certificate {
                name: full,
                cert_pem: data.get("tls.crt").map(|b| b.0.clone()).unwrap_or_default(),
                key_pem: data.get("tls.key").map(|b| b.0.clone()).unwrap_or_default(),
            });
        }
    }
    out.route_table = l7::route_table(l7_input);

    // Gateway statuses.
    for (key, gw) in &gateways {
        let generation = gw.obj.meta.generation;
        let prev = &gw.obj.status["conditions"];
        let mut conditions = Vec::new();
        match address_errors.get(key) {
            Some(("UnsupportedAddress", msg)) => {
                conditions.push(condition(
                    prev,
                    "Accepted",
                    false,
                    "UnsupportedAddress",
                    msg,
                    generation,
                    now,
                ));
                conditions.push(condition(
                    prev,
                    "Programmed",
                    false,
                    "AddressNotUsable",
                    msg,
                    generation,
                    now,
                ));
            }
            Some((reason, msg)) => {
                conditions.push(condition(
                    prev, "Accepted", true, "Accepted", "", generation, now,
                ));
                conditions.push(condition(
                    prev,
                    "Programmed",
                    false,
                    reason,
                    msg,
                    generation,
                    now,
                ));
            }
            None => {
                let invalid = gw
                    .listeners
                    .iter()
                    .enumerate()
                    .filter(|(i, l)| {
                        !l.usable()
                            || !l.resolved_refs
                            || cert_results.get(&(key.clone(), *i)).is_some_and(|c| !c.ok)
                    })
                    .count();
                let (ok, reason, msg) = if invalid == gw.listeners.len() && invalid > 0 {
                    (
                        false,
                        "ListenersNotValid",
                        "no listener is valid".to_owned(),
                    )
                } else if invalid > 0 {
                    (
                        true,
                        "ListenersNotValid",
                        format!("{invalid} listener(s) are not valid"),
                    )
                } else {
                    (true, "Accepted", String::new())
                };
                conditions.push(condition(
                    prev, "Accepted", ok, reason, &msg, generation, now,
                ));
                conditions.push(condition(
                    prev,
                    "Programmed",
                    true,
                    "Programmed",
                    &format!(
                        "programmed on {}",
                        gw.address.map(|a| a.to_string()).unwrap_or_default()
                    ),
                    generation,
                    now,
                ));
            }
        }
        let prev_listeners = gw.obj.status["listeners"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let listeners: Vec<Value> = gw
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let prev = prev_listeners
                    .iter()
                    .find(|p| p["name"] == l.name.as_str())
                    .map(|p| p["conditions"].clone())
                    .unwrap_or(Value::Null);
                let prev = &prev;
                let mut conds = Vec::new();
                if l.accepted {
                    conds.push(condition(prev, "Accepted", true, "Accepted", "", generation, now));
                } else if default_kinds(&l.protocol).is_none() {
                    conds.push(condition(prev, "Accepted", false, "UnsupportedProtocol", &format!("protocol {} is not supported", l.protocol), generation, now));
                } else if l.port == 0 {
                    conds.push(condition(prev, "Accepted", false, "PortUnavailable", "port must be 1..=65535", generation, now));
                } else {
                    conds.push(condition(prev, "Accepted", false, "UnsupportedProtocol", "TLS passthrough is not supported", generation, now));
                }
                conds.push(if l.conflicted {
                    condition(prev, "Conflicted", true, if transport(&l.protocol) == "udp" || !matches!(l.protocol.as_str(), "HTTP" | "HTTPS") { "ProtocolConflict" } else { "HostnameConflict" }, "another listener uses the same port", generation, now)
                } else {
                    condition(prev, "Conflicted", false, "NoConflicts", "", generation, now)
                });
                let cert = cert_results.get(&(key.clone(), i));
                let refs = if !l.resolved_refs {
                    condition(prev, "ResolvedRefs", false, "InvalidRouteKinds", "allowedRoutes.kinds names a kind this protocol does not support", generation, now)
                } else if let Some(c) = cert.filter(|c| !c.ok) {
                    condition(prev, "ResolvedRefs", false, c.reason, &c.message, generation, now)
                } else {
                    condition(prev, "ResolvedRefs", true, "ResolvedRefs", "", generation, now)
                };
                let refs_ok = refs["status"] == "True";
                conds.push(refs);
                let needs_proxy = l.kinds.contains(&RouteKind::Http) && settings.proxy_service.is_none();
                conds.push(if !l.usable() || !refs_ok {
                    condition(prev, "Programmed", false, "Invalid", "the listener is not valid", generation, now)
                } else if gw.address.is_none() {
                    condition(prev, "Programmed", false, "Pending", "the Gateway has no address", generation, now)
                } else if needs_proxy {
                    condition(prev, "Programmed", false, "Pending", "no sluice-proxy is configured (--proxy-service)", generation, now)
                } else if let Some(reason) = refused.get(&if l.kinds.contains(&RouteKind::Http) {
                    service_name(key, &format!("http-{}", l.port))
                } else {
                    service_name(key, &l.name)
                }) {
                    condition(prev, "Programmed", false, "Pending", &format!("sluiced refused the service: {reason}"), generation, now)
                } else {
                    condition(prev, "Programmed", true, "Programmed", "", generation, now)
                });
                json!({
                    "name": l.name,
                    "supportedKinds": l.kinds.iter().map(|k| json!({"group": GATEWAY_GROUP, "kind": k.kind()})).collect::<Vec<_>>(),
                    "attachedRoutes": gw.attached[i],
                    "conditions": conds,
                })
            })
            .collect();
        let mut status = json!({"conditions": conditions, "listeners": listeners});
        if let Some(a) = gw.address {
            status["addresses"] = json!([{"type": "IPAddress", "value": a.to_string()}]);
            out.addresses.insert(key.clone(), a);
        }
        push_status(&mut out, &gw.obj, "Gateway", status);
    }

    // Services we created that no route asks for any more (loxilb compat): delete them.
    out.stale_services = world
        .services
        .iter()
        .filter(|(key, svc)| {
            !created.contains_key(*key)
                && svc
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_MANAGED_BY))
                    == Some(&settings.instance)
        })
        .map(|(key, _)| key.clone())
        .collect();
    out.created_services = created
        .into_iter()
        .filter(|(key, _)| !world.services.contains_key(key))
        .map(|(_, s)| s)
        .filter_map(|s| serde_json::to_value(s).ok())
        .map(|mut v| {
            v["apiVersion"] = json!("v1");
            v["kind"] = json!("Service");
            v
        })
        .collect();
    out
}

fn parent_refs_of(spec: &TcpRouteSpec) -> Vec<ParentRef> {
    spec.parent_refs
        .iter()
        .flatten()
        .map(|p| ParentRef {
            group: p.group.clone(),
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
        })
        .collect()
}

/// An accepted HTTPRoute: its key, (gateway, listener index, hostnames), backends per rule.
type HttpAttached = (
    Key,
    Vec<(Key, usize, Vec<String>)>,
    Vec<Vec<ResolvedBackend>>,
);

type Accepted = Vec<(Key, Vec<(usize, Vec<String>)>)>;

/// Per parentRef: (echoed parentRef, Accepted condition parts). Returns also the accepted
/// attachments.
#[allow(clippy::type_complexity)]
fn route_parents(
    world: &World,
    gateways: &BTreeMap<Key, GatewayState>,
    kind: RouteKind,
    meta: &Meta,
    hostnames: &[String],
    parents: &[ParentRef],
) -> (Vec<(Value, bool, &'static str, String)>, Accepted) {
    let mut entries = Vec::new();
    let mut accepted: Accepted = Vec::new();
    for p in parents {
        match attach(world, gateways, kind, meta, hostnames, p) {
            Attach::NotOurs => {}
            Attach::Rejected(reason, msg) => entries.push((p.echo(), false, reason, msg)),
            Attach::Accepted(listeners) => {
                entries.push((p.echo(), true, "Accepted", String::new()));
                let ns = p
                    .namespace
                    .clone()
                    .unwrap_or_else(|| meta.namespace.clone());
                let key = (ns, p.name.clone());
                match accepted.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, ls)) => ls.extend(listeners),
                    None => accepted.push((key, listeners)),
                }
            }
        }
    }
    (entries, accepted)
}

fn route_status<S>(
    settings: &Settings,
    route: &Obj<S>,
    entries: &[(Value, bool, &'static str, String)],
    backends: &[ResolvedBackend],
    unsupported: Option<&String>,
    now: &str,
) -> Value {
    let generation = route.meta.generation;
    let previous = route.status["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // Entries of other controllers stay as they are.
    let mut parents: Vec<Value> = previous
        .iter()
        .filter(|p| p["controllerName"] != settings.controller_name.as_str())
        .cloned()
        .collect();
    let invalid = backends.iter().find_map(|b| b.endpoints.as_ref().err());
    for (parent_ref, ok, reason, msg) in entries {
        let prev = previous
            .iter()
            .find(|p| {
                p["parentRef"] == *parent_ref
                    && p["controllerName"] == settings.controller_name.as_str()
            })
            .map(|p| p["conditions"].clone())
            .unwrap_or(Value::Null);
        let accepted = match unsupported {
            Some(m) if *ok => condition(
                &prev,
                "Accepted",
                false,
                "UnsupportedValue",
                m,
                generation,
                now,
            ),
            _ => condition(&prev, "Accepted", *ok, reason, msg, generation, now),
        };
        let resolved = match invalid {
            Some((reason, msg)) => {
                condition(&prev, "ResolvedRefs", false, reason, msg, generation, now)
            }
            None => condition(
                &prev,
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "",
                generation,
                now,
            ),
        };
        parents.push(json!({
            "parentRef": parent_ref,
            "controllerName": settings.controller_name,
            "conditions": [accepted, resolved],
        }));
    }
    json!({ "parents": parents })
}

/// Whether a route status concerns us: it has a parent of ours now or had one before (which
/// must then be removed).
fn route_status_is_ours(settings: &Settings, previous: &Value, entries: usize) -> bool {
    entries > 0
        || previous["parents"].as_array().is_some_and(|p| {
            p.iter()
                .any(|p| p["controllerName"] == settings.controller_name.as_str())
        })
}
