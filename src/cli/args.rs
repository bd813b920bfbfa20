//! The command line of `sluicectl` (clap derive).

use super::backend_spec::{parse_label, BackendAddr, BackendSpec};
use super::connect::DEFAULT_SOCKET;
use super::duration::parse_duration;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Program a Sluice load balancer (sluiced) over its sluice.v1 gRPC API.
#[derive(Debug, Parser)]
#[command(
    name = "sluicectl",
    version = crate::build_info::VERSION,
    long_version = crate::build_info::LONG_VERSION,
    after_help = "Environment: SLUICE_SERVER (default for --server), SLUICE_TOKEN (default for --token)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options of every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// sluiced's API address: unix:///PATH (or a socket path), http://HOST:PORT,
    /// https://HOST:PORT. Default: $SLUICE_SERVER, else unix:///run/sluice/sluiced.sock.
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub server: Option<String>,

    /// PEM CA certificate(s) to verify an https:// server with (default: system roots).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// PEM client certificate for mutual TLS (with --key).
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Bearer token sent as `authorization: Bearer TOKEN`. Default: $SLUICE_TOKEN (prefer the
    /// variable: arguments are visible to other users in the process list).
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Time limit for connecting and for each call (5s, 500ms, 1m).
    #[arg(long, global = true, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
}

impl GlobalArgs {
    /// The server to contact: `--server`, else `$SLUICE_SERVER`, else the default socket.
    pub fn server(&self) -> String {
        self.server
            .clone()
            .or_else(|| {
                std::env::var("SLUICE_SERVER")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"))
    }

    /// The bearer token: `--token`, else `$SLUICE_TOKEN`.
    pub fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("SLUICE_TOKEN").ok().filter(|s| !s.is_empty()))
    }
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// Pretty-printed JSON of the response messages (lowerCamelCase fields).
    Json,
    /// YAML of the response messages; `service get -o yaml` can be applied again.
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, replace, inspect and delete services.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Add, remove, drain or reactivate individual backends of a service.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// VIP pools (IPAM) and SNAT pools.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// The connection tables.
    #[command(subcommand)]
    Conntrack(ConntrackCommand),
    /// Counters of ports, workers, services, backends and drops.
    Stats(StatsArgs),
    /// Version, uptime, ports and workers of the daemon.
    Status,
    /// The HTTP/HTTPS route table of sluice-proxy (--server: the proxy's API).
    #[command(subcommand)]
    L7(super::l7::L7Command),
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create or replace services from manifest files or from flags.
    ///
    /// With -f, each file (YAML or JSON, `-` for stdin) holds one service, a list, or several
    /// YAML documents; all services of all files are applied atomically. Without -f, the flags
    /// describe one service named NAME.
    Apply(ServiceApplyArgs),
    /// List services.
    List(ServiceListArgs),
    /// Show one service with its backends' health and counters.
    Get {
        /// The service's name.
        name: String,
    },
    /// Delete a service (its connections are dropped).
    Delete {
        /// The service's name.
        name: String,
        /// Only delete if the stored service has this resource version.
        #[arg(long)]
        resource_version: Option<u64>,
        /// Succeed when the service does not exist.
        #[arg(long)]
        ignore_not_found: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServiceApplyArgs {
    /// Manifest file(s); `-` reads stdin. Conflicts with NAME and the service flags.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE",
        conflicts_with_all = [
            "name", "vip", "port", "protocol", "mode", "selection", "session_persistence",
            "snat_pool", "maglev_table_size", "backends", "labels", "health_check",
        ]
    )]
    pub files: Vec<PathBuf>,

    /// The service's name (flag mode).
    #[arg(required_unless_present = "files", requires = "vip")]
    pub name: Option<String>,

    /// The virtual IP address.
    #[arg(long, requires = "port")]
    pub vip: Option<String>,

    /// The port clients connect to.
    #[arg(long)]
    pub port: Option<u16>,

    /// IP protocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Tcp)]
    pub protocol: ProtocolArg,

    /// NAT mode (fullnat needs --snat-pool).
    #[arg(long, value_enum, default_value_t = ModeArg::Dnat)]
    pub mode: ModeArg,

    /// Backend selection algorithm.
    #[arg(long, value_enum, default_value_t = SelectionArg::Maglev)]
    pub selection: SelectionArg,

    /// Keep each client on one backend across connections.
    #[arg(long)]
    pub session_persistence: bool,

    /// SNAT pool for full-NAT.
    #[arg(long, value_name = "POOL")]
    pub snat_pool: Option<String>,

    /// Maglev lookup table size (a prime); default: automatic.
    #[arg(long, value_name = "SLOTS")]
    pub maglev_table_size: Option<u32>,

    /// A backend, repeatable: ADDR:PORT[,weight=N][,drain] ([ADDR]:PORT for IPv6).
    #[arg(long = "backend", value_name = "ADDR:PORT[,weight=N][,drain]")]
    pub backends: Vec<BackendSpec>,

    /// A label KEY=VALUE, repeatable.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,

    /// Health check type (interval, timeout and the rest take the daemon's defaults).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub health_check: Option<HealthCheckArg>,

    /// Health check interval (5s).
    #[arg(long, value_parser = parse_duration, requires = "health_check")]
    pub health_interval: Option<Duration>,

    /// Health check port (default: each backend's port).
    #[arg(long, requires = "health_check")]
    pub health_port: Option<u16>,

    /// HTTP/HTTPS health check path (/healthz).
    #[arg(long, requires = "health_check")]
    pub health_path: Option<String>,

    /// Only apply if the stored service has this resource version (0: only create).
    #[arg(long)]
    pub resource_version: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ServiceListArgs {
    /// Only services with this label, repeatable (all must match).
    #[arg(short = 'l', long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub selector: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Dnat,
    #[value(alias = "full-nat")]
    Fullnat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SelectionArg {
    Maglev,
    RoundRobin,
    SourceHash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HealthCheckArg {
    None,
    Ping,
    Tcp,
    Udp,
    Http,
    Https,
}

/// Arguments shared by the `backend` commands.
#[derive(Debug, Args)]
pub struct BackendTarget {
    /// The service.
    pub service: String,
    /// Only change the service if its stored resource version is this.
    #[arg(long)]
    pub resource_version: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Add backends, or replace those with the same ADDR:PORT.
    Add {
        #[command(flatten)]
        target: BackendTarget,
        /// ADDR:PORT[,weight=N][,drain], one or more.
        #[arg(required = true, value_name = "ADDR:PORT[,weight=N][,drain]")]
        backends: Vec<BackendSpec>,
        /// Weight of the backends that do not give one.
        #[arg(long)]
        weight: Option<u32>,
    },
    /// Remove backends (their connections are dropped: drain first).
    Remove {
        #[command(flatten)]
        target: BackendTarget,
        /// ADDR:PORT, one or more.
        #[arg(required = true, value_name = "ADDR:PORT")]
        backends: Vec<BackendAddr>,
        /// Skip backends that do not exist instead of failing.
        #[arg(long)]
        ignore_missing: bool,
    },
    /// Stop sending new connections to backends; established ones continue.
    Drain {
        #[command(flatten)]
        target: BackendTarget,
        /// ADDR:PORT, one or more.
        #[arg(required = true, value_name = "ADDR:PORT")]
        backends: Vec<BackendAddr>,
        /// Skip backends that do not exist instead of failing.
        #[arg(long)]
        ignore_missing: bool,
    },
    /// Let drained backends take new connections again.
    Activate {
        #[command(flatten)]
        target: BackendTarget,
        /// ADDR:PORT, one or more.
        #[arg(required = true, value_name = "ADDR:PORT")]
        backends: Vec<BackendAddr>,
        /// Skip backends that do not exist instead of failing.
        #[arg(long)]
        ignore_missing: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// VIP pools: address ranges handed out by allocate.
    #[command(subcommand)]
    Vip(VipPoolCommand),
    /// SNAT pools: source addresses of full-NAT services.
    #[command(subcommand)]
    Snat(SnatPoolCommand),
}

#[derive(Debug, Subcommand)]
pub enum VipPoolCommand {
    /// Create or replace a VIP pool (its allocations are kept).
    Apply {
        /// The pool's name.
        name: String,
        /// A CIDR to allocate from, repeatable, tried in order.
        #[arg(long = "cidr", required = true, value_name = "CIDR")]
        cidrs: Vec<String>,
        /// An address never to allocate, repeatable.
        #[arg(long = "exclude", value_name = "ADDRESS")]
        excluded: Vec<String>,
        /// Only apply if the stored pool has this resource version (0: only create).
        #[arg(long)]
        resource_version: Option<u64>,
    },
    /// List VIP pools and their allocations.
    List,
    /// Delete a VIP pool (it must have no allocations).
    Delete {
        /// The pool's name.
        name: String,
        /// Only delete if the stored pool has this resource version.
        #[arg(long)]
        resource_version: Option<u64>,
        /// Succeed when the pool does not exist.
        #[arg(long)]
        ignore_not_found: bool,
    },
    /// Allocate an address to an owner (idempotent per pool and owner).
    Allocate {
        /// The pool.
        pool: String,
        /// Who the address is for (gateway/default/my-gateway).
        #[arg(long)]
        owner: String,
        /// A specific address of the pool; default: the lowest free one.
        #[arg(long)]
        address: Option<String>,
    },
    /// Release one address, or everything an owner holds in the pool.
    Release {
        /// The pool.
        pool: String,
        /// The address to release.
        #[arg(long, conflicts_with = "owner", required_unless_present = "owner")]
        address: Option<String>,
        /// Release every address of this owner.
        #[arg(long)]
        owner: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnatPoolCommand {
    /// Create or replace a SNAT pool.
    Apply {
        /// The pool's name.
        name: String,
        /// A source address, repeatable.
        #[arg(long = "address", required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        /// Only apply if the stored pool has this resource version (0: only create).
        #[arg(long)]
        resource_version: Option<u64>,
    },
    /// List SNAT pools and the services using them.
    List,
    /// Delete a SNAT pool (no service may use it).
    Delete {
        /// The pool's name.
        name: String,
        /// Only delete if the stored pool has this resource version.
        #[arg(long)]
        resource_version: Option<u64>,
        /// Succeed when the pool does not exist.
        #[arg(long)]
        ignore_not_found: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConntrackCommand {
    /// List tracked connections.
    List(ConntrackListArgs),
}

#[derive(Debug, Args)]
pub struct ConntrackListArgs {
    /// Only connections of this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only connections to this backend: ADDR or ADDR:PORT ([ADDR]:PORT for IPv6).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub backend: Option<String>,
    /// Only connections where this address appears (client, VIP, backend or SNAT).
    #[arg(long)]
    pub address: Option<String>,
    /// At most this many connections (the daemon's default: 10000).
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only these services, repeatable.
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Leave out the per-backend counters (large with many services).
    #[arg(long)]
    pub no_backends: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluicectl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn service_apply_from_flags() {
        let cli = parse(&[
            "service",
            "apply",
            "web",
            "--vip",
            "198.18.100.10",
            "--port",
            "80",
            "--mode",
            "fullnat",
            "--snat-pool",
            "snat-a",
            "--selection",
            "source-hash",
            "--backend",
            "198.19.0.1:8080,weight=2",
            "--backend",
            "198.19.0.2:8080,drain",
            "-o",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        let Command::Service(ServiceCommand::Apply(apply)) = cli.command else {
            panic!("not service apply");
        };
        assert_eq!(apply.name.as_deref(), Some("web"));
        assert_eq!(apply.mode, ModeArg::Fullnat);
        assert_eq!(apply.selection, SelectionArg::SourceHash);
        assert_eq!(apply.backends.len(), 2);
        assert_eq!(apply.backends[0].weight, Some(2));
        assert!(apply.backends[1].draining);
    }

    #[test]
    fn a_bad_backend_flag_is_a_usage_error_naming_it() {
        let error = parse(&[
            "service",
            "apply",
            "web",
            "--vip",
            "198.18.0.1",
            "--port",
            "80",
            "--backend",
            "198.19.0.1",
        ])
        .unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(error.to_string().contains("has no port"), "{error}");
    }

    #[test]
    fn apply_needs_a_file_or_a_name_with_vip() {
        assert!(parse(&["service", "apply"]).is_err());
        assert!(parse(&["service", "apply", "web"]).is_err());
        assert!(parse(&["service", "apply", "-f", "a.yaml", "web"]).is_err());
        assert!(parse(&["service", "apply", "-f", "a.yaml", "-f", "b.yaml"]).is_ok());
        let error = parse(&["service", "apply", "-f", "a.yaml", "--mode", "fullnat"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "service",
            "list",
            "--server",
            "http://127.0.0.1:50051",
            "-l",
            "app=web",
            "--timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(cli.global.server(), "http://127.0.0.1:50051");
        assert_eq!(cli.global.timeout, Duration::from_secs(2));
    }

    #[test]
    fn release_needs_exactly_one_target() {
        assert!(parse(&["pool", "vip", "release", "p"]).is_err());
        assert!(parse(&[
            "pool",
            "vip",
            "release",
            "p",
            "--owner",
            "o",
            "--address",
            "a"
        ])
        .is_err());
        assert!(parse(&["pool", "vip", "release", "p", "--owner", "o"]).is_ok());
    }
}
