//! The renderings of full lists kept for the next download, bounded in bytes. Every format,
//! family, aggregation and cap of a list is a rendering of its own, and one of a million-entry
//! list in JSON is over a hundred megabytes, so a reader asking for each variant in turn could
//! otherwise make the replica hold all of them. Past the budget the least recently used
//! renderings are dropped; a rendering larger than the whole budget is not kept (it is rendered
//! again, streaming, for each download). Pure: no IO, no locking (the owner holds it in a mutex).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use bytes::Bytes;

/// One kept rendering.
#[derive(Debug)]
struct Kept {
    chunks: Arc<Vec<Bytes>>,
    bytes: usize,
    /// The cache's clock when it was last read or stored.
    used: u64,
}

/// Renderings by key, at most `budget` bytes of them.
#[derive(Debug)]
pub struct RenderCache<K> {
    kept: HashMap<K, Kept>,
    bytes: usize,
    budget: usize,
    clock: u64,
}

impl<K: Hash + Eq + Clone> RenderCache<K> {
    /// An empty cache keeping at most `budget` bytes (0 keeps nothing).
    pub fn new(budget: usize) -> Self {
        RenderCache { kept: HashMap::new(), bytes: 0, budget, clock: 0 }
    }

    /// The rendering kept for `key`, if any (it becomes the most recently used).
    pub fn get(&mut self, key: &K) -> Option<Arc<Vec<Bytes>>> {
        self.clock += 1;
        let kept = self.kept.get_mut(key)?;
        kept.used = self.clock;
        Some(kept.chunks.clone())
    }

    /// Keeps `chunks` for `key`, dropping the least recently used renderings until it fits;
    /// returns whether it was kept (not when it alone exceeds the budget).
    pub fn insert(&mut self, key: K, chunks: Arc<Vec<Bytes>>) -> bool {
        let bytes: usize = chunks.iter().map(Bytes::len).sum();
        if let Some(old) = self.kept.remove(&key) {
            self.bytes -= old.bytes;
        }
        if bytes > self.budget {
            return false;
        }
        while self.bytes + bytes > self.budget {
            let Some(oldest) = self.kept.iter().min_by_key(|(_, kept)| kept.used).map(|(key, _)| key.clone()) else { break };
            if let Some(dropped) = self.kept.remove(&oldest) {
                self.bytes -= dropped.bytes;
            }
        }
        self.clock += 1;
        self.bytes += bytes;
        self.kept.insert(key, Kept { chunks, bytes, used: self.clock });
        true
    }

    /// Keeps only the renderings whose key passes `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        let mut freed = 0;
        self.kept.retain(|key, kept| {
            let stays = keep(key);
            if !stays {
                freed += kept.bytes;
            }
            stays
        });
        self.bytes -= freed;
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(bytes: usize) -> Arc<Vec<Bytes>> {
        Arc::new(vec![Bytes::from(vec![b'x'; bytes / 2]), Bytes::from(vec![b'y'; bytes - bytes / 2])])
    }

    #[test]
    fn past_the_budget_the_least_recently_used_renderings_go() {
        let mut cache = RenderCache::new(100);
        assert!(cache.insert("plain", chunks(40)));
        assert!(cache.insert("json", chunks(40)));
        assert!(cache.get(&"plain").is_some(), "plain is now the most recently used");
        assert!(cache.insert("csv", chunks(40)));
        assert_eq!(cache.bytes(), 80);
        assert!(cache.get(&"json").is_none(), "the least recently used went");
        assert!(cache.get(&"plain").is_some() && cache.get(&"csv").is_some());
    }

    #[test]
    fn a_rendering_larger_than_the_budget_is_not_kept_and_a_replacement_is_counted_once() {
        let mut cache = RenderCache::new(100);
        assert!(cache.insert("plain", chunks(60)));
        assert!(!cache.insert("json", chunks(101)));
        assert!(cache.get(&"json").is_none());
        assert!(cache.insert("plain", chunks(70)));
        assert_eq!(cache.bytes(), 70);
        cache.retain(|key| *key != "plain");
        assert_eq!(cache.bytes(), 0);
        assert!(!RenderCache::new(0).insert("plain", chunks(1)), "a budget of 0 keeps nothing");
    }
}
