//! The tamper-evident trail as an [`AuditSink`]: events go to the engine's [`AuditAppender`]
//! (one background writer, a SQLite transaction per batch, hash chain, Ed25519 checkpoints).
//!
//! The profile decides where the log and its signing key live ([`trail_config`]). The key is
//! tagged with the environment and kept outside the log's folder; the dev profile generates it
//! under `<data_dir>/keys/`, every other profile must be given one made for its environment, so a
//! development key can never sign production records.
//!
//! The command line writes to the same file (each batch is one `BEGIN IMMEDIATE` transaction,
//! so the service and the CLI keep one linear chain). It acts as the service actor
//! `cli:<OS user>` ([`cli_actor`]): the OS account is who ran the command; a person's platform
//! account is never borrowed by a shell.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use theta_engine::audit::{
    AppenderOptions, AppenderStats, AuditAppender, AuditConfig, AuditLog, AuditLogOptions,
    AuditSigningKey, Environment, Retention,
};

use super::{AuditEvent, AuditSink, SinkHealth, log_event};
use crate::config::Settings;
use crate::error::{Error, Result};

/// Prefix of the command line's actor id.
pub const CLI_ACTOR_PREFIX: &str = "cli:";

/// The engine configuration of the profile's audit log.
///
/// # Errors
/// [`Error::Config`] for a bad environment tag or retention, or a missing signing key outside
/// the dev profile.
pub fn trail_config(settings: &Settings) -> Result<AuditConfig> {
    let here = || format!("<profile {}>", settings.name);
    let environment = Environment::try_new(&settings.environment())
        .map_err(|e| Error::config(here(), e.to_string()))?;
    let retention = Retention::days(settings.audit.retention_days)
        .map_err(|e| Error::config(here(), e.to_string()))?;
    let signing_key_path = settings.audit_key_path().ok_or_else(|| {
        Error::config(
            here(),
            "audit.signing_key is required outside the dev profile (make one with `theta audit keygen --out FILE`)",
        )
    })?;
    Ok(AuditConfig {
        log_path: settings.audit_log_path(),
        signing_key_path,
        verify_key_path: None,
        environment,
        options: AuditLogOptions::default()
            .with_retention(retention)
            .with_checkpoint_every_events(settings.audit.checkpoint_every_events)
            .with_checkpoint_interval(Duration::from_secs(settings.audit.checkpoint_interval_secs)),
    })
}

/// Opens (creating if needed) the profile's audit log for writing. In dev the signing key is
/// generated on first use.
///
/// # Errors
/// [`Error::Config`] / [`Error::Audit`] when the key is missing, of another environment, readable
/// by others or stored beside the log, or the log is damaged at its head.
pub fn open_log(settings: &Settings) -> Result<AuditLog> {
    let config = trail_config(settings)?;
    for dir in [config.log_path.parent(), config.signing_key_path.parent()]
        .into_iter()
        .flatten()
    {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            create_private_dir(dir)?;
        }
    }
    if settings.kind() == crate::config::ProfileKind::Dev {
        AuditSigningKey::load_or_generate(&config.signing_key_path, &config.environment)?;
    } else if !config.signing_key_path.exists() {
        return Err(Error::config(
            format!("<profile {}>", settings.name),
            format!(
                "audit signing key {} does not exist (make one with `theta audit keygen --profile {} --out FILE`)",
                config.signing_key_path.display(),
                settings.name
            ),
        ));
    }
    Ok(AuditLog::open(&config)?)
}

fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| Error::io(dir, e))
}

/// The actor id of the command line: `cli:<OS user name>` (or `cli:uid-<n>` when the name cannot
/// be found or is not a valid id).
pub fn cli_actor() -> String {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        });
    let name = uid.as_deref().and_then(|uid| {
        std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let _ = f.next();
                (f.next()? == uid).then(|| name.to_owned())
            })
        })
    });
    let name = name.or_else(|| std::env::var("USER").ok()).filter(|n| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    match (name, uid) {
        (Some(n), _) => format!("{CLI_ACTOR_PREFIX}{n}"),
        (None, Some(u)) => format!("{CLI_ACTOR_PREFIX}uid-{u}"),
        (None, None) => format!("{CLI_ACTOR_PREFIX}unknown"),
    }
}

/// The hash-chained audit trail as a sink.
#[derive(Debug)]
pub struct TrailSink {
    appender: Mutex<Option<AuditAppender>>,
    log_path: std::path::PathBuf,
    dropped: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl TrailSink {
    /// Opens the profile's log and starts its background writer.
    ///
    /// # Errors
    /// As [`open_log`].
    pub fn open(settings: &Settings) -> Result<TrailSink> {
        let log = open_log(settings)?;
        let log_path = log.path().to_owned();
        let appender = AuditAppender::spawn(
            log,
            AppenderOptions {
                // The service's request path enqueues; waiting seconds for room on a tokio worker
                // would stall every request, so a full queue fails fast and is reported.
                enqueue_timeout: Duration::from_millis(500),
                ..AppenderOptions::default()
            },
        )?;
        Ok(TrailSink {
            appender: Mutex::new(Some(appender)),
            log_path,
            dropped: AtomicU64::new(0),
            failure: Mutex::new(None),
        })
    }

    /// The log file.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log_path
    }

    /// Writer counters.
    pub fn stats(&self) -> AppenderStats {
        self.with(|a| a.stats()).unwrap_or_default()
    }

    /// Events that could not be queued (they went to the error log instead).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn with<R>(&self, f: impl FnOnce(&AuditAppender) -> R) -> Option<R> {
        let g = self.appender.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(f)
    }

    /// Commits what is queued, signs a final checkpoint and stops the writer. Blocks: call it from
    /// `spawn_blocking` in async code.
    ///
    /// # Errors
    /// When queued events could not be stored.
    pub fn shutdown(&self) -> Result<()> {
        let taken = self
            .appender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match taken {
            Some(a) => Ok(a.shutdown()?),
            None => Ok(()),
        }
    }
}

impl AuditSink for TrailSink {
    fn record(&self, event: AuditEvent) {
        let engine_event = event.to_engine();
        let r = self.with(|a| a.append(engine_event)).unwrap_or_else(|| {
            Err(theta_engine::audit::AuditError::AppenderUnavailable {
                reason: "the trail is shut down".into(),
            })
        });
        if let Err(e) = r {
            // Not lost: the event goes to the error log (ids only), the failure is counted, and
            // readiness and the audit middleware refuse further work until the trail recovers.
            self.dropped.fetch_add(1, Ordering::Relaxed);
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            tracing::error!(target: "theta::audit", error = %e, "audit trail unavailable");
            log_event(&event, "audit event not stored in the trail");
        }
    }

    fn flush(&self) -> std::result::Result<(), String> {
        match self.with(|a| a.flush()) {
            Some(Ok(_)) => {
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Ok(())
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("the trail is shut down".into()),
        }
    }

    fn health(&self) -> SinkHealth {
        if let Some(f) = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            // A later successful commit clears an enqueue failure.
            let s = self.stats();
            if s.last_error.is_some() || s.committed < s.enqueued || !self.is_running() {
                return SinkHealth::Failing(f);
            }
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let s = self.stats();
        match (&s.last_error, self.is_running()) {
            (_, false) => SinkHealth::Failing("audit writer stopped".into()),
            (Some(e), _) => SinkHealth::Failing(e.clone()),
            (None, true) => SinkHealth::Ok,
        }
    }

    fn committed(&self) -> Option<u64> {
        Some(self.stats().committed)
    }
}

impl TrailSink {
    fn is_running(&self) -> bool {
        self.with(|a| a.is_running()).unwrap_or(false)
    }
}
