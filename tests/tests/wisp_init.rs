//! `wisp-init` end to end: two network namespaces `a` (client) and `b`
//! (server) joined by a veth pair, each with a `wisp destination` and a
//! `wisp identity` on loopback and a real `wisp-proxy` running as uid 2102
//! with a certified identity; `wisp-init` writes the nat rules in both, and
//! an unmodified `curl` in `a` reaches `b` through both proxies over mTLS.
//! Skip ports bypass the proxies; a second run and `--dry-run` change
//! nothing (`iptables-save -t nat` compared); missing or forbidden iptables
//! fail with one clear line. `wisp-await` waits for the proxy's readiness.
//!
//! Needs root, `ip`, `iptables` (Debian's package: legacy and nft
//! variants), `setpriv` and `curl`; otherwise each test fails under
//! `CI=true`, and elsewhere prints why and returns. Only 10.79.<n>.0/24
//! inside the test's own namespaces is used; they are deleted at the end.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use wisp_tests::netns::{run, world_binary, Pair, PROXY_UID};
use wisp_tests::*;

/// The identity service's port in each namespace (8080 is the app's).
const IDENTITY_PORT: u16 = 8081;
/// An app port both sides skip: `a` outbound, `b` inbound.
const SKIP_BOTH: u16 = 9001;
/// An app port only `a` skips outbound: `b`'s proxy still takes it.
const SKIP_OUT: u16 = 9002;

/// Whether test `test` can run here ([`require`]).
fn supported(test: &str) -> bool {
    require(
        test,
        &[
            Need::Root,
            Need::Tool("ip"),
            Need::Tool("iptables-legacy-save"),
            Need::Tool("iptables-legacy-restore"),
            Need::Tool("setpriv"),
            Need::Tool("curl"),
        ],
    )
}

/// Whether the nft variant is installed (then its tests run too).
fn nft_installed(test: &str) -> bool {
    // Debian's iptables package ships both variants: under CI=true a
    // missing one is a failure (`require`), never a skip.
    require(
        test,
        &[
            Need::Tool("iptables-nft"),
            Need::Tool("iptables-nft-save"),
            Need::Tool("iptables-nft-restore"),
        ],
    )
}

/// The iptables variant a test drives.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Legacy,
    Nft,
}

impl Mode {
    /// `--iptables-mode` value.
    fn flag(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Nft => "nft",
        }
    }

    /// The save binary of IPv4 (`v6` false) or IPv6.
    fn save(self, v6: bool) -> String {
        let family = if v6 { "ip6tables" } else { "iptables" };
        format!("{family}-{}-save", self.flag())
    }
}

/// Runs `wisp-init <args>` inside `ns`, optionally as another user.
fn wisp_init_as(ns: &str, user: Option<&str>, env_path: Option<&str>, args: &[&str]) -> Output {
    // `ip` by its full path: the child's PATH (which may be empty) is
    // where Command would look for it.
    let ip = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("ip"))
        .find(|p| p.is_file())
        .unwrap();
    let mut cmd = Command::new(ip);
    cmd.args(["netns", "exec", ns]);
    if let Some(uid) = user {
        cmd.args([
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ]);
    }
    cmd.arg(if user.is_some() {
        world_binary("wisp-init")
    } else {
        bin("wisp-init")
    })
    .args(args);
    if let Some(p) = env_path {
        cmd.env("PATH", p);
    }
    cmd.output().unwrap()
}

/// Runs `wisp-init <args>` as root in `ns`, panicking if it fails; its stdout.
fn wisp_init(ns: &str, args: &[&str]) -> String {
    let out = wisp_init_as(ns, None, None, args);
    assert!(
        out.status.success(),
        "wisp-init {args:?} in {ns} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `<save> -t nat` in `ns` without the timestamp comments and chain counters.
fn nat(ns: &str, save: &str) -> String {
    let out = run(&["ip", "netns", "exec", ns, save, "-t", "nat"]);
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') {
                l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `-A` lines of `text`, in order.
fn rule_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("-A "))
        .map(str::to_string)
        .collect()
}

/// Whether ip6tables' nat table works in `ns` (kernels without IPv6 nat
/// exist); the tests then pass `--ipv6=false`.
fn ipv6_nat(ns: &str, mode: Mode) -> bool {
    let ok = Command::new("ip")
        .args(["netns", "exec", ns, &mode.save(true), "-t", "nat"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("ip6tables nat is not available here: testing IPv4 only");
    }
    ok
}

/// Whether the kernel offers `mode`'s IPv4 nat table (a kernel may lack
/// the legacy x_tables modules); prints why not. Checked in a scratch
/// namespace, so nothing of the host is touched.
fn kernel_has(mode: Mode, test: &str) -> bool {
    static PROBE: AtomicU8 = AtomicU8::new(0);
    let ns = format!(
        "wisp-i-{}-probe{}",
        std::process::id(),
        PROBE.fetch_add(1, Ordering::SeqCst)
    );
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    run(&["ip", "netns", "add", &ns]);
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns, &mode.save(false), "-t", "nat"])
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    assert!(
        ok || !in_ci(),
        "{test}: this kernel has no {} nat table; CI=true, so this is a failure, not a skip",
        mode.flag()
    );
    if !ok {
        eprintln!(
            "skipping {test}: this kernel has no {} nat table (under CI=true this fails)",
            mode.flag()
        );
    }
    ok
}

/// The processes of one namespace: control plane, identity, proxy.
struct Side {
    _destination: Process,
    _identity: Process,
    proxy: Process,
}

/// Starts `wisp destination` (over `manifests`) and `wisp identity` (of
/// `id`) on loopback in `ns`, then the proxy as uid 2102 certified as
/// `sa.default`. A `wisp-await` started before the proxy must see it
/// become ready.
async fn side(ns: &str, manifests: &Path, id: &IdentityPlane, sa: &str) -> Side {
    let mut cmd = Pair::exec(ns, &bin("wisp"));
    cmd.args(["destination", "--source"])
        .arg(format!("dir:{}", manifests.display()))
        .args(["--addr", "127.0.0.1:8086"]);
    let mut destination = Process::spawn(&format!("wisp destination in {ns}"), cmd);
    Pair::wait_listening(ns, "127.0.0.1:8086", &mut destination, "destination").await;

    let mut cmd = Pair::exec(ns, &bin("wisp"));
    cmd.args(id.serve_command_args(id.addr));
    let mut identity = Process::spawn(&format!("wisp identity in {ns}"), cmd);
    let identity_addr = format!("127.0.0.1:{IDENTITY_PORT}");
    Pair::wait_listening(ns, &identity_addr, &mut identity, "identity").await;

    // wisp-await polls /ready before the proxy even exists, then runs its command.
    let mut cmd = Pair::exec(ns, &bin("wisp-await"));
    cmd.args(["--timeout=30s", "--backoff=20ms", "--port=4191", "--"])
        .args(["sh", "-c", "echo the proxy is ready"]);
    let mut waiter = Process::spawn(&format!("wisp-await in {ns}"), cmd);

    let mut cmd = Pair::proxy_command(ns);
    cmd.env(
        "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
        "10.79.0.0/16",
    );
    for (k, v) in id.proxy_env(sa, "default") {
        cmd.env(k, v);
    }
    let mut proxy = Process::spawn(&format!("wisp-proxy in {ns}"), cmd);

    let status = waiter.wait_exit(Duration::from_secs(30)).await;
    assert!(
        proxy.exited().is_none(),
        "proxy in {ns} exited:\n{}",
        proxy.output()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "wisp-await in {ns}: {status:?}\n{}\nproxy:\n{}",
        waiter.output(),
        proxy.output()
    );
    assert_eq!(waiter.output(), "the proxy is ready\n");
    let (ok, out, _) = Pair::curl(ns, &["http://127.0.0.1:4191/ready"]);
    assert!(ok && out == "ready\n", "{out}");
    Side {
        _destination: destination,
        _identity: identity,
        proxy,
    }
}

/// Helper, not a test: serves HTTP on every address of
/// `$WISP_INIT_BACKEND_ADDRS` (comma-separated) until killed.
#[tokio::test]
#[ignore = "helper process for the wisp-init tests"]
async fn wisp_init_backend() {
    let Ok(addrs) = std::env::var("WISP_INIT_BACKEND_ADDRS") else {
        return;
    };
    let mut backends = Vec::new();
    for a in addrs.split(',') {
        let addr: SocketAddr = a.parse().unwrap();
        backends.push(HttpBackend::start(addr, &format!("b{}", addr.port())).await);
    }
    println!("listening");
    std::future::pending::<()>().await;
}

/// Starts [`wisp_init_backend`] in `ns` on `ports` (all addresses).
async fn backend(ns: &str, ports: &[u16]) -> Process {
    let addrs = ports
        .iter()
        .map(|p| format!("0.0.0.0:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = Pair::exec(ns, &std::env::current_exe().unwrap());
    cmd.args(["--exact", "wisp_init_backend", "--ignored", "--nocapture"])
        .env("WISP_INIT_BACKEND_ADDRS", addrs);
    let mut p = Process::spawn(&format!("backend in {ns}"), cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.output().contains("listening") {
        assert!(p.exited().is_none(), "backend exited:\n{}", p.output());
        assert!(Instant::now() < deadline, "backend in {ns} did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p
}

/// Polls the proxy in `ns` until `cond` holds on its metrics.
async fn wait_metrics(ns: &str, what: &str, cond: impl Fn(&str) -> bool) {
    let r = wait_until(Duration::from_secs(10), || {
        let m = Pair::metrics(ns);
        let ok = cond(&m);
        async move {
            if ok {
                Ok(())
            } else {
                Err(m)
            }
        }
    })
    .await;
    if let Err(m) = r {
        panic!("{what}: {m}");
    }
}

/// The whole path: rules by wisp-init in both namespaces (mode `mode`), a
/// plain curl in `a` to `b`'s pod IP through both proxies over mTLS; skip
/// ports bypass them.
async fn redirect_through_both_proxies(mode: Mode) {
    let pods = Pair::create('i', 79);
    let ipv6 = format!(
        "--ipv6={}",
        ipv6_nat(&pods.a, mode) && ipv6_nat(&pods.b, mode)
    );
    let mut common = vec![
        "--iptables-mode",
        mode.flag(),
        ipv6.as_str(),
        "--incoming-proxy-port",
        "4143",
        "--outgoing-proxy-port",
        "4140",
        "--proxy-uid",
        PROXY_UID,
    ];
    let skip_a = format!("4567,4568,{SKIP_BOTH},{SKIP_OUT}");
    let skip_b = format!("4190,4191,4567,4568,{SKIP_BOTH}");
    let mut a_args = common.clone();
    a_args.extend([
        "--inbound-ports-to-ignore",
        "4190,4191,4567,4568",
        "--outbound-ports-to-ignore",
        &skip_a,
    ]);
    common.extend([
        "--inbound-ports-to-ignore",
        &skip_b,
        "--outbound-ports-to-ignore",
        "4567,4568",
    ]);
    wisp_init(&pods.a, &a_args);
    wisp_init(&pods.b, &common);
    let nat_a = nat(&pods.a, &mode.save(false));
    assert!(
        nat_a.contains(&format!(
            "-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports {} -m comment --comment \"proxy-init/ignore-port-{}\" -j RETURN",
            skip_a, skip_a
        )),
        "{nat_a}"
    );

    // b's pod (service account `web`) and its Service, as both control planes see them.
    let b_ip: std::net::Ipv4Addr = pods.ip(2).parse().unwrap();
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("web.yaml"),
        [
            service_yaml("web", "default", None, 8080, 8080),
            endpoint_slice_yaml(
                "web-1",
                "default",
                "web",
                8080,
                &[SliceEndpoint {
                    ip: b_ip,
                    pod: Some("web-b".into()),
                }],
            ),
            pod_yaml_with_sa("web-b", "default", b_ip, Some("web")),
        ]
        .join("---\n"),
    )
    .unwrap();
    let id = IdentityPlane::init(SocketAddr::from(([127, 0, 0, 1], IDENTITY_PORT)));
    let _backend = backend(&pods.b, &[8080, SKIP_BOTH, SKIP_OUT]).await;
    let b = side(&pods.b, manifests.path(), &id, "web").await;
    let a = side(&pods.a, manifests.path(), &id, "client").await;
    let logs = || {
        format!(
            "proxy a:\n{}\nproxy b:\n{}",
            a.proxy.output(),
            b.proxy.output()
        )
    };
    let client_id = identity_name("client", "default");
    let server_id = identity_name("web", "default");
    let outbound_mtls = |m: &str| {
        metric_sum(
            m,
            "request_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("server_id", &server_id),
            ],
        )
    };
    let inbound_mtls = |m: &str| {
        metric_sum(
            m,
            "request_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("client_id", &client_id),
            ],
        )
    };
    let all =
        |m: &str, direction: &str| metric_sum(m, "request_total", &[("direction", direction)]);

    // An unmodified client: curl as root to b's pod IP.
    let get = |port: u16| {
        let url = format!("http://{}:{port}/", pods.ip(2));
        let (ok, out, err) = Pair::curl(&pods.a, &[&url]);
        assert!(ok, "curl {url} failed: {err}\n{}", logs());
        assert_eq!(out, format!("b{port}"), "{}", logs());
    };
    get(8080);
    wait_metrics(&pods.a, "a: one outbound mTLS request", |m| {
        outbound_mtls(m) == 1.0 && all(m, "outbound") == 1.0
    })
    .await;
    wait_metrics(&pods.b, "b: one inbound mTLS request from a", |m| {
        inbound_mtls(m) == 1.0 && all(m, "inbound") == 1.0
    })
    .await;

    // Skipped by a (outbound) and b (inbound): no proxy sees it.
    get(SKIP_BOTH);
    // Skipped by a only: b's proxy takes it, in plaintext.
    get(SKIP_OUT);
    wait_metrics(
        &pods.b,
        "b: the plaintext request on the port a skips",
        |m| {
            metric_sum(
                m,
                "request_total",
                &[("direction", "inbound"), ("tls", "no_identity")],
            ) == 1.0
        },
    )
    .await;
    // One more proxied request: once it is counted, the skipped ones would
    // have been too; the totals show they were not.
    get(8080);
    wait_metrics(&pods.a, "a: two outbound requests, no more", |m| {
        outbound_mtls(m) == 2.0 && all(m, "outbound") == 2.0
    })
    .await;
    wait_metrics(
        &pods.b,
        "b: two mTLS + one plaintext inbound, no more",
        |m| inbound_mtls(m) == 2.0 && all(m, "inbound") == 3.0,
    )
    .await;

    // The rules survive a second run unchanged, with traffic flowing.
    let before = nat(&pods.b, &mode.save(false));
    wisp_init(&pods.b, &common);
    assert_eq!(nat(&pods.b, &mode.save(false)), before);
    get(8080);
    wait_metrics(&pods.b, "b: still redirected after the second run", |m| {
        inbound_mtls(m) == 3.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_init_redirects_through_both_proxies_legacy() {
    let test = "wisp_init_redirects_through_both_proxies_legacy";
    if !supported(test) || !kernel_has(Mode::Legacy, test) {
        return;
    }
    redirect_through_both_proxies(Mode::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wisp_init_redirects_through_both_proxies_nft() {
    let test = "wisp_init_redirects_through_both_proxies_nft";
    if !supported(test) || !nft_installed(test) || !kernel_has(Mode::Nft, test) {
        return;
    }
    redirect_through_both_proxies(Mode::Nft).await;
}

/// A second run leaves `iptables-save -t nat` identical (IPv4 and IPv6),
/// `--dry-run` changes nothing and prints exactly the rules a run installs
/// (more than 15 skip ports: several multiport rules), and a gid rule.
fn idempotent_and_dry_run(mode: Mode) {
    let pods = Pair::create('i', 79);
    let ns = &pods.a;
    let v6 = ipv6_nat(ns, mode);
    let ipv6 = format!("--ipv6={v6}");
    let many: String = (5000..5020)
        .map(|p| p.to_string())
        .chain(["6000-6010".to_string()])
        .collect::<Vec<_>>()
        .join(",");
    let args = [
        "--iptables-mode",
        mode.flag(),
        &ipv6,
        "--proxy-uid",
        PROXY_UID,
        "--proxy-gid",
        "2103",
        "--inbound-ports-to-ignore",
        "4190,4191",
        "--inbound-ports-to-ignore",
        &many,
        "--outbound-ports-to-ignore",
        "4567-4568",
        "--subnets-to-ignore",
        "10.80.0.0/16,fd00:80::/32",
    ];
    let saves: Vec<String> = std::iter::once(mode.save(false))
        .chain(v6.then(|| mode.save(true)))
        .collect();
    let snapshot = || saves.iter().map(|s| nat(ns, s)).collect::<Vec<_>>();

    // A dry run on a fresh namespace changes nothing.
    let fresh = snapshot();
    assert!(!fresh.iter().any(|t| t.contains("PROXY_INIT")), "{fresh:?}");
    let mut dry_args = args.to_vec();
    dry_args.push("--dry-run");
    let dry = wisp_init(ns, &dry_args);
    assert_eq!(snapshot(), fresh);
    let sections: Vec<&str> = dry.split("# IPv").skip(1).collect();
    assert_eq!(sections.len(), saves.len(), "{dry}");
    assert!(dry.starts_with(&format!(
        "# IPv4 rules: iptables-{}-restore --noflush",
        mode.flag()
    )));

    // The first run installs exactly the printed rules, in order.
    wisp_init(ns, &args);
    let first = snapshot();
    for (text, section) in first.iter().zip(&sections) {
        assert_eq!(rule_lines(text), rule_lines(section), "{text}");
        assert!(text.contains(":PROXY_INIT_OUTPUT -"), "{text}");
    }
    let v4 = &first[0];
    assert_eq!(
        rule_lines(v4)
            .iter()
            .filter(|l| l.contains("-m multiport"))
            .count(),
        3,
        "20 ports and a range make two inbound rules, plus one outbound:\n{v4}"
    );
    assert!(v4.contains("--gid-owner 2103"), "{v4}");
    assert!(v4.contains("-s 10.80.0.0/16"), "{v4}");
    assert!(!v4.contains("fd00:80::"), "{v4}");
    if v6 {
        assert!(first[1].contains("-s fd00:80::/32"), "{}", first[1]);
        assert!(!first[1].contains("10.80.0.0"), "{}", first[1]);
    }

    // Second run and a later dry run: identical tables, one jump each.
    wisp_init(ns, &args);
    assert_eq!(snapshot(), first);
    wisp_init(ns, &dry_args);
    assert_eq!(snapshot(), first);
    for text in &first {
        assert_eq!(text.matches("-j PROXY_INIT_REDIRECT").count(), 1, "{text}");
        assert_eq!(text.matches("-j PROXY_INIT_OUTPUT").count(), 1, "{text}");
    }

    // Different flags: the chains are flushed and refilled, not appended to.
    wisp_init(
        ns,
        &[
            "--iptables-mode",
            mode.flag(),
            &ipv6,
            "--inbound-ports-to-ignore",
            "4191",
        ],
    );
    let changed = nat(ns, &mode.save(false));
    assert!(!changed.contains("5000"), "{changed}");
    assert!(!changed.contains("--gid-owner"), "{changed}");
    assert_eq!(changed.matches("-j PROXY_INIT_REDIRECT").count(), 1);
    assert_eq!(
        rule_lines(&changed).len(),
        2 + 3 + 2,
        "jumps, 3 output rules, 2 redirect rules:\n{changed}"
    );
}

#[test]
fn wisp_init_is_idempotent_and_dry_run_changes_nothing_legacy() {
    let test = "wisp_init_is_idempotent_and_dry_run_changes_nothing_legacy";
    if !supported(test) || !kernel_has(Mode::Legacy, test) {
        return;
    }
    idempotent_and_dry_run(Mode::Legacy);
}

#[test]
fn wisp_init_is_idempotent_and_dry_run_changes_nothing_nft() {
    let test = "wisp_init_is_idempotent_and_dry_run_changes_nothing_nft";
    if !supported(test) || !nft_installed(test) || !kernel_has(Mode::Nft, test) {
        return;
    }
    idempotent_and_dry_run(Mode::Nft);
}

/// Missing iptables, no privileges, bad flags: non-zero exit, one line
/// naming the binary and the cause, nothing changed.
#[test]
fn wisp_init_fails_clearly_without_iptables_or_privileges() {
    let test = "wisp_init_fails_clearly_without_iptables_or_privileges";
    if !supported(test) || !kernel_has(Mode::Legacy, test) {
        return;
    }
    let pods = Pair::create('i', 79);
    let ns = &pods.a;
    let fresh = nat(ns, "iptables-legacy-save");
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // Not permitted: uid 65534 without NET_ADMIN.
    let out = wisp_init_as(ns, Some("65534"), None, &["--ipv6=false"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "wisp-init: error: cannot write the IPv4 rules: iptables-legacy-save -t nat failed"
        ),
        "{err}"
    );
    assert!(err.contains("Permission denied"), "{err}");

    // Missing: no iptables on PATH at all.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let out = wisp_init_as(ns, None, Some(path), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "wisp-init: error: cannot write the IPv4 rules: iptables-legacy-save not found"
        ),
        "{err}"
    );

    // Invalid port list: a usage error naming the flag and the value.
    let out = wisp_init_as(ns, None, None, &["--outbound-ports-to-ignore", "443,99999"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("'--outbound-ports-to-ignore <PORTS>': port 99999 is out of range"),
        "{err}"
    );
    assert_eq!(nat(ns, "iptables-legacy-save"), fresh);
}

/// `wisp-await` gives up at its timeout with a message naming the address.
#[test]
fn wisp_await_times_out_when_the_proxy_never_gets_ready() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let out = Command::new(bin("wisp-await"))
        .args(["--timeout=300ms", "--backoff=20ms"])
        .arg(format!("--port={}", closed.port()))
        .args(["--", "sh", "-c", "echo must not run"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "wisp-await: the proxy at {closed} was not ready within 300ms"
        )),
        "{err}"
    );
    // Disabled by the environment: no wait, the command runs.
    let out = Command::new(bin("wisp-await"))
        .arg(format!("--port={}", closed.port()))
        .args(["--", "sh", "-c", "echo ran; exit 3"])
        .env("LINKERD_AWAIT_DISABLED", "yes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
}
