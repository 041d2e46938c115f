//! Whole-record reads for exports: every signal over one time block of data records, decoded
//! without going through the page cache (a full export would only evict the viewers' pages).

use std::ops::Range;

use rayon::prelude::*;

use super::error::Result;
use super::recording::Recording;
use super::run_cpu;

/// The digital samples of every signal over a run of whole data records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBlock {
    /// Records covered (indices into the recording's data records).
    pub records: Range<u64>,
    /// Per signal (in signal order), `samples_per_record × records.len()` samples.
    pub signals: Vec<Vec<i32>>,
}

impl RecordBlock {
    /// The samples of signal `s` in record `r` (an absolute record index inside `records`).
    pub fn record(&self, s: usize, r: u64, samples_per_record: u32) -> &[i32] {
        let spr = samples_per_record as usize;
        let k = (r - self.records.start) as usize;
        &self.signals[s][k * spr..(k + 1) * spr]
    }
}

impl Recording {
    /// Number of time blocks (each [`ChunkLayout::records_per_block`](super::ChunkLayout)
    /// records, the last one possibly shorter); read them with [`Recording::read_block`].
    pub fn blocks(&self) -> u64 {
        self.layout().blocks()
    }

    /// Reads every signal over time block `block`, decoding its chunks in parallel.
    ///
    /// # Errors
    /// [`super::StoreError::WindowOutOfRange`]-like argument errors for a block past the end;
    /// [`super::StoreError::Integrity`] naming the first chunk that fails authentication;
    /// object store failures.
    pub async fn read_block(&self, block: u64) -> Result<RecordBlock> {
        let layout = self.layout();
        if block >= layout.blocks() {
            return Err(super::StoreError::InvalidArgument {
                what: format!("block {block} of a recording with {} blocks", layout.blocks()),
            });
        }
        let chunks: Vec<u64> = (0..layout.groups()).map(|g| layout.chunk(g, block)).collect();
        let sealed = self.fetch_data(chunks.iter().copied()).await?;
        let this = self.clone();
        let decoded = run_cpu(move || {
            chunks
                .into_par_iter()
                .zip(sealed)
                .map(|(c, b)| this.decode_chunk(c, &b))
                .collect::<Result<Vec<_>>>()
        })
        .await??;
        let signals = decoded.into_iter().flat_map(|d| d.channels).collect();
        Ok(RecordBlock {
            records: layout.block_records(block),
            signals,
        })
    }
}
