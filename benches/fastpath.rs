//! Criterion micro-benchmarks of the fast path, without DPDK: the parser, the whole per-packet
//! function (`Worker::process`, and `Worker::process_burst` as the DPDK loop calls it, with one
//! worker and as worker 0 of two) for established flows and for new connections, the Maglev
//! table build and the snapshot compiler.
//!
//! Run with `cargo bench --bench fastpath` (add `-- <filter>` to pick groups). Timings on a
//! shared machine are noisy: compare numbers from one run.
//!
//! How the per-packet benches restore the packet: every iteration copies a 64-byte template
//! frame into a preallocated buffer and patches the client address and port of the flow it
//! measures (6 bytes; checksums are left stale, which neither the parser nor the incremental
//! rewrite cares about). `established/copy_only` measures exactly that copy and patch, so the
//! reader can subtract it; nothing is subtracted from the figures.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use dataplane::conntrack::{ConnState, Tick, Timeouts};
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::{backend_key, MaglevBackend, MaglevTable, Selection};
use dataplane::mem::{huge_page_vec, prefetch};
use dataplane::pipeline::{DescribedPacket, Verdict, Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, Neighbour, Route, ServiceConfig, ServiceKey, Snapshot, SnapshotConfig,
    SnatPool,
};
use dataplane::wire;
use etherparse::PacketBuilder;

const LB_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x0a, 0], [0x02, 0, 0, 0, 0x0a, 1]];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 0x01];
const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x9a, 0x01];
const VIP: [u8; 4] = [198, 18, 100, 10];
const GATEWAY: [u8; 4] = [198, 18, 0, 1];
const DNAT_PORT: u16 = 80;
const FULLNAT_PORT: u16 = 81;
/// The DNAT service on the IPv6 VIP: its frames are IPv6.
const DNAT_V6_PORT: u16 = 82;
/// Not a service port: the DNAT service's frames, with an 802.1Q tag (VLAN 10).
const DNAT_VLAN: u16 = 1080;
const SNAT_ADDRS: u8 = 32;
const BACKENDS: u8 = 8;

/// Clients live in 198.18.128.0/17 (behind `GATEWAY`), 32 source ports each: flow `i` is
/// computed, not stored, so picking a flow costs no memory access of its own.
const MAX_FLOWS: u32 = 1 << 20;

#[inline(always)]
fn client(i: u32) -> ([u8; 4], u16) {
    let host = 0x8000 + (i >> 5);
    (
        [198, 18, (host >> 8) as u8, host as u8],
        32768 + (i & 31) as u16,
    )
}

/// An address in the IPv6 benchmarking range (RFC 5180), 2001:2:0:`net`::`host`.
fn v6(net: u16, host: u32) -> [u8; 16] {
    let mut a = [0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    a[6..8].copy_from_slice(&net.to_be_bytes());
    a[12..].copy_from_slice(&host.to_be_bytes());
    a
}

const CLIENT6_NET: u16 = 0x8000;
const VIP6: u16 = 0x64;
const BACKEND6_NET: u16 = 0x13;

/// Offsets in an untagged Ethernet/IPv4/TCP frame without options, or in an Ethernet/IPv6/TCP
/// one without extension headers: source and destination address, ports, TCP flags.
#[derive(Clone, Copy)]
struct Offsets {
    src: usize,
    dst: usize,
    addr_len: usize,
    sport: usize,
    dport: usize,
    tcp_flags: usize,
}

const V4: Offsets = Offsets {
    src: 26,
    dst: 30,
    addr_len: 4,
    sport: 34,
    dport: 36,
    tcp_flags: 47,
};
const V6: Offsets = Offsets {
    src: 22,
    dst: 38,
    addr_len: 16,
    sport: 54,
    dport: 56,
    tcp_flags: 67,
};

/// The offsets in `frame`, 4 bytes later behind a VLAN tag.
#[inline(always)]
fn offsets(frame: &[u8]) -> Offsets {
    let tag = if frame[12] == 0x81 { 4 } else { 0 };
    let o = if frame[12 + tag] == 0x86 { V6 } else { V4 };
    Offsets {
        src: o.src + tag,
        dst: o.dst + tag,
        sport: o.sport + tag,
        dport: o.dport + tag,
        tcp_flags: o.tcp_flags + tag,
        ..o
    }
}

/// Writes flow `i`'s client address and port into a copy of `template`.
#[inline(always)]
fn restore(buf: &mut Vec<u8>, template: &[u8], i: u32) {
    // The tagged frames leave untagged: back to the template's length (a compare otherwise).
    buf.resize(template.len(), 0);
    buf.copy_from_slice(template);
    let o = offsets(template);
    let (addr, port) = client(i);
    if o.addr_len == 4 {
        buf[o.src..o.src + 4].copy_from_slice(&addr);
        // The pipeline verifies IPv4 header checksums (a `Vec` is no NIC that did): the
        // template's, updated for the new address (RFC 1624), as a client's stack sent it.
        let at = o.src - 2;
        let old: [u8; 4] = template[o.src..o.src + 4].try_into().expect("4 bytes");
        let sum = wire::checksum::update_addr4(
            u16::from_be_bytes([template[at], template[at + 1]]),
            &old,
            &addr,
        );
        buf[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    } else {
        buf[o.src + 12..o.src + 16].copy_from_slice(&addr);
    }
    buf[o.sport..o.sport + 2].copy_from_slice(&port.to_be_bytes());
}

/// A TCP frame of client 0 to `dport` on the VIP (the IPv6 VIP for [`DNAT_V6_PORT`]; the
/// last four bytes of an IPv6 client's address are those of its IPv4 counterpart), tagged
/// for [`DNAT_VLAN`].
fn tcp_frame(dport: u16, syn: bool, payload: usize) -> Vec<u8> {
    if dport == DNAT_VLAN {
        let frame = tcp_frame(DNAT_PORT, syn, payload);
        let mut out = frame[..12].to_vec();
        out.extend_from_slice(&[0x81, 0x00, 0x00, 10]);
        out.extend_from_slice(&frame[12..]);
        return out;
    }
    let (src, sport) = client(0);
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0]);
    let ip = if dport == DNAT_V6_PORT {
        eth.ipv6(v6(CLIENT6_NET, u32::from_be_bytes(src)), v6(VIP6, 0x10), 64)
    } else {
        eth.ipv4(src, VIP, 64)
    };
    let mut b = ip.tcp(sport, dport, 1000, 64240);
    b = if syn { b.syn() } else { b.ack(2000) };
    let mut out = Vec::new();
    b.write(&mut out, &vec![0x5a; payload]).unwrap();
    out
}

fn backend_addr(n: u8) -> Addr {
    Addr::from_v4([198, 19, 0, n])
}

fn backend6_addr(n: u8) -> Addr {
    Addr::from_v6(v6(BACKEND6_NET, u32::from(n)))
}

fn service(id: u32, port: u16, mode: NatMode, pool: Option<usize>) -> ServiceConfig {
    let ipv6 = port == DNAT_V6_PORT;
    ServiceConfig {
        id,
        name: format!("svc{id}"),
        key: ServiceKey {
            vip: if ipv6 {
                Addr::from_v6(v6(VIP6, 0x10))
            } else {
                Addr::from_v4(VIP)
            },
            port,
            proto: Proto::Tcp,
        },
        mode,
        selection: Selection::Maglev,
        persistence: false,
        backends: (1..=BACKENDS)
            .map(|n| Backend {
                id: id * 100 + u32::from(n),
                addr: if ipv6 {
                    backend6_addr(n)
                } else {
                    backend_addr(n)
                },
                port: 8080,
                weight: 1,
                state: BackendState::Active,
            })
            .collect(),
        snat_pool: pool,
        table_size: None,
    }
}

/// A DNAT service on VIP:80 and a full-NAT one on VIP:81 (8 backends each, Maglev), a DNAT
/// service on the IPv6 VIP, port 82, a pool of 32 SNAT addresses (room for 2M full-NAT flows
/// on one worker), routes to the clients through a gateway, and neighbours for the gateways
/// and the backends.
fn snapshot() -> Snapshot {
    let mut neighbours: Vec<Neighbour> = (1..=BACKENDS)
        .flat_map(|n| {
            [backend_addr(n), backend6_addr(n)].map(|addr| Neighbour {
                addr,
                mac: [0x02, 0, 0, 0, 0xbe, n],
                port: 1,
            })
        })
        .collect();
    neighbours.push(Neighbour {
        addr: Addr::from_v4(GATEWAY),
        mac: GATEWAY_MAC,
        port: 0,
    });
    neighbours.push(Neighbour {
        addr: Addr::from_v6(v6(0, 1)),
        mac: GATEWAY_MAC,
        port: 0,
    });
    let config = SnapshotConfig {
        generation: 1,
        selection_seed: 7,
        services: vec![
            service(1, DNAT_PORT, NatMode::Dnat, None),
            service(2, FULLNAT_PORT, NatMode::FullNat, Some(0)),
            service(3, DNAT_V6_PORT, NatMode::Dnat, None),
        ],
        snat_pools: vec![SnatPool {
            addrs: (1..=SNAT_ADDRS)
                .map(|n| Addr::from_v4([198, 19, 255, n]))
                .collect(),
        }],
        routes: vec![
            Route {
                prefix: Addr::from_v4([198, 18, 128, 0]),
                prefix_len: 17,
                next_hop: Some(Addr::from_v4(GATEWAY)),
                port: 0,
            },
            Route {
                prefix: Addr::from_v6(v6(CLIENT6_NET, 0)),
                prefix_len: 64,
                next_hop: Some(Addr::from_v6(v6(0, 1))),
                port: 0,
            },
        ],
        neighbours,
        local_addrs: Vec::new(),
    };
    Snapshot::compile(config, None).expect("bench snapshot compiles")
}

fn worker(snap: &Snapshot, capacity: u32, expire_budget: usize) -> Worker {
    first_of(snap, capacity, expire_budget, 1)
}

/// Worker 0 of `workers`.
fn first_of(snap: &Snapshot, capacity: u32, expire_budget: usize, workers: u16) -> Worker {
    let mut w = Worker::new(WorkerConfig {
        workers,
        conn_capacity: capacity,
        port_macs: LB_MAC.to_vec(),
        expire_budget,
        service_counter_slots: 16,
        backend_counter_slots: 1024,
        ..WorkerConfig::default()
    })
    .expect("worker");
    w.on_snapshot(snap);
    w
}

/// xorshift64*: a fixed pseudo-random sequence, so every run measures the same flows.
fn random_indices(len: usize, bound: u32, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((u128::from(r >> 32) * u128::from(bound)) >> 32) as u32
        })
        .collect()
}

fn bench_parse(c: &mut Criterion) {
    let payload = [0x5au8; 10];
    let mut v4 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4([198, 18, 0, 5], VIP, 64)
        .tcp(40000, 80, 1, 64240)
        .ack(1)
        .write(&mut v4, &payload)
        .unwrap();
    assert_eq!(v4.len(), 64);
    let mut v6 = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv6(
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            64,
        )
        .tcp(40000, 80, 1, 64240)
        .ack(1)
        .write(&mut v6, &payload)
        .unwrap();
    let mut vlan = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .single_vlan(100.try_into().unwrap())
        .ipv4([198, 18, 0, 5], VIP, 64)
        .udp(40000, 53)
        .write(&mut vlan, &[0x5a; 18])
        .unwrap();
    assert_eq!(vlan.len(), 64);

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [
        ("eth_ipv4_tcp_64B", &v4),
        ("eth_ipv6_tcp", &v6),
        ("eth_vlan_ipv4_udp", &vlan),
    ] {
        assert!(wire::parse(frame).is_ok(), "{name} parses");
        g.bench_function(name, |b| {
            b.iter(|| wire::parse(black_box(frame.as_slice())))
        });
    }
    g.finish();
}

/// Capacity of the tables of the established and new-connection benches: 1M flows plus
/// headroom (the 1k case uses the same capacity, so only the number of live flows differs).
const ESTABLISHED_CAPACITY: u32 = MAX_FLOWS + (1 << 17);

/// A worker with `flows` established connections to the service on `dport`: every flow did
/// the whole handshake (SYN, SYN-ACK from the backend, ACK) through `Worker::process`.
fn established_worker(snap: &Snapshot, dport: u16, flows: u32, now: Tick) -> Worker {
    let w = established_first_of(snap, dport, flows, now, 1);
    assert_eq!(w.connections().len(), flows as usize);
    w
}

/// Worker 0 of `workers` with the connections of the `flows` it owns established (the
/// others' SYNs are handed off and go no further).
fn established_first_of(
    snap: &Snapshot,
    dport: u16,
    flows: u32,
    now: Tick,
    workers: u16,
) -> Worker {
    let mut w = first_of(snap, ESTABLISHED_CAPACITY, 256, workers);
    let syn = tcp_frame(dport, true, 0);
    let ack = tcp_frame(dport, false, 10);
    let mut buf = syn.clone();
    let mut ack_buf = ack.clone();
    for i in 0..flows {
        restore(&mut buf, &syn, i);
        let v = w.process(snap, &mut buf, 0, now, false);
        if workers > 1 && matches!(v, Verdict::Handoff { .. }) {
            continue;
        }
        assert_eq!(v, Verdict::Forward { port: 1 }, "SYN of flow {i}");
        // The backend's SYN-ACK: the translated SYN with addresses and ports swapped.
        let o = offsets(&buf);
        let (src, dst) = (o.src..o.src + o.addr_len, o.dst..o.dst + o.addr_len);
        let (s, d) = (buf[src.clone()].to_vec(), buf[dst.clone()].to_vec());
        buf[src].copy_from_slice(&d);
        buf[dst].copy_from_slice(&s);
        let (sp, dp): ([u8; 2], [u8; 2]) = (
            buf[o.sport..o.sport + 2].try_into().unwrap(),
            buf[o.dport..o.dport + 2].try_into().unwrap(),
        );
        buf[o.sport..o.sport + 2].copy_from_slice(&dp);
        buf[o.dport..o.dport + 2].copy_from_slice(&sp);
        buf[o.tcp_flags] = 0x12;
        let v = w.process(snap, &mut buf, 1, now, false);
        assert_eq!(v, Verdict::Forward { port: 0 }, "SYN-ACK of flow {i}");
        restore(&mut ack_buf, &ack, i);
        let v = w.process(snap, &mut ack_buf, 0, now, false);
        assert_eq!(v, Verdict::Forward { port: 1 }, "ACK of flow {i}");
    }
    let first = w
        .connections()
        .iter(now)
        .next()
        .expect("worker 0 owns some flows");
    assert_eq!(
        w.connections().get(first.id).map(|c| c.state()),
        Some(ConnState::Established)
    );
    w
}

fn bench_established(c: &mut Criterion) {
    let snap = snapshot();
    let now = Tick(1_000);
    let ack = tcp_frame(DNAT_PORT, false, 10);
    assert_eq!(ack.len(), 64);
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(1));

    // The same copy and patch as every per-packet bench, with random flows out of 1M.
    let indices = random_indices(1 << 20, MAX_FLOWS, 0x5eed);
    let mut buf = ack.clone();
    let mut cursor = 0usize;
    g.bench_function("copy_only", |b| {
        b.iter(|| {
            let i = indices[cursor & (indices.len() - 1)];
            cursor += 1;
            restore(&mut buf, &ack, i);
            black_box(&mut buf);
        })
    });

    for flows in [1_000u32, 1_000_000] {
        let indices = random_indices(1 << 20, flows, u64::from(flows));
        for (mode, dport) in [("dnat", DNAT_PORT), ("fullnat", FULLNAT_PORT)] {
            // Built on the first call, i.e. only when the filter selects this bench; the
            // setup is not part of any timing.
            let mut worker: Option<Worker> = None;
            let template = tcp_frame(dport, false, 10);
            let mut buf = DescribedPacket::offloaded(template.clone());
            let mut cursor = 0usize;
            let label = if flows == 1_000 { "1k" } else { "1M" };
            g.bench_function(BenchmarkId::new(mode, label), |b| {
                let w = worker.get_or_insert_with(|| established_worker(&snap, dport, flows, now));
                b.iter(|| {
                    let i = indices[cursor & (indices.len() - 1)];
                    cursor += 1;
                    restore(&mut buf.bytes, &template, i);
                    black_box(w.process(&snap, &mut buf, 0, now, false))
                })
            });
            if let Some(w) = worker {
                // Every measured packet was forwarded (nothing dropped on the way).
                assert_eq!(w.counters().total_drops(), 0);
                assert_eq!(w.connections().len(), flows as usize);
            }
        }
    }
    g.finish();
}

/// Like `established`, through `Worker::process_burst` with bursts of 32 random established
/// flows (what the DPDK loop calls): the burst parses every packet and prefetches its
/// connection-table slot and entry before translating the first, so cache misses overlap.
/// Throughput is per packet; the copy and patch of 32 frames is included (32 x `copy_only`).
/// `dnat_ipv6` is the DNAT case over IPv6 (84-byte frames), `dnat_vlan` with an 802.1Q tag
/// on the frames from the clients (popped towards the untagged backends).
///
/// `two_workers_burst` runs the DNAT case at worker 0 of two: about half the flows are worker
/// 1's, and their packets are passed on (`Verdict::Handoff`) without a table lookup.
fn bench_established_burst(c: &mut Criterion) {
    const BURST: usize = dataplane::pipeline::BURST;
    let snap = snapshot();
    let now = Tick(1_000);
    let one_worker: &[(&str, u16, bool)] = &[
        ("dnat", DNAT_PORT, true),
        ("fullnat", FULLNAT_PORT, true),
        ("dnat_ipv6", DNAT_V6_PORT, true),
        ("dnat_vlan", DNAT_VLAN, true),
        ("dnat_sw_ip_checksum", DNAT_PORT, false),
    ];
    let two_workers: &[(&str, u16, bool)] = &[("dnat", DNAT_PORT, true)];
    for (group, workers, modes) in [
        ("established_burst", 1u16, one_worker),
        ("two_workers_burst", 2, two_workers),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(BURST as u64));
        for flows in [1_000u32, 1_000_000] {
            let indices = random_indices(1 << 20, flows, u64::from(flows) + u64::from(workers));
            for &(mode, dport, ip_checksum_checked) in modes {
                let mut worker: Option<Worker> = None;
                let template = tcp_frame(dport, false, 10);
                // As a NIC with RX checksum offload hands frames over (the NICs Sluice
                // targets have it), except in `dnat_sw_ip_checksum`: frames nothing
                // verified, whose IPv4 headers the pipeline sums itself (as on the vdevs).
                let mut bufs: Vec<DescribedPacket> = (0..BURST)
                    .map(|_| DescribedPacket {
                        bytes: template.clone(),
                        ip_checksum_checked,
                        ..DescribedPacket::default()
                    })
                    .collect();
                let mut verdicts = [Verdict::Drop(dataplane::pipeline::DropReason::NotIp); BURST];
                let mut cursor = 0usize;
                let label = if flows == 1_000 { "1k" } else { "1M" };
                g.bench_function(BenchmarkId::new(mode, label), |b| {
                    let w = worker.get_or_insert_with(|| {
                        established_first_of(&snap, dport, flows, now, workers)
                    });
                    b.iter(|| {
                        random_burst(&mut bufs, &template, &indices, &mut cursor);
                        w.process_burst(&snap, &mut bufs, 0, now, &mut verdicts);
                        black_box(&verdicts);
                    })
                });
                if let Some(w) = worker {
                    assert_eq!(w.counters().total_drops(), 0);
                    assert!(verdicts.iter().all(|v| *v == Verdict::Forward { port: 1 }
                        || (workers == 2 && *v == Verdict::Handoff { worker: 1 })));
                    let owned = w.connections().len() as f64 / f64::from(flows);
                    let expected = if workers == 1 { 1.0..=1.0 } else { 0.4..=0.6 };
                    assert!(
                        expected.contains(&owned),
                        "worker 0 owns {owned} of the flows"
                    );
                }
            }
        }
        g.finish();
    }
}

/// Restores each frame of `bufs` from `template` as a packet of the next flow in `indices`.
fn random_burst(
    bufs: &mut [DescribedPacket],
    template: &[u8],
    indices: &[u32],
    cursor: &mut usize,
) {
    for buf in bufs.iter_mut() {
        let i = indices[*cursor & (indices.len() - 1)];
        *cursor += 1;
        restore(&mut buf.bytes, template, i);
    }
}

/// The values of `indices` in turn, round and round (its length is a power of two).
fn cycle(indices: Vec<u32>) -> impl FnMut() -> usize {
    let mut cursor = 0usize;
    move || {
        cursor += 1;
        indices[(cursor - 1) & (indices.len() - 1)] as usize
    }
}

/// One burst of a memory floor: each packet's first access (`next`: a slot position with
/// `slots`, else an entry index) prefetched as it is drawn, then with `slots` every entry the
/// slots name prefetched, then every entry read and written.
fn floor_burst<E: AsMut<[u64]>>(
    mut next: impl FnMut() -> usize,
    slots: Option<&[u32]>,
    entries: &mut [E],
) -> u64 {
    let mut at = [0usize; dataplane::pipeline::BURST];
    for a in at.iter_mut() {
        *a = next();
        match slots {
            Some(slots) => prefetch(slots.as_ptr().wrapping_add(*a)),
            None => prefetch(entries.as_ptr().wrapping_add(*a)),
        }
    }
    if let Some(slots) = slots {
        for a in at.iter_mut() {
            *a = slots[*a] as usize;
            prefetch(entries.as_ptr().wrapping_add(*a));
        }
    }
    let mut sum = 0u64;
    for &a in &at {
        let entry = entries[a].as_mut();
        entry[0] = entry[0].wrapping_add(1);
        sum = sum.wrapping_add(entry[1]);
    }
    sum
}

/// The floor the memory system sets under `established_burst`: per packet, one random 8-byte
/// index slot and one random 64-byte line it names (read and written), in bursts of 32 with
/// the same staging (all slots prefetched, then all lines, then the work), in arrays the size
/// of the connection table's (slots and entries for `ESTABLISHED_CAPACITY`, on transparent
/// huge pages like the table's). `one_line` skips the slot. What the 1M rows add over the 1k
/// rows here, no two-access (resp. one-access) design can avoid on this machine.
fn bench_memory_floor(c: &mut Criterion) {
    const BURST: usize = dataplane::pipeline::BURST;
    let capacity = ESTABLISHED_CAPACITY as usize;
    let slot_count = capacity * 4;
    let mut slots: Vec<u32> = huge_page_vec(slot_count, 0);
    let mut lines: Vec<[u64; 8]> = huge_page_vec(capacity, [0; 8]);
    let mut halves: Vec<[u64; 4]> = huge_page_vec(capacity, [0; 4]);
    let mut g = c.benchmark_group("memory_floor");
    g.throughput(Throughput::Elements(BURST as u64));
    for flows in [1_000u32, 1_000_000] {
        let indices = random_indices(1 << 20, flows, u64::from(flows) + 1);
        // Flow i's slot is where its hash lands; its line is number i (the table's slab is
        // filled from index 0 up, like here).
        let slot_of =
            |i: u32| (u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % slot_count;
        for i in 0..flows {
            slots[slot_of(i)] = i;
        }
        let label = if flows == 1_000 { "1k" } else { "1M" };
        let mut next_flow = cycle(indices);
        g.bench_function(BenchmarkId::new("two_lines", label), |b| {
            b.iter(|| {
                black_box(floor_burst(
                    || slot_of(next_flow() as u32),
                    Some(&slots),
                    &mut lines,
                ))
            })
        });
        g.bench_function(BenchmarkId::new("one_line", label), |b| {
            b.iter(|| black_box(floor_burst(&mut next_flow, None, &mut lines)))
        });
        // The floor of a compact table: the same two accesses with 32-byte entries (half
        // the memory for the entries; the slots are 4 bytes already).
        g.bench_function(BenchmarkId::new("two_lines_32B_entries", label), |b| {
            b.iter(|| {
                black_box(floor_burst(
                    || slot_of(next_flow() as u32),
                    Some(&slots),
                    &mut halves,
                ))
            })
        });
    }
    // What a random line costs by the memory it is drawn from (the 1M rows above draw from
    // 64 MiB of entries plus the slots): the size a million connections' entries would need
    // to fit for their lookups to cost what the 1k rows' do.
    for mib in [4usize, 16, 32, 48, 64] {
        let bound = (mib << 20) / 64;
        let mut next_line = cycle(random_indices(1 << 20, bound as u32, mib as u64 + 3));
        let label = format!("{mib}MiB");
        g.bench_function(BenchmarkId::new("one_line_over", label), |b| {
            b.iter(|| black_box(floor_burst(&mut next_line, None, &mut lines)))
        });
    }
    // Whether lead time hides the misses: one random line per packet plus about 30 ns of
    // independent work (about the 1k burst's per-packet time), the lines prefetched at the
    // start of their own burst or a whole burst (about 1 us) earlier.
    for flows in [1_000u32, 1_000_000] {
        let indices = random_indices(1 << 20, flows, u64::from(flows) + 7);
        let label = if flows == 1_000 { "1k" } else { "1M" };
        for ahead in [false, true] {
            let mut cursor = 0usize;
            let name = if ahead {
                "with_work_burst_ahead"
            } else {
                "with_work_same_burst"
            };
            g.bench_function(BenchmarkId::new(name, label), |b| {
                let line_at = |k: usize| indices[k & (indices.len() - 1)] as usize;
                b.iter(|| {
                    let first = if ahead { cursor + BURST } else { cursor };
                    for k in first..first + BURST {
                        prefetch(lines.as_ptr().wrapping_add(line_at(k)));
                    }
                    let mut sum = 0u64;
                    for k in cursor..cursor + BURST {
                        let line = &mut lines[line_at(k)];
                        line[0] = line[0].wrapping_add(1);
                        sum = sum.wrapping_add(busy_work(line[1] ^ k as u64));
                    }
                    cursor += BURST;
                    black_box(sum)
                })
            });
        }
    }
    g.finish();
}

/// About 30 ns of arithmetic that depends only on `x` (so packets' work can overlap).
#[inline(always)]
fn busy_work(mut x: u64) -> u64 {
    for _ in 0..48 {
        x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ 0x55;
    }
    x
}

/// SYNs per timed chunk; the table is emptied between chunks (outside the timing), so it
/// never holds more than this many connections (6% of the small table's capacity).
const NEW_CHUNK: u32 = 4096;
const NEW_CAPACITY: u32 = 1 << 16;

/// SYNs to distinct flows through `Worker::process`. `dnat`/`fullnat`: a 65,536-entry table
/// (2 MiB index), so its slots are mostly cached; `*_1M`: the established benches' table
/// (2^20 + 2^17 entries), where the original key's slot, the reply key's slot and the new
/// entry are all cold, as for new flows arriving at a busy appliance.
fn bench_new_connection(c: &mut Criterion) {
    let snap = snapshot();
    let mut g = c.benchmark_group("new_connection");
    g.throughput(Throughput::Elements(1));
    let cases = [
        ("dnat", DNAT_PORT, NEW_CAPACITY),
        ("fullnat", FULLNAT_PORT, NEW_CAPACITY),
        ("dnat_1M", DNAT_PORT, ESTABLISHED_CAPACITY),
        ("fullnat_1M", FULLNAT_PORT, ESTABLISHED_CAPACITY),
    ];
    for (mode, dport, capacity) in cases {
        // One housekeeping call sweeps the whole table.
        let mut w = worker(&snap, capacity, capacity as usize);
        let syn = tcp_frame(dport, true, 0);
        let mut buf = DescribedPacket::offloaded(syn.clone());
        let mut now = Tick(1_000);
        let mut next_flow = 0u32;
        g.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let n = (iters - done).min(u64::from(NEW_CHUNK)) as u32;
                    let start = Instant::now();
                    for k in 0..n {
                        restore(&mut buf.bytes, &syn, (next_flow + k) % MAX_FLOWS);
                        black_box(w.process(&snap, &mut buf, 0, now, false));
                    }
                    total += start.elapsed();
                    done += u64::from(n);
                    next_flow = (next_flow + n) % MAX_FLOWS;
                    // Every SYN created its connection; then let them all time out.
                    assert_eq!(w.connections().len(), n as usize);
                    now = now.plus_millis(Timeouts::DEFAULT.tcp_syn + 1);
                    w.housekeeping(now);
                    assert!(w.connections().is_empty());
                }
                total
            })
        });
        assert_eq!(w.counters().total_drops(), 0);
    }
    g.finish();
}

fn maglev_backends(n: u32) -> Vec<MaglevBackend> {
    (0..n)
        .map(|i| MaglevBackend {
            key: backend_key(&Addr::from_v4([198, 19, (i >> 8) as u8, i as u8]), 8080),
            weight: 1,
        })
        .collect()
}

fn bench_maglev_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev_build");
    g.sample_size(20);
    for n in [10u32, 100] {
        let backends = maglev_backends(n);
        g.bench_function(
            BenchmarkId::new("65537_slots", format!("{n}_backends")),
            |b| b.iter(|| MaglevTable::build(black_box(&backends), 65537).unwrap()),
        );
    }
    g.finish();
}

/// 1,000 services (100 VIPs x 10 ports) with 8 backends each, DNAT and full-NAT alternating.
fn big_config() -> SnapshotConfig {
    let services = (0..1000u32)
        .map(|s| {
            let full = s % 2 == 1;
            ServiceConfig {
                id: s,
                name: format!("svc{s}"),
                key: ServiceKey {
                    vip: Addr::from_v4([198, 18, 200, (s / 10) as u8]),
                    port: 8000 + (s % 10) as u16,
                    proto: Proto::Tcp,
                },
                mode: if full {
                    NatMode::FullNat
                } else {
                    NatMode::Dnat
                },
                selection: Selection::Maglev,
                persistence: false,
                backends: (0..8u32)
                    .map(|j| {
                        let h = s * 8 + j;
                        Backend {
                            id: h,
                            addr: Addr::from_v4([198, 19, (h >> 8) as u8, h as u8]),
                            port: 8080,
                            weight: 1,
                            state: BackendState::Active,
                        }
                    })
                    .collect(),
                snat_pool: full.then_some(0),
                table_size: None,
            }
        })
        .collect();
    SnapshotConfig {
        generation: 1,
        selection_seed: 7,
        services,
        snat_pools: vec![SnatPool {
            addrs: vec![Addr::from_v4([198, 19, 255, 1])],
        }],
        routes: Vec::new(),
        neighbours: Vec::new(),
        local_addrs: Vec::new(),
    }
}

fn bench_snapshot_compile(c: &mut Criterion) {
    let config = big_config();
    Snapshot::compile(config.clone(), None).expect("big config compiles");
    let mut g = c.benchmark_group("snapshot_compile");
    g.sample_size(10);
    g.bench_function("1000_services_x_8_backends", |b| {
        b.iter_batched(
            || config.clone(),
            |config| Snapshot::compile(config, None).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Route tables of `n` random IPv4 prefixes (/8 to /32, plus a default route).
fn lpm_routes(n: usize, seed: u64) -> Vec<Route> {
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut routes = vec![Route {
        prefix: Addr::from_v4([0; 4]),
        prefix_len: 0,
        next_hop: Some(Addr::from_v4(GATEWAY)),
        port: 0,
    }];
    while routes.len() <= n {
        let len = 8 + (rand() % 25) as u8;
        let bits = (rand() as u32) & (u32::MAX << (32 - u32::from(len)));
        let prefix = Addr::from_v4(bits.to_be_bytes());
        if !routes
            .iter()
            .any(|r| r.prefix == prefix && r.prefix_len == len)
        {
            routes.push(Route {
                prefix,
                prefix_len: len,
                next_hop: None,
                port: (routes.len() % 2) as u16,
            });
        }
    }
    routes
}

/// Longest-prefix match: the snapshot's stride-8 trie against the linear scan it replaced,
/// 1,024 random destinations per iteration.
fn bench_lpm(c: &mut Criterion) {
    let mut g = c.benchmark_group("lpm");
    let dsts: Vec<Addr> = random_indices(1024, u32::MAX, 99)
        .into_iter()
        .map(|i| Addr::from_v4(i.to_be_bytes()))
        .collect();
    g.throughput(Throughput::Elements(dsts.len() as u64));
    for n in [16usize, 256, 4096] {
        let routes = lpm_routes(n, 0x5eed + n as u64);
        let lpm = dataplane::route::Lpm::build(&routes);
        g.bench_with_input(BenchmarkId::new("trie", n), &n, |b, _| {
            b.iter(|| {
                let mut ports = 0u32;
                for dst in &dsts {
                    ports += lpm.lookup(black_box(dst)).map_or(0, |r| u32::from(r.port));
                }
                ports
            })
        });
        g.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
            b.iter(|| {
                let mut ports = 0u32;
                for dst in &dsts {
                    ports += dataplane::route::lookup_linear(&routes, black_box(dst))
                        .map_or(0, |r| u32::from(r.port));
                }
                ports
            })
        });
        g.bench_with_input(BenchmarkId::new("build", n), &n, |b, _| {
            b.iter(|| dataplane::route::Lpm::build(black_box(&routes)))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_parse, bench_established, bench_established_burst, bench_memory_floor,
        bench_new_connection, bench_maglev_build, bench_snapshot_compile, bench_lpm
}
criterion_main!(benches);
