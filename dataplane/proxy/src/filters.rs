//! HTTPRoute filters: header modifiers, RequestRedirect and URLRewrite path/host rules.

use crate::table::{HeaderModifier, PathMatch, PathModifier, Redirect};
use http::HeaderMap;

impl HeaderModifier {
    /// Spec order: set (replaces), add (appends), remove.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// The path after a path modifier. `matched` is the match that selected the rule: its prefix
/// is what ReplacePrefixMatch replaces (segment-wise; validation guarantees a PathPrefix).
pub fn modify_path(modifier: &PathModifier, matched: &PathMatch, path: &str) -> String {
    match modifier {
        PathModifier::Full(full) => full.clone(),
        PathModifier::Prefix(replacement) => {
            let prefix = match matched {
                PathMatch::Prefix(p) if p != "/" => p.as_str(),
                _ => "",
            };
            let rest = path.strip_prefix(prefix).unwrap_or(path);
            let rest = rest.trim_start_matches('/');
            // Join replacement and remainder with exactly one slash.
            let base = replacement.trim_end_matches('/');
            match (base.is_empty(), rest.is_empty()) {
                (true, true) => "/".to_string(),
                (true, false) => format!("/{rest}"),
                (false, true) => {
                    // Keep the replacement's own trailing slash when nothing follows.
                    replacement.clone()
                }
                (false, false) => format!("{base}/{rest}"),
            }
        }
    }
}

/// The Location of a redirect (spec: HTTPRequestRedirectFilter). `scheme` and `listener_port`
/// are the request's; `host` is its normalized host.
pub fn redirect_location(
    redirect: &Redirect,
    matched: &PathMatch,
    scheme: &str,
    host: &str,
    listener_port: u16,
    path: &str,
    query: Option<&str>,
) -> String {
    let new_scheme = redirect.scheme.as_deref().unwrap_or(scheme);
    let host = redirect.hostname.as_deref().unwrap_or(host);
    // Port: explicit; else the scheme's well-known port when the scheme is redirected; else
    // the listener's port. Omitted when it is the scheme's well-known port.
    let port = redirect.port.unwrap_or(match redirect.scheme.as_deref() {
        Some("http") => 80,
        Some("https") => 443,
        _ => listener_port,
    });
    let default_port = matches!((new_scheme, port), ("http", 80) | ("https", 443));
    let new_path = match &redirect.path {
        Some(m) => modify_path(m, matched, path),
        None => path.to_string(),
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let mut location = if default_port {
        format!("{new_scheme}://{host}{new_path}")
    } else {
        format!("{new_scheme}://{host}:{port}{new_path}")
    };
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    location
}
