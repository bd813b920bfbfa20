//! The safe DPDK layer against the real EAL (`--no-huge`) on `net_ring` and `net_null` vdevs:
//! bytes survive a port pair unchanged, no mbuf ever leaks (also after a partial tx_burst),
//! a TX buffer keeps order between the packets it holds and whole bursts, and a panicking
//! worker is caught at the lcore boundary.

mod common;

use common::{eal, pool, ring_pair, test_frame, vdev_port, worker_lcore};
use dataplane::dpdk::{
    lcore, DpdkError, Eal, EalArgs, MbufBurst, Port, PortConfig, TxBuffer, MAX_BURST,
};

#[test]
fn second_eal_init_is_refused() {
    let _ = eal();
    let err = Eal::init(&EalArgs::new("again").no_huge()).unwrap_err();
    assert_eq!(err, DpdkError::AlreadyInitialised);
    assert!(Eal::get().is_some());
}

#[test]
fn frames_cross_a_net_ring_pair_byte_identical_and_in_order() {
    let pool = pool("pair", 2048);
    {
        let (mut a, mut b) = ring_pair("pair", &pool);
        let mut a_tx = a.tx_queue(0).unwrap();
        let mut b_rx = b.rx_queue(0).unwrap();

        let sizes = [60usize, 64, 128, 512, 1000, 1514];
        let mut sent = Vec::new();
        let mut burst = MbufBurst::new();
        for seq in 0..96u32 {
            let frame = test_frame(seq, sizes[seq as usize % sizes.len()]);
            let mut m = pool.alloc().expect("mbuf");
            assert!(m.set_data(&frame));
            burst.push(m).unwrap();
            sent.push(frame);
            if burst.is_full() {
                assert_eq!(a_tx.tx_burst(&mut burst), MAX_BURST);
            }
        }
        let rest = burst.len();
        assert_eq!(a_tx.tx_burst(&mut burst), rest);

        let mut received = Vec::new();
        let mut rx = MbufBurst::new();
        while b_rx.rx_burst(&mut rx) > 0 {
            received.extend(rx.drain().map(|m| m.data().to_vec()));
        }
        assert_eq!(received.len(), sent.len());
        assert_eq!(received, sent, "frames changed or reordered in flight");
        assert_eq!(pool.in_use(), 0, "mbufs in use after draining");

        // Frames left on the "cable" when the ports close are freed with the rings.
        let mut burst = MbufBurst::new();
        assert!(pool.alloc_bulk(&mut burst, 8));
        assert_eq!(a_tx.tx_burst(&mut burst), 8);
        assert_eq!(pool.in_use(), 8);
        drop(b_rx);
        drop(b);
        drop(a_tx);
        drop(a);
    }
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn partial_tx_burst_keeps_the_rest_and_nothing_leaks() {
    let pool = pool("partial", 4096);
    {
        // One port on a fresh ring: its 1024-slot ring fills and tx_burst takes only part.
        let mut port = vdev_port("net_ring", "nodeaction=partialR:0:CREATE", &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut rx = port.rx_queue(0).unwrap();
        let mut accepted = 0usize;
        let mut partial_seen = false;
        for _ in 0..64 {
            let mut burst = MbufBurst::new();
            assert!(pool.alloc_bulk(&mut burst, MAX_BURST));
            let taken = tx.tx_burst(&mut burst);
            accepted += taken;
            if taken < MAX_BURST {
                partial_seen = true;
                assert_eq!(
                    burst.len(),
                    MAX_BURST - taken,
                    "untaken mbufs stay in the burst"
                );
                // Dropping the burst frees the untaken mbufs.
            }
        }
        assert!(partial_seen, "the ring never filled");
        assert_eq!(
            pool.in_use() as usize,
            accepted,
            "only the mbufs in the ring are in use"
        );

        // A TxBuffer frees and counts what the driver refuses.
        let mut buffer = TxBuffer::new();
        for _ in 0..MAX_BURST {
            buffer.push(&mut tx, pool.alloc().unwrap());
        }
        buffer.flush(&mut tx);
        assert_eq!(buffer.sent() + buffer.dropped(), MAX_BURST as u64);
        accepted += buffer.sent() as usize;
        assert_eq!(pool.in_use() as usize, accepted);

        // Drain the ring.
        let mut got = 0;
        let mut burst = MbufBurst::new();
        loop {
            let n = rx.rx_burst(&mut burst);
            if n == 0 {
                break;
            }
            got += n;
            burst.clear();
        }
        assert_eq!(got, accepted);
    }
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn a_tx_buffer_sends_whole_bursts_in_order_behind_what_it_holds() {
    let pool = pool("sendburst", 4096);
    {
        let (mut a, mut b) = ring_pair("sendburst", &pool);
        let mut tx = a.tx_queue(0).unwrap();
        let mut rx = b.rx_queue(0).unwrap();
        let frames: Vec<Vec<u8>> = (0..40u32).map(|seq| test_frame(seq, 64)).collect();
        let burst_of = |range: std::ops::Range<usize>| {
            let mut burst = MbufBurst::new();
            for frame in &frames[range] {
                let mut m = pool.alloc().expect("mbuf");
                assert!(m.set_data(frame));
                burst.push(m).unwrap();
            }
            burst
        };
        let mut buffer = TxBuffer::new();
        // Three packets buffered one by one, then a burst: it queues behind them.
        for m in burst_of(0..3).drain() {
            buffer.push(&mut tx, m);
        }
        let mut burst = burst_of(3..10);
        buffer.send_burst(&mut tx, &mut burst);
        assert!(burst.is_empty());
        assert_eq!((buffer.len(), buffer.sent()), (10, 0), "held until a flush");
        buffer.flush(&mut tx);
        // With nothing buffered, a burst goes out at once.
        let mut burst = burst_of(10..40);
        buffer.send_burst(&mut tx, &mut burst);
        assert!(burst.is_empty() && buffer.is_empty());
        assert_eq!((buffer.sent(), buffer.dropped()), (40, 0));

        let mut received = Vec::new();
        let mut got = MbufBurst::new();
        while rx.rx_burst(&mut got) > 0 {
            received.extend(got.drain().map(|m| m.data().to_vec()));
        }
        assert_eq!(received, frames, "frames reordered or changed");
    }
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn a_tx_buffer_frees_and_counts_what_a_full_queue_refuses_of_a_burst() {
    let pool = pool("sendfull", 4096);
    {
        // One port on a fresh 1024-slot ring that nobody drains.
        let mut port = vdev_port("net_ring", "nodeaction=sendfullR:0:CREATE", &pool);
        let mut tx = port.tx_queue(0).unwrap();
        let mut rx = port.rx_queue(0).unwrap();
        let mut buffer = TxBuffer::new();
        for _ in 0..40 {
            let mut burst = MbufBurst::new();
            assert!(pool.alloc_bulk(&mut burst, MAX_BURST));
            buffer.send_burst(&mut tx, &mut burst);
            assert!(burst.is_empty(), "refused mbufs are freed, not left behind");
        }
        assert_eq!(buffer.sent() + buffer.dropped(), 40 * MAX_BURST as u64);
        assert!(buffer.dropped() > 0, "the ring never filled");
        assert_eq!(
            pool.in_use() as u64,
            buffer.sent(),
            "only the ring holds mbufs"
        );
        let mut got = MbufBurst::new();
        while rx.rx_burst(&mut got) > 0 {
            got.clear();
        }
    }
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn null_ports_forward_on_a_worker_lcore_without_leaking() {
    let pool = pool("nullfwd", 8192);
    let (lcore_id, _guard) = worker_lcore();
    {
        let mut p0 = vdev_port("net_null", "", &pool);
        let mut p1 = vdev_port("net_null", "", &pool);
        let mut rx = p0.rx_queue(0).unwrap();
        let mut tx = p1.tx_queue(0).unwrap();
        let stop = lcore::StopFlag::new();
        let worker_stop = stop.clone();
        let job = lcore::launch(&eal(), lcore_id, move || {
            let mut burst = MbufBurst::new();
            let mut forwarded = 0u64;
            while !worker_stop.should_stop() && forwarded < 1_000_000 {
                if rx.rx_burst(&mut burst) > 0 {
                    forwarded += tx.tx_burst(&mut burst) as u64;
                    burst.clear();
                }
            }
            forwarded
        })
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.stop();
        let forwarded = job.join().expect("worker ran");
        assert!(forwarded > 0);
        let stats = p1.stats().unwrap();
        assert_eq!(stats.tx_packets, forwarded);
        drop(p0);
        drop(p1);
    }
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn a_panicking_worker_is_caught_and_reported() {
    let (lcore_id, _guard) = worker_lcore();
    let job = lcore::launch(&eal(), lcore_id, || -> u32 {
        panic!("boom in the fast path")
    })
    .unwrap();
    let err = job.join().unwrap_err();
    assert_eq!(err.lcore, lcore_id);
    assert!(err.message.contains("boom in the fast path"), "{err}");
    // The lcore is usable again afterwards.
    let job = lcore::launch(&eal(), lcore_id, || 7u32).unwrap();
    assert_eq!(job.join().unwrap(), 7);
}

#[test]
fn queues_are_handed_out_once_and_bad_configs_are_refused() {
    let pool = pool("queues", 1024);
    {
        let mut port = vdev_port("net_null", "", &pool);
        let _rx = port.rx_queue(0).unwrap();
        assert!(matches!(port.rx_queue(0), Err(DpdkError::Busy(_))));
        assert!(matches!(
            port.tx_queue(5),
            Err(DpdkError::InvalidArgument(_))
        ));
        let info = port.info().unwrap();
        assert_eq!(info.rss_enabled, 0, "RSS is off with one queue");
        assert!(info.driver.contains("null"), "{}", info.driver);
        assert!(matches!(
            Port::by_name(&eal(), "no_such_port"),
            Err(DpdkError::PortNotFound(_))
        ));
    }
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn an_mbuf_reports_whether_the_nic_verified_its_ip_checksum_and_found_it_bad() {
    use dataplane::pipeline::PacketBuf;
    // RTE_MBUF_F_RX_IP_CKSUM_*: unknown 0, bad 1 << 4, good 1 << 7, none both.
    const BAD: u64 = 1 << 4;
    const GOOD: u64 = 1 << 7;
    let pool = pool("cksum", 64);
    {
        let mut m = pool.alloc().expect("mbuf");
        assert!(m.set_data(&test_frame(1, 60)));
        for (flags, bad, checked) in [
            (0, false, false),
            (BAD, true, true),
            (GOOD, false, true),
            (BAD | GOOD, false, true),
        ] {
            // Other offload flags alongside change nothing.
            m.set_ol_flags(flags | 1 << 1);
            assert_eq!(m.rx_ip_checksum_bad(), bad, "ol_flags {flags:#x}");
            assert_eq!(PacketBuf::rx_ip_checksum_bad(&m), bad);
            // Unknown: the pipeline verifies the header itself.
            assert_eq!(m.rx_ip_checksum_checked(), checked, "ol_flags {flags:#x}");
            assert_eq!(PacketBuf::rx_ip_checksum_checked(&m), checked);
        }
        m.set_ol_flags(BAD);
        drop(m);
        // A PMD's flags do not outlive the packet: the pool hands the mbuf out reset.
        let again = pool.alloc().expect("mbuf");
        assert!(!again.rx_ip_checksum_bad());
        assert!(!again.rx_ip_checksum_checked());
    }
    assert_eq!(pool.in_use(), 0);
}

/// An IPv4/UDP frame 198.18.0.1 -> 198.18.0.2 with a correct header checksum, from etherparse.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .udp(40000, 9);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).expect("frame");
    frame
}

#[test]
fn a_tap_port_with_rx_checksum_offload_marks_a_bad_ipv4_header_checksum() {
    // net_tap verifies checksums in its receive path when the offload is on: the real thing
    // the daemon relies on, with the kernel's side of the tap as the sender.
    let pool = pool("tapcksum", 2048);
    let iface = format!("sltapck{}", std::process::id() % 10000);
    {
        let mut port =
            Port::create_vdev(&eal(), "net_tap", &format!("iface={iface}")).expect("net_tap");
        let cfg = PortConfig {
            rx_descriptors: 256,
            tx_descriptors: 256,
            rx_checksum: true,
            ..PortConfig::default()
        };
        let info = port.configure(&cfg, &pool).expect("configure");
        assert!(info.rx_ip_checksum_offload(), "net_tap offers the offload");
        port.start().expect("start");
        let status = std::process::Command::new("ip")
            .args(["link", "set", &iface, "up"])
            .status()
            .expect("ip");
        assert!(status.success());
        let good = udp_frame(b"good checksum");
        let mut bad = udp_frame(b"bad checksum!");
        bad[24] ^= 0x55; // the IPv4 header checksum
        let sent = std::process::Command::new("python3")
            .args([
                "-c",
                "import socket, sys\n\
                 s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
                 s.bind((sys.argv[1], 0))\n\
                 [s.send(bytes.fromhex(h)) for h in sys.argv[2:]]",
                &iface,
                &hex(&good),
                &hex(&bad),
            ])
            .status()
            .expect("python3");
        assert!(sent.success());
        let mut rx = port.rx_queue(0).expect("rx queue");
        let mut seen = Vec::new();
        let mut burst = MbufBurst::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 2 && std::time::Instant::now() < deadline {
            rx.rx_burst(&mut burst);
            // The kernel sends its own frames on a fresh link (IPv6 neighbour discovery).
            seen.extend(
                burst
                    .drain()
                    .filter(|m| m.data() == &good[..] || m.data() == &bad[..])
                    .map(|m| (m.data() == &good[..], m.rx_ip_checksum_bad())),
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            seen,
            [(true, false), (false, true)],
            "(good frame, marked bad)"
        );
        drop(rx);
        drop(port);
        // A device without the offload reports it off when asked (the daemon logs that).
        let mut ring =
            Port::create_vdev(&eal(), "net_ring", "nodeaction=tapck:0:CREATE").expect("net_ring");
        let info = ring.configure(&cfg, &pool).expect("configure");
        assert!(!info.rx_ip_checksum_offload());
    }
    assert_eq!(pool.in_use(), 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
