//! `sluice-gateway`: the Kubernetes Gateway API controller of Sluice.
