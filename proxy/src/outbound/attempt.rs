//! Sending one request (or one attempt of a route) to an outbound endpoint,
//! counted in the endpoint's request series.

use std::sync::Arc;

use http::{Request, Response};

use crate::balance::Endpoint;
use crate::http::body::ResponseBody;
use crate::http::errors::ProxyError;
use crate::http::forward::{self, Attempt};
use crate::http::request_body::RequestBody;
use crate::tap::Origin;

/// Forwards a request with no profile route to an outbound endpoint.
pub(crate) async fn send_plain(
    ep: &Arc<Endpoint>,
    req: Request<RequestBody>,
    origin: &Origin,
) -> Response<ResponseBody> {
    send_attempt(ep, req, None, origin).await
}

/// Forwards one attempt to an outbound endpoint, counted in its series.
pub(crate) async fn send_attempt(
    ep: &Arc<Endpoint>,
    req: Request<RequestBody>,
    attempt: Option<&Attempt<'_>>,
    origin: &Origin,
) -> Response<ResponseBody> {
    match &ep.http_metrics {
        Some(m) => forward::to_endpoint(ep, req, m, attempt, origin).await,
        // Outbound endpoints always have request series; inbound ones never come here.
        None => ProxyError::NoEndpoints(ep.addr.to_string()).respond(false, req.version()),
    }
}
