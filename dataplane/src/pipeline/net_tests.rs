//! Appliance networking through the pipeline: ARP and neighbour discovery, resolution with
//! parked packets, routes, echo to interface addresses, and ICMP errors translated back
//! through NAT. Frames are built, and expected outputs compared byte for byte, with the
//! independent `etherparse` crate.

use super::*;
use crate::lb::Selection;
use crate::neigh::{self, NeighbourEvent, ParkedPackets};
use crate::snapshot::{
    Backend, BackendState, LocalAddr, Route, ServiceConfig, ServiceKey, SnapshotConfig, SnatPool,
};
use etherparse::{icmpv4, Icmpv4Type, Icmpv6Type, PacketBuilder};

const LB_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x0a, 0], [0x02, 0, 0, 0, 0x0a, 1]];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 0x01];
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x77, 0x77];
const CLIENT: [u8; 4] = [198, 18, 0, 5];
const LB_CLIENT_SIDE: [u8; 4] = [198, 18, 0, 1];
const LB_BACKEND_SIDE: [u8; 4] = [198, 19, 0, 254];
const VIP: [u8; 4] = [198, 18, 100, 10];
const SNAT: [u8; 4] = [198, 19, 0, 250];
const ROUTER: [u8; 4] = [198, 19, 0, 77];
const fn v6(last: u8, net: u8) -> [u8; 16] {
    [
        0x20, 0x01, 0x0d, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
    ]
}
const VIP6: [u8; 16] = v6(0x10, 0x64);
const CLIENT6: [u8; 16] = v6(5, 0);
const SNAT6: [u8; 16] = v6(0xfa, 1);

fn backend_ip(n: u8) -> [u8; 4] {
    [198, 19, 0, n]
}

fn backend_mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0xbe, n]
}

fn a4(ip: [u8; 4]) -> Addr {
    Addr::from_v4(ip)
}

fn backend(id: u32, addr: Addr, port: u16) -> Backend {
    Backend {
        id,
        addr,
        port,
        weight: 1,
        state: BackendState::Active,
    }
}

fn service(
    id: u32,
    vip: Addr,
    port: u16,
    mode: NatMode,
    pool: Option<usize>,
    backends: Vec<Backend>,
) -> ServiceConfig {
    ServiceConfig {
        id,
        name: format!("svc{id}"),
        key: ServiceKey {
            vip,
            port,
            proto: Proto::Tcp,
        },
        mode,
        selection: Selection::Maglev,
        persistence: false,
        backends,
        snat_pool: pool,
        table_size: None,
    }
}

/// DNAT :80 and full-NAT :81 to backend 1 only, IPv6 full-NAT :80 to one backend; interface
/// addresses on both ports, no static neighbours.
fn config(generation: u64) -> SnapshotConfig {
    let b1 = || vec![backend(1, a4(backend_ip(1)), 8080)];
    SnapshotConfig {
        generation,
        selection_seed: 7,
        services: vec![
            service(1, a4(VIP), 80, NatMode::Dnat, None, b1()),
            service(2, a4(VIP), 81, NatMode::FullNat, Some(0), b1()),
            service(
                3,
                Addr::from_v6(VIP6),
                80,
                NatMode::FullNat,
                Some(1),
                vec![backend(3, Addr::from_v6(v6(1, 1)), 8080)],
            ),
        ],
        snat_pools: vec![
            SnatPool {
                addrs: vec![a4(SNAT)],
            },
            SnatPool {
                addrs: vec![Addr::from_v6(SNAT6)],
            },
        ],
        routes: Vec::new(),
        neighbours: Vec::new(),
        local_addrs: vec![
            LocalAddr {
                addr: a4(LB_CLIENT_SIDE),
                port: 0,
                prefix_len: 24,
            },
            LocalAddr {
                addr: a4(LB_BACKEND_SIDE),
                port: 1,
                prefix_len: 24,
            },
            LocalAddr {
                addr: Addr::from_v6(v6(1, 0)),
                port: 0,
                prefix_len: 64,
            },
            LocalAddr {
                addr: Addr::from_v6(v6(0xfe, 1)),
                port: 1,
                prefix_len: 64,
            },
        ],
    }
}

const TIMERS: NeighbourTimers = NeighbourTimers {
    refresh_after_ms: 10_000,
    expire_after_ms: 20_000,
    retry_ms: 100,
    max_attempts: 3,
};

/// `n` workers sharing one neighbour cache.
fn workers(n: u16, snap: &Snapshot) -> Vec<Worker> {
    workers_with(n, snap, Vec::new())
}

/// `n` workers with these VLAN sub-interfaces.
fn workers_with(n: u16, snap: &Snapshot, vlan_ports: Vec<vlan::VlanPort>) -> Vec<Worker> {
    // One template, cloned: the workers share its neighbour cache and fragment tracker.
    let template = WorkerConfig {
        workers: n,
        conn_capacity: 1024,
        port_macs: LB_MAC.to_vec(),
        neighbours: Arc::new(NeighbourCache::new(256)),
        neighbour_timers: TIMERS,
        vlan_ports,
        ..WorkerConfig::default()
    };
    (0..n)
        .map(|index| {
            let mut w = Worker::new(WorkerConfig {
                index,
                ..template.clone()
            })
            .unwrap();
            w.on_snapshot(snap);
            w
        })
        .collect()
}

fn syn(src: [u8; 4], cport: u16, dport: u16, ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(src, VIP, ttl)
        .tcp(cport, dport, 1, 64240)
        .syn();
    let mut out = Vec::new();
    b.write(&mut out, b"").unwrap();
    out
}

fn arp(
    op: u16,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    sender: [u8; 4],
    target_mac: [u8; 6],
    target: [u8; 4],
) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op as u8]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&target_mac);
    f.extend_from_slice(&target);
    f
}

/// Steps `w`'s neighbour work at `now`, collecting the events.
fn step(w: &mut Worker, snap: &Snapshot, now: u32) -> Vec<NeighbourEvent> {
    let mut events = Vec::new();
    w.neighbour_step(snap, Tick(now), |e| events.push(e));
    events
}

#[test]
fn arp_request_for_an_interface_address_is_answered_and_teaches_the_asker() {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let mut w = workers(1, &snap);
    let mut req = arp(1, CLIENT_MAC, [0xff; 6], CLIENT, [0; 6], LB_CLIENT_SIDE);
    assert_eq!(
        w[0].process(&snap, &mut req, 0, Tick(5), false),
        Verdict::Reply { port: 0 }
    );
    assert_eq!(
        req,
        arp(2, LB_MAC[0], CLIENT_MAC, LB_CLIENT_SIDE, CLIENT_MAC, CLIENT)
    );
    let binding = w[0].cfg.neighbours.lookup(&a4(CLIENT), 0).unwrap();
    assert_eq!((binding.mac, binding.confirmed), (CLIENT_MAC, 5));
    // The backend side's address is not answered on the client port.
    let mut req = arp(1, CLIENT_MAC, [0xff; 6], CLIENT, [0; 6], LB_BACKEND_SIDE);
    assert_eq!(
        w[0].process(&snap, &mut req, 0, Tick(5), false),
        Verdict::Drop(DropReason::NotIp)
    );
}

/// The acceptance case: packets to an unresolved backend wait, one ARP request goes out, and
/// the reply (received by another worker) releases them in order.
#[test]
fn packets_wait_for_resolution_and_are_released_in_order() {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let mut w = workers(2, &snap);
    let mut parked: [ParkedPackets<Vec<u8>>; 2] = [ParkedPackets::new(), ParkedPackets::new()];
    // Three SYNs of flows worker 0 owns.
    let mut sent = Vec::new();
    let mut cport = 40_000u16;
    while sent.len() < 3 {
        cport += 1;
        let frame = syn(CLIENT, cport, 80, 64);
        let key = wire::parse(&frame).unwrap().flow_key().unwrap();
        if w[0].owner(&snap, &key) == 0 {
            sent.push(frame);
        }
    }
    let mut slot = None;
    for frame in &sent {
        let mut f = frame.clone();
        match w[0].process(&snap, &mut f, 0, Tick(10), false) {
            Verdict::Park { slot: s } => {
                assert!(slot.is_none_or(|x| x == s), "one slot per next hop");
                slot = Some(s);
                parked[0].park(s, f).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    let slot = slot.unwrap();
    // One request, from the backend-side interface address, broadcast on port 1 (and the
    // first snapshot's addresses announced).
    let events: Vec<_> = step(&mut w[0], &snap, 10)
        .into_iter()
        .filter(|e| !matches!(e, NeighbourEvent::Announce { .. }))
        .collect();
    assert_eq!(
        events,
        [NeighbourEvent::Solicit {
            port: 1,
            vlan: None,
            src_mac: LB_MAC[1],
            target: a4(backend_ip(1)),
            sender: a4(LB_BACKEND_SIDE),
            unicast: None
        }]
    );
    let mut frame = [0u8; 64];
    let n = neigh::build_solicit(
        &mut frame,
        &LB_MAC[1],
        None,
        &a4(LB_BACKEND_SIDE),
        &a4(backend_ip(1)),
        None,
    )
    .unwrap();
    let mut who_has = arp(
        1,
        LB_MAC[1],
        [0xff; 6],
        LB_BACKEND_SIDE,
        [0; 6],
        backend_ip(1),
    );
    who_has.resize(neigh::ARP_FRAME_LEN, 0);
    assert_eq!(&frame[..n], &who_has[..]);
    assert_eq!(w[0].counters().arp_requests_sent.get(), 1);
    assert!(
        step(&mut w[0], &snap, 50)
            .iter()
            .all(|e| matches!(e, NeighbourEvent::Announce { .. })),
        "no retry before 100 ms"
    );

    // The reply arrives at worker 1; worker 0 releases at its next step.
    let mut reply = arp(
        2,
        backend_mac(1),
        LB_MAC[1],
        backend_ip(1),
        LB_MAC[1],
        LB_BACKEND_SIDE,
    );
    let v = w[1].process(&snap, &mut reply, 1, Tick(60), false);
    assert_eq!(
        v,
        Verdict::ToHost { port: 1 },
        "also for the host kernel's own requests"
    );
    assert_eq!(w[1].counters().neighbour_replies.get(), 1);
    let events = step(&mut w[0], &snap, 61);
    assert_eq!(
        events,
        [NeighbourEvent::Release {
            slot,
            port: 1,
            dst_mac: backend_mac(1),
            src_mac: LB_MAC[1]
        }]
    );
    let released: Vec<Vec<u8>> = parked[0]
        .take(slot)
        .map(|mut f| {
            rewrite::set_macs(&mut f, &backend_mac(1), &LB_MAC[1]);
            f
        })
        .collect();
    let expected: Vec<Vec<u8>> = sent
        .iter()
        .map(|f| {
            let cport = u16::from_be_bytes([f[34], f[35]]);
            let b = PacketBuilder::ethernet2(LB_MAC[1], backend_mac(1))
                .ipv4(CLIENT, backend_ip(1), 63)
                .tcp(cport, 8080, 1, 64240)
                .syn();
            let mut out = Vec::new();
            b.write(&mut out, b"").unwrap();
            out
        })
        .collect();
    assert_eq!(
        released, expected,
        "released in arrival order, fully addressed"
    );
    assert_eq!(w[0].counters().neighbours_resolved.get(), 1);
    // Later packets go straight out.
    let mut f = syn(CLIENT, 50_000, 80, 64);
    let at = usize::from(w[0].owner(&snap, &wire::parse(&f).unwrap().flow_key().unwrap()));
    assert_eq!(
        w[at].process(&snap, &mut f, 0, Tick(70), false),
        Verdict::Forward { port: 1 }
    );
    assert_eq!(&f[..6], &backend_mac(1));
}

#[test]
fn an_unanswered_next_hop_drops_its_waiting_packets_after_three_requests() {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let mut w = workers(1, &snap);
    let mut parked = ParkedPackets::new();
    for cport in 1..=(neigh::QUEUE_PER_TARGET as u16 + 2) {
        let mut f = syn(CLIENT, cport, 80, 64);
        let Verdict::Park { slot } = w[0].process(&snap, &mut f, 0, Tick(0), false) else {
            panic!("not parked")
        };
        // The queue is bounded: the loop drops (and counts) what does not fit.
        let _ = parked.park(slot, f);
    }
    assert_eq!(parked.len(), neigh::QUEUE_PER_TARGET);
    let mut discarded = None;
    for now in 0..1000 {
        for e in step(&mut w[0], &snap, now) {
            if let NeighbourEvent::Discard { slot } = e {
                discarded = Some((now, slot));
            }
        }
    }
    let (when, slot) = discarded.expect("gave up");
    assert_eq!(when, 700, "requests at 0, 100 and 300 ms, given up at 700");
    assert_eq!(parked.take(slot).count(), neigh::QUEUE_PER_TARGET);
    assert_eq!(w[0].counters().arp_requests_sent.get(), 3);
    // Held as failed: new packets are dropped at once, not parked.
    let mut f = syn(CLIENT, 9, 80, 64);
    assert_eq!(
        w[0].process(&snap, &mut f, 0, Tick(800), false),
        Verdict::Drop(DropReason::NoNeighbour)
    );
}

#[test]
fn longest_prefix_routes_choose_port_and_gateway() {
    let mut cfg = config(1);
    let gw_client_side = [198, 18, 0, 254];
    let gw_backend_side = [198, 19, 0, 253];
    cfg.routes = vec![
        Route {
            prefix: a4([0, 0, 0, 0]),
            prefix_len: 0,
            next_hop: Some(a4(gw_client_side)),
            port: 0,
        },
        Route {
            prefix: a4([198, 19, 0, 0]),
            prefix_len: 16,
            next_hop: Some(a4(gw_client_side)),
            port: 0,
        },
        Route {
            prefix: a4([10, 0, 0, 0]),
            prefix_len: 8,
            next_hop: Some(a4(gw_backend_side)),
            port: 1,
        },
    ];
    cfg.services = vec![
        service(
            1,
            a4(VIP),
            80,
            NatMode::Dnat,
            None,
            vec![backend(1, a4([10, 1, 2, 3]), 8080)],
        ),
        service(
            2,
            a4(VIP),
            82,
            NatMode::Dnat,
            None,
            vec![backend(2, a4([198, 19, 7, 7]), 8080)],
        ),
        service(
            3,
            a4(VIP),
            83,
            NatMode::Dnat,
            None,
            vec![backend(3, a4(backend_ip(1)), 8080)],
        ),
    ];
    let snap = Snapshot::compile(cfg, None).unwrap();
    assert_eq!(
        snap.egress(&a4(backend_ip(9))),
        Some((1, a4(backend_ip(9)))),
        "connected /24 beats the /16"
    );
    assert_eq!(
        snap.egress(&a4([198, 19, 7, 7])),
        Some((0, a4(gw_client_side)))
    );
    assert_eq!(
        snap.egress(&a4([203, 0, 113, 1])),
        Some((0, a4(gw_client_side)))
    );
    let mut w = workers(1, &snap);
    let cache = Arc::clone(&w[0].cfg.neighbours);
    cache.learn(&a4(gw_client_side), 0, ROUTER_MAC, 0);
    cache.learn(&a4(gw_backend_side), 1, [2, 0, 0, 0, 0x99, 1], 0);
    cache.learn(&a4(backend_ip(1)), 1, backend_mac(1), 0);
    for (dport, port, mac) in [
        (80, 1, [2, 0, 0, 0, 0x99, 1]),
        (82, 0, ROUTER_MAC),
        (83, 1, backend_mac(1)),
    ] {
        let mut f = syn(CLIENT, 1000 + dport, dport, 64);
        assert_eq!(
            w[0].process(&snap, &mut f, 0, Tick(1), false),
            Verdict::Forward { port },
            ":{dport}"
        );
        assert_eq!(
            (&f[..6], &f[6..12]),
            (&mac[..], &LB_MAC[usize::from(port)][..])
        );
    }

    // Without a default route, a reply to an address nothing covers is dropped and counted.
    let mut cfg = config(2);
    cfg.routes.clear();
    let snap = Snapshot::compile(cfg, None).unwrap();
    w[0].on_snapshot(&snap);
    let mut f = syn([203, 0, 113, 9], 1234, 80, 64);
    assert_eq!(
        w[0].process(&snap, &mut f, 0, Tick(2), false),
        Verdict::Forward { port: 1 }
    );
    let b = PacketBuilder::ethernet2(backend_mac(1), LB_MAC[1])
        .ipv4(backend_ip(1), [203, 0, 113, 9], 64)
        .tcp(8080, 1234, 1, 64240)
        .syn()
        .ack(2);
    let mut synack = Vec::new();
    b.write(&mut synack, b"").unwrap();
    assert_eq!(
        w[0].process(&snap, &mut synack, 1, Tick(3), false),
        Verdict::Drop(DropReason::NoRoute)
    );
    assert_eq!(w[0].counters().drops(DropReason::NoRoute), 1);
}

#[test]
fn pings_to_interface_addresses_are_answered() {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let mut w = workers(1, &snap);
    let b = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(CLIENT, LB_CLIENT_SIDE, 64)
        .icmpv4_echo_request(9, 3);
    let mut ping = Vec::new();
    b.write(&mut ping, b"hello").unwrap();
    assert_eq!(
        w[0].process(&snap, &mut ping, 0, Tick(1), false),
        Verdict::Reply { port: 0 }
    );
    let b = PacketBuilder::ethernet2(LB_MAC[0], CLIENT_MAC)
        .ipv4(LB_CLIENT_SIDE, CLIENT, 64)
        .icmpv4_echo_reply(9, 3);
    let mut expected = Vec::new();
    b.write(&mut expected, b"hello").unwrap();
    assert_eq!(ping, expected);
}

/// Sets up one worker with the client and backend 1 resolved, sends a SYN to `dport` and
/// returns the worker, the snapshot and the SYN as it left towards the backend.
fn established(dport: u16) -> (Vec<Worker>, Snapshot, Vec<u8>) {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let w = workers(1, &snap);
    w[0].cfg.neighbours.learn(&a4(CLIENT), 0, CLIENT_MAC, 0);
    w[0].cfg
        .neighbours
        .learn(&a4(backend_ip(1)), 1, backend_mac(1), 0);
    w[0].cfg.neighbours.learn(&a4(ROUTER), 1, ROUTER_MAC, 0);
    let mut w = w;
    let mut f = syn(CLIENT, 40_000, dport, 64);
    assert_eq!(
        w[0].process(&snap, &mut f, 0, Tick(1), false),
        Verdict::Forward { port: 1 }
    );
    (w, snap, f)
}

fn frag_needed(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    quote: &[u8],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ));
    let mut out = Vec::new();
    b.write(&mut out, quote).unwrap();
    out
}

/// The acceptance case: "fragmentation needed" from a router behind the load balancer, about
/// a DNAT TCP flow, reaches the client from the VIP, quoting the client's own packet with
/// correct checksums (whole quote, and a quote cut after 8 bytes of TCP).
#[test]
fn fragmentation_needed_for_a_dnat_flow_reaches_the_client() {
    for quote_len in [None, Some(28)] {
        let (mut w, snap, forwarded) = established(80);
        let ip = &forwarded[14..];
        let quote = &ip[..quote_len.unwrap_or(ip.len())];
        // DNAT keeps the client's address: the router answers the client directly.
        let mut err = frag_needed(ROUTER_MAC, LB_MAC[1], ROUTER, CLIENT, 64, quote);
        let v = w[0].process(&snap, &mut err, 1, Tick(2), false);
        assert_eq!(v, Verdict::Forward { port: 0 });
        // The client's SYN as it left the client (only the TTL is the forwarded one's).
        let original = syn(CLIENT, 40_000, 80, 63);
        let original_ip = &original[14..14 + quote.len()];
        let expected = frag_needed(LB_MAC[0], CLIENT_MAC, VIP, CLIENT, 63, original_ip);
        assert_eq!(err, expected, "quote of {} bytes", quote.len());
        assert_eq!(w[0].counters().icmp_errors_translated.get(), 1);
    }
}

#[test]
fn fragmentation_needed_for_a_full_nat_flow_reaches_the_client() {
    let (mut w, snap, forwarded) = established(81);
    let snat_port = u16::from_be_bytes([forwarded[34], forwarded[35]]);
    assert_eq!(&forwarded[26..30], &SNAT);
    let mut err = frag_needed(ROUTER_MAC, LB_MAC[1], ROUTER, SNAT, 64, &forwarded[14..]);
    assert_eq!(
        w[0].process(&snap, &mut err, 1, Tick(2), false),
        Verdict::Forward { port: 0 }
    );
    let original = syn(CLIENT, 40_000, 81, 63);
    let expected = frag_needed(LB_MAC[0], CLIENT_MAC, VIP, CLIENT, 63, &original[14..]);
    assert_eq!(err, expected, "SNAT port {snat_port} translated back");
}

/// An error from the client's side about a reply (VIP -> client) goes to the backend, quoting
/// the backend's own packet.
#[test]
fn errors_about_replies_go_back_to_the_backend() {
    let (mut w, snap, _) = established(80);
    let b = PacketBuilder::ethernet2(backend_mac(1), LB_MAC[1])
        .ipv4(backend_ip(1), CLIENT, 64)
        .tcp(8080, 40_000, 7, 64240)
        .syn()
        .ack(2);
    let mut synack = Vec::new();
    b.write(&mut synack, b"").unwrap();
    assert_eq!(
        w[0].process(&snap, &mut synack, 1, Tick(2), false),
        Verdict::Forward { port: 0 }
    );
    // As the client saw it: VIP:80 -> client, TTL 63.
    let mut err = frag_needed(CLIENT_MAC, LB_MAC[0], CLIENT, VIP, 64, &synack[14..]);
    assert_eq!(
        w[0].process(&snap, &mut err, 0, Tick(3), false),
        Verdict::Forward { port: 1 }
    );
    let b = PacketBuilder::ethernet2(backend_mac(1), LB_MAC[1])
        .ipv4(backend_ip(1), CLIENT, 63)
        .tcp(8080, 40_000, 7, 64240)
        .syn()
        .ack(2);
    let mut backend_sent = Vec::new();
    b.write(&mut backend_sent, b"").unwrap();
    let expected = frag_needed(
        LB_MAC[1],
        backend_mac(1),
        CLIENT,
        backend_ip(1),
        63,
        &backend_sent[14..],
    );
    assert_eq!(err, expected);
}

#[test]
fn errors_about_unknown_flows_are_not_translated() {
    let (mut w, snap, _) = established(80);
    let stray = syn([198, 18, 0, 99], 1, 80, 63);
    let mut err = frag_needed(
        ROUTER_MAC,
        LB_MAC[1],
        ROUTER,
        [198, 18, 0, 99],
        64,
        &stray[14..],
    );
    assert_eq!(
        w[0].process(&snap, &mut err, 1, Tick(2), false),
        Verdict::Drop(DropReason::IcmpUnhandled)
    );
}

#[test]
fn packet_too_big_for_an_ipv6_full_nat_flow_reaches_the_client() {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let mut w = workers(1, &snap);
    let cache = Arc::clone(&w[0].cfg.neighbours);
    cache.learn(&Addr::from_v6(CLIENT6), 0, CLIENT_MAC, 0);
    cache.learn(&Addr::from_v6(v6(1, 1)), 1, backend_mac(1), 0);
    let tcp6 = |src_mac, dst_mac, src, dst, hop, sport, dport| {
        let b = PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv6(src, dst, hop)
            .tcp(sport, dport, 1, 65535)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, b"0123456789").unwrap();
        out
    };
    let mut f = tcp6(CLIENT_MAC, LB_MAC[0], CLIENT6, VIP6, 64, 40_000, 80);
    assert_eq!(
        w[0].process(&snap, &mut f, 0, Tick(1), false),
        Verdict::Forward { port: 1 }
    );
    let too_big = |src_mac, dst_mac, src, dst, hop, quote: &[u8]| {
        let b = PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv6(src, dst, hop)
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1280 });
        let mut out = Vec::new();
        b.write(&mut out, quote).unwrap();
        out
    };
    let router6 = v6(0x77, 1);
    let mut err = too_big(ROUTER_MAC, LB_MAC[1], router6, SNAT6, 64, &f[14..]);
    assert_eq!(
        w[0].process(&snap, &mut err, 1, Tick(2), false),
        Verdict::Forward { port: 0 }
    );
    let original = tcp6(CLIENT_MAC, LB_MAC[0], CLIENT6, VIP6, 63, 40_000, 80);
    let expected = too_big(LB_MAC[0], CLIENT_MAC, VIP6, CLIENT6, 63, &original[14..]);
    assert_eq!(err, expected);
}

#[test]
fn neighbour_solicitation_for_an_interface_address_is_advertised() {
    let snap = Snapshot::compile(config(1), None).unwrap();
    let mut w = workers(1, &snap);
    let ours = v6(1, 0);
    let mut ns = [0u8; neigh::ND_FRAME_LEN];
    neigh::build_solicit(
        &mut ns,
        &CLIENT_MAC,
        None,
        &Addr::from_v6(CLIENT6),
        &Addr::from_v6(ours),
        None,
    )
    .unwrap();
    let mut ns = ns.to_vec();
    assert_eq!(
        w[0].process(&snap, &mut ns, 0, Tick(4), false),
        Verdict::Reply { port: 0 }
    );
    let mut expected = [0u8; neigh::ND_FRAME_LEN];
    neigh::build_advert(&mut expected, &LB_MAC[0], &ours, &CLIENT6, &CLIENT_MAC).unwrap();
    assert_eq!(ns, expected);
    let sliced = etherparse::SlicedPacket::from_ethernet(&ns).unwrap();
    let (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Icmpv6(icmp))) =
        (&sliced.net, &sliced.transport)
    else {
        panic!("not ICMPv6")
    };
    assert_eq!(ip.header().destination(), CLIENT6);
    assert!(icmp.is_checksum_valid(ip.header().source(), ip.header().destination()));
    // Type 136 with the solicited and override flags (etherparse 0.16 has no NA type).
    assert_eq!((icmp.slice()[0], icmp.slice()[4]), (136, 0x60));
    // The asker was learned from its source link-layer option.
    assert_eq!(
        w[0].cfg
            .neighbours
            .lookup(&Addr::from_v6(CLIENT6), 0)
            .unwrap()
            .mac,
        CLIENT_MAC
    );

    // An advertisement teaches the target's MAC, and is consumed.
    let mut na = [0u8; neigh::ND_FRAME_LEN];
    neigh::build_advert(
        &mut na,
        &backend_mac(1),
        &v6(1, 1),
        &v6(0xfe, 1),
        &LB_MAC[1],
    )
    .unwrap();
    let mut na = na.to_vec();
    assert_eq!(
        w[0].process(&snap, &mut na, 1, Tick(5), false),
        Verdict::Consumed
    );
    assert_eq!(
        w[0].cfg
            .neighbours
            .lookup(&Addr::from_v6(v6(1, 1)), 1)
            .unwrap()
            .mac,
        backend_mac(1)
    );
}

#[test]
fn new_addresses_are_announced_once_by_worker_zero() {
    let mut cfg = config(1);
    cfg.services.truncate(1);
    cfg.snat_pools.truncate(0);
    cfg.services[0].snat_pool = None;
    cfg.local_addrs.truncate(2);
    let snap = Snapshot::compile(cfg.clone(), None).unwrap();
    let mut w = workers(2, &snap);
    let announced = |events: Vec<NeighbourEvent>| -> Vec<(u16, Addr)> {
        events
            .into_iter()
            .filter_map(|e| match e {
                NeighbourEvent::Announce { port, addr, .. } => Some((port, addr)),
                _ => None,
            })
            .collect()
    };
    let mut first = announced(step(&mut w[0], &snap, 1));
    first.sort();
    assert_eq!(
        first,
        [
            (0, a4(LB_CLIENT_SIDE)),
            (0, a4(VIP)),
            (1, a4(VIP)),
            (1, a4(LB_BACKEND_SIDE))
        ]
    );
    assert!(
        announced(step(&mut w[1], &snap, 1)).is_empty(),
        "worker 0 announces"
    );
    // A new VIP is announced on every port; nothing else again.
    cfg.generation = 2;
    cfg.services.push(service(
        9,
        a4([198, 18, 100, 11]),
        80,
        NatMode::Dnat,
        None,
        Vec::new(),
    ));
    let snap = Snapshot::compile(cfg, Some(&snap)).unwrap();
    w[0].on_snapshot(&snap);
    assert_eq!(
        announced(step(&mut w[0], &snap, 2)),
        [(0, a4([198, 18, 100, 11])), (1, a4([198, 18, 100, 11]))]
    );
    let mut garp = [0u8; 64];
    let n = neigh::build_announce(&mut garp, &LB_MAC[0], None, &a4(VIP)).unwrap();
    let mut expected = arp(1, LB_MAC[0], [0xff; 6], VIP, [0; 6], VIP);
    expected.resize(neigh::ARP_FRAME_LEN, 0);
    assert_eq!(&garp[..n], &expected[..]);
}

/// Splits an untagged IPv4 frame into two fragments, the first carrying `first_len` bytes of
/// the IP payload (a multiple of 8).
fn fragment_v4(frame: &[u8], first_len: usize) -> (Vec<u8>, Vec<u8>) {
    let header = &frame[..34];
    let payload = &frame[34..];
    let make = |part: &[u8], offset: usize, more: bool| {
        let mut f = header.to_vec();
        f.extend_from_slice(part);
        f[16..18].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        f[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        let flags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&flags.to_be_bytes());
        fill_ipv4_checksum(&mut f);
        f
    };
    (
        make(&payload[..first_len], 0, true),
        make(&payload[first_len..], first_len, false),
    )
}

/// Sets the header checksum of the untagged IPv4 frame `f` (without options) for its header.
fn fill_ipv4_checksum(f: &mut [u8]) {
    crate::wire::ipv4::Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
}

#[test]
fn later_fragments_follow_their_first_fragment() {
    let mut cfg = config(1);
    cfg.services.push(ServiceConfig {
        key: ServiceKey {
            vip: a4(VIP),
            port: 53,
            proto: Proto::Udp,
        },
        ..service(
            4,
            a4(VIP),
            53,
            NatMode::Dnat,
            None,
            vec![backend(1, a4(backend_ip(1)), 5353)],
        )
    });
    let snap = Snapshot::compile(cfg, None).unwrap();
    let mut w = workers(2, &snap);
    w[0].cfg
        .neighbours
        .learn(&a4(backend_ip(1)), 1, backend_mac(1), 0);
    let payload: Vec<u8> = (0..200u8).collect();
    let datagram = |src_mac, dst_mac, src, dst, ttl, sport, dport| {
        let b = PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(src, dst, ttl)
            .udp(sport, dport);
        let mut out = Vec::new();
        b.write(&mut out, &payload).unwrap();
        out
    };
    let whole = datagram(CLIENT_MAC, LB_MAC[0], CLIENT, VIP, 64, 5000, 53);
    let (mut first, mut second) = fragment_v4(&whole, 104);
    // The later fragment reaches another worker than the first one: the tracker is shared.
    let v1 = w[0].process(&snap, &mut first, 0, Tick(1), false);
    let v1 = match v1 {
        Verdict::Handoff { worker } => {
            w[usize::from(worker)].process(&snap, &mut first, 0, Tick(1), true)
        }
        v => v,
    };
    assert_eq!(v1, Verdict::Forward { port: 1 });
    assert_eq!(
        w[1].process(&snap, &mut second, 0, Tick(2), false),
        Verdict::Forward { port: 1 }
    );
    let expected = datagram(
        LB_MAC[1],
        backend_mac(1),
        CLIENT,
        backend_ip(1),
        63,
        5000,
        5353,
    );
    let (want_first, want_second) = fragment_v4(&expected, 104);
    assert_eq!(
        first, want_first,
        "first fragment: addresses, port and the whole-datagram checksum"
    );
    assert_eq!(second, want_second, "later fragment: the same addresses");
    let counters = |f: fn(&WorkerCounters) -> u64| w.iter().map(|w| f(w.counters())).sum::<u64>();
    assert_eq!(counters(|c| c.fragments_tracked.get()), 1);
    assert_eq!(counters(|c| c.fragments_forwarded.get()), 1);

    // A later fragment whose first fragment never came is dropped and counted.
    let other = datagram(CLIENT_MAC, LB_MAC[0], CLIENT, VIP, 64, 5001, 53);
    let (_, mut orphan) = fragment_v4(&other, 104);
    orphan[18..20].copy_from_slice(&0x4321u16.to_be_bytes());
    fill_ipv4_checksum(&mut orphan);
    assert_eq!(
        w[1].process(&snap, &mut orphan, 0, Tick(3), false),
        Verdict::Drop(DropReason::Fragment)
    );
}

/// Logical port 2 is VLAN 100 on physical port 1, with 198.20.0.254/24.
#[test]
fn vlan_sub_interface_answers_learns_and_tags() {
    const SUB: [u8; 4] = [198, 20, 0, 254];
    const B5: [u8; 4] = [198, 20, 0, 5];
    let mut cfg = config(1);
    cfg.local_addrs.push(LocalAddr {
        addr: a4(SUB),
        port: 2,
        prefix_len: 24,
    });
    cfg.services.push(service(
        5,
        a4(VIP),
        85,
        NatMode::Dnat,
        None,
        vec![backend(5, a4(B5), 8080)],
    ));
    cfg.services.push(service(
        6,
        a4(VIP),
        86,
        NatMode::Dnat,
        None,
        vec![backend(6, a4([198, 20, 0, 6]), 8080)],
    ));
    let snap = Snapshot::compile(cfg, None).unwrap();
    let mut w = workers_with(1, &snap, vec![vlan::VlanPort { port: 1, vlan: 100 }]);
    let tagged = |frame: &[u8], vlan: u16| {
        let mut out = vec![0u8; frame.len() + 4];
        neigh::with_tag(&mut out, frame, Some(vlan)).unwrap();
        out
    };
    let vid = etherparse::VlanId::try_new(100).unwrap();

    // A tagged request for the sub-interface's address is answered, tagged; the asker is
    // learned on the sub-interface.
    let mut req = tagged(&arp(1, backend_mac(5), [0xff; 6], B5, [0; 6], SUB), 100);
    assert_eq!(
        w[0].process(&snap, &mut req, 1, Tick(1), false),
        Verdict::Reply { port: 1 }
    );
    assert_eq!(
        req,
        tagged(
            &arp(2, LB_MAC[1], backend_mac(5), SUB, backend_mac(5), B5),
            100
        )
    );
    assert_eq!(
        w[0].cfg.neighbours.lookup(&a4(B5), 2).unwrap().mac,
        backend_mac(5)
    );
    assert_eq!(w[0].cfg.neighbours.lookup(&a4(B5), 1), None);
    // Untagged, the same address is not the physical port's.
    let mut req = arp(1, backend_mac(5), [0xff; 6], B5, [0; 6], SUB);
    assert_eq!(
        w[0].process(&snap, &mut req, 1, Tick(1), false),
        Verdict::Drop(DropReason::NotIp)
    );

    // Client (untagged) -> backend on the VLAN: a tag is pushed.
    w[0].cfg.neighbours.learn(&a4(CLIENT), 0, CLIENT_MAC, 1);
    let mut f = syn(CLIENT, 40_000, 85, 64);
    assert_eq!(
        w[0].process(&snap, &mut f, 0, Tick(2), false),
        Verdict::Forward { port: 1 }
    );
    let b = PacketBuilder::ethernet2(LB_MAC[1], backend_mac(5))
        .single_vlan(vid)
        .ipv4(CLIENT, B5, 63)
        .tcp(40_000, 8080, 1, 64240)
        .syn();
    let mut expected = Vec::new();
    b.write(&mut expected, b"").unwrap();
    assert_eq!(f, expected);

    // Its reply (tagged) -> client (untagged): the tag is popped.
    let b = PacketBuilder::ethernet2(backend_mac(5), LB_MAC[1])
        .single_vlan(vid)
        .ipv4(B5, CLIENT, 64)
        .tcp(8080, 40_000, 9, 64240)
        .syn()
        .ack(2);
    let mut synack = Vec::new();
    b.write(&mut synack, b"").unwrap();
    assert_eq!(
        w[0].process(&snap, &mut synack, 1, Tick(3), false),
        Verdict::Forward { port: 0 }
    );
    let b = PacketBuilder::ethernet2(LB_MAC[0], CLIENT_MAC)
        .ipv4(VIP, CLIENT, 63)
        .tcp(85, 40_000, 9, 64240)
        .syn()
        .ack(2);
    let mut expected = Vec::new();
    b.write(&mut expected, b"").unwrap();
    assert_eq!(synack, expected);

    // Resolution on the VLAN: the parked packet already carries the tag, the request too.
    let mut f = syn(CLIENT, 40_001, 86, 64);
    let Verdict::Park { .. } = w[0].process(&snap, &mut f, 0, Tick(4), false) else {
        panic!("not parked")
    };
    assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 100]);
    let solicits: Vec<_> = step(&mut w[0], &snap, 4)
        .into_iter()
        .filter(|e| matches!(e, NeighbourEvent::Solicit { .. }))
        .collect();
    assert_eq!(
        solicits,
        [NeighbourEvent::Solicit {
            port: 1,
            vlan: Some(100),
            src_mac: LB_MAC[1],
            target: a4([198, 20, 0, 6]),
            sender: a4(SUB),
            unicast: None
        }]
    );
    let mut out = [0u8; neigh::MAX_FRAME_LEN];
    let n = neigh::build_solicit(
        &mut out,
        &LB_MAC[1],
        Some(100),
        &a4(SUB),
        &a4([198, 20, 0, 6]),
        None,
    )
    .unwrap();
    let mut who_has = arp(1, LB_MAC[1], [0xff; 6], SUB, [0; 6], [198, 20, 0, 6]);
    who_has.resize(neigh::ARP_FRAME_LEN, 0);
    assert_eq!(&out[..n], &tagged(&who_has, 100)[..]);

    // A VLAN on a port that does not exist is refused.
    let bad = Worker::new(WorkerConfig {
        port_macs: LB_MAC.to_vec(),
        vlan_ports: vec![vlan::VlanPort { port: 5, vlan: 100 }],
        ..WorkerConfig::default()
    });
    assert!(matches!(bad, Err(WorkerError::BadVlan { index: 0, .. })));
}
