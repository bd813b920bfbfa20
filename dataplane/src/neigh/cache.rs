//! The neighbour cache every worker shares: learned IP -> MAC bindings per port.
//!
//! Fixed capacity (a power of two, allocated once), open addressing with a short probe window,
//! and one [`SeqLock`] per slot: readers never block and never write shared memory; a writer
//! (the worker that received an ARP reply or a neighbour advertisement) that finds the slot
//! busy gives up (the next ARP packet of that host teaches it again).
//!
//! `version` changes when a binding changes MAC or port, or disappears: workers compare it once
//! per burst and flush their per-destination egress caches, so a moved or expired neighbour is
//! never used from a stale cache. New bindings and refreshes leave it alone (a miss is never
//! cached, so nothing has to be flushed for a new entry).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::flow::Addr;
use crate::seqlock::SeqLock;

/// Slots probed from a key's home slot.
const PROBE: usize = 8;

const FLAG_VALID: u32 = 1;

#[derive(Debug, Default)]
struct Slot {
    lock: SeqLock,
    flags: AtomicU32,
    addr_hi: AtomicU64,
    addr_lo: AtomicU64,
    /// MAC in the high 48 bits, port in the low 16.
    mac_port: AtomicU64,
    /// Tick (ms) of the last confirmation (reply, advertisement, request from the host).
    confirmed: AtomicU32,
    /// Tick of the last refresh probe the sweeper sent; written by the sweeper only.
    probed: AtomicU32,
    /// Refresh probes sent since the last confirmation; written by the sweeper only.
    probes: AtomicU32,
}

/// A binding read from the cache.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub addr: Addr,
    pub port: u16,
    pub mac: [u8; 6],
    /// Tick (ms) of the last confirmation.
    pub confirmed: u32,
}

/// What [`NeighbourCache::learn`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Learned {
    /// A new binding.
    New,
    /// An existing binding, confirmed again with the same MAC.
    Refreshed,
    /// An existing binding whose MAC changed.
    Changed,
    /// Not stored: the slot was being written by another worker, or every slot in the probe
    /// window holds a younger binding than the one it would evict.
    Busy,
}

/// Refresh and expiry of learned bindings, in milliseconds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NeighbourTimers {
    /// A binding older than this is probed again (unicast ARP request / NS) while in use.
    pub refresh_after_ms: u32,
    /// A binding not confirmed for this long is removed.
    pub expire_after_ms: u32,
    /// Between two refresh probes, and the first retry of an unanswered resolution (doubling).
    pub retry_ms: u32,
    /// Requests sent for one unresolved next hop before its waiting packets are dropped.
    pub max_attempts: u32,
}

impl NeighbourTimers {
    /// Linux-like: three probes, about a minute of reachability without refresh.
    pub const DEFAULT: NeighbourTimers = NeighbourTimers {
        refresh_after_ms: 60_000,
        expire_after_ms: 75_000,
        retry_ms: 500,
        max_attempts: 3,
    };
}

impl Default for NeighbourTimers {
    fn default() -> Self {
        NeighbourTimers::DEFAULT
    }
}

/// The shared cache (one per process, in an `Arc`).
#[derive(Debug)]
pub struct NeighbourCache {
    slots: Box<[Slot]>,
    mask: usize,
    version: AtomicU64,
    /// Next slot the sweeper examines.
    cursor: AtomicU32,
}

/// A slot's fields as read under its sequence.
#[derive(Copy, Clone)]
struct Snapshot {
    valid: bool,
    binding: Binding,
}

fn pack(mac: &[u8; 6], port: u16) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(mac);
    b[6..].copy_from_slice(&port.to_be_bytes());
    u64::from_be_bytes(b)
}

fn unpack(v: u64) -> ([u8; 6], u16) {
    let b = v.to_be_bytes();
    (
        [b[0], b[1], b[2], b[3], b[4], b[5]],
        u16::from_be_bytes([b[6], b[7]]),
    )
}

/// Whether tick `now` is at least `span` ms after `then` (ticks wrap after 49 days).
#[inline]
pub(crate) fn elapsed(now: u32, then: u32, span: u32) -> bool {
    now.wrapping_sub(then) >= span && now.wrapping_sub(then) < u32::MAX / 2
}

impl NeighbourCache {
    /// A cache of at least `capacity` slots (rounded up to a power of two, at least 64).
    pub fn new(capacity: usize) -> NeighbourCache {
        let size = capacity.max(64).next_power_of_two();
        NeighbourCache {
            slots: (0..size).map(|_| Slot::default()).collect(),
            mask: size - 1,
            version: AtomicU64::new(0),
            cursor: AtomicU32::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Changes when a binding moved or disappeared (see the module docs).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    #[inline]
    fn home(&self, addr: &Addr, port: u16) -> usize {
        let a = u128::from_ne_bytes(addr.0);
        let h = crate::flow::mix((a >> 64) as u64 ^ u64::from(port), a as u64);
        (h as usize) & self.mask
    }

    /// A consistent read of slot `i`, or `None` if it stayed busy.
    #[inline]
    fn read(&self, i: usize) -> Option<Snapshot> {
        let slot = self.slots.get(i & self.mask)?;
        let (flags, hi, lo, mac_port, confirmed) = slot.lock.read(|| {
            (
                slot.flags.load(Ordering::Relaxed),
                slot.addr_hi.load(Ordering::Relaxed),
                slot.addr_lo.load(Ordering::Relaxed),
                slot.mac_port.load(Ordering::Relaxed),
                slot.confirmed.load(Ordering::Relaxed),
            )
        })?;
        let (mac, port) = unpack(mac_port);
        let mut addr = [0u8; 16];
        addr[..8].copy_from_slice(&hi.to_be_bytes());
        addr[8..].copy_from_slice(&lo.to_be_bytes());
        Some(Snapshot {
            valid: flags & FLAG_VALID != 0,
            binding: Binding {
                addr: Addr(addr),
                port,
                mac,
                confirmed,
            },
        })
    }

    /// The binding of `addr` on `port`, if learned and not expired.
    #[inline]
    pub fn lookup(&self, addr: &Addr, port: u16) -> Option<Binding> {
        let home = self.home(addr, port);
        for i in home..home + PROBE {
            if let Some(s) = self.read(i) {
                if s.valid && s.binding.addr == *addr && s.binding.port == port {
                    return Some(s.binding);
                }
            }
        }
        None
    }

    /// Writes slot `i` under its seqlock; false if another writer holds it.
    fn write(&self, i: usize, valid: bool, binding: &Binding) -> bool {
        let Some(slot) = self.slots.get(i & self.mask) else {
            return false;
        };
        let a = u128::from_be_bytes(binding.addr.0);
        slot.lock.try_write(|| {
            slot.flags
                .store(if valid { FLAG_VALID } else { 0 }, Ordering::Relaxed);
            slot.addr_hi.store((a >> 64) as u64, Ordering::Relaxed);
            slot.addr_lo.store(a as u64, Ordering::Relaxed);
            slot.mac_port
                .store(pack(&binding.mac, binding.port), Ordering::Relaxed);
            slot.confirmed.store(binding.confirmed, Ordering::Relaxed);
            slot.probes.store(0, Ordering::Relaxed);
        })
    }

    /// Learns (or confirms) that `addr` on `port` is at `mac`, at tick `now`.
    pub fn learn(&self, addr: &Addr, port: u16, mac: [u8; 6], now: u32) -> Learned {
        let home = self.home(addr, port);
        let mut free = None;
        let mut oldest: Option<(usize, u32)> = None;
        for i in home..home + PROBE {
            let Some(s) = self.read(i) else { continue };
            if !s.valid {
                free.get_or_insert(i);
                continue;
            }
            if s.binding.addr == *addr && s.binding.port == port {
                let changed = s.binding.mac != mac;
                let binding = Binding {
                    confirmed: now,
                    mac,
                    ..s.binding
                };
                if !self.write(i, true, &binding) {
                    return Learned::Busy;
                }
                if changed {
                    self.version.fetch_add(1, Ordering::AcqRel);
                    return Learned::Changed;
                }
                return Learned::Refreshed;
            }
            let age = now.wrapping_sub(s.binding.confirmed);
            if oldest.is_none_or(|(_, a)| age > a) {
                oldest = Some((i, age));
            }
        }
        let binding = Binding {
            addr: *addr,
            port,
            mac,
            confirmed: now,
        };
        let (target, evicts) = match (free, oldest) {
            (Some(i), _) => (i, false),
            (None, Some((i, _))) => (i, true),
            (None, None) => return Learned::Busy,
        };
        if !self.write(target, true, &binding) {
            return Learned::Busy;
        }
        if evicts {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        Learned::New
    }

    /// Forgets the binding of `addr` on `port`; true if there was one.
    pub fn forget(&self, addr: &Addr, port: u16) -> bool {
        let home = self.home(addr, port);
        for i in home..home + PROBE {
            if let Some(s) = self.read(i) {
                if s.valid && s.binding.addr == *addr && s.binding.port == port {
                    let removed = self.write(i, false, &s.binding);
                    if removed {
                        self.version.fetch_add(1, Ordering::AcqRel);
                    }
                    return removed;
                }
            }
        }
        false
    }

    /// Examines the next `budget` slots (round robin over the table): removes bindings not
    /// confirmed for `expire_after_ms`, and calls `probe` for those older than
    /// `refresh_after_ms` whose last probe is `retry_ms` ago. Returns the bindings removed.
    /// One worker sweeps (the probe bookkeeping has a single writer).
    pub fn sweep(
        &self,
        now: u32,
        budget: usize,
        timers: &NeighbourTimers,
        mut probe: impl FnMut(&Binding),
    ) -> usize {
        let mut removed = 0;
        let start = self.cursor.load(Ordering::Relaxed) as usize;
        for i in start..start + budget.min(self.slots.len()) {
            let Some(s) = self.read(i) else { continue };
            if !s.valid {
                continue;
            }
            let b = s.binding;
            if elapsed(now, b.confirmed, timers.expire_after_ms) {
                if self.write(i, false, &b) {
                    self.version.fetch_add(1, Ordering::AcqRel);
                    removed += 1;
                }
                continue;
            }
            if elapsed(now, b.confirmed, timers.refresh_after_ms) {
                let Some(slot) = self.slots.get(i & self.mask) else {
                    continue;
                };
                let probes = slot.probes.load(Ordering::Relaxed);
                let last = slot.probed.load(Ordering::Relaxed);
                if probes == 0 || elapsed(now, last, timers.retry_ms) {
                    slot.probed.store(now, Ordering::Relaxed);
                    slot.probes.store(probes + 1, Ordering::Relaxed);
                    probe(&b);
                }
            }
        }
        self.cursor
            .store(((start + budget) & self.mask) as u32, Ordering::Relaxed);
        removed
    }

    /// Every valid binding (for the API; not for the packet path).
    pub fn bindings(&self) -> Vec<Binding> {
        (0..self.slots.len())
            .filter_map(|i| self.read(i))
            .filter(|s| s.valid)
            .map(|s| s.binding)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn a(n: u32) -> Addr {
        Addr::from_v4(n.to_be_bytes())
    }

    #[test]
    fn learns_refreshes_changes_and_expires() {
        let c = NeighbourCache::new(64);
        let v0 = c.version();
        assert_eq!(c.learn(&a(1), 0, [2, 0, 0, 0, 0, 1], 10), Learned::New);
        assert_eq!(
            c.version(),
            v0,
            "a new binding does not flush egress caches"
        );
        assert_eq!(c.lookup(&a(1), 0).unwrap().mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(c.lookup(&a(1), 1), None, "bindings are per port");
        assert_eq!(
            c.learn(&a(1), 0, [2, 0, 0, 0, 0, 1], 20),
            Learned::Refreshed
        );
        assert_eq!(c.lookup(&a(1), 0).unwrap().confirmed, 20);
        assert_eq!(c.learn(&a(1), 0, [2, 0, 0, 0, 0, 9], 30), Learned::Changed);
        assert_ne!(c.version(), v0);
        let timers = NeighbourTimers {
            refresh_after_ms: 100,
            expire_after_ms: 200,
            retry_ms: 50,
            max_attempts: 3,
        };
        let mut probed = Vec::new();
        assert_eq!(c.sweep(140, 64, &timers, |b| probed.push(b.addr)), 0);
        assert_eq!(probed, [a(1)]);
        assert_eq!(c.sweep(150, 64, &timers, |b| probed.push(b.addr)), 0);
        assert_eq!(probed.len(), 1, "retry interval not over");
        let v1 = c.version();
        assert_eq!(c.sweep(230, 64, &timers, |_| {}), 1);
        assert_eq!(c.lookup(&a(1), 0), None);
        assert_ne!(c.version(), v1);
    }

    #[test]
    fn full_probe_window_evicts_the_oldest() {
        let c = NeighbourCache::new(64);
        for n in 0..1000u32 {
            assert_ne!(c.learn(&a(n), 0, [2, 0, 0, 0, 0, 1], n), Learned::Busy);
        }
        // The newest are all there.
        for n in 990..1000u32 {
            assert!(c.lookup(&a(n), 0).is_some(), "{n}");
        }
        assert!(c.bindings().len() <= 64);
    }

    /// Readers on other threads never see a torn binding while writers change it.
    #[test]
    fn concurrent_readers_see_consistent_bindings() {
        let c = Arc::new(NeighbourCache::new(64));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    c.learn(&a(7), 3, [n; 6], u32::from(n));
                }
            })
        };
        for _ in 0..200_000 {
            if let Some(b) = c.lookup(&a(7), 3) {
                assert!(b.mac.iter().all(|&x| x == b.mac[0]), "torn {:?}", b.mac);
                assert_eq!(b.confirmed, u32::from(b.mac[0]));
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }
}
