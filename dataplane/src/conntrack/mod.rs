//! Connection tracking: the per-worker connection table, TCP/UDP/ICMP state and idle timeouts,
//! full-NAT source-port allocation, and which worker owns a packet.
//!
//! Each worker owns one [`ConnTable`] and one [`SnatPorts`] per SNAT pool; nothing here is
//! shared between workers or locked. A connection is keyed in its owner's table under both
//! directions: the original key (client → VIP, as received) and the reply key (backend →
//! appliance, as it will arrive). [`Ownership`] computes the owning worker from a packet alone,
//! so a packet that RSS delivered elsewhere can be handed to the right worker (see DESIGN.md,
//! "Connection ownership").
//!
//! Nothing on the per-packet path allocates, locks, makes a syscall or panics: tables are sized
//! at construction, and a full table or an exhausted port pool is an `Err`/`None` for the
//! caller to count.

pub mod owner;
pub mod snat;
pub mod state;
pub mod table;

pub use owner::{dnat_owner, fullnat_owner, Ownership};
pub use snat::{PartitionError, PortPartition, SnatError, SnatLease, SnatPorts};
pub use state::{tcp_flags, ConnState, Timeouts, Tracker, Transition};
pub use table::{
    Conn, ConnData, ConnId, ConnInfo, ConnTable, Hit, InsertError, NatMode, Probe,
    BYTES_PER_CONNECTION,
};

/// Which way a packet travels relative to the connection that it belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Direction {
    /// Client → service, as the connection was first seen.
    Original = 0,
    /// Backend → appliance: the answer to the original direction.
    Reply = 1,
}

impl Direction {
    /// The other direction.
    #[inline]
    pub fn opposite(self) -> Direction {
        match self {
            Direction::Original => Direction::Reply,
            Direction::Reply => Direction::Original,
        }
    }
}

/// A coarse clock in milliseconds, supplied by the caller (a worker converts the TSC once per
/// burst). It wraps after ~49.7 days; all comparisons are wrapping, and an instant up to ~24.8
/// days in the future counts as "not yet", so a stale `now` never expires live connections.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tick(pub u32);

impl Tick {
    /// Build a tick from milliseconds.
    #[inline]
    pub const fn from_millis(ms: u32) -> Tick {
        Tick(ms)
    }

    /// Milliseconds from `earlier` to `self`, or 0 when `earlier` is (wrapping-)in the future.
    #[inline]
    pub fn millis_since(self, earlier: Tick) -> u32 {
        let delta = self.0.wrapping_sub(earlier.0);
        if delta > i32::MAX as u32 {
            0
        } else {
            delta
        }
    }

    /// This instant plus `ms` milliseconds (wrapping).
    #[inline]
    pub fn plus_millis(self, ms: u32) -> Tick {
        Tick(self.0.wrapping_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_differences_wrap_and_ignore_the_future() {
        let t = Tick(u32::MAX - 5);
        assert_eq!(t.plus_millis(10).millis_since(t), 10);
        assert_eq!(t.millis_since(t.plus_millis(10)), 0);
        assert_eq!(Tick(100).millis_since(Tick(40)), 60);
    }

    #[test]
    fn direction_opposite_is_an_involution() {
        assert_eq!(Direction::Original.opposite(), Direction::Reply);
        assert_eq!(Direction::Reply.opposite().opposite(), Direction::Reply);
    }
}
