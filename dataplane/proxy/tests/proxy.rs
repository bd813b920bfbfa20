//! The proxy end to end in-process: real sockets, a real backend (a hyper echo server), HTTP/1.1,
//! h2c and TLS clients; table swaps, listener changes, certificate rotation, persistence,
//! timeouts, and the gRPC API over a Unix socket.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sluice_proto::v1;
use sluice_proxy::control::Control;
use sluice_proxy::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A backend that echoes what it received: "backend NAME", the request line, the headers.
async fn echo_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<Incoming>| async move {
                        match req.uri().path() {
                            "/slow" => tokio::time::sleep(Duration::from_millis(700)).await,
                            "/sleep2" => tokio::time::sleep(Duration::from_secs(2)).await,
                            _ => {}
                        }
                        let mut text = format!(
                            "backend {name}\n{} {} {:?}\n",
                            req.method(),
                            req.uri(),
                            req.version()
                        );
                        for (n, v) in req.headers() {
                            text.push_str(&format!("{n}: {}\n", v.to_str().unwrap_or("?")));
                        }
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        text.push_str(&format!("body {}\n", String::from_utf8_lossy(&body)));
                        let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
                        resp.headers_mut().insert("server", "echo".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_listener(name: &str, port: u16) -> v1::Listener {
    v1::Listener {
        name: name.into(),
        address: "127.0.0.1".into(),
        port: port.into(),
        protocol: v1::ListenerProtocol::Http as i32,
        ..Default::default()
    }
}

fn backend(name: &str, addr: SocketAddr) -> v1::HttpBackend {
    v1::HttpBackend {
        name: name.into(),
        endpoints: vec![v1::Endpoint {
            address: addr.ip().to_string(),
            port: addr.port().into(),
        }],
        ..Default::default()
    }
}

fn simple_route(
    name: &str,
    listeners: &[&str],
    hostnames: &[&str],
    to: v1::HttpBackend,
) -> v1::HttpRoute {
    v1::HttpRoute {
        name: name.into(),
        listener_names: listeners.iter().map(|l| l.to_string()).collect(),
        hostnames: hostnames.iter().map(|h| h.to_string()).collect(),
        rules: vec![v1::HttpRouteRule {
            backends: vec![to],
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

async fn send<S>(io: S, h2: bool, request: Request<Full<Bytes>>) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn request(host: &str, path: &str, h2: bool) -> Request<Full<Bytes>> {
    let builder = if h2 {
        Request::builder()
            .uri(format!("http://{host}{path}"))
            .version(http::Version::HTTP_2)
    } else {
        Request::builder().uri(path).header("host", host)
    };
    builder.body(Full::new(Bytes::new())).unwrap()
}

async fn get(port: u16, host: &str, path: &str) -> Answer {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    send(stream, false, request(host, path, false)).await
}

async fn apply(control: &Control, table: v1::RouteTable) -> u64 {
    control
        .apply(table, None)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"))
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_h2c_forward_with_forwarding_headers_and_404_for_unknown_hosts() {
    let b1 = echo_backend("one").await;
    let port = free_port();
    let control = Control::new(None);
    apply(
        &control,
        v1::RouteTable {
            listeners: vec![http_listener("gw/http", port)],
            routes: vec![simple_route(
                "default/web",
                &["gw/http"],
                &["test.loxilb.gateway.http"],
                backend("one", b1),
            )],
            certificates: vec![],
        },
    )
    .await;
    let a = get(port, "test.loxilb.gateway.http", "/hello?x=1").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body.starts_with("backend one\nGET /hello?x=1 HTTP/1.1\n"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("\nx-forwarded-for: 127.0.0.1\n"),
        "{}",
        a.body
    );
    assert!(a.body.contains("\nx-forwarded-proto: http\n"), "{}", a.body);
    assert!(
        a.body
            .contains("\nx-forwarded-host: test.loxilb.gateway.http\n"),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("\nforwarded: for=127.0.0.1;proto=http;host=\"test.loxilb.gateway.http\"\n"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("\nhost: test.loxilb.gateway.http\n"),
        "{}",
        a.body
    );
    assert_eq!(a.headers["server"], "echo");

    // h2c with prior knowledge; the backend still gets HTTP/1.1 with a Host header.
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let a = send(
        stream,
        true,
        request("test.loxilb.gateway.http", "/h2", true),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.starts_with("backend one\nGET /h2 HTTP/1.1\n"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("\nhost: test.loxilb.gateway.http\n"),
        "{}",
        a.body
    );

    let a = get(port, "unknown.example", "/").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // Keep-alive: several requests on one client connection.
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    for i in 0..5 {
        sender.ready().await.unwrap();
        let r = sender
            .send_request(request(
                "test.loxilb.gateway.http",
                &format!("/k{i}"),
                false,
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let _ = r.into_body().collect().await.unwrap();
    }

    let text = control.metrics().render();
    assert!(
        text.contains("sluice_proxy_requests_total{route=\"default/web\",code=\"200\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("sluice_proxy_requests_total{route=\"\",code=\"404\"} 1\n"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_tables_keeps_in_flight_requests_and_moves_listeners() {
    let b1 = echo_backend("one").await;
    let b2 = echo_backend("two").await;
    let port = free_port();
    let port2 = free_port();
    let control = Control::new(None);
    let table = |to: v1::HttpBackend, port: u16| v1::RouteTable {
        listeners: vec![http_listener("gw/http", port)],
        routes: vec![simple_route("r", &["gw/http"], &[], to)],
        certificates: vec![],
    };
    apply(&control, table(backend("one", b1), port)).await;
    // A slow request in flight on backend one...
    let slow = tokio::spawn(get(port, "a.example", "/slow"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...while the table moves the route to backend two.
    apply(&control, table(backend("two", b2), port)).await;
    let a = get(port, "a.example", "/").await;
    assert!(a.body.starts_with("backend two\n"), "{}", a.body);
    let a = slow.await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.starts_with("backend one\nGET /slow"), "{}", a.body);

    // Moving the listener: the new port serves, the old one is closed.
    apply(&control, table(backend("two", b2), port2)).await;
    let a = get(port2, "a.example", "/").await;
    assert!(a.body.starts_with("backend two\n"), "{}", a.body);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "old port still open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failures_and_bad_versions_change_nothing() {
    let b1 = echo_backend("one").await;
    let port = free_port();
    let control = Control::new(None);
    let good = v1::RouteTable {
        listeners: vec![http_listener("gw/http", port)],
        routes: vec![simple_route("r", &["gw/http"], &[], backend("one", b1))],
        certificates: vec![],
    };
    assert_eq!(apply(&control, good.clone()).await, 1);
    // Unchanged table: same version, changed=false.
    assert_eq!(
        control.apply(good.clone(), Some(1)).await.unwrap(),
        (1, false)
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut bad = good.clone();
    bad.listeners.push(http_listener(
        "gw/taken",
        taken.local_addr().unwrap().port(),
    ));
    let err = control.apply(bad, None).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("table.listeners[1]: cannot listen on"),
        "{err}"
    );
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );
    let err = control.apply(good.clone(), Some(7)).await.unwrap_err();
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Aborted);
    assert_eq!(control.get().await, (good, 1));
    assert_eq!(get(port, "x", "/").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_answer_504_and_dead_backends_502() {
    let b1 = echo_backend("one").await;
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let control = Control::new(None);
    let mut timed = simple_route("timed", &["gw/http"], &[], backend("one", b1));
    timed.rules[0].backend_request_timeout = Some(prost_types::Duration {
        seconds: 0,
        nanos: 300_000_000,
    });
    timed.rules[0].matches = vec![v1::HttpRouteMatch {
        path: Some(v1::PathMatch {
            r#type: v1::PathMatchType::PathPrefix as i32,
            value: "/sleep2".into(),
        }),
        ..Default::default()
    }];
    let dead_route = simple_route(
        "dead",
        &["gw/http"],
        &["dead.example"],
        backend("dead", dead),
    );
    apply(
        &control,
        v1::RouteTable {
            listeners: vec![http_listener("gw/http", port)],
            routes: vec![timed, dead_route],
            certificates: vec![],
        },
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(
        get(port, "a", "/sleep2").await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        get(port, "dead.example", "/").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert!(control
        .metrics()
        .render()
        .contains("sluice_proxy_upstream_errors_total 2\n"));
}

/// Accepts any server certificate and remembers it.
#[derive(Debug, Default)]
struct Capture;

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

struct Tls {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl Tls {
    fn leaf(&self) -> Vec<u8> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }
    fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(|p| p.to_vec())
    }
}

async fn tls_connect(
    port: u16,
    sni: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Tls, std::io::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Capture))
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // An IP address as server name: rustls sends no SNI.
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Tls { stream })
}

fn cert(name: &str, sans: &[&str]) -> (v1::Certificate, Vec<u8>) {
    let generated =
        rcgen::generate_simple_self_signed(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let der = generated.cert.der().to_vec();
    (
        v1::Certificate {
            name: name.into(),
            cert_pem: generated.cert.pem().into_bytes(),
            key_pem: generated.signing_key.serialize_pem().into_bytes(),
        },
        der,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sni_selection_alpn_h2_rotation_and_tls_versions() {
    let b1 = echo_backend("one").await;
    let port = free_port();
    let (default_cert, default_der) =
        cert("kube-system/loxilb-ssl", &["test.loxilb.gateway.https"]);
    let (wild_cert, wild_der) = cert("default/wild", &["*.example.com"]);
    let (exact_cert, exact_der) = cert("default/exact", &["api.example.com"]);
    let https = v1::Listener {
        name: "gw/https".into(),
        address: "127.0.0.1".into(),
        port: port.into(),
        protocol: v1::ListenerProtocol::Https as i32,
        certificate_names: vec![
            default_cert.name.clone(),
            wild_cert.name.clone(),
            exact_cert.name.clone(),
        ],
        ..Default::default()
    };
    let table = |certs: Vec<v1::Certificate>| v1::RouteTable {
        listeners: vec![https.clone()],
        routes: vec![simple_route("r", &["gw/https"], &[], backend("one", b1))],
        certificates: certs,
    };
    let control = Control::new(None);
    apply(
        &control,
        table(vec![
            default_cert.clone(),
            wild_cert.clone(),
            exact_cert.clone(),
        ]),
    )
    .await;

    let tls13 = &[&rustls::version::TLS13][..];
    let tls12 = &[&rustls::version::TLS12][..];
    assert_eq!(
        tls_connect(port, "test.loxilb.gateway.https", tls13)
            .await
            .unwrap()
            .leaf(),
        default_der
    );
    assert_eq!(
        tls_connect(port, "www.example.com", tls13)
            .await
            .unwrap()
            .leaf(),
        wild_der
    );
    // Longest match: the exact name beats the wildcard.
    assert_eq!(
        tls_connect(port, "api.example.com", tls12)
            .await
            .unwrap()
            .leaf(),
        exact_der
    );
    // No SNI (IP address) and unknown names: the default (first) certificate.
    assert_eq!(
        tls_connect(port, "127.0.0.1", tls13).await.unwrap().leaf(),
        default_der
    );
    assert_eq!(
        tls_connect(port, "other.org", tls13).await.unwrap().leaf(),
        default_der
    );

    // ALPN h2 and a request over it.
    let tls = tls_connect(port, "test.loxilb.gateway.https", tls13)
        .await
        .unwrap();
    assert_eq!(tls.alpn().as_deref(), Some(&b"h2"[..]));
    let a = send(
        tls.stream,
        true,
        request("test.loxilb.gateway.https", "/secure", true),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains("\nx-forwarded-proto: https\n"),
        "{}",
        a.body
    );
    // And HTTP/1.1 when that is all the client offers.
    let tls = tls_connect(port, "test.loxilb.gateway.https", tls12)
        .await
        .unwrap();
    let a = send(
        tls.stream,
        false,
        request("test.loxilb.gateway.https", "/one", false),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    // Rotation: the same name with a new certificate is served on the next handshake.
    let (mut rotated, rotated_der) = cert("kube-system/loxilb-ssl", &["test.loxilb.gateway.https"]);
    rotated.name = default_cert.name.clone();
    apply(&control, table(vec![rotated, wild_cert, exact_cert])).await;
    assert_eq!(
        tls_connect(port, "test.loxilb.gateway.https", tls13)
            .await
            .unwrap()
            .leaf(),
        rotated_der
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_table_is_persisted_and_restored() {
    let b1 = echo_backend("one").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let table = v1::RouteTable {
        listeners: vec![http_listener("gw/http", port)],
        routes: vec![simple_route("r", &["gw/http"], &[], backend("one", b1))],
        certificates: vec![],
    };
    {
        let control = Control::new(Some(Store::open(dir.path()).unwrap()));
        apply(&control, table.clone()).await;
        control.stop_listeners().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let control = Control::new(Some(Store::open(dir.path()).unwrap()));
    control.restore().await.unwrap();
    assert_eq!(control.get().await, (table, 1));
    assert!(get(port, "x", "/").await.body.starts_with("backend one\n"));
    control.stop_listeners().await;

    // A corrupt file stops the start with an error naming it.
    std::fs::write(
        dir.path().join(sluice_proxy::store::FILE_NAME),
        b"\xff\xff\xff",
    )
    .unwrap();
    let control = Control::new(Some(Store::open(dir.path()).unwrap()));
    let err = control.restore().await.unwrap_err().to_string();
    assert!(err.contains("l7-route-table.pb is corrupt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_api_applies_gets_and_names_invalid_fields() {
    use sluice_proto::v1::l7_client::L7Client;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let control = Control::new(None);
    let listeners = sluice_proxy::api::ApiListeners {
        unix: Some(tokio::net::UnixListener::bind(&socket).unwrap()),
        tcp: None,
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(sluice_proxy::api::serve(
        control.clone(),
        listeners,
        stop_rx,
    ));
    let path = socket.clone();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(UnixConnect(path))
        .await
        .unwrap();
    let mut client = L7Client::new(channel);
    let port = free_port();
    let mut table = v1::RouteTable {
        listeners: vec![http_listener("gw/http", port)],
        routes: vec![],
        certificates: vec![],
    };
    let r = client
        .apply_route_table(v1::ApplyRouteTableRequest {
            table: Some(table.clone()),
            expected_version: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.version, r.changed), (1, true));
    let got = client
        .get_route_table(v1::GetRouteTableRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((got.table, got.version), (Some(table.clone()), 1));
    table.routes.push(v1::HttpRoute {
        name: "r".into(),
        listener_names: vec!["gw/http".into()],
        rules: vec![v1::HttpRouteRule {
            matches: vec![v1::HttpRouteMatch {
                path: Some(v1::PathMatch {
                    r#type: v1::PathMatchType::Exact as i32,
                    value: "no-slash".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    });
    let err = client
        .apply_route_table(v1::ApplyRouteTableRequest {
            table: Some(table),
            expected_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("table.routes[0].rules[0].matches[0].path.value: "),
        "{}",
        err.message()
    );
    let err = client
        .apply_route_table(v1::ApplyRouteTableRequest {
            table: None,
            expected_version: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::InvalidArgument, "table: required")
    );
}

/// Connects tonic to a Unix socket.
#[derive(Clone)]
struct UnixConnect(std::path::PathBuf);

type Connecting = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::io::Result<TokioIo<tokio::net::UnixStream>>> + Send>,
>;

impl tower_service::Service<http::Uri> for UnixConnect {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = Connecting;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: http::Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) })
    }
}

/// A backend that counts its connections; `/close` answers with `Connection: close`,
/// `/empty` with 204 and no body, anything else with "hello".
async fn counting_backend() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(b"hello")));
                    match req.uri().path() {
                        "/close" => {
                            resp.headers_mut()
                                .insert("connection", "close".parse().unwrap());
                        }
                        "/empty" => {
                            *resp.body_mut() = Full::new(Bytes::new());
                            *resp.status_mut() = StatusCode::NO_CONTENT;
                        }
                        _ => {}
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

// One thread, as one worker of the proxy: the backend pool is per worker thread (with N
// workers, sequential requests may open up to N backend connections).
#[tokio::test(flavor = "current_thread")]
async fn backend_connections_are_reused_and_replaced_when_the_backend_closes_them() {
    use std::sync::atomic::Ordering::SeqCst;
    let (b, accepted) = counting_backend().await;
    let port = free_port();
    let control = Control::new(None);
    apply(
        &control,
        v1::RouteTable {
            listeners: vec![http_listener("gw/http", port)],
            routes: vec![simple_route("pool", &["gw/http"], &[], backend("b", b))],
            certificates: vec![],
        },
    )
    .await;
    // Sequential requests (each on a new client connection) share one backend connection,
    // also after a response without a body.
    for path in ["/a", "/empty", "/b", "/empty", "/c"] {
        let answer = get(port, "pool.example", path).await;
        let expected = if path == "/empty" { "" } else { "hello" };
        assert_eq!(answer.body, expected, "{path}");
    }
    assert_eq!(accepted.load(SeqCst), 1);
    // The backend closes the connection after this answer: the next request gets a new one.
    let answer = get(port, "pool.example", "/close").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "hello")
    );
    assert!(answer
        .headers
        .get("connection")
        .is_none_or(|v| v != "close"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = get(port, "pool.example", "/d").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "hello")
    );
    assert_eq!(accepted.load(SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_handed_to_worker_threads_are_served() {
    let b = echo_backend("one").await;
    let port = free_port();
    let workers = sluice_proxy::workers::Workers::start(2).unwrap();
    let control = Control::with_workers(None, workers);
    apply(
        &control,
        v1::RouteTable {
            listeners: vec![http_listener("gw/http", port)],
            routes: vec![simple_route("w", &["gw/http"], &[], backend("one", b))],
            certificates: vec![],
        },
    )
    .await;
    for path in ["/a", "/b", "/c"] {
        let answer = get(port, "w.example", path).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            answer
                .body
                .starts_with(&format!("backend one\nGET {path} HTTP/1.1\n")),
            "{}",
            answer.body
        );
    }
    let metrics = control.metrics().render();
    assert!(
        metrics.contains("sluice_proxy_requests_total{route=\"w\",code=\"200\"} 3\n"),
        "{metrics}"
    );
}
