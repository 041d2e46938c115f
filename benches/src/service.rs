//! `theta-bench service`: the window endpoint serving the standard page over real HTTPS on
//! loopback, with 1, 16 and 200 concurrent clients.
//!
//! The service runs in this process exactly as `theta serve` does (rustls, the tower layers, the
//! authorisation and audit of every request, the encrypted store); the recording is the
//! generated 24 h × 32 ch × 256 Hz file shared with `theta-bench page`. Each client is a
//! keep-alive HTTP/1.1 connection of its own that logs in once (password + TOTP) and then asks
//! for standard pages (20 s, double banana, 0.5–70 Hz order 4 + 50 Hz notch, zero-phase with
//! real-data padding, min/max to 1920 px) at seeded random starts. Latency is request written →
//! whole JSON body read. Clients and server share the machine's cores, as a single-host
//! deployment would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use theta_engine::edf::ReadOptions;
use theta_engine::store::{EdfSource, IngestOptions, TenantId};
use theta_server::auth::totp;
use theta_server::cli::demo::{Credentials, DEMO_TENANT, DEMO_USER, ensure_interpreter};
use theta_server::config::{ProfileKind, Settings};
use theta_server::{AppState, serve_state};

use crate::store::{Latency, bench_file, warm_page_cache};

/// Arguments of `theta-bench service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Hours of recording to generate.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,16,200", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Timed requests per concurrency level (at least 2 per client).
    #[arg(long, default_value_t = 600)]
    pub requests: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ask for the page as an Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream`,
    /// the programmatic clients' form) instead of the viewer's JSON.
    #[arg(long)]
    pub arrow: bool,
}

/// Figures of one concurrency level.
#[derive(Debug, Serialize)]
pub struct Level {
    /// Concurrent clients.
    pub clients: usize,
    /// Requests timed.
    pub requests: usize,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests per second over the level's wall time.
    pub requests_per_s: f64,
}

/// The report.
#[derive(Debug, Serialize)]
pub struct ServiceReport {
    /// One line per concurrency level.
    pub levels: Vec<Level>,
    /// The page's representation: `json` or `arrow`.
    pub format: &'static str,
    /// Bytes of one page's answer.
    pub page_bytes: usize,
    /// The floor under every answer: `GET /api/me` (authenticated, authorised, audited, a few
    /// hundred bytes) over the same kind of connection, one client, median ms.
    pub floor_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub floor_p99_ms: f64,
    /// Worker threads of the server's runtime.
    pub runtime_threads: usize,
    /// Cores.
    pub cores: usize,
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

pub(crate) const PAGE: &str =
    "duration=20&montage=double-banana&highpass=0.5&lowpass=70&notch=50&order=4&px=1920";

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One keep-alive HTTPS connection.
struct Conn {
    sender: Sender,
    authority: String,
    token: Option<String>,
    accept: Option<&'static str>,
}

impl Conn {
    async fn open(addr: SocketAddr, tls: &tokio_rustls::TlsConnector) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let stream = tls.connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            authority: addr.to_string(),
            token: None,
            accept: None,
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Bytes)> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority);
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(a) = self.accept {
            b = b.header("accept", a);
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        let resp = self.sender.send_request(b.body(body)?).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    async fn login(&mut self, password: &str, secret: &str) -> Result<()> {
        let (s, b) = self
            .send(
                "POST",
                "/api/auth/login",
                Some(serde_json::json!({"username": DEMO_USER, "password": password})),
            )
            .await?;
        if s != 200 {
            bail!("login: {s} {}", String::from_utf8_lossy(&b));
        }
        let v: Value = serde_json::from_slice(&b)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let code = totp::code_at(secret, now)?;
        let (s, b) = self
            .send(
                "POST",
                "/api/auth/mfa/verify",
                Some(serde_json::json!({"mfa_token": v["mfa_token"], "code": code})),
            )
            .await?;
        if s != 200 {
            bail!("TOTP: {s} {}", String::from_utf8_lossy(&b));
        }
        let v: Value = serde_json::from_slice(&b)?;
        self.token = v["token"].as_str().map(str::to_owned);
        Ok(())
    }
}

pub(crate) fn start_at(i: usize, duration: f64) -> f64 {
    // A seeded, well-spread sequence of page starts (golden-ratio steps).
    let f = (i as f64 * 0.618_033_988_749_895).fract();
    (f * (duration - 20.0)).floor()
}

/// The service's state over a store holding `file` (ingested into the demo tenant), and the demo
/// interpreter's credentials on it; returns (state, recording id, duration s, credentials).
pub(crate) async fn demo_state(
    file: &std::path::Path,
    settings: Settings,
    db: theta_server::db::Db,
) -> Result<(AppState, String, f64, Credentials)> {
    let data = theta_server::data::open_store(&settings).await?;
    eprintln!("ingesting {} …", file.display());
    let src = EdfSource::open(file, ReadOptions::default())?;
    let report = data
        .store()
        .ingest(
            src,
            IngestOptions {
                tenant: TenantId::new(DEMO_TENANT)?,
                ..IngestOptions::default()
            },
        )
        .await?;
    let id = report.recording.to_string();
    let state = AppState::new(settings, db)?.with_data(data);
    let creds = ensure_interpreter(&state, std::slice::from_ref(&id))?;
    Ok((state, id, report.duration, creds))
}

/// Runs `theta-bench service`.
///
/// # Errors
/// Generation, ingest, server or request failures.
pub fn run(args: &ServiceArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run_async(args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "window endpoint, standard page ({} bytes of {}), HTTPS on loopback, {} cores",
            report.page_bytes, report.format, report.cores
        );
        println!(
            "floor (GET /api/me, 1 client): p50 {:.2} ms, p99 {:.2} ms",
            report.floor_p50_ms, report.floor_p99_ms
        );
        println!(
            "{:>8} {:>9} {:>10} {:>10} {:>12}",
            "clients", "requests", "p50 ms", "p99 ms", "requests/s"
        );
        for l in &report.levels {
            println!(
                "{:>8} {:>9} {:>10.2} {:>10.2} {:>12.1}",
                l.clients, l.requests, l.p50_ms, l.p99_ms, l.requests_per_s
            );
        }
    }
    Ok(())
}

async fn run_async(args: &ServiceArgs) -> Result<ServiceReport> {
    let path = bench_file(args.hours, 32, 256.0)?;
    warm_page_cache(&path)?;
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::for_kind(ProfileKind::Dev, dir.path());
    // Benchmark clients all come from 127.0.0.1 and share one account: lift the request
    // ceiling and the per-address / per-account rate limits above them (the limits themselves
    // are tested in the server's audit_trail tests).
    settings.http.max_concurrent_requests = 1024;
    let open = theta_server::config::RateSettings {
        per_second: 1e6,
        burst: 1_000_000,
    };
    settings.http.rate_per_address = open;
    settings.http.rate_per_account = open;
    let db = theta_server::serve::open_db(&settings)?;
    let (state, id, duration, creds) = demo_state(&path, settings, db).await?;
    let running = serve_state(state, std::future::pending()).await?;
    let addr = running.addr();
    let roots = theta_server::http_client::roots_from_pem(running.cert_pem())?;
    let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls_config));

    // One page to check the answer and measure its size.
    let mut probe = Conn::open(addr, &tls).await?;
    probe.login(&creds.password, &creds.totp_secret).await?;
    let first_page = format!("/api/recordings/{id}/window?start=0&{PAGE}");
    let (s, body) = probe.send("GET", &first_page, None).await?;
    if s != 200 {
        bail!("window: {s} {}", String::from_utf8_lossy(&body));
    }
    let v: Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(
        v["rows"].as_array().map(Vec::len) == Some(18),
        "18 derivations expected"
    );
    let accept = args.arrow.then_some(ARROW_STREAM);
    let page_bytes = if args.arrow {
        probe.accept = accept;
        let (s, body) = probe.send("GET", &first_page, None).await?;
        // An IPC stream opens with the continuation marker of its schema message.
        anyhow::ensure!(
            s == 200 && body.starts_with(&[0xff, 0xff, 0xff, 0xff]),
            "arrow window: {s}"
        );
        body.len()
    } else {
        body.len()
    };

    // The floor: the same stack (TLS, HTTP, session, authorisation, audit) without a page.
    let mut floor = Vec::with_capacity(300);
    for _ in 0..300 {
        let t = Instant::now();
        let (s, _) = probe.send("GET", "/api/me", None).await?;
        floor.push(t.elapsed());
        anyhow::ensure!(s == 200, "/api/me: {s}");
    }
    let floor = Latency::of(floor);

    let mut levels = Vec::new();
    let mut offset = 1usize;
    for &clients in &args.clients {
        let n = args.requests.max(2 * clients);
        // Log every client in before timing (logins are Argon2id: deliberately slow).
        let mut conns = Vec::with_capacity(clients);
        for _ in 0..clients {
            let mut c = Conn::open(addr, &tls).await?;
            c.token.clone_from(&probe.token);
            c.accept = accept;
            conns.push(c);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for mut c in conns {
            let next = Arc::clone(&next);
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let start = start_at(offset + i, duration);
                    let path = format!("/api/recordings/{id}/window?start={start}&{PAGE}");
                    let t = Instant::now();
                    let (s, body) = c.send("GET", &path, None).await?;
                    times.push(t.elapsed());
                    if s != 200 {
                        bail!("window: {s} {}", String::from_utf8_lossy(&body));
                    }
                }
                Ok::<Vec<Duration>, anyhow::Error>(times)
            }));
        }
        let mut all = Vec::with_capacity(n);
        for t in tasks {
            all.extend(t.await.context("client task")??);
        }
        let wall = t0.elapsed().as_secs_f64();
        let lat = Latency::of(all);
        eprintln!(
            "{clients} clients: p50 {:.2} ms, p99 {:.2} ms, {:.1} req/s",
            lat.p50_ms,
            lat.p99_ms,
            n as f64 / wall
        );
        levels.push(Level {
            clients,
            requests: n,
            p50_ms: lat.p50_ms,
            p99_ms: lat.p99_ms,
            requests_per_s: n as f64 / wall,
        });
        offset += n;
    }
    running.stop().await?;
    Ok(ServiceReport {
        levels,
        format: if args.arrow { "arrow" } else { "json" },
        page_bytes,
        floor_p50_ms: floor.p50_ms,
        floor_p99_ms: floor.p99_ms,
        runtime_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        cores: std::thread::available_parallelism().map_or(1, usize::from),
    })
}
