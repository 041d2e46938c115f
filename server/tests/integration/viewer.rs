//! The viewer in a real browser: Debian's Chromium driven through chromedriver (WebDriver) over
//! real TLS. Log in with TOTP, open a long recording, turn pages, switch to double banana and a
//! 0.5–35 Hz band, check drawn pixel columns against the API's min/max, add an annotation,
//! reload and see it, hit a forbidden recording, log out. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/viewer/`.
//!
//! Without chromedriver the test says so and passes, unless `THETA_REQUIRE_BROWSER=1` (set by
//! `.ci/run`, which installs Chromium). `THETA_VIEWER_HOURS` (default 24: the 24-hour
//! recording a physician reads; about 2 min of the debug test) sets the recording's length and
//! `THETA_VIEWER_TURNS` (default 10) the number of page turns whose latency (request sent →
//! page drawn, measured in the page) is reported.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use theta_server::accounts::{self, GrantScope, Role};
use theta_server::auth::totp;

use crate::support::*;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn start_browser() -> Option<(Driver, Client)> {
    let which = Command::new("chromedriver").arg("--version").output();
    if which.is_err() {
        assert!(
            std::env::var("THETA_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "chromedriver is required (apt-get install chromium chromium-driver)"
        );
        eprintln!("viewer test skipped: no chromedriver on PATH");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1600,1000",
                        "--force-device-scale-factor=1"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    for _ in 0..100 {
        if let Ok(c) = ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            return Some((driver, c));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Waits until `script` (an expression) is truthy.
async fn wait_for(c: &Client, script: &str, what: &str) {
    for _ in 0..600 {
        if js(c, &format!("return !!({script});")).await == json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = js(c, "return document.getElementById('error').textContent").await;
    panic!("timed out waiting for {what} (error banner: {err})");
}

/// Waits until the section (or element) with this id is shown.
async fn wait_shown(c: &Client, id: &str, what: &str) {
    wait_for(c, &format!("!document.getElementById('{id}').hidden"), what).await;
}

async fn rendered(c: &Client) -> u64 {
    js(c, "return +(document.body.dataset.rendered || 0)")
        .await
        .as_u64()
        .unwrap_or(0)
}

async fn shot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn click(c: &Client, what: Locator<'_>) {
    c.find(what).await.unwrap().click().await.unwrap();
}

async fn select(c: &Client, id: &str, value: &str) {
    let before = rendered(c).await;
    js(
        c,
        &format!(
            "const s = document.getElementById('{id}'); s.value = '{value}'; \
             s.dispatchEvent(new Event('change')); return true;"
        ),
    )
    .await;
    if id != "sens" && id != "calib" {
        wait_for(
            c,
            &format!("+(document.body.dataset.rendered||0) > {before}"),
            id,
        )
        .await;
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Password then TOTP in the login form (the manual clock moves one TOTP step first, so a code
/// is never replayed).
async fn browser_login(c: &Client, app: &TestApp, user: &User) {
    app.clock.advance(chrono::Duration::seconds(31));
    let name = c.find(Locator::Id("username")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys(&user.username).await.unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    click(c, Locator::Id("login-button")).await;
    wait_shown(c, "totp-form", "TOTP form").await;
    let code = totp::code_at(&user.totp_secret, app.clock_now().timestamp() as u64).unwrap();
    c.find(Locator::Id("totp"))
        .await
        .unwrap()
        .send_keys(&code)
        .await
        .unwrap();
    click(c, Locator::Id("totp-button")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physician_reads_a_recording_in_chromium() {
    let Some((_driver, c)) = start_browser().await else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::with_settings(|s| {
        s.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        s.public_origin = Some(format!("https://127.0.0.1:{port}"));
    })
    .with_data()
    .await;
    app.add_tenant("chu-a");
    app.add_tenant("chu-b");
    let hours = env_num("THETA_VIEWER_HOURS", 24.0);
    let rec = app.ingest_synth("chu-a", hours * 3600.0, 7).await;
    let other = app.ingest_synth("chu-b", 60.0, 8).await;
    let user = app.add_user("dlecteur", Role::Interpreter, Some("chu-a"));
    let (uid, now) = (user.id.clone(), app.clock_now());
    let r2 = rec.clone();
    app.db()
        .call_blocking(|conn| {
            accounts::add_grant(
                conn,
                &uid,
                &GrantScope::Recording {
                    tenant_id: "chu-a".into(),
                    recording_id: r2,
                },
                None,
                now,
            )
        })
        .unwrap();
    let app = app.serve_tls().await;
    let base = app.base_url();

    // Log in: password, then the TOTP code (the server's clock is the test's manual clock).
    c.goto(&format!("{base}/")).await.unwrap();
    wait_for(&c, "!document.getElementById('login').hidden", "login form").await;
    shot(&c, "01-login").await;
    browser_login(&c, &app, &user).await;
    wait_shown(&c, "list", "recording list").await;
    // Only the assigned recording is listed.
    let rows = js(
        &c,
        "return [...document.querySelectorAll('#recordings tbody tr')].map(r => r.dataset.id)",
    )
    .await;
    assert_eq!(rows, json!([rec]));
    shot(&c, "02-list").await;

    // Open it and turn pages with the keyboard.
    click(&c, Locator::Css("#recordings tbody tr")).await;
    wait_for(
        &c,
        "+(document.body.dataset.rendered||0) >= 1",
        "first page",
    )
    .await;
    shot(&c, "03-first-page").await;
    let turns = env_num("THETA_VIEWER_TURNS", 10.0) as usize;
    let mut latencies = Vec::new();
    for _ in 0..turns {
        let before = rendered(&c).await;
        js(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'})); return true;").await;
        wait_for(
            &c,
            &format!("+(document.body.dataset.rendered||0) > {before}"),
            "next page",
        )
        .await;
        latencies.push(
            js(&c, "return window.theta.lastRenderMs")
                .await
                .as_f64()
                .unwrap(),
        );
    }
    let start = js(&c, "return window.theta.start").await.as_f64().unwrap();
    assert!((start - 20.0 * turns as f64).abs() < 1e-6, "{start}");
    let (p50, p95) = (
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.95),
    );
    eprintln!(
        "viewer page turns: {turns} on a {hours} h recording: p50 {p50:.1} ms, p95 {p95:.1} ms"
    );
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer");
    std::fs::write(
        out.join("page-turns.json"),
        json!({"turns": turns, "hours": hours, "p50_ms": p50, "p95_ms": p95, "latencies_ms": latencies}).to_string(),
    )
    .unwrap();
    // One-second step back.
    let before = rendered(&c).await;
    js(&c, "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowLeft', shiftKey: true})); return true;").await;
    wait_for(
        &c,
        &format!("+(document.body.dataset.rendered||0) > {before}"),
        "step",
    )
    .await;
    assert_eq!(
        js(&c, "return window.theta.start").await.as_f64().unwrap(),
        start - 1.0
    );

    // Double banana, 0.5–35 Hz, no notch; a coarse sensitivity keeps every trace in its row.
    select(&c, "montage", "double-banana").await;
    select(&c, "hp", "0.5").await;
    select(&c, "lp", "35").await;
    select(&c, "sens", "100").await;
    let labels = js(&c, "return window.theta.page.labels").await;
    assert_eq!(labels[0], "Fp1-F7");
    assert_eq!(labels.as_array().unwrap().len(), 18, "{labels}");
    shot(&c, "04-double-banana").await;

    // The drawn pixels of a few columns equal the API's min/max for the same parameters.
    let probe = js(
        &c,
        "const S = window.theta, c = document.getElementById('traces'); \
         const g = c.getContext('2d'); const out = []; \
         for (const k of [0, 7, 17]) { for (const x of [5, 400, 911]) { \
           const top = Math.floor(k * S.layout.rowHeight), bot = Math.floor((k + 1) * S.layout.rowHeight); \
           const d = g.getImageData(x, top, 1, bot - top).data; let lo = null, hi = null; \
           for (let y = 0; y < bot - top; y++) { const i = 4 * y; \
             if (d[i] === 16 && d[i+1] === 42 && d[i+2] === 92) { if (hi === null) hi = y + top; lo = y + top; } } \
           out.push({k, x, first: hi, last: lo}); } } \
         return {probes: out, width: c.width, height: c.height, rowHeight: S.layout.rowHeight, \
                 scale: S.layout.scale, start: S.page.start, query: location.hash};",
    )
    .await;
    let width = probe["width"].as_u64().unwrap();
    let page_start = probe["start"].as_f64().unwrap();
    let session = app.login(&user).await;
    let q = format!(
        "/api/recordings/{rec}/window?start={page_start:.6}&duration=20&px={width}&montage=double-banana&units=physical&highpass=0.5&lowpass=35"
    );
    let (s, _, api) = app
        .send(req(Method::GET, &q, Some(&session.token), None))
        .await;
    assert_eq!(s, StatusCode::OK, "{api}");
    let row_h = probe["rowHeight"].as_f64().unwrap();
    let scale = probe["scale"].as_f64().unwrap();
    for p in probe["probes"].as_array().unwrap() {
        let (k, x) = (
            p["k"].as_u64().unwrap() as usize,
            p["x"].as_u64().unwrap() as usize,
        );
        let row = &api["rows"][k];
        let v = |which: &str, i: usize| row[which][i].as_f64().unwrap();
        let (mut lo, mut hi) = (v("min", x), v("max", x));
        if x > 0 {
            lo = lo.min(v("max", x - 1));
            hi = hi.max(v("min", x - 1));
        }
        let b = (k as f64 + 0.5) * row_h;
        let top = (b - hi * scale).floor();
        let bot = (b - lo * scale).ceil().max(top + 1.0) - 1.0;
        let (first, last) = (p["first"].as_f64().unwrap(), p["last"].as_f64().unwrap());
        assert!(
            (first - top).abs() <= 1.0 && (last - bot).abs() <= 1.0,
            "row {k} column {x}: drawn {first}..{last}, API says {top}..{bot}"
        );
    }

    // Add an annotation at a clicked point, reload, see it (with its author).
    click(&c, Locator::Id("traces")).await;
    c.find(Locator::Id("ann-text"))
        .await
        .unwrap()
        .send_keys("Pointe temporale gauche")
        .await
        .unwrap();
    click(&c, Locator::Id("ann-add")).await;
    wait_for(
        &c,
        "[...document.querySelectorAll('#annotations li .text')].some(e => e.textContent === 'Pointe temporale gauche')",
        "the new annotation",
    )
    .await;
    c.refresh().await.unwrap();
    wait_for(
        &c,
        "+(document.body.dataset.rendered||0) >= 1",
        "page after reload",
    )
    .await;
    wait_for(
        &c,
        "[...document.querySelectorAll('#annotations li')].some(e => e.textContent.includes('Pointe temporale gauche') && e.textContent.includes('dlecteur'))",
        "the annotation after reload",
    )
    .await;
    shot(&c, "05-annotation-after-reload").await;

    // A recording of another tenant: a plain error, not a blank page.
    c.goto(&format!("{base}/#rec={other}")).await.unwrap();
    c.refresh().await.unwrap();
    wait_shown(&c, "error", "error banner").await;
    let msg = js(&c, "return document.getElementById('error').textContent").await;
    assert!(msg.as_str().unwrap().contains("Access refused"), "{msg}");
    shot(&c, "06-forbidden").await;

    // An expired session: the next request says so and shows the login form.
    c.goto(&format!("{base}/#rec={rec}")).await.unwrap();
    c.refresh().await.unwrap();
    wait_for(&c, "+(document.body.dataset.rendered||0) >= 1", "page").await;
    app.clock.advance(chrono::Duration::seconds(16 * 60));
    js(&c, "const s = document.getElementById('montage'); s.value = 'average'; s.dispatchEvent(new Event('change')); return true;").await;
    wait_shown(&c, "login", "login after expiry").await;
    let msg = js(&c, "return document.getElementById('error').textContent").await;
    assert!(msg.as_str().unwrap().contains("session has ended"), "{msg}");
    shot(&c, "07-session-expired").await;

    // Sign in again: back to the same page. Then log out: the session is gone.
    browser_login(&c, &app, &user).await;
    wait_for(
        &c,
        "!document.getElementById('viewer').hidden && +(document.body.dataset.rendered||0) >= 1",
        "page after login",
    )
    .await;
    // Log out while a recording is still being opened: nothing it brings back may show or be
    // remembered (it used to put the recording in the address once the answers came back, so
    // the next sign-in on this screen reopened it).
    click(&c, Locator::Id("back")).await;
    wait_shown(&c, "list", "recording list").await;
    // The annotations and overview answers are held back 800 ms, so they land after the logout.
    js(
        &c,
        "const real = window.fetch; \
         window.fetch = (url, opts) => real(url, opts).then((r) => \
           /annotations|overview/.test(url) ? new Promise((ok) => setTimeout(() => ok(r), 800)) : r); \
         document.querySelector('#recordings tbody tr').click(); return true;",
    )
    .await;
    wait_shown(&c, "viewer", "viewer opening").await;
    click(&c, Locator::Id("logout2")).await;
    wait_shown(&c, "login", "login after logout").await;
    // Let every answer in flight arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = js(
        &c,
        "return [document.getElementById('login').hidden, \
         document.getElementById('viewer').hidden, location.hash];",
    )
    .await;
    assert_eq!(after, json!([false, true, ""]), "after logout");
    c.refresh().await.unwrap();
    wait_shown(&c, "login", "still logged out").await;
    shot(&c, "08-logged-out").await;

    // Lost connection: the server goes away while a page is being read.
    browser_login(&c, &app, &user).await;
    wait_shown(&c, "list", "recording list").await;
    click(&c, Locator::Css("#recordings tbody tr")).await;
    wait_for(&c, "+(document.body.dataset.rendered||0) >= 1", "page").await;
    let mut app = app;
    let (running, _) = app.tls.take().unwrap();
    running.stop().await.unwrap();
    js(&c, "const s = document.getElementById('montage'); s.value = 'transverse'; s.dispatchEvent(new Event('change')); return true;").await;
    wait_shown(&c, "error", "error banner").await;
    let msg = js(&c, "return document.getElementById('error').textContent").await;
    assert!(msg.as_str().unwrap().contains("Connection lost"), "{msg}");
    shot(&c, "09-connection-lost").await;
    c.close().await.unwrap();
}
