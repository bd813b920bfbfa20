//! The `ADDR:PORT` and `ADDR:PORT[,weight=N][,drain]` arguments of `service apply --backend`
//! and the `backend` commands.
//!
//! Only the syntax is checked here (an IP address, a port, known options); ranges and
//! cross-field rules (weight at most 1000000, the VIP's address family, duplicates) are the
//! daemon's to judge, so its INVALID_ARGUMENT message is the one reference.

use sluice_proto::v1;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A backend's address and port: `198.19.0.1:8080`, `[2001:db8::1]:8080`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendAddr {
    /// The backend's IP address.
    pub ip: IpAddr,
    /// The backend's port, never 0.
    pub port: u16,
}

impl FromStr for BackendAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<BackendAddr, String> {
        let socket: SocketAddr = text.parse().map_err(|_| {
            if text.parse::<IpAddr>().is_ok() {
                format!("`{text}` has no port; expected ADDR:PORT ([ADDR]:PORT for IPv6)")
            } else {
                format!("`{text}` is not ADDR:PORT ([ADDR]:PORT for IPv6)")
            }
        })?;
        if socket.port() == 0 {
            return Err(format!("`{text}`: port must be between 1 and 65535"));
        }
        Ok(BackendAddr {
            ip: socket.ip(),
            port: socket.port(),
        })
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        SocketAddr::new(self.ip, self.port).fmt(f)
    }
}

impl BackendAddr {
    /// The `sluice.v1` reference to this backend.
    pub fn to_proto(self) -> v1::BackendRef {
        v1::BackendRef {
            address: self.ip.to_string(),
            port: u32::from(self.port),
        }
    }
}

/// A backend with its options: `ADDR:PORT[,weight=N][,drain]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendSpec {
    /// Where it is.
    pub addr: BackendAddr,
    /// Relative share of new connections; `None` leaves the daemon's default (1).
    pub weight: Option<u32>,
    /// Set DRAINING (no new connections) instead of ACTIVE.
    pub draining: bool,
}

impl FromStr for BackendSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<BackendSpec, String> {
        let mut parts = text.split(',');
        let addr: BackendAddr = parts.next().unwrap_or_default().trim().parse()?;
        let mut spec = BackendSpec {
            addr,
            weight: None,
            draining: false,
        };
        let mut state_given = false;
        for option in parts.map(str::trim) {
            let (key, value) = match option.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (option, None),
            };
            match (key, value) {
                ("weight", Some(value)) => {
                    if spec.weight.is_some() {
                        return Err(format!("`{text}`: weight is given twice"));
                    }
                    let weight = value
                        .parse()
                        .map_err(|_| format!("`{text}`: weight `{value}` is not a whole number"))?;
                    spec.weight = Some(weight);
                }
                ("drain" | "draining", None) | ("state", Some("draining" | "drain")) => {
                    if state_given {
                        return Err(format!("`{text}`: the state is given twice"));
                    }
                    state_given = true;
                    spec.draining = true;
                }
                ("active", None) | ("state", Some("active")) => {
                    if state_given {
                        return Err(format!("`{text}`: the state is given twice"));
                    }
                    state_given = true;
                }
                ("state", Some(other)) => {
                    return Err(format!(
                        "`{text}`: unknown state `{other}`; use active or draining"
                    ))
                }
                _ => {
                    return Err(format!(
                        "`{text}`: unknown option `{option}`; use weight=N, drain or active"
                    ))
                }
            }
        }
        Ok(spec)
    }
}

impl BackendSpec {
    /// The `sluice.v1` backend.
    pub fn to_proto(self) -> v1::Backend {
        v1::Backend {
            address: self.addr.ip.to_string(),
            port: u32::from(self.addr.port),
            weight: self.weight,
            state: if self.draining {
                v1::BackendState::Draining
            } else {
                v1::BackendState::Active
            } as i32,
            status: None,
        }
    }
}

/// Parses `key=value` (label selectors and `--label`); the value may be empty (`key=`).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> BackendSpec {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn plain_backend_has_default_weight_and_is_active() {
        let backend = spec("198.19.0.1:8080");
        assert_eq!(backend.addr.to_string(), "198.19.0.1:8080");
        assert_eq!(backend.weight, None);
        assert!(!backend.draining);
        let proto = backend.to_proto();
        assert_eq!(proto.address, "198.19.0.1");
        assert_eq!(proto.port, 8080);
        assert_eq!(proto.weight, None);
        assert_eq!(proto.state, v1::BackendState::Active as i32);
    }

    #[test]
    fn options_set_weight_and_drain_in_any_order() {
        let backend = spec("198.19.0.1:8080,weight=2,drain");
        assert_eq!(backend.weight, Some(2));
        assert!(backend.draining);
        let spaced = spec("198.19.0.1:80, drain , weight=0");
        assert_eq!((spaced.weight, spaced.draining), (Some(0), true));
        assert!(spec("198.19.0.1:80,state=draining").draining);
        assert!(!spec("198.19.0.1:80,state=active").draining);
        assert_eq!(
            spec("198.19.0.1:80,drain").to_proto().state,
            v1::BackendState::Draining as i32
        );
    }

    #[test]
    fn ipv6_backends_use_brackets() {
        let backend = spec("[2001:db8::1]:443,weight=5");
        assert_eq!(backend.addr.ip, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(backend.addr.to_string(), "[2001:db8::1]:443");
        assert_eq!(backend.to_proto().address, "2001:db8::1");
    }

    #[test]
    fn malformed_backends_are_explained() {
        let cases = [
            ("198.19.0.1", "has no port"),
            ("2001:db8::1", "has no port"),
            ("2001:db8::1:80", "has no port"),
            ("[2001:db8::1]", "is not ADDR:PORT ([ADDR]:PORT for IPv6)"),
            ("web:80", "is not ADDR:PORT"),
            ("198.19.0.1:0", "port must be between 1 and 65535"),
            ("198.19.0.1:70000", "is not ADDR:PORT"),
            (
                "198.19.0.1:80,weight=abc",
                "weight `abc` is not a whole number",
            ),
            ("198.19.0.1:80,weight=-1", "is not a whole number"),
            ("198.19.0.1:80,weight=1,weight=2", "weight is given twice"),
            ("198.19.0.1:80,drain,active", "the state is given twice"),
            ("198.19.0.1:80,state=down", "unknown state `down`"),
            ("198.19.0.1:80,backup", "unknown option `backup`"),
            ("", "is not ADDR:PORT"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<BackendSpec>().unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn backend_refs_have_no_options() {
        let addr: BackendAddr = "198.19.0.2:9090".parse().unwrap();
        let proto = addr.to_proto();
        assert_eq!((proto.address.as_str(), proto.port), ("198.19.0.2", 9090));
        assert!("198.19.0.2:9090,drain".parse::<BackendAddr>().is_err());
    }

    #[test]
    fn labels_are_key_value() {
        assert_eq!(parse_label("app=web"), Ok(("app".into(), "web".into())));
        assert_eq!(parse_label("empty="), Ok(("empty".into(), String::new())));
        assert!(parse_label("novalue").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_label("=x").is_err());
    }
}
