//! The service manifest: the YAML/JSON form of a `sluice.v1.Service` that `service apply -f`
//! reads and `service get|list -o yaml|json` writes, so the output of `get` can be edited and
//! applied again.
//!
//! # Schema
//! A file holds one service, a list of services, or several YAML documents (`---`) of either.
//! Field names are the proto field names in lowerCamelCase (the protobuf JSON mapping);
//! enumerations take short lower-case names, and the full proto names (`PROTOCOL_TCP`,
//! `NAT_MODE_FULL_NAT`) are accepted too. Unknown fields are errors.
//!
//! ```yaml
//! name: web                      # required; DNS-1123 subdomain
//! labels: {app: web}             # optional
//! vip: 198.18.100.10             # required; IPv4 or IPv6
//! port: 80                       # required; 1..=65535
//! protocol: tcp                  # tcp | udp                                 (default tcp)
//! mode: fullnat                  # dnat | fullnat                            (default dnat)
//! selection: maglev              # maglev | round-robin | source-hash        (default maglev)
//! sessionPersistence: false      # alias: persistence
//! snatPool: snat-a               # required for fullnat, empty for dnat
//! maglevTableSize: 65537         # optional prime
//! backends:
//!   - address: 198.19.0.1        # required
//!     port: 8080                 # required
//!     weight: 2                  # 0..=1000000, default 1
//!     state: active              # active | draining | reject                (default active)
//! healthCheck:                   # optional; unset means no checks
//!   type: http                   # none | ping | tcp | udp | http | https
//!   interval: 5s                 # durations: 250ms, 5s, 1m30s
//!   timeout: 2s
//!   rise: 2
//!   fall: 3
//!   port: 8081
//!   httpPath: /healthz
//!   httpHost: web.example
//!   httpExpectedStatus: 200
//!   udpRequest: ping             # UDP payloads as text, or udpRequestHex: 70696e67
//!   udpResponse: pong            #                       or udpResponseHex
//! ```
//! `meta` and `status` (and each backend's `status`) are output only: `get` writes them and
//! `apply` ignores them. Ranges and rules across fields are checked by the daemon, whose
//! INVALID_ARGUMENT names the offending field.

use super::duration::{format_duration, from_proto, parse_duration, to_proto};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sluice_proto::v1;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// IP protocol of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProtocolName {
    /// Not set; the daemon rejects it.
    #[serde(rename = "unspecified", alias = "PROTOCOL_UNSPECIFIED")]
    Unspecified,
    #[default]
    #[serde(rename = "tcp", alias = "TCP", alias = "PROTOCOL_TCP")]
    Tcp,
    #[serde(rename = "udp", alias = "UDP", alias = "PROTOCOL_UDP")]
    Udp,
}

/// NAT mode of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModeName {
    /// Not set; the daemon rejects it.
    #[serde(rename = "unspecified", alias = "NAT_MODE_UNSPECIFIED")]
    Unspecified,
    #[default]
    #[serde(rename = "dnat", alias = "DNAT", alias = "NAT_MODE_DNAT")]
    Dnat,
    #[serde(
        rename = "fullnat",
        alias = "full-nat",
        alias = "full_nat",
        alias = "FULLNAT",
        alias = "FULL_NAT",
        alias = "NAT_MODE_FULL_NAT"
    )]
    FullNat,
}

/// Backend selection algorithm of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectionName {
    /// Not set; the daemon rejects it.
    #[serde(rename = "unspecified", alias = "SELECTION_UNSPECIFIED")]
    Unspecified,
    #[default]
    #[serde(rename = "maglev", alias = "MAGLEV", alias = "SELECTION_MAGLEV")]
    Maglev,
    #[serde(
        rename = "round-robin",
        alias = "round_robin",
        alias = "rr",
        alias = "ROUND_ROBIN",
        alias = "SELECTION_ROUND_ROBIN"
    )]
    RoundRobin,
    #[serde(
        rename = "source-hash",
        alias = "source_hash",
        alias = "SOURCE_HASH",
        alias = "SELECTION_SOURCE_HASH"
    )]
    SourceHash,
}

/// Whether a backend takes new connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendStateName {
    #[default]
    #[serde(
        rename = "active",
        alias = "ACTIVE",
        alias = "BACKEND_STATE_ACTIVE",
        alias = "BACKEND_STATE_UNSPECIFIED"
    )]
    Active,
    #[serde(
        rename = "draining",
        alias = "drain",
        alias = "DRAINING",
        alias = "BACKEND_STATE_DRAINING"
    )]
    Draining,
    /// Takes its share of new connections and refuses them (invalid Gateway API backendRefs).
    #[serde(rename = "reject", alias = "REJECT", alias = "BACKEND_STATE_REJECT")]
    Reject,
}

/// Kind of active health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthCheckTypeName {
    /// Not set; the daemon rejects it.
    #[serde(rename = "unspecified", alias = "HEALTH_CHECK_TYPE_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "none", alias = "NONE", alias = "HEALTH_CHECK_TYPE_NONE")]
    None,
    #[serde(rename = "ping", alias = "PING", alias = "HEALTH_CHECK_TYPE_PING")]
    Ping,
    #[serde(rename = "tcp", alias = "TCP", alias = "HEALTH_CHECK_TYPE_TCP")]
    Tcp,
    #[serde(rename = "udp", alias = "UDP", alias = "HEALTH_CHECK_TYPE_UDP")]
    Udp,
    #[serde(rename = "http", alias = "HTTP", alias = "HEALTH_CHECK_TYPE_HTTP")]
    Http,
    #[serde(rename = "https", alias = "HTTPS", alias = "HEALTH_CHECK_TYPE_HTTPS")]
    Https,
}

impl ProtocolName {
    /// From the wire value (unknown values read as unspecified).
    pub fn from_proto(raw: i32) -> ProtocolName {
        match v1::Protocol::try_from(raw) {
            Ok(v1::Protocol::Tcp) => ProtocolName::Tcp,
            Ok(v1::Protocol::Udp) => ProtocolName::Udp,
            _ => ProtocolName::Unspecified,
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> v1::Protocol {
        match self {
            ProtocolName::Unspecified => v1::Protocol::Unspecified,
            ProtocolName::Tcp => v1::Protocol::Tcp,
            ProtocolName::Udp => v1::Protocol::Udp,
        }
    }

    /// The short name, as in manifests and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolName::Unspecified => "unspecified",
            ProtocolName::Tcp => "tcp",
            ProtocolName::Udp => "udp",
        }
    }
}

impl ModeName {
    /// From the wire value (unknown values read as unspecified).
    pub fn from_proto(raw: i32) -> ModeName {
        match v1::NatMode::try_from(raw) {
            Ok(v1::NatMode::Dnat) => ModeName::Dnat,
            Ok(v1::NatMode::FullNat) => ModeName::FullNat,
            _ => ModeName::Unspecified,
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> v1::NatMode {
        match self {
            ModeName::Unspecified => v1::NatMode::Unspecified,
            ModeName::Dnat => v1::NatMode::Dnat,
            ModeName::FullNat => v1::NatMode::FullNat,
        }
    }

    /// The short name, as in manifests and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::Unspecified => "unspecified",
            ModeName::Dnat => "dnat",
            ModeName::FullNat => "fullnat",
        }
    }
}

impl SelectionName {
    /// From the wire value (unknown values read as unspecified).
    pub fn from_proto(raw: i32) -> SelectionName {
        match v1::Selection::try_from(raw) {
            Ok(v1::Selection::Maglev) => SelectionName::Maglev,
            Ok(v1::Selection::RoundRobin) => SelectionName::RoundRobin,
            Ok(v1::Selection::SourceHash) => SelectionName::SourceHash,
            _ => SelectionName::Unspecified,
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> v1::Selection {
        match self {
            SelectionName::Unspecified => v1::Selection::Unspecified,
            SelectionName::Maglev => v1::Selection::Maglev,
            SelectionName::RoundRobin => v1::Selection::RoundRobin,
            SelectionName::SourceHash => v1::Selection::SourceHash,
        }
    }

    /// The short name, as in manifests and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            SelectionName::Unspecified => "unspecified",
            SelectionName::Maglev => "maglev",
            SelectionName::RoundRobin => "round-robin",
            SelectionName::SourceHash => "source-hash",
        }
    }
}

impl BackendStateName {
    /// From the wire value (unset and unknown values read as active, as the daemon does).
    pub fn from_proto(raw: i32) -> BackendStateName {
        match v1::BackendState::try_from(raw) {
            Ok(v1::BackendState::Draining) => BackendStateName::Draining,
            Ok(v1::BackendState::Reject) => BackendStateName::Reject,
            _ => BackendStateName::Active,
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> v1::BackendState {
        match self {
            BackendStateName::Active => v1::BackendState::Active,
            BackendStateName::Draining => v1::BackendState::Draining,
            BackendStateName::Reject => v1::BackendState::Reject,
        }
    }

    /// The short name, as in manifests and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendStateName::Active => "active",
            BackendStateName::Draining => "draining",
            BackendStateName::Reject => "reject",
        }
    }
}

impl HealthCheckTypeName {
    /// From the wire value (unknown values read as unspecified).
    pub fn from_proto(raw: i32) -> HealthCheckTypeName {
        match v1::HealthCheckType::try_from(raw) {
            Ok(v1::HealthCheckType::None) => HealthCheckTypeName::None,
            Ok(v1::HealthCheckType::Ping) => HealthCheckTypeName::Ping,
            Ok(v1::HealthCheckType::Tcp) => HealthCheckTypeName::Tcp,
            Ok(v1::HealthCheckType::Udp) => HealthCheckTypeName::Udp,
            Ok(v1::HealthCheckType::Http) => HealthCheckTypeName::Http,
            Ok(v1::HealthCheckType::Https) => HealthCheckTypeName::Https,
            _ => HealthCheckTypeName::Unspecified,
        }
    }

    /// The wire value.
    pub fn to_proto(self) -> v1::HealthCheckType {
        match self {
            HealthCheckTypeName::Unspecified => v1::HealthCheckType::Unspecified,
            HealthCheckTypeName::None => v1::HealthCheckType::None,
            HealthCheckTypeName::Ping => v1::HealthCheckType::Ping,
            HealthCheckTypeName::Tcp => v1::HealthCheckType::Tcp,
            HealthCheckTypeName::Udp => v1::HealthCheckType::Udp,
            HealthCheckTypeName::Http => v1::HealthCheckType::Http,
            HealthCheckTypeName::Https => v1::HealthCheckType::Https,
        }
    }

    /// The short name, as in manifests and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckTypeName::Unspecified => "unspecified",
            HealthCheckTypeName::None => "none",
            HealthCheckTypeName::Ping => "ping",
            HealthCheckTypeName::Tcp => "tcp",
            HealthCheckTypeName::Udp => "udp",
            HealthCheckTypeName::Http => "http",
            HealthCheckTypeName::Https => "https",
        }
    }
}

/// A duration written as text (`5s`, `250ms`) in manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextDuration(pub Duration);

impl Serialize for TextDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for TextDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TextDuration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(TextDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Output only: `ObjectMeta`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetaView {
    /// The state revision at which the object last changed.
    pub resource_version: u64,
    /// How many times the object changed since creation.
    pub generation: u64,
}

impl MetaView {
    /// From the proto message.
    pub fn from_proto(meta: &v1::ObjectMeta) -> MetaView {
        MetaView {
            resource_version: meta.resource_version,
            generation: meta.generation,
        }
    }
}

/// Output only: `ServiceStatus`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceStatusView {
    /// Backends that take new connections now.
    pub eligible_backends: u32,
    /// Connections in the tables now.
    pub active_connections: u64,
    /// The snapshot generation that contains this version of the service.
    pub snapshot_generation: u64,
}

/// Output only: `BackendStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendStatusView {
    /// `unknown`, `up` or `down`.
    pub health: String,
    /// Why the last check failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub health_message: String,
    /// Connections in the tables now.
    pub active_connections: u64,
    /// Connections ever sent to the backend.
    pub total_connections: u64,
    /// Client -> backend.
    pub packets_to_backend: u64,
    /// Client -> backend.
    pub bytes_to_backend: u64,
    /// Backend -> client.
    pub packets_from_backend: u64,
    /// Backend -> client.
    pub bytes_from_backend: u64,
}

/// A backend of a [`ServiceManifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendManifest {
    /// IPv4 or IPv6 address.
    pub address: String,
    /// Port on the backend.
    pub port: u32,
    /// Relative share of new connections; unset: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Active, draining or reject.
    #[serde(default)]
    pub state: BackendStateName,
    /// Output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BackendStatusView>,
}

/// Health-check settings of a [`ServiceManifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckManifest {
    /// Kind of check.
    #[serde(rename = "type")]
    pub check_type: HealthCheckTypeName,
    /// Time between checks of one backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<TextDuration>,
    /// How long one check may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TextDuration>,
    /// Successes that make a backend UP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Failures that make a backend DOWN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Port to check; unset: each backend's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// HTTP/HTTPS path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http_path: String,
    /// HTTP/HTTPS Host header.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http_host: String,
    /// HTTP/HTTPS status a healthy backend answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_expected_status: Option<u32>,
    /// UDP check payload as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_request: Option<String>,
    /// UDP check payload as hex digits, for binary payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_request_hex: Option<String>,
    /// Expected start of the UDP reply as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_response: Option<String>,
    /// Expected start of the UDP reply as hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_response_hex: Option<String>,
}

/// One service in the manifest schema (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceManifest {
    /// The key.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The virtual IP address.
    pub vip: String,
    /// The port clients connect to.
    pub port: u32,
    /// TCP or UDP.
    #[serde(default)]
    pub protocol: ProtocolName,
    /// DNAT or full-NAT.
    #[serde(default)]
    pub mode: ModeName,
    /// Backend selection.
    #[serde(default)]
    pub selection: SelectionName,
    /// Keep each client on one backend.
    #[serde(default, alias = "persistence", skip_serializing_if = "is_false")]
    pub session_persistence: bool,
    /// SNAT pool name (full-NAT).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub snat_pool: String,
    /// Maglev lookup table size; unset: automatic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_table_size: Option<u32>,
    /// The backends.
    #[serde(default)]
    pub backends: Vec<BackendManifest>,
    /// Active health checking; unset: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckManifest>,
    /// Output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<MetaView>,
    /// Output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatusView>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Short lower-case name of a proto enum value from its proto name: `BACKEND_HEALTH_UP` with
/// prefix `BACKEND_HEALTH_` is `up`, `CONNECTION_STATE_SYN_SENT` is `syn-sent`.
pub fn short_enum_name(proto_name: Option<&str>, prefix: &str, raw: i32) -> String {
    match proto_name {
        Some(name) => name
            .strip_prefix(prefix)
            .unwrap_or(name)
            .to_ascii_lowercase()
            .replace('_', "-"),
        None => format!("unknown({raw})"),
    }
}

/// The short name of a backend health value.
pub fn health_name(raw: i32) -> String {
    short_enum_name(
        v1::BackendHealth::try_from(raw)
            .ok()
            .map(|h| h.as_str_name()),
        "BACKEND_HEALTH_",
        raw,
    )
}

impl BackendManifest {
    /// From the proto message, with its status.
    pub fn from_proto(backend: &v1::Backend) -> BackendManifest {
        BackendManifest {
            address: backend.address.clone(),
            port: backend.port,
            weight: backend.weight,
            state: BackendStateName::from_proto(backend.state),
            status: backend.status.as_ref().map(|status| BackendStatusView {
                health: health_name(status.health),
                health_message: status.health_message.clone(),
                active_connections: status.active_connections,
                total_connections: status.total_connections,
                packets_to_backend: status.packets_to_backend,
                bytes_to_backend: status.bytes_to_backend,
                packets_from_backend: status.packets_from_backend,
                bytes_from_backend: status.bytes_from_backend,
            }),
        }
    }

    /// The proto message (status dropped: output only).
    pub fn to_proto(&self) -> v1::Backend {
        v1::Backend {
            address: self.address.clone(),
            port: self.port,
            weight: self.weight,
            state: self.state.to_proto() as i32,
            status: None,
        }
    }
}

/// Bytes as text when they are printable UTF-8, else as hex: (text, hex).
fn payload_to_fields(bytes: &[u8]) -> (Option<String>, Option<String>) {
    if bytes.is_empty() {
        return (None, None);
    }
    match std::str::from_utf8(bytes) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
        {
            (Some(text.to_owned()), None)
        }
        _ => (
            None,
            Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        ),
    }
}

/// Bytes from a text or a hex field (at most one may be given).
fn payload_from_fields(
    text: Option<&str>,
    hex: Option<&str>,
    field: &str,
) -> Result<Vec<u8>, String> {
    match (text, hex) {
        (Some(_), Some(_)) => Err(format!(
            "healthCheck: set only one of {field} and {field}Hex"
        )),
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(hex)) => decode_hex(hex).map_err(|e| format!("healthCheck.{field}Hex: {e}")),
        (None, None) => Ok(Vec::new()),
    }
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = hex.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text: String = pair.iter().collect();
            u8::from_str_radix(&text, 16).map_err(|_| format!("`{text}` is not a hex byte"))
        })
        .collect()
}

impl HealthCheckManifest {
    /// From the proto message.
    pub fn from_proto(check: &v1::HealthCheck) -> HealthCheckManifest {
        let (udp_request, udp_request_hex) = payload_to_fields(&check.udp_request);
        let (udp_response, udp_response_hex) = payload_to_fields(&check.udp_response);
        HealthCheckManifest {
            check_type: HealthCheckTypeName::from_proto(check.r#type),
            interval: check.interval.as_ref().map(|d| TextDuration(from_proto(d))),
            timeout: check.timeout.as_ref().map(|d| TextDuration(from_proto(d))),
            rise: check.rise,
            fall: check.fall,
            port: check.port,
            http_path: check.http_path.clone(),
            http_host: check.http_host.clone(),
            http_expected_status: check.http_expected_status,
            udp_request,
            udp_request_hex,
            udp_response,
            udp_response_hex,
        }
    }

    /// The proto message; fails when a UDP payload is given twice or its hex is malformed.
    pub fn to_proto(&self) -> Result<v1::HealthCheck, String> {
        Ok(v1::HealthCheck {
            r#type: self.check_type.to_proto() as i32,
            interval: self.interval.map(|d| to_proto(d.0)),
            timeout: self.timeout.map(|d| to_proto(d.0)),
            rise: self.rise,
            fall: self.fall,
            port: self.port,
            http_path: self.http_path.clone(),
            http_host: self.http_host.clone(),
            http_expected_status: self.http_expected_status,
            udp_request: payload_from_fields(
                self.udp_request.as_deref(),
                self.udp_request_hex.as_deref(),
                "udpRequest",
            )?,
            udp_response: payload_from_fields(
                self.udp_response.as_deref(),
                self.udp_response_hex.as_deref(),
                "udpResponse",
            )?,
        })
    }

    /// One-line summary for tables: `http /healthz every 5s, timeout 2s, rise 2, fall 3`.
    pub fn summary(&self) -> String {
        let mut text = self.check_type.as_str().to_owned();
        if let Some(port) = self.port {
            text.push_str(&format!(" port {port}"));
        }
        if !self.http_path.is_empty() {
            text.push_str(&format!(" {}", self.http_path));
        }
        if let Some(status) = self.http_expected_status {
            text.push_str(&format!(" expect {status}"));
        }
        if let Some(interval) = self.interval {
            text.push_str(&format!(" every {}", format_duration(interval.0)));
        }
        if let Some(timeout) = self.timeout {
            text.push_str(&format!(", timeout {}", format_duration(timeout.0)));
        }
        if let Some(rise) = self.rise {
            text.push_str(&format!(", rise {rise}"));
        }
        if let Some(fall) = self.fall {
            text.push_str(&format!(", fall {fall}"));
        }
        text
    }
}

impl ServiceManifest {
    /// From the proto message, with meta and status when present.
    pub fn from_proto(service: &v1::Service) -> ServiceManifest {
        ServiceManifest {
            name: service.name.clone(),
            labels: service
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            vip: service.vip.clone(),
            port: service.port,
            protocol: ProtocolName::from_proto(service.protocol),
            mode: ModeName::from_proto(service.mode),
            selection: SelectionName::from_proto(service.selection),
            session_persistence: service.session_persistence,
            snat_pool: service.snat_pool.clone(),
            maglev_table_size: service.maglev_table_size,
            backends: service
                .backends
                .iter()
                .map(BackendManifest::from_proto)
                .collect(),
            health_check: service
                .health_check
                .as_ref()
                .map(HealthCheckManifest::from_proto),
            meta: service.meta.as_ref().map(MetaView::from_proto),
            status: service.status.as_ref().map(|status| ServiceStatusView {
                eligible_backends: status.eligible_backends,
                active_connections: status.active_connections,
                snapshot_generation: status.snapshot_generation,
            }),
        }
    }

    /// The proto message to apply (output-only fields dropped).
    pub fn to_proto(&self) -> Result<v1::Service, String> {
        let health_check = match &self.health_check {
            Some(check) => Some(
                check
                    .to_proto()
                    .map_err(|e| format!("service {}: {e}", self.name))?,
            ),
            None => None,
        };
        Ok(v1::Service {
            name: self.name.clone(),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            vip: self.vip.clone(),
            port: self.port,
            protocol: self.protocol.to_proto() as i32,
            mode: self.mode.to_proto() as i32,
            selection: self.selection.to_proto() as i32,
            session_persistence: self.session_persistence,
            snat_pool: self.snat_pool.clone(),
            maglev_table_size: self.maglev_table_size,
            backends: self
                .backends
                .iter()
                .map(BackendManifest::to_proto)
                .collect(),
            health_check,
            meta: None,
            status: None,
        })
    }
}

/// A YAML document (or JSON file): one service or a list of them.
struct ServiceDocument(Vec<ServiceManifest>);

impl<'de> Deserialize<'de> for ServiceDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ServiceDocument, D::Error> {
        struct DocumentVisitor;

        impl<'de> serde::de::Visitor<'de> for DocumentVisitor {
            type Value = ServiceDocument;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a service (a mapping with name, vip, port, ...) or a list of them")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ServiceDocument, A::Error> {
                let service = ServiceManifest::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(ServiceDocument(vec![service]))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ServiceDocument, A::Error> {
                let mut services = Vec::new();
                while let Some(service) = seq.next_element::<ServiceManifest>()? {
                    services.push(service);
                }
                Ok(ServiceDocument(services))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<ServiceDocument, E> {
                Ok(ServiceDocument(Vec::new()))
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<ServiceDocument, E> {
                Ok(ServiceDocument(Vec::new()))
            }
        }

        deserializer.deserialize_any(DocumentVisitor)
    }
}

/// Reads the services of a manifest file. `source` names the file in errors. JSON files
/// (`.json`, or text starting with `{` or `[`) are read as JSON, anything else as YAML
/// (possibly several `---` documents).
pub fn parse_services(text: &str, source: &str) -> Result<Vec<ServiceManifest>, String> {
    let trimmed = text.trim_start();
    let services =
        if source.ends_with(".json") || trimmed.starts_with('{') || trimmed.starts_with('[') {
            serde_json::from_str::<ServiceDocument>(text)
                .map_err(|e| format!("{source}: {e}"))?
                .0
        } else {
            let mut services = Vec::new();
            for document in serde_yaml_ng::Deserializer::from_str(text) {
                let ServiceDocument(found) =
                    ServiceDocument::deserialize(document).map_err(|e| format!("{source}: {e}"))?;
                services.extend(found);
            }
            services
        };
    if services.is_empty() {
        return Err(format!("{source}: no service in the file"));
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name: web
labels:
  app: web
  tier: front
vip: 198.18.100.10
port: 80
protocol: tcp
mode: fullnat
selection: round-robin
persistence: true
snatPool: snat-a
maglevTableSize: 65537
backends:
  - address: 198.19.0.1
    port: 8080
    weight: 2
  - address: 198.19.0.2
    port: 8080
    state: draining
healthCheck:
  type: http
  interval: 5s
  timeout: 500ms
  rise: 2
  fall: 3
  httpPath: /healthz
  httpExpectedStatus: 204
"#;

    fn parse(text: &str) -> Result<Vec<ServiceManifest>, String> {
        parse_services(text, "test.yaml")
    }

    #[test]
    fn reject_state_round_trips() {
        let text = FULL.replace("state: draining", "state: reject");
        let proto = parse(&text).unwrap()[0].to_proto().unwrap();
        assert_eq!(proto.backends[1].state, v1::BackendState::Reject as i32);
        let name = BackendStateName::from_proto(proto.backends[1].state);
        assert_eq!(name, BackendStateName::Reject);
        assert_eq!(name.as_str(), "reject");
        assert_eq!(name.to_proto(), v1::BackendState::Reject);
    }

    #[test]
    fn full_manifest_maps_to_the_proto() {
        let services = parse(FULL).unwrap();
        assert_eq!(services.len(), 1);
        let proto = services[0].to_proto().unwrap();
        assert_eq!(proto.name, "web");
        assert_eq!(proto.labels.get("tier").map(String::as_str), Some("front"));
        assert_eq!((proto.vip.as_str(), proto.port), ("198.18.100.10", 80));
        assert_eq!(proto.protocol, v1::Protocol::Tcp as i32);
        assert_eq!(proto.mode, v1::NatMode::FullNat as i32);
        assert_eq!(proto.selection, v1::Selection::RoundRobin as i32);
        assert!(proto.session_persistence);
        assert_eq!(proto.snat_pool, "snat-a");
        assert_eq!(proto.maglev_table_size, Some(65537));
        assert_eq!(proto.backends.len(), 2);
        assert_eq!(proto.backends[0].weight, Some(2));
        assert_eq!(proto.backends[0].state, v1::BackendState::Active as i32);
        assert_eq!(proto.backends[1].weight, None);
        assert_eq!(proto.backends[1].state, v1::BackendState::Draining as i32);
        let check = proto.health_check.unwrap();
        assert_eq!(check.r#type, v1::HealthCheckType::Http as i32);
        assert_eq!(check.interval.map(|d| d.seconds), Some(5));
        assert_eq!(check.timeout.map(|d| d.nanos), Some(500_000_000));
        assert_eq!(check.http_path, "/healthz");
        assert_eq!(check.http_expected_status, Some(204));
        assert_eq!(proto.meta, None);
    }

    #[test]
    fn defaults_are_tcp_dnat_maglev() {
        let services = parse("name: dns\nvip: 198.18.100.11\nport: 53\n").unwrap();
        let proto = services[0].to_proto().unwrap();
        assert_eq!(proto.protocol, v1::Protocol::Tcp as i32);
        assert_eq!(proto.mode, v1::NatMode::Dnat as i32);
        assert_eq!(proto.selection, v1::Selection::Maglev as i32);
        assert!(proto.backends.is_empty());
        assert!(proto.health_check.is_none());
    }

    #[test]
    fn proto_enum_names_are_accepted() {
        let text = "name: a\nvip: 198.18.0.1\nport: 1\nprotocol: PROTOCOL_UDP\n\
                    mode: NAT_MODE_FULL_NAT\nselection: SELECTION_SOURCE_HASH\n";
        let proto = parse(text).unwrap()[0].to_proto().unwrap();
        assert_eq!(proto.protocol, v1::Protocol::Udp as i32);
        assert_eq!(proto.mode, v1::NatMode::FullNat as i32);
        assert_eq!(proto.selection, v1::Selection::SourceHash as i32);
    }

    #[test]
    fn lists_and_multiple_documents_are_read_in_order() {
        let list =
            "- {name: a, vip: 198.18.0.1, port: 80}\n- {name: b, vip: 198.18.0.2, port: 80}\n";
        let names: Vec<String> = parse(list).unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "b"]);
        let documents = "name: a\nvip: 198.18.0.1\nport: 80\n---\n- name: b\n  vip: 198.18.0.2\n  port: 80\n---\n";
        let names: Vec<String> = parse(documents)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn json_files_use_the_same_schema() {
        let json = r#"[{"name": "a", "vip": "198.18.0.1", "port": 80, "mode": "fullnat",
                        "snatPool": "p", "backends": [{"address": "198.19.0.1", "port": 80}]}]"#;
        let services = parse_services(json, "services.json").unwrap();
        assert_eq!(services[0].snat_pool, "p");
        assert_eq!(services[0].backends[0].port, 80);
    }

    #[test]
    fn bad_manifests_name_the_problem_and_the_place() {
        let cases = [
            (
                "name: a\nvip: 198.18.0.1\nport: 80\nbackend: []\n",
                "unknown field `backend`",
            ),
            ("name: a\nvip: 198.18.0.1\n", "missing field `port`"),
            (
                "name: a\nvip: 198.18.0.1\nport: 80\nmode: snat\n",
                "unknown variant `snat`, expected one of",
            ),
            (
                "name: a\nvip: 198.18.0.1\nport: http\n",
                "port: invalid type: string \"http\", expected u32",
            ),
            (
                "name: a\nvip: 198.18.0.1\nport: 80\nbackends:\n  - address: 198.19.0.1\n    port: 80\n    weight: heavy\n",
                "backends[0].weight: invalid type: string \"heavy\"",
            ),
            (
                "name: a\nvip: 198.18.0.1\nport: 80\nhealthCheck: {type: tcp, interval: 5}\n",
                "`5` has a number without a unit",
            ),
            (
                "name: a\nvip: 198.18.0.1\nport: 80\nhealthCheck: {type: tcp, interval: 5d}\n",
                "unknown unit `d`",
            ),
            ("just a string\n", "expected a service"),
            ("", "no service in the file"),
            ("name: [unclosed\n", "test.yaml:"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.starts_with("test.yaml: "), "{error}");
        }
    }

    #[test]
    fn yaml_errors_point_at_the_line() {
        let error = parse("name: a\nvip: 198.18.0.1\nport: 80\nmode: snat\n").unwrap_err();
        assert!(error.contains("line 4"), "{error}");
    }

    #[test]
    fn udp_payloads_are_text_or_hex_but_not_both() {
        let text = "name: a\nvip: 198.18.0.1\nport: 53\nhealthCheck:\n  type: udp\n  udpRequest: ping\n  udpResponseHex: \"00 ff\"\n";
        let check = parse(text).unwrap()[0]
            .to_proto()
            .unwrap()
            .health_check
            .unwrap();
        assert_eq!(check.udp_request, b"ping");
        assert_eq!(check.udp_response, [0x00, 0xff]);
        let both = "name: a\nvip: 198.18.0.1\nport: 53\nhealthCheck:\n  type: udp\n  udpRequest: a\n  udpRequestHex: \"61\"\n";
        let error = parse(both).unwrap()[0].to_proto().unwrap_err();
        assert!(
            error.contains("set only one of udpRequest and udpRequestHex"),
            "{error}"
        );
        let odd = "name: a\nvip: 198.18.0.1\nport: 53\nhealthCheck:\n  type: udp\n  udpRequestHex: \"abc\"\n";
        let error = parse(odd).unwrap()[0].to_proto().unwrap_err();
        assert!(error.contains("odd number of hex digits"), "{error}");
    }

    #[test]
    fn output_of_a_stored_service_applies_again_unchanged() {
        let mut stored = parse(FULL).unwrap()[0].to_proto().unwrap();
        stored.health_check.as_mut().unwrap().udp_response = vec![0x00, 0xff];
        stored.meta = Some(v1::ObjectMeta {
            resource_version: 7,
            generation: 2,
        });
        stored.status = Some(v1::ServiceStatus {
            eligible_backends: 1,
            active_connections: 3,
            snapshot_generation: 9,
        });
        stored.backends[0].status = Some(v1::BackendStatus {
            health: v1::BackendHealth::Up as i32,
            active_connections: 3,
            ..v1::BackendStatus::default()
        });
        let yaml = serde_yaml_ng::to_string(&ServiceManifest::from_proto(&stored)).unwrap();
        assert!(yaml.contains("mode: fullnat"), "{yaml}");
        assert!(yaml.contains("health: up"), "{yaml}");
        assert!(yaml.contains("udpResponseHex: 00ff"), "{yaml}");
        assert!(yaml.contains("resourceVersion: 7"), "{yaml}");
        let reapplied = parse(&yaml).unwrap()[0].to_proto().unwrap();
        let mut expected = stored.clone();
        expected.meta = None;
        expected.status = None;
        expected.backends[0].status = None;
        assert_eq!(reapplied, expected);
    }

    #[test]
    fn short_enum_names_strip_the_prefix() {
        assert_eq!(health_name(v1::BackendHealth::Down as i32), "down");
        assert_eq!(health_name(42), "unknown(42)");
        assert_eq!(
            short_enum_name(Some("CONNECTION_STATE_SYN_SENT"), "CONNECTION_STATE_", 1),
            "syn-sent"
        );
    }
}
