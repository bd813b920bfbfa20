//! `--lb-generate`: traffic for `--forward-mode=lb` made in-process and fed to the workers over
//! a `net_ring` pair, so that a run can sustain a share of new connections (a replayed pcap
//! opens its flows once, on the first pass, and only hits them afterwards).
//!
//! The sequence is fixed by the options: first the opening packet of every established flow
//! (TCP SYN, or a UDP flow's first datagram), then the established flows in turn (TCP ACK with
//! payload, UDP datagram), a `--lb-new-share` of the packets replaced by the opening packet of
//! a connection from a fresh client address and port. Shares are spread evenly (packet `n` is
//! of the kind when `floor((n + 1) * share)` moves past `floor(n * share)`), so any stretch of
//! the run has them. The generator runs as a plain thread beside the main lcore (which only
//! prints statistics), frees what the workers send back, and keeps a burst the ring did not
//! take for the next try, so no packet of the sequence is skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use dataplane::dpdk::{MbufBurst, Mempool, Port, RxQueue, MAX_BURST};
use dataplane::wire::checksum;

use super::options::BenchOptions;

const ETH: usize = 14;
const IP: usize = ETH;
const L4: usize = IP + 20;
const TCP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
/// Flows per client address (client ports 1024..1088 for the established flows).
const FLOWS_PER_ADDR: u32 = 64;
/// Fresh connections per client address (client ports 1024..65536).
const FRESH_PER_ADDR: u64 = 65536 - 1024;

/// What the generator sends: see the module documentation.
#[derive(Debug, Clone)]
pub struct Traffic {
    frame_len: usize,
    flows: u32,
    new_share: f64,
    udp_share: f64,
    tcp: Vec<u8>,
    udp: Vec<u8>,
    /// The templates' IPv4 header sums with a zero source address (finished at write).
    tcp_ip_sum: u64,
    udp_ip_sum: u64,
    /// Established flows opened so far (the first pass).
    opened: u32,
    /// Packets of the steady state so far, and the established flow next in turn.
    steady: u64,
    cursor: u32,
    /// Fresh connections opened so far.
    fresh: u64,
}

/// Whether item `n` of a sequence is one of the `share` (spread evenly).
fn in_share(n: u64, share: f64) -> bool {
    ((n + 1) as f64 * share).floor() > (n as f64 * share).floor()
}

impl Traffic {
    /// Traffic to `vip`:`port` in frames of `frame_len` bytes sent to `dst_mac`.
    pub fn new(opts: &BenchOptions, dst_mac: [u8; 6]) -> Result<Traffic> {
        let std::net::IpAddr::V4(vip) = opts.lb_vip else {
            bail!("--lb-generate makes IPv4 traffic: give an IPv4 --lb-vip");
        };
        let frame_len = usize::from(opts.txpkts);
        if opts.lb_udp_share < 1.0 && frame_len < L4 + TCP_HEADER {
            bail!(
                "--txpkts {frame_len} is too short for TCP (at least {})",
                L4 + TCP_HEADER
            );
        }
        let template = |proto: u8, l4_header: usize| -> Vec<u8> {
            let mut f = vec![0u8; frame_len.max(L4 + l4_header)];
            f[..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0xc1, 0x01]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip_len = (f.len() - ETH) as u16;
            f[IP] = 0x45;
            f[IP + 2..IP + 4].copy_from_slice(&ip_len.to_be_bytes());
            f[IP + 8] = 64;
            f[IP + 9] = proto;
            f[IP + 16..IP + 20].copy_from_slice(&vip.octets());
            f[L4 + 2..L4 + 4].copy_from_slice(&opts.lb_port.to_be_bytes());
            if proto == 6 {
                f[L4 + 4..L4 + 8].copy_from_slice(&1000u32.to_be_bytes());
                f[L4 + 12] = 5 << 4;
                f[L4 + 14..L4 + 16].copy_from_slice(&8192u16.to_be_bytes());
            } else {
                // The UDP checksum stays 0: "none".
                f[L4 + 4..L4 + 6].copy_from_slice(&(ip_len - 20).to_be_bytes());
            }
            f
        };
        let tcp = template(6, TCP_HEADER);
        let udp = template(17, UDP_HEADER);
        Ok(Traffic {
            frame_len,
            flows: opts.lb_flows,
            new_share: opts.lb_new_share,
            udp_share: opts.lb_udp_share,
            tcp_ip_sum: checksum::sum(&tcp[IP..L4]),
            udp_ip_sum: checksum::sum(&udp[IP..L4]),
            tcp,
            udp,
            opened: 0,
            steady: 0,
            cursor: 0,
            fresh: 0,
        })
    }

    /// The length of every frame (`--txpkts`; checked long enough for the kinds in use).
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Fresh connections opened so far.
    pub fn fresh(&self) -> u64 {
        self.fresh
    }

    /// Writes the next frame of the sequence into `buf` ([`Traffic::frame_len`] bytes).
    pub fn write_next(&mut self, buf: &mut [u8]) {
        let (client, sport, udp, opening) = if self.opened < self.flows {
            let flow = self.opened;
            self.opened += 1;
            let (addr, port) = established_endpoint(flow);
            (addr, port, in_share(u64::from(flow), self.udp_share), true)
        } else {
            let n = self.steady;
            self.steady += 1;
            if in_share(n, self.new_share) {
                let j = self.fresh;
                self.fresh += 1;
                let (addr, port) = fresh_endpoint(j);
                (addr, port, in_share(j, self.udp_share), true)
            } else {
                let flow = self.cursor;
                self.cursor = (self.cursor + 1) % self.flows;
                let (addr, port) = established_endpoint(flow);
                (addr, port, in_share(u64::from(flow), self.udp_share), false)
            }
        };
        let (template, ip_sum) = if udp {
            (&self.udp, self.udp_ip_sum)
        } else {
            (&self.tcp, self.tcp_ip_sum)
        };
        let Some(frame) = buf.get_mut(..template.len()) else {
            return;
        };
        frame.copy_from_slice(template);
        frame[IP + 12..IP + 16].copy_from_slice(&client);
        let ip_checksum = checksum::finish(ip_sum + checksum::sum(&client));
        frame[IP + 10..IP + 12].copy_from_slice(&ip_checksum.to_be_bytes());
        frame[L4..L4 + 2].copy_from_slice(&sport.to_be_bytes());
        if !udp {
            frame[L4 + 13] = if opening { TCP_SYN } else { TCP_ACK };
        }
    }
}

/// Client of established flow `i`: 198.18.128.0/18, 64 ports per address.
fn established_endpoint(i: u32) -> ([u8; 4], u16) {
    let host = i / FLOWS_PER_ADDR;
    (
        [198, 18, 128 + ((host >> 8) & 63) as u8, host as u8],
        1024 + (i % FLOWS_PER_ADDR) as u16,
    )
}

/// Client of fresh connection `j`: 198.18.192.0/18, every port from 1024 up.
fn fresh_endpoint(j: u64) -> ([u8; 4], u16) {
    let host = j / FRESH_PER_ADDR;
    (
        [198, 18, 192 + ((host >> 8) & 63) as u8, host as u8],
        1024 + (j % FRESH_PER_ADDR) as u16,
    )
}

/// What the generator did, for the final report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GeneratorReport {
    /// Frames the ring took.
    pub sent: u64,
    /// Frames made that open a connection from a fresh client endpoint.
    pub fresh_connections: u64,
    /// Frames made but never taken by the ring (0 unless the workers stopped taking them).
    pub unsent: u64,
    /// Frames the workers sent back (freed).
    pub returned: u64,
}

/// Sends [`Traffic`] on every TX queue of `port` (the ring pair's outside end) and frees what
/// arrives on its RX queues, until `stop`.
/// `queues`: (TX, RX) queue counts of `port`.
pub fn spawn(
    mut port: Port,
    pool: Mempool,
    mut traffic: Traffic,
    queues: (u16, u16),
    burst_size: usize,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<GeneratorReport>> {
    let tx = (0..queues.0)
        .map(|q| port.tx_queue(q).context("generator TX queue"))
        .collect::<Result<Vec<_>>>()?;
    let mut rx = (0..queues.1)
        .map(|q| port.rx_queue(q).context("generator RX queue"))
        .collect::<Result<Vec<_>>>()?;
    let len = traffic.frame_len() as u16;
    let burst_size = burst_size.clamp(1, MAX_BURST);
    std::thread::Builder::new()
        .name("lb-generator".into())
        .spawn(move || {
            let _port = port; // closes after the queues
            let mut report = GeneratorReport::default();
            let mut tx = tx;
            let mut pending: Vec<MbufBurst> = (0..tx.len()).map(|_| MbufBurst::new()).collect();
            let mut back = MbufBurst::new();
            // Frees what the workers sent back; returns how many.
            let mut drain = |rx: &mut [RxQueue]| -> u64 {
                let mut n = 0;
                for queue in rx.iter_mut() {
                    n += queue.rx_burst(&mut back) as u64;
                    back.clear();
                }
                n
            };
            while !stop.load(Ordering::Relaxed) {
                report.returned += drain(&mut rx);
                for (queue, burst) in tx.iter_mut().zip(pending.iter_mut()) {
                    if burst.is_empty() {
                        if !pool.alloc_bulk(burst, burst_size) {
                            continue;
                        }
                        for m in burst.as_mut_slice() {
                            if let Some(buf) = m.append(len) {
                                traffic.write_next(buf);
                            }
                        }
                    }
                    report.sent += queue.tx_burst(burst) as u64;
                }
            }
            // Hand over what is made but not yet taken (the workers still run), so every frame
            // made is sent and the figures add up; give up after a second.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while pending.iter().any(|b| !b.is_empty()) && std::time::Instant::now() < deadline {
                report.returned += drain(&mut rx);
                for (queue, burst) in tx.iter_mut().zip(pending.iter_mut()) {
                    report.sent += queue.tx_burst(burst) as u64;
                }
            }
            report.unsent = pending.iter().map(|b| b.len() as u64).sum();
            report.fresh_connections = traffic.fresh();
            report
        })
        .context("starting the generator thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn traffic(args: &[&str]) -> Traffic {
        let opts = BenchOptions::try_parse_from(["b", "--lb-generate"].iter().chain(args)).unwrap();
        Traffic::new(&opts, [2, 0, 0, 0, 0, 0xaa]).unwrap()
    }

    /// (source, source port, TCP flags or None for UDP) of the next frame, checked by etherparse.
    fn next(t: &mut Traffic) -> ([u8; 4], u16, Option<u8>) {
        let mut buf = vec![0u8; t.frame_len()];
        t.write_next(&mut buf);
        let p = etherparse::SlicedPacket::from_ethernet(&buf).expect("parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
        assert_eq!(h.destination, [198, 18, 100, 10]);
        match p.transport {
            Some(etherparse::TransportSlice::Tcp(tcp)) => {
                assert_eq!(tcp.destination_port(), 80);
                (h.source, tcp.source_port(), Some(buf[L4 + 13]))
            }
            Some(etherparse::TransportSlice::Udp(udp)) => {
                assert_eq!(udp.destination_port(), 80);
                assert_eq!(usize::from(udp.length()), buf.len() - L4);
                (h.source, udp.source_port(), None)
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    #[test]
    fn opens_every_flow_then_sends_to_each_in_turn() {
        let mut t = traffic(&["--lb-flows", "100"]);
        let opening: Vec<_> = (0..100).map(|_| next(&mut t)).collect();
        assert!(opening.iter().all(|(_, _, f)| *f == Some(TCP_SYN)));
        let distinct: std::collections::HashSet<_> =
            opening.iter().map(|(a, p, _)| (*a, *p)).collect();
        assert_eq!(distinct.len(), 100);
        for round in 0..2 {
            for (i, first) in opening.iter().enumerate() {
                let (addr, port, flags) = next(&mut t);
                assert_eq!((addr, port), (first.0, first.1), "round {round} flow {i}");
                assert_eq!(flags, Some(TCP_ACK));
            }
        }
        assert_eq!(t.fresh(), 0);
    }

    #[test]
    fn shares_of_new_connections_and_udp_are_exact_over_any_stretch() {
        let mut t = traffic(&[
            "--lb-flows",
            "40",
            "--lb-new-share",
            "0.25",
            "--lb-udp-share",
            "0.5",
        ]);
        let opening: Vec<_> = (0..40).map(|_| next(&mut t)).collect();
        assert_eq!(opening.iter().filter(|(_, _, f)| f.is_none()).count(), 20);
        let established: std::collections::HashSet<_> =
            opening.iter().map(|(a, p, _)| (*a, *p)).collect();
        let mut fresh = std::collections::HashSet::new();
        let mut fresh_udp = 0;
        for chunk in 0..10 {
            let mut new = 0;
            for _ in 0..400 {
                let (addr, port, flags) = next(&mut t);
                if established.contains(&(addr, port)) {
                    assert_ne!(flags, Some(TCP_SYN), "established flows send data");
                } else {
                    assert!(fresh.insert((addr, port)), "a fresh endpoint repeated");
                    assert!(flags.is_none() || flags == Some(TCP_SYN));
                    fresh_udp += usize::from(flags.is_none());
                    new += 1;
                }
            }
            assert_eq!(new, 100, "chunk {chunk}: a quarter of 400");
        }
        assert_eq!(t.fresh(), 1000);
        assert_eq!(fresh_udp, 500, "half the fresh connections are UDP");
    }

    #[test]
    fn endpoints_stay_in_their_ranges() {
        assert_eq!(established_endpoint(0), ([198, 18, 128, 0], 1024));
        assert_eq!(
            established_endpoint((1 << 20) - 1),
            ([198, 18, 191, 255], 1087)
        );
        assert_eq!(fresh_endpoint(0), ([198, 18, 192, 0], 1024));
        assert_eq!(
            fresh_endpoint(FRESH_PER_ADDR - 1),
            ([198, 18, 192, 0], 65535)
        );
        assert_eq!(fresh_endpoint(FRESH_PER_ADDR), ([198, 18, 192, 1], 1024));
    }

    #[test]
    fn rejects_what_it_cannot_make() {
        let opts = BenchOptions::try_parse_from(["b", "--lb-generate", "--lb-vip", "2001:db8::1"])
            .unwrap();
        assert!(Traffic::new(&opts, [0; 6]).is_err());
        let opts = BenchOptions::try_parse_from(["b", "--lb-generate", "--txpkts", "50"]).unwrap();
        assert!(Traffic::new(&opts, [0; 6]).is_err());
        let opts = BenchOptions::try_parse_from([
            "b",
            "--lb-generate",
            "--txpkts",
            "50",
            "--lb-udp-share",
            "1",
        ])
        .unwrap();
        assert_eq!(Traffic::new(&opts, [0; 6]).unwrap().frame_len(), 50);
    }
}
