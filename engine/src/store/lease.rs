//! Leases of ingests in progress, and the cleanup of what dead ingests left behind.
//!
//! An ingest writes `leases/<id>` before any object of the recording and deletes it after
//! the manifest (the commit point). While it runs it refreshes the lease. A lease is stale
//! when it has not been refreshed for `lease_ttl`, or when it names a process on this host
//! that no longer exists. Cleanup removes the objects of every recording with a stale lease
//! and no manifest, then the lease; a crash in the middle of a cleanup leaves the lease, so
//! the next cleanup finishes the job. Live ingests are never touched.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::StoreInner;
use super::error::Result;
use super::format::paths;
use super::ids::RecordingId;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseBody {
    host: String,
    pid: u32,
    /// Start time of the process (clock ticks since boot, `/proc/<pid>/stat` field 22), to
    /// tell a reused pid apart.
    pid_start: Option<u64>,
    heartbeat_unix_ms: i64,
}

/// What [`Store::cleanup`](super::Store::cleanup) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Recordings whose leftovers were removed.
    pub removed: Vec<RecordingId>,
    /// Ingests still alive, left alone.
    pub live: Vec<RecordingId>,
    /// Stale leases of recordings that had committed (only the lease was removed).
    pub committed: Vec<RecordingId>,
    /// Staging files of a local folder removed.
    pub staging_files: usize,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Start time of a process from `/proc/<pid>/stat`, if readable (Linux).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None; // a zombie has finished
    }
    fields.get(19)?.parse().ok()
}

fn body_now() -> LeaseBody {
    let pid = std::process::id();
    LeaseBody {
        host: hostname(),
        pid,
        pid_start: process_start(pid),
        heartbeat_unix_ms: chrono::Utc::now().timestamp_millis(),
    }
}

/// A held lease; dropping it stops the heartbeat (the lease then expires).
pub(crate) struct Lease {
    id: RecordingId,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl Lease {
    pub(crate) async fn acquire(store: &Arc<StoreInner>, id: RecordingId) -> Result<Self> {
        let path = paths::lease(&id);
        let body = serde_json::to_vec(&body_now()).expect("lease serialises");
        if !store.put_create(&path, body).await? {
            return Err(super::StoreError::internal(
                "lease already exists for a new recording id",
            ));
        }
        let every = store
            .options
            .lease_heartbeat
            .max(Duration::from_millis(100));
        let os = Arc::clone(&store.os);
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let body = serde_json::to_vec(&body_now()).expect("lease serialises");
                let _ = os.put(&path, body.into()).await;
            }
        });
        Ok(Self { id, heartbeat })
    }

    pub(crate) async fn release(self, store: &StoreInner) {
        self.heartbeat.abort();
        let _ = store.delete_quiet(&paths::lease(&self.id)).await;
    }
}

/// Deletes every object of a recording (and, for a local store, its folder with any staging
/// files the object store hides).
pub(crate) async fn remove_recording_objects(store: &StoreInner, id: &RecordingId) -> Result<()> {
    let prefix = paths::recording_dir(id);
    let metas = store.list_all(&prefix).await?;
    // The manifest goes first, so that a crash half-way never leaves a committed-looking
    // recording with missing parts.
    if let Some(m) = metas.iter().find(|m| m.location == paths::manifest(id)) {
        store.delete_quiet(&m.location).await?;
    }
    let locations: Vec<Path> = metas.into_iter().map(|m| m.location).collect();
    let mut deletes = futures::stream::iter(locations)
        .map(|p| async move { store.delete_quiet(&p).await })
        .buffer_unordered(8);
    while let Some(r) = deletes.next().await {
        r?;
    }
    if let Some(root) = &store.local_root {
        let dir = root.join(paths::RECORDINGS).join(id.to_string());
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

fn is_stale(body: Option<&LeaseBody>, modified_ms: i64, ttl: Duration) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let Some(b) = body else {
        // Unreadable lease: only its age can tell.
        return now.saturating_sub(modified_ms) > ttl_ms;
    };
    let last = b.heartbeat_unix_ms.max(modified_ms);
    if now.saturating_sub(last) > ttl_ms {
        return true;
    }
    // Same host: a process that is gone (or whose pid now belongs to another process) is
    // dead whatever its last heartbeat says.
    if !b.host.is_empty() && b.host == hostname() && std::path::Path::new("/proc/self").exists() {
        return match process_start(b.pid) {
            None => true,
            Some(start) => b.pid_start.is_some_and(|s| s != start),
        };
    }
    false
}

pub(crate) async fn cleanup(store: &StoreInner) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let leases = store.list_all(&Path::from(paths::LEASES)).await?;
    for meta in leases {
        let Some(id) = meta
            .location
            .filename()
            .and_then(|n| n.parse::<RecordingId>().ok())
        else {
            continue;
        };
        let body = store
            .get_opt(&meta.location)
            .await?
            .and_then(|b| serde_json::from_slice::<LeaseBody>(&b).ok());
        if !is_stale(
            body.as_ref(),
            meta.last_modified.timestamp_millis(),
            store.options.lease_ttl,
        ) {
            report.live.push(id);
            continue;
        }
        if store.exists(&paths::manifest(&id)).await? {
            report.committed.push(id);
        } else {
            remove_recording_objects(store, &id).await?;
            report.removed.push(id);
        }
        store.delete_quiet(&meta.location).await?;
    }
    if let Some(root) = &store.local_root {
        report.staging_files = sweep_staging(root, &report.live, store.options.lease_ttl);
    }
    Ok(report)
}

/// Removes staging files (`name#N`) that `LocalFileSystem` leaves when a process dies in the
/// middle of a write. Files of a live ingest are kept; others are removed once older than the
/// lease TTL (a younger one may be a write in progress in another process).
fn sweep_staging(root: &std::path::Path, live: &[RecordingId], ttl: Duration) -> usize {
    fn is_staging(name: &str) -> bool {
        name.rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }
    let live: Vec<String> = live.iter().map(ToString::to_string).collect();
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                let name = e.file_name().to_string_lossy().into_owned();
                if live.contains(&name) {
                    continue;
                }
                stack.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_staging(&name) {
                continue;
            }
            let belongs_to_live = live.iter().any(|l| name.starts_with(l.as_str()));
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= ttl);
            if !belongs_to_live && old && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}
