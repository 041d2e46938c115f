//! The background appender: the service's hot path only enqueues; one writer thread drains the
//! queue into batches, one SQLite transaction per batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError};

use super::error::{AuditError, Result};
use super::event::AuditEvent;
use super::log::AuditLog;

/// Tuning of an [`AuditAppender`].
#[derive(Clone, Debug)]
pub struct AppenderOptions {
    /// Events the queue holds before [`AuditAppender::append`] waits (default 65 536).
    pub queue_capacity: usize,
    /// Most events committed in one transaction (default 4096).
    pub max_batch: usize,
    /// How long `append` waits for room in a full queue before failing (default 5 s). A full
    /// queue means the log cannot keep up or is failing; the caller should refuse the request
    /// rather than act unaudited.
    pub enqueue_timeout: Duration,
    /// How long `flush` waits for the commit (default 60 s).
    pub flush_timeout: Duration,
    /// Longest pause between retries of a failing commit (default 2 s).
    pub max_retry_backoff: Duration,
}

impl Default for AppenderOptions {
    fn default() -> Self {
        AppenderOptions {
            queue_capacity: 65_536,
            max_batch: 4096,
            enqueue_timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(60),
            max_retry_backoff: Duration::from_secs(2),
        }
    }
}

/// Counters of an appender, for metrics and health checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppenderStats {
    /// Events accepted by `append`.
    pub enqueued: u64,
    /// Events committed to the log.
    pub committed: u64,
    /// Batches whose commit failed (they are retried).
    pub failed_commits: u64,
    /// Sequence number of the last committed event.
    pub last_seq: u64,
    /// The last commit error, cleared by the next successful commit.
    pub last_error: Option<String>,
}

enum Msg {
    Event(AuditEvent),
    Flush(Sender<std::result::Result<u64, String>>),
    Shutdown,
}

#[derive(Default)]
struct Shared {
    enqueued: AtomicU64,
    committed: AtomicU64,
    failed: AtomicU64,
    last_seq: AtomicU64,
    last_error: Mutex<Option<String>>,
    stop_requested: AtomicBool,
    stopped: AtomicBool,
}

struct Inner {
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    opts: AppenderOptions,
}

impl Inner {
    fn stop(&self) {
        // The flag reaches a writer that is busy (or stuck retrying a full batch); the message
        // wakes one that is waiting on an empty queue. A blocking send could deadlock on a full
        // queue that a failing writer no longer drains.
        self.shared.stop_requested.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Msg::Shutdown);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A cheap-to-clone handle on the background writer of one [`AuditLog`]. Create one per process
/// and share it. Dropping the last handle (or [`shutdown`](Self::shutdown)) commits what is queued,
/// signs a final checkpoint and joins the writer thread — which blocks, so async code should do it
/// from `spawn_blocking`.
#[derive(Clone)]
pub struct AuditAppender {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuditAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditAppender")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AuditAppender {
    /// Starts the writer thread over `log`.
    ///
    /// # Errors
    /// [`AuditError::InvalidConfig`] for a zero capacity or batch size;
    /// [`AuditError::AppenderUnavailable`] if the thread cannot be spawned.
    pub fn spawn(log: AuditLog, opts: AppenderOptions) -> Result<Self> {
        if opts.queue_capacity == 0 || opts.max_batch == 0 {
            return Err(AuditError::InvalidConfig {
                setting: "appender",
                reason: "queue_capacity and max_batch must be at least 1".into(),
            });
        }
        let (tx, rx) = crossbeam_channel::bounded(opts.queue_capacity);
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("theta-audit-writer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let opts = opts.clone();
                move || Writer::new(log, rx, shared, opts).run()
            })
            .map_err(|e| AuditError::AppenderUnavailable {
                reason: format!("cannot spawn the writer thread: {e}"),
            })?;
        Ok(AuditAppender {
            inner: Arc::new(Inner {
                tx,
                thread: Mutex::new(Some(thread)),
                shared,
                opts,
            }),
        })
    }

    /// Queues `event`; returns as soon as it is queued (not yet durable).
    ///
    /// # Errors
    /// [`AuditError::AppenderUnavailable`] if the writer has stopped or the queue stayed full for
    /// [`AppenderOptions::enqueue_timeout`].
    pub fn append(&self, event: AuditEvent) -> Result<()> {
        match self
            .inner
            .tx
            .send_timeout(Msg::Event(event), self.inner.opts.enqueue_timeout)
        {
            Ok(()) => {
                self.inner.shared.enqueued.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(SendTimeoutError::Timeout(_)) => Err(AuditError::AppenderUnavailable {
                reason: "queue full: the audit log is not keeping up".into(),
            }),
            Err(SendTimeoutError::Disconnected(_)) => Err(AuditError::AppenderUnavailable {
                reason: "writer stopped".into(),
            }),
        }
    }

    /// Waits until every event queued before this call is committed; returns the sequence number
    /// of the last committed event.
    ///
    /// # Errors
    /// [`AuditError::CommitFailed`] if the batch holding them failed to commit (they stay queued
    /// and are retried); [`AuditError::AppenderUnavailable`] if the writer stopped or did not
    /// answer within [`AppenderOptions::flush_timeout`].
    pub fn flush(&self) -> Result<u64> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let unavailable = |reason: &str| AuditError::AppenderUnavailable {
            reason: reason.into(),
        };
        self.inner
            .tx
            .send_timeout(Msg::Flush(tx), self.inner.opts.enqueue_timeout)
            .map_err(|_| unavailable("writer stopped or queue full"))?;
        match rx.recv_timeout(self.inner.opts.flush_timeout) {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(reason)) => Err(AuditError::CommitFailed { reason }),
            Err(_) => Err(unavailable("no commit within the flush timeout")),
        }
    }

    /// Queues `event` and waits until it is committed (see [`flush`](Self::flush)).
    ///
    /// # Errors
    /// As [`append`](Self::append) and [`flush`](Self::flush).
    pub fn append_durable(&self, event: AuditEvent) -> Result<u64> {
        self.append(event)?;
        self.flush()
    }

    /// Current counters.
    pub fn stats(&self) -> AppenderStats {
        let s = &self.inner.shared;
        AppenderStats {
            enqueued: s.enqueued.load(Ordering::Relaxed),
            committed: s.committed.load(Ordering::Relaxed),
            failed_commits: s.failed.load(Ordering::Relaxed),
            last_seq: s.last_seq.load(Ordering::Relaxed),
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// Whether the writer thread is still running.
    pub fn is_running(&self) -> bool {
        !self.inner.shared.stopped.load(Ordering::Relaxed)
    }

    /// Commits what is queued, signs a final checkpoint and stops the writer (for every clone of
    /// this handle). Call it once no other clone appends any more: later appends fail, and an
    /// append racing with the stop may be accepted and then dropped (it is logged).
    ///
    /// # Errors
    /// [`AuditError::CommitFailed`] if queued events could not be stored before stopping.
    pub fn shutdown(self) -> Result<()> {
        self.inner.stop();
        let stats = self.stats();
        if stats.committed < stats.enqueued {
            return Err(AuditError::CommitFailed {
                reason: format!(
                    "{} queued audit events were not stored: {}",
                    stats.enqueued - stats.committed,
                    stats.last_error.unwrap_or_default()
                ),
            });
        }
        Ok(())
    }
}

struct Writer {
    log: AuditLog,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    opts: AppenderOptions,
    pending: Vec<AuditEvent>,
    waiters: Vec<Sender<std::result::Result<u64, String>>>,
    shutdown: bool,
}

/// Attempts to store the queue when stopping while commits fail.
const SHUTDOWN_ATTEMPTS: u32 = 3;

impl Writer {
    fn new(log: AuditLog, rx: Receiver<Msg>, shared: Arc<Shared>, opts: AppenderOptions) -> Self {
        Writer {
            log,
            rx,
            shared,
            pending: Vec::with_capacity(opts.max_batch),
            opts,
            waiters: Vec::new(),
            shutdown: false,
        }
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Event(e) => self.pending.push(e),
            Msg::Flush(w) => self.waiters.push(w),
            Msg::Shutdown => self.shutdown = true,
        }
    }

    fn run(mut self) {
        // Check the hourly checkpoint at least once a minute, so an idle service still signs it.
        let tick = self
            .log
            .options()
            .checkpoint_interval
            .min(Duration::from_secs(60));
        let mut next_tick = Instant::now() + tick;
        let mut backoff: Option<Duration> = None;
        let mut shutdown_attempts = 0;
        loop {
            if self.shared.stop_requested.load(Ordering::SeqCst) {
                self.shutdown = true;
            }
            if !self.shutdown && self.pending.len() >= self.opts.max_batch {
                // A full batch is failing to commit: stop draining the queue, so memory stays
                // bounded and callers feel the back-pressure.
                std::thread::sleep(backoff.unwrap_or_default());
            } else if !self.shutdown {
                let wait = match backoff {
                    Some(b) => b,
                    None if self.pending.is_empty() && self.waiters.is_empty() => {
                        next_tick.saturating_duration_since(Instant::now())
                    }
                    None => Duration::ZERO,
                };
                match self.rx.recv_timeout(wait) {
                    Ok(m) => self.take(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.shutdown = true,
                }
                while self.pending.len() < self.opts.max_batch && !self.shutdown {
                    match self.rx.try_recv() {
                        Ok(m) => self.take(m),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => self.shutdown = true,
                    }
                }
            } else {
                // Stopping: take everything still queued.
                while let Ok(m) = self.rx.try_recv() {
                    self.take(m);
                }
            }

            backoff = self.commit(backoff);
            if Instant::now() >= next_tick {
                if let Err(e) = self.log.checkpoint_if_due() {
                    tracing::warn!(error = %e, "audit: periodic checkpoint failed");
                }
                next_tick = Instant::now() + tick;
            }
            if self.shutdown {
                if backoff.is_some() {
                    shutdown_attempts += 1;
                    if shutdown_attempts < SHUTDOWN_ATTEMPTS {
                        std::thread::sleep(backoff.unwrap_or_default());
                        continue;
                    }
                    tracing::error!(
                        lost = self.pending.len(),
                        "audit: stopping with events that could not be stored"
                    );
                } else if !self.pending.is_empty() {
                    continue;
                }
                if let Err(e) = self.log.checkpoint() {
                    tracing::warn!(error = %e, "audit: final checkpoint failed");
                }
                break;
            }
        }
        // Anything another handle queued after the last drain is lost: say how much.
        let late = self
            .rx
            .try_iter()
            .filter(|m| matches!(m, Msg::Event(_)))
            .count();
        if late > 0 {
            tracing::error!(
                lost = late,
                "audit: events queued during shutdown were not stored"
            );
        }
        self.shared.stopped.store(true, Ordering::Relaxed);
    }

    /// Commits `pending` (if any) and answers the flush waiters; returns the next retry back-off
    /// (`None` after success).
    fn commit(&mut self, backoff: Option<Duration>) -> Option<Duration> {
        if self.pending.is_empty() {
            let seq = self.shared.last_seq.load(Ordering::Relaxed);
            for w in self.waiters.drain(..) {
                let _ = w.send(Ok(seq));
            }
            return None;
        }
        match self.log.append(&self.pending) {
            Ok(r) => {
                self.shared.committed.fetch_add(r.count, Ordering::Relaxed);
                self.shared.last_seq.store(r.last_seq(), Ordering::Relaxed);
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                self.pending.clear();
                for w in self.waiters.drain(..) {
                    let _ = w.send(Ok(r.last_seq()));
                }
                None
            }
            Err(e) => {
                let msg = e.to_string();
                tracing::error!(error = %msg, queued = self.pending.len(), "audit: batch commit failed; retrying");
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(msg.clone());
                for w in self.waiters.drain(..) {
                    let _ = w.send(Err(msg.clone()));
                }
                let next = backoff.map_or(Duration::from_millis(10), |b| b * 2);
                Some(next.min(self.opts.max_retry_backoff))
            }
        }
    }
}
