//! Zero-copy wire formats for the fast path.
//!
//! Two layers, in the manner of smoltcp's `wire` module:
//! - views such as [`ipv4::Ipv4Packet`] over any `T: AsRef<[u8]>`: `new_checked` validates the
//!   lengths once, accessors read fields in place and `set_*` mutators write them when
//!   `T: AsMut<[u8]>`. Accessors never panic, even on unchecked views (they read zeros past the
//!   end of the buffer), and nothing allocates;
//! - [`parse`], the single pass the per-packet path runs: it walks Ethernet (with VLAN tags),
//!   IPv4/IPv6 (with options and extension headers) and the start of TCP/UDP/ICMP, validates
//!   the lengths on the way, and returns a small `Copy` [`PacketInfo`].
//!
//! Checksums are not verified by [`parse`] (NICs verify them, and the pipeline drops what a
//! NIC marks bad; or the caller does when it has to): see [`verify_ipv4_header_checksum`] and
//! [`verify_l4_checksum`].

pub mod arp;
mod bytes;
pub mod checksum;
pub mod ethernet;
#[doc(hidden)]
pub mod exercise;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use core::fmt;
use core::ops::Range;

use crate::flow::{Addr, FlowKey, Proto};

pub use bytes::Field;
pub use ethernet::MacAddr;
pub use tcp::TcpFlags;

/// Why a frame could not be parsed; one variant per drop reason, so per-reason counters can be
/// an array indexed by [`ParseError::index`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ParseError {
    /// The frame ends before a header (or the length a header claims) does.
    Truncated = 0,
    /// Neither IPv4, IPv6 nor ARP. Never returned by [`parse`], which reports such frames as
    /// [`EtherKind::Other`]; it exists so the caller that drops them counts them with the rest.
    UnsupportedEthertype,
    /// ARP other than Ethernet/IPv4, or (when answering) not a request.
    UnsupportedArp,
    /// The IP version field does not match the EtherType.
    BadIpVersion,
    /// IPv4 header length below 20 bytes.
    BadIhl,
    /// IPv4 total length shorter than the header.
    BadTotalLength,
    /// More than [`ipv6::MAX_EXT_HEADERS`] IPv6 extension headers.
    TooManyExtHeaders,
    /// A UDP length field below 8 or beyond the IP payload.
    BadL4Length,
    /// A TCP data offset below 5 or beyond the segment.
    BadTcpHeaderLength,
    /// An IPv6 source or destination in ::ffff:0:0/96: IPv4-mapped addresses never appear on
    /// the wire (RFC 4291 2.5.5.2, RFC 4942 2.2), and would name IPv4 flows here (an [`Addr`]
    /// holds IPv4 addresses in that form).
    V4MappedAddress,
}

impl ParseError {
    /// Number of variants.
    pub const COUNT: usize = 10;

    /// Every variant, in [`index`](Self::index) order.
    pub const ALL: [ParseError; Self::COUNT] = [
        ParseError::Truncated,
        ParseError::UnsupportedEthertype,
        ParseError::UnsupportedArp,
        ParseError::BadIpVersion,
        ParseError::BadIhl,
        ParseError::BadTotalLength,
        ParseError::TooManyExtHeaders,
        ParseError::BadL4Length,
        ParseError::BadTcpHeaderLength,
        ParseError::V4MappedAddress,
    ];

    /// Position in [`ALL`](Self::ALL), for counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name, for counter and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ParseError::Truncated => "truncated",
            ParseError::UnsupportedEthertype => "unsupported_ethertype",
            ParseError::UnsupportedArp => "unsupported_arp",
            ParseError::BadIpVersion => "bad_ip_version",
            ParseError::BadIhl => "bad_ihl",
            ParseError::BadTotalLength => "bad_total_length",
            ParseError::TooManyExtHeaders => "too_many_ext_headers",
            ParseError::BadL4Length => "bad_l4_length",
            ParseError::BadTcpHeaderLength => "bad_tcp_header_length",
            ParseError::V4MappedAddress => "v4_mapped_address",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ParseError {}

/// What the EtherType (after VLAN tags) announced.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EtherKind {
    Ipv4,
    Ipv6,
    Arp,
    /// Anything else; [`PacketInfo::ethertype`] has the value.
    Other,
}

/// Fragment information of an IPv4 packet or an IPv6 Fragment header.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Offset of this fragment's data in the original payload, in bytes.
    pub offset: u16,
    /// More fragments follow (IPv4 MF, IPv6 M).
    pub more: bool,
    /// Identification (16 bits in IPv4, 32 in IPv6).
    pub id: u32,
}

impl Fragment {
    /// Not an "atomic fragment" (offset 0, no more fragments; RFC 6946), which is a whole packet.
    #[inline]
    pub const fn is_real(&self) -> bool {
        self.more || self.offset != 0
    }
}

/// The summary [`parse`] returns. Offsets are from the start of the frame; for a non-IP frame
/// the IP and L4 fields are zero.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    pub ether_kind: EtherKind,
    /// The EtherType after the VLAN tags.
    pub ethertype: u16,
    /// VLAN id of the outer tag.
    pub vlan: Option<u16>,
    /// Start of the L3 header (ARP or IP).
    pub l3_offset: u16,
    /// 4, 6, or 0 when not IP.
    pub ip_version: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    pub src: Addr,
    pub dst: Addr,
    /// IPv4 protocol or the IPv6 upper-layer protocol after the extension headers.
    pub l4_proto: u8,
    /// Start of the L4 header (for a non-first fragment: of the fragment's data).
    pub l4_offset: u16,
    /// L4 length from the IP length fields (Ethernet padding excluded).
    pub l4_len: u16,
    /// Set for fragments only (not for IPv6 atomic fragments).
    pub fragment: Option<Fragment>,
    /// TCP flags (empty unless TCP).
    pub tcp_flags: TcpFlags,
    /// TCP/UDP ports; for ICMP echo the identifier is in both.
    pub src_port: u16,
    pub dst_port: u16,
    /// ICMP or ICMPv6 type and code (zero unless ICMP).
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// For ICMP error messages: where the quoted IP header starts (see [`parse_embedded`]).
    pub icmp_embedded_offset: Option<u16>,
}

impl PacketInfo {
    const EMPTY: PacketInfo = PacketInfo {
        ether_kind: EtherKind::Other,
        ethertype: 0,
        vlan: None,
        l3_offset: 0,
        ip_version: 0,
        ttl: 0,
        src: Addr::UNSPECIFIED,
        dst: Addr::UNSPECIFIED,
        l4_proto: 0,
        l4_offset: 0,
        l4_len: 0,
        fragment: None,
        tcp_flags: TcpFlags(0),
        src_port: 0,
        dst_port: 0,
        icmp_type: 0,
        icmp_code: 0,
        icmp_embedded_offset: None,
    };

    #[inline]
    pub const fn is_ip(&self) -> bool {
        self.ip_version != 0
    }

    #[inline]
    pub const fn is_fragment(&self) -> bool {
        self.fragment.is_some()
    }

    /// A fragment at offset 0: it carries the L4 header.
    #[inline]
    pub const fn is_first_fragment(&self) -> bool {
        matches!(self.fragment, Some(Fragment { offset: 0, .. }))
    }

    /// Whether the L4 header fields (ports, flags, ICMP type) were read: an IP packet that is
    /// not a non-first fragment.
    #[inline]
    pub const fn has_l4_header(&self) -> bool {
        self.is_ip()
            && match self.fragment {
                Some(fragment) => fragment.offset == 0,
                None => true,
            }
    }

    /// The L4 bytes within the frame: `frame[info.l4_range()]`.
    #[inline]
    pub fn l4_range(&self) -> Range<usize> {
        let start = usize::from(self.l4_offset);
        start..start + usize::from(self.l4_len)
    }

    #[inline]
    pub const fn is_icmp(&self) -> bool {
        matches!(
            (self.ip_version, self.l4_proto),
            (4, PROTO_ICMP) | (6, PROTO_ICMPV6)
        )
    }

    /// ICMP or ICMPv6 echo request/reply with its header read.
    #[inline]
    pub const fn is_icmp_echo(&self) -> bool {
        let echo = match (self.ip_version, self.l4_proto) {
            (4, PROTO_ICMP) => icmp::v4_type::is_echo(self.icmp_type),
            (6, PROTO_ICMPV6) => icmp::v6_type::is_echo(self.icmp_type),
            _ => false,
        };
        echo && self.has_l4_header()
    }

    /// The connection this packet belongs to, as seen on the wire: TCP, UDP and ICMP echo (the
    /// identifier in both ports) that carry their L4 header. `None` for everything else,
    /// non-first fragments and ICMP errors included.
    #[inline]
    pub fn flow_key(&self) -> Option<FlowKey> {
        if !self.has_l4_header() {
            return None;
        }
        let proto = match (self.ip_version, self.l4_proto) {
            (_, PROTO_TCP) => Proto::Tcp,
            (_, PROTO_UDP) => Proto::Udp,
            (4, PROTO_ICMP) if icmp::v4_type::is_echo(self.icmp_type) => Proto::Icmp,
            (6, PROTO_ICMPV6) if icmp::v6_type::is_echo(self.icmp_type) => Proto::Icmpv6,
            _ => return None,
        };
        Some(FlowKey {
            src: self.src,
            dst: self.dst,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto,
        })
    }

    /// Unfolded pseudo-header sum for this packet's L4 checksum (0 when not IP).
    #[inline]
    pub fn pseudo_header_sum(&self) -> u64 {
        match self.ip_version {
            4 => checksum::pseudo_header_v4(
                &self.src.v4_octets(),
                &self.dst.v4_octets(),
                self.l4_proto,
                self.l4_len,
            ),
            6 => checksum::pseudo_header_v6(
                &self.src.0,
                &self.dst.0,
                self.l4_proto,
                u32::from(self.l4_len),
            ),
            _ => 0,
        }
    }
}

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;

/// Whether the IP header is parsed as a packet of its own or as the quote inside an ICMP error,
/// which may be cut short after the first 8 bytes of L4 header.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Depth {
    Outer,
    Quoted,
}

/// Parses a frame in one pass: Ethernet, up to two VLAN tags, ARP or IPv4/IPv6 (options and
/// extension headers), and the start of TCP/UDP/ICMP. Checksums are not verified.
#[inline]
pub fn parse(frame: &[u8]) -> Result<PacketInfo, ParseError> {
    let Some(header) = frame.first_chunk::<{ ethernet::HEADER_LEN }>() else {
        return Err(ParseError::Truncated);
    };
    let mut info = PacketInfo::EMPTY;
    let mut ethertype = u16::from_be_bytes([header[12], header[13]]);
    let mut l3_offset = ethernet::HEADER_LEN;
    if ethernet::ethertype::is_vlan_tag(ethertype) {
        let tags = parse_vlan_tags(frame)?;
        info.vlan = Some(tags.outer_vlan);
        ethertype = tags.ethertype;
        l3_offset = tags.l3_offset;
    }
    info.ethertype = ethertype;
    // At most 22: fits.
    info.l3_offset = l3_offset as u16;
    match ethertype {
        ethernet::ethertype::IPV4 => {
            info.ether_kind = EtherKind::Ipv4;
            parse_ipv4(frame, l3_offset, frame.len(), &mut info, Depth::Outer)?;
        }
        ethernet::ethertype::IPV6 => {
            info.ether_kind = EtherKind::Ipv6;
            parse_ipv6(frame, l3_offset, frame.len(), &mut info, Depth::Outer)?;
        }
        ethernet::ethertype::ARP => {
            info.ether_kind = EtherKind::Arp;
            arp::ArpPacket::new_checked(frame.get(l3_offset..).unwrap_or(&[]))?;
        }
        _ => {}
    }
    Ok(info)
}

/// Parses the packet quoted by an ICMP error that [`parse`] returned as `outer` (the quote
/// starts at `outer.icmp_embedded_offset`). The result is the offending packet as it was sent
/// (its [`PacketInfo::flow_key`] is the connection's key in the direction of the quoted packet),
/// with frame offsets; lengths are those the quoted header claims, which may exceed what was
/// quoted. Only the first 8 bytes of the quoted L4 header are required (TCP flags are read if
/// present).
pub fn parse_embedded(frame: &[u8], outer: &PacketInfo) -> Result<PacketInfo, ParseError> {
    let Some(offset) = outer.icmp_embedded_offset else {
        return Err(ParseError::Truncated);
    };
    let offset = usize::from(offset);
    // The quote ends where the ICMP message does, not at the end of the (padded) frame.
    let end = outer.l4_range().end.min(frame.len());
    let mut info = PacketInfo {
        ether_kind: outer.ether_kind,
        ethertype: outer.ethertype,
        vlan: outer.vlan,
        l3_offset: offset as u16,
        ..PacketInfo::EMPTY
    };
    match outer.ip_version {
        4 => parse_ipv4(frame, offset, end, &mut info, Depth::Quoted)?,
        6 => parse_ipv6(frame, offset, end, &mut info, Depth::Quoted)?,
        _ => return Err(ParseError::BadIpVersion),
    }
    Ok(info)
}

struct VlanTags {
    outer_vlan: u16,
    ethertype: u16,
    l3_offset: usize,
}

/// One or two tags (802.1Q or 802.1ad TPIDs in either position).
#[inline]
fn parse_vlan_tags(frame: &[u8]) -> Result<VlanTags, ParseError> {
    let Some(tags) = frame.get(ethernet::HEADER_LEN..) else {
        return Err(ParseError::Truncated);
    };
    let Some(&[tci_hi, tci_lo, type_hi, type_lo]) = tags.first_chunk::<4>() else {
        return Err(ParseError::Truncated);
    };
    let outer_vlan = u16::from_be_bytes([tci_hi, tci_lo]) & 0x0fff;
    let ethertype = u16::from_be_bytes([type_hi, type_lo]);
    if !ethernet::ethertype::is_vlan_tag(ethertype) {
        return Ok(VlanTags {
            outer_vlan,
            ethertype,
            l3_offset: ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN,
        });
    }
    let Some(&[_, _, _, _, _, _, type_hi, type_lo]) = tags.first_chunk::<8>() else {
        return Err(ParseError::Truncated);
    };
    Ok(VlanTags {
        outer_vlan,
        ethertype: u16::from_be_bytes([type_hi, type_lo]),
        l3_offset: ethernet::HEADER_LEN + 2 * ethernet::VLAN_TAG_LEN,
    })
}

/// IPv4 at `frame[offset..]`; `limit` bounds the bytes that belong to it.
#[inline(always)]
fn parse_ipv4(
    frame: &[u8],
    offset: usize,
    limit: usize,
    info: &mut PacketInfo,
    depth: Depth,
) -> Result<(), ParseError> {
    let available = frame.get(offset..limit).ok_or(ParseError::Truncated)?;
    let Some(header) = available.first_chunk::<{ ipv4::MIN_HEADER_LEN }>() else {
        return Err(ParseError::Truncated);
    };
    if header[0] >> 4 != 4 {
        return Err(ParseError::BadIpVersion);
    }
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header_len < ipv4::MIN_HEADER_LEN {
        return Err(ParseError::BadIhl);
    }
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if total_len < header_len {
        return Err(ParseError::BadTotalLength);
    }
    let end = match depth {
        Depth::Outer if total_len > available.len() => return Err(ParseError::Truncated),
        Depth::Outer => total_len,
        Depth::Quoted => total_len.min(available.len()),
    };
    let l4 = available
        .get(header_len..end)
        .ok_or(ParseError::Truncated)?;

    info.ip_version = 4;
    info.ttl = header[8];
    info.l4_proto = header[9];
    info.src = Addr::from_v4([header[12], header[13], header[14], header[15]]);
    info.dst = Addr::from_v4([header[16], header[17], header[18], header[19]]);
    // offset + header_len <= limit, and limits are frame lengths of at most 64 KiB plus tags for
    // outer packets and within the outer packet for quoted ones.
    info.l4_offset = (offset + header_len) as u16;
    info.l4_len = (total_len - header_len) as u16;
    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    if flags_offset & (ipv4::FLAG_MF | 0x1fff) != 0 {
        info.fragment = Some(Fragment {
            offset: (flags_offset & 0x1fff) << 3,
            more: flags_offset & ipv4::FLAG_MF != 0,
            id: u32::from(u16::from_be_bytes([header[4], header[5]])),
        });
    }
    parse_l4(l4, info, depth)
}

/// IPv6 at `frame[offset..]`; `limit` bounds the bytes that belong to it.
#[inline(always)]
fn parse_ipv6(
    frame: &[u8],
    offset: usize,
    limit: usize,
    info: &mut PacketInfo,
    depth: Depth,
) -> Result<(), ParseError> {
    let available = frame.get(offset..limit).ok_or(ParseError::Truncated)?;
    let Some(header) = available.first_chunk::<{ ipv6::HEADER_LEN }>() else {
        return Err(ParseError::Truncated);
    };
    if header[0] >> 4 != 6 {
        return Err(ParseError::BadIpVersion);
    }
    let total_len = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([header[4], header[5]]));
    let end = match depth {
        Depth::Outer if total_len > available.len() => return Err(ParseError::Truncated),
        Depth::Outer => total_len,
        Depth::Quoted => total_len.min(available.len()),
    };
    let next_header = header[6];
    let upper = match next_header {
        // The common case skips the walk.
        PROTO_TCP | PROTO_UDP | PROTO_ICMPV6 => ipv6::UpperLayer {
            protocol: next_header,
            offset: ipv6::HEADER_LEN,
            fragment: None,
        },
        _ => ipv6::walk_ext_headers(available, next_header, ipv6::HEADER_LEN, end)?,
    };
    let l4 = available
        .get(upper.offset..end)
        .ok_or(ParseError::Truncated)?;

    info.ip_version = 6;
    info.ttl = header[7];
    info.l4_proto = upper.protocol;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if let (Some(s), Some(d)) = (header.get(8..24), header.get(24..40)) {
        src.copy_from_slice(s);
        dst.copy_from_slice(d);
    }
    info.src = Addr::from_v6(src);
    info.dst = Addr::from_v6(dst);
    if info.src.is_v4() || info.dst.is_v4() {
        return Err(ParseError::V4MappedAddress);
    }
    // The walk is bounded (8 headers of at most 2 KiB each), so these fit in u16.
    info.l4_offset = (offset + upper.offset) as u16;
    info.l4_len = total_len.saturating_sub(upper.offset) as u16;
    info.fragment = upper.fragment.filter(Fragment::is_real);
    parse_l4(l4, info, depth)
}

/// The start of the L4 header in `l4` (the IP payload as far as it is present).
#[inline(always)]
fn parse_l4(l4: &[u8], info: &mut PacketInfo, depth: Depth) -> Result<(), ParseError> {
    let whole = match info.fragment {
        // A later fragment has no L4 header; a first one has it but not the whole payload.
        Some(fragment) if fragment.offset != 0 => return Ok(()),
        Some(_) => false,
        None => depth == Depth::Outer,
    };
    match (info.ip_version, info.l4_proto) {
        (_, PROTO_TCP) => {
            if depth == Depth::Quoted {
                let Some(&[sp0, sp1, dp0, dp1, ..]) = l4.first_chunk::<8>() else {
                    return Err(ParseError::Truncated);
                };
                info.src_port = u16::from_be_bytes([sp0, sp1]);
                info.dst_port = u16::from_be_bytes([dp0, dp1]);
                info.tcp_flags = TcpFlags(l4.get(13).copied().unwrap_or(0));
                return Ok(());
            }
            let Some(header) = l4.first_chunk::<{ tcp::MIN_HEADER_LEN }>() else {
                return Err(ParseError::Truncated);
            };
            let header_len = usize::from(header[12] >> 4) * 4;
            if header_len < tcp::MIN_HEADER_LEN || (whole && header_len > l4.len()) {
                return Err(ParseError::BadTcpHeaderLength);
            }
            info.src_port = u16::from_be_bytes([header[0], header[1]]);
            info.dst_port = u16::from_be_bytes([header[2], header[3]]);
            info.tcp_flags = TcpFlags(header[13]);
        }
        (_, PROTO_UDP) => {
            let Some(header) = l4.first_chunk::<{ udp::HEADER_LEN }>() else {
                return Err(ParseError::Truncated);
            };
            let udp_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            if whole && (udp_len < udp::HEADER_LEN || udp_len > l4.len()) {
                return Err(ParseError::BadL4Length);
            }
            info.src_port = u16::from_be_bytes([header[0], header[1]]);
            info.dst_port = u16::from_be_bytes([header[2], header[3]]);
        }
        (4, PROTO_ICMP) => {
            parse_icmp(
                l4,
                info,
                depth,
                icmp::v4_type::is_echo,
                icmp::v4_type::is_error,
            )?;
        }
        (6, PROTO_ICMPV6) => {
            parse_icmp(
                l4,
                info,
                depth,
                icmp::v6_type::is_echo,
                icmp::v6_type::is_error,
            )?;
        }
        _ => {}
    }
    Ok(())
}

#[inline(always)]
fn parse_icmp(
    l4: &[u8],
    info: &mut PacketInfo,
    depth: Depth,
    is_echo: fn(u8) -> bool,
    is_error: fn(u8) -> bool,
) -> Result<(), ParseError> {
    let Some(header) = l4.first_chunk::<{ icmp::HEADER_LEN }>() else {
        return Err(ParseError::Truncated);
    };
    info.icmp_type = header[0];
    info.icmp_code = header[1];
    if is_echo(header[0]) {
        let ident = u16::from_be_bytes([header[4], header[5]]);
        info.src_port = ident;
        info.dst_port = ident;
    } else if is_error(header[0]) && depth == Depth::Outer && info.fragment.is_none() {
        // Errors about errors are not followed (RFC 1122 forbids sending them anyway).
        info.icmp_embedded_offset = Some(info.l4_offset.saturating_add(icmp::HEADER_LEN as u16));
    }
    Ok(())
}

/// Whether the IPv4 header checksum of a parsed packet verifies (true for non-IPv4).
#[inline]
pub fn verify_ipv4_header_checksum(frame: &[u8], info: &PacketInfo) -> bool {
    if info.ip_version != 4 {
        return true;
    }
    let header = frame
        .get(usize::from(info.l3_offset)..usize::from(info.l4_offset))
        .unwrap_or(&[]);
    checksum::verifies(header)
}

/// Whether the TCP/UDP/ICMP/ICMPv6 checksum of a parsed packet verifies. True when there is
/// nothing to verify: fragments (the checksum covers the reassembled payload), other
/// protocols, and IPv4 UDP with checksum 0 ("not computed"; IPv6 UDP with 0 fails).
#[inline]
pub fn verify_l4_checksum(frame: &[u8], info: &PacketInfo) -> bool {
    if !info.is_ip() || info.is_fragment() {
        return true;
    }
    let Some(l4) = frame.get(info.l4_range()) else {
        return false;
    };
    let pseudo = match (info.ip_version, info.l4_proto) {
        (_, PROTO_TCP) | (6, PROTO_ICMPV6) => info.pseudo_header_sum(),
        (_, PROTO_UDP) => {
            let udp = udp::UdpPacket::new_unchecked(l4);
            if udp.checksum() == 0 {
                return info.ip_version == 4;
            }
            // The pseudo-header carries the UDP length, which may be below the IP payload's.
            let with_udp_len = PacketInfo {
                l4_len: udp.len(),
                ..*info
            };
            return udp.verify_checksum(with_udp_len.pseudo_header_sum());
        }
        (4, PROTO_ICMP) => 0,
        _ => return true,
    };
    checksum::fold(checksum::combine(pseudo, checksum::sum(l4))) == 0xffff
}

#[cfg(test)]
mod tests;
