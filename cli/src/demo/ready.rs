//! Waiting for the children to be ready: a TCP port accepting, or an admin
//! `/ready` answering 200 (with identity on, a proxy is ready only once it
//! holds a certificate).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::children::Children;
use super::http_get;

/// What shows that a child is ready.
pub enum Probe {
    /// The address accepts TCP connections.
    Tcp(SocketAddr),
    /// `GET url` answers 200.
    HttpOk(String),
}

/// A child to wait for and its probe.
pub struct Wait {
    /// The child's name (as given to [`Children::spawn`]).
    pub name: String,
    /// How to tell it is ready.
    pub probe: Probe,
    /// What readiness means for it, said on timeout (`None`: nothing to add).
    pub note: Option<String>,
    /// Other children whose logs explain a timeout (a proxy's identity service).
    pub related: Vec<String>,
}

/// Waits until every probe succeeds, in order, all within `timeout`. Fails
/// early, with the child's log, if any child exits meanwhile; on timeout,
/// shows the child's log and those of its related children.
pub async fn wait_all(
    children: &mut Children,
    waits: &[Wait],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let client = http_get::client();
    for wait in waits {
        loop {
            children.check_all()?;
            let failure = match probe(&client, &wait.probe).await {
                Ok(()) => break,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let mut logs = children.log_tail(&wait.name);
                for related in &wait.related {
                    logs.push_str(&children.log_tail(related));
                }
                let note = wait
                    .note
                    .as_ref()
                    .map(|n| format!("{n}; "))
                    .unwrap_or_default();
                anyhow::bail!(
                    "{} was not ready within {timeout:?} ({note}{failure}){logs}",
                    wait.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

async fn probe(client: &http_get::HttpClient, probe: &Probe) -> Result<(), String> {
    match probe {
        Probe::Tcp(addr) => TcpStream::connect(addr)
            .await
            .map(drop)
            .map_err(|e| format!("connecting to {addr}: {e}")),
        Probe::HttpOk(url) => {
            let reply = http_get::get(client, url, None, Duration::from_secs(1))
                .await
                .map_err(|e| format!("{e:#}"))?;
            if reply.status.is_success() {
                Ok(())
            } else {
                Err(format!("GET {url} answered {}", reply.status))
            }
        }
    }
}
