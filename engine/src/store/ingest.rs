//! Ingest: stream a [`SampleSource`] into sealed chunks, the overview pyramid and the index,
//! then commit by writing the manifest last.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use theta_codecs::SampleWidth;
use tokio::sync::{mpsc, oneshot};

use super::StoreInner;
use super::annotations;
use super::error::{Result, StoreError};
use super::format::{
    CHUNK_HEADER_LEN, CHUNK_OVERHEAD, FORMAT_VERSION, INDEX_MAGIC, MANIFEST_MAGIC, PackKind, paths,
    seal_chunk, seal_object,
};
use super::ids::{RecordingId, TenantId};
use super::layout::{CONTIGUITY_TOLERANCE, ChunkLayout, PyramidGeometry, Segment};
use super::lease::Lease;
use super::manifest::{
    CODEC_NAME, ChunkIndex, ManifestBody, PageEntry, encode_wrapped_key, key_prefix,
    manifest_clear, wrap_aad,
};
use super::overview::{PageOut, PyramidBuilder, bucket_pieces};
use super::pack::PackedWriter;
use super::scratch;
use super::source::{Annotation, SampleSource, SignalInfo};
use crate::crypto::{DataKey, NONCE_LEN, ObjectKind, TAG_LEN};
use crate::edf::tal;

/// Default time block of a chunk, in seconds (chosen by measurement: see `engine/FORMAT.md`).
pub const DEFAULT_BLOCK_SECONDS: f64 = 10.0;
/// Default number of signals per chunk (chosen by measurement: see `engine/FORMAT.md`).
pub const DEFAULT_GROUP_SIZE: u32 = 1;
/// Default target size of a packed data object.
pub const DEFAULT_DATA_OBJECT_BYTES: u64 = 128 << 20;
/// Most samples of one signal in one chunk (bounds memory for very high rates).
const MAX_CHUNK_SAMPLES: u64 = 1 << 20;
/// Samples (all signals) gathered before a batch is handed to the sealing workers.
const BATCH_SAMPLES: usize = 1 << 21;
/// Batches read ahead of the upload; with [`BATCH_SAMPLES`] this bounds ingest memory.
const BATCHES_IN_FLIGHT: usize = 3;
/// Largest annotation text accepted, in bytes.
pub(crate) const MAX_ANNOTATION_TEXT: usize = 64 << 10;

/// How ingest reports progress.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Progress {
    /// Silent.
    #[default]
    Hidden,
    /// An `indicatif` bar on stderr when stderr is a terminal, silent otherwise.
    Terminal,
    /// A callback after every batch.
    Callback(Arc<dyn Fn(&IngestProgress) + Send + Sync>),
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Hidden => f.write_str("Hidden"),
            Progress::Terminal => f.write_str("Terminal"),
            Progress::Callback(_) => f.write_str("Callback(..)"),
        }
    }
}

/// Progress of an ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestProgress {
    /// Records stored so far.
    pub records: u64,
    /// Records in the source, if known.
    pub records_total: Option<u64>,
    /// Bytes uploaded so far.
    pub stored_bytes: u64,
}

/// Options of an ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// The tenant the recording belongs to.
    pub tenant: TenantId,
    /// Name of the input (for example the file name); stored encrypted.
    pub source_name: Option<String>,
    /// Target time block of a chunk in seconds (rounded to whole data records).
    pub block_seconds: f64,
    /// Signals per chunk.
    pub group_size: u32,
    /// Target size of a packed data object in bytes.
    pub data_object_bytes: u64,
    /// Geometry of the overview pyramid.
    pub overview: PyramidGeometry,
    /// Progress reporting.
    pub progress: Progress,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            tenant: TenantId::default(),
            source_name: None,
            block_seconds: DEFAULT_BLOCK_SECONDS,
            group_size: DEFAULT_GROUP_SIZE,
            data_object_bytes: DEFAULT_DATA_OBJECT_BYTES,
            overview: PyramidGeometry::default(),
            progress: Progress::Hidden,
        }
    }
}

/// What an ingest stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestReport {
    /// The new recording's id.
    pub recording: RecordingId,
    /// Its tenant.
    pub tenant: TenantId,
    /// Number of signals.
    pub signals: usize,
    /// Number of data records.
    pub records: u64,
    /// Duration in seconds (end of the last record).
    pub duration: f64,
    /// Samples stored (all signals).
    pub samples: u64,
    /// Size of the input in bytes.
    pub raw_bytes: u64,
    /// Bytes written to the store for this recording.
    pub stored_bytes: u64,
    /// Data chunks written.
    pub chunks: u64,
    /// Annotations imported.
    pub annotations: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
}

fn source_err(msg: impl Into<String>) -> StoreError {
    StoreError::Source {
        source: msg.into().into(),
    }
}

fn validate_source(source: &dyn SampleSource) -> Result<()> {
    let d = source.record_duration();
    let signals = source.signals();
    if !(d.is_finite() && d >= 0.0) {
        return Err(source_err(format!(
            "record duration {d} is not a finite number >= 0"
        )));
    }
    if !signals.is_empty() && d == 0.0 {
        return Err(source_err("record duration 0 with data signals"));
    }
    if signals.len() > u32::MAX as usize / 2 {
        return Err(source_err("too many signals"));
    }
    for (i, s) in signals.iter().enumerate() {
        if s.samples_per_record == 0 {
            return Err(source_err(format!("signal {i} has 0 samples per record")));
        }
        if u64::from(s.samples_per_record) > MAX_CHUNK_SAMPLES {
            return Err(source_err(format!(
                "signal {i} has {} samples per record (at most {MAX_CHUNK_SAMPLES})",
                s.samples_per_record
            )));
        }
        if !(s.physical_min.is_finite() && s.physical_max.is_finite()) {
            return Err(source_err(format!(
                "signal {i} has a non-finite physical range"
            )));
        }
    }
    Ok(())
}

/// What every stored annotation must satisfy, imported or entered: it can be written back as an
/// EDF+ TAL (the research export writes one per annotation), so a stored annotation can never
/// make its recording unexportable. Messages name the field, never the text (health data).
pub(crate) fn validate_annotation(a: &Annotation) -> std::result::Result<(), String> {
    if !a.onset.is_finite() {
        return Err("annotation onset is not finite".into());
    }
    if tal::seconds_to_ns(a.onset).is_none() {
        return Err(format!(
            "annotation onset {:?} s is beyond what an EDF+ annotation can hold",
            a.onset
        ));
    }
    if let Some(d) = a.duration
        && !(d >= 0.0 && tal::seconds_to_ns(d).is_some())
    {
        return Err("annotation duration is not a finite number >= 0".into());
    }
    if a.text.len() > MAX_ANNOTATION_TEXT {
        return Err(format!(
            "annotation text longer than {MAX_ANNOTATION_TEXT} bytes"
        ));
    }
    if !tal::valid_text(&a.text) {
        return Err(
            "annotation text contains a NUL, 0x14 or 0x15 byte (EDF+ annotation delimiters)".into(),
        );
    }
    Ok(())
}

/// What an annotation entered by a user (the service, `theta annotate`) must also satisfy, on a
/// recording of `duration` seconds: it lies on the recording's timeline (an onset of 1e300 or
/// -10 s cannot be shown, reviewed or exported sensibly), and it says something printable.
/// Imported annotations keep what their file says.
pub(crate) fn validate_user_annotation(
    a: &Annotation,
    duration: f64,
) -> std::result::Result<(), String> {
    validate_annotation(a)?;
    // A hundredth of a microsecond of slack: the recording's end is a sum of record durations.
    let end = duration + 1e-8;
    if !(a.onset >= 0.0 && a.onset <= end) {
        return Err(format!(
            "annotation onset {:?} s is outside the recording (0 to {duration:?} s)",
            a.onset
        ));
    }
    if let Some(d) = a.duration
        && a.onset + d > end
    {
        return Err(format!(
            "annotation runs past the recording's end ({duration:?} s): shorten its duration"
        ));
    }
    if a.text.trim().is_empty() {
        return Err("annotation text is empty".into());
    }
    if a.text.chars().any(char::is_control) {
        return Err("annotation text contains a control character".into());
    }
    Ok(())
}

/// Everything the sealing workers need.
struct SealCtx {
    store: Arc<StoreInner>,
    recording: RecordingId,
    dek: DataKey,
    widths: Vec<SampleWidth>,
    spr: Vec<u32>,
    records_per_block: u64,
    group_size: u32,
    base_bucket: u64,
    /// Sample buffers of sealed blocks, handed back to the reader so it does not allocate
    /// (and zero) a new set per block.
    recycled: std::sync::Mutex<Vec<Vec<Vec<i32>>>>,
}

/// Most buffer sets kept for reuse: enough for the blocks in flight, bounded either way.
const RECYCLED_SETS: usize = 64;

/// One time block of every signal, as read.
struct BlockIn {
    block: u64,
    first_record: u64,
    samples: Vec<Vec<i32>>,
}

/// One block sealed: a chunk per group, and level-0 pieces per signal for the pyramid.
struct SealedBlock {
    records: u64,
    chunks: Vec<Vec<u8>>,
    pieces: Vec<Vec<(u32, i32, i32)>>,
}

type Batch = oneshot::Receiver<Result<Vec<SealedBlock>>>;

struct Produced {
    records: u64,
    segments: Vec<Segment>,
    annotations: Vec<Annotation>,
    samples: u64,
}

impl SealCtx {
    fn seal_group(&self, blk: &BlockIn, group: u32) -> Result<Vec<u8>> {
        let nsig = self.spr.len() as u32;
        let sigs = group * self.group_size..((group + 1) * self.group_size).min(nsig);
        let cap: usize = sigs
            .clone()
            .map(|s| {
                4 + theta_codecs::max_encoded_len(
                    blk.samples[s as usize].len(),
                    self.widths[s as usize],
                )
            })
            .sum::<usize>()
            + CHUNK_OVERHEAD;
        let mut buf = Vec::with_capacity(cap);
        buf.resize(CHUNK_HEADER_LEN + NONCE_LEN, 0);
        for s in sigs {
            let at = buf.len();
            buf.extend_from_slice(&[0u8; 4]);
            scratch::encode(&blk.samples[s as usize], self.widths[s as usize], &mut buf)
                .map_err(|e| source_err(format!("signal {s}, block {}: {e}", blk.block)))?;
            let len = (buf.len() - at - 4) as u32;
            buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
        buf.extend_from_slice(&[0u8; TAG_LEN]);
        let scope = self.store.scope(&self.recording);
        seal_chunk(
            &mut buf,
            ObjectKind::DataChunk,
            (group, blk.block, 0),
            &scope,
            &self.dek,
        );
        Ok(buf)
    }

    fn seal_block(&self, blk: BlockIn) -> Result<SealedBlock> {
        let nsig = self.spr.len() as u32;
        let groups = nsig.div_ceil(self.group_size);
        let chunks = (0..groups)
            .into_par_iter()
            .map(|g| self.seal_group(&blk, g))
            .collect::<Result<Vec<_>>>()?;
        let pieces = blk
            .samples
            .iter()
            .zip(&self.spr)
            .map(|(s, &spr)| bucket_pieces(s, blk.first_record * u64::from(spr), self.base_bucket))
            .collect();
        let records = blk.samples[0].len() as u64 / u64::from(self.spr[0]);
        self.recycle(blk.samples);
        Ok(SealedBlock {
            records,
            chunks,
            pieces,
        })
    }

    fn recycle(&self, samples: Vec<Vec<i32>>) {
        let mut pool = self.recycled.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < RECYCLED_SETS {
            pool.push(samples);
        }
    }

    /// A set of block buffers, `spr[s] * records_per_block` samples each: a recycled one
    /// (old samples are overwritten record by record before use) or a new one.
    fn block_buffers(&self) -> Vec<Vec<i32>> {
        let rpb = self.records_per_block as usize;
        let reused = self
            .recycled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        match reused {
            Some(mut bufs) => {
                for (b, &n) in bufs.iter_mut().zip(&self.spr) {
                    // Only the last block of a recording is shorter; it is never recycled
                    // before the reader ends, but keep the length right regardless.
                    b.resize(n as usize * rpb, 0);
                }
                bufs
            }
            None => self
                .spr
                .iter()
                .map(|&n| vec![0i32; n as usize * rpb])
                .collect(),
        }
    }

    fn seal_page(&self, page: &PageOut) -> Result<Vec<u8>> {
        let width = self.widths[page.channel as usize];
        let n = page.min.len();
        let mut buf =
            Vec::with_capacity(CHUNK_OVERHEAD + 4 + 2 * theta_codecs::max_encoded_len(n, width));
        buf.resize(CHUNK_HEADER_LEN + NONCE_LEN + 4, 0);
        scratch::encode(&page.min, width, &mut buf)
            .map_err(|e| StoreError::internal(format!("overview encode: {e}")))?;
        let len = (buf.len() - CHUNK_HEADER_LEN - NONCE_LEN - 4) as u32;
        buf[CHUNK_HEADER_LEN + NONCE_LEN..CHUNK_HEADER_LEN + NONCE_LEN + 4]
            .copy_from_slice(&len.to_le_bytes());
        scratch::encode(&page.max, width, &mut buf)
            .map_err(|e| StoreError::internal(format!("overview encode: {e}")))?;
        buf.extend_from_slice(&[0u8; TAG_LEN]);
        let scope = self.store.scope(&self.recording);
        seal_chunk(
            &mut buf,
            ObjectKind::OverviewPage,
            (page.level, u64::from(page.channel), page.page),
            &scope,
            &self.dek,
        );
        Ok(buf)
    }
}

/// Reads the source record by record into blocks and hands batches of blocks to rayon.
/// Runs on a blocking thread.
fn produce(
    mut source: Box<dyn SampleSource>,
    ctx: Arc<SealCtx>,
    tx: mpsc::Sender<Batch>,
) -> Result<Produced> {
    let spr: Vec<usize> = ctx.spr.iter().map(|&s| s as usize).collect();
    let d = source.record_duration();
    let rpb = ctx.records_per_block as usize;
    let mut cur = ctx.block_buffers();
    let mut in_block = 0usize;
    let mut block = 0u64;
    let mut records = 0u64;
    let mut samples = 0u64;
    let mut segments: Vec<Segment> = Vec::new();
    let mut batch: Vec<BlockIn> = Vec::new();
    let mut batch_samples = 0usize;
    let per_record: usize = spr.iter().sum();

    let dispatch = |batch: Vec<BlockIn>| -> Result<()> {
        let (otx, orx) = oneshot::channel();
        tx.blocking_send(orx)
            .map_err(|_| StoreError::internal("ingest was cancelled"))?;
        let ctx = Arc::clone(&ctx);
        rayon::spawn(move || {
            let sealed = batch
                .into_par_iter()
                .map(|b| ctx.seal_block(b))
                .collect::<Result<Vec<_>>>();
            let _ = otx.send(sealed);
        });
        Ok(())
    };

    loop {
        let onset = {
            let mut outs: Vec<&mut [i32]> = cur
                .iter_mut()
                .zip(&spr)
                .map(|(b, &n)| &mut b[in_block * n..(in_block + 1) * n])
                .collect();
            source
                .next_record(&mut outs)
                .map_err(|e| StoreError::Source { source: e })?
        };
        let Some(onset) = onset else { break };
        if !(onset.is_finite() && onset >= 0.0) {
            return Err(source_err(format!("record {records} has onset {onset}")));
        }
        match segments.last() {
            None => segments.push(Segment {
                first_record: 0,
                onset,
            }),
            Some(last) => {
                let predicted = last.onset + (records - last.first_record) as f64 * d;
                if (onset - predicted).abs() > CONTIGUITY_TOLERANCE {
                    if onset < predicted {
                        return Err(source_err(format!(
                            "record {records} starts at {onset} s, before the end of the previous record ({predicted} s)"
                        )));
                    }
                    segments.push(Segment {
                        first_record: records,
                        onset,
                    });
                }
            }
        }
        records += 1;
        samples += per_record as u64;
        if spr.is_empty() {
            continue;
        }
        in_block += 1;
        if in_block == rpb {
            batch.push(BlockIn {
                block,
                first_record: block * ctx.records_per_block,
                samples: std::mem::replace(&mut cur, ctx.block_buffers()),
            });
            block += 1;
            in_block = 0;
            batch_samples += per_record * rpb;
            if batch_samples >= BATCH_SAMPLES {
                dispatch(std::mem::take(&mut batch))?;
                batch_samples = 0;
            }
        }
    }
    if in_block > 0 {
        for (b, &n) in cur.iter_mut().zip(&spr) {
            b.truncate(in_block * n);
        }
        batch.push(BlockIn {
            block,
            first_record: block * ctx.records_per_block,
            samples: cur,
        });
    }
    if !batch.is_empty() {
        dispatch(batch)?;
    }
    let annotations = source
        .take_annotations()
        .map_err(|e| StoreError::Source { source: e })?;
    for a in &annotations {
        validate_annotation(a).map_err(source_err)?;
    }
    Ok(Produced {
        records,
        segments,
        annotations,
        samples,
    })
}

fn progress_bar(progress: &Progress, total: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !matches!(progress, Progress::Terminal) || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} ingest [{bar:40}] {pos}/{len} records {elapsed_precise} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

pub(crate) async fn ingest(
    store: &Arc<StoreInner>,
    source: Box<dyn SampleSource>,
    opts: IngestOptions,
) -> Result<IngestReport> {
    validate_source(source.as_ref())?;
    if !(opts.block_seconds.is_finite() && opts.block_seconds > 0.0) || opts.group_size == 0 {
        return Err(StoreError::InvalidArgument {
            what: "block_seconds must be > 0 and group_size >= 1".into(),
        });
    }
    opts.overview
        .validate()
        .map_err(|what| StoreError::InvalidArgument { what })?;
    let id = RecordingId::generate();
    let lease = Lease::acquire(store, id).await?;
    let result = run(store, id, source, &opts).await;
    if result.is_err() {
        // Best effort: whatever is left is removed by the next cleanup once the lease expires.
        let _ = super::lease::remove_recording_objects(store, &id).await;
    }
    lease.release(store).await;
    result
}

async fn run(
    store: &Arc<StoreInner>,
    id: RecordingId,
    source: Box<dyn SampleSource>,
    opts: &IngestOptions,
) -> Result<IngestReport> {
    let t0 = Instant::now();
    let signals: Vec<SignalInfo> = source.signals().to_vec();
    let d = source.record_duration();
    let nsig = signals.len() as u32;
    let max_spr = signals
        .iter()
        .map(|s| u64::from(s.samples_per_record))
        .max()
        .unwrap_or(1);
    let records_per_block = if nsig == 0 {
        1
    } else {
        let r = (opts.block_seconds / d).round();
        let r = if r.is_finite() && r >= 1.0 {
            r as u64
        } else {
            1
        };
        r.min((MAX_CHUNK_SAMPLES / max_spr).max(1))
    };
    let group_size = opts.group_size.min(nsig.max(1));
    let header = source.header().clone();
    let raw_hint = source.raw_bytes();
    let total_records = source.record_count();
    let scope = store.scope(&id);

    let dek = DataKey::generate();
    let kek = store.keyring.current_kek()?;
    let prefix = key_prefix(&store.store_id, &id, &opts.tenant, &kek);
    let wrapped = store
        .keyring
        .wrap(&kek, &dek, &wrap_aad(&scope, &prefix))
        .await?;
    let key_bytes = encode_wrapped_key(&prefix, &wrapped);
    let mut stored = key_bytes.len() as u64;
    store.put(&paths::key(&id), key_bytes).await?;

    let ctx = Arc::new(SealCtx {
        store: Arc::clone(store),
        recording: id,
        dek: dek.clone(),
        widths: signals.iter().map(|s| s.width).collect(),
        spr: signals.iter().map(|s| s.samples_per_record).collect(),
        records_per_block,
        group_size,
        base_bucket: opts.overview.base_bucket,
        recycled: std::sync::Mutex::new(Vec::new()),
    });
    let (tx, mut rx) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
    let producer = {
        let ctx = Arc::clone(&ctx);
        tokio::task::spawn_blocking(move || produce(source, ctx, tx))
    };

    let mut data = PackedWriter::new(
        Arc::clone(store),
        id,
        PackKind::Data,
        opts.data_object_bytes,
    );
    let mut ovw = PackedWriter::new(
        Arc::clone(store),
        id,
        PackKind::Overview,
        opts.data_object_bytes,
    );
    let mut chunk_lens: Vec<u32> = Vec::new();
    let mut pages: Vec<PageEntry> = Vec::new();
    let mut pyramid = PyramidBuilder::new(opts.overview, signals.len());
    let bar = progress_bar(&opts.progress, total_records);
    let mut done_records = 0u64;
    let mut uploaded = 0u64;

    let consumed: Result<()> = async {
        let mut page_outs = Vec::new();
        while let Some(batch) = rx.recv().await {
            let blocks = batch
                .await
                .map_err(|_| StoreError::internal("a sealing worker panicked"))??;
            for blk in blocks {
                for chunk in blk.chunks {
                    chunk_lens.push(chunk.len() as u32);
                    uploaded += chunk.len() as u64;
                    data.append(chunk).await?;
                }
                data.boundary().await?;
                for (ch, pieces) in blk.pieces.iter().enumerate() {
                    pyramid.feed(ch, pieces, &mut page_outs);
                }
                done_records += blk.records;
            }
            for p in page_outs.drain(..) {
                write_page(&ctx, &mut ovw, &mut pages, &p).await?;
            }
            if let Some(bar) = &bar {
                bar.set_position(done_records);
            }
            if let Progress::Callback(f) = &opts.progress {
                f(&IngestProgress {
                    records: done_records,
                    records_total: total_records,
                    stored_bytes: uploaded,
                });
            }
        }
        Ok(())
    }
    .await;
    drop(rx);
    let produced = producer
        .await
        .map_err(|_| StoreError::internal("the ingest reader panicked"));
    let produced = match (consumed, produced) {
        (Ok(()), Ok(Ok(p))) => p,
        (Err(e), _) | (Ok(()), Err(e)) | (Ok(()), Ok(Err(e))) => {
            data.abort().await;
            ovw.abort().await;
            if let Some(bar) = &bar {
                bar.abandon();
            }
            return Err(e);
        }
    };
    for p in pyramid.finish() {
        write_page(&ctx, &mut ovw, &mut pages, &p).await?;
    }
    let data_objects = data.finish().await?;
    let overview_objects = ovw.finish().await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let layout = ChunkLayout {
        records_per_block,
        group_size,
        signals: nsig,
        records: produced.records,
    };
    if chunk_lens.len() as u64 != layout.chunks() {
        return Err(StoreError::internal("chunk count differs from the layout"));
    }
    stored += data_objects.iter().map(|o| o.bytes).sum::<u64>();
    stored += overview_objects.iter().map(|o| o.bytes).sum::<u64>();

    let n_annotations = produced.annotations.len();
    let annotation_events = if n_annotations > 0 {
        stored += annotations::write_import(store, id, &dek, produced.annotations).await?;
        1
    } else {
        0
    };

    let index = ChunkIndex { chunk_lens, pages }.encode();
    let index_obj = seal_object(INDEX_MAGIC, ObjectKind::Index, 0, &scope, &[], &index, &dek);
    let index_bytes = index_obj.len() as u64;
    stored += index_bytes;
    store.put(&paths::index(&id), index_obj).await?;

    let raw_bytes = raw_hint.unwrap_or_else(|| {
        signals
            .iter()
            .map(|s| {
                let w = if s.width == SampleWidth::Bits16 { 2 } else { 3 };
                w * u64::from(s.samples_per_record) * produced.records
            })
            .sum()
    });
    let body = ManifestBody {
        format_version: FORMAT_VERSION,
        recording: id,
        tenant: opts.tenant.clone(),
        ingested_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        source_name: opts.source_name.clone(),
        header,
        signals,
        record_duration: d,
        num_records: produced.records,
        segments: produced.segments,
        layout,
        codec: CODEC_NAME.into(),
        data_objects,
        overview: opts.overview,
        overview_objects,
        index_bytes,
        annotation_events,
        raw_bytes,
        stored_bytes: stored,
    };
    let duration = body.timeline().end();
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(&body).map_err(|e| StoreError::internal(format!("manifest: {e}")))?,
    );
    let manifest = seal_object(
        MANIFEST_MAGIC,
        ObjectKind::Manifest,
        0,
        &scope,
        &manifest_clear(&opts.tenant),
        &json,
        &dek,
    );
    let manifest_len = manifest.len() as u64;
    // The commit point: until this object exists the recording is invisible.
    if !store.put_create(&paths::manifest(&id), manifest).await? {
        return Err(StoreError::internal(
            "a manifest already exists for a new recording id",
        ));
    }
    Ok(IngestReport {
        recording: id,
        tenant: opts.tenant.clone(),
        signals: nsig as usize,
        records: produced.records,
        duration,
        samples: produced.samples,
        raw_bytes,
        stored_bytes: stored + manifest_len,
        chunks: layout.chunks(),
        annotations: n_annotations,
        elapsed: t0.elapsed(),
    })
}

async fn write_page(
    ctx: &SealCtx,
    ovw: &mut PackedWriter,
    pages: &mut Vec<PageEntry>,
    p: &PageOut,
) -> Result<()> {
    let sealed = ctx.seal_page(p)?;
    let len = sealed.len() as u32;
    let (object, offset) = ovw.append(sealed).await?;
    pages.push(PageEntry {
        level: p.level,
        channel: p.channel,
        page: p.page,
        object,
        len,
        offset,
    });
    Ok(())
}
