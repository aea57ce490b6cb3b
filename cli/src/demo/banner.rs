//! The banner printed once everything is ready: what runs where, and how
//! to poke at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::profile::{self, ROUTES};
use super::topology::{
    version_of, Workload, ADMIN_PORT, APP_PORT, INBOUND_PORT, OUTBOUND_PORT, SERVICE, SERVICES,
    SERVICE_HOST,
};
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

/// The ServiceProfile and TrafficSplit the demo applied.
pub struct Applied {
    /// The file given to `wisp apply -f`.
    pub file: PathBuf,
    /// What `wisp apply` printed.
    pub output: Vec<String>,
    /// How long the client proxy took to count requests under a route of
    /// the profile (`None`: not within `waited`).
    pub in_effect: Option<Duration>,
    /// How long the demo waited for that.
    pub waited: Duration,
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
    /// The profile and split applied (`None`: `--no-profiles`).
    pub applied: Option<&'a Applied>,
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
        for svc in &SERVICES {
            let pods: Vec<&str> = svc.backends().map(|b| b.name).collect();
            println!(
                "  service      {:<22} {} ({}): {}",
                svc.name,
                svc.cluster_ip,
                svc.version,
                pods.join(", ")
            );
        }
        for app in &self.apps {
            let slow = if app.delay.is_zero() {
                String::new()
            } else {
                format!("  (slow: +{} ms)", app.delay.as_millis())
            };
            println!(
                "  {:<12} app {:<18} pid {:<7}{} {slow}",
                app.workload.name,
                app.workload.addr(APP_PORT).to_string(),
                app.pid,
                version_of(app.workload.name).unwrap_or("-"),
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
        match self.applied {
            Some(applied) => print_applied(applied),
            None => println!(
                "  profiles     none (--no-profiles): no routes, no split, web-v2 gets nothing"
            ),
        }
        println!(
            "  backends     GET /flaky fails {}% of the time with 500; GET /slow takes {} ms; \
             other paths answer 200",
            profile::FLAKY_PERCENT,
            profile::SLOW_PATH.as_millis()
        );
        println!();
        if let Some(client) = self.proxies.last() {
            let out = client.workload.addr(OUTBOUND_PORT);
            println!("Try it:   curl -i -H 'Host: {SERVICE_HOST}' http://{out}/books/7   (also /flaky, /slow)");
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
        if self.applied.is_some() {
            if let Some(client) = self.proxies.last() {
                println!(
                    "Routes:   curl -s http://{}/metrics | grep '^route_'",
                    client.workload.addr(ADMIN_PORT)
                );
            }
        }
        if self.identity.is_some() {
            if let Some(server) = self.proxies.first() {
                println!(
                    "mTLS:     curl -s http://{}/metrics | grep '^request_total.*client_id'",
                    server.workload.addr(ADMIN_PORT)
                );
            }
        }
        self.print_inspect();
        let hops = match self.identity {
            Some(_) => "through two proxies each, mTLS between them",
            None => "through two proxies each",
        };
        println!(
            "Load:     {} req/s from client to {SERVICE_HOST}, {hops}, {until};",
            self.rate
        );
        println!("          of every 20 requests 15 GET /books/N, 4 GET /flaky, 1 GET /slow");
        println!();
    }
}

/// The profile and split lines of the banner.
impl Banner<'_> {
    /// The operator's commands, ready to paste into a second terminal.
    fn print_inspect(&self) {
        let wisp = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "wisp".to_string());
        let Some(client) = self.proxies.last() else {
            return;
        };
        let client = client.workload.name;
        println!("Inspect:  from another terminal, while the demo runs:");
        println!(
            "          export WISP_SOURCE=dir:{}",
            self.manifests.display()
        );
        for cmd in [
            "stat deploy -o wide".to_string(),
            format!("routes deploy/{client} --to svc/{SERVICE} -o wide"),
            "edges deploy -o wide".to_string(),
            format!("tap deploy/{SERVICE} --max-events 20"),
            format!("top deploy/{client}"),
            format!("proxy-config pod/{client}"),
            format!("profile --tap deploy/{SERVICE} --tap-duration 5s {SERVICE}"),
        ] {
            println!("          {wisp} {cmd}");
        }
    }
}

fn print_applied(applied: &Applied) {
    println!(
        "  profiles     wisp apply -f {} --dir <manifests>:",
        applied.file.display()
    );
    for line in &applied.output {
        println!("                 {line}");
    }
    println!("               ServiceProfile {SERVICE_HOST}:");
    for r in ROUTES {
        let mut what = format!("pathRegex {}", r.path_regex);
        if r.retryable {
            what.push_str(", isRetryable (5xx are failures)");
        }
        if let Some(t) = r.timeout {
            what.push_str(&format!(", timeout {t}"));
        }
        println!("                 route {:<17} {what}", r.name);
    }
    let (ratio, min_per_s, ttl) = profile::RETRY_BUDGET;
    println!(
        "                 retryBudget: retryRatio {ratio}, minRetriesPerSecond {min_per_s}, ttl {ttl}"
    );
    let backends: Vec<String> = profile::SPLIT
        .iter()
        .map(|(svc, w)| format!("{svc} {w}"))
        .collect();
    println!(
        "               TrafficSplit {} (split.smi-spec.io/v1alpha1): apex {} -> {}  (v1 90%, v2 10%)",
        profile::SPLIT_NAME,
        profile::SPLIT[0].0,
        backends.join(", ")
    );
    match applied.in_effect {
        Some(d) => println!(
            "               in effect: the client proxy counted a request under rt_route=\"{}\" after {}",
            ROUTES[profile::BOOKS].name,
            super::stats::format_duration(d)
        ),
        None => println!(
            "               NOT in effect: within {}s the client proxy counted no request under a \
             route of the profile (does the destination service serve ServiceProfiles?)",
            applied.waited.as_secs()
        ),
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
