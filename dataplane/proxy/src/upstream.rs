//! The backend client: HTTP/1.1 keep-alive connections pooled per endpoint, TCP_NODELAY, a
//! connect timeout, and a retry of requests that lost a race with a pooled connection being
//! closed by the backend.
//!
//! Our own pool of hyper `http1::SendRequest` handles instead of hyper-util's legacy
//! `Client`: that client does a lot per request (URI/pool-key parsing, a pool checkout future,
//! a spawned task to return the connection, Arc'd callbacks), which was the largest single
//! cost of the request path in profiles. Here a request is: pop the most recently used idle
//! connection of this thread's pool (LIFO keeps few connections hot; no lock: one pool per
//! worker thread), send; the connection goes back to the pool when the response body ends
//! (see `PooledBody`), without spawning anything.

use crate::fasthash::FastMap;
use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Idle connections are closed after 50-60 s: `IDLE_GENERATIONS` sweeps of `SWEEP_INTERVAL`
/// (below nginx's default keepalive_timeout of 75 s, so the proxy closes first and rarely
/// reuses a connection the backend is closing).
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);
const IDLE_GENERATIONS: u64 = 6;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
/// Response bodies of at most this many bytes (exact Content-Length) are waited for before
/// the response headers are passed on, so headers and body leave in one write.
const PREFETCH_MAX: u64 = 64 * 1024;

type Sender = http1::SendRequest<Incoming>;

/// Why a backend request failed (the proxy answers 502).
#[derive(Debug)]
pub enum UpstreamError {
    Connect(std::io::Error),
    ConnectTimeout,
    Http(hyper::Error),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect: {e}"),
            UpstreamError::ConnectTimeout => {
                write!(f, "connect: timed out after {CONNECT_TIMEOUT:?}")
            }
            UpstreamError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

struct Idle {
    sender: Sender,
    /// The pool's sweep generation when the connection became idle (no clock read per
    /// request: the sweeper's tick is the clock).
    since: u64,
}

/// The idle connections of one thread, per endpoint.
///
/// Per thread, not shared: every worker runs its own single-threaded runtime, and a backend
/// connection's task lives on the runtime that opened it, so a shared pool only added a lock
/// (and cross-thread cache-line traffic) to every request. With several workers each keeps
/// its own hot connections, as nginx's worker processes do.
#[derive(Default)]
struct Pool {
    idle: RefCell<FastMap<PoolKey, Vec<Idle>>>,
    /// Sweep ticks so far (the age unit of idle connections).
    generation: Cell<u64>,
    /// Set once this thread's sweeper task runs.
    sweeping: Cell<bool>,
}

/// An endpoint as a pool key: hashed as one string (`Authority` hashes byte by byte,
/// lowercasing each) and compared exactly (the table's endpoints are canonical).
#[derive(Clone, Debug)]
struct PoolKey(Authority);

impl PartialEq for PoolKey {
    fn eq(&self, other: &PoolKey) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PoolKey {}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes (the `Borrow<str>` lookups rely on it).
        self.0.as_str().hash(state);
    }
}

impl std::borrow::Borrow<str> for PoolKey {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

thread_local! {
    static POOL: Pool = Pool::default();
}

impl Pool {
    fn expired(&self, entry: &Idle) -> bool {
        self.generation.get().saturating_sub(entry.since) >= IDLE_GENERATIONS
            || entry.sender.is_closed()
    }

    fn checkout(&self, endpoint: &Authority) -> Option<Sender> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(endpoint.as_str())?;
        // Most recently used first (LIFO keeps few connections hot).
        while let Some(entry) = list.pop() {
            if !self.expired(&entry) {
                return Some(entry.sender);
            }
        }
        None
    }

    fn checkin(&self, endpoint: Authority, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        {
            let mut idle = self.idle.borrow_mut();
            let list = idle.entry(PoolKey(endpoint)).or_default();
            if list.len() >= MAX_IDLE_PER_ENDPOINT {
                return;
            }
            list.push(Idle {
                sender,
                since: self.generation.get(),
            });
        }
        if !self.sweeping.replace(true) {
            start_sweeper();
        }
    }

    /// One sweeper tick: closes the idle connections past the idle timeout (dropping the
    /// handle ends the connection task, which closes the socket).
    fn sweep(&self) {
        self.generation.set(self.generation.get() + 1);
        let expired: Vec<Idle> = {
            let mut idle = self.idle.borrow_mut();
            let mut expired = Vec::new();
            idle.retain(|_, list| {
                // Oldest at the front.
                let keep_from = list
                    .iter()
                    .position(|e| !self.expired(e))
                    .unwrap_or(list.len());
                expired.extend(list.drain(..keep_from));
                // A closed connection in the middle is skipped at checkout.
                !list.is_empty()
            });
            expired
        };
        // Dropped outside the borrow (dropping may run connection code).
        drop(expired);
    }
}

/// Starts the idle sweeper of the current thread's pool on the current runtime. On a
/// worker's single-threaded runtime the task always runs on that thread, so it sweeps the
/// pool it was started for; elsewhere (tests: a multi-threaded runtime) it sweeps the pool
/// of whichever thread runs it, which is still correct, only less precise.
fn start_sweeper() {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        POOL.with(|p| p.sweeping.set(false));
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            POOL.with(Pool::sweep);
        }
    });
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle = self.idle.borrow();
        f.debug_struct("Pool")
            .field("idle", &idle.values().map(Vec::len).sum::<usize>())
            .finish()
    }
}

/// The backend client (the pool itself is per thread, see `Pool`).
#[derive(Clone, Debug, Default)]
pub struct Upstream {}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream::default()
    }

    /// Sends `request` (origin-form URI) to `endpoint` over a pooled connection, or a new one.
    /// A request that could not be written on a pooled connection (closed by the backend in
    /// the meantime) is retried on the next one, finally on a fresh connection.
    pub async fn send(
        &self,
        endpoint: &Authority,
        mut request: Request<Incoming>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        while let Some(mut sender) = POOL.with(|p| p.checkout(endpoint)) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.pooled(endpoint, sender, response)),
                Err(mut e) => match e.take_message() {
                    // Not written: the connection was closing; try the next one.
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
        let mut sender = connect(endpoint).await?;
        match sender.send_request(request).await {
            Ok(response) => Ok(self.pooled(endpoint, sender, response)),
            Err(e) => Err(UpstreamError::Http(e)),
        }
    }

    fn pooled(
        &self,
        endpoint: &Authority,
        sender: Sender,
        response: Response<Incoming>,
    ) -> Response<PooledBody> {
        response.map(|body| {
            let mut body = PooledBody {
                body,
                first: None,
                ret: Some((endpoint.clone(), sender)),
            };
            // Bodyless responses (204, 304, HEAD, Content-Length: 0) may never be polled.
            if body.body.is_end_stream() {
                body.release();
            }
            body
        })
    }
}

async fn connect(endpoint: &Authority) -> Result<Sender, UpstreamError> {
    let port = endpoint.port_u16().unwrap_or(80);
    let host = endpoint.host();
    // `host()` keeps an IPv6 literal's brackets.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout)?
        .map_err(UpstreamError::Connect)?;
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(UpstreamError::Http)?;
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%endpoint, error = %e, "backend connection ended with an error");
        }
    });
    Ok(sender)
}

/// A backend response body that returns its connection to the pool once it has been read to
/// the end (a body dropped early closes the connection instead: it may have unread data).
pub struct PooledBody {
    body: Incoming,
    /// A frame read ahead by `prefetch`, served first.
    first: Option<Frame<Bytes>>,
    /// Where the connection goes back to (the pool of the thread that reads the body to
    /// the end: the connection's own worker).
    ret: Option<(Authority, Sender)>,
}

impl PooledBody {
    /// Reads the first frame of a small body (exact length up to `PREFETCH_MAX`) ahead.
    ///
    /// Why: hyper's server writes the response head as soon as it has it and the body when
    /// its first frame arrives from the backend connection's task, i.e. two writes (two
    /// segments, two wake-ups of the client) per response. With the frame already here, the
    /// server sends head and body in one write, as nginx does. Streaming bodies (no or a
    /// large length) are not waited for.
    pub async fn prefetch(&mut self) -> Result<(), hyper::Error> {
        let small = matches!(self.body.size_hint().exact(), Some(n) if n <= PREFETCH_MAX);
        if self.first.is_some() || self.body.is_end_stream() || !small {
            return Ok(());
        }
        match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await {
            Some(Ok(frame)) => {
                self.first = Some(frame);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    fn release(&mut self) {
        if let Some((endpoint, sender)) = self.ret.take() {
            // A thread being torn down has no pool any more: the connection just closes.
            let _ = POOL.try_with(|p| p.checkin(endpoint, sender));
        }
    }
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody").finish_non_exhaustive()
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(frame) = this.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            // A server stops polling once `is_end_stream` says so (Content-Length reached).
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.ret = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = match self.first.as_ref().and_then(Frame::data_ref) {
            Some(data) => data.len() as u64,
            None => return self.body.size_hint(),
        };
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}
