//! UDP datagrams (RFC 768).

use super::bytes::{self, Field};
use super::checksum;
use super::ParseError;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram. The buffer is the IP payload; the datagram is bounded by the UDP
/// length field, which must not exceed it.
///
/// A stored checksum of 0 means "not computed" (IPv4 only; IPv6 requires one). Callers skip
/// [`verify_checksum`](Self::verify_checksum) and the `rewrite_*` updates keep a 0 as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The header fits and 8 <= length field <= buffer length.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let udp_len = usize::from(self.len());
        if udp_len < HEADER_LEN || udp_len > len {
            return Err(ParseError::BadL4Length);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header plus payload.
    #[inline]
    pub fn len(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Whether the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The payload up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        bytes::slice(self.buffer.as_ref(), HEADER_LEN..usize::from(self.len()))
    }

    /// The datagram (header + payload) as the length field bounds it.
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        bytes::slice(self.buffer.as_ref(), 0..usize::from(self.len()))
    }

    /// Whether the checksum verifies, given the pseudo-header sum computed with the UDP length.
    /// Strict: a stored 0 ("no checksum") does not verify; callers decide what 0 means.
    #[inline]
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        checksum::fold(checksum::combine(
            pseudo_header,
            checksum::sum(self.datagram()),
        )) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    #[inline]
    pub fn set_len(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Applies an incremental update, keeping "no checksum" (0) as is and never storing a
    /// computed 0 (sent as 0xffff instead, RFC 768).
    #[inline]
    pub fn update_checksum(&mut self, update: impl FnOnce(u16) -> u16) {
        let stored = self.checksum();
        if stored != 0 {
            self.set_checksum(nonzero(update(stored)));
        }
    }

    /// Rewrites the source port and updates the checksum incrementally (if there is one).
    #[inline]
    pub fn rewrite_src_port(&mut self, port: u16) {
        let old = self.src_port();
        self.update_checksum(|csum| checksum::update_u16(csum, old, port));
        self.set_src_port(port);
    }

    /// Rewrites the destination port and updates the checksum incrementally (if there is one).
    #[inline]
    pub fn rewrite_dst_port(&mut self, port: u16) {
        let old = self.dst_port();
        self.update_checksum(|csum| checksum::update_u16(csum, old, port));
        self.set_dst_port(port);
    }

    /// Computes and stores the checksum (a computed 0 is stored as 0xffff).
    #[inline]
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let csum = checksum::finish(checksum::combine(
            pseudo_header,
            checksum::sum(self.datagram()),
        ));
        self.set_checksum(nonzero(csum));
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        bytes::slice_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }
}

/// 0 is reserved for "no checksum": the same value in one's complement is 0xffff.
#[inline]
const fn nonzero(csum: u16) -> u16 {
    if csum == 0 {
        0xffff
    } else {
        csum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 4] = [198, 18, 0, 1];
    const DST: [u8; 4] = [198, 18, 100, 10];
    // A DNS query for "example.com" A, from port 40000 to 53, checksum left zero.
    const DNS: [u8; 37] = [
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x25, 0x00, 0x00, // header
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 0x03, b'c', b'o', b'm', 0x00, //
        0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn reads_and_checksums_like_etherparse() {
        let mut data = DNS;
        let pseudo = checksum::pseudo_header_v4(&SRC, &DST, 17, DNS.len() as u16);
        let mut udp = UdpPacket::new_checked(&mut data[..]).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len()), (40000, 53, 37));
        assert_eq!(udp.payload().len(), 29);
        udp.fill_checksum(pseudo);
        assert!(udp.verify_checksum(pseudo));
        let theirs = etherparse::UdpHeader {
            source_port: 40000,
            destination_port: 53,
            length: 37,
            checksum: 0,
        }
        .calc_checksum_ipv4_raw(SRC, DST, &DNS[8..])
        .unwrap();
        assert_eq!(udp.checksum(), theirs);

        udp.rewrite_src_port(12345);
        udp.rewrite_dst_port(5353);
        assert!(udp.verify_checksum(pseudo));
        let incremental = udp.checksum();
        udp.fill_checksum(pseudo);
        assert_eq!(udp.checksum(), incremental);
    }

    #[test]
    fn zero_checksum_stays_zero_and_computed_zero_becomes_ffff() {
        let mut data = DNS;
        let mut udp = UdpPacket::new_checked(&mut data[..]).unwrap();
        udp.rewrite_src_port(1);
        assert_eq!(udp.checksum(), 0);
        // Pick the pseudo-header sum so the datagram sums to 0xffff: the checksum is then 0.
        udp.set_checksum(0);
        let partial = checksum::fold(checksum::sum(udp.datagram()));
        udp.fill_checksum(u64::from(!partial));
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum(u64::from(!partial)));
    }

    #[test]
    fn length_checks_ignore_trailing_bytes() {
        let mut data = [0u8; 48];
        data[..37].copy_from_slice(&DNS);
        let udp = UdpPacket::new_checked(&data[..]).unwrap();
        assert_eq!(udp.payload().len(), 29);
        assert_eq!(
            UdpPacket::new_checked(&DNS[..7]),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            UdpPacket::new_checked(&DNS[..36]),
            Err(ParseError::BadL4Length)
        );
        let mut short = DNS;
        short[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&short[..]),
            Err(ParseError::BadL4Length)
        );
    }
}
