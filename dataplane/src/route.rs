//! Longest-prefix match for the snapshot's routes: a multibit trie with a stride of 8 bits
//! (one level per address byte: at most 4 dependent loads for IPv4, 16 for IPv6) and
//! controlled prefix expansion, built once per snapshot and read-only afterwards.
//!
//! Why not DIR-24-8 (DPDK's `rte_lpm`): its first table alone is 2^24 entries (64 MiB with
//! 4-byte entries) per snapshot, and the control plane compiles a new snapshot for every
//! change. A stride-8 trie costs 2 KiB per node (a few nodes for typical appliance tables: the
//! connected subnets, a default route and a handful of statics), and a lookup of an IPv4
//! address under a /24 reads three nodes that stay in L1/L2. The per-packet path does not
//! even do that: the worker's egress cache remembers the result per destination and snapshot.
//! `benches/fastpath.rs` (`lpm/*`) compares it with the linear scan it replaced.

use crate::flow::Addr;
use crate::snapshot::Route;

/// One trie slot: the best route whose expansion covers this slot at this level (index + 1;
/// 0 none) and the child node for longer prefixes (0 none: node 0 is the root, never a child).
#[derive(Copy, Clone, Default, Debug)]
struct Slot {
    route: u32,
    child: u32,
}

type Node = [Slot; 256];

/// One address family's trie.
#[derive(Clone, Debug)]
struct Trie {
    nodes: Vec<Node>,
    /// The route of prefix length 0 (index + 1; 0 none).
    default: u32,
}

impl Trie {
    fn new() -> Trie {
        Trie {
            nodes: vec![[Slot::default(); 256]],
            default: 0,
        }
    }

    /// Inserts route `index` for `bytes`/`len`; call in ascending `len` order so a longer
    /// prefix overwrites the expansion of a shorter one at the same level.
    fn insert(&mut self, bytes: &[u8], len: u8, index: u32) {
        if len == 0 {
            self.default = index + 1;
            return;
        }
        let level = usize::from((len - 1) / 8);
        let mut node = 0usize;
        for &byte in bytes.iter().take(level) {
            let child = self.nodes[node][usize::from(byte)].child;
            node = if child == 0 {
                self.nodes.push([Slot::default(); 256]);
                let new = self.nodes.len() - 1;
                self.nodes[node][usize::from(byte)].child = new as u32;
                new
            } else {
                child as usize
            };
        }
        let span_bits = 8 * (level as u32 + 1) - u32::from(len);
        let first =
            usize::from(bytes.get(level).copied().unwrap_or(0)) & !((1usize << span_bits) - 1);
        for slot in &mut self.nodes[node][first..first + (1usize << span_bits)] {
            slot.route = index + 1;
        }
    }

    #[inline]
    fn lookup(&self, bytes: &[u8]) -> u32 {
        let mut best = self.default;
        let mut node = 0usize;
        for &byte in bytes {
            let Some(slot) = self.nodes.get(node).and_then(|n| n.get(usize::from(byte))) else {
                break;
            };
            if slot.route != 0 {
                best = slot.route;
            }
            if slot.child == 0 {
                break;
            }
            node = slot.child as usize;
        }
        best
    }
}

/// The compiled route table of a snapshot.
#[derive(Clone, Debug)]
pub struct Lpm {
    routes: Vec<Route>,
    v4: Trie,
    v6: Trie,
}

impl Default for Lpm {
    fn default() -> Self {
        Lpm::build(&[])
    }
}

impl Lpm {
    /// Builds the tries. Among routes of the same prefix the later one in `routes` wins.
    /// Prefix lengths beyond the family's width are clamped (the snapshot validates them).
    pub fn build(routes: &[Route]) -> Lpm {
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by_key(|&i| routes[i].prefix_len); // stable: later wins at equal length
        let (mut v4, mut v6) = (Trie::new(), Trie::new());
        for i in order {
            let route = &routes[i];
            if route.prefix.is_v4() {
                v4.insert(&route.prefix.0[12..], route.prefix_len.min(32), i as u32);
            } else {
                v6.insert(&route.prefix.0, route.prefix_len.min(128), i as u32);
            }
        }
        Lpm {
            routes: routes.to_vec(),
            v4,
            v6,
        }
    }

    /// The most specific route covering `dst`.
    #[inline]
    pub fn lookup(&self, dst: &Addr) -> Option<&Route> {
        let found = if dst.is_v4() {
            self.v4.lookup(&dst.0[12..])
        } else {
            self.v6.lookup(&dst.0)
        };
        self.routes.get((found as usize).checked_sub(1)?)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Trie nodes allocated (2 KiB each), for the docs and tests.
    pub fn nodes(&self) -> usize {
        self.v4.nodes.len() + self.v6.nodes.len()
    }
}

/// The linear scan the trie replaced (kept as the reference for tests and benches).
pub fn lookup_linear<'a>(routes: &'a [Route], dst: &Addr) -> Option<&'a Route> {
    let mut best: Option<&Route> = None;
    for route in routes {
        if route.prefix.is_v4() != dst.is_v4() {
            continue;
        }
        let bits = if dst.is_v4() {
            u32::from(route.prefix_len.min(32)) + 96
        } else {
            u32::from(route.prefix_len.min(128))
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - bits)
        };
        let matches =
            u128::from_be_bytes(route.prefix.0) & mask == u128::from_be_bytes(dst.0) & mask;
        if matches && best.is_none_or(|b| route.prefix_len >= b.prefix_len) {
            best = Some(route);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Addr {
        Addr::from_v4(a)
    }

    fn route(prefix: Addr, len: u8, port: u16) -> Route {
        Route {
            prefix,
            prefix_len: len,
            next_hop: None,
            port,
        }
    }

    #[test]
    fn longest_prefix_wins_at_every_level() {
        let routes = vec![
            route(v4([0, 0, 0, 0]), 0, 9),
            route(v4([198, 18, 0, 0]), 15, 1),
            route(v4([198, 18, 0, 0]), 24, 2),
            route(v4([198, 18, 0, 128]), 25, 3),
            route(v4([198, 18, 0, 77]), 32, 4),
            route(v4([10, 0, 0, 0]), 8, 5),
        ];
        let lpm = Lpm::build(&routes);
        let port = |a: [u8; 4]| lpm.lookup(&v4(a)).map(|r| r.port);
        assert_eq!(port([198, 18, 0, 77]), Some(4));
        assert_eq!(port([198, 18, 0, 78]), Some(2));
        assert_eq!(port([198, 18, 0, 200]), Some(3));
        assert_eq!(port([198, 19, 1, 1]), Some(1));
        assert_eq!(port([10, 255, 0, 1]), Some(5));
        assert_eq!(port([192, 0, 2, 1]), Some(9));
        let no_default = Lpm::build(&routes[1..]);
        assert_eq!(no_default.lookup(&v4([192, 0, 2, 1])), None);
        // IPv6 is its own table: an IPv4 default does not cover it.
        assert_eq!(
            lpm.lookup(&Addr::from_v6([
                0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
            ])),
            None
        );
    }

    #[test]
    fn ipv6_prefixes_of_odd_lengths() {
        let p = |bytes: &[u8]| {
            let mut a = [0u8; 16];
            a[..bytes.len()].copy_from_slice(bytes);
            Addr::from_v6(a)
        };
        let routes = vec![
            route(p(&[0x20, 0x01, 0x0d, 0xb8]), 32, 1),
            route(p(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]), 48, 2),
            route(p(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0x80]), 57, 3),
        ];
        let lpm = Lpm::build(&routes);
        assert_eq!(
            lpm.lookup(&p(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0x80, 5]))
                .map(|r| r.port),
            Some(3)
        );
        assert_eq!(
            lpm.lookup(&p(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0x7f]))
                .map(|r| r.port),
            Some(2)
        );
        assert_eq!(
            lpm.lookup(&p(&[0x20, 0x01, 0x0d, 0xb8, 9])).map(|r| r.port),
            Some(1)
        );
        assert_eq!(lpm.lookup(&p(&[0x20, 0x02])), None);
    }

    /// The trie agrees with the linear scan on random tables and addresses.
    #[test]
    fn agrees_with_linear_scan() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20 {
            let mut routes = Vec::new();
            for i in 0..200u16 {
                let len = (rand() % 33) as u8;
                let bits = rand() as u32
                    & if len == 0 {
                        0
                    } else {
                        u32::MAX << (32 - u32::from(len))
                    };
                // Distinct prefixes only (the snapshot keys routes by prefix).
                let prefix = v4(bits.to_be_bytes());
                if !routes
                    .iter()
                    .any(|r: &Route| r.prefix == prefix && r.prefix_len == len)
                {
                    routes.push(route(prefix, len, i));
                }
            }
            let lpm = Lpm::build(&routes);
            for _ in 0..2000 {
                let dst = v4((rand() as u32).to_be_bytes());
                assert_eq!(
                    lpm.lookup(&dst).map(|r| (r.prefix, r.prefix_len)),
                    lookup_linear(&routes, &dst).map(|r| (r.prefix, r.prefix_len)),
                    "{dst}"
                );
            }
        }
    }
}
