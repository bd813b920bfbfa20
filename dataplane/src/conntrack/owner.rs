//! Which worker owns a packet's connection, computed from the packet alone (DESIGN.md,
//! "Connection ownership").
//!
//! - DNAT: `hash(client address, client port)` reduced to the worker count. The client is the
//!   source of an original packet and the destination of a reply, so both directions agree.
//! - Full-NAT: the connection is created by the owner of its original direction (the DNAT rule
//!   above), which takes the SNAT port from its own block of the [`PortPartition`]; a reply's
//!   destination port therefore names the same worker.

use super::snat::{PartitionError, PortPartition};
use crate::flow::{endpoint_hash, Addr, FlowKey};

/// Reduce a 64-bit hash to `0..workers` without a division.
#[inline]
fn reduce(hash: u64, workers: u16) -> u16 {
    ((u128::from(hash) * u128::from(workers)) >> 64) as u16
}

/// The owner of a DNAT connection (and of any connection's original direction). 0 when
/// `workers` is 0.
#[inline]
pub fn dnat_owner(client: &Addr, client_port: u16, workers: u16, seed: u64) -> u16 {
    reduce(endpoint_hash(client, client_port, seed), workers)
}

/// The owner of a full-NAT reply arriving on `snat_port`, or `None` outside the SNAT range.
#[inline]
pub fn fullnat_owner(snat_port: u16, partition: &PortPartition) -> Option<u16> {
    partition.owner_of_port(snat_port)
}

/// Everything the ownership rules need, shared read-only by all workers.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ownership {
    workers: u16,
    seed: u64,
    ports: PortPartition,
}

impl Ownership {
    /// `workers` workers, with the SNAT range `snat_first..=snat_last` partitioned among them.
    /// `seed` must be the same on every worker.
    pub fn new(
        workers: u16,
        seed: u64,
        snat_first: u16,
        snat_last: u16,
    ) -> Result<Ownership, PartitionError> {
        Ok(Ownership {
            workers,
            seed,
            ports: PortPartition::new(snat_first, snat_last, workers)?,
        })
    }

    #[inline]
    pub fn workers(&self) -> u16 {
        self.workers
    }

    #[inline]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The SNAT port partition (each worker builds its [`super::SnatPorts`] from it).
    #[inline]
    pub fn ports(&self) -> &PortPartition {
        &self.ports
    }

    /// The owner of a packet in the original direction (client → VIP).
    #[inline]
    pub fn owner_of_original(&self, key: &FlowKey) -> u16 {
        dnat_owner(&key.src, key.src_port, self.workers, self.seed)
    }

    /// The owner of a reply (backend → appliance). `to_snat_addr`: the destination is one of
    /// the SNAT addresses, so this is a full-NAT reply and its port names the owner; `None`
    /// when that port is outside the SNAT range (no connection can own it: drop it). Otherwise
    /// the destination is the client (DNAT).
    #[inline]
    pub fn owner_of_reply(&self, key: &FlowKey, to_snat_addr: bool) -> Option<u16> {
        if to_snat_addr {
            fullnat_owner(key.dst_port, &self.ports)
        } else {
            Some(dnat_owner(&key.dst, key.dst_port, self.workers, self.seed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::SnatPorts;
    use crate::flow::Proto;

    fn key(n: u32, port: u16) -> FlowKey {
        let [_, a, b, c] = n.to_be_bytes();
        FlowKey {
            src: Addr::from_v4([198, 18 | (a & 1), b, c]),
            dst: Addr::from_v4([198, 18, 100, 10]),
            src_port: port,
            dst_port: 443,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn dnat_original_and_reply_have_the_same_owner() {
        let own = Ownership::new(6, 0xfeed, 1024, 65535).unwrap();
        let mut per_worker = [0u32; 6];
        for n in 0..60_000u32 {
            let orig = key(n, 1024 + (n % 50_000) as u16);
            // The backend answers the client directly: backend → client.
            let reply = FlowKey {
                src: Addr::from_v4([198, 18, 1, 1]),
                dst: orig.src,
                src_port: 8443,
                dst_port: orig.src_port,
                proto: orig.proto,
            };
            let owner = own.owner_of_original(&orig);
            assert_eq!(own.owner_of_reply(&reply, false), Some(owner));
            per_worker[usize::from(owner)] += 1;
        }
        // The hash spreads clients evenly (within 10 %).
        for count in per_worker {
            assert!((9_000..11_000).contains(&count), "{per_worker:?}");
        }
    }

    #[test]
    fn fullnat_reply_returns_to_the_worker_that_allocated_the_port() {
        let own = Ownership::new(4, 1, 1024, 65535).unwrap();
        let snat = Addr::from_v4([198, 18, 200, 1]);
        let mut allocators: Vec<SnatPorts> = (0..4)
            .map(|w| SnatPorts::new(&[snat], own.ports(), w, 5).unwrap())
            .collect();
        for n in 0..2_000u32 {
            let orig = key(n, 30_000 + n as u16);
            let owner = own.owner_of_original(&orig);
            let lease = allocators[usize::from(owner)]
                .allocate(Proto::Tcp, n.into())
                .unwrap();
            let reply = FlowKey {
                src: Addr::from_v4([198, 18, 1, 1]),
                dst: lease.addr,
                src_port: 8443,
                dst_port: lease.port,
                proto: Proto::Tcp,
            };
            assert_eq!(own.owner_of_reply(&reply, true), Some(owner));
        }
        let stray = FlowKey {
            dst_port: 80,
            ..key(1, 1)
        };
        assert_eq!(own.owner_of_reply(&stray, true), None);
    }

    #[test]
    fn owners_are_in_range_and_seed_dependent() {
        let a = Addr::from_v4([198, 18, 0, 1]);
        for workers in 1..=16 {
            for port in (0..=u16::MAX).step_by(97) {
                assert!(dnat_owner(&a, port, workers, 3) < workers);
            }
        }
        assert_eq!(dnat_owner(&a, 1, 0, 3), 0);
        let differs = (0..64u16).any(|p| dnat_owner(&a, p, 64, 1) != dnat_owner(&a, p, 64, 2));
        assert!(differs);
    }
}
