//! gRPC through the mesh: tonic client -> proxy -> proxy -> tonic server.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus as Wire;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use wisp_tests::*;

/// A gRPC channel to `outbound` whose requests carry `:authority = web:80`.
async fn channel(outbound: std::net::SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{outbound}"))
        .unwrap()
        .origin(format!("http://{WEB_AUTHORITY}").parse().unwrap())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_streaming_and_error_status() {
    let mesh = Mesh::start(1, 9090, true, &[]).await;
    let backend = GrpcBackend::start(mesh.app_addr(0)).await;
    let mut client = HealthClient::new(channel(mesh.client.outbound).await);

    // Unary (polling until discovery has answered).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client.check(check("web")).await {
            Ok(_) => break,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "unary check never succeeded: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rsp = client.check(check("web")).await.unwrap().into_inner();
    assert_eq!(rsp.status(), Wire::Serving);

    // Error status with message: trailers-only from the server, via two proxies.
    let err = client.check(check("nope")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "service not registered");

    // Server streaming: the first status, then a change.
    let mut stream = client.watch(check("web")).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), Wire::Serving);
    backend
        .reporter
        .set_service_status("web", tonic_health::ServingStatus::NotServing)
        .await;
    let second = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.status(), Wire::NotServing);
    drop(stream);

    // Metrics: the NOT_FOUND response is a gRPC status 5 on both proxies.
    let client_proxy = &mesh.client;
    let ok = eventually(Duration::from_secs(2), || async move {
        let m = client_proxy.metrics().await;
        metric_sum(
            &m,
            "response_total",
            &[
                ("direction", "outbound"),
                ("authority", WEB_AUTHORITY),
                ("grpc_status", "5"),
            ],
        ) == 1.0
            && metric_sum(
                &m,
                "response_total",
                &[
                    ("direction", "outbound"),
                    ("grpc_status", "0"),
                    ("classification", "success"),
                ],
            ) >= 2.0
    })
    .await;
    assert!(ok, "client metrics:\n{}", mesh.client.metrics().await);
    let m = mesh.servers[0].metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "response_total",
            &[("direction", "inbound"), ("grpc_status", "5")]
        ),
        1.0,
        "server metrics:\n{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_to_unmeshed_endpoint() {
    let mesh = Mesh::start(1, 9090, false, &[]).await;
    let _backend = GrpcBackend::start(mesh.app_addr(0)).await;
    let client = HealthClient::new(channel(mesh.client.outbound).await);
    let ok = eventually(Duration::from_secs(10), || {
        let mut c = client.clone();
        async move { c.check(check("web")).await.is_ok() }
    })
    .await;
    assert!(ok);
    let err = client.clone().check(check("other")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "service not registered");
}
