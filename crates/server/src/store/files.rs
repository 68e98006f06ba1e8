//! File modes for what the store keeps on disk: the database and its `-wal`/`-shm`
//! files hold password hashes, the key file the token-signing key. Each is made
//! readable and writable by its owner only, whatever the process's umask, and an
//! existing file found more open than that is tightened at start-up.

use std::path::{Path, PathBuf};

use tracing::info;

use super::StoreError;

/// Mode of every file the store writes: owner read/write only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of the folders the store creates: owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::File {
        path: path.to_owned(),
        source,
    }
}

/// `<db>-wal` and `<db>-shm`, SQLite's companions of the database file.
pub(super) fn companions(db: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    })
}

/// Prepares `db` before SQLite opens it: makes its missing folders (owner only) and the
/// file itself (owner only: SQLite creates `-wal` and `-shm` with the database file's
/// mode), and tightens the modes of the files that are already there.
pub(super) fn prepare_database(db: &Path) -> Result<(), StoreError> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            make_private_dir(dir)?;
        }
    }
    create_private_file(db)?;
    private_file_mode_fixed(db)?;
    for f in companions(db) {
        private_file_mode_fixed(&f)?;
    }
    Ok(())
}

/// Creates the folder `dir` and any missing parents, owner only.
pub(super) fn make_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, PRIVATE_DIR_MODE);
    b.create(dir).map_err(file_err(dir))
}

/// Creates `path` empty with [`PRIVATE_FILE_MODE`] unless it exists.
pub(super) fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, PRIVATE_FILE_MODE);
    match o.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(file_err(path)(e)),
    }
}

/// Writes `bytes` to a new file `path` with [`PRIVATE_FILE_MODE`]; fails if it exists.
pub(super) fn write_new_private_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, PRIVATE_FILE_MODE);
    let mut f = o.open(path).map_err(file_err(path))?;
    f.write_all(bytes).map_err(file_err(path))?;
    f.sync_all().map_err(file_err(path))
}

/// Tightens `path` to [`PRIVATE_FILE_MODE`] if group or others may use it. Returns
/// whether it changed anything; a missing file is left alone.
pub fn private_file_mode_fixed(path: &Path) -> Result<bool, StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(file_err(path)(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
            .map_err(file_err(path))?;
        info!(path = %path.display(), old = format!("{mode:o}"), new = format!("{PRIVATE_FILE_MODE:o}"), "made a private file readable by its owner only");
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}
