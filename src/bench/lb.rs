//! `--forward-mode=lb`: Sluice's own worker loop (pipeline, connection table, handoff rings)
//! on the benchmark's ports, with one service built from the command line.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dataplane::conntrack::Timeouts;
use dataplane::dpdk::{lcore, Eal, Port};
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::vlan::VlanPort;
use dataplane::pipeline::{DropReason, WorkerConfig, WorkerCounters};
use dataplane::snapshot::{
    Backend, BackendState, Neighbour, ServiceConfig, ServiceKey, Snapshot, SnapshotConfig,
    SnapshotHandle, SnatPool,
};
use dataplane::worker::LoopStats;

use super::options::{BenchOptions, LbNat};
use super::report::LbCoreReport;
use super::{peer_index, CoreResult};
use crate::daemon::engine::{launch_workers, LaunchedWorker};

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

/// Starts one Sluice worker per forwarding lcore with the daemon's own launcher: RX queues
/// dealt round-robin, a TX queue per worker on every port, handoff rings between workers.
pub fn launch(
    eal: &Eal,
    opts: &BenchOptions,
    ports: &mut [Port],
    lcores: &[u32],
    stop: &lcore::StopFlag,
) -> Result<Vec<LaunchedWorker>> {
    let egress = peer_index(opts.port_topology, 0, ports.len()) as u16;
    let snapshots = SnapshotHandle::new(bench_snapshot(opts, egress)?);
    let port_macs: Vec<[u8; 6]> = ports
        .iter()
        .map(|p| p.mac().unwrap_or([0x02, 0, 0, 0, 0, 0x01]))
        .collect();
    let names: Vec<String> = ports.iter().map(|p| p.name().to_owned()).collect();
    let timeouts = match opts.lb_timeout_ms {
        Some(ms) => Timeouts {
            tcp_syn: ms,
            tcp_established: ms,
            tcp_fin: ms,
            tcp_time_wait: ms,
            tcp_close: ms,
            udp: ms,
            udp_stream: ms,
            icmp: ms,
            embryonic_under_pressure: ms,
        }
        .clamped(),
        None => Timeouts::DEFAULT,
    };
    let vlan_ports = match opts.lb_vlan {
        Some(vlan) => (0..ports.len() as u16)
            .map(|port| VlanPort { port, vlan })
            .collect(),
        None => Vec::new(),
    };
    let template = WorkerConfig {
        conn_capacity: opts.lb_conn_capacity,
        port_macs,
        vlan_ports,
        timeouts,
        ..WorkerConfig::default()
    };
    let rx_queues = vec![opts.rxq; ports.len()];
    let mut port_refs: Vec<&mut Port> = ports.iter_mut().collect();
    // Workers keep their own snapshot readers; the handle may go after the launch.
    launch_workers(
        eal,
        &mut port_refs,
        &names,
        &rx_queues,
        lcores,
        &template,
        &snapshots,
        4096,
        stop,
    )
}

/// What one lb worker counted, for the final report; `stats` is what its polling loop returned.
pub fn core_result(c: &WorkerCounters, stats: &LoopStats) -> CoreResult {
    let drops: BTreeMap<&'static str, u64> = DropReason::all()
        .map(|r| (r.as_str(), c.drops(r)))
        .filter(|(_, n)| *n > 0)
        .collect();
    CoreResult {
        rx: c.rx_packets.get(),
        tx: c.tx_packets.get(),
        dropped: c.total_drops(),
        busy_cycles: stats.busy_cycles,
        lb: Some(LbCoreReport {
            new_connections: c.new_connections.get(),
            connections_per_second: 0.0,
            active_connections: c.active_connections.get(),
            handoff_out: c.handoff_out.get(),
            handoff_in: c.handoff_in.get(),
            rejects_sent: c.rejects_sent.get(),
            busy_share: stats.busy_share(),
            packets_per_busy_poll: (c.rx_packets.get() + c.handoff_in.get()) as f64
                / stats.busy_iterations.max(1) as f64,
            drops,
        }),
    }
}
