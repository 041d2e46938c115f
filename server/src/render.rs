//! Answers rendered the same way for the API and the command line: recording metadata, raw
//! windows and processed pages (JSON, Arrow IPC), overviews and spectra (JSON).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::{Value, json};
use theta_engine::store::{Overview, OverviewSource, Recording, SampleData, Units, Window};
use theta_query::view::{PsdView, View, ViewData};

use crate::error::{ApiError, Error};

mod decimal;

/// A signal's label as shown (trimmed).
pub fn label(rec: &Recording, c: usize) -> String {
    rec.signals()[c].label.trim().to_string()
}

fn units_name(units: Units) -> &'static str {
    match units {
        Units::Physical => "physical",
        _ => "digital",
    }
}

fn finite_or_null(v: f64) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

/// Header, signals and time line of a recording.
pub fn recording_json(rec: &Recording) -> Value {
    let h = rec.header();
    let tl = rec.timeline();
    let rd = tl.record_duration();
    let signals: Vec<Value> = rec
        .signals()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "index": i,
                "label": s.label.trim(),
                "transducer": s.transducer.trim(),
                "unit": s.physical_dimension.trim(),
                "sample_rate": s.sample_rate(rd),
                "samples_per_record": s.samples_per_record,
                "physical_min": s.physical_min,
                "physical_max": s.physical_max,
                "digital_min": s.digital_min,
                "digital_max": s.digital_max,
                "prefilter": s.prefilter.trim(),
            })
        })
        .collect();
    let segments: Vec<Value> = tl
        .segments()
        .iter()
        .map(|s| json!({"first_record": s.first_record, "onset": s.onset}))
        .collect();
    json!({
        "id": rec.id().to_string(),
        "tenant": rec.tenant().as_str(),
        "format": h.format,
        "patient": h.patient.trim(),
        "recording": h.recording.trim(),
        "start": h.start,
        "fields": h.fields,
        "duration": rec.duration(),
        "record_duration": rd,
        "records": tl.num_records(),
        "segments": segments,
        "signals": signals,
        "ingested_at": rec.ingested_at(),
        "raw_bytes": rec.raw_bytes(),
        "stored_bytes": rec.stored_bytes(),
    })
}

/// A raw window, serialised straight from the sample arrays (no intermediate JSON tree: a
/// page is tens of thousands of numbers).
pub fn window_json<'a>(rec: &'a Recording, w: &'a Window, units: Units) -> impl Serialize + 'a {
    WindowJson { rec, w, units }
}

struct WindowJson<'a> {
    rec: &'a Recording,
    w: &'a Window,
    units: Units,
}

#[derive(Serialize)]
struct ChannelJson<'a> {
    index: usize,
    label: String,
    unit: &'a str,
}

#[derive(Serialize)]
struct RunJson {
    column: usize,
    time: f64,
}

#[derive(Serialize)]
struct BlockJson<'a> {
    sample_rate: f64,
    samples_per_record: u32,
    first_sample: u64,
    samples: usize,
    channels: Vec<ChannelJson<'a>>,
    runs: Vec<RunJson>,
    data: Rows<'a>,
}

/// The rows of a 2-D array as JSON arrays of numbers (non-finite values as `null`).
enum Rows<'a> {
    Digital(&'a ndarray::Array2<i32>),
    Physical(&'a ndarray::Array2<f64>),
}

struct Row<'a, T>(ndarray::ArrayView1<'a, T>);

impl Serialize for Row<'_, f64> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &x in &self.0 {
            if x.is_finite() {
                seq.serialize_element(&x)?;
            } else {
                seq.serialize_element(&())?;
            }
        }
        seq.end()
    }
}

impl Serialize for Row<'_, i32> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for x in &self.0 {
            seq.serialize_element(x)?;
        }
        seq.end()
    }
}

impl Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rows::Digital(a) => s.collect_seq(a.rows().into_iter().map(Row)),
            Rows::Physical(a) => s.collect_seq(a.rows().into_iter().map(Row)),
        }
    }
}

impl Serialize for WindowJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (rec, w, units) = (self.rec, self.w, self.units);
        let blocks: Vec<BlockJson<'_>> = w
            .blocks
            .iter()
            .map(|b| BlockJson {
                sample_rate: b.sample_rate,
                samples_per_record: b.samples_per_record,
                first_sample: b.first_sample,
                samples: b.len(),
                channels: b
                    .channels
                    .iter()
                    .map(|&c| ChannelJson {
                        index: c,
                        label: label(rec, c),
                        unit: if units == Units::Physical {
                            rec.signals()[c].physical_dimension.trim()
                        } else {
                            "digital"
                        },
                    })
                    .collect(),
                runs: b
                    .runs
                    .iter()
                    .map(|r| RunJson {
                        column: r.column,
                        time: r.time,
                    })
                    .collect(),
                data: match &b.data {
                    SampleData::Digital(a) => Rows::Digital(a),
                    SampleData::Physical(a) => Rows::Physical(a),
                },
            })
            .collect();
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("recording", &w.recording.to_string())?;
        m.serialize_entry("start", &w.start)?;
        m.serialize_entry("duration", &w.duration)?;
        m.serialize_entry("units", units_name(units))?;
        m.serialize_entry("blocks", &blocks)?;
        m.end()
    }
}

/// A window as an Arrow IPC stream: a `time` column (seconds from the recording start) and
/// one column per channel named by its label (`Float64` physical, `Int32` digital). Arrow
/// streams have one schema, so the channels must share one sample rate.
///
/// # Errors
/// [`ApiError::BadRequest`] when the window spans several sample rates.
pub fn window_arrow(rec: &Recording, w: &Window) -> Result<Vec<u8>, ApiError> {
    if w.blocks.len() > 1 {
        return Err(ApiError::bad_request(
            "channels",
            "the channels have several sample rates: ask for channels of one rate for Arrow",
        ));
    }
    let tl = rec.timeline();
    let mut fields = vec![Field::new("time", DataType::Float64, false)];
    let mut columns: Vec<ArrayRef> = Vec::new();
    if let Some(b) = w.blocks.first() {
        let times: Float64Array = (0..b.len())
            .map(|k| tl.sample_time(b.first_sample + k as u64, b.samples_per_record))
            .collect();
        columns.push(Arc::new(times));
        for (row, &c) in b.channels.iter().enumerate() {
            match &b.data {
                SampleData::Digital(a) => {
                    fields.push(Field::new(label(rec, c), DataType::Int32, false));
                    columns.push(Arc::new(Int32Array::from_iter_values(
                        a.row(row).iter().copied(),
                    )));
                }
                SampleData::Physical(a) => {
                    fields.push(Field::new(label(rec, c), DataType::Float64, false));
                    columns.push(Arc::new(Float64Array::from_iter_values(
                        a.row(row).iter().copied(),
                    )));
                }
            }
        }
    } else {
        columns.push(Arc::new(Float64Array::from_iter_values([])));
    }
    ipc(fields, columns)
}

/// An overview as JSON: per channel, its source level and min/max per pixel (`null` where a
/// pixel holds no sample).
pub fn overview_json(rec: &Recording, ov: &Overview, units: Units) -> Value {
    let channels: Vec<_> = ov
        .channels
        .iter()
        .enumerate()
        .map(|(row, &c)| {
            let source = match ov.sources[row] {
                OverviewSource::Pyramid {
                    level,
                    bucket_samples,
                } => json!({"pyramid_level": level, "bucket_samples": bucket_samples}),
                OverviewSource::Raw => json!("raw"),
            };
            json!({
                "index": c,
                "label": label(rec, c),
                "source": source,
                "min": ov.min.row(row).iter().map(|&v| finite_or_null(v)).collect::<Vec<_>>(),
                "max": ov.max.row(row).iter().map(|&v| finite_or_null(v)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "recording": ov.recording.to_string(),
        "start": ov.start,
        "duration": ov.duration,
        "width": ov.width,
        "units": units_name(units),
        "channels": channels,
    })
}

/// How the JSON form of a page writes its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Rounded to a hundredth of the page's quantisation step (`resolution`), the fewest
    /// decimals that keep every value within 1/200 of a step: what a display or a reader
    /// needs, in a third of the bytes.
    #[default]
    Auto,
    /// Shortest round-trip doubles: every bit of the computed `f64`.
    Full,
}

/// The JSON form of a processed page (montage, filters, min/max): the page's fields, then
/// `rows`, one object per row with its `label` and its `data` (samples) or `min` and `max`
/// (envelope), `null` where a value is not finite.
///
/// With [`Precision::Auto`] values are rounded for the page's `resolution` (also in the
/// answer, with the `decimals` used) to a hundredth of the recording's quantisation step, so
/// the 16-bit EDF standard page is 0.46 MB instead of 1.31 MB with shortest round-trip
/// doubles ([`Precision::Full`]). The Arrow IPC form ([`view_arrow`]) carries the full `f64`
/// values.
///
/// A page is tens of thousands of numbers and formatting them is a large part of answering,
/// so large pages format their rows in parallel (rayon), each into a buffer sized up front,
/// and join them.
///
/// # Errors
/// Serialisation failures (none expected: the writer is a `Vec`).
pub fn view_json_bytes(v: &View, precision: Precision) -> serde_json::Result<Vec<u8>> {
    use rayon::prelude::*;
    /// Values below which one thread formats the whole page (the fork costs more).
    const PARALLEL_VALUES: usize = 16_384;
    let dec = match precision {
        Precision::Auto => decimal::Decimals::for_step(v.resolution),
        Precision::Full => None,
    };
    let (values, rows) = match &v.data {
        ViewData::Samples(a) => (a.len(), a.nrows()),
        ViewData::MinMax { min, max } => (min.len() + max.len(), min.nrows()),
    };
    // A value takes `decimals` + 6 bytes or so with its comma (shortest doubles up to 25).
    let per_value = dec.map_or(20, |d| d.decimals() as usize + 6);
    // Plus the stretch `write_row` grows ahead of its last values, so a row never reallocates.
    let per_row = values / rows.max(1) * per_value + 64 + decimal::ROW_SLACK;
    let format_row = |r: usize| -> serde_json::Result<Vec<u8>> {
        let mut b = Vec::with_capacity(per_row);
        b.extend_from_slice(br#"{"label":"#);
        serde_json::to_writer(&mut b, v.labels.get(r).map_or("", String::as_str))?;
        match &v.data {
            ViewData::Samples(a) => {
                b.extend_from_slice(br#","data":"#);
                decimal::write_row(&mut b, a.row(r), dec)?;
            }
            ViewData::MinMax { min, max } => {
                b.extend_from_slice(br#","min":"#);
                decimal::write_row(&mut b, min.row(r), dec)?;
                b.extend_from_slice(br#","max":"#);
                decimal::write_row(&mut b, max.row(r), dec)?;
            }
        }
        b.push(b'}');
        Ok(b)
    };
    let parts: Vec<Vec<u8>> = if values >= PARALLEL_VALUES {
        (0..rows)
            .into_par_iter()
            .map(format_row)
            .collect::<Result<_, _>>()?
    } else {
        (0..rows).map(format_row).collect::<Result<_, _>>()?
    };
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 4096);
    serde_json::to_writer(&mut out, &ViewHead(v, dec))?;
    // `{…}` → `{…,"rows":[row,row,…]}`
    out.pop();
    out.extend_from_slice(br#","rows":["#);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(p);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Every field of the page but `rows`.
struct ViewHead<'a>(&'a View, Option<decimal::Decimals>);

impl Serialize for ViewHead<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (v, mut m) = (self.0, s.serialize_map(Some(13))?);
        // The order the page's JSON has always had, `rows` (written after) excepted.
        m.serialize_entry("recording", &v.recording.to_string())?;
        m.serialize_entry("montage", &v.montage)?;
        m.serialize_entry("sample_rate", &v.sample_rate)?;
        m.serialize_entry("start", &v.start)?;
        m.serialize_entry("first_sample", &v.first_sample)?;
        m.serialize_entry("samples", &v.samples)?;
        m.serialize_entry("unit", &v.unit)?;
        m.serialize_entry(
            "kind",
            if matches!(v.data, ViewData::Samples(_)) {
                "samples"
            } else {
                "minmax"
            },
        )?;
        m.serialize_entry("padding", &[v.padding.0, v.padding.1])?;
        m.serialize_entry("channels", &v.channels)?;
        let warnings: Vec<String> = v.warnings.iter().map(ToString::to_string).collect();
        m.serialize_entry("warnings", &warnings)?;
        m.serialize_entry("resolution", &finite_or_null(v.resolution))?;
        m.serialize_entry("decimals", &self.1.map(decimal::Decimals::decimals))?;
        m.end()
    }
}

/// The JSON form of spectra.
pub fn psd_json(p: &PsdView) -> Value {
    let channels: Vec<_> = p
        .channels
        .iter()
        .map(|c| {
            let bands: serde_json::Map<String, Value> = c
                .bands
                .names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        n.clone(),
                        json!({"absolute": c.bands.absolute[i], "relative": c.bands.relative[i]}),
                    )
                })
                .collect();
            json!({
                "index": c.index,
                "label": c.label,
                "unit": c.unit,
                "sample_rate": c.sample_rate,
                "samples": c.samples,
                "nperseg": c.nperseg,
                "freqs": c.freqs,
                "density": c.density,
                "bands": bands,
            })
        })
        .collect();
    json!({
        "recording": p.recording.to_string(),
        "start": p.start,
        "duration": p.duration,
        "scaling": "density",
        "channels": channels,
    })
}

/// A processed page as an Arrow IPC stream: for samples, a `time` column and one `Float64`
/// column per row; for min/max, a `pixel` column and `<label> min`, `<label> max` per row.
///
/// # Errors
/// [`ApiError::Internal`] if Arrow refuses the batch (a bug).
pub fn view_arrow(v: &View) -> Result<Vec<u8>, ApiError> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    match &v.data {
        ViewData::Samples(a) => {
            let dt = 1.0 / v.sample_rate;
            fields.push(Field::new("time", DataType::Float64, false));
            columns.push(Arc::new(Float64Array::from_iter_values(
                (0..a.ncols()).map(|k| v.start + k as f64 * dt),
            )));
            for (l, row) in v.labels.iter().zip(a.rows()) {
                fields.push(Field::new(l.as_str(), DataType::Float64, false));
                columns.push(Arc::new(Float64Array::from_iter_values(
                    row.iter().copied(),
                )));
            }
        }
        ViewData::MinMax { min, max } => {
            fields.push(Field::new("pixel", DataType::Int32, false));
            columns.push(Arc::new(Int32Array::from_iter_values(
                (0..min.ncols()).map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
            )));
            for (r, l) in v.labels.iter().enumerate() {
                for (suffix, a) in [("min", min), ("max", max)] {
                    fields.push(Field::new(format!("{l} {suffix}"), DataType::Float64, true));
                    columns.push(Arc::new(
                        a.row(r)
                            .iter()
                            .map(|&x| x.is_finite().then_some(x))
                            .collect::<Float64Array>(),
                    ));
                }
            }
        }
    }
    ipc(fields, columns)
}

fn ipc(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<Vec<u8>, ApiError> {
    let schema = Arc::new(Schema::new(fields));
    let arrow_err = |e: arrow::error::ArrowError| ApiError::Internal(Error::Store(e.to_string()));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow_err)?;
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &schema).map_err(arrow_err)?;
    writer.write(&batch).map_err(arrow_err)?;
    writer.finish().map_err(arrow_err)?;
    drop(writer);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use theta_engine::store::RecordingId;

    fn page(rows: usize, cols: usize, minmax: bool) -> View {
        // Values of every magnitude and sign, a non-finite one, and labels needing escapes.
        let a = Array2::from_shape_fn((rows, cols), |(r, c)| {
            if r == 1 && c == 3 {
                f64::NAN
            } else {
                ((r * 7919 + c * 104_729) % 100_003) as f64
                    * 1e-3
                    * if c % 2 == 0 { -1.0 } else { 3.7 }
                    / (1.0 + r as f64)
            }
        });
        View {
            recording: RecordingId::generate(),
            montage: "double banana".into(),
            labels: (0..rows).map(|r| format!("F{r}-\"C{r}\"")).collect(),
            channels: (0..rows).collect(),
            unit: "uV".into(),
            resolution: 0.1,
            sample_rate: 256.0,
            first_sample: 2560,
            samples: cols,
            start: 10.0,
            padding: (512, 512),
            data: if minmax {
                ViewData::MinMax {
                    min: a.mapv(|v| v - 1.0),
                    max: a,
                }
            } else {
                ViewData::Samples(a)
            },
            warnings: Vec::new(),
        }
    }

    #[test]
    fn page_json_holds_every_value_to_a_two_hundredth_of_the_step_in_parallel_or_not() {
        // Small (one thread) and standard-page-sized (parallel) pages, both kinds.
        for (rows, cols) in [(3, 40), (18, 1920)] {
            for minmax in [false, true] {
                let v = page(rows, cols, minmax);
                let bytes = view_json_bytes(&v, Precision::Auto).unwrap();
                let parsed: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(parsed["resolution"], 0.1);
                assert_eq!(parsed["decimals"], 3);
                assert_eq!(parsed["samples"], cols);
                let out = parsed["rows"].as_array().unwrap();
                assert_eq!(out.len(), rows);
                assert_eq!(out[1]["label"], "F1-\"C1\"");
                let arrays: Vec<(&str, &Array2<f64>)> = match &v.data {
                    ViewData::Samples(a) => vec![("data", a)],
                    ViewData::MinMax { min, max } => vec![("min", min), ("max", max)],
                };
                for (key, a) in arrays {
                    for ((r, c), &x) in a.indexed_iter() {
                        let got = &out[r][key][c];
                        if x.is_finite() {
                            let y = got.as_f64().unwrap();
                            assert!(
                                (y - x).abs() <= 0.0005 + 1e-12,
                                "{key}[{r}][{c}]: {x} → {y}"
                            );
                        } else {
                            assert!(got.is_null(), "{key}[{r}][{c}]");
                        }
                    }
                }
            }
        }
        // Full precision, or no usable step: the shortest round-trip doubles, every bit.
        let mut v = page(3, 40, false);
        let ViewData::Samples(a) = v.data.clone() else {
            unreachable!()
        };
        for precision in [Precision::Full, Precision::Auto] {
            if precision == Precision::Auto {
                v.resolution = 0.0;
            }
            let parsed: Value =
                serde_json::from_slice(&view_json_bytes(&v, precision).unwrap()).unwrap();
            assert!(parsed["decimals"].is_null());
            for ((r, c), &x) in a.indexed_iter() {
                let got = &parsed["rows"][r]["data"][c];
                // serde_json's own float parsing may be a unit in the last place off.
                match got.as_f64() {
                    Some(y) => assert!((y - x).abs() <= 2.0 * f64::EPSILON * x.abs(), "{x} {y}"),
                    None => assert!(!x.is_finite() && got.is_null()),
                }
            }
        }
    }
}
