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
    Conn, ConnData, ConnId, ConnInfo, ConnTable, Hit, InsertError, NatMode, Probe, Swept,
    Translation, BYTES_PER_CONNECTION,
};

/// The most [`sweep_speedup`] multiplies the expiry sweep's budget by.
pub const MAX_SWEEP_SPEEDUP: usize = 16;

/// The [`sweep_speedup`] from which the sweep ages under pressure: 8, when 7/8 of the table's
/// entries or of an SNAT pool's ports are taken.
pub const PRESSURE_SPEEDUP: usize = 8;

/// How the expiry sweep ages connections.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Aging {
    /// Every connection lives its state's timeout.
    Normal,
    /// The table or an SNAT pool is nearly full: connections not yet established expire after
    /// [`Timeouts::embryonic_under_pressure`] if their state's timeout is longer.
    UnderPressure,
}

impl Aging {
    /// The aging for a sweep running `speedup` times its base budget.
    #[inline]
    pub fn for_speedup(speedup: usize) -> Aging {
        if speedup >= PRESSURE_SPEEDUP {
            Aging::UnderPressure
        } else {
            Aging::Normal
        }
    }
}

/// How many times its base budget the expiry sweep examines while `used` of `total` resources
/// (table entries, SNAT ports) are taken: 1 while at most half are, then the inverse of the
/// free share (2 at 50%, 4 at 75%, 10 at 90%), at most [`MAX_SWEEP_SPEEDUP`].
///
/// A connection is removed only when the sweep reaches it, so one lives its timeout plus up to
/// a whole pass of the sweep. At the base budget (1,024 entries a millisecond) a pass over a
/// million-entry table takes a second: a flood of short-lived flows keeps the table, or the
/// SNAT ports it holds, full of connections that have already expired. Sweeping faster as they
/// fill costs nothing while there is room and shortens the pass to 64 ms at the most.
#[inline]
pub fn sweep_speedup(used: usize, total: usize) -> usize {
    let free = total.saturating_sub(used).max(1);
    (total / free).clamp(1, MAX_SWEEP_SPEEDUP)
}

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

    #[test]
    fn the_sweep_speeds_up_with_the_inverse_of_the_free_share() {
        assert_eq!(sweep_speedup(0, 0), 1, "nothing to sweep");
        assert_eq!(sweep_speedup(0, 1000), 1);
        assert_eq!(sweep_speedup(499, 1000), 1);
        assert_eq!(sweep_speedup(500, 1000), 2);
        assert_eq!(sweep_speedup(750, 1000), 4);
        assert_eq!(sweep_speedup(900, 1000), 10);
        assert_eq!(sweep_speedup(999, 1000), MAX_SWEEP_SPEEDUP);
        assert_eq!(sweep_speedup(1000, 1000), MAX_SWEEP_SPEEDUP);
        assert_eq!(
            sweep_speedup(5000, 1000),
            MAX_SWEEP_SPEEDUP,
            "more used than there is"
        );
        assert_eq!(sweep_speedup(usize::MAX, usize::MAX), MAX_SWEEP_SPEEDUP);
    }
}
