//! ServiceProfiles from `Destination.GetProfile`: one stream per target
//! (`name:port` or `ip:port`), shared and idle-evicted like discovery; every
//! answer is converted once (by the caller's `convert`, so this module
//! knows nothing about routes) and replaces the target's profile at once:
//! new requests use it, in-flight ones finish with the one they started with.

use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::destination::{
    destination_client::DestinationClient, DestinationProfile, GetDestination,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cache::Cache;
use crate::control::follow::{follow, Event, Stopped};

/// How long a new target waits for its first GetProfile answer.
pub(crate) const PROFILE_TIMEOUT: Duration = Duration::from_millis(500);

/// Most targets followed at once.
const MAX_TARGETS: usize = 10_000;

/// Turns an answer for a target into the caller's profile type.
pub(crate) type Convert<P> = Arc<dyn Fn(DestinationProfile, &str) -> P + Send + Sync>;

/// The live profile of one target; dropping it ends the stream.
pub(crate) struct ProfileWatch<P> {
    rx: watch::Receiver<Option<Arc<P>>>,
    created: Instant,
    task: tokio::task::AbortHandle,
}

impl<P> Drop for ProfileWatch<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<P> ProfileWatch<P> {
    /// The latest profile, if one has arrived.
    pub(crate) fn current(&self) -> Option<Arc<P>> {
        self.rx.borrow().clone()
    }

    /// The latest profile; while the watch is new, waits for the first one
    /// until [`PROFILE_TIMEOUT`] after the watch started. So requests to a
    /// new service see its routes, and a dead control plane costs each
    /// target that wait only once, not once per connection or request.
    pub(crate) async fn initial(&self) -> Option<Arc<P>> {
        if let Some(p) = self.current() {
            return Some(p);
        }
        let deadline = self.created + PROFILE_TIMEOUT;
        if Instant::now() >= deadline {
            return None;
        }
        let mut rx = self.rx.clone();
        let wait = async {
            let _ = rx.wait_for(Option::is_some).await;
        };
        let _ = tokio::time::timeout_at(deadline, wait).await;
        self.current()
    }
}

/// Profile streams by target.
pub(crate) struct Profiles<P> {
    client: DestinationClient<Channel>,
    context: String,
    convert: Convert<P>,
    cache: Cache<String, ProfileWatch<P>>,
}

impl<P: Send + Sync + 'static> Profiles<P> {
    /// Lookups through `client` with `context` as the context token;
    /// answers become profiles with `convert`; unused targets are dropped
    /// after `idle`.
    pub(crate) fn new(
        client: DestinationClient<Channel>,
        context: String,
        convert: Convert<P>,
        idle: Duration,
    ) -> Self {
        Profiles {
            client,
            context,
            convert,
            cache: Cache::new(idle, MAX_TARGETS),
        }
    }

    /// The profile watch for `target` (`host:port`), starting its stream if needed.
    pub(crate) fn watch(&self, target: &str) -> Arc<ProfileWatch<P>> {
        self.cache.get_or_insert_with(target, || {
            let (tx, rx) = watch::channel(None);
            let task = tokio::spawn(stream(
                self.client.clone(),
                self.context.clone(),
                target.to_string(),
                self.convert.clone(),
                tx,
            ));
            Arc::new(ProfileWatch {
                rx,
                created: Instant::now(),
                task: task.abort_handle(),
            })
        })
    }

    /// Drops watches unused for the idle timeout.
    pub(crate) fn evict_idle(&self) {
        self.cache.evict_idle();
    }
}

/// Runs GetProfile for `target`, publishing each answer; reconnects with
/// backoff; stops when the name is rejected or the watch is dropped.
async fn stream<P>(
    client: DestinationClient<Channel>,
    context: String,
    target: String,
    convert: Convert<P>,
    tx: watch::Sender<Option<Arc<P>>>,
) {
    let open = || {
        let mut client = client.clone();
        let req = GetDestination {
            scheme: String::new(),
            path: target.clone(),
            context_token: context.clone(),
        };
        async move { client.get_profile(req).await }
    };
    let stopped = follow(&target, open, |event| {
        if let Event::Message { msg, .. } = event {
            tx.send_replace(Some(Arc::new(convert(msg, &target))));
        }
        !tx.is_closed()
    })
    .await;
    if let Stopped::Rejected(status) = stopped {
        tracing::debug!(%target, %status, "no profile for this target");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_for_test() -> (watch::Sender<Option<Arc<u32>>>, ProfileWatch<u32>) {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(std::future::pending::<()>());
        let w = ProfileWatch {
            rx,
            created: Instant::now(),
            task: task.abort_handle(),
        };
        (tx, w)
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_control_plane_costs_the_wait_only_once() {
        let (_tx, w) = watch_for_test();
        let started = Instant::now();
        assert!(w.initial().await.is_none());
        assert_eq!(started.elapsed(), PROFILE_TIMEOUT);
        // The next connection to the same target does not wait again.
        let again = Instant::now();
        assert!(w.initial().await.is_none());
        assert_eq!(again.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn initial_returns_as_soon_as_the_profile_arrives() {
        let (tx, w) = watch_for_test();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send_replace(Some(Arc::new(7)));
            tx
        });
        let started = Instant::now();
        assert_eq!(w.initial().await.as_deref(), Some(&7));
        assert_eq!(started.elapsed(), Duration::from_millis(20));
        assert_eq!(w.current().as_deref(), Some(&7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_watcher_waits_only_for_what_is_left() {
        let (_tx, w) = watch_for_test();
        tokio::time::advance(Duration::from_millis(400)).await;
        let started = Instant::now();
        assert!(w.initial().await.is_none());
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }
}
