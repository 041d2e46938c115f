//! Test helpers: an in-process app with an injected clock and audit sink, users created
//! directly in the database, and the full login flow over HTTP.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use theta_server::accounts::{self, NewAccount, Role};
use theta_server::audit::MemoryAuditSink;
use theta_server::auth::{password, totp};
use theta_server::clock::ManualClock;
use theta_server::config::{ProfileKind, Settings};
use theta_server::db::Db;
use theta_server::http_client::HttpsClient;
use theta_server::{AppState, router};
use tower::ServiceExt;

/// Password given to every test user (policy-compliant, not on the common list).
pub(crate) const PASSWORD: &str = "Kq7#vLm2!xTz9p";

/// Argon2id hash of [`PASSWORD`], computed once per test binary.
pub(crate) fn password_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| password::hash(PASSWORD).unwrap())
}

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

/// The public origin of test settings (listen 127.0.0.1:0).
pub(crate) const ORIGIN: &str = "https://127.0.0.1:0";

/// A user created for a test.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) role: Role,
    pub(crate) tenant: Option<String>,
    pub(crate) totp_secret: String,
}

/// A logged-in session.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) token: String,
    pub(crate) csrf: String,
}

pub(crate) struct TestApp {
    pub(crate) state: AppState,
    pub(crate) clock: ManualClock,
    pub(crate) audit: Arc<MemoryAuditSink>,
    pub(crate) router: Router,
    pub(crate) dir: tempfile::TempDir,
    /// Set by [`TestApp::serve_tls`]: requests then go over real TLS to this server.
    pub(crate) tls: Option<(theta_server::Running, HttpsClient)>,
}

impl TestApp {
    pub(crate) fn new() -> TestApp {
        Self::with_settings(|_| {})
    }

    pub(crate) fn with_settings(f: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_kind(ProfileKind::Dev, dir.path());
        // One client address drives whole suites (the matrix, a browser): the rate limits are
        // tested on their own (`audit_trail::a_flooding_address_…`), which sets them back.
        let open = theta_server::config::RateSettings {
            per_second: 1e6,
            burst: 1_000_000,
        };
        settings.http.rate_per_address = open;
        settings.http.rate_per_account = open;
        f(&mut settings);
        let db = Db::open_in_memory().unwrap();
        let clock = ManualClock::new(t0());
        let audit = Arc::new(MemoryAuditSink::default());
        let state = AppState::new(settings, db)
            .unwrap()
            .with_clock(Arc::new(clock.clone()))
            .with_audit(Arc::clone(&audit) as _);
        let router = router(state.clone());
        TestApp {
            state,
            clock,
            audit,
            router,
            dir,
            tls: None,
        }
    }

    /// A real HTTPS server on a free loopback port whose public origin is that port (so the
    /// Origin check can be exercised), after `f` adjusts the settings.
    pub(crate) async fn tls_with(f: impl FnOnce(&mut Settings)) -> TestApp {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::with_settings(|s| {
            s.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            s.public_origin = Some(format!("https://127.0.0.1:{port}"));
            f(s);
        })
        .serve_tls()
        .await
    }

    /// Starts a real HTTPS server on 127.0.0.1:0 over the same state; later requests use it.
    pub(crate) async fn serve_tls(mut self) -> TestApp {
        let running = theta_server::serve_state(self.state.clone(), std::future::pending())
            .await
            .unwrap();
        let roots = theta_server::http_client::roots_from_pem(running.cert_pem()).unwrap();
        self.tls = Some((running, HttpsClient::new(roots)));
        self
    }

    /// Attaches a recording store (in the test's data folder) to the app.
    pub(crate) async fn with_data(mut self) -> TestApp {
        let data = theta_server::data::open_store(self.state.settings())
            .await
            .unwrap();
        self.state = self.state.clone().with_data(data);
        self.router = router(self.state.clone());
        self
    }

    /// Ingests a generated EDF+ recording (`seconds` long, 21 channels at 256 Hz) into
    /// `tenant`; returns its id.
    pub(crate) async fn ingest_synth(&self, tenant: &str, seconds: f64, seed: u64) -> String {
        let path = self.dir.path().join(format!("synth-{seed}.edf"));
        let spec = theta_fixtures::SynthSpec {
            seed,
            n_channels: 21,
            duration: seconds,
            ..theta_fixtures::SynthSpec::default()
        };
        theta_fixtures::write_synth_file(&spec, &path).unwrap();
        self.ingest_file(tenant, &path).await
    }

    /// Ingests an EDF/BDF file into `tenant`; returns its id.
    pub(crate) async fn ingest_file(&self, tenant: &str, path: &std::path::Path) -> String {
        let src = theta_engine::store::EdfSource::open(path, Default::default()).unwrap();
        let report = self
            .state
            .data()
            .expect("with_data first")
            .store()
            .ingest(
                src,
                theta_engine::store::IngestOptions {
                    tenant: theta_engine::store::TenantId::new(tenant).unwrap(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        report.recording.to_string()
    }

    pub(crate) fn base_url(&self) -> String {
        let (r, _) = self.tls.as_ref().expect("serve_tls first");
        format!("https://{}", r.addr())
    }

    pub(crate) fn db(&self) -> &Db {
        self.state.db()
    }

    pub(crate) fn add_tenant(&self, id: &str) {
        let now = self.clock_now();
        self.db()
            .call_blocking(|c| {
                accounts::create_tenant(c, Some(id), &format!("Tenant {id}"), None, now)
            })
            .unwrap();
    }

    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        use theta_server::clock::Clock;
        self.clock.now()
    }

    /// A user with [`PASSWORD`] (already changed, so no forced change) and TOTP enrolled.
    pub(crate) fn add_user(&self, username: &str, role: Role, tenant: Option<&str>) -> User {
        add_user_to(&self.state, self.clock_now(), username, role, tenant)
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = self.send_raw(req).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, v)
    }

    /// Sends and returns the raw body (a tar, an Arrow stream: not JSON).
    pub(crate) async fn send_raw(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        match &self.tls {
            None => {
                let resp = self.router.clone().oneshot(req).await.unwrap();
                let status = resp.status();
                let headers = resp.headers().clone();
                (
                    status,
                    headers,
                    axum::body::to_bytes(resp.into_body(), 1 << 24)
                        .await
                        .unwrap()
                        .to_vec(),
                )
            }
            Some((running, client)) => {
                let (mut parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 24).await.unwrap().to_vec();
                parts.uri = format!("https://{}{}", running.addr(), parts.uri)
                    .parse()
                    .unwrap();
                let resp = client.send(Request::from_parts(parts, body)).await.unwrap();
                let (p, b) = resp.into_parts();
                (p.status, p.headers, b)
            }
        }
    }

    /// Password step; returns the mfa_token.
    pub(crate) async fn password_step(
        &self,
        username: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(req(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            ))
            .await;
        (s, v)
    }

    /// Full login with TOTP (advances the clock one step first so codes never repeat).
    pub(crate) async fn login(&self, u: &User) -> Session {
        let (s, v) = self.password_step(&u.username, PASSWORD).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mfa = v["mfa_token"].as_str().unwrap().to_owned();
        self.clock.advance(chrono::Duration::seconds(31));
        let code = totp::code_at(&u.totp_secret, self.clock_now().timestamp() as u64).unwrap();
        let (s, h, v) = self
            .send(req(
                Method::POST,
                "/api/auth/mfa/verify",
                None,
                Some(json!({"mfa_token": mfa, "code": code})),
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(h.get_all(header::SET_COOKIE).iter().count(), 2);
        Session {
            token: v["token"].as_str().unwrap().to_owned(),
            csrf: v["csrf_token"].as_str().unwrap().to_owned(),
        }
    }
}

pub(crate) fn add_user_to(
    state: &AppState,
    now: DateTime<Utc>,
    username: &str,
    role: Role,
    tenant: Option<&str>,
) -> User {
    let new = NewAccount {
        username: username.into(),
        first_name: "Camille".into(),
        last_name: format!("Nom{}", username.len()),
        email: format!("{username}@chu.example.fr"),
        role,
        tenant_id: tenant.map(str::to_owned),
        guest_expires_at: None,
    };
    let secret = totp::generate_secret();
    let hash = password_hash().to_owned();
    let keys = state.secrets();
    let acc = state
        .db()
        .call_blocking(|c| -> theta_server::Result<_> {
            let a = accounts::insert(c, &new, &hash, None, false, now)?;
            accounts::set_password(c, &a.id, &hash, false, now)?;
            let sealed = keys.seal_totp(&a.id, &secret)?;
            accounts::set_totp(c, &a.id, Some(&sealed), true)?;
            Ok(a)
        })
        .unwrap();
    User {
        id: acc.id,
        username: acc.username,
        role,
        tenant: tenant.map(str::to_owned),
        totp_secret: secret,
    }
}

/// A JSON request, authenticated by bearer token when given.
pub(crate) fn req(
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// A request authenticated by the session cookie, with the CSRF header when `csrf` is given.
pub(crate) fn cookie_req(
    method: Method,
    path: &str,
    s: &Session,
    csrf: Option<&str>,
    origin: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(
        header::COOKIE,
        format!(
            "__Host-theta_session={}; __Host-theta_csrf={}",
            s.token, s.csrf
        ),
    );
    if let Some(c) = csrf {
        b = b.header("x-csrf-token", c);
    }
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// Runs the `theta` binary (without `THETA_KEK` from the caller's environment).
pub(crate) fn theta(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_theta"))
        .args(args)
        .env_remove("THETA_KEK")
        .output()
        .expect("run theta")
}

/// Asserts a `theta` run succeeded and returns its stdout.
pub(crate) fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `theta init` of a test store at `dir/eeg`, then `theta ingest` of each shared real file into
/// its tenant; returns the store path and the recording ids, in order.
pub(crate) fn cli_store(dir: &std::path::Path, files: &[(&str, &str)]) -> (String, Vec<String>) {
    let s = dir.join("eeg").to_str().unwrap().to_string();
    ok(&theta(&["init", "--store", &s, "--env", "test"]));
    let ids = files
        .iter()
        .map(|(file, tenant)| {
            let path = theta_fixtures::shared_eeg_dir().join(file);
            let out = ok(&theta(&[
                "ingest",
                "--store",
                &s,
                "--tenant",
                tenant,
                path.to_str().unwrap(),
            ]));
            let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
            line["recording_id"].as_str().unwrap().to_string()
        })
        .collect();
    (s, ids)
}
