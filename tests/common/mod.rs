//! Test harness: the real server on `127.0.0.1:0` in the test's runtime, real SDK
//! clients, a raw WebSocket client for bad input, and a TCP proxy that can cut
//! connections (to exercise reconnects).
//!
//! Waiting is always on an event or a reply, never on a sleep. [`Peer::quiet`] proves
//! that nothing more arrived: it round-trips a `ping`, and since the server writes each
//! connection's frames in order, any event sent before the pong is already here.

pub mod certs;
pub mod media;
pub mod netlab;
pub mod turn;
pub mod xvfb;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use tincan_protocol::{
    ActionParams, CallRecord, DeviceId, Event, GroupId, HistoryParams, Invitation, InviteParams,
    InviteReply, LoginReply, MediaType, PlatformId, RoomId, SignalingInfo, UserId,
};
use tincan_sdk::{Client, ConnectOptions, ConnectionState, DeviceInfo, SdkError, SdkEvent};
use tincan_server::store::{SqliteStore, Store};
use tincan_server::{ServerConfig, TokenSigner};

/// The secret test servers sign tokens with.
pub const SECRET: &str = "integration-test-secret";

/// Users every test server has (each is their own nickname).
pub const USERS: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The server's address.
    pub addr: std::net::SocketAddr,
    /// Its store.
    pub store: Arc<SqliteStore>,
    /// Signs tokens the server accepts.
    pub signer: TokenSigner,
    /// Its call-record writer.
    pub records: tincan_server::records::Records,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with default rules, the users in [`USERS`] and group `team`
    /// (alice, bob, carol, dave).
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    /// A server with `config`.
    pub async fn start_with(config: ServerConfig) -> TestServer {
        let store = SqliteStore::open_in_memory().expect("store");
        Self::start_on(store, config).await
    }

    /// A server on the database file `db` (made if missing), with the users and group
    /// of [`TestServer::start`] added unless the file has them already.
    pub async fn start_on_file(db: &std::path::Path, config: ServerConfig) -> TestServer {
        let store = SqliteStore::open(db).expect("open the database file");
        Self::start_on(store, config).await
    }

    async fn start_on(store: SqliteStore, config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(store, config, listener).await
    }

    /// A server like [`TestServer::start_with`] on a listener made elsewhere, e.g. in
    /// the network lab's public namespace (common/netlab).
    pub async fn start_listening(
        listener: std::net::TcpListener,
        config: ServerConfig,
    ) -> TestServer {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let listener = TcpListener::from_std(listener).expect("listener");
        let store = SqliteStore::open_in_memory().expect("store");
        Self::serve(store, config, listener).await
    }

    async fn serve(
        store: SqliteStore,
        mut config: ServerConfig,
        listener: TcpListener,
    ) -> TestServer {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let store = Arc::new(store);
        seed(store.as_ref());
        config.secret = Some(SECRET.into());
        let signer = tincan_server::signer_for(store.as_ref(), Some(SECRET)).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let s = store.clone();
        let writer = tincan_server::records::RecordWriter::start(store.clone());
        let records = writer.records.clone();
        let task = tokio::spawn(async move {
            tincan_server::run_with_records(listener, config, s, writer, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        TestServer {
            url: format!("http://{addr}"),
            addr,
            store,
            signer,
            records,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A login token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.signer.login_token(&uid(user), i64::MAX)
    }

    /// Signs `user` in on device `device` (Linux) without automatic reconnects.
    pub async fn peer(&self, user: &str, device: &str) -> Peer {
        self.peer_with(&self.url, user, device, PlatformId::LINUX, no_reconnect())
            .await
    }

    /// Signs in with every option chosen.
    pub async fn peer_with(
        &self,
        url: &str,
        user: &str,
        device: &str,
        platform: PlatformId,
        options: ConnectOptions,
    ) -> Peer {
        let dev = DeviceInfo::new(DeviceId::new(device).unwrap(), platform);
        let (client, events) = tincan_sdk::connect_with(url, &self.token(user), dev, options)
            .await
            .unwrap_or_else(|e| panic!("{user}/{device} signs in: {e}"));
        Peer {
            client,
            events,
            user: user.to_owned(),
        }
    }

    /// Stops the server (ending every call) and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }

    /// The call records of `user`, newest first (once the records of every call that
    /// ended before this call are written).
    pub fn history(&self, user: &str) -> Vec<CallRecord> {
        self.records.flush_blocking();
        self.store.call_history(&uid(user), 100, None).unwrap()
    }
}

/// Adds the users in [`USERS`] and group `team` (alice, bob, carol, dave) to `store`,
/// unless it has them already.
pub fn seed(store: &dyn Store) {
    for u in USERS {
        if store.user(&uid(u)).expect("read user").is_none() {
            store.add_user(&uid(u), u, None).expect("user");
        }
    }
    let team = GroupId::new("team").unwrap();
    if store.group(&team).expect("read group").is_none() {
        store.create_group(&team, "Team").unwrap();
        for u in ["alice", "bob", "carol", "dave"] {
            store.add_member(&team, &uid(u)).unwrap();
        }
    }
}

/// A directory of its own under the system's temporary folder, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory whose name starts with `tincan-<name>`.
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tincan-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make a temporary directory");
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connect options for tests: no automatic reconnect (tests reconnect by hand).
pub fn no_reconnect() -> ConnectOptions {
    let mut o = ConnectOptions::default();
    o.reconnect = false;
    o
}

/// A user id.
pub fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// One signed-in device.
pub struct Peer {
    /// The SDK client.
    pub client: Client,
    /// Its events.
    pub events: mpsc::Receiver<SdkEvent>,
    /// Who.
    pub user: String,
}

/// An operation id that says which test step it came from.
pub fn op(step: &str) -> String {
    format!("it-{step}")
}

impl Peer {
    /// The next signaling event (connection-state and call-state events are skipped; the
    /// call state is `client.call_state()`).
    pub async fn next(&mut self) -> Event {
        loop {
            match self.events.recv().await {
                Some(SdkEvent::Signaling(e)) => return e,
                Some(SdkEvent::Connection(_) | SdkEvent::CallStateChanged(_)) => continue,
                Some(other) => panic!("{}: unexpected {other:?}", self.user),
                None => panic!("{}: event channel closed", self.user),
            }
        }
    }

    /// The next connection-state event (signaling events before it are returned too).
    pub async fn next_state(&mut self) -> (ConnectionState, Vec<Event>) {
        let mut seen = Vec::new();
        loop {
            match self.events.recv().await {
                Some(SdkEvent::Signaling(e)) => seen.push(e),
                Some(SdkEvent::Connection(s)) => return (s, seen),
                Some(SdkEvent::CallStateChanged(_)) => continue,
                Some(other) => panic!("{}: unexpected {other:?}", self.user),
                None => panic!("{}: event channel closed", self.user),
            }
        }
    }

    /// Asserts the next event is `name` and returns its payload as JSON. Media
    /// negotiation messages (`onReceiveMediaSignal`, sent by a far end that runs media,
    /// such as the desktop app) are skipped unless `name` is that event: this client has
    /// no media of its own.
    pub async fn expect(&mut self, name: &str) -> Value {
        let mut e = self.next().await;
        while matches!(e, Event::ReceiveMediaSignal(_)) && name != "onReceiveMediaSignal" {
            e = self.next().await;
        }
        assert_eq!(e.name(), name, "{}: expected {name}, got {e:?}", self.user);
        tincan_sdk::event_data(&e)
    }

    /// Asserts the next event is an invitation event `name` and returns its payload.
    pub async fn expect_info(&mut self, name: &str) -> SignalingInfo {
        let v = self.expect(name).await;
        serde_json::from_value(v).expect("a SignalingInfo payload")
    }

    /// Asserts that no signaling event arrived (see the module docs).
    pub async fn quiet(&mut self) {
        self.client.ping(&op("quiet")).await.expect("ping");
        while let Ok(e) = self.events.try_recv() {
            if let SdkEvent::Signaling(e) = e {
                panic!("{}: unexpected event {e:?}", self.user);
            }
        }
    }

    /// Invites `to` one-to-one (video, 30 s).
    pub async fn invite(&self, to: &str) -> Result<InviteReply, SdkError> {
        self.client
            .signaling_invite(&op("invite"), invite_params(&[to], "", 1))
            .await
    }

    /// Invites members of `group`.
    pub async fn invite_group(&self, group: &str, to: &[&str]) -> Result<InviteReply, SdkError> {
        self.client
            .signaling_invite_in_group(&op("invite-group"), invite_params(to, group, 2))
            .await
    }

    /// signalingAccept for `room`.
    pub async fn accept(&self, room: &str) -> Result<tincan_protocol::AcceptReply, SdkError> {
        self.client
            .signaling_accept(&op("accept"), action(room))
            .await
    }

    /// signalingReject for `room`.
    pub async fn reject(&self, room: &str) -> Result<(), SdkError> {
        self.client
            .signaling_reject(&op("reject"), action(room))
            .await
            .map(drop)
    }

    /// signalingCancel for `room`.
    pub async fn cancel(&self, room: &str) -> Result<(), SdkError> {
        self.client
            .signaling_cancel(&op("cancel"), action(room))
            .await
            .map(drop)
    }

    /// signalingHungUp for `room`.
    pub async fn hang_up(&self, room: &str) -> Result<(), SdkError> {
        self.client
            .signaling_hung_up(&op("hangup"), action(room))
            .await
            .map(drop)
    }
}

/// Invite params as the seed's example builds them.
pub fn invite_params(to: &[&str], group: &str, session_type: u8) -> InviteParams {
    InviteParams {
        invitation: Invitation {
            invitee_user_id_list: to.iter().map(|u| uid(u)).collect(),
            group_id: group.into(),
            timeout: 30,
            media_type: MediaType::Video,
            session_type,
            platform_id: 7,
            ..Invitation::default()
        },
        offline_push_info: None,
    }
}

/// Action params naming a room.
pub fn action(room: &str) -> ActionParams {
    ActionParams {
        op_user_id: String::new(),
        invitation: Invitation {
            room_id: room.into(),
            ..Invitation::default()
        },
    }
}

/// The server's error code of a failed call.
pub fn code<T: std::fmt::Debug>(r: Result<T, SdkError>) -> u32 {
    match r {
        Err(e) => e
            .code()
            .unwrap_or_else(|| panic!("a server error, got {e:?}")),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
}

/// A raw WebSocket client, for frames the SDK would never send.
pub struct RawClient {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
}

impl RawClient {
    /// Connects to `/ws` and, when `login_as` is given, signs in.
    pub async fn connect(server: &TestServer, login_as: Option<(&str, &str)>) -> RawClient {
        let url = format!("ws://{}/ws", server.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        let mut c = RawClient { ws };
        if let Some((user, device)) = login_as {
            let r = c
                .request(json!({"requestID": "login", "method": "login", "data": {
                    "token": server.token(user), "deviceID": device, "platformID": 7}}))
                .await;
            assert_eq!(r["errCode"], 0, "{r}");
        }
        c
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send");
    }

    /// The next text frame as JSON; `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<Value> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(&t).expect("server JSON"))
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next response frame (events are skipped).
    pub async fn response(&mut self) -> Value {
        loop {
            let v = self.recv().await.expect("connection open");
            if v["type"] == "response" {
                return v;
            }
        }
    }

    /// Sends a JSON request and returns its response.
    pub async fn request(&mut self, frame: Value) -> Value {
        self.send_text(frame.to_string()).await;
        self.response().await
    }
}

/// A TCP proxy in front of a server whose connections can be cut, to make clients
/// lose their connection without telling the server first, or paused, to make them
/// fall silent the way a stopped process or a dead network path does.
pub struct Proxy {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub url: String,
    cut: tokio::sync::broadcast::Sender<()>,
    paused: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Proxies to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let (paused, _) = tokio::sync::watch::channel(false);
        let cut2 = cut.clone();
        let paused2 = paused.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut on_cut = cut2.subscribe();
                let (p1, p2) = (paused2.subscribe(), paused2.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (ir, iw) = inbound.into_split();
                    let (or, ow) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ir, ow, p1) => {}
                        _ = pump(or, iw, p2) => {}
                        _ = on_cut.recv() => {}
                    }
                });
            }
        });
        Proxy {
            url,
            cut,
            paused,
            task,
        }
    }

    /// Drops every connection through the proxy (new ones are still accepted).
    pub fn cut(&self) {
        let _ = self.cut.send(());
    }

    /// Stops forwarding in both directions without closing anything: each side's bytes
    /// stay unread, as if the peer's process had stopped. [`Proxy::resume`] undoes it.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Forwards again after [`Proxy::pause`].
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }
}

/// Copies `from` to `to` while not paused; while paused, reads nothing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { return },
            },
            _ = paused.changed() => {}
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `fut`, failing the test if it takes longer than `limit` of REAL time. For tests
/// on a paused clock, where tokio's own timeouts never fire: a wait for an event that
/// never comes fails instead of hanging.
pub async fn within_real<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> T {
    let (tx, rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = tx.send(());
    });
    tokio::select! {
        v = fut => v,
        _ = rx => panic!("{what}: nothing within {limit:?} of real time"),
    }
}

/// Holds tokio's paused clock still until [`FrozenClock::advance`] moves it.
///
/// With a paused clock tokio jumps time to the next timer whenever the runtime parks,
/// and waiting for a frame on a real socket parks it: a 10 s request timeout could then
/// fire while a reply is in flight. A running `spawn_blocking` task turns that
/// auto-advance off (tokio documents this), so the test moves time only on purpose.
pub struct FrozenClock {
    _release: std::sync::mpsc::Sender<()>,
}

impl FrozenClock {
    /// Freezes the clock of the current (paused, current-thread) runtime.
    pub fn hold() -> FrozenClock {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            // Returns when the sender is dropped with the FrozenClock.
            let _ = rx.recv();
        });
        FrozenClock { _release: tx }
    }

    /// Moves time forward by `d`, firing every timer due.
    pub async fn advance(&self, d: Duration) {
        tokio::time::advance(d).await;
    }
}

// Calls that outlive a restart or a node's death (restart.rs, cluster.rs).

/// Longest a test waits for clients to find the restarted server (or cluster).
pub const RESYNC_LIMIT: Duration = Duration::from_secs(60);

/// Waits for `peer` to be signed in again; returns the login reply, the connection
/// states before it and the signaling events that came with them.
pub async fn resynced(peer: &mut Peer) -> (LoginReply, Vec<ConnectionState>, Vec<Event>) {
    let mut states = Vec::new();
    let mut events = Vec::new();
    tokio::time::timeout(RESYNC_LIMIT, async {
        loop {
            let (state, seen) = peer.next_state().await;
            events.extend(seen);
            match state {
                ConnectionState::Resynced { login } => return *login,
                ConnectionState::Reconnecting { .. } | ConnectionState::ServerRestarting => {
                    states.push(state)
                }
                other => panic!("{}: unexpected {other:?}", peer.user),
            }
        }
    })
    .await
    .map(|login| (login, states, events))
    .unwrap_or_else(|_| panic!("{} did not sign in again", peer.user))
}

/// Alice calls bob and he answers; returns the room, once its saved state is written.
pub async fn answered_call(alice: &mut Peer, bob: &mut Peer) -> RoomId {
    let room = alice.invite("bob").await.unwrap().room_id;
    bob.expect("onReceiveNewInvitation").await;
    bob.accept(room.as_str()).await.unwrap();
    alice.expect("onInviteeAccepted").await;
    // History is answered after every record update queued before it: the call's saved
    // state is in the database now.
    alice
        .client
        .get_call_history(&op("sync"), HistoryParams::default())
        .await
        .unwrap();
    room
}

/// The records of `room` in `user`'s history.
pub async fn records_of(peer: &Peer, room: &RoomId) -> Vec<CallRecord> {
    let history = peer
        .client
        .get_call_history(&op("history"), HistoryParams::default())
        .await
        .unwrap();
    history
        .records
        .into_iter()
        .filter(|r| r.room_id == *room)
        .collect()
}
