//! The objects the index stores and the keys that name them.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wisp_profiles::{ServiceProfile, TrafficSplit};

use super::pod::PodSummary;
use super::slice::EndpointSliceSummary;

/// The kinds of object the index knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 `Service`.
    Service,
    /// discovery.k8s.io/v1 `EndpointSlice`.
    EndpointSlice,
    /// core/v1 `Pod`.
    Pod,
    /// linkerd.io/v1alpha2 (or v1alpha1) `ServiceProfile`.
    ServiceProfile,
    /// split.smi-spec.io/v1alpha1..v1alpha4 `TrafficSplit`.
    TrafficSplit,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
            Kind::ServiceProfile => "ServiceProfile",
            Kind::TrafficSplit => "TrafficSplit",
        })
    }
}

/// Namespace and name of an object (the namespace defaults to `default`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key from a namespace and a name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Builds the key of an object from its metadata.
    pub fn from_meta(meta: &ObjectMeta) -> Self {
        Self {
            namespace: meta
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A reference to one object: its kind and key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// Kind of the object.
    pub kind: Kind,
    /// Namespace and name of the object.
    pub key: ObjectKey,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.key)
    }
}

/// One object the index can hold.
///
/// A Pod and an EndpointSlice come in two forms: whole, as parsed from a
/// manifest (tools such as the CLI's proxy targets read more of a Pod than
/// the index does), or as their summary ([`PodSummary`],
/// [`EndpointSliceSummary`]). The index only ever keeps the summary: it
/// summarizes a whole object when it is inserted.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A Service.
    Service(Box<Service>),
    /// A whole EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// An EndpointSlice, as the summary of what wisp reads of it.
    EndpointSliceSummary(Box<EndpointSliceSummary>),
    /// A whole Pod.
    Pod(Box<Pod>),
    /// A Pod, as the summary of what wisp reads of it.
    PodSummary(Box<PodSummary>),
    /// A ServiceProfile (validated).
    ServiceProfile(Box<ServiceProfile>),
    /// A TrafficSplit (validated).
    TrafficSplit(Box<TrafficSplit>),
}

impl Object {
    /// The kind of this object.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) | Object::EndpointSliceSummary(_) => Kind::EndpointSlice,
            Object::Pod(_) | Object::PodSummary(_) => Kind::Pod,
            Object::ServiceProfile(_) => Kind::ServiceProfile,
            Object::TrafficSplit(_) => Kind::TrafficSplit,
        }
    }

    /// The namespace and name of this object.
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Service(o) => ObjectKey::from_meta(&o.metadata),
            Object::EndpointSlice(o) => ObjectKey::from_meta(&o.metadata),
            Object::EndpointSliceSummary(o) => o.key().clone(),
            Object::Pod(o) => ObjectKey::from_meta(&o.metadata),
            Object::PodSummary(o) => o.key().clone(),
            Object::ServiceProfile(o) => ObjectKey::from_meta(&o.metadata),
            Object::TrafficSplit(o) => ObjectKey::from_meta(&o.metadata),
        }
    }

    /// The kind and key of this object.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind(),
            key: self.key(),
        }
    }
}
