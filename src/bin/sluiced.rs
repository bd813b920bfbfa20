//! `sluiced`: the Sluice appliance daemon. See `sluiced --help` and `sluiced.example.toml`.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

use sluice::daemon;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let args = daemon::config::Args::parse();
    let config = match daemon::config::load(&args) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("invalid configuration: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    tracing::info!(
        version = sluice::build_info::LONG_VERSION,
        "sluiced starting"
    );
    match daemon::run(config) {
        Ok(()) => {
            tracing::info!("sluiced stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("sluiced failed: {e:#}");
            // An unusable state directory or state file is not fixed by restarting: exit 2 like
            // a configuration error, so supervisors (RestartPreventExitStatus=2) do not loop.
            if e.downcast_ref::<controlplane::store::StoreError>()
                .is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
