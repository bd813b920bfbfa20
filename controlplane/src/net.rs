//! Address types of the desired state: prefixes, interface addresses and MAC addresses, with
//! the text forms the API uses ("198.18.0.0/15", "198.18.0.1/24", "02:00:00:00:00:01").
//!
//! IPv4-mapped IPv6 text ("::ffff:198.18.0.1") is folded to IPv4 everywhere ([`canonical_ip`]),
//! so one address has one stored form and duplicates are found whatever text was sent.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses an address, folding IPv4-mapped IPv6 to IPv4.
pub fn parse_ip(text: &str) -> Result<IpAddr, AddrParseError> {
    text.parse::<IpAddr>()
        .map(canonical_ip)
        .map_err(|_| AddrParseError::new(format!("{text:?} is not an IPv4 or IPv6 address")))
}

/// `ip` with an IPv4-mapped IPv6 address turned into IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Bits in an address of `ip`'s family.
pub fn family_bits(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The family name for messages.
pub fn family_name(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Whether two addresses are of the same family.
pub fn same_family(a: &IpAddr, b: &IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// The address as an integer (IPv4 in the low 32 bits), for range arithmetic.
pub fn ip_to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

/// The inverse of [`ip_to_u128`] for the family of `like`. `value` must fit the family.
pub fn u128_to_ip(value: u128, like: &IpAddr) -> IpAddr {
    match like {
        // Truncation cannot happen for values derived from an IPv4 range.
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Why an address, prefix or MAC did not parse; the text says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddrParseError(String);

impl AddrParseError {
    fn new(message: String) -> AddrParseError {
        AddrParseError(message)
    }
}

fn split_prefix(text: &str) -> Result<(IpAddr, u8), AddrParseError> {
    let (addr, len) = text.split_once('/').ok_or_else(|| {
        AddrParseError::new(format!(
            "{text:?} is not a prefix: expected address/length, e.g. 198.18.0.0/15"
        ))
    })?;
    let parsed: IpAddr = addr.parse().map_err(|_| {
        AddrParseError::new(format!("{text:?}: {addr:?} is not an IPv4 or IPv6 address"))
    })?;
    // A mapped IPv4 prefix keeps its meaning only if the length covers the mapping bits.
    let (ip, len_offset) = match (parsed, parsed.to_canonical()) {
        (IpAddr::V6(_), v4 @ IpAddr::V4(_)) => (v4, 96),
        (ip, _) => (ip, 0),
    };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|&l: &u8| l >= len_offset && l - len_offset <= family_bits(&ip))
        .map(|l| l - len_offset)
        .ok_or_else(|| {
            AddrParseError::new(format!(
                "{text:?}: prefix length must be 0..={} for {}",
                family_bits(&ip),
                family_name(&ip)
            ))
        })?;
    Ok((ip, len))
}

/// The host part of a `bits`-bit address under a `prefix_len`-bit prefix, as a bit mask.
fn host_mask(prefix_len: u8, bits: u8) -> u128 {
    let host_bits = u32::from(bits.saturating_sub(prefix_len));
    if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    }
}

/// A network prefix with its host bits zero ("198.18.0.0/15").
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpCidr {
    network: IpAddr,
    prefix_len: u8,
}

impl IpCidr {
    /// The prefix `network/prefix_len`; refuses host bits and over-long lengths.
    pub fn new(network: IpAddr, prefix_len: u8) -> Result<IpCidr, AddrParseError> {
        let network = canonical_ip(network);
        let bits = family_bits(&network);
        if prefix_len > bits {
            return Err(AddrParseError::new(format!(
                "prefix length {prefix_len} is longer than {bits} bits of {}",
                family_name(&network)
            )));
        }
        let value = ip_to_u128(&network);
        let masked = value & !host_mask(prefix_len, bits);
        if masked != value {
            return Err(AddrParseError::new(format!(
                "{network}/{prefix_len} has host bits set; did you mean {}/{prefix_len}?",
                u128_to_ip(masked, &network)
            )));
        }
        Ok(IpCidr {
            network,
            prefix_len,
        })
    }

    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    /// The first address as an integer ([`ip_to_u128`]).
    pub fn first(&self) -> u128 {
        ip_to_u128(&self.network)
    }

    /// The last address as an integer ([`ip_to_u128`]).
    pub fn last(&self) -> u128 {
        self.first() | host_mask(self.prefix_len, family_bits(&self.network))
    }

    /// Addresses in the prefix, saturating at `u128::MAX` for `::/0`.
    pub fn size(&self) -> u128 {
        (self.last() - self.first()).saturating_add(1)
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        let ip = canonical_ip(*ip);
        same_family(&ip, &self.network) && (self.first()..=self.last()).contains(&ip_to_u128(&ip))
    }

    pub fn overlaps(&self, other: &IpCidr) -> bool {
        same_family(&self.network, &other.network)
            && self.first() <= other.last()
            && other.first() <= self.last()
    }
}

impl FromStr for IpCidr {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<IpCidr, AddrParseError> {
        let (ip, len) = split_prefix(text)?;
        IpCidr::new(ip, len)
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl fmt::Debug for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An address the appliance owns on a port, with the length of its subnet ("198.18.0.1/24");
/// unlike [`IpCidr`], host bits are the point.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl InterfaceAddress {
    /// The subnet this address makes directly reachable.
    pub fn subnet(&self) -> IpCidr {
        let bits = family_bits(&self.address);
        let network = ip_to_u128(&self.address) & !host_mask(self.prefix_len, bits);
        IpCidr {
            network: u128_to_ip(network, &self.address),
            prefix_len: self.prefix_len,
        }
    }
}

impl FromStr for InterfaceAddress {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<InterfaceAddress, AddrParseError> {
        let (address, prefix_len) = split_prefix(text)?;
        if address.is_unspecified() || address.is_multicast() {
            return Err(AddrParseError::new(format!(
                "{text:?}: {address} cannot be an interface address"
            )));
        }
        Ok(InterfaceAddress {
            address,
            prefix_len,
        })
    }
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl fmt::Debug for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An Ethernet MAC address.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Group (multicast/broadcast) addresses cannot be a neighbour's address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddr {
    type Err = AddrParseError;

    fn from_str(text: &str) -> Result<MacAddr, AddrParseError> {
        let bad = || {
            AddrParseError::new(format!(
                "{text:?} is not a MAC address: expected six hex pairs, e.g. 02:00:00:00:00:01"
            ))
        };
        let mut octets = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Serde as the text form, so the state file is readable and map keys are strings.
macro_rules! serde_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(IpCidr, InterfaceAddress, MacAddr);

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> IpCidr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_parse_strictly() {
        assert_eq!(cidr("198.18.0.0/15").to_string(), "198.18.0.0/15");
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("::ffff:198.18.0.0/111").to_string(), "198.18.0.0/15");
        assert_eq!(cidr("::/0").size(), u128::MAX);
        assert_eq!(
            "198.18.0.1/15".parse::<IpCidr>().unwrap_err().to_string(),
            "198.18.0.1/15 has host bits set; did you mean 198.18.0.0/15?"
        );
        assert!("198.18.0.0/33".parse::<IpCidr>().is_err());
        assert!("198.18.0.0".parse::<IpCidr>().is_err());
        assert!("198.18.0.0/-1".parse::<IpCidr>().is_err());
        assert!("nonsense/8".parse::<IpCidr>().is_err());
    }

    #[test]
    fn containment_and_overlap() {
        let net = cidr("198.18.100.0/24");
        assert!(net.contains(&"198.18.100.255".parse().unwrap()));
        assert!(net.contains(&"::ffff:198.18.100.7".parse().unwrap()));
        assert!(!net.contains(&"198.18.101.0".parse().unwrap()));
        assert!(!net.contains(&"2001:db8::1".parse().unwrap()));
        assert!(net.overlaps(&cidr("198.18.0.0/16")));
        assert!(!net.overlaps(&cidr("198.18.101.0/24")));
        assert!(!net.overlaps(&cidr("::/0")));
        assert_eq!(cidr("198.18.100.7/32").size(), 1);
        assert_eq!(cidr("2001:db8::/126").size(), 4);
    }

    #[test]
    fn interface_addresses_keep_host_bits() {
        let a: InterfaceAddress = "198.18.0.1/24".parse().unwrap();
        assert_eq!(a.subnet(), cidr("198.18.0.0/24"));
        assert_eq!(a.to_string(), "198.18.0.1/24");
        assert!("0.0.0.0/0".parse::<InterfaceAddress>().is_err());
    }

    #[test]
    fn macs_parse_and_print() {
        let mac: MacAddr = "02-00-0A-bc-00-01".parse().unwrap();
        assert_eq!(mac.to_string(), "02:00:0a:bc:00:01");
        assert!(!mac.is_multicast());
        assert!("ff:ff:ff:ff:ff:ff"
            .parse::<MacAddr>()
            .unwrap()
            .is_multicast());
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "0200.0000.0001",
            "02:00:00:00:00:zz",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn text_serde_round_trips() {
        let json = serde_json::to_string(&cidr("198.18.0.0/15")).unwrap();
        assert_eq!(json, "\"198.18.0.0/15\"");
        assert_eq!(
            serde_json::from_str::<IpCidr>(&json).unwrap(),
            cidr("198.18.0.0/15")
        );
        assert!(serde_json::from_str::<IpCidr>("\"198.18.0.1/15\"").is_err());
    }
}
