//! Load balancing over one service's endpoints: power of two choices over
//! peak-EWMA latency, with pending requests counted against an endpoint;
//! the endpoints themselves, their connection pools and how they connect.
//!
//! The endpoint set is written by discovery (`control::discovery`) and read
//! by every request that picks an endpoint. Nothing here knows about
//! ServiceProfiles or the control plane.

mod connect;
mod endpoint;
mod ewma;
mod pool;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub(crate) use connect::OpaqueConn;
#[cfg(test)]
pub(crate) use endpoint::test_factory;
pub(crate) use endpoint::{Endpoint, EndpointFactory, EndpointMeta, EndpointState};
pub(crate) use pool::{PoolError, SendError};

/// What discovery has said about the service so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
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

/// What a balancer knows right now (the admin dump).
#[derive(Debug)]
pub(crate) struct BalancerState {
    /// The service.
    pub(crate) authority: String,
    /// Discovery's answer so far: `pending`, `ready`, `no_endpoints`,
    /// `not_found` or `rejected`.
    pub(crate) resolution: &'static str,
    /// The endpoints are remembered ones discovery has not confirmed.
    pub(crate) stale: bool,
    /// The endpoints.
    pub(crate) endpoints: Vec<EndpointState>,
}

impl wisp_common::json::ToJson for BalancerState {
    fn write_json(&self, out: &mut String) {
        wisp_common::json_object!(out;
            "authority" => &self.authority,
            "resolution" => self.resolution,
            "stale" => &self.stale,
            "endpoints" => &self.endpoints,
        );
    }
}

/// One service's endpoints and their balancer.
pub(crate) struct Balancer {
    authority: String,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
    state: watch::Sender<Resolution>,
    /// The endpoints are remembered ones, not yet confirmed by discovery.
    stale: AtomicBool,
    /// Stops the discovery task when the last user drops the balancer.
    task: Mutex<Option<tokio::task::AbortHandle>>,
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
    pub(crate) fn new(authority: String) -> Self {
        Balancer {
            authority,
            endpoints: Mutex::default(),
            state: watch::Sender::new(Resolution::Pending),
            stale: AtomicBool::new(false),
            task: Mutex::default(),
        }
    }

    /// Aborts `task` (the discovery stream) when the balancer is dropped.
    pub(crate) fn stop_on_drop(&self, task: tokio::task::AbortHandle) {
        if let Ok(mut t) = self.task.lock() {
            *t = Some(task);
        }
    }

    /// The logical name this balancer serves.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// Whether discovery has not answered yet.
    pub(crate) fn is_pending(&self) -> bool {
        *self.state.borrow() == Resolution::Pending
    }

    /// Whether the endpoints are remembered ones discovery has not confirmed.
    #[cfg(test)]
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for the first discovery answer.
    pub(crate) async fn resolved(&self, timeout: Duration) -> Resolution {
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
    pub(crate) fn pick(&self) -> Option<Arc<Endpoint>> {
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

    /// The current endpoints as discovery described them.
    pub(crate) fn snapshot(&self) -> Vec<(SocketAddr, EndpointMeta)> {
        self.endpoints
            .lock()
            .map(|e| e.iter().map(|e| (e.addr, e.meta.clone())).collect())
            .unwrap_or_default()
    }

    /// What the balancer knows right now.
    pub(crate) fn state(&self) -> BalancerState {
        let now = Instant::now();
        BalancerState {
            authority: self.authority.clone(),
            resolution: match &*self.state.borrow() {
                Resolution::Pending => "pending",
                Resolution::Ready => "ready",
                Resolution::NoEndpoints { exists: true } => "no_endpoints",
                Resolution::NoEndpoints { exists: false } => "not_found",
                Resolution::Rejected(_) => "rejected",
            },
            stale: self.stale.load(Ordering::Relaxed),
            endpoints: self
                .endpoints
                .lock()
                .map(|e| e.iter().map(|e| e.state(now)).collect())
                .unwrap_or_default(),
        }
    }

    /// Adds or replaces endpoints; `reset` first drops those not in `new`
    /// (the first answer on a new discovery stream replaces what an older
    /// stream said). Unchanged endpoints keep their pools and load; `make`
    /// builds the others.
    pub(crate) fn add(
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
        self.stale.store(false, Ordering::Relaxed);
        self.state.send_replace(Resolution::Ready);
    }

    /// Serves remembered endpoints while discovery is unreachable; the
    /// first answer from discovery replaces them.
    pub(crate) fn use_stale(
        &self,
        endpoints: Vec<(SocketAddr, EndpointMeta)>,
        make: impl Fn(SocketAddr, EndpointMeta) -> Arc<Endpoint>,
    ) {
        self.add(endpoints, true, make);
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Removes endpoints by address. In-flight requests on them finish.
    pub(crate) fn remove(&self, addrs: &[SocketAddr]) {
        if let Ok(mut eps) = self.endpoints.lock() {
            eps.retain(|e| !addrs.contains(&e.addr));
        }
    }

    /// Clears the set: the service has no endpoints (or does not exist).
    pub(crate) fn no_endpoints(&self, exists: bool) {
        if let Ok(mut eps) = self.endpoints.lock() {
            eps.clear();
        }
        self.stale.store(false, Ordering::Relaxed);
        self.state.send_replace(Resolution::NoEndpoints { exists });
    }

    /// Discovery refused the name.
    pub(crate) fn reject(&self, why: String) {
        self.state.send_replace(Resolution::Rejected(why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::endpoint::test_factory;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn p2c_prefers_the_faster_endpoint() {
        let factory = test_factory();
        let b = Balancer::new("svc:80".into());
        b.add(
            vec![
                (addr(1), EndpointMeta::default()),
                (addr(2), EndpointMeta::default()),
            ],
            true,
            |a, m| factory.outbound(a, m, None),
        );
        // Teach the balancer: endpoint 1 answers in 1 ms, endpoint 2 in 80 ms.
        for _ in 0..20 {
            for ep in b.endpoints.lock().map(|e| e.clone()).unwrap_or_default() {
                let slow = ep.addr.port() == 2;
                let req = ep.start_request();
                tokio::time::advance(Duration::from_millis(if slow { 80 } else { 1 })).await;
                req.complete();
            }
        }
        let fast = (0..1000)
            .filter_map(|_| b.pick())
            .filter(|e| e.addr.port() == 1)
            .count();
        // With two endpoints, P2C always compares both: the fast one wins.
        assert_eq!(fast, 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_requests_count_against_an_endpoint() {
        let factory = test_factory();
        let b = Balancer::new("svc:80".into());
        b.add(
            vec![
                (addr(1), EndpointMeta::default()),
                (addr(2), EndpointMeta::default()),
            ],
            true,
            |a, m| factory.outbound(a, m, None),
        );
        let eps = b.endpoints.lock().map(|e| e.clone()).unwrap_or_default();
        let busy: Vec<_> = (0..3).map(|_| eps[0].start_request()).collect();
        assert!((0..100)
            .filter_map(|_| b.pick())
            .all(|e| e.addr == eps[1].addr));
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn resolution_waits_for_the_first_answer_up_to_the_timeout() {
        let b = Arc::new(Balancer::new("svc:80".into()));
        let started = Instant::now();
        assert_eq!(
            b.resolved(Duration::from_secs(3)).await,
            Resolution::Pending
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let b2 = b.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            b2.no_endpoints(true);
        });
        let started = Instant::now();
        assert_eq!(
            b.resolved(Duration::from_secs(3)).await,
            Resolution::NoEndpoints { exists: true }
        );
        assert_eq!(started.elapsed(), Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn stale_endpoints_serve_until_discovery_answers() {
        let factory = test_factory();
        let b = Balancer::new("svc:80".into());
        b.use_stale(vec![(addr(1), EndpointMeta::default())], |a, m| {
            factory.outbound(a, m, None)
        });
        assert!(b.is_stale());
        assert_eq!(b.resolved(Duration::ZERO).await, Resolution::Ready);
        assert_eq!(b.pick().map(|e| e.addr), Some(addr(1)));
        b.add(vec![(addr(2), EndpointMeta::default())], true, |a, m| {
            factory.outbound(a, m, None)
        });
        assert!(!b.is_stale());
        assert_eq!(
            b.snapshot().into_iter().map(|(a, _)| a).collect::<Vec<_>>(),
            vec![addr(2)]
        );
    }
}
