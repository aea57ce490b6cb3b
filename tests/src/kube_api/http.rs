//! The test API server's HTTPS front: authentication, failure injection,
//! discovery, and the REST verbs on the store (list, get, watch, create,
//! replace, patch, delete, reviews).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

use super::store::{Broadcast, Change, ChangeType, KindInfo, Refusal, Selector, State};
use super::{LoggedRequest, Shared, LOG_MAX};

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 8 << 20;

/// Accepts connections until aborted; aborting also ends every connection.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tls, shared) = (tls.clone(), shared.clone());
        conns.spawn(async move {
            let Ok(stream) = tls.accept(stream).await else {
                return;
            };
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

pub(crate) fn full(status: u16, body: Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Full::new(bytes).map_err(|e: Infallible| match e {}).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed()))
}

/// A failure answer: `code` with a `Status` object as the API server
/// writes it.
pub(crate) fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(code, status_object(code, reason, message))
}

/// A `Status` object as the API server writes it.
pub(crate) fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn refuse(r: Refusal) -> Response<Body> {
    full(r.code, status_object(r.code, r.reason, &r.message))
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let rsp = route(&shared, req).await;
    let mut log = shared.log.lock().unwrap_or_else(|e| e.into_inner());
    log.push_back(LoggedRequest {
        method,
        path,
        query,
        status: rsp.status().as_u16(),
    });
    while log.len() > LOG_MAX {
        log.pop_front();
    }
    rsp
}

/// Query parameters, percent-decoded.
fn params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        return Response::new(
            Full::new(Bytes::from_static(b"ok"))
                .map_err(|e| match e {})
                .boxed(),
        );
    }
    {
        let mut fail = shared.fail.lock().unwrap_or_else(|e| e.into_inner());
        if fail.0 > 0 {
            fail.0 -= 1;
            let code = fail.1;
            return full(
                code,
                status_object(
                    code,
                    reason_for(code),
                    "injected failure (kube_api::fail_next)",
                ),
            );
        }
    }
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.token);
    if !authorized {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let query = params(req.uri().query().unwrap_or(""));
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (method.clone(), segs.as_slice()) {
        (Method::GET, ["version"]) => full(
            200,
            json!({
                "major": "1", "minor": "34", "gitVersion": "v1.34.0-wisp-test",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                "platform": "linux/amd64",
            }),
        ),
        (Method::GET, ["api"]) => full(
            200,
            json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        ),
        (Method::GET, ["api", "v1"]) => resource_list(shared, "", "v1"),
        (Method::GET, ["apis"]) => {
            let st = shared.lock();
            let groups: Vec<Value> = groups(&st).iter().map(|g| group_doc(&st, g)).collect();
            full(
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        (Method::GET, ["apis", group]) => {
            let st = shared.lock();
            if !st.kinds.iter().any(|k| k.group == *group) {
                return status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
            let mut doc = group_doc(&st, group);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            full(200, doc)
        }
        (Method::GET, ["apis", group, version]) => resource_list(shared, group, version),
        (_, ["api", "v1", rest @ ..]) => resource(shared, req, "", "v1", rest, &query).await,
        (_, ["apis", group, version, rest @ ..]) => {
            let (g, v) = (group.to_string(), version.to_string());
            resource(shared, req, &g, &v, rest, &query).await
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn groups(st: &State) -> Vec<String> {
    let mut gs: Vec<String> = Vec::new();
    for k in &st.kinds {
        if !k.group.is_empty() && !gs.contains(&k.group) {
            gs.push(k.group.clone());
        }
    }
    gs
}

fn group_doc(st: &State, group: &str) -> Value {
    let mut versions: Vec<String> = Vec::new();
    for k in st.kinds.iter().filter(|k| k.group == group) {
        for v in &k.versions {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
    }
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(json!({}));
    json!({"name": group, "versions": vs, "preferredVersion": preferred})
}

fn resource_list(shared: &Arc<Shared>, group: &str, version: &str) -> Response<Body> {
    let st = shared.lock();
    let kinds: Vec<&KindInfo> = st
        .kinds
        .iter()
        .filter(|k| k.group == group && k.versions.iter().any(|v| v == version))
        .collect();
    if kinds.is_empty() {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let resources: Vec<Value> = kinds
        .iter()
        .map(|k| {
            json!({
                "name": k.plural,
                "singularName": k.kind.to_lowercase(),
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": k.verbs(),
            })
        })
        .collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    full(
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
fn selector(query: &[(String, String)]) -> Result<Selector, String> {
    Selector::parse(param(query, "labelSelector"), param(query, "fieldSelector"))
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Refusal> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Refusal::new(413, "RequestEntityTooLarge", e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        Refusal::new(
            400,
            "BadRequest",
            format!("the body of the request was in an unknown format: {e}"),
        )
    })
}

/// Requests under `/api/v1/…` or `/apis/<group>/<version>/…`.
async fn resource(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &[(String, String)],
) -> Response<Body> {
    // namespaces/<ns>/<plural>[/<name>[/<sub>]] or <plural>[/<name>[/<sub>]]
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] => (
            Some(*ns),
            *plural,
            tail.first().copied(),
            tail.get(1).copied(),
        ),
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    };
    let info = {
        let st = shared.lock();
        st.kind_by_plural(group, version, plural)
    };
    let Some(info) = info else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if let (Some("portforward"), Some(name), Some(ns)) = (sub, name, namespace) {
        if info.group.is_empty() && info.plural == "pods" {
            return super::portforward::handle(shared, req, &info, ns, name, query).await;
        }
    }
    if sub.is_some() {
        return status(
            404,
            "NotFound",
            "subresources are not served by the test API server",
        );
    }
    if namespace.is_some() && !info.namespaced {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let ns = namespace.unwrap_or("");
    let watch = matches!(param(query, "watch"), Some("true" | "1"));
    let method = req.method().clone();
    if info.review {
        if method != Method::POST {
            return status(405, "MethodNotAllowed", "only create is allowed");
        }
        return review(shared, &info, version, req).await;
    }
    match (method, name) {
        (Method::GET, None) if watch => watch_stream(shared, &info, version, namespace, query),
        (Method::GET, None) => list(shared, &info, version, namespace, query),
        (Method::GET, Some(name)) => {
            let st = shared.lock();
            let obj = st
                .objects
                .get(&info.res())
                .and_then(|m| m.get(&(ns.to_string(), name.to_string())));
            match obj {
                Some(o) => full(200, with_version(o, &info, version)),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", info.plural),
                ),
            }
        }
        (Method::POST, None) => {
            let obj = match read_json(req).await {
                Ok(v) => v,
                Err(r) => return refuse(r),
            };
            if let Err(r) = check_type(&obj, &info, version) {
                return refuse(r);
            }
            let mut st = shared.lock();
            match st.put(&info, version, ns, obj, true, false, &shared.tx) {
                Ok((stored, _)) => {
                    after_write(&mut st, &info, &stored, false);
                    full(201, stored)
                }
                Err(r) => refuse(r),
            }
        }
        (Method::PUT, Some(name)) => {
            let obj = match read_json(req).await {
                Ok(v) => v,
                Err(r) => return refuse(r),
            };
            if let Err(r) = check_type(&obj, &info, version) {
                return refuse(r);
            }
            if obj["metadata"]["name"].as_str() != Some(name) {
                return refuse(Refusal::new(
                    400,
                    "BadRequest",
                    "the name of the object does not match the name on the URL",
                ));
            }
            let mut st = shared.lock();
            match st.put(&info, version, ns, obj, false, false, &shared.tx) {
                Ok((stored, created)) => {
                    after_write(&mut st, &info, &stored, false);
                    full(if created { 201 } else { 200 }, stored)
                }
                Err(r) => refuse(r),
            }
        }
        (Method::PATCH, Some(name)) => patch(shared, &info, version, ns, name, req).await,
        (Method::DELETE, Some(name)) => {
            let mut st = shared.lock();
            match st.delete(&info, ns, name, &shared.tx) {
                Ok(obj) => {
                    after_write(&mut st, &info, &obj, true);
                    full(200, obj)
                }
                Err(r) => refuse(r),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

/// A body's `apiVersion`/`kind` must name the resource of the URL.
fn check_type(obj: &Value, info: &KindInfo, version: &str) -> Result<(), Refusal> {
    let av = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    if (!av.is_empty() && av != info.api_version(version))
        || (!kind.is_empty() && kind != info.kind)
    {
        return Err(Refusal::new(
            400,
            "BadRequest",
            format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                info.api_version(version)
            ),
        ));
    }
    Ok(())
}

/// Side effects of a write: applying a CRD serves its kind, deleting it stops.
pub(crate) fn after_write(st: &mut State, info: &KindInfo, obj: &Value, deleted: bool) {
    if info.kind != "CustomResourceDefinition" {
        return;
    }
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let kind = spec["names"]["kind"].as_str().unwrap_or("");
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return;
    }
    if deleted {
        st.unregister(group, plural);
        return;
    }
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    if let Some(versions) = spec["versions"].as_array() {
        for v in versions {
            if v["served"].as_bool() != Some(false) {
                if let Some(name) = v["name"].as_str() {
                    st.register(group, name, kind, plural, namespaced, false);
                }
            }
        }
    }
}

fn with_version(obj: &Value, info: &KindInfo, version: &str) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(info.api_version(version));
    o
}

fn list(
    shared: &Arc<Shared>,
    info: &KindInfo,
    version: &str,
    namespace: Option<&str>,
    query: &[(String, String)],
) -> Response<Body> {
    let selector = match selector(query) {
        Ok(s) => s,
        Err(e) => return status(400, "BadRequest", &e),
    };
    let limit = param(query, "limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut st = shared.lock();
    // A paginated list is a snapshot; a `continue` token names it and an offset.
    let (rv, snapshot, offset, stashed) = match param(query, "continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let parsed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    let (id, offset) = s.split_once(':')?;
                    Some((id.parse::<u64>().ok()?, offset.parse::<usize>().ok()?))
                });
            match parsed.and_then(|(id, offset)| st.unstash(id).map(|found| (id, offset, found))) {
                Some((id, offset, (rv, items))) if rv >= st.floor => (rv, items, offset, Some(id)),
                _ => {
                    return status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                }
            }
        }
        None => {
            let items: Vec<Value> = st
                .list(&info.res(), namespace)
                .into_iter()
                .filter(|o| selector.matches(o))
                .map(|o| with_version(&o, info, version))
                .collect();
            (st.rv, Arc::new(items), 0, None)
        }
    };
    let mut meta = json!({"resourceVersion": rv.to_string()});
    let offset = offset.min(snapshot.len());
    let end = match limit {
        Some(limit) => (offset + limit).min(snapshot.len()),
        None => snapshot.len(),
    };
    let items: Vec<Value> = snapshot[offset..end].to_vec();
    if end < snapshot.len() {
        let id = match stashed {
            Some(id) => id,
            None => st.stash(rv, snapshot.clone()),
        };
        meta["continue"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{id}:{end}")));
        meta["remainingItemCount"] = json!(snapshot.len() - end);
    }
    full(
        200,
        json!({
            "kind": format!("{}List", info.kind),
            "apiVersion": info.api_version(version),
            "metadata": meta,
            "items": items,
        }),
    )
}

/// What one watch stream wants.
struct WatchFilter {
    res: (String, String),
    namespace: Option<String>,
    selector: Selector,
    bookmarks: bool,
    info: KindInfo,
    version: String,
}

impl WatchFilter {
    /// The event line for `change`, if this watch sees it.
    fn line(&self, change: &Change) -> Option<Bytes> {
        if change.res != self.res
            || self
                .namespace
                .as_ref()
                .is_some_and(|n| *n != change.namespace)
        {
            return None;
        }
        let now = self.selector.matches(&change.object);
        let before = change
            .old
            .as_ref()
            .is_some_and(|o| self.selector.matches(o));
        let ty = match change.kind {
            ChangeType::Added if now => "ADDED",
            ChangeType::Modified if now && before => "MODIFIED",
            ChangeType::Modified if now => "ADDED",
            ChangeType::Modified if before => "DELETED",
            ChangeType::Deleted if now => "DELETED",
            _ => return None,
        };
        Some(event_line(
            ty,
            with_version(&change.object, &self.info, &self.version),
        ))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Option<Bytes> {
        if !self.bookmarks {
            return None;
        }
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        Some(event_line(
            "BOOKMARK",
            json!({"kind": self.info.kind, "apiVersion": self.info.api_version(&self.version), "metadata": meta}),
        ))
    }
}

fn event_line(ty: &str, object: Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Counts an open watch for as long as it lives.
struct WatchGuard(Arc<Shared>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

struct WatchState {
    pending: VecDeque<Bytes>,
    rx: Option<broadcast::Receiver<Broadcast>>,
    filter: WatchFilter,
    deadline: Option<tokio::time::Instant>,
    _guard: WatchGuard,
}

fn watch_stream(
    shared: &Arc<Shared>,
    info: &KindInfo,
    version: &str,
    namespace: Option<&str>,
    query: &[(String, String)],
) -> Response<Body> {
    let selector = match selector(query) {
        Ok(s) => s,
        Err(e) => return status(400, "BadRequest", &e),
    };
    let filter = WatchFilter {
        res: info.res(),
        namespace: namespace.map(str::to_string),
        selector,
        bookmarks: matches!(param(query, "allowWatchBookmarks"), Some("true" | "1")),
        info: info.clone(),
        version: version.to_string(),
    };
    let timeout = param(query, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0);
    let initial_events = matches!(param(query, "sendInitialEvents"), Some("true" | "1"));
    let from = param(query, "resourceVersion").unwrap_or("");
    let mut pending = VecDeque::new();
    let st = shared.lock();
    let rx = if from.is_empty() || from == "0" || initial_events {
        // Start with the current state as ADDED events.
        for o in st.list(&info.res(), namespace) {
            if filter.selector.matches(&o) {
                pending.push_back(event_line("ADDED", with_version(&o, info, version)));
            }
        }
        if initial_events {
            pending.extend(filter.bookmark(st.rv, true));
        }
        Some(shared.tx.subscribe())
    } else {
        match from.parse::<u64>() {
            Ok(rv) if rv >= st.floor => {
                for c in st.history.iter().filter(|c| c.rv > rv) {
                    pending.extend(filter.line(c));
                }
                Some(shared.tx.subscribe())
            }
            Ok(rv) => {
                let msg = format!("too old resource version: {rv} ({})", st.floor);
                pending.push_back(event_line("ERROR", status_object(410, "Expired", &msg)));
                None
            }
            Err(_) => {
                drop(st);
                return status(
                    400,
                    "BadRequest",
                    &format!("invalid resourceVersion {from:?}"),
                );
            }
        }
    };
    drop(st);
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let state = WatchState {
        pending,
        rx,
        filter,
        deadline: timeout.map(|t| tokio::time::Instant::now() + Duration::from_secs(t)),
        _guard: WatchGuard(shared.clone()),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if let Some(line) = s.pending.pop_front() {
            return Some((Ok(Frame::data(line)), s));
        }
        let rx = s.rx.as_mut()?;
        loop {
            let next = match s.deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(n) => n,
                    // timeoutSeconds elapsed: end the stream cleanly.
                    Err(_) => return None,
                },
                None => rx.recv().await,
            };
            match next {
                Ok(Broadcast::Change(c)) => {
                    if let Some(line) = s.filter.line(&c) {
                        return Some((Ok(Frame::data(line)), s));
                    }
                }
                Ok(Broadcast::Bookmark(rv)) => {
                    if let Some(line) = s.filter.bookmark(rv, false) {
                        return Some((Ok(Frame::data(line)), s));
                    }
                }
                Ok(Broadcast::Cut) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Let the connection flush what was already sent (a
                    // cut loses nothing that was on the wire), then abort it
                    // without the last chunk: an error from the body does.
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    s.rx = None;
                    return Some((
                        Err(std::io::Error::other("watch cut by the test API server")),
                        s,
                    ));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| status(500, "InternalError", "response"))
}

async fn patch(
    shared: &Arc<Shared>,
    info: &KindInfo,
    version: &str,
    ns: &str,
    name: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return refuse(r),
    };
    let mut st = shared.lock();
    let Some(mut obj) = st
        .objects
        .get(&info.res())
        .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
        .cloned()
    else {
        return status(
            404,
            "NotFound",
            &format!("{} \"{name}\" not found", info.plural),
        );
    };
    if ct.starts_with("application/json-patch+json") {
        let patch: json_patch::Patch = match serde_json::from_value(body) {
            Ok(p) => p,
            Err(e) => return status(400, "BadRequest", &e.to_string()),
        };
        if let Err(e) = json_patch::patch(&mut obj, &patch) {
            return status(422, "Invalid", &e.to_string());
        }
    } else if ct.starts_with("application/merge-patch+json")
        || ct.starts_with("application/strategic-merge-patch+json")
    {
        json_patch::merge(&mut obj, &body);
    } else {
        return status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (got {ct:?})"));
    }
    // A patch applies to the current object whatever resourceVersion it names, unless it sets one.
    match st.put(info, version, ns, obj, false, true, &shared.tx) {
        Ok((stored, _)) => {
            after_write(&mut st, info, &stored, false);
            full(200, stored)
        }
        Err(r) => refuse(r),
    }
}

async fn review(
    shared: &Arc<Shared>,
    info: &KindInfo,
    version: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let mut obj = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return refuse(r),
    };
    if let Err(r) = check_type(&obj, info, version) {
        return refuse(r);
    }
    let status = if info.kind == "TokenReview" {
        let f = shared
            .token_reviewer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        f(&obj["spec"])
    } else {
        let f = shared
            .access_reviewer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let allowed = f(&obj["spec"]);
        if allowed {
            json!({"allowed": true, "reason": "allowed by the test API server"})
        } else {
            json!({"allowed": false, "denied": true, "reason": "denied by the test API server"})
        }
    };
    obj["apiVersion"] = json!(info.api_version(version));
    obj["kind"] = json!(info.kind);
    obj["metadata"] = json!({"creationTimestamp": null});
    obj["status"] = status;
    full(201, obj)
}
