//! Fuzzes the whole per-packet function as the DPDK loop calls it (`Worker::process_burst`,
//! and `process_burst_from` for a handoff): no frame may panic it, in either direction.
//!
//! The first input byte steers, the rest is the frame: bits 0-1 optionally overwrite the IP
//! destination with the VIP (1) or the SNAT address (2) of the frame's IP version, bit 2 the
//! TCP/UDP destination port with a service port picked by bits 3-4 (so the fuzzer reaches
//! connection creation and NAT without having to guess addresses behind a hash lookup), and
//! unless bit 7 is set an IPv4 header's checksum is then made right (the pipeline verifies it,
//! and a fuzzer cannot be expected to compute it; with bit 7 the frame keeps its own). The
//! frame goes in on port 0 of worker 0 of two; a handoff is delivered to worker 1 as handed
//! over; a forwarded frame is fed back on port 1 both as it left and with its addresses and
//! ports swapped (the backend's reply). The workers and their connection tables persist across
//! inputs, and the clock advances per input with bounded housekeeping, so expiry runs too. The
//! tables (64 entries) and SNAT pools (32 ports a worker) are small and the clock slow (50 ms
//! per input, an hour every 10,000th) so that they fill and empty again: aging under pressure
//! and the refusals of a full table or pool are fuzzed too.
//!
//! Run with `cargo +nightly fuzz run pipeline` from the repository root.
#![no_main]

use std::sync::{Mutex, OnceLock};

use dataplane::conntrack::Tick;
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::{DropReason, Verdict, Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, Neighbour, ServiceConfig, ServiceKey, Snapshot, SnapshotConfig, SnatPool,
};
use libfuzzer_sys::fuzz_target;

const VIP4: [u8; 4] = [198, 18, 100, 10];
const VIP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const SNAT4: [u8; 4] = [198, 19, 255, 1];
const SNAT6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 1,
];
const PORTS: [u16; 4] = [80, 53, 81, 82];

struct State {
    snap: Snapshot,
    workers: [Worker; 2],
    now: Tick,
    inputs: u64,
}

fn backends(v6: bool, id_base: u32) -> Vec<Backend> {
    (1..=3u8)
        .map(|n| Backend {
            id: id_base + u32::from(n),
            addr: if v6 {
                let mut a = SNAT6;
                a[15] = n;
                a[14] = 0;
                Addr::from_v6(a)
            } else {
                Addr::from_v4([198, 19, 0, n])
            },
            port: 8080,
            weight: u32::from(n),
            state: if n == 3 {
                BackendState::Draining
            } else {
                BackendState::Active
            },
        })
        .collect()
}

fn service(id: u32, vip: Addr, port: u16, proto: Proto, mode: NatMode, v6: bool) -> ServiceConfig {
    ServiceConfig {
        id,
        name: format!("svc{id}"),
        key: ServiceKey { vip, port, proto },
        mode,
        selection: match id % 3 {
            0 => Selection::Maglev,
            1 => Selection::RoundRobin,
            _ => Selection::SourceHash,
        },
        persistence: id.is_multiple_of(2),
        backends: if port == 82 {
            Vec::new()
        } else {
            backends(v6, id * 10)
        },
        snat_pool: (mode == NatMode::FullNat).then_some(usize::from(v6)),
        table_size: None,
    }
}

fn state() -> State {
    let vip4 = Addr::from_v4(VIP4);
    let vip6 = Addr::from_v6(VIP6);
    let mut services = Vec::new();
    let mut id = 1;
    for (vip, v6) in [(vip4, false), (vip6, true)] {
        for (port, proto, mode) in [
            (80, Proto::Tcp, NatMode::Dnat),
            (53, Proto::Udp, NatMode::Dnat),
            (81, Proto::Tcp, NatMode::FullNat),
            (81, Proto::Udp, NatMode::FullNat),
            (82, Proto::Tcp, NatMode::Dnat),
            (82, Proto::Udp, NatMode::Dnat),
        ] {
            services.push(service(id, vip, port, proto, mode, v6));
            id += 1;
        }
    }
    let mut neighbours = Vec::new();
    for b in services.iter().flat_map(|s| s.backends.iter()) {
        if neighbours.iter().any(|n: &Neighbour| n.addr == b.addr) {
            continue;
        }
        neighbours.push(Neighbour {
            addr: b.addr,
            mac: [2, 0, 0, 0, 0xbe, b.addr.0[15]],
            port: 1,
        });
    }
    // Clients reach the appliance from 198.18.0.0/24 and 2001:db8::/120, all on port 0.
    for n in 0..=255u8 {
        neighbours.push(Neighbour {
            addr: Addr::from_v4([198, 18, 0, n]),
            mac: [2, 0, 0, 0, 0xc1, n],
            port: 0,
        });
        let mut a = VIP6;
        a[14] = 0;
        a[15] = n;
        neighbours.push(Neighbour {
            addr: Addr::from_v6(a),
            mac: [2, 0, 0, 0, 0xc6, n],
            port: 0,
        });
    }
    let snap = Snapshot::compile(
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
    .expect("fuzz snapshot compiles");
    let worker = |index| {
        let mut w = Worker::new(WorkerConfig {
            index,
            workers: 2,
            // Small enough that a campaign fills the table and each worker's 32 SNAT ports.
            conn_capacity: 64,
            snat_first_port: 20_000,
            snat_last_port: 20_063,
            expire_budget: 64,
            port_macs: vec![[2, 0, 0, 0, 0x0a, 0], [2, 0, 0, 0, 0x0a, 1]],
            service_counter_slots: 64,
            backend_counter_slots: 256,
            ..WorkerConfig::default()
        })
        .expect("worker");
        w.on_snapshot(&snap);
        w
    };
    State {
        workers: [worker(0), worker(1)],
        snap,
        now: Tick(1_000),
        inputs: 0,
    }
}

/// Applies the steering byte to a frame `wire::parse` accepts.
fn steer(ctl: u8, frame: &mut [u8]) {
    let Ok(info) = dataplane::wire::parse(frame) else {
        return;
    };
    let addr: Option<&[u8]> = match (ctl & 3, info.ip_version) {
        (1, 4) => Some(&VIP4),
        (1, 6) => Some(&VIP6),
        (2, 4) => Some(&SNAT4),
        (2, 6) => Some(&SNAT6),
        _ => None,
    };
    if let Some(addr) = addr {
        let at = usize::from(info.l3_offset) + if info.ip_version == 4 { 16 } else { 24 };
        if let Some(dst) = frame.get_mut(at..at + addr.len()) {
            dst.copy_from_slice(addr);
        }
    }
    if ctl & 4 != 0 && matches!(info.l4_proto, 6 | 17) {
        let at = usize::from(info.l4_offset) + 2;
        let port = PORTS[usize::from(ctl >> 3) % PORTS.len()];
        if let Some(dst) = frame.get_mut(at..at + 2) {
            dst.copy_from_slice(&port.to_be_bytes());
        }
    }
    if ctl & 0x80 == 0 && info.ip_version == 4 {
        if let Some(ip) = frame.get_mut(usize::from(info.l3_offset)..) {
            dataplane::wire::ipv4::Ipv4Packet::new_unchecked(ip).fill_checksum();
        }
    }
}

/// The frame with IP addresses and L4 ports swapped, as the far end would answer it.
fn swapped(frame: &[u8]) -> Option<Vec<u8>> {
    let info = dataplane::wire::parse(frame).ok()?;
    let mut out = frame.to_vec();
    let l3 = usize::from(info.l3_offset);
    let (src, len) = match info.ip_version {
        4 => (l3 + 12, 4),
        6 => (l3 + 8, 16),
        _ => return None,
    };
    let (s, d) = (src, src + len);
    let a: Vec<u8> = out.get(s..s + len)?.to_vec();
    let b: Vec<u8> = out.get(d..d + len)?.to_vec();
    out.get_mut(s..s + len)?.copy_from_slice(&b);
    out.get_mut(d..d + len)?.copy_from_slice(&a);
    if matches!(info.l4_proto, 6 | 17) {
        let l4 = usize::from(info.l4_offset);
        let ports: Vec<u8> = out.get(l4..l4 + 4)?.to_vec();
        out.get_mut(l4..l4 + 2)?.copy_from_slice(&ports[2..4]);
        out.get_mut(l4 + 2..l4 + 4)?.copy_from_slice(&ports[0..2]);
    }
    Some(out)
}

/// One packet in on `ingress` of worker 0, following a handoff to worker 1, through the calls
/// the DPDK loop makes: a received burst, then a handed-over burst.
fn deliver(st: &mut State, frame: &mut Vec<u8>, ingress: u16) -> Verdict {
    let State {
        snap, workers, now, ..
    } = st;
    let mut verdict = [Verdict::Drop(DropReason::NotIp)];
    workers[0].process_burst(
        snap,
        std::slice::from_mut(frame),
        ingress,
        *now,
        &mut verdict,
    );
    match verdict[0] {
        Verdict::Handoff { worker } => {
            assert_eq!(worker, 1, "handoff to a worker that does not exist");
            workers[1].process_burst_from(
                snap,
                std::slice::from_mut(frame),
                |_| ingress,
                *now,
                true,
                &mut verdict,
            );
            assert!(
                !matches!(verdict[0], Verdict::Handoff { .. }),
                "handed over twice"
            );
            verdict[0]
        }
        v => v,
    }
}

fuzz_target!(|data: &[u8]| {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    let Some((&ctl, frame)) = data.split_first() else {
        return;
    };
    let mut st = STATE
        .get_or_init(|| Mutex::new(state()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // 50 ms per input lets connections pile up until the tables are full; every 10,000th
    // input an hour passes, so they empty again and every path stays reachable.
    st.inputs += 1;
    let step = if st.inputs.is_multiple_of(10_000) {
        3_600_000
    } else {
        50
    };
    st.now = st.now.plus_millis(step);
    let now = st.now;
    for w in &mut st.workers {
        w.housekeeping(now);
    }

    let mut frame = frame.to_vec();
    steer(ctl, &mut frame);
    if let Verdict::Forward { .. } = deliver(&mut st, &mut frame, 0) {
        if let Some(mut reply) = swapped(&frame) {
            deliver(&mut st, &mut reply, 1);
        }
        deliver(&mut st, &mut frame, 1);
    }
});
