//! The safe layer over DPDK: everything else in Sluice talks to DPDK only through this module.
//!
//! - [`Eal`]: environment abstraction layer, initialised exactly once per process.
//! - [`Mempool`] and [`Mbuf`]: packet buffers; an `Mbuf` is owned, dropping it frees it.
//! - [`MbufBurst`] and [`TxBuffer`]: fixed-size burst arrays for the fast path.
//! - [`Port`]: an ethdev configured from its capabilities; closed on drop.
//! - [`lcore`]: running closures on worker lcores, with panics caught at the FFI boundary.

mod burst;
mod eal;
mod error;
pub mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use burst::{Drain, MbufBurst, TxBuffer, MAX_BURST};
pub use eal::{tsc_hz, Eal, EalArgs};
pub use error::{DpdkError, Result};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{
    LinkStatus, Port, PortConfig, PortInfo, PortStats, PortStatsReader, RxQueue, TxQueue,
};
pub use ring::{handoff_channel, HandoffRx, HandoffTx};

/// The DPDK version the binary was built against.
pub const BUILD_DPDK_VERSION: &str = dpdk_sys::BUILD_DPDK_VERSION;

/// Reads the CPU's time-stamp counter (what DPDK's `rte_rdtsc` reads).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no memory effects and is available on every x86_64 CPU.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: a plain forwarder to rte_rdtsc, no arguments.
        unsafe { dpdk_sys::sluice_rdtsc() }
    }
}
