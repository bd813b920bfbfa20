//! The daemon's [`StatsSource`]: the workers' counters and liveness, the ports' driver
//! statistics and link state.

use super::engine::{ConnectionsRequest, WorkerLive};
use controlplane::server::{
    ConnectionQuery, ConnectionRecord, LinkView, PortCounters, PortView, StatsSource, WorkerView,
};
use dataplane::dpdk::{Port, PortInfo};
use dataplane::pipeline::WorkerCounters;
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;

/// One worker as the stats source keeps it.
#[derive(Debug)]
pub struct WorkerEntry {
    pub index: u32,
    pub lcore: u32,
    pub rx_queues: Vec<String>,
    pub counters: Arc<WorkerCounters>,
    pub live: Arc<WorkerLive>,
    /// Where to ask the worker for its connections.
    pub connections: crossbeam::channel::Sender<ConnectionsRequest>,
}

/// How long a worker may take to answer a connection-table read.
const CONNECTIONS_TIMEOUT: Duration = Duration::from_secs(5);

/// One port as the stats source keeps it.
#[derive(Debug)]
pub struct PortEntry {
    pub name: String,
    pub info: PortInfo,
    /// The port (its queues are with the workers). Keeps it open while held: the daemon drops
    /// the stats source before it checks the mempool.
    pub port: Port,
}

/// Live data of the running daemon.
#[derive(Debug)]
pub struct DaemonStats {
    pub workers: Vec<WorkerEntry>,
    pub ports: Vec<PortEntry>,
    /// The neighbour cache the workers share (learned ARP/ND bindings).
    pub neighbours: Arc<dataplane::neigh::NeighbourCache>,
}

impl StatsSource for DaemonStats {
    fn learned_neighbours(&self) -> Vec<controlplane::server::LearnedNeighbour> {
        self.neighbours
            .bindings()
            .into_iter()
            .map(|b| controlplane::server::LearnedNeighbour {
                address: b.addr.to_ip(),
                mac: b.mac,
                port: b.port,
            })
            .collect()
    }

    fn workers(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|w| WorkerView {
                index: w.index,
                lcore: w.lcore,
                // The safe DPDK layer does not expose rte_lcore_to_socket_id yet.
                numa_socket: 0,
                rx_queues: w.rx_queues.clone(),
                running: w.live.running(),
                busy_ratio: w.live.busy_ratio(),
                counters: Arc::clone(&w.counters),
            })
            .collect()
    }

    fn ports(&self) -> Vec<PortView> {
        self.ports
            .iter()
            .map(|p| {
                let counters = p.port.stats().ok().map(|s| PortCounters {
                    rx_packets: s.rx_packets,
                    tx_packets: s.tx_packets,
                    rx_bytes: s.rx_bytes,
                    tx_bytes: s.tx_bytes,
                    rx_missed: s.rx_missed,
                    rx_errors: s.rx_errors,
                    tx_errors: s.tx_errors,
                    rx_nombuf: s.rx_no_mbuf,
                });
                PortView {
                    name: p.name.clone(),
                    port_id: p.info.id,
                    driver: p.info.driver.clone(),
                    mac: p.info.mac,
                    link: p.port.link().ok().map(|l| LinkView {
                        up: l.up,
                        speed_mbps: l.speed_mbps,
                        full_duplex: l.full_duplex,
                    }),
                    rx_queues: p.info.rx_queues,
                    tx_queues: p.info.tx_queues,
                    numa_socket: p.info.socket,
                    counters,
                }
            })
            .collect()
    }

    /// Asks every worker for its matching connections (each answers between two polls of its
    /// own loop) and concatenates the answers up to the limit.
    fn list_connections(&self, query: &ConnectionQuery) -> Result<Vec<ConnectionRecord>, Status> {
        let mut pending = Vec::with_capacity(self.workers.len());
        for worker in &self.workers {
            let (reply, answer) = crossbeam::channel::bounded(1);
            worker
                .connections
                .try_send(ConnectionsRequest {
                    query: query.clone(),
                    reply,
                })
                .map_err(|_| {
                    Status::unavailable(format!(
                        "worker {} is busy with other connection reads or stopped",
                        worker.index
                    ))
                })?;
            pending.push((worker.index, answer));
        }
        let mut records = Vec::new();
        for (index, answer) in pending {
            let mut batch = answer.recv_timeout(CONNECTIONS_TIMEOUT).map_err(|_| {
                Status::unavailable(format!("worker {index} did not answer in time"))
            })?;
            records.append(&mut batch);
        }
        records.truncate(query.limit);
        Ok(records)
    }
}
