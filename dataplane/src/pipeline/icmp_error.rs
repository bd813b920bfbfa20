//! ICMP errors about NATed flows (destination unreachable, fragmentation needed, time
//! exceeded, parameter problem; ICMPv6 packet too big and the others), translated back to the
//! other side of the connection so that path-MTU discovery and fast failure work through the
//! load balancer.
//!
//! The quoted packet is one the load balancer sent (already translated). Reversed, its flow
//! key is a packet of the same connection travelling towards the load balancer, so the
//! connection table finds it in one lookup, and `translated_key` says how such a packet is
//! rewritten: the outer header gets those addresses (the error then comes from the VIP to the
//! client, or from the client/SNAT address to the backend) and the quote gets their reverse,
//! which is exactly the packet the other side sent. Checksums: the quoted IPv4 header and the
//! quoted L4 checksum (if it was quoted at all; TCP's is only in a quote of 18 bytes or more)
//! are updated incrementally, since the quote may be cut short and a full recomputation is
//! impossible; the ICMP checksum and the outer IPv4 header checksum are recomputed (errors are
//! rare, at most 576 / 1280 bytes).

use super::rewrite::{read16, write16};
use super::{DropReason, PacketBuf, Verdict, Worker};
use crate::conntrack::Tick;
use crate::flow::{FlowKey, Proto};
use crate::snapshot::Snapshot;
use crate::wire::{self, checksum, PacketInfo};

impl Worker {
    /// Translates an ICMP error whose quote belongs to one of this load balancer's
    /// connections; `None` if it does not (the caller goes on with its other rules).
    // Off the established-flow path: kept out of line so the hot function stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn icmp_error<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        info: &PacketInfo,
        now: Tick,
        handed_over: bool,
    ) -> Option<Verdict> {
        let inner = wire::parse_embedded(pkt.data(), info).ok()?;
        let quoted = inner.flow_key()?;
        if !matches!(quoted.proto, Proto::Tcp | Proto::Udp)
            || inner.is_fragment() && !inner.is_first_fragment()
        {
            return None;
        }
        // The quoted packet travelled away from us; its reverse is a packet of the same
        // connection towards us, keyed as the table keys it.
        let key = quoted.reversed();
        let owner = self.owner(snap, &key);
        if owner != self.cfg.index {
            // The owner decides (DNAT reply keys carry any client address, so whether this is
            // one of ours is only known from the owner's table).
            if handed_over {
                return Some(Verdict::Drop(DropReason::HandoffMisrouted));
            }
            self.counters.handoff_out.inc();
            return Some(Verdict::Handoff { worker: owner });
        }
        let (id, dir) = self.conns.lookup(&key)?;
        let t = self.conns.translated_key(id, dir)?;
        if handed_over {
            self.counters.handoff_in.inc();
        }
        if info.ttl <= 1 {
            return Some(Verdict::Drop(DropReason::TtlExceeded));
        }
        if !rewrite_error(pkt.data_mut(), info, &inner, &t) {
            return Some(Verdict::Drop(DropReason::Malformed(
                wire::ParseError::Truncated,
            )));
        }
        self.counters.icmp_errors_translated.inc();
        Some(self.address_l2(snap, pkt, info.vlan, &t.dst, now))
    }
}

/// Rewrites the error in place: outer addresses to `t` (src, dst), the quote to `t` reversed.
fn rewrite_error(frame: &mut [u8], outer: &PacketInfo, inner: &PacketInfo, t: &FlowKey) -> bool {
    let l3 = usize::from(outer.l3_offset);
    let l4 = usize::from(outer.l4_offset);
    let end = (l4 + usize::from(outer.l4_len)).min(frame.len());
    let e3 = usize::from(inner.l3_offset);
    let e4 = usize::from(inner.l4_offset);
    if e4 + 8 > end || l4 + 8 > end {
        return false;
    }
    // The quote as the other side sent it.
    let (new_src, new_dst, new_sport, new_dport) = (t.dst, t.src, t.dst_port, t.src_port);
    let v4 = outer.ip_version == 4;

    // Quoted L4 checksum: pseudo-header addresses and ports, if the field was quoted.
    let csum_at = match inner.l4_proto {
        6 => e4 + 16,
        _ => e4 + 6,
    };
    if csum_at + 2 <= end {
        let old = read16(frame, csum_at);
        if !(inner.l4_proto == 17 && v4 && old == 0) {
            let mut sum = if v4 {
                let s = checksum::update_addr4(old, &inner.src.v4_octets(), &new_src.v4_octets());
                checksum::update_addr4(s, &inner.dst.v4_octets(), &new_dst.v4_octets())
            } else {
                let s = checksum::update_addr16(old, &inner.src.0, &new_src.0);
                checksum::update_addr16(s, &inner.dst.0, &new_dst.0)
            };
            sum = checksum::update_u16(sum, inner.src_port, new_sport);
            sum = checksum::update_u16(sum, inner.dst_port, new_dport);
            if inner.l4_proto == 17 && sum == 0 {
                sum = 0xffff;
            }
            write16(frame, csum_at, sum);
        }
    }
    write16(frame, e4, new_sport);
    write16(frame, e4 + 2, new_dport);

    if v4 {
        if e3 + 20 > end || l4 < l3 + 20 {
            return false;
        }
        let mut sum = read16(frame, e3 + 10);
        sum = checksum::update_addr4(sum, &inner.src.v4_octets(), &new_src.v4_octets());
        sum = checksum::update_addr4(sum, &inner.dst.v4_octets(), &new_dst.v4_octets());
        frame[e3 + 12..e3 + 16].copy_from_slice(&new_src.v4_octets());
        frame[e3 + 16..e3 + 20].copy_from_slice(&new_dst.v4_octets());
        write16(frame, e3 + 10, sum);

        frame[l3 + 8] -= 1; // TTL > 1, checked by the caller
        frame[l3 + 12..l3 + 16].copy_from_slice(&t.src.v4_octets());
        frame[l3 + 16..l3 + 20].copy_from_slice(&t.dst.v4_octets());
        write16(frame, l3 + 10, 0);
        let header_sum = checksum::internet_checksum(&frame[l3..l4]);
        write16(frame, l3 + 10, header_sum);

        write16(frame, l4 + 2, 0);
        let sum = checksum::internet_checksum(&frame[l4..end]);
        write16(frame, l4 + 2, sum);
    } else {
        if e3 + 40 > end {
            return false;
        }
        frame[e3 + 8..e3 + 24].copy_from_slice(&new_src.0);
        frame[e3 + 24..e3 + 40].copy_from_slice(&new_dst.0);
        frame[l3 + 7] -= 1;
        frame[l3 + 8..l3 + 24].copy_from_slice(&t.src.0);
        frame[l3 + 24..l3 + 40].copy_from_slice(&t.dst.0);
        write16(frame, l4 + 2, 0);
        let pseudo = checksum::pseudo_header_v6(&t.src.0, &t.dst.0, 58, (end - l4) as u32);
        let sum = checksum::finish(checksum::combine(pseudo, checksum::sum(&frame[l4..end])));
        write16(frame, l4 + 2, sum);
    }
    true
}
