//! `sluicectl l7 get|apply`: the route table of `sluice-proxy` (`sluice.v1.L7`).
//!
//! # Manifest schema (`l7 apply -f table.yaml`, `l7 get -o yaml|json`)
//! One whole table; field names are the proto's in lowerCamelCase, enumerations take the
//! Gateway API's spelling (`PathPrefix`, `RegularExpression`, `ReplacePrefixMatch`, ...).
//! Filters take the Gateway API form (`type` is optional and checked against the one field
//! set). Unknown fields are errors.
//!
//! ```yaml
//! listeners:
//!   - name: kube-system/test-gateway/http-listener   # required, unique
//!     address: 198.19.0.1                            # optional: all addresses
//!     port: 80
//!     protocol: HTTP                                 # HTTP | HTTPS
//!     hostname: "*.example.com"                      # optional
//!     certificateNames: [kube-system/loxilb-ssl]     # HTTPS: first is the default
//! certificates:
//!   - name: kube-system/loxilb-ssl
//!     certFile: server.crt      # PEM files, relative to the manifest; or certPem:/keyPem:
//!     keyFile: server.key
//! routes:
//!   - name: kube-system/test-http-route
//!     listenerNames: [kube-system/test-gateway/http-listener]
//!     hostnames: [test.loxilb.gateway.http]
//!     creationTimestamp: 1700000000                   # precedence tie-breakers (optional)
//!     namespacedName: kube-system/test-http-route
//!     rules:
//!       - matches:
//!           - path: {type: PathPrefix, value: /}
//!             headers: [{name: version, value: two}]  # type: Exact | RegularExpression
//!             queryParams: [{name: a, value: b}]
//!             method: GET
//!         filters:
//!           - type: RequestHeaderModifier
//!             requestHeaderModifier: {set: [{name: x, value: y}], add: [], remove: [z]}
//!           - requestRedirect: {scheme: https, hostname: h, port: 443, statusCode: 301,
//!                               path: {type: ReplaceFullPath, value: /x}}
//!           - urlRewrite: {hostname: h, path: {type: ReplacePrefixMatch, value: /}}
//!         backends:
//!           - name: default/http-service:80
//!             endpoints: ["198.19.0.1:8080", "198.19.0.2:8080"]
//!             weight: 1
//!             invalid: false
//!             filters: []                             # header modifiers only
//!         timeouts: {request: 10s, backendRequest: 2s}
//! ```
//! `get` never prints private keys (`keyPem` is omitted), so its output names the
//! certificates but must get `keyFile`s added before it can be applied again.

use super::args::OutputFormat;
use super::connect::AuthChannel;
use super::duration::{format_duration, from_proto, parse_duration, to_proto};
use super::error::CliError;
use super::render;
use super::table::{Column, Table};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use sluice_proto::v1;
use sluice_proto::v1::l7_client::L7Client;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum L7Command {
    /// Show the route table sluice-proxy serves (point --server at the proxy's API).
    Get,
    /// Replace the whole route table from a manifest.
    Apply(L7ApplyArgs),
}

#[derive(Debug, Args)]
pub struct L7ApplyArgs {
    /// The table manifest (YAML or JSON; "-" for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Apply only if the table in force has this version (optimistic concurrency).
    #[arg(long)]
    pub expected_version: Option<u64>,
}

const APPLY: &str = "sluice.v1.L7/ApplyRouteTable";
const GET: &str = "sluice.v1.L7/GetRouteTable";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableManifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default)]
    pub listeners: Vec<ListenerManifest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateManifest>,
    #[serde(default)]
    pub routes: Vec<RouteManifest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerManifest {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    pub port: u32,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_names: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateManifest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteManifest {
    pub name: String,
    pub listener_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub creation_timestamp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespaced_name: String,
    #[serde(default)]
    pub rules: Vec<RuleManifest>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleManifest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchManifest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterManifest>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsManifest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutsManifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchManifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<TypedValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NamedMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<NamedMatch>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypedValue {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedMatch {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderModifierManifest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectManifest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<TypedValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewriteManifest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<TypedValue>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterManifest {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifierManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifierManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RedirectManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<RewriteManifest>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendManifest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invalid: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<FilterManifest>,
}

fn enum_value(field: &str, text: &str, names: &[(&str, i32)]) -> Result<i32, String> {
    if text.is_empty() {
        return Ok(0);
    }
    names
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(text))
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let allowed: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            format!("{field}: {text:?} is not one of {}", allowed.join(", "))
        })
}

const PATH_TYPES: &[(&str, i32)] = &[
    ("Exact", v1::PathMatchType::Exact as i32),
    ("PathPrefix", v1::PathMatchType::PathPrefix as i32),
    (
        "RegularExpression",
        v1::PathMatchType::RegularExpression as i32,
    ),
];
const STRING_TYPES: &[(&str, i32)] = &[
    ("Exact", v1::StringMatchType::Exact as i32),
    (
        "RegularExpression",
        v1::StringMatchType::RegularExpression as i32,
    ),
];
const MODIFIER_TYPES: &[(&str, i32)] = &[
    (
        "ReplaceFullPath",
        v1::PathModifierType::ReplaceFullPath as i32,
    ),
    (
        "ReplacePrefixMatch",
        v1::PathModifierType::ReplacePrefixMatch as i32,
    ),
];
const PROTOCOLS: &[(&str, i32)] = &[
    ("HTTP", v1::ListenerProtocol::Http as i32),
    ("HTTPS", v1::ListenerProtocol::Https as i32),
];

fn enum_name(value: i32, names: &[(&str, i32)]) -> String {
    names
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(n, _)| n.to_string())
        .unwrap_or_default()
}

fn modifier_to_proto(m: &HeaderModifierManifest) -> v1::HeaderModifier {
    let hv = |l: &[NameValue]| {
        l.iter()
            .map(|h| v1::HeaderValue {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect()
    };
    v1::HeaderModifier {
        set: hv(&m.set),
        add: hv(&m.add),
        remove: m.remove.clone(),
    }
}

fn modifier_from_proto(m: &v1::HeaderModifier) -> HeaderModifierManifest {
    let nv = |l: &[v1::HeaderValue]| {
        l.iter()
            .map(|h| NameValue {
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect()
    };
    HeaderModifierManifest {
        set: nv(&m.set),
        add: nv(&m.add),
        remove: m.remove.clone(),
    }
}

fn path_modifier(field: &str, p: &Option<TypedValue>) -> Result<Option<v1::PathModifier>, String> {
    p.as_ref()
        .map(|p| {
            Ok(v1::PathModifier {
                r#type: enum_value(&format!("{field}.type"), &p.kind, MODIFIER_TYPES)?,
                value: p.value.clone(),
            })
        })
        .transpose()
}

impl FilterManifest {
    fn to_proto(&self, field: &str) -> Result<v1::HttpRouteFilter, String> {
        use v1::http_route_filter::Filter as F;
        let mut set: Vec<(&str, F)> = Vec::new();
        if let Some(m) = &self.request_header_modifier {
            set.push((
                "RequestHeaderModifier",
                F::RequestHeaderModifier(modifier_to_proto(m)),
            ));
        }
        if let Some(m) = &self.response_header_modifier {
            set.push((
                "ResponseHeaderModifier",
                F::ResponseHeaderModifier(modifier_to_proto(m)),
            ));
        }
        if let Some(r) = &self.request_redirect {
            set.push((
                "RequestRedirect",
                F::RequestRedirect(v1::RequestRedirect {
                    scheme: r.scheme.clone(),
                    hostname: r.hostname.clone(),
                    path: path_modifier(&format!("{field}.requestRedirect.path"), &r.path)?,
                    port: r.port,
                    status_code: r.status_code,
                }),
            ));
        }
        if let Some(r) = &self.url_rewrite {
            set.push((
                "URLRewrite",
                F::UrlRewrite(v1::UrlRewrite {
                    hostname: r.hostname.clone(),
                    path: path_modifier(&format!("{field}.urlRewrite.path"), &r.path)?,
                }),
            ));
        }
        if set.len() != 1 {
            return Err(format!(
                "{field}: exactly one of requestHeaderModifier, responseHeaderModifier, requestRedirect, urlRewrite is required"
            ));
        }
        let (kind, filter) = set.pop().expect("one filter");
        if !self.kind.is_empty() && !self.kind.eq_ignore_ascii_case(kind) {
            return Err(format!(
                "{field}.type: {:?} does not match the {kind} field set",
                self.kind
            ));
        }
        Ok(v1::HttpRouteFilter {
            filter: Some(filter),
        })
    }

    fn from_proto(f: &v1::HttpRouteFilter) -> FilterManifest {
        use v1::http_route_filter::Filter as F;
        let typed = |p: &Option<v1::PathModifier>| {
            p.as_ref().map(|p| TypedValue {
                kind: enum_name(p.r#type, MODIFIER_TYPES),
                value: p.value.clone(),
            })
        };
        let mut out = FilterManifest::default();
        match &f.filter {
            Some(F::RequestHeaderModifier(m)) => {
                out.kind = "RequestHeaderModifier".into();
                out.request_header_modifier = Some(modifier_from_proto(m));
            }
            Some(F::ResponseHeaderModifier(m)) => {
                out.kind = "ResponseHeaderModifier".into();
                out.response_header_modifier = Some(modifier_from_proto(m));
            }
            Some(F::RequestRedirect(r)) => {
                out.kind = "RequestRedirect".into();
                out.request_redirect = Some(RedirectManifest {
                    scheme: r.scheme.clone(),
                    hostname: r.hostname.clone(),
                    path: typed(&r.path),
                    port: r.port,
                    status_code: r.status_code,
                });
            }
            Some(F::UrlRewrite(r)) => {
                out.kind = "URLRewrite".into();
                out.url_rewrite = Some(RewriteManifest {
                    hostname: r.hostname.clone(),
                    path: typed(&r.path),
                });
            }
            None => {}
        }
        out
    }
}

fn endpoint(field: &str, text: &str) -> Result<v1::Endpoint, String> {
    let addr: std::net::SocketAddr = text
        .parse()
        .map_err(|_| format!("{field}: {text:?} is not ADDRESS:PORT (IPv6 as [ADDRESS]:PORT)"))?;
    Ok(v1::Endpoint {
        address: addr.ip().to_string(),
        port: addr.port().into(),
    })
}

fn read_pem(
    base: &Path,
    field: &str,
    file: &Option<PathBuf>,
    inline: &Option<String>,
) -> Result<Vec<u8>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!("{field}: give a file or inline PEM, not both")),
        (Some(path), None) => {
            let path = base.join(path);
            std::fs::read(&path)
                .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))
        }
        (None, Some(pem)) => Ok(pem.clone().into_bytes()),
        (None, None) => Err(format!("{field}: required")),
    }
}

impl TableManifest {
    /// The proto table; certificate files are read relative to `base`.
    pub fn to_proto(&self, base: &Path) -> Result<v1::RouteTable, String> {
        let mut table = v1::RouteTable::default();
        for (i, l) in self.listeners.iter().enumerate() {
            table.listeners.push(v1::Listener {
                name: l.name.clone(),
                address: l.address.clone(),
                port: l.port,
                protocol: enum_value(&format!("listeners[{i}].protocol"), &l.protocol, PROTOCOLS)?,
                hostname: l.hostname.clone(),
                certificate_names: l.certificate_names.clone(),
            });
        }
        for (i, c) in self.certificates.iter().enumerate() {
            let f = format!("certificates[{i}]");
            table.certificates.push(v1::Certificate {
                name: c.name.clone(),
                cert_pem: read_pem(base, &format!("{f}.certFile"), &c.cert_file, &c.cert_pem)?,
                key_pem: read_pem(base, &format!("{f}.keyFile"), &c.key_file, &c.key_pem)?,
            });
        }
        for (i, r) in self.routes.iter().enumerate() {
            let rf = format!("routes[{i}]");
            let mut route = v1::HttpRoute {
                name: r.name.clone(),
                listener_names: r.listener_names.clone(),
                hostnames: r.hostnames.clone(),
                rules: vec![],
                creation_timestamp: r.creation_timestamp,
                namespaced_name: r.namespaced_name.clone(),
            };
            for (j, rule) in r.rules.iter().enumerate() {
                let f = format!("{rf}.rules[{j}]");
                let mut out = v1::HttpRouteRule {
                    name: rule.name.clone(),
                    ..Default::default()
                };
                for (k, m) in rule.matches.iter().enumerate() {
                    let mf = format!("{f}.matches[{k}]");
                    let named = |list: &[NamedMatch],
                                 what: &str|
                     -> Result<Vec<(i32, String, String)>, String> {
                        list.iter()
                            .enumerate()
                            .map(|(n, h)| {
                                Ok((
                                    enum_value(
                                        &format!("{mf}.{what}[{n}].type"),
                                        &h.kind,
                                        STRING_TYPES,
                                    )?,
                                    h.name.clone(),
                                    h.value.clone(),
                                ))
                            })
                            .collect()
                    };
                    out.matches.push(v1::HttpRouteMatch {
                        path: m
                            .path
                            .as_ref()
                            .map(|p| {
                                Ok::<_, String>(v1::PathMatch {
                                    r#type: enum_value(
                                        &format!("{mf}.path.type"),
                                        &p.kind,
                                        PATH_TYPES,
                                    )?,
                                    value: p.value.clone(),
                                })
                            })
                            .transpose()?,
                        headers: named(&m.headers, "headers")?
                            .into_iter()
                            .map(|(t, name, value)| v1::HeaderMatch {
                                r#type: t,
                                name,
                                value,
                            })
                            .collect(),
                        query_params: named(&m.query_params, "queryParams")?
                            .into_iter()
                            .map(|(t, name, value)| v1::QueryParamMatch {
                                r#type: t,
                                name,
                                value,
                            })
                            .collect(),
                        method: m.method.clone(),
                    });
                }
                for (k, filter) in rule.filters.iter().enumerate() {
                    out.filters
                        .push(filter.to_proto(&format!("{f}.filters[{k}]"))?);
                }
                for (k, b) in rule.backends.iter().enumerate() {
                    let bf = format!("{f}.backends[{k}]");
                    out.backends.push(v1::HttpBackend {
                        name: b.name.clone(),
                        endpoints: b
                            .endpoints
                            .iter()
                            .enumerate()
                            .map(|(e, text)| endpoint(&format!("{bf}.endpoints[{e}]"), text))
                            .collect::<Result<_, _>>()?,
                        weight: b.weight,
                        invalid: b.invalid,
                        filters: b
                            .filters
                            .iter()
                            .enumerate()
                            .map(|(n, x)| x.to_proto(&format!("{bf}.filters[{n}]")))
                            .collect::<Result<_, _>>()?,
                    });
                }
                if let Some(t) = &rule.timeouts {
                    let d = |field: &str, v: &Option<String>| {
                        v.as_deref()
                            .map(|s| {
                                parse_duration(s)
                                    .map(to_proto)
                                    .map_err(|e| format!("{f}.timeouts.{field}: {e}"))
                            })
                            .transpose()
                    };
                    out.request_timeout = d("request", &t.request)?;
                    out.backend_request_timeout = d("backendRequest", &t.backend_request)?;
                }
                route.rules.push(out);
            }
            table.routes.push(route);
        }
        Ok(table)
    }

    /// The manifest of a table (private keys left out).
    pub fn from_proto(table: &v1::RouteTable, version: u64) -> TableManifest {
        let typed = |kind: String, value: &str| TypedValue {
            kind,
            value: value.to_string(),
        };
        TableManifest {
            version: Some(version),
            listeners: table
                .listeners
                .iter()
                .map(|l| ListenerManifest {
                    name: l.name.clone(),
                    address: l.address.clone(),
                    port: l.port,
                    protocol: enum_name(l.protocol, PROTOCOLS),
                    hostname: l.hostname.clone(),
                    certificate_names: l.certificate_names.clone(),
                })
                .collect(),
            certificates: table
                .certificates
                .iter()
                .map(|c| CertificateManifest {
                    name: c.name.clone(),
                    cert_pem: Some(String::from_utf8_lossy(&c.cert_pem).into_owned()),
                    ..Default::default()
                })
                .collect(),
            routes: table
                .routes
                .iter()
                .map(|r| RouteManifest {
                    name: r.name.clone(),
                    listener_names: r.listener_names.clone(),
                    hostnames: r.hostnames.clone(),
                    creation_timestamp: r.creation_timestamp,
                    namespaced_name: r.namespaced_name.clone(),
                    rules: r
                        .rules
                        .iter()
                        .map(|rule| RuleManifest {
                            name: rule.name.clone(),
                            matches: rule
                                .matches
                                .iter()
                                .map(|m| MatchManifest {
                                    path: m
                                        .path
                                        .as_ref()
                                        .map(|p| typed(enum_name(p.r#type, PATH_TYPES), &p.value)),
                                    headers: m
                                        .headers
                                        .iter()
                                        .map(|h| NamedMatch {
                                            kind: enum_name(h.r#type, STRING_TYPES),
                                            name: h.name.clone(),
                                            value: h.value.clone(),
                                        })
                                        .collect(),
                                    query_params: m
                                        .query_params
                                        .iter()
                                        .map(|h| NamedMatch {
                                            kind: enum_name(h.r#type, STRING_TYPES),
                                            name: h.name.clone(),
                                            value: h.value.clone(),
                                        })
                                        .collect(),
                                    method: m.method.clone(),
                                })
                                .collect(),
                            filters: rule
                                .filters
                                .iter()
                                .map(FilterManifest::from_proto)
                                .collect(),
                            backends: rule
                                .backends
                                .iter()
                                .map(|b| BackendManifest {
                                    name: b.name.clone(),
                                    endpoints: b
                                        .endpoints
                                        .iter()
                                        .map(|e| render::host_port(&e.address, e.port))
                                        .collect(),
                                    weight: b.weight,
                                    invalid: b.invalid,
                                    filters: b
                                        .filters
                                        .iter()
                                        .map(FilterManifest::from_proto)
                                        .collect(),
                                })
                                .collect(),
                            timeouts: (rule.request_timeout.is_some()
                                || rule.backend_request_timeout.is_some())
                            .then(|| TimeoutsManifest {
                                request: rule
                                    .request_timeout
                                    .as_ref()
                                    .map(|d| format_duration(from_proto(d))),
                                backend_request: rule
                                    .backend_request_timeout
                                    .as_ref()
                                    .map(|d| format_duration(from_proto(d))),
                            }),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Parses a manifest file ("-": stdin); certificate files resolve next to it.
pub fn read_manifest(path: &Path) -> Result<v1::RouteTable, CliError> {
    use std::io::Read;
    let (text, source, base) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Input(format!("cannot read stdin: {e}")))?;
        (text, "<stdin>".to_string(), PathBuf::from("."))
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        (text, path.display().to_string(), base)
    };
    let manifest: TableManifest =
        serde_yaml_ng::from_str(&text).map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    manifest
        .to_proto(&base)
        .map_err(|e| CliError::Input(format!("{source}: {e}")))
}

/// The `l7 get` table view: one line per listener, then one per route rule.
pub fn render_table(table: &v1::RouteTable, version: u64) -> String {
    let mut out = format!("version: {version}\n\n");
    let mut listeners = Table::new(&[
        Column::left("LISTENER"),
        Column::left("ADDRESS"),
        Column::right("PORT"),
        Column::left("PROTOCOL"),
        Column::left("HOSTNAME"),
        Column::left("CERTIFICATES"),
    ]);
    for l in &table.listeners {
        listeners.add_row(vec![
            l.name.clone(),
            if l.address.is_empty() {
                "*".into()
            } else {
                l.address.clone()
            },
            l.port.to_string(),
            enum_name(l.protocol, PROTOCOLS),
            if l.hostname.is_empty() {
                "*".into()
            } else {
                l.hostname.clone()
            },
            l.certificate_names.join(","),
        ]);
    }
    out.push_str(&listeners.render());
    let mut routes = Table::new(&[
        Column::left("ROUTE"),
        Column::left("HOSTNAMES"),
        Column::right("RULE"),
        Column::left("MATCHES"),
        Column::left("FILTERS"),
        Column::left("BACKENDS"),
    ]);
    for r in &table.routes {
        let hosts = if r.hostnames.is_empty() {
            "*".to_string()
        } else {
            r.hostnames.join(",")
        };
        for (i, rule) in r.rules.iter().enumerate() {
            let matches = if rule.matches.is_empty() {
                "PathPrefix /".to_string()
            } else {
                rule.matches
                    .iter()
                    .map(|m| {
                        let mut parts = vec![match &m.path {
                            Some(p) => format!(
                                "{} {}",
                                match enum_name(p.r#type, PATH_TYPES).as_str() {
                                    "" => "PathPrefix".to_string(),
                                    s => s.to_string(),
                                },
                                if p.value.is_empty() { "/" } else { &p.value }
                            ),
                            None => "PathPrefix /".into(),
                        }];
                        if !m.method.is_empty() {
                            parts.push(m.method.clone());
                        }
                        parts.extend(m.headers.iter().map(|h| format!("{}={}", h.name, h.value)));
                        parts.extend(
                            m.query_params
                                .iter()
                                .map(|q| format!("?{}={}", q.name, q.value)),
                        );
                        parts.join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            let filters: Vec<String> = rule
                .filters
                .iter()
                .map(|f| FilterManifest::from_proto(f).kind)
                .collect();
            let backends: Vec<String> = rule
                .backends
                .iter()
                .map(|b| {
                    let mut s = format!("{} w={}", b.name, b.weight.unwrap_or(1));
                    if b.invalid {
                        s.push_str(" INVALID");
                    } else {
                        s.push_str(&format!(" ({} endpoints)", b.endpoints.len()));
                    }
                    s
                })
                .collect();
            routes.add_row(vec![
                r.name.clone(),
                hosts.clone(),
                i.to_string(),
                matches,
                filters.join(","),
                backends.join(", "),
            ]);
        }
    }
    out.push('\n');
    out.push_str(&routes.render());
    out.push_str(&format!(
        "\ncertificates: {}\n",
        table
            .certificates
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

/// Runs `l7 get|apply` against `channel`.
pub async fn run(
    command: L7Command,
    table: Option<v1::RouteTable>,
    channel: AuthChannel,
    server: &str,
    output: OutputFormat,
) -> Result<(), CliError> {
    let mut client = L7Client::new(channel);
    let text = match command {
        L7Command::Get => {
            let response = client
                .get_route_table(v1::GetRouteTableRequest {})
                .await
                .map_err(|s| CliError::rpc(server, GET, s))?
                .into_inner();
            let table = response.table.unwrap_or_default();
            match render::serialize(&TableManifest::from_proto(&table, response.version), output)? {
                Some(text) => text,
                None => render_table(&table, response.version),
            }
        }
        L7Command::Apply(args) => {
            let response = client
                .apply_route_table(v1::ApplyRouteTableRequest {
                    table,
                    expected_version: args.expected_version,
                })
                .await
                .map_err(|s| CliError::rpc(server, APPLY, s))?
                .into_inner();
            #[derive(Serialize)]
            struct Applied {
                version: u64,
                changed: bool,
            }
            let applied = Applied {
                version: response.version,
                changed: response.changed,
            };
            match render::serialize(&applied, output)? {
                Some(text) => text,
                None if response.changed => {
                    format!("route table applied: version {}\n", response.version)
                }
                None => format!("route table unchanged: version {}\n", response.version),
            }
        }
    };
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
listeners:
  - {name: gw/http, port: 80, protocol: HTTP}
  - {name: gw/https, address: 198.19.0.1, port: 443, protocol: https, hostname: "*.example.com", certificateNames: [c]}
certificates:
  - {name: c, certPem: "CERT", keyPem: "KEY"}
routes:
  - name: default/r
    listenerNames: [gw/http, gw/https]
    hostnames: [a.example.com]
    creationTimestamp: 5
    rules:
      - matches:
          - path: {type: Exact, value: /x}
            headers: [{type: RegularExpression, name: v, value: "t.*"}]
            queryParams: [{name: q, value: "1"}]
            method: POST
        filters:
          - type: RequestHeaderModifier
            requestHeaderModifier: {set: [{name: a, value: b}], remove: [c]}
          - urlRewrite: {hostname: h.example.com, path: {type: ReplaceFullPath, value: /y}}
        backends:
          - name: default/svc:80
            endpoints: ["198.19.0.1:8080", "[2001:db8::1]:8080"]
            weight: 3
            filters: [{responseHeaderModifier: {add: [{name: x, value: y}]}}]
        timeouts: {request: 10s, backendRequest: 500ms}
      - filters: [{requestRedirect: {scheme: https, statusCode: 301, port: 8443}}]
"#;

    #[test]
    fn manifest_converts_to_proto_and_back() {
        let manifest: TableManifest = serde_yaml_ng::from_str(TABLE).unwrap();
        let table = manifest.to_proto(Path::new(".")).unwrap();
        assert_eq!(
            table.listeners[1].protocol,
            v1::ListenerProtocol::Https as i32
        );
        assert_eq!(table.certificates[0].cert_pem, b"CERT");
        let rule = &table.routes[0].rules[0];
        assert_eq!(
            rule.matches[0].path.as_ref().unwrap().r#type,
            v1::PathMatchType::Exact as i32
        );
        assert_eq!(
            rule.matches[0].headers[0].r#type,
            v1::StringMatchType::RegularExpression as i32
        );
        assert_eq!(rule.backends[0].endpoints[1].address, "2001:db8::1");
        assert_eq!(rule.backends[0].weight, Some(3));
        assert_eq!(rule.backend_request_timeout.unwrap().nanos, 500_000_000);
        assert_eq!(rule.filters.len(), 2);
        // Back to the manifest (keys left out) and to the proto again: the same table.
        let back = TableManifest::from_proto(&table, 7);
        assert_eq!(back.version, Some(7));
        assert!(back.certificates[0].key_pem.is_none());
        let mut again = serde_yaml_ng::to_string(&back).unwrap();
        again = again.replace("certPem: CERT", "certPem: CERT\n  keyPem: KEY");
        let reparsed: TableManifest = serde_yaml_ng::from_str(&again).unwrap();
        assert_eq!(reparsed.to_proto(Path::new(".")).unwrap(), table);
        let text = render_table(&table, 7);
        assert!(text.contains("Exact /x POST v=t.* ?q=1"), "{text}");
        assert!(text.contains("RequestHeaderModifier,URLRewrite"), "{text}");
    }

    fn error(yaml: &str) -> String {
        let manifest: TableManifest = serde_yaml_ng::from_str(yaml).unwrap();
        manifest.to_proto(Path::new(".")).unwrap_err()
    }

    #[test]
    fn manifest_errors_name_the_field() {
        assert!(error("listeners: [{name: l, port: 80, protocol: FTP}]")
            .starts_with("listeners[0].protocol: \"FTP\" is not one of HTTP, HTTPS"));
        let route =
            |rule: &str| format!("routes: [{{name: r, listenerNames: [l], rules: [{rule}]}}]");
        assert!(error(&route("{backends: [{endpoints: [\"10.0.0.1\"]}]}"))
            .starts_with("routes[0].rules[0].backends[0].endpoints[0]: "));
        assert!(error(&route("{filters: [{}]}"))
            .starts_with("routes[0].rules[0].filters[0]: exactly one"));
        assert!(error(&route(
            "{filters: [{type: URLRewrite, requestRedirect: {scheme: https}}]}"
        ))
        .starts_with("routes[0].rules[0].filters[0].type: "));
        assert!(
            error(&route("{matches: [{path: {type: Prefix, value: /}}]}"))
                .starts_with("routes[0].rules[0].matches[0].path.type: ")
        );
        assert!(error(&route("{timeouts: {request: soon}}"))
            .starts_with("routes[0].rules[0].timeouts.request: "));
        assert!(
            error("certificates: [{name: c, certFile: /nonexistent/x.crt, keyPem: K}]")
                .starts_with("certificates[0].certFile: cannot read /nonexistent/x.crt")
        );
        assert!(serde_yaml_ng::from_str::<TableManifest>("listener: []").is_err());
    }
}
