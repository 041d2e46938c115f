//! Issue 7 on the service: every audited endpoint writes its event with the right fields (one
//! table), the route audit table covers every route, tampering is found by `theta audit verify`
//! at the exact place, brute force locks the account and opens one P2 incident notified by
//! webhook, a flooding address is throttled while others are served, and the prod profile's
//! refusals.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use theta_server::accounts::Role;
use theta_server::audit::{Actor, AuditAction, Audited, Outcome, Reason, ResourceKind};
use theta_server::config::{RateSettings, WebhookSettings};
use theta_server::incidents::register::{self, ListFilter};
use theta_server::incidents::{Category, Priority};
use theta_server::{AUDIT_TABLE, Settings};
use tower::ServiceExt;

use crate::support::*;

/// The request as sent from `addr` (what the TCP layer gives a real server).
fn from(addr: &str, mut r: Request<Body>) -> Request<Body> {
    let ip: IpAddr = addr.parse().unwrap();
    r.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    r
}

#[test]
fn every_route_is_in_the_audit_table() {
    // The route list is the audit table itself (`theta_server::routes`); no route twice.
    let mut table: Vec<_> = AUDIT_TABLE.iter().map(|(m, p, _)| (*m, *p)).collect();
    table.sort();
    let n = table.len();
    table.dedup();
    assert_eq!(table.len(), n, "a route is declared twice in AUDIT_TABLE");
    for (m, p, a) in AUDIT_TABLE {
        if let Audited::Exempt(why) = a {
            assert!(why.len() > 10, "{m} {p}: an exemption needs a reason");
        }
    }
}

/// One audited request and the event it must write.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    /// Who sends it: "admin", "auditor" or "" (no session).
    who: &'static str,
    status: StatusCode,
    action: AuditAction,
    outcome: Outcome,
    reason: Option<Reason>,
    resource: Option<(ResourceKind, String)>,
    tenant: Option<&'static str>,
}

#[tokio::test]
async fn every_audited_action_writes_its_event_with_the_right_fields() {
    let app = TestApp::new();
    app.add_tenant("chu-a");
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let auditor = app.add_user("aubert", Role::Auditor, None);
    let tech = app.add_user("tleroux", Role::Technician, Some("chu-a"));
    let a = app.login(&admin).await;
    let au = app.login(&auditor).await;
    let mut sids = Vec::new();
    for t in [&a.token, &au.token] {
        let (_, _, me) = app.send(req(Method::GET, "/api/me", Some(t), None)).await;
        sids.push(me["session_id"].as_str().unwrap().to_owned());
    }
    let (a_sid, au_sid) = (sids[0].clone(), sids[1].clone());
    // The export reads the profile's trail file: create it (empty).
    drop(theta_server::audit::open_log(app.state.settings()).unwrap());
    // A grant to withdraw.
    let (s, _, g) = app
        .send(req(
            Method::POST,
            &format!("/api/accounts/{}/grants", tech.id),
            Some(&a.token),
            Some(json!({"kind": "tenant", "tenant_id": "chu-a"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let grant = g["id"].as_str().unwrap().to_owned();

    let acc = |id: &str| Some((ResourceKind::Account, id.to_owned()));
    let cases = vec![
        Case {
            what: "wrong password",
            method: Method::POST,
            path: "/api/auth/login".into(),
            body: Some(json!({"username": "tleroux", "password": "Wrong#Password99"})),
            who: "",
            status: StatusCode::UNAUTHORIZED,
            action: AuditAction::LoginFailure,
            outcome: Outcome::Failure,
            reason: Some(Reason::BadPassword),
            resource: acc(&tech.id),
            tenant: Some("chu-a"),
        },
        Case {
            what: "password step",
            method: Method::POST,
            path: "/api/auth/login".into(),
            body: Some(json!({"username": "tleroux", "password": PASSWORD})),
            who: "",
            status: StatusCode::OK,
            action: AuditAction::LoginPassword,
            outcome: Outcome::Success,
            reason: None,
            resource: acc(&tech.id),
            tenant: Some("chu-a"),
        },
        Case {
            what: "bad mfa token",
            method: Method::POST,
            path: "/api/auth/mfa/verify".into(),
            body: Some(json!({"mfa_token": "nope", "code": "123456"})),
            who: "",
            status: StatusCode::UNAUTHORIZED,
            action: AuditAction::LoginMfaFailure,
            outcome: Outcome::Failure,
            reason: Some(Reason::SessionInvalid),
            resource: None,
            tenant: None,
        },
        Case {
            what: "list accounts",
            method: Method::GET,
            path: "/api/accounts".into(),
            body: None,
            who: "admin",
            status: StatusCode::OK,
            action: AuditAction::AccountRead,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "read one account",
            method: Method::GET,
            path: format!("/api/accounts/{}", tech.id),
            body: None,
            who: "admin",
            status: StatusCode::OK,
            action: AuditAction::AccountRead,
            outcome: Outcome::Success,
            reason: None,
            resource: acc(&tech.id),
            tenant: None,
        },
        Case {
            what: "auditor creating an account is denied",
            method: Method::POST,
            path: "/api/accounts".into(),
            body: Some(
                json!({"username": "nnouveau", "first_name": "Nina", "last_name": "Nouveau", "email": "nina@chu.example.fr", "role": "auditor"}),
            ),
            who: "auditor",
            status: StatusCode::FORBIDDEN,
            action: AuditAction::AccessDenied,
            outcome: Outcome::Denied,
            reason: Some(Reason::InsufficientRole),
            resource: None,
            tenant: None,
        },
        Case {
            what: "create account",
            method: Method::POST,
            path: "/api/accounts".into(),
            body: Some(
                json!({"username": "nnouveau", "first_name": "Nina", "last_name": "Nouveau", "email": "nina@chu.example.fr", "role": "auditor"}),
            ),
            who: "admin",
            status: StatusCode::CREATED,
            action: AuditAction::AccountCreate,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "disable account",
            method: Method::PATCH,
            path: format!("/api/accounts/{}", tech.id),
            body: Some(json!({"status": "disabled"})),
            who: "admin",
            status: StatusCode::OK,
            action: AuditAction::AccountDisable,
            outcome: Outcome::Success,
            reason: None,
            resource: acc(&tech.id),
            tenant: None,
        },
        Case {
            what: "withdraw grant",
            method: Method::DELETE,
            path: format!("/api/grants/{grant}"),
            body: None,
            who: "admin",
            status: StatusCode::NO_CONTENT,
            action: AuditAction::GrantDelete,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "create tenant",
            method: Method::POST,
            path: "/api/tenants".into(),
            body: Some(json!({"name": "CHU Z"})),
            who: "admin",
            status: StatusCode::CREATED,
            action: AuditAction::TenantCreate,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "list tenants",
            method: Method::GET,
            path: "/api/tenants".into(),
            body: None,
            who: "admin",
            status: StatusCode::OK,
            action: AuditAction::TenantRead,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "access review",
            method: Method::GET,
            path: "/api/access-review".into(),
            body: None,
            who: "auditor",
            status: StatusCode::OK,
            action: AuditAction::AdminAccessReview,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "unlock account",
            method: Method::POST,
            path: format!("/api/accounts/{}/unlock", tech.id),
            body: None,
            who: "admin",
            status: StatusCode::NO_CONTENT,
            action: AuditAction::AccountUnlock,
            outcome: Outcome::Success,
            reason: None,
            resource: acc(&tech.id),
            tenant: None,
        },
        Case {
            what: "audit export",
            method: Method::GET,
            path: "/api/audit/export?tenant=chu-a&format=csv".into(),
            body: None,
            who: "auditor",
            status: StatusCode::OK,
            action: AuditAction::AuditExport,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: Some("chu-a"),
        },
        Case {
            what: "administrator exporting the audit trail is denied",
            method: Method::GET,
            path: "/api/audit/export".into(),
            body: None,
            who: "admin",
            status: StatusCode::FORBIDDEN,
            action: AuditAction::AccessDenied,
            outcome: Outcome::Denied,
            reason: Some(Reason::InsufficientRole),
            resource: None,
            tenant: None,
        },
        Case {
            what: "incident register",
            method: Method::GET,
            path: "/api/incidents".into(),
            body: None,
            who: "auditor",
            status: StatusCode::OK,
            action: AuditAction::IncidentRead,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
        Case {
            what: "no session",
            method: Method::GET,
            path: "/api/accounts".into(),
            body: None,
            who: "",
            status: StatusCode::UNAUTHORIZED,
            action: AuditAction::AccessDenied,
            outcome: Outcome::Denied,
            reason: Some(Reason::NotAuthenticated),
            resource: None,
            tenant: None,
        },
        Case {
            what: "logout",
            method: Method::POST,
            path: "/api/auth/logout".into(),
            body: None,
            who: "auditor",
            status: StatusCode::NO_CONTENT,
            action: AuditAction::Logout,
            outcome: Outcome::Success,
            reason: None,
            resource: None,
            tenant: None,
        },
    ];
    let client = "192.0.2.77";
    for c in cases {
        let (token, account, session) = match c.who {
            "admin" => (
                Some(a.token.as_str()),
                Some(admin.id.as_str()),
                Some(a_sid.as_str()),
            ),
            "auditor" => (
                Some(au.token.as_str()),
                Some(auditor.id.as_str()),
                Some(au_sid.as_str()),
            ),
            _ => (None, None, None),
        };
        app.audit.clear();
        let mut r = req(c.method.clone(), &c.path, token, c.body.clone());
        r.headers_mut()
            .insert("user-agent", "theta-test/1".parse().unwrap());
        let (s, _, v) = app.send(from(client, r)).await;
        assert_eq!(s, c.status, "{}: {v}", c.what);
        let ev = app.audit.events();
        let e = ev
            .iter()
            .find(|e| e.action == c.action)
            .unwrap_or_else(|| panic!("{}: no {} event in {ev:#?}", c.what, c.action));
        assert_eq!(e.outcome, c.outcome, "{}", c.what);
        assert_eq!(e.reason, c.reason, "{}", c.what);
        assert_eq!(
            e.origin.client_addr.map(|a| a.to_string()).as_deref(),
            Some(client),
            "{}",
            c.what
        );
        assert_eq!(
            e.origin.user_agent.as_deref(),
            Some("theta-test/1"),
            "{}",
            c.what
        );
        if let Some(account) = account {
            assert_eq!(e.actor, Actor::Account(account.to_owned()), "{}", c.what);
            assert_eq!(e.session_id.as_deref(), session, "{}", c.what);
        }
        if let Some(r) = &c.resource {
            assert_eq!(e.resource.as_ref(), Some(r), "{}", c.what);
        }
        if let Some(t) = c.tenant {
            assert_eq!(e.tenant_id.as_deref(), Some(t), "{}", c.what);
        }
        // Within a millisecond of the (manual) clock, UTC.
        assert_eq!(e.at, app.clock_now(), "{}", c.what);
        // Every event converts to a valid engine event: ids only.
        let g = e.to_engine();
        assert_eq!(g.action(), c.action, "{}", c.what);
    }
}

// ---------------------------------------------------------------------------------------------
// `theta audit verify` finds tampering at the exact place.

fn theta(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_theta"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the log (consistent, WAL folded in) at `dst`.
fn copy_log(src: &Path, dst: &Path) {
    let c = rusqlite::Connection::open(src).unwrap();
    c.execute("VACUUM INTO ?1", [dst.to_str().unwrap()])
        .unwrap();
}

#[tokio::test]
async fn theta_audit_verify_reports_tampering_at_the_exact_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("theta.toml");
    std::fs::write(
        &cfg,
        "profile = \"dev\"\n[profiles.dev]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[profiles.dev.audit]\ncheckpoint_every_events = 4\n",
    )
    .unwrap();
    let settings = Settings::load(&cfg, None).unwrap();
    let log = settings.audit_log_path();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = theta_server::serve(settings, async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    // Twelve failed logins through the real service: twelve events in the trail (and the
    // credential-stuffing detector's own: address throttle, incident).
    let client = theta_server::http_client::HttpsClient::new(
        theta_server::http_client::roots_from_pem(running.cert_pem()).unwrap(),
    );
    for i in 0..12 {
        let body =
            json!({"username": format!("ghost{i}"), "password": "Nope#Nope1234"}).to_string();
        let r = http::Request::post(format!("https://{}/api/auth/login", running.addr()))
            .header("content-type", "application/json")
            .body(body.into_bytes())
            .unwrap();
        // After ten names from one address the stuffing detector throttles it (429): still a
        // failed login, still audited.
        let st = client.send(r).await.unwrap().status();
        assert!(
            st == StatusCode::UNAUTHORIZED || st == StatusCode::TOO_MANY_REQUESTS,
            "{st}"
        );
    }
    tx.send(()).unwrap();
    running.wait().await.unwrap();

    let cfg_s = cfg.to_str().unwrap();
    let (code, out, err) = theta(&["audit", "verify", "--config", cfg_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
    // The export sees the twelve failures (ids only), and is itself recorded.
    let (code, out, err) = theta(&["audit", "export", "--config", cfg_s, "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains("login.failure")).count(),
        12,
        "{out}"
    );
    assert!(!out.contains("Nope#Nope"), "no secrets in the trail");
    let (code, out, _) = theta(&["audit", "export", "--config", cfg_s, "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("audit.export"),
        "the first export is in the second"
    );

    // The stuffing detector opened one incident: the register from the command line.
    let (code, out, err) = theta(&["incidents", "--config", cfg_s, "--json", "list"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(list[0]["priority"], "P2");
    assert_eq!(list[0]["category"], "credential_stuffing");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let (code, out, _) = theta(&["incidents", "--config", cfg_s, "list", "--open"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("credential_stuffing"),
        "{out}"
    );
    let (code, out, _) = theta(&["incidents", "--config", cfg_s, "show", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("127.0.0.1") && out.contains("timeline"),
        "{out}"
    );
    let (code, out, err) = theta(&[
        "incidents",
        "--config",
        cfg_s,
        "update",
        &id,
        "--status",
        "contained",
        "--note",
        "address blocked at the firewall",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("contained"), "{out}");
    let (code, _, _) = theta(&[
        "incidents",
        "--config",
        cfg_s,
        "update",
        "no-such-incident",
        "--status",
        "closed",
    ]);
    assert_eq!(code, 2);
    let (code, out, _) = theta(&["incidents", "--config", cfg_s, "report"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("P2") && out.contains("credential_stuffing"),
        "{out}"
    );
    // Purge: nothing is a year old; the purge itself is recorded and the chain still verifies.
    let (code, out, err) = theta(&["audit", "purge", "--config", cfg_s]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("purged 0 events"), "{out}");
    let (code, out, _) = theta(&["audit", "verify", "--config", cfg_s]);
    assert_eq!(code, 0, "{out}");
    let (_, out, _) = theta(&["audit", "export", "--config", cfg_s, "--format", "jsonl"]);
    for action in [
        "audit.purge",
        "incident.update",
        "incident.read",
        "audit.verify",
    ] {
        assert!(out.contains(action), "{action} missing from the trail");
    }
    assert!(
        out.contains("cli:"),
        "the command line acts as cli:<OS user>"
    );

    let keys = theta_engine::audit::AuditVerifyKeys::published_path(&log);
    let keys_s = keys.to_str().unwrap().to_owned();
    let k: i64 = 5;
    let tampers: Vec<(&str, String, &str)> = vec![
        (
            "modified",
            format!("UPDATE events SET ts_ms = ts_ms + 1 WHERE seq = {k}"),
            "modified",
        ),
        (
            "one byte of the actor",
            format!("UPDATE events SET actor = 'ghosu' || substr(actor, 6) WHERE seq = {k}"),
            "modified",
        ),
        (
            "deleted",
            format!("DELETE FROM events WHERE seq = {k}"),
            "deleted",
        ),
        (
            "inserted",
            format!(
                "UPDATE events SET seq = seq + 1000000 WHERE seq >= {k}; \
                 UPDATE events SET seq = seq - 1000000 + 1 WHERE seq >= 1000000; \
                 INSERT INTO events SELECT {k}, v, ts_ms, action, outcome, actor_kind, actor, session, client_addr, \
                 user_agent, tenant, recording, resource_kind, resource_id, reason, prev_hash, randomblob(32) \
                 FROM events WHERE seq = {};",
                k - 1
            ),
            "inserted",
        ),
        (
            "reordered",
            format!(
                "UPDATE events SET seq = -1 WHERE seq = {k}; UPDATE events SET seq = {k} WHERE seq = {}; \
                 UPDATE events SET seq = {} WHERE seq = -1;",
                k + 1,
                k + 1
            ),
            "reordered",
        ),
    ];
    for (what, sql, kind) in tampers {
        let copy = dir.path().join(format!("tampered-{}.db", kind));
        let _ = std::fs::remove_file(&copy);
        copy_log(&log, &copy);
        // An attacker with write access to the file drops the append-only triggers first.
        rusqlite::Connection::open(&copy)
            .unwrap()
            .execute_batch(&format!(
                "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete; {sql}"
            ))
            .unwrap();
        let (code, out, err) = theta(&[
            "audit",
            "verify",
            "--log",
            copy.to_str().unwrap(),
            "--keys",
            &keys_s,
        ]);
        assert_eq!(code, 1, "{what}: {out}{err}");
        assert!(
            out.contains(&format!("first finding: {kind} at event {k}")),
            "{what}: {out}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Brute force: lock, one P2 incident, webhook.

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

async fn receive(State(r): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    let mut g = r.0.lock().unwrap();
    let first = g.is_empty();
    g.push((headers, serde_json::from_str(&body).unwrap_or(Value::Null)));
    // The first attempt fails: delivery must retry.
    if first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// A test HTTPS receiver on 127.0.0.1 with its own CA; returns (url, CA file, received, dir).
async fn receiver() -> (String, std::path::PathBuf, Received, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Partner CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_path = dir.path().join("partner-ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Received::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(got.clone());
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        leaf.pem().into_bytes(),
        leaf_key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    (format!("https://{addr}/hook"), ca_path, got, dir)
}

#[tokio::test]
async fn thirty_wrong_passwords_lock_the_account_and_open_one_p2_incident_notified_by_webhook() {
    let (url, ca, got, _rdir) = receiver().await;
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("hook.secret");
    std::fs::write(&secret, "partner-shared-secret-0123456789").unwrap();
    let app = TestApp::with_settings(|s| {
        s.incidents.webhooks = vec![WebhookSettings {
            tenant: "*".into(),
            url: url.clone(),
            secret_file: Some(secret.clone()),
            ca_file: Some(ca.clone()),
            max_attempts: 4,
        }];
    });
    app.add_tenant("chu-a");
    let victim = app.add_user("cdurand", Role::Interpreter, Some("chu-a"));
    let attacker = "198.51.100.9";
    for i in 0..30 {
        let r = req(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "cdurand", "password": format!("Guess#{i:04}abcdef")})),
        );
        let (s, _, v) = app.send(from(attacker, r)).await;
        assert!(
            s == StatusCode::UNAUTHORIZED
                || s == StatusCode::LOCKED
                || s == StatusCode::TOO_MANY_REQUESTS,
            "attempt {i}: {s} {v}"
        );
    }
    // Locked: even the right password is refused, from anywhere.
    let (s, _, v) = app
        .send(from(
            "203.0.113.20",
            req(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": "cdurand", "password": PASSWORD})),
            ),
        ))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::LOCKED, Some("account_locked")),
        "{v}"
    );
    app.state.incidents().settle().await;

    let all = app
        .db()
        .call_blocking(|c| register::list(c, &ListFilter::default()))
        .unwrap();
    assert_eq!(all.len(), 1, "exactly one incident: {all:#?}");
    let inc = &all[0];
    assert_eq!(
        (inc.priority, inc.category),
        (Priority::P2, Category::BruteForce)
    );
    assert_eq!(
        inc.deadline_at - inc.detected_at,
        chrono::Duration::hours(24)
    );
    assert_eq!(inc.detected_at, app.clock_now());
    let id = inc.id.clone();
    let detail = app
        .db()
        .call_blocking(|c| register::detail(c, &id))
        .unwrap()
        .unwrap();
    let values: Vec<&str> = detail.indicators.iter().map(|i| i.value.as_str()).collect();
    assert!(values.contains(&victim.id.as_str()), "{values:?}");
    assert!(values.contains(&attacker), "{values:?}");

    // The lock and the incident are in the trail.
    let ev = app.audit.events();
    assert!(ev.iter().any(|e| e.action == AuditAction::AccountLock
        && e.resource == Some((ResourceKind::Account, victim.id.clone()))));
    assert_eq!(
        ev.iter()
            .filter(|e| e.action == AuditAction::IncidentCreate)
            .count(),
        1
    );

    // Delivered to the partner after one retry, signed, ids only.
    let got = got.0.lock().unwrap().clone();
    assert!(
        got.len() >= 2,
        "one failed attempt then a delivery: {}",
        got.len()
    );
    let (h, body) = got.last().unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["priority"], "P2");
    assert_eq!(body["category"], "brute_force");
    assert_eq!(h["x-theta-event"], "incident.created");
    assert!(
        h["x-theta-signature"]
            .to_str()
            .unwrap()
            .starts_with("sha256=")
    );
    assert!(!body.to_string().contains("Guess#"), "no secrets notified");
}

/// A notification the partner did not acknowledge (its only attempt refused) stays owed: the
/// incident stays `open`, and the service's redelivery sends it again until it is acknowledged,
/// then never again.
#[tokio::test]
async fn an_unacknowledged_incident_notification_is_sent_again_until_delivered() {
    use theta_server::incidents::{Detection, Incidents};
    let (url, ca, got, _rdir) = receiver().await;
    let app = TestApp::with_settings(|s| {
        s.incidents.webhooks = vec![WebhookSettings {
            tenant: "*".into(),
            url: url.clone(),
            secret_file: None,
            ca_file: Some(ca.clone()),
            max_attempts: 1,
        }];
    });
    let det = Detection::new(
        Category::Integrity,
        Priority::P1,
        app.clock_now(),
        "a stored chunk failed authentication",
    );
    app.state.incidents().report(&app.state, det);
    app.state.incidents().settle().await;
    let all = app
        .db()
        .call_blocking(|c| register::list(c, &ListFilter::default()))
        .unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    let id = all[0].id.clone();
    let status = |app: &TestApp| {
        let id = id.clone();
        app.db()
            .call_blocking(move |c| register::detail(c, &id))
            .unwrap()
            .unwrap()
    };
    let d = status(&app);
    assert_eq!(
        d.incident.status.code(),
        "open",
        "the refused delivery notified nobody"
    );
    assert_eq!(d.notifications.len(), 1);
    assert!(d.notifications[0].delivered_at.is_none());
    assert_eq!(got.0.lock().unwrap().len(), 1);

    // Too recent to be sent again yet.
    let n = Incidents::redeliver_pending(&app.state, chrono::Duration::minutes(30)).await;
    assert_eq!(n, 0);
    assert_eq!(got.0.lock().unwrap().len(), 1);

    app.clock.advance(chrono::Duration::hours(1));
    let n = Incidents::redeliver_pending(&app.state, chrono::Duration::minutes(30)).await;
    assert_eq!(n, 1, "sent again and acknowledged");
    {
        let got = got.0.lock().unwrap();
        assert_eq!(got.len(), 2);
        let (h, body) = &got[1];
        assert_eq!(h["x-theta-event"], "incident.redelivery");
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["priority"], "P1");
    }
    let d = status(&app);
    assert_eq!(d.incident.status.code(), "notified");
    assert!(d.notifications[0].delivered_at.is_some());
    assert!(
        d.timeline
            .iter()
            .filter(|t| t.kind == "notification")
            .count()
            >= 2,
        "both tries are in the timeline: {:#?}",
        d.timeline
    );
    let updates = app
        .audit
        .events()
        .iter()
        .filter(|e| e.action == AuditAction::IncidentUpdate)
        .count();
    assert!(updates >= 1, "the notification is audited");

    // Owed no more.
    app.clock.advance(chrono::Duration::hours(1));
    let n = Incidents::redeliver_pending(&app.state, chrono::Duration::minutes(30)).await;
    assert_eq!(n, 0);
    assert_eq!(got.0.lock().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Flood: one address throttled, another served.

#[tokio::test]
async fn a_flooding_address_is_throttled_while_another_keeps_working() {
    let app = TestApp::with_settings(|s| {
        s.http.rate_per_address = RateSettings {
            per_second: 1.0,
            burst: 10,
        };
    });
    let flooder = "198.51.100.66";
    let mut refused = 0;
    for _ in 0..50 {
        let (s, h, _) = app
            .send(from(flooder, req(Method::GET, "/healthz", None, None)))
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
            assert!(h.contains_key("retry-after"));
        }
    }
    assert_eq!(
        refused, 40,
        "the burst of 10 passes, the rest is refused (manual clock)"
    );
    for _ in 0..5 {
        let (s, _, _) = app
            .send(from(
                "203.0.113.5",
                req(Method::GET, "/healthz", None, None),
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "another address keeps working");
    }
    // Refusals are audited by sampling (not one event per refused request).
    let denied: Vec<_> = app
        .audit
        .events()
        .into_iter()
        .filter(|e| e.action == AuditAction::AccessDenied && e.reason == Some(Reason::RateLimited))
        .collect();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].origin.client_addr.unwrap().to_string(), flooder);
    // After a while the address is served again.
    app.clock.advance(chrono::Duration::seconds(5));
    let (s, _, _) = app
        .send(from(flooder, req(Method::GET, "/healthz", None, None)))
        .await;
    assert_eq!(s, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Prod refusals.

#[test]
fn the_prod_profile_refuses_dev_material_and_foreign_regions() {
    let base = |extra: &str| {
        format!(
            "[profiles.prod]\nkind = \"prod\"\nenvironment = \"prod-paris\"\nlisten = \"0.0.0.0:443\"\ndata_dir = \"/var/lib/theta\"\npublic_origin = \"https://theta.example.fr\"\ntls = {{ cert = \"c.pem\", key = \"k.pem\" }}\n{extra}"
        )
    };
    let load =
        |extra: &str| Settings::from_toml(&base(extra), Some("prod"), Path::new("/etc/theta"));
    // Regions: Paris accepted, Virginia refused, a local folder refused unless allowed.
    load("[profiles.prod.store]\nlocation = \"s3://theta-eeg\"\nregion = \"eu-west-3\"\n").unwrap();
    let e = load("[profiles.prod.store]\nlocation = \"s3://theta-eeg\"\nregion = \"us-east-1\"\n")
        .unwrap_err();
    assert!(e.to_string().contains("outside the allowed regions"), "{e}");
    let e = load("[profiles.prod.store]\nlocation = \"/srv/eeg\"\n").unwrap_err();
    assert!(e.to_string().contains("local folder"), "{e}");
    load("[profiles.prod.store]\nlocation = \"/srv/eeg\"\nallow_local = true\n").unwrap();
    // A dev or test environment tag in prod.
    let e = Settings::from_toml(
        &base("").replace("prod-paris", "dev"),
        Some("prod"),
        Path::new("/etc/theta"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("dev and test keys"), "{e}");
    // Retention below a year.
    let e = load("[profiles.prod.audit]\nretention_days = 200\n").unwrap_err();
    assert!(e.to_string().contains("one-year minimum"), "{e}");
    // Without an audit signing key the trail does not open (no key is ever generated in prod).
    let s = load("").unwrap();
    let e = theta_server::audit::open_log(&s).unwrap_err();
    assert!(e.to_string().contains("signing_key is required"), "{e}");
}

#[test]
fn the_prod_profile_refuses_a_dev_audit_key_and_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // A key made for dev.
    let dev_key = dir.path().join("keys/dev-audit.key");
    std::fs::create_dir_all(dev_key.parent().unwrap()).unwrap();
    theta_engine::audit::AuditSigningKey::generate(
        theta_engine::audit::Environment::try_new("dev").unwrap(),
    )
    .unwrap()
    .write_new(&dev_key)
    .unwrap();
    let data = dir.path().join("data");
    let text = format!(
        "[profiles.prod]\nkind = \"prod\"\nenvironment = \"prod-paris\"\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\npublic_origin = \"https://theta.example.fr\"\ntls = {{ cert = \"c.pem\", key = \"k.pem\" }}\n[profiles.prod.audit]\nsigning_key = {:?}\n",
        data.to_str().unwrap(),
        dev_key.to_str().unwrap()
    );
    let s = Settings::from_toml(&text, Some("prod"), dir.path()).unwrap();
    let e = theta_server::audit::open_log(&s).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("environment"), "{e}");

    // Theta's own self-signed development certificate is refused by prod.
    let dev = Settings::for_kind(
        theta_server::config::ProfileKind::Dev,
        dir.path().join("devdata"),
    );
    let _ = theta_server::tls::load(&dev).unwrap();
    let (cert, key) = theta_server::tls::dev_cert_paths(&dev.data_dir);
    let text = format!(
        "[profiles.prod]\nkind = \"prod\"\nenvironment = \"prod-paris\"\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\npublic_origin = \"https://127.0.0.1\"\ntls = {{ cert = {:?}, key = {:?} }}\n",
        data.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    );
    let s = Settings::from_toml(&text, Some("prod"), dir.path()).unwrap();
    assert!(
        theta_server::tls::load(&s).is_err(),
        "a self-signed certificate in prod"
    );
}

// ---------------------------------------------------------------------------------------------
// /metrics: token only; counts authentication failures and open incidents.

#[tokio::test]
async fn metrics_need_the_token_and_count_failures_and_incidents() {
    let tdir = tempfile::tempdir().unwrap();
    let token_file = tdir.path().join("metrics.token");
    std::fs::write(&token_file, "scrape-token-0123456789abcdef\n").unwrap();
    let app = TestApp::with_settings(|s| {
        s.metrics.token_file = Some(token_file.clone());
    });
    let _u = app.add_user("cdurand", Role::Auditor, None);
    for i in 0..10 {
        let r = req(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "cdurand", "password": format!("Wrong#{i:04}abcdef")})),
        );
        app.send(from("198.51.100.3", r)).await;
    }
    app.state.incidents().settle().await;
    let get = |auth: Option<&'static str>| {
        let mut r = req(Method::GET, "/metrics", None, None);
        if let Some(a) = auth {
            r.headers_mut().insert("authorization", a.parse().unwrap());
        }
        r
    };
    assert_eq!(app.send(get(None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.send(get(Some("Bearer wrong-token-0123456789"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    let resp = app
        .router
        .clone()
        .oneshot(get(Some("Bearer scrape-token-0123456789abcdef")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("theta_auth_failures_total{reason=\"bad_password\"} 10"),
        "{text}"
    );
    assert!(
        text.contains("theta_incidents_open{priority=\"P2\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("theta_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains("cdurand") && !text.contains("198.51.100.3"),
        "no names or addresses"
    );
}

// ---------------------------------------------------------------------------------------------
// A broken chain found by the service's periodic verification opens a P1 incident.

#[tokio::test]
async fn a_broken_chain_opens_a_p1_incident() {
    let app = TestApp::new();
    let settings = app.state.settings().clone();
    // Write a few events to the profile's trail through the real sink.
    let trail = Arc::new(theta_server::audit::TrailSink::open(&settings).unwrap());
    for i in 0..5 {
        use theta_server::AuditSink;
        trail.record(
            theta_server::AuditEvent::service(
                app.clock_now(),
                AuditAction::AdminMaintenance,
                "sweep",
            )
            .resource(ResourceKind::Account, format!("acc-{i}")),
        );
    }
    trail.shutdown().unwrap();
    assert_eq!(
        theta_server::serve::verify_trail(&app.state).await,
        Some(true)
    );
    let c = rusqlite::Connection::open(settings.audit_log_path()).unwrap();
    c.execute_batch(
        "DROP TRIGGER IF EXISTS events_no_update; UPDATE events SET resource_id = 'acc-9' WHERE seq = 3;",
    )
    .unwrap();
    drop(c);
    assert_eq!(
        theta_server::serve::verify_trail(&app.state).await,
        Some(false)
    );
    app.state.incidents().settle().await;
    let all = app
        .db()
        .call_blocking(|c| register::list(c, &ListFilter::default()))
        .unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(
        (all[0].priority, all[0].category),
        (Priority::P1, Category::AuditChain)
    );
    assert_eq!(
        all[0].deadline_at - all[0].detected_at,
        chrono::Duration::hours(12)
    );
}

// ---------------------------------------------------------------------------------------------
// Structured JSON logs carry no secrets and no personal data.

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn json_logs_hold_no_secrets_and_no_personal_data() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::new();
    app.add_tenant("chu-a");
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let victim = app.add_user("cdurand", Role::Interpreter, Some("chu-a"));
    let mut secrets = vec![
        PASSWORD.to_owned(),
        admin.totp_secret.clone(),
        victim.totp_secret.clone(),
    ];
    for i in 0..12 {
        let pw = format!("Wrong#{i:04}Secret");
        let r = req(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "cdurand", "password": pw})),
        );
        app.send(from("198.51.100.44", r)).await;
        secrets.push(pw);
    }
    let a = app.login(&admin).await;
    secrets.push(a.token.clone());
    secrets.push(a.csrf.clone());
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/accounts",
            Some(&a.token),
            Some(json!({
                "username": "mleroy", "first_name": "Marie-Hélène", "last_name": "Leroy-Quintard",
                "email": "marie.leroy@chu-a.example.fr", "role": "interpreter", "tenant_id": "chu-a"
            })),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    secrets.push(v["one_time_password"].as_str().unwrap().to_owned());
    app.send(req(Method::GET, "/api/access-review", Some(&a.token), None))
        .await;
    app.send(req(Method::GET, "/api/audit/export", Some(&a.token), None))
        .await;
    app.send(req(Method::POST, "/api/auth/logout", Some(&a.token), None))
        .await;
    app.state.incidents().settle().await;
    drop(_guard);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 0, "logs were captured: {logs}");
    for l in logs.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
    let personal = [
        "Camille",
        "Marie-Hélène",
        "Leroy-Quintard",
        "marie.leroy@",
        "cdurand@chu.example.fr",
        "cdurand",
    ];
    for s in secrets.iter().map(String::as_str).chain(personal) {
        assert!(!logs.contains(s), "{s:?} found in the logs:\n{logs}");
    }
}

// ---------------------------------------------------------------------------------------------
// The store commands write to THETA_CONFIG's trail: ids only, no health data.

fn theta_env(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_theta"))
        .args(args)
        .env("THETA_CONFIG", config)
        .env_remove("THETA_PROFILE")
        .env_remove("THETA_KEK")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn store_commands_are_audited_with_ids_only() {
    // The partner's webhook receiver, on its own runtime: `theta verify` must notify it itself.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, ca, got, _rdir) = rt.block_on(receiver());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("theta.toml");
    std::fs::write(
        &cfg,
        format!(
            "profile = \"dev\"\n[profiles.dev]\ndata_dir = \"data\"\n\
             [[profiles.dev.incidents.webhooks]]\ntenant = \"*\"\nurl = \"{url}\"\n\
             ca_file = {:?}\nmax_attempts = 3\n",
            ca.to_str().unwrap()
        ),
    )
    .unwrap();
    let store = dir.path().join("eeg");
    let s = store.to_str().unwrap();
    let (code, _, err) = theta_env(&["init", "--store", s, "--env", "dev"], &cfg);
    assert_eq!(code, 0, "{err}");
    let edf = theta_fixtures::shared_eeg_dir().join("test_utf8.edf");
    let (code, out, err) = theta_env(
        &[
            "ingest",
            "--store",
            s,
            "--tenant",
            "hospital-a",
            edf.to_str().unwrap(),
        ],
        &cfg,
    );
    assert_eq!(code, 0, "{err}");
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let id = line["recording_id"].as_str().unwrap().to_owned();
    assert_eq!(theta_env(&["ls", "--store", s], &cfg).0, 0);
    let (code, _, err) = theta_env(
        &[
            "window",
            "--store",
            s,
            "--recording",
            &id,
            "--start",
            "0",
            "--duration",
            "1",
            "--format",
            "json",
        ],
        &cfg,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = theta_env(
        &[
            "window",
            "--store",
            s,
            "--recording",
            "no-such-recording",
            "--start",
            "0",
            "--duration",
            "1",
        ],
        &cfg,
    );
    assert_eq!(code, 2);
    let (code, _, err) = theta_env(
        &[
            "sql",
            "--store",
            s,
            "--tenant",
            "hospital-a",
            "SELECT count(*) FROM recordings",
        ],
        &cfg,
    );
    assert_eq!(code, 0, "{err}");
    let export_dir = dir.path().join("export");
    let (code, _, err) = theta_env(
        &[
            "export",
            "--store",
            s,
            "--tenant",
            "hospital-a",
            "--cohort",
            "true",
            "--format",
            "parquet",
            "--out",
            export_dir.to_str().unwrap(),
            "--project",
            "audit-study",
        ],
        &cfg,
    );
    assert_eq!(code, 0, "{err}");
    // A flipped byte: `theta verify` fails, audited as an integrity failure, and a P1 incident.
    assert_eq!(theta_env(&["verify", "--store", s], &cfg).0, 0);
    let data = store.join(format!("rec/{id}/data/00000"));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[48 + 30] ^= 0x80;
    std::fs::write(&data, &bytes).unwrap();
    let (code, _, err) = theta_env(&["verify", "--store", s], &cfg);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("P1 integrity incident"), "{err}");
    let (_, out, _) = theta(&[
        "incidents",
        "--config",
        cfg.to_str().unwrap(),
        "--json",
        "list",
    ]);
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{out}");
    assert_eq!(
        (list[0]["priority"].as_str(), list[0]["category"].as_str()),
        (Some("P1"), Some("integrity"))
    );
    // Delivered by the command itself (the receiver refuses the first attempt: one retry).
    assert!(
        err.contains("delivered to the * webhook (2 attempt(s))"),
        "{err}"
    );
    {
        let got = got.0.lock().unwrap();
        assert_eq!(got.len(), 2, "one refused attempt, one delivery");
        let body = &got[1].1;
        assert_eq!(body["event"], "incident.created", "{body}");
        assert_eq!(body["priority"], "P1", "{body}");
        assert_eq!(body["category"], "integrity", "{body}");
        assert_eq!(body["id"], list[0]["id"], "{body}");
    }
    assert_eq!(list[0]["status"], "notified", "{out}");
    let (code, _, err) = theta_env(&["shred", "--store", s, "--recording", &id], &cfg);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = theta(&[
        "audit",
        "export",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |action: &str| {
        events
            .iter()
            .filter(|e| e.to_string().contains(&format!("\"{action}\"")))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(find("key.create").len(), 1, "{out}");
    assert_eq!(find("recording.create").len(), 1, "{out}");
    assert!(
        find("recording.create")[0]
            .to_string()
            .contains("hospital-a")
    );
    assert_eq!(find("recording.list").len(), 1, "{out}");
    let reads = find("recording.read_window");
    assert_eq!(reads.len(), 2, "{out}");
    assert!(reads[0].to_string().contains(&id) && reads[0].to_string().contains("success"));
    assert!(
        reads[1].to_string().contains("invalid_request"),
        "{}",
        reads[1]
    );
    assert!(find("key.shred")[0].to_string().contains(&id));
    let maint = find("admin.maintenance");
    assert_eq!(maint.len(), 2, "{out}");
    assert!(
        maint[1].to_string().contains("integrity_failure"),
        "{}",
        maint[1]
    );
    assert_eq!(find("incident.create").len(), 1, "{out}");
    assert_eq!(find("incident.update").len(), 1, "{out}");
    assert!(out.contains("cli:"), "{out}");
    // SQL by digest only (the text may quote values); the export with its project and tenant.
    let sql = find("sql.query");
    assert_eq!(sql.len(), 1, "{out}");
    assert!(!sql[0].to_string().contains("SELECT"), "{}", sql[0]);
    let exports = find("export.start");
    assert_eq!(exports.len(), 1, "{out}");
    let e = exports[0].to_string();
    assert!(
        e.contains("audit-study") && e.contains("hospital-a") && e.contains("success"),
        "{e}"
    );
    // No health data: the fixture's header fields are not in the trail.
    let golden: Value = serde_json::from_slice(
        &std::fs::read(theta_fixtures::shared_eeg_dir().join("test_utf8.edf.golden.json")).unwrap(),
    )
    .unwrap();
    for (field, v) in golden["header"].as_object().unwrap() {
        if field == "filetype" {
            continue;
        }
        for word in v
            .as_str()
            .unwrap_or("")
            .split([' ', ','])
            .filter(|w| w.len() > 2)
        {
            assert!(!out.contains(word), "{field} {word:?} in the trail");
        }
    }
    let (code, out, _) = theta(&["audit", "verify", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}
