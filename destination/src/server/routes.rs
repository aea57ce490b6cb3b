//! Dispatching gRPC requests to the services served on one port
//! (`Destination`, `InboundServerPolicies`, `OutboundPolicies`) by the
//! service name in the request path. tonic's `router` feature is not
//! enabled in the workspace, so this is a small hand-written router.

use std::convert::Infallible;
use std::task::{Context, Poll};

use http::{Request, Response};
use linkerd2_proxy_api::destination::destination_server::DestinationServer;
use linkerd2_proxy_api::inbound::inbound_server_policies_server::InboundServerPoliciesServer;
use linkerd2_proxy_api::outbound::outbound_policies_server::OutboundPoliciesServer;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::Status;

use super::DestinationService;
use crate::policy::{InboundPolicyService, OutboundPolicyService};

type Destination = DestinationServer<DestinationService>;
type Inbound = InboundServerPoliciesServer<InboundPolicyService>;
type Outbound = OutboundPoliciesServer<OutboundPolicyService>;

/// The three gRPC services of the Destination server behind one `Service`.
#[derive(Clone, Debug)]
pub struct GrpcRoutes {
    destination: Destination,
    inbound: Inbound,
    outbound: Outbound,
}

impl GrpcRoutes {
    /// Routes to these services.
    pub fn new(destination: Destination, inbound: Inbound, outbound: Outbound) -> Self {
        Self {
            destination,
            inbound,
            outbound,
        }
    }
}

impl Service<Request<Body>> for GrpcRoutes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each inner service is polled before it is called.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let service = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default();
        match service {
            Destination::NAME => Box::pin(dispatch(self.destination.clone(), req)),
            Inbound::NAME => Box::pin(dispatch(self.inbound.clone(), req)),
            Outbound::NAME => Box::pin(dispatch(self.outbound.clone(), req)),
            _ => {
                let status = Status::unimplemented(format!("unknown service {service:?}"));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

async fn dispatch<S>(mut svc: S, req: Request<Body>) -> Result<Response<Body>, Infallible>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}
