//! Closed-loop maximum-throughput load: every stream sends back-to-back.

use crate::client::{Protocol, Sender, Target};
use crate::load::{ensure_connected, open_connections};
use crate::phase::PhaseSpec;
use crate::sampler::PhaseSampler;
use crate::stats::{LoadResult, Outcome, Recorder};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

/// Pause after a failed connect so a dead target is not hammered in a tight loop.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// Runs a closed-loop phase: HTTP/1.1 uses one stream per connection,
/// HTTP/2 `streams` concurrent streams on each connection.
pub async fn run(
    spec: &PhaseSpec,
    streams: usize,
    sampler: &mut PhaseSampler,
) -> Result<LoadResult> {
    let target = Arc::new(spec.target.clone());
    let conns = open_connections(&target, spec.connections.max(1)).await?;
    let measure_start = Instant::now() + spec.warmup;
    let end = measure_start + spec.duration;
    let per_conn = match target.protocol {
        Protocol::Http1 => 1,
        Protocol::Http2 => streams.max(1),
    };

    let mut tasks = JoinSet::new();
    for conn in conns {
        let extra: Vec<Option<Sender>> = (1..per_conn)
            .map(|_| conn.as_ref().and_then(Sender::share))
            .collect();
        for slot in std::iter::once(conn).chain(extra) {
            tasks.spawn(stream_loop(
                target.clone(),
                slot,
                measure_start,
                end,
                spec.timeout,
            ));
        }
    }

    sleep_until(measure_start).await;
    sampler.begin();
    let mut total = Recorder::new()?;
    while let Some(joined) = tasks.join_next().await {
        total.merge(&joined.context("load task failed")??)?;
    }
    let elapsed = measure_start.elapsed();
    let cpu = sampler.end();
    Ok(total.finish(spec.setup(), elapsed, cpu))
}

/// One stream: send, wait for the full response, repeat until `end`.
async fn stream_loop(
    target: Arc<Target>,
    mut conn: Option<Sender>,
    measure_start: Instant,
    end: Instant,
    timeout: Duration,
) -> Result<Recorder> {
    let mut rec = Recorder::new()?;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return Ok(rec);
        }
        let recorded = sent >= measure_start;
        let outcome = match ensure_connected(&target, &mut conn).await {
            Ok(sender) => sender.send(target.request(), timeout).await,
            Err(kind) => Outcome::Failed(kind),
        };
        let failed_connect = matches!(
            outcome,
            Outcome::Failed("connect" | "connect_timeout" | "handshake")
        );
        if recorded {
            rec.record(outcome, sent.elapsed(), Duration::ZERO);
        }
        if failed_connect {
            sleep(RECONNECT_BACKOFF).await;
        }
    }
}
