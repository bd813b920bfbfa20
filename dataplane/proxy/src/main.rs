//! `sluice-proxy`: the L7 HTTP/HTTPS gateway of Sluice (see the library docs and
//! docs/proxy.md). Exit codes: 0 after a clean shutdown, 1 on a runtime error, 2 on a bad
//! command line or a persisted table that cannot be restored.

use clap::Parser;
use sluice_proxy::api::{self, ApiListeners};
use sluice_proxy::control::Control;
use sluice_proxy::store::Store;
use sluice_proxy::workers::Workers;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "sluice-proxy",
    version,
    about = "Sluice L7 HTTP/HTTPS gateway, programmed over gRPC (sluice.v1.L7)"
)]
struct Args {
    /// gRPC API on TCP, e.g. 127.0.0.1:50061 (no authentication: keep it on a private address).
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// gRPC API on a Unix socket (created mode 0660).
    #[arg(long)]
    api_socket: Option<PathBuf>,
    /// Where the last applied route table is persisted and restored from at start.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Admin endpoint: /metrics, /livez, /readyz.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// On SIGTERM/SIGINT, how long open connections may take to finish their requests.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    drain_timeout: u64,
    /// Threads serving client connections, each with its own runtime (default: one per
    /// CPU); the API, admin endpoint and accept loops run on one more thread.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if args.api_listen.is_none() && args.api_socket.is_none() {
        eprintln!("error: at least one of --api-listen and --api-socket is required");
        std::process::exit(2);
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let workers = match Workers::start(threads) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: starting {threads} worker threads: {e}");
            std::process::exit(1);
        }
    };
    // The control plane: gRPC API, admin endpoint, accept loops.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(run(args, workers));
    std::process::exit(code);
}

async fn run(args: Args, workers: Workers) -> i32 {
    let store = match &args.state_dir {
        Some(dir) => match Store::open(dir) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot open the state directory");
                return 2;
            }
        },
        None => None,
    };
    let control = Control::with_workers(store, workers);
    if let Err(e) = control.restore().await {
        tracing::error!("{e:#}");
        return 2;
    }

    let mut listeners = ApiListeners::default();
    if let Some(path) = &args.api_socket {
        let _ = std::fs::remove_file(path);
        match tokio::net::UnixListener::bind(path) {
            Ok(l) => {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
                tracing::info!(socket = %path.display(), "gRPC API listening");
                listeners.unix = Some(l);
            }
            Err(e) => {
                tracing::error!(socket = %path.display(), error = %e, "cannot bind the API socket");
                return 1;
            }
        }
    }
    if let Some(addr) = args.api_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "gRPC API listening");
                listeners.tcp = Some(l);
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot bind the API address");
                return 1;
            }
        }
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut admin_task = None;
    if let Some(addr) = args.admin_listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "admin endpoint listening");
                admin_task = Some(tokio::spawn(sluice_proxy::admin::serve(
                    control.clone(),
                    l,
                    stop_rx.clone(),
                )));
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot bind the admin address");
                return 1;
            }
        }
    }
    let api_task = tokio::spawn(api::serve(control.clone(), listeners, stop_rx.clone()));
    control.set_ready();
    tracing::info!("sluice-proxy ready");

    let signal = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    let mut api_task = api_task;
    let code = tokio::select! {
        name = signal => {
            tracing::info!(signal = name, "shutting down");
            0
        }
        result = &mut api_task => {
            tracing::error!(?result, "the gRPC API stopped");
            1
        }
    };
    let _ = stop_tx.send(true);
    control.stop_listeners().await;
    // Let open connections finish their requests.
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout);
    while control.metrics().connections_active.load(Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = control.metrics().connections_active.load(Relaxed);
    if left > 0 {
        tracing::warn!(
            connections = left,
            "drain timeout: closing connections still open"
        );
    }
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some(path) = &args.api_socket {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    code
}
