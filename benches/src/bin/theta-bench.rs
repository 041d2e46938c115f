//! `theta-bench`: the macro benchmark runner (one table, peers measured in the same run).
//!
//! ```text
//! cargo run --release -p theta-bench -- codecs ../shared/eeg [--json] [--block-sizes 2048,8192]
//! ```

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "theta-bench", about = "Theta's macro benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One variant per benchmark; each lives in its own module of the `theta_bench` library.
#[derive(Debug, Subcommand)]
enum Command {
    /// Codec ratio and speed against zstd-19, FLAC-8 and pcodec-8 on real recordings.
    Codecs(theta_bench::codecs::CodecsArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Codecs(args) => theta_bench::codecs::run(&args),
    }
}
