//! Where sluiced listens and how to talk to it: a Unix socket (the default), plain HTTP/2 on
//! TCP, or TLS with optional client certificates; plus the bearer token on every call.

use super::error::{error_chain, CliError};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// The daemon's default API socket.
pub const DEFAULT_SOCKET: &str = "/run/sluice/sluiced.sock";

/// A parsed `--server` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddress {
    /// `unix:///path`, `unix:/path` or a path (`/run/...`, `./sock`).
    Unix(PathBuf),
    /// `http://host:port` (or `host:port`).
    Http(String),
    /// `https://host:port`.
    Https(String),
}

impl ServerAddress {
    /// Parses `--server`.
    pub fn parse(text: &str) -> Result<ServerAddress, String> {
        let text = text.trim();
        let invalid = || {
            format!(
                "--server `{text}`: expected unix:///PATH, a socket path, http://HOST:PORT or \
                 https://HOST:PORT"
            )
        };
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "--server `{text}`: a unix:// address needs an absolute path \
                     (unix:///run/sluice/sluiced.sock)"
                ));
            }
            return Ok(ServerAddress::Unix(PathBuf::from(path)));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return if path.is_empty() {
                Err(invalid())
            } else {
                Ok(ServerAddress::Unix(PathBuf::from(path)))
            };
        }
        if text.starts_with('/') || text.starts_with("./") || text.starts_with("../") {
            return Ok(ServerAddress::Unix(PathBuf::from(text)));
        }
        let (is_tls, authority) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else if text.contains("://") {
            return Err(invalid());
        } else {
            (false, text)
        };
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(invalid());
        }
        let uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|_| invalid())?;
        if uri.port_u16().is_none() {
            return Err(format!(
                "--server `{text}`: give the port, e.g. {}://{authority}:50051",
                if is_tls { "https" } else { "http" }
            ));
        }
        Ok(if is_tls {
            ServerAddress::Https(format!("https://{authority}"))
        } else {
            ServerAddress::Http(format!("http://{authority}"))
        })
    }
}

/// TLS files for an `https://` server.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// PEM CA bundle that signed the server's certificate; unset: the system roots.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (mTLS).
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key: Option<PathBuf>,
}

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Debug)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// From the token text (`None`: no header).
    pub fn new(token: Option<&str>) -> Result<BearerToken, CliError> {
        match token {
            None => Ok(BearerToken(None)),
            Some(token) => format!("Bearer {}", token.trim())
                .parse()
                .map(|value| BearerToken(Some(value)))
                .map_err(|_| {
                    CliError::Input(
                        "--token: the token must be printable ASCII without line breaks".into(),
                    )
                }),
        }
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The channel every client of a run shares, with the token interceptor.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

fn read_file(path: &PathBuf, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Input(format!("{what} {}: {e}", path.display())))
}

/// Connects to the daemon (eagerly, so an unreachable server is reported as such).
pub async fn connect(
    server_text: &str,
    tls: &TlsFiles,
    timeout: Duration,
    token: BearerToken,
) -> Result<AuthChannel, CliError> {
    let address = ServerAddress::parse(server_text).map_err(CliError::Input)?;
    let tls_given = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    if tls_given && !matches!(address, ServerAddress::Https(_)) {
        return Err(CliError::Input(
            "--ca, --cert and --key are for an https:// server".into(),
        ));
    }
    // tonic's transport error says only "transport error"; its sources say what failed.
    let connect_error = |error: tonic::transport::Error| CliError::Connect {
        server: server_text.to_owned(),
        detail: match std::error::Error::source(&error) {
            Some(cause) => error_chain(cause),
            None => error_chain(&error),
        },
    };
    let channel = match address {
        ServerAddress::Unix(path) => {
            // The URI is only the :authority of the requests; the connector ignores it.
            let endpoint = Endpoint::from_static("http://localhost")
                .connect_timeout(timeout)
                .timeout(timeout);
            let connector = tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            });
            endpoint
                .connect_with_connector(connector)
                .await
                .map_err(connect_error)?
        }
        ServerAddress::Http(uri) => Endpoint::from_shared(uri)
            .map_err(|e| CliError::Input(format!("--server: {e}")))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect()
            .await
            .map_err(connect_error)?,
        ServerAddress::Https(uri) => {
            let mut config = ClientTlsConfig::new();
            config = match &tls.ca {
                Some(ca) => config.ca_certificate(Certificate::from_pem(read_file(ca, "--ca")?)),
                None => config.with_native_roots(),
            };
            match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => {
                    config = config.identity(Identity::from_pem(
                        read_file(cert, "--cert")?,
                        read_file(key, "--key")?,
                    ));
                }
                (None, None) => {}
                _ => {
                    return Err(CliError::Input(
                        "--cert and --key go together (the client certificate and its key)".into(),
                    ))
                }
            }
            Endpoint::from_shared(uri)
                .map_err(|e| CliError::Input(format!("--server: {e}")))?
                .tls_config(config)
                .map_err(|e| CliError::Input(format!("TLS settings: {}", error_chain(&e))))?
                .connect_timeout(timeout)
                .timeout(timeout)
                .connect()
                .await
                .map_err(connect_error)?
        }
    };
    Ok(InterceptedService::new(channel, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_socket_forms() {
        for text in [
            "unix:///run/sluice/sluiced.sock",
            "unix:/run/sluice/sluiced.sock",
            "/run/sluice/sluiced.sock",
        ] {
            assert_eq!(
                ServerAddress::parse(text),
                Ok(ServerAddress::Unix(PathBuf::from(DEFAULT_SOCKET))),
                "{text}"
            );
        }
        assert_eq!(
            ServerAddress::parse("./sluiced.sock"),
            Ok(ServerAddress::Unix(PathBuf::from("./sluiced.sock")))
        );
        assert!(ServerAddress::parse("unix://relative.sock")
            .unwrap_err()
            .contains("absolute path"));
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(
            ServerAddress::parse("http://127.0.0.1:50051"),
            Ok(ServerAddress::Http("http://127.0.0.1:50051".into()))
        );
        assert_eq!(
            ServerAddress::parse("127.0.0.1:50051"),
            Ok(ServerAddress::Http("http://127.0.0.1:50051".into()))
        );
        assert_eq!(
            ServerAddress::parse("https://lb1.example:8443/"),
            Ok(ServerAddress::Https("https://lb1.example:8443".into()))
        );
        assert_eq!(
            ServerAddress::parse("https://[::1]:8443"),
            Ok(ServerAddress::Https("https://[::1]:8443".into()))
        );
    }

    #[test]
    fn malformed_servers_are_explained() {
        assert!(ServerAddress::parse("https://lb1.example")
            .unwrap_err()
            .contains("give the port, e.g. https://lb1.example:50051"));
        assert!(ServerAddress::parse("ftp://x:1")
            .unwrap_err()
            .contains("expected unix:///PATH"));
        assert!(ServerAddress::parse("http://x:1/path").is_err());
        assert!(ServerAddress::parse("").is_err());
    }

    #[test]
    fn bearer_token_is_sent_as_authorization() {
        use tonic::service::Interceptor;
        let mut token = BearerToken::new(Some("s3cret")).unwrap();
        let request = token.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        let mut none = BearerToken::new(None).unwrap();
        let request = none.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
        assert!(BearerToken::new(Some("bad\ntoken")).is_err());
    }
}
