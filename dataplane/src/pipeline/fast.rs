//! The established-flow fast path: the packet shape almost all traffic has (Ethernet, untagged
//! or with one VLAN tag, IPv4 without options or fragmentation or IPv6 without extension
//! headers, TCP or UDP) recognised at fixed offsets, its connection looked up, and the packet
//! rewritten from the connection's fields — without the general parser's `PacketInfo`, the
//! ownership computation (a connection in this worker's table is this worker's by
//! construction) or intermediate flow-key copies.
//!
//! Anything else, and every packet whose connection this worker does not have (new flows,
//! packets to hand over, ARP, ICMP, stacked VLAN tags, IP options, IPv6 extension headers),
//! takes the general path, which gives the same result for the packets recognised here: a
//! differential test below checks that byte for byte.

use crate::conntrack::{ConnTable, Direction, Probe, Tick};
use crate::flow::{Addr, FlowKey, Proto};
use crate::snapshot::Snapshot;
use crate::wire::checksum::combine;
use crate::wire::ethernet::ethertype;

use super::rewrite::apply;
use super::{DropReason, PacketBuf, Verdict, Worker};

const L3: usize = 14;
const L4: usize = L3 + 20;
/// Bytes every recognised frame has: Ethernet, a 20-byte IPv4 header and a 20-byte TCP header
/// (or UDP header and 12 payload bytes; the minimum Ethernet frame is 60 bytes anyway).
const MIN_FRAME: usize = L4 + 20;
/// Where TCP/UDP starts after a fixed IPv6 header.
const L4_V6: usize = L3 + 40;
/// Bytes every recognised IPv6 UDP frame has: Ethernet, IPv6 and the UDP header.
const MIN_FRAME_V6_UDP: usize = L4_V6 + 8;
/// The same for IPv6 TCP: a 20-byte TCP header.
const MIN_FRAME_V6_TCP: usize = L4_V6 + 20;
// The parser's EtherTypes as the bytes on the wire, compared without a conversion.
const ETHERTYPE_IPV4: [u8; 2] = ethertype::IPV4.to_be_bytes();
const ETHERTYPE_IPV6: [u8; 2] = ethertype::IPV6.to_be_bytes();
/// Length of a VLAN tag: a tagged frame is an untagged one with the headers 4 bytes later.
const TAG: usize = 4;
/// [`FastPacket::shape`]: the frame has a VLAN tag (its id in the low 12 bits).
const TAGGED: u16 = 0x1000;
/// [`FastPacket::shape`]: IPv6.
const IPV6: u16 = 0x2000;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// What the fast path needs of a recognised packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) struct FastPacket {
    pub key: FlowKey,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The VLAN id of the frame's tag, [`TAGGED`] and [`IPV6`] in one word: the staged
    /// `FastPacket` of a burst stays 48 bytes (one line with its probe).
    pub shape: u16,
    /// Bytes from the start of the frame to the end of the IP packet (padding excluded), as the
    /// general path counts them.
    pub wire_len: u32,
}

// A burst stages each packet's `FastPacket` with its probe: one cache line each.
const _: () = assert!(core::mem::size_of::<(FastPacket, Probe)>() <= 64);

impl FastPacket {
    /// What a burst's staging array holds before any packet was staged there.
    pub const UNSTAGED: FastPacket = FastPacket {
        key: FlowKey {
            src: Addr::UNSPECIFIED,
            dst: Addr::UNSPECIFIED,
            src_port: 0,
            dst_port: 0,
            proto: Proto::Tcp,
        },
        tcp_flags: 0,
        ttl: 0,
        shape: 0,
        wire_len: 0,
    };

    /// The VLAN id of the frame's tag, if it has one.
    #[inline(always)]
    pub fn vlan(&self) -> Option<u16> {
        (self.shape & TAGGED != 0).then_some(self.shape & 0x0fff)
    }

    #[inline(always)]
    pub fn is_ipv6(&self) -> bool {
        self.shape & IPV6 != 0
    }
}

/// [`recognise`] for a whole packet: `None` for one in several buffers (only its first part
/// is in [`PacketBuf::data`]) or marked bad by the NIC; an IPv4 header's checksum is verified
/// here unless the NIC has verified it.
#[inline(always)]
pub(super) fn recognise_buf<B: PacketBuf + ?Sized>(pkt: &B) -> Option<FastPacket> {
    if pkt.general_path_only() {
        return None;
    }
    recognise_verifying(pkt.data(), !pkt.rx_ip_checksum_checked())
}

/// Recognises an IPv4 TCP/UDP packet without options or fragmentation, or an IPv6 one
/// without extension headers, untagged or with one VLAN tag, whose headers the general parser
/// would accept and whose IPv4 header checksum verifies; `None` for everything else (never a
/// packet the general path would drop or read differently).
#[cfg(test)]
pub(super) fn recognise(frame: &[u8]) -> Option<FastPacket> {
    recognise_verifying(frame, true)
}

/// [`recognise`], summing an IPv4 header only with `verify` (the NIC did not).
#[inline(always)]
fn recognise_verifying(frame: &[u8], verify: bool) -> Option<FastPacket> {
    if is_untagged_v4(frame) {
        recognise_v4(frame, verify)
    } else {
        recognise_other(frame, verify)
    }
}

/// Whether `frame` has the EtherType [`recognise_v4`] takes. A burst's stage 1 asks this
/// first and calls the two recognisers in separate branches: each result is then built in
/// its staging slot, where one call returning either would build it aside and copy it
/// (about 50 more instructions per IPv4 packet).
#[inline(always)]
pub(super) fn is_untagged_v4(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&ETHERTYPE_IPV4[..])
}

/// [`recognise`] for what is not untagged IPv4: IPv6 and tagged frames (`verify`: an IPv4
/// header's checksum, as in [`recognise_v4`]).
#[inline(never)]
pub(super) fn recognise_other(frame: &[u8], verify: bool) -> Option<FastPacket> {
    let &[hi, lo] = frame.get(12..14)? else {
        return None;
    };
    if [hi, lo] == ETHERTYPE_IPV6 {
        recognise_v6(frame)
    } else if ethertype::is_vlan_tag(u16::from_be_bytes([hi, lo])) {
        recognise_tagged(frame, verify)
    } else {
        None
    }
}

/// Stage 1 of a burst for a frame that is not untagged IPv4: [`recognise_other`] then
/// [`stage`] (kept out of line, so that the burst's loop stores only the untagged IPv4 result).
#[inline(never)]
pub(super) fn stage_other(
    frame: &[u8],
    verify: bool,
    conns: &ConnTable,
    slot: &mut (FastPacket, Probe),
) -> bool {
    stage(conns, slot, recognise_other(frame, verify))
}

/// Stages a recognised packet with its key's probe of `conns` in `slot`; whether there was
/// one (nothing is written otherwise). The key is hashed before it is stored: read back from
/// the staging slot, its 8-byte words straddled the narrower stores that wrote them, which
/// the CPU does not forward (a stall per load: 15% of W1's rate, 25% of a tagged burst's).
#[inline(always)]
pub(super) fn stage(
    conns: &ConnTable,
    slot: &mut (FastPacket, Probe),
    recognised: Option<FastPacket>,
) -> bool {
    let Some(fast) = recognised else {
        return false;
    };
    let probe = conns.probe(conns.hash_key(&fast.key));
    *slot = (fast, probe);
    true
}

/// [`recognise`] for a frame with a VLAN tag: the frame after the tag's 4 bytes reads like an
/// untagged one (its MACs aside), so the untagged checks apply to it as they are.
#[inline(never)]
fn recognise_tagged(frame: &[u8], verify: bool) -> Option<FastPacket> {
    let tci = frame.get(14..16)?;
    let vlan = u16::from_be_bytes([tci[0], tci[1]]) & 0x0fff;
    let inner = frame.get(TAG..)?;
    let inner_type = inner.get(12..14)?;
    // A second tag (QinQ) is left to the general path.
    let mut fast = if inner_type == ETHERTYPE_IPV4 {
        recognise_v4(inner, verify)?
    } else if inner_type == ETHERTYPE_IPV6 {
        recognise_v6(inner)?
    } else {
        return None;
    };
    fast.shape |= TAGGED | vlan;
    fast.wire_len += TAG as u32;
    Some(fast)
}

/// [`recognise`] for an untagged IPv4 frame. With `verify` (the NIC has not verified it), a
/// header whose checksum is wrong is not recognised: the general path drops it.
#[inline(always)]
pub(super) fn recognise_v4(frame: &[u8], verify: bool) -> Option<FastPacket> {
    let h = frame.first_chunk::<MIN_FRAME>()?;
    // Version 4 with a 20-byte header; no MF flag and offset 0 (DF is fine).
    if h[12..14] != ETHERTYPE_IPV4
        || h[L3] != 0x45
        || (h[L3 + 6] & 0x3f) | h[L3 + 7] != 0
        || verify && !header_v4_verifies(h)
    {
        return None;
    }
    let total_len = usize::from(u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]));
    if total_len > frame.len() - L3 {
        return None;
    }
    let l4_len = total_len.checked_sub(20)?;
    let (proto, tcp_flags) = transport(h[L3 + 9], &h[L4..], l4_len)?;
    Some(FastPacket {
        key: FlowKey {
            src: Addr::from_v4([h[L3 + 12], h[L3 + 13], h[L3 + 14], h[L3 + 15]]),
            dst: Addr::from_v4([h[L3 + 16], h[L3 + 17], h[L3 + 18], h[L3 + 19]]),
            src_port: u16::from_be_bytes([h[L4], h[L4 + 1]]),
            dst_port: u16::from_be_bytes([h[L4 + 2], h[L4 + 3]]),
            proto,
        },
        tcp_flags,
        ttl: h[L3 + 8],
        shape: 0,
        wire_len: (L3 + total_len) as u32,
    })
}

/// Whether the 20-byte IPv4 header of `h` (version and length byte already checked, so not
/// all zeros) sums to all ones, i.e. its checksum verifies (RFC 1071). Summed in native byte
/// order (all ones reads the same in either order) with end-around carries; such a sum folds
/// to all ones exactly when it is a non-zero multiple of 0xffff (2^16 = 1 modulo 0xffff),
/// which a multiply tests faster than the fold. Four loads: 2, 8, 8 and 2 bytes (the 8-byte
/// ones 16-byte aligned in a frame that is).
#[inline(always)]
fn header_v4_verifies(h: &[u8; MIN_FRAME]) -> bool {
    let (Some(head), Some((a, rest)), tail) = (
        h[L3..].first_chunk::<2>(),
        h[L3 + 2..].split_first_chunk::<8>(),
        [h[L4 - 2], h[L4 - 1]],
    ) else {
        return false;
    };
    let Some(b) = rest.first_chunk::<8>() else {
        return false;
    };
    let ends = u64::from(u16::from_ne_bytes(*head)) + u64::from(u16::from_ne_bytes(tail));
    let sum = combine(
        combine(u64::from_ne_bytes(*a), u64::from_ne_bytes(*b)),
        ends,
    );
    sum.is_multiple_of(0xffff)
}

/// The protocol and TCP flags of the TCP or UDP header at the start of `l4` (what the frame
/// holds from there), if the general parser would take it in an IP payload of `l4_len` bytes.
#[inline(always)]
fn transport(proto: u8, l4: &[u8], l4_len: usize) -> Option<(Proto, u8)> {
    match proto {
        PROTO_TCP => {
            let t = l4.first_chunk::<20>()?;
            let header_len = usize::from(t[12] >> 4) * 4;
            if header_len < 20 || header_len > l4_len {
                return None;
            }
            Some((Proto::Tcp, t[13]))
        }
        PROTO_UDP => {
            let u = l4.first_chunk::<8>()?;
            let udp_len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if !(8..=l4_len).contains(&udp_len) {
                return None;
            }
            Some((Proto::Udp, 0))
        }
        _ => None,
    }
}

/// [`recognise`] for an untagged IPv6 frame: TCP or UDP right after the fixed header.
#[inline(never)]
fn recognise_v6(frame: &[u8]) -> Option<FastPacket> {
    let h = frame.first_chunk::<MIN_FRAME_V6_UDP>()?;
    if h[L3] >> 4 != 6 {
        return None;
    }
    let l4_len = usize::from(u16::from_be_bytes([h[L3 + 4], h[L3 + 5]]));
    if l4_len > frame.len() - L4_V6 {
        return None;
    }
    let (proto, tcp_flags) = transport(h[L3 + 6], frame.get(L4_V6..)?, l4_len)?;
    let (src, dst) = (
        Addr(h[L3 + 8..L3 + 24].try_into().ok()?),
        Addr(h[L3 + 24..L3 + 40].try_into().ok()?),
    );
    // The general parser rejects IPv4-mapped addresses (they would name IPv4 flows).
    if src.is_v4() || dst.is_v4() {
        return None;
    }
    Some(FastPacket {
        key: FlowKey {
            src,
            dst,
            src_port: u16::from_be_bytes([h[L4_V6], h[L4_V6 + 1]]),
            dst_port: u16::from_be_bytes([h[L4_V6 + 2], h[L4_V6 + 3]]),
            proto,
        },
        tcp_flags,
        ttl: h[L3 + 7],
        shape: IPV6,
        wire_len: (L4_V6 + l4_len) as u32,
    })
}

impl Worker {
    /// Forwards a recognised packet of a connection in this worker's table (`probe` from its
    /// key's hash). `None` (nothing changed) when the table has no such connection: the general
    /// path decides then.
    #[inline(always)]
    pub(super) fn forward_established<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        fast: &FastPacket,
        probe: Probe,
        now: Tick,
        handed_over: bool,
    ) -> Option<Verdict> {
        let hit = self
            .conns
            .forward(&fast.key, probe, fast.tcp_flags, fast.wire_len, now)?;
        if handed_over {
            self.counters.handoff_in.inc();
        }
        let bytes = u64::from(fast.wire_len);
        if let Some(c) = self.counters.service(hit.data.service) {
            c.packets.inc();
            c.bytes.add(bytes);
        }
        if let Some(c) = self.counters.backend(hit.data.backend) {
            c.packets.inc();
            c.bytes.add(bytes);
            if hit.dir == Direction::Reply {
                c.packets_from_backend.inc();
                c.bytes_from_backend.add(bytes);
            }
        }
        if fast.ttl <= 1 {
            return Some(Verdict::Drop(DropReason::TtlExceeded));
        }
        let new = hit.translated;
        // Passed on as values (a `Translation` behind a reference was kept on the stack).
        let ports = ports_word(new.src_port, new.dst_port);
        if fast.shape == 0 {
            // Untagged IPv4, kept apart so that its code stays as lean as it was alone.
            translate_v4(pkt.data_mut(), new.src, new.dst, ports);
            let dst = *new.dst;
            return Some(self.address_l2(snap, pkt, None, &dst, now));
        }
        // A tagged frame is rewritten past its tag; `address_l2` then gives it the egress
        // port's tag (or none).
        let after_tag = if fast.shape & TAGGED != 0 { TAG } else { 0 };
        if let Some(frame) = pkt.data_mut().get_mut(after_tag..) {
            if fast.is_ipv6() {
                translate_v6(frame, fast.key.proto, new.src, new.dst, ports);
            } else {
                translate_v4(frame, new.src, new.dst, ports);
            }
        }
        let dst = *new.dst;
        Some(self.address_l2(snap, pkt, fast.vlan(), &dst, now))
    }
}

/// The native-endian value of four bytes, widened for summing.
#[inline(always)]
fn ne32(bytes: [u8; 4]) -> u64 {
    u64::from(u32::from_ne_bytes(bytes))
}

/// One's-complement contribution of replacing `old` by `new` (both native-endian words).
#[inline(always)]
fn delta_ne32(old: [u8; 4], new: [u8; 4]) -> u64 {
    u64::from(!u32::from_ne_bytes(old)) + ne32(new)
}

/// [`super::rewrite::translate`] for a recognised packet, at fixed offsets, with the old values read
/// from the frame itself. The checksums are updated (RFC 1624) in native byte order, 32 bits
/// at a time: the one's-complement sum does not depend on byte order (RFC 1071, 2.B), so no
/// word needs swapping.
#[inline(always)]
fn translate_v4(frame: &mut [u8], src: &Addr, dst: &Addr, new_ports: [u8; 4]) {
    let Some(h) = frame.first_chunk_mut::<MIN_FRAME>() else {
        return;
    };
    let (new_src, new_dst) = (src.v4_octets(), dst.v4_octets());
    let addr_delta = delta_ne32(word(h, L3 + 12), new_src) + delta_ne32(word(h, L3 + 16), new_dst);
    let (ttl, proto) = (h[L3 + 8], h[L3 + 9]);
    let new_ttl = ttl.saturating_sub(1);
    // TTL minus one lowers the (TTL, protocol) word by one in the TTL byte: the delta is the
    // one's complement of that byte's place value in native order (nothing when TTL is 0).
    let ttl_delta = if ttl > 0 {
        u64::from(!u16::from_ne_bytes([1, 0]))
    } else {
        0
    };
    let ip_sum = apply_ne(h, L3 + 10, addr_delta + ttl_delta).to_ne_bytes();
    h[L3 + 8] = new_ttl;
    h[L3 + 12..L3 + 16].copy_from_slice(&new_src);
    h[L3 + 16..L3 + 20].copy_from_slice(&new_dst);
    h[L3 + 10..L3 + 12].copy_from_slice(&ip_sum);

    let csum_at = if proto == PROTO_TCP { L4 + 16 } else { L4 + 6 };
    // IPv4 UDP checksum 0 means "none": leave it so.
    if proto == PROTO_TCP || h[csum_at] | h[csum_at + 1] != 0 {
        let port_delta = delta_ne32(word(h, L4), new_ports);
        update_l4_sum(h, csum_at, addr_delta + port_delta, proto == PROTO_UDP);
    }
    h[L4..L4 + 4].copy_from_slice(&new_ports);
}

/// [`super::rewrite::translate`] for a recognised IPv6 packet: no header checksum, the hop
/// limit lowered, and the L4 checksum (mandatory in IPv6, UDP included) updated for the
/// addresses and ports, 32 bits at a time in native byte order as in [`translate_v4`].
#[inline(never)]
fn translate_v6(frame: &mut [u8], proto: Proto, src: &Addr, dst: &Addr, new_ports: [u8; 4]) {
    if proto == Proto::Tcp {
        if let Some(h) = frame.first_chunk_mut::<MIN_FRAME_V6_TCP>() {
            translate_v6_at(h, L4_V6 + 16, src, dst, new_ports);
        }
    } else if let Some(h) = frame.first_chunk_mut::<MIN_FRAME_V6_UDP>() {
        translate_v6_at(h, L4_V6 + 6, src, dst, new_ports);
    }
}

#[inline(always)]
fn translate_v6_at<const N: usize>(
    h: &mut [u8; N],
    csum_at: usize,
    src: &Addr,
    dst: &Addr,
    new_ports: [u8; 4],
) {
    let mut delta = 0u64;
    for (at, addr) in [(L3 + 8, &src.0), (L3 + 24, &dst.0)] {
        for i in (0..16).step_by(4) {
            delta += delta_ne32(
                word(h, at + i),
                [addr[i], addr[i + 1], addr[i + 2], addr[i + 3]],
            );
        }
    }
    delta += delta_ne32(word(h, L4_V6), new_ports);
    update_l4_sum(h, csum_at, delta, csum_at == L4_V6 + 6);
    h[L3 + 7] = h[L3 + 7].saturating_sub(1);
    h[L3 + 8..L3 + 24].copy_from_slice(&src.0);
    h[L3 + 24..L3 + 40].copy_from_slice(&dst.0);
    h[L4_V6..L4_V6 + 4].copy_from_slice(&new_ports);
}

/// The four bytes of `h` at `at`.
#[inline(always)]
fn word<const N: usize>(h: &[u8; N], at: usize) -> [u8; 4] {
    [h[at], h[at + 1], h[at + 2], h[at + 3]]
}

/// The new source and destination ports, as the first four bytes of a TCP/UDP header.
#[inline(always)]
fn ports_word(src_port: u16, dst_port: u16) -> [u8; 4] {
    let mut ports = [0u8; 4];
    ports[..2].copy_from_slice(&src_port.to_be_bytes());
    ports[2..].copy_from_slice(&dst_port.to_be_bytes());
    ports
}

/// Applies `delta` to the TCP/UDP checksum at `csum_at`. A computed UDP checksum of 0 is sent
/// as 0xffff (0 would mean "none").
#[inline(always)]
fn update_l4_sum<const N: usize>(h: &mut [u8; N], csum_at: usize, delta: u64, udp: bool) {
    // As one 16-bit word (0 and 0xffff read the same in either byte order): as two bytes,
    // each took its own conditional move and store.
    let mut l4_sum = apply_ne(h, csum_at, delta);
    if udp && l4_sum == 0 {
        l4_sum = 0xffff;
    }
    h[csum_at..csum_at + 2].copy_from_slice(&l4_sum.to_ne_bytes());
}

/// The checksum at `at` with `delta` applied ([`apply`] works in either byte order), as a
/// native-endian word: `to_ne_bytes` gives it in memory order.
#[inline(always)]
fn apply_ne<const N: usize>(h: &[u8; N], at: usize, delta: u64) -> u16 {
    apply(u16::from_ne_bytes([h[at], h[at + 1]]), delta)
}

#[cfg(test)]
mod tests;
