//! A logical service (`svc.ns.svc.cluster.local:port`) with its
//! ServiceProfile: each request is matched to a route, sent to a backend
//! (the service itself, or a weighted `dst_overrides` split), bounded by the
//! route's timeout and retried within the retry budget when the route is
//! retryable (`retry.rs`). Route metrics (`route_*`) are recorded here.

use std::sync::Arc;

use http::{Request, Response, Version};
use tokio::time::Instant;

use crate::balance::{Balancer, Endpoint};
use crate::control::profiles::ProfileWatch;
use crate::http::body::ResponseBody;
use crate::http::errors::{is_grpc, ProxyError};
use crate::http::request_body::RequestBody;
use crate::outbound::attempt::send_plain;
use crate::outbound::backends::Backends;
use crate::outbound::profile::{MeteredRoute, Profile};
use crate::outbound::retry;
use crate::outbound::split::choose_backend;
use crate::tap::Origin;
use crate::telemetry::metrics::{Class, ResponseKey};

/// A logical service: its profile and its own balancer.
pub(crate) struct LogicalService {
    /// `fqn:port`.
    pub(crate) authority: String,
    profile: Arc<ProfileWatch<Profile>>,
    balancer: Arc<Balancer>,
}

impl LogicalService {
    /// A logical service for `authority`, routed by `profile`.
    pub(crate) fn new(
        backends: &Backends,
        authority: String,
        profile: Arc<ProfileWatch<Profile>>,
    ) -> Self {
        let balancer = backends.service(&authority);
        LogicalService {
            authority,
            profile,
            balancer,
        }
    }

    /// The service's profile as last received, if any.
    pub(crate) fn profile(&self) -> Option<Arc<Profile>> {
        self.profile.current()
    }

    /// An endpoint of the service, for an opaque connection.
    pub(crate) async fn endpoint(&self, backends: &Backends) -> Result<Arc<Endpoint>, ProxyError> {
        backends.pick(&self.balancer).await
    }

    /// Routes and forwards one request.
    pub(crate) async fn dispatch(
        &self,
        backends: &Backends,
        req: Request<RequestBody>,
        origin: &Origin,
    ) -> Response<ResponseBody> {
        let profile = self.profile.initial().await;
        let Some(profile) = profile.filter(|p| p.fqn.is_some()) else {
            // No profile (yet): straight to the service's balancer.
            return match backends.pick(&self.balancer).await {
                Ok(ep) => send_plain(&ep, req, origin).await,
                Err(e) => e.respond(is_grpc(&req), req.version()),
            };
        };
        let route = profile.route_for(&req);
        let started = Instant::now();
        route.metrics.request();
        let grpc = is_grpc(&req);
        let version = req.version();
        let backend = || self.backend(backends, &profile);
        let send = retry::send(&profile, route, req, origin, backend);
        let result = match route.route.timeout {
            Some(t) => tokio::time::timeout(t, send).await.map_err(|_| t),
            None => Ok(send.await),
        };
        match result {
            Ok(Ok(mut rsp)) => {
                if let Some(r) = rsp.body_mut().recorder() {
                    r.add_sink(route.metrics.clone(), started.elapsed());
                }
                rsp
            }
            Ok(Err(e)) => local_error(route, e, grpc, version, started),
            // Dropping the attempt cancelled the backend request.
            Err(t) => local_error(route, ProxyError::RouteTimeout(t), grpc, version, started),
        }
    }

    /// The endpoint for one attempt: from a backend of the split, chosen by
    /// weight, or from the service itself.
    async fn backend(
        &self,
        backends: &Backends,
        profile: &Profile,
    ) -> Result<Arc<Endpoint>, ProxyError> {
        match choose_backend(&profile.overrides) {
            Some(authority) if authority != self.authority => {
                backends.pick(&backends.service(authority)).await
            }
            _ => backends.pick(&self.balancer).await,
        }
    }
}

fn local_error(
    route: &MeteredRoute,
    e: ProxyError,
    grpc: bool,
    version: Version,
    started: Instant,
) -> Response<ResponseBody> {
    let rsp = e.respond(grpc, version);
    let key = ResponseKey {
        status: rsp.status().as_u16(),
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
    route.metrics.response(key, started.elapsed());
    rsp
}
