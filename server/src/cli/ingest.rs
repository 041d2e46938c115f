//! `theta ingest`: EDF/EDF+/BDF/BDF+ files into a store, one JSON line per file.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;
use theta_engine::edf::ReadOptions;
use theta_engine::store::{EdfSource, IngestOptions, Progress, TenantId};

use super::store::{CliError, EXIT_OK, StoreArgs, run_async, write_stdout};

/// `theta ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Tenant (partner establishment) the recordings belong to.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Refuse files with defects the lenient reader would accept with a warning.
    #[arg(long)]
    pub strict: bool,
    /// EDF/EDF+/BDF/BDF+ files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Ingests every file; all headers are checked before anything is written, so a bad file
/// changes nothing.
pub fn run(args: IngestArgs) -> i32 {
    run_async(async move {
        let tenant = TenantId::new(args.tenant.clone())?;
        let options = if args.strict {
            ReadOptions::strict()
        } else {
            ReadOptions::default()
        };
        let mut sources = Vec::with_capacity(args.files.len());
        for f in &args.files {
            let src = EdfSource::open(f, options)
                .map_err(|e| CliError::bad_input(format!("{}: {e}", f.display())))?;
            for w in src.warnings() {
                eprintln!("theta: warning: {}: {w}", f.display());
            }
            sources.push(src);
        }
        let store = args.store.open().await?;
        for (file, src) in args.files.iter().zip(sources) {
            let opts = IngestOptions {
                tenant: tenant.clone(),
                source_name: file.file_name().map(|n| n.to_string_lossy().into_owned()),
                progress: Progress::Terminal,
                ..Default::default()
            };
            let report = store.ingest(src, opts).await.map_err(|e| {
                let mut err = CliError::from(e);
                err.message = format!("{}: {}", file.display(), err.message);
                err
            })?;
            let line = json!({
                "file": file.display().to_string(),
                "recording_id": report.recording.to_string(),
                "signals": report.signals,
                "duration": report.duration,
                "raw_bytes": report.raw_bytes,
                "stored_bytes": report.stored_bytes,
            });
            write_stdout(format!("{line}\n").as_bytes())?;
        }
        Ok(EXIT_OK)
    })
}
