//! Crate-level tests: round trips, hostile input, golden files of every format version.
//!
//! [`cases`] is a deterministic corpus that reaches every codec, transform and predictor: the
//! round-trip, truncation and compatibility tests all run over it.

mod compat;
mod hostile;
mod roundtrip;

use crate::SampleWidth;

/// SplitMix64: a tiny seeded generator, so the corpus is the same on every machine and version.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (i64::from(hi) - i64::from(lo) + 1) as u64;
        (i64::from(lo) + (self.next_u64() % span) as i64) as i32
    }

    /// Roughly normal (sum of uniforms), scaled.
    pub(crate) fn gauss(&mut self, sigma: f64) -> f64 {
        let s: f64 = (0..4)
            .map(|_| (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        (s - 2.0) * 1.732 * sigma
    }
}

/// An EEG-like signal: alpha and mains sines, slow drift and noise, clamped to the width.
pub(crate) fn eeg_like(n: usize, width: SampleWidth, seed: u64, amp: f64) -> Vec<i32> {
    let mut rng = Rng::new(seed);
    let mut drift = 0.0;
    (0..n)
        .map(|i| {
            let t = i as f64 / 256.0;
            drift += rng.gauss(amp * 0.01);
            let v = amp * (2.0 * std::f64::consts::PI * 10.0 * t).sin()
                + 0.3 * amp * (2.0 * std::f64::consts::PI * 50.0 * t).sin()
                + drift
                + rng.gauss(amp * 0.05);
            (v.round() as i64).clamp(i64::from(width.min()), i64::from(width.max())) as i32
        })
        .collect()
}

/// The named corpus: (name, width, samples).
pub(crate) fn cases() -> Vec<(&'static str, SampleWidth, Vec<i32>)> {
    use SampleWidth::{Bits16, Bits24};
    let mut rng = Rng::new(7);
    let mut v: Vec<(&'static str, SampleWidth, Vec<i32>)> = Vec::new();
    v.push(("empty", Bits16, vec![]));
    v.push(("one_sample", Bits16, vec![-123]));
    v.push(("one_sample_min24", Bits24, vec![Bits24.min()]));
    v.push(("two_samples", Bits24, vec![Bits24.max(), Bits24.min()]));
    v.push(("constant", Bits16, vec![1234; 5000]));
    v.push(("constant_min24", Bits24, vec![Bits24.min(); 300]));
    v.push((
        "alternating_full_scale16",
        Bits16,
        (0..4096)
            .map(|i| {
                if i % 2 == 0 {
                    Bits16.max()
                } else {
                    Bits16.min()
                }
            })
            .collect(),
    ));
    v.push((
        "alternating_full_scale24",
        Bits24,
        (0..4096)
            .map(|i| {
                if i % 2 == 0 {
                    Bits24.max()
                } else {
                    Bits24.min()
                }
            })
            .collect(),
    ));
    v.push((
        "white_noise16",
        Bits16,
        (0..2048)
            .map(|_| rng.range(Bits16.min(), Bits16.max()))
            .collect(),
    ));
    v.push((
        "white_noise24",
        Bits24,
        (0..2048)
            .map(|_| rng.range(Bits24.min(), Bits24.max()))
            .collect(),
    ));
    v.push(("eeg16", Bits16, eeg_like(8192, Bits16, 1, 400.0)));
    v.push(("eeg24", Bits24, eeg_like(8192, Bits24, 2, 40_000.0)));
    v.push(("eeg_short", Bits16, eeg_like(700, Bits16, 3, 300.0)));
    v.push(("saturated", Bits16, eeg_like(6000, Bits16, 4, 60_000.0)));
    v.push((
        "lattice_40_96",
        Bits16,
        eeg_like(8192, Bits16, 5, 30.0)
            .into_iter()
            .map(|k| (f64::from(k) * 40.96).round() as i32)
            .collect(),
    ));
    let table = [-30_000, -1_200, -7, 0, 3, 95, 4_000, 31_000];
    v.push((
        "sparse_values",
        Bits16,
        (0..3000)
            .map(|_| table[(rng.next_u64() % 8) as usize])
            .collect(),
    ));
    v.push((
        "multiples_of_4",
        Bits24,
        eeg_like(5000, Bits24, 6, 9_000.0)
            .into_iter()
            .map(|x| (x / 4) * 4 - 3_000_000)
            .collect(),
    ));
    v.push((
        "status_steps",
        Bits24,
        (0..8192)
            .map(|i| {
                if (i / 700) % 3 == 0 {
                    1_900_799
                } else {
                    1_835_262 + (i / 1900)
                }
            })
            .collect(),
    ));
    v.push((
        "sample_and_hold",
        Bits24,
        eeg_like(1700, Bits24, 7, 20_000.0)
            .into_iter()
            .flat_map(|x| std::iter::repeat_n(x, 5))
            .collect(),
    ));
    let mut spikes = eeg_like(8192, Bits16, 8, 200.0);
    for i in (0..spikes.len()).step_by(997) {
        spikes[i] = if i % 2 == 0 {
            Bits16.max()
        } else {
            Bits16.min()
        };
    }
    v.push(("spikes", Bits16, spikes));
    let pattern: Vec<i32> = (0..97).map(|_| rng.range(-20_000, 20_000)).collect();
    v.push((
        "repeated_pattern",
        Bits16,
        pattern.iter().copied().cycle().take(8000).collect(),
    ));
    let mut flat_then_busy = vec![17; 3000];
    flat_then_busy.extend(eeg_like(3000, Bits16, 9, 500.0));
    v.push(("flat_then_busy", Bits16, flat_then_busy));
    v.push((
        "ramp",
        Bits24,
        (0..4000).map(|i| i * 2000 - 4_000_000).collect(),
    ));
    v
}
