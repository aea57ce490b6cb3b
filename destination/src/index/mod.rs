//! In-memory index of Services, EndpointSlices, Pods, ServiceProfiles and
//! TrafficSplits.
//!
//! A source feeds the index with [`IndexEvent`]s (full snapshots or single
//! add/delete events); every change bumps a version published on a
//! `tokio::sync::watch` channel so open gRPC streams recompute their answer.
//! Pods and EndpointSlices are kept as [`PodSummary`] and
//! [`EndpointSliceSummary`] values (what wisp reads of them), the other
//! kinds as their typed objects.

mod object;
pub mod pod;
pub mod slice;
mod store;

pub use object::{Kind, Object, ObjectKey, ObjectRef};
pub use pod::{pod_ips, PodSummary};
pub use slice::{EndpointSliceSummary, SliceEndpoint, SERVICE_NAME_LABEL};
pub use store::{cluster_ips, Store};

use std::sync::RwLock;
use tokio::sync::watch;

/// One change delivered by a source.
#[derive(Clone, Debug)]
pub enum IndexEvent {
    /// Replace the whole index with these objects.
    Reset(Vec<Object>),
    /// Replace every object of one kind with these objects.
    ResetKind(Kind, Vec<Object>),
    /// Add or replace one object.
    Upsert(Object),
    /// Remove one object.
    Delete(ObjectRef),
}

/// The shared index: a store behind a lock plus a change notifier.
#[derive(Debug)]
pub struct Index {
    store: RwLock<Store>,
    version: watch::Sender<u64>,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    /// Creates an empty index at version 0.
    pub fn new() -> Self {
        let (version, _) = watch::channel(0);
        Self {
            store: RwLock::new(Store::default()),
            version,
        }
    }

    /// Applies one event; returns true (and notifies subscribers) if anything changed.
    pub fn apply(&self, event: IndexEvent) -> bool {
        let changed = {
            let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
            match event {
                IndexEvent::Reset(objects) => {
                    let fresh = Store::from_objects(objects);
                    if *store != fresh {
                        *store = fresh;
                        true
                    } else {
                        false
                    }
                }
                IndexEvent::ResetKind(kind, objects) => store.reset_kind(kind, objects),
                IndexEvent::Upsert(object) => store.upsert(object),
                IndexEvent::Delete(object) => store.delete(&object),
            }
        };
        if changed {
            self.version.send_modify(|v| *v += 1);
        }
        changed
    }

    /// Runs `f` with read access to the store.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        f(&store)
    }

    /// Subscribes to change notifications (the value is the index version).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Number of live subscribers (open streams); useful to check for leaks.
    pub fn subscribers(&self) -> usize {
        self.version.receiver_count()
    }

    /// The current version (incremented on every change).
    pub fn version(&self) -> u64 {
        *self.version.borrow()
    }
}
