//! `wisp demo backend`: one demo pod's application. Answers every request
//! with 200, a body naming the pod and an `x-demo-pod` header, after an
//! optional delay. Exits when its parent (the demo) goes away.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
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

/// What every request gets.
struct Answer {
    body: Bytes,
    pod: HeaderValue,
    delay: Duration,
}

async fn respond(
    answer: Arc<Answer>,
    _req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut resp = Response::new(Full::new(answer.body.clone()));
    let headers = resp.headers_mut();
    headers.insert(POD_HEADER, answer.pod.clone());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}
