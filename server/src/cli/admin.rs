//! `theta admin …`: bootstrap and the access review.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::accounts::{self, NewAccount, Role};
use crate::auth::password;
use crate::config::Settings;
use crate::error::{Error, Result};

/// Arguments of `theta admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Configuration file (TOML with profiles).
    #[arg(long, global = true, default_value = "theta.toml")]
    pub config: PathBuf,
    /// Profile (defaults to the file's `profile` field).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Administrative sub-commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Creates the first administrator (nominative) with a one-time password, printed once.
    /// Refused when an administrator already exists.
    Bootstrap {
        /// First name.
        #[arg(long)]
        first_name: String,
        /// Last name.
        #[arg(long)]
        last_name: String,
        /// E-mail.
        #[arg(long)]
        email: String,
        /// Username (default: first letter of the first name + last name, lower case).
        #[arg(long)]
        username: Option<String>,
    },
    /// Writes a new key for sealing secrets at rest, tagged with the profile's environment
    /// (set `secrets_key_file` to it). Never overwrites.
    SecretKey {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Lists every account with role, tenant, grants, status, last login and password age.
    AccessReview {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReviewFormat::Csv)]
        format: ReviewFormat,
    },
}

/// Access review output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReviewFormat {
    /// CSV with a header line.
    Csv,
    /// A JSON array.
    Json,
}

/// Runs `theta admin`. Returns the exit code.
pub fn run(args: AdminArgs) -> i32 {
    match run_inner(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("theta admin: {e}");
            match e {
                Error::Invalid { .. } | Error::Config { .. } => 2,
                _ => 1,
            }
        }
    }
}

fn run_inner(args: AdminArgs) -> Result<()> {
    let settings = Settings::load(&args.config, args.profile.as_deref())?;
    if let AdminCommand::SecretKey { out } = &args.command {
        crate::secrets::SecretKey::generate(&settings.environment()).write_new(out)?;
        // Recorded when the profile's trail can be written already (a first key precedes it).
        if let Err(e) = super::audit::record(
            &settings,
            &super::audit::cli_event(crate::audit::AuditAction::KeyCreate)
                .resource(crate::audit::ResourceKind::Key, "secrets"),
        ) {
            eprintln!("theta admin: key written; its creation could not be audited: {e}");
        }
        println!(
            "Secret key for environment {:?} written to {}",
            settings.environment(),
            out.display()
        );
        return Ok(());
    }
    let db = crate::serve::open_db(&settings)?;
    // Nothing is done that could not be audited: the trail must open first.
    drop(crate::audit::open_log(&settings)?);
    let now = chrono::Utc::now();
    match args.command {
        AdminCommand::Bootstrap {
            first_name,
            last_name,
            email,
            username,
        } => {
            let (account, otp) =
                bootstrap(&db, &settings, first_name, last_name, email, username, now)?;
            super::audit::record(
                &settings,
                &super::audit::cli_event(crate::audit::AuditAction::AccountCreate)
                    .resource(crate::audit::ResourceKind::Account, account.id.clone()),
            )?;
            println!("Bootstrap administrator created.");
            println!("  username:           {}", account.username);
            println!("  one-time password:  {otp}");
            println!(
                "Log in, change the password and enrol TOTP. This account is disabled automatically"
            );
            println!("once a second, nominative administrator has completed a first login.");
            Ok(())
        }
        AdminCommand::SecretKey { .. } => Ok(()),
        AdminCommand::AccessReview { format } => {
            super::audit::record(
                &settings,
                &super::audit::cli_event(crate::audit::AuditAction::AdminAccessReview),
            )?;
            let rows = db.call_blocking(|c| accounts::access_review(c, now))?;
            match format {
                ReviewFormat::Csv => print!("{}", accounts::review_csv(&rows)),
                ReviewFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&rows)
                        .map_err(|e| Error::invalid("format", e.to_string()))?
                ),
            }
            Ok(())
        }
    }
}

/// Creates the bootstrap administrator; returns it and its one-time password.
///
/// # Errors
/// [`Error::Invalid`] when an administrator exists or a field is invalid.
pub fn bootstrap(
    db: &crate::db::Db,
    settings: &Settings,
    first_name: String,
    last_name: String,
    email: String,
    username: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(accounts::Account, String)> {
    let username = username.unwrap_or_else(|| {
        let initial: String = first_name
            .chars()
            .filter(|c| c.is_alphabetic())
            .take(1)
            .collect();
        let last: String = last_name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        format!("{initial}{last}").to_lowercase()
    });
    let new = NewAccount {
        username,
        first_name,
        last_name,
        email,
        role: Role::Administrator,
        tenant_id: None,
        guest_expires_at: None,
    };
    db.call_blocking(|c| -> Result<()> {
        if accounts::any_administrator(c)? {
            return Err(Error::invalid(
                "bootstrap",
                "an administrator already exists; bootstrap is for an empty installation",
            ));
        }
        accounts::validate_new(c, &new, &settings.accounts, now)
    })?;
    let otp = password::generate_one_time();
    let hash = password::hash(&otp)?;
    let account = db.call_blocking(|c| -> Result<_> {
        let tx = c.transaction()?;
        if accounts::any_administrator(&tx)? {
            return Err(Error::invalid(
                "bootstrap",
                "an administrator already exists",
            ));
        }
        let a = accounts::insert(&tx, &new, &hash, None, true, now)?;
        tx.commit()?;
        Ok(a)
    })?;

    Ok((account, otp))
}
