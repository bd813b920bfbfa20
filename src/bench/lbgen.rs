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
use dataplane::wire::ethernet::ethertype;

use super::options::BenchOptions;

const ETH: usize = 14;
const VLAN_TAG: usize = 4;
const TCP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;
/// Flows per client address (client ports 1024..1088 for the established flows).
const FLOWS_PER_ADDR: u32 = 64;
/// Fresh connections per client address (client ports 1024..65536).
const FRESH_PER_ADDR: u64 = 65536 - 1024;

/// Where the frames keep their fields: IPv4 or IPv6, with or without an 802.1Q tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    vlan: Option<u16>,
    v6: bool,
}

impl Layout {
    fn l3(self) -> usize {
        ETH + if self.vlan.is_some() { VLAN_TAG } else { 0 }
    }
    fn l4(self) -> usize {
        self.l3() + if self.v6 { 40 } else { 20 }
    }
    fn src(self) -> usize {
        self.l3() + if self.v6 { 8 } else { 12 }
    }
    fn addr_len(self) -> usize {
        if self.v6 {
            16
        } else {
            4
        }
    }
}

/// One kind of frame (TCP or UDP) with the client's address and port zeroed, and the sums
/// of what does not change, so that writing a frame adds only the client's part.
#[derive(Debug, Clone)]
struct Template {
    frame: Vec<u8>,
    /// The IPv4 header's sum (IPv6 has no header checksum).
    ip_sum: u64,
    /// The L4 checksum's sum: pseudo-header without the source, header and payload.
    l4_sum: u64,
    tcp: bool,
}

/// What the generator sends: see the module documentation.
#[derive(Debug, Clone)]
pub struct Traffic {
    layout: Layout,
    frame_len: usize,
    flows: u32,
    new_share: f64,
    udp_share: f64,
    tcp: Template,
    udp: Template,
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
    /// Traffic to `--lb-vip`:`--lb-port` (IPv4 or IPv6 as the VIP is), tagged with
    /// `--lb-vlan` if given, in frames of `--txpkts` bytes sent to `dst_mac`.
    pub fn new(opts: &BenchOptions, dst_mac: [u8; 6]) -> Result<Traffic> {
        let layout = Layout {
            vlan: opts.lb_vlan,
            v6: opts.lb_vip.is_ipv6(),
        };
        let vip: Vec<u8> = match opts.lb_vip {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        let frame_len = usize::from(opts.txpkts);
        let (l3, l4) = (layout.l3(), layout.l4());
        for (share, header, kind) in [
            (1.0 - opts.lb_udp_share, TCP_HEADER, "TCP"),
            (opts.lb_udp_share, UDP_HEADER, "UDP"),
        ] {
            if share > 0.0 && frame_len < l4 + header {
                bail!(
                    "--txpkts {frame_len} is too short for {kind} over {} (at least {})",
                    if layout.v6 { "IPv6" } else { "IPv4" },
                    l4 + header
                );
            }
        }
        let template = |proto: u8, l4_header: usize| -> Template {
            let mut f = vec![0u8; frame_len.max(l4 + l4_header)];
            f[..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0xc1, 0x01]);
            if let Some(vid) = layout.vlan {
                f[12..14].copy_from_slice(&ethertype::VLAN.to_be_bytes());
                f[14..16].copy_from_slice(&vid.to_be_bytes());
            }
            let l3_type = if layout.v6 {
                ethertype::IPV6
            } else {
                ethertype::IPV4
            };
            f[l3 - 2..l3].copy_from_slice(&l3_type.to_be_bytes());
            let l4_len = f.len() - l4;
            if layout.v6 {
                f[l3] = 0x60;
                f[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                f[l3 + 6] = proto;
                f[l3 + 7] = 64;
                f[l3 + 24..l3 + 40].copy_from_slice(&vip);
            } else {
                f[l3] = 0x45;
                let ip_len = (f.len() - l3) as u16;
                f[l3 + 2..l3 + 4].copy_from_slice(&ip_len.to_be_bytes());
                f[l3 + 8] = 64;
                f[l3 + 9] = proto;
                f[l3 + 16..l3 + 20].copy_from_slice(&vip);
            }
            f[l4 + 2..l4 + 4].copy_from_slice(&opts.lb_port.to_be_bytes());
            if proto == 6 {
                f[l4 + 4..l4 + 8].copy_from_slice(&1000u32.to_be_bytes());
                f[l4 + 12] = 5 << 4;
                f[l4 + 14..l4 + 16].copy_from_slice(&8192u16.to_be_bytes());
            } else {
                f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            // The pseudo-header's destination, protocol and length, then the L4 bytes.
            let pseudo = checksum::sum(&vip) + u64::from(proto) + l4_len as u64;
            Template {
                ip_sum: if layout.v6 {
                    0
                } else {
                    checksum::sum(&f[l3..l4])
                },
                l4_sum: pseudo + checksum::sum(&f[l4..]),
                frame: f,
                tcp: proto == 6,
            }
        };
        Ok(Traffic {
            layout,
            frame_len,
            flows: opts.lb_flows,
            new_share: opts.lb_new_share,
            udp_share: opts.lb_udp_share,
            tcp: template(6, TCP_HEADER),
            udp: template(17, UDP_HEADER),
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
            let (client, port) = established_endpoint(self.layout.v6, flow);
            (
                client,
                port,
                in_share(u64::from(flow), self.udp_share),
                true,
            )
        } else {
            let n = self.steady;
            self.steady += 1;
            if in_share(n, self.new_share) {
                let j = self.fresh;
                self.fresh += 1;
                let (client, port) = fresh_endpoint(self.layout.v6, j);
                (client, port, in_share(j, self.udp_share), true)
            } else {
                let flow = self.cursor;
                self.cursor = (self.cursor + 1) % self.flows;
                let (client, port) = established_endpoint(self.layout.v6, flow);
                (
                    client,
                    port,
                    in_share(u64::from(flow), self.udp_share),
                    false,
                )
            }
        };
        let template = if udp { &self.udp } else { &self.tcp };
        let Some(frame) = buf.get_mut(..template.frame.len()) else {
            return;
        };
        let (l3, l4, src) = (self.layout.l3(), self.layout.l4(), self.layout.src());
        let client = &client[..self.layout.addr_len()];
        frame.copy_from_slice(&template.frame);
        frame[src..src + client.len()].copy_from_slice(client);
        let client_sum = checksum::sum(client);
        if !self.layout.v6 {
            let ip_checksum = checksum::finish(template.ip_sum + client_sum);
            frame[l3 + 10..l3 + 12].copy_from_slice(&ip_checksum.to_be_bytes());
        }
        frame[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        let mut l4_sum = template.l4_sum + client_sum + u64::from(sport);
        let checksum_at = if template.tcp {
            let flags = if opening { TCP_SYN } else { TCP_ACK };
            frame[l4 + 13] = flags;
            l4_sum += u64::from(flags);
            l4 + 16
        } else {
            l4 + 6
        };
        let l4_checksum = match checksum::finish(l4_sum) {
            // A UDP checksum of 0 means "none": all ones stands for a zero result (RFC 768).
            0 if !template.tcp => 0xffff,
            c => c,
        };
        frame[checksum_at..checksum_at + 2].copy_from_slice(&l4_checksum.to_be_bytes());
    }
}

/// A client address: 4 bytes (IPv4) or 16 (IPv6), in the first bytes of the array.
type ClientAddr = [u8; 16];

/// Client host `host` of the established (`fresh` false) or fresh clients: IPv4
/// 198.18.128.0/18 and 198.18.192.0/18 (the host number wraps at 2^14); IPv6
/// 2001:2:0:8000::/64 and 2001:2:0:c000::/64, the host number in the last 32 bits.
fn client_addr(v6: bool, fresh: bool, host: u32) -> ClientAddr {
    let mut a = [0u8; 16];
    if v6 {
        a[..8].copy_from_slice(&[
            0x20,
            0x01,
            0x00,
            0x02,
            0,
            0,
            if fresh { 0xc0 } else { 0x80 },
            0,
        ]);
        a[12..].copy_from_slice(&host.to_be_bytes());
    } else {
        let base = if fresh { 192 } else { 128 };
        a[..4].copy_from_slice(&[198, 18, base + ((host >> 8) & 63) as u8, host as u8]);
    }
    a
}

/// Client of established flow `i`: 64 ports (from 1024) per address.
fn established_endpoint(v6: bool, i: u32) -> (ClientAddr, u16) {
    (
        client_addr(v6, false, i / FLOWS_PER_ADDR),
        1024 + (i % FLOWS_PER_ADDR) as u16,
    )
}

/// Client of fresh connection `j`: every port from 1024 up per address.
fn fresh_endpoint(v6: bool, j: u64) -> (ClientAddr, u16) {
    (
        client_addr(v6, true, (j / FRESH_PER_ADDR) as u32),
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
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn traffic(args: &[&str]) -> Traffic {
        let opts = BenchOptions::try_parse_from(["b", "--lb-generate"].iter().chain(args)).unwrap();
        Traffic::new(&opts, [2, 0, 0, 0, 0, 0xaa]).unwrap()
    }

    /// (source address, source port, TCP flags or None for UDP) of the next frame, parsed and
    /// its checksums verified by etherparse; `vip` is where every frame must go, `vlan` the
    /// tag every frame must carry.
    fn next_to(
        t: &mut Traffic,
        vip: std::net::IpAddr,
        vlan: Option<u16>,
    ) -> (Vec<u8>, u16, Option<u8>) {
        let mut buf = vec![0u8; t.frame_len()];
        t.write_next(&mut buf);
        let p = SlicedPacket::from_ethernet(&buf).expect("parses");
        let tag = p.vlan.as_ref().map(|v| match v {
            etherparse::VlanSlice::SingleVlan(s) => s.vlan_identifier().value(),
            etherparse::VlanSlice::DoubleVlan(_) => panic!("one tag at most"),
        });
        assert_eq!(tag, vlan);
        let (src, dst, l4_sum) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 checksum");
                assert_eq!(usize::from(h.total_len), buf.len() - t.layout.l3());
                let l4_sum = match &p.transport {
                    Some(TransportSlice::Tcp(tcp)) => tcp
                        .to_header()
                        .calc_checksum_ipv4(&h, tcp.payload())
                        .unwrap(),
                    Some(TransportSlice::Udp(udp)) => udp
                        .to_header()
                        .calc_checksum_ipv4(&h, udp.payload())
                        .unwrap(),
                    other => panic!("unexpected transport {other:?}"),
                };
                (
                    h.source.to_vec(),
                    std::net::IpAddr::from(h.destination),
                    l4_sum,
                )
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(usize::from(h.payload_length), buf.len() - t.layout.l4());
                let l4_sum = match &p.transport {
                    Some(TransportSlice::Tcp(tcp)) => tcp
                        .to_header()
                        .calc_checksum_ipv6(&h, tcp.payload())
                        .unwrap(),
                    Some(TransportSlice::Udp(udp)) => udp
                        .to_header()
                        .calc_checksum_ipv6(&h, udp.payload())
                        .unwrap(),
                    other => panic!("unexpected transport {other:?}"),
                };
                (
                    h.source.to_vec(),
                    std::net::IpAddr::from(h.destination),
                    l4_sum,
                )
            }
            other => panic!("not IP: {other:?}"),
        };
        assert_eq!(dst, vip);
        match p.transport {
            Some(TransportSlice::Tcp(tcp)) => {
                assert_eq!(tcp.destination_port(), 80);
                assert_eq!(tcp.checksum(), l4_sum, "TCP checksum");
                (src, tcp.source_port(), Some(buf[t.layout.l4() + 13]))
            }
            Some(TransportSlice::Udp(udp)) => {
                assert_eq!(udp.destination_port(), 80);
                assert_eq!(usize::from(udp.length()), buf.len() - t.layout.l4());
                assert_eq!(udp.checksum(), l4_sum, "UDP checksum");
                (src, udp.source_port(), None)
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    fn next(t: &mut Traffic) -> (Vec<u8>, u16, Option<u8>) {
        next_to(t, "198.18.100.10".parse().unwrap(), None)
    }

    #[test]
    fn opens_every_flow_then_sends_to_each_in_turn() {
        let mut t = traffic(&["--lb-flows", "100"]);
        let opening: Vec<_> = (0..100).map(|_| next(&mut t)).collect();
        assert!(opening.iter().all(|(_, _, f)| *f == Some(TCP_SYN)));
        let distinct: std::collections::HashSet<_> =
            opening.iter().map(|(a, p, _)| (a.clone(), *p)).collect();
        assert_eq!(distinct.len(), 100);
        for round in 0..2 {
            for (i, first) in opening.iter().enumerate() {
                let (addr, port, flags) = next(&mut t);
                assert_eq!((&addr, port), (&first.0, first.1), "round {round} flow {i}");
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
            opening.iter().map(|(a, p, _)| (a.clone(), *p)).collect();
        let mut fresh = std::collections::HashSet::new();
        let mut fresh_udp = 0;
        for chunk in 0..10 {
            let mut new = 0;
            for _ in 0..400 {
                let (addr, port, flags) = next(&mut t);
                if established.contains(&(addr.clone(), port)) {
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
    fn makes_ipv6_and_tagged_frames_with_valid_checksums() {
        let vip: std::net::IpAddr = "2001:2:0:100::10".parse().unwrap();
        for (args, vip, vlan) in [
            (
                vec!["--lb-vip", "2001:2:0:100::10", "--txpkts", "84"],
                vip,
                None,
            ),
            (
                vec![
                    "--lb-vip",
                    "2001:2:0:100::10",
                    "--txpkts",
                    "88",
                    "--lb-vlan",
                    "10",
                ],
                vip,
                Some(10),
            ),
            (
                vec!["--lb-vlan", "4094", "--txpkts", "68"],
                "198.18.100.10".parse().unwrap(),
                Some(4094),
            ),
        ] {
            let mut args = args;
            args.extend([
                "--lb-flows",
                "70",
                "--lb-new-share",
                "0.5",
                "--lb-udp-share",
                "0.5",
            ]);
            let mut t = traffic(&args);
            let mut kinds = std::collections::HashSet::new();
            for _ in 0..400 {
                let (src, port, flags) = next_to(&mut t, vip, vlan);
                assert_eq!(src.len(), if vip.is_ipv6() { 16 } else { 4 });
                assert!(port >= 1024);
                kinds.insert(flags);
            }
            let want: std::collections::HashSet<_> =
                [None, Some(TCP_SYN), Some(TCP_ACK)].into_iter().collect();
            assert_eq!(kinds, want, "{args:?}: every kind of frame checked");
        }
    }

    #[test]
    fn endpoints_stay_in_their_ranges() {
        let v4 = |(a, p): (ClientAddr, u16)| (a[..4].to_vec(), p);
        assert_eq!(
            v4(established_endpoint(false, 0)),
            (vec![198, 18, 128, 0], 1024)
        );
        assert_eq!(
            v4(established_endpoint(false, (1 << 20) - 1)),
            (vec![198, 18, 191, 255], 1087)
        );
        assert_eq!(v4(fresh_endpoint(false, 0)), (vec![198, 18, 192, 0], 1024));
        assert_eq!(
            v4(fresh_endpoint(false, FRESH_PER_ADDR - 1)),
            (vec![198, 18, 192, 0], 65535)
        );
        assert_eq!(
            v4(fresh_endpoint(false, FRESH_PER_ADDR)),
            (vec![198, 18, 192, 1], 1024)
        );
        let v6 = |(a, p): (ClientAddr, u16)| (std::net::Ipv6Addr::from(a).to_string(), p);
        assert_eq!(
            v6(established_endpoint(true, (1 << 20) - 1)),
            ("2001:2:0:8000::3fff".to_owned(), 1087)
        );
        assert_eq!(
            v6(fresh_endpoint(true, FRESH_PER_ADDR * 70_000)),
            ("2001:2:0:c000::1:1170".to_owned(), 1024)
        );
    }

    #[test]
    fn rejects_what_it_cannot_make() {
        let err = |args: &[&str]| {
            let opts =
                BenchOptions::try_parse_from(["b", "--lb-generate"].iter().chain(args)).unwrap();
            Traffic::new(&opts, [0; 6]).err().map(|e| e.to_string())
        };
        assert_eq!(
            err(&["--txpkts", "50"]).as_deref(),
            Some("--txpkts 50 is too short for TCP over IPv4 (at least 54)")
        );
        assert_eq!(
            err(&["--lb-vip", "2001:2::10"]).as_deref(),
            Some("--txpkts 64 is too short for TCP over IPv6 (at least 74)")
        );
        let udp6_tagged = [
            "--lb-vip",
            "2001:2::10",
            "--lb-udp-share",
            "1",
            "--lb-vlan",
            "7",
        ];
        assert_eq!(
            err(&udp6_tagged).as_deref(),
            Some("--txpkts 64 is too short for UDP over IPv6 (at least 66)")
        );
        assert_eq!(err(&[&udp6_tagged[..], &["--txpkts", "66"]].concat()), None);
        assert!(BenchOptions::try_parse_from(["b", "--lb-vlan", "4095"]).is_err());
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
