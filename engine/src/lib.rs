//! Theta's storage engine: EDF/EDF+/BDF reading and writing, the encrypted chunk store, ingest,
//! window and overview reads, annotations and audit-trail storage.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod crypto;
pub mod edf;
pub mod store;
