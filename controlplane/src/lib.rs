//! Sluice's control plane: desired state, validation, persistence, the snapshot compiler, the
//! `sluice.v1` gRPC server and the Gateway API controller.
//!
//! Not built yet: the daemon issue (#5) and the Gateway issue (#6) fill this crate.
