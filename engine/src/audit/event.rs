//! The audit event: a closed vocabulary of actions, outcomes and reasons, typed actors and ids, and
//! a builder that refuses anything shaped like free text.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};

use super::error::{AuditError, Result};
use super::ids::{OpaqueId, UserAgent, Username};

/// Declares a closed enum whose variants have stable string codes (the codes are what is stored
/// and hashed, so they are never renamed or reused; new variants get new codes).
macro_rules! coded_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $code:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The stable code stored in the log and covered by the hash chain.
            pub fn code(self) -> &'static str {
                match self {
                    $( $name::$variant => $code, )+
                }
            }

            /// The variant with this code, if any.
            pub fn try_from_code(code: &str) -> Option<Self> {
                match code {
                    $( $code => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

coded_enum! {
    /// What was done. Codes are `area.verb`; the service and the command line use the same codes.
    pub enum AuditAction {
        /// Password (and second factor) accepted; a session was opened.
        LoginSuccess => "login.success",
        /// Unknown account or wrong password.
        LoginFailure => "login.failure",
        /// Password accepted but the one-time code or recovery code was wrong.
        LoginMfaFailure => "login.mfa_failure",
        /// The user closed the session.
        Logout => "logout",
        /// The session reached its idle or absolute time-out.
        SessionExpired => "session.expired",
        /// An administrator (or a password change) revoked a session.
        SessionRevoked => "session.revoked",
        /// A request was refused by authorisation (role, grant, tenant, rate limit …).
        AccessDenied => "access.denied",
        /// The list of recordings visible to the caller was read.
        RecordingList => "recording.list",
        /// A recording's metadata (header, channels) was read.
        RecordingReadMetadata => "recording.read_metadata",
        /// A window of samples was read.
        RecordingReadWindow => "recording.read_window",
        /// The overview (min/max envelope) was read.
        RecordingOverview => "recording.overview",
        /// A power spectral density was computed.
        RecordingPsd => "recording.psd",
        /// An SQL query ran over recordings (resource: a digest of the query, never its text).
        SqlQuery => "sql.query",
        /// A recording was ingested.
        RecordingCreate => "recording.create",
        /// A recording's assignment or metadata changed.
        RecordingUpdate => "recording.update",
        /// A recording was deleted.
        RecordingDelete => "recording.delete",
        /// A recording's annotations were read.
        AnnotationRead => "annotation.read",
        /// An annotation was added.
        AnnotationCreate => "annotation.create",
        /// An annotation was edited.
        AnnotationUpdate => "annotation.update",
        /// An annotation was deleted.
        AnnotationDelete => "annotation.delete",
        /// An account was created.
        AccountCreate => "account.create",
        /// An account's role, name or settings changed.
        AccountUpdate => "account.update",
        /// An account was disabled (by an administrator, by expiry or by dormancy).
        AccountDisable => "account.disable",
        /// A disabled account was enabled again.
        AccountEnable => "account.enable",
        /// A locked account was unlocked.
        AccountUnlock => "account.unlock",
        /// A password was changed or reset.
        AccountPasswordChange => "account.password_change",
        /// A second factor was enrolled.
        AccountMfaEnroll => "account.mfa_enroll",
        /// A second factor (or its recovery codes) was reset.
        AccountMfaReset => "account.mfa_reset",
        /// Access to a recording or tenant was granted.
        GrantCreate => "grant.create",
        /// A grant was withdrawn.
        GrantDelete => "grant.delete",
        /// A tenant (partner establishment) was created.
        TenantCreate => "tenant.create",
        /// A tenant's settings changed.
        TenantUpdate => "tenant.update",
        /// A key was created.
        KeyCreate => "key.create",
        /// A key was rotated.
        KeyRotate => "key.rotate",
        /// A key was destroyed (crypto-shredding).
        KeyShred => "key.shred",
        /// A research export was started.
        ExportStart => "export.start",
        /// A research export was downloaded.
        ExportDownload => "export.download",
        /// The service configuration changed.
        AdminConfigChange => "admin.config_change",
        /// An access review report was produced.
        AdminAccessReview => "admin.access_review",
        /// An administrator changed the maintenance state (start/stop, read-only mode).
        AdminMaintenance => "admin.maintenance",
        /// A security incident was opened.
        IncidentCreate => "incident.create",
        /// A security incident changed status or gained a timeline entry.
        IncidentUpdate => "incident.update",
        /// Audit events older than the retention period were purged.
        AuditPurge => "audit.purge",
        /// Audit events were exported on request.
        AuditExport => "audit.export",
        /// The audit chain was verified.
        AuditVerify => "audit.verify",
        /// The password step of a login succeeded; the second factor is still due (no session
        /// is usable yet).
        LoginPassword => "login.password",
        /// An account was locked after repeated failures (temporary, with back-off).
        AccountLock => "account.lock",
        /// Accounts (names, roles, grants) were listed or read by an administrator.
        AccountRead => "account.read",
        /// Tenants were listed or read.
        TenantRead => "tenant.read",
        /// The incident register was read.
        IncidentRead => "incident.read",
        /// A research export job's state, progress or list was read (ids and counters only).
        ExportRead => "export.read",
        /// A research export job was cancelled.
        ExportCancel => "export.cancel",
        /// An interrupted, failed or cancelled research export job was restarted (it resumes).
        ExportRestart => "export.restart",
        /// A research export's output was deleted at the end of its retention period.
        ExportPurge => "export.purge",
    }
}

impl AuditAction {
    /// The outcome assumed when the builder is given none.
    pub fn default_outcome(self) -> Outcome {
        match self {
            AuditAction::LoginFailure | AuditAction::LoginMfaFailure => Outcome::Failure,
            AuditAction::AccessDenied => Outcome::Denied,
            _ => Outcome::Success,
        }
    }
}

coded_enum! {
    /// How the action ended.
    pub enum Outcome {
        /// Done.
        Success => "success",
        /// Attempted and failed (wrong password, I/O error …).
        Failure => "failure",
        /// Refused by authentication or authorisation.
        Denied => "denied",
    }
}

coded_enum! {
    /// Why an action failed or was refused, as a code (never a message).
    pub enum Reason {
        /// No valid session or credentials were presented.
        NotAuthenticated => "not_authenticated",
        /// No such account.
        UnknownAccount => "unknown_account",
        /// Wrong password.
        BadPassword => "bad_password",
        /// Wrong or replayed one-time code / recovery code.
        MfaInvalid => "mfa_invalid",
        /// A second factor is required but was not given.
        MfaRequired => "mfa_required",
        /// The account is disabled.
        AccountDisabled => "account_disabled",
        /// The account is locked after repeated failures.
        AccountLocked => "account_locked",
        /// The (guest) account's validity ended.
        AccountExpired => "account_expired",
        /// The password must be renewed first.
        PasswordExpired => "password_expired",
        /// The session is unknown or revoked.
        SessionInvalid => "session_invalid",
        /// Idle time-out reached.
        IdleTimeout => "idle_timeout",
        /// Absolute time-out reached.
        AbsoluteTimeout => "absolute_timeout",
        /// The role does not allow the action.
        InsufficientRole => "insufficient_role",
        /// The caller holds no grant on the resource.
        NoGrant => "no_grant",
        /// The resource belongs to another tenant.
        TenantMismatch => "tenant_mismatch",
        /// Too many requests from this address or account.
        RateLimited => "rate_limited",
        /// The client address is not allowed.
        OriginNotAllowed => "origin_not_allowed",
        /// A key, token or certificate of another environment was presented.
        EnvironmentMismatch => "environment_mismatch",
        /// The request was malformed.
        InvalidRequest => "invalid_request",
        /// Stored data failed an integrity check.
        IntegrityFailure => "integrity_failure",
        /// The operation failed inside the service.
        InternalError => "internal_error",
        /// The CSRF token or the `Origin` of a browser request did not match.
        CsrfMismatch => "csrf_mismatch",
        /// The account was unused for longer than the dormancy period.
        AccountDormant => "account_dormant",
        /// The bootstrap administrator was superseded by a nominative one.
        BootstrapSuperseded => "bootstrap_superseded",
        /// The object named does not exist.
        NotFound => "not_found",
        /// The request conflicts with the current state (duplicate, already done).
        Conflict => "conflict",
        /// A policy refused the value (password rules, retention minimum).
        PolicyViolation => "policy_violation",
        /// Repeated failures crossed a detection threshold.
        TooManyFailures => "too_many_failures",
    }
}

coded_enum! {
    /// What kind of object `resource` names (the recording concerned has its own field).
    pub enum ResourceKind {
        /// An annotation.
        Annotation => "annotation",
        /// An account.
        Account => "account",
        /// An access grant.
        Grant => "grant",
        /// A tenant.
        Tenant => "tenant",
        /// A key (data key, key-encryption key, audit key).
        Key => "key",
        /// A research export job.
        Export => "export",
        /// A session.
        Session => "session",
        /// An SQL query, by digest.
        Query => "query",
        /// A security incident.
        Incident => "incident",
        /// A range of audit sequence numbers (`first-last`).
        AuditRange => "audit_range",
        /// A configuration item.
        Config => "config",
    }
}

coded_enum! {
    /// Who `actor` is.
    pub enum ActorKind {
        /// An account id.
        Account => "account",
        /// The user name typed at a failed login.
        Username => "username",
        /// A failed login whose user name was not recordable (blank, too long, white space).
        InvalidUsername => "invalid_username",
        /// A component acting on its own (retention job, CLI maintenance).
        Service => "service",
        /// Nobody identifiable (an unauthenticated request).
        Anonymous => "anonymous",
    }
}

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// An authenticated account.
    Account(OpaqueId),
    /// The user name attempted at a failed login.
    AttemptedUsername(Username),
    /// A failed login with an unrecordable user name.
    InvalidUsername,
    /// A component such as `retention` or `cli`.
    Service(OpaqueId),
    /// An unauthenticated caller.
    Anonymous,
}

impl Actor {
    /// The kind code.
    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::Account(_) => ActorKind::Account,
            Actor::AttemptedUsername(_) => ActorKind::Username,
            Actor::InvalidUsername => ActorKind::InvalidUsername,
            Actor::Service(_) => ActorKind::Service,
            Actor::Anonymous => ActorKind::Anonymous,
        }
    }

    /// The identifying value (`None` for the kinds that have none).
    pub fn value(&self) -> Option<&str> {
        match self {
            Actor::Account(id) | Actor::Service(id) => Some(id.as_str()),
            Actor::AttemptedUsername(u) => Some(u.as_str()),
            Actor::InvalidUsername | Actor::Anonymous => None,
        }
    }

    /// An account actor.
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] if `id` is not an [`OpaqueId`].
    pub fn account(id: &str) -> Result<Self> {
        OpaqueId::try_new("actor", id).map(Actor::Account)
    }

    /// A service actor.
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] if `id` is not an [`OpaqueId`].
    pub fn service(id: &str) -> Result<Self> {
        OpaqueId::try_new("actor", id).map(Actor::Service)
    }

    /// The actor for a failed login with user name `typed`; unrecordable names become
    /// [`Actor::InvalidUsername`] rather than an error, so a login failure is always audited.
    pub fn attempted_username(typed: &str) -> Self {
        Username::try_new(typed).map_or(Actor::InvalidUsername, Actor::AttemptedUsername)
    }
}

/// Where the request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client address (the service resolves trusted proxies before filling it).
    pub client_addr: Option<IpAddr>,
    /// The sanitised user agent.
    pub user_agent: Option<UserAgent>,
}

impl Origin {
    /// An origin from an address and a raw `User-Agent` header value.
    pub fn new(client_addr: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        Origin {
            client_addr,
            user_agent: user_agent.and_then(UserAgent::sanitize),
        }
    }
}

/// A reference to the object acted upon (ids only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRef {
    /// What it is.
    pub kind: ResourceKind,
    /// Its id.
    pub id: OpaqueId,
}

/// One audit event, ready to append. Built with [`AuditEvent::builder`]; the log assigns the
/// sequence number and the hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    pub(crate) ts_ms: i64,
    pub(crate) action: AuditAction,
    pub(crate) outcome: Outcome,
    pub(crate) actor: Actor,
    pub(crate) session: Option<OpaqueId>,
    pub(crate) origin: Origin,
    pub(crate) tenant: Option<OpaqueId>,
    pub(crate) recording: Option<OpaqueId>,
    pub(crate) resource: Option<ResourceRef>,
    pub(crate) reason: Option<Reason>,
}

impl AuditEvent {
    /// Starts an event for `action`. The outcome defaults to [`AuditAction::default_outcome`] and
    /// the time to the moment [`AuditEventBuilder::build`] is called.
    pub fn builder(action: AuditAction) -> AuditEventBuilder {
        AuditEventBuilder {
            ts_ms: None,
            action,
            outcome: None,
            actor: None,
            session: None,
            origin: Origin::default(),
            tenant: None,
            recording: None,
            resource: None,
            reason: None,
            error: None,
        }
    }

    /// UTC time of the action, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> i64 {
        self.ts_ms
    }

    /// UTC time of the action.
    pub fn timestamp(&self) -> DateTime<Utc> {
        ms_to_datetime(self.ts_ms)
    }

    /// The action.
    pub fn action(&self) -> AuditAction {
        self.action
    }

    /// The outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The actor.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The session id.
    pub fn session(&self) -> Option<&OpaqueId> {
        self.session.as_ref()
    }

    /// The origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The tenant.
    pub fn tenant(&self) -> Option<&OpaqueId> {
        self.tenant.as_ref()
    }

    /// The recording concerned.
    pub fn recording(&self) -> Option<&OpaqueId> {
        self.recording.as_ref()
    }

    /// The other object concerned.
    pub fn resource(&self) -> Option<&ResourceRef> {
        self.resource.as_ref()
    }

    /// The failure or denial reason.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }
}

pub(crate) fn ms_to_datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Builds an [`AuditEvent`]; setters taking `&str` validate it as an [`OpaqueId`] and the first
/// invalid field is reported by [`build`](Self::build).
#[derive(Debug)]
#[must_use = "an audit event is only recorded once built and appended"]
pub struct AuditEventBuilder {
    ts_ms: Option<i64>,
    action: AuditAction,
    outcome: Option<Outcome>,
    actor: Option<Actor>,
    session: Option<OpaqueId>,
    origin: Origin,
    tenant: Option<OpaqueId>,
    recording: Option<OpaqueId>,
    resource: Option<ResourceRef>,
    reason: Option<Reason>,
    error: Option<AuditError>,
}

impl AuditEventBuilder {
    fn id(&mut self, field: &'static str, s: &str) -> Option<OpaqueId> {
        match OpaqueId::try_new(field, s) {
            Ok(id) => Some(id),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// Sets the time of the action.
    pub fn at(mut self, time: DateTime<Utc>) -> Self {
        self.ts_ms = Some(time.timestamp_millis());
        self
    }

    /// Sets the time of the action in milliseconds since the Unix epoch (UTC).
    pub fn at_ms(mut self, ms: i64) -> Self {
        self.ts_ms = Some(ms);
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// The actor is the account `id`.
    pub fn actor_account(mut self, id: &str) -> Self {
        self.actor = self.id("actor", id).map(Actor::Account);
        self
    }

    /// The actor is the user name typed at a failed login (see [`Actor::attempted_username`]).
    pub fn actor_attempted_username(mut self, typed: &str) -> Self {
        self.actor = Some(Actor::attempted_username(typed));
        self
    }

    /// The actor is the component `id` (e.g. `retention`, `cli`).
    pub fn actor_service(mut self, id: &str) -> Self {
        self.actor = self.id("actor", id).map(Actor::Service);
        self
    }

    /// The actor is anonymous.
    pub fn actor_anonymous(mut self) -> Self {
        self.actor = Some(Actor::Anonymous);
        self
    }

    /// Sets the session id.
    pub fn session(mut self, id: &str) -> Self {
        self.session = self.id("session", id);
        self
    }

    /// Sets the whole origin.
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// Sets the client address.
    pub fn client_addr(mut self, addr: IpAddr) -> Self {
        self.origin.client_addr = Some(addr);
        self
    }

    /// Sets the user agent from the raw header value (sanitised).
    pub fn user_agent(mut self, raw: &str) -> Self {
        self.origin.user_agent = UserAgent::sanitize(raw);
        self
    }

    /// Sets the tenant.
    pub fn tenant(mut self, id: &str) -> Self {
        self.tenant = self.id("tenant", id);
        self
    }

    /// Sets the recording concerned.
    pub fn recording(mut self, id: &str) -> Self {
        self.recording = self.id("recording", id);
        self
    }

    /// Sets the other object concerned.
    pub fn resource(mut self, kind: ResourceKind, id: &str) -> Self {
        self.resource = self.id("resource", id).map(|id| ResourceRef { kind, id });
        self
    }

    /// Sets the failure or denial reason.
    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Checks the event and returns it.
    ///
    /// # Errors
    /// [`AuditError::InvalidField`] for the first invalid id, a missing actor, a timestamp before
    /// 1970, a denial without a reason, or an outcome that contradicts the action
    /// (`access.denied` must be denied; `login.failure` and `login.mfa_failure` must fail).
    pub fn build(self) -> Result<AuditEvent> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let actor = self
            .actor
            .ok_or_else(|| AuditError::invalid("actor", "every audit event needs an actor"))?;
        let outcome = self
            .outcome
            .unwrap_or_else(|| self.action.default_outcome());
        let ts_ms = self.ts_ms.unwrap_or_else(|| Utc::now().timestamp_millis());
        if ts_ms < 0 {
            return Err(AuditError::invalid("timestamp", "before 1970-01-01"));
        }
        if outcome == Outcome::Denied && self.reason.is_none() {
            return Err(AuditError::invalid("reason", "a denial needs a reason"));
        }
        let forced = match self.action {
            AuditAction::AccessDenied => Some(Outcome::Denied),
            AuditAction::LoginFailure | AuditAction::LoginMfaFailure => Some(Outcome::Failure),
            _ => None,
        };
        if forced.is_some_and(|f| f != outcome) {
            return Err(AuditError::invalid(
                "outcome",
                format!(
                    "action {} cannot have outcome {}",
                    self.action.code(),
                    outcome.code()
                ),
            ));
        }
        Ok(AuditEvent {
            ts_ms,
            action: self.action,
            outcome,
            actor,
            session: self.session,
            origin: self.origin,
            tenant: self.tenant,
            recording: self.recording,
            resource: self.resource,
            reason: self.reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(a.code()), "duplicate code {}", a.code());
            assert_eq!(AuditAction::try_from_code(a.code()), Some(*a));
        }
        for r in Reason::ALL {
            assert_eq!(Reason::try_from_code(r.code()), Some(*r));
        }
        assert_eq!(AuditAction::try_from_code("login.maybe"), None);
    }

    #[test]
    fn the_brief_s_action_codes_exist() {
        for code in [
            "login.success",
            "login.failure",
            "login.mfa_failure",
            "logout",
            "session.expired",
            "access.denied",
            "recording.read_metadata",
            "recording.read_window",
            "recording.overview",
            "recording.psd",
            "sql.query",
            "recording.create",
            "recording.delete",
            "annotation.create",
            "annotation.update",
            "annotation.delete",
            "account.create",
            "account.update",
            "account.disable",
            "grant.create",
            "grant.delete",
            "key.rotate",
            "key.shred",
            "export.start",
            "export.download",
            "audit.purge",
            "audit.export",
        ] {
            assert!(AuditAction::try_from_code(code).is_some(), "{code}");
        }
    }

    #[test]
    fn builder_validates() {
        let ok = AuditEvent::builder(AuditAction::RecordingReadWindow)
            .actor_account("acc-1")
            .session("s-1")
            .tenant("t-1")
            .recording("rec-1")
            .client_addr("192.0.2.7".parse().unwrap())
            .user_agent("curl/8")
            .at_ms(1_700_000_000_000)
            .build()
            .unwrap();
        assert_eq!(ok.outcome(), Outcome::Success);
        assert_eq!(ok.timestamp_ms(), 1_700_000_000_000);

        let err = AuditEvent::builder(AuditAction::RecordingReadWindow)
            .actor_account("acc-1")
            .recording("Dupont Jean EEG")
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            AuditError::InvalidField {
                field: "recording",
                ..
            }
        ));
        assert!(!err.to_string().contains("Dupont"));

        // Missing actor, denial without reason, contradictory outcome.
        assert!(AuditEvent::builder(AuditAction::Logout).build().is_err());
        assert!(
            AuditEvent::builder(AuditAction::AccessDenied)
                .actor_anonymous()
                .build()
                .is_err()
        );
        assert!(
            AuditEvent::builder(AuditAction::LoginFailure)
                .actor_attempted_username("bob")
                .outcome(Outcome::Success)
                .build()
                .is_err()
        );
        let denied = AuditEvent::builder(AuditAction::AccessDenied)
            .actor_anonymous()
            .reason(Reason::NotAuthenticated)
            .build()
            .unwrap();
        assert_eq!(denied.outcome(), Outcome::Denied);
    }

    #[test]
    fn bad_usernames_are_recorded_without_text() {
        let e = AuditEvent::builder(AuditAction::LoginFailure)
            .actor_attempted_username("my secret password")
            .reason(Reason::UnknownAccount)
            .build()
            .unwrap();
        assert_eq!(e.actor(), &Actor::InvalidUsername);
        assert_eq!(e.actor().value(), None);
    }
}
