//! Backend health checks: the rise/fall state machine, the shared health table, the probes,
//! and the checker that runs them.
//!
//! Each backend of a service with a `health_check` is probed on its own schedule (the
//! service's interval, timeout, rise and fall). A backend starts UNKNOWN (it takes new flows:
//! a fresh service must not black-hole until its first checks pass); `rise` consecutive
//! successes make it UP, `fall` consecutive failures make it DOWN. A transition is logged and
//! republishes the snapshot with the DOWN backends excluded from new-flow selection (compiled
//! as draining: their established connections continue and drain). A DOWN backend returns
//! after `rise` successes. Detection takes at most `interval x fall + timeout`.
//!
//! The probes run in the daemon's process, so they leave through the host kernel: with the
//! exception path (a tap per port) they reach the backends through the DPDK port, from the
//! interface address of the backend-side port.

pub mod checker;
pub mod probe;

use crate::state::Endpoint;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// A backend's health, as the API reports it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Health {
    /// No check configured, or not enough results yet.
    #[default]
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The rise/fall state machine of one backend (pure: no clock, no I/O).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    state: Health,
    rise: u32,
    fall: u32,
    /// Consecutive successes / failures so far.
    successes: u32,
    failures: u32,
}

impl Tracker {
    /// A backend with no result yet. `rise` and `fall` are at least 1.
    pub fn new(rise: u32, fall: u32) -> Tracker {
        Tracker {
            state: Health::Unknown,
            rise: rise.max(1),
            fall: fall.max(1),
            successes: 0,
            failures: 0,
        }
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// Records one check; returns the new state if it changed. UNKNOWN and DOWN become UP
    /// after `rise` consecutive successes; UNKNOWN and UP become DOWN after `fall`
    /// consecutive failures.
    pub fn record(&mut self, success: bool) -> Option<Health> {
        if success {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.state != Health::Up && self.successes >= self.rise {
                self.state = Health::Up;
                return Some(Health::Up);
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.state != Health::Down && self.failures >= self.fall {
                self.state = Health::Down;
                return Some(Health::Down);
            }
        }
        None
    }
}

/// Identifies a checked backend: the service's name and the backend's endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    pub service: String,
    pub endpoint: Endpoint,
}

/// What the API and the metrics show about one checked backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendHealth {
    pub health: Health,
    /// Why the last check failed ("connect: connection refused", "HTTP 503"); empty after a
    /// success.
    pub message: String,
    pub checks: u64,
    pub failures: u64,
    /// When `health` last changed.
    pub since: SystemTime,
}

#[derive(Debug)]
struct Entry {
    tracker: Tracker,
    view: BackendHealth,
}

/// The health of every checked backend, shared by the checker (writer), the snapshot
/// compiler and the API (readers).
#[derive(Debug, Default)]
pub struct HealthTable {
    entries: Mutex<HashMap<BackendKey, Entry>>,
    /// Counts health transitions (so callers can tell whether anything changed).
    transitions: AtomicU64,
}

impl HealthTable {
    pub fn new() -> HealthTable {
        HealthTable::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BackendKey, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts tracking `key` (UNKNOWN), replacing any earlier entry. Returns the health the
    /// replaced entry had.
    pub fn track(&self, key: BackendKey, rise: u32, fall: u32) -> Option<Health> {
        let entry = Entry {
            tracker: Tracker::new(rise, fall),
            view: BackendHealth {
                health: Health::Unknown,
                message: String::new(),
                checks: 0,
                failures: 0,
                since: SystemTime::now(),
            },
        };
        self.lock().insert(key, entry).map(|e| e.view.health)
    }

    /// Stops tracking `key`; returns the health it had.
    pub fn untrack(&self, key: &BackendKey) -> Option<Health> {
        self.lock().remove(key).map(|e| e.view.health)
    }

    /// Records a check result. Returns `Some((old, new))` on a transition. Results for keys
    /// no longer tracked are ignored.
    pub fn record(&self, key: &BackendKey, result: Result<(), String>) -> Option<(Health, Health)> {
        let mut entries = self.lock();
        let entry = entries.get_mut(key)?;
        let old = entry.tracker.state();
        entry.view.checks += 1;
        let success = result.is_ok();
        match result {
            Ok(()) => entry.view.message.clear(),
            Err(message) => {
                entry.view.failures += 1;
                entry.view.message = message;
            }
        }
        let new = entry.tracker.record(success)?;
        entry.view.health = new;
        entry.view.since = SystemTime::now();
        self.transitions.fetch_add(1, Ordering::Relaxed);
        Some((old, new))
    }

    /// The health of `key` (`None`: not checked).
    pub fn get(&self, service: &str, endpoint: Endpoint) -> Option<BackendHealth> {
        self.lock()
            .get(&BackendKey {
                service: service.to_owned(),
                endpoint,
            })
            .map(|e| e.view.clone())
    }

    /// Whether the backend is DOWN (excluded from new flows).
    pub fn is_down(&self, service: &str, endpoint: Endpoint) -> bool {
        self.get(service, endpoint)
            .is_some_and(|h| h.health == Health::Down)
    }

    /// Every checked backend and its health.
    pub fn all(&self) -> Vec<(BackendKey, BackendHealth)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, e)| (k.clone(), e.view.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Health transitions so far.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tracker: &mut Tracker, results: &str) -> Vec<Option<Health>> {
        results.chars().map(|c| tracker.record(c == '+')).collect()
    }

    #[test]
    fn unknown_becomes_up_after_rise_successes() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(run(&mut t, "+"), [None]);
        assert_eq!(t.state(), Health::Unknown);
        assert_eq!(run(&mut t, "+"), [Some(Health::Up)]);
        assert_eq!(run(&mut t, "+++"), [None, None, None]);
        assert_eq!(t.state(), Health::Up);
    }

    #[test]
    fn up_becomes_down_after_fall_consecutive_failures_only() {
        let mut t = Tracker::new(1, 3);
        assert_eq!(run(&mut t, "+"), [Some(Health::Up)]);
        // A success in between resets the failure count.
        assert_eq!(run(&mut t, "--+--"), [None; 5]);
        assert_eq!(t.state(), Health::Up);
        assert_eq!(run(&mut t, "-"), [Some(Health::Down)]);
        assert_eq!(run(&mut t, "---"), [None; 3]);
    }

    #[test]
    fn down_returns_after_rise_consecutive_successes() {
        let mut t = Tracker::new(3, 1);
        assert_eq!(run(&mut t, "-"), [Some(Health::Down)]);
        assert_eq!(run(&mut t, "++-++"), [None; 5]);
        assert_eq!(t.state(), Health::Down);
        assert_eq!(run(&mut t, "+"), [Some(Health::Up)]);
    }

    #[test]
    fn unknown_becomes_down_after_fall_failures() {
        let mut t = Tracker::new(2, 2);
        assert_eq!(run(&mut t, "-+-"), [None, None, None]);
        assert_eq!(run(&mut t, "-"), [Some(Health::Down)]);
    }

    #[test]
    fn thresholds_below_one_act_as_one() {
        let mut t = Tracker::new(0, 0);
        assert_eq!(
            run(&mut t, "+-+"),
            [Some(Health::Up), Some(Health::Down), Some(Health::Up)]
        );
    }

    #[test]
    fn table_records_messages_counts_and_transitions() {
        let table = HealthTable::new();
        let key = BackendKey {
            service: "web".into(),
            endpoint: Endpoint {
                address: [198, 19, 0, 1].into(),
                port: 8080,
            },
        };
        assert_eq!(table.track(key.clone(), 1, 2), None);
        assert!(!table.is_down("web", key.endpoint));
        assert_eq!(table.record(&key, Err("connect: refused".into())), None);
        assert_eq!(
            table.record(&key, Err("connect: refused".into())),
            Some((Health::Unknown, Health::Down))
        );
        assert!(table.is_down("web", key.endpoint));
        let view = table.get("web", key.endpoint).unwrap();
        assert_eq!((view.checks, view.failures), (2, 2));
        assert_eq!(view.message, "connect: refused");
        assert_eq!(table.record(&key, Ok(())), Some((Health::Down, Health::Up)));
        assert_eq!(table.get("web", key.endpoint).unwrap().message, "");
        assert_eq!(table.transitions(), 2);
        assert_eq!(table.untrack(&key), Some(Health::Up));
        assert_eq!(table.record(&key, Ok(())), None);
        assert!(table.get("web", key.endpoint).is_none());
    }
}
