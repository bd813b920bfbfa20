//! The per-packet function of a worker: parse, classify, find or create the connection,
//! translate, and pick the next hop. Pure Rust over a byte buffer, so it is tested and
//! benchmarked without DPDK; the DPDK worker loop (`crate::worker`) drives it per burst.
//!
//! Nothing here allocates, locks, makes a syscall or panics per packet: the connection table
//! and SNAT allocators are preallocated, counters are single-writer, and every header access is
//! bounds-checked (a malformed packet is dropped and counted).

mod admit;
pub mod counters;
mod fast;
pub mod fragments;
mod icmp_error;
mod neighbour;
pub mod reject;
pub mod rewrite;
pub mod vlan;

use std::sync::Arc;

use crate::conntrack::{
    sweep_speedup, Aging, ConnInfo, ConnTable, Direction, Ownership, PortPartition, Probe,
    SnatPorts, Swept, Tick, Timeouts, Transition,
};
use crate::flow::{Addr, FlowKey, NatMode, Proto};
use crate::lb::RoundRobinCursors;
use crate::mem::prefetch;
use crate::neigh::{NeighbourCache, NeighbourTimers, PortInfo, Resolver};
use crate::snapshot::Snapshot;
use crate::wire::{self, EtherKind, PacketInfo, ParseError};

pub use counters::{BackendCounters, Counter, ServiceCounters, WorkerCounters};

/// The most packets [`Worker::process_burst`] takes at once.
pub const BURST: usize = 32;

/// The most connections one [`Worker::sweep_step`] removes. A removal updates both index slots
/// of its connection, cold in a large table (190-330 ns each at a million connections on the
/// development VM), so 64 bound a step to some 15-20 us.
pub const MAX_REMOVALS_PER_STEP: usize = 64;

/// How many packets ahead [`Worker::process_burst`] prefetches packet headers.
const PREFETCH_AHEAD: usize = 4;

/// A packet buffer the pipeline can read, write and resize at the tail (a `Vec<u8>` in tests,
/// an mbuf in the DPDK worker).
pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows (zero-filled) or shrinks the packet to `len` bytes; false if it cannot.
    fn resize(&mut self, len: usize) -> bool;
    /// Start loading what [`PacketBuf::data`] reads to find the bytes (an mbuf's first line),
    /// without waiting for it: when packets come over a ring, another core wrote it last.
    /// Nothing to do for a buffer that is its own bytes.
    #[inline(always)]
    fn prefetch_descriptor(&self) {}

    /// Whether the packet continues in further buffers, so that [`PacketBuf::data`] is only its
    /// first part. Such a packet is dropped (`multi_segment`) before anything reads it: a
    /// rewrite of the first part alone, or a connection opened for it, would be wrong.
    #[inline(always)]
    fn is_segmented(&self) -> bool {
        false
    }

    /// Whether the NIC found the IPv4 header checksum wrong (RX checksum offload, which the
    /// daemon turns on where a port has it). Such a packet is dropped (`bad_ip_checksum`)
    /// before anything reads it, as a router must (RFC 1812 5.2.2). False when nothing
    /// verified it: vdevs, NICs without the offload, buffers that are their own bytes.
    #[inline(always)]
    fn rx_ip_checksum_bad(&self) -> bool {
        false
    }

    /// Whether the NIC verified the IPv4 header checksum (found it good or bad). When it did
    /// not, the pipeline verifies the header of an IPv4 packet itself and drops a wrong one
    /// (`bad_ip_checksum`) just the same. False for buffers that are their own bytes.
    #[inline(always)]
    fn rx_ip_checksum_checked(&self) -> bool {
        false
    }

    /// Whether only the general path may see the packet (it drops it): segmented, or marked
    /// bad by the NIC. Both read in one test, without branching between them.
    #[inline(always)]
    fn general_path_only(&self) -> bool {
        self.is_segmented() | self.rx_ip_checksum_bad()
    }

    /// Adds `n` bytes in front of the packet (to push a VLAN tag); false if it cannot. The
    /// default moves the whole packet; an mbuf uses its headroom.
    fn push_front(&mut self, n: usize) -> bool {
        let len = self.data().len();
        if !self.resize(len + n) {
            return false;
        }
        self.data_mut().copy_within(0..len, n);
        true
    }

    /// Removes `n` bytes from the front of the packet; false if it is shorter.
    fn pop_front(&mut self, n: usize) -> bool {
        let len = self.data().len();
        if n > len {
            return false;
        }
        self.data_mut().copy_within(n..len, 0);
        self.resize(len - n)
    }
}

impl PacketBuf for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }
    fn resize(&mut self, len: usize) -> bool {
        Vec::resize(self, len, 0);
        true
    }
}

/// A packet in a `Vec` with what an mbuf's metadata says about it, for the tests and
/// benchmarks that stand in for a NIC (a bare `Vec<u8>` is a packet nothing has verified).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescribedPacket {
    pub bytes: Vec<u8>,
    /// The first buffer of a packet that continues in others (as an mbuf chain would be).
    pub segmented: bool,
    /// The NIC verified the IPv4 header checksum ([`PacketBuf::rx_ip_checksum_checked`]).
    pub ip_checksum_checked: bool,
    /// ... and found it wrong ([`PacketBuf::rx_ip_checksum_bad`]).
    pub ip_checksum_bad: bool,
}

impl DescribedPacket {
    /// `bytes` as a NIC with RX checksum offload hands them over, having found the IPv4
    /// header checksum good (or nothing to verify).
    pub fn offloaded(bytes: Vec<u8>) -> DescribedPacket {
        DescribedPacket {
            bytes,
            ip_checksum_checked: true,
            ..DescribedPacket::default()
        }
    }
}

impl PacketBuf for DescribedPacket {
    fn data(&self) -> &[u8] {
        &self.bytes
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
    fn resize(&mut self, len: usize) -> bool {
        self.bytes.resize(len, 0);
        true
    }
    fn is_segmented(&self) -> bool {
        self.segmented
    }
    fn rx_ip_checksum_checked(&self) -> bool {
        self.ip_checksum_checked
    }
    fn rx_ip_checksum_bad(&self) -> bool {
        self.ip_checksum_bad
    }
}

/// Why a packet was dropped. Parse failures keep their own reason.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    Malformed(ParseError),
    /// Neither IPv4 nor IPv6 (ARP and others belong to the exception path).
    NotIp,
    /// A fragment that cannot be load-balanced: a later fragment whose first fragment was not
    /// seen (reordered ahead of it, or expired), or a fragment of a protocol other than TCP
    /// and UDP (see docs/networking.md).
    Fragment,
    /// ICMP other than an echo request to a VIP.
    IcmpUnhandled,
    /// An IP protocol other than TCP, UDP or ICMP.
    UnsupportedProtocol,
    /// Not addressed to a VIP and not part of a known connection.
    NoConnection,
    /// To a VIP, but no service listens on that port and protocol (answered with a reject).
    NoService,
    /// A TCP segment other than a SYN for a flow the table does not know (RST, or mid-stream
    /// pickup disabled).
    TcpNotSyn,
    /// The connection table is full: new flows are dropped until entries expire.
    TableFull,
    /// No free SNAT port on this worker for a full-NAT flow.
    SnatExhausted,
    /// The full-NAT service's SNAT pool is not in the snapshot (configuration race).
    NoSnatPool,
    /// TTL or hop limit would reach zero.
    TtlExceeded,
    /// No neighbour (MAC address) known for the next hop.
    NoNeighbour,
    /// A packet handed over by another worker that this worker does not own either.
    HandoffMisrouted,
    /// The handoff ring to the owning worker was full.
    HandoffRingFull,
    /// The TX queue refused the packet.
    TxFull,
    /// A multi-segment mbuf (ports run without scatter; never expected).
    MultiSegment,
    /// The IPv4 header checksum is wrong: the NIC found it so (see
    /// [`PacketBuf::rx_ip_checksum_bad`]), or, where the NIC did not verify it, the pipeline
    /// did (see [`PacketBuf::rx_ip_checksum_checked`]). The parser itself verifies no checksum.
    BadIpChecksum,
    /// For the host kernel (an interface address), but the port has no exception path (tap).
    NoHostPath,
    /// For the host kernel, but the exception path's TX queue refused it.
    HostPathFull,
    /// Not for a VIP or connection the appliance knows, and no route covers the destination.
    NoRoute,
    /// A new flow whose reply key belongs to a live connection: a DNAT client reusing its
    /// port towards the same backend through another VIP or port while the first connection
    /// is still open (the backend's replies could not be told apart).
    ReplyKeyInUse,
}

const OWN_REASONS: [DropReason; 21] = [
    DropReason::NotIp,
    DropReason::Fragment,
    DropReason::IcmpUnhandled,
    DropReason::UnsupportedProtocol,
    DropReason::NoConnection,
    DropReason::NoService,
    DropReason::TcpNotSyn,
    DropReason::TableFull,
    DropReason::SnatExhausted,
    DropReason::NoSnatPool,
    DropReason::TtlExceeded,
    DropReason::NoNeighbour,
    DropReason::HandoffMisrouted,
    DropReason::HandoffRingFull,
    DropReason::TxFull,
    DropReason::MultiSegment,
    DropReason::BadIpChecksum,
    DropReason::NoHostPath,
    DropReason::HostPathFull,
    DropReason::NoRoute,
    DropReason::ReplyKeyInUse,
];

impl DropReason {
    pub const COUNT: usize = ParseError::COUNT + OWN_REASONS.len();

    /// Every reason, in counter-index order.
    pub fn all() -> impl Iterator<Item = DropReason> {
        ParseError::ALL
            .into_iter()
            .map(DropReason::Malformed)
            .chain(OWN_REASONS)
    }

    #[inline]
    pub fn index(self) -> usize {
        match self {
            DropReason::Malformed(e) => e.index(),
            other => ParseError::COUNT + OWN_REASONS.iter().position(|r| *r == other).unwrap_or(0),
        }
    }

    /// The counter label, e.g. `malformed_truncated` or `table_full`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed(e) => e.as_str(),
            DropReason::NotIp => "not_ip",
            DropReason::Fragment => "fragment",
            DropReason::IcmpUnhandled => "icmp_unhandled",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::NoConnection => "no_connection",
            DropReason::NoService => "no_service",
            DropReason::TcpNotSyn => "tcp_not_syn",
            DropReason::TableFull => "table_full",
            DropReason::SnatExhausted => "snat_exhausted",
            DropReason::NoSnatPool => "no_snat_pool",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::HandoffMisrouted => "handoff_misrouted",
            DropReason::HandoffRingFull => "handoff_ring_full",
            DropReason::TxFull => "tx_full",
            DropReason::MultiSegment => "multi_segment",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::NoHostPath => "no_host_path",
            DropReason::HostPathFull => "host_path_full",
            DropReason::NoRoute => "no_route",
            DropReason::ReplyKeyInUse => "reply_key_in_use",
        }
    }
}

/// What to do with a packet after [`Worker::process`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten and addressed: send it out of `port`.
    Forward { port: u16 },
    /// Turned into an answer (reset, unreachable, echo reply): send it back out of `port`.
    Reply { port: u16 },
    /// Another worker owns this packet's connection: hand it over, untouched.
    Handoff { worker: u16 },
    /// For the host kernel (traffic to an interface address that the dataplane does not
    /// handle itself, ARP replies to it): pass it unchanged to the exception path (the tap)
    /// of `port`, the port it arrived on.
    ToHost { port: u16 },
    /// Translated, but the next hop's MAC is being resolved: park the packet in `slot` of the
    /// worker's [`crate::neigh::ParkedPackets`] until [`Worker::neighbour_step`] releases it.
    Park { slot: u16 },
    /// Used by the dataplane itself (an ARP reply or neighbour advertisement it learned
    /// from): free it, not a drop.
    Consumed,
    /// Dropped (already counted).
    Drop(DropReason),
}

/// How one worker is set up. All sizes are fixed at construction.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This worker's index, `0..workers`.
    pub index: u16,
    pub workers: u16,
    /// Connections this worker can track (preallocated).
    pub conn_capacity: u32,
    pub timeouts: Timeouts,
    /// Seed shared by all workers for ownership hashing (must be equal on every worker).
    pub ownership_seed: u64,
    /// Full-NAT source ports, split among the workers.
    pub snat_first_port: u16,
    pub snat_last_port: u16,
    /// Accept a TCP flow the table does not know when its first packet is not a SYN (e.g. after
    /// a restart or failover): it goes to the backend selection would pick now.
    pub midstream_pickup: bool,
    /// Connection-table entries the expiry sweep examines per millisecond tick while the table
    /// and the SNAT ports are at most half full, up to 16 times more as they fill (1024 sweeps a
    /// million-entry table in about a second, in 64 ms when it is nearly full); also the most
    /// one [`Worker::sweep_step`] examines.
    pub expire_budget: usize,
    /// MAC address of each port, by port index.
    pub port_macs: Vec<[u8; 6]>,
    /// Counter slots preallocated for services and backends (`Service::id`, `Backend::id`).
    pub service_counter_slots: u32,
    pub backend_counter_slots: u32,
    /// The neighbour cache all workers share (clone the config to share it).
    pub neighbours: Arc<NeighbourCache>,
    pub neighbour_timers: NeighbourTimers,
    /// The first-fragment tracker all workers share (clone the config to share it).
    pub fragments: Arc<fragments::FragmentTracker>,
    /// VLAN sub-interfaces: logical port `port_macs.len() + i` is `vlan_ports[i]` (see
    /// [`vlan`]).
    pub vlan_ports: Vec<vlan::VlanPort>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            index: 0,
            workers: 1,
            conn_capacity: 1 << 16,
            timeouts: Timeouts::DEFAULT,
            ownership_seed: 0x005e_ed51,
            snat_first_port: PortPartition::DEFAULT_FIRST,
            snat_last_port: PortPartition::DEFAULT_LAST,
            midstream_pickup: true,
            expire_budget: 1024,
            port_macs: vec![[0x02, 0, 0, 0, 0, 0x01]],
            service_counter_slots: 4096,
            backend_counter_slots: 65536,
            neighbours: Arc::new(NeighbourCache::new(4096)),
            neighbour_timers: NeighbourTimers::DEFAULT,
            fragments: Arc::new(fragments::FragmentTracker::new(4096)),
            vlan_ports: Vec::new(),
        }
    }
}

/// Errors building a worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    #[error("worker index {index} out of range for {workers} workers")]
    BadIndex { index: u16, workers: u16 },
    #[error("SNAT port range: {0}")]
    Ports(String),
    #[error("vlan_ports[{index}]: {reason}")]
    BadVlan { index: usize, reason: String },
}

/// One worker's packet state: its connection table, SNAT ports, round-robin cursors and
/// counters. Single-threaded; the DPDK loop owns it.
#[derive(Debug)]
pub struct Worker {
    cfg: WorkerConfig,
    conns: ConnTable,
    ownership: Ownership,
    partition: PortPartition,
    /// One allocator per distinct SNAT pool address list seen in any snapshot; kept (they are
    /// small) so leases of connections from older snapshots can always be released.
    snat: Vec<SnatPorts>,
    /// For each snapshot SNAT pool index, the allocator in `snat` (rebuilt per generation).
    snat_by_pool: Vec<usize>,
    rr: RoundRobinCursors,
    counters: Arc<WorkerCounters>,
    generation: Option<u64>,
    selection_hash_seed: u64,
    /// Resolved egress by destination address for the current snapshot (cleared when a new
    /// one arrives): the route scan and neighbour lookup run once per destination, not once
    /// per packet.
    egress: Box<[Option<Egress>; EGRESS_CACHE]>,
    /// The neighbour cache version the egress cache was filled under.
    neigh_version: u64,
    /// Next hops this worker is resolving (its parked packets are in the loop).
    resolver: Resolver,
    /// Gratuitous announcements still to send (worker 0), and what was announced.
    announce: std::collections::VecDeque<(Addr, u16)>,
    announced: Vec<(Addr, u16)>,
    /// Logical ports: the physical ports, then the VLAN sub-interfaces.
    ports: Vec<PortInfo>,
    /// Stage 1 of [`Worker::process_burst`]: each packet of the burst the fast path recognised,
    /// with where its key's probe of the connection table starts (a mask in the burst says
    /// which entries it wrote; the others hold an earlier burst's packets). `BURST` entries,
    /// boxed so that a burst can take it out of the worker (an empty boxed slice allocates
    /// nothing) and read it in place while the worker handles each packet.
    staged: Box<[(fast::FastPacket, crate::conntrack::Probe)]>,
}

/// Entries of the per-worker egress cache (direct-mapped by destination address).
const EGRESS_CACHE: usize = 256;

/// Where packets to one destination leave: port and both MAC addresses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Egress {
    dst: Addr,
    /// Physical port, and the VLAN tag the frame needs there.
    port: u16,
    vlan: Option<u16>,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
}

/// Sends a packet to the next hop `entry`: its MACs, the egress port's tag in place of the
/// one it arrived with (`vlan`).
#[inline(always)]
fn leave_by<B: PacketBuf + ?Sized>(pkt: &mut B, vlan: Option<u16>, entry: &Egress) -> Verdict {
    if entry.vlan != vlan && !vlan::retag(pkt, vlan, entry.vlan) {
        return Verdict::Drop(DropReason::Malformed(ParseError::Truncated));
    }
    rewrite::set_macs(pkt.data_mut(), &entry.dst_mac, &entry.src_mac);
    Verdict::Forward { port: entry.port }
}

/// Whether bit `i` of a burst's staging mask is set: packet `i` is staged.
#[inline(always)]
fn is_staged(mask: u32, i: usize) -> bool {
    mask >> i & 1 != 0
}

#[inline]
fn egress_slot(addr: &Addr) -> usize {
    let low = u32::from_be_bytes([addr.0[12], addr.0[13], addr.0[14], addr.0[15]]);
    (low.wrapping_mul(0x9e37_79b1) >> 24) as usize % EGRESS_CACHE
}

impl Worker {
    pub fn new(cfg: WorkerConfig) -> Result<Worker, WorkerError> {
        if cfg.workers == 0 || cfg.index >= cfg.workers {
            return Err(WorkerError::BadIndex {
                index: cfg.index,
                workers: cfg.workers,
            });
        }
        let ports = logical_ports(&cfg)?;
        let partition = PortPartition::new(cfg.snat_first_port, cfg.snat_last_port, cfg.workers)
            .map_err(|e| WorkerError::Ports(e.to_string()))?;
        let ownership = Ownership::new(
            cfg.workers,
            cfg.ownership_seed,
            cfg.snat_first_port,
            cfg.snat_last_port,
        )
        .map_err(|e| WorkerError::Ports(e.to_string()))?;
        let mut conns =
            ConnTable::new(cfg.conn_capacity, cfg.ownership_seed ^ u64::from(cfg.index));
        conns.set_timeouts(cfg.timeouts);
        let counters = Arc::new(WorkerCounters::new(
            cfg.service_counter_slots,
            cfg.backend_counter_slots,
        ));
        Ok(Worker {
            rr: RoundRobinCursors::new(u64::from(cfg.index)),
            cfg,
            conns,
            ownership,
            partition,
            snat: Vec::new(),
            snat_by_pool: Vec::new(),
            counters,
            generation: None,
            selection_hash_seed: 0,
            egress: Box::new([None; EGRESS_CACHE]),
            neigh_version: 0,
            resolver: Resolver::new(),
            announce: std::collections::VecDeque::new(),
            announced: Vec::new(),
            ports,
            staged: vec![(fast::FastPacket::UNSTAGED, Default::default()); BURST]
                .into_boxed_slice(),
        })
    }

    pub fn index(&self) -> u16 {
        self.cfg.index
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    pub fn connections(&self) -> &ConnTable {
        &self.conns
    }

    /// Which worker owns this packet's connection (computable from the packet alone, the same
    /// on every worker; see DESIGN.md "Connection ownership").
    #[inline]
    pub fn owner(&self, snap: &Snapshot, key: &FlowKey) -> u16 {
        if self.cfg.workers == 1 {
            return 0;
        }
        if snap.is_vip(&key.dst) {
            self.ownership.owner_of_original(key)
        } else {
            let to_snat = snap.is_snat_addr(&key.dst);
            self.ownership
                .owner_of_reply(key, to_snat)
                .unwrap_or(self.cfg.index)
        }
    }

    /// Picks up a new snapshot: called when the generation changes, before its first packet.
    /// May allocate (allocators for new SNAT pools, round-robin cursors); never per packet.
    pub fn on_snapshot(&mut self, snap: &Snapshot) {
        self.check_neighbour_version();
        if self.generation == Some(snap.generation()) {
            return;
        }
        self.queue_announcements(snap);
        self.generation = Some(snap.generation());
        self.selection_hash_seed = snap.selection_seed();
        self.egress.fill(None);
        self.rr.fit(snap.services().len());
        self.snat_by_pool.clear();
        for pool in snap.snat_pools() {
            let found = self
                .snat
                .iter()
                .position(|s| s.addrs() == pool.addrs.as_slice());
            let index = match found {
                Some(i) => i,
                None => {
                    match SnatPorts::new(
                        &pool.addrs,
                        &self.partition,
                        self.cfg.index,
                        self.cfg.ownership_seed,
                    ) {
                        Ok(ports) => {
                            self.snat.push(ports);
                            self.snat.len() - 1
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot build SNAT allocator");
                            usize::MAX
                        }
                    }
                }
            };
            self.snat_by_pool.push(index);
        }
        self.counters.snapshot_generation.add(
            snap.generation()
                .wrapping_sub(self.counters.snapshot_generation.get()),
        );
    }

    /// Handles one received packet. `ingress` is the port it arrived on; `handed_over` is set
    /// for packets another worker passed here (they must not be passed on again).
    #[inline]
    pub fn process<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        ingress: u16,
        now: Tick,
        handed_over: bool,
    ) -> Verdict {
        // SYNs take the general path: it plans the connection before the lookup, so the
        // cache misses of a new connection overlap (see `admit`).
        if let Some(fast) = fast::recognise_buf(pkt).filter(|f| !admit::is_syn(f.tcp_flags)) {
            let probe = self.conns.probe(self.conns.hash_key(&fast.key));
            let verdict = self.forward_established(snap, pkt, &fast, probe, now, handed_over);
            let verdict = verdict.unwrap_or_else(|| {
                self.classify_and_translate(snap, pkt, ingress, now, handed_over, Some(probe))
            });
            if let Verdict::Drop(reason) = verdict {
                self.counters.count_drop(reason);
            }
            return verdict;
        }
        let verdict = self.classify_and_translate(snap, pkt, ingress, now, handed_over, None);
        if let Verdict::Drop(reason) = verdict {
            self.counters.count_drop(reason);
        }
        verdict
    }

    /// Handles a burst of packets received together on `ingress`: the fast path's packets
    /// (plain IPv4 TCP/UDP, see `fast`) are recognised and their connection-table probes
    /// prefetched before the first is processed, so the memory latencies of the burst overlap;
    /// the rest go through the general path one by one. `verdicts[i]` is the verdict for
    /// `pkts[i]`.
    #[inline]
    pub fn process_burst<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkts: &mut [B],
        ingress: u16,
        now: Tick,
        verdicts: &mut [Verdict],
    ) {
        self.process_burst_from(snap, pkts, |_| ingress, now, false, verdicts);
    }

    /// [`Worker::process_burst`] for packets that may have arrived on different ports
    /// (`ingress` tells each one's) and, with `handed_over`, that another worker handed over
    /// (as for [`Worker::process`]).
    #[inline]
    pub fn process_burst_from<B: PacketBuf>(
        &mut self,
        snap: &Snapshot,
        pkts: &mut [B],
        ingress: impl Fn(&B) -> u16,
        now: Tick,
        handed_over: bool,
        verdicts: &mut [Verdict],
    ) {
        let n = pkts.len().min(BURST).min(verdicts.len());
        // Taken out for the burst (and put back below) so that stage 3 reads each entry in
        // place instead of copying it out of the worker it needs to borrow mutably.
        let mut staged = core::mem::take(&mut self.staged);
        // The loops below run over slices of exactly the burst's length.
        let (Some(pkts), Some(verdicts), Some(staged_burst)) = (
            pkts.get_mut(..n),
            verdicts.get_mut(..n),
            staged.get_mut(..n),
        ) else {
            self.staged = staged;
            return;
        };
        // Stage 1: recognise the plain packets, hash their keys, prefetch their home slots.
        // (The staging array lives in the worker: nothing to initialise per burst.) Finding a
        // packet's bytes reads its descriptor, so those come first, all at once.
        for pkt in pkts.iter() {
            pkt.prefetch_descriptor();
        }
        for pkt in pkts.iter().take(PREFETCH_AHEAD) {
            prefetch(pkt.data().as_ptr());
        }
        // With several workers: the owner of each fast-path packet that is not this worker's.
        let (several_workers, me) = (self.cfg.workers > 1, self.cfg.index);
        let mut owners = [me; BURST];
        // Bit i: `staged_burst[i]` holds packet i (the rest of the array is stale). A packet
        // not recognised stores nothing: staged as `Option`s, the two outcomes' stores were
        // merged and every field went through the stack.
        let mut staged_mask = 0u32;
        const _: () = assert!(BURST <= u32::BITS as usize, "one mask bit per packet");
        for (i, (pkt, slot)) in pkts.iter().zip(staged_burst.iter_mut()).enumerate() {
            // Headers a few packets ahead: a NIC's DMA leaves them in memory, not in L1.
            if let Some(ahead) = pkts.get(i + PREFETCH_AHEAD) {
                prefetch(ahead.data().as_ptr());
            }
            let data = pkt.data();
            let verify = !pkt.rx_ip_checksum_checked();
            let recognised = if pkt.general_path_only() {
                false
            } else if fast::is_untagged_v4(data) {
                fast::stage(&self.conns, slot, fast::recognise_v4(data, verify))
            } else {
                fast::stage_other(data, verify, &self.conns, slot)
            };
            if recognised {
                staged_mask |= 1 << i;
                self.conns.prefetch_probe_slot(&slot.1);
            }
        }
        // Stage 2: prefetch the connections the home slots point at. With several workers,
        // another worker's packet is only passed on: it is unstaged, and its owner noted.
        if several_workers {
            for (i, ((fast, probe), owner_of)) in
                staged_burst.iter().zip(owners.iter_mut()).enumerate()
            {
                if !is_staged(staged_mask, i) {
                    continue;
                }
                let owner = self.owner(snap, &fast.key);
                if owner != me {
                    *owner_of = owner;
                    staged_mask &= !(1 << i);
                } else {
                    self.conns.prefetch_probe_conn(probe);
                }
            }
        } else {
            for (i, (_, probe)) in staged_burst.iter().enumerate() {
                if is_staged(staged_mask, i) {
                    self.conns.prefetch_probe_conn(probe);
                }
            }
        }
        // Stage 3: process; what the fast path does not take goes the general way.
        for (i, ((pkt, verdict), staged)) in pkts
            .iter_mut()
            .zip(verdicts.iter_mut())
            .zip(staged_burst.iter())
            .enumerate()
        {
            let fast = is_staged(staged_mask, i).then_some(staged);
            // SYNs try the fast path here too: their slots are prefetched like every packet's,
            // so a retransmitted SYN costs no more than any established packet.
            let forwarded = match fast {
                Some((fast, probe)) => {
                    self.forward_established(snap, pkt, fast, *probe, now, handed_over)
                }
                // Another worker's (unstaged in stage 2): what the general path would decide,
                // without parsing it again.
                None => match owners.get(i) {
                    Some(&owner) if owner != me && handed_over => {
                        Some(Verdict::Drop(DropReason::HandoffMisrouted))
                    }
                    Some(&owner) if owner != me => {
                        self.counters.handoff_out.inc();
                        Some(Verdict::Handoff { worker: owner })
                    }
                    _ => None,
                },
            };
            *verdict = match forwarded {
                Some(verdict) => verdict,
                None => {
                    let ingress = ingress(pkt);
                    // A staged packet got here because its key is in no connection: the
                    // general path need not hash it or look again.
                    let missed = fast.map(|(_, probe)| *probe);
                    self.classify_and_translate(snap, pkt, ingress, now, handed_over, missed)
                }
            };
            if let Verdict::Drop(reason) = *verdict {
                self.counters.count_drop(reason);
            }
        }
        self.staged = staged;
    }

    /// The general path. `missed`: the fast path has just looked this packet's key up with this
    /// probe and found no connection, so the key is neither hashed nor looked up again.
    #[inline]
    fn classify_and_translate<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        ingress: u16,
        now: Tick,
        handed_over: bool,
        missed: Option<Probe>,
    ) -> Verdict {
        if pkt.is_segmented() {
            return Verdict::Drop(DropReason::MultiSegment);
        }
        if pkt.rx_ip_checksum_bad() {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        let info = match wire::parse(pkt.data()) {
            Ok(info) => info,
            Err(e) => return Verdict::Drop(DropReason::Malformed(e)),
        };
        // Where the NIC did not verify the IPv4 header checksum, the pipeline does (RFC 1812
        // 5.2.2), before anything acts on the header.
        if info.ip_version == 4
            && !pkt.rx_ip_checksum_checked()
            && !ipv4_header_verifies(pkt.data(), info.l3_offset)
        {
            return Verdict::Drop(DropReason::BadIpChecksum);
        }
        // The fast path recognises only packets whose flow key the parser reads the same way.
        let hash = match missed {
            Some(probe) => Some(probe.hash()),
            None => info.flow_key().map(|key| self.conns.hash_key(&key)),
        };
        self.translate_parsed(
            snap,
            pkt,
            &info,
            hash,
            ingress,
            now,
            handed_over,
            missed.is_some(),
        )
    }

    /// Everything after parsing; `hash` is the connection-table hash of the packet's flow key.
    #[allow(clippy::too_many_arguments)] // the hot path passes what it has, unbundled
    #[inline]
    fn translate_parsed<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        info: &PacketInfo,
        hash: Option<u64>,
        ingress: u16,
        now: Tick,
        handed_over: bool,
        table_missed: bool,
    ) -> Verdict {
        let info = *info;
        match info.ether_kind {
            EtherKind::Ipv4 | EtherKind::Ipv6 => {}
            EtherKind::Arp => return self.arp(snap, pkt, &info, ingress, now),
            _ => return Verdict::Drop(DropReason::NotIp),
        }
        if info.is_fragment() {
            if is_host_addr(snap, &info.dst) {
                return Verdict::ToHost { port: ingress };
            }
            // First TCP/UDP fragments go through the table like any packet (and are tracked
            // below); later ones follow them (see `fragments`).
            if !info.is_first_fragment() {
                return self.later_fragment(snap, pkt, &info, now);
            }
            if !matches!(info.l4_proto, 6 | 17) {
                return Verdict::Drop(DropReason::Fragment);
            }
        }
        let key = match info.flow_key() {
            Some(key) => key,
            // ICMP errors about NATed flows (translated back) and neighbour discovery come
            // before the exception path: the dataplane handles them itself.
            None if info.icmp_embedded_offset.is_some() || is_nd(&info) => {
                let handled = if info.icmp_embedded_offset.is_some() {
                    self.icmp_error(snap, pkt, &info, now, handed_over)
                } else {
                    self.neighbour_discovery(snap, pkt, &info, ingress, now)
                };
                if let Some(verdict) = handled {
                    return verdict;
                }
                if is_host_addr(snap, &info.dst) {
                    return Verdict::ToHost { port: ingress };
                }
                return Verdict::Drop(DropReason::IcmpUnhandled);
            }
            // Other ICMP and other protocols (OSPF, VRRP, ...) addressed to the host itself go
            // to its kernel.
            None if is_host_addr(snap, &info.dst) => return Verdict::ToHost { port: ingress },
            None if info.is_icmp() => return Verdict::Drop(DropReason::IcmpUnhandled),
            None => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        if matches!(key.proto, Proto::Icmp | Proto::Icmpv6) {
            return self.icmp_echo(snap, pkt, &info, ingress);
        }

        let owner = self.owner(snap, &key);
        if owner != self.cfg.index {
            if handed_over {
                return Verdict::Drop(DropReason::HandoffMisrouted);
            }
            self.counters.handoff_out.inc();
            return Verdict::Handoff { worker: owner };
        }
        if handed_over {
            self.counters.handoff_in.inc();
        }

        let bytes = u32::from(info.l4_len) + u32::from(info.l4_offset);
        let flags = info.tcp_flags.0;
        let hash = hash.unwrap_or_else(|| self.conns.hash_key(&key));
        let found = if table_missed {
            self.plan_connection(snap, &info, &key)
                .and_then(|plan| self.open_connection(&plan, &key, hash, now))
        } else if admit::is_syn(info.tcp_flags.0) {
            // A SYN almost always opens a connection: plan it first and prefetch the reply
            // key's slot, so that miss overlaps the original key's (see `admit`).
            self.conns.prefetch_probe_slot(&self.conns.probe(hash));
            let plan = self.plan_connection(snap, &info, &key);
            if let Ok(plan) = &plan {
                self.conns
                    .prefetch_probe_slot(&self.conns.probe(plan.reply_hash));
            }
            match (self.conns.lookup_hashed(&key, hash), plan) {
                (Some(hit), Ok(plan)) => {
                    self.abandon(&plan, key.proto);
                    Ok(hit)
                }
                (Some(hit), Err(_)) => Ok(hit),
                (None, Ok(plan)) => self.open_connection(&plan, &key, hash, now),
                (None, Err(refusal)) => Err(refusal),
            }
        } else {
            match self.conns.lookup_hashed(&key, hash) {
                Some(hit) => Ok(hit),
                None => self
                    .plan_connection(snap, &info, &key)
                    .and_then(|plan| self.open_connection(&plan, &key, hash, now)),
            }
        };
        let (id, dir) = match found {
            Ok(hit) => hit,
            Err(refusal) => return self.refuse(refusal, pkt, &info, ingress),
        };
        let Some(translated) = self.conns.translated_key(id, dir) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return Verdict::Drop(DropReason::NoConnection);
        };
        let data = conn.data();
        // State transitions only change the idle timeout; the table applies it.
        let _: Transition = conn.on_packet(dir, flags, bytes, now);
        if let Some(c) = self.counters.service(data.service) {
            c.packets.inc();
            c.bytes.add(u64::from(bytes));
        }
        if let Some(c) = self.counters.backend(data.backend) {
            c.packets.inc();
            c.bytes.add(u64::from(bytes));
            if dir == Direction::Reply {
                c.packets_from_backend.inc();
                c.bytes_from_backend.add(u64::from(bytes));
            }
        }
        if info.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let frame = pkt.data_mut();
        if !rewrite::translate(frame, &info, &translated) {
            return Verdict::Drop(DropReason::Malformed(ParseError::Truncated));
        }
        if info.fragment.is_some() {
            self.track_first_fragment(&info, &translated, now);
        }
        self.address_l2(snap, pkt, info.vlan, &translated.dst, now)
    }

    /// Refuses a flow: TCP reset or ICMP port unreachable back to the sender.
    fn reject<B: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut B,
        info: &PacketInfo,
        ingress: u16,
    ) -> Verdict {
        let sent = if info.l4_proto == 6 {
            // Never answer a reset with a reset.
            !info.tcp_flags.rst() && reject::tcp_reset(pkt, info)
        } else {
            reject::port_unreachable(pkt, info)
        };
        if sent {
            self.counters.rejects_sent.inc();
            Verdict::Reply { port: ingress }
        } else {
            Verdict::Drop(DropReason::NoService)
        }
    }

    fn icmp_echo<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        info: &PacketInfo,
        ingress: u16,
    ) -> Verdict {
        let is_request = matches!((info.ip_version, info.icmp_type), (4, 8) | (6, 128));
        // The dataplane answers pings to VIPs and interface addresses itself (no host path
        // needed, and the answer is as fast as the forwarding).
        if is_request
            && (snap.is_vip(&info.dst) || snap.is_local_addr(&info.dst))
            && reject::echo_reply(pkt.data_mut(), info)
        {
            self.counters.echo_replies.inc();
            return Verdict::Reply { port: ingress };
        }
        // Pings to the host's own addresses, and the echo replies its health checks get.
        if !snap.is_vip(&info.dst) && is_host_addr(snap, &info.dst) {
            return Verdict::ToHost { port: ingress };
        }
        Verdict::Drop(DropReason::IcmpUnhandled)
    }

    /// Answers ARP requests for the appliance's addresses (VIPs, SNAT addresses, interface
    /// addresses of the ingress port) with the ingress port's MAC, so clients and backends need
    /// no static ARP entry. Other ARP is dropped and counted (the exception path will carry it).
    #[cold]
    #[inline(never)]
    fn arp<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        info: &PacketInfo,
        ingress: u16,
        now: Tick,
    ) -> Verdict {
        let offset = usize::from(info.l3_offset);
        // Addresses and bindings belong to the logical port (a VLAN sub-interface for its
        // tag); answers leave by the physical port, tag kept.
        let port = self.logical_ingress(ingress, info.vlan);
        let target = match pkt.data().get(offset..) {
            Some(bytes) => match wire::arp::ArpPacket::new_checked(bytes) {
                Ok(arp) => {
                    let target = arp.target_protocol_addr();
                    let (sender, sender_mac) =
                        (arp.sender_protocol_addr(), arp.sender_hardware_addr().0);
                    let for_us = snap.answers_for(&Addr::from_v4(target), port);
                    // Learn from replies and from requests for us (the asker will talk to us);
                    // other requests (gratuitous ones included) only update a known binding.
                    let reply = arp.operation() == wire::arp::operation::REPLY;
                    if reply
                        || for_us
                        || self
                            .cfg
                            .neighbours
                            .lookup(&Addr::from_v4(sender), port)
                            .is_some()
                    {
                        let learned = self.learn_arp(sender, sender_mac, port, now);
                        if reply && learned != crate::neigh::Learned::Busy {
                            self.counters.neighbour_replies.inc();
                        }
                    }
                    if reply {
                        // A reply to an interface address: the host kernel may have asked too.
                        return if is_host_addr_on(snap, &Addr::from_v4(target), port) {
                            Verdict::ToHost { port: ingress }
                        } else {
                            Verdict::Consumed
                        };
                    }
                    if arp.operation() != wire::arp::operation::REQUEST {
                        return Verdict::Drop(DropReason::NotIp);
                    }
                    target
                }
                Err(_) => return Verdict::Drop(DropReason::NotIp),
            },
            None => return Verdict::Drop(DropReason::NotIp),
        };
        if !snap.answers_for(&Addr::from_v4(target), port) {
            return Verdict::Drop(DropReason::NotIp);
        }
        let Some(mac) = self.port_mac(port) else {
            return Verdict::Drop(DropReason::NotIp);
        };
        match wire::arp::reply_in_place(pkt.data_mut(), offset, wire::MacAddr(mac)) {
            Ok(()) => {
                self.counters.arp_replies.inc();
                Verdict::Reply { port: ingress }
            }
            Err(_) => Verdict::Drop(DropReason::NotIp),
        }
    }

    /// Sets the MACs for the next hop towards `dst` and picks the egress port.
    /// `vlan` is the tag the packet arrived with; the egress port's tag replaces it.
    #[inline(always)]
    fn address_l2<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        vlan: Option<u16>,
        dst: &Addr,
        now: Tick,
    ) -> Verdict {
        let slot = egress_slot(dst);
        // A hit is used where it is cached (copying the entry out first cost 22 instructions
        // per packet).
        if let Some(Some(entry)) = self.egress.get(slot) {
            if entry.dst == *dst {
                return leave_by(pkt, vlan, entry);
            }
        }
        let entry = match self.resolve_egress(snap, dst, now) {
            Ok(entry) => entry,
            Err((verdict, egress_vlan)) => {
                // A parked packet leaves with its egress port's tag already in place.
                if matches!(verdict, Verdict::Park { .. })
                    && egress_vlan != vlan
                    && !vlan::retag(pkt, vlan, egress_vlan)
                {
                    return Verdict::Drop(DropReason::Malformed(ParseError::Truncated));
                }
                return verdict;
            }
        };
        if let Some(cache) = self.egress.get_mut(slot) {
            *cache = Some(entry);
        }
        leave_by(pkt, vlan, &entry)
    }

    /// The logical port a frame received on physical port `phys` with outer tag `vlan`
    /// belongs to: the sub-interface of that VLAN, else the physical port.
    #[inline]
    fn logical_ingress(&self, phys: u16, vlan: Option<u16>) -> u16 {
        let Some(vlan) = vlan else { return phys };
        let base = self.cfg.port_macs.len();
        self.cfg
            .vlan_ports
            .iter()
            .position(|v| v.port == phys && v.vlan == vlan)
            .map_or(phys, |i| (base + i) as u16)
    }

    /// The MAC of logical port `port`.
    #[inline]
    fn port_mac(&self, port: u16) -> Option<[u8; 6]> {
        self.ports.get(usize::from(port)).map(|p| p.mac)
    }

    /// One millisecond tick's aging at once: [`Worker::sweep_entries_per_tick`] entries in
    /// [`Worker::sweep_step`]s. Returns the connections removed. (The DPDK loop spreads the
    /// steps over its polls instead, one per poll.)
    pub fn housekeeping(&mut self, now: Tick) -> usize {
        let mut owed = self.sweep_entries_per_tick();
        let mut removed = 0;
        while owed > 0 {
            let step = self.sweep_step(now, owed);
            if step.examined == 0 {
                break;
            }
            owed = owed.saturating_sub(step.examined);
            removed += step.removed;
        }
        removed
    }

    /// Slab entries the expiry sweep examines per millisecond tick: `expire_budget`, more as
    /// the table or an SNAT pool fills (see [`crate::conntrack::sweep_speedup`]).
    pub fn sweep_entries_per_tick(&self) -> usize {
        self.cfg.expire_budget.saturating_mul(self.sweep_speedup())
    }

    /// Ages the connection table a bounded step and releases what expired connections held:
    /// at most `entries` (and `expire_budget`) entries examined and [`MAX_REMOVALS_PER_STEP`]
    /// connections removed, so a step never holds the next burst up for long. While the table
    /// or an SNAT pool is nearly full, connections not yet established age faster (see
    /// [`Aging`]).
    pub fn sweep_step(&mut self, now: Tick, entries: usize) -> Swept {
        let budget = entries.min(self.cfg.expire_budget);
        let aging = Aging::for_speedup(self.sweep_speedup());
        let counters = &self.counters;
        let snat = &mut self.snat;
        let swept = self
            .conns
            .expire_step(now, budget, MAX_REMOVALS_PER_STEP, aging, |info| {
                account_closed(counters, snat, info)
            });
        if swept.removed_early > 0 {
            counters
                .expired_under_pressure
                .add(swept.removed_early as u64);
        }
        swept
    }

    /// How many times `expire_budget` this tick's sweep examines: set by the fuller of the
    /// connection table and this worker's SNAT port pools.
    fn sweep_speedup(&self) -> usize {
        let table = sweep_speedup(self.conns.len(), self.conns.capacity());
        self.snat
            .iter()
            .map(SnatPorts::sweep_speedup)
            .fold(table, usize::max)
    }

    /// Removes the finished TCP connection (time-wait or reset) that holds `key`, so that a
    /// new flow needing the key can have it: a DNAT client reusing its port towards the same
    /// backend through another VIP or port, which TCP allows once the old connection is over
    /// (Linux conntrack and IPVS reuse such entries too). Returns whether one was removed.
    fn reclaim_finished(&mut self, key: &FlowKey, now: Tick) -> bool {
        let Some((id, _)) = self.conns.lookup(key) else {
            return false;
        };
        if !self
            .conns
            .get(id)
            .is_some_and(|conn| conn.state().is_terminal())
        {
            return false;
        }
        let Some(info) = self.conns.remove(id, now) else {
            return false;
        };
        account_closed(&self.counters, &mut self.snat, &info);
        true
    }
}

/// Counts a removed connection as closed and gives its SNAT port back.
fn account_closed(counters: &WorkerCounters, snat: &mut [SnatPorts], info: &ConnInfo) {
    counters.closed_connections.inc();
    counters.active_connections.sub(1);
    if let Some(c) = counters.backend(info.data.backend) {
        c.closed_connections.inc();
    }
    if info.data.nat == NatMode::FullNat {
        // Whichever of the worker's allocators holds the port takes it back.
        let (addr, port) = (&info.reply.dst, info.reply.dst_port);
        snat.iter_mut()
            .any(|a| a.release(addr, info.original.proto, port));
    }
}

/// Whether `addr` is one of the appliance's interface addresses (on any port): traffic to it
/// that the dataplane does not handle belongs to the host kernel. A linear scan over the few
/// interface addresses, made only off the established-flow path.
#[inline]
fn is_host_addr(snap: &Snapshot, addr: &Addr) -> bool {
    snap.local_addrs().iter().any(|l| l.addr == *addr)
}

/// Whether `addr` is an interface address of `port`.
#[inline]
fn is_host_addr_on(snap: &Snapshot, addr: &Addr, port: u16) -> bool {
    snap.local_addrs()
        .iter()
        .any(|l| l.addr == *addr && l.port == port)
}

/// The logical ports of a configuration: physical ports, then VLAN sub-interfaces.
fn logical_ports(cfg: &WorkerConfig) -> Result<Vec<PortInfo>, WorkerError> {
    let mut ports: Vec<PortInfo> = cfg
        .port_macs
        .iter()
        .enumerate()
        .map(|(i, mac)| PortInfo {
            phys: i as u16,
            vlan: None,
            mac: *mac,
        })
        .collect();
    for (index, v) in cfg.vlan_ports.iter().enumerate() {
        let bad = |reason: String| WorkerError::BadVlan { index, reason };
        let Some(&mac) = cfg.port_macs.get(usize::from(v.port)) else {
            return Err(bad(format!("no physical port {}", v.port)));
        };
        if !(1..=4094).contains(&v.vlan) {
            return Err(bad(format!("VLAN id {} is not in 1..=4094", v.vlan)));
        }
        if cfg.vlan_ports[..index]
            .iter()
            .any(|o| o.port == v.port && o.vlan == v.vlan)
        {
            return Err(bad(format!("VLAN {} on port {} twice", v.vlan, v.port)));
        }
        ports.push(PortInfo {
            phys: v.port,
            vlan: Some(v.vlan),
            mac,
        });
    }
    Ok(ports)
}

/// The next hop towards `dst` (the gateway of the most specific route, or `dst` itself when
/// it is on a connected subnet or a static neighbour); `dst` when nothing covers it.
#[inline]
pub fn next_hop(snap: &Snapshot, dst: &Addr) -> Addr {
    snap.egress(dst).map_or(*dst, |(_, hop)| hop)
}

/// Whether the IPv4 header at `l3_offset` of `frame` (one the parser accepted) verifies its
/// checksum, options included.
fn ipv4_header_verifies(frame: &[u8], l3_offset: u16) -> bool {
    frame
        .get(usize::from(l3_offset)..)
        .and_then(|l3| wire::ipv4::Ipv4Packet::new_checked(l3).ok())
        .is_some_and(|ip| ip.verify_checksum())
}

/// An IPv6 neighbour solicitation or advertisement.
#[inline]
fn is_nd(info: &PacketInfo) -> bool {
    info.ip_version == 6 && info.is_icmp() && matches!(info.icmp_type, 135 | 136)
}

#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod tests;
