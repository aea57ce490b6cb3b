//! Open-loop (constant-rate) load with coordinated-omission correction.
//!
//! Request `i` has the intended send time `start + i / rate`. With HTTP/1.1
//! each connection carries one request at a time: a request whose intended
//! time passes while every connection is busy waits for the first free one,
//! and its latency is counted from the intended time. A request sent on an
//! idle connection is timed from the moment it is actually sent, so the
//! generator's own scheduling delay does not inflate latencies; it shows up
//! in the separate send-lag figures. Sleeps use a timerfd ([`Pacer`]) so
//! the schedule is kept to within microseconds, not tokio's 1 ms ticks.
//! With HTTP/2 the requests are spread round-robin over multiplexed
//! connections and never wait for each other in the generator.

use crate::client::{Protocol, Sender, Target};
use crate::pacer::Pacer;
use crate::phase::PhaseSpec;
use crate::sampler::PhaseSampler;
use crate::stats::{LoadResult, Outcome, Recorder};
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

/// The fixed request schedule of one phase.
struct Schedule {
    start: Instant,
    rate: f64,
    /// Index of the first request inside the measured window.
    first_recorded: u64,
    /// One past the last request index.
    total: u64,
    /// No request is started after this instant.
    hard_deadline: Instant,
}

impl Schedule {
    fn intended(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    fn measure_start(&self) -> Instant {
        self.intended(self.first_recorded)
    }

    /// Recorded requests with an index in `from..total`.
    fn recorded_from(&self, from: u64) -> u64 {
        self.total.saturating_sub(from.max(self.first_recorded))
    }
}

/// Runs an open-loop phase at `rate` requests per second.
pub async fn run(spec: &PhaseSpec, rate: f64, sampler: &mut PhaseSampler) -> Result<LoadResult> {
    if !(rate > 0.0 && rate.is_finite()) {
        bail!("rate must be a positive number, got {rate}");
    }
    let target = Arc::new(spec.target.clone());
    let conns = open_connections(&target, spec.connections.max(1)).await?;

    let warm = (spec.warmup.as_secs_f64() * rate).floor() as u64;
    let measured = (spec.duration.as_secs_f64() * rate).floor().max(1.0) as u64;
    let start = Instant::now() + Duration::from_millis(10);
    let end = start + spec.warmup + spec.duration;
    let schedule = Arc::new(Schedule {
        start,
        rate,
        first_recorded: warm,
        total: warm + measured,
        hard_deadline: end + spec.timeout,
    });

    let driver: tokio::task::JoinHandle<Result<Recorder>> = match target.protocol {
        Protocol::Http1 => tokio::spawn(http1_phase(
            schedule.clone(),
            target.clone(),
            conns,
            spec.timeout,
            spec.coarse_timer,
        )),
        Protocol::Http2 => tokio::spawn(http2_phase(
            schedule.clone(),
            target.clone(),
            conns,
            spec.timeout,
            spec.coarse_timer,
        )),
    };

    let measure_start = schedule.measure_start();
    sleep_until(measure_start).await;
    sampler.begin();
    let recorder = driver.await.context("load task failed")??;
    let elapsed = measure_start.elapsed();
    let cpu = sampler.end();
    Ok(recorder.finish(spec.setup(), elapsed, cpu))
}

/// Opens `n` connections concurrently; fails only if none can be opened.
pub async fn open_connections(target: &Arc<Target>, n: usize) -> Result<Vec<Option<Sender>>> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let target = target.clone();
        set.spawn(async move { (i, target.connect().await) });
    }
    let mut conns: Vec<Option<Sender>> = (0..n).map(|_| None).collect();
    let mut last_err = "connect";
    while let Some(joined) = set.join_next().await {
        let (i, res) = joined.context("connect task failed")?;
        match res {
            Ok(sender) => conns[i] = Some(sender),
            Err(kind) => last_err = kind,
        }
    }
    if conns.iter().all(Option::is_none) {
        bail!(
            "could not open any connection to {} ({last_err})",
            target.addr
        );
    }
    Ok(conns)
}

/// Makes sure `slot` holds a usable connection, reconnecting if needed.
pub async fn ensure_connected<'a>(
    target: &Target,
    slot: &'a mut Option<Sender>,
) -> Result<&'a mut Sender, &'static str> {
    if slot.as_ref().is_none_or(Sender::is_closed) {
        *slot = None;
        *slot = Some(target.connect().await?);
    }
    slot.as_mut().ok_or("connect")
}

/// HTTP/1.1: one worker per connection, each taking the next request index
/// from a shared counter when it becomes free.
async fn http1_phase(
    schedule: Arc<Schedule>,
    target: Arc<Target>,
    conns: Vec<Option<Sender>>,
    timeout: Duration,
    coarse_timer: bool,
) -> Result<Recorder> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for conn in conns {
        workers.spawn(http1_worker(
            schedule.clone(),
            target.clone(),
            next.clone(),
            conn,
            timeout,
            coarse_timer,
        ));
    }
    let mut total = Recorder::new()?;
    while let Some(joined) = workers.join_next().await {
        let (rec, abandoned) = joined.context("load worker failed")??;
        total.merge(&rec)?;
        total.record_unsent("unsent", abandoned);
    }
    let never_taken = next.load(Ordering::Relaxed).min(schedule.total);
    total.record_unsent("unsent", schedule.recorded_from(never_taken));
    Ok(total)
}

/// One HTTP/1.1 connection's loop. Returns its recorder and the number of
/// recorded requests it gave up on because the hard deadline had passed.
async fn http1_worker(
    schedule: Arc<Schedule>,
    target: Arc<Target>,
    next: Arc<AtomicU64>,
    mut conn: Option<Sender>,
    timeout: Duration,
    coarse_timer: bool,
) -> Result<(Recorder, u64)> {
    let mut rec = Recorder::new()?;
    let mut pacer = Pacer::new(coarse_timer);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= schedule.total {
            return Ok((rec, 0));
        }
        let recorded = i >= schedule.first_recorded;
        let intended = schedule.intended(i);
        let free_at = Instant::now();
        if free_at > schedule.hard_deadline {
            return Ok((rec, u64::from(recorded)));
        }
        if free_at < intended {
            pacer.sleep_until(intended).await;
        }
        let sent = Instant::now();
        // Waiting for a busy connection is part of the latency; our own
        // timer slack on an idle connection is not.
        let origin = if free_at > intended { intended } else { sent };
        let outcome = match ensure_connected(&target, &mut conn).await {
            Ok(sender) => sender.send(target.request(), timeout).await,
            Err(kind) => Outcome::Failed(kind),
        };
        if recorded {
            let done = Instant::now();
            rec.record(
                outcome,
                done - origin,
                sent.saturating_duration_since(intended),
            );
        }
    }
}

/// HTTP/2: a scheduler spawns every request at its intended time on the
/// next connection in round-robin order.
async fn http2_phase(
    schedule: Arc<Schedule>,
    target: Arc<Target>,
    mut conns: Vec<Option<Sender>>,
    timeout: Duration,
    coarse_timer: bool,
) -> Result<Recorder> {
    let shared = Arc::new(Mutex::new(Recorder::new()?));
    let mut inflight = JoinSet::new();
    let mut unsent = 0;
    let n = conns.len();
    let mut pacer = Pacer::new(coarse_timer);
    for i in 0..schedule.total {
        let intended = schedule.intended(i);
        pacer.sleep_until(intended).await;
        if Instant::now() > schedule.hard_deadline {
            unsent = schedule.recorded_from(i);
            break;
        }
        let recorded = i >= schedule.first_recorded;
        let idx = usize::try_from(i).unwrap_or(0) % n;
        let sender = match ensure_connected(&target, &mut conns[idx]).await {
            Ok(sender) => sender.share(),
            Err(kind) => {
                if recorded {
                    lock(&shared).record(Outcome::Failed(kind), intended.elapsed(), Duration::ZERO);
                }
                continue;
            }
        };
        let Some(mut sender) = sender else {
            bail!("HTTP/2 connection could not be shared");
        };
        let (target, shared) = (target.clone(), shared.clone());
        inflight.spawn(async move {
            let sent = Instant::now();
            let outcome = sender.send(target.request(), timeout).await;
            if recorded {
                let done = Instant::now();
                lock(&shared).record(
                    outcome,
                    done - sent,
                    sent.saturating_duration_since(intended),
                );
            }
        });
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
    let mut total = Recorder::new()?;
    total.merge(&lock(&shared))?;
    total.record_unsent("unsent", unsent);
    Ok(total)
}

/// Locks the recorder, tolerating a poisoned mutex (a panicked task).
fn lock(m: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
