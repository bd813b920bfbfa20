//! Flow identity shared by the parser, the connection table and backend selection.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address in one fixed 16-byte form (IPv4 is stored IPv4-mapped,
/// `::ffff:a.b.c.d`), so flow keys have one size and compare as plain bytes.
#[derive(Copy, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Addr(pub [u8; 16]);

impl core::hash::Hash for Addr {
    /// One 128-bit write: with [`FastHasher`] an address hashes in a couple of multiplies.
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.0));
    }
}

/// A small multiply-mix hasher for the snapshot's lookup maps (VIPs, SNAT addresses,
/// neighbours, services), which are keyed by configuration, not by attacker-chosen data, and
/// are probed on every packet: speed matters more than flooding resistance there.
#[derive(Default, Clone, Copy, Debug)]
pub struct FastHasher(u64);

/// `BuildHasher` for [`FastHasher`].
pub type FastBuildHasher = core::hash::BuildHasherDefault<FastHasher>;

impl core::hash::Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix(self.0, u64::from_ne_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.0 = mix(self.0, u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.0 = mix(self.0, u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0, n);
    }

    #[inline]
    fn write_u128(&mut self, n: u128) {
        self.0 = mix(self.0 ^ (n >> 64) as u64, n as u64);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }
}

impl Addr {
    pub const UNSPECIFIED: Addr = Addr([0; 16]);

    #[inline]
    pub const fn from_v4(octets: [u8; 4]) -> Addr {
        let [a, b, c, d] = octets;
        Addr([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d])
    }

    #[inline]
    pub const fn from_v6(octets: [u8; 16]) -> Addr {
        Addr(octets)
    }

    #[inline]
    pub fn is_v4(&self) -> bool {
        self.0[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
    }

    /// The four IPv4 octets; meaningful only when [`Addr::is_v4`].
    #[inline]
    pub fn v4_octets(&self) -> [u8; 4] {
        [self.0[12], self.0[13], self.0[14], self.0[15]]
    }

    #[inline]
    pub fn octets(&self) -> [u8; 16] {
        self.0
    }

    pub fn to_ip(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.v4_octets()))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }

    #[inline]
    fn words(&self) -> (u64, u64) {
        let (hi, lo) = self.0.split_at(8);
        let mut h = [0u8; 8];
        let mut l = [0u8; 8];
        h.copy_from_slice(hi);
        l.copy_from_slice(lo);
        (u64::from_ne_bytes(h), u64::from_ne_bytes(l))
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr::from_v4(v4.octets()),
            IpAddr::V6(v6) => Addr::from_v6(v6.octets()),
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Addr {
        Addr::from_v4(ip.octets())
    }
}

impl From<Ipv6Addr> for Addr {
    fn from(ip: Ipv6Addr) -> Addr {
        Addr::from_v6(ip.octets())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

/// IP protocol numbers the dataplane handles.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    Icmp = 1,
    Tcp = 6,
    Udp = 17,
    Icmpv6 = 58,
}

impl Proto {
    pub fn from_u8(n: u8) -> Option<Proto> {
        match n {
            1 => Some(Proto::Icmp),
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            58 => Some(Proto::Icmpv6),
            _ => None,
        }
    }
}

/// How a service, and each of its connections, is translated.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NatMode {
    /// Destination NAT only: the backend sees the client's address and must route replies back
    /// through the load balancer.
    #[default]
    Dnat = 0,
    /// Source and destination NAT: the backend sees an address of the service's SNAT pool, so
    /// replies come back to the load balancer on their own.
    FullNat = 1,
}

/// One direction of a connection: the 5-tuple as seen on the wire. For ICMP echo the ICMP
/// identifier stands in both ports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: Proto,
}

impl FlowKey {
    /// The same flow seen from the other side.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
        }
    }

    /// A fast, well-mixed, seedable 64-bit hash (not DoS-resistant on its own: the seed is
    /// random per process, which is what keeps crafted collisions out).
    #[inline]
    pub fn hash(&self, seed: u64) -> u64 {
        let (s0, s1) = self.src.words();
        let (d0, d1) = self.dst.words();
        let ports = (self.src_port as u64) << 32 | (self.dst_port as u64) << 16 | self.proto as u64;
        // Rotating the destination keeps the two directions of a flow apart; three
        // multiply-folds cover all 304 bits (IPv4 keys only differ in the low words).
        let a = s0 ^ d0.rotate_left(29);
        let b = s1 ^ d1.rotate_left(32);
        mix(mix(seed ^ 0x9e37_79b9_7f4a_7c15 ^ a, b), ports)
    }
}

/// One round of a multiply-xorshift mixer (as in wyhash/folded multiply).
#[inline]
pub fn mix(h: u64, v: u64) -> u64 {
    let m = (h ^ v) as u128 * 0x2d35_8dcc_aa6c_78a5u128;
    (m as u64) ^ ((m >> 64) as u64)
}

/// Hash of one endpoint (address and port), used for the DNAT owner worker and source hashing.
#[inline]
pub fn endpoint_hash(addr: &Addr, port: u16, seed: u64) -> u64 {
    let (a0, a1) = addr.words();
    mix(mix(mix(seed ^ 0x51_7cc1_b727_220a, a0), a1), port as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_through_the_mapped_form() {
        let a = Addr::from_v4([198, 18, 0, 1]);
        assert!(a.is_v4());
        assert_eq!(a.to_string(), "198.18.0.1");
        let b: Addr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
        assert!(!b.is_v4());
        assert_eq!(b.to_string(), "2001:db8::1");
    }

    #[test]
    fn reversed_twice_is_identity_and_hash_depends_on_direction() {
        let k = FlowKey {
            src: Addr::from_v4([198, 18, 0, 1]),
            dst: Addr::from_v4([198, 18, 100, 10]),
            src_port: 40000,
            dst_port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(k.reversed().reversed(), k);
        assert_ne!(k.hash(1), k.reversed().hash(1));
        assert_ne!(k.hash(1), k.hash(2));
    }
}
