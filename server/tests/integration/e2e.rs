//! End-to-end over real TLS: a server from a configuration file on 127.0.0.1:0, the whole login
//! with cookies and CSRF, lockout, and no plain-HTTP answer.

use std::io::{Read, Write};

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use theta_server::Settings;
use theta_server::accounts::Role;
use theta_server::http_client::{HttpsClient, roots_from_pem};

use crate::support::*;

#[tokio::test]
async fn serve_from_a_config_file_and_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("theta.toml");
    std::fs::write(
        &cfg,
        "profile = \"dev\"\n[profiles.dev]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[profiles.dev.sessions]\nidle_timeout_secs = 600\n",
    )
    .unwrap();
    let settings = Settings::load(&cfg, None).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = theta_server::serve(settings, async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    assert!(dir.path().join("data/theta.db").exists());
    assert!(dir.path().join("data/tls/dev-cert.pem").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/ENVIRONMENT"))
            .unwrap()
            .trim(),
        "dev"
    );
    let client = HttpsClient::new(roots_from_pem(running.cert_pem()).unwrap());
    let url = format!("https://{}/readyz", running.addr());
    let resp = client
        .send(http::Request::get(&url).body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::STRICT_TRANSPORT_SECURITY]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );

    // The port speaks TLS only: a plain HTTP request gets no HTTP answer.
    let addr = running.addr();
    let plain = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    assert!(
        !plain.starts_with(b"HTTP/"),
        "plain HTTP answered: {:?}",
        String::from_utf8_lossy(&plain)
    );

    tx.send(()).unwrap();
    running.wait().await.unwrap();
}

#[tokio::test]
async fn login_cookies_csrf_and_lockout_over_tls() {
    let app = TestApp::tls_with(|_| {}).await;
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let user = app.add_user("cdurand", Role::Auditor, None);
    // Without the second factor there is no session.
    let (s, v) = app.password_step("cdurand", PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    let mfa = v["mfa_token"].as_str().unwrap();
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(mfa), None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let u = app.login(&user).await;
    let a = app.login(&admin).await;
    // Cookie session over TLS: reads work, writes need the CSRF token.
    assert_eq!(
        app.send(cookie_req(Method::GET, "/api/me", &u, None, None, None))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(cookie_req(
            Method::POST,
            "/api/auth/logout",
            &u,
            None,
            None,
            None
        ))
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Disabling the account ends its session at once.
    let (s, _, _) = app
        .send(req(
            Method::PATCH,
            &format!("/api/accounts/{}", user.id),
            Some(&a.token),
            Some(json!({"status": "disabled"})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.send(cookie_req(Method::GET, "/api/me", &u, None, None, None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = app.password_step("cdurand", PASSWORD).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_disabled"))
    );
    // Logout with the CSRF token: refused from a foreign origin, accepted from ours.
    let (s, _, _) = app
        .send(cookie_req(
            Method::POST,
            "/api/auth/logout",
            &a,
            Some(&a.csrf),
            Some("https://evil.example"),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let origin = app.base_url();
    let (s, _, _) = app
        .send(cookie_req(
            Method::POST,
            "/api/auth/logout",
            &a,
            Some(&a.csrf),
            Some(&origin),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&a.token), None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// The client address in audit events: the TCP peer, unless the peer is a trusted proxy, in
/// which case the right-most untrusted `X-Forwarded-For` hop.
#[tokio::test]
async fn client_address_honours_forwarded_for_only_from_trusted_proxies() {
    for (trusted, want) in [
        (vec![], "127.0.0.1"),
        (vec!["127.0.0.0/8".to_owned()], "203.0.113.7"),
    ] {
        let app = TestApp::tls_with(|s| s.http.trusted_proxies = trusted.clone()).await;
        let mut r = req(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "Nope#Nope1234"})),
        );
        r.headers_mut().insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().unwrap(),
        );
        assert_eq!(app.send(r).await.0, StatusCode::UNAUTHORIZED);
        let ev = app.audit.events();
        let e = ev
            .iter()
            .find(|e| e.action == theta_server::audit::AuditAction::LoginFailure)
            .unwrap();
        assert_eq!(
            e.origin.client_addr.unwrap().to_string(),
            want,
            "trusted {trusted:?}"
        );
        assert_eq!(e.origin.peer_addr.unwrap().to_string(), "127.0.0.1");
    }
}

/// The command line: bootstrap (once), access review in both formats, secret key, and a prod
/// profile refusing to start without a real certificate.
#[test]
fn admin_and_serve_commands() {
    let exe = env!("CARGO_BIN_EXE_theta");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("theta.toml");
    std::fs::write(
        &cfg,
        "profile = \"dev\"\n[profiles.dev]\ndata_dir = \"data\"\n[profiles.prod]\ndata_dir = \"proddata\"\npublic_origin = \"https://theta.example.fr\"\nsecrets_key_file = \"prod.key\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| std::process::Command::new(exe).args(args).output().unwrap();
    let c = cfg.to_str().unwrap();
    let out = run(&[
        "admin",
        "--config",
        c,
        "bootstrap",
        "--first-name",
        "Paul",
        "--last-name",
        "Martin",
        "--email",
        "paul.martin@theta.example.fr",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("username:           pmartin"), "{stdout}");
    let otp = stdout
        .lines()
        .find_map(|l| l.strip_prefix("  one-time password:  "))
        .unwrap();
    assert!(theta_server::auth::password::check_policy(otp, &[]).is_empty());
    let again = run(&[
        "admin",
        "--config",
        c,
        "bootstrap",
        "--first-name",
        "Anne",
        "--last-name",
        "Roy",
        "--email",
        "anne.roy@theta.example.fr",
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let out = run(&["admin", "--config", c, "access-review", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["username"], "pmartin");
    assert_eq!(rows[0]["bootstrap"], true);
    let out = run(&["admin", "--config", c, "access-review"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.starts_with("account_id,username,full_name,email,role,"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .contains(",pmartin,Paul Martin,"),
        "{csv}"
    );
    // A prod key, then prod refuses to serve without certificate files.
    let key = dir.path().join("prod.key");
    let out = run(&[
        "admin",
        "--config",
        c,
        "--profile",
        "prod",
        "secret-key",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("theta-secret-key v1 prod\n")
    );
    let out = run(&["serve", "--config", c, "--profile", "prod"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("requires tls.cert and tls.key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
