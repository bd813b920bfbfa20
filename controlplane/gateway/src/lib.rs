//! `sluice-gateway`: the Kubernetes Gateway API controller of Sluice.
//!
//! - [`model`]: the watched objects, parsed;
//! - [`translate`] (and [`l7`], [`ipam`]): the pure function from those objects to the
//!   programme of every sluiced and sluice-proxy, and to the statuses;
//! - [`apply`]: makes each sluiced / proxy match the programme, idempotently;
//! - [`kube_source`] and [`static_source`]: where the objects come from;
//! - [`controller`]: the reconcile loop tying them together.

pub mod apply;
pub mod config;
pub mod controller;
pub mod ipam;
pub mod kube_source;
pub mod l7;
pub mod model;
pub mod static_source;
pub mod translate;
