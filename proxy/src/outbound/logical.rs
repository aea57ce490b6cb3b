//! A logical service (`svc.ns.svc.cluster.local:port`) with its
//! ServiceProfile: each request is matched to a route, sent to a backend
//! (the service itself, or a weighted `dst_overrides` split), bounded by the
//! route's timeout and retried within the retry budget when the route is
//! retryable. Route metrics (`route_*`) are recorded here.

use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, Version};
use hyper::body::Incoming;

use crate::balance::Balancer;
use crate::body::ProxyBody;
use crate::endpoint::Endpoint;
use crate::errors::{is_grpc, ProxyError};
use crate::http_proxy::{self, RouteAttempt};
use crate::metrics::{Class, ResponseKey};
use crate::profiles::{Profile, ProfileRoute, ProfileWatch};
use crate::reqbody::{Buffered, RequestBody};
use crate::routes::grpc_status;
use crate::Shared;

/// Request bodies up to this size are kept so the request can be retried.
const MAX_RETRY_BODY: usize = 64 * 1024;

/// Attempts per request at most, whatever the budget allows.
const MAX_ATTEMPTS: usize = 10;

/// A logical service: its profile and its own balancer.
pub struct Logical {
    /// `fqn:port`.
    pub authority: String,
    profile: Arc<ProfileWatch>,
    balancer: Arc<Balancer>,
}

impl Logical {
    /// A logical service for `authority`, routed by `profile`.
    pub fn new(shared: &Arc<Shared>, authority: String, profile: Arc<ProfileWatch>) -> Self {
        let balancer = shared.discovery.resolve(shared, &authority);
        Logical {
            authority,
            profile,
            balancer,
        }
    }

    /// An endpoint of the service, for an opaque connection.
    pub async fn endpoint(&self, shared: &Arc<Shared>) -> Option<Arc<Endpoint>> {
        crate::outbound::pick(shared, &self.balancer).await.ok()
    }

    /// Routes and forwards one request.
    pub async fn dispatch(
        &self,
        shared: &Arc<Shared>,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let profile = self.profile.initial().await;
        let Some(profile) = profile.filter(|p| p.fqn.is_some()) else {
            // No profile (yet): straight to the service's balancer.
            return match crate::outbound::pick(shared, &self.balancer).await {
                Ok(ep) => forward_plain(&ep, req).await,
                Err(e) => e.respond(is_grpc(&req), req.version()),
            };
        };
        let pr = select_route(&profile, &req);
        let started = Instant::now();
        pr.metrics.request();
        let grpc = is_grpc(&req);
        let version = req.version();
        let send = self.send(shared, &profile, pr, req);
        let result = match pr.route.timeout {
            Some(t) => tokio::time::timeout(t, send).await.map_err(|_| t),
            None => Ok(send.await),
        };
        match result {
            Ok(Ok(mut rsp)) => {
                if let Some(r) = rsp.body_mut().recorder() {
                    r.add_sink(pr.metrics.clone(), started.elapsed());
                }
                rsp
            }
            Ok(Err(e)) => local_error(pr, e, grpc, version, started),
            // Dropping the attempt cancelled the backend request.
            Err(t) => local_error(pr, ProxyError::RouteTimeout(t), grpc, version, started),
        }
    }

    /// Sends the request once, or, on a retryable route with a budget and a
    /// small enough body, as many times as failures and the budget allow.
    async fn send(
        &self,
        shared: &Arc<Shared>,
        profile: &Profile,
        pr: &ProfileRoute,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let attempt = RouteAttempt {
            actual: pr.actual.clone(),
            route: pr.route.clone(),
        };
        let budget = profile.budget.as_ref().filter(|_| pr.route.retryable);
        let Some(budget) = budget else {
            let ep = self.backend(shared, profile).await?;
            return Ok(forward(&ep, req.map(RequestBody::Streaming), Some(&attempt)).await);
        };
        budget.deposit();
        let (parts, body) = req.into_parts();
        let (data, trailers) = match RequestBody::buffer(body, MAX_RETRY_BODY).await {
            Buffered::Complete(d, t) => (d, t),
            Buffered::Streaming(body) => {
                // Too large to keep: sent once, never retried.
                let ep = self.backend(shared, profile).await?;
                return Ok(forward(&ep, Request::from_parts(parts, body), Some(&attempt)).await);
            }
        };
        let grpc = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut req = Request::new(RequestBody::replay(&data, &trailers));
            *req.method_mut() = parts.method.clone();
            *req.uri_mut() = parts.uri.clone();
            *req.version_mut() = parts.version;
            *req.headers_mut() = parts.headers.clone();
            let ep = self.backend(shared, profile).await?;
            let mut rsp = forward(&ep, req, Some(&attempt)).await;
            let code = if grpc {
                grpc_status(rsp.headers())
            } else {
                None
            };
            if !pr.route.is_failure(rsp.status(), code) || attempts >= MAX_ATTEMPTS {
                return Ok(rsp);
            }
            if !budget.try_withdraw() {
                pr.metrics.retry(true);
                return Ok(rsp);
            }
            pr.metrics.retry(false);
            // The failed attempt is counted (route_actual_*) and discarded.
            rsp.body_mut().record_now();
        }
    }

    /// The endpoint for one attempt: from a backend of the split, chosen by
    /// weight, or from the service itself.
    async fn backend(
        &self,
        shared: &Arc<Shared>,
        profile: &Profile,
    ) -> Result<Arc<Endpoint>, ProxyError> {
        let total: u64 = profile.overrides.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return crate::outbound::pick(shared, &self.balancer).await;
        }
        let mut n = fastrand::u64(..total);
        for (authority, w) in &profile.overrides {
            if n < u64::from(*w) {
                let b = if *authority == self.authority {
                    self.balancer.clone()
                } else {
                    shared.discovery.resolve(shared, authority)
                };
                return crate::outbound::pick(shared, &b).await;
            }
            n -= u64::from(*w);
        }
        crate::outbound::pick(shared, &self.balancer).await
    }
}

fn select_route<'p, B>(profile: &'p Profile, req: &Request<B>) -> &'p ProfileRoute {
    let (method, path) = (req.method(), req.uri().path());
    profile
        .routes
        .iter()
        .find(|pr| pr.route.matches(method, path))
        .unwrap_or(&profile.default_route)
}

async fn forward(
    ep: &Arc<Endpoint>,
    req: Request<RequestBody>,
    attempt: Option<&RouteAttempt>,
) -> Response<ProxyBody> {
    match &ep.http_metrics {
        Some(m) => http_proxy::forward(ep, req, m, attempt).await,
        // Outbound endpoints always have request series; inbound ones never come here.
        None => ProxyError::Upstream(ep.addr, "not an outbound endpoint".into())
            .respond(false, req.version()),
    }
}

/// Forwards a request with no profile route to an outbound endpoint.
pub async fn forward_plain(ep: &Arc<Endpoint>, req: Request<Incoming>) -> Response<ProxyBody> {
    forward(ep, req.map(RequestBody::Streaming), None).await
}

fn local_error(
    pr: &ProfileRoute,
    e: ProxyError,
    grpc: bool,
    version: Version,
    started: Instant,
) -> Response<ProxyBody> {
    let rsp = e.respond(grpc, version);
    let status = rsp.status().as_u16();
    let key = ResponseKey {
        status,
        grpc_status: grpc
            .then(|| {
                rsp.headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
            })
            .flatten(),
        class: Class::Failure,
        error: if matches!(e, ProxyError::RouteTimeout(_)) {
            "timeout"
        } else {
            ""
        },
    };
    pr.metrics.response(key, started.elapsed());
    rsp
}
