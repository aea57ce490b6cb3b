//! One `WatchPort` stream: recompute the port's `Server` on every index
//! change and send it when it differs from the last one sent.

use std::sync::Arc;

use linkerd2_proxy_api::inbound::Server;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::debug;

use super::port::port_policy;
use super::server::to_server;
use crate::policy::changes::Changes;
use crate::policy::workload::Workload;
use crate::policy::PolicySettings;

/// Drives one `WatchPort` stream until the client goes away or the server stops.
pub(super) async fn run(
    mut changes: Changes,
    settings: Arc<PolicySettings>,
    workload: Workload,
    port: u16,
    tx: mpsc::Sender<Result<Server, Status>>,
) {
    let mut last: Option<Server> = None;
    loop {
        let policy = changes
            .index()
            .read(|store| port_policy(store, &settings, &workload, port));
        let server = to_server(&policy, &settings);
        if last.as_ref() != Some(&server) {
            if tx.send(Ok(server.clone())).await.is_err() {
                break;
            }
            last = Some(server);
        }
        if !changes.wait(&tx).await {
            break;
        }
    }
    debug!(ns = %workload.namespace, ?workload.kind, port, "WatchPort stream ended");
}
