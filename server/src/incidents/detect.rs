//! Detectors over the audit event stream (sliding windows in memory) and the guard they drive:
//! account locks and address throttles with exponential back-off.
//!
//! | detector | fed by | fires when (defaults) | response | incident |
//! |---|---|---|---|---|
//! | brute force, account | `login.failure` / `login.mfa_failure` (bad password, bad code) | 10 in 15 min on one account | lock the account 1 min, doubling per repeat (max 1 day) | P2 `brute_force` |
//! | brute force, address | every failed login from one address | 20 in 15 min | throttle the address's logins, same back-off | P2 `brute_force` |
//! | credential stuffing | failed logins from one address | 10 distinct accounts in 15 min | throttle the address | P2 `credential_stuffing` |
//! | denial burst | `access.denied` (not rate limits) | 20 in 5 min by one account or from one address | — | P2 `access_denials` |
//! | flood | rate-limiter refusals | 200 in 5 min from one address / 50 addresses | (the rate limiter) | P2 `dos_small` / P1 `dos_wide` |
//! | integrity | the store's integrity errors | any | — | P1 `integrity` |
//! | audit chain | periodic `verify` of the trail | any finding | — | P1 `audit_chain` |
//!
//! A detector that fired stays quiet for one window for the same key, so a continuing attack
//! updates its incident rather than opening one per event.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use super::{Category, Detection, Indicator, IndicatorKind, Priority};
use crate::audit::{Actor, AuditAction, AuditEvent, Reason, ResourceKind};
use crate::config::IncidentSettings;

/// Keys tracked per map before the oldest windows are dropped (memory bound under attack).
const MAX_KEYS: usize = 100_000;
/// Lock levels reset after this long without a new lock.
const LEVEL_RESET_HOURS: i64 = 24;

/// The lock key of an account: its id when known, else `u:` and the attempted user name.
pub fn account_key(e: &AuditEvent) -> Option<String> {
    if let Some((ResourceKind::Account, id)) = &e.resource {
        return Some(id.clone());
    }
    match &e.actor {
        Actor::Account(id) => Some(id.clone()),
        Actor::Attempted(u) => Some(format!("u:{u}")),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Times(VecDeque<i64>);

impl Times {
    fn push(&mut self, t: i64, window: i64) -> usize {
        self.0.push_back(t);
        while self.0.front().is_some_and(|&f| f <= t - window) {
            self.0.pop_front();
        }
        self.0.len()
    }
}

#[derive(Debug, Default)]
struct Detectors {
    account_failures: HashMap<String, (Times, Vec<IpAddr>)>,
    address_failures: HashMap<IpAddr, (Times, VecDeque<(i64, String)>)>,
    denials_by_account: HashMap<String, Times>,
    denials_by_address: HashMap<IpAddr, Times>,
    limited_by_address: HashMap<IpAddr, Times>,
    limited_addresses: VecDeque<(i64, IpAddr)>,
    quiet_until: HashMap<(Category, String), i64>,
    observed: u64,
}

/// Lock state of one account or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockState {
    /// Back-off level (1 for the first lock).
    pub level: u32,
    /// Locked until.
    pub until: DateTime<Utc>,
    /// Last time a lock was set.
    pub set_at: DateTime<Utc>,
}

/// What kind of thing a lock holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockScope {
    /// An account (id, or `u:` + attempted name).
    Account,
    /// A client address (its logins).
    Address,
}

impl LockScope {
    /// Stored code.
    pub fn code(self) -> &'static str {
        match self {
            LockScope::Account => "account",
            LockScope::Address => "address",
        }
    }
}

/// The detectors and the guard. One per service process.
#[derive(Debug)]
pub struct Engine {
    cfg: IncidentSettings,
    det: std::sync::Mutex<Detectors>,
    locks: std::sync::Mutex<HashMap<(LockScope, String), LockState>>,
}

/// A lock or throttle just set, to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLock {
    /// Account or address.
    pub scope: LockScope,
    /// Key.
    pub key: String,
    /// State.
    pub state: LockState,
}

impl Engine {
    /// Detectors with these thresholds.
    pub fn new(cfg: IncidentSettings) -> Self {
        Engine {
            cfg,
            det: std::sync::Mutex::new(Detectors::default()),
            locks: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The thresholds.
    pub fn settings(&self) -> &IncidentSettings {
        &self.cfg
    }

    fn secs(s: u64) -> Duration {
        Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
    }

    /// Restores a lock (start-up).
    pub fn restore(&self, scope: LockScope, key: String, state: LockState) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((scope, key), state);
    }

    /// Seconds left on a lock, if locked at `now`.
    pub fn locked(&self, scope: LockScope, key: &str, now: DateTime<Utc>) -> Option<u64> {
        let g = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&(scope, key.to_owned()))
            .filter(|s| s.until > now)
            .map(|s| {
                u64::try_from((s.until - now).num_seconds())
                    .unwrap_or(0)
                    .max(1)
            })
    }

    /// Lifts a lock (administrator unlock). The back-off level is kept.
    pub fn unlock(&self, scope: LockScope, key: &str, now: DateTime<Utc>) -> bool {
        let mut g = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        match g.get_mut(&(scope, key.to_owned())) {
            Some(s) if s.until > now => {
                s.until = now;
                true
            }
            _ => false,
        }
    }

    fn lock(&self, scope: LockScope, key: &str, now: DateTime<Utc>) -> NewLock {
        let mut g = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let prev = g.get(&(scope, key.to_owned())).copied();
        let level = match prev {
            Some(p) if now - p.set_at < Duration::hours(LEVEL_RESET_HOURS) => p.level + 1,
            _ => 1,
        };
        let base = self.cfg.lock_base_secs.max(1);
        let secs = base
            .saturating_mul(1u64 << (level - 1).min(40))
            .min(self.cfg.lock_max_secs);
        let state = LockState {
            level,
            until: now + Self::secs(secs),
            set_at: now,
        };
        g.insert((scope, key.to_owned()), state);
        NewLock {
            scope,
            key: key.to_owned(),
            state,
        }
    }

    fn quiet(d: &mut Detectors, cat: Category, key: &str, now_ms: i64, window_ms: i64) -> bool {
        let k = (cat, key.to_owned());
        if d.quiet_until.get(&k).is_some_and(|&u| now_ms < u) {
            return true;
        }
        d.quiet_until.insert(k, now_ms + window_ms);
        false
    }

    /// Feeds one audit event; returns the detections it triggers (with the locks already set).
    pub fn observe(&self, e: &AuditEvent) -> Vec<(Detection, Vec<NewLock>)> {
        let now = e.at;
        let t = now.timestamp_millis();
        let mut out = Vec::new();
        let mut d = self.det.lock().unwrap_or_else(|p| p.into_inner());
        d.observed += 1;
        if d.observed.is_multiple_of(4096) {
            prune(
                &mut d,
                t,
                self.window_ms(self.cfg.failure_window_secs.max(self.cfg.flood_window_secs)),
            );
        }
        let addr = e.origin.client_addr;
        match e.action {
            AuditAction::LoginFailure | AuditAction::LoginMfaFailure => {
                let fw = self.window_ms(self.cfg.failure_window_secs);
                // Only a wrong secret counts against the account; every failure (refusals while
                // locked or throttled included) counts against the address.
                let tested = matches!(
                    e.reason,
                    Some(Reason::BadPassword | Reason::UnknownAccount | Reason::MfaInvalid)
                );
                let key = account_key(e);
                if tested && let Some(key) = &key {
                    if d.account_failures.len() >= MAX_KEYS && !d.account_failures.contains_key(key)
                    {
                        prune(&mut d, t, fw);
                    }
                    let (times, addrs) = d.account_failures.entry(key.clone()).or_default();
                    let n = times.push(t, fw);
                    if let Some(a) = addr
                        && !addrs.contains(&a)
                        && addrs.len() < 64
                    {
                        addrs.push(a);
                    }
                    let addrs = addrs.clone();
                    if n >= self.cfg.account_failures as usize
                        && self.locked(LockScope::Account, key, now).is_none()
                    {
                        let lock = self.lock(LockScope::Account, key, now);
                        let mut ind = vec![account_indicator(key)];
                        ind.extend(addrs.iter().map(|a| Indicator::address(*a)));
                        out.push((
                            Detection {
                                category: Category::BruteForce,
                                priority: Priority::P2,
                                at: now,
                                tenant: e.tenant_id.clone(),
                                indicators: ind,
                                detail: format!(
                                    "{n} failed logins on one account within {} s",
                                    self.cfg.failure_window_secs
                                ),
                                responses: vec![format!(
                                    "account locked for {} s (back-off level {})",
                                    (lock.state.until - now).num_seconds(),
                                    lock.state.level
                                )],
                                lock_account: Some(key.clone()),
                            },
                            vec![lock],
                        ));
                    }
                }
                if let Some(a) = addr {
                    if d.address_failures.len() >= MAX_KEYS && !d.address_failures.contains_key(&a)
                    {
                        prune(&mut d, t, fw);
                    }
                    let (times, accounts) = d.address_failures.entry(a).or_default();
                    let n = times.push(t, fw);
                    if let Some(k) = &key {
                        accounts.push_back((t, k.clone()));
                    }
                    while accounts.front().is_some_and(|(f, _)| *f <= t - fw) {
                        accounts.pop_front();
                    }
                    let mut distinct: Vec<String> =
                        accounts.iter().map(|(_, k)| k.clone()).collect();
                    distinct.sort();
                    distinct.dedup();
                    let akey = a.to_string();
                    if n >= self.cfg.address_failures as usize
                        && self.locked(LockScope::Address, &akey, now).is_none()
                    {
                        let lock = self.lock(LockScope::Address, &akey, now);
                        let mut ind = vec![Indicator::address(a)];
                        ind.extend(distinct.iter().take(32).map(|k| account_indicator(k)));
                        out.push((
                            Detection {
                                category: Category::BruteForce,
                                priority: Priority::P2,
                                at: now,
                                tenant: None,
                                indicators: ind,
                                detail: format!(
                                    "{n} failed logins from one address within {} s",
                                    self.cfg.failure_window_secs
                                ),
                                responses: vec![format!(
                                    "address logins throttled for {} s (back-off level {})",
                                    (lock.state.until - now).num_seconds(),
                                    lock.state.level
                                )],
                                lock_account: None,
                            },
                            vec![lock],
                        ));
                    }
                    if distinct.len() >= self.cfg.stuffing_accounts as usize
                        && !Self::quiet(&mut d, Category::CredentialStuffing, &akey, t, fw)
                    {
                        let mut locks = Vec::new();
                        let mut responses = Vec::new();
                        if self.locked(LockScope::Address, &akey, now).is_none() {
                            let lock = self.lock(LockScope::Address, &akey, now);
                            responses.push(format!(
                                "address logins throttled for {} s (back-off level {})",
                                (lock.state.until - now).num_seconds(),
                                lock.state.level
                            ));
                            locks.push(lock);
                        }
                        let mut ind = vec![Indicator::address(a)];
                        ind.extend(distinct.iter().take(32).map(|k| account_indicator(k)));
                        out.push((
                            Detection {
                                category: Category::CredentialStuffing,
                                priority: Priority::P2,
                                at: now,
                                tenant: None,
                                indicators: ind,
                                detail: format!(
                                    "failed logins on {} distinct accounts from one address within {} s",
                                    distinct.len(),
                                    self.cfg.failure_window_secs
                                ),
                                responses,
                                lock_account: None,
                            },
                            locks,
                        ));
                    }
                }
            }
            AuditAction::AccessDenied if e.reason != Some(Reason::RateLimited) => {
                let w = self.window_ms(self.cfg.denial_window_secs);
                let burst = self.cfg.denial_burst as usize;
                if let Actor::Account(id) = &e.actor {
                    let n = d
                        .denials_by_account
                        .entry(id.clone())
                        .or_default()
                        .push(t, w);
                    if n >= burst && !Self::quiet(&mut d, Category::AccessDenials, id, t, w) {
                        out.push((
                            self.denial_detection(
                                e,
                                n,
                                vec![Indicator::new(IndicatorKind::Account, id)],
                            ),
                            vec![],
                        ));
                    }
                }
                if let Some(a) = addr {
                    let n = d.denials_by_address.entry(a).or_default().push(t, w);
                    if n >= burst
                        && !Self::quiet(&mut d, Category::AccessDenials, &a.to_string(), t, w)
                    {
                        out.push((
                            self.denial_detection(e, n, vec![Indicator::address(a)]),
                            vec![],
                        ));
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn denial_detection(&self, e: &AuditEvent, n: usize, mut ind: Vec<Indicator>) -> Detection {
        if let Some(t) = &e.tenant_id {
            ind.push(Indicator::new(IndicatorKind::Tenant, t));
        }
        if let Some(r) = &e.recording_id {
            ind.push(Indicator::new(IndicatorKind::Recording, r));
        }
        Detection {
            category: Category::AccessDenials,
            priority: Priority::P2,
            at: e.at,
            tenant: e.tenant_id.clone(),
            indicators: ind,
            detail: format!(
                "{n} access denials within {} s (last: {})",
                self.cfg.denial_window_secs,
                e.reason.map_or("unknown", |r| r.code())
            ),
            responses: vec![],
            lock_account: None,
        }
    }

    /// Feeds one refusal by the rate limiter.
    pub fn observe_rate_limited(&self, addr: IpAddr, now: DateTime<Utc>) -> Vec<Detection> {
        let t = now.timestamp_millis();
        let w = self.window_ms(self.cfg.flood_window_secs);
        let mut out = Vec::new();
        let mut d = self.det.lock().unwrap_or_else(|p| p.into_inner());
        if d.limited_by_address.len() >= MAX_KEYS && !d.limited_by_address.contains_key(&addr) {
            prune(&mut d, t, w);
        }
        let n = d.limited_by_address.entry(addr).or_default().push(t, w);
        if n == 1 {
            d.limited_addresses.push_back((t, addr));
        }
        while d
            .limited_addresses
            .front()
            .is_some_and(|(f, _)| *f <= t - w)
        {
            d.limited_addresses.pop_front();
        }
        if n >= self.cfg.flood_requests as usize
            && !Self::quiet(&mut d, Category::DosSmall, &addr.to_string(), t, w)
        {
            out.push(Detection {
                category: Category::DosSmall,
                priority: Priority::P2,
                at: now,
                tenant: None,
                indicators: vec![Indicator::address(addr)],
                detail: format!(
                    "{n} requests refused by the rate limiter from one address within {} s",
                    self.cfg.flood_window_secs
                ),
                responses: vec!["requests over the rate refused (429)".into()],
                lock_account: None,
            });
        }
        let mut distinct: Vec<IpAddr> = d.limited_addresses.iter().map(|(_, a)| *a).collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() >= self.cfg.flood_addresses as usize
            && !Self::quiet(&mut d, Category::DosWide, "*", t, w)
        {
            out.push(Detection {
                category: Category::DosWide,
                priority: Priority::P1,
                at: now,
                tenant: None,
                indicators: distinct
                    .iter()
                    .take(64)
                    .map(|a| Indicator::address(*a))
                    .collect(),
                detail: format!(
                    "{} addresses refused by the rate limiter within {} s: platform-wide flood",
                    distinct.len(),
                    self.cfg.flood_window_secs
                ),
                responses: vec!["requests over the rate refused (429)".into()],
                lock_account: None,
            });
        }
        out
    }

    fn window_ms(&self, secs: u64) -> i64 {
        i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

fn account_indicator(key: &str) -> Indicator {
    match key.strip_prefix("u:") {
        Some(u) => Indicator::new(IndicatorKind::Username, u),
        None => Indicator::new(IndicatorKind::Account, key),
    }
}

/// Drops windows with nothing left in them.
fn prune(d: &mut Detectors, t: i64, window: i64) {
    let old = |times: &VecDeque<i64>| times.back().is_none_or(|&l| l <= t - window);
    d.account_failures.retain(|_, (w, _)| !old(&w.0));
    d.address_failures.retain(|_, (w, _)| !old(&w.0));
    d.denials_by_account.retain(|_, w| !old(&w.0));
    d.denials_by_address.retain(|_, w| !old(&w.0));
    d.limited_by_address.retain(|_, w| !old(&w.0));
    d.quiet_until.retain(|_, u| *u > t);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(at: DateTime<Utc>, user: &str, addr: &str) -> AuditEvent {
        let mut e = AuditEvent::new(at, AuditAction::LoginFailure);
        e.actor = Actor::Attempted(user.into());
        e.reason = Some(Reason::BadPassword);
        e.origin.client_addr = Some(addr.parse().unwrap());
        e
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_780_000_000 + s, 0).unwrap()
    }

    #[test]
    fn account_lock_doubles_and_fires_once_per_lock() {
        let g = Engine::new(IncidentSettings::default());
        let mut fired = 0;
        for i in 0..10 {
            fired += g.observe(&failure(t(i), "alice", "192.0.2.1")).len();
        }
        assert_eq!(fired, 1);
        assert_eq!(g.locked(LockScope::Account, "u:alice", t(10)), Some(59));
        // While locked, more failures do not lock again.
        assert!(g.observe(&failure(t(11), "alice", "192.0.2.1")).is_empty());
        // After the lock, the next failure re-locks at level 2 (120 s).
        let d = g.observe(&failure(t(80), "alice", "192.0.2.1"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1[0].state.level, 2);
        assert_eq!(g.locked(LockScope::Account, "u:alice", t(80)), Some(120));
    }

    #[test]
    fn stuffing_and_address_throttle() {
        let g = Engine::new(IncidentSettings::default());
        let mut cats = Vec::new();
        for i in 0..20 {
            for (d, _) in g.observe(&failure(t(i), &format!("user{i}"), "198.51.100.9")) {
                cats.push(d.category);
            }
        }
        // Stuffing fires at 10 distinct accounts and throttles the address, so the address
        // threshold (20) finds it already throttled and stays quiet.
        assert_eq!(cats, vec![Category::CredentialStuffing]);
        assert!(
            g.locked(LockScope::Address, "198.51.100.9", t(20))
                .is_some()
        );
        assert!(
            g.locked(LockScope::Address, "198.51.100.10", t(20))
                .is_none()
        );
    }

    #[test]
    fn floods_small_then_wide() {
        let cfg = IncidentSettings {
            flood_requests: 5,
            flood_addresses: 3,
            ..IncidentSettings::default()
        };
        let g = Engine::new(cfg);
        let a: IpAddr = "192.0.2.50".parse().unwrap();
        let n: usize = (0..10).map(|i| g.observe_rate_limited(a, t(i)).len()).sum();
        assert_eq!(n, 1, "one small-scale detection per window");
        let b: IpAddr = "192.0.2.51".parse().unwrap();
        let c: IpAddr = "192.0.2.52".parse().unwrap();
        assert!(g.observe_rate_limited(b, t(11)).is_empty());
        let d = g.observe_rate_limited(c, t(12));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].category, Category::DosWide);
        assert_eq!(d[0].priority, Priority::P1);
    }
}
