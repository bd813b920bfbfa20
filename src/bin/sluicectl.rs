//! `sluicectl`: program a Sluice load balancer over gRPC. See [`sluice::cli`].

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
