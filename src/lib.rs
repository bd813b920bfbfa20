//! The `sluice` package: Sluice's binaries and the code they share.

pub mod build_info;

#[cfg(feature = "dpdk")]
pub mod bench;
