//! `sluice-bench`: a testpmd-style harness over any DPDK ports.
//!
//! Streams are built as testpmd builds them: every RX queue of every port forwards to the same
//! queue number of its peer port (per `--port-topology`), and streams are dealt round-robin to
//! the forwarding lcores. The main lcore only prints statistics.

pub mod engine;
pub mod lb;
pub mod lbgen;
pub mod options;
pub mod report;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::dpdk::{self, lcore, Eal, MbufBurst, Mempool, Port, PortConfig, PortStats};

use engine::{run_burst, Stream, TxTemplate};
use options::{BenchOptions, ForwardMode, PortTopology};
use report::{CoreReport, FinalReport, PortReport};

/// The peer that port index `i` (of `n`) sends to.
pub fn peer_index(topology: PortTopology, i: usize, n: usize) -> usize {
    match topology {
        PortTopology::Loop => i,
        PortTopology::Chained => (i + 1) % n,
        PortTopology::Paired => {
            let peer = i ^ 1;
            if peer < n {
                peer
            } else {
                i
            }
        }
    }
}

/// What a forwarding lcore reports when it stops.
#[derive(Debug, Default)]
pub struct CoreResult {
    pub rx: u64,
    pub tx: u64,
    pub dropped: u64,
    pub busy_cycles: u64,
    /// Load-balancer figures (`--forward-mode=lb` only).
    pub lb: Option<report::LbCoreReport>,
}

/// Runs the benchmark; `stop` ends it early (signals). Returns the final report.
pub fn run(eal: &Eal, opts: &BenchOptions, stop: Arc<AtomicBool>) -> Result<FinalReport> {
    if opts.lb_generate && opts.forward_mode != ForwardMode::Lb {
        bail!("--lb-generate feeds --forward-mode=lb only");
    }
    // The generator's ring pair replaces the EAL's ports.
    let port_ids = match &opts.portlist {
        _ if opts.lb_generate => Vec::new(),
        Some(list) => list.clone(),
        None => eal.port_ids(),
    };
    if port_ids.is_empty() && !opts.lb_generate {
        bail!("no DPDK ports: give devices with --vdev or PCI addresses in the EAL arguments");
    }
    let workers = eal.worker_lcores();
    if opts.nb_cores == 0 || opts.nb_cores > workers.len() {
        bail!(
            "--nb-cores={} but the EAL has {} worker lcore(s) (add lcores with -l; the first is the main lcore)",
            opts.nb_cores,
            workers.len()
        );
    }
    let workers = &workers[..opts.nb_cores];

    let n_ports = port_ids.len().max(1) as u32;
    let per_port =
        u32::from(opts.rxq) * u32::from(opts.rxd) + u32::from(opts.txq) * u32::from(opts.txd);
    let default_mbufs = (n_ports * per_port + opts.nb_cores as u32 * 2048 + 8192).max(16384);
    let pool = Mempool::new(
        eal,
        "bench",
        opts.total_num_mbufs.unwrap_or(default_mbufs),
        256,
        opts.mbuf_size,
        None,
    )
    .context("creating the mbuf pool (raise -m or lower --total-num-mbufs)")?;

    // The lb workers each need a TX queue of their own on every port.
    let tx_queues = if opts.forward_mode == ForwardMode::Lb {
        opts.txq.max(opts.nb_cores as u16)
    } else {
        opts.txq
    };
    // With --lb-generate the workers' only port is one end of an in-process ring pair; the
    // generator holds the other.
    let (mut unconfigured, mut generator_port) = (Vec::new(), None);
    if opts.lb_generate {
        let queues = opts.rxq.max(tx_queues);
        let (outside, appliance) = Port::ring_pair(eal, "lbgen", 4096, queues)
            .context("creating the generator's ring pair")?;
        unconfigured.push(appliance);
        generator_port = Some(outside);
    }
    for &id in &port_ids {
        unconfigured.push(Port::by_id(eal, id).with_context(|| format!("port {id}"))?);
    }
    let mut ports = Vec::new();
    for mut port in unconfigured {
        let id = port.id();
        let cfg = PortConfig {
            rx_queues: opts.rxq,
            tx_queues,
            rx_descriptors: opts.rxd,
            tx_descriptors: opts.txd,
            ..PortConfig::default()
        };
        let info = port
            .configure(&cfg, &pool)
            .with_context(|| format!("configuring port {id}"))?;
        eprintln!(
            "Port {} ({}, driver {}): MAC {}, RSS {}",
            id,
            info.name,
            info.driver,
            mac_string(&info.mac),
            if info.rss_enabled != 0 { "on" } else { "off" }
        );
        ports.push(port);
    }
    for port in &mut ports {
        port.start()
            .with_context(|| format!("starting port {}", port.id()))?;
    }
    // The generator's end: it sends to every worker RX queue and drains every worker TX queue.
    let generator_queues = (opts.rxq, tx_queues);
    if let Some(port) = generator_port.as_mut() {
        let cfg = PortConfig {
            rx_queues: generator_queues.1,
            tx_queues: generator_queues.0,
            ..PortConfig::default()
        };
        port.configure(&cfg, &pool)
            .context("configuring the generator's port")?;
        port.start().context("starting the generator's port")?;
    }

    let stats_readers: Vec<_> = ports
        .iter()
        .map(|p| (p.id(), p.name().to_owned(), p.stats_reader()))
        .collect();
    let baseline: Vec<PortStats> = stats_readers
        .iter()
        .map(|(_, _, r)| r.stats().unwrap_or_default())
        .collect();
    let worker_stop = lcore::StopFlag::new();
    let started = Instant::now();
    let tsc_start = dpdk::rdtsc();
    let launched = if opts.forward_mode == ForwardMode::Lb {
        Launched::Lb(lb::launch(eal, opts, &mut ports, workers, &worker_stop)?)
    } else {
        Launched::Streams(launch_streams(
            eal,
            opts,
            &mut ports,
            workers,
            &pool,
            &worker_stop,
        )?)
    };
    let generator_stop = Arc::new(AtomicBool::new(false));
    let generator = match generator_port {
        Some(port) => {
            let mac = ports
                .first()
                .and_then(|p| p.mac().ok())
                .unwrap_or([0x02, 0, 0, 0, 0, 0x01]);
            let traffic = lbgen::Traffic::new(opts, mac)?;
            Some(lbgen::spawn(
                port,
                pool.clone(),
                traffic,
                generator_queues,
                usize::from(opts.burst),
                Arc::clone(&generator_stop),
            )?)
        }
        None => None,
    };
    drop(ports); // the queues now keep the ports open

    // The main lcore prints statistics until the duration ends or a signal arrives.
    let deadline = opts
        .duration
        .map(|d| started + Duration::from_secs_f64(d.max(0.0)));
    let period = (opts.stats_period > 0).then(|| Duration::from_secs(opts.stats_period));
    let mut last_print = Instant::now();
    let mut last_stats = baseline.clone();
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if let Some(p) = period {
            let since = last_print.elapsed();
            if since >= p {
                let secs = since.as_secs_f64();
                last_print = Instant::now();
                for (idx, (id, name, reader)) in stats_readers.iter().enumerate() {
                    let now = reader.stats().unwrap_or_default();
                    let r = PortReport::new(
                        *id,
                        name,
                        &sub(&now, &baseline[idx]),
                        &sub(&last_stats[idx], &baseline[idx]),
                        secs,
                    );
                    if opts.json {
                        println!("{}", serde_json::json!({"period": r}));
                    } else {
                        print!("{}", r.nic_block());
                    }
                    last_stats[idx] = now;
                }
            }
        }
    }
    generator_stop.store(true, Ordering::Relaxed);
    let generator = match generator.map(|g| g.join()) {
        Some(Ok(report)) => Some(report),
        Some(Err(_)) => bail!("the lb generator thread panicked"),
        None => None,
    };
    if let Some(g) = &generator {
        // Let the workers take what is still in the ring (at most a second), so that what
        // the generator sent and what the workers received agree.
        let deadline = Instant::now() + Duration::from_secs(1);
        let received = || -> u64 {
            stats_readers
                .iter()
                .zip(&baseline)
                .map(|((_, _, r), b)| r.stats().unwrap_or_default().rx_packets - b.rx_packets)
                .sum()
        };
        while received() < g.sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    worker_stop.stop();
    let seconds = started.elapsed().as_secs_f64();
    let tsc_cycles = dpdk::rdtsc().wrapping_sub(tsc_start);

    let mut cores = Vec::new();
    let mut panicked = Vec::new();
    let mut dropped_total = 0;
    let mut handled_total = 0;
    for (lcore_id, stream_count, outcome) in launched.join() {
        let res = match outcome {
            Ok(res) => res,
            Err(p) => {
                panicked.push(p.to_string());
                CoreResult::default()
            }
        };
        let handled = if opts.forward_mode == ForwardMode::Txonly {
            res.tx + res.dropped
        } else {
            res.rx
        };
        handled_total += handled;
        dropped_total += res.dropped;
        let per_packet = |cycles: u64| {
            if handled > 0 {
                cycles as f64 / handled as f64
            } else {
                0.0
            }
        };
        cores.push(CoreReport {
            lcore: lcore_id,
            streams: stream_count,
            rx_packets: res.rx,
            tx_packets: res.tx,
            dropped: res.dropped,
            mpps: handled as f64 / seconds / 1e6,
            cycles_per_packet: per_packet(tsc_cycles),
            busy_cycles_per_packet: opts.record_core_cycles.then(|| per_packet(res.busy_cycles)),
            lb: res.lb.map(|mut lb| {
                lb.connections_per_second = lb.new_connections as f64 / seconds;
                lb
            }),
        });
    }
    let mut port_reports = Vec::new();
    for (idx, (id, name, reader)) in stats_readers.iter().enumerate() {
        let total = sub(&reader.stats().unwrap_or_default(), &baseline[idx]);
        port_reports.push(PortReport::new(
            *id,
            name,
            &total,
            &PortStats::default(),
            seconds,
        ));
    }
    let rx_mpps = port_reports.iter().map(|p| p.rx_pps).sum::<f64>() / 1e6;
    let tx_mpps = port_reports.iter().map(|p| p.tx_pps).sum::<f64>() / 1e6;
    drop(stats_readers); // last references: ports stop and close here
    let report = FinalReport {
        mode: opts.forward_mode,
        seconds,
        tsc_hz: dpdk::tsc_hz(),
        ports: port_reports,
        cores,
        rx_mpps,
        tx_mpps,
        fwd_mpps: handled_total as f64 / seconds / 1e6,
        dropped: dropped_total,
        generator,
    };
    if !panicked.is_empty() {
        bail!(
            "forwarding stopped by a worker panic: {}",
            panicked.join("; ")
        );
    }
    let in_use = pool.in_use();
    if in_use != 0 {
        bail!("{in_use} mbuf(s) still in use after the ports closed (leak)");
    }
    Ok(report)
}

fn forwarding_loop(
    mode: ForwardMode,
    mut streams: Vec<Stream>,
    burst_size: usize,
    pool: &Mempool,
    template: &TxTemplate,
    record_cycles: bool,
    stop: &lcore::StopFlag,
) -> CoreResult {
    let mut burst = MbufBurst::new();
    let mut busy_cycles = 0u64;
    while !stop.should_stop() {
        for stream in streams.iter_mut() {
            if record_cycles {
                let t0 = dpdk::rdtsc();
                if run_burst(mode, stream, &mut burst, burst_size, pool, template) > 0 {
                    busy_cycles += dpdk::rdtsc().wrapping_sub(t0);
                }
            } else {
                run_burst(mode, stream, &mut burst, burst_size, pool, template);
            }
        }
    }
    let mut result = CoreResult {
        busy_cycles,
        ..CoreResult::default()
    };
    for stream in &streams {
        result.rx += stream.counters.rx.load(Ordering::Relaxed);
        result.tx += stream.counters.tx.load(Ordering::Relaxed);
        result.dropped += stream.counters.dropped.load(Ordering::Relaxed);
    }
    result
}

type Jobs = Vec<(u32, usize, lcore::LcoreJob<CoreResult>)>;

/// The forwarding lcores of either kind of run.
enum Launched {
    Streams(Jobs),
    Lb(Vec<crate::daemon::engine::LaunchedWorker>),
}

impl Launched {
    /// Waits for every lcore: (lcore, streams or RX queues, its result or its panic).
    fn join(
        self,
    ) -> Vec<(
        u32,
        usize,
        std::result::Result<CoreResult, lcore::WorkerPanic>,
    )> {
        match self {
            Launched::Streams(jobs) => jobs
                .into_iter()
                .map(|(lcore, streams, job)| (lcore, streams, job.join()))
                .collect(),
            Launched::Lb(workers) => workers
                .into_iter()
                .map(|w| {
                    let outcome = w
                        .job
                        .join()
                        .map(|stats| lb::core_result(&w.counters, &stats));
                    (w.lcore, w.rx_queues.len(), outcome)
                })
                .collect(),
        }
    }
}

/// testpmd's streams: every RX queue of every port forwards to the same queue number of its
/// peer port; streams are dealt round-robin to the forwarding lcores.
fn launch_streams(
    eal: &Eal,
    opts: &BenchOptions,
    ports: &mut [Port],
    workers: &[u32],
    pool: &Mempool,
    worker_stop: &lcore::StopFlag,
) -> Result<Jobs> {
    let mut streams: Vec<Vec<Stream>> = (0..workers.len()).map(|_| Vec::new()).collect();
    let mut stream_no = 0usize;
    let n = ports.len();
    for i in 0..n {
        for q in 0..opts.rxq {
            let peer = peer_index(opts.port_topology, i, n);
            let rxq = ports[i].rx_queue(q)?;
            let txq_no = q % opts.txq;
            let txq = ports[peer].tx_queue(txq_no).with_context(|| {
                format!(
                    "TX queue {txq_no} of port {} is used by two streams; use --txq >= --rxq",
                    ports[peer].id()
                )
            })?;
            streams[stream_no % workers.len()].push(Stream::new(rxq, txq));
            stream_no += 1;
        }
    }
    let src_mac = ports[0].mac().unwrap_or([2, 0, 0, 0, 0, 1]);
    let template = TxTemplate::new(opts.txpkts, opts.txflows, src_mac);
    let mut jobs = Vec::new();
    for (core_streams, &lcore_id) in streams.into_iter().zip(workers) {
        let stop = worker_stop.clone();
        let pool = pool.clone();
        let template = template.clone();
        let mode = opts.forward_mode;
        let burst_size = usize::from(opts.burst);
        let record = opts.record_core_cycles;
        let stream_count = core_streams.len();
        let job = lcore::launch(eal, lcore_id, move || {
            forwarding_loop(
                mode,
                core_streams,
                burst_size,
                &pool,
                &template,
                record,
                &stop,
            )
        })
        .with_context(|| format!("launching lcore {lcore_id}"))?;
        jobs.push((lcore_id, stream_count, job));
    }
    Ok(jobs)
}

fn sub(a: &PortStats, b: &PortStats) -> PortStats {
    PortStats {
        rx_packets: a.rx_packets.saturating_sub(b.rx_packets),
        tx_packets: a.tx_packets.saturating_sub(b.tx_packets),
        rx_bytes: a.rx_bytes.saturating_sub(b.rx_bytes),
        tx_bytes: a.tx_bytes.saturating_sub(b.tx_bytes),
        rx_missed: a.rx_missed.saturating_sub(b.rx_missed),
        rx_errors: a.rx_errors.saturating_sub(b.rx_errors),
        tx_errors: a.tx_errors.saturating_sub(b.tx_errors),
        rx_no_mbuf: a.rx_no_mbuf.saturating_sub(b.rx_no_mbuf),
    }
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_pair_ports_like_testpmd() {
        assert_eq!(peer_index(PortTopology::Paired, 0, 2), 1);
        assert_eq!(peer_index(PortTopology::Paired, 1, 2), 0);
        assert_eq!(peer_index(PortTopology::Paired, 2, 3), 2);
        assert_eq!(peer_index(PortTopology::Chained, 2, 3), 0);
        assert_eq!(peer_index(PortTopology::Loop, 1, 2), 1);
    }
}
