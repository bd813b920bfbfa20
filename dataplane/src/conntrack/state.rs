//! Per-connection protocol state and the idle timeout that each state allows.
//!
//! TCP tracking follows the flags only (no sequence-window checks): enough to age half-open,
//! closing and reset connections quickly while keeping established ones, as a NAT must
//! (RFC 5382). UDP and ICMP have two states: unreplied, and replied ("assured").

use super::{Aging, Direction};
use crate::flow::Proto;

/// TCP header flag bits, as in the flags byte of the TCP header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

use tcp_flags::{ACK, FIN, RST, SYN};

/// Where a connection is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// TCP: the client's SYN seen (or nothing yet).
    SynSent,
    /// TCP: the server's SYN-ACK seen; waiting for the client's ACK.
    SynReceived,
    /// TCP: handshake complete (or picked up mid-stream).
    Established,
    /// TCP: one side sent FIN.
    FinWait,
    /// TCP: both sides sent FIN; waiting for the last ACK.
    Closing,
    /// TCP: the last ACK after both FINs seen.
    TimeWait,
    /// TCP: reset.
    Closed,
    /// UDP/ICMP: only the original direction seen.
    Unreplied,
    /// UDP/ICMP: the reply direction seen too.
    Replied,
}

impl ConnState {
    /// Every state, in declaration order.
    pub const ALL: [ConnState; 9] = [
        ConnState::SynSent,
        ConnState::SynReceived,
        ConnState::Established,
        ConnState::FinWait,
        ConnState::Closing,
        ConnState::TimeWait,
        ConnState::Closed,
        ConnState::Unreplied,
        ConnState::Replied,
    ];

    /// Whether this is one of the TCP states.
    #[inline]
    pub fn is_tcp(self) -> bool {
        !matches!(self, ConnState::Unreplied | ConnState::Replied)
    }

    /// Whether the connection is over (it only waits out its timeout).
    #[inline]
    pub fn is_terminal(self) -> bool {
        matches!(self, ConnState::TimeWait | ConnState::Closed)
    }
}

/// What a packet changed, so the caller can keep per-state counters.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Nothing worth counting.
    None,
    /// TCP handshake completed (or a mid-stream pickup); UDP/ICMP: first reply seen.
    Established,
    /// TCP: entered TIME_WAIT or CLOSED from a live state (counted once per connection life).
    Closed,
    /// TCP: a new SYN from the client reused a closed connection's tuple.
    Reopened,
}

/// Idle timeouts per state, in milliseconds (the unit of [`super::Tick`]).
///
/// Defaults follow Linux nf_conntrack, except `tcp_established`, which is RFC 5382's minimum
/// for a NAT (2 h 4 min) instead of Linux's five days: a load balancer's table is a bounded
/// resource. Values above `i32::MAX` ms are clamped by the table (see [`Timeouts::clamped`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// SYN_SENT and SYN_RECEIVED.
    pub tcp_syn: u32,
    pub tcp_established: u32,
    /// FIN_WAIT and CLOSING (one or both FINs, no last ACK yet).
    pub tcp_fin: u32,
    pub tcp_time_wait: u32,
    /// After a RST.
    pub tcp_close: u32,
    /// UDP, no reply seen yet.
    pub udp: u32,
    /// UDP with replies seen (a "stream").
    pub udp_stream: u32,
    /// ICMP/ICMPv6 echo.
    pub icmp: u32,
    /// Connections not yet established (TCP before the handshake's last ACK; UDP and ICMP
    /// before a reply) expire after at most this while the table or an SNAT pool is under
    /// pressure (see [`super::Aging`]): a SYN flood or a scan then holds each entry this long
    /// instead of `tcp_syn`, and new clients get the entries it frees. Linux conntrack's early
    /// drop and IPVS's defence modes do the same to unconfirmed entries.
    pub embryonic_under_pressure: u32,
}

impl Timeouts {
    /// The largest timeout the wrapping [`super::Tick`] arithmetic can represent.
    pub const MAX: u32 = i32::MAX as u32;

    /// Production defaults (see the type's documentation).
    pub const DEFAULT: Timeouts = Timeouts {
        tcp_syn: 120_000,
        tcp_established: 7_440_000,
        tcp_fin: 120_000,
        tcp_time_wait: 120_000,
        tcp_close: 10_000,
        udp: 30_000,
        udp_stream: 180_000,
        icmp: 30_000,
        embryonic_under_pressure: 5_000,
    };

    /// Every field clamped to [`Timeouts::MAX`].
    pub fn clamped(self) -> Timeouts {
        let c = |v: u32| v.min(Self::MAX);
        Timeouts {
            tcp_syn: c(self.tcp_syn),
            tcp_established: c(self.tcp_established),
            tcp_fin: c(self.tcp_fin),
            tcp_time_wait: c(self.tcp_time_wait),
            tcp_close: c(self.tcp_close),
            udp: c(self.udp),
            udp_stream: c(self.udp_stream),
            icmp: c(self.icmp),
            embryonic_under_pressure: c(self.embryonic_under_pressure),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts::DEFAULT
    }
}

/// Flag bits of [`Tracker`]: FIN seen per direction, and "no packet seen yet".
const FIN_ORIGINAL: u8 = 0x01;
const FIN_REPLY: u8 = 0x02;
const FIN_BOTH: u8 = FIN_ORIGINAL | FIN_REPLY;
const NO_PACKET_YET: u8 = 0x04;

/// The TCP states in which a segment without SYN, FIN or RST changes nothing (an ACK moves
/// only SYN_RECEIVED, from the client, and CLOSING), as a mask of `1 << state`.
const QUIET_WITHOUT_SYN_FIN_RST: u16 = 1 << ConnState::SynSent as u8
    | 1 << ConnState::Established as u8
    | 1 << ConnState::FinWait as u8
    | 1 << ConnState::TimeWait as u8
    | 1 << ConnState::Closed as u8;

/// The state machine of one connection: two bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tracker {
    state: ConnState,
    flags: u8,
}

impl Tracker {
    /// A connection that no packet has been applied to yet. Apply the first packet with
    /// [`Tracker::on_packet`] like every other: for TCP a SYN gives SYN_SENT, a RST gives CLOSED,
    /// anything else is a mid-stream pickup and gives ESTABLISHED (the caller decides whether
    /// non-SYN packets may create connections at all).
    #[inline]
    pub const fn new(proto: Proto) -> Tracker {
        let state = match proto {
            Proto::Tcp => ConnState::SynSent,
            Proto::Udp | Proto::Icmp | Proto::Icmpv6 => ConnState::Unreplied,
        };
        Tracker {
            state,
            flags: NO_PACKET_YET,
        }
    }

    #[inline]
    pub fn state(&self) -> ConnState {
        self.state
    }

    /// Advance on one packet. `tcp_flags` is the TCP flags byte (ignored for UDP/ICMP).
    #[inline]
    pub fn on_packet(&mut self, dir: Direction, tcp_flags: u8) -> Transition {
        // Nearly every packet an appliance sees: a segment without SYN, FIN or RST of a TCP
        // connection that such a segment leaves as it is: established, or one whose replies
        // take another path (direct server return, asymmetric routes), which stays in
        // SYN_SENT (`on_tcp` agrees, see the tests).
        if tcp_flags & (RST | SYN | FIN) == 0
            && self.flags & NO_PACKET_YET == 0
            && QUIET_WITHOUT_SYN_FIN_RST & 1 << self.state as u8 != 0
        {
            return Transition::None;
        }
        let first = self.flags & NO_PACKET_YET != 0;
        self.flags &= !NO_PACKET_YET;
        if !self.state.is_tcp() {
            return self.on_datagram(dir);
        }
        if first && dir == Direction::Original {
            return self.on_first_tcp(tcp_flags);
        }
        self.on_tcp(dir, tcp_flags)
    }

    fn on_datagram(&mut self, dir: Direction) -> Transition {
        if dir == Direction::Reply && self.state == ConnState::Unreplied {
            self.state = ConnState::Replied;
            return Transition::Established;
        }
        Transition::None
    }

    fn on_first_tcp(&mut self, flags: u8) -> Transition {
        if flags & RST != 0 {
            self.state = ConnState::Closed;
            return Transition::Closed;
        }
        if flags & SYN != 0 && flags & ACK == 0 {
            self.state = ConnState::SynSent;
            return Transition::None;
        }
        self.state = ConnState::Established;
        if flags & FIN != 0 {
            self.flags |= FIN_ORIGINAL;
            self.state = ConnState::FinWait;
        }
        Transition::Established
    }

    fn on_tcp(&mut self, dir: Direction, flags: u8) -> Transition {
        use ConnState::*;
        let was_terminal = self.state.is_terminal();
        if flags & RST != 0 {
            self.state = Closed;
            return if was_terminal {
                Transition::None
            } else {
                Transition::Closed
            };
        }
        if flags & SYN != 0 {
            return self.on_syn(dir, flags & ACK != 0);
        }
        if flags & FIN != 0 {
            self.flags |= match dir {
                Direction::Original => FIN_ORIGINAL,
                Direction::Reply => FIN_REPLY,
            };
            let both = self.flags & FIN_BOTH == FIN_BOTH;
            let became_established = self.state == SynReceived && dir == Direction::Original;
            match self.state {
                SynSent | SynReceived | Established | FinWait => {
                    self.state = if both { Closing } else { FinWait };
                }
                Closing | TimeWait | Closed | Unreplied | Replied => {}
            }
            return if became_established {
                Transition::Established
            } else {
                Transition::None
            };
        }
        if flags & ACK != 0 {
            match self.state {
                SynReceived if dir == Direction::Original => {
                    self.state = Established;
                    return Transition::Established;
                }
                Closing => {
                    self.state = TimeWait;
                    return Transition::Closed;
                }
                _ => {}
            }
        }
        Transition::None
    }

    fn on_syn(&mut self, dir: Direction, ack: bool) -> Transition {
        use ConnState::*;
        match (self.state, dir, ack) {
            (SynSent, Direction::Reply, true) => {
                self.state = SynReceived;
                Transition::None
            }
            // The client reuses the tuple of a finished connection (port reuse after
            // TIME_WAIT): start over, keeping the same backend.
            (TimeWait | Closed, Direction::Original, false) => {
                self.state = SynSent;
                self.flags = 0;
                Transition::Reopened
            }
            // Retransmissions and anything else: no change.
            _ => Transition::None,
        }
    }

    /// Whether the connection has not been confirmed by the other side yet: TCP before the
    /// handshake completes, UDP and ICMP before a reply.
    #[inline]
    pub fn is_embryonic(&self) -> bool {
        matches!(
            self.state,
            ConnState::SynSent | ConnState::SynReceived | ConnState::Unreplied
        )
    }

    /// The idle timeout of the current state under `aging`, in milliseconds.
    #[inline]
    pub fn timeout_under(&self, proto: Proto, timeouts: &Timeouts, aging: Aging) -> u32 {
        let timeout = self.timeout(proto, timeouts);
        match aging {
            Aging::UnderPressure if self.is_embryonic() => {
                timeout.min(timeouts.embryonic_under_pressure)
            }
            _ => timeout,
        }
    }

    /// The idle timeout of the current state, in milliseconds.
    #[inline]
    pub fn timeout(&self, proto: Proto, timeouts: &Timeouts) -> u32 {
        match self.state {
            ConnState::SynSent | ConnState::SynReceived => timeouts.tcp_syn,
            ConnState::Established => timeouts.tcp_established,
            ConnState::FinWait | ConnState::Closing => timeouts.tcp_fin,
            ConnState::TimeWait => timeouts.tcp_time_wait,
            ConnState::Closed => timeouts.tcp_close,
            ConnState::Unreplied | ConnState::Replied => match proto {
                Proto::Icmp | Proto::Icmpv6 => timeouts.icmp,
                Proto::Udp | Proto::Tcp if self.state == ConnState::Replied => timeouts.udp_stream,
                Proto::Udp | Proto::Tcp => timeouts.udp,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_flags::*;
    use super::*;
    use Direction::{Original, Reply};

    fn tcp() -> Tracker {
        Tracker::new(Proto::Tcp)
    }

    #[test]
    fn three_way_handshake_then_graceful_close() {
        let mut t = tcp();
        assert_eq!(t.on_packet(Original, SYN), Transition::None);
        assert_eq!(t.state(), ConnState::SynSent);
        assert_eq!(t.on_packet(Reply, SYN | ACK), Transition::None);
        assert_eq!(t.state(), ConnState::SynReceived);
        assert_eq!(t.on_packet(Original, ACK), Transition::Established);
        assert_eq!(t.state(), ConnState::Established);
        assert_eq!(t.on_packet(Reply, ACK | PSH), Transition::None);
        assert_eq!(t.on_packet(Original, FIN | ACK), Transition::None);
        assert_eq!(t.state(), ConnState::FinWait);
        assert_eq!(t.on_packet(Reply, ACK), Transition::None);
        assert_eq!(t.state(), ConnState::FinWait);
        assert_eq!(t.on_packet(Reply, FIN | ACK), Transition::None);
        assert_eq!(t.state(), ConnState::Closing);
        assert_eq!(t.on_packet(Original, ACK), Transition::Closed);
        assert_eq!(t.state(), ConnState::TimeWait);
        // A RST after TIME_WAIT is not a second close.
        assert_eq!(t.on_packet(Reply, RST), Transition::None);
        assert_eq!(t.state(), ConnState::Closed);
    }

    #[test]
    fn all_lists_every_state_once_in_order() {
        for (i, state) in ConnState::ALL.into_iter().enumerate() {
            assert_eq!(state as usize, i);
        }
        assert_eq!(ConnState::ALL.len(), ConnState::Replied as usize + 1);
    }

    #[test]
    fn the_shortcut_agrees_with_the_state_machine_in_every_tcp_state() {
        // Every TCP state with every FIN record, every flags byte, both directions:
        // `on_packet` (shortcut included) and the general `on_tcp` give the same transition
        // and leave the same tracker.
        let mut shortcuts = 0;
        for state in ConnState::ALL.into_iter().filter(|s| s.is_tcp()) {
            for fins in [0, FIN_ORIGINAL, FIN_REPLY, FIN_BOTH] {
                let before = Tracker { state, flags: fins };
                for flags in 0..=u8::MAX {
                    for dir in [Original, Reply] {
                        let (mut fast, mut general) = (before, before);
                        let what = format!("{state:?} fins {fins} flags {flags:#04x} {dir:?}");
                        assert_eq!(
                            fast.on_packet(dir, flags),
                            general.on_tcp(dir, flags),
                            "{what}"
                        );
                        assert_eq!(fast, general, "{what}");
                        shortcuts += usize::from(
                            flags & (RST | SYN | FIN) == 0
                                && QUIET_WITHOUT_SYN_FIN_RST & 1 << state as u8 != 0,
                        );
                    }
                }
            }
        }
        assert_eq!(shortcuts, 5 * 4 * 32 * 2, "five quiet states");
    }

    #[test]
    fn rst_closes_once_and_syn_reopens() {
        let mut t = tcp();
        t.on_packet(Original, SYN);
        assert_eq!(t.on_packet(Reply, RST | ACK), Transition::Closed);
        assert_eq!(t.state(), ConnState::Closed);
        assert_eq!(t.on_packet(Original, RST), Transition::None);
        assert_eq!(t.on_packet(Original, SYN), Transition::Reopened);
        assert_eq!(t.state(), ConnState::SynSent);
    }

    #[test]
    fn client_ack_without_syn_ack_does_not_establish() {
        let mut t = tcp();
        t.on_packet(Original, SYN);
        assert_eq!(t.on_packet(Original, ACK), Transition::None);
        assert_eq!(t.state(), ConnState::SynSent);
        // Retransmitted SYN: still SYN_SENT.
        assert_eq!(t.on_packet(Original, SYN), Transition::None);
        assert_eq!(t.state(), ConnState::SynSent);
    }

    #[test]
    fn first_packet_decides_tcp_pickup() {
        let mut t = tcp();
        assert_eq!(t.on_packet(Original, ACK), Transition::Established);
        assert_eq!(t.state(), ConnState::Established);
        let mut t = tcp();
        assert_eq!(t.on_packet(Original, RST), Transition::Closed);
        let mut t = tcp();
        assert_eq!(t.on_packet(Original, FIN | ACK), Transition::Established);
        assert_eq!(t.state(), ConnState::FinWait);
    }

    #[test]
    fn udp_becomes_replied_on_first_reply() {
        let mut t = Tracker::new(Proto::Udp);
        let to = Timeouts::DEFAULT;
        assert_eq!(t.on_packet(Original, 0xff), Transition::None);
        assert_eq!(t.timeout(Proto::Udp, &to), to.udp);
        assert_eq!(t.on_packet(Reply, 0), Transition::Established);
        assert_eq!(t.on_packet(Reply, 0), Transition::None);
        assert_eq!(t.state(), ConnState::Replied);
        assert_eq!(t.timeout(Proto::Udp, &to), to.udp_stream);
        let icmp = Tracker::new(Proto::Icmp);
        assert_eq!(icmp.timeout(Proto::Icmp, &to), to.icmp);
    }

    #[test]
    fn timeouts_follow_the_state() {
        let to = Timeouts::DEFAULT;
        let mut t = tcp();
        t.on_packet(Original, SYN);
        assert_eq!(t.timeout(Proto::Tcp, &to), to.tcp_syn);
        t.on_packet(Reply, SYN | ACK);
        t.on_packet(Original, ACK);
        assert_eq!(t.timeout(Proto::Tcp, &to), to.tcp_established);
        t.on_packet(Original, FIN);
        assert_eq!(t.timeout(Proto::Tcp, &to), to.tcp_fin);
        t.on_packet(Reply, FIN);
        t.on_packet(Original, ACK);
        assert_eq!(t.timeout(Proto::Tcp, &to), to.tcp_time_wait);
        t.on_packet(Original, RST);
        assert_eq!(t.timeout(Proto::Tcp, &to), to.tcp_close);
        let big = Timeouts {
            udp: u32::MAX,
            ..Timeouts::DEFAULT
        };
        assert_eq!(big.clamped().udp, Timeouts::MAX);
    }

    #[test]
    fn under_pressure_only_unconfirmed_connections_age_faster() {
        let to = Timeouts::DEFAULT;
        let short = to.embryonic_under_pressure;
        let mut tcp = Tracker::new(Proto::Tcp);
        tcp.on_packet(Original, SYN);
        assert!(tcp.is_embryonic());
        assert_eq!(
            tcp.timeout_under(Proto::Tcp, &to, Aging::Normal),
            to.tcp_syn
        );
        assert_eq!(
            tcp.timeout_under(Proto::Tcp, &to, Aging::UnderPressure),
            short
        );
        tcp.on_packet(Reply, SYN | ACK);
        assert_eq!(tcp.state(), ConnState::SynReceived);
        assert_eq!(
            tcp.timeout_under(Proto::Tcp, &to, Aging::UnderPressure),
            short
        );
        tcp.on_packet(Original, ACK);
        assert!(!tcp.is_embryonic());
        assert_eq!(
            tcp.timeout_under(Proto::Tcp, &to, Aging::UnderPressure),
            to.tcp_established
        );
        let mut udp = Tracker::new(Proto::Udp);
        assert_eq!(
            udp.timeout_under(Proto::Udp, &to, Aging::UnderPressure),
            short
        );
        udp.on_packet(Reply, 0);
        assert_eq!(
            udp.timeout_under(Proto::Udp, &to, Aging::UnderPressure),
            to.udp_stream
        );
        // A state timeout shorter than the pressure one is kept.
        let quick = Timeouts {
            icmp: 1_000,
            ..Timeouts::DEFAULT
        };
        let icmp = Tracker::new(Proto::Icmp);
        assert_eq!(
            icmp.timeout_under(Proto::Icmp, &quick, Aging::UnderPressure),
            1_000
        );
        assert_eq!(Aging::for_speedup(7), Aging::Normal);
        assert_eq!(
            Aging::for_speedup(super::super::PRESSURE_SPEEDUP),
            Aging::UnderPressure
        );
    }

    #[test]
    fn tracker_is_two_bytes() {
        assert_eq!(core::mem::size_of::<Tracker>(), 2);
    }
}
