//! Endpoint changes under load, and a destination service outage.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use wisp_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_added_under_load_gets_traffic_within_1s() {
    let mesh = Mesh::start(2, 8080, false, &[]).await;
    let _b = mesh.http_backends().await;
    let new_ip = mesh.net.ip(13);
    let newcomer = HttpBackend::start(std::net::SocketAddr::from((new_ip, 8080)), "new").await;
    mesh.wait_routable().await;

    let load = LoadGen::start(mesh.client.outbound, WEB_FQDN, 4, Duration::from_millis(2));
    assert!(eventually(Duration::from_secs(5), || async { load.count() > 50 }).await);
    let added = Instant::now();
    mesh.set_endpoints(&[mesh.pods[0], mesh.pods[1], new_ip]);
    let reached = eventually(Duration::from_secs(1), || async { newcomer.hits() > 0 }).await;
    let waited = added.elapsed();
    // Keep the load on a little longer to see the balancer spread it.
    let before = newcomer.hits();
    assert!(
        eventually(Duration::from_secs(3), || async {
            newcomer.hits() > before + 10
        })
        .await
    );
    let samples = load.stop().await;
    assert!(
        reached,
        "new endpoint got no traffic within 1s (waited {waited:?})"
    );
    assert_no_failures(&samples);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_removed_under_load_is_drained_without_failures() {
    let mesh = Mesh::start(3, 8080, true, &[]).await;
    let backends = mesh.http_backends().await;
    mesh.wait_routable().await;

    let load = LoadGen::start(mesh.client.outbound, WEB_FQDN, 4, Duration::from_millis(2));
    assert!(eventually(Duration::from_secs(5), || async { backends[2].hits() > 10 }).await);
    let removed = Instant::now();
    mesh.set_endpoints(&mesh.pods[..2]);

    // Wait until the removed backend stops receiving requests: no new hit
    // during a 300 ms window.
    let mut last = backends[2].hits();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(3);
    while quiet_since.elapsed() < Duration::from_millis(300) {
        assert!(
            Instant::now() < deadline,
            "removed endpoint kept getting traffic"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let h = backends[2].hits();
        if h != last {
            last = h;
            quiet_since = Instant::now();
        }
    }
    let drained_after = removed.elapsed();
    assert!(drained_after < Duration::from_secs(2), "{drained_after:?}");

    // From now on it gets nothing while the others keep serving.
    let others = backends[0].hits() + backends[1].hits();
    assert!(
        eventually(Duration::from_secs(3), || async {
            backends[0].hits() + backends[1].hits() > others + 100
        })
        .await
    );
    let samples = load.stop().await;
    assert_eq!(
        backends[2].hits(),
        last,
        "removed endpoint got traffic again"
    );
    assert_no_failures(&samples);
    assert!(samples.iter().any(|s| s.backend == "pod-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_outage_keeps_last_endpoints() {
    let mut mesh = Mesh::start(2, 8080, false, &[]).await;
    let _b = mesh.http_backends().await;
    let new_ip = mesh.net.ip(13);
    let newcomer = HttpBackend::start(std::net::SocketAddr::from((new_ip, 8080)), "new").await;
    mesh.wait_routable().await;

    let load = LoadGen::start(mesh.client.outbound, WEB_FQDN, 3, Duration::from_millis(5));
    assert!(eventually(Duration::from_secs(5), || async { load.count() > 30 }).await);

    mesh.cp.stop();
    let at_kill = load.count();
    // The outage lasts a fixed second of load (this is the scenario, not a wait).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        load.count() > at_kill + 50,
        "load stalled during the outage"
    );

    mesh.cp.restart().await;
    let at_restart = load.count();
    assert!(
        eventually(Duration::from_secs(5), || async {
            load.count() > at_restart + 100
        })
        .await
    );

    // A change made after the restart is picked up (after the proxy's
    // reconnect backoff).
    mesh.set_endpoints(&[mesh.pods[0], mesh.pods[1], new_ip]);
    let picked = eventually(Duration::from_secs(10), || async { newcomer.hits() > 0 }).await;
    let samples = load.stop().await;
    assert!(picked, "endpoint added after the restart never got traffic");
    assert_no_failures(&samples);
    let answered_by: std::collections::HashSet<&str> =
        samples.iter().map(|s| s.backend.as_str()).collect();
    assert!(answered_by.contains("pod-0") && answered_by.contains("pod-1"));
}
