//! The driver against a scripted WebSocket server in the same runtime, with a paused
//! clock: request/reply matching, errors, timeouts, reconnect with resync, keepalive,
//! kick and close. (Tests against the real server live in the workspace's tests/.)

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tincan_sdk::protocol::{ActionParams, DeviceId, ErrCode, Event, Invitation, PlatformId};
use tincan_sdk::{
    connect_with, CloseReason, ConnectOptions, ConnectionState, DeviceInfo, SdkError, SdkEvent,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// `tokio::time::timeout`, as an `Option`.
async fn within<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    tokio::time::timeout(limit, fut).await.ok()
}

struct MockServer {
    url: String,
    conns: mpsc::Receiver<MockConn>,
}

impl MockServer {
    async fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, conns) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // Without this, Nagle holds a second small frame until the client's
                // delayed ACK (~40 ms of real time), and meanwhile the idle runtime
                // moves the paused clock on to the next timer.
                stream.set_nodelay(true).unwrap();
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                if tx.send(MockConn { ws }).await.is_err() {
                    return;
                }
            }
        });
        MockServer { url, conns }
    }

    async fn next_conn(&mut self) -> MockConn {
        within(Duration::from_secs(60), self.conns.recv())
            .await
            .expect("a connection in time")
            .expect("server running")
    }

    /// Accepts a connection and answers its login.
    async fn accept_login(&mut self, pending: Vec<Value>) -> MockConn {
        let mut conn = self.next_conn().await;
        conn.login(pending).await;
        conn
    }
}

struct MockConn {
    ws: WebSocketStream<TcpStream>,
}

impl MockConn {
    /// The next frame from the client, as JSON.
    async fn recv(&mut self) -> Value {
        loop {
            match self
                .ws
                .next()
                .await
                .expect("client still connected")
                .unwrap()
            {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Close(_) => panic!("client closed"),
                _ => continue,
            }
        }
    }

    /// The next request, which must be `method`: returns its id and data.
    async fn expect(&mut self, method: &str) -> (Value, Value) {
        let frame = self.recv().await;
        assert_eq!(frame["method"], method, "{frame}");
        (frame["requestID"].clone(), frame["data"].clone())
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn reply(&mut self, id: &Value, data: Value) {
        self.send(json!({"type":"response","requestID":id,"operationID":"x","errCode":0,"errMsg":"","data":data}))
            .await;
    }

    async fn reply_err(&mut self, id: &Value, code: ErrCode, msg: &str) {
        self.send(json!({"type":"response","requestID":id,"operationID":"x","errCode":code.code(),"errMsg":msg,"data":null}))
            .await;
    }

    async fn event(&mut self, name: &str, data: Value) {
        self.send(json!({"type":"event","event":name,"data":data}))
            .await;
    }

    /// Answers `login` and, as the real server does, re-sends the pending invitations
    /// as events.
    async fn login(&mut self, pending: Vec<Value>) {
        let (id, data) = self.expect("login").await;
        assert_eq!(data["deviceID"], "dev-1");
        assert_eq!(data["platformID"], 7);
        self.reply(
            &id,
            json!({"userID":"bob","deviceID":"dev-1","protocolVersion":1,"serverTime":5000,
                   "pendingInvitations": pending}),
        )
        .await;
        for info in pending {
            self.event("onReceiveNewInvitation", info).await;
        }
    }
}

fn invitation(room: &str) -> Value {
    json!({"invitation":{"inviterUserID":"alice","inviteeUserIDList":["bob"],"roomID":room,
           "timeout":30,"mediaType":"video","sessionType":1,"platformID":7},
           "opUserID":"alice","userID":"alice","opUserPlatformID":7,"eventTime":1000})
}

fn device() -> DeviceInfo {
    DeviceInfo::new(DeviceId::new("dev-1").unwrap(), PlatformId::LINUX)
}

fn options() -> ConnectOptions {
    let mut o = ConnectOptions::default();
    o.keepalive_interval = None;
    o
}

/// What the app saw, compactly: `conn:connected`, `onReceiveNewInvitation:r1`, ….
fn label(e: &SdkEvent) -> String {
    match e {
        SdkEvent::Connection(ConnectionState::Connected) => "conn:connected".into(),
        SdkEvent::Connection(ConnectionState::Reconnecting { attempt, .. }) => {
            format!("conn:reconnecting:{attempt}")
        }
        SdkEvent::Connection(ConnectionState::Resynced { .. }) => "conn:resynced".into(),
        SdkEvent::Connection(ConnectionState::Closed { reason }) => {
            format!("conn:closed:{}", reason.kind())
        }
        SdkEvent::Signaling(
            ev
            @ (Event::ReceiveNewInvitation(i) | Event::InvitationCancelled(i) | Event::HangUp(i)),
        ) => format!("{}:{}", ev.name(), i.invitation.room_id),
        SdkEvent::Signaling(ev) => ev.name().to_owned(),
        other => format!("{other:?}"),
    }
}

/// The next event's label; call-state snapshots are skipped (see [`next_call`]).
async fn next(events: &mut mpsc::Receiver<SdkEvent>) -> String {
    loop {
        let e = within(Duration::from_secs(120), events.recv())
            .await
            .expect("an event in time")
            .expect("channel open");
        if !matches!(e, SdkEvent::CallStateChanged(_)) {
            return label(&e);
        }
    }
}

async fn next_n(events: &mut mpsc::Receiver<SdkEvent>, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(events).await);
    }
    out
}

/// Driver logs in test output, filtered by RUST_LOG (e.g. `RUST_LOG=tincan_sdk=debug`).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Connects a client to `server`, answering the login with `pending`.
async fn connected(
    server: &mut MockServer,
    pending: Vec<Value>,
    options: ConnectOptions,
) -> (tincan_sdk::Client, mpsc::Receiver<SdkEvent>, MockConn) {
    init_tracing();
    let url = server.url.clone();
    let client = tokio::spawn(async move { connect_with(&url, "tok", device(), options).await });
    let conn = server.accept_login(pending).await;
    let (client, events) = client.await.unwrap().unwrap();
    (client, events, conn)
}

#[tokio::test(start_paused = true)]
async fn connect_signs_in_and_delivers_pending_invitations_once() {
    let mut server = MockServer::start().await;
    let (client, mut events, mut conn) =
        connected(&mut server, vec![invitation("r1")], options()).await;
    assert_eq!(client.user_id().as_str(), "bob");
    assert_eq!(client.session().server_time, 5000);
    assert_eq!(client.ringing().len(), 1);
    // Already on the channel when connect returned, before any other task ran.
    assert_eq!(label(&events.try_recv().unwrap()), "conn:connected");
    assert_eq!(
        label(&events.try_recv().unwrap()),
        "onReceiveNewInvitation:r1"
    );
    // The re-sent event for r1 is dropped; the marker event after it comes next.
    conn.event("onHangUp", invitation("marker")).await;
    assert_eq!(next(&mut events).await, "onHangUp:marker");
}

#[tokio::test(start_paused = true)]
async fn a_small_event_channel_still_gets_every_first_event_in_order() {
    let mut server = MockServer::start().await;
    let mut o = options();
    o.event_capacity = 1;
    let (_client, mut events, mut conn) =
        connected(&mut server, vec![invitation("r1"), invitation("r2")], o).await;
    conn.event("onHangUp", invitation("marker")).await;
    assert_eq!(
        next_n(&mut events, 4).await,
        [
            "conn:connected",
            "onReceiveNewInvitation:r1",
            "onReceiveNewInvitation:r2",
            "onHangUp:marker"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn replies_are_matched_to_their_requests() {
    let mut server = MockServer::start().await;
    let (client, _events, mut conn) = connected(&mut server, vec![], options()).await;
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping("op-ping").await });
    let c = client.clone();
    let contacts = tokio::spawn(async move { c.get_contacts("op-contacts").await });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let frame = conn.recv().await;
        ids.push((
            frame["method"].as_str().unwrap().to_owned(),
            frame["requestID"].clone(),
            frame["operationID"].clone(),
        ));
    }
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    let (_, contacts_id, op) = &ids[0];
    assert_eq!(op, "op-contacts");
    let (_, ping_id, _) = &ids[1];
    // Answer in the opposite order of sending.
    conn.reply(ping_id, json!({"serverTime": 77})).await;
    conn.reply(contacts_id, json!({"users": [], "groups": []}))
        .await;
    assert_eq!(ping.await.unwrap().unwrap().server_time, 77);
    assert!(contacts.await.unwrap().unwrap().users.is_empty());
}

#[tokio::test(start_paused = true)]
async fn server_errors_and_unparsable_replies_surface_as_typed_errors() {
    let mut server = MockServer::start().await;
    let (client, _events, mut conn) = connected(&mut server, vec![], options()).await;
    let c = client.clone();
    let accept = tokio::spawn(async move {
        c.signaling_accept(
            "op",
            ActionParams {
                op_user_id: String::new(),
                invitation: Invitation {
                    room_id: "r9".into(),
                    ..Invitation::default()
                },
            },
        )
        .await
    });
    let (id, data) = conn.expect("signalingAccept").await;
    assert_eq!(data["invitation"]["roomID"], "r9");
    conn.reply_err(&id, ErrCode::NotRinging, "the call is over")
        .await;
    let err = accept.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(1602));
    assert_eq!(err.server_error().unwrap().message, "the call is over");

    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping("op").await });
    let (id, _) = conn.expect("ping").await;
    conn.reply(&id, json!({"nope": true})).await;
    assert!(matches!(
        ping.await.unwrap().unwrap_err(),
        SdkError::Protocol(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_request_without_reply_times_out() {
    let mut server = MockServer::start().await;
    let (client, _events, mut conn) = connected(&mut server, vec![], options()).await;
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping("op").await });
    conn.expect("ping").await;
    assert_eq!(ping.await.unwrap().unwrap_err(), SdkError::Timeout);
    // The connection still works afterwards.
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping("op").await });
    let (id, _) = conn.expect("ping").await;
    conn.reply(&id, json!({"serverTime": 1})).await;
    assert!(ping.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn reconnect_resyncs_ringing_invitations() {
    let mut server = MockServer::start().await;
    let (client, mut events, conn) = connected(
        &mut server,
        vec![invitation("r1"), invitation("r2")],
        options(),
    )
    .await;
    assert_eq!(
        next_n(&mut events, 3).await,
        [
            "conn:connected",
            "onReceiveNewInvitation:r1",
            "onReceiveNewInvitation:r2"
        ]
    );
    drop(conn);
    assert_eq!(next(&mut events).await, "conn:reconnecting:1");
    // While away, requests fail fast.
    assert_eq!(client.ping("op").await.unwrap_err(), SdkError::Disconnected);

    // r1 was cancelled while away; r3 is new; r2 still rings.
    let mut conn = server
        .accept_login(vec![invitation("r2"), invitation("r3")])
        .await;
    conn.event("onHangUp", invitation("marker")).await;
    assert_eq!(
        next_n(&mut events, 4).await,
        [
            "conn:resynced",
            "onInvitationCancelled:r1",
            "onReceiveNewInvitation:r3",
            "onHangUp:marker"
        ]
    );
    let rooms: Vec<_> = client
        .ringing()
        .into_iter()
        .map(|i| i.invitation.room_id)
        .collect();
    assert_eq!(rooms, ["r2", "r3"]);
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_fail_with_disconnected_when_the_socket_drops() {
    let mut server = MockServer::start().await;
    let (client, _events, mut conn) = connected(&mut server, vec![], options()).await;
    let c = client.clone();
    let ping = tokio::spawn(async move { c.ping("op").await });
    conn.expect("ping").await;
    drop(conn);
    assert_eq!(ping.await.unwrap().unwrap_err(), SdkError::Disconnected);
}

#[tokio::test(start_paused = true)]
async fn reconnect_retries_with_backoff_until_the_server_is_back() {
    let mut server = MockServer::start().await;
    let (_client, mut events, conn) = connected(&mut server, vec![], options()).await;
    assert_eq!(next(&mut events).await, "conn:connected");
    drop(conn);
    assert_eq!(next(&mut events).await, "conn:reconnecting:1");
    // Refuse two attempts (TooManyDevices is not fatal), then accept.
    for _ in 0..2 {
        let mut c = server.next_conn().await;
        let (id, _) = c.expect("login").await;
        c.reply_err(&id, ErrCode::TooManyDevices, "too many").await;
    }
    assert_eq!(next(&mut events).await, "conn:reconnecting:2");
    assert_eq!(next(&mut events).await, "conn:reconnecting:3");
    let _conn = server.accept_login(vec![]).await;
    assert_eq!(next(&mut events).await, "conn:resynced");
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_on_reconnect_closes_the_client() {
    let mut server = MockServer::start().await;
    let (client, mut events, conn) = connected(&mut server, vec![], options()).await;
    drop(conn);
    let mut c = server.next_conn().await;
    let (id, _) = c.expect("login").await;
    c.reply_err(&id, ErrCode::TokenExpired, "expired").await;
    assert_eq!(
        next_n(&mut events, 3).await,
        [
            "conn:connected",
            "conn:reconnecting:1",
            "conn:closed:loginRefused"
        ]
    );
    assert!(events.recv().await.is_none(), "Closed is the last event");
    assert_eq!(client.ping("op").await.unwrap_err(), SdkError::Closed);
}

#[tokio::test(start_paused = true)]
async fn kicked_offline_closes_without_reconnecting() {
    let mut server = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&mut server, vec![], options()).await;
    conn.event("onKickedOffline", json!({"reason": "replaced"}))
        .await;
    assert_eq!(
        next_n(&mut events, 3).await,
        [
            "conn:connected",
            "onKickedOffline",
            "conn:closed:kickedOffline"
        ]
    );
    assert!(events.recv().await.is_none());
    assert_eq!(client.ping("op").await.unwrap_err(), SdkError::Closed);
    let again = within(Duration::from_secs(30), server.conns.recv()).await;
    assert!(again.is_none(), "no reconnect after a kick");
    assert!(matches!(
        client.connection_state(),
        ConnectionState::Closed {
            reason: CloseReason::KickedOffline(_)
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn close_sends_a_close_frame_and_ends_the_event_stream() {
    let mut server = MockServer::start().await;
    let (client, mut events, mut conn) = connected(&mut server, vec![], options()).await;
    let server_side = tokio::spawn(async move {
        loop {
            match conn.ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.reason.to_string()),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    client.close().await;
    assert_eq!(server_side.await.unwrap().as_deref(), Some("client closed"));
    assert_eq!(
        next_n(&mut events, 2).await,
        ["conn:connected", "conn:closed:clientClosed"]
    );
    assert!(events.recv().await.is_none());
    assert_eq!(client.ping("op").await.unwrap_err(), SdkError::Closed);
    client.close().await; // twice is harmless
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_keepalive_counts_as_a_lost_connection() {
    let mut server = MockServer::start().await;
    let mut o = options();
    o.keepalive_interval = Some(Duration::from_secs(20));
    let (_client, mut events, conn) = connected(&mut server, vec![], o).await;
    assert_eq!(next(&mut events).await, "conn:connected");
    // The server keeps the socket open but never reads, so pings go unanswered.
    let started = tokio::time::Instant::now();
    let event = within(Duration::from_secs(120), events.recv())
        .await
        .unwrap()
        .unwrap();
    let SdkEvent::Connection(ConnectionState::Reconnecting { reason, .. }) = event else {
        panic!("{event:?}")
    };
    assert!(reason.contains("keepalive"), "{reason}");
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn an_answered_keepalive_keeps_the_connection() {
    let mut server = MockServer::start().await;
    let mut o = options();
    o.keepalive_interval = Some(Duration::from_secs(20));
    let (client, mut events, mut conn) = connected(&mut server, vec![], o).await;
    assert_eq!(next(&mut events).await, "conn:connected");
    // Reading answers pings (tungstenite replies with pongs).
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(msg)) = conn.ws.next().await {
            if msg.is_ping() {
                pings += 1;
            }
        }
        pings
    });
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert!(events.try_recv().is_err(), "no state change");
    client.close().await;
    assert!(reader.await.unwrap() >= 5);
}

#[tokio::test(start_paused = true)]
async fn a_refused_first_login_is_returned_by_connect() {
    let mut server = MockServer::start().await;
    let url = server.url.clone();
    let client = tokio::spawn(async move { connect_with(&url, "bad", device(), options()).await });
    let mut c = server.next_conn().await;
    let (id, _) = c.expect("login").await;
    c.reply_err(&id, ErrCode::TokenInvalid, "bad signature")
        .await;
    let err = client.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(ErrCode::TokenInvalid.code()));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = connect_with(&url, "tok", device(), options())
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Connect(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn own_accept_stops_ringing() {
    let mut server = MockServer::start().await;
    let (client, _events, mut conn) =
        connected(&mut server, vec![invitation("r1")], options()).await;
    assert_eq!(client.ringing().len(), 1);
    let c = client.clone();
    let accept = tokio::spawn(async move {
        c.signaling_accept(
            "op",
            ActionParams {
                op_user_id: "bob".into(),
                invitation: Invitation {
                    room_id: "r1".into(),
                    ..Invitation::default()
                },
            },
        )
        .await
    });
    let (id, _) = conn.expect("signalingAccept").await;
    conn.reply(
        &id,
        json!({"roomID":"r1","token":"rt","liveURL":"ws://x","iceServers":[]}),
    )
    .await;
    assert_eq!(accept.await.unwrap().unwrap().token, "rt");
    assert!(client.ringing().is_empty());
}

#[tokio::test(start_paused = true)]
async fn close_while_reconnecting_stops_for_good() {
    let mut server = MockServer::start().await;
    let (client, mut events, conn) = connected(&mut server, vec![], options()).await;
    drop(conn);
    assert_eq!(
        next_n(&mut events, 2).await,
        ["conn:connected", "conn:reconnecting:1"]
    );
    client.close().await;
    // Attempts already under way may reach the server; none signs in.
    while let Ok(Some(mut c)) =
        tokio::time::timeout(Duration::from_millis(50), server.conns.recv()).await
    {
        let _ = tokio::time::timeout(Duration::from_millis(50), c.ws.next()).await;
    }
    assert_eq!(next(&mut events).await, "conn:closed:clientClosed");
    assert!(events.recv().await.is_none());
    assert!(within(Duration::from_secs(60), server.conns.recv())
        .await
        .is_none());
}

#[tokio::test(start_paused = true)]
async fn login_cannot_be_sent_through_call_raw() {
    let mut server = MockServer::start().await;
    let (client, _events, _conn) = connected(&mut server, vec![], options()).await;
    let login = tincan_sdk::protocol::Request::Login(tincan_sdk::protocol::LoginParams {
        token: "t".into(),
        device_id: DeviceId::new("dev-1").unwrap(),
        platform_id: PlatformId::LINUX,
        protocol_version: 1,
    });
    let err = client.call_raw("op", login).await.unwrap_err();
    assert!(matches!(err, SdkError::InvalidArgument(_)), "{err:?}");
    assert_eq!(err.err_code(), 10002);
}
