//! `sluice-proxy`: the L7 HTTP/HTTPS gateway of Sluice.
