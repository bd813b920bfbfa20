//! The worker's side of ARP and neighbour discovery: learning bindings from what arrives,
//! answering neighbour solicitations, finding the next hop's MAC (or parking the packet until
//! it is resolved), and the per-millisecond step that sends requests, refreshes, gratuitous
//! announcements and releases parked packets. See [`crate::neigh`] for the shared cache.

use super::{DropReason, Egress, PacketBuf, Verdict, Worker, EGRESS_CACHE};
use crate::conntrack::Tick;
use crate::flow::Addr;
use crate::neigh::{self, Learned, NeighbourEvent, Pending};
use crate::snapshot::Snapshot;
use crate::wire::{self, PacketInfo};

/// Gratuitous announcements queued at most per snapshot change (a batch of 10,000 new VIPs
/// must not become a broadcast storm); the rest are not announced (ARP still answers them).
const MAX_QUEUED_ANNOUNCEMENTS: usize = 1024;
/// Announcements sent per step (per millisecond).
const ANNOUNCEMENTS_PER_STEP: usize = 16;
/// Cache slots the sweeping worker examines per step.
const SWEEP_BUDGET: usize = 16;

impl Worker {
    /// Learns the sender of an ARP packet received on `ingress` (RFC 826 "merge": any ARP
    /// from a host tells us where it is). Gratuitous and probe packets (sender 0.0.0.0) teach
    /// nothing about 0.0.0.0.
    pub(super) fn learn_arp(
        &mut self,
        sender_ip: [u8; 4],
        sender_mac: [u8; 6],
        ingress: u16,
        now: Tick,
    ) -> Learned {
        if sender_ip == [0; 4] || sender_mac[0] & 1 == 1 {
            return Learned::Busy;
        }
        self.learn(&Addr::from_v4(sender_ip), ingress, sender_mac, now)
    }

    fn learn(&mut self, addr: &Addr, port: u16, mac: [u8; 6], now: Tick) -> Learned {
        let learned = self.cfg.neighbours.learn(addr, port, mac, now.0);
        if learned == Learned::Changed {
            // This worker learned it: flush its own egress cache right away (the others see
            // the cache version change at their next poll).
            self.flush_egress();
        }
        learned
    }

    pub(super) fn flush_egress(&mut self) {
        self.egress.fill(None);
        self.neigh_version = self.cfg.neighbours.version();
    }

    /// Flushes the egress cache when a learned binding moved or expired (one atomic load).
    #[inline]
    pub(super) fn check_neighbour_version(&mut self) {
        if self.cfg.neighbours.version() != self.neigh_version {
            self.flush_egress();
        }
    }

    /// Neighbour solicitations and advertisements (ICMPv6 135/136) received on `ingress`:
    /// learns the sender (NS with a source link-layer option) or the target (NA), and answers
    /// solicitations for the appliance's addresses (VIPs, SNAT addresses, the port's
    /// interface addresses). `None` if the packet is not a valid NS/NA.
    // Off the established-flow path: kept out of line so the hot function stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn neighbour_discovery<B: PacketBuf + ?Sized>(
        &mut self,
        snap: &Snapshot,
        pkt: &mut B,
        info: &PacketInfo,
        ingress: u16,
        now: Tick,
    ) -> Option<Verdict> {
        let icmp = pkt.data().get(info.l4_range())?;
        let nd = neigh::parse_nd(icmp, info.ttl)?;
        let port = self.logical_ingress(ingress, info.vlan);
        if nd.msg_type == 136 {
            if let Some(mac) = nd.lladdr {
                let learned = self.learn(&Addr::from_v6(nd.target), port, mac, now);
                if learned != Learned::Busy {
                    self.counters.neighbour_replies.inc();
                }
            }
            return Some(Verdict::Consumed);
        }
        // A solicitation: its sender (unless it does duplicate address detection from ::).
        if let Some(mac) = nd.lladdr {
            if info.src != Addr::UNSPECIFIED {
                self.learn(&info.src, port, mac, now);
            }
        }
        let target = Addr::from_v6(nd.target);
        if !snap.answers_for(&target, port) {
            return Some(Verdict::Drop(DropReason::NotIp));
        }
        let our_mac = self.port_mac(port)?;
        let asker_mac = match (nd.lladdr, pkt.data().get(6..12)) {
            (Some(mac), _) => mac,
            (None, Some(src)) => src.try_into().ok()?,
            (None, None) => return None,
        };
        // The answer replaces the frame; VLAN tags (between the MACs and the EtherType) stay.
        let mut answer = [0u8; neigh::ND_FRAME_LEN];
        neigh::build_advert(&mut answer, &our_mac, &nd.target, &info.src.0, &asker_mac)?;
        let tags = usize::from(info.l3_offset).checked_sub(14)?;
        if !pkt.resize(tags + neigh::ND_FRAME_LEN) {
            return Some(Verdict::Drop(DropReason::Malformed(
                wire::ParseError::Truncated,
            )));
        }
        let frame = pkt.data_mut();
        frame[..12].copy_from_slice(&answer[..12]);
        frame[12 + tags..].copy_from_slice(&answer[12..]);
        self.counters.arp_replies.inc();
        Some(Verdict::Reply { port: ingress })
    }

    /// The MACs and port for the next hop towards `dst`: from a static neighbour, else the
    /// shared cache, else the packet is parked until resolution (or dropped if the next hop
    /// failed recently or too many are being resolved).
    // Off the established-flow path: kept out of line so the hot function stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn resolve_egress(
        &mut self,
        snap: &Snapshot,
        dst: &Addr,
        now: Tick,
    ) -> Result<Egress, (Verdict, Option<u16>)> {
        let Some((port, hop)) = snap.egress(dst) else {
            return Err((Verdict::Drop(DropReason::NoRoute), None));
        };
        let Some(&info) = self.ports.get(usize::from(port)) else {
            return Err((Verdict::Drop(DropReason::NoRoute), None));
        };
        let mac = match snap.neighbour(&hop) {
            Some(n) => n.mac,
            None => match self.cfg.neighbours.lookup(&hop, port) {
                Some(binding) => binding.mac,
                None => {
                    let sender = snap.source_for(port, &hop);
                    let verdict = match self.resolver.pending(&hop, port, &sender, now.0) {
                        Pending::Park(slot) => Verdict::Park { slot },
                        Pending::Drop => Verdict::Drop(DropReason::NoNeighbour),
                    };
                    return Err((verdict, info.vlan));
                }
            },
        };
        Ok(Egress {
            dst: *dst,
            port: info.phys,
            vlan: info.vlan,
            dst_mac: mac,
            src_mac: info.mac,
        })
    }

    /// Queues gratuitous announcements for the addresses a new snapshot adds (worker 0 only,
    /// so each is sent once): VIPs and SNAT addresses on every port, interface addresses on
    /// their own port.
    pub(super) fn queue_announcements(&mut self, snap: &Snapshot) {
        if self.cfg.index != 0 {
            return;
        }
        let ports = self.ports.len() as u16;
        let mut current: Vec<(Addr, u16)> = snap
            .service_addrs()
            .flat_map(|a| (0..ports).map(move |p| (*a, p)))
            .chain(snap.local_addrs().iter().map(|l| (l.addr, l.port)))
            .collect();
        current.sort_unstable();
        current.dedup();
        for entry in &current {
            if self.announce.len() >= MAX_QUEUED_ANNOUNCEMENTS {
                break;
            }
            if self.announced.binary_search(entry).is_err() {
                self.announce.push_back(*entry);
            }
        }
        self.announced = current;
    }

    /// The neighbour work of one millisecond: resolution attempts and releases of this
    /// worker's parked packets, announcements, and (on worker 0) the cache sweep that expires
    /// and refreshes learned bindings. `emit` receives what the loop must send or release.
    pub fn neighbour_step(
        &mut self,
        snap: &Snapshot,
        now: Tick,
        mut emit: impl FnMut(NeighbourEvent),
    ) {
        let counters = &self.counters;
        self.resolver.step(
            now.0,
            &self.cfg.neighbours,
            &self.cfg.neighbour_timers,
            &self.ports,
            |event| {
                match event {
                    NeighbourEvent::Solicit { .. } => counters.arp_requests_sent.inc(),
                    NeighbourEvent::Release { .. } => counters.neighbours_resolved.inc(),
                    _ => {}
                }
                emit(event);
            },
        );
        for _ in 0..ANNOUNCEMENTS_PER_STEP {
            let Some((addr, port)) = self.announce.pop_front() else {
                break;
            };
            let Some(info) = self.ports.get(usize::from(port)) else {
                continue;
            };
            counters.announcements_sent.inc();
            emit(NeighbourEvent::Announce {
                port: info.phys,
                vlan: info.vlan,
                src_mac: info.mac,
                addr,
            });
        }
        if self.cfg.index == 0 {
            let ports = &self.ports;
            let expired = self.cfg.neighbours.sweep(
                now.0,
                SWEEP_BUDGET,
                &self.cfg.neighbour_timers,
                |binding| {
                    let Some(info) = ports.get(usize::from(binding.port)) else {
                        return;
                    };
                    counters.arp_requests_sent.inc();
                    emit(NeighbourEvent::Solicit {
                        port: info.phys,
                        vlan: info.vlan,
                        src_mac: info.mac,
                        target: binding.addr,
                        sender: snap.source_for(binding.port, &binding.addr),
                        unicast: Some(binding.mac),
                    });
                },
            );
            counters.neighbours_expired.add(expired as u64);
        }
    }
}

const _: () = assert!(EGRESS_CACHE.is_power_of_two());
