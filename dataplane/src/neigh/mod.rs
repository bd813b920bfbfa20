//! Neighbour resolution: ARP (IPv4) and neighbour discovery (IPv6).
//!
//! - [`NeighbourCache`] (shared by all workers, lock-free reads): learned bindings with expiry
//!   and refresh.
//! - [`Resolver`] (one per worker): next hops this worker is resolving, with the attempts and
//!   back-off of each. A packet whose next hop is unknown is parked by the worker that has it
//!   (in [`ParkedPackets`], preallocated, bounded per next hop) and released in arrival order
//!   when the binding appears in the cache, whichever worker learned it; the owner polls the
//!   cache for its next hops once per millisecond ([`Resolver::step`]). After
//!   [`NeighbourTimers::max_attempts`] unanswered requests the parked packets are dropped
//!   (counted) and the next hop is held as failed for a while, so a dead host does not cause a
//!   request per packet.
//! - frame builders for ARP requests, gratuitous ARP, neighbour solicitations and
//!   advertisements; the worker loop allocates the buffer and sends them.

pub mod cache;

pub use cache::{Binding, Learned, NeighbourCache, NeighbourTimers};

use crate::flow::Addr;
use crate::wire::checksum;
use cache::elapsed;

/// Next hops one worker resolves at once; more are dropped (`no_neighbour`) until one is done.
pub const MAX_PENDING: usize = 64;
/// Packets parked per next hop; more are dropped (`neighbour_queue_drops`).
pub const QUEUE_PER_TARGET: usize = 16;

/// One logical port as the dataplane numbers them (see `WorkerConfig::vlan_ports`): the
/// physical port it sends on, its VLAN tag (none for the physical port itself) and its MAC.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub phys: u16,
    pub vlan: Option<u16>,
    pub mac: [u8; 6],
}

/// Something the worker loop must do for neighbour resolution. Ports are physical; frames to
/// a VLAN sub-interface carry its tag (`vlan`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NeighbourEvent {
    /// Send an ARP request / neighbour solicitation for `target` out of `port`, from our
    /// address `sender` (unspecified if the port has none of that family). `unicast` is the
    /// MAC to send it to when refreshing a known binding (broadcast/multicast otherwise).
    Solicit {
        port: u16,
        vlan: Option<u16>,
        /// The port's MAC (the frame's source).
        src_mac: [u8; 6],
        target: Addr,
        sender: Addr,
        unicast: Option<[u8; 6]>,
    },
    /// Announce our address `addr` on `port` (gratuitous ARP / unsolicited NA).
    Announce {
        port: u16,
        vlan: Option<u16>,
        src_mac: [u8; 6],
        addr: Addr,
    },
    /// The next hop of parked slot `slot` is resolved: set these MACs on its packets, in order,
    /// and send them out of physical port `port` (their VLAN tag was set when they were
    /// parked).
    Release {
        slot: u16,
        port: u16,
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
    },
    /// The next hop of `slot` did not answer: drop its parked packets.
    Discard { slot: u16 },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum TargetState {
    Free,
    Resolving,
    /// Gave up; packets to it are dropped until `next_at`.
    Failed,
}

#[derive(Copy, Clone, Debug)]
struct Target {
    state: TargetState,
    addr: Addr,
    port: u16,
    sender: Addr,
    attempts: u32,
    next_at: u32,
}

const FREE: Target = Target {
    state: TargetState::Free,
    addr: Addr::UNSPECIFIED,
    port: 0,
    sender: Addr::UNSPECIFIED,
    attempts: 0,
    next_at: 0,
};

/// What to do with a packet whose next hop has no binding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Park it in this slot of the worker's [`ParkedPackets`].
    Park(u16),
    /// Drop it: the next hop failed recently, or too many are being resolved.
    Drop,
}

/// One worker's next hops under resolution (fixed size, no allocation).
#[derive(Debug)]
pub struct Resolver {
    targets: Box<[Target; MAX_PENDING]>,
    active: usize,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new()
    }
}

impl Resolver {
    pub fn new() -> Resolver {
        Resolver {
            targets: Box::new([FREE; MAX_PENDING]),
            active: 0,
        }
    }

    /// Next hops being resolved or held as failed.
    pub fn active(&self) -> usize {
        self.active
    }

    /// A packet for `addr` on `port` needs resolution; `sender` is our address to ask from.
    /// The first request goes out at the next [`step`](Self::step).
    pub fn pending(&mut self, addr: &Addr, port: u16, sender: &Addr, now: u32) -> Pending {
        let mut free = None;
        for (i, t) in self.targets.iter_mut().enumerate() {
            match t.state {
                TargetState::Free => {
                    free.get_or_insert(i);
                }
                _ if t.addr == *addr && t.port == port => {
                    if t.state == TargetState::Failed {
                        if !elapsed(now, t.next_at, 0) {
                            return Pending::Drop;
                        }
                        t.state = TargetState::Resolving;
                        t.attempts = 0;
                        t.next_at = now;
                    }
                    return Pending::Park(i as u16);
                }
                _ => {}
            }
        }
        let Some(i) = free else {
            return Pending::Drop;
        };
        self.targets[i] = Target {
            state: TargetState::Resolving,
            addr: *addr,
            port,
            sender: *sender,
            attempts: 0,
            next_at: now,
        };
        self.active += 1;
        Pending::Park(i as u16)
    }

    /// Advances every next hop: releases those the cache now knows, sends (re)tries whose time
    /// has come, gives up after `timers.max_attempts`. `ports[p]` describes logical port `p`.
    pub fn step(
        &mut self,
        now: u32,
        cache: &NeighbourCache,
        timers: &NeighbourTimers,
        ports: &[PortInfo],
        mut emit: impl FnMut(NeighbourEvent),
    ) {
        if self.active == 0 {
            return;
        }
        for (i, t) in self.targets.iter_mut().enumerate() {
            match t.state {
                TargetState::Free => {}
                TargetState::Failed => {
                    if elapsed(now, t.next_at, 0) {
                        *t = FREE;
                        self.active -= 1;
                    }
                }
                TargetState::Resolving => {
                    let Some(info) = ports.get(usize::from(t.port)).copied() else {
                        emit(NeighbourEvent::Discard { slot: i as u16 });
                        *t = FREE;
                        self.active -= 1;
                        continue;
                    };
                    if let Some(b) = cache.lookup(&t.addr, t.port) {
                        emit(NeighbourEvent::Release {
                            slot: i as u16,
                            port: info.phys,
                            dst_mac: b.mac,
                            src_mac: info.mac,
                        });
                        *t = FREE;
                        self.active -= 1;
                        continue;
                    }
                    if !elapsed(now, t.next_at, 0) {
                        continue;
                    }
                    if t.attempts >= timers.max_attempts {
                        emit(NeighbourEvent::Discard { slot: i as u16 });
                        t.state = TargetState::Failed;
                        // Hold the failure about as long as the resolution took.
                        t.next_at = now.wrapping_add(timers.retry_ms << timers.max_attempts.min(8));
                        continue;
                    }
                    emit(NeighbourEvent::Solicit {
                        port: info.phys,
                        vlan: info.vlan,
                        src_mac: info.mac,
                        target: t.addr,
                        sender: t.sender,
                        unicast: None,
                    });
                    t.next_at = now.wrapping_add(timers.retry_ms << t.attempts.min(8));
                    t.attempts += 1;
                }
            }
        }
    }
}

/// Packets waiting for their next hop, `QUEUE_PER_TARGET` per [`Resolver`] slot, in arrival
/// order. Preallocated; owned by the worker loop that parked them.
#[derive(Debug)]
pub struct ParkedPackets<B> {
    queues: Vec<std::collections::VecDeque<B>>,
}

impl<B> Default for ParkedPackets<B> {
    fn default() -> Self {
        ParkedPackets::new()
    }
}

impl<B> ParkedPackets<B> {
    pub fn new() -> ParkedPackets<B> {
        ParkedPackets {
            queues: (0..MAX_PENDING)
                .map(|_| std::collections::VecDeque::with_capacity(QUEUE_PER_TARGET))
                .collect(),
        }
    }

    /// Parks `pkt` in `slot`; gives it back when the slot's queue is full.
    pub fn park(&mut self, slot: u16, pkt: B) -> Result<(), B> {
        match self.queues.get_mut(usize::from(slot)) {
            Some(q) if q.len() < QUEUE_PER_TARGET => {
                q.push_back(pkt);
                Ok(())
            }
            _ => Err(pkt),
        }
    }

    /// Takes the packets of `slot`, oldest first.
    pub fn take(&mut self, slot: u16) -> impl Iterator<Item = B> + '_ {
        self.queues
            .get_mut(usize::from(slot))
            .into_iter()
            .flat_map(|q| q.drain(..))
    }

    /// Packets parked in all slots.
    pub fn len(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const BROADCAST: [u8; 6] = [0xff; 6];
/// Length of the ARP frames built here (Ethernet minimum without FCS; NICs would pad anyway).
pub const ARP_FRAME_LEN: usize = 60;
/// Length of the neighbour solicitations and advertisements built here: Ethernet, IPv6,
/// ICMPv6 NS/NA (24 bytes) and one link-layer address option (8 bytes).
pub const ND_FRAME_LEN: usize = 14 + 40 + 24 + 8;

/// The most [`build_solicit`] / [`build_announce`] write: an NS/NA with a VLAN tag.
pub const MAX_FRAME_LEN: usize = ND_FRAME_LEN + 4;

/// The untagged frame length [`build_solicit`] / [`build_announce`] write for a family.
pub fn frame_len(addr: &Addr) -> usize {
    if addr.is_v4() {
        ARP_FRAME_LEN
    } else {
        ND_FRAME_LEN
    }
}

/// Copies the untagged frame `untagged` into `out`, with an 802.1Q tag for `vlan` after the
/// MAC addresses when given. Returns the length written.
pub fn with_tag(out: &mut [u8], untagged: &[u8], vlan: Option<u16>) -> Option<usize> {
    match vlan {
        None => {
            out.get_mut(..untagged.len())?.copy_from_slice(untagged);
            Some(untagged.len())
        }
        Some(vlan) => {
            let len = untagged.len() + 4;
            let out = out.get_mut(..len)?;
            out[..12].copy_from_slice(untagged.get(..12)?);
            out[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            out[14..16].copy_from_slice(&(vlan & 0x0fff).to_be_bytes());
            out[16..].copy_from_slice(untagged.get(12..)?);
            Some(len)
        }
    }
}

fn put_eth(frame: &mut [u8], dst: &[u8; 6], src: &[u8; 6], ethertype: u16) {
    frame[..6].copy_from_slice(dst);
    frame[6..12].copy_from_slice(src);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

fn put_arp(frame: &mut [u8], op: u16, sha: &[u8; 6], spa: &[u8; 4], tha: &[u8; 6], tpa: &[u8; 4]) {
    let a = &mut frame[14..42];
    a[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, op as u8]);
    a[8..14].copy_from_slice(sha);
    a[14..18].copy_from_slice(spa);
    a[18..24].copy_from_slice(tha);
    a[24..28].copy_from_slice(tpa);
    frame[42..].fill(0);
}

/// The solicited-node multicast address of `target` (RFC 4291 §2.7.1) and its MAC.
pub fn solicited_node(target: &[u8; 16]) -> ([u8; 16], [u8; 6]) {
    let mut ip = [0u8; 16];
    ip[0] = 0xff;
    ip[1] = 0x02;
    ip[11] = 0x01;
    ip[12] = 0xff;
    ip[13..].copy_from_slice(&target[13..]);
    (ip, multicast_mac(&ip))
}

fn multicast_mac(ip: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, ip[12], ip[13], ip[14], ip[15]]
}

const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Writes an IPv6 ND message (NS 135 or NA 136) with one link-layer address option.
#[allow(clippy::too_many_arguments)]
fn put_nd(
    frame: &mut [u8],
    dst_mac: &[u8; 6],
    src_mac: &[u8; 6],
    src: &[u8; 16],
    dst: &[u8; 16],
    msg_type: u8,
    flags: u8,
    target: &[u8; 16],
    option: u8,
) {
    put_eth(frame, dst_mac, src_mac, 0x86dd);
    let ip = &mut frame[14..54];
    ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&32u16.to_be_bytes());
    ip[6] = 58;
    ip[7] = 255; // RFC 4861: ND messages must carry hop limit 255
    ip[8..24].copy_from_slice(src);
    ip[24..40].copy_from_slice(dst);
    let icmp = &mut frame[54..86];
    icmp[0] = msg_type;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    icmp[4] = flags;
    icmp[5..8].fill(0);
    icmp[8..24].copy_from_slice(target);
    icmp[24] = option;
    icmp[25] = 1; // length in units of 8 bytes
    icmp[26..32].copy_from_slice(src_mac);
    let sum = checksum::finish(checksum::combine(
        checksum::pseudo_header_v6(src, dst, 58, 32),
        checksum::sum(icmp),
    ));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Writes an ARP request or a neighbour solicitation for `target` into `frame` (at least
/// [`frame_len`] bytes; the rest is left alone). Returns the length written.
pub fn build_solicit(
    out: &mut [u8],
    src_mac: &[u8; 6],
    vlan: Option<u16>,
    sender: &Addr,
    target: &Addr,
    unicast: Option<[u8; 6]>,
) -> Option<usize> {
    let mut buf = [0u8; ND_FRAME_LEN];
    let frame = &mut buf[..frame_len(target)];
    if target.is_v4() {
        put_eth(frame, &unicast.unwrap_or(BROADCAST), src_mac, 0x0806);
        let spa = if sender.is_v4() {
            sender.v4_octets()
        } else {
            [0; 4]
        };
        put_arp(frame, 1, src_mac, &spa, &[0; 6], &target.v4_octets());
    } else {
        let (dst, dst_mac) = match unicast {
            Some(mac) => (target.0, mac),
            None => solicited_node(&target.0),
        };
        let src = if sender.is_v4() { [0; 16] } else { sender.0 };
        // Option 1: source link-layer address.
        put_nd(frame, &dst_mac, src_mac, &src, &dst, 135, 0, &target.0, 1);
    }
    with_tag(out, frame, vlan)
}

/// Writes a gratuitous ARP (a request for our own address, broadcast) or an unsolicited
/// neighbour advertisement (to all nodes, override flag) for `addr`. Returns the length.
pub fn build_announce(
    out: &mut [u8],
    src_mac: &[u8; 6],
    vlan: Option<u16>,
    addr: &Addr,
) -> Option<usize> {
    let mut buf = [0u8; ND_FRAME_LEN];
    let frame = &mut buf[..frame_len(addr)];
    if addr.is_v4() {
        put_eth(frame, &BROADCAST, src_mac, 0x0806);
        let ip = addr.v4_octets();
        put_arp(frame, 1, src_mac, &ip, &[0; 6], &ip);
    } else {
        // Flags: override (0x20). Option 2: target link-layer address.
        put_nd(
            frame,
            &multicast_mac(&ALL_NODES),
            src_mac,
            &addr.0,
            &ALL_NODES,
            136,
            0x20,
            &addr.0,
            2,
        );
    }
    with_tag(out, frame, vlan)
}

/// Writes a solicited neighbour advertisement for our `target` to the soliciting `asker`
/// (all nodes when the solicitation came from the unspecified address, RFC 4861 §7.2.4).
pub fn build_advert(
    frame: &mut [u8],
    src_mac: &[u8; 6],
    target: &[u8; 16],
    asker: &[u8; 16],
    asker_mac: &[u8; 6],
) -> Option<usize> {
    let frame = frame.get_mut(..ND_FRAME_LEN)?;
    let (dst, dst_mac, flags) = if *asker == [0; 16] {
        (ALL_NODES, multicast_mac(&ALL_NODES), 0x20)
    } else {
        (*asker, *asker_mac, 0x60) // solicited | override
    };
    put_nd(
        frame, &dst_mac, src_mac, target, &dst, 136, flags, target, 2,
    );
    Some(ND_FRAME_LEN)
}

/// The fields of a neighbour solicitation or advertisement that matter here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NdMessage {
    /// 135 (NS) or 136 (NA).
    pub msg_type: u8,
    pub target: [u8; 16],
    /// The source (NS) or target (NA) link-layer address option, if present.
    pub lladdr: Option<[u8; 6]>,
    /// NA flags byte (router, solicited, override in the top bits).
    pub flags: u8,
}

/// Parses an NS/NA at `icmp` (the ICMPv6 message) after checking the RFC 4861 §7.1 rules a
/// receiver must: hop limit 255, code 0, length, valid options. `None` if it is not one.
pub fn parse_nd(icmp: &[u8], hop_limit: u8) -> Option<NdMessage> {
    let msg_type = *icmp.first()?;
    if !matches!(msg_type, 135 | 136) || hop_limit != 255 || *icmp.get(1)? != 0 || icmp.len() < 24 {
        return None;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(icmp.get(8..24)?);
    let mut lladdr = None;
    let mut opts = icmp.get(24..)?;
    while opts.len() >= 2 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        let wanted = if msg_type == 135 { 1 } else { 2 };
        if opts[0] == wanted && len >= 8 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&opts[2..8]);
            lladdr = Some(mac);
        }
        opts = &opts[len..];
    }
    Some(NdMessage {
        msg_type,
        target,
        lladdr,
        flags: icmp[4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(n: u8) -> Addr {
        Addr::from_v4([198, 18, 0, n])
    }

    const TIMERS: NeighbourTimers = NeighbourTimers {
        refresh_after_ms: 1000,
        expire_after_ms: 2000,
        retry_ms: 100,
        max_attempts: 3,
    };

    #[test]
    fn resolves_with_backoff_then_gives_up_and_holds_the_failure() {
        let cache = NeighbourCache::new(64);
        let mut r = Resolver::new();
        let macs = [PortInfo {
            phys: 0,
            vlan: None,
            mac: [2, 0, 0, 0, 0, 1],
        }];
        assert_eq!(r.pending(&v4(9), 0, &v4(1), 0), Pending::Park(0));
        assert_eq!(
            r.pending(&v4(9), 0, &v4(1), 5),
            Pending::Park(0),
            "same slot"
        );
        let mut sent = Vec::new();
        for now in 0..=800 {
            r.step(now, &cache, &TIMERS, &macs, |e| sent.push((now, e)));
        }
        let times: Vec<u32> = sent.iter().map(|(t, _)| *t).collect();
        // Requests at 0, 100, 300 (doubling), given up at 700.
        assert_eq!(times, [0, 100, 300, 700]);
        assert_eq!(sent[3].1, NeighbourEvent::Discard { slot: 0 });
        assert!(
            matches!(sent[0].1, NeighbourEvent::Solicit { port: 0, target, sender, unicast: None, .. } if target == v4(9) && sender == v4(1))
        );
        assert_eq!(
            r.pending(&v4(9), 0, &v4(1), 800),
            Pending::Drop,
            "held as failed"
        );
        // After the hold it is tried again.
        for now in 801..=1500 {
            r.step(now, &cache, &TIMERS, &macs, |_| {});
        }
        assert_eq!(r.active(), 0);
        assert_eq!(r.pending(&v4(9), 0, &v4(1), 1501), Pending::Park(0));
    }

    #[test]
    fn releases_when_the_cache_learns_the_binding() {
        let cache = NeighbourCache::new(64);
        let mut r = Resolver::new();
        let macs = [
            PortInfo {
                phys: 0,
                vlan: None,
                mac: [2, 0, 0, 0, 0, 1],
            },
            PortInfo {
                phys: 0,
                vlan: Some(7),
                mac: [2, 0, 0, 0, 0, 2],
            },
        ];
        assert_eq!(r.pending(&v4(9), 1, &v4(1), 0), Pending::Park(0));
        let mut events = Vec::new();
        r.step(0, &cache, &TIMERS, &macs, |e| events.push(e));
        cache.learn(&v4(9), 1, [2, 0, 0, 0, 0, 9], 10);
        r.step(10, &cache, &TIMERS, &macs, |e| events.push(e));
        // Logical port 1 is VLAN 7 on physical port 0: the request is tagged.
        assert!(matches!(
            events[0],
            NeighbourEvent::Solicit {
                port: 0,
                vlan: Some(7),
                ..
            }
        ));
        assert_eq!(
            events[1],
            NeighbourEvent::Release {
                slot: 0,
                port: 0,
                dst_mac: [2, 0, 0, 0, 0, 9],
                src_mac: [2, 0, 0, 0, 0, 2]
            }
        );
        assert_eq!(r.active(), 0);
    }

    #[test]
    fn too_many_next_hops_are_dropped() {
        let mut r = Resolver::new();
        for n in 0..MAX_PENDING {
            let addr = Addr::from_v4([10, 0, (n >> 8) as u8, n as u8]);
            assert_eq!(r.pending(&addr, 0, &v4(1), 0), Pending::Park(n as u16));
        }
        assert_eq!(r.pending(&v4(200), 0, &v4(1), 0), Pending::Drop);
    }

    #[test]
    fn parked_packets_are_bounded_and_ordered() {
        let mut p = ParkedPackets::new();
        for i in 0..QUEUE_PER_TARGET {
            p.park(3, i).unwrap();
        }
        assert_eq!(p.park(3, 99), Err(99));
        assert_eq!(
            p.take(3).collect::<Vec<_>>(),
            (0..QUEUE_PER_TARGET).collect::<Vec<_>>()
        );
        assert!(p.is_empty());
    }

    #[test]
    fn frames_parse_with_etherparse() {
        let mac = [2, 0, 0, 0, 0, 1];
        let mut f = [0u8; 128];
        let n = build_solicit(&mut f, &mac, None, &v4(1), &v4(9), None).unwrap();
        let arp = crate::wire::arp::ArpPacket::new_checked(&f[14..n]).unwrap();
        assert_eq!(arp.operation(), 1);
        assert_eq!(arp.target_protocol_addr(), [198, 18, 0, 9]);
        assert_eq!(arp.sender_protocol_addr(), [198, 18, 0, 1]);
        assert_eq!(&f[..6], &[0xff; 6]);

        let target = [
            0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56,
        ];
        let ours = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let n = build_solicit(
            &mut f,
            &mac,
            None,
            &Addr::from_v6(ours),
            &Addr::from_v6(target),
            None,
        )
        .unwrap();
        let sliced = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &sliced.net else {
            panic!("not IPv6")
        };
        assert_eq!(
            ip.header().destination(),
            [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x12, 0x34, 0x56]
        );
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0x12, 0x34, 0x56]);
        let Some(etherparse::TransportSlice::Icmpv6(icmp)) = &sliced.transport else {
            panic!("not ICMPv6")
        };
        assert!(icmp.is_checksum_valid(ip.header().source(), ip.header().destination()));
        let nd = parse_nd(&f[54..n], 255).unwrap();
        assert_eq!(
            (nd.msg_type, nd.target, nd.lladdr),
            (135, target, Some(mac))
        );
        assert_eq!(parse_nd(&f[54..n], 64), None, "hop limit must be 255");

        let n = build_announce(&mut f, &mac, None, &Addr::from_v6(ours)).unwrap();
        let sliced = etherparse::SlicedPacket::from_ethernet(&f[..n]).unwrap();
        let (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Icmpv6(icmp))) =
            (&sliced.net, &sliced.transport)
        else {
            panic!("not ICMPv6")
        };
        assert!(icmp.is_checksum_valid(ip.header().source(), ip.header().destination()));
        let nd = parse_nd(&f[54..n], 255).unwrap();
        assert_eq!(
            (nd.msg_type, nd.target, nd.lladdr, nd.flags),
            (136, ours, Some(mac), 0x20)
        );
    }
}
