//! Waiting for the next index change on behalf of one stream.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::index::Index;

/// What a policy stream task needs to follow the index.
#[derive(Debug)]
pub struct Changes {
    index: Arc<Index>,
    version: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
}

impl Changes {
    /// Subscribes to `index` (before the first read, so no change is missed).
    pub fn new(index: Arc<Index>, stop: watch::Receiver<bool>) -> Self {
        Self {
            version: index.subscribe(),
            index,
            stop,
        }
    }

    /// The index; marks the current version as seen.
    pub fn index(&mut self) -> &Index {
        self.version.borrow_and_update();
        &self.index
    }

    /// Waits for the next index change; false when the stream should end
    /// (client gone, server stopping, or index dropped).
    pub async fn wait<T>(&mut self, tx: &mpsc::Sender<T>) -> bool {
        tokio::select! {
            changed = self.version.changed() => changed.is_ok(),
            _ = tx.closed() => false,
            _ = self.stop.wait_for(|stop| *stop) => false,
        }
    }
}
