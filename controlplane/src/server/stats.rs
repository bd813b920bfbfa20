//! Where the server reads live data: the workers' counters, the ports' statistics and the
//! connection tables. The daemon implements [`StatsSource`] over DPDK; tests use a fake.

use core::net::IpAddr;
use dataplane::conntrack::ConnState;
use dataplane::flow::FlowKey;
use dataplane::pipeline::WorkerCounters;
use std::collections::HashMap;
use std::sync::Arc;
use tonic::Status;

/// One worker core as the stats source sees it.
#[derive(Clone, Debug)]
pub struct WorkerView {
    /// Worker index, 0-based.
    pub index: u32,
    /// The DPDK lcore it runs on.
    pub lcore: u32,
    pub numa_socket: u32,
    /// The RX queues it polls, as "port:queue".
    pub rx_queues: Vec<String>,
    /// False once its loop returned or panicked.
    pub running: bool,
    /// Share of its time spent in polls that handled packets or removed expired connections,
    /// over the last second.
    pub busy_ratio: f64,
    pub counters: Arc<WorkerCounters>,
}

/// Driver counters of a port (`rte_eth_stats`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

/// A port's link.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkView {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// One DPDK port as the stats source sees it.
#[derive(Clone, Debug, Default)]
pub struct PortView {
    /// The port's name in the daemon's configuration.
    pub name: String,
    pub port_id: u16,
    /// PMD name.
    pub driver: String,
    pub mac: [u8; 6],
    /// `None` when the driver could not report it.
    pub link: Option<LinkView>,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub numa_socket: i32,
    /// `None` when the driver could not report them.
    pub counters: Option<PortCounters>,
}

/// What a `ListConnections` call asks the workers for (already validated).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionQuery {
    /// Only connections of this service slot.
    pub service: Option<u32>,
    /// Only connections whose backend (address, and port when `Some`) matches.
    pub backend: Option<(IpAddr, Option<u16>)>,
    /// Only connections where this address appears anywhere.
    pub address: Option<IpAddr>,
    /// At most this many connections in all.
    pub limit: usize,
}

impl ConnectionQuery {
    /// Whether `record` passes the filters (the limit is the caller's).
    pub fn matches(&self, record: &ConnectionRecord) -> bool {
        if self.service.is_some_and(|slot| slot != record.service) {
            return false;
        }
        if let Some((address, port)) = self.backend {
            if record.reply.src.to_ip() != address
                || port.is_some_and(|port| port != record.reply.src_port)
            {
                return false;
            }
        }
        if let Some(address) = self.address {
            let seen = [
                record.original.src,
                record.original.dst,
                record.reply.src,
                record.reply.dst,
            ];
            if !seen.iter().any(|a| a.to_ip() == address) {
                return false;
            }
        }
        true
    }
}

/// One connection read from a worker's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub worker: u32,
    /// The service's counter slot.
    pub service: u32,
    /// The client's flow as it arrived (client → VIP).
    pub original: FlowKey,
    /// The reply flow as the backend sends it (backend → client, or → SNAT address).
    pub reply: FlowKey,
    pub full_nat: bool,
    pub state: ConnState,
    pub age_ms: u32,
    pub idle_ms: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// A neighbour binding the dataplane learned (ARP / neighbour discovery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearnedNeighbour {
    pub address: core::net::IpAddr,
    pub mac: [u8; 6],
    /// DPDK port index (`ports[i]` of the configuration).
    pub port: u16,
}

/// Live data of the running appliance.
pub trait StatsSource: Send + Sync + 'static {
    /// Neighbour bindings the dataplane learned (none by default).
    fn learned_neighbours(&self) -> Vec<LearnedNeighbour> {
        Vec::new()
    }

    /// Every worker, by index.
    fn workers(&self) -> Vec<WorkerView>;

    /// Every port, in the configuration's order (DPDK port index order).
    fn ports(&self) -> Vec<PortView>;

    /// Reads connections from the workers' tables (blocking: called off the async threads).
    fn list_connections(&self, query: &ConnectionQuery) -> Result<Vec<ConnectionRecord>, Status> {
        let _ = query;
        Err(Status::unimplemented(
            "this daemon cannot read the workers' connection tables",
        ))
    }
}

/// Counter values of one service slot, summed over workers.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceSums {
    pub packets: u64,
    pub bytes: u64,
    pub new_connections: u64,
    pub rejected: u64,
}

/// Counter values of one backend slot, summed over workers.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BackendSums {
    /// Both directions.
    pub packets: u64,
    pub bytes: u64,
    /// Replies only.
    pub packets_from: u64,
    pub bytes_from: u64,
    pub new_connections: u64,
    pub closed_connections: u64,
}

impl BackendSums {
    pub fn active(&self) -> u64 {
        self.new_connections.saturating_sub(self.closed_connections)
    }
}

impl ServiceSums {
    fn minus(self, base: &ServiceSums) -> ServiceSums {
        ServiceSums {
            packets: self.packets.saturating_sub(base.packets),
            bytes: self.bytes.saturating_sub(base.bytes),
            new_connections: self.new_connections.saturating_sub(base.new_connections),
            rejected: self.rejected.saturating_sub(base.rejected),
        }
    }
}

impl BackendSums {
    fn minus(self, base: &BackendSums) -> BackendSums {
        BackendSums {
            packets: self.packets.saturating_sub(base.packets),
            bytes: self.bytes.saturating_sub(base.bytes),
            packets_from: self.packets_from.saturating_sub(base.packets_from),
            bytes_from: self.bytes_from.saturating_sub(base.bytes_from),
            new_connections: self.new_connections.saturating_sub(base.new_connections),
            closed_connections: self
                .closed_connections
                .saturating_sub(base.closed_connections),
        }
    }
}

/// Raw (not baselined) sum of a service slot over workers.
pub(crate) fn raw_service(workers: &[WorkerView], slot: u32) -> ServiceSums {
    let mut sums = ServiceSums::default();
    for worker in workers {
        if let Some(c) = worker.counters.service(slot) {
            sums.packets += c.packets.get();
            sums.bytes += c.bytes.get();
            sums.new_connections += c.new_connections.get();
            sums.rejected += c.rejected.get();
        }
    }
    sums
}

/// Raw (not baselined) sum of a backend slot over workers.
pub(crate) fn raw_backend(workers: &[WorkerView], slot: u32) -> BackendSums {
    let mut sums = BackendSums::default();
    for worker in workers {
        if let Some(c) = worker.counters.backend(slot) {
            sums.packets += c.packets.get();
            sums.bytes += c.bytes.get();
            sums.packets_from += c.packets_from_backend.get();
            sums.bytes_from += c.bytes_from_backend.get();
            sums.new_connections += c.new_connections.get();
            sums.closed_connections += c.closed_connections.get();
        }
    }
    sums
}

/// The counters each slot had when it was handed to its current object.
#[derive(Debug, Default)]
pub(crate) struct Baselines {
    services: HashMap<u32, ServiceSums>,
    backends: HashMap<u32, BackendSums>,
}

impl Baselines {
    /// Records the current counters of a service slot that now belongs to a new service.
    pub fn reset_service(&mut self, workers: &[WorkerView], slot: u32) {
        let raw = raw_service(workers, slot);
        if raw == ServiceSums::default() {
            self.services.remove(&slot);
        } else {
            self.services.insert(slot, raw);
        }
    }

    /// Records the current counters of a backend slot that now belongs to a new backend.
    pub fn reset_backend(&mut self, workers: &[WorkerView], slot: u32) {
        let raw = raw_backend(workers, slot);
        if raw == BackendSums::default() {
            self.backends.remove(&slot);
        } else {
            self.backends.insert(slot, raw);
        }
    }

    pub fn service(&self, workers: &[WorkerView], slot: u32) -> ServiceSums {
        let raw = raw_service(workers, slot);
        match self.services.get(&slot) {
            Some(base) => raw.minus(base),
            None => raw,
        }
    }

    pub fn backend(&self, workers: &[WorkerView], slot: u32) -> BackendSums {
        let raw = raw_backend(workers, slot);
        match self.backends.get(&slot) {
            Some(base) => raw.minus(base),
            None => raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(index: u32) -> WorkerView {
        WorkerView {
            index,
            lcore: index + 1,
            numa_socket: 0,
            rx_queues: Vec::new(),
            running: true,
            busy_ratio: 0.0,
            counters: Arc::new(WorkerCounters::new(4, 4)),
        }
    }

    #[test]
    fn sums_over_workers_and_baselines_hide_a_previous_owner() {
        let workers = [worker(0), worker(1)];
        workers[0].counters.backend(2).unwrap().packets.add(5);
        workers[1].counters.backend(2).unwrap().packets.add(7);
        workers[1]
            .counters
            .backend(2)
            .unwrap()
            .new_connections
            .add(3);
        workers[0]
            .counters
            .backend(2)
            .unwrap()
            .closed_connections
            .add(1);
        let mut baselines = Baselines::default();
        let sums = baselines.backend(&workers, 2);
        assert_eq!((sums.packets, sums.active()), (12, 2));
        baselines.reset_backend(&workers, 2);
        assert_eq!(baselines.backend(&workers, 2), BackendSums::default());
        workers[0].counters.backend(2).unwrap().packets.add(1);
        assert_eq!(baselines.backend(&workers, 2).packets, 1);
        // Out-of-capacity slots read as zero.
        assert_eq!(baselines.service(&workers, 99), ServiceSums::default());
    }
}
