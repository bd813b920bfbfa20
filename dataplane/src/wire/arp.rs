//! ARP for Ethernet and IPv4 (RFC 826): hardware type 1, protocol type 0x0800.

use super::bytes::{self, Field};
use super::ethernet::{ethertype, EthernetFrame, MacAddr};
use super::ParseError;

/// ARP operation codes.
pub mod operation {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

mod field {
    use super::Field;
    pub const HARDWARE_TYPE: Field = 0..2;
    pub const PROTOCOL_TYPE: Field = 2..4;
    pub const HARDWARE_LEN: usize = 4;
    pub const PROTOCOL_LEN: usize = 5;
    pub const OPERATION: Field = 6..8;
    pub const SENDER_HARDWARE_ADDR: Field = 8..14;
    pub const SENDER_PROTOCOL_ADDR: Field = 14..18;
    pub const TARGET_HARDWARE_ADDR: Field = 18..24;
    pub const TARGET_PROTOCOL_ADDR: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TARGET_PROTOCOL_ADDR.end;
/// Hardware type Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and [`check_format`](Self::check_format).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_format()?;
        Ok(packet)
    }

    #[inline]
    pub fn check_len(&self) -> Result<(), ParseError> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(ParseError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Ethernet/IPv4 addresses (the only kind the appliance answers).
    #[inline]
    pub fn check_format(&self) -> Result<(), ParseError> {
        if self.hardware_type() == HARDWARE_ETHERNET
            && self.protocol_type() == ethertype::IPV4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
        {
            Ok(())
        } else {
            Err(ParseError::UnsupportedArp)
        }
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::HARDWARE_TYPE.start)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::PROTOCOL_TYPE.start)
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::HARDWARE_LEN)
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        bytes::u8_at(self.buffer.as_ref(), field::PROTOCOL_LEN)
    }

    /// [`operation::REQUEST`] or [`operation::REPLY`] (or anything else on the wire).
    #[inline]
    pub fn operation(&self) -> u16 {
        bytes::u16_at(self.buffer.as_ref(), field::OPERATION.start)
    }

    #[inline]
    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr(bytes::array(
            self.buffer.as_ref(),
            field::SENDER_HARDWARE_ADDR.start,
        ))
    }

    #[inline]
    pub fn sender_protocol_addr(&self) -> [u8; 4] {
        bytes::array(self.buffer.as_ref(), field::SENDER_PROTOCOL_ADDR.start)
    }

    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr(bytes::array(
            self.buffer.as_ref(),
            field::TARGET_HARDWARE_ADDR.start,
        ))
    }

    #[inline]
    pub fn target_protocol_addr(&self) -> [u8; 4] {
        bytes::array(self.buffer.as_ref(), field::TARGET_PROTOCOL_ADDR.start)
    }

    /// A gratuitous ARP announces the sender's own address (sender == target protocol address).
    #[inline]
    pub fn is_gratuitous(&self) -> bool {
        self.sender_protocol_addr() == self.target_protocol_addr()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the fixed Ethernet/IPv4 format fields (hardware/protocol type and lengths).
    #[inline]
    pub fn set_ethernet_ipv4_format(&mut self) {
        let data = self.buffer.as_mut();
        bytes::put_u16(data, field::HARDWARE_TYPE.start, HARDWARE_ETHERNET);
        bytes::put_u16(data, field::PROTOCOL_TYPE.start, ethertype::IPV4);
        bytes::put_u8(data, field::HARDWARE_LEN, 6);
        bytes::put_u8(data, field::PROTOCOL_LEN, 4);
    }

    #[inline]
    pub fn set_operation(&mut self, value: u16) {
        bytes::put_u16(self.buffer.as_mut(), field::OPERATION.start, value);
    }

    #[inline]
    pub fn set_sender_hardware_addr(&mut self, addr: MacAddr) {
        bytes::put(
            self.buffer.as_mut(),
            field::SENDER_HARDWARE_ADDR.start,
            &addr.0,
        );
    }

    #[inline]
    pub fn set_sender_protocol_addr(&mut self, addr: [u8; 4]) {
        bytes::put(
            self.buffer.as_mut(),
            field::SENDER_PROTOCOL_ADDR.start,
            &addr,
        );
    }

    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: MacAddr) {
        bytes::put(
            self.buffer.as_mut(),
            field::TARGET_HARDWARE_ADDR.start,
            &addr.0,
        );
    }

    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: [u8; 4]) {
        bytes::put(
            self.buffer.as_mut(),
            field::TARGET_PROTOCOL_ADDR.start,
            &addr,
        );
    }

    /// Turns a request for one of our addresses into the reply, in place: the asker becomes the
    /// target and we (`our_mac`, the address that was asked for) become the sender.
    #[inline]
    pub fn make_reply(&mut self, our_mac: MacAddr) {
        let asker_mac = self.sender_hardware_addr();
        let asker_ip = self.sender_protocol_addr();
        let asked_ip = self.target_protocol_addr();
        self.set_operation(operation::REPLY);
        self.set_target_hardware_addr(asker_mac);
        self.set_target_protocol_addr(asker_ip);
        self.set_sender_hardware_addr(our_mac);
        self.set_sender_protocol_addr(asked_ip);
    }
}

/// Turns a whole frame holding an ARP request (ARP at `arp_offset`, after any VLAN tags) into
/// the reply, in place: the Ethernet destination becomes the asker, the source `our_mac`, VLAN
/// tags are kept. Fails, leaving the frame untouched, if it is not an Ethernet/IPv4 request.
pub fn reply_in_place(
    frame: &mut [u8],
    arp_offset: usize,
    our_mac: MacAddr,
) -> Result<(), ParseError> {
    let arp_bytes = frame.get_mut(arp_offset..).ok_or(ParseError::Truncated)?;
    let mut arp = ArpPacket::new_checked(arp_bytes)?;
    if arp.operation() != operation::REQUEST {
        return Err(ParseError::UnsupportedArp);
    }
    let asker = arp.sender_hardware_addr();
    arp.make_reply(our_mac);
    let mut ethernet = EthernetFrame::new_unchecked(frame);
    ethernet.set_dst_addr(asker);
    ethernet.set_src_addr(our_mac);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // "Who has 198.18.0.1? Tell 198.18.0.2", broadcast, as a veth carries it (no padding).
    const REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 198, 18, 0, 2, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 1,
    ];

    #[test]
    fn parses_a_request() {
        let arp = ArpPacket::new_checked(&REQUEST[14..]).unwrap();
        assert_eq!(arp.operation(), operation::REQUEST);
        assert_eq!(arp.sender_hardware_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(arp.sender_protocol_addr(), [198, 18, 0, 2]);
        assert_eq!(arp.target_hardware_addr(), MacAddr::ZERO);
        assert_eq!(arp.target_protocol_addr(), [198, 18, 0, 1]);
        assert!(!arp.is_gratuitous());
    }

    #[test]
    fn replies_in_place() {
        let ours = MacAddr([0x02, 0xaa, 0, 0, 0, 1]);
        let mut frame = REQUEST;
        reply_in_place(&mut frame, 14, ours).unwrap();
        let ethernet = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(ethernet.dst_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(ethernet.src_addr(), ours);
        let arp = ArpPacket::new_checked(&frame[14..]).unwrap();
        assert_eq!(arp.operation(), operation::REPLY);
        assert_eq!(arp.sender_hardware_addr(), ours);
        assert_eq!(arp.sender_protocol_addr(), [198, 18, 0, 1]);
        assert_eq!(arp.target_hardware_addr(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(arp.target_protocol_addr(), [198, 18, 0, 2]);
        // A reply is not answered again.
        assert_eq!(
            reply_in_place(&mut frame, 14, ours),
            Err(ParseError::UnsupportedArp)
        );
    }

    #[test]
    fn rejects_short_and_foreign_formats() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[14..41]),
            Err(ParseError::Truncated)
        );
        let mut frame = REQUEST;
        frame[15] = 6; // hardware type IEEE 802
        assert_eq!(
            ArpPacket::new_checked(&frame[14..]),
            Err(ParseError::UnsupportedArp)
        );
        assert_eq!(
            reply_in_place(&mut frame, 100, MacAddr::ZERO),
            Err(ParseError::Truncated)
        );
    }
}
