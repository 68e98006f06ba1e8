//! # tincan-server
//!
//! Tincan's signaling server: accounts and groups, devices, invitations, rooms, server
//! timeouts, relay of media negotiation, and call records, behind OpenIM's signaling API
//! on one WebSocket (`/ws`) plus two HTTP endpoints (`/api/register`, `/api/login`).
//!
//! Shape (see ARCHITECTURE.md): [`run`] serves HTTP with axum; each WebSocket gets one
//! task (`conn`) that parses frames and hands requests to the `switchboard`: the call
//! state machine (`hub`, no IO) behind one lock, plus the task that fires its timers. The [`store`] keeps
//! users, groups and call records in SQLite by default.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tincan_server::{run, ServerConfig, store::SqliteStore};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let store = Arc::new(SqliteStore::open_in_memory()?);
//! run(listener, ServerConfig::default(), store, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod accounts;
pub mod auth;
mod batched_io;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod gate;
pub mod hashing;
pub mod http;
pub mod hub;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod origin;
pub mod queries;
pub mod records;
pub mod serve;
pub mod store;
pub mod switchboard;
pub mod throttle;
pub mod tls;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tracing::{error, info, warn};

use tincan_protocol::UserId;

pub use auth::{IceConfig, TokenSigner};
pub use conn::ConnLimits;
pub use hub::HubConfig;
pub use serve::TransportConfig;
use store::Store;
pub use tincan_protocol::TokenInfo;
pub use tls::TlsFiles;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    /// Cluster mode could not start (Redis).
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
}

/// Everything [`run`] needs besides the listener and the store.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Call rules.
    pub hub: HubConfig,
    /// Per-connection limits.
    pub limits: ConnLimits,
    /// Concurrent WebSocket connections.
    pub max_connections: usize,
    /// Token secret; when `None`, a random one is made once and kept in the store.
    pub secret: Option<String>,
    /// Lifetime of login tokens.
    pub login_token_ttl: Duration,
    /// Whether `POST /api/register` is open.
    pub allow_registration: bool,
    /// Whether `GET /metrics` serves Prometheus metrics.
    pub metrics: bool,
    /// How often signed-in users are checked against the store, so that an account an
    /// operator removed is signed out (`accounts.rs`).
    pub account_check_interval: Duration,
    /// Public base URL (`ws://host:port`) clients reach this server at; `liveURL` is
    /// derived from it. Defaults to the listener's address (`wss://` with TLS).
    pub public_url: Option<String>,
    /// TLS, deadlines and caps before sign-in on the listening port.
    pub transport: TransportConfig,
    /// Browser origins let in (`Origin` header). Empty (the default): none, so every
    /// request from a web page is refused; native clients send no `Origin`.
    pub allowed_origins: Vec<origin::AllowedOrigin>,
    /// `Host` values answered; `None`: loopback names only on a loopback listener, any
    /// host otherwise (see [`origin::Policy::new`]).
    pub allowed_hosts: Option<Vec<origin::HostPattern>>,
    /// When set (the desktop app's embedded server), `/api/register` and `/api/login`
    /// need it in [`origin::LOCAL_SECRET_HEADER`].
    pub local_secret: Option<origin::LocalSecret>,
    /// Sign-in backoff and registration limits.
    pub throttle: throttle::ThrottleConfig,
    /// Password-hashing threads (0: one per core).
    pub hash_threads: usize,
    /// Password hashes that may wait for a thread; past that, `ServerBusy` (1012).
    pub hash_queue: usize,
    /// Cluster mode (`cluster/`, docs/deploy.md): several nodes on one Redis and one
    /// PostgreSQL database. `None` (the default): one node, nothing else to run.
    pub cluster: Option<cluster::ClusterConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hub: HubConfig::default(),
            limits: ConnLimits::default(),
            max_connections: 20_000,
            secret: None,
            login_token_ttl: Duration::from_secs(30 * 24 * 3600),
            allow_registration: true,
            metrics: false,
            account_check_interval: Duration::from_secs(30),
            public_url: None,
            transport: TransportConfig::default(),
            allowed_origins: Vec::new(),
            allowed_hosts: None,
            local_secret: None,
            throttle: throttle::ThrottleConfig::default(),
            hash_threads: 0,
            hash_queue: 32,
            cluster: None,
        }
    }
}

/// State shared by the HTTP handlers and connection tasks.
pub(crate) struct AppState {
    pub store: Arc<dyn Store>,
    pub signer: TokenSigner,
    pub board: Arc<switchboard::Switchboard>,
    pub limits: ConnLimits,
    pub conn_slots: Arc<Semaphore>,
    pub max_connections: usize,
    pub allow_registration: bool,
    pub metrics: bool,
    pub login_token_ttl: Duration,
    /// Who may talk to this server over HTTP (Origin, Host, local secret).
    pub access: Arc<origin::Policy>,
    /// Sign-in backoff and registration limits; locked for microseconds, never across
    /// an await.
    pub throttle: std::sync::Mutex<throttle::Throttle>,
    /// Where passwords are hashed and checked.
    pub hashers: hashing::HashPool,
    /// Each connection task holds a clone; [`run`] waits until all are dropped.
    pub done_tx: mpsc::Sender<()>,
    next_conn: AtomicU64,
}

impl AppState {
    pub(crate) fn next_conn(&self) -> hub::ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn issue_token(&self, user: UserId) -> TokenInfo {
        let expires_at = switchboard::wall_ms() + self.login_token_ttl.as_millis() as i64;
        TokenInfo {
            token: self.signer.login_token(&user, expires_at),
            user_id: user,
            expires_at,
        }
    }
}

/// The token signer for a store: the configured secret, or the store's own key (in a
/// file beside the database, made on first start: see `store::key`), so tokens
/// survive restarts.
pub fn signer_for(store: &dyn Store, secret: Option<&str>) -> Result<TokenSigner, ServerError> {
    if let Some(s) = secret {
        return Ok(TokenSigner::new(s.as_bytes()));
    }
    Ok(TokenSigner::new(store::key::signing_key(store)?.as_bytes()))
}

/// Takes back the calls the last run saved (see `hub/saved.rs`): each resumed call's
/// record row is handed to the record writer before the hub's first update of it.
/// Returns the rooms resumed.
fn resume_saved_calls(
    hub: &mut hub::Hub,
    saved: Vec<(store::CallRowId, String)>,
    records: &records::Records,
) -> Vec<tincan_protocol::RoomId> {
    let now = hub::Now {
        mono: tokio::time::Instant::now(),
        wall_ms: switchboard::wall_ms(),
    };
    let mut resumed = Vec::new();
    for (row, json) in saved {
        let call = match serde_json::from_str::<hub::SavedCall>(&json) {
            Ok(c) => c,
            Err(e) => {
                warn!(row, error = %e, "a saved call could not be read; it stays ended (serverRestart)");
                continue;
            }
        };
        let room = call.room.clone();
        match hub.restore(now, call) {
            Ok(number) => {
                records.adopt(number, row);
                resumed.push(room);
            }
            Err(why) => {
                info!(room = %room, ?why, "saved call not resumed; it stays ended (serverRestart)")
            }
        }
    }
    for update in hub.take_records() {
        records.push(update);
    }
    if !resumed.is_empty() {
        warn!(
            calls = resumed.len(),
            "calls in progress when the server stopped are resumed; each waits for its participants to sign in again"
        );
    }
    resumed
}

/// The hub a server (or a cluster's new leader) starts with: calls the last run did not
/// get to end (a crash, a kill -9, a restart, a leader gone) are closed first; answered
/// ones it saved are then taken back (`hub/saved.rs`), and recently ended rooms
/// remembered, so a late answer hears "ended", not "unknown". Records are numbered after
/// `floor`.
fn recovered_hub(
    config: &HubConfig,
    store: &Arc<dyn Store>,
    signer: &TokenSigner,
    records: &records::Records,
    floor: u64,
) -> Result<hub::Hub, ServerError> {
    // The term first: from here on nothing an earlier hub (a stale leader, a server
    // before this one on the same file) queued can land after the read below.
    let term = store.claim_term()?;
    records.fence(term);
    let saved = store.live_calls()?;
    let cut = store.close_open_calls(tincan_protocol::EndReason::ServerRestart, term)?;
    let mut hub = hub::Hub::new(config.clone(), store.clone(), signer.clone()).numbered_from(floor);
    let resumed = resume_saved_calls(&mut hub, saved, records);
    if cut.len() > resumed.len() {
        warn!(
            calls = cut.len() - resumed.len(),
            "calls cut off when the server last stopped are recorded as ended (serverRestart)"
        );
    }
    hub.remember_ended(
        store
            .recent_ended_rooms(hub::ENDED_MEMORY)?
            .into_iter()
            .filter(|(room, _)| !resumed.contains(room)),
    );
    Ok(hub)
}

/// How long a stopping server waits for the call records still queued to be written.
/// Records it could not write stay marked open in the database, and the next start
/// closes them (`serverRestart`), so even then no call goes unrecorded.
pub const RECORD_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves Tincan on `listener` until `shutdown` completes, then cancels ringing
/// invitations, keeps answered calls for the next start (`hub/saved.rs`), closes every
/// connection with code 1012 ("the server is restarting") and returns.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let writer = records::RecordWriter::start(store.clone());
    run_with_records(listener, config, store, writer, shutdown).await
}

/// [`run`] with a record writer started by the caller, who keeps a handle to it (tests
/// use [`records::Records::flush_blocking`] before reading the store).
pub async fn run_with_records(
    listener: TcpListener,
    mut config: ServerConfig,
    store: Arc<dyn Store>,
    writer: records::RecordWriter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let records::RecordWriter {
        records,
        finished: records_written,
    } = writer;
    let addr = listener.local_addr()?;
    let signer = signer_for(store.as_ref(), config.secret.as_deref())?;
    let certs = match &config.transport.tls {
        Some(files) => Some(tls::CertStore::open(files.clone())?),
        None => None,
    };
    let scheme = if certs.is_some() { "wss" } else { "ws" };
    let base = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    if config.hub.live_url.is_empty() {
        config.hub.live_url = format!("{}{}", base.trim_end_matches('/'), tincan_protocol::WS_PATH);
    }
    // In cluster mode the hub is built when this node takes the lead (it may never);
    // until then the switchboard holds an empty one.
    let joined = match &config.cluster {
        Some(c) => Some(cluster::join(c).await?),
        None => None,
    };
    let hub = match &joined {
        Some(_) => hub::Hub::new(config.hub.clone(), store.clone(), signer.clone()),
        None => recovered_hub(&config.hub, &store, &signer, &records, 0)?,
    };
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let board = switchboard::Switchboard::new(hub, store.clone(), records.clone());
    let first_conn = match &joined {
        Some(j) => cluster::wire::first_conn(j.node),
        None => 1,
    };
    let running = match joined {
        Some(joined) => {
            board.join_cluster(joined.bus());
            let (hub_config, store, signer, records) = (
                config.hub.clone(),
                store.clone(),
                signer.clone(),
                records.clone(),
            );
            let make_hub: cluster::HubMaker =
                Box::new(move |floor| recovered_hub(&hub_config, &store, &signer, &records, floor));
            Some(joined.start(board.clone(), make_hub).await)
        }
        None => None,
    };
    let timer_task = tokio::spawn(board.clone().run_timers());
    let account_task = tokio::spawn(accounts::watch_removed(
        board.clone(),
        store.clone(),
        config.account_check_interval,
    ));
    let state = Arc::new(AppState {
        store,
        signer,
        board: board.clone(),
        limits: config.limits.clone(),
        conn_slots: Arc::new(Semaphore::new(config.max_connections)),
        max_connections: config.max_connections,
        allow_registration: config.allow_registration,
        metrics: config.metrics,
        login_token_ttl: config.login_token_ttl,
        access: Arc::new(origin::Policy::new(
            config.allowed_origins.clone(),
            config.allowed_hosts.clone(),
            config.local_secret.clone(),
            addr,
            config.public_url.as_deref(),
        )),
        throttle: std::sync::Mutex::new(throttle::Throttle::new(&config.throttle)),
        hashers: hashing::HashPool::new(config.hash_threads, config.hash_queue),
        done_tx,
        next_conn: AtomicU64::new(first_conn),
    });
    info!(%addr, live_url = %config.hub.live_url, "tincan-server listening");
    serve::log_transport(&config.transport, config.max_connections);
    let app = http::router(state.clone());
    let stopper = board.clone();
    let transport = serve::Transport {
        gate: gate::Gate::new(
            config.transport.max_unauthenticated_per_address,
            config.transport.unauthenticated_cap(config.max_connections),
        ),
        tls: certs
            .as_ref()
            .map(|c| tokio_rustls::TlsAcceptor::from(c.server_config())),
        header_timeout: config.transport.header_timeout,
    };
    let reloader = certs.map(|c| tokio::spawn(tls::watch(c, config.transport.tls_reload_poll)));
    serve::serve(listener, app, transport, async move {
        shutdown.await;
        info!("shutting down");
        stopper.shutdown();
    })
    .await;
    if let Some(r) = reloader {
        r.abort();
    }
    account_task.abort();
    board.shutdown();
    if let Some(running) = running {
        running.stop().await;
    }
    drop(state);
    let _ = timer_task.await;
    // Connection tasks got a close frame; give them a moment to send it.
    let _ = tokio::time::timeout(Duration::from_secs(5), done_rx.recv()).await;
    records.stop();
    if !records_written.wait(RECORD_DRAIN_TIMEOUT).await {
        error!(
            left = records.backlog(),
            "the database stayed busy: call records not written yet are closed at the next start"
        );
    }
    info!("stopped");
    Ok(())
}
