//! The whole per-packet function never panics and accounts for every packet: arbitrary bytes,
//! and valid TCP/UDP/ICMP frames to the VIPs (and to the SNAT addresses) mutated, truncated or
//! extended, go through `Worker::process` on two workers, with handoffs delivered, forwarded
//! frames fed back in the reply direction, and the clock advancing with housekeeping.
//!
//! Accounting, per packet: a `Drop(reason)` verdict raised exactly that reason's counter by one
//! and no other drop counter; any other verdict raised no drop counter. Per case: the sum of all
//! drop counters equals the number of `Drop` verdicts, `handoff_out` the number of `Handoff`
//! verdicts, `rejects_sent + echo_replies` the number of `Reply` verdicts, and every packet
//! processed got exactly one verdict.

use dataplane::conntrack::Tick;
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::{DropReason, Verdict, Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, Neighbour, ServiceConfig, ServiceKey, Snapshot, SnapshotConfig, SnatPool,
};
use dataplane::wire;
use etherparse::PacketBuilder;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::sync::OnceLock;

const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0xc1, 1];
const VIP4: [u8; 4] = [198, 18, 100, 10];
const VIP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const SNAT4: [u8; 4] = [198, 19, 255, 1];
const SNAT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 1,
];
/// Service ports on both VIPs: 80 DNAT (TCP) / 53 DNAT (UDP), 81 full-NAT (TCP and UDP),
/// 82 without backends (TCP and UDP); 83 has no service.
const PORTS: [u16; 5] = [80, 53, 81, 82, 83];

fn backend_addr(v6: bool, n: u8) -> Addr {
    if v6 {
        let mut a = SNAT6;
        a[14] = 0;
        a[15] = n;
        Addr::from_v6(a)
    } else {
        Addr::from_v4([198, 19, 0, n])
    }
}

fn client_addr(v6: bool, n: u8) -> Addr {
    if v6 {
        let mut a = VIP6;
        a[14] = 0;
        a[15] = n;
        Addr::from_v6(a)
    } else {
        Addr::from_v4([198, 18, 0, n])
    }
}

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let mut services = Vec::new();
        let mut id = 1u32;
        for v6 in [false, true] {
            let vip = if v6 {
                Addr::from_v6(VIP6)
            } else {
                Addr::from_v4(VIP4)
            };
            for (port, proto, mode) in [
                (80, Proto::Tcp, NatMode::Dnat),
                (53, Proto::Udp, NatMode::Dnat),
                (81, Proto::Tcp, NatMode::FullNat),
                (81, Proto::Udp, NatMode::FullNat),
                (82, Proto::Tcp, NatMode::Dnat),
                (82, Proto::Udp, NatMode::Dnat),
            ] {
                let backends = if port == 82 {
                    Vec::new()
                } else {
                    (1..=3u8)
                        .map(|n| Backend {
                            id: id * 10 + u32::from(n),
                            addr: backend_addr(v6, n),
                            port: 8080,
                            weight: u32::from(n),
                            state: if n == 3 {
                                BackendState::Draining
                            } else {
                                BackendState::Active
                            },
                        })
                        .collect()
                };
                services.push(ServiceConfig {
                    id,
                    name: format!("svc{id}"),
                    key: ServiceKey { vip, port, proto },
                    mode,
                    selection: [
                        Selection::Maglev,
                        Selection::RoundRobin,
                        Selection::SourceHash,
                    ][id as usize % 3],
                    persistence: id.is_multiple_of(2),
                    backends,
                    snat_pool: (mode == NatMode::FullNat).then_some(usize::from(v6)),
                    table_size: None,
                });
                id += 1;
            }
        }
        let mut neighbours = Vec::new();
        for v6 in [false, true] {
            for n in 1..=3u8 {
                neighbours.push(Neighbour {
                    addr: backend_addr(v6, n),
                    mac: [2, 0, 0, 0, 0xbe, n],
                    port: 1,
                });
            }
            // Only some clients have a known MAC, so `NoNeighbour` happens too.
            for n in 0..8u8 {
                neighbours.push(Neighbour {
                    addr: client_addr(v6, n),
                    mac: [2, 0, 0, 0, 0xc1, n],
                    port: 0,
                });
            }
        }
        Snapshot::compile(
            SnapshotConfig {
                generation: 1,
                selection_seed: 7,
                services,
                snat_pools: vec![
                    SnatPool {
                        addrs: vec![Addr::from_v4(SNAT4)],
                    },
                    SnatPool {
                        addrs: vec![Addr::from_v6(SNAT6)],
                    },
                ],
                routes: Vec::new(),
                neighbours,
                local_addrs: Vec::new(),
            },
            None,
        )
        .expect("test snapshot compiles")
    })
}

/// Two workers with small tables (so `TableFull` happens too) and small SNAT port ranges.
fn workers() -> [Worker; 2] {
    let snap = snapshot();
    [0, 1].map(|index| {
        let mut w = Worker::new(WorkerConfig {
            index,
            workers: 2,
            conn_capacity: 8,
            expire_budget: 4,
            // A small SNAT range: the allocators are shuffled per port at construction, and
            // this runs per case.
            snat_first_port: 1024,
            snat_last_port: 1151,
            port_macs: vec![LB_MAC, [2, 0, 0, 0, 0x0a, 1]],
            service_counter_slots: 256,
            backend_counter_slots: 2048,
            ..WorkerConfig::default()
        })
        .expect("worker");
        w.on_snapshot(snap);
        w
    })
}

/// Tallies verdicts and checks each packet's drop accounting as it goes.
#[derive(Default, Debug)]
struct Tally {
    packets: u64,
    forwards: u64,
    replies: u64,
    handoffs: u64,
    drops: u64,
}

fn drop_counts(w: &Worker) -> Vec<u64> {
    DropReason::all().map(|r| w.counters().drops(r)).collect()
}

/// One packet through worker `at`; checks that its verdict is accounted exactly.
fn process_one(
    workers: &mut [Worker; 2],
    at: usize,
    frame: &mut Vec<u8>,
    ingress: u16,
    now: Tick,
    handed_over: bool,
    tally: &mut Tally,
) -> Result<Verdict, TestCaseError> {
    let before = drop_counts(&workers[at]);
    let other_before = drop_counts(&workers[1 - at]);
    let verdict = workers[at].process(snapshot(), frame, ingress, now, handed_over);
    let after = drop_counts(&workers[at]);
    tally.packets += 1;
    let mut expected = before.clone();
    match verdict {
        Verdict::Drop(reason) => {
            tally.drops += 1;
            expected[reason.index()] += 1;
        }
        Verdict::Forward { port } => {
            prop_assert!(port <= 1, "forward to port {port}");
            tally.forwards += 1;
        }
        Verdict::Reply { port } => {
            prop_assert_eq!(port, ingress);
            tally.replies += 1;
        }
        Verdict::ToHost { port } => {
            // Unchanged, to the exception path of the port it came in on.
            prop_assert_eq!(port, ingress);
        }
        // Waiting for a next hop (the harness's snapshot has static neighbours, but a mutated
        // frame may be routed elsewhere), or learned from: neither is a drop.
        Verdict::Park { .. } | Verdict::Consumed => {}
        Verdict::Handoff { worker } => {
            prop_assert!(!handed_over, "a handed-over packet was handed over again");
            prop_assert_eq!(usize::from(worker), 1 - at);
            tally.handoffs += 1;
        }
    }
    prop_assert_eq!(after, expected, "drop counters after {:?}", verdict);
    prop_assert_eq!(drop_counts(&workers[1 - at]), other_before);
    Ok(verdict)
}

/// Delivers a received frame to worker `first` (RSS), following a handoff; then, if it was
/// forwarded, feeds the far end's answer (addresses and ports swapped) and the frame as it left
/// back in on the other port.
fn deliver(
    workers: &mut [Worker; 2],
    first: usize,
    frame: Vec<u8>,
    now: Tick,
    tally: &mut Tally,
) -> Result<(), TestCaseError> {
    let mut frame = frame;
    let mut at = first;
    let mut verdict = process_one(workers, at, &mut frame, 0, now, false, tally)?;
    if let Verdict::Handoff { worker } = verdict {
        at = usize::from(worker);
        verdict = process_one(workers, at, &mut frame, 0, now, true, tally)?;
    }
    if let Verdict::Forward { port } = verdict {
        if let Some(mut reply) = swapped(&frame) {
            let v = process_one(workers, at, &mut reply, port, now, false, tally)?;
            if let Verdict::Handoff { worker } = v {
                process_one(
                    workers,
                    usize::from(worker),
                    &mut reply,
                    port,
                    now,
                    true,
                    tally,
                )?;
            }
        }
        let mut again = frame.clone();
        let v = process_one(workers, at, &mut again, port, now, false, tally)?;
        if let Verdict::Handoff { worker } = v {
            process_one(
                workers,
                usize::from(worker),
                &mut again,
                port,
                now,
                true,
                tally,
            )?;
        }
    }
    Ok(())
}

/// The frame with IP addresses and L4 ports swapped, as the far end would answer it.
fn swapped(frame: &[u8]) -> Option<Vec<u8>> {
    let info = wire::parse(frame).ok()?;
    let mut out = frame.to_vec();
    let l3 = usize::from(info.l3_offset);
    let (src, len) = match info.ip_version {
        4 => (l3 + 12, 4),
        6 => (l3 + 8, 16),
        _ => return None,
    };
    let (s, d) = (src, src + len);
    let a = out.get(s..s + len)?.to_vec();
    let b = out.get(d..d + len)?.to_vec();
    out.get_mut(s..s + len)?.copy_from_slice(&b);
    out.get_mut(d..d + len)?.copy_from_slice(&a);
    if matches!(info.l4_proto, 6 | 17) {
        let l4 = usize::from(info.l4_offset);
        let ports = out.get(l4..l4 + 4)?.to_vec();
        out.get_mut(l4..l4 + 2)?.copy_from_slice(&ports[2..4]);
        out.get_mut(l4 + 2..l4 + 4)?.copy_from_slice(&ports[0..2]);
    }
    Some(out)
}

/// Runs a sequence of frames through fresh workers and checks the per-case sums.
fn run(frames: Vec<(usize, Vec<u8>)>) -> Result<Tally, TestCaseError> {
    let mut workers = workers();
    let mut tally = Tally::default();
    let mut now = Tick(1_000);
    for (first, frame) in frames {
        deliver(&mut workers, first % 2, frame, now, &mut tally)?;
        // Time passes (sometimes past every timeout) and aging runs, as in the worker loop.
        now = now.plus_millis(if first.is_multiple_of(7) {
            8_000_000
        } else {
            1_000
        });
        for w in &mut workers {
            w.housekeeping(now);
        }
    }
    let total_drops: u64 = workers.iter().map(|w| w.counters().total_drops()).sum();
    let handoff_out: u64 = workers.iter().map(|w| w.counters().handoff_out.get()).sum();
    let replies: u64 = workers
        .iter()
        .map(|w| w.counters().rejects_sent.get() + w.counters().echo_replies.get())
        .sum();
    prop_assert_eq!(total_drops, tally.drops);
    prop_assert_eq!(handoff_out, tally.handoffs);
    prop_assert_eq!(replies, tally.replies);
    prop_assert_eq!(
        tally.packets,
        tally.drops + tally.forwards + tally.replies + tally.handoffs
    );
    for w in &workers {
        let c = w.counters();
        prop_assert_eq!(
            c.active_connections.get(),
            w.connections().len() as u64,
            "active-connection gauge"
        );
        prop_assert_eq!(
            c.new_connections.get() - c.closed_connections.get(),
            w.connections().len() as u64
        );
    }
    Ok(tally)
}

/// A valid frame from a client to a VIP (or to the SNAT address, as a stray reply).
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..7,
        any::<bool>(),
        0u8..3,
        0usize..PORTS.len(),
        (0u8..12, any::<u16>(), any::<u8>()),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(shape, v6, to, port, (client, sport, ttl), payload)| {
            let dport = PORTS[port];
            let src = client_addr(v6, client).0;
            let dst: [u8; 16] = match (to, v6) {
                (2, true) => SNAT6,
                (2, false) => Addr::from_v4(SNAT4).0,
                (_, true) => VIP6,
                (_, false) => Addr::from_v4(VIP4).0,
            };
            let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC);
            let ttl = ttl.max(1);
            let src4: [u8; 4] = src[12..].try_into().unwrap();
            let dst4: [u8; 4] = dst[12..].try_into().unwrap();
            let ip = match (v6, to) {
                (false, 1) => eth.single_vlan(7.try_into().unwrap()).ipv4(src4, dst4, ttl),
                (false, _) => eth.ipv4(src4, dst4, ttl),
                (true, 1) => eth.single_vlan(7.try_into().unwrap()).ipv6(src, dst, ttl),
                (true, _) => eth.ipv6(src, dst, ttl),
            };
            let mut frame = Vec::new();
            match shape {
                0 => ip
                    .tcp(sport, dport, 1, 64240)
                    .syn()
                    .write(&mut frame, &payload),
                1 => ip
                    .tcp(sport, dport, 2, 64240)
                    .ack(9)
                    .write(&mut frame, &payload),
                2 => ip
                    .tcp(sport, dport, 3, 64240)
                    .ack(9)
                    .fin()
                    .write(&mut frame, &payload),
                3 => ip
                    .tcp(sport, dport, 4, 64240)
                    .rst()
                    .write(&mut frame, &payload),
                4 => ip.udp(sport, dport).write(&mut frame, &payload),
                5 if v6 => ip.icmpv6_echo_request(sport, 1).write(&mut frame, &payload),
                5 => ip.icmpv4_echo_request(sport, 1).write(&mut frame, &payload),
                _ if v6 => ip
                    .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
                    .write(&mut frame, &payload),
                _ => ip
                    .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                        etherparse::icmpv4::DestUnreachableHeader::Port,
                    ))
                    .write(&mut frame, &payload),
            }
            .unwrap();
            frame
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Truncate { len: usize },
    Extend { bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        4 => (
            any::<usize>(),
            prop_oneof![Just(0u8), Just(1), Just(0xff), Just(0x45), Just(0x60), Just(6), Just(17), any::<u8>()]
        )
            .prop_map(|(at, value)| Mutation::Set { at, value }),
        2 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(|bytes| Mutation::Extend { bytes }),
    ]
}

fn apply(frame: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations {
        let len = frame.len();
        match mutation {
            Mutation::Flip { at, mask } if len > 0 => frame[at % len] ^= mask,
            Mutation::Set { at, value } if len > 0 => frame[at % len] = *value,
            Mutation::Truncate { len: new_len } => frame.truncate(new_len % (len + 1)),
            Mutation::Extend { bytes } => frame.extend_from_slice(bytes),
            _ => {}
        }
    }
}

/// A valid frame, left alone about a third of the time (so whole conversations happen),
/// otherwise mutated.
fn frame_or_mutant() -> impl Strategy<Value = Vec<u8>> {
    (
        valid_frame(),
        proptest::collection::vec(mutation(), 0..4),
        0u8..3,
    )
        .prop_map(|(mut frame, mutations, keep)| {
            if keep != 0 {
                apply(&mut frame, &mutations);
            }
            frame
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_counted_drops(
        frames in proptest::collection::vec(
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..2000)),
            1..4,
        )
    ) {
        let n = frames.len() as u64;
        let tally = run(frames)?;
        // Random bytes almost never form a packet to a VIP: nearly all are dropped. (Not
        // asserted per input: a random frame can be a well-formed packet to nowhere.)
        prop_assert!(tally.packets >= n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn mutated_frames_to_vips_never_panic_and_are_accounted(
        frames in proptest::collection::vec((any::<usize>(), frame_or_mutant()), 1..12)
    ) {
        run(frames)?;
    }
}

/// The unmutated frames do reach every verdict kind, so the properties above are not vacuous.
#[test]
fn valid_frames_reach_every_verdict() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec((any::<usize>(), valid_frame()), 64);
    let mut total = Tally::default();
    for _ in 0..16 {
        let frames = strategy.new_tree(&mut runner).expect("strategy").current();
        let t = run(frames).expect("accounting holds");
        total.forwards += t.forwards;
        total.replies += t.replies;
        total.handoffs += t.handoffs;
        total.drops += t.drops;
    }
    assert!(total.forwards > 0, "{total:?}");
    assert!(total.replies > 0, "{total:?}");
    assert!(total.handoffs > 0, "{total:?}");
    assert!(total.drops > 0, "{total:?}");
}
