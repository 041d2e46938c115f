//! A small HTTPS client over hyper and rustls (ring provider): no aws-lc, no OpenSSL, no proxy,
//! no redirects (OpenID Connect forbids following them for token requests), bounded time and
//! body size. It serves the OIDC relying party and the end-to-end tests.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

/// Where Debian-family systems keep the CA bundle.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An HTTPS client with its own trust roots.
#[derive(Clone)]
pub struct HttpsClient {
    tls: TlsConnector,
    timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Parses a PEM bundle into a root store.
///
/// # Errors
/// [`Error::Tls`] when the bundle holds no usable certificate.
pub fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls {
            reason: format!("CA bundle: {e}"),
        })?;
        roots.add(cert).map_err(|e| Error::Tls {
            reason: format!("CA bundle: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Tls {
            reason: "CA bundle holds no certificate".into(),
        });
    }
    Ok(roots)
}

/// Reads a PEM bundle (or the system bundle when `path` is `None`) into a root store.
///
/// # Errors
/// [`Error::Io`] or [`Error::Tls`].
pub fn roots_from_file(path: Option<&Path>) -> Result<RootCertStore> {
    let path = path.unwrap_or(Path::new(SYSTEM_CA_BUNDLE));
    let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    roots_from_pem(&pem)
}

impl HttpsClient {
    /// A client trusting `roots`, 10 s per request, 1 MiB bodies.
    pub fn new(roots: RootCertStore) -> HttpsClient {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        // The ring provider supports the default versions; this cannot fail.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
        HttpsClient {
            tls: TlsConnector::from(Arc::new(config)),
            timeout: Duration::from_secs(10),
            max_body: 1 << 20,
        }
    }

    /// A client trusting the PEM bundle at `path` (system bundle when `None`).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Tls`].
    pub fn from_ca_file(path: Option<&Path>) -> Result<HttpsClient> {
        Ok(Self::new(roots_from_file(path)?))
    }

    /// Changes the per-request time-out.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one request over a fresh connection and reads the whole answer.
    ///
    /// # Errors
    /// [`Error::HttpClient`] for non-https URLs, connection, TLS, protocol, time-out or an
    /// oversized body.
    pub async fn send(&self, req: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>> {
        tokio::time::timeout(self.timeout, self.send_inner(req))
            .await
            .map_err(|_| Error::HttpClient("time-out".into()))?
    }

    async fn send_inner(&self, req: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>> {
        let err = |what: &str, e: &dyn std::fmt::Display| Error::HttpClient(format!("{what}: {e}"));
        let uri = req.uri().clone();
        if uri.scheme_str() != Some("https") {
            return Err(Error::HttpClient(format!(
                "only https URLs are fetched, not {:?}",
                uri.scheme_str()
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| Error::HttpClient("URL without host".into()))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| err("connect", &e))?;
        let name = ServerName::try_from(host).map_err(|e| err("server name", &e))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| err("TLS", &e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| err("HTTP handshake", &e))?;
        // The connection task ends when the response is read and `sender` dropped.
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let (mut parts, body) = req.into_parts();
        parts.uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e| err("URL", &e))?;
        parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_str(authority.as_str()).map_err(|e| err("host", &e))?,
        );
        let resp = sender
            .send_request(hyper::Request::from_parts(
                parts,
                Full::new(Bytes::from(body)),
            ))
            .await
            .map_err(|e| err("request", &e))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, self.max_body)
            .collect()
            .await
            .map_err(|e| Error::HttpClient(format!("body: {e}")))?
            .to_bytes()
            .to_vec();
        drop(sender);
        driver.abort();
        Ok(http::Response::from_parts(parts, body))
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for HttpsClient {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Vec<u8>>>> + Send + 'c>>;

    fn call(&'c self, request: http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(self.send(request))
    }
}
