//! Two network namespaces joined by a veth pair, for the tests that need
//! real hosts (transparent proxying, `wisp-init`): each namespace is a
//! "pod" with its own address, loopback and iptables. Needs root and `ip`
//! (callers check with [`crate::require`] first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::Process;

/// The proxy's uid (Linkerd's `proxyUID`), which the redirect rules let
/// out untouched.
pub const PROXY_UID: &str = "2102";

/// Pairs made by this test process (namespace and interface names stay
/// distinct while tests run in parallel).
static NEXT: AtomicU8 = AtomicU8::new(0);

/// Runs a command, panicking with its output if it fails; its stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Namespaces `a` (10.`net`.n.1) and `b` (10.`net`.n.2) joined by a veth
/// pair, with loopback up and no rules; deleted on drop.
pub struct Pair {
    /// The third octet of both addresses.
    pub n: u8,
    /// The second octet (one per test file, so files never collide).
    pub net: u8,
    /// Namespace `a`.
    pub a: String,
    /// Namespace `b`.
    pub b: String,
}

impl Pair {
    /// Creates the pair; `tag` (a letter per test file) goes into the
    /// namespace and interface names, `net` into the addresses.
    pub fn create(tag: char, net: u8) -> Pair {
        let seq = u32::from(NEXT.fetch_add(1, Ordering::SeqCst));
        let pid = std::process::id();
        // 1..=246, distinct for the (at most six) pairs of this process.
        let n = ((pid % 41) * 6 + seq % 6 + 1) as u8;
        let name = format!("{pid}-{n}");
        let pair = Pair {
            n,
            net,
            a: format!("wisp-{tag}-{name}-a"),
            b: format!("wisp-{tag}-{name}-b"),
        };
        // Remove leftovers of an earlier crashed run with the same names.
        let _ = Command::new("ip").args(["netns", "del", &pair.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &pair.b]).output();
        run(&["ip", "netns", "add", &pair.a]);
        run(&["ip", "netns", "add", &pair.b]);
        // Interface names are at most 15 bytes.
        let va = format!("w{tag}{}-{seq}a", pid % 1_000_000);
        let vb = format!("w{tag}{}-{seq}b", pid % 1_000_000);
        run(&[
            "ip", "link", "add", &va, "netns", &pair.a, "type", "veth", "peer", "name", &vb,
            "netns", &pair.b,
        ]);
        for (ns, dev, host) in [(&pair.a, &va, 1), (&pair.b, &vb, 2)] {
            let addr = format!("{}/24", pair.ip(host));
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// The address of host 1 (`a`) or 2 (`b`).
    pub fn ip(&self, host: u8) -> String {
        format!("10.{}.{}.{host}", self.net, self.n)
    }

    /// A command run inside namespace `ns`.
    pub fn exec(ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// `wisp-proxy` inside `ns` as uid [`PROXY_UID`] (`setpriv`), with a
    /// clean environment and a pod's listeners: outbound 127.0.0.1:4140,
    /// inbound 0.0.0.0:4143, admin 0.0.0.0:4191, the destination service
    /// at 127.0.0.1:8086. Callers add identity and other variables.
    pub fn proxy_command(ns: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, "setpriv"])
            .args([
                &format!("--reuid={PROXY_UID}"),
                &format!("--regid={PROXY_UID}"),
                "--clear-groups",
            ])
            .arg(world_binary("wisp-proxy"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "127.0.0.1:8086")
            .env("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:4140")
            .env("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "0.0.0.0:4143")
            .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:4191");
        cmd
    }

    /// Polls until the proxy `p` in `ns` answers `ready` on its admin port
    /// (10 s; fails the test if it exits first).
    pub async fn wait_ready(ns: &str, p: &mut Process) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (ok, out, _) = Pair::curl(ns, &["http://127.0.0.1:4191/ready"]);
            if ok && out == "ready\n" {
                return;
            }
            assert!(
                p.exited().is_none(),
                "proxy in {ns} exited:\n{}",
                p.output()
            );
            assert!(
                Instant::now() < deadline,
                "proxy in {ns} not ready:\n{}",
                p.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until something accepts HTTP connections at `addr` in `ns`
    /// (10 s; fails the test, naming `what`, if `p` exits first).
    pub async fn wait_listening(ns: &str, addr: &str, p: &mut Process, what: &str) {
        let url = format!("http://{addr}/");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, _, err) = Pair::curl(ns, &[&url]);
            if !err.contains("Connection refused") && !err.contains("Failed to connect") {
                return;
            }
            assert!(p.exited().is_none(), "{what} exited:\n{}", p.output());
            assert!(
                Instant::now() < deadline,
                "{what} did not start:\n{}",
                p.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `/metrics` of the proxy in `ns` (admin port 4191).
    pub fn metrics(ns: &str) -> String {
        let (ok, out, err) = Pair::curl(ns, &["http://127.0.0.1:4191/metrics"]);
        assert!(ok, "{err}");
        out
    }

    /// `curl -sS --max-time 10 <args>` inside `ns`: (success, stdout, stderr).
    pub fn curl(ns: &str, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).output();
    }
}

/// Binary `name` of this build, copied to a world-readable temp dir when
/// other users (the proxy's uid 2102, nobody) could not execute it in
/// place (a checkout under /root, say).
pub fn world_binary(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = crate::bin(name);
    let reachable = p.ancestors().skip(1).all(|d| {
        d.metadata()
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    }) && p
        .metadata()
        .map(|m| m.permissions().mode() & 0o005 == 0o005)
        .unwrap_or(false);
    if reachable {
        return p;
    }
    let dir = std::env::temp_dir().join(format!("wisp-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dst = dir.join(name);
    if !dst.exists() {
        // Copied under a name of this thread's, then renamed: tests running
        // in parallel never see a half-written binary.
        let tmp = dir.join(format!("{name}.{:?}", std::thread::current().id()));
        std::fs::copy(&p, &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &dst).unwrap();
    }
    dst
}
