//! HTTPRoutes -> the sluice.v1.L7 route table of sluice-proxy (pure).

use crate::model::Obj;
use crate::translate::ResolvedBackend;
use gateway_api::apis::standard::httproutes::{
    HttpRouteRulesFilters, HttpRouteRulesFiltersType, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPathType,
    HttpRouteRulesMatchesQueryParamsType, HttpRouteSpec,
};
use sluice_proto::v1;

/// An HTTP/HTTPS listener that the proxies serve.
#[derive(Clone, Debug, Default)]
pub struct ListenerIn {
    pub name: String,
    pub port: u16,
    pub https: bool,
    pub hostname: Option<String>,
    pub certificates: Vec<String>,
}

/// An accepted HTTPRoute with its resolved backends (per rule).
#[derive(Clone, Debug)]
pub struct RouteIn {
    pub route: Obj<HttpRouteSpec>,
    pub listener_names: Vec<String>,
    pub backends: Vec<Vec<ResolvedBackend>>,
}

#[derive(Clone, Debug, Default)]
pub struct Input {
    pub listeners: Vec<ListenerIn>,
    pub routes: Vec<RouteIn>,
    pub certificates: Vec<v1::Certificate>,
}

/// Gateway API durations ("1h2m3s", "500ms") -> protobuf Duration; invalid/zero: none.
fn duration(text: Option<&String>) -> Option<prost_types::Duration> {
    let text = text?.trim();
    let mut total_ms: u64 = 0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().ok()?;
        number.clear();
        let unit_ms = match c {
            'h' => 3_600_000,
            's' => 1000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            _ => return None,
        };
        total_ms += value * unit_ms;
    }
    if !number.is_empty() || total_ms == 0 {
        return None;
    }
    Some(prost_types::Duration {
        seconds: i64::try_from(total_ms / 1000).ok()?,
        nanos: i32::try_from((total_ms % 1000) * 1_000_000).ok()?,
    })
}

fn header_modifier(
    set: Vec<(String, String)>,
    add: Vec<(String, String)>,
    remove: Vec<String>,
) -> v1::HeaderModifier {
    let hv = |v: Vec<(String, String)>| {
        v.into_iter()
            .map(|(name, value)| v1::HeaderValue { name, value })
            .collect()
    };
    v1::HeaderModifier {
        set: hv(set),
        add: hv(add),
        remove,
    }
}

fn filter(f: &HttpRouteRulesFilters) -> Option<v1::HttpRouteFilter> {
    use v1::http_route_filter::Filter;
    let filter = match f.r#type {
        HttpRouteRulesFiltersType::RequestHeaderModifier => {
            let m = f.request_header_modifier.as_ref()?;
            Filter::RequestHeaderModifier(header_modifier(
                m.set
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
                m.add
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
                m.remove.clone().unwrap_or_default(),
            ))
        }
        HttpRouteRulesFiltersType::ResponseHeaderModifier => {
            let m = f.response_header_modifier.as_ref()?;
            Filter::ResponseHeaderModifier(header_modifier(
                m.set
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
                m.add
                    .iter()
                    .flatten()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect(),
                m.remove.clone().unwrap_or_default(),
            ))
        }
        HttpRouteRulesFiltersType::RequestRedirect => {
            let r = f.request_redirect.as_ref()?;
            let v = serde_json::to_value(r).ok()?;
            Filter::RequestRedirect(v1::RequestRedirect {
                scheme: v["scheme"].as_str().unwrap_or("").to_owned(),
                hostname: r.hostname.clone().unwrap_or_default(),
                path: path_modifier(&v["path"]),
                port: r.port.and_then(|p| u32::try_from(p).ok()),
                status_code: r.status_code.and_then(|c| u32::try_from(c).ok()),
            })
        }
        HttpRouteRulesFiltersType::UrlRewrite => {
            let r = f.url_rewrite.as_ref()?;
            let v = serde_json::to_value(r).ok()?;
            Filter::UrlRewrite(v1::UrlRewrite {
                hostname: r.hostname.clone().unwrap_or_default(),
                path: path_modifier(&v["path"]),
            })
        }
        // Mirror, CORS and extension filters are not supported by sluice-proxy.
        _ => return None,
    };
    Some(v1::HttpRouteFilter {
        filter: Some(filter),
    })
}

fn path_modifier(v: &serde_json::Value) -> Option<v1::PathModifier> {
    let t = v["type"].as_str()?;
    let (type_, value) = match t {
        "ReplaceFullPath" => (
            v1::PathModifierType::ReplaceFullPath,
            v["replaceFullPath"].as_str().unwrap_or("/"),
        ),
        "ReplacePrefixMatch" => (
            v1::PathModifierType::ReplacePrefixMatch,
            v["replacePrefixMatch"].as_str().unwrap_or("/"),
        ),
        _ => return None,
    };
    Some(v1::PathModifier {
        r#type: type_ as i32,
        value: value.to_owned(),
    })
}

fn route_match(m: &HttpRouteRulesMatches) -> v1::HttpRouteMatch {
    let string_type = |regex: bool| {
        (if regex {
            v1::StringMatchType::RegularExpression
        } else {
            v1::StringMatchType::Exact
        }) as i32
    };
    v1::HttpRouteMatch {
        path: m.path.as_ref().map(|p| v1::PathMatch {
            r#type: match p.r#type {
                Some(HttpRouteRulesMatchesPathType::Exact) => v1::PathMatchType::Exact,
                Some(HttpRouteRulesMatchesPathType::RegularExpression) => {
                    v1::PathMatchType::RegularExpression
                }
                _ => v1::PathMatchType::PathPrefix,
            } as i32,
            value: p.value.clone().unwrap_or_else(|| "/".into()),
        }),
        headers: m
            .headers
            .iter()
            .flatten()
            .map(|h| v1::HeaderMatch {
                r#type: string_type(
                    h.r#type == Some(HttpRouteRulesMatchesHeadersType::RegularExpression),
                ),
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
        query_params: m
            .query_params
            .iter()
            .flatten()
            .map(|q| v1::QueryParamMatch {
                r#type: string_type(
                    q.r#type == Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression),
                ),
                name: q.name.clone(),
                value: q.value.clone(),
            })
            .collect(),
        method: m
            .method
            .as_ref()
            .and_then(|x| serde_json::to_value(x).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

/// Builds the table. Listeners sharing a port are kept (the proxy merges them by hostname).
pub fn route_table(input: Input) -> v1::RouteTable {
    let listeners = input
        .listeners
        .iter()
        .map(|l| v1::Listener {
            name: l.name.clone(),
            address: String::new(),
            port: u32::from(l.port),
            protocol: if l.https {
                v1::ListenerProtocol::Https
            } else {
                v1::ListenerProtocol::Http
            } as i32,
            hostname: l.hostname.clone().unwrap_or_default(),
            certificate_names: l.certificates.clone(),
        })
        .collect();
    let routes = input
        .routes
        .iter()
        .map(|r| {
            let spec = &r.route.spec;
            let rules = spec
                .rules
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, rule)| v1::HttpRouteRule {
                    matches: rule.matches.iter().flatten().map(route_match).collect(),
                    filters: rule.filters.iter().flatten().filter_map(filter).collect(),
                    backends: r
                        .backends
                        .get(i)
                        .into_iter()
                        .flatten()
                        .zip(rule.backend_refs.iter().flatten())
                        .map(|(b, spec_ref)| v1::HttpBackend {
                            name: b.display.clone(),
                            endpoints: b
                                .endpoints
                                .as_ref()
                                .map(|e| {
                                    e.iter()
                                        .map(|(ip, port)| v1::Endpoint {
                                            address: ip.to_string(),
                                            port: u32::from(*port),
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                            weight: Some(b.weight),
                            invalid: b.endpoints.is_err(),
                            filters: spec_ref
                                .filters
                                .iter()
                                .flatten()
                                .filter_map(|f| {
                                    serde_json::to_value(f)
                                        .ok()
                                        .and_then(|v| serde_json::from_value(v).ok())
                                        .and_then(|f: HttpRouteRulesFilters| filter(&f))
                                })
                                .collect(),
                        })
                        .collect(),
                    request_timeout: duration(
                        rule.timeouts.as_ref().and_then(|t| t.request.as_ref()),
                    ),
                    backend_request_timeout: duration(
                        rule.timeouts
                            .as_ref()
                            .and_then(|t| t.backend_request.as_ref()),
                    ),
                    name: rule.name.clone().unwrap_or_default(),
                })
                .collect();
            v1::HttpRoute {
                name: format!("{}/{}", r.route.meta.namespace, r.route.meta.name),
                listener_names: r.listener_names.clone(),
                hostnames: spec.hostnames.clone().unwrap_or_default(),
                rules,
                creation_timestamp: r.route.meta.creation_timestamp,
                namespaced_name: format!("{}/{}", r.route.meta.namespace, r.route.meta.name),
            }
        })
        .collect();
    let mut certificates = input.certificates;
    certificates.sort_by(|a, b| a.name.cmp(&b.name));
    v1::RouteTable {
        listeners,
        routes,
        certificates,
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn gateway_durations() {
        assert_eq!(duration(Some(&"1h2m3s".into())).unwrap().seconds, 3723);
        let d = duration(Some(&"1500ms".into())).unwrap();
        assert_eq!((d.seconds, d.nanos), (1, 500_000_000));
        assert!(duration(Some(&"0s".into())).is_none());
        assert!(duration(Some(&"5x".into())).is_none());
    }
}
