//! Packed objects: many sealed chunks appended to a few large objects, uploaded in parts.

use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStoreExt, WriteMultipart};

use super::StoreInner;
use super::error::Result;
use super::format::{PACK_HEADER_LEN, PackKind, pack_header, paths};
use super::ids::RecordingId;
use super::manifest::PackedObjectInfo;

/// Size of an upload part (S3 needs at least 5 MiB for every part but the last).
const PART_BYTES: usize = 8 << 20;
/// Parts uploading at once per object.
const PARTS_IN_FLIGHT: usize = 4;

struct OpenObject {
    number: u32,
    upload: WriteMultipart,
    bytes: u64,
    first: u64,
    count: u64,
}

pub(crate) struct PackedWriter {
    store: Arc<StoreInner>,
    recording: RecordingId,
    kind: PackKind,
    target_bytes: u64,
    current: Option<OpenObject>,
    done: Vec<PackedObjectInfo>,
    next_number: u32,
    items: u64,
}

impl PackedWriter {
    pub(crate) fn new(
        store: Arc<StoreInner>,
        recording: RecordingId,
        kind: PackKind,
        target_bytes: u64,
    ) -> Self {
        Self {
            store,
            recording,
            kind,
            target_bytes: target_bytes.max(1),
            current: None,
            done: Vec::new(),
            next_number: 0,
            items: 0,
        }
    }

    /// Appends a sealed item; returns (object number, offset in it).
    pub(crate) async fn append(&mut self, item: Vec<u8>) -> Result<(u32, u64)> {
        if self.current.is_none() {
            let number = self.next_number;
            self.next_number += 1;
            let path = paths::packed(&self.recording, self.kind, number);
            let upload = self.store.os.put_multipart(&path).await?;
            let mut upload = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            upload.write(&pack_header(
                self.kind,
                &self.store.store_id,
                &self.recording,
                number,
            ));
            self.current = Some(OpenObject {
                number,
                upload,
                bytes: PACK_HEADER_LEN as u64,
                first: self.items,
                count: 0,
            });
        }
        let cur = self.current.as_mut().expect("opened above");
        let at = (cur.number, cur.bytes);
        cur.bytes += item.len() as u64;
        cur.count += 1;
        self.items += 1;
        cur.upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        cur.upload.put(Bytes::from(item));
        Ok(at)
    }

    /// Closes the current object if it has reached its target size (call at boundaries
    /// where an object may end, such as the end of a time block).
    pub(crate) async fn boundary(&mut self) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.bytes >= self.target_bytes)
        {
            self.close().await?;
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(cur) = self.current.take() {
            cur.upload.finish().await?;
            self.done.push(PackedObjectInfo {
                number: cur.number,
                first: cur.first,
                count: cur.count,
                bytes: cur.bytes,
            });
        }
        Ok(())
    }

    /// Completes every object and returns their descriptions.
    pub(crate) async fn finish(mut self) -> Result<Vec<PackedObjectInfo>> {
        self.close().await?;
        Ok(self.done)
    }

    /// Abandons the upload in progress (objects already completed are deleted by the
    /// caller's cleanup of the recording's prefix).
    pub(crate) async fn abort(mut self) {
        if let Some(cur) = self.current.take() {
            let _ = cur.upload.abort().await;
        }
    }
}
