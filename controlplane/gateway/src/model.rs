//! The world: every watched object the translation reads, parsed into typed specs.
//!
//! Both sources (kube reflectors and static manifests) feed raw JSON objects through
//! [`World::insert`], so the translation sees the same thing however the objects arrived.

use gateway_api::apis::experimental::tcproutes::TcpRouteSpec;
use gateway_api::apis::standard::gatewayclasses::GatewayClassSpec;
use gateway_api::apis::standard::gateways::GatewaySpec;
use gateway_api::apis::standard::httproutes::HttpRouteSpec;
use gateway_api::apis::standard::referencegrants::ReferenceGrantSpec;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;

/// The API group of the Gateway API.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// `namespace/name` key (cluster-scoped objects use an empty namespace).
pub type Key = (String, String);

/// The metadata the translation uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix seconds; 0 when absent (static manifests).
    pub creation_timestamp: i64,
    /// Being deleted (deletionTimestamp set): treated as absent.
    pub deleting: bool,
}

impl Meta {
    pub fn key(&self) -> Key {
        (self.namespace.clone(), self.name.clone())
    }
}

/// One object with a typed spec and its current status (raw, e.g. to reuse addresses).
#[derive(Clone, Debug, PartialEq)]
pub struct Obj<S> {
    /// `group/version` of the object as it was read (status is written to the same version).
    pub api_version: String,
    pub meta: Meta,
    pub spec: S,
    pub status: Value,
}

/// Kind of an L4 route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L4Kind {
    Tcp,
    Udp,
}

impl L4Kind {
    pub fn kind(self) -> &'static str {
        match self {
            L4Kind::Tcp => "TCPRoute",
            L4Kind::Udp => "UDPRoute",
        }
    }
}

/// Route kinds the controller understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Tcp,
    Udp,
    Http,
}

impl RouteKind {
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Udp => "UDPRoute",
            RouteKind::Http => "HTTPRoute",
        }
    }
}

/// Everything the controller watches. `BTreeMap`s keep the translation deterministic.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub gateway_classes: BTreeMap<String, Obj<GatewayClassSpec>>,
    pub gateways: BTreeMap<Key, Obj<GatewaySpec>>,
    /// TCPRoute and UDPRoute share one schema (TCPRoute's is used for both); v1alpha2 and v1
    /// are the same stored object, so one entry per (kind, namespace, name), v1 preferred.
    pub l4_routes: BTreeMap<(L4Kind, String, String), Obj<TcpRouteSpec>>,
    pub http_routes: BTreeMap<Key, Obj<HttpRouteSpec>>,
    pub reference_grants: BTreeMap<Key, Obj<ReferenceGrantSpec>>,
    pub services: BTreeMap<Key, Service>,
    pub endpoint_slices: BTreeMap<Key, EndpointSlice>,
    pub secrets: BTreeMap<Key, Secret>,
    /// Namespace labels, for allowedRoutes.namespaces.from=Selector.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// An object that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ObjectError {
    pub what: String,
    pub detail: String,
}

fn parse_meta(object: &Value) -> Meta {
    let metadata = &object["metadata"];
    let string_map = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let creation_timestamp = metadata["creationTimestamp"]
        .as_str()
        .and_then(|t| {
            serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>(
                Value::String(t.to_owned()),
            )
            .ok()
        })
        .map(|t| t.0.as_second())
        .unwrap_or(0);
    Meta {
        namespace: metadata["namespace"].as_str().unwrap_or("").to_owned(),
        name: metadata["name"].as_str().unwrap_or("").to_owned(),
        generation: metadata["generation"].as_i64().unwrap_or(0),
        labels: string_map(&metadata["labels"]),
        annotations: string_map(&metadata["annotations"]),
        creation_timestamp,
        deleting: !metadata["deletionTimestamp"].is_null(),
    }
}

fn typed<S: DeserializeOwned + Default>(object: &Value, what: &str) -> Result<S, ObjectError> {
    match &object["spec"] {
        Value::Null => Ok(S::default()),
        spec => serde_json::from_value(spec.clone()).map_err(|e| ObjectError {
            what: what.to_owned(),
            detail: format!("spec: {e}"),
        }),
    }
}

fn whole<T: DeserializeOwned>(object: &Value, what: &str) -> Result<T, ObjectError> {
    serde_json::from_value(object.clone()).map_err(|e| ObjectError {
        what: what.to_owned(),
        detail: e.to_string(),
    })
}

/// Whether `object` is a kind this controller reads.
pub fn is_relevant(api_version: &str, kind: &str) -> bool {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    match group {
        GATEWAY_GROUP => matches!(
            kind,
            "GatewayClass" | "Gateway" | "TCPRoute" | "UDPRoute" | "HTTPRoute" | "ReferenceGrant"
        ),
        "" => matches!(kind, "Service" | "Secret" | "Namespace"),
        "discovery.k8s.io" => kind == "EndpointSlice",
        _ => false,
    }
}

impl World {
    /// Adds (or replaces) one object given as JSON with apiVersion, kind and metadata.
    /// Objects of other kinds are ignored (`Ok(false)`); objects being deleted are skipped.
    pub fn insert(&mut self, object: &Value) -> Result<bool, ObjectError> {
        let api_version = object["apiVersion"].as_str().unwrap_or("").to_owned();
        let kind = object["kind"].as_str().unwrap_or("").to_owned();
        let meta = parse_meta(object);
        let what = format!("{kind} {}/{}", meta.namespace, meta.name);
        if meta.name.is_empty() {
            return Err(ObjectError {
                what,
                detail: "metadata.name: required".into(),
            });
        }
        if !is_relevant(&api_version, &kind) {
            return Ok(false);
        }
        if meta.deleting {
            return Ok(false);
        }
        let status = object["status"].clone();
        let group_kind_ok = |expected_versions: &[&str]| {
            let version = api_version.rsplit_once('/').map(|(_, v)| v).unwrap_or("");
            if expected_versions.contains(&version) {
                Ok(())
            } else {
                Err(ObjectError {
                    what: what.clone(),
                    detail: format!(
                        "apiVersion: {api_version} is not supported (expected one of {expected_versions:?})"
                    ),
                })
            }
        };
        match kind.as_str() {
            "GatewayClass" => {
                group_kind_ok(&["v1", "v1beta1"])?;
                let spec = typed(object, &what)?;
                // Cluster-scoped: a namespace in the manifest (the seed has one) means nothing.
                let mut meta = meta;
                meta.namespace.clear();
                self.gateway_classes.insert(
                    meta.name.clone(),
                    Obj {
                        api_version,
                        meta,
                        spec,
                        status,
                    },
                );
            }
            "Gateway" => {
                group_kind_ok(&["v1", "v1beta1"])?;
                let spec = typed(object, &what)?;
                self.gateways.insert(
                    meta.key(),
                    Obj {
                        api_version,
                        meta,
                        spec,
                        status,
                    },
                );
            }
            "TCPRoute" | "UDPRoute" => {
                group_kind_ok(&["v1", "v1alpha2"])?;
                let l4 = if kind == "TCPRoute" {
                    L4Kind::Tcp
                } else {
                    L4Kind::Udp
                };
                let spec: TcpRouteSpec = typed(object, &what)?;
                let key = (l4, meta.namespace.clone(), meta.name.clone());
                // The same object served at two versions: keep v1.
                if let Some(existing) = self.l4_routes.get(&key) {
                    if existing.api_version.ends_with("/v1") && !api_version.ends_with("/v1") {
                        return Ok(true);
                    }
                }
                self.l4_routes.insert(
                    key,
                    Obj {
                        api_version,
                        meta,
                        spec,
                        status,
                    },
                );
            }
            "HTTPRoute" => {
                group_kind_ok(&["v1", "v1beta1"])?;
                let spec = typed(object, &what)?;
                self.http_routes.insert(
                    meta.key(),
                    Obj {
                        api_version,
                        meta,
                        spec,
                        status,
                    },
                );
            }
            "ReferenceGrant" => {
                group_kind_ok(&["v1", "v1beta1", "v1alpha2"])?;
                let spec = typed(object, &what)?;
                self.reference_grants.insert(
                    meta.key(),
                    Obj {
                        api_version,
                        meta,
                        spec,
                        status,
                    },
                );
            }
            "Service" => {
                let mut service: Service = whole(object, &what)?;
                if service.metadata.namespace.is_none() {
                    service.metadata.namespace = Some("default".into());
                }
                let key = (
                    service.metadata.namespace.clone().unwrap_or_default(),
                    meta.name,
                );
                self.services.insert(key, service);
            }
            "EndpointSlice" => {
                let mut slice: EndpointSlice = whole(object, &what)?;
                if slice.metadata.namespace.is_none() {
                    slice.metadata.namespace = Some("default".into());
                }
                let key = (
                    slice.metadata.namespace.clone().unwrap_or_default(),
                    meta.name,
                );
                self.endpoint_slices.insert(key, slice);
            }
            "Secret" => {
                let mut secret: Secret = whole(object, &what)?;
                if secret.metadata.namespace.is_none() {
                    secret.metadata.namespace = Some("default".into());
                }
                let key = (
                    secret.metadata.namespace.clone().unwrap_or_default(),
                    meta.name,
                );
                self.secrets.insert(key, secret);
            }
            "Namespace" => {
                self.namespaces.insert(meta.name, meta.labels);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Namespaced objects without a namespace (static manifests) live in "default", as
    /// `kubectl apply` would put them.
    pub fn default_namespaces(&mut self) {
        fn fix<S: Clone>(map: &mut BTreeMap<Key, Obj<S>>) {
            let moved: Vec<Key> = map.keys().filter(|k| k.0.is_empty()).cloned().collect();
            for key in moved {
                if let Some(mut obj) = map.remove(&key) {
                    obj.meta.namespace = "default".into();
                    map.insert(obj.meta.key(), obj);
                }
            }
        }
        fix(&mut self.gateways);
        fix(&mut self.http_routes);
        fix(&mut self.reference_grants);
        let moved: Vec<_> = self
            .l4_routes
            .keys()
            .filter(|k| k.1.is_empty())
            .cloned()
            .collect();
        for key in moved {
            if let Some(mut obj) = self.l4_routes.remove(&key) {
                obj.meta.namespace = "default".into();
                self.l4_routes.insert((key.0, "default".into(), key.2), obj);
            }
        }
    }

    /// Builds a world from objects; returns the errors of the objects that were skipped.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> (World, Vec<ObjectError>) {
        let mut world = World::default();
        let mut errors = Vec::new();
        for object in objects {
            if let Err(e) = world.insert(object) {
                errors.push(e);
            }
        }
        world.default_namespaces();
        (world, errors)
    }
}
