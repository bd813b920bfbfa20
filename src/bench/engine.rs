//! The forwarding engines: what one stream does with one burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::utils::CachePadded;
use dataplane::dpdk::{MbufBurst, Mempool, RxQueue, TxQueue};

use super::options::ForwardMode;

/// Counters of one stream, written by its worker only (plain stores, no atomic RMW) and read
/// by the stats printer.
#[derive(Debug, Default)]
pub struct StreamCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    /// Received (or generated) but not taken by the TX queue: freed.
    pub dropped: AtomicU64,
}

/// One RX queue forwarded to one TX queue.
#[derive(Debug)]
pub struct Stream {
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub counters: Arc<CachePadded<StreamCounters>>,
    rx_total: u64,
    tx_total: u64,
    dropped_total: u64,
    /// txonly: next flow (UDP source port offset) to generate.
    flow_cursor: u32,
}

impl Stream {
    pub fn new(rx: RxQueue, tx: TxQueue) -> Stream {
        Stream {
            rx,
            tx,
            counters: Arc::new(CachePadded::new(StreamCounters::default())),
            rx_total: 0,
            tx_total: 0,
            dropped_total: 0,
            flow_cursor: 0,
        }
    }

    #[inline]
    fn publish(&mut self, rx: usize, tx: usize, dropped: usize) {
        self.rx_total += rx as u64;
        self.tx_total += tx as u64;
        self.dropped_total += dropped as u64;
        self.counters.rx.store(self.rx_total, Ordering::Relaxed);
        self.counters.tx.store(self.tx_total, Ordering::Relaxed);
        self.counters
            .dropped
            .store(self.dropped_total, Ordering::Relaxed);
    }
}

/// A template frame for txonly: Ethernet / IPv4 / UDP, 198.18.0.1 -> 198.18.0.2, port 9.
#[derive(Debug, Clone)]
pub struct TxTemplate {
    frame: Vec<u8>,
    flows: u32,
}

const UDP_SRC_PORT_OFFSET: usize = 14 + 20;
const TX_BASE_PORT: u32 = 1024;

impl TxTemplate {
    pub fn new(frame_len: u16, flows: u32, src_mac: [u8; 6]) -> TxTemplate {
        let len = usize::from(frame_len).max(42);
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        f[6..12].copy_from_slice(&src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = (len - 14) as u16;
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        let csum = dataplane::wire::checksum::internet_checksum(ip);
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
        let udp_len = ip_len - 20;
        f[34..36].copy_from_slice(&(TX_BASE_PORT as u16).to_be_bytes());
        f[36..38].copy_from_slice(&9u16.to_be_bytes());
        f[38..40].copy_from_slice(&udp_len.to_be_bytes());
        // UDP checksum 0: "no checksum" for IPv4, so varying the source port needs no update.
        TxTemplate {
            frame: f,
            flows: flows.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.frame.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }
}

/// Runs one burst of `mode` on `stream`; returns the packets handled (received or generated).
#[inline]
pub fn run_burst(
    mode: ForwardMode,
    stream: &mut Stream,
    burst: &mut MbufBurst,
    max: usize,
    pool: &Mempool,
    template: &TxTemplate,
) -> usize {
    match mode {
        ForwardMode::Io => forward(stream, burst, max, |_| {}),
        ForwardMode::Macswap => forward(stream, burst, max, macswap),
        ForwardMode::Rxonly => {
            let n = stream.rx.rx_burst_max(burst, max);
            if n > 0 {
                burst.clear();
                stream.publish(n, 0, 0);
            }
            n
        }
        ForwardMode::Txonly => generate(stream, burst, max, pool, template),
        ForwardMode::FiveTupleSwap => forward(stream, burst, max, five_tuple_swap),
        // The lb mode runs Sluice's worker loop instead of streams (see bench::lb).
        ForwardMode::Lb => 0,
    }
}

#[inline]
fn forward(
    stream: &mut Stream,
    burst: &mut MbufBurst,
    max: usize,
    edit: impl Fn(&mut [u8]),
) -> usize {
    let n = stream.rx.rx_burst_max(burst, max);
    if n == 0 {
        return 0;
    }
    for m in burst.as_mut_slice() {
        edit(m.data_mut());
    }
    let sent = stream.tx.tx_burst(burst);
    let dropped = burst.len();
    burst.clear();
    stream.publish(n, sent, dropped);
    n
}

#[inline]
fn macswap(frame: &mut [u8]) {
    if let Some(macs) = frame.get_mut(..12) {
        let (dst, src) = macs.split_at_mut(6);
        dst.swap_with_slice(src);
    }
}

/// Swaps MACs, IP addresses and TCP/UDP ports in place, as testpmd's 5tswap does; frames that
/// do not parse keep what could be swapped.
#[inline]
fn five_tuple_swap(frame: &mut [u8]) {
    macswap(frame);
    let Ok(info) = dataplane::wire::parse(frame) else {
        return;
    };
    let l3 = usize::from(info.l3_offset);
    let (src, len) = match info.ip_version {
        4 => (l3 + 12, 4),
        6 => (l3 + 8, 16),
        _ => return,
    };
    if let Some(addrs) = frame.get_mut(src..src + 2 * len) {
        let (a, b) = addrs.split_at_mut(len);
        a.swap_with_slice(b);
    }
    if info.has_l4_header() && matches!(info.l4_proto, 6 | 17) {
        let l4 = usize::from(info.l4_offset);
        if let Some(ports) = frame.get_mut(l4..l4 + 4) {
            let (a, b) = ports.split_at_mut(2);
            a.swap_with_slice(b);
        }
    }
}

#[inline]
fn generate(
    stream: &mut Stream,
    burst: &mut MbufBurst,
    max: usize,
    pool: &Mempool,
    template: &TxTemplate,
) -> usize {
    let want = max.min(dataplane::dpdk::MAX_BURST);
    if !pool.alloc_bulk(burst, want) {
        return 0;
    }
    let len = template.frame.len() as u16;
    for m in burst.as_mut_slice() {
        if let Some(buf) = m.append(len) {
            buf.copy_from_slice(&template.frame);
            let port = (TX_BASE_PORT + stream.flow_cursor) as u16;
            stream.flow_cursor = (stream.flow_cursor + 1) % template.flows;
            if let Some(p) = buf.get_mut(UDP_SRC_PORT_OFFSET..UDP_SRC_PORT_OFFSET + 2) {
                p.copy_from_slice(&port.to_be_bytes());
            }
        }
    }
    let sent = stream.tx.tx_burst(burst);
    let dropped = burst.len();
    burst.clear();
    stream.publish(0, sent, dropped);
    want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_a_valid_ipv4_udp_frame() {
        let t = TxTemplate::new(64, 4, [2, 0, 0, 0, 0, 1]);
        assert_eq!(t.len(), 64);
        let (eth, rest) = etherparse::Ethernet2Header::from_slice(&t.frame).unwrap();
        assert_eq!(eth.source, [2, 0, 0, 0, 0, 1]);
        let (ip, _) = etherparse::Ipv4Header::from_slice(rest).unwrap();
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(ip.total_len, 50);
        assert_eq!(ip.source, [198, 18, 0, 1]);
    }

    #[test]
    fn five_tuple_swap_swaps_addresses_and_ports() {
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(1000, 2000);
        let mut f = Vec::new();
        b.write(&mut f, b"x").unwrap();
        five_tuple_swap(&mut f);
        let p = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
            panic!()
        };
        assert_eq!(ip.header().source(), [198, 18, 0, 2]);
        assert_eq!(ip.header().destination(), [198, 18, 0, 1]);
        let etherparse::TransportSlice::Udp(u) = p.transport.unwrap() else {
            panic!()
        };
        assert_eq!((u.source_port(), u.destination_port()), (2000, 1000));
        assert_eq!(&f[..12], &[[1u8; 6], [2u8; 6]].concat()[..]);
    }

    #[test]
    fn macswap_swaps_and_ignores_runts() {
        let mut f = [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 8, 0];
        macswap(&mut f);
        assert_eq!(&f[..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
        let mut runt = [1u8; 5];
        macswap(&mut runt);
        assert_eq!(runt, [1u8; 5]);
    }
}
