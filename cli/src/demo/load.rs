//! The load driver: an open-loop request stream at a fixed rate through the
//! client workload's outbound proxy, recording each outcome in [`Stats`].
//! Requests cycle through a fixed mix of paths: of every 20, 15 are
//! `GET /books/N`, 4 are `GET /flaky` and 1 is `GET /slow`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::backend::POD_HEADER;
use super::http_get::{self, HttpClient};
use super::profile::{BOOKS, FLAKY, SLOW};
use super::stats::{Outcome, Stats};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A running load driver.
pub struct Load {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts sending `rate` requests per second to the paths of [`path`]
    /// under `url` (ending in `/`) with `Host: host`.
    pub fn start(url: String, host: String, rate: u32, stats: Arc<Stats>) -> Load {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(drive(url, host, rate, stats, stopped));
        Load { stop, task }
    }

    /// Stops sending and waits for the requests in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn drive(
    url: String,
    host: String,
    rate: u32,
    stats: Arc<Stats>,
    mut stopped: watch::Receiver<bool>,
) {
    let client = http_get::client();
    let url: Arc<str> = url.into();
    let host: Arc<str> = host.into();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut in_flight = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        while in_flight.try_join_next().is_some() {}
        let (route, path) = path(n);
        n += 1;
        let url = format!("{url}{path}");
        let (client, host, stats) = (client.clone(), host.clone(), stats.clone());
        in_flight.spawn(async move {
            let start = Instant::now();
            let outcome = send(&client, &url, &host).await;
            stats.record(route, outcome, start.elapsed());
        });
    }
    while in_flight.join_next().await.is_some() {}
}

/// The `n`th request's route (index in [`super::profile::ROUTES`]) and
/// path, without the leading `/`.
pub fn path(n: u64) -> (usize, String) {
    match n % 20 {
        0 => (SLOW, "slow".to_string()),
        5 | 10 | 15 | 18 => (FLAKY, "flaky".to_string()),
        _ => (BOOKS, format!("books/{}", n % 97)),
    }
}

async fn send(client: &HttpClient, url: &str, host: &str) -> Outcome {
    match http_get::get(client, url, Some(host), REQUEST_TIMEOUT).await {
        Ok(reply) => Outcome::Response {
            status: reply.status.as_u16(),
            pod: reply
                .headers
                .get(POD_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        },
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "demo request failed");
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_of_paths() {
        let mut counts = [0; 3];
        for n in 0..200 {
            let (route, path) = path(n);
            counts[route] += 1;
            match route {
                BOOKS => assert!(path.starts_with("books/"), "{path}"),
                FLAKY => assert_eq!(path, "flaky"),
                _ => assert_eq!(path, "slow"),
            }
        }
        assert_eq!(counts, [150, 40, 10]);
    }
}
