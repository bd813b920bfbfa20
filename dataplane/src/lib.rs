//! Everything that touches packets.
//!
//! - [`wire`]: zero-copy views of the wire formats (pure Rust over byte slices).
//! - [`dpdk`]: the safe layer over DPDK (EAL, mempools, mbufs, ports, lcores); feature `dpdk`.

pub mod conntrack;
pub mod flow;
pub mod lb;
pub mod mem;
pub mod neigh;
pub mod pipeline;
pub mod route;
pub mod seqlock;
pub mod snapshot;
pub mod wire;

#[cfg(feature = "dpdk")]
pub mod dpdk;

#[cfg(feature = "dpdk")]
pub mod worker;

#[cfg(feature = "dpdk")]
pub mod hostpath;
