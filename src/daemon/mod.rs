//! `sluiced`, the appliance daemon.
//!
//! Start-up, in this order (each step fails the start with a clear message):
//! 1. the configuration (file, then flags: [`config`]);
//! 2. the persisted desired state: the state directory is locked, a corrupt state file stops
//!    the start (never an empty start); the configuration's declared objects are applied; the
//!    state is compiled to a snapshot (so a state naming a port that no longer exists fails
//!    before DPDK starts);
//! 3. the DPDK EAL, the mbuf pool, the ports (configured and started);
//! 4. the snapshot is published, then the polling workers start on their lcores;
//! 5. the gRPC API (tokio runtime on the main lcore's thread) and the admin HTTP endpoint (own
//!    thread); `/readyz` turns 200.
//!
//! SIGTERM or SIGINT: `/readyz` turns 503, the API stops accepting calls (health NOT_SERVING,
//! watches end, in-flight calls finish, at most [`API_DRAIN`]), the workers stop and are
//! joined, the ports close, the mbuf pool is checked (`mempool in use after shutdown: N`), the
//! EAL is cleaned up, and the process exits 0.

pub mod admin;
pub mod config;
pub mod engine;
pub mod hostpath;
pub mod stats;

use anyhow::{anyhow, bail, Context, Result};
use config::Config;
use controlplane::server::{self, ApiListeners, AuthConfig, BuildInfo, Controller, TlsFiles};
use controlplane::{validate, DesiredState, StateStore};
use dataplane::dpdk::lcore::StopFlag;
use dataplane::dpdk::{Eal, Port};
use dataplane::pipeline::WorkerConfig;
use dataplane::snapshot::SnapshotHandle;
use sluice_proto::v1;
use std::sync::Arc;
use std::time::Duration;

/// How long in-flight API calls may take to finish at shutdown.
pub const API_DRAIN: Duration = Duration::from_secs(10);

/// Applies the objects the configuration declares to `state` (see [`config`]).
pub fn apply_declared(config: &Config, state: &mut DesiredState) -> Result<()> {
    let ports = config.port_names();
    let fail = |what: String, e: &dyn std::fmt::Display| anyhow!("configuration {what}: {e}");
    for (i, pool) in config.snat_pools.iter().enumerate() {
        let request = v1::ApplySnatPoolRequest {
            pool: Some(v1::SnatPool {
                name: pool.name.clone(),
                addresses: pool.addresses.clone(),
                ..Default::default()
            }),
            resource_version: None,
        };
        let (spec, _) = validate::apply_snat_pool_request(&request)
            .map_err(|e| fail(format!("snat_pools[{i}]"), &e))?;
        state
            .apply_snat_pool(spec, None)
            .map_err(|e| fail(format!("snat_pools[{i}]"), &e))?;
    }
    for (i, pool) in config.vip_pools.iter().enumerate() {
        let request = v1::ApplyVipPoolRequest {
            pool: Some(v1::VipPool {
                name: pool.name.clone(),
                cidrs: pool.cidrs.clone(),
                excluded_addresses: pool.excluded_addresses.clone(),
                ..Default::default()
            }),
            resource_version: None,
        };
        let (spec, _) = validate::apply_vip_pool_request(&request)
            .map_err(|e| fail(format!("vip_pools[{i}]"), &e))?;
        state
            .apply_vip_pool(spec, None)
            .map_err(|e| fail(format!("vip_pools[{i}]"), &e))?;
    }
    for (i, interface) in config.interfaces.iter().enumerate() {
        let request = v1::ApplyInterfaceRequest {
            interface: Some(v1::Interface {
                port: match interface.vlan {
                    Some(vlan) => format!("{}.{vlan}", interface.port),
                    None => interface.port.clone(),
                },
                addresses: interface.addresses.clone(),
                meta: None,
            }),
            resource_version: None,
        };
        let (spec, _) = validate::apply_interface_request(&request, &ports)
            .map_err(|e| fail(format!("interfaces[{i}]"), &e))?;
        state
            .apply_interface(spec, None)
            .map_err(|e| fail(format!("interfaces[{i}]"), &e))?;
    }
    for (i, route) in config.routes.iter().enumerate() {
        let request = v1::ApplyRouteRequest {
            route: Some(v1::Route {
                prefix: route.prefix.clone(),
                next_hop: route.next_hop.clone(),
                port: route.port.clone(),
                meta: None,
            }),
            resource_version: None,
        };
        let (spec, _) = validate::apply_route_request(&request)
            .map_err(|e| fail(format!("routes[{i}]"), &e))?;
        state
            .apply_route(spec, None)
            .map_err(|e| fail(format!("routes[{i}]"), &e))?;
    }
    for (i, neighbour) in config.neighbours.iter().enumerate() {
        let request = v1::ApplyNeighbourRequest {
            neighbour: Some(v1::Neighbour {
                address: neighbour.address.clone(),
                mac: neighbour.mac.clone(),
                port: neighbour.port.clone(),
                learned: false,
                meta: None,
            }),
            resource_version: None,
        };
        let (spec, _) = validate::apply_neighbour_request(&request)
            .map_err(|e| fail(format!("neighbours[{i}]"), &e))?;
        state
            .apply_neighbour(spec, None)
            .map_err(|e| fail(format!("neighbours[{i}]"), &e))?;
    }
    Ok(())
}

fn read_token(config: &Config) -> Result<Option<String>> {
    let Some(path) = &config.api.bearer_token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading api.bearer_token_file {}", path.display()))?;
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("api.bearer_token_file {} is empty", path.display());
    }
    Ok(Some(token))
}

/// Runs the daemon until SIGTERM/SIGINT. `Err` for any start-up failure.
pub fn run(config: Config) -> Result<()> {
    // 2. Desired state.
    let store = StateStore::open(&config.state.dir)?;
    let mut state = store.load()?;
    tracing::info!(
        dir = %config.state.dir.display(),
        revision = state.revision(),
        services = state.services().len(),
        "desired state loaded"
    );
    let loaded_revision = state.revision();
    apply_declared(&config, &mut state)?;
    let ports = config.port_names();
    let dp = &config.dataplane;
    if state.service_slot_bound() > dp.service_counter_slots
        || state.backend_slot_bound() > dp.backend_counter_slots
    {
        bail!(
            "the persisted state needs {} service and {} backend counter slots; \
             dataplane.service_counter_slots/backend_counter_slots allow {} and {}",
            state.service_slot_bound(),
            state.backend_slot_bound(),
            dp.service_counter_slots,
            dp.backend_counter_slots
        );
    }
    let snapshot = controlplane::compile::compile(&state, &ports, None)
        .context("compiling the persisted desired state")?;
    if state.revision() != loaded_revision {
        store.save(&state)?;
        tracing::info!(
            revision = state.revision(),
            "objects declared in the configuration applied"
        );
    }
    let token = read_token(&config)?;

    // 3. DPDK.
    let eal_args = engine::eal_args(&config);
    tracing::info!(args = ?eal_args.as_slice(), "initialising the DPDK EAL");
    let eal = Eal::init(&eal_args).context("DPDK EAL initialisation failed")?;
    let result = run_with_eal(&eal, &config, store, state, snapshot, token);
    match eal.cleanup() {
        Ok(()) => tracing::info!("EAL cleaned up"),
        Err(e) => tracing::warn!(error = %e, "EAL cleanup failed"),
    }
    result
}

fn run_with_eal(
    eal: &Eal,
    config: &Config,
    store: StateStore,
    state: DesiredState,
    snapshot: dataplane::snapshot::Snapshot,
    token: Option<String>,
) -> Result<()> {
    let lcores = engine::worker_lcores(eal, config)?;
    let (pool, mut open_ports) = engine::open_ports(eal, config, lcores.len())?;
    let ports = config.port_names();
    // The exception path: a tap per port that asks for one, with the port's MAC.
    let mut taps = hostpath::open_taps(eal, config, &open_ports, lcores.len(), &pool)?;
    let mut address_sync = hostpath::AddressSync::new(&taps);
    address_sync.sync(&state);

    // 4. Publish, then start the workers.
    let generation = snapshot.generation();
    let snapshots = Arc::new(SnapshotHandle::new(snapshot));
    tracing::info!(generation, "snapshot published");
    let (snat_first_port, snat_last_port) = config.dataplane.snat_range()?;
    let template = WorkerConfig {
        conn_capacity: config.dataplane.conn_capacity,
        ownership_seed: state.selection_seed(),
        snat_first_port,
        snat_last_port,
        midstream_pickup: config.dataplane.midstream_pickup,
        port_macs: open_ports.iter().map(|p| p.info.mac).collect(),
        vlan_ports: config
            .vlan_ports()
            .into_iter()
            .map(|(port, vlan)| dataplane::pipeline::vlan::VlanPort {
                port: port as u16,
                vlan,
            })
            .collect(),
        service_counter_slots: config.dataplane.service_counter_slots,
        backend_counter_slots: config.dataplane.backend_counter_slots,
        timeouts: config.dataplane.timeouts.to_timeouts()?,
        ..WorkerConfig::default()
    };
    let rx_queues: Vec<u16> = open_ports.iter().map(|p| p.info.rx_queues).collect();
    let stop = StopFlag::new();
    let workers = {
        let mut port_refs: Vec<&mut Port> = open_ports.iter_mut().map(|p| &mut p.port).collect();
        let mut tap_refs: Vec<Option<&mut Port>> = (0..port_refs.len()).map(|_| None).collect();
        for tap in &mut taps {
            if let Some(slot) = tap_refs.get_mut(tap.port_index) {
                *slot = Some(&mut tap.port);
            }
        }
        engine::launch_workers_with_taps(
            eal,
            &mut port_refs,
            &ports,
            &rx_queues,
            &lcores,
            &template,
            &snapshots,
            config.dataplane.handoff_ring_size,
            &stop,
            &mut tap_refs,
        )?
    };

    let (stats, jobs): (Vec<_>, Vec<_>) = workers
        .into_iter()
        .map(|w| {
            (
                stats::WorkerEntry {
                    index: w.index,
                    lcore: w.lcore,
                    rx_queues: w.rx_queues,
                    counters: w.counters,
                    live: w.live,
                    connections: w.connections,
                },
                (w.index, w.lcore, w.job),
            )
        })
        .unzip();
    let source = Arc::new(stats::DaemonStats {
        workers: stats,
        neighbours: Arc::clone(&template.neighbours),
        ports: open_ports
            .into_iter()
            .map(|p| stats::PortEntry {
                name: p.name,
                info: p.info,
                port: p.port,
            })
            .collect(),
    });

    // 5. API and admin endpoint.
    let controller = Controller::new(
        store,
        state,
        snapshots,
        source,
        server::ControllerConfig {
            ports,
            service_counter_slots: config.dataplane.service_counter_slots,
            backend_counter_slots: config.dataplane.backend_counter_slots,
            build: BuildInfo {
                version: crate::build_info::VERSION.into(),
                git_revision: crate::build_info::GIT_REV.into(),
                dpdk_version: dataplane::dpdk::BUILD_DPDK_VERSION.into(),
            },
            ..server::ControllerConfig::default()
        },
    );
    let readiness = Arc::new(admin::Readiness::default());
    let served = serve_api(config, &controller, &readiness, token, address_sync);

    // Shutdown (also after an API start-up failure: the workers run and must stop).
    readiness.set_stopping();
    tracing::info!("stopping workers");
    stop.stop();
    let mut panicked = 0;
    for (index, lcore, job) in jobs {
        match job.join() {
            Ok(loops) => tracing::info!(
                worker = index,
                lcore,
                iterations = loops.iterations,
                busy_iterations = loops.busy_iterations,
                busy_share = loops.busy_share(),
                "worker stopped"
            ),
            Err(e) => {
                panicked += 1;
                tracing::error!(worker = index, lcore, error = %e, "worker panicked");
            }
        }
    }
    // The controller holds the stats source, which holds the ports: dropping it closes them.
    drop(controller);
    // Closing a tap removes its kernel interface.
    drop(taps);
    let in_use = pool.in_use();
    if in_use == 0 {
        tracing::info!("mempool in use after shutdown: {in_use}");
    } else {
        tracing::warn!("mempool in use after shutdown: {in_use}");
    }
    drop(pool);
    served?;
    if panicked > 0 {
        bail!("{panicked} worker(s) panicked");
    }
    Ok(())
}

/// Serves the API and the admin endpoint until SIGTERM/SIGINT.
fn serve_api(
    config: &Config,
    controller: &Controller,
    readiness: &Arc<admin::Readiness>,
    token: Option<String>,
    address_sync: hostpath::AddressSync,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluiced-api")
        .enable_all()
        .build()
        .context("starting the API runtime")?;
    let result = runtime.block_on(async {
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let mut listeners = ApiListeners::default();
        if let Some(path) = config.api_socket() {
            listeners.unix = Some(bind_unix(&path, config.socket_mode()?)?);
            tracing::info!(path = %path.display(), "API listening on Unix socket");
        }
        if let Some(address) = config.api_tcp()? {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the API to {address}"))?;
            tracing::info!(
                address = %listener.local_addr()?,
                tls = config.api.tls.is_some(),
                bearer_token = token.is_some(),
                "API listening on TCP"
            );
            listeners.tcp = Some(listener);
        }
        let auth = AuthConfig {
            tls: config.api.tls.as_ref().map(|t| TlsFiles {
                cert: t.cert.clone(),
                key: t.key.clone(),
                client_ca: t.client_ca.clone(),
            }),
            bearer_token: token,
        };
        let admin = match config.admin_listen()? {
            Some(address) => Some(
                admin::AdminServer::start(address, controller.clone(), Arc::clone(readiness))
                    .with_context(|| format!("binding the admin endpoint to {address}"))?,
            ),
            None => None,
        };
        // Backend health checks, and the taps' kernel addresses following the interfaces.
        let checker = tokio::spawn(controlplane::health::checker::run(
            controller.clone(),
            shutdown_rx.clone(),
        ));
        let addresses = (!address_sync.is_empty()).then(|| {
            tokio::spawn(hostpath::follow_interfaces(
                controller.clone(),
                address_sync,
                shutdown_rx.clone(),
            ))
        });
        let mut server = tokio::spawn(server::serve(
            controller.clone(),
            listeners,
            auth,
            shutdown_rx,
        ));
        readiness.set_started();
        tracing::info!("sluiced ready");

        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        let early = tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); None }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: shutting down"); None }
            ended = &mut server => Some(ended),
        };
        readiness.set_stopping();
        shutdown_tx.send_replace(true);
        let served = match early {
            Some(ended) => ended,
            None => match tokio::time::timeout(API_DRAIN, &mut server).await {
                Ok(ended) => ended,
                Err(_) => {
                    tracing::warn!("API calls still running after {API_DRAIN:?}; closing them");
                    server.abort();
                    Ok(Ok(()))
                }
            },
        };
        if let Some(admin) = admin {
            admin.stop();
        }
        let _ = checker.await;
        if let Some(addresses) = addresses {
            let _ = addresses.await;
        }
        if let Some(path) = config.api_socket() {
            let _ = std::fs::remove_file(path);
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e).context("the API server failed")),
            Err(e) => Err(anyhow!("the API server task failed: {e}")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Binds the API's Unix socket: creates its directory, replaces a stale socket (one nobody
/// listens on), refuses to steal a live one, and sets its mode.
fn bind_unix(path: &std::path::Path, mode: u32) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the API socket directory {}", dir.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another process serves the API socket {} (is another sluiced running?)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale API socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the API socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}
