//! A deterministic synthetic recording for store tests: any number of signals and rates,
//! 16- or 24-bit, gaps between records, header fields and annotations.

use theta_codecs::SampleWidth;
use theta_engine::store::{Annotation, SampleSource, SignalInfo, SourceError, SourceHeader};

/// Spec of a synthetic recording.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) seed: u64,
    pub(crate) samples_per_record: Vec<u32>,
    pub(crate) record_duration: f64,
    pub(crate) records: u64,
    pub(crate) width: SampleWidth,
    /// (record, extra gap in seconds before it)
    pub(crate) gaps: Vec<(u64, f64)>,
    pub(crate) annotations: usize,
    /// Channels whose samples are constant (equal-size chunks, for swap tests).
    pub(crate) constant: Vec<usize>,
}

impl Spec {
    pub(crate) fn new(seed: u64, spr: &[u32], record_duration: f64, records: u64) -> Self {
        Self {
            seed,
            samples_per_record: spr.to_vec(),
            record_duration,
            records,
            width: SampleWidth::Bits16,
            gaps: Vec::new(),
            annotations: 3,
            constant: Vec::new(),
        }
    }

    pub(crate) fn signals(&self) -> Vec<SignalInfo> {
        self.samples_per_record
            .iter()
            .enumerate()
            .map(|(i, &spr)| {
                let (dmin, dmax) = (self.width.min(), self.width.max());
                SignalInfo {
                    label: format!("EEG S{i:02}-REF"),
                    transducer: "AgAgCl electrode".into(),
                    physical_dimension: "uV".into(),
                    physical_min: -3200.0 - i as f64,
                    physical_max: 3200.0 + i as f64,
                    digital_min: dmin,
                    digital_max: dmax,
                    prefilter: "HP:0.1Hz LP:70Hz".into(),
                    samples_per_record: spr,
                    width: self.width,
                }
            })
            .collect()
    }

    pub(crate) fn header(&self) -> SourceHeader {
        SourceHeader {
            format: "EDF+D".into(),
            patient: format!("MCH-0234567 F 02-MAY-1951 Haagse_Harry seed={}", self.seed),
            recording: "Startdate 02-MAR-2002 EMG561 BK/JOP Sony. MNC R Median Nerve".into(),
            start: "2002-03-02T10:11:12".into(),
            fields: [("technician".to_string(), "Jopie_Kleinjan".to_string())]
                .into_iter()
                .collect(),
        }
    }

    /// Onset of record `r` as the source reports it.
    pub(crate) fn onset(&self, r: u64) -> f64 {
        let extra: f64 = self
            .gaps
            .iter()
            .filter(|(g, _)| *g <= r)
            .map(|(_, e)| *e)
            .sum();
        r as f64 * self.record_duration + extra
    }

    /// Sample `index` (global, from 0) of channel `ch`.
    pub(crate) fn sample(&self, ch: usize, index: u64) -> i32 {
        let (lo, hi) = (self.width.min(), self.width.max());
        if self.constant.contains(&ch) {
            return 1234;
        }
        let mut x = self
            .seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((ch as u64) << 40)
            .wrapping_add(index);
        x ^= x >> 30;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        // Extremes now and then, otherwise a slow wave plus small noise.
        match x % 997 {
            0 => return lo,
            1 => return hi,
            _ => {}
        }
        let wave = ((index as f64) * 0.05 * (ch as f64 + 1.0)).sin() * f64::from(hi) * 0.3;
        let noise = (x % 64) as i64 - 32;
        (wave as i64 + noise).clamp(i64::from(lo), i64::from(hi)) as i32
    }

    pub(crate) fn annotation_list(&self) -> Vec<Annotation> {
        (0..self.annotations)
            .map(|i| Annotation {
                onset: i as f64 * 1.5,
                duration: if i % 2 == 0 { Some(0.5) } else { None },
                text: format!("Seizure onset left temporal #{i} 中文"),
            })
            .collect()
    }

    pub(crate) fn source(&self) -> Synth {
        Synth {
            spec: self.clone(),
            header: self.header(),
            signals: self.signals(),
            next: 0,
        }
    }

    /// Times of every sample of channel `ch` under the given record onsets.
    pub(crate) fn expected(
        &self,
        ch: usize,
        onset: impl Fn(u64) -> f64,
        start: f64,
        end: f64,
    ) -> (u64, Vec<i32>) {
        let spr = self.samples_per_record[ch];
        let mut first = None;
        let mut out = Vec::new();
        for r in 0..self.records {
            let o = onset(r);
            for j in 0..spr {
                let t = o + (f64::from(j) * self.record_duration) / f64::from(spr);
                if t >= start && t < end {
                    let idx = r * u64::from(spr) + u64::from(j);
                    first.get_or_insert(idx);
                    out.push(self.sample(ch, idx));
                }
            }
        }
        (first.unwrap_or(0), out)
    }
}

/// The streaming source of a [`Spec`].
pub(crate) struct Synth {
    spec: Spec,
    header: SourceHeader,
    signals: Vec<SignalInfo>,
    next: u64,
}

impl SampleSource for Synth {
    fn header(&self) -> &SourceHeader {
        &self.header
    }
    fn signals(&self) -> &[SignalInfo] {
        &self.signals
    }
    fn record_duration(&self) -> f64 {
        self.spec.record_duration
    }
    fn record_count(&self) -> Option<u64> {
        Some(self.spec.records)
    }
    fn next_record(&mut self, out: &mut [&mut [i32]]) -> Result<Option<f64>, SourceError> {
        if self.next >= self.spec.records {
            return Ok(None);
        }
        let r = self.next;
        for (ch, o) in out.iter_mut().enumerate() {
            let spr = u64::from(self.spec.samples_per_record[ch]);
            for (j, v) in o.iter_mut().enumerate() {
                *v = self.spec.sample(ch, r * spr + j as u64);
            }
        }
        self.next += 1;
        Ok(Some(self.spec.onset(r)))
    }
    fn take_annotations(&mut self) -> Result<Vec<Annotation>, SourceError> {
        Ok(self.spec.annotation_list())
    }
}
