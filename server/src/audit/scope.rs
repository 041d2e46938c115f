//! Per-request audit bookkeeping: the route's declared audit kind, who the request turned out to
//! be, and how many events it wrote. Kept in a task-local set by the audit middleware, so every
//! `AppState::audit` call made while handling the request is counted without threading a handle
//! through the handlers.

use std::sync::{Arc, Mutex};

use super::{AuditAction, AuditEvent};

/// How a route is audited (one row per route in [`crate::routes::AUDIT_TABLE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// Not audited, with the reason (a probe, a public document, the caller's own profile).
    Exempt(&'static str),
    /// A read: the authorisation call writes this action when it allows (once per resource)
    /// and `access.denied` when it refuses.
    Read(AuditAction),
    /// A change, export, login step or administrative act: the handler writes this action (or a
    /// more precise one) with its outcome; refusals by the authorisation call are
    /// `access.denied`.
    Act(AuditAction),
}

impl Audited {
    /// The declared action, if the route is audited.
    pub fn action(self) -> Option<AuditAction> {
        match self {
            Audited::Exempt(_) => None,
            Audited::Read(a) | Audited::Act(a) => Some(a),
        }
    }
}

/// A read already written: action, tenant, recording, resource.
pub(crate) type ReadKey = (AuditAction, Option<String>, Option<String>, Option<String>);

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) written: u32,
    pub(crate) actor: Option<String>,
    pub(crate) session: Option<String>,
    /// Reads already written by the authorisation call (action, tenant, recording, resource).
    pub(crate) reads: Vec<ReadKey>,
}

/// The audit state of one request.
#[derive(Debug, Clone)]
pub struct RequestAudit {
    /// The route's declaration.
    pub audited: Audited,
    pub(crate) inner: Arc<Mutex<Inner>>,
}

tokio::task_local! {
    static CURRENT: RequestAudit;
}

impl RequestAudit {
    pub(crate) fn new(audited: Audited) -> Self {
        RequestAudit {
            audited,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// Runs `f` with this request's audit state as the current one.
    pub(crate) async fn scope<F: std::future::Future>(self, f: F) -> F::Output {
        CURRENT.scope(self, f).await
    }

    /// The current request's audit state, if the request went through the audit middleware.
    pub fn current() -> Option<RequestAudit> {
        CURRENT.try_with(Clone::clone).ok()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events written so far by this request.
    pub fn written(&self) -> u32 {
        self.lock().written
    }
}

/// Counts `e` against the current request, if any.
pub(crate) fn note_written(_e: &AuditEvent) {
    if let Ok(r) = CURRENT.try_with(Clone::clone) {
        r.lock().written += 1;
    }
}

/// Records who the request is (set by the `Ctx` extractor), for a fallback event.
pub(crate) fn note_caller(account_id: &str, session_id: &str) {
    if let Ok(r) = CURRENT.try_with(Clone::clone) {
        let mut g = r.lock();
        g.actor = Some(account_id.to_owned());
        g.session = Some(session_id.to_owned());
    }
}
