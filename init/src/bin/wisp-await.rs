//! `wisp-await`: waits until the local proxy is ready, then optionally runs
//! a command, like linkerd-await. It polls `GET http://127.0.0.1:<port>/ready`
//! until a 200 or the timeout (exit 1 with a message). The injector runs it
//! as the app container's `postStart` hook when the proxy is not a native
//! sidecar: `wisp-await --timeout=2m --port=4191`.
//!
//! With a command (`wisp-await -- cmd args`) it execs the command once the
//! proxy is ready; with `--shutdown` it runs the command as a child and,
//! when it exits, asks the proxy to shut down (`POST /shutdown`) and exits
//! with the command's status (for Jobs). `LINKERD_AWAIT_DISABLED` (or
//! `LINKERD_DISABLED`) set to anything skips the wait.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

/// Waits for the local wisp proxy to become ready, then runs a command.
#[derive(Debug, Parser)]
#[command(name = "wisp-await", version)]
struct Args {
    /// Port of the proxy's admin server on 127.0.0.1.
    #[arg(short, long, default_value_t = 4191)]
    port: u16,

    /// Give up (exit 1) if the proxy is not ready by then (e.g. 2m, 30s, 500ms).
    #[arg(short, long, default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,

    /// Wait between readiness checks.
    #[arg(short, long, default_value = "1s", value_parser = parse_duration)]
    backoff: Duration,

    /// Run the command as a child and shut the proxy down when it exits.
    #[arg(short = 'S', long)]
    shutdown: bool,

    /// Say when the wait is disabled by the environment.
    #[arg(short, long, env = "LINKERD_AWAIT_VERBOSE")]
    verbose: bool,

    /// The command to run once the proxy is ready, and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// Parses `500ms`, `30s`, `2m`, `1h`; a bare number is seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("{s:?} is not a duration (e.g. 500ms, 30s, 2m, 1h)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(ms))
}

/// Why a readiness check failed or the command could not run.
#[derive(Debug, thiserror::Error)]
enum AwaitError {
    /// No connection, or it broke.
    #[error("{addr}: {source}")]
    Io {
        /// The admin address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not speak HTTP/1 (or said too much).
    #[error("{addr}: not an HTTP response ({why})")]
    Protocol {
        /// The admin address.
        addr: SocketAddr,
        /// What was wrong.
        why: String,
    },
}

/// The largest response head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// Sends `method path` to `addr` (HTTP/1.1, `Connection: close`), waiting
/// at most `limit` for each step; returns the response status.
fn request(addr: SocketAddr, method: &str, path: &str, limit: Duration) -> Result<u16, AwaitError> {
    let io = |source| AwaitError::Io { addr, source };
    let limit = limit.max(Duration::from_millis(10));
    let mut stream = TcpStream::connect_timeout(&addr, limit).map_err(io)?;
    stream.set_read_timeout(Some(limit)).map_err(io)?;
    stream.set_write_timeout(Some(limit)).map_err(io)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: wisp-await\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).map_err(io)?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Err(AwaitError::Protocol {
                addr,
                why: "connection closed before the response head".into(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut rsp = httparse::Response::new(&mut headers);
        match rsp.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                return rsp.code.ok_or_else(|| AwaitError::Protocol {
                    addr,
                    why: "no status".into(),
                })
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Err(AwaitError::Protocol {
                    addr,
                    why: format!("head larger than {MAX_HEAD} bytes"),
                })
            }
            Err(e) => {
                return Err(AwaitError::Protocol {
                    addr,
                    why: e.to_string(),
                })
            }
        }
    }
}

/// Polls `/ready` until 200 or `timeout`; `Err` holds the last failure.
fn wait_ready(addr: SocketAddr, timeout: Duration, backoff: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match request(addr, "GET", "/ready", left.min(Duration::from_secs(1))) {
            Ok(200) => return Ok(()),
            Ok(status) => format!("/ready answered {status}"),
            Err(e) => e.to_string(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        // The poll interval of this waiting loop.
        std::thread::sleep(backoff.min(left));
    }
}

/// The exit code of a finished child: its code, or 128 + signal.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => u8::try_from(c).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(1),
        _ => 1,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let disabled = ["LINKERD_AWAIT_DISABLED", "LINKERD_DISABLED"]
        .iter()
        .find_map(|v| std::env::var_os(v).filter(|s| !s.is_empty()).map(|_| *v));
    match disabled {
        Some(var) => {
            if args.verbose {
                eprintln!("wisp-await: {var} is set: not waiting for the proxy");
            }
        }
        None => {
            if let Err(last) = wait_ready(addr, args.timeout, args.backoff) {
                eprintln!(
                    "wisp-await: the proxy at {addr} was not ready within {:?}: {last}",
                    args.timeout
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let Some((program, rest)) = args.command.split_first() else {
        return ExitCode::SUCCESS;
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    if !args.shutdown {
        use std::os::unix::process::CommandExt as _;
        // Only returns on failure.
        let e = cmd.exec();
        eprintln!("wisp-await: cannot run {}: {e}", program.to_string_lossy());
        return ExitCode::from(127);
    }
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wisp-await: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    match request(addr, "POST", "/shutdown", Duration::from_secs(5)) {
        Ok(200..=299) => {}
        Ok(s) => {
            eprintln!("wisp-await: POST /shutdown answered {s} (is the shutdown endpoint enabled?)")
        }
        Err(e) => eprintln!("wisp-await: POST /shutdown failed: {e}"),
    }
    ExitCode::from(exit_code(status))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "m", "2 m", "1d", "-1s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_like_linkerd_await() {
        let a = Args::try_parse_from(["wisp-await", "--timeout=2m", "--port=4191"]).unwrap();
        assert_eq!(
            (a.port, a.timeout, a.command.len()),
            (4191, Duration::from_secs(120), 0)
        );
        let a = Args::try_parse_from(["wisp-await", "-S", "--", "sh", "-c", "exit 3"]).unwrap();
        assert!(a.shutdown);
        assert_eq!(a.command, ["sh", "-c", "exit 3"]);
    }

    /// Serves `answers` (one raw response per connection), then stops.
    fn server(answers: Vec<&'static str>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for a in answers {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(a.as_bytes());
            }
        });
        addr
    }

    #[test]
    fn polls_until_ready() {
        let addr = server(vec![
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 10\r\n\r\nnot ready\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\n",
        ]);
        wait_ready(addr, Duration::from_secs(10), Duration::from_millis(10)).unwrap();
    }

    #[test]
    fn times_out_with_the_last_failure() {
        let addr = server(vec!["HTTP/1.1 503 Service Unavailable\r\n\r\n"; 100]);
        let e =
            wait_ready(addr, Duration::from_millis(200), Duration::from_millis(20)).unwrap_err();
        assert_eq!(e, "/ready answered 503");
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = wait_ready(
            closed,
            Duration::from_millis(100),
            Duration::from_millis(20),
        )
        .unwrap_err();
        assert!(e.contains("refused"), "{e}");
        // Garbage.
        let addr = server(vec!["SSH-2.0-OpenSSH\r\n\r\n"; 100]);
        let e =
            wait_ready(addr, Duration::from_millis(100), Duration::from_millis(20)).unwrap_err();
        assert!(e.contains("not an HTTP response"), "{e}");
    }
}
