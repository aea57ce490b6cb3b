//! A child process whose stdout is collected on a thread while it runs, for
//! tests that watch a long-running command (`wisp tap`, `wisp top`) and
//! poll what it printed so far.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running command; killed when dropped.
pub struct Running {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let out = Arc::new(Mutex::new(Vec::new()));
        let reader = std::thread::spawn({
            let out = out.clone();
            move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    lock(&out).extend_from_slice(&buf[..n]);
                }
            }
        });
        Running {
            child,
            out,
            reader: Some(reader),
        }
    }

    /// Its stdin (piped), once: e.g. to type keys into `wisp top`.
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// What it printed on stdout so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&lock(&self.out)).into_owned()
    }

    /// Its stderr, read to the end (waits until the process closes it, so
    /// call it once the process exited or was killed, or to wait for that).
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Kills the process and returns its stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }

    /// Waits for the exit (killing it after `timeout`, which fails the
    /// test): success, stdout, stderr.
    pub async fn finish(mut self, timeout: Duration) -> (bool, String, String) {
        let deadline = std::time::Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s);
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let err = self.stderr();
        let out = self.output();
        match status {
            Some(s) => (s.success(), out, err),
            None => panic!("did not exit in {timeout:?}\nstdout:\n{out}\nstderr:\n{err}"),
        }
    }
}

fn lock(out: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    out.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
