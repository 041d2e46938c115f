//! The audit seam: one [`AuditEvent`] per login, logout, denial, read and change, handed to an
//! [`AuditSink`].
//!
//! This phase ships two sinks: [`TracingAuditSink`] (structured log lines on the `theta::audit`
//! target, the default) and [`MemoryAuditSink`] (tests). The tamper-evident, hash-chained store
//! of issue 7 implements the same trait and is swapped in through
//! [`crate::state::AppState::with_audit`]; nothing else changes. Events carry ids and codes only,
//! never health data or secrets.
//!
//! Client addresses: [`resolve_client`] believes `X-Forwarded-For` only when the TCP peer is a
//! configured trusted proxy, and then takes the right-most address that is not itself a trusted
//! proxy (the left part of the header is whatever the client chose to send).

use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::IpNet;

/// Outcome of an audited act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done (or, for reads, allowed).
    Success,
    /// Attempted and failed (wrong password, invalid input …).
    Failure,
    /// Refused by the authorisation decision point or a security check.
    Denied,
}

/// Where a request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// Client address after trusted-proxy resolution (`None` when unknown, e.g. in-process tests).
    pub client_addr: Option<IpAddr>,
    /// The TCP peer (the proxy, when there is one).
    pub peer_addr: Option<IpAddr>,
    /// `User-Agent`, truncated to 256 characters.
    pub user_agent: Option<String>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// UTC time, millisecond precision.
    pub at: DateTime<Utc>,
    /// Acting account id, when known.
    pub actor_id: Option<String>,
    /// Acting username, or the attempted username for failed logins.
    pub actor_name: Option<String>,
    /// Session id (not the token), when there is one.
    pub session_id: Option<String>,
    /// Origin of the request.
    pub origin: Origin,
    /// What was done: `auth.login`, `auth.logout`, `auth.mfa`, `authz.read_recording`,
    /// `account.create`, … (stable codes).
    pub action: String,
    /// On what, ids only (`account:<id>`, `recording:<tenant>/<id>`, `system`).
    pub resource: String,
    /// Tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// Outcome.
    pub outcome: Outcome,
    /// Reason for failures and denials (a code or short phrase, no data).
    pub reason: Option<String>,
}

/// Where audit events go. Implementations must not block for long: queue and return.
pub trait AuditSink: Debug + Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: AuditEvent);
}

/// Writes events as structured `tracing` records on target `theta::audit`.
#[derive(Debug, Default)]
pub struct TracingAuditSink;

impl AuditSink for TracingAuditSink {
    fn record(&self, e: AuditEvent) {
        tracing::info!(
            target: "theta::audit",
            at = %e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor_id = e.actor_id.as_deref().unwrap_or(""),
            actor_name = e.actor_name.as_deref().unwrap_or(""),
            session_id = e.session_id.as_deref().unwrap_or(""),
            client = %e.origin.client_addr.map(|a| a.to_string()).unwrap_or_default(),
            action = %e.action,
            resource = %e.resource,
            tenant = e.tenant_id.as_deref().unwrap_or(""),
            outcome = ?e.outcome,
            reason = e.reason.as_deref().unwrap_or(""),
            "audit"
        );
    }
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
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
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
}
