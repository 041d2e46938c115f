//! Rate limits: a token bucket per client address (checked by a tower middleware before routing)
//! and per authenticated account (checked by the `Ctx` extractor), plus the throttles the
//! incident detectors put on addresses after repeated failed logins; and [`Gate`], the bound on
//! memory-heavy work running at once (password hashing, window and page computations).
//!
//! Buckets live in memory, sharded to keep lock contention low; idle buckets are swept. Refusals
//! are answered 429 with `Retry-After`, counted in `theta_rate_limited_total`, fed to the flood
//! detector, and audited as `access.denied` / `rate_limited` — at most once per address (or
//! account) per [`AUDIT_SAMPLE_SECS`], so a flood cannot flood the audit trail as well.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::config::RateSettings;

/// Shards of each bucket table.
const SHARDS: usize = 16;
/// A rate-limited address (or account) gets at most one audit event per this many seconds.
pub const AUDIT_SAMPLE_SECS: i64 = 10;
/// Buckets untouched for this long are dropped by the sweep.
const IDLE_SECS: i64 = 600;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
    last_audit_ms: i64,
}

/// One token-bucket table keyed by `K`.
#[derive(Debug)]
struct Table<K> {
    rate: RateSettings,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(rate: RateSettings) -> Self {
        Table {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, k: &K) -> std::sync::MutexGuard<'_, HashMap<K, Bucket>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        k.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token; `Err(seconds until one is available)` when empty.
    fn take(&self, k: &K, now_ms: i64) -> Result<(), u64> {
        let burst = f64::from(self.rate.burst);
        let mut g = self.shard(k);
        let b = g.entry(k.clone()).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
            last_audit_ms: i64::MIN,
        });
        let elapsed = (now_ms - b.at_ms).max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.rate.per_second).min(burst);
        b.at_ms = now_ms.max(b.at_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / self.rate.per_second).ceil();
            Err(if wait.is_finite() { wait as u64 } else { 1 }.max(1))
        }
    }

    fn should_audit(&self, k: &K, now_ms: i64) -> bool {
        let mut g = self.shard(k);
        match g.get_mut(k) {
            Some(b) if now_ms.saturating_sub(b.last_audit_ms) >= AUDIT_SAMPLE_SECS * 1000 => {
                b.last_audit_ms = now_ms;
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    fn sweep(&self, now_ms: i64) {
        for s in &self.shards {
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, b| now_ms - b.at_ms < IDLE_SECS * 1000);
        }
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// The service's rate limits.
#[derive(Debug)]
pub struct RateLimits {
    by_address: Table<IpAddr>,
    by_account: Table<String>,
}

impl RateLimits {
    /// Limits with the given rates.
    pub fn new(per_address: RateSettings, per_account: RateSettings) -> Self {
        RateLimits {
            by_address: Table::new(per_address),
            by_account: Table::new(per_account),
        }
    }

    /// Takes a token for a client address.
    ///
    /// # Errors
    /// The seconds to wait when the address is over its rate.
    pub fn check_address(&self, addr: IpAddr, now: DateTime<Utc>) -> Result<(), u64> {
        self.by_address.take(&addr, now.timestamp_millis())
    }

    /// Takes a token for an account.
    ///
    /// # Errors
    /// The seconds to wait when the account is over its rate.
    pub fn check_account(&self, account_id: &str, now: DateTime<Utc>) -> Result<(), u64> {
        self.by_account
            .take(&account_id.to_owned(), now.timestamp_millis())
    }

    /// Whether this refusal of `addr` should be audited (sampling, see [`AUDIT_SAMPLE_SECS`]).
    pub fn should_audit_address(&self, addr: IpAddr, now: DateTime<Utc>) -> bool {
        self.by_address.should_audit(&addr, now.timestamp_millis())
    }

    /// Whether this refusal of `account_id` should be audited.
    pub fn should_audit_account(&self, account_id: &str, now: DateTime<Utc>) -> bool {
        self.by_account
            .should_audit(&account_id.to_owned(), now.timestamp_millis())
    }

    /// Drops idle buckets.
    pub fn sweep(&self, now: DateTime<Utc>) {
        let ms = now.timestamp_millis();
        self.by_address.sweep(ms);
        self.by_account.sweep(ms);
    }

    /// Buckets held (addresses, accounts).
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_address.len(), self.by_account.len())
    }
}

/// A bound on how many memory-heavy operations run at once, with their count and peak (for
/// tests and metrics). Those past the bound wait their turn, in arrival order (tokio's
/// semaphore is fair), and time out like any slow request.
#[derive(Debug)]
pub struct Gate {
    permits: tokio::sync::Semaphore,
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    entries: std::sync::atomic::AtomicUsize,
}

/// Held while inside a [`Gate`]; leaving frees the place.
#[derive(Debug)]
pub struct GatePass<'a> {
    gate: &'a Gate,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Gate {
    /// A gate letting `permits` (at least 1) in at once.
    pub fn new(permits: usize) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(permits.max(1)),
            running: Default::default(),
            peak: Default::default(),
            entries: Default::default(),
        }
    }

    /// Waits for a place.
    ///
    /// # Errors
    /// [`crate::error::Error::Task`] if the gate was closed (never, in practice).
    pub async fn enter(&self) -> crate::error::Result<GatePass<'_>> {
        use std::sync::atomic::Ordering::Relaxed;
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| crate::error::Error::Task)?;
        let now = self.running.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
        self.entries.fetch_add(1, Relaxed);
        Ok(GatePass {
            gate: self,
            _permit: permit,
        })
    }

    /// The most that were ever inside at once.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many entered so far.
    pub fn entries(&self) -> usize {
        self.entries.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.gate
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_780_000_000_000 + ms).unwrap()
    }

    #[test]
    fn buckets_refill_at_their_rate_and_are_independent() {
        let rate = RateSettings {
            per_second: 2.0,
            burst: 3,
        };
        let l = RateLimits::new(rate, rate);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            l.check_address(a, at(0)).unwrap();
        }
        assert_eq!(l.check_address(a, at(0)), Err(1));
        // Another address is untouched.
        l.check_address(b, at(0)).unwrap();
        // Half a second later one token is back (2/s).
        l.check_address(a, at(500)).unwrap();
        assert!(l.check_address(a, at(500)).is_err());
        // Sampling of audit events.
        assert!(l.should_audit_address(a, at(500)));
        assert!(!l.should_audit_address(a, at(1000)));
        assert!(l.should_audit_address(a, at(500 + AUDIT_SAMPLE_SECS * 1000)));
        l.sweep(at(IDLE_SECS * 1000 + 1000));
        assert_eq!(l.tracked(), (0, 0));
    }
}
