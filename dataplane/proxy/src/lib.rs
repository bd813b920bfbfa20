//! `sluice-proxy`: the L7 HTTP/HTTPS gateway of Sluice.
//!
//! It serves the route table the Gateway controller (or `sluicectl l7 apply`) programs over
//! the `sluice.v1.L7` gRPC service: HTTP and HTTPS listeners, HTTPRoute matching with the
//! Gateway API's precedence, filters, weighted backends with pooled keep-alive connections,
//! and TLS termination with SNI certificate selection. Tables are swapped atomically without
//! dropping requests in flight, and persisted for restarts.
//!
//! Modules, one idea each:
//! - [`config`]: validation of a `RouteTable` (errors name the field) and compilation;
//! - [`table`]: the compiled table the request path reads; [`hostname`]: host patterns;
//! - [`router`]: matching and match precedence; [`filters`]: header modifiers, redirects,
//!   rewrites;
//! - [`proxy`]: the request path; [`upstream`]: the pooled backend client;
//! - [`tls`]: certificates and SNI; [`listeners`]: binding/unbinding sockets, connections;
//! - [`control`]: applying tables; [`store`]: persistence; [`api`]: gRPC; [`admin`]:
//!   `/metrics`, `/livez`, `/readyz`; [`metrics`]: the counters; [`workers`]: the
//!   per-thread runtimes connections are served on.

pub mod admin;
pub mod api;
pub mod config;
pub mod control;
pub mod fasthash;
pub mod filters;
pub mod hostname;
pub mod listeners;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod store;
pub mod table;
pub mod tls;
pub mod upstream;
pub mod violations;
pub mod workers;

#[cfg(test)]
mod conformance_tests;
