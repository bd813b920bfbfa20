//! Pure translation tests: the seed manifests and the Gateway API's edge cases, checked on
//! the sluiced services, the L7 route table and the statuses the controller would write.

use serde_json::Value;
use sluice_gateway::config::{NatMode, Pool, ServiceRef, Settings};
use sluice_gateway::model::World;
use sluice_gateway::static_source::parse_documents;
use sluice_gateway::translate::{
    intersect_hostnames, translate, weighted_backends, Outcome, ResolvedBackend,
};
use sluice_proto::v1;

const NOW: &str = "2026-11-26T20:00:00Z";

fn seed(file: &str) -> String {
    let path = format!("{}/tests/seed/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn world(yaml: &[&str]) -> World {
    let objects: Vec<Value> = yaml
        .iter()
        .flat_map(|y| parse_documents(y).expect("yaml parses"))
        .collect();
    let (world, errors) = World::from_objects(&objects);
    assert!(errors.is_empty(), "{errors:?}");
    world
}

fn compat_settings() -> Settings {
    Settings {
        loxilb_compat: true,
        pools: vec![Pool::parse("defaultPool=192.168.80.90/32").unwrap()],
        snat_pool: Some("snat".into()),
        ..Settings::default()
    }
}

fn slice(ns: &str, service: &str, port: u16, protocol: &str, addrs: &[(&str, bool)]) -> String {
    let endpoints: String = addrs
        .iter()
        .map(|(a, ready)| format!("\n  - addresses: [\"{a}\"]\n    conditions: {{ready: {ready}}}"))
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-abc\n  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: IPv4\nports:\n- port: {port}\n  protocol: {protocol}\nendpoints:{endpoints}\n"
    )
}

/// The condition `type_` of a status's conditions array.
fn cond<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} in {conditions}"))
}

fn assert_cond(conditions: &Value, type_: &str, status: &str, reason: &str) {
    let c = cond(conditions, type_);
    assert_eq!(c["status"], status, "{type_}: {c}");
    assert_eq!(c["reason"], reason, "{type_}: {c}");
}

fn listener<'a>(gw_status: &'a Value, name: &str) -> &'a Value {
    gw_status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

fn route_parent(out: &Outcome, kind: &str, ns: &str, name: &str) -> Value {
    let status = out
        .status_of(kind, ns, name)
        .unwrap_or_else(|| panic!("no status for {kind} {ns}/{name}"));
    let parents = status["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 1, "{status}");
    parents[0]["conditions"].clone()
}

fn backends(service: &v1::Service) -> Vec<(String, u32, u32)> {
    service
        .backends
        .iter()
        .map(|b| (b.address.clone(), b.port, b.weight.unwrap_or(1)))
        .collect()
}

#[test]
fn seed_tcp_and_udp_routes_in_loxilb_compat_mode() {
    let w = world(&[
        &seed("gatewayclass.yaml"),
        &seed("gateway.yaml"),
        &seed("tcpRoute.yaml"),
        &seed("udpRoute.yaml"),
        &slice(
            "kube-system",
            "tcproute-lb-service",
            8080,
            "TCP",
            &[
                ("198.19.0.1", true),
                ("198.19.0.2", true),
                ("198.19.0.3", false),
            ],
        ),
        &slice(
            "kube-system",
            "udproute-lb-service",
            5353,
            "UDP",
            &[("198.19.0.1", true)],
        ),
    ]);
    let out = translate(&w, &compat_settings(), NOW);

    let tcp = &out.services["gw.kube-system.test-gateway.tcp-listener"];
    assert_eq!((tcp.vip.as_str(), tcp.port), ("192.168.80.90", 21818));
    assert_eq!(tcp.protocol, v1::Protocol::Tcp as i32);
    assert_eq!(
        tcp.mode,
        v1::NatMode::FullNat as i32,
        "loxilb.io/lbmode: fullnat"
    );
    assert_eq!(tcp.snat_pool, "snat");
    // Ready endpoints only, with the EndpointSlice's port.
    assert_eq!(
        backends(tcp),
        [
            ("198.19.0.1".into(), 8080, 500),
            ("198.19.0.2".into(), 8080, 500)
        ]
    );
    assert_eq!(tcp.labels["sluice.io/managed-by"], "sluice-gateway");
    assert_eq!(tcp.labels["sluice.io/route"], "test-tcproute");
    assert_eq!(tcp.labels["sluice.io/gateway"], "test-gateway");
    assert!(
        tcp.health_check.is_none(),
        "liveness is commented out in the seed"
    );

    let udp = &out.services["gw.kube-system.test-gateway.udp-listener"];
    assert_eq!(
        (udp.vip.as_str(), udp.port, udp.protocol),
        ("192.168.80.90", 21819, v1::Protocol::Udp as i32)
    );
    assert_eq!(backends(udp), [("198.19.0.1".into(), 5353, 1000)]);
    // HTTP listeners need a proxy; none configured: no service for them.
    assert_eq!(out.services.len(), 2, "{:?}", out.services.keys());

    // serviceBehaviour: create -> the Services kube-loxilb would create.
    let created: Vec<&str> = out
        .created_services
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(created, ["tcproute-lb-service", "udproute-lb-service"]);
    assert_eq!(
        out.created_services[0]["spec"]["selector"]["app"],
        "tcproute-pod"
    );
    assert_eq!(
        out.created_services[1]["spec"]["ports"][0]["protocol"],
        "UDP"
    );
    assert!(out.stale_services.is_empty());

    // Once created (now in the cache with our label) it is not created again; when its route
    // is gone it is stale and gets deleted; a same-named Service of someone else never is.
    let mut w2 = w.clone();
    for svc in &out.created_services {
        w2.insert(svc).unwrap();
    }
    let again = translate(&w2, &compat_settings(), NOW);
    assert!(again.created_services.is_empty() && again.stale_services.is_empty());
    w2.l4_routes
        .retain(|(kind, _, _), _| *kind != sluice_gateway::model::L4Kind::Tcp);
    let stale = translate(&w2, &compat_settings(), NOW).stale_services;
    assert_eq!(
        stale,
        [("kube-system".to_string(), "tcproute-lb-service".to_string())]
    );
    let mut foreign = out.created_services[0].clone();
    foreign["metadata"]["labels"] = serde_json::json!({"app": "mine"});
    w2.insert(&foreign).unwrap();
    assert!(translate(&w2, &compat_settings(), NOW)
        .stale_services
        .is_empty());

    let class = out.status_of("GatewayClass", "", "test-gc").unwrap();
    assert_cond(&class["conditions"], "Accepted", "True", "Accepted");
    assert_cond(
        &class["conditions"],
        "SupportedVersion",
        "True",
        "SupportedVersion",
    );

    let gw = out
        .status_of("Gateway", "kube-system", "test-gateway")
        .unwrap();
    assert_eq!(gw["addresses"][0]["value"], "192.168.80.90");
    assert_cond(&gw["conditions"], "Programmed", "True", "Programmed");
    // One of four listeners (HTTPS without its Secret) is invalid.
    assert_cond(&gw["conditions"], "Accepted", "True", "ListenersNotValid");
    let tcp_l = listener(gw, "tcp-listener");
    assert_eq!(tcp_l["attachedRoutes"], 1);
    assert_eq!(tcp_l["supportedKinds"][0]["kind"], "TCPRoute");
    assert_cond(&tcp_l["conditions"], "Programmed", "True", "Programmed");
    assert_cond(&tcp_l["conditions"], "Conflicted", "False", "NoConflicts");
    let https = listener(gw, "https-listener");
    assert_cond(
        &https["conditions"],
        "ResolvedRefs",
        "False",
        "InvalidCertificateRef",
    );
    assert_cond(&https["conditions"], "Programmed", "False", "Invalid");
    assert_cond(
        &listener(gw, "http-listener")["conditions"],
        "Programmed",
        "False",
        "Pending",
    );

    let route = route_parent(&out, "TCPRoute", "kube-system", "test-tcproute");
    assert_cond(&route, "Accepted", "True", "Accepted");
    assert_cond(&route, "ResolvedRefs", "True", "ResolvedRefs");
    assert_eq!(cond(&route, "Accepted")["observedGeneration"], 0);
    let route = route_parent(&out, "UDPRoute", "kube-system", "test-udproute");
    assert_cond(&route, "Accepted", "True", "Accepted");
}

#[test]
fn loxilb_class_is_ignored_without_compat_and_missing_services_are_not_created() {
    let w = world(&[
        &seed("gatewayclass.yaml"),
        &seed("gateway.yaml"),
        &seed("tcpRoute.yaml"),
    ]);
    let mut settings = compat_settings();
    settings.loxilb_compat = false;
    let out = translate(&w, &settings, NOW);
    assert!(out.services.is_empty());
    assert!(
        out.statuses.is_empty(),
        "not our controllerName: no status at all"
    );

    // Compat on, but the route does not ask for serviceBehaviour: create.
    let tcp = seed("tcpRoute.yaml").replace("serviceBehaviour: create", "serviceBehaviour: none");
    let w = world(&[&seed("gatewayclass.yaml"), &seed("gateway.yaml"), &tcp]);
    let out = translate(&w, &compat_settings(), NOW);
    let route = route_parent(&out, "TCPRoute", "kube-system", "test-tcproute");
    assert_cond(&route, "Accepted", "True", "Accepted");
    assert_cond(&route, "ResolvedRefs", "False", "BackendNotFound");
    // Accepted route, no valid backend: the service exists without backends (sluiced resets).
    assert!(out.services["gw.kube-system.test-gateway.tcp-listener"]
        .backends
        .is_empty());
}

#[test]
fn seed_http_routes_cross_namespace_need_a_reference_grant() {
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: loxilb-ssl, namespace: kube-system}\ntype: kubernetes.io/tls\ndata: {tls.crt: Y2VydA==, tls.key: a2V5}\n";
    let proxy = slice(
        "sluice",
        "sluice-proxy",
        80,
        "TCP",
        &[("198.19.0.50", true)],
    );
    // The slice's port carries the Service port's name (tcpport80) and the resolved targetPort.
    let http_eps = slice(
        "default",
        "http-service",
        8080,
        "TCP",
        &[("198.19.0.1", true)],
    )
    .replace(
        "- port: 8080",
        "- name: tcpport81\n  port: 8081\n- name: tcpport80\n  port: 8080",
    );
    let docs = [
        seed("gatewayclass.yaml"),
        seed("gateway.yaml"),
        seed("httpRoute.yaml"),
        seed("httpsRoute.yaml"),
        secret.to_string(),
        proxy,
        http_eps,
    ];
    let mut settings = compat_settings();
    settings.proxy_service = Some(ServiceRef::parse("sluice/sluice-proxy").unwrap());
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let out = translate(&world(&refs), &settings, NOW);
    let route = route_parent(&out, "HTTPRoute", "kube-system", "test-http-route");
    assert_cond(&route, "Accepted", "True", "Accepted");
    assert_cond(&route, "ResolvedRefs", "False", "RefNotPermitted");
    // The rule's only backend is invalid: the proxy answers 500 for its share.
    let table_route = out
        .route_table
        .routes
        .iter()
        .find(|r| r.name == "kube-system/test-http-route")
        .unwrap();
    assert!(table_route.rules[0].backends[0].invalid);
    assert_eq!(
        table_route.listener_names,
        ["kube-system/test-gateway/http-listener"]
    );

    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: allow-routes, namespace: default}\nspec:\n  from:\n  - {group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: kube-system}\n  to:\n  - {group: \"\", kind: Service}\n";
    let mut refs = refs.clone();
    refs.push(grant);
    let out = translate(&world(&refs), &settings, NOW);
    let route = route_parent(&out, "HTTPRoute", "kube-system", "test-http-route");
    assert_cond(&route, "ResolvedRefs", "True", "ResolvedRefs");
    let table_route = out
        .route_table
        .routes
        .iter()
        .find(|r| r.name == "kube-system/test-http-route")
        .unwrap();
    let backend = &table_route.rules[0].backends[0];
    assert!(!backend.invalid);
    assert_eq!(
        backend.endpoints,
        [v1::Endpoint {
            address: "198.19.0.1".into(),
            port: 8080
        }]
    );
    assert_eq!(table_route.hostnames, ["test.loxilb.gateway.http"]);
    // HTTPS listener: the certificate from the Secret, the listener in the table.
    let https = out
        .route_table
        .listeners
        .iter()
        .find(|l| l.name == "kube-system/test-gateway/https-listener")
        .unwrap();
    assert_eq!(https.certificate_names, ["kube-system/loxilb-ssl"]);
    assert_eq!(out.route_table.certificates[0].cert_pem, b"cert");
    // The L4 services in front of the proxy on ports 80 and 443.
    let l4 = &out.services["gw.kube-system.test-gateway.http-80"];
    assert_eq!(backends(l4), [("198.19.0.50".into(), 80, 1)]);
    assert!(out
        .services
        .contains_key("gw.kube-system.test-gateway.http-443"));
    let gw = out
        .status_of("Gateway", "kube-system", "test-gateway")
        .unwrap();
    assert_eq!(listener(gw, "http-listener")["attachedRoutes"], 1);
    assert_eq!(listener(gw, "https-listener")["attachedRoutes"], 1);
    assert_cond(
        &listener(gw, "https-listener")["conditions"],
        "Programmed",
        "True",
        "Programmed",
    );
}

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: sluice, generation: 3}\nspec: {controllerName: sluice.io/gateway}\n";

fn gateway(name: &str, ns: &str, listeners: &str, extra: &str) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {ns}, generation: 7}}\nspec:\n  gatewayClassName: sluice\n{extra}  listeners:\n{listeners}")
}

fn service(ns: &str, name: &str, port: u16, protocol: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n  - {{port: {port}, protocol: {protocol}, targetPort: 8080}}\n")
}

fn tcp_route(ns: &str, name: &str, parent: &str, backends: &str) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {{name: {name}, namespace: {ns}, generation: 2}}\nspec:\n  parentRefs:\n  - {parent}\n  rules:\n  - backendRefs:\n{backends}")
}

fn settings() -> Settings {
    Settings {
        pools: vec![Pool::parse("p=198.18.100.0/30").unwrap()],
        ..Settings::default()
    }
}

const TCP_LISTENER: &str = "  - {name: tcp, protocol: TCP, port: 9000}\n";

#[test]
fn weights_are_shared_by_endpoints_and_invalid_refs_keep_their_share() {
    let route = tcp_route(
        "apps",
        "r",
        "{name: gw, namespace: apps}",
        "    - {name: a, port: 80, weight: 1}\n    - {name: b, port: 80, weight: 3}\n    - {name: missing, port: 80, weight: 4}\n",
    );
    let w = world(&[
        CLASS,
        &gateway("gw", "apps", TCP_LISTENER, ""),
        &service("apps", "a", 80, "TCP"),
        &service("apps", "b", 80, "TCP"),
        &slice("apps", "a", 8080, "TCP", &[("198.19.0.1", true)]),
        &slice(
            "apps",
            "b",
            8080,
            "TCP",
            &[("198.19.0.2", true), ("198.19.0.3", true)],
        ),
        &route,
    ]);
    let out = translate(&w, &settings(), NOW);
    let svc = &out.services["gw.apps.gw.tcp"];
    assert_eq!(svc.vip, "198.18.100.1");
    assert_eq!(svc.mode, v1::NatMode::Dnat as i32);
    // a: 1 share on one endpoint; b: 3 shares on two; missing: 4 shares on the sentinel.
    assert_eq!(
        backends(svc),
        [
            ("198.19.0.1".into(), 8080, 1000),
            ("198.19.0.2".into(), 8080, 1500),
            ("198.19.0.3".into(), 8080, 1500),
            ("127.0.0.1".into(), 9, 4000),
        ]
    );
    // The sentinel is a REJECT backend (sluiced refuses its share); the others are ACTIVE.
    let states: Vec<i32> = svc.backends.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [
            v1::BackendState::Unspecified as i32,
            v1::BackendState::Unspecified as i32,
            v1::BackendState::Unspecified as i32,
            v1::BackendState::Reject as i32,
        ]
    );
    let c = route_parent(&out, "TCPRoute", "apps", "r");
    assert_cond(&c, "ResolvedRefs", "False", "BackendNotFound");
    assert_eq!(cond(&c, "ResolvedRefs")["observedGeneration"], 2);

    // Without the sentinel the invalid share is dropped.
    let mut s = settings();
    s.reject_sentinel = false;
    let out = translate(&w, &s, NOW);
    assert_eq!(out.services["gw.apps.gw.tcp"].backends.len(), 3);
}

#[test]
fn invalid_refs_of_an_ipv6_service_get_an_ipv6_reject_sentinel() {
    let refs = [
        ResolvedBackend {
            display: "apps/a".into(),
            weight: 1,
            endpoints: Ok(vec![("2001:db8::1".parse().unwrap(), 8080)]),
        },
        ResolvedBackend {
            display: "apps/missing".into(),
            weight: 3,
            endpoints: Err(("BackendNotFound", "apps/missing not found".into())),
        },
    ];
    let out = weighted_backends(&refs, false, true);
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].address.as_str(), out[0].port, out[0].weight),
        ("2001:db8::1", 8080, Some(1000))
    );
    assert_eq!(out[0].state, v1::BackendState::Unspecified as i32);
    assert_eq!(
        (out[1].address.as_str(), out[1].port, out[1].weight),
        ("::1", 9, Some(3000))
    );
    assert_eq!(out[1].state, v1::BackendState::Reject as i32);
    // Switched off: the invalid share is dropped.
    assert_eq!(weighted_backends(&refs, false, false).len(), 1);
}

#[test]
fn backend_kinds_ports_and_cross_namespace_references() {
    let route = tcp_route(
        "apps",
        "r",
        "{name: gw, namespace: apps}",
        "    - {name: a, port: 80, kind: Pod, group: \"\"}\n",
    );
    let base = [
        CLASS.to_string(),
        gateway("gw", "apps", TCP_LISTENER, ""),
        service("apps", "a", 80, "TCP"),
    ];
    let mut docs: Vec<&str> = base.iter().map(String::as_str).collect();
    docs.push(&route);
    let out = translate(&world(&docs), &settings(), NOW);
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "r"),
        "ResolvedRefs",
        "False",
        "InvalidKind",
    );

    // Wrong port on the Service.
    let route = tcp_route(
        "apps",
        "r",
        "{name: gw, namespace: apps}",
        "    - {name: a, port: 81}\n",
    );
    docs.pop();
    docs.push(&route);
    let out = translate(&world(&docs), &settings(), NOW);
    let c = route_parent(&out, "TCPRoute", "apps", "r");
    assert_cond(&c, "ResolvedRefs", "False", "BackendNotFound");
    assert!(cond(&c, "ResolvedRefs")["message"]
        .as_str()
        .unwrap()
        .contains("port 81"));

    // Cross-namespace backend: refused without a grant, accepted with one.
    let other = service("backend-ns", "db", 5432, "TCP");
    let eps = slice("backend-ns", "db", 5432, "TCP", &[("198.19.0.9", true)]);
    let route = tcp_route(
        "apps",
        "r",
        "{name: gw, namespace: apps}",
        "    - {name: db, namespace: backend-ns, port: 5432}\n",
    );
    docs.pop();
    docs.extend([other.as_str(), eps.as_str(), route.as_str()]);
    let out = translate(&world(&docs), &settings(), NOW);
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "r"),
        "ResolvedRefs",
        "False",
        "RefNotPermitted",
    );
    assert!(out.services["gw.apps.gw.tcp"].backends.is_empty());
    // A grant for another kind or another name does not help.
    let wrong = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: backend-ns}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: UDPRoute, namespace: apps}]\n  to: [{group: \"\", kind: Service}]\n";
    docs.push(wrong);
    let out = translate(&world(&docs), &settings(), NOW);
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "r"),
        "ResolvedRefs",
        "False",
        "RefNotPermitted",
    );
    docs.pop();
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g, namespace: backend-ns}\nspec:\n  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: apps}]\n  to: [{group: \"\", kind: Service, name: db}]\n";
    docs.push(grant);
    let out = translate(&world(&docs), &settings(), NOW);
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "r"),
        "ResolvedRefs",
        "True",
        "ResolvedRefs",
    );
    assert_eq!(
        backends(&out.services["gw.apps.gw.tcp"]),
        [("198.19.0.9".into(), 5432, 1000)]
    );
}

#[test]
fn allowed_routes_namespaces_and_kinds() {
    let listeners = "  - {name: same, protocol: TCP, port: 9000}\n  - {name: all, protocol: TCP, port: 9001, allowedRoutes: {namespaces: {from: All}}}\n  - name: sel\n    protocol: TCP\n    port: 9002\n    allowedRoutes:\n      namespaces:\n        from: Selector\n        selector: {matchLabels: {team: blue}}\n  - {name: udp-only, protocol: TCP, port: 9003, allowedRoutes: {kinds: [{kind: UDPRoute}], namespaces: {from: All}}}\n";
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: other, labels: {team: blue}}\n";
    let gw = gateway("gw", "infra", listeners, "");
    let svc = service("other", "a", 80, "TCP");
    let route = |section: &str| {
        tcp_route(
            "other",
            &format!("r-{section}"),
            &format!("{{name: gw, namespace: infra, sectionName: {section}}}"),
            "    - {name: a, port: 80}\n",
        )
    };
    let (r1, r2, r3, r4) = (route("same"), route("all"), route("sel"), route("udp-only"));
    let w = world(&[CLASS, &gw, &svc, ns, &r1, &r2, &r3, &r4]);
    let out = translate(&w, &settings(), NOW);
    assert_cond(
        &route_parent(&out, "TCPRoute", "other", "r-same"),
        "Accepted",
        "False",
        "NotAllowedByListeners",
    );
    assert_cond(
        &route_parent(&out, "TCPRoute", "other", "r-all"),
        "Accepted",
        "True",
        "Accepted",
    );
    assert_cond(
        &route_parent(&out, "TCPRoute", "other", "r-sel"),
        "Accepted",
        "True",
        "Accepted",
    );
    assert_cond(
        &route_parent(&out, "TCPRoute", "other", "r-udp-only"),
        "Accepted",
        "False",
        "NotAllowedByListeners",
    );
    let status = out.status_of("Gateway", "infra", "gw").unwrap();
    // A TCP listener cannot take UDPRoutes: InvalidRouteKinds and no supported kinds.
    let l = listener(status, "udp-only");
    assert_cond(
        &l["conditions"],
        "ResolvedRefs",
        "False",
        "InvalidRouteKinds",
    );
    assert_eq!(l["supportedKinds"], serde_json::json!([]));
    assert_eq!(listener(status, "same")["attachedRoutes"], 0);
    assert_eq!(listener(status, "all")["attachedRoutes"], 1);
    let names: Vec<&String> = out.services.keys().collect();
    assert_eq!(names, ["gw.infra.gw.all", "gw.infra.gw.sel"]);
}

#[test]
fn parent_refs_by_section_name_and_port() {
    let listeners =
        "  - {name: a, protocol: TCP, port: 9000}\n  - {name: b, protocol: TCP, port: 9001}\n";
    let gw = gateway("gw", "apps", listeners, "");
    let svc = service("apps", "s", 80, "TCP");
    let by_port = tcp_route(
        "apps",
        "by-port",
        "{name: gw, port: 9001}",
        "    - {name: s, port: 80}\n",
    );
    let none = tcp_route(
        "apps",
        "nope",
        "{name: gw, sectionName: c}",
        "    - {name: s, port: 80}\n",
    );
    let both_wrong = tcp_route(
        "apps",
        "mismatch",
        "{name: gw, sectionName: a, port: 9001}",
        "    - {name: s, port: 80}\n",
    );
    let unknown_gw = tcp_route(
        "apps",
        "elsewhere",
        "{name: not-ours}",
        "    - {name: s, port: 80}\n",
    );
    let out = translate(
        &world(&[CLASS, &gw, &svc, &by_port, &none, &both_wrong, &unknown_gw]),
        &settings(),
        NOW,
    );
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "by-port"),
        "Accepted",
        "True",
        "Accepted",
    );
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "nope"),
        "Accepted",
        "False",
        "NoMatchingParent",
    );
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "mismatch"),
        "Accepted",
        "False",
        "NoMatchingParent",
    );
    assert!(
        out.status_of("TCPRoute", "apps", "elsewhere").is_none(),
        "no parent of ours"
    );
    assert!(
        out.services.contains_key("gw.apps.gw.b") && !out.services.contains_key("gw.apps.gw.a")
    );
    let status = out.status_of("TCPRoute", "apps", "by-port").unwrap();
    assert_eq!(status["parents"][0]["parentRef"]["port"], 9001);
    assert_eq!(status["parents"][0]["controllerName"], "sluice.io/gateway");
}

#[test]
fn pool_exhaustion_static_addresses_and_restart_stability() {
    let g1 = gateway("a", "apps", TCP_LISTENER, "");
    let g2 = gateway("b", "apps", TCP_LISTENER, "");
    let g3 = gateway("c", "apps", TCP_LISTENER, "");
    let fixed = gateway(
        "d",
        "apps",
        TCP_LISTENER,
        "  addresses: [{type: IPAddress, value: 198.18.100.2}]\n",
    );
    let host = gateway(
        "e",
        "apps",
        TCP_LISTENER,
        "  addresses: [{type: Hostname, value: lb.example}]\n",
    );
    let out = translate(
        &world(&[CLASS, &g1, &g2, &g3, &fixed, &host]),
        &settings(),
        NOW,
    );
    // Pool /30: .1 and .2; .2 is d's static address, so a gets .1 and b, c nothing.
    let addr = |name: &str| {
        out.status_of("Gateway", "apps", name).unwrap()["addresses"][0]["value"].clone()
    };
    assert_eq!(addr("a"), "198.18.100.1");
    assert_eq!(addr("d"), "198.18.100.2");
    for name in ["b", "c"] {
        let st = out.status_of("Gateway", "apps", name).unwrap();
        assert_cond(
            &st["conditions"],
            "Programmed",
            "False",
            "AddressNotAssigned",
        );
        assert_cond(&st["conditions"], "Accepted", "True", "Accepted");
        assert!(st.get("addresses").is_none());
        assert_cond(
            &listener(st, "tcp")["conditions"],
            "Programmed",
            "False",
            "Pending",
        );
    }
    let e = out.status_of("Gateway", "apps", "e").unwrap();
    assert_cond(&e["conditions"], "Accepted", "False", "UnsupportedAddress");

    // b already holds .1 in its status (e.g. it was created first): it keeps it after a
    // restart, and a gets nothing.
    let g2_with_status =
        format!("{g2}status:\n  addresses: [{{type: IPAddress, value: 198.18.100.1}}]\n");
    let out = translate(
        &world(&[CLASS, &g1, &g2_with_status, &fixed]),
        &settings(),
        NOW,
    );
    assert_eq!(
        out.status_of("Gateway", "apps", "b").unwrap()["addresses"][0]["value"],
        "198.18.100.1"
    );
    assert_cond(
        &out.status_of("Gateway", "apps", "a").unwrap()["conditions"],
        "Programmed",
        "False",
        "AddressNotAssigned",
    );
}

#[test]
fn conflicting_listeners_and_unsupported_protocols() {
    let listeners = "  - {name: t1, protocol: TCP, port: 9000}\n  - {name: t2, protocol: TCP, port: 9000}\n  - {name: u1, protocol: UDP, port: 9000}\n  - {name: h1, protocol: HTTP, port: 80, hostname: a.example}\n  - {name: h2, protocol: HTTP, port: 80, hostname: b.example}\n  - {name: h3, protocol: HTTP, port: 80, hostname: a.example}\n  - {name: tls, protocol: TLS, port: 8443, tls: {mode: Passthrough}}\n  - {name: sctp, protocol: SCTP, port: 7}\n";
    let out = translate(
        &world(&[CLASS, &gateway("gw", "apps", listeners, "")]),
        &settings(),
        NOW,
    );
    let st = out.status_of("Gateway", "apps", "gw").unwrap();
    for (name, conflicted) in [
        ("t1", true),
        ("t2", true),
        ("u1", false),
        ("h1", true),
        ("h2", false),
        ("h3", true),
    ] {
        let c = cond(&listener(st, name)["conditions"], "Conflicted");
        assert_eq!(
            c["status"],
            if conflicted { "True" } else { "False" },
            "{name}: {c}"
        );
    }
    assert_cond(
        &listener(st, "t1")["conditions"],
        "Conflicted",
        "True",
        "ProtocolConflict",
    );
    assert_cond(
        &listener(st, "h1")["conditions"],
        "Conflicted",
        "True",
        "HostnameConflict",
    );
    assert_cond(
        &listener(st, "tls")["conditions"],
        "Accepted",
        "False",
        "UnsupportedProtocol",
    );
    assert_cond(
        &listener(st, "sctp")["conditions"],
        "Accepted",
        "False",
        "UnsupportedProtocol",
    );
    assert_eq!(cond(&st["conditions"], "Accepted")["observedGeneration"], 7);
}

#[test]
fn hostname_intersection_follows_the_spec() {
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        intersect_hostnames(None, &v(&["a.example"])),
        Some(v(&["a.example"]))
    );
    assert_eq!(
        intersect_hostnames(Some("a.example"), &[]),
        Some(v(&["a.example"]))
    );
    assert_eq!(
        intersect_hostnames(
            Some("*.example.com"),
            &v(&["foo.example.com", "example.com", "x.other"])
        ),
        Some(v(&["foo.example.com"]))
    );
    assert_eq!(
        intersect_hostnames(Some("foo.example.com"), &v(&["*.example.com"])),
        Some(v(&["foo.example.com"]))
    );
    assert_eq!(
        intersect_hostnames(Some("*.example.com"), &v(&["*.foo.example.com"])),
        Some(v(&["*.foo.example.com"]))
    );
    assert_eq!(
        intersect_hostnames(Some("*.foo.example.com"), &v(&["*.example.com"])),
        Some(v(&["*.foo.example.com"]))
    );
    assert_eq!(
        intersect_hostnames(Some("a.example"), &v(&["b.example"])),
        None
    );
    assert_eq!(
        intersect_hostnames(Some("*.example.com"), &v(&["example.com"])),
        None
    );
}

#[test]
fn http_route_without_matching_hostname_is_rejected() {
    let listeners = "  - {name: web, protocol: HTTP, port: 80, hostname: \"*.example.com\"}\n";
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: apps}\nspec:\n  parentRefs: [{name: gw}]\n  hostnames: [other.org]\n  rules: [{backendRefs: [{name: s, port: 80}]}]\n";
    let out = translate(
        &world(&[CLASS, &gateway("gw", "apps", listeners, ""), route]),
        &settings(),
        NOW,
    );
    assert_cond(
        &route_parent(&out, "HTTPRoute", "apps", "r"),
        "Accepted",
        "False",
        "NoMatchingListenerHostname",
    );
    assert!(out.route_table.routes.is_empty());
}

#[test]
fn v1_and_v1alpha2_routes_are_one_object_and_statuses_are_stable() {
    let alpha = tcp_route("apps", "r", "{name: gw}", "    - {name: s, port: 80}\n");
    let v1_route = alpha.replace("v1alpha2", "v1");
    let svc = service("apps", "s", 80, "TCP");
    let gw = gateway("gw", "apps", TCP_LISTENER, "");
    let w = world(&[CLASS, &gw, &svc, &v1_route, &alpha]);
    assert_eq!(w.l4_routes.len(), 1);
    assert!(w
        .l4_routes
        .values()
        .next()
        .unwrap()
        .api_version
        .ends_with("/v1"));
    let out = translate(&w, &settings(), NOW);
    assert!(
        out.statuses.iter().all(|s| s.changed),
        "nothing written yet"
    );
    let st = out.statuses.iter().find(|s| s.kind == "TCPRoute").unwrap();
    assert_eq!(st.api_version, "gateway.networking.k8s.io/v1");

    // Feed the statuses back (as after a write) and translate later: nothing to write, and
    // lastTransitionTime is kept.
    let mut w2 = w.clone();
    for s in &out.statuses {
        match s.kind.as_str() {
            "GatewayClass" => {
                w2.gateway_classes.get_mut(&s.name).unwrap().status = s.status.clone()
            }
            "Gateway" => {
                w2.gateways
                    .get_mut(&(s.namespace.clone(), s.name.clone()))
                    .unwrap()
                    .status = s.status.clone()
            }
            _ => w2.l4_routes.values_mut().next().unwrap().status = s.status.clone(),
        }
    }
    let later = translate(&w2, &settings(), "2026-11-26T21:00:00Z");
    assert!(
        later.statuses.iter().all(|s| !s.changed),
        "{:?}",
        later
            .statuses
            .iter()
            .filter(|s| s.changed)
            .collect::<Vec<_>>()
    );
    let c = cond(
        &later.status_of("Gateway", "apps", "gw").unwrap()["conditions"],
        "Programmed",
    );
    assert_eq!(c["lastTransitionTime"], NOW);
    assert_eq!(out.services, later.services);
}

#[test]
fn annotations_set_mode_and_health_checks() {
    let route = tcp_route("apps", "r", "{name: gw}", "    - {name: s, port: 80}\n").replace(
        "generation: 2}",
        "generation: 2, annotations: {loxilb.io/lbmode: fullnat, loxilb.io/liveness: \"yes\"}}",
    );
    let svc = service("apps", "s", 80, "TCP");
    let gw = gateway("gw", "apps", TCP_LISTENER, "");
    let w = world(&[CLASS, &gw, &svc, &route]);
    let mut s = settings();
    s.loxilb_compat = true;
    s.snat_pool = Some("snat".into());
    let out = translate(&w, &s, NOW);
    let svc = &out.services["gw.apps.gw.tcp"];
    assert_eq!(svc.mode, v1::NatMode::FullNat as i32);
    assert_eq!(
        svc.health_check.as_ref().unwrap().r#type,
        v1::HealthCheckType::Tcp as i32
    );
    // Full-NAT without an SNAT pool: the route is not accepted, no service.
    s.snat_pool = None;
    let out = translate(&w, &s, NOW);
    assert_cond(
        &route_parent(&out, "TCPRoute", "apps", "r"),
        "Accepted",
        "False",
        "UnsupportedValue",
    );
    assert!(out.services.is_empty());
    assert_eq!(s.default_mode, NatMode::Dnat);
}
