//! Configuration: one TOML file with named profiles (`dev`, `test`, `prod`, …).
//!
//! ```toml
//! profile = "dev"                      # used when --profile is not given
//!
//! [profiles.dev]
//! listen = "127.0.0.1:8443"
//! data_dir = "theta-data"              # relative to this file
//!
//! [profiles.prod]
//! kind = "prod"
//! environment = "prod-paris"
//! listen = "0.0.0.0:443"
//! data_dir = "/var/lib/theta"
//! public_origin = "https://theta.example.fr"
//! tls = { cert = "/etc/theta/cert.pem", key = "/etc/theta/key.pem" }
//! http = { trusted_proxies = ["10.0.0.0/8"] }
//! ```
//!
//! The profile's *kind* (from `kind`, else the profile name) decides the safety rules: only `dev`
//! may generate a self-signed certificate; `prod` requires a certificate chaining to a trusted CA
//! and refuses a data folder tagged for another environment (see [`crate::tls`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Default profile name when none is given on the command line.
    #[serde(default)]
    pub profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Settings>,
}

/// What kind of environment a profile describes; decides which shortcuts are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// A developer's machine: self-signed certificate generated on first start.
    Dev,
    /// Automated tests and acceptance: like prod but may use a test CA.
    Test,
    /// Production: real certificates, no dev keys.
    Prod,
}

impl ProfileKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Dev => "dev",
            ProfileKind::Test => "test",
            ProfileKind::Prod => "prod",
        }
    }
}

/// One resolved profile: everything `serve` and the admin commands need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Profile name (filled in by [`Settings::load`]).
    #[serde(skip)]
    pub name: String,
    /// Kind of profile; defaults to the profile's name when that is `dev`, `test` or `prod`.
    #[serde(default)]
    pub kind: Option<ProfileKind>,
    /// Environment tag written into the data folder; defaults to the kind's name.
    #[serde(default)]
    pub environment: Option<String>,
    /// Address to listen on (HTTPS only).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Data folder (SQLite database, generated dev certificate). Relative paths are resolved
    /// against the configuration file's folder.
    pub data_dir: PathBuf,
    /// The origin browsers use (`https://host[:port]`), for the CSRF Origin check, cookies and
    /// the OIDC redirect. Defaults to `https://<listen>`.
    #[serde(default)]
    pub public_origin: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Session time-outs.
    #[serde(default)]
    pub sessions: SessionSettings,
    /// Account policy.
    #[serde(default)]
    pub accounts: AccountSettings,
    /// HTTP limits and proxies.
    #[serde(default)]
    pub http: HttpSettings,
    /// OpenID Connect providers.
    #[serde(default)]
    pub oidc: Vec<OidcProviderSettings>,
    /// Key file sealing the service's secrets at rest (see [`crate::secrets`]); generated in the
    /// data folder by the dev profile, required elsewhere.
    #[serde(default)]
    pub secrets_key_file: Option<PathBuf>,
    /// The tamper-evident audit trail.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Security incident detection, register and partner notification.
    #[serde(default)]
    pub incidents: IncidentSettings,
    /// Prometheus metrics.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Where recordings are stored (object store location and region rules).
    #[serde(default)]
    pub store: StoreSettings,
    /// Research export jobs run by the service.
    #[serde(default)]
    pub exports: ExportSettings,
}

/// Research export jobs (`POST /api/tenants/{tenant_id}/exports`): output under
/// `<data_dir>/exports/<job id>/`.
///
/// ```toml
/// [profiles.prod.exports]
/// max_concurrent = 1        # jobs exporting at once; further jobs wait queued
/// retention_days = 30       # outputs of ended jobs are deleted this long after they ended
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSettings {
    /// Jobs exporting at once (default 1: an export already uses every core). Further jobs
    /// wait in the `queued` state.
    pub max_concurrent: usize,
    /// Days an ended job's output (pseudonymised personal data) is kept for download before the
    /// service deletes it (default 30, 1 to 3650). The job's record stays, with `purged_at`.
    pub retention_days: u32,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            max_concurrent: 1,
            retention_days: 30,
        }
    }
}

/// The audit trail: where the hash-chained log and its signing key live, retention, checkpoints.
///
/// ```toml
/// [profiles.prod.audit]
/// log = "/var/lib/theta/audit/audit.db"          # default <data_dir>/audit/audit.db
/// signing_key = "/etc/theta/audit-signing.key"   # required outside dev (dev: generated)
/// verify_keys = "/etc/theta/audit-verify.keys"   # pinned verify keys (default: published file)
/// retention_days = 365                           # at least 365 (the plan: one year)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The SQLite file of the log (default `<data_dir>/audit/audit.db`).
    pub log: Option<PathBuf>,
    /// The Ed25519 signing key (mode 0600, kept apart from the log's folder). The dev profile
    /// generates `<data_dir>/keys/audit-signing.key`; other profiles must name an existing key
    /// made for their environment (`theta audit keygen`).
    pub signing_key: Option<PathBuf>,
    /// Verify keys held out of band (one `theta-audit-verify-key v1 …` line each). When absent,
    /// `theta audit verify` trusts the keys published beside the log.
    pub verify_keys: Option<PathBuf>,
    /// Events are kept at least this many days (default and minimum 365).
    pub retention_days: u32,
    /// A signed checkpoint at least every this many events (default 1000).
    pub checkpoint_every_events: u64,
    /// …and at least every this many seconds while events arrive (default 3600).
    pub checkpoint_interval_secs: u64,
    /// `theta serve` re-verifies the whole chain this often, in seconds (default 3600; 0 = never).
    pub verify_every_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            log: None,
            signing_key: None,
            verify_keys: None,
            retention_days: 365,
            checkpoint_every_events: 1000,
            checkpoint_interval_secs: 3600,
            verify_every_secs: 3600,
        }
    }
}

/// Detection thresholds, responses and partner notification.
///
/// ```toml
/// [profiles.prod.incidents]
/// account_failures = 10        # failed logins on one account within failure_window_secs → lock
/// address_failures = 20        # failed logins from one address → throttle that address
/// [[profiles.prod.incidents.webhooks]]
/// tenant = "chu-a"             # "*" receives every incident
/// url = "https://soc.chu-a.example.fr/theta-incidents"
/// secret_file = "/etc/theta/webhook-chu-a.secret"   # HMAC-SHA256 of the body, hex
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// Failed logins (password or second factor) on one account within the window that lock it.
    pub account_failures: u32,
    /// Failed logins from one client address within the window that throttle the address.
    pub address_failures: u32,
    /// Distinct accounts failing from one address within the window: credential stuffing.
    pub stuffing_accounts: u32,
    /// The sliding window of the login detectors, in seconds (default 900).
    pub failure_window_secs: u64,
    /// First lock / throttle period in seconds; each repeat doubles it (default 60).
    pub lock_base_secs: u64,
    /// Longest lock / throttle period in seconds (default 86 400).
    pub lock_max_secs: u64,
    /// Access denials by one account or from one address within `denial_window_secs` that open
    /// an incident (default 20).
    pub denial_burst: u32,
    /// Window of the denial detector, in seconds (default 300).
    pub denial_window_secs: u64,
    /// Requests refused by the rate limiter from one address within `flood_window_secs` that open
    /// a small-scale denial-of-service incident (default 200).
    pub flood_requests: u32,
    /// Distinct rate-limited addresses within the window that make it platform-wide (P1).
    pub flood_addresses: u32,
    /// Window of the flood detector, in seconds (default 300).
    pub flood_window_secs: u64,
    /// A notification deadline closer than this many seconds raises the "near" alert (default
    /// 10 800: three hours).
    pub deadline_warning_secs: u64,
    /// Where incidents are notified (HTTPS POST, retried with back-off).
    pub webhooks: Vec<WebhookSettings>,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        Self {
            account_failures: 10,
            address_failures: 20,
            stuffing_accounts: 10,
            failure_window_secs: 900,
            lock_base_secs: 60,
            lock_max_secs: 86_400,
            denial_burst: 20,
            denial_window_secs: 300,
            flood_requests: 200,
            flood_addresses: 50,
            flood_window_secs: 300,
            deadline_warning_secs: 3 * 3600,
            webhooks: Vec::new(),
        }
    }
}

/// One partner webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Tenant whose incidents go there, or `*` for every incident.
    pub tenant: String,
    /// HTTPS URL receiving a JSON POST per notification.
    pub url: String,
    /// File holding the shared secret; the body's HMAC-SHA256 is sent as `X-Theta-Signature`.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PEM bundle trusted for the receiver (default: the system bundle).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Delivery attempts before giving up (default 8; back-off 1 s, 2 s, 4 s … capped at 5 min).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    8
}

/// Prometheus metrics: never public. `/metrics` on the main listener answers only a bearer token
/// read from `token_file`; `listen` adds a plain-HTTP listener for a private scrape network.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// File holding the scrape token (`Authorization: Bearer <token>`); without it `/metrics`
    /// on the main listener answers 404.
    pub token_file: Option<PathBuf>,
    /// A separate plain-HTTP listener serving only `/metrics` (bind it to a private address).
    pub listen: Option<SocketAddr>,
}

/// Where recordings live.
///
/// ```toml
/// [profiles.prod.store]
/// location = "s3://theta-prod-paris/store"
/// region = "eu-west-3"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Store folder (default `<data_dir>/store`). Relative paths are resolved against the
    /// configuration file's folder.
    pub dir: Option<PathBuf>,
    /// Key file holding the key-encryption keys (default: `THETA_KEK` when set, else
    /// `<data_dir>/store.keys`, created with mode 600 by the dev and test profiles).
    pub key_file: Option<PathBuf>,
    /// Decoded-chunk cache in MiB (default 256).
    pub cache_mib: usize,
    /// Largest accepted upload (EDF/BDF body) in bytes (default 4 GiB).
    pub upload_limit_bytes: u64,
    /// A local folder, or an object-store URL (`s3://bucket/prefix`, `gs://…`, `az://…`).
    pub location: Option<String>,
    /// The object store's region (`eu-west-3`, `fr-par`, …); required for object-store URLs.
    pub region: Option<String>,
    /// Regions the prod profile accepts (default: France and EU member states only, see
    /// [`DEFAULT_ALLOWED_REGIONS`]).
    pub allowed_regions: Vec<String>,
    /// Lets a prod profile use a local folder (a mounted volume in a French/EU data centre).
    pub allow_local: bool,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            dir: None,
            key_file: None,
            cache_mib: 256,
            upload_limit_bytes: 4 << 30,
            location: None,
            region: None,
            allowed_regions: DEFAULT_ALLOWED_REGIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            allow_local: false,
        }
    }
}

/// Regions accepted by default: data stays in France, else in the European Union (security plan
/// §5.3). AWS: Paris, Ireland, Frankfurt, Milan, Spain, Stockholm (London and Zurich are outside
/// the EU); Scaleway: Paris, Amsterdam, Warsaw; OVHcloud: Gravelines, Strasbourg, Roubaix, Paris.
pub const DEFAULT_ALLOWED_REGIONS: &[&str] = &[
    "eu-west-3",
    "eu-west-1",
    "eu-central-1",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "fr-par",
    "nl-ams",
    "pl-waw",
    "gra",
    "sbg",
    "rbx",
    "eu-west-par",
];

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

/// TLS settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain (leaf first).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// PEM bundle of CAs the server certificate must chain to (prod/test check). Defaults to
    /// the system bundle.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `Strict-Transport-Security` max-age in seconds (default one year).
    #[serde(default)]
    pub hsts_max_age_secs: Option<u64>,
}

/// Session time-outs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// A session unused for this long is closed (default 15 minutes).
    pub idle_timeout_secs: u64,
    /// A session older than this is closed whatever its use (default 12 hours).
    pub absolute_timeout_secs: u64,
    /// Time allowed between the password step and the second factor (default 5 minutes).
    pub mfa_step_timeout_secs: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 15 * 60,
            absolute_timeout_secs: 12 * 3600,
            mfa_step_timeout_secs: 5 * 60,
        }
    }
}

/// Account policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountSettings {
    /// Accounts with no login for this many days are disabled (default 90).
    pub dormant_after_days: u32,
    /// Passwords older than this many days must be changed at next login (default 365).
    pub password_max_age_days: u32,
    /// Longest life of a guest account, in days (default 90).
    pub guest_max_days: u32,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            dormant_after_days: 90,
            password_max_age_days: 365,
            guest_max_days: 90,
        }
    }
}

/// HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Whole-request time-out in seconds (default 30).
    pub request_timeout_secs: u64,
    /// Largest accepted request body for JSON endpoints, in bytes (default 1 MiB).
    pub body_limit_bytes: usize,
    /// Requests processed at once; more wait (default 256).
    pub max_concurrent_requests: usize,
    /// Most sample values one window, page, spectrum or overview request may read: channels
    /// (or a page's derivations, when more) × samples, a processed page's padding included; an
    /// overview's channels × width × 2. Default 2^24 = 16 777 216, 128 MiB as `f64`: 30 s of
    /// 256 channels at 2 kHz. Larger requests are refused with 400 before anything is read, so
    /// that no single request can take the service's memory; whole recordings leave through the
    /// research export.
    pub max_window_values: u64,
    /// Window, page, spectrum and overview requests computed at once; more wait their turn
    /// (default 4). With `max_window_values`, this bounds their memory: each holds up to about
    /// 40 bytes per value (the samples read, the filter's rows, the answer and its JSON),
    /// 2.7 GB at the defaults. The work is CPU-bound, so more than twice the cores gains nothing.
    /// A computation keeps its place until it ends even when its client goes away (a closed
    /// connection, a time-out), and then stops at its next stage.
    pub max_concurrent_reads: usize,
    /// Proxies whose `X-Forwarded-For` is believed: addresses or CIDR blocks.
    pub trusted_proxies: Vec<String>,
    /// Token bucket per client address (default 50 requests/s, bursts of 200).
    pub rate_per_address: RateSettings,
    /// Token bucket per authenticated account (default 50 requests/s, bursts of 200).
    pub rate_per_account: RateSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout_secs: 30,
            body_limit_bytes: 1 << 20,
            max_concurrent_requests: 256,
            max_window_values: 1 << 24,
            max_concurrent_reads: 4,
            trusted_proxies: Vec::new(),
            rate_per_address: RateSettings::default(),
            rate_per_account: RateSettings::default(),
        }
    }
}

/// A token bucket: `per_second` tokens added each second up to `burst`; a request takes one.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateSettings {
    /// Sustained rate.
    pub per_second: f64,
    /// Bucket size (requests allowed at once after a pause).
    pub burst: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 200,
        }
    }
}

/// One OpenID Connect provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderSettings {
    /// Short name used in URLs: `/api/auth/oidc/{name}/login`.
    pub name: String,
    /// Issuer URL (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Client id registered at the provider.
    pub client_id: String,
    /// Client secret (keep the file private).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Redirect URI registered at the provider; defaults to
    /// `{public_origin}/api/auth/oidc/{name}/callback`.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// PEM bundle trusted for the provider's HTTPS endpoints (default: system bundle).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `amr` values that prove multi-factor authentication (default `mfa`, `otp`, `hwk`).
    #[serde(default = "default_mfa_amr")]
    pub mfa_amr: Vec<String>,
    /// `acr` values that prove multi-factor authentication (default none).
    #[serde(default)]
    pub mfa_acr: Vec<String>,
    /// On first login, link to the account whose e-mail equals the provider's *verified* e-mail
    /// (default true). Later logins use the stored (issuer, subject) link only.
    #[serde(default = "yes")]
    pub link_by_verified_email: bool,
}

fn default_mfa_amr() -> Vec<String> {
    vec!["mfa".into(), "otp".into(), "hwk".into()]
}

fn yes() -> bool {
    true
}

impl Settings {
    /// Reads `path` and resolves the profile `profile` (or the file's `profile` field, or the
    /// only profile there is).
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and field when it cannot be read or is invalid.
    pub fn load(path: &Path, profile: Option<&str>) -> Result<Settings> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, profile, base).map_err(|e| match e {
            Error::Config { reason, .. } => Error::config(path, reason),
            other => other,
        })
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    ///
    /// # Errors
    /// [`Error::Config`] when the text is invalid or the profile is unknown.
    pub fn from_toml(text: &str, profile: Option<&str>, base: &Path) -> Result<Settings> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| Error::config("<config>", e.to_string()))?;
        let name = match profile.map(str::to_owned).or(file.profile.clone()) {
            Some(n) => n,
            None if file.profiles.len() == 1 => {
                file.profiles.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(Error::config(
                    "<config>",
                    "several profiles and none selected: pass --profile or set `profile`",
                ));
            }
        };
        let mut s = file
            .profiles
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::config("<config>", format!("no profile named {name:?}")))?;
        s.name = name;
        s.resolve_paths(base);
        s.validate()?;
        Ok(s)
    }

    /// A profile for tests and the demo: given data folder, loopback port 0, defaults elsewhere.
    pub fn for_kind(kind: ProfileKind, data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            name: kind.as_str().to_owned(),
            kind: Some(kind),
            environment: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            public_origin: None,
            tls: TlsSettings::default(),
            sessions: SessionSettings::default(),
            accounts: AccountSettings::default(),
            http: HttpSettings::default(),
            oidc: Vec::new(),
            secrets_key_file: None,
            audit: AuditSettings::default(),
            incidents: IncidentSettings::default(),
            metrics: MetricsSettings::default(),
            store: StoreSettings::default(),
            exports: ExportSettings::default(),
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        for p in [
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.tls.ca_file,
            &mut self.secrets_key_file,
            &mut self.audit.log,
            &mut self.audit.signing_key,
            &mut self.audit.verify_keys,
            &mut self.metrics.token_file,
            &mut self.store.dir,
            &mut self.store.key_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        for w in &mut self.incidents.webhooks {
            for p in [&mut w.secret_file, &mut w.ca_file].into_iter().flatten() {
                fix(p);
            }
        }
        if let Some(loc) = &mut self.store.location
            && !loc.contains("://")
            && Path::new(loc.as_str()).is_relative()
        {
            *loc = base.join(&*loc).to_string_lossy().into_owned();
        }
        for o in &mut self.oidc {
            if let Some(p) = &mut o.ca_file {
                fix(p);
            }
        }
    }

    /// The store folder (default `<data_dir>/store`).
    pub fn store_dir(&self) -> PathBuf {
        self.store
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("store"))
    }

    /// The profile's kind.
    ///
    /// Unknown profile names without an explicit `kind` are treated as `prod`, the strictest.
    pub fn kind(&self) -> ProfileKind {
        self.kind.unwrap_or(match self.name.as_str() {
            "dev" => ProfileKind::Dev,
            "test" => ProfileKind::Test,
            _ => ProfileKind::Prod,
        })
    }

    /// The environment tag (defaults to the kind's name).
    pub fn environment(&self) -> String {
        self.environment
            .clone()
            .unwrap_or_else(|| self.kind().as_str().to_owned())
    }

    /// The public origin, `https://host[:port]`, without a trailing slash.
    pub fn public_origin(&self) -> String {
        match &self.public_origin {
            Some(o) => o.trim_end_matches('/').to_owned(),
            None => format!("https://{}", self.listen),
        }
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("theta.db")
    }

    /// The audit log file.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit
            .log
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit").join("audit.db"))
    }

    /// The audit signing key file (the dev default lives in `<data_dir>/keys/`, apart from the
    /// log's folder).
    pub fn audit_key_path(&self) -> Option<PathBuf> {
        match (&self.audit.signing_key, self.kind()) {
            (Some(p), _) => Some(p.clone()),
            (None, ProfileKind::Dev) => Some(self.data_dir.join("keys").join("audit-signing.key")),
            (None, _) => None,
        }
    }

    /// Checks the store location against the profile's rules: in prod an object store must be
    /// in an allowed region (France / EU by default) and a local folder needs `allow_local`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the location and the rule.
    pub fn check_store_location(&self) -> Result<()> {
        let here = || format!("<profile {}>", self.name);
        let Some(loc) = &self.store.location else {
            return Ok(());
        };
        let remote = loc.contains("://") && !loc.starts_with("file://");
        if remote {
            let region = self.store.region.as_deref().map(str::trim).unwrap_or("");
            if region.is_empty() {
                return Err(Error::config(
                    here(),
                    format!("store.region is required for the object store {loc:?}"),
                ));
            }
            if self.kind() == ProfileKind::Prod
                && !self
                    .store
                    .allowed_regions
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(region))
            {
                return Err(Error::config(
                    here(),
                    format!(
                        "store region {region:?} is outside the allowed regions {:?} (health data stays in France / the EU)",
                        self.store.allowed_regions
                    ),
                ));
            }
        } else if self.kind() == ProfileKind::Prod && !self.store.allow_local {
            return Err(Error::config(
                here(),
                format!(
                    "store.location {loc:?} is a local folder: the prod profile needs an object store in an allowed region (or store.allow_local = true for a mounted volume in France / the EU)"
                ),
            ));
        }
        Ok(())
    }

    /// Parsed trusted proxy blocks.
    ///
    /// # Errors
    /// [`Error::Config`] naming the bad entry.
    pub fn trusted_proxies(&self) -> Result<Vec<IpNet>> {
        self.http
            .trusted_proxies
            .iter()
            .map(|s| {
                IpNet::parse(s).ok_or_else(|| {
                    Error::config(
                        format!("<profile {}>", self.name),
                        format!("http.trusted_proxies: {s:?} is not an address or CIDR block"),
                    )
                })
            })
            .collect()
    }

    fn validate(&self) -> Result<()> {
        let here = || format!("<profile {}>", self.name);
        if !self.public_origin().starts_with("https://") {
            return Err(Error::config(
                here(),
                "public_origin must start with https://",
            ));
        }
        if self.sessions.idle_timeout_secs == 0 || self.sessions.absolute_timeout_secs == 0 {
            return Err(Error::config(
                here(),
                "sessions: time-outs must be positive",
            ));
        }
        if self.sessions.idle_timeout_secs > self.sessions.absolute_timeout_secs {
            return Err(Error::config(
                here(),
                "sessions.idle_timeout_secs exceeds absolute_timeout_secs",
            ));
        }
        if self.accounts.password_max_age_days == 0 || self.accounts.password_max_age_days > 365 {
            return Err(Error::config(
                here(),
                "accounts.password_max_age_days must be 1..=365 (the plan requires yearly renewal)",
            ));
        }
        if self.exports.max_concurrent == 0 {
            return Err(Error::config(
                here(),
                "exports.max_concurrent must be at least 1",
            ));
        }
        if !(1..=3650).contains(&self.exports.retention_days) {
            return Err(Error::config(
                here(),
                "exports.retention_days must be 1..=3650",
            ));
        }
        if self.http.body_limit_bytes == 0
            || self.http.max_concurrent_requests == 0
            || self.http.max_window_values == 0
            || self.http.max_concurrent_reads == 0
        {
            return Err(Error::config(here(), "http limits must be positive"));
        }
        for (name, r) in [
            ("rate_per_address", self.http.rate_per_address),
            ("rate_per_account", self.http.rate_per_account),
        ] {
            if !(r.per_second.is_finite() && r.per_second > 0.0) || r.burst == 0 {
                return Err(Error::config(
                    here(),
                    format!("http.{name}: per_second and burst must be positive"),
                ));
            }
        }
        let env = self.environment();
        if theta_engine::audit::Environment::try_new(&env).is_err() {
            return Err(Error::config(
                here(),
                format!(
                    "environment {env:?}: 1-32 characters of [a-z0-9_-], starting with a letter or digit"
                ),
            ));
        }
        if self.kind() == ProfileKind::Prod && (env.starts_with("dev") || env.starts_with("test")) {
            return Err(Error::config(
                here(),
                format!(
                    "a prod profile cannot use the environment tag {env:?} (dev and test keys and data are refused in production)"
                ),
            ));
        }
        if self.audit.retention_days < theta_engine::audit::Retention::MIN_DAYS {
            return Err(Error::config(
                here(),
                format!(
                    "audit.retention_days = {} is below the one-year minimum ({} days); retention can only be raised",
                    self.audit.retention_days,
                    theta_engine::audit::Retention::MIN_DAYS
                ),
            ));
        }
        if self.audit.checkpoint_every_events == 0 || self.audit.checkpoint_interval_secs == 0 {
            return Err(Error::config(
                here(),
                "audit: checkpoint_every_events and checkpoint_interval_secs must be positive",
            ));
        }
        let i = &self.incidents;
        if i.account_failures == 0
            || i.address_failures == 0
            || i.stuffing_accounts == 0
            || i.denial_burst == 0
            || i.flood_requests == 0
            || i.flood_addresses == 0
            || i.failure_window_secs == 0
            || i.denial_window_secs == 0
            || i.flood_window_secs == 0
            || i.lock_base_secs == 0
            || i.lock_max_secs < i.lock_base_secs
        {
            return Err(Error::config(
                here(),
                "incidents: thresholds and windows must be positive, lock_max_secs >= lock_base_secs",
            ));
        }
        for w in &i.webhooks {
            if !w.url.starts_with("https://") {
                return Err(Error::config(
                    here(),
                    format!("incidents.webhooks: {:?} must be an https URL", w.url),
                ));
            }
            if w.tenant.is_empty() || w.max_attempts == 0 {
                return Err(Error::config(
                    here(),
                    "incidents.webhooks: tenant (or \"*\") and max_attempts >= 1 are required",
                ));
            }
        }
        self.check_store_location()?;
        self.trusted_proxies()?;
        let mut names = std::collections::BTreeSet::new();
        for o in &self.oidc {
            if !names.insert(&o.name)
                || o.name.is_empty()
                || !o
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::config(
                    here(),
                    format!("oidc.name {:?} must be unique, [A-Za-z0-9_-]+", o.name),
                ));
            }
            if self.kind() == ProfileKind::Prod && !o.issuer.starts_with("https://") {
                return Err(Error::config(
                    here(),
                    format!("oidc {}: issuer must be https", o.name),
                ));
            }
        }
        Ok(())
    }
}

/// An address block (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `a.b.c.d[/n]` or `v6[/n]`.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve_and_validate() {
        let text = r#"
profile = "dev"
[profiles.dev]
data_dir = "d"
[profiles.prod]
listen = "0.0.0.0:443"
data_dir = "/var/lib/theta"
public_origin = "https://theta.example.fr/"
tls = { cert = "c.pem", key = "k.pem" }
http = { trusted_proxies = ["10.0.0.0/8", "::1"] }
"#;
        let dev = Settings::from_toml(text, None, Path::new("/etc/theta")).unwrap();
        assert_eq!(dev.kind(), ProfileKind::Dev);
        assert_eq!(dev.data_dir, Path::new("/etc/theta/d"));
        assert_eq!(dev.public_origin(), "https://127.0.0.1:8443");
        let prod = Settings::from_toml(text, Some("prod"), Path::new("/etc/theta")).unwrap();
        assert_eq!(prod.kind(), ProfileKind::Prod);
        assert_eq!(prod.public_origin(), "https://theta.example.fr");
        assert_eq!(
            prod.tls.cert.as_deref(),
            Some(Path::new("/etc/theta/c.pem"))
        );
        assert_eq!(prod.trusted_proxies().unwrap().len(), 2);
        let err = Settings::from_toml(text, Some("nope"), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("no profile named"), "{err}");
        let err = Settings::from_toml("[profiles.x]\ndata_dir='d'\nbogus=1", None, Path::new("/"))
            .unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = Settings::from_toml(
            "[profiles.x]\ndata_dir='d'\naccounts={password_max_age_days=400}",
            None,
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("yearly"), "{err}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../theta.example.toml");
        let dev = Settings::from_toml(text, None, Path::new("/srv")).unwrap();
        assert_eq!(dev.data_dir, Path::new("/srv/theta-data"));
        let prod = Settings::from_toml(text, Some("prod"), Path::new("/srv")).unwrap();
        assert_eq!(prod.kind(), ProfileKind::Prod);
        assert_eq!(prod.environment(), "prod-paris");
        assert_eq!(prod.oidc[0].name, "aphp");
        assert_eq!(prod.trusted_proxies().unwrap().len(), 1);
    }

    #[test]
    fn cidr_matching() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = IpNet::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(
            IpNet::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
