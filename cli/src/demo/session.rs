//! One run of `wisp demo`, start to finish: check, write manifests, start
//! the children, wait for them, check the mesh, apply the ServiceProfile
//! and TrafficSplit, drive load and report, then stop it all.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use wisp_common::prometheus;
use wisp_common::signal::{ShutdownSignals, Signal};

use super::banner::{self, App, Banner, Proxy};
use super::children::Children;
use super::identity::Material;
use super::load::Load;
use super::metrics::{RouteCounts, RouteMeter, ShareMeter};
use super::profile::{self, ROUTES, SLOW};
use super::ready::{Probe, Wait};
use super::stats::{format_duration, percent, Stats, Window};
use super::topology::{
    self, Workload, ADMIN_PORT, APP_PORT, BACKENDS, CLIENT, CONTROL_PORT, INBOUND_PORT, NAMESPACE,
    OUTBOUND_PORT, SERVICES, SERVICE_HOST, SERVICE_V2_HOST, SLOW_BACKEND, TAP_SVC_NAME,
};
use super::workdir::WorkDir;
use super::{http_get, manifests, metrics, ports, ready, warmup};

/// How long the children get to become ready (proxies: certified).
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// The identity service's child name.
const IDENTITY: &str = "identity";
/// How long a per-second scrape of the client proxy's metrics may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the client proxy gets to pick up the applied profile.
const PROFILE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the user asked for.
pub struct Options {
    /// Stop after this long (`None`: at Ctrl-C).
    pub duration: Option<Duration>,
    /// Requests per second.
    pub rate: u32,
    /// Added latency of the slow backend.
    pub slow: Duration,
    /// Override of the proxy binary.
    pub proxy_bin: Option<PathBuf>,
    /// Run the identity service and mTLS between the proxies.
    pub identity: bool,
    /// Apply the ServiceProfile and TrafficSplit after the mesh check.
    pub profiles: bool,
}

/// Runs the demo. Children are stopped and the temp dir removed on every
/// path out of here, errors and panics included.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let wisp = std::env::current_exe().context("cannot find the wisp executable")?;
    let proxy_bin = proxy_binary(&wisp, opts.proxy_bin.clone())?;
    ports::check_free(&needed_addrs())?;
    let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let ports = ports::free_local_ports(2)?;

    let workdir = WorkDir::create()?;
    manifests::write_all(&workdir.manifests())?;
    let identity = if opts.identity {
        Some(MeshIdentity {
            material: Material::create(&workdir.identity(), &workdir.tokens())?,
            addr: local(ports[1]),
        })
    } else {
        None
    };
    // Declared after `workdir`, so dropped (children stopped) before it.
    let mut children = Children::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let programs = Programs {
        wisp,
        proxy: proxy_bin,
        destination: local(ports[0]),
        identity,
    };
    let result = runtime.block_on(demo(&opts, &programs, &workdir, &mut children));
    drop(runtime);
    children.stop_all();
    drop(workdir);
    result
}

/// The executables and the control-plane addresses the children use.
struct Programs {
    wisp: PathBuf,
    proxy: PathBuf,
    destination: SocketAddr,
    identity: Option<MeshIdentity>,
}

/// With identity on: the CA material and the identity service's address.
struct MeshIdentity {
    material: Material,
    addr: SocketAddr,
}

/// `--proxy-bin`, else `wisp-proxy` next to `wisp`; it must exist.
fn proxy_binary(wisp: &Path, explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(p) => p,
        None => wisp
            .parent()
            .map(|dir| dir.join("wisp-proxy"))
            .context("the wisp executable has no parent directory")?,
    };
    if !path.is_file() {
        anyhow::bail!(
            "wisp-proxy not found at {}: build it next to wisp with \
             `cargo build --release -p wisp-proxy -p wisp-cli` (or pass --proxy-bin PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// Every fixed address the demo listens on.
fn needed_addrs() -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = BACKENDS.iter().map(|b| b.addr(APP_PORT)).collect();
    for w in topology::meshed() {
        addrs.extend([OUTBOUND_PORT, INBOUND_PORT, ADMIN_PORT].map(|p| w.addr(p)));
    }
    addrs
}

async fn demo(
    opts: &Options,
    programs: &Programs,
    workdir: &WorkDir,
    children: &mut Children,
) -> anyhow::Result<()> {
    let logs = workdir.logs();
    let manifests = workdir.manifests();
    let mut waits = Vec::new();

    let mut cmd = Command::new(&programs.wisp);
    cmd.arg("destination")
        .arg("--source")
        .arg(format!("dir:{}", manifests.display()))
        .arg("--addr")
        .arg(programs.destination.to_string());
    let dst_pid = children.spawn("destination", cmd, logs.join("destination.log"))?;
    waits.push(Wait {
        name: "destination".into(),
        probe: Probe::Tcp(programs.destination),
        note: None,
        related: Vec::new(),
    });

    let mut identity_svc = None;
    if let Some(id) = &programs.identity {
        let cmd = id.material.serve_command(&programs.wisp, id.addr);
        let pid = children.spawn(IDENTITY, cmd, logs.join("identity.log"))?;
        waits.push(Wait {
            name: IDENTITY.into(),
            probe: Probe::Tcp(id.addr),
            note: None,
            related: Vec::new(),
        });
        identity_svc = Some(banner::Identity {
            addr: id.addr,
            pid,
            dir: id.material.dir.clone(),
            trust_anchors: id.material.trust_anchors(),
            issuer: id.material.issuer_cn(),
        });
    }

    let mut apps = Vec::new();
    for w in BACKENDS {
        let delay = if w.name == SLOW_BACKEND {
            opts.slow
        } else {
            Duration::ZERO
        };
        let mut cmd = Command::new(&programs.wisp);
        cmd.args(["demo", "backend", "--name", w.name])
            .arg("--addr")
            .arg(w.addr(APP_PORT).to_string())
            .arg("--delay-ms")
            .arg(delay.as_millis().to_string())
            .arg("--flaky-percent")
            .arg(profile::FLAKY_PERCENT.to_string())
            .arg("--slow-path-ms")
            .arg(profile::SLOW_PATH.as_millis().to_string());
        let pid = children.spawn(w.name, cmd, logs.join(format!("{}.log", w.name)))?;
        waits.push(Wait {
            name: w.name.into(),
            probe: Probe::Tcp(w.addr(APP_PORT)),
            note: None,
            related: Vec::new(),
        });
        apps.push(App {
            workload: w,
            pid,
            delay,
        });
    }

    let mut proxies = Vec::new();
    for w in topology::meshed() {
        let name = format!("{} proxy", w.name);
        let cmd = proxy_command(programs, w);
        let pid = children.spawn(&name, cmd, logs.join(format!("{}-proxy.log", w.name)))?;
        waits.push(Wait {
            name,
            probe: Probe::HttpOk(format!("http://{}/ready", w.addr(ADMIN_PORT))),
            note: programs.identity.as_ref().map(|id| {
                format!(
                    "a proxy is ready once certified, here as {} by the identity \
                     service at {}",
                    w.identity(),
                    id.addr
                )
            }),
            related: programs
                .identity
                .iter()
                .map(|_| IDENTITY.to_string())
                .collect(),
        });
        proxies.push(Proxy {
            workload: w,
            pid,
            identity: programs.identity.as_ref().map(|_| w.identity()),
            cert_valid_for: None,
        });
    }

    ready::wait_all(children, &waits, READY_TIMEOUT).await?;
    let scraper = http_get::client();
    if programs.identity.is_some() {
        for proxy in &mut proxies {
            proxy.cert_valid_for = cert_valid_for(&scraper, proxy.workload).await;
        }
    }
    let url = format!("http://{}/", CLIENT.addr(OUTBOUND_PORT));
    // Each Service by its own name: `web` reaches v1, `web-v2` v2 (only the
    // split, applied next, sends `web` traffic to v2).
    let mut check = warmup::Report::default();
    for (svc, host) in SERVICES.iter().zip([SERVICE_HOST, SERVICE_V2_HOST]) {
        let pods: Vec<&str> = svc.backends().map(|b| b.name).collect();
        check.merge(warmup::run(&url, host, &pods).await);
    }
    if check.ok == 0 {
        anyhow::bail!(
            "no request through the mesh succeeded ({}){}",
            check.first_error.as_deref().unwrap_or("no answer"),
            children.log_tail(&format!("{} proxy", CLIENT.name))
        );
    }
    let applied = if opts.profiles {
        let file = workdir.profile_file();
        let lines = profile::apply(&programs.wisp, &file, &manifests)?;
        let in_effect =
            profile::wait_in_effect(&scraper, &url, CLIENT.addr(ADMIN_PORT), PROFILE_TIMEOUT).await;
        Some(banner::Applied {
            file,
            output: lines,
            in_effect,
            waited: PROFILE_TIMEOUT,
        })
    } else {
        None
    };
    Banner {
        destination: (programs.destination, dst_pid),
        identity: identity_svc,
        manifests: &manifests,
        logs: &logs,
        apps,
        proxies,
        rate: opts.rate,
        duration: opts.duration,
        check: &check,
        applied: applied.as_ref(),
    }
    .print();

    let stats = Arc::new(Stats::default());
    let mut meters = Meters::default();
    meters.update(client_metrics(&scraper).await.as_deref());
    let load = Load::start(url, SERVICE_HOST.to_string(), opts.rate, stats.clone());
    let mut totals = report(children, &stats, &mut meters, &scraper, opts.duration).await?;
    load.stop().await;
    totals.merge(&stats.take());
    println!();
    println!(
        "sent {} requests; {} succeeded ({:.2}%)",
        totals.total(),
        totals.ok(),
        percent(totals.ok(), totals.total())
    );
    print_load_summary(&totals);
    print_proxy_summary(&scraper).await;
    print_server_summary(&scraper).await;
    Ok(())
}

/// The `wisp-proxy` command for workload `w`.
fn proxy_command(programs: &Programs, w: Workload) -> Command {
    let mut cmd = Command::new(&programs.proxy);
    cmd.env(
        "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
        programs.destination.to_string(),
    )
    .env(
        "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
        w.addr(INBOUND_PORT).to_string(),
    )
    .env(
        "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
        w.addr(OUTBOUND_PORT).to_string(),
    )
    .env(
        "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
        w.addr(ADMIN_PORT).to_string(),
    )
    .env(
        "LINKERD2_PROXY_DESTINATION_CONTEXT",
        format!(
            r#"{{"ns":"{NAMESPACE}","nodeName":"local","pod":"{}"}}"#,
            w.name
        ),
    )
    .env("LINKERD2_PROXY_LOG", "warn")
    // Tap on the control port, for `wisp tap` / `wisp top` from loopback.
    .env("LINKERD2_PROXY_TAP_SVC_NAME", TAP_SVC_NAME)
    .env(
        "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
        w.addr(CONTROL_PORT).to_string(),
    )
    // Nothing is in flight when the demo stops its proxies.
    .env("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "2s");
    match &programs.identity {
        Some(id) => id.material.proxy_env(&mut cmd, w, id.addr),
        None => {
            cmd.env("LINKERD2_PROXY_IDENTITY_DISABLED", "1");
        }
    }
    cmd
}

/// How long `w`'s proxy certificate is still valid, from its metrics.
async fn cert_valid_for(client: &http_get::HttpClient, w: Workload) -> Option<Duration> {
    let text = metrics::scrape(client, w.addr(ADMIN_PORT), Duration::from_secs(1))
        .await
        .ok()?;
    let expiry = prometheus::value(&text, "identity_cert_expiration_timestamp_seconds")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    Duration::try_from_secs_f64(expiry - now).ok()
}

/// The client proxy's metrics, if it answers in time.
async fn client_metrics(client: &http_get::HttpClient) -> Option<String> {
    metrics::scrape(client, CLIENT.addr(ADMIN_PORT), SCRAPE_TIMEOUT)
        .await
        .ok()
}

/// What the per-second lines read from the client proxy's metrics.
#[derive(Default)]
struct Meters {
    mtls: ShareMeter,
    routes: RouteMeter,
}

impl Meters {
    /// Takes a reading (`None`: the scrape failed); returns the mTLS share
    /// and the route counts since the last one.
    fn update(
        &mut self,
        text: Option<&str>,
    ) -> (Option<f64>, Option<BTreeMap<String, RouteCounts>>) {
        let share = self.mtls.update(text.map(metrics::outbound_tls));
        let routes = self
            .routes
            .update(text.map(|t| metrics::routes(t, &profile::dst())));
        (share, routes)
    }
}

/// Prints one line per second until the duration is over or the user
/// stops the demo; fails if a child dies meanwhile.
async fn report(
    children: &mut Children,
    stats: &Stats,
    meters: &mut Meters,
    scraper: &http_get::HttpClient,
    duration: Option<Duration>,
) -> anyhow::Result<Window> {
    let known: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
    let start = Instant::now();
    let mut last = start;
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut signals = ShutdownSignals::new().context("cannot listen for Ctrl-C and SIGTERM")?;
    let mut totals = Window::default();
    loop {
        tokio::select! {
            now = tick.tick() => {
                let window = stats.take();
                let (share, routes) = meters.update(client_metrics(scraper).await.as_deref());
                println!("{}", window.line(now - start, now - last, share, &known));
                println!("{}", window.route_line(now - last, routes.as_ref()));
                totals.merge(&window);
                last = now;
                children.check_all()?;
                if duration.is_some_and(|d| now - start >= d) {
                    break;
                }
            }
            signal = signals.recv() => {
                let name = match signal {
                    Signal::Interrupt => "Ctrl-C",
                    Signal::Terminate => "SIGTERM",
                };
                println!("received {name}; stopping");
                break;
            }
        }
    }
    Ok(totals)
}

/// Prints what the client proxy itself counted, per destination pod.
async fn print_proxy_summary(client: &http_get::HttpClient) {
    let admin = CLIENT.addr(ADMIN_PORT);
    let url = format!("http://{admin}/metrics");
    let text = match metrics::scrape(client, admin, Duration::from_secs(2)).await {
        Ok(text) => text,
        Err(e) => {
            println!("cannot read the client proxy's metrics: {e:#}");
            return;
        }
    };
    let by_pod = metrics::outbound_requests_by_pod(&text);
    println!(
        "the client proxy counted (request_total{{direction=\"outbound\"}} from {url}, \
         mesh check included):"
    );
    for (pod, n) in &by_pod {
        println!("  {:<18} {n:>6}", format!("dst_pod={pod}"));
    }
    println!(
        "  {:<18} {:>6}   of which mTLS (tls=\"true\") {}",
        "total",
        by_pod.values().sum::<u64>(),
        metrics::outbound_tls(&text).mtls
    );
    let dst = profile::dst();
    let routes = metrics::routes(&text, &dst);
    if routes.keys().all(String::is_empty) {
        println!("the client proxy counted no ServiceProfile route of {dst}");
        return;
    }
    println!(
        "the client proxy counted per route (route_request_total, route_response_total, \
         route_retryable_total{{direction=\"outbound\",dst=\"{dst}\"}}, checks included):"
    );
    let mut names: Vec<&str> = ROUTES.iter().map(|r| r.name).collect();
    let others: Vec<&str> = routes
        .keys()
        .map(String::as_str)
        .filter(|k| !k.is_empty() && !names.contains(k))
        .collect();
    names.extend(others);
    names.push("");
    for name in names {
        let Some(c) = routes.get(name) else { continue };
        let label = match name {
            "" => "(default route)".to_string(),
            n => format!("rt_route=\"{n}\""),
        };
        let failures: String = c
            .failure_statuses
            .iter()
            .map(|(status, n)| format!(" {status}\u{d7}{n}"))
            .collect();
        let timeouts = match c.timeouts {
            0 => String::new(),
            n => format!(" (timeout {n})"),
        };
        println!(
            "  {label:<26} requests {:>6}  success {:>6} ({:>6.2}%)  failure {:>5}{failures}{timeouts}  \
             retries {} (skipped, no budget: {})",
            c.requests,
            c.success,
            percent(c.success, c.responses()),
            c.failure,
            c.retries,
            c.retries_skipped,
        );
    }
}

/// Prints what the load driver saw over the whole run: the v1/v2 split and
/// each route's outcomes and latency.
fn print_load_summary(totals: &Window) {
    let (v1, v2) = totals.versions();
    println!(
        "split over the run (x-demo-pod of the answers): v1 (web) {v1} ({:.1}%)  v2 (web-v2) {v2} ({:.1}%)",
        percent(v1, v1 + v2),
        percent(v2, v1 + v2)
    );
    println!("the load driver saw per route:");
    for (i, route) in ROUTES.iter().enumerate() {
        let Some(r) = totals.route(i) else { continue };
        let others: String = r
            .statuses
            .iter()
            .map(|(status, n)| format!(" {status}\u{d7}{n}"))
            .collect();
        let no_answer = match r.failed {
            0 => String::new(),
            n => format!(" no answer\u{d7}{n}"),
        };
        let p = |d: Option<Duration>| d.map_or("-".to_string(), format_duration);
        let note = if i == SLOW {
            format!(
                "   (the backends take {} ms; the route's timeout is {} ms)",
                profile::SLOW_PATH.as_millis(),
                profile::SLOW_TIMEOUT.as_millis()
            )
        } else {
            String::new()
        };
        println!(
            "  {:<18} sent {:>6}  2xx {:>6} ({:>6.2}%){others}{no_answer}  p50 {}  p99 {}  max {}{note}",
            route.name,
            r.total,
            r.ok,
            percent(r.ok, r.total),
            p(r.latency(0.5)),
            p(r.latency(0.99)),
            p(r.max()),
        );
    }
}

/// Prints what each web proxy counted on its inbound side: requests over
/// mTLS from the client's identity.
async fn print_server_summary(client: &http_get::HttpClient) {
    let client_id = CLIENT.identity();
    println!(
        "the web proxies counted (request_total{{direction=\"inbound\",tls=\"true\",\
         client_id=\"{client_id}\"}}, mesh check included):"
    );
    for w in BACKENDS {
        match metrics::scrape(client, w.addr(ADMIN_PORT), Duration::from_secs(2)).await {
            Ok(text) => {
                let count = metrics::inbound_mtls_from(&text, &client_id);
                println!(
                    "  {:<18} {:>6}   of {} inbound",
                    format!("{} proxy", w.name),
                    count.mtls,
                    count.total
                );
            }
            Err(e) => println!("  {} proxy  cannot read its metrics: {e:#}", w.name),
        }
    }
}
