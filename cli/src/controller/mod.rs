//! The controller: every control-plane role in one process, leader-free.
//!
//! - identity: `Identity.Certify`, tokens checked with TokenReview, the CA
//!   read from the issuer Secret and trust-roots ConfigMap and reloaded
//!   when they change ([`wisp_identity::k8s::KubeCa`]);
//! - destination: the Destination and policy APIs, serving mesh TLS with a
//!   certificate the process issues itself from that CA;
//! - injector: the proxy-injector webhook ([`injector`]);
//! - the admin server ([`admin`]): `/live`, `/ready` once every enabled
//!   role has its initial state, `/metrics`.
//!
//! A role that fails stops the process (non-zero exit, so the kubelet
//! restarts it); SIGTERM stops every role gracefully.

pub(crate) mod admin;
pub(crate) mod cluster;
pub(crate) mod injector;
pub(crate) mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};
use wisp_destination::policy::{Cidr, DefaultPolicy, PolicySettings};
use wisp_identity::k8s::{KubeCa, ObjectNames, TokenReviewValidator};

pub(crate) use metrics::{Role, State};

/// How long the roles get to finish after a stop request.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Which roles run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Roles {
    /// Destination + policy APIs.
    pub(crate) destination: bool,
    /// Identity.Certify.
    pub(crate) identity: bool,
    /// The injector webhook.
    pub(crate) injector: bool,
}

impl Roles {
    /// Whether any role is on.
    pub(crate) fn any(&self) -> bool {
        self.destination || self.identity || self.injector
    }

    fn enabled(&self) -> Vec<Role> {
        [
            (self.destination, Role::Destination),
            (self.identity, Role::Identity),
            (self.injector, Role::Injector),
        ]
        .into_iter()
        .filter_map(|(on, role)| on.then_some(role))
        .collect()
    }
}

/// Everything the controller needs, resolved from flags.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) roles: Roles,
    /// The destination's resource source (set when the destination runs).
    pub(crate) source: Option<wisp_destination::SourceSpec>,
    pub(crate) control_plane_ns: String,
    pub(crate) cluster_domain: String,
    pub(crate) trust_domain: String,
    pub(crate) cluster_networks: Vec<Cidr>,
    pub(crate) default_inbound_policy: DefaultPolicy,
    pub(crate) destination_addr: SocketAddr,
    pub(crate) identity_addr: SocketAddr,
    pub(crate) injector_addr: SocketAddr,
    /// No admin server when `None` (`wisp identity --source kube` without `--admin-addr`).
    pub(crate) admin_addr: Option<SocketAddr>,
    pub(crate) issuer_secret: String,
    pub(crate) trust_roots_configmap: String,
    pub(crate) validity: wisp_identity::Validity,
    pub(crate) injector_tls_dir: PathBuf,
    pub(crate) injector_config: PathBuf,
}

/// A future that completes once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs every enabled role until `shutdown` completes or one fails.
pub(crate) async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings = Arc::new(settings);
    let state = Arc::new(State::new(&settings.roles.enabled()));
    let (stop_tx, stop_rx) = watch::channel(false);

    let admin = match settings.admin_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--admin-addr)"))?;
            info!(%addr, "admin server listening (/ready, /live, /metrics)");
            Some(tokio::spawn(admin::serve(
                listener,
                state.clone(),
                stopped(stop_rx.clone()),
            )))
        }
        None => None,
    };

    let client = kube::Client::try_default().await.context(
        "cannot configure the Kubernetes client (no in-cluster config and no usable kubeconfig)",
    )?;
    let kube_ca = if settings.roles.identity || settings.roles.destination {
        let names = ObjectNames {
            namespace: settings.control_plane_ns.clone(),
            issuer_secret: settings.issuer_secret.clone(),
            trust_roots_configmap: settings.trust_roots_configmap.clone(),
        };
        let kube_ca = Arc::new(KubeCa::spawn(client.clone(), names, settings.validity));
        state.set_kube_ca(kube_ca.clone());
        Some(kube_ca)
    } else {
        None
    };

    let mut roles = JoinSet::new();
    if let (true, Some(ca)) = (settings.roles.identity, &kube_ca) {
        let task = identity_role(
            settings.clone(),
            ca.clone(),
            client.clone(),
            state.clone(),
            stop_rx.clone(),
        );
        roles.spawn(async move { (Role::Identity, task.await) });
    }
    if let (true, Some(ca)) = (settings.roles.destination, &kube_ca) {
        let task = destination_role(settings.clone(), ca.clone(), state.clone(), stop_rx.clone());
        roles.spawn(async move { (Role::Destination, task.await) });
    }
    if settings.roles.injector {
        let task = injector::run(
            settings.clone(),
            client.clone(),
            state.clone(),
            stop_rx.clone(),
        );
        roles.spawn(async move { (Role::Injector, task.await) });
    }

    let mut failure: Option<anyhow::Error> = None;
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {}
        Some(joined) = roles.join_next() => {
            failure = Some(role_failure(joined));
        }
    }
    let _ = stop_tx.send(true);
    let drain = async {
        while let Some(joined) = roles.join_next().await {
            if let Err(e) = role_result(joined) {
                warn!(error = %format!("{e:#}"), "role failed while stopping");
                failure.get_or_insert(e);
            }
        }
    };
    if tokio::time::timeout(STOP_GRACE, drain).await.is_err() {
        warn!("roles did not stop within {STOP_GRACE:?}; exiting anyway");
        roles.abort_all();
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    match failure {
        Some(e) => Err(e),
        None => {
            info!("controller stopped");
            Ok(())
        }
    }
}

type Joined = Result<(Role, anyhow::Result<()>), tokio::task::JoinError>;

/// A role ending before the stop request is a failure even when it says Ok.
fn role_failure(joined: Joined) -> anyhow::Error {
    match role_result(joined) {
        Err(e) => e,
        Ok(role) => anyhow::anyhow!("the {role} role stopped unexpectedly"),
    }
}

fn role_result(joined: Joined) -> anyhow::Result<Role> {
    match joined {
        Ok((role, Ok(()))) => Ok(role),
        Ok((role, Err(e))) => Err(e.context(format!("the {role} role failed"))),
        Err(e) => Err(anyhow::anyhow!(
            "a role task panicked or was cancelled: {e}"
        )),
    }
}

/// Waits for `fut` unless a stop is requested first (`None` then).
async fn unless_stopped<T>(
    stop: &watch::Receiver<bool>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        v = fut => Some(v),
        () = stopped(stop.clone()) => None,
    }
}

async fn identity_role(
    settings: Arc<Settings>,
    kube_ca: Arc<KubeCa>,
    client: kube::Client,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(ca) = unless_stopped(&stop, kube_ca.ready()).await else {
        return Ok(());
    };
    let config = wisp_identity::Config {
        dir: PathBuf::new(),
        addr: settings.identity_addr,
        trust_domain: settings.trust_domain.clone(),
        control_plane_ns: settings.control_plane_ns.clone(),
        validity: settings.validity,
    };
    let validator = Arc::new(TokenReviewValidator::new(client));
    let server = wisp_identity::Server::bind_with_ca(config, ca, validator)
        .await
        .context("cannot start the Identity API")?;
    state.set_ready(Role::Identity);
    server.run(stopped(stop)).await?;
    Ok(())
}

async fn destination_role(
    settings: Arc<Settings>,
    kube_ca: Arc<KubeCa>,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let source = settings
        .source
        .clone()
        .context("no --source for the destination")?;
    let config = wisp_destination::Config {
        source,
        addr: settings.destination_addr,
        cluster_domain: settings.cluster_domain.clone(),
        trust_domain: settings.trust_domain.clone(),
        control_plane_ns: settings.control_plane_ns.clone(),
    };
    let Some(ca) = unless_stopped(&stop, kube_ca.ready()).await else {
        return Ok(());
    };
    // Returns once the source's initial state is indexed.
    let Some(server) = unless_stopped(&stop, wisp_destination::Server::bind(config)).await else {
        return Ok(());
    };
    let server = server.context("cannot start the Destination API")?;
    let name = wisp_identity::workload_identity(
        "linkerd-destination",
        &settings.control_plane_ns,
        &settings.control_plane_ns,
        &settings.trust_domain,
    );
    let own = wisp_identity::OwnIdentity::issue(ca, name.clone())
        .context("cannot issue the destination service's own certificate")?;
    let server = server
        .with_tls(own.server_config()?)
        .with_policy(PolicySettings {
            cluster_networks: settings.cluster_networks.clone(),
            default_inbound_policy: settings.default_inbound_policy,
            ..PolicySettings::default()
        });
    let renew = tokio::spawn(own.renew_forever());
    info!(identity = %name, "destination serves mesh TLS and plaintext");
    state.set_ready(Role::Destination);
    let result = server.run(stopped(stop)).await;
    renew.abort();
    result.context("Destination API failed")
}
