//! Shared set-up for tests that run the real DPDK EAL on virtual devices.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard, OnceLock};

use dataplane::dpdk::{Eal, EalArgs, Mempool, Port, PortConfig};

/// The EAL of this test binary: initialised once (DPDK allows no more), without hugepages,
/// with lcore 0 as main and lcore 1 as a worker.
pub fn eal() -> Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    *EAL.get_or_init(|| {
        let args = EalArgs::no_hugepages_test("sluice-test", 256, "0,1").log_level("warning");
        Eal::init(&args).expect("EAL init with --no-huge")
    })
}

/// Worker lcore 1 runs one job at a time; tests that launch on it take this lock.
pub fn worker_lcore() -> (u32, MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let lcore = *eal().worker_lcores().first().expect("a worker lcore");
    (lcore, guard)
}

pub fn pool(name: &str, size: u32) -> Mempool {
    // No per-lcore cache: test threads are not EAL lcores, and a cache would hide mbufs from
    // the in-use count.
    Mempool::new(&eal(), name, size, 0, 2176, None).expect("mempool")
}

/// A started port on a runtime vdev with one RX and one TX queue.
pub fn vdev_port(driver: &str, args: &str, pool: &Mempool) -> Port {
    let mut port = Port::create_vdev(&eal(), driver, args).expect("create vdev");
    let cfg = PortConfig {
        rx_descriptors: 512,
        tx_descriptors: 512,
        ..PortConfig::default()
    };
    port.configure(&cfg, pool).expect("configure");
    port.start().expect("start");
    port
}

/// Two started ports joined by rings, like a cable.
pub fn ring_pair(name: &str, pool: &Mempool) -> (Port, Port) {
    ring_pair_with_queues(name, pool, 1)
}

/// Two started ports joined by `queues` rings each way.
pub fn ring_pair_with_queues(name: &str, pool: &Mempool, queues: u16) -> (Port, Port) {
    let (mut a, mut b) = Port::ring_pair(&eal(), name, 1024, queues).expect("ring pair");
    let cfg = PortConfig {
        rx_queues: queues,
        tx_queues: queues,
        ..PortConfig::default()
    };
    for port in [&mut a, &mut b] {
        port.configure(&cfg, pool).expect("configure");
        port.start().expect("start");
    }
    (a, b)
}

/// A frame of `len` bytes whose payload encodes `seq`, so reordering or corruption shows.
pub fn test_frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(64)];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    f
}
