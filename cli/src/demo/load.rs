//! The load driver: an open-loop request stream at a fixed rate through the
//! client workload's outbound proxy, recording each outcome in [`Stats`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::backend::POD_HEADER;
use super::http_get::{self, HttpClient};
use super::stats::{Outcome, Stats};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A running load driver.
pub struct Load {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Load {
    /// Starts sending `rate` requests per second to `url` with `Host: host`.
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        while in_flight.try_join_next().is_some() {}
        let (client, url, host, stats) = (client.clone(), url.clone(), host.clone(), stats.clone());
        in_flight.spawn(async move {
            let start = Instant::now();
            let outcome = send(&client, &url, &host).await;
            stats.record(outcome, start.elapsed());
        });
    }
    while in_flight.join_next().await.is_some() {}
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
