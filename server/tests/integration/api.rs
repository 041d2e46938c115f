//! Component tests on the router (no socket): login, second factor, password rules, lockouts,
//! time-outs, CSRF, administration, OpenAPI coverage.

use axum::http::{Method, StatusCode, header};
use chrono::Duration;
use serde_json::json;
use theta_server::accounts::Role;
use theta_server::audit::{Actor, AuditAction, Outcome, Reason};
use theta_server::auth::totp;

use crate::support::*;

fn code(app: &TestApp, secret: &str) -> String {
    totp::code_at(secret, app.clock_now().timestamp() as u64).unwrap()
}

#[tokio::test]
async fn login_needs_password_then_totp_and_is_audited() {
    let app = TestApp::new();
    let u = app.add_user("cdurand", Role::Auditor, None);
    // Wrong password and unknown user look the same.
    let (s, v) = app.password_step("cdurand", "Wrong#Password99").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (s, v) = app.password_step("nobody", PASSWORD).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );

    let (s, v) = app.password_step("cdurand", PASSWORD).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["next"], json!(["totp"]));
    let mfa = v["mfa_token"].as_str().unwrap().to_owned();
    // The pending token is not a session.
    let (s, _, _) = app
        .send(req(Method::GET, "/api/me", Some(&mfa), None))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A wrong code is refused; the right one opens the session.
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": "000000"})),
        ))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_second_factor"))
    );
    let c = code(&app, &u.totp_secret);
    let (s, h, v) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": c})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cookies: Vec<_> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies[0].starts_with("__Host-theta_session=")
            && cookies[0].contains("HttpOnly")
            && cookies[0].contains("SameSite=Strict")
            && cookies[0].contains("Secure")
    );
    let token = v["token"].as_str().unwrap();
    let (s, _, me) = app
        .send(req(Method::GET, "/api/me", Some(token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["account"]["username"], "cdurand");
    // The mfa_token was consumed.
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": c})),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Replay: the same code (same 30 s step) cannot open a second session.
    let (_, v) = app.password_step("cdurand", PASSWORD).await;
    let mfa2 = v["mfa_token"].as_str().unwrap();
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa2, "code": c})),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a used TOTP step is refused");

    let ev = app.audit.events();
    let failed: Vec<_> = ev
        .iter()
        .filter(|e| e.action == AuditAction::LoginFailure && e.outcome == Outcome::Failure)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(
        failed[1].actor,
        Actor::Attempted("nobody".into()),
        "attempted username recorded"
    );
    assert_eq!(failed[0].reason, Some(Reason::BadPassword));
    assert_eq!(failed[1].reason, Some(Reason::UnknownAccount));
    assert!(ev.iter().any(|e| e.action == AuditAction::LoginSuccess
        && e.outcome == Outcome::Success
        && e.actor.account_id() == Some(u.id.as_str())
        && e.session_id.is_some()));
    // Wrong code, reuse of the consumed mfa_token, replayed code.
    assert_eq!(
        ev.iter()
            .filter(|e| e.action == AuditAction::LoginMfaFailure && e.outcome == Outcome::Failure)
            .count(),
        3
    );
}

#[tokio::test]
async fn second_factor_attempts_are_limited() {
    let app = TestApp::new();
    app.add_user("cdurand", Role::Auditor, None);
    let (_, v) = app.password_step("cdurand", PASSWORD).await;
    let mfa = v["mfa_token"].as_str().unwrap();
    for _ in 0..5 {
        let (s, _, v) = app
            .send(req(
                Method::POST,
                "/api/auth/mfa/verify",
                None,
                Some(json!({"mfa_token": mfa, "code": "123456"})),
            ))
            .await;
        assert_eq!(v["error"], "invalid_second_factor", "{s}");
    }
    let (_, _, v) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": "123456"})),
        ))
        .await;
    assert_eq!(
        v["error"], "mfa_token_invalid",
        "the pending login is cancelled after 5 failures"
    );
}

/// The first login of an administrator-made account: one-time password, forced change with the
/// policy, TOTP enrolment with an otpauth URI and recovery codes, then recovery-code login.
#[tokio::test]
async fn first_login_changes_password_and_enrols_totp() {
    let app = TestApp::new();
    app.add_tenant("chu-a");
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let a = app.login(&admin).await;
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/accounts",
            Some(&a.token),
            Some(json!({
                "username": "mleroy", "first_name": "Marie", "last_name": "Leroy",
                "email": "marie.leroy@chu-a.example.fr", "role": "interpreter", "tenant_id": "chu-a"
            })),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let otp = v["one_time_password"].as_str().unwrap().to_owned();
    assert!(v["account"]["must_change_password"].as_bool().unwrap());

    let (s, v) = app.password_step("mleroy", &otp).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["next"], json!(["change_password", "enroll_totp", "totp"]));
    let mfa = v["mfa_token"].as_str().unwrap().to_owned();
    // Enrolment before the change is allowed, but no session before the change.
    let (s, _, enr) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/enroll",
            None,
            Some(json!({"mfa_token": mfa})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{enr}");
    let uri = enr["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Theta:mleroy?"), "{uri}");
    let secret = enr["secret"].as_str().unwrap().to_owned();
    let recovery: Vec<String> = serde_json::from_value(enr["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": code(&app, &secret)})),
        ))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("password_change_required"))
    );

    let change = |newp: &str| {
        req(
            Method::POST,
            "/api/auth/mfa/password",
            None,
            Some(json!({"mfa_token": mfa, "current_password": otp, "new_password": newp})),
        )
    };
    for (bad, rule) in [
        ("Sh0rt!pw", "too_short"),
        ("alllowercase#123", "no_uppercase"),
        ("ALLUPPERCASE#123", "no_lowercase"),
        ("NoDigitsHere#abc", "no_digit"),
        ("NoSpecial123abcD", "no_special"),
        ("Pe#5gz29ptzmse", "common_password"),
        ("Leroy#2026abcd", "contains_name"),
    ] {
        let (s, _, v) = app.send(change(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(
            v["rules"].as_array().unwrap().contains(&json!(rule)),
            "{bad}: {v}"
        );
    }
    let (s, _, v) = app.send(change(&otp)).await;
    assert_eq!(v["rules"], json!(["reused"]), "{s}");
    let (s, _, v) = app.send(change("Nouveau#Mot2Passe")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": code(&app, &secret)})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["account"]["totp_enabled"], true);

    // A recovery code replaces the authenticator once.
    let (_, v) = app.password_step("mleroy", "Nouveau#Mot2Passe").await;
    assert_eq!(v["next"], json!(["totp"]));
    let mfa = v["mfa_token"].as_str().unwrap().to_owned();
    let rc = recovery[3].to_uppercase();
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "recovery_code": rc})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = app.password_step("mleroy", "Nouveau#Mot2Passe").await;
    let mfa = v["mfa_token"].as_str().unwrap().to_owned();
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "recovery_code": rc})),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a recovery code works once");
    // Enrolling again is refused once enrolled.
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/enroll",
            None,
            Some(json!({"mfa_token": mfa})),
        ))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
}

#[tokio::test]
async fn yearly_password_renewal_is_forced() {
    let app = TestApp::with_settings(|s| s.accounts.dormant_after_days = 1000);
    let u = app.add_user("cdurand", Role::Auditor, None);
    app.clock.advance(Duration::days(366));
    let (_, v) = app.password_step("cdurand", PASSWORD).await;
    assert_eq!(v["next"], json!(["change_password", "totp"]));
    let mfa = v["mfa_token"].as_str().unwrap();
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": code(&app, &u.totp_secret)})),
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn disabled_expired_and_dormant_accounts_are_locked_out() {
    let app = TestApp::new();
    app.add_tenant("chu-a");
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let tech = app.add_user("tlefevre", Role::Technician, Some("chu-a"));
    let a = app.login(&admin).await;
    let t = app.login(&tech).await;
    let (s, _, _) = app
        .send(req(Method::GET, "/api/me", Some(&t.token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    // Disabling revokes the live session and refuses new logins.
    let (s, _, v) = app
        .send(req(
            Method::PATCH,
            &format!("/api/accounts/{}", tech.id),
            Some(&a.token),
            Some(json!({"status": "disabled"})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, _) = app
        .send(req(Method::GET, "/api/me", Some(&t.token), None))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "session revoked");
    let (s, v) = app.password_step("tlefevre", PASSWORD).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_disabled"))
    );
    // Administrators cannot lock themselves out.
    let (s, _, _) = app
        .send(req(
            Method::PATCH,
            &format!("/api/accounts/{}", admin.id),
            Some(&a.token),
            Some(json!({"status": "disabled"})),
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A guest stops working at its expiry.
    let (s, _, v) = app
        .send(req(Method::POST, "/api/accounts", Some(&a.token), Some(json!({
            "username": "gvisiteur", "first_name": "Gaston", "last_name": "Visiteur",
            "email": "gaston.visiteur@chu-a.example.fr", "role": "interpreter", "tenant_id": "chu-a",
            "guest_expires_at": (app.clock_now() + Duration::days(2)).to_rfc3339()
        }))))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let otp = v["one_time_password"].as_str().unwrap().to_owned();
    let (s, _) = app.password_step("gvisiteur", &otp).await;
    assert_eq!(s, StatusCode::OK);
    app.clock.advance(Duration::days(3));
    let (s, v) = app.password_step("gvisiteur", &otp).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_disabled"))
    );

    // Nobody logged in for 91 days: dormant.
    let auditor = app.add_user("aubert", Role::Auditor, None);
    app.clock.advance(Duration::days(91));
    let (s, _) = app.password_step(&auditor.username, PASSWORD).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let ev = app.audit.events();
    assert!(ev.iter().any(
        |e| e.action == AuditAction::AccountDisable && e.reason == Some(Reason::AccountDormant)
    ));
    assert!(ev.iter().any(
        |e| e.action == AuditAction::AccountDisable && e.reason == Some(Reason::AccountExpired)
    ));
}

#[tokio::test]
async fn sessions_time_out_idle_and_absolute() {
    let app = TestApp::with_settings(|s| {
        s.sessions.idle_timeout_secs = 15 * 60;
        s.sessions.absolute_timeout_secs = 60 * 60;
    });
    let u = app.add_user("cdurand", Role::Auditor, None);
    let s1 = app.login(&u).await;
    app.clock.advance(Duration::minutes(14));
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&s1.token), None))
            .await
            .0,
        StatusCode::OK
    );
    app.clock.advance(Duration::minutes(16));
    let (s, _, v) = app
        .send(req(Method::GET, "/api/me", Some(&s1.token), None))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_expired"))
    );

    let s2 = app.login(&u).await;
    for _ in 0..4 {
        app.clock.advance(Duration::minutes(14));
        assert_eq!(
            app.send(req(Method::GET, "/api/me", Some(&s2.token), None))
                .await
                .0,
            StatusCode::OK
        );
    }
    // 70 minutes of activity: past the absolute limit although never idle.
    app.clock.advance(Duration::minutes(14));
    let (s, _, v) = app
        .send(req(Method::GET, "/api/me", Some(&s2.token), None))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session_expired"))
    );
    assert!(
        app.audit
            .events()
            .iter()
            .any(|e| e.action == AuditAction::SessionExpired
                && e.reason == Some(Reason::IdleTimeout))
    );
    assert!(
        app.audit
            .events()
            .iter()
            .any(|e| e.action == AuditAction::SessionExpired
                && e.reason == Some(Reason::AbsoluteTimeout))
    );
}

#[tokio::test]
async fn csrf_defence_on_cookie_sessions() {
    let app = TestApp::new();
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let s = app.login(&admin).await;
    let body = || Some(json!({"name": "CHU Z"}));
    // Reads with the cookie need no token.
    assert_eq!(
        app.send(cookie_req(
            Method::GET,
            "/api/tenants",
            &s,
            None,
            None,
            None
        ))
        .await
        .0,
        StatusCode::OK
    );
    // A state-changing request with the cookie but no token, a wrong token, or a foreign origin: refused.
    let (st, _, v) = app
        .send(cookie_req(
            Method::POST,
            "/api/tenants",
            &s,
            None,
            None,
            body(),
        ))
        .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    assert_eq!(
        app.send(cookie_req(
            Method::POST,
            "/api/tenants",
            &s,
            Some("forged"),
            None,
            body()
        ))
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.send(cookie_req(
            Method::POST,
            "/api/tenants",
            &s,
            Some(&s.csrf),
            Some("https://evil.example"),
            body()
        ))
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (st, _, v) = app
        .send(cookie_req(
            Method::POST,
            "/api/tenants",
            &s,
            Some(&s.csrf),
            Some(ORIGIN),
            body(),
        ))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // Bearer clients are not subject to it.
    assert_eq!(
        app.send(req(
            Method::POST,
            "/api/tenants",
            Some(&s.token),
            Some(json!({"name": "CHU Y"}))
        ))
        .await
        .0,
        StatusCode::CREATED
    );
    // Login from a foreign origin is refused too.
    let mut r = req(
        Method::POST,
        "/api/auth/login",
        None,
        Some(json!({"username": "pmartin", "password": PASSWORD})),
    );
    r.headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().unwrap());
    assert_eq!(app.send(r).await.0, StatusCode::FORBIDDEN);
    assert!(
        app.audit
            .events()
            .iter()
            .any(|e| e.action == AuditAction::AccessDenied
                && e.outcome == Outcome::Denied
                && e.reason == Some(Reason::CsrfMismatch))
    );
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let app = TestApp::new();
    let u = app.add_user("cdurand", Role::Auditor, None);
    let s = app.login(&u).await;
    let (st, h, _) = app
        .send(cookie_req(
            Method::POST,
            "/api/auth/logout",
            &s,
            Some(&s.csrf),
            None,
            None,
        ))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(
        h.get_all(header::SET_COOKIE)
            .iter()
            .all(|c| c.to_str().unwrap().contains("Max-Age=0"))
    );
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&s.token), None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        app.audit
            .events()
            .iter()
            .any(|e| e.action == AuditAction::Logout && e.session_id.is_some())
    );
}

#[tokio::test]
async fn password_change_revokes_other_sessions() {
    let app = TestApp::new();
    let u = app.add_user("cdurand", Role::Auditor, None);
    let s1 = app.login(&u).await;
    let s2 = app.login(&u).await;
    let (st, _, v) = app
        .send(req(
            Method::POST,
            "/api/auth/password",
            Some(&s1.token),
            Some(json!({"current_password": PASSWORD, "new_password": "Autre#Secret2027"})),
        ))
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&s1.token), None))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&s2.token), None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (st, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/password",
            Some(&s1.token),
            Some(json!({"current_password": "nope", "new_password": "Autre#Secret2028"})),
        ))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bootstrap_administrator_is_disabled_by_the_second_administrator() {
    let app = TestApp::new();
    let (boot, otp) = theta_server::cli::admin::bootstrap(
        app.db(),
        app.state.settings(),
        "Paul".into(),
        "Martin".into(),
        "paul.martin@theta.example.fr".into(),
        None,
        app.clock_now(),
    )
    .unwrap();
    assert_eq!(boot.username, "pmartin");
    assert!(boot.is_bootstrap && boot.must_change_password);
    // A second bootstrap is refused.
    assert!(
        theta_server::cli::admin::bootstrap(
            app.db(),
            app.state.settings(),
            "A".into(),
            "B".into(),
            "a@b.fr".into(),
            None,
            app.clock_now()
        )
        .is_err()
    );

    // The bootstrap administrator logs in (change + enrol) and creates a nominative administrator.
    let (_, v) = app.password_step("pmartin", &otp).await;
    let mfa = v["mfa_token"].as_str().unwrap().to_owned();
    let np = "Premier#Admin2026";
    let (s, _, _) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/password",
            None,
            Some(json!({"mfa_token": mfa, "current_password": otp, "new_password": np})),
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, enr) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/enroll",
            None,
            Some(json!({"mfa_token": mfa})),
        ))
        .await;
    let secret = enr["secret"].as_str().unwrap();
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/auth/mfa/verify",
            None,
            Some(json!({"mfa_token": mfa, "code": code(&app, secret)})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let boot_token = v["token"].as_str().unwrap().to_owned();
    let second = app.add_user("cbernard", Role::Administrator, None);
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&boot_token), None))
            .await
            .0,
        StatusCode::OK
    );
    // Its first completed login disables the bootstrap account and ends its session.
    app.login(&second).await;
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(&boot_token), None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = app.password_step("pmartin", np).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_disabled"))
    );
}

#[tokio::test]
async fn generic_names_need_a_recorded_exception() {
    let app = TestApp::new();
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let a = app.login(&admin).await;
    let body = json!({"username": "support", "first_name": "Service", "last_name": "Astreinte", "email": "support@chu.example.fr", "role": "auditor"});
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/accounts",
            Some(&a.token),
            Some(body.clone()),
        ))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("username")),
        "{v}"
    );
    let (s, _, _) = app
        .send(req(Method::POST, "/api/name-exceptions", Some(&a.token), Some(json!({"username": "support", "reason": "Night on-call desk shared by the CHU A team, contract 2026-14"}))))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, v) = app
        .send(req(
            Method::POST,
            "/api/accounts",
            Some(&a.token),
            Some(body),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, _, list) = app
        .send(req(
            Method::GET,
            "/api/name-exceptions",
            Some(&a.token),
            None,
        ))
        .await;
    assert_eq!(list[0]["username"], "support");
}

#[tokio::test]
async fn access_review_lists_every_account() {
    let app = TestApp::new();
    app.add_tenant("chu-a");
    let admin = app.add_user("pmartin", Role::Administrator, None);
    let aud = app.add_user("aubert", Role::Auditor, None);
    let tech = app.add_user("tlefevre", Role::Technician, Some("chu-a"));
    let a = app.login(&admin).await;
    let (s, _, rows) = app
        .send(req(Method::GET, "/api/access-review", Some(&a.token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(rows.as_array().unwrap().len(), 3);
    let r = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["username"] == "pmartin")
        .unwrap();
    assert!(r["last_login_at"].is_string());
    assert_eq!(r["password_age_days"], 0);
    let (s, h, csv) = app
        .send(req(
            Method::GET,
            "/api/access-review?format=csv",
            Some(&a.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(csv.as_str().unwrap().lines().count(), 4);
    let au = app.login(&aud).await;
    assert_eq!(
        app.send(req(
            Method::GET,
            "/api/access-review",
            Some(&au.token),
            None
        ))
        .await
        .0,
        StatusCode::OK
    );
    let t = app.login(&tech).await;
    assert_eq!(
        app.send(req(Method::GET, "/api/access-review", Some(&t.token), None))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn health_headers_and_errors() {
    let app = TestApp::new();
    let (s, h, v) = app.send(req(Method::GET, "/healthz", None, None)).await;
    assert_eq!((s, v.as_str()), (StatusCode::OK, Some("ok")));
    assert!(
        h[header::STRICT_TRANSPORT_SECURITY]
            .to_str()
            .unwrap()
            .starts_with("max-age=31536000")
    );
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        app.send(req(Method::GET, "/readyz", None, None)).await.0,
        StatusCode::OK
    );
    // Malformed JSON gets a JSON error naming the body.
    let r = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from("{\"username\":"))
        .unwrap();
    let (s, _, v) = app.send(r).await;
    assert_eq!(
        (s, v["error"].as_str(), v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"), Some("body"))
    );
    // Oversized bodies are refused before parsing.
    let big = "x".repeat(2 << 20);
    let (s, h, _) = app
        .send(req(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": big, "password": "x"})),
        ))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        h.contains_key(header::STRICT_TRANSPORT_SECURITY),
        "security headers on layer answers too"
    );
    // 5xx bodies are generic.
    use axum::response::IntoResponse;
    let resp = theta_server::ApiError::Internal(theta_server::Error::Corrupt {
        what: "accounts.role \"x\" in /secret/path".into(),
    })
    .into_response();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        r#"{"error":"internal","message":"internal error"}"#
    );
}

/// Every route in the router is documented in openapi.yaml with its method, every documented
/// path is routed, and the router answers on each (no 404/405 from routing).
#[tokio::test]
async fn openapi_matches_the_routes() {
    let app = TestApp::new();
    let yaml = theta_server::OPENAPI_YAML;
    let (s, _, served) = app
        .send(req(Method::GET, "/api/openapi.yaml", None, None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(served.as_str().unwrap(), yaml);
    let documented: Vec<(String, Vec<String>)> = {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut in_paths = false;
        for line in yaml.lines() {
            if line == "paths:" {
                in_paths = true;
                continue;
            }
            if !in_paths {
                continue;
            }
            if let Some(p) = line.strip_prefix("  /") {
                out.push((format!("/{}", p.trim_end_matches(':')), Vec::new()));
            } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
                && ["get", "post", "patch", "put", "delete"].contains(&m)
            {
                out.last_mut().unwrap().1.push(m.to_uppercase());
            }
        }
        out
    };
    let mut from_yaml: Vec<(String, String)> = documented
        .iter()
        .flat_map(|(p, ms)| ms.iter().map(move |m| (m.clone(), p.clone())))
        .collect();
    let mut from_router: Vec<(String, String)> = theta_server::routes()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    from_yaml.sort();
    from_router.sort();
    assert_eq!(from_yaml, from_router);
    for (m, p) in theta_server::routes() {
        let path = p.replace("{id}", "x").replace("{provider}", "none");
        let (s, _, _) = app.send(req(m.parse().unwrap(), &path, None, None)).await;
        // Routing answers every listed route; 404 only from a handler looking up a dummy id.
        // `/metrics` answers 404 while no scrape token is configured (disabled), as here.
        let routed = s != StatusCode::METHOD_NOT_ALLOWED
            && (s != StatusCode::NOT_FOUND || p.contains('{') || p == "/metrics");
        assert!(routed, "{m} {p}: {s}");
    }
}
