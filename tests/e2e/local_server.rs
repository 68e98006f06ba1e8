//! "Use a local server on this computer": the window starts the embedded server and
//! creates an account on it, while "a web page" (requests with a foreign Origin, a rebound
//! Host, a text/plain body, or simply no secret) is refused by that same server.

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::{self, within, PASSWORD, POLL, WAIT};

/// Sends one HTTP/1.1 request (`head` without the blank line) to `addr` and returns the
/// status and JSON body of the reply.
async fn exchange(addr: &str, head: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut bytes = Vec::new();
    tcp.read_to_end(&mut bytes).await.expect("read");
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    (
        status.unwrap_or_else(|| panic!("a status line: {head:?}")),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn the_embedded_server_serves_the_app_and_refuses_web_pages() {
    harness::run("local-server", |s| async move {
        s.app.wait_state("signin").await;
        s.app.click("use-local-server").await;
        // The address field changes from the test server's to the embedded one's.
        let deadline = tokio::time::Instant::now() + WAIT;
        let url = loop {
            let v = s.app.value_of("login-server").await;
            if v != s.server.url && v.starts_with("http://127.0.0.1:") {
                break v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "login-server still {v:?}"
            );
            tokio::time::sleep(POLL).await;
        };
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();

        // The app registers and signs in on it (its Rust side holds the secret).
        s.app.type_into("login-user", "desk").await;
        s.app.type_into("login-password", PASSWORD).await;
        s.app.click("register-submit").await;
        s.app.wait_state("contacts").await;
        assert_eq!(s.app.text_of("signed-in-user").await, "desk");

        // A web page's WebSocket: refused.
        let mut ws = format!("ws://{addr}/ws").into_client_request().unwrap();
        ws.headers_mut()
            .insert("Origin", HeaderValue::from_static("http://evil.example"));
        match within(tokio_tungstenite::connect_async(ws)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status().as_u16(), 403)
            }
            other => panic!(
                "a page's WebSocket was not refused: {:?}",
                other.map(|_| ())
            ),
        }
        let account = r#"{"userID":"mallory","password":"secret123"}"#;
        // A page's simple POST: refused (foreign Origin).
        let (status, body) = within(exchange(
            &addr,
            &format!("POST /api/register HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain"),
            account,
        ))
        .await;
        assert_eq!(
            (status, &body["errCode"]),
            (403, &Value::from(1013)),
            "{body}"
        );
        // DNS rebinding: the page's own name pointed at 127.0.0.1.
        let port = addr.rsplit(':').next().unwrap();
        let (status, body) = within(exchange(
            &addr,
            &format!("POST /api/register HTTP/1.1\r\nHost: evil.example:{port}\r\nContent-Type: application/json"),
            account,
        ))
        .await;
        assert_eq!(
            (status, &body["errCode"]),
            (403, &Value::from(1013)),
            "{body}"
        );
        // Even a well-formed request without Origin lacks the app's secret.
        let (status, body) = within(exchange(
            &addr,
            &format!("POST /api/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json"),
            r#"{"userID":"desk","password":"correct horse battery"}"#,
        ))
        .await;
        assert_eq!(
            (status, &body["errCode"]),
            (403, &Value::from(1002)),
            "{body}"
        );

        // The profile folder, which holds the server's database, is the owner's only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&s.profile).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "profile folder mode {mode:o}");
            assert!(s.profile.join("server.db").exists());
        }
    });
}
