//! The per-packet functions allocate nothing once a worker has its snapshot: whole TCP
//! conversations (SYN, SYN-ACK from the backend, data both ways, FIN, RST), UDP flows, a
//! retransmitted SYN, rejects for a service without backends, malformed frames and the expiry
//! of every connection, through `Worker::process` and `Worker::process_burst`, DNAT and
//! full-NAT, IPv4 and IPv6. A counting global allocator (this test binary only) counts the allocations made
//! on the measuring thread while a closure runs.

use dataplane::conntrack::Tick;
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::{DropReason, Verdict, Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, LocalAddr, Neighbour, ServiceConfig, ServiceKey, Snapshot,
    SnapshotConfig, SnatPool,
};
use etherparse::PacketBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, whose
// contract the callers of this one meet; counting touches only const-initialised
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for the impl: the caller's layout goes to `System` unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` with allocations counted (on this thread); see [`allocations`].
fn counted<T>(f: impl FnOnce() -> T) -> T {
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    result
}

/// Allocations inside [`counted`] on this thread since the last call; resets the count.
fn allocations() -> u64 {
    ALLOCATIONS.with(|n| n.replace(0))
}

const LB_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 0];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0xc1, 1];
const VIP: [u8; 4] = [198, 18, 100, 10];
/// TCP 80 DNAT, UDP 53 DNAT, TCP 81 full-NAT, TCP 82 without backends.
const DNAT_TCP: u16 = 80;
const DNAT_UDP: u16 = 53;
const FULLNAT_TCP: u16 = 81;
const NO_BACKENDS: u16 = 82;
/// The DNAT TCP service on the IPv6 VIP.
const DNAT_TCP6: u16 = 83;
const CLIENTS: u8 = 40;

/// 2001:2:0:`net`::`host` (the IPv6 benchmarking range, RFC 5180).
fn v6(net: u8, host: u8) -> [u8; 16] {
    [0x20, 0x01, 0, 0x02, 0, 0, 0, net, 0, 0, 0, 0, 0, 0, 0, host]
}

fn snapshot() -> Snapshot {
    let backend = |id: u8, addr: Addr| Backend {
        id: u32::from(id),
        addr,
        port: 8080,
        weight: 1,
        state: BackendState::Active,
    };
    let backends: Vec<Backend> = (1..=3u8)
        .map(|n| backend(n, Addr::from_v4([198, 19, 0, n])))
        .collect();
    let backends6: Vec<Backend> = (1..=3u8)
        .map(|n| backend(n + 3, Addr::from_v6(v6(0x13, n))))
        .collect();
    let service =
        |id: u32, port: u16, proto: Proto, mode: NatMode, backends: Vec<Backend>| ServiceConfig {
            id,
            name: format!("svc{id}"),
            key: ServiceKey {
                vip: if port == DNAT_TCP6 {
                    Addr::from_v6(v6(0x64, 0x10))
                } else {
                    Addr::from_v4(VIP)
                },
                port,
                proto,
            },
            mode,
            selection: Selection::Maglev,
            persistence: false,
            backends,
            snat_pool: (mode == NatMode::FullNat).then_some(0),
            table_size: None,
        };
    let mut neighbours: Vec<Neighbour> = backends
        .iter()
        .chain(&backends6)
        .map(|b| Neighbour {
            addr: b.addr,
            mac: [2, 0, 0, 0, 0xbe, b.id as u8],
            port: 1,
        })
        .collect();
    neighbours.extend((1..=CLIENTS).map(|n| Neighbour {
        addr: Addr::from_v4([198, 18, 0, n]),
        mac: [2, 0, 0, 0, 0xc1, n],
        port: 0,
    }));
    neighbours.extend((1..=CLIENTS).map(|n| Neighbour {
        addr: Addr::from_v6(v6(0x12, n)),
        mac: [2, 0, 0, 0, 0xc1, n],
        port: 0,
    }));
    Snapshot::compile(
        SnapshotConfig {
            generation: 1,
            selection_seed: 7,
            services: vec![
                service(1, DNAT_TCP, Proto::Tcp, NatMode::Dnat, backends.clone()),
                service(2, DNAT_UDP, Proto::Udp, NatMode::Dnat, backends.clone()),
                service(3, FULLNAT_TCP, Proto::Tcp, NatMode::FullNat, backends),
                service(4, NO_BACKENDS, Proto::Tcp, NatMode::Dnat, Vec::new()),
                service(5, DNAT_TCP6, Proto::Tcp, NatMode::Dnat, backends6),
            ],
            snat_pools: vec![SnatPool {
                addrs: vec![Addr::from_v4([198, 19, 255, 1])],
            }],
            routes: Vec::new(),
            neighbours,
            local_addrs: vec![
                LocalAddr {
                    addr: Addr::from_v4([198, 18, 0, 254]),
                    port: 0,
                    prefix_len: 16,
                },
                LocalAddr {
                    addr: Addr::from_v4([198, 19, 0, 254]),
                    port: 1,
                    prefix_len: 16,
                },
                LocalAddr {
                    addr: Addr::from_v6(v6(0x12, 0xfe)),
                    port: 0,
                    prefix_len: 64,
                },
                LocalAddr {
                    addr: Addr::from_v6(v6(0x13, 0xfe)),
                    port: 1,
                    prefix_len: 64,
                },
            ],
        },
        None,
    )
    .expect("snapshot compiles")
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;
const SYN_ACK: u8 = 0x12;
const RST: u8 = 0x04;

/// A client's TCP segment (flags byte as on the wire) or UDP datagram to the VIP (the IPv6
/// VIP for [`DNAT_TCP6`]).
fn client_frame(client: u8, sport: u16, dport: u16, proto: Proto, flags: u8) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC);
    let ip = if dport == DNAT_TCP6 {
        eth.ipv6(v6(0x12, client), v6(0x64, 0x10), 64)
    } else {
        eth.ipv4([198, 18, 0, client], VIP, 64)
    };
    let mut frame = Vec::new();
    match proto {
        Proto::Udp => ip.udp(sport, dport).write(&mut frame, b"query"),
        _ => {
            let mut tcp = ip.tcp(sport, dport, 1000, 8192);
            if flags & SYN != 0 {
                tcp = tcp.syn();
            }
            if flags & ACK != 0 {
                tcp = tcp.ack(1);
            }
            if flags & 0x01 != 0 {
                tcp = tcp.fin();
            }
            if flags & RST != 0 {
                tcp = tcp.rst();
            }
            tcp.write(&mut frame, b"payload")
        }
    }
    .expect("frame builds");
    frame
}

/// The backend's answer to a forwarded frame: addresses and ports swapped, TCP flags set.
fn answer(forwarded: &[u8], flags: u8) -> Vec<u8> {
    let mut frame = forwarded.to_vec();
    // Address length and offset, L4 offset, protocol byte.
    let (len, at, l4, proto) = if forwarded[12..14] == [0x86, 0xdd] {
        (16, 22, 54, 20)
    } else {
        (4, 26, 34, 23)
    };
    frame[at..at + len].copy_from_slice(&forwarded[at + len..at + 2 * len]);
    frame[at + len..at + 2 * len].copy_from_slice(&forwarded[at..at + len]);
    frame[l4..l4 + 2].copy_from_slice(&forwarded[l4 + 2..l4 + 4]);
    frame[l4 + 2..l4 + 4].copy_from_slice(&forwarded[l4..l4 + 2]);
    if frame[proto] == 6 {
        frame[l4 + 13] = flags;
    }
    frame
}

/// A worker that has its snapshot and has seen one conversation of each kind already (the
/// egress cache and the counters of every service exist).
fn warm_worker(snap: &Snapshot) -> Worker {
    let mut w = Worker::new(WorkerConfig {
        conn_capacity: 4096,
        port_macs: vec![LB_MAC, [2, 0, 0, 0, 0x0a, 1]],
        ..WorkerConfig::default()
    })
    .expect("worker");
    w.on_snapshot(snap);
    conversations(&mut w, snap, 1, Tick(1));
    w
}

/// Sends `frame` in on port `ingress` (allocations counted) and checks that it leaves by
/// port `egress`.
fn forwards(
    w: &mut Worker,
    snap: &Snapshot,
    frame: &mut Vec<u8>,
    ingress: u16,
    egress: u16,
    now: Tick,
) {
    let verdict = counted(|| w.process(snap, frame, ingress, now, false));
    assert_eq!(verdict, Verdict::Forward { port: egress });
}

/// One TCP conversation per client to the DNAT and the full-NAT service (handshake, data both
/// ways, FIN both ways, a RST after), one UDP exchange, a retransmitted SYN, a SYN to the
/// service without backends and a truncated frame; single packets through `process`, the
/// clients' data segments as one burst through `process_burst`.
fn conversations(w: &mut Worker, snap: &Snapshot, first_client: u8, now: Tick) {
    let clients = first_client..first_client + 8;
    for dport in [DNAT_TCP, FULLNAT_TCP, DNAT_TCP6] {
        let mut data: Vec<Vec<u8>> = Vec::with_capacity(8);
        for client in clients.clone() {
            let sport = 40000 + u16::from(client);
            let mut syn = client_frame(client, sport, dport, Proto::Tcp, SYN);
            let mut again = syn.clone();
            forwards(w, snap, &mut syn, 0, 1, now);
            forwards(w, snap, &mut again, 0, 1, now);
            let mut syn_ack = answer(&syn, SYN_ACK);
            forwards(w, snap, &mut syn_ack, 1, 0, now);
            let mut ack = client_frame(client, sport, dport, Proto::Tcp, ACK);
            forwards(w, snap, &mut ack, 0, 1, now);
            data.push(client_frame(client, sport, dport, Proto::Tcp, ACK));
        }
        let mut verdicts = [Verdict::Drop(DropReason::NotIp); 8];
        counted(|| w.process_burst(snap, &mut data, 0, now, &mut verdicts));
        assert!(
            verdicts.iter().all(|v| *v == Verdict::Forward { port: 1 }),
            "{verdicts:?}"
        );
        for (client, forwarded) in clients.clone().zip(&data) {
            let sport = 40000 + u16::from(client);
            let mut reply = answer(forwarded, ACK);
            forwards(w, snap, &mut reply, 1, 0, now);
            let mut fin = client_frame(client, sport, dport, Proto::Tcp, FIN_ACK);
            forwards(w, snap, &mut fin, 0, 1, now);
            let mut fin_back = answer(&fin, FIN_ACK);
            forwards(w, snap, &mut fin_back, 1, 0, now);
            let mut rst = client_frame(client, sport, dport, Proto::Tcp, RST);
            forwards(w, snap, &mut rst, 0, 1, now);
        }
    }
    for client in clients {
        let mut query = client_frame(client, 50000, DNAT_UDP, Proto::Udp, 0);
        forwards(w, snap, &mut query, 0, 1, now);
        let mut response = answer(&query, 0);
        forwards(w, snap, &mut response, 1, 0, now);
        let mut refused = client_frame(client, 50001, NO_BACKENDS, Proto::Tcp, SYN);
        assert!(matches!(
            counted(|| w.process(snap, &mut refused, 0, now, false)),
            Verdict::Reply { .. }
        ));
        let mut truncated = client_frame(client, 50002, DNAT_TCP, Proto::Tcp, ACK);
        truncated.truncate(30);
        assert!(matches!(
            counted(|| w.process(snap, &mut truncated, 0, now, false)),
            Verdict::Drop(_)
        ));
    }
}

#[test]
fn a_warm_worker_allocates_nothing_per_packet() {
    let snap = snapshot();
    let mut w = warm_worker(&snap);
    allocations();
    let mut client = 9u8;
    while client + 7 <= CLIENTS {
        conversations(&mut w, &snap, client, Tick(2));
        client += 8;
    }
    assert_eq!(allocations(), 0, "allocations while forwarding");
    assert_eq!(
        w.connections().len(),
        5 * 32,
        "every conversation is still tracked (the closed ones until their timeout)"
    );
    assert_eq!(
        w.counters().total_drops(),
        5 * 8,
        "only the truncated frames were dropped"
    );
}

#[test]
fn expiring_every_connection_allocates_nothing() {
    let snap = snapshot();
    let mut w = warm_worker(&snap);
    conversations(&mut w, &snap, 9, Tick(2));
    assert!(!w.connections().is_empty());
    allocations();
    let later = Tick(100_000_000);
    for _ in 0..10_000 {
        if counted(|| w.housekeeping(later)) == 0 && w.connections().is_empty() {
            break;
        }
    }
    assert_eq!(allocations(), 0, "allocations while expiring");
    assert!(w.connections().is_empty(), "everything expired");
}

#[test]
fn the_counter_sees_an_allocation() {
    // The test above would pass with a counter that never counts.
    allocations();
    let boxed = counted(|| Box::new(7u64));
    assert_eq!(allocations(), 1);
    assert_eq!(*boxed, 7);
}
