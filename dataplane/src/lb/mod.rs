//! Backend selection for new flows.
//!
//! - [`maglev`]: weighted Maglev consistent hashing tables.
//! - [`select`]: the per-service [`Selector`] (Maglev, round robin, source hash) that the
//!   snapshot compiler builds and the workers consult once per new flow.

pub mod maglev;
pub mod select;

pub use maglev::{disruption, MaglevBackend, MaglevError, MaglevTable};
pub use select::{RoundRobinCursors, Selection, Selector};

use crate::flow::{endpoint_hash, Addr};

/// Fixed seed of [`backend_key`]: keys decide Maglev slot preferences, so they must be the same
/// on every load balancer and across restarts.
const BACKEND_KEY_SEED: u64 = 0x736c_7569_6365_6b79; // "sluiceky"

/// The stable identity of a backend for Maglev: a hash of its address and port.
#[inline]
pub fn backend_key(addr: &Addr, port: u16) -> u64 {
    endpoint_hash(addr, port, BACKEND_KEY_SEED)
}
