//! Per-worker counters: one writer (the worker), any number of readers, no atomic
//! read-modify-write on the fast path. Readers sum the workers' values.
//!
//! Per-service and per-backend counters are indexed by the stable counter slots the control
//! plane assigns (`Service::id`, `Backend::id`) and are preallocated to a fixed capacity, so
//! a snapshot change never reallocates or re-keys them. A slot's counters are monotonic for the
//! life of the process; the control plane records a baseline when it reuses a slot.
//!
//! Each worker's counters sit in cache lines of their own (cache-line padded):
//! [`WorkerCounters`] is line-aligned, and each service's and backend's counters fill one
//! line, so the slot arrays start and end on line boundaries. A counter written by one core
//! in a line that another core writes too (say, the first slot of one worker's array next to
//! the end of another worker's allocation) would move that line between the cores on every
//! write.

use std::sync::atomic::{AtomicU64, Ordering};

use super::DropReason;

/// A monotonic counter with a single writer.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; only the owning worker calls this (a plain load and store, no lock prefix).
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Subtracts `n` (for gauges such as open connections).
    #[inline(always)]
    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    #[inline(always)]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters of one service on one worker: one cache line (see the module's note).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct ServiceCounters {
    pub packets: Counter,
    pub bytes: Counter,
    pub new_connections: Counter,
    /// New flows refused (answered with RST/unreachable): no backend took new flows, or the
    /// selected backend is a REJECT backend.
    pub rejected: Counter,
}

/// Counters of one backend on one worker: one cache line, so that a packet's update never
/// touches two (with 48 bytes, every other backend's counters would straddle a line).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct BackendCounters {
    /// Packets of the backend's connections, both directions.
    pub packets: Counter,
    /// Bytes of the backend's connections, both directions.
    pub bytes: Counter,
    /// The part of `packets` that came from the backend (replies).
    pub packets_from_backend: Counter,
    /// The part of `bytes` that came from the backend.
    pub bytes_from_backend: Counter,
    pub new_connections: Counter,
    pub closed_connections: Counter,
}

impl BackendCounters {
    /// Connections open now: opened minus closed (both counted by the same worker).
    pub fn active_connections(&self) -> u64 {
        self.new_connections
            .get()
            .saturating_sub(self.closed_connections.get())
    }
}

/// The size of the lines that two cores must not share.
const CACHE_LINE: usize = 64;

/// Everything one worker counts. Shared (in an `Arc`) between the worker and readers.
/// Line-aligned, so that no other data shares its first or last line.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Packets this worker passed to the worker that owns their connection.
    pub handoff_out: Counter,
    /// Packets other workers passed to this one.
    pub handoff_in: Counter,
    pub new_connections: Counter,
    pub closed_connections: Counter,
    /// Connections not yet established that expired early because the table or an SNAT pool
    /// was nearly full (included in `closed_connections`).
    pub expired_under_pressure: Counter,
    /// Connections open now in this worker's table (a gauge, written by the worker).
    pub active_connections: Counter,
    /// TCP resets and ICMP unreachables sent for refused flows.
    pub rejects_sent: Counter,
    /// Echo replies sent for the appliance's VIPs.
    pub echo_replies: Counter,
    /// ARP replies sent for the appliance's VIPs.
    pub arp_replies: Counter,
    /// ARP requests and neighbour solicitations sent (resolution, retries and refreshes).
    pub arp_requests_sent: Counter,
    /// ARP replies and neighbour advertisements received and learned from.
    pub neighbour_replies: Counter,
    /// Next hops resolved with packets waiting for them (released in order).
    pub neighbours_resolved: Counter,
    /// Packets that waited for a next hop and were dropped: its queue was full, or it never
    /// answered (also counted as the `no_neighbour` drop reason).
    pub neighbour_queue_drops: Counter,
    /// Learned bindings removed after they were not confirmed in time (worker 0 sweeps).
    pub neighbours_expired: Counter,
    /// Gratuitous ARPs and unsolicited neighbour advertisements sent for new addresses.
    pub announcements_sent: Counter,
    /// ICMP errors about NATed connections translated and sent on to the other side.
    pub icmp_errors_translated: Counter,
    /// First fragments of load-balanced flows whose translation was recorded.
    pub fragments_tracked: Counter,
    /// Later fragments translated like their first fragment.
    pub fragments_forwarded: Counter,
    /// Snapshot generation the worker last picked up.
    pub snapshot_generation: Counter,
    /// Packets passed to the host kernel through a port's exception path (tap).
    pub to_host: Counter,
    /// Packets the host kernel sent through a tap, forwarded out of the port unchanged.
    pub from_host: Counter,
    drops: [Counter; DropReason::COUNT],
    services: Box<[ServiceCounters]>,
    backends: Box<[BackendCounters]>,
}

const _: () = assert!(core::mem::align_of::<WorkerCounters>() == CACHE_LINE);
const _: () = assert!(core::mem::size_of::<ServiceCounters>() == CACHE_LINE);
const _: () = assert!(core::mem::size_of::<BackendCounters>() == CACHE_LINE);

impl WorkerCounters {
    /// Counters with room for `services` service slots and `backends` backend slots.
    pub fn new(services: u32, backends: u32) -> WorkerCounters {
        WorkerCounters {
            rx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            handoff_out: Counter::default(),
            handoff_in: Counter::default(),
            new_connections: Counter::default(),
            closed_connections: Counter::default(),
            expired_under_pressure: Counter::default(),
            active_connections: Counter::default(),
            rejects_sent: Counter::default(),
            echo_replies: Counter::default(),
            arp_replies: Counter::default(),
            arp_requests_sent: Counter::default(),
            neighbour_replies: Counter::default(),
            neighbours_resolved: Counter::default(),
            neighbour_queue_drops: Counter::default(),
            neighbours_expired: Counter::default(),
            announcements_sent: Counter::default(),
            icmp_errors_translated: Counter::default(),
            fragments_tracked: Counter::default(),
            fragments_forwarded: Counter::default(),
            snapshot_generation: Counter::default(),
            to_host: Counter::default(),
            from_host: Counter::default(),
            drops: std::array::from_fn(|_| Counter::default()),
            services: (0..services).map(|_| ServiceCounters::default()).collect(),
            backends: (0..backends).map(|_| BackendCounters::default()).collect(),
        }
    }

    #[inline(always)]
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.drops.get(reason.index()) {
            c.inc();
        }
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, Counter::get)
    }

    /// All drops, whatever the reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }

    #[inline(always)]
    pub fn service(&self, slot: u32) -> Option<&ServiceCounters> {
        self.services.get(slot as usize)
    }

    #[inline(always)]
    pub fn backend(&self, slot: u32) -> Option<&BackendCounters> {
        self.backends.get(slot as usize)
    }

    pub fn service_capacity(&self) -> u32 {
        self.services.len() as u32
    }

    pub fn backend_capacity(&self) -> u32 {
        self.backends.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_out_of_range_slots_are_ignored() {
        let c = WorkerCounters::new(2, 3);
        c.rx_packets.add(5);
        c.count_drop(DropReason::NoService);
        c.count_drop(DropReason::NoService);
        assert_eq!(c.rx_packets.get(), 5);
        assert_eq!(c.drops(DropReason::NoService), 2);
        assert_eq!(c.total_drops(), 2);
        assert!(c.service(1).is_some());
        assert!(c.service(2).is_none());
        let b = c.backend(2).unwrap();
        b.new_connections.add(3);
        b.closed_connections.inc();
        assert_eq!(b.active_connections(), 2);
    }

    /// Whether `slots` fill whole cache lines of their own.
    fn in_lines_of_their_own<T>(slots: &[T]) -> bool {
        let start = slots.as_ptr() as usize;
        start.is_multiple_of(CACHE_LINE) && core::mem::size_of_val(slots).is_multiple_of(CACHE_LINE)
    }

    #[test]
    fn no_counter_shares_a_cache_line_with_other_data() {
        for (services, backends) in [(1, 1), (2, 3), (5, 7), (64, 256), (1000, 999)] {
            let c = std::sync::Arc::new(WorkerCounters::new(services, backends));
            let at = std::sync::Arc::as_ptr(&c) as usize;
            assert_eq!(at % CACHE_LINE, 0, "the scalar counters start a line");
            assert_eq!(core::mem::size_of::<WorkerCounters>() % CACHE_LINE, 0);
            assert!(in_lines_of_their_own(&c.services));
            assert!(in_lines_of_their_own(&c.backends));
            assert_eq!(c.service_capacity(), services);
            assert_eq!(c.backend_capacity(), backends);
            for i in 0..backends {
                let b = c.backend(i).expect("in range") as *const BackendCounters as usize;
                assert_eq!(b % CACHE_LINE, 0, "backend {i} in one line");
            }
            assert!(c.service(services).is_none());
            assert!(c.backend(backends).is_none());
        }
    }
}
