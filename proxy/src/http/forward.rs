//! Forwarding one request to one endpoint, for both directions: header
//! rules, `l5d-orig-proto`, upgrades, metrics, and the error answered when
//! the endpoint (or the client) fails.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::balance::{Endpoint, PoolError};
use crate::http::body::{Recorder, ResponseBody};
use crate::http::classify::{grpc_status, Classify};
use crate::http::errors::{describe, is_grpc, ProxyError};
use crate::http::headers::{
    is_upgrade, orig_proto_value, request_authority, shape_for_wire, strip_hop_by_hop, ORIG_PROTO,
};
use crate::http::request_body::RequestBody;
use crate::tap::{Origin, RequestView, TapRequest};
use crate::telemetry::metrics::{Class, HttpMetrics, ResponseKey};

/// What the caller adds to a request sent as one attempt of something
/// larger (a ServiceProfile route): a second series to count the attempt
/// in, and how to classify its response.
pub(crate) struct Attempt<'a> {
    /// Counts each attempt (`route_actual_*`).
    pub(crate) series: Arc<HttpMetrics>,
    /// Decides whether the response failed.
    pub(crate) classify: Arc<dyn Classify>,
    /// The route's labels, for taps (`route_meta`).
    pub(crate) labels: &'a [(String, String)],
}

/// Forwards `req` to `ep` and returns its response, streaming both bodies.
/// Request and response are counted in `metrics` (and the attempt's series).
///
/// An HTTP/1 request to a meshed endpoint that accepts HTTP/2 (`h2` hint)
/// travels as HTTP/2 with `l5d-orig-proto`, so all requests to that
/// endpoint share one multiplexed connection; the peer proxy turns it back
/// into HTTP/1.
pub(crate) async fn to_endpoint(
    ep: &Arc<Endpoint>,
    mut req: Request<RequestBody>,
    metrics: &Arc<HttpMetrics>,
    attempt: Option<&Attempt<'_>>,
    origin: &Origin,
) -> Response<ResponseBody> {
    // While nobody taps, this one relaxed load is all tapping costs.
    let tap = if origin.taps.is_active() {
        start_tap(origin, ep, &req, attempt)
    } else {
        None
    };
    let grpc = is_grpc(&req);
    let version = req.version();
    let connect = req.method() == Method::CONNECT;
    let upgrade = is_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    strip_hop_by_hop(req.headers_mut(), upgrade.is_some());
    let orig_proto = version < Version::HTTP_2 && upgrade.is_none() && ep.meta.h2_hint;
    if orig_proto {
        req.headers_mut().insert(
            ORIG_PROTO,
            HeaderValue::from_static(orig_proto_value(version)),
        );
        *req.version_mut() = Version::HTTP_2;
    }
    let http2 = req.version() == Version::HTTP_2;
    shape_for_wire(&mut req, &ep.addr.to_string());
    let client_faults = req.body().client_faults();
    metrics.request();
    if let Some(a) = attempt {
        a.series.request();
    }
    let inflight = ep.start_request();
    match ep.send(req.map(BodyExt::boxed_unsync), http2).await {
        Ok(mut rsp) => {
            let latency = inflight.complete();
            let switched = rsp.status() == StatusCode::SWITCHING_PROTOCOLS
                || (connect && rsp.status().is_success());
            match upgrade {
                Some(client_side) if switched => {
                    let server_side = hyper::upgrade::on(&mut rsp);
                    tokio::spawn(splice_upgrades(client_side, server_side));
                }
                _ => strip_hop_by_hop(rsp.headers_mut(), false),
            }
            if orig_proto {
                rsp.headers_mut().remove(ORIG_PROTO);
                *rsp.version_mut() = version;
            }
            let tap =
                tap.map(|t| t.respond(rsp.status(), rsp.headers(), grpc_status(rsp.headers())));
            let mut recorder =
                Recorder::new(metrics.clone(), rsp.status(), latency, grpc, rsp.headers());
            if let Some(a) = attempt {
                recorder.add_sink(a.series.clone(), latency);
                recorder.classify_with(a.classify.clone());
            }
            rsp.map(|inner| ResponseBody::Upstream {
                inner,
                recorder: Some(recorder),
                tap,
            })
        }
        Err(e) => {
            let err = match client_faults.and_then(|f| f.take()) {
                // The client's body failed: not the endpoint's fault.
                Some(fault) => {
                    inflight.not_charged();
                    ProxyError::ClientBody(fault)
                }
                None => {
                    drop(inflight);
                    match e {
                        crate::balance::SendError::Pool(source) => ProxyError::Connect {
                            addr: ep.addr,
                            source,
                        },
                        crate::balance::SendError::Request(source) => ProxyError::Upstream {
                            addr: ep.addr,
                            source,
                        },
                    }
                }
            };
            tracing::info!(error = %describe(&err), "request failed");
            let rsp = err.respond(grpc, version);
            if let Some(t) = tap {
                let code = grpc_status(rsp.headers());
                t.respond(rsp.status(), rsp.headers(), code)
                    .end(None, code, None);
            }
            let failed = ResponseKey {
                status: rsp.status().as_u16(),
                grpc_status: grpc.then(|| if err.is_client_fault() { 3 } else { 14 }),
                class: if err.is_client_fault() {
                    Class::Success
                } else {
                    Class::Failure
                },
                error: match &err {
                    ProxyError::Connect {
                        source: PoolError::Busy(_),
                        ..
                    } => "busy",
                    ProxyError::Connect { .. } => "connect",
                    ProxyError::ClientBody(_) => "client",
                    _ => "unexpected",
                },
            };
            if let Some(a) = attempt {
                a.series.response(failed, Duration::ZERO);
            }
            metrics.response(failed, Duration::ZERO);
            rsp
        }
    }
}

/// Asks the open taps whether they want this request; `None` if none does.
fn start_tap(
    origin: &Origin,
    ep: &Endpoint,
    req: &Request<RequestBody>,
    attempt: Option<&Attempt<'_>>,
) -> Option<TapRequest> {
    let authority = request_authority(req).unwrap_or_else(|| ep.addr.to_string());
    let destination_labels = ep.tap_labels();
    let view = RequestView {
        source: origin.source,
        destination: ep.addr,
        destination_labels: &destination_labels,
        route_labels: attempt.map_or(&[], |a| a.labels),
        scheme: req.uri().scheme_str().unwrap_or("http"),
        authority: &authority,
        method: req.method(),
        path: req.uri().path(),
    };
    origin.tap(&view, req.headers())
}

/// Copies bytes both ways between the two halves of an upgraded connection.
async fn splice_upgrades(client: hyper::upgrade::OnUpgrade, server: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, server) {
        Ok((c, s)) => {
            let mut c = TokioIo::new(c);
            let mut s = TokioIo::new(s);
            if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut s).await {
                tracing::debug!(error = %e, "upgraded connection ended");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}
