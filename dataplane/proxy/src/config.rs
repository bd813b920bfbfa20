//! Validation of a `sluice.v1.RouteTable` and its compilation into a [`Table`].
//!
//! Every problem is collected (not only the first) with the path of the field, e.g.
//! `table.routes[2].rules[0].matches[1].path.value`; a table with any violation changes
//! nothing. Routes whose hostnames do not intersect a listener's are not attached to it (the
//! controller reports that in the route's status), which is not an error.

use crate::fasthash::FastMap;
use crate::hostname::{self, HostPattern};
use crate::metrics::Metrics;
use crate::table::{
    Backend, CompiledMatch, Filter, HeaderModifier, ListenerRoutes, PathMatch, PathModifier,
    Protocol, Redirect, Rewrite, RouteInfo, Rule, SocketKey, SocketRoutes, StringMatch, Table,
};
use crate::tls::{self, CertEntry};
use crate::violations::Violations;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use regex::Regex;
use sluice_proto::v1;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// Limits that keep one request from exhausting the proxy.
const MAX_LISTENERS: usize = 1024;
const MAX_ROUTES: usize = 10_000;
const MAX_CERTIFICATES: usize = 10_000;
const MAX_WEIGHT: u32 = 1_000_000;
/// Compiled regexes are capped (the regex crate has no catastrophic backtracking; this bounds
/// memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

fn regex(v: &mut Violations, field: &str, pattern: &str) -> Option<Regex> {
    match regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            v.push(field, format!("invalid regular expression: {e}"));
            None
        }
    }
}

fn duration(
    v: &mut Violations,
    field: &str,
    d: Option<&prost_types::Duration>,
) -> Option<Duration> {
    let d = d?;
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        v.push(field, "must be a non-negative duration");
        return None;
    }
    let d = Duration::new(d.seconds as u64, d.nanos as u32);
    (!d.is_zero()).then_some(d)
}

fn port(v: &mut Violations, field: &str, port: u32) -> Option<u16> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Some(p),
        _ => {
            v.push(field, format!("{port} is not a port (1..=65535)"));
            None
        }
    }
}

fn header_name(v: &mut Violations, field: &str, name: &str) -> Option<HeaderName> {
    if name.is_empty() {
        v.push(field, "required");
        return None;
    }
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            v.push(field, format!("{name:?} is not a valid header name"));
            None
        }
    }
}

fn header_value(v: &mut Violations, field: &str, value: &str) -> Option<HeaderValue> {
    match HeaderValue::from_str(value) {
        Ok(h) => Some(h),
        Err(_) => {
            v.push(field, "not a valid header value (visible ASCII, no CR/LF)");
            None
        }
    }
}

fn string_match(v: &mut Violations, field: &str, kind: i32, value: &str) -> Option<StringMatch> {
    match v1::StringMatchType::try_from(kind) {
        Ok(v1::StringMatchType::Unspecified | v1::StringMatchType::Exact) => {
            Some(StringMatch::Exact(value.to_string()))
        }
        Ok(v1::StringMatchType::RegularExpression) => {
            regex(v, &format!("{field}.value"), value).map(StringMatch::Regex)
        }
        Err(_) => {
            v.push(
                format!("{field}.type"),
                format!("unknown StringMatchType {kind}"),
            );
            None
        }
    }
}

fn path_value_ok(value: &str) -> bool {
    value.starts_with('/') && !value.contains(['?', '#']) && !value.contains("//")
}

fn path_match(v: &mut Violations, field: &str, path: Option<&v1::PathMatch>) -> Option<PathMatch> {
    let Some(path) = path else {
        return Some(PathMatch::Prefix("/".into()));
    };
    let value = if path.value.is_empty() {
        "/"
    } else {
        path.value.as_str()
    };
    let vfield = format!("{field}.value");
    match v1::PathMatchType::try_from(path.r#type) {
        Ok(v1::PathMatchType::Exact) => {
            if !path_value_ok(value) {
                v.push(
                    vfield,
                    "must be an absolute path without \"?\", \"#\" or \"//\"",
                );
                return None;
            }
            Some(PathMatch::Exact(value.to_string()))
        }
        Ok(v1::PathMatchType::Unspecified | v1::PathMatchType::PathPrefix) => {
            if !path_value_ok(value) {
                v.push(
                    vfield,
                    "must be an absolute path without \"?\", \"#\" or \"//\"",
                );
                return None;
            }
            // The spec ignores a trailing slash on a prefix.
            let trimmed = value.trim_end_matches('/');
            Some(PathMatch::Prefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            }))
        }
        Ok(v1::PathMatchType::RegularExpression) => regex(v, &vfield, value).map(PathMatch::Regex),
        Err(_) => {
            v.push(
                format!("{field}.type"),
                format!("unknown PathMatchType {}", path.r#type),
            );
            None
        }
    }
}

fn header_modifier(v: &mut Violations, field: &str, m: &v1::HeaderModifier) -> HeaderModifier {
    let mut out = HeaderModifier::default();
    let mut seen = HashSet::new();
    for (list, entries, target) in [("set", &m.set, &mut out.set), ("add", &m.add, &mut out.add)] {
        for (i, h) in entries.iter().enumerate() {
            let f = format!("{field}.{list}[{i}]");
            let name = header_name(v, &format!("{f}.name"), &h.name);
            let value = header_value(v, &format!("{f}.value"), &h.value);
            if let Some(name) = name {
                if !seen.insert((list, name.clone())) {
                    v.push(
                        format!("{f}.name"),
                        format!("header {:?} is listed twice", h.name),
                    );
                }
                if let Some(value) = value {
                    target.push((name, value));
                }
            }
        }
    }
    for (i, name) in m.remove.iter().enumerate() {
        if let Some(name) = header_name(v, &format!("{field}.remove[{i}]"), name) {
            out.remove.push(name);
        }
    }
    out
}

fn path_modifier(
    v: &mut Violations,
    field: &str,
    m: Option<&v1::PathModifier>,
) -> Option<PathModifier> {
    let m = m?;
    let vfield = format!("{field}.value");
    let value = if m.value.is_empty() {
        "/"
    } else {
        m.value.as_str()
    };
    if !path_value_ok(value) {
        v.push(
            vfield,
            "must be an absolute path without \"?\", \"#\" or \"//\"",
        );
        return None;
    }
    match v1::PathModifierType::try_from(m.r#type) {
        Ok(v1::PathModifierType::ReplaceFullPath) => Some(PathModifier::Full(value.into())),
        Ok(v1::PathModifierType::ReplacePrefixMatch) => Some(PathModifier::Prefix(value.into())),
        _ => {
            v.push(
                format!("{field}.type"),
                "required: REPLACE_FULL_PATH or REPLACE_PREFIX_MATCH",
            );
            None
        }
    }
}

/// Compiles filters; `backend_level` allows only the header modifiers.
fn filters(
    v: &mut Violations,
    field: &str,
    list: &[v1::HttpRouteFilter],
    backend_level: bool,
) -> Vec<Filter> {
    use v1::http_route_filter::Filter as F;
    let mut out = Vec::new();
    let mut kinds = HashSet::new();
    for (i, f) in list.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let Some(filter) = &f.filter else {
            v.push(format!("{field}.filter"), "required");
            continue;
        };
        let kind = std::mem::discriminant(filter);
        if !kinds.insert(kind) {
            v.push(
                field.clone(),
                "each filter type may appear only once per rule (spec)",
            );
            continue;
        }
        match filter {
            F::RequestHeaderModifier(m) => out.push(Filter::RequestHeaders(header_modifier(
                v,
                &format!("{field}.request_header_modifier"),
                m,
            ))),
            F::ResponseHeaderModifier(m) => out.push(Filter::ResponseHeaders(header_modifier(
                v,
                &format!("{field}.response_header_modifier"),
                m,
            ))),
            F::RequestRedirect(_) | F::UrlRewrite(_) if backend_level => {
                v.push(field, "only header modifiers are allowed on a backend");
            }
            F::RequestRedirect(r) => {
                let f = format!("{field}.request_redirect");
                let scheme = match r.scheme.as_str() {
                    "" => None,
                    s @ ("http" | "https") => Some(s.to_string()),
                    other => {
                        v.push(
                            format!("{f}.scheme"),
                            format!("{other:?} is not \"http\" or \"https\""),
                        );
                        None
                    }
                };
                let hostname = match r.hostname.as_str() {
                    "" => None,
                    h => match hostname::parse(h) {
                        Ok(HostPattern::Exact(h)) => Some(h),
                        Ok(_) => {
                            v.push(format!("{f}.hostname"), "must not be a wildcard");
                            None
                        }
                        Err(e) => {
                            v.push(format!("{f}.hostname"), e);
                            None
                        }
                    },
                };
                let port = r.port.and_then(|p| port(v, &format!("{f}.port"), p));
                let status = match r.status_code.unwrap_or(302) {
                    code @ (301 | 302 | 303 | 307 | 308) => {
                        StatusCode::from_u16(code as u16).expect("valid redirect code")
                    }
                    other => {
                        v.push(
                            format!("{f}.status_code"),
                            format!("{other} is not one of 301, 302, 303, 307, 308"),
                        );
                        StatusCode::FOUND
                    }
                };
                let path = path_modifier(v, &format!("{f}.path"), r.path.as_ref());
                out.push(Filter::Redirect(Redirect {
                    scheme,
                    hostname,
                    path,
                    port,
                    status,
                }));
            }
            F::UrlRewrite(r) => {
                let f = format!("{field}.url_rewrite");
                let hostname = match r.hostname.as_str() {
                    "" => None,
                    h => match hostname::parse(h) {
                        Ok(HostPattern::Exact(h)) => header_value(v, &format!("{f}.hostname"), &h),
                        Ok(_) => {
                            v.push(format!("{f}.hostname"), "must not be a wildcard");
                            None
                        }
                        Err(e) => {
                            v.push(format!("{f}.hostname"), e);
                            None
                        }
                    },
                };
                let path = path_modifier(v, &format!("{f}.path"), r.path.as_ref());
                out.push(Filter::Rewrite(Rewrite { hostname, path }));
            }
        }
    }
    out
}

fn endpoint(v: &mut Violations, field: &str, e: &v1::Endpoint) -> Option<http::uri::Authority> {
    let address = match e.address.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            v.push(
                format!("{field}.address"),
                format!("{:?} is not an IP address", e.address),
            );
            None
        }
    };
    let port = port(v, &format!("{field}.port"), e.port);
    let text = match (address?, port?) {
        (IpAddr::V4(a), p) => format!("{a}:{p}"),
        (IpAddr::V6(a), p) => format!("[{a}]:{p}"),
    };
    text.parse().ok()
}

struct ListenerDraft<'t> {
    index: usize,
    proto: &'t v1::Listener,
    key: SocketKey,
    hostname: HostPattern,
    protocol: Protocol,
    certs: Vec<Arc<CertEntry>>,
    /// Intersected hostname -> matches.
    hosts: HashMap<HostPattern, Vec<CompiledMatch>>,
}

/// Validates `table` (field paths start with `prefix`, e.g. "table") and compiles it.
pub fn compile(
    table: &v1::RouteTable,
    prefix: &str,
    metrics: &Metrics,
) -> Result<Table, Violations> {
    let mut v = Violations::default();

    // Certificates.
    let mut certs: HashMap<&str, Arc<CertEntry>> = HashMap::new();
    if table.certificates.len() > MAX_CERTIFICATES {
        v.push(
            format!("{prefix}.certificates"),
            format!("at most {MAX_CERTIFICATES}"),
        );
    }
    for (i, c) in table.certificates.iter().enumerate() {
        let f = format!("{prefix}.certificates[{i}]");
        if c.name.is_empty() {
            v.push(format!("{f}.name"), "required");
            continue;
        }
        if certs.contains_key(c.name.as_str()) {
            v.push(
                format!("{f}.name"),
                format!("duplicate certificate name {:?}", c.name),
            );
            continue;
        }
        match tls::load(&c.name, &c.cert_pem, &c.key_pem) {
            Ok(entry) => {
                certs.insert(&c.name, Arc::new(entry));
            }
            Err((field, e)) => v.push(format!("{f}.{field}"), e),
        }
    }

    // Listeners.
    if table.listeners.len() > MAX_LISTENERS {
        v.push(
            format!("{prefix}.listeners"),
            format!("at most {MAX_LISTENERS}"),
        );
    }
    let mut drafts: Vec<ListenerDraft<'_>> = Vec::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut socket_protocol: HashMap<SocketKey, (Protocol, usize)> = HashMap::new();
    let mut socket_hosts: HashSet<(SocketKey, HostPattern)> = HashSet::new();
    for (i, l) in table.listeners.iter().enumerate() {
        let f = format!("{prefix}.listeners[{i}]");
        let mut ok = true;
        if l.name.is_empty() {
            v.push(format!("{f}.name"), "required");
            ok = false;
        } else if by_name.contains_key(l.name.as_str()) {
            v.push(
                format!("{f}.name"),
                format!("duplicate listener name {:?}", l.name),
            );
            ok = false;
        }
        let address = if l.address.is_empty() {
            None
        } else {
            match l.address.parse::<IpAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    v.push(
                        format!("{f}.address"),
                        format!("{:?} is not an IP address", l.address),
                    );
                    ok = false;
                    None
                }
            }
        };
        let Some(port) = port(&mut v, &format!("{f}.port"), l.port) else {
            continue;
        };
        let protocol = match v1::ListenerProtocol::try_from(l.protocol) {
            Ok(v1::ListenerProtocol::Http) => Protocol::Http,
            Ok(v1::ListenerProtocol::Https) => Protocol::Https,
            _ => {
                v.push(format!("{f}.protocol"), "required: HTTP or HTTPS");
                continue;
            }
        };
        let hostname = match hostname::parse(&l.hostname) {
            Ok(h) => h,
            Err(e) => {
                v.push(format!("{f}.hostname"), e);
                continue;
            }
        };
        let key = SocketKey { address, port };
        match socket_protocol.get(&key) {
            Some((p, other)) if *p != protocol => {
                v.push(
                    format!("{f}.protocol"),
                    format!("listeners[{other}] on the same address and port has another protocol"),
                );
                ok = false;
            }
            Some(_) => {}
            None => {
                socket_protocol.insert(key, (protocol, i));
            }
        }
        if !socket_hosts.insert((key, hostname.clone())) {
            v.push(
                format!("{f}.hostname"),
                format!(
                    "another listener on {key} has the hostname {:?}",
                    l.hostname
                ),
            );
            ok = false;
        }
        let mut listener_certs = Vec::new();
        match protocol {
            Protocol::Https if l.certificate_names.is_empty() => {
                v.push(format!("{f}.certificate_names"), "required for HTTPS");
                ok = false;
            }
            Protocol::Http if !l.certificate_names.is_empty() => {
                v.push(
                    format!("{f}.certificate_names"),
                    "only HTTPS listeners take certificates",
                );
                ok = false;
            }
            _ => {}
        }
        for (j, name) in l.certificate_names.iter().enumerate() {
            match certs.get(name.as_str()) {
                Some(c) => listener_certs.push(c.clone()),
                None if table.certificates.iter().any(|c| &c.name == name) => ok = false,
                None => {
                    v.push(
                        format!("{f}.certificate_names[{j}]"),
                        format!("no certificate named {name:?}"),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            by_name.insert(&l.name, drafts.len());
            drafts.push(ListenerDraft {
                index: i,
                proto: l,
                key,
                hostname,
                protocol,
                certs: listener_certs,
                hosts: HashMap::new(),
            });
        }
    }

    // Routes.
    if table.routes.len() > MAX_ROUTES {
        v.push(format!("{prefix}.routes"), format!("at most {MAX_ROUTES}"));
    }
    let mut route_names = HashSet::new();
    for (ri, r) in table.routes.iter().enumerate() {
        let f = format!("{prefix}.routes[{ri}]");
        if r.name.is_empty() {
            v.push(format!("{f}.name"), "required");
        } else if !route_names.insert(r.name.as_str()) {
            v.push(
                format!("{f}.name"),
                format!("duplicate route name {:?}", r.name),
            );
        }
        if r.listener_names.is_empty() {
            v.push(
                format!("{f}.listener_names"),
                "at least one listener is required",
            );
        }
        let mut attached = Vec::new();
        for (j, name) in r.listener_names.iter().enumerate() {
            match by_name.get(name.as_str()) {
                Some(d) => attached.push(*d),
                None if table.listeners.iter().any(|l| &l.name == name) => {}
                None => v.push(
                    format!("{f}.listener_names[{j}]"),
                    format!("no listener named {name:?}"),
                ),
            }
        }
        let mut hostnames = Vec::new();
        for (j, h) in r.hostnames.iter().enumerate() {
            match hostname::parse(h) {
                Ok(HostPattern::Any) => v.push(format!("{f}.hostnames[{j}]"), "must not be empty"),
                Ok(p) => hostnames.push(p),
                Err(e) => v.push(format!("{f}.hostnames[{j}]"), e),
            }
        }
        let route_name: Arc<str> = Arc::from(r.name.as_str());
        let order_name: Arc<str> = Arc::from(if r.namespaced_name.is_empty() {
            r.name.as_str()
        } else {
            r.namespaced_name.as_str()
        });
        let info = Arc::new(RouteInfo {
            name: route_name,
            metrics: metrics.route(&r.name),
        });
        let mut rules: Vec<RuleDraft> = Vec::new();
        for (k, rule) in r.rules.iter().enumerate() {
            let rf = format!("{f}.rules[{k}]");
            let compiled_filters = filters(&mut v, &format!("{rf}.filters"), &rule.filters, false);
            let has_redirect = compiled_filters
                .iter()
                .any(|f| matches!(f, Filter::Redirect(_)));
            let has_rewrite = compiled_filters
                .iter()
                .any(|f| matches!(f, Filter::Rewrite(_)));
            if has_redirect && has_rewrite {
                v.push(
                    format!("{rf}.filters"),
                    "RequestRedirect and URLRewrite cannot be used together (spec)",
                );
            }
            let prefix_modifier = compiled_filters.iter().any(|f| {
                matches!(
                    f,
                    Filter::Redirect(Redirect {
                        path: Some(PathModifier::Prefix(_)),
                        ..
                    }) | Filter::Rewrite(Rewrite {
                        path: Some(PathModifier::Prefix(_)),
                        ..
                    })
                )
            });
            let mut matches = Vec::new();
            let proto_matches: Vec<v1::HttpRouteMatch> = if rule.matches.is_empty() {
                vec![v1::HttpRouteMatch::default()]
            } else {
                rule.matches.clone()
            };
            for (m, mm) in proto_matches.iter().enumerate() {
                let mf = format!("{rf}.matches[{m}]");
                let path = path_match(&mut v, &format!("{mf}.path"), mm.path.as_ref());
                if prefix_modifier && !matches!(path, Some(PathMatch::Prefix(_)) | None) {
                    v.push(
                        format!("{mf}.path.type"),
                        "a ReplacePrefixMatch path modifier needs PathPrefix matches (spec)",
                    );
                }
                let method = if mm.method.is_empty() {
                    None
                } else {
                    match Method::from_bytes(mm.method.as_bytes()) {
                        Ok(method) if mm.method.bytes().all(|b| b.is_ascii_uppercase()) => {
                            Some(method)
                        }
                        _ => {
                            v.push(
                                format!("{mf}.method"),
                                format!("{:?} is not an HTTP method (e.g. \"GET\")", mm.method),
                            );
                            None
                        }
                    }
                };
                let mut headers: Vec<(HeaderName, StringMatch)> = Vec::new();
                for (h, hm) in mm.headers.iter().enumerate() {
                    let hf = format!("{mf}.headers[{h}]");
                    let name = header_name(&mut v, &format!("{hf}.name"), &hm.name);
                    let matcher = string_match(&mut v, &hf, hm.r#type, &hm.value);
                    // Spec: of entries with equivalent names only the first counts.
                    if let (Some(name), Some(matcher)) = (name, matcher) {
                        if !headers.iter().any(|(n, _)| n == name) {
                            headers.push((name, matcher));
                        }
                    }
                }
                let mut query: Vec<(String, StringMatch)> = Vec::new();
                for (q, qm) in mm.query_params.iter().enumerate() {
                    let qf = format!("{mf}.query_params[{q}]");
                    if qm.name.is_empty() {
                        v.push(format!("{qf}.name"), "required");
                        continue;
                    }
                    if let Some(matcher) = string_match(&mut v, &qf, qm.r#type, &qm.value) {
                        if !query.iter().any(|(n, _)| n == &qm.name) {
                            query.push((qm.name.clone(), matcher));
                        }
                    }
                }
                if let Some(path) = path {
                    matches.push((
                        m,
                        MatchDraft {
                            path,
                            method,
                            headers,
                            query,
                        },
                    ));
                }
            }
            let mut backends = Vec::new();
            let mut total_weight = 0u64;
            for (b, backend) in rule.backends.iter().enumerate() {
                let bf = format!("{rf}.backends[{b}]");
                let weight = backend.weight.unwrap_or(1);
                if weight > MAX_WEIGHT {
                    v.push(
                        format!("{bf}.weight"),
                        format!("{weight} is above {MAX_WEIGHT}"),
                    );
                }
                let endpoints = backend
                    .endpoints
                    .iter()
                    .enumerate()
                    .filter_map(|(e, ep)| endpoint(&mut v, &format!("{bf}.endpoints[{e}]"), ep))
                    .collect();
                total_weight += u64::from(weight);
                backends.push(Backend {
                    name: backend.name.clone(),
                    weight,
                    invalid: backend.invalid,
                    endpoints,
                    next: AtomicUsize::new(fastrand::usize(..)),
                    filters: filters(&mut v, &format!("{bf}.filters"), &backend.filters, true),
                });
            }
            let request_timeout = duration(
                &mut v,
                &format!("{rf}.request_timeout"),
                rule.request_timeout.as_ref(),
            );
            let backend_timeout = duration(
                &mut v,
                &format!("{rf}.backend_request_timeout"),
                rule.backend_request_timeout.as_ref(),
            );
            if let (Some(req), Some(be)) = (request_timeout, backend_timeout) {
                if be > req {
                    v.push(
                        format!("{rf}.backend_request_timeout"),
                        "must not exceed request_timeout (spec)",
                    );
                }
            }
            let compiled = Arc::new(Rule {
                route: info.clone(),
                filters: compiled_filters,
                backends,
                total_weight,
                request_timeout,
                backend_timeout,
            });
            rules.push((k, compiled, matches));
        }
        // Attach to each listener under the intersected hostnames.
        for d in attached {
            let draft = &mut drafts[d];
            let Some(hosts) = hostname::intersect(&draft.hostname, &hostnames) else {
                tracing::debug!(route = %r.name, listener = %draft.proto.name, "no hostname intersection");
                continue;
            };
            for host in hosts {
                let list = draft.hosts.entry(host).or_default();
                for (k, rule, matches) in &rules {
                    for (m, mm) in matches {
                        list.push(mm.compile(
                            rule.clone(),
                            (r.creation_timestamp, order_name.clone(), *k, *m),
                        ));
                    }
                }
            }
        }
    }

    if !v.is_empty() {
        return Err(v);
    }

    // Group listeners into sockets.
    let mut sockets: HashMap<SocketKey, (Protocol, Vec<(usize, ListenerRoutes)>)> = HashMap::new();
    for draft in drafts {
        let mut exact = FastMap::default();
        let mut wildcards = Vec::new();
        for (host, mut matches) in draft.hosts {
            matches.sort_by(CompiledMatch::precedence);
            match host {
                HostPattern::Exact(name) => {
                    exact.insert(name, matches);
                }
                other => wildcards.push((other, matches)),
            }
        }
        wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.specificity()));
        let entry = sockets
            .entry(draft.key)
            .or_insert((draft.protocol, Vec::new()));
        entry.1.push((
            draft.index,
            ListenerRoutes {
                name: Arc::from(draft.proto.name.as_str()),
                hostname: draft.hostname,
                exact,
                wildcards,
                certs: draft.certs,
            },
        ));
    }
    let sockets = sockets
        .into_iter()
        .map(|(key, (protocol, mut listeners))| {
            // The default certificate: the first of the first listener in table order.
            listeners.sort_by_key(|(index, _)| *index);
            let default_cert = listeners.iter().find_map(|(_, l)| l.certs.first().cloned());
            let mut listeners: Vec<ListenerRoutes> =
                listeners.into_iter().map(|(_, l)| l).collect();
            // Stable: equal specificity keeps table order.
            listeners.sort_by_key(|l| std::cmp::Reverse(l.hostname.specificity()));
            (
                key,
                Arc::new(SocketRoutes {
                    protocol,
                    listeners,
                    default_cert,
                }),
            )
        })
        .collect();
    Ok(Table { sockets })
}

/// A compiled rule with its index and its matches (with their indexes).
type RuleDraft = (usize, Arc<Rule>, Vec<(usize, MatchDraft)>);

struct MatchDraft {
    path: PathMatch,
    method: Option<Method>,
    headers: Vec<(HeaderName, StringMatch)>,
    query: Vec<(String, StringMatch)>,
}

impl MatchDraft {
    fn compile(&self, rule: Arc<Rule>, order: (i64, Arc<str>, usize, usize)) -> CompiledMatch {
        fn clone_sm(m: &StringMatch) -> StringMatch {
            match m {
                StringMatch::Exact(s) => StringMatch::Exact(s.clone()),
                // Regex clones share the compiled program.
                StringMatch::Regex(r) => StringMatch::Regex(r.clone()),
            }
        }
        CompiledMatch {
            path: match &self.path {
                PathMatch::Exact(s) => PathMatch::Exact(s.clone()),
                PathMatch::Prefix(s) => PathMatch::Prefix(s.clone()),
                PathMatch::Regex(r) => PathMatch::Regex(r.clone()),
            },
            method: self.method.clone(),
            headers: self
                .headers
                .iter()
                .map(|(n, m)| (n.clone(), clone_sm(m)))
                .collect(),
            query: self
                .query
                .iter()
                .map(|(n, m)| (n.clone(), clone_sm(m)))
                .collect(),
            rule,
            order,
        }
    }
}
