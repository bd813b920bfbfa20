//! The DPDK side of the daemon: EAL arguments, the mbuf pool, ports, and the polling workers
//! on their lcores. [`launch_workers`] is the same wiring `sluice-bench --forward-mode=lb` uses
//! (RX queues dealt round-robin, a TX queue per worker on every port, a handoff ring between
//! every two workers), written once for both.

use super::config::{device_name, is_pci_address, Config};
use anyhow::{bail, Context, Result};
use controlplane::server::{ConnectionQuery, ConnectionRecord};
use dataplane::dpdk::lcore::{self, LcoreJob, StopFlag};
use dataplane::dpdk::{
    handoff_channel, Eal, EalArgs, HandoffRx, HandoffTx, Mempool, Port, PortConfig, PortInfo,
};
use dataplane::flow::NatMode;
use dataplane::pipeline::{Worker, WorkerConfig, WorkerCounters};
use dataplane::snapshot::SnapshotHandle;
use dataplane::worker::{LoopStats, PollingWorker, RxPort};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The EAL command line for `config`: its `[eal]` settings, and each port's device
/// (`--vdev` for virtual devices, `-a` for PCI addresses, so only those are probed).
pub fn eal_args(config: &Config) -> EalArgs {
    let eal = &config.eal;
    let mut args = EalArgs::new("sluiced");
    if let Some(lcores) = &eal.lcores {
        args = args.lcores(lcores);
    }
    if let Some(mb) = eal.memory_mb {
        args = args.memory_mb(mb);
    }
    if eal.no_huge {
        args = args.no_huge();
    }
    if eal.no_shconf {
        args = args.no_shconf();
    }
    if let Some(prefix) = &eal.file_prefix {
        args = args.file_prefix(prefix);
    }
    if eal.no_pci {
        args = args.no_pci();
    }
    if let Some(level) = &eal.log_level {
        args = args.log_level(level);
    }
    for port in &config.ports {
        if is_pci_address(&port.device) {
            args = args.arg("-a").arg(port.device.clone());
        } else {
            args = args.vdev(&port.device);
        }
    }
    args.args(eal.extra_args.iter().cloned())
}

/// The worker lcores `config` asks for, checked against the EAL's.
pub fn worker_lcores(eal: &Eal, config: &Config) -> Result<Vec<u32>> {
    let available = eal.worker_lcores();
    let lcores = match &config.workers.lcores {
        Some(list) => {
            for lcore in list {
                if !available.contains(lcore) {
                    bail!(
                        "workers.lcores: lcore {lcore} is not an EAL worker lcore (EAL worker \
                         lcores: {available:?}; the first lcore of eal.lcores is the main lcore)"
                    );
                }
            }
            list.clone()
        }
        None => available,
    };
    let count = usize::from(config.workers.count.unwrap_or(lcores.len() as u16));
    if count == 0 || lcores.is_empty() {
        bail!(
            "no worker lcores: give eal.lcores (--lcores) at least two lcores, the first being \
             the main lcore"
        );
    }
    if count > lcores.len() {
        bail!(
            "workers.count is {count} but only {} worker lcore(s) are available ({lcores:?})",
            lcores.len()
        );
    }
    Ok(lcores[..count].to_vec())
}

/// A configured and started port with what the daemon reports about it.
#[derive(Debug)]
pub struct OpenPort {
    pub name: String,
    pub port: Port,
    pub info: PortInfo,
}

/// Creates the mbuf pool and configures and starts every port of `config`, with one TX queue
/// per worker and (by default) one RX queue per worker.
pub fn open_ports(eal: &Eal, config: &Config, workers: usize) -> Result<(Mempool, Vec<OpenPort>)> {
    let workers_u16 = u16::try_from(workers).context("too many workers")?;
    let dp = &config.dataplane;
    let per_port: u32 = config
        .ports
        .iter()
        .map(|p| {
            u32::from(p.rx_queues.unwrap_or(workers_u16)) * u32::from(p.rx_descriptors)
                + u32::from(workers_u16) * u32::from(p.tx_descriptors)
        })
        .sum();
    let rings = (workers as u32) * (workers as u32).saturating_sub(1) * dp.handoff_ring_size;
    // Each host tap holds its RX descriptors' mbufs on every queue (one queue per worker).
    let taps = config.host_taps().len() as u32
        * u32::from(workers_u16)
        * u32::from(super::hostpath::TAP_DESCRIPTORS)
        * 2;
    let default_mbufs = (per_port + rings + taps + workers as u32 * 2048 + 8192).max(16384);
    let mbufs = dp.mbufs.unwrap_or(default_mbufs);
    let pool = Mempool::new(eal, "sluiced", mbufs, 256, dp.mbuf_size, None).with_context(|| {
        format!("creating the mbuf pool of {mbufs} mbufs (raise eal.memory_mb or lower dataplane.mbufs)")
    })?;
    tracing::info!(mbufs, pool = pool.name(), "mbuf pool created");

    let mut ports = Vec::with_capacity(config.ports.len());
    for (index, port_config) in config.ports.iter().enumerate() {
        let device = device_name(&port_config.device);
        let mut port = Port::by_name(eal, device).with_context(|| {
            format!(
                "ports[{index}] {:?}: no DPDK port {device:?} (DPDK has {} port(s); check the \
                 device spec and the EAL log)",
                port_config.name,
                eal.port_count()
            )
        })?;
        let cfg = PortConfig {
            rx_queues: port_config.rx_queues.unwrap_or(workers_u16),
            tx_queues: workers_u16,
            rx_descriptors: port_config.rx_descriptors,
            tx_descriptors: port_config.tx_descriptors,
            promiscuous: port_config.promiscuous,
            mtu: port_config.mtu,
            // Packets the NIC finds with a bad IPv4 header checksum are dropped
            // (drop reason `bad_ip_checksum`); ports without the offload pass them unverified.
            rx_checksum: true,
            ..PortConfig::default()
        };
        let info = port.configure(&cfg, &pool).with_context(|| {
            format!(
                "configuring port {:?} ({device}) with {} RX and {} TX queues",
                port_config.name, cfg.rx_queues, cfg.tx_queues
            )
        })?;
        tracing::info!(
            port = %port_config.name,
            device,
            port_id = info.id,
            driver = %info.driver,
            mac = %mac_string(&info.mac),
            rx_queues = info.rx_queues,
            tx_queues = info.tx_queues,
            rss = info.rss_enabled != 0,
            // Off: the device cannot verify IPv4 header checksums; the pipeline sums them.
            rx_ip_checksum = info.rx_ip_checksum_offload(),
            "port configured"
        );
        ports.push(OpenPort {
            name: port_config.name.clone(),
            port,
            info,
        });
    }
    for open in &mut ports {
        open.port
            .start()
            .with_context(|| format!("starting port {:?}", open.name))?;
        match open.port.link() {
            Ok(link) => tracing::info!(port = %open.name, %link, "port started"),
            Err(e) => tracing::info!(port = %open.name, error = %e, "port started (link unknown)"),
        }
    }
    Ok((pool, ports))
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Live facts about a worker, written by its loop and read by the stats source.
#[derive(Debug, Default)]
pub struct WorkerLive {
    running: AtomicBool,
    busy_ratio: AtomicU64,
}

impl WorkerLive {
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub fn busy_ratio(&self) -> f64 {
        f64::from_bits(self.busy_ratio.load(Ordering::Relaxed))
    }
}

/// Clears `running` when the loop returns or unwinds.
struct RunningGuard(Arc<WorkerLive>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// A request to read a worker's connection table: the worker answers between polls, since the
/// table is single-threaded and only its loop may touch it.
#[derive(Debug)]
pub struct ConnectionsRequest {
    pub query: ConnectionQuery,
    pub reply: crossbeam::channel::Sender<Vec<ConnectionRecord>>,
}

/// Pending connection-table reads per worker; more are refused rather than queued.
const CONNECTION_REQUESTS: usize = 4;

/// A worker running on its lcore.
#[derive(Debug)]
pub struct LaunchedWorker {
    pub index: u32,
    pub lcore: u32,
    /// "port:queue" of each RX queue it polls.
    pub rx_queues: Vec<String>,
    pub counters: Arc<WorkerCounters>,
    pub live: Arc<WorkerLive>,
    /// Where to ask for the worker's connections.
    pub connections: crossbeam::channel::Sender<ConnectionsRequest>,
    pub job: LcoreJob<LoopStats>,
}

/// Answers one connection-table read: walks the table (a control-plane cost paid by this
/// worker between two polls, bounded by the table's size) and returns the matches.
fn answer_connections(worker: &PollingWorker, index: u32, request: ConnectionsRequest) {
    let now = worker.now();
    let records = worker
        .pipeline()
        .connections()
        .iter(now)
        .map(|c| ConnectionRecord {
            worker: index,
            service: c.data.service,
            original: c.original,
            reply: c.reply,
            full_nat: c.data.nat == NatMode::FullNat,
            state: c.state,
            age_ms: c.age_ms,
            idle_ms: c.idle_ms,
            packets: c.packets,
            bytes: c.bytes,
        })
        .filter(|r| request.query.matches(r))
        .take(request.query.limit)
        .collect();
    // The asker may have given up (timeout): nothing to do then.
    let _ = request.reply.send(records);
}

/// How long the busy ratio is measured over.
const BUSY_WINDOW: Duration = Duration::from_secs(1);
/// Polls between two checks of the stop flag and the clock.
const POLLS_PER_CHECK: u32 = 256;

/// The polling loop of one worker: polls until `stop`, measuring the busy ratio, then lets
/// [`PollingWorker::run`] flush what is buffered (the flag is already set, so it polls no more).
fn worker_loop(
    mut worker: PollingWorker,
    index: u32,
    requests: crossbeam::channel::Receiver<ConnectionsRequest>,
    stop: StopFlag,
    live: Arc<WorkerLive>,
) -> LoopStats {
    let _running = RunningGuard(Arc::clone(&live));
    let mut total = LoopStats::default();
    let started = dataplane::dpdk::rdtsc();
    let busy_before = worker.busy_cycles();
    let mut window = Instant::now();
    let (mut window_tsc, mut window_busy) = (started, busy_before);
    while !stop.should_stop() {
        for _ in 0..POLLS_PER_CHECK {
            if worker.poll_once() > 0 {
                total.busy_iterations += 1;
            }
        }
        total.iterations += u64::from(POLLS_PER_CHECK);
        while let Ok(request) = requests.try_recv() {
            answer_connections(&worker, index, request);
        }
        if window.elapsed() >= BUSY_WINDOW {
            let (tsc, busy) = (dataplane::dpdk::rdtsc(), worker.busy_cycles());
            let last = LoopStats {
                cycles: tsc.wrapping_sub(window_tsc),
                busy_cycles: busy.wrapping_sub(window_busy),
                ..LoopStats::default()
            };
            live.busy_ratio
                .store(last.busy_share().to_bits(), Ordering::Relaxed);
            (window, window_tsc, window_busy) = (Instant::now(), tsc, busy);
        }
    }
    total.cycles = dataplane::dpdk::rdtsc().wrapping_sub(started);
    total.busy_cycles = worker.busy_cycles().wrapping_sub(busy_before);
    // Flushes the TX buffers and handoff bursts; `stop` is set, so no further polling.
    worker.run(&stop);
    total
}

/// Starts one polling worker per lcore of `lcores` over `ports` (whose RX queues are dealt
/// round-robin, `rx_queues[i]` of port `i`), each with its own TX queue on every port and a
/// handoff ring to every other worker. `template` gives the per-worker settings (index and
/// count are filled in). Every worker reads snapshots from `snapshots`.
#[allow(clippy::too_many_arguments)]
pub fn launch_workers(
    eal: &Eal,
    ports: &mut [&mut Port],
    port_names: &[String],
    rx_queues: &[u16],
    lcores: &[u32],
    template: &WorkerConfig,
    snapshots: &SnapshotHandle,
    handoff_ring_size: u32,
    stop: &StopFlag,
) -> Result<Vec<LaunchedWorker>> {
    launch_workers_with_taps(
        eal,
        ports,
        port_names,
        rx_queues,
        lcores,
        template,
        snapshots,
        handoff_ring_size,
        stop,
        &mut [],
    )
}

/// [`launch_workers`] with the exception path: `taps[i]` is the host tap of port `i` (`None`
/// or missing: none), configured with one RX and one TX queue per worker. Every worker gets
/// its TX queue on each tap; worker 0 polls all of the taps' RX queues.
#[allow(clippy::too_many_arguments)]
pub fn launch_workers_with_taps(
    eal: &Eal,
    ports: &mut [&mut Port],
    port_names: &[String],
    rx_queues: &[u16],
    lcores: &[u32],
    template: &WorkerConfig,
    snapshots: &SnapshotHandle,
    handoff_ring_size: u32,
    stop: &StopFlag,
    taps: &mut [Option<&mut Port>],
) -> Result<Vec<LaunchedWorker>> {
    let n_workers = lcores.len();
    let mut rx: Vec<Vec<RxPort>> = (0..n_workers).map(|_| Vec::new()).collect();
    let mut rx_names: Vec<Vec<String>> = (0..n_workers).map(|_| Vec::new()).collect();
    let mut next = 0usize;
    for (index, port) in ports.iter_mut().enumerate() {
        let queues = rx_queues.get(index).copied().unwrap_or(1);
        for q in 0..queues {
            rx[next % n_workers].push(RxPort {
                port_index: index as u16,
                queue: port.rx_queue(q)?,
            });
            let name = port_names.get(index).map_or(port.name(), String::as_str);
            rx_names[next % n_workers].push(format!("{name}:{q}"));
            next += 1;
        }
    }
    // handoff[from][to]
    let mut senders: Vec<Vec<Option<HandoffTx>>> = (0..n_workers)
        .map(|_| (0..n_workers).map(|_| None).collect())
        .collect();
    let mut receivers: Vec<Vec<HandoffRx>> = (0..n_workers).map(|_| Vec::new()).collect();
    for (from, row) in senders.iter_mut().enumerate() {
        for (to, sender) in row.iter_mut().enumerate() {
            if from != to {
                let (tx, rx) = handoff_channel(&format!("ho{from}to{to}"), handoff_ring_size)
                    .with_context(|| format!("creating the handoff ring {from}->{to}"))?;
                *sender = Some(tx);
                receivers[to].push(rx);
            }
        }
    }

    let mut launched = Vec::with_capacity(n_workers);
    for (index, (((rx, rx_names), (handoff_tx, handoff_rx)), &lcore_id)) in rx
        .into_iter()
        .zip(rx_names)
        .zip(senders.into_iter().zip(receivers))
        .zip(lcores)
        .enumerate()
    {
        // On any error the workers already launched must stop, or dropping their jobs waits
        // for them forever.
        let tx = ports
            .iter_mut()
            .map(|p| p.tx_queue(index as u16))
            .collect::<std::result::Result<Vec<_>, _>>()
            .inspect_err(|_| stop.stop())?;
        let pipeline = Worker::new(WorkerConfig {
            index: index as u16,
            workers: n_workers as u16,
            ..template.clone()
        })
        .inspect_err(|_| stop.stop())
        .with_context(|| format!("creating worker {index}"))?;
        let host = super::hostpath::worker_host_path(taps, index, n_workers)
            .inspect_err(|_| stop.stop())?;
        let worker =
            PollingWorker::new(pipeline, rx, tx, handoff_tx, handoff_rx, snapshots.reader())
                .with_host_path(host);
        // ARP requests, solicitations and announcements come from the ports' pool.
        let worker = match ports.first().and_then(|p| p.mempool()) {
            Some(pool) => worker.with_mempool(pool),
            None => worker,
        };
        let counters = worker.counters();
        let live = Arc::new(WorkerLive::default());
        live.running.store(true, Ordering::Release);
        let (connections, requests) = crossbeam::channel::bounded(CONNECTION_REQUESTS);
        let job = {
            let (worker_stop, worker_live) = (stop.clone(), Arc::clone(&live));
            let worker_index = index as u32;
            lcore::launch(eal, lcore_id, move || {
                worker_loop(worker, worker_index, requests, worker_stop, worker_live)
            })
            .inspect_err(|_| stop.stop())
            .with_context(|| format!("launching worker {index} on lcore {lcore_id}"))?
        };
        tracing::info!(worker = index, lcore = lcore_id, rx_queues = ?rx_names, "worker started");
        launched.push(LaunchedWorker {
            index: index as u32,
            lcore: lcore_id,
            rx_queues: rx_names,
            counters,
            live,
            connections,
            job,
        });
    }
    Ok(launched)
}
