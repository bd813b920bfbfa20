//! `sluicectl`, the command-line client of the `sluice.v1` gRPC API.
//!
//! ```text
//! sluicectl [--server ADDRESS] [-o table|json|yaml] [--timeout 10s] [--token T] COMMAND
//!   service apply -f FILE... | NAME --vip IP --port N [--protocol tcp|udp]
//!                 [--mode dnat|fullnat] [--selection maglev|round-robin|source-hash]
//!                 [--backend ADDR:PORT[,weight=N][,drain]]... [--snat-pool P] [-l K=V]...
//!                 [--health-check TYPE] [--resource-version V]
//!   service list [-l KEY=VALUE]... | get NAME | delete NAME [--ignore-not-found]
//!   backend add|remove|drain|activate SERVICE ADDR:PORT... [--weight N]
//!   pool vip apply NAME --cidr C... | list | delete NAME | allocate POOL --owner O | release POOL
//!   pool snat apply NAME --address A... | list | delete NAME
//!   conntrack list [--service S] [--backend ADDR[:PORT]] [--address A] [--limit N]
//!   stats [--service S]... [--no-backends]
//!   status
//!   l7 get | l7 apply -f TABLE.yaml [--expected-version N]   (against sluice-proxy's API)
//! ```
//! The manifest schema of `service apply -f` is documented in [`manifest`]. Errors print as
//! `error: CODE: message` on stderr and exit with 1.

pub mod args;
pub mod backend_spec;
mod commands;
pub mod connect;
pub mod duration;
pub mod error;
pub mod l7;
pub mod manifest;
pub mod render;
pub mod table;
pub mod view;

use clap::Parser;
use std::process::ExitCode;

/// The `sluicectl` program: parses the command line, runs the command on a single-threaded
/// runtime, prints any error on stderr. Usage errors exit with 2 (clap), others with 1.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
