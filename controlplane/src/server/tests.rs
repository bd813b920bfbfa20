//! The gRPC server end to end over 127.0.0.1 with the generated clients, a real state
//! directory and a fake stats source.

use super::*;
use crate::compile::compile;
use crate::store::StateStore;
use dataplane::conntrack::ConnState;
use dataplane::flow::{Addr, FlowKey, Proto};
use dataplane::pipeline::{DropReason, WorkerCounters};
use dataplane::snapshot::SnapshotHandle;
use sluice_proto::v1;
use sluice_proto::v1::network_client::NetworkClient;
use sluice_proto::v1::observability_client::ObservabilityClient;
use sluice_proto::v1::pools_client::PoolsClient;
use sluice_proto::v1::services_client::ServicesClient;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const PORTS: [&str; 2] = ["port0", "port1"];

struct FakeStats {
    workers: Vec<WorkerView>,
    connections: Vec<ConnectionRecord>,
}

impl StatsSource for FakeStats {
    fn workers(&self) -> Vec<WorkerView> {
        self.workers.clone()
    }

    fn ports(&self) -> Vec<PortView> {
        PORTS
            .iter()
            .enumerate()
            .map(|(i, name)| PortView {
                name: (*name).to_owned(),
                port_id: i as u16,
                driver: "net_null".into(),
                mac: [2, 0, 0, 0, 0, i as u8],
                link: Some(LinkView {
                    up: true,
                    speed_mbps: 10_000,
                    full_duplex: true,
                }),
                rx_queues: 2,
                tx_queues: 2,
                numa_socket: 0,
                counters: Some(PortCounters {
                    rx_packets: 10 + i as u64,
                    ..PortCounters::default()
                }),
            })
            .collect()
    }

    fn list_connections(&self, query: &ConnectionQuery) -> Result<Vec<ConnectionRecord>, Status> {
        Ok(self
            .connections
            .iter()
            .filter(|r| query.matches(r))
            .take(query.limit)
            .cloned()
            .collect())
    }
}

fn fake_stats() -> Arc<FakeStats> {
    let worker = |index: u32| WorkerView {
        index,
        lcore: index + 1,
        numa_socket: 0,
        rx_queues: vec![format!("port0:{index}")],
        running: true,
        busy_ratio: 0.25,
        counters: Arc::new(WorkerCounters::new(64, 256)),
    };
    let key = |src: [u8; 4], sport, dst: [u8; 4], dport| FlowKey {
        src: Addr::from_v4(src),
        dst: Addr::from_v4(dst),
        src_port: sport,
        dst_port: dport,
        proto: Proto::Tcp,
    };
    Arc::new(FakeStats {
        workers: vec![worker(0), worker(1)],
        connections: (0..3u16)
            .map(|i| ConnectionRecord {
                worker: u32::from(i % 2),
                service: 0,
                original: key([198, 18, 0, 9], 40000 + i, [198, 18, 100, 10], 80),
                reply: key(
                    [198, 19, 0, 1 + (i % 2) as u8],
                    8080,
                    [198, 18, 0, 9],
                    40000 + i,
                ),
                full_nat: false,
                state: ConnState::Established,
                age_ms: 1500,
                idle_ms: 10,
                packets: 4,
                bytes: 400,
            })
            .collect(),
    })
}

struct Server {
    controller: Controller,
    snapshots: Arc<SnapshotHandle>,
    stats: Arc<FakeStats>,
    address: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Server {
    async fn start(dir: &Path, token: Option<&str>) -> Server {
        let store = StateStore::open(dir).expect("state directory");
        let state = store.load().expect("state loads");
        let snapshot = compile(&state, &PORTS, None).expect("state compiles");
        let snapshots = Arc::new(SnapshotHandle::new(snapshot));
        let stats = fake_stats();
        let controller = Controller::new(
            store,
            state,
            Arc::clone(&snapshots),
            stats.clone(),
            ControllerConfig {
                ports: PORTS.map(String::from).to_vec(),
                service_counter_slots: 64,
                backend_counter_slots: 256,
                watch_buffer: 16,
                ..ControllerConfig::default()
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            controller.clone(),
            ApiListeners {
                unix: None,
                tcp: Some(listener),
            },
            AuthConfig {
                tls: None,
                bearer_token: token.map(String::from),
            },
            stop_rx,
        ));
        Server {
            controller,
            snapshots,
            stats,
            address,
            stop,
            task,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    async fn services(&self) -> ServicesClient<Channel> {
        ServicesClient::new(self.channel().await)
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap().expect("served cleanly");
    }
}

fn backend(address: &str, port: u32) -> v1::Backend {
    v1::Backend {
        address: address.into(),
        port,
        ..v1::Backend::default()
    }
}

fn service(name: &str, port: u32) -> v1::Service {
    v1::Service {
        name: name.into(),
        vip: "198.18.100.10".into(),
        port,
        protocol: v1::Protocol::Tcp.into(),
        mode: v1::NatMode::Dnat.into(),
        selection: v1::Selection::Maglev.into(),
        backends: vec![backend("198.19.0.1", 8080), backend("198.19.0.2", 8080)],
        ..v1::Service::default()
    }
}

fn apply(service: v1::Service, version: Option<u64>) -> v1::ApplyServiceRequest {
    v1::ApplyServiceRequest {
        service: Some(service),
        resource_version: version,
    }
}

async fn list(client: &mut ServicesClient<Channel>) -> v1::ListServicesResponse {
    client
        .list_services(v1::ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
}

fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(field),
        "{:?} does not name {field}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_list_delete_publish_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;

    let applied = client
        .apply_service(apply(service("web", 80), None))
        .await
        .unwrap()
        .into_inner();
    assert!(applied.changed);
    let meta = applied.service.unwrap().meta.unwrap();
    assert_eq!((meta.resource_version, meta.generation), (1, 1));
    // Persisted and published.
    assert_eq!(server.snapshots.load().generation(), 1);
    assert_eq!(server.snapshots.load().services().len(), 1);
    assert!(dir.path().join(crate::store::STATE_FILE).exists());

    // Idempotent.
    let again = client
        .apply_service(apply(service("web", 80), None))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.changed);
    assert_eq!(server.snapshots.load().generation(), 1);

    // Counters of the service's slots show in Get and GetStats.
    let stored = server.controller.state().service("web").unwrap().clone();
    let w0 = &server.stats.workers[0].counters;
    let w1 = &server.stats.workers[1].counters;
    w0.backend(stored.backend_ids[0])
        .unwrap()
        .new_connections
        .add(3);
    w1.backend(stored.backend_ids[0]).unwrap().packets.add(7);
    w1.backend(stored.backend_ids[1])
        .unwrap()
        .new_connections
        .add(2);
    w1.backend(stored.backend_ids[1])
        .unwrap()
        .closed_connections
        .add(2);
    w0.service(stored.id).unwrap().packets.add(11);
    w0.count_drop(DropReason::NoService);
    let got = client
        .get_service(v1::GetServiceRequest { name: "web".into() })
        .await
        .unwrap()
        .into_inner();
    let status = got.status.unwrap();
    assert_eq!(status.eligible_backends, 2);
    assert_eq!(status.active_connections, 3);
    assert_eq!(status.snapshot_generation, 1);
    let b0 = got.backends[0].status.as_ref().unwrap();
    assert_eq!(
        (
            b0.active_connections,
            b0.total_connections,
            b0.packets_to_backend
        ),
        (3, 3, 7)
    );

    let mut observability = ObservabilityClient::new(server.channel().await);
    let stats = observability
        .get_stats(v1::GetStatsRequest {
            services: vec![],
            include_backends: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.snapshot_generation, 1);
    assert_eq!(stats.workers.len(), 2);
    assert_eq!(stats.ports.len(), 2);
    assert_eq!(stats.drops_by_reason.get("no_service"), Some(&1));
    assert_eq!(stats.services[0].packets, 11);
    assert_eq!(stats.services[0].active_connections, 3);
    assert_eq!(stats.services[0].backends.len(), 2);
    let missing = observability
        .get_stats(v1::GetStatsRequest {
            services: vec!["nope".into()],
            include_backends: false,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // The Prometheus rendering names services and backends.
    let text = metrics::render(&server.controller, true);
    assert!(text.contains("sluice_snapshot_generation 1"), "{text}");
    assert!(text.contains(
        "sluice_backend_connections_total{service=\"web\",backend=\"198.19.0.1:8080\"} 3"
    ));
    assert!(text.contains("sluice_service_packets_total{service=\"web\"} 11"));
    assert!(text.contains("sluice_drops_total{reason=\"no_service\"} 1"));
    assert!(text.contains("sluice_port_rx_packets_total{port=\"port1\"} 11"));

    // List, with a label selector.
    let mut labelled = service("api", 443);
    labelled.labels.insert("tier".into(), "front".into());
    client.apply_service(apply(labelled, None)).await.unwrap();
    let all = list(&mut client).await;
    assert_eq!(
        all.services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["api", "web"]
    );
    assert_eq!(all.resource_version, 2);
    let front = client
        .list_services(v1::ListServicesRequest {
            selector: Some(v1::LabelSelector {
                match_labels: [("tier".to_owned(), "front".to_owned())].into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(front.services.len(), 1);

    // Backend patch: drain one.
    let patched = client
        .patch_backends(v1::PatchBackendsRequest {
            service: "web".into(),
            drain: vec![v1::BackendRef {
                address: "198.19.0.2".into(),
                port: 8080,
            }],
            ..v1::PatchBackendsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(patched.changed);
    assert_eq!(
        patched.service.unwrap().backends[1].state,
        i32::from(v1::BackendState::Draining)
    );

    // Delete, then NOT_FOUND.
    let deleted = client
        .delete_service(v1::DeleteServiceRequest {
            name: "web".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.deleted);
    assert_eq!(server.snapshots.load().services().len(), 1);
    for status in [
        client
            .get_service(v1::GetServiceRequest { name: "web".into() })
            .await
            .unwrap_err(),
        client
            .delete_service(v1::DeleteServiceRequest {
                name: "web".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        client
            .patch_backends(v1::PatchBackendsRequest {
                service: "web".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let tolerated = client
        .delete_service(v1::DeleteServiceRequest {
            name: "web".into(),
            allow_missing: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!tolerated.deleted);

    // A new service reusing the freed slots starts its counters at zero.
    client
        .apply_service(apply(service("web2", 81), None))
        .await
        .unwrap();
    let reused = server.controller.state().service("web2").unwrap().clone();
    assert_eq!(reused.id, stored.id, "the freed service slot is reused");
    let fresh = client
        .get_service(v1::GetServiceRequest {
            name: "web2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.status.unwrap().active_connections, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_conflicts_are_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;
    client
        .apply_service(apply(service("web", 80), Some(0)))
        .await
        .unwrap();
    // Create-only again: exists.
    let status = client
        .apply_service(apply(service("web", 80), Some(0)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    // Stale version.
    let mut changed = service("web", 80);
    changed.backends.pop();
    let status = client
        .apply_service(apply(changed.clone(), Some(7)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert!(
        status.message().contains("resource_version 1"),
        "{status:?}"
    );
    // The right version applies.
    let applied = client
        .apply_service(apply(changed, Some(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.service.unwrap().meta.unwrap().resource_version, 2);
    let status = client
        .delete_service(v1::DeleteServiceRequest {
            name: "web".into(),
            resource_version: Some(1),
            allow_missing: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(list(&mut client).await.services.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_name_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;
    client
        .apply_service(apply(service("web", 80), None))
        .await
        .unwrap();
    let state_file = dir.path().join(crate::store::STATE_FILE);
    let file_before = std::fs::read(&state_file).unwrap();
    let list_before = list(&mut client).await;

    let mut cases: Vec<(v1::Service, &str)> = Vec::new();
    let mut s = service("web", 80);
    s.vip = "198.18.100".into();
    cases.push((s, "service.vip"));
    let mut s = service("web", 80);
    s.port = 0;
    cases.push((s, "service.port"));
    let mut s = service("web", 80);
    s.backends[1] = s.backends[0].clone();
    cases.push((s, "service.backends[1]"));
    let mut s = service("web", 80);
    s.backends[0].weight = Some(1_000_001);
    cases.push((s, "service.backends[0].weight"));
    let mut s = service("web", 80);
    s.mode = 7;
    cases.push((s, "service.mode"));
    let mut s = service("web", 80);
    s.backends[0].port = 0;
    cases.push((s, "service.backends[0].port"));
    let mut s = service("web", 80);
    s.backends[0].address = "not-an-address".into();
    cases.push((s, "service.backends[0].address"));
    let mut s = service("web", 80);
    s.backends = (0..4097u32)
        .map(|i| backend(&format!("198.19.{}.{}", i / 250, 1 + i % 250), 80))
        .collect();
    cases.push((s, "service.backends"));
    let mut s = service("web", 80);
    s.mode = v1::NatMode::FullNat.into();
    s.snat_pool = "missing".into();
    cases.push((s, "service.snat_pool"));
    for (bad, field) in cases {
        let status = client.apply_service(apply(bad, None)).await.unwrap_err();
        assert_invalid(&status, field);
        assert!(
            tonic_types::StatusExt::get_details_bad_request(&status).is_some(),
            "BadRequest details for {field}"
        );
    }

    // Oversized batch.
    let status = client
        .apply_services(v1::ApplyServicesRequest {
            requests: (0..10_001)
                .map(|i| apply(service(&format!("s{i}"), 1 + i % 60_000), None))
                .collect(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "requests");
    // A batch with one bad entry applies nothing.
    let mut bad = service("b", 82);
    bad.port = 0;
    let status = client
        .apply_services(v1::ApplyServicesRequest {
            requests: vec![apply(service("a", 81), None), apply(bad, None)],
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "requests[1].service.port");

    // Bad CIDR in a VIP pool; bad names and addresses elsewhere.
    let mut pools = PoolsClient::new(server.channel().await);
    let status = pools
        .apply_vip_pool(v1::ApplyVipPoolRequest {
            pool: Some(v1::VipPool {
                name: "public".into(),
                cidrs: vec!["198.18.100.0/33".into()],
                ..Default::default()
            }),
            resource_version: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "pool.cidrs[0]");
    let mut network = NetworkClient::new(server.channel().await);
    let status = network
        .apply_route(v1::ApplyRouteRequest {
            route: Some(v1::Route {
                prefix: "198.19.0.0/16".into(),
                next_hop: "198.18.1.254".into(),
                port: "port9".into(),
                meta: None,
            }),
            resource_version: None,
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "port");
    let status = client
        .get_service(v1::GetServiceRequest {
            name: "Bad_Name".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "name");

    assert_eq!(list(&mut client).await, list_before);
    assert_eq!(std::fs::read(&state_file).unwrap(), file_before);
    assert_eq!(server.snapshots.load().generation(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_state_and_pools_network_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;
    let mut pools = PoolsClient::new(server.channel().await);
    let mut network = NetworkClient::new(server.channel().await);
    pools
        .apply_snat_pool(v1::ApplySnatPoolRequest {
            pool: Some(v1::SnatPool {
                name: "egress".into(),
                addresses: vec!["198.18.1.100".into()],
                ..Default::default()
            }),
            resource_version: None,
        })
        .await
        .unwrap();
    pools
        .apply_vip_pool(v1::ApplyVipPoolRequest {
            pool: Some(v1::VipPool {
                name: "public".into(),
                cidrs: vec!["198.18.100.0/30".into()],
                ..Default::default()
            }),
            resource_version: None,
        })
        .await
        .unwrap();
    let vip = pools
        .allocate_vip(v1::AllocateVipRequest {
            pool: "public".into(),
            owner: "gateway/default/web".into(),
            requested_address: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(vip.newly_allocated);
    let mut full = service("web", 80);
    full.vip = vip.address.clone();
    full.mode = v1::NatMode::FullNat.into();
    full.snat_pool = "egress".into();
    client.apply_service(apply(full, None)).await.unwrap();
    network
        .apply_interface(v1::ApplyInterfaceRequest {
            interface: Some(v1::Interface {
                port: "port1".into(),
                addresses: vec!["198.18.1.1/24".into()],
                meta: None,
            }),
            resource_version: None,
        })
        .await
        .unwrap();
    network
        .apply_neighbour(v1::ApplyNeighbourRequest {
            neighbour: Some(v1::Neighbour {
                address: "198.18.1.254".into(),
                mac: "02:00:00:00:01:fe".into(),
                port: "port1".into(),
                learned: false,
                meta: None,
            }),
            resource_version: None,
        })
        .await
        .unwrap();
    let status = pools
        .delete_snat_pool(v1::DeleteSnatPoolRequest {
            name: "egress".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let before = list(&mut client).await;
    let generation = server.snapshots.load().generation();
    drop(client);
    drop(pools);
    drop(network);
    let controller = server.controller.clone();
    server.stop().await;
    drop(controller);

    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;
    let after = list(&mut client).await;
    assert_eq!(after.services.len(), 1);
    assert_eq!(after.resource_version, before.resource_version);
    assert_eq!(
        after.services[0].meta, before.services[0].meta,
        "versions survive the restart"
    );
    assert_eq!(server.snapshots.load().generation(), generation);
    let pools = PoolsClient::new(server.channel().await)
        .list_vip_pools(v1::ListVipPoolsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pools.pools[0].allocations[0].owner, "gateway/default/web");
    let snat = PoolsClient::new(server.channel().await)
        .list_snat_pools(v1::ListSnatPoolsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snat.pools[0].used_by, ["web"]);
    let neighbours = NetworkClient::new(server.channel().await)
        .list_neighbours(v1::ListNeighboursRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(neighbours.neighbours.len(), 1);
    server.stop().await;
}

async fn next_event(
    stream: &mut tonic::Streaming<v1::WatchServicesResponse>,
) -> (v1::WatchEventType, String, u64) {
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("an event in time")
        .expect("stream ok")
        .expect("stream open");
    (
        event.r#type(),
        event.service.map(|s| s.name).unwrap_or_default(),
        event.resource_version,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_a_snapshot_then_changes() {
    use v1::WatchEventType::*;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;
    client
        .apply_service(apply(service("web", 80), None))
        .await
        .unwrap();
    let mut all = client
        .watch_services(v1::WatchServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut front = client
        .watch_services(v1::WatchServicesRequest {
            selector: Some(v1::LabelSelector {
                match_labels: [("tier".to_owned(), "front".to_owned())].into(),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut all).await, (Added, "web".into(), 1));
    assert_eq!(next_event(&mut all).await, (Synced, String::new(), 1));
    assert_eq!(next_event(&mut front).await, (Synced, String::new(), 1));

    client
        .apply_service(apply(service("api", 443), None))
        .await
        .unwrap();
    let mut labelled = service("web", 80);
    labelled.labels.insert("tier".into(), "front".into());
    client.apply_service(apply(labelled, None)).await.unwrap();
    client
        .apply_service(apply(service("web", 80), None))
        .await
        .unwrap();
    client
        .delete_service(v1::DeleteServiceRequest {
            name: "api".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next_event(&mut all).await, (Added, "api".into(), 2));
    assert_eq!(next_event(&mut all).await, (Modified, "web".into(), 3));
    assert_eq!(next_event(&mut all).await, (Modified, "web".into(), 4));
    assert_eq!(next_event(&mut all).await, (Deleted, "api".into(), 5));
    // The selector sees web appear when it gets the label and go when it loses it.
    assert_eq!(next_event(&mut front).await, (Added, "web".into(), 3));
    assert_eq!(next_event(&mut front).await, (Deleted, "web".into(), 4));

    // Shutdown ends open watches.
    server.stop.send_replace(true);
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), all.message())
        .await
        .expect("the watch ends");
    assert!(matches!(end, Err(ref s) if s.code() == Code::Unavailable) || matches!(end, Ok(None)));
    server.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_connections_health_reflection_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), Some("s3cret")).await;
    let channel = server.channel().await;

    // Without the token: UNAUTHENTICATED; health answers anyway.
    let status = ServicesClient::new(channel.clone())
        .list_services(v1::ListServicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "sluice.v1.Services".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    let with_token = |mut request: Request<v1::ApplyServiceRequest>, token: &str| {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    };
    let mut services = ServicesClient::new(channel.clone());
    let status = services
        .apply_service(with_token(
            Request::new(apply(service("web", 80), None)),
            "wrong",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    services
        .apply_service(with_token(
            Request::new(apply(service("web", 80), None)),
            "s3cret",
        ))
        .await
        .unwrap();

    let authed = |token: &'static str| {
        move |mut request: Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            Ok::<_, Status>(request)
        }
    };
    let mut observability =
        ObservabilityClient::with_interceptor(channel.clone(), authed("s3cret"));
    let status = observability
        .get_status(v1::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state_resource_version, 1);
    assert_eq!(status.snapshot_generation, 1);
    assert_eq!(status.ports.len(), 2);
    assert_eq!(status.ports[1].mac, "02:00:00:00:00:01");
    assert_eq!(status.workers.len(), 2);
    assert!(status.workers.iter().all(|w| w.running));

    let mut stream = observability
        .list_connections(v1::ListConnectionsRequest {
            service: "web".into(),
            backend: "198.19.0.1:8080".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut connections = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        connections.extend(batch.connections);
    }
    assert_eq!(connections.len(), 2, "{connections:?}");
    assert!(connections.iter().all(|c| c.service == "web"
        && c.backend_address == "198.19.0.1"
        && c.vip_port == 80
        && c.state() == v1::ConnectionState::Established));
    for (request, field, code) in [
        (
            v1::ListConnectionsRequest {
                address: "198.18.0".into(),
                ..Default::default()
            },
            "address",
            Code::InvalidArgument,
        ),
        (
            v1::ListConnectionsRequest {
                service: "nope".into(),
                ..Default::default()
            },
            "nope",
            Code::NotFound,
        ),
        (
            v1::ListConnectionsRequest {
                limit: 2_000_000,
                ..Default::default()
            },
            "limit",
            Code::InvalidArgument,
        ),
    ] {
        let status = observability.list_connections(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(field), "{status:?}");
    }

    // Reflection lists the API (with the token).
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::with_interceptor(channel, authed("s3cret"));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(listed)) = response.message_response else {
        panic!("unexpected reflection answer {response:?}");
    };
    let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    for name in sluice_proto::SERVICE_NAMES {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_capacity_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), None).await;
    let mut client = server.services().await;
    // 256 backend slots: 200 + 100 backends do not fit.
    let mut big = service("big", 80);
    big.backends = (0..200u32)
        .map(|i| backend(&format!("198.19.1.{}", 1 + i), 80))
        .collect();
    client.apply_service(apply(big, None)).await.unwrap();
    let mut more = service("more", 81);
    more.backends = (0..100u32)
        .map(|i| backend(&format!("198.19.2.{}", 1 + i), 80))
        .collect();
    let status = client.apply_service(apply(more, None)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(list(&mut client).await.services.len(), 1);
    server.stop().await;
}
