//! Kubernetes mode: reflectors (list + watch, with backoff) over every watched kind, and
//! the status / Service writes (server-side apply).

use crate::model::GATEWAY_GROUP;
use crate::translate::StatusUpdate;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Notify;

/// The caches, one per watched resource.
#[derive(Clone)]
pub struct Stores {
    pub stores: Vec<(ApiResource, Store<DynamicObject>)>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.stores
                    .iter()
                    .map(|(ar, _)| format!("{}/{}", ar.api_version, ar.plural)),
            )
            .finish()
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    }
}

/// Plural resource name of a kind we write status for.
pub fn plural(kind: &str) -> &'static str {
    match kind {
        "GatewayClass" => "gatewayclasses",
        "Gateway" => "gateways",
        "TCPRoute" => "tcproutes",
        "UDPRoute" => "udproutes",
        "HTTPRoute" => "httproutes",
        "ReferenceGrant" => "referencegrants",
        _ => "services",
    }
}

/// Which resources of `group/version` the API server serves (empty if the version is not).
async fn served(client: &Client, group_version: &str) -> Vec<String> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(e) => {
            tracing::debug!(group_version, error = %e, "API version not served");
            Vec::new()
        }
    }
}

/// Starts the reflectors; `notify` fires on every change. TCPRoute/UDPRoute are watched at
/// v1alpha2 and at v1 when the API server serves them; ReferenceGrant at v1 or v1beta1.
pub async fn start(client: Client, notify: Arc<Notify>) -> Stores {
    let v1 = served(&client, &format!("{GATEWAY_GROUP}/v1")).await;
    let v1beta1 = served(&client, &format!("{GATEWAY_GROUP}/v1beta1")).await;
    let v1alpha2 = served(&client, &format!("{GATEWAY_GROUP}/v1alpha2")).await;
    let has = |list: &Vec<String>, plural: &str| list.iter().any(|r| r == plural);
    let mut resources = vec![
        resource(GATEWAY_GROUP, "v1", "GatewayClass", "gatewayclasses"),
        resource(GATEWAY_GROUP, "v1", "Gateway", "gateways"),
        resource(GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes"),
        resource("", "v1", "Service", "services"),
        resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        resource("", "v1", "Secret", "secrets"),
        resource("", "v1", "Namespace", "namespaces"),
    ];
    if has(&v1, "referencegrants") {
        resources.push(resource(
            GATEWAY_GROUP,
            "v1",
            "ReferenceGrant",
            "referencegrants",
        ));
    } else if has(&v1beta1, "referencegrants") {
        resources.push(resource(
            GATEWAY_GROUP,
            "v1beta1",
            "ReferenceGrant",
            "referencegrants",
        ));
    }
    for (kind, plural) in [("TCPRoute", "tcproutes"), ("UDPRoute", "udproutes")] {
        if has(&v1alpha2, plural) {
            resources.push(resource(GATEWAY_GROUP, "v1alpha2", kind, plural));
        }
        if has(&v1, plural) {
            resources.push(resource(GATEWAY_GROUP, "v1", kind, plural));
        }
    }
    let mut stores = Vec::new();
    for ar in resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let writer = reflector::store::Writer::new(ar.clone());
        let reader = writer.as_reader();
        let notify = notify.clone();
        let name = format!("{}/{}", ar.api_version, ar.plural);
        tokio::spawn(async move {
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(_) => notify.notify_one(),
                    Err(e) => {
                        tracing::warn!(resource = %name, error = %e, "watch error (retrying)")
                    }
                }
            }
        });
        stores.push((ar, reader));
    }
    Stores { stores }
}

impl Stores {
    /// Waits until every cache has done its initial list.
    pub async fn wait_ready(&self) {
        for (_, store) in &self.stores {
            let _ = store.wait_until_ready().await;
        }
    }

    /// Every cached object as JSON with apiVersion and kind (list items may lack them).
    pub fn objects(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for (ar, store) in &self.stores {
            for object in store.state() {
                if let Ok(mut v) = serde_json::to_value(&*object) {
                    v["apiVersion"] = json!(ar.api_version);
                    v["kind"] = json!(ar.kind);
                    out.push(v);
                }
            }
        }
        out
    }
}

fn api_for(client: &Client, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar = resource(group, version, kind, plural(kind));
    if namespace.is_empty() {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), namespace, &ar)
    }
}

/// Writes one status by server-side apply on the /status subresource.
pub async fn write_status(
    client: &Client,
    field_manager: &str,
    update: &StatusUpdate,
) -> Result<(), kube::Error> {
    let api = api_for(client, &update.api_version, &update.kind, &update.namespace);
    let mut metadata = json!({"name": update.name});
    if !update.namespace.is_empty() {
        metadata["namespace"] = json!(update.namespace);
    }
    let patch = json!({
        "apiVersion": update.api_version,
        "kind": update.kind,
        "metadata": metadata,
        "status": update.status,
    });
    api.patch_status(
        &update.name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Creates/updates a Service (loxilb compat `serviceBehaviour: create`) by server-side apply.
pub async fn apply_service(
    client: &Client,
    field_manager: &str,
    service: &Value,
) -> Result<(), kube::Error> {
    let ns = service["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let name = service["metadata"]["name"].as_str().unwrap_or("");
    let api = api_for(client, "v1", "Service", ns);
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(service),
    )
    .await?;
    Ok(())
}

/// Deletes a Service this controller created (loxilb compat) once no route needs it.
pub async fn delete_service(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api = api_for(client, "v1", "Service", namespace);
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        // Already gone: the goal is reached.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
