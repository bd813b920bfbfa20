//! Deterministic Gateway address assignment from the configured pools.
//!
//! Pure: the result depends only on the pools, the Gateways asking and the addresses they
//! already report in status.addresses. A Gateway keeps the address it has (so a restart of
//! the controller never moves a VIP); the others get the lowest free address, in
//! namespace/name order.

use crate::config::Pool;
use crate::model::Key;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// One Gateway that needs an address from a pool.
#[derive(Clone, Debug)]
pub struct Request {
    pub gateway: Key,
    /// Pool name; `None`: the first pool.
    pub pool: Option<String>,
    /// Addresses from its current status.addresses.
    pub current: Vec<IpAddr>,
}

/// Why a Gateway got no address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpamError {
    NoPools,
    UnknownPool(String),
    Exhausted(String),
}

impl std::fmt::Display for IpamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpamError::NoPools => write!(
                f,
                "the Gateway has no spec.addresses and no address pool is configured (--pool)"
            ),
            IpamError::UnknownPool(p) => write!(f, "address pool `{p}` is not configured"),
            IpamError::Exhausted(p) => write!(f, "address pool `{p}` has no free address"),
        }
    }
}

/// Assigns one address per request. `taken` are addresses already in use elsewhere (static
/// spec.addresses of other Gateways), never handed out.
pub fn assign(
    pools: &[Pool],
    requests: &[Request],
    taken: &BTreeSet<IpAddr>,
) -> BTreeMap<Key, Result<IpAddr, IpamError>> {
    let mut used: BTreeSet<IpAddr> = taken.clone();
    let mut result = BTreeMap::new();
    let pool_of = |request: &Request| -> Result<&Pool, IpamError> {
        match &request.pool {
            None => pools.first().ok_or(IpamError::NoPools),
            Some(name) => pools
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| IpamError::UnknownPool(name.clone())),
        }
    };
    let mut sorted: Vec<&Request> = requests.iter().collect();
    sorted.sort_by(|a, b| a.gateway.cmp(&b.gateway));
    // Pass 1: keep what each Gateway already has, first come (by name) first served.
    for request in &sorted {
        match pool_of(request) {
            Err(e) => {
                result.insert(request.gateway.clone(), Err(e));
            }
            Ok(pool) => {
                if let Some(address) = request
                    .current
                    .iter()
                    .find(|a| pool.contains(**a) && !used.contains(a))
                {
                    used.insert(*address);
                    result.insert(request.gateway.clone(), Ok(*address));
                }
            }
        }
    }
    // Pass 2: the lowest free address for the rest.
    for request in &sorted {
        if result.contains_key(&request.gateway) {
            continue;
        }
        let Ok(pool) = pool_of(request) else { continue };
        let free = pool
            .cidrs
            .iter()
            .flat_map(|c| c.addresses())
            .find(|a| !used.contains(a));
        match free {
            Some(address) => {
                used.insert(address);
                result.insert(request.gateway.clone(), Ok(address));
            }
            None => {
                result.insert(
                    request.gateway.clone(),
                    Err(IpamError::Exhausted(pool.name.clone())),
                );
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("ns".into(), name.into())
    }

    fn request(name: &str, current: &[&str]) -> Request {
        Request {
            gateway: key(name),
            pool: None,
            current: current.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn keeps_current_addresses_and_fills_lowest_free() {
        let pools = vec![Pool::parse("p=198.18.100.0/29").unwrap()];
        let out = assign(
            &pools,
            &[
                request("a", &[]),
                request("b", &["198.18.100.5"]),
                request("c", &[]),
            ],
            &BTreeSet::new(),
        );
        assert_eq!(out[&key("b")], Ok("198.18.100.5".parse().unwrap()));
        assert_eq!(out[&key("a")], Ok("198.18.100.1".parse().unwrap()));
        assert_eq!(out[&key("c")], Ok("198.18.100.2".parse().unwrap()));
        // Restart: the same inputs with the addresses now in status give the same result.
        let again = assign(
            &pools,
            &[
                request("c", &["198.18.100.2"]),
                request("a", &["198.18.100.1"]),
                request("b", &["198.18.100.5"]),
            ],
            &BTreeSet::new(),
        );
        assert_eq!(out, again);
    }

    #[test]
    fn exhaustion_and_release() {
        let pools = vec![Pool::parse("one=192.168.80.90/32").unwrap()];
        let out = assign(
            &pools,
            &[request("a", &[]), request("b", &[])],
            &BTreeSet::new(),
        );
        assert!(out[&key("a")].is_ok());
        assert_eq!(out[&key("b")], Err(IpamError::Exhausted("one".into())));
        // a deleted: b gets the address.
        let out = assign(&pools, &[request("b", &[])], &BTreeSet::new());
        assert_eq!(out[&key("b")], Ok("192.168.80.90".parse().unwrap()));
    }

    #[test]
    fn taken_addresses_and_unknown_pools() {
        let pools = vec![Pool::parse("p=198.18.100.0/30").unwrap()];
        let taken: BTreeSet<IpAddr> = ["198.18.100.1".parse().unwrap()].into();
        let mut r = request("a", &["198.18.100.1"]);
        let out = assign(&pools, std::slice::from_ref(&r), &taken);
        assert_eq!(out[&key("a")], Ok("198.18.100.2".parse().unwrap()));
        r.pool = Some("nope".into());
        let out = assign(&pools, &[r], &taken);
        assert_eq!(out[&key("a")], Err(IpamError::UnknownPool("nope".into())));
        assert_eq!(
            assign(&[], &[request("a", &[])], &taken)[&key("a")],
            Err(IpamError::NoPools)
        );
    }
}
