//! Table (`-o table`) renderings of every response, and JSON/YAML serialization.

use super::args::OutputFormat;
use super::duration::{format_duration, from_proto};
use super::error::CliError;
use super::manifest::{
    health_name, BackendStateName, HealthCheckManifest, ModeName, ProtocolName, SelectionName,
};
use super::table::{render_fields, Column, Table};
use super::view::connection_state_name;
use serde::Serialize;
use sluice_proto::v1;
use std::collections::BTreeMap;

/// `value` as pretty JSON or YAML, ending with a newline; `None` for table output.
pub fn serialize<T: Serialize>(
    value: &T,
    format: OutputFormat,
) -> Result<Option<String>, CliError> {
    match format {
        OutputFormat::Table => Ok(None),
        OutputFormat::Json => serde_json::to_string_pretty(value)
            .map(|text| Some(text + "\n"))
            .map_err(|e| CliError::Output(format!("cannot write JSON: {e}"))),
        OutputFormat::Yaml => serde_yaml_ng::to_string(value)
            .map(Some)
            .map_err(|e| CliError::Output(format!("cannot write YAML: {e}"))),
    }
}

/// `198.18.0.1:80`, `[2001:db8::1]:80`.
pub fn host_port(address: &str, port: u32) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

fn labels_text(labels: &std::collections::HashMap<String, String>) -> String {
    let sorted: BTreeMap<&String, &String> = labels.iter().collect();
    let text: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    or_dash(&text.join(","))
}

/// `service list`.
pub fn service_list(services: &[v1::Service]) -> String {
    let mut table = Table::new(&[
        Column::left("NAME"),
        Column::left("VIP"),
        Column::left("PROTOCOL"),
        Column::left("MODE"),
        Column::left("SELECTION"),
        Column::right("BACKENDS"),
        Column::right("CONNECTIONS"),
        Column::right("VERSION"),
        Column::left("LABELS"),
    ]);
    for service in services {
        let eligible = service
            .status
            .as_ref()
            .map(|s| s.eligible_backends.to_string())
            .unwrap_or_else(|| "?".into());
        table.add_row(vec![
            service.name.clone(),
            host_port(&service.vip, service.port),
            ProtocolName::from_proto(service.protocol).as_str().into(),
            ModeName::from_proto(service.mode).as_str().into(),
            SelectionName::from_proto(service.selection).as_str().into(),
            format!("{eligible}/{}", service.backends.len()),
            service
                .status
                .as_ref()
                .map(|s| s.active_connections.to_string())
                .unwrap_or_default(),
            service
                .meta
                .as_ref()
                .map(|m| m.resource_version.to_string())
                .unwrap_or_default(),
            labels_text(&service.labels),
        ]);
    }
    table.render()
}

/// The backends of one service, with health and counters when the daemon sent them (a
/// change's answer has none: its table stops at the state rather than show empty columns).
pub fn backend_table(backends: &[v1::Backend]) -> String {
    let spec = [
        Column::left("BACKEND"),
        Column::right("WEIGHT"),
        Column::left("STATE"),
    ];
    let status = [
        Column::left("HEALTH"),
        Column::right("ACTIVE"),
        Column::right("TOTAL"),
        Column::right("PKTS-TO"),
        Column::right("BYTES-TO"),
        Column::right("PKTS-FROM"),
        Column::right("BYTES-FROM"),
        Column::left("MESSAGE"),
    ];
    let mut table = if backends.iter().any(|b| b.status.is_some()) {
        Table::new(&[&spec[..], &status[..]].concat())
    } else {
        Table::new(&spec)
    };
    for backend in backends {
        let mut row = vec![
            host_port(&backend.address, backend.port),
            backend.weight.unwrap_or(1).to_string(),
            BackendStateName::from_proto(backend.state).as_str().into(),
        ];
        if let Some(status) = &backend.status {
            row.extend([
                health_name(status.health),
                status.active_connections.to_string(),
                status.total_connections.to_string(),
                status.packets_to_backend.to_string(),
                status.bytes_to_backend.to_string(),
                status.packets_from_backend.to_string(),
                status.bytes_from_backend.to_string(),
                status.health_message.clone(),
            ]);
        }
        table.add_row(row);
    }
    table.render()
}

/// `service get`: the settings, then the backends.
pub fn service_detail(service: &v1::Service) -> String {
    let mut selection = SelectionName::from_proto(service.selection)
        .as_str()
        .to_owned();
    if service.session_persistence {
        selection.push_str(" (session persistence)");
    }
    if let Some(size) = service.maglev_table_size {
        selection.push_str(&format!(", table size {size}"));
    }
    let mut fields = vec![
        ("Name", service.name.clone()),
        ("Labels", labels_text(&service.labels)),
        (
            "VIP",
            format!(
                "{}/{}",
                host_port(&service.vip, service.port),
                ProtocolName::from_proto(service.protocol).as_str()
            ),
        ),
        ("Mode", ModeName::from_proto(service.mode).as_str().into()),
        ("Selection", selection),
        ("SNAT pool", or_dash(&service.snat_pool)),
        (
            "Health check",
            service
                .health_check
                .as_ref()
                .map(|check| HealthCheckManifest::from_proto(check).summary())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    if let Some(meta) = &service.meta {
        fields.push((
            "Version",
            format!(
                "resource version {}, generation {}",
                meta.resource_version, meta.generation
            ),
        ));
    }
    if let Some(status) = &service.status {
        fields.push((
            "Status",
            format!(
                "{} of {} backends eligible, {} active connections, snapshot {}",
                status.eligible_backends,
                service.backends.len(),
                status.active_connections,
                status.snapshot_generation
            ),
        ));
    }
    let mut text = render_fields(&fields);
    text.push('\n');
    text.push_str(&backend_table(&service.backends));
    text
}

/// `service apply`, `backend ...`: `service/web created|configured|unchanged`.
pub fn service_change(service: Option<&v1::Service>, changed: bool, fallback_name: &str) -> String {
    let name = service.map_or(fallback_name, |s| s.name.as_str());
    let created = service
        .and_then(|s| s.meta.as_ref())
        .is_some_and(|meta| meta.generation == 1);
    let verb = match (changed, created) {
        (false, _) => "unchanged",
        (true, true) => "created",
        (true, false) => "configured",
    };
    format!("service/{name} {verb}\n")
}

/// `pool vip list`: the pools, then their allocations.
pub fn vip_pools(pools: &[v1::VipPool]) -> String {
    let mut table = Table::new(&[
        Column::left("NAME"),
        Column::left("CIDRS"),
        Column::left("EXCLUDED"),
        Column::right("CAPACITY"),
        Column::right("ALLOCATED"),
        Column::right("VERSION"),
    ]);
    let mut allocations = Table::new(&[
        Column::left("POOL"),
        Column::left("ADDRESS"),
        Column::left("OWNER"),
    ]);
    for pool in pools {
        table.add_row(vec![
            pool.name.clone(),
            pool.cidrs.join(","),
            or_dash(&pool.excluded_addresses.join(",")),
            pool.capacity.to_string(),
            pool.allocations.len().to_string(),
            pool.meta
                .as_ref()
                .map(|m| m.resource_version.to_string())
                .unwrap_or_default(),
        ]);
        for allocation in &pool.allocations {
            allocations.add_row(vec![
                pool.name.clone(),
                allocation.address.clone(),
                allocation.owner.clone(),
            ]);
        }
    }
    let mut text = table.render();
    if !allocations.is_empty() {
        text.push('\n');
        text.push_str(&allocations.render());
    }
    text
}

/// `pool snat list`.
pub fn snat_pools(pools: &[v1::SnatPool]) -> String {
    let mut table = Table::new(&[
        Column::left("NAME"),
        Column::left("ADDRESSES"),
        Column::left("USED-BY"),
        Column::right("VERSION"),
    ]);
    for pool in pools {
        table.add_row(vec![
            pool.name.clone(),
            pool.addresses.join(","),
            or_dash(&pool.used_by.join(",")),
            pool.meta
                .as_ref()
                .map(|m| m.resource_version.to_string())
                .unwrap_or_default(),
        ]);
    }
    table.render()
}

fn duration_cell(duration: Option<&prost_types::Duration>) -> String {
    duration
        .map(|d| format_duration(from_proto(d)))
        .unwrap_or_else(|| "-".into())
}

/// `conntrack list`.
pub fn connections(connections: &[v1::Connection]) -> String {
    let mut table = Table::new(&[
        Column::left("SERVICE"),
        Column::left("PROTO"),
        Column::left("CLIENT"),
        Column::left("VIP"),
        Column::left("BACKEND"),
        Column::left("SNAT"),
        Column::left("STATE"),
        Column::right("WORKER"),
        Column::right("AGE"),
        Column::right("IDLE"),
        Column::right("PKTS-TO"),
        Column::right("PKTS-FROM"),
        Column::right("BYTES-TO"),
        Column::right("BYTES-FROM"),
    ]);
    for connection in connections {
        let snat = if connection.snat_address.is_empty() {
            "-".to_owned()
        } else {
            host_port(&connection.snat_address, connection.snat_port)
        };
        table.add_row(vec![
            connection.service.clone(),
            ProtocolName::from_proto(connection.protocol)
                .as_str()
                .into(),
            host_port(&connection.client_address, connection.client_port),
            host_port(&connection.vip, connection.vip_port),
            host_port(&connection.backend_address, connection.backend_port),
            snat,
            connection_state_name(connection.state),
            connection.worker.to_string(),
            duration_cell(connection.age.as_ref()),
            duration_cell(connection.idle.as_ref()),
            connection.packets_to_backend.to_string(),
            connection.packets_from_backend.to_string(),
            connection.bytes_to_backend.to_string(),
            connection.bytes_from_backend.to_string(),
        ]);
    }
    table.render()
}

fn drops_text(drops: &std::collections::HashMap<String, u64>) -> String {
    let sorted: BTreeMap<&String, &u64> = drops.iter().filter(|(_, n)| **n > 0).collect();
    let text: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    or_dash(&text.join(","))
}

/// Appends a table after a blank line.
fn section(text: &mut String, body: &str) {
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(body);
}

/// `stats`: ports, workers, services, backends and drops, one table each.
pub fn stats(stats: &v1::GetStatsResponse) -> String {
    let mut text = String::new();
    let collected = stats
        .collected_at
        .as_ref()
        .map(|t| format!(", collected at {t}"))
        .unwrap_or_default();
    text.push_str(&format!(
        "Snapshot generation {}{collected}\n",
        stats.snapshot_generation
    ));

    let mut ports = Table::new(&[
        Column::left("PORT"),
        Column::right("ID"),
        Column::right("RX-PKTS"),
        Column::right("TX-PKTS"),
        Column::right("RX-BYTES"),
        Column::right("TX-BYTES"),
        Column::right("RX-MISSED"),
        Column::right("RX-ERRORS"),
        Column::right("TX-ERRORS"),
        Column::right("RX-NOMBUF"),
    ]);
    for port in &stats.ports {
        ports.add_row(vec![
            port.name.clone(),
            port.port_id.to_string(),
            port.rx_packets.to_string(),
            port.tx_packets.to_string(),
            port.rx_bytes.to_string(),
            port.tx_bytes.to_string(),
            port.rx_missed.to_string(),
            port.rx_errors.to_string(),
            port.tx_errors.to_string(),
            port.rx_nombuf.to_string(),
        ]);
    }
    section(&mut text, &ports.render());

    let mut workers = Table::new(&[
        Column::right("WORKER"),
        Column::right("LCORE"),
        Column::right("RX-PKTS"),
        Column::right("TX-PKTS"),
        Column::right("DROPPED"),
        Column::right("HANDOFF-TX"),
        Column::right("HANDOFF-RX"),
        Column::right("ACTIVE"),
        Column::right("TOTAL"),
        // Unconfirmed connections expired early because the table or an SNAT pool was
        // nearly full: a SYN flood or a scan.
        Column::right("EXPIRED-EARLY"),
        Column::right("BUSY"),
    ]);
    for worker in &stats.workers {
        workers.add_row(vec![
            worker.worker.to_string(),
            worker.lcore.to_string(),
            worker.rx_packets.to_string(),
            worker.tx_packets.to_string(),
            worker.dropped_packets.to_string(),
            worker.handoffs_sent.to_string(),
            worker.handoffs_received.to_string(),
            worker.active_connections.to_string(),
            worker.total_connections.to_string(),
            worker.expired_under_pressure.to_string(),
            format!("{:.0}%", worker.busy_ratio * 100.0),
        ]);
    }
    section(&mut text, &workers.render());

    let mut services = Table::new(&[
        Column::left("SERVICE"),
        Column::left("VIP"),
        Column::left("PROTO"),
        Column::right("PACKETS"),
        Column::right("BYTES"),
        Column::right("ACTIVE"),
        Column::right("TOTAL"),
        Column::right("NO-BACKEND"),
    ]);
    let mut backends = Table::new(&[
        Column::left("SERVICE"),
        Column::left("BACKEND"),
        Column::right("PKTS-TO"),
        Column::right("BYTES-TO"),
        Column::right("PKTS-FROM"),
        Column::right("BYTES-FROM"),
        Column::right("ACTIVE"),
        Column::right("TOTAL"),
    ]);
    for service in &stats.services {
        services.add_row(vec![
            service.name.clone(),
            host_port(&service.vip, service.port),
            ProtocolName::from_proto(service.protocol).as_str().into(),
            service.packets.to_string(),
            service.bytes.to_string(),
            service.active_connections.to_string(),
            service.total_connections.to_string(),
            service.no_backend_drops.to_string(),
        ]);
        for backend in &service.backends {
            backends.add_row(vec![
                service.name.clone(),
                host_port(&backend.address, backend.port),
                backend.packets_to_backend.to_string(),
                backend.bytes_to_backend.to_string(),
                backend.packets_from_backend.to_string(),
                backend.bytes_from_backend.to_string(),
                backend.active_connections.to_string(),
                backend.total_connections.to_string(),
            ]);
        }
    }
    section(&mut text, &services.render());
    if !backends.is_empty() {
        section(&mut text, &backends.render());
    }

    let mut drops = Table::new(&[Column::left("DROP-REASON"), Column::right("PACKETS")]);
    let sorted: BTreeMap<&String, &u64> = stats.drops_by_reason.iter().collect();
    for (reason, count) in sorted {
        drops.add_row(vec![reason.clone(), count.to_string()]);
    }
    section(&mut text, &drops.render());
    text
}

/// `status`: version and uptime, then ports and workers.
pub fn status(status: &v1::GetStatusResponse) -> String {
    let mut version = or_dash(&status.version);
    if !status.git_revision.is_empty() {
        version.push_str(&format!(" (git {})", status.git_revision));
    }
    let started = match (&status.started_at, &status.uptime) {
        (Some(at), Some(up)) => format!("{at} (up {})", format_duration(from_proto(up))),
        (Some(at), None) => at.to_string(),
        (None, Some(up)) => format!("up {}", format_duration(from_proto(up))),
        (None, None) => "-".into(),
    };
    let mut text = render_fields(&[
        ("Version", version),
        ("DPDK", or_dash(&status.dpdk_version)),
        ("Started", started),
        (
            "Snapshot generation",
            status.snapshot_generation.to_string(),
        ),
        ("State revision", status.state_resource_version.to_string()),
    ]);

    let mut ports = Table::new(&[
        Column::left("PORT"),
        Column::right("ID"),
        Column::left("DRIVER"),
        Column::left("MAC"),
        Column::left("LINK"),
        Column::right("SPEED"),
        Column::right("RXQ"),
        Column::right("TXQ"),
        Column::right("NUMA"),
    ]);
    for port in &status.ports {
        let link = match (port.link_up, port.full_duplex) {
            (false, _) => "down",
            (true, true) => "up full-duplex",
            (true, false) => "up half-duplex",
        };
        ports.add_row(vec![
            port.name.clone(),
            port.port_id.to_string(),
            port.driver.clone(),
            port.mac.clone(),
            link.into(),
            if port.link_speed_mbps == 0 {
                "-".into()
            } else {
                format!("{}Mb/s", port.link_speed_mbps)
            },
            port.rx_queues.to_string(),
            port.tx_queues.to_string(),
            if port.numa_socket < 0 {
                "-".into()
            } else {
                port.numa_socket.to_string()
            },
        ]);
    }
    section(&mut text, &ports.render());

    let mut workers = Table::new(&[
        Column::right("WORKER"),
        Column::right("LCORE"),
        Column::right("NUMA"),
        Column::left("RX-QUEUES"),
        Column::right("SNAPSHOT"),
        Column::left("RUNNING"),
        Column::right("RX-PKTS"),
        Column::right("TX-PKTS"),
        Column::right("DROPPED"),
        Column::right("ACTIVE"),
        Column::right("BUSY"),
        Column::left("DROPS"),
    ]);
    for worker in &status.workers {
        let mut row = vec![
            worker.worker.to_string(),
            worker.lcore.to_string(),
            worker.numa_socket.to_string(),
            or_dash(&worker.rx_queues.join(",")),
            worker.snapshot_generation.to_string(),
            if worker.running { "yes" } else { "STOPPED" }.into(),
        ];
        if let Some(stats) = &worker.stats {
            row.extend([
                stats.rx_packets.to_string(),
                stats.tx_packets.to_string(),
                stats.dropped_packets.to_string(),
                stats.active_connections.to_string(),
                format!("{:.0}%", stats.busy_ratio * 100.0),
                drops_text(&stats.drops_by_reason),
            ]);
        }
        workers.add_row(row);
    }
    section(&mut text, &workers.render());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web_service() -> v1::Service {
        v1::Service {
            name: "web".into(),
            labels: [("app".to_owned(), "web".to_owned())].into(),
            vip: "198.18.100.10".into(),
            port: 80,
            protocol: v1::Protocol::Tcp as i32,
            mode: v1::NatMode::Dnat as i32,
            selection: v1::Selection::Maglev as i32,
            backends: vec![
                v1::Backend {
                    address: "198.19.0.1".into(),
                    port: 8080,
                    weight: Some(2),
                    state: v1::BackendState::Active as i32,
                    status: Some(v1::BackendStatus {
                        health: v1::BackendHealth::Up as i32,
                        active_connections: 12,
                        total_connections: 340,
                        ..v1::BackendStatus::default()
                    }),
                },
                v1::Backend {
                    address: "2001:db8::2".into(),
                    port: 8080,
                    weight: None,
                    state: v1::BackendState::Draining as i32,
                    status: None,
                },
            ],
            meta: Some(v1::ObjectMeta {
                resource_version: 17,
                generation: 1,
            }),
            status: Some(v1::ServiceStatus {
                eligible_backends: 1,
                active_connections: 12,
                snapshot_generation: 4,
            }),
            ..v1::Service::default()
        }
    }

    #[test]
    fn service_list_has_one_aligned_row_per_service() {
        let mut udp = web_service();
        udp.name = "dns".into();
        udp.protocol = v1::Protocol::Udp as i32;
        udp.mode = v1::NatMode::FullNat as i32;
        udp.selection = v1::Selection::RoundRobin as i32;
        udp.port = 53;
        udp.labels.clear();
        let text = service_list(&[udp, web_service()]);
        assert_eq!(
            text,
            "NAME  VIP               PROTOCOL  MODE     SELECTION    BACKENDS  CONNECTIONS  VERSION  LABELS\n\
             dns   198.18.100.10:53  udp       fullnat  round-robin       1/2           12       17  -\n\
             web   198.18.100.10:80  tcp       dnat     maglev            1/2           12       17  app=web\n"
        );
    }

    #[test]
    fn service_detail_shows_settings_and_backends() {
        let text = service_detail(&web_service());
        assert!(
            text.starts_with("Name:          web\nLabels:        app=web\n"),
            "{text}"
        );
        assert!(
            text.contains("VIP:           198.18.100.10:80/tcp\n"),
            "{text}"
        );
        assert!(text.contains("Health check:  -\n"), "{text}");
        assert!(
            text.contains("Status:        1 of 2 backends eligible, 12 active connections"),
            "{text}"
        );
        let backends: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("BACKEND"))
            .collect();
        assert_eq!(backends.len(), 3, "{text}");
        assert!(
            backends[1].starts_with("198.19.0.1:8080          2  active    up"),
            "{text}"
        );
        assert_eq!(backends[2], "[2001:db8::2]:8080       1  draining");
    }

    #[test]
    fn backends_without_any_status_show_no_status_columns() {
        let mut service = web_service();
        for backend in &mut service.backends {
            backend.status = None;
        }
        assert_eq!(
            backend_table(&service.backends),
            "BACKEND             WEIGHT  STATE\n\
             198.19.0.1:8080          2  active\n\
             [2001:db8::2]:8080       1  draining\n"
        );
    }

    #[test]
    fn service_change_says_what_happened() {
        let mut service = web_service();
        assert_eq!(
            service_change(Some(&service), true, "x"),
            "service/web created\n"
        );
        service.meta.as_mut().unwrap().generation = 2;
        assert_eq!(
            service_change(Some(&service), true, "x"),
            "service/web configured\n"
        );
        assert_eq!(
            service_change(Some(&service), false, "x"),
            "service/web unchanged\n"
        );
        assert_eq!(service_change(None, true, "x"), "service/x configured\n");
    }

    #[test]
    fn connections_bracket_ipv6_and_show_snat() {
        let connection = v1::Connection {
            service: "web".into(),
            protocol: v1::Protocol::Tcp as i32,
            client_address: "198.18.1.5".into(),
            client_port: 40000,
            vip: "198.18.100.10".into(),
            vip_port: 80,
            backend_address: "2001:db8::1".into(),
            backend_port: 8080,
            snat_address: "198.18.200.1".into(),
            snat_port: 1024,
            state: v1::ConnectionState::Established as i32,
            age: Some(prost_types::Duration {
                seconds: 90,
                nanos: 0,
            }),
            ..v1::Connection::default()
        };
        let text = connections(&[connection]);
        let row = text.lines().nth(1).unwrap();
        for expected in [
            "198.18.1.5:40000",
            "[2001:db8::1]:8080",
            "198.18.200.1:1024",
            "established",
            "1m30s",
        ] {
            assert!(row.contains(expected), "{expected} missing: {row}");
        }
    }

    #[test]
    fn stats_have_a_table_per_kind_and_sorted_drops() {
        let response = v1::GetStatsResponse {
            snapshot_generation: 3,
            ports: vec![v1::PortStats {
                name: "port0".into(),
                rx_packets: 10,
                ..v1::PortStats::default()
            }],
            workers: vec![v1::WorkerStats {
                busy_ratio: 0.25,
                expired_under_pressure: 4321,
                ..v1::WorkerStats::default()
            }],
            services: vec![v1::ServiceStats {
                name: "web".into(),
                vip: "198.18.100.10".into(),
                port: 80,
                backends: vec![v1::BackendStats {
                    address: "198.19.0.1".into(),
                    port: 8080,
                    ..v1::BackendStats::default()
                }],
                ..v1::ServiceStats::default()
            }],
            drops_by_reason: [("no_service".to_owned(), 5), ("bad_checksum".to_owned(), 1)].into(),
            ..v1::GetStatsResponse::default()
        };
        let text = stats(&response);
        let headers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(char::is_uppercase) && !l.starts_with("Snapshot"))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            headers,
            ["PORT", "WORKER", "SERVICE", "SERVICE", "DROP-REASON"]
        );
        assert!(text.contains("25%"), "{text}");
        assert!(
            text.contains("EXPIRED-EARLY") && text.contains("4321"),
            "{text}"
        );
        let drops: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(drops, ["no_service          5", "bad_checksum        1"]);
        assert!(!text.contains("\n\n\n"));
    }

    #[test]
    fn json_and_yaml_end_with_a_newline() {
        let value = serde_json::json!({"a": 1});
        let json = serialize(&value, OutputFormat::Json).unwrap().unwrap();
        assert_eq!(json, "{\n  \"a\": 1\n}\n");
        let yaml = serialize(&value, OutputFormat::Yaml).unwrap().unwrap();
        assert_eq!(yaml, "a: 1\n");
        assert!(serialize(&value, OutputFormat::Table).unwrap().is_none());
    }
}
