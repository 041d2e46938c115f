//! The audit of the store commands (`theta init|ingest|ls|window|overview|verify|keys|shred`).
//!
//! Those commands name a store folder, not a service profile, so the trail they write to is the
//! profile named by `THETA_CONFIG` (the service's TOML file) and `THETA_PROFILE` (optional). When
//! it is set, the trail must open before anything is done (nothing runs unaudited), and one event
//! is written after the command with its outcome, by the command line's actor `cli:<OS user>`:
//!
//! | command | action | ids |
//! |---|---|---|
//! | `init` | `key.create` | resource `key:store` |
//! | `ingest` | `recording.create` | tenant |
//! | `ls` | `recording.list` | — |
//! | `window` | `recording.read_window` | recording |
//! | `overview` | `recording.overview` | recording |
//! | `verify` | `admin.maintenance` (failure `integrity_failure` when it finds bad chunks) | — |
//! | `keys rotate` | `key.rotate` | resource `key:store` |
//! | `shred` | `key.shred` | recording |
//!
//! A `verify` that finds chunks failing authentication also opens (or updates) a P1 `integrity`
//! incident in the profile's register and sends it at once to the profile's webhooks (with their
//! retries), exactly as the service would: the outcome is in the incident's timeline, and the
//! incident becomes `notified` when every webhook acknowledged it.
//!
//! Without `THETA_CONFIG` the command runs and says on stderr that it was not audited (a
//! researcher's local store); production hosts set it in the service account's environment.

use super::Command;
use super::audit::{cli_event, record};
use crate::audit::{AuditAction, AuditEvent, Outcome, Reason, ResourceKind};
use crate::config::Settings;

/// Environment variable naming the service configuration whose audit trail the store commands
/// write to.
pub const CONFIG_ENV: &str = "THETA_CONFIG";
/// Environment variable naming the profile in [`CONFIG_ENV`] (default: the file's `profile`).
pub const PROFILE_ENV: &str = "THETA_PROFILE";

/// The audit event a store command writes (before its outcome is known), or `None` for a
/// command that is not a store command.
pub fn event_for(command: &Command) -> Option<AuditEvent> {
    let e = match command {
        Command::Init(_) => cli_event(AuditAction::KeyCreate).resource(ResourceKind::Key, "store"),
        Command::Ingest(a) => {
            let mut e = cli_event(AuditAction::RecordingCreate);
            e.tenant_id = Some(a.tenant.clone());
            e
        }
        Command::Ls(_) => cli_event(AuditAction::RecordingList),
        Command::Window(a) => {
            let mut e = cli_event(AuditAction::RecordingReadWindow);
            e.recording_id = Some(a.recording.clone());
            e
        }
        Command::Overview(a) => {
            let mut e = cli_event(AuditAction::RecordingOverview);
            e.recording_id = Some(a.recording.clone());
            e
        }
        Command::Psd(a) => {
            let mut e = cli_event(AuditAction::RecordingPsd);
            e.recording_id = Some(a.recording.clone());
            e
        }
        Command::Sql(a) => {
            // The query by digest only: its text may quote identifying values.
            use sha2::Digest;
            let digest = hex::encode(&sha2::Sha256::digest(a.query.as_bytes())[..16]);
            let mut e = cli_event(AuditAction::SqlQuery).resource(ResourceKind::Query, digest);
            e.tenant_id = Some(a.tenant.join(","));
            e
        }
        Command::Export(a) => {
            let mut e = cli_event(AuditAction::ExportStart)
                .resource(ResourceKind::Export, a.project.clone());
            e.tenant_id = Some(a.tenant.join(","));
            e
        }
        Command::Verify(_) => cli_event(AuditAction::AdminMaintenance),
        Command::Keys(_) => cli_event(AuditAction::KeyRotate).resource(ResourceKind::Key, "store"),
        Command::Shred(a) => {
            let mut e = cli_event(AuditAction::KeyShred);
            e.recording_id = Some(a.recording.clone());
            e
        }
        _ => return None,
    };
    Some(e)
}

/// Runs a store command under the audit of [`CONFIG_ENV`]'s profile; other commands run as is.
pub fn run_audited(command: Command, run: impl FnOnce(Command) -> i32) -> i32 {
    let Some(mut event) = event_for(&command) else {
        return run(command);
    };
    let Some(config) = std::env::var_os(CONFIG_ENV) else {
        eprintln!(
            "theta: not audited (set {CONFIG_ENV} to the service configuration to record store commands in its audit trail)"
        );
        return run(command);
    };
    let profile = std::env::var(PROFILE_ENV).ok();
    let settings = match Settings::load(std::path::Path::new(&config), profile.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("theta: {CONFIG_ENV}: {e}");
            return 2;
        }
    };
    // Nothing is done that could not be audited.
    if let Err(e) = crate::audit::open_log(&settings) {
        eprintln!("theta: the audit trail cannot be opened, nothing done: {e}");
        return 1;
    }
    let verify = matches!(command, Command::Verify(_));
    let code = run(command);
    if code != 0 {
        let reason = match (code, verify) {
            (1, true) => Reason::IntegrityFailure,
            (2, _) => Reason::InvalidRequest,
            _ => Reason::InternalError,
        };
        event = event.outcome(Outcome::Failure, Some(reason));
    } else {
        event = event.outcome(Outcome::Success, None);
    }
    if verify && code == 1 {
        report_integrity(&settings);
    }
    if let Err(e) = record(&settings, &event) {
        eprintln!("theta: the command ran but its audit event could not be written: {e}");
        return if code == 0 { 1 } else { code };
    }
    code
}

/// Opens or updates the P1 `integrity` incident for a failed store verification.
fn report_integrity(settings: &Settings) {
    use crate::incidents::{Category, Detection, IndicatorKind, Priority, register};
    let det = Detection::new(
        Category::Integrity,
        Priority::P1,
        chrono::Utc::now(),
        "theta verify found stored chunks that fail authentication or decoding",
    )
    .indicator(IndicatorKind::Resource, "store");
    let actor = crate::audit::cli_actor();
    let r = crate::serve::open_db(settings).and_then(|db| {
        let up = db.call_blocking(|c| register::upsert(c, &det, &actor))?;
        Ok((db, up))
    });
    match r {
        Ok((db, up)) => {
            let action = if up.created {
                AuditAction::IncidentCreate
            } else {
                AuditAction::IncidentUpdate
            };
            let e = cli_event(action).resource(ResourceKind::Incident, up.incident.id.clone());
            if let Err(err) = record(settings, &e) {
                eprintln!(
                    "theta: integrity incident {} opened; not audited: {err}",
                    up.incident.id
                );
            }
            eprintln!(
                "theta: P1 integrity incident {} (notify the partner by {})",
                up.incident.id,
                up.incident.deadline_at.to_rfc3339()
            );
            if let Some(event) = up.notification() {
                notify_partner(settings, &db, &up.incident.id, event);
            }
        }
        Err(e) => eprintln!("theta: the integrity incident could not be recorded: {e}"),
    }
}

/// Sends a new or escalated incident to the profile's webhooks and reports the outcome on stderr.
fn notify_partner(settings: &Settings, db: &crate::db::Db, id: &str, event: &'static str) {
    use crate::incidents::{deliver, notify::Hook};
    let hooks = match Hook::all(settings) {
        Ok(h) if h.is_empty() => return,
        Ok(h) => h,
        Err(e) => {
            eprintln!("theta: incident {id} not sent to the partner, webhook settings: {e}");
            return;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("theta: incident {id} not sent to the partner: {e}");
            return;
        }
    };
    let environment = settings.environment();
    let outcomes = rt.block_on(deliver(
        db,
        &hooks,
        &environment,
        id,
        event,
        &chrono::Utc::now,
        &|_| {},
    ));
    for o in &outcomes {
        if o.delivered {
            eprintln!(
                "theta: incident {id} delivered to the {} webhook ({} attempt(s))",
                o.tenant, o.attempts
            );
        } else {
            eprintln!(
                "theta: incident {id} NOT delivered to the {} webhook after {} attempt(s); \
                 notify the partner by hand (see `theta incidents show {id}`)",
                o.tenant, o.attempts
            );
        }
        if o.became_notified {
            let e = cli_event(AuditAction::IncidentUpdate).resource(ResourceKind::Incident, id);
            if let Err(err) = record(settings, &e) {
                eprintln!("theta: incident {id} notified; not audited: {err}");
            }
        }
    }
}
