//! The admin HTTP endpoint, on a thread of its own (so a busy API or a scrape never competes
//! with the other): `/metrics` (Prometheus text), `/livez` (200 while the process runs) and
//! `/readyz` (200 once the ports are up, every worker runs and the first snapshot is
//! published; 503 otherwise, and again from the start of shutdown).
//!
//! A deliberately small HTTP/1.1 server over `std::net`: one request per connection, GET and
//! HEAD only, bounded request size and read time.

use controlplane::server::{metrics, Controller};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop checks the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// Readiness as the daemon sets it.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Ports up, workers launched, first snapshot published, API serving.
    started: AtomicBool,
    /// Shutdown began.
    stopping: AtomicBool,
}

impl Readiness {
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Ready to serve: started, not stopping, and every worker running.
    pub fn is_ready(&self, controller: &Controller) -> bool {
        self.started.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
            && controller
                .stats_source()
                .workers()
                .iter()
                .all(|w| w.running)
    }
}

/// The running admin server.
#[derive(Debug)]
pub struct AdminServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `address` and serves on a new thread.
    pub fn start(
        address: SocketAddr,
        controller: Controller,
        readiness: Arc<Readiness>,
    ) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("sluiced-admin".into())
                .spawn(move || serve(listener, &controller, &readiness, &stop))?
        };
        tracing::info!(%address, "admin HTTP endpoint listening (/metrics, /livez, /readyz)");
        Ok(AdminServer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the admin HTTP thread panicked");
            }
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(listener: TcpListener, controller: &Controller, readiness: &Readiness, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = handle(stream, controller, readiness) {
                    tracing::debug!(%peer, error = %e, "admin request failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "admin endpoint: accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// The method and path of a request head, if it is complete and well-formed.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    version.starts_with("HTTP/1.").then_some((method, target))
}

fn handle(mut stream: TcpStream, controller: &Controller, readiness: &Readiness) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                431,
                "text/plain",
                b"request too large\n",
                false,
            );
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let Some((method, target)) = request_line(&head) else {
        return respond(&mut stream, 400, "text/plain", b"bad request\n", false);
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            405,
            "text/plain",
            b"only GET and HEAD\n",
            false,
        );
    }
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => {
            let body = metrics::render(controller, readiness.is_ready(controller));
            respond(
                &mut stream,
                200,
                metrics::CONTENT_TYPE,
                body.as_bytes(),
                head_only,
            )
        }
        "/livez" => respond(&mut stream, 200, "text/plain", b"ok\n", head_only),
        "/readyz" => {
            if readiness.is_ready(controller) {
                respond(&mut stream, 200, "text/plain", b"ready\n", head_only)
            } else {
                respond(&mut stream, 503, "text/plain", b"not ready\n", head_only)
            }
        }
        _ => respond(&mut stream, 404, "text/plain", b"not found\n", head_only),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let header = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::request_line;

    #[test]
    fn request_lines_parse() {
        assert_eq!(
            request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(request_line(b"\xff\r\n\r\n"), None);
    }
}
