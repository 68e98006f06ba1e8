//! The accept loop: every TCP connection is admitted by the [`Gate`] (per-address and
//! total caps on connections that have not signed in), wrapped in TLS when configured
//! (with a handshake deadline), and served by hyper's HTTP/1 connection with a
//! header-read deadline, so a client that sends half a request is closed instead of
//! holding a socket for ever. Upgraded WebSockets leave here for `conn`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use tincan_protocol::ErrCode;

use crate::batched_io::BatchedIo;
use crate::gate::{Gate, Refusal, Ticket};
use crate::tls::TlsFiles;

/// Default deadline for a request's headers, and for a TLS handshake.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Refused connections that are still being told why (TLS handshake, then the 503).
/// Past this many, further refusals are closed without a word, so refusing cannot
/// itself use up the server's sockets.
const REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refused connection gets to receive its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long shutting down waits for HTTP connections (not WebSockets: `run` closes
/// those) to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the server's port is served: TLS, deadlines, and caps before sign-in.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Certificate and key; `None` serves plain HTTP / ws (loopback, or behind a proxy
    /// that terminates TLS).
    pub tls: Option<TlsFiles>,
    /// How often the certificate files are checked for changes.
    pub tls_reload_poll: Duration,
    /// Deadline for each request's headers (from the connection's start, or from the end
    /// of the previous request), and for the TLS handshake.
    pub header_timeout: Duration,
    /// Connections that have not signed in, per remote address (IPv6: per /64).
    pub max_unauthenticated_per_address: usize,
    /// Connections that have not signed in, in all; `None`: a quarter of
    /// `max_connections`, so signed-in users always keep the rest of the pool.
    pub max_unauthenticated: Option<usize>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            tls: None,
            tls_reload_poll: crate::tls::RELOAD_POLL,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_unauthenticated_per_address: crate::gate::DEFAULT_PER_ADDRESS,
            max_unauthenticated: None,
        }
    }
}

impl TransportConfig {
    /// The total cap on not-yet-signed-in connections for a pool of `max_connections`.
    pub fn unauthenticated_cap(&self, max_connections: usize) -> usize {
        self.max_unauthenticated
            .unwrap_or(max_connections / 4)
            .max(1)
    }
}

/// What each connection task needs.
pub(crate) struct Transport {
    pub gate: Arc<Gate>,
    pub tls: Option<TlsAcceptor>,
    pub header_timeout: Duration,
}

/// Accepts and serves connections until `shutdown` completes; then stops accepting,
/// lets HTTP connections finish their requests (bounded) and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) {
    let transport = Arc::new(transport);
    let refusing = Arc::new(AtomicUsize::new(0));
    // Connection tasks watch `stop_rx` for the shutdown and hold `done_tx` clones;
    // when every clone is gone, all connections have finished.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Signaling frames are small and latency-bound: Nagle's algorithm would hold each
        // one back until the previous one is acknowledged (~40 ms with delayed ACKs).
        let _ = tcp.set_nodelay(true);
        match transport.gate.admit(peer.ip()) {
            Ok(ticket) => {
                let (t, app, stop, done) = (
                    transport.clone(),
                    app.clone(),
                    stop_rx.clone(),
                    done_tx.clone(),
                );
                tokio::spawn(async move {
                    connection(tcp, peer, ticket, t, app, stop).await;
                    drop(done);
                });
            }
            Err(refusal) => {
                warn!(%peer, %refusal, "connection refused before sign-in");
                if refusing.fetch_add(1, Ordering::AcqRel) >= REFUSALS_IN_FLIGHT {
                    refusing.fetch_sub(1, Ordering::AcqRel);
                    continue; // dropped: closed without a word
                }
                let (t, n) = (transport.clone(), refusing.clone());
                tokio::spawn(async move {
                    refuse(tcp, &t, refusal).await;
                    n.fetch_sub(1, Ordering::AcqRel);
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv()).await;
}

/// Accept errors: a connection that failed before we took it is nobody's problem; out
/// of file descriptors (or similar) is logged, and accepting pauses briefly, because
/// retrying at once would spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    warn!(error = %e, "accept failed; pausing accepts for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One admitted connection: TLS (if configured) within the deadline, then HTTP.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    t: Arc<Transport>,
    app: Router,
    stop: watch::Receiver<bool>,
) {
    match &t.tls {
        None => http(BatchedIo::new(tcp), ticket, &t, app, stop).await,
        Some(acceptor) => {
            // Under TLS too: rustls writes a record per frame, so the batching matters
            // as much; its reads then come from one large `recv` as well.
            let tcp = BatchedIo::new(tcp);
            match tokio::time::timeout(t.header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => http(tls, ticket, &t, app, stop).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake not finished in time; closed"),
            }
        }
    }
}

/// Serves HTTP/1 on `io`; every request carries the connection's [`Ticket`], so an
/// upgraded WebSocket can give it back once it signs in.
async fn http<IO>(
    io: IO,
    ticket: Ticket,
    t: &Transport,
    app: Router,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ticket.clone());
        let mut app = app.clone();
        async move { tower_service::Service::call(&mut app, req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(t.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r { debug!(error = %e, "HTTP connection ended with an error"); }
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    // Shutting down: finish the request in progress, then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Tells a refused connection why (HTTP 503 with a coded JSON body), then closes it.
async fn refuse(tcp: TcpStream, t: &Transport, refusal: Refusal) {
    let body = serde_json::json!({
        "errCode": ErrCode::RateLimited.code(),
        "errMsg": refusal.to_string(),
        "data": null,
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        match &t.tls {
            None => write_and_close(tcp, response.as_bytes()).await,
            Some(acceptor) => {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    write_and_close(tls, response.as_bytes()).await;
                }
            }
        }
    };
    if tokio::time::timeout(t.header_timeout.min(REFUSAL_WRITE_TIMEOUT) * 2, write)
        .await
        .is_err()
    {
        debug!("refused connection did not take its 503 in time; closed");
    }
}

/// Writes the reply, then reads (and discards) what the client still sends until it
/// closes: closing with unread input would reset the connection, and the client might
/// lose the reply before reading it. The caller bounds the time.
async fn write_and_close<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, bytes: &[u8]) {
    if io.write_all(bytes).await.is_ok() && io.shutdown().await.is_ok() {
        let mut sink = [0u8; 1024];
        for _ in 0..64 {
            match tokio::io::AsyncReadExt::read(&mut io, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// Logs how the port is served.
pub(crate) fn log_transport(config: &TransportConfig, max_connections: usize) {
    info!(
        tls = config.tls.is_some(),
        header_timeout_s = config.header_timeout.as_secs_f64(),
        unauthenticated_per_address = config.max_unauthenticated_per_address,
        unauthenticated_total = config.unauthenticated_cap(max_connections),
        "transport"
    );
}
