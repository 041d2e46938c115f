//! `theta incidents list|show|update|report`: the security incident register from the command
//! line (same database as the service). Reads are audited as `incident.read`, changes as
//! `incident.update`, by the command line's actor (`cli:<OS user>`).

use std::path::PathBuf;

use chrono::{Duration, Utc};
use clap::{Args, Subcommand};

use super::audit::{cli_event, parse_time, record};
use crate::audit::{AuditAction, Outcome, Reason, ResourceKind};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::incidents::register::{self, ListFilter};
use crate::incidents::{Priority, Status};

/// Arguments of `theta incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Configuration file (TOML with profiles).
    #[arg(long, global = true, default_value = "theta.toml")]
    pub config: PathBuf,
    /// Profile (defaults to the file's `profile` field).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: IncidentsCommand,
}

/// `theta incidents` sub-commands.
#[derive(Debug, Subcommand)]
pub enum IncidentsCommand {
    /// Incidents, newest first.
    List {
        /// Only incidents not closed.
        #[arg(long)]
        open: bool,
        /// Only this status (open, notified, contained, closed).
        #[arg(long)]
        status: Option<String>,
        /// Only this priority (P1, P2, P3).
        #[arg(long)]
        priority: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// One incident with its indicators, timeline and notifications.
    Show {
        /// Incident id.
        id: String,
    },
    /// Change the status and/or add a note to the timeline.
    Update {
        /// Incident id.
        id: String,
        /// New status (open, notified, contained, closed).
        #[arg(long)]
        status: Option<String>,
        /// A note for the timeline (no health data).
        #[arg(long)]
        note: Option<String>,
    },
    /// Trend of past incidents by priority and category (and by month with `--json`).
    Report {
        /// Start (default: one year before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// End (default: now).
        #[arg(long)]
        to: Option<String>,
    },
}

/// Runs `theta incidents`. Returns the exit code.
pub fn run(args: IncidentsArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("theta incidents: {e}");
            match e {
                Error::Invalid { .. } | Error::Config { .. } => 2,
                _ => 1,
            }
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::invalid("json", e.to_string()))
}

fn status(s: &str) -> Result<Status> {
    Status::from_code(s)
        .ok_or_else(|| Error::invalid("status", "open, notified, contained or closed"))
}

fn run_inner(args: IncidentsArgs) -> Result<i32> {
    let settings = Settings::load(&args.config, args.profile.as_deref())?;
    let db = crate::serve::open_db(&settings)?;
    let now = Utc::now();
    match args.command {
        IncidentsCommand::List {
            open,
            status: st,
            priority,
            tenant,
        } => {
            let filter = ListFilter {
                status: st.as_deref().map(status).transpose()?,
                open_only: open,
                priority: priority
                    .as_deref()
                    .map(|p| {
                        Priority::parse(p).ok_or_else(|| Error::invalid("priority", "P1, P2 or P3"))
                    })
                    .transpose()?,
                tenant,
                limit: Some(10_000),
                ..ListFilter::default()
            };
            record(&settings, &cli_event(AuditAction::IncidentRead))?;
            let list = db.call_blocking(|c| register::list(c, &filter))?;
            if args.json {
                println!("{}", json(&list)?);
            } else {
                println!(
                    "{:<36}  {:<3}  {:<20}  {:<9}  {:<20}  {:<20}  tenant",
                    "id", "pri", "category", "status", "detected_at", "deadline_at"
                );
                for i in &list {
                    let late =
                        i.notified_at.is_none() && i.deadline_at <= now && i.status == Status::Open;
                    println!(
                        "{:<36}  {:<3}  {:<20}  {:<9}  {:<20}  {:<20}{}  {}",
                        i.id,
                        i.priority.code(),
                        i.category.code(),
                        i.status.code(),
                        i.detected_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        i.deadline_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        if late { " LATE" } else { "" },
                        i.tenant_id.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(0)
        }
        IncidentsCommand::Show { id } => {
            let id2 = id.clone();
            let d = db.call_blocking(move |c| register::detail(c, &id2))?;
            let mut e =
                cli_event(AuditAction::IncidentRead).resource(ResourceKind::Incident, id.clone());
            if d.is_none() {
                e = e.outcome(Outcome::Failure, Some(Reason::NotFound));
            }
            record(&settings, &e)?;
            let Some(d) = d else {
                return Err(Error::invalid("id", format!("no incident {id}")));
            };
            println!("{}", json(&d)?);
            Ok(0)
        }
        IncidentsCommand::Update {
            id,
            status: st,
            note,
        } => {
            let st = st.as_deref().map(status).transpose()?;
            if st.is_none() && note.as_deref().is_none_or(|n| n.trim().is_empty()) {
                return Err(Error::invalid("status", "give --status, --note or both"));
            }
            let actor = crate::audit::cli_actor();
            let id2 = id.clone();
            let r = db.call_blocking(move |c| {
                register::set_status(c, &id2, st, note.as_deref(), &actor, now)
            });
            let e =
                cli_event(AuditAction::IncidentUpdate).resource(ResourceKind::Incident, id.clone());
            let e = match &r {
                Ok(Some(i)) => {
                    let mut e = e.outcome(Outcome::Success, None);
                    e.tenant_id = i.tenant_id.clone();
                    e
                }
                Ok(None) => e.outcome(Outcome::Failure, Some(Reason::NotFound)),
                Err(_) => e.outcome(Outcome::Failure, Some(Reason::InvalidRequest)),
            };
            record(&settings, &e)?;
            let Some(i) = r? else {
                return Err(Error::invalid("id", format!("no incident {id}")));
            };
            if args.json {
                println!("{}", json(&i)?);
            } else {
                println!(
                    "{} {} {} → {}",
                    i.id,
                    i.priority.code(),
                    i.category.code(),
                    i.status.code()
                );
            }
            Ok(0)
        }
        IncidentsCommand::Report { from, to } => {
            let to = to
                .as_deref()
                .map(|s| parse_time("to", s))
                .transpose()?
                .unwrap_or(now);
            let from = from
                .as_deref()
                .map(|s| parse_time("from", s))
                .transpose()?
                .unwrap_or(to - Duration::days(365));
            record(&settings, &cli_event(AuditAction::IncidentRead))?;
            let rep = db.call_blocking(move |c| register::trend(c, from, to, now))?;
            if args.json {
                println!("{}", json(&rep)?);
                return Ok(0);
            }
            println!(
                "Incidents {} .. {}",
                rep.from.format("%Y-%m-%d"),
                rep.to.format("%Y-%m-%d")
            );
            println!(
                "{:<3}  {:<20}  {:>9}  {:>9}  {:>6}  {:>15}  {:>16}",
                "pri",
                "category",
                "incidents",
                "in time",
                "late",
                "median h notify",
                "median h contain"
            );
            let h = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"));
            for (p, cats) in &rep.totals {
                for (c, cell) in cats {
                    println!(
                        "{:<3}  {:<20}  {:>9}  {:>9}  {:>6}  {:>15}  {:>16}",
                        p,
                        c,
                        cell.incidents,
                        cell.notified_in_time,
                        cell.notified_late,
                        h(cell.median_hours_to_notify),
                        h(cell.median_hours_to_contain)
                    );
                }
            }
            for (month, pris) in &rep.by_month {
                let n: u64 = pris
                    .values()
                    .flat_map(|c| c.values())
                    .map(|c| c.incidents)
                    .sum();
                println!("{month}: {n}");
            }
            Ok(0)
        }
    }
}
