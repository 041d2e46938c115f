//! Answers rendered the same way for the API and the command line: recording metadata, raw
//! windows and processed pages (JSON, Arrow IPC), overviews and spectra (JSON).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};
use theta_engine::store::{Overview, OverviewSource, Recording, SampleData, Units, Window};
use theta_query::view::{PsdView, View, ViewData};

use crate::error::{ApiError, Error};

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

/// A window as JSON: one block per sample rate, each with channels, runs and rows of samples.
pub fn window_json(rec: &Recording, w: &Window, units: Units) -> Value {
    let blocks: Vec<_> = w
        .blocks
        .iter()
        .map(|b| {
            let channels: Vec<_> = b
                .channels
                .iter()
                .map(|&c| {
                    let s = &rec.signals()[c];
                    json!({
                        "index": c,
                        "label": label(rec, c),
                        "unit": if units == Units::Physical { s.physical_dimension.trim() } else { "digital" },
                    })
                })
                .collect();
            let runs: Vec<_> = b
                .runs
                .iter()
                .map(|r| json!({"column": r.column, "time": r.time}))
                .collect();
            let data: Vec<Value> = match &b.data {
                SampleData::Digital(a) => a.rows().into_iter().map(|r| json!(r.to_vec())).collect(),
                SampleData::Physical(a) => a.rows().into_iter().map(|r| json!(r.to_vec())).collect(),
            };
            json!({
                "sample_rate": b.sample_rate,
                "samples_per_record": b.samples_per_record,
                "first_sample": b.first_sample,
                "samples": b.len(),
                "channels": channels,
                "runs": runs,
                "data": data,
            })
        })
        .collect();
    json!({
        "recording": w.recording.to_string(),
        "start": w.start,
        "duration": w.duration,
        "units": units_name(units),
        "blocks": blocks,
    })
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

/// The JSON form of a processed page (montage, filters, min/max).
pub fn view_json(v: &View) -> Value {
    let rows: Vec<Value> = match &v.data {
        ViewData::Samples(a) => v
            .labels
            .iter()
            .zip(a.rows())
            .map(|(l, r)| json!({"label": l, "data": r.to_vec()}))
            .collect(),
        ViewData::MinMax { min, max } => v
            .labels
            .iter()
            .zip(min.rows().into_iter().zip(max.rows()))
            .map(|(l, (lo, hi))| {
                json!({
                    "label": l,
                    "min": lo.iter().map(|&x| finite_or_null(x)).collect::<Vec<_>>(),
                    "max": hi.iter().map(|&x| finite_or_null(x)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    };
    json!({
        "recording": v.recording.to_string(),
        "montage": v.montage,
        "sample_rate": v.sample_rate,
        "start": v.start,
        "first_sample": v.first_sample,
        "samples": v.samples,
        "unit": v.unit,
        "kind": if matches!(v.data, ViewData::Samples(_)) { "samples" } else { "minmax" },
        "padding": [v.padding.0, v.padding.1],
        "channels": v.channels,
        "rows": rows,
        "warnings": v.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
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
