//! The Prometheus text exposition (format 0.0.4) of the appliance's counters, served by the
//! daemon's admin endpoint at `/metrics`.
//!
//! Families: `sluice_port_*` (label `port`), `sluice_worker_*` (labels `worker`, `lcore`),
//! `sluice_drops_total` (label `reason`), `sluice_service_*` (label `service`, plus `vip`,
//! `port`, `protocol` on `sluice_service_info`), `sluice_backend_*` (labels `service`,
//! `backend="addr:port"`), `sluice_snapshot_generation`, `sluice_state_revision` and
//! `sluice_build_info`. Counters count since the daemon started.

use super::controller::Controller;
use super::observability::protocol_label;
use crate::state::Endpoint;
use dataplane::pipeline::DropReason;
use std::fmt::Write;

/// The Prometheus content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Renders every metric. `ready` is the daemon's readiness (exported as `sluice_ready`).
pub fn render(controller: &Controller, ready: bool) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let state = controller.state();
    let source = controller.stats_source();
    let workers = source.workers();
    let ports = source.ports();
    let build = &controller.config().build;

    let mut f = Family::new(
        &mut out,
        "sluice_build_info",
        "gauge",
        "Build of the running sluiced.",
    );
    f.sample(
        "sluice_build_info",
        &[
            ("version", &build.version),
            ("git_revision", &build.git_revision),
            ("dpdk_version", &build.dpdk_version),
        ],
        1,
    );
    Family::new(
        &mut out,
        "sluice_ready",
        "gauge",
        "1 when ports are up, workers run and the first snapshot is published.",
    )
    .sample("sluice_ready", &[], u8::from(ready));
    Family::new(
        &mut out,
        "sluice_snapshot_generation",
        "gauge",
        "Generation of the dataplane snapshot the workers run.",
    )
    .sample(
        "sluice_snapshot_generation",
        &[],
        controller.snapshot_generation(),
    );
    Family::new(
        &mut out,
        "sluice_state_revision",
        "gauge",
        "Revision of the persisted desired state.",
    )
    .sample("sluice_state_revision", &[], state.revision());
    Family::new(
        &mut out,
        "sluice_services",
        "gauge",
        "Services in the desired state.",
    )
    .sample("sluice_services", &[], state.services().len());

    // Ports.
    type PortField = fn(&super::stats::PortCounters) -> u64;
    let port_fields: [(&str, &str, PortField); 8] = [
        (
            "sluice_port_rx_packets_total",
            "Packets received by the port.",
            |c| c.rx_packets,
        ),
        (
            "sluice_port_tx_packets_total",
            "Packets sent by the port.",
            |c| c.tx_packets,
        ),
        (
            "sluice_port_rx_bytes_total",
            "Bytes received by the port.",
            |c| c.rx_bytes,
        ),
        (
            "sluice_port_tx_bytes_total",
            "Bytes sent by the port.",
            |c| c.tx_bytes,
        ),
        (
            "sluice_port_rx_missed_total",
            "Packets the NIC dropped because RX queues were full.",
            |c| c.rx_missed,
        ),
        (
            "sluice_port_rx_errors_total",
            "Erroneous packets received.",
            |c| c.rx_errors,
        ),
        (
            "sluice_port_tx_errors_total",
            "Packets that failed to transmit.",
            |c| c.tx_errors,
        ),
        (
            "sluice_port_rx_nombuf_total",
            "RX mbuf allocation failures.",
            |c| c.rx_nombuf,
        ),
    ];
    for (name, help, field) in port_fields {
        let mut f = Family::new(&mut out, name, "counter", help);
        for port in &ports {
            if let Some(counters) = &port.counters {
                f.sample(name, &[("port", &port.name)], field(counters));
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_port_link_up",
        "gauge",
        "1 when the port's link is up.",
    );
    for port in &ports {
        if let Some(link) = &port.link {
            f.sample(
                "sluice_port_link_up",
                &[("port", &port.name)],
                u8::from(link.up),
            );
        }
    }

    // Workers.
    type WorkerField = fn(&super::stats::WorkerView) -> u64;
    let worker_fields: [(&str, &str, &str, WorkerField); 18] = [
        (
            "sluice_worker_rx_packets_total",
            "counter",
            "Packets the worker received.",
            |w| w.counters.rx_packets.get(),
        ),
        (
            "sluice_worker_rx_bytes_total",
            "counter",
            "Bytes the worker received.",
            |w| w.counters.rx_bytes.get(),
        ),
        (
            "sluice_worker_tx_packets_total",
            "counter",
            "Packets the worker sent.",
            |w| w.counters.tx_packets.get(),
        ),
        (
            "sluice_worker_tx_bytes_total",
            "counter",
            "Bytes the worker sent.",
            |w| w.counters.tx_bytes.get(),
        ),
        (
            "sluice_worker_dropped_packets_total",
            "counter",
            "Packets the worker dropped, all reasons.",
            |w| w.counters.total_drops(),
        ),
        (
            "sluice_worker_handoffs_sent_total",
            "counter",
            "Packets handed to the worker owning their connection.",
            |w| w.counters.handoff_out.get(),
        ),
        (
            "sluice_worker_handoffs_received_total",
            "counter",
            "Packets other workers handed to this one.",
            |w| w.counters.handoff_in.get(),
        ),
        (
            "sluice_worker_connections_total",
            "counter",
            "Connections the worker created.",
            |w| w.counters.new_connections.get(),
        ),
        (
            "sluice_worker_connections_expired_under_pressure_total",
            "counter",
            "Connections not yet established that expired early because the table or an SNAT pool was nearly full.",
            |w| w.counters.expired_under_pressure.get(),
        ),
        (
            "sluice_worker_active_connections",
            "gauge",
            "Connections in the worker's table.",
            |w| w.counters.active_connections.get(),
        ),
        (
            "sluice_worker_snapshot_generation",
            "gauge",
            "Snapshot generation the worker last loaded.",
            |w| w.counters.snapshot_generation.get(),
        ),
        (
            "sluice_worker_arp_requests_sent_total",
            "counter",
            "ARP requests and IPv6 neighbour solicitations sent (resolution and refresh).",
            |w| w.counters.arp_requests_sent.get(),
        ),
        (
            "sluice_worker_neighbour_replies_total",
            "counter",
            "ARP replies and neighbour advertisements learned from.",
            |w| w.counters.neighbour_replies.get(),
        ),
        (
            "sluice_worker_neighbours_resolved_total",
            "counter",
            "Next hops resolved while packets waited for them.",
            |w| w.counters.neighbours_resolved.get(),
        ),
        (
            "sluice_worker_neighbour_queue_drops_total",
            "counter",
            "Packets dropped while waiting for a next hop (queue full or no answer).",
            |w| w.counters.neighbour_queue_drops.get(),
        ),
        (
            "sluice_worker_neighbours_expired_total",
            "counter",
            "Learned neighbours removed after they were not confirmed in time.",
            |w| w.counters.neighbours_expired.get(),
        ),
        (
            "sluice_worker_announcements_sent_total",
            "counter",
            "Gratuitous ARPs and unsolicited neighbour advertisements sent.",
            |w| w.counters.announcements_sent.get(),
        ),
        (
            "sluice_worker_icmp_errors_translated_total",
            "counter",
            "ICMP errors about NATed connections translated to the other side.",
            |w| w.counters.icmp_errors_translated.get(),
        ),
    ];
    for (name, kind, help, field) in worker_fields {
        let mut f = Family::new(&mut out, name, kind, help);
        for worker in &workers {
            let (index, lcore) = (worker.index.to_string(), worker.lcore.to_string());
            f.sample(
                name,
                &[("worker", &index), ("lcore", &lcore)],
                field(worker),
            );
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_worker_running",
        "gauge",
        "1 while the worker's polling loop runs.",
    );
    for worker in &workers {
        let (index, lcore) = (worker.index.to_string(), worker.lcore.to_string());
        f.sample(
            "sluice_worker_running",
            &[("worker", &index), ("lcore", &lcore)],
            u8::from(worker.running),
        );
    }
    let mut f = Family::new(
        &mut out,
        "sluice_worker_busy_ratio",
        "gauge",
        "Share of the worker's time spent handling packets over the last second (TSC cycles).",
    );
    for worker in &workers {
        let (index, lcore) = (worker.index.to_string(), worker.lcore.to_string());
        f.sample(
            "sluice_worker_busy_ratio",
            &[("worker", &index), ("lcore", &lcore)],
            worker.busy_ratio,
        );
    }
    let mut f = Family::new(
        &mut out,
        "sluice_drops_total",
        "counter",
        "Packets dropped by all workers, by reason.",
    );
    for reason in DropReason::all() {
        let total: u64 = workers.iter().map(|w| w.counters.drops(reason)).sum();
        f.sample("sluice_drops_total", &[("reason", reason.as_str())], total);
    }

    // Services and backends.
    let services: Vec<_> = state.services().values().collect();
    let sums: Vec<_> = services
        .iter()
        .map(|s| controller.service_counters(&workers, s.id))
        .collect();
    let backends: Vec<Vec<_>> = services
        .iter()
        .map(|s| {
            s.backend_ids
                .iter()
                .map(|&slot| controller.backend_counters(&workers, slot))
                .collect()
        })
        .collect();
    let mut f = Family::new(
        &mut out,
        "sluice_service_info",
        "gauge",
        "A service's listener (always 1).",
    );
    for service in &services {
        let spec = &service.spec;
        let port = spec.port.to_string();
        f.sample(
            "sluice_service_info",
            &[
                ("service", &spec.name),
                ("vip", &spec.vip.to_string()),
                ("port", &port),
                ("protocol", protocol_label(spec.protocol)),
            ],
            1,
        );
    }
    type ServiceField = fn(&super::stats::ServiceSums) -> u64;
    let service_fields: [(&str, &str, ServiceField); 4] = [
        (
            "sluice_service_packets_total",
            "Packets forwarded for the service, both directions.",
            |s| s.packets,
        ),
        (
            "sluice_service_bytes_total",
            "Bytes forwarded for the service, both directions.",
            |s| s.bytes,
        ),
        (
            "sluice_service_connections_total",
            "Connections the service accepted.",
            |s| s.new_connections,
        ),
        (
            "sluice_service_no_backend_total",
            "New connections refused because no backend took them.",
            |s| s.rejected,
        ),
    ];
    for (name, help, field) in service_fields {
        let mut f = Family::new(&mut out, name, "counter", help);
        for (service, sums) in services.iter().zip(&sums) {
            f.sample(name, &[("service", &service.spec.name)], field(sums));
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_service_active_connections",
        "gauge",
        "Connections of the service in the workers' tables.",
    );
    for (service, backends) in services.iter().zip(&backends) {
        let active: u64 = backends.iter().map(|b| b.active()).sum();
        f.sample(
            "sluice_service_active_connections",
            &[("service", &service.spec.name)],
            active,
        );
    }

    let labels: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            s.spec
                .backends
                .iter()
                .map(|b| {
                    Endpoint {
                        address: b.address,
                        port: b.port,
                    }
                    .to_string()
                })
                .collect()
        })
        .collect();
    type BackendField = fn(&super::stats::BackendSums) -> u64;
    let backend_fields: [(&str, &str, &str, BackendField); 4] = [
        (
            "sluice_backend_packets_total",
            "counter",
            "Packets forwarded for the backend's connections, both directions.",
            |b| b.packets,
        ),
        (
            "sluice_backend_bytes_total",
            "counter",
            "Bytes forwarded for the backend's connections, both directions.",
            |b| b.bytes,
        ),
        (
            "sluice_backend_connections_total",
            "counter",
            "Connections sent to the backend.",
            |b| b.new_connections,
        ),
        (
            "sluice_backend_active_connections",
            "gauge",
            "The backend's connections in the workers' tables.",
            |b| b.active(),
        ),
    ];
    for (name, kind, help, field) in backend_fields {
        let mut f = Family::new(&mut out, name, kind, help);
        for ((service, sums), labels) in services.iter().zip(&backends).zip(&labels) {
            for (b, backend) in sums.iter().zip(labels) {
                f.sample(
                    name,
                    &[("service", &service.spec.name), ("backend", backend)],
                    field(b),
                );
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "sluice_backend_weight",
        "gauge",
        "The backend's configured weight (0 while draining).",
    );
    for (service, labels) in services.iter().zip(&labels) {
        for (spec, backend) in service.spec.backends.iter().zip(labels) {
            let weight = if spec.state == crate::state::BackendState::Draining {
                0
            } else {
                spec.weight
            };
            f.sample(
                "sluice_backend_weight",
                &[("service", &service.spec.name), ("backend", backend)],
                weight,
            );
        }
    }
    render_health(&mut out, controller, &services, &labels);
    render_host_path(&mut out, &workers);
    out
}

/// The exception path's counters per worker (its drops are in `sluice_drops_total`:
/// `no_host_path`, `host_path_full`).
fn render_host_path(out: &mut String, workers: &[super::stats::WorkerView]) {
    type Field = fn(&super::stats::WorkerView) -> u64;
    let fields: [(&str, &str, Field); 2] = [
        (
            "sluice_worker_to_host_packets_total",
            "Packets passed to the host kernel through the exception path (taps).",
            |w| w.counters.to_host.get(),
        ),
        (
            "sluice_worker_from_host_packets_total",
            "Packets the host kernel sent through the taps, forwarded out of the ports.",
            |w| w.counters.from_host.get(),
        ),
    ];
    for (name, help, field) in fields {
        let mut f = Family::new(out, name, "counter", help);
        for worker in workers {
            let (index, lcore) = (worker.index.to_string(), worker.lcore.to_string());
            f.sample(
                name,
                &[("worker", &index), ("lcore", &lcore)],
                field(worker),
            );
        }
    }
}

/// Health of the checked backends: `sluice_backend_health` (0 unknown, 1 up, 2 down, as
/// `BackendHealth` in the API) and the checker's counters.
fn render_health(
    out: &mut String,
    controller: &Controller,
    services: &[&crate::state::StoredService],
    labels: &[Vec<String>],
) {
    use crate::health::Health;
    let mut checked = Vec::new();
    for (service, labels) in services.iter().zip(labels) {
        for (spec, backend) in service.spec.backends.iter().zip(labels) {
            if let Some(h) = controller.health().get(&service.spec.name, spec.endpoint()) {
                checked.push((service.spec.name.as_str(), backend.as_str(), h));
            }
        }
    }
    let families: [(&str, &str, &str); 3] = [
        (
            "sluice_backend_health",
            "gauge",
            "Health-check state of the backend: 0 unknown, 1 up, 2 down (down: no new connections).",
        ),
        (
            "sluice_backend_health_checks_total",
            "counter",
            "Health checks run against the backend.",
        ),
        (
            "sluice_backend_health_check_failures_total",
            "counter",
            "Health checks of the backend that failed.",
        ),
    ];
    for (i, (name, kind, help)) in families.into_iter().enumerate() {
        let mut f = Family::new(out, name, kind, help);
        for (service, backend, h) in &checked {
            let value = match i {
                0 => match h.health {
                    Health::Unknown => 0,
                    Health::Up => 1,
                    Health::Down => 2,
                },
                1 => h.checks,
                _ => h.failures,
            };
            f.sample(name, &[("service", service), ("backend", backend)], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
