//! The listening sockets: bound and unbound as tables change, one accept loop per socket,
//! TLS per connection when the socket is HTTPS, and HTTP/1.1 or HTTP/2 on each connection
//! (ALPN on TLS; prior-knowledge h2c is detected on plain sockets).
//!
//! New sockets are bound before a table is committed, so a port that cannot be bound fails
//! the apply and changes nothing. A removed socket stops accepting at once; its open
//! connections finish the requests in flight and are then closed (graceful shutdown).

use crate::proxy::{handle, ConnInfo, Context, HEADER_READ_TIMEOUT};
use crate::table::{Protocol, SocketKey, Table};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

const BACKLOG: i32 = 4096;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sockets bound for a table about to be committed.
#[derive(Debug)]
pub struct Bound {
    key: SocketKey,
    sockets: Vec<TcpListener>,
}

#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
}

/// Bind failure of one socket.
#[derive(Debug)]
pub struct BindError {
    pub key: SocketKey,
    pub error: std::io::Error,
}

#[derive(Debug)]
pub struct Listeners {
    ctx: Arc<Context>,
    running: HashMap<SocketKey, Running>,
}

fn bind_one(addr: SocketAddr, v6_only: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol as P, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(P::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(v6_only)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Binds a socket key: one address, or every address (IPv4 and, where the host has IPv6, v6).
pub fn bind(key: SocketKey) -> std::io::Result<Vec<TcpListener>> {
    match key.address {
        Some(address) => Ok(vec![bind_one(SocketAddr::new(address, key.port), false)?]),
        None => {
            let mut sockets = vec![bind_one(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), key.port),
                false,
            )?];
            match bind_one(
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), key.port),
                true,
            ) {
                Ok(s) => sockets.push(s),
                Err(e) => tracing::debug!(port = key.port, error = %e, "no IPv6 wildcard listener"),
            }
            Ok(sockets)
        }
    }
}

impl Listeners {
    pub fn new(ctx: Arc<Context>) -> Listeners {
        Listeners {
            ctx,
            running: HashMap::new(),
        }
    }

    /// Binds the sockets `table` needs that are not bound yet. Nothing changes on error (the
    /// sockets bound so far are closed again).
    pub fn prepare(&self, table: &Table) -> Result<Vec<Bound>, BindError> {
        let mut keys: Vec<SocketKey> = table
            .sockets
            .keys()
            .filter(|k| !self.running.contains_key(k))
            .copied()
            .collect();
        keys.sort();
        let mut bound = Vec::new();
        for key in keys {
            match bind(key) {
                Ok(sockets) => bound.push(Bound { key, sockets }),
                Err(error) => return Err(BindError { key, error }),
            }
        }
        Ok(bound)
    }

    /// Starts accepting on the new sockets and stops the ones `table` no longer has. Call
    /// after the table is published.
    pub fn commit(&mut self, table: &Table, bound: Vec<Bound>) {
        for Bound { key, sockets } in bound {
            let (stop, _) = watch::channel(false);
            for socket in sockets {
                if let Ok(local) = socket.local_addr() {
                    tracing::info!(%local, "listening");
                }
                tokio::spawn(accept_loop(self.ctx.clone(), key, socket, stop.subscribe()));
            }
            self.running.insert(key, Running { stop });
        }
        let removed: Vec<SocketKey> = self
            .running
            .keys()
            .filter(|k| !table.sockets.contains_key(k))
            .copied()
            .collect();
        for key in removed {
            if let Some(running) = self.running.remove(&key) {
                tracing::info!(socket = %key, "closing listener");
                let _ = running.stop.send(true);
            }
        }
    }

    /// Stops every listener; open connections finish their requests and close.
    pub fn stop_all(&mut self) {
        for (_, running) in self.running.drain() {
            let _ = running.stop.send(true);
        }
    }

    pub fn bound_sockets(&self) -> usize {
        self.running.len()
    }
}

async fn accept_loop(
    ctx: Arc<Context>,
    key: SocketKey,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let mut tls_acceptor: Option<tokio_rustls::TlsAcceptor> = None;
    loop {
        let accepted = tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(socket = %key, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The protocol of a socket can change with the table (HTTP <-> HTTPS on one port).
        let protocol = ctx.table.load().sockets.get(&key).map(|s| s.protocol);
        let Some(protocol) = protocol else { continue };
        ctx.metrics.connections_total.fetch_add(1, Relaxed);
        let info = Arc::new(ConnInfo::new(ctx.clone(), key, peer, protocol));
        let stop = stop.clone();
        let tls = match protocol {
            Protocol::Http => None,
            // One ServerConfig per socket: its resolver reads the table in force at each
            // handshake, so certificates rotate without rebuilding it.
            Protocol::Https => Some(
                tls_acceptor
                    .get_or_insert_with(|| {
                        tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
                            key,
                            ctx.table.clone(),
                        ))
                    })
                    .clone(),
            ),
        };
        let ctx = ctx.clone();
        match ctx.workers.next().cloned() {
            None => {
                tokio::spawn(connection(ctx, info, stream, tls, stop));
            }
            // The socket moves to the worker's runtime (its reactor then polls it).
            Some(worker) => match stream.into_std() {
                Ok(stream) => {
                    worker.spawn(async move {
                        match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => connection(ctx, info, stream, tls, stop).await,
                            Err(e) => {
                                tracing::warn!(%peer, error = %e, "cannot register a connection")
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker"),
            },
        }
    }
}

/// One client connection: the TLS handshake if any, then HTTP.
async fn connection(
    ctx: Arc<Context>,
    info: Arc<ConnInfo>,
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        return serve(ctx, info, stream, stop).await;
    };
    let peer = info.peer;
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve(ctx, info, tls, stop).await,
        Ok(Err(e)) => {
            ctx.metrics.tls_handshake_errors.fetch_add(1, Relaxed);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            ctx.metrics.tls_handshake_errors.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "TLS handshake timed out");
        }
    }
}

/// Counts a connection as active while alive.
struct ActiveGuard(Arc<Context>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.metrics.connections_active.fetch_sub(1, Relaxed);
    }
}

async fn serve<S>(ctx: Arc<Context>, info: Arc<ConnInfo>, io: S, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    ctx.metrics.connections_active.fetch_add(1, Relaxed);
    let _active = ActiveGuard(ctx.clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let peer = info.peer;
    let service = hyper::service::service_fn(move |request| handle(info.clone(), request));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
