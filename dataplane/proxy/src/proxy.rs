//! The request path: route the request by the table in force, apply the rule's filters, and
//! forward it to a backend over the pooled keep-alive client — or answer locally (redirect,
//! 404 without route, 500 for invalid backends, 502/503/504 for backend failures).

use crate::filters::{modify_path, redirect_location};
use crate::hostname;
use crate::metrics::{Metrics, RouteMetrics, NO_ROUTE};
use crate::router::RequestView;
use crate::table::{Backend, Filter, Protocol, Rule, SocketKey, Table};
use crate::upstream::PooledBody;
use crate::upstream::Upstream;
use crate::workers::Workers;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// A response body: a local answer or the backend's (a concrete enum rather than a boxed
/// trait object: no allocation and no dynamic dispatch per request).
#[derive(Debug)]
pub enum Body {
    /// A complete body (`None` once sent).
    Full(Option<Bytes>),
    Upstream(PooledBody),
}

impl Body {
    fn full(bytes: Bytes) -> Body {
        Body::Full(Some(bytes).filter(|b| !b.is_empty()))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Body::Upstream(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(data) => data.is_none(),
            Body::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Body::Upstream(body) => body.size_hint(),
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct Context {
    pub table: Arc<ArcSwap<Table>>,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    /// Counters of requests that matched no route.
    pub no_route: Arc<RouteMetrics>,
    /// Where connections are served (none: on the runtime of the accept loop).
    pub workers: Workers,
}

impl Context {
    pub fn new(table: Arc<ArcSwap<Table>>, metrics: Arc<Metrics>, workers: Workers) -> Context {
        Context {
            table,
            upstream: Upstream::new(),
            no_route: metrics.route(NO_ROUTE),
            metrics,
            workers,
        }
    }
}

/// The client connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub ctx: Arc<Context>,
    pub socket: SocketKey,
    pub peer: SocketAddr,
    /// What the client actually speaks on this connection (TLS or not).
    pub protocol: Protocol,
    /// `X-Forwarded-For` without a prior value: the client address (formatted once per
    /// connection, not per request).
    xff: HeaderValue,
    /// The start of the `Forwarded` element: `for=...;proto=...`.
    forwarded: String,
}

impl ConnInfo {
    pub fn new(
        ctx: Arc<Context>,
        socket: SocketKey,
        peer: SocketAddr,
        protocol: Protocol,
    ) -> ConnInfo {
        let client = match peer.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let node = match client {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("\"[{a}]\""),
        };
        ConnInfo {
            ctx,
            socket,
            peer,
            protocol,
            xff: HeaderValue::from_maybe_shared(Bytes::from(client.to_string()))
                .expect("an IP address is a valid header value"),
            forwarded: format!("for={node};proto={}", protocol.scheme()),
        }
    }
}

pub fn local_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves one request; never fails (errors become responses).
pub async fn handle(
    conn: Arc<ConnInfo>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let ctx = &*conn.ctx;
    let table = ctx.table.load_full();
    let (response, metrics) = route(ctx, &table, &conn, request).await;
    metrics.record(response.status().as_u16(), start.elapsed());
    Ok(response)
}

async fn route<'t>(
    ctx: &'t Context,
    table: &'t Table,
    conn: &ConnInfo,
    request: Request<Incoming>,
) -> (Response<Body>, &'t RouteMetrics) {
    let Some(authority_value) = request_authority(&request) else {
        return (
            local_response(StatusCode::BAD_REQUEST, "bad host\n"),
            &ctx.no_route,
        );
    };
    // A Host that is not visible ASCII routes (and is forwarded) as empty, as before.
    let authority = authority_value.to_str().unwrap_or("");
    let host = hostname::normalize(authority);
    let decision = decide(
        table,
        conn.socket,
        conn.protocol,
        &RequestView {
            host: &host,
            path: request.uri().path(),
            query: request.uri().query(),
            method: request.method(),
            headers: request.headers(),
        },
    );
    let (rule, backend, endpoint, path_and_query, new_host) = match decision {
        Decision::NotFound => {
            return (
                local_response(StatusCode::NOT_FOUND, "no route\n"),
                &ctx.no_route,
            )
        }
        Decision::Local { status, text, rule } => {
            return (local_response(status, text), &rule.route.metrics)
        }
        Decision::Redirect {
            status,
            location,
            rule,
        } => {
            let mut response = Response::new(Body::Full(None));
            *response.status_mut() = status;
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    response.headers_mut().insert(header::LOCATION, v);
                }
                Err(_) => {
                    return (
                        local_response(StatusCode::BAD_REQUEST, "bad redirect target\n"),
                        &rule.route.metrics,
                    )
                }
            }
            return (response, &rule.route.metrics);
        }
        Decision::Forward {
            rule,
            backend,
            endpoint,
            path_and_query,
            host,
        } => (rule, backend, endpoint, path_and_query, host),
    };
    let metrics = &*rule.route.metrics;
    let (mut parts, body) = request.into_parts();
    // Origin-form to the backend (the endpoint is the connection, not part of the URI).
    let uri = match path_and_query {
        Some(pq) => Uri::try_from(pq).ok(),
        None if parts.uri.scheme().is_none() && parts.uri.authority().is_none() => {
            Some(std::mem::take(&mut parts.uri))
        }
        None => Some(Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )),
    };
    parts.uri = match uri {
        Some(uri) => uri,
        None => {
            return (
                local_response(StatusCode::BAD_REQUEST, "bad request target\n"),
                metrics,
            )
        }
    };
    let downstream_version = parts.version;
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if downstream_version == Version::HTTP_2 {
        join_cookies(&mut parts.headers);
    }
    let host_value = match new_host {
        Some(h) => h,
        None if authority.is_empty() => HeaderValue::from_static(""),
        None => authority_value.clone(),
    };
    forwarded_headers(&mut parts.headers, conn, authority, &authority_value);
    parts.headers.insert(header::HOST, host_value);
    request_header_filters(rule, backend, &mut parts.headers);

    let timeout = match (rule.request_timeout, rule.backend_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let upstream = ctx
        .upstream
        .send(endpoint, Request::from_parts(parts, body));
    let result = match timeout {
        Some(t) => tokio::time::timeout(t, upstream).await.map_err(|_| t),
        None => Ok(upstream.await),
    };
    let response = match result {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            ctx.metrics
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(backend = %backend.name, %endpoint, error = %e, "upstream request failed");
            return (
                local_response(StatusCode::BAD_GATEWAY, "upstream request failed\n"),
                metrics,
            );
        }
        Err(after) => {
            ctx.metrics
                .upstream_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(backend = %backend.name, %endpoint, timeout = ?after, "upstream timeout");
            return (
                local_response(StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n"),
                metrics,
            );
        }
    };
    let (mut parts, mut body) = response.into_parts();
    if let Err(e) = body.prefetch().await {
        ctx.metrics
            .upstream_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(backend = %backend.name, %endpoint, error = %e, "upstream response body failed");
        return (
            local_response(StatusCode::BAD_GATEWAY, "upstream request failed\n"),
            metrics,
        );
    }
    strip_hop_by_hop(&mut parts.headers);
    parts.version = downstream_version;
    response_header_filters(rule, backend, &mut parts.headers);
    (Response::from_parts(parts, Body::Upstream(body)), metrics)
}

/// The request's authority: `:authority` (HTTP/2, absolute-form) or the Host header (a
/// cheap reference-counted copy of the parsed value); `None`: not a valid header value.
fn request_authority<B>(request: &Request<B>) -> Option<HeaderValue> {
    match request.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => Some(
            request
                .headers()
                .get(header::HOST)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("")),
        ),
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'t> {
    /// No listener or route matches: 404.
    NotFound,
    /// Answer locally (500: invalid backend or no backend; 503: no endpoints).
    Local {
        status: StatusCode,
        text: &'static str,
        rule: &'t Rule,
    },
    Redirect {
        status: StatusCode,
        location: String,
        rule: &'t Rule,
    },
    Forward {
        rule: &'t Rule,
        backend: &'t Backend,
        endpoint: &'t Authority,
        /// Rewritten path and query; `None`: unchanged.
        path_and_query: Option<String>,
        /// Rewritten Host; `None`: unchanged.
        host: Option<HeaderValue>,
    },
}

/// Routes a request on `socket` (the pure part of the request path, shared with the tests).
pub fn decide<'t>(
    table: &'t Table,
    socket: SocketKey,
    protocol: Protocol,
    request: &RequestView<'_>,
) -> Decision<'t> {
    let Some(routes) = table.sockets.get(&socket) else {
        return Decision::NotFound;
    };
    let Some(matched) = routes.route(request) else {
        return Decision::NotFound;
    };
    let rule = &*matched.rule;
    if let Some(redirect) = rule.redirect() {
        let location = redirect_location(
            redirect,
            &matched.path,
            protocol.scheme(),
            request.host,
            socket.port,
            request.path,
            request.query,
        );
        return Decision::Redirect {
            status: redirect.status,
            location,
            rule,
        };
    }
    // Spec: a rule without usable backends answers 500; so does an invalid backend's share.
    let Some(backend) = rule.pick_backend() else {
        return Decision::Local {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            text: "no backend\n",
            rule,
        };
    };
    if backend.invalid {
        return Decision::Local {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            text: "invalid backend\n",
            rule,
        };
    }
    let Some(endpoint) = backend.next_endpoint() else {
        return Decision::Local {
            status: StatusCode::SERVICE_UNAVAILABLE,
            text: "no endpoints\n",
            rule,
        };
    };
    let mut host = None;
    let mut path_and_query = None;
    for filter in &rule.filters {
        if let Filter::Rewrite(rewrite) = filter {
            host = rewrite.hostname.clone();
            if let Some(modifier) = &rewrite.path {
                let mut pq = modify_path(modifier, &matched.path, request.path);
                if let Some(q) = request.query {
                    pq.push('?');
                    pq.push_str(q);
                }
                path_and_query = Some(pq);
            }
        }
    }
    Decision::Forward {
        rule,
        backend,
        endpoint,
        path_and_query,
        host,
    }
}

/// The RequestHeaderModifier filters of the rule, then of the backendRef.
pub fn request_header_filters(rule: &Rule, backend: &Backend, headers: &mut HeaderMap) {
    for filter in rule.filters.iter().chain(&backend.filters) {
        if let Filter::RequestHeaders(m) = filter {
            m.apply(headers);
        }
    }
}

/// The ResponseHeaderModifier filters of the rule, then of the backendRef.
pub fn response_header_filters(rule: &Rule, backend: &Backend, headers: &mut HeaderMap) {
    for filter in rule.filters.iter().chain(&backend.filters) {
        if let Filter::ResponseHeaders(m) = filter {
            m.apply(headers);
        }
    }
}

/// Removes the connection-specific headers (RFC 9110 7.6.1) and those `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// HTTP/2 may split cookies over several fields; HTTP/1.1 wants one (RFC 9113 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let joined: Vec<u8> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b"; "[..]);
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Host and RFC 7239 Forwarded.
/// `authority` is the request's authority and `authority_value` the same as a header value.
pub fn forwarded_headers(
    headers: &mut HeaderMap,
    conn: &ConnInfo,
    authority: &str,
    authority_value: &HeaderValue,
) {
    let xff_name = HeaderName::from_static("x-forwarded-for");
    let xff = match headers.get(&xff_name).and_then(|v| v.to_str().ok()) {
        Some(prior) => {
            let client = conn.xff.to_str().unwrap_or("");
            HeaderValue::from_maybe_shared(Bytes::from(format!("{prior}, {client}"))).ok()
        }
        None => Some(conn.xff.clone()),
    };
    if let Some(v) = xff {
        headers.insert(xff_name, v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(conn.protocol.scheme()),
    );
    let forwarded_host = if authority.is_empty() {
        HeaderValue::from_static("")
    } else {
        authority_value.clone()
    };
    headers.insert(HeaderName::from_static("x-forwarded-host"), forwarded_host);
    let prior = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok());
    let mut forwarded = String::with_capacity(
        prior.map_or(0, |p| p.len() + 2) + conn.forwarded.len() + authority.len() + 8,
    );
    if let Some(prior) = prior {
        forwarded.push_str(prior);
        forwarded.push_str(", ");
    }
    forwarded.push_str(&conn.forwarded);
    if !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        forwarded.push_str(";host=\"");
        forwarded.push_str(authority);
        forwarded.push('"');
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(forwarded)) {
        headers.insert(header::FORWARDED, v);
    }
}

/// How long a request may take to send its headers before the connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
