//! `wisp-bench kube-source`: the destination's `kube` source at cluster
//! scale, against the in-process Kubernetes API test server.
//!
//! Fills the test API server with `--services` Services, one EndpointSlice
//! each holding `--endpoints / --services` endpoints, and (unless
//! `--no-pods`) one meshed Pod per endpoint; starts `wisp destination
//! --source kube` as a child with `KUBECONFIG` pointing at the server; reads
//! the child's VmRSS/VmHWM once it serves; opens `--streams`
//! `Destination.Get` streams; then changes one EndpointSlice at a time
//! (`--updates` times, round-robin over the streamed Services: one endpoint
//! address replaced) and times each change from the API write to the
//! `Add` of the new address on the subscribed stream.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use linkerd2_proxy_api::destination::{
    destination_client::DestinationClient, update::Update as U, GetDestination,
};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use wisp_tests::kube_api::KubeApi;

use crate::args::KubeSourceArgs;
use crate::procstat::{self, MemSample};

/// The report of one run.
#[derive(Debug, Serialize)]
pub struct KubeSourceReport {
    /// Services created.
    pub services: usize,
    /// Endpoints over all slices.
    pub endpoints: usize,
    /// Pods created.
    pub pods: usize,
    /// From spawning the child to its gRPC port accepting (initial lists done).
    pub ready_ms: f64,
    /// The child's memory once serving, before any stream.
    pub mem_ready: MemSample,
    /// The child's memory after the updates.
    pub mem_end: MemSample,
    /// Open Get streams.
    pub streams: usize,
    /// Slice changes timed.
    pub updates: usize,
    /// Change latency percentiles, ms: p50, p90, p99, max.
    pub latency_ms: [f64; 4],
}

/// Runs the benchmark and prints the report.
pub fn run(args: &KubeSourceArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(bench(args))?;
    if args.json {
        crate::report::print_json(&report)
    } else {
        print!("{}", text(&report));
        Ok(())
    }
}

fn ip(n: usize) -> Ipv4Addr {
    // 10.1.0.0 upwards.
    Ipv4Addr::from(0x0a01_0000u32 + n as u32)
}

fn service(i: usize) -> Value {
    let cluster_ip = Ipv4Addr::from(0x0a60_0000u32 + i as u32 + 1);
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench",
            "labels": {"app": format!("svc-{i}")},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Service\"}"}},
        "spec": {"clusterIP": cluster_ip.to_string(), "clusterIPs": [cluster_ip.to_string()],
            "type": "ClusterIP", "selector": {"app": format!("svc-{i}")},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        "status": {"loadBalancer": {}}})
}

fn slice(i: usize, addrs: &[Ipv4Addr], pods: bool) -> Value {
    let endpoints: Vec<Value> = addrs
        .iter()
        .enumerate()
        .map(|(j, a)| {
            let mut e = json!({"addresses": [a.to_string()],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "node-1", "zone": "zone-a"});
            if pods {
                e["targetRef"] =
                    json!({"kind": "Pod", "namespace": "bench", "name": format!("svc-{i}-{j}")});
            }
            e
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}-abcde"), "namespace": "bench",
            "labels": {"kubernetes.io/service-name": format!("svc-{i}"),
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-01-01T00:00:00Z"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints})
}

/// A meshed pod as the injector leaves it, with the status a kubelet writes.
fn pod(i: usize, j: usize, addr: Ipv4Addr) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("svc-{i}-{j}"), "namespace": "bench",
            "labels": {"app": format!("svc-{i}"), "pod-template-hash": "5d4f8c",
                "linkerd.io/control-plane-ns": "linkerd", "linkerd.io/proxy-deployment": format!("svc-{i}")},
            "annotations": {"linkerd.io/inject": "enabled", "linkerd.io/proxy-version": "dev",
                "linkerd.io/created-by": "wisp", "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("svc-{i}-5d4f8c"),
                "uid": "0e0d0c0b-0a09-0807-0605-040302010000", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"serviceAccountName": format!("svc-{i}"), "nodeName": "node-1",
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}],
            "containers": [
                {"name": "app", "image": "registry.example/app:1.0", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                 "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                {"name": "linkerd-proxy", "image": "ghcr.io/wisp-mesh/proxy:dev",
                 "ports": [{"name": "linkerd-proxy", "containerPort": 4143}, {"name": "linkerd-admin", "containerPort": 4191}],
                 "env": [{"name": "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "value": "0.0.0.0:4143"},
                         {"name": "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "value": "linkerd-dst-headless.linkerd.svc.cluster.local.:8086"},
                         {"name": "_pod_ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                 "livenessProbe": {"httpGet": {"path": "/live", "port": 4191}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 4191}}}]},
        "status": {"phase": "Running", "podIP": addr.to_string(), "podIPs": [{"ip": addr.to_string()}],
            "hostIP": "192.168.0.1", "startTime": "2026-01-01T00:00:00Z", "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                           {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "started": true, "image": "registry.example/app:1.0",
                 "imageID": "registry.example/app@sha256:0000", "containerID": "containerd://0000", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
                {"name": "linkerd-proxy", "ready": true, "restartCount": 0, "started": true, "image": "ghcr.io/wisp-mesh/proxy:dev",
                 "imageID": "ghcr.io/wisp-mesh/proxy@sha256:0000", "containerID": "containerd://0001", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}})
}

/// Kills the child on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wisp_bin(explicit: Option<&PathBuf>) -> Result<PathBuf> {
    let path = match explicit {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating wisp-bench executable")?
            .parent()
            .map(|dir| dir.join("wisp"))
            .context("executable has no parent directory")?,
    };
    if !path.is_file() {
        bail!(
            "{} not found (build it, or pass --wisp-bin)",
            path.display()
        );
    }
    Ok(path)
}

async fn bench(args: &KubeSourceArgs) -> Result<KubeSourceReport> {
    if args.services == 0 || args.endpoints < args.services {
        bail!("--endpoints must be at least --services (one endpoint per Service)");
    }
    let bin = wisp_bin(args.wisp_bin.as_ref())?;
    let per = args.endpoints / args.services;
    let api = KubeApi::start().await;
    api.apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}));
    // Current addresses of every slice; new ones are taken from `next_ip`.
    let mut addrs: Vec<Vec<Ipv4Addr>> = Vec::with_capacity(args.services);
    let mut next_ip = 0usize;
    let mut pods = 0usize;
    for i in 0..args.services {
        api.apply(service(i));
        let set: Vec<Ipv4Addr> = (0..per).map(|k| ip(next_ip + k)).collect();
        next_ip += per;
        if !args.no_pods {
            for (j, a) in set.iter().enumerate() {
                api.apply(pod(i, j, *a));
                pods += 1;
            }
        }
        api.apply(slice(i, &set, !args.no_pods));
        addrs.push(set);
    }
    let tmp = tempfile::tempdir().context("temp dir")?;
    let kubeconfig = tmp.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    let addr: SocketAddr = args.destination_addr;
    let started = Instant::now();
    let child = Command::new(&bin)
        .args([
            "destination",
            "--source",
            "kube",
            "--addr",
            &addr.to_string(),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("WISP_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let mut child = ChildGuard(child);
    let pid = child.0.id();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        if let Some(status) = child.0.try_wait().context("waiting for the child")? {
            bail!("wisp destination exited early: {status}");
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("wisp destination did not listen on {addr} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1e3;
    let mem_ready = procstat::mem(pid)?;

    // Streams: one task per streamed Service reports every added address.
    let streams = args.streams.min(args.services);
    let (added_tx, mut added_rx) = mpsc::channel::<(usize, Ipv4Addr, Instant)>(4096);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .context("endpoint")?
        .connect()
        .await
        .context("connecting to wisp destination")?;
    let ready = Arc::new(tokio::sync::Barrier::new(streams + 1));
    for s in 0..streams {
        let mut client = DestinationClient::new(channel.clone());
        let (tx, ready) = (added_tx.clone(), ready.clone());
        tokio::spawn(async move {
            let req = GetDestination {
                scheme: String::new(),
                path: format!("svc-{s}.bench.svc.cluster.local:80"),
                context_token: r#"{"ns":"bench","nodeName":"node-1"}"#.into(),
            };
            let Ok(rsp) = client.get(req).await else {
                ready.wait().await;
                return;
            };
            let mut stream = rsp.into_inner();
            let mut first = true;
            while let Ok(Some(update)) = stream.message().await {
                if first {
                    first = false;
                    ready.wait().await;
                    continue;
                }
                if let Some(U::Add(set)) = update.update {
                    let at = Instant::now();
                    for a in set.addrs {
                        if let Some(SocketAddr::V4(v4)) =
                            a.addr.and_then(|t| SocketAddr::try_from(t).ok())
                        {
                            let _ = tx.send((s, *v4.ip(), at)).await;
                        }
                    }
                }
            }
        });
    }
    drop(added_tx);
    tokio::time::timeout(Duration::from_secs(60), ready.wait())
        .await
        .context("streams did not get their first answer within 60 s")?;

    let mut latencies = Vec::with_capacity(args.updates);
    for u in 0..args.updates {
        let s = u % streams;
        let new_ip = ip(next_ip);
        next_ip += 1;
        let set = &mut addrs[s];
        let slot = u / streams % set.len();
        set[slot] = new_ip;
        if !args.no_pods {
            // As in a rollout: the new pod exists before its endpoint.
            api.apply(pod(s, slot, new_ip));
        }
        let t0 = Instant::now();
        api.apply(slice(s, set, !args.no_pods));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, added_rx.recv()).await {
                Ok(Some((stream, got, at))) if stream == s && got == new_ip => {
                    latencies.push(at.saturating_duration_since(t0).as_secs_f64() * 1e3);
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) => bail!("every stream ended"),
                Err(_) => bail!("update {u}: svc-{s} did not see {new_ip} within 10 s"),
            }
        }
    }
    let mem_end = procstat::mem(pid)?;
    child.0.kill().ok();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    Ok(KubeSourceReport {
        services: args.services,
        endpoints: per * args.services,
        pods,
        ready_ms,
        mem_ready,
        mem_end,
        streams,
        updates: latencies.len(),
        latency_ms: [
            pct(0.5),
            pct(0.9),
            pct(0.99),
            latencies.last().copied().unwrap_or(0.0),
        ],
    })
}

fn text(r: &KubeSourceReport) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    format!(
        "kube source: {} Services, {} endpoints, {} Pods\n\
         ready (initial lists) after {:.0} ms\n\
         memory ready: VmRSS {:.1} MiB, VmHWM {:.1} MiB\n\
         memory end:   VmRSS {:.1} MiB, VmHWM {:.1} MiB\n\
         slice change -> Get update ({} streams, {} changes): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        r.services,
        r.endpoints,
        r.pods,
        r.ready_ms,
        mib(r.mem_ready.vmrss_kib),
        mib(r.mem_ready.vmhwm_kib),
        mib(r.mem_end.vmrss_kib),
        mib(r.mem_end.vmhwm_kib),
        r.streams,
        r.updates,
        r.latency_ms[0],
        r.latency_ms[1],
        r.latency_ms[2],
        r.latency_ms[3],
    )
}
