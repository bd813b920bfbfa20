//! `sluice-gateway`: Kubernetes Gateway API controller (or static manifests) -> sluiced.

use clap::Parser;
use sluice_gateway::apply::{Bearer, ClientTls, Target};
use sluice_gateway::config::{NatMode, Pool, ServiceRef, Settings, DEFAULT_CONTROLLER};
use sluice_gateway::controller::Controller;
use sluice_gateway::static_source;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-gateway",
    version,
    about = "Gateway API controller for Sluice: programs sluiced (L4) and sluice-proxy (L7)"
)]
struct Args {
    /// Static mode: read Gateway API, Service, EndpointSlice and Secret YAML from this
    /// directory instead of a cluster.
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
    /// Kubeconfig file (default: in-cluster config, then $KUBECONFIG / ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// GatewayClasses with this spec.controllerName are handled.
    #[arg(long, default_value = DEFAULT_CONTROLLER)]
    controller_name: String,
    /// Value of the sluice.io/managed-by label on the sluiced services this instance owns.
    #[arg(long, default_value = "sluice-gateway")]
    instance: String,
    /// A sluiced API endpoint (unix:///PATH or http://HOST:PORT); repeat for several
    /// appliances: every one gets the same programme.
    #[arg(
        long = "sluiced",
        value_name = "ENDPOINT",
        default_value = "unix:///run/sluice/sluiced.sock"
    )]
    sluiced: Vec<String>,
    /// A sluice-proxy L7 API endpoint; repeatable.
    #[arg(long = "proxy-api", value_name = "ENDPOINT")]
    proxy_api: Vec<String>,
    /// NAMESPACE/NAME of the Service whose ready endpoints are the sluice-proxy instances
    /// (backends of the HTTP/HTTPS listeners' L4 services).
    #[arg(long, value_name = "NS/NAME")]
    proxy_service: Option<String>,
    /// IPAM pool NAME=CIDR[,CIDR...] for Gateways without spec.addresses; repeatable; the
    /// first is the default (annotation sluice.io/address-pool picks another).
    #[arg(long = "pool", value_name = "NAME=CIDRS")]
    pools: Vec<String>,
    /// sluiced SNAT pool name for full-NAT services.
    #[arg(long)]
    snat_pool: Option<String>,
    /// NAT mode without annotation: dnat or fullnat.
    #[arg(long, default_value = "dnat")]
    nat_mode: String,
    /// loxilb compatibility: controllerName loxilb.io/loxilb, serviceBehaviour/selectorkey/
    /// selectorvalue labels and loxilb.io/lbmode, loxilb.io/liveness annotations.
    #[arg(long)]
    loxilb_compat: bool,
    /// Invalid backendRefs lose their share instead of a REJECT sentinel backend refusing it.
    #[arg(long)]
    no_reject_sentinel: bool,
    /// PEM CA certificate(s) that verify https:// sluiced/proxy endpoints (default: the
    /// system roots).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS with https:// endpoints (with --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// File with a bearer token for the sluiced/proxy APIs.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Full resync period in seconds (re-reads manifests; re-checks every sluiced).
    #[arg(long, default_value_t = 30)]
    resync: u64,
    /// Static mode: one pass, then exit (status 1 if anything failed).
    #[arg(long)]
    once: bool,
    /// Static mode: print the computed statuses (a JSON array) after each pass.
    #[arg(long)]
    print_status: bool,
}

fn settings(args: &Args) -> Result<Settings, String> {
    Ok(Settings {
        controller_name: args.controller_name.clone(),
        instance: args.instance.clone(),
        loxilb_compat: args.loxilb_compat,
        pools: args
            .pools
            .iter()
            .map(|p| Pool::parse(p))
            .collect::<Result<_, _>>()?,
        snat_pool: args.snat_pool.clone(),
        default_mode: NatMode::parse(&args.nat_mode)
            .ok_or_else(|| format!("--nat-mode `{}`: expected dnat or fullnat", args.nat_mode))?,
        proxy_service: args
            .proxy_service
            .as_deref()
            .map(ServiceRef::parse)
            .transpose()?,
        reject_sentinel: !args.no_reject_sentinel,
    })
}

fn bearer(args: &Args) -> Result<Bearer, String> {
    let Some(path) = &args.token_file else {
        return Ok(Bearer(None));
    };
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    format!("Bearer {}", token.trim())
        .parse()
        .map(|v| Bearer(Some(v)))
        .map_err(|_| {
            format!(
                "--token-file {}: the token must be printable ASCII",
                path.display()
            )
        })
}

fn client_tls(args: &Args) -> Result<ClientTls, String> {
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
    };
    Ok(ClientTls {
        ca_pem: args.ca.as_ref().map(|p| read("--ca", p)).transpose()?,
        identity: match (&args.cert, &args.key) {
            (Some(c), Some(k)) => Some((read("--cert", c)?, read("--key", k)?)),
            _ => None,
        },
    })
}

/// Parses endpoints; https:// ones get the TLS settings.
fn targets(flag: &str, texts: &[String], tls: &ClientTls) -> Result<Vec<Target>, String> {
    texts
        .iter()
        .map(
            |t| match Target::parse(t).map_err(|e| format!("{flag} {e}"))? {
                Target::Https(uri, _) => Ok(Target::Https(uri, tls.clone())),
                other => Ok(other),
            },
        )
        .collect()
}

async fn kube_client(args: &Args) -> Result<kube::Client, String> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("no Kubernetes configuration: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

async fn run(args: Args) -> Result<bool, String> {
    let settings = settings(&args)?;
    let tls = client_tls(&args)?;
    let sluiced = targets("--sluiced", &args.sluiced, &tls)?;
    let proxies = targets("--proxy-api", &args.proxy_api, &tls)?;
    let token = bearer(&args)?;
    let resync = Duration::from_secs(args.resync.max(1));
    if let Some(dir) = &args.manifests {
        let controller = Controller::new(settings, &sluiced, &proxies, token, None)?;
        loop {
            let (world, errors) = static_source::read_dir(dir)?;
            for e in &errors {
                tracing::warn!(error = %e, "object skipped");
            }
            let report = controller.reconcile(&world).await;
            if args.print_status {
                let statuses: Vec<serde_json::Value> = report
                    .outcome
                    .statuses
                    .iter()
                    .map(|s| serde_json::json!({"kind": s.kind, "namespace": s.namespace, "name": s.name, "status": s.status}))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&statuses).unwrap_or_default()
                );
            }
            if args.once {
                return Ok(report.errors.is_empty() && errors.is_empty());
            }
            tokio::time::sleep(resync).await;
        }
    }
    let client = kube_client(&args).await?;
    let controller = Controller::new(settings, &sluiced, &proxies, token, Some(client.clone()))?;
    sluice_gateway::controller::run_kube(controller, client, resync).await;
    Ok(true)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-gateway: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sluice-gateway: {e}");
            ExitCode::from(2)
        }
    }
}
