//! Ethernet II frames with up to two VLAN tags (802.1Q `0x8100`, 802.1ad QinQ `0x88a8`).

use core::fmt;

use super::bytes::{self, Field};
use super::ParseError;

/// EtherType values the dataplane looks at.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (the outer tag of QinQ).
    pub const QINQ: u16 = 0x88a8;

    /// Whether `value` in an EtherType position announces a VLAN tag.
    #[inline(always)]
    pub const fn is_vlan_tag(value: u16) -> bool {
        value == VLAN || value == QINQ
    }
}

mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    /// The EtherType, or the TPID of the first tag.
    pub const ETHERTYPE: Field = 12..14;
    /// Tag control information (PCP, DEI, VLAN id) of tag `i` is at `TCI + 4 * i`.
    pub const TCI: usize = 14;
}

/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Tags beyond this many are not looked into: the third TPID is reported as the EtherType.
pub const MAX_VLAN_TAGS: usize = 2;

/// A MAC address.
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// Group bit set (broadcast included).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
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

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it; accessors then read zeros past the end.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// The header, tags included, fits in the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < self.header_len() {
            Err(ParseError::Truncated)
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr(bytes::array(self.buffer.as_ref(), field::DESTINATION.start))
    }

    #[inline]
    pub fn src_addr(&self) -> MacAddr {
        MacAddr(bytes::array(self.buffer.as_ref(), field::SOURCE.start))
    }

    /// Number of VLAN tags (0, 1 or 2) announced by the TPIDs present in the buffer.
    #[inline]
    pub fn vlan_tag_count(&self) -> usize {
        let data = self.buffer.as_ref();
        let mut count = 0;
        while count < MAX_VLAN_TAGS
            && ethertype::is_vlan_tag(bytes::u16_at(
                data,
                field::ETHERTYPE.start + count * VLAN_TAG_LEN,
            ))
        {
            count += 1;
        }
        count
    }

    /// Header length including the VLAN tags.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.vlan_tag_count() * VLAN_TAG_LEN
    }

    /// The EtherType after the tags (the payload's protocol).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), self.header_len() - 2)
    }

    /// The VLAN id (12 bits) of the outer tag, if tagged.
    #[inline]
    pub fn vlan_id(&self) -> Option<u16> {
        self.tag_vlan_id(0)
    }

    /// The VLAN id of the inner tag of a double-tagged frame.
    #[inline]
    pub fn inner_vlan_id(&self) -> Option<u16> {
        self.tag_vlan_id(1)
    }

    /// The priority code point (3 bits) of the outer tag, if tagged.
    #[inline]
    pub fn vlan_pcp(&self) -> Option<u8> {
        (self.vlan_tag_count() > 0)
            .then(|| (bytes::u8_at(self.buffer.as_ref(), field::TCI) >> 5) & 0x7)
    }

    #[inline]
    fn tag_vlan_id(&self, index: usize) -> Option<u16> {
        (self.vlan_tag_count() > index).then(|| {
            bytes::u16_at(self.buffer.as_ref(), field::TCI + index * VLAN_TAG_LEN) & 0x0fff
        })
    }

    /// Everything after the header (IP packets may be followed by Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        bytes::put(self.buffer.as_mut(), field::DESTINATION.start, &addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: MacAddr) {
        bytes::put(self.buffer.as_mut(), field::SOURCE.start, &addr.0);
    }

    /// Sets the EtherType after the tags.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        let at = self.header_len() - 2;
        bytes::put_u16(self.buffer.as_mut(), at, value);
    }

    /// Sets the VLAN id of the outer tag, keeping PCP and DEI; does nothing on untagged frames.
    #[inline]
    pub fn set_vlan_id(&mut self, vlan_id: u16) {
        if self.vlan_tag_count() > 0 {
            let data = self.buffer.as_mut();
            let tci = bytes::u16_at(data, field::TCI);
            bytes::put_u16(data, field::TCI, (tci & 0xf000) | (vlan_id & 0x0fff));
        }
    }

    /// Swaps source and destination addresses (for replies sent back out the same port).
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (dst, src) = (self.dst_addr(), self.src_addr());
        self.set_dst_addr(src);
        self.set_src_addr(dst);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let data = self.buffer.as_mut();
        bytes::slice_mut(data, start..data.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An untagged IPv4 frame header followed by the first bytes of the IP header.
    const UNTAGGED: [u8; 16] = [
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x42, 0xac, 0x11, 0x00, 0x02, 0x08, 0x00, 0x45,
        0x00,
    ];

    #[test]
    fn untagged() {
        let frame = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(frame.dst_addr().to_string(), "52:54:00:12:34:56");
        assert_eq!(
            frame.src_addr(),
            MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02])
        );
        assert_eq!(frame.ethertype(), ethertype::IPV4);
        assert_eq!(frame.vlan_id(), None);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn single_and_double_tags() {
        let mut single = [0u8; 18];
        single[12..18].copy_from_slice(&[0x81, 0x00, 0xa0, 0x64, 0x86, 0xdd]);
        let frame = EthernetFrame::new_checked(&single[..]).unwrap();
        assert_eq!(frame.vlan_id(), Some(100));
        assert_eq!(frame.vlan_pcp(), Some(5));
        assert_eq!(frame.inner_vlan_id(), None);
        assert_eq!(frame.ethertype(), ethertype::IPV6);
        assert_eq!(frame.header_len(), 18);

        let mut double = [0u8; 22];
        double[12..22]
            .copy_from_slice(&[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x0f, 0xff, 0x08, 0x06]);
        let mut frame = EthernetFrame::new_checked(&mut double[..]).unwrap();
        assert_eq!(frame.vlan_id(), Some(10));
        assert_eq!(frame.inner_vlan_id(), Some(0xfff));
        assert_eq!(frame.ethertype(), ethertype::ARP);
        assert_eq!(frame.header_len(), 22);
        frame.set_vlan_id(20);
        frame.set_ethertype(ethertype::IPV4);
        assert_eq!(frame.vlan_id(), Some(20));
        assert_eq!(frame.ethertype(), ethertype::IPV4);
    }

    #[test]
    fn truncated_tags_are_rejected() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]),
            Err(ParseError::Truncated)
        );
        let mut short = [0u8; 16];
        short[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetFrame::new_checked(&short[..]),
            Err(ParseError::Truncated)
        );
        // Unchecked views still do not panic.
        let frame = EthernetFrame::new_unchecked(&short[..]);
        assert_eq!(frame.ethertype(), 0);
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn setters_and_etherparse_agree() {
        use etherparse::PacketBuilder;
        let builder = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .double_vlan(0x123.try_into().unwrap(), 0x234.try_into().unwrap())
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(1, 2);
        let mut packet = Vec::new();
        builder.write(&mut packet, &[]).unwrap();
        let mut frame = EthernetFrame::new_checked(&mut packet[..]).unwrap();
        assert_eq!(frame.src_addr(), MacAddr([1, 2, 3, 4, 5, 6]));
        assert_eq!(frame.dst_addr(), MacAddr([7, 8, 9, 10, 11, 12]));
        assert_eq!(frame.vlan_id(), Some(0x123));
        assert_eq!(frame.inner_vlan_id(), Some(0x234));
        assert_eq!(frame.ethertype(), ethertype::IPV4);
        frame.swap_addrs();
        assert_eq!(frame.src_addr(), MacAddr([7, 8, 9, 10, 11, 12]));
        let theirs = etherparse::SlicedPacket::from_ethernet(&packet).unwrap();
        match theirs.link {
            Some(etherparse::LinkSlice::Ethernet2(eth)) => {
                assert_eq!(eth.destination(), [1, 2, 3, 4, 5, 6]);
            }
            other => panic!("unexpected link {other:?}"),
        }
    }
}
