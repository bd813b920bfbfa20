//! The polling loop of one worker lcore: RX bursts from its queues, the per-packet pipeline,
//! handoff to the owning worker over SPSC rings, buffered TX, and bounded aging. The current
//! snapshot is loaded once per burst (RCU: one atomic load when unchanged).

use std::sync::Arc;

use crate::conntrack::Tick;
use crate::dpdk::{
    self, lcore::StopFlag, HandoffRx, HandoffTx, MbufBurst, RxQueue, TxBuffer, TxQueue,
};
use crate::hostpath::HostPath;
use crate::neigh::{self, NeighbourEvent, ParkedPackets};
use crate::pipeline::{DropReason, PacketBuf, Verdict, Worker, WorkerCounters};
use crate::snapshot::SnapshotReader;

// A received burst is processed whole: the pipeline must take at least as many at once.
const _: () = assert!(dpdk::MAX_BURST <= crate::pipeline::BURST);

/// Converts the TSC to the connection table's millisecond ticks without a division per call.
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    start: u64,
    /// Milliseconds per TSC tick, as a 32.32 fixed-point factor.
    ms_per_tick_fp: u64,
}

impl TscClock {
    pub fn new() -> TscClock {
        let hz = dpdk::tsc_hz().max(1);
        TscClock {
            start: dpdk::rdtsc(),
            ms_per_tick_fp: ((1000u128 << 32) / u128::from(hz)) as u64,
        }
    }

    #[inline]
    pub fn now(&self) -> Tick {
        self.now_and_tsc().0
    }

    /// [`TscClock::now`] and the TSC it was read from (one read for both).
    #[inline]
    pub fn now_and_tsc(&self) -> (Tick, u64) {
        let tsc = dpdk::rdtsc();
        let elapsed = tsc.wrapping_sub(self.start);
        (
            Tick(((u128::from(elapsed) * u128::from(self.ms_per_tick_fp)) >> 32) as u32),
            tsc,
        )
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}

/// One RX queue this worker polls, with the index of its port (as used in `Verdict`s).
#[derive(Debug)]
pub struct RxPort {
    pub port_index: u16,
    pub queue: RxQueue,
}

/// A worker lcore's loop state. Build one per worker, move it to its lcore and call
/// [`PollingWorker::run`].
#[derive(Debug)]
pub struct PollingWorker {
    pipeline: Worker,
    /// The pipeline's counters, held separately so the loop borrows them beside the pipeline
    /// (no reference-count traffic per poll).
    counters: Arc<WorkerCounters>,
    rx: Vec<RxPort>,
    /// One TX queue per port index.
    tx: Vec<TxQueue>,
    tx_buffers: Vec<TxBuffer>,
    /// To worker i (None for self).
    handoff_tx: Vec<Option<HandoffTx>>,
    handoff_pending: Vec<MbufBurst>,
    handoff_rx: Vec<HandoffRx>,
    snapshots: SnapshotReader,
    clock: TscClock,
    /// TSC cycles spent in polls that handled packets or removed expired connections, since
    /// start.
    busy_cycles: u64,
    burst: MbufBurst,
    tx_reported: Vec<(u64, u64)>,
    last_housekeeping: Tick,
    /// Connection-table entries the expiry sweep still has to examine this millisecond; one
    /// bounded step per poll, so the polls in between keep forwarding.
    sweep_owed: usize,
    /// The exception path to the host kernel (taps); empty when none is configured.
    host: HostPath,
    /// Packets waiting for their next hop's MAC (see [`crate::neigh`]).
    parked: ParkedPackets<dpdk::Mbuf>,
    /// Where ARP requests, solicitations and announcements are allocated from; without it
    /// they are not sent (resolution then only completes from others' ARP traffic).
    mempool: Option<dpdk::Mempool>,
}

/// What a polling loop did, returned when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoopStats {
    pub iterations: u64,
    /// Iterations that handled packets.
    pub busy_iterations: u64,
    /// TSC cycles the loop ran for.
    pub cycles: u64,
    /// TSC cycles of the iterations that handled packets: the worker's load, since a
    /// busy-polling core is always 100% busy to the operating system.
    pub busy_cycles: u64,
}

impl LoopStats {
    /// Share of the loop's time spent handling packets, 0.0..=1.0.
    pub fn busy_share(&self) -> f64 {
        if self.cycles == 0 {
            0.0
        } else {
            (self.busy_cycles as f64 / self.cycles as f64).min(1.0)
        }
    }
}

impl PollingWorker {
    /// `handoff_tx[i]` sends to worker `i` (`None` at this worker's own index); `handoff_rx`
    /// are the rings other workers send to this one.
    pub fn new(
        pipeline: Worker,
        rx: Vec<RxPort>,
        tx: Vec<TxQueue>,
        handoff_tx: Vec<Option<HandoffTx>>,
        handoff_rx: Vec<HandoffRx>,
        snapshots: SnapshotReader,
    ) -> PollingWorker {
        let ports = tx.len();
        let workers = handoff_tx.len();
        PollingWorker {
            counters: pipeline.counters().clone(),
            pipeline,
            rx,
            tx,
            tx_buffers: (0..ports).map(|_| TxBuffer::new()).collect(),
            handoff_tx,
            handoff_pending: (0..workers).map(|_| MbufBurst::new()).collect(),
            handoff_rx,
            snapshots,
            clock: TscClock::new(),
            busy_cycles: 0,
            burst: MbufBurst::new(),
            tx_reported: vec![(0, 0); ports],
            last_housekeeping: Tick(0),
            sweep_owed: 0,
            host: HostPath::new(),
            parked: ParkedPackets::new(),
            mempool: None,
        }
    }

    /// Gives this worker a mempool to build ARP requests, neighbour solicitations and
    /// gratuitous announcements from.
    pub fn with_mempool(mut self, mempool: dpdk::Mempool) -> PollingWorker {
        self.mempool = Some(mempool);
        self
    }

    /// Gives this worker the exception path to the host kernel (see [`crate::hostpath`]).
    pub fn with_host_path(mut self, host: HostPath) -> PollingWorker {
        self.host = host;
        self
    }

    pub fn counters(&self) -> Arc<WorkerCounters> {
        self.pipeline.counters().clone()
    }

    /// The per-packet state (connection table included), for control-plane reads made by the
    /// thread that runs this loop, between polls.
    pub fn pipeline(&self) -> &Worker {
        &self.pipeline
    }

    /// The worker's clock, as its connection table sees it.
    pub fn now(&self) -> Tick {
        self.clock.now()
    }

    /// TSC cycles spent in polls that handled packets or removed expired connections, since
    /// the worker was built.
    pub fn busy_cycles(&self) -> u64 {
        self.busy_cycles
    }

    /// Polls until `stop` is set; then flushes what is buffered.
    pub fn run(&mut self, stop: &StopFlag) -> LoopStats {
        let (started, busy_before) = (dpdk::rdtsc(), self.busy_cycles);
        let mut stats = LoopStats::default();
        while !stop.should_stop() {
            stats.iterations += 1;
            if self.poll_once() > 0 {
                stats.busy_iterations += 1;
            }
        }
        self.flush();
        stats.cycles = dpdk::rdtsc().wrapping_sub(started);
        stats.busy_cycles = self.busy_cycles.wrapping_sub(busy_before);
        stats
    }

    /// One pass over every RX queue and handoff ring; returns the packets handled.
    #[inline]
    pub fn poll_once(&mut self) -> usize {
        let PollingWorker {
            pipeline,
            rx,
            tx,
            tx_buffers,
            handoff_tx,
            handoff_pending,
            handoff_rx,
            snapshots,
            clock,
            burst,
            host,
            parked,
            counters,
            ..
        } = self;
        let counters: &WorkerCounters = counters;
        let snap = snapshots.current();
        pipeline.on_snapshot(snap);
        let (now, started) = clock.now_and_tsc();
        let mut handled = 0;

        for port in rx.iter_mut() {
            let n = port.queue.rx_burst(burst);
            if n == 0 {
                continue;
            }
            handled += n;
            counters.rx_packets.add(n as u64);
            // Counted before the pipeline, which may change lengths (a VLAN tag added or
            // removed, an ICMP error built in place).
            let rx_bytes: u64 = burst
                .as_slice()
                .iter()
                .map(|m| u64::from(m.pkt_len()))
                .sum();
            counters.rx_bytes.add(rx_bytes);
            let mut verdicts = [Verdict::Drop(DropReason::MultiSegment); dpdk::MAX_BURST];
            pipeline.process_burst(
                snap,
                burst.as_mut_slice(),
                port.port_index,
                now,
                &mut verdicts,
            );
            // Byte counters are summed over the burst and published once.
            if let Some(tx_bytes) = send_whole(burst, &verdicts, tx, tx_buffers) {
                counters.tx_bytes.add(tx_bytes);
                continue;
            }
            let mut tx_bytes = 0u64;
            for (mbuf, verdict) in burst.drain().zip(verdicts) {
                // The common verdict inline; `dispatch` has the rest.
                if let Verdict::Forward { port } | Verdict::Reply { port } = verdict {
                    let p = usize::from(port);
                    if let (Some(buffer), Some(queue)) = (tx_buffers.get_mut(p), tx.get_mut(p)) {
                        tx_bytes += mbuf.len() as u64;
                        buffer.push(queue, mbuf);
                        continue;
                    }
                }
                dispatch(
                    verdict,
                    mbuf,
                    tx,
                    tx_buffers,
                    handoff_pending,
                    handoff_tx,
                    host,
                    parked,
                    counters,
                );
            }
            counters.tx_bytes.add(tx_bytes);
        }
        for ring in handoff_rx.iter_mut() {
            let n = ring.recv_burst(burst);
            if n == 0 {
                continue;
            }
            handled += n;
            // A burst like one received: its connection lookups overlap.
            let mut verdicts = [Verdict::Drop(DropReason::MultiSegment); dpdk::MAX_BURST];
            pipeline.process_burst_from(
                snap,
                burst.as_mut_slice(),
                |mbuf| port_index_of(rx, mbuf.port()),
                now,
                true,
                &mut verdicts,
            );
            if let Some(tx_bytes) = send_whole(burst, &verdicts, tx, tx_buffers) {
                counters.tx_bytes.add(tx_bytes);
                continue;
            }
            for (mbuf, verdict) in burst.drain().zip(verdicts) {
                dispatch(
                    verdict,
                    mbuf,
                    tx,
                    tx_buffers,
                    handoff_pending,
                    handoff_tx,
                    host,
                    parked,
                    counters,
                );
            }
        }
        if host.polls() {
            handled += host.poll(burst, tx, tx_buffers, counters);
        }
        flush_handoff(handoff_pending, handoff_tx, counters);
        for (buffer, queue) in tx_buffers.iter_mut().zip(tx.iter_mut()) {
            buffer.flush(queue);
        }
        host.flush(counters);
        self.account_tx();
        // Aging: each millisecond tick sets the sweep's work for that tick, done one bounded
        // step per poll (no table work at all on most polls while nothing is pressed).
        if now != self.last_housekeeping {
            self.last_housekeeping = now;
            self.sweep_owed = self.pipeline.sweep_entries_per_tick();
            self.neighbour_work(now);
        }
        let mut removed = 0;
        if self.sweep_owed > 0 {
            let step = self.pipeline.sweep_step(now, self.sweep_owed);
            self.sweep_owed = self.sweep_owed.saturating_sub(step.examined.max(1));
            removed = step.removed;
        }
        // Timed only when there was work (packets, or expired connections removed: a worker
        // draining a full table between bursts is busy): an idle poll reads the TSC once.
        if handled > 0 || removed > 0 {
            self.busy_cycles = self
                .busy_cycles
                .wrapping_add(dpdk::rdtsc().wrapping_sub(started));
        }
        handled
    }

    /// Sends what neighbour resolution asks for and releases or drops parked packets (once
    /// per millisecond).
    fn neighbour_work(&mut self, now: Tick) {
        let PollingWorker {
            pipeline,
            tx,
            tx_buffers,
            snapshots,
            parked,
            mempool,
            counters,
            ..
        } = self;
        let counters: &WorkerCounters = counters;
        let snap = snapshots.current();
        pipeline.neighbour_step(snap, now, |event| match event {
            NeighbourEvent::Solicit {
                port,
                vlan,
                src_mac,
                target,
                sender,
                unicast,
            } => send_built(mempool, tx, tx_buffers, counters, port, |frame| {
                neigh::build_solicit(frame, &src_mac, vlan, &sender, &target, unicast)
            }),
            NeighbourEvent::Announce {
                port,
                vlan,
                src_mac,
                addr,
            } => send_built(mempool, tx, tx_buffers, counters, port, |frame| {
                neigh::build_announce(frame, &src_mac, vlan, &addr)
            }),
            NeighbourEvent::Release {
                slot,
                port,
                dst_mac,
                src_mac,
            } => {
                let p = usize::from(port);
                for mut mbuf in parked.take(slot) {
                    crate::pipeline::rewrite::set_macs(mbuf.data_mut(), &dst_mac, &src_mac);
                    match (tx_buffers.get_mut(p), tx.get_mut(p)) {
                        (Some(buffer), Some(queue)) => {
                            counters.tx_bytes.add(PacketBuf::data(&mbuf).len() as u64);
                            buffer.push(queue, mbuf);
                        }
                        _ => counters.count_drop(DropReason::NoNeighbour),
                    }
                }
            }
            NeighbourEvent::Discard { slot } => {
                for mbuf in parked.take(slot) {
                    counters.neighbour_queue_drops.inc();
                    counters.count_drop(DropReason::NoNeighbour);
                    drop(mbuf);
                }
            }
        });
    }

    fn flush(&mut self) {
        flush_handoff(
            &mut self.handoff_pending,
            &mut self.handoff_tx,
            self.pipeline.counters(),
        );
        for (buffer, queue) in self.tx_buffers.iter_mut().zip(self.tx.iter_mut()) {
            buffer.flush(queue);
        }
        self.host.flush(self.pipeline.counters());
        self.account_tx();
    }

    fn account_tx(&mut self) {
        let counters = self.pipeline.counters();
        for (buffer, reported) in self.tx_buffers.iter().zip(self.tx_reported.iter_mut()) {
            let (sent, dropped) = (buffer.sent(), buffer.dropped());
            if sent != reported.0 {
                counters.tx_packets.add(sent - reported.0);
            }
            for _ in reported.1..dropped {
                counters.count_drop(DropReason::TxFull);
            }
            *reported = (sent, dropped);
        }
    }
}

/// The common case, a whole burst leaving by one port: sends it as it stands (no per-packet
/// copy into the TX buffer) and returns its bytes. `None`, and the burst untouched, when its
/// verdicts differ.
#[inline]
fn send_whole(
    burst: &mut MbufBurst,
    verdicts: &[Verdict],
    tx: &mut [TxQueue],
    tx_buffers: &mut [TxBuffer],
) -> Option<u64> {
    let p = one_egress(verdicts.get(..burst.len())?)?;
    let (buffer, queue) = (tx_buffers.get_mut(p)?, tx.get_mut(p)?);
    let tx_bytes = burst.as_slice().iter().map(|m| m.len() as u64).sum();
    buffer.send_burst(queue, burst);
    Some(tx_bytes)
}

/// The port every verdict of a burst sends its packet out of, if they all do (forwarded or
/// answered) and there is at least one.
#[inline]
fn one_egress(verdicts: &[Verdict]) -> Option<usize> {
    let egress = |v: &Verdict| match *v {
        Verdict::Forward { port } | Verdict::Reply { port } => Some(port),
        _ => None,
    };
    let first = verdicts.first()?;
    let port = egress(first)?;
    // Nearly always every verdict is the first one: one comparison each.
    if verdicts.iter().all(|v| v == first) {
        return Some(usize::from(port));
    }
    verdicts
        .iter()
        .all(|v| egress(v) == Some(port))
        .then_some(usize::from(port))
}

/// The port index of DPDK port id `port` among this worker's RX ports (for handed-over
/// packets, whose answers leave by the port they came in on).
#[inline]
fn port_index_of(rx: &[RxPort], port: u16) -> u16 {
    rx.iter()
        .find(|p| p.queue.port() == port)
        .map_or(0, |p| p.port_index)
}

#[allow(clippy::too_many_arguments)] // the loop's parts, borrowed separately
#[inline]
fn dispatch(
    verdict: Verdict,
    mbuf: dpdk::Mbuf,
    tx: &mut [TxQueue],
    tx_buffers: &mut [TxBuffer],
    handoff_pending: &mut [MbufBurst],
    handoff_tx: &mut [Option<HandoffTx>],
    host: &mut HostPath,
    parked: &mut ParkedPackets<dpdk::Mbuf>,
    counters: &WorkerCounters,
) {
    match verdict {
        Verdict::Forward { port } | Verdict::Reply { port } => {
            let p = usize::from(port);
            match (tx_buffers.get_mut(p), tx.get_mut(p)) {
                (Some(buffer), Some(queue)) => {
                    counters.tx_bytes.add(PacketBuf::data(&mbuf).len() as u64);
                    buffer.push(queue, mbuf);
                }
                _ => counters.count_drop(DropReason::NoNeighbour),
            }
        }
        Verdict::Handoff { worker } => {
            let w = usize::from(worker);
            let Some(pending) = handoff_pending.get_mut(w) else {
                counters.count_drop(DropReason::HandoffMisrouted);
                return;
            };
            if let Err(mbuf) = pending.push(mbuf) {
                // Full burst: push it to the ring first.
                if let Some(Some(ring)) = handoff_tx.get_mut(w) {
                    ring.send_burst(pending);
                }
                if pending.is_full() {
                    counters.count_drop(DropReason::HandoffRingFull);
                    drop(mbuf);
                } else if pending.push(mbuf).is_err() {
                    counters.count_drop(DropReason::HandoffRingFull);
                }
            }
        }
        Verdict::ToHost { port } => host.send(port, mbuf, counters),
        Verdict::Park { slot } => {
            if parked.park(slot, mbuf).is_err() {
                counters.neighbour_queue_drops.inc();
                counters.count_drop(DropReason::NoNeighbour);
            }
        }
        Verdict::Consumed | Verdict::Drop(_) => drop(mbuf),
    }
}

/// Allocates an mbuf, lets `build` write a frame into it (the mbuf's length is trimmed to
/// what it wrote) and queues it on `port`.
fn send_built(
    mempool: &Option<dpdk::Mempool>,
    tx: &mut [TxQueue],
    tx_buffers: &mut [TxBuffer],
    counters: &WorkerCounters,
    port: u16,
    build: impl FnOnce(&mut [u8]) -> Option<usize>,
) {
    let p = usize::from(port);
    let (Some(pool), Some(buffer), Some(queue)) = (mempool, tx_buffers.get_mut(p), tx.get_mut(p))
    else {
        return;
    };
    let Some(mut mbuf) = pool.alloc() else {
        tracing::debug!(port, "no mbuf for a neighbour message");
        return;
    };
    let Some(frame) = mbuf.append(neigh::MAX_FRAME_LEN as u16) else {
        return;
    };
    let Some(len) = build(frame) else { return };
    if !PacketBuf::resize(&mut mbuf, len) {
        return;
    }
    counters.tx_bytes.add(len as u64);
    buffer.push(queue, mbuf);
}

fn flush_handoff(
    pending: &mut [MbufBurst],
    rings: &mut [Option<HandoffTx>],
    counters: &WorkerCounters,
) {
    for (burst, ring) in pending.iter_mut().zip(rings.iter_mut()) {
        if burst.is_empty() {
            continue;
        }
        if let Some(ring) = ring {
            ring.send_burst(burst);
        }
        for _ in 0..burst.len() {
            counters.count_drop(DropReason::HandoffRingFull);
        }
        burst.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{one_egress, LoopStats, Verdict};
    use crate::pipeline::DropReason;

    #[test]
    fn a_burst_has_one_egress_only_when_every_packet_leaves_by_the_same_port() {
        let fwd = |port| Verdict::Forward { port };
        assert_eq!(one_egress(&[fwd(2); 32]), Some(2));
        assert_eq!(
            one_egress(&[fwd(1), Verdict::Reply { port: 1 }, fwd(1)]),
            Some(1),
            "answers leave by a port too"
        );
        assert_eq!(one_egress(&[fwd(1), fwd(2)]), None);
        assert_eq!(
            one_egress(&[fwd(1), Verdict::Drop(DropReason::NotIp)]),
            None
        );
        assert_eq!(one_egress(&[Verdict::Handoff { worker: 1 }]), None);
        assert_eq!(one_egress(&[]), None);
    }

    #[test]
    fn the_busy_share_is_busy_cycles_over_all_cycles() {
        let stats = |cycles, busy_cycles| LoopStats {
            cycles,
            busy_cycles,
            ..LoopStats::default()
        };
        assert_eq!(stats(0, 0).busy_share(), 0.0, "a loop that never ran");
        assert_eq!(stats(1000, 0).busy_share(), 0.0);
        assert_eq!(stats(1000, 250).busy_share(), 0.25);
        assert_eq!(stats(1000, 1000).busy_share(), 1.0);
        // TSC reads at the window's edges and inside a poll need not nest exactly.
        assert_eq!(stats(1000, 1010).busy_share(), 1.0);
    }
}
