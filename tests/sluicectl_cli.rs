//! End-to-end tests of the `sluicectl` binary against an in-process fake `sluice.v1.Services`
//! server on a temporary Unix socket: the real binary, the real gRPC wire, a small in-memory
//! store that follows the documented API rules that these tests exercise.

use sluice_proto::v1;
use sluice_proto::v1::services_server::{Services, ServicesServer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// What the fake daemon stores and saw.
#[derive(Default)]
struct FakeState {
    services: BTreeMap<String, v1::Service>,
    revision: u64,
    /// The `authorization` header of the last call, if any.
    last_authorization: Option<String>,
}

#[derive(Clone, Default)]
struct FakeServices {
    state: Arc<Mutex<FakeState>>,
}

/// The checks of the real daemon that the tests rely on: weight range and duplicate backends.
fn validate(service: &v1::Service, path: &str) -> Result<(), Status> {
    let mut violations = Vec::new();
    if service.name.is_empty() {
        violations.push(FieldViolation::new(
            format!("{path}.name"),
            "must not be empty",
        ));
    }
    if service.port == 0 || service.port > 65535 {
        violations.push(FieldViolation::new(
            format!("{path}.port"),
            "must be between 1 and 65535",
        ));
    }
    let mut seen = Vec::new();
    for (index, backend) in service.backends.iter().enumerate() {
        if backend.weight.is_some_and(|w| w > 1_000_000) {
            violations.push(FieldViolation::new(
                format!("{path}.backends[{index}].weight"),
                "must be between 0 and 1000000",
            ));
        }
        let key = (backend.address.clone(), backend.port);
        if seen.contains(&key) {
            violations.push(FieldViolation::new(
                format!("{path}.backends[{index}]"),
                "duplicate backend",
            ));
        }
        seen.push(key);
    }
    if violations.is_empty() {
        return Ok(());
    }
    let message = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_bad_request(violations),
    ))
}

impl FakeState {
    fn record<T>(&mut self, request: &Request<T>) {
        self.last_authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }

    fn store(&mut self, mut service: v1::Service) -> v1::ApplyServiceResponse {
        let previous = self.services.get(&service.name);
        let unchanged = previous.is_some_and(|stored| {
            let mut spec = stored.clone();
            spec.meta = None;
            spec == service
        });
        if unchanged {
            return v1::ApplyServiceResponse {
                service: previous.cloned(),
                changed: false,
            };
        }
        self.revision += 1;
        service.meta = Some(v1::ObjectMeta {
            resource_version: self.revision,
            generation: previous
                .and_then(|s| s.meta.as_ref())
                .map_or(1, |m| m.generation + 1),
        });
        self.services.insert(service.name.clone(), service.clone());
        v1::ApplyServiceResponse {
            service: Some(service),
            changed: true,
        }
    }

    /// A stored service with the live status that Get/List add.
    fn with_status(service: &v1::Service) -> v1::Service {
        let mut service = service.clone();
        let mut eligible = 0;
        for backend in &mut service.backends {
            if backend.state != v1::BackendState::Draining as i32 && backend.weight != Some(0) {
                eligible += 1;
            }
            backend.status = Some(v1::BackendStatus {
                health: v1::BackendHealth::Unknown as i32,
                ..v1::BackendStatus::default()
            });
        }
        service.status = Some(v1::ServiceStatus {
            eligible_backends: eligible,
            active_connections: 0,
            snapshot_generation: 1,
        });
        service
    }
}

#[tonic::async_trait]
impl Services for FakeServices {
    async fn apply_service(
        &self,
        request: Request<v1::ApplyServiceRequest>,
    ) -> Result<Response<v1::ApplyServiceResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        state.record(&request);
        let service = request
            .into_inner()
            .service
            .ok_or_else(|| Status::invalid_argument("service: required"))?;
        validate(&service, "service")?;
        Ok(Response::new(state.store(service)))
    }

    async fn apply_services(
        &self,
        request: Request<v1::ApplyServicesRequest>,
    ) -> Result<Response<v1::ApplyServicesResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        state.record(&request);
        let requests = request.into_inner().requests;
        let mut services = Vec::new();
        for (index, entry) in requests.into_iter().enumerate() {
            let service = entry.service.ok_or_else(|| {
                Status::invalid_argument(format!("requests[{index}].service: required"))
            })?;
            validate(&service, &format!("requests[{index}].service"))?;
            services.push(service);
        }
        let responses = services
            .into_iter()
            .map(|service| state.store(service))
            .collect();
        Ok(Response::new(v1::ApplyServicesResponse { responses }))
    }

    async fn delete_service(
        &self,
        request: Request<v1::DeleteServiceRequest>,
    ) -> Result<Response<v1::DeleteServiceResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        state.record(&request);
        let request = request.into_inner();
        let deleted = state.services.remove(&request.name).is_some();
        if !deleted && !request.allow_missing {
            return Err(Status::not_found(format!(
                "service {} not found",
                request.name
            )));
        }
        if deleted {
            state.revision += 1;
        }
        Ok(Response::new(v1::DeleteServiceResponse { deleted }))
    }

    async fn get_service(
        &self,
        request: Request<v1::GetServiceRequest>,
    ) -> Result<Response<v1::Service>, Status> {
        let mut state = self.state.lock().unwrap();
        state.record(&request);
        let name = request.into_inner().name;
        state
            .services
            .get(&name)
            .map(|service| Response::new(FakeState::with_status(service)))
            .ok_or_else(|| Status::not_found(format!("service {name} not found")))
    }

    async fn list_services(
        &self,
        request: Request<v1::ListServicesRequest>,
    ) -> Result<Response<v1::ListServicesResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        state.record(&request);
        let selector = request
            .into_inner()
            .selector
            .map(|s| s.match_labels)
            .unwrap_or_default();
        let services = state
            .services
            .values()
            .filter(|service| {
                selector
                    .iter()
                    .all(|(key, value)| service.labels.get(key) == Some(value))
            })
            .map(FakeState::with_status)
            .collect();
        Ok(Response::new(v1::ListServicesResponse {
            services,
            resource_version: state.revision,
        }))
    }

    type WatchServicesStream = tokio_stream::Empty<Result<v1::WatchServicesResponse, Status>>;

    async fn watch_services(
        &self,
        _request: Request<v1::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        Err(Status::unimplemented("the fake daemon does not watch"))
    }

    async fn patch_backends(
        &self,
        request: Request<v1::PatchBackendsRequest>,
    ) -> Result<Response<v1::PatchBackendsResponse>, Status> {
        let mut state = self.state.lock().unwrap();
        state.record(&request);
        let patch = request.into_inner();
        let mut service = state
            .services
            .get(&patch.service)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("service {} not found", patch.service)))?;
        service.meta = None;
        let same = |backend: &v1::Backend, target: &v1::BackendRef| {
            backend.address == target.address && backend.port == target.port
        };
        service
            .backends
            .retain(|b| !patch.remove.iter().any(|r| same(b, r)));
        for upsert in patch.upsert {
            match service
                .backends
                .iter_mut()
                .find(|b| b.address == upsert.address && b.port == upsert.port)
            {
                Some(existing) => *existing = upsert,
                None => service.backends.push(upsert),
            }
        }
        for (targets, new_state) in [
            (&patch.drain, v1::BackendState::Draining),
            (&patch.activate, v1::BackendState::Active),
        ] {
            for target in targets {
                let backend = service
                    .backends
                    .iter_mut()
                    .find(|b| same(b, target))
                    .ok_or_else(|| {
                        Status::not_found(format!(
                            "backend {}:{} not found",
                            target.address, target.port
                        ))
                    })?;
                backend.state = new_state as i32;
            }
        }
        validate(&service, "service")?;
        let applied = state.store(service);
        Ok(Response::new(v1::PatchBackendsResponse {
            service: applied.service,
            changed: applied.changed,
        }))
    }
}

/// A fake daemon serving on a socket in a temporary directory for the life of the value.
struct FakeDaemon {
    /// Serves the socket; dropping it stops the server.
    _runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    socket: PathBuf,
    services: FakeServices,
}

impl FakeDaemon {
    fn start() -> FakeDaemon {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("sluiced.sock");
        let services = FakeServices::default();
        let listener = {
            let _context = runtime.enter();
            tokio::net::UnixListener::bind(&socket).expect("bind the fake daemon's socket")
        };
        let server = tonic::transport::Server::builder()
            .add_service(ServicesServer::new(services.clone()))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener));
        runtime.spawn(server);
        FakeDaemon {
            _runtime: runtime,
            dir,
            socket,
            services,
        }
    }

    fn server(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Runs sluicectl against this daemon.
    fn sluicectl(&self, args: &[&str]) -> Output {
        sluicectl_with(&self.server(), args, &[])
    }

    fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write the test file");
        path
    }

    fn stored_names(&self) -> Vec<String> {
        let state = self.services.state.lock().unwrap();
        state.services.keys().cloned().collect()
    }
}

fn sluicectl_with(server: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluicectl"));
    command
        .arg("--server")
        .arg(server)
        .args(args)
        .env_remove("SLUICE_SERVER")
        .env_remove("SLUICE_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run sluicectl")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn succeeded(output: Output) -> String {
    assert!(
        output.status.success(),
        "sluicectl failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Asserts exit code 1 with nothing on stdout and returns stderr.
fn failed(output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(stdout(&output).is_empty(), "stdout: {}", stdout(&output));
    stderr(&output)
}

const WEB_FLAGS: &[&str] = &[
    "service",
    "apply",
    "web",
    "--vip",
    "198.18.100.10",
    "--port",
    "80",
    "--backend",
    "198.19.0.1:8080,weight=2",
    "--backend",
    "198.19.0.2:8080",
    "-l",
    "app=web",
];

#[test]
fn apply_get_list_delete_with_table_output() {
    let daemon = FakeDaemon::start();

    assert_eq!(
        succeeded(daemon.sluicectl(WEB_FLAGS)),
        "service/web created\n"
    );
    assert_eq!(
        succeeded(daemon.sluicectl(WEB_FLAGS)),
        "service/web unchanged\n"
    );

    let list = succeeded(daemon.sluicectl(&["service", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "VIP",
            "PROTOCOL",
            "MODE",
            "SELECTION",
            "BACKENDS",
            "CONNECTIONS",
            "VERSION",
            "LABELS"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "web",
            "198.18.100.10:80",
            "tcp",
            "dnat",
            "maglev",
            "2/2",
            "0",
            "1",
            "app=web"
        ]
    );
    // Columns line up: every cell of the row starts where its header does.
    assert_eq!(lines[0].find("VIP"), lines[1].find("198.18.100.10:80"));

    let filtered = succeeded(daemon.sluicectl(&["service", "list", "-l", "app=db"]));
    assert_eq!(filtered.lines().count(), 1, "only the header: {filtered}");

    let detail = succeeded(daemon.sluicectl(&["service", "get", "web"]));
    assert!(
        detail.contains("VIP:           198.18.100.10:80/tcp"),
        "{detail}"
    );
    assert!(detail.contains("Mode:          dnat"), "{detail}");
    assert!(
        detail.contains("198.19.0.1:8080       2  active  unknown"),
        "{detail}"
    );

    assert_eq!(
        succeeded(daemon.sluicectl(&["service", "delete", "web"])),
        "service/web deleted\n"
    );
    assert!(daemon.stored_names().is_empty());
    let error = failed(daemon.sluicectl(&["service", "get", "web"]));
    assert_eq!(error, "error: NOT_FOUND: service web not found\n");
    assert_eq!(
        succeeded(daemon.sluicectl(&["service", "delete", "web", "--ignore-not-found"])),
        "service/web not found (nothing deleted)\n"
    );
}

const MANIFEST: &str = "\
name: api
vip: 198.18.100.20
port: 443
mode: fullnat
snatPool: snat-a
selection: source-hash
backends:
  - {address: 198.19.0.10, port: 8443, weight: 3}
  - {address: 198.19.0.11, port: 8443, state: draining}
healthCheck:
  type: http
  interval: 5s
  httpPath: /healthz
---
- name: dns
  vip: 198.18.100.53
  port: 53
  protocol: udp
  backends:
    - {address: 198.19.0.53, port: 53}
";

#[test]
fn apply_from_a_file_and_json_yaml_output() {
    let daemon = FakeDaemon::start();
    let file = daemon.write_file("services.yaml", MANIFEST);
    let file = file.to_str().unwrap();

    assert_eq!(
        succeeded(daemon.sluicectl(&["service", "apply", "-f", file])),
        "service/api created\nservice/dns created\n"
    );
    assert_eq!(daemon.stored_names(), ["api", "dns"]);

    let json = succeeded(daemon.sluicectl(&["service", "list", "-o", "json"]));
    let list: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(list["resourceVersion"], 2);
    let api = &list["services"][0];
    assert_eq!(api["name"], "api");
    assert_eq!(api["mode"], "fullnat");
    assert_eq!(api["selection"], "source-hash");
    assert_eq!(api["snatPool"], "snat-a");
    assert_eq!(api["backends"][0]["weight"], 3);
    assert_eq!(api["backends"][1]["state"], "draining");
    assert_eq!(api["backends"][0]["status"]["health"], "unknown");
    assert_eq!(api["healthCheck"]["interval"], "5s");
    assert_eq!(api["status"]["eligibleBackends"], 1);
    assert_eq!(api["meta"]["generation"], 1);
    assert_eq!(list["services"][1]["protocol"], "udp");

    let yaml = succeeded(daemon.sluicectl(&["service", "get", "dns", "-o", "yaml"]));
    let dns: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
    assert_eq!(dns["name"].as_str(), Some("dns"));
    assert_eq!(dns["port"].as_u64(), Some(53));
    assert_eq!(dns["backends"][0]["address"].as_str(), Some("198.19.0.53"));
    assert!(yaml.contains("mode: dnat\n"), "{yaml}");

    // What get prints applies again unchanged (output-only fields are ignored).
    let exported = daemon.write_file("dns.yaml", &yaml);
    assert_eq!(
        succeeded(daemon.sluicectl(&["service", "apply", "-f", exported.to_str().unwrap()])),
        "service/dns unchanged\n"
    );

    let applied = succeeded(daemon.sluicectl(&[
        "service",
        "apply",
        "web",
        "--vip",
        "198.18.100.10",
        "--port",
        "80",
        "-o",
        "json",
    ]));
    let applied: serde_json::Value = serde_json::from_str(&applied).expect("valid JSON");
    assert_eq!(applied["changed"], true);
    assert_eq!(applied["service"]["name"], "web");
}

#[test]
fn invalid_argument_names_the_field_and_changes_nothing() {
    let daemon = FakeDaemon::start();
    let error = failed(daemon.sluicectl(&[
        "service",
        "apply",
        "web",
        "--vip",
        "198.18.100.10",
        "--port",
        "80",
        "--backend",
        "198.19.0.1:8080,weight=2000000",
    ]));
    assert_eq!(
        error,
        "error: INVALID_ARGUMENT: service.backends[0].weight: must be between 0 and 1000000\n"
    );
    assert!(daemon.stored_names().is_empty());

    // Several violations: the summary, then each BadRequest field violation on its own line.
    let error = failed(daemon.sluicectl(&[
        "service",
        "apply",
        "web",
        "--vip",
        "198.18.100.10",
        "--port",
        "80",
        "--backend",
        "198.19.0.1:8080,weight=2000000",
        "--backend",
        "198.19.0.1:8080",
    ]));
    assert_eq!(
        error,
        "error: INVALID_ARGUMENT: service.backends[0].weight: must be between 0 and 1000000; \
         service.backends[1]: duplicate backend\n  \
         service.backends[0].weight: must be between 0 and 1000000\n  \
         service.backends[1]: duplicate backend\n"
    );
    assert!(daemon.stored_names().is_empty());
}

#[test]
fn backend_commands_patch_one_backend() {
    let daemon = FakeDaemon::start();
    succeeded(daemon.sluicectl(WEB_FLAGS));
    let drained = succeeded(daemon.sluicectl(&["backend", "drain", "web", "198.19.0.1:8080"]));
    assert!(drained.starts_with("service/web configured\n"), "{drained}");
    assert!(
        drained.contains("198.19.0.1:8080       2  draining"),
        "{drained}"
    );

    let added = succeeded(daemon.sluicectl(&[
        "backend",
        "add",
        "web",
        "198.19.0.3:8080",
        "--weight",
        "5",
        "-o",
        "yaml",
    ]));
    let added: serde_yaml_ng::Value = serde_yaml_ng::from_str(&added).expect("valid YAML");
    assert_eq!(added["service"]["backends"][2]["weight"].as_u64(), Some(5));

    succeeded(daemon.sluicectl(&["backend", "remove", "web", "198.19.0.2:8080"]));
    let error = failed(daemon.sluicectl(&["backend", "activate", "web", "198.19.0.9:80"]));
    assert_eq!(error, "error: NOT_FOUND: backend 198.19.0.9:80 not found\n");
}

#[test]
fn unimplemented_rpcs_are_reported_clearly() {
    let daemon = FakeDaemon::start();
    let error = failed(daemon.sluicectl(&["conntrack", "list", "--service", "web"]));
    assert!(error.starts_with("error: UNIMPLEMENTED"), "{error}");
    assert!(
        error.contains(&format!(
            "the server at {} does not implement sluice.v1.Observability/ListConnections",
            daemon.server()
        )),
        "{error}"
    );
}

#[test]
fn the_bearer_token_comes_from_the_flag_or_the_environment() {
    let daemon = FakeDaemon::start();
    succeeded(daemon.sluicectl(&["service", "list", "--token", "flag-token"]));
    let seen = |daemon: &FakeDaemon| {
        daemon
            .services
            .state
            .lock()
            .unwrap()
            .last_authorization
            .clone()
    };
    assert_eq!(seen(&daemon).as_deref(), Some("Bearer flag-token"));
    succeeded(sluicectl_with(
        &daemon.server(),
        &["service", "list"],
        &[("SLUICE_TOKEN", "env-token")],
    ));
    assert_eq!(seen(&daemon).as_deref(), Some("Bearer env-token"));
    succeeded(daemon.sluicectl(&["service", "list"]));
    assert_eq!(seen(&daemon), None);
}

#[test]
fn an_unreachable_server_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.sock");
    let server = format!("unix://{}", missing.display());
    let error = failed(sluicectl_with(&server, &["service", "list"], &[]));
    assert!(
        error.starts_with(&format!("error: cannot reach sluiced at {server}: ")),
        "{error}"
    );
    assert!(error.contains("No such file or directory"), "{error}");
}

#[test]
fn a_bad_manifest_is_reported_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "name: web\nvip: 198.18.100.10\nport: 80\nbackends:\n  - address: 198.19.0.1\n    port: 80\n    wieght: 2\n",
    )
    .unwrap();
    // No daemon at all: the file's error must come first.
    let error = failed(sluicectl_with(
        "unix:///nonexistent/sluiced.sock",
        &["service", "apply", "-f", file.to_str().unwrap()],
        &[],
    ));
    assert!(
        error.starts_with(&format!("error: {}: ", file.display())),
        "{error}"
    );
    assert!(
        error.contains("backends[0]: unknown field `wieght`"),
        "{error}"
    );
    assert!(error.contains("line 7"), "{error}");
}

#[test]
fn a_bad_backend_flag_is_a_usage_error() {
    let output = sluicectl_with(
        "unix:///nonexistent/sluiced.sock",
        &[
            "service",
            "apply",
            "web",
            "--vip",
            "198.18.0.1",
            "--port",
            "80",
            "--backend",
            "198.19.0.1",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(error.contains("--backend"), "{error}");
    assert!(error.contains("has no port"), "{error}");
}
