//! `theta serve --config theta.toml [--profile NAME]`.

use std::path::PathBuf;

use clap::Args;

use crate::config::Settings;

/// Arguments of `theta serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML with profiles).
    #[arg(long, default_value = "theta.toml")]
    pub config: PathBuf,
    /// Profile to run (defaults to the file's `profile` field).
    #[arg(long)]
    pub profile: Option<String>,
}

/// Runs the service until Ctrl-C / SIGTERM. Returns the exit code.
pub fn run(args: ServeArgs) -> i32 {
    init_logging();
    let settings = match Settings::load(&args.config, args.profile.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("theta serve: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("theta serve: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        match crate::serve::serve(settings, shutdown_signal()).await {
            Ok(running) => {
                eprintln!("theta: serving https://{}", running.addr());
                match running.wait().await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("theta serve: {e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprintln!("theta serve: {e}");
                1
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Structured JSON logs on stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
