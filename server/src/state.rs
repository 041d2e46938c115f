//! Shared application state handed to every handler.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditSink, SinkHealth, TracingAuditSink};
use crate::auth::oidc::OidcRegistry;
use crate::clock::{Clock, SystemClock};
use crate::config::{IpNet, Settings};
use crate::data::DataStore;
use crate::db::Db;
use crate::error::Result;
use crate::exports::ExportJobs;
use crate::incidents::Incidents;
use crate::limits::{Gate, RateLimits};
use crate::metrics::Metrics;
use crate::secrets::SecretKey;

/// Everything handlers share: settings, database, clock, audit sink, OIDC providers.
/// Cheap to clone (all `Arc`s).
#[derive(Debug, Clone)]
pub struct AppState {
    settings: Arc<Settings>,
    db: Db,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
    trusted_proxies: Arc<Vec<IpNet>>,
    oidc: Arc<OidcRegistry>,
    secrets: Arc<SecretKey>,
    metrics: Arc<Metrics>,
    metrics_token: Option<Arc<zeroize::Zeroizing<String>>>,
    limits: Arc<RateLimits>,
    reads: Arc<Gate>,
    incidents: Arc<Incidents>,
    data: Option<DataStore>,
    exports: ExportJobs,
}

impl AppState {
    /// State over an open database with the system clock and the tracing audit sink (`theta
    /// serve` swaps in the hash-chained [`crate::audit::TrailSink`]). Loads (in dev, creates) the
    /// secrets key; restores the incident detectors' locks.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for bad proxy blocks, OIDC settings, secrets key or webhooks.
    pub fn new(settings: Settings, db: Db) -> Result<AppState> {
        let trusted = settings.trusted_proxies()?;
        let oidc = OidcRegistry::from_settings(&settings)?;
        let secrets = SecretKey::for_settings(&settings)?;
        let metrics = Arc::new(Metrics::new());
        let incidents = Incidents::new(&settings, db.clone(), Arc::clone(&metrics))?;
        let exports = ExportJobs::open(&settings, db.clone())?;
        let limits = RateLimits::new(
            settings.http.rate_per_address,
            settings.http.rate_per_account,
        );
        let metrics_token = match &settings.metrics.token_file {
            Some(p) => {
                let t = zeroize::Zeroizing::new(
                    std::fs::read_to_string(p).map_err(|e| crate::error::Error::io(p, e))?,
                );
                let t = zeroize::Zeroizing::new(t.trim().to_owned());
                if t.len() < 16 {
                    return Err(crate::error::Error::config(
                        p,
                        "the metrics token must be at least 16 characters",
                    ));
                }
                Some(Arc::new(t))
            }
            None => None,
        };
        let reads = Arc::new(Gate::new(settings.http.max_concurrent_reads));
        Ok(AppState {
            settings: Arc::new(settings),
            db,
            clock: Arc::new(SystemClock),
            audit: Arc::new(TracingAuditSink),
            trusted_proxies: Arc::new(trusted),
            oidc: Arc::new(oidc),
            secrets: Arc::new(secrets),
            metrics,
            metrics_token,
            limits: Arc::new(limits),
            reads,
            incidents: Arc::new(incidents),
            data: None,
            exports,
        })
    }

    /// Replaces the incident service (tests shorten the webhook back-off).
    #[must_use]
    pub fn with_incidents(mut self, incidents: Incidents) -> Self {
        self.incidents = Arc::new(incidents);
        self
    }

    /// Replaces the clock (tests inject a [`crate::clock::ManualClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the audit sink (the tamper-evident trail of issue 7 plugs in here).
    #[must_use]
    pub fn with_audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// Attaches the recording store (the data endpoints answer 503 without one).
    #[must_use]
    pub fn with_data(mut self, data: DataStore) -> Self {
        self.data = Some(data);
        self
    }

    /// The recording store, when attached.
    pub fn data(&self) -> Option<&DataStore> {
        self.data.as_ref()
    }

    /// The research export jobs.
    pub fn exports(&self) -> &ExportJobs {
        &self.exports
    }

    /// Settings of the running profile.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The account database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Now, from the state's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Records an audit event: to the sink, counted against the current request (see
    /// [`crate::audit::RequestAudit`]), and fed to the incident detectors.
    pub fn audit(&self, event: AuditEvent) {
        crate::audit::scope::note_written(&event);
        self.metrics.audit_event();
        self.audit.record(event.clone());
        // After the event itself, so what the detectors write (account.lock, incident.create)
        // follows it in the trail.
        self.incidents.observe(self, &event);
    }

    /// The audit sink.
    pub fn audit_sink(&self) -> &dyn AuditSink {
        &*self.audit
    }

    /// Whether audit events are being stored (updates the `theta_audit_sink_failing` gauge).
    pub fn audit_health(&self) -> SinkHealth {
        let h = self.audit.health();
        self.metrics.set_audit_failing(h != SinkHealth::Ok);
        h
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The `/metrics` scrape token, when configured.
    pub(crate) fn metrics_token(&self) -> Option<&str> {
        self.metrics_token.as_deref().map(|t| t.as_str())
    }

    /// The rate limits.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// The gate of window, page and spectrum computations (`http.max_concurrent_reads`).
    pub fn reads(&self) -> &Gate {
        &self.reads
    }

    /// The incident service.
    pub fn incidents(&self) -> &Incidents {
        &self.incidents
    }

    /// The key sealing secrets at rest.
    pub fn secrets(&self) -> &SecretKey {
        &self.secrets
    }

    pub(crate) fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted_proxies
    }

    pub(crate) fn oidc(&self) -> &OidcRegistry {
        &self.oidc
    }
}
