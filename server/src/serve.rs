//! Starting and stopping the HTTPS service: [`serve`] is used by `theta serve`, the tests and
//! (later) `theta demo`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::accounts;
use crate::audit::{AuditAction, AuditEvent, Outcome, ResourceKind, TrailSink};
use crate::config::Settings;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::incidents::{Category, Detection, IndicatorKind, Priority};
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
    metrics_task: Option<tokio::task::JoinHandle<()>>,
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
        let served = match self.task.await {
            Ok(r) => r.map_err(|e| Error::io("<listener>", e)),
            Err(_) => Err(Error::Task),
        };
        // Every event of the requests that finished is made durable before the process ends.
        self.state.incidents().settle().await;
        let st = self.state.clone();
        match tokio::task::spawn_blocking(move || st.audit_sink().flush()).await {
            Ok(Err(e)) => {
                tracing::error!(target: "theta::audit", error = %e, "audit trail flush at shutdown failed")
            }
            Err(_) => {
                tracing::error!(target: "theta::audit", "audit trail flush at shutdown failed")
            }
            Ok(Ok(())) => {}
        }
        if let Some(t) = &self.metrics_task {
            t.abort();
        }
        served
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
    // Certificates are checked before the trail, so a profile missing both names TLS first.
    tls::load(&settings)?;
    // The hash-chained trail (SQLite + Ed25519 checkpoints), written by a background thread.
    let trail = std::sync::Arc::new(TrailSink::open(&settings)?);
    let state = AppState::new(settings, db)?.with_audit(trail);
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
    // TCP_NODELAY on every accepted connection: an answer is written as TLS records of which the
    // last is usually short, and Nagle's algorithm would hold it until the client's delayed ACK
    // (up to 40 ms on Linux) — a stall on a fraction of page requests, the whole tail of the
    // window endpoint's latency.
    let server = axum_server::from_tcp_rustls(listener, config)
        .map_err(|e| Error::io(addr.to_string(), e))?
        .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
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
                // Incident notifications still owed (the partner was down, or the command line
                // or a previous run could not finish them) are sent again, once an hour.
                purge_exports(&sweeper_state).await;
                crate::incidents::Incidents::redeliver_pending(
                    &sweeper_state,
                    chrono::Duration::minutes(30),
                )
                .await;
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        };
        let verify = async {
            let every = sweeper_state.settings().audit.verify_every_secs;
            if every == 0 {
                return std::future::pending::<()>().await;
            }
            loop {
                tokio::time::sleep(Duration::from_secs(every)).await;
                verify_trail(&sweeper_state).await;
            }
        };
        tokio::select! {
            () = shutdown => h.graceful_shutdown(Some(Duration::from_secs(10))),
            () = stop_signal.notified() => {}
            () = sweep => {}
            () = verify => {}
        }
    });
    let metrics_task = match settings.metrics.listen {
        Some(m) => Some(metrics_listener(&state, m).await?),
        None => None,
    };
    tracing::info!(%addr, profile = %settings.name, environment = %settings.environment(), "listening (HTTPS)");
    Ok(Running {
        addr,
        cert_pem: material.cert_pem.clone(),
        state,
        handle,
        task,
        stopped,
        metrics_task,
    })
}

/// The private scrape listener (`metrics.listen`): plain HTTP, `/metrics` only, no token — bind
/// it to an address only the monitoring network reaches.
async fn metrics_listener(state: &AppState, at: SocketAddr) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .map_err(|e| Error::io(at.to_string(), e))?;
    let st = state.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let st = st.clone();
            async move {
                st.incidents().refresh_metrics(st.now()).await;
                let _ = st.audit_health();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    st.metrics().encode(),
                )
            }
        }),
    );
    tracing::info!(addr = %at, "metrics listener (plain HTTP, private network only)");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    }))
}

/// Deletes the outputs of export jobs past their retention period and audits each deletion
/// (`export.purge`, by the service, with the job's tenant).
pub async fn purge_exports(state: &AppState) {
    let now = state.now();
    match state.exports().purge_expired(now).await {
        Ok(jobs) => {
            for job in jobs {
                let mut e = AuditEvent::service(now, AuditAction::ExportPurge, "exports")
                    .resource(ResourceKind::Export, job.id.clone());
                e.tenant_id = Some(job.tenant_id.clone());
                state.audit(e);
            }
        }
        Err(e) => tracing::error!(error = %e, "export retention sweep failed"),
    }
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
                state.audit(
                    AuditEvent::service(now, AuditAction::AccountDisable, "sweep")
                        .resource(ResourceKind::Account, id)
                        .outcome(Outcome::Success, Some(crate::routes::lapse_code(reason))),
                );
            }
        }
        Err(e) => tracing::error!(error = %e, "account sweep failed"),
    }
}

/// Verifies the whole audit chain (pinned keys from `audit.verify_keys`, else the published
/// ones), updates `theta_audit_chain_ok`, and on a finding opens a P1 `audit_chain` incident.
/// Returns whether the chain verified (`None` when there is no trail file to verify).
pub async fn verify_trail(state: &AppState) -> Option<bool> {
    let path = state.settings().audit_log_path();
    if !path.exists() {
        return None;
    }
    // Committed events only: flush what is queued first.
    let st = state.clone();
    let _ = tokio::task::spawn_blocking(move || st.audit_sink().flush()).await;
    let keys = state.settings().audit.verify_keys.clone();
    let p = path.clone();
    let r = tokio::task::spawn_blocking(move || {
        let pinned = match keys {
            Some(k) => theta_engine::audit::AuditVerifyKeys::load(&k)?,
            None => theta_engine::audit::AuditVerifyKeys::default(),
        };
        theta_engine::audit::verify_log(&p, &pinned)
    })
    .await;
    let now = state.now();
    let (ok, events, detail) = match r {
        Ok(Ok(report)) => (report.is_ok(), report.events_checked, report.to_string()),
        Ok(Err(e)) => (false, 0, format!("verification failed: {e}")),
        Err(_) => return None,
    };
    state.metrics().audit_verified(ok, events, now);
    if ok {
        tracing::info!(target: "theta::audit", events, "audit chain verified");
    } else {
        tracing::error!(target: "theta::audit", finding = %detail, "audit chain does not verify");
        state.incidents().report(
            state,
            Detection::new(Category::AuditChain, Priority::P1, now, detail)
                .indicator(IndicatorKind::Resource, "audit-trail"),
        );
    }
    let mut e = AuditEvent::service(now, AuditAction::AuditVerify, "audit-verify");
    if !ok {
        e = e.outcome(
            Outcome::Failure,
            Some(crate::audit::Reason::IntegrityFailure),
        );
    }
    state.audit(e);
    Some(ok)
}
