//! `wisp proxy-config TARGET`: what a proxy knows right now, read from its
//! admin server's `/config.json` (served to loopback clients only) and
//! rendered in sections, like `istioctl proxy-config`; `-o json` passes
//! the document through.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::target::TargetArgs;

/// How `wisp proxy-config` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigOutput {
    /// Readable sections.
    Text,
    /// `/config.json` as the proxy served it.
    Json,
}

/// Arguments of `wisp proxy-config`.
#[derive(clap::Args)]
pub struct ProxyConfigArgs {
    /// The proxy: `pod/NAME`, `deploy/NAME` (every pod), or its admin `HOST:PORT`.
    pub target: String,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: ConfigOutput,
}

/// Runs `wisp proxy-config`.
pub fn run_proxy_config(args: ProxyConfigArgs) -> anyhow::Result<()> {
    let proxies = super::resolve(&args.target, &args.targets)?;
    let rt = super::runtime()?;
    let mut out = String::new();
    for (i, p) in proxies.iter().enumerate() {
        let body = rt
            .block_on(fetch(p.admin))
            .with_context(|| format!("proxy {}", p.name))?;
        match args.output {
            ConfigOutput::Json => {
                out.push_str(body.trim_end());
                out.push('\n');
            }
            ConfigOutput::Text => {
                if i > 0 {
                    out.push('\n');
                }
                let doc: Value = serde_json::from_str(&body)
                    .with_context(|| format!("proxy {}: /config.json is not JSON", p.name))?;
                out.push_str(&render(&p.name, p.admin, &doc));
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// `GET http://admin/config.json`.
async fn fetch(admin: SocketAddr) -> anyhow::Result<String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://{admin}/config.json").parse()?;
    let rsp = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .with_context(|| format!("GET http://{admin}/config.json timed out"))?
        .with_context(|| format!("GET http://{admin}/config.json"))?;
    let status = rsp.status();
    let body = rsp
        .into_body()
        .collect()
        .await
        .context("reading /config.json")?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        anyhow::bail!(
            "GET http://{admin}/config.json: {status}: {}",
            text.trim_end()
        );
    }
    Ok(text)
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn labels(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", s(v)))
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

/// Left-aligned columns, two spaces apart, each row indented by `indent`.
fn table(indent: &str, rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = indent.to_string();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn endpoints(indent: &str, eps: &[Value]) -> String {
    let mut rows = vec![vec![
        "ENDPOINT".to_string(),
        "IDENTITY".into(),
        "EWMA".into(),
        "PENDING".into(),
        "H2".into(),
        "LABELS".into(),
    ]];
    for e in eps {
        let ewma = e["ewma_ms"]
            .as_f64()
            .map(|m| format!("{m:.3}ms"))
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            s(&e["addr"]),
            s(&e["identity"]),
            ewma,
            s(&e["pending"]),
            s(&e["h2"]),
            labels(&e["labels"]),
        ]);
    }
    table(indent, &rows)
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The readable rendering of a `/config.json` document.
pub fn render(name: &str, admin: SocketAddr, doc: &Value) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "PROXY {name} (admin {admin})");
    let _ = writeln!(o, "  ready: {}", s(&doc["ready"]));
    let _ = writeln!(o, "  open taps: {}", s(&doc["taps"]));

    o.push_str("\nIDENTITY\n");
    match doc["identity"].as_object() {
        None => o.push_str("  disabled\n"),
        Some(id) => {
            let _ = writeln!(o, "  name: {}", s(&id["name"]));
            let expiry = id
                .get("certificate_expiry_unix")
                .and_then(Value::as_f64)
                .map(expiry_text)
                .unwrap_or_else(|| "no certificate yet".into());
            let _ = writeln!(o, "  certificate expires: {expiry}");
        }
    }

    o.push_str("\nLISTENERS\n");
    let mut rows = vec![vec!["NAME".to_string(), "ADDRESS".into()]];
    if let Some(l) = doc["listeners"].as_object() {
        rows.extend(l.iter().map(|(k, v)| vec![k.clone(), s(v)]));
    }
    o.push_str(&table("  ", &rows));

    let outbound = &doc["outbound"];
    o.push_str("\nSERVICES\n");
    let services = array(&outbound["services"]);
    if services.is_empty() {
        o.push_str("  none\n");
    }
    for svc in services {
        let stale = if svc["stale"].as_bool() == Some(true) {
            " (stale: remembered endpoints)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {}  resolution={}{stale}",
            s(&svc["authority"]),
            s(&svc["resolution"])
        );
        let eps = array(&svc["endpoints"]);
        if !eps.is_empty() {
            o.push_str(&endpoints("    ", eps));
        }
    }
    let remembered = array(&outbound["remembered"]);
    if !remembered.is_empty() {
        let names: Vec<String> = remembered.iter().map(s).collect();
        let _ = writeln!(o, "  remembered for outages: {}", names.join(", "));
    }

    o.push_str("\nPROFILES\n");
    let profiles = array(&outbound["profiles"]);
    if profiles.is_empty() {
        o.push_str("  none\n");
    }
    for p in profiles {
        let state = match p["received"].as_bool() {
            Some(true) => "received",
            _ => "none received",
        };
        let opaque = if p["opaque"].as_bool() == Some(true) {
            ", opaque"
        } else {
            ""
        };
        let _ = writeln!(o, "  {}  ({state}{opaque})", s(&p["authority"]));
        let routes = array(&p["routes"]);
        if !routes.is_empty() {
            let mut rows = vec![vec![
                "ROUTE".to_string(),
                "RETRYABLE".into(),
                "TIMEOUT".into(),
                "LABELS".into(),
            ]];
            for r in routes {
                rows.push(vec![
                    r["labels"]["route"]
                        .as_str()
                        .unwrap_or("(unnamed)")
                        .to_string(),
                    s(&r["retryable"]),
                    r["timeout_ms"]
                        .as_u64()
                        .map(|t| format!("{t}ms"))
                        .unwrap_or_else(|| "-".into()),
                    labels(&r["labels"]),
                ]);
            }
            o.push_str(&table("    ", &rows));
        }
        if let Some(b) = p["retry_budget"].as_object() {
            let _ = writeln!(
                o,
                "    retry budget: ratio {}, min {}/s, ttl {}s",
                s(&b["retry_ratio"]),
                s(&b["min_retries_per_second"]),
                s(&b["ttl_seconds"])
            );
        }
        let split = array(&p["split"]);
        if !split.is_empty() {
            o.push_str("    split:\n");
            let mut rows = vec![vec!["BACKEND".to_string(), "WEIGHT".into()]];
            for w in split {
                rows.push(vec![s(&w[0]), s(&w[1])]);
            }
            o.push_str(&table("      ", &rows));
        }
    }

    o.push_str("\nADDRESSES (traffic sent to an IP:port)\n");
    let addresses = array(&outbound["addresses"]);
    if addresses.is_empty() {
        o.push_str("  none\n");
    } else {
        o.push_str(&endpoints("  ", addresses));
    }

    o.push_str("\nINBOUND (application endpoints)\n");
    let inbound = array(&doc["inbound"]);
    if inbound.is_empty() {
        o.push_str("  none\n");
    } else {
        o.push_str(&endpoints("  ", inbound));
    }
    o
}

fn expiry_text(unix: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let left = unix - now;
    if left <= 0.0 {
        format!("expired {:.0}s ago (unix {unix:.0})", -left)
    } else {
        format!("in {} (unix {unix:.0})", human(left))
    }
}

fn human(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_section() {
        let doc: Value = serde_json::json!({
            "identity": {"name": "client.default.serviceaccount.identity.linkerd.cluster.local",
                         "certificate_expiry_unix": null},
            "ready": true,
            "listeners": {"admin": "127.0.0.10:4191", "outbound": "127.0.0.10:4140"},
            "outbound": {
                "services": [{"authority": "web.default.svc.cluster.local:80", "resolution": "ready",
                    "stale": false, "endpoints": [{"addr": "127.0.0.11:8080", "identity": null,
                    "labels": {"pod": "web-0"}, "h2": false, "opaque_transport_port": null,
                    "pending": 0, "ewma_ms": 1.5}]}],
                "profiles": [{"authority": "web.default.svc.cluster.local:80", "received": true,
                    "routes": [{"labels": {"route": "GET /books"}, "retryable": true, "timeout_ms": 250}],
                    "retry_budget": {"retry_ratio": 0.2, "min_retries_per_second": 10.0, "ttl_seconds": 10.0},
                    "split": [["web-v2.default.svc.cluster.local:80", 100]], "opaque": false}],
                "addresses": [], "remembered": []
            },
            "inbound": [],
            "taps": 0
        });
        let text = render("web-0", "127.0.0.10:4191".parse().unwrap(), &doc);
        for want in [
            "IDENTITY\n  name: client.default",
            "  admin     127.0.0.10:4191",
            "  web.default.svc.cluster.local:80  resolution=ready",
            "    127.0.0.11:8080  -         1.500ms  0        false  pod=web-0",
            "    GET /books  true       250ms",
            "    retry budget: ratio 0.2, min 10.0/s, ttl 10.0s",
            "      web-v2.default.svc.cluster.local:80  100",
            "INBOUND (application endpoints)\n  none",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
