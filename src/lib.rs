//! The `sluice` package: Sluice's binaries and the code they share.

pub mod build_info;
pub mod cli;

#[cfg(feature = "dpdk")]
pub mod bench;
#[cfg(feature = "dpdk")]
pub mod daemon;
