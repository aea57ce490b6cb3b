//! Peak-EWMA + power-of-two-choices: a slow endpoint is avoided.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use wisp_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_endpoint_gets_little_traffic() {
    let mesh = Mesh::start(3, 8080, false, &[]).await;
    let backends = mesh.http_backends().await;
    backends[2].set_delay(Duration::from_millis(50));
    mesh.wait_routable().await;

    // Open-loop load at ~150 req/s: one request every ~6.7 ms, each on its
    // own task so a slow answer does not hold back the schedule.
    let client = http1_client();
    let out = mesh.client.outbound;
    let run = |secs: u64| {
        let client = client.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_micros(6_667));
            let end = Instant::now() + Duration::from_secs(secs);
            let mut tasks = Vec::new();
            while Instant::now() < end {
                tick.tick().await;
                let client = client.clone();
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let r = get_via(&client, out, WEB_FQDN).await;
                    (
                        t.elapsed(),
                        r.map(|(s, b, _)| (s, b)).map_err(|e| e.to_string()),
                    )
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };

    let warm = run(3).await;
    assert!(warm
        .iter()
        .all(|(_, r)| matches!(r, Ok((http::StatusCode::OK, _)))));
    let measured = run(5).await;
    let mut by_backend: HashMap<String, usize> = HashMap::new();
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for (lat, r) in &measured {
        let (status, backend) = r.as_ref().expect("request failed");
        assert_eq!(*status, http::StatusCode::OK);
        *by_backend.entry(backend.clone()).or_default() += 1;
        hist.record(lat.as_micros() as u64).unwrap();
    }
    let total = measured.len();
    assert!(total > 500, "only {total} requests measured");
    let slow = by_backend.get("pod-2").copied().unwrap_or(0);
    let p99 = Duration::from_micros(hist.value_at_quantile(0.99));
    eprintln!(
        "balancing: {by_backend:?}, p50 {:?}, p99 {p99:?}",
        Duration::from_micros(hist.value_at_quantile(0.5))
    );
    assert!(
        (slow as f64) < 0.10 * total as f64,
        "slow endpoint got {slow} of {total} requests: {by_backend:?}"
    );
    assert!(p99 < Duration::from_millis(25), "p99 {p99:?}");
    // The two fast endpoints share the rest.
    assert!(
        by_backend.get("pod-0").copied().unwrap_or(0) > total / 5,
        "{by_backend:?}"
    );
    assert!(
        by_backend.get("pod-1").copied().unwrap_or(0) > total / 5,
        "{by_backend:?}"
    );
}
