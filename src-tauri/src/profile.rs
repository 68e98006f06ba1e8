//! The profile folder: where this instance keeps its device id and the embedded
//! server's database (password hashes and its token-signing secret). Only its owner may
//! read it: the folder is 0700 and the files written here 0600, on Unix.
//!
//! A folder that already exists is tightened too, so an installation made before this
//! rule is fixed at its next start. Use a folder of its own for `--profile`.

use std::io;
use std::path::Path;

/// Mode of the profile folder: its owner only.
#[cfg(unix)]
pub const DIR_MODE: u32 = 0o700;
/// Mode of files written into it.
#[cfg(unix)]
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) for its owner only, or tightens it to that if it
/// exists with wider permissions.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        // `mode` applies to folders it creates (and the umask may narrow it further);
        // one that was already there keeps its bits until set here.
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & !DIR_MODE != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Writes `contents` to `path`, readable and writable by its owner only (an existing
/// file is tightened first, so no moment exists where the new contents are readable).
pub fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write as _;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        file.write_all(contents)
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tincan-profile-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_new_profile_folder_is_its_owners_only() {
        let root = scratch("new");
        let dir = root.join("a").join("profile");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_existing_open_profile_folder_is_tightened() {
        let dir = scratch("open");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn private_files_are_0600_even_when_they_existed_wider() {
        let dir = scratch("file");
        create_private_dir(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
