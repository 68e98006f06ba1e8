//! `/metrics`: off unless asked for; when on, what happened on the server is counted
//! (connections, requests, error replies, ended calls and their invitees, calls now).

use serde_json::json;
use tincan_server::ServerConfig;
use tincan_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /metrics`: the status and the body.
async fn scrape(server: &TestServer) -> (u16, String) {
    scrape_at(server.addr).await
}

/// `GET /metrics` of the server at `addr`: the status and the body.
pub(crate) async fn scrape_at(addr: std::net::SocketAddr) -> (u16, String) {
    let run = async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut bytes = Vec::new();
        tcp.read_to_end(&mut bytes).await.expect("read");
        bytes
    };
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(10), run)
        .await
        .expect("the server answers and closes");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP reply");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The value of the sample `name` (with its labels, as printed), if present.
pub(crate) fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_are_off_unless_asked_for() {
    let s = TestServer::start().await;
    let (status, body) = scrape(&s).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("start it with --metrics"), "{body}");
}

#[tokio::test]
async fn a_call_and_a_bad_frame_are_counted() {
    let s = TestServer::start_with(ServerConfig {
        metrics: true,
        ..ServerConfig::default()
    })
    .await;
    let alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;

    let (_, during) = scrape(&s).await;
    assert_eq!(
        sample(&during, "tincan_calls{state=\"ringing\"}"),
        Some(1.0),
        "{during}"
    );
    assert_eq!(sample(&during, "tincan_connections"), Some(2.0), "{during}");

    bob.accept(&room).await.unwrap();
    bob.hang_up(&room).await.unwrap();
    assert_eq!(code(alice.invite("nobody-here").await), 1004);
    let mut raw = RawClient::connect(&s, Some(("carol", "c1"))).await;
    let r = raw
        .request(json!({"requestID": 1, "method": "noSuchMethod"}))
        .await;
    assert_eq!(r["errCode"], 1003, "{r}");
    raw.send_text("not json").await;
    assert_eq!(raw.response().await["errCode"], 1000);
    let _ = s.history("alice"); // the record writer has written everything queued

    let (status, text) = scrape(&s).await;
    assert_eq!(status, 200, "{text}");
    for (name, want) in [
        ("tincan_connections", 3.0),
        ("tincan_calls{state=\"ringing\"}", 0.0),
        ("tincan_calls{state=\"connected\"}", 0.0),
        ("tincan_calls_ended_total{reason=\"hungUp\"}", 1.0),
        ("tincan_invitees_total{outcome=\"accepted\"}", 1.0),
        ("tincan_errors_total{code=\"1004\",name=\"NotFound\"}", 1.0),
        (
            "tincan_errors_total{code=\"1003\",name=\"UnknownMethod\"}",
            1.0,
        ),
        (
            "tincan_errors_total{code=\"1000\",name=\"MalformedFrame\"}",
            1.0,
        ),
        (
            "tincan_request_duration_seconds_count{method=\"signalingAccept\"}",
            1.0,
        ),
        (
            "tincan_request_duration_seconds_count{method=\"signalingHungUp\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in:\n{text}");
    }
    assert!(
        sample(&text, "tincan_store_write_seconds_count").is_some_and(|n| n >= 1.0),
        "record writes are timed:\n{text}"
    );
}
