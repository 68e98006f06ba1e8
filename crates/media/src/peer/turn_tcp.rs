//! TURN over TCP and TLS for a stack that reaches TURN servers only over UDP.
//!
//! webrtc-rs 0.21 skips every TURN URL that is not plain UDP (its turn_relayer.rs:
//! "Skipping unsupported non-UDP TURN url", and `turns:`), so behind a firewall that
//! lets only TCP out — offices, hotels, some mobile carriers — a call found no path at
//! all. Each `turn:…?transport=tcp` and `turns:` URL is therefore handed to the stack as
//! a UDP TURN server on loopback, a **bridge**, which carries every datagram the stack
//! sends it over a TCP (or TLS) connection to the real server and every message from
//! the server back as one datagram. The stack does all of TURN (allocation, credentials, message integrity,
//! refreshes, permissions, channels); the bridge never reads what it carries beyond the
//! length that frames it.
//!
//! One TCP connection per local socket of the stack: on TCP a TURN allocation belongs to
//! its connection (RFC 8656 §2.1), as on UDP it belongs to the socket's 5-tuple, so each
//! of the stack's sockets keeps an allocation of its own. A connection that ends is
//! forgotten; the socket's next datagram opens another.
//!
//! The framing (`framing.rs`) is plain code with unit tests; the tasks here own the
//! sockets. The bridge lives as long as its peer connection
//! ([`Bridges`] aborts its tasks when dropped).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rtc::ice::url::{ProtoType, SchemeType, Url};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCIceServer;

use super::IceServer;
use framing::{to_stream, Framer, MAX_MESSAGE};

mod framing;

/// Datagrams waiting for one connection (while it connects, or behind a slow one).
/// Full: the datagram is dropped, as a congested UDP path would drop it; the stack
/// retransmits what it must (TURN requests) and media tolerates loss.
const LINK_QUEUE: usize = 256;

/// Connections one bridge keeps at most: one per local socket of the stack (one per
/// interface, new ones after each ICE restart). Datagrams from further sources are
/// dropped, so no local process can make the bridge open connections without bound.
const MAX_LINKS: usize = 16;

/// How long opening the connection to the TURN server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one write to the TURN server may wait for room. A server that takes
/// nothing for this long has lost the connection for us; it is closed, so the link
/// does not outlive its bridge blocked in a write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bridges of one peer connection; dropping it stops them and closes their
/// connections (the TURN server then frees their allocations).
#[derive(Default)]
pub(crate) struct Bridges {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Bridges {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where a bridge connects: a TURN URL the stack cannot use itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamTurn {
    host: String,
    port: u16,
    /// `turns:`: TLS over the TCP connection, the server's certificate checked for `host`.
    pub(super) tls: bool,
}

impl StreamTurn {
    /// `Some` for `turn:…?transport=tcp` and `turns:` (TLS over TCP); `None` for what
    /// the stack handles itself (`turn:` over UDP, STUN) or cannot be carried on a
    /// stream (`turns:…?transport=udp` would be DTLS).
    pub(crate) fn from_url(url: &str) -> Option<StreamTurn> {
        let parsed = Url::parse_url(url).ok()?;
        let tls = match (parsed.scheme, parsed.proto) {
            (SchemeType::Turn, ProtoType::Tcp) => false,
            (SchemeType::Turns, ProtoType::Tcp) => true,
            _ => return None,
        };
        Some(StreamTurn {
            host: parsed.host,
            port: parsed.port,
            tls,
        })
    }
}

/// `servers` as the stack gets them: every TURN URL over TCP or TLS replaced by a
/// bridge's. One that cannot be bridged (no loopback; `turns:` without `tls`) is left
/// out with a warning: the stack would have skipped it anyway.
pub(crate) async fn bridged(
    servers: &[IceServer],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> (Vec<RTCIceServer>, Bridges) {
    let mut bridges = Bridges::default();
    let mut out = Vec::with_capacity(servers.len());
    for server in servers {
        let mut urls = Vec::with_capacity(server.urls.len());
        for url in &server.urls {
            let Some(turn) = StreamTurn::from_url(url) else {
                urls.push(url.clone());
                continue;
            };
            let tls = match (turn.tls, tls) {
                (false, _) => None,
                (true, Some(config)) => Some(config.clone()),
                (true, None) => {
                    tracing::warn!(%url, "TURN over TLS: no trust settings; left out");
                    continue;
                }
            };
            match bridges.add(turn, tls).await {
                Ok(local) => urls.push(local),
                Err(e) => tracing::warn!(%url, error = %e, "TURN over TCP/TLS: no bridge"),
            }
        }
        out.push(RTCIceServer {
            urls,
            username: server.username.clone(),
            credential: server.credential.clone(),
        });
    }
    (out, bridges)
}

impl Bridges {
    /// Starts a bridge for `server` and returns the URL to give the stack instead.
    /// `tls` is set exactly when `server.tls` is.
    pub(crate) async fn add(
        &mut self,
        server: StreamTurn,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> std::io::Result<String> {
        let udp = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?);
        let port = udp.local_addr()?.port();
        tracing::debug!(host = %server.host, server.port, tls = server.tls, port, "TURN over TCP/TLS bridged");
        let target = Target {
            server,
            tls: tls.map(tokio_rustls::TlsConnector::from),
        };
        self.tasks.push(tokio::spawn(crate::census::task(bridge(
            udp,
            Arc::new(target),
        ))));
        Ok(format!("turn:127.0.0.1:{port}?transport=udp"))
    }
}

/// A bridge's server and how to speak to it.
struct Target {
    server: StreamTurn,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Target {
    /// Opens the connection (and TLS over it), bounded by [`CONNECT_TIMEOUT`].
    async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let server = &self.server;
        let open = async {
            let tcp = TcpStream::connect((server.host.as_str(), server.port))
                .await
                .map_err(|e| e.to_string())?;
            // Media: small writes must not wait for more to fill a segment.
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(Box::new(tcp) as Box<dyn Stream>);
            };
            let name = rustls_pki_types::ServerName::try_from(server.host.clone())
                .map_err(|e| format!("not a server name: {e}"))?;
            let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer in {CONNECT_TIMEOUT:?}")),
        }
    }
}

/// A connection to a TURN server, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// Reads the stack's datagrams and hands each to its source's connection.
async fn bridge(udp: Arc<UdpSocket>, server: Arc<Target>) {
    let mut links: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE + 4];
    let mut refused = false;
    loop {
        let (n, from) = match udp.recv_from(&mut buf).await {
            Ok(got) => got,
            // An ICMP error from a previous send_to surfaces here; the socket is fine.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => {
                tracing::warn!(error = %e, "TURN over TCP/TLS: the bridge stops");
                return;
            }
        };
        let datagram = match to_stream(&buf[..n]) {
            Ok(d) => d.into_owned(),
            Err(e) => {
                tracing::debug!(error = %e, "TURN over TCP/TLS: datagram dropped");
                continue;
            }
        };
        links.retain(|_, link| !link.is_closed());
        if !links.contains_key(&from) {
            if links.len() >= MAX_LINKS {
                if !refused {
                    tracing::warn!(
                        max = MAX_LINKS,
                        "TURN over TCP/TLS: too many local sockets; datagrams from more are dropped"
                    );
                    refused = true;
                }
                continue;
            }
            let (tx, rx) = mpsc::channel(LINK_QUEUE);
            tokio::spawn(crate::census::task(link(
                server.clone(),
                rx,
                udp.clone(),
                from,
            )));
            links.insert(from, tx);
        }
        let _ = links[&from].try_send(datagram);
    }
}

/// One local socket's connection to the TURN server: writes what the socket sends,
/// and sends it back what the server says, message by message.
async fn link(
    target: Arc<Target>,
    mut out: mpsc::Receiver<Vec<u8>>,
    udp: Arc<UdpSocket>,
    to: SocketAddr,
) {
    let stream = match target.connect().await {
        Ok(s) => s,
        Err(e) => {
            let server = &target.server;
            tracing::info!(host = %server.host, server.port, tls = server.tls, error = %e, "TURN over TCP/TLS: cannot connect");
            return;
        }
    };
    let (mut read, mut write) = tokio::io::split(stream);
    // Each direction on its own task, so a slow write never holds up what comes back.
    let mut reader = tokio::spawn(crate::census::task(async move {
        let mut framer = Framer::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            framer.push(&buf[..n]);
            loop {
                match framer.next_message() {
                    Ok(Some(message)) => {
                        let _ = udp.send_to(&message, to).await;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "TURN over TCP/TLS: the server's stream is not TURN; closing it");
                        return;
                    }
                }
            }
        }
    }));
    while let Some(datagram) = tokio::select! {
        d = out.recv() => d,
        // The server closed (or spoke nonsense): stop writing, so the bridge forgets
        // this link and the socket's next datagram connects afresh.
        _ = &mut reader => None,
    } {
        // TLS buffers what it encrypts: flush each datagram, as UDP would send it.
        let sent = async {
            write.write_all(&datagram).await?;
            write.flush().await
        };
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, sent).await, Ok(Ok(()))) {
            break;
        }
    }
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::framing::tests::{channel_data, stun};
    use super::*;

    #[test]
    fn turn_over_tcp_and_tls_is_bridged_and_nothing_else() {
        let turn = |host: &str, port, tls| {
            Some(StreamTurn {
                host: host.into(),
                port,
                tls,
            })
        };
        let bridged = [
            (
                "turn:turn.example.org:3478?transport=tcp",
                turn("turn.example.org", 3478, false),
            ),
            (
                "turn:[2001:db8::1]?transport=tcp",
                turn("2001:db8::1", 3478, false),
            ),
            (
                "turns:turn.example.org",
                turn("turn.example.org", 5349, true),
            ),
            (
                "turns:turn.example.org:443?transport=tcp",
                turn("turn.example.org", 443, true),
            ),
        ];
        for (url, want) in bridged {
            assert_eq!(StreamTurn::from_url(url), want, "{url}");
        }
        for url in [
            "turn:turn.example.org:3478",
            "turn:turn.example.org?transport=udp",
            "turns:turn.example.org?transport=udp",
            "stun:turn.example.org",
            "not a url",
        ] {
            assert_eq!(StreamTurn::from_url(url), None, "{url}");
        }
    }

    /// Bounded waits for the socket tests below.
    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing within 10 s"))
    }

    async fn read_exactly(conn: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        within("read from the bridge", conn.read_exact(&mut got))
            .await
            .unwrap();
        got
    }

    #[tokio::test]
    async fn a_bridge_carries_each_sockets_datagrams_on_a_connection_of_its_own() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut bridges = Bridges::default();
        let turn = StreamTurn {
            host: "127.0.0.1".into(),
            port: server.local_addr().unwrap().port(),
            tls: false,
        };
        let url = bridges.add(turn, None).await.unwrap();
        let bridge = Url::parse_url(&url).unwrap();
        assert_eq!(
            (bridge.host.as_str(), bridge.proto),
            ("127.0.0.1", ProtoType::Udp)
        );
        let to = (Ipv4Addr::LOCALHOST, bridge.port);
        let (one, two) = (
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        );

        // Socket one's datagram opens a connection and arrives padded.
        one.send_to(&channel_data(5), to).await.unwrap();
        let (mut first, _) = within("a connection", server.accept()).await.unwrap();
        let framed = to_stream(&channel_data(5)).unwrap().into_owned();
        assert_eq!(read_exactly(&mut first, framed.len()).await, framed);
        // Socket two gets a connection of its own.
        two.send_to(&stun(8), to).await.unwrap();
        let (mut second, _) = within("a second connection", server.accept())
            .await
            .unwrap();
        assert_eq!(read_exactly(&mut second, 28).await, stun(8));

        // What the server says on a connection comes back to its socket, one message
        // per datagram, without the stream's padding.
        let mut reply = to_stream(&channel_data(3)).unwrap().into_owned();
        reply.extend_from_slice(&stun(4));
        first.write_all(&reply).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = within("a datagram", one.recv_from(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], channel_data(3).as_slice());
        let (n, _) = within("a datagram", one.recv_from(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], stun(4).as_slice());

        // A connection the server closes is forgotten: the socket's next datagram
        // opens another.
        drop(first);
        let mut third = None;
        for _ in 0..50 {
            one.send_to(&stun(0), to).await.unwrap();
            let accept = tokio::time::timeout(Duration::from_millis(200), server.accept());
            if let Ok(Ok((conn, _))) = accept.await {
                third = Some(conn);
                break;
            }
        }
        let mut third = third.expect("a new connection after the old one closed");
        assert_eq!(read_exactly(&mut third, 20).await, stun(0));

        // Dropped with its peer connection: the connections close.
        drop(bridges);
        let mut rest = Vec::new();
        let n = within("the bridge closes", second.read_to_end(&mut rest))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
