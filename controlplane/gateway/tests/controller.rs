//! The controller with the real kube client against a wire-level fake API server (list,
//! watch, discovery, server-side-apply status patches) and the real sluiced API
//! (controlplane's gRPC server in-process on a Unix socket, with a state directory):
//! statuses with reasons and observedGeneration, services programmed, deletion releasing
//! services and addresses, pool exhaustion, and convergence after restarts of the controller
//! and of a sluiced that lost its state.

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/sluiced.rs"]
mod sluiced;

use fake_api::FakeApi;
use serde_json::{json, Value};
use sluice_gateway::apply::{Bearer, Target};
use sluice_gateway::config::{Pool, Settings};
use sluice_gateway::controller::{run_kube, Controller};
use sluice_proto::v1;
use sluiced::Sluiced;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const G: &str = "gateway.networking.k8s.io/v1";
const GA: &str = "gateway.networking.k8s.io/v1alpha2";

fn objects() -> Vec<Value> {
    let listeners = json!([
        {"name": "tcp", "protocol": "TCP", "port": 9000},
        {"name": "udp", "protocol": "UDP", "port": 9001},
    ]);
    vec![
        json!({"apiVersion": G, "kind": "GatewayClass", "metadata": {"name": "sluice", "generation": 4},
               "spec": {"controllerName": "sluice.io/gateway"}}),
        json!({"apiVersion": G, "kind": "GatewayClass", "metadata": {"name": "other"},
               "spec": {"controllerName": "example.com/other"}}),
        json!({"apiVersion": G, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "apps", "generation": 2},
               "spec": {"gatewayClassName": "sluice", "listeners": listeners}}),
        json!({"apiVersion": G, "kind": "Gateway", "metadata": {"name": "gw2", "namespace": "apps", "generation": 5},
               "spec": {"gatewayClassName": "sluice", "listeners": listeners}}),
        json!({"apiVersion": GA, "kind": "TCPRoute", "metadata": {"name": "web", "namespace": "apps", "generation": 3},
               "spec": {"parentRefs": [{"name": "gw", "sectionName": "tcp"}],
                        "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}),
        json!({"apiVersion": GA, "kind": "UDPRoute", "metadata": {"name": "dns", "namespace": "apps", "generation": 1},
               "spec": {"parentRefs": [{"name": "gw", "sectionName": "udp"}],
                        "rules": [{"backendRefs": [{"name": "missing", "port": 53}]}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "apps"},
               "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}),
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-x1", "namespace": "apps", "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": ["198.19.0.1"], "conditions": {"ready": true}},
                             {"addresses": ["198.19.0.2"], "conditions": {"ready": false}}]}),
    ]
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `wait_for` for checks that need `.await` (queries to sluiced).
macro_rules! wait_until {
    ($what:expr, $check:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// Services without what sluiced fills in (meta, live status), to compare two sluiceds.
fn programme(services: &BTreeMap<String, v1::Service>) -> Vec<v1::Service> {
    services
        .values()
        .map(|s| v1::Service {
            meta: None,
            status: None,
            ..s.clone()
        })
        .collect()
}

/// A sluiced on `dir/sluiced.sock` with its state in `dir/state`.
async fn start_sluiced(dir: &std::path::Path) -> Sluiced {
    Sluiced::start(&dir.join("state"), &dir.join("sluiced.sock")).await
}

fn cond(conditions: &Value, type_: &str) -> Value {
    conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

fn has(conditions: &Value, type_: &str, status: &str, reason: &str, generation: i64) -> bool {
    let c = cond(conditions, type_);
    c["status"] == status && c["reason"] == reason && c["observedGeneration"] == generation
}

fn start_controller(
    api_addr: std::net::SocketAddr,
    sockets: &[&std::path::Path],
) -> tokio::task::JoinHandle<()> {
    let config = kube::Config::new(format!("http://{api_addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let settings = Settings {
        pools: vec![Pool::parse("p=198.18.100.7/32").unwrap()],
        ..Settings::default()
    };
    let controller = Controller::new(
        settings,
        &sockets
            .iter()
            .map(|s| Target::Unix(s.to_path_buf()))
            .collect::<Vec<_>>(),
        &[],
        Bearer(None),
        Some(client.clone()),
    )
    .unwrap();
    tokio::spawn(run_kube(controller, client, Duration::from_secs(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_programme_deletion_exhaustion_and_restarts() {
    let api = FakeApi::default();
    for o in objects() {
        api.put(o);
    }
    let addr = api.start().await;
    let dir = tempfile::tempdir().unwrap();
    let sluiced = start_sluiced(dir.path()).await;
    // A second appliance: every sluiced gets the same programme.
    let dir2 = tempfile::tempdir().unwrap();
    let sluiced2 = start_sluiced(dir2.path()).await;
    let sockets = [sluiced.socket.clone(), sluiced2.socket.clone()];
    let sockets = [sockets[0].as_path(), sockets[1].as_path()];
    let controller = start_controller(addr, &sockets);

    // Gateway: the pool's only address, Programmed, listeners with their routes.
    let gw = wait_for("gw Programmed", || {
        let s = api.get(G, "Gateway", "apps", "gw")?["status"].clone();
        has(&s["conditions"], "Programmed", "True", "Programmed", 2).then_some(s)
    })
    .await;
    assert_eq!(
        gw["addresses"],
        json!([{"type": "IPAddress", "value": "198.18.100.7"}])
    );
    assert!(
        has(&gw["conditions"], "Accepted", "True", "Accepted", 2),
        "{gw}"
    );
    let tcp = &gw["listeners"][0];
    assert_eq!(
        (tcp["name"].as_str(), tcp["attachedRoutes"].as_i64()),
        (Some("tcp"), Some(1))
    );
    assert_eq!(
        tcp["supportedKinds"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "TCPRoute"}])
    );
    assert!(has(
        &tcp["conditions"],
        "ResolvedRefs",
        "True",
        "ResolvedRefs",
        2
    ));

    // The second Gateway: the pool is exhausted, reported, not a crash.
    let gw2 = wait_for("gw2 status", || {
        let s = api.get(G, "Gateway", "apps", "gw2")?["status"].clone();
        (!s.is_null()).then_some(s)
    })
    .await;
    assert!(
        has(
            &gw2["conditions"],
            "Programmed",
            "False",
            "AddressNotAssigned",
            5
        ),
        "{gw2}"
    );
    assert!(gw2["addresses"].is_null());

    // GatewayClass: ours accepted, the other untouched.
    let class = api.get(G, "GatewayClass", "", "sluice").unwrap()["status"].clone();
    assert!(
        has(&class["conditions"], "Accepted", "True", "Accepted", 4),
        "{class}"
    );
    assert!(has(
        &class["conditions"],
        "SupportedVersion",
        "True",
        "SupportedVersion",
        4
    ));
    assert!(api.get(G, "GatewayClass", "", "other").unwrap()["status"].is_null());

    // Routes.
    let route = wait_for("TCPRoute status", || {
        let s = api.get(GA, "TCPRoute", "apps", "web")?["status"].clone();
        (!s.is_null()).then_some(s)
    })
    .await;
    let parent = &route["parents"][0];
    assert_eq!(parent["controllerName"], "sluice.io/gateway");
    assert_eq!(parent["parentRef"]["sectionName"], "tcp");
    assert!(
        has(&parent["conditions"], "Accepted", "True", "Accepted", 3),
        "{route}"
    );
    assert!(has(
        &parent["conditions"],
        "ResolvedRefs",
        "True",
        "ResolvedRefs",
        3
    ));
    let udp = wait_for("UDPRoute status", || {
        let s = api.get(GA, "UDPRoute", "apps", "dns")?["status"].clone();
        (!s.is_null()).then_some(s)
    })
    .await;
    assert!(
        has(
            &udp["parents"][0]["conditions"],
            "ResolvedRefs",
            "False",
            "BackendNotFound",
            1
        ),
        "{udp}"
    );

    // Every status went by server-side apply on /status with our field manager, forced.
    let patches: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(!patches.is_empty());
    for p in &patches {
        assert!(p.path.ends_with("/status"), "{}", p.path);
        assert_eq!(p.content_type, "application/apply-patch+yaml");
        assert!(
            p.query.contains("fieldManager=sluice.io%2Fgateway") && p.query.contains("force=true"),
            "{}",
            p.query
        );
        assert!(
            p.body["apiVersion"].is_string()
                && p.body["kind"].is_string()
                && p.body["status"].is_object()
        );
    }
    assert!(patches.iter().any(|p| p.path
        == "/apis/gateway.networking.k8s.io/v1alpha2/namespaces/apps/tcproutes/web/status"));
    assert!(patches
        .iter()
        .any(|p| p.path == "/apis/gateway.networking.k8s.io/v1/gatewayclasses/sluice/status"));

    // sluiced: the TCP listener with the ready endpoint and the targetPort resolved by name;
    // the UDP listener without backends (its only backendRef is invalid).
    let services = wait_until!("services", {
        let s = sluiced.by_name().await;
        (s.len() == 2).then_some(s)
    });
    let web = &services["gw.apps.gw.tcp"];
    assert_eq!((web.vip.as_str(), web.port), ("198.18.100.7", 9000));
    assert_eq!(web.backends.len(), 1);
    assert_eq!(
        (web.backends[0].address.as_str(), web.backends[0].port),
        ("198.19.0.1", 8080)
    );
    assert_eq!(web.labels["sluice.io/managed-by"], "sluice-gateway");
    assert!(services["gw.apps.gw.udp"].backends.is_empty());
    let services2 = wait_until!("services on the second sluiced", {
        let s = sluiced2.by_name().await;
        (s.len() == 2).then_some(s)
    });
    assert_eq!(programme(&services2), programme(&services));

    // Level-triggered and idempotent: resyncs (every second here) write nothing more. A
    // write that changes anything moves sluiced's state revision.
    let writes = (sluiced.revision().await, sluiced2.revision().await);
    // The whole programme went to each sluiced in one atomic batch (one revision).
    assert_eq!(writes, (1, 1));
    let patch_count = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .count()
    };
    let patched = patch_count(&api);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        (sluiced.revision().await, sluiced2.revision().await),
        writes,
        "resync rewrote unchanged services"
    );
    assert_eq!(sluiced.by_name().await, services);
    assert_eq!(
        patch_count(&api),
        patched,
        "resync rewrote unchanged statuses"
    );

    // A controller restart converges without duplicates or writes.
    controller.abort();
    let _ = controller.await;
    let controller = start_controller(addr, &sockets);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        (sluiced.revision().await, sluiced2.revision().await),
        writes
    );
    assert_eq!(sluiced.by_name().await, services);
    assert_eq!(sluiced2.by_name().await, services2);

    // A sluiced that lost its state (restarted with an emptied state directory) gets the
    // programme again.
    let sluiced = sluiced.restart_empty().await;
    wait_until!("services restored", {
        let s = sluiced.by_name().await;
        (programme(&s) == programme(&services)).then_some(())
    });
    // From an empty state, in one batch.
    assert_eq!(sluiced.revision().await, 1);

    // An endpoint becoming ready is picked up by the watch.
    let mut slice = objects().pop().unwrap();
    slice["endpoints"][1]["conditions"]["ready"] = json!(true);
    api.put(slice);
    wait_until!("second backend", {
        let s = sluiced.by_name().await;
        s.get("gw.apps.gw.tcp")
            .is_some_and(|s| s.backends.len() == 2)
            .then_some(())
    });

    // The Gateway and its routes deleted: their services go (gw2 has no routes, so none
    // replace them) and the address is released to gw2.
    api.delete(G, "Gateway", "apps", "gw");
    api.delete(GA, "TCPRoute", "apps", "web");
    api.delete(GA, "UDPRoute", "apps", "dns");
    wait_until!("services removed", {
        (sluiced.services().await.is_empty() && sluiced2.services().await.is_empty()).then_some(())
    });
    let gw2 = wait_for("gw2 address", || {
        let s = api.get(G, "Gateway", "apps", "gw2")?["status"].clone();
        has(&s["conditions"], "Programmed", "True", "Programmed", 5).then_some(s)
    })
    .await;
    assert_eq!(gw2["addresses"][0]["value"], "198.18.100.7");
    controller.abort();
    let _ = controller.await;
    sluiced.stop().await;
    sluiced2.stop().await;
}

#[path = "support/fake_proxy.rs"]
mod fake_proxy;

/// HTTP listeners: an L4 service in front of the proxy instances and the route table sent to
/// every proxy; HTTPRoute statuses; the table follows endpoint changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_program_the_proxies() {
    let api = FakeApi::default();
    api.put(objects()[0].clone());
    api.put(json!({"apiVersion": G, "kind": "Gateway", "metadata": {"name": "web", "namespace": "apps", "generation": 1},
                   "spec": {"gatewayClassName": "sluice", "addresses": [{"type": "IPAddress", "value": "198.18.100.30"}],
                            "listeners": [{"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.example.com"}]}}));
    api.put(json!({"apiVersion": G, "kind": "HTTPRoute", "metadata": {"name": "shop", "namespace": "apps", "generation": 6},
                   "spec": {"parentRefs": [{"name": "web"}], "hostnames": ["shop.example.com"],
                            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/cart"}}],
                                       "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-shop", "value": "1"}]}}],
                                       "backendRefs": [{"name": "cart", "port": 80, "weight": 3}, {"name": "gone", "port": 80, "weight": 1}]}]}}));
    api.put(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": "apps"},
                   "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}}));
    let slice = |name: &str, ns: &str, service: &str, port: u16, addr: &str| {
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
               "addressType": "IPv4", "ports": [{"port": port, "protocol": "TCP"}],
               "endpoints": [{"addresses": [addr]}]})
    };
    api.put(slice("cart-1", "apps", "cart", 8080, "198.19.0.1"));
    api.put(slice(
        "proxy-1",
        "sluice",
        "sluice-proxy",
        80,
        "198.19.0.60",
    ));
    let addr = api.start().await;
    let dir = tempfile::tempdir().unwrap();
    let sluiced = start_sluiced(dir.path()).await;
    let proxy = fake_proxy::FakeProxy::default();
    let proxy_socket = proxy.start(dir.path()).await;

    let client =
        kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap()))
            .unwrap();
    let settings = Settings {
        proxy_service: Some(
            sluice_gateway::config::ServiceRef::parse("sluice/sluice-proxy").unwrap(),
        ),
        ..Settings::default()
    };
    let controller = Controller::new(
        settings,
        &[sluiced.target()],
        &[Target::Unix(proxy_socket)],
        Bearer(None),
        Some(client.clone()),
    )
    .unwrap();
    let task = tokio::spawn(run_kube(controller, client, Duration::from_secs(1)));

    let table = wait_for("route table", || {
        proxy.table().filter(|t| !t.routes.is_empty())
    })
    .await;
    assert_eq!(table.listeners.len(), 1);
    assert_eq!(
        (
            table.listeners[0].name.as_str(),
            table.listeners[0].port,
            table.listeners[0].hostname.as_str()
        ),
        ("apps/web/http", 80, "*.example.com")
    );
    let route = &table.routes[0];
    assert_eq!(route.name, "apps/shop");
    assert_eq!(route.listener_names, ["apps/web/http"]);
    assert_eq!(route.hostnames, ["shop.example.com"]);
    let rule = &route.rules[0];
    assert_eq!(rule.matches[0].path.as_ref().unwrap().value, "/cart");
    assert_eq!(rule.filters.len(), 1);
    assert_eq!(rule.backends.len(), 2);
    assert_eq!(
        (rule.backends[0].weight, rule.backends[0].invalid),
        (Some(3), false)
    );
    assert_eq!(
        rule.backends[0].endpoints,
        [sluice_proto::v1::Endpoint {
            address: "198.19.0.1".into(),
            port: 8080
        }]
    );
    assert_eq!(
        (rule.backends[1].weight, rule.backends[1].invalid),
        (Some(1), true)
    );

    let services = wait_until!(
        "L4 service for the proxies",
        sluiced.by_name().await.get("gw.apps.web.http-80").cloned()
    );
    assert_eq!(services.vip, "198.18.100.30");
    assert_eq!(
        (
            services.backends[0].address.as_str(),
            services.backends[0].port
        ),
        ("198.19.0.60", 80)
    );

    let status = wait_for("HTTPRoute status", || {
        let s = api.get(G, "HTTPRoute", "apps", "shop")?["status"].clone();
        (!s.is_null()).then_some(s)
    })
    .await;
    let conds = &status["parents"][0]["conditions"];
    assert!(has(conds, "Accepted", "True", "Accepted", 6), "{status}");
    assert!(
        has(conds, "ResolvedRefs", "False", "BackendNotFound", 6),
        "{status}"
    );

    // Unchanged resyncs leave the proxy alone; a new endpoint updates the table.
    let version = proxy.version();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(proxy.version(), version);
    api.put(slice("cart-2", "apps", "cart", 8080, "198.19.0.2"));
    wait_for("second endpoint", || {
        let t = proxy.table()?;
        (t.routes[0].rules[0].backends[0].endpoints.len() == 2).then_some(())
    })
    .await;
    task.abort();
    let _ = task.await;
    sluiced.stop().await;
}
