//! Starting and stopping the HTTPS service: [`serve`] is used by `theta serve`, the tests and
//! (later) `theta demo`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::accounts;
use crate::audit::{AuditEvent, Origin, Outcome};
use crate::config::Settings;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::routes::router;
use crate::state::AppState;
use crate::tls;

/// How often lapsed accounts (expired guests, dormant accounts) are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// A running server.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    cert_pem: Vec<u8>,
    state: AppState,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stopped: std::sync::Arc<tokio::sync::Notify>,
}

impl Running {
    /// The bound address (the real port when the profile asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's certificate chain, PEM (clients in tests trust it).
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// The application state (tests reach the database and clock through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, lets requests in flight finish (10 s at most), and waits.
    ///
    /// # Errors
    /// [`Error::Io`] if the server failed.
    pub async fn stop(self) -> Result<()> {
        self.handle.graceful_shutdown(Some(Duration::from_secs(10)));
        self.stopped.notify_one();
        self.wait().await
    }

    /// Waits until the server ends (after the shutdown future completes).
    ///
    /// # Errors
    /// [`Error::Io`] if the server failed.
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(r) => r.map_err(|e| Error::io("<listener>", e)),
            Err(_) => Err(Error::Task),
        }
    }
}

/// Opens the data folder and database for a profile (environment tag checked).
///
/// # Errors
/// [`Error::Config`], [`Error::Io`], [`Error::Db`].
pub fn open_db(settings: &Settings) -> Result<Db> {
    tls::check_environment(settings)?;
    Db::open(&settings.db_path())
}

/// Starts the service for `settings` and returns once it listens. It stops when `shutdown`
/// completes (or [`Running::stop`] is called).
///
/// # Errors
/// Refused or unusable TLS material, environment mismatch, database or bind failure.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running> {
    let db = open_db(&settings)?;
    let state = AppState::new(settings, db)?;
    serve_state(state, shutdown).await
}

/// As [`serve`], with a prepared state (an injected clock, audit sink or store); the profile's
/// store is opened when the state has none.
///
/// # Errors
/// As [`serve`].
pub async fn serve_state(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running> {
    let settings = state.settings().clone();
    let material = tls::load(&settings)?;
    // The recording store opens after the TLS checks, so a misconfigured profile says so first.
    let state = match state.data() {
        Some(_) => state,
        None => {
            let data = crate::data::open_store(&settings).await?;
            state.with_data(data)
        }
    };
    let config = RustlsConfig::from_config(tls::server_config(&material)?);
    let listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|e| Error::io(settings.listen.to_string(), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(settings.listen.to_string(), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(settings.listen.to_string(), e))?;
    let handle: Handle<SocketAddr> = Handle::new();
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp_rustls(listener, config)
        .map_err(|e| Error::io(addr.to_string(), e))?
        .handle(handle.clone());
    let task = tokio::spawn(async move { server.serve(app).await });

    let h = handle.clone();
    let sweeper_state = state.clone();
    let stopped = std::sync::Arc::new(tokio::sync::Notify::new());
    let stop_signal = std::sync::Arc::clone(&stopped);
    // Background duties (the account sweep) end with the server, whichever way it stops.
    tokio::spawn(async move {
        let sweep = async {
            loop {
                sweep_once(&sweeper_state).await;
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        };
        tokio::select! {
            () = shutdown => h.graceful_shutdown(Some(Duration::from_secs(10))),
            () = stop_signal.notified() => {}
            () = sweep => {}
        }
    });
    tracing::info!(%addr, profile = %settings.name, environment = %settings.environment(), "listening (HTTPS)");
    Ok(Running {
        addr,
        cert_pem: material.cert_pem.clone(),
        state,
        handle,
        task,
        stopped,
    })
}

/// Disables lapsed accounts and audits each.
pub async fn sweep_once(state: &AppState) {
    let now = state.now();
    let policy = state.settings().accounts.clone();
    match state
        .db()
        .call(move |c| accounts::sweep(c, &policy, now))
        .await
    {
        Ok(done) => {
            for (id, reason) in done {
                state.audit(AuditEvent {
                    at: now,
                    actor_id: None,
                    actor_name: Some("system".into()),
                    session_id: None,
                    origin: Origin::default(),
                    action: "account.disable".into(),
                    resource: format!("account:{id}"),
                    tenant_id: None,
                    outcome: Outcome::Success,
                    reason: Some(reason.into()),
                });
            }
        }
        Err(e) => tracing::error!(error = %e, "account sweep failed"),
    }
}
