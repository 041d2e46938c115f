//! Store commands: `theta init`, `theta ls`, `theta verify`, `theta keys rotate`,
//! `theta shred`, and what they share (opening a store and its keyring).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use theta_engine::crypto::{KEK_ENV_VAR, Keyring, KeyringError, LocalKeyring};
use theta_engine::store::{
    ErrorCategory, RecordingId, RecordingStatus, Store, StoreError, StoreOptions,
};

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code of a failure of the store, the keyring or the machine (and of `verify` finding
/// problems).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of bad input: unknown recording or channel, window outside the recording, wrong
/// key, malformed file; nothing was changed.
pub const EXIT_BAD_INPUT: i32 = 2;

/// Where the store is and which keys open it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The store folder.
    #[arg(long, value_name = "DIR")]
    pub store: PathBuf,
    /// Key file (default: `<DIR>.keys` beside the store folder, unless `THETA_KEK` is set).
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
}

impl StoreArgs {
    /// The key file used when neither `--keyring` nor `THETA_KEK` is given: a sibling of the
    /// store folder, so that copying or backing up the store never copies its keys.
    pub fn default_key_file(&self) -> PathBuf {
        let mut name = self
            .store
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "theta-store".into());
        name.push(".keys");
        let parent = self
            .store
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent.join(name)
    }

    /// The key file in use, if the keys come from a file.
    pub fn key_file(&self) -> Option<PathBuf> {
        if let Some(k) = &self.keyring {
            return Some(k.clone());
        }
        if std::env::var_os(KEK_ENV_VAR).is_some() {
            return None;
        }
        Some(self.default_key_file())
    }

    /// Loads the keyring: `--keyring FILE`, else `THETA_KEK`, else the default key file.
    ///
    /// # Errors
    /// When the keyring cannot be read.
    pub fn load_keyring(&self) -> Result<LocalKeyring, CliError> {
        if let Some(path) = self.key_file() {
            if !path.exists() {
                return Err(CliError::bad_input(format!(
                    "no key file at {} (use --keyring FILE or set {KEK_ENV_VAR})",
                    path.display()
                )));
            }
            return LocalKeyring::open_file(&path).map_err(CliError::from);
        }
        LocalKeyring::from_env()?
            .ok_or_else(|| CliError::bad_input(format!("{KEK_ENV_VAR} is empty")))
    }

    /// Opens the store.
    ///
    /// # Errors
    /// When the keyring or the store cannot be opened.
    pub async fn open(&self) -> Result<Store, CliError> {
        let ring = self.load_keyring()?;
        self.open_with(Arc::new(ring)).await
    }

    /// Opens the store with a given keyring.
    ///
    /// # Errors
    /// When the store cannot be opened.
    pub async fn open_with(&self, ring: Arc<dyn Keyring>) -> Result<Store, CliError> {
        Ok(Store::open_local(&self.store, ring, StoreOptions::default()).await?)
    }
}

/// An error of a CLI command: a message and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// Message for stderr.
    pub message: String,
}

impl CliError {
    /// Bad input (exit 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_BAD_INPUT,
            message: message.into(),
        }
    }
    /// Failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let code = match e.category() {
            ErrorCategory::Caller => EXIT_BAD_INPUT,
            _ => EXIT_FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<KeyringError> for CliError {
    fn from(e: KeyringError) -> Self {
        Self::bad_input(e.to_string())
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::failure(e.to_string())
    }
}

/// Runs an async command body on a fresh runtime and turns the result into an exit code.
pub fn run_async<F>(f: F) -> i32
where
    F: std::future::Future<Output = Result<i32, CliError>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("theta: error: cannot start the runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("theta: error: {}", e.message);
            e.code
        }
    }
}

/// Writes to stdout, treating a closed pipe (`| head`) as success.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `theta init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Environment tag (`dev`, `test`, `prod`); keys of another environment are refused.
    #[arg(long, default_value = "dev")]
    pub env: String,
}

/// Creates a store, and a key file (mode 0600) when none exists and `THETA_KEK` is not set.
pub fn init(args: InitArgs) -> i32 {
    run_async(async move {
        let dir = &args.store.store;
        if dir.join("theta.store").exists() {
            return Err(CliError::bad_input(format!(
                "a Theta store already exists at {}",
                dir.display()
            )));
        }
        let mut created_key_file = None;
        let ring = match args.store.key_file() {
            Some(path) if path.exists() => LocalKeyring::open_file(&path)?,
            Some(path) => {
                let ring = LocalKeyring::create_file(&path, &args.env)?;
                created_key_file = Some(path);
                ring
            }
            None => LocalKeyring::from_env()?
                .ok_or_else(|| CliError::bad_input(format!("{KEK_ENV_VAR} is empty")))?,
        };
        match Store::init_local(dir, &args.env, Arc::new(ring), StoreOptions::default()).await {
            Ok(store) => {
                let keys = created_key_file
                    .as_ref()
                    .map(|p| format!(", new key file {} (mode 600)", p.display()))
                    .unwrap_or_default();
                eprintln!(
                    "initialised store {} at {} (environment {}){keys}",
                    store.id(),
                    dir.display(),
                    store.environment()
                );
                Ok(EXIT_OK)
            }
            Err(e) => {
                if let Some(p) = created_key_file {
                    let _ = std::fs::remove_file(p);
                }
                Err(e.into())
            }
        }
    })
}

/// `theta ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Lists recordings (ids, tenants, sizes; no health data).
pub fn ls(args: LsArgs) -> i32 {
    run_async(async move {
        let store = args.store.open().await?;
        let list = store.list().await?;
        if args.json {
            let mut s = serde_json::to_string_pretty(&list)
                .map_err(|e| CliError::failure(e.to_string()))?;
            s.push('\n');
            write_stdout(s.as_bytes())?;
            return Ok(EXIT_OK);
        }
        let mut out = format!(
            "{:<32}  {:<16}  {:<10}  {:>7}  {:>12}  {:>12}  {:>12}  {}\n",
            "RECORDING",
            "TENANT",
            "STATUS",
            "SIGNALS",
            "DURATION_S",
            "RAW_BYTES",
            "STORED_BYTES",
            "INGESTED"
        );
        for r in &list {
            let tenant = r
                .tenant
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into());
            let line = match &r.status {
                RecordingStatus::Available {
                    signals,
                    duration,
                    ingested_at,
                    raw_bytes,
                    stored_bytes,
                } => format!(
                    "{:<32}  {:<16}  {:<10}  {signals:>7}  {duration:>12.3}  {raw_bytes:>12}  {stored_bytes:>12}  {ingested_at}\n",
                    r.id, tenant, "available"
                ),
                RecordingStatus::Shredded { at } => format!(
                    "{:<32}  {:<16}  {:<10}  {:>7}  {:>12}  {:>12}  {:>12}  shredded {at}\n",
                    r.id, tenant, "shredded", "-", "-", "-", "-"
                ),
                RecordingStatus::Unreadable { error } => format!(
                    "{:<32}  {:<16}  {:<10}  {error}\n",
                    r.id, tenant, "unreadable"
                ),
                _ => format!("{:<32}  {:<16}  unknown\n", r.id, tenant),
            };
            out.push_str(&line);
        }
        write_stdout(out.as_bytes())?;
        Ok(EXIT_OK)
    })
}

/// `theta verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Scrubs the whole store; exits 1 when anything is wrong.
pub fn verify(args: VerifyArgs) -> i32 {
    run_async(async move {
        let store = args.store.open().await?;
        let report = store.verify().await?;
        if args.json {
            let mut s = serde_json::to_string_pretty(&report)
                .map_err(|e| CliError::failure(e.to_string()))?;
            s.push('\n');
            write_stdout(s.as_bytes())?;
        } else {
            let mut out = format!(
                "{} recordings, {} chunks, {} overview pages, {} annotation events checked; {} shredded; {} problems\n",
                report.recordings,
                report.chunks,
                report.pages,
                report.annotation_events,
                report.shredded.len(),
                report.problems.len()
            );
            for p in &report.problems {
                let place = p
                    .place
                    .map(|pl| pl.to_string())
                    .unwrap_or_else(|| "-".into());
                out.push_str(&format!("BAD  {}  {place}  {}\n", p.recording, p.error));
            }
            write_stdout(out.as_bytes())?;
        }
        Ok(if report.is_clean() {
            EXIT_OK
        } else {
            EXIT_FAILURE
        })
    })
}

/// `theta keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Adds a new key-encryption key and re-wraps every data key under it (data untouched).
    Rotate(RotateArgs),
}

/// `theta keys rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// After every data key has been re-wrapped, remove the old keys from the key file.
    #[arg(long)]
    pub retire_old: bool,
}

/// Runs a `theta keys` command.
pub fn keys(cmd: KeysCommand) -> i32 {
    match cmd {
        KeysCommand::Rotate(args) => rotate(args),
    }
}

fn rotate(args: RotateArgs) -> i32 {
    run_async(async move {
        let mut ring = args.store.load_keyring()?;
        let old: Vec<_> = ring.kek_ids();
        if ring.path().is_some() {
            let new = ring.add_generated();
            ring.save()?;
            eprintln!(
                "new key-encryption key {new} added to {}",
                ring.path().expect("file").display()
            );
        } else {
            eprintln!(
                "keys from {KEK_ENV_VAR}: re-wrapping under its first key {}",
                ring.current_kek()?
            );
        }
        let ring = Arc::new(ring);
        let store = args
            .store
            .open_with(Arc::clone(&ring) as Arc<dyn Keyring>)
            .await?;
        let report = store.rotate_keys().await?;
        let mut out = format!(
            "re-wrapped {} data keys under {}; {} already current; {} shredded; {} failed\n",
            report.rewrapped.len(),
            report
                .kek
                .as_ref()
                .map(|k| k.to_string())
                .unwrap_or_default(),
            report.already_current.len(),
            report.shredded.len(),
            report.failed.len()
        );
        for (id, e) in &report.failed {
            out.push_str(&format!("FAILED  {id}  {e}\n"));
        }
        write_stdout(out.as_bytes())?;
        if !report.failed.is_empty() {
            return Ok(EXIT_FAILURE);
        }
        if args.retire_old && ring.path().is_some() {
            let current = ring.current_kek()?;
            let mut ring = LocalKeyring::open_file(ring.path().expect("file"))?;
            for k in old.into_iter().filter(|k| *k != current) {
                ring.remove(&k)?;
                eprintln!("retired key-encryption key {k}");
            }
            ring.save()?;
        }
        Ok(EXIT_OK)
    })
}

/// `theta shred`.
#[derive(Debug, Args)]
pub struct ShredArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The recording whose data key is destroyed.
    #[arg(long, value_name = "ID")]
    pub recording: String,
}

/// Destroys a recording's data key (irreversible).
pub fn shred(args: ShredArgs) -> i32 {
    run_async(async move {
        let id: RecordingId = args.recording.parse()?;
        let store = args.store.open().await?;
        store.shred(id).await?;
        eprintln!(
            "recording {id} shredded: its data key is destroyed and it can never be read again"
        );
        Ok(EXIT_OK)
    })
}

/// Parses `--tenant` values (comma-separated or repeated) into tenant ids.
///
/// # Errors
/// The first invalid id, as bad input.
pub fn parse_tenants(values: &[String]) -> Result<Vec<theta_engine::store::TenantId>, CliError> {
    values
        .iter()
        .map(|t| theta_engine::store::TenantId::new(t.trim()).map_err(CliError::from))
        .collect()
}
