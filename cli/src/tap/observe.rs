//! Calling `Tap.Observe` on proxies' control ports, as the Linkerd viz tap
//! service does: one call per proxy with `limit = max-rps × 1 s`, issued
//! again once the previous call's stream ended and its one-second window
//! passed, so each proxy reports at most `max-rps` requests a second.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use linkerd2_proxy_api::tap::observe_request::{self, extract, r#match as m};
use linkerd2_proxy_api::tap::tap_client::TapClient;
use linkerd2_proxy_api::tap::ObserveRequest;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::Endpoint;

use crate::tap::event::Tapped;
use crate::tap::tls::TapTls;
use crate::target::{ProxyTarget, TargetArgs};

/// The window `--max-rps` counts in.
const WINDOW: Duration = Duration::from_secs(1);

/// Which requests to tap (the options `tap`, `top` and `profile --tap` share).
#[derive(clap::Args, Clone, Debug)]
pub struct FilterArgs {
    /// Only requests to these proxies (`pod/NAME`, `deploy/NAME`, or an
    /// admin `HOST:PORT`): their pod IPs as destinations.
    #[arg(long, value_name = "TARGET")]
    pub to: Vec<String>,
    /// Only requests with this method.
    #[arg(long)]
    pub method: Option<String>,
    /// Only requests whose path starts with this.
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Only requests with this authority.
    #[arg(long)]
    pub authority: Option<String>,
    /// Only requests with this scheme (`http` or `https`).
    #[arg(long)]
    pub scheme: Option<String>,
    /// Most requests reported per second, per proxy.
    #[arg(long, default_value_t = 100.0)]
    pub max_rps: f64,
}

fn http(x: m::http::Match) -> observe_request::Match {
    observe_request::Match {
        r#match: Some(m::Match::Http(m::Http { r#match: Some(x) })),
    }
}

fn text(x: m::http::string_match::Match) -> m::http::StringMatch {
    m::http::StringMatch { r#match: Some(x) }
}

/// A match of destination IP `ip` (a /32 or /128 netmask).
pub fn destination_ip(ip: IpAddr) -> observe_request::Match {
    let mask = if ip.is_ipv4() { 32 } else { 128 };
    observe_request::Match {
        r#match: Some(m::Match::Destination(m::Tcp {
            r#match: Some(m::tcp::Match::Netmask(m::tcp::Netmask {
                ip: Some(ip.into()),
                mask,
            })),
        })),
    }
}

/// The `Match` of the options; `to` are the `--to` proxies, resolved.
pub fn build_match(
    f: &FilterArgs,
    to: &[ProxyTarget],
) -> anyhow::Result<Option<observe_request::Match>> {
    let mut all = Vec::new();
    if !to.is_empty() {
        let mut ips: Vec<IpAddr> = to.iter().map(|t| t.ip()).collect();
        ips.dedup();
        all.push(observe_request::Match {
            r#match: Some(m::Match::Any(m::Seq {
                matches: ips.into_iter().map(destination_ip).collect(),
            })),
        });
    }
    if let Some(method) = &f.method {
        let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("invalid --method {method:?}"))?;
        all.push(http(m::http::Match::Method(method.into())));
    }
    if let Some(prefix) = &f.path {
        all.push(http(m::http::Match::Path(text(
            m::http::string_match::Match::Prefix(prefix.clone()),
        ))));
    }
    if let Some(authority) = &f.authority {
        all.push(http(m::http::Match::Authority(text(
            m::http::string_match::Match::Exact(authority.clone()),
        ))));
    }
    if let Some(scheme) = &f.scheme {
        all.push(http(m::http::Match::Scheme(scheme.as_str().into())));
    }
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(observe_request::Match {
            r#match: Some(m::Match::All(m::Seq { matches: all })),
        }),
    })
}

/// The per-window limit of `max_rps` (at least one request).
pub fn window_limit(max_rps: f64) -> u32 {
    let n = (max_rps * WINDOW.as_secs_f64()).ceil();
    if n.is_finite() && n >= 1.0 {
        n.min(f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// What the taps report.
pub enum Report {
    /// An event of the proxy with this index in the targets.
    Event(usize, Box<Tapped>),
    /// The tap of this proxy failed (it is not tapped any more).
    Failed(String, anyhow::Error),
}

/// A request for the options: `--to` targets resolved with `targets`.
pub fn observe_request(
    f: &FilterArgs,
    targets: &TargetArgs,
    headers: bool,
) -> anyhow::Result<ObserveRequest> {
    let to = if f.to.is_empty() {
        Vec::new()
    } else {
        targets.resolve_all(&f.to).context("resolving --to")?
    };
    if f.max_rps.is_nan() || f.max_rps <= 0.0 {
        anyhow::bail!("--max-rps must be positive");
    }
    Ok(ObserveRequest {
        limit: window_limit(f.max_rps),
        r#match: build_match(f, &to)?,
        extract: headers.then_some(observe_request::Extract {
            extract: Some(extract::Extract::Http(extract::Http {
                extract: Some(extract::http::Extract::Headers(extract::http::Headers {})),
            })),
        }),
    })
}

/// Taps every proxy of `targets` until the receiver goes away, sending
/// what they report to `tx`; with `tls` (`--tls-dir`), over mesh TLS.
/// Fails at once if a proxy's expected identity cannot be told.
pub fn spawn_taps(
    targets: &[ProxyTarget],
    req: ObserveRequest,
    tls: Option<&Arc<TapTls>>,
    tx: mpsc::Sender<Report>,
) -> anyhow::Result<JoinSet<()>> {
    let mut planned = Vec::with_capacity(targets.len());
    for t in targets {
        let tls = match tls {
            Some(tls) => Some((tls.clone(), tls.server_identity(t)?)),
            None => None,
        };
        planned.push((t.clone(), tls));
    }
    let mut set = JoinSet::new();
    for (i, (t, tls)) in planned.into_iter().enumerate() {
        let (req, tx) = (req.clone(), tx.clone());
        set.spawn(async move {
            if let Err(e) = tap_one(i, &t, tls.as_ref(), req, &tx).await {
                let _ = tx.send(Report::Failed(t.name.clone(), e)).await;
            }
        });
    }
    Ok(set)
}

async fn tap_one(
    index: usize,
    t: &ProxyTarget,
    tls: Option<&(Arc<TapTls>, String)>,
    req: ObserveRequest,
    tx: &mpsc::Sender<Report>,
) -> anyhow::Result<()> {
    let channel = match tls {
        Some((tls, server_id)) => tls.connect(t, server_id).await?,
        None => {
            let endpoint = Endpoint::from_shared(format!("http://{}", t.control))
                .context("invalid control address")?
                .connect_timeout(Duration::from_secs(5));
            endpoint.connect().await.with_context(|| {
                format!(
                    "cannot connect to the tap server of {} at {} (is LINKERD2_PROXY_TAP_SVC_NAME set on that proxy?)",
                    t.name, t.control
                )
            })?
        }
    };
    let tls = tls.map(|(tls, _)| tls.as_ref());
    let mut client = TapClient::new(channel);
    loop {
        let window_end = tokio::time::Instant::now() + WINDOW;
        let mut stream = client
            .observe(req.clone())
            .await
            .map_err(|s| status_error(t, tls, s))?
            .into_inner();
        while let Some(e) = stream
            .message()
            .await
            .map_err(|s| status_error(t, tls, s))?
        {
            if let Some(e) = Tapped::from_proto(e) {
                if tx.send(Report::Event(index, Box::new(e))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep_until(window_end).await;
    }
}

/// Explains a gRPC error of proxy `t`'s tap; `tls` is how it was reached.
fn status_error(t: &ProxyTarget, tls: Option<&TapTls>, s: tonic::Status) -> anyhow::Error {
    match (s.code(), tls) {
        (tonic::Code::Unauthenticated, Some(tls)) => tls.unauthenticated(t, s.message()),
        (tonic::Code::Unauthenticated, None) => anyhow::anyhow!(
            "tap of {} at {}: {} (Unauthenticated): the proxy accepts plaintext taps from loopback only; from elsewhere use --tls-dir with a certificate of its tap identity (`wisp identity issue`)",
            t.name,
            t.control,
            s.message()
        ),
        _ => anyhow::anyhow!(
            "tap of {} at {}: {} ({:?})",
            t.name,
            t.control,
            s.message(),
            s.code()
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_matches() {
        assert_eq!(window_limit(100.0), 100);
        assert_eq!(window_limit(0.5), 1);
        assert_eq!(window_limit(f64::NAN), 1);
        let f = FilterArgs {
            to: vec![],
            method: Some("get".into()),
            path: Some("/books".into()),
            authority: None,
            scheme: None,
            max_rps: 10.0,
        };
        let m = build_match(&f, &[]).unwrap().unwrap();
        let Some(m::Match::All(seq)) = m.r#match else {
            panic!("an All match")
        };
        assert_eq!(seq.matches.len(), 2);
        let none = FilterArgs {
            method: None,
            path: None,
            ..f
        };
        assert!(build_match(&none, &[]).unwrap().is_none());
    }
}
