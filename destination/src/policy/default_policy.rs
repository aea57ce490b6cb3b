//! Linkerd's default inbound policies (`config.linkerd.io/default-inbound-policy`).

use std::fmt;
use std::str::FromStr;

pub use crate::index::pod::DEFAULT_INBOUND_POLICY_ANNOTATION;

/// A default inbound policy, as named by Linkerd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefaultPolicy {
    /// `all-unauthenticated`: anyone from anywhere.
    AllUnauthenticated,
    /// `all-authenticated`: meshed (mTLS) clients from anywhere.
    AllAuthenticated,
    /// `cluster-unauthenticated`: anyone from the cluster networks.
    ClusterUnauthenticated,
    /// `cluster-authenticated`: meshed clients from the cluster networks.
    ClusterAuthenticated,
    /// `deny`: nobody (except localhost and the probe route).
    Deny,
    /// `audit`: everyone, flagged as audit-only.
    Audit,
}

/// An unknown default policy name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown default inbound policy {0:?} (expected all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny or audit)")]
pub struct UnknownPolicy(pub String);

impl DefaultPolicy {
    /// Linkerd's name of the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllUnauthenticated => "all-unauthenticated",
            Self::AllAuthenticated => "all-authenticated",
            Self::ClusterUnauthenticated => "cluster-unauthenticated",
            Self::ClusterAuthenticated => "cluster-authenticated",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }

    /// The policy for a port listed in `proxy-require-identity-inbound-ports`:
    /// allow policies become authenticated-only; `deny`/`audit` are unchanged.
    pub fn require_identity(self) -> Self {
        match self {
            Self::AllUnauthenticated => Self::AllAuthenticated,
            Self::ClusterUnauthenticated => Self::ClusterAuthenticated,
            other => other,
        }
    }
}

impl FromStr for DefaultPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "all-unauthenticated" => Self::AllUnauthenticated,
            "all-authenticated" => Self::AllAuthenticated,
            "cluster-unauthenticated" => Self::ClusterUnauthenticated,
            "cluster-authenticated" => Self::ClusterAuthenticated,
            "deny" => Self::Deny,
            "audit" => Self::Audit,
            other => return Err(UnknownPolicy(other.to_string())),
        })
    }
}

impl fmt::Display for DefaultPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for p in [
            DefaultPolicy::AllUnauthenticated,
            DefaultPolicy::AllAuthenticated,
            DefaultPolicy::ClusterUnauthenticated,
            DefaultPolicy::ClusterAuthenticated,
            DefaultPolicy::Deny,
            DefaultPolicy::Audit,
        ] {
            assert_eq!(p.as_str().parse::<DefaultPolicy>(), Ok(p));
        }
        assert!("allow".parse::<DefaultPolicy>().is_err());
    }
}
