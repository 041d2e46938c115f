//! OpenID Connect relying party (authorization code flow with PKCE), on the `openidconnect` crate.
//!
//! 1. `begin`: discovery (cached for an hour), a random `state`, `nonce` and PKCE S256 verifier;
//!    the caller stores them (hashed state) and sends the browser to the provider.
//! 2. `finish`: the code is exchanged with the verifier; the ID token's signature is checked
//!    against the provider's JWKS (asymmetric algorithms only), then issuer, audience, expiry and
//!    nonce; finally `amr`/`acr` must show multi-factor authentication.
//!
//! Account mapping (decided here, documented in the report): an (issuer, subject) link stored in
//! `oidc_links` is authoritative. Without one, and only if the provider is configured with
//! `link_by_verified_email`, the account whose e-mail equals the token's e-mail *with*
//! `email_verified = true` is linked on that first login; unverified or unknown e-mails are
//! refused. No account is ever created from a token: accounts stay nominative and
//! administrator-made.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};

use crate::config::{OidcProviderSettings, Settings};
use crate::error::{Error, Result};
use crate::http_client::HttpsClient;

/// How long discovery results (endpoints and keys) are reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Asymmetric signature algorithms accepted for ID tokens (no `none`, no HMAC with the secret).
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The configured providers.
#[derive(Debug, Default)]
pub struct OidcRegistry {
    providers: BTreeMap<String, Arc<Provider>>,
}

#[derive(Debug)]
struct Provider {
    settings: OidcProviderSettings,
    redirect: RedirectUrl,
    http: HttpsClient,
    cache: tokio::sync::Mutex<Option<(Instant, CoreProviderMetadata)>>,
}

/// What `begin` produced: where to send the browser, and what to keep until the callback.
#[derive(Debug)]
pub struct Started {
    /// The provider's authorisation URL with all parameters.
    pub authorize_url: String,
    /// The `state` value (store its hash).
    pub state: String,
    /// The nonce expected in the ID token.
    pub nonce: String,
    /// The PKCE verifier for the token request.
    pub pkce_verifier: String,
}

/// A verified identity from the provider.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Issuer URL.
    pub issuer: String,
    /// Subject (the provider's stable user id).
    pub subject: String,
    /// E-mail, when the token carries one.
    pub email: Option<String>,
    /// Whether the provider says the e-mail is verified.
    pub email_verified: bool,
}

/// Why a callback was refused (stable codes for the audit trail and the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Discovery or the token endpoint failed.
    Provider,
    /// No ID token in the answer.
    NoIdToken,
    /// Signature invalid, unknown key or disallowed algorithm.
    Signature,
    /// Wrong issuer.
    Issuer,
    /// Wrong audience (or untrusted extra audience).
    Audience,
    /// Expired.
    Expired,
    /// Nonce missing or different.
    Nonce,
    /// Other claim check failed.
    Claims,
    /// `amr`/`acr` do not show multi-factor authentication.
    NoMfa,
}

impl Refusal {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Provider => "oidc_provider_error",
            Refusal::NoIdToken => "oidc_no_id_token",
            Refusal::Signature => "oidc_bad_signature",
            Refusal::Issuer => "oidc_bad_issuer",
            Refusal::Audience => "oidc_bad_audience",
            Refusal::Expired => "oidc_expired",
            Refusal::Nonce => "oidc_bad_nonce",
            Refusal::Claims => "oidc_bad_claims",
            Refusal::NoMfa => "oidc_no_mfa",
        }
    }
}

impl OidcRegistry {
    /// Builds the registry from the profile (no network yet: discovery happens at first use).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad URL or CA file.
    pub fn from_settings(settings: &Settings) -> Result<OidcRegistry> {
        let mut providers = BTreeMap::new();
        for p in &settings.oidc {
            let here = format!("<profile {}> oidc {}", settings.name, p.name);
            let redirect = p.redirect_uri.clone().unwrap_or_else(|| {
                format!(
                    "{}/api/auth/oidc/{}/callback",
                    settings.public_origin(),
                    p.name
                )
            });
            let redirect = RedirectUrl::new(redirect)
                .map_err(|e| Error::config(&here, format!("redirect_uri: {e}")))?;
            IssuerUrl::new(p.issuer.clone())
                .map_err(|e| Error::config(&here, format!("issuer: {e}")))?;
            let http = HttpsClient::from_ca_file(p.ca_file.as_deref())
                .map_err(|e| Error::config(&here, format!("ca_file: {e}")))?;
            providers.insert(
                p.name.clone(),
                Arc::new(Provider {
                    settings: p.clone(),
                    redirect,
                    http,
                    cache: tokio::sync::Mutex::new(None),
                }),
            );
        }
        Ok(OidcRegistry { providers })
    }

    /// Whether a provider of that name is configured.
    pub fn has(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }

    /// Configured provider names.
    pub fn names(&self) -> Vec<String> {
        self.providers.keys().cloned().collect()
    }

    fn provider(&self, name: &str) -> Result<&Arc<Provider>> {
        self.providers
            .get(name)
            .ok_or_else(|| Error::invalid("provider", "no such identity provider"))
    }

    /// The provider's issuer URL as configured.
    pub fn issuer(&self, name: &str) -> Option<&str> {
        self.providers.get(name).map(|p| p.settings.issuer.as_str())
    }

    /// Whether first logins may link by verified e-mail.
    pub fn links_by_email(&self, name: &str) -> bool {
        self.providers
            .get(name)
            .is_some_and(|p| p.settings.link_by_verified_email)
    }

    /// Starts a login: the URL to send the browser to and the values to keep.
    ///
    /// # Errors
    /// [`Error::Oidc`] when discovery fails.
    pub async fn begin(&self, name: &str) -> Result<Started> {
        let p = self.provider(name)?;
        let meta = p.metadata(false).await?;
        let client = p.client(meta);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Finishes a login: exchanges the code and verifies the ID token at time `now`.
    ///
    /// # Errors
    /// A [`Refusal`]; the detail is logged (without tokens).
    pub async fn finish(
        &self,
        name: &str,
        code: String,
        nonce: String,
        pkce_verifier: String,
        now: DateTime<Utc>,
    ) -> std::result::Result<Identity, Refusal> {
        let p = self.provider(name).map_err(|_| Refusal::Provider)?;
        let meta = p.metadata(false).await.map_err(|e| {
            tracing::warn!(provider = name, error = %e, "OIDC discovery failed");
            Refusal::Provider
        })?;
        let client = p.client(meta);
        let request = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| {
                tracing::warn!(provider = name, error = %e, "OIDC token endpoint missing");
                Refusal::Provider
            })?;
        let response = request
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&p.http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = name, error = %e, "OIDC code exchange failed");
                Refusal::Provider
            })?;
        let id_token = response.id_token().ok_or(Refusal::NoIdToken)?;
        let nonce = Nonce::new(nonce);
        let verify = |client: &CoreClient<_, _, _, _, _, _>| -> std::result::Result<Identity, (Refusal, bool)> {
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(ALLOWED_ALGS)
                .set_time_fn(move || now);
            let claims = id_token.claims(&verifier, &nonce).map_err(|e| {
                let r = classify(&e);
                tracing::warn!(provider = name, error = %e, refusal = r.code(), "ID token refused");
                (r, matches!(e, ClaimsVerificationError::SignatureVerification(_)))
            })?;
            let amr_ok = claims
                .auth_method_refs()
                .is_some_and(|v| v.iter().any(|m| p.settings.mfa_amr.iter().any(|ok| ok == m.as_str())));
            let acr_ok = claims
                .auth_context_ref()
                .is_some_and(|a| p.settings.mfa_acr.iter().any(|ok| ok == a.as_str()));
            if !(amr_ok || acr_ok) {
                tracing::warn!(provider = name, "ID token does not show multi-factor authentication");
                return Err((Refusal::NoMfa, false));
            }
            // The access token is bound to the ID token when the provider says so.
            if let Some(expected) = claims.access_token_hash() {
                let alg = id_token.signing_alg().map_err(|_| (Refusal::Signature, false))?;
                let key = id_token.signing_key(&verifier).map_err(|_| (Refusal::Signature, false))?;
                let actual = openidconnect::AccessTokenHash::from_token(response.access_token(), alg, key)
                    .map_err(|_| (Refusal::Claims, false))?;
                if actual != *expected {
                    return Err((Refusal::Claims, false));
                }
            }
            Ok(Identity {
                issuer: claims.issuer().as_str().to_owned(),
                subject: claims.subject().as_str().to_owned(),
                email: claims.email().map(|e| e.as_str().to_owned()),
                email_verified: claims.email_verified().unwrap_or(false),
            })
        };
        match verify(&client) {
            Ok(id) => Ok(id),
            // The provider may have rotated its keys since discovery: refresh once and retry.
            Err((Refusal::Signature, true)) => {
                let meta = p.metadata(true).await.map_err(|_| Refusal::Provider)?;
                verify(&p.client(meta)).map_err(|(r, _)| r)
            }
            Err((r, _)) => Err(r),
        }
    }
}

fn classify(e: &ClaimsVerificationError) -> Refusal {
    match e {
        ClaimsVerificationError::SignatureVerification(_) => Refusal::Signature,
        ClaimsVerificationError::InvalidIssuer(_) => Refusal::Issuer,
        ClaimsVerificationError::InvalidAudience(_) => Refusal::Audience,
        ClaimsVerificationError::Expired(_) => Refusal::Expired,
        ClaimsVerificationError::InvalidNonce(_) => Refusal::Nonce,
        _ => Refusal::Claims,
    }
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

impl Provider {
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata> {
        let mut cache = self.cache.lock().await;
        if !refresh
            && let Some((at, meta)) = cache.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(meta.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| Error::Oidc {
            provider: self.settings.name.clone(),
            reason: e.to_string(),
        })?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| Error::Oidc {
                provider: self.settings.name.clone(),
                reason: format!("discovery: {e}"),
            })?;
        *cache = Some((Instant::now(), meta.clone()));
        Ok(meta)
    }

    fn client(&self, meta: CoreProviderMetadata) -> Client {
        CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }
}
