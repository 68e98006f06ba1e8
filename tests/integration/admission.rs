//! Unauthenticated exhaustion: half-sent headers time out, and connections that have not
//! signed in are capped per address and in all, so they cannot lock others out.

use std::net::SocketAddr;
use std::time::Duration;

use tincan_server::{ServerConfig, TransportConfig};
use tincan_tests::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Upper bound on any wait here; the waits end on events long before.
const LIMIT: Duration = Duration::from_secs(20);

fn config(transport: TransportConfig) -> ServerConfig {
    ServerConfig {
        transport,
        ..ServerConfig::default()
    }
}

/// A TCP connection to `server` from the loopback address `from` (Linux routes all of
/// 127.0.0.0/8 to lo, so each is a distinct client address).
async fn tcp_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from}:0").parse().unwrap())
        .expect("bind a loopback source address");
    socket.connect(server).await.expect("connect")
}

/// Reads until the server closes; returns what it sent.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(LIMIT, tcp.read(&mut buf)).await {
            Err(_) => panic!("the server did not close the connection within {LIMIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Opens a WebSocket from `from` without signing in; `Err` holds the refusal's text.
async fn ws_from(
    from: &str,
    server: SocketAddr,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, tokio_tungstenite::tungstenite::Error> {
    let tcp = tcp_from(from, server).await;
    tokio_tungstenite::client_async(format!("ws://{server}/ws"), tcp)
        .await
        .map(|(ws, _)| ws)
}

#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(config(TransportConfig {
        header_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    }))
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTT").await.unwrap();
    let t0 = std::time::Instant::now();
    read_to_close(&mut tcp).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "closed too early: {:?}",
        t0.elapsed()
    );
    // A whole request on a fresh connection is still served.
    let mut ok = TcpStream::connect(server.addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut ok).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn unauthenticated_connections_are_capped_per_address_with_a_coded_503() {
    let server = TestServer::start_with(config(TransportConfig {
        max_unauthenticated_per_address: 3,
        ..TransportConfig::default()
    }))
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from("127.0.0.2", server.addr).await);
    }
    let mut fourth = tcp_from("127.0.0.2", server.addr).await;
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut fourth).await;
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(
        reply.contains("\"errCode\":1006")
            && reply.contains("too many connections from your address"),
        "{reply}"
    );
    // Another address is not affected, and signs in.
    let alice = server.peer("alice", "a1").await;
    drop(alice);
    // Closing one of the held connections makes room again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..200 {
        let mut c = tcp_from("127.0.0.2", server.addr).await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let r = read_to_close(&mut c).await;
        if r.starts_with("HTTP/1.1 200") {
            again = Some(r);
            break;
        }
        // The server has not yet seen the close; it is already on its way.
        tokio::task::yield_now().await;
    }
    assert!(
        again.is_some(),
        "a freed place is given to the next connection"
    );
}

#[tokio::test]
async fn a_websocket_that_signs_in_gives_its_place_back() {
    let server = TestServer::start_with(config(TransportConfig {
        max_unauthenticated_per_address: 2,
        ..TransportConfig::default()
    }))
    .await;
    // Five signed-in devices from one address: each counted only until it signed in.
    let mut peers = Vec::new();
    for i in 0..5 {
        peers.push(server.peer("alice", &format!("a{i}")).await);
    }
    // Two that never sign in fill the address's places; a third is refused.
    let _w1 = ws_from("127.0.0.1", server.addr).await.expect("first");
    let _w2 = ws_from("127.0.0.1", server.addr).await.expect("second");
    let refused = ws_from("127.0.0.1", server.addr).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(resp) = refused else {
        panic!("expected an HTTP refusal, got {refused:?}")
    };
    assert_eq!(resp.status().as_u16(), 503);
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    assert!(body.contains("\"errCode\":1006"), "{body}");
}

#[tokio::test]
async fn one_client_that_never_signs_in_cannot_lock_others_out() {
    // Before: WebSockets that never signed in took every place in the pool and alice was
    // refused (one client locked a user out 19 of 21 times).
    let server = TestServer::start_with(ServerConfig {
        max_connections: 40,
        transport: TransportConfig {
            max_unauthenticated_per_address: 4,
            ..TransportConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut hostile = Vec::new();
    for _ in 0..40 {
        if let Ok(ws) = ws_from("127.0.0.2", server.addr).await {
            hostile.push(ws);
        }
    }
    assert_eq!(hostile.len(), 4, "the per-address cap");
    let alice = server.peer("alice", "a1").await;
    let bob = server.peer("bob", "b1").await;
    drop((alice, bob, hostile));
}

#[tokio::test]
async fn unauthenticated_sockets_get_only_their_share_of_the_pool() {
    // Spread over many addresses, they still hold at most a quarter of the pool, so
    // signed-in users keep the rest.
    let server = TestServer::start_with(ServerConfig {
        max_connections: 40,
        transport: TransportConfig {
            max_unauthenticated_per_address: 4,
            ..TransportConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut hostile = Vec::new();
    let mut refusals = Vec::new();
    for i in 0..8 {
        for _ in 0..4 {
            match ws_from(&format!("127.0.1.{}", i + 1), server.addr).await {
                Ok(ws) => hostile.push(ws),
                Err(e) => refusals.push(e),
            }
        }
    }
    assert_eq!(hostile.len(), 10, "a quarter of 40 places");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = &refusals[0] else {
        panic!("expected an HTTP refusal, got {:?}", refusals[0])
    };
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.contains("the server has too many connections that have not signed in"),
        "{body}"
    );
    // Once some of them go, others can sign in again.
    drop(hostile.drain(..5));
    let mut alice = None;
    for _ in 0..200 {
        let dev = tincan_sdk::DeviceInfo::random_linux();
        match tincan_sdk::connect_with(
            &server.url,
            &server.token("alice"),
            dev,
            tincan_tests::no_reconnect(),
        )
        .await
        {
            Ok(c) => {
                alice = Some(c);
                break;
            }
            // The server has not yet seen the closes; they are on their way.
            Err(_) => tokio::task::yield_now().await,
        }
    }
    assert!(alice.is_some(), "alice signs in once places are free");
}
