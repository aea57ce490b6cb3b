//! The proxy's current certificate, handed to rustls on every handshake
//! (server and client side), so rotation needs no restart. The identity
//! task (`control::identity`) fills it; the first certificate makes the
//! proxy ready.

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

/// The current certificate, handed to rustls on every handshake.
#[derive(Debug)]
pub(crate) struct CertStore {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    ready: watch::Sender<bool>,
}

impl CertStore {
    /// An empty store; [`CertStore::ready`] turns true with the first certificate.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(CertStore {
            current: RwLock::new(None),
            ready: watch::Sender::new(false),
        })
    }

    /// The current certificate, if any.
    pub(crate) fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.clone()
    }

    /// Completes once the first certificate is in place.
    pub async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Whether a certificate is in place.
    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub(crate) fn set(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut c) = self.current.write() {
            *c = Some(key);
        }
        self.ready.send_replace(true);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.current()
    }

    fn has_certs(&self) -> bool {
        self.current().is_some()
    }
}
