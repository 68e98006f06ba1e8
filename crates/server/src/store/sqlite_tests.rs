//! Tests of `SqliteStore` on files: modes, the key file, migrations. (What every store
//! does is tested on both engines in `store/tests.rs`.)

use super::*;

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

/// A folder of its own for a file-backed store, removed afterwards.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tincan-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn database_files_are_private_whatever_the_umask() {
    let dir = Dir::new("modes");
    let db = dir.0.join("sub").join("tincan.db");
    let s = SqliteStore::open(&db).unwrap();
    s.add_user(&uid("alice"), "Alice", Some("hash")).unwrap();
    let [wal, shm] = super::super::files::companions(&db);
    assert_eq!(mode(&db), 0o600, "the database");
    assert_eq!(mode(&wal), 0o600, "its WAL, after a write");
    assert_eq!(mode(&shm), 0o600, "its shared memory file");
    assert_eq!(mode(db.parent().unwrap()), 0o700, "the folder it made");
}

#[cfg(unix)]
#[test]
fn open_files_left_by_an_older_version_are_tightened_at_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("tighten");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = dir.0.join("tincan.db");
    drop(SqliteStore::open(&db).unwrap());
    let [wal, shm] = super::super::files::companions(&db);
    for f in [&db, &wal, &shm] {
        if f.exists() {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let s = SqliteStore::open(&db).unwrap();
    s.add_user(&uid("alice"), "Alice", None).unwrap();
    for f in [&db, &wal, &shm] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

#[test]
fn the_signing_key_lives_in_its_own_private_file_not_in_the_database() {
    let dir = Dir::new("key");
    let db = dir.0.join("tincan.db");
    let s = SqliteStore::open(&db).unwrap();
    let key = super::super::key::signing_key(&s).unwrap();
    let file = s.key_file().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), key);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    assert_eq!(s.setting(super::super::key::KEY_SETTING).unwrap(), None);
    drop(s);
    let bytes = std::fs::read(&db).unwrap();
    assert!(
        !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
        "a copy of the database does not hold the key"
    );
    // The same key on the next start.
    let s = SqliteStore::open(&db).unwrap();
    assert_eq!(super::super::key::signing_key(&s).unwrap(), key);
}

#[test]
fn a_key_kept_in_the_database_by_an_older_version_moves_to_its_file() {
    let dir = Dir::new("legacy-key");
    let db = dir.0.join("tincan.db");
    let s = SqliteStore::open(&db).unwrap();
    s.set_setting(super::super::key::KEY_SETTING, "old-secret")
        .unwrap();
    assert_eq!(
        super::super::key::signing_key(&s).unwrap(),
        "old-secret",
        "tokens stay valid"
    );
    assert_eq!(s.setting(super::super::key::KEY_SETTING).unwrap(), None);
    drop(s);
    let mut all = std::fs::read(&db).unwrap();
    for f in super::super::files::companions(&db) {
        all.extend(std::fs::read(f).unwrap_or_default());
    }
    assert!(
        !all.windows(10).any(|w| w == b"old-secret"),
        "its bytes are gone from the database files"
    );
}
