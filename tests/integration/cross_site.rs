//! Cross-site requests and DNS rebinding: a web page the user visits can make the browser
//! talk to a server on the user's machine. The server refuses what only a browser sends
//! (an `Origin` it does not list, a `Host` that is not its own name, a body that is not
//! declared JSON), and native clients, which send no `Origin`, keep working.

use std::time::Duration;

use serde_json::Value;
use tincan_server::store::Store;
use tincan_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Error as WsError;

/// Longest a raw exchange may take; the server answers at once.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest reply read; every reply here is a small JSON envelope.
const MAX_REPLY: usize = 64 * 1024;

/// An HTTP reply: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

/// Sends `head` (request line and headers, without the blank line) and `body` on a fresh
/// connection, with `Connection: close`, and reads the whole reply.
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &str) -> Reply {
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let run = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("send");
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
            assert!(
                bytes.len() <= MAX_REPLY,
                "reply larger than {MAX_REPLY} bytes"
            );
        }
        bytes
    };
    let bytes = tokio::time::timeout(EXCHANGE_TIMEOUT, run)
        .await
        .expect("the server answers and closes");
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head:?}"));
    Reply {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn register_body(user: &str) -> String {
    format!(r#"{{"userID":"{user}","password":"secret123"}}"#)
}

/// A POST to `path` with `headers` (each `Name: value`) and a JSON body.
async fn post(s: &TestServer, path: &str, headers: &[&str], body: &str) -> Reply {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {}", s.addr);
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    exchange(s.addr, &head, body).await
}

/// Opens `/ws` with extra headers; `Ok(())` when upgraded, else the refusal's status and body.
async fn upgrade(s: &TestServer, headers: &[(&str, &str)]) -> Result<(), Reply> {
    let mut request = format!("ws://{}/ws", s.addr)
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let result = tokio::time::timeout(EXCHANGE_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the server answers the upgrade");
    match result {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => Err(Reply {
            status: response.status().as_u16(),
            body: response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null),
        }),
        Err(e) => panic!("the upgrade failed without an HTTP answer: {e}"),
    }
}

fn assert_refused(r: &Reply, status: u16, code: u64, says: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body["errCode"], code, "{r:?}");
    let msg = r.body["errMsg"].as_str().unwrap_or_default();
    assert!(msg.contains(says), "errMsg should mention {says:?}: {r:?}");
}

#[tokio::test]
async fn websocket_upgrade_from_a_foreign_origin_is_refused() {
    let s = TestServer::start().await;
    for origin in ["http://evil.example", "null", "https://evil.example:8443"] {
        let r = upgrade(&s, &[("Origin", origin)])
            .await
            .expect_err("a page's WebSocket must not be upgraded");
        assert_refused(&r, 403, 1013, "Origin");
    }
    // The same client without an Origin (a native client) is let in.
    upgrade(&s, &[])
        .await
        .expect("native clients send no Origin");
}

#[tokio::test]
async fn account_posts_that_are_not_declared_json_are_refused() {
    let s = TestServer::start().await;
    // What a page can send without a CORS preflight: text/plain, a form type, or no
    // type at all (a Blob or ArrayBuffer body).
    for (i, content_type) in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let header = content_type.map(|t| format!("Content-Type: {t}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let user = format!("page{i}");
        let r = post(&s, "/api/register", &headers, &register_body(&user)).await;
        assert_refused(&r, 415, 1001, "application/json");
        let r = post(&s, "/api/login", &headers, &register_body("alice")).await;
        assert_refused(&r, 415, 1001, "application/json");
        assert!(
            s.store.user(&uid(&user)).unwrap().is_none(),
            "no account was made"
        );
    }
}

#[tokio::test]
async fn account_posts_from_a_foreign_origin_are_refused_even_as_json() {
    let s = TestServer::start().await;
    for origin in ["http://evil.example", "null"] {
        let r = post(
            &s,
            "/api/register",
            &[
                "Content-Type: application/json",
                &format!("Origin: {origin}"),
            ],
            &register_body("mallory"),
        )
        .await;
        assert_refused(&r, 403, 1013, "Origin");
    }
    assert!(s.store.user(&uid("mallory")).unwrap().is_none());
}

#[tokio::test]
async fn a_foreign_host_is_refused_on_a_loopback_server() {
    // DNS rebinding: evil.example resolves to 127.0.0.1, so the page's requests reach
    // this server as same-origin requests for evil.example.
    let s = TestServer::start().await;
    let port = s.addr.port();
    let rebound = format!("evil.example:{port}");
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {rebound}");
    let r = exchange(s.addr, &head, "").await;
    assert_refused(&r, 403, 1013, "Host");

    let r = exchange(
        s.addr,
        &format!(
            "POST /api/register HTTP/1.1\r\nHost: {rebound}\r\nContent-Type: application/json"
        ),
        &register_body("rebound"),
    )
    .await;
    assert_refused(&r, 403, 1013, "Host");
    assert!(s.store.user(&uid("rebound")).unwrap().is_none());

    let r = upgrade(&s, &[("Host", &rebound)])
        .await
        .expect_err("a rebound WebSocket must not be upgraded");
    assert_refused(&r, 403, 1013, "Host");

    // The loopback names are this server's own.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = exchange(
            s.addr,
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}"),
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{host}: {r:?}");
    }
}

#[tokio::test]
async fn native_clients_without_origin_keep_working() {
    let s = TestServer::start().await;
    // The SDK: register, sign in, connect.
    let token = tincan_sdk::register(&s.url, "native", "secret123", None)
        .await
        .expect("the SDK registers");
    assert_eq!(token.user_id, "native");
    tincan_sdk::sign_in(&s.url, "native", "secret123")
        .await
        .expect("the SDK signs in");
    let alice = s.peer("alice", "a1").await;
    let _bob = s.peer("bob", "b1").await;
    alice.invite("bob").await.expect("calls go on");

    // A hand-written JSON POST with no Origin (curl, scripts).
    let r = post(
        &s,
        "/api/login",
        &["Content-Type: application/json; charset=utf-8"],
        r#"{"userID":"native","password":"secret123"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["errCode"], 0, "{r:?}");
}

#[tokio::test]
async fn a_listed_origin_is_let_in() {
    let s = TestServer::start_with(tincan_server::ServerConfig {
        allowed_origins: vec!["https://app.example.org".parse().unwrap()],
        ..Default::default()
    })
    .await;
    upgrade(&s, &[("Origin", "https://app.example.org")])
        .await
        .expect("a listed origin is upgraded");
    let r = post(
        &s,
        "/api/register",
        &[
            "Content-Type: application/json",
            "Origin: https://app.example.org",
        ],
        &register_body("webuser"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = upgrade(&s, &[("Origin", "https://other.example.org")])
        .await
        .expect_err("an origin that is not listed is refused");
    assert_refused(&r, 403, 1013, "Origin");
}

#[tokio::test]
async fn an_embedded_server_makes_accounts_only_for_the_holder_of_its_secret() {
    let secret = tincan_server::origin::LocalSecret::generate();
    let s = TestServer::start_with(tincan_server::ServerConfig {
        local_secret: Some(secret.clone()),
        ..Default::default()
    })
    .await;
    // Without the secret (a local process, or a page whose Origin got stripped): refused.
    let r = post(
        &s,
        "/api/register",
        &["Content-Type: application/json"],
        &register_body("intruder"),
    )
    .await;
    assert_refused(&r, 403, 1002, "app that started it");
    let wrong = format!(
        "{}: not-the-secret",
        tincan_server::origin::LOCAL_SECRET_HEADER
    );
    let r = post(
        &s,
        "/api/login",
        &["Content-Type: application/json", &wrong],
        &register_body("alice"),
    )
    .await;
    assert_refused(&r, 403, 1002, "app that started it");
    assert!(s.store.user(&uid("intruder")).unwrap().is_none());
    let e = tincan_sdk::register(&s.url, "intruder", "secret123", None)
        .await
        .expect_err("the SDK without the secret is refused");
    assert_eq!(e.code(), Some(1002), "{e:?}");

    // The app's Rust side, through the SDK, with the secret.
    let accounts = tincan_sdk::Accounts::new(&s.url)
        .unwrap()
        .with_local_secret(secret.expose())
        .unwrap();
    let token = accounts
        .register("owner", "secret123", None)
        .await
        .expect("the app registers");
    accounts
        .sign_in("owner", "secret123")
        .await
        .expect("the app signs in");
    // The WebSocket takes the token as usual.
    let (client, _events) =
        tincan_sdk::connect(&s.url, &token.token, tincan_sdk::DeviceInfo::random_linux())
            .await
            .expect("the app connects");
    client.close().await;
}
