//! The backend client: HTTP/1.1 with keep-alive connection pooling per endpoint (hyper-util's
//! pooled client), TCP_NODELAY, a connect timeout, and a retry of requests that lost a race
//! with a pooled connection being closed by the backend.

use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Idle pooled connections are closed after this (below nginx's default keepalive_timeout of
/// 75 s, so the proxy closes first and rarely reuses a connection the backend is closing).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<HttpConnector, Incoming>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream::new()
    }
}

impl Upstream {
    pub fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_ENDPOINT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Upstream { client }
    }

    pub fn send(&self, request: http::Request<Incoming>) -> ResponseFuture {
        self.client.request(request)
    }
}
