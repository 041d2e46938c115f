//! `band_power(time, value, sample_rate, band [, nperseg])`: an aggregate giving the absolute
//! power of a group's samples in a frequency band, from the Welch PSD of [`crate::dsp`].
//!
//! The samples of a group are sorted by `time` (DataFusion feeds an aggregate in no particular
//! order), cut into contiguous runs where the spacing exceeds 1.5 sample periods (EDF+D gaps,
//! or a `WHERE` that removed a stretch), and the Welch periodograms of the segments of every run
//! are averaged — on a contiguous group this is exactly [`Welch::psd`] and SciPy's `welch`. The
//! band is a name of [`default_bands`] (`'alpha'`) or `'lo-hi'` in Hz (`'8-13'`), half-open as in
//! [`crate::dsp::bands`]. `nperseg` defaults to the power of two at or above two seconds of
//! samples, at most the longest run. The result is in (unit)², NULL for an empty group or one
//! with no full segment.
//!
//! A group must hold one signal: two samples at the same time (a group spanning channels or
//! recordings) or two sample rates are an error, never a silently mixed spectrum.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::dsp::{Psd, Welch, band_power, default_bands};

/// A frequency band `[lo, hi)` in Hz, parsed from SQL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandSpec {
    /// Lower edge, included.
    pub lo: f64,
    /// Upper edge, excluded.
    pub hi: f64,
}

impl BandSpec {
    /// A default band's name (case-insensitive) or `lo-hi` in Hz.
    ///
    /// # Errors
    /// An execution error naming the text when it is neither.
    pub fn parse(text: &str) -> DfResult<Self> {
        let t = text.trim();
        if let Some(b) = default_bands()
            .into_iter()
            .find(|b| b.name.eq_ignore_ascii_case(t))
        {
            return Ok(Self { lo: b.lo, hi: b.hi });
        }
        let parsed = t.split_once('-').and_then(|(a, b)| {
            let lo = a.trim().parse::<f64>().ok()?;
            let hi = b.trim().parse::<f64>().ok()?;
            (lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi).then_some(Self { lo, hi })
        });
        parsed.ok_or_else(|| {
            let names: Vec<String> = default_bands().into_iter().map(|b| b.name).collect();
            DataFusionError::Execution(format!(
                "band_power: band {t:?} is neither one of {} nor 'lo-hi' in Hz with 0 <= lo < hi",
                names.join(", ")
            ))
        })
    }
}

/// The `band_power` aggregate, ready to register.
pub fn band_power_udaf() -> AggregateUDF {
    AggregateUDF::from(BandPowerUdf {
        signature: Signature::one_of(
            vec![TypeSignature::Any(4), TypeSignature::Any(5)],
            Volatility::Immutable,
        ),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BandPowerUdf {
    signature: Signature,
}

fn f64_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

impl AggregateUDFImpl for BandPowerUdf {
    fn name(&self) -> &str {
        "band_power"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs<'_>) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::<BandPowerAcc>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> DfResult<Vec<FieldRef>> {
        let n = |s: &str| format!("{}[{s}]", args.name);
        Ok(vec![
            Arc::new(Field::new(n("times"), f64_list(), true)),
            Arc::new(Field::new(n("values"), f64_list(), true)),
            Arc::new(Field::new(n("rate"), DataType::Float64, true)),
            Arc::new(Field::new(n("band"), DataType::Utf8, true)),
            Arc::new(Field::new(n("nperseg"), DataType::Int64, true)),
        ])
    }
}

#[derive(Debug, Default)]
struct BandPowerAcc {
    times: Vec<f64>,
    values: Vec<f64>,
    rate: Option<f64>,
    band: Option<String>,
    nperseg: Option<i64>,
}

fn exec(msg: String) -> DataFusionError {
    DataFusionError::Execution(format!("band_power: {msg}"))
}

impl BandPowerAcc {
    fn set_rate(&mut self, r: f64) -> DfResult<()> {
        if !(r.is_finite() && r > 0.0) {
            return Err(exec(format!("sample_rate must be positive, got {r}")));
        }
        match self.rate {
            None => self.rate = Some(r),
            Some(x) if (x - r).abs() <= 1e-9 * x => {}
            Some(x) => {
                return Err(exec(format!(
                    "a group holds two sample rates ({x} and {r} Hz): group by recording_id and channel"
                )));
            }
        }
        Ok(())
    }

    fn set_band(&mut self, b: &str) -> DfResult<()> {
        match &self.band {
            None => self.band = Some(b.to_owned()),
            Some(x) if x == b => {}
            Some(x) => {
                return Err(exec(format!(
                    "the band changes within a group ({x:?}, {b:?})"
                )));
            }
        }
        Ok(())
    }

    fn set_nperseg(&mut self, n: i64) -> DfResult<()> {
        if n < 1 {
            return Err(exec(format!("nperseg must be at least 1, got {n}")));
        }
        match self.nperseg {
            None => self.nperseg = Some(n),
            Some(x) if x == n => {}
            Some(x) => return Err(exec(format!("nperseg changes within a group ({x}, {n})"))),
        }
        Ok(())
    }
}

fn f64s(a: &ArrayRef) -> DfResult<Float64Array> {
    Ok(cast(a, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl Accumulator for BandPowerAcc {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if values.len() < 4 {
            return Err(exec(
                "expects (time, value, sample_rate, band [, nperseg])".into(),
            ));
        }
        let t = f64s(&values[0])?;
        let v = f64s(&values[1])?;
        let r = f64s(&values[2])?;
        let b = cast(&values[3], &DataType::Utf8)?;
        let b: &StringArray = b.as_string::<i32>();
        let n = match values.get(4) {
            Some(a) => Some(
                cast(a, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            None => None,
        };
        for i in 0..t.len() {
            if t.is_null(i) || v.is_null(i) {
                continue;
            }
            if r.is_null(i) || b.is_null(i) {
                return Err(exec("sample_rate and band must not be NULL".into()));
            }
            self.set_rate(r.value(i))?;
            self.set_band(b.value(i))?;
            if let Some(n) = &n {
                if n.is_null(i) {
                    return Err(exec("nperseg must not be NULL".into()));
                }
                self.set_nperseg(n.value(i))?;
            }
            self.times.push(t.value(i));
            self.values.push(v.value(i));
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let list = |xs: &[f64]| {
            ScalarValue::List(Arc::new(
                ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
                    xs.iter().map(|x| Some(*x)),
                )]),
            ))
        };
        Ok(vec![
            list(&self.times),
            list(&self.values),
            ScalarValue::Float64(self.rate),
            ScalarValue::Utf8(self.band.clone()),
            ScalarValue::Int64(self.nperseg),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        if states.len() != 5 {
            return Err(exec("bad intermediate state".into()));
        }
        let times = states[0].as_list::<i32>();
        let vals = states[1].as_list::<i32>();
        let rates = f64s(&states[2])?;
        let bands = cast(&states[3], &DataType::Utf8)?;
        let bands: &StringArray = bands.as_string::<i32>();
        let nps = cast(&states[4], &DataType::Int64)?;
        let nps: &Int64Array = nps.as_primitive::<Int64Type>();
        for i in 0..times.len() {
            if !rates.is_null(i) {
                self.set_rate(rates.value(i))?;
            }
            if !bands.is_null(i) {
                self.set_band(bands.value(i))?;
            }
            if !nps.is_null(i) {
                self.set_nperseg(nps.value(i))?;
            }
            if times.is_null(i) || vals.is_null(i) {
                continue;
            }
            let t = times.value(i);
            let v = vals.value(i);
            let t = t.as_primitive::<Float64Type>();
            let v = v.as_primitive::<Float64Type>();
            if t.len() != v.len() {
                return Err(exec("bad intermediate state".into()));
            }
            self.times.extend(t.values().iter().copied());
            self.values.extend(v.values().iter().copied());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let (Some(fs), Some(band)) = (self.rate, self.band.as_deref()) else {
            return Ok(ScalarValue::Float64(None));
        };
        let band = BandSpec::parse(band)?;
        let nperseg = match self.nperseg {
            Some(n) => {
                Some(usize::try_from(n).map_err(|_| exec(format!("nperseg {n} too large")))?)
            }
            None => None,
        };
        let p = band_power_of(&self.times, &self.values, fs, band, nperseg)?;
        Ok(ScalarValue::Float64(p))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + (self.times.capacity() + self.values.capacity()) * std::mem::size_of::<f64>()
            + self.band.as_ref().map_or(0, String::capacity)
    }
}

/// Band power of samples at `times` (any order), Welch over contiguous runs (module docs).
/// `None` when there is no full segment.
pub(crate) fn band_power_of(
    times: &[f64],
    values: &[f64],
    fs: f64,
    band: BandSpec,
    nperseg: Option<usize>,
) -> DfResult<Option<f64>> {
    if times.is_empty() {
        return Ok(None);
    }
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[a].total_cmp(&times[b]));
    let x: Vec<f64> = order.iter().map(|&i| values[i]).collect();
    let period = 1.0 / fs;
    // Runs of contiguous samples: [start, end) indices into `x`.
    let mut runs = Vec::new();
    let mut run_start = 0;
    for k in 1..order.len() {
        let dt = times[order[k]] - times[order[k - 1]];
        if dt <= 0.5 * period {
            return Err(exec(
                "several samples at the same time in one group: group by recording_id and channel"
                    .into(),
            ));
        }
        if dt > 1.5 * period {
            runs.push(run_start..k);
            run_start = k;
        }
    }
    runs.push(run_start..order.len());
    let longest = runs.iter().map(|r| r.len()).max().unwrap_or(0);
    let nperseg = nperseg.unwrap_or_else(|| {
        let two_s = (2.0 * fs).ceil().max(1.0) as usize;
        two_s.next_power_of_two().min(longest).max(1)
    });
    let mut welch = Welch::with_default_overlap(fs, nperseg).map_err(|e| exec(e.to_string()))?;
    let total: usize = runs.iter().map(|r| welch.n_segments(r.len())).sum();
    if total == 0 {
        return Ok(None);
    }
    let mut density = vec![0.0; welch.n_bins()];
    let w = 1.0 / total as f64;
    for r in &runs {
        let xs = &x[r.clone()];
        for s in welch.segment_starts(xs.len()) {
            welch.accumulate_segment(&xs[s..s + nperseg], &mut density, w);
        }
    }
    let psd = Psd {
        freqs: welch.freqs(),
        density,
    };
    Ok(Some(band_power(&psd, band.lo, band.hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(n: usize, fs: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                30.0 * (std::f64::consts::TAU * 10.0 * t).sin()
                    + 5.0 * (std::f64::consts::TAU * 3.0 * t).cos()
                    + ((i * 7919) % 13) as f64
            })
            .collect()
    }

    #[test]
    fn contiguous_group_equals_welch_and_order_does_not_matter() {
        let fs = 256.0;
        let x = signal(256 * 20, fs);
        let t: Vec<f64> = (0..x.len()).map(|i| i as f64 / fs).collect();
        let psd = Welch::with_default_overlap(fs, 512)
            .unwrap()
            .psd(&x)
            .unwrap();
        let want = band_power(&psd, 8.0, 13.0);
        let alpha = BandSpec::parse("alpha").unwrap();
        let got = band_power_of(&t, &x, fs, alpha, None).unwrap().unwrap();
        assert!((got - want).abs() <= 1e-12 * want, "{got} {want}");
        // Reversed input: same result.
        let tr: Vec<f64> = t.iter().rev().copied().collect();
        let xr: Vec<f64> = x.iter().rev().copied().collect();
        let got_r = band_power_of(&tr, &xr, fs, alpha, None).unwrap().unwrap();
        assert!((got_r - want).abs() <= 1e-12 * want);
        assert_eq!(BandSpec::parse(" 8-13 ").unwrap(), alpha);
        assert!(BandSpec::parse("13-8").is_err() && BandSpec::parse("mu").is_err());
    }

    #[test]
    fn gaps_split_runs_and_duplicates_are_refused() {
        let fs = 128.0;
        let x = signal(128 * 16, fs);
        // Two runs of 8 s with a 5 s gap between them.
        let t: Vec<f64> = (0..x.len())
            .map(|i| i as f64 / fs + if i >= 128 * 8 { 5.0 } else { 0.0 })
            .collect();
        let mut w = Welch::with_default_overlap(fs, 256).unwrap();
        let (a, b) = x.split_at(128 * 8);
        let pa = w.psd(a).unwrap();
        let pb = w.psd(b).unwrap();
        // Equal numbers of segments per run: the average of the two PSDs.
        let want = (band_power(&pa, 8.0, 13.0) + band_power(&pb, 8.0, 13.0)) / 2.0;
        let got = band_power_of(&t, &x, fs, BandSpec { lo: 8.0, hi: 13.0 }, None)
            .unwrap()
            .unwrap();
        assert!((got - want).abs() <= 1e-12 * want, "{got} {want}");
        let dup = [0.0, 0.0];
        assert!(band_power_of(&dup, &[1.0, 2.0], fs, BandSpec { lo: 1.0, hi: 2.0 }, None).is_err());
        assert_eq!(
            band_power_of(&[], &[], fs, BandSpec { lo: 1.0, hi: 2.0 }, None).unwrap(),
            None
        );
    }
}
