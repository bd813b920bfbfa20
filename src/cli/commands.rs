//! Carries out each command: builds the request, calls the daemon, prints the answer.

use super::args::{
    BackendCommand, BackendTarget, Cli, Command, ConntrackCommand, ConntrackListArgs,
    HealthCheckArg, ModeArg, OutputFormat, PoolCommand, ProtocolArg, SelectionArg,
    ServiceApplyArgs, ServiceCommand, SnatPoolCommand, StatsArgs, VipPoolCommand,
};
use super::connect::{connect, AuthChannel, BearerToken, TlsFiles};
use super::duration::to_proto;
use super::error::CliError;
use super::manifest::{parse_services, ServiceManifest};
use super::render;
use super::view;
use serde::Serialize;
use sluice_proto::v1;
use sluice_proto::v1::observability_client::ObservabilityClient;
use sluice_proto::v1::pools_client::PoolsClient;
use sluice_proto::v1::services_client::ServicesClient;
use std::io::{Read, Write};

/// The connection of one run and how to print results.
struct Session {
    channel: AuthChannel,
    server: String,
    output: OutputFormat,
}

impl Session {
    fn services(&self) -> ServicesClient<AuthChannel> {
        ServicesClient::new(self.channel.clone())
    }

    fn pools(&self) -> PoolsClient<AuthChannel> {
        PoolsClient::new(self.channel.clone())
    }

    fn observability(&self) -> ObservabilityClient<AuthChannel> {
        ObservabilityClient::new(self.channel.clone())
    }

    /// Maps an error status of `method` to a [`CliError`] naming this server.
    fn failed(&self, method: &'static str) -> impl FnOnce(tonic::Status) -> CliError + '_ {
        move |status| CliError::rpc(&self.server, method, status)
    }

    /// Prints `value` as JSON/YAML, or the table text `table()` makes.
    fn print<T: Serialize>(
        &self,
        value: &T,
        table: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        let text = match render::serialize(value, self.output)? {
            Some(text) => text,
            None => table(),
        };
        write_stdout(&text)
    }
}

fn write_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        // `sluicectl ... | head` closing the pipe early is not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(CliError::Output(format!("cannot write to stdout: {error}"))),
    }
}

const APPLY_SERVICE: &str = "sluice.v1.Services/ApplyService";
const APPLY_SERVICES: &str = "sluice.v1.Services/ApplyServices";
const DELETE_SERVICE: &str = "sluice.v1.Services/DeleteService";
const GET_SERVICE: &str = "sluice.v1.Services/GetService";
const LIST_SERVICES: &str = "sluice.v1.Services/ListServices";
const PATCH_BACKENDS: &str = "sluice.v1.Services/PatchBackends";
const APPLY_VIP_POOL: &str = "sluice.v1.Pools/ApplyVipPool";
const DELETE_VIP_POOL: &str = "sluice.v1.Pools/DeleteVipPool";
const LIST_VIP_POOLS: &str = "sluice.v1.Pools/ListVipPools";
const ALLOCATE_VIP: &str = "sluice.v1.Pools/AllocateVip";
const RELEASE_VIP: &str = "sluice.v1.Pools/ReleaseVip";
const APPLY_SNAT_POOL: &str = "sluice.v1.Pools/ApplySnatPool";
const DELETE_SNAT_POOL: &str = "sluice.v1.Pools/DeleteSnatPool";
const LIST_SNAT_POOLS: &str = "sluice.v1.Pools/ListSnatPools";
const GET_STATS: &str = "sluice.v1.Observability/GetStats";
const LIST_CONNECTIONS: &str = "sluice.v1.Observability/ListConnections";
const GET_STATUS: &str = "sluice.v1.Observability/GetStatus";

/// Runs a parsed command line to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    // Read and check local input before connecting, so its errors come first.
    let apply_requests = match &cli.command {
        Command::Service(ServiceCommand::Apply(args)) => Some(apply_requests(args)?),
        _ => None,
    };
    let l7_table = match &cli.command {
        Command::L7(super::l7::L7Command::Apply(args)) => {
            Some(super::l7::read_manifest(&args.file)?)
        }
        _ => None,
    };
    let server = cli.global.server();
    let tls = TlsFiles {
        ca: cli.global.ca.clone(),
        cert: cli.global.cert.clone(),
        key: cli.global.key.clone(),
    };
    let token = BearerToken::new(cli.global.token().as_deref())?;
    let channel = connect(&server, &tls, cli.global.timeout, token).await?;
    let session = Session {
        channel,
        server,
        output: cli.global.output,
    };
    match cli.command {
        Command::Service(ServiceCommand::Apply(_)) => {
            apply_services(&session, apply_requests.unwrap_or_default()).await
        }
        Command::Service(ServiceCommand::List(args)) => {
            list_services(&session, args.selector).await
        }
        Command::Service(ServiceCommand::Get { name }) => get_service(&session, name).await,
        Command::Service(ServiceCommand::Delete {
            name,
            resource_version,
            ignore_not_found,
        }) => delete_service(&session, name, resource_version, ignore_not_found).await,
        Command::Backend(command) => patch_backends(&session, command).await,
        Command::Pool(PoolCommand::Vip(command)) => vip_pool(&session, command).await,
        Command::Pool(PoolCommand::Snat(command)) => snat_pool(&session, command).await,
        Command::Conntrack(ConntrackCommand::List(args)) => list_connections(&session, args).await,
        Command::Stats(args) => stats(&session, args).await,
        Command::Status => status(&session).await,
        Command::L7(command) => {
            super::l7::run(
                command,
                l7_table,
                session.channel.clone(),
                &session.server,
                session.output,
            )
            .await
        }
    }
}

/// The ApplyService requests of `service apply`: one per service of the files, or the one
/// the flags describe.
fn apply_requests(args: &ServiceApplyArgs) -> Result<Vec<v1::ApplyServiceRequest>, CliError> {
    let services: Vec<v1::Service> = if args.files.is_empty() {
        vec![service_from_flags(args)?]
    } else {
        let mut manifests: Vec<ServiceManifest> = Vec::new();
        for path in &args.files {
            let (text, source) = if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| CliError::Input(format!("cannot read stdin: {e}")))?;
                (text, "<stdin>".to_owned())
            } else {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))?;
                (text, path.display().to_string())
            };
            manifests.extend(parse_services(&text, &source).map_err(CliError::Input)?);
        }
        manifests
            .iter()
            .map(|manifest| manifest.to_proto().map_err(CliError::Input))
            .collect::<Result<_, _>>()?
    };
    if args.resource_version.is_some() && services.len() > 1 {
        return Err(CliError::Input(format!(
            "--resource-version applies to one service, but the files hold {}",
            services.len()
        )));
    }
    Ok(services
        .into_iter()
        .map(|service| v1::ApplyServiceRequest {
            service: Some(service),
            resource_version: args.resource_version,
        })
        .collect())
}

fn service_from_flags(args: &ServiceApplyArgs) -> Result<v1::Service, CliError> {
    let (Some(name), Some(vip), Some(port)) = (&args.name, &args.vip, args.port) else {
        return Err(CliError::Input(
            "service apply needs -f FILE, or NAME with --vip and --port".into(),
        ));
    };
    let health_check = args.health_check.map(|check_type| v1::HealthCheck {
        r#type: match check_type {
            HealthCheckArg::None => v1::HealthCheckType::None,
            HealthCheckArg::Ping => v1::HealthCheckType::Ping,
            HealthCheckArg::Tcp => v1::HealthCheckType::Tcp,
            HealthCheckArg::Udp => v1::HealthCheckType::Udp,
            HealthCheckArg::Http => v1::HealthCheckType::Http,
            HealthCheckArg::Https => v1::HealthCheckType::Https,
        } as i32,
        interval: args.health_interval.map(to_proto),
        port: args.health_port.map(u32::from),
        http_path: args.health_path.clone().unwrap_or_default(),
        ..v1::HealthCheck::default()
    });
    Ok(v1::Service {
        name: name.clone(),
        labels: args.labels.iter().cloned().collect(),
        vip: vip.clone(),
        port: u32::from(port),
        protocol: match args.protocol {
            ProtocolArg::Tcp => v1::Protocol::Tcp,
            ProtocolArg::Udp => v1::Protocol::Udp,
        } as i32,
        mode: match args.mode {
            ModeArg::Dnat => v1::NatMode::Dnat,
            ModeArg::Fullnat => v1::NatMode::FullNat,
        } as i32,
        selection: match args.selection {
            SelectionArg::Maglev => v1::Selection::Maglev,
            SelectionArg::RoundRobin => v1::Selection::RoundRobin,
            SelectionArg::SourceHash => v1::Selection::SourceHash,
        } as i32,
        session_persistence: args.session_persistence,
        snat_pool: args.snat_pool.clone().unwrap_or_default(),
        maglev_table_size: args.maglev_table_size,
        backends: args.backends.iter().map(|b| b.to_proto()).collect(),
        health_check,
        meta: None,
        status: None,
    })
}

async fn apply_services(
    session: &Session,
    mut requests: Vec<v1::ApplyServiceRequest>,
) -> Result<(), CliError> {
    if requests.len() == 1 {
        let request = requests.remove(0);
        let name = request
            .service
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let response = session
            .services()
            .apply_service(request)
            .await
            .map_err(session.failed(APPLY_SERVICE))?
            .into_inner();
        let change = view::ServiceChange::new(response.service.as_ref(), response.changed);
        return session.print(&change, || {
            render::service_change(response.service.as_ref(), response.changed, &name)
        });
    }
    let names: Vec<String> = requests
        .iter()
        .map(|r| {
            r.service
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default()
        })
        .collect();
    let response = session
        .services()
        .apply_services(v1::ApplyServicesRequest { requests })
        .await
        .map_err(session.failed(APPLY_SERVICES))?
        .into_inner();
    let changes = view::ServiceChanges {
        responses: response
            .responses
            .iter()
            .map(|r| view::ServiceChange::new(r.service.as_ref(), r.changed))
            .collect(),
    };
    session.print(&changes, || {
        response
            .responses
            .iter()
            .zip(&names)
            .map(|(r, name)| render::service_change(r.service.as_ref(), r.changed, name))
            .collect()
    })
}

async fn list_services(session: &Session, selector: Vec<(String, String)>) -> Result<(), CliError> {
    let selector = (!selector.is_empty()).then(|| v1::LabelSelector {
        match_labels: selector.into_iter().collect(),
    });
    let response = session
        .services()
        .list_services(v1::ListServicesRequest { selector })
        .await
        .map_err(session.failed(LIST_SERVICES))?
        .into_inner();
    let list = view::ServiceList {
        services: response
            .services
            .iter()
            .map(ServiceManifest::from_proto)
            .collect(),
        resource_version: response.resource_version,
    };
    session.print(&list, || render::service_list(&response.services))
}

async fn get_service(session: &Session, name: String) -> Result<(), CliError> {
    let service = session
        .services()
        .get_service(v1::GetServiceRequest { name })
        .await
        .map_err(session.failed(GET_SERVICE))?
        .into_inner();
    session.print(&ServiceManifest::from_proto(&service), || {
        render::service_detail(&service)
    })
}

async fn delete_service(
    session: &Session,
    name: String,
    resource_version: Option<u64>,
    allow_missing: bool,
) -> Result<(), CliError> {
    let response = session
        .services()
        .delete_service(v1::DeleteServiceRequest {
            name: name.clone(),
            resource_version,
            allow_missing,
        })
        .await
        .map_err(session.failed(DELETE_SERVICE))?
        .into_inner();
    session.print(
        &view::Deleted {
            deleted: response.deleted,
        },
        || deleted_line("service", &name, response.deleted),
    )
}

fn deleted_line(kind: &str, name: &str, deleted: bool) -> String {
    if deleted {
        format!("{kind}/{name} deleted\n")
    } else {
        format!("{kind}/{name} not found (nothing deleted)\n")
    }
}

async fn patch_backends(session: &Session, command: BackendCommand) -> Result<(), CliError> {
    let (target, request) = match command {
        BackendCommand::Add {
            target,
            backends,
            weight,
        } => {
            let upsert = backends
                .into_iter()
                .map(|mut backend| {
                    backend.weight = backend.weight.or(weight);
                    backend.to_proto()
                })
                .collect();
            let request = v1::PatchBackendsRequest {
                upsert,
                ..patch_request(&target)
            };
            (target, request)
        }
        BackendCommand::Remove {
            target,
            backends,
            ignore_missing,
        } => {
            let request = v1::PatchBackendsRequest {
                remove: backends.iter().map(|b| b.to_proto()).collect(),
                allow_missing: ignore_missing,
                ..patch_request(&target)
            };
            (target, request)
        }
        BackendCommand::Drain {
            target,
            backends,
            ignore_missing,
        } => {
            let request = v1::PatchBackendsRequest {
                drain: backends.iter().map(|b| b.to_proto()).collect(),
                allow_missing: ignore_missing,
                ..patch_request(&target)
            };
            (target, request)
        }
        BackendCommand::Activate {
            target,
            backends,
            ignore_missing,
        } => {
            let request = v1::PatchBackendsRequest {
                activate: backends.iter().map(|b| b.to_proto()).collect(),
                allow_missing: ignore_missing,
                ..patch_request(&target)
            };
            (target, request)
        }
    };
    let response = session
        .services()
        .patch_backends(request)
        .await
        .map_err(session.failed(PATCH_BACKENDS))?
        .into_inner();
    let change = view::ServiceChange::new(response.service.as_ref(), response.changed);
    session.print(&change, || {
        let mut text =
            render::service_change(response.service.as_ref(), response.changed, &target.service);
        if let Some(service) = &response.service {
            text.push('\n');
            text.push_str(&render::backend_table(&service.backends));
        }
        text
    })
}

fn patch_request(target: &BackendTarget) -> v1::PatchBackendsRequest {
    v1::PatchBackendsRequest {
        service: target.service.clone(),
        resource_version: target.resource_version,
        ..v1::PatchBackendsRequest::default()
    }
}

fn pool_change_line(
    kind: &str,
    name: &str,
    meta: Option<&v1::ObjectMeta>,
    changed: bool,
) -> String {
    let verb = match (changed, meta.is_some_and(|m| m.generation == 1)) {
        (false, _) => "unchanged",
        (true, true) => "created",
        (true, false) => "configured",
    };
    format!("{kind}/{name} {verb}\n")
}

async fn vip_pool(session: &Session, command: VipPoolCommand) -> Result<(), CliError> {
    let mut client = session.pools();
    match command {
        VipPoolCommand::Apply {
            name,
            cidrs,
            excluded,
            resource_version,
        } => {
            let request = v1::ApplyVipPoolRequest {
                pool: Some(v1::VipPool {
                    name: name.clone(),
                    cidrs,
                    excluded_addresses: excluded,
                    ..v1::VipPool::default()
                }),
                resource_version,
            };
            let response = client
                .apply_vip_pool(request)
                .await
                .map_err(session.failed(APPLY_VIP_POOL))?
                .into_inner();
            let change = view::PoolChange {
                pool: response.pool.as_ref().map(view::VipPoolView::from_proto),
                changed: response.changed,
            };
            session.print(&change, || {
                let meta = response.pool.as_ref().and_then(|p| p.meta.as_ref());
                pool_change_line("vip-pool", &name, meta, response.changed)
            })
        }
        VipPoolCommand::List => {
            let response = client
                .list_vip_pools(v1::ListVipPoolsRequest {})
                .await
                .map_err(session.failed(LIST_VIP_POOLS))?
                .into_inner();
            let list = view::PoolList {
                pools: response
                    .pools
                    .iter()
                    .map(view::VipPoolView::from_proto)
                    .collect(),
            };
            session.print(&list, || render::vip_pools(&response.pools))
        }
        VipPoolCommand::Delete {
            name,
            resource_version,
            ignore_not_found,
        } => {
            let response = client
                .delete_vip_pool(v1::DeleteVipPoolRequest {
                    name: name.clone(),
                    resource_version,
                    allow_missing: ignore_not_found,
                })
                .await
                .map_err(session.failed(DELETE_VIP_POOL))?
                .into_inner();
            session.print(
                &view::Deleted {
                    deleted: response.deleted,
                },
                || deleted_line("vip-pool", &name, response.deleted),
            )
        }
        VipPoolCommand::Allocate {
            pool,
            owner,
            address,
        } => {
            let response = client
                .allocate_vip(v1::AllocateVipRequest {
                    pool: pool.clone(),
                    owner: owner.clone(),
                    requested_address: address,
                })
                .await
                .map_err(session.failed(ALLOCATE_VIP))?
                .into_inner();
            let allocated = view::AllocatedVip {
                address: response.address.clone(),
                newly_allocated: response.newly_allocated,
                resource_version: response.resource_version,
            };
            session.print(&allocated, || {
                let how = if response.newly_allocated {
                    "allocated to"
                } else {
                    "already held by"
                };
                format!("{} {how} {owner} (pool {pool})\n", response.address)
            })
        }
        VipPoolCommand::Release {
            pool,
            address,
            owner,
        } => {
            let target = match (address, owner) {
                (Some(address), _) => v1::release_vip_request::Target::Address(address),
                (None, Some(owner)) => v1::release_vip_request::Target::Owner(owner),
                (None, None) => {
                    return Err(CliError::Input("release needs --address or --owner".into()))
                }
            };
            let response = client
                .release_vip(v1::ReleaseVipRequest {
                    pool: pool.clone(),
                    target: Some(target),
                })
                .await
                .map_err(session.failed(RELEASE_VIP))?
                .into_inner();
            let released = view::ReleasedVips {
                released: response
                    .released
                    .iter()
                    .map(view::VipAllocationView::from_proto)
                    .collect(),
            };
            session.print(&released, || {
                if response.released.is_empty() {
                    return format!("nothing was allocated (pool {pool})\n");
                }
                response
                    .released
                    .iter()
                    .map(|a| format!("{} released from {} (pool {pool})\n", a.address, a.owner))
                    .collect()
            })
        }
    }
}

async fn snat_pool(session: &Session, command: SnatPoolCommand) -> Result<(), CliError> {
    let mut client = session.pools();
    match command {
        SnatPoolCommand::Apply {
            name,
            addresses,
            resource_version,
        } => {
            let request = v1::ApplySnatPoolRequest {
                pool: Some(v1::SnatPool {
                    name: name.clone(),
                    addresses,
                    ..v1::SnatPool::default()
                }),
                resource_version,
            };
            let response = client
                .apply_snat_pool(request)
                .await
                .map_err(session.failed(APPLY_SNAT_POOL))?
                .into_inner();
            let change = view::PoolChange {
                pool: response.pool.as_ref().map(view::SnatPoolView::from_proto),
                changed: response.changed,
            };
            session.print(&change, || {
                let meta = response.pool.as_ref().and_then(|p| p.meta.as_ref());
                pool_change_line("snat-pool", &name, meta, response.changed)
            })
        }
        SnatPoolCommand::List => {
            let response = client
                .list_snat_pools(v1::ListSnatPoolsRequest {})
                .await
                .map_err(session.failed(LIST_SNAT_POOLS))?
                .into_inner();
            let list = view::PoolList {
                pools: response
                    .pools
                    .iter()
                    .map(view::SnatPoolView::from_proto)
                    .collect(),
            };
            session.print(&list, || render::snat_pools(&response.pools))
        }
        SnatPoolCommand::Delete {
            name,
            resource_version,
            ignore_not_found,
        } => {
            let response = client
                .delete_snat_pool(v1::DeleteSnatPoolRequest {
                    name: name.clone(),
                    resource_version,
                    allow_missing: ignore_not_found,
                })
                .await
                .map_err(session.failed(DELETE_SNAT_POOL))?
                .into_inner();
            session.print(
                &view::Deleted {
                    deleted: response.deleted,
                },
                || deleted_line("snat-pool", &name, response.deleted),
            )
        }
    }
}

async fn list_connections(session: &Session, args: ConntrackListArgs) -> Result<(), CliError> {
    let request = v1::ListConnectionsRequest {
        service: args.service.unwrap_or_default(),
        backend: args.backend.unwrap_or_default(),
        address: args.address.unwrap_or_default(),
        limit: args.limit.unwrap_or(0),
    };
    let mut stream = session
        .observability()
        .list_connections(request)
        .await
        .map_err(session.failed(LIST_CONNECTIONS))?
        .into_inner();
    let mut connections = Vec::new();
    while let Some(batch) = stream
        .message()
        .await
        .map_err(session.failed(LIST_CONNECTIONS))?
    {
        connections.extend(batch.connections);
    }
    let list = view::ConnectionList {
        connections: connections
            .iter()
            .map(view::ConnectionView::from_proto)
            .collect(),
    };
    session.print(&list, || render::connections(&connections))
}

async fn stats(session: &Session, args: StatsArgs) -> Result<(), CliError> {
    let response = session
        .observability()
        .get_stats(v1::GetStatsRequest {
            services: args.services,
            include_backends: !args.no_backends,
        })
        .await
        .map_err(session.failed(GET_STATS))?
        .into_inner();
    session.print(&view::StatsView::from_proto(&response), || {
        render::stats(&response)
    })
}

async fn status(session: &Session) -> Result<(), CliError> {
    let response = session
        .observability()
        .get_status(v1::GetStatusRequest {})
        .await
        .map_err(session.failed(GET_STATUS))?
        .into_inner();
    session.print(&view::StatusView::from_proto(&response), || {
        render::status(&response)
    })
}
