//! A load balancer over one service's endpoints: power of two choices over
//! peak-EWMA latency, with pending requests counted against an endpoint.
//!
//! The endpoint set is written by the discovery task (see `discovery.rs`)
//! and read by every request that picks an endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::endpoint::{Endpoint, EndpointMeta};

/// What discovery has said about the service so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// No answer yet.
    Pending,
    /// Endpoints are known (possibly none right now after removals).
    Ready,
    /// The service exists (`exists: true`) or not, and has no endpoints.
    NoEndpoints {
        /// Whether the service exists.
        exists: bool,
    },
    /// Discovery refused the name (InvalidArgument): it will never resolve.
    Rejected(String),
}

/// One service's endpoints and their balancer.
pub struct Balancer {
    authority: String,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    state: watch::Sender<Resolution>,
    /// Stops the discovery task when the last user drops the balancer.
    pub(crate) task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().ok().and_then(|mut t| t.take()) {
            t.abort();
        }
    }
}

impl Balancer {
    /// An empty balancer for `authority`, waiting for discovery.
    pub fn new(authority: String) -> Self {
        Balancer {
            authority,
            endpoints: Mutex::default(),
            state: watch::Sender::new(Resolution::Pending),
            task: Mutex::default(),
        }
    }

    /// The logical name this balancer serves.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Waits up to `timeout` for the first discovery answer.
    pub async fn resolved(&self, timeout: Duration) -> Resolution {
        // Fast path, taken by every request once discovery has answered:
        // no subscription, no timer.
        let current = self.state.borrow().clone();
        if current != Resolution::Pending {
            return current;
        }
        let mut rx = self.state.subscribe();
        let wait = async {
            let _ = rx.wait_for(|s| *s != Resolution::Pending).await;
        };
        let _ = tokio::time::timeout(timeout, wait).await;
        self.state.borrow().clone()
    }

    /// Picks an endpoint: the less loaded of two chosen at random.
    pub fn pick(&self) -> Option<Arc<Endpoint>> {
        let eps = self.endpoints.lock().ok()?;
        match eps.len() {
            0 => None,
            1 => Some(eps[0].clone()),
            n => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let now = Instant::now();
                let (ea, eb) = (&eps[a], &eps[b]);
                Some(if ea.load(now) <= eb.load(now) { ea } else { eb }.clone())
            }
        }
    }

    /// The current endpoint addresses (for tests and debugging).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.endpoints
            .lock()
            .map(|e| e.iter().map(|e| e.addr).collect())
            .unwrap_or_default()
    }

    /// Adds or replaces endpoints; `reset` first drops those not in `new`
    /// (the first answer on a new discovery stream replaces what an older
    /// stream said). Unchanged endpoints keep their pools and load; `make`
    /// builds the others.
    pub fn add(
        &self,
        new: Vec<(SocketAddr, EndpointMeta)>,
        reset: bool,
        make: impl Fn(SocketAddr, EndpointMeta) -> Arc<Endpoint>,
    ) {
        if let Ok(mut eps) = self.endpoints.lock() {
            if reset {
                eps.retain(|old| new.iter().any(|(a, m)| *a == old.addr && *m == old.meta));
            }
            for (addr, meta) in new {
                match eps.iter_mut().find(|e| e.addr == addr) {
                    Some(old) if old.meta == meta => {}
                    Some(old) => *old = make(addr, meta),
                    None => eps.push(make(addr, meta)),
                }
            }
        }
        self.state.send_replace(Resolution::Ready);
    }

    /// Removes endpoints by address. In-flight requests on them finish.
    pub fn remove(&self, addrs: &[SocketAddr]) {
        if let Ok(mut eps) = self.endpoints.lock() {
            eps.retain(|e| !addrs.contains(&e.addr));
        }
    }

    /// Clears the set: the service has no endpoints (or does not exist).
    pub fn no_endpoints(&self, exists: bool) {
        if let Ok(mut eps) = self.endpoints.lock() {
            eps.clear();
        }
        self.state.send_replace(Resolution::NoEndpoints { exists });
    }

    /// Discovery refused the name.
    pub fn reject(&self, why: String) {
        self.state.send_replace(Resolution::Rejected(why));
    }
}
