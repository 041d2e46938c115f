//! The `theta` binary.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = theta_server::cli::Cli::parse();
    std::process::exit(theta_server::cli::run(cli));
}
