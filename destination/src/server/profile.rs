//! One `GetProfile` stream: recompute the profile on every index change and
//! send it when it differs from the last one sent.

use linkerd2_proxy_api::destination::DestinationProfile;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::debug;

use super::StreamCtx;
use crate::resolve::{resolve_profile, Target};

/// Drives one `GetProfile` stream until the client goes away or the server stops.
pub(crate) async fn run(
    mut ctx: StreamCtx,
    target: Target,
    client_ns: Option<String>,
    tx: mpsc::Sender<Result<DestinationProfile, Status>>,
) {
    let mut last: Option<DestinationProfile> = None;
    loop {
        ctx.version.borrow_and_update();
        let next = ctx
            .index
            .read(|store| resolve_profile(store, &ctx.settings, &target, client_ns.as_deref()));
        match next {
            Ok(profile) if last.as_ref() != Some(&profile) => {
                if tx.send(Ok(profile.clone())).await.is_err() {
                    debug!(?target, "GetProfile stream closed");
                    return;
                }
                last = Some(profile);
            }
            Ok(_) => {}
            Err(error) => {
                let _ = tx
                    .send(Err(Status::failed_precondition(error.to_string())))
                    .await;
                return;
            }
        }
        if !ctx.wait_for_change(&tx).await {
            debug!(?target, "GetProfile stream ended");
            return;
        }
    }
}
