//! Table tests of matching, precedence and filters, reproducing the Gateway API conformance
//! scenarios (HTTPRouteMatching, HTTPRouteExactPathMatching, HTTPRouteHeaderMatching,
//! HTTPRouteQueryParamMatching, HTTPRouteMethodMatching, HTTPRoutePathMatchOrder,
//! HTTPRouteHostnameIntersection, HTTPRouteWeight, HTTPRouteRequestHeaderModifier,
//! HTTPRouteRedirect*, HTTPRouteRewrite*) against the compiled table, through the same
//! `proxy::decide` the request path uses.

use crate::config::compile;
use crate::metrics::Metrics;
use crate::proxy::{decide, request_header_filters, response_header_filters, Decision};
use crate::router::RequestView;
use crate::table::{Protocol, SocketKey, Table};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sluice_proto::v1;
use std::collections::HashMap;

const LISTENER: &str = "gw/http";

fn exact(v: &str) -> v1::HttpRouteMatch {
    path(v1::PathMatchType::Exact, v)
}
fn prefix(v: &str) -> v1::HttpRouteMatch {
    path(v1::PathMatchType::PathPrefix, v)
}
fn path(kind: v1::PathMatchType, v: &str) -> v1::HttpRouteMatch {
    v1::HttpRouteMatch {
        path: Some(v1::PathMatch {
            r#type: kind as i32,
            value: v.into(),
        }),
        ..Default::default()
    }
}
fn headers(list: &[(&str, &str)]) -> v1::HttpRouteMatch {
    v1::HttpRouteMatch {
        headers: list
            .iter()
            .map(|(n, v)| v1::HeaderMatch {
                r#type: 0,
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}
fn query(list: &[(&str, &str)]) -> v1::HttpRouteMatch {
    v1::HttpRouteMatch {
        query_params: list
            .iter()
            .map(|(n, v)| v1::QueryParamMatch {
                r#type: 0,
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}
fn method(m: &str) -> v1::HttpRouteMatch {
    v1::HttpRouteMatch {
        method: m.into(),
        ..Default::default()
    }
}
fn backend(name: &str) -> v1::HttpBackend {
    v1::HttpBackend {
        name: name.into(),
        endpoints: vec![v1::Endpoint {
            address: "198.19.0.1".into(),
            port: 8080,
        }],
        ..Default::default()
    }
}
fn rule(matches: Vec<v1::HttpRouteMatch>, to: &str) -> v1::HttpRouteRule {
    v1::HttpRouteRule {
        matches,
        backends: vec![backend(to)],
        ..Default::default()
    }
}
fn route(name: &str, hostnames: &[&str], rules: Vec<v1::HttpRouteRule>) -> v1::HttpRoute {
    v1::HttpRoute {
        name: name.into(),
        listener_names: vec![LISTENER.into()],
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        rules,
        creation_timestamp: 1_700_000_000,
        namespaced_name: name.into(),
    }
}
fn listener(name: &str, hostname: &str) -> v1::Listener {
    v1::Listener {
        name: name.into(),
        port: 80,
        protocol: v1::ListenerProtocol::Http as i32,
        hostname: hostname.into(),
        ..Default::default()
    }
}
fn build(routes: Vec<v1::HttpRoute>) -> Table {
    build_with(vec![listener(LISTENER, "")], routes)
}
fn build_with(listeners: Vec<v1::Listener>, routes: Vec<v1::HttpRoute>) -> Table {
    let table = v1::RouteTable {
        listeners,
        routes,
        certificates: vec![],
    };
    compile(&table, "table", &Metrics::default()).unwrap_or_else(|v| panic!("invalid table: {v}"))
}

/// What the proxy does with a request, as the tests compare it.
#[derive(Debug, PartialEq)]
enum Out {
    /// Forwarded to this backend with this path and query.
    To(String, String),
    Redirect(u16, String),
    Status(u16),
}

struct Req<'a> {
    host: &'a str,
    method: &'a str,
    target: &'a str,
    headers: Vec<(&'a str, &'a str)>,
}

fn req(target: &str) -> Req<'_> {
    Req {
        host: "example.com",
        method: "GET",
        target,
        headers: vec![],
    }
}

impl<'a> Req<'a> {
    fn host(mut self, host: &'a str) -> Self {
        self.host = host;
        self
    }
    fn method(mut self, m: &'a str) -> Self {
        self.method = m;
        self
    }
    fn header(mut self, n: &'a str, v: &'a str) -> Self {
        self.headers.push((n, v));
        self
    }
}

fn header_map(list: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in list {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    map
}

/// Runs `r` through the table; also returns the upstream request headers after filters.
fn run_full(table: &Table, r: &Req<'_>) -> (Out, HeaderMap) {
    let (path, q) = match r.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (r.target, None),
    };
    let mut hm = header_map(&r.headers);
    let m = Method::from_bytes(r.method.as_bytes()).unwrap();
    // As the request path does: the Host without port, lowercase.
    let host = crate::hostname::normalize(r.host);
    let view = RequestView {
        host: &host,
        path,
        query: q,
        method: &m,
        headers: &hm,
    };
    let socket = SocketKey {
        address: None,
        port: 80,
    };
    let decision = decide(table, socket, Protocol::Http, &view);
    let out = match decision {
        Decision::NotFound => Out::Status(404),
        Decision::Local { status, .. } => Out::Status(status.as_u16()),
        Decision::Redirect {
            status, location, ..
        } => Out::Redirect(status.as_u16(), location),
        Decision::Forward {
            rule,
            backend,
            path_and_query,
            ..
        } => {
            let pq = path_and_query.unwrap_or_else(|| r.target.to_string());
            request_header_filters(rule, backend, &mut hm);
            (Out::To(backend.name.clone(), pq), hm.clone()).0
        }
    };
    (out, hm)
}

fn run(table: &Table, r: Req<'_>) -> Out {
    run_full(table, &r).0
}

fn to(backend: &str, pq: &str) -> Out {
    Out::To(backend.into(), pq.into())
}

#[test]
fn httproute_matching() {
    let t = build(vec![route(
        "matching",
        &[],
        vec![
            rule(vec![prefix("/")], "v1"),
            v1::HttpRouteRule {
                matches: vec![prefix("/v2"), headers(&[("version", "two")])],
                backends: vec![backend("v2")],
                ..Default::default()
            },
        ],
    )]);
    assert_eq!(run(&t, req("/")), to("v1", "/"));
    assert_eq!(run(&t, req("/example")), to("v1", "/example"));
    assert_eq!(run(&t, req("/").header("version", "one")), to("v1", "/"));
    assert_eq!(run(&t, req("/v2")), to("v2", "/v2"));
    assert_eq!(run(&t, req("/v2/example")), to("v2", "/v2/example"));
    assert_eq!(run(&t, req("/").header("version", "two")), to("v2", "/"));
    // Segment semantics: /v2example is not under /v2.
    assert_eq!(run(&t, req("/v2example")), to("v1", "/v2example"));
}

#[test]
fn httproute_exact_path_matching() {
    let t = build(vec![route(
        "exact",
        &[],
        vec![
            rule(vec![exact("/one")], "v1"),
            rule(vec![exact("/two")], "v2"),
        ],
    )]);
    assert_eq!(run(&t, req("/one")), to("v1", "/one"));
    assert_eq!(run(&t, req("/two")), to("v2", "/two"));
    assert_eq!(run(&t, req("/")), Out::Status(404));
    assert_eq!(run(&t, req("/one/example")), Out::Status(404));
    assert_eq!(run(&t, req("/two/")), Out::Status(404));
}

#[test]
fn httproute_header_matching() {
    let t = build(vec![route(
        "headers",
        &[],
        vec![
            rule(vec![headers(&[("version", "one")])], "v1"),
            rule(vec![headers(&[("version", "two")])], "v2"),
            rule(
                vec![headers(&[("version", "two"), ("color", "orange")])],
                "v1",
            ),
            rule(
                vec![
                    headers(&[("color", "blue")]),
                    headers(&[("color", "green")]),
                ],
                "v1",
            ),
            rule(
                vec![
                    headers(&[("color", "red")]),
                    headers(&[("color", "yellow")]),
                ],
                "v2",
            ),
        ],
    )]);
    assert_eq!(run(&t, req("/").header("version", "one")), to("v1", "/"));
    assert_eq!(run(&t, req("/").header("version", "two")), to("v2", "/"));
    // More header matches win.
    assert_eq!(
        run(
            &t,
            req("/").header("version", "two").header("color", "orange")
        ),
        to("v1", "/")
    );
    // Equal counts: the first rule.
    assert_eq!(
        run(
            &t,
            req("/").header("version", "two").header("color", "blue")
        ),
        to("v2", "/")
    );
    assert_eq!(run(&t, req("/").header("color", "blue")), to("v1", "/"));
    assert_eq!(run(&t, req("/").header("color", "green")), to("v1", "/"));
    assert_eq!(run(&t, req("/").header("color", "red")), to("v2", "/"));
    assert_eq!(run(&t, req("/").header("color", "yellow")), to("v2", "/"));
    // Names are case-insensitive, values are not.
    assert_eq!(run(&t, req("/").header("VERSION", "one")), to("v1", "/"));
    assert_eq!(run(&t, req("/").header("version", "ONE")), Out::Status(404));
    assert_eq!(run(&t, req("/")), Out::Status(404));
}

#[test]
fn httproute_query_param_matching() {
    let t = build(vec![route(
        "query",
        &[],
        vec![
            rule(vec![query(&[("animal", "whale")])], "v1"),
            rule(vec![query(&[("animal", "dolphin")])], "v2"),
            rule(
                vec![query(&[("animal", "dolphin"), ("color", "blue")])],
                "v3",
            ),
            rule(vec![query(&[("ANIMAL", "Whale")])], "v3"),
        ],
    )]);
    assert_eq!(run(&t, req("/?animal=whale")), to("v1", "/?animal=whale"));
    assert_eq!(
        run(&t, req("/?animal=dolphin")),
        to("v2", "/?animal=dolphin")
    );
    assert_eq!(
        run(&t, req("/?animal=dolphin&color=blue")),
        to("v3", "/?animal=dolphin&color=blue")
    );
    assert_eq!(run(&t, req("/?ANIMAL=Whale")), to("v3", "/?ANIMAL=Whale"));
    // Case-sensitive names; percent-decoded values; the first occurrence counts.
    assert_eq!(run(&t, req("/?Animal=whale")), Out::Status(404));
    assert_eq!(
        run(&t, req("/?animal=%77hale")),
        to("v1", "/?animal=%77hale")
    );
    assert_eq!(
        run(&t, req("/?animal=whale&animal=dolphin")),
        to("v1", "/?animal=whale&animal=dolphin")
    );
    assert_eq!(run(&t, req("/")), Out::Status(404));
}

#[test]
fn httproute_method_matching() {
    let t = build(vec![route(
        "method",
        &[],
        vec![
            rule(vec![method("POST")], "v1"),
            rule(vec![method("GET")], "v2"),
            // Method beats no method at equal path; header count comes after method.
            rule(vec![prefix("/path1")], "v3"),
            rule(
                vec![v1::HttpRouteMatch {
                    method: "GET".into(),
                    ..prefix("/path1")
                }],
                "v1",
            ),
            rule(
                vec![v1::HttpRouteMatch {
                    headers: headers(&[("version", "one")]).headers,
                    ..prefix("/path2")
                }],
                "v2",
            ),
            rule(
                vec![v1::HttpRouteMatch {
                    method: "POST".into(),
                    ..prefix("/path2")
                }],
                "v3",
            ),
        ],
    )]);
    assert_eq!(run(&t, req("/").method("POST")), to("v1", "/"));
    assert_eq!(run(&t, req("/").method("GET")), to("v2", "/"));
    assert_eq!(run(&t, req("/").method("HEAD")), Out::Status(404));
    assert_eq!(run(&t, req("/path1").method("GET")), to("v1", "/path1"));
    assert_eq!(run(&t, req("/path1").method("PUT")), to("v3", "/path1"));
    assert_eq!(
        run(&t, req("/path2").method("POST").header("version", "one")),
        to("v3", "/path2")
    );
    assert_eq!(
        run(&t, req("/path2").method("PUT").header("version", "one")),
        to("v2", "/path2")
    );
}

#[test]
fn httproute_path_match_order() {
    // Listed in the order least likely to pass by accident.
    let t = build(vec![route(
        "order",
        &[],
        vec![
            rule(vec![prefix("/match")], "v3"),
            rule(vec![prefix("/match/prefix")], "v1"),
            rule(vec![prefix("/match/prefix/one")], "v2"),
            rule(vec![exact("/match")], "v1"),
            rule(vec![exact("/match/exact")], "v2"),
            rule(vec![exact("/match/exact/one")], "v3"),
        ],
    )]);
    assert_eq!(
        run(&t, req("/match/exact/one")),
        to("v3", "/match/exact/one")
    );
    assert_eq!(run(&t, req("/match/exact")), to("v2", "/match/exact"));
    assert_eq!(run(&t, req("/match")), to("v1", "/match"));
    assert_eq!(
        run(&t, req("/match/prefix/one/any")),
        to("v2", "/match/prefix/one/any")
    );
    assert_eq!(
        run(&t, req("/match/prefix/any")),
        to("v1", "/match/prefix/any")
    );
    assert_eq!(run(&t, req("/match/any")), to("v3", "/match/any"));
}

#[test]
fn regular_expression_paths_rank_between_exact_and_prefix() {
    let t = build(vec![route(
        "re",
        &[],
        vec![
            rule(vec![prefix("/api")], "prefix"),
            rule(
                vec![path(
                    v1::PathMatchType::RegularExpression,
                    "/api/v[0-9]+/.*",
                )],
                "regex",
            ),
            rule(vec![exact("/api/v1/health")], "exact"),
        ],
    )]);
    assert_eq!(
        run(&t, req("/api/v1/health")),
        to("exact", "/api/v1/health")
    );
    assert_eq!(run(&t, req("/api/v2/users")), to("regex", "/api/v2/users"));
    assert_eq!(run(&t, req("/api/vx/users")), to("prefix", "/api/vx/users"));
    // Anchored: a regex must match the whole path.
    assert_eq!(run(&t, req("/x/api/v1/a")), Out::Status(404));
}

#[test]
fn ties_across_routes_go_to_the_oldest_then_alphabetical() {
    let mut old = route("b/old", &[], vec![rule(vec![prefix("/")], "old")]);
    old.creation_timestamp = 100;
    let new = route("a/new", &[], vec![rule(vec![prefix("/")], "new")]);
    let t = build(vec![new.clone(), old]);
    assert_eq!(run(&t, req("/")), to("old", "/"));
    let mut same_age = route("c/later-name", &[], vec![rule(vec![prefix("/")], "c")]);
    same_age.creation_timestamp = new.creation_timestamp;
    let t = build(vec![same_age, new]);
    assert_eq!(run(&t, req("/")), to("new", "/"));
}

#[test]
fn httproute_hostname_intersection() {
    let listeners = vec![
        listener("gw/specific", "very.specific.com"),
        listener("gw/wildcard", "*.wildcard.io"),
        listener("gw/another", "*.anotherwildcard.io"),
    ];
    let on = |l: &str, mut r: v1::HttpRoute| {
        r.listener_names = vec![l.into()];
        r
    };
    let t = build_with(
        listeners,
        vec![
            on(
                "gw/specific",
                route(
                    "r1",
                    &["non.matching.com", "*.specific.com"],
                    vec![rule(vec![prefix("/s1")], "v1")],
                ),
            ),
            on(
                "gw/wildcard",
                route(
                    "r2",
                    &["bar.wildcard.io", "foo.bar.wildcard.io", "wildcard.io"],
                    vec![rule(vec![prefix("/s2")], "v2")],
                ),
            ),
            on(
                "gw/another",
                route(
                    "r3",
                    &["*.anotherwildcard.io"],
                    vec![rule(vec![prefix("/s3")], "v3")],
                ),
            ),
            on(
                "gw/specific",
                route(
                    "r4",
                    &["non.matching.com"],
                    vec![rule(vec![prefix("/s4")], "v3")],
                ),
            ),
        ],
    );
    assert_eq!(
        run(&t, req("/s1").host("very.specific.com")),
        to("v1", "/s1")
    );
    assert_eq!(
        run(&t, req("/s1").host("non.matching.com")),
        Out::Status(404)
    );
    assert_eq!(
        run(&t, req("/s1").host("foo.specific.com")),
        Out::Status(404)
    );
    assert_eq!(run(&t, req("/s2").host("bar.wildcard.io")), to("v2", "/s2"));
    assert_eq!(
        run(&t, req("/s2").host("foo.bar.wildcard.io")),
        to("v2", "/s2")
    );
    assert_eq!(
        run(&t, req("/s2").host("foo.wildcard.io")),
        Out::Status(404)
    );
    assert_eq!(run(&t, req("/s2").host("wildcard.io")), Out::Status(404));
    assert_eq!(
        run(&t, req("/s3").host("foo.anotherwildcard.io")),
        to("v3", "/s3")
    );
    assert_eq!(
        run(&t, req("/s3").host("foo.bar.anotherwildcard.io")),
        to("v3", "/s3")
    );
    assert_eq!(
        run(&t, req("/s3").host("anotherwildcard.io")),
        Out::Status(404)
    );
    // r4 does not intersect its listener: not attached.
    assert_eq!(
        run(&t, req("/s4").host("very.specific.com")),
        Out::Status(404)
    );
    // Host header with a port and upper case.
    let (out, _) = run_full(&t, &req("/s1").host("Very.Specific.com:80"));
    assert_eq!(out, to("v1", "/s1"));
}

#[test]
fn exact_route_hostnames_beat_wildcards_and_fall_back_when_no_rule_matches() {
    let t = build(vec![
        route(
            "wild",
            &["*.example.com"],
            vec![rule(vec![prefix("/")], "wild")],
        ),
        route(
            "exact",
            &["foo.example.com"],
            vec![rule(vec![prefix("/only")], "exact")],
        ),
        route("any", &[], vec![rule(vec![prefix("/")], "any")]),
    ]);
    assert_eq!(
        run(&t, req("/only").host("foo.example.com")),
        to("exact", "/only")
    );
    assert_eq!(
        run(&t, req("/other").host("foo.example.com")),
        to("wild", "/other")
    );
    assert_eq!(
        run(&t, req("/only").host("bar.example.com")),
        to("wild", "/only")
    );
    assert_eq!(
        run(&t, req("/only").host("example.org")),
        to("any", "/only")
    );
}

#[test]
fn httproute_weight_spreads_by_weight_and_zero_weights_answer_500() {
    let weighted = |name: &str, w: u32| v1::HttpBackend {
        weight: Some(w),
        ..backend(name)
    };
    let t = build(vec![route(
        "weights",
        &[],
        vec![v1::HttpRouteRule {
            backends: vec![weighted("v1", 70), weighted("v2", 20), weighted("v3", 10)],
            ..Default::default()
        }],
    )]);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..10_000 {
        match run(&t, req("/")) {
            Out::To(b, _) => *seen.entry(b).or_default() += 1,
            other => panic!("{other:?}"),
        }
    }
    for (name, share) in [("v1", 0.7), ("v2", 0.2), ("v3", 0.1)] {
        let got = seen[name] as f64 / 10_000.0;
        assert!(
            (got - share).abs() < 0.03,
            "{name}: {got} vs {share} ({seen:?})"
        );
    }
    let t = build(vec![route(
        "zero",
        &[],
        vec![v1::HttpRouteRule {
            backends: vec![weighted("v1", 0), weighted("v2", 0)],
            ..Default::default()
        }],
    )]);
    assert_eq!(run(&t, req("/")), Out::Status(500));
}

#[test]
fn invalid_backends_and_rules_without_backends_answer_500() {
    let invalid = v1::HttpBackend {
        invalid: true,
        ..backend("missing")
    };
    let t = build(vec![route(
        "r",
        &[],
        vec![
            v1::HttpRouteRule {
                matches: vec![prefix("/invalid")],
                backends: vec![invalid],
                ..Default::default()
            },
            v1::HttpRouteRule {
                matches: vec![prefix("/none")],
                ..Default::default()
            },
            v1::HttpRouteRule {
                matches: vec![prefix("/empty")],
                backends: vec![v1::HttpBackend {
                    endpoints: vec![],
                    ..backend("empty")
                }],
                ..Default::default()
            },
        ],
    )]);
    assert_eq!(run(&t, req("/invalid")), Out::Status(500));
    assert_eq!(run(&t, req("/none")), Out::Status(500));
    assert_eq!(run(&t, req("/empty")), Out::Status(503));
    assert_eq!(run(&t, req("/elsewhere")), Out::Status(404));
}

fn modifier(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> v1::HeaderModifier {
    let hv = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(n, v)| v1::HeaderValue {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect()
    };
    v1::HeaderModifier {
        set: hv(set),
        add: hv(add),
        remove: remove.iter().map(|s| s.to_string()).collect(),
    }
}
fn filter(f: v1::http_route_filter::Filter) -> v1::HttpRouteFilter {
    v1::HttpRouteFilter { filter: Some(f) }
}

fn values(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[test]
fn httproute_request_and_response_header_modifier() {
    use v1::http_route_filter::Filter as F;
    let t = build(vec![route(
        "hdr",
        &[],
        vec![
            v1::HttpRouteRule {
                matches: vec![prefix("/set")],
                filters: vec![filter(F::RequestHeaderModifier(modifier(
                    &[("X-Header-Set", "set-overwrites-values")],
                    &[],
                    &[],
                )))],
                backends: vec![backend("v1")],
                ..Default::default()
            },
            v1::HttpRouteRule {
                matches: vec![prefix("/add")],
                filters: vec![filter(F::RequestHeaderModifier(modifier(
                    &[],
                    &[("X-Header-Add", "add-appends-values")],
                    &[],
                )))],
                backends: vec![backend("v1")],
                ..Default::default()
            },
            v1::HttpRouteRule {
                matches: vec![prefix("/remove")],
                filters: vec![filter(F::RequestHeaderModifier(modifier(
                    &[],
                    &[],
                    &["X-Header-Remove"],
                )))],
                backends: vec![backend("v1")],
                ..Default::default()
            },
            v1::HttpRouteRule {
                matches: vec![prefix("/multiple")],
                filters: vec![filter(F::RequestHeaderModifier(modifier(
                    &[
                        ("X-Header-Set-1", "header-set-1"),
                        ("X-Header-Set-2", "header-set-2"),
                    ],
                    &[
                        ("X-Header-Add-1", "header-add-1"),
                        ("X-Header-Add-2", "header-add-2"),
                        ("X-Header-Add-3", "header-add-3"),
                    ],
                    &["X-Header-Remove-1", "X-Header-Remove-2"],
                )))],
                backends: vec![backend("v1")],
                ..Default::default()
            },
            v1::HttpRouteRule {
                matches: vec![prefix("/response")],
                filters: vec![filter(F::ResponseHeaderModifier(modifier(
                    &[("X-Set", "s")],
                    &[("X-Add", "a")],
                    &["Server"],
                )))],
                backends: vec![v1::HttpBackend {
                    filters: vec![filter(F::RequestHeaderModifier(modifier(
                        &[("X-Backend", "v1")],
                        &[],
                        &[],
                    )))],
                    ..backend("v1")
                }],
                ..Default::default()
            },
        ],
    )]);
    let (_, h) = run_full(&t, &req("/set").header("Some-Other-Header", "val"));
    assert_eq!(values(&h, "x-header-set"), ["set-overwrites-values"]);
    assert_eq!(values(&h, "some-other-header"), ["val"]);
    let (_, h) = run_full(&t, &req("/set").header("X-Header-Set", "some-other-value"));
    assert_eq!(values(&h, "x-header-set"), ["set-overwrites-values"]);
    let (_, h) = run_full(&t, &req("/add").header("X-Header-Add", "some-other-value"));
    // Appended: the backend sees "some-other-value,add-appends-values".
    assert_eq!(
        values(&h, "x-header-add"),
        ["some-other-value", "add-appends-values"]
    );
    let (_, h) = run_full(&t, &req("/remove").header("X-Header-Remove", "val"));
    assert!(values(&h, "x-header-remove").is_empty());
    let (_, h) = run_full(
        &t,
        &req("/multiple")
            .header("X-Header-Set-2", "set-val-2")
            .header("X-Header-Add-2", "add-val-2")
            .header("X-Header-Remove-2", "remove-val-2")
            .header("Another-Header", "another-header-val"),
    );
    assert_eq!(values(&h, "x-header-set-1"), ["header-set-1"]);
    assert_eq!(values(&h, "x-header-set-2"), ["header-set-2"]);
    assert_eq!(values(&h, "x-header-add-1"), ["header-add-1"]);
    assert_eq!(values(&h, "x-header-add-2"), ["add-val-2", "header-add-2"]);
    assert_eq!(values(&h, "x-header-add-3"), ["header-add-3"]);
    assert_eq!(values(&h, "another-header"), ["another-header-val"]);
    assert!(values(&h, "x-header-remove-2").is_empty());
    // Backend-level request filter, and the response filter on the way back.
    let (_, h) = run_full(&t, &req("/response"));
    assert_eq!(values(&h, "x-backend"), ["v1"]);
    let view_h = HeaderMap::new();
    let m = Method::GET;
    let view = RequestView {
        host: "example.com",
        path: "/response",
        query: None,
        method: &m,
        headers: &view_h,
    };
    let Decision::Forward { rule, backend, .. } = decide(
        &t,
        SocketKey {
            address: None,
            port: 80,
        },
        Protocol::Http,
        &view,
    ) else {
        panic!("not forwarded");
    };
    let mut response = header_map(&[("server", "nginx"), ("x-set", "old"), ("x-add", "b")]);
    response_header_filters(rule, backend, &mut response);
    assert_eq!(values(&response, "x-set"), ["s"]);
    assert_eq!(values(&response, "x-add"), ["b", "a"]);
    assert!(values(&response, "server").is_empty());
}

fn redirect(
    scheme: &str,
    host: &str,
    path: Option<(v1::PathModifierType, &str)>,
    port: Option<u32>,
    status: Option<u32>,
) -> v1::HttpRouteFilter {
    filter(v1::http_route_filter::Filter::RequestRedirect(
        v1::RequestRedirect {
            scheme: scheme.into(),
            hostname: host.into(),
            path: path.map(|(t, v)| v1::PathModifier {
                r#type: t as i32,
                value: v.into(),
            }),
            port,
            status_code: status,
        },
    ))
}

#[test]
fn httproute_redirects_host_path_port_scheme_and_status() {
    use v1::PathModifierType::{ReplaceFullPath as Full, ReplacePrefixMatch as Prefix};
    let r = |p: &str, f: v1::HttpRouteFilter| v1::HttpRouteRule {
        matches: vec![prefix(p)],
        filters: vec![f],
        ..Default::default()
    };
    let t = build(vec![route(
        "redirect",
        &[],
        vec![
            r(
                "/hostname-redirect",
                redirect("", "example.org", None, None, None),
            ),
            r(
                "/status-code-301",
                redirect("", "example.org", None, None, Some(301)),
            ),
            r(
                "/host-and-status",
                redirect("", "example.org", None, None, Some(301)),
            ),
            r("/scheme-redirect", redirect("https", "", None, None, None)),
            r(
                "/scheme-and-host",
                redirect("https", "example.org", None, None, None),
            ),
            r(
                "/scheme-and-status",
                redirect("https", "", None, None, Some(301)),
            ),
            r(
                "/scheme-and-port",
                redirect("https", "", None, Some(8443), None),
            ),
            r("/port-redirect", redirect("", "", None, Some(8083), None)),
            r("/port-80", redirect("", "", None, Some(80), None)),
            r(
                "/original-prefix",
                redirect("", "", Some((Prefix, "/replacement-prefix")), None, None),
            ),
            r(
                "/full",
                redirect("", "", Some((Full, "/full-path-replacement")), None, None),
            ),
            r(
                "/path-and-host",
                redirect(
                    "",
                    "example.org",
                    Some((Prefix, "/replacement-prefix")),
                    None,
                    None,
                ),
            ),
            r(
                "/path-and-status",
                redirect(
                    "",
                    "",
                    Some((Full, "/full-path-replacement")),
                    None,
                    Some(301),
                ),
            ),
            r("/http-scheme", redirect("http", "", None, None, Some(307))),
            r("/r303", redirect("", "", None, None, Some(303))),
            r("/r308", redirect("", "", None, None, Some(308))),
            r(
                "/to-root",
                redirect("", "", Some((Prefix, "/")), None, None),
            ),
        ],
    )]);
    let go = |p: &str| run(&t, req(p).host("example.com:80"));
    let at = |s: u16, l: &str| Out::Redirect(s, l.to_string());
    assert_eq!(
        go("/hostname-redirect"),
        at(302, "http://example.org/hostname-redirect")
    );
    assert_eq!(
        go("/status-code-301"),
        at(301, "http://example.org/status-code-301")
    );
    assert_eq!(
        go("/host-and-status"),
        at(301, "http://example.org/host-and-status")
    );
    assert_eq!(
        go("/scheme-redirect"),
        at(302, "https://example.com/scheme-redirect")
    );
    assert_eq!(
        go("/scheme-and-host"),
        at(302, "https://example.org/scheme-and-host")
    );
    assert_eq!(
        go("/scheme-and-status"),
        at(301, "https://example.com/scheme-and-status")
    );
    assert_eq!(
        go("/scheme-and-port"),
        at(302, "https://example.com:8443/scheme-and-port")
    );
    assert_eq!(
        go("/port-redirect"),
        at(302, "http://example.com:8083/port-redirect")
    );
    assert_eq!(go("/port-80"), at(302, "http://example.com/port-80"));
    assert_eq!(
        go("/original-prefix/lemon"),
        at(302, "http://example.com/replacement-prefix/lemon")
    );
    assert_eq!(
        go("/original-prefix"),
        at(302, "http://example.com/replacement-prefix")
    );
    assert_eq!(
        go("/full/path/original"),
        at(302, "http://example.com/full-path-replacement")
    );
    assert_eq!(
        go("/path-and-host"),
        at(302, "http://example.org/replacement-prefix")
    );
    assert_eq!(
        go("/path-and-status"),
        at(301, "http://example.com/full-path-replacement")
    );
    assert_eq!(
        go("/http-scheme"),
        at(307, "http://example.com/http-scheme")
    );
    assert_eq!(go("/r303?a=b"), at(303, "http://example.com/r303?a=b"));
    assert_eq!(go("/r308"), at(308, "http://example.com/r308"));
    assert_eq!(go("/to-root/x/y"), at(302, "http://example.com/x/y"));
    assert_eq!(go("/to-root"), at(302, "http://example.com/"));
}

#[test]
fn redirect_port_defaults_follow_the_listener() {
    let mut l = listener(LISTENER, "");
    l.port = 8080;
    let t = build_with(
        vec![l],
        vec![route(
            "r",
            &[],
            vec![v1::HttpRouteRule {
                filters: vec![redirect("", "example.org", None, None, None)],
                ..Default::default()
            }],
        )],
    );
    let m = Method::GET;
    let h = HeaderMap::new();
    let view = RequestView {
        host: "example.com",
        path: "/x",
        query: None,
        method: &m,
        headers: &h,
    };
    match decide(
        &t,
        SocketKey {
            address: None,
            port: 8080,
        },
        Protocol::Http,
        &view,
    ) {
        Decision::Redirect { location, .. } => assert_eq!(location, "http://example.org:8080/x"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn httproute_rewrite_path_and_host() {
    use v1::http_route_filter::Filter as F;
    use v1::PathModifierType::{ReplaceFullPath as Full, ReplacePrefixMatch as Prefix};
    let rw = |host: &str, path: Option<(v1::PathModifierType, &str)>| {
        filter(F::UrlRewrite(v1::UrlRewrite {
            hostname: host.into(),
            path: path.map(|(t, v)| v1::PathModifier {
                r#type: t as i32,
                value: v.into(),
            }),
        }))
    };
    let modify = filter(F::RequestHeaderModifier(modifier(
        &[("X-Header-Set", "set-overwrites-values")],
        &[
            ("X-Header-Add", "header-val-1"),
            ("X-Header-Add-Append", "header-val-2"),
        ],
        &["X-Header-Remove"],
    )));
    let r = |p: &str, filters: Vec<v1::HttpRouteFilter>| v1::HttpRouteRule {
        matches: vec![prefix(p)],
        filters,
        backends: vec![backend("v1")],
        ..Default::default()
    };
    let t = build(vec![route(
        "rewrite",
        &[],
        vec![
            r("/prefix/one", vec![rw("", Some((Prefix, "/one")))]),
            r("/strip-prefix", vec![rw("", Some((Prefix, "/")))]),
            r("/full/one", vec![rw("", Some((Full, "/one")))]),
            r(
                "/full/rewrite-path-and-modify-headers",
                vec![rw("", Some((Full, "/test"))), modify.clone()],
            ),
            r(
                "/prefix/rewrite-path-and-modify-headers",
                vec![rw("", Some((Prefix, "/prefix"))), modify],
            ),
            r("/host", vec![rw("one.example.org", None)]),
        ],
    )]);
    assert_eq!(run(&t, req("/prefix/one/two")), to("v1", "/one/two"));
    assert_eq!(run(&t, req("/prefix/one")), to("v1", "/one"));
    assert_eq!(run(&t, req("/strip-prefix/three")), to("v1", "/three"));
    assert_eq!(run(&t, req("/strip-prefix")), to("v1", "/"));
    assert_eq!(run(&t, req("/full/one/two?q=1")), to("v1", "/one?q=1"));
    let sent = req("/full/rewrite-path-and-modify-headers/test")
        .header("X-Header-Remove", "remove-val")
        .header("X-Header-Add-Append", "append-val-1")
        .header("X-Header-Set", "set-val");
    let (out, h) = run_full(&t, &sent);
    assert_eq!(out, to("v1", "/test"));
    assert_eq!(values(&h, "x-header-add"), ["header-val-1"]);
    assert_eq!(
        values(&h, "x-header-add-append"),
        ["append-val-1", "header-val-2"]
    );
    assert_eq!(values(&h, "x-header-set"), ["set-overwrites-values"]);
    assert!(values(&h, "x-header-remove").is_empty());
    assert_eq!(
        run(&t, req("/prefix/rewrite-path-and-modify-headers/one")),
        to("v1", "/prefix/one")
    );
    // Host rewrite: the decision carries the new Host.
    let m = Method::GET;
    let hm = HeaderMap::new();
    let view = RequestView {
        host: "example.com",
        path: "/host",
        query: None,
        method: &m,
        headers: &hm,
    };
    match decide(
        &t,
        SocketKey {
            address: None,
            port: 80,
        },
        Protocol::Http,
        &view,
    ) {
        Decision::Forward {
            host: Some(h),
            path_and_query: None,
            ..
        } => assert_eq!(h, "one.example.org"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn listener_hostname_selects_among_listeners_sharing_a_port() {
    let t = build_with(
        vec![
            listener("gw/any", ""),
            listener("gw/foo", "foo.example.com"),
            listener("gw/wild", "*.example.com"),
        ],
        vec![
            v1::HttpRoute {
                listener_names: vec!["gw/any".into()],
                ..route("any", &[], vec![rule(vec![], "any")])
            },
            v1::HttpRoute {
                listener_names: vec!["gw/foo".into()],
                ..route("foo", &[], vec![rule(vec![], "foo")])
            },
            v1::HttpRoute {
                listener_names: vec!["gw/wild".into()],
                ..route("wild", &[], vec![rule(vec![], "wild")])
            },
        ],
    );
    assert_eq!(run(&t, req("/").host("foo.example.com")), to("foo", "/"));
    assert_eq!(
        run(&t, req("/").host("Bar.Example.com:80")),
        to("wild", "/")
    );
    assert_eq!(run(&t, req("/").host("other.org")), to("any", "/"));
}

fn violations(table: v1::RouteTable) -> Vec<String> {
    match compile(&table, "table", &Metrics::default()) {
        Ok(_) => vec![],
        Err(v) => v
            .violations()
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect(),
    }
}

#[test]
fn invalid_tables_name_the_field() {
    let mut bad_route = route(
        "r",
        &["*.ok.com", "Bad_Host"],
        vec![
            rule(vec![prefix("/ok")], "v1"),
            v1::HttpRouteRule {
                matches: vec![
                    prefix("/x"),
                    path(v1::PathMatchType::RegularExpression, "/(unclosed"),
                ],
                backends: vec![v1::HttpBackend {
                    weight: Some(2_000_000),
                    endpoints: vec![v1::Endpoint {
                        address: "not-an-ip".into(),
                        port: 0,
                    }],
                    ..backend("b")
                }],
                ..Default::default()
            },
        ],
    );
    bad_route.listener_names.push("gw/missing".into());
    let errors = violations(v1::RouteTable {
        listeners: vec![
            listener(LISTENER, ""),
            v1::Listener {
                protocol: v1::ListenerProtocol::Https as i32,
                ..listener("gw/https", "")
            },
            v1::Listener {
                port: 70000,
                ..listener("gw/port", "")
            },
        ],
        routes: vec![bad_route],
        certificates: vec![v1::Certificate {
            name: "c".into(),
            cert_pem: b"junk".to_vec(),
            key_pem: vec![],
        }],
    });
    let expect = [
        "table.certificates[0].cert_pem",
        "table.listeners[1].protocol",
        "table.listeners[2].port",
        "table.routes[0].listener_names[1]",
        "table.routes[0].hostnames[1]",
        "table.routes[0].rules[1].matches[1].path.value",
        "table.routes[0].rules[1].backends[0].weight",
        "table.routes[0].rules[1].backends[0].endpoints[0].address",
        "table.routes[0].rules[1].backends[0].endpoints[0].port",
    ];
    for field in expect {
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{field}:"))),
            "{field} not in {errors:#?}"
        );
    }
    // listeners[1]: the HTTPS listener on port 80 clashes with the HTTP one, and has no
    // certificate.
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("table.listeners[1].certificate_names:")),
        "{errors:#?}"
    );
}

#[test]
fn filter_combinations_the_spec_forbids_are_refused() {
    use v1::http_route_filter::Filter as F;
    let rewrite = filter(F::UrlRewrite(v1::UrlRewrite {
        hostname: String::new(),
        path: Some(v1::PathModifier {
            r#type: v1::PathModifierType::ReplacePrefixMatch as i32,
            value: "/x".into(),
        }),
    }));
    let errors = violations(v1::RouteTable {
        listeners: vec![listener(LISTENER, "")],
        routes: vec![route(
            "r",
            &[],
            vec![
                v1::HttpRouteRule {
                    matches: vec![exact("/e")],
                    filters: vec![redirect("ftp", "", None, None, Some(200)), rewrite],
                    ..Default::default()
                },
                v1::HttpRouteRule {
                    backends: vec![v1::HttpBackend {
                        filters: vec![redirect("", "", None, None, None)],
                        ..backend("b")
                    }],
                    ..Default::default()
                },
            ],
        )],
        certificates: vec![],
    });
    for field in [
        "table.routes[0].rules[0].filters[0].request_redirect.scheme",
        "table.routes[0].rules[0].filters[0].request_redirect.status_code",
        "table.routes[0].rules[0].filters:",
        "table.routes[0].rules[0].matches[0].path.type",
        "table.routes[0].rules[1].backends[0].filters[0]",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(field)),
            "{field} not in {errors:#?}"
        );
    }
}
