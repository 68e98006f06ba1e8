//! Bad input gets a coded error that says what was wrong, and the connection, the
//! server and other calls go on.

use serde_json::json;
use tincan_server::ServerConfig;
use tincan_tests::*;

#[tokio::test]
async fn malformed_frames_get_coded_errors_and_the_connection_and_other_calls_go_on() {
    let s = TestServer::start().await;
    let mut alice = s.peer("alice", "a1").await;
    let mut bob = s.peer("bob", "b1").await;
    let room = alice.invite("bob").await.unwrap().room_id.to_string();
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(&room).await.unwrap();
    alice.expect("onInviteeAccepted").await;

    let mut raw = RawClient::connect(&s, Some(("erin", "e1"))).await;

    raw.send_text("this is not json").await;
    let r = raw.response().await;
    assert_eq!(r["errCode"], 1000);
    assert!(
        r["errMsg"].as_str().unwrap().contains("not valid JSON"),
        "{r}"
    );

    raw.send_text("[1, 2, 3]").await;
    assert_eq!(raw.response().await["errCode"], 1000);

    let r = raw.request(json!({"requestID": 7, "data": {}})).await;
    assert_eq!(r["errCode"], 1000);
    assert_eq!(r["requestID"], 7, "the id is echoed when readable");

    let r = raw
        .request(json!({"requestID": "x", "method": "signalingDance"}))
        .await;
    assert_eq!(r["errCode"], 1003);
    assert!(
        r["errMsg"].as_str().unwrap().contains("signalingDance"),
        "{r}"
    );

    // Wrong types name the field.
    let r = raw
        .request(json!({"requestID": 1, "method": "signalingInvite",
            "data": {"invitation": {"inviteeUserIDList": "bob"}}}))
        .await;
    assert_eq!(r["errCode"], 1001);
    assert!(
        r["errMsg"]
            .as_str()
            .unwrap()
            .contains("invitation.inviteeUserIDList"),
        "{r}"
    );
    let r = raw
        .request(json!({"requestID": 2, "method": "signalingAccept",
            "data": {"opUserID": "erin", "invitation": {"roomID": 8848}}}))
        .await;
    assert_eq!(r["errCode"], 1001);
    assert!(
        r["errMsg"].as_str().unwrap().contains("invitation.roomID"),
        "{r}"
    );
    let r = raw
        .request(json!({"requestID": 3, "method": "signalingInvite",
            "data": {"invitation": {"inviteeUserIDList": ["bad id!"]}}}))
        .await;
    assert_eq!(r["errCode"], 1001);

    // Unknown ids.
    let r = raw
        .request(json!({"requestID": 4, "method": "signalingHungUp",
            "data": {"invitation": {"roomID": "no-such-room"}}}))
        .await;
    assert_eq!(r["errCode"], 1004);

    // Oversized (over the 64 KiB limit, under the 1 MiB hard cap): refused, still open.
    let big = json!({"requestID": 5, "method": "signalingSendCustomSignal",
        "data": {"roomID": room, "customInfo": "x".repeat(70 * 1024)}});
    let r = raw.request(big).await;
    assert_eq!(r["errCode"], 1005);

    raw.send_binary(vec![1, 2, 3]).await;
    assert_eq!(raw.response().await["errCode"], 1000);

    // A second login on a signed-in connection.
    let r = raw
        .request(json!({"requestID": 6, "method": "login",
            "data": {"token": s.token("erin"), "deviceID": "e1", "platformID": 7}}))
        .await;
    assert_eq!(r["errCode"], 1009);

    // The connection still works...
    let r = raw.request(json!({"requestID": 8, "method": "ping"})).await;
    assert_eq!(r["errCode"], 0);
    // ...and so does the call next to it.
    bob.hang_up(&room).await.unwrap();
    alice.expect("onHangUp").await;

    // Past the hard cap the server closes the connection rather than buffer it.
    raw.send_text("x".repeat(1024 * 1024 + 10)).await;
    assert!(raw.recv().await.is_none(), "closed");
    let late = s.peer("carol", "c1").await;
    late.client
        .ping(&op("alive"))
        .await
        .expect("the server is fine");
}

#[tokio::test]
async fn requests_before_login_and_bad_tokens_are_refused() {
    let s = TestServer::start().await;
    let mut raw = RawClient::connect(&s, None).await;
    let r = raw.request(json!({"requestID": 1, "method": "ping"})).await;
    assert_eq!(r["errCode"], 1007);

    let r = raw
        .request(json!({"requestID": 2, "method": "login",
            "data": {"token": "forged.token", "deviceID": "d", "platformID": 7}}))
        .await;
    assert_eq!(r["errCode"], 1501);
    assert!(
        raw.recv().await.is_none(),
        "a refused sign-in closes the connection"
    );

    let mut raw = RawClient::connect(&s, None).await;
    let expired = s.signer.login_token(&uid("alice"), 1);
    let r = raw
        .request(json!({"requestID": 3, "method": "login",
            "data": {"token": expired, "deviceID": "d", "platformID": 7}}))
        .await;
    assert_eq!(r["errCode"], 1502);

    let mut raw = RawClient::connect(&s, None).await;
    let r = raw
        .request(json!({"requestID": 4, "method": "login",
            "data": {"token": s.token("alice"), "deviceID": "d", "platformID": 42}}))
        .await;
    assert_eq!(r["errCode"], 1001);
    assert!(r["errMsg"].as_str().unwrap().contains("platformID"), "{r}");
}

#[tokio::test]
async fn floods_are_rate_limited_and_the_connection_survives() {
    let mut config = ServerConfig::default();
    config.limits.rate_per_sec = 5.0;
    config.limits.rate_burst = 10.0;
    let s = TestServer::start_with(config).await;
    let mut raw = RawClient::connect(&s, Some(("alice", "a1"))).await;
    for i in 0..50 {
        raw.send_text(json!({"requestID": i, "method": "ping"}).to_string())
            .await;
    }
    let mut limited = 0;
    for _ in 0..50 {
        let r = raw.response().await;
        if r["errCode"] == 1006 {
            limited += 1;
        } else {
            assert_eq!(r["errCode"], 0, "{r}");
        }
    }
    assert!(
        limited >= 30,
        "most of a 50-request burst is refused, got {limited}"
    );
}

#[tokio::test]
async fn too_many_devices_are_refused() {
    let mut config = ServerConfig::default();
    config.hub.max_devices_per_user = 2;
    let s = TestServer::start_with(config).await;
    let _a1 = s.peer("alice", "a1").await;
    let _a2 = s.peer("alice", "a2").await;
    let r = tincan_sdk::connect_with(
        &s.url,
        &s.token("alice"),
        tincan_sdk::DeviceInfo::new(
            tincan_protocol::DeviceId::new("a3").unwrap(),
            tincan_protocol::PlatformId::LINUX,
        ),
        no_reconnect(),
    )
    .await;
    assert_eq!(code(r.map(|_| ())), 1008);
}

#[tokio::test]
async fn register_and_sign_in_over_http() {
    let s = TestServer::start().await;
    let t = tincan_sdk::register(&s.url, "zoe", "a long password", Some("Zoe"))
        .await
        .unwrap();
    assert_eq!(t.user_id, "zoe");
    let t2 = tincan_sdk::sign_in(&s.url, "zoe", "a long password")
        .await
        .unwrap();
    let (client, _events) =
        tincan_sdk::connect(&s.url, &t2.token, tincan_sdk::DeviceInfo::random_linux())
            .await
            .unwrap();
    assert_eq!(client.user_id().as_str(), "zoe");
    assert_eq!(
        code(tincan_sdk::sign_in(&s.url, "zoe", "wrong password").await),
        1002
    );
    assert_eq!(
        code(tincan_sdk::sign_in(&s.url, "nobody", "whatever1").await),
        1002
    );
    assert_eq!(
        code(tincan_sdk::register(&s.url, "zoe", "another password", None).await),
        1001
    );
    assert_eq!(
        code(tincan_sdk::register(&s.url, "x y", "a long password", None).await),
        1001
    );
    assert_eq!(
        code(tincan_sdk::register(&s.url, "yan", "short", None).await),
        1001
    );
}

/// The connection task reads a peer's frames before it writes what is queued (so replies
/// to a burst leave together), but looks at its deadlines before both: a peer that never
/// stops sending is still closed when its time to sign in runs out.
#[tokio::test]
async fn a_connection_that_keeps_sending_without_signing_in_is_closed_at_its_deadline() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let mut config = ServerConfig::default();
    config.limits.login_timeout = std::time::Duration::from_millis(500);
    config.limits.rate_per_sec = 1e9;
    config.limits.rate_burst = 1e9;
    let s = TestServer::start_with(config).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .expect("ws connect");
    let (mut tx, mut rx) = ws.split();
    // As fast as the socket takes them, until the server closes (bounded all the same).
    let writer = tokio::spawn(async move {
        for i in 0..2_000_000u32 {
            let frame = format!(r#"{{"requestID":{i},"method":"ping"}}"#);
            if tx.send(Message::text(frame)).await.is_err() {
                return i;
            }
        }
        panic!("the server never closed the connection");
    });
    let close = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut answered = 0u32;
        while let Some(msg) = rx.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["errCode"], 1007, "{v}");
                    answered += 1;
                }
                Ok(Message::Close(frame)) => return (frame, answered),
                Ok(_) => {}
                Err(e) => panic!("the connection failed instead of closing: {e}"),
            }
        }
        panic!("the connection ended without a close frame");
    })
    .await
    .expect("closed within 20 s");
    let (frame, answered) = close;
    let frame = frame.expect("a close frame with a reason");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("sign in"), "{}", frame.reason);
    assert!(answered > 0, "frames before the deadline were answered");
    let sent = writer.await.unwrap();
    assert!(sent >= answered, "{sent} sent, {answered} answered");
}
