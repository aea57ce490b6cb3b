//! The end-to-end check before the load starts: rounds of concurrent
//! requests through the client's proxy until every backend has answered.
//!
//! Concurrency matters: the proxy's balancer counts requests in flight, so
//! a burst spreads over all endpoints even though, once it has measured
//! them, it keeps away from the slow one.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::task::JoinSet;

use super::backend::POD_HEADER;
use super::http_get;

/// Requests per round, per backend.
const PER_BACKEND: usize = 3;
/// Rounds before giving up on seeing every backend.
const MAX_ROUNDS: usize = 5;
/// How long one warm-up request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the warm-up saw.
#[derive(Default)]
pub struct Report {
    /// Requests sent.
    pub sent: usize,
    /// Requests answered with 2xx.
    pub ok: usize,
    /// The pods that answered.
    pub answered: BTreeSet<String>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl Report {
    /// Adds another warm-up's figures to these (the first failure stays).
    pub fn merge(&mut self, other: Report) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.answered.extend(other.answered);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Sends rounds of concurrent GETs to `url` (with `Host: host`) until every
/// one of `pods` has answered or [`MAX_ROUNDS`] have passed.
pub async fn run(url: &str, host: &str, pods: &[&str]) -> Report {
    let client = http_get::client();
    let mut report = Report::default();
    for _ in 0..MAX_ROUNDS {
        let mut round = JoinSet::new();
        for _ in 0..PER_BACKEND * pods.len().max(1) {
            let (client, url, host) = (client.clone(), url.to_string(), host.to_string());
            round.spawn(async move { http_get::get(&client, &url, Some(&host), TIMEOUT).await });
        }
        while let Some(joined) = round.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            report.sent += 1;
            match result {
                Ok(reply) if reply.status.is_success() => {
                    report.ok += 1;
                    if let Some(pod) = reply.headers.get(POD_HEADER).and_then(|v| v.to_str().ok()) {
                        report.answered.insert(pod.to_string());
                    }
                }
                Ok(reply) => {
                    let body = String::from_utf8_lossy(&reply.body);
                    report
                        .first_error
                        .get_or_insert_with(|| format!("{}: {}", reply.status, body.trim()));
                }
                Err(e) => {
                    report.first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        if pods.iter().all(|p| report.answered.contains(*p)) {
            break;
        }
    }
    report
}
