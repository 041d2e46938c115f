//! Command-line interface of the `theta` binary.

pub mod admin;
pub mod audit;
pub mod demo;
pub mod incidents;
pub mod inspect;
pub mod serve;

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
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Incidents(args) => incidents::run(args),
    }
}
