//! A plain HTTP/1.1 client for the demo: pooled, with a per-request timeout.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The pooled client type.
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A response, fully read.
pub struct Reply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Bytes,
}

/// A new pooled HTTP/1.1 client.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

/// `GET url` (with `Host: host` if given), reading the whole body, within `timeout`.
pub async fn get(
    client: &HttpClient,
    url: &str,
    host: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Reply> {
    let mut req = Request::get(url);
    if let Some(host) = host {
        req = req.header(header::HOST, host);
    }
    let req = req
        .body(Empty::new())
        .with_context(|| format!("bad request URL {url}"))?;
    let exchange = async {
        let resp = client.request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("GET {url}: no answer within {timeout:?}"))?
        .with_context(|| format!("GET {url}"))
}
