//! Full-NAT source ports: the partition of the port range among workers, and each worker's
//! allocator.
//!
//! **Partition.** The configured range (default 1024..=65535) is cut into `workers` contiguous
//! blocks whose sizes differ by at most one (the first `len % workers` blocks get one port
//! more). The owner of a port is then computable from the port alone, which is what lets a
//! reply find the worker that owns its connection. Contiguous blocks were chosen over
//! `port % workers` because a worker's ports are then one range: easy to read in a capture and
//! expressible as a single NIC flow rule (port range → queue) where a NIC supports one.
//!
//! **Uniqueness rule.** Within one worker's block, a port is handed out at most once per
//! (SNAT address, protocol) at a time; blocks are disjoint, so across the appliance a
//! (SNAT address, port, protocol) triple names one connection. That is stronger than needed
//! (reuse per backend would be legal) but makes every reply key unique by construction. The
//! price is a limit of ~64 K concurrent full-NAT connections per SNAT address and protocol for
//! the whole appliance: add SNAT addresses to go beyond.
//!
//! **Allocation** is a FIFO ring of free ports per (address, protocol), shuffled at start: O(1),
//! no allocation, and a released port is reused as late as possible (the backend may still hold
//! the old tuple in TIME_WAIT) and unpredictably (RFC 6056).

use crate::flow::{Addr, Proto};
use crate::mem::prefetch;
use core::ops::RangeInclusive;

/// Why a port partition cannot be built.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PartitionError {
    #[error("no workers")]
    NoWorkers,
    #[error("empty port range {first}..={last}")]
    EmptyRange { first: u16, last: u16 },
    #[error("{workers} workers but only {ports} ports: every worker needs at least one")]
    TooFewPorts { workers: u16, ports: u32 },
}

/// The SNAT port range cut into one contiguous block per worker.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortPartition {
    first: u16,
    last: u16,
    workers: u16,
}

impl PortPartition {
    pub const DEFAULT_FIRST: u16 = 1024;
    pub const DEFAULT_LAST: u16 = 65535;

    /// Partition `first..=last` among `workers`.
    pub fn new(first: u16, last: u16, workers: u16) -> Result<PortPartition, PartitionError> {
        if workers == 0 {
            return Err(PartitionError::NoWorkers);
        }
        if first > last {
            return Err(PartitionError::EmptyRange { first, last });
        }
        let ports = u32::from(last) - u32::from(first) + 1;
        if ports < u32::from(workers) {
            return Err(PartitionError::TooFewPorts { workers, ports });
        }
        Ok(PortPartition {
            first,
            last,
            workers,
        })
    }

    /// The default range 1024..=65535 among `workers`.
    pub fn with_default_range(workers: u16) -> Result<PortPartition, PartitionError> {
        PortPartition::new(Self::DEFAULT_FIRST, Self::DEFAULT_LAST, workers)
    }

    #[inline]
    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// The whole range.
    pub fn range(&self) -> RangeInclusive<u16> {
        self.first..=self.last
    }

    #[inline]
    fn port_count(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// (ports per worker, workers that get one more): the first `extra` blocks have `base + 1`.
    #[inline]
    fn split(&self) -> (u32, u32) {
        let workers = u32::from(self.workers.max(1));
        let ports = self.port_count();
        (ports / workers, ports % workers)
    }

    /// The worker whose block holds `port`, or `None` outside the range.
    #[inline]
    pub fn owner_of_port(&self, port: u16) -> Option<u16> {
        if port < self.first || port > self.last {
            return None;
        }
        let offset = u32::from(port - self.first);
        let (base, extra) = self.split();
        let long_blocks = extra * (base + 1);
        let worker = if offset < long_blocks {
            offset / (base + 1)
        } else {
            extra + (offset - long_blocks).checked_div(base)?
        };
        u16::try_from(worker).ok()
    }

    /// The block of `worker`, or `None` if there is no such worker.
    pub fn ports_of(&self, worker: u16) -> Option<RangeInclusive<u16>> {
        if worker >= self.workers {
            return None;
        }
        let w = u32::from(worker);
        let (base, extra) = self.split();
        let start = w * base + w.min(extra);
        let len = base + u32::from(w < extra);
        let first = u32::from(self.first) + start;
        let last = first + len - 1;
        Some(u16::try_from(first).ok()?..=u16::try_from(last).ok()?)
    }
}

/// Why a port allocator cannot be built.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SnatError {
    #[error("worker {worker} is not one of the partition's {workers} workers")]
    NoSuchWorker { worker: u16, workers: u16 },
    #[error("no SNAT addresses")]
    NoAddresses,
    #[error("SNAT address listed twice")]
    DuplicateAddress,
}

/// An allocated SNAT source: address and port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SnatLease {
    pub addr: Addr,
    pub port: u16,
}

/// Protocols with their own port space. ICMP and ICMPv6 share one (the echo identifier).
const PROTO_SPACES: usize = 3;

#[inline]
fn proto_space(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 0,
        Proto::Udp => 1,
        Proto::Icmp | Proto::Icmpv6 => 2,
    }
}

/// Free ports of one (address, protocol): a FIFO ring of port offsets in the worker's block,
/// and an in-use bitmap that catches double and foreign releases.
#[derive(Clone, Debug)]
struct PortPool {
    ring: Vec<u16>,
    head: usize,
    free: usize,
    in_use: Vec<u64>,
}

impl PortPool {
    fn new(ports: usize, rng: &mut SplitMix) -> PortPool {
        let mut ring: Vec<u16> = (0..ports).map(|p| p as u16).collect();
        // Fisher–Yates: the order ports are first handed out in is unpredictable.
        for i in (1..ring.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            ring.swap(i, j);
        }
        PortPool {
            ring,
            head: 0,
            free: ports,
            in_use: vec![0; ports.div_ceil(64)],
        }
    }

    #[inline]
    fn bit(&self, offset: u16) -> Option<(usize, u64)> {
        let word = usize::from(offset) / 64;
        (word < self.in_use.len()).then_some((word, 1u64 << (offset % 64)))
    }

    #[inline]
    fn allocate(&mut self) -> Option<u16> {
        if self.free == 0 {
            return None;
        }
        let offset = *self.ring.get(self.head)?;
        let (word, mask) = self.bit(offset)?;
        self.head = if self.head + 1 == self.ring.len() {
            0
        } else {
            self.head + 1
        };
        self.free -= 1;
        if let Some(w) = self.in_use.get_mut(word) {
            *w |= mask;
        }
        // The next port from this pool is known: start loading its in-use word, a random line
        // of the bitmap that would otherwise be a cache miss on that allocation.
        if let Some(w) = self
            .ring
            .get(self.head)
            .and_then(|next| self.in_use.get(usize::from(*next) / 64))
        {
            prefetch(w);
        }
        Some(offset)
    }

    /// Marks `offset` free; `false` (and no change) when it is not allocated.
    #[inline]
    fn clear_in_use(&mut self, offset: u16) -> bool {
        let Some((word, mask)) = self.bit(offset) else {
            return false;
        };
        match self.in_use.get_mut(word) {
            Some(w) if *w & mask != 0 => {
                *w &= !mask;
                true
            }
            _ => false,
        }
    }

    /// Takes back the port [`PortPool::allocate`] just handed out, unused: it becomes the next
    /// one handed out again, so an allocation undone leaves the pool as it was.
    #[inline]
    fn unallocate(&mut self, offset: u16) -> bool {
        if !self.clear_in_use(offset) {
            return false;
        }
        // The place before the head is vacant because free < len here.
        self.head = self
            .head
            .checked_sub(1)
            .unwrap_or(self.ring.len().saturating_sub(1));
        if let Some(slot) = self.ring.get_mut(self.head) {
            *slot = offset;
        }
        self.free += 1;
        true
    }

    #[inline]
    fn release(&mut self, offset: u16) -> bool {
        if !self.clear_in_use(offset) {
            return false;
        }
        // The tail is `free` places after the head; it is vacant because free < len here.
        let tail = (self.head + self.free)
            .checked_rem(self.ring.len())
            .unwrap_or(0);
        if let Some(slot) = self.ring.get_mut(tail) {
            *slot = offset;
        }
        self.free += 1;
        true
    }
}

/// SplitMix64, to shuffle the initial port order from a seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One worker's full-NAT source ports on a set of SNAT addresses (one SNAT pool).
#[derive(Clone, Debug)]
pub struct SnatPorts {
    addrs: Vec<Addr>,
    worker: u16,
    /// First port of this worker's block.
    first: u16,
    /// Pools indexed by `address index * PROTO_SPACES + protocol space`.
    pools: Vec<PortPool>,
}

impl SnatPorts {
    /// The allocator of `worker` for `addrs`, with every port of its block free.
    pub fn new(
        addrs: &[Addr],
        partition: &PortPartition,
        worker: u16,
        seed: u64,
    ) -> Result<SnatPorts, SnatError> {
        let block = partition.ports_of(worker).ok_or(SnatError::NoSuchWorker {
            worker,
            workers: partition.workers(),
        })?;
        if addrs.is_empty() {
            return Err(SnatError::NoAddresses);
        }
        for (i, a) in addrs.iter().enumerate() {
            if addrs.iter().skip(i + 1).any(|b| b == a) {
                return Err(SnatError::DuplicateAddress);
            }
        }
        let ports = usize::from(block.end() - block.start()) + 1;
        let mut rng = SplitMix(seed ^ u64::from(worker).wrapping_mul(0xa076_1d64_78bd_642f));
        let pools = (0..addrs.len() * PROTO_SPACES)
            .map(|_| PortPool::new(ports, &mut rng))
            .collect();
        Ok(SnatPorts {
            addrs: addrs.to_vec(),
            worker,
            first: *block.start(),
            pools,
        })
    }

    #[inline]
    pub fn worker(&self) -> u16 {
        self.worker
    }

    pub fn addrs(&self) -> &[Addr] {
        &self.addrs
    }

    /// This worker's block of ports.
    pub fn ports(&self) -> RangeInclusive<u16> {
        let len = self.pools.first().map_or(0, |p| p.ring.len());
        let last = usize::from(self.first) + len.saturating_sub(1);
        self.first..=u16::try_from(last).unwrap_or(u16::MAX)
    }

    /// A free port for `proto`. `hint` (e.g. a hash of the client) picks the first address to
    /// try, spreading clients over the addresses; the others are tried in turn when it is
    /// exhausted. `None` when every address is exhausted (the caller counts it).
    #[inline]
    pub fn allocate(&mut self, proto: Proto, hint: u64) -> Option<SnatLease> {
        let n = self.addrs.len();
        let start = ((u128::from(hint) * n as u128) >> 64) as usize;
        (0..n).find_map(|k| {
            let index = (start + k) % n;
            let port = self.allocate_on(index, proto)?;
            Some(SnatLease {
                addr: *self.addrs.get(index)?,
                port,
            })
        })
    }

    /// A free port on the address at `addr_index` of [`SnatPorts::addrs`].
    #[inline]
    pub fn allocate_on(&mut self, addr_index: usize, proto: Proto) -> Option<u16> {
        let pool = addr_index
            .checked_mul(PROTO_SPACES)
            .and_then(|i| self.pools.get_mut(i + proto_space(proto)))?;
        let offset = pool.allocate()?;
        self.first.checked_add(offset)
    }

    /// Undo the allocation of a port that was never used: unlike [`SnatPorts::release`] (to the
    /// back of the queue), the port is the next one handed out again. `false` as for `release`.
    pub fn unallocate(&mut self, addr: &Addr, proto: Proto, port: u16) -> bool {
        self.pool_of(addr, proto, port)
            .is_some_and(|(pool, offset)| pool.unallocate(offset))
    }

    /// Return a port. `false` (and no change) when it is not this worker's, not on one of its
    /// addresses, or not allocated: a bug or a foreign connection, never a reason to panic.
    pub fn release(&mut self, addr: &Addr, proto: Proto, port: u16) -> bool {
        self.pool_of(addr, proto, port)
            .is_some_and(|(pool, offset)| pool.release(offset))
    }

    /// The pool that `port` on `addr` for `proto` comes from, and the port's offset in it.
    fn pool_of(&mut self, addr: &Addr, proto: Proto, port: u16) -> Option<(&mut PortPool, u16)> {
        let addr_index = self.addrs.iter().position(|a| a == addr)?;
        let offset = port.checked_sub(self.first)?;
        self.pools
            .get_mut(addr_index * PROTO_SPACES + proto_space(proto))
            .filter(|pool| usize::from(offset) < pool.ring.len())
            .map(|pool| (pool, offset))
    }

    /// How many times its base budget the expiry sweep should examine for this allocator's
    /// fullest port pool (see [`super::sweep_speedup`]).
    pub fn sweep_speedup(&self) -> usize {
        self.pools
            .iter()
            .map(|p| super::sweep_speedup(p.ring.len().saturating_sub(p.free), p.ring.len()))
            .max()
            .unwrap_or(1)
    }

    /// Free ports on the address at `addr_index` for `proto`.
    pub fn available(&self, addr_index: usize, proto: Proto) -> usize {
        addr_index
            .checked_mul(PROTO_SPACES)
            .and_then(|i| self.pools.get(i + proto_space(proto)))
            .map_or(0, |p| p.free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const A: Addr = Addr::from_v4([198, 18, 200, 1]);
    const B: Addr = Addr::from_v4([198, 18, 200, 2]);

    #[test]
    fn every_port_has_exactly_one_owner() {
        for workers in [1u16, 2, 3, 7, 8, 13, 64, 1000] {
            let p = PortPartition::with_default_range(workers).unwrap();
            let mut counts = vec![0u32; usize::from(workers)];
            for port in 0..=u16::MAX {
                let owner = p.owner_of_port(port);
                if port < 1024 {
                    assert_eq!(owner, None);
                    continue;
                }
                let w = owner.unwrap();
                assert!(
                    p.ports_of(w).unwrap().contains(&port),
                    "{workers} workers, port {port}"
                );
                counts[usize::from(w)] += 1;
            }
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "uneven split {min}..{max}");
            assert_eq!(counts.iter().sum::<u32>(), 65535 - 1024 + 1);
            // Blocks are contiguous, in worker order, and tile the range.
            let mut next = 1024u32;
            for w in 0..workers {
                let r = p.ports_of(w).unwrap();
                assert_eq!(u32::from(*r.start()), next);
                next = u32::from(*r.end()) + 1;
            }
            assert_eq!(next, 65536);
            assert_eq!(p.ports_of(workers), None);
        }
    }

    #[test]
    fn partition_errors() {
        assert_eq!(PortPartition::new(1, 10, 0), Err(PartitionError::NoWorkers));
        assert!(matches!(
            PortPartition::new(10, 1, 1),
            Err(PartitionError::EmptyRange { .. })
        ));
        assert!(matches!(
            PortPartition::new(10, 12, 4),
            Err(PartitionError::TooFewPorts { .. })
        ));
        let p = PortPartition::new(10, 13, 4).unwrap();
        assert_eq!(p.ports_of(3), Some(13..=13));
        assert_eq!(p.owner_of_port(13), Some(3));
        assert_eq!(p.owner_of_port(14), None);
    }

    #[test]
    fn allocation_stays_in_the_workers_block_until_exhausted() {
        let p = PortPartition::new(20000, 20099, 3).unwrap();
        for worker in 0..3 {
            let mut s = SnatPorts::new(&[A], &p, worker, 99).unwrap();
            let block = p.ports_of(worker).unwrap();
            let mut seen = HashSet::new();
            while let Some(lease) = s.allocate(Proto::Tcp, 0) {
                assert_eq!(lease.addr, A);
                assert_eq!(p.owner_of_port(lease.port), Some(worker));
                assert!(
                    seen.insert(lease.port),
                    "port {} handed out twice",
                    lease.port
                );
            }
            assert_eq!(seen.len(), block.len());
            assert_eq!(s.available(0, Proto::Tcp), 0);
            // Other protocols have their own ports.
            assert_eq!(s.available(0, Proto::Udp), block.len());
            assert!(s.allocate(Proto::Icmp, 0).is_some());
            assert_eq!(s.available(0, Proto::Icmpv6), block.len() - 1);
        }
    }

    #[test]
    fn an_unallocated_port_is_handed_out_next_and_leaves_the_pool_as_it_was() {
        let p = PortPartition::new(5000, 5007, 1).unwrap();
        let mut undone = SnatPorts::new(&[A], &p, 0, 7).unwrap();
        let untouched = SnatPorts::new(&[A], &p, 0, 7).unwrap();
        let first = undone.allocate(Proto::Tcp, 0).unwrap();
        assert!(undone.unallocate(&first.addr, Proto::Tcp, first.port));
        assert!(
            !undone.unallocate(&first.addr, Proto::Tcp, first.port),
            "twice"
        );
        assert_eq!(undone.available(0, Proto::Tcp), 8);
        let order = |mut s: SnatPorts| -> Vec<u16> {
            (0..8)
                .map(|_| s.allocate(Proto::Tcp, 0).unwrap().port)
                .collect()
        };
        assert_eq!(order(undone), order(untouched));
    }

    #[test]
    fn release_reuses_ports_oldest_first_and_rejects_foreign_ones() {
        let p = PortPartition::new(5000, 5007, 2).unwrap();
        let mut s = SnatPorts::new(&[A], &p, 1, 7).unwrap();
        assert_eq!(s.ports(), 5004..=5007);
        let all: Vec<u16> = (0..4)
            .map(|_| s.allocate(Proto::Udp, 0).unwrap().port)
            .collect();
        assert_eq!(s.allocate(Proto::Udp, 0), None);
        assert!(s.release(&A, Proto::Udp, all[2]));
        assert!(!s.release(&A, Proto::Udp, all[2]), "double release");
        assert!(s.release(&A, Proto::Udp, all[0]));
        assert!(!s.release(&A, Proto::Udp, 5000), "another worker's port");
        assert!(!s.release(&A, Proto::Udp, 4000), "below every block");
        assert!(!s.release(&A, Proto::Udp, 6000), "above the range");
        assert!(!s.release(&B, Proto::Udp, all[1]), "another address");
        assert!(!s.release(&A, Proto::Tcp, all[1]), "another protocol");
        assert_eq!(s.allocate(Proto::Udp, 0).unwrap().port, all[2]);
        assert_eq!(s.allocate(Proto::Udp, 0).unwrap().port, all[0]);
        assert_eq!(s.allocate(Proto::Udp, 0), None);
    }

    #[test]
    fn exhausted_addresses_fall_over_to_the_next() {
        let p = PortPartition::new(100, 103, 1).unwrap();
        let mut s = SnatPorts::new(&[A, B], &p, 0, 1).unwrap();
        let mut per_addr = [0; 2];
        while let Some(lease) = s.allocate(Proto::Tcp, u64::MAX) {
            per_addr[usize::from(lease.addr == B)] += 1;
        }
        assert_eq!(per_addr, [4, 4]);
        assert!(s.release(&A, Proto::Tcp, 101));
        assert_eq!(
            s.allocate(Proto::Tcp, u64::MAX),
            Some(SnatLease { addr: A, port: 101 })
        );
    }

    #[test]
    fn constructor_errors() {
        let p = PortPartition::new(100, 103, 2).unwrap();
        assert!(matches!(
            SnatPorts::new(&[A], &p, 2, 0),
            Err(SnatError::NoSuchWorker { .. })
        ));
        assert_eq!(
            SnatPorts::new(&[], &p, 0, 0).err(),
            Some(SnatError::NoAddresses)
        );
        assert_eq!(
            SnatPorts::new(&[A, A], &p, 0, 0).err(),
            Some(SnatError::DuplicateAddress)
        );
    }

    #[test]
    fn the_initial_order_depends_on_the_seed() {
        let p = PortPartition::with_default_range(1).unwrap();
        let mut s1 = SnatPorts::new(&[A], &p, 0, 1).unwrap();
        let mut s2 = SnatPorts::new(&[A], &p, 0, 2).unwrap();
        let a: Vec<u16> = (0..16)
            .map(|_| s1.allocate(Proto::Tcp, 0).unwrap().port)
            .collect();
        let b: Vec<u16> = (0..16)
            .map(|_| s2.allocate(Proto::Tcp, 0).unwrap().port)
            .collect();
        assert_ne!(a, b);
    }
}
