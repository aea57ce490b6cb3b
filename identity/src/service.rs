//! `Identity.Certify`: validate the request and token, then issue.

use std::sync::Arc;

use linkerd2_proxy_api::identity::identity_server::{Identity, IdentityServer};
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::ca::{Ca, IssueError};
use crate::csr::Csr;
use crate::names::workload_identity;
use crate::token::{TokenError, TokenValidator};

/// The Identity gRPC service.
pub struct IdentityService {
    ca: Arc<Ca>,
    validator: Arc<dyn TokenValidator>,
    control_plane_ns: String,
    trust_domain: String,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("control_plane_ns", &self.control_plane_ns)
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl IdentityService {
    /// A service issuing from `ca` to holders of tokens `validator` accepts.
    pub fn new(
        ca: Arc<Ca>,
        validator: Arc<dyn TokenValidator>,
        control_plane_ns: &str,
        trust_domain: &str,
    ) -> Self {
        Self {
            ca,
            validator,
            control_plane_ns: control_plane_ns.to_string(),
            trust_domain: trust_domain.trim_matches('.').to_string(),
        }
    }

    /// Wraps the service for tonic.
    pub fn into_server(self) -> IdentityServer<Self> {
        IdentityServer::new(self)
    }

    /// Checks a request in Linkerd's order and issues; nothing is issued on error.
    pub async fn check_and_issue(&self, req: CertifyRequest) -> Result<CertifyResponse, Status> {
        let CertifyRequest {
            identity,
            token,
            certificate_signing_request: csr,
        } = req;
        if identity.is_empty() {
            return Err(Status::invalid_argument("missing identity"));
        }
        if token.is_empty() {
            return Err(Status::invalid_argument("missing token"));
        }
        if csr.is_empty() {
            return Err(Status::invalid_argument(
                "missing certificate_signing_request",
            ));
        }
        let csr = Csr::parse(&csr).map_err(|e| Status::invalid_argument(e.to_string()))?;
        csr.check_names(&identity)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let sa = self
            .validator
            .validate(&token)
            .await
            .map_err(token_status)?;
        let token_identity = workload_identity(
            &sa.name,
            &sa.namespace,
            &self.control_plane_ns,
            &self.trust_domain,
        );
        if token_identity != identity {
            return Err(Status::failed_precondition(format!(
                "token is for identity {token_identity:?}, but the request asks for {identity:?}"
            )));
        }
        let issued = self
            .ca
            .issue_checked(&identity, csr)
            .map_err(issue_status)?;
        let valid_until = prost_types::Timestamp::from(issued.valid_until);
        info!(
            %identity,
            serial = format_args!("{:x}", issued.serial),
            valid_until = %crate::ca::rfc3339(issued.valid_until.into()),
            "issued certificate"
        );
        Ok(CertifyResponse {
            leaf_certificate: issued.leaf.to_vec(),
            intermediate_certificates: issued.intermediates.iter().map(|c| c.to_vec()).collect(),
            valid_until: Some(valid_until),
        })
    }
}

fn token_status(e: TokenError) -> Status {
    match e {
        TokenError::Invalid => Status::invalid_argument(e.to_string()),
        TokenError::Expired(_) | TokenError::NotAuthenticated(_) => {
            Status::failed_precondition(e.to_string())
        }
        TokenError::Unavailable(_) => Status::unavailable(e.to_string()),
    }
}

fn issue_status(e: IssueError) -> Status {
    let message = e.to_string();
    match e {
        IssueError::BadCsr(_) => Status::invalid_argument(message),
        IssueError::Names(_) | IssueError::Identity { .. } => Status::failed_precondition(message),
        IssueError::Key(_)
        | IssueError::Issuer(_)
        | IssueError::Signing { .. }
        | IssueError::Clock(_) => Status::internal(message),
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let identity = request.get_ref().identity.clone();
        match self.check_and_issue(request.into_inner()).await {
            Ok(response) => Ok(Response::new(response)),
            Err(status) => {
                info!(%identity, code = ?status.code(), message = status.message(), "Certify rejected");
                Err(status)
            }
        }
    }
}
