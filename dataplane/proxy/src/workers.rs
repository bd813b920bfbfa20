//! The threads client connections are served on: one single-threaded tokio runtime per
//! thread, connections handed out round-robin by the accept loops.
//!
//! Why not one multi-threaded runtime: a connection's tasks (server, its backend
//! connections' tasks, timers) stay on one thread anyway with keep-alive; the work-stealing
//! scheduler only adds atomics and cross-thread wake-ups to every task switch, and several
//! switches happen per proxied request. With per-thread runtimes the request path never leaves
//! its thread (as with nginx's worker processes), while the control plane (gRPC API, admin,
//! accepting) runs on its own runtime and never competes with it for a worker.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tokio::runtime::Handle;

#[derive(Debug, Default)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `threads` worker threads (at least one), each running its own runtime until
    /// the process exits.
    pub fn start(threads: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            std::thread::Builder::new()
                .name(format!("sluice-worker-{i}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
        })
    }

    /// The runtime for the next connection; `None` (no workers started, as in tests): the
    /// caller's runtime.
    pub fn next(&self) -> Option<&Handle> {
        if self.handles.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Relaxed) % self.handles.len();
        Some(&self.handles[i])
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_spread_round_robin_over_worker_threads() {
        let workers = Workers::start(2).unwrap();
        let names: Vec<String> = (0..4)
            .map(|_| {
                let handle = workers.next().unwrap();
                let (tx, rx) = std::sync::mpsc::channel();
                handle.spawn(async move {
                    let _ = tx.send(std::thread::current().name().unwrap_or("").to_string());
                });
                rx.recv().unwrap()
            })
            .collect();
        assert_eq!(
            names,
            [
                "sluice-worker-0",
                "sluice-worker-1",
                "sluice-worker-0",
                "sluice-worker-1"
            ]
        );
        assert!(Workers::default().next().is_none());
    }
}
