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
///
/// A [`GatePass`] owns its place (no borrow of the gate), so it can move into the task doing
/// the work: the place is held until the work ends, not until the request that started it
/// goes away. Otherwise a client that gives up (or is timed out) frees its place while its
/// computation still runs, and the bound no longer holds.
#[derive(Debug)]
pub struct Gate {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    counts: std::sync::Arc<GateCounts>,
}

#[derive(Debug, Default)]
struct GateCounts {
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    entries: std::sync::atomic::AtomicUsize,
}

/// Held while inside a [`Gate`]; dropping it frees the place.
#[derive(Debug)]
pub struct GatePass {
    counts: std::sync::Arc<GateCounts>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Gate {
    /// A gate letting `permits` (at least 1) in at once.
    pub fn new(permits: usize) -> Self {
        Self {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
            counts: Default::default(),
        }
    }

    /// Waits for a place.
    ///
    /// # Errors
    /// [`crate::error::Error::Task`] if the gate was closed (never, in practice).
    pub async fn enter(&self) -> crate::error::Result<GatePass> {
        use std::sync::atomic::Ordering::Relaxed;
        let permit = std::sync::Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| crate::error::Error::Task)?;
        let now = self.counts.running.fetch_add(1, Relaxed) + 1;
        self.counts.peak.fetch_max(now, Relaxed);
        self.counts.entries.fetch_add(1, Relaxed);
        Ok(GatePass {
            counts: std::sync::Arc::clone(&self.counts),
            _permit: permit,
        })
    }

    /// How many are inside now.
    pub fn running(&self) -> usize {
        self.counts
            .running
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The most that were ever inside at once.
    pub fn peak(&self) -> usize {
        self.counts.peak.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many entered so far.
    pub fn entries(&self) -> usize {
        self.counts
            .entries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs `work` on a task of its own once the gate lets it in, and waits for its output.
    ///
    /// The task holds the pass until `work` ends. If the caller goes away first (the client
    /// closed its connection, or the request's time-out answered), the task is not stopped
    /// mid-stage: it keeps its place in the gate, so the gate bounds the computations actually
    /// running, and `work` can see through its [`Wanted`] that nobody waits any more and stop
    /// at its next stage boundary.
    ///
    /// # Errors
    /// [`crate::error::Error::Task`] if the gate was closed or the task panicked.
    pub async fn run<T, Fut>(&self, work: impl FnOnce(Wanted) -> Fut) -> crate::error::Result<T>
    where
        T: Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        use tracing::Instrument as _;
        let pass = self.enter().await?;
        let wanted = Wanted(std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
            true,
        )));
        // Dropped with the caller's future, or after the output arrived: either way the work
        // is no longer awaited from then on.
        let _waiting = Waiting(wanted.clone());
        let fut = work(wanted);
        let task = tokio::spawn(
            async move {
                let _pass = pass;
                fut.await
            }
            .in_current_span(),
        );
        task.await.map_err(|_| crate::error::Error::Task)
    }
}

/// Whether the caller of [`Gate::run`] still waits for the work's output.
#[derive(Debug, Clone)]
pub struct Wanted(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Wanted {
    /// False once the caller went away: what is left to compute would reach nobody.
    pub fn still(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The caller's side of a [`Wanted`]: clears it when dropped.
struct Waiting(Wanted);

impl Drop for Waiting {
    fn drop(&mut self) {
        (self.0)
            .0
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        self.counts
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

    /// Work run through the gate answers its caller; while it runs, it is wanted.
    #[tokio::test]
    async fn run_returns_the_work_output() {
        let gate = Gate::new(1);
        let out = gate
            .run(|wanted| async move { wanted.still() })
            .await
            .unwrap();
        assert!(out);
        assert_eq!((gate.entries(), gate.running(), gate.peak()), (1, 0, 1));
    }

    /// A caller that goes away (a closed connection, a time-out) leaves its work holding the
    /// place until the work ends: the next one waits for it, and the work can tell nobody waits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_work_keeps_its_place_until_it_ends() {
        use std::time::Duration;
        let gate = Gate::new(1);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (seen, saw) = tokio::sync::oneshot::channel::<bool>();
        let caller = gate.run(move |wanted| async move {
            let _ = released.await;
            let _ = seen.send(wanted.still());
        });
        // The caller gives up while the work waits to be released.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), caller)
                .await
                .is_err()
        );
        assert_eq!(
            gate.running(),
            1,
            "the abandoned work still holds its place"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), gate.enter())
                .await
                .is_err(),
            "nobody else gets in while it runs"
        );
        release.send(()).unwrap();
        assert!(!saw.await.unwrap(), "the work sees that nobody waits");
        let next = tokio::time::timeout(Duration::from_secs(10), gate.enter())
            .await
            .expect("the place is freed when the work ends")
            .unwrap();
        assert_eq!((gate.running(), gate.peak(), gate.entries()), (1, 1, 2));
        drop(next);
        assert_eq!(gate.running(), 0);
    }
}
