//! Raw bindings to the system DPDK, generated at build time by bindgen from `shim/shim.h`.
//!
//! Everything here is `unsafe` and unvalidated; the safe layer lives in `dataplane::dpdk`.
//! DPDK's static-inline and thread-local helpers (burst I/O, mbuf alloc/free, `rte_errno`,
//! `rte_lcore_id`) are reached through the `sluice_*` forwarders of the C shim.

#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]
#![allow(unsafe_op_in_unsafe_fn, missing_debug_implementations)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The DPDK version this crate was built against (pkg-config's `libdpdk` version).
pub const BUILD_DPDK_VERSION: &str = env!("SLUICE_DPDK_VERSION");
