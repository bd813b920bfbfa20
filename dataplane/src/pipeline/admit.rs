//! Admitting a new connection, in two steps: [`Worker::plan_connection`] decides (service,
//! backend, SNAT lease, hence the reply key) without touching the packet or the table, and
//! [`Worker::open_connection`] enters the plan in the table, or [`Worker::refuse`] carries out
//! the refusal.
//!
//! The split lets a TCP SYN be planned *before* the table is searched for its key (see
//! `Worker::translate_parsed`): the reply key's index slot is then prefetched while the
//! original key's slot is still on its way, so the two cache misses of a new connection
//! overlap instead of adding up. A SYN that turns out to belong to an existing connection (a
//! retransmission) undoes its plan with [`Worker::abandon`], leaving the SNAT pool and the
//! round-robin cursor as they were.

use crate::conntrack::{ConnData, ConnId, Direction, InsertError, SnatLease, Tick};
use crate::flow::{FlowKey, NatMode, Proto};
use crate::snapshot::{Backend, BackendState, ServiceKey, Snapshot};
use crate::wire::{PacketInfo, TcpFlags};

use super::{is_host_addr, DropReason, PacketBuf, Verdict, Worker};

/// A new connection decided but not yet in the table.
#[derive(Copy, Clone, Debug)]
pub(super) struct Plan {
    service: u32,
    backend: Backend,
    mode: NatMode,
    /// The key replies will arrive with, and its connection-table hash.
    pub reply: FlowKey,
    pub reply_hash: u64,
    /// The full-NAT source address and port taken for the connection.
    lease: Option<SnatLease>,
    /// The service's round-robin cursor slot and its value before the selection.
    cursor: (usize, u32),
}

/// Why a flow gets no connection, and so what to do with its packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not for a VIP but for the host's own address: its kernel's business.
    ToHost,
    /// Dropped and counted.
    Drop(DropReason),
    /// Answered with a TCP reset or ICMP port unreachable; `service` (when there is one)
    /// counts the rejection.
    Reject { service: Option<u32> },
}

/// Whether TCP `flags` are those of a connection's first packet: SYN without ACK (0 for UDP,
/// whose first packet nothing marks).
#[inline(always)]
pub(super) fn is_syn(flags: u8) -> bool {
    flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN
}

impl Worker {
    /// Decides the connection the first packet of `key` opens. Changes nothing the packet or
    /// the table can see; a round-robin service's cursor does advance, and a full-NAT lease is
    /// taken (given back by [`Worker::abandon`] or a failed [`Worker::open_connection`]).
    #[inline]
    pub(super) fn plan_connection(
        &mut self,
        snap: &Snapshot,
        info: &PacketInfo,
        key: &FlowKey,
    ) -> Result<Plan, Refusal> {
        if !snap.is_vip(&key.dst) {
            // Checked only here, on a connection-table miss, so established flows pay nothing
            // for the exception path; an interface address that is also a SNAT address still
            // gets its full-NAT replies (those hit the table first).
            if is_host_addr(snap, &key.dst) {
                return Err(Refusal::ToHost);
            }
            return Err(Refusal::Drop(DropReason::NoConnection));
        }
        let service_key = ServiceKey {
            vip: key.dst,
            port: key.dst_port,
            proto: key.proto,
        };
        let Some(service) = snap.service(&service_key) else {
            return Err(Refusal::Reject { service: None });
        };
        if key.proto == Proto::Tcp {
            let flags = info.tcp_flags;
            if flags.rst() || (!flags.syn() && !self.cfg.midstream_pickup) {
                return Err(Refusal::Drop(DropReason::TcpNotSyn));
            }
        }
        let rejected = Refusal::Reject {
            service: Some(service.id),
        };
        let cursor = (service.slot, *self.rr.for_service(service.slot));
        let Some((_, backend)) = service.select_backend(key, &mut self.rr) else {
            return Err(rejected);
        };
        // A REJECT backend's share is refused outright, with no connection state.
        if backend.state == BackendState::Reject {
            return Err(rejected);
        }
        let backend = *backend;
        let (reply, lease) = match service.mode {
            NatMode::Dnat => (
                FlowKey {
                    src: backend.addr,
                    dst: key.src,
                    src_port: backend.port,
                    dst_port: key.src_port,
                    proto: key.proto,
                },
                None,
            ),
            NatMode::FullNat => {
                let allocator = service
                    .snat_pool
                    .and_then(|p| self.snat_by_pool.get(p))
                    .and_then(|&i| self.snat.get_mut(i));
                let Some(allocator) = allocator else {
                    return Err(Refusal::Drop(DropReason::NoSnatPool));
                };
                let Some(lease) = allocator.allocate(key.proto, key.hash(self.selection_hash_seed))
                else {
                    return Err(Refusal::Drop(DropReason::SnatExhausted));
                };
                (
                    FlowKey {
                        src: backend.addr,
                        dst: lease.addr,
                        src_port: backend.port,
                        dst_port: lease.port,
                        proto: key.proto,
                    },
                    Some(lease),
                )
            }
        };
        Ok(Plan {
            service: service.id,
            backend,
            mode: service.mode,
            reply_hash: self.conns.hash_key(&reply),
            reply,
            lease,
            cursor,
        })
    }

    /// Undoes a plan whose flow turned out to have a connection already: the SNAT port is the
    /// next one handed out again and the round-robin cursor is back where it was, so a
    /// retransmitted SYN changes nothing (the plan must be the last one made).
    #[inline]
    pub(super) fn abandon(&mut self, plan: &Plan, proto: Proto) {
        if let Some(lease) = plan.lease {
            self.snat
                .iter_mut()
                .any(|a| a.unallocate(&lease.addr, proto, lease.port));
        }
        let (slot, position) = plan.cursor;
        *self.rr.for_service(slot) = position;
    }

    /// Enters `plan` in the table for `key` (whose hash is `hash`, and which the caller has just
    /// looked up and not found), counting the new connection; what to do with the packet
    /// instead when the table refuses it.
    #[inline]
    pub(super) fn open_connection(
        &mut self,
        plan: &Plan,
        key: &FlowKey,
        hash: u64,
        now: Tick,
    ) -> Result<(ConnId, Direction), Refusal> {
        let hashes = (hash, plan.reply_hash);
        let data = ConnData {
            service: plan.service,
            backend: plan.backend.id,
            nat: plan.mode,
        };
        let mut inserted = self
            .conns
            .insert_missed(*key, plan.reply, hashes, data, now);
        if inserted == Err(InsertError::Duplicate(Direction::Reply))
            && self.reclaim_finished(&plan.reply, now)
        {
            inserted = self
                .conns
                .insert_missed(*key, plan.reply, hashes, data, now);
        }
        match inserted {
            Ok(id) => {
                self.counters.new_connections.inc();
                self.counters.active_connections.inc();
                if let Some(c) = self.counters.service(plan.service) {
                    c.new_connections.inc();
                }
                if let Some(c) = self.counters.backend(plan.backend.id) {
                    c.new_connections.inc();
                }
                Ok((id, Direction::Original))
            }
            Err(e) => {
                self.abandon(plan, key.proto);
                Err(Refusal::Drop(match e {
                    InsertError::Full | InsertError::LocalAddrsFull => DropReason::TableFull,
                    // A live connection has the reply key: refuse rather than mix them.
                    InsertError::Duplicate(_) => DropReason::ReplyKeyInUse,
                    InsertError::InvalidKeys => DropReason::NoConnection,
                }))
            }
        }
    }

    /// Carries out `refusal` on the packet: the verdict for it.
    pub(super) fn refuse<B: PacketBuf + ?Sized>(
        &mut self,
        refusal: Refusal,
        pkt: &mut B,
        info: &PacketInfo,
        ingress: u16,
    ) -> Verdict {
        match refusal {
            Refusal::ToHost => Verdict::ToHost { port: ingress },
            Refusal::Drop(reason) => Verdict::Drop(reason),
            Refusal::Reject { service } => {
                if let Some(c) = service.and_then(|id| self.counters.service(id)) {
                    c.rejected.inc();
                }
                self.reject(pkt, info, ingress)
            }
        }
    }
}
