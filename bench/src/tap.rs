//! `--taps N`: N open `Tap.Observe` calls on the (client) proxy's control
//! port while the phases run, each asking for every request with headers
//! (the heaviest tap) and consumed as fast as events come, as a tap
//! service would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use linkerd2_proxy_api::tap::observe_request::{self, extract};
use linkerd2_proxy_api::tap::tap_client::TapClient;
use linkerd2_proxy_api::tap::ObserveRequest;

/// The control port the bench gives a tapped proxy (on its admin IP).
pub const CONTROL_PORT: u16 = 4190;

/// The tap service identity the bench sets (loopback clients may tap in
/// plaintext whatever it is).
pub const TAP_SVC_NAME: &str = "tap.linkerd-viz.serviceaccount.identity.linkerd.cluster.local";

/// Open taps; closed when dropped.
pub struct OpenTaps {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    events: Arc<AtomicU64>,
}

impl OpenTaps {
    /// Opens `n` taps on `control` and waits until all are answered. With
    /// `max_rps`, each tap asks for at most that many requests per second,
    /// re-issuing `Observe` every second as Linkerd's viz tap does;
    /// without, each asks for every request.
    pub fn open(control: SocketAddr, n: usize, max_rps: Option<u32>) -> Result<OpenTaps> {
        let events = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let counter = events.clone();
        let thread = std::thread::Builder::new()
            .name("taps".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let limit = max_rps.unwrap_or(u32::MAX);
                    let mut streams = Vec::new();
                    for _ in 0..n {
                        match observe(control, limit).await {
                            Ok(s) => streams.push(s),
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    let mut consumers = tokio::task::JoinSet::new();
                    for mut s in streams {
                        let counter = counter.clone();
                        consumers.spawn(async move {
                            loop {
                                let window = tokio::time::Instant::now();
                                while let Ok(Some(_)) = s.message().await {
                                    counter.fetch_add(1, Ordering::Relaxed);
                                }
                                if max_rps.is_none() {
                                    return;
                                }
                                // The next one-second window.
                                tokio::time::sleep_until(
                                    window + std::time::Duration::from_secs(1),
                                )
                                .await;
                                match observe(control, limit).await {
                                    Ok(next) => s = next,
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                    let _ = stop_rx.await;
                    consumers.abort_all();
                });
            })
            .context("starting the tap thread")?;
        ready_rx
            .recv()
            .map_err(|_| anyhow!("the tap thread ended before opening its taps"))??;
        Ok(OpenTaps {
            stop: Some(stop_tx),
            thread: Some(thread),
            events,
        })
    }

    /// Events received so far, over all taps.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

impl Drop for OpenTaps {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One Observe call for up to `limit` requests, with headers.
async fn observe(
    control: SocketAddr,
    limit: u32,
) -> Result<tonic::Streaming<linkerd2_proxy_api::tap::TapEvent>> {
    let mut client = TapClient::connect(format!("http://{control}"))
        .await
        .with_context(|| format!("connecting to the proxy's control port {control}"))?;
    let req = ObserveRequest {
        limit,
        r#match: None,
        extract: Some(observe_request::Extract {
            extract: Some(extract::Extract::Http(extract::Http {
                extract: Some(extract::http::Extract::Headers(extract::http::Headers {})),
            })),
        }),
    };
    let rsp = client
        .observe(req)
        .await
        .with_context(|| format!("Tap.Observe on {control}"))?;
    Ok(rsp.into_inner())
}
