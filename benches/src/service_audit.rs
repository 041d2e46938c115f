//! `theta-bench service-audit`: what auditing costs on a request path of the service, and how
//! many events per second the trail takes through the service.
//!
//! Two endpoints (`--endpoint`):
//! * `window` (default, the one the accountability issue names): the standard page — 20 s of the
//!   generated 24 h × 32 ch × 256 Hz recording, double banana, 0.5–70 Hz order 4 + 50 Hz notch,
//!   zero-phase, min/max to 1920 px — from the encrypted store, by the demo interpreter's bearer
//!   session, at seeded random starts (`recording.read_window` event per request);
//! * `account`: `GET /api/accounts/{id}` by an administrator (`account.read`): an authenticated
//!   read with almost no work of its own, so the audit path's share is the largest it can be.
//!
//! Requests go in process through the router (no TLS, no socket: the difference between the two
//! configurations is the audit path alone). Two states over the same database and store, measured
//! in alternating rounds of the same run:
//! * `trail`: the hash-chained SQLite trail (`TrailSink` → `AuditAppender`, durable batches,
//!   Ed25519 checkpoints) that `theta serve` uses;
//! * `none`: a sink that drops events (the same code path otherwise: detectors, metrics).
//!
//! Sequential requests give the latency distribution (p50/p99 per configuration, medians over
//! rounds); `--concurrency` tasks on a multi-thread runtime give the sustained throughput, and
//! for the trail the events committed per second (flushed at the end of the timed window).

use crate::stats::{median, percentile};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde::Serialize;
use theta_server::accounts::{self, NewAccount, Role};
use theta_server::audit::{AuditSink, TrailSink};
use theta_server::auth::{password, totp};
use theta_server::cli::demo::DEMO_USER;
use theta_server::config::{ProfileKind, RateSettings, Settings};
use theta_server::db::Db;
use theta_server::{AppState, AuditEvent, router};

use crate::store::{bench_file, warm_page_cache};
use tower::ServiceExt;

/// The request measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// The standard page from the window endpoint.
    Window,
    /// An administrator's read of one account.
    Account,
}

/// Options of `theta-bench service-audit`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceAuditArgs {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The request measured.
    #[arg(long, value_enum, default_value_t = Endpoint::Window)]
    pub endpoint: Endpoint,
    /// Hours of the generated recording (window endpoint).
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Sequential requests per configuration and round (default 400 windows, 5000 account reads).
    #[arg(long)]
    pub requests: Option<usize>,
    /// Alternating rounds (medians are reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Concurrent request tasks for the throughput phase.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds of the throughput phase per configuration.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

/// Figures of one run.
#[derive(Debug, Serialize)]
pub struct ServiceAuditResults {
    /// The request measured.
    pub endpoint: Endpoint,
    /// Sequential requests per configuration and round.
    pub requests: usize,
    /// Rounds.
    pub rounds: usize,
    /// Median over rounds of p50 latency, µs, without auditing.
    pub none_p50_us: f64,
    /// Median over rounds of p99 latency, µs, without auditing.
    pub none_p99_us: f64,
    /// Median over rounds of p50 latency, µs, with the trail.
    pub trail_p50_us: f64,
    /// Median over rounds of p99 latency, µs, with the trail.
    pub trail_p99_us: f64,
    /// Requests/s with `concurrency` tasks, without auditing.
    pub none_requests_per_s: f64,
    /// Requests/s with `concurrency` tasks, with the trail.
    pub trail_requests_per_s: f64,
    /// Events committed durably per second by the trail during the throughput phase (flush
    /// included).
    pub trail_events_per_s: f64,
    /// Events in the trail at the end (all phases).
    pub trail_events_total: u64,
}

/// Drops every event: the "no auditing" configuration.
#[derive(Debug, Default)]
struct NullSink;

impl AuditSink for NullSink {
    fn record(&self, _event: AuditEvent) {}
}

const PASSWORD: &str = "Kq7#vLm2!xTz9p";

/// Creates the administrator `pmartin` with TOTP; returns (account id, TOTP secret).
fn administrator(base: &AppState) -> anyhow::Result<(String, String)> {
    let now = chrono::Utc::now();
    let secret = totp::generate_secret();
    let hash = password::hash(PASSWORD)?;
    let keys = base.secrets();
    let admin = base.db().call_blocking(|c| -> theta_server::Result<_> {
        let a = accounts::insert(
            c,
            &NewAccount {
                username: "pmartin".into(),
                first_name: "Paul".into(),
                last_name: "Martin".into(),
                email: "pmartin@chu.example.fr".into(),
                role: Role::Administrator,
                tenant_id: None,
                guest_expires_at: None,
            },
            &hash,
            None,
            false,
            now,
        )?;
        accounts::set_password(c, &a.id, &hash, false, now)?;
        let sealed = keys.seal_totp(&a.id, &secret)?;
        accounts::set_totp(c, &a.id, Some(&sealed), true)?;
        Ok(a)
    })?;
    Ok((admin.id, secret))
}

/// Logs an account in (password, then TOTP) and returns the bearer token.
async fn login(
    app: &axum::Router,
    username: &str,
    password: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let send = |path: &str, body: serde_json::Value| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let r = app
        .clone()
        .oneshot(send(
            "/api/auth/login",
            serde_json::json!({"username": username, "password": password}),
        ))
        .await?;
    anyhow::ensure!(
        r.status() == StatusCode::OK,
        "password step: {}",
        r.status()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(r.into_body(), BODY_LIMIT).await?)?;
    let mfa = v["mfa_token"].as_str().context("mfa_token")?.to_owned();
    let now = u64::try_from(chrono::Utc::now().timestamp())?;
    let code = totp::code_at(secret, now)?;
    let r = app
        .clone()
        .oneshot(send(
            "/api/auth/mfa/verify",
            serde_json::json!({"mfa_token": mfa, "code": code}),
        ))
        .await?;
    anyhow::ensure!(
        r.status() == StatusCode::OK,
        "second factor: {}",
        r.status()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(r.into_body(), BODY_LIMIT).await?)?;
    Ok(v["token"].as_str().context("token")?.to_owned())
}

fn read_req(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request")
}

/// Largest answer read back (a standard page is about 0.46 MB of JSON, 1.3 MB with
/// `precision=full`).
const BODY_LIMIT: usize = 64 << 20;

/// The paths requested: the same one, or a page at the `i`-th seeded start.
#[derive(Debug, Clone)]
enum Paths {
    Fixed(String),
    Pages { recording: String, duration: f64 },
}

impl Paths {
    fn at(&self, i: usize) -> String {
        match self {
            Paths::Fixed(p) => p.clone(),
            Paths::Pages {
                recording,
                duration,
            } => format!(
                "/api/recordings/{recording}/window?start={}&{}",
                crate::service::start_at(i, *duration),
                crate::service::PAGE
            ),
        }
    }
}

async fn sequential(
    app: &axum::Router,
    paths: &Paths,
    from: usize,
    token: &str,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let req = read_req(&paths.at(from + i), token);
        let t = Instant::now();
        let r = app.clone().oneshot(req).await?;
        anyhow::ensure!(r.status() == StatusCode::OK, "request: {}", r.status());
        let body = axum::body::to_bytes(r.into_body(), BODY_LIMIT).await?;
        lat.push(u64::try_from(t.elapsed().as_nanos())?);
        std::hint::black_box(body);
    }
    lat.sort_unstable();
    // Nanoseconds to microseconds.
    let us = |p| percentile(&lat, p) as f64 / 1000.0;
    Ok((us(0.50), us(0.99)))
}

async fn throughput(
    app: &axum::Router,
    paths: &Paths,
    token: &str,
    tasks: usize,
    secs: u64,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1_000_000));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (app, paths, token) = (app.clone(), paths.clone(), token.to_owned());
        let next = Arc::clone(&next);
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = app
                    .clone()
                    .oneshot(read_req(&paths.at(i), &token))
                    .await
                    .expect("infallible");
                assert_eq!(r.status(), StatusCode::OK);
                let _ = axum::body::to_bytes(r.into_body(), BODY_LIMIT).await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await?;
    }
    Ok(total)
}

/// Runs the benchmark.
///
/// # Errors
/// Setup failures (database, trail, login).
pub fn run(args: &ServiceAuditArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &ServiceAuditArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::for_kind(ProfileKind::Dev, dir.path());
    // The rate limits would throttle the load generator: lifted for the measurement.
    let open = RateSettings {
        per_second: 1e9,
        burst: 1_000_000_000,
    };
    settings.http.rate_per_address = open;
    settings.http.rate_per_account = open;
    settings.http.max_concurrent_requests = 4096;
    let db = Db::open(&dir.path().join("theta.db"))?;
    let trail = Arc::new(TrailSink::open(&settings)?);
    let requests = args.requests.unwrap_or(match args.endpoint {
        Endpoint::Window => 400,
        Endpoint::Account => 5_000,
    });
    let (base, paths, username, password, secret) = match args.endpoint {
        Endpoint::Account => {
            let base = AppState::new(settings, db)?;
            let (id, secret) = administrator(&base)?;
            let path = format!("/api/accounts/{id}");
            (
                base,
                Paths::Fixed(path),
                "pmartin".to_owned(),
                PASSWORD.to_owned(),
                secret,
            )
        }
        Endpoint::Window => {
            let file = bench_file(args.hours, 32, 256.0)?;
            warm_page_cache(&file)?;
            let (base, recording, duration, creds) =
                crate::service::demo_state(&file, settings, db).await?;
            (
                base,
                Paths::Pages {
                    recording,
                    duration,
                },
                DEMO_USER.to_owned(),
                creds.password,
                creds.totp_secret,
            )
        }
    };
    let with_trail = router(
        base.clone()
            .with_audit(Arc::clone(&trail) as Arc<dyn AuditSink>),
    );
    let without = router(base.clone().with_audit(Arc::new(NullSink)));
    let token = login(&with_trail, &username, &password, &secret).await?;
    // Warm-up of both paths (SQLite caches, allocator, DSP plans).
    let warm = (requests / 10).max(20);
    sequential(&with_trail, &paths, 0, &token, warm).await?;
    sequential(&without, &paths, warm, &token, warm).await?;

    let (mut n50, mut n99, mut t50, mut t99) = (vec![], vec![], vec![], vec![]);
    let mut from = 2 * warm;
    for round in 0..args.rounds {
        // Alternate which goes first, so drift affects both alike; each run asks for pages of
        // its own (no configuration finds the other's pages in the cache).
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for audited in order {
            let app = if audited { &with_trail } else { &without };
            let (p50, p99) = sequential(app, &paths, from, &token, requests).await?;
            from += requests;
            if audited {
                t50.push(p50);
                t99.push(p99);
            } else {
                n50.push(p50);
                n99.push(p99);
            }
        }
    }
    trail.flush().map_err(anyhow::Error::msg)?;

    let n_none = throughput(&without, &paths, &token, args.concurrency, args.seconds).await?;
    let before = trail.committed().unwrap_or(0);
    let t = Instant::now();
    let n_trail = throughput(&with_trail, &paths, &token, args.concurrency, args.seconds).await?;
    let flush = Arc::clone(&trail);
    tokio::task::spawn_blocking(move || flush.flush())
        .await?
        .map_err(anyhow::Error::msg)?;
    let elapsed = t.elapsed().as_secs_f64();
    let committed = trail.committed().unwrap_or(0) - before;
    anyhow::ensure!(
        committed >= n_trail,
        "every request's event is in the trail ({committed} < {n_trail})"
    );

    let res = ServiceAuditResults {
        endpoint: args.endpoint,
        requests,
        rounds: args.rounds,
        none_p50_us: median(&n50),
        none_p99_us: median(&n99),
        trail_p50_us: median(&t50),
        trail_p99_us: median(&t99),
        none_requests_per_s: n_none as f64 / args.seconds as f64,
        trail_requests_per_s: n_trail as f64 / args.seconds as f64,
        trail_events_per_s: committed as f64 / elapsed,
        trail_events_total: trail.committed().unwrap_or(0),
    };
    let tr = Arc::clone(&trail);
    tokio::task::spawn_blocking(move || tr.shutdown()).await??;
    let report = theta_engine::audit::verify_log(
        &base.settings().audit_log_path(),
        &theta_engine::audit::AuditVerifyKeys::default(),
    )?;
    anyhow::ensure!(
        report.is_ok(),
        "the trail written under load verifies: {report}"
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&res)?);
        return Ok(());
    }
    let what = match args.endpoint {
        Endpoint::Window => "GET /api/recordings/{id}/window, standard page",
        Endpoint::Account => "GET /api/accounts/{id}",
    };
    println!(
        "service audit overhead — {what} (in-process router), {} rounds x {requests} requests",
        args.rounds
    );
    println!(
        "{:<24} {:>10} {:>10} {:>14}",
        "configuration", "p50 µs", "p99 µs", "requests/s"
    );
    println!(
        "{:<24} {:>10.1} {:>10.1} {:>14.0}",
        "no audit (null sink)", res.none_p50_us, res.none_p99_us, res.none_requests_per_s
    );
    println!(
        "{:<24} {:>10.1} {:>10.1} {:>14.0}",
        "hash-chained trail", res.trail_p50_us, res.trail_p99_us, res.trail_requests_per_s
    );
    println!(
        "ratios trail/none: p50 {:.2}x, p99 {:.2}x, throughput {:.2}x",
        res.trail_p50_us / res.none_p50_us,
        res.trail_p99_us / res.none_p99_us,
        res.trail_requests_per_s / res.none_requests_per_s
    );
    println!(
        "trail through the service: {:.0} events/s committed durably ({} concurrent tasks, {} s); {} events total, chain verified",
        res.trail_events_per_s, args.concurrency, args.seconds, res.trail_events_total
    );
    Ok(())
}
