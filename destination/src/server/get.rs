//! One `Get` stream: recompute the endpoint set on every index change and
//! send the difference.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use linkerd2_proxy_api::destination::{
    update, AddrSet, NoEndpoints, Update, WeightedAddr, WeightedAddrSet,
};
use tokio::sync::mpsc;
use tonic::Status;
use tracing::debug;

use super::StreamCtx;
use crate::resolve::{resolve_endpoints, Endpoints, ServiceName};

/// What the client has been told so far.
#[derive(Debug, Default)]
pub enum Sent {
    /// Nothing yet (stream start).
    #[default]
    Nothing,
    /// `no_endpoints{exists:false}`.
    NotFound,
    /// The endpoint set the client holds (empty after `no_endpoints{exists:true}`).
    Set(BTreeMap<SocketAddr, WeightedAddr>),
}

impl Sent {
    /// The updates that move the client from `self` to `next`; updates `self`.
    pub fn diff(&mut self, next: Endpoints) -> Vec<Update> {
        match next {
            Endpoints::NotFound => {
                if matches!(self, Sent::NotFound) {
                    return Vec::new();
                }
                *self = Sent::NotFound;
                vec![no_endpoints(false)]
            }
            Endpoints::Found { labels, addrs } => {
                let updates = match self {
                    Sent::Nothing | Sent::NotFound if addrs.is_empty() => vec![no_endpoints(true)],
                    Sent::Nothing | Sent::NotFound => vec![add(&labels, addrs.values())],
                    Sent::Set(old) if addrs.is_empty() && !old.is_empty() => {
                        vec![no_endpoints(true)]
                    }
                    Sent::Set(old) => {
                        let mut updates = Vec::new();
                        let removed: Vec<SocketAddr> = old
                            .keys()
                            .filter(|a| !addrs.contains_key(a))
                            .copied()
                            .collect();
                        if !removed.is_empty() {
                            updates.push(remove(&removed));
                        }
                        let added: Vec<&WeightedAddr> = addrs
                            .iter()
                            .filter(|(a, w)| old.get(a) != Some(w))
                            .map(|(_, w)| w)
                            .collect();
                        if !added.is_empty() {
                            updates.push(add(&labels, added.into_iter()));
                        }
                        updates
                    }
                };
                *self = Sent::Set(addrs);
                updates
            }
        }
    }
}

fn no_endpoints(exists: bool) -> Update {
    Update {
        update: Some(update::Update::NoEndpoints(NoEndpoints { exists })),
    }
}

fn add<'a>(
    labels: &HashMap<String, String>,
    addrs: impl Iterator<Item = &'a WeightedAddr>,
) -> Update {
    Update {
        update: Some(update::Update::Add(WeightedAddrSet {
            addrs: addrs.cloned().collect(),
            metric_labels: labels.clone(),
        })),
    }
}

fn remove(addrs: &[SocketAddr]) -> Update {
    Update {
        update: Some(update::Update::Remove(AddrSet {
            addrs: addrs.iter().map(|a| (*a).into()).collect(),
        })),
    }
}

/// Drives one `Get` stream until the client goes away or the server stops.
pub(crate) async fn run(
    mut ctx: StreamCtx,
    name: ServiceName,
    port: u16,
    tx: mpsc::Sender<Result<Update, Status>>,
) {
    let mut sent = Sent::default();
    loop {
        ctx.version.borrow_and_update();
        let next = ctx
            .index
            .read(|store| resolve_endpoints(store, &ctx.settings, &name, port));
        for update in sent.diff(next) {
            if tx.send(Ok(update)).await.is_err() {
                debug!(service = %name.service, ns = %name.namespace, port, "Get stream closed");
                return;
            }
        }
        if !ctx.wait_for_change(&tx).await {
            debug!(service = %name.service, ns = %name.namespace, port, "Get stream ended");
            return;
        }
    }
}
