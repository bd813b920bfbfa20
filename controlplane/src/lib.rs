//! Sluice's control plane: the desired state behind the `sluice.v1` API, its validation and
//! persistence, the compiler to dataplane snapshots, and VIP address management.
//!
//! - [`validate`]: `sluice.v1` requests to domain types, with errors naming each field.
//! - [`state`]: the desired state ([`DesiredState`]) and its mutations, which enforce the rules
//!   across objects and keep resource versions.
//! - [`convert`]: domain types back to `sluice.v1` messages.
//! - [`store`]: atomic, durable persistence in the state directory.
//! - [`compile`]: the state to a dataplane [`Snapshot`](dataplane::snapshot::Snapshot).
//! - [`ipam`]: VIP pools and their allocations.
//! - [`error`]: [`ApiError`] and [`Violations`], with their gRPC status codes.
//! - [`limits`]: the size limits of the API.
//! - [`server`]: the `sluice.v1` gRPC server over a shared [`server::Controller`], and the
//!   Prometheus rendering of the counters.
//!
//! A request flows: `validate::*_request` → clone of the state → `DesiredState` mutation →
//! `compile::compile` → `StateStore::save` → swap in the new state and publish the snapshot
//! (see [`state`] for why in that order).

pub mod compile;
pub mod convert;
pub mod error;
pub mod health;
pub mod ipam;
pub mod limits;
pub mod net;
pub mod server;
pub mod state;
pub mod store;
pub mod validate;

pub use error::{ApiError, FieldViolation, Violations};
pub use state::DesiredState;
pub use store::StateStore;
