//! Differential test: the fast path must give the general path's result for every packet —
//! the same verdict, the same output bytes and the same counters — over random conversations
//! (new flows, replies, retransmissions, FIN/RST) mixed with mutated headers (options,
//! fragments, VLAN tags, bad lengths, other protocols) that must fall through to the general
//! path.

use super::super::*;
use crate::lb::Selection;
use crate::snapshot::{
    Backend, BackendState, LocalAddr, Neighbour, ServiceConfig, ServiceKey, SnapshotConfig,
    SnatPool,
};
use crate::wire::ipv4::Ipv4Packet;
use etherparse::PacketBuilder;
use proptest::prelude::*;

const VIP: [u8; 4] = [198, 18, 100, 10];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 0x01];
const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0];
const PORT1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 1];

/// The IPv6 addresses: 2001:2::/48 is the IPv6 benchmarking range (RFC 5180).
fn v6(net: u16, host: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..6].copy_from_slice(&[0x20, 0x01, 0, 0x02, 0, 0]);
    a[6..8].copy_from_slice(&net.to_be_bytes());
    a[14..].copy_from_slice(&host.to_be_bytes());
    a
}

const VIP6_NET: u16 = 0x64;
const CLIENT6_NET: u16 = 0x12;
const BACKEND6_NET: u16 = 0x13;
/// The IPv6 subnet behind VLAN 30.
const VLAN6_NET: u16 = 0x33;

/// VLAN 10 on port 0 (logical port 2), VLAN 30 on port 1 (logical port 3).
fn vlan_ports() -> Vec<vlan::VlanPort> {
    vec![
        vlan::VlanPort { port: 0, vlan: 10 },
        vlan::VlanPort { port: 1, vlan: 30 },
    ]
}

/// The same four services on an IPv4 VIP (ids 1-4, backends 1-3) and on an IPv6 VIP (ids 5-8,
/// backends 4-6), each family with its own SNAT pool. The third backend of each family is
/// behind VLAN 30 (logical port 3), so frames to it are tagged.
fn snapshot() -> Snapshot {
    let backend = |id: u32, addr: Addr| Backend {
        id,
        addr,
        port: 8080,
        weight: 1,
        state: BackendState::Active,
    };
    let backends: Vec<Backend> = (1..=3u8)
        .map(|i| backend(u32::from(i), Addr::from_v4([198, 19, i / 3 * 3, i])))
        .collect();
    let backends6: Vec<Backend> = (1..=3u16)
        .map(|i| {
            let net = if i == 3 { VLAN6_NET } else { BACKEND6_NET };
            backend(u32::from(i) + 3, Addr::from_v6(v6(net, i)))
        })
        .collect();
    let mut neighbours: Vec<Neighbour> = backends
        .iter()
        .chain(&backends6)
        .map(|b| Neighbour {
            addr: b.addr,
            mac: [0x02, 0, 0, 0, 0xbe, b.id as u8],
            port: if b.id % 3 == 0 { 3 } else { 1 },
        })
        .collect();
    neighbours.extend((1..=4u8).map(|i| Neighbour {
        addr: Addr::from_v4([198, 18, 0, i]),
        mac: CLIENT_MAC,
        port: 0,
    }));
    neighbours.extend((1..=4u16).map(|i| Neighbour {
        addr: Addr::from_v6(v6(CLIENT6_NET, i)),
        mac: CLIENT_MAC,
        port: 0,
    }));
    let service = |id: u32, port: u16, proto: Proto, mode: NatMode| {
        let ipv6 = id > 4;
        ServiceConfig {
            id,
            name: format!("svc{id}"),
            key: ServiceKey {
                vip: if ipv6 {
                    Addr::from_v6(v6(VIP6_NET, 0x10))
                } else {
                    Addr::from_v4(VIP)
                },
                port,
                proto,
            },
            mode,
            selection: Selection::Maglev,
            persistence: false,
            backends: if ipv6 {
                backends6.clone()
            } else {
                backends.clone()
            },
            snat_pool: (mode == NatMode::FullNat).then_some(usize::from(ipv6)),
            table_size: None,
        }
    };
    let local = |addr: Addr, port: u16, prefix_len: u8| LocalAddr {
        addr,
        port,
        prefix_len,
    };
    Snapshot::compile(
        SnapshotConfig {
            generation: 1,
            selection_seed: 3,
            services: vec![
                service(1, 80, Proto::Tcp, NatMode::Dnat),
                service(2, 53, Proto::Udp, NatMode::Dnat),
                service(3, 81, Proto::Tcp, NatMode::FullNat),
                service(4, 54, Proto::Udp, NatMode::FullNat),
                service(5, 80, Proto::Tcp, NatMode::Dnat),
                service(6, 53, Proto::Udp, NatMode::Dnat),
                service(7, 81, Proto::Tcp, NatMode::FullNat),
                service(8, 54, Proto::Udp, NatMode::FullNat),
            ],
            snat_pools: vec![
                SnatPool {
                    addrs: vec![Addr::from_v4([198, 19, 255, 1])],
                },
                SnatPool {
                    addrs: vec![Addr::from_v6(v6(0xff, 1))],
                },
            ],
            routes: vec![],
            neighbours,
            // Connected subnets: clients on port 0, backends and the SNAT addresses on port 1.
            local_addrs: vec![
                local(Addr::from_v4([198, 18, 0, 254]), 0, 24),
                local(Addr::from_v4([198, 19, 0, 254]), 1, 16),
                local(Addr::from_v6(v6(CLIENT6_NET, 0xfe)), 0, 64),
                local(Addr::from_v6(v6(BACKEND6_NET, 0xfe)), 1, 64),
                local(Addr::from_v6(v6(0xff, 0xfe)), 1, 64),
                local(Addr::from_v4([198, 19, 3, 254]), 3, 24),
                local(Addr::from_v6(v6(VLAN6_NET, 0xfe)), 3, 64),
            ],
        },
        None,
    )
    .expect("snapshot compiles")
}

fn worker() -> Worker {
    let mut worker = Worker::new(WorkerConfig {
        conn_capacity: 1024,
        port_macs: vec![LB_MAC, PORT1_MAC],
        vlan_ports: vlan_ports(),
        ..WorkerConfig::default()
    })
    .expect("worker");
    worker.on_snapshot(&snapshot());
    worker
}

/// One packet of the generated traffic.
#[derive(Clone, Debug)]
enum Op {
    /// Client `client` (1..=4) from port `sport` to service port `port` with TCP flags (TCP
    /// services) and `payload` bytes.
    Client {
        client: u8,
        sport: u16,
        port: u16,
        flags: u8,
        ttl: u8,
        payload: usize,
        /// To the IPv6 VIP (else the IPv4 one).
        ipv6: bool,
        /// The frame's VLAN tag (TCI: priority bits and VLAN id).
        tag: Option<u16>,
    },
    /// The backend answers the `n`th packet forwarded so far, with TCP flags.
    Reply { n: usize, flags: u8 },
    /// XOR `value` into byte `at` of the packet the inner op makes; with `fix_ip_checksum`,
    /// an IPv4 header's checksum is then made right again (else a mutated header is simply
    /// dropped as `bad_ip_checksum` on both paths).
    Mutate {
        at: usize,
        value: u8,
        fix_ip_checksum: bool,
        inner: Box<Op>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let client = (
        1u8..=4,
        40000u16..40006,
        prop::sample::select(vec![80u16, 53, 81, 54, 82]),
        prop::sample::select(vec![0x02u8, 0x10, 0x18, 0x11, 0x04, 0x12, 0x00]),
        // TTL 0 and 1 are dropped, 2 leaves with 1; the rest exercise the checksum update.
        prop_oneof![Just(0u8), Just(1), Just(2), Just(255), any::<u8>()],
        0usize..64,
        any::<bool>(),
        // VLAN 10 (a sub-interface), 20 (none), 0 (priority only), with priority bits.
        prop_oneof![
            3 => Just(None),
            1 => Just(Some(0xa00a)),
            1 => Just(Some(0x0014)),
            1 => Just(Some(0x6000)),
        ],
    )
        .prop_map(
            |(client, sport, port, flags, ttl, payload, ipv6, tag)| Op::Client {
                client,
                sport,
                port,
                flags,
                ttl,
                payload,
                ipv6,
                tag,
            },
        );
    let reply = (
        0usize..64,
        prop::sample::select(vec![0x12u8, 0x10, 0x18, 0x11, 0x04]),
    )
        .prop_map(|(n, flags)| Op::Reply { n, flags });
    let plain = prop_oneof![3 => client, 2 => reply];
    prop_oneof![
        8 => plain.clone(),
        1 => (0usize..80, 1u8..=255, any::<bool>(), plain).prop_map(
            |(at, value, fix_ip_checksum, inner)| Op::Mutate {
                at, value, fix_ip_checksum, inner: Box::new(inner),
            }
        ),
    ]
}

fn client_frame(client: u8, sport: u16, port: u16, flags: u8, ttl: u8, payload: usize) -> Vec<u8> {
    let ip = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC).ipv4([198, 18, 0, client], VIP, ttl);
    frame_over(ip, sport, port, flags, payload)
}

/// [`client_frame`] to the IPv6 VIP (`ttl` is the hop limit).
fn client_frame_v6(
    client: u8,
    sport: u16,
    port: u16,
    flags: u8,
    ttl: u8,
    payload: usize,
) -> Vec<u8> {
    let ip = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC).ipv6(
        v6(CLIENT6_NET, u16::from(client)),
        v6(VIP6_NET, 0x10),
        ttl,
    );
    frame_over(ip, sport, port, flags, payload)
}

fn frame_over(
    ip: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
    sport: u16,
    port: u16,
    flags: u8,
    payload: usize,
) -> Vec<u8> {
    let data = vec![0x5a; payload];
    let mut frame = Vec::new();
    if port == 53 || port == 54 {
        ip.udp(sport, port).write(&mut frame, &data).expect("udp");
    } else {
        let mut tcp = ip.tcp(sport, port, 1000, 8192);
        if flags & 0x02 != 0 {
            tcp = tcp.syn();
        }
        if flags & 0x10 != 0 {
            tcp = tcp.ack(1);
        }
        if flags & 0x01 != 0 {
            tcp = tcp.fin();
        }
        if flags & 0x04 != 0 {
            tcp = tcp.rst();
        }
        if flags & 0x08 != 0 {
            tcp = tcp.psh();
        }
        tcp.write(&mut frame, &data).expect("tcp");
    }
    frame
}

/// What the backend sends back for a forwarded (untagged, option-less IPv4) frame: addresses,
/// ports and MACs swapped, the TCP flags replaced. Checksums are left as they are: neither path
/// verifies them, and the comparison is between the paths.
fn reply_frame(forwarded: &[u8], flags: u8) -> Vec<u8> {
    let mut f = forwarded.to_vec();
    let (dst, src) = (f[0..6].to_vec(), f[6..12].to_vec());
    f[0..6].copy_from_slice(&src);
    f[6..12].copy_from_slice(&dst);
    // Address length, where the addresses start, where the ports start, the TTL and protocol
    // bytes (4 bytes later behind a tag).
    let t = tag_len(&f);
    let (len, addrs, l4, ttl, proto) = if is_plain_v6(&f) {
        (16, 22 + t, 54 + t, 21 + t, 20 + t)
    } else {
        (4, 26 + t, 34 + t, 22 + t, 23 + t)
    };
    let (s, d) = (
        f[addrs..addrs + len].to_vec(),
        f[addrs + len..addrs + 2 * len].to_vec(),
    );
    f[addrs..addrs + len].copy_from_slice(&d);
    f[addrs + len..addrs + 2 * len].copy_from_slice(&s);
    let (sp, dp) = (f[l4..l4 + 2].to_vec(), f[l4 + 2..l4 + 4].to_vec());
    f[l4..l4 + 2].copy_from_slice(&dp);
    f[l4 + 2..l4 + 4].copy_from_slice(&sp);
    f[ttl] = 64;
    if f[proto] == 6 && f.len() > l4 + 13 {
        f[l4 + 13] = flags;
    }
    if !is_plain_v6(&f) {
        // A new TTL: the header checksum the backend's stack would have computed.
        fill_ipv4_checksum(&mut f);
    }
    f
}

/// Makes the IPv4 header checksum of `f` (untagged or with one tag, any header length) right,
/// if `f` is IPv4 and holds its whole header; anything else is left as it is.
fn fill_ipv4_checksum(f: &mut [u8]) {
    let t = tag_len(f);
    if f.get(12 + t..14 + t) != Some(&[8, 0][..]) {
        return;
    }
    let l3 = 14 + t;
    let header_len = usize::from(f.get(l3).map_or(0, |b| b & 0x0f)) * 4;
    if let Some(header) = f.get_mut(l3..l3 + header_len).filter(|h| h.len() >= 20) {
        Ipv4Packet::new_unchecked(header).fill_checksum();
    }
}

/// `frame` with an 802.1Q tag of `tci` inserted after the MACs.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// 4 for a frame with one VLAN tag, else 0.
fn tag_len(f: &[u8]) -> usize {
    if f.len() > 18 && f[12..14] == [0x81, 0x00] {
        4
    } else {
        0
    }
}

/// IPv6 with TCP or UDP (and its header) right after the fixed header, untagged or with one
/// tag.
fn is_plain_v6(f: &[u8]) -> bool {
    let t = tag_len(f);
    f.len() >= 62 + t && f[12 + t..14 + t] == [0x86, 0xdd] && matches!(f[20 + t], 6 | 17)
}

/// Whether a frame the worker forwarded from a client can be answered by [`reply_frame`].
fn answerable(f: &[u8]) -> bool {
    let t = tag_len(f);
    (f.len() >= 54 + t && f[12 + t..14 + t] == [8, 0] && f[14 + t] == 0x45) || is_plain_v6(f)
}

fn frame_for(op: &Op, forwarded: &[Vec<u8>]) -> Option<(Vec<u8>, u16)> {
    match op {
        Op::Client {
            client,
            sport,
            port,
            flags,
            ttl,
            payload,
            ipv6,
            tag,
        } => {
            let frame = if *ipv6 {
                client_frame_v6(*client, *sport, *port, *flags, *ttl, *payload)
            } else {
                client_frame(*client, *sport, *port, *flags, *ttl, *payload)
            };
            Some((tag.map_or(frame.clone(), |tci| tagged(&frame, tci)), 0))
        }
        Op::Reply { n, flags } => {
            let f = forwarded.get(n % forwarded.len().max(1))?;
            Some((reply_frame(f, *flags), 1))
        }
        Op::Mutate {
            at,
            value,
            fix_ip_checksum,
            inner,
        } => {
            let (mut frame, port) = frame_for(inner, forwarded)?;
            if let Some(b) = frame.get_mut(*at) {
                *b ^= value;
            }
            if *fix_ip_checksum {
                fill_ipv4_checksum(&mut frame);
            }
            Some((frame, port))
        }
    }
}

fn counters_of(w: &Worker) -> Vec<u64> {
    let c = w.counters();
    let mut v = vec![
        c.handoff_in.get(),
        c.handoff_out.get(),
        c.new_connections.get(),
        c.active_connections.get(),
        c.rejects_sent.get(),
        c.total_drops(),
    ];
    for id in 1..=8 {
        let s = c.service(id).expect("slot");
        v.extend([
            s.packets.get(),
            s.bytes.get(),
            s.new_connections.get(),
            s.rejected.get(),
        ]);
    }
    for id in 1..=6 {
        let b = c.backend(id).expect("slot");
        v.extend([
            b.packets.get(),
            b.bytes.get(),
            b.packets_from_backend.get(),
            b.bytes_from_backend.get(),
            b.new_connections.get(),
        ]);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Packet by packet through `process` (fast path first) vs the general path alone.
    #[test]
    fn process_matches_the_general_path(ops in prop::collection::vec(op(), 1..150)) {
        let snap = snapshot();
        let (mut fast, mut general) = (worker(), worker());
        let mut forwarded: Vec<Vec<u8>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let Some((frame, ingress)) = frame_for(op, &forwarded) else { continue };
            let now = Tick(1 + i as u32);
            let (mut a, mut b) = (frame.clone(), frame);
            let va = fast.process(&snap, &mut a, ingress, now, false);
            let vb = general.classify_and_translate(&snap, &mut b, ingress, now, false, None);
            if let Verdict::Drop(reason) = vb {
                general.counters.count_drop(reason);
            }
            prop_assert_eq!(va, vb, "op {} {:?}", i, op);
            prop_assert_eq!(&a, &b, "op {} {:?}", i, op);
            if matches!(va, Verdict::Forward { .. }) && ingress == 0 && answerable(&a) {
                forwarded.push(a);
            }
        }
        prop_assert_eq!(counters_of(&fast), counters_of(&general));
    }

    /// The same through `process_burst` in bursts of random size.
    #[test]
    fn process_burst_matches_the_general_path(
        ops in prop::collection::vec(op(), 1..150),
        burst in 1usize..=BURST,
    ) {
        let snap = snapshot();
        let (mut fast, mut general) = (worker(), worker());
        let mut forwarded: Vec<Vec<u8>> = Vec::new();
        for (n, chunk) in ops.chunks(burst).enumerate() {
            let now = Tick(1 + n as u32);
            // One burst comes from one port: split by ingress, keeping order within each.
            for ingress in [0u16, 1] {
                let frames: Vec<Vec<u8>> = chunk
                    .iter()
                    .filter_map(|op| frame_for(op, &forwarded))
                    .filter(|(_, port)| *port == ingress)
                    .map(|(frame, _)| frame)
                    .collect();
                let mut a = frames.clone();
                let mut verdicts = [Verdict::Drop(DropReason::NotIp); BURST];
                fast.process_burst(&snap, &mut a, ingress, now, &mut verdicts);
                for (i, mut b) in frames.into_iter().enumerate() {
                    let vb = general.classify_and_translate(&snap, &mut b, ingress, now, false, None);
                    if let Verdict::Drop(reason) = vb {
                        general.counters.count_drop(reason);
                    }
                    prop_assert_eq!(verdicts[i], vb);
                    prop_assert_eq!(&a[i], &b);
                }
                for (i, out) in a.into_iter().enumerate() {
                    if matches!(verdicts[i], Verdict::Forward { .. }) && ingress == 0
                        && answerable(&out)
                    {
                        forwarded.push(out);
                    }
                }
            }
        }
        prop_assert_eq!(counters_of(&fast), counters_of(&general));
    }

    /// With two workers, the burst path passes other workers' packets on before touching the
    /// table, and takes handed-over bursts from several ports: it must do exactly what
    /// handling the packets one by one does (handoffs, and the drop of a handed-over packet
    /// that is not this worker's after all).
    #[test]
    fn a_burst_with_two_workers_matches_packet_by_packet(
        ops in prop::collection::vec(op(), 1..150),
        burst in 1usize..=BURST,
        handed_over in any::<bool>(),
    ) {
        let snap = snapshot();
        let first_of_two = || {
            let mut w = Worker::new(WorkerConfig {
                index: 0,
                workers: 2,
                conn_capacity: 1024,
                port_macs: vec![LB_MAC, PORT1_MAC],
                vlan_ports: vlan_ports(),
                ..WorkerConfig::default()
            })
            .expect("worker");
            w.on_snapshot(&snap);
            w
        };
        let (mut bursts, mut single) = (first_of_two(), first_of_two());
        // A frame arrived on the port whose MAC it is addressed to (replies: port 1).
        let port_of = |frame: &Vec<u8>| u16::from(frame.get(..6) == Some(&PORT1_MAC[..]));
        let mut forwarded: Vec<Vec<u8>> = Vec::new();
        for (n, chunk) in ops.chunks(burst).enumerate() {
            let now = Tick(1 + n as u32);
            let frames: Vec<Vec<u8>> =
                chunk.iter().filter_map(|op| frame_for(op, &forwarded)).map(|(f, _)| f).collect();
            let mut a = frames.clone();
            let mut verdicts = [Verdict::Drop(DropReason::NotIp); BURST];
            bursts.process_burst_from(&snap, &mut a, port_of, now, handed_over, &mut verdicts);
            for (i, mut b) in frames.into_iter().enumerate() {
                let ingress = port_of(&b);
                let vb = single.process(&snap, &mut b, ingress, now, handed_over);
                prop_assert_eq!(verdicts[i], vb);
                prop_assert_eq!(&a[i], &b);
                if matches!(vb, Verdict::Forward { .. }) && ingress == 0 && answerable(&b) {
                    forwarded.push(b);
                }
            }
        }
        prop_assert_eq!(counters_of(&bursts), counters_of(&single));
    }
}

#[test]
fn recognise_takes_only_the_plain_shape() {
    let tcp = client_frame(1, 40000, 80, 0x10, 64, 6);
    let fast = fast::recognise(&tcp).expect("plain TCP is recognised");
    assert_eq!(fast.key.src, Addr::from_v4([198, 18, 0, 1]));
    assert_eq!(
        (fast.key.src_port, fast.key.dst_port, fast.tcp_flags),
        (40000, 80, 0x10)
    );
    assert_eq!(fast.wire_len as usize, tcp.len());
    let mut options = tcp.clone();
    options[14] = 0x46;
    assert!(fast::recognise(&options).is_none(), "IP options");
    let mut fragment = tcp.clone();
    fragment[20] = 0x20; // MF
    assert!(fast::recognise(&fragment).is_none(), "fragment");
    let mut dont_fragment = tcp.clone();
    dont_fragment[20] = 0x40; // DF only
    assert!(
        fast::recognise(&dont_fragment).is_some(),
        "DF is a whole packet"
    );
    let mut long = tcp.clone();
    long[17] = long[17].wrapping_add(1); // total length beyond the frame
    assert!(fast::recognise(&long).is_none(), "truncated");
    assert!(fast::recognise(&tcp[..40]).is_none(), "short frame");
    let udp = client_frame(1, 40000, 53, 0, 64, 20);
    assert!(fast::recognise(&udp).is_some());
    let mut bad_udp_len = udp.clone();
    bad_udp_len[38] = 0xff;
    assert!(
        fast::recognise(&bad_udp_len).is_none(),
        "UDP length beyond the packet"
    );
}

#[test]
fn recognise_takes_one_vlan_tag_and_leaves_two_to_the_general_path() {
    for plain in [
        client_frame(1, 40000, 80, 0x10, 64, 6),
        client_frame_v6(1, 40000, 80, 0x10, 64, 6),
    ] {
        let untagged = fast::recognise(&plain).expect("recognised");
        let one = tagged(&plain, 0xa00a);
        let fast = fast::recognise(&one).expect("one tag is recognised");
        assert_eq!(
            fast.vlan(),
            Some(10),
            "the VLAN id, without the priority bits"
        );
        assert_eq!(fast.key, untagged.key);
        assert_eq!(fast.wire_len as usize, one.len(), "the tag counts");
        let mut ad = one.clone();
        ad[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(
            fast::recognise(&ad).map(|f| f.vlan()),
            Some(Some(10)),
            "802.1ad"
        );
        let two = tagged(&one, 20);
        assert!(fast::recognise(&two).is_none(), "stacked tags");
        assert!(fast::recognise(&one[..20]).is_none(), "cut after the tag");
    }
}

#[test]
fn an_established_flow_takes_the_fast_path_both_ways() {
    let snap = snapshot();
    let mut w = worker();
    let mut syn = client_frame(1, 40000, 80, 0x02, 64, 0);
    assert_eq!(
        w.process(&snap, &mut syn, 0, Tick(1), false),
        Verdict::Forward { port: 1 }
    );
    let ack = client_frame(1, 40000, 80, 0x10, 64, 6);
    let fast = fast::recognise(&ack).expect("recognised");
    let probe = w.conns.probe(w.conns.hash_key(&fast.key));
    let mut out = ack.clone();
    assert_eq!(
        w.forward_established(&snap, &mut out, &fast, probe, Tick(2), false),
        Some(Verdict::Forward { port: 1 }),
        "the client's ACK is forwarded by the fast path"
    );
    let mut reply = reply_frame(&out, 0x10);
    let fast = fast::recognise(&reply).expect("recognised");
    let probe = w.conns.probe(w.conns.hash_key(&fast.key));
    assert_eq!(
        w.forward_established(&snap, &mut reply, &fast, probe, Tick(3), false),
        Some(Verdict::Forward { port: 0 }),
        "the backend's reply is forwarded by the fast path"
    );
    assert_eq!(&reply[26..30], &VIP, "the reply leaves from the VIP");
    let unknown = client_frame(2, 40001, 80, 0x10, 64, 0);
    let fast = fast::recognise(&unknown).expect("recognised");
    let probe = w.conns.probe(w.conns.hash_key(&fast.key));
    assert_eq!(
        w.forward_established(&snap, &mut unknown.clone(), &fast, probe, Tick(4), false),
        None,
        "a packet of no connection is left to the general path"
    );
}

/// Whether the IPv4 header and TCP/UDP checksums of `frame` verify, by etherparse's
/// computation (not ours). A UDP checksum of 0 ("none") counts as verified.
fn checksums_verify(frame: &[u8]) -> bool {
    let Ok(packet) = etherparse::SlicedPacket::from_ethernet(frame) else {
        return false;
    };
    if let Some(etherparse::NetSlice::Ipv6(ip)) = &packet.net {
        // No header checksum; the L4 one is mandatory (UDP included).
        let header = ip.header().to_header();
        return match packet.transport {
            Some(etherparse::TransportSlice::Tcp(tcp)) => {
                tcp.checksum()
                    == tcp
                        .to_header()
                        .calc_checksum_ipv6(&header, tcp.payload())
                        .expect("checksum")
            }
            Some(etherparse::TransportSlice::Udp(udp)) => {
                udp.checksum()
                    == udp
                        .to_header()
                        .calc_checksum_ipv6(&header, udp.payload())
                        .expect("checksum")
            }
            _ => false,
        };
    }
    let Some(etherparse::NetSlice::Ipv4(ip)) = packet.net else {
        return false;
    };
    let header = ip.header().to_header();
    if header.header_checksum != header.calc_header_checksum() {
        return false;
    }
    let payload = ip.payload().payload;
    match packet.transport {
        Some(etherparse::TransportSlice::Tcp(tcp)) => {
            tcp.checksum()
                == tcp
                    .to_header()
                    .calc_checksum_ipv4(&header, tcp.payload())
                    .expect("checksum")
        }
        Some(etherparse::TransportSlice::Udp(udp)) => {
            udp.checksum() == 0
                || udp.checksum()
                    == udp
                        .to_header()
                        .calc_checksum_ipv4(&header, udp.payload())
                        .expect("checksum")
        }
        _ => payload.is_empty(),
    }
}

/// The backend's untagged answer to `forwarded` (addresses and ports swapped, an ACK or a
/// datagram with `payload` bytes), built by etherparse with its own checksums.
fn backend_answer(forwarded: &[u8], payload: usize) -> Vec<u8> {
    let p = etherparse::SlicedPacket::from_ethernet(forwarded).expect("parses");
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, PORT1_MAC);
    let ip = match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => {
            eth.ipv4(ip.header().destination(), ip.header().source(), 64)
        }
        Some(etherparse::NetSlice::Ipv6(ip)) => {
            eth.ipv6(ip.header().destination(), ip.header().source(), 64)
        }
        _ => unreachable!(),
    };
    let data = vec![0x5a; payload];
    let mut out = Vec::new();
    match p.transport {
        Some(etherparse::TransportSlice::Udp(u)) => ip
            .udp(u.destination_port(), u.source_port())
            .write(&mut out, &data),
        Some(etherparse::TransportSlice::Tcp(t)) => ip
            .tcp(t.destination_port(), t.source_port(), 5000, 8192)
            .ack(1001)
            .write(&mut out, &data),
        _ => unreachable!(),
    }
    .expect("reply");
    out
}

#[test]
fn fast_path_checksums_verify_independently() {
    let snap = snapshot();
    let mut w = worker();
    // DNAT and full-NAT, TCP and UDP, both directions; TTLs and payloads vary the sums (UDP
    // payloads of 12 bytes or more: the fast path takes frames of at least 54 bytes).
    for (port, payload) in [(80u16, 0usize), (53, 12), (81, 13), (54, 26)] {
        for client in 1..=3u8 {
            let sport = 40000 + u16::from(client);
            let mut first = client_frame(client, sport, port, 0x02, 64, payload);
            assert!(matches!(
                w.process(&snap, &mut first, 0, Tick(1), false),
                Verdict::Forward { .. }
            ));
            let mut next = client_frame(client, sport, port, 0x10, 17 + client, payload);
            assert!(fast::recognise(&next).is_some());
            assert!(matches!(
                w.process(&snap, &mut next, 0, Tick(2), false),
                Verdict::Forward { port: 1 }
            ));
            assert!(checksums_verify(&next), "to the backend, port {port}");
            // (Frames to the third backend leave tagged for VLAN 30.)
            assert_eq!(next[22 + tag_len(&next)], 16 + client, "TTL decremented");
            // The backend's answer, with valid checksums, back through the fast path.
            let mut reply = backend_answer(&next, payload);
            assert!(matches!(
                w.process(&snap, &mut reply, 1, Tick(3), false),
                Verdict::Forward { port: 0 }
            ));
            assert!(checksums_verify(&reply), "to the client, port {port}");
            assert_eq!(&reply[26..30], &VIP, "the reply leaves from the VIP");
        }
    }
    // An IPv4 UDP checksum of 0 means "none" and stays 0 through the fast path.
    let mut first = client_frame(4, 41000, 53, 0, 64, 12);
    w.process(&snap, &mut first, 0, Tick(4), false);
    let mut next = client_frame(4, 41000, 53, 0, 64, 12);
    next[40..42].copy_from_slice(&[0, 0]);
    assert!(fast::recognise(&next).is_some());
    assert!(matches!(
        w.process(&snap, &mut next, 0, Tick(5), false),
        Verdict::Forward { port: 1 }
    ));
    assert_eq!(&next[40..42], &[0, 0]);
    // A UDP checksum that computes to 0 is sent as 0xffff (0 would mean "none"). Over every
    // nonzero checksum the datagram can arrive with, exactly one updates to 0.
    let (mut zeros, mut all_ones) = (0, 0);
    for arrived in 1..=u16::MAX {
        let mut frame = client_frame(4, 41000, 53, 0, 64, 12);
        frame[40..42].copy_from_slice(&arrived.to_be_bytes());
        let fast = fast::recognise(&frame).expect("recognised");
        let probe = w.conns.probe(w.conns.hash_key(&fast.key));
        assert_eq!(
            w.forward_established(&snap, &mut frame, &fast, probe, Tick(6), false),
            Some(Verdict::Forward { port: 1 })
        );
        zeros += usize::from(frame[40..42] == [0, 0]);
        all_ones += usize::from(frame[40..42] == [0xff, 0xff]);
    }
    assert_eq!((zeros, all_ones), (0, 1));
}

#[test]
fn ipv6_flows_take_the_fast_path_with_checksums_that_verify_independently() {
    let snap = snapshot();
    let mut w = worker();
    let vip6 = v6(VIP6_NET, 0x10);
    for (port, payload) in [(80u16, 0usize), (53, 1), (81, 13), (54, 26)] {
        for client in 1..=3u8 {
            let sport = 40000 + u16::from(client);
            let mut first = client_frame_v6(client, sport, port, 0x02, 64, payload);
            assert!(matches!(
                w.process(&snap, &mut first, 0, Tick(1), false),
                Verdict::Forward { port: 1 }
            ));
            let mut next = client_frame_v6(client, sport, port, 0x10, 17 + client, payload);
            let fast = fast::recognise(&next).expect("recognised");
            assert!(fast.is_ipv6());
            let probe = w.conns.probe(w.conns.hash_key(&fast.key));
            assert_eq!(
                w.forward_established(&snap, &mut next, &fast, probe, Tick(2), false),
                Some(Verdict::Forward { port: 1 }),
                "the fast path forwards it to the backend, port {port}"
            );
            assert!(checksums_verify(&next), "to the backend, port {port}");
            let t = tag_len(&next);
            assert_eq!(next[21 + t], 16 + client, "hop limit decremented");
            let net = if t == 0 { BACKEND6_NET } else { VLAN6_NET };
            assert_eq!(&next[38 + t..46 + t], &v6(net, 0)[..8], "to a backend");
            // The backend's answer, built with etherparse's checksums.
            let mut reply = backend_answer(&next, payload);
            let fast = fast::recognise(&reply).expect("recognised");
            let probe = w.conns.probe(w.conns.hash_key(&fast.key));
            assert_eq!(
                w.forward_established(&snap, &mut reply, &fast, probe, Tick(3), false),
                Some(Verdict::Forward { port: 0 }),
                "the fast path forwards the reply, port {port}"
            );
            assert!(checksums_verify(&reply), "to the client, port {port}");
            assert_eq!(&reply[22..38], &vip6, "the reply leaves from the VIP");
            assert_eq!(
                &reply[38..54],
                &v6(CLIENT6_NET, u16::from(client)),
                "to the client"
            );
        }
    }
    assert_eq!(w.counters().total_drops(), 0);
}

#[test]
fn recognise_leaves_ipv6_extension_headers_to_the_general_path() {
    let plain = client_frame_v6(1, 40000, 80, 0x10, 64, 6);
    assert!(fast::recognise(&plain).is_some());
    // Next header: Hop-by-Hop options instead of TCP.
    let mut ext = plain.clone();
    ext[20] = 0;
    assert!(fast::recognise(&ext).is_none());
    // A payload length past the frame's end.
    let mut long = plain.clone();
    long[18..20].copy_from_slice(&(plain.len() as u16).to_be_bytes());
    assert!(fast::recognise(&long).is_none());
    // An IPv4-mapped source (the key of an IPv4 flow): the general path drops it.
    let mut mapped = plain.clone();
    mapped[22..38].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1]);
    assert!(fast::recognise(&mapped).is_none());
    // Version 4 in an IPv6 ethertype.
    let mut version = plain.clone();
    version[14] = 0x40;
    assert!(fast::recognise(&version).is_none());
    // A UDP header with no room for a TCP one is still UDP's minimum.
    let udp = client_frame_v6(1, 40000, 53, 0, 64, 0);
    assert_eq!(udp.len(), 62);
    assert!(fast::recognise(&udp).is_some());
    assert!(fast::recognise(&udp[..61]).is_none());
}

/// The first buffer of a packet that continues in others.
fn first_segment(bytes: Vec<u8>) -> DescribedPacket {
    DescribedPacket {
        bytes,
        segmented: true,
        ..DescribedPacket::default()
    }
}

/// A packet whose IPv4 header checksum the NIC found wrong.
fn nic_found_ip_checksum_bad(bytes: Vec<u8>) -> DescribedPacket {
    DescribedPacket {
        bytes,
        ip_checksum_checked: true,
        ip_checksum_bad: true,
        ..DescribedPacket::default()
    }
}

/// Packets that `wrap` describes are dropped for `reason`, singly and in a burst, unchanged,
/// without opening a connection or counting for the established one.
fn assert_dropped_before_anything_reads_them(
    wrap: fn(Vec<u8>) -> DescribedPacket,
    reason: DropReason,
) {
    let snap = snapshot();
    let mut w = worker();
    // An established connection, so that the fast path would otherwise take its packets.
    let mut syn = client_frame(1, 40000, 80, 0x02, 64, 0);
    assert_eq!(
        w.process(&snap, &mut syn, 0, Tick(1), false),
        Verdict::Forward { port: 1 }
    );
    let conns = w.connections().len();
    let frames = [
        client_frame(1, 40000, 80, 0x10, 64, 6), // of the connection
        client_frame(2, 40001, 80, 0x02, 64, 0), // a new connection's SYN
        client_frame(3, 5353, 53, 0, 64, 8),     // a new UDP flow
    ];
    let mut one = wrap(frames[0].clone());
    assert_eq!(
        w.process(&snap, &mut one, 0, Tick(2), false),
        Verdict::Drop(reason)
    );
    let mut burst: Vec<DescribedPacket> = frames.iter().cloned().map(wrap).collect();
    let mut verdicts = [Verdict::Consumed; 3];
    w.process_burst(&snap, &mut burst, 0, Tick(3), &mut verdicts);
    assert_eq!(verdicts, [Verdict::Drop(reason); 3]);
    for (pkt, frame) in burst.iter().zip(&frames) {
        assert_eq!(pkt.data(), &frame[..], "not rewritten");
    }
    assert_eq!(w.counters().drops(reason), 4);
    assert_eq!(w.counters().total_drops(), 4, "each counted once");
    assert_eq!(w.connections().len(), conns, "no connection opened");
    let service = w.counters().service(1).expect("slot");
    assert_eq!(service.packets.get(), 1, "only the SYN was forwarded");
}

#[test]
fn a_segmented_packet_is_dropped_before_anything_reads_it() {
    assert_dropped_before_anything_reads_them(first_segment, DropReason::MultiSegment);
}

#[test]
fn a_packet_the_nic_found_with_a_bad_ip_checksum_is_dropped_before_anything_reads_it() {
    assert_dropped_before_anything_reads_them(nic_found_ip_checksum_bad, DropReason::BadIpChecksum);
    assert_eq!(DropReason::BadIpChecksum.as_str(), "bad_ip_checksum");
}

/// `frame` (IPv4, untagged or tagged) with a wrong IPv4 header checksum.
fn with_bad_ip_checksum(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[24 + tag_len(frame)] ^= 0x5a;
    f
}

#[test]
fn a_wrong_ipv4_header_checksum_the_nic_did_not_verify_is_dropped_before_anything_reads_it() {
    let snap = snapshot();
    let established = || {
        let mut w = worker();
        let mut syn = client_frame(1, 40000, 80, 0x02, 64, 0);
        assert_eq!(
            w.process(&snap, &mut syn, 0, Tick(1), false),
            Verdict::Forward { port: 1 }
        );
        w
    };
    let mut w = established();
    let conns = w.connections().len();
    let mut options = client_frame(1, 40000, 80, 0x10, 64, 6);
    // IHL 6: four option bytes (an end-of-list option and padding), which only the general
    // path takes.
    options.splice(34..34, [0u8; 4]);
    options[14] = 0x46;
    let total_len = u16::from_be_bytes([options[16], options[17]]) + 4;
    options[16..18].copy_from_slice(&total_len.to_be_bytes());
    fill_ipv4_checksum(&mut options);
    let good = [
        client_frame(1, 40000, 80, 0x10, 64, 6), // of the connection: the fast path's
        client_frame(2, 40001, 80, 0x02, 64, 0), // a new connection's SYN
        client_frame(3, 5353, 53, 0, 64, 8),     // a new UDP flow
        tagged(&client_frame(1, 40000, 80, 0x10, 64, 6), 7),
        options,
    ];
    // With the checksums right, each frame gets somewhere (forwarded or dropped for a reason
    // of its own): what follows is the checksum's doing.
    let mut control = established();
    for frame in &good {
        let v = control.process(&snap, &mut frame.clone(), 0, Tick(2), false);
        assert_ne!(v, Verdict::Drop(DropReason::BadIpChecksum), "{frame:02x?}");
    }
    assert_eq!(
        control.connections().len(),
        conns + 2,
        "the SYN and the UDP flow open"
    );
    let bad: Vec<Vec<u8>> = good.iter().map(|f| with_bad_ip_checksum(f)).collect();
    for frame in &bad {
        let mut one = frame.clone();
        assert_eq!(
            w.process(&snap, &mut one, 0, Tick(2), false),
            Verdict::Drop(DropReason::BadIpChecksum)
        );
        assert_eq!(&one, frame, "not rewritten");
    }
    let mut burst = bad.clone();
    let mut verdicts = vec![Verdict::Consumed; burst.len()];
    w.process_burst(&snap, &mut burst, 0, Tick(3), &mut verdicts);
    assert!(verdicts
        .iter()
        .all(|v| *v == Verdict::Drop(DropReason::BadIpChecksum)));
    assert_eq!(burst, bad, "not rewritten");
    let n = 2 * bad.len() as u64;
    assert_eq!(w.counters().drops(DropReason::BadIpChecksum), n);
    assert_eq!(w.counters().total_drops(), n, "each counted once");
    assert_eq!(w.connections().len(), conns, "no connection opened");
    let service = w.counters().service(1).expect("slot");
    assert_eq!(service.packets.get(), 1, "only the SYN was forwarded");

    // Where the NIC verified the header and found it good, its word stands: the pipeline
    // does not sum the header again.
    let mut trusted = DescribedPacket::offloaded(bad[0].clone());
    assert_eq!(
        w.process(&snap, &mut trusted, 0, Tick(4), false),
        Verdict::Forward { port: 1 }
    );
}

proptest! {
    /// The fast path's header sum agrees with the reference sum (`wire::checksum::verifies`)
    /// on any header it reads (version 4, 20 bytes), with its checksum right or not.
    #[test]
    fn the_fast_header_sum_agrees_with_the_reference(
        mut header in prop::array::uniform20(any::<u8>()),
        fill in any::<bool>(),
    ) {
        header[0] = 0x45;
        if fill {
            Ipv4Packet::new_unchecked(&mut header[..]).fill_checksum();
        }
        let mut frame = [0u8; super::MIN_FRAME];
        frame[super::L3..super::L4].copy_from_slice(&header);
        let reference = crate::wire::checksum::verifies(&header);
        prop_assert_eq!(super::header_v4_verifies(&frame), reference);
        if fill {
            prop_assert!(reference);
        }
    }
}
