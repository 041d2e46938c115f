//! The `samples` table: one row per sample per channel, streamed from the store one chunk
//! block at a time, with recording, channel and time predicates pushed down to chunk pruning.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{ArrayRef, Float64Array, StringArray, StringBuilder, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::expr::{Between, InList};
use datafusion::logical_expr::{BinaryExpr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::Expr;
use theta_engine::store::{ChannelSelection, Recording, Units, WindowRequest};

use super::ScanCounters;

const RECORDING_ID: &str = "recording_id";
const CHANNEL_INDEX: &str = "channel_index";
const CHANNEL: &str = "channel";
const TIME: &str = "time";

/// Longest span read by one window call when a recording's chunk blocks are longer (bounds the
/// size of a batch).
const MAX_WINDOW_SECONDS: f64 = 60.0;

fn samples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(RECORDING_ID, DataType::Utf8, false),
        Field::new(CHANNEL_INDEX, DataType::UInt32, false),
        Field::new(CHANNEL, DataType::Utf8, false),
        Field::new("sample_rate", DataType::Float64, false),
        Field::new(TIME, DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// The `samples` table of a [`Catalog`](super::Catalog) (long format: see the module docs).
#[derive(Debug)]
pub struct SamplesTable {
    schema: SchemaRef,
    recordings: Arc<Vec<Recording>>,
    counters: Arc<ScanCounters>,
}

impl SamplesTable {
    pub(super) fn new(recordings: Arc<Vec<Recording>>, counters: Arc<ScanCounters>) -> Self {
        Self {
            schema: samples_schema(),
            recordings,
            counters,
        }
    }
}

/// What the pushed-down filters allow: a conjunction, so every filter narrows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pushdown {
    pub(crate) recordings: Option<BTreeSet<String>>,
    pub(crate) labels: Option<BTreeSet<String>>,
    pub(crate) indices: Option<BTreeSet<u32>>,
    /// Samples with `lo <= time < hi` can match.
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Default for Pushdown {
    fn default() -> Self {
        Self {
            recordings: None,
            labels: None,
            indices: None,
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        }
    }
}

fn column_name(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        _ => None,
    }
}

fn as_f64(v: &ScalarValue) -> Option<f64> {
    match v.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(x)) if !x.is_nan() => Some(x),
        _ => None,
    }
}

fn as_u32(v: &ScalarValue) -> Option<u32> {
    let x = as_f64(v)?;
    // A non-integer or negative index matches no row: an empty set, still exact enough.
    (x >= 0.0 && x <= f64::from(u32::MAX) && x.fract() == 0.0).then_some(x as u32)
}

/// One conjunct understood by the scan.
#[derive(Debug, Clone, PartialEq)]
enum Constraint {
    Recordings(BTreeSet<String>),
    Labels(BTreeSet<String>),
    Indices(BTreeSet<u32>),
    Time { lo: f64, hi: f64 },
}

fn flip(op: Operator) -> Operator {
    match op {
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        other => other,
    }
}

fn set_constraint(col: &str, values: &[ScalarValue]) -> Option<Constraint> {
    match col {
        RECORDING_ID | CHANNEL => {
            let set = values
                .iter()
                .map(|v| v.try_as_str().flatten().map(str::to_owned))
                .collect::<Option<BTreeSet<String>>>()?;
            Some(if col == CHANNEL {
                Constraint::Labels(set)
            } else {
                Constraint::Recordings(set)
            })
        }
        CHANNEL_INDEX => {
            let mut set = BTreeSet::new();
            for v in values {
                as_f64(v)?;
                if let Some(i) = as_u32(v) {
                    set.insert(i);
                }
            }
            Some(Constraint::Indices(set))
        }
        TIME => {
            let xs = values.iter().map(as_f64).collect::<Option<Vec<f64>>>()?;
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some(Constraint::Time {
                lo,
                hi: hi.next_up(),
            })
        }
        _ => None,
    }
}

fn constraint(e: &Expr) -> Option<Constraint> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (col, op, v) = match (column_name(left), column_name(right)) {
                (Some(c), None) => (c, *op, literal(right)?),
                (None, Some(c)) => (c, flip(*op), literal(left)?),
                _ => return None,
            };
            match op {
                Operator::Eq => set_constraint(col, &[v]),
                Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq if col == TIME => {
                    let x = as_f64(&v)?;
                    Some(match op {
                        Operator::Lt => Constraint::Time {
                            lo: f64::NEG_INFINITY,
                            hi: x,
                        },
                        Operator::LtEq => Constraint::Time {
                            lo: f64::NEG_INFINITY,
                            hi: x.next_up(),
                        },
                        // `time > x` reads from x: a superset, the filter above removes x.
                        _ => Constraint::Time {
                            lo: x,
                            hi: f64::INFINITY,
                        },
                    })
                }
                _ => None,
            }
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) => {
            let col = column_name(expr)?;
            let values = list.iter().map(literal).collect::<Option<Vec<_>>>()?;
            set_constraint(col, &values)
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if column_name(expr) == Some(TIME) => Some(Constraint::Time {
            lo: as_f64(&literal(low)?)?,
            hi: as_f64(&literal(high)?)?.next_up(),
        }),
        _ => None,
    }
}

/// The recording ids a filter restricts `recording_id` to, if it is such a filter (shared with
/// the `annotations` table).
pub(crate) fn recording_ids(e: &Expr) -> Option<BTreeSet<String>> {
    match constraint(e)? {
        Constraint::Recordings(s) => Some(s),
        _ => None,
    }
}

fn intersect<T: Ord + Clone>(a: Option<BTreeSet<T>>, b: BTreeSet<T>) -> Option<BTreeSet<T>> {
    Some(match a {
        Some(a) => a.intersection(&b).cloned().collect(),
        None => b,
    })
}

impl Pushdown {
    /// The conjunction of the filters the scan understands (others are ignored: DataFusion
    /// applies every filter after the scan anyway).
    pub(crate) fn from_filters(filters: &[Expr]) -> Self {
        let mut p = Pushdown::default();
        for f in filters {
            match constraint(f) {
                Some(Constraint::Recordings(s)) => p.recordings = intersect(p.recordings, s),
                Some(Constraint::Labels(s)) => p.labels = intersect(p.labels, s),
                Some(Constraint::Indices(s)) => p.indices = intersect(p.indices, s),
                Some(Constraint::Time { lo, hi }) => {
                    p.lo = p.lo.max(lo);
                    p.hi = p.hi.min(hi);
                }
                None => {}
            }
        }
        p
    }
}

/// One recording to read: its channels and time span.
#[derive(Debug, Clone)]
struct Job {
    recording: Recording,
    channels: Vec<usize>,
    start: f64,
    end: f64,
}

fn plan_jobs(recordings: &[Recording], p: &Pushdown) -> Vec<Job> {
    let mut jobs = Vec::new();
    for rec in recordings {
        if p.recordings
            .as_ref()
            .is_some_and(|s| !s.contains(&rec.id().to_string()))
        {
            continue;
        }
        let channels: Vec<usize> = rec
            .signals()
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                p.labels.as_ref().is_none_or(|l| l.contains(&s.label))
                    && p.indices
                        .as_ref()
                        .is_none_or(|x| u32::try_from(*i).is_ok_and(|i| x.contains(&i)))
            })
            .map(|(i, _)| i)
            .collect();
        let start = p.lo.max(0.0);
        let end = p.hi.min(rec.duration());
        if channels.is_empty() || start >= end {
            continue;
        }
        jobs.push(Job {
            recording: rec.clone(),
            channels,
            start,
            end,
        });
    }
    jobs
}

/// The spans `[a, b)` read one at a time: the chunk blocks overlapping `[start, end)`, cut to
/// it (and to at most [`MAX_WINDOW_SECONDS`]).
fn spans(rec: &Recording, start: f64, end: f64) -> Vec<(f64, f64)> {
    let tl = rec.timeline();
    let n = tl.num_records();
    let rpb = rec.layout().records_per_block.max(1);
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    // The first record starting at or after `start`; the one before may contain `start`.
    let first = tl
        .first_sample_at_or_after(start, 1)
        .saturating_sub(1)
        .min(n - 1);
    let mut block = first / rpb;
    loop {
        let r0 = block * rpb;
        if r0 >= n {
            break;
        }
        let b_start = tl.record_onset(r0);
        if b_start >= end {
            break;
        }
        let r1 = (r0 + rpb).min(n);
        let b_end = if r1 >= n {
            tl.end()
        } else {
            tl.record_onset(r1)
        };
        let mut a = start.max(b_start);
        let b = end.min(b_end);
        while a < b {
            let next = (a + MAX_WINDOW_SECONDS).min(b);
            out.push((a, next));
            a = next;
        }
        block += 1;
    }
    out
}

async fn read_span(
    schema: SchemaRef,
    columns: &[usize],
    job: &Job,
    a: f64,
    b: f64,
    counters: &ScanCounters,
) -> DfResult<RecordBatch> {
    let rec = &job.recording;
    let mut req = WindowRequest::new(a, b - a)
        .channels(ChannelSelection::indices(job.channels.iter().copied()))
        .units(Units::Physical);
    // A query knows exactly what it reads next; the viewer's read-ahead would only waste work.
    req.read_ahead = Some(false);
    let window = rec
        .window(&req)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let rows: usize = window
        .blocks
        .iter()
        .map(|bl| bl.len() * bl.channels.len())
        .sum();
    counters.windows.fetch_add(1, Ordering::Relaxed);
    counters.samples.fetch_add(rows as u64, Ordering::Relaxed);
    let id = rec.id().to_string();
    let tl = rec.timeline();
    let signals = rec.signals();
    let mut blocks = Vec::with_capacity(window.blocks.len());
    for block in &window.blocks {
        let Some(data) = block.physical() else {
            return Err(DataFusionError::Internal(
                "window returned digital samples for a physical request".into(),
            ));
        };
        blocks.push((block, data));
    }
    // Only the projected columns are built, column by column (rows are channel-major).
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for &col in columns {
        let array: ArrayRef = match col {
            0 => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                id.as_str(),
                rows,
            ))),
            1 => Arc::new(UInt32Array::from_iter_values(blocks.iter().flat_map(
                |(bl, _)| {
                    bl.channels.iter().flat_map(|&c| {
                        std::iter::repeat_n(u32::try_from(c).unwrap_or(u32::MAX), bl.len())
                    })
                },
            ))),
            2 => {
                // (`from_iter_values` needs an exactly sized iterator; a flat map is not.)
                let mut b = StringBuilder::with_capacity(rows, rows * 8);
                for (bl, _) in &blocks {
                    for &c in &bl.channels {
                        for _ in 0..bl.len() {
                            b.append_value(&signals[c].label);
                        }
                    }
                }
                Arc::new(b.finish())
            }
            3 => Arc::new(Float64Array::from_iter_values(blocks.iter().flat_map(
                |(bl, _)| std::iter::repeat_n(bl.sample_rate, bl.len() * bl.channels.len()),
            ))),
            4 => {
                let mut t = Vec::with_capacity(rows);
                for (bl, _) in &blocks {
                    let times: Vec<f64> = (0..bl.len() as u64)
                        .map(|k| tl.sample_time(bl.first_sample + k, bl.samples_per_record))
                        .collect();
                    for _ in &bl.channels {
                        t.extend_from_slice(&times);
                    }
                }
                Arc::new(Float64Array::from(t))
            }
            5 => Arc::new(Float64Array::from_iter_values(
                blocks.iter().flat_map(|(_, data)| data.iter().copied()),
            )),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "samples has no column {other}"
                )));
            }
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new_with_options(
        schema,
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// A share of the jobs, read one span at a time when polled.
#[derive(Debug)]
struct SamplesPartition {
    /// The projected schema.
    schema: SchemaRef,
    /// Columns of the table schema to build, in the projected order.
    columns: Arc<[usize]>,
    jobs: Vec<Job>,
    counters: Arc<ScanCounters>,
}

impl PartitionStream for SamplesPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let work: Vec<(Arc<Job>, f64, f64)> = self
            .jobs
            .iter()
            .flat_map(|j| {
                let job = Arc::new(j.clone());
                spans(&j.recording, j.start, j.end)
                    .into_iter()
                    .map(move |(a, b)| (Arc::clone(&job), a, b))
            })
            .collect();
        let schema = Arc::clone(&self.schema);
        let counters = Arc::clone(&self.counters);
        let columns = Arc::clone(&self.columns);
        let stream = futures::stream::iter(work).then(move |(job, a, b)| {
            let schema = Arc::clone(&schema);
            let counters = Arc::clone(&counters);
            let columns = Arc::clone(&columns);
            async move { read_span(schema, &columns, &job, a, b, &counters).await }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

use futures::StreamExt;

#[async_trait::async_trait]
impl TableProvider for SamplesTable {
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
            constraint(f).is_some()
        }))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let pushdown = Pushdown::from_filters(filters);
        let jobs = plan_jobs(&self.recordings, &pushdown);
        let n = state
            .config()
            .target_partitions()
            .clamp(1, jobs.len().max(1));
        let mut shares: Vec<Vec<Job>> = vec![Vec::new(); n];
        for (i, j) in jobs.into_iter().enumerate() {
            shares[i % n].push(j);
        }
        let columns: Arc<[usize]> = match projection {
            Some(p) => p.iter().copied().collect(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&columns)?);
        let partitions: Vec<Arc<dyn PartitionStream>> = shares
            .into_iter()
            .map(|jobs| {
                Arc::new(SamplesPartition {
                    schema: Arc::clone(&schema),
                    columns: Arc::clone(&columns),
                    jobs,
                    counters: Arc::clone(&self.counters),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        // The partitions build only the projected columns, so the plan needs no projection.
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            Vec::new(),
            false,
            limit,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn filters_narrow_the_scan() {
        let f = vec![
            col("time").gt_eq(lit(10.0)),
            col("time").lt(lit(12.5)),
            lit(3.0).lt_eq(col("time")),
            col("channel").in_list(vec![lit("Fp1"), lit("O2")], false),
            col("channel").eq(lit("O2")),
            col("recording_id").eq(lit("ab")),
            col("value").gt(lit(1.0)),
        ];
        let p = Pushdown::from_filters(&f);
        assert_eq!(p.lo, 10.0);
        assert_eq!(p.hi, 12.5);
        assert_eq!(p.labels, Some(BTreeSet::from(["O2".to_string()])));
        assert_eq!(p.recordings, Some(BTreeSet::from(["ab".to_string()])));
        assert_eq!(p.indices, None);
        let b = Pushdown::from_filters(&[col("time").between(lit(1), lit(2))]);
        assert_eq!((b.lo, b.hi), (1.0, 2.0f64.next_up()));
        let i =
            Pushdown::from_filters(&[col("channel_index").in_list(vec![lit(1), lit(-1)], false)]);
        assert_eq!(i.indices, Some(BTreeSet::from([1])));
        // Unknown shapes are not pushed.
        assert!(constraint(&col("time").not_eq(lit(1.0))).is_none());
        assert!(constraint(&col("channel").in_list(vec![lit("a")], true)).is_none());
        assert!(constraint(&col("time").lt(col("value"))).is_none());
    }
}
