//! `sluice-bench`: testpmd-style forwarding benchmark. See `sluice-bench -- --help`.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use dataplane::dpdk::{Eal, EalArgs};
use sluice::bench::{self, options::BenchOptions};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let (eal_args, app_args) = bench::options::split_args(&args);
    let opts = match BenchOptions::try_parse_from(&app_args) {
        Ok(o) => o,
        Err(e) => e.exit(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("sluice-bench: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let eal = match Eal::init(&EalArgs::new(&eal_args[0]).args(eal_args[1..].iter().cloned())) {
        Ok(eal) => eal,
        Err(e) => {
            eprintln!("sluice-bench: EAL initialisation failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = bench::run(&eal, &opts, stop);
    let code = match outcome {
        Ok(report) => {
            if opts.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("sluice-bench: {e}"),
                }
            } else {
                print!("{}", report.text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Err(e) = eal.cleanup() {
        eprintln!("sluice-bench: EAL cleanup: {e}");
    }
    code
}
