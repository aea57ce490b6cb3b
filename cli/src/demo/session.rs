//! One run of `wisp demo`, start to finish: check, write manifests, start
//! the children, wait for them, drive load and report, then stop it all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::banner::{App, Banner, Proxy};
use super::children::Children;
use super::load::Load;
use super::ready::{Probe, Wait};
use super::stats::{Stats, Window};
use super::topology::{
    self, Workload, ADMIN_PORT, APP_PORT, BACKENDS, CLIENT, INBOUND_PORT, NAMESPACE, OUTBOUND_PORT,
    SERVICE_HOST, SLOW_BACKEND,
};
use super::workdir::WorkDir;
use super::{http_get, manifests, metrics, ports, ready, warmup};

/// How long the children get to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

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
}

/// Runs the demo. Children are stopped and the temp dir removed on every
/// path out of here, errors and panics included.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let wisp = std::env::current_exe().context("cannot find the wisp executable")?;
    let proxy_bin = proxy_binary(&wisp, opts.proxy_bin.clone())?;
    ports::check_free(&needed_addrs())?;
    let destination = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ports::free_local_port()?);

    let workdir = WorkDir::create()?;
    manifests::write_all(&workdir.manifests(), &BACKENDS)?;
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
        destination,
    };
    let result = runtime.block_on(demo(&opts, &programs, &workdir, &mut children));
    drop(runtime);
    children.stop_all();
    drop(workdir);
    result
}

/// The executables and the destination address the children use.
struct Programs {
    wisp: PathBuf,
    proxy: PathBuf,
    destination: SocketAddr,
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
    });

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
            .arg(delay.as_millis().to_string());
        let pid = children.spawn(w.name, cmd, logs.join(format!("{}.log", w.name)))?;
        waits.push(Wait {
            name: w.name.into(),
            probe: Probe::Tcp(w.addr(APP_PORT)),
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
        let cmd = proxy_command(&programs.proxy, w, programs.destination);
        let pid = children.spawn(&name, cmd, logs.join(format!("{}-proxy.log", w.name)))?;
        waits.push(Wait {
            name,
            probe: Probe::HttpOk(format!("http://{}/ready", w.addr(ADMIN_PORT))),
        });
        proxies.push(Proxy { workload: w, pid });
    }

    ready::wait_all(children, &waits, READY_TIMEOUT).await?;
    let url = format!("http://{}/", CLIENT.addr(OUTBOUND_PORT));
    let pods: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
    let check = warmup::run(&url, SERVICE_HOST, &pods).await;
    if check.ok == 0 {
        anyhow::bail!(
            "no request through the mesh succeeded ({}){}",
            check.first_error.as_deref().unwrap_or("no answer"),
            children.log_tail(&format!("{} proxy", CLIENT.name))
        );
    }
    Banner {
        destination: (programs.destination, dst_pid),
        manifests: &manifests,
        logs: &logs,
        apps,
        proxies,
        rate: opts.rate,
        duration: opts.duration,
        check: &check,
    }
    .print();

    let stats = Arc::new(Stats::default());
    let load = Load::start(url, SERVICE_HOST.to_string(), opts.rate, stats.clone());
    let mut totals = report(children, &stats, opts.duration).await?;
    load.stop().await;
    totals.add(&stats.take());
    println!();
    println!(
        "sent {} requests; {} succeeded ({:.2}%)",
        totals.total,
        totals.ok,
        100.0 * totals.ok as f64 / totals.total.max(1) as f64
    );
    print_proxy_summary().await;
    Ok(())
}

/// The `wisp-proxy` command for workload `w`.
fn proxy_command(proxy: &Path, w: Workload, destination: SocketAddr) -> Command {
    let mut cmd = Command::new(proxy);
    cmd.env("LINKERD2_PROXY_IDENTITY_DISABLED", "1")
        .env(
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            destination.to_string(),
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
        // Nothing is in flight when the demo stops its proxies.
        .env("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "2s");
    cmd
}

/// Requests counted over the whole run.
#[derive(Default)]
struct Totals {
    total: u64,
    ok: u64,
}

impl Totals {
    fn add(&mut self, w: &Window) {
        self.total += w.total();
        self.ok += w.ok();
    }
}

/// Prints one line per second until the duration is over or the user
/// stops the demo; fails if a child dies meanwhile.
async fn report(
    children: &mut Children,
    stats: &Stats,
    duration: Option<Duration>,
) -> anyhow::Result<Totals> {
    let known: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
    let start = Instant::now();
    let mut last = start;
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut totals = Totals::default();
    loop {
        tokio::select! {
            now = tick.tick() => {
                let window = stats.take();
                println!("{}", window.line(now - start, now - last, &known));
                totals.add(&window);
                last = now;
                children.check_all()?;
                if duration.is_some_and(|d| now - start >= d) {
                    break;
                }
            }
            signal = &mut stop => {
                println!("received {signal}; stopping");
                break;
            }
        }
    }
    Ok(totals)
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, naming which.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "Ctrl-C",
        _ = term => "SIGTERM",
    }
}

/// Prints what the client proxy itself counted, per destination pod.
async fn print_proxy_summary() {
    let url = format!("http://{}/metrics", CLIENT.addr(ADMIN_PORT));
    let client = http_get::client();
    let text = match http_get::get(&client, &url, None, Duration::from_secs(2)).await {
        Ok(reply) => String::from_utf8_lossy(&reply.body).into_owned(),
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
        println!("  dst_pod={pod:<10} {n}");
    }
    println!("  total            {}", by_pod.values().sum::<u64>());
}
