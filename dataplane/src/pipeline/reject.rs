//! Answers the appliance builds in place of a packet: a TCP reset or ICMP port unreachable for
//! a refused flow, and an echo reply for a ping to a VIP. Each turns the received frame into the
//! answer (same buffer, resized) addressed back to the sender's link.

use super::rewrite::{addr_wire_bytes, read16, swap_macs, write16};
use super::PacketBuf;
use crate::wire::{checksum, PacketInfo};

const PROTO_TCP: u8 = 6;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;
const TCP_HEADER: usize = 20;
const DEFAULT_TTL: u8 = 64;
/// ICMPv6 errors quote as much as fits in the minimum IPv6 MTU (RFC 4443 §2.4).
const IPV6_MIN_MTU: usize = 1280;

/// Turns a TCP segment into the RST that RFC 793 prescribes for a closed port. Options and
/// payload are dropped; IP options and IPv6 extension headers are not carried over.
pub fn tcp_reset<B: PacketBuf + ?Sized>(buf: &mut B, info: &PacketInfo) -> bool {
    let l3 = usize::from(info.l3_offset);
    let l4 = usize::from(info.l4_offset);
    let frame = buf.data();
    if frame.len() < l4 + TCP_HEADER {
        return false;
    }
    let seq = read32(frame, l4 + 4);
    let ack = read32(frame, l4 + 8);
    let data_offset = usize::from(frame[l4 + 12] >> 4) * 4;
    let payload = usize::from(info.l4_len).saturating_sub(data_offset) as u32;
    let flags = info.tcp_flags;
    let (rst_seq, rst_ack, rst_flags) = if flags.ack() {
        (ack, 0u32, 0x04u8)
    } else {
        let len = payload + u32::from(flags.syn()) + u32::from(flags.fin());
        (0u32, seq.wrapping_add(len), 0x14u8) // RST|ACK
    };
    let v4 = info.ip_version == 4;
    let ip_len = if v4 { 20 } else { 40 };
    let new_len = l3 + ip_len + TCP_HEADER;
    if !buf.resize(new_len) {
        return false;
    }
    let frame = buf.data_mut();
    swap_macs(frame);
    write_ip_header(frame, l3, info, PROTO_TCP, TCP_HEADER as u16);
    let t = l3 + ip_len;
    write16(frame, t, info.dst_port);
    write16(frame, t + 2, info.src_port);
    frame[t + 4..t + 8].copy_from_slice(&rst_seq.to_be_bytes());
    frame[t + 8..t + 12].copy_from_slice(&rst_ack.to_be_bytes());
    frame[t + 12] = (TCP_HEADER as u8 / 4) << 4;
    frame[t + 13] = rst_flags;
    frame[t + 14..t + 20].fill(0); // window, checksum, urgent
    let pseudo = pseudo_header(info, PROTO_TCP, TCP_HEADER as u32, true);
    let sum = checksum::finish(checksum::combine(
        pseudo,
        checksum::sum(&frame[t..t + TCP_HEADER]),
    ));
    write16(frame, t + 16, sum);
    true
}

/// Turns a packet into an ICMP (v4: type 3 code 3; v6: type 1 code 4) port unreachable from
/// the address it was sent to, quoting the offending packet as RFC 792 / RFC 4443 ask.
pub fn port_unreachable<B: PacketBuf + ?Sized>(buf: &mut B, info: &PacketInfo) -> bool {
    let l3 = usize::from(info.l3_offset);
    let l4 = usize::from(info.l4_offset);
    let frame_len = buf.data().len();
    let v4 = info.ip_version == 4;
    let ip_len = if v4 { 20 } else { 40 };
    let header_end = l3 + ip_len + 8;
    let available = frame_len.saturating_sub(l3);
    let quote = if v4 {
        // The IP header (with options) and the first 8 bytes of its payload.
        (l4 - l3 + 8).min(available)
    } else {
        available.min(IPV6_MIN_MTU - ip_len - 8)
    };
    if quote < ip_len {
        return false;
    }
    let new_len = header_end + quote;
    // The quote ends before header_end + quote, so growing or shrinking the tail first never
    // cuts it; then it moves right by the new headers' length.
    if !buf.resize(new_len) {
        return false;
    }
    let frame = buf.data_mut();
    frame.copy_within(l3..l3 + quote, header_end);
    swap_macs(frame);
    let (proto, icmp_type, icmp_code) = if v4 {
        (PROTO_ICMP, 3, 3)
    } else {
        (PROTO_ICMPV6, 1, 4)
    };
    let icmp_len = (8 + quote) as u16;
    write_ip_header(frame, l3, info, proto, icmp_len);
    let i = l3 + ip_len;
    frame[i] = icmp_type;
    frame[i + 1] = icmp_code;
    frame[i + 2..i + 8].fill(0); // checksum, unused
    let body = checksum::sum(&frame[i..new_len]);
    let sum = if v4 {
        checksum::finish(body)
    } else {
        checksum::finish(checksum::combine(
            pseudo_header(info, PROTO_ICMPV6, u32::from(icmp_len), true),
            body,
        ))
    };
    write16(frame, i + 2, sum);
    true
}

/// Turns an ICMP or ICMPv6 echo request into its reply, in place.
pub fn echo_reply(frame: &mut [u8], info: &PacketInfo) -> bool {
    let l3 = usize::from(info.l3_offset);
    let l4 = usize::from(info.l4_offset);
    if frame.len() < l4 + 8 {
        return false;
    }
    let reply_type = match info.ip_version {
        4 => 0,
        6 => 129,
        _ => return false,
    };
    swap_macs(frame);
    let old_word = read16(frame, l4);
    frame[l4] = reply_type;
    let new_word = read16(frame, l4);
    let mut sum = read16(frame, l4 + 2);
    // Swapping source and destination leaves the ICMPv6 pseudo-header sum unchanged.
    sum = checksum::update_u16(sum, old_word, new_word);
    write16(frame, l4 + 2, sum);
    if info.ip_version == 4 {
        let (src, dst) = (info.src.v4_octets(), info.dst.v4_octets());
        frame[l3 + 12..l3 + 16].copy_from_slice(&dst);
        frame[l3 + 16..l3 + 20].copy_from_slice(&src);
        let old = read16(frame, l3 + 8);
        frame[l3 + 8] = DEFAULT_TTL;
        let mut ip_sum = read16(frame, l3 + 10);
        ip_sum = checksum::update_u16(ip_sum, old, read16(frame, l3 + 8));
        write16(frame, l3 + 10, ip_sum);
    } else {
        frame[l3 + 8..l3 + 24].copy_from_slice(&info.dst.0);
        frame[l3 + 24..l3 + 40].copy_from_slice(&info.src.0);
        frame[l3 + 7] = DEFAULT_TTL;
    }
    true
}

/// Writes a fresh IP header at `l3` from the packet's destination back to its source.
fn write_ip_header(frame: &mut [u8], l3: usize, info: &PacketInfo, proto: u8, payload_len: u16) {
    if info.ip_version == 4 {
        let h = &mut frame[l3..l3 + 20];
        h[0] = 0x45;
        h[1] = 0;
        h[2..4].copy_from_slice(&(20 + payload_len).to_be_bytes());
        h[4..6].fill(0);
        h[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        h[8] = DEFAULT_TTL;
        h[9] = proto;
        h[10..12].fill(0);
        h[12..16].copy_from_slice(addr_wire_bytes(&info.dst, true));
        h[16..20].copy_from_slice(addr_wire_bytes(&info.src, true));
        let sum = checksum::internet_checksum(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        set_ethertype(frame, l3, 0x0800);
    } else {
        let h = &mut frame[l3..l3 + 40];
        h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        h[4..6].copy_from_slice(&payload_len.to_be_bytes());
        h[6] = proto;
        h[7] = DEFAULT_TTL;
        h[8..24].copy_from_slice(&info.dst.0);
        h[24..40].copy_from_slice(&info.src.0);
        set_ethertype(frame, l3, 0x86dd);
    }
}

/// The EtherType just before the IP header (after any VLAN tags) stays as it was; kept as a
/// function so a future change of the L3 protocol has one place to go.
fn set_ethertype(frame: &mut [u8], l3: usize, ethertype: u16) {
    if l3 >= 2 {
        write16(frame, l3 - 2, ethertype);
    }
}

/// Pseudo-header sum for an answer going back (`reversed`: from info.dst to info.src).
fn pseudo_header(info: &PacketInfo, proto: u8, len: u32, reversed: bool) -> u64 {
    let (src, dst) = if reversed {
        (&info.dst, &info.src)
    } else {
        (&info.src, &info.dst)
    };
    if info.ip_version == 4 {
        checksum::pseudo_header_v4(&src.v4_octets(), &dst.v4_octets(), proto, len as u16)
    } else {
        checksum::pseudo_header_v6(&src.0, &dst.0, proto, len)
    }
}

fn read32(frame: &[u8], at: usize) -> u32 {
    match frame.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}
