//! Command-line interface of the `theta` binary.

pub mod admin;
pub mod audit;
pub mod demo;
pub mod export;
pub mod incidents;
pub mod ingest;
pub mod inspect;
pub mod read;
pub mod serve;
pub mod sql;
pub mod store;
pub mod store_audit;

use clap::{Parser, Subcommand};

/// Theta: clinical EEG stored compressed and encrypted, served filtered and montaged.
#[derive(Debug, Parser)]
#[command(name = "theta", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the demo on an embedded default.
    Demo(demo::DemoArgs),
    /// Describe an EDF/EDF+/BDF/BDF+ file: header, signals, annotations, warnings.
    Inspect(inspect::InspectArgs),
    /// Ingest EDF/EDF+/BDF/BDF+ files into a store (one JSON line per file).
    Ingest(ingest::IngestArgs),
    /// Create a store (and, by default, its key file beside it, mode 600).
    Init(store::InitArgs),
    /// List the recordings of a store.
    Ls(store::LsArgs),
    /// Read a time window of a recording (CSV, JSON or NumPy .npy on stdout).
    Window(read::WindowArgs),
    /// Welch power spectral density and band powers of a span of a recording.
    Psd(read::PsdArgs),
    /// Read-only SQL over the recordings of the given tenants (DataFusion).
    Sql(sql::SqlArgs),
    /// Min/max envelope of a recording at a pixel width.
    Overview(read::OverviewArgs),
    /// Authenticate and decode every stored byte; report every bad chunk.
    Verify(store::VerifyArgs),
    /// Key-encryption key management.
    #[command(subcommand)]
    Keys(store::KeysCommand),
    /// Destroy a recording's data key: it can never be read again.
    Shred(store::ShredArgs),
    /// Export a cohort as pseudonymised BIDS-EEG or Parquet.
    Export(export::ExportArgs),
    /// Serve the HTTPS API.
    Serve(serve::ServeArgs),
    /// Administration: bootstrap the first administrator, access review.
    Admin(admin::AdminArgs),
    /// The audit trail: verify, export, purge, keygen.
    Audit(audit::AuditArgs),
    /// The security incident register: list, show, update, report.
    Incidents(incidents::IncidentsArgs),
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    // Store commands are audited to the trail of `THETA_CONFIG`'s profile (see `store_audit`).
    store_audit::run_audited(cli.command, dispatch)
}

fn dispatch(command: Command) -> i32 {
    match command {
        Command::Demo(args) => demo::run(args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Init(args) => store::init(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Ls(args) => store::ls(args),
        Command::Window(args) => read::window(args),
        Command::Overview(args) => read::overview(args),
        Command::Psd(args) => read::psd_cmd(args),
        Command::Sql(args) => sql::run(args),
        Command::Verify(args) => store::verify(args),
        Command::Keys(cmd) => store::keys(cmd),
        Command::Shred(args) => store::shred(args),
        Command::Export(args) => export::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Incidents(args) => incidents::run(args),
    }
}
