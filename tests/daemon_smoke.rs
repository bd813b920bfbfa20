//! The real `sluiced` binary on `net_null` ports without hugepages: it becomes ready, takes a
//! service over gRPC (the generated Rust client), shows it in `/metrics`, stops cleanly on
//! SIGTERM with every mbuf back in the pool, and restores the service after a restart. A
//! corrupt state file stops it before DPDK starts, and so does an out-of-range connection
//! timeout in the config file or an unknown one on the command line (`--check-config` shows
//! the timeouts the file and the `--timeout` flags set). A port that can verify IPv4 header
//! checksums (net_tap) is asked to, and the log says so per port.
#![cfg(feature = "dpdk")]

use sluice_proto::v1;
use sluice_proto::v1::observability_client::ObservabilityClient;
use sluice_proto::v1::services_client::ServicesClient;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLUICED: &str = env!("CARGO_BIN_EXE_sluiced");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon {
    child: Child,
    log: std::path::PathBuf,
    api: u16,
    admin: u16,
}

impl Daemon {
    fn start(dir: &Path, run: &str) -> Daemon {
        Daemon::start_on(dir, run, &["port0=net_null0", "port1=net_null1"])
    }

    /// [`Daemon::start`] on the given `--port` specs.
    fn start_on(dir: &Path, run: &str, ports: &[&str]) -> Daemon {
        let (api, admin) = (free_port(), free_port());
        let log = dir.join(format!("sluiced-{run}.log"));
        let child = Command::new(SLUICED)
            .args(["--no-huge", "--no-shconf", "--no-pci", "--memory-mb", "256"])
            .args(["--lcores", "0-1"])
            .args(ports.iter().flat_map(|port| ["--port", port]))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--api-socket")
            .arg(dir.join("sluiced.sock"))
            .args(["--api-tcp", &format!("127.0.0.1:{api}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--conn-capacity", "4096"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sluiced starts");
        let daemon = Daemon {
            child,
            log,
            api,
            admin,
        };
        daemon.wait_ready();
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(self.admin, "/readyz") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sluiced not ready in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then the exit status (within 30 s).
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sluiced did not stop after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn services(&self) -> ServicesClient<tonic::transport::Channel> {
        ServicesClient::connect(format!("http://127.0.0.1:{}", self.api))
            .await
            .expect("API connects")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A minimal HTTP GET: (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn web_service() -> v1::Service {
    v1::Service {
        name: "web".into(),
        vip: "198.18.100.10".into(),
        port: 80,
        protocol: v1::Protocol::Tcp.into(),
        mode: v1::NatMode::Dnat.into(),
        selection: v1::Selection::Maglev.into(),
        backends: ["198.19.0.1", "198.19.0.2"]
            .iter()
            .map(|a| v1::Backend {
                address: (*a).into(),
                port: 8080,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluiced_serves_programs_reports_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "first");
    assert_eq!(http_get(daemon.admin, "/livez").unwrap().0, 200);

    let mut services = daemon.services().await;
    let applied = services
        .apply_service(v1::ApplyServiceRequest {
            service: Some(web_service()),
            resource_version: Some(0),
        })
        .await
        .expect("service applied")
        .into_inner();
    assert!(applied.changed);
    let mut bad = web_service();
    bad.port = 0;
    let status = services
        .apply_service(v1::ApplyServiceRequest {
            service: Some(bad),
            resource_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("service.port"), "{status:?}");

    let got = services
        .get_service(v1::GetServiceRequest { name: "web".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.status.unwrap().snapshot_generation, 1);

    let mut observability =
        ObservabilityClient::connect(format!("http://127.0.0.1:{}", daemon.api))
            .await
            .unwrap();
    let status = observability
        .get_status(v1::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.ports.len(), 2);
    assert_eq!(status.ports[0].name, "port0");
    assert_eq!(status.ports[0].driver, "net_null");
    assert_eq!(status.workers.len(), 1);
    assert!(status.workers[0].running);
    assert_eq!(status.snapshot_generation, 1);
    let stats = observability
        .get_stats(v1::GetStatsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(stats.ports[0].rx_packets > 0, "net_null delivers packets");

    let (code, metrics) = http_get(daemon.admin, "/metrics").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "sluice_snapshot_generation 1",
        "sluice_ready 1",
        "sluice_service_info{service=\"web\",vip=\"198.18.100.10\",port=\"80\",protocol=\"tcp\"} 1",
        "sluice_backend_connections_total{service=\"web\",backend=\"198.19.0.1:8080\"} 0",
        "sluice_worker_running{worker=\"0\",lcore=\"1\"} 1",
        "sluice_worker_connections_expired_under_pressure_total{worker=\"0\",lcore=\"1\"} 0",
        "sluice_port_rx_packets_total{port=\"port0\"}",
        "sluice_drops_total{reason=\"no_connection\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    drop(services);
    drop(observability);

    let (status, log) = daemon.terminate();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(
        log.contains("mempool in use after shutdown: 0"),
        "no clean mempool line:\n{log}"
    );

    // Restart: the service comes back from the state directory.
    let daemon = Daemon::start(dir.path(), "second");
    let mut services = daemon.services().await;
    let listed = services
        .list_services(v1::ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.services.len(), 1);
    assert_eq!(listed.services[0].name, "web");
    let (code, metrics) = http_get(daemon.admin, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("sluice_snapshot_generation 1"),
        "{metrics}"
    );
    drop(services);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(log.contains("mempool in use after shutdown: 0"), "{log}");
}

#[test]
fn a_corrupt_state_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("state.json"),
        b"{\"format_version\": 1, \"state\": {oops",
    )
    .unwrap();
    let output = Command::new(SLUICED)
        .args(["--no-huge", "--no-shconf", "--no-pci", "--lcores", "0-1"])
        .args(["--port", "port0=net_null0"])
        .arg("--state-dir")
        .arg(&state)
        .args(["--api-socket", "", "--api-tcp", "", "--admin-listen", ""])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit 2: not fixed by restarting"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("state.json"), "{stderr}");
    assert!(
        !stderr.contains("EAL initialised"),
        "DPDK must not start:\n{stderr}"
    );
    // The file is left as it was.
    assert!(std::fs::read(state.join("state.json"))
        .unwrap()
        .ends_with(b"oops"));
}

#[test]
fn connection_timeouts_come_from_the_file_and_flags_and_bad_ones_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluiced.toml");
    let check = |timeouts: &str, flags: &[&str]| {
        std::fs::write(
            &config,
            format!(
                "[[ports]]\nname = \"port0\"\ndevice = \"net_null0\"\n\
                 [dataplane.timeouts]\n{timeouts}\n"
            ),
        )
        .unwrap();
        Command::new(SLUICED)
            .arg("--config")
            .arg(&config)
            .args(flags)
            .arg("--check-config")
            .output()
            .unwrap()
    };
    let ok = check("tcp_syn = 30\nembryonic_under_pressure = 2.5", &[]);
    assert!(ok.status.success(), "{ok:?}");
    let shown = String::from_utf8_lossy(&ok.stdout);
    assert!(shown.contains("tcp_syn: 30.0"), "{shown}");
    assert!(shown.contains("embryonic_under_pressure: 2.5"), "{shown}");
    let bad = check("udp = 0", &[]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("dataplane.timeouts.udp"), "{stderr}");
    // The command line overrides the file, timeout by timeout.
    let flags = ["--timeout", "tcp_syn=12", "--timeout", "udp=0.5"];
    let ok = check("tcp_syn = 30\nicmp = 7", &flags);
    assert!(ok.status.success(), "{ok:?}");
    let shown = String::from_utf8_lossy(&ok.stdout);
    for line in ["tcp_syn: 12.0", "udp: 0.5", "icmp: 7.0"] {
        assert!(shown.contains(line), "{line}: {shown}");
    }
    let bad = check("", &["--timeout", "tcp_sin=12"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("no timeout named \"tcp_sin\""), "{stderr}");
}

#[test]
fn the_daemon_asks_ports_that_can_verify_ipv4_header_checksums_to_do_so() {
    // net_tap verifies checksums when asked; net_null cannot. The log says which ports check.
    let dir = tempfile::tempdir().unwrap();
    let tap = format!("port1=net_tap0,iface=sltapsm{}", std::process::id() % 10000);
    let daemon = Daemon::start_on(dir.path(), "cksum", &["port0=net_null0", &tap]);
    let (status, log) = daemon.terminate();
    assert!(status.success(), "{log}");
    let configured = |port: &str| {
        log.lines()
            .find(|l| l.contains("port configured") && l.contains(&format!("port={port}")))
            .unwrap_or_else(|| panic!("no 'port configured' line for {port}:\n{log}"))
            .to_owned()
    };
    assert!(configured("port0").contains("rx_ip_checksum=false"));
    assert!(configured("port1").contains("rx_ip_checksum=true"));
}
