//! `theta sql`: a read-only SQL query over the recordings of the given tenants.

use clap::{Args, ValueEnum};
use theta_query::sql::{Catalog, OutputFormat, SqlError, render};

use super::store::{CliError, EXIT_OK, StoreArgs, parse_tenants, run_async, write_stdout};

/// Output format of `theta sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    /// A text table.
    Table,
    /// A JSON array of row objects.
    Json,
    /// CSV with a header line.
    Csv,
}

/// `theta sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Store and keyring.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Tenants whose recordings the query may see (comma-separated or repeated); rows of any
    /// other tenant are never visible.
    #[arg(long, value_name = "T[,T...]", value_delimiter = ',', required = true)]
    pub tenant: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// The query. Tables: recordings, channels, annotations, samples; aggregate
    /// band_power(time, value, sample_rate, band [, nperseg]).
    #[arg(value_name = "SQL")]
    pub query: String,
}

fn sql_error(e: SqlError) -> CliError {
    match e {
        SqlError::Store(s) => s.into(),
        SqlError::Query(q) => CliError::bad_input(q.to_string()),
        other => CliError::failure(other.to_string()),
    }
}

/// Runs the query and prints the result on stdout.
pub fn run(args: SqlArgs) -> i32 {
    run_async(async move {
        let tenants = parse_tenants(&args.tenant)?;
        let store = args.store.open().await?;
        let catalog = Catalog::new(store, tenants).await.map_err(sql_error)?;
        let batches = catalog.sql(&args.query).await.map_err(sql_error)?;
        let format = match args.format {
            SqlFormat::Table => OutputFormat::Table,
            SqlFormat::Json => OutputFormat::Json,
            SqlFormat::Csv => OutputFormat::Csv,
        };
        write_stdout(&render(&batches, format).map_err(sql_error)?)?;
        Ok(EXIT_OK)
    })
}
