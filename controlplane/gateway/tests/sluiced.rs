//! The controller against the real sluiced API (controlplane's gRPC server in-process, with
//! its validation, persistence and snapshot compiler) on a Unix socket: the seed's routes
//! are accepted by sluiced, passes are idempotent, a sluiced restarted from its state
//! directory converges without duplicates, services of other owners are never touched, and a
//! service sluiced refuses does not hold back the others.

#[path = "support/sluiced.rs"]
mod sluiced;

use serde_json::Value;
use sluice_gateway::apply::{Bearer, Target};
use sluice_gateway::config::{Pool, Settings};
use sluice_gateway::controller::Controller;
use sluice_gateway::model::World;
use sluice_gateway::static_source::parse_documents;
use sluice_proto::v1;
use sluice_proto::v1::pools_client::PoolsClient;
use sluice_proto::v1::services_client::ServicesClient;
use sluiced::Sluiced;
use std::path::Path;
use tokio::sync::watch;

fn seed(file: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/seed/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn slice(service: &str, port: u16, protocol: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-1\n  namespace: kube-system\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nports: [{{port: {port}, protocol: {protocol}}}]\nendpoints:\n- addresses: [198.19.0.1]\n- addresses: [198.19.0.2]\n"
    )
}

fn world(tcp: bool) -> World {
    let mut docs = vec![
        seed("gatewayclass.yaml"),
        seed("gateway.yaml"),
        seed("udpRoute.yaml"),
        slice("udproute-lb-service", 5353, "UDP"),
    ];
    if tcp {
        docs.extend([
            seed("tcpRoute.yaml"),
            slice("tcproute-lb-service", 8080, "TCP"),
        ]);
    }
    let objects: Vec<Value> = docs
        .iter()
        .flat_map(|d| parse_documents(d).unwrap())
        .collect();
    World::from_objects(&objects).0
}

fn controller(socket: &Path) -> Controller {
    let settings = Settings {
        loxilb_compat: true,
        pools: vec![Pool::parse("defaultPool=198.18.100.20/32").unwrap()],
        snat_pool: Some("snat".into()),
        ..Settings::default()
    };
    Controller::new(
        settings,
        &[Target::Unix(socket.to_path_buf())],
        &[],
        Bearer(None),
        None,
    )
    .unwrap()
}

fn versions(services: &[v1::Service]) -> Vec<(String, u64)> {
    services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.meta.as_ref().map(|m| m.resource_version).unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_routes_on_the_real_sluiced_api() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("sluiced.sock");
    let daemon = Sluiced::start(&state, &socket).await;
    PoolsClient::new(daemon.conn())
        .apply_snat_pool(v1::ApplySnatPoolRequest {
            pool: Some(v1::SnatPool {
                name: "snat".into(),
                addresses: vec!["198.19.0.250".into()],
                ..Default::default()
            }),
            resource_version: None,
        })
        .await
        .unwrap();
    // A service of another owner, on another VIP.
    let foreign = v1::Service {
        name: "hand-made".into(),
        vip: "198.18.100.99".into(),
        port: 80,
        protocol: v1::Protocol::Tcp as i32,
        mode: v1::NatMode::Dnat as i32,
        selection: v1::Selection::Maglev as i32,
        backends: vec![v1::Backend {
            address: "198.19.0.9".into(),
            port: 80,
            ..Default::default()
        }],
        ..Default::default()
    };
    ServicesClient::new(daemon.conn())
        .apply_service(v1::ApplyServiceRequest {
            service: Some(foreign.clone()),
            resource_version: None,
        })
        .await
        .unwrap();

    let ctl = controller(&socket);
    let report = ctl.reconcile(&world(true)).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let services = daemon.services().await;
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gw.kube-system.test-gateway.tcp-listener",
            "gw.kube-system.test-gateway.udp-listener",
            "hand-made"
        ]
    );
    let tcp = &services[0];
    assert_eq!(
        (tcp.vip.as_str(), tcp.port, tcp.mode),
        ("198.18.100.20", 21818, v1::NatMode::FullNat as i32)
    );
    assert_eq!(tcp.backends.len(), 2);

    // Idempotent: a second pass changes nothing in sluiced.
    let before = versions(&services);
    assert!(ctl.reconcile(&world(true)).await.errors.is_empty());
    assert_eq!(versions(&daemon.services().await), before);

    // sluiced restarted from its state directory: same services, a pass converges with no
    // change and no duplicate.
    daemon.stop().await;
    let daemon = Sluiced::start(&state, &socket).await;
    let ctl = controller(&socket);
    assert!(ctl.reconcile(&world(true)).await.errors.is_empty());
    assert_eq!(versions(&daemon.services().await), before);

    // The TCPRoute gone: its service goes; the foreign one stays.
    assert!(ctl.reconcile(&world(false)).await.errors.is_empty());
    let names: Vec<String> = daemon
        .services()
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["gw.kube-system.test-gateway.udp-listener", "hand-made"]
    );

    // A foreign service holding the Gateway's VIP:port: sluiced refuses our TCP service, the
    // refusal is reported, and the UDP service still converges.
    let mut squatter = foreign.clone();
    squatter.name = "squatter".into();
    squatter.vip = "198.18.100.20".into();
    squatter.port = 21818;
    ServicesClient::new(daemon.conn())
        .apply_service(v1::ApplyServiceRequest {
            service: Some(squatter),
            resource_version: None,
        })
        .await
        .unwrap();
    ServicesClient::new(daemon.conn())
        .delete_service(v1::DeleteServiceRequest {
            name: "gw.kube-system.test-gateway.udp-listener".into(),
            resource_version: None,
            allow_missing: false,
        })
        .await
        .unwrap();
    let report = ctl.reconcile(&world(true)).await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].contains("refused service gw.kube-system.test-gateway.tcp-listener"),
        "{}",
        report.errors[0]
    );
    let names: Vec<String> = daemon
        .services()
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        [
            "gw.kube-system.test-gateway.udp-listener",
            "hand-made",
            "squatter"
        ]
    );
    // The refusal shows in the listener's status; the other listener stays Programmed.
    let gw = report
        .outcome
        .status_of("Gateway", "kube-system", "test-gateway")
        .unwrap();
    let programmed = |listener: &str| -> Value {
        let l = gw["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == listener)
            .unwrap();
        let conditions = l["conditions"].as_array().unwrap();
        conditions
            .iter()
            .find(|c| c["type"] == "Programmed")
            .unwrap()
            .clone()
    };
    let tcp = programmed("tcp-listener");
    assert_eq!(
        (tcp["status"].as_str(), tcp["reason"].as_str()),
        (Some("False"), Some("Pending"))
    );
    assert!(
        tcp["message"].as_str().unwrap().contains("sluiced refused"),
        "{tcp}"
    );
    assert_eq!(programmed("udp-listener")["status"], "True");

    // No Gateway objects at all: everything of ours removed, the others untouched.
    assert!(ctl.reconcile(&World::default()).await.errors.is_empty());
    let names: Vec<String> = daemon
        .services()
        .await
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hand-made", "squatter"]);
    daemon.stop().await;
}

/// sluiced over TCP with TLS and a bearer token: the controller verifies the server with the
/// given CA and authenticates with the token; a wrong token is reported, not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = generated.cert.pem();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();

    let daemon = sluiced::daemon(&dir.path().join("state"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stop_rx) = watch::channel(false);
    let auth = controlplane::server::AuthConfig {
        tls: Some(controlplane::server::TlsFiles {
            cert,
            key,
            client_ca: None,
        }),
        bearer_token: Some("s3cret".into()),
    };
    let task = tokio::spawn(controlplane::server::serve(
        daemon,
        controlplane::server::ApiListeners {
            unix: None,
            tcp: Some(listener),
        },
        auth,
        stop_rx,
    ));

    let target = Target::Https(
        format!("https://localhost:{port}"),
        sluice_gateway::apply::ClientTls {
            ca_pem: Some(cert_pem.into_bytes()),
            identity: None,
        },
    );
    let mut settings = Settings {
        pools: vec![Pool::parse("p=198.18.100.20/32").unwrap()],
        ..Settings::default()
    };
    settings.loxilb_compat = true;
    settings.default_mode = sluice_gateway::config::NatMode::Dnat;
    // DNAT (no SNAT pool in this sluiced): the seed routes without their fullnat annotation.
    let objects: Vec<Value> = [
        seed("gatewayclass.yaml"),
        seed("gateway.yaml"),
        seed("udpRoute.yaml").replace("loxilb.io/lbmode", "x-unused"),
    ]
    .iter()
    .flat_map(|d| parse_documents(d).unwrap())
    .collect();
    let world = World::from_objects(&objects).0;

    let wrong = Controller::new(
        settings.clone(),
        std::slice::from_ref(&target),
        &[],
        Bearer(Some("Bearer nope".parse().unwrap())),
        None,
    )
    .unwrap();
    let report = wrong.reconcile(&world).await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].contains("Unauthenticated"),
        "{}",
        report.errors[0]
    );

    let right = Controller::new(
        settings,
        std::slice::from_ref(&target),
        &[],
        Bearer(Some("Bearer s3cret".parse().unwrap())),
        None,
    )
    .unwrap();
    let report = right.reconcile(&world).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let conn =
        sluice_gateway::apply::connect(&target, &Bearer(Some("Bearer s3cret".parse().unwrap())))
            .unwrap();
    let names: Vec<String> = ServicesClient::new(conn)
        .list_services(v1::ListServicesRequest { selector: None })
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["gw.kube-system.test-gateway.udp-listener"]);
    stop.send_replace(true);
    task.await.unwrap().unwrap();
}
