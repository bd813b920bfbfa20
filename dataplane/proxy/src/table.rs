//! The compiled route table: what the request path reads. Built once per applied table by
//! `config::compile` (regexes compiled, hostnames indexed, matches pre-sorted by the spec's
//! precedence) and swapped in atomically; requests in flight keep the table they started with.

use crate::fasthash::FastMap;
use crate::hostname::HostPattern;
use crate::metrics::RouteMetrics;
use crate::tls::CertEntry;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use regex::Regex;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

/// Where a listener binds: an address (None: every address) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketKey {
    pub address: Option<IpAddr>,
    pub port: u16,
}

impl std::fmt::Display for SocketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            None => write!(f, "*:{}", self.port),
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            Some(IpAddr::V4(a)) => write!(f, "{a}:{}", self.port),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// Everything the proxy serves.
#[derive(Debug, Default)]
pub struct Table {
    pub sockets: FastMap<SocketKey, Arc<SocketRoutes>>,
}

/// The listeners sharing one bound socket (the Gateway API's listener merging by hostname).
#[derive(Debug)]
pub struct SocketRoutes {
    pub protocol: Protocol,
    /// Most specific hostname first.
    pub listeners: Vec<ListenerRoutes>,
    /// HTTPS: the certificate when the client sends no SNI (or none matches).
    pub default_cert: Option<Arc<CertEntry>>,
}

#[derive(Debug)]
pub struct ListenerRoutes {
    pub name: Arc<str>,
    pub hostname: HostPattern,
    /// Routes whose (intersected) hostname is an exact name, by that name.
    pub exact: FastMap<String, Vec<CompiledMatch>>,
    /// Wildcard hostnames, longest suffix first, then the routes without hostname (`Any`).
    pub wildcards: Vec<(HostPattern, Vec<CompiledMatch>)>,
    /// HTTPS certificates of this listener, in table order.
    pub certs: Vec<Arc<CertEntry>>,
}

/// One HTTPRouteMatch of one rule. Lists of these are sorted by precedence.
#[derive(Debug)]
pub struct CompiledMatch {
    pub path: PathMatch,
    pub method: Option<Method>,
    pub headers: Vec<(HeaderName, StringMatch)>,
    pub query: Vec<(String, StringMatch)>,
    pub rule: Arc<Rule>,
    /// Route creation time, route name, rule index, match index: the tie-breakers.
    pub order: (i64, Arc<str>, usize, usize),
}

#[derive(Debug)]
pub enum PathMatch {
    Exact(String),
    /// Without a trailing `/` (except `/` itself): matched segment by segment.
    Prefix(String),
    /// Anchored at both ends.
    Regex(Regex),
}

#[derive(Debug)]
pub enum StringMatch {
    Exact(String),
    Regex(Regex),
}

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(expected) => expected == value,
            StringMatch::Regex(re) => re.is_match(value),
        }
    }
}

#[derive(Debug)]
pub struct RouteInfo {
    pub name: Arc<str>,
    pub metrics: Arc<RouteMetrics>,
}

#[derive(Debug)]
pub struct Rule {
    pub route: Arc<RouteInfo>,
    /// Applied in this order (the spec's filter order).
    pub filters: Vec<Filter>,
    pub backends: Vec<Backend>,
    /// Sum of the backends' weights; 0 with no backends.
    pub total_weight: u64,
    pub request_timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
}

impl Rule {
    pub fn redirect(&self) -> Option<&Redirect> {
        self.filters.iter().find_map(|f| match f {
            Filter::Redirect(r) => Some(r),
            _ => None,
        })
    }

    /// A backend chosen by weight: `None` when no backend has weight.
    pub fn pick_backend(&self) -> Option<&Backend> {
        if self.total_weight == 0 {
            return None;
        }
        let mut ticket = fastrand::u64(0..self.total_weight);
        for backend in &self.backends {
            let weight = u64::from(backend.weight);
            if ticket < weight {
                return Some(backend);
            }
            ticket -= weight;
        }
        None
    }
}

#[derive(Debug)]
pub enum Filter {
    RequestHeaders(HeaderModifier),
    ResponseHeaders(HeaderModifier),
    Redirect(Redirect),
    Rewrite(Rewrite),
}

#[derive(Debug, Default)]
pub struct HeaderModifier {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

#[derive(Debug)]
pub enum PathModifier {
    Full(String),
    Prefix(String),
}

#[derive(Debug)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub path: Option<PathModifier>,
    pub port: Option<u16>,
    pub status: StatusCode,
}

#[derive(Debug)]
pub struct Rewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathModifier>,
}

#[derive(Debug)]
pub struct Backend {
    pub name: String,
    pub weight: u32,
    pub invalid: bool,
    /// `address:port` authorities (IPv6 in brackets), ready for the upstream URI.
    pub endpoints: Vec<http::uri::Authority>,
    /// Round-robin cursor over `endpoints`.
    pub next: AtomicUsize,
    /// Header modifiers of this backendRef only.
    pub filters: Vec<Filter>,
}

impl Backend {
    pub fn next_endpoint(&self) -> Option<&http::uri::Authority> {
        if self.endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(&self.endpoints[i % self.endpoints.len()])
    }
}
