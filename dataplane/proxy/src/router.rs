//! Request matching and the Gateway API's match precedence.
//!
//! A request is matched on the socket it arrived on: first the listener with the most
//! specific hostname accepting the Host, then the route hostnames of that listener in the
//! spec's order (exact names, then wildcards longest first, then routes without hostnames),
//! and inside each hostname the matches already sorted by precedence. The first match wins.

use crate::table::{CompiledMatch, ListenerRoutes, PathMatch, SocketRoutes};
use http::{HeaderMap, Method};
use std::borrow::Cow;
use std::cmp::Ordering;

/// The parts of a request matching looks at.
#[derive(Debug)]
pub struct RequestView<'a> {
    /// Normalized (see `hostname::normalize`).
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

impl SocketRoutes {
    /// The listener accepting `host`: the most specific hostname wins.
    pub fn listener(&self, host: &str) -> Option<&ListenerRoutes> {
        self.listeners.iter().find(|l| l.hostname.matches(host))
    }

    pub fn route(&self, request: &RequestView<'_>) -> Option<&CompiledMatch> {
        self.listener(request.host)?.route(request)
    }
}

impl ListenerRoutes {
    pub fn route(&self, request: &RequestView<'_>) -> Option<&CompiledMatch> {
        if let Some(matches) = self.exact.get(request.host) {
            if let Some(hit) = first_match(matches, request) {
                return Some(hit);
            }
        }
        self.wildcards
            .iter()
            .filter(|(host, _)| host.matches(request.host))
            .find_map(|(_, matches)| first_match(matches, request))
    }
}

fn first_match<'t>(
    matches: &'t [CompiledMatch],
    request: &RequestView<'_>,
) -> Option<&'t CompiledMatch> {
    matches.iter().find(|m| m.matches(request))
}

impl CompiledMatch {
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatch::Exact(value) => request.path == value,
            PathMatch::Prefix(prefix) => prefix_matches(prefix, request.path),
            PathMatch::Regex(re) => re.is_match(request.path),
        };
        if !path_ok {
            return false;
        }
        if let Some(method) = &self.method {
            if method != request.method {
                return false;
            }
        }
        for (name, matcher) in &self.headers {
            let mut values = request.headers.get_all(name).iter();
            let Some(first) = values.next() else {
                return false;
            };
            // Several lines of one header compare as their comma-joined list (RFC 9110 5.3).
            let joined: Cow<'_, [u8]> = match values.next() {
                None => Cow::Borrowed(first.as_bytes()),
                Some(second) => {
                    let mut all = first.as_bytes().to_vec();
                    for v in std::iter::once(second).chain(values) {
                        all.push(b',');
                        all.extend_from_slice(v.as_bytes());
                    }
                    Cow::Owned(all)
                }
            };
            match std::str::from_utf8(&joined) {
                Ok(text) if matcher.matches(text) => {}
                _ => return false,
            }
        }
        for (name, matcher) in &self.query {
            match query_param(request.query, name) {
                Some(value) if matcher.matches(&value) => {}
                _ => return false,
            }
        }
        true
    }

    /// The spec's precedence, most important first: Exact path, then (our choice for the
    /// implementation-specific case) RegularExpression by pattern length, then PathPrefix by
    /// length; a method match; more header matches; more query matches; then the oldest
    /// route, its name, and rule and match order.
    pub fn precedence(a: &CompiledMatch, b: &CompiledMatch) -> Ordering {
        fn path_rank(p: &PathMatch) -> (u8, usize) {
            match p {
                PathMatch::Exact(v) => (3, v.len()),
                PathMatch::Regex(re) => (2, re.as_str().len()),
                PathMatch::Prefix(v) => (1, v.len()),
            }
        }
        path_rank(&b.path)
            .cmp(&path_rank(&a.path))
            .then_with(|| b.method.is_some().cmp(&a.method.is_some()))
            .then_with(|| b.headers.len().cmp(&a.headers.len()))
            .then_with(|| b.query.len().cmp(&a.query.len()))
            .then_with(|| a.order.cmp(&b.order))
    }
}

/// PathPrefix with segment semantics: `/abc` matches `/abc`, `/abc/` and `/abc/def`, not
/// `/abcd`. `prefix` carries no trailing slash (except the root).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    query?
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
        .next()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}
