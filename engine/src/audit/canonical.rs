//! The canonical byte encodings that the hash chain and the signatures cover (see `FORMAT.md`).
//!
//! The encoder takes raw bytes rather than an [`AuditEvent`], because the verifier must hash what
//! is *stored*, including values a tamperer made invalid (wrong code, non-UTF-8, wrong length).
//! Every variable field is length-prefixed, so no escaping is needed and no two distinct records
//! share an encoding (the property tests decode it back).

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::event::AuditEvent;

/// A SHA-256 digest.
pub(crate) type Hash = [u8; 32];

/// First bytes of an event's canonical encoding (domain separation from checkpoints).
pub(crate) const EVENT_MAGIC: &[u8; 8] = b"THETAAEV";
/// First bytes of a checkpoint's signed message.
pub(crate) const CHECKPOINT_MAGIC: &[u8; 8] = b"THETAACP";
/// First bytes of the genesis value that the first event's `prev_hash` holds.
pub(crate) const GENESIS_MAGIC: &[u8; 8] = b"THETAAGN";
/// Version of the event encoding written by this build (stored per row in column `v`).
pub(crate) const EVENT_VERSION: u8 = 1;
/// Version of the checkpoint message encoding.
pub(crate) const CHECKPOINT_VERSION: u8 = 1;

/// Number of variable fields, in canonical order.
pub(crate) const FIELD_COUNT: usize = 12;

/// The variable fields in canonical order; these are also the column names in `events`.
#[cfg(test)]
pub(crate) const FIELD_NAMES: [&str; FIELD_COUNT] = [
    "action",
    "outcome",
    "actor_kind",
    "actor",
    "session",
    "client_addr",
    "user_agent",
    "tenant",
    "recording",
    "resource_kind",
    "resource_id",
    "reason",
];

/// Raw values of the variable fields; `None` is an absent (SQL `NULL`) field.
pub(crate) type FieldBytes<'a> = [Option<&'a [u8]>; FIELD_COUNT];

/// The client address as stored: 4 octets for IPv4, 16 for IPv6.
pub(crate) fn addr_octets(addr: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match addr {
        IpAddr::V4(a) => {
            buf[..4].copy_from_slice(&a.octets());
            &buf[..4]
        }
        IpAddr::V6(a) => {
            *buf = a.octets();
            &buf[..]
        }
    }
}

/// The address back from its octets (`None` for any other length).
pub(crate) fn addr_from_octets(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// The field values of a built event, borrowing from it (`addr_buf` holds the address octets).
pub(crate) fn event_fields<'a>(ev: &'a AuditEvent, addr_buf: &'a mut [u8; 16]) -> FieldBytes<'a> {
    let addr = ev.origin.client_addr.map(|a| addr_octets(a, addr_buf));
    [
        Some(ev.action.code().as_bytes()),
        Some(ev.outcome.code().as_bytes()),
        Some(ev.actor.kind().code().as_bytes()),
        ev.actor.value().map(str::as_bytes),
        ev.session.as_ref().map(|s| s.as_str().as_bytes()),
        addr,
        ev.origin.user_agent.as_ref().map(|u| u.as_str().as_bytes()),
        ev.tenant.as_ref().map(|s| s.as_str().as_bytes()),
        ev.recording.as_ref().map(|s| s.as_str().as_bytes()),
        ev.resource.as_ref().map(|r| r.kind.code().as_bytes()),
        ev.resource.as_ref().map(|r| r.id.as_str().as_bytes()),
        ev.reason.map(|r| r.code().as_bytes()),
    ]
}

/// Appends the canonical encoding of one event to `out`.
///
/// Layout (all integers big-endian): magic (8) · version u8 · seq u64 · ts_ms i64 · prev_hash (32)
/// · for each of the 12 fields in `FIELD_NAMES` order: `0x00` if absent, else `0x01`, length
/// u32, bytes.
pub(crate) fn encode_event(
    out: &mut Vec<u8>,
    version: u8,
    seq: u64,
    ts_ms: i64,
    prev: &Hash,
    fields: &FieldBytes<'_>,
) {
    out.extend_from_slice(EVENT_MAGIC);
    out.push(version);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts_ms.to_be_bytes());
    out.extend_from_slice(prev);
    for f in fields {
        match f {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                // A stored field longer than 4 GiB cannot come from SQLite (its limit is 1 GB).
                let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// The value the first event's `prev_hash` holds: SHA-256 of `"THETAAGN" · 0x01 · log_id`.
pub(crate) fn genesis_hash(log_id: &[u8; 16]) -> Hash {
    let mut b = Vec::with_capacity(25);
    b.extend_from_slice(GENESIS_MAGIC);
    b.push(EVENT_VERSION);
    b.extend_from_slice(log_id);
    sha256(&b)
}

/// What a signed record is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum CheckpointKind {
    /// Written every N events and every hour.
    Periodic = 1,
    /// Left by a purge: covers the last purged event, from which the remaining chain starts.
    Anchor = 2,
    /// The rolling signature of the chain head, rewritten with every batch.
    Seal = 3,
}

impl CheckpointKind {
    /// The stored code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind with this stored code.
    pub fn try_from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(CheckpointKind::Periodic),
            2 => Some(CheckpointKind::Anchor),
            3 => Some(CheckpointKind::Seal),
            _ => None,
        }
    }
}

/// The message an Ed25519 checkpoint signature covers.
///
/// Layout: magic `THETAACP` (8) · version u8 · kind u8 · log_id (16) · environment length u8 ·
/// environment bytes · seq u64 BE · hash (32) · time_ms i64 BE.
pub(crate) fn checkpoint_message(
    kind: CheckpointKind,
    log_id: &[u8; 16],
    environment: &str,
    seq: u64,
    hash: &Hash,
    time_ms: i64,
) -> Vec<u8> {
    let env = environment.as_bytes();
    let mut m = Vec::with_capacity(8 + 2 + 16 + 1 + env.len() + 8 + 32 + 8);
    m.extend_from_slice(CHECKPOINT_MAGIC);
    m.push(CHECKPOINT_VERSION);
    m.push(kind.code());
    m.extend_from_slice(log_id);
    // Environment tags are at most 32 bytes (validated by `Environment`); a longer stored value
    // (tampered metadata) is cut here, which only makes its signatures fail.
    let env = &env[..env.len().min(255)];
    m.push(env.len() as u8);
    m.extend_from_slice(env);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&time_ms.to_be_bytes());
    m
}

/// An event decoded from its canonical bytes (tests: proves the encoding unambiguous).
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodedEvent {
    pub(crate) version: u8,
    pub(crate) seq: u64,
    pub(crate) ts_ms: i64,
    pub(crate) prev: Hash,
    pub(crate) fields: [Option<Vec<u8>>; FIELD_COUNT],
}

/// Why a byte string is not a canonical event encoding.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    BadMagic,
    Truncated { offset: usize },
    BadPresence { offset: usize },
    TrailingBytes { offset: usize },
}

/// Decodes a canonical event encoding; never panics, never allocates more than the input holds.
#[cfg(test)]
pub(crate) fn decode_event(bytes: &[u8]) -> Result<DecodedEvent, DecodeError> {
    struct Cur<'a> {
        b: &'a [u8],
        pos: usize,
    }
    impl<'a> Cur<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
            let end = self
                .pos
                .checked_add(n)
                .filter(|&e| e <= self.b.len())
                .ok_or(DecodeError::Truncated { offset: self.pos })?;
            let s = &self.b[self.pos..end];
            self.pos = end;
            Ok(s)
        }
        fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
            let s = self.take(N)?;
            let mut a = [0u8; N];
            a.copy_from_slice(s);
            Ok(a)
        }
    }
    let mut c = Cur { b: bytes, pos: 0 };
    if c.take(8).map_err(|_| DecodeError::BadMagic)? != EVENT_MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let [version] = c.array::<1>()?;
    let seq = u64::from_be_bytes(c.array()?);
    let ts_ms = i64::from_be_bytes(c.array()?);
    let prev = c.array::<32>()?;
    let mut fields: [Option<Vec<u8>>; FIELD_COUNT] = Default::default();
    for f in &mut fields {
        let at = c.pos;
        match c.array::<1>()? {
            [0] => {}
            [1] => {
                let len = u32::from_be_bytes(c.array()?) as usize;
                *f = Some(c.take(len)?.to_vec());
            }
            _ => return Err(DecodeError::BadPresence { offset: at }),
        }
    }
    if c.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes { offset: c.pos });
    }
    Ok(DecodedEvent {
        version,
        seq,
        ts_ms,
        prev,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{AuditAction, AuditEvent, ResourceKind};
    use proptest::prelude::*;

    /// A frozen example, also printed in FORMAT.md: changing the encoding breaks every stored
    /// chain, so this test must never be "updated" without a new format version.
    #[test]
    fn golden_encoding_and_hash() {
        let ev = AuditEvent::builder(AuditAction::RecordingReadWindow)
            .at_ms(1_767_225_600_123)
            .actor_account("acc-42")
            .session("s-7")
            .client_addr("192.0.2.10".parse().unwrap())
            .user_agent("theta-viewer/1.0")
            .tenant("chu-a")
            .recording("rec-0001")
            .build()
            .unwrap();
        let mut buf = [0u8; 16];
        let fields = event_fields(&ev, &mut buf);
        let mut out = Vec::new();
        encode_event(&mut out, EVENT_VERSION, 1, ev.ts_ms, &[0u8; 32], &fields);
        assert_eq!(
            hex::encode(&out),
            concat!(
                "5448455441414556", // THETAAEV
                "01",               // version
                "0000000000000001", // seq 1
                "0000019b76daa87b", // ts 1767225600123 (2026-01-01T00:00:00.123Z)
                "0000000000000000000000000000000000000000000000000000000000000000",
                "0100000015",
                "7265636f7264696e672e726561645f77696e646f77", // action
                "0100000007",
                "73756363657373", // outcome
                "0100000007",
                "6163636f756e74", // actor_kind
                "0100000006",
                "6163632d3432", // actor
                "0100000003",
                "732d37", // session
                "0100000004",
                "c000020a", // client_addr
                "0100000010",
                "74686574612d7669657765722f312e30", // user_agent
                "0100000005",
                "6368752d61", // tenant
                "0100000008",
                "7265632d30303031", // recording
                "00",
                "00",
                "00", // resource, reason
            )
        );
        assert_eq!(
            hex::encode(sha256(&out)),
            "59648120b9ca4dabaf4e91636470274163351b2f0d363612044320b73f0a7ce9"
        );
    }

    fn arb_field() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))
    }

    fn arb_fields() -> impl Strategy<Value = [Option<Vec<u8>>; FIELD_COUNT]> {
        proptest::collection::vec(arb_field(), FIELD_COUNT)
            .prop_map(|v| <[Option<Vec<u8>>; FIELD_COUNT]>::try_from(v).unwrap())
    }

    fn encode_owned(
        seq: u64,
        ts: i64,
        prev: &Hash,
        fields: &[Option<Vec<u8>>; FIELD_COUNT],
    ) -> Vec<u8> {
        let refs: FieldBytes<'_> = std::array::from_fn(|i| fields[i].as_deref());
        let mut out = Vec::new();
        encode_event(&mut out, EVENT_VERSION, seq, ts, prev, &refs);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Decoding gives back exactly what was encoded, so the encoding is injective: two
        /// records with the same encoding are the same record.
        #[test]
        fn encoding_round_trips(seq in any::<u64>(), ts in any::<i64>(), prev in any::<[u8; 32]>(), fields in arb_fields()) {
            let bytes = encode_owned(seq, ts, &prev, &fields);
            let d = decode_event(&bytes).unwrap();
            prop_assert_eq!(d, DecodedEvent { version: EVENT_VERSION, seq, ts_ms: ts, prev, fields });
        }

        /// Moving bytes between adjacent fields (the classic ambiguity of concatenation) changes
        /// the encoding; an absent field differs from an empty one.
        #[test]
        fn no_field_boundary_ambiguity(a in arb_fields(), b in arb_fields()) {
            prop_assume!(a != b);
            prop_assert_ne!(encode_owned(1, 2, &[0; 32], &a), encode_owned(1, 2, &[0; 32], &b));
        }

        /// Hostile bytes never panic the decoder, and any strict prefix of a valid encoding is
        /// rejected.
        #[test]
        fn decoder_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300), fields in arb_fields()) {
            let _ = decode_event(&bytes);
            let valid = encode_owned(3, 4, &[7; 32], &fields);
            for cut in [0, 1, valid.len() / 2, valid.len() - 1] {
                prop_assert!(decode_event(&valid[..cut]).is_err());
            }
        }
    }

    #[test]
    fn absent_and_empty_differ() {
        let mut a: [Option<Vec<u8>>; FIELD_COUNT] = Default::default();
        let mut b = a.clone();
        a[4] = None;
        b[4] = Some(Vec::new());
        assert_ne!(
            encode_owned(1, 1, &[0; 32], &a),
            encode_owned(1, 1, &[0; 32], &b)
        );
        let _ = ResourceKind::Annotation;
    }

    #[test]
    fn checkpoint_message_layout() {
        let m = checkpoint_message(
            CheckpointKind::Anchor,
            &[0xAB; 16],
            "prod",
            1000,
            &[0x11; 32],
            5,
        );
        assert_eq!(&m[..8], CHECKPOINT_MAGIC);
        assert_eq!(m[8], 1);
        assert_eq!(m[9], 2);
        assert_eq!(&m[10..26], &[0xAB; 16]);
        assert_eq!(m[26], 4);
        assert_eq!(&m[27..31], b"prod");
        assert_eq!(&m[31..39], &1000u64.to_be_bytes());
        assert_eq!(m.len(), 8 + 1 + 1 + 16 + 1 + 4 + 8 + 32 + 8);
    }
}
