//! Byte and bit plumbing shared by every mode: LEB128 varints, zig-zag, an LSB-first bit writer,
//! a checked bit reader for small packed fields, and the fast fixed-width unpacker.
//!
//! Conventions (FORMAT.md §1): bit streams are LSB-first — a value of `b` bits written at bit
//! position `p` occupies bits `p..p+b` counted from bit 0 of byte 0 upwards, little-endian across
//! bytes — and every stream ends on a byte boundary with zero padding bits, which readers check so
//! that each block has exactly one encoding.

use crate::error::{CodecError, Result};

/// Maps a signed residual to an unsigned one, small magnitudes first: 0, -1, 1, -2 → 0, 1, 2, 3.
#[inline(always)]
pub(crate) fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Inverse of [`zigzag`].
#[inline(always)]
pub(crate) fn unzigzag(u: u32) -> i32 {
    ((u >> 1) as i32) ^ -((u & 1) as i32)
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zig-zag mapped, as a varint.
pub(crate) fn put_zz_varint(out: &mut Vec<u8>, v: i32) {
    put_varint(out, zigzag(v));
}

/// Number of bits needed to hold `v` (0 for 0).
#[inline(always)]
pub(crate) fn bit_len(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// A reader over a block's bytes that reports the absolute offset of whatever fails.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` within the block, for error messages.
    base: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Absolute offset of the next unread byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| CodecError::truncated(what, self.offset()))?;
        self.pos += 1;
        Ok(b)
    }

    /// A canonical LEB128 varint of at most 5 bytes holding a `u32`.
    pub(crate) fn varint(&mut self, what: &str) -> Result<u32> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..5 {
            let b = self.u8(what)?;
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                // A zero last byte after the first is an over-long encoding of a shorter value.
                if (i > 0 && b == 0) || v > u64::from(u32::MAX) {
                    return Err(CodecError::corrupt(what, start));
                }
                return Ok(v as u32);
            }
        }
        Err(CodecError::corrupt(what, start))
    }

    pub(crate) fn zz_varint(&mut self, what: &str) -> Result<i32> {
        self.varint(what).map(unzigzag)
    }

    /// The next `len` bytes.
    pub(crate) fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        if self.remaining() < len {
            return Err(CodecError::truncated(what, self.offset()));
        }
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    /// The bytes holding `bits` bits, rounded up to whole bytes, as a sub-cursor.
    pub(crate) fn take_bits(&mut self, bits: u64, what: &str) -> Result<Cursor<'a>> {
        let base = self.offset();
        let len = usize::try_from(bits.div_ceil(8)).map_err(|_| CodecError::corrupt(what, base))?;
        Ok(Cursor::new(self.take(len, what)?, base))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> Cursor<'a> {
        let base = self.offset();
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        Cursor::new(s, base)
    }

    pub(crate) fn bytes(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails with `Corrupt` unless every byte was consumed.
    pub(crate) fn expect_end(&self, what: &str) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(CodecError::corrupt(what, self.offset()))
        }
    }
}

/// LSB-first bit writer appending to a byte vector.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, acc: 0, n: 0 }
    }

    /// Writes the low `bits` bits of `v` (`bits` ≤ 32; higher bits of `v` must be zero).
    #[inline(always)]
    pub(crate) fn write(&mut self, v: u32, bits: u32) {
        debug_assert!(bits <= 32 && (bits == 32 || v >> bits == 0));
        self.acc |= u64::from(v) << self.n;
        self.n += bits;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Writes `q` zero bits then a one bit.
    #[inline(always)]
    pub(crate) fn write_unary(&mut self, mut q: u32) {
        while q >= 32 {
            self.write(0, 32);
            q -= 32;
        }
        // q < 32 so q + 1 ≤ 32 bits.
        self.write(1 << q, q + 1);
    }

    /// Pads with zero bits to a byte boundary.
    pub(crate) fn finish(mut self) {
        while self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
    }
}

/// Bits needed to write `count` values of `bits` bits, as whole bytes.
pub(crate) fn packed_bytes(count: usize, bits: u32) -> usize {
    (count as u64 * u64::from(bits)).div_ceil(8) as usize
}

/// A checked LSB-first reader for small packed fields.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
    base: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(c: &Cursor<'a>) -> Self {
        Self {
            bytes: c.bytes(),
            pos: 0,
            base: c.offset(),
        }
    }

    /// Reads `bits` (≤ 32) bits.
    pub(crate) fn read(&mut self, bits: u32, what: &str) -> Result<u32> {
        if bits == 0 {
            return Ok(0);
        }
        let end = self.pos + u64::from(bits);
        if end > self.bytes.len() as u64 * 8 {
            return Err(CodecError::truncated(what, self.base + self.bytes.len()));
        }
        let v = read_bits(self.bytes, self.pos, bits);
        self.pos = end;
        Ok(v)
    }

    /// Reads a Rice code with parameter `k`: `q` zeros, a one, then `k` low bits. `q` above
    /// `max_q` is reported as corrupt (it bounds the work a hostile stream can cause).
    #[inline]
    pub(crate) fn read_rice(&mut self, k: u32, max_q: u32, what: &str) -> Result<u32> {
        // Fast path: the whole code lies in one 64-bit window inside the bytes.
        let at = (self.pos / 8) as usize;
        if let Some(b) = self.bytes.get(at..at + 8) {
            let skip = self.pos % 8;
            let w = u64::from_le_bytes(b.try_into().expect("8 bytes")) >> skip;
            let zeros = u64::from(w.trailing_zeros());
            if zeros + 1 + u64::from(k) <= 64 - skip && zeros <= u64::from(max_q) {
                let low = ((w >> zeros) >> 1) & ((1u64 << k) - 1);
                self.pos += zeros + 1 + u64::from(k);
                return Ok(((zeros as u32) << k) | low as u32);
            }
        }
        self.read_rice_slow(k, max_q, what)
    }

    /// `count` Rice codes with `k = 0` (plain unary) at once, by the vector unary scan, into
    /// `qs[..count]`; `false`, with nothing consumed, unless all of them are there, start on a
    /// byte boundary and are at most `max_q`. Then [`BitReader::read_rice`] one code at a time
    /// gives the same values, and is how the caller finds the error.
    pub(crate) fn read_unaries(
        &mut self,
        isa: crate::dispatch::Isa,
        max_q: u32,
        count: usize,
        qs: &mut Vec<u32>,
    ) -> bool {
        if !self.pos.is_multiple_of(8) {
            return false;
        }
        let at = (self.pos / 8) as usize;
        let rest = &self.bytes[at.min(self.bytes.len())..];
        let rest = &rest[..rest.len().min(crate::rice::MAX_UNARY_BYTES)];
        match crate::dispatch::unary_codes(isa, rest, count, qs) {
            Some(end) if qs[..count].iter().all(|&q| q <= max_q) => {
                self.pos += end;
                true
            }
            _ => false,
        }
    }

    /// [`BitReader::read_rice`] for codes that cross a window, the end of the bytes, or `max_q`.
    #[inline(never)]
    fn read_rice_slow(&mut self, k: u32, max_q: u32, what: &str) -> Result<u32> {
        // The unary part up to 57 bits at a time: the zeros below the first one of a window.
        let total = self.bytes.len() as u64 * 8;
        let start = self.pos;
        loop {
            if self.pos >= total {
                return Err(CodecError::truncated(what, self.base + self.bytes.len()));
            }
            let w = load_u64_padded(self.bytes, (self.pos / 8) as usize) >> (self.pos % 8);
            let avail = (64 - self.pos % 8).min(total - self.pos);
            let zeros = u64::from(w.trailing_zeros()).min(avail);
            if self.pos - start + zeros > u64::from(max_q) {
                // Where the bit-by-bit reading stops: right after zero number `max_q + 1`.
                let at = start + u64::from(max_q) + 1;
                return Err(CodecError::corrupt(what, self.base + (at / 8) as usize));
            }
            if zeros < avail {
                self.pos += zeros + 1;
                break;
            }
            self.pos += avail;
        }
        let q = (self.pos - start - 1) as u32;
        let low = self.read(k, what)?;
        Ok((q << k) | low)
    }

    /// Checks that only zero padding remains in the current byte and that no byte is left over.
    pub(crate) fn finish(self, what: &str) -> Result<()> {
        let used = self.pos.div_ceil(8) as usize;
        if used != self.bytes.len() {
            return Err(CodecError::corrupt(what, self.base + used));
        }
        if !self.pos.is_multiple_of(8) {
            let last = self.bytes[used - 1];
            if last >> (self.pos % 8) != 0 {
                return Err(CodecError::corrupt(what, self.base + used - 1));
            }
        }
        Ok(())
    }
}

impl BitReader<'_> {
    /// Like [`BitReader::finish`], but for a field of unknown length at the start of its bytes:
    /// checks the padding of the last byte used and returns how many bytes were used.
    pub(crate) fn finish_len(self, what: &str) -> Result<usize> {
        let used = self.pos.div_ceil(8) as usize;
        if !self.pos.is_multiple_of(8) && self.bytes[used - 1] >> (self.pos % 8) != 0 {
            return Err(CodecError::corrupt(what, self.base + used - 1));
        }
        Ok(used)
    }
}

/// Reads `bits` (1..=32) bits at bit position `pos`; the caller has checked that they exist.
#[inline(always)]
pub(crate) fn read_bits(bytes: &[u8], pos: u64, bits: u32) -> u32 {
    let byte = (pos / 8) as usize;
    let shift = (pos % 8) as u32;
    let word = load_u64_padded(bytes, byte);
    ((word >> shift) & mask64(bits)) as u32
}

#[inline(always)]
fn mask64(bits: u32) -> u64 {
    if bits >= 64 { !0 } else { (1u64 << bits) - 1 }
}

/// Eight bytes from `at`, zero-filled past the end of `bytes`.
#[inline(always)]
pub(crate) fn load_u64_padded(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(s) => u64::from_le_bytes(s.try_into().expect("slice of 8 bytes")),
        None => {
            let mut b = [0u8; 8];
            if at < bytes.len() {
                let tail = &bytes[at..];
                b[..tail.len()].copy_from_slice(tail);
            }
            u64::from_le_bytes(b)
        }
    }
}

/// Unpacks `out.len()` values of `bits` (0..=32) bits starting at bit `pos` of `bytes`.
///
/// The caller has checked that `bytes` holds them. Eight values of `bits` bits span exactly
/// `bits` bytes, so each group of eight starts on a byte boundary relative to `pos`; within a
/// group every value is one unaligned 8-byte load, a shift and a mask (`bits` ≤ 32 and the shift
/// is < 8, so one load always covers the value).
#[inline(always)]
pub(crate) fn unpack(bytes: &[u8], pos: u64, bits: u32, out: &mut [u32]) {
    if bits == 0 {
        out.fill(0);
        return;
    }
    let mask = mask64(bits);
    let mut byte0 = (pos / 8) as usize;
    let shift0 = (pos % 8) as u32;
    let group_bytes = bits as usize;
    let mut chunks = out.chunks_exact_mut(8);
    // Fast path: whole groups whose loads stay inside `bytes` (the last byte read by value 7 of
    // a group is at most byte0 + bits + 8).
    for group in &mut chunks {
        if byte0 + group_bytes + 16 <= bytes.len() {
            let window = &bytes[byte0..byte0 + group_bytes + 16];
            for (j, o) in group.iter_mut().enumerate() {
                let bit = shift0 + j as u32 * bits;
                let at = (bit / 8) as usize;
                let w = u64::from_le_bytes(window[at..at + 8].try_into().expect("8 bytes"));
                *o = ((w >> (bit % 8)) & mask) as u32;
            }
        } else {
            for (j, o) in group.iter_mut().enumerate() {
                let bit = shift0 as u64 + u64::from(j as u32 * bits);
                *o = ((load_u64_padded(bytes, byte0 + (bit / 8) as usize) >> (bit % 8)) & mask)
                    as u32;
            }
        }
        byte0 += group_bytes;
    }
    for (j, o) in chunks.into_remainder().iter_mut().enumerate() {
        let bit = shift0 as u64 + u64::from(j as u32 * bits);
        *o = ((load_u64_padded(bytes, byte0 + (bit / 8) as usize) >> (bit % 8)) & mask) as u32;
    }
}

/// Checks that the bits after `end_bit` in the last byte of `bytes` are zero and that `bytes`
/// has no byte beyond the one holding `end_bit - 1`.
pub(crate) fn check_padding(bytes: &[u8], end_bit: u64, base: usize, what: &str) -> Result<()> {
    let used = end_bit.div_ceil(8) as usize;
    if used != bytes.len() {
        return Err(CodecError::corrupt(what, base + used.min(bytes.len())));
    }
    if !end_bit.is_multiple_of(8) && bytes[used - 1] >> (end_bit % 8) != 0 {
        return Err(CodecError::corrupt(what, base + used - 1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_extremes() {
        for v in [0, -1, 1, i32::MIN, i32::MAX, -(1 << 23), (1 << 23) - 1] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn varint_round_trip_and_rejects_overlong() {
        for v in [0, 1, 127, 128, 300, u32::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut c = Cursor::new(&b, 0);
            assert_eq!(c.varint("v").unwrap(), v);
            assert_eq!(c.remaining(), 0);
        }
        let overlong = [0x81, 0x00];
        assert_eq!(
            Cursor::new(&overlong, 0).varint("v").unwrap_err().kind,
            crate::ErrorKind::Corrupt
        );
        let cut = [0x81];
        assert_eq!(
            Cursor::new(&cut, 0).varint("v").unwrap_err().kind,
            crate::ErrorKind::Truncated
        );
        let too_big = [0xFF, 0xFF, 0xFF, 0xFF, 0x1F];
        assert_eq!(
            Cursor::new(&too_big, 0).varint("v").unwrap_err().kind,
            crate::ErrorKind::Corrupt
        );
    }

    #[test]
    fn writer_and_unpack_agree_for_every_width() {
        for bits in 0..=32u32 {
            let vals: Vec<u32> = (0..77u32)
                .map(|i| {
                    let v = i.wrapping_mul(2_654_435_761);
                    if bits == 32 { v } else { v & ((1 << bits) - 1) }
                })
                .collect();
            let mut b = vec![0xAB]; // a leading byte, so `pos` is not zero
            let mut w = BitWriter::new(&mut b);
            w.write(0b101, 3);
            for &v in &vals {
                w.write(v, bits);
            }
            w.finish();
            let mut got = vec![0; vals.len()];
            unpack(&b, 8 + 3, bits, &mut got);
            assert_eq!(got, vals, "bits {bits}");
        }
    }

    #[test]
    fn unary_and_rice_round_trip() {
        let mut b = Vec::new();
        let mut w = BitWriter::new(&mut b);
        for q in [0u32, 1, 31, 32, 33, 70] {
            w.write_unary(q);
            w.write(5, 3);
        }
        w.finish();
        let c = Cursor::new(&b, 0);
        let mut r = BitReader::new(&c);
        for q in [0u32, 1, 31, 32, 33, 70] {
            assert_eq!(r.read_rice(3, 100, "t").unwrap(), (q << 3) | 5);
        }
        r.finish("t").unwrap();
    }

    /// The Rice reader as the format states it, one bit at a time.
    fn read_rice_bitwise(r: &mut BitReader<'_>, k: u32, max_q: u32) -> Result<u32> {
        let mut q = 0u32;
        loop {
            if r.pos >= r.bytes.len() as u64 * 8 {
                return Err(CodecError::truncated("t", r.base + r.bytes.len()));
            }
            let bit = (r.bytes[(r.pos / 8) as usize] >> (r.pos % 8)) & 1;
            r.pos += 1;
            if bit == 1 {
                break;
            }
            q += 1;
            if q > max_q {
                return Err(CodecError::corrupt("t", r.base + (r.pos / 8) as usize));
            }
        }
        let low = r.read(k, "t")?;
        Ok((q << k) | low)
    }

    proptest::proptest! {
        /// The word-at-a-time Rice reader gives the bit-by-bit reader's values, errors and
        /// error offsets on any bytes (sparse ones make long unary runs).
        #[test]
        fn rice_reads_match_the_bitwise_reference(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![6 => proptest::strategy::Just(0u8), 4 => proptest::arbitrary::any::<u8>()],
                0..40,
            ),
            k in 0u32..=24,
            max_q in 0u32..200,
        ) {
            let c = Cursor::new(&bytes, 7);
            let (mut fast, mut slow) = (BitReader::new(&c), BitReader::new(&c));
            loop {
                let a = fast.read_rice(k, max_q, "t");
                let b = read_rice_bitwise(&mut slow, k, max_q);
                proptest::prop_assert_eq!(&a, &b);
                if a.is_err() {
                    break;
                }
                proptest::prop_assert_eq!(fast.pos, slow.pos);
            }
        }

        /// Unary codes read all at once (every scan path) are exactly the codes read one at a
        /// time, and are read at once whenever one at a time would read them all without error.
        #[test]
        fn unary_runs_match_single_reads(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => proptest::strategy::Just(0u8),
                    4 => proptest::arbitrary::any::<u8>(),
                    2 => proptest::strategy::Just(0xffu8),
                ],
                0..200,
            ),
            count in 0usize..400,
            max_q in proptest::prop_oneof![0u32..10, 0u32..300, proptest::strategy::Just(u32::MAX)],
        ) {
            let c = Cursor::new(&bytes, 3);
            let mut single = BitReader::new(&c);
            let want: Result<Vec<u32>> =
                (0..count).map(|_| single.read_rice(0, max_q, "t")).collect();
            for isa in [
                crate::dispatch::Isa::detect(),
                crate::dispatch::Isa::detect().without_avx512(),
                crate::dispatch::Isa::baseline(),
            ] {
                let mut run = BitReader::new(&c);
                let mut qs = Vec::new();
                let read = run.read_unaries(isa, max_q, count, &mut qs);
                match &want {
                    Ok(w) => {
                        proptest::prop_assert!(read, "{:?}", isa);
                        proptest::prop_assert_eq!(&qs[..count], &w[..]);
                        proptest::prop_assert_eq!(run.pos, single.pos);
                    }
                    Err(_) => {
                        proptest::prop_assert!(!read, "{:?}", isa);
                        proptest::prop_assert_eq!(run.pos, 0);
                    }
                }
            }
        }
    }
}
