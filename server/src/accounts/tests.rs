//! Unit tests of accounts (in-memory database).

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::db::Db;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn new(username: &str, role: Role, tenant: Option<&str>) -> NewAccount {
    NewAccount {
        username: username.into(),
        first_name: "Jeanne".into(),
        last_name: "Durand".into(),
        email: format!("{username}@hopital.example.fr"),
        role,
        tenant_id: tenant.map(str::to_owned),
        guest_expires_at: None,
    }
}

fn db() -> Db {
    let db = Db::open_in_memory().unwrap();
    db.call_blocking(|c| create_tenant(c, Some("chu-a"), "CHU A", None, now()).map(|_| ()))
        .unwrap();
    db.call_blocking(|c| create_tenant(c, Some("chu-b"), "CHU B", None, now()).map(|_| ()))
        .unwrap();
    db
}

#[test]
fn generic_names_are_refused_unless_excepted() {
    for g in [
        "admin",
        "Admin2",
        "test.user",
        "support-1",
        "root",
        "guest",
        "demo",
        "x_info",
    ] {
        assert!(is_generic(g), "{g}");
    }
    for ok in ["jdurand", "jeanne.durand", "m-ali", "Durand"] {
        assert!(!is_generic(ok), "{ok}");
    }
    let db = db();
    let policy = AccountSettings::default();
    let err = db
        .call_blocking(|c| validate_new(c, &new("support", Role::Auditor, None), &policy, now()))
        .unwrap_err();
    assert!(err.to_string().contains("generic"), "{err}");
    let mut generic_person = new("jdurand", Role::Auditor, None);
    generic_person.last_name = "Test".into();
    assert!(
        db.call_blocking(|c| validate_new(c, &generic_person, &policy, now()))
            .is_err()
    );
    // A short reason is refused; a written one allows the name.
    assert!(
        db.call_blocking(|c| add_name_exception(c, "support", "because", "adm", now()))
            .is_err()
    );
    db.call_blocking(|c| {
        add_name_exception(
            c,
            "support",
            "Shared night-desk mailbox required by CHU A contract §3",
            "adm",
            now(),
        )
    })
    .unwrap();
    db.call_blocking(|c| validate_new(c, &new("support", Role::Auditor, None), &policy, now()))
        .unwrap();
}

#[test]
fn nominative_and_tenant_rules() {
    let db = db();
    let p = AccountSettings::default();
    let check = |n: NewAccount| db.call_blocking(|c| validate_new(c, &n, &p, now()));
    assert!(check(new("jdurand", Role::Technician, Some("chu-a"))).is_ok());
    assert!(
        check(new("jdurand", Role::Technician, None)).is_err(),
        "tenant roles need a tenant"
    );
    assert!(
        check(new("jdurand", Role::Administrator, Some("chu-a"))).is_err(),
        "administrators have none"
    );
    assert!(check(new("jdurand", Role::Interpreter, Some("nowhere"))).is_err());
    assert!(
        check(new("J Durand", Role::Auditor, None)).is_err(),
        "bad username"
    );
    let mut n = new("jdurand", Role::Auditor, None);
    n.email = "not-an-email".into();
    assert!(check(n).is_err());
    let mut n = new("jdurand", Role::Auditor, None);
    n.first_name = "  ".into();
    assert!(check(n).is_err());
    let mut g = new("jdurand", Role::Interpreter, Some("chu-a"));
    g.guest_expires_at = Some(now() + Duration::days(400));
    assert!(check(g.clone()).is_err(), "guest longer than the policy");
    g.guest_expires_at = Some(now() + Duration::days(30));
    assert!(check(g).is_ok());
}

#[test]
fn duplicates_lapses_and_bootstrap_supersession() {
    let db = db();
    let p = AccountSettings::default();
    let t0 = now();
    let boot = db
        .call_blocking(|c| {
            insert(
                c,
                &new("pmartin", Role::Administrator, None),
                "h",
                None,
                true,
                t0,
            )
        })
        .unwrap();
    let err = db
        .call_blocking(|c| {
            insert(
                c,
                &new("pmartin", Role::Administrator, None),
                "h",
                None,
                false,
                t0,
            )
        })
        .unwrap_err();
    assert!(err.to_string().contains("username"), "{err}");

    let mut guest = new("lguest", Role::Interpreter, Some("chu-a"));
    guest.last_name = "Leroy".into();
    guest.guest_expires_at = Some(t0 + Duration::days(10));
    let guest = db
        .call_blocking(|c| insert(c, &guest, "h", None, false, t0))
        .unwrap();
    let tech = db
        .call_blocking(|c| {
            insert(
                c,
                &new("tlefevre", Role::Technician, Some("chu-a")),
                "h",
                None,
                false,
                t0,
            )
        })
        .unwrap();

    // Day 11: the guest lapses; day 91: the technician who never logged in is dormant.
    assert_eq!(
        lapse_reason(&guest, &p, t0 + Duration::days(11)),
        Some("expired")
    );
    assert_eq!(lapse_reason(&tech, &p, t0 + Duration::days(11)), None);
    let swept = db
        .call_blocking(|c| sweep(c, &p, t0 + Duration::days(91)))
        .unwrap();
    let reasons: BTreeSet<_> = swept.iter().map(|(id, r)| (id.clone(), *r)).collect();
    assert!(reasons.contains(&(guest.id.clone(), "expired")));
    assert!(reasons.contains(&(tech.id.clone(), "dormant")));
    // Re-enabling an expired guest needs a new expiry; re-enabling restarts the dormancy clock.
    let later = t0 + Duration::days(92);
    assert!(
        db.call_blocking(|c| enable(c, &guest.id, None, later))
            .is_err()
    );
    db.call_blocking(|c| enable(c, &tech.id, None, later))
        .unwrap();
    let tech = db.call_blocking(|c| get(c, &tech.id)).unwrap().unwrap();
    assert_eq!(tech.status, Status::Active);
    assert_eq!(lapse_reason(&tech, &p, later + Duration::days(1)), None);

    // A second administrator's first login disables the bootstrap account (which the sweep
    // had also found dormant: re-enable it first).
    db.call_blocking(|c| enable(c, &boot.id, None, later))
        .unwrap();
    let admin2 = db
        .call_blocking(|c| {
            insert(
                c,
                &new("cbernard", Role::Administrator, None),
                "h",
                None,
                false,
                later,
            )
        })
        .unwrap();
    let boot_now = db.call_blocking(|c| get(c, &boot.id)).unwrap().unwrap();
    assert_eq!(
        boot_now.status,
        Status::Active,
        "creation alone does not disable it"
    );
    let sup = db
        .call_blocking(|c| record_login(c, &admin2, later))
        .unwrap();
    assert_eq!(sup, vec![boot.id.clone()]);
    let boot_now = db.call_blocking(|c| get(c, &boot.id)).unwrap().unwrap();
    assert_eq!(boot_now.status, Status::Disabled);
    assert_eq!(
        boot_now.disabled_reason.as_deref(),
        Some("bootstrap_superseded")
    );
}

#[test]
fn grants_respect_roles_and_tenants() {
    let db = db();
    let t0 = now();
    let interp = db
        .call_blocking(|c| {
            insert(
                c,
                &new("adupuis", Role::Interpreter, Some("chu-a")),
                "h",
                None,
                false,
                t0,
            )
        })
        .unwrap();
    let tech = db
        .call_blocking(|c| {
            insert(
                c,
                &new("tlefevre", Role::Technician, Some("chu-a")),
                "h",
                None,
                false,
                t0,
            )
        })
        .unwrap();
    let rec = |t: &str| GrantScope::Recording {
        tenant_id: t.into(),
        recording_id: "rec-1".into(),
    };
    db.call_blocking(|c| add_grant(c, &interp.id, &rec("chu-a"), None, t0))
        .unwrap();
    assert!(
        db.call_blocking(|c| add_grant(c, &interp.id, &rec("chu-a"), None, t0))
            .is_err(),
        "duplicate"
    );
    let err = db
        .call_blocking(|c| add_grant(c, &interp.id, &rec("chu-b"), None, t0))
        .unwrap_err();
    assert!(err.to_string().contains("own tenant"), "{err}");
    assert!(
        db.call_blocking(|c| add_grant(c, &tech.id, &rec("chu-a"), None, t0))
            .is_err(),
        "technicians get tenants"
    );
    let tg = GrantScope::Tenant {
        tenant_id: "chu-b".into(),
    };
    db.call_blocking(|c| add_grant(c, &tech.id, &tg, None, t0))
        .unwrap();
    assert!(
        db.call_blocking(|c| add_grant(c, &interp.id, &tg, None, t0))
            .is_err()
    );
    let grants = db.call_blocking(|c| grants_of(c, &tech.id)).unwrap();
    assert_eq!(
        effective_tenants(&tech, &grants),
        ["chu-a".to_owned(), "chu-b".to_owned()].into()
    );

    let rows = db
        .call_blocking(|c| access_review(c, t0 + Duration::days(3)))
        .unwrap();
    let row = rows.iter().find(|r| r.username == "adupuis").unwrap();
    assert_eq!(row.grants, vec!["recording:chu-a/rec-1".to_owned()]);
    assert_eq!(row.password_age_days, Some(3));
    let csv = review_csv(&rows);
    assert!(csv.starts_with("account_id,username,"));
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.contains("tenant:chu-b"));
}

#[test]
fn password_history_keeps_the_last_five() {
    let db = db();
    let t0 = now();
    let a = db
        .call_blocking(|c| {
            insert(
                c,
                &new("jdurand", Role::Auditor, None),
                "h0",
                None,
                false,
                t0,
            )
        })
        .unwrap();
    for i in 1..=7 {
        db.call_blocking(|c| {
            set_password(c, &a.id, &format!("h{i}"), false, t0 + Duration::seconds(i))
        })
        .unwrap();
    }
    let h = db
        .call_blocking(|c| password_history(c, &a.id, 10))
        .unwrap();
    assert_eq!(h, vec!["h7", "h6", "h5", "h4", "h3"]);
    let a = db.call_blocking(|c| get(c, &a.id)).unwrap().unwrap();
    let p = AccountSettings::default();
    assert!(!password_change_due(&a, &p, t0 + Duration::days(300)));
    assert!(
        password_change_due(&a, &p, t0 + Duration::days(366)),
        "yearly renewal"
    );
}
