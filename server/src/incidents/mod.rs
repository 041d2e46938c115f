//! Security incidents (security plan §6): detectors on the audit event stream, automatic
//! responses (account locks, address throttles), a register with the plan's priorities and
//! notification deadlines, partner notification by webhook, and the alert metric.
//!
//! ```text
//!  AppState::audit(event) ──▶ detect::Engine::observe ──▶ Detection (+ lock set at once, in memory)
//!  rate limiter refusals ──▶ observe_rate_limited              │
//!  store integrity errors ──▶ Incidents::report                 ▼ queue (one worker: no duplicates)
//!  periodic audit verify ──▶ Incidents::report      persist lock · register::upsert · audit
//!                                                    incident.create/update · webhook (retries)
//! ```
//!
//! Priorities (plan §6.4): **P1** — health-data compromise, company-wide denial of service,
//! ransomware, unauthorised access to critical systems: notify within 12 hours; **P2** — portal
//! compromise, brute force, small-scale denial of service: 24 hours; **P3** — isolated infection:
//! 72 hours (calendar hours, from detection).
//!
//! | category | priority | source |
//! |---|---|---|
//! | `integrity` | P1 | the store reports a chunk that fails authentication (stored health data altered) |
//! | `audit_chain` | P1 | the audit trail's verification finds a modification (a critical system was reached) |
//! | `dos_wide` | P1 | many addresses refused by the rate limiter at once |
//! | `brute_force` | P2 | repeated failed logins on an account or from an address |
//! | `credential_stuffing` | P2 | failed logins on many accounts from one address |
//! | `dos_small` | P2 | one address flooding |
//! | `access_denials` | P2 | a burst of refusals by one account or from one address (probing) |
//! | `malware`, `manual` | P3 / any | recorded by an operator (`theta incidents open`) |

pub mod detect;
pub mod notify;
pub mod register;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use crate::audit::{Actor, AuditAction, AuditEvent, Outcome, Reason, ResourceKind};
use crate::config::Settings;
use crate::db::Db;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::AppState;
use detect::{Engine, LockScope, LockState, NewLock};
use notify::Hook;
pub use register::{Incident, IncidentDetail, ListFilter, TrendReport};

/// The actor id of the detectors in the audit trail and the incident timeline.
pub const SERVICE_ACTOR: &str = "incidents";

/// Priority per the security plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Major impact on medical operations: notify within 12 h.
    P1,
    /// Important or potentially serious impact: 24 h.
    P2,
    /// Minimal impact: 72 h.
    P3,
}

impl Priority {
    /// 1, 2 or 3.
    pub fn level(self) -> i64 {
        match self {
            Priority::P1 => 1,
            Priority::P2 => 2,
            Priority::P3 => 3,
        }
    }

    /// From 1, 2 or 3.
    pub fn from_level(l: i64) -> Option<Self> {
        match l {
            1 => Some(Priority::P1),
            2 => Some(Priority::P2),
            3 => Some(Priority::P3),
            _ => None,
        }
    }

    /// `P1`, `P2`, `P3`.
    pub fn code(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
        }
    }

    /// From `P1`/`p1`/`1`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().trim_start_matches(['P', 'p']) {
            "1" => Some(Priority::P1),
            "2" => Some(Priority::P2),
            "3" => Some(Priority::P3),
            _ => None,
        }
    }

    /// Time allowed between detection and the partner's notification (plan §6.4).
    pub fn notification_delay(self) -> Duration {
        match self {
            Priority::P1 => Duration::hours(12),
            Priority::P2 => Duration::hours(24),
            Priority::P3 => Duration::hours(72),
        }
    }
}

macro_rules! code_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident => $code:literal,)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v,)+ }
        impl $name {
            /// Every variant.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];
            /// Stored code.
            pub fn code(self) -> &'static str { match self { $($name::$v => $code,)+ } }
            /// From a stored code.
            pub fn from_code(s: &str) -> Option<Self> { match s { $($code => Some($name::$v),)+ _ => None } }
        }
    };
}

code_enum! {
    /// What kind of incident.
    pub enum Category {
        /// Repeated failed logins on an account or from an address.
        BruteForce => "brute_force",
        /// Failed logins across many accounts from one address.
        CredentialStuffing => "credential_stuffing",
        /// One address flooding the service.
        DosSmall => "dos_small",
        /// Many addresses flooding the service at once.
        DosWide => "dos_wide",
        /// Stored health data failed an integrity check.
        Integrity => "integrity",
        /// The audit trail's chain or signatures do not verify.
        AuditChain => "audit_chain",
        /// A burst of access denials (probing, or a compromised account).
        AccessDenials => "access_denials",
        /// An infection reported by an operator.
        Malware => "malware",
        /// Anything else an operator records.
        Manual => "manual",
    }
}

impl Category {
    /// A fixed phrase (the only summary stored and sent: no data).
    pub fn summary(self) -> &'static str {
        match self {
            Category::BruteForce => {
                "Brute force: repeated failed logins against an account or from an address"
            }
            Category::CredentialStuffing => {
                "Credential stuffing: failed logins across many accounts from one address"
            }
            Category::DosSmall => {
                "Small-scale denial of service: one address exceeding the request rate"
            }
            Category::DosWide => {
                "Denial of service affecting the whole platform: many addresses exceeding the request rate"
            }
            Category::Integrity => "Integrity failure of stored health data (possible alteration)",
            Category::AuditChain => {
                "The audit trail does not verify (possible tampering with a critical system)"
            }
            Category::AccessDenials => "Burst of access denials (probing or a compromised account)",
            Category::Malware => "Infection reported by an operator",
            Category::Manual => "Security incident recorded by an operator",
        }
    }
}

code_enum! {
    /// Where an incident stands.
    pub enum Status {
        /// Detected, partner not yet notified.
        Open => "open",
        /// The partner was notified.
        Notified => "notified",
        /// The threat is contained.
        Contained => "contained",
        /// Closed.
        Closed => "closed",
    }
}

code_enum! {
    /// Kind of an indicator of compromise.
    pub enum IndicatorKind {
        /// An account id.
        Account => "account",
        /// A user name typed at failed logins (no such account, or before lookup).
        Username => "username",
        /// A client address.
        Address => "address",
        /// A tenant.
        Tenant => "tenant",
        /// A recording.
        Recording => "recording",
        /// Another resource (`chunk:…`, `audit_seq:…`).
        Resource => "resource",
    }
}

/// An indicator of compromise (ids and addresses only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Indicator {
    /// Kind.
    pub kind: IndicatorKind,
    /// Value.
    pub value: String,
}

impl Indicator {
    /// An indicator.
    pub fn new(kind: IndicatorKind, value: impl Into<String>) -> Self {
        Indicator {
            kind,
            value: value.into(),
        }
    }

    /// A client address.
    pub fn address(a: IpAddr) -> Self {
        Self::new(IndicatorKind::Address, a.to_string())
    }
}

/// What a detector (or an operator) saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// Category.
    pub category: Category,
    /// Priority.
    pub priority: Priority,
    /// When.
    pub at: DateTime<Utc>,
    /// Tenant concerned, when known.
    pub tenant: Option<String>,
    /// Indicators.
    pub indicators: Vec<Indicator>,
    /// What was seen (counts and windows; no data).
    pub detail: String,
    /// Automatic responses taken (for the timeline).
    pub responses: Vec<String>,
    /// The account key locked by this detection, if any (audited as `account.lock`).
    pub lock_account: Option<String>,
}

impl Detection {
    /// A detection with no automatic response.
    pub fn new(
        category: Category,
        priority: Priority,
        at: DateTime<Utc>,
        detail: impl Into<String>,
    ) -> Self {
        Detection {
            category,
            priority,
            at,
            tenant: None,
            indicators: Vec::new(),
            detail: detail.into(),
            responses: Vec::new(),
            lock_account: None,
        }
    }

    /// Adds an indicator.
    #[must_use]
    pub fn indicator(mut self, kind: IndicatorKind, value: impl Into<String>) -> Self {
        self.indicators.push(Indicator::new(kind, value));
        self
    }

    /// Sets the tenant.
    #[must_use]
    pub fn tenant(mut self, t: Option<String>) -> Self {
        self.tenant = t;
        self
    }
}

enum Job {
    Detection(Detection, Vec<NewLock>),
}

/// The incident service of one process: detectors, guard, register worker, notifier.
pub struct Incidents {
    engine: Engine,
    db: Db,
    metrics: Arc<Metrics>,
    hooks: Vec<Hook>,
    environment: String,
    warning: Duration,
    tx: mpsc::UnboundedSender<Job>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    pending: AtomicUsize,
    idle: Notify,
}

impl std::fmt::Debug for Incidents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incidents")
            .field("hooks", &self.hooks)
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Incidents {
    /// The service for a profile over its database; restores recent locks.
    ///
    /// # Errors
    /// Unreadable webhook secrets or CA bundles; database errors.
    pub fn new(settings: &Settings, db: Db, metrics: Arc<Metrics>) -> Result<Incidents> {
        let hooks = Hook::all(settings)?;
        let engine = Engine::new(settings.incidents.clone());
        let since = Utc::now() - Duration::hours(48);
        for (scope, key, level, until, set_at) in
            db.call_blocking(|c| register::load_locks(c, since))?
        {
            let scope = match scope.as_str() {
                "account" => LockScope::Account,
                _ => LockScope::Address,
            };
            engine.restore(
                scope,
                key,
                LockState {
                    level,
                    until,
                    set_at,
                },
            );
        }
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Incidents {
            engine,
            db,
            metrics,
            hooks,
            environment: settings.environment(),
            warning: Duration::seconds(
                i64::try_from(settings.incidents.deadline_warning_secs).unwrap_or(3 * 3600),
            ),
            tx,
            rx: Mutex::new(Some(rx)),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        })
    }

    /// Replaces the webhooks' first back-off (tests use milliseconds).
    pub fn set_first_backoff(&mut self, d: std::time::Duration) {
        for h in &mut self.hooks {
            h.first_backoff = d;
        }
    }

    /// The detectors and guard.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Seconds left on the lock of an account key (account id, or `u:` + user name).
    pub fn account_locked(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        self.engine.locked(LockScope::Account, key, now)
    }

    /// Seconds left on the login throttle of an address.
    pub fn address_throttled(&self, addr: IpAddr, now: DateTime<Utc>) -> Option<u64> {
        self.engine
            .locked(LockScope::Address, &addr.to_string(), now)
    }

    /// Lifts an account's lock (memory and database). Returns whether it was locked.
    ///
    /// # Errors
    /// Database errors.
    pub async fn unlock_account(&self, account_id: &str, now: DateTime<Utc>) -> Result<bool> {
        let was = self.engine.unlock(LockScope::Account, account_id, now);
        let key = account_id.to_owned();
        let stored = self
            .db
            .call(move |c| register::save_lock(c, "account", &key, 0, now, now).map(|()| true))
            .await?;
        Ok(was && stored)
    }

    /// Feeds an audit event to the detectors (called by `AppState::audit` for every event).
    pub fn observe(&self, state: &AppState, e: &AuditEvent) {
        if matches!(
            e.action,
            AuditAction::LoginFailure | AuditAction::LoginMfaFailure
        ) {
            self.metrics
                .auth_failure(e.reason.map_or("unknown", |r| r.code()));
        }
        for (d, locks) in self.engine.observe(e) {
            self.submit(state, Job::Detection(d, locks));
        }
    }

    /// Feeds a refusal by the rate limiter.
    pub fn observe_rate_limited(&self, state: &AppState, addr: IpAddr, now: DateTime<Utc>) {
        for d in self.engine.observe_rate_limited(addr, now) {
            self.submit(state, Job::Detection(d, vec![]));
        }
    }

    /// Reports a detection from outside the event stream (store integrity errors, the audit
    /// chain verification, an operator).
    pub fn report(&self, state: &AppState, d: Detection) {
        self.submit(state, Job::Detection(d, vec![]));
    }

    /// Reports an integrity failure of stored health data (the hook the store's callers use):
    /// P1 `integrity`, indicators tenant, recording and the failing part.
    pub fn report_integrity(
        &self,
        state: &AppState,
        tenant: Option<&str>,
        recording: Option<&str>,
        part: &str,
        detail: &str,
    ) {
        let mut d = Detection::new(Category::Integrity, Priority::P1, state.now(), detail)
            .tenant(tenant.map(str::to_owned))
            .indicator(IndicatorKind::Resource, part);
        if let Some(t) = tenant {
            d = d.indicator(IndicatorKind::Tenant, t);
        }
        if let Some(r) = recording {
            d = d.indicator(IndicatorKind::Recording, r);
        }
        self.report(state, d);
    }

    fn submit(&self, state: &AppState, job: Job) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                self.start_worker(state, &handle);
                if self.tx.send(job).is_err() {
                    self.done();
                }
            }
            Err(_) => {
                // No runtime (the command line): handle it here, on a private one.
                let st = state.clone();
                let r = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(async move { handle_job(&st, job, true).await }));
                if let Err(e) = r {
                    tracing::error!(error = %e, "incident handling failed");
                }
                self.done();
            }
        }
    }

    fn start_worker(&self, state: &AppState, handle: &tokio::runtime::Handle) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let state = state.clone();
        handle.spawn(async move {
            while let Some(job) = rx.recv().await {
                handle_job(&state, job, false).await;
                state.incidents().done();
            }
        });
    }

    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until every detection submitted so far is in the register and every notification
    /// started has finished (delivered or given up).
    pub async fn settle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
        }
    }

    /// Refreshes the incident gauges from the register.
    pub async fn refresh_metrics(&self, now: DateTime<Utc>) {
        let w = self.warning;
        match self
            .db
            .call(move |c| register::alert_counts(c, now, w))
            .await
        {
            Ok((open, near, past)) => self.metrics.set_incidents(open, near, past),
            Err(e) => tracing::error!(error = %e, "incident metrics refresh failed"),
        }
    }

    /// Sends again every notification still owed (see [`register::pending_notifications`])
    /// whose last try is older than `older_than`, as `incident.redelivery`, to the webhooks that
    /// have not acknowledged it; returns how many deliveries succeeded. The service runs it at
    /// start (a notification the command line could not deliver, or one cut short by a restart)
    /// and then with its hourly sweep, until the partner acknowledges or the incident is closed.
    pub async fn redeliver_pending(state: &AppState, older_than: Duration) -> usize {
        let inc = state.incidents();
        let before = state.now() - older_than;
        let pending = match state
            .db()
            .call(move |c| register::pending_notifications(c, before))
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "pending incident notifications");
                return 0;
            }
        };
        let mut delivered = 0;
        let mut by_incident: std::collections::BTreeMap<String, Vec<String>> =
            std::collections::BTreeMap::new();
        for (id, target) in pending {
            by_incident.entry(id).or_default().push(target);
        }
        for (id, targets) in by_incident {
            let hooks: Vec<Hook> = inc
                .hooks
                .iter()
                .filter(|h| targets.contains(&h.url))
                .cloned()
                .collect();
            if hooks.is_empty() {
                // The webhook was removed from the configuration: nothing to send it to.
                continue;
            }
            let outcomes = deliver_audited(state, &hooks, &id, "incident.redelivery").await;
            delivered += outcomes.iter().filter(|o| o.delivered).count();
        }
        inc.refresh_metrics(state.now()).await;
        delivered
    }

    /// Notifies the partners concerned by `id` (in the background, with retries).
    pub fn notify(&self, state: &AppState, id: &str, event: &'static str) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = id.to_owned();
        let st = state.clone();
        self.pending.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            notify_all(&st, &id, event).await;
            st.incidents().done();
        });
    }
}

/// Handles one detection: persist the locks, open/update the incident, audit, notify (in the
/// background, or before returning when `inline_notify`: the command line has no runtime that
/// outlives the call).
async fn handle_job(state: &AppState, job: Job, inline_notify: bool) {
    let Job::Detection(mut det, locks) = job;
    let inc = state.incidents();
    let now = det.at;
    // Enrich: which tenant does a locked account belong to?
    if det.tenant.is_none()
        && let Some(key) = det.lock_account.clone().filter(|k| !k.starts_with("u:"))
    {
        let k = key.clone();
        if let Ok(Some(acc)) = state.db().call(move |c| crate::accounts::get(c, &k)).await {
            det.tenant = acc.tenant_id;
        }
    }
    let persisted = {
        let locks = locks.clone();
        state
            .db()
            .call(move |c| -> Result<()> {
                for l in &locks {
                    register::save_lock(
                        c,
                        l.scope.code(),
                        &l.key,
                        l.state.level,
                        l.state.until,
                        l.state.set_at,
                    )?;
                }
                Ok(())
            })
            .await
    };
    if let Err(e) = persisted {
        tracing::error!(error = %e, "persisting a login lock failed");
    }
    for l in &locks {
        if l.scope == LockScope::Account {
            let mut e = AuditEvent::service(now, AuditAction::AccountLock, SERVICE_ACTOR)
                .outcome(Outcome::Success, Some(Reason::TooManyFailures));
            match l.key.strip_prefix("u:") {
                // A lock on a name with no account is recorded under the digest of the name.
                Some(u) => e.resource = Some((ResourceKind::Account, crate::audit::digest_id(u))),
                None => e.resource = Some((ResourceKind::Account, l.key.clone())),
            }
            e.tenant_id = det.tenant.clone();
            state.audit(e);
        }
    }
    let d2 = det.clone();
    let r = state
        .db()
        .call(move |c| register::upsert(c, &d2, SERVICE_ACTOR))
        .await;
    match r {
        Ok(up) => {
            let action = if up.created {
                AuditAction::IncidentCreate
            } else {
                AuditAction::IncidentUpdate
            };
            let mut e = AuditEvent::service(now, action, SERVICE_ACTOR)
                .resource(ResourceKind::Incident, up.incident.id.clone());
            e.tenant_id = up.incident.tenant_id.clone();
            state.audit(e);
            tracing::warn!(
                target: "theta::incidents",
                incident = %up.incident.id,
                priority = up.incident.priority.code(),
                category = up.incident.category.code(),
                created = up.created,
                "security incident"
            );
            if let Some(event) = up.notification() {
                if inline_notify {
                    notify_all(state, &up.incident.id, event).await;
                } else {
                    inc.notify(state, &up.incident.id, event);
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, category = det.category.code(), "incident register update failed")
        }
    }
    inc.refresh_metrics(state.now()).await;
}

async fn notify_all(state: &AppState, id: &str, event: &'static str) {
    let inc = state.incidents();
    deliver_audited(state, &inc.hooks, id, event).await;
    inc.refresh_metrics(state.now()).await;
}

/// [`deliver`] on the service's clock and metrics; the delivery that makes the incident
/// `notified` is audited (`incident.update` by the service).
async fn deliver_audited(state: &AppState, hooks: &[Hook], id: &str, event: &str) -> Vec<Delivery> {
    let outcomes = deliver(
        state.db(),
        hooks,
        &state.incidents().environment,
        id,
        event,
        &|| state.now(),
        &|outcome| state.metrics().webhook(outcome),
    )
    .await;
    for o in outcomes.iter().filter(|o| o.became_notified) {
        let mut e = AuditEvent::service(o.at, AuditAction::IncidentUpdate, SERVICE_ACTOR)
            .resource(ResourceKind::Incident, id.to_owned());
        e.actor = Actor::Service(SERVICE_ACTOR.into());
        state.audit(e);
    }
    outcomes
}

/// What became of one webhook delivery of an incident.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The webhook's URL.
    pub target: String,
    /// The tenant it serves (`*` for all).
    pub tenant: String,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the partner acknowledged it.
    pub delivered: bool,
    /// Whether this delivery was the last one pending, so the incident became `notified`.
    pub became_notified: bool,
    /// When the outcome was recorded.
    pub at: DateTime<Utc>,
}

/// Sends incident `id` as `event` to every hook that serves its tenant, with each hook's retries,
/// and records every outcome (attempts, delivery, timeline, `open -> notified` once all are
/// delivered) in the register. The service calls it from its worker; the command line (which
/// has no worker) calls it directly, so an incident opened by `theta verify` is notified at once.
///
/// `webhook` is told `retry`, `delivered` or `failed` for the metrics.
pub async fn deliver(
    db: &Db,
    hooks: &[Hook],
    environment: &str,
    id: &str,
    event: &str,
    now: &(dyn Fn() -> DateTime<Utc> + Sync),
    webhook: &(dyn Fn(&'static str) + Sync),
) -> Vec<Delivery> {
    let id2 = id.to_owned();
    let Ok(Some(detail)) = db.call(move |c| register::detail(c, &id2)).await else {
        return Vec::new();
    };
    let targets: Vec<&Hook> = hooks
        .iter()
        .filter(|h| h.serves(detail.incident.tenant_id.as_deref()))
        .collect();
    if targets.is_empty() {
        return Vec::new();
    }
    let body = match serde_json::to_vec(&notify::payload(&detail, event, environment)) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "incident payload");
            return Vec::new();
        }
    };
    // Register every target first, so "notified" waits for all of them.
    {
        let (id, at) = (id.to_owned(), now());
        let t: Vec<(String, String)> = targets
            .iter()
            .map(|h| (h.url.clone(), h.tenant.clone()))
            .collect();
        let _ = db
            .call(move |c| -> Result<()> {
                for (url, tenant) in &t {
                    c.execute(
                        "INSERT INTO incident_notifications (incident_id, target, tenant, attempts, updated_at) \
                         VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (incident_id, target) DO UPDATE SET delivered_at = NULL",
                        rusqlite::params![id, url, tenant, crate::clock::to_millis(at)],
                    )?;
                }
                Ok(())
            })
            .await;
    }
    let deliveries = targets.into_iter().map(|h| {
        let body = &body;
        async move {
            let (attempts, err) = h.deliver(body, event, |_, _| webhook("retry")).await;
            webhook(if err.is_none() { "delivered" } else { "failed" });
            let at = now();
            let (url, tenant) = (h.url.clone(), h.tenant.clone());
            let delivered = err.is_none();
            let id = id.to_owned();
            let (u, t) = (url.clone(), tenant.clone());
            let became_notified = db
                .call(move |c| {
                    register::record_notification(
                        c,
                        &id,
                        &u,
                        &t,
                        attempts,
                        delivered,
                        err.as_deref(),
                        at,
                    )
                })
                .await
                .unwrap_or(false);
            Delivery {
                target: url,
                tenant,
                attempts,
                delivered,
                became_notified,
                at,
            }
        }
    });
    futures::future::join_all(deliveries).await
}
