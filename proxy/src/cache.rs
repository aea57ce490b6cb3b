//! A small map of shared values that forgets entries unused for a while.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Values by key, each dropped once unused for `idle`; at most `capacity`
/// entries (the least recently used goes first).
pub struct Cache<K, V> {
    map: Mutex<HashMap<K, (Arc<V>, Instant)>>,
    idle: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> Cache<K, V> {
    /// An empty cache.
    pub fn new(idle: Duration, capacity: usize) -> Self {
        Cache {
            map: Mutex::default(),
            idle,
            capacity,
        }
    }

    /// The value for `key`, made with `make` if absent.
    pub fn get_or_insert_with<Q>(&self, key: &Q, make: impl FnOnce() -> Arc<V>) -> Arc<V>
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
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove::<K>(&k);
            }
        }
        let v = make();
        map.insert(key.to_owned(), (v.clone(), now));
        v
    }

    /// The value for `key`, if present (and marks it used).
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        let mut map = self.map.lock().ok()?;
        let (v, used) = map.get_mut(key)?;
        *used = Instant::now();
        Some(v.clone())
    }

    /// Drops entries unused for the idle timeout.
    pub fn evict_idle(&self) {
        let now = Instant::now();
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, (_, used)| now.duration_since(*used) < self.idle);
        }
    }
}
