//! `theta-bench`: the macro benchmark runner (one table, peers measured in the same run).

use clap::{Parser, Subcommand};

/// Theta's macro benchmarks.
#[derive(Debug, Parser)]
#[command(name = "theta-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// EDF read throughput and peak memory against pyedflib.
    Read(theta_bench::read::ReadArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Read(args) => theta_bench::read::run(&args),
    }
}
