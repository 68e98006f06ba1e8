//! Accounts, groups, call records and settings behind one interface.
//!
//! [`Store`] is synchronous: the embedded SQLite store answers a lookup by primary key
//! in microseconds. Reads by key (a user at sign-in, a group's members at a group
//! invitation) are still made inline by the hub, under its lock, because in WAL mode a
//! reader never waits for a writer: [`SqliteStore`] reads on a connection of its own
//! whose busy timeout is short ([`READ_BUSY_TIMEOUT`]), so a write lock held by anyone
//! (an operator command, another process, our own record writer) stalls no decision.
//! Everything that writes or may take long is kept out of the hub: call records go
//! through the record writer (`records.rs`), contacts and history are answered by
//! `queries.rs`. Operator commands that edit the file while the server runs are seen
//! at once.
//!
//! [`PostgresStore`] (`--database postgres://…`) keeps the same promise with a copy of
//! users and groups in memory, kept current by the database's notifications, so the
//! hub's reads never wait for the network ([`Database`] says which store a setting
//! names). Both stores bring their schema up to date at start-up with numbered
//! migrations.
//!
//! The database file holds password hashes, so it and its `-wal`/`-shm` companions are
//! kept readable by their owner only (`files.rs`); the token-signing key is kept in a
//! file of its own beside it (`key.rs`), so a copy of the database cannot mint tokens.

mod files;
pub mod key;
pub mod postgres;
mod sqlite;
#[cfg(any(test, feature = "test-postgres"))]
pub mod test_postgres;

use std::path::PathBuf;
use std::sync::Arc;

use tincan_protocol::{CallRecord, EndReason, GroupId, RoomId, UserId};

pub use files::{private_file_mode_fixed, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, READ_BUSY_TIMEOUT, WRITE_BUSY_TIMEOUT};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id is already taken. Not retryable.
    #[error("{0} already exists")]
    Conflict(String),
    /// The user or group does not exist. Not retryable.
    #[error("{0} does not exist")]
    Missing(String),
    /// The database failed. Retryable when [`StoreError::is_busy`].
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// PostgreSQL failed (or its connection is gone). Retryable when
    /// [`StoreError::is_busy`].
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database setting is unusable (a bad URL, an unsupported option, a schema
    /// newer than this build). Not retryable without the operator.
    #[error("{0}")]
    Config(String),
    /// A stored record did not decode. Not retryable.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A call record write from a hub whose term has passed: another hub claimed a later
    /// one ([`Term`]). Not retryable: the write is stale.
    #[error(
        "call records are now written by term {current}; this writer's term {ours} has passed"
    )]
    Fenced {
        /// The writer's term.
        ours: Term,
        /// The store's term.
        current: Term,
    },
    /// A file beside the database (its key, its modes) could not be read or written.
    /// Not retryable without the operator.
    #[error("{path}: {source}")]
    File {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl StoreError {
    /// Someone else holds the database's lock (SQLITE_BUSY / SQLITE_LOCKED): the same
    /// operation succeeds later.
    /// For PostgreSQL: a serialization failure, a deadlock, a lock or statement timeout,
    /// a server shutting down or starting, a lost or refused connection.
    pub fn is_busy(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            StoreError::Db(rusqlite::Error::SqliteFailure(f, _)) => matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            StoreError::Postgres(e) => {
                // The connection is gone or could not be made: it is opened again on
                // the next attempt (PostgreSQL restarting, a network blip).
                let connection = e.is_closed()
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
                connection
                    || e.code().is_some_and(|c| {
                        [
                            SqlState::T_R_SERIALIZATION_FAILURE,
                            SqlState::T_R_DEADLOCK_DETECTED,
                            SqlState::LOCK_NOT_AVAILABLE,
                            SqlState::QUERY_CANCELED,
                            SqlState::ADMIN_SHUTDOWN,
                            SqlState::CANNOT_CONNECT_NOW,
                        ]
                        .contains(c)
                    })
            }
            _ => false,
        }
    }
}

/// Which store a `--database` setting names: a `postgres://` (or `postgresql://`) URL,
/// or a SQLite file given as a path or a `sqlite:` URL (`sqlite:tincan.db`,
/// `sqlite:///var/lib/tincan/tincan.db`).
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (it may hold a password: see [`Database::describe`]).
    Postgres(String),
}

impl Database {
    /// Reads a `--database` value.
    pub fn parse(s: &str) -> Database {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Database::Postgres(s.to_owned())
        } else if let Some(path) = s.strip_prefix("sqlite://") {
            Database::Sqlite(PathBuf::from(path))
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            Database::Sqlite(PathBuf::from(path))
        } else {
            Database::Sqlite(PathBuf::from(s))
        }
    }

    /// Opens it (creating the SQLite file, migrating either schema).
    pub fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            Database::Postgres(url) => Arc::new(PostgresStore::connect(url)?),
        })
    }

    /// For logs and errors: the file, or PostgreSQL's user, hosts and database —
    /// never a password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => postgres::describe(url),
        }
    }

    /// Whether the setting itself holds a password (a `postgres://user:password@…`).
    pub fn has_password(&self) -> bool {
        matches!(self, Database::Postgres(url) if postgres::has_password(url))
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.describe())
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Id.
    pub user_id: UserId,
    /// Display name.
    pub nickname: String,
    /// Argon2 PHC hash; `None` for users that sign in only with minted tokens.
    pub password_hash: Option<String>,
}

/// A stored group with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// Id.
    pub group_id: GroupId,
    /// Display name.
    pub name: String,
    /// Members, sorted.
    pub members: Vec<UserId>,
}

/// The store's own id of one call's record (room ids may repeat).
pub type CallRowId = i64;

/// A fencing token: the number of one hub's turn at running the calls, handed out by
/// [`Store::claim_term`], one more than the last. Every write of call records carries
/// the term of the hub that decided it, and the store refuses it once a later term has
/// been claimed. So a hub that no longer runs the calls — a cluster leader cut off from
/// Redis, or paused, after the next leader took over; a second server started on the
/// same file — cannot overwrite what the hub that replaced it restored and writes.
/// A store that was never claimed is at term 0.
pub type Term = i64;

/// One call record to write ([`Store::put_calls`]).
#[derive(Debug, Clone, Copy)]
pub struct CallWrite<'a> {
    /// The row to replace, or `None` for a new row (as is a row that is not there).
    pub row: Option<CallRowId>,
    /// The record.
    pub record: &'a CallRecord,
    /// A call still in progress (left out of history; closed at the next start-up by
    /// [`Store::close_open_calls`] if the server never got to end it).
    pub open: bool,
    /// With `open`: what a restarted server resumes the call from (JSON, the hub's
    /// `SavedCall`); dropped when the call is written closed.
    pub live: Option<&'a str>,
}

impl CallWrite<'_> {
    /// Whose history the record is in: the inviter, the invitees and the participants,
    /// sorted, each once.
    pub fn people(&self) -> Vec<&str> {
        let r = self.record;
        let mut users: Vec<&str> = r.invitees.iter().map(|i| i.user_id.as_str()).collect();
        users.extend(r.participant_user_id_list.iter().map(UserId::as_str));
        users.push(r.inviter_user_id.as_str());
        users.sort_unstable();
        users.dedup();
        users
    }
}

/// What the server keeps.
pub trait Store: Send + Sync + 'static {
    /// Adds a user; `Conflict` if the id is taken.
    fn add_user(
        &self,
        user: &UserId,
        nickname: &str,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Replaces a user's password hash.
    fn set_password(&self, user: &UserId, password_hash: &str) -> Result<(), StoreError>;
    /// Removes a user and their group memberships; `Missing` if there is no such user.
    /// Their call records stay (they are the other participants' history too).
    fn delete_user(&self, user: &UserId) -> Result<(), StoreError>;
    /// One user.
    fn user(&self, user: &UserId) -> Result<Option<UserRow>, StoreError>;
    /// Every user, sorted by id.
    fn users(&self) -> Result<Vec<UserRow>, StoreError>;
    /// At most `limit` users whose id sorts after `after` (from the first when `None`),
    /// sorted by id.
    fn users_page(&self, after: Option<&UserId>, limit: u32) -> Result<Vec<UserRow>, StoreError>;
    /// Creates a group; `Conflict` if the id is taken.
    fn create_group(&self, group: &GroupId, name: &str) -> Result<(), StoreError>;
    /// Adds a member (idempotent); `Missing` if the group or user does not exist.
    fn add_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError>;
    /// Removes a member (idempotent).
    fn remove_member(&self, group: &GroupId, user: &UserId) -> Result<(), StoreError>;
    /// One group.
    fn group(&self, group: &GroupId) -> Result<Option<GroupRow>, StoreError>;
    /// Every group, sorted by id.
    fn groups(&self) -> Result<Vec<GroupRow>, StoreError>;
    /// Groups `user` belongs to.
    fn groups_of(&self, user: &UserId) -> Result<Vec<GroupRow>, StoreError>;
    /// Starts a new term of running the calls: raises the stored [`Term`] by one and
    /// returns it. A hub claims its term before it reads the calls to resume, so that
    /// nothing an earlier term writes lands after that read.
    fn claim_term(&self) -> Result<Term, StoreError>;
    /// Writes call records in one transaction, returning each one's row in order: all
    /// or none. `Fenced` (and nothing written) when a term later than `term` has been
    /// claimed. One transaction for many records is what lets the record writer keep up
    /// with thousands of call set-ups a second (`records.rs`).
    fn put_calls(&self, writes: &[CallWrite<'_>], term: Term)
        -> Result<Vec<CallRowId>, StoreError>;
    /// The calls still marked open that carry a saved state, oldest first: read at
    /// start-up, before [`Store::close_open_calls`].
    fn live_calls(&self) -> Result<Vec<(CallRowId, String)>, StoreError>;
    /// Ends every call still marked open with `reason` (their end time is the last time
    /// the server wrote them), returning their rooms. Fenced as [`Store::put_calls`].
    fn close_open_calls(&self, reason: EndReason, term: Term) -> Result<Vec<RoomId>, StoreError>;
    /// The rooms of the `limit` calls that ended last, oldest first, with why they ended.
    fn recent_ended_rooms(&self, limit: usize) -> Result<Vec<(RoomId, EndReason)>, StoreError>;
    /// Finished calls `user` placed or was invited to, newest first.
    fn call_history(
        &self,
        user: &UserId,
        limit: u32,
        before_ms: Option<i64>,
    ) -> Result<Vec<CallRecord>, StoreError>;
    /// A server setting.
    fn setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets a server setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;
    /// The setting `key`, set to `value` first if it has none. A store shared by several
    /// servers (PostgreSQL in cluster mode) does this in one statement, so that servers
    /// starting together agree on one value (the token-signing key) instead of each
    /// keeping its own.
    fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        match self.setting(key)? {
            Some(v) => Ok(v),
            None => {
                self.set_setting(key, value)?;
                Ok(value.to_owned())
            }
        }
    }
    /// Removes a server setting, overwriting its bytes in the file.
    fn delete_setting(&self, key: &str) -> Result<(), StoreError>;
    /// Where this store keeps the token-signing key: a file of its own beside the
    /// database. `None` for a store without files (in memory), which keeps it as a
    /// setting.
    fn key_file(&self) -> Option<PathBuf> {
        None
    }
}

#[cfg(test)]
mod tests;
