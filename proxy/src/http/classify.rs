//! Whether a response is a success or a failure, for metrics, balancing and
//! retries. The default rules are Linkerd's: a gRPC status among the failure
//! codes, else a 5xx. A caller with better knowledge (a ServiceProfile
//! route's response classes) supplies its own [`Classify`].

use http::{HeaderMap, StatusCode};

/// gRPC status codes that are failures by default: UNKNOWN, DEADLINE_EXCEEDED,
/// PERMISSION_DENIED, INTERNAL, UNAVAILABLE, DATA_LOSS.
pub(crate) const GRPC_FAILURES: [u32; 6] = [2, 4, 7, 13, 14, 15];

/// Decides whether a response is a failure.
pub(crate) trait Classify: Send + Sync {
    /// Whether a response with `status` (and `grpc` status, for gRPC) failed.
    fn is_failure(&self, status: StatusCode, grpc: Option<u32>) -> bool;
}

/// The default rules: the gRPC status if there is one, else 5xx.
pub(crate) fn is_failure_by_default(status: StatusCode, grpc: Option<u32>) -> bool {
    match grpc {
        Some(code) => GRPC_FAILURES.contains(&code),
        None => status.is_server_error(),
    }
}

/// Reads `grpc-status` from headers or trailers.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
