//! The demo's child processes: spawned with their output in a log file, and
//! always stopped — in reverse start order, SIGTERM then SIGKILL after 3 s —
//! whether the demo ends normally, on an error or by a panic.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a child may take to exit after SIGTERM.
const TERM_GRACE: Duration = Duration::from_secs(3);
/// How many log lines an error message shows.
const TAIL_LINES: usize = 15;

/// One running child.
struct Spawned {
    name: String,
    child: Child,
    log: PathBuf,
}

/// The running children; dropping this stops them all.
#[derive(Default)]
pub struct Children {
    running: Vec<Spawned>,
}

impl Children {
    /// Starts `cmd` as `name`, its stdout and stderr going to `log`. The
    /// child gets its own process group, so a terminal's Ctrl-C reaches only
    /// the demo, which then stops the children in order.
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: PathBuf) -> anyhow::Result<u32> {
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot open {} twice", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Plain log files: no colour escapes (tracing honours NO_COLOR).
            .env("NO_COLOR", "1")
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", cmd.get_program().display()))?;
        let pid = child.id();
        self.running.push(Spawned {
            name: name.to_string(),
            child,
            log,
        });
        Ok(pid)
    }

    /// Fails, showing its log, if any child has exited.
    pub fn check_all(&mut self) -> anyhow::Result<()> {
        self.running.iter_mut().try_for_each(check_one)
    }

    /// The last lines of `name`'s log, for error messages.
    pub fn log_tail(&self, name: &str) -> String {
        self.running
            .iter()
            .find(|s| s.name == name)
            .map(|s| describe_log(&s.log))
            .unwrap_or_default()
    }

    /// Stops every child, last started first.
    pub fn stop_all(&mut self) {
        while let Some(s) = self.running.pop() {
            stop(s);
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn check_one(s: &mut Spawned) -> anyhow::Result<()> {
    match s.child.try_wait() {
        Ok(None) => Ok(()),
        Ok(Some(status)) => anyhow::bail!(
            "{} exited unexpectedly ({}){}",
            s.name,
            describe_status(status),
            describe_log(&s.log)
        ),
        Err(e) => Err(e).with_context(|| format!("cannot check on {}", s.name)),
    }
}

/// SIGTERM, wait up to [`TERM_GRACE`], then SIGKILL.
fn stop(mut s: Spawned) {
    if matches!(s.child.try_wait(), Ok(Some(_))) {
        return;
    }
    let termed = Command::new("kill")
        .arg("-TERM")
        .arg(s.child.id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    if termed {
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            match s.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        eprintln!(
            "wisp demo: {} did not stop within {TERM_GRACE:?}; killing it",
            s.name
        );
    }
    let _ = s.child.kill();
    let _ = s.child.wait();
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// `"; last lines of LOG:\n    ..."`, or a note that the log is empty.
fn describe_log(log: &Path) -> String {
    let text = match std::fs::read(log) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("; cannot read its log {}: {e}", log.display()),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return format!("; its log {} is empty", log.display());
    }
    let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    let mut out = format!("; last lines of {}:", log.display());
    for line in tail {
        out.push_str("\n    ");
        out.push_str(line);
    }
    out
}
