//! Settings of the translation (what the flags configure) and the IPAM pools.

use std::net::IpAddr;

/// The GatewayClass controllerName loxilb's seed manifests use (honoured in compat mode).
pub const LOXILB_CONTROLLER: &str = "loxilb.io/loxilb";
/// Default controllerName of this controller.
pub const DEFAULT_CONTROLLER: &str = "sluice.io/gateway";

/// NAT mode of the L4 services the controller creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatMode {
    Dnat,
    FullNat,
}

impl NatMode {
    pub fn parse(text: &str) -> Option<NatMode> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dnat" | "default" | "onearm" => Some(NatMode::Dnat),
            "fullnat" | "full-nat" | "full_nat" => Some(NatMode::FullNat),
            _ => None,
        }
    }
}

/// An IPv4 or IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not an address or CIDR"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0..={max}"))?,
        };
        let cidr = Cidr { address, prefix };
        if cidr.first() != address_to_u128(address) {
            return Err(format!(
                "`{text}`: bits below the prefix length must be zero"
            ));
        }
        Ok(cidr)
    }

    fn host_bits(&self) -> u32 {
        (if self.address.is_ipv4() { 32 } else { 128 }) - u32::from(self.prefix)
    }

    fn first(&self) -> u128 {
        let bits = self.host_bits();
        let value = address_to_u128(self.address);
        if bits >= 128 {
            0
        } else {
            value & !((1u128 << bits) - 1)
        }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        if address.is_ipv4() != self.address.is_ipv4() {
            return false;
        }
        let bits = self.host_bits();
        let value = address_to_u128(address);
        if bits >= 128 {
            return true;
        }
        value & !((1u128 << bits) - 1) == self.first()
    }

    /// Usable addresses in order: an IPv4 prefix shorter than /31 skips its network and
    /// broadcast addresses (hosts on the segment would treat them specially).
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let bits = self.host_bits();
        let size: u128 = if bits >= 128 {
            u128::MAX
        } else {
            1u128 << bits
        };
        let skip_edges = self.address.is_ipv4() && self.prefix < 31;
        let (start, end) = if skip_edges { (1, size - 1) } else { (0, size) };
        let first = self.first();
        let v4 = self.address.is_ipv4();
        (start..end).map(move |offset| u128_to_address(first + offset, v4))
    }
}

fn address_to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn u128_to_address(value: u128, v4: bool) -> IpAddr {
    if v4 {
        // Truncation is intended: an IPv4 pool only produces values below 2^32.
        IpAddr::V4(std::net::Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(value))
    }
}

/// A named address pool for Gateways without spec.addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub cidrs: Vec<Cidr>,
}

impl Pool {
    /// `NAME=CIDR[,CIDR...]` (kube-loxilb's `--cidrPools` syntax for one pool).
    pub fn parse(text: &str) -> Result<Pool, String> {
        let (name, cidrs) = text
            .split_once('=')
            .ok_or_else(|| format!("--pool `{text}`: expected NAME=CIDR[,CIDR...]"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("--pool `{text}`: the pool name is empty"));
        }
        let cidrs = cidrs
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(|c| Cidr::parse(c).map_err(|e| format!("--pool {name}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if cidrs.is_empty() {
            return Err(format!("--pool {name}: no CIDR given"));
        }
        Ok(Pool {
            name: name.to_owned(),
            cidrs,
        })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.cidrs.iter().any(|c| c.contains(address))
    }
}

/// A `namespace/name` reference to a Kubernetes Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

impl ServiceRef {
    pub fn parse(text: &str) -> Result<ServiceRef, String> {
        match text.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(ServiceRef {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!("--proxy-service `{text}`: expected NAMESPACE/NAME")),
        }
    }
}

/// Everything the translation needs besides the watched objects.
#[derive(Clone, Debug)]
pub struct Settings {
    /// GatewayClasses with this controllerName are ours.
    pub controller_name: String,
    /// Value of the `sluice.io/managed-by` label on every sluiced service we own.
    pub instance: String,
    /// Honour loxilb's controllerName, labels and annotations.
    pub loxilb_compat: bool,
    /// IPAM pools; the first is the default.
    pub pools: Vec<Pool>,
    /// SNAT pool (in sluiced) for full-NAT services.
    pub snat_pool: Option<String>,
    /// NAT mode when no annotation says otherwise.
    pub default_mode: NatMode,
    /// The Service whose endpoints are the sluice-proxy instances (HTTP/HTTPS listeners).
    pub proxy_service: Option<ServiceRef>,
    /// Represent invalid backendRefs by a REJECT sentinel backend carrying their weight, so
    /// that share of connections is refused (see docs/gateway.md); off: their share goes to
    /// the valid backends.
    pub reject_sentinel: bool,
}

/// The sentinel backend that stands for invalid backendRefs of an IPv4 service: state REJECT,
/// so sluiced refuses its share of new connections (TCP reset / ICMP port unreachable). The
/// address is a placeholder that is never contacted (sluiced requires one, of the VIP's family).
pub const REJECT_SENTINEL: (&str, u32) = ("127.0.0.1", 9);
/// The same for an IPv6 service.
pub const REJECT_SENTINEL_V6: (&str, u32) = ("::1", 9);

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            controller_name: DEFAULT_CONTROLLER.into(),
            instance: "sluice-gateway".into(),
            loxilb_compat: false,
            pools: Vec::new(),
            snat_pool: None,
            default_mode: NatMode::Dnat,
            proxy_service: None,
            reject_sentinel: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_enumeration() {
        let c = Cidr::parse("198.18.100.0/30").unwrap();
        let all: Vec<String> = c.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["198.18.100.1", "198.18.100.2"]);
        let one = Cidr::parse("192.168.80.90/32").unwrap();
        assert_eq!(one.addresses().count(), 1);
        assert!(Cidr::parse("198.18.100.1/24")
            .unwrap_err()
            .contains("bits below"));
        assert!(Cidr::parse("198.18.100.0/33")
            .unwrap_err()
            .contains("prefix length"));
        let v6 = Cidr::parse("2001:db8::/126").unwrap();
        assert_eq!(v6.addresses().count(), 4);
        assert!(v6.contains("2001:db8::3".parse().unwrap()));
        assert!(!v6.contains("198.18.100.1".parse().unwrap()));
    }

    #[test]
    fn pool_parsing() {
        let p = Pool::parse("defaultPool=192.168.80.90/32,198.18.100.0/24").unwrap();
        assert_eq!(p.name, "defaultPool");
        assert_eq!(p.cidrs.len(), 2);
        assert!(Pool::parse("nopool").unwrap_err().contains("NAME=CIDR"));
        assert!(Pool::parse("x=").unwrap_err().contains("no CIDR"));
    }
}
