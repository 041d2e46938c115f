//! `theta-bench`: the macro benchmark runner (one table, peers measured in the same run).
//!
//! Each area is a subcommand: `theta-bench audit [--json]`, …

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "theta-bench", about = "Theta macro benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Audit trail: appender throughput, append by batch size, `verify` on 10 million events.
    Audit(theta_bench::audit::AuditArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Audit(args) => theta_bench::audit::run(&args),
    }
}
