//! Sluice's polling worker on real DPDK ports (a `net_ring` pair, EAL with `--no-huge`): a SYN
//! to the VIP comes out translated for the backend, the backend's answer comes back from the
//! VIP, a snapshot published mid-way is picked up, and no mbuf leaks.

mod common;

use common::{eal, pool, ring_pair};
use dataplane::dpdk::{MbufBurst, Mempool, Port, RxQueue, TxQueue};
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::vlan::VlanPort;
use dataplane::pipeline::{Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, Neighbour, ServiceConfig, ServiceKey, Snapshot, SnapshotConfig,
    SnapshotHandle,
};
use dataplane::worker::{PollingWorker, RxPort};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 1];
const BACKEND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbe, 1];

fn config(generation: u64, backend_host: u8) -> SnapshotConfig {
    let backend = Addr::from_v4([198, 19, 0, backend_host]);
    SnapshotConfig {
        generation,
        selection_seed: 1,
        services: vec![ServiceConfig {
            id: 1,
            name: "web".into(),
            key: ServiceKey {
                vip: Addr::from_v4([198, 18, 100, 10]),
                port: 80,
                proto: Proto::Tcp,
            },
            mode: NatMode::Dnat,
            selection: Selection::Maglev,
            persistence: false,
            backends: vec![Backend {
                id: u32::from(backend_host),
                addr: backend,
                port: 8080,
                weight: 1,
                state: BackendState::Active,
            }],
            snat_pool: None,
            table_size: None,
        }],
        snat_pools: Vec::new(),
        routes: Vec::new(),
        neighbours: vec![
            Neighbour {
                addr: backend,
                mac: BACKEND_MAC,
                port: 0,
            },
            Neighbour {
                addr: Addr::from_v4([198, 18, 0, 5]),
                mac: CLIENT_MAC,
                port: 0,
            },
        ],
        local_addrs: Vec::new(),
    }
}

fn syn(sport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, [0x02, 0, 0, 0, 0x0a, 0])
        .ipv4([198, 18, 0, 5], [198, 18, 100, 10], 64)
        .tcp(sport, 80, 1, 1000)
        .syn();
    let mut f = Vec::new();
    b.write(&mut f, &[]).unwrap();
    f
}

/// A polling worker on the appliance end of a ring pair (capacity 1,024, the port's MAC and
/// `config(1, 1)` filled in), with the outside end's queues to talk to it.
struct OnRings {
    worker: PollingWorker,
    wire_tx: TxQueue,
    wire_rx: RxQueue,
    handle: SnapshotHandle,
    mac: [u8; 6],
    /// The two ends; the queues above belong to them.
    _ports: (Port, Port),
}

fn one_worker(name: &str, pool: &Mempool, cfg: WorkerConfig) -> OnRings {
    let (mut outside, mut appliance) = ring_pair(name, pool);
    let mac = appliance.mac().unwrap();
    let handle = SnapshotHandle::new(Snapshot::compile(config(1, 1), None).unwrap());
    let pipeline = Worker::new(WorkerConfig {
        port_macs: vec![mac],
        conn_capacity: 1024,
        ..cfg
    })
    .unwrap();
    let worker = PollingWorker::new(
        pipeline,
        vec![RxPort {
            port_index: 0,
            queue: appliance.rx_queue(0).unwrap(),
        }],
        vec![appliance.tx_queue(0).unwrap()],
        vec![None],
        Vec::new(),
        handle.reader(),
    );
    OnRings {
        worker,
        wire_tx: outside.tx_queue(0).unwrap(),
        wire_rx: outside.rx_queue(0).unwrap(),
        handle,
        mac,
        _ports: (outside, appliance),
    }
}

#[test]
fn polling_worker_translates_over_a_ring_pair_and_picks_up_new_snapshots() {
    let _ = eal();
    let pool = pool("worker", 4096);
    {
        let OnRings {
            mut worker,
            mut wire_tx,
            mut wire_rx,
            handle,
            mac,
            _ports,
        } = one_worker("wk", &pool, WorkerConfig::default());

        // Sends `frame` from outside, lets the worker poll once, returns what it sent back.
        let mut exchange = |worker: &mut PollingWorker, frame: Vec<u8>| -> Vec<u8> {
            let mut burst = MbufBurst::new();
            let mut m = pool.alloc().unwrap();
            assert!(m.set_data(&frame));
            burst.push(m).unwrap();
            assert_eq!(wire_tx.tx_burst(&mut burst), 1);
            assert_eq!(worker.poll_once(), 1);
            let mut out = MbufBurst::new();
            assert_eq!(wire_rx.rx_burst(&mut out), 1, "the worker sent one frame");
            let m = out.pop().unwrap();
            m.data().to_vec()
        };

        let out = exchange(&mut worker, syn(40_000));
        let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
            panic!()
        };
        assert_eq!(ip.header().destination(), [198, 19, 0, 1]);
        assert_eq!(&out[..6], &BACKEND_MAC);
        assert_eq!(&out[6..12], &mac);

        // A new generation moves new flows to backend 2; the established flow stays.
        handle
            .publish(Snapshot::compile(config(2, 2), Some(&handle.load())).unwrap())
            .unwrap();
        let mut cfg3 = config(3, 2);
        cfg3.neighbours.push(Neighbour {
            addr: Addr::from_v4([198, 19, 0, 1]),
            mac: BACKEND_MAC,
            port: 0,
        });
        handle
            .publish(Snapshot::compile(cfg3, Some(&handle.load())).unwrap())
            .unwrap();
        let out = exchange(&mut worker, syn(40_001));
        let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
            panic!()
        };
        assert_eq!(
            ip.header().destination(),
            [198, 19, 0, 2],
            "new flow, new backend"
        );
        let out = exchange(&mut worker, syn(40_000));
        let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
        let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
            panic!()
        };
        assert_eq!(
            ip.header().destination(),
            [198, 19, 0, 1],
            "established flow kept"
        );

        // Load accounting: the polls that handled packets were timed, an idle one is not.
        let busy = worker.busy_cycles();
        assert!(busy > 0);
        assert_eq!(worker.poll_once(), 0);
        assert_eq!(worker.busy_cycles(), busy, "an idle poll adds no busy time");

        let c = worker.counters();
        assert_eq!(c.rx_packets.get(), 3);
        assert_eq!(c.tx_packets.get(), 3);
        // Three SYN frames in, three rewritten frames of the same length out.
        let frame_len = syn(40_000).len() as u64;
        assert_eq!(c.rx_bytes.get(), 3 * frame_len);
        assert_eq!(c.tx_bytes.get(), 3 * frame_len);
        assert_eq!(c.new_connections.get(), 2);
        assert_eq!(c.snapshot_generation.get(), 3);
    }
    assert_eq!(pool.in_use(), 0, "no mbuf leaked");
}

#[test]
fn two_workers_hand_packets_to_the_owner_over_spsc_rings() {
    let _ = eal();
    let pool = pool("handoff", 8192);
    {
        let (mut outside, mut appliance) = common::ring_pair_with_queues("ho", &pool, 2);
        let mac = appliance.mac().unwrap();
        let handle = SnapshotHandle::new(Snapshot::compile(config(1, 1), None).unwrap());
        let (to_1, from_0) = dataplane::dpdk::handoff_channel("w0w1", 1024).unwrap();
        let (to_0, from_1) = dataplane::dpdk::handoff_channel("w1w0", 1024).unwrap();
        let mut workers: Vec<PollingWorker> = [
            (0u16, vec![None, Some(to_1)], from_1),
            (1, vec![Some(to_0), None], from_0),
        ]
        .into_iter()
        .map(|(index, tx_rings, rx_ring)| {
            let pipeline = Worker::new(WorkerConfig {
                index,
                workers: 2,
                port_macs: vec![mac],
                conn_capacity: 1024,
                ..WorkerConfig::default()
            })
            .unwrap();
            PollingWorker::new(
                pipeline,
                vec![RxPort {
                    port_index: 0,
                    queue: appliance.rx_queue(index).unwrap(),
                }],
                vec![appliance.tx_queue(index).unwrap()],
                tx_rings,
                vec![rx_ring],
                handle.reader(),
            )
        })
        .collect();
        // All traffic arrives on RX queue 0 (as from a NIC without RSS): worker 0 must hand
        // worker 1's flows over, and worker 1 sends them on its own TX queue.
        let mut wire_tx = outside.tx_queue(0).unwrap();
        let mut burst = MbufBurst::new();
        for sport in 0..32u16 {
            let mut m = pool.alloc().unwrap();
            assert!(m.set_data(&syn(41_000 + sport)));
            burst.push(m).unwrap();
        }
        assert_eq!(wire_tx.tx_burst(&mut burst), 32);
        assert_eq!(workers[0].poll_once(), 32);
        assert_eq!(
            workers[1].poll_once() as u64,
            workers[0].counters().handoff_out.get()
        );
        let handed = workers[0].counters().handoff_out.get();
        assert!(
            handed > 0 && handed < 32,
            "ownership splits flows between workers: {handed}"
        );
        assert_eq!(workers[1].counters().handoff_in.get(), handed);

        let mut received = [0u64; 2];
        for (q, count) in received.iter_mut().enumerate() {
            let mut rx = outside.rx_queue(q as u16).unwrap();
            let mut out = MbufBurst::new();
            while rx.rx_burst(&mut out) > 0 {
                for m in out.drain() {
                    let p = etherparse::SlicedPacket::from_ethernet(m.data()).unwrap();
                    let etherparse::NetSlice::Ipv4(ip) = p.net.unwrap() else {
                        panic!()
                    };
                    assert_eq!(ip.header().destination(), [198, 19, 0, 1]);
                    *count += 1;
                }
            }
        }
        assert_eq!(
            received,
            [32 - handed, handed],
            "each worker sent its own flows"
        );
        // Each worker counts what it sent, handed-over bursts included.
        let frame_len = syn(41_000).len() as u64;
        for (w, sent) in workers.iter().zip([32 - handed, handed]) {
            assert_eq!(w.counters().tx_packets.get(), sent);
            assert_eq!(w.counters().tx_bytes.get(), sent * frame_len);
        }
        assert_eq!(workers[0].counters().rx_bytes.get(), 32 * frame_len);
        let conns: u64 = workers
            .iter()
            .map(|w| w.counters().new_connections.get())
            .sum();
        assert_eq!(conns, 32);
    }
    assert_eq!(pool.in_use(), 0, "no mbuf leaked");
}

/// The byte counters count frames as they arrived and as they left: a frame that comes in
/// with a VLAN tag and leaves untagged is 4 bytes longer on the way in.
#[test]
fn received_bytes_are_counted_before_the_pipeline_retags() {
    let _ = eal();
    let pool = pool("retag", 1024);
    {
        let cfg = WorkerConfig {
            vlan_ports: vec![VlanPort { port: 0, vlan: 100 }],
            ..WorkerConfig::default()
        };
        let mut rings = one_worker("rt", &pool, cfg);
        let untagged = syn(40_000);
        let mut tagged = untagged[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
        tagged.extend_from_slice(&untagged[12..]);

        let mut burst = MbufBurst::new();
        let mut m = pool.alloc().unwrap();
        assert!(m.set_data(&tagged));
        burst.push(m).unwrap();
        assert_eq!(rings.wire_tx.tx_burst(&mut burst), 1);
        assert_eq!(rings.worker.poll_once(), 1);
        let mut out = MbufBurst::new();
        assert_eq!(rings.wire_rx.rx_burst(&mut out), 1);
        let sent = out.pop().unwrap();
        assert_eq!(sent.len(), untagged.len(), "the backend's side is untagged");
        assert_eq!(&sent.data()[..6], &BACKEND_MAC);

        let c = rings.worker.counters();
        assert_eq!(
            c.rx_bytes.get(),
            tagged.len() as u64,
            "as received, tag included"
        );
        assert_eq!(c.tx_bytes.get(), untagged.len() as u64, "as sent");
    }
    assert_eq!(pool.in_use(), 0, "no mbuf leaked");
}

#[test]
fn a_chained_mbuf_is_dropped_once_and_freed_whole() {
    let _ = eal();
    let pool = pool("chained", 1024);
    {
        // Kept whole: the ports (and the snapshot) must live as long as the queues.
        let mut rings = one_worker("ch", &pool, WorkerConfig::default());

        // A SYN to the VIP whose payload continues in a second segment: the first segment
        // alone would parse and open a connection.
        let frame = syn(40_000);
        let mut head = pool.alloc().unwrap();
        assert!(head.set_data(&frame));
        let mut tail = pool.alloc().unwrap();
        assert!(tail.set_data(&[0x5a; 100]));
        assert!(head.chain(tail).is_ok());
        assert_eq!(head.segments(), 2);
        assert_eq!(pool.in_use(), 2);
        let mut burst = MbufBurst::new();
        burst.push(head).unwrap();
        assert_eq!(rings.wire_tx.tx_burst(&mut burst), 1);
        assert_eq!(rings.worker.poll_once(), 1);
        let mut out = MbufBurst::new();
        assert_eq!(rings.wire_rx.rx_burst(&mut out), 0, "nothing sent");

        let c = rings.worker.counters();
        assert_eq!(c.rx_packets.get(), 1);
        assert_eq!(c.rx_bytes.get(), frame.len() as u64 + 100, "both segments");
        assert_eq!(c.drops(dataplane::pipeline::DropReason::MultiSegment), 1);
        assert_eq!(c.total_drops(), 1, "counted once");
        assert_eq!(c.new_connections.get(), 0);
        assert_eq!(rings.worker.pipeline().connections().len(), 0);
    }
    assert_eq!(pool.in_use(), 0, "both segments freed");
}

#[test]
fn removing_expired_connections_counts_as_busy_time() {
    let _ = eal();
    let pool = pool("expiry", 1024);
    {
        let config = WorkerConfig {
            timeouts: dataplane::conntrack::Timeouts {
                tcp_syn: 1,
                ..dataplane::conntrack::Timeouts::default()
            },
            ..WorkerConfig::default()
        };
        // Kept whole: the ports (and the snapshot) must live as long as the queues.
        let mut rings = one_worker("ex", &pool, config);
        let mut burst = MbufBurst::new();
        for sport in 40_000..40_008 {
            let mut m = pool.alloc().unwrap();
            assert!(m.set_data(&syn(sport)));
            burst.push(m).unwrap();
        }
        assert_eq!(rings.wire_tx.tx_burst(&mut burst), 8);
        assert_eq!(rings.worker.poll_once(), 8);
        assert_eq!(rings.wire_rx.rx_burst(&mut burst), 8);
        burst.clear();
        assert_eq!(rings.worker.pipeline().connections().len(), 8);

        // The SYN timeout is 1 ms: later idle polls remove the connections.
        let busy = rings.worker.busy_cycles();
        std::thread::sleep(std::time::Duration::from_millis(5));
        for _ in 0..100_000 {
            if rings.worker.pipeline().connections().is_empty() {
                break;
            }
            assert_eq!(rings.worker.poll_once(), 0);
        }
        assert_eq!(rings.worker.pipeline().connections().len(), 0, "expired");
        assert!(
            rings.worker.busy_cycles() > busy,
            "the polls that removed them were timed"
        );
        let busy = rings.worker.busy_cycles();
        assert_eq!(rings.worker.poll_once(), 0);
        assert_eq!(
            rings.worker.busy_cycles(),
            busy,
            "an idle poll adds no busy time"
        );
    }
    assert_eq!(pool.in_use(), 0, "no mbuf leaked");
}
