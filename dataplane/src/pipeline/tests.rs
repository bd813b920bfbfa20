//! Whole conversations through the pipeline with several workers. Every frame is built with
//! the independent `etherparse` crate, and every output is compared byte for byte with the
//! frame etherparse builds for the expected translation (so its checksums are etherparse's).

use super::*;
use crate::lb::Selection;
use crate::snapshot::{
    Backend, BackendState, Neighbour, ServiceConfig, ServiceKey, SnapshotConfig, SnatPool,
};
use etherparse::PacketBuilder;

const LB_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x0a, 0], [0x02, 0, 0, 0, 0x0a, 1]];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 0x01];
const CLIENT: [u8; 4] = [198, 18, 0, 5];
const VIP: [u8; 4] = [198, 18, 100, 10];
const SNAT: [u8; 4] = [198, 19, 255, 1];
const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
];
const CLIENT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05,
];
const SNAT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x01,
];

fn backend_ip(n: u8) -> [u8; 4] {
    [198, 19, 0, n]
}

fn backend_ip6(n: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[5] = 1;
    a[15] = n;
    a
}

fn backend_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0xbe, n]
}

fn backends(n: u8, port: u16, v6: bool) -> Vec<Backend> {
    (1..=n)
        .map(|i| Backend {
            id: u32::from(i) + if v6 { 100 } else { 0 },
            addr: if v6 {
                Addr::from_v6(backend_ip6(i))
            } else {
                Addr::from_v4(backend_ip(i))
            },
            port,
            weight: 1,
            state: BackendState::Active,
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn service(
    id: u32,
    vip: Addr,
    port: u16,
    proto: Proto,
    mode: NatMode,
    pool: Option<usize>,
    backends: Vec<Backend>,
) -> ServiceConfig {
    ServiceConfig {
        id,
        name: format!("svc{id}"),
        key: ServiceKey { vip, port, proto },
        mode,
        selection: Selection::Maglev,
        persistence: false,
        backends,
        snat_pool: pool,
        table_size: None,
    }
}

/// DNAT :80/tcp and :53/udp, full-NAT :81/tcp and :54/udp, an IPv6 full-NAT :80/tcp, a
/// service without backends at :82/tcp and :55/udp.
fn config(generation: u64) -> SnapshotConfig {
    let vip = Addr::from_v4(VIP);
    let vip6 = Addr::from_v6(VIP6);
    let mut neighbours: Vec<Neighbour> = (1..=3)
        .flat_map(|i| {
            [
                Neighbour {
                    addr: Addr::from_v4(backend_ip(i)),
                    mac: backend_mac(i),
                    port: 1,
                },
                Neighbour {
                    addr: Addr::from_v6(backend_ip6(i)),
                    mac: backend_mac(i),
                    port: 1,
                },
            ]
        })
        .collect();
    neighbours.push(Neighbour {
        addr: Addr::from_v4(CLIENT),
        mac: CLIENT_MAC,
        port: 0,
    });
    neighbours.push(Neighbour {
        addr: Addr::from_v6(CLIENT6),
        mac: CLIENT_MAC,
        port: 0,
    });
    SnapshotConfig {
        generation,
        selection_seed: 7,
        services: vec![
            service(
                1,
                vip,
                80,
                Proto::Tcp,
                NatMode::Dnat,
                None,
                backends(3, 8080, false),
            ),
            service(
                2,
                vip,
                53,
                Proto::Udp,
                NatMode::Dnat,
                None,
                backends(3, 5353, false),
            ),
            service(
                3,
                vip,
                81,
                Proto::Tcp,
                NatMode::FullNat,
                Some(0),
                backends(3, 8080, false),
            ),
            service(
                4,
                vip,
                54,
                Proto::Udp,
                NatMode::FullNat,
                Some(0),
                backends(3, 5353, false),
            ),
            service(
                5,
                vip6,
                80,
                Proto::Tcp,
                NatMode::FullNat,
                Some(1),
                backends(3, 8080, true),
            ),
            service(6, vip, 82, Proto::Tcp, NatMode::Dnat, None, Vec::new()),
            service(7, vip, 55, Proto::Udp, NatMode::Dnat, None, Vec::new()),
        ],
        snat_pools: vec![
            SnatPool {
                addrs: vec![Addr::from_v4(SNAT)],
            },
            SnatPool {
                addrs: vec![Addr::from_v6(SNAT6)],
            },
        ],
        routes: Vec::new(),
        neighbours,
        local_addrs: Vec::new(),
    }
}

/// Several workers sharing one snapshot; `send` plays RSS by delivering each packet to a
/// worker that is not its owner whenever possible, so handoff is exercised on every packet.
struct Cluster {
    workers: Vec<Worker>,
    snap: Snapshot,
    now: Tick,
}

impl Cluster {
    fn new(n: u16) -> Cluster {
        Cluster::with(n, |_| {})
    }

    fn with(n: u16, tweak: impl Fn(&mut WorkerConfig)) -> Cluster {
        let snap = Snapshot::compile(config(1), None).unwrap();
        let workers = (0..n)
            .map(|index| {
                let mut cfg = WorkerConfig {
                    index,
                    workers: n,
                    conn_capacity: 4096,
                    port_macs: LB_MAC.to_vec(),
                    ..WorkerConfig::default()
                };
                tweak(&mut cfg);
                let mut w = Worker::new(cfg).unwrap();
                w.on_snapshot(&snap);
                w
            })
            .collect();
        Cluster {
            workers,
            snap,
            now: Tick(1_000),
        }
    }

    fn publish(&mut self, config: SnapshotConfig) {
        self.snap = Snapshot::compile(config, Some(&self.snap)).unwrap();
        for w in &mut self.workers {
            w.on_snapshot(&self.snap);
        }
    }

    /// Returns the verdict and the frame as it leaves, and which worker finally handled it.
    fn send(&mut self, frame: Vec<u8>, ingress: u16) -> (Verdict, Vec<u8>, u16) {
        let mut frame = frame;
        let n = self.workers.len() as u16;
        let first = (crate::flow::mix(frame.len() as u64, frame[frame.len() - 1] as u64)
            % u64::from(n)) as u16;
        let mut at = first;
        let mut handed = false;
        for _ in 0..2 {
            let v = self.workers[at as usize]
                .process(&self.snap, &mut frame, ingress, self.now, handed);
            match v {
                Verdict::Handoff { worker } => {
                    assert!(!handed, "handed over twice");
                    assert_ne!(worker, at);
                    at = worker;
                    handed = true;
                }
                other => return (other, frame, at),
            }
        }
        unreachable!()
    }

    fn total_conns(&self) -> usize {
        self.workers.iter().map(|w| w.connections().len()).sum()
    }
}

/// The client's SYN from port `cport` to the VIP's port 80.
fn syn(cport: u16) -> Vec<u8> {
    syn_fields(cport).build()
}

/// The fields of [`syn`]'s frame, for tests that change some.
fn syn_fields(cport: u16) -> Tcp<'static> {
    Tcp {
        src_mac: CLIENT_MAC,
        dst_mac: LB_MAC[0],
        src: CLIENT,
        dst: VIP,
        ttl: 64,
        sport: cport,
        dport: 80,
        seq: 1,
        ack: None,
        syn: true,
        fin: false,
        rst: false,
        payload: b"",
    }
}

struct Tcp<'a> {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    payload: &'a [u8],
}

impl Tcp<'_> {
    fn build(&self) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2(self.src_mac, self.dst_mac)
            .ipv4(self.src, self.dst, self.ttl)
            .tcp(self.sport, self.dport, self.seq, 64240);
        if self.syn {
            b = b.syn();
        }
        if self.fin {
            b = b.fin();
        }
        if self.rst {
            b = b.rst();
        }
        if let Some(a) = self.ack {
            b = b.ack(a);
        }
        let mut out = Vec::with_capacity(b.size(self.payload.len()));
        b.write(&mut out, self.payload).unwrap();
        out
    }
}

#[allow(clippy::too_many_arguments)] // a frame has that many fields
fn udp4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(sport, dport);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

#[allow(clippy::too_many_arguments)]
fn tcp6(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 16],
    dst: [u8; 16],
    hop: u8,
    sport: u16,
    dport: u16,
    syn: bool,
    ack: Option<u32>,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(src, dst, hop)
        .tcp(sport, dport, 1, 65535);
    if syn {
        b = b.syn();
    }
    if let Some(a) = ack {
        b = b.ack(a);
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// Which backend (1..=3) a translated IPv4 frame went to, read by etherparse.
fn dst_backend(frame: &[u8]) -> u8 {
    let p = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    match p.net.unwrap() {
        etherparse::NetSlice::Ipv4(ip) => ip.header().destination()[3],
        etherparse::NetSlice::Ipv6(ip) => ip.header().destination()[15],
    }
}

fn src_port_of(frame: &[u8]) -> u16 {
    match etherparse::SlicedPacket::from_ethernet(frame)
        .unwrap()
        .transport
        .unwrap()
    {
        etherparse::TransportSlice::Tcp(t) => t.source_port(),
        etherparse::TransportSlice::Udp(u) => u.source_port(),
        _ => panic!("not tcp/udp"),
    }
}

fn run_tcp_conversation(vport: u16, full_nat: bool) {
    let mut c = Cluster::new(3);
    let cport = 40_000;
    let client = |seq: u32, ack: Option<u32>, syn: bool, fin: bool, payload: &'static [u8]| Tcp {
        src_mac: CLIENT_MAC,
        dst_mac: LB_MAC[0],
        src: CLIENT,
        dst: VIP,
        ttl: 64,
        sport: cport,
        dport: vport,
        seq,
        ack,
        syn,
        fin,
        rst: false,
        payload,
    };

    // SYN: client -> VIP, out to the chosen backend.
    let (v, out, owner) = c.send(client(100, None, true, false, b"").build(), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let b = dst_backend(&out);
    assert!((1..=3).contains(&b));
    let (lb_src, lb_sport) = if full_nat {
        (SNAT, src_port_of(&out))
    } else {
        (CLIENT, cport)
    };
    if full_nat {
        let ports =
            PortPartition::new(PortPartition::DEFAULT_FIRST, PortPartition::DEFAULT_LAST, 3)
                .unwrap();
        assert_eq!(
            ports.owner_of_port(lb_sport),
            Some(owner),
            "SNAT port from the owner's block"
        );
    }
    let to_backend =
        |seq: u32, ack: Option<u32>, syn: bool, fin: bool, payload: &'static [u8]| Tcp {
            src_mac: LB_MAC[1],
            dst_mac: backend_mac(b),
            src: lb_src,
            dst: backend_ip(b),
            ttl: 63,
            sport: lb_sport,
            dport: 8080,
            seq,
            ack,
            syn,
            fin,
            rst: false,
            payload,
        };
    assert_eq!(out, to_backend(100, None, true, false, b"").build());

    // SYN-ACK: backend -> (client | SNAT), back to the client from the VIP.
    let from_backend =
        |seq: u32, ack: Option<u32>, syn: bool, fin: bool, payload: &'static [u8]| Tcp {
            src_mac: backend_mac(b),
            dst_mac: LB_MAC[1],
            src: backend_ip(b),
            dst: lb_src,
            ttl: 64,
            sport: 8080,
            dport: lb_sport,
            seq,
            ack,
            syn,
            fin,
            rst: false,
            payload,
        };
    let to_client =
        |seq: u32, ack: Option<u32>, syn: bool, fin: bool, payload: &'static [u8]| Tcp {
            src_mac: LB_MAC[0],
            dst_mac: CLIENT_MAC,
            src: VIP,
            dst: CLIENT,
            ttl: 63,
            sport: vport,
            dport: cport,
            seq,
            ack,
            syn,
            fin,
            rst: false,
            payload,
        };
    let (v, out, at) = c.send(from_backend(900, Some(101), true, false, b"").build(), 1);
    assert_eq!((v, at), (Verdict::Forward { port: 0 }, owner));
    assert_eq!(out, to_client(900, Some(101), true, false, b"").build());

    // ACK + request, response, FIN both ways.
    let steps: [(bool, u32, u32, bool, &'static [u8]); 5] = [
        (
            true,
            101,
            901,
            false,
            b"GET / HTTP/1.1\r\nHost: sluice\r\n\r\n",
        ),
        (
            false,
            901,
            134,
            false,
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        ),
        (true, 134, 939, true, b""),
        (false, 939, 135, true, b""),
        (true, 135, 940, false, b""),
    ];
    for (from_client, seq, ack, fin, payload) in steps {
        if from_client {
            let (v, out, at) = c.send(client(seq, Some(ack), false, fin, payload).build(), 0);
            assert_eq!((v, at), (Verdict::Forward { port: 1 }, owner));
            assert_eq!(out, to_backend(seq, Some(ack), false, fin, payload).build());
        } else {
            let (v, out, at) = c.send(from_backend(seq, Some(ack), false, fin, payload).build(), 1);
            assert_eq!((v, at), (Verdict::Forward { port: 0 }, owner));
            assert_eq!(out, to_client(seq, Some(ack), false, fin, payload).build());
        }
    }
    assert_eq!(
        c.total_conns(),
        1,
        "one connection, in its owner's table only"
    );
    let w = &c.workers[owner as usize];
    let conn = w.connections().iter(c.now).next().unwrap();
    assert_eq!(conn.state, crate::conntrack::ConnState::TimeWait);
    assert_eq!(conn.packets, 7);
    let counters = w.counters();
    assert_eq!(counters.new_connections.get(), 1);
    let bc = counters.backend(u32::from(b)).unwrap();
    assert_eq!(bc.packets.get(), 7);
    assert_eq!(bc.packets_from_backend.get(), 3, "SYN-ACK, response, FIN");
    assert_eq!(bc.new_connections.get(), 1);
    let handed: u64 = c
        .workers
        .iter()
        .map(|w| w.counters().handoff_out.get())
        .sum();
    let received: u64 = c
        .workers
        .iter()
        .map(|w| w.counters().handoff_in.get())
        .sum();
    assert_eq!(handed, received);
    assert!(handed > 0, "RSS put some packets on the wrong worker");

    // Time-wait expires; the SNAT port goes back to the owner's pool.
    c.now = c.now.plus_millis(Timeouts::DEFAULT.tcp_time_wait + 1);
    for w in &mut c.workers {
        for _ in 0..(4096 / 256 + 1) {
            w.housekeeping(c.now);
        }
    }
    assert_eq!(c.total_conns(), 0);
    let w = &c.workers[owner as usize];
    assert_eq!(w.counters().closed_connections.get(), 1);
    assert_eq!(w.counters().active_connections.get(), 0);
    assert_eq!(
        w.counters()
            .backend(u32::from(b))
            .unwrap()
            .active_connections(),
        0
    );
}

#[test]
fn dnat_tcp_conversation_across_three_workers() {
    run_tcp_conversation(80, false);
}

#[test]
fn full_nat_tcp_conversation_across_three_workers() {
    run_tcp_conversation(81, true);
}

#[test]
fn udp_flows_through_dnat_and_full_nat() {
    for (vport, full_nat) in [(53u16, false), (54u16, true)] {
        let mut c = Cluster::new(3);
        for cport in [5000u16, 5001, 5002, 6000] {
            let q = udp4(
                CLIENT_MAC, LB_MAC[0], CLIENT, VIP, 64, cport, vport, b"query",
            );
            let (v, out, owner) = c.send(q, 0);
            assert_eq!(v, Verdict::Forward { port: 1 });
            let b = dst_backend(&out);
            let (lb_src, lb_sport) = if full_nat {
                (SNAT, src_port_of(&out))
            } else {
                (CLIENT, cport)
            };
            assert_eq!(
                out,
                udp4(
                    LB_MAC[1],
                    backend_mac(b),
                    lb_src,
                    backend_ip(b),
                    63,
                    lb_sport,
                    5353,
                    b"query"
                )
            );
            let r = udp4(
                backend_mac(b),
                LB_MAC[1],
                backend_ip(b),
                lb_src,
                64,
                5353,
                lb_sport,
                b"answer!",
            );
            let (v, out, at) = c.send(r, 1);
            assert_eq!((v, at), (Verdict::Forward { port: 0 }, owner));
            assert_eq!(
                out,
                udp4(LB_MAC[0], CLIENT_MAC, VIP, CLIENT, 63, vport, cport, b"answer!")
            );
        }
        assert_eq!(c.total_conns(), 4);
    }
}

#[test]
fn ipv6_full_nat_round_trip() {
    let mut c = Cluster::new(2);
    let syn = tcp6(
        CLIENT_MAC, LB_MAC[0], CLIENT6, VIP6, 64, 40_001, 80, true, None, b"",
    );
    let (v, out, owner) = c.send(syn, 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let b = dst_backend(&out);
    let sport = src_port_of(&out);
    assert_eq!(
        out,
        tcp6(
            LB_MAC[1],
            backend_mac(b),
            SNAT6,
            backend_ip6(b),
            63,
            sport,
            8080,
            true,
            None,
            b""
        )
    );
    let synack = tcp6(
        backend_mac(b),
        LB_MAC[1],
        backend_ip6(b),
        SNAT6,
        64,
        8080,
        sport,
        true,
        Some(2),
        b"",
    );
    let (v, out, at) = c.send(synack, 1);
    assert_eq!((v, at), (Verdict::Forward { port: 0 }, owner));
    assert_eq!(
        out,
        tcp6(
            LB_MAC[0],
            CLIENT_MAC,
            VIP6,
            CLIENT6,
            63,
            80,
            40_001,
            true,
            Some(2),
            b""
        )
    );
}

#[test]
fn service_without_backends_answers_tcp_with_reset_and_udp_with_port_unreachable() {
    let mut c = Cluster::new(1);
    let syn = Tcp {
        src_mac: CLIENT_MAC,
        dst_mac: LB_MAC[0],
        src: CLIENT,
        dst: VIP,
        ttl: 64,
        sport: 41_000,
        dport: 82,
        seq: 5000,
        ack: None,
        syn: true,
        fin: false,
        rst: false,
        payload: b"",
    };
    let (v, out, _) = c.send(syn.build(), 0);
    assert_eq!(v, Verdict::Reply { port: 0 });
    let expected = Tcp {
        src_mac: LB_MAC[0],
        dst_mac: CLIENT_MAC,
        src: VIP,
        dst: CLIENT,
        ttl: 64,
        sport: 82,
        dport: 41_000,
        seq: 0,
        ack: Some(5001),
        syn: false,
        fin: false,
        rst: true,
        payload: b"",
    };
    let mut expected = expected.build();
    // etherparse sets a window; a reset carries none. Patch it and its checksum the same way.
    let parsed = etherparse::PacketHeaders::from_ethernet_slice(&expected).unwrap();
    let (
        Some(etherparse::NetHeaders::Ipv4(ip, _)),
        Some(etherparse::TransportHeader::Tcp(mut tcp)),
    ) = (parsed.net, parsed.transport)
    else {
        panic!()
    };
    tcp.window_size = 0;
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).unwrap();
    let mut ip = ip;
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    expected.truncate(14);
    ip.write(&mut expected).unwrap();
    tcp.write(&mut expected).unwrap();
    assert_eq!(out, expected);

    // UDP: ICMP port unreachable quoting the datagram's IP header and 8 bytes.
    let q = udp4(
        CLIENT_MAC,
        LB_MAC[0],
        CLIENT,
        VIP,
        64,
        5000,
        55,
        b"hello, anyone?",
    );
    let (v, out, _) = c.send(q.clone(), 0);
    assert_eq!(v, Verdict::Reply { port: 0 });
    let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
    let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
        panic!()
    };
    assert_eq!(ip.header().source(), VIP);
    assert_eq!(ip.header().destination(), CLIENT);
    assert!(ip.header().to_header().calc_header_checksum() == ip.header().header_checksum());
    let etherparse::TransportSlice::Icmpv4(icmp) = p.transport.unwrap() else {
        panic!()
    };
    assert_eq!(icmp.type_u8(), 3);
    assert_eq!(icmp.code_u8(), 3);
    assert_eq!(
        icmp.checksum(),
        icmp.icmp_type().calc_checksum(icmp.payload())
    );
    assert_eq!(
        icmp.payload(),
        &q[14..14 + 28],
        "quotes the IP header and 8 bytes"
    );
    assert_eq!(c.workers[0].counters().rejects_sent.get(), 2);
    assert_eq!(c.total_conns(), 0);
}

#[test]
fn a_reject_backend_refuses_its_share_of_new_flows_with_resets() {
    let mut c = Cluster::new(1);
    let mut cfg = config(2);
    // Service 1 (:80/tcp DNAT): backend 1 ACTIVE, backend 2 REJECT, equal weights.
    cfg.services[0].backends.truncate(2);
    cfg.services[0].backends[1].state = BackendState::Reject;
    c.publish(cfg);
    let (mut forwarded, mut reset) = (0u32, 0u32);
    for cport in 30_000..30_200u16 {
        let (v, out, _) = c.send(syn(cport), 0);
        match v {
            Verdict::Forward { .. } => {
                assert_eq!(dst_backend(&out), 1, "only the ACTIVE backend is contacted");
                forwarded += 1;
            }
            Verdict::Reply { port: 0 } => {
                let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
                let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
                    panic!("not IPv4")
                };
                assert_eq!(ip.header().source(), VIP);
                assert_eq!(ip.header().destination(), CLIENT);
                let etherparse::TransportSlice::Tcp(t) = p.transport.unwrap() else {
                    panic!("not TCP")
                };
                assert!(t.rst(), "a reset");
                assert!(!t.syn());
                assert_eq!((t.source_port(), t.destination_port()), (80, cport));
                assert_eq!(t.acknowledgment_number(), 2, "acknowledges the SYN");
                reset += 1;
            }
            other => panic!("unexpected verdict {other:?}"),
        }
    }
    assert_eq!(forwarded + reset, 200);
    assert!(
        (70..=130).contains(&reset),
        "about half refused: {reset} resets, {forwarded} forwarded"
    );
    let w = &c.workers[0];
    assert_eq!(
        w.counters().service(1).unwrap().rejected.get(),
        u64::from(reset)
    );
    assert_eq!(w.counters().rejects_sent.get(), u64::from(reset));
    assert_eq!(
        c.total_conns(),
        forwarded as usize,
        "a refused flow leaves no connection"
    );
}

#[test]
fn ping_to_a_vip_is_answered() {
    let mut c = Cluster::new(1);
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(77, 1);
    let mut ping = Vec::new();
    b.write(&mut ping, b"abcdefgh").unwrap();
    let (v, out, _) = c.send(ping, 0);
    assert_eq!(v, Verdict::Reply { port: 0 });
    let b = PacketBuilder::ethernet2(LB_MAC[0], CLIENT_MAC)
        .ipv4(VIP, CLIENT, 64)
        .icmpv4_echo_reply(77, 1);
    let mut expected = Vec::new();
    b.write(&mut expected, b"abcdefgh").unwrap();
    assert_eq!(out, expected);
}

#[test]
fn arp_requests_for_a_vip_are_answered_with_the_port_mac() {
    let mut c = Cluster::new(1);
    let request = |target: [u8; 4]| {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&CLIENT);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target);
        f
    };
    let (v, out, _) = c.send(request(VIP), 1);
    assert_eq!(v, Verdict::Reply { port: 1 });
    let mut expected = CLIENT_MAC.to_vec();
    expected.extend_from_slice(&LB_MAC[1]);
    expected.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    expected.extend_from_slice(&LB_MAC[1]);
    expected.extend_from_slice(&VIP);
    expected.extend_from_slice(&CLIENT_MAC);
    expected.extend_from_slice(&CLIENT);
    assert_eq!(out, expected);
    assert_eq!(c.workers[0].counters().arp_replies.get(), 1);
    // Not ours: left alone.
    assert_eq!(
        c.send(request([198, 18, 0, 77]), 0).0,
        Verdict::Drop(DropReason::NotIp)
    );
}

#[test]
fn backend_changes_keep_established_flows_and_move_only_the_predicted_share() {
    let mut c = Cluster::new(2);
    let data = |cport: u16| {
        Tcp {
            src_mac: CLIENT_MAC,
            dst_mac: LB_MAC[0],
            src: CLIENT,
            dst: VIP,
            ttl: 64,
            sport: cport,
            dport: 80,
            seq: 2,
            ack: Some(1),
            syn: false,
            fin: false,
            rst: false,
            payload: b"x",
        }
        .build()
    };
    let established: Vec<(u16, u8)> = (10_000..11_000u16)
        .map(|p| (p, dst_backend(&c.send(syn(p), 0).1)))
        .collect();
    let before: Vec<u8> = (20_000..24_000u16)
        .map(|p| dst_backend(&c.send(syn(p), 0).1))
        .collect();
    let old_table = c
        .snap
        .service(&ServiceKey {
            vip: Addr::from_v4(VIP),
            port: 80,
            proto: Proto::Tcp,
        })
        .unwrap()
        .selector
        .maglev_table()
        .unwrap()
        .clone();

    // Drain backend 3 and double backend 1's weight.
    let mut cfg = config(2);
    cfg.services[0].backends[2].state = BackendState::Draining;
    cfg.services[0].backends[0].weight = 2;
    c.publish(cfg.clone());
    let new_table = c
        .snap
        .service(&ServiceKey {
            vip: Addr::from_v4(VIP),
            port: 80,
            proto: Proto::Tcp,
        })
        .unwrap()
        .selector
        .maglev_table()
        .unwrap()
        .clone();
    let predicted = crate::lb::maglev::disruption(&old_table, &new_table);

    for (port, backend) in &established {
        assert_eq!(
            dst_backend(&c.send(data(*port), 0).1),
            *backend,
            "established flow moved"
        );
    }
    // The probe flows are established in `c` now; ask a fresh cluster running the new
    // snapshot where the same flows would go as new flows.
    let mut fresh = Cluster::new(2);
    fresh.publish(cfg);
    let after: Vec<u8> = (20_000..24_000u16)
        .map(|p| dst_backend(&fresh.send(syn(p), 0).1))
        .collect();
    let moved =
        before.iter().zip(&after).filter(|(a, b)| a != b).count() as f64 / before.len() as f64;
    assert!(
        after.iter().all(|&b| b != 3),
        "a draining backend gets no new flows"
    );
    assert!(
        moved <= predicted + 0.03,
        "moved {moved:.3} of new flows, Maglev predicts {predicted:.3}"
    );
}

#[test]
fn a_new_snapshot_with_another_neighbour_mac_is_used_at_once() {
    let mut c = Cluster::new(1);
    let (_, out, _) = c.send(syn(1000), 0);
    let b = dst_backend(&out);
    assert_eq!(&out[..6], &backend_mac(b));
    // The backend moved to another MAC address (and port): the cached egress must not be used.
    let mut cfg = config(2);
    for n in &mut cfg.neighbours {
        if n.addr == Addr::from_v4(backend_ip(b)) {
            n.mac = [0x02, 0, 0, 0, 0x77, 0x77];
            n.port = 0;
        }
    }
    c.publish(cfg);
    let (v, out, _) = c.send(syn(1000), 0);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(&out[..6], &[0x02, 0, 0, 0, 0x77, 0x77]);
    assert_eq!(&out[6..12], &LB_MAC[0]);
}

#[test]
fn a_full_table_drops_new_flows_and_keeps_existing_ones() {
    let mut c = Cluster::with(1, |cfg| cfg.conn_capacity = 8);
    for p in 0..8 {
        assert_eq!(c.send(syn(1000 + p), 0).0, Verdict::Forward { port: 1 });
    }
    assert_eq!(c.send(syn(2000), 0).0, Verdict::Drop(DropReason::TableFull));
    assert_eq!(c.workers[0].counters().drops(DropReason::TableFull), 1);
    assert_eq!(c.send(syn(1000), 0).0, Verdict::Forward { port: 1 });
}

#[test]
fn a_syn_flood_filling_the_table_gives_way_to_new_clients_after_the_pressure_timeout() {
    let mut c = Cluster::with(1, |cfg| cfg.conn_capacity = 16);
    // One established connection (an ACK is picked up mid-stream as established).
    let mut ack = syn_fields(999);
    ack.syn = false;
    ack.ack = Some(1);
    assert_eq!(c.send(ack.build(), 0).0, Verdict::Forward { port: 1 });
    // A flood of SYNs that never complete takes the rest of the table.
    for p in 0..15 {
        assert_eq!(c.send(syn(1000 + p), 0).0, Verdict::Forward { port: 1 });
    }
    assert_eq!(c.send(syn(2000), 0).0, Verdict::Drop(DropReason::TableFull));
    // Without pressure they would hold their entries for the SYN timeout (120 s); with the
    // table full they go after `embryonic_under_pressure`.
    let short = Timeouts::DEFAULT.embryonic_under_pressure;
    c.now = c.now.plus_millis(short - 1);
    assert_eq!(c.workers[0].housekeeping(c.now), 0);
    assert_eq!(c.send(syn(2001), 0).0, Verdict::Drop(DropReason::TableFull));
    c.now = c.now.plus_millis(1);
    assert_eq!(c.workers[0].housekeeping(c.now), 15);
    assert_eq!(c.send(syn(2002), 0).0, Verdict::Forward { port: 1 });
    let w = &c.workers[0];
    assert_eq!(w.counters().expired_under_pressure.get(), 15);
    assert_eq!(w.counters().closed_connections.get(), 15);
    assert_eq!(w.connections().len(), 2);
    assert_eq!(c.send(ack.build(), 0).0, Verdict::Forward { port: 1 });
}

#[test]
fn the_expiry_sweep_speeds_up_as_the_table_fills() {
    let mut c = Cluster::with(1, |cfg| {
        cfg.conn_capacity = 64;
        cfg.expire_budget = 2;
    });
    // 60 of 64 entries taken (94%): the sweep examines 16 times its budget.
    for p in 0..60 {
        assert_eq!(c.send(syn(1000 + p), 0).0, Verdict::Forward { port: 1 });
    }
    c.now = c.now.plus_millis(Timeouts::DEFAULT.tcp_syn + 1);
    let w = &mut c.workers[0];
    assert_eq!(w.housekeeping(c.now), 32);
    assert_eq!(w.connections().len(), 28);
    // 28 of 64 (44%): back to the base budget.
    assert_eq!(w.housekeeping(c.now), 2);
    assert_eq!(w.connections().len(), 26);
    assert_eq!(w.counters().closed_connections.get(), 34);
}

#[test]
fn a_sweep_step_removes_a_bounded_number_of_connections() {
    let mut c = Cluster::new(1);
    for p in 0..100 {
        assert_eq!(c.send(syn(1000 + p), 0).0, Verdict::Forward { port: 1 });
    }
    c.now = c.now.plus_millis(Timeouts::DEFAULT.tcp_syn + 1);
    let w = &mut c.workers[0];
    // All 100 have expired; a step stops after MAX_REMOVALS_PER_STEP, the next goes on.
    let first = w.sweep_step(c.now, 1024);
    assert_eq!(first.removed, MAX_REMOVALS_PER_STEP);
    assert!(first.examined < 1024, "{first:?}");
    let second = w.sweep_step(c.now, 1024);
    assert_eq!(second.removed, 100 - MAX_REMOVALS_PER_STEP);
    assert!(w.connections().is_empty());
    assert_eq!(w.counters().closed_connections.get(), 100);
}

/// One worker whose full-NAT pool has 16 ports (20000-20015); `expire_budget` as given.
fn sixteen_snat_ports(expire_budget: usize) -> Cluster {
    Cluster::with(1, |cfg| {
        cfg.expire_budget = expire_budget;
        cfg.snat_first_port = 20_000;
        cfg.snat_last_port = 20_015;
    })
}

/// A SYN from client port `cport` to the full-NAT service, forwarded or refused as `expected`.
fn send_full_nat_syn(c: &mut Cluster, cport: u16, expected: Verdict) {
    let mut t = syn_fields(cport);
    t.dport = 81;
    assert_eq!(c.send(t.build(), 0).0, expected, "SYN from port {cport}");
}

const FORWARDED: Verdict = Verdict::Forward { port: 1 };

#[test]
fn the_expiry_sweep_speeds_up_as_the_snat_ports_run_out() {
    let mut c = sixteen_snat_ports(2);
    for p in 0..15 {
        send_full_nat_syn(&mut c, 1000 + p, FORWARDED);
    }
    // The table is nearly empty (15 of 4,096) but 15 of the 16 ports are taken: 16 times the
    // budget, so one step expires every connection and gives every port back.
    c.now = c.now.plus_millis(Timeouts::DEFAULT.tcp_syn + 1);
    assert_eq!(c.workers[0].housekeeping(c.now), 15);
    for p in 0..16 {
        send_full_nat_syn(&mut c, 2000 + p, FORWARDED);
    }
    send_full_nat_syn(&mut c, 3000, Verdict::Drop(DropReason::SnatExhausted));
}

#[test]
fn unanswered_full_nat_syns_give_their_ports_back_after_the_pressure_timeout() {
    let mut c = sixteen_snat_ports(WorkerConfig::default().expire_budget);
    // The table is nearly empty, but every one of the 16 ports is held by a SYN that no
    // backend answered.
    for p in 0..16 {
        send_full_nat_syn(&mut c, 1000 + p, FORWARDED);
    }
    send_full_nat_syn(&mut c, 2000, Verdict::Drop(DropReason::SnatExhausted));
    let short = Timeouts::DEFAULT.embryonic_under_pressure;
    c.now = c.now.plus_millis(short - 1);
    assert_eq!(c.workers[0].housekeeping(c.now), 0);
    c.now = c.now.plus_millis(1);
    assert_eq!(c.workers[0].housekeeping(c.now), 16);
    assert_eq!(c.workers[0].counters().expired_under_pressure.get(), 16);
    send_full_nat_syn(&mut c, 2001, FORWARDED);
}

#[test]
fn malformed_and_foreign_packets_are_dropped_and_counted() {
    let mut c = Cluster::new(1);
    let cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![0u8; 5], DropReason::Malformed(ParseError::Truncated)),
        (
            {
                let mut f = vec![0u8; 60];
                f[12] = 0x08;
                f[13] = 0x06;
                f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                f
            },
            DropReason::NotIp,
        ),
        (
            udp4(
                CLIENT_MAC,
                LB_MAC[0],
                CLIENT,
                [198, 18, 7, 7],
                64,
                1,
                2,
                b"x",
            ),
            DropReason::NoConnection,
        ),
        (
            Tcp {
                src_mac: CLIENT_MAC,
                dst_mac: LB_MAC[0],
                src: CLIENT,
                dst: VIP,
                ttl: 64,
                sport: 9,
                dport: 80,
                seq: 1,
                ack: None,
                syn: false,
                fin: false,
                rst: true,
                payload: b"",
            }
            .build(),
            DropReason::TcpNotSyn,
        ),
        (
            Tcp {
                src_mac: CLIENT_MAC,
                dst_mac: LB_MAC[0],
                src: CLIENT,
                dst: VIP,
                ttl: 1,
                sport: 9,
                dport: 80,
                seq: 1,
                ack: None,
                syn: true,
                fin: false,
                rst: false,
                payload: b"",
            }
            .build(),
            DropReason::TtlExceeded,
        ),
    ];
    for (frame, reason) in cases {
        assert_eq!(c.send(frame, 0).0, Verdict::Drop(reason));
        assert_eq!(c.workers[0].counters().drops(reason), 1, "{reason:?}");
    }
}

#[test]
fn drop_reasons_have_distinct_indexes_and_names() {
    let all: Vec<DropReason> = DropReason::all().collect();
    assert_eq!(all.len(), DropReason::COUNT);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    let mut names: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), DropReason::COUNT);
}

/// A DNAT client reusing its port towards the same backend through another service port
/// gives the same reply key. While the first connection is open the new flow is refused (the
/// backend's replies could not be told apart); once it is over (time-wait) the new SYN takes
/// the key, and each connection's replies come back from its own VIP port.
#[test]
fn a_client_port_reused_towards_the_same_backend_waits_until_the_first_connection_is_over() {
    let mut c = Cluster::new(1);
    let cport = 41_000;
    let from_client = |dport: u16, seq: u32, ack: Option<u32>, syn: bool, fin: bool| Tcp {
        src_mac: CLIENT_MAC,
        dst_mac: LB_MAC[0],
        src: CLIENT,
        dst: VIP,
        ttl: 64,
        sport: cport,
        dport,
        seq,
        ack,
        syn,
        fin,
        rst: false,
        payload: b"",
    };
    let (v, out, _) = c.send(from_client(80, 100, None, true, false).build(), 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let b = dst_backend(&out);
    let from_backend = |seq: u32, ack: Option<u32>, syn: bool, fin: bool| Tcp {
        src_mac: backend_mac(b),
        dst_mac: LB_MAC[1],
        src: backend_ip(b),
        dst: CLIENT,
        ttl: 64,
        sport: 8080,
        dport: cport,
        seq,
        ack,
        syn,
        fin,
        rst: false,
        payload: b"",
    };

    // A second DNAT service, port 83, whose only backend is the one the first flow got.
    let mut cfg = config(2);
    let only_b: Vec<Backend> = backends(3, 8080, false)
        .into_iter()
        .filter(|x| x.addr == Addr::from_v4(backend_ip(b)))
        .collect();
    cfg.services.push(service(
        8,
        Addr::from_v4(VIP),
        83,
        Proto::Tcp,
        NatMode::Dnat,
        None,
        only_b,
    ));
    c.publish(cfg);

    let second_syn = from_client(83, 5000, None, true, false).build();
    assert_eq!(
        c.send(second_syn.clone(), 0).0,
        Verdict::Drop(DropReason::ReplyKeyInUse)
    );
    assert_eq!(c.workers[0].counters().drops(DropReason::ReplyKeyInUse), 1);

    // The first connection is unharmed: its replies still come from port 80. Then it ends.
    let (v, out, _) = c.send(from_backend(900, Some(101), true, false).build(), 1);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(src_port_of(&out), 80);
    for (client_side, seq, ack, fin) in [
        (true, 101, 901, false),
        (true, 101, 901, true),
        (false, 901, 102, true),
        (true, 102, 902, false),
    ] {
        let frame = if client_side {
            from_client(80, seq, Some(ack), false, fin).build()
        } else {
            from_backend(seq, Some(ack), false, fin).build()
        };
        let port = if client_side { 0 } else { 1 };
        assert_eq!(c.send(frame, port).0, Verdict::Forward { port: 1 - port });
    }
    let conn = c.workers[0].connections().iter(c.now).next().unwrap();
    assert_eq!(conn.state, crate::conntrack::ConnState::TimeWait);

    // Now the second SYN takes the key over.
    let (v, out, _) = c.send(second_syn, 0);
    assert_eq!(v, Verdict::Forward { port: 1 });
    let expected = Tcp {
        src_mac: LB_MAC[1],
        dst_mac: backend_mac(b),
        src: CLIENT,
        dst: backend_ip(b),
        ttl: 63,
        sport: cport,
        dport: 8080,
        seq: 5000,
        ack: None,
        syn: true,
        fin: false,
        rst: false,
        payload: b"",
    };
    assert_eq!(out, expected.build());
    let (v, out, _) = c.send(from_backend(7000, Some(5001), true, false).build(), 1);
    assert_eq!(v, Verdict::Forward { port: 0 });
    assert_eq!(
        src_port_of(&out),
        83,
        "the reply comes from the second service's port"
    );

    let counters = c.workers[0].counters();
    assert_eq!(c.total_conns(), 1);
    assert_eq!(counters.new_connections.get(), 2);
    assert_eq!(counters.closed_connections.get(), 1);
    assert_eq!(counters.active_connections.get(), 1);
    assert_eq!(
        counters.drops(DropReason::ReplyKeyInUse),
        1,
        "only the SYN sent while the first connection was open"
    );
}

/// A SYN is planned (backend chosen, SNAT port taken) before the table is searched for its
/// connection; a retransmitted SYN must still go to its connection, leave the same bytes, and
/// undo the plan: the next flow gets what it would have got without the retransmissions.
#[test]
fn a_retransmitted_syn_follows_its_connection_and_takes_nothing_new() {
    let cases = [
        (80u16, false, Selection::Maglev),
        (81, true, Selection::Maglev),
        (80, false, Selection::RoundRobin),
        (81, true, Selection::RoundRobin),
    ];
    for (vport, full_nat, selection) in cases {
        let syn_from = |cport: u16| {
            Tcp {
                dport: vport,
                ..syn_fields(cport)
            }
            .build()
        };
        let (mut c, mut quiet) = (Cluster::new(1), Cluster::new(1));
        let mut cfg = config(2);
        for service in &mut cfg.services {
            service.selection = selection;
        }
        c.publish(cfg.clone());
        quiet.publish(cfg);
        let available = |c: &Cluster| c.workers[0].snat[0].available(0, Proto::Tcp);
        let before = available(&c);
        let (first, first_out, _) = c.send(syn_from(40_000), 0);
        assert_eq!(first, Verdict::Forward { port: 1 });
        assert_eq!(quiet.send(syn_from(40_000), 0).1, first_out);
        // Four: a round-robin cursor moved by each would be one backend (of three) off.
        for _ in 0..4 {
            let (again, again_out, _) = c.send(syn_from(40_000), 0);
            assert_eq!(again, first);
            assert_eq!(again_out, first_out, "port {vport} {selection:?}");
        }
        let counters = c.workers[0].counters();
        assert_eq!(counters.new_connections.get(), 1);
        assert_eq!(counters.active_connections.get(), 1);
        assert_eq!(c.total_conns(), 1);
        assert_eq!(
            available(&c),
            before - usize::from(full_nat),
            "port {vport} {selection:?}"
        );
        // The next flow: same backend and (full-NAT) same source port as without them.
        assert_eq!(
            c.send(syn_from(40_001), 0).1,
            quiet.send(syn_from(40_001), 0).1,
            "port {vport} {selection:?}"
        );
    }
}
