//! `theta demo`: the whole product on an embedded default. Creates a data folder with an
//! account database and an encrypted store, ingests generated recordings (a 24-hour one
//! included), creates a demo tenant and a nominative interpreter with a printed password and
//! TOTP secret (`otpauth://` URI), and serves https://127.0.0.1:8443 until Ctrl-C.
//!
//! Running it again reuses the data folder: recordings are kept, the interpreter's password and
//! TOTP secret are renewed and printed again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use theta_engine::edf::ReadOptions;
use theta_engine::store::{EdfSource, IngestOptions, Progress, RecordingStatus, TenantId};
use theta_fixtures::{SynthAnnotation, SynthSpec, write_synth_file};

use crate::accounts::{self, GrantScope, NewAccount, Role};
use crate::auth::{password, totp};
use crate::config::{ProfileKind, Settings};
use crate::data::{DataStore, open_store};
use crate::serve::{open_db, serve_state};
use crate::state::AppState;

/// The demo tenant (a partner establishment).
pub const DEMO_TENANT: &str = "demo-hospital";
/// The demo interpreter's username.
pub const DEMO_USER: &str = "cmartin";

/// Arguments of `theta demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Data folder (account database, certificate, store and its key file).
    #[arg(long, default_value = "theta-data/demo")]
    pub dir: PathBuf,
    /// Length of the long recording in hours.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Prepare the data folder and print the credentials, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
    /// Print the credentials as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

fn annotation(onset: f64, duration: Option<f64>, text: &str) -> SynthAnnotation {
    SynthAnnotation {
        onset,
        duration,
        text: text.into(),
    }
}

/// The generated recordings: a routine EEG and a long (ambulatory / ICU) one.
fn specs(hours: f64) -> Vec<(&'static str, SynthSpec)> {
    let routine = 20.0 * 60.0;
    let long = hours * 3600.0;
    let mut long_annotations = vec![annotation(0.0, None, "Recording start")];
    let mut t = 1800.0;
    let events = [
        "Patient event button",
        "Nurse: eyes open",
        "Sleep onset",
        "Arousal",
    ];
    let mut k = 0;
    while t < long - 60.0 {
        long_annotations.push(annotation(t, Some(30.0), events[k % events.len()]));
        k += 1;
        t += 3600.0;
    }
    vec![
        (
            "routine",
            SynthSpec {
                seed: 2024,
                n_channels: 21,
                sample_rate: 256.0,
                duration: routine,
                line_noise: true,
                annotations: vec![
                    annotation(0.0, None, "Recording start"),
                    annotation(routine * 0.10, Some(20.0), "Eyes closed"),
                    annotation(routine * 0.30, Some(60.0), "Photic stimulation"),
                    annotation(routine * 0.55, Some(180.0), "Hyperventilation"),
                    annotation(routine * 0.90, None, "Recording end"),
                ],
                ..SynthSpec::default()
            },
        ),
        (
            "long-term",
            SynthSpec {
                seed: 2025,
                n_channels: 21,
                sample_rate: 256.0,
                duration: long,
                line_noise: true,
                artefacts: true,
                annotations: long_annotations,
                ..SynthSpec::default()
            },
        ),
    ]
}

/// Generates each recording into a scratch file, ingests it, deletes the file.
async fn ensure_recordings(
    data: &DataStore,
    dir: &std::path::Path,
    hours: f64,
) -> Result<Vec<String>> {
    let tenant = TenantId::new(DEMO_TENANT)?;
    let existing: Vec<String> = data
        .store()
        .list()
        .await?
        .into_iter()
        .filter(|r| {
            r.tenant.as_ref() == Some(&tenant)
                && matches!(r.status, RecordingStatus::Available { .. })
        })
        .map(|r| r.id.to_string())
        .collect();
    let mut existing = existing;
    existing.sort();
    if !existing.is_empty() {
        eprintln!(
            "theta demo: {} recordings already in the store",
            existing.len()
        );
        return Ok(existing);
    }
    let scratch = dir.join("scratch");
    std::fs::create_dir_all(&scratch).with_context(|| scratch.display().to_string())?;
    let mut ids = Vec::new();
    for (name, spec) in specs(hours) {
        let path = scratch.join(format!("{name}.edf"));
        let t0 = Instant::now();
        let p2 = path.clone();
        let summary = tokio::task::spawn_blocking(move || write_synth_file(&spec, &p2))
            .await?
            .with_context(|| format!("generating {}", path.display()))?;
        eprintln!(
            "theta demo: generated the {name} recording ({:.0} MB) in {:.1} s; ingesting",
            summary.bytes as f64 / 1e6,
            t0.elapsed().as_secs_f64()
        );
        let source = EdfSource::open(&path, ReadOptions::default())?;
        let report = data
            .store()
            .ingest(
                source,
                IngestOptions {
                    tenant: tenant.clone(),
                    source_name: Some(format!("{name}.edf")),
                    progress: Progress::Terminal,
                    ..IngestOptions::default()
                },
            )
            .await?;
        std::fs::remove_file(&path).with_context(|| path.display().to_string())?;
        eprintln!(
            "theta demo: {name}: recording {} ({} signals, {:.1} h, {:.0} MB stored of {:.0} MB, {:.1} s)",
            report.recording,
            report.signals,
            report.duration / 3600.0,
            report.stored_bytes as f64 / 1e6,
            report.raw_bytes as f64 / 1e6,
            report.elapsed.as_secs_f64()
        );
        ids.push(report.recording.to_string());
    }
    let _ = std::fs::remove_dir(&scratch);
    ids.sort();
    Ok(ids)
}

/// The interpreter's fresh credentials.
#[derive(Debug)]
pub struct Credentials {
    /// Password (no change forced at login).
    pub password: String,
    /// TOTP secret, base32.
    pub totp_secret: String,
    /// The same as an `otpauth://` URI.
    pub otpauth: String,
}

/// Creates (or renews) the demo tenant, the interpreter [`DEMO_USER`], their grants on
/// `recordings` and fresh credentials (also used by `theta-bench service`).
///
/// # Errors
/// Database, hashing or sealing failures.
pub fn ensure_interpreter(state: &AppState, recordings: &[String]) -> Result<Credentials> {
    let now = state.now();
    let policy = state.settings().accounts.clone();
    let password = password::generate_one_time();
    let hash = password::hash(&password)?;
    let secret = totp::generate_secret();
    let account = state
        .db()
        .call_blocking(|c| -> crate::Result<accounts::Account> {
            let tx = c.transaction()?;
            if !accounts::tenant_exists(&tx, DEMO_TENANT)? {
                accounts::create_tenant(&tx, Some(DEMO_TENANT), "Demo hospital", None, now)?;
            }
            let acc = match accounts::list(&tx)?
                .into_iter()
                .find(|a| a.username == DEMO_USER)
            {
                Some(a) => a,
                None => {
                    let new = NewAccount {
                        username: DEMO_USER.into(),
                        first_name: "Camille".into(),
                        last_name: "Martin".into(),
                        email: "camille.martin@demo-hospital.invalid".into(),
                        role: Role::Interpreter,
                        tenant_id: Some(DEMO_TENANT.into()),
                        guest_expires_at: None,
                    };
                    accounts::validate_new(&tx, &new, &policy, now)?;
                    accounts::insert(&tx, &new, &hash, None, false, now)?
                }
            };
            // A printed demo password is not a one-time password: no change forced at login.
            accounts::set_password(&tx, &acc.id, &hash, false, now)?;
            let granted: Vec<String> = accounts::grants_of(&tx, &acc.id)?
                .into_iter()
                .filter_map(|g| match g.scope {
                    GrantScope::Recording { recording_id, .. } => Some(recording_id),
                    GrantScope::Tenant { .. } => None,
                })
                .collect();
            for r in recordings {
                if !granted.contains(r) {
                    accounts::add_grant(
                        &tx,
                        &acc.id,
                        &GrantScope::Recording {
                            tenant_id: DEMO_TENANT.into(),
                            recording_id: r.clone(),
                        },
                        None,
                        now,
                    )?;
                }
            }
            tx.commit()?;
            Ok(acc)
        })?;
    let sealed = state.secrets().seal_totp(&account.id, &secret)?;
    state.db().call_blocking(|c| -> crate::Result<()> {
        let tx = c.transaction()?;
        accounts::set_totp(&tx, &account.id, Some(&sealed), true)?;
        tx.execute(
            "UPDATE accounts SET status = 'active', disabled_reason = NULL WHERE id = ?1",
            [&account.id],
        )?;
        tx.commit()?;
        Ok(())
    })?;
    let otpauth = totp::otpauth_uri(&secret, DEMO_USER)?;
    Ok(Credentials {
        password,
        totp_secret: secret,
        otpauth,
    })
}

async fn run_async(args: DemoArgs) -> Result<()> {
    if !(args.hours > 0.0 && args.hours <= 72.0) {
        anyhow::bail!("--hours must be above 0 and at most 72");
    }
    std::fs::create_dir_all(&args.dir).with_context(|| args.dir.display().to_string())?;
    let dir = args.dir.canonicalize()?;
    let mut settings = Settings::for_kind(ProfileKind::Dev, &dir);
    settings.listen = args.listen;
    let db = open_db(&settings)?;
    let data = open_store(&settings).await?;
    let recordings = ensure_recordings(&data, &dir, args.hours).await?;
    let state = AppState::new(settings, db)?.with_data(data);
    let creds = ensure_interpreter(&state, &recordings)?;
    // Print once the server listens (and its certificate exists), so what is printed is usable.
    let running = if args.no_serve {
        None
    } else {
        Some(
            serve_state(state, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?,
        )
    };
    let url = format!("https://{}/", args.listen);
    if args.json {
        let v = serde_json::json!({
            "url": url,
            "data_dir": dir.display().to_string(),
            "tenant": DEMO_TENANT,
            "username": DEMO_USER,
            "password": creds.password,
            "totp_secret": creds.totp_secret,
            "otpauth": creds.otpauth,
            "recordings": recordings,
        });
        println!("{v}");
    } else {
        println!("Theta demo — data in {}", dir.display());
        println!("  service     {url} (self-signed certificate of the dev profile)");
        println!(
            "  tenant      {DEMO_TENANT}, {} recordings",
            recordings.len()
        );
        println!("  interpreter Camille Martin, username {DEMO_USER}");
        println!("  password    {}", creds.password);
        println!("  TOTP        {}", creds.otpauth);
        println!(
            "              (add it to an authenticator app, or: oathtool --totp -b {})",
            creds.totp_secret
        );
    }
    let Some(running) = running else {
        return Ok(());
    };
    eprintln!("theta demo: serving {} — Ctrl-C to stop", running.addr());
    running.wait().await?;
    Ok(())
}

/// Runs the demo and returns the exit code.
pub fn run(args: DemoArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("theta demo: {e}");
            return 1;
        }
    };
    match rt.block_on(run_async(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("theta demo: {e:#}");
            1
        }
    }
}
