//! One outbound `Watch` stream: recompute the target's policy on every
//! index change and send it when it differs from the last one sent.

use std::sync::Arc;

use linkerd2_proxy_api::outbound::OutboundPolicy;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::debug;

use super::grpc::answer;
use super::target::Resolved;
use crate::policy::changes::Changes;
use crate::policy::PolicySettings;
use crate::resolve::Settings;

/// Drives one `Watch` stream until the client goes away, the server stops,
/// or the watched Service is deleted (then the stream ends with `NotFound`,
/// and the proxy's next lookup falls back to its profile / the original
/// destination).
pub(super) async fn run(
    mut changes: Changes,
    naming: Arc<Settings>,
    settings: Arc<PolicySettings>,
    resolved: Resolved,
    tx: mpsc::Sender<Result<OutboundPolicy, Status>>,
) {
    let mut last: Option<OutboundPolicy> = None;
    loop {
        let next = changes
            .index()
            .read(|store| answer(store, &naming, &settings, &resolved));
        match next {
            Ok(Some(policy)) => {
                if last.as_ref() != Some(&policy) {
                    if tx.send(Ok(policy.clone())).await.is_err() {
                        break;
                    }
                    last = Some(policy);
                }
            }
            Ok(None) => {
                let _ = tx
                    .send(Err(Status::not_found("the Service was deleted")))
                    .await;
                break;
            }
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                break;
            }
        }
        if !changes.wait(&tx).await {
            break;
        }
    }
    debug!(?resolved, "outbound Watch stream ended");
}
