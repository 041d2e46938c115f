//! The authorisation matrix: every endpoint × every role, and every recording/tenant action ×
//! every role × own tenant / other tenant / assigned / not assigned. Table-driven: the data
//! endpoints of phase 2 add rows to `ENDPOINTS` (with their scopes) and the decision table.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use theta_server::accounts::{self, GrantScope, Role};
use theta_server::authz::{Action, Principal, Resource, authorize};

use crate::support::*;

/// Where a request points, relative to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The endpoint has no tenant/recording in it.
    Unscoped,
    /// The caller's tenant.
    OwnTenant,
    /// Another tenant.
    OtherTenant,
    /// A recording of the caller's tenant assigned to the interpreter.
    Assigned,
    /// A recording of the caller's tenant not assigned to the interpreter.
    NotAssigned,
}

const OWN: &str = "chu-a";
const OTHER: &str = "chu-b";
const REC_ASSIGNED: &str = "rec-assigned";
const REC_UNASSIGNED: &str = "rec-unassigned";
const REC_OTHER: &str = "rec-other";

/// Roles in table column order.
const ROLES: [Role; 5] = [
    Role::Administrator,
    Role::Technician,
    Role::Interpreter,
    Role::Researcher,
    Role::Auditor,
];

struct Endpoint {
    method: Method,
    /// Placeholders: {target} (an account to administer), {tech} (a technician to grant to),
    /// {u} (unique suffix), {tenant}, {recording}.
    path: &'static str,
    body: Option<&'static str>,
    scopes: &'static [Scope],
    /// Status when authorised (401 where the handler then checks a credential on purpose).
    ok: StatusCode,
    /// Allowed? One string per role (`ROLES` order), one letter (Y/N) per entry of `scopes`.
    allowed: [&'static str; 5],
}

const NS: &[Scope] = &[Scope::Unscoped];

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::GET,
        path: "/api/me",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "Y", "Y", "Y", "Y"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/tenants",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "Y", "Y", "Y", "Y"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/auth/password",
        body: Some(r#"{"current_password":"not-mine","new_password":"Whatever#2026x"}"#),
        scopes: NS,
        ok: StatusCode::UNAUTHORIZED,
        allowed: ["Y", "Y", "Y", "Y", "Y"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/accounts",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/accounts",
        body: Some(
            r#"{"username":"nouveau{u}","first_name":"Nina","last_name":"Nouveau","email":"nina{u}@chu.example.fr","role":"auditor"}"#,
        ),
        scopes: NS,
        ok: StatusCode::CREATED,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/accounts/{target}",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::PATCH,
        path: "/api/accounts/{target}",
        body: Some(r#"{"status":"active"}"#),
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/accounts/{target}/reset-credentials",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/accounts/{target}/grants",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/accounts/{tech}/grants",
        body: Some(r#"{"kind":"tenant","tenant_id":"chu-b"}"#),
        scopes: NS,
        ok: StatusCode::CREATED,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/grants/no-such-grant",
        body: None,
        scopes: NS,
        ok: StatusCode::NOT_FOUND,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/name-exceptions",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/name-exceptions",
        body: Some(
            r#"{"username":"accueil{u}","reason":"Reception desk shared terminal, documented in ticket 42"}"#,
        ),
        scopes: NS,
        ok: StatusCode::CREATED,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/tenants",
        body: Some(r#"{"name":"Clinique {u}"}"#),
        scopes: NS,
        ok: StatusCode::CREATED,
        allowed: ["Y", "N", "N", "N", "N"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/access-review",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "Y"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/access-review?format=csv",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["Y", "N", "N", "N", "Y"],
    },
    // Data endpoints: real recordings in the store (see `fixture`).
    Endpoint {
        method: Method::GET,
        path: "/api/recordings",
        body: None,
        scopes: NS,
        ok: StatusCode::OK,
        allowed: ["N", "Y", "Y", "N", "N"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/recordings?tenant={tenant}",
        body: None,
        scopes: TEN,
        ok: StatusCode::OK,
        allowed: ["NN", "YN", "YN", "NN", "NN"],
    },
    Endpoint {
        // A JSON body is not an EDF file: authorised callers get 400, nothing is stored.
        method: Method::POST,
        path: "/api/tenants/{tenant}/recordings",
        body: Some(r#"{"not":"edf"}"#),
        scopes: TEN,
        ok: StatusCode::BAD_REQUEST,
        allowed: ["NN", "YN", "NN", "NN", "NN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/recordings/{recording}",
        body: None,
        scopes: REC,
        ok: StatusCode::OK,
        allowed: ["NNN", "YYN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/recordings/{recording}/window?start=1&duration=2&channels=0,1",
        body: None,
        scopes: REC,
        ok: StatusCode::OK,
        allowed: ["NNN", "YYN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/recordings/{recording}/overview?width=50",
        body: None,
        scopes: REC,
        ok: StatusCode::OK,
        allowed: ["NNN", "YYN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/recordings/{recording}/annotations",
        body: None,
        scopes: REC,
        ok: StatusCode::OK,
        allowed: ["NNN", "YYN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/recordings/{recording}/annotations/history",
        body: None,
        scopes: REC,
        ok: StatusCode::OK,
        allowed: ["NNN", "YYN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/recordings/{recording}/annotations",
        body: Some(r#"{"onset":1.5,"duration":2.0,"text":"spike {u}"}"#),
        scopes: REC,
        ok: StatusCode::CREATED,
        allowed: ["NNN", "NNN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        // Annotation 999 does not exist: authorised callers get 404.
        method: Method::PATCH,
        path: "/api/recordings/{recording}/annotations/999",
        body: Some(r#"{"onset":1.0,"text":"edited"}"#),
        scopes: REC,
        ok: StatusCode::NOT_FOUND,
        allowed: ["NNN", "NNN", "YNN", "NNN", "NNN"],
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/recordings/{recording}/annotations/999",
        body: None,
        scopes: REC,
        ok: StatusCode::NOT_FOUND,
        allowed: ["NNN", "NNN", "YNN", "NNN", "NNN"],
    },
    // Research exports: researchers of the tenant only. The job ids do not exist (authorised
    // callers get 404); the start really queues an export of the tenant's recordings.
    Endpoint {
        method: Method::POST,
        path: "/api/tenants/{tenant}/exports",
        body: Some(r#"{"cohort":"duration_s > 0","format":"parquet","project":"matrix{u}"}"#),
        scopes: TEN,
        ok: StatusCode::ACCEPTED,
        allowed: ["NN", "NN", "NN", "YN", "NN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/tenants/{tenant}/exports",
        body: None,
        scopes: TEN,
        ok: StatusCode::OK,
        allowed: ["NN", "NN", "NN", "YN", "NN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/tenants/{tenant}/exports/no-such-job",
        body: None,
        scopes: TEN,
        ok: StatusCode::NOT_FOUND,
        allowed: ["NN", "NN", "NN", "YN", "NN"],
    },
    Endpoint {
        method: Method::DELETE,
        path: "/api/tenants/{tenant}/exports/no-such-job",
        body: None,
        scopes: TEN,
        ok: StatusCode::NOT_FOUND,
        allowed: ["NN", "NN", "NN", "YN", "NN"],
    },
    Endpoint {
        method: Method::POST,
        path: "/api/tenants/{tenant}/exports/no-such-job/restart",
        body: None,
        scopes: TEN,
        ok: StatusCode::NOT_FOUND,
        allowed: ["NN", "NN", "NN", "YN", "NN"],
    },
    Endpoint {
        method: Method::GET,
        path: "/api/tenants/{tenant}/exports/no-such-job/download",
        body: None,
        scopes: TEN,
        ok: StatusCode::NOT_FOUND,
        allowed: ["NN", "NN", "NN", "YN", "NN"],
    },
];

const TEN: &[Scope] = &[Scope::OwnTenant, Scope::OtherTenant];
const REC: &[Scope] = &[Scope::Assigned, Scope::NotAssigned, Scope::OtherTenant];

struct Fixture {
    users: Vec<(Role, User)>,
    target: String,
    tech: String,
    /// Store ids of the assigned, unassigned and other-tenant recordings.
    recordings: [String; 3],
}

async fn fixture(app: &TestApp) -> Fixture {
    app.add_tenant(OWN);
    app.add_tenant(OTHER);
    let recordings = [
        app.ingest_synth(OWN, 8.0, 1).await,
        app.ingest_synth(OWN, 8.0, 2).await,
        app.ingest_synth(OTHER, 8.0, 3).await,
    ];
    let users: Vec<(Role, User)> = ROLES
        .iter()
        .map(|&r| {
            let tenant = r.needs_tenant().then_some(OWN);
            (
                r,
                app.add_user(&format!("{}.matrix", r.as_str()), r, tenant),
            )
        })
        .collect();
    let interp = &users
        .iter()
        .find(|(r, _)| *r == Role::Interpreter)
        .unwrap()
        .1;
    let (id, now) = (interp.id.clone(), app.clock_now());
    let assigned = recordings[0].clone();
    app.db()
        .call_blocking(|c| {
            accounts::add_grant(
                c,
                &id,
                &GrantScope::Recording {
                    tenant_id: OWN.into(),
                    recording_id: assigned,
                },
                None,
                now,
            )
        })
        .unwrap();
    let target = app.add_user("cible.matrix", Role::Auditor, None).id;
    let tech = app.add_user("tech2.matrix", Role::Technician, Some(OWN)).id;
    Fixture {
        users,
        target,
        tech,
        recordings,
    }
}

fn fill(t: &str, f: &Fixture, u: usize, scope: Scope) -> String {
    let (tenant, recording) = match scope {
        Scope::OtherTenant => (OTHER, &f.recordings[2]),
        Scope::Assigned => (OWN, &f.recordings[0]),
        Scope::NotAssigned | Scope::OwnTenant | Scope::Unscoped => (OWN, &f.recordings[1]),
    };
    t.replace("{target}", &f.target)
        .replace("{tech}", &f.tech)
        .replace("{u}", &u.to_string())
        .replace("{tenant}", tenant)
        .replace("{recording}", recording)
}

/// Walks the endpoint table with every role; returns the number of checks.
async fn walk_endpoints(app: &TestApp) -> usize {
    let f = fixture(app).await;
    let mut sessions = Vec::new();
    for (role, user) in &f.users {
        sessions.push((*role, app.login(user).await));
    }
    let mut n = 0;
    let mut failures = Vec::new();
    for (row, e) in ENDPOINTS.iter().enumerate() {
        assert!(
            e.allowed.iter().all(|a| a.len() == e.scopes.len()),
            "row {row}: one letter per scope"
        );
        for (i, (role, s)) in sessions.iter().enumerate() {
            for (si, &scope) in e.scopes.iter().enumerate() {
                n += 1;
                let path = fill(e.path, &f, n, scope);
                let body: Option<Value> = e
                    .body
                    .map(|b| serde_json::from_str(&fill(b, &f, n, scope)).unwrap());
                let (status, _, v) = app
                    .send(req(e.method.clone(), &path, Some(&s.token), body))
                    .await;
                let allowed = e.allowed[i].as_bytes()[si] == b'Y';
                let ok = if allowed {
                    status == e.ok
                } else {
                    status == StatusCode::FORBIDDEN && v["error"] == "forbidden"
                };
                if !ok {
                    failures.push(format!(
                        "{} {path} as {role} ({scope:?}): got {status} {v}, expected {}",
                        e.method,
                        if allowed {
                            e.ok.to_string()
                        } else {
                            "403".into()
                        }
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} matrix failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Non-administrators see their own tenant only.
    for (role, s) in &sessions {
        let (_, _, v) = app
            .send(req(Method::GET, "/api/tenants", Some(&s.token), None))
            .await;
        let ids: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        match role {
            Role::Administrator => assert!(ids.contains(&OWN) && ids.contains(&OTHER), "{ids:?}"),
            Role::Auditor => assert!(ids.is_empty(), "{ids:?}"),
            _ => assert_eq!(ids, vec![OWN], "{role}"),
        }
    }
    n
}

#[tokio::test]
async fn endpoint_matrix_in_process() {
    let app = TestApp::new().with_data().await;
    let n = walk_endpoints(&app).await;
    assert_eq!(
        n,
        ENDPOINTS.iter().map(|e| e.scopes.len()).sum::<usize>() * ROLES.len()
    );
    // Every denial was audited with its reason.
    let denials = app
        .audit
        .events()
        .into_iter()
        .filter(|e| e.outcome == theta_server::audit::Outcome::Denied)
        .count();
    let expected = ENDPOINTS
        .iter()
        .map(|e| {
            e.allowed
                .iter()
                .flat_map(|a| a.bytes())
                .filter(|&b| b == b'N')
                .count()
        })
        .sum::<usize>();
    assert!(denials >= expected, "{denials} < {expected}");
}

#[tokio::test]
async fn endpoint_matrix_over_tls() {
    let app = TestApp::new().with_data().await.serve_tls().await;
    walk_endpoints(&app).await;
}

/// The decision table for tenant and recording actions. Columns: scopes in the order given by
/// the row; one letter per scope, one string per role (ROLES order).
#[test]
fn decision_matrix_for_tenants_and_recordings() {
    use Scope::*;
    let tenant_scopes = [OwnTenant, OtherTenant];
    let rec_scopes = [Assigned, NotAssigned, OtherTenant];
    #[rustfmt::skip]
    let table: &[(Action, &[Scope], [&str; 5])] = &[
        //                                              admin  tech  interp research auditor
        (Action::ListRecordings,      &tenant_scopes, ["NN", "YN", "YN", "NN", "NN"]),
        (Action::IngestRecording,     &tenant_scopes, ["NN", "YN", "NN", "NN", "NN"]),
        (Action::ExportPseudonymised, &tenant_scopes, ["NN", "NN", "NN", "YN", "NN"]),
        (Action::ReadTenants,         &tenant_scopes, ["YY", "YN", "YN", "YN", "NN"]),
        (Action::ReadRecording,       &rec_scopes,    ["NNN", "YYN", "YNN", "NNN", "NNN"]),
        (Action::Annotate,            &rec_scopes,    ["NNN", "NNN", "YNN", "NNN", "NNN"]),
        (Action::ReadAudit,           &[Unscoped],     ["N", "N", "N", "N", "Y"]),
        (Action::ReadAccessReview,    &[Unscoped],     ["Y", "N", "N", "N", "Y"]),
        (Action::ManageAccounts,      &[Unscoped],     ["Y", "N", "N", "N", "N"]),
        (Action::ManageGrants,        &[Unscoped],     ["Y", "N", "N", "N", "N"]),
        (Action::ManageTenants,       &[Unscoped],     ["Y", "N", "N", "N", "N"]),
    ];
    let mut checked = 0;
    for (action, scopes, expected) in table {
        for (ri, role) in ROLES.iter().enumerate() {
            let p = principal(*role);
            for (si, scope) in scopes.iter().enumerate() {
                let res = match scope {
                    Unscoped => Resource::System,
                    OwnTenant => Resource::Tenant {
                        tenant_id: OWN.into(),
                    },
                    OtherTenant if scopes.len() == 2 => Resource::Tenant {
                        tenant_id: OTHER.into(),
                    },
                    OtherTenant => Resource::Recording {
                        tenant_id: OTHER.into(),
                        recording_id: REC_OTHER.into(),
                    },
                    Assigned => Resource::Recording {
                        tenant_id: OWN.into(),
                        recording_id: REC_ASSIGNED.into(),
                    },
                    NotAssigned => Resource::Recording {
                        tenant_id: OWN.into(),
                        recording_id: REC_UNASSIGNED.into(),
                    },
                };
                let want = expected[ri].as_bytes()[si] == b'Y';
                let got = authorize(&p, *action, &res);
                assert_eq!(
                    got.is_ok(),
                    want,
                    "{action:?} as {role} on {res:?}: {got:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5 * (4 * 2 + 2 * 3 + 5));
}

fn principal(role: Role) -> Principal {
    let tenant = role.needs_tenant().then(|| OWN.to_owned());
    Principal {
        account_id: format!("{role}-id"),
        username: format!("{role}.user"),
        role,
        tenants: tenant.iter().cloned().collect(),
        tenant_id: tenant,
        recordings: if role == Role::Interpreter {
            [(OWN.to_owned(), REC_ASSIGNED.to_owned())].into()
        } else {
            Default::default()
        },
    }
}

#[test]
fn no_grant_crosses_tenants() {
    // Even a grant row naming another tenant's recording (forged in the database) opens nothing.
    let mut p = principal(Role::Interpreter);
    p.recordings.insert((OTHER.into(), REC_OTHER.into()));
    let res = Resource::Recording {
        tenant_id: OTHER.into(),
        recording_id: REC_OTHER.into(),
    };
    assert_eq!(
        authorize(&p, Action::ReadRecording, &res)
            .unwrap_err()
            .reason,
        "other tenant"
    );
    // The same recording id in the caller's own tenant is another recording: not assigned.
    let same_id = Resource::Recording {
        tenant_id: OWN.into(),
        recording_id: REC_OTHER.into(),
    };
    assert!(authorize(&p, Action::ReadRecording, &same_id).is_err());
    // A technician's tenant grant extends their reach to that tenant only.
    let mut t = principal(Role::Technician);
    t.tenants.insert(OTHER.into());
    assert!(authorize(&t, Action::ReadRecording, &res).is_ok());
    assert!(
        authorize(
            &t,
            Action::ReadRecording,
            &Resource::Recording {
                tenant_id: "chu-c".into(),
                recording_id: "r".into()
            }
        )
        .is_err()
    );
    // Own-account actions only on one's own account.
    let me = Resource::Account {
        account_id: p.account_id.clone(),
    };
    let other = Resource::Account {
        account_id: "someone".into(),
    };
    assert!(authorize(&p, Action::ManageOwnCredentials, &me).is_ok());
    assert!(authorize(&p, Action::ManageOwnCredentials, &other).is_err());
    let _ = json!(null);
}
