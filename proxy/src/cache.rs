//! A bounded map of shared values that forgets entries unused for a while.
//!
//! Every operation is O(1) apart from the entries it evicts: the entries are
//! kept in recency order (the `lru` crate's linked hash map), so the idle
//! ones are always at the cold end and an idle sweep stops at the first
//! entry still in use. The lock is never held across an await.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use tokio::time::{Duration, Instant};

/// Values by key, each dropped once unused for `idle`; at most `capacity`
/// entries (the least recently used goes first).
pub(crate) struct Cache<K: Hash + Eq, V> {
    map: Mutex<LruCache<K, (Arc<V>, Instant)>>,
    idle: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> Cache<K, V> {
    /// An empty cache of at most `capacity` (at least one) entries.
    pub(crate) fn new(idle: Duration, capacity: usize) -> Self {
        // `LruCache::new(n)` would allocate room for `n` entries up front;
        // the map grows with use instead, and the bound is enforced here.
        Cache {
            map: Mutex::new(LruCache::unbounded()),
            idle,
            capacity: capacity.max(1),
        }
    }

    /// The value for `key` (marked used), made with `make` if absent. When
    /// the cache is full, the least recently used entry makes room.
    pub(crate) fn get_or_insert_with<Q>(&self, key: &Q, make: impl FnOnce() -> Arc<V>) -> Arc<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = Instant::now();
        let Ok(mut map) = self.map.lock() else {
            return make();
        };
        if let Some((v, used)) = map.get_mut(key) {
            *used = now;
            return v.clone();
        }
        if map.len() >= self.capacity {
            map.pop_lru();
        }
        let v = make();
        map.push(key.to_owned(), (v.clone(), now));
        v
    }

    /// Drops the entries unused for the idle timeout and returns them.
    pub(crate) fn evict_idle(&self) -> Vec<(K, Arc<V>)> {
        let now = Instant::now();
        let mut evicted = Vec::new();
        if let Ok(mut map) = self.map.lock() {
            while let Some((_, (_, used))) = map.peek_lru() {
                if now.saturating_duration_since(*used) < self.idle {
                    break;
                }
                if let Some((k, (v, _))) = map.pop_lru() {
                    evicted.push((k, v));
                }
            }
        }
        evicted
    }

    /// Every entry, most recently used first (without marking them used).
    pub(crate) fn entries(&self) -> Vec<(K, Arc<V>)> {
        self.map
            .lock()
            .map(|m| m.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// How many entries are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn capacity_evicts_the_least_recently_used() {
        let c: Cache<String, u32> = Cache::new(Duration::from_secs(5), 2);
        c.get_or_insert_with("a", || Arc::new(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        c.get_or_insert_with("b", || Arc::new(2));
        tokio::time::advance(Duration::from_millis(1)).await;
        // Touch "a": "b" is now the coldest.
        assert_eq!(*c.get_or_insert_with("a", || Arc::new(99)), 1);
        c.get_or_insert_with("c", || Arc::new(3));
        assert_eq!(c.len(), 2);
        assert_eq!(*c.get_or_insert_with("a", || Arc::new(99)), 1, "kept");
        assert_eq!(
            *c.get_or_insert_with("b", || Arc::new(20)),
            20,
            "evicted, rebuilt"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_are_evicted_in_recency_order() {
        let c: Cache<String, u32> = Cache::new(Duration::from_secs(5), 100);
        c.get_or_insert_with("old", || Arc::new(1));
        tokio::time::advance(Duration::from_secs(3)).await;
        c.get_or_insert_with("new", || Arc::new(2));
        tokio::time::advance(Duration::from_secs(2)).await;
        let gone: Vec<String> = c.evict_idle().into_iter().map(|(k, _)| k).collect();
        assert_eq!(gone, vec!["old".to_string()]);
        assert_eq!(c.len(), 1);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(c.evict_idle().len(), 1);
        assert_eq!(c.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_used_entry_is_not_idle() {
        let c: Cache<String, u32> = Cache::new(Duration::from_secs(5), 100);
        c.get_or_insert_with("k", || Arc::new(1));
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(4)).await;
            c.get_or_insert_with("k", || Arc::new(2));
            assert!(c.evict_idle().is_empty());
        }
    }
}
