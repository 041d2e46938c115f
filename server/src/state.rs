//! Shared application state handed to every handler.

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditSink, TracingAuditSink};
use crate::auth::oidc::OidcRegistry;
use crate::clock::{Clock, SystemClock};
use crate::config::{IpNet, Settings};
use crate::data::DataStore;
use crate::db::Db;
use crate::error::Result;
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
    data: Option<DataStore>,
}

impl AppState {
    /// State over an open database with the system clock and the tracing audit sink. Loads (in
    /// dev, creates) the secrets key.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for bad proxy blocks, OIDC settings or secrets key.
    pub fn new(settings: Settings, db: Db) -> Result<AppState> {
        let trusted = settings.trusted_proxies()?;
        let oidc = OidcRegistry::from_settings(&settings)?;
        let secrets = SecretKey::for_settings(&settings)?;
        Ok(AppState {
            settings: Arc::new(settings),
            db,
            clock: Arc::new(SystemClock),
            audit: Arc::new(TracingAuditSink),
            trusted_proxies: Arc::new(trusted),
            oidc: Arc::new(oidc),
            secrets: Arc::new(secrets),
            data: None,
        })
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

    /// Records an audit event.
    pub fn audit(&self, event: AuditEvent) {
        self.audit.record(event);
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
