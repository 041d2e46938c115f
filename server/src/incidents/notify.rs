//! Partner notification by webhook: an HTTPS POST of the incident (ids, codes, times — no health
//! data), signed with HMAC-SHA256 when a secret is configured, retried with exponential back-off.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::register::{IncidentDetail, IndicatorRow};
use crate::config::WebhookSettings;
use crate::error::{Error, Result};
use crate::http_client::HttpsClient;

/// Header carrying `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "x-theta-signature";
/// Header naming the notification (`incident.created`, `incident.escalated`, or
/// `incident.redelivery` for one sent again because it was never acknowledged).
pub const EVENT_HEADER: &str = "x-theta-event";
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One configured webhook, ready to send.
#[derive(Clone)]
pub struct Hook {
    /// Tenant served (`*` for every incident).
    pub tenant: String,
    /// URL.
    pub url: String,
    secret: Option<Zeroizing<Vec<u8>>>,
    client: HttpsClient,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// First back-off (doubles each attempt).
    pub first_backoff: Duration,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl Hook {
    /// Builds a hook from its settings (reads the secret and the CA bundle).
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Tls`] / [`Error::Config`] for unreadable files.
    pub fn from_settings(w: &WebhookSettings) -> Result<Hook> {
        let secret = match &w.secret_file {
            Some(p) => {
                let text = Zeroizing::new(std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?);
                let t = text.trim();
                if t.is_empty() {
                    return Err(Error::config(p, "webhook secret file is empty"));
                }
                Some(Zeroizing::new(t.as_bytes().to_vec()))
            }
            None => None,
        };
        Ok(Hook {
            tenant: w.tenant.clone(),
            url: w.url.clone(),
            secret,
            client: HttpsClient::from_ca_file(w.ca_file.as_deref())?
                .with_timeout(Duration::from_secs(10)),
            max_attempts: w.max_attempts,
            first_backoff: Duration::from_secs(1),
        })
    }

    /// Every webhook a profile configures.
    ///
    /// # Errors
    /// As [`Hook::from_settings`].
    pub fn all(settings: &crate::config::Settings) -> Result<Vec<Hook>> {
        settings
            .incidents
            .webhooks
            .iter()
            .map(Hook::from_settings)
            .collect()
    }

    /// Whether this hook receives incidents of `tenant`.
    pub fn serves(&self, tenant: Option<&str>) -> bool {
        self.tenant == "*" || tenant == Some(self.tenant.as_str())
    }

    /// `sha256=<hex>` of `body` under the secret, when there is one.
    pub fn signature(&self, body: &[u8]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
        mac.update(body);
        Some(format!(
            "sha256={}",
            hex::encode(mac.finalize().into_bytes())
        ))
    }

    async fn send_once(&self, body: &[u8], event: &str) -> std::result::Result<(), String> {
        let mut b = http::Request::builder()
            .method(http::Method::POST)
            .uri(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "theta-incidents/1")
            .header(EVENT_HEADER, event);
        if let Some(sig) = self.signature(body) {
            b = b.header(SIGNATURE_HEADER, sig);
        }
        let req = b.body(body.to_vec()).map_err(|e| format!("request: {e}"))?;
        match self.client.send(req).await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("HTTP {}", resp.status().as_u16())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends with retries; returns the attempts made and the last error, if it never succeeded.
    pub async fn deliver(
        &self,
        body: &[u8],
        event: &str,
        on_retry: impl Fn(u32, &str),
    ) -> (u32, Option<String>) {
        let mut wait = self.first_backoff;
        let mut last = None;
        for attempt in 1..=self.max_attempts {
            match self.send_once(body, event).await {
                Ok(()) => return (attempt, None),
                Err(e) => {
                    on_retry(attempt, &e);
                    last = Some(e);
                }
            }
            if attempt < self.max_attempts {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        (self.max_attempts, last)
    }
}

/// The JSON body sent to partners.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// Always `theta.incident`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `incident.created`, `incident.escalated` or `incident.redelivery`.
    pub event: &'a str,
    /// The platform's environment tag.
    pub environment: &'a str,
    /// Incident id.
    pub id: &'a str,
    /// P1, P2, P3.
    pub priority: &'a str,
    /// Category code.
    pub category: &'a str,
    /// Status code.
    pub status: &'a str,
    /// Fixed summary phrase.
    pub summary: &'a str,
    /// Tenant concerned.
    pub tenant: Option<&'a str>,
    /// Detection time (RFC 3339, UTC).
    pub detected_at: String,
    /// Notification deadline (RFC 3339, UTC).
    pub deadline_at: String,
    /// Detections merged so far.
    pub detections: i64,
    /// Indicators of compromise (ids and addresses only).
    pub indicators: Vec<PayloadIndicator<'a>>,
    /// Timeline entries so far (detections, automatic responses).
    pub timeline: Vec<PayloadTimeline<'a>>,
}

/// An indicator in the payload.
#[derive(Debug, Serialize)]
pub struct PayloadIndicator<'a> {
    /// Kind code.
    pub kind: &'static str,
    /// Value.
    pub value: &'a str,
    /// Sightings.
    pub hits: i64,
}

/// A timeline entry in the payload.
#[derive(Debug, Serialize)]
pub struct PayloadTimeline<'a> {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Kind.
    pub kind: &'a str,
    /// What.
    pub detail: &'a str,
}

/// The payload of `incident` (notes by people are not sent: they may hold anything).
pub fn payload<'a>(d: &'a IncidentDetail, event: &'a str, environment: &'a str) -> Payload<'a> {
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let i = &d.incident;
    Payload {
        kind: "theta.incident",
        event,
        environment,
        id: &i.id,
        priority: i.priority.code(),
        category: i.category.code(),
        status: i.status.code(),
        summary: &i.summary,
        tenant: i.tenant_id.as_deref(),
        detected_at: rfc(i.detected_at),
        deadline_at: rfc(i.deadline_at),
        detections: i.detections,
        indicators: d
            .indicators
            .iter()
            .map(|r: &IndicatorRow| PayloadIndicator {
                kind: r.kind.code(),
                value: &r.value,
                hits: r.hits,
            })
            .collect(),
        timeline: d
            .timeline
            .iter()
            .filter(|t| t.kind != "note")
            .map(|t| PayloadTimeline {
                at: rfc(t.at),
                kind: &t.kind,
                detail: &t.detail,
            })
            .collect(),
    }
}
