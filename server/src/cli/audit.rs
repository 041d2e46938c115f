//! `theta audit verify|export|purge|keygen`, and [`record`], which every command touching health
//! data or administration uses to write its own audit event.
//!
//! The command line audits as the service actor `cli:<OS user>` (see
//! [`crate::audit::cli_actor`]): the OS account is who typed the command, and a shell never
//! borrows a person's platform account. Its events go to the same hash-chained log as the
//! service's (one `BEGIN IMMEDIATE` transaction per append, so the chain stays linear while
//! `theta serve` runs), durably before the command reports success.
//!
//! Exit codes: 0 done (for `verify`: the chain and every signature hold), 1 a finding or a
//! failure, 2 bad arguments or configuration.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Subcommand, ValueEnum};
use theta_engine::audit::{
    self as engine, AuditReader, AuditSigningKey, AuditVerifyKeys, Environment, ExportFilter,
    ExportFormat, Requester,
};

use crate::audit::{Actor, AuditAction, AuditEvent, Outcome, ResourceKind, cli_actor, open_log};
use crate::config::Settings;
use crate::error::{Error, Result};

/// Arguments of `theta audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Configuration file (TOML with profiles).
    #[arg(long, global = true, default_value = "theta.toml")]
    pub config: PathBuf,
    /// Profile (defaults to the file's `profile` field).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// `theta audit` sub-commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole chain and every signature; report the first modified, deleted, inserted
    /// or reordered event. Exit 1 on a finding.
    Verify {
        /// Verify this log file instead of the profile's (e.g. an archived copy); no
        /// configuration is read and no event is recorded.
        #[arg(long)]
        log: Option<PathBuf>,
        /// Trusted verify keys (one `theta-audit-verify-key v1 …` line each); defaults to the
        /// profile's `audit.verify_keys`, then to the keys published beside the log.
        #[arg(long)]
        keys: Option<PathBuf>,
    },
    /// Export events (ids and codes only) as JSON Lines or CSV. The export is itself audited.
    Export {
        /// Events at or after (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        from: Option<String>,
        /// Events before (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long)]
        to: Option<String>,
        /// Only this actor (account id, attempted user name, service id).
        #[arg(long)]
        actor: Option<String>,
        /// Only this recording.
        #[arg(long)]
        recording: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete events older than the profile's retention (at least 365 days), leaving a signed
    /// anchor so the rest still verifies; the purge is itself audited.
    Purge,
    /// Make a new audit signing key for the profile's environment (mode 0600; keep it apart from
    /// the data). Refuses to overwrite.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header line.
    Csv,
}

/// Runs `theta audit`. Returns the exit code.
pub fn run(args: AuditArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("theta audit: {e}");
            match e {
                Error::Invalid { .. } | Error::Config { .. } => 2,
                _ => 1,
            }
        }
    }
}

fn run_inner(args: AuditArgs) -> Result<i32> {
    if let AuditCommand::Verify {
        log: Some(log),
        keys,
    } = &args.command
    {
        return verify_file(log, keys.as_deref(), None);
    }
    let settings = Settings::load(&args.config, args.profile.as_deref())?;
    match args.command {
        AuditCommand::Verify { keys, .. } => {
            let keys = keys.or_else(|| settings.audit.verify_keys.clone());
            verify_file(&settings.audit_log_path(), keys.as_deref(), Some(&settings))
        }
        AuditCommand::Export {
            from,
            to,
            actor,
            recording,
            tenant,
            format,
            out,
        } => {
            let filter = ExportFilter {
                from: from.as_deref().map(|s| parse_time("from", s)).transpose()?,
                to: to.as_deref().map(|s| parse_time("to", s)).transpose()?,
                actor: actor.clone(),
                recording: recording.clone(),
                tenant: tenant.clone(),
            };
            let format = match format {
                Format::Jsonl => ExportFormat::Jsonl,
                Format::Csv => ExportFormat::Csv,
            };
            let path = settings.audit_log_path();
            let mut reader = AuditReader::open(&path)?;
            // Recorded before a byte leaves, as the API does.
            let mut e = cli_event(AuditAction::AuditExport);
            e.tenant_id = tenant;
            e.recording_id = recording;
            if let Some(a) = actor {
                e.resource = Some((ResourceKind::Account, a));
            }
            record(&settings, &e)?;
            let summary = match &out {
                Some(p) => {
                    let f = std::fs::File::create(p).map_err(|e| Error::io(p, e))?;
                    let mut w = std::io::BufWriter::new(f);
                    let s = reader.export(&filter, format, &mut w)?;
                    w.flush().map_err(|e| Error::io(p, e))?;
                    s
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut w = std::io::BufWriter::new(stdout.lock());
                    let s = reader.export(&filter, format, &mut w)?;
                    w.flush().map_err(|e| Error::io("<stdout>", e))?;
                    s
                }
            };
            eprintln!("theta audit export: {} events", summary.events);
            Ok(0)
        }
        AuditCommand::Purge => {
            let mut log = open_log(&settings)?;
            let by = Requester {
                actor: engine::Actor::service(&cli_actor())?,
                session: None,
                origin: engine::Origin::new(None::<IpAddr>, None),
            };
            let r = log.purge_expired(Utc::now(), &by)?;
            println!(
                "purged {} events older than {} (retention {} days); purge recorded as event {}",
                r.purged,
                r.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                settings.audit.retention_days,
                r.purge_event_seq
            );
            Ok(0)
        }
        AuditCommand::Keygen { out } => {
            let env = Environment::try_new(&settings.environment())
                .map_err(|e| Error::config(&args.config, e.to_string()))?;
            let key = AuditSigningKey::generate(env)?;
            key.write_new(&out)?;
            println!(
                "audit signing key {} for environment {:?} written to {}",
                key.key_id().as_str(),
                settings.environment(),
                out.display()
            );
            println!("verify key: {}", key.verify_key().to_line());
            Ok(0)
        }
    }
}

/// Verifies `log`; prints the report. With `settings`, the verification is recorded
/// (`audit.verify`, failure with `integrity_failure` on a finding) when the log still accepts
/// appends.
fn verify_file(log: &Path, keys: Option<&Path>, settings: Option<&Settings>) -> Result<i32> {
    let pinned = match keys {
        Some(k) => AuditVerifyKeys::load(k)?,
        None => AuditVerifyKeys::default(),
    };
    let report = engine::verify_log(log, &pinned)?;
    let ok = report.is_ok();
    if ok {
        println!("{report}");
    } else {
        println!("FAILED: {report}");
        if let Some(c) = &report.chain {
            println!("first finding: {} at event {}: {c}", c.kind(), c.seq());
        }
        for s in &report.signatures {
            println!("bad signature: {s}");
        }
    }
    if let Some(settings) = settings {
        let mut e = cli_event(AuditAction::AuditVerify);
        if !ok {
            e.outcome = Outcome::Failure;
            e.reason = Some(crate::audit::Reason::IntegrityFailure);
        }
        // A damaged head refuses appends: the finding above is what matters then.
        if let Err(err) = record(settings, &e) {
            eprintln!("theta audit verify: the verification could not be recorded: {err}");
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// An event by the command line's actor, now.
pub fn cli_event(action: AuditAction) -> AuditEvent {
    let mut e = AuditEvent::new(Utc::now(), action);
    e.actor = Actor::Service(cli_actor());
    e
}

/// Writes one event to the profile's audit log, durably, before returning.
///
/// # Errors
/// The log cannot be opened (missing key, another environment) or refuses the append.
pub fn record(settings: &Settings, event: &AuditEvent) -> Result<()> {
    let mut log = open_log(settings)?;
    log.append(&[event.to_engine()])?;
    Ok(())
}

/// Parses an RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
///
/// # Errors
/// [`Error::Invalid`] naming `field`.
pub fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| Error::invalid(field, "an RFC 3339 time or a YYYY-MM-DD date"))
}
