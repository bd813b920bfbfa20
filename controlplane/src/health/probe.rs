//! One health check of one backend: ICMP echo, TCP connect, UDP request/response, HTTP/1.1 or
//! HTTPS GET. Each returns `Err` with a short reason ("connect: connection refused",
//! "HTTP 503", "timeout") that the API shows as the backend's `health_message`.

use crate::state::{HealthCheck, HttpProbe, Probe};
use core::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The most of an HTTP response read to find its status line.
const HTTP_HEAD_LIMIT: usize = 4096;
/// Largest UDP reply read.
const UDP_BUFFER: usize = 2048;

/// Runs one check of the backend at `address` (`backend_port` is its service port), bounded
/// by the check's timeout.
pub async fn check(check: &HealthCheck, address: IpAddr, backend_port: u16) -> Result<(), String> {
    let port = check.port.unwrap_or(backend_port);
    let target = SocketAddr::new(address, port);
    let run = async {
        match &check.probe {
            Probe::Ping => ping(address).await,
            Probe::Tcp => tcp(target).await,
            Probe::Udp { request, response } => udp(target, request, response).await,
            Probe::Http(http) => {
                let stream = connect(target).await?;
                http_get(stream, target, http, 80).await
            }
            Probe::Https(http) => {
                let stream = connect(target).await?;
                let tls = tls_connect(stream, target, http).await?;
                http_get(tls, target, http, 443).await
            }
        }
    };
    match tokio::time::timeout(check.timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("timeout after {}", human(check.timeout))),
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

async fn connect(target: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {}", io_reason(&e)))
}

/// The error text without the "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text.to_lowercase(),
    }
}

async fn tcp(target: SocketAddr) -> Result<(), String> {
    // Connected is healthy; dropping the stream closes it.
    connect(target).await.map(drop)
}

async fn udp(target: SocketAddr, request: &[u8], response: &[u8]) -> Result<(), String> {
    let local: SocketAddr = if target.is_ipv4() {
        (IpAddr::from([0u8; 4]), 0).into()
    } else {
        (IpAddr::from([0u16; 8]), 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("udp: bind: {}", io_reason(&e)))?;
    // Connected, so an ICMP port unreachable fails the receive at once.
    socket
        .connect(target)
        .await
        .map_err(|e| format!("udp: {}", io_reason(&e)))?;
    socket
        .send(request)
        .await
        .map_err(|e| format!("udp: send: {}", io_reason(&e)))?;
    let mut buf = vec![0u8; UDP_BUFFER];
    let n = socket
        .recv(&mut buf)
        .await
        .map_err(|e| format!("udp: {}", io_reason(&e)))?;
    if buf[..n].starts_with(response) {
        Ok(())
    } else {
        Err(format!(
            "udp: unexpected reply ({n} bytes, not starting with the expected {} bytes)",
            response.len()
        ))
    }
}

/// The Host header: the configured one, or the backend address (with the port when it is not
/// the scheme's default).
fn host_header(target: SocketAddr, http: &HttpProbe, default_port: u16) -> String {
    if let Some(host) = &http.host {
        return host.clone();
    }
    let address = match target.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if target.port() == default_port {
        address
    } else {
        format!("{address}:{}", target.port())
    }
}

async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: SocketAddr,
    http: &HttpProbe,
    default_port: u16,
) -> Result<(), String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluiced-health-check\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        http.path,
        host_header(target, http, default_port),
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("http: send: {}", io_reason(&e)))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    // The status line is all we need.
    while !head.contains(&b'\n') {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("http: receive: {}", io_reason(&e)))?;
        if n == 0 {
            return Err("http: connection closed before a status line".into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > HTTP_HEAD_LIMIT {
            return Err("http: no status line in the first 4 KiB".into());
        }
    }
    let status = parse_status(&head)?;
    if status == http.expected_status {
        Ok(())
    } else {
        Err(format!("HTTP {status} (expected {})", http.expected_status))
    }
}

/// The status code of an HTTP/1.x status line.
pub fn parse_status(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("http: bad status line {:?}", line.trim_end()));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("http: bad status line {:?}", line.trim_end()));
    }
    code.parse::<u16>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .ok_or_else(|| format!("http: bad status code {code:?}"))
}

/// Accepts any server certificate (the API documents HTTPS checks as unverified: backends
/// commonly have self-signed or internal certificates); handshake signatures are still
/// checked, so the peer does hold the certificate's key.
#[derive(Debug)]
struct NoCertificateVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCertificateVerification(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

async fn tls_connect(
    stream: TcpStream,
    target: SocketAddr,
    http: &HttpProbe,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    // SNI: the Host header when it is a DNS name, else the address (sent as no SNI).
    let name = http
        .host
        .as_deref()
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
        .and_then(|h| rustls::pki_types::ServerName::try_from(h.to_owned()).ok())
        .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(target.ip().into()));
    tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, stream)
        .await
        .map_err(|e| format!("tls: {}", io_reason(&e)))
}

/// Echo identifiers: distinct per check so concurrent pings (one raw socket each) tell their
/// replies apart.
static PING_SEQUENCE: AtomicU16 = AtomicU16::new(1);

/// The ICMP / ICMPv6 echo request with `id`, `seq` and `payload` (the ICMPv4 checksum filled
/// in; the kernel computes ICMPv6's).
pub fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(payload);
    if !v6 {
        let sum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `icmp` (the ICMP message, without an IP header) is the echo reply to a request
/// with `seq` and `payload` (the id is not compared: datagram ICMP sockets rewrite it).
pub fn is_echo_reply(v6: bool, icmp: &[u8], seq: u16, payload: &[u8]) -> bool {
    let reply_type = if v6 { 129 } else { 0 };
    icmp.len() >= 8
        && icmp[0] == reply_type
        && icmp[1] == 0
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
        && &icmp[8..] == payload
}

/// An ICMP socket: raw (needs CAP_NET_RAW; the IPv4 one receives IP headers), else the
/// unprivileged datagram kind (needs `net.ipv4.ping_group_range` to cover the group).
fn icmp_socket(v6: bool) -> Result<(UdpSocket, bool), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let (socket, raw) = match Socket::new(domain, Type::RAW, Some(protocol)) {
        Ok(s) => (s, true),
        Err(raw_error) => match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(s) => (s, false),
            Err(e) => {
                return Err(format!(
                    "ping: no ICMP socket (raw: {}; datagram: {}; run as root or allow the \
                     group in net.ipv4.ping_group_range)",
                    io_reason(&raw_error),
                    io_reason(&e)
                ))
            }
        },
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("ping: {}", io_reason(&e)))?;
    // tokio's UdpSocket only wraps sendto/recvfrom, which is all an ICMP socket needs.
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))
        .map_err(|e| format!("ping: {}", io_reason(&e)))?;
    Ok((socket, raw))
}

async fn ping(address: IpAddr) -> Result<(), String> {
    let v6 = address.is_ipv6();
    let (socket, raw) = icmp_socket(v6)?;
    let seq = PING_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let id = (std::process::id() as u16) ^ seq.rotate_left(8);
    let payload = *b"sluiced-health";
    let request = echo_request(v6, id, seq, &payload);
    socket
        .send_to(&request, SocketAddr::new(address, 0))
        .await
        .map_err(|e| format!("ping: send: {}", io_reason(&e)))?;
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = socket
            .recv_from(&mut buf)
            .await
            .map_err(|e| format!("ping: {}", io_reason(&e)))?;
        if from.ip() != address {
            continue;
        }
        let mut icmp = &buf[..n];
        if raw && !v6 {
            // Raw IPv4 sockets deliver the IP header too.
            let header = usize::from(icmp.first().map_or(0, |b| b & 0x0f)) * 4;
            icmp = icmp.get(header..).unwrap_or_default();
        }
        if is_echo_reply(v6, icmp, seq, &payload) {
            return Ok(());
        }
        if icmp.first() == Some(&if v6 { 1 } else { 3 }) {
            // Destination unreachable quoting one of our requests: keep waiting for ours, the
            // timeout ends it if nothing else comes.
            continue;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::HttpProbe;
    use tokio::net::TcpListener;

    fn check_of(probe: Probe, port: Option<u16>) -> HealthCheck {
        HealthCheck {
            probe,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 1,
            port,
        }
    }

    const LOCAL: IpAddr = IpAddr::V4(core::net::Ipv4Addr::LOCALHOST);

    fn http(expected: u16) -> HttpProbe {
        HttpProbe {
            path: "/healthz".into(),
            host: None,
            expected_status: expected,
        }
    }

    /// A one-request HTTP server answering `status`; returns its port and the request it got.
    async fn http_server(status: u16) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let body = "ok\n";
            let response = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, task)
    }

    #[tokio::test]
    async fn tcp_succeeds_on_a_listener_and_fails_when_refused() {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            check(&check_of(Probe::Tcp, None), LOCAL, port).await,
            Ok(())
        );
        drop(listener);
        let err = check(&check_of(Probe::Tcp, None), LOCAL, port)
            .await
            .unwrap_err();
        assert_eq!(err, "connect: connection refused");
        // The check's port overrides the backend's.
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let other = listener.local_addr().unwrap().port();
        assert_eq!(
            check(&check_of(Probe::Tcp, Some(other)), LOCAL, port).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn http_checks_the_status_and_sends_path_and_host() {
        let (port, server) = http_server(200).await;
        assert_eq!(
            check(&check_of(Probe::Http(http(200)), None), LOCAL, port).await,
            Ok(())
        );
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{request}"
        );

        let (port, _server) = http_server(503).await;
        let err = check(&check_of(Probe::Http(http(200)), None), LOCAL, port)
            .await
            .unwrap_err();
        assert_eq!(err, "HTTP 503 (expected 200)");

        let (port, server) = http_server(204).await;
        let mut probe = http(204);
        probe.host = Some("web.example".into());
        assert_eq!(
            check(&check_of(Probe::Http(probe), None), LOCAL, port).await,
            Ok(())
        );
        assert!(server.await.unwrap().contains("\r\nHost: web.example\r\n"));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts (the kernel does) but never answers.
        let started = std::time::Instant::now();
        let err = check(&check_of(Probe::Http(http(200)), None), LOCAL, port)
            .await
            .unwrap_err();
        assert_eq!(err, "timeout after 500ms");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }

    /// A self-signed certificate for "backend.test" (P-256) and its key, for the HTTPS test
    /// server: the probe must accept it without verification.
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUfnZ9cBY7Amw83U/M2Y8Ly3akpEwwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMYmFja2VuZC50ZXN0MCAXDTI2MTEyNjE5NTEyN1oYDzIxMjYx
MTAyMTk1MTI3WjAXMRUwEwYDVQQDDAxiYWNrZW5kLnRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAS5b/6fiDcYihDTqmyCNJkcW5pxH4b5jiGk3toUBTcYw01/
KG1bvDmpBLbMXBjqhsmh8H/o+NSgVwkVgKAwwlb5o1MwUTAdBgNVHQ4EFgQUbBjF
NOyjfBsC5mi1oYtbW3AUIH0wHwYDVR0jBBgwFoAUbBjFNOyjfBsC5mi1oYtbW3AU
IH0wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiAYcZL/o9F1+ThP
L6UEQ0aJiTR5bYT4R34HVYviaTi92AIhALsERuVyyvhqLLgM2MfFjH8C2ydJeDL+
UQly1WANfL5r
-----END CERTIFICATE-----
";
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqXxTSf0Tl8CJdV4a
6yh88E8VA4UpQVUmWdvRKH+mKgOhRANCAAS5b/6fiDcYihDTqmyCNJkcW5pxH4b5
jiGk3toUBTcYw01/KG1bvDmpBLbMXBjqhsmh8H/o+NSgVwkVgKAwwlb5
-----END PRIVATE KEY-----
";

    /// A one-request HTTPS server answering `status`; returns its port and the request.
    async fn https_server(status: u16) -> (u16, tokio::task::JoinHandle<String>) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert = CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut stream = acceptor.accept(stream).await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let response = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            stream.write_all(response.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, task)
    }

    #[tokio::test]
    async fn https_accepts_a_self_signed_backend_and_checks_the_status() {
        let (port, server) = https_server(200).await;
        let mut probe = http(200);
        probe.host = Some("backend.test".into());
        assert_eq!(
            check(&check_of(Probe::Https(probe), None), LOCAL, port).await,
            Ok(())
        );
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("\r\nHost: backend.test\r\n"), "{request}");

        let (port, _server) = https_server(500).await;
        let err = check(&check_of(Probe::Https(http(200)), None), LOCAL, port)
            .await
            .unwrap_err();
        assert_eq!(err, "HTTP 500 (expected 200)");
    }

    #[tokio::test]
    async fn https_fails_cleanly_against_a_plain_text_server() {
        let listener = TcpListener::bind((LOCAL, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let err = check(&check_of(Probe::Https(http(200)), None), LOCAL, port)
            .await
            .unwrap_err();
        assert!(err.starts_with("tls: "), "{err}");
    }

    #[tokio::test]
    async fn udp_matches_the_reply_prefix() {
        let echo = UdpSocket::bind((LOCAL, 0)).await.unwrap();
        let port = echo.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            for _ in 0..2 {
                let (n, from) = echo.recv_from(&mut buf).await.unwrap();
                let mut reply = b"pong:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                echo.send_to(&reply, from).await.unwrap();
            }
            echo
        });
        let probe = |response: &[u8]| Probe::Udp {
            request: b"ping".to_vec(),
            response: response.to_vec(),
        };
        assert_eq!(
            check(&check_of(probe(b"pong:ping"), None), LOCAL, port).await,
            Ok(())
        );
        let err = check(&check_of(probe(b"PONG"), None), LOCAL, port)
            .await
            .unwrap_err();
        assert!(err.starts_with("udp: unexpected reply"), "{err}");
        drop(server.await.unwrap());
        // Nobody listens now: the port unreachable fails the check before the timeout.
        let err = check(&check_of(probe(b""), None), LOCAL, port)
            .await
            .unwrap_err();
        assert_eq!(err, "udp: connection refused");
    }

    #[tokio::test]
    async fn ping_answers_on_loopback_when_icmp_sockets_are_allowed() {
        match check(&check_of(Probe::Ping, None), LOCAL, 0).await {
            Ok(()) => {}
            // Neither raw (not root) nor datagram (ping_group_range) sockets: say so.
            Err(e) if e.starts_with("ping: no ICMP socket") => eprintln!("skipped: {e}"),
            Err(e) => panic!("ping 127.0.0.1: {e}"),
        }
    }

    #[test]
    fn echo_request_has_a_valid_checksum_and_replies_match() {
        let request = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(&request[..2], &[8, 0]);
        assert_eq!(internet_checksum(&request), 0);
        let mut reply = request.clone();
        reply[0] = 0;
        assert!(is_echo_reply(false, &reply, 7, b"abc"));
        assert!(!is_echo_reply(false, &reply, 8, b"abc"));
        assert!(!is_echo_reply(false, &request, 7, b"abc"));
        assert!(!is_echo_reply(false, &reply, 7, b"abd"));
        let v6 = echo_request(true, 1, 2, b"x");
        assert_eq!(v6[0], 128);
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Ok(200));
        assert_eq!(parse_status(b"HTTP/1.0 503\r\n"), Ok(503));
        assert!(parse_status(b"SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 abc OK\r\n").is_err());
    }
}
