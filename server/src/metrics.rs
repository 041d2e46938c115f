//! Prometheus metrics (`prometheus-client`, OpenMetrics text).
//!
//! | metric | what |
//! |---|---|
//! | `theta_http_request_duration_seconds{method,route,status}` | latency by route template (bounded labels) |
//! | `theta_window_latency_seconds` | latency of window reads (routes audited as `recording.read_window`) |
//! | `theta_cache_hits_total`, `theta_cache_misses_total`, `theta_cache_hit_ratio` | decoded-chunk cache of the store |
//! | `theta_ingest_bytes_total`, `theta_ingest_seconds_total`, `theta_ingest_throughput_bytes_per_second` | ingest volume and the last ingest's rate |
//! | `theta_auth_failures_total{reason}` | failed logins and second factors |
//! | `theta_rate_limited_total{scope}` | requests refused by the rate limits (`address`, `account`, `login`) |
//! | `theta_incidents_open{priority}` | incidents not closed, by priority |
//! | `theta_incident_notification_due{priority,state}` | un-notified incidents whose deadline is `near` or `past` — the alert |
//! | `theta_webhook_deliveries_total{outcome}` | partner notifications delivered / failed |
//! | `theta_audit_chain_ok` | 1 after a clean verification, 0 after a finding, -1 before the first |
//! | `theta_audit_last_verify_timestamp_seconds`, `theta_audit_verified_events` | last verification |
//! | `theta_audit_events_total`, `theta_audit_sink_failing`, `theta_audit_fallback_events_total{route}` | trail health; a fallback event means a route forgot its own |
//!
//! Access: never public. On the main listener `/metrics` answers only `Authorization: Bearer
//! <token>` with the token of `metrics.token_file` (404 without one configured); `metrics.listen`
//! adds a plain-HTTP listener for a private scrape network. No label holds an id or a name.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// Route template (`/api/accounts/{id}`), never a concrete path.
    pub route: String,
    /// Status class (`2xx`, `4xx`, …).
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabel {
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabel {
    priority: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DueLabels {
    priority: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: Family<RouteLabels, Histogram>,
    window: Histogram,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_ratio: Gauge<f64, AtomicU64>,
    ingest_bytes: Counter,
    ingest_seconds: Counter<f64, AtomicU64>,
    ingest_rate: Gauge<f64, AtomicU64>,
    auth_failures: Family<ReasonLabel, Counter>,
    rate_limited: Family<ScopeLabel, Counter>,
    incidents_open: Family<PriorityLabel, Gauge>,
    notification_due: Family<DueLabels, Gauge>,
    webhooks: Family<OutcomeLabel, Counter>,
    chain_ok: Gauge<i64, AtomicI64>,
    last_verify: Gauge<f64, AtomicU64>,
    verified_events: Gauge<i64, AtomicI64>,
    audit_events: Counter,
    audit_failing: Gauge<i64, AtomicI64>,
    audit_fallback: Family<RouteLabel, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~33 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("theta");
        let http = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            http.clone(),
        );
        let window = latency_histogram();
        registry.register(
            "window_latency_seconds",
            "Latency of window reads",
            window.clone(),
        );
        let cache_hits = Counter::default();
        registry.register("cache_hits", "Decoded-chunk cache hits", cache_hits.clone());
        let cache_misses = Counter::default();
        registry.register(
            "cache_misses",
            "Decoded-chunk cache misses",
            cache_misses.clone(),
        );
        let cache_ratio = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "cache_hit_ratio",
            "Decoded-chunk cache hit ratio since start",
            cache_ratio.clone(),
        );
        let ingest_bytes = Counter::default();
        registry.register(
            "ingest_bytes",
            "Bytes of recordings ingested",
            ingest_bytes.clone(),
        );
        let ingest_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "ingest_seconds",
            "Time spent ingesting",
            ingest_seconds.clone(),
        );
        let ingest_rate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "ingest_throughput_bytes_per_second",
            "Throughput of the last ingest",
            ingest_rate.clone(),
        );
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "auth_failures",
            "Failed logins and second factors by reason",
            auth_failures.clone(),
        );
        let rate_limited = Family::<ScopeLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit or throttle",
            rate_limited.clone(),
        );
        let incidents_open = Family::<PriorityLabel, Gauge>::default();
        registry.register(
            "incidents_open",
            "Security incidents not closed, by priority",
            incidents_open.clone(),
        );
        let notification_due = Family::<DueLabels, Gauge>::default();
        registry.register(
            "incident_notification_due",
            "Incidents not yet notified whose notification deadline is near or past",
            notification_due.clone(),
        );
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Incident notifications to partners",
            webhooks.clone(),
        );
        let chain_ok = Gauge::<i64, AtomicI64>::default();
        chain_ok.set(-1);
        registry.register(
            "audit_chain_ok",
            "1 if the last audit chain verification was clean, 0 if it found tampering, -1 before the first",
            chain_ok.clone(),
        );
        let last_verify = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "audit_last_verify_timestamp_seconds",
            "When the audit chain was last verified",
            last_verify.clone(),
        );
        let verified_events = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "audit_verified_events",
            "Events checked by the last verification",
            verified_events.clone(),
        );
        let audit_events = Counter::default();
        registry.register(
            "audit_events",
            "Audit events recorded by this process",
            audit_events.clone(),
        );
        let audit_failing = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "audit_sink_failing",
            "1 while audit events cannot be stored",
            audit_failing.clone(),
        );
        let audit_fallback = Family::<RouteLabel, Counter>::default();
        registry.register(
            "audit_fallback_events",
            "Audit events written by the middleware because a route wrote none",
            audit_fallback.clone(),
        );
        Metrics {
            registry,
            http,
            window,
            cache_hits,
            cache_misses,
            cache_ratio,
            ingest_bytes,
            ingest_seconds,
            ingest_rate,
            auth_failures,
            rate_limited,
            incidents_open,
            notification_due,
            webhooks,
            chain_ok,
            last_verify,
            verified_events,
            audit_events,
            audit_failing,
            audit_fallback,
        }
    }

    /// Records a request's latency.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration, window: bool) {
        let class = format!("{}xx", status / 100);
        self.http
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: class,
            })
            .observe(elapsed.as_secs_f64());
        if window {
            self.window.observe(elapsed.as_secs_f64());
        }
    }

    /// Sets the store cache counters (cumulative hits and misses).
    pub fn set_cache(&self, hits: u64, misses: u64) {
        let (h0, m0) = (self.cache_hits.get(), self.cache_misses.get());
        self.cache_hits.inc_by(hits.saturating_sub(h0));
        self.cache_misses.inc_by(misses.saturating_sub(m0));
        let total = hits + misses;
        if total > 0 {
            self.cache_ratio.set(hits as f64 / total as f64);
        }
    }

    /// Records an ingest of `bytes` that took `elapsed`.
    pub fn ingest(&self, bytes: u64, elapsed: Duration) {
        self.ingest_bytes.inc_by(bytes);
        self.ingest_seconds.inc_by(elapsed.as_secs_f64());
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ingest_rate.set(bytes as f64 / secs);
        }
    }

    /// Counts a failed login or second factor.
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a refusal by a rate limit (`address`, `account`, `login`).
    pub fn rate_limited(&self, scope: &str) {
        self.rate_limited
            .get_or_create(&ScopeLabel {
                scope: scope.to_owned(),
            })
            .inc();
    }

    /// Sets the open incidents and the notification alert (counts per priority 1..=3).
    pub fn set_incidents(&self, open: [i64; 3], near: [i64; 3], past: [i64; 3]) {
        for p in 0..3 {
            let priority = format!("P{}", p + 1);
            self.incidents_open
                .get_or_create(&PriorityLabel {
                    priority: priority.clone(),
                })
                .set(open[p]);
            for (state, v) in [("near", near[p]), ("past", past[p])] {
                self.notification_due
                    .get_or_create(&DueLabels {
                        priority: priority.clone(),
                        state: state.to_owned(),
                    })
                    .set(v);
            }
        }
    }

    /// Counts a webhook delivery (`delivered`, `retry`, `failed`).
    pub fn webhook(&self, outcome: &str) {
        self.webhooks
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Records the result of an audit chain verification.
    pub fn audit_verified(&self, ok: bool, events: u64, at: chrono::DateTime<chrono::Utc>) {
        self.chain_ok.set(i64::from(ok));
        self.verified_events
            .set(i64::try_from(events).unwrap_or(i64::MAX));
        self.last_verify.set(at.timestamp_millis() as f64 / 1000.0);
    }

    /// The last verification's verdict: `Some(true)` clean, `Some(false)` tampered, `None` not yet.
    pub fn audit_chain_ok(&self) -> Option<bool> {
        match self.chain_ok.get() {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }

    /// Counts an audit event recorded.
    pub fn audit_event(&self) {
        self.audit_events.inc();
    }

    /// Sets whether the audit sink is failing.
    pub fn set_audit_failing(&self, failing: bool) {
        self.audit_failing.set(i64::from(failing));
    }

    /// Counts a fallback event written for `route`.
    pub fn audit_fallback(&self, route: &str) {
        self.audit_fallback
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .inc();
    }

    /// Fallback events written so far, all routes.
    pub fn audit_fallbacks(&self) -> u64 {
        // Families cannot be iterated; the text encoding is the source of truth.
        self.encode()
            .lines()
            .filter(|l| l.starts_with("theta_audit_fallback_events_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_and_no_ids() {
        let m = Metrics::new();
        m.request(
            "GET",
            "/api/accounts/{id}",
            200,
            Duration::from_millis(3),
            false,
        );
        m.request(
            "GET",
            "/api/recordings/{tenant}/{recording}/window",
            200,
            Duration::from_millis(9),
            true,
        );
        m.auth_failure("bad_password");
        m.rate_limited("address");
        m.set_incidents([0, 1, 0], [0, 1, 0], [0, 0, 0]);
        m.set_cache(8, 2);
        m.ingest(1_000_000, Duration::from_millis(500));
        m.audit_verified(true, 42, chrono::Utc::now());
        m.audit_fallback("/api/x");
        let t = m.encode();
        for name in [
            "theta_http_request_duration_seconds_bucket",
            "theta_window_latency_seconds_count 1",
            "theta_auth_failures_total{reason=\"bad_password\"} 1",
            "theta_rate_limited_total{scope=\"address\"} 1",
            "theta_incidents_open{priority=\"P2\"} 1",
            "theta_incident_notification_due{priority=\"P2\",state=\"near\"} 1",
            "theta_cache_hit_ratio 0.8",
            "theta_ingest_throughput_bytes_per_second 2000000",
            "theta_audit_chain_ok 1",
            "theta_audit_verified_events 42",
        ] {
            assert!(t.contains(name), "{name} missing in\n{t}");
        }
        assert_eq!(m.audit_fallbacks(), 1);
        assert!(t.contains("route=\"/api/accounts/{id}\""));
    }
}
