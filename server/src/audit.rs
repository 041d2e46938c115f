//! The audit seam: one [`AuditEvent`] per login, logout, session expiry, denial, read, change,
//! export and administrative act, handed to an [`AuditSink`].
//!
//! Events speak the engine's closed vocabulary ([`AuditAction`], [`Outcome`], [`Reason`],
//! [`ResourceKind`], re-exported here), carry ids only, and are converted to the engine's
//! validated event by [`AuditEvent::to_engine`]. Sinks:
//!
//! * [`TrailSink`] — the tamper-evident, hash-chained trail of `theta_engine::audit` (SQLite,
//!   Ed25519 checkpoints), used by `theta serve` and the command line;
//! * [`TracingAuditSink`] — structured log lines on the `theta::audit` target;
//! * [`MemoryAuditSink`] — tests.
//!
//! Which event each route writes is declared once, in the route audit table
//! ([`crate::routes::AUDIT_TABLE`]); reads are written by the authorisation call itself
//! ([`crate::extract::Ctx::authorize`]) and a middleware writes a fallback event (and counts it
//! in `theta_audit_fallback_events_total`) for any audited request that wrote none.
//!
//! Client addresses: [`resolve_client`] believes `X-Forwarded-For` only when the TCP peer is a
//! configured trusted proxy, and then takes the right-most address that is not itself a trusted
//! proxy (the left part of the header is whatever the client chose to send).

pub mod scope;
mod trail;

use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use theta_engine::audit as engine;
pub use theta_engine::audit::{AuditAction, Outcome, Reason, ResourceKind};

pub use scope::{Audited, RequestAudit};
pub use trail::{CLI_ACTOR_PREFIX, TrailSink, cli_actor, open_log, trail_config};

use crate::authz::Resource;
use crate::config::IpNet;
use crate::error::ApiError;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An authenticated account (its id).
    Account(String),
    /// The user name typed at a failed login (normalised).
    Attempted(String),
    /// A component of the platform acting on its own (`retention`, `sweep`, `incidents`) or the
    /// command line (`cli:<os user>`).
    Service(String),
    /// Nobody identifiable.
    Anonymous,
}

impl Actor {
    /// The account id, when the actor is an account.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Actor::Account(id) => Some(id),
            _ => None,
        }
    }

    /// The identifying value (account id, attempted name, service id).
    pub fn value(&self) -> Option<&str> {
        match self {
            Actor::Account(v) | Actor::Attempted(v) | Actor::Service(v) => Some(v),
            Actor::Anonymous => None,
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Client address after trusted-proxy resolution (`None` when unknown, e.g. in-process tests).
    pub client_addr: Option<IpAddr>,
    /// The TCP peer (the proxy, when there is one).
    pub peer_addr: Option<IpAddr>,
    /// `User-Agent`, truncated to 256 characters.
    pub user_agent: Option<String>,
}

/// One audit event: ids and codes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// UTC time, millisecond precision.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// Session id (not the token), when there is one.
    pub session_id: Option<String>,
    /// Origin of the request.
    pub origin: Origin,
    /// What was done.
    pub action: AuditAction,
    /// Tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// Recording concerned, if any.
    pub recording_id: Option<String>,
    /// Other object concerned (account, grant, incident …), if any.
    pub resource: Option<(ResourceKind, String)>,
    /// Outcome.
    pub outcome: Outcome,
    /// Reason for failures and denials (a code, never a message).
    pub reason: Option<Reason>,
}

impl AuditEvent {
    /// An event for `action` at `at` with its default outcome, anonymous, about nothing.
    pub fn new(at: DateTime<Utc>, action: AuditAction) -> AuditEvent {
        AuditEvent {
            at,
            actor: Actor::Anonymous,
            session_id: None,
            origin: Origin::default(),
            action,
            tenant_id: None,
            recording_id: None,
            resource: None,
            outcome: action.default_outcome(),
            reason: None,
        }
    }

    /// An event by a platform component (`incidents`, `sweep`, …).
    pub fn service(at: DateTime<Utc>, action: AuditAction, service: &str) -> AuditEvent {
        let mut e = AuditEvent::new(at, action);
        e.actor = Actor::Service(service.to_owned());
        e
    }

    /// Sets tenant, recording and resource from an authorisation [`Resource`].
    #[must_use]
    pub fn on(mut self, r: &Resource) -> Self {
        self.set_target(r);
        self
    }

    /// Sets tenant, recording and resource from an authorisation [`Resource`].
    pub fn set_target(&mut self, r: &Resource) {
        match r {
            Resource::System => {}
            Resource::Account { account_id } => {
                self.resource = Some((ResourceKind::Account, account_id.clone()));
            }
            Resource::Tenant { tenant_id } => {
                self.tenant_id = Some(tenant_id.clone());
                self.resource = Some((ResourceKind::Tenant, tenant_id.clone()));
            }
            Resource::Recording {
                tenant_id,
                recording_id,
            } => {
                self.tenant_id = Some(tenant_id.clone());
                self.recording_id = Some(recording_id.clone());
            }
        }
    }

    /// Sets the outcome and reason.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome, reason: Option<Reason>) -> Self {
        self.outcome = outcome;
        self.reason = reason;
        self
    }

    /// Sets the other object concerned.
    #[must_use]
    pub fn resource(mut self, kind: ResourceKind, id: impl Into<String>) -> Self {
        self.resource = Some((kind, id.into()));
        self
    }

    /// The engine's validated event. Ids that are not opaque ids (something shaped like free
    /// text reached a field) are replaced by `h-` and 16 hex digits of their SHA-256, so the event
    /// is still written, still correlates, and carries no text; a denial or failure without a
    /// reason gets `internal_error` rather than being lost.
    pub fn to_engine(&self) -> engine::AuditEvent {
        let id = |field: &'static str, s: &str| -> String {
            match engine::OpaqueId::try_new(field, s) {
                Ok(_) => s.to_owned(),
                Err(_) => digest_id(s),
            }
        };
        let actor = match &self.actor {
            Actor::Account(a) => engine::Actor::account(&id("actor", a)),
            Actor::Service(a) => engine::Actor::service(&id("actor", a)),
            Actor::Attempted(u) => Ok(engine::Actor::attempted_username(u)),
            Actor::Anonymous => Ok(engine::Actor::Anonymous),
        }
        .unwrap_or(engine::Actor::Anonymous);
        let mut reason = self.reason;
        if reason.is_none() && self.outcome == Outcome::Denied {
            reason = Some(Reason::InternalError);
        }
        let mut b = engine::AuditEvent::builder(self.action)
            .at(self.at)
            .actor(actor)
            .outcome(self.outcome)
            .origin(engine::Origin::new(
                self.origin.client_addr,
                self.origin.user_agent.as_deref(),
            ));
        if let Some(s) = &self.session_id {
            b = b.session(&id("session", s));
        }
        if let Some(t) = &self.tenant_id {
            b = b.tenant(&id("tenant", t));
        }
        if let Some(r) = &self.recording_id {
            b = b.recording(&id("recording", r));
        }
        if let Some((kind, r)) = &self.resource {
            b = b.resource(*kind, &id("resource", r));
        }
        if let Some(r) = reason {
            b = b.reason(r);
        }
        match b.build() {
            Ok(e) => e,
            // Only an outcome contradicting its action can still fail (login.failure must fail,
            // access.denied must be denied): record what the action implies.
            Err(_) => {
                let mut fixed = self.clone();
                fixed.outcome = self.action.default_outcome();
                if fixed.outcome == Outcome::Denied && fixed.reason.is_none() {
                    fixed.reason = Some(Reason::InternalError);
                }
                if fixed.outcome == self.outcome {
                    // Nothing left to fix: the minimal event still records who did what.
                    return engine::AuditEvent::builder(self.action)
                        .at(self.at)
                        .actor_anonymous()
                        .outcome(Outcome::Failure)
                        .reason(Reason::InternalError)
                        .build()
                        .unwrap_or_else(|_| unreachable_event(self.at));
                }
                fixed.to_engine()
            }
        }
    }
}

fn unreachable_event(at: DateTime<Utc>) -> engine::AuditEvent {
    // `admin.maintenance` by the service with outcome failure and a reason always builds.
    engine::AuditEvent::builder(AuditAction::AdminMaintenance)
        .at(at.max(DateTime::<Utc>::UNIX_EPOCH))
        .actor(engine::Actor::Anonymous)
        .outcome(Outcome::Failure)
        .reason(Reason::InternalError)
        .build()
        .expect("a fixed, valid event")
}

/// `h-` and 16 hex digits of SHA-256: stands in for a value that must not be stored as is.
pub fn digest_id(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    format!("h-{}", hex::encode(&d[..8]))
}

/// The audit reason for an API error answer.
pub fn reason_of(e: &ApiError) -> Reason {
    match e {
        ApiError::BadRequest { .. } | ApiError::PayloadTooLarge => Reason::InvalidRequest,
        ApiError::PasswordPolicy { .. } => Reason::PolicyViolation,
        ApiError::Unauthorized { code } => match *code {
            "invalid_credentials" => Reason::BadPassword,
            "session_expired" => Reason::SessionInvalid,
            _ => Reason::NotAuthenticated,
        },
        ApiError::AccountDisabled => Reason::AccountDisabled,
        ApiError::PasswordChangeRequired => Reason::PasswordExpired,
        ApiError::Csrf => Reason::CsrfMismatch,
        ApiError::Forbidden { .. } => Reason::InsufficientRole,
        ApiError::NotFound { .. } | ApiError::Gone { .. } => Reason::NotFound,
        ApiError::Conflict { .. } => Reason::Conflict,
        ApiError::TooManyRequests { .. } => Reason::RateLimited,
        ApiError::Locked { .. } => Reason::AccountLocked,
        ApiError::Unavailable { .. } | ApiError::Upstream(_) | ApiError::Internal(_) => {
            Reason::InternalError
        }
    }
}

/// Whether a sink is writing: `/readyz` and the audit middleware refuse to act unaudited when
/// it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkHealth {
    /// Events are being stored.
    Ok,
    /// Events cannot be stored (queue full, writer stopped, database failing).
    Failing(String),
}

/// Where audit events go. Implementations must not block for long: queue and return.
pub trait AuditSink: Debug + Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: AuditEvent);

    /// Waits until every event recorded so far is durable.
    ///
    /// # Errors
    /// A description of why events could not be stored.
    fn flush(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether events are being stored.
    fn health(&self) -> SinkHealth {
        SinkHealth::Ok
    }

    /// Events stored so far by this process, when the sink counts them (metrics).
    fn committed(&self) -> Option<u64> {
        None
    }
}

/// Writes events as structured `tracing` records on target `theta::audit`.
#[derive(Debug, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, e: AuditEvent) {
        log_event(&e, "audit");
    }
}

/// One `tracing` line for an event (ids and codes only).
pub(crate) fn log_event(e: &AuditEvent, message: &'static str) {
    tracing::info!(
        target: "theta::audit",
        at = %e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        actor = e.actor.value().map(|v| match e.actor {
            Actor::Attempted(_) => digest_id(v),
            _ => v.to_owned(),
        }).unwrap_or_default(),
        session_id = e.session_id.as_deref().unwrap_or(""),
        client = %e.origin.client_addr.map(|a| a.to_string()).unwrap_or_default(),
        action = %e.action,
        tenant = e.tenant_id.as_deref().unwrap_or(""),
        recording = e.recording_id.as_deref().unwrap_or(""),
        resource = %e.resource.as_ref().map(|(k, id)| format!("{k}:{id}")).unwrap_or_default(),
        outcome = %e.outcome,
        reason = %e.reason.map(|r| r.code()).unwrap_or(""),
        "{message}"
    );
}

/// Keeps events in memory (tests, diagnostics).
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// A copy of every event so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets every event so far.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
    }

    fn committed(&self) -> Option<u64> {
        Some(self.events.lock().unwrap_or_else(|p| p.into_inner()).len() as u64)
    }
}

/// Resolves the client address from the TCP peer and `X-Forwarded-For`.
pub fn resolve_client(
    peer: Option<SocketAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let Some(xff) = forwarded_for else {
        return Some(peer);
    };
    let mut hops: Vec<IpAddr> = Vec::new();
    for part in xff.split(',') {
        match parse_hop(part.trim()) {
            Some(ip) => hops.push(ip),
            // An unparsable hop: stop believing anything left of it.
            None => hops.clear(),
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .or(Some(peer))
}

fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    // "1.2.3.4:5678" or "[::1]:5678"
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec![IpNet::parse("10.0.0.0/8").unwrap()];
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let outsider: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Direct client: its own address, header ignored.
        assert_eq!(
            resolve_client(Some(outsider), Some("1.1.1.1"), &trusted),
            ip("203.0.113.9")
        );
        // Through the proxy: the right-most untrusted hop, not the spoofable left-most one.
        assert_eq!(
            resolve_client(
                Some(proxy),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.3"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(resolve_client(Some(proxy), None, &trusted), ip("10.0.0.5"));
        assert_eq!(
            resolve_client(Some(proxy), Some("garbage"), &trusted),
            ip("10.0.0.5")
        );
        assert_eq!(
            resolve_client(Some(proxy), Some("[2001:db8::1]:443"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(resolve_client(None, Some("1.1.1.1"), &trusted), None);
    }

    #[test]
    fn conversion_keeps_ids_and_never_text() {
        let at = DateTime::<Utc>::from_timestamp_millis(1_780_000_000_123).unwrap();
        let mut e =
            AuditEvent::new(at, AuditAction::RecordingReadWindow).on(&Resource::Recording {
                tenant_id: "chu-a".into(),
                recording_id: "rec-1".into(),
            });
        e.actor = Actor::Account("acc-1".into());
        e.session_id = Some("s-1".into());
        e.origin.client_addr = Some("192.0.2.1".parse().unwrap());
        e.origin.user_agent = Some("curl/8".into());
        let g = e.to_engine();
        assert_eq!(g.timestamp_ms(), 1_780_000_000_123);
        assert_eq!(g.action(), AuditAction::RecordingReadWindow);
        assert_eq!(g.actor().value(), Some("acc-1"));
        assert_eq!(g.tenant().unwrap().as_str(), "chu-a");
        assert_eq!(g.recording().unwrap().as_str(), "rec-1");
        assert_eq!(g.session().unwrap().as_str(), "s-1");
        assert_eq!(g.origin().user_agent.as_ref().unwrap().as_str(), "curl/8");

        // Text where an id belongs is digested, not stored, and the event is still written.
        e.recording_id = Some("Dupont Jean EEG".into());
        let g = e.to_engine();
        let r = g.recording().unwrap().as_str().to_owned();
        assert!(r.starts_with("h-") && !r.contains("Dupont"), "{r}");

        // A denial without a reason still records (with `internal_error`).
        let d = AuditEvent::new(at, AuditAction::AccessDenied);
        assert_eq!(d.to_engine().reason(), Some(Reason::InternalError));
        // A contradictory outcome is fixed to what the action implies.
        let f = AuditEvent::new(at, AuditAction::LoginFailure).outcome(Outcome::Success, None);
        assert_eq!(f.to_engine().outcome(), Outcome::Failure);
    }
}
