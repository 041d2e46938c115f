//! Internals for `theta-bench` only (feature `bench`); not a public API.

use super::error::Result;
use super::event::{AuditAction, AuditEvent, ResourceKind};
use super::log::AuditLog;

/// A synthetic but realistic event number `i` (a window read, every few a login or an
/// annotation edit), timestamped `base_ms + i` ms.
pub fn synthetic_event(i: u64, base_ms: i64) -> AuditEvent {
    let ts = base_ms + i64::try_from(i).unwrap_or(i64::MAX - base_ms);
    let account = format!("acc-{}", i % 97);
    let recording = format!("rec-{:06}", i % 5003);
    let b = match i % 10 {
        0 => AuditEvent::builder(AuditAction::LoginSuccess),
        1 => AuditEvent::builder(AuditAction::AnnotationUpdate)
            .recording(&recording)
            .resource(ResourceKind::Annotation, &format!("ann-{i}")),
        _ => AuditEvent::builder(AuditAction::RecordingReadWindow).recording(&recording),
    };
    b.at_ms(ts)
        .actor_account(&account)
        .session(&format!("s-{}", i % 1009))
        .client_addr(std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]))
        .user_agent("Mozilla/5.0 (X11; Linux x86_64) theta-viewer/1.0")
        .tenant(&format!("chu-{}", i % 7))
        .build()
        .expect("synthetic events are valid")
}

/// Appends `n` synthetic events in transactions of `batch` with `synchronous = OFF` (no fsync):
/// a fast way to build a large log for the `verify` benchmark. Never use on a real log.
///
/// # Errors
/// Database errors.
///
/// # Panics
/// If `batch` is 0.
pub fn bulk_load(log: &mut AuditLog, n: u64, batch: usize, base_ms: i64) -> Result<()> {
    assert!(batch > 0, "batch must be positive");
    log.connection().pragma_update(None, "synchronous", "OFF")?;
    let mut i = 0;
    let mut events = Vec::with_capacity(batch);
    while i < n {
        events.clear();
        while events.len() < batch && i < n {
            events.push(synthetic_event(i, base_ms));
            i += 1;
        }
        log.append(&events)?;
    }
    log.connection()
        .pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}
