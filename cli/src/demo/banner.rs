//! The banner printed once everything is ready: what runs where, and how
//! to poke at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::topology::{Workload, ADMIN_PORT, APP_PORT, INBOUND_PORT, OUTBOUND_PORT, SERVICE_HOST};
use super::warmup;

/// A started backend application.
pub struct App {
    /// Its workload.
    pub workload: Workload,
    /// Its process id.
    pub pid: u32,
    /// Its added latency.
    pub delay: Duration,
}

/// A started proxy.
pub struct Proxy {
    /// The workload it serves.
    pub workload: Workload,
    /// Its process id.
    pub pid: u32,
    /// The identity it is certified for (`None`: identity disabled).
    pub identity: Option<String>,
    /// How long its certificate is still valid, from its metrics.
    pub cert_valid_for: Option<Duration>,
}

/// The running identity service and the CA it serves.
pub struct Identity {
    /// Its address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// The identity directory it serves from.
    pub dir: PathBuf,
    /// The trust anchors file (`DIR/ca.crt`).
    pub trust_anchors: PathBuf,
    /// The issuer's common name.
    pub issuer: String,
}

/// Everything the banner shows.
pub struct Banner<'a> {
    /// The destination service's address and pid.
    pub destination: (SocketAddr, u32),
    /// The identity service (`None`: identity disabled, plaintext).
    pub identity: Option<Identity>,
    /// The manifest directory.
    pub manifests: &'a Path,
    /// The directory of child logs.
    pub logs: &'a Path,
    /// The backend applications.
    pub apps: Vec<App>,
    /// The proxies; the last is the client's.
    pub proxies: Vec<Proxy>,
    /// The load's target rate.
    pub rate: u32,
    /// How long the load runs (`None`: until Ctrl-C).
    pub duration: Option<Duration>,
    /// What the end-to-end check saw.
    pub check: &'a warmup::Report,
}

impl Banner<'_> {
    /// Prints the banner on stdout.
    pub fn print(&self) {
        let (dst_addr, dst_pid) = self.destination;
        println!("wisp demo: the whole mesh on this machine (no Kubernetes, no root)");
        match &self.identity {
            Some(id) => println!(
                "  transport    mTLS (identity: trust anchor {}, issuer {})",
                id.trust_anchors.display(),
                id.issuer
            ),
            None => println!("  transport    plaintext (identity disabled)"),
        }
        println!(
            "  destination  {dst_addr:<22} pid {dst_pid:<7} over {}",
            self.manifests.display()
        );
        if let Some(id) = &self.identity {
            println!(
                "  identity     {:<22} pid {:<7} over {}",
                id.addr.to_string(),
                id.pid,
                id.dir.display()
            );
        }
        for app in &self.apps {
            let slow = if app.delay.is_zero() {
                String::new()
            } else {
                format!("  (slow: +{} ms)", app.delay.as_millis())
            };
            println!(
                "  {:<12} app {:<18} pid {:<7}{slow}",
                app.workload.name,
                app.workload.addr(APP_PORT).to_string(),
                app.pid
            );
        }
        for proxy in &self.proxies {
            let w = proxy.workload;
            println!(
                "  {:<12} wisp-proxy pid {:<7} outbound {}  inbound {}  admin {}",
                w.name,
                proxy.pid,
                w.addr(OUTBOUND_PORT),
                w.addr(INBOUND_PORT),
                w.addr(ADMIN_PORT)
            );
            if let Some(identity) = &proxy.identity {
                let validity = match proxy.cert_valid_for {
                    Some(d) => format!("certificate valid for {}", hours_minutes(d)),
                    None => "certified".to_string(),
                };
                println!("  {:<12} identity {identity}  ({validity})", "");
            }
        }
        println!("  logs         {}", self.logs.display());
        let answered: Vec<&str> = self.check.answered.iter().map(String::as_str).collect();
        println!(
            "  mesh check   {}/{} concurrent requests answered 200, by {}",
            self.check.ok,
            self.check.sent,
            answered.join(", ")
        );
        if let Some(e) = &self.check.first_error {
            println!("               first failure: {e}");
        }
        println!();
        if let Some(client) = self.proxies.last() {
            let out = client.workload.addr(OUTBOUND_PORT);
            println!("Try it:   curl -H 'Host: {SERVICE_HOST}' http://{out}/");
        }
        println!("Metrics:");
        for proxy in &self.proxies {
            println!(
                "          http://{}/metrics   ({})",
                proxy.workload.addr(ADMIN_PORT),
                proxy.workload.name
            );
        }
        let until = match self.duration {
            Some(d) => format!("for {}", humanize(d)),
            None => "until Ctrl-C".to_string(),
        };
        if self.identity.is_some() {
            if let Some(server) = self.proxies.first() {
                println!(
                    "mTLS:     curl -s http://{}/metrics | grep '^request_total.*client_id'",
                    server.workload.addr(ADMIN_PORT)
                );
            }
        }
        let hops = match self.identity {
            Some(_) => "through two proxies each, mTLS between them",
            None => "through two proxies each",
        };
        println!(
            "Load:     {} req/s from client to {SERVICE_HOST}, {hops}, {until}",
            self.rate
        );
        println!();
    }
}

/// `23h59m`, `59m`.
fn hours_minutes(d: Duration) -> String {
    let minutes = d.as_secs() / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, m) => format!("{h}h{m:02}m"),
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
