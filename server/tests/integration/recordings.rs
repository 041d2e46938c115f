//! Data endpoints on a real store: upload of a real EDF file, window equal to the CLI's, Arrow
//! IPC, overview, annotations with history, refusals, and the demo command.

use std::process::Command;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use theta_server::accounts::{self, GrantScope, Role};

use crate::support::*;

fn upload_req(tenant: &str, token: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/api/tenants/{tenant}/recordings"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(body))
        .unwrap()
}

fn theta(args: &[&str]) -> String {
    crate::support::ok(&crate::support::theta(args))
}

fn grant(app: &TestApp, user: &User, tenant: &str, recording: &str) {
    let (id, now) = (user.id.clone(), app.clock_now());
    let scope = GrantScope::Recording {
        tenant_id: tenant.into(),
        recording_id: recording.into(),
    };
    app.db()
        .call_blocking(|c| accounts::add_grant(c, &id, &scope, None, now))
        .unwrap();
}

/// A technician of tenant `chu-a` signed in, and the real `test_utf8.edf` (one channel at
/// 128 Hz, 698 s) uploaded by them: their session and the recording's id.
async fn technician_with_test_utf8(app: &TestApp) -> (Session, String) {
    app.add_tenant("chu-a");
    let tech = app.add_user("ltechnicienne", Role::Technician, Some("chu-a"));
    let ts = app.login(&tech).await;
    let real = std::fs::read(theta_fixtures::shared_eeg_dir().join("test_utf8.edf")).unwrap();
    let (s, _, v) = app.send(upload_req("chu-a", &ts.token, real)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["recording_id"].as_str().unwrap().to_owned();
    (ts, id)
}

#[tokio::test]
async fn upload_read_annotate_round_trip() {
    let app = TestApp::new().with_data().await;
    app.add_tenant("chu-a");
    let tech = app.add_user("ltechnicienne", Role::Technician, Some("chu-a"));
    let interp = app.add_user("mlecteur", Role::Interpreter, Some("chu-a"));
    let ts = app.login(&tech).await;
    let is = app.login(&interp).await;

    // Upload a real TUH recording, streamed into the store.
    let file = theta_fixtures::shared_eeg_dir().join("00009578_s006_t001.edf");
    let bytes = std::fs::read(&file).unwrap();
    let (s, _, v) = app
        .send(upload_req("chu-a", &ts.token, bytes.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["recording_id"].as_str().unwrap().to_owned();
    assert_eq!(v["raw_bytes"], bytes.len());
    assert!(v["signals"].as_u64().unwrap() > 20);
    // The spool file is gone.
    let spool = app.dir.path().join("uploads");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);

    // Not assigned yet: the interpreter neither sees nor reads it.
    let (s, _, v) = app
        .send(req(Method::GET, "/api/recordings", Some(&is.token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 0, "{v}");
    let win = format!("/api/recordings/{id}/window?start=2&duration=3&units=physical");
    let (s, _, _) = app
        .send(req(Method::GET, &win, Some(&is.token), None))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    grant(&app, &interp, "chu-a", &id);
    let (_, _, v) = app
        .send(req(Method::GET, "/api/recordings", Some(&is.token), None))
        .await;
    assert_eq!(v[0]["id"], id.as_str(), "{v}");
    let (s, _, meta) = app
        .send(req(
            Method::GET,
            &format!("/api/recordings/{id}"),
            Some(&is.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(meta["signals"][0]["label"], "EEG FP1-REF");

    // The window equals the command line's on the same store.
    let (s, _, api) = app
        .send(req(Method::GET, &win, Some(&is.token), None))
        .await;
    assert_eq!(s, StatusCode::OK, "{api}");
    let store = app.dir.path().join("store");
    let keys = app.dir.path().join("store.keys");
    let cli: Value = serde_json::from_str(&theta(&[
        "window",
        "--store",
        store.to_str().unwrap(),
        "--keyring",
        keys.to_str().unwrap(),
        "--recording",
        &id,
        "--start",
        "2",
        "--duration",
        "3",
        "--units",
        "physical",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(api, cli);

    // Arrow IPC: time + one column per channel, the same values as the JSON.
    let arrow_req = Request::builder()
        .uri(format!("{win}&channels=EEG%20FP1-REF,EEG%20CZ-REF"))
        .header(header::AUTHORIZATION, format!("Bearer {}", is.token))
        .header(header::ACCEPT, "application/vnd.apache.arrow.stream")
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.router.clone(), arrow_req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body.to_vec()), None)
            .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let b = &batches[0];
    assert_eq!(b.num_columns(), 3);
    assert_eq!(b.schema().field(1).name(), "EEG FP1-REF");
    let fp1 = b
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    let json_fp1 = api["blocks"][0]["data"][0].as_array().unwrap();
    assert_eq!(fp1.len(), json_fp1.len());
    // serde_json parses decimals to within one ulp; the Arrow column is the stored value.
    for (a, j) in fp1.values().iter().zip(json_fp1) {
        let j = j.as_f64().unwrap();
        assert!((a - j).abs() <= 1e-12 * a.abs().max(1.0), "{a} vs {j}");
    }

    // Overview of the whole recording at 200 px.
    let (s, _, ov) = app
        .send(req(
            Method::GET,
            &format!("/api/recordings/{id}/overview?width=200&channels=0,1"),
            Some(&is.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{ov}");
    assert_eq!(ov["channels"].as_array().unwrap().len(), 2);
    assert_eq!(ov["channels"][0]["min"].as_array().unwrap().len(), 200);

    // Annotations: add, edit, delete; the history keeps every version with its author.
    let ann = format!("/api/recordings/{id}/annotations");
    let (s, _, a) = app
        .send(req(
            Method::POST,
            &ann,
            Some(&is.token),
            Some(json!({"onset": 12.5, "duration": 2.0, "text": "pointes-ondes"})),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["created_by"], "mlecteur");
    let aid = a["id"].as_u64().unwrap();
    let (s, _, e) = app
        .send(req(
            Method::PATCH,
            &format!("{ann}/{aid}"),
            Some(&is.token),
            Some(json!({"onset": 12.0, "duration": 3.0, "text": "pointes-ondes 3 Hz"})),
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["version"], 2);
    let (s, _, list) = app
        .send(req(Method::GET, &ann, Some(&is.token), None))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["annotation"]["text"] == "pointes-ondes 3 Hz")
    );
    // Technicians do not annotate.
    let (s, _, _) = app
        .send(req(
            Method::POST,
            &ann,
            Some(&ts.token),
            Some(json!({"onset": 1.0, "text": "x"})),
        ))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = app
        .send(req(
            Method::DELETE,
            &format!("{ann}/{aid}"),
            Some(&is.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, _, hist) = app
        .send(req(
            Method::GET,
            &format!("{ann}/history"),
            Some(&is.token),
            None,
        ))
        .await;
    let mine: Vec<&Value> = hist
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["id"] == aid)
        .collect();
    let changes: Vec<&str> = mine.iter().map(|h| h["change"].as_str().unwrap()).collect();
    assert_eq!(changes, ["added", "edited", "deleted"]);
    assert!(mine.iter().all(|h| h["author"] == "mlecteur"));

    // Every read and change was audited, with ids only.
    let events = app.audit.events();
    for action in [
        "annotation.create",
        "annotation.update",
        "annotation.delete",
        "recording.create",
    ] {
        assert!(events.iter().any(|e| e.action.code() == action), "{action}");
    }
    assert!(events.iter().all(|e| !format!("{e:?}").contains("pointes")));
}

#[tokio::test]
async fn bad_uploads_and_requests_are_refused_and_store_nothing() {
    let app = TestApp::new().with_data().await;
    app.add_tenant("chu-a");
    let tech = app.add_user("ltechnicienne", Role::Technician, Some("chu-a"));
    let ts = app.login(&tech).await;
    // Garbage, a truncated real file, and an empty body.
    let real = std::fs::read(theta_fixtures::shared_eeg_dir().join("test_utf8.edf")).unwrap();
    for body in [
        b"0       garbage".to_vec(),
        real[..real.len() / 2].to_vec(),
        Vec::new(),
    ] {
        let (s, _, v) = app.send(upload_req("chu-a", &ts.token, body)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["field"], "body", "{v}");
    }
    let (_, _, list) = app
        .send(req(Method::GET, "/api/recordings", Some(&ts.token), None))
        .await;
    assert_eq!(list, json!([]));
    assert_eq!(
        std::fs::read_dir(app.dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );

    // Too large for the configured limit: 413 before anything is stored.
    let small = TestApp::with_settings(|s| s.store.upload_limit_bytes = 1000)
        .with_data()
        .await;
    small.add_tenant("chu-a");
    let t2 = small.add_user("ltechnicienne", Role::Technician, Some("chu-a"));
    let s2 = small.login(&t2).await;
    let (s, _, _) = small
        .send(upload_req("chu-a", &s2.token, real.clone()))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    // A good upload, then bad window requests: clear 400s naming the problem.
    let (s, _, v) = app.send(upload_req("chu-a", &ts.token, real)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["recording_id"].as_str().unwrap();
    for q in [
        "start=-5&duration=1",
        "start=0&duration=0",
        "start=0&duration=1&channels=NoSuchChannel",
        "start=0&duration=1&units=volts",
    ] {
        let (s, _, v) = app
            .send(req(
                Method::GET,
                &format!("/api/recordings/{id}/window?{q}"),
                Some(&ts.token),
                None,
            ))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    let (s, _, _) = app
        .send(req(
            Method::GET,
            "/api/recordings/00000000000000000000000000000000/window?start=0&duration=1",
            Some(&ts.token),
            None,
        ))
        .await;
    assert!(
        s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
        "{s}"
    );
}

/// One authenticated request must not be able to take the service's memory: windows, pages,
/// spectra and overviews above `http.max_window_values` (padding included) and pages wider than
/// `MAX_PX` columns are refused with a 400 naming the limit, before anything is read; requests
/// under the limit are served as before.
#[tokio::test]
async fn oversized_reads_are_refused_before_anything_is_read() {
    let app = TestApp::with_settings(|s| s.http.max_window_values = 5_000)
        .with_data()
        .await;
    let (ts, id) = technician_with_test_utf8(&app).await;
    let get = |path: String| {
        let token = ts.token.clone();
        let app = &app;
        async move { app.send(req(Method::GET, &path, Some(&token), None)).await }
    };
    let base = format!("/api/recordings/{id}");
    // Under the limit: 10 s = 1 280 values, raw or as a page without padding.
    for q in [
        "window?start=100&duration=10",
        "window?start=100&duration=10&montage=referential&px=100",
        "psd?start=100&duration=10",
    ] {
        let (s, _, v) = get(format!("{base}/{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
    }
    // A custom montage listing one channel 5 times: 5 rows of 1 280 samples (6 400 values) to
    // filter, from a read of 1 280. The page's rows count, not only its inputs.
    let five = format!(
        r#"{{"name":"x","derivations":[{}]}}"#,
        [r#"{"label":"a","terms":{"Fp1":1}}"#; 5].join(",")
    );
    let montage =
        |m: &str| -> String { url::form_urlencoded::byte_serialize(m.as_bytes()).collect() };
    // Over it: 100 s raw (12 800 values), the whole recording, a spectrum of 100 s, a 10 s page
    // whose 0.5 Hz high-pass reads about 21 s of padding on each side (6 600 values), the
    // montage above, and an overview of 2 × 4 000 values per channel.
    for q in [
        "window?start=100&duration=100".to_string(),
        "window?start=0&duration=698&units=digital".to_string(),
        "psd?start=100&duration=100".to_string(),
        "window?start=100&duration=10&highpass=0.5".to_string(),
        format!("window?start=100&duration=10&montage={}", montage(&five)),
        "overview?width=4000".to_string(),
    ] {
        let (s, _, v) = get(format!("{base}/{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains("limit of 5000"), "{q}: {v}");
    }
    // The same montage with 3 rows, and an overview of 1 000 px, pass.
    let three = five.replacen(r#",{"label":"a","terms":{"Fp1":1}}"#, "", 2);
    let (s, _, v) = get(format!(
        "{base}/window?start=100&duration=10&montage={}",
        montage(&three)
    ))
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(3), "{v}");
    let (s, _, v) = get(format!("{base}/overview?width=1000")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A pixel width beyond any screen: refused whatever the span (it sizes the page's arrays).
    let (s, _, v) = get(format!(
        "{base}/window?start=100&duration=10&px={}",
        theta_query::dsp::MAX_PX + 1
    ))
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v.to_string().contains("px"), "{v}");
}

/// Window, page and spectrum computations pass one gate (`http.max_concurrent_reads`): many at once
/// are all answered, at most the configured number computed at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_wait_their_turn() {
    let app = TestApp::with_settings(|s| s.http.max_concurrent_reads = 1)
        .with_data()
        .await;
    let (ts, id) = technician_with_test_utf8(&app).await;
    let paths: Vec<String> = (0..8)
        .map(|i| match i % 3 {
            0 => format!("/api/recordings/{id}/window?start={i}&duration=30"),
            1 => format!("/api/recordings/{id}/window?start={i}&duration=30&highpass=1&px=200"),
            _ => format!("/api/recordings/{id}/psd?start={i}&duration=60"),
        })
        .collect();
    let answers = futures::future::join_all(
        paths
            .iter()
            .map(|p| app.send(req(Method::GET, p, Some(&ts.token), None))),
    )
    .await;
    for ((s, _, v), p) in answers.iter().zip(&paths) {
        assert_eq!(*s, StatusCode::OK, "{p}: {v}");
    }
    let gate = app.state.reads();
    assert_eq!(gate.entries(), 8);
    assert_eq!(gate.peak(), 1);
}

/// A client that gives up on a window, page or spectrum once it is being computed (its request
/// dropped, as when the connection closes or the time-out answers) leaves the computation in
/// the gate until it ends (the bound is checked in `limits`); every place comes back and the
/// next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_reads_give_their_place_back_when_done() {
    let app = TestApp::with_settings(|s| s.http.max_concurrent_reads = 1)
        .with_data()
        .await;
    let (ts, id) = technician_with_test_utf8(&app).await;
    let gate = app.state.reads();
    for i in 0..6 {
        let path = match i % 3 {
            0 => format!("/api/recordings/{id}/window?start={i}&duration=30"),
            1 => format!("/api/recordings/{id}/window?start={i}&duration=30&highpass=1&px=200"),
            _ => format!("/api/recordings/{id}/psd?start={i}&duration=60"),
        };
        let send = app.send(req(Method::GET, &path, Some(&ts.token), None));
        let entered = async {
            while gate.entries() <= i {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            _ = send => {}
            () = entered => {}
        }
    }
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while gate.running() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("abandoned computations end and free their place");
    let (s, _, v) = app
        .send(req(
            Method::GET,
            &format!("/api/recordings/{id}/window?start=0&duration=10"),
            Some(&ts.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((gate.entries(), gate.peak(), gate.running()), (7, 1, 0));
}

#[test]
fn demo_prepares_store_accounts_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let first: Value = serde_json::from_str(&theta(&[
        "demo",
        "--dir",
        d,
        "--hours",
        "0.05",
        "--no-serve",
        "--json",
    ]))
    .unwrap();
    assert_eq!(first["username"], "cmartin");
    assert!(
        first["otpauth"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert_eq!(first["recordings"].as_array().unwrap().len(), 2);
    // The store is readable with the printed key file, and holds both recordings.
    let ls = theta(&[
        "ls",
        "--store",
        &format!("{d}/store"),
        "--keyring",
        &format!("{d}/store.keys"),
    ]);
    for r in first["recordings"].as_array().unwrap() {
        assert!(ls.contains(r.as_str().unwrap()), "{ls}");
    }
    // A second run keeps the recordings and renews the credentials.
    let second: Value = serde_json::from_str(&theta(&[
        "demo",
        "--dir",
        d,
        "--hours",
        "0.05",
        "--no-serve",
        "--json",
    ]))
    .unwrap();
    assert_eq!(second["recordings"], first["recordings"]);
    assert_ne!(second["password"], first["password"]);
}

#[tokio::test]
async fn demo_serves_and_its_printed_credentials_work() {
    /// Kills the demo server whatever happens to the test.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_theta"))
        .args([
            "demo",
            "--dir",
            dir.path().to_str().unwrap(),
            "--hours",
            "0.05",
            "--json",
        ])
        .args(["--listen", &listen])
        .env_remove("THETA_KEK")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Kill(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let creds: Value = serde_json::from_str(&line).unwrap();
    let cert = std::fs::read(dir.path().join("tls/dev-cert.pem")).unwrap();
    let client = theta_server::http_client::HttpsClient::new(
        theta_server::http_client::roots_from_pem(&cert).unwrap(),
    );
    let post = |path: &str, body: Value| {
        http::Request::post(format!("https://{listen}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .unwrap()
    };
    // The server may still be binding: retry the first request briefly.
    let mut first = None;
    for _ in 0..100 {
        let r = client
            .send(post(
                "/api/auth/login",
                json!({"username": creds["username"], "password": creds["password"]}),
            ))
            .await;
        if let Ok(r) = r {
            first = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = first.expect("the demo serves");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = serde_json::from_slice(r.body()).unwrap();
    let secret = creds["totp_secret"].as_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = theta_server::auth::totp::code_at(secret, now).unwrap();
    let r = client
        .send(post(
            "/api/auth/mfa/verify",
            json!({"mfa_token": v["mfa_token"], "code": code}),
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = serde_json::from_slice::<Value>(r.body()).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client
        .send(
            http::Request::get(format!("https://{listen}/api/recordings"))
                .header("authorization", format!("Bearer {token}"))
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let list: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // The viewer is served at the root.
    let r = client
        .send(
            http::Request::get(format!("https://{listen}/"))
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(r.body()).contains("viewer.js"));
}

#[tokio::test]
async fn a_corrupted_chunk_is_a_500_and_a_p1_integrity_incident() {
    use theta_server::incidents::register::{self, ListFilter};
    use theta_server::incidents::{Category, Priority};
    let app = TestApp::new().with_data().await;
    let (ts, id) = technician_with_test_utf8(&app).await;
    // Flip one byte in the middle of every data object of the store.
    let mut flipped = 0;
    for entry in theta_fixtures::files_under(&app.dir.path().join("store")) {
        if entry.components().any(|c| c.as_os_str() == "data") {
            let mut b = std::fs::read(&entry).unwrap();
            let i = b.len() / 2;
            b[i] ^= 0x40;
            std::fs::write(&entry, b).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped > 0, "no data object found");
    let (s, _, v) = app
        .send(req(
            Method::GET,
            &format!("/api/recordings/{id}/window?start=0&duration=600"),
            Some(&ts.token),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    // The answer says nothing of the place; the incident register does (ids only).
    assert_eq!(v["message"], "internal error");
    app.state.incidents().settle().await;
    let all = app
        .db()
        .call_blocking(|c| register::list(c, &ListFilter::default()))
        .unwrap();
    let inc = all
        .iter()
        .find(|i| i.category == Category::Integrity)
        .unwrap_or_else(|| panic!("no integrity incident: {all:#?}"));
    assert_eq!(inc.priority, Priority::P1);
    assert_eq!(
        inc.deadline_at - inc.detected_at,
        chrono::Duration::hours(12)
    );
}
