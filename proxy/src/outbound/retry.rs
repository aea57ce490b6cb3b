//! Sending a request on a ServiceProfile route: once, or — on a retryable
//! route with a retry budget and a body small enough to keep — as many
//! times as failures and the budget allow.

use std::future::Future;
use std::sync::Arc;

use http::{Request, Response};

use crate::balance::Endpoint;
use crate::http::body::ResponseBody;
use crate::http::classify::grpc_status;
use crate::http::errors::{is_grpc, ProxyError};
use crate::http::forward::Attempt;
use crate::http::request_body::{Buffered, RequestBody};
use crate::outbound::attempt::send_attempt;
use crate::outbound::profile::{MeteredRoute, Profile};
use crate::tap::Origin;

/// Request bodies up to this size are kept so the request can be retried.
pub(crate) const MAX_RETRY_BODY: usize = 64 * 1024;

/// Attempts per request at most, whatever the budget allows.
pub(crate) const MAX_ATTEMPTS: usize = 10;

/// Sends `req` on `route`, each attempt to the endpoint `backend` picks.
pub(crate) async fn send<B, Fut>(
    profile: &Profile,
    route: &MeteredRoute,
    req: Request<RequestBody>,
    origin: &Origin,
    backend: B,
) -> Result<Response<ResponseBody>, ProxyError>
where
    B: Fn() -> Fut,
    Fut: Future<Output = Result<Arc<Endpoint>, ProxyError>>,
{
    let attempt = Attempt {
        series: route.actual.clone(),
        classify: route.route.clone(),
        labels: &route.route.labels,
    };
    let budget = profile.budget.as_ref().filter(|_| route.route.retryable);
    let Some(budget) = budget else {
        let ep = backend().await?;
        return Ok(send_attempt(&ep, req, Some(&attempt), origin).await);
    };
    budget.deposit();
    let grpc = is_grpc(&req);
    let (parts, body) = req.into_parts();
    let (data, trailers) = match body.buffer(MAX_RETRY_BODY).await {
        Buffered::Complete(d, t) => (d, t),
        Buffered::Streaming(body) => {
            // Too large to keep: sent once, never retried.
            let ep = backend().await?;
            return Ok(send_attempt(
                &ep,
                Request::from_parts(parts, body),
                Some(&attempt),
                origin,
            )
            .await);
        }
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut req = Request::new(RequestBody::replay(&data, &trailers));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        *req.version_mut() = parts.version;
        *req.headers_mut() = parts.headers.clone();
        let ep = backend().await?;
        let mut rsp = send_attempt(&ep, req, Some(&attempt), origin).await;
        let code = if grpc {
            grpc_status(rsp.headers())
        } else {
            None
        };
        if !route.route.is_failure(rsp.status(), code) || attempts >= MAX_ATTEMPTS {
            return Ok(rsp);
        }
        if !budget.try_withdraw() {
            route.metrics.retry(true);
            return Ok(rsp);
        }
        route.metrics.retry(false);
        // The failed attempt is counted (route_actual_*) and discarded.
        rsp.body_mut().record_now();
    }
}
