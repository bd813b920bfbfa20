//! TCP segments (RFC 9293).

use core::fmt;

use super::bytes::{self, Field};
use super::checksum;
use super::ParseError;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in the high nibble.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// The TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Copy, Clone, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    /// Whether all of `bits` are set.
    #[inline]
    pub const fn contains(self, bits: u8) -> bool {
        self.0 & bits == bits
    }

    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    #[inline]
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    #[inline]
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    #[inline]
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }

    /// A connection-opening SYN (SYN without ACK).
    #[inline]
    pub const fn is_initial_syn(self) -> bool {
        self.0 & (Self::SYN | Self::ACK) == Self::SYN
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u8, &str); 8] = [
            (TcpFlags::CWR, "CWR"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::FIN, "FIN"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// A view of a TCP segment. The buffer must be exactly the segment (IP payload, bounded by the
/// IP length): the payload runs to its end and the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The fixed header fits, the data offset is >= 5 and the options fit.
    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN || header_len > len {
            return Err(ParseError::BadTcpHeaderLength);
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        bytes::u32_at(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        bytes::u32_at(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(bytes::u8_at(self.buffer.as_ref(), field::DATA_OFFSET) >> 4) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(bytes::u8_at(self.buffer.as_ref(), field::FLAGS))
    }

    #[inline]
    pub fn window_len(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::WINDOW.start)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::URGENT.start)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        bytes::slice(self.buffer.as_ref(), MIN_HEADER_LEN..self.header_len())
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }

    /// Whether the checksum verifies, given the pseudo-header sum
    /// ([`checksum::pseudo_header_v4`]/[`checksum::pseudo_header_v6`] with this buffer's length).
    #[inline]
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        checksum::fold(checksum::combine(
            pseudo_header,
            checksum::sum(self.buffer.as_ref()),
        )) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        bytes::put_u32(self.buffer.as_mut(), field::SEQ_NUM.start, value);
    }

    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        bytes::put_u32(self.buffer.as_mut(), field::ACK_NUM.start, value);
    }

    /// Sets the header length in bytes (a multiple of 4, 20..=60); reserved bits are cleared.
    #[inline]
    pub fn set_header_len(&mut self, header_len: usize) {
        let offset = ((header_len / 4) & 0x0f) as u8;
        bytes::put_u8(self.buffer.as_mut(), field::DATA_OFFSET, offset << 4);
    }

    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        bytes::put_u8(self.buffer.as_mut(), field::FLAGS, flags.0);
    }

    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::WINDOW.start, value);
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::URGENT.start, value);
    }

    /// Rewrites the source port and updates the checksum incrementally.
    #[inline]
    pub fn rewrite_src_port(&mut self, port: u16) {
        let csum = checksum::update_u16(self.checksum(), self.src_port(), port);
        self.set_src_port(port);
        self.set_checksum(csum);
    }

    /// Rewrites the destination port and updates the checksum incrementally.
    #[inline]
    pub fn rewrite_dst_port(&mut self, port: u16) {
        let csum = checksum::update_u16(self.checksum(), self.dst_port(), port);
        self.set_dst_port(port);
        self.set_checksum(csum);
    }

    /// Computes and stores the checksum over the pseudo-header sum and the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let csum = checksum::finish(checksum::combine(
            pseudo_header,
            checksum::sum(self.buffer.as_ref()),
        ));
        self.set_checksum(csum);
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

    // A SYN shaped like Linux's, 198.18.0.1:40000 -> 198.18.100.10:80, with MSS,
    // SACK-permitted, timestamps, NOP and window scale options (40-byte header); etherparse
    // writes it, checksum included.
    const SRC: [u8; 4] = [198, 18, 0, 1];
    const DST: [u8; 4] = [198, 18, 100, 10];

    fn syn() -> Vec<u8> {
        let options = [
            etherparse::TcpOptionElement::MaximumSegmentSize(1460),
            etherparse::TcpOptionElement::SelectiveAcknowledgementPermitted,
            etherparse::TcpOptionElement::Timestamp(0x1234_5678, 0),
            etherparse::TcpOptionElement::Noop,
            etherparse::TcpOptionElement::WindowScale(7),
        ];
        let builder = etherparse::PacketBuilder::ipv4(SRC, DST, 64)
            .tcp(40000, 80, 0x0102_0304, 64240)
            .syn()
            .options(&options)
            .unwrap();
        let mut packet = Vec::new();
        builder.write(&mut packet, &[]).unwrap();
        packet.split_off(20)
    }

    #[test]
    fn parses_a_syn_with_options() {
        let segment = syn();
        let tcp = TcpPacket::new_checked(&segment[..]).unwrap();
        assert_eq!(tcp.src_port(), 40000);
        assert_eq!(tcp.dst_port(), 80);
        assert_eq!(tcp.seq_number(), 0x0102_0304);
        assert_eq!(tcp.ack_number(), 0);
        assert_eq!(tcp.header_len(), 40);
        assert!(tcp.flags().syn() && tcp.flags().is_initial_syn());
        assert!(!tcp.flags().ack());
        assert_eq!(format!("{:?}", tcp.flags()), "SYN");
        assert_eq!(tcp.window_len(), 64240);
        assert_eq!(tcp.options().len(), 20);
        assert!(tcp.payload().is_empty());
        let pseudo = checksum::pseudo_header_v4(&SRC, &DST, 6, segment.len() as u16);
        assert!(tcp.verify_checksum(pseudo));
    }

    #[test]
    fn fill_matches_etherparse_and_rewrites_are_incremental() {
        let mut segment = syn();
        segment.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let pseudo = checksum::pseudo_header_v4(&SRC, &DST, 6, segment.len() as u16);
        let mut tcp = TcpPacket::new_checked(&mut segment[..]).unwrap();
        tcp.set_flags(TcpFlags(TcpFlags::ACK | TcpFlags::PSH));
        tcp.fill_checksum(pseudo);
        assert!(tcp.verify_checksum(pseudo));
        let header = etherparse::TcpHeaderSlice::from_slice(&segment)
            .unwrap()
            .to_header();
        let theirs = header
            .calc_checksum_ipv4_raw(SRC, DST, &segment[40..])
            .unwrap();
        let mut tcp = TcpPacket::new_checked(&mut segment[..]).unwrap();
        assert_eq!(tcp.checksum(), theirs);
        tcp.rewrite_src_port(1);
        tcp.rewrite_dst_port(0xffff);
        assert!(tcp.verify_checksum(pseudo));
        assert_eq!(tcp.payload(), b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn rejects_bad_data_offsets() {
        let mut segment = syn();
        assert_eq!(
            TcpPacket::new_checked(&segment[..19]),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            TcpPacket::new_checked(&segment[..39]),
            Err(ParseError::BadTcpHeaderLength)
        );
        segment[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&segment[..]),
            Err(ParseError::BadTcpHeaderLength)
        );
        let tcp = TcpPacket::new_unchecked(&segment[..]);
        assert!(tcp.options().is_empty());
    }
}
