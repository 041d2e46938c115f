//! `theta-bench`: the macro benchmark runner (one table, peers measured in the same run).
//!
//! Each area is a subcommand: `theta-bench audit [--json]`, …
//!
//! ```text
//! cargo run --release -p theta-bench -- codecs ../shared/eeg [--json] [--block-sizes 2048,8192]
//! ```

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
    /// Codec ratio and speed against zstd-19, FLAC-8 and pcodec-8 on real recordings.
    Codecs(theta_bench::codecs::CodecsArgs),
    /// EDF read throughput and peak memory against pyedflib.
    Read(theta_bench::read::ReadArgs),
    /// Audit trail: appender throughput, append by batch size, `verify` on 10 million events.
    Audit(theta_bench::audit::AuditArgs),
    /// Audit overhead on an authenticated request path and events/s through the service.
    ServiceAudit(theta_bench::service_audit::ServiceAuditArgs),
    /// Store: ingest MB/s, stored/raw, peak memory, window and overview latency (`--sweep`:
    /// chunk shapes).
    Store(theta_bench::store::StoreArgs),
    /// The standard viewer page (double banana, 0.5–70 Hz + 50 Hz notch, 1920 px) from the
    /// encrypted store, warm and cold, against pyedflib + SciPy and MNE + SciPy.
    Page(theta_bench::page::PageArgs),
    /// The window endpoint serving the standard page over HTTPS with 1, 16 and 200 clients.
    Service(theta_bench::service::ServiceArgs),
    /// Research export throughput (BIDS-EEG and Parquet) for a cohort of generated recordings.
    Export(theta_bench::export::ExportArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Codecs(args) => theta_bench::codecs::run(&args),
        Bench::Export(args) => theta_bench::export::run(&args),
        Bench::Read(args) => theta_bench::read::run(&args),
        Bench::Audit(args) => theta_bench::audit::run(&args),
        Bench::ServiceAudit(args) => theta_bench::service_audit::run(&args),
        Bench::Store(args) => theta_bench::store::run(&args),
        Bench::Page(args) => theta_bench::page::run(&args),
        Bench::Service(args) => theta_bench::service::run(&args),
    }
}
