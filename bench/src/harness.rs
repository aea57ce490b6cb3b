//! Starting, watching and stopping the child processes of a comparison,
//! and cleaning up after them on every exit path (errors, Ctrl-C, SIGTERM).

use crate::probe;
use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Children and directories to clean up if the bench is interrupted.
struct Registry {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    dirs: Vec::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs SIGINT/SIGTERM handling: stop every registered child, remove
/// registered directories, exit with status 130.
pub fn install_signal_handler() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("building signal runtime")?;
    // Register the handlers before returning so no signal is missed.
    let mut signals = {
        let _runtime = runtime.enter();
        wisp_common::signal::ShutdownSignals::new()?
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signal = runtime.block_on(signals.recv());
            eprintln!("wisp-bench: interrupted ({signal}), stopping children");
            emergency_cleanup();
            std::process::exit(130);
        })
        .context("spawning signal thread")?;
    Ok(())
}

/// Stops all registered children (newest first) and removes registered dirs.
fn emergency_cleanup() {
    let (pids, dirs) = {
        let mut reg = registry();
        (std::mem::take(&mut reg.pids), std::mem::take(&mut reg.dirs))
    };
    for &pid in pids.iter().rev() {
        let _ = crate::sys::send_signal(pid, crate::sys::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in &pids {
        if alive(pid) {
            let _ = crate::sys::send_signal(pid, crate::sys::SIGKILL);
        }
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// True while `/proc/PID` exists and the process is not a zombie.
fn alive(pid: u32) -> bool {
    wisp_common::procfs::is_running(wisp_common::procfs::Process::Pid(pid))
}

/// A temporary directory removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        registry().dirs.push(path.clone());
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        registry().dirs.retain(|d| d != &self.path);
    }
}

/// A running child process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ChildGuard {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl ChildGuard {
    /// Starts `cmd` with stdout and stderr sent to `LOG_DIR/NAME.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating log file handle")?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        crate::sys::terminate_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {:?}", cmd.get_program()))?;
        registry().pids.push(child.id());
        Ok(Self {
            name: name.to_string(),
            child,
            log,
            stopped: false,
        })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// An error if the child has exited, quoting the end of its output.
    pub fn check_running(&mut self) -> Result<()> {
        match self.exited() {
            Some(status) => Err(anyhow!(
                "{} exited ({status}); last output:\n{}",
                self.name,
                self.log_tail(20)
            )),
            None => Ok(()),
        }
    }

    /// The last `lines` lines of the child's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        if tail.is_empty() {
            "(no output)".to_string()
        } else {
            tail
        }
    }

    /// Polls until a TCP connection to `addr` succeeds, failing if the child
    /// exits or `timeout` passes.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if probe::accepts(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {addr} within {timeout:?}; last output:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `GET http://ADDR/PATH` until it answers 200, failing if the child
    /// exits or `timeout` passes.
    pub fn wait_http_ok(&mut self, addr: SocketAddr, path: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let last =
                match probe::get_status(addr, &addr.to_string(), path, Duration::from_secs(1)) {
                    Ok(200) => return Ok(()),
                    Ok(code) => format!("status {code}"),
                    Err(e) => format!("{e:#}"),
                };
            if Instant::now() > deadline {
                bail!(
                    "{} not ready: GET http://{addr}{path} did not return 200 within {timeout:?} \
                     (last: {last}); last output:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, wait up to 5 s, then SIGKILL; always reaps the child.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id();
        if self.exited().is_none() {
            let _ = crate::sys::send_signal(pid, crate::sys::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if self.exited().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        registry().pids.retain(|&p| p != pid);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}
