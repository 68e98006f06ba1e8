//! What the app keeps between commands: the signed-in SDK session, the profile
//! directory, and the embedded server when this app started one.
//!
//! Locks are `std::sync::Mutex` held only to read or swap a field, never across an
//! `.await`; the SDK `Client` is a cheap handle that commands clone out.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tincan_sdk::protocol::{DeviceId, PlatformId, UserId};
use tincan_sdk::{Client, DeviceInfo};
use tincan_server::origin::LocalSecret;

pub use crate::local_server::EmbeddedServer;
use crate::{local_server, profile};

/// File in the profile directory that keeps this installation's deviceID, so a
/// restarted app resumes its call on the server (same device, within the grace period).
pub const DEVICE_ID_FILE: &str = "device-id";
/// SQLite file of the embedded server, in the profile directory.
pub const EMBEDDED_DB_FILE: &str = "server.db";

/// One signed-in session.
pub struct Session {
    /// The SDK client; clone it to make calls.
    pub client: Client,
    /// Who is signed in.
    pub user_id: UserId,
    /// The server URL signed in to.
    pub server: String,
    /// The task forwarding the client's events to the window.
    pub forwarder: tauri::async_runtime::JoinHandle<()>,
}

/// The app's state, managed by Tauri (`app.state::<AppState>()`).
pub struct AppState {
    /// Where this instance keeps its files (device id, embedded server database).
    pub profile_dir: PathBuf,
    /// Server URL given on the command line or in `TINCAN_SERVER`, to prefill sign-in.
    pub default_server: Option<String>,
    /// `--ca-file` / `TINCAN_CA_FILE`: extra CA certificates for https/wss servers.
    pub ca_file: Option<PathBuf>,
    session: Mutex<Option<Session>>,
    server: Mutex<Option<EmbeddedServer>>,
    /// Incremented per sign-in; events from an older session are dropped.
    generation: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    /// State for a profile directory.
    pub fn new(profile_dir: PathBuf, default_server: Option<String>) -> Self {
        AppState {
            profile_dir,
            default_server,
            ca_file: None,
            session: Mutex::new(None),
            server: Mutex::new(None),
            generation: Mutex::new(0),
        }
    }

    /// Trusts the CA certificates in `ca_file` too, for https/wss servers.
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Self {
        self.ca_file = ca_file;
        self
    }

    /// The signed-in client, if any.
    pub fn client(&self) -> Option<Client> {
        lock(&self.session).as_ref().map(|s| s.client.clone())
    }

    /// `(userID, server)` of the signed-in user, if any.
    pub fn signed_in(&self) -> Option<(UserId, String)> {
        lock(&self.session)
            .as_ref()
            .map(|s| (s.user_id.clone(), s.server.clone()))
    }

    /// Stores a new session and returns the one it replaces.
    pub fn set_session(&self, session: Session) -> Option<Session> {
        lock(&self.session).replace(session)
    }

    /// Removes the session.
    pub fn take_session(&self) -> Option<Session> {
        lock(&self.session).take()
    }

    /// Starts a new session generation and returns it.
    pub fn next_generation(&self) -> u64 {
        let mut g = lock(&self.generation);
        *g += 1;
        *g
    }

    /// Whether `generation` is the current one.
    pub fn is_current(&self, generation: u64) -> bool {
        *lock(&self.generation) == generation
    }

    /// The embedded server's URL, if one runs.
    pub fn embedded_url(&self) -> Option<String> {
        lock(&self.server).as_ref().map(|s| s.url.clone())
    }

    /// The secret to send when registering or signing in at `url`: the embedded
    /// server's, when `url` is that server (or another instance's on this machine).
    pub fn local_secret_for(&self, url: &str) -> Option<LocalSecret> {
        let server = lock(&self.server);
        let own = server.as_ref().map(|s| (s.url.as_str(), &s.secret));
        local_server::secret_for(url, own)
    }

    /// Records the embedded server, unless one is already recorded (two starts raced);
    /// returns the URL of the one that stays.
    pub fn set_embedded(&self, server: EmbeddedServer) -> String {
        let mut slot = lock(&self.server);
        match slot.as_ref() {
            Some(existing) => {
                server.task.abort();
                existing.url.clone()
            }
            None => {
                let url = server.url.clone();
                *slot = Some(server);
                url
            }
        }
    }

    /// This installation's device: the id stored in the profile directory, or a new
    /// one saved there.
    pub fn device(&self) -> std::io::Result<DeviceInfo> {
        load_or_create_device(&self.profile_dir)
    }
}

/// Reads `<dir>/device-id`, or makes a fresh Linux device id and writes it there.
pub fn load_or_create_device(dir: &Path) -> std::io::Result<DeviceInfo> {
    let path = dir.join(DEVICE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(id) = DeviceId::new(text.trim()) {
            return Ok(DeviceInfo::new(id, PlatformId::LINUX));
        }
    }
    let device = DeviceInfo::random_linux();
    profile::create_private_dir(dir)?;
    profile::write_private_file(&path, device.device_id.as_str().as_bytes())?;
    Ok(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("tincan-app-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = load_or_create_device(&dir).unwrap();
        let second = load_or_create_device(&dir).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.platform_id, PlatformId::LINUX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700, "the profile folder is its owner's only");
            assert_eq!(mode(&dir.join(DEVICE_ID_FILE)), 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
