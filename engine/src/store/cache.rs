//! A bounded, bytes-based LRU cache of decoded chunks and overview pages, shared by every
//! recording of a store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ids::RecordingId;

/// Cache key: a data chunk or an overview page of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    Chunk {
        recording: RecordingId,
        chunk: u64,
    },
    Page {
        recording: RecordingId,
        level: u32,
        channel: u32,
        page: u64,
    },
}

impl CacheKey {
    fn recording(&self) -> RecordingId {
        match self {
            CacheKey::Chunk { recording, .. } | CacheKey::Page { recording, .. } => *recording,
        }
    }
}

/// A decoded data chunk: the samples of each signal of the group over the block.
#[derive(Debug)]
pub(crate) struct DecodedChunk {
    pub(crate) channels: Vec<Vec<i32>>,
}

/// A decoded overview page: per-bucket minima and maxima.
#[derive(Debug)]
pub(crate) struct DecodedPage {
    pub(crate) min: Vec<i32>,
    pub(crate) max: Vec<i32>,
}

#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Chunk(Arc<DecodedChunk>),
    Page(Arc<DecodedPage>),
}

impl Cached {
    fn size(&self) -> usize {
        // Payload plus a rough per-entry bookkeeping cost.
        128 + match self {
            Cached::Chunk(c) => c.channels.iter().map(|v| v.len() * 4 + 24).sum::<usize>(),
            Cached::Page(p) => (p.min.len() + p.max.len()) * 4,
        }
    }
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<CacheKey, (Cached, u64, usize)>,
    order: BTreeMap<u64, CacheKey>,
    used: usize,
    tick: u64,
}

/// Hit and miss counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that had to fetch and decode.
    pub misses: u64,
    /// Bytes currently held.
    pub used_bytes: u64,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct ChunkCache {
    capacity: usize,
    inner: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ChunkCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Lru::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic while holding the lock leaves a consistent map (every mutation is
        // completed before anything can panic), so a poisoned lock is safe to reuse.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Cached> {
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        let found = match lru.map.get_mut(key) {
            Some(entry) => {
                let old = entry.1;
                entry.1 = tick;
                Some((entry.0.clone(), old))
            }
            None => None,
        };
        match found {
            Some((v, old)) => {
                lru.order.remove(&old);
                lru.order.insert(tick, *key);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(v)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Whether a key is present, without counting a hit or refreshing it.
    pub(crate) fn contains(&self, key: &CacheKey) -> bool {
        self.lock().map.contains_key(key)
    }

    pub(crate) fn insert(&self, key: CacheKey, value: Cached) {
        let size = value.size();
        if size > self.capacity {
            return;
        }
        let mut lru = self.lock();
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((_, old_tick, old_size)) = lru.map.insert(key, (value, tick, size)) {
            lru.order.remove(&old_tick);
            lru.used -= old_size;
        }
        lru.order.insert(tick, key);
        lru.used += size;
        while lru.used > self.capacity {
            let Some((_, victim)) = lru.order.pop_first() else {
                break;
            };
            if let Some((_, _, s)) = lru.map.remove(&victim) {
                lru.used -= s;
            }
        }
    }

    pub(crate) fn clear(&self) {
        let mut lru = self.lock();
        lru.map.clear();
        lru.order.clear();
        lru.used = 0;
    }

    pub(crate) fn remove_recording(&self, recording: &RecordingId) {
        let mut lru = self.lock();
        let victims: Vec<(CacheKey, u64)> = lru
            .map
            .iter()
            .filter(|(k, _)| k.recording() == *recording)
            .map(|(k, v)| (*k, v.1))
            .collect();
        for (k, t) in victims {
            lru.order.remove(&t);
            if let Some((_, _, s)) = lru.map.remove(&k) {
                lru.used -= s;
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let used = self.lock().used;
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            used_bytes: used as u64,
            capacity_bytes: self.capacity as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: usize) -> Cached {
        Cached::Chunk(Arc::new(DecodedChunk {
            channels: vec![vec![0; n]],
        }))
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let r = RecordingId::generate();
        let key = |c| CacheKey::Chunk {
            recording: r,
            chunk: c,
        };
        let one = chunk(1000).size();
        let cache = ChunkCache::new(one * 3);
        for c in 0..3 {
            cache.insert(key(c), chunk(1000));
        }
        assert!(cache.get(&key(0)).is_some()); // 0 is now the most recent
        cache.insert(key(3), chunk(1000));
        assert!(cache.contains(&key(0)));
        assert!(!cache.contains(&key(1)), "least recently used evicted");
        assert!(cache.stats().used_bytes as usize <= one * 3);
        cache.insert(key(9), chunk(1_000_000)); // larger than the cache: not kept
        assert!(!cache.contains(&key(9)));
        cache.remove_recording(&r);
        assert_eq!(cache.stats().used_bytes, 0);
    }
}
