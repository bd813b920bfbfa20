//! Prometheus counters: requests by route and status code, a latency histogram per route,
//! connections, TLS handshake failures, upstream errors and the table version. Every
//! counter is an atomic the request path bumps without a lock; route counters are kept by
//! route name across table swaps, so re-applying a table does not reset them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one route (or of requests that matched no route).
#[derive(Debug)]
pub struct RouteMetrics {
    /// Index: status code - 100 (100..=599).
    codes: [AtomicU64; 500],
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        RouteMetrics {
            codes: [const { AtomicU64::new(0) }; 500],
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl RouteMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        if let Some(counter) = (status as usize)
            .checked_sub(100)
            .and_then(|i| self.codes.get(i))
        {
            counter.fetch_add(1, Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(
            elapsed.as_micros().min(u128::from(u64::MAX)) as u64,
            Relaxed,
        );
    }

    pub fn count(&self, status: u16) -> u64 {
        self.codes[usize::from(status) - 100].load(Relaxed)
    }
}

/// Label of requests that matched no route.
pub const NO_ROUTE: &str = "";

#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<Arc<str>, Arc<RouteMetrics>>>,
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    pub tls_handshake_errors: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub table_version: AtomicU64,
    pub table_applies: AtomicU64,
}

impl Metrics {
    /// The counters of `route`, created on first use (at compile time, not per request).
    pub fn route(&self, route: &str) -> Arc<RouteMetrics> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = routes.get(route) {
            return m.clone();
        }
        let m = Arc::new(RouteMetrics::default());
        routes.insert(Arc::from(route), m.clone());
        m
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let routes: Vec<(Arc<str>, Arc<RouteMetrics>)> = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.push_str("# HELP sluice_proxy_requests_total HTTP requests answered, by route (empty: no route matched) and status code.\n");
        out.push_str("# TYPE sluice_proxy_requests_total counter\n");
        for (name, m) in &routes {
            let name = escape(name);
            for (i, c) in m.codes.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "sluice_proxy_requests_total{{route=\"{name}\",code=\"{}\"}} {n}",
                        i + 100
                    );
                }
            }
        }
        out.push_str("# HELP sluice_proxy_request_duration_seconds Time from request to response headers, by route.\n");
        out.push_str("# TYPE sluice_proxy_request_duration_seconds histogram\n");
        for (name, m) in &routes {
            let name = escape(name);
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += m.buckets[i].load(Relaxed);
                let _ = writeln!(
                    out,
                    "sluice_proxy_request_duration_seconds_bucket{{route=\"{name}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += m.buckets[BUCKETS.len()].load(Relaxed);
            let _ = writeln!(
                out,
                "sluice_proxy_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {cumulative}"
            );
            let _ = writeln!(
                out,
                "sluice_proxy_request_duration_seconds_sum{{route=\"{name}\"}} {}",
                m.sum_micros.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "sluice_proxy_request_duration_seconds_count{{route=\"{name}\"}} {cumulative}"
            );
        }
        let scalars: [(&str, &str, &str, &AtomicU64); 6] = [
            (
                "sluice_proxy_connections_total",
                "counter",
                "Client connections accepted.",
                &self.connections_total,
            ),
            (
                "sluice_proxy_connections_active",
                "gauge",
                "Client connections open.",
                &self.connections_active,
            ),
            (
                "sluice_proxy_tls_handshake_errors_total",
                "counter",
                "TLS handshakes that failed.",
                &self.tls_handshake_errors,
            ),
            (
                "sluice_proxy_upstream_errors_total",
                "counter",
                "Backend requests that failed (connect, reset, timeout).",
                &self.upstream_errors,
            ),
            (
                "sluice_proxy_route_table_version",
                "gauge",
                "Version of the route table in force.",
                &self.table_version,
            ),
            (
                "sluice_proxy_route_table_applies_total",
                "counter",
                "Route tables applied that changed something.",
                &self.table_applies,
            ),
        ];
        for (name, kind, help, value) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Relaxed)
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_counts_codes_and_cumulative_buckets() {
        let metrics = Metrics::default();
        let route = metrics.route("default/web");
        route.record(200, Duration::from_micros(300));
        route.record(200, Duration::from_millis(30));
        route.record(503, Duration::from_secs(20));
        assert!(Arc::ptr_eq(&route, &metrics.route("default/web")));
        let text = metrics.render();
        assert!(
            text.contains("sluice_proxy_requests_total{route=\"default/web\",code=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sluice_proxy_requests_total{route=\"default/web\",code=\"503\"} 1\n")
        );
        assert!(text.contains(
            "sluice_proxy_request_duration_seconds_bucket{route=\"default/web\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "sluice_proxy_request_duration_seconds_bucket{route=\"default/web\",le=\"0.05\"} 2\n"
        ));
        assert!(text.contains(
            "sluice_proxy_request_duration_seconds_bucket{route=\"default/web\",le=\"+Inf\"} 3\n"
        ));
        assert!(
            text.contains("sluice_proxy_request_duration_seconds_count{route=\"default/web\"} 3\n")
        );
    }
}
