//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) messages: echo and the error messages that quote the
//! packet that caused them.
//!
//! Both share the first eight bytes (type, code, checksum, four bytes that depend on the type);
//! an error message then quotes the offending IP header and at least the first 8 bytes of its L4
//! header, which is all a NAT needs to find the connection (the quote may stop right there).

use super::bytes::{self, Field};
use super::checksum;
use super::ParseError;

/// ICMPv4 message types.
pub mod v4_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;

    /// Error messages that quote the offending packet.
    #[inline]
    pub const fn is_error(msg_type: u8) -> bool {
        matches!(
            msg_type,
            DEST_UNREACHABLE | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }

    #[inline]
    pub const fn is_echo(msg_type: u8) -> bool {
        matches!(msg_type, ECHO_REQUEST | ECHO_REPLY)
    }
}

/// ICMPv6 message types.
pub mod v6_type {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;

    /// Error messages that quote the offending packet.
    #[inline]
    pub const fn is_error(msg_type: u8) -> bool {
        matches!(
            msg_type,
            DEST_UNREACHABLE | PACKET_TOO_BIG | TIME_EXCEEDED | PARAMETER_PROBLEM
        )
    }

    #[inline]
    pub const fn is_echo(msg_type: u8) -> bool {
        matches!(msg_type, ECHO_REQUEST | ECHO_REPLY)
    }
}

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// Type-specific: echo identifier and sequence number, MTU, pointer, gateway.
    pub const REST_OF_HEADER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQ_NO: Field = 6..8;
}

/// Length of the common header; an error message's quote starts here.
pub const HEADER_LEN: usize = 8;

/// Accessors that ICMPv4 and ICMPv6 share.
macro_rules! common_accessors {
    ($packet:ident, $types:ident) => {
        impl<T: AsRef<[u8]>> $packet<T> {
            #[inline]
            pub const fn new_unchecked(buffer: T) -> Self {
                $packet { buffer }
            }

            /// Wraps a buffer after [`check_len`](Self::check_len).
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// The common 8-byte header fits.
            #[inline]
            pub fn check_len(&self) -> Result<(), ParseError> {
                if self.buffer.as_ref().len() < HEADER_LEN {
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
            pub fn msg_type(&self) -> u8 {
                bytes::u8_at(self.buffer.as_ref(), field::TYPE)
            }

            #[inline]
            pub fn msg_code(&self) -> u8 {
                bytes::u8_at(self.buffer.as_ref(), field::CODE)
            }

            #[inline]
            pub fn checksum(&self) -> u16 {
                bytes::u16_at(self.buffer.as_ref(), field::CHECKSUM.start)
            }

            /// The four type-specific bytes after the checksum.
            #[inline]
            pub fn rest_of_header(&self) -> u32 {
                bytes::u32_at(self.buffer.as_ref(), field::REST_OF_HEADER.start)
            }

            /// Echo identifier (meaningful for echo request/reply).
            #[inline]
            pub fn echo_ident(&self) -> u16 {
                bytes::u16_at(self.buffer.as_ref(), field::ECHO_IDENT.start)
            }

            /// Echo sequence number (meaningful for echo request/reply).
            #[inline]
            pub fn echo_seq_no(&self) -> u16 {
                bytes::u16_at(self.buffer.as_ref(), field::ECHO_SEQ_NO.start)
            }

            #[inline]
            pub fn is_echo(&self) -> bool {
                $types::is_echo(self.msg_type())
            }

            /// An error message, which quotes the packet that caused it.
            #[inline]
            pub fn is_error(&self) -> bool {
                $types::is_error(self.msg_type())
            }

            /// For an error: the quoted IP header and whatever of its payload was kept (often
            /// just the first 8 bytes of the L4 header). Empty for other messages.
            #[inline]
            pub fn embedded(&self) -> &[u8] {
                if self.is_error() {
                    self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
                } else {
                    &[]
                }
            }

            /// Everything after the common header (echo data, quoted packet, …).
            #[inline]
            pub fn payload(&self) -> &[u8] {
                self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $packet<T> {
            #[inline]
            pub fn set_msg_type(&mut self, value: u8) {
                bytes::put_u8(self.buffer.as_mut(), field::TYPE, value);
            }

            #[inline]
            pub fn set_msg_code(&mut self, value: u8) {
                bytes::put_u8(self.buffer.as_mut(), field::CODE, value);
            }

            #[inline]
            pub fn set_checksum(&mut self, value: u16) {
                bytes::put_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
            }

            #[inline]
            pub fn set_rest_of_header(&mut self, value: u32) {
                bytes::put_u32(self.buffer.as_mut(), field::REST_OF_HEADER.start, value);
            }

            #[inline]
            pub fn set_echo_ident(&mut self, value: u16) {
                bytes::put_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, value);
            }

            #[inline]
            pub fn set_echo_seq_no(&mut self, value: u16) {
                bytes::put_u16(self.buffer.as_mut(), field::ECHO_SEQ_NO.start, value);
            }

            /// Rewrites the echo identifier (the "port" of ICMP NAT) and updates the checksum
            /// incrementally.
            #[inline]
            pub fn rewrite_echo_ident(&mut self, ident: u16) {
                let csum = checksum::update_u16(self.checksum(), self.echo_ident(), ident);
                self.set_echo_ident(ident);
                self.set_checksum(csum);
            }

            /// The quoted packet of an error message, for rewriting it.
            #[inline]
            pub fn embedded_mut(&mut self) -> &mut [u8] {
                if self.is_error() {
                    self.buffer
                        .as_mut()
                        .get_mut(HEADER_LEN..)
                        .unwrap_or(&mut [])
                } else {
                    &mut []
                }
            }
        }
    };
}

/// A view of an ICMPv4 message; the buffer is the whole message (IP payload), which the
/// checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

common_accessors!(Icmpv4Packet, v4_type);

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Whether the checksum (over the message alone, no pseudo-header) verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let csum = checksum::internet_checksum(self.buffer.as_ref());
        self.set_checksum(csum);
    }
}

/// A view of an ICMPv6 message; the buffer is the whole message (upper-layer payload), which the
/// checksum covers together with the IPv6 pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

common_accessors!(Icmpv6Packet, v6_type);

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Whether the checksum verifies, given the pseudo-header sum
    /// ([`checksum::pseudo_header_v6`] with next header 58 and this buffer's length).
    #[inline]
    pub fn verify_checksum(&self, pseudo_header: u64) -> bool {
        checksum::fold(checksum::combine(
            pseudo_header,
            checksum::sum(self.buffer.as_ref()),
        )) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    #[inline]
    pub fn fill_checksum(&mut self, pseudo_header: u64) {
        self.set_checksum(0);
        let csum = checksum::finish(checksum::combine(
            pseudo_header,
            checksum::sum(self.buffer.as_ref()),
        ));
        self.set_checksum(csum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder};

    // A `ping` echo request (id 0x1c2d, seq 1) with 8 bytes of data and its checksum.
    const ECHO: [u8; 16] = [
        0x08, 0x00, 0x4a, 0x3c, 0x1c, 0x2d, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    #[test]
    fn echo_request() {
        let icmp = Icmpv4Packet::new_checked(&ECHO[..]).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.msg_code()),
            (v4_type::ECHO_REQUEST, 0)
        );
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x1c2d, 1));
        assert!(icmp.is_echo() && !icmp.is_error());
        assert!(icmp.embedded().is_empty());
        let theirs = Icmpv4Type::EchoRequest(etherparse::IcmpEchoHeader { id: 0x1c2d, seq: 1 })
            .calc_checksum(&ECHO[8..]);
        let mut data = ECHO;
        let mut icmp = Icmpv4Packet::new_checked(&mut data[..]).unwrap();
        icmp.fill_checksum();
        assert_eq!(icmp.checksum(), theirs);
        assert!(icmp.verify_checksum());
        icmp.rewrite_echo_ident(0xffff);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn v4_error_quotes_the_packet() {
        // Port unreachable for a UDP datagram: quote = its IP header + 8 bytes of UDP.
        let mut quoted = Vec::new();
        PacketBuilder::ipv4([198, 18, 0, 1], [198, 18, 100, 10], 64)
            .udp(40000, 53)
            .write(&mut quoted, &[1, 2, 3, 4])
            .unwrap();
        quoted.truncate(28);
        let mut message = Vec::new();
        PacketBuilder::ipv4([198, 18, 100, 10], [198, 18, 0, 1], 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut message, &quoted)
            .unwrap();
        let icmp = Icmpv4Packet::new_checked(&message[20..]).unwrap();
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (3, 3));
        assert!(icmp.is_error() && !icmp.is_echo());
        assert_eq!(icmp.embedded(), &quoted[..]);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn v6_echo_and_error_checksums() {
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut packet = Vec::new();
        PacketBuilder::ipv6(src, dst, 64)
            .icmpv6_echo_request(7, 9)
            .write(&mut packet, b"ping")
            .unwrap();
        let message = &mut packet[40..];
        let pseudo = checksum::pseudo_header_v6(&src, &dst, 58, message.len() as u32);
        let mut icmp = Icmpv6Packet::new_checked(&mut message[..]).unwrap();
        assert_eq!(
            (icmp.msg_type(), icmp.echo_ident(), icmp.echo_seq_no()),
            (128, 7, 9)
        );
        assert!(icmp.is_echo());
        assert!(icmp.verify_checksum(pseudo));
        let theirs = icmp.checksum();
        icmp.fill_checksum(pseudo);
        assert_eq!(icmp.checksum(), theirs);

        let mut packet = Vec::new();
        PacketBuilder::ipv6(src, dst, 64)
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(&mut packet, &[0x60; 48])
            .unwrap();
        let message = &packet[40..];
        let pseudo = checksum::pseudo_header_v6(&src, &dst, 58, message.len() as u32);
        let icmp = Icmpv6Packet::new_checked(message).unwrap();
        assert!(icmp.is_error());
        assert_eq!(icmp.rest_of_header(), 1280);
        assert_eq!(icmp.embedded().len(), 48);
        assert!(icmp.verify_checksum(pseudo));
        assert_eq!(
            Icmpv6Packet::new_checked(&message[..7]),
            Err(ParseError::Truncated)
        );
    }
}
