//! In-place header rewrites for a translated packet: addresses, ports, TTL and MACs, with
//! RFC 1624 incremental checksum updates (no pass over the payload).

use crate::flow::{Addr, FlowKey};
use crate::wire::{checksum, PacketInfo};

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_CHECKSUM: usize = 16;
const UDP_CHECKSUM: usize = 6;

/// Rewrites the packet's source and destination (addresses and ports) to `new`, and decrements
/// the TTL/hop limit. `info` must describe `frame` (from `wire::parse`) and be TCP or UDP with
/// its header present. Returns false, changing nothing, if a field lies outside the frame.
#[inline(always)]
pub fn translate(frame: &mut [u8], info: &PacketInfo, new: &FlowKey) -> bool {
    let l3 = usize::from(info.l3_offset);
    let l4 = usize::from(info.l4_offset);
    let csum_at = match info.l4_proto {
        PROTO_TCP => l4 + TCP_CHECKSUM,
        PROTO_UDP => l4 + UDP_CHECKSUM,
        _ => return false,
    };
    if frame.len() < csum_at + 2 || frame.len() < l3 + if info.ip_version == 4 { 20 } else { 40 } {
        return false;
    }
    let old_l4_sum = read16(frame, csum_at);
    // IPv4 UDP checksum 0 means "none": leave it so.
    let l4_has_sum = !(info.l4_proto == PROTO_UDP && info.ip_version == 4 && old_l4_sum == 0);

    // RFC 1624: HC' = ~(~HC + ~m + m'). The address change is summed once and applied to both
    // the IP header and the L4 checksum (whose pseudo-header carries the addresses).
    let mut addr_delta: u64 = 0;
    match info.ip_version {
        4 => {
            let (old_src, old_dst) = (info.src.v4_octets(), info.dst.v4_octets());
            let (new_src, new_dst) = (new.src.v4_octets(), new.dst.v4_octets());
            addr_delta += delta32(old_src, new_src) + delta32(old_dst, new_dst);
            let ttl = frame[l3 + 8];
            let proto = frame[l3 + 9];
            let new_ttl = ttl.saturating_sub(1);
            let ttl_delta = delta16(
                u16::from_be_bytes([ttl, proto]),
                u16::from_be_bytes([new_ttl, proto]),
            );
            let ip_sum = apply(read16(frame, l3 + 10), addr_delta + ttl_delta);
            frame[l3 + 8] = new_ttl;
            frame[l3 + 12..l3 + 16].copy_from_slice(&new_src);
            frame[l3 + 16..l3 + 20].copy_from_slice(&new_dst);
            write16(frame, l3 + 10, ip_sum);
        }
        6 => {
            for (old, new) in [(&info.src.0, &new.src.0), (&info.dst.0, &new.dst.0)] {
                for i in (0..16).step_by(4) {
                    addr_delta += delta32(
                        [old[i], old[i + 1], old[i + 2], old[i + 3]],
                        [new[i], new[i + 1], new[i + 2], new[i + 3]],
                    );
                }
            }
            frame[l3 + 7] = frame[l3 + 7].saturating_sub(1);
            frame[l3 + 8..l3 + 24].copy_from_slice(&new.src.0);
            frame[l3 + 24..l3 + 40].copy_from_slice(&new.dst.0);
        }
        _ => return false,
    }
    if l4_has_sum {
        let port_delta =
            delta16(info.src_port, new.src_port) + delta16(info.dst_port, new.dst_port);
        let mut l4_sum = apply(old_l4_sum, addr_delta + port_delta);
        if info.l4_proto == PROTO_UDP && l4_sum == 0 {
            // A computed UDP checksum of 0 is sent as 0xffff (0 would mean "none").
            l4_sum = 0xffff;
        }
        write16(frame, csum_at, l4_sum);
    }
    write16(frame, l4, new.src_port);
    write16(frame, l4 + 2, new.dst_port);
    true
}

/// One's-complement contribution of replacing 16-bit word `old` by `new`: ~old + new.
#[inline(always)]
pub(crate) fn delta16(old: u16, new: u16) -> u64 {
    u64::from(!old) + u64::from(new)
}

/// The same for a 32-bit (two-word) field.
#[inline(always)]
pub(crate) fn delta32(old: [u8; 4], new: [u8; 4]) -> u64 {
    delta16(
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
    ) + delta16(
        u16::from_be_bytes([old[2], old[3]]),
        u16::from_be_bytes([new[2], new[3]]),
    )
}

/// Applies a summed delta to a checksum: ~(~HC + delta), folded.
#[inline(always)]
pub(crate) fn apply(checksum: u16, delta: u64) -> u16 {
    !checksum::fold(u64::from(!checksum) + delta)
}

/// Sets the Ethernet destination and source addresses.
#[inline]
pub fn set_macs(frame: &mut [u8], dst: &[u8; 6], src: &[u8; 6]) {
    if let Some(macs) = frame.get_mut(..12) {
        macs[..6].copy_from_slice(dst);
        macs[6..].copy_from_slice(src);
    }
}

/// Swaps the Ethernet addresses (to answer the sender on its own link).
#[inline]
pub fn swap_macs(frame: &mut [u8]) {
    if let Some(macs) = frame.get_mut(..12) {
        let (dst, src) = macs.split_at_mut(6);
        dst.swap_with_slice(src);
    }
}

#[inline(always)]
pub(crate) fn read16(frame: &[u8], at: usize) -> u16 {
    match frame.get(at..at + 2) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => 0,
    }
}

#[inline(always)]
pub(crate) fn write16(frame: &mut [u8], at: usize, value: u16) {
    if let Some(b) = frame.get_mut(at..at + 2) {
        b.copy_from_slice(&value.to_be_bytes());
    }
}

/// The IPv4-mapped or IPv6 bytes of an address as the wire carries them.
#[inline]
pub(crate) fn addr_wire_bytes(addr: &Addr, v4: bool) -> &[u8] {
    if v4 {
        &addr.0[12..]
    } else {
        &addr.0
    }
}
