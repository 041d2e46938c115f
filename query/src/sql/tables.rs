//! The catalogue tables: `recordings` and `channels` (from the manifests already in memory) and
//! `annotations` (read from each recording's encrypted log when a query scans it).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDateTime};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::Expr;
use futures::StreamExt;
use theta_engine::edf::normalize_labels;
use theta_engine::store::Recording;

use super::SqlError;
use super::samples::recording_ids;

fn ts_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

fn ts_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Start as recorded (EDF has no time zone): microseconds of the naive wall-clock time.
fn parse_start(s: &str) -> Option<i64> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

fn parse_utc(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

pub(super) fn recordings_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("start", ts_micros(), true),
        Field::new("duration_s", DataType::Float64, false),
        Field::new("signals", DataType::UInt32, false),
        Field::new("record_duration_s", DataType::Float64, false),
        Field::new("num_records", DataType::UInt64, false),
        Field::new("ingested_at", ts_utc(), true),
        Field::new("raw_bytes", DataType::UInt64, false),
        Field::new("stored_bytes", DataType::UInt64, false),
    ]))
}

pub(super) fn recordings_table(recs: &[Recording]) -> Result<Arc<MemTable>, SqlError> {
    let schema = recordings_schema();
    let mut id = StringBuilder::new();
    let mut tenant = StringBuilder::new();
    let mut format = StringBuilder::new();
    let mut start = TimestampMicrosecondBuilder::new();
    let mut duration = Float64Builder::new();
    let mut signals = UInt32Builder::new();
    let mut record_duration = Float64Builder::new();
    let mut num_records = UInt64Builder::new();
    let mut ingested = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut raw = UInt64Builder::new();
    let mut stored = UInt64Builder::new();
    for r in recs {
        id.append_value(r.id().to_string());
        tenant.append_value(r.tenant().as_str());
        format.append_value(&r.header().format);
        start.append_option(parse_start(&r.header().start));
        duration.append_value(r.duration());
        signals.append_value(u32::try_from(r.signals().len()).unwrap_or(u32::MAX));
        record_duration.append_value(r.timeline().record_duration());
        num_records.append_value(r.timeline().num_records());
        ingested.append_option(parse_utc(r.ingested_at()));
        raw.append_value(r.raw_bytes());
        stored.append_value(r.stored_bytes());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(tenant.finish()),
        Arc::new(format.finish()),
        Arc::new(start.finish()),
        Arc::new(duration.finish()),
        Arc::new(signals.finish()),
        Arc::new(record_duration.finish()),
        Arc::new(num_records.finish()),
        Arc::new(ingested.finish()),
        Arc::new(raw.finish()),
        Arc::new(stored.finish()),
    ];
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), columns).map_err(DataFusionError::from)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

pub(super) fn channels_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("recording_id", DataType::Utf8, false),
        Field::new("channel_index", DataType::UInt32, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("canonical", DataType::Utf8, true),
        Field::new("unit", DataType::Utf8, false),
        Field::new("sample_rate", DataType::Float64, false),
        Field::new("samples_per_record", DataType::UInt32, false),
        Field::new("physical_min", DataType::Float64, false),
        Field::new("physical_max", DataType::Float64, false),
        Field::new("digital_min", DataType::Int32, false),
        Field::new("digital_max", DataType::Int32, false),
        Field::new("prefilter", DataType::Utf8, false),
        Field::new("transducer", DataType::Utf8, false),
    ]))
}

pub(super) fn channels_table(recs: &[Recording]) -> Result<Arc<MemTable>, SqlError> {
    let schema = channels_schema();
    let mut rid = StringBuilder::new();
    let mut index = UInt32Builder::new();
    let mut label = StringBuilder::new();
    let mut canonical = StringBuilder::new();
    let mut unit = StringBuilder::new();
    let mut rate = Float64Builder::new();
    let mut spr = UInt32Builder::new();
    let mut pmin = Float64Builder::new();
    let mut pmax = Float64Builder::new();
    let mut dmin = Int32Builder::new();
    let mut dmax = Int32Builder::new();
    let mut prefilter = StringBuilder::new();
    let mut transducer = StringBuilder::new();
    for r in recs {
        let id = r.id().to_string();
        let labels: Vec<&str> = r.signals().iter().map(|s| s.label.as_str()).collect();
        // The file as context: a montage of "EEG Fp1-REF" labels normalises as a set.
        let canon = normalize_labels(&labels);
        let d = r.timeline().record_duration();
        for (i, (s, c)) in r.signals().iter().zip(canon).enumerate() {
            rid.append_value(&id);
            index.append_value(u32::try_from(i).unwrap_or(u32::MAX));
            label.append_value(&s.label);
            canonical.append_option(c);
            unit.append_value(&s.physical_dimension);
            rate.append_value(s.sample_rate(d));
            spr.append_value(s.samples_per_record);
            pmin.append_value(s.physical_min);
            pmax.append_value(s.physical_max);
            dmin.append_value(s.digital_min);
            dmax.append_value(s.digital_max);
            prefilter.append_value(&s.prefilter);
            transducer.append_value(&s.transducer);
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rid.finish()),
        Arc::new(index.finish()),
        Arc::new(label.finish()),
        Arc::new(canonical.finish()),
        Arc::new(unit.finish()),
        Arc::new(rate.finish()),
        Arc::new(spr.finish()),
        Arc::new(pmin.finish()),
        Arc::new(pmax.finish()),
        Arc::new(dmin.finish()),
        Arc::new(dmax.finish()),
        Arc::new(prefilter.finish()),
        Arc::new(transducer.finish()),
    ];
    let batch =
        RecordBatch::try_new(Arc::clone(&schema), columns).map_err(DataFusionError::from)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

pub(super) fn annotations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("recording_id", DataType::Utf8, false),
        Field::new("id", DataType::UInt64, false),
        Field::new("onset_s", DataType::Float64, false),
        Field::new("duration_s", DataType::Float64, true),
        Field::new("text", DataType::Utf8, false),
        Field::new("created_by", DataType::Utf8, false),
        Field::new("created_at", ts_utc(), false),
        Field::new("updated_by", DataType::Utf8, false),
        Field::new("updated_at", ts_utc(), false),
        Field::new("version", DataType::UInt32, false),
    ]))
}

/// The current annotations of the visible recordings, read (and decrypted) only when a query
/// scans the table, one recording per batch.
#[derive(Debug)]
pub(super) struct AnnotationsTable {
    schema: SchemaRef,
    recordings: Arc<Vec<Recording>>,
}

impl AnnotationsTable {
    pub(super) fn new(recordings: Arc<Vec<Recording>>) -> Self {
        Self {
            schema: annotations_schema(),
            recordings,
        }
    }
}

async fn annotation_batch(schema: SchemaRef, rec: Recording) -> DfResult<RecordBatch> {
    let anns = rec
        .annotations()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let id = rec.id().to_string();
    let mut rid = StringBuilder::new();
    let mut aid = UInt64Builder::new();
    let mut onset = Float64Builder::new();
    let mut duration = Float64Builder::new();
    let mut text = StringBuilder::new();
    let mut created_by = StringBuilder::new();
    let mut created_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut updated_by = StringBuilder::new();
    let mut updated_at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut version = UInt32Builder::new();
    for a in &anns {
        rid.append_value(&id);
        aid.append_value(a.id);
        onset.append_value(a.annotation.onset);
        duration.append_option(a.annotation.duration);
        text.append_value(&a.annotation.text);
        created_by.append_value(&a.created_by);
        created_at.append_value(a.created_at.timestamp_micros());
        updated_by.append_value(&a.updated_by);
        updated_at.append_value(a.updated_at.timestamp_micros());
        version.append_value(a.version);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(rid.finish()),
        Arc::new(aid.finish()),
        Arc::new(onset.finish()),
        Arc::new(duration.finish()),
        Arc::new(text.finish()),
        Arc::new(created_by.finish()),
        Arc::new(created_at.finish()),
        Arc::new(updated_by.finish()),
        Arc::new(updated_at.finish()),
        Arc::new(version.finish()),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[derive(Debug)]
struct AnnotationsPartition {
    schema: SchemaRef,
    recordings: Vec<Recording>,
}

impl PartitionStream for AnnotationsPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = Arc::clone(&self.schema);
        let recs = self.recordings.clone();
        let stream =
            futures::stream::iter(recs).then(move |r| annotation_batch(Arc::clone(&schema), r));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

#[async_trait::async_trait]
impl TableProvider for AnnotationsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(super::inexact_pushdown(filters, |f| {
            recording_ids(f).is_some()
        }))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // `recording_id = …` / `IN (…)`: only those recordings' logs are read and decrypted.
        let mut wanted: Option<BTreeSet<String>> = None;
        for ids in filters.iter().filter_map(recording_ids) {
            wanted = Some(match wanted {
                Some(w) => w.intersection(&ids).cloned().collect(),
                None => ids,
            });
        }
        let recordings = self
            .recordings
            .iter()
            .filter(|r| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(&r.id().to_string()))
            })
            .cloned()
            .collect();
        let partition: Arc<dyn PartitionStream> = Arc::new(AnnotationsPartition {
            schema: Arc::clone(&self.schema),
            recordings,
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            vec![partition],
            projection,
            Vec::new(),
            false,
            limit,
        )?))
    }
}
