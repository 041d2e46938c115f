//! OpenID Connect against a small identity provider run by the test itself: axum over TLS on a
//! loopback port (its own CA), discovery, JWKS, authorize, token endpoint with PKCE, ID tokens
//! signed with an Ed25519 key generated at test time. The happy path and every refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use openidconnect::core::{
    CoreEdDsaPrivateSigningKey, CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, Audience, AuthenticationMethodReference, EmptyAdditionalClaims, EndUserEmail,
    IssuerUrl, JsonWebKeyId, Nonce, PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use theta_server::accounts::Role;
use theta_server::audit::{AuditAction, Reason};
use theta_server::config::OidcProviderSettings;
use theta_server::http_client::HttpsClient;

use crate::support::*;

const CLIENT_ID: &str = "theta-test";
const CLIENT_SECRET: &str = "s3cret-for-tests";

/// How the provider misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Good,
    BadSignature,
    WrongAudience,
    WrongIssuer,
    Expired,
    WrongNonce,
    NoMfa,
    AcrOnly,
}

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct IdpState {
    issuer: String,
    key_pem: String,
    rogue_pem: String,
    mode: Mode,
    subject: String,
    email: String,
    email_verified: bool,
    codes: HashMap<String, Pending>,
}

type Shared = Arc<Mutex<IdpState>>;

struct Idp {
    issuer: String,
    ca_path: std::path::PathBuf,
    state: Shared,
    client: HttpsClient,
    _dir: tempfile::TempDir,
}

fn ed25519_pem() -> String {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .unwrap()
        .serialize_pem()
}

fn signing_key(pem: &str) -> CoreEdDsaPrivateSigningKey {
    CoreEdDsaPrivateSigningKey::from_ed25519_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
}

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let iss = s.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(s): State<Shared>) -> Json<Value> {
    let key = signing_key(&s.lock().unwrap().key_pem);
    Json(serde_json::to_value(CoreJsonWebKeySet::new(vec![key.as_verification_key()])).unwrap())
}

async fn authorize(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["code_challenge_method"], "S256",
        "PKCE S256 is always used"
    );
    assert!(q["scope"].split(' ').any(|x| x == "openid"));
    let code = format!("code-{}", uuid::Uuid::new_v4());
    s.lock().unwrap().codes.insert(
        code.clone(),
        Pending {
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            redirect_uri: q["redirect_uri"].clone(),
        },
    );
    let sep = if q["redirect_uri"].contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!(
        "{}{sep}code={code}&state={}",
        q["redirect_uri"], q["state"]
    ))
}

async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let creds = auth
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .map(|b| String::from_utf8(b).unwrap());
    if creds.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut st = s.lock().unwrap();
    let Some(p) = st.codes.remove(&f["code"]) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != p.challenge
        || f["redirect_uri"] != p.redirect_uri
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "PKCE"})),
        )
            .into_response();
    }
    let now = Utc::now();
    let (iss, aud, exp, nonce) = match st.mode {
        Mode::WrongIssuer => (
            "https://evil.example".to_owned(),
            CLIENT_ID.to_owned(),
            now + chrono::Duration::minutes(5),
            p.nonce,
        ),
        Mode::WrongAudience => (
            st.issuer.clone(),
            "someone-else".to_owned(),
            now + chrono::Duration::minutes(5),
            p.nonce,
        ),
        Mode::Expired => (
            st.issuer.clone(),
            CLIENT_ID.to_owned(),
            now - chrono::Duration::minutes(10),
            p.nonce,
        ),
        Mode::WrongNonce => (
            st.issuer.clone(),
            CLIENT_ID.to_owned(),
            now + chrono::Duration::minutes(5),
            "another-nonce".to_owned(),
        ),
        _ => (
            st.issuer.clone(),
            CLIENT_ID.to_owned(),
            now + chrono::Duration::minutes(5),
            p.nonce,
        ),
    };
    let standard = StandardClaims::new(SubjectIdentifier::new(st.subject.clone()))
        .set_email(Some(EndUserEmail::new(st.email.clone())))
        .set_email_verified(Some(st.email_verified));
    let mut claims = CoreIdTokenClaims::new(
        IssuerUrl::new(iss).unwrap(),
        vec![Audience::new(aud)],
        exp,
        now - chrono::Duration::minutes(20),
        standard,
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce)));
    claims = match st.mode {
        Mode::NoMfa => claims
            .set_auth_method_refs(Some(vec![AuthenticationMethodReference::new("pwd".into())])),
        Mode::AcrOnly => claims.set_auth_context_ref(Some(
            openidconnect::AuthenticationContextClass::new("urn:theta:mfa".into()),
        )),
        _ => claims.set_auth_method_refs(Some(vec![
            AuthenticationMethodReference::new("pwd".into()),
            AuthenticationMethodReference::new("otp".into()),
        ])),
    };
    let access = AccessToken::new(format!("at-{}", uuid::Uuid::new_v4()));
    let key_pem = if st.mode == Mode::BadSignature {
        &st.rogue_pem
    } else {
        &st.key_pem
    };
    let id_token = CoreIdToken::new(
        claims,
        &signing_key(key_pem),
        CoreJwsSigningAlgorithm::EdDsa,
        Some(&access),
        None,
    )
    .unwrap();
    Json(json!({"access_token": access.secret(), "token_type": "Bearer", "expires_in": 300, "id_token": id_token})).into_response()
}

impl Idp {
    async fn start() -> Idp {
        let dir = tempfile::tempdir().unwrap();
        // A CA and a leaf for 127.0.0.1, so the relying party verifies the provider properly.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test IdP CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer_ca = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer_ca)
            .unwrap();
        let ca_path = dir.path().join("idp-ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("https://{addr}");
        let state: Shared = Arc::new(Mutex::new(IdpState {
            issuer: issuer.clone(),
            key_pem: ed25519_pem(),
            rogue_pem: ed25519_pem(),
            mode: Mode::Good,
            subject: "idp-user-0001".into(),
            email: "cdurand@chu.example.fr".into(),
            email_verified: true,
            codes: HashMap::new(),
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(Arc::clone(&state));
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
            leaf.pem().into_bytes(),
            leaf_key.serialize_pem().into_bytes(),
        )
        .await
        .unwrap();
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        tokio::spawn(async move { server.serve(app.into_make_service()).await });
        let client = HttpsClient::new(
            theta_server::http_client::roots_from_pem(ca.pem().as_bytes()).unwrap(),
        );
        Idp {
            issuer,
            ca_path,
            state,
            client,
            _dir: dir,
        }
    }

    fn provider(&self) -> OidcProviderSettings {
        OidcProviderSettings {
            name: "hospital".into(),
            issuer: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            redirect_uri: None,
            ca_file: Some(self.ca_path.clone()),
            mfa_amr: vec!["mfa".into(), "otp".into(), "hwk".into()],
            mfa_acr: vec!["urn:theta:mfa".into()],
            link_by_verified_email: true,
        }
    }

    fn set(&self, f: impl FnOnce(&mut IdpState)) {
        f(&mut self.state.lock().unwrap());
    }
}

/// Runs the browser's part: our login redirect, the provider's authorize redirect, our callback.
/// Returns the callback's status and body.
async fn browser_login(
    app: &TestApp,
    idp: &Idp,
    keep_cookie: bool,
) -> (StatusCode, Value, Vec<String>) {
    let (s, h, _) = app
        .send(req(
            Method::GET,
            "/api/auth/oidc/hospital/login",
            None,
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let authorize_url = h[header::LOCATION].to_str().unwrap().to_owned();
    assert!(
        authorize_url.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{authorize_url}"
    );
    assert!(authorize_url.contains("code_challenge=") && authorize_url.contains("nonce="));
    let cookie = h[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-theta_oidc="));
    let resp = idp
        .client
        .send(http::Request::get(&authorize_url).body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back = resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    // The redirect URI is ours: keep its path and query.
    let path = back.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    assert!(
        path.starts_with("/api/auth/oidc/hospital/callback?"),
        "{path}"
    );
    let mut r = req(Method::GET, &path, None, None);
    if keep_cookie {
        r.headers_mut()
            .insert(header::COOKIE, cookie.parse().unwrap());
    }
    let (s, h, v) = app.send(r).await;
    let cookies = h
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .collect();
    (s, v, cookies)
}

async fn setup() -> (TestApp, Idp, User) {
    let idp = Idp::start().await;
    let p = idp.provider();
    let app = TestApp::with_settings(|s| s.oidc = vec![p]);
    // The provider signs with the real time; so does the relying party here.
    app.clock.set(Utc::now());
    let u = app.add_user("cdurand", Role::Auditor, None);
    (app, idp, u)
}

#[tokio::test]
async fn oidc_happy_path_links_by_verified_email_then_by_subject() {
    let (app, idp, u) = setup().await;
    let (s, v, cookies) = browser_login(&app, &idp, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["account"]["id"], u.id.as_str());
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-theta_session="))
    );
    let token = v["token"].as_str().unwrap();
    assert_eq!(
        app.send(req(Method::GET, "/api/me", Some(token), None))
            .await
            .0,
        StatusCode::OK
    );
    let ev = app.audit.events();
    // The link is an account change, then the login succeeds.
    assert!(
        ev.iter().any(|e| e.action == AuditAction::AccountUpdate
            && e.actor.account_id() == Some(u.id.as_str()))
    );
    assert!(
        ev.iter().any(|e| e.action == AuditAction::LoginSuccess
            && e.actor.account_id() == Some(u.id.as_str()))
    );

    // Later logins use the stored (issuer, subject) link even if the e-mail changed.
    idp.set(|s| s.email = "changed@elsewhere.example".into());
    let (s, v, _) = browser_login(&app, &idp, true).await;
    assert_eq!(
        (s, v["account"]["id"].as_str()),
        (StatusCode::OK, Some(u.id.as_str()))
    );
    // An acr that the profile lists as multi-factor is accepted too.
    idp.set(|s| s.mode = Mode::AcrOnly);
    assert_eq!(browser_login(&app, &idp, true).await.0, StatusCode::OK);
}

#[tokio::test]
async fn oidc_refusals() {
    let (app, idp, _) = setup().await;
    for (mode, code) in [
        (Mode::BadSignature, "oidc_bad_signature"),
        (Mode::WrongAudience, "oidc_bad_audience"),
        (Mode::WrongIssuer, "oidc_bad_issuer"),
        (Mode::Expired, "oidc_expired"),
        (Mode::WrongNonce, "oidc_bad_nonce"),
        (Mode::NoMfa, "oidc_no_mfa"),
    ] {
        idp.set(|s| s.mode = mode);
        let (s, v, _) = browser_login(&app, &idp, true).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(code)),
            "{mode:?}: {v}"
        );
        assert!(
            app.audit
                .events()
                .iter()
                .any(|e| e.action == AuditAction::LoginFailure
                    && e.reason
                        == Some(if mode == Mode::NoMfa {
                            Reason::MfaRequired
                        } else {
                            Reason::NotAuthenticated
                        })),
            "{mode:?} audited"
        );
    }
    idp.set(|s| s.mode = Mode::Good);
    // The callback must come back to the browser that started the login.
    let (s, v, _) = browser_login(&app, &idp, false).await;
    assert_eq!(v["error"], "oidc_browser_mismatch", "{s}");
    // An unverified e-mail does not link; neither does an unknown one.
    idp.set(|s| s.email_verified = false);
    assert_eq!(
        browser_login(&app, &idp, true).await.1["error"],
        "oidc_no_account"
    );
    idp.set(|s| {
        s.email_verified = true;
        s.email = "stranger@chu.example.fr".into();
    });
    assert_eq!(
        browser_login(&app, &idp, true).await.1["error"],
        "oidc_no_account"
    );
    // A forged state is refused.
    let (s, _, v) = app
        .send(req(
            Method::GET,
            "/api/auth/oidc/hospital/callback?code=x&state=forged",
            None,
            None,
        ))
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("oidc_unknown_state"))
    );
    assert_eq!(
        app.send(req(Method::GET, "/api/auth/oidc/nowhere/login", None, None))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn oidc_login_of_a_disabled_account_is_refused() {
    let (app, idp, u) = setup().await;
    assert_eq!(browser_login(&app, &idp, true).await.0, StatusCode::OK);
    let now = app.clock_now();
    app.db()
        .call_blocking(|c| theta_server::accounts::disable(c, &u.id, "administrator", now))
        .unwrap();
    let (s, v, _) = browser_login(&app, &idp, true).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("account_disabled"))
    );
}
