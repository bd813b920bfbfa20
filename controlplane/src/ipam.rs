//! VIP address management: pools of prefixes that hand out one address per owner.
//!
//! The Gateway controller asks for an address per Gateway; it may retry after a crash or a
//! lost response, so allocation is idempotent per (pool, owner): the owner gets back what it
//! already holds. Automatic choices take the lowest free address, CIDRs in their configured
//! order, skipping each CIDR's network address and (IPv4) broadcast address, which some
//! clients and routers mishandle; an explicit request may take them. Excluded addresses are
//! never handed out.
//!
//! Everything here is pure data manipulation; [`crate::state`] stores the pools and persists.

use crate::error::ApiError;
use crate::net::{family_bits, u128_to_ip, IpCidr};
use core::net::IpAddr;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a VIP pool allocates from, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipPoolSpec {
    pub name: String,
    /// Tried in this order; they do not overlap.
    pub cidrs: Vec<IpCidr>,
    /// Addresses inside the CIDRs that are never allocated.
    pub excluded: BTreeSet<IpAddr>,
}

impl VipPoolSpec {
    /// Whether `address` may be allocated at all: inside a CIDR and not excluded.
    pub fn allows(&self, address: &IpAddr) -> bool {
        !self.excluded.contains(address) && self.cidrs.iter().any(|c| c.contains(address))
    }

    /// How many addresses can be allocated (CIDR sizes minus exclusions), saturating.
    pub fn capacity(&self) -> u128 {
        let total = self
            .cidrs
            .iter()
            .fold(0u128, |sum, cidr| sum.saturating_add(cidr.size()));
        let excluded = self
            .excluded
            .iter()
            .filter(|address| self.cidrs.iter().any(|c| c.contains(address)))
            .count() as u128;
        total.saturating_sub(excluded)
    }
}

/// A pool with its allocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipPool {
    pub spec: VipPoolSpec,
    /// Address to owner.
    pub allocations: BTreeMap<IpAddr, String>,
}

/// The result of [`VipPool::allocate`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub address: IpAddr,
    /// False when the owner already held the address.
    pub newly_allocated: bool,
}

/// Why an allocation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("{address} is not in VIP pool {pool:?}")]
    NotInPool { address: IpAddr, pool: String },
    #[error("{address} is excluded from VIP pool {pool:?}")]
    Excluded { address: IpAddr, pool: String },
    #[error("{address} is allocated to {owner:?}")]
    HeldByOther { address: IpAddr, owner: String },
    #[error("{owner:?} already holds {held} in VIP pool {pool:?}; release it first")]
    OwnerHoldsOther {
        owner: String,
        held: IpAddr,
        pool: String,
    },
    #[error("VIP pool {pool:?} has no free address")]
    Exhausted { pool: String },
}

impl From<IpamError> for ApiError {
    fn from(error: IpamError) -> ApiError {
        match error {
            IpamError::NotInPool { .. } | IpamError::Excluded { .. } => {
                ApiError::invalid("requested_address", &error)
            }
            IpamError::HeldByOther { .. } => ApiError::AlreadyExists(error.to_string()),
            IpamError::OwnerHoldsOther { .. } => ApiError::FailedPrecondition(error.to_string()),
            IpamError::Exhausted { .. } => ApiError::ResourceExhausted(error.to_string()),
        }
    }
}

impl VipPool {
    pub fn new(spec: VipPoolSpec) -> VipPool {
        VipPool {
            spec,
            allocations: BTreeMap::new(),
        }
    }

    /// The address `owner` holds in this pool.
    pub fn held_by(&self, owner: &str) -> Option<IpAddr> {
        self.allocations
            .iter()
            .find(|(_, holder)| holder.as_str() == owner)
            .map(|(address, _)| *address)
    }

    /// Gives `owner` an address: the one it already holds, else `requested`, else the lowest
    /// free one.
    pub fn allocate(
        &mut self,
        owner: &str,
        requested: Option<IpAddr>,
    ) -> Result<Allocation, IpamError> {
        if let Some(held) = self.held_by(owner) {
            return match requested {
                Some(wanted) if wanted != held => Err(IpamError::OwnerHoldsOther {
                    owner: owner.to_owned(),
                    held,
                    pool: self.spec.name.clone(),
                }),
                _ => Ok(Allocation {
                    address: held,
                    newly_allocated: false,
                }),
            };
        }
        let address = match requested {
            Some(address) => {
                self.check_requested(&address)?;
                address
            }
            None => self.lowest_free().ok_or_else(|| IpamError::Exhausted {
                pool: self.spec.name.clone(),
            })?,
        };
        self.allocations.insert(address, owner.to_owned());
        Ok(Allocation {
            address,
            newly_allocated: true,
        })
    }

    fn check_requested(&self, address: &IpAddr) -> Result<(), IpamError> {
        if !self.spec.cidrs.iter().any(|c| c.contains(address)) {
            return Err(IpamError::NotInPool {
                address: *address,
                pool: self.spec.name.clone(),
            });
        }
        if self.spec.excluded.contains(address) {
            return Err(IpamError::Excluded {
                address: *address,
                pool: self.spec.name.clone(),
            });
        }
        if let Some(owner) = self.allocations.get(address) {
            return Err(IpamError::HeldByOther {
                address: *address,
                owner: owner.clone(),
            });
        }
        Ok(())
    }

    /// The lowest address automatic allocation may take, or `None` when the pool is full.
    ///
    /// Each step either returns or skips one allocated or excluded address, so the cost is
    /// bounded by the allocations and exclusions, not by the size of the CIDRs (a /64 is fine).
    pub fn lowest_free(&self) -> Option<IpAddr> {
        self.spec.cidrs.iter().find_map(|cidr| {
            let (first, last) = automatic_range(cidr)?;
            let network = cidr.network();
            let mut candidate = first;
            loop {
                let address = u128_to_ip(candidate, &network);
                if !self.allocations.contains_key(&address)
                    && !self.spec.excluded.contains(&address)
                {
                    return Some(address);
                }
                if candidate == last {
                    return None;
                }
                candidate += 1;
            }
        })
    }

    /// Releases `address` whoever holds it; `None` when it was not allocated.
    pub fn release_address(&mut self, address: &IpAddr) -> Option<(IpAddr, String)> {
        self.allocations
            .remove(address)
            .map(|owner| (*address, owner))
    }

    /// Releases everything `owner` holds.
    pub fn release_owner(&mut self, owner: &str) -> Vec<(IpAddr, String)> {
        let addresses: Vec<IpAddr> = self
            .allocations
            .iter()
            .filter(|(_, holder)| holder.as_str() == owner)
            .map(|(address, _)| *address)
            .collect();
        addresses
            .into_iter()
            .filter_map(|address| self.release_address(&address))
            .collect()
    }

    /// Allocations that `spec` would no longer allow (outside its CIDRs, or excluded).
    pub fn stranded_by(&self, spec: &VipPoolSpec) -> Vec<IpAddr> {
        self.allocations
            .keys()
            .filter(|address| !spec.allows(address))
            .copied()
            .collect()
    }
}

/// The first and last address automatic allocation uses in `cidr`: without the network
/// address and the IPv4 broadcast address, unless the prefix is too small to have them
/// (IPv4 /31 and /32, IPv6 /127 and /128).
fn automatic_range(cidr: &IpCidr) -> Option<(u128, u128)> {
    let (first, last) = (cidr.first(), cidr.last());
    let host_bits = family_bits(&cidr.network()) - cidr.prefix_len();
    if host_bits <= 1 {
        return Some((first, last));
    }
    let last = if cidr.is_ipv4() { last - 1 } else { last };
    Some((first + 1, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidrs: &[&str], excluded: &[&str]) -> VipPool {
        VipPool::new(VipPoolSpec {
            name: "public".into(),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            excluded: excluded.iter().map(|a| a.parse().unwrap()).collect(),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn allocates_lowest_free_skipping_network_broadcast_and_exclusions() {
        let mut p = pool(&["198.18.100.0/30", "198.18.200.8/31"], &["198.18.100.1"]);
        assert_eq!(p.spec.capacity(), 5);
        let a = p.allocate("gw-a", None).unwrap();
        assert_eq!(a.address, ip("198.18.100.2"));
        assert!(a.newly_allocated);
        // .3 is the broadcast address of the /30: the next CIDR is used.
        assert_eq!(
            p.allocate("gw-b", None).unwrap().address,
            ip("198.18.200.8")
        );
        assert_eq!(
            p.allocate("gw-c", None).unwrap().address,
            ip("198.18.200.9")
        );
        assert_eq!(
            p.allocate("gw-d", None),
            Err(IpamError::Exhausted {
                pool: "public".into()
            })
        );
        // Released addresses are reused, lowest first.
        assert_eq!(
            p.release_address(&ip("198.18.100.2")),
            Some((ip("198.18.100.2"), "gw-a".into()))
        );
        assert_eq!(
            p.allocate("gw-d", None).unwrap().address,
            ip("198.18.100.2")
        );
    }

    #[test]
    fn allocation_is_idempotent_per_owner() {
        let mut p = pool(&["198.18.100.0/24"], &[]);
        let first = p.allocate("gateway/default/web", None).unwrap();
        let again = p.allocate("gateway/default/web", None).unwrap();
        assert_eq!(again.address, first.address);
        assert!(!again.newly_allocated);
        // Asking for the held address again is fine; asking for another is not.
        assert!(p
            .allocate("gateway/default/web", Some(first.address))
            .is_ok());
        assert!(matches!(
            p.allocate("gateway/default/web", Some(ip("198.18.100.9"))),
            Err(IpamError::OwnerHoldsOther { .. })
        ));
        assert_eq!(p.allocations.len(), 1);
    }

    #[test]
    fn requested_addresses_are_checked() {
        let mut p = pool(&["198.18.100.0/24"], &["198.18.100.1"]);
        assert_eq!(
            p.allocate("a", Some(ip("198.18.100.0"))).unwrap().address,
            ip("198.18.100.0")
        );
        assert!(matches!(
            p.allocate("b", Some(ip("198.18.100.0"))),
            Err(IpamError::HeldByOther { owner, .. }) if owner == "a"
        ));
        assert!(matches!(
            p.allocate("b", Some(ip("198.18.100.1"))),
            Err(IpamError::Excluded { .. })
        ));
        assert!(matches!(
            p.allocate("b", Some(ip("198.18.101.1"))),
            Err(IpamError::NotInPool { .. })
        ));
        assert!(matches!(
            p.allocate("b", Some(ip("2001:db8::1"))),
            Err(IpamError::NotInPool { .. })
        ));
    }

    #[test]
    fn release_by_owner_and_idempotent_release() {
        let mut p = pool(&["198.18.100.0/29"], &[]);
        p.allocate("a", None).unwrap();
        p.allocate("b", None).unwrap();
        assert_eq!(
            p.release_owner("a"),
            vec![(ip("198.18.100.1"), "a".to_owned())]
        );
        assert!(p.release_owner("a").is_empty());
        assert_eq!(p.release_address(&ip("198.18.100.1")), None);
        assert_eq!(p.held_by("b"), Some(ip("198.18.100.2")));
    }

    #[test]
    fn huge_ipv6_pools_allocate_without_scanning() {
        let mut p = pool(&["2001:db8::/64"], &["2001:db8::1"]);
        assert_eq!(p.spec.capacity(), (1u128 << 64) - 1);
        assert_eq!(p.allocate("a", None).unwrap().address, ip("2001:db8::2"));
        let mut single = pool(&["2001:db8::7/128"], &[]);
        assert_eq!(
            single.allocate("a", None).unwrap().address,
            ip("2001:db8::7")
        );
        assert!(matches!(
            single.allocate("b", None),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn stranded_allocations_are_reported() {
        let mut p = pool(&["198.18.100.0/24"], &[]);
        p.allocate("a", None).unwrap();
        let narrower = VipPoolSpec {
            cidrs: vec!["198.18.100.128/25".parse().unwrap()],
            ..p.spec.clone()
        };
        assert_eq!(p.stranded_by(&narrower), vec![ip("198.18.100.1")]);
        assert!(p.stranded_by(&p.spec.clone()).is_empty());
    }

    #[test]
    fn errors_map_to_grpc_codes() {
        use tonic::Code;
        let code = |e: IpamError| tonic::Status::from(ApiError::from(e)).code();
        assert_eq!(
            code(IpamError::Exhausted { pool: "p".into() }),
            Code::ResourceExhausted
        );
        assert_eq!(
            code(IpamError::HeldByOther {
                address: ip("198.18.0.1"),
                owner: "x".into()
            }),
            Code::AlreadyExists
        );
        assert_eq!(
            code(IpamError::NotInPool {
                address: ip("198.18.0.1"),
                pool: "p".into()
            }),
            Code::InvalidArgument
        );
    }
}
