//! What the outbound side knows right now, for the admin dump: the services
//! it follows with their endpoints, the ServiceProfiles in force (routes,
//! retry budgets, splits) and the endpoints it made for addresses.

use std::collections::BTreeMap;

use tokio::time::Instant;

use wisp_common::json::ToJson;
use wisp_common::json_object;

use crate::balance::{BalancerState, EndpointState};
use crate::outbound::profile::Profile;
use crate::outbound::target::Resolver;

/// The outbound side's state.
#[derive(Debug)]
pub(crate) struct OutboundState {
    /// Services followed through discovery.
    pub(crate) services: Vec<BalancerState>,
    /// Services with a ServiceProfile.
    pub(crate) profiles: Vec<ProfileState>,
    /// Endpoints for traffic sent to an address.
    pub(crate) addresses: Vec<EndpointState>,
    /// Services whose last endpoints are kept for a discovery outage.
    pub(crate) remembered: Vec<String>,
}

/// A logical service's profile.
#[derive(Debug)]
pub(crate) struct ProfileState {
    /// The service.
    pub(crate) authority: String,
    /// Whether a profile has arrived.
    pub(crate) received: bool,
    /// Routes, in matching order.
    pub(crate) routes: Vec<RouteState>,
    /// The retry budget, if any.
    pub(crate) retry_budget: Option<BudgetState>,
    /// The traffic split: backend authority and weight.
    pub(crate) split: Vec<(String, u32)>,
    /// Connections to the service are opaque.
    pub(crate) opaque: bool,
}

/// One route.
#[derive(Debug)]
pub(crate) struct RouteState {
    /// Its labels (`route` names it).
    pub(crate) labels: BTreeMap<String, String>,
    /// Failed requests may be retried.
    pub(crate) retryable: bool,
    /// The route's timeout, milliseconds.
    pub(crate) timeout_ms: Option<u128>,
}

/// A retry budget's settings.
#[derive(Debug)]
pub(crate) struct BudgetState {
    /// Retries per original request.
    pub(crate) retry_ratio: f64,
    /// Retries always allowed per second.
    pub(crate) min_retries_per_second: f64,
    /// The window, seconds.
    pub(crate) ttl_seconds: f64,
}

impl ToJson for OutboundState {
    fn write_json(&self, out: &mut String) {
        json_object!(out;
            "services" => &self.services,
            "profiles" => &self.profiles,
            "addresses" => &self.addresses,
            "remembered" => &self.remembered,
        );
    }
}

impl ToJson for ProfileState {
    fn write_json(&self, out: &mut String) {
        json_object!(out;
            "authority" => &self.authority,
            "received" => &self.received,
            "routes" => &self.routes,
            "retry_budget" => &self.retry_budget,
            "split" => &self.split,
            "opaque" => &self.opaque,
        );
    }
}

impl ToJson for RouteState {
    fn write_json(&self, out: &mut String) {
        json_object!(out;
            "labels" => &self.labels,
            "retryable" => &self.retryable,
            "timeout_ms" => &self.timeout_ms,
        );
    }
}

impl ToJson for BudgetState {
    fn write_json(&self, out: &mut String) {
        json_object!(out;
            "retry_ratio" => &self.retry_ratio,
            "min_retries_per_second" => &self.min_retries_per_second,
            "ttl_seconds" => &self.ttl_seconds,
        );
    }
}

impl Resolver {
    /// What the outbound side knows right now.
    pub(crate) fn state(&self) -> OutboundState {
        let now = Instant::now();
        let backends = self.backends();
        OutboundState {
            services: backends.services().iter().map(|b| b.state()).collect(),
            profiles: self
                .logical_services()
                .iter()
                .map(|l| profile_state(&l.authority, l.profile().as_deref()))
                .collect(),
            addresses: backends.addresses().iter().map(|e| e.state(now)).collect(),
            remembered: backends.remembered(),
        }
    }
}

fn profile_state(authority: &str, profile: Option<&Profile>) -> ProfileState {
    let Some(p) = profile else {
        return ProfileState {
            authority: authority.to_string(),
            received: false,
            routes: Vec::new(),
            retry_budget: None,
            split: Vec::new(),
            opaque: false,
        };
    };
    ProfileState {
        authority: authority.to_string(),
        received: true,
        routes: p
            .routes
            .iter()
            .map(|r| RouteState {
                labels: r.route.labels.iter().cloned().collect(),
                retryable: r.route.retryable,
                timeout_ms: r.route.timeout.map(|t| t.as_millis()),
            })
            .collect(),
        retry_budget: p.budget.as_ref().map(|b| {
            let (ratio, per_sec, ttl) = b.settings();
            BudgetState {
                retry_ratio: ratio,
                min_retries_per_second: per_sec,
                ttl_seconds: ttl.as_secs_f64(),
            }
        }),
        split: p.overrides.clone(),
        opaque: p.opaque,
    }
}
