//! Tamper-evident audit-trail storage (issue 7).
