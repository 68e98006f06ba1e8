//! The token-signing key, kept in a file of its own beside the database.
//!
//! Whoever holds the key can mint a login token for any user, so it is not kept in the
//! database, which gets copied, backed up and inspected with `sqlite3` far more often
//! than anything else the server keeps: `<db>.key`, owner-only, made on first start.
//! Earlier versions kept it in the database's settings; it is moved out on start-up
//! (and its bytes overwritten in the database), so tokens issued before stay valid.

use std::path::Path;

use base64::Engine as _;
use rand::RngCore;
use tracing::{info, warn};

use super::files::{private_file_mode_fixed, write_new_private_file};
use super::{Store, StoreError};

/// The setting that held the key before it moved to its own file (and still holds it
/// for stores without files).
pub const KEY_SETTING: &str = "token_secret";

fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The signing key for `store`: from its key file (made on first start, or moved there
/// from the database), or for a store without files, from its settings.
pub fn signing_key(store: &dyn Store) -> Result<String, StoreError> {
    let Some(file) = store.key_file() else {
        return store.setting_or_insert(KEY_SETTING, &random_key());
    };
    let legacy = store.setting(KEY_SETTING)?;
    let key = match std::fs::read_to_string(&file) {
        Ok(text) => {
            private_file_mode_fixed(&file)?;
            non_empty(&file, &text)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = legacy.clone().unwrap_or_else(random_key);
            write_new_private_file(&file, format!("{key}\n").as_bytes())?;
            info!(path = %file.display(), "token-signing key kept in its own file");
            key
        }
        Err(source) => return Err(StoreError::File { path: file, source }),
    };
    if legacy.is_some() {
        store.delete_setting(KEY_SETTING)?;
        info!("token-signing key removed from the database");
    }
    Ok(key)
}

/// A secret the operator keeps in a file (`--secret-file`): its content without the
/// final line break.
pub fn read_secret_file(path: &Path) -> Result<String, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::File {
        path: path.to_owned(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                warn!(path = %path.display(), "the secret file can be read by other users; chmod 600 it");
            }
        }
    }
    non_empty(path, &text)
}

fn non_empty(path: &Path, text: &str) -> Result<String, StoreError> {
    let key = text.trim_end_matches(['\r', '\n']);
    if key.trim().is_empty() {
        return Err(StoreError::File {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
        });
    }
    Ok(key.to_owned())
}
