//! The real sluiced API, in-process: controlplane's gRPC server (validation, persistence in a
//! state directory, snapshot compiler) with no dataplane workers, on a temporary Unix socket.
//! Tests observe what the controller programmed through the server's own API, and count
//! writes by its state revision (ListServices `resource_version`), which only an accepted
//! change moves: an apply that changes nothing leaves it (and the persisted state) alone.

// Each test binary uses a different part of this helper.
#![allow(dead_code)]

use controlplane::compile::compile;
use controlplane::server::{
    serve, ApiListeners, AuthConfig, Controller as Daemon, ControllerConfig, PortView, StatsSource,
    WorkerView,
};
use controlplane::StateStore;
use dataplane::snapshot::SnapshotHandle;
use sluice_gateway::apply::{Bearer, Conn, Target};
use sluice_proto::v1;
use sluice_proto::v1::services_client::ServicesClient;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

const PORTS: [&str; 2] = ["port0", "port1"];

/// No workers: the API side of sluiced only.
pub struct NoStats;

impl StatsSource for NoStats {
    fn workers(&self) -> Vec<WorkerView> {
        Vec::new()
    }
    fn ports(&self) -> Vec<PortView> {
        Vec::new()
    }
}

/// sluiced's controller over the state persisted in `state_dir` (created when missing), as
/// the daemon builds it at start.
pub fn daemon(state_dir: &Path) -> Daemon {
    let store = StateStore::open(state_dir).expect("state directory");
    let state = store.load().expect("state loads");
    let snapshot = compile(&state, &PORTS, None).expect("state compiles");
    Daemon::new(
        store,
        state,
        Arc::new(SnapshotHandle::new(snapshot)),
        Arc::new(NoStats),
        ControllerConfig {
            ports: PORTS.map(String::from).to_vec(),
            service_counter_slots: 64,
            backend_counter_slots: 256,
            watch_buffer: 16,
            ..ControllerConfig::default()
        },
    )
}

/// A running sluiced API on a Unix socket.
pub struct Sluiced {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sluiced {
    /// Serves the state of `state_dir` on `socket` (replacing a stale socket file).
    pub async fn start(state_dir: &Path, socket: &Path) -> Sluiced {
        let daemon = daemon(state_dir);
        let _ = std::fs::remove_file(socket);
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            serve(
                daemon,
                ApiListeners {
                    unix: Some(listener),
                    tcp: None,
                },
                AuthConfig {
                    tls: None,
                    bearer_token: None,
                },
                stop_rx,
            )
            .await
            .expect("served cleanly");
        });
        Sluiced {
            socket: socket.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            stop,
            task,
        }
    }

    /// Shuts the server down (as on SIGTERM) and waits for it.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap();
    }

    /// Stops, deletes the state directory and starts again on the same socket: a sluiced
    /// that lost everything it was programmed with.
    pub async fn restart_empty(self) -> Sluiced {
        let (state_dir, socket) = (self.state_dir.clone(), self.socket.clone());
        self.stop().await;
        std::fs::remove_dir_all(&state_dir).unwrap();
        Sluiced::start(&state_dir, &socket).await
    }

    pub fn target(&self) -> Target {
        Target::Unix(self.socket.clone())
    }

    pub fn conn(&self) -> Conn {
        sluice_gateway::apply::connect(&self.target(), &Bearer(None)).unwrap()
    }

    /// Every service, in name order, and the state revision they were listed at.
    pub async fn list(&self) -> (Vec<v1::Service>, u64) {
        let response = ServicesClient::new(self.conn())
            .list_services(v1::ListServicesRequest { selector: None })
            .await
            .unwrap()
            .into_inner();
        (response.services, response.resource_version)
    }

    pub async fn services(&self) -> Vec<v1::Service> {
        self.list().await.0
    }

    /// Every service by name.
    pub async fn by_name(&self) -> BTreeMap<String, v1::Service> {
        self.services()
            .await
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect()
    }

    /// The state revision: how many changes sluiced has accepted.
    pub async fn revision(&self) -> u64 {
        self.list().await.1
    }
}
