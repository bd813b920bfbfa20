//! IPv6 headers (RFC 8200) and the walk over extension headers to the upper-layer protocol.

use super::bytes::{self, Field};
use super::checksum;
use super::{Fragment, ParseError};

/// Next Header values: the extension headers we walk and the upper layers we know.
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AUTHENTICATION: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
}

mod field {
    use super::Field;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VERSION_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Length of a Fragment extension header.
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// At most this many extension headers are walked; more is [`ParseError::TooManyExtHeaders`].
pub const MAX_EXT_HEADERS: usize = 8;

/// The end of an extension-header walk.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol (TCP, UDP, ICMPv6, ESP, No Next Header, …).
    pub protocol: u8,
    /// Where the upper-layer header starts, in the slice that was walked.
    pub offset: usize,
    /// Set if a Fragment header was seen. For a non-first fragment the walk stops at the
    /// Fragment header: what follows is the middle of the original payload.
    pub fragment: Option<Fragment>,
}

/// Walks the extension headers of `packet[offset..end]`, the first of which is of type `next`,
/// and returns the upper layer. Bounded by [`MAX_EXT_HEADERS`]; a header that runs past `end`
/// is [`ParseError::Truncated`].
#[inline]
pub fn walk_ext_headers(
    packet: &[u8],
    mut next: u8,
    mut offset: usize,
    end: usize,
) -> Result<UpperLayer, ParseError> {
    let packet = packet.get(..end).ok_or(ParseError::Truncated)?;
    let mut fragment = None;
    for _ in 0..=MAX_EXT_HEADERS {
        let header = packet.get(offset..).unwrap_or(&[]);
        let len = match next {
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DESTINATION_OPTIONS => {
                let &[_, units, ..] = header else {
                    return Err(ParseError::Truncated);
                };
                (usize::from(units) + 1) * 8
            }
            next_header::AUTHENTICATION => {
                let &[_, units, ..] = header else {
                    return Err(ParseError::Truncated);
                };
                (usize::from(units) + 2) * 4
            }
            next_header::FRAGMENT => {
                let Some(frag) = header.first_chunk::<FRAGMENT_HEADER_LEN>() else {
                    return Err(ParseError::Truncated);
                };
                let info = Fragment {
                    offset: u16::from_be_bytes([frag[2], frag[3]]) & 0xfff8,
                    more: frag[3] & 0x01 != 0,
                    id: u32::from_be_bytes([frag[4], frag[5], frag[6], frag[7]]),
                };
                fragment = Some(info);
                if info.offset != 0 {
                    // Not the first fragment: no further headers to look into.
                    return Ok(UpperLayer {
                        protocol: frag[0],
                        offset: offset + FRAGMENT_HEADER_LEN,
                        fragment,
                    });
                }
                FRAGMENT_HEADER_LEN
            }
            protocol => {
                return Ok(UpperLayer {
                    protocol,
                    offset,
                    fragment,
                })
            }
        };
        if header.len() < len {
            return Err(ParseError::Truncated);
        }
        next = header
            .first()
            .copied()
            .unwrap_or(next_header::NO_NEXT_HEADER);
        offset += len;
    }
    Err(ParseError::TooManyExtHeaders)
}

/// A view of an IPv6 packet. The buffer may extend past the packet (Ethernet padding):
/// [`payload`](Self::payload) is bounded by the payload length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The fixed header fits, the version is 6, and the payload length fits the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 6 {
            return Err(ParseError::BadIpVersion);
        }
        if len < self.total_len() {
            return Err(ParseError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn version_tc_flow(&self) -> u32 {
        bytes::u32_at(self.buffer.as_ref(), field::VERSION_TC_FLOW.start)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.version_tc_flow() >> 28) as u8
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.version_tc_flow() >> 20) as u8
    }

    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.version_tc_flow() & 0x000f_ffff
    }

    /// Length after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    /// Fixed header plus payload length.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The type of the first header after the fixed one.
    #[inline]
    pub fn next_header(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        bytes::array(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        bytes::array(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// Everything after the fixed header up to the payload length (extension headers included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        bytes::slice(self.buffer.as_ref(), HEADER_LEN..self.total_len())
    }

    /// Walks the extension headers; offsets are from the start of the fixed header.
    #[inline]
    pub fn upper_layer(&self) -> Result<UpperLayer, ParseError> {
        let data = self.buffer.as_ref();
        walk_ext_headers(
            data,
            self.next_header(),
            HEADER_LEN,
            self.total_len().min(data.len()),
        )
    }

    /// Unfolded pseudo-header sum for an upper-layer checksum.
    #[inline]
    pub fn pseudo_header_sum(&self, protocol: u8, l4_len: u32) -> u64 {
        checksum::pseudo_header_v6(&self.src_addr(), &self.dst_addr(), protocol, l4_len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label (20 bits).
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = 6 << 28 | u32::from(traffic_class) << 20 | (flow_label & 0x000f_ffff);
        bytes::put_u32(self.buffer.as_mut(), field::VERSION_TC_FLOW.start, word);
    }

    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::PAYLOAD_LEN.start, value);
    }

    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        bytes::put_u8(self.buffer.as_mut(), field::NEXT_HEADER, value);
    }

    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        bytes::put_u8(self.buffer.as_mut(), field::HOP_LIMIT, value);
    }

    /// Decrements the hop limit (no header checksum in IPv6); returns the new value (0 stays 0).
    #[inline]
    pub fn decrement_hop_limit(&mut self) -> u8 {
        let value = self.hop_limit().saturating_sub(1);
        self.set_hop_limit(value);
        value
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 16]) {
        bytes::put(self.buffer.as_mut(), field::SRC_ADDR.start, &addr);
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 16]) {
        bytes::put(self.buffer.as_mut(), field::DST_ADDR.start, &addr);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        bytes::slice_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6Header};

    const SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// Fixed header with `next`, then `rest` as the payload.
    fn packet(next: u8, rest: &[u8]) -> Vec<u8> {
        let header = Ipv6Header {
            traffic_class: 0xb8,
            flow_label: 0x12345.try_into().unwrap(),
            payload_length: rest.len() as u16,
            next_header: IpNumber(next),
            hop_limit: 64,
            source: SRC,
            destination: DST,
        };
        let mut data = header.to_bytes().to_vec();
        data.extend_from_slice(rest);
        data
    }

    #[test]
    fn fixed_header_fields() {
        let data = packet(next_header::UDP, &[0; 8]);
        let ip = Ipv6Packet::new_checked(&data[..]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.traffic_class(), 0xb8);
        assert_eq!(ip.flow_label(), 0x12345);
        assert_eq!(ip.payload_len(), 8);
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.src_addr(), SRC);
        assert_eq!(ip.dst_addr(), DST);
        let upper = ip.upper_layer().unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                protocol: 17,
                offset: 40,
                fragment: None
            }
        );
    }

    #[test]
    fn walks_extension_headers() {
        // Hop-by-Hop (8 bytes, PadN) -> Destination Options (16) -> AH (12+4) -> Fragment -> TCP.
        let mut rest = vec![next_header::DESTINATION_OPTIONS, 0, 1, 4, 0, 0, 0, 0];
        rest.extend_from_slice(&[next_header::AUTHENTICATION, 1, 1, 12]);
        rest.extend_from_slice(&[0; 12]);
        rest.extend_from_slice(&[next_header::FRAGMENT, 2, 0, 0]);
        rest.extend_from_slice(&[0; 12]);
        // Written by hand: etherparse 0.16's Ipv6FragmentHeader::to_bytes misplaces the offset
        // and M bits (offset 0, M set, id 0xdeadbeef here).
        rest.extend_from_slice(&[next_header::TCP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        rest.extend_from_slice(&[0; 20]);
        let data = packet(next_header::HOP_BY_HOP, &rest);
        let upper = Ipv6Packet::new_checked(&data[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(upper.protocol, next_header::TCP);
        assert_eq!(upper.offset, 40 + 8 + 16 + 16 + 8);
        assert_eq!(
            upper.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                id: 0xdead_beef
            })
        );
        // etherparse agrees on where the payload starts.
        let theirs = etherparse::SlicedPacket::from_ip(&data).unwrap();
        let net = theirs.net.unwrap();
        let payload = net.ip_payload_ref().unwrap();
        assert_eq!(payload.payload.len(), data.len() - upper.offset);
    }

    #[test]
    fn non_first_fragment_stops_the_walk() {
        // Offset 100 units (800 bytes), M clear, id 7 (bits as RFC 8200 lays them out).
        let mut rest = vec![next_header::UDP, 0, 0x03, 0x20, 0, 0, 0, 7];
        rest.extend_from_slice(&[0xee; 16]);
        let data = packet(next_header::FRAGMENT, &rest);
        let upper = Ipv6Packet::new_checked(&data[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(upper.protocol, next_header::UDP);
        assert_eq!(upper.offset, 48);
        let fragment = upper.fragment.unwrap();
        assert_eq!(
            (fragment.offset, fragment.more, fragment.id),
            (800, false, 7)
        );
        assert!(fragment.is_real());
    }

    #[test]
    fn bounded_and_truncated_walks() {
        // Nine Destination Options headers in a row.
        let mut rest = Vec::new();
        for _ in 0..9 {
            rest.extend_from_slice(&[next_header::DESTINATION_OPTIONS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let data = packet(next_header::DESTINATION_OPTIONS, &rest);
        let ip = Ipv6Packet::new_checked(&data[..]).unwrap();
        assert_eq!(ip.upper_layer(), Err(ParseError::TooManyExtHeaders));
        // Exactly eight followed by UDP is fine.
        let mut rest = Vec::new();
        for i in 0..8 {
            let next = if i == 7 {
                next_header::UDP
            } else {
                next_header::DESTINATION_OPTIONS
            };
            rest.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        let data = packet(next_header::DESTINATION_OPTIONS, &rest);
        let upper = Ipv6Packet::new_checked(&data[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!((upper.protocol, upper.offset), (next_header::UDP, 40 + 64));
        // A header longer than the payload.
        let data = packet(
            next_header::ROUTING,
            &[next_header::TCP, 1, 0, 0, 0, 0, 0, 0],
        );
        let ip = Ipv6Packet::new_checked(&data[..]).unwrap();
        assert_eq!(ip.upper_layer(), Err(ParseError::Truncated));
    }

    #[test]
    fn rejects_bad_fixed_headers() {
        let mut data = packet(next_header::UDP, &[0; 8]);
        assert_eq!(
            Ipv6Packet::new_checked(&data[..39]),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&data[..47]),
            Err(ParseError::Truncated)
        );
        data[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&data[..]),
            Err(ParseError::BadIpVersion)
        );
    }

    #[test]
    fn setters_round_trip() {
        let mut data = packet(next_header::UDP, &[0; 8]);
        let mut ip = Ipv6Packet::new_checked(&mut data[..]).unwrap();
        ip.set_version_tc_flow(1, 0xfffff);
        ip.set_src_addr(DST);
        ip.set_dst_addr(SRC);
        ip.set_next_header(next_header::TCP);
        assert_eq!(ip.decrement_hop_limit(), 63);
        assert_eq!(
            (ip.version(), ip.traffic_class(), ip.flow_label()),
            (6, 1, 0xfffff)
        );
        assert_eq!((ip.src_addr(), ip.dst_addr()), (DST, SRC));
        let theirs = Ipv6Header::from_slice(&data).unwrap().0;
        assert_eq!(theirs.hop_limit, 63);
        assert_eq!(theirs.next_header, IpNumber::TCP);
    }
}
