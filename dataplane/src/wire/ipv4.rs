//! IPv4 headers (RFC 791), options included.

use super::bytes::{self, Field};
use super::checksum;
use super::ParseError;

mod field {
    use super::Field;
    pub const VERSION_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLAGS_FRAG_OFFSET: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Don't Fragment, in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// More Fragments, in the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. The buffer may extend past the packet (Ethernet padding):
/// [`payload`](Self::payload) is bounded by the total length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Version is 4, IHL >= 5, the header fits, and header <= total length <= buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if self.version() != 4 {
            return Err(ParseError::BadIpVersion);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(ParseError::BadIhl);
        }
        if len < header_len {
            return Err(ParseError::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(ParseError::BadTotalLength);
        }
        if len < total_len {
            return Err(ParseError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::VERSION_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(bytes::u8_at(self.buffer.as_ref(), field::VERSION_IHL) & 0x0f) * 4
    }

    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::DSCP_ECN)
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    fn flags_frag_offset(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::FLAGS_FRAG_OFFSET.start)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag_offset() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_frag_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_frag_offset() & FRAG_OFFSET_MASK) << 3
    }

    /// MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag_offset() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::TTL)
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::PROTOCOL)
    }

    #[inline]
    pub fn header_checksum(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        bytes::array(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        bytes::array(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// The whole header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        bytes::slice(self.buffer.as_ref(), 0..self.header_len())
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        bytes::slice(self.buffer.as_ref(), MIN_HEADER_LEN..self.header_len())
    }

    /// The payload up to the total length (trailing Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        bytes::slice(
            self.buffer.as_ref(),
            self.header_len()..usize::from(self.total_len()),
        )
    }

    /// Whether the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.header())
    }

    /// Unfolded pseudo-header sum for this packet's L4 checksum (length = total - header).
    #[inline]
    pub fn pseudo_header_sum(&self) -> u64 {
        let l4_len = usize::from(self.total_len()).saturating_sub(self.header_len());
        checksum::pseudo_header_v4(
            &self.src_addr(),
            &self.dst_addr(),
            self.protocol(),
            l4_len as u16,
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        bytes::put_u8(self.buffer.as_mut(), field::VERSION_IHL, 0x40 | ihl);
    }

    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        bytes::put_u8(self.buffer.as_mut(), field::DSCP_ECN, value);
    }

    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::TOTAL_LEN.start, value);
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    /// Sets DF, MF and the fragment offset (in bytes; the low 3 bits are dropped).
    #[inline]
    pub fn set_fragment(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut word = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            word |= FLAG_DF;
        }
        if more_frags {
            word |= FLAG_MF;
        }
        bytes::put_u16(self.buffer.as_mut(), field::FLAGS_FRAG_OFFSET.start, word);
    }

    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        bytes::put_u8(self.buffer.as_mut(), field::TTL, value);
    }

    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        bytes::put_u8(self.buffer.as_mut(), field::PROTOCOL, value);
    }

    #[inline]
    pub fn set_header_checksum(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address; the header checksum is left as it was.
    #[inline]
    pub fn set_src_addr(&mut self, addr: [u8; 4]) {
        bytes::put(self.buffer.as_mut(), field::SRC_ADDR.start, &addr);
    }

    /// Sets the destination address; the header checksum is left as it was.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: [u8; 4]) {
        bytes::put(self.buffer.as_mut(), field::DST_ADDR.start, &addr);
    }

    /// Rewrites the source address and updates the header checksum incrementally.
    #[inline]
    pub fn rewrite_src_addr(&mut self, addr: [u8; 4]) {
        let csum = checksum::update_addr4(self.header_checksum(), &self.src_addr(), &addr);
        self.set_src_addr(addr);
        self.set_header_checksum(csum);
    }

    /// Rewrites the destination address and updates the header checksum incrementally.
    #[inline]
    pub fn rewrite_dst_addr(&mut self, addr: [u8; 4]) {
        let csum = checksum::update_addr4(self.header_checksum(), &self.dst_addr(), &addr);
        self.set_dst_addr(addr);
        self.set_header_checksum(csum);
    }

    /// Decrements the TTL and updates the checksum incrementally; returns the new TTL (0 stays 0).
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        let new_ttl = ttl.saturating_sub(1);
        // TTL is the high byte of the word it shares with the protocol.
        let protocol = u16::from(self.protocol());
        let old_word = u16::from(ttl) << 8 | protocol;
        let new_word = u16::from(new_ttl) << 8 | protocol;
        let csum = checksum::update_u16(self.header_checksum(), old_word, new_word);
        self.set_ttl(new_ttl);
        self.set_header_checksum(csum);
        new_ttl
    }

    /// Computes and stores the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_header_checksum(0);
        let csum = checksum::internet_checksum(self.header());
        self.set_header_checksum(csum);
    }

    /// The payload up to the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        bytes::slice_mut(self.buffer.as_mut(), range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A UDP/IPv4 header shaped like a captured DNS query (DF set, checksum left zero), followed
    // by 8 UDP bytes and 4 bytes of Ethernet padding that the total length (28) excludes.
    const PACKET: [u8; 32] = [
        0x45, 0x00, 0x00, 0x1c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc6, 0x12, 0x00,
        0x01, 0xc6, 0x12, 0x64, 0x0a, // header
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP
        0, 0, 0, 0, // padding
    ];

    #[test]
    fn reads_fields_and_bounds_payload() {
        let packet = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.total_len(), 28);
        assert_eq!(packet.ident(), 0x1c46);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), 17);
        assert_eq!(packet.src_addr(), [198, 18, 0, 1]);
        assert_eq!(packet.dst_addr(), [198, 18, 100, 10]);
        assert_eq!(packet.payload().len(), 8);
        assert!(packet.options().is_empty());
    }

    #[test]
    fn checksum_fill_verify_and_incremental() {
        let mut data = PACKET;
        let mut packet = Ipv4Packet::new_checked(&mut data[..]).unwrap();
        assert!(!packet.verify_checksum());
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        let theirs = etherparse::Ipv4HeaderSlice::from_slice(&PACKET)
            .unwrap()
            .to_header()
            .calc_header_checksum();
        assert_eq!(packet.header_checksum(), theirs);

        assert_eq!(packet.decrement_ttl(), 63);
        assert!(packet.verify_checksum());
        packet.rewrite_src_addr([10, 1, 2, 3]);
        packet.rewrite_dst_addr([255, 255, 255, 255]);
        assert!(packet.verify_checksum());
        let incremental = packet.header_checksum();
        packet.fill_checksum();
        assert_eq!(packet.header_checksum(), incremental);
    }

    #[test]
    fn rejects_bad_headers() {
        let check = |bytes: &[u8]| Ipv4Packet::new_checked(bytes).map(|_| ());
        assert_eq!(check(&PACKET[..19]), Err(ParseError::Truncated));
        let mut bad = PACKET;
        bad[0] = 0x65;
        assert_eq!(check(&bad), Err(ParseError::BadIpVersion));
        bad[0] = 0x44;
        assert_eq!(check(&bad), Err(ParseError::BadIhl));
        bad[0] = 0x4f; // 60-byte header in a 32-byte buffer
        assert_eq!(check(&bad), Err(ParseError::Truncated));
        bad[0] = 0x45;
        bad[3] = 19;
        assert_eq!(check(&bad), Err(ParseError::BadTotalLength));
        bad[3] = 33;
        assert_eq!(check(&bad), Err(ParseError::Truncated));
    }

    #[test]
    fn options_and_fragments() {
        use etherparse::{IpNumber, Ipv4Header, Ipv4Options};
        let mut header = Ipv4Header::new(8, 3, IpNumber::TCP, [1, 2, 3, 4], [5, 6, 7, 8]).unwrap();
        header.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).unwrap();
        header.more_fragments = true;
        header.fragment_offset = 185.try_into().unwrap();
        header.identification = 0xbeef;
        header.total_len = 24 + 8; // `new` counted no options
        header.header_checksum = header.calc_header_checksum();
        let mut data = header.to_bytes().to_vec();
        data.extend_from_slice(&[0xaa; 8]);
        let packet = Ipv4Packet::new_checked(&data[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert!(packet.more_frags());
        assert!(packet.is_fragment());
        assert_eq!(packet.frag_offset(), 185 * 8);
        assert_eq!(packet.ident(), 0xbeef);
        assert_eq!(packet.payload(), &[0xaa; 8]);
        assert!(packet.verify_checksum());
    }
}
