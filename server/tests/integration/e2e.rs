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
    let app = TestApp::new().serve_tls().await;
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
    // Logout with the CSRF token from the right origin works.
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
    // The test server's public origin is https://127.0.0.1:0 (port 0 in the profile), so the
    // real origin differs and the request is refused; without Origin (non-browser) it passes.
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app
        .send(cookie_req(
            Method::POST,
            "/api/auth/logout",
            &a,
            Some(&a.csrf),
            None,
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
