//! `sluice.v1` requests to domain types, with every problem reported against the field's path
//! in the request (`service.backends[2].weight: must be between 0 and 1000000`).
//!
//! Conversion happens in two passes so that messages are precise and never cascade: first the
//! text and numbers are parsed (addresses, enums, ranges of the wire types); if that found
//! nothing, the domain rules run on the typed value ([`check_service`]: names, zero ports,
//! weights, duplicates, address families, table sizes, health-check ranges). Rules that involve
//! other stored objects (unknown SNAT pool, a listener another service uses) are checked by
//! [`crate::state::DesiredState`]'s mutations. The limits are in [`crate::limits`].
//!
//! Each `*_request` function takes the whole request message and returns what the matching
//! [`DesiredState`](crate::state::DesiredState) method needs.

use crate::error::Violations;
use crate::ipam::VipPoolSpec;
use crate::limits::*;
use crate::net::{family_name, parse_ip, same_family, InterfaceAddress, IpCidr, MacAddr};
use crate::state::{
    BackendPatch, BackendSpec, BackendState, Endpoint, HealthCheck, HttpProbe, InterfaceSpec,
    LabelSelector, NatMode, NeighbourSpec, Probe, Protocol, ReleaseTarget, RouteSpec, Selection,
    ServiceSpec, SnatPoolSpec,
};
use core::net::IpAddr;
use core::time::Duration;
use dataplane::lb::maglev;
use sluice_proto::v1;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Collects violations while parsing one request.
struct Parser {
    violations: Violations,
}

impl Parser {
    fn new() -> Parser {
        Parser {
            violations: Violations::new(),
        }
    }

    fn fail(&mut self, field: impl Into<String>, description: impl core::fmt::Display) {
        self.violations.push(field, description);
    }

    fn finish<T>(self, value: T) -> Result<T, Violations> {
        self.violations.into_result(value)
    }

    fn ip(&mut self, field: &str, text: &str) -> Option<IpAddr> {
        if text.is_empty() {
            self.fail(field, "required");
            return None;
        }
        parse_ip(text).map_err(|e| self.fail(field, e)).ok()
    }

    fn cidr(&mut self, field: &str, text: &str) -> Option<IpCidr> {
        if text.is_empty() {
            self.fail(field, "required");
            return None;
        }
        text.parse().map_err(|e| self.fail(field, e)).ok()
    }

    /// A port that must be set: 1..=65535.
    fn port(&mut self, field: &str, value: u32) -> Option<u16> {
        match u16::try_from(value) {
            Ok(port) if port != 0 => Some(port),
            _ => {
                self.fail(
                    field,
                    format_args!("must be between 1 and 65535, not {value}"),
                );
                None
            }
        }
    }

    /// A name (DNS-1123 subdomain) that must be set.
    fn name(&mut self, field: &str, text: &str) -> Option<String> {
        match check_name(text) {
            Ok(()) => Some(text.to_owned()),
            Err(reason) => {
                self.fail(field, reason);
                None
            }
        }
    }

    fn port_name(&mut self, field: &str, text: &str) -> Option<String> {
        match check_port_name(text) {
            Ok(()) => Some(text.to_owned()),
            Err(reason) => {
                self.fail(field, reason);
                None
            }
        }
    }

    /// A list that must not exceed `max` entries; `false` (and a violation) when it does, so
    /// the caller skips parsing a huge list entry by entry.
    fn list_len(&mut self, field: &str, len: usize, max: usize) -> bool {
        if len > max {
            self.fail(field, format_args!("{len} entries, at most {max}"));
            false
        } else {
            true
        }
    }

    fn duration(&mut self, field: &str, value: Option<&prost_types::Duration>) -> Option<Duration> {
        let value = value?;
        Duration::try_from(*value)
            .map_err(|_| self.fail(field, "must be a non-negative, normalized duration"))
            .ok()
    }
}

/// Checks a DNS-1123 subdomain: 1..=253 characters of `[a-z0-9.-]`, dot-separated labels of
/// 1..=63 characters that start and end with a letter or digit.
pub fn check_name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("required".into());
    }
    if text.len() > MAX_NAME_LEN {
        return Err(format!("{} characters, at most {MAX_NAME_LEN}", text.len()));
    }
    for label in text.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_NAME_LABEL_LEN
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "{text:?} is not a valid name: use lowercase letters, digits, '-' and '.', \
                 with dot-separated parts of at most {MAX_NAME_LABEL_LEN} characters that \
                 start and end with a letter or digit"
            ));
        }
    }
    Ok(())
}

/// Checks a port name of the daemon's configuration: 1..=63 characters of `[A-Za-z0-9_.-]`.
pub fn check_port_name(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("required".into());
    }
    let valid = text.len() <= MAX_NAME_LABEL_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a port name: 1 to {MAX_NAME_LABEL_LEN} letters, digits, '-', '_', '.'"
        ))
    }
}

/// The name part of label keys and label values: at most 63 of `[A-Za-z0-9_.-]`, starting and
/// ending with a letter or digit.
fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LABEL_LEN
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a label key (`[prefix/]name`, Kubernetes rules) and its value.
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_name(prefix).map_err(|_| {
            format!("key {key:?}: the prefix before '/' must be a DNS subdomain (e.g. example.com)")
        })?;
    }
    if !is_label_name(name) {
        return Err(format!(
            "key {key:?}: the name must be 1 to 63 letters, digits, '-', '_', '.', starting and \
             ending with a letter or digit"
        ));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(format!(
            "value {value:?}: must be empty or 1 to 63 letters, digits, '-', '_', '.', starting \
             and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn labels(
    parser: &mut Parser,
    path: &str,
    labels: &HashMap<String, String>,
) -> BTreeMap<String, String> {
    if parser.list_len(&format!("{path}.labels"), labels.len(), MAX_LABELS) {
        // Sorted, so the first reported problem does not depend on hash order.
        let sorted: BTreeMap<String, String> = labels.clone().into_iter().collect();
        for (key, value) in &sorted {
            if let Err(reason) = check_label(key, value) {
                parser.fail(format!("{path}.labels[{key:?}]"), reason);
            }
        }
        sorted
    } else {
        BTreeMap::new()
    }
}

/// Converts an optional `LabelSelector` (unset: match everything).
pub fn label_selector(
    selector: Option<&v1::LabelSelector>,
    path: &str,
) -> Result<LabelSelector, Violations> {
    let mut parser = Parser::new();
    let match_labels = match selector {
        Some(selector) => labels(&mut parser, path, &selector.match_labels),
        None => BTreeMap::new(),
    };
    parser.finish(LabelSelector { match_labels })
}

fn protocol(parser: &mut Parser, field: &str, value: i32) -> Option<Protocol> {
    match v1::Protocol::try_from(value) {
        Ok(v1::Protocol::Tcp) => Some(Protocol::Tcp),
        Ok(v1::Protocol::Udp) => Some(Protocol::Udp),
        Ok(v1::Protocol::Unspecified) => {
            parser.fail(field, "required: PROTOCOL_TCP or PROTOCOL_UDP");
            None
        }
        Err(_) => {
            parser.fail(field, format_args!("unknown protocol {value}"));
            None
        }
    }
}

fn nat_mode(parser: &mut Parser, field: &str, value: i32) -> Option<NatMode> {
    match v1::NatMode::try_from(value) {
        Ok(v1::NatMode::Dnat) => Some(NatMode::Dnat),
        Ok(v1::NatMode::FullNat) => Some(NatMode::FullNat),
        Ok(v1::NatMode::Unspecified) => {
            parser.fail(field, "required: NAT_MODE_DNAT or NAT_MODE_FULL_NAT");
            None
        }
        Err(_) => {
            parser.fail(field, format_args!("unknown mode {value}"));
            None
        }
    }
}

fn selection(parser: &mut Parser, field: &str, value: i32) -> Option<Selection> {
    match v1::Selection::try_from(value) {
        Ok(v1::Selection::Maglev) => Some(Selection::Maglev),
        Ok(v1::Selection::RoundRobin) => Some(Selection::RoundRobin),
        Ok(v1::Selection::SourceHash) => Some(Selection::SourceHash),
        Ok(v1::Selection::Unspecified) => {
            parser.fail(
                field,
                "required: SELECTION_MAGLEV, SELECTION_ROUND_ROBIN or SELECTION_SOURCE_HASH",
            );
            None
        }
        Err(_) => {
            parser.fail(field, format_args!("unknown selection {value}"));
            None
        }
    }
}

fn backend_state(parser: &mut Parser, field: &str, value: i32) -> Option<BackendState> {
    match v1::BackendState::try_from(value) {
        Ok(v1::BackendState::Unspecified | v1::BackendState::Active) => Some(BackendState::Active),
        Ok(v1::BackendState::Draining) => Some(BackendState::Draining),
        Ok(v1::BackendState::Reject) => Some(BackendState::Reject),
        Err(_) => {
            parser.fail(field, format_args!("unknown backend state {value}"));
            None
        }
    }
}

fn backend(parser: &mut Parser, path: &str, proto: &v1::Backend) -> Option<BackendSpec> {
    let address = parser.ip(&format!("{path}.address"), &proto.address);
    let port = parser.port(&format!("{path}.port"), proto.port);
    let state = backend_state(parser, &format!("{path}.state"), proto.state);
    Some(BackendSpec {
        address: address?,
        port: port?,
        weight: proto.weight.unwrap_or(DEFAULT_WEIGHT),
        state: state?,
    })
}

fn endpoint(parser: &mut Parser, path: &str, proto: &v1::BackendRef) -> Option<Endpoint> {
    let address = parser.ip(&format!("{path}.address"), &proto.address);
    let port = parser.port(&format!("{path}.port"), proto.port);
    Some(Endpoint {
        address: address?,
        port: port?,
    })
}

fn health_check(
    parser: &mut Parser,
    path: &str,
    proto: &v1::HealthCheck,
) -> Option<Option<HealthCheck>> {
    let kind = match v1::HealthCheckType::try_from(proto.r#type) {
        Ok(v1::HealthCheckType::None) => return Some(None),
        Ok(v1::HealthCheckType::Unspecified) => {
            parser.fail(
                format!("{path}.type"),
                "required: HEALTH_CHECK_TYPE_NONE, _PING, _TCP, _UDP, _HTTP or _HTTPS",
            );
            return None;
        }
        Ok(kind) => kind,
        Err(_) => {
            parser.fail(
                format!("{path}.type"),
                format_args!("unknown health check type {}", proto.r#type),
            );
            return None;
        }
    };
    let is_http = matches!(kind, v1::HealthCheckType::Http | v1::HealthCheckType::Https);
    // Settings of another check type are a mistake worth reporting, not silently ignoring.
    let mut unused = |field: &str, set: bool, used_by: &str| {
        if set {
            parser.fail(
                format!("{path}.{field}"),
                format_args!("only used by {used_by} checks"),
            );
        }
    };
    unused(
        "http_path",
        !is_http && !proto.http_path.is_empty(),
        "HTTP and HTTPS",
    );
    unused(
        "http_host",
        !is_http && !proto.http_host.is_empty(),
        "HTTP and HTTPS",
    );
    unused(
        "http_expected_status",
        !is_http && proto.http_expected_status.is_some(),
        "HTTP and HTTPS",
    );
    let is_udp = kind == v1::HealthCheckType::Udp;
    unused(
        "udp_request",
        !is_udp && !proto.udp_request.is_empty(),
        "UDP",
    );
    unused(
        "udp_response",
        !is_udp && !proto.udp_response.is_empty(),
        "UDP",
    );
    unused(
        "port",
        kind == v1::HealthCheckType::Ping && proto.port.is_some(),
        "TCP, UDP, HTTP and HTTPS",
    );

    let interval = parser.duration(&format!("{path}.interval"), proto.interval.as_ref());
    let timeout = parser.duration(&format!("{path}.timeout"), proto.timeout.as_ref());
    let port = match proto.port {
        Some(value) => Some(parser.port(&format!("{path}.port"), value)?),
        None => None,
    };
    let expected_status = match proto.http_expected_status {
        Some(value) => match u16::try_from(value) {
            Ok(status) => status,
            Err(_) => {
                parser.fail(
                    format!("{path}.http_expected_status"),
                    format_args!("must be between 100 and 599, not {value}"),
                );
                return None;
            }
        },
        None => DEFAULT_HTTP_STATUS,
    };
    let http = || HttpProbe {
        path: if proto.http_path.is_empty() {
            DEFAULT_HTTP_PATH.to_owned()
        } else {
            proto.http_path.clone()
        },
        host: (!proto.http_host.is_empty()).then(|| proto.http_host.clone()),
        expected_status,
    };
    let probe = match kind {
        v1::HealthCheckType::Ping => Probe::Ping,
        v1::HealthCheckType::Tcp => Probe::Tcp,
        v1::HealthCheckType::Udp => Probe::Udp {
            request: proto.udp_request.clone(),
            response: proto.udp_response.clone(),
        },
        v1::HealthCheckType::Http => Probe::Http(http()),
        _ => Probe::Https(http()),
    };
    let interval = interval.unwrap_or(DEFAULT_HEALTH_INTERVAL);
    Some(Some(HealthCheck {
        probe,
        interval,
        // An explicit short interval shortens the default timeout with it.
        timeout: timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT.min(interval)),
        rise: proto.rise.unwrap_or(DEFAULT_HEALTH_RISE),
        fall: proto.fall.unwrap_or(DEFAULT_HEALTH_FALL),
        port,
    }))
}

/// Converts a `Service` message (fields under `path`, e.g. `service`) and checks it with
/// [`check_service`]. Output-only fields are ignored.
pub fn service_from_proto(proto: &v1::Service, path: &str) -> Result<ServiceSpec, Violations> {
    let mut parser = Parser::new();
    let labels = labels(&mut parser, path, &proto.labels);
    let vip = parser.ip(&format!("{path}.vip"), &proto.vip);
    let port = parser.port(&format!("{path}.port"), proto.port);
    let protocol = protocol(&mut parser, &format!("{path}.protocol"), proto.protocol);
    let mode = nat_mode(&mut parser, &format!("{path}.mode"), proto.mode);
    let selection = selection(&mut parser, &format!("{path}.selection"), proto.selection);
    let mut backends = Vec::new();
    let backends_path = format!("{path}.backends");
    if parser.list_len(
        &backends_path,
        proto.backends.len(),
        MAX_BACKENDS_PER_SERVICE,
    ) {
        backends.reserve(proto.backends.len());
        for (i, b) in proto.backends.iter().enumerate() {
            if let Some(b) = backend(&mut parser, &format!("{backends_path}[{i}]"), b) {
                backends.push(b);
            }
        }
    }
    let health_check = match &proto.health_check {
        Some(h) => health_check(&mut parser, &format!("{path}.health_check"), h),
        None => Some(None),
    };
    let (Some(vip), Some(port), Some(protocol), Some(mode), Some(selection), Some(health_check)) =
        (vip, port, protocol, mode, selection, health_check)
    else {
        return Err(parser.violations);
    };
    if !parser.violations.is_empty() {
        return Err(parser.violations);
    }
    let spec = ServiceSpec {
        name: proto.name.clone(),
        labels,
        vip,
        port,
        protocol,
        mode,
        selection,
        session_persistence: proto.session_persistence,
        snat_pool: (!proto.snat_pool.is_empty()).then(|| proto.snat_pool.clone()),
        maglev_table_size: proto.maglev_table_size,
        backends,
        health_check,
    };
    check_service(&spec, path)?;
    Ok(spec)
}

/// The domain rules of a service on its own (fields under `path`): name, port, backends
/// (count, ports, weights, duplicates, address family), SNAT pool presence by mode, Maglev
/// table size and health-check ranges.
pub fn check_service(spec: &ServiceSpec, path: &str) -> Result<(), Violations> {
    let mut v = Violations::new();
    if let Err(reason) = check_name(&spec.name) {
        v.push(format!("{path}.name"), reason);
    }
    if spec.labels.len() > MAX_LABELS {
        v.push(
            format!("{path}.labels"),
            format_args!("{} entries, at most {MAX_LABELS}", spec.labels.len()),
        );
    }
    if spec.vip.is_unspecified() || spec.vip.is_multicast() {
        v.push(
            format!("{path}.vip"),
            format_args!("{} cannot be a VIP", spec.vip),
        );
    }
    if spec.port == 0 {
        v.push(format!("{path}.port"), "must be between 1 and 65535, not 0");
    }
    match (spec.mode, &spec.snat_pool) {
        (NatMode::FullNat, None) => v.push(
            format!("{path}.snat_pool"),
            "required for NAT_MODE_FULL_NAT",
        ),
        (NatMode::Dnat, Some(_)) => v.push(
            format!("{path}.snat_pool"),
            "must be empty for NAT_MODE_DNAT (DNAT keeps the client's source address)",
        ),
        _ => {}
    }
    if let Some(pool) = &spec.snat_pool {
        if let Err(reason) = check_name(pool) {
            v.push(format!("{path}.snat_pool"), reason);
        }
    }
    if spec.backends.len() > MAX_BACKENDS_PER_SERVICE {
        v.push(
            format!("{path}.backends"),
            format_args!(
                "{} entries, at most {MAX_BACKENDS_PER_SERVICE}",
                spec.backends.len()
            ),
        );
    }
    let mut seen: HashMap<Endpoint, usize> = HashMap::with_capacity(spec.backends.len());
    for (i, backend) in spec.backends.iter().enumerate() {
        let field = format!("{path}.backends[{i}]");
        if backend.address.is_unspecified() || backend.address.is_multicast() {
            v.push(
                format!("{field}.address"),
                format_args!("{} cannot be a backend", backend.address),
            );
        } else if !same_family(&backend.address, &spec.vip) {
            v.push(
                format!("{field}.address"),
                format_args!(
                    "{} backend for {} VIP {} (no NAT64)",
                    family_name(&backend.address),
                    family_name(&spec.vip),
                    spec.vip
                ),
            );
        }
        if backend.port == 0 {
            v.push(
                format!("{field}.port"),
                "must be between 1 and 65535, not 0",
            );
        }
        if backend.weight > MAX_WEIGHT {
            v.push(
                format!("{field}.weight"),
                format_args!("must be between 0 and {MAX_WEIGHT}, not {}", backend.weight),
            );
        }
        if let Some(first) = seen.insert(backend.endpoint(), i) {
            v.push(
                field,
                format_args!(
                    "duplicate backend {}: same address and port as backends[{first}]",
                    backend.endpoint()
                ),
            );
        }
    }
    if let Some(size) = spec.maglev_table_size {
        let field = format!("{path}.maglev_table_size");
        let min = spec.backends.len() as u64 * u64::from(maglev::MIN_SLOTS_PER_BACKEND);
        if let Err(e) = maglev::validate(&[], size) {
            v.push(field, e);
        } else if u64::from(size) < min {
            v.push(
                field,
                format_args!(
                    "{size} is too small for {} backends: needs a prime >= {min} ({} slots per backend)",
                    spec.backends.len(),
                    maglev::MIN_SLOTS_PER_BACKEND
                ),
            );
        }
    }
    if let Some(check) = &spec.health_check {
        check_health(&mut v, &format!("{path}.health_check"), check);
    }
    v.into_result(())
}

fn check_health(v: &mut Violations, path: &str, check: &HealthCheck) {
    if !(MIN_HEALTH_INTERVAL..=MAX_HEALTH_INTERVAL).contains(&check.interval) {
        v.push(
            format!("{path}.interval"),
            format_args!(
                "must be between {MIN_HEALTH_INTERVAL:?} and {MAX_HEALTH_INTERVAL:?}, not {:?}",
                check.interval
            ),
        );
    }
    if check.timeout < MIN_HEALTH_TIMEOUT || check.timeout > check.interval {
        v.push(
            format!("{path}.timeout"),
            format_args!(
                "must be between {MIN_HEALTH_TIMEOUT:?} and the interval ({:?}), not {:?}",
                check.interval, check.timeout
            ),
        );
    }
    for (field, value) in [("rise", check.rise), ("fall", check.fall)] {
        if !(1..=MAX_HEALTH_THRESHOLD).contains(&value) {
            v.push(
                format!("{path}.{field}"),
                format_args!("must be between 1 and {MAX_HEALTH_THRESHOLD}, not {value}"),
            );
        }
    }
    if check.port == Some(0) {
        v.push(format!("{path}.port"), "must be between 1 and 65535, not 0");
    }
    match &check.probe {
        Probe::Http(http) | Probe::Https(http) => {
            if !http.path.starts_with('/')
                || http.path.len() > MAX_HTTP_PATH_LEN
                || http.path.bytes().any(|b| b.is_ascii_control() || b == b' ')
            {
                v.push(
                    format!("{path}.http_path"),
                    format_args!(
                        "must start with '/', have no spaces or control characters, and be at \
                         most {MAX_HTTP_PATH_LEN} bytes"
                    ),
                );
            }
            if let Some(host) = &http.host {
                if host.len() > MAX_HTTP_HOST_LEN || !host.bytes().all(|b| b.is_ascii_graphic()) {
                    v.push(
                        format!("{path}.http_host"),
                        format_args!(
                            "must be at most {MAX_HTTP_HOST_LEN} printable characters without spaces"
                        ),
                    );
                }
            }
            if !(100..=599).contains(&http.expected_status) {
                v.push(
                    format!("{path}.http_expected_status"),
                    format_args!("must be between 100 and 599, not {}", http.expected_status),
                );
            }
        }
        Probe::Udp { request, response } => {
            for (field, payload) in [("udp_request", request), ("udp_response", response)] {
                if payload.len() > MAX_UDP_PAYLOAD {
                    v.push(
                        format!("{path}.{field}"),
                        format_args!("{} bytes, at most {MAX_UDP_PAYLOAD}", payload.len()),
                    );
                }
            }
        }
        Probe::Ping | Probe::Tcp => {}
    }
}

/// `ApplyServiceRequest` → the service and the expected resource_version.
pub fn apply_service_request(
    request: &v1::ApplyServiceRequest,
) -> Result<(ServiceSpec, Option<u64>), Violations> {
    let service = request
        .service
        .as_ref()
        .ok_or_else(|| Violations::one("service", "required"))?;
    Ok((
        service_from_proto(service, "service")?,
        request.resource_version,
    ))
}

/// `ApplyServicesRequest` → the batch for [`DesiredState::apply_services`](crate::state::DesiredState::apply_services).
pub fn apply_services_request(
    request: &v1::ApplyServicesRequest,
) -> Result<Vec<(ServiceSpec, Option<u64>)>, Violations> {
    if request.requests.len() > MAX_APPLY_BATCH {
        return Err(Violations::one(
            "requests",
            format_args!(
                "{} entries, at most {MAX_APPLY_BATCH}",
                request.requests.len()
            ),
        ));
    }
    let mut violations = Violations::new();
    let mut batch = Vec::with_capacity(request.requests.len());
    for (i, entry) in request.requests.iter().enumerate() {
        match apply_service_request(entry) {
            Ok(item) => batch.push(item),
            Err(v) => violations.extend(v.prefixed(&format!("requests[{i}]"))),
        }
    }
    violations.into_result(batch)
}

/// A required object name of a Get/Delete request, checked like a stored name (so a typo is
/// INVALID_ARGUMENT, not a confusing NOT_FOUND).
pub fn object_name(text: &str, field: &str) -> Result<String, Violations> {
    let mut parser = Parser::new();
    let name = parser.name(field, text);
    parser.finish(name.unwrap_or_default())
}

/// What a `PatchBackendsRequest` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchBackends {
    pub service: String,
    pub patch: BackendPatch,
    pub expected_version: Option<u64>,
}

/// `PatchBackendsRequest` → [`PatchBackends`].
pub fn patch_backends_request(
    request: &v1::PatchBackendsRequest,
) -> Result<PatchBackends, Violations> {
    let mut parser = Parser::new();
    let service = parser.name("service", &request.service);
    let lists = [
        ("remove", request.remove.len()),
        ("upsert", request.upsert.len()),
        ("drain", request.drain.len()),
        ("activate", request.activate.len()),
    ];
    let mut within_limits = true;
    for (list, len) in lists {
        within_limits &= parser.list_len(list, len, MAX_BACKENDS_PER_SERVICE);
    }
    if !within_limits {
        return Err(parser.violations);
    }
    let refs = |parser: &mut Parser, list: &str, entries: &[v1::BackendRef]| {
        entries
            .iter()
            .enumerate()
            .filter_map(|(i, r)| endpoint(parser, &format!("{list}[{i}]"), r))
            .collect::<Vec<_>>()
    };
    let remove = refs(&mut parser, "remove", &request.remove);
    let drain = refs(&mut parser, "drain", &request.drain);
    let activate = refs(&mut parser, "activate", &request.activate);
    let upsert: Vec<BackendSpec> = request
        .upsert
        .iter()
        .enumerate()
        .filter_map(|(i, b)| backend(&mut parser, &format!("upsert[{i}]"), b))
        .collect();
    for (i, backend) in upsert.iter().enumerate() {
        if backend.weight > MAX_WEIGHT {
            parser.fail(
                format!("upsert[{i}].weight"),
                format_args!("must be between 0 and {MAX_WEIGHT}, not {}", backend.weight),
            );
        }
    }
    if request.resource_version == Some(0) {
        parser.fail(
            "resource_version",
            "0 (create only) does not apply: the service must exist",
        );
    }
    parser.finish(PatchBackends {
        service: service.unwrap_or_default(),
        patch: BackendPatch {
            remove,
            upsert,
            drain,
            activate,
            allow_missing: request.allow_missing,
        },
        expected_version: request.resource_version,
    })
}

/// `ApplyVipPoolRequest` → the pool spec and the expected resource_version.
pub fn apply_vip_pool_request(
    request: &v1::ApplyVipPoolRequest,
) -> Result<(VipPoolSpec, Option<u64>), Violations> {
    let pool = request
        .pool
        .as_ref()
        .ok_or_else(|| Violations::one("pool", "required"))?;
    let mut parser = Parser::new();
    let name = parser.name("pool.name", &pool.name);
    let mut cidrs: Vec<IpCidr> = Vec::new();
    if pool.cidrs.is_empty() {
        parser.fail("pool.cidrs", "at least one CIDR is required");
    } else if parser.list_len("pool.cidrs", pool.cidrs.len(), MAX_VIP_POOL_CIDRS) {
        for (i, text) in pool.cidrs.iter().enumerate() {
            let field = format!("pool.cidrs[{i}]");
            let Some(cidr) = parser.cidr(&field, text) else {
                continue;
            };
            if let Some(j) = cidrs.iter().position(|c| c.overlaps(&cidr)) {
                parser.fail(
                    field,
                    format_args!("{cidr} overlaps pool.cidrs[{j}] ({})", cidrs[j]),
                );
            }
            cidrs.push(cidr);
        }
    }
    let mut excluded = BTreeSet::new();
    if parser.list_len(
        "pool.excluded_addresses",
        pool.excluded_addresses.len(),
        MAX_VIP_POOL_EXCLUSIONS,
    ) {
        for (i, text) in pool.excluded_addresses.iter().enumerate() {
            let field = format!("pool.excluded_addresses[{i}]");
            let Some(address) = parser.ip(&field, text) else {
                continue;
            };
            if !cidrs.is_empty() && !cidrs.iter().any(|c| c.contains(&address)) {
                parser.fail(
                    field,
                    format_args!("{address} is not in any of the pool's CIDRs"),
                );
            } else if !excluded.insert(address) {
                parser.fail(field, format_args!("{address} is listed twice"));
            }
        }
    }
    let spec = VipPoolSpec {
        name: name.unwrap_or_default(),
        cidrs,
        excluded,
    };
    parser.finish((spec, request.resource_version))
}

/// What an `AllocateVipRequest` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocateVip {
    pub pool: String,
    pub owner: String,
    pub requested: Option<IpAddr>,
}

/// Checks an AllocateVip owner: 1..=253 printable ASCII characters.
pub fn check_owner(owner: &str) -> Result<(), String> {
    if owner.is_empty() {
        Err("required".into())
    } else if owner.len() > MAX_OWNER_LEN || !owner.bytes().all(|b| b.is_ascii_graphic()) {
        Err(format!(
            "must be 1 to {MAX_OWNER_LEN} printable ASCII characters without spaces"
        ))
    } else {
        Ok(())
    }
}

/// `AllocateVipRequest` → [`AllocateVip`].
pub fn allocate_vip_request(request: &v1::AllocateVipRequest) -> Result<AllocateVip, Violations> {
    let mut parser = Parser::new();
    let pool = parser.name("pool", &request.pool);
    if let Err(reason) = check_owner(&request.owner) {
        parser.fail("owner", reason);
    }
    let requested = match &request.requested_address {
        Some(text) => parser.ip("requested_address", text),
        None => None,
    };
    parser.finish(AllocateVip {
        pool: pool.unwrap_or_default(),
        owner: request.owner.clone(),
        requested,
    })
}

/// `ReleaseVipRequest` → the pool name and what to release.
pub fn release_vip_request(
    request: &v1::ReleaseVipRequest,
) -> Result<(String, ReleaseTarget), Violations> {
    use v1::release_vip_request::Target;
    let mut parser = Parser::new();
    let pool = parser.name("pool", &request.pool);
    let target = match &request.target {
        Some(Target::Address(text)) => parser.ip("address", text).map(ReleaseTarget::Address),
        Some(Target::Owner(owner)) => match check_owner(owner) {
            Ok(()) => Some(ReleaseTarget::Owner(owner.clone())),
            Err(reason) => {
                parser.fail("owner", reason);
                None
            }
        },
        None => {
            parser.fail("target", "required: set address or owner");
            None
        }
    };
    match (pool, target) {
        (Some(pool), Some(target)) if parser.violations.is_empty() => Ok((pool, target)),
        _ => Err(parser.violations),
    }
}

/// `ApplySnatPoolRequest` → the pool spec and the expected resource_version.
pub fn apply_snat_pool_request(
    request: &v1::ApplySnatPoolRequest,
) -> Result<(SnatPoolSpec, Option<u64>), Violations> {
    let pool = request
        .pool
        .as_ref()
        .ok_or_else(|| Violations::one("pool", "required"))?;
    let mut parser = Parser::new();
    let name = parser.name("pool.name", &pool.name);
    let mut addresses: Vec<IpAddr> = Vec::with_capacity(pool.addresses.len());
    if pool.addresses.is_empty() {
        parser.fail("pool.addresses", "at least one address is required");
    } else if parser.list_len(
        "pool.addresses",
        pool.addresses.len(),
        MAX_SNAT_POOL_ADDRESSES,
    ) {
        for (i, text) in pool.addresses.iter().enumerate() {
            let field = format!("pool.addresses[{i}]");
            let Some(address) = parser.ip(&field, text) else {
                continue;
            };
            if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
                parser.fail(field, format_args!("{address} cannot be a SNAT address"));
            } else if let Some(j) = addresses.iter().position(|a| *a == address) {
                parser.fail(field, format_args!("{address} is also pool.addresses[{j}]"));
            } else {
                addresses.push(address);
            }
        }
    }
    let spec = SnatPoolSpec {
        name: name.unwrap_or_default(),
        addresses,
    };
    parser.finish((spec, request.resource_version))
}

/// `ApplyInterfaceRequest` → the interface spec and the expected resource_version. `ports`
/// are the port names of the daemon's configuration.
pub fn apply_interface_request<S: AsRef<str>>(
    request: &v1::ApplyInterfaceRequest,
    ports: &[S],
) -> Result<(InterfaceSpec, Option<u64>), Violations> {
    let interface = request
        .interface
        .as_ref()
        .ok_or_else(|| Violations::one("interface", "required"))?;
    let mut parser = Parser::new();
    let port = parser.port_name("interface.port", &interface.port);
    if let Some(port) = &port {
        if !ports.iter().any(|p| p.as_ref() == port) {
            let known: Vec<&str> = ports.iter().map(AsRef::as_ref).collect();
            parser.fail(
                "interface.port",
                format_args!(
                    "no port named {port:?} in the daemon's configuration (ports: {})",
                    known.join(", ")
                ),
            );
        }
    }
    let mut addresses: Vec<InterfaceAddress> = Vec::new();
    if parser.list_len(
        "interface.addresses",
        interface.addresses.len(),
        MAX_INTERFACE_ADDRESSES,
    ) {
        for (i, text) in interface.addresses.iter().enumerate() {
            let field = format!("interface.addresses[{i}]");
            match text.parse::<InterfaceAddress>() {
                Err(e) => parser.fail(field, e),
                Ok(address) => {
                    if let Some(j) = addresses.iter().position(|a| a.address == address.address) {
                        parser.fail(
                            field,
                            format_args!("{} is also interface.addresses[{j}]", address.address),
                        );
                    } else {
                        addresses.push(address);
                    }
                }
            }
        }
    }
    let spec = InterfaceSpec {
        port: port.unwrap_or_default(),
        addresses,
    };
    parser.finish((spec, request.resource_version))
}

/// `ApplyRouteRequest` → the route spec and the expected resource_version.
pub fn apply_route_request(
    request: &v1::ApplyRouteRequest,
) -> Result<(RouteSpec, Option<u64>), Violations> {
    let route = request
        .route
        .as_ref()
        .ok_or_else(|| Violations::one("route", "required"))?;
    let mut parser = Parser::new();
    let prefix = parser.cidr("route.prefix", &route.prefix);
    let next_hop = if route.next_hop.is_empty() {
        None
    } else {
        parser.ip("route.next_hop", &route.next_hop)
    };
    if let (Some(prefix), Some(hop)) = (&prefix, &next_hop) {
        if prefix.is_ipv4() != hop.is_ipv4() {
            parser.fail(
                "route.next_hop",
                format_args!(
                    "{} next hop for {} prefix {prefix}",
                    family_name(hop),
                    family_name(&prefix.network())
                ),
            );
        } else if hop.is_unspecified() || hop.is_multicast() {
            parser.fail("route.next_hop", format_args!("{hop} cannot be a next hop"));
        }
    }
    let port = parser.port_name("route.port", &route.port);
    match (prefix, port) {
        (Some(prefix), Some(port)) if parser.violations.is_empty() => Ok((
            RouteSpec {
                prefix,
                next_hop,
                port,
            },
            request.resource_version,
        )),
        _ => Err(parser.violations),
    }
}

/// `DeleteRouteRequest` → the prefix.
pub fn delete_route_request(request: &v1::DeleteRouteRequest) -> Result<IpCidr, Violations> {
    let mut parser = Parser::new();
    let prefix = parser.cidr("prefix", &request.prefix);
    match prefix {
        Some(prefix) => Ok(prefix),
        None => Err(parser.violations),
    }
}

/// `ApplyNeighbourRequest` → the neighbour spec and the expected resource_version.
pub fn apply_neighbour_request(
    request: &v1::ApplyNeighbourRequest,
) -> Result<(NeighbourSpec, Option<u64>), Violations> {
    let neighbour = request
        .neighbour
        .as_ref()
        .ok_or_else(|| Violations::one("neighbour", "required"))?;
    let mut parser = Parser::new();
    let address = parser.ip("neighbour.address", &neighbour.address);
    if let Some(address) = &address {
        if address.is_unspecified() || address.is_multicast() {
            parser.fail(
                "neighbour.address",
                format_args!("{address} cannot be a neighbour"),
            );
        }
    }
    let mac = match neighbour.mac.parse::<MacAddr>() {
        Ok(mac) if mac.is_multicast() || mac.is_zero() => {
            parser.fail(
                "neighbour.mac",
                format_args!("{mac} is not a unicast MAC address"),
            );
            None
        }
        Ok(mac) => Some(mac),
        Err(e) => {
            parser.fail("neighbour.mac", e);
            None
        }
    };
    let port = parser.port_name("neighbour.port", &neighbour.port);
    match (address, mac, port) {
        (Some(address), Some(mac), Some(port)) if parser.violations.is_empty() => Ok((
            NeighbourSpec { address, mac, port },
            request.resource_version,
        )),
        _ => Err(parser.violations),
    }
}

/// `DeleteNeighbourRequest` → the port and address.
pub fn delete_neighbour_request(
    request: &v1::DeleteNeighbourRequest,
) -> Result<(String, IpAddr), Violations> {
    let mut parser = Parser::new();
    let port = parser.port_name("port", &request.port);
    let address = parser.ip("address", &request.address);
    match (port, address) {
        (Some(port), Some(address)) => Ok((port, address)),
        _ => Err(parser.violations),
    }
}

/// A port name of a Delete request.
pub fn port_name(text: &str, field: &str) -> Result<String, Violations> {
    let mut parser = Parser::new();
    let port = parser.port_name(field, text);
    parser.finish(port.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert;

    fn backend(address: &str, port: u32) -> v1::Backend {
        v1::Backend {
            address: address.into(),
            port,
            ..v1::Backend::default()
        }
    }

    fn service() -> v1::Service {
        v1::Service {
            name: "web".into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            vip: "198.18.100.10".into(),
            port: 80,
            protocol: v1::Protocol::Tcp.into(),
            mode: v1::NatMode::Dnat.into(),
            selection: v1::Selection::Maglev.into(),
            backends: vec![backend("198.19.0.1", 8080), backend("198.19.0.2", 8080)],
            ..v1::Service::default()
        }
    }

    /// The violations of applying `service`, as "field: description" strings.
    fn errors(service: v1::Service) -> Vec<String> {
        let request = v1::ApplyServiceRequest {
            service: Some(service),
            resource_version: None,
        };
        apply_service_request(&request)
            .expect_err("request must be refused")
            .violations()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn valid_service_gets_defaults() {
        let (spec, version) = apply_service_request(&v1::ApplyServiceRequest {
            service: Some(service()),
            resource_version: Some(4),
        })
        .unwrap();
        assert_eq!(version, Some(4));
        assert_eq!(spec.backends[0].weight, DEFAULT_WEIGHT);
        assert_eq!(spec.backends[0].state, BackendState::Active);
        assert_eq!(spec.snat_pool, None);
        assert_eq!(spec.health_check, None);
    }

    #[test]
    fn weight_out_of_range_names_the_backend() {
        let mut s = service();
        s.backends.push(v1::Backend {
            weight: Some(1_000_001),
            ..backend("198.19.0.3", 8080)
        });
        assert_eq!(
            errors(s),
            ["service.backends[2].weight: must be between 0 and 1000000, not 1000001"]
        );
    }

    #[test]
    fn bad_addresses_and_ports() {
        let mut s = service();
        s.vip = "198.18.100.300".into();
        s.port = 0;
        s.backends[1].port = 70_000;
        s.backends[0].address = String::new();
        assert_eq!(
            errors(s),
            [
                "service.vip: \"198.18.100.300\" is not an IPv4 or IPv6 address",
                "service.port: must be between 1 and 65535, not 0",
                "service.backends[0].address: required",
                "service.backends[1].port: must be between 1 and 65535, not 70000",
            ]
        );
    }

    #[test]
    fn duplicate_backends_and_family_mismatch() {
        let mut s = service();
        s.backends.push(backend("::ffff:198.19.0.1", 8080));
        s.backends.push(backend("2001:db8::1", 8080));
        assert_eq!(
            errors(s),
            [
                "service.backends[2]: duplicate backend 198.19.0.1:8080: same address and port as backends[0]",
                "service.backends[3].address: IPv6 backend for IPv4 VIP 198.18.100.10 (no NAT64)",
            ]
        );
    }

    #[test]
    fn enums_must_be_set_and_known() {
        let mut s = service();
        s.protocol = v1::Protocol::Unspecified.into();
        s.mode = 7;
        s.selection = v1::Selection::Unspecified.into();
        assert_eq!(
            errors(s),
            [
                "service.protocol: required: PROTOCOL_TCP or PROTOCOL_UDP",
                "service.mode: unknown mode 7",
                "service.selection: required: SELECTION_MAGLEV, SELECTION_ROUND_ROBIN or SELECTION_SOURCE_HASH",
            ]
        );
        let mut s = service();
        s.backends[0].state = 9;
        assert_eq!(
            errors(s),
            ["service.backends[0].state: unknown backend state 9"]
        );
    }

    #[test]
    fn oversized_lists_are_refused_without_parsing_each_entry() {
        let mut s = service();
        s.backends = (0..=MAX_BACKENDS_PER_SERVICE as u32)
            .map(|i| backend("bad", i))
            .collect();
        assert_eq!(errors(s), ["service.backends: 4097 entries, at most 4096"]);
        let mut s = service();
        s.labels = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert_eq!(errors(s), ["service.labels: 65 entries, at most 64"]);
    }

    #[test]
    fn names_and_labels_follow_kubernetes_rules() {
        for bad in [
            "",
            "Web",
            "-web",
            "web-",
            "we_b",
            "a..b",
            &"a".repeat(64),
            &"a.".repeat(127),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["web", "default.my-gateway.http", "0", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        assert!(check_label("app.kubernetes.io/name", "web").is_ok());
        assert!(check_label("tier", "").is_ok());
        assert!(check_label("Bad Key", "x").is_err());
        assert!(check_label("UPPER.example/x", "x").is_err());
        assert!(check_label("app", "-x").is_err());
        let mut s = service();
        s.name = "Web_1".into();
        assert_eq!(errors(s).len(), 1);
    }

    #[test]
    fn full_nat_needs_a_snat_pool_and_dnat_refuses_one() {
        let mut s = service();
        s.mode = v1::NatMode::FullNat.into();
        assert_eq!(
            errors(s),
            ["service.snat_pool: required for NAT_MODE_FULL_NAT"]
        );
        let mut s = service();
        s.snat_pool = "egress".into();
        assert_eq!(errors(s).len(), 1);
    }

    #[test]
    fn maglev_table_size_is_checked() {
        let mut s = service();
        s.maglev_table_size = Some(1000);
        assert_eq!(
            errors(s),
            ["service.maglev_table_size: table size 1000 is not prime"]
        );
        let mut s = service();
        s.maglev_table_size = Some(13);
        assert!(errors(s)[0].contains("too small for 2 backends"));
    }

    #[test]
    fn health_checks_get_defaults_and_range_checks() {
        let mut s = service();
        s.health_check = Some(v1::HealthCheck {
            r#type: v1::HealthCheckType::Http.into(),
            ..v1::HealthCheck::default()
        });
        let spec = service_from_proto(&s, "service").unwrap();
        let check = spec.health_check.unwrap();
        assert_eq!(check.interval, DEFAULT_HEALTH_INTERVAL);
        assert_eq!(check.timeout, DEFAULT_HEALTH_TIMEOUT);
        assert_eq!(
            check.probe,
            Probe::Http(HttpProbe {
                path: "/".into(),
                host: None,
                expected_status: 200
            })
        );

        s.health_check = Some(v1::HealthCheck {
            r#type: v1::HealthCheckType::Tcp.into(),
            interval: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            timeout: Some(prost_types::Duration {
                seconds: 2,
                nanos: 0,
            }),
            rise: Some(0),
            http_path: "/healthz".into(),
            ..v1::HealthCheck::default()
        });
        assert_eq!(
            errors(s.clone()),
            ["service.health_check.http_path: only used by HTTP and HTTPS checks"]
        );
        s.health_check.as_mut().unwrap().http_path.clear();
        assert_eq!(
            errors(s),
            [
                "service.health_check.timeout: must be between 100ms and the interval (1s), not 2s",
                "service.health_check.rise: must be between 1 and 100, not 0",
            ]
        );
    }

    #[test]
    fn proto_round_trip_is_lossless() {
        let mut s = service();
        s.mode = v1::NatMode::FullNat.into();
        s.snat_pool = "egress".into();
        s.session_persistence = true;
        s.maglev_table_size = Some(1021);
        s.backends[1].weight = Some(0);
        s.backends[1].state = v1::BackendState::Draining.into();
        s.health_check = Some(v1::HealthCheck {
            r#type: v1::HealthCheckType::Udp.into(),
            udp_request: b"ping".to_vec(),
            udp_response: b"pong".to_vec(),
            port: Some(53),
            ..v1::HealthCheck::default()
        });
        let spec = service_from_proto(&s, "service").unwrap();
        let back = convert::service_spec_to_proto(&spec);
        assert_eq!(service_from_proto(&back, "service").unwrap(), spec);
        assert_eq!(
            back.backends[0].weight,
            Some(1),
            "defaults are returned filled in"
        );
        assert_eq!(back.backends[1].weight, Some(0));
    }

    #[test]
    fn reject_state_round_trips() {
        let mut s = service();
        s.backends[1].state = v1::BackendState::Reject.into();
        let spec = service_from_proto(&s, "service").unwrap();
        assert_eq!(spec.backends[1].state, BackendState::Reject);
        assert_eq!(spec.backends[0].state, BackendState::Active);
        let back = convert::service_spec_to_proto(&spec);
        assert_eq!(back.backends[1].state, v1::BackendState::Reject as i32);
        assert_eq!(service_from_proto(&back, "service").unwrap(), spec);
        s.backends[1].state = 4;
        assert_eq!(
            errors(s),
            ["service.backends[1].state: unknown backend state 4"]
        );
    }

    #[test]
    fn batch_paths_name_the_entry() {
        let mut bad = service();
        bad.port = 70_000;
        let request = v1::ApplyServicesRequest {
            requests: vec![
                v1::ApplyServiceRequest {
                    service: Some(service()),
                    resource_version: None,
                },
                v1::ApplyServiceRequest {
                    service: Some(bad),
                    resource_version: None,
                },
            ],
        };
        let violations = apply_services_request(&request).unwrap_err();
        assert_eq!(
            violations.to_string(),
            "requests[1].service.port: must be between 1 and 65535, not 70000"
        );
    }

    #[test]
    fn pools_and_network_requests() {
        let pool = |cidrs: &[&str], excluded: &[&str]| v1::ApplyVipPoolRequest {
            pool: Some(v1::VipPool {
                name: "public".into(),
                cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
                excluded_addresses: excluded.iter().map(|c| c.to_string()).collect(),
                ..v1::VipPool::default()
            }),
            resource_version: None,
        };
        assert!(apply_vip_pool_request(&pool(&["198.18.100.0/24"], &["198.18.100.1"])).is_ok());
        assert_eq!(
            apply_vip_pool_request(&pool(
                &["198.18.100.1/24", "198.18.0.0/16", "198.18.1.0/24"],
                &["198.19.0.1"]
            ))
            .unwrap_err()
            .to_string(),
            "pool.cidrs[0]: 198.18.100.1/24 has host bits set; did you mean 198.18.100.0/24?; \
             pool.cidrs[2]: 198.18.1.0/24 overlaps pool.cidrs[0] (198.18.0.0/16); \
             pool.excluded_addresses[0]: 198.19.0.1 is not in any of the pool's CIDRs"
        );

        let snat = v1::ApplySnatPoolRequest {
            pool: Some(v1::SnatPool {
                name: "egress".into(),
                addresses: vec!["198.18.200.1".into(), "198.18.200.1".into()],
                ..v1::SnatPool::default()
            }),
            resource_version: None,
        };
        assert_eq!(
            apply_snat_pool_request(&snat).unwrap_err().to_string(),
            "pool.addresses[1]: 198.18.200.1 is also pool.addresses[0]"
        );

        let interface = v1::ApplyInterfaceRequest {
            interface: Some(v1::Interface {
                port: "port9".into(),
                addresses: vec!["198.18.0.1/24".into()],
                meta: None,
            }),
            resource_version: None,
        };
        assert_eq!(
            apply_interface_request(&interface, &["port0", "port1"])
                .unwrap_err()
                .to_string(),
            "interface.port: no port named \"port9\" in the daemon's configuration (ports: port0, port1)"
        );

        let route = v1::ApplyRouteRequest {
            route: Some(v1::Route {
                prefix: "2001:db8::/32".into(),
                next_hop: "198.18.0.254".into(),
                port: "port0".into(),
                meta: None,
            }),
            resource_version: None,
        };
        assert_eq!(
            apply_route_request(&route).unwrap_err().to_string(),
            "route.next_hop: IPv4 next hop for IPv6 prefix 2001:db8::/32"
        );

        let neighbour = v1::ApplyNeighbourRequest {
            neighbour: Some(v1::Neighbour {
                address: "198.18.0.2".into(),
                mac: "01:00:5e:00:00:01".into(),
                port: "port0".into(),
                learned: false,
                meta: None,
            }),
            resource_version: None,
        };
        assert_eq!(
            apply_neighbour_request(&neighbour).unwrap_err().to_string(),
            "neighbour.mac: 01:00:5e:00:00:01 is not a unicast MAC address"
        );
    }

    #[test]
    fn ipam_requests() {
        let request = v1::AllocateVipRequest {
            pool: "public".into(),
            owner: "gateway/default/web".into(),
            requested_address: Some("198.18.100.7".into()),
        };
        let parsed = allocate_vip_request(&request).unwrap();
        assert_eq!(parsed.requested, Some("198.18.100.7".parse().unwrap()));
        let bad = v1::AllocateVipRequest {
            owner: "has space".into(),
            ..request
        };
        assert!(allocate_vip_request(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("owner: "));
        let release = v1::ReleaseVipRequest {
            pool: "public".into(),
            target: None,
        };
        assert_eq!(
            release_vip_request(&release).unwrap_err().to_string(),
            "target: required: set address or owner"
        );
    }
}
