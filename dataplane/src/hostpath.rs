//! The exception path to the host kernel: one `net_tap` interface per DPDK port.
//!
//! What the dataplane does not handle itself but is addressed to the appliance (SSH, BGP,
//! the health checker's probe replies, ARP replies to the kernel's requests, pings to an
//! interface address) gets the [`Verdict::ToHost`](crate::pipeline::Verdict::ToHost) verdict
//! and is written, unchanged, to the tap of the port it arrived on. What the kernel sends on a
//! tap goes out of the matching physical port unchanged: the tap has the port's MAC address, so
//! the kernel's frames already carry the right source MAC and its neighbours answer to it.
//!
//! Every worker has its own TX queue on every tap (no locking, like the physical ports); one
//! worker (worker 0) polls the taps' RX queues in its loop. The tap PMD makes a `read`/`writev`
//! syscall per packet: acceptable for the exception path, which carries management and
//! control traffic, never the load-balanced flows. An empty poll costs a syscall too, so an
//! idle tap is polled only every [`IDLE_POLL_EVERY`]th loop iteration (a few microseconds of
//! added latency for the first packet of a burst); while packets come, every iteration.

use crate::dpdk::{Mbuf, MbufBurst, RxQueue, TxBuffer, TxQueue};
use crate::pipeline::{DropReason, PacketBuf, WorkerCounters};

/// One port's tap as one worker sees it.
#[derive(Debug)]
struct HostLink {
    tx: TxQueue,
    tx_buffer: TxBuffer,
    /// The tap's RX queues this worker polls (all of them on the polling worker, else none).
    rx: Vec<RxQueue>,
    reported: (u64, u64),
}

/// Loop iterations between two polls of idle taps.
pub const IDLE_POLL_EVERY: u32 = 16;

/// A worker's exception paths, indexed by port index (as in verdicts).
#[derive(Debug, Default)]
pub struct HostPath {
    links: Vec<Option<HostLink>>,
    /// Iterations left until idle taps are polled again.
    skip: u32,
}

impl HostPath {
    /// No exception path: `ToHost` packets are dropped as `no_host_path`.
    pub fn new() -> HostPath {
        HostPath::default()
    }

    /// Adds the tap of port `port_index`: `tx` is this worker's TX queue on it, `rx` the tap's
    /// RX queues this worker polls (empty unless it is the polling worker).
    pub fn add(&mut self, port_index: u16, tx: TxQueue, rx: Vec<RxQueue>) {
        let i = usize::from(port_index);
        if self.links.len() <= i {
            self.links.resize_with(i + 1, || None);
        }
        self.links[i] = Some(HostLink {
            tx,
            tx_buffer: TxBuffer::new(),
            rx,
            reported: (0, 0),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.links.iter().all(Option::is_none)
    }

    /// Whether this worker polls any tap.
    pub fn polls(&self) -> bool {
        self.links.iter().flatten().any(|l| !l.rx.is_empty())
    }

    /// Queues `mbuf` to the tap of `port` (sent at the next flush or when the buffer fills).
    #[inline]
    pub fn send(&mut self, port: u16, mbuf: Mbuf, counters: &WorkerCounters) {
        match self.links.get_mut(usize::from(port)) {
            Some(Some(link)) => link.tx_buffer.push(&mut link.tx, mbuf),
            _ => {
                counters.count_drop(DropReason::NoHostPath);
                drop(mbuf);
            }
        }
    }

    /// Reads what the kernel sent on the taps this worker polls and queues it, unchanged, to
    /// the TX buffer of the matching physical port (`tx[i]`/`tx_buffers[i]` for port index
    /// `i`). Call once per loop iteration: idle taps are read every [`IDLE_POLL_EVERY`]th
    /// call. Returns the packets read.
    pub fn poll(
        &mut self,
        burst: &mut MbufBurst,
        tx: &mut [TxQueue],
        tx_buffers: &mut [TxBuffer],
        counters: &WorkerCounters,
    ) -> usize {
        if self.skip > 0 {
            self.skip -= 1;
            return 0;
        }
        let handled = self.poll_now(burst, tx, tx_buffers, counters);
        if handled == 0 {
            self.skip = IDLE_POLL_EVERY - 1;
        }
        handled
    }

    fn poll_now(
        &mut self,
        burst: &mut MbufBurst,
        tx: &mut [TxQueue],
        tx_buffers: &mut [TxBuffer],
        counters: &WorkerCounters,
    ) -> usize {
        let mut handled = 0;
        for (index, link) in self.links.iter_mut().enumerate() {
            let Some(link) = link else { continue };
            for queue in &mut link.rx {
                let n = queue.rx_burst(burst);
                if n == 0 {
                    continue;
                }
                handled += n;
                for mbuf in burst.drain() {
                    if mbuf.segments() > 1 {
                        counters.count_drop(DropReason::MultiSegment);
                        continue;
                    }
                    match (tx_buffers.get_mut(index), tx.get_mut(index)) {
                        (Some(buffer), Some(queue)) => {
                            counters.from_host.inc();
                            counters.tx_bytes.add(PacketBuf::data(&mbuf).len() as u64);
                            buffer.push(queue, mbuf);
                        }
                        _ => counters.count_drop(DropReason::NoHostPath),
                    }
                }
            }
        }
        handled
    }

    /// Sends what is buffered for the taps and accounts it (`to_host`, `host_path_full`).
    pub fn flush(&mut self, counters: &WorkerCounters) {
        for link in self.links.iter_mut().flatten() {
            link.tx_buffer.flush(&mut link.tx);
            let (sent, dropped) = (link.tx_buffer.sent(), link.tx_buffer.dropped());
            if sent != link.reported.0 {
                counters.to_host.add(sent - link.reported.0);
            }
            for _ in link.reported.1..dropped {
                counters.count_drop(DropReason::HostPathFull);
            }
            link.reported = (sent, dropped);
        }
    }
}
