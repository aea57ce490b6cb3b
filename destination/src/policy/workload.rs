//! Parsing `PortSpec.workload` / `TrafficSpec.source_workload`
//! (`LINKERD2_PROXY_POLICY_WORKLOAD`).

use std::str::FromStr;

/// The workload a proxy runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The workload's namespace.
    pub namespace: String,
    /// Pod or external workload.
    pub kind: WorkloadKind,
}

/// What kind of workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// A Pod, by name.
    Pod(String),
    /// An ExternalWorkload, by name (not indexed by wisp).
    External(String),
}

/// Why a workload string is rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid workload {0:?}: expected {{\"ns\":..,\"pod\":..}}, {{\"ns\":..,\"external_workload\":..}} or <ns>:<pod>")]
pub struct WorkloadError(pub String);

impl FromStr for Workload {
    type Err = WorkloadError;

    /// Accepts Linkerd's JSON forms and the legacy `<ns>:<pod>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        #[derive(serde::Deserialize)]
        struct Json {
            ns: String,
            pod: Option<String>,
            external_workload: Option<String>,
        }
        let err = || WorkloadError(s.to_string());
        let trimmed = s.trim();
        if trimmed.starts_with('{') {
            let json: Json = serde_json::from_str(trimmed).map_err(|_| err())?;
            let kind = match (json.pod, json.external_workload) {
                (Some(pod), None) if !pod.is_empty() => WorkloadKind::Pod(pod),
                (None, Some(ext)) if !ext.is_empty() => WorkloadKind::External(ext),
                _ => return Err(err()),
            };
            if json.ns.is_empty() {
                return Err(err());
            }
            return Ok(Workload {
                namespace: json.ns,
                kind,
            });
        }
        match trimmed.split_once(':') {
            Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() && !pod.contains(':') => {
                Ok(Workload {
                    namespace: ns.to_string(),
                    kind: WorkloadKind::Pod(pod.to_string()),
                })
            }
            _ => Err(err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let pod = Workload {
            namespace: "emojivoto".into(),
            kind: WorkloadKind::Pod("web-1".into()),
        };
        assert_eq!(
            r#"{"ns":"emojivoto", "pod":"web-1"}"#.parse(),
            Ok(pod.clone())
        );
        assert_eq!("emojivoto:web-1".parse(), Ok(pod));
        assert!(matches!(
            r#"{"ns":"a","external_workload":"vm"}"#.parse::<Workload>(),
            Ok(Workload {
                kind: WorkloadKind::External(_),
                ..
            })
        ));
        assert!("".parse::<Workload>().is_err());
        assert!("web".parse::<Workload>().is_err());
        assert!(r#"{"ns":"a"}"#.parse::<Workload>().is_err());
        assert!(r#"{"ns":"a","pod":"p","external_workload":"e"}"#.parse::<Workload>().is_err());
    }
}
