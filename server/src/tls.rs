//! TLS: certificate loading, the dev self-signed certificate, the prod refusals, and the
//! data folder's environment tag.
//!
//! - `dev`: uses the configured certificate if any, otherwise generates a self-signed one with
//!   rcgen on first start (`<data_dir>/tls/dev-cert.pem`, `dev-key.pem`) and reuses it after.
//! - `test` / `prod`: certificate and key files are required, and the chain must verify against
//!   the configured CA bundle (or the system one) for the host of `public_origin` — which a
//!   self-signed certificate cannot do. `prod` also refuses Theta's own dev certificates.
//! - Every profile writes its environment tag into `<data_dir>/ENVIRONMENT` on first start and
//!   refuses a data folder tagged for another environment (no dev data served by prod).
//!
//! The server config uses the ring provider only, TLS 1.2 and 1.3.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::{ProfileKind, Settings};
use crate::error::{Error, Result};
use crate::http_client::roots_from_file;

/// Common name of generated dev certificates (also how prod recognises and refuses them).
pub const DEV_CERT_CN: &str = "Theta development certificate (self-signed)";

/// Certificate chain and key, PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// Private key.
    key_pem: Vec<u8>,
    /// Whether it is Theta's generated dev certificate.
    pub generated: bool,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

impl Drop for TlsMaterial {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_pem);
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Dev certificate paths inside a data folder.
pub fn dev_cert_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let d = data_dir.join("tls");
    (d.join("dev-cert.pem"), d.join("dev-key.pem"))
}

/// Loads (or, in dev, generates) the certificate and applies the profile's rules.
///
/// # Errors
/// [`Error::Tls`] for a refused or unusable certificate; [`Error::Io`].
pub fn load(settings: &Settings) -> Result<TlsMaterial> {
    let kind = settings.kind();
    let material = match (&settings.tls.cert, &settings.tls.key) {
        (Some(c), Some(k)) => TlsMaterial {
            cert_pem: read(c)?,
            key_pem: read(k)?,
            generated: false,
        },
        (None, None) if kind == ProfileKind::Dev => load_or_generate_dev(settings)?,
        _ => {
            return Err(Error::Tls {
                reason: format!(
                    "the {} profile requires tls.cert and tls.key files",
                    kind.as_str()
                ),
            });
        }
    };
    let chain = parse_chain(&material.cert_pem)?;
    if kind != ProfileKind::Dev {
        if is_dev_cert(&chain[0]) {
            return Err(Error::Tls {
                reason: "a Theta dev certificate is refused outside the dev profile".into(),
            });
        }
        verify_chain(settings, &chain)?;
    }
    // Parse the key now so a bad key fails at start-up, not at the first handshake.
    server_config(&material)?;
    Ok(material)
}

fn load_or_generate_dev(settings: &Settings) -> Result<TlsMaterial> {
    let (cert_path, key_path) = dev_cert_paths(&settings.data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok(TlsMaterial {
            cert_pem: read(&cert_path)?,
            key_pem: read(&key_path)?,
            generated: true,
        });
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = url::Url::parse(&settings.public_origin())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !names.contains(&host) {
            names.push(host);
        }
    }
    let tls_err = |e: rcgen::Error| Error::Tls {
        reason: format!("generating the dev certificate: {e}"),
    };
    let mut params = rcgen::CertificateParams::new(names).map_err(tls_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, DEV_CERT_CN);
    let key = rcgen::KeyPair::generate().map_err(tls_err)?;
    let cert = params.self_signed(&key).map_err(tls_err)?;
    let dir = cert_path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| Error::io(&cert_path, e))?;
    tracing::warn!(path = %cert_path.display(), "generated a self-signed development certificate");
    Ok(TlsMaterial {
        cert_pem: cert.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
        generated: true,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))
}

fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls {
            reason: format!("certificate: {e}"),
        })?;
    if chain.is_empty() {
        return Err(Error::Tls {
            reason: "certificate file holds no certificate".into(),
        });
    }
    Ok(chain)
}

/// Recognises Theta's generated dev certificates by their subject common name.
fn is_dev_cert(cert: &CertificateDer<'_>) -> bool {
    cert.as_ref()
        .windows(DEV_CERT_CN.len())
        .any(|w| w == DEV_CERT_CN.as_bytes())
}

/// Verifies the chain against the CA bundle for the public origin's host name. A self-signed
/// certificate fails here (its issuer is not a trusted CA).
fn verify_chain(settings: &Settings, chain: &[CertificateDer<'static>]) -> Result<()> {
    let roots = roots_from_file(settings.tls.ca_file.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::Tls {
                reason: format!("CA bundle: {e}"),
            })?;
    let host = url::Url::parse(&settings.public_origin())
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        })
        .ok_or_else(|| Error::Tls {
            reason: "public_origin has no host".into(),
        })?;
    let name = ServerName::try_from(host.clone()).map_err(|e| Error::Tls {
        reason: format!("host {host}: {e}"),
    })?;
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .map_err(|e| Error::Tls {
            reason: format!("the certificate does not verify for {host} against the trusted CAs ({e}); self-signed certificates are refused in this profile"),
        })?;
    Ok(())
}

/// A rustls server configuration (ring provider, TLS 1.2/1.3, ALPN http/1.1).
///
/// # Errors
/// [`Error::Tls`] for an unusable certificate or key.
pub fn server_config(m: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>> {
    let chain = parse_chain(&m.cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(&m.key_pem).map_err(|e| Error::Tls {
        reason: format!("private key: {e}"),
    })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls {
        reason: e.to_string(),
    })?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| Error::Tls {
        reason: format!("certificate/key: {e}"),
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Creates the data folder, writes its environment tag the first time, refuses a folder tagged
/// for another environment.
///
/// # Errors
/// [`Error::Config`] on a mismatch; [`Error::Io`].
pub fn check_environment(settings: &Settings) -> Result<()> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tag_path = dir.join("ENVIRONMENT");
    let want = settings.environment();
    match std::fs::read_to_string(&tag_path) {
        Ok(found) if found.trim() == want => Ok(()),
        Ok(found) => Err(Error::config(
            &tag_path,
            format!(
                "data folder belongs to environment {:?}, this profile is {:?}",
                found.trim(),
                want
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&tag_path, format!("{want}\n")).map_err(|e| Error::io(&tag_path, e))
        }
        Err(e) => Err(Error::io(&tag_path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_and_leaf(dir: &Path, host: &str) -> (PathBuf, PathBuf, PathBuf) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![host.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let (c, k, a) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        );
        std::fs::write(&c, leaf.pem()).unwrap();
        std::fs::write(&k, leaf_key.serialize_pem()).unwrap();
        std::fs::write(&a, ca.pem()).unwrap();
        (c, k, a)
    }

    #[test]
    fn dev_generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::for_kind(ProfileKind::Dev, dir.path());
        let a = load(&s).unwrap();
        assert!(a.generated);
        let b = load(&s).unwrap();
        assert_eq!(
            a.cert_pem, b.cert_pem,
            "second start reuses the certificate"
        );
    }

    #[test]
    fn prod_refuses_missing_self_signed_and_dev_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let mut prod = Settings::for_kind(ProfileKind::Prod, dir.path().join("data"));
        prod.public_origin = Some("https://theta.test".into());
        let err = load(&prod).unwrap_err().to_string();
        assert!(err.contains("requires tls.cert"), "{err}");

        // A dev certificate generated by a dev profile…
        let dev = Settings::for_kind(ProfileKind::Dev, dir.path().join("devdata"));
        load(&dev).unwrap();
        let (dc, dk) = dev_cert_paths(&dev.data_dir);
        prod.tls.cert = Some(dc.clone());
        prod.tls.key = Some(dk.clone());
        prod.tls.ca_file = Some(dc);
        let err = load(&prod).unwrap_err().to_string();
        assert!(err.contains("dev certificate"), "{err}");

        // …and any other self-signed certificate, even if listed as its own "CA".
        let key = rcgen::KeyPair::generate().unwrap();
        let ss = rcgen::CertificateParams::new(vec!["theta.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("ss.pem"), dir.path().join("ss.key"));
        std::fs::write(&c, ss.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        prod.tls.cert = Some(c);
        prod.tls.key = Some(k);
        prod.tls.ca_file = None;
        let err = load(&prod).unwrap_err().to_string();
        assert!(
            err.contains("self-signed certificates are refused"),
            "{err}"
        );
    }

    #[test]
    fn prod_accepts_a_ca_signed_certificate_for_its_host_only() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k, a) = ca_and_leaf(dir.path(), "theta.test");
        let mut prod = Settings::for_kind(ProfileKind::Prod, dir.path().join("data"));
        prod.public_origin = Some("https://theta.test".into());
        prod.tls.cert = Some(c);
        prod.tls.key = Some(k);
        prod.tls.ca_file = Some(a);
        load(&prod).unwrap();
        prod.public_origin = Some("https://other.test".into());
        assert!(load(&prod).is_err());
    }

    #[test]
    fn environment_tag_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Settings::for_kind(ProfileKind::Dev, dir.path());
        check_environment(&dev).unwrap();
        check_environment(&dev).unwrap();
        let prod = Settings::for_kind(ProfileKind::Prod, dir.path());
        let err = check_environment(&prod).unwrap_err().to_string();
        assert!(err.contains("belongs to environment \"dev\""), "{err}");
    }
}
