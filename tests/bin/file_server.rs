//! `tincan-test-server <database> [address]`: the real server (`tincan_server::run`) on a
//! database and `127.0.0.1:0` (or `address`, to start again where a killed one listened),
//! as a process of its own, so that a test can kill it with SIGKILL (a crash: no shutdown
//! code runs) or stop it with SIGTERM (a clean stop, as `tincan-server` does), and start
//! it again on the same database. The first argument is read as `--database` is: a
//! SQLite file, or a `postgres://` URL.
//!
//! It prints `listening <addr>` on stdout once it accepts connections; tokens are signed
//! with `TINCAN_SECRET` from the environment. With `TINCAN_REDIS` it is a cluster node
//! (the database must then be PostgreSQL); `TINCAN_PARTICIPANT_GRACE` (seconds) sets the
//! grace a dropped participant gets. It logs to stderr as `tincan-server` does, at
//! `RUST_LOG`'s level (`warn` when unset), plain text.

use std::io::Write;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use tincan_server::store::Database;
use tincan_server::ServerConfig;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish()
        .with(tincan_server::logging::frames_never_logged())
        .init();
    let db = std::env::args()
        .nth(1)
        .expect("usage: tincan-test-server <database>");
    let store = Database::parse(&db).open().expect("open the database");
    let at = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&at).await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let mut config = ServerConfig {
        secret: std::env::var("TINCAN_SECRET").ok(),
        ..ServerConfig::default()
    };
    // A cluster node (tests/integration/cluster.rs): Redis's URL, and a shorter grace
    // so that a test sees a call end in seconds.
    if let Ok(url) = std::env::var("TINCAN_REDIS") {
        config.cluster = Some(tincan_server::cluster::ClusterConfig {
            redis_url: url,
            node_name: format!("test-{}", std::process::id()),
            timing: Default::default(),
        });
        config.metrics = true;
    }
    if let Some(secs) = std::env::var("TINCAN_PARTICIPANT_GRACE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.hub.participant_grace = std::time::Duration::from_secs(secs);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    let server = tokio::spawn(tincan_server::run(listener, config, store, async move {
        term.recv().await;
    }));
    // The listener is bound, so connections made after this line wait in its backlog
    // until `run` accepts them.
    println!("listening {addr}");
    std::io::stdout().flush().expect("stdout");
    server.await.expect("server task").expect("server runs");
}
