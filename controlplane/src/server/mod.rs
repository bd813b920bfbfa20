//! The `sluice.v1` gRPC server: the four services (`Services`, `Pools`, `Network`,
//! `Observability`) over one shared [`Controller`], plus gRPC health and server reflection.
//!
//! # Changes
//! Every mutating call follows the recipe of [`crate::state`]: validate the request (an
//! INVALID_ARGUMENT names the field), then under the controller's state lock clone the state,
//! apply the change to the clone, compile it to a dataplane snapshot, persist it atomically,
//! swap it in, publish the snapshot to the workers and send watch events. A failure at any step
//! drops the clone: the state, the state file and the dataplane are exactly as before. Calls
//! that change nothing (`changed: false`) skip compile, persistence and publication.
//!
//! # Counters
//! The dataplane's per-service and per-backend counters live in slots the state assigns
//! ([`StoredService::id`](crate::state::StoredService::id), `backend_ids`). A slot freed by a
//! deletion is reused by a later creation, so the controller records the slot's counters as a
//! baseline when it hands the slot to a new object and reports counters relative to it. The
//! dataplane's counter arrays have a fixed capacity (the daemon's configuration): a change that
//! would need a slot beyond it is RESOURCE_EXHAUSTED.
//!
//! # Without DPDK
//! Live data (worker counters, port statistics, connection tables) comes from a
//! [`StatsSource`], so the server runs and is tested without DPDK with a fake source.

mod controller;
pub mod metrics;
mod network;
mod observability;
mod pools;
mod serve;
mod services;
mod stats;

pub use controller::{BuildInfo, Controller, ControllerConfig};
pub use serve::{serve, ApiListeners, AuthConfig, ServeError, TlsFiles};
pub use stats::{
    ConnectionQuery, ConnectionRecord, LearnedNeighbour, LinkView, PortCounters, PortView,
    StatsSource, WorkerView,
};

#[cfg(test)]
mod tests;
