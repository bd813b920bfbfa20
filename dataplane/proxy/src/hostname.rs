//! Gateway API hostnames: exact names and `*.suffix` wildcards, the listener/route
//! intersection, and how a request's Host is matched.

use std::fmt;

/// A listener or route hostname.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// No hostname: every host.
    Any,
    /// `foo.example.com` (lowercase).
    Exact(String),
    /// `*.example.com`, stored as the suffix with its dot: `.example.com`. Matches any name
    /// with at least one more label (`a.example.com`, `a.b.example.com`), not `example.com`.
    Wildcard(String),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => f.write_str(""),
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// Parses a hostname as the Gateway API defines it: a DNS-1123 subdomain, optionally with a
/// single leading `*.` label; no IP addresses, no port, no trailing dot. Empty -> `Any`.
pub fn parse(text: &str) -> Result<HostPattern, String> {
    if text.is_empty() {
        return Ok(HostPattern::Any);
    }
    if text.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let (wildcard, name) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if name.is_empty() {
        return Err("a wildcard needs a suffix, e.g. \"*.example.com\"".into());
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "{text:?} is not a valid hostname (lowercase DNS labels, optionally one leading \"*.\")"
            ));
        }
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("IP addresses are not allowed as hostnames".into());
    }
    Ok(if wildcard {
        HostPattern::Wildcard(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_string())
    })
}

impl HostPattern {
    /// Whether `host` (normalized: lowercase, no port, no trailing dot) is accepted.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(name) => name == host,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }

    /// Precedence among patterns that accept the same host: exact names first (longer
    /// first), then wildcards (longer suffix first), then `Any` — the spec's "characters in a
    /// matching non-wildcard hostname", then "characters in a matching hostname".
    pub fn specificity(&self) -> (u8, usize) {
        match self {
            HostPattern::Exact(name) => (2, name.len()),
            HostPattern::Wildcard(suffix) => (1, suffix.len()),
            HostPattern::Any => (0, 0),
        }
    }
}

/// The hostnames a route serves on a listener: the intersection of the listener's hostname
/// with each of the route's (spec: HTTPRoute.spec.hostnames). `None`: no intersection, the
/// route does not attach to this listener.
pub fn intersect(listener: &HostPattern, route: &[HostPattern]) -> Option<Vec<HostPattern>> {
    if route.is_empty() {
        return Some(vec![listener.clone()]);
    }
    let mut out: Vec<HostPattern> = Vec::new();
    for r in route {
        let hit = match (listener, r) {
            (HostPattern::Any, r) => Some(r.clone()),
            (l, HostPattern::Any) => Some(l.clone()),
            (HostPattern::Exact(l), HostPattern::Exact(r)) => (l == r).then(|| listener.clone()),
            (HostPattern::Wildcard(_), HostPattern::Exact(r)) => {
                listener.matches(r).then(|| HostPattern::Exact(r.clone()))
            }
            (HostPattern::Exact(l), HostPattern::Wildcard(_)) => {
                r.matches(l).then(|| HostPattern::Exact(l.clone()))
            }
            (HostPattern::Wildcard(l), HostPattern::Wildcard(rs)) => {
                // The narrower wildcard is the intersection.
                if rs.ends_with(l.as_str()) {
                    Some(r.clone())
                } else if l.ends_with(rs.as_str()) {
                    Some(listener.clone())
                } else {
                    None
                }
            }
        };
        if let Some(hit) = hit {
            if !out.contains(&hit) {
                out.push(hit);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The host of a request (Host header or :authority) as matching wants it: without the port,
/// lowercase, without a trailing dot. Borrowed when already normal.
pub fn normalize(authority: &str) -> std::borrow::Cow<'_, str> {
    let host = if authority.starts_with('[') {
        // IPv6 literal: keep the brackets' content.
        authority
            .split_once(']')
            .map(|(h, _)| &h[1..])
            .unwrap_or(authority)
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        parse(s).unwrap()
    }

    #[test]
    fn parse_and_match() {
        assert_eq!(p(""), HostPattern::Any);
        assert!(p("*.example.com").matches("a.example.com"));
        assert!(p("*.example.com").matches("a.b.example.com"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(!p("*.example.com").matches("aexample.com"));
        assert!(p("foo.com").matches("foo.com"));
        assert!(!p("foo.com").matches("bar.foo.com"));
        for bad in [
            "Foo.com", "*", "*.", "a..b", "-a.com", "a_b.com", "1.2.3.4", "a.*.com",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalize_strips_port_case_and_dot() {
        assert_eq!(normalize("Foo.Example.COM:8080"), "foo.example.com");
        assert_eq!(normalize("foo.com."), "foo.com");
        assert_eq!(normalize("[::1]:80"), "::1");
        assert_eq!(normalize("plain"), "plain");
    }

    // Gateway API conformance HTTPRouteHostnameIntersection: the listener/route pairs.
    #[test]
    fn intersection_follows_the_spec() {
        type Case<'a> = (&'a str, &'a [&'a str], Option<&'a [&'a str]>);
        let cases: &[Case<'_>] = &[
            (
                "very.specific.com",
                &["non.matching.com", "*.specific.com"],
                Some(&["very.specific.com"]),
            ),
            ("very.specific.com", &["non.matching.com"], None),
            (
                "*.wildcard.io",
                &["bar.wildcard.io", "foo.bar.wildcard.io", "wildcard.io"],
                Some(&["bar.wildcard.io", "foo.bar.wildcard.io"]),
            ),
            (
                "*.anotherwildcard.io",
                &["*.anotherwildcard.io"],
                Some(&["*.anotherwildcard.io"]),
            ),
            (
                "*.anotherwildcard.io",
                &["*.foo.anotherwildcard.io"],
                Some(&["*.foo.anotherwildcard.io"]),
            ),
            ("*.foo.io", &["*.io"], Some(&["*.foo.io"])),
            ("", &["a.com"], Some(&["a.com"])),
            ("a.com", &[], Some(&["a.com"])),
            ("*.a.com", &["b.com", "*.b.com"], None),
        ];
        for (listener, route, want) in cases {
            let route: Vec<HostPattern> = route.iter().map(|r| p(r)).collect();
            let got = intersect(&p(listener), &route);
            let want = want.map(|w| w.iter().map(|h| p(h)).collect::<Vec<_>>());
            assert_eq!(got, want, "listener {listener} route {route:?}");
        }
    }
}
