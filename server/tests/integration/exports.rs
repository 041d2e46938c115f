//! Research export jobs over a real served instance: a researcher starts a Parquet export of
//! their tenant, follows it to `done` and downloads the tar; other roles, other tenants and
//! other researchers are refused; start, download, cancel and restart are audited; a job left
//! running by a stopped service shows `interrupted` and a restart resumes it.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use theta_server::accounts::Role;
use theta_server::audit::{AuditAction, Outcome, Reason, ResourceKind};
use theta_server::{AppState, router};

use crate::support::*;

const A: &str = "chu-a";
const B: &str = "chu-b";

/// Longest wait for a job to end (debug build, shared machine).
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

async fn start(app: &TestApp, s: &Session, tenant: &str, body: Value) -> (StatusCode, Value) {
    let (st, _, v) = app
        .send(req(
            Method::POST,
            &format!("/api/tenants/{tenant}/exports"),
            Some(&s.token),
            Some(body),
        ))
        .await;
    (st, v)
}

/// Polls the job until it leaves queued/running.
async fn wait_end(app: &TestApp, s: &Session, tenant: &str, id: &str) -> Value {
    let path = format!("/api/tenants/{tenant}/exports/{id}");
    let deadline = tokio::time::Instant::now() + JOB_TIMEOUT;
    loop {
        let (st, _, v) = app
            .send(req(Method::GET, &path, Some(&s.token), None))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        if !matches!(v["state"].as_str(), Some("queued" | "running")) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job still {} after {JOB_TIMEOUT:?}",
            v["state"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Entry names of a tar.
fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(std::io::Cursor::new(bytes));
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn events(app: &TestApp, action: AuditAction) -> Vec<theta_server::AuditEvent> {
    app.audit
        .events()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

struct World {
    app: TestApp,
    researcher: User,
    rs: Session,
    colleague: Session,
    other_tenant: Session,
    interpreter: Session,
}

async fn world() -> World {
    let app = TestApp::new().with_data().await;
    app.add_tenant(A);
    app.add_tenant(B);
    app.ingest_synth(A, 4.0, 11).await;
    app.ingest_synth(A, 4.0, 12).await;
    app.ingest_synth(B, 4.0, 13).await;
    let app = app.serve_tls().await;
    let researcher = app.add_user("rchercheuse", Role::Researcher, Some(A));
    let colleague = app.add_user("rcollegue", Role::Researcher, Some(A));
    let other = app.add_user("rautre", Role::Researcher, Some(B));
    let interp = app.add_user("ilecteur", Role::Interpreter, Some(A));
    let rs = app.login(&researcher).await;
    let colleague = app.login(&colleague).await;
    let other_tenant = app.login(&other).await;
    let interpreter = app.login(&interp).await;
    World {
        app,
        researcher,
        rs,
        colleague,
        other_tenant,
        interpreter,
    }
}

#[tokio::test]
async fn a_researcher_exports_a_cohort_follows_it_and_downloads_the_tar() {
    let w = world().await;
    let app = &w.app;
    let body = json!({"cohort": "duration_s > 0", "format": "parquet", "project": "etude-2026",
                      "authors": ["Claire Dubois"]});

    // Clear refusals of bad input, naming the field.
    for (bad, field) in [
        (
            json!({"cohort": "true", "format": "parquet", "project": "a b"}),
            "project",
        ),
        (
            json!({"cohort": " ", "format": "parquet", "project": "p"}),
            "cohort",
        ),
        (
            json!({"cohort": "x".repeat(5000), "format": "parquet", "project": "p"}),
            "cohort",
        ),
        (
            json!({"cohort": "true", "format": "parquet", "project": "p", "task": "rest state"}),
            "task",
        ),
        (
            json!({"cohort": "true", "format": "parquet", "project": "p", "authors": [" "]}),
            "authors",
        ),
    ] {
        let (s, v) = start(app, &w.rs, A, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], field, "{v}");
    }
    let (s, v) = start(
        app,
        &w.rs,
        A,
        json!({"cohort": "true", "format": "csv", "project": "p"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["message"].as_str().unwrap().contains("parquet"), "{v}");

    // Other roles and other tenants' researchers may not start one here.
    for who in [&w.interpreter, &w.other_tenant] {
        let (s, v) = start(app, who, A, body.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }

    // Start, follow to the end.
    let (s, job) = start(app, &w.rs, A, body.clone()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(matches!(job["state"].as_str(), Some("queued")), "{job}");
    assert_eq!(job["requester"], w.researcher.id.as_str());
    assert_eq!(job["tenant"], A);
    let end = wait_end(app, &w.rs, A, &id).await;
    assert_eq!(
        end["authors"],
        json!(["Claire Dubois"]),
        "kept with the job: {end}"
    );
    let dl = format!("/api/tenants/{A}/exports/{id}/download");
    // The output folder is private to the service.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = app.dir.path().join("exports").join(&id);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    // The list: the researcher sees their job, a colleague of the same tenant sees none.
    let list = format!("/api/tenants/{A}/exports");
    let (s, _, mine) = app
        .send(req(Method::GET, &list, Some(&w.rs.token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["id"], id.as_str());
    let (s, _, theirs) = app
        .send(req(Method::GET, &list, Some(&w.colleague.token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(theirs, json!([]));

    // Nobody but the requester sees, downloads, cancels or restarts it.
    let show = format!("/api/tenants/{A}/exports/{id}");
    for (m, p) in [
        (Method::GET, show.clone()),
        (Method::GET, dl.clone()),
        (Method::DELETE, show.clone()),
        (Method::POST, format!("{show}/restart")),
    ] {
        let (s, _, v) = app
            .send(req(m.clone(), &p, Some(&w.colleague.token), None))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p} {v}");
        // Through another tenant's researcher (who may not even name tenant A).
        let (s, _, _) = app
            .send(req(m.clone(), &p, Some(&w.other_tenant.token), None))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p}");
        let (s, _, _) = app
            .send(req(m.clone(), &p, Some(&w.interpreter.token), None))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p}");
    }
    // The job id under the other tenant's path is not found for its researcher.
    let (s, _, _) = app
        .send(req(
            Method::GET,
            &format!("/api/tenants/{B}/exports/{id}"),
            Some(&w.other_tenant.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let starts = events(app, AuditAction::ExportStart);
    assert!(
        starts.iter().any(|e| e.outcome == Outcome::Success
            && e.resource == Some((ResourceKind::Export, id.clone()))
            && e.tenant_id.as_deref() == Some(A)),
        "{starts:?}"
    );
    assert_eq!(end["state"], "done", "{end}");
    assert_eq!(end["report"]["recordings"], 2, "{end}");
    assert_eq!(end["progress"]["recordings_done"], 2, "{end}");
    assert_eq!(end["attempts"], 1);
    assert_eq!(end["download"], dl.as_str());

    // A finished job neither cancels nor restarts.
    let (s, _, v) = app
        .send(req(Method::DELETE, &show, Some(&w.rs.token), None))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _, v) = app
        .send(req(
            Method::POST,
            &format!("{show}/restart"),
            Some(&w.rs.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // The download: a streamed tar holding the Parquet dataset.
    let (s, h, bytes) = app
        .send_raw(req(Method::GET, &dl, Some(&w.rs.token), None))
        .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(h["content-type"], "application/x-tar");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"etude-2026-{id}.tar\"").as_str()
    );
    let names = tar_names(&bytes);
    let prefix = format!("etude-2026-{id}/");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(&prefix) || *n == prefix[..prefix.len() - 1]),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("recordings.parquet")),
        "{names:?}"
    );

    // Audited: the start and the download (ids only), the refusals with their reason.
    let starts = events(app, AuditAction::ExportStart);
    let ok: Vec<_> = starts
        .iter()
        .filter(|e| e.outcome == Outcome::Success)
        .collect();
    assert_eq!(ok.len(), 1, "{starts:?}");
    assert_eq!(ok[0].resource, Some((ResourceKind::Export, id.clone())));
    assert_eq!(ok[0].tenant_id.as_deref(), Some(A));
    assert_eq!(ok[0].actor.account_id(), Some(w.researcher.id.as_str()));
    assert!(
        starts
            .iter()
            .any(|e| e.outcome == Outcome::Failure && e.reason == Some(Reason::InvalidRequest)),
        "{starts:?}"
    );
    let downloads = events(app, AuditAction::ExportDownload);
    assert!(
        downloads.iter().any(|e| e.outcome == Outcome::Success
            && e.resource == Some((ResourceKind::Export, id.clone()))
            && e.actor.account_id() == Some(w.researcher.id.as_str())),
        "{downloads:?}"
    );
    let denied = events(app, AuditAction::AccessDenied);
    assert!(
        denied.iter().any(|e| e.reason == Some(Reason::NoGrant)
            && e.resource == Some((ResourceKind::Export, id.clone()))),
        "{denied:?}"
    );
    assert!(
        denied
            .iter()
            .any(|e| e.reason == Some(Reason::TenantMismatch)),
        "{denied:?}"
    );
    assert!(
        events(app, AuditAction::ExportRead)
            .iter()
            .any(|e| e.actor.account_id() == Some(w.researcher.id.as_str())),
    );
    assert!(
        events(app, AuditAction::ExportCancel)
            .iter()
            .any(|e| e.outcome == Outcome::Failure && e.reason == Some(Reason::Conflict)),
    );

    // Retention: the output is kept 30 days (the default) after the job ended, then deleted by
    // the service's sweep and audited; the job's record stays, and its download is gone.
    let dir = app.dir.path().join("exports").join(&id);
    app.clock.advance(chrono::Duration::days(29));
    theta_server::serve::purge_exports(&app.state).await;
    assert!(dir.is_dir(), "kept within the retention period");
    assert!(events(app, AuditAction::ExportPurge).is_empty());
    app.clock.advance(chrono::Duration::days(2));
    theta_server::serve::purge_exports(&app.state).await;
    assert!(!dir.exists(), "deleted after it");
    let purges = events(app, AuditAction::ExportPurge);
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(purges[0].resource, Some((ResourceKind::Export, id.clone())));
    assert_eq!(purges[0].tenant_id.as_deref(), Some(A));
    let rs = app.login(&w.researcher).await;
    let (s, _, v) = app.send(req(Method::GET, &dl, Some(&rs.token), None)).await;
    assert_eq!(s, StatusCode::GONE, "{v}");
    assert!(v["message"].as_str().unwrap().contains("retention"), "{v}");
    let (s, _, job) = app
        .send(req(
            Method::GET,
            &format!("/api/tenants/{A}/exports/{id}"),
            Some(&rs.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{job}");
    assert!(job["purged_at"].is_string(), "{job}");
    assert_eq!(job["state"], "done", "{job}");
    theta_server::serve::purge_exports(&app.state).await;
    assert_eq!(
        events(app, AuditAction::ExportPurge).len(),
        1,
        "purged once"
    );
}

#[tokio::test]
async fn a_job_running_at_shutdown_is_interrupted_and_a_restart_resumes_it() {
    let w = world().await;
    let (s, job) = start(
        &w.app,
        &w.rs,
        A,
        json!({"cohort": "true", "format": "parquet", "project": "reprise", "dates": "remove"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let end = wait_end(&w.app, &w.rs, A, &id).await;
    assert_eq!(end["state"], "done", "{end}");

    // The service stops while the job is still marked running (its files written, its end
    // not recorded): what a crash or a stop mid-export leaves behind.
    let World { app, rs, .. } = w;
    let db = app.state.db().clone();
    let iid = id.clone();
    db.call_blocking(|c| {
        c.execute(
            "UPDATE export_jobs SET state = 'running', finished_at = NULL WHERE id = ?1",
            [iid],
        )
    })
    .unwrap();
    let settings = app.state.settings().clone();
    let data = app.state.data().cloned().unwrap();
    let state = AppState::new(settings, db)
        .unwrap()
        .with_clock(Arc::new(app.clock.clone()))
        .with_audit(Arc::clone(&app.audit) as _)
        .with_data(data);
    // The old instance stays up (its data folder is the new one's): only the new state's
    // registry, opened over the same database, answers from here on.
    let old = app;
    let app = TestApp {
        state: state.clone(),
        router: router(state),
        tls: None,
        clock: old.clock.clone(),
        audit: Arc::clone(&old.audit),
        dir: tempfile::tempdir().unwrap(),
    };
    let app = app.serve_tls().await;

    let show = format!("/api/tenants/{A}/exports/{id}");
    let (s, _, v) = app
        .send(req(Method::GET, &show, Some(&rs.token), None))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "interrupted", "{v}");
    assert_eq!(v["download"], Value::Null);
    let (s, _, v) = app
        .send_raw(req(
            Method::GET,
            &format!("{show}/download"),
            Some(&rs.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{}", String::from_utf8_lossy(&v));

    let (s, _, v) = app
        .send(req(
            Method::POST,
            &format!("{show}/restart"),
            Some(&rs.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["state"], "queued", "{v}");
    let end = wait_end(&app, &rs, A, &id).await;
    assert_eq!(end["attempts"], 2, "{end}");
    assert!(
        events(&app, AuditAction::ExportRestart)
            .iter()
            .any(|e| e.outcome == Outcome::Success
                && e.resource == Some((ResourceKind::Export, id.clone()))),
    );
    assert_eq!(end["state"], "done", "{end}");
    // Resumed: every recording was complete from the first run and not rewritten.
    assert_eq!(end["report"]["recordings"], 2, "{end}");
    assert_eq!(end["report"]["resumed"], 2, "{end}");
    drop(old);
}
