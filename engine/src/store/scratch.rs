//! Per-thread codec state and buffers, reused from one chunk to the next.
//!
//! `theta_codecs::encode` builds a fresh [`Encoder`] per call: a new zstd context, a new LPC
//! window (cosines) and new scratch vectors for every chunk. Measured on the 24 h ingest
//! benchmark that set-up was about a fifth of all CPU time, so ingest and reads keep one
//! encoder, one decoder and one decryption buffer per worker thread instead.

use std::cell::RefCell;

use theta_codecs::{CodecError, Decoder, Encoder, SampleWidth};

thread_local! {
    static ENCODER: RefCell<Encoder> = RefCell::new(Encoder::default());
    static DECODER: RefCell<Decoder> = RefCell::new(Decoder::new());
    static OPEN_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest decryption buffer kept between calls; a larger one is dropped after use so an
/// odd huge chunk does not pin memory on every thread.
const KEEP_OPEN_BUF_BYTES: usize = 4 << 20;

/// Encodes with this thread's encoder (same output as `theta_codecs::encode`).
pub(crate) fn encode(
    samples: &[i32],
    width: SampleWidth,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    ENCODER.with(|e| match e.try_borrow_mut() {
        Ok(mut enc) => enc.encode(samples, width, out),
        // Re-entered from inside an encode on this thread (cannot happen today): use a
        // fresh encoder rather than fail.
        Err(_) => theta_codecs::encode(samples, width, out),
    })
}

/// Decodes with this thread's decoder (same result as `theta_codecs::decode_into`).
pub(crate) fn decode_into(encoded: &[u8], out: &mut [i32]) -> Result<usize, CodecError> {
    DECODER.with(|d| match d.try_borrow_mut() {
        Ok(mut dec) => dec.decode_into(encoded, out),
        Err(_) => theta_codecs::decode_into(encoded, out),
    })
}

/// Runs `f` on a copy of `sealed` in this thread's reusable buffer (sealed chunks are
/// decrypted in place, and the fetched bytes are shared, so they cannot be opened where
/// they lie).
pub(crate) fn with_copy<T>(sealed: &[u8], f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    OPEN_BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            buf.extend_from_slice(sealed);
            let out = f(&mut buf);
            // Plaintext must not linger in a buffer that outlives the call.
            zeroize::Zeroize::zeroize(&mut buf[..]);
            buf.clear();
            if buf.capacity() > KEEP_OPEN_BUF_BYTES {
                *buf = Vec::new();
            }
            out
        }
        Err(_) => f(&mut sealed.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_state_gives_the_same_bytes_as_fresh_state() {
        // Blocks of different lengths and shapes through the same thread's encoder: the
        // cached LPC window and zstd context must not leak from one block into the next.
        let blocks: Vec<Vec<i32>> = vec![
            (0..2560).map(|i| ((i * 37) % 2001) - 1000).collect(),
            (0..100).map(|i| i * 3).collect(),
            vec![7; 2560],
            (0..2560)
                .map(|i| (f64::from(i) * 0.05).sin().mul_add(3000.0, 0.0) as i32)
                .collect(),
            Vec::new(),
        ];
        for _ in 0..2 {
            for b in &blocks {
                let mut fresh = Vec::new();
                theta_codecs::encode(b, SampleWidth::Bits16, &mut fresh).unwrap();
                let mut reused = Vec::new();
                encode(b, SampleWidth::Bits16, &mut reused).unwrap();
                assert_eq!(fresh, reused);
                let mut back = vec![0; b.len()];
                assert_eq!(decode_into(&reused, &mut back).unwrap(), b.len());
                assert_eq!(&back, b);
            }
        }
    }

    #[test]
    fn copy_buffer_is_wiped_and_bounded() {
        let small = vec![5u8; 1000];
        let n = with_copy(&small, |b| {
            b[0] = 9;
            b.len()
        });
        assert_eq!(n, 1000);
        OPEN_BUF.with_borrow(|b| {
            assert!(b.is_empty());
            assert!(b.capacity() >= 1000);
        });
        let big = vec![1u8; KEEP_OPEN_BUF_BYTES + 1];
        with_copy(&big, |b| assert_eq!(b.len(), big.len()));
        OPEN_BUF.with_borrow(|b| assert_eq!(b.capacity(), 0));
    }
}
