//! Parquet output: one dataset per cohort (schema in `query/EXPORT.md`).
//!
//! ```text
//! recordings.parquet   one row per recording (pseudonyms, shifted start, age band, sex)
//! channels.parquet     one row per channel
//! annotations.parquet  one row per annotation (masked text)
//! samples/recording_id=<pseudonym>/part-00000.parquet
//!                      long format: channel_index, channel, time, digital, value;
//!                      one row group per time block (all channels), zstd
//! ```
//! The `recording_id=` folders are Hive partitions, which DataFusion, DuckDB, Spark and pandas
//! (pyarrow) turn back into a `recording_id` column.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, UInt16Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use theta_engine::edf::{channel_type, normalize_label};
use tokio::runtime::Handle;

use super::io::{fresh_partial_dir, io_err, partial_name};
use super::plan::Planned;
use super::{ExportError, TextPolicy};

/// Folder of the sample partitions.
pub(crate) const SAMPLES_DIR: &str = "samples";

fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        // Row groups are cut by time block (flush), not by count.
        .set_max_row_group_row_count(Some(usize::MAX))
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled("channel".into(), true)
        .set_column_dictionary_enabled("channel_index".into(), true)
        .set_column_dictionary_enabled("recording_id".into(), true)
        .set_column_dictionary_enabled("text".into(), true)
        .build()
}

fn enc(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> ExportError + '_ {
    move |e| ExportError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn arrow_enc(path: &Path) -> impl Fn(arrow::error::ArrowError) -> ExportError + '_ {
    move |e| ExportError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The partition folder of a recording.
pub(crate) fn partition_dir(out: &Path, p: &Planned) -> PathBuf {
    out.join(SAMPLES_DIR)
        .join(format!("recording_id={}", p.pid))
}

/// Whether a recording's samples are complete (the partition folder is renamed in last).
pub(crate) fn is_done(out: &Path, p: &Planned) -> bool {
    partition_dir(out, p).is_dir()
}

/// Schema of the sample files (the partition column comes from the folder name).
pub(crate) fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("channel_index", DataType::UInt32, false),
        Field::new(
            "channel",
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
            false,
        ),
        Field::new("time", DataType::Float64, false),
        Field::new("digital", DataType::Int32, false),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// Writes one recording's sample partition. Runs on a blocking thread.
pub(crate) fn write_recording(
    out: &Path,
    p: &Planned,
    handle: &Handle,
    on_bytes: &dyn Fn(u64),
) -> Result<(), ExportError> {
    let final_dir = partition_dir(out, p);
    let tmp = fresh_partial_dir(&final_dir)?;
    let path = tmp.join("part-00000.parquet");
    let file = fs::File::create(&path).map_err(io_err(&path))?;
    let schema = samples_schema();
    let mut writer =
        ArrowWriter::try_new(file, Arc::clone(&schema), Some(props())).map_err(enc(&path))?;

    let rec = &p.rec;
    let tl = rec.timeline();
    let signals = rec.signals();
    // Labels once per recording, referenced by a dictionary key from every row.
    let label_values: ArrayRef = Arc::new(StringArray::from_iter_values(
        signals.iter().map(|s| p.masker.mask(&s.label)),
    ));
    for b in 0..rec.blocks() {
        let block = handle.block_on(rec.read_block(b))?;
        let rows: usize = block.signals.iter().map(Vec::len).sum();
        let mut index = Vec::with_capacity(rows);
        let mut channel = Vec::with_capacity(rows);
        let mut time = Vec::with_capacity(rows);
        let mut digital = Vec::with_capacity(rows);
        let mut value = Vec::with_capacity(rows);
        let mut raw = 0u64;
        let rd = tl.record_duration();
        for (s, info) in signals.iter().enumerate() {
            let spr = info.samples_per_record;
            let (gain, offset) = info.calibration();
            let spr_f = f64::from(spr);
            for r in block.records.clone() {
                let samples = block.record(s, r, spr);
                // The timeline's formula, with the record's onset looked up once per record.
                let onset = tl.record_onset(r);
                index.extend(std::iter::repeat_n(s as u32, samples.len()));
                channel.extend(std::iter::repeat_n(s as u16, samples.len()));
                time.extend((0..samples.len()).map(|j| onset + (j as f64 * rd) / spr_f));
                digital.extend_from_slice(samples);
                value.extend(samples.iter().map(|&d| gain * (f64::from(d) + offset)));
                raw += samples.len() as u64 * info.width.bytes() as u64;
            }
        }
        let channel = DictionaryArray::<UInt16Type>::try_new(
            UInt16Array::from(channel),
            Arc::clone(&label_values),
        )
        .map_err(arrow_enc(&path))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(index)),
            Arc::new(channel),
            Arc::new(Float64Array::from(time)),
            Arc::new(Int32Array::from(digital)),
            Arc::new(Float64Array::from(value)),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow_enc(&path))?;
        writer.write(&batch).map_err(enc(&path))?;
        // One row group per time block: readers prune by the `time` statistics.
        writer.flush().map_err(enc(&path))?;
        on_bytes(raw);
    }
    let file = writer.into_inner().map_err(enc(&path))?;
    file.sync_all().map_err(io_err(&path))?;
    fs::rename(&tmp, &final_dir).map_err(io_err(&final_dir))?;
    Ok(())
}

fn write_table(path: &Path, batch: &RecordBatch) -> Result<(), ExportError> {
    let tmp = partial_name(path);
    let file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props())).map_err(enc(path))?;
    w.write(batch).map_err(enc(path))?;
    let file = w.into_inner().map_err(enc(path))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Writes the three tables of the cohort.
pub(crate) fn write_dataset(
    out: &Path,
    planned: &[Planned],
    text: TextPolicy,
) -> Result<(), ExportError> {
    // recordings
    let path = out.join("recordings.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("recording_id", DataType::Utf8, false),
        Field::new("subject_id", DataType::Utf8, false),
        Field::new("session_id", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new(
            "start",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("duration_s", DataType::Float64, false),
        Field::new("signals", DataType::UInt32, false),
        Field::new("record_duration_s", DataType::Float64, false),
        Field::new("num_records", DataType::UInt64, false),
        Field::new("age_band", DataType::Utf8, true),
        Field::new("sex", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            planned.iter().map(|p| &p.pid),
        )),
        Arc::new(StringArray::from_iter_values(
            planned.iter().map(|p| &p.subject),
        )),
        Arc::new(StringArray::from_iter_values(
            planned.iter().map(|p| &p.session),
        )),
        Arc::new(StringArray::from_iter_values(
            planned.iter().map(|p| p.rec.header().format.clone()),
        )),
        Arc::new(TimestampMicrosecondArray::from(
            planned
                .iter()
                .map(|p| p.start.map(|s| s.and_utc().timestamp_micros()))
                .collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from_iter_values(
            planned.iter().map(|p| p.rec.duration()),
        )),
        Arc::new(UInt32Array::from_iter_values(
            planned.iter().map(|p| p.rec.signals().len() as u32),
        )),
        Arc::new(Float64Array::from_iter_values(
            planned.iter().map(|p| p.rec.timeline().record_duration()),
        )),
        Arc::new(UInt64Array::from_iter_values(
            planned.iter().map(|p| p.rec.timeline().num_records()),
        )),
        Arc::new(StringArray::from(
            planned
                .iter()
                .map(|p| p.age_band.clone())
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            planned
                .iter()
                .map(|p| p.sex.map(|s| s.bids().to_string()))
                .collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(arrow_enc(&path))?;
    write_table(&path, &batch)?;

    // channels
    let path = out.join("channels.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("recording_id", DataType::Utf8, false),
        Field::new("channel_index", DataType::UInt32, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("canonical", DataType::Utf8, true),
        Field::new("type", DataType::Utf8, false),
        Field::new("unit", DataType::Utf8, false),
        Field::new("sample_rate", DataType::Float64, false),
        Field::new("samples_per_record", DataType::UInt32, false),
        Field::new("physical_min", DataType::Float64, false),
        Field::new("physical_max", DataType::Float64, false),
        Field::new("digital_min", DataType::Int32, false),
        Field::new("digital_max", DataType::Int32, false),
        Field::new("prefilter", DataType::Utf8, false),
        Field::new("transducer", DataType::Utf8, false),
    ]));
    let rows: Vec<(&Planned, usize)> = planned
        .iter()
        .flat_map(|p| (0..p.rec.signals().len()).map(move |i| (p, i)))
        .collect();
    fn sig<'a>(r: &(&'a Planned, usize)) -> &'a theta_engine::store::SignalInfo {
        &r.0.rec.signals()[r.1]
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(p, _)| &p.pid),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|(_, i)| *i as u32),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.masker.mask(&sig(r).label)),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|r| normalize_label(&sig(r).label))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
            let s = sig(r);
            channel_type(&s.label, &s.transducer, &s.physical_dimension).as_str()
        }))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| sig(r).physical_dimension.clone()),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| {
            sig(r).sample_rate(r.0.rec.timeline().record_duration())
        }))),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| sig(r).samples_per_record),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| sig(r).physical_min),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|r| sig(r).physical_max),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| sig(r).digital_min),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| sig(r).digital_max),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.masker.mask(&sig(r).prefilter)),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.masker.mask(&sig(r).transducer)),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(arrow_enc(&path))?;
    write_table(&path, &batch)?;

    // annotations
    let path = out.join("annotations.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("recording_id", DataType::Utf8, false),
        Field::new("onset_s", DataType::Float64, false),
        Field::new("duration_s", DataType::Float64, true),
        Field::new("text", DataType::Utf8, true),
    ]));
    let rows: Vec<(&Planned, &theta_engine::store::Annotation)> = planned
        .iter()
        .flat_map(|p| p.annotations.iter().map(move |a| (p, a)))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(p, _)| &p.pid),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, a)| a.onset),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|(_, a)| a.duration).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter()
                .map(|(_, a)| match text {
                    TextPolicy::Mask => Some(a.text.as_str()),
                    TextPolicy::Drop => None,
                })
                .collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(arrow_enc(&path))?;
    write_table(&path, &batch)?;
    Ok(())
}
