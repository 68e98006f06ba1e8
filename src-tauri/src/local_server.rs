//! The embedded server ("Use a local server on this computer"): `tincan_server::run` in
//! this process, its SQLite file in the profile folder.
//!
//! Any web page the user visits can make the browser talk to `127.0.0.1`, and, through
//! DNS rebinding, make the server look same-origin (docs/security.md). So the embedded
//! server listens on loopback only, answers only to its loopback names on its own port,
//! refuses every request that carries an `Origin` (the page talks to Rust through Tauri
//! commands, never to the server itself), and creates accounts or signs in only for the
//! app that started it: a secret made at each launch, kept in memory, sent by the Rust
//! side through the SDK, never logged and never given to the page.
//!
//! Other instances of the app run by the same OS user (a second window with its own
//! `--profile`) may use this server too: the secret is published for them in
//! `$XDG_RUNTIME_DIR/tincan/local-server-<port>` (folder 0700, file 0600), which a web
//! page cannot read and other OS users cannot open. Without `XDG_RUNTIME_DIR` nothing is
//! published, and only this instance can sign in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tincan_sdk::codes;
use tincan_sdk::Endpoint;
use tincan_server::origin::{HostPattern, LocalSecret, LOOPBACK_HOSTS};
use tincan_server::store::SqliteStore;
use tincan_server::ServerConfig;

use crate::profile;
use crate::state::EMBEDDED_DB_FILE;

/// Preferred port; a random free port is used when it is taken.
pub const EMBEDDED_PORT: u16 = 7070;

/// Where secrets are published for the user's other instances, under `XDG_RUNTIME_DIR`.
const RUNTIME_SUBDIR: &str = "tincan";

/// The embedded server this app started.
pub struct EmbeddedServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its per-launch secret (Debug hides it).
    pub secret: LocalSecret,
    /// The serving task; it runs until the app exits.
    pub task: tauri::async_runtime::JoinHandle<()>,
}

/// Why the server did not start: an `errCode` and a message for the window.
pub type StartError = (u32, String);

/// The configuration of an embedded server on `port`: no web page, only its loopback
/// names on that port, accounts only with `secret`.
pub fn config(port: u16, secret: LocalSecret) -> ServerConfig {
    ServerConfig {
        allowed_origins: Vec::new(),
        allowed_hosts: Some(
            LOOPBACK_HOSTS
                .iter()
                .map(|h| HostPattern::with_port(h, port))
                .collect(),
        ),
        local_secret: Some(secret),
        ..ServerConfig::default()
    }
}

/// Binds loopback (port [`EMBEDDED_PORT`] when free), opens `server.db` in the private
/// profile folder and serves until the app exits.
pub async fn start(profile_dir: &Path) -> Result<EmbeddedServer, StartError> {
    let network = |e: std::io::Error| (codes::NETWORK, format!("cannot open a local port: {e}"));
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", EMBEDDED_PORT)).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(network)?,
    };
    let addr = listener.local_addr().map_err(network)?;
    profile::create_private_dir(profile_dir).map_err(|e| {
        (
            codes::INTERNAL,
            format!("cannot create the profile folder: {e}"),
        )
    })?;
    let db = profile_dir.join(EMBEDDED_DB_FILE);
    let store = SqliteStore::open(&db).map(Arc::new).map_err(|e| {
        (
            codes::INTERNAL,
            format!("cannot open {}: {e}", db.display()),
        )
    })?;
    let secret = LocalSecret::generate();
    publish(addr, &secret);
    let config = config(addr.port(), secret.clone());
    let task = tauri::async_runtime::spawn(async move {
        if let Err(e) = tincan_server::run(listener, config, store, std::future::pending()).await {
            tracing::error!("embedded server stopped: {e}");
        }
    });
    Ok(EmbeddedServer {
        url: format!("http://{addr}"),
        secret,
        task,
    })
}

/// `$XDG_RUNTIME_DIR/tincan`, if the session has a runtime folder.
fn runtime_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(RUNTIME_SUBDIR))
}

fn published_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!("local-server-{port}"))
}

/// Leaves the secret where the user's other instances find it (best effort: without
/// it, only this instance can sign in).
fn publish(addr: SocketAddr, secret: &LocalSecret) {
    let Some(dir) = runtime_dir() else { return };
    let written = profile::create_private_dir(&dir).and_then(|()| {
        profile::write_private_file(
            &published_path(&dir, addr.port()),
            secret.expose().as_bytes(),
        )
    });
    if let Err(e) = written {
        tracing::warn!(
            "cannot publish the local server's secret for other windows in {}: {e}",
            dir.display()
        );
    }
}

/// The port of `url` when it names this machine's loopback (`127.0.0.1`, `localhost`,
/// `[::1]`) over plain http, without a path prefix; else `None`.
pub fn loopback_port(url: &str) -> Option<u16> {
    let base = Endpoint::parse(url).ok()?.http_base();
    let authority = base.strip_prefix("http://")?;
    let (host, port) = authority.rsplit_once(':')?;
    let host = host.to_ascii_lowercase();
    LOOPBACK_HOSTS
        .contains(&host.as_str())
        .then(|| port.parse().ok())
        .flatten()
}

/// The secret to send to the server at `url`: this app's own embedded server's
/// (`own`: its URL and secret), or one another instance of this user published for a
/// loopback port. `None` for every other server: the secret never leaves this machine.
pub fn secret_for(url: &str, own: Option<(&str, &LocalSecret)>) -> Option<LocalSecret> {
    let port = loopback_port(url)?;
    if let Some((own_url, secret)) = own {
        if loopback_port(own_url) == Some(port) {
            return Some(secret.clone());
        }
    }
    let text = std::fs::read_to_string(published_path(&runtime_dir()?, port)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| LocalSecret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_have_a_port_here() {
        assert_eq!(loopback_port("http://127.0.0.1:7070"), Some(7070));
        assert_eq!(loopback_port("http://LOCALHOST:7071/"), Some(7071));
        assert_eq!(loopback_port("ws://[::1]:7072/ws"), Some(7072));
        assert_eq!(loopback_port("127.0.0.1:7073"), Some(7073));
        assert_eq!(loopback_port("http://calls.example.org:7070"), None);
        assert_eq!(loopback_port("http://127.0.0.1.evil.example:7070"), None);
        assert_eq!(loopback_port("http://127.0.0.1:7070/prefix"), None);
        assert_eq!(loopback_port("not a url"), None);
    }

    #[test]
    fn the_own_secret_goes_only_to_the_own_server() {
        let secret = LocalSecret::generate();
        let own = Some(("http://127.0.0.1:7070", &secret));
        let same = secret_for("http://localhost:7070", own).unwrap();
        assert_eq!(same.expose(), secret.expose());
        assert!(secret_for("http://calls.example.org:7070", own).is_none());
    }

    #[test]
    fn the_embedded_config_lets_in_no_page_and_only_its_own_names() {
        let c = config(7070, LocalSecret::generate());
        assert!(c.allowed_origins.is_empty());
        let hosts = c.allowed_hosts.unwrap();
        assert!(hosts.contains(&HostPattern::with_port("127.0.0.1", 7070)));
        assert!(hosts.contains(&HostPattern::with_port("localhost", 7070)));
        assert!(hosts.contains(&HostPattern::with_port("[::1]", 7070)));
        assert_eq!(hosts.len(), 3);
        assert!(c.local_secret.is_some());
    }
}
