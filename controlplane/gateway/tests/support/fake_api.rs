//! A wire-level fake Kubernetes API server: list (with resourceVersion), watch (a stream of
//! newline-delimited JSON events), discovery of the Gateway API group versions, and PATCH with
//! `application/apply-patch+yaml` (server-side apply) on objects and their /status. Every
//! request is recorded so tests can assert what the controller sent.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

/// A collection: `(apiVersion, plural)`.
type Collection = (String, String);

#[derive(Default)]
struct State {
    resource_version: u64,
    objects: BTreeMap<Collection, BTreeMap<(String, String), Value>>,
    watchers: HashMap<Collection, Vec<mpsc::UnboundedSender<Value>>>,
    requests: Vec<Recorded>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn plural_of(kind: &str) -> String {
    match kind {
        "GatewayClass" => "gatewayclasses".into(),
        "Gateway" => "gateways".into(),
        "TCPRoute" => "tcproutes".into(),
        "UDPRoute" => "udproutes".into(),
        "HTTPRoute" => "httproutes".into(),
        "ReferenceGrant" => "referencegrants".into(),
        "Service" => "services".into(),
        "EndpointSlice" => "endpointslices".into(),
        "Secret" => "secrets".into(),
        "Namespace" => "namespaces".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

fn full(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn not_found(what: &str) -> Response<Body> {
    full(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": format!("{what} not found")}),
    )
}

impl FakeApi {
    /// Adds or replaces an object (ADDED/MODIFIED to watchers). Generation and
    /// resourceVersion are set as the API server would.
    pub fn put(&self, mut object: Value) {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        let rv = st.resource_version;
        let collection = (
            object["apiVersion"].as_str().unwrap().to_owned(),
            plural_of(object["kind"].as_str().unwrap()),
        );
        let key = (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            object["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        object["metadata"]["uid"] = json!(format!("uid-{}-{}", key.0, key.1));
        if object["metadata"]["generation"].is_null() {
            object["metadata"]["generation"] = json!(1);
        }
        let existed = st
            .objects
            .entry(collection.clone())
            .or_default()
            .insert(key, object.clone())
            .is_some();
        let event = json!({"type": if existed { "MODIFIED" } else { "ADDED" }, "object": object});
        Self::send(&mut st, &collection, event);
    }

    /// Deletes an object (DELETED to watchers).
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let mut st = self.state.lock().unwrap();
        st.resource_version += 1;
        let rv = st.resource_version;
        let collection = (api_version.to_owned(), plural_of(kind));
        let removed = st
            .objects
            .get_mut(&collection)
            .and_then(|m| m.remove(&(namespace.to_owned(), name.to_owned())));
        if let Some(mut object) = removed {
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            Self::send(
                &mut st,
                &collection,
                json!({"type": "DELETED", "object": object}),
            );
        }
    }

    fn send(st: &mut State, collection: &Collection, event: Value) {
        if let Some(list) = st.watchers.get_mut(collection) {
            list.retain(|tx| tx.send(event.clone()).is_ok());
        }
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .get(&(api_version.to_owned(), plural_of(kind)))
            .and_then(|m| m.get(&(namespace.to_owned(), name.to_owned())))
            .cloned()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Serves on 127.0.0.1 (an ephemeral port) until the runtime ends.
    pub async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let api = api.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        address
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // Apply patches are YAML (JSON is YAML).
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_yaml_ng::from_slice(&bytes).unwrap_or(Value::Null)
        };
        self.state.lock().unwrap().requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        // Discovery of the Gateway API versions.
        if method == "GET"
            && parts.len() == 3
            && parts[0] == "apis"
            && parts[1] == "gateway.networking.k8s.io"
        {
            let resources: &[&str] = match parts[2] {
                "v1" => &[
                    "gatewayclasses",
                    "gateways",
                    "httproutes",
                    "referencegrants",
                ],
                "v1alpha2" => &["tcproutes", "udproutes"],
                _ => return not_found(&path),
            };
            return full(
                StatusCode::OK,
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("gateway.networking.k8s.io/{}", parts[2]),
                       "resources": resources.iter().map(|r| json!({"name": r, "singularName": "", "namespaced": *r != "gatewayclasses", "kind": "", "verbs": ["get", "list", "watch", "patch"]})).collect::<Vec<_>>()}),
            );
        }
        // (apiVersion, rest) from /api/v1/... or /apis/G/V/...
        let (api_version, rest): (String, &[&str]) = match parts.as_slice() {
            ["api", v, rest @ ..] => ((*v).to_owned(), rest),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            _ => return not_found(&path),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => ((*ns).to_owned(), rest),
            _ => (String::new(), rest),
        };
        match (method.as_str(), rest) {
            ("GET", [plural]) => {
                let collection = (api_version.clone(), (*plural).to_owned());
                if query
                    .split('&')
                    .any(|q| q == "watch=true" || q == "watch=1")
                {
                    let (tx, rx) = mpsc::unbounded_channel::<Value>();
                    self.state
                        .lock()
                        .unwrap()
                        .watchers
                        .entry(collection)
                        .or_default()
                        .push(tx);
                    let stream =
                        tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|event| {
                            Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{event}\n"))))
                        });
                    return Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "application/json")
                        .body(BodyExt::boxed(StreamBody::new(stream)))
                        .unwrap();
                }
                let st = self.state.lock().unwrap();
                let items: Vec<Value> = st
                    .objects
                    .get(&collection)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                full(
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": st.resource_version.to_string()}, "items": items}),
                )
            }
            ("PATCH", [plural, name, tail @ ..]) => {
                if content_type != "application/apply-patch+yaml" {
                    return full(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        json!({"kind": "Status", "code": 415}),
                    );
                }
                let collection = (api_version.clone(), (*plural).to_owned());
                let key = (namespace.clone(), (*name).to_owned());
                let current = {
                    let st = self.state.lock().unwrap();
                    st.objects
                        .get(&collection)
                        .and_then(|m| m.get(&key))
                        .cloned()
                };
                let object = match (tail, current) {
                    (["status"], Some(mut object)) => {
                        object["status"] = body["status"].clone();
                        object
                    }
                    (["status"], None) => return not_found(&path),
                    ([], current) => {
                        let mut object = current.unwrap_or_else(|| json!({}));
                        for (k, v) in body.as_object().cloned().unwrap_or_default() {
                            if k != "metadata" {
                                object[k] = v;
                            }
                        }
                        object["metadata"]["name"] = json!(name);
                        object["metadata"]["namespace"] = json!(namespace);
                        if let Some(labels) = body["metadata"].get("labels") {
                            object["metadata"]["labels"] = labels.clone();
                        }
                        object
                    }
                    _ => return not_found(&path),
                };
                let mut object = object;
                object["apiVersion"] = json!(api_version);
                self.put(object.clone());
                full(
                    StatusCode::OK,
                    self.get(
                        &api_version,
                        object["kind"].as_str().unwrap_or(""),
                        &namespace,
                        name,
                    )
                    .unwrap_or(object),
                )
            }
            _ => not_found(&path),
        }
    }
}

use futures::StreamExt;
