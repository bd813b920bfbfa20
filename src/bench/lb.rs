//! `--forward-mode=lb`: Sluice's own worker loop (pipeline, connection table, handoff rings)
//! on the benchmark's ports, with one service built from the command line.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dataplane::dpdk::{handoff_channel, lcore, Eal, Port};
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::{DropReason, Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, Neighbour, ServiceConfig, ServiceKey, Snapshot, SnapshotConfig,
    SnapshotHandle, SnatPool,
};
use dataplane::worker::{PollingWorker, RxPort};

use super::options::{BenchOptions, LbNat};
use super::report::LbCoreReport;
use super::{peer_index, CoreResult, Jobs};

const BACKEND_PORT: u16 = 8080;

/// The benchmark's snapshot: a TCP and a UDP service on the VIP, `backends` backends whose
/// next hop is `egress` (the port index traffic leaves by), static neighbours for them.
pub fn bench_snapshot(opts: &BenchOptions, egress: u16) -> Result<Snapshot> {
    let vip = Addr::from(opts.lb_vip);
    let v4 = vip.is_v4();
    let backend_addr = |i: u16| -> Addr {
        if v4 {
            Addr::from_v4([198, 19, (i >> 8) as u8, (i & 0xff) as u8])
        } else {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[5] = 1;
            a[14..].copy_from_slice(&i.to_be_bytes());
            Addr::from_v6(a)
        }
    };
    let backends: Vec<Backend> = (1..=opts.lb_backends)
        .map(|i| Backend {
            id: u32::from(i),
            addr: backend_addr(i),
            port: BACKEND_PORT,
            weight: 1,
            state: BackendState::Active,
        })
        .collect();
    let neighbours = backends
        .iter()
        .map(|b| Neighbour {
            addr: b.addr,
            mac: [0x02, 0, 0, 0xbe, (b.id >> 8) as u8, b.id as u8],
            port: egress,
        })
        .collect();
    let snat = (1..=4u8)
        .map(|i| {
            if v4 {
                Addr::from_v4([198, 19, 255, i])
            } else {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                a[5] = 0xff;
                a[15] = i;
                Addr::from_v6(a)
            }
        })
        .collect();
    let (mode, snat_pool) = match opts.lb_nat {
        LbNat::Dnat => (NatMode::Dnat, None),
        LbNat::Fullnat => (NatMode::FullNat, Some(0)),
    };
    let service = |id: u32, proto: Proto| ServiceConfig {
        id,
        name: format!("bench-{proto:?}").to_lowercase(),
        key: ServiceKey {
            vip,
            port: opts.lb_port,
            proto,
        },
        mode,
        selection: Selection::Maglev,
        persistence: false,
        backends: backends.clone(),
        snat_pool,
        table_size: None,
    };
    let config = SnapshotConfig {
        generation: 1,
        selection_seed: 0x51_1ce,
        services: vec![service(1, Proto::Tcp), service(2, Proto::Udp)],
        snat_pools: vec![SnatPool { addrs: snat }],
        routes: Vec::new(),
        neighbours,
        local_addrs: Vec::new(),
    };
    Snapshot::compile(config, None).context("compiling the benchmark service")
}

/// Starts one Sluice worker per forwarding lcore. RX queues are dealt round-robin as testpmd
/// deals streams; every worker has its own TX queue on every port and a handoff ring to every
/// other worker.
pub fn launch(
    eal: &Eal,
    opts: &BenchOptions,
    ports: &mut [Port],
    lcores: &[u32],
    stop: &lcore::StopFlag,
) -> Result<Jobs> {
    let n_workers = lcores.len();
    let egress = peer_index(opts.port_topology, 0, ports.len()) as u16;
    let snapshots = SnapshotHandle::new(bench_snapshot(opts, egress)?);
    let port_macs: Vec<[u8; 6]> = ports
        .iter()
        .map(|p| p.mac().unwrap_or([0x02, 0, 0, 0, 0, 0x01]))
        .collect();

    let mut rx: Vec<Vec<RxPort>> = (0..n_workers).map(|_| Vec::new()).collect();
    let mut next = 0usize;
    for (index, port) in ports.iter_mut().enumerate() {
        for q in 0..opts.rxq {
            rx[next % n_workers].push(RxPort {
                port_index: index as u16,
                queue: port.rx_queue(q)?,
            });
            next += 1;
        }
    }
    // handoff[from][to]
    let mut senders: Vec<Vec<Option<dataplane::dpdk::HandoffTx>>> = (0..n_workers)
        .map(|_| (0..n_workers).map(|_| None).collect())
        .collect();
    let mut receivers: Vec<Vec<dataplane::dpdk::HandoffRx>> =
        (0..n_workers).map(|_| Vec::new()).collect();
    for (from, row) in senders.iter_mut().enumerate() {
        for (to, sender) in row.iter_mut().enumerate() {
            if from != to {
                let (tx, rx) = handoff_channel(&format!("ho{from}to{to}"), 4096)?;
                *sender = Some(tx);
                receivers[to].push(rx);
            }
        }
    }

    let mut jobs = Vec::new();
    for (index, ((rx, (handoff_tx, handoff_rx)), &lcore_id)) in rx
        .into_iter()
        .zip(senders.into_iter().zip(receivers))
        .zip(lcores)
        .enumerate()
    {
        let tx = ports
            .iter_mut()
            .map(|p| p.tx_queue(index as u16))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let pipeline = Worker::new(WorkerConfig {
            index: index as u16,
            workers: n_workers as u16,
            conn_capacity: opts.lb_conn_capacity,
            port_macs: port_macs.clone(),
            ..WorkerConfig::default()
        })?;
        let streams = rx.len();
        let mut worker =
            PollingWorker::new(pipeline, rx, tx, handoff_tx, handoff_rx, snapshots.reader());
        let stop = stop.clone();
        let job = lcore::launch(eal, lcore_id, move || {
            worker.run(&stop);
            core_result(&worker)
        })
        .with_context(|| format!("launching lcore {lcore_id}"))?;
        jobs.push((lcore_id, streams, job));
    }
    // Workers keep their readers; the handle may go (the snapshot lives in the readers).
    drop(snapshots);
    Ok(jobs)
}

fn core_result(worker: &PollingWorker) -> CoreResult {
    let c = worker.counters();
    let drops: BTreeMap<&'static str, u64> = DropReason::all()
        .map(|r| (r.as_str(), c.drops(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    CoreResult {
        rx: c.rx_packets.get(),
        tx: c.tx_packets.get(),
        dropped: c.total_drops(),
        busy_cycles: 0,
        lb: Some(LbCoreReport {
            new_connections: c.new_connections.get(),
            connections_per_second: 0.0,
            active_connections: c.active_connections.get(),
            handoff_out: c.handoff_out.get(),
            handoff_in: c.handoff_in.get(),
            rejects_sent: c.rejects_sent.get(),
            drops,
        }),
    }
}
