//! The test API server's state: the kind table, the object store, the
//! change history watches replay from, and label/field selectors.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Changes kept for watches that resume from an older resourceVersion;
/// older ones are forgotten (as etcd compaction does) and such watches get 410.
pub(crate) const HISTORY_MAX: usize = 200_000;
/// Paginated list snapshots kept for `continue` tokens.
const SNAPSHOTS_MAX: usize = 64;

/// One served resource type.
#[derive(Clone, Debug)]
pub struct KindInfo {
    /// API group ("" for core).
    pub group: String,
    /// Served versions, first registered first (the preferred one).
    pub versions: Vec<String>,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Plural resource name, e.g. `pods`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Create-only review resource (TokenReview, SelfSubjectAccessReview).
    pub review: bool,
}

impl KindInfo {
    /// `group/version` or `version` for core.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The storage key.
    pub(crate) fn res(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }

    /// The verbs advertised in discovery.
    pub(crate) fn verbs(&self) -> Vec<&'static str> {
        if self.review {
            vec!["create"]
        } else {
            vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        }
    }
}

/// (group, plural).
pub(crate) type ResKey = (String, String);

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One change, as replayed to and broadcast to watches.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub res: ResKey,
    pub namespace: String,
    pub kind: ChangeType,
    /// The object after the change (for deletes: the last state, with the delete's resourceVersion).
    pub object: Value,
    /// The object before a modification.
    pub old: Option<Value>,
}

/// What open watches receive.
#[derive(Clone, Debug)]
pub(crate) enum Broadcast {
    Change(Arc<Change>),
    /// Send a BOOKMARK at this resourceVersion.
    Bookmark(u64),
    /// Cut every open watch stream.
    Cut,
}

/// Why a store operation failed: an HTTP status, a reason and a message.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            reason,
            message: message.into(),
        }
    }
}

/// The whole mutable state.
#[derive(Debug)]
pub(crate) struct State {
    pub kinds: Vec<KindInfo>,
    pub objects: BTreeMap<ResKey, BTreeMap<(String, String), Value>>,
    pub rv: u64,
    pub history: VecDeque<Arc<Change>>,
    /// The oldest resourceVersion a watch may start from.
    pub floor: u64,
    uid_seq: u64,
    snap_seq: u64,
    snapshots: VecDeque<(u64, u64, Arc<Vec<Value>>)>,
}

impl State {
    pub(crate) fn new() -> Self {
        State {
            kinds: Vec::new(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            floor: 1,
            uid_seq: 0,
            snap_seq: 0,
            snapshots: VecDeque::new(),
        }
    }

    /// Adds `version` of a kind (or a new kind).
    pub(crate) fn register(
        &mut self,
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        review: bool,
    ) {
        if let Some(k) = self
            .kinds
            .iter_mut()
            .find(|k| k.group == group && k.plural == plural)
        {
            if !k.versions.iter().any(|v| v == version) {
                k.versions.push(version.to_string());
            }
            return;
        }
        self.kinds.push(KindInfo {
            group: group.to_string(),
            versions: vec![version.to_string()],
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
            review,
        });
    }

    /// Removes a kind (every version) and its objects.
    pub(crate) fn unregister(&mut self, group: &str, plural: &str) {
        self.kinds
            .retain(|k| !(k.group == group && k.plural == plural));
        self.objects
            .remove(&(group.to_string(), plural.to_string()));
    }

    /// The kind served at `group`/`version` under `plural`.
    pub(crate) fn kind_by_plural(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<KindInfo> {
        self.kinds
            .iter()
            .find(|k| {
                k.group == group && k.plural == plural && k.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// The kind of an `apiVersion` + `kind` pair.
    pub(crate) fn kind_by_type(&self, api_version: &str, kind: &str) -> Option<(KindInfo, String)> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        self.kinds
            .iter()
            .find(|k| k.group == group && k.kind == kind && k.versions.iter().any(|v| v == version))
            .map(|k| (k.clone(), version.to_string()))
    }

    /// A kind by its `Kind` name, or `Kind.group` when names clash.
    pub(crate) fn kind_by_name(&self, name: &str) -> Option<KindInfo> {
        let (kind, group) = match name.split_once('.') {
            Some((k, g)) => (k, Some(g)),
            None => (name, None),
        };
        self.kinds
            .iter()
            .find(|k| (k.kind == kind || k.plural == kind) && group.is_none_or(|g| k.group == g))
            .cloned()
    }

    fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        let r = fastrand_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            (r & 0xfff) as u16,
            (self.uid_seq & 0xfff) as u16,
            self.uid_seq
        )
    }

    fn record(&mut self, change: Change, tx: &tokio::sync::broadcast::Sender<Broadcast>) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY_MAX {
            if let Some(old) = self.history.pop_front() {
                self.floor = old.rv;
            }
        }
        let _ = tx.send(Broadcast::Change(change));
    }

    /// Creates (`create_only`) or creates-or-replaces an object.
    ///
    /// `expect_rv`: the client's `metadata.resourceVersion` for a replace
    /// (a mismatch is a 409 Conflict).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &mut self,
        info: &KindInfo,
        version: &str,
        namespace: &str,
        mut obj: Value,
        create_only: bool,
        replace_only: bool,
        tx: &tokio::sync::broadcast::Sender<Broadcast>,
    ) -> Result<(Value, bool), Refusal> {
        let Some(map) = obj.as_object_mut() else {
            return Err(Refusal::new(
                400,
                "BadRequest",
                "the body is not a JSON object",
            ));
        };
        map.insert("apiVersion".into(), json!(info.api_version(version)));
        map.insert("kind".into(), json!(info.kind));
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        let Some(meta) = meta.as_object_mut() else {
            return Err(Refusal::new(400, "BadRequest", "metadata is not an object"));
        };
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            return Err(Refusal::new(
                422,
                "Invalid",
                format!(
                    "{} is invalid: metadata.name: Required value: name is required",
                    info.kind
                ),
            ));
        }
        let ns = if info.namespaced {
            let given = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
            let ns = if namespace.is_empty() {
                given
            } else {
                namespace
            };
            if !given.is_empty() && given != ns {
                return Err(Refusal::new(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            let ns = if ns.is_empty() { "default" } else { ns }.to_string();
            meta.insert("namespace".into(), json!(ns));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        meta.remove("managedFields");
        let expect_rv = meta
            .get("resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let res = info.res();
        let key = (ns.clone(), name.clone());
        let existing = self.objects.get(&res).and_then(|m| m.get(&key)).cloned();
        let rv = self.rv + 1;
        let kind = match &existing {
            Some(_) if create_only => {
                return Err(Refusal::new(
                    409,
                    "AlreadyExists",
                    format!("{} \"{}\" already exists", info.plural, name),
                ))
            }
            Some(old) => {
                let old_rv = old["metadata"]["resourceVersion"].as_str().unwrap_or("");
                if let Some(expect) = &expect_rv {
                    if expect != old_rv {
                        return Err(Refusal::new(
                            409,
                            "Conflict",
                            format!(
                                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                                info.plural, name
                            ),
                        ));
                    }
                }
                for k in ["uid", "creationTimestamp"] {
                    meta.insert(k.into(), old["metadata"][k].clone());
                }
                let old_gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
                meta.insert("generation".into(), json!(old_gen));
                ChangeType::Modified
            }
            None if replace_only => {
                return Err(Refusal::new(
                    404,
                    "NotFound",
                    format!("{} \"{}\" not found", info.plural, name),
                ))
            }
            None => {
                let uid = self.next_uid();
                let meta = obj["metadata"]
                    .as_object_mut()
                    .ok_or_else(|| Refusal::new(400, "BadRequest", "metadata is not an object"))?;
                meta.insert("uid".into(), json!(uid));
                meta.insert(
                    "creationTimestamp".into(),
                    json!(rfc3339(SystemTime::now())),
                );
                meta.insert("generation".into(), json!(1));
                ChangeType::Added
            }
        };
        // generation: bumped when anything but metadata and status changed.
        if let Some(old) = &existing {
            if strip_meta_status(old) != strip_meta_status(&obj) {
                let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                obj["metadata"]["generation"] = json!(g);
            }
        }
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if obj["metadata"]
            .get("labels")
            .is_some_and(|l| l.as_object().is_some_and(|m| m.is_empty()))
        {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("labels");
            }
        }
        self.rv = rv;
        self.objects
            .entry(res.clone())
            .or_default()
            .insert(key, obj.clone());
        self.record(
            Change {
                rv,
                res,
                namespace: ns,
                kind,
                object: obj.clone(),
                old: existing,
            },
            tx,
        );
        Ok((obj, kind == ChangeType::Added))
    }

    /// Deletes an object; returns its last state (with the delete's resourceVersion).
    pub(crate) fn delete(
        &mut self,
        info: &KindInfo,
        namespace: &str,
        name: &str,
        tx: &tokio::sync::broadcast::Sender<Broadcast>,
    ) -> Result<Value, Refusal> {
        let res = info.res();
        let ns = if info.namespaced { namespace } else { "" };
        let removed = self
            .objects
            .get_mut(&res)
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())));
        let Some(mut obj) = removed else {
            return Err(Refusal::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.plural, name),
            ));
        };
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(
            Change {
                rv,
                res,
                namespace: ns.to_string(),
                kind: ChangeType::Deleted,
                object: obj.clone(),
                old: None,
            },
            tx,
        );
        Ok(obj)
    }

    /// Objects of `res` in `namespace` (all when `None`), sorted by namespace and name.
    pub(crate) fn list(&self, res: &ResKey, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .get(res)
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets the change history: watches from an older resourceVersion get 410.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.floor = self.rv;
        self.snapshots.clear();
    }

    /// Stores a paginated list's snapshot; returns its token id.
    pub(crate) fn stash(&mut self, rv: u64, items: Arc<Vec<Value>>) -> u64 {
        self.snap_seq += 1;
        self.snapshots.push_back((self.snap_seq, rv, items));
        while self.snapshots.len() > SNAPSHOTS_MAX {
            self.snapshots.pop_front();
        }
        self.snap_seq
    }

    /// A stashed list snapshot: (list resourceVersion, items).
    pub(crate) fn unstash(&self, id: u64) -> Option<(u64, Arc<Vec<Value>>)> {
        self.snapshots
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, rv, items)| (*rv, items.clone()))
    }
}

/// The object without `metadata` and `status` (what `generation` tracks).
fn strip_meta_status(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
    }
    v
}

fn fastrand_u64() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 of the clock: unique enough for test uids.
    let mut z = t.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `2006-01-02T15:04:05Z` for `t`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` plus `fieldSelector`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selector {
    labels: Vec<LabelReq>,
    /// (field, wanted value, equal?)
    fields: Vec<(String, String, bool)>,
}

impl Selector {
    /// Parses the two query parameters.
    pub(crate) fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Selector, String> {
        let mut sel = Selector::default();
        if let Some(l) = labels.filter(|s| !s.trim().is_empty()) {
            for term in split_terms(l) {
                sel.labels.push(parse_label_req(term.trim())?);
            }
        }
        if let Some(f) = fields.filter(|s| !s.trim().is_empty()) {
            for term in f.split(',') {
                let term = term.trim();
                let (field, value, eq) = if let Some((a, b)) = term.split_once("!=") {
                    (a, b, false)
                } else if let Some((a, b)) = term.split_once("==") {
                    (a, b, true)
                } else if let Some((a, b)) = term.split_once('=') {
                    (a, b, true)
                } else {
                    return Err(format!(
                        "invalid selector: '{term}'; can't understand '{term}'"
                    ));
                };
                let field = field.trim();
                if field != "metadata.name" && field != "metadata.namespace" {
                    return Err(format!(
                        "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    ));
                }
                sel.fields
                    .push((field.to_string(), value.trim().to_string(), eq));
            }
        }
        Ok(sel)
    }

    /// Whether `obj` matches.
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        let labels = obj["metadata"]["labels"].as_object();
        let label = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(f, want, eq)| {
                let have = match f.as_str() {
                    "metadata.name" => obj["metadata"]["name"].as_str().unwrap_or(""),
                    _ => obj["metadata"]["namespace"].as_str().unwrap_or(""),
                };
                (have == want) == *eq
            })
    }
}

/// Splits a label selector on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_label_req(term: &str) -> Result<LabelReq, String> {
    let bad = || format!("unable to parse requirement: {term:?}");
    if let Some(k) = term.strip_prefix('!') {
        return Ok(LabelReq::NotExists(k.trim().to_string()));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = term.split_once(op) {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?;
            let vals = inner.split(',').map(|v| v.trim().to_string()).collect();
            let k = k.trim().to_string();
            return Ok(if notin {
                LabelReq::NotIn(k, vals)
            } else {
                LabelReq::In(k, vals)
            });
        }
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelReq::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if term.is_empty() || term.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok(LabelReq::Exists(term.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns", "labels": {"app": "web", "tier": "x"}}});
        let m = |l: &str| Selector::parse(Some(l), None).unwrap().matches(&obj);
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(!m("app!=web"));
        assert!(m("app in (web, db),!missing"));
        assert!(!m("app notin (web)"));
        let f = |s: &str| Selector::parse(None, Some(s)).unwrap().matches(&obj);
        assert!(f("metadata.name=a"));
        assert!(!f("metadata.name!=a"));
        assert!(f("metadata.namespace==ns"));
        assert!(Selector::parse(None, Some("spec.nodeName=x")).is_err());
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }
}
