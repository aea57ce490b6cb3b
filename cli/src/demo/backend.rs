//! `wisp demo backend`: one demo pod's application. Answers with a body
//! naming the pod and an `x-demo-pod` header, after an optional delay:
//! `GET /flaky` fails with 500 `--flaky-percent` of the time, `GET /slow`
//! takes `--slow-path-ms` longer, every other path (`/`, `/books/7`) is 200.
//! Exits when its parent (the demo) goes away.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The response header naming the pod that answered.
pub const POD_HEADER: &str = "x-demo-pod";

/// Arguments of the hidden `wisp demo backend` mode.
#[derive(clap::Args)]
pub struct Args {
    /// Listen address.
    #[arg(long)]
    addr: SocketAddr,
    /// The pod name to answer with.
    #[arg(long)]
    name: String,
    /// Delay before each answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// How often `GET /flaky` answers 500, in percent.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    flaky_percent: u8,
    /// Extra delay of `GET /slow`, in milliseconds.
    #[arg(long, default_value_t = 0)]
    slow_path_ms: u64,
}

/// Serves until killed or orphaned.
pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let pod = HeaderValue::from_str(&args.name).context("the pod name is not a header value")?;
    let answer = Arc::new(Answer {
        body: Bytes::from(format!("hello from {} ({})\n", args.name, args.addr)),
        pod,
        delay: Duration::from_millis(args.delay_ms),
        flaky_percent: u64::from(args.flaky_percent),
        slow_path: Duration::from_millis(args.slow_path_ms),
        rng: AtomicU64::new(seed()),
    });
    let parent = std::os::unix::process::parent_id();
    let mut orphan_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = orphan_check.tick() => {
                if std::os::unix::process::parent_id() != parent {
                    return Ok(());
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let answer = answer.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(answer.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// How this pod answers.
struct Answer {
    body: Bytes,
    pod: HeaderValue,
    delay: Duration,
    flaky_percent: u64,
    slow_path: Duration,
    /// xorshift64 state for `/flaky`.
    rng: AtomicU64,
}

impl Answer {
    /// A number in `0..100`, uniformly enough for a demo.
    fn percentile(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x % 100
    }
}

/// A non-zero seed that differs between pods and runs.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

async fn respond(
    answer: Arc<Answer>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut delay = answer.delay;
    let mut status = StatusCode::OK;
    match req.uri().path() {
        "/slow" => delay += answer.slow_path,
        "/flaky" if answer.percentile() < answer.flaky_percent => {
            status = StatusCode::INTERNAL_SERVER_ERROR;
        }
        _ => {}
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut resp = Response::new(Full::new(answer.body.clone()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(POD_HEADER, answer.pod.clone());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}
